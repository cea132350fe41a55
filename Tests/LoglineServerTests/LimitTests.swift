import Foundation
import LoglineCore
import Testing

/// Connection limits: how many at once, and how long one may stay silent with nothing in flight.
@Suite("Connection limits")
struct LimitTests {
    @Test func aConnectionOverTheLimitIsRefusedAndOthersCarryOn() async throws {
        let server = try await RunningServer.start { $0.maximumConnections = 2 }
        let first = try RawConnection(port: server.port)
        let second = try RawConnection(port: server.port)
        try first.send("PING\r\n")
        #expect(try first.readReplies(1) == "+PONG\r\n")
        try second.send("PING\r\n")
        #expect(try second.readReplies(1) == "+PONG\r\n")
        let third = try RawConnection(port: server.port)
        #expect(third.readToEnd().hasPrefix("-UNAVAILABLE too many connections (limit 2)"))
        try first.send("PING\r\n")
        #expect(try first.readReplies(1) == "+PONG\r\n")
        await server.stop()
    }

    @Test func aSilentConnectionIsClosedButASubscriberOrABlockedFetchIsNot() async throws {
        let server = try await RunningServer.start { $0.idleTimeout = .milliseconds(300) }
        let subscriber = try RawConnection(port: server.port)
        try subscriber.send("SUBSCRIBE\r\n")
        _ = try subscriber.readReplies(1)
        let fetcher = try RawConnection(port: server.port)
        try fetcher.send("GROUP CREATE g\r\nFETCH g c BLOCK 10000\r\n")
        _ = try fetcher.readReplies(1)
        // A connection opened after those two, silent after one request: the server closes it by itself, and
        // reading to the end returns once it has. By then the other two have been silent longer still.
        let silent = try RawConnection(port: server.port)
        try silent.send("PING\r\n")
        #expect(try silent.readReplies(1) == "+PONG\r\n")
        #expect(silent.readToEnd().hasPrefix("-TIMEOUT idle for"))
        // Well past the idle timeout, both are still served.
        let writer = try RawConnection(port: server.port)
        try writer.send("APPEND order o1 e {}\r\n")
        _ = try writer.readReplies(1)
        let pushed = try subscriber.readReplies(1)
        #expect(pushed.contains("message"))
        let fetched = try fetcher.readReplies(1)
        #expect(fetched.contains("\"delivery_count\":1"))
        try subscriber.send("PING\r\n")
        #expect(try subscriber.readReplies(1).contains("pong"))
        await server.stop()
    }
}
