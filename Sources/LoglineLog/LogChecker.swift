import LoglineCore
import LoglineLMDB

/// One inconsistency that ``LogChecker`` found in a store.
public struct CheckProblem: Hashable, Sendable, CustomStringConvertible {
    /// What kind of inconsistency it is.
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        /// Positions are missing between 1 and the head, or a key of `events` is not a position.
        case positionGap = "position-gap"
        /// An event record cannot be decoded, or holds an invalid name, version or JSON.
        case damagedRecord = "damaged-record"
        /// An event has no entry in `stream_events` for its stream and version.
        case streamIndexMissing = "stream-index-missing"
        /// `stream_events` maps an event's stream and version to another position.
        case streamIndexMismatch = "stream-index-mismatch"
        /// An entry of `stream_events` is malformed or points to no event, or to an event of another stream or
        /// version.
        case streamIndexOrphan = "stream-index-orphan"
        /// A stream's versions do not run 1, 2, 3, … without a gap, or are not in position order.
        case streamVersionGap = "stream-version-gap"
        /// An event's id has no entry in `event_ids`.
        case eventIDMissing = "event-id-missing"
        /// `event_ids` maps an event's id to another position.
        case eventIDMismatch = "event-id-mismatch"
        /// An entry of `event_ids` is malformed or points to no event, or to an event with another id.
        case eventIDOrphan = "event-id-orphan"
        /// The count of streams in `meta` differs from the streams in `stream_events`.
        case streamCount = "stream-count"
        /// A module's checkpoint is beyond the head, or cannot be read.
        case checkpoint = "checkpoint"
        /// A module's rebuild progress is beyond the head, or cannot be read.
        case rebuild = "rebuild"
        /// A consumer group's cursor is beyond the head, or its record cannot be read.
        case groupCursor = "group-cursor"
        /// A consumer group's pending delivery refers to no event, or belongs to no group.
        case groupPending = "group-pending"
        /// A consumer group's dead letter refers to no event, or belongs to no group.
        case groupDead = "group-dead"
    }

    /// What kind of inconsistency it is.
    public var kind: Kind
    /// What exactly is wrong, and where.
    public var message: String

    /// Creates a problem.
    /// - Parameters:
    ///   - kind: The kind.
    ///   - message: The details.
    public init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    /// `kind: message`, one line.
    public var description: String { "\(kind.rawValue): \(message)" }
}

/// What ``LogChecker/check()`` looked at and what it found.
public struct CheckReport: Hashable, Sendable {
    /// The last position in `events` (0 when empty).
    public var headPosition: LogPosition = 0
    /// The events read from `events`.
    public var eventCount: UInt64 = 0
    /// The streams: the events at version 1.
    public var streamCount: UInt64 = 0
    /// The module checkpoints checked.
    public var checkpointCount: Int = 0
    /// The rebuilds in progress checked.
    public var rebuildCount: Int = 0
    /// The consumer groups checked.
    public var groupCount: Int = 0
    /// The pending deliveries and dead letters of consumer groups checked.
    public var groupEntryCount: Int = 0
    /// The problems found, in the order they were found; at most ``LogChecker/maximumProblems`` of them.
    public var problems: [CheckProblem] = []
    /// How many problems were found in all, including those left out of ``problems``.
    public var problemCount: Int = 0

    /// Creates an empty report.
    public init() {}

    /// Whether the store is consistent: no problem was found.
    public var isClean: Bool { problemCount == 0 }

    /// The figures on one line, for people.
    public var summary: String {
        "head \(headPosition), \(eventCount) events, \(streamCount) streams, \(checkpointCount) checkpoints, "
            + "\(rebuildCount) rebuilds, \(groupCount) consumer groups (\(groupEntryCount) pending or dead entries)"
    }
}

/// Verifies that an LMDB store is consistent: the events, the indexes beside them, the count of streams, and the
/// positions that modules and consumer groups keep in the state tables.
///
/// Checks that:
/// - positions run 1, 2, …, head without a gap and every record decodes, with valid names and JSON;
/// - `stream_events` maps each event's stream and version to its position, up to `indexed_through`, and has no
///   other entries, and each stream's versions run 1, 2, …, n in position order; each later event is in the log's
///   pending stream index instead (a log opened for the check has written those at its open);
/// - `event_ids` maps each event's id to its position and has no other entries;
/// - the count of streams in `meta` equals the number of streams;
/// - every module checkpoint (table `checkpoint`) and rebuild progress (table `rebuild`) is at or below the head;
/// - every consumer group's cursor (table `groups`) is at or below the head, and every pending delivery and dead
///   letter (tables `gpending/<group>` and `gdead/<group>`) refers to an existing event of an existing group.
///
/// Everything is read in one read transaction, so the check sees one consistent snapshot and writes nothing.
/// Run it on a log opened only for the check (a stopped server's directory): the log's directory lock keeps a
/// running server out meanwhile.
public struct LogChecker: Sendable {
    /// The log to check.
    public let log: LMDBEventLog
    /// The most problems kept in the report; more are counted in ``CheckReport/problemCount`` only.
    public var maximumProblems: Int

    /// Creates a checker.
    /// - Parameters:
    ///   - log: The log to check.
    ///   - maximumProblems: The most problems to list (1000 by default).
    public init(log: LMDBEventLog, maximumProblems: Int = 1000) {
        self.log = log
        self.maximumProblems = maximumProblems
    }

    /// Reads the whole store and reports what is inconsistent.
    /// - Returns: The figures and the problems; ``CheckReport/isClean`` when there are none.
    /// - Throws: ``LoglineLMDB/LMDBError`` when the store cannot be read at all.
    public func check() throws -> CheckReport {
        try log.environment.read { transaction in
            var run = CheckRun(log: log, transaction: transaction, maximumProblems: maximumProblems)
            try run.checkEvents()
            try run.checkStreamIndex()
            try run.checkEventIDs()
            try run.checkStreamCount()
            try run.checkModules()
            try run.checkGroups()
            return run.report
        }
    }
}

/// One pass of the checker, inside one read transaction.
private struct CheckRun {
    let log: LMDBEventLog
    let transaction: LMDBTransaction
    let maximumProblems: Int
    var report = CheckReport()
    /// Where `stream_events` ends: later events are in the log's pending stream index.
    var indexedThrough: LogPosition = 0
    /// Where the bulk write of the stream index under way, if any, goes: `stream_events` may hold entries after
    /// `indexedThrough` up to there.
    var bulkWriteThrough: LogPosition = 0

    init(log: LMDBEventLog, transaction: LMDBTransaction, maximumProblems: Int) {
        self.log = log
        self.transaction = transaction
        self.maximumProblems = maximumProblems
    }

    mutating func problem(_ kind: CheckProblem.Kind, _ message: String) {
        report.problemCount += 1
        if report.problems.count < maximumProblems {
            report.problems.append(CheckProblem(kind: kind, message: message))
        }
    }

    /// The event at `position`, or `nil` when there is none or it does not decode.
    func event(at position: LogPosition) throws -> StoredEventView? {
        guard let record = try transaction.get(log.events, key: StorageLayout.bigEndian(position)) else { return nil }
        return StoredEventView(position: position, record: record)
    }

    // MARK: - events

    mutating func checkEvents() throws {
        try transaction.withCursor(log.events) { cursor in
            if let last = try cursor.last(), last.key.count == 8 {
                report.headPosition = StorageLayout.readBigEndian(last.key)
            }
            if let stored = try transaction.get(log.meta, key: StorageLayout.indexedThroughKey), stored.count == 8 {
                indexedThrough = StorageLayout.readBigEndian(stored)
                bulkWriteThrough = log.pendingIndex.withLock { $0.flush?.through ?? 0 }
            } else {
                problem(.streamIndexMissing, "meta has no valid indexed_through")
            }
            var expected: LogPosition = 1
            var entry = try cursor.first()
            while let current = entry {
                try visitEvent(key: current.key, record: current.value, expected: &expected)
                entry = try cursor.next()
            }
        }
    }

    mutating func visitEvent(
        key: UnsafeRawBufferPointer, record: UnsafeRawBufferPointer, expected: inout LogPosition
    ) throws {
        guard key.count == 8 else {
            problem(.positionGap, "events has a key of \(key.count) bytes, not a position")
            return
        }
        let position = StorageLayout.readBigEndian(key)
        guard position > 0 else {
            problem(.positionGap, "events has an event at position 0")
            return
        }
        if position > expected {
            let missing =
                position - 1 == expected ? "position \(expected) is" : "positions \(expected) to \(position - 1) are"
            problem(.positionGap, "\(missing) missing (the next event is at position \(position))")
        }
        expected = position + 1
        report.eventCount += 1
        guard let view = StoredEventView(position: position, record: record) else {
            problem(.damagedRecord, "the record at position \(position) cannot be decoded")
            return
        }
        try checkEvent(view)
    }

    mutating func checkEvent(_ view: StoredEventView) throws {
        let position = view.position
        let stream =
            "\(String(decoding: view.aggregateType, as: UTF8.self))/\(String(decoding: view.aggregateID, as: UTF8.self))"
        guard Name.isValid(view.aggregateType), Name.isValid(view.aggregateID), Name.isValid(view.eventType) else {
            problem(.damagedRecord, "the record at position \(position) has an invalid stream or event type name")
            return
        }
        if view.version == 0 {
            problem(.damagedRecord, "the event at position \(position) (\(stream)) has version 0")
        }
        if view.version == 1 { report.streamCount += 1 }
        if let failure = JSONValidator.validate(view.data.assumingMemoryBound(to: UInt8.self)) {
            problem(.damagedRecord, "the data of the event at position \(position) is not valid JSON: \(failure)")
        }
        if let failure = JSONValidator.validateObject(view.metadata) {
            problem(
                .damagedRecord, "the metadata of the event at position \(position) is not a JSON object: \(failure)")
        }

        let streamKey = view.streamKey
        let indexKey = StorageLayout.streamEventKey(streamKey, version: view.version)
        let indexed = try transaction.get(log.streamEvents, key: indexKey).map {
            $0.count == 8 ? StorageLayout.readBigEndian($0) : 0
        }
        if position > indexedThrough {
            let pending = log.pendingIndex.withLock { index in
                index.entries(
                    of: StreamKey(streamKey), from: view.version, after: indexedThrough, through: position)
            }
            if pending?.firstVersion != view.version || pending?.positions.first != position {
                problem(
                    .streamIndexMissing,
                    "the event at position \(position) (\(stream) version \(view.version)), after indexed_through "
                        + "\(indexedThrough), is missing from the pending stream index")
            }
            if indexed != nil, position > bulkWriteThrough {
                problem(
                    .streamIndexOrphan,
                    "stream_events has \(stream) version \(view.version) at position \(position), after "
                        + "indexed_through \(indexedThrough)")
            }
        } else if indexed == nil {
            problem(
                .streamIndexMissing,
                "the event at position \(position) (\(stream) version \(view.version)) is missing from stream_events")
        }
        if let target = indexed, target != position, position <= max(indexedThrough, bulkWriteThrough) {
            problem(
                .streamIndexMismatch,
                "stream_events maps \(stream) version \(view.version) to position \(target), but the event is "
                    + "at position \(position)")
        }

        if let indexed = try transaction.get(log.eventIDs, key: view.eventID.bytes) {
            let target = indexed.count == 8 ? StorageLayout.readBigEndian(indexed) : 0
            if target != position {
                problem(
                    .eventIDMismatch,
                    "event_ids maps \(view.eventID) to position \(target), but the event is at position \(position)")
            }
        } else {
            problem(
                .eventIDMissing, "the id \(view.eventID) of the event at position \(position) is missing from event_ids"
            )
        }
    }

    // MARK: - stream_events

    /// Splits a `stream_events` key into its stream's name and version; `nil` when malformed.
    static func parseStreamEventKey(_ key: UnsafeRawBufferPointer) -> StreamEventKey? {
        guard key.count >= 12 else { return nil }
        let stream = Array(key[0..<(key.count - 8)])
        let parts = stream.split(separator: 0, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2].isEmpty, Name.isValid(parts[0]), Name.isValid(parts[1]) else { return nil }
        return StreamEventKey(
            stream: stream, aggregateType: Array(parts[0]), aggregateID: Array(parts[1]),
            version: StorageLayout.readBigEndian(key, at: key.count - 8))
    }

    /// A decoded key of `stream_events`.
    struct StreamEventKey {
        var stream: [UInt8]
        var aggregateType: [UInt8]
        var aggregateID: [UInt8]
        var version: UInt64

        var name: String {
            "\(String(decoding: aggregateType, as: UTF8.self))/\(String(decoding: aggregateID, as: UTF8.self))"
        }
    }

    mutating func checkStreamIndex() throws {
        try transaction.withCursor(log.streamEvents) { cursor in
            var currentStream: [UInt8] = []
            var lastVersion: UInt64 = 0
            var lastPosition: LogPosition = 0
            var entry = try cursor.first()
            while let current = entry {
                guard let key = Self.parseStreamEventKey(current.key) else {
                    problem(.streamIndexOrphan, "stream_events has a malformed key of \(current.key.count) bytes")
                    entry = try cursor.next()
                    continue
                }
                let position = current.value.count == 8 ? StorageLayout.readBigEndian(current.value) : 0
                if key.stream != currentStream {
                    currentStream = key.stream
                    if key.version != 1 {
                        problem(.streamVersionGap, "stream \(key.name) starts at version \(key.version), not 1")
                    }
                } else {
                    if key.version != lastVersion + 1 {
                        problem(
                            .streamVersionGap,
                            "stream \(key.name) goes from version \(lastVersion) to version \(key.version)")
                    }
                    if position <= lastPosition {
                        problem(
                            .streamVersionGap,
                            "stream \(key.name) has version \(key.version) at position \(position), not after "
                                + "version \(lastVersion) at position \(lastPosition)")
                    }
                }
                lastVersion = key.version
                lastPosition = position
                if let view = try event(at: position) {
                    if !view.aggregateType.elementsEqual(key.aggregateType)
                        || !view.aggregateID.elementsEqual(key.aggregateID) || view.version != key.version
                    {
                        problem(
                            .streamIndexOrphan,
                            "stream_events maps \(key.name) version \(key.version) to position \(position), which "
                                + "holds version \(view.version) of another stream or version")
                    }
                } else {
                    problem(
                        .streamIndexOrphan,
                        "stream_events maps \(key.name) version \(key.version) to position \(position), where there "
                            + "is no readable event")
                }
                entry = try cursor.next()
            }
        }
    }

    // MARK: - event_ids

    mutating func checkEventIDs() throws {
        try transaction.withCursor(log.eventIDs) { cursor in
            var entry = try cursor.first()
            while let current = entry {
                try visitEventID(key: current.key, value: current.value)
                entry = try cursor.next()
            }
        }
    }

    mutating func visitEventID(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws {
        guard key.count == 16, let id = EventID.fromBytes(key) else {
            problem(.eventIDOrphan, "event_ids has a malformed key of \(key.count) bytes")
            return
        }
        guard value.count == 8 else {
            problem(.eventIDOrphan, "event_ids has a malformed position for \(id)")
            return
        }
        let position = StorageLayout.readBigEndian(value)
        if position > report.headPosition {
            problem(
                .eventIDOrphan, "event_ids maps \(id) to position \(position), beyond the head \(report.headPosition)")
        } else if let view = try event(at: position) {
            if view.eventID != id {
                problem(
                    .eventIDOrphan,
                    "event_ids maps \(id) to position \(position), which holds the event \(view.eventID)")
            }
        } else {
            problem(.eventIDOrphan, "event_ids maps \(id) to position \(position), where there is no readable event")
        }
    }

    // MARK: - meta

    mutating func checkStreamCount() throws {
        let stored = try transaction.get(log.meta, key: StorageLayout.streamCountKey)
        let count: UInt64
        if let stored {
            guard stored.count == 8 else {
                problem(.streamCount, "meta holds a malformed stream_count of \(stored.count) bytes")
                return
            }
            count = StorageLayout.readBigEndian(stored)
        } else {
            count = 0
        }
        if count != report.streamCount {
            problem(
                .streamCount,
                "meta says there are \(count) streams, but \(report.streamCount) events are at version 1")
        }
    }

    // MARK: - state tables

    /// Every entry of a state table whose name starts with `tablePrefix`: its table's name, key and value.
    func stateEntries(tablesStartingWith tablePrefix: String) throws -> [(table: String, key: [UInt8], value: [UInt8])]
    {
        let prefix = Array(tablePrefix.utf8)
        return try transaction.withCursor(log.state) { cursor in
            var result: [(table: String, key: [UInt8], value: [UInt8])] = []
            var entry = try cursor.seek(atOrAfter: prefix)
            while let current = entry, current.key.starts(with: prefix) {
                if let separator = current.key.firstIndex(of: 0) {
                    result.append(
                        (
                            String(decoding: current.key[0..<separator], as: UTF8.self),
                            Array(current.key[(separator + 1)...]), Array(current.value)
                        ))
                }
                entry = try cursor.next()
            }
            return result
        }
    }

    /// The entries of exactly one state table.
    func stateTable(_ table: String) throws -> [(key: [UInt8], value: [UInt8])] {
        try stateEntries(tablesStartingWith: table + "\u{0}").map { ($0.key, $0.value) }
    }

    mutating func checkModules() throws {
        for entry in try stateTable("checkpoint") {
            let module = String(decoding: entry.key, as: UTF8.self)
            report.checkpointCount += 1
            guard entry.value.count >= 16 else {
                problem(.checkpoint, "the checkpoint of module \(module) is malformed (\(entry.value.count) bytes)")
                continue
            }
            let position = entry.value.withUnsafeBytes { StorageLayout.readBigEndian($0) }
            if position > report.headPosition {
                problem(
                    .checkpoint,
                    "module \(module) has its checkpoint at position \(position), beyond the head \(report.headPosition)"
                )
            }
        }
        for entry in try stateTable("rebuild") {
            let module = String(decoding: entry.key, as: UTF8.self)
            report.rebuildCount += 1
            guard entry.value.count >= 24 else {
                problem(.rebuild, "the rebuild progress of module \(module) is malformed (\(entry.value.count) bytes)")
                continue
            }
            let position = entry.value.withUnsafeBytes { StorageLayout.readBigEndian($0) }
            if position > report.headPosition {
                problem(
                    .rebuild,
                    "module \(module) has its rebuild at position \(position), beyond the head \(report.headPosition)")
            }
        }
    }

    mutating func checkGroups() throws {
        var groups = Set<String>()
        for entry in try stateTable("groups") {
            let group = String(decoding: entry.key, as: UTF8.self)
            report.groupCount += 1
            groups.insert(group)
            guard let config = try? JSONValue(parsing: entry.value), let cursor = config["cursor"]?.int64Value,
                cursor >= 0
            else {
                problem(.groupCursor, "consumer group \(group) has a record without a readable cursor")
                continue
            }
            if UInt64(cursor) > report.headPosition {
                problem(
                    .groupCursor,
                    "consumer group \(group) has its cursor at position \(cursor), beyond the head \(report.headPosition)"
                )
            }
        }
        for (tablePrefix, kind, what) in [
            ("gpending/", CheckProblem.Kind.groupPending, "a pending delivery"),
            ("gdead/", CheckProblem.Kind.groupDead, "a dead letter"),
        ] {
            for entry in try stateEntries(tablesStartingWith: tablePrefix) {
                let group = String(entry.table.dropFirst(tablePrefix.count))
                report.groupEntryCount += 1
                guard groups.contains(group) else {
                    problem(kind, "\(entry.table) holds \(what) of consumer group \(group), which does not exist")
                    continue
                }
                guard entry.key.count == 8 else {
                    problem(
                        kind, "consumer group \(group) has \(what) with a malformed key of \(entry.key.count) bytes")
                    continue
                }
                let position = entry.key.withUnsafeBytes { StorageLayout.readBigEndian($0) }
                var exists = position > 0 && position <= report.headPosition
                if exists { exists = try event(at: position) != nil }
                if !exists {
                    problem(
                        kind, "consumer group \(group) has \(what) for position \(position), where there is no event")
                }
            }
        }
    }
}
