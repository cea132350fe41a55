import CLMDB

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - Write-ahead journal
//
// See ``WriteAheadJournal`` for the design. The rules this section keeps:
// - A journaled write runs under the journal's lock: its record is written and synced, then LMDB commits without
//   syncing. Nothing a reader can see is missing from the journal or the synced data file.
// - A write that records nothing the journal can replay (creating a database) commits and checkpoints at once,
//   before it returns. Every other write is journaled, however large.
// - A checkpoint starts after a commit, with the writer's lock held, so that its snapshot is the one just committed:
//   it copies that meta page, opens the read transaction that keeps the snapshot's pages, and turns to the other
//   record file. The checkpoint thread syncs the data file and stores the checkpoint; only then is the previous
//   snapshot let go, and only then may the writer turn back to the first file.

extension LMDBEnvironment {
    /// Reads a journaled store's checkpoint and records before LMDB opens it, and rewinds its meta pages to the
    /// checkpoint's when the last run did not end with one.
    static func prepareRecovery(directory: String) throws -> JournalRecovery {
        do {
            return try JournalRecovery.prepare(directory: directory)
        } catch let damage as JournalDamage {
            throw LMDBError(code: MDB_CORRUPTED, operation: "write-ahead journal in \(directory): \(damage)")
        }
    }

    /// Replays what the journal holds past its checkpoint, checkpoints, and starts the checkpoint thread; for a store
    /// without a journal, creates one.
    func startJournal(directory: String, recovery: JournalRecovery?, configuration: Configuration) throws {
        let policy = WriteAheadJournal.Policy(
            checkpointBytes: configuration.journalCheckpointBytes,
            checkpointInterval: configuration.journalCheckpointInterval,
            observer: configuration.journalCheckpointObserver)
        let journal: WriteAheadJournal
        if let recovery {
            // The checkpoint's snapshot stays pinned while the records are replayed and until the checkpoint after
            // them is stored: a replay cut short (a crash, a full disk) must find that snapshot's pages intact,
            // since the next opening rewinds to it again.
            let checkpointPin = try pinSnapshot()
            do {
                try replay(recovery.records, failingAfter: configuration.failReplayAfter)
                journal = try WriteAheadJournal(
                    directory: directory, checkpoint: recovery.checkpoint,
                    nextSequence: (recovery.records.last?.found.sequence ?? recovery.checkpoint.sequence) + 1,
                    policy: policy)
            } catch {
                mdb_txn_abort(checkpointPin)
                throw error
            }
            journal.pinned = checkpointPin
            journal.activeFile = recovery.activeFile
            replayedJournalRecords = recovery.records.count
        } else {
            try LMDBError.check(mdb_env_sync(handle, 1), "mdb_env_sync")
            let transactionID = lastTransactionID()
            let first = JournalCheckpoint(
                counter: 1, sequence: 0, transactionID: transactionID, activeFile: 0,
                meta: try metaPage(of: transactionID))
            // Record files left from an earlier journal (its checkpoint file deleted) would otherwise be read as
            // this one's: they are emptied, durably, before the checkpoint file that makes them count exists.
            try WriteAheadJournal.emptyRecordFiles(in: directory)
            try WriteAheadJournal.createCheckpointFile(in: directory, first)
            journal = try WriteAheadJournal(directory: directory, checkpoint: first, nextSequence: 1, policy: policy)
        }
        journal.lock()
        defer { journal.unlock() }
        if recovery.map({ $0.restoredMeta || !$0.records.isEmpty }) ?? false {
            // After a replay the store stands past its checkpoint: a checkpoint now pins where it stands.
            do {
                try checkpoint(journal)
            } catch {
                if let pin = journal.pinned { mdb_txn_abort(pin) }
                journal.pinned = nil
                throw error
            }
        } else if journal.pinned == nil {
            // A new journal, whose first checkpoint was just synced and stored: nothing committed since, so the
            // snapshot to pin is that checkpoint's. (A clean opening already pins its checkpoint's.)
            journal.pinned = try pinSnapshot()
        }
        let environment = UnsafeSendable(handle)
        journal.startCheckpointThread { mdb_env_sync(environment.value, 1) }
        self.journal = journal
    }

    /// Applies journal records after a crash, each in a write transaction of its own (the journal is not running
    /// yet, so they are not journaled again).
    private func replay(_ records: [(contents: [UInt8], found: JournalRecord.Found)], failingAfter: Int?) throws {
        guard !records.isEmpty else { return }
        var databases: [String: LMDBDatabase] = [:]
        for record in records {
            try record.contents.withUnsafeBytes { raw in
                try JournalOperation.forEach(in: UnsafeRawBufferPointer(rebasing: raw[record.found.payload])) {
                    if databases[$0.database] == nil { databases[$0.database] = try openDatabase(named: $0.database) }
                }
            }
        }
        for (index, record) in records.enumerated() {
            if let failingAfter, index == failingAfter {
                throw LMDBError(code: EIO, operation: "replay stopped after \(index) records, as the test asked")
            }
            try write { transaction in
                try record.contents.withUnsafeBytes { raw in
                    try JournalOperation.forEach(in: UnsafeRawBufferPointer(rebasing: raw[record.found.payload])) {
                        operation in
                        let database = databases[operation.database]!
                        switch operation.kind {
                        case .put: try transaction.put(database, key: operation.key, value: operation.value)
                        case .delete: _ = try transaction.delete(database, key: Array(operation.key))
                        case .clear: try transaction.clear(database)
                        }
                    }
                }
            }
        }
    }

    /// A write transaction under the journal: record, sync, commit; see the section's rules.
    func writeOnceJournaled<T, E: Error>(_ journal: WriteAheadJournal, _ body: (LMDBTransaction) throws(E) -> T)
        throws -> T
    {
        journal.lock()
        defer { journal.unlock() }
        pthread_rwlock_rdlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        try checkOpen()
        if journal.stopped { throw LMDBError(code: EINVAL, operation: "environment closed") }
        if let failure = journal.failure {
            throw LMDBError(
                code: failure.code,
                operation: "writes are refused until the store is opened again, since the write-ahead journal failed "
                    + "(\(failure.operation))")
        }
        let before = lastTransactionID()
        var txn: OpaquePointer?
        try LMDBError.check(mdb_txn_begin(handle, nil, 0, &txn), "mdb_txn_begin (write)")
        let recorder = JournalRecorder()
        let result: T
        do {
            result = try body(LMDBTransaction(handle: txn!, recorder: recorder))
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        if recorder.isEmpty {
            // Nothing replayable, yet it may have changed the store (a database created): checkpointed at once.
            try commit(txn!)
            if lastTransactionID() != before { try checkpoint(journal) }
            return result
        }
        // Every other transaction is journaled, however large: one committed without a record would be visible
        // to readers before its checkpoint made it durable, and a crash in between would take it back.
        guard recorder.payloadSize <= JournalRecord.maximumPayload else {
            mdb_txn_abort(txn)
            throw LMDBError(
                code: EFBIG,
                operation: "a write transaction of \(recorder.payloadSize) bytes is larger than a journal record holds")
        }
        recorder.seal(sequence: journal.nextSequence, transactionID: before + 1)
        do {
            try journal.append(recorder.bytes)
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        do {
            try commit(txn!)
        } catch {
            journal.retract()
            if journal.failure != nil, let failed = error as? LMDBError {
                throw LMDBError(
                    code: failed.code,
                    operation: "\(failed.operation), and its journal record could not be taken back: the write may "
                        + "be there after the next opening")
            }
            throw error
        }
        journal.offset += recorder.bytes.count
        journal.nextSequence += 1
        if journal.checkpointDue { startCheckpoint(journal) }
        return result
    }

    /// Hands a checkpoint of the transaction just committed to the checkpoint thread (the journal's lock is held).
    /// When it cannot start, the next commit tries again.
    private func startCheckpoint(_ journal: WriteAheadJournal) {
        let transactionID = lastTransactionID()
        journal.lastCheckpointStarted = .now
        guard let meta = try? metaPage(of: transactionID), let pin = try? pinSnapshot() else { return }
        let next = journal.nextCheckpoint(transactionID: transactionID, meta: meta)
        journal.job = WriteAheadJournal.Job(checkpoint: next, pin: pin)
        journal.turn(to: next)
        journal.checkpointInFlight = true
        journal.broadcast()
    }

    /// Checkpoints the transaction just committed before returning (the journal's lock is held). A failure leaves
    /// the journal refusing writes: a committed transaction may then be missing from both journal and synced file.
    func checkpoint(_ journal: WriteAheadJournal) throws {
        while journal.checkpointInFlight { journal.wait() }
        if let failure = journal.failure { throw failure }
        var pin: OpaquePointer?
        let started = ContinuousClock.now
        do {
            let transactionID = lastTransactionID()
            let meta = try metaPage(of: transactionID)
            pin = try pinSnapshot()
            try LMDBError.check(mdb_env_sync(handle, 1), "journal checkpoint: mdb_env_sync")
            let next = journal.nextCheckpoint(transactionID: transactionID, meta: meta)
            try journal.store(next)
            journal.adopt(next, pin: pin!)
            journal.turn(to: next)
            journal.shrinkRecordFile(1 - next.activeFile)
            journal.policy.observer?(ContinuousClock.now - started)
        } catch {
            if let pin { mdb_txn_abort(pin) }
            let failure = (error as? LMDBError) ?? LMDBError(code: EIO, operation: "journal checkpoint: \(error)")
            journal.failure = journal.failure ?? failure
            throw failure
        }
    }

    /// Checkpoints what was written since the last checkpoint, stops the checkpoint thread and lets go of the
    /// pinned snapshot; writes are refused from then on.
    ///
    /// Safe to call more than once and from several threads: every caller returns once the thread has stopped.
    func stopJournal() {
        guard let journal else { return }
        journal.lock()
        if !journal.stopped {
            while journal.checkpointInFlight { journal.wait() }
            pthread_rwlock_rdlock(resizeLock)
            if journal.failure == nil,
                journal.offset > 0 || lastTransactionID() != journal.checkpoint.transactionID
            {
                try? checkpoint(journal)
            }
            pthread_rwlock_unlock(resizeLock)
            // In the same hold of the lock as the last checkpoint: no write slips in after it.
            journal.stopped = true
            journal.broadcast()
        }
        while !journal.threadExited { journal.wait() }
        let thread = journal.thread
        journal.thread = nil
        // Under the lock, so that a second closer cannot get past it and close the environment first.
        if let pin = journal.pinned { mdb_txn_abort(pin) }
        journal.pinned = nil
        journal.unlock()
        if let thread { pthread_join(thread, nil) }
    }

    /// The id of the last committed write transaction.
    func lastTransactionID() -> UInt64 {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        return UInt64(info.me_last_txnid)
    }

    /// The first bytes of the meta page of transaction `transactionID` (the last committed), read from the file.
    private func metaPage(of transactionID: UInt64) throws -> [UInt8] {
        var descriptor: Int32 = -1
        try LMDBError.check(mdb_env_get_fd(handle, &descriptor), "mdb_env_get_fd")
        var stat = MDB_stat()
        try LMDBError.check(mdb_env_stat(handle, &stat), "mdb_env_stat")
        let file = JournalFile(descriptor: descriptor, path: path + "/" + Self.dataFileName)
        let page = try file.read(count: JournalCheckpoint.metaSize, at: Int(transactionID & 1) * Int(stat.ms_psize))
        guard LMDBMetaPage.transactionID(page) == transactionID else {
            throw LMDBError(
                code: MDB_CORRUPTED, operation: "journal checkpoint: the meta page of transaction \(transactionID)")
        }
        return page
    }

    /// Opens the read transaction that keeps the current snapshot's pages from reuse.
    private func pinSnapshot() throws -> OpaquePointer {
        var txn: OpaquePointer?
        try LMDBError.check(mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin (checkpoint)")
        return txn!
    }
}

/// A value handed to another thread whose safety the code around it ensures (an `MDB_env`, which LMDB lets threads
/// share, used after the environment is closed by no one: the checkpoint thread stops first).
struct UnsafeSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

extension LMDBEnvironment {
    /// Runs `body` while no write transaction can start or commit and no checkpoint can let go of its snapshot: the
    /// files then hold what a crash at this instant would leave, as far as this process decides (for tests that
    /// make crash images). Without a journal, `body` runs as it is.
    func withWritesHeld<T>(_ body: () throws -> T) rethrows -> T {
        guard let journal else { return try body() }
        journal.lock()
        defer { journal.unlock() }
        return try body()
    }
}
