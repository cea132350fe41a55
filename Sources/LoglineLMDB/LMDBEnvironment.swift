import CLMDB
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An LMDB environment: one memory-mapped file holding named databases.
///
/// Concurrency rules, in the manner of GRDB:
/// - Transactions live only inside the closures of ``read(_:)`` and ``write(_:)``; the values they hand out
///   (``LMDBTransaction``, ``LMDBCursor``, and the buffers they return) are valid only during that closure.
/// - Any number of threads may read at once. Readers never wait for the writer.
/// - One writer at a time: LMDB serialises write transactions itself.
/// - The map grows by itself. When a write transaction meets `MDB_MAP_FULL` it is aborted, the map is enlarged
///   while no transaction is open (readers are held off for that moment by a reader-writer lock), and the
///   closure runs again. A write closure must therefore have no effects outside the transaction until it returns.
///
/// Write-ahead journal: a store created with ``Configuration/writeAheadJournal`` (or that has a journal already)
/// syncs one record of each write transaction's changes before the commit, instead of LMDB's two syncs of
/// scattered pages, and checkpoints the data file in the background; opening it replays what a crash left in the
/// journal. ``write(_:)`` returns only once the transaction is durable either way. The design and its crash rules
/// are on `WriteAheadJournal`.
///
/// - Important: LMDB's `MDB_env` is safe to share between threads when opened with `MDB_NOTLS`, which this type
///   always does; the map-size changes are guarded by `resizeLock`, a `pthread_rwlock_t` at a stable address that
///   is only destroyed in `deinit`, and the journal's state by the journal's own mutex.
public final class LMDBEnvironment: @unchecked Sendable {
    /// How the environment is opened.
    public struct Configuration: Sendable {
        /// The initial map size in bytes (the file only takes what it uses).
        public var mapSize: Int = 256 << 20
        /// The most named databases.
        public var maxDatabases: UInt32 = 16
        /// The most concurrent read transactions.
        public var maxReaders: UInt32 = 1024
        /// Whether to give a store that has no write-ahead journal one (see ``LMDBEnvironment``'s "Write-ahead
        /// journal"). A store that has a journal always uses it, whatever this says.
        public var writeAheadJournal: Bool = false
        /// A checkpoint starts once this many bytes of records are in the journal since the last one…
        public var journalCheckpointBytes: Int = 1 << 20
        /// …or once this long has passed since the last one started, at the next commit.
        public var journalCheckpointInterval: Duration = .milliseconds(20)

        /// Called after each journal checkpoint with how long it took (syncing the data file, storing the
        /// checkpoint), on the thread that ran it; it must return quickly.
        public var journalCheckpointObserver: (@Sendable (_ duration: Duration) -> Void)?
        /// For tests of an interrupted recovery: the replay fails after this many records.
        var failReplayAfter: Int?

        /// The defaults: 256 MiB initial map, durable commits, no journal for a store that has none.
        public init() {}
    }

    let handle: OpaquePointer
    let resizeLock: UnsafeMutablePointer<pthread_rwlock_t>
    private let currentMapSize: Atomic<Int>
    /// Set once by ``close()``, under the exclusive resize lock; read under the shared lock.
    private let isClosed = Atomic<Bool>(false)
    /// Where the data file is mapped in this process, as `/proc/self/maps` said: LMDB maps it when the environment
    /// opens and again only when ``grow()`` resizes the map, which forgets it. Reading the maps for every release
    /// cost the writer more than the release itself.
    private let mappedRanges = Mutex<[UnsafeMutableRawBufferPointer]?>(nil)
    /// The directory that holds `data.mdb` and `lock.mdb`.
    public let path: String
    /// The name of LMDB's data file in the directory.
    public static let dataFileName = "data.mdb"
    /// The files that hold a store's data in its directory: LMDB's data file and the write-ahead journal's (not
    /// the lock files).
    public static let storeFileNames = [dataFileName] + WriteAheadJournal.fileNames
    /// The write-ahead journal, when the store has one; set once, at the end of `init`.
    var journal: WriteAheadJournal?
    /// How many journal records the opening replayed after a crash (0 after a clean close).
    public internal(set) var replayedJournalRecords = 0
    /// Whether writes go through the write-ahead journal.
    public var isJournaled: Bool { journal != nil }

    /// Opens (creating if needed) the environment in `directory`.
    /// - Parameters:
    ///   - directory: An existing directory.
    ///   - configuration: Sizes and flags.
    /// - Throws: ``LMDBError`` when LMDB cannot open it.
    public init(directory: String, configuration: Configuration = Configuration()) throws {
        let hasJournal = access(directory + "/" + WriteAheadJournal.checkpointFileName, F_OK) == 0
        let recovery = hasJournal ? try Self.prepareRecovery(directory: directory) : nil
        let journaled = hasJournal || configuration.writeAheadJournal
        var env: OpaquePointer?
        try LMDBError.check(mdb_env_create(&env), "mdb_env_create")
        guard let env else { throw LMDBError(code: ENOMEM, operation: "mdb_env_create") }
        do {
            try LMDBError.check(mdb_env_set_maxdbs(env, configuration.maxDatabases), "mdb_env_set_maxdbs")
            try LMDBError.check(mdb_env_set_maxreaders(env, configuration.maxReaders), "mdb_env_set_maxreaders")
            try LMDBError.check(mdb_env_set_mapsize(env, configuration.mapSize), "mdb_env_set_mapsize")
            // Journaled, a commit syncs its journal record instead, and checkpoints sync the data file.
            let flags = UInt32(MDB_NOTLS) | UInt32(MDB_NORDAHEAD) | (journaled ? UInt32(MDB_NOSYNC) : 0)
            try LMDBError.check(mdb_env_open(env, directory, flags, 0o644), "mdb_env_open \(directory)")
        } catch {
            mdb_env_close(env)
            throw error
        }
        var info = MDB_envinfo()
        mdb_env_info(env, &info)
        self.handle = env
        self.path = directory
        self.currentMapSize = Atomic(max(Int(info.me_mapsize), configuration.mapSize))
        self.resizeLock = .allocate(capacity: 1)
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        #if canImport(Glibc)
            pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        #endif
        pthread_rwlock_init(resizeLock, &attributes)
        pthread_rwlockattr_destroy(&attributes)
        if journaled {
            do {
                try startJournal(directory: directory, recovery: recovery, configuration: configuration)
            } catch {
                mdb_env_close(env)
                isClosed.store(true, ordering: .relaxed)
                throw error
            }
        }
    }

    deinit {
        if !isClosed.load(ordering: .relaxed) {
            stopJournal()
            mdb_env_close(handle)
        }
        pthread_rwlock_destroy(resizeLock)
        resizeLock.deallocate()
    }

    /// Closes the environment: waits for open transactions to end, then releases the memory map and files.
    ///
    /// A journaled environment first checkpoints, so that the next opening finds nothing to replay. Later reads and
    /// writes throw. Safe to call more than once.
    public func close() {
        stopJournal()
        pthread_rwlock_wrlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        guard !isClosed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        mdb_env_close(handle)
    }

    func checkOpen() throws {
        if isClosed.load(ordering: .acquiring) { throw LMDBError(code: EINVAL, operation: "environment closed") }
    }

    /// The map size now, in bytes.
    public var mapSize: Int { currentMapSize.load(ordering: .relaxed) }

    /// Opens a named database, creating it if missing.
    /// - Parameters:
    ///   - name: The database's name.
    ///   - integerKeys: Keys are native-endian unsigned integers of one size (`MDB_INTEGERKEY`).
    /// - Returns: The database handle, valid as long as the environment.
    /// - Throws: ``LMDBError`` when it cannot be opened.
    public func openDatabase(named name: String, integerKeys: Bool = false) throws -> LMDBDatabase {
        try write { transaction in
            var dbi: MDB_dbi = 0
            var flags = UInt32(MDB_CREATE)
            if integerKeys { flags |= UInt32(MDB_INTEGERKEY) }
            try LMDBError.check(mdb_dbi_open(transaction.handle, name, flags, &dbi), "mdb_dbi_open \(name)")
            return LMDBDatabase(handle: dbi, name: name)
        }
    }

    /// Runs `body` in a read-only transaction: a consistent snapshot that never waits for the writer.
    /// - Parameter body: The reads. Its transaction and every buffer it returns are valid only inside it.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws, or ``LMDBError``.
    public func read<T, E: Error>(_ body: (LMDBTransaction) throws(E) -> T) throws -> T {
        pthread_rwlock_rdlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        try checkOpen()
        var txn: OpaquePointer?
        try LMDBError.check(mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin (read)")
        defer { mdb_txn_abort(txn) }
        return try body(LMDBTransaction(handle: txn!))
    }

    /// Runs `body` in a write transaction and commits it durably: with fsync, or after its journal record is synced.
    ///
    /// When the map fills up, the transaction is aborted, the map grows, and `body` runs again from the start.
    /// - Parameter body: The writes. It must have no effects outside the transaction until it returns.
    /// - Returns: What `body` returns, after the commit succeeded.
    /// - Throws: What `body` throws (the transaction is then aborted), or ``LMDBError``.
    public func write<T, E: Error>(_ body: (LMDBTransaction) throws(E) -> T) throws -> T {
        while true {
            do {
                return try writeOnce(body)
            } catch let error as LMDBError where error.isMapFull {
                try grow()
            }
        }
    }

    private func writeOnce<T, E: Error>(_ body: (LMDBTransaction) throws(E) -> T) throws -> T {
        if let journal { return try writeOnceJournaled(journal, body) }
        pthread_rwlock_rdlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        try checkOpen()
        var txn: OpaquePointer?
        try LMDBError.check(mdb_txn_begin(handle, nil, 0, &txn), "mdb_txn_begin (write)")
        let result: T
        do {
            result = try body(LMDBTransaction(handle: txn!))
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        try commit(txn!)
        return result
    }

    /// Commits a write transaction, telling a full disk from other failures.
    func commit(_ txn: OpaquePointer) throws {
        let code = mdb_txn_commit(txn)
        if code == EIO, let (cause, detail) = spaceExhaustion() {
            throw LMDBError(code: cause, operation: "mdb_txn_commit: a short write, \(detail)")
        }
        try LMDBError.check(code, "mdb_txn_commit")
    }

    /// Why a commit that failed with `EIO` failed, when the cause is a lack of space.
    ///
    /// LMDB reports a short write as `EIO`, and a write that reaches the end of the disk or the file-size limit
    /// (`RLIMIT_FSIZE`) part-way through is cut short there; the next commit starts its writes at the same page,
    /// below the limit, so it is cut short too. This looks at the data file and the file system, so that such a
    /// failure is reported as a full disk, with what was found.
    /// - Returns: `EFBIG` or `ENOSPC` and what was found, or `nil` when there is space (a real I/O error).
    private func spaceExhaustion() -> (Int32, String)? {
        var descriptor: Int32 = -1
        guard mdb_env_get_fd(handle, &descriptor) == 0 else { return nil }
        var file = stat()
        guard fstat(descriptor, &file) == 0 else { return nil }
        let size = UInt64(file.st_size)
        #if canImport(Glibc)
            // A write that crosses the limit is cut short at it: the file then ends at the limit.
            var limit = rlimit()
            if getrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max,
                size + (1 << 20) > UInt64(limit.rlim_cur)
            {
                return (EFBIG, "the data file (\(size) bytes) reached the file-size limit of \(limit.rlim_cur) bytes")
            }
        #endif
        var fileSystem = statvfs()
        guard fstatvfs(descriptor, &fileSystem) == 0 else { return nil }
        let blocks = geteuid() == 0 ? UInt64(fileSystem.f_bfree) : UInt64(fileSystem.f_bavail)
        let free = blocks * UInt64(fileSystem.f_frsize)
        // One write of a commit carries up to 64 pages, or one large value: less than this is a full disk.
        guard free < 16 << 20 else { return nil }
        return (ENOSPC, "the file system holding the data file has \(free) bytes free")
    }

    /// Unmaps the pages of the store that this process has read, so that they leave its resident set; they stay in
    /// the kernel's page cache, and the next read of one maps it again (a minor fault, no disk read).
    ///
    /// Every page a transaction reads through the memory map counts in the process's resident size until the kernel
    /// needs the memory back, so a scan of a multi-gigabyte store makes the server look gigabytes large. The map is
    /// read-only (writes go through `pwrite`), so its pages are never dirty and dropping them loses nothing; readers
    /// that touch one meanwhile fault it back in. Holds off map growth while it runs.
    /// - Returns: Whether the kernel accepted the advice.
    @discardableResult
    public func releaseMappedPages() -> Bool {
        pthread_rwlock_rdlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        guard !isClosed.load(ordering: .relaxed) else { return false }
        #if os(Linux)
            let ranges = mappedRanges.withLock { known in
                if let known { return known }
                let found = mappedDataFileRanges()
                // Kept only when found: a failed read of the maps is tried again next time.
                if !found.isEmpty { known = found }
                return found
            }
            var released = false
            for range in ranges {
                released = madvise(range.baseAddress, range.count, MADV_DONTNEED) == 0 || released
            }
            return released
        #else
            return false
        #endif
    }

    #if os(Linux)
        /// Where the data file is mapped, from /proc/self/maps: LMDB does not say (`me_mapaddr` is only set with
        /// MDB_FIXEDMAP), the kernel does. A mapping is the data file's when its device and inode are those of the
        /// file LMDB holds open, or its path is the file's whole real path (some file systems, such as btrfs and
        /// overlayfs, show another device or inode there than `fstat` gives); never by the end of a path alone,
        /// which would also match another store whose path ends with this one's. Empty when the maps cannot be
        /// read.
        private func mappedDataFileRanges() -> [UnsafeMutableRawBufferPointer] {
            var descriptor: mdb_filehandle_t = -1
            var status = stat()
            guard mdb_env_get_fd(handle, &descriptor) == 0, fstat(descriptor, &status) == 0,
                let maps = Self.readWholeFile("/proc/self/maps")
            else { return [] }
            // The device as the maps show it, "major:minor" in hex (glibc's encoding of dev_t).
            let device = UInt64(status.st_dev)
            let major = ((device >> 8) & 0xfff) | ((device >> 32) & ~0xfff)
            let minor = (device & 0xff) | (UInt64(UInt32(truncatingIfNeeded: device >> 12)) & ~0xff)
            let deviceField = Array("\(String(major, radix: 16, uppercase: false)):\(String(minor, radix: 16))".utf8)
            let inodeField = Array(String(UInt64(status.st_ino)).utf8)
            let realPath = Glibc.realpath((path.hasSuffix("/") ? path : path + "/") + Self.dataFileName, nil)
            defer { free(realPath) }
            let pathField = realPath.map { Array(String(cString: $0).utf8) }
            var ranges: [UnsafeMutableRawBufferPointer] = []
            for line in maps.split(separator: UInt8(ascii: "\n")) {
                // address perms offset device inode path
                let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 5)
                guard fields.count >= 5 else { continue }
                let sameFile = fields[4].elementsEqual(inodeField) && Self.sameDevice(fields[3], deviceField)
                var samePath = false
                if fields.count == 6, let pathField {
                    samePath = fields[5].drop { $0 == UInt8(ascii: " ") }.elementsEqual(pathField)
                }
                guard sameFile || samePath,
                    let dash = fields[0].firstIndex(of: UInt8(ascii: "-")),
                    let start = UInt(String(decoding: fields[0][..<dash], as: UTF8.self), radix: 16),
                    let end = UInt(
                        String(decoding: fields[0][fields[0].index(after: dash)...], as: UTF8.self), radix: 16),
                    end > start, let address = UnsafeMutableRawPointer(bitPattern: start)
                else { continue }
                ranges.append(UnsafeMutableRawBufferPointer(start: address, count: Int(end - start)))
            }
            return ranges
        }

        /// Whether a device field of /proc/self/maps ("fd:01", with at least two hex digits a part) is `expected`
        /// ("fd:1", no padding).
        private static func sameDevice(_ field: ArraySlice<UInt8>, _ expected: [UInt8]) -> Bool {
            func unpadded(_ part: some Collection<UInt8>) -> [UInt8] {
                let digits = Array(part.drop { $0 == UInt8(ascii: "0") })
                return digits.isEmpty ? [UInt8(ascii: "0")] : digits.map { $0 | 0x20 }  // lower case
            }
            let given = field.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
            let wanted = expected.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
            guard given.count == 2, wanted.count == 2 else { return false }
            return unpadded(given[0]) == unpadded(wanted[0]) && unpadded(given[1]) == unpadded(wanted[1])
        }

        /// The whole contents of a (small, virtual) file, or `nil` when it cannot be read.
        static func readWholeFile(_ path: String) -> [UInt8]? {
            let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { return nil }
            defer { Glibc.close(descriptor) }
            var contents: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 16 << 10)
            while true {
                let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { return count == 0 ? contents : nil }
                contents.append(contentsOf: chunk[0..<count])
            }
        }
    #endif

    /// The process's resident set (`/proc/self/statm`): all of it, and the part that is file-backed or shared (for
    /// this server, the store's mapped pages and the program's own code). `nil` where the system does not say.
    public static func residentBytes() -> (total: Int, shared: Int)? {
        #if os(Linux)
            // Seven numbers: one small read into the stack, since the log asks every millisecond or two.
            let descriptor = Glibc.open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { return nil }
            defer { Glibc.close(descriptor) }
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { buffer -> (Int, Int)? in
                var count: Int
                repeat {
                    count = Glibc.read(descriptor, buffer.baseAddress, buffer.count)
                } while count < 0
                    && errno == EINTR
                guard count > 0 else { return nil }
                // The second field: resident pages; the third: resident shared pages.
                var field = 0
                var resident = 0
                var shared = 0
                for byte in buffer[0..<count] {
                    if byte == UInt8(ascii: " ") {
                        field += 1
                        if field == 3 {
                            let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
                            return (resident * pageSize, shared * pageSize)
                        }
                    } else if field == 1 || field == 2 {
                        guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                        let digit = Int(byte - UInt8(ascii: "0"))
                        if field == 1 { resident = resident * 10 + digit } else { shared = shared * 10 + digit }
                    }
                }
                return nil
            }
        #else
            return nil
        #endif
    }

    /// Enlarges the map: doubles it up to 1 GiB, then adds 1 GiB at a time.
    /// - Throws: ``LMDBError`` when LMDB refuses the new size.
    public func grow() throws {
        pthread_rwlock_wrlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        try checkOpen()
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        let current = Int(info.me_mapsize)
        let next = current < (1 << 30) ? current * 2 : current + (1 << 30)
        // The map moves: the ranges found for the old one must not be released again.
        mappedRanges.withLock { $0 = nil }
        try LMDBError.check(mdb_env_set_mapsize(handle, next), "mdb_env_set_mapsize")
        currentMapSize.store(next, ordering: .relaxed)
    }

    /// Writes a consistent copy of the environment into an empty directory, while writes go on.
    /// - Parameters:
    ///   - directory: An existing, empty directory.
    ///   - compact: Omit free pages and renumber them (`MDB_CP_COMPACT`).
    /// - Throws: ``LMDBError`` when the copy fails.
    public func copy(to directory: String, compact: Bool = true) throws {
        pthread_rwlock_rdlock(resizeLock)
        defer { pthread_rwlock_unlock(resizeLock) }
        try checkOpen()
        try LMDBError.check(
            mdb_env_copy2(handle, directory, compact ? UInt32(MDB_CP_COMPACT) : 0), "mdb_env_copy2 \(directory)")
        // LMDB syncs the copy only when the environment syncs its own commits, which a journaled one does not.
        let copy = try JournalFile.open(directory + "/" + Self.dataFileName)
        defer { copy.close() }
        try copy.sync()
        try JournalFile.syncDirectory(directory)
    }
}

/// A named database inside an environment: an ordered map of byte keys to byte values.
public struct LMDBDatabase: Sendable, Hashable {
    let handle: MDB_dbi
    /// The database's name.
    public let name: String
}
