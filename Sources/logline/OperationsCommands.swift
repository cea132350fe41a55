import ArgumentParser
import Foundation
import Logging
import LoglineClient
import LoglineCore
import LoglineLog

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// `logline check`, `logline export` and `logline import`: operations on a store, stopped or served.

/// `logline check DIR`: verifies a stopped server's store.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Verify a stopped server's store; exit 0 when it is consistent, 1 when problems are found.",
        discussion: """
            Reads the whole store and checks that positions run 1 to the head without a gap and every record \
            decodes; that stream_events and event_ids index every event and nothing else, with gap-free versions \
            in each stream; that the count of streams is right; and that module checkpoints, rebuilds and consumer \
            groups point at or below the head, at events that exist. Writes nothing. The store must not be in use: \
            stop the server first.
            """)

    @Argument(help: "The data directory of a stopped server.")
    var directory: String

    func run() async throws {
        let log = try StoreAccess.open(directory, purpose: "check", create: false)
        defer { log.close() }
        let report: CheckReport
        do {
            report = try LogChecker(log: log).check()
        } catch {
            throw StoreAccess.failure("cannot read the store in \(log.directory): \(error)")
        }
        printLine("store: \(log.directory)")
        printLine("events: \(report.eventCount) (head position \(report.headPosition))")
        printLine("streams: \(report.streamCount)")
        printLine("checkpoints: \(report.checkpointCount) (rebuilds in progress: \(report.rebuildCount))")
        printLine("consumer groups: \(report.groupCount) (pending and dead entries: \(report.groupEntryCount))")
        for problem in report.problems {
            printLine("problem: \(problem)")
        }
        if report.problemCount > report.problems.count {
            printLine("problem: … and \(report.problemCount - report.problems.count) more")
        }
        if report.isClean {
            printLine("result: clean")
        } else {
            printLine("result: \(report.problemCount) problem\(report.problemCount == 1 ? "" : "s") found")
            throw ExitCode(1)
        }
    }
}

/// `logline export`: writes the log as JSON Lines of envelopes.
struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write the log to standard output as JSON Lines, one envelope per event, in position order.",
        discussion: """
            With --data, reads a stopped server's store. Otherwise reads from the running server at --host and \
            --port, up to the head it has when the export starts. A line break inside an event's JSON (white \
            space between tokens) is written as a space, so that each event stays on one line. With a terminal on \
            standard error, a progress line is shown there.
            """)

    @Option(help: "The data directory of a stopped server (instead of --host/--port).")
    var data: String?

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "The first position to export.")
    var from: UInt64 = 1

    func validate() throws {
        try StoreAccess.validateEither(data: data)
    }

    func run() async throws {
        var output = EnvelopeWriter()
        var progress = ProgressLine()
        let start = max(from, 1)
        if let data {
            let log = try StoreAccess.open(data, purpose: "export", create: false)
            defer { log.close() }
            let head = log.headPosition
            var next = start
            while next <= head {
                let page: [RecordedEvent]
                do {
                    page = try log.readAll(from: next, limit: StoreAccess.pageSize, eventTypes: [])
                } catch {
                    throw StoreAccess.failure("cannot read the store in \(log.directory): \(error)")
                }
                guard let last = page.last else { break }
                try output.write(page.filter { $0.position <= head })
                next = last.position + 1
                progress.show("exported \(output.count) events, position \(min(last.position, head)) of \(head)")
            }
            progress.finish("exported \(output.count) events (head \(head))")
        } else {
            try await connection.withClient { client in
                let head = try await client.info().lastPosition
                var next = start
                while next <= head {
                    let page = try await client.readAll(fromPosition: next, count: StoreAccess.pageSize)
                    guard let last = page.last else { break }
                    try output.write(page.filter { $0.position <= head })
                    next = last.position + 1
                    progress.show("exported \(output.count) events, position \(min(last.position, head)) of \(head)")
                }
                progress.finish("exported \(output.count) events (head \(head))")
            }
        }
        if output.linesWithBreaks > 0 {
            FileHandle.standardError.write(
                Data(
                    ("logline: export: \(output.linesWithBreaks) events had line breaks between JSON tokens, "
                        + "written as spaces\n").utf8))
        }
    }
}

/// `logline import`: appends the events of JSON Lines of envelopes, keeping their ids.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Append the events of JSON Lines of envelopes read from standard input, keeping their event ids.",
        discussion: """
            Each line is an envelope as `logline export`, `readall` or READALL write it. Its event_id, event_type, \
            stream, data and metadata are appended (EXPECT ANY); its position, version and recorded_at are assigned \
            anew by the target, so a fresh store imported in order gets the same positions and versions. Because \
            the ids are kept, an event already in the target is not appended again: importing a file twice adds \
            nothing. With --data, writes a stopped server's store (created if missing); otherwise appends through \
            the running server at --host and --port. A malformed line stops the import with exit code 1: the \
            events before it are appended, nothing from it on. The counts go to standard error.
            """)

    @Option(help: "The data directory of a stopped server, created if missing (instead of --host/--port).")
    var data: String?

    @OptionGroup var connection: ConnectionOptions

    func validate() throws {
        try StoreAccess.validateEither(data: data)
    }

    func run() async throws {
        var importer = Importer()
        if let data {
            let log = try StoreAccess.open(data, purpose: "import", create: true)
            defer { log.close() }
            try await importer.run(into: LocalSink(log: log))
        } else {
            try await connection.withClient { client in
                try await importer.run(into: ServerSink(client: client))
            }
        }
    }
}

// MARK: - Opening a stopped store

/// Opening a stopped server's store, and the messages of the operations commands.
enum StoreAccess {
    /// Events per page when exporting.
    static let pageSize = 10_000

    /// A line on standard error and exit code 1.
    static func failure(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("logline: error: \(message)\n".utf8))
        return ExitCode(1)
    }

    /// Refuses `--data` together with `--host` or `--port`: the store is read either directly or through the
    /// server, not both.
    static func validateEither(data: String?) throws {
        guard data != nil else { return }
        let connectionFlags = ["--host", "--port", "--token"]
        let given = CommandLine.arguments.contains { argument in
            connectionFlags.contains { argument == $0 || argument.hasPrefix($0 + "=") }
        }
        if given {
            throw ValidationError(
                "give either --data (a stopped server's store) or --host/--port (a running server), not both")
        }
    }

    /// Opens the log in `directory`, which no server may be using.
    /// - Parameters:
    ///   - directory: The data directory.
    ///   - purpose: The subcommand, for the messages.
    ///   - create: Whether a missing store is created; when `false`, a directory without a store is an error.
    static func open(_ directory: String, purpose: String, create: Bool) throws -> LMDBEventLog {
        if !create, !FileManager.default.fileExists(atPath: directory + "/data.mdb") {
            throw failure("there is no Logline store in \(directory)")
        }
        var logger = Logger(label: "logline") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .warning
        do {
            return try LMDBEventLog(directory: directory, logger: logger)
        } catch OpenError.locked {
            let owner = (try? String(contentsOfFile: directory + "/logline.lock", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let pid = owner.map { $0.isEmpty ? "" : " (pid \($0))" } ?? ""
            let alternative =
                purpose == "check" ? "" : "; or \(purpose) through the running server with --host/--port instead"
            throw failure(
                "cannot \(purpose) \(directory): it is in use by a running Logline server\(pid); stop the server "
                    + "first\(alternative)")
        } catch {
            throw failure("\(error)")
        }
    }
}

// MARK: - Progress and output

/// A progress line on standard error, shown only when standard error is a terminal.
struct ProgressLine {
    private let enabled = isatty(2) != 0
    private var lastShown: ContinuousClock.Instant?
    private var shownAnything = false

    /// Replaces the line with `text`, at most ten times a second.
    mutating func show(_ text: @autoclosure () -> String) {
        guard enabled else { return }
        let now = ContinuousClock.now
        if let lastShown, now - lastShown < .milliseconds(100) { return }
        lastShown = now
        shownAnything = true
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text())".utf8))
    }

    /// Replaces the line with `text` and ends it.
    mutating func finish(_ text: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text)\n".utf8))
    }

    /// Ends the line, if one is shown, so that a message can follow on a line of its own.
    mutating func clear() {
        guard enabled, shownAnything else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        shownAnything = false
    }
}

/// Writes envelopes to standard output as JSON Lines.
struct EnvelopeWriter {
    /// The events written so far.
    private(set) var count = 0
    /// The events whose JSON held line breaks (white space between tokens), written as spaces.
    private(set) var linesWithBreaks = 0

    /// Writes `events`, one line each.
    mutating func write(_ events: [RecordedEvent]) throws {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(events.count * 256)
        for event in events {
            let start = buffer.count
            event.appendJSON(to: &buffer)
            // JSON strings cannot hold a raw line break, so any is white space between tokens: a space will do.
            var replaced = false
            for index in start..<buffer.count where buffer[index] == 0x0A || buffer[index] == 0x0D {
                buffer[index] = 0x20
                replaced = true
            }
            if replaced { linesWithBreaks += 1 }
            buffer.append(0x0A)
        }
        try writeStandardOutput(buffer)
        count += events.count
    }

    private func writeStandardOutput(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { systemWrite(1, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw StoreAccess.failure("cannot write to standard output: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }
}

// MARK: - Import

/// One event read from the input.
struct ImportedEvent {
    /// The line it came from (1 for the first).
    var line: Int
    /// Its stream.
    var stream: StreamName
    /// The event, with its original id.
    var event: ProposedEvent

    /// The bytes it takes in a request, roughly.
    var size: Int { event.data.count + event.metadata.count + event.eventType.utf8.count + 80 }

    /// What one line of input holds.
    enum Parsed {
        /// Nothing but white space.
        case blank
        /// An event.
        case event(ImportedEvent)
        /// Not an envelope with valid names and JSON.
        case malformed(ImportFailure)
    }

    /// Reads one line of input.
    static func parse(_ bytes: [UInt8], line number: Int) -> Parsed {
        guard bytes.contains(where: { !JSONValidator.isWhitespace($0) }) else { return .blank }
        func malformed(_ message: String) -> Parsed { .malformed(ImportFailure(line: number, message: message)) }
        if let failure = JSONValidator.validate(bytes) { return malformed("not valid JSON: \(failure)") }
        guard let envelope = try? RecordedEvent(envelopeJSON: bytes) else {
            return malformed(
                "not an event envelope (it needs event_id, event_type, aggregate_type, aggregate_id, version, "
                    + "position, recorded_at, data and metadata)")
        }
        let type = envelope.stream.aggregateType
        let id = envelope.stream.aggregateID
        guard let stream = try? StreamName(aggregateType: type, aggregateID: id) else {
            return malformed(
                "aggregate_type and aggregate_id must be 1 to 200 bytes of A-Z a-z 0-9 . _ : @ - (got \(type)/\(id))")
        }
        guard Name.isValid(envelope.eventType) else {
            return malformed("event_type must be 1 to 200 bytes of A-Z a-z 0-9 . _ : @ -")
        }
        guard JSONValidator.validateObject(envelope.metadata) == nil else {
            return malformed("metadata must be a JSON object")
        }
        return .event(
            ImportedEvent(
                line: number, stream: stream,
                event: ProposedEvent(
                    eventID: envelope.eventID, eventType: envelope.eventType, data: envelope.data,
                    metadata: envelope.metadata)))
    }
}

/// Why an import stopped, at which line.
struct ImportFailure: Error, CustomStringConvertible {
    /// The line of the event that could not be read or appended (0 when no line is to blame).
    var line: Int
    /// What went wrong.
    var message: String

    /// `line N: message`.
    var description: String { line > 0 ? "line \(line): \(message)" : message }
}

/// Consecutive events of one stream, appended in one request.
struct ImportRun {
    /// The stream.
    var stream: StreamName
    /// The events, in input order.
    var events: [ImportedEvent]

    /// The append request, with no expectation on the stream's version.
    var request: AppendRequest {
        AppendRequest(stream: stream, expectedVersion: .any, events: events.map(\.event))
    }

    /// The same run, one event at a time.
    var singles: [ImportRun] { events.map { ImportRun(stream: stream, events: [$0]) } }

    /// Splits events into runs of one stream each, keeping their order, with at most `maximumEvents` events and
    /// about `maximumBytes` bytes in a run, and no event id twice in one run.
    static func runs(of events: [ImportedEvent], maximumEvents: Int, maximumBytes: Int) -> [ImportRun] {
        var runs: [ImportRun] = []
        var ids = Set<EventID>()
        var bytes = 0
        for event in events {
            let id = event.event.eventID
            if var last = runs.last, last.stream == event.stream, last.events.count < maximumEvents,
                bytes + event.size <= maximumBytes, id.map({ !ids.contains($0) }) ?? true
            {
                last.events.append(event)
                runs[runs.count - 1] = last
            } else {
                runs.append(ImportRun(stream: event.stream, events: [event]))
                ids.removeAll(keepingCapacity: true)
                bytes = 0
            }
            if let id { ids.insert(id) }
            bytes += event.size
        }
        return runs
    }
}

/// What an import did so far.
struct ImportCounts {
    /// Events read from the input.
    var read = 0
    /// Events appended.
    var appended = 0
    /// Events that were in the target already.
    var present = 0

    /// Counts the outcome of one append of `count` events.
    mutating func record(_ count: Int, alreadyPresent: Bool) {
        if alreadyPresent { present += count } else { appended += count }
    }

    /// `read N events, appended A, already present P`.
    var text: String { "read \(read) event\(read == 1 ? "" : "s"), appended \(appended), already present \(present)" }
}

/// Where imported events are appended: a stopped store or a running server.
protocol ImportSink {
    /// Events gathered before they are appended.
    var chunkEvents: Int { get }
    /// Bytes of events gathered before they are appended.
    var chunkBytes: Int { get }
    /// The most events in one append request.
    var runEvents: Int { get }
    /// About the most bytes in one append request.
    var runBytes: Int { get }

    /// Appends the runs in order.
    ///
    /// On a failure, everything before the failing event is appended and counted, nothing from it on.
    /// - Returns: `nil`, or the failure, naming the failing event's line.
    func append(_ runs: [ImportRun], counts: inout ImportCounts) async -> ImportFailure?
}

/// Appends into a stopped store: each chunk in one transaction, with one fsync.
struct LocalSink: ImportSink {
    /// The log.
    let log: LMDBEventLog
    /// Events per transaction.
    var chunkEvents: Int { 2000 }
    /// Bytes per transaction.
    var chunkBytes: Int { 8 << 20 }
    /// Events per append request: no limit but the chunk's.
    var runEvents: Int { .max }
    /// Bytes per append request: no limit but the chunk's.
    var runBytes: Int { .max }

    func append(_ runs: [ImportRun], counts: inout ImportCounts) async -> ImportFailure? {
        guard !runs.isEmpty else { return nil }
        let unit = CommitUnit(appends: runs.map(\.request))
        let outcome = await withCheckedContinuation { continuation in
            log.commit(unit) { continuation.resume(returning: $0) }
        }
        if case .success(let results) = outcome {
            for result in results { counts.record(result.events.count, alreadyPresent: result.alreadyAppended) }
            return nil
        }
        // Nothing of the chunk was written: go run by run, and event by event in a failing run, to stop exactly
        // at the event that fails.
        for run in runs {
            if let failure = await append(run, counts: &counts) { return failure }
        }
        return nil
    }

    private func append(_ run: ImportRun, counts: inout ImportCounts) async -> ImportFailure? {
        let request = run.request
        let outcome = await withCheckedContinuation { continuation in
            log.append(request) { continuation.resume(returning: $0) }
        }
        switch outcome {
        case .success(let result):
            counts.record(result.events.count, alreadyPresent: result.alreadyAppended)
            return nil
        case .failure(let error):
            guard run.events.count > 1 else { return ImportFailure(line: run.events[0].line, message: "\(error)") }
            for single in run.singles {
                if let failure = await append(single, counts: &counts) { return failure }
            }
            return nil
        }
    }
}

/// Appends through a running server, one `APPENDMANY` per run, each awaited before the next to keep the order.
struct ServerSink: ImportSink {
    /// The connection.
    let client: LoglineClient
    /// Events gathered before they are sent.
    var chunkEvents: Int { 2000 }
    /// Bytes gathered before they are sent.
    var chunkBytes: Int { 4 << 20 }
    /// Events in one request.
    var runEvents: Int { 500 }
    /// Bytes in one request, well below the server's default request limit of 1 MiB.
    var runBytes: Int { 256 << 10 }

    func append(_ runs: [ImportRun], counts: inout ImportCounts) async -> ImportFailure? {
        for run in runs {
            if let failure = await append(run, counts: &counts) { return failure }
        }
        return nil
    }

    private func append(_ run: ImportRun, counts: inout ImportCounts) async -> ImportFailure? {
        var body: [UInt8] = [UInt8(ascii: "[")]
        for (index, imported) in run.events.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: #"{"event_id":""#.utf8)
            imported.event.eventID?.appendText(to: &body)
            body.append(contentsOf: #"","event_type":"#.utf8)
            JSONWriter.appendString(imported.event.eventType, to: &body)
            body.append(contentsOf: #","data":"#.utf8)
            body.append(contentsOf: imported.event.data)
            body.append(contentsOf: #","metadata":"#.utf8)
            body.append(contentsOf: imported.event.metadata)
            body.append(UInt8(ascii: "}"))
        }
        body.append(UInt8(ascii: "]"))
        let arguments = [
            "APPENDMANY", run.stream.aggregateType, run.stream.aggregateID, String(decoding: body, as: UTF8.self),
        ]
        let outcome: Result<RESPValue, LoglineClientError>
        do {
            outcome = .success(try await client.send(arguments))
        } catch {
            outcome = .failure(error)
        }
        switch outcome {
        case .success(let reply):
            guard case .bulkString(let bytes?) = reply, let json = try? JSONValue(parsing: bytes),
                let duplicate = json["duplicate"]?.boolValue
            else { return ImportFailure(line: run.events[0].line, message: "unexpected reply: \(reply)") }
            counts.record(run.events.count, alreadyPresent: duplicate)
            return nil
        case .failure(let error):
            // A refused request wrote nothing: find the event the server refuses, one at a time.
            guard error.code != nil, run.events.count > 1 else {
                return ImportFailure(line: run.events[0].line, message: "\(error)")
            }
            for single in run.singles {
                if let failure = await append(single, counts: &counts) { return failure }
            }
            return nil
        }
    }
}

/// Reads JSON Lines from standard input and appends them in chunks.
struct Importer {
    private var counts = ImportCounts()
    private var progress = ProgressLine()

    /// Imports standard input into `sink`; prints the counts on standard error.
    /// - Throws: `ExitCode(1)` after a malformed line or a failed append, once the events before it are appended.
    mutating func run(into sink: some ImportSink) async throws {
        var reader = LineReader(descriptor: 0)
        var chunk: [ImportedEvent] = []
        var chunkBytes = 0
        var lineNumber = 0
        var stop: ImportFailure?
        while stop == nil {
            let next: [UInt8]?
            do {
                next = try reader.next()
            } catch {
                stop = ImportFailure(line: 0, message: "cannot read standard input: \(error)")
                break
            }
            guard let line = next else { break }
            lineNumber += 1
            switch ImportedEvent.parse(line, line: lineNumber) {
            case .blank:
                continue
            case .malformed(let failure):
                stop = failure
            case .event(let event):
                counts.read += 1
                chunk.append(event)
                chunkBytes += event.size
                if chunk.count >= sink.chunkEvents || chunkBytes >= sink.chunkBytes {
                    stop = await flush(&chunk, into: sink)
                    chunkBytes = 0
                }
            }
        }
        // The events read before a malformed line are appended; nothing from it on. (After a failed append the
        // chunk is empty.) A failure here comes from an earlier line than the malformed one.
        if let failure = await flush(&chunk, into: sink) { stop = failure }
        progress.clear()
        FileHandle.standardError.write(Data("logline: import: \(counts.text)\n".utf8))
        if let stop { throw StoreAccess.failure("import stopped at \(stop)") }
    }

    private mutating func flush(_ chunk: inout [ImportedEvent], into sink: some ImportSink) async -> ImportFailure? {
        guard !chunk.isEmpty else { return nil }
        let runs = ImportRun.runs(of: chunk, maximumEvents: sink.runEvents, maximumBytes: sink.runBytes)
        chunk.removeAll(keepingCapacity: true)
        let failure = await sink.append(runs, counts: &counts)
        progress.show(counts.text)
        return failure
    }
}

/// Reads lines from a file descriptor, without their line ending (`\n` or `\r\n`).
struct LineReader {
    /// Why the input could not be read.
    struct ReadError: Error, CustomStringConvertible {
        /// The system's message.
        var description: String
    }

    private let descriptor: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private var scanned = 0
    private var atEnd = false

    /// Reads from `descriptor`, which stays open.
    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// The next line, or `nil` at the end of the input.
    mutating func next() throws -> [UInt8]? {
        while true {
            if let newline = buffer[scanned...].firstIndex(of: 0x0A) {
                var end = newline
                if end > start, buffer[end - 1] == 0x0D { end -= 1 }
                let line = Array(buffer[start..<end])
                start = newline + 1
                scanned = start
                return line
            }
            scanned = buffer.count
            if atEnd {
                guard start < buffer.count else { return nil }
                let line = Array(buffer[start...])
                start = buffer.count
                scanned = start
                return line
            }
            if start > 0 {
                buffer.removeFirst(start)
                scanned -= start
                start = 0
            }
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            let count = chunk.withUnsafeMutableBytes { systemRead(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ReadError(description: String(cString: strerror(errno)))
            }
            if count == 0 {
                atEnd = true
            } else {
                buffer.append(contentsOf: chunk[0..<count])
            }
        }
    }
}

/// `write(2)`, under a name that no method shadows.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer?, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}

/// `read(2)`, under a name that no method shadows.
private func systemRead(_ descriptor: Int32, _ bytes: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(descriptor, bytes, count)
}

/// `logline backup`: asks a running server for a consistent, compacted copy of its store.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Have a running server write a consistent copy of its store to DEST, while writes go on.",
        discussion: """
            DEST is a path on the server's machine; it must not exist yet, or be an empty directory. To restore, \
            start a server on the copy: logline serve --data DEST.
            """)
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The directory for the copy, on the server's machine.") var destination: String

    func run() async throws {
        let path =
            destination.hasPrefix("/")
            ? destination : FileManager.default.currentDirectoryPath + "/" + destination
        try await connection.withClient { client in printReply(try await client.send(["BACKUP", path])) }
    }
}
