import LoglineCore

/// An event as a module sees it: the envelope, with its data parsed.
///
/// The metadata is parsed when it is asked for: most modules never look at it, and parsing it for every event
/// cost a projector a large share of its time.
public struct ModuleEvent: Hashable, Sendable {
    /// The envelope as stored.
    public let envelope: RecordedEvent
    /// The parsed `data`.
    public let data: JSONValue

    /// Parses an envelope's data, and checks that its metadata is valid JSON.
    /// - Parameter envelope: The stored event.
    /// - Throws: ``LoglineCore/JSONValidator/Failure`` when they are not valid JSON (never for events the log
    ///   accepted).
    public init(_ envelope: RecordedEvent) throws(JSONValidator.Failure) {
        self.envelope = envelope
        self.data = try JSONValue(parsing: envelope.data)
        if let failure = JSONValidator.validate(envelope.metadata) { throw failure }
    }

    /// The parsed `metadata` (an object), parsed from the envelope on each access.
    public var metadata: JSONValue {
        // The initialiser validated the bytes, so parsing cannot fail.
        (try? JSONValue(parsing: envelope.metadata)) ?? .object([:])
    }

    /// The event's type.
    public var eventType: String { envelope.eventType }
    /// The event's stream.
    public var stream: StreamName { envelope.stream }
    /// The event's id.
    public var eventID: EventID { envelope.eventID }
    /// The event's global position.
    public var position: LogPosition { envelope.position }
    /// The event's version in its stream.
    public var version: StreamVersion { envelope.version }
    /// When the event was committed.
    public var recordedAt: Timestamp { envelope.recordedAt }
    /// The `correlation_id` of the metadata, or the event's own id when there is none: the saga it belongs to.
    public var correlationID: String { metadata["correlation_id"]?.stringValue ?? eventID.description }
}
