import LoglineCore
import LoglineModuleAPI

/// Runs a projector as a pure function over a list of events, without a server: the views live in memory.
///
/// Events are fed as the host feeds them: in the order given, only those whose type the projector handles
/// (all of them when it declares none), each in a trial copy of the views so an event that throws changes
/// nothing. Documents are stored as JSON text and read back, as the host stores them.
///
/// ```swift
/// var log = TestEventLog()
/// log.append("order-created", to: order, data: [...])
/// var harness = ProjectorHarness(OrdersProjector())
/// try harness.apply(log.events)
/// #expect(harness.document("orders", key: "o-1")?["status"] == "Pending")
/// ```
public struct ProjectorHarness: Sendable {
    private var driver: ModuleDriver

    /// Creates a harness with empty views.
    /// - Parameter projector: The projector under test.
    public init(_ projector: any Projector) {
        driver = ModuleDriver(projector: projector)
    }

    /// The projector under test.
    public var projector: any Projector {
        guard case .projector(let projector) = driver.kind else { preconditionFailure("not a projector") }
        return projector
    }

    /// The position of the last event offered to the projector, fed or skipped (0 before the first).
    public var checkpoint: LogPosition { driver.checkpoint }

    /// The failures recorded by ``process(_:)``, oldest first.
    public var failures: [ModuleFailure] { driver.failures }

    /// The event the projector stopped before, when ``process(_:)`` met a failure and its policy is to stop.
    public var stoppedBefore: RecordedEvent? { driver.stoppedBefore }

    /// Feeds events and stops at the first that throws.
    ///
    /// The events before the failing one take effect; the failing one changes nothing.
    /// - Parameter events: The events, in log order.
    /// - Throws: What the projector threw, unchanged (or a ``LoglineCore/JSONValidator/Failure`` when an event's
    ///   data is not JSON).
    public mutating func apply(_ events: [RecordedEvent]) throws {
        for event in events { try apply(event) }
    }

    /// Feeds one event (skipped when the projector does not handle its type).
    /// - Parameter event: The event.
    /// - Throws: What the projector threw, unchanged; the views are then as they were.
    public mutating func apply(_ event: RecordedEvent) throws {
        guard driver.feeds(event) else {
            driver.checkpoint = event.position
            return
        }
        try driver.commit(try driver.step(event))
    }

    /// Feeds the events of `log` after ``checkpoint`` and stops at the first that throws.
    /// - Parameter log: The log.
    /// - Throws: What the projector threw, unchanged.
    public mutating func catchUp(with log: TestEventLog) throws {
        try apply(log.events.filter { $0.position > checkpoint })
    }

    /// Feeds events as the host would: an event that throws is parked (and the projector goes on), or the
    /// projector stops before it, according to its ``LoglineModuleAPI/Projector/failurePolicy``.
    ///
    /// The harness tries each event once: a deterministic projector fails the same way on every retry.
    /// Once stopped, the projector takes no more events.
    /// - Parameter events: The events, in log order.
    /// - Returns: The failures this call recorded.
    @discardableResult
    public mutating func process(_ events: [RecordedEvent]) -> [ModuleFailure] {
        var recorded: [ModuleFailure] = []
        for event in events {
            guard driver.stoppedBefore == nil else { break }
            do {
                try apply(event)
            } catch {
                recorded.append(driver.fail(event, error: error))
            }
        }
        return recorded
    }

    /// A document of one of the projector's views.
    /// - Parameters:
    ///   - view: The view's name.
    ///   - key: The document's key.
    /// - Returns: The document, or `nil` when there is none.
    public func document(_ view: String, key: String) -> JSONValue? {
        driver.document(view, key: key)
    }

    /// All the documents of one of the projector's views.
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
    /// - Throws: ``HarnessError`` when the view is not the projector's or the field is not indexed.
    public func query(_ view: String, where field: String, equals value: JSONValue) throws(HarnessError) -> [String] {
        try driver.query(view, where: field, equals: value)
    }
}
