import Dispatch
import LoglineCore
import LoglineLog
import Synchronization
import Testing

/// What one successful append reported, with what was asked.
private struct Reported: Sendable {
    let stream: StreamName
    let events: [AppendedEvent]
    let types: [String]
}

@Suite("LMDBEventLog: concurrent appends", .timeLimit(.minutes(5)))
struct ConcurrencyTests {
    @Test("50 tasks x 40 appends: every append succeeds, positions are exactly 1...N, versions gap-free")
    func manyConcurrentAppends() async throws {
        try await withLog { log, _ in
            let taskCount = 50
            let appendsPerTask = 40
            let streams = (0..<8).map { stream("load", "s\($0)") }
            let reports = await withTaskGroup(of: [Result<Reported, AppendError>].self) { group in
                for task in 0..<taskCount {
                    group.addTask {
                        var results: [Result<Reported, AppendError>] = []
                        for index in 0..<appendsPerTask {
                            let target = streams[(task + index) % streams.count]
                            // Every fifth request carries three events, to check that requests stay contiguous.
                            let count = index % 5 == 0 ? 3 : 1
                            let types = (0..<count).map { "t\(task)-\(index)-\($0)" }
                            let events = types.map { event($0, id: EventID.random(), data: #"{"task":\#(task)}"#) }
                            switch await log.outcome(request(target, .any, events: events)) {
                            case .success(let result):
                                results.append(.success(Reported(stream: target, events: result.events, types: types)))
                            case .failure(let error):
                                results.append(.failure(error))
                            }
                        }
                        return results
                    }
                }
                var all: [Result<Reported, AppendError>] = []
                for await results in group { all += results }
                return all
            }

            #expect(reports.count == taskCount * appendsPerTask)
            let failures = reports.compactMap(\.failure)
            #expect(failures.isEmpty, "\(failures.prefix(3))")
            let successes = reports.compactMap(\.success)
            let total = successes.reduce(0) { $0 + $1.events.count }
            #expect(total == taskCount * appendsPerTask / 5 * 3 + taskCount * appendsPerTask / 5 * 4)

            // Exactly the positions 1...N, each once.
            let positions = successes.flatMap { $0.events.map(\.position) }
            #expect(positions.count == total)
            #expect(Set(positions) == Set(1...LogPosition(total)))
            // The events of one request are contiguous, in order.
            for report in successes {
                let first = report.events[0]
                for (offset, appended) in report.events.enumerated() {
                    #expect(appended.position == first.position + LogPosition(offset))
                    #expect(appended.version == first.version + StreamVersion(offset))
                }
            }
            // Per stream, the versions reported are exactly 1...count and increase with the position.
            for target in streams {
                let appended = successes.filter { $0.stream == target }.flatMap(\.events).sorted {
                    $0.position < $1.position
                }
                #expect(appended.map(\.version) == Array(1...StreamVersion(appended.count)))
                #expect(try log.streamVersion(target) == StreamVersion(appended.count))
                let stored = try log.everything(in: target)
                #expect(stored.map(\.position) == appended.map(\.position))
                #expect(stored.map(\.eventID) == appended.map(\.eventID))
            }

            // The log agrees with what each append reported.
            #expect(log.headPosition == LogPosition(total))
            let all = try log.everything()
            #expect(all.map(\.position) == Array(1...LogPosition(total)))
            var byPosition: [LogPosition: (StreamName, AppendedEvent, String)] = [:]
            for report in successes {
                for (appended, type) in zip(report.events, report.types) {
                    byPosition[appended.position] = (report.stream, appended, type)
                }
            }
            for stored in all {
                let (target, appended, type) = try #require(byPosition[stored.position])
                #expect(stored.stream == target)
                #expect(stored.version == appended.version)
                #expect(stored.eventID == appended.eventID)
                #expect(stored.eventType == type)
            }
            let info = try log.info()
            #expect(info.eventCount == UInt64(total))
            #expect(info.streamCount == UInt64(streams.count))
        }
    }

    @Test("concurrent appends to one stream expecting the same version: exactly one wins each round")
    func racingExactExpectations() async throws {
        try await withLog { log, _ in
            let target = stream("contended", "1")
            let contenders = 16
            for round: StreamVersion in 0..<12 {
                let results = await withTaskGroup(of: Result<AppendResult, AppendError>.self) { group in
                    for contender in 0..<contenders {
                        group.addTask {
                            await log.outcome(request(target, .exact(round), event("r\(round)-c\(contender)")))
                        }
                    }
                    var results: [Result<AppendResult, AppendError>] = []
                    for await result in group { results.append(result) }
                    return results
                }
                let winners = results.compactMap(\.success)
                #expect(winners.count == 1, "round \(round)")
                #expect(winners.first?.events.map(\.version) == [round + 1])
                for failure in results.compactMap(\.failure) {
                    #expect(
                        failure == .wrongExpectedVersion(stream: target, expected: .exact(round), actual: round + 1))
                }
                #expect(try log.streamVersion(target) == round + 1)
            }
            let stored = try log.everything(in: target)
            #expect(stored.map(\.version) == Array(1...12))
            #expect(log.headPosition == 12)
        }
    }

    @Test("optimistic writers that retry on conflict all get through, each version won exactly once")
    func optimisticRetryLoop() async throws {
        try await withLog { log, _ in
            let target = stream("counter", "1")
            let writers = 8
            let appendsPerWriter = 10
            let (wins, conflicts) = await withTaskGroup(of: ([StreamVersion], Int).self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        var won: [StreamVersion] = []
                        var conflicts = 0
                        var known: StreamVersion = 0
                        while won.count < appendsPerWriter {
                            let attempt = request(target, .exact(known), event("w\(writer)", data: "\(won.count)"))
                            switch await log.outcome(attempt) {
                            case .success(let result):
                                won.append(result.events[0].version)
                                known = result.events[0].version
                            case .failure(.wrongExpectedVersion(_, _, let actual)):
                                #expect(actual > known)
                                known = actual
                                conflicts += 1
                            case .failure(let other):
                                Issue.record("unexpected failure \(other)")
                                return (won, conflicts)
                            }
                        }
                        return (won, conflicts)
                    }
                }
                var wins: [StreamVersion] = []
                var conflicts = 0
                for await (won, count) in group {
                    wins += won
                    conflicts += count
                }
                return (wins, conflicts)
            }
            let total = writers * appendsPerWriter
            #expect(wins.sorted() == Array(1...StreamVersion(total)))
            #expect(try log.streamVersion(target) == StreamVersion(total))
            let stored = try log.everything(in: target)
            #expect(stored.map(\.version) == Array(1...StreamVersion(total)))
            // Each writer's own events appear in the order it wrote them.
            for writer in 0..<writers {
                let mine = stored.filter { $0.eventType == "w\(writer)" }.map {
                    String(decoding: $0.data, as: UTF8.self)
                }
                #expect(mine == (0..<appendsPerWriter).map(String.init))
            }
            // Every conflict cost one extra round trip; none was lost or double counted.
            #expect(wins.count + conflicts >= total)
        }
    }

    @Test("concurrent retries of one request: one writes, the others report the same positions")
    func concurrentRetries() async throws {
        try await withLog { log, _ in
            let target = stream("order", "1")
            let events = (0..<3).map { event("e", id: EventID.random(), data: "[\($0)]") }
            let results = await withTaskGroup(of: Result<AppendResult, AppendError>.self) { group in
                for _ in 0..<20 {
                    group.addTask { await log.outcome(request(target, .noStream, events: events)) }
                }
                var results: [Result<AppendResult, AppendError>] = []
                for await result in group { results.append(result) }
                return results
            }
            let successes = results.compactMap(\.success)
            #expect(successes.count == 20)
            #expect(successes.filter { !$0.alreadyAppended }.count == 1)
            #expect(Set(successes.map(\.events)).count == 1)
            #expect(successes.first?.events.map(\.position) == [1, 2, 3])
            #expect(log.headPosition == 3)
        }
    }
}

/// Holds the writer thread inside an `onCommit` listener until released, so that the appends queued meanwhile
/// are all taken into the next write transaction.
private final class WriterGate: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let armed = Atomic<Bool>(false)

    func arm() { armed.store(true, ordering: .releasing) }

    /// Called by the listener, on the writer thread.
    func holdIfArmed() {
        if armed.exchange(false, ordering: .acquiringAndReleasing) { semaphore.wait() }
    }

    func release() { semaphore.signal() }
}

@Suite("LMDBEventLog: requests sharing one write transaction", .timeLimit(.minutes(5)))
struct GroupCommitTests {
    /// Appends `warmUp`, holds the writer, queues `requests`, releases the writer, and returns the outcomes.
    private func sameBatch(
        _ log: LMDBEventLog, warmUp: AppendRequest, _ requests: [AppendRequest]
    ) async throws -> [Result<AppendResult, AppendError>] {
        let gate = WriterGate()
        log.onCommit { _ in gate.holdIfArmed() }
        gate.arm()
        _ = try await log.append(warmUp)
        let streams = enqueue(requests, on: log)
        gate.release()
        let results = await outcomes(streams)
        return try results.map { try #require($0) }
    }

    @Test("a group commit takes at most maximumBatchBytes of requests, and at least one request")
    func batchesAreBoundedInBytes() async throws {
        var configuration = LMDBEventLog.Configuration()
        let data = "[" + String(repeating: "1,", count: 1999) + "1]"  // 4,001 bytes
        configuration.maximumBatchBytes = 3 * (data.utf8.count + 2 + 256)
        try await withLog(configuration: configuration) { log, _ in
            let heads = Mutex<[LogPosition]>([])
            log.onCommit { head in heads.withLock { $0.append(head) } }
            let requests = (0..<10).map { request(stream("big", "\($0)"), event("e", data: data)) }
            let results = try await sameBatch(log, warmUp: request(stream("w", "1"), event()), requests)
            #expect(results.allSatisfy { $0.success != nil })
            let commits = heads.withLock { $0 }
            // The warm-up, then the ten in commits of three at most: 4, 7, 10, 11.
            #expect(commits == [1, 4, 7, 10, 11])
            // One request over the limit goes alone, not never.
            let huge = String(repeating: "2", count: 4 * configuration.maximumBatchBytes)
            let alone = try await log.append(request(stream("huge", "1"), event("e", data: huge)))
            #expect(alone.events.map(\.position) == [12])
        }
    }

    @Test("an idempotent retry queued behind its original reports the original's positions")
    func retryInSameBatch() async throws {
        try await withLog { log, _ in
            let target = stream("order", "1")
            let id = EventID.random()
            let original = request(target, .noStream, event("e", id: id, data: "[1]"), event("f"))
            let retry = request(target, .noStream, event("e", id: id, data: "[1]"))
            let results = try await sameBatch(log, warmUp: request(stream("w", "1"), event()), [original, retry])
            let first = try #require(results[0].success)
            let second = try #require(results[1].success)
            #expect(!first.alreadyAppended)
            #expect(first.events.map(\.position) == [2, 3])
            #expect(second.alreadyAppended)
            #expect(second.events == [first.events[0]])
            #expect(log.headPosition == 3)
        }
    }

    @Test("an id reused in the same batch with other content is refused")
    func reusedInSameBatch() async throws {
        try await withLog { log, _ in
            let id = EventID.random()
            let results = try await sameBatch(
                log, warmUp: request(stream("w", "1"), event()),
                [
                    request(stream("a", "1"), event("e", id: id, data: "[1]")),
                    request(stream("b", "1"), event("e", id: id, data: "[1]")),
                    request(stream("a", "1"), event("e", id: id, data: "[2]")),
                    request(stream("a", "1"), event("other", id: id, data: "[1]")),
                ])
            #expect(results[0].success?.events.map(\.position) == [2])
            #expect(results[1].failure == .eventIDReused(id, position: 2))
            #expect(results[2].failure == .eventIDReused(id, position: 2))
            #expect(results[3].failure == .eventIDReused(id, position: 2))
            #expect(try log.streamVersion(stream("b", "1")) == 0)
            #expect(log.headPosition == 2)
        }
    }

    @Test("expectations in one batch see the versions written earlier in it; failures leave no gaps")
    func expectationsInSameBatch() async throws {
        try await withLog { log, _ in
            let target = stream("order", "1")
            let results = try await sameBatch(
                log, warmUp: request(target, .noStream, event("created")),
                [
                    request(target, .exact(1), event("a")),  // version 2
                    request(target, .exact(1), event("b")),  // conflict: now 2
                    request(stream("other", "1"), .noStream, event("c")),
                    request(target, .exact(2), event("d"), event("e")),  // versions 3 and 4
                    request(target, .noStream, event("f")),  // conflict: now 4
                    request(target, .any, events: []),  // empty
                    request(target, .any, event("g")),  // version 5
                ])
            #expect(results[0].success?.events.map(\.position) == [2])
            #expect(results[0].success?.events.map(\.version) == [2])
            #expect(results[1].failure == .wrongExpectedVersion(stream: target, expected: .exact(1), actual: 2))
            #expect(results[2].success?.events.map(\.position) == [3])
            #expect(results[2].success?.events.map(\.version) == [1])
            #expect(results[3].success?.events.map(\.position) == [4, 5])
            #expect(results[3].success?.events.map(\.version) == [3, 4])
            #expect(results[4].failure == .wrongExpectedVersion(stream: target, expected: .noStream, actual: 4))
            #expect(results[5].failure == .emptyRequest)
            #expect(results[6].success?.events.map(\.position) == [6])
            #expect(results[6].success?.events.map(\.version) == [5])

            #expect(try log.everything().map(\.eventType) == ["created", "a", "c", "d", "e", "g"])
            #expect(try log.everything(in: target).map(\.version) == [1, 2, 3, 4, 5])
            #expect(log.headPosition == 6)
        }
    }

    @Test("a duplicate id inside a request in a batch does not poison the other requests")
    func duplicateInSameBatch() async throws {
        try await withLog { log, _ in
            let id = EventID.random()
            let results = try await sameBatch(
                log, warmUp: request(stream("w", "1"), event()),
                [
                    request(stream("a", "1"), event("x")),
                    request(stream("a", "1"), event("e", id: id), event("e", id: id)),
                    request(stream("a", "1"), event("e", id: id)),
                ])
            #expect(results[0].success?.events.map(\.position) == [2])
            #expect(results[1].failure == .duplicateEventIDInRequest(id))
            #expect(results[2].success?.events.map(\.position) == [3])
            #expect(results[2].success?.alreadyAppended == false)
            #expect(try log.everything(in: stream("a", "1")).map(\.version) == [1, 2])
        }
    }
}
