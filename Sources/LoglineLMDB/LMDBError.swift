import CLMDB

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An error returned by LMDB, with its code and LMDB's own message.
public struct LMDBError: Error, Hashable, Sendable, CustomStringConvertible {
    /// LMDB's return code (an `MDB_*` constant or an `errno` value).
    public let code: Int32
    /// What was being done, for the message.
    public let operation: String

    /// Creates an error from a return code.
    /// - Parameters:
    ///   - code: The return code.
    ///   - operation: What was being done.
    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    /// The map is full: the environment must grow.
    public var isMapFull: Bool { code == MDB_MAP_FULL }
    /// The disk, a disk quota or the process's file-size limit (`EFBIG`, with `SIGXFSZ` ignored) is full.
    public var isDiskFull: Bool { code == ENOSPC || code == EDQUOT || code == EFBIG }

    /// `operation: LMDB's message (code)`.
    public var description: String {
        "\(operation): \(String(cString: mdb_strerror(code))) (\(code))"
    }

    @inline(__always)
    static func check(_ code: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
        if code != 0 { throw LMDBError(code: code, operation: operation()) }
    }
}
