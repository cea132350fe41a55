import LoglineCore
import LoglineLog
import LoglineModuleAPI
import LoglineProjectionHost
import Testing

@Suite("Command handlers")
struct CommandTests {
    func withCommandHost(_ body: (ProjectionHost, LMDBEventLog) async throws -> Void) async throws {
        try await withFreshLog { log, _ in
            let host = try ProjectionHost(
                log: log,
                modules: [CountingProjector(), CreateItemHandler(), RecolorAtVersionHandler(), BrokenHandler()],
                configuration: hostConfiguration(), logger: testLogger)
            try await running(host) { try await body(host, log) }
        }
    }

    @Test("SUBMIT returns the handler's result with the position and the events appended")
    func submit() async throws {
        try await withCommandHost { host, log in
            // Something in the log first, so positions are not trivially 1.
            try await log.appendEach([unrelated(1), unrelated(2)])
            let reply = try await host.submit(command: "create-item", body: Array(#"{"id":"x1","color":"red"}"#.utf8))
            let json = try JSONValue(parsing: reply)
            #expect(json["id"] == "x1")
            #expect(json["position"] == 3)
            let events = try #require(json["events"]?.arrayValue)
            #expect(events.count == 1)
            #expect(events.first?["position"] == 3)
            #expect(events.first?["version"] == 1)

            let stored = try #require(try log.readStream(itemStream("x1"), from: 1, limit: 10).first)
            #expect(stored.position == 3)
            #expect(stored.eventType == "item-added")
            #expect(events.first?["event_id"]?.stringValue == stored.eventID.description)

            // The projector sees the command's event: read your write at the returned position.
            try await host.waitForView("items", at: 3)
            #expect(try host.json(view: "items", key: "x1")?["color"] == "red")

            // A second command on another aggregate.
            let second = try JSONValue(
                parsing: try await host.submit(command: "create-item", body: Array(#"{"id":"x2","color":"blue"}"#.utf8))
            )
            #expect(second["position"] == 4)

            // Command handlers are listed in PROJECTIONS, after the projectors.
            let statuses = await host.moduleStatuses()
            #expect(statuses.map(\.name) == ["counter", "items-commands", "recolor-commands", "broken-commands"])
            #expect(statuses.dropFirst().allSatisfy { $0.kind == .commandHandler && $0.state == .running })
        }
    }

    @Test("SUBMIT errors: unknown command, invalid JSON, refusals, conflicts, failures")
    func submitErrors() async throws {
        try await withCommandHost { host, log in
            #expect(
                await hostError { try await host.submit(command: "nope", body: Array("{}".utf8)) }?.code == .notFound)
            // Not JSON at all.
            #expect(
                await hostError { try await host.submit(command: "create-item", body: Array(#"{"id":"x1","#.utf8)) }?
                    .code
                    == .badJSON)
            // JSON, but not what the command takes.
            #expect(
                await hostError { try await host.submit(command: "create-item", body: Array(#"{"id":1}"#.utf8)) }?.code
                    == .badJSON)
            // Refused by the handler.
            let rejected = await hostError {
                try await host.submit(command: "create-item", body: Array(#"{"id":"x1","color":"forbidden"}"#.utf8))
            }
            #expect(rejected?.code == .rejected)
            #expect(rejected?.description.contains("forbidden") == true)
            #expect(log.headPosition == 0)

            // A conflict decided by the handler: the item exists.
            _ = try await host.submit(command: "create-item", body: Array(#"{"id":"x1","color":"red"}"#.utf8))
            let conflict = await hostError {
                try await host.submit(command: "create-item", body: Array(#"{"id":"x1","color":"blue"}"#.utf8))
            }
            #expect(conflict?.code == .conflict)
            #expect(conflict?.description.contains("already exists") == true)

            // A conflict found by the log: a stale expected version.
            let stale = await hostError {
                try await host.submit(
                    command: "recolor-at", body: Array(#"{"id":"x1","color":"blue","version":0}"#.utf8))
            }
            #expect(stale?.code == .conflict)
            let fresh = try JSONValue(
                parsing: try await host.submit(
                    command: "recolor-at", body: Array(#"{"id":"x1","color":"blue","version":1}"#.utf8)))
            #expect(fresh["position"] == 2)
            #expect(fresh["events"]?[0]?["version"] == 2)

            // Any other error is an internal failure.
            #expect(
                await hostError { try await host.submit(command: "break", body: Array("{}".utf8)) }?.code == .internal)

            // Only the two successful commands wrote.
            #expect(log.headPosition == 2)
        }
    }

    @Test("command handlers have no checkpoint: RETRY, SKIP and PARKED on them are bad requests")
    func handlersHaveNoCheckpoint() async throws {
        try await withCommandHost { host, _ in
            #expect(
                await hostError { try await host.retry(module: "items-commands", position: 1) }?.code == .badRequest)
            #expect(await hostError { try await host.skip(module: "items-commands", position: 1) }?.code == .badRequest)
            #expect(await hostError { try host.parked(module: "items-commands") }?.code == .badRequest)
        }
    }
}
