import LoglineCore
import LoglineLog
import LoglineModuleAPI
import LoglineProjectionHost
import Testing

/// The position in a module's stored checkpoint (table `checkpoint`: position, then count, big-endian).
private func storedCheckpoint(_ module: String, in log: LMDBEventLog) throws -> LogPosition {
    guard let bytes = try log.readState(table: "checkpoint", key: Array(module.utf8)), bytes.count >= 8 else {
        return 0
    }
    return bytes.prefix(8).reduce(0) { $0 << 8 | LogPosition($1) }
}

@Suite("Checkpoints over events a module does not handle")
struct CheckpointTests {
    @Test(
        "a reactor passes over other events without a commit of its own, and stores the checkpoint with its next effects"
    )
    func passingOverOtherEvents() async throws {
        try await withTemporaryDirectory { directory in
            try await withLog(at: directory) { log in
                let host = try ProjectionHost(
                    log: log, modules: [EchoReactor()], configuration: hostConfiguration(), logger: testLogger)
                try await running(host) {
                    let first = try await log.appendAll([added("a")])
                    try await host.waitForView("echo-state", at: first)
                    let stored = try storedCheckpoint("echoer", in: log)
                    #expect(stored >= first)

                    // 30 events the reactor does not handle: it moves past them (its status says so), and
                    // its stored checkpoint stays where its last effects put it.
                    let last = try await log.appendEach((0..<30).map(unrelated)).last ?? 0
                    try await host.waitForView("echo-state", at: last)
                    #expect(await host.status("echoer")?.checkpoint == log.headPosition)
                    #expect(try storedCheckpoint("echoer", in: log) == stored)

                    // The next event it handles stores its effects and the checkpoint past all of them.
                    let next = try await log.appendAll([added("b")])
                    try await host.waitForView("echo-state", at: next)
                    #expect(try storedCheckpoint("echoer", in: log) >= next)
                }
            }
            // A restart from the stored checkpoint passes over the other events again, and reacts to nothing twice.
            try await withLog(at: directory) { log in
                let host = try ProjectionHost(
                    log: log, modules: [EchoReactor()], configuration: hostConfiguration(), logger: testLogger)
                try await running(host) {
                    let more = try await log.appendEach((30..<40).map(unrelated)).last ?? 0
                    let last = try await log.appendAll([added("c")])
                    try await host.waitForView("echo-state", at: max(more, last))
                    let echoes = try log.everything(types: ["item-echoed"])
                    #expect(echoes.count == 3)
                    for key in ["a", "b", "c"] {
                        #expect(try host.json(view: "echo-state", key: key)?["reactions"]?.int64Value == 1)
                    }
                }
            }
        }
    }
}

/// Puts one document per event without reading it first, so the host reads the stored one when it works out
/// the writes (for the view's indexes).
private struct BlindWriter: Projector {
    var name = "blind"
    var handledEventTypes: Set<String> { ["item-added"] }
    var views: [ViewDefinition] { [ViewDefinition(name: "blind-items", indexes: ["color"])] }

    func apply(_ event: ModuleEvent, to views: inout ViewChanges) throws {
        guard let key = event.data["key"]?.stringValue else { throw TestModuleError(description: "no key") }
        try views.put(
            "blind-items", key: key,
            document: ["color": event.data["color"] ?? .null, "position": .number(JSONNumber(Int64(event.position)))])
    }
}

@Suite("A failed read of the views")
struct ViewReadFailureTests {
    @Test("commits nothing: the batch runs again, and its effects and checkpoint are stored together")
    func failedReadCommitsNothing() async throws {
        try await withFreshLog { base, _ in
            let log = SpyLog(base)
            log.failStateReads(1)
            let host = try ProjectionHost(
                log: log, modules: [BlindWriter()], configuration: hostConfiguration(), logger: testLogger)
            try await running(host) {
                let position = try await base.appendAll([added("a", color: "blue")])
                try await host.waitForView("blind-items", at: position)
                let document = try host.json(view: "blind-items", key: "a")
                #expect(document?["color"]?.stringValue == "blue")
                #expect(document?["position"]?.int64Value == Int64(position))
                let blue = try host.query(
                    view: "blind-items", where: (field: "color", value: "blue"), limit: 10, after: nil)
                #expect(blue.count == 1)
                // Every unit that stored the checkpoint also wrote the document.
                for unit in log.units where unit.writes.contains(where: { $0.table == "checkpoint" }) {
                    #expect(unit.writes.contains { $0.table.hasPrefix("v/blind-items/") })
                }
            }
        }
    }
}

@Suite("A failed read inside a module")
struct ModuleReadFailureTests {
    @Test("is the store's failure, not the event's: the batch runs again instead of parking the event")
    func failedReadDoesNotPark() async throws {
        try await withFreshLog { base, _ in
            let log = SpyLog(base)
            // One attempt per event: a failure the module reported would park the event at once.
            let projector = PoisonProjector(name: "poison", view: "poisoned", failurePolicy: .park(attempts: 1))
            let host = try ProjectionHost(
                log: log, modules: [projector], configuration: hostConfiguration(), logger: testLogger)
            try await running(host) {
                let first = try await base.appendAll([added("a")])
                try await host.waitForView("poisoned", at: first)
                log.failDocumentReads(1)
                let second = try await base.appendAll([added("b")])
                try await host.waitForView("poisoned", at: second)
                #expect(try host.parked(module: "poison").isEmpty)
                #expect(await host.status("poison")?.parkedCount == 0)
                #expect(try host.json(view: "poisoned", key: "b")?["position"]?.int64Value == Int64(second))
                #expect(try host.json(view: "poisoned", key: "tally")?["applied"]?.int64Value == 2)
            }
        }
    }
}
