import Foundation
import Logging
import LoglineClient
import LoglineCore
import LoglineMetricsEndpoint
import NIOCore
import NIOEmbedded
import NIOSSL
import Prometheus
import Testing

@testable import LoglineServer

#if canImport(Glibc)
    import Glibc
#endif

/// A self-signed certificate for `localhost` and 127.0.0.1, made with openssl in a temporary directory.
struct TestCertificate {
    let directory: TemporaryDirectory
    let certificate: String
    let key: String

    /// Runs `openssl req -x509` (RSA 2048, one day). Fails, rather than skips, when openssl is missing.
    init(name: String = "server", alternativeNames: String = "DNS:localhost,IP:127.0.0.1") throws {
        guard let openssl = which("openssl") else {
            throw TestFailure(
                "openssl is not on PATH: the TLS tests need it to make a certificate (apt-get install openssl)")
        }
        directory = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        certificate = directory.path + "/\(name)-cert.pem"
        key = directory.path + "/\(name)-key.pem"
        let result = try runProgram(
            openssl,
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate, "-days", "1",
                "-subj", "/CN=localhost", "-addext", "subjectAltName=\(alternativeNames)",
            ])
        guard result.status == 0 else {
            directory.remove()
            throw TestFailure("openssl req failed (\(result.status)): \(result.error)")
        }
    }

    /// The server's TLS settings.
    func serverTLS() throws -> ServerTLS {
        try ServerTLS(certificateChainFile: certificate, privateKeyFile: key)
    }

    /// Client TLS settings that trust this certificate.
    var clientTLS: ClientTLS { ClientTLS(caFile: certificate) }

    func remove() { directory.remove() }
}

/// Whether this redis-cli was built with TLS (`--tls`, `--cacert`).
let redisCLISupportsTLS: Bool = {
    guard let redis = which("redis-cli"), let help = try? runProgram(redis, ["--help"]) else { return false }
    return (help.output + help.error).contains("--tls") && (help.output + help.error).contains("--cacert")
}()

/// TLS on the server's port (`ServerTLS`, `logline serve --tls-cert --tls-key`) and in the client (`ClientTLS`,
/// `--tls`, `--tls-ca`): round trips, subscriptions and consumers over TLS, tokens over TLS, plain clients
/// refused, redis-cli `--tls`, and bad certificate and key files.
@Suite("TLS")
struct TLSTests {
    static let writer = "rw-tls-0123456789abcdef"
    static let reader = "ro-tls-0123456789abcdef"

    static func startServer(
        _ certificate: TestCertificate, tokens: [AccessToken] = []
    ) async throws -> RunningServer {
        let tls = try certificate.serverTLS()
        return try await RunningServer.start {
            $0.tls = tls
            $0.tokens = tokens
        }
    }

    // MARK: - Certificates and keys

    @Test func serverTLSLoadsACertificateAndItsKey() throws {
        let certificate = try TestCertificate()
        defer { certificate.remove() }
        let tls = try certificate.serverTLS()
        #expect(tls.certificateCount == 1)
        let pem = try ServerTLS(
            certificateChainPEM: Array(try Data(contentsOf: URL(fileURLWithPath: certificate.certificate))),
            privateKeyPEM: Array(try Data(contentsOf: URL(fileURLWithPath: certificate.key))))
        #expect(pem.certificateCount == 1)
    }

    @Test func badCertificatesAndKeysAreRefused() throws {
        let first = try TestCertificate(name: "first")
        defer { first.remove() }
        let second = try TestCertificate(name: "second")
        defer { second.remove() }
        let missing = first.directory.path + "/missing.pem"
        let garbage = first.directory.path + "/garbage.pem"
        try "not a certificate\n".write(toFile: garbage, atomically: true, encoding: .utf8)

        func refusal(_ certificate: String, _ key: String) -> String {
            do {
                _ = try ServerTLS(certificateChainFile: certificate, privateKeyFile: key)
                return "accepted"
            } catch {
                return error.message
            }
        }
        #expect(refusal(missing, first.key).hasPrefix("cannot read TLS certificate file \(missing): "))
        #expect(refusal(first.certificate, missing).hasPrefix("cannot read TLS key file \(missing): "))
        #expect(refusal(garbage, first.key).hasPrefix("TLS certificate file \(garbage): "))
        #expect(refusal(first.certificate, garbage).hasPrefix("TLS key file \(garbage): not an unencrypted PEM"))
        // A certificate given as the key, and a key that belongs to another certificate.
        #expect(refusal(first.certificate, first.certificate).hasPrefix("TLS key file \(first.certificate): "))
        let mismatch = refusal(first.certificate, second.key)
        #expect(mismatch.hasPrefix("TLS key file \(second.key) does not match"), "\(mismatch)")
        for message in [refusal(missing, first.key), mismatch, refusal(first.certificate, garbage)] {
            #expect(!message.contains("\n"), "\(message)")
            #expect(!message.contains("PRIVATE KEY"), "\(message)")
        }
    }

    @Test func aNonLoopbackAddressNeedsTokensWithTLSToo() throws {
        let certificate = try TestCertificate()
        defer { certificate.remove() }
        var configuration = LoglineServer.Configuration()
        configuration.host = "0.0.0.0"
        configuration.tls = try certificate.serverTLS()
        #expect(throws: LoglineServer.ConfigurationError.self) { try configuration.validate() }
        configuration.tokens = [AccessToken(role: .readWrite, token: Self.writer)]
        try configuration.validate()
    }

    /// A client that shuts down its side without a TLS close_notify is treated as one that shut down a plain TCP
    /// connection: the error NIOSSL reports for it goes no further than the filter, other errors do.
    @Test func theErrorFilterDropsOnlyUncleanShutdowns() throws {
        final class Recorder: ChannelInboundHandler {
            typealias InboundIn = ByteBuffer
            var errors: [String] = []
            func errorCaught(context: ChannelHandlerContext, error: any Error) { errors.append("\(error)") }
        }
        let recorder = Recorder()
        let channel = EmbeddedChannel()
        let registry = PrometheusCollectorRegistry()
        let metrics = ServerMetrics(factory: LoglineMetrics.makeFactory(registry: registry))
        try channel.pipeline.syncOperations.addHandler(TLSErrorFilter(logger: Logger(label: "test"), metrics: metrics))
        try channel.pipeline.syncOperations.addHandler(recorder)
        channel.pipeline.fireErrorCaught(NIOSSLError.uncleanShutdown)
        #expect(recorder.errors.isEmpty)
        channel.pipeline.fireErrorCaught(NIOSSLError.handshakeFailed(.sslError([])))
        channel.pipeline.fireErrorCaught(TestFailure("reset"))
        #expect(recorder.errors.count == 2)
        #expect(recorder.errors.last == "reset")
        // The failed handshake is counted; the unclean shutdown and the reset are not TLS handshake failures.
        #expect(registry.emitToString().contains("logline_tls_handshake_failures_total 1\n"))
        _ = try channel.finish()
    }

    // MARK: - The Swift client

    @Test func appendAndReadOverTLS() async throws {
        let certificate = try TestCertificate()
        defer { certificate.remove() }
        let server = try await Self.startServer(certificate)
        let client = try await LoglineClient.connect(port: server.port, tls: certificate.clientTLS)
        #expect(client.tls == certificate.clientTLS)
        #expect(try await client.ping() == "PONG")
        let stream = try StreamName(aggregateType: "order", aggregateID: "o1")
        let receipt = try await client.append(to: stream, eventType: "order-created", data: #"{"n":1}"#)
        #expect(receipt.position == 1)
        let many = try await client.appendMany(
            to: stream, events: [NewEvent(eventType: "a", data: "2"), NewEvent(eventType: "b", data: "3")])
        #expect(many.map(\.position) == [2, 3])
        let events = try await client.read(stream)
        #expect(events.map(\.eventType) == ["order-created", "a", "b"])
        #expect(events.first?.data == Array(#"{"n":1}"#.utf8))
        // Many requests pipelined over one TLS connection, replies in order.
        let versions = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<50 {
                group.addTask {
                    let other = try StreamName(aggregateType: "order", aggregateID: "p\(index)")
                    return Int(try await client.append(to: other, eventType: "e", data: "{}").position)
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(Set(versions).count == 50)
        #expect(server.log.headPosition == 53)
        await client.close()
        await server.stop()
    }

    @Test func subscriptionsAndConsumersUseTLSToo() async throws {
        let certificate = try TestCertificate()
        defer { certificate.remove() }
        let server = try await Self.startServer(certificate)
        let client = try await LoglineClient.connect(port: server.port, tls: certificate.clientTLS)
        let stream = try StreamName(aggregateType: "order", aggregateID: "o1")
        _ = try await client.append(to: stream, eventType: "first", data: "{}")

        let subscription = try await client.subscribe(from: .position(1))
        var seen: [String] = []
        _ = try await client.append(to: stream, eventType: "second", data: "{}")
        for try await event in subscription {
            seen.append(event.eventType)
            if seen.count == 2 { break }
        }
        #expect(seen == ["first", "second"])
        await subscription.cancel()

        try await client.createGroup("g", from: .position(1))
        let consumed = try await withThrowingTaskGroup(of: Void.self) { group in
            let (deliveries, continuation) = AsyncStream<String>.makeStream()
            group.addTask {
                // A consumer that fails ends the stream, so the loop below ends too.
                defer { continuation.finish() }
                try await client.consume(group: "g", consumer: "w1", block: .milliseconds(200)) { delivery in
                    continuation.yield(delivery.event.eventType)
                }
            }
            var types: [String] = []
            for await type in deliveries {
                types.append(type)
                if types.count == 2 { break }
            }
            group.cancelAll()
            try await group.waitForAll()
            return types
        }
        #expect(consumed == ["first", "second"])
        await client.close()
        await server.stop()
    }

    @Test func tokensOverTLS() async throws {
        let certificate = try TestCertificate()
        defer { certificate.remove() }
        let server = try await Self.startServer(
            certificate,
            tokens: [
                AccessToken(role: .readWrite, token: Self.writer), AccessToken(role: .readOnly, token: Self.reader),
            ])
        let stream = try StreamName(aggregateType: "order", aggregateID: "o1")

        let anonymous = try await LoglineClient.connect(port: server.port, tls: certificate.clientTLS)
        #expect(try await anonymous.ping() == "PONG")
        do {
            _ = try await anonymous.append(to: stream, eventType: "e", data: "{}")
            Issue.record("appended without a token")
        } catch {
            #expect(error.code == .noAuth)
        }
        await anonymous.close()
        do {
            _ = try await LoglineClient.connect(
                port: server.port, token: "wrong-wrong-wrong-wrong", tls: certificate.clientTLS)
            Issue.record("connected with a wrong token")
        } catch {
            #expect(error.code == .noAuth)
        }

        let writer = try await LoglineClient.connect(port: server.port, token: Self.writer, tls: certificate.clientTLS)
        #expect(try await writer.append(to: stream, eventType: "e", data: "{}").position == 1)
        await writer.close()

        // The read-only token: reads and subscribes (its subscription authenticates over TLS), may not append.
        let reader = try await LoglineClient.connect(port: server.port, token: Self.reader, tls: certificate.clientTLS)
        #expect(try await reader.read(stream).count == 1)
        do {
            _ = try await reader.append(to: stream, eventType: "e", data: "{}")
            Issue.record("a read-only token appended")
        } catch {
            #expect(error.code?.rawValue == "NOPERM")
        }
        let subscription = try await reader.subscribe(from: .position(1))
        for try await event in subscription {
            #expect(event.position == 1)
            break
        }
        await subscription.cancel()
        await reader.close()
        #expect(server.log.headPosition == 1)
        await server.stop()
    }

    // MARK: - Clients that do not match the server

    @Test func aPlainTCPClientGetsNoReplyAndIsDisconnected() async throws {
        let certificate = try TestCertificate()
        defer { certificate.remove() }
        let server = try await Self.startServer(certificate)

        let connection = try RawConnection(port: server.port)
        try connection.send("PING\r\nAPPEND order o1 e {}\r\n")
        let received = await connection.readToEnd()
        // The server closed the connection: a read now returns end of input at once (had readToEnd given up after
        // its 10 s without a close instead, this read would block as long again and fail).
        #expect(await connection.peerClosed())
        #expect(!received.contains("PONG") && !received.contains("position"))
        // Whatever came is a TLS alert record (0x15), never a RESP reply.
        if let first = received.utf8.first { #expect(first == 0x15) }

        let plain = try await LoglineClient.connect(port: server.port)
        do {
            _ = try await plain.ping()
            Issue.record("a plain client was answered")
        } catch {
            #expect(error == .connectionClosed || "\(error)".hasPrefix("cannot connect"), "\(error)")
        }
        await plain.close()
        #expect(server.log.headPosition == 0)
        await server.stop()
    }

    @Test func aTLSClientRefusesAnUntrustedCertificateOrAPlainServer() async throws {
        let certificate = try TestCertificate()
        defer { certificate.remove() }
        let other = try TestCertificate(name: "other")
        defer { other.remove() }
        let server = try await Self.startServer(certificate)
        // The system's trust roots, and another self-signed certificate, do not vouch for the server's.
        for tls in [ClientTLS(), other.clientTLS] {
            do {
                _ = try await LoglineClient.connect(port: server.port, tls: tls)
                Issue.record("trusted an unknown certificate with \(tls)")
            } catch {
                #expect("\(error)".contains("TLS handshake failed"), "\(error)")
            }
        }
        await server.stop()

        // A certificate for localhost only, without 127.0.0.1: checked against the server name when one is given,
        // else against the address connected to. (A certificate that lists the address passes either way.)
        let named = try TestCertificate(name: "named", alternativeNames: "DNS:localhost")
        defer { named.remove() }
        let namedServer = try await Self.startServer(named)
        for serverName in [nil, "example.com"] {
            do {
                _ = try await LoglineClient.connect(
                    port: namedServer.port, tls: ClientTLS(caFile: named.certificate, serverName: serverName))
                Issue.record("accepted a certificate without the name \(serverName ?? "127.0.0.1")")
            } catch {
                #expect("\(error)".contains("TLS handshake failed"), "\(error)")
            }
        }
        let byName = try await LoglineClient.connect(
            port: namedServer.port, tls: ClientTLS(caFile: named.certificate, serverName: "localhost"))
        #expect(try await byName.ping() == "PONG")
        await byName.close()
        // A CA file that cannot be read.
        do {
            _ = try await LoglineClient.connect(
                port: namedServer.port, tls: ClientTLS(caFile: certificate.directory.path + "/missing.pem"))
            Issue.record("connected with a missing CA file")
        } catch {
            #expect("\(error)".contains("cannot read the TLS CA file"), "\(error)")
        }
        await namedServer.stop()

        // A TLS client against a plain server fails within its handshake timeout.
        let plain = try await RunningServer.start()
        let started = ContinuousClock.now
        do {
            _ = try await LoglineClient.connect(
                port: plain.port, tls: ClientTLS(caFile: certificate.certificate, handshakeTimeout: .seconds(2)))
            Issue.record("a TLS handshake with a plain server succeeded")
        } catch {
            #expect("\(error)".contains("TLS handshake failed"), "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(8))
        await plain.stop()
    }

    // MARK: - redis-cli

    @Test(.enabled(if: redisCLISupportsTLS, "this redis-cli was built without TLS"))
    func redisCLIWithTLS() async throws {
        let certificate = try TestCertificate()
        defer { certificate.remove() }
        let server = try await Self.startServer(
            certificate, tokens: [AccessToken(role: .readWrite, token: Self.writer)])
        let redis = which("redis-cli")!
        let tls = ["--tls", "--cacert", certificate.certificate, "-p", String(server.port)]
        let ping = try await awaitBlocking { try runProgram(redis, tls + ["PING"]) }
        #expect(ping.output == "PONG\n", "\(ping)")
        let append = try await awaitBlocking {
            try runProgram(redis, tls + ["-a", Self.writer, "--no-auth-warning", "APPEND", "order", "o1", "e", "{}"])
        }
        #expect(append.output.contains(#""position":1"#), "\(append)")
        let read = try await awaitBlocking {
            try runProgram(redis, tls + ["-a", Self.writer, "--no-auth-warning", "READ", "order", "o1"])
        }
        #expect(read.output.contains(#""event_type":"e""#), "\(read)")
        // Without --tls, redis-cli gets no answer.
        let plain = try await awaitBlocking { try runProgram(redis, ["-p", String(server.port), "PING"]) }
        #expect(!plain.output.contains("PONG"), "\(plain)")
        #expect(server.log.headPosition == 1)
        await server.stop()
    }
}

/// `logline serve --tls-cert --tls-key` and the client subcommands' `--tls` and `--tls-ca`.
@Suite("TLS in the logline executable", .serialized)
struct TLSProcessTests {
    @Test func serveRefusesAMissingOrBadKeyBeforeOpeningTheLog() async throws {
        let certificate = try TestCertificate()
        defer { certificate.remove() }
        let other = try TestCertificate(name: "other")
        defer { other.remove() }
        let data = certificate.directory.path + "/store"
        let missing = certificate.directory.path + "/missing-key.pem"
        let cases: [(arguments: [String], message: String)] = [
            (["--tls-cert", certificate.certificate, "--tls-key", missing], "cannot read TLS key file \(missing): "),
            (["--tls-cert", missing, "--tls-key", certificate.key], "cannot read TLS certificate file \(missing): "),
            (["--tls-cert", certificate.certificate], "--tls-cert needs --tls-key"),
            (["--tls-key", certificate.key], "--tls-key needs --tls-cert"),
            (["--tls-cert", certificate.certificate, "--tls-key", other.key], "does not match"),
            (["--tls-cert", certificate.key, "--tls-key", certificate.key], "TLS certificate file"),
        ]
        for item in cases {
            let result = try await AuthProcessTests.logline(["serve", "--port", "0", "--data", data] + item.arguments)
            #expect(result.status == 1, "\(item.arguments)")
            #expect(result.error.hasPrefix("logline: error: "), "\(result.error)")
            #expect(result.error.contains(item.message), "\(result.error)")
            #expect(result.error.split(separator: "\n").count == 1, "\(result.error)")
        }
        #expect(!FileManager.default.fileExists(atPath: data))
    }

    @Test func serveWithTLSAndClientSubcommands() async throws {
        let certificate = try TestCertificate()
        defer { certificate.remove() }
        let tokens = certificate.directory.path + "/tokens"
        try "read-write \(TLSTests.writer)\n".write(toFile: tokens, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: tokens)
        let server = try await AuthProcessTests.Server.start([
            "--data", certificate.directory.path + "/store", "--tls-cert", certificate.certificate, "--tls-key",
            certificate.key, "--auth-token-file", tokens,
        ])
        #expect(server.errors.contains(", TLS\n"))
        let port = ["--port", String(server.port)]
        let trusted = port + ["--tls-ca", certificate.certificate, "--token", TLSTests.writer]

        let ping = try await AuthProcessTests.logline(["ping"] + trusted)
        #expect(ping.status == 0, "\(ping.error)")
        #expect(ping.output == "PONG\n")
        let append = try await AuthProcessTests.logline(["append", "order", "o1", "order-created", "{}"] + trusted)
        #expect(append.status == 0, "\(append.error)")
        #expect(append.output.contains(#""position":1"#))
        let read = try await AuthProcessTests.logline(["read", "order", "o1"] + trusted + ["--tls"])
        #expect(read.status == 0, "\(read.error)")
        #expect(read.output.contains(#""event_type":"order-created""#))

        // Plain TCP, and TLS with the system's trust roots, which do not know the self-signed certificate.
        let plain = try await AuthProcessTests.logline(["ping"] + port)
        #expect(plain.status == 1)
        #expect(plain.error.hasPrefix("logline: error: "))
        #expect(plain.error.contains("--tls"), "\(plain.error)")
        let untrusted = try await AuthProcessTests.logline(["ping", "--tls"] + port)
        #expect(untrusted.status == 1)
        #expect(untrusted.error.hasPrefix("logline: error: cannot connect: "), "\(untrusted.error)")
        #expect(untrusted.error.contains("TLS handshake failed"), "\(untrusted.error)")
        #expect(untrusted.error.split(separator: "\n").count == 1, "\(untrusted.error)")
        await server.terminate()
        #expect(server.process.terminationStatus == 0)
    }
}
