import Foundation
import Logging
import LoglineCore
import LoglineLog
import Synchronization
import Testing

/// A logger for tests: only warnings and worse, so that the test output stays readable.
let testLogger: Logger = {
    var logger = Logger(label: "logline-tests")
    logger.logLevel = .warning
    return logger
}()

/// A fresh, empty directory under the system's temporary directory.
func makeTemporaryDirectory() throws -> String {
    let path = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("logline-tests-" + UUID().uuidString)
        .path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Runs `body` with a fresh temporary directory and removes the directory afterwards.
func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    let path = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// A configuration with a small initial map, to make the map grow.
func smallMapConfiguration(_ size: Int = 1 << 20) -> LMDBEventLog.Configuration {
    var configuration = LMDBEventLog.Configuration()
    configuration.initialMapSize = size
    return configuration
}

/// Opens a log in a fresh temporary directory, runs `body`, then closes the log and removes the directory.
func withLog<T>(
    configuration: LMDBEventLog.Configuration = LMDBEventLog.Configuration(),
    _ body: (LMDBEventLog, String) async throws -> T
) async throws -> T {
    try await withTemporaryDirectory { path in
        let log = try LMDBEventLog(directory: path, configuration: configuration, logger: testLogger)
        defer { log.close() }
        return try await body(log, path)
    }
}

/// A stream name known to be valid.
func stream(_ type: String, _ id: String) -> StreamName {
    try! StreamName(aggregateType: type, aggregateID: id)
}

/// A proposed event with JSON data given as text.
func event(
    _ type: String = "thing-happened", id: EventID? = nil, data: String = #"{"n":1}"#, metadata: String = "{}"
) -> ProposedEvent {
    ProposedEvent(eventID: id, eventType: type, data: Array(data.utf8), metadata: Array(metadata.utf8))
}

/// An append request.
func request(_ stream: StreamName, _ expected: ExpectedVersion, _ events: ProposedEvent...) -> AppendRequest {
    AppendRequest(stream: stream, expectedVersion: expected, events: events)
}

/// An append request without an expectation.
func request(_ stream: StreamName, _ events: ProposedEvent...) -> AppendRequest {
    AppendRequest(stream: stream, expectedVersion: .any, events: events)
}

/// An append request with a list of events.
func request(_ stream: StreamName, _ expected: ExpectedVersion = .any, events: [ProposedEvent]) -> AppendRequest {
    AppendRequest(stream: stream, expectedVersion: expected, events: events)
}

extension EventLog {
    /// The outcome of an append as a value, so tests can look at failures without `do`/`catch`.
    func outcome(_ request: AppendRequest) async -> Result<AppendResult, AppendError> {
        do {
            return .success(try await append(request))
        } catch {
            return .failure(error)
        }
    }

    /// Every event of the log, in position order.
    func everything() throws -> [RecordedEvent] {
        try readAll(from: 1, limit: Int.max, eventTypes: [])
    }

    /// Every event of a stream, in version order.
    func everything(in stream: StreamName) throws -> [RecordedEvent] {
        try readStream(stream, from: 1, limit: Int.max)
    }
}

/// Queues appends through the callback API and awaits their outcomes later.
///
/// The requests are handed to the log synchronously, in order, before anything is awaited.
func enqueue(_ requests: [AppendRequest], on log: some EventLog) -> [AsyncStream<Result<AppendResult, AppendError>>] {
    requests.map { request in
        let (stream, continuation) = AsyncStream<Result<AppendResult, AppendError>>.makeStream()
        log.append(request) { result in
            continuation.yield(result)
            continuation.finish()
        }
        return stream
    }
}

/// Awaits the single outcome each stream delivers.
func outcomes(_ streams: [AsyncStream<Result<AppendResult, AppendError>>]) async -> [Result<AppendResult, AppendError>?]
{
    var results: [Result<AppendResult, AppendError>?] = []
    for stream in streams {
        var result: Result<AppendResult, AppendError>?
        for await value in stream { result = value }
        results.append(result)
    }
    return results
}

extension Result {
    /// The success value, or `nil`.
    var success: Success? {
        if case .success(let value) = self { return value }
        return nil
    }

    /// The failure, or `nil`.
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

/// A value behind a lock, shareable with escaping closures.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<T: Sendable>(_ body: (inout sending Value) -> sending T) -> T {
        mutex.withLock { body(&$0) }
    }
}
