import LoglineCore
import LoglineLog
import LoglineModuleAPI

/// How the host keeps views, checkpoints and parked events in the log's state tables.
///
/// Tables (generation `g` lets a rebuild fill a shadow copy while queries read the active one):
/// - `checkpoint`: module → position (8 bytes) and events processed (8 bytes), big-endian.
/// - `generation`: module → its active generation (8 bytes; absent means 1).
/// - `rebuild`: module → the rebuild's position and events processed, while a rebuild runs.
/// - `v/<view>/<g>`: document key → the document's JSON.
/// - `x/<view>/<g>`: field, 0, value, 0, document key → empty: the secondary indexes.
/// - `count`: `<view>/<g>` → the number of documents (8 bytes).
/// - `parked/<module>`: position (8 bytes) → the parked event's record (JSON).
/// - `rebuild-parked/<module>`: what a running rebuild parked; it replaces `parked/<module>` at the swap.
/// - `cleanup`: `<module>/<g>` → a generation whose tables are being deleted.
enum ViewStorage {
    static let checkpointTable = "checkpoint"
    static let generationTable = "generation"
    static let rebuildTable = "rebuild"
    static let countTable = "count"
    static let cleanupTable = "cleanup"

    static func documentTable(_ view: String, generation: UInt64) -> String { "v/\(view)/\(generation)" }
    static func indexTable(_ view: String, generation: UInt64) -> String { "x/\(view)/\(generation)" }
    static func countKey(_ view: String, generation: UInt64) -> [UInt8] { Array("\(view)/\(generation)".utf8) }
    static func parkedTable(_ module: String) -> String { "parked/\(module)" }
    static func rebuildParkedTable(_ module: String) -> String { "rebuild-parked/\(module)" }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    static func bigEndian(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> UInt64(56 - $0 * 8)) }
    }

    static func readBigEndian(_ bytes: [UInt8], at offset: Int = 0) -> UInt64 {
        guard bytes.count >= offset + 8 else { return 0 }
        return bytes[offset..<(offset + 8)].reduce(0) { ($0 << 8) | UInt64($1) }
    }

    /// A checkpoint record: position and events processed.
    struct Checkpoint: Hashable, Sendable {
        var position: LogPosition
        var processed: UInt64

        var bytes: [UInt8] { bigEndian(position) + bigEndian(processed) }

        init(position: LogPosition, processed: UInt64) {
            self.position = position
            self.processed = processed
        }

        init(bytes: [UInt8]?) {
            position = bytes.map { readBigEndian($0) } ?? 0
            processed = bytes.map { readBigEndian($0, at: 8) } ?? 0
        }
    }

    static func indexPrefix(field: String, value: String) -> [UInt8] {
        var key = Array(field.utf8)
        key.append(0)
        key.append(contentsOf: value.utf8)
        key.append(0)
        return key
    }

    static func indexKey(field: String, value: String, documentKey: String) -> [UInt8] {
        indexPrefix(field: field, value: value) + Array(documentKey.utf8)
    }
}
