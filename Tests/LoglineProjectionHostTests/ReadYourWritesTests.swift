import LoglineCore
import LoglineLog
import LoglineModuleAPI
import LoglineProjectionHost
import Testing

@Suite("Read your writes")
struct ReadYourWritesTests {
    @Test("waiting for a position not yet in the log times out; waiting for a processed one returns")
    func waitForView() async throws {
        try await withFreshLog { log, _ in
            let timeout = Duration.milliseconds(500)
            let host = try ProjectionHost(
                log: log, modules: [CountingProjector()],
                configuration: hostConfiguration(readYourWritesTimeout: timeout), logger: testLogger)
            try await running(host) {
                let first = try await log.appendEach([added("a")])[0]
                try await host.waitForView("items", at: first)
                #expect(try host.json(view: "items", key: "a")?["adds"] == 1)
                // Every view of the module answers for the module's checkpoint.
                try await host.waitForView("totals", at: first)
                // Already reached: returns at once.
                try await host.waitForView("items", at: 0)

                // A position nobody has appended yet.
                let clock = ContinuousClock()
                let started = clock.now
                let error = await hostError { try await host.waitForView("items", at: first + 1) }
                let waited = clock.now - started
                #expect(error?.code == .timeout)
                #expect(waited >= timeout - .milliseconds(50))
                #expect(waited < .seconds(4))

                // A wait that starts before the append returns once the event is processed.
                let waiter = Task { try await host.waitForView("items", at: first + 1) }
                let second = try await log.appendEach([added("b")])[0]
                #expect(second == first + 1)
                try await waiter.value
                #expect(try host.json(view: "items", key: "b")?["adds"] == 1)
                let status = try #require(await host.status("counter"))
                #expect(status.checkpoint >= second)
            }
        }
    }

    @Test("a view of a module that is not running times out instead of answering stale data as fresh")
    func waitWhileStopped() async throws {
        try await withFreshLog { log, _ in
            let host = try ProjectionHost(
                log: log, modules: [CountingProjector()],
                configuration: hostConfiguration(readYourWritesTimeout: .milliseconds(200)), logger: testLogger)
            // The host is never started.
            let position = try await log.appendEach([added("a")])[0]
            #expect(await hostError { try await host.waitForView("items", at: position) }?.code == .timeout)
            #expect(try host.document(view: "items", key: "a") == nil)
        }
    }
}
