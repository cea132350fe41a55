import Foundation
import Logging
import LoglineCore
import Testing

@testable import LoglineLMDB
@testable import LoglineLog

/// What the files of a store would hold after the machine crashed: the data file as of the last checkpoint, with
/// `pages` of the pages written since then reaching the disk (`nil`: every one), and the journal as it is (it is
/// synced before each commit).
private enum FlushedPages {
    case all
    case none
    case metaOnly
    case random(Double)
}

private let journalFiles = ["journal-0.wal", "journal-1.wal", "journal.checkpoint"]

/// Writes a crash image of `directory` into a new directory: `checkpointImage` is data.mdb as of the last
/// checkpoint; `pages` says which pages written since then reached the disk.
private func crashImage<G: RandomNumberGenerator>(
    of directory: String, environment: LMDBEnvironment, checkpointImage: [UInt8], pages: FlushedPages,
    using generator: inout G
) throws -> String {
    let image = try makeTemporaryDirectory()
    let current = try environment.withWritesHeld { () -> [UInt8] in
        for name in journalFiles {
            try FileManager.default.copyItem(atPath: directory + "/" + name, toPath: image + "/" + name)
        }
        return Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/data.mdb")))
    }
    let pageSize = 4096
    var data = checkpointImage
    if data.count < current.count { data += [UInt8](repeating: 0, count: current.count - data.count) }
    for page in 0..<current.count / pageSize {
        let range = page * pageSize..<(page + 1) * pageSize
        guard current[range] != data[range] else { continue }
        let flushed: Bool
        switch pages {
        case .all: flushed = true
        case .none: flushed = false
        case .metaOnly: flushed = page < 2
        case .random(let share): flushed = Double.random(in: 0..<1, using: &generator) < share
        }
        if flushed { data.replaceSubrange(range, with: current[range]) }
    }
    try Data(data).write(to: URL(fileURLWithPath: image + "/data.mdb"))
    return image
}

/// The files of `directory` as `kill -9` leaves them: everything written is in the page cache, so in the files.
/// Copied into a new directory while no write can start or commit.
private func killImage(of directory: String, environment: LMDBEnvironment) throws -> String {
    let image = try makeTemporaryDirectory()
    try environment.withWritesHeld {
        for name in journalFiles + ["data.mdb"] {
            try FileManager.default.copyItem(atPath: directory + "/" + name, toPath: image + "/" + name)
        }
    }
    return image
}

/// The two databases of ``Workload``, opened (created when missing).
private func workloadDatabases(_ environment: LMDBEnvironment) throws -> [String: LMDBDatabase] {
    ["a": try environment.openDatabase(named: "a"), "b": try environment.openDatabase(named: "b")]
}

/// Every entry of `database`, read through LMDB.
private func entries(of database: LMDBDatabase, in environment: LMDBEnvironment) throws -> [[UInt8]: [UInt8]] {
    try environment.read { transaction in
        try transaction.withCursor(database) { cursor in
            var found: [[UInt8]: [UInt8]] = [:]
            var entry = try cursor.first()
            while let (key, value) = entry {
                found[Array(key)] = Array(value)
                entry = try cursor.next()
            }
            return found
        }
    }
}

/// A deterministic generator, so that a failure can be replayed.
private struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private struct Aborted: Error {}

/// Two databases and what they should hold, changed by random journaled transactions that also delete, clear and
/// abort nested transactions, so that LMDB frees and reuses pages all the time.
private struct Workload {
    var expected: [String: [[UInt8]: [UInt8]]] = ["a": [:], "b": [:]]
    var generator: SplitMix

    mutating func run(_ transactions: Int, on environment: LMDBEnvironment, databases: [String: LMDBDatabase]) throws {
        for _ in 0..<transactions {
            var next = expected
            var generator = self.generator
            try environment.write { transaction in
                next = expected
                generator = self.generator
                for _ in 0..<20 {
                    let name = Bool.random(using: &generator) ? "a" : "b"
                    let key = Array("key-\(Int.random(in: 0..<400, using: &generator))".utf8)
                    let value = (0..<Int.random(in: 50..<300, using: &generator)).map { _ in
                        UInt8.random(in: 0...255, using: &generator)
                    }
                    try transaction.put(databases[name]!, key: key, value: value)
                    next[name]![key] = value
                }
                for _ in 0..<6 {
                    let key = Array("key-\(Int.random(in: 0..<400, using: &generator))".utf8)
                    if try transaction.delete(databases["a"]!, key: key) { next["a"]![key] = nil }
                }
                if Int.random(in: 0..<25, using: &generator) == 0 {
                    try transaction.clear(databases["b"]!)
                    next["b"] = [:]
                }
                // A nested transaction that fails leaves nothing behind, in the store or in the journal.
                _ = try? transaction.nested { child -> Void in
                    try child.put(databases["a"]!, key: Array("aborted".utf8), value: [1, 2, 3])
                    throw Aborted()
                }
            }
            expected = next
            self.generator = generator
        }
    }

    func check(_ environment: LMDBEnvironment) throws {
        for name in ["a", "b"] {
            let database = try environment.openDatabase(named: name)
            let found = try entries(of: database, in: environment)
            #expect(found.count == expected[name]!.count, "entries of \(name)")
            #expect(found == expected[name]!, "contents of \(name)")
        }
    }
}

private func journaledConfiguration(checkpointBytes: Int, interval: Duration) -> LMDBEnvironment.Configuration {
    var configuration = LMDBEnvironment.Configuration()
    configuration.writeAheadJournal = true
    configuration.journalCheckpointBytes = checkpointBytes
    configuration.journalCheckpointInterval = interval
    return configuration
}

/// A journaled environment in a new directory, with the workload's databases; closed and removed when `body`
/// returns (closing twice is harmless, so `body` may close it first). By default no checkpoint starts by itself.
private func withJournaledStore<T>(
    checkpointBytes: Int = 1 << 30, interval: Duration = .seconds(3600),
    _ body: (_ directory: String, _ environment: LMDBEnvironment, _ databases: [String: LMDBDatabase]) throws -> T
) throws -> T {
    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let environment = try LMDBEnvironment(
        directory: directory,
        configuration: journaledConfiguration(checkpointBytes: checkpointBytes, interval: interval))
    defer { environment.close() }
    return try body(directory, environment, try workloadDatabases(environment))
}

/// Checkpoints now and returns the data file as the checkpoint left it: what a crash image starts from.
private func checkpointedDataFile(of directory: String, environment: LMDBEnvironment) throws -> [UInt8] {
    try environment.withWritesHeld { try environment.checkpoint(environment.journal!) }
    return Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/data.mdb")))
}

/// Opens `directory` again and checks that it has nothing to replay and holds what `workload` expects.
private func expectCleanReopening(of directory: String, holding workload: Workload) throws {
    let reopened = try LMDBEnvironment(directory: directory)
    defer { reopened.close() }
    #expect(reopened.replayedJournalRecords == 0)
    try workload.check(reopened)
}

@Suite("Write-ahead journal")
struct WriteAheadJournalTests {
    @Test("a record reads back whole; the journal ends at a torn record, a damaged one or an older one")
    func recordsAndTheirEnd() throws {
        func record(_ sequence: UInt64, _ payloadByte: UInt8) -> [UInt8] {
            let recorder = JournalRecorder()
            [payloadByte, payloadByte].withUnsafeBytes { key in
                [UInt8](repeating: payloadByte, count: 100).withUnsafeBytes { value in
                    recorder.recordPut("events", key: key, value: value)
                }
                recorder.recordDelete("state", key: key)
            }
            recorder.recordClear("views")
            recorder.seal(sequence: sequence, transactionID: 40 + sequence)
            return recorder.bytes
        }
        let file = record(7, 1) + record(8, 2) + record(9, 3)
        let found = JournalRecord.scan(file, from: 7, transactionID: 47)
        #expect(found.map(\.sequence) == [7, 8, 9])
        #expect(found.map(\.transactionID) == [47, 48, 49])
        var operations: [(JournalOperation.Kind, String, [UInt8], [UInt8])] = []
        try file.withUnsafeBytes { raw in
            try JournalOperation.forEach(in: UnsafeRawBufferPointer(rebasing: raw[found[1].payload])) {
                operations.append(($0.kind, $0.database, Array($0.key), Array($0.value)))
            }
        }
        #expect(operations.map(\.0) == [.put, .delete, .clear])
        #expect(operations.map(\.1) == ["events", "state", "views"])
        #expect(operations[0].2 == [2, 2] && operations[0].3 == [UInt8](repeating: 2, count: 100))
        #expect(operations[1].2 == [2, 2] && operations[2].2.isEmpty)

        // Torn: the last record cut short.
        #expect(JournalRecord.scan(Array(file.dropLast(5)), from: 7, transactionID: 47).map(\.sequence) == [7, 8])
        // Damaged: one bit of the second record's payload flipped.
        var damaged = file
        damaged[record(7, 1).count + JournalRecord.headerSize + 3] ^= 0x10
        #expect(JournalRecord.scan(damaged, from: 7, transactionID: 47).map(\.sequence) == [7])
        // Older: a file's earlier turn starts with records the checkpoint already holds.
        #expect(JournalRecord.scan(file, from: 10, transactionID: 50).isEmpty)
        #expect(JournalRecord.scan(record(3, 1) + record(4, 1), from: 4, transactionID: 44).isEmpty)
        // A record whose transaction id does not follow on is not this journal's either.
        #expect(JournalRecord.scan(file, from: 7, transactionID: 48).isEmpty)
        #expect(JournalRecord.scan(record(7, 1) + record(8, 2), from: 7, transactionID: 47).count == 2)
    }

    @Test(
        "a crash image opens with every committed write, whichever pages written since the checkpoint reached the disk",
        arguments: ["all", "none", "meta pages only", "a random half", "a random tenth"])
    func crashImagesOpenAtTheLastCommit(flushed: String) throws {
        // No checkpoint starts during the writes: the data file as of the last one is the copy taken below.
        try withJournaledStore { directory, environment, databases in
            var workload = Workload(generator: SplitMix(state: 42))
            try workload.run(30, on: environment, databases: databases)
            // Checkpointed now, so that the pages of a store with content are the ones at stake.
            let checkpointImage = try checkpointedDataFile(of: directory, environment: environment)
            try workload.run(150, on: environment, databases: databases)

            let pages: FlushedPages =
                switch flushed {
                case "all": .all
                case "none": .none
                case "meta pages only": .metaOnly
                case "a random half": .random(0.5)
                default: .random(0.1)
                }
            var generator = SplitMix(state: 7)
            let image = try crashImage(
                of: directory, environment: environment, checkpointImage: checkpointImage, pages: pages,
                using: &generator)
            defer { try? FileManager.default.removeItem(atPath: image) }
            let recovered = try LMDBEnvironment(directory: image)
            #expect(recovered.isJournaled)
            #expect(recovered.replayedJournalRecords == 150)
            try workload.check(recovered)
            // It goes on: more writes, a clean close, and an opening with nothing to replay.
            try workload.run(10, on: recovered, databases: try workloadDatabases(recovered))
            recovered.close()
            try expectCleanReopening(of: image, holding: workload)
            // A clean opening keeps its checkpoint's snapshot pinned: a second crash, after more writes, loses
            // nothing either, whichever of their pages reached the disk.
            // No checkpoint starts during these writes either: the data file at the opening is the checkpoint's.
            let reopened = try LMDBEnvironment(
                directory: image,
                configuration: journaledConfiguration(checkpointBytes: 1 << 30, interval: .seconds(3600)))
            defer { reopened.close() }
            let atOpening = Array(try Data(contentsOf: URL(fileURLWithPath: image + "/data.mdb")))
            try workload.run(400, on: reopened, databases: try workloadDatabases(reopened))
            let second = try crashImage(
                of: image, environment: reopened, checkpointImage: atOpening, pages: pages, using: &generator)
            defer { try? FileManager.default.removeItem(atPath: second) }
            let recoveredAgain = try LMDBEnvironment(directory: second)
            defer { recoveredAgain.close() }
            #expect(recoveredAgain.replayedJournalRecords == 400)
            try workload.check(recoveredAgain)
        }
    }

    @Test("crash images taken while checkpoints run in the background open with every committed write")
    func crashImagesDuringCheckpoints() throws {
        // A checkpoint after nearly every commit: the journal turns from one file to the other all the time.
        try withJournaledStore(checkpointBytes: 16 << 10, interval: .milliseconds(1)) {
            directory, environment, databases in
            var workload = Workload(generator: SplitMix(state: 99))
            var images: [(path: String, expected: Workload)] = []
            defer { for image in images { try? FileManager.default.removeItem(atPath: image.path) } }
            for round in 0..<8 {
                try workload.run(20 + round * 7, on: environment, databases: databases)
                let image = try killImage(of: directory, environment: environment)
                images.append((image, workload))
            }
            for image in images {
                let recovered = try LMDBEnvironment(directory: image.path)
                defer { recovered.close() }
                try image.expected.check(recovered)
            }
        }
    }

    @Test("a large transaction is journaled like any other, and a crash image holds it")
    func largeTransactionsAreJournaled() throws {
        // A checkpoint threshold far below the transaction: the record goes whole into one file all the same.
        try withJournaledStore(checkpointBytes: 64 << 10) { directory, environment, databases in
            var workload = Workload(generator: SplitMix(state: 11))
            try workload.run(5, on: environment, databases: databases)
            let journal = try #require(environment.journal)
            let recordsBefore = environment.withWritesHeld { journal.nextSequence }
            let large = (0..<3000).map { [UInt8](repeating: UInt8(truncatingIfNeeded: $0), count: 1000 + $0 % 700) }
            try environment.write { transaction in
                for (index, value) in large.enumerated() {
                    try transaction.put(databases["b"]!, key: Array("large-\(index)".utf8), value: value)
                }
            }
            for (index, value) in large.enumerated() { workload.expected["b"]![Array("large-\(index)".utf8)] = value }
            environment.withWritesHeld {
                #expect(journal.nextSequence == recordsBefore + 1, "one record for the large transaction")
            }
            try workload.run(5, on: environment, databases: databases)
            let image = try killImage(of: directory, environment: environment)
            defer { try? FileManager.default.removeItem(atPath: image) }
            let recovered = try LMDBEnvironment(directory: image)
            defer { recovered.close() }
            #expect(recovered.replayedJournalRecords > 0)
            try workload.check(recovered)
        }
    }

    @Test("a record file that a large transaction grew is cut back once the checkpoint after it is stored")
    func recordFilesShrink() throws {
        try withJournaledStore(checkpointBytes: 64 << 10) { directory, environment, databases in
            let journal = try #require(environment.journal)
            func recordFileSize(_ index: Int) throws -> Int {
                let path = directory + "/" + WriteAheadJournal.recordFileName(index)
                return try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
            }
            var workload = Workload(generator: SplitMix(state: 5))
            for round in 0..<2 {
                // About 6 MB in one record, far past four times what a file is cut back to (1 MB here): the
                // checkpoint it sets off runs in the background, and the journal turns to the other file.
                let recordedIn = environment.withWritesHeld { journal.activeFile }
                let large = (0..<1500).map { [UInt8](repeating: UInt8(truncatingIfNeeded: $0 + round), count: 4000) }
                try environment.write { transaction in
                    for (index, value) in large.enumerated() {
                        try transaction.put(databases["b"]!, key: Array("large-\(index)".utf8), value: value)
                    }
                }
                for (index, value) in large.enumerated() {
                    workload.expected["b"]![Array("large-\(index)".utf8)] = value
                }
                // Once that checkpoint is stored, the file holding the record is cut back.
                journal.lock()
                while journal.checkpointInFlight { journal.wait() }
                #expect(journal.activeFile != recordedIn)
                journal.unlock()
                #expect(try recordFileSize(recordedIn) <= journal.shrunkFileBytes, "round \(round)")
                try workload.run(5, on: environment, databases: databases)
            }
            try workload.run(20, on: environment, databases: databases)
            let image = try killImage(of: directory, environment: environment)
            defer { try? FileManager.default.removeItem(atPath: image) }
            let recovered = try LMDBEnvironment(directory: image)
            defer { recovered.close() }
            try workload.check(recovered)
        }
    }

    @Test("a recovery cut short leaves the checkpoint's snapshot intact: the next opening recovers everything")
    func interruptedRecovery() throws {
        try withJournaledStore { directory, environment, databases in
            var workload = Workload(generator: SplitMix(state: 3))
            try workload.run(20, on: environment, databases: databases)
            let checkpointImage = try checkpointedDataFile(of: directory, environment: environment)
            try workload.run(120, on: environment, databases: databases)
            var generator = SplitMix(state: 1)
            let image = try crashImage(
                of: directory, environment: environment, checkpointImage: checkpointImage, pages: .none,
                using: &generator)
            defer { try? FileManager.default.removeItem(atPath: image) }
            // The replay stops part-way, as a crash or a full disk would stop it, with its transactions committed.
            var interrupted = LMDBEnvironment.Configuration()
            interrupted.failReplayAfter = 100
            #expect(throws: LMDBError.self) { _ = try LMDBEnvironment(directory: image, configuration: interrupted) }
            let recovered = try LMDBEnvironment(directory: image)
            defer { recovered.close() }
            #expect(recovered.replayedJournalRecords == 120)
            try workload.check(recovered)
        }
    }

    @Test("a journal made anew for a store ignores record files an earlier journal left")
    func recordFilesOfAnEarlierJournal() throws {
        try withJournaledStore { directory, environment, databases in
            var workload = Workload(generator: SplitMix(state: 8))
            try workload.run(30, on: environment, databases: databases)
            environment.close()
            // Records of that run are still in the files; the checkpoint that placed them goes.
            try FileManager.default.removeItem(atPath: directory + "/journal.checkpoint")
            let fresh = try LMDBEnvironment(
                directory: directory,
                configuration: journaledConfiguration(checkpointBytes: 1 << 30, interval: .seconds(3600)))
            fresh.close()
            try expectCleanReopening(of: directory, holding: workload)
        }
    }

    @Test("a data file that is not the one the journal belongs to is refused, not rewound")
    func aForeignDataFileIsRefused() throws {
        try withJournaledStore { directory, environment, databases in
            var workload = Workload(generator: SplitMix(state: 5))
            try workload.run(5, on: environment, databases: databases)
            let early = Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/data.mdb")))
            try workload.run(5, on: environment, databases: databases)
            environment.close()
            // An older data file put back under a journal that has checkpointed past it.
            try Data(early).write(to: URL(fileURLWithPath: directory + "/data.mdb"))
            #expect(throws: LMDBError.self) { _ = try LMDBEnvironment(directory: directory) }
        }
    }

    @Test("a log opened from a crash image holds every acknowledged append, and passes check")
    func logCrashImage() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = LMDBEventLog.Configuration()
        configuration.streamIndexBatch = 64
        let log = try LMDBEventLog(directory: directory, configuration: configuration, logger: Logger(label: "test"))
        defer { log.close() }
        var acknowledged: [LogPosition] = []
        for index in 0..<300 {
            let result = try await log.append(
                AppendRequest(
                    stream: try StreamName(aggregateType: "order", aggregateID: "o\(index % 17)"),
                    events: [ProposedEvent(eventType: "order-created", data: Array("{\"n\":\(index)}".utf8))]))
            acknowledged.append(contentsOf: result.events.map(\.position))
        }
        let image = try killImage(of: directory, environment: log.environment)
        defer { try? FileManager.default.removeItem(atPath: image) }
        let recovered = try LMDBEventLog(directory: image, logger: Logger(label: "test"))
        defer { recovered.close() }
        #expect(recovered.headPosition == acknowledged.last)
        let events = try recovered.readAll(from: 1, limit: 1000, eventTypes: [])
        #expect(events.map(\.position) == acknowledged)
        #expect(
            try recovered.readStream(try StreamName(aggregateType: "order", aggregateID: "o3"), from: 1, limit: 100)
                .count == 18)
        let report = try LogChecker(log: recovered).check()
        #expect(report.isClean, "\(report.problems)")
    }
}
