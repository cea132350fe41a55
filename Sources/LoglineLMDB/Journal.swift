#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// The write-ahead journal: the files, the record and checkpoint formats, and the recorder that captures a write
// transaction's operations. ``LMDBEnvironment`` decides when to write, sync and checkpoint (see its
// "Write-ahead journal" section); nothing here knows about LMDB's handles.

/// The operations of one write transaction, in order, laid out as a journal record's payload behind room for its
/// header, so that the record goes to the file without another copy.
final class JournalRecorder {
    /// The header's room, then the operations.
    private(set) var bytes: [UInt8]

    /// A recorder for one write transaction.
    init() {
        bytes = [UInt8](repeating: 0, count: JournalRecord.headerSize)
        bytes.reserveCapacity(16 << 10)
    }

    /// Whether the transaction changed nothing (that the journal knows of).
    var isEmpty: Bool { bytes.count == JournalRecord.headerSize }
    /// The size of the payload.
    var payloadSize: Int { bytes.count - JournalRecord.headerSize }
    /// Where a nested transaction starts: ``rollBack(to:)`` forgets what it recorded.
    var mark: Int { bytes.count }

    /// Forgets the operations recorded after `mark` (a nested transaction was aborted).
    func rollBack(to mark: Int) {
        bytes.removeSubrange(mark...)
    }

    func recordPut(_ database: String, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        appendHead(.put, database)
        appendBlob(key)
        appendBlob(value)
    }

    func recordDelete(_ database: String, key: UnsafeRawBufferPointer) {
        appendHead(.delete, database)
        appendBlob(key)
    }

    func recordClear(_ database: String) {
        appendHead(.clear, database)
    }

    /// Fills in the record's header: it is ready to write.
    func seal(sequence: UInt64, transactionID: UInt64) {
        JournalRecord.seal(&bytes, sequence: sequence, transactionID: transactionID)
    }

    private func appendHead(_ kind: JournalOperation.Kind, _ database: String) {
        bytes.append(kind.rawValue)
        let name = database.utf8
        precondition(name.count <= 255, "a database name longer than 255 bytes cannot be journaled")
        bytes.append(UInt8(name.count))
        bytes.append(contentsOf: name)
    }

    private func appendBlob(_ blob: UnsafeRawBufferPointer) {
        withUnsafeBytes(of: UInt32(blob.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: blob)
    }
}

/// One operation of a journal record.
struct JournalOperation {
    /// What it does.
    enum Kind: UInt8 {
        case put = 1
        case delete = 2
        case clear = 3
    }

    var kind: Kind
    var database: String
    var key: UnsafeRawBufferPointer
    var value: UnsafeRawBufferPointer

    /// Calls `body` with each operation of `payload`, in order.
    /// - Throws: ``JournalDamage`` when the payload does not parse, or what `body` throws.
    static func forEach(in payload: UnsafeRawBufferPointer, _ body: (JournalOperation) throws -> Void) throws {
        var offset = 0
        func take(_ count: Int) throws -> UnsafeRawBufferPointer {
            guard count >= 0, payload.count - offset >= count else {
                throw JournalDamage(message: "a record's operations end early")
            }
            defer { offset += count }
            return UnsafeRawBufferPointer(rebasing: payload[offset..<offset + count])
        }
        func blob() throws -> UnsafeRawBufferPointer {
            let length = try take(4).loadUnaligned(as: UInt32.self)
            return try take(Int(UInt32(littleEndian: length)))
        }
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        while offset < payload.count {
            guard let kind = Kind(rawValue: try take(1)[0]) else {
                throw JournalDamage(message: "a record holds an unknown operation")
            }
            let nameLength = Int(try take(1)[0])
            let database = String(decoding: try take(nameLength), as: UTF8.self)
            switch kind {
            case .put:
                let key = try blob()
                try body(JournalOperation(kind: kind, database: database, key: key, value: try blob()))
            case .delete:
                try body(JournalOperation(kind: kind, database: database, key: try blob(), value: empty))
            case .clear:
                try body(JournalOperation(kind: kind, database: database, key: empty, value: empty))
            }
        }
    }
}

/// A journal that cannot be trusted, with what was wrong.
struct JournalDamage: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// The layout of a record: a 32-byte header, then the operations.
///
/// | bytes | field |
/// |---|---|
/// | 0..<4 | magic `LJRN` |
/// | 4..<8 | payload length |
/// | 8..<16 | sequence number: one more than the record before |
/// | 16..<24 | the LMDB transaction id the commit was to get |
/// | 24..<28 | CRC-32C of bytes 4..<24 and the payload |
/// | 28..<32 | zero |
///
/// All little-endian. A record is whole when its magic, sequence number and checksum hold; a torn write, or the
/// older records of a file's earlier turn, fail one of them, and the journal ends there.
enum JournalRecord {
    static let headerSize = 32
    static let magic: UInt32 = 0x4E52_4A4C
    /// The largest payload the header's length field holds.
    static let maximumPayload = Int(UInt32.max)

    /// Fills in the header at the start of `bytes` (a recorder's buffer).
    static func seal(_ bytes: inout [UInt8], sequence: UInt64, transactionID: UInt64) {
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: magic.littleEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: UInt32(raw.count - headerSize).littleEndian, toByteOffset: 4, as: UInt32.self)
            raw.storeBytes(of: sequence.littleEndian, toByteOffset: 8, as: UInt64.self)
            raw.storeBytes(of: transactionID.littleEndian, toByteOffset: 16, as: UInt64.self)
            raw.storeBytes(of: UInt64(0), toByteOffset: 24, as: UInt64.self)
            let covered = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[4..<24]))
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[headerSize...]), continuing: covered)
            raw.storeBytes(of: crc.littleEndian, toByteOffset: 24, as: UInt32.self)
        }
    }

    /// A whole record found in a file.
    struct Found {
        var sequence: UInt64
        var transactionID: UInt64
        /// Where its payload lies in the file's contents.
        var payload: Range<Int>
    }

    /// The whole records at the start of `contents` whose sequence numbers run on from `sequence`, and whose
    /// transaction ids run on from `transactionID` (every commit after a checkpoint has a record, or checkpoints).
    static func scan(_ contents: [UInt8], from sequence: UInt64, transactionID: UInt64) -> [Found] {
        var found: [Found] = []
        var offset = 0
        var expected = sequence
        var expectedTransaction = transactionID
        contents.withUnsafeBytes { raw in
            while raw.count - offset >= headerSize {
                func field<T: FixedWidthInteger>(_ at: Int, _ type: T.Type) -> T {
                    T(littleEndian: raw.loadUnaligned(fromByteOffset: offset + at, as: T.self))
                }
                guard field(0, UInt32.self) == magic, field(8, UInt64.self) == expected,
                    field(16, UInt64.self) == expectedTransaction
                else { break }
                let length = Int(field(4, UInt32.self))
                guard raw.count - offset - headerSize >= length else { break }
                let payload = offset + headerSize..<offset + headerSize + length
                let covered = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[offset + 4..<offset + 24]))
                let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[payload]), continuing: covered)
                guard crc == field(24, UInt32.self) else { break }
                found.append(Found(sequence: expected, transactionID: field(16, UInt64.self), payload: payload))
                expected += 1
                expectedTransaction += 1
                offset = payload.upperBound
            }
        }
        return found
    }
}

/// Where the store stood at the last checkpoint: every record up to `sequence` is in the data file, synced, as
/// LMDB transaction `transactionID`, whose meta page is `meta`; later records start at the head of file
/// `activeFile`.
struct JournalCheckpoint: Equatable {
    /// Bytes of the meta page kept: the page header and `MDB_meta` (152 bytes in LMDB 0.9), with room to spare.
    static let metaSize = 256
    static let slotSize = 1024
    static let magic: UInt32 = 0x504B_434C
    private static let checksummed = 40 + metaSize

    var counter: UInt64
    var sequence: UInt64
    var transactionID: UInt64
    var activeFile: Int
    var meta: [UInt8]

    /// The slot's bytes: magic `LCKP`, version 1, counter, sequence, transaction id, active file, meta length, meta,
    /// CRC-32C of all that.
    func encoded() -> [UInt8] {
        var slot = [UInt8](repeating: 0, count: Self.slotSize)
        slot.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: Self.magic.littleEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: UInt32(1).littleEndian, toByteOffset: 4, as: UInt32.self)
            raw.storeBytes(of: counter.littleEndian, toByteOffset: 8, as: UInt64.self)
            raw.storeBytes(of: sequence.littleEndian, toByteOffset: 16, as: UInt64.self)
            raw.storeBytes(of: transactionID.littleEndian, toByteOffset: 24, as: UInt64.self)
            raw.storeBytes(of: UInt32(activeFile).littleEndian, toByteOffset: 32, as: UInt32.self)
            raw.storeBytes(of: UInt32(Self.metaSize).littleEndian, toByteOffset: 36, as: UInt32.self)
            meta.withUnsafeBytes {
                raw.baseAddress!.advanced(by: 40).copyMemory(from: $0.baseAddress!, byteCount: Self.metaSize)
            }
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<Self.checksummed]))
            raw.storeBytes(of: crc.littleEndian, toByteOffset: Self.checksummed, as: UInt32.self)
        }
        return slot
    }

    /// The checkpoint in a slot, or `nil` when the slot is empty or torn.
    init?(slot: ArraySlice<UInt8>) {
        guard slot.count >= Self.slotSize else { return nil }
        let bytes = Array(slot)
        let parsed: JournalCheckpoint? = bytes.withUnsafeBytes { raw in
            func field<T: FixedWidthInteger>(_ at: Int, _ type: T.Type) -> T {
                T(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: T.self))
            }
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<Self.checksummed]))
            guard field(0, UInt32.self) == Self.magic, field(4, UInt32.self) == 1,
                field(36, UInt32.self) == UInt32(Self.metaSize), field(Self.checksummed, UInt32.self) == crc,
                field(32, UInt32.self) < 2
            else { return nil }
            return JournalCheckpoint(
                counter: field(8, UInt64.self), sequence: field(16, UInt64.self),
                transactionID: field(24, UInt64.self), activeFile: Int(field(32, UInt32.self)),
                meta: Array(bytes[40..<40 + Self.metaSize]))
        }
        guard let parsed else { return nil }
        self = parsed
    }

    init(counter: UInt64, sequence: UInt64, transactionID: UInt64, activeFile: Int, meta: [UInt8]) {
        self.counter = counter
        self.sequence = sequence
        self.transactionID = transactionID
        self.activeFile = activeFile
        self.meta = meta
    }
}

/// The fields of an LMDB meta page that the journal reads (LMDB 0.9's `MDB_page` header, then `MDB_meta`).
enum LMDBMetaPage {
    static let magic: UInt32 = 0xBEEF_C0DE
    /// `mm_magic`, after the 16-byte page header.
    static let magicOffset = 16
    /// `mm_dbs[FREE_DBI].md_pad`, which LMDB uses for the page size.
    static let pageSizeOffset = 40
    /// `mm_txnid`.
    static let transactionIDOffset = 144

    /// The transaction id of a meta page's bytes, or `nil` when they are not a meta page.
    static func transactionID(_ page: [UInt8]) -> UInt64? {
        guard page.count >= transactionIDOffset + 8 else { return nil }
        return page.withUnsafeBytes { raw in
            guard UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: magicOffset, as: UInt32.self)) == magic
            else { return nil }
            return UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: transactionIDOffset, as: UInt64.self))
        }
    }

    /// The page size a meta page records.
    static func pageSize(_ page: [UInt8]) -> Int {
        page.withUnsafeBytes {
            Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: pageSizeOffset, as: UInt32.self)))
        }
    }
}

/// A file opened for the journal, with the few calls it needs, each retried on `EINTR` and checked.
struct JournalFile {
    let descriptor: Int32
    let path: String

    static func open(_ path: String) throws -> JournalFile {
        let descriptor = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw LMDBError(code: errno, operation: "open \(path)") }
        return JournalFile(descriptor: descriptor, path: path)
    }

    func close() { _ = Glibc.close(descriptor) }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        var written = 0
        while written < bytes.count {
            let count = pwrite(descriptor, bytes.baseAddress! + written, bytes.count - written, off_t(offset + written))
            if count < 0 {
                if errno == EINTR { continue }
                throw LMDBError(code: errno, operation: "write \(path)")
            }
            if count == 0 { throw LMDBError(code: EIO, operation: "write \(path): nothing written") }
            written += count
        }
    }

    func write(_ bytes: [UInt8], at offset: Int) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }

    func sync() throws {
        while fdatasync(descriptor) != 0 {
            if errno == EINTR { continue }
            throw LMDBError(code: errno, operation: "fdatasync \(path)")
        }
    }

    func read(count: Int, at offset: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var total = 0
        while total < count {
            let got = bytes.withUnsafeMutableBytes {
                pread(descriptor, $0.baseAddress! + total, count - total, off_t(offset + total))
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw LMDBError(code: errno, operation: "read \(path)")
            }
            if got == 0 { break }
            total += got
        }
        return Array(bytes[0..<total])
    }

    func size() throws -> Int {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw LMDBError(code: errno, operation: "stat \(path)") }
        return Int(status.st_size)
    }

    func readAll() throws -> [UInt8] { try read(count: try size(), at: 0) }

    /// Makes a directory's entries durable (a created or renamed file).
    static func syncDirectory(_ path: String) throws {
        let descriptor = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw LMDBError(code: errno, operation: "open \(path)") }
        defer { _ = Glibc.close(descriptor) }
        guard fsync(descriptor) == 0 else { throw LMDBError(code: errno, operation: "fsync \(path)") }
    }
}
