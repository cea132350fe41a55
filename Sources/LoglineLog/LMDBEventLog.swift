import Dispatch
import Foundation
import Logging
import LoglineCore
import LoglineLMDB
import Metrics
import Synchronization

/// The event log on LMDB: one environment in a data directory, one writer thread with group commit.
///
/// Appends from every caller wait in one queue. The writer thread takes everything that is waiting, writes it
/// in one transaction, commits it with one fsync (of its write-ahead journal record; see
/// ``Configuration/writeAheadJournal``), and only then completes each append. So a success always means
/// the event is on disk, and throughput grows with the number of concurrent appenders rather than stopping at
/// the disk's fsync rate.
///
/// Reads run in LMDB read transactions on the caller's thread and never wait for the writer.
public final class LMDBEventLog: EventLog {
    /// How the log is opened.
    public struct Configuration: Sendable {
        /// The initial LMDB map size; the map grows by itself when full.
        public var initialMapSize: Int = 256 << 20
        /// The most requests taken into one write transaction.
        public var maximumBatchRequests: Int = 4096
        /// About the most bytes of event data, metadata and state taken into one write transaction: a commit's
        /// changes are held in memory twice (LMDB's dirty pages and the journal record) until it is durable. A
        /// larger request still goes, alone.
        public var maximumBatchBytes: Int = 64 << 20
        /// How many `stream_events` entries wait in memory (``PendingStreamIndex``) before the group commits write
        /// them in bulk, ``streamIndexChunk`` a commit; 1 writes each commit's entries in the next commit. More
        /// entries share more leaf pages of the index, so the bulk write costs less an entry.
        public var streamIndexBatch: Int = 131_072
        /// The most `stream_events` entries of a bulk write that one group commit writes: what bounds the time it
        /// adds to that commit.
        public var streamIndexChunk: Int = 4096
        /// About how many streams' current versions the writer keeps once their entries are in `stream_events`
        /// (``StreamHeadCache``), so that an append to one of them reads no page of the stream index; 0 keeps none.
        /// About 80 bytes a stream.
        public var streamHeadCacheCapacity: Int = 262_144
        /// How many bytes of the store's mapped pages may always stay in the process's resident set before they
        /// are handed back to the page cache (``LoglineLMDB/LMDBEnvironment/releaseMappedPages()``), checked every
        /// 2 ms; `nil` (the default) leaves them to the kernel. See ``residentSetTarget`` for when more may stay.
        ///
        /// The measure is the whole process's (its shared resident pages since the log opened), so set it only
        /// where this log is the one store of the process, as `logline serve` does: with several logs open, each
        /// would count the others' pages and hand its own back again and again.
        public var residentMapLimit: Int?
        /// The size of the whole resident set under which the mapped pages may stay past ``residentMapLimit``:
        /// they may use what the rest of the process leaves of it. `nil`: only the limit counts.
        ///
        /// Every page handed back is faulted in again when it is next read, and the pages of the indexes that
        /// every append reads are read all the time: at 16 MB, pipelined appends spent about a seventh of their
        /// time handing pages back and faulting them in again. With a target, the pages stay while there is
        /// room, and go when the rest of the process (a rebuild's batches) needs the room.
        public var residentSetTarget: Int?
        /// Whether a store without a write-ahead journal gets one (a store that has one always keeps it): a group
        /// commit then syncs one journal record instead of LMDB's two syncs of scattered pages, and a checkpoint
        /// thread syncs the data file behind it. See ``LoglineLMDB/LMDBEnvironment``'s "Write-ahead journal".
        public var writeAheadJournal: Bool = true

        /// The defaults.
        public init() {}
    }

    private enum PendingWork: Sendable {
        case append(AppendRequest, @Sendable (Result<AppendResult, AppendError>) -> Void)
        case unit(CommitUnit, @Sendable (Result<[AppendResult], CommitError>) -> Void)

        func fail(_ message: String, diskFull: Bool) {
            switch self {
            case .append(_, let completion): completion(.failure(diskFull ? .diskFull(message) : .storage(message)))
            case .unit(_, let completion): completion(.failure(diskFull ? .diskFull(message) : .storage(message)))
            }
        }

        func close() {
            switch self {
            case .append(_, let completion): completion(.failure(.closed))
            case .unit(_, let completion): completion(.failure(.closed))
            }
        }

        /// About how many bytes it writes: what bounds a group commit's size besides its count of requests.
        var byteEstimate: Int {
            func size(_ request: AppendRequest) -> Int {
                request.events.reduce(0) { $0 + $1.data.count + $1.metadata.count + 256 }
            }
            switch self {
            case .append(let request, _): return size(request)
            case .unit(let unit, _):
                return unit.appends.reduce(0) { $0 + size($1) }
                    + unit.writes.reduce(0) { $0 + $1.table.utf8.count + $1.key.count + ($1.value?.count ?? 0) + 16 }
            }
        }
    }

    private enum WorkOutcome {
        case append(Result<AppendResult, AppendError>)
        case unit(Result<[AppendResult], CommitError>)
    }

    private struct WriterQueue {
        var pending: [PendingWork] = []
        var closing = false
    }

    /// The data directory.
    public let directory: String
    let environment: LMDBEnvironment
    let events: LMDBDatabase
    let streamEvents: LMDBDatabase
    let eventIDs: LMDBDatabase
    let meta: LMDBDatabase
    let state: LMDBDatabase
    private let directoryLock: DirectoryLock
    private let configuration: Configuration
    private let logger: Logger
    private let metrics: LogMetrics
    private let head: Atomic<UInt64>
    private let lastRecordedAt: Atomic<Int64>
    private let queue = Mutex(WriterQueue())
    private let wakeup = DispatchSemaphore(value: 0)
    private let writerFinished = DispatchSemaphore(value: 0)
    private let listeners = Mutex<[@Sendable (LogPosition) -> Void]>([])
    private let closed = Atomic<Bool>(false)
    /// The stream-index entries of recent commits, not yet in `stream_events`.
    let pendingIndex: Mutex<PendingStreamIndex>
    /// The random bits of the ids the writer gives events that come without one.
    private let random = Mutex(BufferedSystemRandom())
    /// Signalled at close: the thread that hands the store's mapped pages back to the page cache stops.
    private let trimmerStop = DispatchSemaphore(value: 0)
    /// The shared part of the resident set when the log opened (the program's code and libraries), the resident
    /// set's target, and the mapped pages' own limit above that baseline; `nil` when pages are left to the kernel.
    private let mapResidency: (baseline: Int, target: Int, limit: Int)?
    /// Finished batches of the writer waiting to be freed (``reclaimer``).
    private let reclaiming = Atomic<Int>(0)
    /// When the writer last looked at the resident set, in nanoseconds of the continuous clock.
    private let lastResidencyCheck = Atomic<Int64>(0)
    private let trimmerFinished = DispatchSemaphore(value: 0)

    /// Opens the log in `directory`, creating the directory and the store when missing.
    /// - Parameters:
    ///   - directory: The data directory.
    ///   - configuration: Sizes.
    ///   - logger: Where notable things are logged.
    ///   - metricsFactory: Where the log's metrics go (appends, group commits, head, map size); the process's
    ///     `MetricsSystem` by default, which records nothing until it is bootstrapped.
    /// - Throws: ``OpenError`` when another server holds the directory or the store cannot be opened.
    public init(
        directory: String, configuration: Configuration = Configuration(), logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) throws(OpenError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw OpenError.io("cannot create data directory \(directory): \(error.localizedDescription)")
        }
        let absolute = URL(fileURLWithPath: directory).standardizedFileURL.path
        self.directory = absolute
        self.directoryLock = try DirectoryLock(directory: absolute)
        // Past a file-size limit (RLIMIT_FSIZE), write() fails with EFBIG, which a commit reports like a full
        // disk, only while SIGXFSZ is ignored; its default action would kill the process instead.
        signal(SIGXFSZ, SIG_IGN)
        self.configuration = configuration
        self.logger = logger
        self.metrics = LogMetrics(factory: metricsFactory)
        do {
            var environmentConfiguration = LMDBEnvironment.Configuration()
            environmentConfiguration.mapSize = configuration.initialMapSize
            environmentConfiguration.writeAheadJournal = configuration.writeAheadJournal
            let checkpoints = metrics.checkpointDuration
            environmentConfiguration.journalCheckpointObserver = { checkpoints.recordNanoseconds(Self.nanoseconds($0)) }
            let environment = try LMDBEnvironment(directory: absolute, configuration: environmentConfiguration)
            self.environment = environment
            self.events = try environment.openDatabase(named: "events")
            self.streamEvents = try environment.openDatabase(named: "stream_events")
            self.eventIDs = try environment.openDatabase(named: "event_ids")
            self.meta = try environment.openDatabase(named: "meta")
            self.state = try environment.openDatabase(named: "state")
        } catch {
            throw OpenError.io("cannot open the store in \(absolute): \(error)")
        }
        if environment.replayedJournalRecords > 0 {
            logger.notice(
                "replayed the write-ahead journal: the previous run ended without a checkpoint",
                metadata: ["records": "\(environment.replayedJournalRecords)"])
        }
        let lastPosition: UInt64
        do {
            lastPosition = try environment.read { [events] transaction in
                try transaction.withCursor(events) { cursor in
                    try cursor.last().map { StorageLayout.readBigEndian($0.key) } ?? 0
                }
            }
        } catch {
            throw OpenError.corrupt("cannot read the store in \(absolute): \(error)")
        }
        self.head = Atomic(lastPosition)
        self.lastRecordedAt = Atomic(0)
        self.pendingIndex = Mutex(
            PendingStreamIndex(indexedThrough: lastPosition, headCapacity: configuration.streamHeadCacheCapacity))
        if let limit = configuration.residentMapLimit, let baseline = LMDBEnvironment.residentBytes()?.shared {
            self.mapResidency = (baseline, max(limit, configuration.residentSetTarget ?? 0), limit)
        } else {
            self.mapResidency = nil
        }
        do {
            try checkFormat(head: lastPosition)
            try indexUnindexedEvents(head: lastPosition)
        } catch let error as OpenError {
            throw error
        } catch {
            throw OpenError.corrupt("cannot read the store in \(absolute): \(error)")
        }
        if mapResidency != nil {
            Self.startThread(named: "logline-trimmer") { [self] in self.trimMappedPages() }
        } else {
            trimmerFinished.signal()
        }
        metrics.head.record(Int64(lastPosition))
        metrics.mapSize.record(Int64(environment.mapSize))
        Self.startThread(named: "logline-writer") { [self] in self.runWriter() }
        logger.info(
            "event log open",
            metadata: [
                "data": "\(absolute)", "last_position": "\(lastPosition)", "map_size": "\(environment.mapSize)",
            ])
    }

    /// Starts a thread that shows as `name` in `top`, `perf` and /proc (at most 15 bytes): Foundation on Linux
    /// gives the system the name only when the thread itself sets it.
    private static func startThread(named name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread {
            Thread.current.name = name
            body()
        }
        thread.name = name
        thread.start()
    }

    /// Checks the store's format, and brings a store of format 1 (which indexed every event in its commit, and
    /// has no `indexed_through`) or 2 to format 3; a new store starts at format 3.
    ///
    /// Format 2 may leave events after `indexed_through` out of `stream_events`, which a server that reads format 1
    /// would take for missing events; format 3 may have a write-ahead journal, which a server of format 2 would not
    /// replay: the format number keeps such servers out.
    private func checkFormat(head: LogPosition) throws {
        let stored = try environment.read { [meta] transaction in
            try transaction.get(meta, key: StorageLayout.formatKey).map { Array($0) }
        }
        switch stored {
        case [StorageLayout.storeFormat]?:
            return
        case nil, [1]?:
            try environment.write { [meta] transaction in
                try transaction.put(meta, key: StorageLayout.indexedThroughKey, value: StorageLayout.bigEndian(head))
                try transaction.put(meta, key: StorageLayout.formatKey, value: [StorageLayout.storeFormat])
            }
        case [2]?:
            try environment.write { [meta] transaction in
                try transaction.put(meta, key: StorageLayout.formatKey, value: [StorageLayout.storeFormat])
            }
        case let other?:
            throw OpenError.corrupt(
                "the store in \(directory) has format \(other), this server reads formats 1 to 3")
        }
    }

    /// Writes the `stream_events` entries of the events after `indexed_through`: those of the last commits before
    /// the process stopped without writing its ``PendingStreamIndex`` (about ``Configuration/streamIndexBatch``
    /// events and those that came during a bulk write under way, some of which that write may have written
    /// already), in one transaction, before the writer starts.
    private func indexUnindexedEvents(head: LogPosition) throws {
        let indexedThrough = try environment.read { transaction in try self.indexedThrough(in: transaction) }
        guard indexedThrough < head else { return }
        try environment.write { transaction in
            var entries: [PendingStreamIndex.Entry] = []
            try transaction.withCursor(events) { cursor in
                var entry = try cursor.seek(atOrAfter: StorageLayout.bigEndian(indexedThrough + 1))
                while let current = entry {
                    let position = StorageLayout.readBigEndian(current.key)
                    guard let view = StoredEventView(position: position, record: current.value) else {
                        throw OpenError.corrupt("event record at position \(position) is damaged")
                    }
                    entries.append(
                        PendingStreamIndex.Entry(
                            streamKey: StreamKey(view.streamKey), version: view.version, position: position))
                    entry = try cursor.next()
                }
            }
            try writeStreamIndex(
                PendingStreamIndex(indexedThrough: indexedThrough).sortedEntries(adding: entries),
                through: head, in: transaction)
        }
        logger.notice(
            "indexed the events of the last commits before the previous stop",
            metadata: ["from_position": "\(indexedThrough + 1)", "to_position": "\(head)"])
    }

    /// The position up to which `stream_events` holds every event, in a transaction's snapshot.
    func indexedThrough(in transaction: LMDBTransaction) throws -> LogPosition {
        guard let stored = try transaction.get(meta, key: StorageLayout.indexedThroughKey), stored.count == 8 else {
            throw OpenError.corrupt("the store has no valid indexed_through in meta")
        }
        return StorageLayout.readBigEndian(stored)
    }

    /// Writes stream-index entries (sorted) and the position they complete the index to (``PendingStreamIndex``).
    private func writeStreamIndex(
        _ entries: some Collection<PendingStreamIndex.Entry>, through position: LogPosition,
        in transaction: LMDBTransaction
    ) throws {
        try writeStreamIndexEntries(entries, in: transaction)
        try transaction.put(meta, key: StorageLayout.indexedThroughKey, value: StorageLayout.bigEndian(position))
    }

    /// Writes stream-index entries, sorted, without moving `indexed_through`: a chunk of a bulk write.
    private func writeStreamIndexEntries(
        _ entries: some Collection<PendingStreamIndex.Entry>, in transaction: LMDBTransaction
    ) throws {
        for entry in entries {
            try transaction.put(
                streamEvents, key: StorageLayout.streamEventKey(entry.streamKey.bytes, version: entry.version),
                value: StorageLayout.bigEndian(entry.position))
        }
    }

    /// Stops taking appends, finishes those already queued, and stops the writer thread.
    ///
    /// Then closes the store and releases the data directory, so another log may open it. Appends made after
    /// this fail with ``AppendError/closed``, reads throw. Safe to call more than once.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        queue.withLock { $0.closing = true }
        wakeup.signal()
        writerFinished.wait()
        writePendingIndex()
        trimmerStop.signal()
        trimmerFinished.wait()
        environment.close()
        directoryLock.release()
        logger.info("event log closed", metadata: ["last_position": "\(headPosition)"])
    }

    /// Every 2 ms until close, ``releaseMappedPagesOverLimit()``.
    private func trimMappedPages() {
        while trimmerStop.wait(timeout: .now() + .milliseconds(2)) == .timedOut {
            releaseMappedPagesOverLimit()
        }
        trimmerFinished.signal()
    }

    /// When the shared part of the process's resident set has grown by more than the limit since the log opened
    /// (the store's mapped pages), and the resident set is over its target, hands those pages back to the page
    /// cache (``Configuration/residentMapLimit``, ``Configuration/residentSetTarget``).
    ///
    /// The writer also calls this after its commits, at most every millisecond: a large commit (a rebuild's batch)
    /// maps in tens of megabytes of pages at once, faster than the thread, which competes for the same cores, looks.
    private func releaseMappedPagesOverLimit() {
        guard let (baseline, target, limit) = mapResidency, let resident = LMDBEnvironment.residentBytes(),
            Self.mustReleaseMappedPages(
                mapped: resident.shared - baseline, resident: resident.total, target: target, limit: limit)
        else { return }
        if environment.releaseMappedPages() { metrics.mapReleases.increment() }
    }

    /// Whether `mapped` bytes of the store's pages must leave a resident set of `resident` bytes: when they are
    /// over `limit`, and over what the rest of the resident set leaves of `target`.
    static func mustReleaseMappedPages(mapped: Int, resident: Int, target: Int, limit: Int) -> Bool {
        let room = max(limit, target - (resident - mapped))
        return mapped > room
    }

    /// Writes the pending stream-index entries at close, so that a stopped store is indexed through its head.
    /// When this fails, the next open indexes them from `events`.
    private func writePendingIndex() {
        let (entries, through) = pendingIndex.withLock { ($0.sortedEntries(adding: []), headPosition) }
        guard !entries.isEmpty else { return }
        do {
            try environment.write { transaction in try writeStreamIndex(entries, through: through, in: transaction) }
            pendingIndex.withLock { $0.removeAll(indexedThrough: through) }
        } catch {
            logger.warning(
                "could not write the pending stream index at close; the next open writes it",
                metadata: ["error": "\(error)"])
        }
    }

    // MARK: - EventLog

    /// The position of the last durable event.
    public var headPosition: LogPosition { head.load(ordering: .acquiring) }

    /// Queues an append for the writer; `completion` runs on the writer thread after the commit.
    /// - Parameters:
    ///   - request: The events and their expectation.
    ///   - completion: Receives the outcome.
    public func append(
        _ request: AppendRequest, completion: @escaping @Sendable (Result<AppendResult, AppendError>) -> Void
    ) {
        enqueue(.append(request, completion))
    }

    /// Queues a commit unit for the writer; `completion` runs on the writer thread after the commit.
    /// - Parameters:
    ///   - unit: The appends, state writes and conditions.
    ///   - completion: Receives the outcome.
    public func commit(
        _ unit: CommitUnit, completion: @escaping @Sendable (Result<[AppendResult], CommitError>) -> Void
    ) {
        enqueue(.unit(unit, completion))
    }

    private func enqueue(_ work: PendingWork) {
        let accepted = queue.withLock { state -> (accepted: Bool, wasEmpty: Bool) in
            guard !state.closing else { return (false, false) }
            let wasEmpty = state.pending.isEmpty
            state.pending.append(work)
            return (true, wasEmpty)
        }
        guard accepted.accepted else {
            work.close()
            return
        }
        if accepted.wasEmpty { wakeup.signal() }
    }

    /// Calls `listener` after each commit with the new head, on the writer thread.
    /// - Parameter listener: Must return quickly.
    public func onCommit(_ listener: @escaping @Sendable (LogPosition) -> Void) {
        listeners.withLock { $0.append(listener) }
    }

    /// The most bytes of event data and metadata one `readStream` or `readAll` returns, beyond the event that
    /// crosses it: a read of large events stops there with fewer than `limit` events, so that one request cannot
    /// make the server hold gigabytes (10,000 events of 1 MiB). The caller pages on from the last event.
    public static let maximumReadBytes = 16 << 20

    /// Reads a stream's events, oldest first; fewer than `limit` when they hold more than
    /// ``maximumReadBytes``.
    /// - Parameters:
    ///   - stream: The stream.
    ///   - version: The first version to return.
    ///   - limit: The most events to return.
    /// - Returns: The events; empty for an unknown stream.
    /// - Throws: ``LoglineLMDB/LMDBError`` or ``OpenError/corrupt(_:)``.
    public func readStream(_ stream: StreamName, from version: StreamVersion, limit: Int) throws -> [RecordedEvent] {
        let prefix = StorageLayout.streamKey(stream)
        let first = max(version, 1)
        guard limit > 0 else { return [] }
        return try withStreamIndexSnapshot(of: StreamKey(prefix), from: first) { transaction, pending in
            var result: [RecordedEvent] = []
            var bytes = 0
            func add(_ position: LogPosition) throws -> Bool {
                let recorded = try event(at: position, in: transaction).recordedEvent
                result.append(recorded)
                bytes += recorded.data.count + recorded.metadata.count
                return result.count < limit && bytes < Self.maximumReadBytes
            }
            // The last version found in `stream_events`.
            var indexedVersion: StreamVersion = 0
            let more = try transaction.withCursor(streamEvents) { cursor in
                var entry = try cursor.seek(atOrAfter: StorageLayout.streamEventKey(prefix, version: first))
                while let current = entry, current.key.count == prefix.count + 8,
                    current.key.starts(with: prefix)
                {
                    indexedVersion = StorageLayout.readBigEndian(current.key, at: prefix.count)
                    guard try add(StorageLayout.readBigEndian(current.value)) else { return false }
                    entry = try cursor.next()
                }
                return true
            }
            // The pending entries follow every version in the snapshot's `stream_events`; a bulk write under way
            // may have put the first of them there too.
            if more, let pending {
                let skipped =
                    indexedVersion >= pending.firstVersion ? Int(indexedVersion - pending.firstVersion) + 1 : 0
                for position in pending.positions.dropFirst(skipped) { guard try add(position) else { break } }
            }
            return result
        }
    }

    /// Runs `body` in a read transaction with the stream's pending index entries that its snapshot does not have
    /// in `stream_events` (from `version` on): together they index every event of the stream in the snapshot.
    ///
    /// A bulk write of the index may commit between the start of the transaction and the look at the pending
    /// index, and take entries out of it that the snapshot's `stream_events` lacks: then the read starts again in
    /// a newer snapshot, which has them.
    private func withStreamIndexSnapshot<T>(
        of streamKey: StreamKey, from version: StreamVersion,
        _ body: (LMDBTransaction, _ pending: (firstVersion: StreamVersion, positions: [LogPosition])?) throws -> T
    ) throws -> T {
        while true {
            let outcome: T? = try environment.read { transaction -> T? in
                let head = try transaction.withCursor(events) { cursor in
                    try cursor.last().map { StorageLayout.readBigEndian($0.key) } ?? 0
                }
                let indexed = try indexedThrough(in: transaction)
                let (pendingFrom, pending) = pendingIndex.withLock { index in
                    (
                        index.indexedThrough,
                        index.entries(of: streamKey, from: version, after: indexed, through: head).map {
                            (firstVersion: $0.firstVersion, positions: Array($0.positions))
                        }
                    )
                }
                guard pendingFrom <= indexed else { return nil }
                return try body(transaction, pending)
            }
            if let outcome { return outcome }
        }
    }

    /// Reads the log in position order; fewer than `limit` events when they hold more than
    /// ``maximumReadBytes``.
    /// - Parameters:
    ///   - position: The first position to return.
    ///   - limit: The most events to return.
    ///   - eventTypes: Only these types; all when empty.
    /// - Returns: The events.
    /// - Throws: ``LoglineLMDB/LMDBError`` or ``OpenError/corrupt(_:)``.
    public func readAll(from position: LogPosition, limit: Int, eventTypes: Set<String>) throws -> [RecordedEvent] {
        let types = eventTypes.map { Array($0.utf8) }
        return try environment.read { transaction in
            var result: [RecordedEvent] = []
            var bytes = 0
            guard limit > 0 else { return result }
            try transaction.withCursor(events) { cursor in
                var entry = try cursor.seek(atOrAfter: StorageLayout.bigEndian(max(position, 1)))
                while let current = entry {
                    let at = StorageLayout.readBigEndian(current.key)
                    guard let view = StoredEventView(position: at, record: current.value) else {
                        throw OpenError.corrupt("event record at position \(at) is damaged")
                    }
                    if types.isEmpty || types.contains(where: { view.eventType.elementsEqual($0) }) {
                        let recorded = view.recordedEvent
                        result.append(recorded)
                        bytes += recorded.data.count + recorded.metadata.count
                        if result.count >= limit || bytes >= Self.maximumReadBytes { break }
                    }
                    entry = try cursor.next()
                }
            }
            return result
        }
    }

    /// Reads events after a position, examining at most 16 times `limit` positions.
    /// - Parameters:
    ///   - position: Return events after this one.
    ///   - limit: The most events to return.
    ///   - eventTypes: Only these types; all when empty.
    /// - Returns: The events and the last position examined.
    /// - Throws: ``LoglineLMDB/LMDBError`` or ``OpenError/corrupt(_:)``.
    public func readBatch(after position: LogPosition, limit: Int, eventTypes: Set<String>) throws -> EventBatch {
        // Each wanted type with its bytes: a matching event takes the caller's string rather than a new one.
        let types = eventTypes.map { (name: $0, bytes: Array($0.utf8)) }
        let maximumScan = max(limit, 1) * 16
        return try environment.read { transaction in
            var events: [RecordedEvent] = []
            var scanned = position
            var examined = 0
            try transaction.withCursor(self.events) { cursor in
                var entry = try cursor.seek(atOrAfter: StorageLayout.bigEndian(position + 1))
                while let current = entry, events.count < limit, examined < maximumScan {
                    let at = StorageLayout.readBigEndian(current.key)
                    guard let view = StoredEventView(position: at, record: current.value) else {
                        throw OpenError.corrupt("event record at position \(at) is damaged")
                    }
                    if types.isEmpty {
                        events.append(view.recordedEvent)
                    } else if let type = types.first(where: { view.eventType.elementsEqual($0.bytes) }) {
                        events.append(view.recordedEvent(eventType: type.name))
                    }
                    scanned = at
                    examined += 1
                    entry = try cursor.next()
                }
            }
            return EventBatch(events: events, scannedThrough: scanned)
        }
    }

    /// Reads one value of a state table.
    /// - Parameters:
    ///   - table: The table.
    ///   - key: The key.
    /// - Returns: The value or `nil`.
    /// - Throws: ``LoglineLMDB/LMDBError``.
    public func readState(table: String, key: [UInt8]) throws -> [UInt8]? {
        let stateKey = StorageLayout.stateKey(table, key)
        return try environment.read { transaction in try transaction.get(state, key: stateKey).map { Array($0) } }
    }

    /// Reads several values of a state table in one snapshot.
    /// - Parameters:
    ///   - table: The table.
    ///   - keys: The keys.
    /// - Returns: The values, `nil` where absent.
    /// - Throws: ``LoglineLMDB/LMDBError``.
    public func readState(table: String, keys: [[UInt8]]) throws -> [[UInt8]?] {
        try environment.read { transaction in
            try keys.map { key in
                try transaction.get(state, key: StorageLayout.stateKey(table, key)).map { Array($0) }
            }
        }
    }

    /// Walks a state table in key order.
    /// - Parameters:
    ///   - table: The table.
    ///   - prefix: Only keys starting with these bytes.
    ///   - after: Start after this key, or at the start of the prefix.
    ///   - limit: The most entries.
    /// - Returns: The entries.
    /// - Throws: ``LoglineLMDB/LMDBError``.
    public func scanState(
        table: String, prefix: [UInt8], after: [UInt8]?, limit: Int
    ) throws -> [(key: [UInt8], value: [UInt8])] {
        let tablePrefix = StorageLayout.stateKey(table, [])
        let fullPrefix = tablePrefix + prefix
        return try environment.read { transaction in
            var result: [(key: [UInt8], value: [UInt8])] = []
            guard limit > 0 else { return result }
            try transaction.withCursor(state) { cursor in
                var entry: LMDBCursor.Entry?
                if let after {
                    let start = tablePrefix + after
                    entry = try cursor.seek(atOrAfter: start)
                    if let found = entry, found.key.elementsEqual(start) { entry = try cursor.next() }
                } else {
                    entry = try cursor.seek(atOrAfter: fullPrefix)
                }
                while let current = entry, current.key.starts(with: fullPrefix) {
                    result.append((Array(current.key.dropFirst(tablePrefix.count)), Array(current.value)))
                    if result.count >= limit { break }
                    entry = try cursor.next()
                }
            }
            return result
        }
    }

    /// Writes a compacted copy of the environment with `mdb_env_copy2`: it reads through one read transaction,
    /// so the copy is the log as of one commit, however many appends go on meanwhile.
    /// - Parameter destination: A directory that must not exist yet, or be empty; it is created.
    /// - Returns: The last position in the copy.
    /// - Throws: ``OpenError/io(_:)`` when the destination is not usable, or ``LoglineLMDB/LMDBError``.
    public func backup(to destination: String) throws -> LogPosition {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        if manager.fileExists(atPath: destination, isDirectory: &isDirectory) {
            guard isDirectory.boolValue, (try? manager.contentsOfDirectory(atPath: destination))?.isEmpty == true else {
                throw OpenError.io("backup destination \(destination) exists and is not an empty directory")
            }
        } else {
            do {
                try manager.createDirectory(atPath: destination, withIntermediateDirectories: true)
            } catch {
                throw OpenError.io("cannot create backup destination \(destination): \(error.localizedDescription)")
            }
        }
        let last = try environment.read { transaction in
            try transaction.withCursor(events) { cursor in
                try cursor.last().map { StorageLayout.readBigEndian($0.key) } ?? 0
            }
        }
        try environment.copy(to: destination, compact: true)
        logger.info("backup written", metadata: ["destination": "\(destination)", "at_least_position": "\(last)"])
        return last
    }

    /// A stream's current version (0 when it has no events).
    /// - Parameter stream: The stream.
    /// - Returns: Its version.
    /// - Throws: ``LoglineLMDB/LMDBError``.
    public func streamVersion(_ stream: StreamName) throws -> StreamVersion {
        let key = StorageLayout.streamKey(stream)
        return try withStreamIndexSnapshot(of: StreamKey(key), from: 0) { transaction, pending in
            if let pending { return pending.firstVersion + StreamVersion(pending.positions.count) - 1 }
            return try currentVersion(of: key, in: transaction)
        }
    }

    /// Figures about the log.
    /// - Returns: The figures.
    /// - Throws: ``LoglineLMDB/LMDBError``.
    public func info() throws -> LogInfo {
        let (last, streamCount) = try environment.read { transaction in
            let last = try transaction.withCursor(events) { cursor in
                try cursor.last().map { StorageLayout.readBigEndian($0.key) } ?? 0
            }
            let streamCount = try transaction.get(meta, key: StorageLayout.streamCountKey).map {
                StorageLayout.readBigEndian($0)
            }
            return (last, streamCount ?? 0)
        }
        // The data file and the write-ahead journal's files: what the store takes on disk.
        let size = LMDBEnvironment.storeFileNames.reduce(UInt64(0)) {
            $0 + ((try? FileManager.default.attributesOfItem(atPath: directory + "/" + $1)[.size] as? UInt64) ?? 0)
        }
        return LogInfo(
            lastPosition: last, eventCount: last, streamCount: streamCount, location: directory,
            storageBytes: size)
    }

    /// The last version of a stream: the greatest key with the stream's prefix in `stream_events`.
    func currentVersion(of streamKey: [UInt8], in transaction: LMDBTransaction) throws -> StreamVersion {
        try transaction.withCursor(streamEvents) { cursor in
            let beyond = StorageLayout.streamEventKey(streamKey, version: .max)
            var entry = try cursor.seek(atOrAfter: beyond)
            if let found = entry, found.key.elementsEqual(beyond) { return .max }
            entry = entry == nil ? try cursor.last() : try cursor.previous()
            guard let candidate = entry, candidate.key.count == streamKey.count + 8,
                candidate.key.starts(with: streamKey)
            else { return 0 }
            return StorageLayout.readBigEndian(candidate.key, at: streamKey.count)
        }
    }

    private func event(at position: LogPosition, in transaction: LMDBTransaction) throws -> StoredEventView {
        guard let record = try transaction.get(events, key: StorageLayout.bigEndian(position)),
            let view = StoredEventView(position: position, record: record)
        else {
            throw OpenError.corrupt("event at position \(position) is missing or damaged")
        }
        return view
    }

    // MARK: - The writer

    private func runWriter() {
        while true {
            wakeup.wait()
            while true {
                let (batch, batchBytes, closing) = queue.withLock { state -> ([PendingWork], Int, Bool) in
                    var count = 0
                    var bytes = 0
                    var taken = 0
                    for work in state.pending.prefix(configuration.maximumBatchRequests) {
                        bytes += work.byteEstimate
                        guard count == 0 || bytes <= configuration.maximumBatchBytes else { break }
                        count += 1
                        taken = bytes
                    }
                    let batch = Array(state.pending.prefix(count))
                    state.pending.removeFirst(count)
                    return (batch, taken, state.closing)
                }
                if batch.isEmpty {
                    if closing {
                        writerFinished.signal()
                        return
                    }
                    break
                }
                commit(batch)
                // Freed elsewhere: a batch of pipelined appends is thousands of requests, each with its own data,
                // and the writer, the limit of pipelined appends, spent about a tenth of its time freeing them.
                // Only batches of a megabyte or less, and at most two of them waiting, so that memory stays bounded
                // when the other thread gets no core: a rebuild's batches, megabytes each, are freed here.
                if batchBytes <= Self.reclaimedBatchBytes, reclaiming.load(ordering: .relaxed) < 2 {
                    reclaiming.add(1, ordering: .relaxed)
                    let finished = FinishedBatch(consume batch)  // the writer keeps no reference to free
                    Self.reclaimer.async { [self] in
                        finished.work = []
                        reclaiming.subtract(1, ordering: .relaxed)
                    }
                }
            }
        }
    }

    /// Where the writer's finished batches are freed.
    private static let reclaimer = DispatchQueue(label: "logline-reclaim")
    /// The largest batch (``PendingWork/byteEstimate``) freed by ``reclaimer`` rather than the writer.
    private static let reclaimedBatchBytes = 1 << 20

    /// A finished batch on its way to ``reclaimer``, which drops it.
    private final class FinishedBatch: @unchecked Sendable {
        /// Only the reclaimer touches it once the writer has handed it over.
        var work: [PendingWork]

        init(_ work: [PendingWork]) {
            self.work = work
        }
    }

    private struct BatchOutcome {
        var results: [WorkOutcome]
        var head: LogPosition
        var recordedAt: Int64
        /// The batch's stream-index entries, for the pending index.
        var indexEntries: [PendingStreamIndex.Entry]
        /// The chunk of a bulk write of the pending index that the commit wrote to `stream_events`.
        var indexChunk: PendingStreamIndex.Chunk?
    }

    private func commit(_ batch: [PendingWork]) {
        let now = max(Timestamp.now().millisecondsSinceEpoch, lastRecordedAt.load(ordering: .relaxed))
        let startHead = head.load(ordering: .relaxed)
        let mapSizeBefore = environment.mapSize
        let started = ContinuousClock.now
        var staged = started
        let outcome: BatchOutcome
        do {
            outcome = try environment.write { transaction in
                var stager = BatchStager(log: self, transaction: transaction, head: startHead, recordedAt: now)
                let results = try batch.map { work -> WorkOutcome in
                    switch work {
                    case .append(let request, _): return .append(try stager.stage(request))
                    case .unit(let unit, _): return .unit(try stager.stage(unit))
                    }
                }
                let indexChunk = try stager.finish()
                staged = ContinuousClock.now
                return BatchOutcome(
                    results: results, head: stager.head, recordedAt: now, indexEntries: stager.indexEntries,
                    indexChunk: indexChunk)
            }
        } catch {
            // Nothing of the batch is in the store, and nothing of it has touched `head`, `lastRecordedAt` or the
            // listeners: the stager's versions and ids lived only in this transaction. The next batch starts from
            // the last commit, so a failure leaves no gap and no phantom version behind.
            let diskFull = (error as? LMDBError)?.isDiskFull ?? false
            logger.error(
                diskFull
                    ? "group commit failed: the disk is full; nothing of it was written"
                    : "group commit failed, nothing of it was written",
                metadata: ["error": "\(error)", "requests": "\(batch.count)"])
            metrics.commitFailures.increment()
            var appends = 0
            for pending in batch {
                if case .append = pending { appends += 1 }
                pending.fail("\(error)", diskFull: diskFull)
            }
            if appends > 0 { metrics.failed.increment(by: appends) }
            noteMapGrowth(from: mapSizeBefore)
            return
        }
        let finished = ContinuousClock.now
        // Before any append of the batch is acknowledged, so that readers find every acknowledged event.
        let pendingIndexEntries = pendingIndex.withLock { index in
            index.add(outcome.indexEntries)
            if let chunk = outcome.indexChunk { index.chunkCommitted(chunk) }
            return index.count
        }
        metrics.pendingIndexEntries.record(pendingIndexEntries)
        head.store(outcome.head, ordering: .releasing)
        lastRecordedAt.store(outcome.recordedAt, ordering: .relaxed)
        // Recorded before anyone hears of the commit: a client that has its reply finds the metrics up to date.
        record(
            CommitTally(outcome.results), head: outcome.head, events: outcome.head - startHead,
            requests: batch.count, from: started, staged, finished)
        noteMapGrowth(from: mapSizeBefore)
        CompletionPass.run {
            for (pending, result) in zip(batch, outcome.results) {
                switch (pending, result) {
                case (.append(_, let completion), .append(let result)): completion(result)
                case (.unit(_, let completion), .unit(let result)): completion(result)
                default: preconditionFailure("outcomes follow the order of the batch")
                }
            }
        }
        if outcome.head != startHead {
            for listener in listeners.withLock({ $0 }) { listener(outcome.head) }
        }
        if mapResidency != nil {
            let now = Self.nanoseconds(ContinuousClock.now - Self.clockOrigin)
            if now - lastResidencyCheck.load(ordering: .relaxed) >= 1_000_000 {
                lastResidencyCheck.store(now, ordering: .relaxed)
                releaseMappedPagesOverLimit()
            }
        }
    }

    /// An instant to measure the writer's residency checks from.
    private static let clockOrigin = ContinuousClock.now

    /// What one group commit did, counted from its outcomes and recorded once.
    private struct CommitTally {
        var appended = 0
        var duplicates = 0
        var conflicts = 0
        var invalid = 0
        var unitsCommitted = 0
        var unitsRefused = 0

        init(_ results: [WorkOutcome]) {
            for result in results {
                switch result {
                case .append(let result): count(result)
                case .unit(let result): count(result)
                }
            }
        }

        mutating func count(_ result: Result<AppendResult, AppendError>) {
            switch result {
            case .success(let outcome):
                if outcome.alreadyAppended { duplicates += 1 } else { appended += 1 }
            case .failure(.wrongExpectedVersion), .failure(.eventIDReused), .failure(.partiallyAppended):
                conflicts += 1
            case .failure:
                invalid += 1
            }
        }

        mutating func count(_ result: Result<[AppendResult], CommitError>) {
            switch result {
            case .success: unitsCommitted += 1
            case .failure: unitsRefused += 1
            }
        }
    }

    /// Records a group commit's metrics: a handful of atomic additions and two histogram samples per commit.
    private func record(
        _ tally: CommitTally, head: LogPosition, events: UInt64, requests: Int, from started: ContinuousClock.Instant,
        _ staged: ContinuousClock.Instant, _ finished: ContinuousClock.Instant
    ) {
        if tally.appended > 0 { metrics.appended.increment(by: tally.appended) }
        if tally.duplicates > 0 { metrics.duplicates.increment(by: tally.duplicates) }
        if tally.conflicts > 0 { metrics.conflicts.increment(by: tally.conflicts) }
        if tally.invalid > 0 { metrics.invalid.increment(by: tally.invalid) }
        if tally.unitsCommitted > 0 { metrics.unitsCommitted.increment(by: tally.unitsCommitted) }
        if tally.unitsRefused > 0 { metrics.unitsRefused.increment(by: tally.unitsRefused) }
        if events > 0 {
            metrics.events.increment(by: events)
            metrics.head.record(Int64(truncatingIfNeeded: head))
        }
        metrics.requestsPerCommit.record(requests)
        metrics.eventsPerCommit.record(Int64(truncatingIfNeeded: events))
        metrics.commitDuration.recordNanoseconds(Self.nanoseconds(finished - started))
        metrics.syncDuration.recordNanoseconds(Self.nanoseconds(finished - staged))
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// Logs and records a growth of the LMDB map during the last commit.
    private func noteMapGrowth(from before: Int) {
        let after = environment.mapSize
        guard after != before else { return }
        metrics.mapSize.record(Int64(after))
        logger.notice("storage map grown", metadata: ["from_bytes": "\(before)", "to_bytes": "\(after)"])
    }

    /// Stages the requests of one batch into one write transaction.
    private struct BatchStager {
        let log: LMDBEventLog
        var transaction: LMDBTransaction
        var head: LogPosition
        let recordedAt: Timestamp
        var streamVersions: [StreamKey: StreamVersion] = [:]
        var stagedIDs: [EventID: (event: ProposedEvent, stream: StreamName, appended: AppendedEvent)] = [:]
        var newStreams: UInt64 = 0
        /// The stream-index entries of the events staged.
        var indexEntries: [PendingStreamIndex.Entry] = []

        init(log: LMDBEventLog, transaction: LMDBTransaction, head: LogPosition, recordedAt: Int64) {
            self.log = log
            self.transaction = transaction
            self.head = head
            self.recordedAt = Timestamp(millisecondsSinceEpoch: recordedAt)
        }

        /// Writes what the batch changed beyond its events: the count of streams, and the next chunk of a bulk
        /// write of the pending stream index (``PendingStreamIndex/nextChunk(threshold:size:)``).
        /// - Returns: The chunk it wrote, if any.
        func finish() throws -> PendingStreamIndex.Chunk? {
            if newStreams > 0 {
                let key = StorageLayout.streamCountKey
                let before = try transaction.get(log.meta, key: key).map { StorageLayout.readBigEndian($0) } ?? 0
                try transaction.put(log.meta, key: key, value: StorageLayout.bigEndian(before + newStreams))
            }
            let configuration = log.configuration
            guard
                let chunk = log.pendingIndex.withLock({
                    $0.nextChunk(threshold: configuration.streamIndexBatch, size: configuration.streamIndexChunk)
                })
            else { return nil }
            if chunk.completes {
                try log.writeStreamIndex(chunk.entries, through: chunk.through, in: transaction)
            } else {
                try log.writeStreamIndexEntries(chunk.entries, in: transaction)
            }
            return chunk
        }

        /// A failure inside a commit unit, thrown to abort its nested transaction.
        struct UnitFailure: Error {
            let error: CommitError
        }

        /// Stages a commit unit in a nested transaction: every part of it is written, or none.
        mutating func stage(_ unit: CommitUnit) throws -> Result<[AppendResult], CommitError> {
            let saved = self
            let parent = transaction
            do {
                let results = try parent.nested { child throws -> [AppendResult] in
                    transaction = child
                    for condition in unit.conditions {
                        let current = try child.get(
                            log.state, key: StorageLayout.stateKey(condition.table, condition.key)
                        ).map { Array($0) }
                        guard current == condition.expected else {
                            throw UnitFailure(error: .conditionFailed(table: condition.table, key: condition.key))
                        }
                    }
                    var results: [AppendResult] = []
                    for (index, request) in unit.appends.enumerated() {
                        switch try stage(request) {
                        case .success(let result): results.append(result)
                        case .failure(let error): throw UnitFailure(error: .append(index: index, error))
                        }
                    }
                    for write in unit.writes {
                        let key = StorageLayout.stateKey(write.table, write.key)
                        if let value = write.value {
                            try child.put(log.state, key: key, value: value)
                        } else {
                            try child.delete(log.state, key: key)
                        }
                    }
                    return results
                }
                transaction = parent
                return .success(results)
            } catch let failure as UnitFailure {
                self = saved
                return .failure(failure.error)
            } catch {
                self = saved
                throw error
            }
        }

        /// Validates and writes one request. Logical failures (expectations, ids) are returned and write
        /// nothing; storage failures are thrown and abort the whole batch.
        mutating func stage(_ request: AppendRequest) throws -> Result<AppendResult, AppendError> {
            guard !request.events.isEmpty else { return .failure(.emptyRequest) }

            // Idempotency: which of the given ids are already stored?
            var found: [AppendedEvent] = []
            var seen = Set<EventID>()
            for event in request.events {
                guard let id = event.eventID else { continue }
                guard seen.insert(id).inserted else { return .failure(.duplicateEventIDInRequest(id)) }
                if let staged = stagedIDs[id] {
                    guard staged.stream == request.stream, staged.event.eventType == event.eventType,
                        staged.event.data == event.data
                    else { return .failure(.eventIDReused(id, position: staged.appended.position)) }
                    found.append(staged.appended)
                } else if let stored = try transaction.get(log.eventIDs, key: id.bytes) {
                    let position = StorageLayout.readBigEndian(stored)
                    let view = try log.event(at: position, in: transaction)
                    guard view.matches(stream: request.stream, eventType: event.eventType, data: event.data) else {
                        return .failure(.eventIDReused(id, position: position))
                    }
                    found.append(AppendedEvent(eventID: id, position: position, version: view.version))
                }
            }
            if !found.isEmpty {
                guard found.count == request.events.count else {
                    return .failure(.partiallyAppended(found[0].eventID, position: found[0].position))
                }
                return .success(AppendResult(events: found, alreadyAppended: true))
            }

            // Optimistic concurrency.
            let streamKey = StreamKey(StorageLayout.streamKey(request.stream))
            let current: StreamVersion
            if let cached = streamVersions[streamKey] {
                current = cached
            } else if let known = log.pendingIndex.withLock({ $0.knownVersion(of: streamKey) }) {
                current = known
            } else {
                current = try log.currentVersion(of: streamKey.bytes, in: transaction)
            }
            guard request.expectedVersion.isSatisfied(by: current) else {
                return .failure(
                    .wrongExpectedVersion(stream: request.stream, expected: request.expectedVersion, actual: current))
            }

            // Write.
            if current == 0 { newStreams += 1 }
            var appended: [AppendedEvent] = []
            appended.reserveCapacity(request.events.count)
            var version = current
            for event in request.events {
                head += 1
                version += 1
                let id =
                    event.eventID
                    ?? log.random.withLock { EventID.timeOrdered(at: recordedAt.millisecondsSinceEpoch, using: &$0) }
                let record = StorageLayout.encodeRecord(
                    eventID: id, eventType: event.eventType, stream: request.stream, version: version,
                    recordedAt: recordedAt, data: event.data, metadata: event.metadata)
                let positionBytes = StorageLayout.bigEndian(head)
                try transaction.put(log.events, key: positionBytes, value: record, append: true)
                indexEntries.append(PendingStreamIndex.Entry(streamKey: streamKey, version: version, position: head))
                try transaction.put(log.eventIDs, key: id.bytes, value: positionBytes)
                let result = AppendedEvent(eventID: id, position: head, version: version)
                if event.eventID != nil { stagedIDs[id] = (event, request.stream, result) }
                appended.append(result)
            }
            streamVersions[streamKey] = version
            return .success(AppendResult(events: appended, alreadyAppended: false))
        }
    }
}
