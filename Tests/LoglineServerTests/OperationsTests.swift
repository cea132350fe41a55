import Foundation
import Logging
import LoglineClient
import LoglineCore
import LoglineLog
import Testing

/// `logline check`, `logline export` and `logline import`, run as the real executable on real stores.
@Suite("logline check, export and import", .serialized, .timeLimit(.minutes(5)))
struct OperationsTests {
    /// How many events ``makeSourceStore(_:)`` writes.
    static let sourceEventCount = 12_150

    /// A store of 12,150 events: twelve appends of 1,000 events to three streams (so an export takes two pages),
    /// then 150 single events spread over five streams. No module handles these event types.
    static func makeSourceStore(_ path: String) async throws {
        var logger = Logger(label: "operations-tests")
        logger.logLevel = .warning
        let log = try LMDBEventLog(directory: path, logger: logger)
        defer { log.close() }
        for block in 0..<12 {
            let stream = try StreamName(aggregateType: "widget", aggregateID: "w\(block % 3)")
            let events = (0..<1000).map { index in
                ProposedEvent(
                    eventType: "widget-made",
                    data: Array(#"{"n": \#(block * 1000 + index), "s": "é \"q\" \\ ✓"}"#.utf8),
                    metadata: Array(#"{"i":\#(index)}"#.utf8))
            }
            _ = try await log.append(AppendRequest(stream: stream, events: events))
        }
        for index in 0..<150 {
            let stream = try StreamName(aggregateType: "gadget", aggregateID: "g\(index % 5)")
            _ = try await log.append(
                AppendRequest(
                    stream: stream,
                    events: [ProposedEvent(eventType: "gadget-painted", data: Array("[\(index), true, null]".utf8))]
                ))
        }
    }

    /// Runs `logline` with `input` on its standard input (none when `nil`), off the shared concurrency pool: the
    /// in-process server it may talk to needs the pool's threads.
    static func logline(_ arguments: [String], input: String? = nil) async throws -> (
        status: Int32, output: String, error: String
    ) {
        try await awaitBlocking { try blockingLogline(arguments, input: input) }
    }

    private static func blockingLogline(_ arguments: [String], input: String?) throws -> (
        status: Int32, output: String, error: String
    ) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try loglineExecutable())
        process.arguments = arguments
        var inputFile: String?
        if let input {
            let path = NSTemporaryDirectory() + "logline-input-" + UUID().uuidString
            try Data(input.utf8).write(to: URL(fileURLWithPath: path))
            inputFile = path
            process.standardInput = FileHandle(forReadingAtPath: path)
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        defer { inputFile.map { try? FileManager.default.removeItem(atPath: $0) } }
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        let errData = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (
            process.terminationStatus, String(decoding: outData, as: UTF8.self),
            String(decoding: errData, as: UTF8.self)
        )
    }

    /// The lines of an export.
    static func lines(_ text: String) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// The envelopes of an export.
    static func envelopes(_ text: String) throws -> [RecordedEvent] {
        try lines(text).map { try RecordedEvent(envelopeJSON: Array($0.utf8)) }
    }

    /// What an import keeps of an event: everything but the time it was recorded.
    static func kept(_ event: RecordedEvent) -> [String] {
        [
            event.eventID.description, event.eventType, event.stream.description, String(event.version),
            String(event.position), String(decoding: event.data, as: UTF8.self),
            String(decoding: event.metadata, as: UTF8.self),
        ]
    }

    @Test func exportFromAStoppedStoreAndFromARunningServerAreTheSame() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await Self.makeSourceStore(directory.path)

        let stopped = try await Self.logline(["export", "--data", directory.path])
        #expect(stopped.status == 0)
        #expect(stopped.error == "")
        let exported = try Self.envelopes(stopped.output)
        #expect(exported.map(\.position) == Array(1...UInt64(Self.sourceEventCount)))
        #expect(exported[5].data == Array(#"{"n": 5, "s": "é \"q\" \\ ✓"}"#.utf8))
        #expect(exported[5].metadata == Array(#"{"i":5}"#.utf8))
        #expect(exported.last?.data == Array("[149, true, null]".utf8))

        let tail = try await Self.logline(["export", "--data", directory.path, "--from", "9999"])
        #expect(tail.status == 0)
        #expect(Self.lines(tail.output) == Array(Self.lines(stopped.output).dropFirst(9998)))

        let server = try ProcessTests.ServerProcess(data: directory.path)
        defer { server.terminate() }
        let served = try await Self.logline(["export", "--port", String(server.port)])
        #expect(served.status == 0)
        #expect(served.error == "")
        #expect(served.output == stopped.output)
        let servedTail = try await Self.logline(["export", "--port", String(server.port), "--from", "9999"])
        #expect(servedTail.output == tail.output)
    }

    @Test func checkAndExportRefuseAStoreInUse() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try ProcessTests.ServerProcess(data: directory.path)
        defer { server.terminate() }
        let check = try await Self.logline(["check", directory.path])
        #expect(check.status == 1)
        #expect(check.output == "")
        #expect(
            check.error.hasPrefix(
                "logline: error: cannot check \(directory.path): it is in use by a running Logline server"))
        #expect(check.error.contains("pid \(server.process.processIdentifier)"))
        #expect(check.error.contains("stop the server first"))
        let export = try await Self.logline(["export", "--data", directory.path])
        #expect(export.status == 1)
        #expect(export.error.contains("in use by a running Logline server"))
        let both = try await Self.logline(["export", "--data", directory.path, "--port", String(server.port)])
        #expect(both.status != 0)
        #expect(both.error.contains("not both"))
    }

    @Test func importIntoAFreshStoreReproducesTheLogAndTwiceAddsNothing() async throws {
        let source = TemporaryDirectory()
        let target = TemporaryDirectory()
        defer {
            source.remove()
            target.remove()
        }
        try await Self.makeSourceStore(source.path)
        let original = try await Self.logline(["export", "--data", source.path]).output

        let first = try await Self.logline(["import", "--data", target.path], input: original)
        #expect(first.status == 0)
        #expect(
            first.error
                == "logline: import: read \(Self.sourceEventCount) events, appended \(Self.sourceEventCount), already present 0\n"
        )
        let imported = try await Self.logline(["export", "--data", target.path]).output
        #expect(try Self.envelopes(imported).map(Self.kept) == (try Self.envelopes(original).map(Self.kept)))

        let second = try await Self.logline(["import", "--data", target.path], input: original)
        #expect(second.status == 0)
        #expect(
            second.error
                == "logline: import: read \(Self.sourceEventCount) events, appended 0, already present \(Self.sourceEventCount)\n"
        )
        #expect(try await Self.logline(["export", "--data", target.path]).output == imported)

        let check = try await Self.logline(["check", target.path])
        #expect(check.status == 0)
        #expect(check.output.contains("events: \(Self.sourceEventCount) (head position \(Self.sourceEventCount))\n"))
        #expect(check.output.contains("streams: 8\n"))
        #expect(check.output.hasSuffix("result: clean\n"))
    }

    @Test func importThroughARunningServer() async throws {
        let source = TemporaryDirectory()
        let target = TemporaryDirectory()
        defer {
            source.remove()
            target.remove()
        }
        try await Self.makeSourceStore(source.path)
        let original = try await Self.logline(["export", "--data", source.path]).output
        let server = try ProcessTests.ServerProcess(data: target.path)
        let port = String(server.port)

        let first = try await Self.logline(["import", "--port", port], input: original)
        #expect(first.status == 0)
        #expect(first.error.contains("appended \(Self.sourceEventCount), already present 0"))
        let second = try await Self.logline(["import", "--port", port], input: original)
        #expect(second.status == 0)
        #expect(second.error.contains("appended 0, already present \(Self.sourceEventCount)"))
        let served = try await Self.logline(["export", "--port", port]).output
        #expect(try Self.envelopes(served).map(Self.kept) == (try Self.envelopes(original).map(Self.kept)))
        server.terminate()

        let check = try await Self.logline(["check", target.path])
        #expect(check.status == 0, "\(check.output)")
        #expect(check.output.hasSuffix("result: clean\n"))
    }

    @Test func aMalformedLineStopsTheImportAfterTheEventsBeforeIt() async throws {
        let source = TemporaryDirectory()
        let target = TemporaryDirectory()
        defer {
            source.remove()
            target.remove()
        }
        try await Self.makeSourceStore(source.path)
        let original = Self.lines(try await Self.logline(["export", "--data", source.path]).output)
        let input =
            [original[0], original[1], "", #"{"event_id": "nope"}"#, original[2]].joined(separator: "\n") + "\n"
        let result = try await Self.logline(["import", "--data", target.path], input: input)
        #expect(result.status == 1)
        #expect(result.error.contains("logline: import: read 2 events, appended 2, already present 0\n"))
        #expect(result.error.contains("logline: error: import stopped at line 4: not an event envelope"))
        #expect(Self.lines(try await Self.logline(["export", "--data", target.path]).output).count == 2)

        let badName = original[2].replacingOccurrences(of: #""aggregate_id":"w0""#, with: #""aggregate_id":"w 0""#)
        let named = try await Self.logline(["import", "--data", target.path], input: badName + "\n")
        #expect(named.status == 1)
        #expect(named.error.contains("line 1: aggregate_type and aggregate_id must be"))
    }

    @Test func checkReportsEachProblemAndExitsOne() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var logger = Logger(label: "operations-tests")
        logger.logLevel = .warning
        do {
            let log = try LMDBEventLog(directory: directory.path, logger: logger)
            defer { log.close() }
            let stream = try StreamName(aggregateType: "order", aggregateID: "o1")
            _ = try await log.append(
                AppendRequest(
                    stream: stream, events: [ProposedEvent(eventType: "order-created", data: Array("{}".utf8))]))
            let beyond: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 99, 0, 0, 0, 0, 0, 0, 0, 1]
            _ = try await log.commit(
                CommitUnit(writes: [
                    StateWrite(table: "checkpoint", key: Array("orders".utf8), value: beyond),
                    StateWrite(table: "groups", key: Array("notify".utf8), value: Array(#"{"cursor":7}"#.utf8)),
                ]))
        }
        let check = try await Self.logline(["check", directory.path])
        #expect(check.status == 1)
        #expect(check.output.contains("events: 1 (head position 1)\n"))
        #expect(check.output.contains("checkpoints: 1 (rebuilds in progress: 0)\n"))
        #expect(check.output.contains("consumer groups: 1 (pending and dead entries: 0)\n"))
        #expect(
            check.output.contains(
                "problem: checkpoint: module orders has its checkpoint at position 99, beyond the head 1\n"))
        #expect(
            check.output.contains(
                "problem: group-cursor: consumer group notify has its cursor at position 7, beyond the head 1\n"))
        #expect(check.output.hasSuffix("result: 2 problems found\n"))
    }
}
