import Foundation
import LoglineClient
import LoglineCore
import Testing

/// Consumer groups across a restart of the server: graceful (in process) and `kill -9` (the real executable).
@Suite("Consumer groups across restarts", .timeLimit(.minutes(1)))
struct GroupRestartTests {
    /// What a consumer saw and settled.
    struct Ledger {
        var delivered: [FetchedDelivery] = []
        var acked: Set<UInt64> = []
        /// Positions acknowledged more than once (an ACK that settled fewer than it was given).
        var settledTwice = 0
    }

    /// Fetches (waiting up to `block`) and acknowledges until every position of `target` is acknowledged.
    static func consumeUntilAcked(
        _ client: LoglineClient, group: String, consumer: String, target: Set<UInt64>, ledger: inout Ledger,
        block: Int = 1500
    ) async throws {
        for _ in 0..<200 where !target.isSubset(of: ledger.acked) {
            let batch = try await GroupWire.fetch(client, group, consumer, count: 100, block: block)
            guard !batch.isEmpty else { continue }
            ledger.delivered += batch
            let settled = try await GroupWire.ack(client, group, batch.map(\.position))
            ledger.settledTwice += batch.count - Int(settled)
            ledger.acked.formUnion(batch.map(\.position))
        }
        if !target.isSubset(of: ledger.acked) {
            throw TestFailure("\(target.subtracting(ledger.acked).count) positions were never delivered")
        }
    }

    @Test func gracefulRestartRedeliversExactlyWhatWasNotAcknowledged() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var server = try await RunningServer.start(directory: directory.path)
        var client = try await server.client()
        _ = try await client.send([
            "GROUP", "CREATE", "orders", "TYPE", "order-approved", "ACKWAIT", "300", "MAXINFLIGHT", "200",
        ])
        _ = try await client.send(["GROUP", "CREATE", "idle", "FROM", "NOW", "TYPE", "never"])
        let firstPositions = try await GroupWire.appendMany(client, stream: "o1", count: 600) {
            ConsumerGroupTests.eventType($0)
        }
        var matching = Set(firstPositions.enumerated().filter { $0.offset % 2 == 0 }.map(\.element))

        // Before the restart: c1 acknowledges 100 deliveries; c2 takes 50 and acknowledges only 25.
        var before = Ledger()
        let c1 = try await GroupWire.fetch(client, "orders", "c1", count: 100)
        #expect(try await GroupWire.ack(client, "orders", c1.map(\.position)) == c1.count)
        let c2 = try await GroupWire.fetch(client, "orders", "c2", count: 50)
        #expect(try await GroupWire.ack(client, "orders", c2.prefix(25).map(\.position)) == 25)
        before.delivered = c1 + c2
        before.acked = Set(c1.map(\.position) + c2.prefix(25).map(\.position))
        let unacked = Set(c2.dropFirst(25).map(\.position))
        #expect(c1.count == 100 && c2.count == 50)
        #expect(Set(before.delivered.map(\.position)).count == 150)
        let cursor = GroupWire.int(try await GroupWire.groups(client)["orders"]?["cursor"])

        // A FETCH blocked on another connection does not hold up the shutdown.
        let blocked = try await server.client()
        let blockedFetch = Task { try? await GroupWire.fetch(blocked, "idle", "c9", count: 1, block: 20_000) }
        #expect(try await GroupWire.list(client, "PENDING", "orders").count == 25)
        await client.close()
        let stopping = ContinuousClock.now
        await server.stop()
        #expect(ContinuousClock.now - stopping < .seconds(5), "the shutdown waited for a blocked FETCH")
        _ = await blockedFetch.value
        await blocked.close()

        server = try await RunningServer.start(directory: directory.path)
        client = try await server.client()
        let groups = try await GroupWire.groups(client)
        #expect(groups.keys.sorted() == ["idle", "orders"])
        #expect(GroupWire.int(groups["orders"]?["pending"]) == 25)
        #expect(GroupWire.int(groups["orders"]?["cursor"]) == cursor)
        #expect((groups["orders"]?["types"] as? [String]) == ["order-approved"])
        #expect(GroupWire.int(groups["orders"]?["ack_wait_ms"]) == 300)
        let pending = try await GroupWire.list(client, "PENDING", "orders")
        #expect(Set(pending.compactMap { GroupWire.int($0["position"]).map(UInt64.init) }) == unacked)

        let laterPositions = try await GroupWire.appendMany(client, stream: "o2", count: 200) {
            ConsumerGroupTests.eventType($0)
        }
        matching.formUnion(laterPositions.enumerated().filter { $0.offset % 2 == 0 }.map(\.element))
        #expect(matching.count == 400)

        var after = Ledger()
        try await Self.consumeUntilAcked(
            client, group: "orders", consumer: "c1", target: matching.subtracting(before.acked), ledger: &after)
        let redelivered = after.delivered.map(\.position)
        #expect(before.acked.isDisjoint(with: redelivered), "acknowledged events were delivered again")
        #expect(Set(redelivered).count == redelivered.count, "an event was delivered twice after the restart")
        #expect(after.settledTwice == 0)
        #expect(before.acked.union(after.acked) == matching)
        for delivery in after.delivered {
            #expect(delivery.deliveryCount == (unacked.contains(delivery.position) ? 2 : 1), "\(delivery)")
        }
        let final = try #require(try await GroupWire.groups(client)["orders"])
        #expect(GroupWire.int(final["pending"]) == 0)
        #expect(GroupWire.int(final["cursor"]) == 800)
        await client.close()
        await server.stop()
    }

    @Test func killDashNineLosesNoDeliveryAndRedeliversNoAcknowledgedOne() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        // The executable runs the order modules: a group may not take a module's name such as "orders".
        let server = try ProcessTests.ServerProcess(data: directory.path)
        defer { if server.process.isRunning { server.kill9() } }
        let client = try await LoglineClient.connect(port: server.port)
        _ = try await client.send([
            "GROUP", "CREATE", "shipping", "TYPE", "order-approved", "ACKWAIT", "300", "MAXINFLIGHT", "200",
        ])
        _ = try await GroupWire.appendMany(client, stream: "o1", count: 400) { ConsumerGroupTests.eventType($0) }
        var before = Ledger()
        for _ in 0..<2 {
            let batch = try await GroupWire.fetch(client, "shipping", "c1", count: 50)
            #expect(try await GroupWire.ack(client, "shipping", batch.map(\.position)) == batch.count)
            before.delivered += batch
            before.acked.formUnion(batch.map(\.position))
        }
        let unackedBatch = try await GroupWire.fetch(client, "shipping", "c1", count: 50)
        let unacked = Set(unackedBatch.map(\.position))
        #expect(before.acked.count == 100 && unacked.count == 50)

        // Appends keep arriving on other connections when the server is killed.
        let port = server.port
        let writers = try await withThrowingTaskGroup(of: LoglineClient.self) { group in
            for _ in 0..<4 { group.addTask { try await LoglineClient.connect(port: port) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let appended = ProcessTests.Acknowledged<UInt64, String>(target: 300)
        let writing = Task {
            await withTaskGroup(of: Void.self) { group in
                for (index, writer) in writers.enumerated() {
                    group.addTask {
                        for sequence in 0..<20_000 {
                            let type = ConsumerGroupTests.eventType(sequence)
                            guard
                                let position = try? await GroupWire.append(
                                    writer, stream: "w\(index)", type: type)
                            else { return }
                            appended.record(type, for: position)
                        }
                    }
                }
            }
            appended.writersStopped()
        }
        for await _ in appended.reachedTarget { break }
        server.kill9()
        await writing.value
        for writer in writers { await writer.close() }
        await client.close()

        let restarted = try ProcessTests.ServerProcess(data: directory.path)
        defer { if restarted.process.isRunning { restarted.kill9() } }
        let after = try await LoglineClient.connect(port: restarted.port)
        // Every acknowledged append is in the log; the group's events are the matching ones in the log.
        var matching = Set<UInt64>()
        var from: UInt64 = 1
        for _ in 0..<100 {
            let page = try GroupWire.objects(
                try await after.send(["READALL", "FROM", String(from), "COUNT", "10000", "TYPE", "order-approved"]))
            guard let last = page.last.flatMap({ GroupWire.int($0["position"]) }) else { break }
            matching.formUnion(page.compactMap { GroupWire.int($0["position"]).map(UInt64.init) })
            from = UInt64(last) + 1
        }
        let acknowledged = appended.receipts.withLock { $0 }
        #expect(acknowledged.count >= 300)
        for (position, type) in acknowledged where type == "order-approved" {
            #expect(matching.contains(position), "acknowledged append at \(position) is not delivered")
        }
        #expect(before.acked.isSubset(of: matching) && unacked.isSubset(of: matching))

        var ledger = Ledger()
        try await Self.consumeUntilAcked(
            after, group: "shipping", consumer: "c1", target: matching.subtracting(before.acked), ledger: &ledger)
        let redelivered = ledger.delivered.map(\.position)
        #expect(before.acked.isDisjoint(with: redelivered), "acknowledged events were delivered again")
        #expect(Set(redelivered).count == redelivered.count, "an event was delivered twice after the restart")
        #expect(ledger.settledTwice == 0)
        #expect(before.acked.union(ledger.acked) == matching)
        for delivery in ledger.delivered where unacked.contains(delivery.position) {
            #expect(delivery.deliveryCount == 2, "\(delivery)")
        }
        #expect(try await GroupWire.list(after, "PENDING", "shipping").isEmpty)
        await after.close()
        restarted.terminate()
    }
}
