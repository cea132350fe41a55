import LoglineCore

/// An event to append: what the client proposes, before the log gives it a position and a version.
public struct ProposedEvent: Hashable, Sendable {
    /// The event's id; the log generates a random one when this is `nil`.
    public var eventID: EventID?
    /// What happened, for example `order-created`. Must follow the rules of ``Name``.
    public var eventType: String
    /// The event's body: valid JSON bytes.
    public var data: [UInt8]
    /// The event's metadata: a JSON object's bytes.
    public var metadata: [UInt8]

    /// Creates a proposed event.
    /// - Parameters:
    ///   - eventID: The id, or `nil` for a generated one.
    ///   - eventType: The event's type.
    ///   - data: The JSON body.
    ///   - metadata: The JSON metadata object (`{}` by default).
    public init(eventID: EventID? = nil, eventType: String, data: [UInt8], metadata: [UInt8] = Array("{}".utf8)) {
        self.eventID = eventID
        self.eventType = eventType
        self.data = data
        self.metadata = metadata
    }
}

/// One append: events for one stream, written atomically under one expectation.
public struct AppendRequest: Hashable, Sendable {
    /// The stream the events go to.
    public var stream: StreamName
    /// What the stream's version must be.
    public var expectedVersion: ExpectedVersion
    /// The events, in order; at least one.
    public var events: [ProposedEvent]

    /// Creates an append.
    /// - Parameters:
    ///   - stream: The stream.
    ///   - expectedVersion: The expectation (``ExpectedVersion/any`` by default).
    ///   - events: The events, at least one.
    public init(stream: StreamName, expectedVersion: ExpectedVersion = .any, events: [ProposedEvent]) {
        self.stream = stream
        self.expectedVersion = expectedVersion
        self.events = events
    }
}

/// The outcome of a successful append.
public struct AppendResult: Hashable, Sendable {
    /// Each event's id, position and version, in the order they were given.
    public var events: [AppendedEvent]
    /// `true` when every event was already in the log (an idempotent retry): nothing was written.
    public var alreadyAppended: Bool

    /// Creates an outcome.
    /// - Parameters:
    ///   - events: Where the events are.
    ///   - alreadyAppended: Whether they were there before this request.
    public init(events: [AppendedEvent], alreadyAppended: Bool) {
        self.events = events
        self.alreadyAppended = alreadyAppended
    }
}

/// Why an append wrote nothing.
public enum AppendError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The stream was not at the expected version.
    case wrongExpectedVersion(stream: StreamName, expected: ExpectedVersion, actual: StreamVersion)
    /// An event id is already used by an event with other content (another stream, type or data).
    case eventIDReused(EventID, position: LogPosition)
    /// Some but not all of the request's event ids are already in the log.
    case partiallyAppended(EventID, position: LogPosition)
    /// The same event id appears twice in one request.
    case duplicateEventIDInRequest(EventID)
    /// The request has no events.
    case emptyRequest
    /// The log is closing or closed.
    case closed
    /// The storage failed; nothing of this request was written.
    case storage(String)
    /// The disk, a quota or the file-size limit is full; nothing of this request was written, and it may be
    /// sent again once space is freed.
    case diskFull(String)

    /// A message for the client.
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
        case .emptyRequest:
            return "an append needs at least one event"
        case .closed:
            return "the log is closed"
        case .storage(let message):
            return "storage failure, nothing was written: \(message)"
        case .diskFull(let message):
            return "the disk is full, nothing was written (retry once space is freed): \(message)"
        }
    }
}

/// Figures about the log.
public struct LogInfo: Hashable, Sendable {
    /// The position of the last event (0 when empty).
    public var lastPosition: LogPosition
    /// How many events the log holds.
    public var eventCount: UInt64
    /// How many streams have at least one event.
    public var streamCount: UInt64
    /// Where the log lives (a directory, or a connection string for other backends).
    public var location: String
    /// Bytes the storage takes on disk.
    public var storageBytes: UInt64

    /// Creates the figures.
    /// - Parameters:
    ///   - lastPosition: The last position.
    ///   - eventCount: The number of events.
    ///   - streamCount: The number of streams.
    ///   - location: Where the log lives.
    ///   - storageBytes: Bytes on disk.
    public init(
        lastPosition: LogPosition, eventCount: UInt64, streamCount: UInt64, location: String, storageBytes: UInt64
    ) {
        self.lastPosition = lastPosition
        self.eventCount = eventCount
        self.streamCount = streamCount
        self.location = location
        self.storageBytes = storageBytes
    }
}

/// The system of record: an append-only log of events with gap-free positions and per-stream versions.
///
/// This is the seam between Logline and its storage. The LMDB backend (``LMDBEventLog``) implements it for
/// one machine; a PostgreSQL backend can implement it to share one log between several servers.
///
/// - Important: Implementations must uphold these guarantees:
///   - `completion` reports success only after the events are durable.
///   - Positions are gap-free and never reused; versions within a stream are gap-free.
///   - An append is all or nothing: every event of one request is written, or none is.
///   - Appending an event id that is already stored, to the same stream with the same type and data, writes
///     nothing and reports the original positions.
public protocol EventLog: Sendable {
    /// Appends events; calls `completion` once, from any thread, when they are durable or have failed.
    /// - Parameters:
    ///   - request: The events and their expectation.
    ///   - completion: Receives the outcome.
    func append(_ request: AppendRequest, completion: @escaping @Sendable (Result<AppendResult, AppendError>) -> Void)

    /// Reads a stream's events, oldest first. A backend may return fewer than `limit` events to bound the size of
    /// one read (at least one when any is there); callers page on from the last event returned.
    /// - Parameters:
    ///   - stream: The stream.
    ///   - version: The first version to return (1 for the start).
    ///   - limit: The most events to return.
    /// - Returns: The events; empty for an unknown stream.
    /// - Throws: A storage error.
    func readStream(_ stream: StreamName, from version: StreamVersion, limit: Int) throws -> [RecordedEvent]

    /// Reads the log in position order. A backend may return fewer than `limit` events to bound the size of one
    /// read (at least one when any is there); callers page on from the last event returned.
    /// - Parameters:
    ///   - position: The first position to return (1 for the start).
    ///   - limit: The most events to return.
    ///   - eventTypes: Return only events of these types; all when empty.
    /// - Returns: The events.
    /// - Throws: A storage error.
    func readAll(from position: LogPosition, limit: Int, eventTypes: Set<String>) throws -> [RecordedEvent]

    /// A stream's current version (0 when it has no events).
    /// - Parameter stream: The stream.
    /// - Returns: Its version.
    /// - Throws: A storage error.
    func streamVersion(_ stream: StreamName) throws -> StreamVersion

    /// The position of the last durable event (0 when empty).
    var headPosition: LogPosition { get }

    /// Figures about the log.
    /// - Returns: The figures.
    /// - Throws: A storage error.
    func info() throws -> LogInfo

    /// Calls `listener` after each commit, with the new head position, on the writer's thread.
    /// - Parameter listener: Must return quickly.
    func onCommit(_ listener: @escaping @Sendable (LogPosition) -> Void)

    /// Commits appends and state writes together, all or nothing, durably.
    /// - Parameters:
    ///   - unit: What to write and the conditions under which to write it.
    ///   - completion: Receives one result per append, once durable, or why nothing was written.
    func commit(_ unit: CommitUnit, completion: @escaping @Sendable (Result<[AppendResult], CommitError>) -> Void)

    /// Reads events after a position, for a consumer that checkpoints.
    /// - Parameters:
    ///   - position: Return events after this one.
    ///   - limit: The most events to return.
    ///   - eventTypes: Only these types; all when empty.
    /// - Returns: The events, and the last position examined.
    /// - Throws: A storage error.
    func readBatch(after position: LogPosition, limit: Int, eventTypes: Set<String>) throws -> EventBatch

    /// Reads one value of a state table.
    /// - Parameters:
    ///   - table: The table.
    ///   - key: The key.
    /// - Returns: The value, or `nil` when absent.
    /// - Throws: A storage error.
    func readState(table: String, key: [UInt8]) throws -> [UInt8]?

    /// Reads several values of a state table in one consistent snapshot.
    /// - Parameters:
    ///   - table: The table.
    ///   - keys: The keys.
    /// - Returns: The values, in the order of `keys`, `nil` where absent.
    /// - Throws: A storage error.
    func readState(table: String, keys: [[UInt8]]) throws -> [[UInt8]?]

    /// Writes a consistent copy of the whole store (events and state tables) while appends go on; starting a
    /// server on the copy restores it.
    /// - Parameter destination: Where the copy goes: a directory that must not exist yet, or be empty.
    /// - Returns: The last position in the copy.
    /// - Throws: A storage error, or when the destination is not usable.
    func backup(to destination: String) throws -> LogPosition

    /// Walks a state table in key order.
    /// - Parameters:
    ///   - table: The table.
    ///   - prefix: Only keys that start with these bytes.
    ///   - after: Start after this key (from the start of the prefix when `nil`).
    ///   - limit: The most entries to return.
    /// - Returns: The entries in key order.
    /// - Throws: A storage error.
    func scanState(table: String, prefix: [UInt8], after: [UInt8]?, limit: Int) throws -> [(
        key: [UInt8], value: [UInt8]
    )]
}

extension EventLog {
    /// Commits a unit and waits until it is durable.
    /// - Parameter unit: What to write.
    /// - Returns: One result per append.
    /// - Throws: ``CommitError``.
    public func commit(_ unit: CommitUnit) async throws(CommitError) -> [AppendResult] {
        let result = await withCheckedContinuation { continuation in
            commit(unit) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Appends events and waits until they are durable.
    /// - Parameter request: The events and their expectation.
    /// - Returns: Where the events are.
    /// - Throws: ``AppendError``.
    public func append(_ request: AppendRequest) async throws(AppendError) -> AppendResult {
        let result = await withCheckedContinuation { continuation in
            append(request) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }
}
