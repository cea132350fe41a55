import NIOCore
import NIOSSL
import NIOTLS

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// TLS for a client's connections, to a server started with `logline serve --tls-cert CERT --tls-key KEY`.
///
/// Give it to ``LoglineClient/connect(host:port:token:tls:eventLoopGroup:)``: every connection of the client, those
/// of its subscriptions and consumers included, then speaks TLS 1.2 or later, and checks the server's certificate
/// against the trust roots and the server's name.
///
/// ```swift
/// let client = try await LoglineClient.connect(
///     host: "logline.internal", port: 7480, token: token, tls: ClientTLS(caFile: "/etc/logline/ca.pem"))
/// ```
public struct ClientTLS: Hashable, Sendable {
    /// The PEM file of the certificates to trust: a private CA, or the server's own self-signed certificate.
    /// `nil`: the system's trust roots (for a server whose certificate a public CA signed).
    ///
    /// When set, only these certificates are trusted, not the system's too.
    public var caFile: String?
    /// The name the server's certificate must carry (and the name sent as SNI). `nil` (the default): the host the
    /// client connects to, whether a name or an IP address (which the certificate must then list as an IP
    /// subject alternative name).
    ///
    /// A certificate that lists the IP address the client connected to is accepted too, whatever the name: the
    /// address is then what the certificate vouches for.
    public var serverName: String?
    /// How long a connection waits for the TLS handshake to finish before it gives up (a server that does not
    /// speak TLS may never answer one); 10 seconds by default.
    public var handshakeTimeout: Duration

    /// Creates TLS settings.
    /// - Parameters:
    ///   - caFile: The PEM file of the certificates to trust; `nil` (the default): the system's trust roots.
    ///   - serverName: The name to check the server's certificate against; `nil` (the default): the host
    ///     connected to.
    ///   - handshakeTimeout: How long to wait for the TLS handshake (10 seconds by default).
    public init(caFile: String? = nil, serverName: String? = nil, handshakeTimeout: Duration = .seconds(10)) {
        self.caFile = caFile
        self.serverName = serverName
        self.handshakeTimeout = handshakeTimeout
    }
}

/// A ``ClientTLS`` made ready for connections: the NIOSSL context, built once per client and shared by the
/// connections of its subscriptions and consumers.
struct ClientTLSContext: Sendable {
    let settings: ClientTLS
    private let context: NIOSSLContext
    /// The SNI name and the name checked against the certificate; `nil` for an IP address (NIOSSL then checks the
    /// certificate against the peer's address).
    private let serverHostname: String?

    /// Loads the trust roots and builds the context.
    /// - Throws: ``LoglineClientError/connectionFailed(_:)`` when the CA file cannot be read or holds no
    ///   certificate.
    init(_ settings: ClientTLS, host: String) throws(LoglineClientError) {
        self.settings = settings
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        if let path = settings.caFile {
            guard let file = fopen(path, "rb") else {
                throw .connectionFailed("cannot read the TLS CA file \(path): \(String(cString: strerror(errno)))")
            }
            fclose(file)
            let certificates: [NIOSSLCertificate]
            do {
                certificates = try NIOSSLCertificate.fromPEMFile(path)
            } catch {
                throw .connectionFailed("the TLS CA file \(path) is not a PEM certificate file (\(error))")
            }
            guard !certificates.isEmpty else {
                throw .connectionFailed("the TLS CA file \(path) holds no PEM certificate")
            }
            configuration.trustRoots = .certificates(certificates)
        } else {
            configuration.trustRoots = .default
        }
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw .connectionFailed("cannot set up TLS: \(error)")
        }
        let name = settings.serverName ?? host
        let isAddress = (try? SocketAddress(ipAddress: name, port: 0)) != nil
        serverHostname = isAddress ? nil : name
    }

    /// Adds the TLS handler, first in a new connection's pipeline, and a watcher after it.
    /// - Returns: A future that succeeds when the handshake is done, and fails with the reason it failed; after
    ///   ``ClientTLS/handshakeTimeout`` it fails, and the connection closes.
    func addHandlers(to channel: any Channel) throws -> EventLoopFuture<Void> {
        let handshake = channel.eventLoop.makePromise(of: Void.self)
        try channel.pipeline.syncOperations.addHandler(
            NIOSSLClientHandler(context: context, serverHostname: serverHostname))
        try channel.pipeline.syncOperations.addHandler(TLSConnectionWatcher(handshake: handshake))
        let limit = settings.handshakeTimeout
        let timeout = channel.eventLoop.scheduleTask(in: TimeAmount(limit)) {
            handshake.fail(HandshakeTimeout(limit: limit))
            channel.close(promise: nil)
        }
        handshake.futureResult.whenComplete { _ in timeout.cancel() }
        return handshake.futureResult
    }
}

/// The TLS handshake took longer than ``ClientTLS/handshakeTimeout``.
struct HandshakeTimeout: Error, CustomStringConvertible {
    let limit: Duration
    var description: String { "no TLS handshake within \(limit) (does the server speak TLS?)" }
}

/// Follows a client TLS connection, right after the TLS handler: completes the handshake promise, and hides
/// NIOSSL's `uncleanShutdown` (a server that closed without `close_notify`), so that the handlers after it see the
/// same closed connection as without TLS.
final class TLSConnectionWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let handshake: EventLoopPromise<Void>

    init(handshake: EventLoopPromise<Void>) {
        self.handshake = handshake
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            handshake.succeed()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        handshake.fail(error)
        if let error = error as? NIOSSLError, case .uncleanShutdown = error { return }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshake.fail(LoglineClientError.connectionClosed)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        handshake.fail(LoglineClientError.connectionClosed)
    }
}
