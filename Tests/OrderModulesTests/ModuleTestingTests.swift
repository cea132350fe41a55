import LoglineCore
import LoglineModuleAPI
import LoglineModuleTesting
import OrdersModule
import Testing

/// The test harness itself behaves as the host does.
@Suite struct ModuleTestingTests {
    @Test func testEventLogNumbersEventsLikeTheLog() throws {
        var log = TestEventLog()
        let a1 = log.append("a", to: orderStream("x"), data: 1)
        let b1 = log.append("b", to: orderStream("y"), data: 2, metadata: ["k": "v"])
        let a2 = log.append("a", to: orderStream("x"), data: 3)
        #expect([a1, b1, a2].map(\.position) == [1, 2, 3])
        #expect([a1, b1, a2].map(\.version) == [1, 1, 2])
        #expect(log.version(of: orderStream("x")) == 2)
        #expect(log.version(of: orderStream("z")) == 0)
        #expect(log.events(in: orderStream("x")) == [a1, a2])
        #expect(a2.recordedAt.millisecondsSinceEpoch - a1.recordedAt.millisecondsSinceEpoch == 2000)
        #expect(a1.recordedAt.description == "2025-01-01T00:00:00.000Z")
        #expect(b1.metadata == Array(#"{"k":"v"}"#.utf8))
        #expect(a1.eventID == TestEventLog.defaultEventID(at: 1))
        #expect(log.event(withID: b1.eventID) == b1)
        #expect(log.event(at: 4) == nil)

        // The same events again get the same ids: tests are reproducible.
        var again = TestEventLog()
        #expect(again.append("a", to: orderStream("x"), data: 1) == a1)
    }

    @Test func testEventLogChecksExpectationsAndIDs() throws {
        var log = TestEventLog()
        let id = EventID.random()
        let event = NewEvent(eventType: "a", data: ["n": 1])
        try log.append([event], to: orderStream("x"), expectedVersion: .noStream, eventIDs: [id])
        #expect(
            throws: TestEventLog.AppendFailure.wrongExpectedVersion(
                stream: orderStream("x"), expected: .noStream, actual: 1)
        ) {
            try log.append([event], to: orderStream("x"), expectedVersion: .noStream)
        }
        // An idempotent retry writes nothing, whatever the expectation.
        let retried = try log.append([event], to: orderStream("x"), expectedVersion: .noStream, eventIDs: [id])
        #expect(retried.map(\.position) == [1])
        #expect(log.headPosition == 1)
        #expect(throws: TestEventLog.AppendFailure.eventIDReused(id, position: 1)) {
            try log.append(
                [NewEvent(eventType: "a", data: ["n": 2])], to: orderStream("x"), expectedVersion: .any, eventIDs: [id])
        }
        #expect(throws: TestEventLog.AppendFailure.invalidEventType("not a name")) {
            try log.append([NewEvent(eventType: "not a name", data: 1)], to: orderStream("x"), expectedVersion: .any)
        }
        try log.append([event, event], to: orderStream("x"), expectedVersion: .exact(1))
        #expect(log.version(of: orderStream("x")) == 3)
    }

    @Test func inMemoryCommandContextReadsAndDecides() async throws {
        let context = InMemoryCommandContext()
        let stream = orderStream("x")
        let first = try await context.decide(stream) { history in
            #expect(history.isEmpty)
            return [NewEvent(eventType: "a", data: 1)]
        }
        #expect(first.map(\.version) == [1])
        _ = try await context.decide(stream) { history in
            #expect(history.map(\.eventType) == ["a"])
            return [NewEvent(eventType: "b", data: 2)]
        }
        #expect(try await context.read(stream).map(\.data) == [1, 2])
        await #expect(throws: CommandError.conflict("stream order/x is at version 2, expected 1")) {
            try await context.append([NewEvent(eventType: "c", data: 3)], to: stream, expectedVersion: .exact(1))
        }
    }

    /// A projector that stops on an event whose data is `"boom"`.
    struct Fragile: Projector {
        var name: String { "fragile" }
        var handledEventTypes: Set<String> { [] }
        var views: [ViewDefinition] { [ViewDefinition(name: "seen", indexes: ["n"])] }
        var failurePolicy: FailurePolicy { .stop(attempts: 2) }
        struct Boom: Error {}
        func apply(_ event: ModuleEvent, to views: inout ViewChanges) throws {
            try views.put(
                "seen", key: String(event.position), document: ["n": .number(JSONNumber(Int64(event.position)))])
            if event.data == "boom" { throw Boom() }
        }
    }

    @Test func aStoppingProjectorStopsBeforeTheFailingEvent() throws {
        var log = TestEventLog()
        log.append("a", to: orderStream("x"), data: 1)
        let boom = log.append("a", to: orderStream("x"), data: "boom")
        log.append("a", to: orderStream("x"), data: 3)
        var harness = ProjectorHarness(Fragile())
        let failures = harness.process(log.events)
        #expect(failures.map(\.disposition) == [.stopped])
        #expect(harness.stoppedBefore == boom)
        #expect(harness.checkpoint == 1)
        #expect(harness.documents("seen").keys.sorted() == ["1"], "the failing event changed nothing")
        #expect(throws: HarnessError.notIndexed(view: "seen", field: "m")) {
            try harness.query("seen", where: "m", equals: 1)
        }
        #expect(throws: HarnessError.unknownView("other")) { try harness.query("other", where: "n", equals: 1) }
        #expect(try harness.query("seen", where: "n", equals: 1) == ["1"])
    }

    /// A reactor that answers every `ping` with a `ping` on the same stream: it never settles.
    struct PingPong: Reactor {
        var name: String { "ping-pong" }
        var handledEventTypes: Set<String> { ["ping"] }
        func react(to event: ModuleEvent, context: inout ReactorContext) throws {
            context.emit("ping", to: event.stream, data: event.data)
        }
    }

    @Test func aReactionLoopIsReported() throws {
        var saga = try SagaSimulator(modules: [PingPong()])
        saga.maximumAppendsPerRun = 50
        saga.append("ping", to: orderStream("x"), data: 1)
        #expect(throws: SagaSimulator.SimulatorError.notQuiescent(appended: 51)) { try saga.run() }
    }

    /// A reactor that counts events in a view and emits to a stream that must not exist yet.
    struct Creator: Reactor {
        var name: String { "creator" }
        var handledEventTypes: Set<String> { ["go"] }
        var views: [ViewDefinition] { [ViewDefinition(name: "count")] }
        func react(to event: ModuleEvent, context: inout ReactorContext) throws {
            let count = try context.views.document("count", key: "n")?.int64Value ?? 0
            try context.views.put("count", key: "n", document: .number(JSONNumber(count + 1)))
            context.emit("created", to: orderStream("fixed"), data: 1, expectedVersion: .noStream)
            context.emit("second", to: orderStream("other"), data: 2)
        }
    }

    @Test func aReactionThatCannotBeAppendedIsParkedWithoutEffect() throws {
        var saga = try SagaSimulator(modules: [Creator()], strict: false)
        let first = saga.append("go", to: orderStream("a"), data: 1)
        let second = saga.append("go", to: orderStream("b"), data: 2)
        let appended = try saga.run()
        #expect(appended.map(\.eventType) == ["created", "second"])
        #expect(
            appended[1].eventID == HostConventions.reactionEventID(module: "creator", index: 1, source: first.eventID))
        #expect(
            appended[0].metadata
                == HostConventions.reactionMetadata(source: try ModuleEvent(first)).description.utf8.map { $0 })
        #expect(saga.failures.count == 1)
        #expect(saga.failures.first?.event == second)
        #expect(saga.failures.first?.disposition == .parked)
        #expect(saga.document("count", key: "n") == 1, "the parked reaction's view change was dropped")
        #expect(saga.checkpoint(of: "creator") == 4)

        var strict = try SagaSimulator(modules: [Creator()])
        strict.append("go", to: orderStream("a"), data: 1)
        strict.append("go", to: orderStream("b"), data: 2)
        #expect(throws: ModuleFailure.self) { try strict.run() }
    }

    /// A second handler of `create-order`.
    struct OtherCreateOrder: CommandHandler {
        var name: String { "other" }
        var commandName: String { "create-order" }
        func handle(_ body: JSONValue, context: any CommandContext) async throws -> CommandOutcome {
            CommandOutcome(result: [:], appended: [])
        }
    }

    @Test func modulesMustNotClash() {
        #expect(throws: SagaSimulator.SimulatorError.duplicateModule("orders")) {
            _ = try SagaSimulator(modules: [OrdersProjector(), OrdersProjector()])
        }
        #expect(throws: SagaSimulator.SimulatorError.duplicateCommand("create-order")) {
            _ = try SagaSimulator(modules: [CreateOrderHandler(), OtherCreateOrder()])
        }
    }

    @Test func anUnknownCommandIsReported() async throws {
        var saga = try SagaSimulator(modules: [])
        await #expect(throws: SagaSimulator.SimulatorError.unknownCommand("nope")) {
            try await saga.submit("nope", [:])
        }
    }

    @Test func reactorHarnessAppendsLikeTheHost() throws {
        var log = TestEventLog()
        log.append("ping", to: orderStream("x"), data: 1)
        var harness = ReactorHarness(PingPong())
        let appended = try harness.react(to: log.events[0], appendingTo: &log)
        #expect(appended.map(\.position) == [2])
        #expect(try ModuleEvent(appended[0]).metadata["causation_id"] == .string(log.events[0].eventID.description))
        // Reacting to the same event again proposes the same id: nothing new is appended.
        var replay = ReactorHarness(PingPong())
        #expect(try replay.react(to: log.events[0], appendingTo: &log).isEmpty)
        #expect(log.headPosition == 2)
    }
}
