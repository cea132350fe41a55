import Foundation
import LoglineLMDB
import Testing

@testable import LoglineLog

/// The resident size of this process's mapping of `file`, from /proc/self/smaps (kB lines).
private func residentBytes(ofMapping file: String) throws -> Int {
    // Read to the end: /proc files report a size of 0, which some whole-file readers trust.
    let handle = try #require(FileHandle(forReadingAtPath: "/proc/self/smaps"))
    defer { try? handle.close() }
    let smaps = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
    var inMapping = false
    var total = 0
    for line in smaps.split(separator: "\n") {
        if let first = line.first, first.isHexDigit, line.contains("-") {
            inMapping = line.hasSuffix(" " + file)  // the whole path, not the end of a longer one
        } else if inMapping, line.hasPrefix("Rss:") {
            let kilobytes = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            total += kilobytes * 1024
        }
    }
    return total
}

/// Writes `count` values of 4,000 bytes into a database of `environment`, and returns a function that reads every
/// one of them through the map (so that their pages become resident) and sums a few bytes of each.
private func writePages(_ environment: LMDBEnvironment, count: Int = 4096) throws -> () throws -> Int {
    let database = try environment.openDatabase(named: "pages")
    try environment.write { transaction in
        for index in 0..<count {
            let value = [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: 4000)
            try transaction.put(database, key: Array("k\(100_000 + index)".utf8), value: value)
        }
    }
    return {
        try environment.read { transaction in
            var sum = 0
            for index in 0..<count {
                let value = try #require(try transaction.get(database, key: Array("k\(100_000 + index)".utf8)))
                sum += Int(value[0]) + Int(value[3999]) + value.count
            }
            return sum
        }
    }
}

/// Runs `body` with a new environment in a temporary directory, holding ``writePages(_:count:)``'s values, with
/// the path of its data file and the function that reads every value.
private func withPagesStore(
    _ body: (_ environment: LMDBEnvironment, _ file: String, _ sumOfEveryValue: () throws -> Int) throws -> Void
) throws {
    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let environment = try LMDBEnvironment(directory: directory)
    defer { environment.close() }
    try body(environment, directory + "/data.mdb", try writePages(environment))
}

@Suite("LMDBEnvironment: handing mapped pages back to the page cache")
struct MappedPagesTests {
    @Test("released pages leave the resident set, and reads after it see the same data")
    func releaseKeepsTheData() throws {
        try withPagesStore { environment, file, sumOfEveryValue in
            let expected = try sumOfEveryValue()
            let afterReading = try residentBytes(ofMapping: file)
            #expect(afterReading >= 12 << 20)  // 16 MB of values were read through the map
            #expect(environment.releaseMappedPages())
            #expect(try residentBytes(ofMapping: file) < afterReading / 4)
            #expect(try sumOfEveryValue() == expected)
            #expect(try residentBytes(ofMapping: file) >= 12 << 20)
        }
    }

    @Test("after the map grows, a release finds the new mapping")
    func releaseAfterGrowing() throws {
        try withPagesStore { environment, file, sumOfEveryValue in
            // The first release finds the mapping and remembers it.
            let expected = try sumOfEveryValue()
            #expect(environment.releaseMappedPages())
            // The map moves.
            let mapSize = environment.mapSize
            try environment.grow()
            #expect(environment.mapSize > mapSize)
            #expect(try sumOfEveryValue() == expected)
            let afterReading = try residentBytes(ofMapping: file)
            #expect(afterReading >= 12 << 20)
            #expect(environment.releaseMappedPages())
            #expect(try residentBytes(ofMapping: file) < afterReading / 4)
            #expect(try sumOfEveryValue() == expected)
        }
    }

    @Test("the resident and shared resident sizes are the second and third fields of /proc/self/statm")
    func residentSizes() throws {
        func statmBytes() throws -> (total: Int, shared: Int) {
            let handle = try #require(FileHandle(forReadingAtPath: "/proc/self/statm"))
            defer { try? handle.close() }
            let fields = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self).split(separator: " ")
            let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
            return (try #require(Int(fields[1])) * pageSize, try #require(Int(fields[2])) * pageSize)
        }
        // Other suites map and release files meanwhile: each figure lies between two readings, give or take.
        let before = try statmBytes()
        let read = try #require(LMDBEnvironment.residentBytes())
        let after = try statmBytes()
        #expect(read.shared >= min(before.shared, after.shared) - (8 << 20))
        #expect(read.shared <= max(before.shared, after.shared) + (8 << 20))
        #expect(read.total >= min(before.total, after.total) - (8 << 20))
        #expect(read.total <= max(before.total, after.total) + (8 << 20))
        #expect(read.shared > 0)
        // The whole is larger than its shared part by the process's own memory: the two fields are not mixed up.
        #expect(read.total > read.shared)
    }

    @Test("mapped pages go when over their limit and over what the rest of the resident set leaves of the target")
    func releaseRule() {
        let megabyte = 1 << 20
        func mustRelease(mapped: Int, resident: Int, target: Int = 128, limit: Int = 16) -> Bool {
            LMDBEventLog.mustReleaseMappedPages(
                mapped: mapped * megabyte, resident: resident * megabyte, target: target * megabyte,
                limit: limit * megabyte)
        }
        // Under the limit: they stay, however large the rest.
        #expect(!mustRelease(mapped: 16, resident: 400))
        // Over the limit, with room under the target: they stay.
        #expect(!mustRelease(mapped: 60, resident: 110))
        #expect(!mustRelease(mapped: 60, resident: 128))
        // Over the limit and over the target: they go.
        #expect(mustRelease(mapped: 60, resident: 129))
        #expect(mustRelease(mapped: 17, resident: 200))
        // Without a target above the limit, the limit alone counts.
        #expect(mustRelease(mapped: 17, resident: 20, target: 0))
        #expect(!mustRelease(mapped: 16, resident: 20, target: 0))
    }

    @Test("a release leaves alone another store whose path ends with this one's")
    func releaseFindsOnlyItsOwnFile() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        // `inner` ends with `outer`'s path: /root/store and /root/nested/root/store.
        let outer = root + "/store"
        let inner = root + "/nested" + outer
        for directory in [outer, inner] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let outerEnvironment = try LMDBEnvironment(directory: outer)
        defer { outerEnvironment.close() }
        let innerEnvironment = try LMDBEnvironment(directory: inner)
        defer { innerEnvironment.close() }
        for environment in [outerEnvironment, innerEnvironment] {
            _ = try writePages(environment, count: 2048)()
        }
        let innerResident = try residentBytes(ofMapping: inner + "/data.mdb")
        #expect(innerResident >= 6 << 20)
        #expect(outerEnvironment.releaseMappedPages())
        #expect(try residentBytes(ofMapping: outer + "/data.mdb") < 2 << 20)
        #expect(try residentBytes(ofMapping: inner + "/data.mdb") >= innerResident - (1 << 20))
    }
}
