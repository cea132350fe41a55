import LoglineCore
import LoglineModuleAPI

/// Runs a reactor as a pure function over events, without a server: its views live in memory and the events it
/// emits are returned (or appended to a ``TestEventLog`` with the ids and metadata the host gives them).
///
/// ```swift
/// var harness = ReactorHarness(PaymentReactor())
/// let emitted = try harness.react(to: created)
/// #expect(emitted.map(\.eventType) == ["order-payment-debited"])
/// ```
public struct ReactorHarness: Sendable {
    private var driver: ModuleDriver

    /// Creates a harness with empty views.
    /// - Parameter reactor: The reactor under test.
    public init(_ reactor: any Reactor) {
        driver = ModuleDriver(reactor: reactor)
    }

    /// The reactor under test.
    public var reactor: any Reactor {
        guard case .reactor(let reactor) = driver.kind else { preconditionFailure("not a reactor") }
        return reactor
    }

    /// The position of the last event offered to the reactor, fed or skipped (0 before the first).
    public var checkpoint: LogPosition { driver.checkpoint }

    /// Reacts to one event (nothing happens when the reactor does not handle its type).
    /// - Parameter event: The event.
    /// - Returns: The events the reactor emitted, in order.
    /// - Throws: What the reactor threw, unchanged; its views are then as they were.
    @discardableResult
    public mutating func react(to event: RecordedEvent) throws -> [EmittedEvent] {
        guard driver.feeds(event) else {
            driver.checkpoint = event.position
            return []
        }
        let step = try driver.step(event)
        try driver.commit(step)
        return step.emitted
    }

    /// Reacts to events in order and stops at the first that throws (the events before it take effect).
    /// - Parameter events: The events, in log order.
    /// - Returns: Everything emitted, in order.
    /// - Throws: What the reactor threw, unchanged.
    @discardableResult
    public mutating func react(to events: [RecordedEvent]) throws -> [EmittedEvent] {
        var emitted: [EmittedEvent] = []
        for event in events { emitted += try react(to: event) }
        return emitted
    }

    /// Reacts to one event and appends what the reactor emitted to `log` as the host would: ids derived from the
    /// reactor's name and the event's id, `causation_id` and `correlation_id` in the metadata, and each emitted
    /// event's expected version checked. The reaction and its appends take effect together or not at all.
    /// - Parameters:
    ///   - event: The event (usually one of `log`'s).
    ///   - log: Where the reaction's events go.
    /// - Returns: The events appended (an idempotent repeat appends nothing and returns nothing).
    /// - Throws: What the reactor threw, or a ``TestEventLog/AppendFailure`` when an emitted event cannot be
    ///   appended (the host parks the source event then).
    @discardableResult
    public mutating func react(to event: RecordedEvent, appendingTo log: inout TestEventLog) throws
        -> [RecordedEvent]
    {
        guard driver.feeds(event) else {
            driver.checkpoint = event.position
            return []
        }
        let step = try driver.step(event)
        let appended = try log.appendReactions(step, module: driver.name)
        try driver.commit(step)
        return appended
    }

    /// Reacts to every event of `log` after ``checkpoint``, its own reactions included, appending what it emits,
    /// until it has seen the whole log.
    /// - Parameter log: The log, which grows with the reactions.
    /// - Returns: The events appended.
    /// - Throws: As ``react(to:appendingTo:)``; it stops at the first failure.
    @discardableResult
    public mutating func catchUp(with log: inout TestEventLog) throws -> [RecordedEvent] {
        var appended: [RecordedEvent] = []
        while let event = log.event(at: checkpoint + 1) {
            appended += try react(to: event, appendingTo: &log)
        }
        return appended
    }

    /// A document of one of the reactor's views.
    /// - Parameters:
    ///   - view: The view's name.
    ///   - key: The document's key.
    /// - Returns: The document, or `nil` when there is none.
    public func document(_ view: String, key: String) -> JSONValue? {
        driver.document(view, key: key)
    }

    /// All the documents of one of the reactor's views.
    /// - Parameter view: The view's name.
    /// - Returns: The documents by key (empty for an unknown view).
    public func documents(_ view: String) -> [String: JSONValue] {
        driver.documents(view)
    }

    /// The keys of the documents whose indexed `field` equals `value`, as `QUERY <view> WHERE` finds them.
    /// - Parameters:
    ///   - view: The view's name.
    ///   - field: An indexed field of the view.
    ///   - value: The value (a string, number or Boolean; compared by its text).
    /// - Returns: The matching keys, sorted.
    /// - Throws: ``HarnessError`` when the view is not the reactor's or the field is not indexed.
    public func query(_ view: String, where field: String, equals value: JSONValue) throws(HarnessError) -> [String] {
        try driver.query(view, where: field, equals: value)
    }
}

extension TestEventLog {
    /// Appends a reaction's events as the host does, all or nothing.
    /// - Returns: The events newly written (none for an idempotent repeat).
    mutating func appendReactions(_ step: ModuleDriver.Step, module: String) throws(AppendFailure) -> [RecordedEvent] {
        var trial = self
        var appended: [RecordedEvent] = []
        let metadata = HostConventions.reactionMetadata(source: step.event)
        for (index, emitted) in step.emitted.enumerated() {
            let head = trial.headPosition
            let stored = try trial.append(
                [NewEvent(eventType: emitted.eventType, data: emitted.data, metadata: metadata)], to: emitted.stream,
                expectedVersion: emitted.expectedVersion,
                eventIDs: [HostConventions.reactionEventID(module: module, index: index, source: step.event.eventID)])
            appended += stored.filter { $0.position > head }
        }
        self = trial
        return appended
    }
}
