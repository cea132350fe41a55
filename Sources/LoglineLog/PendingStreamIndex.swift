import Foundation
import LoglineCore

/// A stream's key in `stream_events` (``StorageLayout/streamKey(_:)``), as a dictionary key: hashed as one run of
/// bytes (an array of bytes hashes byte by byte, which showed in profiles of the writer), and ordered as LMDB
/// orders keys.
struct StreamKey: Hashable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    /// The first 16 bytes as two big-endian numbers, zero-padded: keys whose prefixes differ sort as their prefixes
    /// do, so that a sort compares two integers for most pairs and the bytes only on a tie.
    var sortPrefix: (UInt64, UInt64) {
        var high: UInt64 = 0
        var low: UInt64 = 0
        for index in 0..<16 {
            let byte = index < bytes.count ? UInt64(bytes[index]) : 0
            if index < 8 { high = high << 8 | byte } else { low = low << 8 | byte }
        }
        return (high, low)
    }

    /// Whether this key sorts before `other` in `stream_events` (LMDB's default order: `memcmp`, then length).
    func precedes(_ other: StreamKey) -> Bool {
        bytes.withUnsafeBytes { left in
            other.bytes.withUnsafeBytes { right in
                let common = min(left.count, right.count)
                let order = common == 0 ? 0 : memcmp(left.baseAddress!, right.baseAddress!, common)
                return order != 0 ? order < 0 : left.count < right.count
            }
        }
    }
}

/// The `stream_events` entries of committed events that are not written to `stream_events` yet.
///
/// Writing each event's `stream_events` entry in the commit that appends it costs one B-tree leaf page per stream
/// the commit touches: with many streams those pages lie all over the file, and a commit of 500 events to 500
/// streams writes and syncs 500 random pages (2 MB) for 500 events of 100 bytes. So, as KurrentDB keeps its
/// newest index entries in a memtable, the writer keeps the entries of recent commits here, and writes them to
/// `stream_events` in bulk, sorted, inside one group commit of many ( ``LMDBEventLog/Configuration/streamIndexBatch``
/// entries), together with the position they reach (`meta` key `indexed_through`). Every page of the stream
/// index is then written once per bulk rather than once per commit.
///
/// Nothing here needs to be durable: the events are, in `events`, with their stream and version. When the
/// process stops without writing these entries, the next open indexes every event after `indexed_through`
/// from `events` (``LMDBEventLog`` does so before it takes appends).
///
/// Readers see a stream as `stream_events` in their snapshot (every event up to the snapshot's `indexed_through`)
/// followed by the entries here with positions after that and up to the snapshot's head. Entries are added right
/// after their commit, before any append of it is acknowledged, so an acknowledged event is always found.
///
/// The bulk write is spread over several group commits (a ``Flush``), so that no one commit pays for all of it: with
/// many streams each entry lands on its own leaf page, and writing 16,384 of them in one commit held every append of
/// it for about a tenth of a second. Once ``count`` reaches the threshold, the entries pending then (every entry up
/// to ``Flush/through``) are sorted, and each commit writes the next chunk of them; the one that writes the last
/// chunk writes `indexed_through` too, and then they leave this index. Until then `stream_events` may hold some of
/// them beyond `indexed_through` as well as here: always a stream's next versions after those it had, so a reader
/// takes from here only the versions after the last one it found in `stream_events`.
struct PendingStreamIndex {
    /// One stream's pending entries: consecutive versions from `firstVersion`, at ascending positions.
    struct Stream {
        var firstVersion: StreamVersion
        var positions: [LogPosition]

        /// The version of the last entry.
        var lastVersion: StreamVersion { firstVersion + StreamVersion(positions.count) - 1 }
    }

    /// One entry: a stream's key, a version, the event's position.
    struct Entry {
        var streamKey: StreamKey
        var version: StreamVersion
        var position: LogPosition
    }

    /// A bulk write of the entries up to `through`, under way: in key order, the first `written` of them committed.
    struct Flush {
        let through: LogPosition
        let entries: [Entry]
        private(set) var written = 0

        init(through: LogPosition, entries: [Entry]) {
            self.through = through
            self.entries = entries
        }

        /// Marks the entries up to `end` committed.
        mutating func wrote(upTo end: Int) {
            precondition(end > written && end <= entries.count, "chunks are committed in order")
            written = end
        }
    }

    /// The next entries of a bulk write for a group commit to write: the commit that writes the last ones
    /// (`completes`) writes `indexed_through` = `through` too.
    struct Chunk {
        let entries: ArraySlice<Entry>
        let through: LogPosition
        /// Where the chunk ends in ``Flush/entries``, for ``PendingStreamIndex/chunkCommitted(_:)``.
        let end: Int
        let completes: Bool
    }

    /// `stream_events` holds the entries of every event up to this position; this index those after it.
    private(set) var indexedThrough: LogPosition
    /// The bulk write under way, if any.
    private(set) var flush: Flush?
    /// The position of the last entry added.
    private var lastPosition: LogPosition
    /// The pending entries by stream key.
    private(set) var streams: [StreamKey: Stream] = [:]
    /// How many entries are pending.
    private(set) var count = 0
    /// The last versions of streams whose entries are all in `stream_events`, as far as they are kept.
    private(set) var heads: StreamHeadCache

    /// - Parameters:
    ///   - indexedThrough: The position through which `stream_events` holds every entry.
    ///   - headCapacity: About how many streams' last versions to keep once their entries are written
    ///     (``StreamHeadCache``).
    init(indexedThrough: LogPosition, headCapacity: Int = 0) {
        self.indexedThrough = indexedThrough
        self.lastPosition = indexedThrough
        self.heads = StreamHeadCache(capacity: headCapacity)
    }

    /// Adds the entries of a commit, in the order they were staged (each stream's versions ascending).
    mutating func add(_ entries: [Entry]) {
        for entry in entries {
            if let index = streams.index(forKey: entry.streamKey) {
                precondition(
                    entry.version == streams.values[index].lastVersion + 1, "pending stream versions are consecutive")
                streams.values[index].positions.append(entry.position)
            } else {
                streams[entry.streamKey] = Stream(firstVersion: entry.version, positions: [entry.position])
            }
            lastPosition = max(lastPosition, entry.position)
        }
        count += entries.count
    }

    /// The entries for the next group commit to write to `stream_events`: the next chunk of the bulk write under
    /// way, or the first of a new one when `threshold` entries are pending; `nil` when there is nothing to write.
    /// - Parameters:
    ///   - threshold: How many entries must be pending for a bulk write to start.
    ///   - size: The most entries in a chunk.
    mutating func nextChunk(threshold: Int, size: Int) -> Chunk? {
        if flush == nil {
            guard count > 0, count >= threshold else { return nil }
            flush = Flush(through: lastPosition, entries: sortedEntries(adding: []))
        }
        guard let flush else { return nil }
        let end = min(flush.written + max(1, size), flush.entries.count)
        return Chunk(
            entries: flush.entries[flush.written..<end], through: flush.through, end: end,
            completes: end == flush.entries.count)
    }

    /// Notes that the commit that wrote `chunk` succeeded. After the last chunk, the bulk write's entries leave
    /// this index (their streams' last versions go to ``heads`` when no later entry is pending), and
    /// ``indexedThrough`` moves to its end.
    mutating func chunkCommitted(_ chunk: Chunk) {
        guard var flush, flush.through == chunk.through else {
            preconditionFailure("a chunk is committed while its bulk write is under way")
        }
        flush.wrote(upTo: chunk.end)
        guard chunk.completes else {
            self.flush = flush
            return
        }
        self.flush = nil
        let through = flush.through
        var remaining: [StreamKey: Stream] = [:]
        for (streamKey, stream) in streams {
            var written = 0
            while written < stream.positions.count, stream.positions[written] <= through { written += 1 }
            count -= written
            if written == stream.positions.count {
                heads.record(stream.lastVersion, of: streamKey)
            } else {
                remaining[streamKey] = Stream(
                    firstVersion: stream.firstVersion + StreamVersion(written),
                    positions: written == 0 ? stream.positions : Array(stream.positions[written...]))
            }
        }
        streams = remaining
        indexedThrough = through
    }

    /// The last pending version of a stream, if it has pending entries.
    func lastVersion(of streamKey: StreamKey) -> StreamVersion? {
        streams[streamKey]?.lastVersion
    }

    /// A stream's current version when it is known without reading `stream_events`: its last pending entry's, or
    /// else its last written entry's, when ``heads`` keeps it.
    mutating func knownVersion(of streamKey: StreamKey) -> StreamVersion? {
        lastVersion(of: streamKey) ?? heads.version(of: streamKey)
    }

    /// Every pending entry and then `more`, sorted by stream key and version: the order of `stream_events`, so that
    /// writing them visits each leaf page once, in file order.
    func sortedEntries(adding more: [Entry]) -> [Entry] {
        // Each stream's entries are in version order already, the pending ones before `more`'s: only the streams
        // need sorting.
        var added: [StreamKey: [Entry]] = [:]
        for entry in more { added[entry.streamKey, default: []].append(entry) }
        var keys = Array(streams.keys)
        keys.append(contentsOf: added.keys.filter { streams[$0] == nil })
        var order = keys.indices.map { (prefix: keys[$0].sortPrefix, index: $0) }
        order.sort { left, right in
            left.prefix != right.prefix ? left.prefix < right.prefix : keys[left.index].precedes(keys[right.index])
        }
        var all: [Entry] = []
        all.reserveCapacity(count + more.count)
        for key in order.lazy.map({ keys[$0.index] }) {
            if let stream = streams[key] {
                for (offset, position) in stream.positions.enumerated() {
                    all.append(
                        Entry(streamKey: key, version: stream.firstVersion + StreamVersion(offset), position: position))
                }
            }
            if let entries = added[key] { all.append(contentsOf: entries) }
        }
        return all
    }

    /// Forgets every pending entry: a commit wrote them all, and every entry up to `position`, to `stream_events`
    /// (the store's close, which ends any bulk write under way).
    mutating func removeAll(indexedThrough position: LogPosition) {
        for (streamKey, stream) in streams { heads.record(stream.lastVersion, of: streamKey) }
        streams = [:]
        count = 0
        flush = nil
        indexedThrough = position
    }

    /// A stream's pending entries as a reader with a snapshot sees them: those after the snapshot's
    /// `indexed_through` (earlier ones are in its `stream_events`; some later ones may be too, written by a bulk
    /// write under way) and up to its head (later ones are not in its `events`), from `version` on.
    /// - Returns: The first version and the positions from it; `nil` when there is none.
    func entries(
        of streamKey: StreamKey, from version: StreamVersion, after snapshotIndexedThrough: LogPosition,
        through snapshotHead: LogPosition
    ) -> (firstVersion: StreamVersion, positions: ArraySlice<LogPosition>)? {
        guard let stream = streams[streamKey] else { return nil }
        var start = stream.positions.startIndex
        if version > stream.firstVersion {
            start = min(Int(clamping: version - stream.firstVersion), stream.positions.count)
        }
        while start < stream.positions.count, stream.positions[start] <= snapshotIndexedThrough { start += 1 }
        var end = stream.positions.count
        while end > start, stream.positions[end - 1] > snapshotHead { end -= 1 }
        guard start < end else { return nil }
        return (stream.firstVersion + StreamVersion(start), stream.positions[start..<end])
    }
}
