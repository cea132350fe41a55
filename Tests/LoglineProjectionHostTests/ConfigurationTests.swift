import LoglineCore
import LoglineLog
import LoglineModuleAPI
import LoglineProjectionHost
import Testing

@Suite("Host configuration")
struct ConfigurationTests {
    func initError(_ modules: [any LoglineModule]) async throws -> HostError? {
        try await withFreshLog { log, _ in
            await hostError { try ProjectionHost(log: log, modules: modules, logger: testLogger) }
        }
    }

    @Test("batch sizes under 1 are refused")
    func batchSizes() async throws {
        try await withFreshLog { log, _ in
            for (batch, rebuild) in [(0, 8000), (1000, 0), (-1, 8000)] {
                var configuration = ProjectionHost.Configuration()
                configuration.batchSize = batch
                configuration.rebuildBatchSize = rebuild
                let error = await hostError {
                    try ProjectionHost(
                        log: log, modules: [CountingProjector()], configuration: configuration, logger: testLogger)
                }
                #expect(error?.code == .badRequest, "batch \(batch), rebuild batch \(rebuild)")
            }
            var smallest = ProjectionHost.Configuration()
            smallest.batchSize = 1
            smallest.rebuildBatchSize = 1
            _ = try ProjectionHost(
                log: log, modules: [CountingProjector()], configuration: smallest, logger: testLogger)
        }
    }

    @Test("two modules with the same name are refused")
    func duplicateModuleNames() async throws {
        #expect(
            try await initError([
                CountingProjector(), CountingProjector(name: "counter", itemsView: "i2", totalsView: "t2"),
            ])?.code == .badRequest)
        // Of different kinds too.
        #expect(try await initError([CountingProjector(), EchoReactor(name: "counter")])?.code == .badRequest)
        #expect(try await initError([CountingProjector(), CreateItemHandler(name: "counter")])?.code == .badRequest)
    }

    @Test("two modules declaring the same view are refused")
    func duplicateViewNames() async throws {
        #expect(try await initError([CountingProjector(), CountingProjector(name: "counter-2")])?.code == .badRequest)
        #expect(
            try await initError([CountingProjector(), CountingProjector(name: "counter-2", itemsView: "items-2")])?.code
                == .badRequest)
        #expect(
            try await initError([
                CountingProjector(name: "c1", itemsView: "echo-state", totalsView: "t1"), EchoReactor(),
            ])?.code == .badRequest)
    }

    @Test("two handlers of one command, and invalid names, are refused")
    func otherRefusals() async throws {
        #expect(
            try await initError([CreateItemHandler(), CreateItemHandler(name: "other", commandName: "create-item")])?
                .code
                == .badRequest)
        #expect(try await initError([CountingProjector(name: "bad name")])?.code == .badRequest)
        #expect(try await initError([CountingProjector(name: "c", itemsView: "bad/view")])?.code == .badRequest)
    }

    @Test("distinct modules and views are accepted")
    func accepted() async throws {
        try await withFreshLog { log, _ in
            let host = try ProjectionHost(
                log: log,
                modules: [
                    CountingProjector(),
                    CountingProjector(name: "counter-2", itemsView: "items-2", totalsView: "totals-2"),
                    EchoReactor(), CreateItemHandler(),
                ],
                logger: testLogger)
            #expect(host.viewStatuses().map(\.name) == ["echo-state", "items", "items-2", "totals", "totals-2"])
            let statuses = await host.moduleStatuses()
            #expect(statuses.map(\.name) == ["counter", "counter-2", "echoer", "items-commands"])
            #expect(statuses.map(\.kind) == [.projector, .projector, .reactor, .commandHandler])
        }
    }
}
