import Foundation
import Logging
import NIOCore
import NIOSSL

/// TLS for the server's port: a certificate chain and its private key, loaded and checked once.
///
/// Set ``LoglineServer/Configuration/tls`` to one (`logline serve --tls-cert CERT.pem --tls-key KEY.pem`) and the
/// server's one port speaks TLS 1.2 or later, and nothing else: every connection must finish a TLS handshake before
/// its first request, and a client that speaks plain TCP gets no reply before its connection closes. The server
/// asks clients for no certificate: clients prove who they are with tokens (``LoglineServer/Configuration/tokens``),
/// which TLS keeps secret on the wire.
///
/// The certificate and key are parsed, and the NIOSSL context is built, when the value is created, so a bad file is
/// refused before the server starts rather than when the first client connects. The type wraps NIOSSL's
/// `NIOSSLContext` so that the server's API needs no NIOSSL types.
public struct ServerTLS: Sendable {
    /// The NIOSSL context every connection's handler is made from.
    let context: NIOSSLContext
    /// How many certificates the chain holds (the server's own first).
    public let certificateCount: Int

    /// Creates TLS settings from PEM text.
    /// - Parameters:
    ///   - certificateChainPEM: One or more PEM certificates: the server's own first, then the intermediates that
    ///     lead to a root the clients trust.
    ///   - privateKeyPEM: The PEM private key (RSA or EC, unencrypted) of the first certificate.
    /// - Throws: ``LoglineServer/ConfigurationError`` when there is no certificate, a certificate or the key cannot
    ///   be parsed, or the key does not belong to the first certificate; the message never shows the key.
    public init(certificateChainPEM: [UInt8], privateKeyPEM: [UInt8]) throws(LoglineServer.ConfigurationError) {
        try self.init(
            certificateChainPEM: certificateChainPEM, privateKeyPEM: privateKeyPEM, certificateName: "certificate",
            keyName: "private key")
    }

    /// Creates TLS settings from PEM files.
    /// - Parameters:
    ///   - certificateChainFile: The path of one or more PEM certificates: the server's own first, then the
    ///     intermediates that lead to a root the clients trust.
    ///   - privateKeyFile: The path of the PEM private key (RSA or EC, unencrypted) of the first certificate.
    /// - Throws: ``LoglineServer/ConfigurationError`` naming the file when a file cannot be read, holds no
    ///   certificate, cannot be parsed, or when the key does not belong to the first certificate.
    public init(certificateChainFile: String, privateKeyFile: String) throws(LoglineServer.ConfigurationError) {
        let certificates = try Self.read(certificateChainFile, what: "TLS certificate file")
        let key = try Self.read(privateKeyFile, what: "TLS key file")
        try self.init(
            certificateChainPEM: certificates, privateKeyPEM: key,
            certificateName: "TLS certificate file \(certificateChainFile)",
            keyName: "TLS key file \(privateKeyFile)")
    }

    private init(
        certificateChainPEM: [UInt8], privateKeyPEM: [UInt8], certificateName: String, keyName: String
    ) throws(LoglineServer.ConfigurationError) {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMBytes(certificateChainPEM)
        } catch {
            throw LoglineServer.ConfigurationError(
                "\(certificateName): not a PEM certificate (\(Self.describe(error)))")
        }
        guard !certificates.isEmpty else {
            throw LoglineServer.ConfigurationError("\(certificateName): no PEM certificate in it")
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: privateKeyPEM, format: .pem)
        } catch {
            // NIOSSL's errors name no key material; say only that the key could not be parsed.
            throw LoglineServer.ConfigurationError(
                "\(keyName): not an unencrypted PEM private key (\(Self.describe(error)))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: certificates.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .none
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch NIOSSLError.failedToLoadPrivateKey {
            // What BoringSSL says of a key that does not belong to the first certificate.
            throw LoglineServer.ConfigurationError(
                "\(keyName) does not match the first certificate of \(certificateName)")
        } catch {
            throw LoglineServer.ConfigurationError(
                "cannot set up TLS with \(certificateName) and \(keyName): \(Self.describe(error))")
        }
        certificateCount = certificates.count
    }

    /// The contents of a file, or an error naming it and saying why it cannot be read.
    private static func read(_ path: String, what: String) throws(LoglineServer.ConfigurationError) -> [UInt8] {
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw LoglineServer.ConfigurationError(
                "cannot read \(what) \(path): \((error as NSError).localizedDescription)")
        }
    }

    /// An error from NIOSSL as one line.
    private static func describe(_ error: any Error) -> String {
        String(describing: error).split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    /// A new server-side TLS handler for one connection.
    func makeHandler() -> NIOSSLServerHandler {
        NIOSSLServerHandler(context: context)
    }
}

/// Sits right after the TLS handler: hides the TLS errors that are not worth closing a connection over, and
/// logs and counts failed handshakes (at notice level: a wrong certificate or a client that speaks plain TCP to the
/// TLS port shows up nowhere else on the server).
///
/// A client that closes its TCP connection, or only its sending side, without a TLS `close_notify` is what
/// NIOSSL reports as `NIOSSLError.uncleanShutdown`. The protocol treats the end of a client's input the same with
/// or without TLS (the server answers what it has received, then closes: PROTOCOL.md, Connections), so the error
/// is dropped here and the `inputClosed` event or the channel's inactivity that NIOSSL sends after it does the
/// rest. Every other error goes on to the connection handler, which closes the connection.
final class TLSErrorFilter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let logger: Logger
    private let metrics: ServerMetrics

    init(logger: Logger, metrics: ServerMetrics) {
        self.logger = logger
        self.metrics = metrics
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? NIOSSLError {
            switch error {
            case .uncleanShutdown:
                return
            case .handshakeFailed:
                metrics.tlsHandshakeFailures.increment()
                logger.notice(
                    "TLS handshake failed",
                    metadata: [
                        "remote": "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")", "error": "\(error)",
                    ])
            default:
                break
            }
        }
        context.fireErrorCaught(error)
    }
}
