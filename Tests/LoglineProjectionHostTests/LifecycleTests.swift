import LoglineCore
import LoglineLog
import LoglineModuleAPI
import LoglineProjectionHost
import ServiceLifecycle
import Testing

@Suite("Lifecycle")
struct LifecycleTests {
    @Test("in a ServiceGroup the host runs until graceful shutdown, then its modules stop")
    func gracefulShutdown() async throws {
        try await withFreshLog { log, _ in
            let head = try await log.appendAll((0..<50).map { added(key($0)) })
            let host = try ProjectionHost(
                log: log, modules: [CountingProjector(), EchoReactor()], configuration: hostConfiguration(),
                logger: testLogger)
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(services: [.init(service: host)], logger: testLogger))
            let task = Task { try await group.run() }
            do {
                try await host.waitForView("items", at: head)
                // 50 reactions follow the 50 sources.
                try await host.waitForView("echo-state", at: 100)
                let position = try await log.appendEach([added("live")])[0]
                try await host.waitForView("items", at: position)
                #expect(await host.moduleStatuses().allSatisfy { $0.state == .running })
            } catch {
                task.cancel()
                _ = await task.result
                throw error
            }
            await group.triggerGracefulShutdown()
            // The group returns normally: the host stopped when asked to.
            try await task.value
            let statuses = await host.moduleStatuses()
            #expect(statuses.map(\.state) == [.stopped, .stopped])
            #expect((statuses.first?.checkpoint ?? 0) >= 101)
            #expect(try host.json(view: "totals", key: "all") == ["events": 51])
        }
    }

    @Test("an operation asked of a stopped host answers UNAVAILABLE instead of waiting forever")
    func operationAfterStop() async throws {
        try await withFreshLog { log, _ in
            let host = try ProjectionHost(
                log: log, modules: [CountingProjector()], configuration: hostConfiguration(), logger: testLogger)
            let head = try await log.appendAll([added("a")])
            try await running(host) { try await host.waitForView("items", at: head) }
            #expect(await host.status("counter")?.state == .stopped)

            // The answer is awaited in a separate task, with a bound: if it never comes, the test says so rather
            // than hanging (the task is then left behind, suspended).
            let answer = Mailbox<Result<String, HostError>>()
            Task {
                do throws(HostError) {
                    answer.put(.success(try await host.rebuild(module: "counter")))
                } catch {
                    answer.put(.failure(error))
                }
            }
            switch await answer.next(within: .seconds(2)) {
            case nil: Issue.record("REBUILD on a stopped host did not answer within 2 s")
            case .success(let message): Issue.record("REBUILD on a stopped host succeeded: \(message)")
            case .failure(let error): #expect(error.code == .unavailable)
            }
        }
    }
}
