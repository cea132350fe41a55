import LoglineCore
import LoglineLog
import LoglineModuleAPI
import LoglineProjectionHost
import Testing

@Suite("Exactly once across restarts")
struct RestartTests {
    /// 100 `item-added` events over 25 items; every third carries a `correlation_id`.
    static func firstSources() -> [AppendRequest] {
        (0..<100).map { n in added(key(n % 25), color: "red", size: n % 3, correlation: n % 3 == 0 ? "saga-\(n)" : nil)
        }
    }

    @Test("views and reactions count every event exactly once when the host stops mid-way and starts again")
    func exactlyOnceAcrossRestart() async throws {
        try await withTemporaryDirectory { directory in
            let configuration = hostConfiguration(batchSize: 7)
            let firstStop = try await withLog(at: directory) { log -> (counter: ModuleStatus, echoer: ModuleStatus) in
                try await log.appendAll(Self.firstSources())
                let host = try ProjectionHost(
                    log: log, modules: [CountingProjector(), EchoReactor()], configuration: configuration,
                    logger: testLogger)
                let task = Task { try await host.run() }
                // Stop as soon as 40 of the 100 events are in the view: most of the catch-up is still ahead.
                do {
                    try await host.waitForView("items", at: 40)
                    try await host.waitForView("echo-state", at: 40)
                } catch {
                    task.cancel()
                    _ = await task.result
                    throw error
                }
                task.cancel()
                _ = await task.result
                let counter = try #require(await host.status("counter"))
                let echoer = try #require(await host.status("echoer"))
                #expect(counter.state == .stopped)
                #expect(echoer.state == .stopped)
                return (counter, echoer)
            }
            #expect(firstStop.counter.checkpoint >= 40)
            #expect(firstStop.echoer.checkpoint >= 40)

            try await withLog(at: directory) { log in
                // While no host runs: 20 more.
                try await log.appendAll((100..<120).map { n in added(key(n % 25), color: "blue") })
                let host = try ProjectionHost(
                    log: log, modules: [CountingProjector(), EchoReactor()], configuration: configuration,
                    logger: testLogger)
                try await running(host) {
                    // Live: 10 more.
                    try await log.appendEach((120..<130).map { n in added(key(n % 25), color: "green") })
                    // 130 sources and exactly one reaction each.
                    try await host.waitForView("echo-state", at: 260)
                    try await host.waitForView("items", at: 260)
                    #expect(log.headPosition == 260)

                    let sources = try log.everything(types: ["item-added"])
                    #expect(sources.count == 130)
                    var addsPerKey: [String: Int64] = [:]
                    for source in sources {
                        let data = try JSONValue(parsing: source.data)
                        addsPerKey[data["key"]!.stringValue!, default: 0] += 1
                    }
                    #expect(try host.json(view: "totals", key: "all") == ["events": 130])
                    for (key, adds) in addsPerKey {
                        #expect(try host.json(view: "items", key: key)?["adds"]?.int64Value == adds, "items/\(key)")
                        #expect(
                            try host.json(view: "echo-state", key: key)?["reactions"]?.int64Value == adds,
                            "echo-state/\(key)")
                    }

                    let counter = try #require(await host.status("counter"))
                    let echoer = try #require(await host.status("echoer"))
                    #expect(counter.eventsProcessed == 130)
                    #expect(echoer.eventsProcessed == 130)
                    #expect(echoer.kind == .reactor)
                    #expect(counter.checkpoint == 260)
                    #expect(echoer.checkpoint == 260)
                    #expect(echoer.lag == 0)

                    try Self.expectOneReactionEach(to: sources, in: log)
                }
            }
        }
    }

    /// Every source has exactly one `item-echoed` event, with the derived id, causation and correlation.
    static func expectOneReactionEach(to sources: [RecordedEvent], in log: some EventLog) throws {
        let echoes = try log.everything(types: ["item-echoed"])
        #expect(echoes.count == sources.count)
        let echoesByID = Dictionary(echoes.map { ($0.eventID, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(echoesByID.count == echoes.count, "reaction ids are unique")
        for source in sources {
            let id = EventID.derived(namespace: "echoer", source: source.eventID)
            guard let echo = echoesByID[id] else {
                Issue.record("no reaction with the derived id for the source at \(source.position)")
                continue
            }
            let data = try JSONValue(parsing: source.data)
            let sourceMetadata = try JSONValue(parsing: source.metadata)
            let metadata = try JSONValue(parsing: echo.metadata)
            #expect(echo.stream == StreamName(uncheckedType: "echo", id: data["key"]!.stringValue!))
            #expect(echo.position > source.position)
            #expect(metadata["causation_id"]?.stringValue == source.eventID.description)
            let expectedCorrelation = sourceMetadata["correlation_id"]?.stringValue ?? source.eventID.description
            #expect(metadata["correlation_id"]?.stringValue == expectedCorrelation)
            #expect(try JSONValue(parsing: echo.data)["source"]?.stringValue == source.eventID.description)
        }
    }

    @Test("a reactor replaying from the start (its checkpoint lost) appends nothing new")
    func replayAppendsNothingNew() async throws {
        try await withTemporaryDirectory { directory in
            let configuration = hostConfiguration(batchSize: 7)
            try await withLog(at: directory) { log in
                try await log.appendAll(Self.firstSources().prefix(30).map { $0 })
                let host = try ProjectionHost(
                    log: log, modules: [EchoReactor()], configuration: configuration, logger: testLogger)
                try await running(host) {
                    try await host.waitForView("echo-state", at: 60)
                }
                #expect(log.headPosition == 60)
            }
            try await withLog(at: directory) { log in
                // Lose the reactor's checkpoint while it is stopped (the `checkpoint` state table, see ViewStorage),
                // as an operator restoring an old copy of the state would: it starts over from position 0.
                _ = try await log.commit(
                    CommitUnit(writes: [StateWrite(table: "checkpoint", key: Array("echoer".utf8), value: nil)]))
                let host = try ProjectionHost(
                    log: log, modules: [EchoReactor()], configuration: configuration, logger: testLogger)
                try await running(host) {
                    try await host.waitForView("echo-state", at: 60)
                    let status = try #require(await host.status("echoer"))
                    #expect(status.checkpoint == 60)
                    #expect(status.lastError == nil)
                    #expect(status.parkedCount == 0)
                }
                // The derived ids make every reaction an idempotent retry of the stored one.
                #expect(log.headPosition == 60)
                try Self.expectOneReactionEach(to: try log.everything(types: ["item-added"]), in: log)
            }
        }
    }
}
