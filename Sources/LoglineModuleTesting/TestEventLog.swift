import LoglineCore
import LoglineModuleAPI

/// An in-memory event log for tests: gap-free positions from 1, gap-free versions per stream from 1, a
/// deterministic clock and deterministic event ids, so a test reads the same events on every run.
///
/// It keeps the rules of the real log that a module can run into: event types must be valid names, an append's
/// ``LoglineCore/ExpectedVersion`` is checked, and appending an event id that is already stored is an idempotent
/// no-op when the content is the same and an error when it is not.
///
/// ```swift
/// var log = TestEventLog()
/// let order = try StreamName(aggregateType: "order", aggregateID: "o-1")
/// let created = log.append("order-created", to: order, data: ["order_id": "o-1", "amount": 25])
/// ```
public struct TestEventLog: Sendable {
    /// Why an append wrote nothing.
    public enum AppendFailure: Error, Hashable, Sendable, CustomStringConvertible {
        /// The stream was not at the expected version.
        case wrongExpectedVersion(stream: StreamName, expected: ExpectedVersion, actual: StreamVersion)
        /// An event id is already used by an event with other content (stream, type or data).
        case eventIDReused(EventID, position: LogPosition)
        /// Some but not all of the request's event ids are already in the log.
        case partiallyAppended(EventID, position: LogPosition)
        /// The same event id appears twice in one request.
        case duplicateEventIDInRequest(EventID)
        /// An event type is not a valid ``LoglineCore/Name``.
        case invalidEventType(String)
        /// The request has no events, or not as many ids as events.
        case malformedRequest(String)

        /// A message in the words of the real log.
        public var description: String {
            switch self {
            case .wrongExpectedVersion(let stream, let expected, let actual):
                return "stream \(stream) is at version \(actual), expected \(expected)"
            case .eventIDReused(let id, let position):
                return "event_id \(id) is already used by another event (position \(position))"
            case .partiallyAppended(let id, let position):
                return "event_id \(id) is already stored (position \(position)) but other events of the request are not"
            case .duplicateEventIDInRequest(let id):
                return "event_id \(id) appears more than once in the request"
            case .invalidEventType(let type):
                return NameError(field: "event_type", value: type).description
            case .malformedRequest(let reason):
                return reason
            }
        }
    }

    /// The events, in position order: `events[p - 1]` is at position `p`.
    public private(set) var events: [RecordedEvent] = []
    /// The time stamped on the next append.
    public var clock: Timestamp
    /// How far the clock moves after each append, in milliseconds (1000 by default).
    public var tickMilliseconds: Int64

    private var versions: [StreamName: StreamVersion] = [:]
    private var positionsByID: [EventID: LogPosition] = [:]

    /// Creates an empty log.
    /// - Parameters:
    ///   - clock: The `recorded_at` of the first event (2025-01-01T00:00:00.000Z by default).
    ///   - tickMilliseconds: How far the clock moves after each append.
    public init(
        clock: Timestamp = Timestamp(millisecondsSinceEpoch: 1_735_689_600_000), tickMilliseconds: Int64 = 1000
    ) {
        self.clock = clock
        self.tickMilliseconds = tickMilliseconds
    }

    /// The position of the last event (0 when the log is empty).
    public var headPosition: LogPosition { LogPosition(events.count) }

    /// The version of a stream (0 when it has no events).
    /// - Parameter stream: The stream.
    /// - Returns: The version of its last event.
    public func version(of stream: StreamName) -> StreamVersion {
        versions[stream] ?? 0
    }

    /// The events of one stream, oldest first.
    /// - Parameter stream: The stream.
    /// - Returns: Its events (empty when it has none).
    public func events(in stream: StreamName) -> [RecordedEvent] {
        events.filter { $0.stream == stream }
    }

    /// The event at a position.
    /// - Parameter position: The position, from 1.
    /// - Returns: The event, or `nil` when the position is out of range.
    public func event(at position: LogPosition) -> RecordedEvent? {
        guard position >= 1, position <= headPosition else { return nil }
        return events[Int(position - 1)]
    }

    /// The event with an id.
    /// - Parameter id: The event id.
    /// - Returns: The event, or `nil` when no event has that id.
    public func event(withID id: EventID) -> RecordedEvent? {
        positionsByID[id].flatMap(event(at:))
    }

    /// The id the log gives the event at `position` when the caller gives none: derived from the position, so it
    /// is the same on every run.
    /// - Parameter position: The event's position.
    /// - Returns: A stable id.
    public static func defaultEventID(at position: LogPosition) -> EventID {
        EventID.derived(namespace: "logline-test-event-log", source: EventID(high: 0, low: position))
    }

    /// Appends one event, with no expectation on its stream, as a client would.
    ///
    /// - Precondition: `type` is a valid ``LoglineCore/Name`` and `id`, when given, is not already used by
    ///   another event (these are mistakes in the test itself).
    /// - Parameters:
    ///   - type: The event type, for example `order-created`.
    ///   - stream: The stream.
    ///   - data: The event's body.
    ///   - metadata: The event's metadata.
    ///   - id: The event id; ``defaultEventID(at:)`` when `nil`.
    /// - Returns: The stored event.
    @discardableResult
    public mutating func append(
        _ type: String, to stream: StreamName, data: JSONValue, metadata: JSONObject = [:], id: EventID? = nil
    ) -> RecordedEvent {
        do {
            return try append(
                [NewEvent(eventType: type, data: data, metadata: metadata)], to: stream, expectedVersion: .any,
                eventIDs: id.map { [$0] })[0]
        } catch {
            preconditionFailure("TestEventLog.append: \(error)")
        }
    }

    /// Appends events to one stream atomically, under an expectation, as the real log does.
    /// - Parameters:
    ///   - newEvents: The events.
    ///   - stream: Their stream.
    ///   - expectedVersion: What the stream's version must be.
    ///   - eventIDs: The events' ids, one per event; ``defaultEventID(at:)`` for each when `nil`.
    /// - Returns: The stored events; when every id was already stored with the same content, the stored events
    ///   and nothing is written (an idempotent retry).
    /// - Throws: ``AppendFailure`` and nothing is written.
    @discardableResult
    public mutating func append(
        _ newEvents: [NewEvent], to stream: StreamName, expectedVersion: ExpectedVersion, eventIDs: [EventID]? = nil
    ) throws(AppendFailure) -> [RecordedEvent] {
        guard !newEvents.isEmpty else { throw .malformedRequest("an append needs at least one event") }
        if let eventIDs, eventIDs.count != newEvents.count {
            throw .malformedRequest("\(eventIDs.count) ids for \(newEvents.count) events")
        }
        for event in newEvents where !Name.isValid(event.eventType) {
            throw .invalidEventType(event.eventType)
        }
        let data = newEvents.map(\.data.jsonBytes)
        if let eventIDs {
            var seen = Set<EventID>()
            for id in eventIDs where !seen.insert(id).inserted { throw .duplicateEventIDInRequest(id) }
            var stored: [RecordedEvent] = []
            for (offset, id) in eventIDs.enumerated() {
                guard let position = positionsByID[id] else { continue }
                let existing = events[Int(position - 1)]
                guard existing.stream == stream, existing.eventType == newEvents[offset].eventType,
                    existing.data == data[offset]
                else { throw .eventIDReused(id, position: position) }
                stored.append(existing)
            }
            if stored.count == newEvents.count { return stored }
            if let first = stored.first { throw .partiallyAppended(first.eventID, position: first.position) }
        }
        let current = version(of: stream)
        guard expectedVersion.isSatisfied(by: current) else {
            throw .wrongExpectedVersion(stream: stream, expected: expectedVersion, actual: current)
        }
        var appended: [RecordedEvent] = []
        for (offset, newEvent) in newEvents.enumerated() {
            let position = headPosition + 1
            let id = eventIDs?[offset] ?? Self.defaultEventID(at: position)
            let event = RecordedEvent(
                eventID: id, eventType: newEvent.eventType, stream: stream, version: current + UInt64(offset) + 1,
                position: position, recordedAt: clock, data: data[offset],
                metadata: JSONValue.object(newEvent.metadata).jsonBytes)
            events.append(event)
            positionsByID[id] = position
            appended.append(event)
        }
        versions[stream] = current + UInt64(newEvents.count)
        clock = Timestamp(millisecondsSinceEpoch: clock.millisecondsSinceEpoch + tickMilliseconds)
        return appended
    }
}
