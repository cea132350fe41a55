import Foundation
import LoglineClient
import LoglineCore
import Synchronization
import Testing

/// One delivery of `FETCH`, read from its JSON: the envelope plus `delivery_count`.
struct FetchedDelivery: Hashable, Sendable {
    let position: UInt64
    let eventType: String
    let eventID: String
    let deliveryCount: Int
}

/// A flag set by one task and read by others.
final class SharedFlag: Sendable {
    private let value = Atomic<Bool>(false)

    var isSet: Bool { value.load(ordering: .acquiring) }

    func set() { value.store(true, ordering: .releasing) }
}

/// The consumer-group verbs spoken through `LoglineClient.send`, without the client's typed group methods.
enum GroupWire {
    /// The JSON object in a bulk reply.
    static func object(_ reply: RESPValue) throws -> [String: Any] {
        guard let text = reply.text,
            let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        else { throw TestFailure("not a JSON object: \(reply)") }
        return object
    }

    /// The JSON objects of an array reply of bulk strings.
    static func objects(_ reply: RESPValue) throws -> [[String: Any]] {
        guard case .array(let items?) = reply else { throw TestFailure("not an array: \(reply)") }
        return try items.map(object)
    }

    static func int(_ value: Any?) -> Int? { (value as? NSNumber)?.intValue }

    static func delivery(_ object: [String: Any]) throws -> FetchedDelivery {
        guard let position = int(object["position"]), let type = object["event_type"] as? String,
            let id = object["event_id"] as? String, let count = int(object["delivery_count"])
        else { throw TestFailure("not a delivery: \(object)") }
        return FetchedDelivery(position: UInt64(position), eventType: type, eventID: id, deliveryCount: count)
    }

    /// `FETCH <group> <consumer> COUNT <count> [BLOCK <ms>]`.
    static func fetch(
        _ client: LoglineClient, _ group: String, _ consumer: String, count: Int, block: Int? = nil
    ) async throws -> [FetchedDelivery] {
        var arguments = ["FETCH", group, consumer, "COUNT", String(count)]
        if let block { arguments += ["BLOCK", String(block)] }
        return try objects(try await client.send(arguments)).map(delivery)
    }

    /// `ACK`: how many deliveries it settled.
    static func ack(_ client: LoglineClient, _ group: String, _ positions: [UInt64]) async throws -> Int64 {
        try await settle(client, "ACK", group, positions)
    }

    /// `NACK`: how many deliveries it made available again.
    static func nack(_ client: LoglineClient, _ group: String, _ positions: [UInt64]) async throws -> Int64 {
        try await settle(client, "NACK", group, positions)
    }

    private static func settle(
        _ client: LoglineClient, _ verb: String, _ group: String, _ positions: [UInt64]
    ) async throws -> Int64 {
        let reply = try await client.send([verb, group] + positions.map(String.init))
        guard case .integer(let count) = reply else { throw TestFailure("\(verb) replied \(reply)") }
        return count
    }

    /// `GROUPS`, by name.
    static func groups(_ client: LoglineClient) async throws -> [String: [String: Any]] {
        var result: [String: [String: Any]] = [:]
        for group in try objects(try await client.send(["GROUPS"])) {
            guard let name = group["name"] as? String else { throw TestFailure("a group without a name: \(group)") }
            result[name] = group
        }
        return result
    }

    /// `PENDING <group>` or `DEAD <group>`.
    static func list(_ client: LoglineClient, _ verb: String, _ group: String) async throws -> [[String: Any]] {
        try objects(try await client.send([verb, group]))
    }

    /// The error code of the server's reply to `arguments`, or `nil` when it is no error.
    static func errorCode(_ client: LoglineClient, _ arguments: [String]) async throws -> String? {
        do {
            _ = try await client.send(arguments)
            return nil
        } catch {
            guard case .server(let code, _) = error else { throw error }
            return code.rawValue
        }
    }

    /// `APPEND` with a generated body; returns the event's position.
    static func append(_ client: LoglineClient, stream: String, type: String, data: String = "{}") async throws
        -> UInt64
    {
        let reply = try await client.send(["APPEND", "order", stream, type, data])
        guard let position = int(try object(reply)["position"]) else { throw TestFailure("APPEND replied \(reply)") }
        return UInt64(position)
    }

    /// `APPENDMANY` of `count` events to one stream, with the types `type(index)`; returns the positions.
    static func appendMany(
        _ client: LoglineClient, stream: String, count: Int, data: String = "{}", type: (Int) -> String
    ) async throws -> [UInt64] {
        let events = (0..<count).map { #"{"event_type":""# + type($0) + #"","data":"# + data + "}" }
        let reply = try await client.send(["APPENDMANY", "order", stream, "[" + events.joined(separator: ",") + "]"])
        guard let receipts = try object(reply)["events"] as? [[String: Any]] else {
            throw TestFailure("APPENDMANY replied \(reply)")
        }
        return receipts.compactMap { int($0["position"]).map(UInt64.init) }
    }

    /// Fetches and acknowledges until a fetch that started after `finished` was set comes back empty.
    /// - Returns: Every delivery, in the order received.
    static func consume(
        _ client: LoglineClient, group: String, consumer: String, count: Int, block: Int, finished: SharedFlag,
        rounds: Int
    ) async throws -> [FetchedDelivery] {
        var received: [FetchedDelivery] = []
        for _ in 0..<rounds {
            let wasFinished = finished.isSet
            let batch = try await fetch(client, group, consumer, count: count, block: block)
            if batch.isEmpty {
                if wasFinished { return received }
                continue
            }
            received += batch
            let acked = try await ack(client, group, batch.map(\.position))
            guard acked == batch.count else {
                throw TestFailure("\(consumer): ACK of \(batch.count) deliveries settled \(acked)")
            }
        }
        throw TestFailure("\(consumer) was still receiving after \(rounds) fetches")
    }
}

@Suite("Consumer groups over TCP", .timeLimit(.minutes(1)))
struct ConsumerGroupTests {
    /// Every other event matches the groups' filter; the rest are of two other types.
    static func eventType(_ index: Int) -> String {
        index % 2 == 0 ? "order-approved" : (index % 4 == 1 ? "order-created" : "order-rejected")
    }

    @Test("GROUP CREATE FROM a position beyond 64-bit JSON integers is refused; it used to crash the server")
    func createFromAHugePosition() async throws {
        // Found by scripts/fuzz-server: the cursor was stored as Int64(position - 1), which traps.
        let server = try await RunningServer.start()
        let client = try await server.client()
        for position in ["18446744073709551615", "9223372036854775808"] {
            await #expect {
                _ = try await client.send(["GROUP", "CREATE", "g", "FROM", position])
            } throws: { error in
                (error as? LoglineClientError)?.code == .badRequest
            }
        }
        #expect(try await client.send(["GROUP", "CREATE", "g", "FROM", "9223372036854775807"]) == .simpleString("OK"))
        let groups = try GroupWire.objects(try await client.send(["GROUPS"]))
        #expect(groups.first?["cursor"] as? NSNumber == NSNumber(value: Int64.max - 1))
        await client.close()
        await server.stop()
    }

    @Test func twoConsumersShareEveryMatchingEventExactlyOnceWhileEventsArrive() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try await RunningServer.start(directory: directory.path)
        let admin = try await server.client()
        _ = try await admin.send(["GROUP", "CREATE", "shipping", "TYPE", "order-approved", "MAXINFLIGHT", "50"])
        _ = try await admin.send(["GROUP", "CREATE", "audit", "TYPE", "order-approved", "MAXINFLIGHT", "1000"])

        let finished = SharedFlag()
        let consumers = try await [server.client(), server.client()]
        let tasks = consumers.enumerated().map { index, client in
            Task {
                try await GroupWire.consume(
                    client, group: "shipping", consumer: "c\(index + 1)", count: 50, block: 200, finished: finished,
                    rounds: 5000)
            }
        }
        // 10,000 appends from a third connection, 25 at a time in flight.
        let writer = try await server.client()
        let appended = try await withThrowingTaskGroup(of: [(UInt64, String)].self) { group in
            for worker in 0..<25 {
                group.addTask {
                    var positions: [(UInt64, String)] = []
                    for sequence in 0..<400 {
                        let type = Self.eventType(sequence * 25 + worker)
                        let position = try await GroupWire.append(
                            writer, stream: "o\(worker)-\(sequence % 7)", type: type, data: #"{"n":\#(sequence)}"#)
                        positions.append((position, type))
                    }
                    return positions
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        finished.set()
        var received: [[FetchedDelivery]] = []
        for task in tasks { received.append(try await task.value) }

        #expect(appended.count == 10_000)
        #expect(Set(appended.map(\.0)) == Set(1...10_000))
        let matching = Set(appended.filter { $0.1 == "order-approved" }.map(\.0))
        #expect(matching.count == 5000)
        let first = received[0].map(\.position)
        let second = received[1].map(\.position)
        #expect(Set(first).count == first.count, "c1 received a position twice")
        #expect(Set(second).count == second.count, "c2 received a position twice")
        #expect(Set(first).isDisjoint(with: second), "an event went to both consumers")
        #expect(Set(first).union(second) == matching)
        #expect(!first.isEmpty && !second.isEmpty, "both consumers take part: \(first.count) and \(second.count)")
        #expect(received.joined().allSatisfy { $0.eventType == "order-approved" && $0.deliveryCount == 1 })

        let shipping = try #require(try await GroupWire.groups(admin)["shipping"])
        #expect(GroupWire.int(shipping["pending"]) == 0)
        #expect(GroupWire.int(shipping["dead"]) == 0)
        #expect(GroupWire.int(shipping["acked_position"]) == GroupWire.int(shipping["cursor"]))
        #expect(GroupWire.int(shipping["cursor"]) == 10_000)
        #expect(GroupWire.int(shipping["lag"]) == 0)
        let names = (shipping["consumers"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        #expect(names == ["c1", "c2"])
        #expect(try await GroupWire.list(admin, "PENDING", "shipping").isEmpty)

        // The other group was not touched by the first one's acknowledgements: it sees every matching event.
        var audited: [FetchedDelivery] = []
        for _ in 0..<20 {
            let batch = try await GroupWire.fetch(admin, "audit", "auditor", count: 1000)
            if batch.isEmpty { break }
            audited += batch
            #expect(try await GroupWire.ack(admin, "audit", batch.map(\.position)) == batch.count)
        }
        #expect(audited.map(\.position) == matching.sorted())
        for client in consumers + [writer, admin] { await client.close() }
        await server.stop()
    }

    @Test func deliveriesOfAConsumerThatStopsAckingGoToAnotherAfterTheAckWait() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try await RunningServer.start(directory: directory.path)
        let c1 = try await server.client()
        let c2 = try await server.client()
        // An ack wait long enough that "not yet expired" holds on a busy machine, short enough for a test.
        _ = try await c1.send(["GROUP", "CREATE", "billing", "ACKWAIT", "2500"])
        let positions = try await GroupWire.appendMany(c1, stream: "o1", count: 6) { _ in "order-created" }
        #expect(positions == Array(1...6))

        let first = try await GroupWire.fetch(c1, "billing", "c1", count: 6)
        #expect(first.map(\.position) == positions)
        #expect(first.allSatisfy { $0.deliveryCount == 1 })
        // Not yet expired: nothing for c2.
        #expect(try await GroupWire.fetch(c2, "billing", "c2", count: 6).isEmpty)

        let started = ContinuousClock.now
        let second = try await GroupWire.fetch(c2, "billing", "c2", count: 6, block: 30_000)
        let waited = ContinuousClock.now - started
        #expect(second.map(\.position) == positions)
        #expect(second.map(\.eventID) == first.map(\.eventID))
        #expect(second.allSatisfy { $0.deliveryCount == 2 })
        // The FETCH wakes at the expiry, not at the end of its BLOCK.
        #expect(waited < .seconds(20), "the redelivery came only at the end of BLOCK: \(waited)")

        let pending = try await GroupWire.list(c1, "PENDING", "billing")
        #expect(pending.compactMap { GroupWire.int($0["position"]) } == Array(1...6))
        #expect(pending.allSatisfy { $0["consumer"] as? String == "c2" && GroupWire.int($0["delivery_count"]) == 2 })
        let group = try #require(try await GroupWire.groups(c1)["billing"])
        let consumers = (group["consumers"] as? [[String: Any]]) ?? []
        let byName = Dictionary(
            uniqueKeysWithValues: consumers.compactMap { c in (c["name"] as? String).map { ($0, c) } })
        #expect(GroupWire.int(byName["c2"]?["pending"]) == 6)
        #expect(GroupWire.int(byName["c1"]?["pending"]) == 0)

        #expect(try await GroupWire.ack(c2, "billing", positions) == 6)
        #expect(try await GroupWire.list(c1, "PENDING", "billing").isEmpty)
        // Settled deliveries do not come back, even after the ack wait.
        #expect(try await GroupWire.fetch(c1, "billing", "c1", count: 6, block: 600).isEmpty)
        await c1.close()
        await c2.close()
        await server.stop()
    }

    @Test func aConsumerNeverHoldsMoreThanMaxInFlight() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try await RunningServer.start(directory: directory.path)
        let c1 = try await server.client()
        let c2 = try await server.client()
        _ = try await c1.send(["GROUP", "CREATE", "kitchen", "MAXINFLIGHT", "5"])
        _ = try await GroupWire.appendMany(c1, stream: "o1", count: 50) { _ in "order-created" }

        let first = try await GroupWire.fetch(c1, "kitchen", "c1", count: 100)
        #expect(first.map(\.position) == Array(1...5))
        // At its limit: nothing more for c1, even when it waits.
        #expect(try await GroupWire.fetch(c1, "kitchen", "c1", count: 100).isEmpty)
        #expect(try await GroupWire.fetch(c1, "kitchen", "c1", count: 100, block: 150).isEmpty)
        // Another consumer is not held back.
        let other = try await GroupWire.fetch(c2, "kitchen", "c2", count: 100)
        #expect(other.map(\.position) == Array(6...10))
        // Two acknowledgements make room for two more.
        #expect(try await GroupWire.ack(c1, "kitchen", [1, 2]) == 2)
        let more = try await GroupWire.fetch(c1, "kitchen", "c1", count: 100)
        #expect(more.map(\.position) == [11, 12])
        let pending = try await GroupWire.list(c1, "PENDING", "kitchen")
        #expect(pending.filter { $0["consumer"] as? String == "c1" }.count == 5)
        #expect(pending.filter { $0["consumer"] as? String == "c2" }.count == 5)
        let group = try #require(try await GroupWire.groups(c1)["kitchen"])
        #expect(GroupWire.int(group["max_in_flight"]) == 5)
        #expect(GroupWire.int(group["pending"]) == 10)
        // The acknowledged prefix ends before the oldest pending delivery.
        #expect(GroupWire.int(group["acked_position"]) == 2)
        await c1.close()
        await c2.close()
        await server.stop()
    }

    @Test func aPoisonEventGoesToTheDeadLettersAndRetryBringsItBack() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try await RunningServer.start(directory: directory.path)
        let client = try await server.client()
        _ = try await client.send(["GROUP", "CREATE", "payments", "MAXDELIVER", "3", "ACKWAIT", "100"])
        #expect(try await GroupWire.append(client, stream: "o1", type: "order-poison") == 1)

        // 1st delivery, NACKed: available again at once, without waiting for the ack wait.
        let first = try await GroupWire.fetch(client, "payments", "c1", count: 1)
        #expect(first.map(\.position) == [1])
        #expect(first.first?.deliveryCount == 1)
        #expect(try await GroupWire.nack(client, "payments", [1]) == 1)
        let second = try await GroupWire.fetch(client, "payments", "c1", count: 1)
        #expect(second.map(\.position) == [1])
        #expect(second.first?.deliveryCount == 2)
        // 3rd delivery once the ack wait runs out.
        let started = ContinuousClock.now
        let third = try await GroupWire.fetch(client, "payments", "c1", count: 1, block: 30_000)
        #expect(third.map(\.position) == [1])
        #expect(third.first?.deliveryCount == 3)
        #expect(ContinuousClock.now - started < .seconds(20), "woke at the expiry, not at the end of BLOCK")
        // When the 3rd delivery expires (during this FETCH) the event goes to the dead letters, not to c1.
        #expect(try await GroupWire.fetch(client, "payments", "c1", count: 10, block: 400).isEmpty)
        let dead = try await GroupWire.list(client, "DEAD", "payments")
        #expect(dead.count == 1)
        #expect(GroupWire.int(dead.first?["position"]) == 1)
        #expect(GroupWire.int(dead.first?["delivery_count"]) == 3)
        #expect(dead.first?["event_type"] as? String == "order-poison")
        #expect(dead.first?["last_consumer"] as? String == "c1")
        #expect(try await GroupWire.list(client, "PENDING", "payments").isEmpty)
        #expect(GroupWire.int(try await GroupWire.groups(client)["payments"]?["dead"]) == 1)

        // The group goes on with later events; the dead letter is not among them.
        #expect(try await GroupWire.append(client, stream: "o2", type: "order-created") == 2)
        let next = try await GroupWire.fetch(client, "payments", "c1", count: 10, block: 2000)
        #expect(next.map(\.position) == [2])
        #expect(next.first?.deliveryCount == 1)
        #expect(try await GroupWire.ack(client, "payments", [2]) == 1)

        // RETRY puts it back, to be delivered at once with a fresh count.
        #expect(try await client.send(["RETRY", "payments", "1"]) == .simpleString("OK"))
        #expect(try await GroupWire.list(client, "DEAD", "payments").isEmpty)
        let retried = try await GroupWire.fetch(client, "payments", "c2", count: 10)
        #expect(retried.map(\.position) == [1])
        #expect(retried.first?.deliveryCount == 1)
        #expect(try await GroupWire.ack(client, "payments", [1]) == 1)
        #expect(try await GroupWire.errorCode(client, ["RETRY", "payments", "1"]) == "NOTFOUND")
        #expect(try await GroupWire.list(client, "PENDING", "payments").isEmpty)
        await client.close()
        await server.stop()
    }

    /// A consumer that restarts under the same name while it held MAXINFLIGHT deliveries must get them back
    /// once they expire; with one consumer in the group, nobody else would.
    @Test func aConsumerAtItsLimitGetsItsOwnExpiredDeliveriesBack() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try await RunningServer.start(directory: directory.path)
        let crashed = try await server.client()
        _ = try await crashed.send(["GROUP", "CREATE", "mailer", "MAXINFLIGHT", "5", "ACKWAIT", "200"])
        _ = try await GroupWire.appendMany(crashed, stream: "o1", count: 8) { _ in "order-created" }
        #expect(try await GroupWire.fetch(crashed, "mailer", "worker-1", count: 5).map(\.position) == Array(1...5))
        await crashed.close()

        let restarted = try await server.client()
        let again = try await GroupWire.fetch(restarted, "mailer", "worker-1", count: 5, block: 30_000)
        #expect(again.map(\.position) == Array(1...5))
        #expect(again.allSatisfy { $0.deliveryCount == 2 })
        await restarted.close()
        await server.stop()
    }

    @Test func unknownGroupsDuplicatesAndBadArgumentsGetTheirErrorCodes() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try await RunningServer.start(directory: directory.path)
        let client = try await server.client()
        func code(_ arguments: String...) async throws -> String? {
            try await GroupWire.errorCode(client, arguments)
        }
        #expect(try await code("FETCH", "nope", "c1") == "NOTFOUND")
        #expect(try await code("FETCH", "nope", "c1", "BLOCK", "100") == "NOTFOUND")
        #expect(try await code("ACK", "nope", "1") == "NOTFOUND")
        #expect(try await code("NACK", "nope", "1") == "NOTFOUND")
        #expect(try await code("PENDING", "nope") == "NOTFOUND")
        #expect(try await code("DEAD", "nope") == "NOTFOUND")
        #expect(try await code("GROUP", "DELETE", "nope") == "NOTFOUND")

        #expect(try await client.send(["GROUP", "CREATE", "g1"]) == .simpleString("OK"))
        #expect(try await code("GROUP", "CREATE", "g1") == "CONFLICT")
        #expect(try await code("GROUP", "CREATE", "g1", "FROM", "NOW") == "CONFLICT")

        let bad: [[String]] = [
            ["GROUP"], ["GROUP", "CREATE"], ["GROUP", "FROB", "g2"], ["GROUP", "CREATE", "g/2"],
            ["GROUP", "CREATE", "g2", "ACKWAIT", "0"], ["GROUP", "CREATE", "g2", "ACKWAIT"],
            ["GROUP", "CREATE", "g2", "MAXINFLIGHT", "0"], ["GROUP", "CREATE", "g2", "MAXDELIVER", "x"],
            ["GROUP", "CREATE", "g2", "FROM"], ["GROUP", "CREATE", "g2", "FROM", "-1"],
            ["GROUP", "CREATE", "g2", "SOON"], ["GROUP", "DELETE", "g1", "extra"], ["FETCH"], ["FETCH", "g1"],
            ["FETCH", "g1", "c1", "COUNT", "0"], ["FETCH", "g1", "c1", "COUNT", "1001"],
            ["FETCH", "g1", "c1", "BLOCK", "soon"], ["FETCH", "g1", "c1", "BLOCK", "86400001"],
            ["FETCH", "g1", "c/1"], ["FETCH", "g1", "c1", "WAIT", "1"], ["ACK", "g1"], ["ACK", "g1", "x"],
            ["ACK", "g1", "-1"], ["NACK", "g1"], ["PENDING"], ["DEAD", "g1", "x"], ["GROUPS", "x"],
        ]
        for arguments in bad {
            #expect(try await GroupWire.errorCode(client, arguments) == "BADREQ", "\(arguments)")
        }
        // None of the bad requests created a group.
        #expect(try await GroupWire.groups(client).keys.sorted() == ["g1"])

        // Unknown positions settle nothing.
        _ = try await GroupWire.append(client, stream: "o1", type: "order-created")
        #expect(try await GroupWire.ack(client, "g1", [1, 99]) == 0)
        #expect(try await GroupWire.nack(client, "g1", [1, 99]) == 0)
        let delivered = try await GroupWire.fetch(client, "g1", "c1", count: 10)
        #expect(delivered.map(\.position) == [1])
        #expect(try await GroupWire.ack(client, "g1", [1, 1, 99]) == 1)
        #expect(try await GroupWire.ack(client, "g1", [1]) == 0)
        #expect(try await code("RETRY", "g1", "1") == "NOTFOUND")

        // DELETE removes it from GROUPS, and later requests for it are NOTFOUND.
        #expect(try await client.send(["GROUP", "DELETE", "g1"]) == .simpleString("OK"))
        #expect(try await GroupWire.groups(client).isEmpty)
        #expect(try await code("FETCH", "g1", "c1") == "NOTFOUND")
        #expect(try await code("GROUP", "DELETE", "g1") == "NOTFOUND")
        // The name is free again, and a new group of that name starts afresh.
        #expect(try await client.send(["GROUP", "CREATE", "g1"]) == .simpleString("OK"))
        #expect(try await GroupWire.fetch(client, "g1", "c1", count: 10).map(\.position) == [1])
        await client.close()
        await server.stop()
    }

    @Test func groupsStartWhereTheyAreToldAndFilterByType() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try await RunningServer.start(directory: directory.path)
        let client = try await server.client()
        _ = try await GroupWire.appendMany(client, stream: "o1", count: 10) { Self.eventType($0) }
        _ = try await client.send(["GROUP", "CREATE", "late", "FROM", "NOW"])
        _ = try await client.send(["GROUP", "CREATE", "middle", "FROM", "6"])
        _ = try await client.send(["GROUP", "CREATE", "two", "TYPE", "order-created", "TYPE", "order-rejected"])
        #expect(try await GroupWire.fetch(client, "late", "c", count: 100).isEmpty)
        #expect(try await GroupWire.fetch(client, "middle", "c", count: 100).map(\.position) == Array(6...10))
        let two = try await GroupWire.fetch(client, "two", "c", count: 100)
        #expect(two.map(\.position) == [2, 4, 6, 8, 10])
        let groups = try await GroupWire.groups(client)
        #expect(GroupWire.int(groups["late"]?["cursor"]) == 10)
        #expect((groups["two"]?["types"] as? [String]) == ["order-created", "order-rejected"])
        _ = try await GroupWire.append(client, stream: "o1", type: "order-approved")
        #expect(try await GroupWire.fetch(client, "late", "c", count: 100).map(\.position) == [11])
        await client.close()
        await server.stop()
    }

    /// A filtered group whose next match lies beyond many events of other types must still deliver it to a
    /// blocked FETCH: nothing else is going to wake the FETCH up.
    @Test func blockedFetchFindsAMatchBeyondALongRunOfOtherTypes() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try await RunningServer.start(directory: directory.path)
        let client = try await server.client()
        _ = try await client.send(["GROUP", "CREATE", "rare", "TYPE", "order-refunded"])
        _ = try await GroupWire.appendMany(client, stream: "o1", count: 1000) { _ in "order-created" }
        let match = try await GroupWire.append(client, stream: "o2", type: "order-refunded")
        // Without the fix the FETCH would see nothing and sleep until BLOCK ran out, then return empty; with
        // it, the match comes back. A long BLOCK and a bound of half of it tell the two apart on a busy machine.
        let started = ContinuousClock.now
        let delivered = try await GroupWire.fetch(client, "rare", "c1", count: 1, block: 30_000)
        #expect(delivered.map(\.position) == [match])
        #expect(ContinuousClock.now - started < .seconds(15))
        await client.close()
        await server.stop()
    }
}
