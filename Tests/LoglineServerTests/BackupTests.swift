import Foundation
import Logging
import LoglineClient
import LoglineCore
import LoglineLog
import Testing

/// `BACKUP`: a consistent, compacted copy of a running server's store, taken while appends go on.
@Suite("Hot backup")
struct BackupTests {
    @Test func backupWhileAppendingIsAConsistentStoreThatAServerCanOpen() async throws {
        let directory = TemporaryDirectory()
        let destination = TemporaryDirectory()
        defer {
            directory.remove()
            destination.remove()
        }
        let server = try await RunningServer.start(directory: directory.path)
        let client = try await server.client()
        for index in 0..<500 {
            _ = try await client.append(
                to: StreamName(aggregateType: "order", aggregateID: "b\(index % 17)"), eventType: "e",
                data: "{\"n\":\(index)}")
        }
        // Appends keep going while the copy is written.
        let writer = Task {
            for index in 0..<300 {
                _ = try await client.append(
                    to: StreamName(aggregateType: "order", aggregateID: "w\(index % 5)"), eventType: "e",
                    data: "{\"w\":\(index)}")
            }
        }
        let reply = try await client.send(["BACKUP", destination.path])
        let fields = try #require(
            try JSONSerialization.jsonObject(with: Data((reply.text ?? "").utf8)) as? [String: Any])
        let included = try #require(fields["includes_position"] as? Int)
        #expect(included >= 500)
        try await writer.value
        await #expect { _ = try await client.send(["BACKUP", destination.path]) } throws: {
            ($0 as? LoglineClientError)?.code == .internal
        }
        await client.close()
        await server.stop()

        // The copy opens as a store of its own, passes the checker, and holds a prefix of the original.
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let copy = try LMDBEventLog(directory: destination.path, logger: logger)
        defer { copy.close() }
        #expect(copy.headPosition >= UInt64(included))
        let report = try LogChecker(log: copy).check()
        #expect(report.isClean, "\(report.problems)")
        let original = try LMDBEventLog(directory: directory.path, logger: logger)
        defer { original.close() }
        let copied = try copy.readAll(from: 1, limit: 10_000, eventTypes: [])
        let source = try original.readAll(from: 1, limit: copied.count, eventTypes: [])
        #expect(copied == source)
    }

    @Test func backupIntoAFileOrAFullDirectoryIsRefused() async throws {
        let server = try await RunningServer.start()
        let client = try await server.client()
        let full = TemporaryDirectory()
        defer { full.remove() }
        try FileManager.default.createDirectory(atPath: full.path, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: full.path + "/keep", contents: Data("x".utf8))
        await #expect { _ = try await client.send(["BACKUP", full.path]) } throws: { error in
            (error as? LoglineClientError)?.code == .internal
                && (error as? LoglineClientError)?.description.contains("not an empty directory") == true
        }
        await #expect { _ = try await client.send(["BACKUP"]) } throws: {
            ($0 as? LoglineClientError)?.code == .badRequest
        }
        await client.close()
        await server.stop()
    }
}
