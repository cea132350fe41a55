import CLMDB

/// A transaction, valid only inside the closure of ``LMDBEnvironment/read(_:)`` or ``LMDBEnvironment/write(_:)``.
///
/// Buffers returned by ``get(_:key:)`` and by cursors point into the memory map and are valid only until
/// the transaction ends; copy what must outlive it.
public struct LMDBTransaction {
    let handle: OpaquePointer
    /// Where a write transaction's changes are captured for the write-ahead journal; `nil` when unjournaled.
    let recorder: JournalRecorder?

    init(handle: OpaquePointer, recorder: JournalRecorder? = nil) {
        self.handle = handle
        self.recorder = recorder
    }

    /// Reads the value of `key`.
    /// - Parameters:
    ///   - database: The database.
    ///   - key: The key's bytes.
    /// - Returns: The value's bytes (valid until the transaction ends), or `nil` when there is no such key.
    /// - Throws: ``LMDBError`` on failure other than "not found".
    public func get(_ database: LMDBDatabase, key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        var keyVal = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var value = MDB_val()
        let code = mdb_get(handle, database.handle, &keyVal, &value)
        if code == MDB_NOTFOUND { return nil }
        try LMDBError.check(code, "mdb_get \(database.name)")
        return UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)
    }

    /// Reads the value of `key`.
    /// - Parameters:
    ///   - database: The database.
    ///   - key: The key's bytes.
    /// - Returns: The value's bytes (valid until the transaction ends), or `nil` when there is no such key.
    /// - Throws: ``LMDBError`` on failure other than "not found".
    public func get(_ database: LMDBDatabase, key: [UInt8]) throws -> UnsafeRawBufferPointer? {
        try key.withUnsafeBytes { (raw) in try get(database, key: raw) }
    }

    /// Stores `value` under `key`, replacing what was there.
    /// - Parameters:
    ///   - database: The database.
    ///   - key: The key's bytes.
    ///   - value: The value's bytes.
    ///   - append: The key sorts after every key in the database (`MDB_APPEND`, faster; an error otherwise).
    /// - Throws: ``LMDBError``, including `MDB_MAP_FULL`, which ``LMDBEnvironment/write(_:)`` handles.
    public func put(
        _ database: LMDBDatabase, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, append: Bool = false
    ) throws {
        var keyVal = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var valueVal = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try LMDBError.check(
            mdb_put(handle, database.handle, &keyVal, &valueVal, append ? UInt32(MDB_APPEND) : 0),
            "mdb_put \(database.name)")
        recorder?.recordPut(database.name, key: key, value: value)
    }

    /// Stores `value` under `key`, replacing what was there.
    /// - Parameters:
    ///   - database: The database.
    ///   - key: The key's bytes.
    ///   - value: The value's bytes.
    ///   - append: The key sorts after every key in the database (`MDB_APPEND`).
    /// - Throws: ``LMDBError``.
    public func put(_ database: LMDBDatabase, key: [UInt8], value: [UInt8], append: Bool = false) throws {
        try key.withUnsafeBytes { (rawKey) in
            try value.withUnsafeBytes { (rawValue) in
                try put(database, key: rawKey, value: rawValue, append: append)
            }
        }
    }

    /// Removes `key`.
    /// - Parameters:
    ///   - database: The database.
    ///   - key: The key's bytes.
    /// - Returns: Whether the key was there.
    /// - Throws: ``LMDBError``.
    @discardableResult
    public func delete(_ database: LMDBDatabase, key: [UInt8]) throws -> Bool {
        try key.withUnsafeBytes { (raw) -> Bool in
            var keyVal = MDB_val(mv_size: raw.count, mv_data: UnsafeMutableRawPointer(mutating: raw.baseAddress))
            let code = mdb_del(handle, database.handle, &keyVal, nil)
            if code == MDB_NOTFOUND { return false }
            try LMDBError.check(code, "mdb_del \(database.name)")
            recorder?.recordDelete(database.name, key: raw)
            return true
        }
    }

    /// Removes every entry of `database`, keeping the database.
    /// - Parameter database: The database to empty.
    /// - Throws: ``LMDBError``.
    public func clear(_ database: LMDBDatabase) throws {
        try LMDBError.check(mdb_drop(handle, database.handle, 0), "mdb_drop \(database.name)")
        recorder?.recordClear(database.name)
    }

    /// The number of entries in `database`, as seen by this transaction.
    /// - Parameter database: The database.
    /// - Returns: The count.
    public func count(_ database: LMDBDatabase) -> Int {
        var stat = MDB_stat()
        mdb_stat(handle, database.handle, &stat)
        return Int(stat.ms_entries)
    }

    /// Runs `body` in a nested (child) write transaction: its writes become part of this transaction when
    /// `body` returns, and are all undone when it throws.
    /// - Parameter body: The writes that must happen together or not at all.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws (the child is then aborted), or ``LMDBError``.
    public func nested<T, E: Error>(_ body: (LMDBTransaction) throws(E) -> T) throws -> T {
        var child: OpaquePointer?
        try LMDBError.check(mdb_txn_begin(mdb_txn_env(handle), handle, 0, &child), "mdb_txn_begin (nested)")
        let mark = recorder?.mark
        let result: T
        do {
            result = try body(LMDBTransaction(handle: child!, recorder: recorder))
        } catch {
            mdb_txn_abort(child)
            if let mark { recorder?.rollBack(to: mark) }
            throw error
        }
        let code = mdb_txn_commit(child)
        if code != 0, let mark { recorder?.rollBack(to: mark) }
        try LMDBError.check(code, "mdb_txn_commit (nested)")
        return result
    }

    /// Runs `body` with a cursor over `database`; the cursor is closed when `body` returns.
    /// - Parameters:
    ///   - database: The database to walk.
    ///   - body: The walk.
    /// - Returns: What `body` returns.
    /// - Throws: ``LMDBError`` or what `body` throws.
    public func withCursor<T, E: Error>(_ database: LMDBDatabase, _ body: (inout LMDBCursor) throws(E) -> T) throws -> T
    {
        var cursor: OpaquePointer?
        try LMDBError.check(mdb_cursor_open(handle, database.handle, &cursor), "mdb_cursor_open \(database.name)")
        defer { mdb_cursor_close(cursor) }
        var wrapped = LMDBCursor(handle: cursor!, name: database.name)
        return try body(&wrapped)
    }
}

/// A position in a database, valid only inside ``LMDBTransaction/withCursor(_:_:)``.
public struct LMDBCursor {
    let handle: OpaquePointer
    let name: String

    /// One entry: key and value buffers, valid until the transaction ends.
    public typealias Entry = (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)

    private func move(_ operation: MDB_cursor_op, key: UnsafeRawBufferPointer? = nil) throws -> Entry? {
        var keyVal = MDB_val(
            mv_size: key?.count ?? 0, mv_data: key.flatMap { UnsafeMutableRawPointer(mutating: $0.baseAddress) })
        var value = MDB_val()
        let code = mdb_cursor_get(handle, &keyVal, &value, operation)
        if code == MDB_NOTFOUND { return nil }
        try LMDBError.check(code, "mdb_cursor_get \(name)")
        return (
            UnsafeRawBufferPointer(start: keyVal.mv_data, count: keyVal.mv_size),
            UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)
        )
    }

    /// Moves to the first entry whose key is at or after `key`.
    /// - Parameter key: The lower bound.
    /// - Returns: The entry, or `nil` when every key is smaller.
    /// - Throws: ``LMDBError``.
    public mutating func seek(atOrAfter key: [UInt8]) throws -> Entry? {
        try key.withUnsafeBytes { (raw) in try move(MDB_SET_RANGE, key: raw) }
    }

    /// Moves to the first entry.
    /// - Returns: The entry, or `nil` when the database is empty.
    /// - Throws: ``LMDBError``.
    public mutating func first() throws -> Entry? { try move(MDB_FIRST) }

    /// Moves to the last entry.
    /// - Returns: The entry, or `nil` when the database is empty.
    /// - Throws: ``LMDBError``.
    public mutating func last() throws -> Entry? { try move(MDB_LAST) }

    /// Moves to the next entry.
    /// - Returns: The entry, or `nil` past the end.
    /// - Throws: ``LMDBError``.
    public mutating func next() throws -> Entry? { try move(MDB_NEXT) }

    /// Moves to the previous entry.
    /// - Returns: The entry, or `nil` before the start.
    /// - Throws: ``LMDBError``.
    public mutating func previous() throws -> Entry? { try move(MDB_PREV) }
}
