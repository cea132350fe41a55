import Foundation
import LoglineClient
import LoglineCore
import LoglineProtocol
import NIOCore
import Testing

@testable import LoglineServer

#if canImport(Glibc)
    import Glibc
#endif

/// Tokens and roles: the pure parts (token files, constant-time comparison, the role table, the loopback rule)
/// and a real server with tokens, over raw sockets, the Swift client, redis-cli and the `logline` executable.
@Suite("Authentication and roles")
struct AuthTests {
    static let writer = "rw-0123456789abcdef"
    static let reader = "ro-0123456789abcdef"

    /// A server that requires a token: one read-write, one read-only.
    static func startServer() async throws -> RunningServer {
        try await RunningServer.start {
            $0.tokens = [
                AccessToken(role: .readWrite, token: writer), AccessToken(role: .readOnly, token: reader),
            ]
        }
    }

    // MARK: - Token files

    @Test func tokenFileWithRolesCommentsBlankLinesAndCRLF() throws {
        let contents =
            "# producers\r\n\r\nread-write  aaaaaaaaaaaaaaaa\r\n  # readers\nread-only\tbbbbbbbbbbbbbbbb\n"
            + "cccccccccccccccc-no-role\n   \n"
        let tokens = try AccessToken.parseFile(contents: contents)
        #expect(
            tokens == [
                AccessToken(role: .readWrite, token: "aaaaaaaaaaaaaaaa"),
                AccessToken(role: .readOnly, token: "bbbbbbbbbbbbbbbb"),
                AccessToken(role: .readWrite, token: "cccccccccccccccc-no-role"),
            ])
    }

    @Test(
        arguments: [
            ("", "no tokens"),
            ("# only a comment\n\n", "no tokens"),
            ("admin aaaaaaaaaaaaaaaa\n", "line 1: unknown role 'admin'"),
            ("read-write aaaaaaaaaaaaaaaa\nread-only short\n", "line 2: a token must be at least 16 characters"),
            ("read-only\n", "line 1: a token must be at least 16 characters"),
            ("read-only aaaaaaaaaaaaaaaa extra\n", "line 1: expected '<role> <token>', found 3 words"),
            ("read-only aaaaaaaaaaaaaaaa\nread-write aaaaaaaaaaaaaaaa\n", "line 2: the same token as line 1"),
            ("read-only aaaaaaaaaaaaaaaa\u{e9}\n", "line 1: a token must be printable ASCII"),
        ])
    func badTokenFilesAreRefused(contents: String, message: String) {
        let error = #expect(throws: LoglineServer.ConfigurationError.self) {
            try AccessToken.parseFile(contents: contents)
        }
        #expect(error?.message.hasPrefix(message) == true, "\(String(describing: error))")
    }

    @Test func errorsAndDescriptionsNeverShowTheSecret() {
        let token = AccessToken(role: .readOnly, token: "s3cret-s3cret-s3cret")
        #expect(!token.description.contains("s3cret"))
        do {
            _ = try AccessToken.parseFile(contents: "root s3cret-s3cret-s3cret\n")
            Issue.record("parsed")
        } catch {
            #expect(!error.message.contains("s3cret"))
        }
    }

    // MARK: - Constant-time comparison

    @Test func constantTimeComparison() {
        let token = Array("0123456789abcdef".utf8)
        #expect(ConstantTime.equals(token, token))
        #expect(ConstantTime.equals([], []))
        #expect(!ConstantTime.equals(token, Array("0123456789abcdeF".utf8)))
        #expect(!ConstantTime.equals(token, Array("X123456789abcdef".utf8)))
        #expect(!ConstantTime.equals(token, Array("0123456789abcde".utf8)))
        #expect(!ConstantTime.equals(token, Array("0123456789abcdef\0".utf8)))
        #expect(!ConstantTime.equals(token, token + token))
        #expect(!ConstantTime.equals([], token))
        #expect(!ConstantTime.equals(token, []))
        #expect(!ConstantTime.equals([0], []))
    }

    @Test func tokenTableFindsTheRoleOfEachToken() {
        let table = TokenTable([
            AccessToken(role: .readWrite, token: Self.writer), AccessToken(role: .readOnly, token: Self.reader),
        ])
        #expect(table.isEnabled)
        #expect(table.role(for: Array(Self.writer.utf8)) == .readWrite)
        #expect(table.role(for: Array(Self.reader.utf8)) == .readOnly)
        #expect(table.role(for: Array(Self.reader.dropLast().utf8)) == nil)
        #expect(table.role(for: []) == nil)
        #expect(!TokenTable([]).isEnabled)
    }

    // MARK: - The role table

    /// Parses one inline request.
    static func request(_ line: String) throws -> Request {
        try RequestParser().parse(.inline(ByteBuffer(string: line)))
    }

    @Test func everyVerbHasTheAccessItNeeds() throws {
        let open = [
            "PING", "QUIT", "AUTH x", "AUTH user x", "COMMAND", "CONFIG GET save", "CLIENT SETNAME a",
            "SELECT 0", "ECHO hi",
        ]
        let reads = [
            "READ order o1", "READALL", "INFO", "GET orders o1", "QUERY orders", "VIEWS", "PROJECTIONS",
            "PARKED orders", "SUBSCRIBE", "UNSUBSCRIBE", "GROUPS", "FETCH g w1", "ACK g 1", "NACK g 1",
            "PENDING g", "DEAD g",
        ]
        let writes = [
            "APPEND order o1 e {}", #"APPENDMANY order o1 [{"event_type":"e","data":{}}]"#, "SUBMIT create-order {}",
            "REBUILD orders", "RETRY orders 1", "SKIP orders 1", "GROUP CREATE g", "GROUP DELETE g",
        ]
        for line in open {
            #expect(try Self.request(line).requiredAccess == .unauthenticated, "\(line)")
            #expect(RequestFrame.inline(ByteBuffer(string: line)).isAllowedBeforeAuthentication, "\(line)")
        }
        for line in reads + writes {
            #expect(!RequestFrame.inline(ByteBuffer(string: line)).isAllowedBeforeAuthentication, "\(line)")
        }
        for line in reads { #expect(try Self.request(line).requiredAccess == .read, "\(line)") }
        for line in writes { #expect(try Self.request(line).requiredAccess == .write, "\(line)") }
        #expect(AccessToken.Role.readOnly.permits(.read))
        #expect(!AccessToken.Role.readOnly.permits(.write))
        #expect(AccessToken.Role.readWrite.permits(.write))
        #expect(try Self.request("auth default sesame-sesame-1234") == .auth(token: Array("sesame-sesame-1234".utf8)))
        #expect(try Self.request("AUTH sesame-sesame-1234") == .auth(token: Array("sesame-sesame-1234".utf8)))
        #expect(throws: RequestError.self) { try Self.request("AUTH") }
        #expect(throws: RequestError.self) { try Self.request("AUTH a b c") }
    }

    // MARK: - The loopback rule

    @Test func onlyLoopbackAddressesAreLoopback() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "localhost", "LocalHost", "::ffff:127.0.0.1"] {
            #expect(LoglineServer.Configuration.isLoopback(host), "\(host)")
        }
        for host in ["0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "example.com", "::2", "", "127.0.0.1.nip.io"] {
            #expect(!LoglineServer.Configuration.isLoopback(host), "\(host)")
        }
    }

    @Test func configurationRefusesANonLoopbackAddressWithoutTokens() throws {
        var configuration = LoglineServer.Configuration()
        try configuration.validate()
        configuration.host = "0.0.0.0"
        #expect(throws: LoglineServer.ConfigurationError.self) { try configuration.validate() }
        configuration.insecure = true
        try configuration.validate()
        configuration.insecure = false
        configuration.tokens = [AccessToken(role: .readOnly, token: Self.reader)]
        try configuration.validate()
        configuration.tokens.append(AccessToken(role: .readWrite, token: "too-short"))
        #expect(throws: LoglineServer.ConfigurationError.self) { try configuration.validate() }
        configuration.tokens = [
            AccessToken(role: .readOnly, token: Self.reader), AccessToken(role: .readWrite, token: Self.reader),
        ]
        #expect(throws: LoglineServer.ConfigurationError.self) { try configuration.validate() }
    }

    // MARK: - A server with tokens

    @Test func everythingButTheOpenVerbsNeedsAuthAndNothingIsWritten() async throws {
        let server = try await Self.startServer()
        let connection = try RawConnection(port: server.port)
        try connection.send(
            "APPEND order o1 e {}\r\n"
                + "*5\r\n$6\r\nAPPEND\r\n$5\r\norder\r\n$2\r\no1\r\n$1\r\ne\r\n$2\r\n{}\r\n"
                + #"APPENDMANY order o1 [{"event_type":"e","data":{}}]"# + "\r\n"
                + "READ order o1\r\nINFO\r\nGROUP CREATE g\r\nSUBSCRIBE\r\nNOPE\r\n"
                + "PING\r\nCOMMAND\r\nCONFIG GET save\r\nCLIENT SETNAME x\r\nSELECT 0\r\nECHO hi\r\n")
        let replies = try await connection.readReplies(14).components(separatedBy: "\r\n")
        let noAuth = "-NOAUTH authentication required; send AUTH <token>"
        #expect(Array(replies.prefix(8)) == Array(repeating: noAuth, count: 8))
        #expect(replies[8] == "+PONG")
        #expect(replies.contains("+OK"))
        #expect(replies.contains("hi"))
        #expect(server.log.headPosition == 0)
        #expect(try server.log.info().eventCount == 0)
        // No group was created either.
        try connection.send("AUTH \(Self.writer)\r\nGROUPS\r\n")
        #expect(try await connection.readReplies(2) == "+OK\r\n*0\r\n")
        await server.stop()
    }

    @Test func wrongTokenThenRightToken() async throws {
        let server = try await Self.startServer()
        let connection = try RawConnection(port: server.port)
        try connection.send("AUTH not-the-token-at-all\r\nAPPEND order o1 e {}\r\n")
        #expect(
            try await connection.readReplies(2)
                == "-NOAUTH invalid token\r\n-NOAUTH authentication required; send AUTH <token>\r\n")
        // Pipelined: the APPEND is judged after the AUTH before it.
        try connection.send("AUTH \(Self.writer)\r\nAPPEND order o1 e {}\r\n")
        let replies = try await connection.readReplies(2)
        #expect(replies.hasPrefix("+OK\r\n$"))
        #expect(replies.contains(#""position":1"#))
        // A failed AUTH keeps the role the connection has, as in Redis.
        try connection.send("AUTH still-not-the-token\r\nAPPEND order o1 e {}\r\n")
        let after = try await connection.readReplies(2)
        #expect(after.hasPrefix("-NOAUTH invalid token\r\n$"))
        #expect(server.log.headPosition == 2)
        // The two-argument form of Redis 6 clients: the username is ignored.
        let other = try RawConnection(port: server.port)
        try other.send(
            "*3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$\(Self.reader.utf8.count)\r\n\(Self.reader)\r\nREAD order o1\r\n")
        let read = try await other.readReplies(2)
        #expect(read.hasPrefix("+OK\r\n*2\r\n"))
        await server.stop()
    }

    @Test func readOnlyTokenReadsAndConsumesButCannotWrite() async throws {
        let server = try await Self.startServer()
        let writer = try await LoglineClient.connect(port: server.port, token: Self.writer)
        let stream = try StreamName(aggregateType: "order", aggregateID: "o1")
        _ = try await writer.append(to: stream, eventType: "order-created", data: #"{"a":1}"#)
        try await writer.createGroup("g")
        await writer.close()

        let connection = try RawConnection(port: server.port)
        try connection.send("AUTH \(Self.reader)\r\n")
        #expect(try await connection.readReplies(1) == "+OK\r\n")
        let refused = [
            "APPEND order o1 e {}", #"APPENDMANY order o1 [{"event_type":"e","data":{}}]"#,
            "SUBMIT create-order {}", "REBUILD orders", "RETRY orders 1", "SKIP orders 1", "GROUP CREATE h",
            "GROUP DELETE g",
        ]
        try connection.send(refused.map { $0 + "\r\n" }.joined())
        let refusals = try await connection.readReplies(refused.count).components(separatedBy: "\r\n").filter {
            !$0.isEmpty
        }
        #expect(refusals == Array(repeating: "-NOPERM this token is read-only", count: refused.count))

        try connection.send("READ order o1\r\nREADALL\r\nINFO\r\nVIEWS\r\nPROJECTIONS\r\nGROUPS\r\nPING\r\n")
        let reads = try await connection.readReplies(7)
        #expect(!reads.contains("-NOPERM") && !reads.contains("-NOAUTH"))
        #expect(reads.contains(#""event_type":"order-created""#))
        // GET and QUERY pass the role check (this server has no views, hence NOTFOUND, not NOPERM).
        try connection.send("GET orders o1\r\nQUERY orders\r\nPARKED orders\r\n")
        let views = try await connection.readReplies(3)
        #expect(!views.contains("-NOPERM"))
        // Consuming a group: FETCH, NACK, FETCH again, ACK, PENDING, DEAD.
        try connection.send("FETCH g w1\r\nNACK g 1\r\nFETCH g w1\r\nACK g 1\r\nPENDING g\r\nDEAD g\r\n")
        let consumed = try await connection.readReplies(6)
        #expect(!consumed.hasPrefix("-") && !consumed.contains("\r\n-"))
        #expect(consumed.contains(#""delivery_count":2"#))
        #expect(consumed.hasSuffix(":1\r\n*0\r\n*0\r\n"))
        #expect(server.log.headPosition == 1)

        // The Swift client with the read-only token: reads, subscribes and consumes; appends are refused.
        let reader = try await LoglineClient.connect(port: server.port, token: Self.reader)
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
        #expect(try await reader.groups().first?.pending == 0)
        await reader.close()
        #expect(server.log.headPosition == 1)
        await server.stop()
    }

    @Test func clientWithAWrongTokenOrNoneIsRefused() async throws {
        let server = try await Self.startServer()
        do {
            _ = try await LoglineClient.connect(port: server.port, token: "wrong-wrong-wrong-wrong")
            Issue.record("connected with a wrong token")
        } catch {
            #expect(error.code == .noAuth)
        }
        let anonymous = try await LoglineClient.connect(port: server.port)
        #expect(try await anonymous.ping() == "PONG")
        do {
            _ = try await anonymous.info()
            Issue.record("INFO without AUTH")
        } catch {
            #expect(error.code == .noAuth)
        }
        do {
            _ = try await anonymous.subscribe()
            Issue.record("SUBSCRIBE without AUTH")
        } catch {
            #expect(error.code == .noAuth)
        }
        // AUTH on an open client; its subscriptions then authenticate too.
        try await anonymous.auth(token: Self.reader)
        let subscription = try await anonymous.subscribe()
        await subscription.cancel()
        await anonymous.close()
        await server.stop()
    }

    @Test func tenFailedAuthsCloseTheConnection() async throws {
        let server = try await Self.startServer()
        let connection = try RawConnection(port: server.port)
        try connection.send(String(repeating: "AUTH wrong-wrong-wrong-wrong\r\n", count: 9) + "PING\r\n")
        let replies = try await connection.readReplies(10)
        #expect(replies.components(separatedBy: "-NOAUTH invalid token\r\n").count == 10)
        #expect(replies.hasSuffix("+PONG\r\n"))
        // The tenth failure is answered, then the connection closes; what follows is ignored, even a good token.
        try connection.send("AUTH wrong-wrong-wrong-wrong\r\nAUTH \(Self.writer)\r\nPING\r\n")
        let last = await connection.readToEnd()
        #expect(last.hasPrefix("-NOAUTH invalid token; 10 failed attempts, closing the connection\r\n"))
        #expect(!last.contains("+OK") && !last.contains("PONG"))
        // Other connections are not affected.
        let other = try RawConnection(port: server.port)
        try other.send("AUTH \(Self.writer)\r\n")
        #expect(try await other.readReplies(1) == "+OK\r\n")
        await server.stop()
    }

    @Test func withoutTokensAuthIsRefusedAndEverythingIsOpen() async throws {
        let server = try await RunningServer.start()
        let connection = try RawConnection(port: server.port)
        try connection.send("AUTH \(Self.writer)\r\nAPPEND order o1 e {}\r\n")
        let replies = try await connection.readReplies(2)
        #expect(replies.hasPrefix("-BADREQ AUTH is not enabled on this server"))
        #expect(replies.contains(#""position":1"#))
        await server.stop()
    }

    @Test(.enabled(if: which("redis-cli") != nil, "redis-cli is not installed"))
    func redisCLIWithAPassword() async throws {
        let server = try await Self.startServer()
        let redis = which("redis-cli")!
        let port = String(server.port)
        let refused = try await awaitBlocking(runProgram, redis, ["-p", port, "APPEND", "order", "o1", "e", "{}"])
        #expect(refused.output.contains("NOAUTH"))
        let append = try await awaitBlocking(
            runProgram,
            redis, ["-p", port, "-a", Self.writer, "--no-auth-warning", "APPEND", "order", "o1", "e", "{}"])
        #expect(append.output.contains(#""position":1"#))
        let read = try await awaitBlocking(
            runProgram,
            redis, ["-p", port, "--user", "default", "--pass", Self.reader, "--no-auth-warning", "READ", "order", "o1"])
        #expect(read.output.contains(#""position":1"#))
        let readOnly = try await awaitBlocking(
            runProgram,
            redis, ["-p", port, "-a", Self.reader, "--no-auth-warning", "APPEND", "order", "o1", "e", "{}"])
        #expect(readOnly.output.contains("NOPERM"))
        #expect(server.log.headPosition == 1)
        await server.stop()
    }
}

/// The `logline` executable: `serve` refuses bad token files and insecure addresses; the client subcommands
/// take `--token` and `LOGLINE_TOKEN`.
@Suite("Authentication in the logline executable", .serialized)
struct AuthProcessTests {
    /// Runs `logline` with `LOGLINE_TOKEN` unset unless `environment` sets it.
    static func logline(
        _ arguments: [String], environment: [String: String] = [:]
    ) async throws -> (status: Int32, output: String, error: String) {
        try await awaitBlocking { try runLogline(arguments, environment: environment) }
    }

    private static func runLogline(
        _ arguments: [String], environment: [String: String]
    ) throws -> (status: Int32, output: String, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try loglineExecutable())
        process.arguments = arguments
        var variables = ProcessInfo.processInfo.environment
        variables["LOGLINE_TOKEN"] = nil
        process.environment = variables.merging(environment) { _, new in new }
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        let errData = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (
            process.terminationStatus, String(decoding: outData, as: UTF8.self),
            String(decoding: errData, as: UTF8.self)
        )
    }

    /// A `logline serve` process; the port is read from its "listening on" line.
    final class Server: @unchecked Sendable {
        let process = Process()
        let port: Int
        /// What the server wrote on stderr up to its "listening on" line.
        let errors: String
        private let errorPipe = Pipe()

        init(_ arguments: [String]) throws {
            process.executableURL = URL(fileURLWithPath: try loglineExecutable())
            process.arguments = ["serve", "--port", "0", "--log-level", "warning"] + arguments
            process.standardError = errorPipe
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            var collected = ""
            let handle = errorPipe.fileHandleForReading
            while !collected.contains("logline: listening on") || !collected.hasSuffix("\n") {
                let data = handle.availableData
                guard !data.isEmpty else { throw TestFailure("server exited: \(collected)") }
                collected += String(decoding: data, as: UTF8.self)
            }
            guard let line = collected.split(separator: "\n").first(where: { $0.hasPrefix("logline: listening on") }),
                let range = line.range(of: #":[0-9]+,"#, options: .regularExpression),
                let port = Int(line[range].dropFirst().dropLast())
            else { throw TestFailure("no port in: \(collected)") }
            self.port = port
            self.errors = collected
        }

        /// Starts a server, waiting for it off the concurrency pool.
        static func start(_ arguments: [String]) async throws -> Server {
            try await awaitBlocking { try Server(arguments) }
        }

        func terminate() async {
            let process = Unchecked(process)
            _ = try? await awaitBlocking {
                process.value.terminate()
                process.value.waitUntilExit()
            }
        }
    }

    @Test func refusesToListenOnANonLoopbackAddressWithoutTokens() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let refused = try await Self.logline(["serve", "--host", "0.0.0.0", "--port", "0", "--data", directory.path])
        #expect(refused.status == 1)
        #expect(
            refused.error.hasPrefix("logline: error: refusing to listen on 0.0.0.0 without authentication"))
        #expect(refused.error.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: directory.path))

        let server = try await Server.start(["--host", "0.0.0.0", "--data", directory.path, "--insecure"])
        #expect(server.errors.contains("logline: warning: --insecure"))
        let connection = try RawConnection(port: server.port)
        try connection.send("PING\r\n")
        #expect(try await connection.readReplies(1) == "+PONG\r\n")
        await server.terminate()
        #expect(server.process.terminationStatus == 0)
    }

    @Test func refusesBadTokenFiles() async throws {
        let directory = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        defer { directory.remove() }
        let data = directory.path + "/store"
        let cases: [(contents: String?, message: String)] = [
            (nil, "cannot read --auth-token-file"),
            ("# nothing\n", "no tokens"),
            ("owner aaaaaaaaaaaaaaaa\n", "line 1: unknown role 'owner'"),
            ("read-only 123456789012345\n", "line 1: a token must be at least 16 characters"),
        ]
        for (index, item) in cases.enumerated() {
            let file = directory.path + "/tokens-\(index)"
            if let contents = item.contents {
                try contents.write(toFile: file, atomically: true, encoding: .utf8)
            }
            let result = try await Self.logline(["serve", "--port", "0", "--data", data, "--auth-token-file", file])
            #expect(result.status == 1, "\(item.message)")
            #expect(result.error.hasPrefix("logline: error: "), "\(item.message)")
            #expect(result.error.contains(item.message), "\(result.error)")
            #expect(result.error.split(separator: "\n").count == 1, "\(result.error)")
        }
        #expect(!FileManager.default.fileExists(atPath: data))
    }

    @Test func clientSubcommandsTakeATokenOrLOGLINE_TOKEN() async throws {
        let directory = TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        defer { directory.remove() }
        let file = directory.path + "/tokens"
        try "read-write \(AuthTests.writer)\nread-only \(AuthTests.reader)\n".write(
            toFile: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file)
        let server = try await Server.start(["--data", directory.path + "/store", "--auth-token-file", file])
        let port = String(server.port)
        let append = ["append", "order", "o1", "order-created", "{}", "--port", port]

        let anonymous = try await Self.logline(append)
        #expect(anonymous.status == 1)
        #expect(anonymous.error.hasPrefix("logline: error: NOAUTH"))
        let wrong = try await Self.logline(append + ["--token", "wrong-wrong-wrong-wrong"])
        #expect(wrong.status == 1)
        #expect(wrong.error == "logline: error: NOAUTH invalid token\n")
        let written = try await Self.logline(append + ["--token", AuthTests.writer])
        #expect(written.status == 0)
        #expect(written.output.contains(#""position":1"#))
        let readOnly = try await Self.logline(append, environment: ["LOGLINE_TOKEN": AuthTests.reader])
        #expect(readOnly.status == 1)
        #expect(readOnly.error == "logline: error: NOPERM this token is read-only\n")
        let read = try await Self.logline(
            ["read", "order", "o1", "--port", port], environment: ["LOGLINE_TOKEN": AuthTests.reader])
        #expect(read.status == 0)
        #expect(read.output.contains(#""event_type":"order-created""#))
        // --token wins over LOGLINE_TOKEN.
        let both = try await Self.logline(
            append + ["--token", AuthTests.writer], environment: ["LOGLINE_TOKEN": AuthTests.reader])
        #expect(both.status == 0)
        await server.terminate()
    }
}

/// A value that crosses to another thread where the test knows it is used by one thread at a time.
private struct Unchecked<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// `runProgram` off the concurrency pool.
private func awaitBlocking(
    _ run: @escaping @Sendable (String, [String]) throws -> (status: Int32, output: String, error: String),
    _ path: String, _ arguments: [String]
) async throws -> (status: Int32, output: String, error: String) {
    try await awaitBlocking { try run(path, arguments) }
}
