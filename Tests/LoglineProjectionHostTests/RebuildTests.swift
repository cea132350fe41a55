import LoglineCore
import LoglineLog
import LoglineModuleAPI
import LoglineProjectionHost
import Testing

@Suite("Rebuild")
struct RebuildTests {
    /// Everything a client can see of the counter's views.
    struct Snapshot: Equatable, CustomStringConvertible {
        var items: [JSONValue]
        var totals: [JSONValue]
        var byColor: [String: [JSONValue]]
        var bySize: [String: [JSONValue]]
        var counts: [UInt64?]

        init(_ host: ProjectionHost) throws {
            items = try host.allDocuments("items")
            totals = try host.allDocuments("totals")
            byColor = [:]
            for color in ["red", "blue", "green", "purple"] {
                byColor[color] = try host.allDocuments("items", where: ("color", color))
            }
            bySize = [:]
            for size in 0..<4 {
                bySize["\(size)"] = try host.allDocuments("items", where: ("size", "\(size)"))
            }
            counts = [host.documentCount("items"), host.documentCount("totals")]
        }

        /// What the views must hold after `events`, computed in memory.
        init(folding events: [RecordedEvent]) throws {
            let views = try fold(CountingProjector(), over: events)
            items = inKeyOrder(views["items"])
            totals = inKeyOrder(views["totals"])
            byColor = [:]
            for color in ["red", "blue", "green", "purple"] {
                byColor[color] = items.filter { $0["color"]?.stringValue == color }
            }
            bySize = [:]
            for size in 0..<4 {
                bySize["\(size)"] = items.filter { $0["size"]?.int64Value == Int64(size) }
            }
            counts = [UInt64(items.count), UInt64(totals.count)]
        }

        var description: String {
            let keys = items.map { $0["key"]?.stringValue ?? "?" }
            return
                "counts \(counts.map { $0.map(String.init) ?? "nil" }), keys \(keys), totals \(totals.map(\.jsonText))"
        }
    }

    /// 100 events over 20 items: adds, recolors and removes, all handled by the counter.
    static func history() -> [AppendRequest] {
        (0..<100).map { n in
            switch n % 10 {
            case 7: return recolored(key(n % 20), to: "green")
            case 9: return removed(key((n + 3) % 20))
            default: return added(key(n % 20), color: n % 2 == 0 ? "red" : "blue", size: n % 4)
            }
        }
    }

    /// Runs `body` with a host running the counter over ``history()`` on a ``SpyLog``, caught up with the head, and
    /// the views as they stand then; rebuild commits still held are released when the host stops.
    static func withCaughtUpCounter(
        _ body: (SpyLog, ProjectionHost, LogPosition, Snapshot) async throws -> Void
    ) async throws {
        try await withFreshLog { base, _ in
            let log = SpyLog(base)
            let head = try await log.appendAll(history())
            let host = try ProjectionHost(
                log: log, modules: [CountingProjector()], configuration: hostConfiguration(batchSize: 7),
                logger: testLogger)
            try await running(host, whileStopping: { log.releaseHeld(stopHolding: true) }) {
                try await host.waitForView("items", at: head)
                try await body(log, host, head, try Snapshot(host))
            }
        }
    }

    /// Waits until the counter is running again with no rebuild in progress.
    ///
    /// The swap is announced by nothing a test can await: this looks at PROJECTIONS, within a bound.
    static func rebuildFinished(_ host: ProjectionHost) async -> Bool {
        await eventually {
            let status = await host.status("counter")
            return status?.state == .running && status?.rebuildPosition == nil
        }
    }

    @Test("REBUILD swaps in views identical to the ones it replaces, with the checkpoint at the head")
    func rebuildIdentical() async throws {
        try await Self.withCaughtUpCounter { log, host, head, before in
            #expect(before == (try Snapshot(folding: log.everything())))
            #expect(!before.items.isEmpty)
            let statusBefore = try #require(await host.status("counter"))

            for round in 1...2 {
                let message = try await host.rebuild(module: "counter")
                #expect(!message.isEmpty)
                try #require(await Self.rebuildFinished(host), "rebuild \(round) did not finish")
                let after = try Snapshot(host)
                #expect(after == before, "after rebuild \(round)")
                let status = try #require(await host.status("counter"))
                #expect(status.checkpoint == head)
                #expect(status.lag == 0)
                #expect(status.eventsProcessed == statusBefore.eventsProcessed)
                #expect(status.lastError == nil)
            }
            // Two swaps happened (each writes the module's active generation).
            let swaps = log.units.filter { unit in unit.writes.contains { $0.table == "generation" } }
            #expect(swaps.count == 2)

            // The views keep following the log afterwards.
            let position = try await log.appendEach([added("after", color: "purple", size: 3)])[0]
            try await host.waitForView("items", at: position)
            #expect(try Snapshot(host) == (try Snapshot(folding: log.everything())))
        }
    }

    @Test("a rebuild batch processed while the two before it commit reads their documents, not the store's")
    func rebuildOverlapsCommits() async throws {
        try await Self.withCaughtUpCounter { log, host, head, before in

            // Hold the rebuild batches' commits two at a time, until the batch after them has been read: that
            // batch is processed while neither of the two is in the store yet. Every batch updates the `totals`
            // document and the document counts, so each one depends on the batches before it.
            log.holdRebuildBatches(true)
            _ = try await host.rebuild(module: "counter")
            var pairs = 0
            while await log.heldCommits.next() == 1 {
                #expect(await log.heldCommits.next() == 2, "a second batch is handed over before the first commits")
                pairs += 1
                let after = try #require(log.units.last?.writes.first { $0.table == "rebuild" }?.value)
                let position = after.prefix(8).reduce(0) { $0 << 8 | LogPosition($1) }
                if position == head { break }
                #expect(await eventually { log.reads.contains { $0.limit == 28 && $0.after == position } })
                log.releaseHeld()
            }
            // Four batches of 28 (a rebuild reads 4 × 7) over 100 events.
            #expect(pairs == 2)
            log.releaseHeld(stopHolding: true)
            try #require(await Self.rebuildFinished(host))
            #expect(log.staleReads.isEmpty, "\(log.staleReads)")
            #expect(try Snapshot(host) == before)
            let status = try #require(await host.status("counter"))
            #expect(status.checkpoint == head)
            #expect(status.eventsProcessed == 100)
        }
    }

    @Test("a rebuild batch reads the documents and counts of the older of two batches in flight, not the store's")
    func rebuildReadsBothBatchesInFlight() async throws {
        try await withFreshLog { base, _ in
            let log = SpyLog(base)
            // Batches of 28: the first adds items, the second touches none (recolouring items that do not exist),
            // the third removes and re-adds the first batch's items, which changes the item count again.
            var history = (0..<28).map { added("a\($0)", color: "red", size: 1) }
            history += (0..<28).map { recolored("z\($0)", to: "blue") }
            history += (0..<14).map { removed("a\($0)") }
            history += (14..<28).map { added("a\($0)", color: "green", size: 2) }
            history += (0..<16).map { added("d\($0)", color: "blue", size: 3) }
            let head = try await log.appendAll(history)
            let host = try ProjectionHost(
                log: log, modules: [CountingProjector()], configuration: hostConfiguration(batchSize: 7),
                logger: testLogger)
            try await running(host, whileStopping: { log.releaseHeld(stopHolding: true) }) {
                try await host.waitForView("items", at: head)
                let before = try Snapshot(host)
                #expect(before == (try Snapshot(folding: log.everything())))
                log.holdRebuildBatches(true)
                _ = try await host.rebuild(module: "counter")
                #expect(await log.heldCommits.next() == 1)
                #expect(await log.heldCommits.next() == 2)
                // The third batch is read, and processed, while the first two wait to commit.
                #expect(await eventually { log.reads.contains { $0.limit == 28 && $0.after == 56 } })
                log.releaseHeld(stopHolding: true)
                try #require(await Self.rebuildFinished(host))
                #expect(log.staleReads.isEmpty, "\(log.staleReads)")
                // The first batch read each of its items from the store, finding none; the third found them in
                // what the first wrote, whether or not that had committed by then.
                let rebuiltItemReads = log.stateReads.filter { $0.hasPrefix("v/items/2/a") }
                #expect(rebuiltItemReads.count == 28, "\(rebuiltItemReads)")
                #expect(Set(rebuiltItemReads).count == 28)
                #expect(try Snapshot(host) == before)
                let items = try #require(host.viewStatuses().first { $0.name == "items" })
                #expect(items.documentCount == 30)
            }
        }
    }

    @Test(
        "when the older of two rebuild batches in flight fails, the one after it changes nothing, and the rebuild goes on",
        arguments: [
            CommitError.storage("disk on fire"), .conditionFailed(table: "rebuild", key: Array("counter".utf8)),
        ])
    func failedBatchInFlight(failure: CommitError) async throws {
        try await Self.withCaughtUpCounter { log, host, head, before in
            log.holdRebuildBatches(true)
            _ = try await host.rebuild(module: "counter")
            #expect(await log.heldCommits.next() == 1)
            #expect(await log.heldCommits.next() == 2)
            let unitsBefore = log.units.count
            // Both fail: the first with `failure`, the second as it would behind it (its condition is the progress
            // the first did not write).
            log.failHeld(with: failure)
            try #require(await Self.rebuildFinished(host))
            // The batches were processed and committed again, from the last progress stored.
            let retried = log.units.dropFirst(unitsBefore).filter { unit in
                unit.conditions.contains { $0.table == "rebuild" && $0.expected != nil }
                    && !unit.writes.contains { $0.table == "generation" }
            }
            #expect(retried.count == 4)
            #expect(try Snapshot(host) == before)
            let status = try #require(await host.status("counter"))
            #expect(status.checkpoint == head)
            #expect(status.eventsProcessed == 100)
        }
    }

    @Test("while rebuilding, queries answer from the old views and appends keep being processed")
    func rebuildInProgress() async throws {
        try await Self.withCaughtUpCounter { log, host, head, before in

            // Hold each rebuild batch's commit until released, as a slow disk would.
            log.holdRebuildBatches(true)
            _ = try await host.rebuild(module: "counter")
            // The first two rebuild batches (positions 1…28 and 29…56, a rebuild reads 4 × 7) wait to commit.
            #expect(await log.heldCommits.next() == 1)
            #expect(await log.heldCommits.next() == 2)
            var status = try #require(await host.status("counter"))
            #expect(status.state == .rebuilding)
            #expect(status.rebuildPosition == 0)
            #expect(status.checkpoint == head)
            #expect(try Snapshot(host) == before)

            // Appends during the rebuild.
            let extra = try await log.appendEach([
                added("late", color: "red", size: 2), recolored(key(0), to: "purple"), removed(key(5)),
            ])
            log.releaseHeld()
            // The next rebuild batch waits; the live module processed the appends in between.
            #expect(await log.heldCommits.next() == 1)
            status = try #require(await host.status("counter"))
            #expect(status.state == .rebuilding)
            #expect(status.rebuildPosition == 56)
            #expect(status.checkpoint == extra.last)
            try await host.waitForView("items", at: extra.last!)
            // The live views are complete, not the half-built copy.
            let during = try Snapshot(host)
            #expect(during == (try Snapshot(folding: log.everything())))
            #expect(during.items.contains { $0["key"] == "late" })

            log.releaseHeld(stopHolding: true)
            try #require(await Self.rebuildFinished(host))
            status = try #require(await host.status("counter"))
            #expect(status.checkpoint == log.headPosition)
            #expect(status.lag == 0)
            #expect(status.eventsProcessed == 103)
            #expect(try Snapshot(host) == during)

            let position = try await log.appendEach([added("after", color: "blue", size: 1)])[0]
            try await host.waitForView("items", at: position)
            #expect(try Snapshot(host) == (try Snapshot(folding: log.everything())))
            #expect(try host.json(view: "totals", key: "all") == ["events": 104])
        }
    }

    @Test("a finished rebuild survives a restart, and an interrupted one resumes")
    func rebuildAcrossRestart() async throws {
        try await withTemporaryDirectory { directory in
            let configuration = hostConfiguration(batchSize: 7)
            let before = try await withLog(at: directory) { base -> Snapshot in
                let log = SpyLog(base)
                let head = try await log.appendAll(Self.history())
                let host = try ProjectionHost(
                    log: log, modules: [CountingProjector()], configuration: configuration, logger: testLogger)
                let before = try await running(host, whileStopping: { log.releaseHeld(stopHolding: true) }) {
                    try await host.waitForView("items", at: head)
                    let before = try Snapshot(host)
                    // Stop while the rebuild's first two batches wait to commit: the host is cancelled first, then
                    // they commit, and the loop stops before the next one.
                    log.holdRebuildBatches(true)
                    _ = try await host.rebuild(module: "counter")
                    #expect(await log.heldCommits.next() == 1)
                    #expect(await log.heldCommits.next() == 2)
                    #expect(await host.status("counter")?.rebuildPosition == 0)
                    return before
                }
                let stopped = try #require(await host.status("counter"))
                #expect(stopped.rebuildPosition == 56)
                #expect(log.units.filter { unit in unit.writes.contains { $0.table == "generation" } }.isEmpty)
                return before
            }
            try await withLog(at: directory) { base in
                let log = SpyLog(base)
                let host = try ProjectionHost(
                    log: log, modules: [CountingProjector()], configuration: configuration, logger: testLogger)
                try await running(host) {
                    // The checkpoint reaches 100 when the module has loaded its state (with the rebuild in progress).
                    try await host.waitForView("items", at: 100)
                    // Old or swapped, the views answer the same.
                    #expect(try Snapshot(host) == before)
                    try #require(await Self.rebuildFinished(host))
                    #expect(try Snapshot(host) == before)
                    let status = try #require(await host.status("counter"))
                    #expect(status.checkpoint == 100)
                    #expect(status.eventsProcessed == 100)
                    // The rebuild went on from where it stopped rather than starting over.
                    let rebuildReads = log.reads.filter { $0.limit == 28 }
                    #expect(rebuildReads.first?.after == 56)
                }
            }
        }
    }

    @Test("after a rebuild and a restart, queries answer from the rebuilt views even before the modules have loaded")
    func rebuiltViewsAfterRestart() async throws {
        try await withTemporaryDirectory { directory in
            let configuration = hostConfiguration(batchSize: 7)
            let expected = try await withLog(at: directory) { log -> Snapshot in
                let head = try await log.appendAll(Self.history())
                let host = try ProjectionHost(
                    log: log, modules: [CountingProjector()], configuration: configuration, logger: testLogger)
                return try await running(host) {
                    try await host.waitForView("items", at: head)
                    _ = try await host.rebuild(module: "counter")
                    try #require(await Self.rebuildFinished(host))
                    // Changes after the swap go to the rebuilt views only.
                    let position = try await log.appendEach([added("after", color: "purple", size: 3), removed(key(1))])
                    try await host.waitForView("items", at: position.last!)
                    let expected = try Snapshot(folding: log.everything())
                    #expect(try Snapshot(host) == expected)
                    return expected
                }
            }
            try await withLog(at: directory) { log in
                let host = try ProjectionHost(
                    log: log, modules: [CountingProjector()], configuration: configuration, logger: testLogger)
                // Not started yet: a server in the same ServiceGroup may already be answering queries.
                let beforeRunning = try Snapshot(host)
                #expect(beforeRunning == expected, "before the host runs")
                #expect(await host.status("counter")?.checkpoint == 102, "PROJECTIONS before the host runs")
                try await running(host) {
                    try await host.waitForView("items", at: 102)
                    #expect(try Snapshot(host) == expected, "once the module has loaded")
                }
            }
        }
    }

    @Test("REBUILD of a reactor is a bad request; of an unknown module, not found")
    func rebuildErrors() async throws {
        try await withFreshLog { log, _ in
            let host = try ProjectionHost(
                log: log, modules: [CountingProjector(), EchoReactor(), CreateItemHandler()],
                configuration: hostConfiguration(), logger: testLogger)
            try await running(host) {
                #expect(await hostError { try await host.rebuild(module: "echoer") }?.code == .badRequest)
                #expect(await hostError { try await host.rebuild(module: "items-commands") }?.code == .badRequest)
                #expect(await hostError { try await host.rebuild(module: "nobody") }?.code == .notFound)
                #expect(await host.status("echoer")?.state == .running)
            }
        }
    }
}
