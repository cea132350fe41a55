import LoglineCore
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import LoglineClient

/// The client's side of subscriptions and consumer groups, without the real server: JSON and RESP decoding,
/// and the requests the client writes, against a scripted stand-in on a loopback port.
@Suite("Client: subscriptions and consumer groups")
struct ClientGroupDecodingTests {
    static func envelope(position: LogPosition, type: String = "order-approved", data: String = #"{"order_id":"o1"}"#)
        -> String
    {
        RecordedEvent(
            eventID: EventID("7c9e6679-7425-40de-944b-e07fc1f90ae7")!, eventType: type,
            stream: StreamName(uncheckedType: "order", id: "o1"), version: 2, position: position,
            recordedAt: Timestamp(millisecondsSinceEpoch: 1_795_000_000_123), data: Array(data.utf8),
            metadata: Array(#"{"correlation_id":"k1"}"#.utf8)
        ).json
    }

    /// A delivery: the envelope with `delivery_count` last.
    static func delivery(position: LogPosition, count: Int = 1, data: String = #"{"order_id":"o1"}"#) -> String {
        String(envelope(position: position, data: data).dropLast()) + #","delivery_count":\#(count)}"#
    }

    /// A RESP bulk string.
    static func bulk(_ text: String) -> String { "$\(text.utf8.count)\r\n\(text)\r\n" }

    /// A RESP array of bulk strings.
    static func array(_ items: [String]) -> String { "*\(items.count)\r\n" + items.map(bulk).joined() }

    @Test func deliveryKeepsTheEnvelopeAndReadsDeliveryCount() throws {
        let json = Self.delivery(position: 12, count: 3, data: #"{"order_id": "o1", "n": [1, 2]}"#)
        // The envelope reader ignores the extra member, and the delivery reads it.
        let event = try RecordedEvent(envelopeJSON: Array(json.utf8))
        let delivery = try Delivery(json: Array(json.utf8), group: "notifications")
        #expect(delivery.event == event)
        #expect(delivery.position == 12 && delivery.deliveryCount == 3 && delivery.group == "notifications")
        #expect(delivery.event.data == Array(#"{"order_id": "o1", "n": [1, 2]}"#.utf8))
        #expect(delivery.event.stream.description == "order/o1")
        #expect(throws: LoglineClientError.self) {
            try Delivery(json: Array(Self.envelope(position: 1).utf8), group: "g")
        }
    }

    @Test func groupsPendingAndDeadDecode() throws {
        let group = try GroupInfo(
            json: Array(
                #"""
                {"name":"notifications","types":["order-approved","order-rejected"],"ack_wait_ms":30000,\#
                "max_in_flight":25,"max_deliver":5,"cursor":40,"acked_position":37,"pending":2,"dead":1,"lag":3,\#
                "consumers":[{"name":"worker-1","pending":2,"last_seen":"2026-11-27T10:52:45.350Z"},\#
                {"name":"worker-2","pending":0,"last_seen":null}]}
                """#.utf8))
        #expect(group.name == "notifications" && group.eventTypes == ["order-approved", "order-rejected"])
        #expect(group.ackWait == .seconds(30) && group.maxInFlight == 25 && group.maxDeliver == 5)
        #expect(group.cursor == 40 && group.ackedPosition == 37 && group.pending == 2 && group.dead == 1)
        #expect(group.lag == 3 && group.json.hasPrefix(#"{"name":"notifications""#))
        #expect(group.consumers.map(\.name) == ["worker-1", "worker-2"])
        #expect(group.consumers[0].lastSeen == Timestamp(rfc3339: "2026-11-27T10:52:45.350Z"))
        #expect(group.consumers[1].lastSeen == nil)

        let pending = try PendingDelivery(
            json: Array(
                #"""
                {"position":38,"event_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","event_type":"order-approved",\#
                "consumer":"worker-1","delivery_count":2,"delivered_at":"2026-11-27T10:52:45.350Z","idle_ms":1500}
                """#.utf8))
        #expect(pending.position == 38 && pending.consumer == "worker-1" && pending.deliveryCount == 2)
        #expect(pending.idle == .milliseconds(1500) && pending.deliveredAt != nil)

        let dead = try DeadLetter(
            json: Array(
                #"""
                {"position":39,"event_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","event_type":"order-rejected",\#
                "delivery_count":5,"last_consumer":"worker-2","dead_at":"2026-11-27T10:52:46.000Z"}
                """#.utf8))
        #expect(dead.position == 39 && dead.eventType == "order-rejected" && dead.deliveryCount == 5)
        #expect(dead.lastConsumer == "worker-2" && dead.deadAt != nil)
        #expect(throws: LoglineClientError.self) { try GroupInfo(json: Array(#"{"name":"g"}"#.utf8)) }
    }

    @Test func pushedRepliesDecodeFromBytes() throws {
        var buffer = ByteBuffer(
            string: Self.array(["message", "order-approved", Self.envelope(position: 7)])
                + Self.array(["pong", ""]) + Self.array(["unsubscribe", "*"])
                + "-LAGGING subscriber is 10001 events behind (limit 10000); resume with SUBSCRIBE FROM 8\r\n")
        var pushes: [Result<SubscriptionPush, LoglineClientError>] = []
        while let value = try RESPReplyDecoder.parse(&buffer) {
            pushes.append(Result { () throws(LoglineClientError) in try SubscriptionPush(value) })
        }
        #expect(pushes.count == 4)
        guard case .success(.event(let event)) = pushes[0] else {
            Issue.record("not an event: \(pushes[0])")
            return
        }
        #expect(event.position == 7 && event.eventType == "order-approved")
        #expect(try pushes[1].get() == .other)
        #expect(try pushes[2].get() == .unsubscribed)
        guard case .failure(let lagging) = pushes[3] else {
            Issue.record("not an error: \(pushes[3])")
            return
        }
        #expect(lagging.isLagging && lagging.description.contains("SUBSCRIBE FROM 8"))
        #expect(
            try EventSubscription.confirmedChannel(
                .array([
                    .bulkString(Array("subscribe".utf8)),
                    .bulkString(Array("order-approved".utf8)), .integer(1),
                ])) == "order-approved")
    }

    @Test func durationsAreWholeMillisecondsRoundedUp() throws {
        #expect(try LoglineClient.milliseconds(.zero) == 0)
        #expect(try LoglineClient.milliseconds(.microseconds(1500)) == 2)
        #expect(try LoglineClient.milliseconds(.seconds(30)) == 30_000)
        #expect(throws: LoglineClientError.self) { try LoglineClient.milliseconds(.milliseconds(-1)) }
    }

    @Test func subscribeReadsPushesInOrderAndStopsOnLagging() async throws {
        let pushes =
            "*3\r\n" + Self.bulk("subscribe") + Self.bulk("order-approved") + ":1\r\n"
            + Self.array(["message", "order-approved", Self.envelope(position: 5)])
            + Self.array(["pong", ""])
            + Self.array(["message", "order-approved", Self.envelope(position: 6)])
            + Self.array(["message", "order-approved", Self.envelope(position: 6)])  // a duplicate is dropped
            + "-LAGGING subscriber is 9 events behind (limit 8); resume with SUBSCRIBE FROM 7\r\n"
        let server = try await ScriptedServer.start { _ in .sendAndClose(pushes) }
        let client = try await LoglineClient.connect(port: server.port)
        let subscription = try await client.subscribe(from: .position(5), eventTypes: ["order-approved"])
        #expect(subscription.channelName == "order-approved")
        var positions: [LogPosition] = []
        do {
            for try await event in subscription { positions.append(event.position) }
            Issue.record("the loop ended without the LAGGING error")
        } catch {
            #expect(error.isLagging)
        }
        #expect(positions == [5, 6])
        #expect(subscription.lastPosition == 6 && subscription.resumePoint == .position(7))
        #expect(server.requests == [["SUBSCRIBE", "FROM", "5", "TYPE", "order-approved"]])
        await client.close()
        await server.stop()
    }

    @Test func consumeAcksWhatItHandledAndNacksWhatFailedUntilCancelled() async throws {
        let batch = Self.array([Self.delivery(position: 1), Self.delivery(position: 2, count: 2)])
        let fetches = Tally<Int>()
        let server = try await ScriptedServer.start { request in
            switch request.first {
            case "GROUP": return .send("-CONFLICT group notifications exists\r\n")
            case "FETCH":
                fetches.add(1)
                return fetches.values.count == 1 ? .send(batch) : .hold
            case "ACK", "NACK": return .send(":1\r\n")
            default: return .send("-BADREQ unexpected\r\n")
            }
        }
        let client = try await LoglineClient.connect(port: server.port)
        await #expect(throws: LoglineClientError.server(code: .conflict, message: "group notifications exists")) {
            try await client.createGroup(
                "notifications", from: .now, eventTypes: ["order-approved"], ackWait: .microseconds(1500),
                maxInFlight: 3, maxDeliver: 2)
        }
        let handled = Tally<LogPosition>()
        let consumer = Task {
            try await client.consume(group: "notifications", consumer: "w1", block: .milliseconds(250)) { delivery in
                handled.add(delivery.position)
                if delivery.position == 2 { throw HandlerFailure() }
            }
        }
        for _ in 0..<500 where server.requests.count < 5 { try await Task.sleep(for: .milliseconds(10)) }
        consumer.cancel()
        try await consumer.value  // cancelled while a FETCH waits: returns, without an error
        let fetch = ["FETCH", "notifications", "w1", "COUNT", "10", "BLOCK", "250"]
        #expect(
            server.requests == [
                [
                    "GROUP", "CREATE", "notifications", "FROM", "NOW", "TYPE", "order-approved", "ACKWAIT", "2",
                    "MAXINFLIGHT", "3", "MAXDELIVER", "2",
                ],
                fetch, ["ACK", "notifications", "1"], ["NACK", "notifications", "2"], fetch,
            ])
        #expect(handled.values == [1, 2])
        await client.close()
        await server.stop()
    }
}

/// What a handler throws to refuse a delivery.
private struct HandlerFailure: Error {}

/// Values collected from several tasks.
private final class Tally<Value: Sendable>: Sendable {
    private let storage = Mutex<[Value]>([])

    /// The values so far.
    var values: [Value] { storage.withLock { $0 } }

    /// Adds a value.
    func add(_ value: Value) { storage.withLock { $0.append(value) } }
}

/// What the scripted server does with a request.
private enum ScriptedReply: Sendable {
    /// Writes these bytes.
    case send(String)
    /// Writes these bytes, then closes the connection.
    case sendAndClose(String)
    /// Never answers (a `FETCH` that blocks).
    case hold
}

/// A stand-in for the server on a loopback port that answers each request as a script says, and records the
/// requests of all its connections.
private final class ScriptedServer: Sendable {
    let port: Int
    private let channel: any Channel
    private let log: Tally<[String]>

    private init(port: Int, channel: any Channel, log: Tally<[String]>) {
        self.port = port
        self.channel = channel
        self.log = log
    }

    /// The requests received so far, in order.
    var requests: [[String]] { log.values }

    static func start(script: @escaping @Sendable ([String]) -> ScriptedReply) async throws -> ScriptedServer {
        let log = Tally<[String]>()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPReplyDecoder()))
                    try child.pipeline.syncOperations.addHandler(ScriptHandler(log: log, script: script))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return ScriptedServer(port: channel.localAddress?.port ?? 0, channel: channel, log: log)
    }

    func stop() async {
        try? await channel.close()
    }

    private final class ScriptHandler: ChannelInboundHandler {
        typealias InboundIn = RESPValue
        typealias OutboundOut = ByteBuffer

        let log: Tally<[String]>
        let script: @Sendable ([String]) -> ScriptedReply

        init(log: Tally<[String]>, script: @escaping @Sendable ([String]) -> ScriptedReply) {
            self.log = log
            self.script = script
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            // A request is a RESP array of bulk strings, which the reply decoder reads as well.
            guard case .array(let items?) = unwrapInboundIn(data) else { return }
            let request = items.map { $0.text ?? "" }
            log.add(request)
            switch script(request) {
            case .send(let bytes):
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: bytes)), promise: nil)
            case .sendAndClose(let bytes):
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: bytes)), promise: nil)
                context.close(promise: nil)
            case .hold:
                break
            }
        }
    }
}
