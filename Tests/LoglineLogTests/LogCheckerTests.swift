import Foundation
import LoglineCore
import LoglineLMDB
import LoglineLog
import Testing

/// A store with three streams, module checkpoints, a rebuild and a consumer group, built for the checker.
private struct CheckerFixture {
    let path: String
    /// The event ids, by position (index 0 is position 1).
    let ids: [EventID]

    /// Builds the store and closes it:
    /// positions 1 order/o1 v1, 2 customer/c1 v1, 3-4 order/o1 v2-3 (one append), 5 order/o2 v1, 6 customer/c1 v2.
    static func make(in path: String) async throws -> CheckerFixture {
        let log = try LMDBEventLog(directory: path, logger: testLogger)
        defer { log.close() }
        let ids = (0..<6).map { _ in EventID.random() }
        _ = try await log.append(request(stream("order", "o1"), event("order-created", id: ids[0])))
        _ = try await log.append(request(stream("customer", "c1"), event("customer-credited", id: ids[1])))
        _ = try await log.append(
            request(
                stream("order", "o1"), event("order-paid", id: ids[2], metadata: #"{"k":"v"}"#),
                event("order-approved", id: ids[3], data: "[1, 2]")))
        _ = try await log.append(request(stream("order", "o2"), event("order-created", id: ids[4])))
        _ = try await log.append(request(stream("customer", "c1"), event("customer-debited", id: ids[5])))
        let groupRecord = #"{"types":[],"ack_wait_ms":30000,"max_in_flight":25,"max_deliver":5,"cursor":5}"#
        _ = try await log.commit(
            CommitUnit(writes: [
                StateWrite(table: "checkpoint", key: bytes("orders"), value: bigEndian(6) + bigEndian(6)),
                StateWrite(table: "checkpoint", key: bytes("payment"), value: bigEndian(4) + bigEndian(2)),
                StateWrite(
                    table: "rebuild", key: bytes("orders"), value: bigEndian(3) + bigEndian(3) + bigEndian(2)),
                StateWrite(table: "groups", key: bytes("notify"), value: bytes(groupRecord)),
                StateWrite(table: "gpending/notify", key: bigEndian(3), value: bytes("{}")),
                StateWrite(table: "gdead/notify", key: bigEndian(2), value: bytes("{}")),
            ]))
        return CheckerFixture(path: path, ids: ids)
    }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

private func bigEndian(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> UInt64(56 - $0 * 8)) }
}

/// The key of a state-table entry in the `state` database.
private func stateKey(_ table: String, _ key: [UInt8]) -> [UInt8] {
    bytes(table) + [0] + key
}

/// The key of a stream's version in `stream_events`.
private func streamEventKey(_ type: String, _ id: String, version: UInt64) -> [UInt8] {
    bytes(type) + [0] + bytes(id) + [0] + bigEndian(version)
}

/// The databases of a closed store, opened straight through LMDB to damage them on purpose.
private struct RawStore {
    let events: LMDBDatabase
    let streamEvents: LMDBDatabase
    let eventIDs: LMDBDatabase
    let meta: LMDBDatabase
    let state: LMDBDatabase

    /// Runs `body` in one write transaction on the store in `path`, which no log may have open.
    static func damage(_ path: String, _ body: (LMDBTransaction, RawStore) throws -> Void) throws {
        let environment = try LMDBEnvironment(directory: path)
        defer { environment.close() }
        let store = RawStore(
            events: try environment.openDatabase(named: "events"),
            streamEvents: try environment.openDatabase(named: "stream_events"),
            eventIDs: try environment.openDatabase(named: "event_ids"),
            meta: try environment.openDatabase(named: "meta"),
            state: try environment.openDatabase(named: "state"))
        try environment.write { transaction in try body(transaction, store) }
    }
}

/// Opens the store, checks it, closes it.
private func check(_ path: String, maximumProblems: Int = 1000) throws -> CheckReport {
    let log = try LMDBEventLog(directory: path, logger: testLogger)
    defer { log.close() }
    return try LogChecker(log: log, maximumProblems: maximumProblems).check()
}

@Suite("LogChecker: a store's consistency", .timeLimit(.minutes(2)))
struct LogCheckerTests {
    @Test("a consistent store passes, with the right counts")
    func cleanStore() async throws {
        try await withTemporaryDirectory { path in
            _ = try await CheckerFixture.make(in: path)
            let report = try check(path)
            #expect(report.problems == [])
            #expect(report.isClean)
            #expect(report.headPosition == 6)
            #expect(report.eventCount == 6)
            #expect(report.streamCount == 3)
            #expect(report.checkpointCount == 2)
            #expect(report.rebuildCount == 1)
            #expect(report.groupCount == 1)
            #expect(report.groupEntryCount == 2)
        }
    }

    @Test("an empty store passes")
    func emptyStore() async throws {
        try await withTemporaryDirectory { path in
            let report = try check(path)
            #expect(report.isClean)
            #expect(report.headPosition == 0)
            #expect(report.eventCount == 0)
            #expect(report.streamCount == 0)
        }
    }

    @Test("a missing stream_events entry is reported, and the gap in the stream's versions")
    func missingStreamIndexEntry() async throws {
        try await withTemporaryDirectory { path in
            _ = try await CheckerFixture.make(in: path)
            try RawStore.damage(path) { transaction, store in
                let deleted = try transaction.delete(store.streamEvents, key: streamEventKey("order", "o1", version: 2))
                #expect(deleted)
            }
            let report = try check(path)
            #expect(!report.isClean)
            #expect(Set(report.problems.map(\.kind)) == [.streamIndexMissing, .streamVersionGap])
            let missing = report.problems.first { $0.kind == .streamIndexMissing }
            #expect(missing?.message.contains("position 3") == true)
            #expect(missing?.message.contains("order/o1 version 2") == true)
            let gap = report.problems.first { $0.kind == .streamVersionGap }
            #expect(gap?.message.contains("from version 1 to version 3") == true)
        }
    }

    @Test("a stream_events entry pointing at another event is reported")
    func wrongStreamIndexEntry() async throws {
        try await withTemporaryDirectory { path in
            _ = try await CheckerFixture.make(in: path)
            try RawStore.damage(path) { transaction, store in
                try transaction.put(
                    store.streamEvents, key: streamEventKey("order", "o2", version: 1), value: bigEndian(2))
            }
            let kinds = Set(try check(path).problems.map(\.kind))
            #expect(kinds == [.streamIndexMismatch, .streamIndexOrphan])
        }
    }

    @Test("missing, wrong and extra event_ids entries are reported")
    func eventIDEntries() async throws {
        try await withTemporaryDirectory { path in
            let fixture = try await CheckerFixture.make(in: path)
            let stray = EventID.random()
            let beyond = EventID.random()
            try RawStore.damage(path) { transaction, store in
                let deleted = try transaction.delete(store.eventIDs, key: fixture.ids[4].bytes)
                #expect(deleted)
                try transaction.put(store.eventIDs, key: stray.bytes, value: bigEndian(4))
                try transaction.put(store.eventIDs, key: beyond.bytes, value: bigEndian(99))
            }
            let report = try check(path)
            #expect(report.problemCount == 3)
            let missing = report.problems.filter { $0.kind == .eventIDMissing }
            #expect(missing.count == 1)
            #expect(missing.first?.message.contains("\(fixture.ids[4])") == true)
            #expect(missing.first?.message.contains("position 5") == true)
            let orphans = report.problems.filter { $0.kind == .eventIDOrphan }.map(\.message)
            #expect(orphans.count == 2)
            #expect(orphans.contains { $0.contains("\(stray)") && $0.contains("holds the event \(fixture.ids[3])") })
            #expect(orphans.contains { $0.contains("\(beyond)") && $0.contains("beyond the head 6") })
        }
    }

    @Test("a wrong count of streams is reported")
    func streamCount() async throws {
        try await withTemporaryDirectory { path in
            _ = try await CheckerFixture.make(in: path)
            try RawStore.damage(path) { transaction, store in
                try transaction.put(store.meta, key: bytes("stream_count"), value: bigEndian(7))
            }
            let report = try check(path)
            #expect(report.problems.map(\.kind) == [.streamCount])
            #expect(report.problems.first?.message == "meta says there are 7 streams, but 3 events are at version 1")
        }
    }

    @Test("checkpoints and rebuilds beyond the head are reported")
    func checkpointsBeyondHead() async throws {
        try await withTemporaryDirectory { path in
            _ = try await CheckerFixture.make(in: path)
            try RawStore.damage(path) { transaction, store in
                try transaction.put(
                    store.state, key: stateKey("checkpoint", bytes("payment")), value: bigEndian(50) + bigEndian(9))
                try transaction.put(
                    store.state, key: stateKey("rebuild", bytes("orders")),
                    value: bigEndian(7) + bigEndian(7) + bigEndian(2))
                try transaction.put(store.state, key: stateKey("checkpoint", bytes("broken")), value: [1, 2, 3])
            }
            let report = try check(path)
            #expect(report.checkpointCount == 3)
            #expect(report.problemCount == 3)
            #expect(
                report.problems.contains(
                    CheckProblem(
                        kind: .checkpoint,
                        message: "module payment has its checkpoint at position 50, beyond the head 6")))
            #expect(
                report.problems.contains(
                    CheckProblem(
                        kind: .rebuild, message: "module orders has its rebuild at position 7, beyond the head 6")))
            #expect(report.problems.contains { $0.kind == .checkpoint && $0.message.contains("broken") })
        }
    }

    @Test("a group cursor beyond the head and deliveries of missing events or groups are reported")
    func consumerGroups() async throws {
        try await withTemporaryDirectory { path in
            _ = try await CheckerFixture.make(in: path)
            try RawStore.damage(path) { transaction, store in
                try transaction.put(
                    store.state, key: stateKey("groups", bytes("notify")), value: bytes(#"{"types":[],"cursor":60}"#))
                try transaction.put(store.state, key: stateKey("gpending/notify", bigEndian(77)), value: bytes("{}"))
                try transaction.put(store.state, key: stateKey("gdead/notify", bigEndian(88)), value: bytes("{}"))
                try transaction.put(store.state, key: stateKey("gpending/ghost", bigEndian(1)), value: bytes("{}"))
            }
            let report = try check(path)
            #expect(report.groupCount == 1)
            #expect(report.groupEntryCount == 5)
            #expect(report.problemCount == 4)
            #expect(
                report.problems.contains(
                    CheckProblem(
                        kind: .groupCursor,
                        message: "consumer group notify has its cursor at position 60, beyond the head 6")))
            #expect(report.problems.contains { $0.kind == .groupPending && $0.message.contains("position 77") })
            #expect(report.problems.contains { $0.kind == .groupDead && $0.message.contains("position 88") })
            #expect(report.problems.contains { $0.kind == .groupPending && $0.message.contains("ghost") })
        }
    }

    @Test("a missing event is a gap in the positions, and leaves its index entries pointing at nothing")
    func missingEvent() async throws {
        try await withTemporaryDirectory { path in
            let fixture = try await CheckerFixture.make(in: path)
            try RawStore.damage(path) { transaction, store in
                let deleted = try transaction.delete(store.events, key: bigEndian(3))
                #expect(deleted)
            }
            let report = try check(path)
            #expect(report.eventCount == 5)
            #expect(
                report.problems.contains(
                    CheckProblem(kind: .positionGap, message: "position 3 is missing (the next event is at position 4)")
                )
            )
            #expect(report.problems.contains { $0.kind == .streamIndexOrphan && $0.message.contains("order/o1") })
            #expect(
                report.problems.contains { $0.kind == .eventIDOrphan && $0.message.contains("\(fixture.ids[2])") })
            // The pending delivery of the group was for position 3.
            #expect(report.problems.contains { $0.kind == .groupPending && $0.message.contains("position 3") })
        }
    }

    @Test("a record that does not decode is reported")
    func damagedRecord() async throws {
        try await withTemporaryDirectory { path in
            _ = try await CheckerFixture.make(in: path)
            try RawStore.damage(path) { transaction, store in
                try transaction.put(store.events, key: bigEndian(2), value: [9, 9, 9])
            }
            let report = try check(path)
            #expect(report.eventCount == 6)
            #expect(
                report.problems.contains(
                    CheckProblem(kind: .damagedRecord, message: "the record at position 2 cannot be decoded")))
            // Its index entries now point at an unreadable event.
            #expect(report.problems.contains { $0.kind == .streamIndexOrphan && $0.message.contains("customer/c1") })
            #expect(report.problems.contains { $0.kind == .eventIDOrphan })
        }
    }

    @Test("the report lists at most maximumProblems problems but counts them all")
    func problemLimit() async throws {
        try await withTemporaryDirectory { path in
            _ = try await CheckerFixture.make(in: path)
            try RawStore.damage(path) { transaction, store in
                try transaction.clear(store.eventIDs)
            }
            let report = try check(path, maximumProblems: 2)
            #expect(report.problems.count == 2)
            #expect(report.problemCount == 6)
            #expect(!report.isClean)
        }
    }
}
