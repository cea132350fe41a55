import Foundation
import LoglineCore
import LoglineLMDB
import Testing

@testable import LoglineLog

/// A configuration that writes the stream index in bulk every `batch` entries, `chunk` entries a commit, keeping
/// the last versions of about `heads` streams whose entries it wrote (the defaults when `nil`).
private func indexBatchConfiguration(_ batch: Int, chunk: Int? = nil, heads: Int? = nil)
    -> LMDBEventLog.Configuration
{
    var configuration = LMDBEventLog.Configuration()
    configuration.streamIndexBatch = batch
    if let chunk { configuration.streamIndexChunk = chunk }
    if let heads { configuration.streamHeadCacheCapacity = heads }
    return configuration
}

/// Sets `meta` entries of a closed store straight through LMDB (`nil` deletes).
private func setMeta(_ path: String, _ entries: [String: [UInt8]?]) throws {
    let environment = try LMDBEnvironment(directory: path)
    defer { environment.close() }
    let meta = try environment.openDatabase(named: "meta")
    try environment.write { transaction in
        for (key, value) in entries {
            if let value {
                try transaction.put(meta, key: Array(key.utf8), value: value)
            } else {
                _ = try transaction.delete(meta, key: Array(key.utf8))
            }
        }
    }
}

/// The `format` entry of a closed store's `meta`, straight through LMDB.
private func storedFormat(_ path: String) throws -> [UInt8]? {
    let environment = try LMDBEnvironment(directory: path)
    defer { environment.close() }
    let meta = try environment.openDatabase(named: "meta")
    return try environment.read { try $0.get(meta, key: Array("format".utf8)).map { Array($0) } }
}

/// The `stream_events` entries of a closed store, straight through LMDB.
private func storedIndexEntryCount(_ path: String) throws -> Int {
    let environment = try LMDBEnvironment(directory: path)
    defer { environment.close() }
    let streamEvents = try environment.openDatabase(named: "stream_events")
    return try environment.read { transaction in
        try transaction.withCursor(streamEvents) { cursor in
            var count = 0
            var entry = try cursor.first()
            while entry != nil {
                count += 1
                entry = try cursor.next()
            }
            return count
        }
    }
}

@Suite("PendingStreamIndex: the stream-index entries not yet in stream_events")
struct PendingStreamIndexTests {
    private let key = StreamKey(Array("order\u{0}1\u{0}".utf8))

    @Test("a reader's view keeps the entries after its snapshot's indexed_through and up to its head")
    func snapshotWindow() {
        var index = PendingStreamIndex(indexedThrough: 10)
        index.add([
            .init(streamKey: key, version: 4, position: 11), .init(streamKey: key, version: 5, position: 13),
            .init(streamKey: key, version: 6, position: 20),
        ])
        #expect(index.count == 3)
        #expect(index.lastVersion(of: key) == 6)
        #expect(index.lastVersion(of: StreamKey(Array("other\u{0}1\u{0}".utf8))) == nil)

        let all = index.entries(of: key, from: 1, after: 10, through: 20)
        #expect(all?.firstVersion == 4)
        #expect(all.map { Array($0.positions) } == [11, 13, 20])
        // A snapshot that does not have position 20 yet.
        let older = index.entries(of: key, from: 1, after: 10, through: 19)
        #expect(older.map { Array($0.positions) } == [11, 13])
        // A snapshot whose stream_events already holds position 11 (a bulk write it sees, not yet forgotten here).
        let newer = index.entries(of: key, from: 1, after: 11, through: 20)
        #expect(newer?.firstVersion == 5)
        #expect(newer.map { Array($0.positions) } == [13, 20])
        // From a version.
        let fromSix = index.entries(of: key, from: 6, after: 10, through: 20)
        #expect(fromSix?.firstVersion == 6)
        #expect(fromSix.map { Array($0.positions) } == [20])
        #expect(index.entries(of: key, from: 7, after: 10, through: 20) == nil)
        #expect(index.entries(of: key, from: 1, after: 20, through: 20) == nil)
    }

    @Test("entries come out sorted as stream_events sorts them, and are forgotten once written")
    func sortingAndForgetting() {
        let other = StreamKey(Array("apple\u{0}9\u{0}".utf8))
        var index = PendingStreamIndex(indexedThrough: 0)
        index.add([.init(streamKey: key, version: 1, position: 1), .init(streamKey: other, version: 3, position: 2)])
        index.add([.init(streamKey: key, version: 2, position: 3)])
        let sorted = index.sortedEntries(adding: [.init(streamKey: other, version: 4, position: 4)])
        #expect(sorted.map(\.position) == [2, 4, 1, 3])
        index.removeAll(indexedThrough: 4)
        #expect(index.count == 0)
        #expect(index.indexedThrough == 4)
        #expect(index.lastVersion(of: key) == nil)
    }

    @Test("a bulk write goes in chunks, in key order, and its entries leave once the last chunk is committed")
    func bulkWriteInChunks() throws {
        let other = StreamKey(Array("apple\u{0}9\u{0}".utf8))
        var index = PendingStreamIndex(indexedThrough: 0, headCapacity: 100)
        index.add([
            .init(streamKey: key, version: 1, position: 1), .init(streamKey: other, version: 5, position: 2),
            .init(streamKey: key, version: 2, position: 3),
        ])
        #expect(index.nextChunk(threshold: 4, size: 2) == nil)
        let offered = index.nextChunk(threshold: 3, size: 2)
        let first = try #require(offered)
        #expect(first.entries.map(\.position) == [2, 1])
        #expect(first.through == 3)
        #expect(!first.completes)
        // A commit during the bulk write adds an entry after it.
        index.add([.init(streamKey: key, version: 3, position: 4)])
        // Until its commit succeeds, a chunk is offered again.
        #expect(index.nextChunk(threshold: 3, size: 2)?.end == first.end)
        index.chunkCommitted(first)
        // Once under way, the write goes on whatever is pending.
        let next = index.nextChunk(threshold: 100, size: 2)
        let second = try #require(next)
        #expect(second.entries.map(\.position) == [3])
        #expect(second.completes)
        #expect(index.indexedThrough == 0)
        #expect(index.count == 4)
        index.chunkCommitted(second)
        #expect(index.flush == nil)
        #expect(index.indexedThrough == 3)
        #expect(index.count == 1)
        // `key` keeps its entry after the write; `other` is known from the heads.
        #expect(index.lastVersion(of: key) == 3)
        #expect(index.lastVersion(of: other) == nil)
        #expect(index.knownVersion(of: other) == 5)
        let remaining = index.entries(of: key, from: 1, after: 3, through: 4)
        #expect(remaining?.firstVersion == 3)
        #expect(remaining.map { Array($0.positions) } == [4])
        #expect(index.nextChunk(threshold: 2, size: 2) == nil)
        // The close writes the rest.
        index.removeAll(indexedThrough: 4)
        #expect(index.lastVersion(of: key) == nil)
        #expect(index.knownVersion(of: key) == 3)
    }

    @Test("without a capacity no written version is kept")
    func noHeadsWithoutCapacity() {
        var index = PendingStreamIndex(indexedThrough: 0)
        index.add([.init(streamKey: key, version: 1, position: 1)])
        index.removeAll(indexedThrough: 1)
        #expect(index.knownVersion(of: key) == nil)
        #expect(index.heads.count == 0)
    }
}

@Suite("StreamHeadCache: the last versions of written streams, in two generations")
struct StreamHeadCacheTests {
    private func key(_ id: Int) -> StreamKey { StreamKey(Array("order\u{0}\(id)\u{0}".utf8)) }

    @Test("a full generation becomes the older one; the generation before it is forgotten")
    func generations() {
        var cache = StreamHeadCache(capacity: 6)
        #expect(cache.generationSize == 3)
        cache.record(1, of: key(1))
        cache.record(1, of: key(2))
        #expect(cache.count == 2)
        cache.record(1, of: key(3))  // the newer generation is full: it is now the older one
        cache.record(1, of: key(4))
        cache.record(1, of: key(5))
        #expect(cache.count == 5)
        cache.record(1, of: key(6))  // full again: 1, 2 and 3 are forgotten
        #expect(cache.version(of: key(1)) == nil)
        #expect(cache.version(of: key(3)) == nil)
        #expect(cache.version(of: key(4)) == 1)
        #expect(cache.count == 3)
    }

    @Test("a stream found in the older generation moves to the newer one and stays")
    func foundStreamsStay() {
        var cache = StreamHeadCache(capacity: 4)
        cache.record(7, of: key(1))
        cache.record(1, of: key(2))  // rotates: 1 and 2 are older
        #expect(cache.version(of: key(1)) == 7)  // 1 moves to the newer generation
        cache.record(1, of: key(3))  // rotates: 1 and 3 are older, 2 is forgotten
        #expect(cache.version(of: key(2)) == nil)
        #expect(cache.version(of: key(1)) == 7)
    }

    @Test("a newer version replaces the one in either generation, and the older one never comes back")
    func newerVersionsWin() {
        var cache = StreamHeadCache(capacity: 4)
        cache.record(1, of: key(1))
        cache.record(1, of: key(2))  // rotates: 1 is older, at version 1
        cache.record(5, of: key(1))  // newer, at version 5
        #expect(cache.version(of: key(1)) == 5)
        cache.record(1, of: key(3))  // rotates: 1 at 5 and 3 are older, 1 at version 1 is forgotten
        #expect(cache.version(of: key(1)) == 5)  // and 1 moves to the newer generation again
        cache.record(1, of: key(4))  // rotates: 1 at 5 and 4 are older
        cache.record(1, of: key(5))
        cache.record(1, of: key(6))  // rotates: 1 is forgotten
        #expect(cache.version(of: key(1)) == nil)
    }

    @Test("a capacity of 0 or 1 keeps nothing")
    func noCapacity() {
        for capacity in [0, 1] {
            var cache = StreamHeadCache(capacity: capacity)
            cache.record(3, of: key(1))
            #expect(cache.version(of: key(1)) == nil)
            #expect(cache.count == 0)
        }
    }
}

@Suite("LMDBEventLog: the stream index written in bulk", .timeLimit(.minutes(2)))
struct StreamIndexTests {
    /// With no stream heads kept, every version not pending comes from `stream_events`; with 4 (two generations of
    /// two), streams come and go from the cache; with 1,000, every stream stays in it. A chunk of 2 or 1 spreads
    /// each bulk write over several commits, with reads and appends between them.
    @Test(
        "reads and expectations see every version while the index is written in bulk every few events",
        arguments: zip([0, 4, 1000], [4096, 2, 1]))
    func readsAcrossBulkWrites(heads: Int, chunk: Int) async throws {
        try await withLog(configuration: indexBatchConfiguration(7, chunk: chunk, heads: heads)) { log, _ in
            try await appendAndReadBack(log)
        }
    }

    /// Appends to five streams in rounds, checking every stream's reads and version after each append.
    private func appendAndReadBack(_ log: LMDBEventLog) async throws {
        let streams = (0..<5).map { stream("order", "o\($0)") }
        var versions = [StreamName: StreamVersion]()
        for round in 0..<12 {
            for (offset, target) in streams.enumerated() where (round + offset) % 3 != 0 {
                let count = (round + offset) % 4 == 0 ? 3 : 1
                let current = versions[target, default: 0]
                // A stale expectation conflicts, with the actual version, whether that is pending or indexed.
                if current > 0 {
                    let stale = await log.outcome(request(target, .exact(current - 1), event()))
                    var actual: StreamVersion?
                    if case .wrongExpectedVersion(_, _, let reported)? = stale.failure { actual = reported }
                    #expect(actual == current, "a stale expectation on \(target): \(stale)")
                }
                let events = (0..<count).map { _ in event("step", data: #"{"round":\#(round)}"#) }
                let result = try await log.append(request(target, .exact(current), events: events))
                #expect(result.events.map(\.version) == Array((current + 1)...(current + UInt64(count))))
                versions[target] = current + UInt64(count)
                for checked in streams {
                    let expected = versions[checked, default: 0]
                    #expect(try log.streamVersion(checked) == expected)
                    let read = try log.everything(in: checked)
                    #expect(read.map(\.version) == Array(0..<expected).map { $0 + 1 })
                    #expect(read.allSatisfy { $0.stream == checked })
                    // Reading from a version in the middle.
                    if expected >= 2 {
                        let tail = try log.readStream(checked, from: expected - 1, limit: 10)
                        #expect(tail.map(\.version) == [expected - 1, expected])
                    }
                }
                // Consistent between any two commits, in the middle of a bulk write too.
                #expect(try LogChecker(log: log).check().problems == [])
            }
        }
        let report = try LogChecker(log: log).check()
        #expect(report.problems == [])
        #expect(report.streamCount == 5)
    }

    @Test("close writes the pending entries, so a stopped store's stream_events indexes every event")
    func closeWritesThePendingEntries() async throws {
        try await withTemporaryDirectory { path in
            let log = try LMDBEventLog(
                directory: path, configuration: indexBatchConfiguration(1000), logger: testLogger)
            for index in 0..<20 { _ = try await log.append(request(stream("order", "o\(index % 6)"), event())) }
            log.close()
            #expect(try storedIndexEntryCount(path) == 20)
        }
    }

    /// 34 events with whole bulk writes: three (of the first 10, 20 and 30 entries, each in one commit), and 4
    /// entries pending at the backup. 33 events with chunks of 3: the third bulk write, of entries 21 to 30, has
    /// written 9 of them beyond `indexed_through` 20 (in the commits of events 31 to 33).
    @Test(
        "a copy taken with entries pending, or in the middle of a bulk write, is indexed when it opens",
        arguments: [(chunk: 4096, events: 34, indexed: 30), (chunk: 3, events: 33, indexed: 29)])
    func openIndexesWhatWasPending(_ shape: (chunk: Int, events: Int, indexed: Int)) async throws {
        try await withTemporaryDirectory { path in
            try await withLog(configuration: indexBatchConfiguration(10, chunk: shape.chunk)) { log, _ in
                for index in 0..<shape.events {
                    _ = try await log.append(request(stream("order", "o\(index % 4)"), event()))
                }
                _ = try log.backup(to: path + "/copy")
            }
            // The copy is what a kill -9 leaves.
            #expect(try storedIndexEntryCount(path + "/copy") == shape.indexed)
            let copy = try LMDBEventLog(directory: path + "/copy", logger: testLogger)
            defer { copy.close() }
            #expect(try LogChecker(log: copy).check().problems == [])
            for id in 0..<4 {
                let target = stream("order", "o\(id)")
                #expect(try copy.streamVersion(target) == UInt64((shape.events - id + 3) / 4))
                #expect(
                    try copy.everything(in: target).map(\.position)
                        == Array(stride(from: id + 1, through: shape.events, by: 4)).map { UInt64($0) })
            }
            let next = try await copy.append(request(stream("order", "o0"), .exact(9), event()))
            #expect(next.events.map(\.version) == [10])
        }
    }

    @Test(
        "readers racing the bulk writes always see a stream whole, up to at least its acknowledged version",
        arguments: [4096, 1])
    func readersRaceBulkWrites(chunk: Int) async throws {
        try await withLog(configuration: indexBatchConfiguration(3, chunk: chunk)) { log, _ in
            let streams = (0..<3).map { stream("race", "r\($0)") }
            let acknowledged = Locked<[UInt64]>([0, 0, 0])
            let done = Locked<Bool>(false)
            let problems = Locked<[String]>([])
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    defer { done.withLock { $0 = true } }
                    for round in 0..<150 {
                        let which = round % 3
                        let result = try await log.append(request(streams[which], event()))
                        acknowledged.withLock { $0[which] = result.events[0].version }
                    }
                }
                for reader in 0..<2 {
                    group.addTask {
                        var reads = 0
                        while !done.withLock({ $0 }) || reads < 10 {
                            let which = (reads + reader) % 3
                            let floor = acknowledged.withLock { $0[which] }
                            let versions = try log.everything(in: streams[which]).map(\.version)
                            if versions != Array(0..<UInt64(versions.count)).map({ $0 + 1 })
                                || UInt64(versions.count) < floor
                            {
                                problems.withLock { $0.append("read \(versions) with \(floor) acknowledged") }
                            }
                            reads += 1
                            await Task.yield()
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(problems.withLock { $0 } == [])
            #expect(try streams.map { try log.streamVersion($0) } == [50, 50, 50])
        }
    }

    @Test("a store of format 1 or 2 opens and becomes format 3; an unknown format is refused")
    func formats() async throws {
        try await withTemporaryDirectory { path in
            let log = try LMDBEventLog(directory: path, logger: testLogger)
            for index in 0..<6 { _ = try await log.append(request(stream("order", "o\(index % 2)"), event())) }
            log.close()
            #expect(try storedFormat(path) == [3])
            // What a server of format 1 left: every event indexed, no indexed_through.
            try setMeta(path, ["format": [1], "indexed_through": nil])
            let upgraded = try LMDBEventLog(directory: path, logger: testLogger)
            #expect(try upgraded.everything(in: stream("order", "o1")).map(\.position) == [2, 4, 6])
            #expect(try LogChecker(log: upgraded).check().problems == [])
            upgraded.close()
            #expect(try storedFormat(path) == [3])
            // What a server of format 2 left (with a journal given by this one since).
            try setMeta(path, ["format": [2]])
            let fromTwo = try LMDBEventLog(directory: path, logger: testLogger)
            #expect(try fromTwo.everything(in: stream("order", "o0")).map(\.position) == [1, 3, 5])
            fromTwo.close()
            #expect(try storedFormat(path) == [3])

            try setMeta(path, ["format": [9]])
            #expect(throws: OpenError.self) { _ = try LMDBEventLog(directory: path, logger: testLogger) }
        }
    }
}
