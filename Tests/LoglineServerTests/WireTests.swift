import Foundation
import LoglineCore
import LoglineLog
import Testing

/// Raw bytes on the socket, as netcat and redis-cli send them.
@Suite("Wire protocol over TCP")
struct WireTests {
    @Test func inlineAppendKeepsSpacesInJSONAndRepliesInRESP() async throws {
        let server = try await RunningServer.start()
        let connection = try RawConnection(port: server.port)
        try connection.send("APPEND order o2 order-created {\"a\": 1, \"b\": [1, 2]}\r\n")
        let reply = try await connection.readReplies(1)
        #expect(reply.hasPrefix("$"))
        #expect(reply.contains("\"position\":1"))
        try connection.send("READ order o2\n")
        let read = try await connection.readReplies(1)
        #expect(read.hasPrefix("*1\r\n"))
        #expect(read.contains(#""data":{"a": 1, "b": [1, 2]}"#))
        await server.stop()
    }

    @Test func pipelinedMixOfInlineAndRESPIsAnsweredInOrder() async throws {
        let server = try await RunningServer.start()
        let connection = try RawConnection(port: server.port)
        var batch = "PING\r\n"
        batch += "*5\r\n$6\r\nAPPEND\r\n$5\r\norder\r\n$2\r\no1\r\n$1\r\ne\r\n$1\r\n1\r\n"
        batch += "READ order o1\r\n"
        batch += "APPEND order o1 e EXPECT 0 2\r\n"
        batch += "NOPE\r\n"
        batch += "PING\r\n"
        try connection.send(batch)
        let replies = try await connection.readReplies(6)
        let lines = replies.components(separatedBy: "\r\n")
        #expect(lines[0] == "+PONG")
        #expect(lines[2].contains("\"position\":1"))
        #expect(lines[3] == "*1")
        #expect(lines.contains { $0.hasPrefix("-CONFLICT ") && $0.contains("version 1") })
        #expect(lines.contains { $0.hasPrefix("-BADREQ ") })
        #expect(lines.filter { $0 == "+PONG" }.count == 2)
        #expect(lines.last(where: { !$0.isEmpty }) == "+PONG")
        await server.stop()
    }

    @Test func garbageFramingGetsAnErrorAndTheConnectionCarriesOn() async throws {
        let server = try await RunningServer.start()
        let connection = try RawConnection(port: server.port)
        try connection.send("*abc\r\nPING\r\n")
        let replies = try await connection.readReplies(2)
        #expect(replies.hasPrefix("-BADREQ "))
        #expect(replies.hasSuffix("+PONG\r\n"))
        #expect(server.log.headPosition == 0)
        await server.stop()
    }

    @Test func oversizedRequestGetsTooLargeThenTheConnectionCloses() async throws {
        let server = try await RunningServer.start { $0.maximumRequestBytes = 4096 }
        let other = try RawConnection(port: server.port)
        let connection = try RawConnection(port: server.port)
        // Announce a bulk far over the limit; the server must answer before the body arrives.
        try connection.send("*5\r\n$6\r\nAPPEND\r\n$5\r\norder\r\n$2\r\no1\r\n$1\r\ne\r\n$100000000\r\n")
        let reply = await connection.readToEnd()
        #expect(reply.hasPrefix("-TOOLARGE "))
        // An inline line over the limit, too.
        let inline = try RawConnection(port: server.port)
        try inline.send("APPEND order o1 e \"" + String(repeating: "x", count: 8000))
        #expect(await inline.readToEnd().hasPrefix("-TOOLARGE "))
        // Other clients are unaffected and nothing was stored.
        try other.send("PING\r\n")
        #expect(try await other.readReplies(1) == "+PONG\r\n")
        #expect(server.log.headPosition == 0)
        await server.stop()
    }

    @Test func quitAnswersOKAndCloses() async throws {
        let server = try await RunningServer.start()
        let connection = try RawConnection(port: server.port)
        try connection.send("QUIT\r\nPING\r\n")
        #expect(await connection.readToEnd() == "+OK\r\n")
        await server.stop()
    }

    @Test func halfClosedClientStillGetsItsDurableReply() async throws {
        let server = try await RunningServer.start()
        let connection = try RawConnection(port: server.port)
        try connection.send("APPEND order o9 order-created {\"a\":1}\r\n")
        connection.shutdownWrite()
        let reply = await connection.readToEnd()
        #expect(reply.contains("\"position\":1"))
        #expect(server.log.headPosition == 1)
        await server.stop()
    }

    @Test func halfClosedClientGetsEveryReplyEvenWhenTheyOutgrowTheSocketBuffers() async throws {
        let server = try await RunningServer.start()
        // A READALL of these 500 events is a reply of about 1 MB, to a client with a small receive buffer that has
        // already sent end of input: the server answers both requests in full, then closes.
        let data = #"{"padding":""# + String(repeating: "x", count: 2000) + #""}"#
        let stream = try StreamName(aggregateType: "order", aggregateID: "o1")
        let events = (0..<500).map { _ in ProposedEvent(eventType: "e", data: Array(data.utf8)) }
        _ = try awaitAppend(server.log, AppendRequest(stream: stream, events: events))
        let single = try RawConnection(port: server.port)
        try single.send("READALL COUNT 500\r\n")
        let one = try await single.readReplies(1)
        #expect(one.hasPrefix("*500\r\n"))
        let connection = try RawConnection(port: server.port, receiveBufferBytes: 4096)
        try connection.send("READALL COUNT 500\r\nREADALL COUNT 500\r\n")
        connection.shutdownWrite()
        let text = await connection.readToEnd()
        #expect(text.utf8.count == 2 * one.utf8.count)
        #expect(text == one + one)
        await server.stop()
    }

    @Test func requestDeliveredByteByByteIsUnderstood() async throws {
        let server = try await RunningServer.start()
        let connection = try RawConnection(port: server.port)
        let request = "*5\r\n$6\r\nAPPEND\r\n$5\r\norder\r\n$2\r\no1\r\n$1\r\ne\r\n$7\r\n{\"a\":1}\r\nPING\r\n"
        for byte in request.utf8 { try connection.send([byte]) }
        let replies = try await connection.readReplies(2)
        #expect(replies.contains("\"position\":1"))
        #expect(replies.hasSuffix("+PONG\r\n"))
        await server.stop()
    }
}
