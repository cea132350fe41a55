import Foundation
import LoglineCore
import LoglineLog
import Testing

/// A JSON string of `size` copies of one letter chosen by `index`.
private func payload(_ index: Int, size: Int) -> String {
    "\"" + String(repeating: Character(UnicodeScalar(UInt8(ascii: "a") + UInt8(index % 26))), count: size) + "\""
}

@Suite("LMDBEventLog: restart, map growth, locking, closing", .timeLimit(.minutes(5)))
struct LifecycleTests {
    @Test("after close and reopen everything is there, and new appends continue the positions")
    func restartPersistence() async throws {
        try await withTemporaryDirectory { path in
            let streams = [stream("order", "1"), stream("order", "2"), stream("customer", "9")]
            let ids = (0..<9).map { _ in EventID.random() }
            let before: [RecordedEvent]
            do {
                let log = try LMDBEventLog(directory: path, logger: testLogger)
                defer { log.close() }
                for (index, id) in ids.enumerated() {
                    _ = try await log.append(
                        request(
                            streams[index % 3],
                            event("e\(index)", id: id, data: "[\(index)]", metadata: #"{"i":\#(index)}"#)))
                }
                _ = try await log.append(request(streams[0], event("multi"), event("multi")))
                before = try log.everything()
                #expect(before.count == 11)
            }

            let reopened = try LMDBEventLog(directory: path, logger: testLogger)
            defer { reopened.close() }
            #expect(reopened.headPosition == 11)
            #expect(try reopened.everything() == before)
            #expect(try reopened.streamVersion(streams[0]) == 5)
            #expect(try reopened.streamVersion(streams[1]) == 3)
            #expect(try reopened.streamVersion(streams[2]) == 3)
            let info = try reopened.info()
            #expect(info.lastPosition == 11)
            #expect(info.eventCount == 11)
            #expect(info.streamCount == 3)

            // The event ids survived: a retry is recognised, a reuse refused.
            let retry = try await reopened.append(request(streams[1], event("e1", id: ids[1], data: "[1]")))
            #expect(retry.alreadyAppended)
            #expect(retry.events.map(\.position) == [2])
            await #expect(throws: AppendError.eventIDReused(ids[1], position: 2)) {
                try await reopened.append(request(streams[1], event("e1", id: ids[1], data: "[2]")))
            }
            // Versions and positions continue where they were.
            await #expect(
                throws: AppendError.wrongExpectedVersion(stream: streams[1], expected: .noStream, actual: 3)
            ) {
                try await reopened.append(request(streams[1], .noStream, event()))
            }
            let next = try await reopened.append(request(streams[1], .exact(3), event("after-restart")))
            #expect(next.events.map(\.position) == [12])
            #expect(next.events.map(\.version) == [4])
            let fresh = try await reopened.append(request(stream("new", "1"), .noStream, event()))
            #expect(fresh.events.map(\.position) == [13])
            #expect(reopened.headPosition == 13)
            #expect(try reopened.everything().prefix(11) == before[...])
            // recorded_at does not go backwards across the restart.
            let times = try reopened.everything().map(\.recordedAt)
            #expect(zip(times, times.dropFirst()).allSatisfy { $0 <= $1 })
        }
    }

    @Test("the map grows from 1 MiB while several MiB are appended, and everything reads back")
    func mapGrowth() async throws {
        try await withTemporaryDirectory { path in
            let configuration = smallMapConfiguration(1 << 20)
            let chunk = 100 * 1024
            var expected: [Int: String] = [:]
            do {
                let log = try LMDBEventLog(directory: path, configuration: configuration, logger: testLogger)
                defer { log.close() }
                // Concurrent appenders, so batches hold several requests when the map fills up.
                let results = await withTaskGroup(of: [(Int, Result<AppendResult, AppendError>)].self) { group in
                    for task in 0..<4 {
                        group.addTask {
                            var results: [(Int, Result<AppendResult, AppendError>)] = []
                            for index in stride(from: task, to: 48, by: 4) {
                                let data = payload(index, size: chunk)
                                results.append(
                                    (
                                        index,
                                        await log.outcome(
                                            request(stream("big", "\(task)"), event("blob-\(index)", data: data)))
                                    ))
                            }
                            return results
                        }
                    }
                    // Readers run while the map grows.
                    group.addTask {
                        for _ in 0..<50 { _ = try? log.readAll(from: 1, limit: 3, eventTypes: []) }
                        return []
                    }
                    var all: [(Int, Result<AppendResult, AppendError>)] = []
                    for await results in group { all += results }
                    return all
                }
                #expect(results.count == 48)
                for (index, result) in results {
                    #expect(result.success != nil, "append \(index): \(String(describing: result.failure))")
                    expected[index] = payload(index, size: chunk)
                }
                // One event larger than the whole initial map.
                let huge = payload(99, size: 3 << 20)
                let hugeResult = try await log.append(request(stream("big", "huge"), event("blob-99", data: huge)))
                expected[99] = huge
                #expect(hugeResult.events.map(\.position) == [49])

                let all = try log.everything()
                #expect(all.map(\.position) == Array(1...49))
                for stored in all {
                    let index = try #require(Int(stored.eventType.dropFirst(5)))
                    #expect(stored.data == Array(try #require(expected[index]).utf8), "blob \(index)")
                }
                #expect(try log.info().storageBytes > UInt64(48 * chunk + (3 << 20)))
            }

            // Reopened with the same small initial map, the store is whole and still writable.
            let reopened = try LMDBEventLog(directory: path, configuration: configuration, logger: testLogger)
            defer { reopened.close() }
            #expect(reopened.headPosition == 49)
            let all = try reopened.everything()
            #expect(all.count == 49)
            for stored in all {
                let index = try #require(Int(stored.eventType.dropFirst(5)))
                #expect(stored.data == Array(try #require(expected[index]).utf8), "blob \(index) after reopen")
            }
            let more = try await reopened.append(
                request(stream("big", "more"), event("blob-0", data: payload(0, size: 2 << 20))))
            #expect(more.events.map(\.position) == [50])
        }
    }

    @Test("a second log on the same directory is refused while the first is open, and allowed after close()")
    func directoryLock() async throws {
        try await withTemporaryDirectory { path in
            let first = try LMDBEventLog(directory: path, logger: testLogger)
            defer { first.close() }
            _ = try await first.append(request(stream("a", "1"), event()))

            let error = #expect(throws: OpenError.self) {
                try LMDBEventLog(directory: path, logger: testLogger)
            }
            guard case .locked = try #require(error) else {
                Issue.record("expected OpenError.locked, got \(String(describing: error))")
                return
            }
            let description = try #require(error).description
            #expect(description.contains("in use"))
            #expect(description.contains(first.directory))
            #expect(description.contains("\(ProcessInfo.processInfo.processIdentifier)"))

            // The refused attempt did not disturb the first log.
            let second = try await first.append(request(stream("a", "1"), event()))
            #expect(second.events.map(\.position) == [2])

            first.close()
            do {
                let reopened = try LMDBEventLog(directory: path, logger: testLogger)
                #expect(reopened.headPosition == 2)
                let third = try await reopened.append(request(stream("a", "1"), event()))
                #expect(third.events.map(\.position) == [3])
                reopened.close()
            } catch {
                Issue.record("after close() of the first log, the directory should open again: \(error)")
            }
            // `first` stays referenced until here (as in a process that closes its log and opens it again).
            withExtendedLifetime(first) {}
        }
    }

    @Test("onCommit listeners receive each new head, and nothing for commits that write nothing")
    func onCommit() async throws {
        try await withLog { log, _ in
            let (heads, continuation) = AsyncStream<LogPosition>.makeStream()
            let second = Locked<[LogPosition]>([])
            log.onCommit { continuation.yield($0) }
            log.onCommit { head in second.withLock { $0.append(head) } }

            let target = stream("order", "1")
            let id = EventID.random()
            _ = try await log.append(request(target, event("a", id: id)))  // head 1
            _ = try await log.append(request(target, event(), event(), event()))  // head 4
            _ = await log.outcome(request(target, .noStream, event()))  // conflict: no commit of events
            _ = try await log.append(request(target, event("a", id: id)))  // retry: nothing written
            _ = await log.outcome(request(target, events: []))  // empty
            _ = try await log.append(request(stream("order", "2"), event()))  // head 5

            var seen: [LogPosition] = []
            for await head in heads {
                seen.append(head)
                if head >= 5 { break }
            }
            #expect(seen == [1, 4, 5])
            #expect(log.headPosition == 5)
            log.close()  // the writer has finished: the second listener's list is complete
            #expect(second.withLock { $0 } == [1, 4, 5])
        }
    }

    @Test("after close(), appends fail with closed; appends queued before it complete")
    func close() async throws {
        try await withLog { log, _ in
            let target = stream("order", "1")
            _ = try await log.append(request(target, event()))
            // Queue appends and close at once: every queued append is finished before close() returns.
            let completed = Locked<[Result<AppendResult, AppendError>]>([])
            for index in 0..<20 {
                log.append(request(target, event("queued-\(index)"))) { result in
                    completed.withLock { $0.append(result) }
                }
            }
            log.close()
            let results = completed.withLock { $0 }
            #expect(results.count == 20)
            #expect(results.allSatisfy { $0.success != nil })
            #expect(log.headPosition == 21)

            await #expect(throws: AppendError.closed) {
                try await log.append(request(target, event()))
            }
            // The callback form reports closed too, synchronously.
            let closed = Locked<Result<AppendResult, AppendError>?>(nil)
            log.append(request(target, event())) { result in closed.withLock { $0 = result } }
            #expect(closed.withLock { $0 }?.failure == .closed)
            #expect(log.headPosition == 21)
            log.close()  // a second close is harmless
            #expect(log.headPosition == 21)
        }
    }

    @Test("info() counts events and streams")
    func info() async throws {
        try await withLog { log, path in
            let empty = try log.info()
            #expect(empty.eventCount == 0)
            #expect(empty.streamCount == 0)
            _ = try await log.append(request(stream("a", "1"), event(), event()))
            _ = try await log.append(request(stream("a", "2"), event()))
            _ = try await log.append(request(stream("b", "1"), event(), event(), event()))
            _ = try await log.append(request(stream("a", "1"), event()))
            _ = await log.outcome(request(stream("c", "1"), .exact(3), event()))  // conflict, no stream created
            let info = try log.info()
            #expect(info.lastPosition == 7)
            #expect(info.eventCount == 7)
            #expect(info.streamCount == 3)
            #expect(info.location == URL(fileURLWithPath: path).standardizedFileURL.path)
            #expect(info.storageBytes > 0)
            // The data file and the write-ahead journal's files.
            var onDisk: UInt64 = 0
            for name in ["data.mdb", "journal-0.wal", "journal-1.wal", "journal.checkpoint"] {
                let attributes = try FileManager.default.attributesOfItem(atPath: info.location + "/" + name)
                onDisk += try #require((attributes[.size] as? NSNumber)?.uint64Value)
            }
            #expect(info.storageBytes == onDisk)
        }
    }

    @Test("opening creates a missing data directory")
    func createsDirectory() async throws {
        try await withTemporaryDirectory { path in
            let nested = path + "/deeper/store"
            let log = try LMDBEventLog(directory: nested, logger: testLogger)
            defer { log.close() }
            var isDirectory: ObjCBool = false
            #expect(FileManager.default.fileExists(atPath: nested, isDirectory: &isDirectory))
            #expect(isDirectory.boolValue)
            _ = try await log.append(request(stream("a", "1"), event()))
            #expect(log.headPosition == 1)
        }
    }
}
