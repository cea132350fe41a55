/// An event as the log keeps it: the envelope.
///
/// The JSON form has the names `event_id`, `event_type`, `aggregate_type`, `aggregate_id`, `version`,
/// `position`, `recorded_at`, `data` and `metadata`. `data` and `metadata` are kept as the JSON bytes
/// the client sent, so the log never re-encodes them.
public struct RecordedEvent: Hashable, Sendable {
    /// The event's unique id.
    public var eventID: EventID
    /// What happened, for example `order-created`.
    public var eventType: String
    /// The stream the event belongs to.
    public var stream: StreamName
    /// The event's version within its stream (1, 2, 3, ...).
    public var version: StreamVersion
    /// The event's global position in the log (1, 2, 3, ...).
    public var position: LogPosition
    /// When the log committed the event.
    public var recordedAt: Timestamp
    /// The event's body: any JSON value, as UTF-8 bytes.
    public var data: [UInt8]
    /// The event's metadata: a JSON object, as UTF-8 bytes (`{}` when none was given).
    public var metadata: [UInt8]

    /// Creates an envelope.
    /// - Parameters:
    ///   - eventID: The event's id.
    ///   - eventType: The event's type.
    ///   - stream: Its stream.
    ///   - version: Its version within the stream.
    ///   - position: Its global position.
    ///   - recordedAt: When it was committed.
    ///   - data: The JSON body.
    ///   - metadata: The JSON metadata object.
    public init(
        eventID: EventID, eventType: String, stream: StreamName, version: StreamVersion, position: LogPosition,
        recordedAt: Timestamp, data: [UInt8], metadata: [UInt8]
    ) {
        self.eventID = eventID
        self.eventType = eventType
        self.stream = stream
        self.version = version
        self.position = position
        self.recordedAt = recordedAt
        self.data = data
        self.metadata = metadata
    }

    /// The envelope as a JSON object, appended to `buffer`.
    /// - Parameter buffer: Where the JSON goes.
    public func appendJSON(to buffer: inout [UInt8]) {
        EnvelopeJSON.append(
            eventID: eventID, eventType: eventType.utf8, aggregateType: stream.aggregateType.utf8,
            aggregateID: stream.aggregateID.utf8, version: version, position: position, recordedAt: recordedAt,
            data: data, metadata: metadata, to: &buffer)
    }

    /// The envelope as JSON text.
    public var json: String {
        var buffer = [UInt8]()
        appendJSON(to: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}

/// Where one appended event landed.
public struct AppendedEvent: Hashable, Sendable {
    /// The event's id (the client's, or the generated one).
    public var eventID: EventID
    /// Its global position.
    public var position: LogPosition
    /// Its version within the stream.
    public var version: StreamVersion

    /// Creates the record of one appended event.
    /// - Parameters:
    ///   - eventID: The id.
    ///   - position: The position.
    ///   - version: The version.
    public init(eventID: EventID, position: LogPosition, version: StreamVersion) {
        self.eventID = eventID
        self.position = position
        self.version = version
    }
}

/// Writes envelopes as JSON from their parts, so a reader can render straight from stored bytes.
public enum EnvelopeJSON {
    /// Appends the JSON object of one envelope to `buffer`.
    ///
    /// - Important: Names are not escaped: they must follow the rules of ``Name``. `data` and `metadata`
    ///   must be valid JSON.
    /// - Parameters:
    ///   - eventID: The event's id.
    ///   - eventType: The event type's bytes.
    ///   - aggregateType: The aggregate type's bytes.
    ///   - aggregateID: The aggregate id's bytes.
    ///   - version: The version within the stream.
    ///   - position: The global position.
    ///   - recordedAt: The commit time.
    ///   - data: The JSON body.
    ///   - metadata: The JSON metadata object.
    ///   - buffer: Where the JSON goes.
    @inlinable
    public static func append<Name: Collection, Body: Collection>(
        eventID: EventID, eventType: Name, aggregateType: Name, aggregateID: Name, version: StreamVersion,
        position: LogPosition, recordedAt: Timestamp, data: Body, metadata: Body, to buffer: inout [UInt8]
    ) where Name.Element == UInt8, Body.Element == UInt8 {
        buffer.reserveCapacity(buffer.count + 200 + data.count + metadata.count)
        buffer.append(contentsOf: #"{"event_id":""#.utf8)
        eventID.appendText(to: &buffer)
        buffer.append(contentsOf: #"","event_type":""#.utf8)
        buffer.append(contentsOf: eventType)
        buffer.append(contentsOf: #"","aggregate_type":""#.utf8)
        buffer.append(contentsOf: aggregateType)
        buffer.append(contentsOf: #"","aggregate_id":""#.utf8)
        buffer.append(contentsOf: aggregateID)
        buffer.append(contentsOf: #"","version":"#.utf8)
        appendDecimal(version, to: &buffer)
        buffer.append(contentsOf: #","position":"#.utf8)
        appendDecimal(position, to: &buffer)
        buffer.append(contentsOf: #","recorded_at":""#.utf8)
        recordedAt.appendRFC3339(to: &buffer)
        buffer.append(contentsOf: #"","data":"#.utf8)
        buffer.append(contentsOf: data)
        buffer.append(contentsOf: #","metadata":"#.utf8)
        buffer.append(contentsOf: metadata)
        buffer.append(UInt8(ascii: "}"))
    }

    /// Appends an unsigned integer in decimal.
    /// - Parameters:
    ///   - value: The number.
    ///   - buffer: Where the digits go.
    @inlinable
    public static func appendDecimal(_ value: UInt64, to buffer: inout [UInt8]) {
        var divisor: UInt64 = 1
        while value / divisor >= 10 { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            buffer.append(UInt8(ascii: "0") + UInt8(rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }
}
