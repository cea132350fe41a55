import LoglineCore
import LoglineLog
import LoglineModuleAPI
import LoglineProjectionHost
import Testing

@Suite("Poison events: park and stop policies")
struct PoisonTests {
    /// The parked records of a module, parsed.
    static func parked(_ host: ProjectionHost, _ module: String) throws -> [JSONValue] {
        try host.parked(module: module).map { try JSONValue(parsing: $0) }
    }

    @Test("park: the event is parked after its attempts and later events are processed; RETRY and SKIP")
    func parkPolicy() async throws {
        try await withFreshLog { log, _ in
            let projector = PoisonProjector(name: "parker", view: "parker-seen", failurePolicy: .park(attempts: 2))
            let host = try ProjectionHost(
                log: log, modules: [projector], configuration: hostConfiguration(), logger: testLogger)
            // One batch: a1, poison p1, a2, a3.
            let head = try await log.appendAll([added("a1"), poison("p1"), added("a2"), added("a3")])
            let poisonPosition: LogPosition = 2
            try await running(host) {
                try await host.waitForView("parker-seen", at: head)
                #expect(try host.json(view: "parker-seen", key: "a1")?["type"] == "item-added")
                #expect(try host.json(view: "parker-seen", key: "a2") != nil)
                #expect(try host.json(view: "parker-seen", key: "a3") != nil)
                #expect(try host.document(view: "parker-seen", key: "p1") == nil)
                #expect(projector.poisonAttempts.value[poisonPosition] == 2)

                var status = try #require(await host.status("parker"))
                #expect(status.state == .running)
                #expect(status.checkpoint == head)
                #expect(status.lag == 0)
                #expect(status.parkedCount == 1)
                #expect(status.lastError?.contains("poisoned by p1") == true)

                var records = try Self.parked(host, "parker")
                #expect(records.count == 1)
                let record = try #require(records.first)
                #expect(record["module"] == "parker")
                #expect(record["position"]?.int64Value == Int64(poisonPosition))
                #expect(record["event_type"] == "poison")
                #expect(record["error"]?.stringValue?.contains("poisoned by p1") == true)
                #expect(record["attempts"] == 2)
                let stored = try #require(try log.readAll(from: poisonPosition, limit: 1, eventTypes: []).first)
                #expect(record["event_id"]?.stringValue == stored.eventID.description)

                // Later appends are processed too.
                let later = try await log.appendEach([added("a4")])[0]
                try await host.waitForView("parker-seen", at: later)
                #expect(try host.json(view: "parker-seen", key: "a4") != nil)

                // RETRY while the projector still throws: fails, the event stays parked.
                let retryError = await hostError { try await host.retry(module: "parker", position: poisonPosition) }
                #expect(retryError?.code == .internal)
                #expect(projector.poisonAttempts.value[poisonPosition] == 4)
                records = try Self.parked(host, "parker")
                #expect(records.count == 1)
                #expect(records.first?["position"]?.int64Value == Int64(poisonPosition))
                #expect(records.first?["attempts"] == 4)
                #expect(try host.document(view: "parker-seen", key: "p1") == nil)
                #expect(await host.status("parker")?.parkedCount == 1)

                // Not parked: not found, for RETRY and SKIP; an unknown module is not found either.
                #expect(await hostError { try await host.retry(module: "parker", position: 1) }?.code == .notFound)
                #expect(await hostError { try await host.skip(module: "parker", position: 3) }?.code == .notFound)
                #expect(await hostError { try await host.retry(module: "parker", position: 999) }?.code == .notFound)
                #expect(
                    await hostError { try await host.retry(module: "nobody", position: poisonPosition) }?.code
                        == .notFound)
                #expect(await hostError { try host.parked(module: "nobody") }?.code == .notFound)

                // RETRY once it is fixed: processed, no longer parked.
                projector.healed.value = true
                _ = try await host.retry(module: "parker", position: poisonPosition)
                #expect(try Self.parked(host, "parker").isEmpty)
                #expect(try host.json(view: "parker-seen", key: "p1")?["position"]?.int64Value == Int64(poisonPosition))
                status = try #require(await host.status("parker"))
                #expect(status.parkedCount == 0)
                #expect(status.checkpoint == later)
                // Retried once more: it is gone.
                #expect(
                    await hostError { try await host.retry(module: "parker", position: poisonPosition) }?.code
                        == .notFound)

                // Another poison event: parked, then dropped with SKIP.
                projector.healed.value = false
                let second = try await log.appendEach([poison("p2"), added("a5")])
                try await host.waitForView("parker-seen", at: second[1])
                #expect(try host.json(view: "parker-seen", key: "a5") != nil)
                records = try Self.parked(host, "parker")
                #expect(records.map { $0["position"]?.int64Value } == [Int64(second[0])])
                _ = try await host.skip(module: "parker", position: second[0])
                #expect(try Self.parked(host, "parker").isEmpty)
                #expect(try host.document(view: "parker-seen", key: "p2") == nil)
                status = try #require(await host.status("parker"))
                #expect(status.parkedCount == 0)
                #expect(status.state == .running)
                #expect(
                    await hostError { try await host.skip(module: "parker", position: second[0]) }?.code == .notFound)

                // The module goes on afterwards.
                let last = try await log.appendEach([added("a6")])[0]
                try await host.waitForView("parker-seen", at: last)
                #expect(try host.json(view: "parker-seen", key: "a6") != nil)
            }
        }
    }

    @Test(
        "a failure that repeats word for word is retried at once: a flood of poison events is parked without waiting",
        .timeLimit(.minutes(1)))
    func repeatedFailureDoesNotWait() async throws {
        try await withFreshLog { log, _ in
            let projector = PoisonProjector(name: "flooded", view: "flooded-seen", failurePolicy: .park(attempts: 3))
            var configuration = hostConfiguration(batchSize: 100)
            // Were any of these retries to wait, the test would run into its time limit.
            configuration.retryBackoff = .seconds(3600)
            let host = try ProjectionHost(
                log: log, modules: [projector], configuration: configuration, logger: testLogger)
            let poisons = (0..<40).map { poison("p\($0)") }
            let head = try await log.appendAll(poisons + [added("a1")])
            try await running(host) {
                try await host.waitForView("flooded-seen", at: head)
                #expect(try host.json(view: "flooded-seen", key: "a1") != nil)
                let records = try Self.parked(host, "flooded")
                #expect(records.count == 40)
                #expect(records.allSatisfy { $0["attempts"] == 3 })
                #expect(projector.poisonAttempts.value.count == 40)
                #expect(projector.poisonAttempts.value.values.allSatisfy { $0 == 3 })
                #expect(await host.status("flooded")?.parkedCount == 40)
            }
        }
    }

    @Test("a failure that changes from one attempt to the next is retried after the backoff, and may then succeed")
    func changingFailureWaits() async throws {
        try await withFreshLog { log, _ in
            let projector = FlakyProjector()
            var configuration = hostConfiguration()
            configuration.retryBackoff = .milliseconds(200)
            let host = try ProjectionHost(
                log: log, modules: [projector], configuration: configuration, logger: testLogger)
            let head = try await log.appendAll([added("a1")])
            try await running(host) {
                try await host.waitForView("flaky-seen", at: head)
                #expect(try host.json(view: "flaky-seen", key: "a1")?["attempt"] == 3)
                #expect(try host.parked(module: "flaky").isEmpty)
                let instants = try #require(projector.attempts.value[head])
                try #require(instants.count == 3)
                // The second attempt follows the first at once; the third waits out the backoff, because the
                // second failed differently from the first.
                #expect(instants[1] - instants[0] < .milliseconds(200))
                #expect(instants[2] - instants[1] >= .milliseconds(200))
            }
        }
    }

    @Test("a RETRY cut short by stopping, while it waits between attempts, leaves the event parked")
    func retryInterruptedByStopping() async throws {
        try await withFreshLog { log, _ in
            let projector = PoisonProjector(
                name: "interrupted", view: "interrupted-seen", failurePolicy: .park(attempts: 3))
            var configuration = hostConfiguration()
            configuration.retryBackoff = .seconds(3600)
            let host = try ProjectionHost(
                log: log, modules: [projector], configuration: configuration, logger: testLogger)
            let position = try await log.appendAll([poison("p1")])
            let retry = try await running(host) {
                // Parked at once: the same failure three times.
                try await host.waitForView("interrupted-seen", at: position)
                #expect(try Self.parked(host, "interrupted").count == 1)
                // The RETRY fails differently on its first two attempts, so it waits before its third; the host
                // stops meanwhile.
                projector.varyingErrors.value = true
                let retry = Task { await hostError { try await host.retry(module: "interrupted", position: position) } }
                try #require(await eventually { projector.poisonAttempts.value[position] == 5 })
                return retry
            }
            #expect(await retry.value?.code == .unavailable)
            #expect(projector.poisonAttempts.value[position] == 5)
            let records = try Self.parked(host, "interrupted")
            #expect(records.count == 1)
            #expect(records.first?["position"]?.int64Value == Int64(position))
            #expect(records.first?["attempts"] == 3)
        }
    }

    @Test("parked events stay parked across a restart")
    func parkedSurvivesRestart() async throws {
        try await withTemporaryDirectory { directory in
            let policy = FailurePolicy.park(attempts: 2)
            try await withLog(at: directory) { log in
                let head = try await log.appendAll([added("a1"), poison("p1"), added("a2")])
                let host = try ProjectionHost(
                    log: log, modules: [PoisonProjector(name: "parker", view: "parker-seen", failurePolicy: policy)],
                    configuration: hostConfiguration(), logger: testLogger)
                try await running(host) { try await host.waitForView("parker-seen", at: head) }
            }
            try await withLog(at: directory) { log in
                let projector = PoisonProjector(name: "parker", view: "parker-seen", failurePolicy: policy)
                let host = try ProjectionHost(
                    log: log, modules: [projector], configuration: hostConfiguration(), logger: testLogger)
                try await running(host) {
                    try await host.waitForView("parker-seen", at: 3)
                    #expect(await host.status("parker")?.parkedCount == 1)
                    #expect(try Self.parked(host, "parker").map { $0["position"]?.int64Value } == [2])
                    // Not processed again by the new host: only RETRY runs it.
                    #expect(projector.poisonAttempts.value[2] == nil)
                    projector.healed.value = true
                    _ = try await host.retry(module: "parker", position: 2)
                    #expect(try host.json(view: "parker-seen", key: "p1") != nil)
                    #expect(await host.status("parker")?.parkedCount == 0)
                }
            }
        }
    }

    @Test("stop: the module faults just before the event; SKIP steps over it and it resumes")
    func stopPolicySkip() async throws {
        try await withFreshLog { log, _ in
            let projector = PoisonProjector(name: "stopper", view: "stopper-seen", failurePolicy: .stop(attempts: 1))
            let host = try ProjectionHost(
                log: log, modules: [projector], configuration: hostConfiguration(), logger: testLogger)
            // One batch: a1, a2, poison p1 (position 3), a4, a5.
            let head = try await log.appendAll([added("a1"), added("a2"), poison("p1"), added("a4"), added("a5")])
            try await running(host) {
                // Faulting is announced by nothing a test can await: look at PROJECTIONS, within a bound.
                let faulted = await eventually { await host.status("stopper")?.state == .faulted }
                try #require(faulted)
                var status = try #require(await host.status("stopper"))
                #expect(status.checkpoint == 2)
                #expect(status.lag == head - 2)
                #expect(status.eventsProcessed == 2)
                #expect(status.lastError?.contains("poisoned by p1") == true)
                #expect(status.parkedCount == 0)
                #expect(projector.poisonAttempts.value[3] == 1)
                // The events before it in the same batch took effect; those after did not.
                #expect(try host.json(view: "stopper-seen", key: "a2") != nil)
                #expect(try host.document(view: "stopper-seen", key: "a4") == nil)
                #expect(try host.parked(module: "stopper").isEmpty)
                // Its views do not reach the head.
                try await host.waitForView("stopper-seen", at: 2)

                // Only the failing position can be skipped or retried.
                #expect(await hostError { try await host.skip(module: "stopper", position: 4) }?.code == .notFound)
                #expect(await host.status("stopper")?.state == .faulted)

                _ = try await host.skip(module: "stopper", position: 3)
                try await host.waitForView("stopper-seen", at: head)
                status = try #require(await host.status("stopper"))
                #expect(status.state == .running)
                #expect(status.checkpoint == head)
                #expect(status.lastError == nil)
                #expect(status.eventsProcessed == 4)
                #expect(try host.document(view: "stopper-seen", key: "p1") == nil)
                #expect(try host.json(view: "stopper-seen", key: "a4") != nil)
                #expect(try host.json(view: "stopper-seen", key: "a5") != nil)
                #expect(projector.poisonAttempts.value[3] == 1)
            }
        }
    }

    @Test("stop: RETRY resumes at the failing event (which fails again until fixed)")
    func stopPolicyRetry() async throws {
        try await withFreshLog { log, _ in
            let projector = PoisonProjector(name: "stopper", view: "stopper-seen", failurePolicy: .stop(attempts: 1))
            let host = try ProjectionHost(
                log: log, modules: [projector], configuration: hostConfiguration(), logger: testLogger)
            let head = try await log.appendAll([added("a1"), poison("p1"), added("a3")])
            try await running(host) {
                // Faulting is announced by nothing a test can await: look at PROJECTIONS, within a bound.
                try #require(await eventually { await host.status("stopper")?.state == .faulted })
                #expect(await host.status("stopper")?.checkpoint == 1)

                // Still broken: resumes, fails again, faults again at the same place.
                _ = try await host.retry(module: "stopper", position: 2)
                try #require(
                    await eventually {
                        let state = await host.status("stopper")?.state
                        return projector.poisonAttempts.value[2] == 2 && state == .faulted
                    })
                var status = try #require(await host.status("stopper"))
                #expect(status.checkpoint == 1)
                #expect(status.lastError != nil)

                // Fixed: resumes at the event and processes it and what follows.
                projector.healed.value = true
                _ = try await host.retry(module: "stopper", position: 2)
                try await host.waitForView("stopper-seen", at: head)
                status = try #require(await host.status("stopper"))
                #expect(status.state == .running)
                #expect(status.checkpoint == head)
                #expect(status.eventsProcessed == 3)
                #expect(status.lastError == nil)
                #expect(try host.json(view: "stopper-seen", key: "p1")?["position"] == 2)
                #expect(try host.json(view: "stopper-seen", key: "a3") != nil)
            }
        }
    }

    @Test("a faulted module stays faulted across a restart")
    func faultSurvivesRestart() async throws {
        try await withTemporaryDirectory { directory in
            let policy = FailurePolicy.stop(attempts: 1)
            try await withLog(at: directory) { log in
                try await log.appendAll([added("a1"), poison("p1"), added("a3")])
                let host = try ProjectionHost(
                    log: log, modules: [PoisonProjector(name: "stopper", view: "stopper-seen", failurePolicy: policy)],
                    configuration: hostConfiguration(), logger: testLogger)
                try await running(host) {
                    // Faulting is announced by nothing a test can await: look at PROJECTIONS, within a bound.
                    try #require(await eventually { await host.status("stopper")?.state == .faulted })
                }
            }
            try await withLog(at: directory) { log in
                let projector = PoisonProjector(name: "stopper", view: "stopper-seen", failurePolicy: policy)
                let host = try ProjectionHost(
                    log: log, modules: [projector], configuration: hostConfiguration(), logger: testLogger)
                try await running(host) {
                    // The checkpoint was kept just before the event, so it is tried again, and faults again.
                    try #require(await eventually { await host.status("stopper")?.state == .faulted })
                    #expect(await host.status("stopper")?.checkpoint == 1)
                    #expect(projector.poisonAttempts.value[2] == 1)
                    _ = try await host.skip(module: "stopper", position: 2)
                    try await host.waitForView("stopper-seen", at: 3)
                    #expect(try host.json(view: "stopper-seen", key: "a3") != nil)
                }
            }
        }
    }

    @Test("a reaction that cannot be appended parks its source event, and the reactor goes on")
    func unappendableReaction() async throws {
        try await withFreshLog { log, _ in
            let host = try ProjectionHost(
                log: log, modules: [ClaimingReactor()], configuration: hostConfiguration(), logger: testLogger)
            // One batch: three sources; only the first reaction can be appended.
            try await log.appendAll([added("a1"), added("a2"), added("a3")])
            try await running(host) {
                // Three sources, one reaction, and the reactor's checkpoint past it.
                try await host.waitForView("claims", at: 4)
                #expect(log.headPosition == 4)
                #expect(try log.everything(types: ["item-claimed"]).count == 1)
                let records = try Self.parked(host, "claimer")
                #expect(records.map { $0["position"]?.int64Value } == [2, 3])
                #expect(records.allSatisfy { $0["error"]?.stringValue?.contains("could not be appended") == true })
                // The parked reactions' state changes were not kept.
                #expect(try host.json(view: "claims", key: "count") == ["claims": 1])
                let status = try #require(await host.status("claimer"))
                #expect(status.parkedCount == 2)
                #expect(status.state == .running)
                #expect(status.checkpoint == 4)

                let position = try await log.appendEach([added("a5")])[0]
                try await host.waitForView("claims", at: position)
                #expect(try Self.parked(host, "claimer").count == 3)
                #expect(try log.everything(types: ["item-claimed"]).count == 1)
            }
        }
    }

    @Test("after a fixed projector is rebuilt, a parked event still takes effect only once")
    func rebuildThenRetryParked() async throws {
        try await withFreshLog { log, _ in
            let projector = PoisonProjector(name: "parker", view: "parker-seen", failurePolicy: .park(attempts: 1))
            let host = try ProjectionHost(
                log: log, modules: [projector], configuration: hostConfiguration(), logger: testLogger)
            let head = try await log.appendAll([added("a1"), poison("p1"), added("a2")])
            try await running(host) {
                try await host.waitForView("parker-seen", at: head)
                #expect(try Self.parked(host, "parker").count == 1)
                #expect(try host.json(view: "parker-seen", key: "tally") == ["applied": 2])

                // The projector is fixed, and rebuilt: the replay applies the poison event.
                projector.healed.value = true
                _ = try await host.rebuild(module: "parker")
                // The swap is announced by nothing a test can await: look at PROJECTIONS, within a bound.
                try #require(
                    await eventually {
                        let status = await host.status("parker")
                        return status?.state == .running && status?.rebuildPosition == nil
                    })
                #expect(try host.json(view: "parker-seen", key: "p1") != nil)
                #expect(try host.json(view: "parker-seen", key: "tally") == ["applied": 3])

                // Whatever PARKED still lists, retrying it must not apply the event a second time.
                let stillParked = try Self.parked(host, "parker").compactMap { $0["position"]?.int64Value }
                for position in stillParked {
                    _ = try? await host.retry(module: "parker", position: LogPosition(position))
                }
                let tally = try host.json(view: "parker-seen", key: "tally")
                #expect(tally == ["applied": 3], "parked after the rebuild: \(stillParked)")
            }
        }
    }

    @Test("a faulted projector that is rebuilt past its failing event runs again")
    func rebuildFaulted() async throws {
        try await withFreshLog { log, _ in
            let projector = PoisonProjector(name: "stopper", view: "stopper-seen", failurePolicy: .stop(attempts: 1))
            let host = try ProjectionHost(
                log: log, modules: [projector], configuration: hostConfiguration(), logger: testLogger)
            let head = try await log.appendAll([added("a1"), poison("p1"), added("a3")])
            try await running(host) {
                // Faulting is announced by nothing a test can await: look at PROJECTIONS, within a bound.
                try #require(await eventually { await host.status("stopper")?.state == .faulted })
                projector.healed.value = true
                _ = try await host.rebuild(module: "stopper")
                // The swap is announced by nothing a test can await: look at PROJECTIONS, within a bound.
                try #require(await eventually { await host.status("stopper")?.rebuildPosition == nil })
                #expect(try host.json(view: "stopper-seen", key: "a3") != nil)
                let status = try #require(await host.status("stopper"))
                #expect(status.checkpoint == head)
                #expect(status.state == .running)
                #expect(status.lastError == nil)
                // New events are followed.
                let position = try await log.appendEach([added("a4")])[0]
                try await host.waitForView("stopper-seen", at: position)
                #expect(try host.json(view: "stopper-seen", key: "a4") != nil)
            }
        }
    }
}
