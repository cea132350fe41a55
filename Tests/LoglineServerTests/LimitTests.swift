import Foundation
import LoglineClient
import LoglineCore
import LoglineServer
import Testing

/// Connection limits: how many at once, and how long one may stay silent with nothing in flight.
@Suite("Connection limits")
struct LimitTests {
    @Test func aConnectionOverTheLimitIsRefusedAndOthersCarryOn() async throws {
        let server = try await RunningServer.start { $0.maximumConnections = 2 }
        let first = try RawConnection(port: server.port)
        let second = try RawConnection(port: server.port)
        try first.send("PING\r\n")
        #expect(try await first.readReplies(1) == "+PONG\r\n")
        try second.send("PING\r\n")
        #expect(try await second.readReplies(1) == "+PONG\r\n")
        let third = try RawConnection(port: server.port)
        #expect(await third.readToEnd().hasPrefix("-UNAVAILABLE too many connections (limit 2)"))
        try first.send("PING\r\n")
        #expect(try await first.readReplies(1) == "+PONG\r\n")
        await server.stop()
    }

    @Test func aSilentConnectionIsClosedButASubscriberOrABlockedFetchIsNot() async throws {
        let server = try await RunningServer.start { $0.idleTimeout = .milliseconds(300) }
        let subscriber = try RawConnection(port: server.port)
        try subscriber.send("SUBSCRIBE\r\n")
        _ = try await subscriber.readReplies(1)
        let fetcher = try RawConnection(port: server.port)
        try fetcher.send("GROUP CREATE g\r\nFETCH g c BLOCK 10000\r\n")
        _ = try await fetcher.readReplies(1)
        // A connection opened after those two, silent after one request: the server closes it by itself, and
        // reading to the end returns once it has. By then the other two have been silent longer still.
        let silent = try RawConnection(port: server.port)
        try silent.send("PING\r\n")
        #expect(try await silent.readReplies(1) == "+PONG\r\n")
        #expect(await silent.readToEnd().hasPrefix("-TIMEOUT idle for"))
        // Well past the idle timeout, both are still served.
        let writer = try RawConnection(port: server.port)
        try writer.send("APPEND order o1 e {}\r\n")
        _ = try await writer.readReplies(1)
        let pushed = try await subscriber.readReplies(1)
        #expect(pushed.contains("message"))
        let fetched = try await fetcher.readReplies(1)
        #expect(fetched.contains("\"delivery_count\":1"))
        try subscriber.send("PING\r\n")
        #expect(try await subscriber.readReplies(1).contains("pong"))
        await server.stop()
    }

    @Test("a client that pipelines without reading its replies stops being served; others are not affected")
    func aClientThatDoesNotReadIsNotReadFrom() async throws {
        let server = try await RunningServer.start()
        let other = try await server.client()
        // READALL COUNT 20 of these is a reply of about 44 KB.
        let padding = String(repeating: "x", count: 2000)
        for index in 0..<20 {
            _ = try await other.append(
                to: StreamName(aggregateType: "big", aggregateID: "b\(index)"), eventType: "e",
                data: #"{"padding":"\#(padding)"}"#)
        }
        // 1,000 appends, each followed by a READALL: 44 MB of replies if the server ran them all for a client that
        // reads none. Each append that runs shows in INFO's event_count.
        let greedy = try RawConnection(port: server.port, receiveBufferBytes: 4096)
        let pairs = 1000
        try greedy.send(String(repeating: "APPEND pipelined a e {}\r\nREADALL COUNT 20\r\n", count: pairs))
        // Wait until the server has stopped making progress on it: the same count for a second.
        var counts: [Int] = []
        while counts.count < 10 || Set(counts.suffix(10)).count > 1 {
            try await Task.sleep(for: .milliseconds(100))
            counts.append(try await Self.eventCount(other) - 20)
            if counts.count > 600 { break }
        }
        let served = counts.last ?? 0
        // What the kernel's socket buffers take (a few MB at most) bounds what runs: a hundred or so pairs.
        #expect(served > 0)
        #expect(served < pairs / 2, "\(served) of \(pairs) pairs ran for a client that reads nothing")
        // Meanwhile another client is served as usual.
        let receipt = try await other.append(
            to: StreamName(aggregateType: "order", aggregateID: "o1"), eventType: "e", data: "{}")
        #expect(try await other.read(StreamName(aggregateType: "order", aggregateID: "o1")).count == 1)
        #expect(receipt.version == 1)
        // Once the greedy client reads, every request is answered, in order, and nothing was lost.
        try greedy.send("QUIT\r\n")
        let text = await greedy.readToEnd()
        #expect(RawConnection.completeReplies(in: Array(text.utf8)) == 2 * pairs + 1)
        #expect(text.hasSuffix("+OK\r\n"))
        #expect(try await Self.eventCount(other) == 20 + pairs + 1)
        await other.close()
        await server.stop()
    }

    @Test("a client still sending a request over the size limit finishes sending and reads -TOOLARGE")
    func tooLargeReachesAClientThatIsStillSending() async throws {
        let server = try await RunningServer.start()
        let connection = try RawConnection(port: server.port)
        // 64 MB in one go, more than the socket buffers hold: the server refuses the request after the first
        // megabyte, while the client is still sending. Closing then, with input unread, would reset the connection:
        // the client's send would fail, and a client that has not yet read would lose the reply.
        try connection.send(Array(repeating: UInt8(ascii: "x"), count: 64 << 20))
        let text = await connection.readToEnd()
        #expect(text == "-TOOLARGE request exceeds the limit of 1048576 bytes\r\n")
        await server.stop()
    }

    @Test("a pipeline limit of one still answers every pipelined request, in order")
    func pipelineLimitOfOne() async throws {
        let server = try await RunningServer.start { $0.maximumPipelinedRequests = 1 }
        let connection = try RawConnection(port: server.port)
        var requests = ""
        for index in 1...100 {
            requests += "APPEND order o1 e {\"i\":\(index)}\r\nPING\r\n"
        }
        requests += "READ order o1 FROM 100\r\n"
        try connection.send(requests)
        let replies = try await connection.readReplies(201)
        #expect(RawConnection.completeReplies(in: Array(replies.utf8)) == 201)
        #expect(replies.components(separatedBy: "+PONG\r\n").count - 1 == 100)
        for version in [1, 50, 100] {
            #expect(replies.contains("\"version\":\(version),\"duplicate\":false"))
        }
        #expect(replies.hasSuffix(#""data":{"i":100},"metadata":{}}\#r\#n"#))
        await server.stop()
    }

    @Test("limits out of range are refused before the server starts")
    func limitsOutOfRange() throws {
        var configuration = LoglineServer.Configuration()
        try configuration.validate()
        let refusals: [(WritableKeyPath<LoglineServer.Configuration, Int>, Int, String)] = [
            (\.maximumRequestBytes, 1023, "--max-request-bytes must be at least 1024, not 1023"),
            (\.maximumPipelinedRequests, 0, "--max-pipelined must be at least 1, not 0"),
            (\.maximumConnections, 0, "--max-connections must be at least 1, not 0"),
        ]
        for (keyPath, value, message) in refusals {
            var bad = configuration
            bad[keyPath: keyPath] = value
            #expect(throws: LoglineServer.ConfigurationError(message)) { try bad.validate() }
        }
        configuration.idleTimeout = .zero
        #expect(throws: LoglineServer.ConfigurationError.self) { try configuration.validate() }
    }

    @Test("logline serve refuses a pipeline limit of 0 in one line, before it creates the data directory")
    func serveRefusesABadPipelineLimit() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let result = try runProgram(
            try loglineExecutable(), ["serve", "--data", directory.path, "--port", "0", "--max-pipelined", "0"])
        #expect(result.status == 1)
        #expect(result.error == "logline: error: --max-pipelined must be at least 1, not 0\n")
        #expect(!FileManager.default.fileExists(atPath: directory.path))
    }

    /// The `event_count` of INFO.
    static func eventCount(_ client: LoglineClient) async throws -> Int {
        Int(try await client.info().eventCount)
    }
}
