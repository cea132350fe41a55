import LoglineCore

/// The last versions of streams whose entries the writer has written to `stream_events`, kept so that an append to
/// such a stream need not look its version up in the B-tree.
///
/// Why it exists: an append checks its expectation against the stream's current version. For a stream with pending
/// entries (``PendingStreamIndex``) that is in memory; for any other, it was a cursor seek into `stream_events`. With
/// many streams those seeks land on leaf pages all over the file, pages that the bulk writes have just moved and that
/// the resident-set limit hands back, so each one is a page fault. With 100,000 streams and pipelined appends, the
/// writer spent a third of its time on them once the store held a few million events, and appends slowed to a
/// third of their speed on an empty store. KurrentDB keeps the same cache (its stream info cache, by default
/// 100,000 streams).
///
/// What it holds is never stale: the writer records a stream's version here only when a commit that wrote the
/// stream's entries up to that version to `stream_events` has succeeded, and only the writer appends. A stream's
/// later entries are pending, and ``PendingStreamIndex/knownVersion(of:)`` looks there first.
///
/// It keeps about `capacity` streams in two generations: recorded and found versions go to the newer one; when that
/// is full it becomes the older one and the oldest generation is forgotten. A stream used in either generation
/// stays, so the streams in use stay, without the bookkeeping of an exact least-recently-used order.
struct StreamHeadCache {
    /// The most streams a generation holds: half the capacity.
    let generationSize: Int
    private var newer: [StreamKey: StreamVersion] = [:]
    private var older: [StreamKey: StreamVersion] = [:]

    /// A cache of about `capacity` streams; 0 keeps none.
    init(capacity: Int) {
        generationSize = max(0, capacity / 2)
    }

    /// How many streams it holds (a stream in both generations counts once).
    var count: Int { newer.count + older.keys.filter { newer[$0] == nil }.count }

    /// The stream's last version in `stream_events`, when it is known here; a stream found in the older
    /// generation moves to the newer one.
    mutating func version(of streamKey: StreamKey) -> StreamVersion? {
        if let version = newer[streamKey] { return version }
        guard let version = older.removeValue(forKey: streamKey) else { return nil }
        record(version, of: streamKey)
        return version
    }

    /// Records the stream's last version in `stream_events`, after the commit that wrote it.
    mutating func record(_ version: StreamVersion, of streamKey: StreamKey) {
        guard generationSize > 0 else { return }
        // An earlier version in the older generation is never handed out: the newer one is looked at first, and
        // it replaces the older one when it is full.
        newer[streamKey] = version
        if newer.count >= generationSize {
            older = newer
            newer = Dictionary(minimumCapacity: generationSize)
        }
    }
}
