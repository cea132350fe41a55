import CLMDB

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The write-ahead journal of an environment: two record files used in turn, a checkpoint file, and the thread that
/// syncs the data file behind the writers.
///
/// Why it exists: an LMDB commit with fsync writes its dirty pages where they lie in the file, syncs them, then
/// writes and syncs the meta page: two syncs and a scatter of page writes, about half a millisecond on this
/// project's machines. A journaled commit writes one contiguous record, syncs it once, and lets LMDB commit without
/// syncing (`MDB_NOSYNC`). The data file is synced by a checkpoint every few megabytes of journal or fraction of a
/// second, off the writers' path.
///
/// How a crash is survived. After a crash of the machine, the data file may hold any mix of the pages written since
/// the last checkpoint, including a meta page that names pages which never reached the disk. Two rules make the
/// last checkpoint's state intact all the same:
/// - Between checkpoints a read transaction stays open on the checkpoint's snapshot, so LMDB reuses none of that
///   snapshot's pages: everything written since went to other pages.
/// - The checkpoint keeps a copy of its meta page. Opening a journaled store first writes that copy back over both
///   meta pages, so LMDB opens the checkpoint's snapshot, and then replays the journal's records after it, in order.
///
/// Records are written and synced before the transaction commits, so a reader never sees a change that a crash could
/// take back, and every acknowledged write is in the journal or in the synced data file.
///
/// All state is guarded by `lock`; the environment holds it for the whole of a journaled write transaction.
final class WriteAheadJournal: @unchecked Sendable {
    /// When checkpoints start.
    struct Policy: Sendable {
        var checkpointBytes: Int
        var checkpointInterval: Duration
        /// Told how long each checkpoint took.
        var observer: (@Sendable (Duration) -> Void)?
    }

    /// A checkpoint handed to the checkpoint thread.
    struct Job {
        var checkpoint: JournalCheckpoint
        /// The read transaction that keeps the checkpoint's pages, to keep once it is durable.
        var pin: OpaquePointer
    }

    static let checkpointFileName = "journal.checkpoint"
    static func recordFileName(_ index: Int) -> String { "journal-\(index).wal" }
    /// Every file of the journal.
    static let fileNames = [recordFileName(0), recordFileName(1), checkpointFileName]

    let policy: Policy
    let directory: String
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    // Guarded by `mutex`.
    let files: [JournalFile]
    let checkpointFile: JournalFile
    var activeFile: Int
    var offset = 0
    var nextSequence: UInt64
    /// The last durable checkpoint.
    var checkpoint: JournalCheckpoint
    var job: Job?
    var checkpointInFlight = false
    var lastCheckpointStarted = ContinuousClock.now
    /// The read transaction on the last durable checkpoint's snapshot.
    var pinned: OpaquePointer?
    /// A failure that leaves the journal unable to promise durability: writes are refused from then on.
    var failure: LMDBError?
    var stopped = false
    var thread: pthread_t?
    /// Whether the checkpoint thread is not running (not started yet, or stopped).
    var threadExited = true

    init(directory: String, checkpoint: JournalCheckpoint, nextSequence: UInt64, policy: Policy) throws {
        self.directory = directory
        self.policy = policy
        self.checkpoint = checkpoint
        self.activeFile = checkpoint.activeFile
        self.nextSequence = nextSequence
        var opened: [JournalFile] = []
        do {
            for index in 0..<2 { opened.append(try JournalFile.open(directory + "/" + Self.recordFileName(index))) }
            self.checkpointFile = try JournalFile.open(directory + "/" + Self.checkpointFileName)
        } catch {
            for file in opened { file.close() }
            throw error
        }
        self.files = opened
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        pthread_cond_init(condition, nil)
    }

    deinit {
        for file in files { file.close() }
        checkpointFile.close()
        pthread_cond_destroy(condition)
        condition.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    /// Waits for a change (the lock is held, and held again on return).
    func wait() { pthread_cond_wait(condition, mutex) }
    func broadcast() { pthread_cond_broadcast(condition) }

    /// Writes a sealed record at the end of the active file and syncs it.
    ///
    /// A write that fails is retracted (nothing of it can be replayed); a sync that fails leaves the record's fate
    /// unknown, so the journal refuses writes from then on.
    func append(_ record: [UInt8]) throws {
        do {
            try files[activeFile].write(record, at: offset)
        } catch {
            retract()
            throw error
        }
        do {
            try files[activeFile].sync()
        } catch {
            failure = (error as? LMDBError) ?? LMDBError(code: EIO, operation: "journal: \(error)")
            throw error
        }
    }

    /// Makes the record just written at `offset` unreadable, after its transaction failed to commit, so that a
    /// restart does not replay it. When even that fails, the journal refuses writes from then on.
    func retract() {
        do {
            try files[activeFile].write([UInt8](repeating: 0, count: JournalRecord.headerSize), at: offset)
            try files[activeFile].sync()
        } catch {
            failure = (error as? LMDBError) ?? LMDBError(code: EIO, operation: "journal: \(error)")
        }
    }

    /// Whether a checkpoint is due after a commit.
    var checkpointDue: Bool {
        guard !checkpointInFlight, failure == nil, offset > 0 else { return false }
        return offset >= policy.checkpointBytes
            || ContinuousClock.now - lastCheckpointStarted >= policy.checkpointInterval
    }

    /// The checkpoint of `transactionID`, just committed, whose meta page is `meta`: every record so far is in it,
    /// and the records after it go to the head of the other file.
    func nextCheckpoint(transactionID: UInt64, meta: [UInt8]) -> JournalCheckpoint {
        JournalCheckpoint(
            counter: checkpoint.counter + 1, sequence: nextSequence - 1, transactionID: transactionID,
            activeFile: 1 - activeFile, meta: meta)
    }

    /// Sends the records after `next` to the head of the file it names (a checkpoint is starting).
    func turn(to next: JournalCheckpoint) {
        activeFile = next.activeFile
        offset = 0
        lastCheckpointStarted = .now
    }

    /// Cuts record file `index` back to ``shrunkFileBytes`` when it is over four times that; called once a stored
    /// checkpoint holds every record in it, while the journal writes to the other file and cannot turn to this one.
    ///
    /// Records overwrite a file in place, since overwriting its blocks syncs faster than extending it, so a file
    /// keeps the size of its longest turn: one large transaction would otherwise leave it that large for good. Not
    /// synced: if a crash undoes it, the stale records past the new ones are ignored as before.
    func shrinkRecordFile(_ index: Int) {
        let file = files[index]
        var status = stat()
        if fstat(file.descriptor, &status) == 0, Int(status.st_size) > 4 * shrunkFileBytes {
            _ = ftruncate(file.descriptor, off_t(shrunkFileBytes))
        }
    }

    /// The size a record file is cut back to when it has grown past four times this: two checkpoint thresholds, what
    /// a busy turn writes.
    var shrunkFileBytes: Int { max(2 * policy.checkpointBytes, 1 << 20) }

    /// Makes `durable`, stored and synced, the checkpoint, with `pin` keeping its snapshot, and lets go of the
    /// previous one's.
    func adopt(_ durable: JournalCheckpoint, pin: OpaquePointer) {
        if let old = pinned { mdb_txn_abort(old) }
        pinned = pin
        checkpoint = durable
    }

    /// Writes `checkpoint` over its slot and syncs it.
    func store(_ checkpoint: JournalCheckpoint) throws {
        try checkpointFile.write(checkpoint.encoded(), at: Int(checkpoint.counter % 2) * JournalCheckpoint.slotSize)
        try checkpointFile.sync()
    }

    /// Creates the checkpoint file of a store that has none, whole or not at all: written aside, synced, renamed.
    static func createCheckpointFile(in directory: String, _ checkpoint: JournalCheckpoint) throws {
        let path = directory + "/" + checkpointFileName
        let temporary = path + ".new"
        let file = try JournalFile.open(temporary)
        defer { file.close() }
        _ = ftruncate(file.descriptor, 0)
        var contents = [UInt8](repeating: 0, count: 2 * JournalCheckpoint.slotSize)
        let slot = Int(checkpoint.counter % 2) * JournalCheckpoint.slotSize
        contents.replaceSubrange(slot..<slot + JournalCheckpoint.slotSize, with: checkpoint.encoded())
        try file.write(contents, at: 0)
        try file.sync()
        guard rename(temporary, path) == 0 else { throw LMDBError(code: errno, operation: "rename \(temporary)") }
        try JournalFile.syncDirectory(directory)
    }

    /// Starts the thread that runs the checkpoints handed to it; `sync` syncs the data file.
    func startCheckpointThread(sync: @escaping @Sendable () -> Int32) {
        let body = ThreadBody { [self] in self.runCheckpoints(sync: sync) }
        var thread = pthread_t()
        let context = Unmanaged.passRetained(body).toOpaque()
        threadExited = false
        let code = pthread_create(
            &thread, nil,
            { context in
                let body = Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue()
                #if os(Linux)
                    // Its name in top, perf and /proc (pthread_setname_np needs _GNU_SOURCE, which Swift lacks).
                    let comm = Glibc.open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
                    if comm >= 0 {
                        _ = "logline-checkpt".withCString { Glibc.write(comm, $0, strlen($0)) }
                        _ = Glibc.close(comm)
                    }
                #endif
                body.run()
                return nil
            }, context)
        precondition(code == 0, "cannot start the journal's checkpoint thread: \(code)")
        self.thread = thread
    }

    /// Empties both record files and makes that durable, entries included.
    static func emptyRecordFiles(in directory: String) throws {
        for index in 0..<2 {
            let file = try JournalFile.open(directory + "/" + recordFileName(index))
            defer { file.close() }
            guard ftruncate(file.descriptor, 0) == 0 else {
                throw LMDBError(code: errno, operation: "truncate \(file.path)")
            }
            try file.sync()
        }
        try JournalFile.syncDirectory(directory)
    }

    private func runCheckpoints(sync: @Sendable () -> Int32) {
        lock()
        defer { unlock() }
        while true {
            while job == nil && !stopped { wait() }
            guard let job else {
                threadExited = true
                broadcast()
                return
            }
            self.job = nil
            unlock()
            let started = ContinuousClock.now
            var failed: LMDBError?
            let code = sync()
            if code != 0 {
                failed = LMDBError(code: code, operation: "journal checkpoint: mdb_env_sync")
            } else {
                do {
                    try store(job.checkpoint)
                    // The file the journal turned away from: every record in it is in the checkpoint now.
                    shrinkRecordFile(1 - job.checkpoint.activeFile)
                } catch {
                    failed = (error as? LMDBError) ?? LMDBError(code: EIO, operation: "journal checkpoint: \(error)")
                }
            }
            lock()
            if let failed {
                failure = failure ?? failed
                mdb_txn_abort(job.pin)
            } else {
                adopt(job.checkpoint, pin: job.pin)
                policy.observer?(ContinuousClock.now - started)
            }
            checkpointInFlight = false
            broadcast()
        }
    }
}

/// A closure for a thread started with `pthread_create`.
private final class ThreadBody: Sendable {
    let run: @Sendable () -> Void
    init(_ run: @escaping @Sendable () -> Void) { self.run = run }
}

/// What opening a journaled store found: the checkpoint, and the records to replay after it.
struct JournalRecovery {
    var checkpoint: JournalCheckpoint
    var records: [(contents: [UInt8], found: JournalRecord.Found)]
    /// The file the last record (or the checkpoint) left active.
    var activeFile: Int
    /// Whether the meta pages were written back to the checkpoint's, so that LMDB opens its snapshot.
    var restoredMeta: Bool

    /// Reads the checkpoint and the records of a journaled store, and, unless the store was closed cleanly at the
    /// checkpoint, writes the checkpoint's meta page over both meta pages of the data file and syncs it.
    /// - Throws: ``JournalDamage`` when the journal and the data file do not belong together, or ``LMDBError``.
    static func prepare(directory: String) throws -> JournalRecovery {
        let checkpointFile = try JournalFile.open(directory + "/" + WriteAheadJournal.checkpointFileName)
        defer { checkpointFile.close() }
        let slots = try checkpointFile.read(count: 2 * JournalCheckpoint.slotSize, at: 0)
        let candidates = [0, 1].compactMap { slot -> JournalCheckpoint? in
            let start = slot * JournalCheckpoint.slotSize
            guard slots.count >= start + JournalCheckpoint.slotSize else { return nil }
            return JournalCheckpoint(slot: slots[start..<start + JournalCheckpoint.slotSize])
        }
        guard let checkpoint = candidates.max(by: { $0.counter < $1.counter }) else {
            throw JournalDamage(message: "\(WriteAheadJournal.checkpointFileName) holds no whole checkpoint")
        }
        var records: [(contents: [UInt8], found: JournalRecord.Found)] = []
        var next = checkpoint.sequence + 1
        var activeFile = checkpoint.activeFile
        for turn in 0..<2 {
            let index = (checkpoint.activeFile + turn) % 2
            let file = try JournalFile.open(directory + "/" + WriteAheadJournal.recordFileName(index))
            defer { file.close() }
            let contents = try file.readAll()
            let found = JournalRecord.scan(
                contents, from: next, transactionID: checkpoint.transactionID + UInt64(records.count) + 1)
            guard !found.isEmpty else { break }
            records += found.map { (contents, $0) }
            next = found.last!.sequence + 1
            activeFile = index
        }
        let data = try JournalFile.open(directory + "/" + LMDBEnvironment.dataFileName)
        defer { data.close() }
        let pageSize = LMDBMetaPage.pageSize(checkpoint.meta)
        guard pageSize >= 512, pageSize.nonzeroBitCount == 1,
            LMDBMetaPage.transactionID(checkpoint.meta) == checkpoint.transactionID
        else { throw JournalDamage(message: "the journal's checkpoint holds no meta page") }
        let onDisk = try [0, pageSize].map { offset -> UInt64 in
            guard let id = LMDBMetaPage.transactionID(try data.read(count: JournalCheckpoint.metaSize, at: offset))
            else {
                throw JournalDamage(message: "data.mdb has no meta page at \(offset)")
            }
            return id
        }.max()!
        let checkpointed = checkpoint.transactionID
        guard onDisk >= checkpointed else {
            throw JournalDamage(
                message:
                    "data.mdb is at transaction \(onDisk), older than the journal's checkpoint at \(checkpointed): "
                    + "it is not the data file this journal belongs to")
        }
        // Every journaled transaction has a record; one transaction more may have committed without one (a large
        // write, whose checkpoint the crash cut short: it was never acknowledged).
        guard onDisk <= checkpointed + UInt64(records.count) + 1 else {
            throw JournalDamage(
                message: "data.mdb is at transaction \(onDisk), but the journal holds only \(records.count) "
                    + "transaction(s) after its checkpoint at \(checkpointed): something wrote to the store without "
                    + "its journal (another LMDB program?). If that writer closed the store cleanly, delete "
                    + "journal.checkpoint to start a new journal from the data file as it is")
        }
        let clean = onDisk == checkpointed && records.isEmpty
        if !clean {
            for slot in 0..<2 {
                var page = checkpoint.meta
                page.withUnsafeMutableBytes {
                    $0.storeBytes(of: UInt64(slot).littleEndian, toByteOffset: 0, as: UInt64.self)
                }
                try data.write(page, at: slot * pageSize)
            }
            try data.sync()
        }
        return JournalRecovery(checkpoint: checkpoint, records: records, activeFile: activeFile, restoredMeta: !clean)
    }
}
