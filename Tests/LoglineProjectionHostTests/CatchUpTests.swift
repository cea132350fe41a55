import LoglineCore
import LoglineLog
import LoglineModuleAPI
import LoglineProjectionHost
import Testing

@Suite("Catch-up and live processing")
struct CatchUpTests {
    @Test("events appended before start are processed in batches, then new appends are followed")
    func catchUpThenLive() async throws {
        try await withFreshLog { base, _ in
            let log = SpyLog(base)
            // 100 handled events over 30 items (some added several times), with 20 unhandled events between.
            var requests: [AppendRequest] = []
            for n in 0..<100 {
                requests.append(added(key(n % 30), color: n % 2 == 0 ? "red" : "blue", size: n % 5))
                if n % 5 == 4 { requests.append(unrelated(n)) }
            }
            let head = try await log.appendAll(requests)
            #expect(head == 120)

            let projector = CountingProjector()
            let host = try ProjectionHost(
                log: log, modules: [projector], configuration: hostConfiguration(batchSize: 7), logger: testLogger)
            try await running(host) {
                try await host.waitForView("items", at: head)

                // Processed in batches of at most 28 events (a rebuild batch) while 28 or more are behind, then of
                // at most 7.
                let reads = log.reads.filter { $0.eventTypes == projector.handledEventTypes }
                #expect(!reads.isEmpty)
                for read in reads {
                    #expect(read.limit == (head - read.after >= 28 ? 28 : 7), "a read after \(read.after)")
                    #expect(read.returned <= read.limit)
                }
                #expect(reads.contains { $0.limit == 28 } && reads.contains { $0.limit == 7 })
                #expect(reads.map(\.returned).reduce(0, +) == 100)
                // Each batch starts where the one before it stopped.
                let nonEmpty = reads.filter { $0.scannedThrough > $0.after }
                for (previous, next) in zip(nonEmpty, nonEmpty.dropFirst()) {
                    #expect(next.after == previous.scannedThrough)
                }

                let everything = try log.everything()
                let expected = try fold(projector, over: everything)
                #expect(try host.allDocuments("items") == inKeyOrder(expected["items"]))
                #expect(try host.json(view: "totals", key: "all") == ["events": 100])
                #expect(host.documentCount("items") == 30)
                // Item 0 was added at n = 0, 30, 60, 90.
                #expect(try host.json(view: "items", key: key(0))?["adds"] == 4)

                var status = try #require(await host.status("counter"))
                #expect(status.kind == .projector)
                #expect(status.state == .running)
                #expect(status.checkpoint == head)
                #expect(status.lag == 0)
                #expect(status.eventsProcessed == 100)
                #expect(status.parkedCount == 0)
                #expect(status.lastError == nil)
                #expect(status.rebuildPosition == nil)

                // Live: each new append is followed.
                for n in 0..<5 {
                    let position = try await log.appendEach([added("live-\(n)", color: "green", size: n)])[0]
                    try await host.waitForView("items", at: position)
                    #expect(try host.json(view: "items", key: "live-\(n)")?["color"] == "green")
                }
                // An unhandled event is stepped over: the checkpoint still reaches it.
                let noise = try await log.appendEach([unrelated(1000)])[0]
                try await host.waitForView("items", at: noise)

                status = try #require(await host.status("counter"))
                #expect(status.checkpoint == log.headPosition)
                #expect(status.checkpoint == noise)
                #expect(status.lag == 0)
                #expect(status.eventsProcessed == 105)
                #expect(try host.json(view: "totals", key: "all") == ["events": 105])
                #expect(host.documentCount("items") == 35)
            }
            let stopped = try #require(await host.status("counter"))
            #expect(stopped.state == .stopped)
        }
    }

    /// Runs the counter over ``RebuildTests/history()`` with the commits of its checkpoint held from the start, and
    /// `body` once the first two catch-up batches of 28 have been handed to the log and neither has committed. Then
    /// waits for the views to reach the head, and checks that every event took effect once.
    static func withTwoCatchUpBatchesHeld(_ body: (SpyLog, ProjectionHost) async throws -> Void) async throws {
        try await withFreshLog { base, _ in
            let log = SpyLog(base)
            let head = try await log.appendAll(RebuildTests.history())
            let expected = try RebuildTests.Snapshot(folding: log.everything())
            log.holdCheckpointBatches(true)
            let host = try ProjectionHost(
                log: log, modules: [CountingProjector()], configuration: hostConfiguration(batchSize: 7),
                logger: testLogger)
            try await running(host, whileStopping: { log.releaseHeld(stopHolding: true) }) {
                #expect(await log.heldCommits.next() == 1)
                #expect(await log.heldCommits.next() == 2)
                try await body(log, host)
                try await host.waitForView("items", at: head)
                #expect(log.staleReads.isEmpty, "\(log.staleReads)")
                #expect(try RebuildTests.Snapshot(host) == expected)
                let status = try #require(await host.status("counter"))
                #expect(status.checkpoint == head)
                #expect(status.eventsProcessed == 100)
                #expect(status.lag == 0)
                #expect(try host.json(view: "totals", key: "all") == ["events": 100])
            }
        }
    }

    @Test(
        "a projector far behind processes a batch while the two before it commit, reading what they write",
        .timeLimit(.minutes(1)))
    func catchUpOverlapsCommits() async throws {
        try await Self.withTwoCatchUpBatchesHeld { log, host in
            // The third batch is read and processed while neither of the two before it has committed. Every batch
            // updates the `totals` document and the document counts, so each depends on the batches before it.
            let second = try #require(log.reads.filter { $0.limit == 28 }.dropFirst().first)
            #expect(await eventually { log.reads.contains { $0.limit == 28 && $0.after == second.scannedThrough } })
            // Answered by the runner once it waits for the first commit, after processing the third batch.
            #expect(await host.status("counter")?.checkpoint == 0)
            log.releaseHeld(stopHolding: true)
        }
    }

    @Test(
        "when the older of two catch-up batches in flight fails, the one after it changes nothing, and the views catch up",
        .timeLimit(.minutes(1)),
        arguments: [
            CommitError.storage("disk on fire"), .conditionFailed(table: "checkpoint", key: Array("counter".utf8)),
        ])
    func failedCatchUpBatchInFlight(failure: CommitError) async throws {
        try await Self.withTwoCatchUpBatchesHeld { log, host in
            // The first fails with `failure`; the second goes to the log, which must refuse it: its condition is the
            // checkpoint the first did not write. Both are processed and committed again, from the checkpoint
            // stored before them: four catch-up batches of 28 over the 100 events, then live batches of 7.
            let unitsBefore = log.units.count
            log.failOldestHeld(with: failure)
            let head = log.headPosition
            try await host.waitForView("items", at: head)
            let redone = log.units.dropFirst(unitsBefore).filter { unit in
                unit.conditions.contains { $0.table == "checkpoint" }
            }
            #expect(redone.count >= 4, "\(redone.count)")
        }
    }

    @Test("on an empty log a host is idle at checkpoint 0 with lag 0")
    func idleOnEmptyAndBehind() async throws {
        try await withFreshLog { log, _ in
            let host = try ProjectionHost(
                log: log, modules: [CountingProjector()], configuration: hostConfiguration(), logger: testLogger)
            try await running(host) {
                try await host.waitForView("items", at: 0)
                let status = try #require(await host.status("counter"))
                #expect(status.checkpoint == 0)
                #expect(status.lag == 0)
                #expect(status.eventsProcessed == 0)
                #expect(try host.allDocuments("items").isEmpty)
                #expect(host.documentCount("items") == 0)
            }
        }
    }
}
