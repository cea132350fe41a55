import Foundation
import LoglineClient
import LoglineCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A RESP value as it came over a raw socket.
indirect enum PushedValue: Equatable, CustomStringConvertible {
    case simple(String)
    case error(String)
    case integer(Int64)
    case bulk(String?)
    case array([PushedValue]?)

    /// Parses every complete top-level value at the start of `bytes`.
    static func parseAll(_ bytes: [UInt8]) -> [PushedValue] {
        var index = 0
        var values: [PushedValue] = []
        while index < bytes.count, let value = parse(bytes, &index) { values.append(value) }
        return values
    }

    private static func parse(_ bytes: [UInt8], _ index: inout Int) -> PushedValue? {
        var end = index
        while end + 1 < bytes.count, !(bytes[end] == 13 && bytes[end + 1] == 10) { end += 1 }
        guard end + 1 < bytes.count, end > index else { return nil }
        let marker = bytes[index]
        let line = String(decoding: bytes[(index + 1)..<end], as: UTF8.self)
        var next = end + 2
        let value: PushedValue
        switch marker {
        case UInt8(ascii: "+"): value = .simple(line)
        case UInt8(ascii: "-"): value = .error(line)
        case UInt8(ascii: ":"):
            guard let number = Int64(line) else { return nil }
            value = .integer(number)
        case UInt8(ascii: "$"):
            guard let length = Int(line) else { return nil }
            if length < 0 {
                value = .bulk(nil)
            } else {
                guard next + length + 2 <= bytes.count else { return nil }
                value = .bulk(String(decoding: bytes[next..<(next + length)], as: UTF8.self))
                next += length + 2
            }
        case UInt8(ascii: "*"):
            guard let count = Int(line) else { return nil }
            if count < 0 {
                value = .array(nil)
            } else {
                var elements: [PushedValue] = []
                for _ in 0..<count {
                    guard let element = parse(bytes, &next) else { return nil }
                    elements.append(element)
                }
                value = .array(elements)
            }
        default:
            return nil
        }
        index = next
        return value
    }

    /// An array of bulk strings: `["message", "order-created", "{...}"]`.
    static func strings(_ elements: String...) -> PushedValue { .array(elements.map { .bulk($0) }) }

    var description: String {
        switch self {
        case .simple(let text): return "+\(text)"
        case .error(let text): return "-\(text)"
        case .integer(let number): return ":\(number)"
        case .bulk(let text): return text.map { "\"\($0.prefix(120))\"" } ?? "nil"
        case .array(let elements): return elements.map { "\($0)" } ?? "nil array"
        }
    }

    /// A pushed `["message", event_type, envelope]`: its type, position and envelope text.
    var message: (eventType: String, position: UInt64, envelope: String)? {
        guard case .array(let elements?) = self, elements.count == 3, elements[0] == .bulk("message"),
            case .bulk(let type?) = elements[1], case .bulk(let envelope?) = elements[2],
            let object = try? JSONSerialization.jsonObject(with: Data(envelope.utf8)) as? [String: Any],
            object["event_type"] as? String == type, let position = GroupWire.int(object["position"])
        else { return nil }
        return (type, UInt64(position), envelope)
    }
}

/// Lets a blocking read run on its own thread.
final class UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Reads `count` replies (off the concurrency pool, as every read of a ``RawConnection``), so that the test's tasks
/// go on meanwhile.
func readRepliesInBackground(_ connection: RawConnection, _ count: Int) async -> [PushedValue] {
    PushedValue.parseAll(Array(((try? await connection.readReplies(count)) ?? "").utf8))
}

@Suite("Live subscriptions over TCP", .timeLimit(.minutes(1)))
struct SubscriptionTests {
    static func types(_ index: Int) -> String { ConsumerGroupTests.eventType(index) }

    /// The envelopes of the whole log, by position, as READALL returns them.
    static func envelopes(_ client: LoglineClient) async throws -> [UInt64: String] {
        var result: [UInt64: String] = [:]
        for _ in 0..<100 {
            guard
                case .array(let items?) = try await client.send([
                    "READALL", "FROM", String(result.count + 1), "COUNT", "10000",
                ]), !items.isEmpty
            else { break }
            for item in items {
                let text = try #require(item.text)
                let position = try #require(GroupWire.int(try GroupWire.object(item)["position"]))
                result[UInt64(position)] = text
            }
        }
        return result
    }

    /// Positions as runs, `1-256, 1-500, 257-756`, to show gaps, repeats and reorderings in a few words.
    static func summary(_ positions: [UInt64]) -> String {
        var runs: [(UInt64, UInt64)] = []
        for position in positions {
            if let last = runs.last, last.1 + 1 == position {
                runs[runs.count - 1].1 = position
            } else {
                runs.append((position, position))
            }
        }
        let text = runs.prefix(20).map { $0.0 == $0.1 ? "\($0.0)" : "\($0.0)-\($0.1)" }.joined(separator: ", ")
        let repeated = positions.count - Set(positions).count
        return "\(positions.count) messages (\(repeated) repeated) in runs \(text)\(runs.count > 20 ? ", ..." : "")"
    }

    @Test func subscribeFromOneReplaysTheLogThenStreamsNewEventsWithoutGapsOrDuplicates() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try await RunningServer.start(directory: directory.path)
        let writer = try await server.client()
        for batch in 0..<5 {
            _ = try await GroupWire.appendMany(writer, stream: "o\(batch)", count: 100) { Self.types($0) }
        }
        let subscriber = try RawConnection(port: server.port)
        try subscriber.send("SUBSCRIBE FROM 1\r\n")
        let reading = Task { await readRepliesInBackground(subscriber, 1 + 500 + 2000) }
        // 2,000 more while the subscriber catches up, from 20 tasks at once.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<20 {
                group.addTask {
                    for sequence in 0..<100 {
                        _ = try await GroupWire.append(
                            writer, stream: "live\(worker)", type: Self.types(sequence), data: #"{"n":\#(sequence)}"#)
                    }
                }
            }
            try await group.waitForAll()
        }
        let replies = await reading.value
        #expect(replies.count == 2501, "\(replies.count) replies, the last: \(replies.suffix(2))")
        #expect(replies[0] == .array([.bulk("subscribe"), .bulk("*"), .integer(1)]))
        let messages = replies.dropFirst().compactMap(\.message)
        #expect(messages.count == replies.count - 1, "not all pushes are messages: \(replies.dropFirst().prefix(3))")
        let positions = messages.map(\.position)
        #expect(positions == Array(1...2500), "\(Self.summary(positions))")
        // Each push carries the envelope exactly as READALL returns it.
        let stored = try await Self.envelopes(writer)
        #expect(stored.count == 2500)
        #expect(messages.allSatisfy { stored[$0.position] == $0.envelope })
        // Nothing more is queued: the next reply is the answer to PING.
        try subscriber.send("PING\r\n")
        let pong = PushedValue.parseAll(Array(try await subscriber.readReplies(1).utf8))
        #expect(pong == [.strings("pong", "")])
        await writer.close()
        await server.stop()
    }

    @Test func subscribeWithoutFromSendsOnlyNewEventsAndTheModeAllowsOnlyUnsubscribePingAndQuit() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try await RunningServer.start(directory: directory.path)
        let writer = try await server.client()
        _ = try await GroupWire.appendMany(writer, stream: "o1", count: 5) { Self.types($0) }
        let connection = try RawConnection(port: server.port)
        func exchange(_ request: String, replies: Int = 1) async throws -> [PushedValue] {
            try connection.send(request)
            return PushedValue.parseAll(Array(try await connection.readReplies(replies).utf8))
        }
        #expect(try await exchange("SUBSCRIBE\r\n") == [.array([.bulk("subscribe"), .bulk("*"), .integer(1)])])
        var positions: [UInt64] = []
        for index in 0..<3 {
            positions.append(try await GroupWire.append(writer, stream: "o2", type: Self.types(index)))
        }
        #expect(positions == [6, 7, 8])
        let pushed = PushedValue.parseAll(Array(try await connection.readReplies(3).utf8))
        #expect(pushed.compactMap(\.message).map(\.position) == [6, 7, 8])
        #expect(pushed.compactMap(\.message).map(\.eventType) == (0..<3).map(Self.types))

        #expect(try await exchange("PING\r\n") == [.strings("pong", "")])
        for request in ["READALL\r\n", "APPEND order o3 x {}\r\n", "SUBSCRIBE FROM 1\r\n", "GROUPS\r\n"] {
            let reply = try await exchange(request)
            guard case .error(let text)? = reply.first, reply.count == 1 else {
                Issue.record("\(request) while subscribed: \(reply)")
                continue
            }
            #expect(text.hasPrefix("BADREQ "), "\(request): \(text)")
        }
        #expect(server.log.headPosition == 8, "an APPEND ran while subscribed")
        #expect(try await exchange("UNSUBSCRIBE\r\n") == [.array([.bulk("unsubscribe"), .bulk("*"), .integer(0)])])
        // Back in normal mode: no more pushes, ordinary replies.
        _ = try await GroupWire.append(writer, stream: "o2", type: "order-created")
        #expect(try await exchange("PING\r\n") == [.simple("PONG")])
        let read = try await exchange("READ order o2\r\n")
        guard case .array(let events?)? = read.first else {
            Issue.record("READ after UNSUBSCRIBE: \(read)")
            return
        }
        #expect(events.count == 4)
        // QUIT while subscribed answers +OK and closes.
        #expect(try await exchange("SUBSCRIBE\r\n").first == .array([.bulk("subscribe"), .bulk("*"), .integer(1)]))
        #expect(try await exchange("QUIT\r\n") == [.simple("OK")])
        #expect(await connection.peerClosed())
        #expect(try await writer.send(["PING"]) == .simpleString("PONG"))
        await writer.close()
        await server.stop()
    }

    @Test func typeFilterSendsOnlyThoseTypes() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try await RunningServer.start(directory: directory.path)
        let writer = try await server.client()
        let first = try await GroupWire.appendMany(writer, stream: "o1", count: 40) { Self.types($0) }
        let connection = try RawConnection(port: server.port)
        try connection.send("SUBSCRIBE FROM 1 TYPE order-created TYPE order-rejected\r\n")
        let wanted: Set<String> = ["order-created", "order-rejected"]
        let expectedFirst = first.enumerated().filter { wanted.contains(Self.types($0.offset)) }.map(\.element)
        let head = PushedValue.parseAll(Array(try await connection.readReplies(1 + expectedFirst.count).utf8))
        #expect(head.first == .array([.bulk("subscribe"), .bulk("order-created,order-rejected"), .integer(1)]))
        #expect(head.dropFirst().compactMap(\.message).map(\.position) == expectedFirst)
        let second = try await GroupWire.appendMany(writer, stream: "o2", count: 40) { Self.types($0 + 1) }
        let expectedSecond = second.enumerated().filter { wanted.contains(Self.types($0.offset + 1)) }
        let tail = PushedValue.parseAll(Array(try await connection.readReplies(expectedSecond.count).utf8))
        #expect(tail.compactMap(\.message).map(\.position) == expectedSecond.map(\.element))
        #expect(tail.compactMap(\.message).allSatisfy { wanted.contains($0.eventType) })
        try connection.send("PING\r\n")
        #expect(PushedValue.parseAll(Array(try await connection.readReplies(1).utf8)) == [.strings("pong", "")])
        await writer.close()
        await server.stop()
    }

    @Test func aSubscriberThatDoesNotReadIsDroppedWithLaggingAndCanResume() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try await RunningServer.start(directory: directory.path) { $0.maximumSubscriberLag = 1000 }
        let slow = try RawConnection(port: server.port)
        try slow.send("SUBSCRIBE FROM 1\r\n")
        // The confirmation, read while the log is empty (the subscriber is caught up); nothing more is read
        // until the server has given up on it.
        let confirmation = PushedValue.parseAll(Array(try await slow.readReplies(1).utf8))
        #expect(confirmation == [.array([.bulk("subscribe"), .bulk("*"), .integer(1)])])
        let writer = try await server.client()
        let other = try await server.client()
        let padding = #"{"pad":""# + String(repeating: "x", count: 1000) + #""}"#
        for batch in 0..<40 {
            let positions = try await GroupWire.appendMany(
                writer, stream: "o\(batch % 4)", count: 500, data: padding, type: { Self.types($0) })
            #expect(positions.count == 500)
            #expect(try await other.send(["PING"]) == .simpleString("PONG"))
        }
        #expect(server.log.headPosition == 20_000)

        let replies = PushedValue.parseAll(Array(await slow.readToEnd().utf8))
        #expect(await slow.peerClosed())
        let messages = replies.compactMap(\.message)
        let received = UInt64(messages.count)
        #expect(received < 20_000, "the subscriber was not dropped")
        #expect(
            messages.map(\.position) == (0..<messages.count).map { UInt64($0) + 1 },
            "\(Self.summary(messages.map(\.position)))")
        #expect(replies.count == messages.count + 1, "\(replies.count) replies for \(messages.count) messages")
        guard case .error(let text)? = replies.last else {
            Issue.record("the last reply is not an error: \(String(describing: replies.last))")
            return
        }
        #expect(text.hasPrefix("LAGGING "))
        #expect(text.contains("resume with SUBSCRIBE FROM \(received + 1)"), "after \(received) messages: \(text)")
        let resumeFrom = try #require(text.split(separator: " ").last.flatMap { UInt64($0) }, "\(text)")

        // The other clients are unaffected, and the subscriber can resume where it was told to.
        #expect(try await other.send(["PING"]) == .simpleString("PONG"))
        let info = try GroupWire.object(try await other.send(["INFO"]))
        #expect(GroupWire.int(info["event_count"]) == 20_000)
        let resumed = try RawConnection(port: server.port)
        try resumed.send("SUBSCRIBE FROM \(resumeFrom)\r\n")
        let again = PushedValue.parseAll(Array(try await resumed.readReplies(11).utf8))
        #expect(again.first == .array([.bulk("subscribe"), .bulk("*"), .integer(1)]))
        #expect(
            again.dropFirst().compactMap(\.message).map(\.position).prefix(10)
                == ArraySlice((resumeFrom)...(resumeFrom + 9)))
        await writer.close()
        await other.close()
        await server.stop()
    }

    @Test(.enabled(if: which("redis-cli") != nil, "redis-cli is not installed"))
    func redisCLIShowsPushedEvents() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try await RunningServer.start(directory: directory.path)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: which("redis-cli")!)
        process.arguments = ["-p", String(server.port), "SUBSCRIBE"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // redis-cli runs until stopped. It inherits this process's blocked signals (SIGTERM among them), so only
        // SIGKILL stops it: after at most 20 s, which also ends its output.
        let pid = process.processIdentifier
        let watchdog = Task {
            try? await Task.sleep(for: .seconds(20))
            kill(pid, SIGKILL)
        }
        defer { if process.isRunning { kill(pid, SIGKILL) } }
        let reader = UncheckedBox(output.fileHandleForReading)
        let text = UncheckedBox(NSMutableString(string: ""))
        /// Reads redis-cli's output until `done` holds for all of it, or the output ends.
        func readUntil(_ done: @escaping @Sendable (String) -> Bool) async -> String {
            await withCheckedContinuation { continuation in
                Thread.detachNewThread {
                    while !done(text.value as String) {
                        let data = reader.value.availableData
                        if data.isEmpty { break }
                        text.value.append(String(decoding: data, as: UTF8.self))
                    }
                    continuation.resume(returning: text.value as String)
                }
            }
        }
        let subscribed = await readUntil { $0.contains("subscribe\n*\n1\n") }
        try #require(subscribed.contains("subscribe\n*\n1\n"), "redis-cli printed: \(subscribed)")

        let client = try await server.client()
        let created = try GroupWire.object(
            try await client.send(["APPEND", "order", "o1", "order-created", #"{"customer_id":"c1"}"#]))
        let approved = try GroupWire.object(
            try await client.send(["APPEND", "order", "o1", "order-approved", #"{"by":"kitchen"}"#]))
        let ids = [created, approved].compactMap { $0["event_id"] as? String }
        #expect(ids.count == 2)
        let shown = await readUntil { text in ids.allSatisfy { text.contains($0) } }
        kill(pid, SIGKILL)
        process.waitUntilExit()
        watchdog.cancel()

        let lines = shown.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0 == "message" }.count == 2, "\(shown)")
        let envelopes = lines.filter { $0.hasPrefix("{") }
        #expect(envelopes.count == 2)
        #expect(lines.contains("order-created") && lines.contains("order-approved"))
        let stored = try await Self.envelopes(client)
        #expect(envelopes == [stored[1], stored[2]].compactMap { $0 })
        #expect(envelopes.first?.contains(#""data":{"customer_id":"c1"}"#) == true)
        #expect(envelopes.last?.contains(#""event_type":"order-approved""#) == true)
        await client.close()
        await server.stop()
    }
}
