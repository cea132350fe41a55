import Foundation
import Logging
import LoglineCore
import LoglineLog
import LoglineModuleAPI
import LoglineProjectionHost
import Synchronization
import Testing

// MARK: - Logging, directories, logs

/// A quiet logger: the host logs parked events and faults, which these tests provoke on purpose.
let testLogger: Logger = {
    var logger = Logger(label: "logline-host-tests")
    logger.logLevel = .critical
    return logger
}()

/// Runs `body` with a fresh, empty temporary directory, and removes the directory afterwards.
func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    let path = URL(fileURLWithPath: NSTemporaryDirectory())
        .appendingPathComponent("logline-host-tests-" + UUID().uuidString).path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// Opens a real LMDB log in `directory`, runs `body`, and always closes the log.
func withLog<T>(at directory: String, _ body: (LMDBEventLog) async throws -> T) async throws -> T {
    let log = try LMDBEventLog(directory: directory, logger: testLogger)
    defer { log.close() }
    return try await body(log)
}

/// A fresh temporary directory with a real LMDB log in it; the log is closed and the directory removed afterwards.
func withFreshLog<T>(_ body: (LMDBEventLog, String) async throws -> T) async throws -> T {
    try await withTemporaryDirectory { directory in
        try await withLog(at: directory) { log in try await body(log, directory) }
    }
}

/// A host configuration; a rebuild batch is four live batches.
func hostConfiguration(batchSize: Int = 7, readYourWritesTimeout: Duration = .seconds(5))
    -> ProjectionHost.Configuration
{
    var configuration = ProjectionHost.Configuration()
    configuration.batchSize = batchSize
    configuration.rebuildBatchSize = 4 * batchSize
    configuration.readYourWritesTimeout = readYourWritesTimeout
    return configuration
}

/// Runs `host` in a task while `body` runs, then cancels it and waits until `run()` has returned (so the log can
/// be closed safely afterwards), whether `body` succeeded or threw.
/// - Parameter whileStopping: Runs after the host is cancelled and before waiting for it to stop (for example to
///   release commits a ``SpyLog`` holds, which the host waits for).
func running<T>(
    _ host: ProjectionHost, whileStopping: @Sendable () -> Void = {}, _ body: () async throws -> T
) async throws -> T {
    let task = Task { try await host.run() }
    do {
        let result = try await body()
        task.cancel()
        whileStopping()
        _ = await task.result
        return result
    } catch {
        task.cancel()
        whileStopping()
        _ = await task.result
        throw error
    }
}

// MARK: - Shared state

/// A value behind a lock, shareable with modules and escaping closures.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<T: Sendable>(_ body: (inout sending Value) -> sending T) -> T {
        mutex.withLock { body(&$0) }
    }

    var value: Value {
        get { withLock { $0 } }
        set { withLock { $0 = newValue } }
    }
}

/// A queue of values that a test awaits one at a time, with a bounded wait.
final class Mailbox<Item: Sendable>: Sendable {
    private struct State {
        var items: [Item] = []
        var waiter: (id: UInt64, continuation: CheckedContinuation<Item?, Never>)?
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    func put(_ item: Item) {
        let waiter = state.withLock { state -> CheckedContinuation<Item?, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter.continuation
            }
            state.items.append(item)
            return nil
        }
        waiter?.resume(returning: item)
    }

    /// The next item, or `nil` when none arrives within `timeout`.
    func next(within timeout: Duration = .seconds(5)) async -> Item? {
        await withCheckedContinuation { continuation in
            let (ready, id) = state.withLock { state -> (Item?, UInt64) in
                if !state.items.isEmpty { return (state.items.removeFirst(), 0) }
                state.nextID += 1
                state.waiter = (state.nextID, continuation)
                return (nil, state.nextID)
            }
            if let ready {
                continuation.resume(returning: ready)
                return
            }
            Task {
                try? await Task.sleep(for: timeout)
                let expired = state.withLock { state -> CheckedContinuation<Item?, Never>? in
                    guard let waiter = state.waiter, waiter.id == id else { return nil }
                    state.waiter = nil
                    return waiter.continuation
                }
                expired?.resume(returning: nil)
            }
        }
    }
}

// MARK: - A log that records what the host does with it

/// What a read made to fail by ``SpyLog/failStateReads(_:)`` throws.
struct SpyLogReadFailure: Error, CustomStringConvertible {
    var description: String { "the test made this read fail" }
}

/// A real ``LMDBEventLog`` behind a thin layer that records the batches the host reads and the units it commits,
/// and can hold back the commits of rebuild batches until the test releases them (like a very slow disk), so a
/// test can look at the host while a rebuild is in progress without sleeping.
final class SpyLog: EventLog {
    struct BatchRead: Sendable {
        var after: LogPosition
        var limit: Int
        var eventTypes: Set<String>
        var returned: Int
        var scannedThrough: LogPosition
    }

    private typealias Completion = @Sendable (Result<[AppendResult], CommitError>) -> Void

    private struct State {
        var reads: [BatchRead] = []
        var units: [CommitUnit] = []
        var holdRebuildBatches = false
        var holdCheckpointBatches = false
        var held: [(CommitUnit, Completion)] = []
        /// The units handed to ``commit(_:completion:)`` whose completion has not been called yet.
        var outstanding: [UInt64: CommitUnit] = [:]
        var nextUnit: UInt64 = 0
        var staleReads: [String] = []
        /// Every state key read from the store, as `table/key`.
        var stateReads: [String] = []
        var failingStateReads = 0
        var failingDocumentReads = 0
    }

    let base: LMDBEventLog
    private let state = Mutex(State())
    /// Receives the number of commits held so far, each time one more is held.
    let heldCommits = Mailbox<Int>()

    init(_ base: LMDBEventLog) {
        self.base = base
    }

    var reads: [BatchRead] { state.withLock { $0.reads } }
    var units: [CommitUnit] { state.withLock { $0.units } }
    /// The state reads of a key that a commit not yet completed writes: the store does not hold what the host
    /// itself is about to write there, so such a read gives the host a stale value.
    var staleReads: [String] { state.withLock { $0.staleReads } }
    /// Every state key read from the store so far, as `table/key`, in order.
    var stateReads: [String] { state.withLock { $0.stateReads } }

    /// Makes the next `count` reads of several state keys at once (``readState(table:keys:)``) fail, as a failing
    /// disk would.
    func failStateReads(_ count: Int) {
        state.withLock { $0.failingStateReads = count }
    }

    /// Makes the next `count` reads of one document of a view (``readState(table:key:)`` of a `v/…` table, as a
    /// module's `document` reads do) fail, as a failing disk would.
    func failDocumentReads(_ count: Int) {
        state.withLock { $0.failingDocumentReads = count }
    }

    /// Whether to hold the commits of rebuild batches from now on.
    func holdRebuildBatches(_ hold: Bool) {
        state.withLock { $0.holdRebuildBatches = hold }
    }

    /// Whether to hold the commits of batches of the live views from now on (those guarded by a module's checkpoint:
    /// a projector catching up, and its live batches).
    func holdCheckpointBatches(_ hold: Bool) {
        state.withLock { $0.holdCheckpointBatches = hold }
    }

    /// Completes the held commits with `error` instead of handing them to the log, as a failing disk would; stops
    /// holding.
    func failHeld(with error: CommitError) {
        for (_, completion) in takeHeld(stopHolding: true) { completion(.failure(error)) }
    }

    /// Completes the oldest held commit with `error`, as a failing disk would, and hands the others to the log;
    /// stops holding.
    func failOldestHeld(with error: CommitError) {
        let held = takeHeld(stopHolding: true)
        guard let (_, oldest) = held.first else { return }
        oldest(.failure(error))
        for (unit, completion) in held.dropFirst() { base.commit(unit, completion: completion) }
    }

    /// Hands the held commits to the log; optionally stops holding.
    func releaseHeld(stopHolding: Bool = false) {
        for (unit, completion) in takeHeld(stopHolding: stopHolding) { base.commit(unit, completion: completion) }
    }

    /// The held commits, oldest first, no longer held; optionally stops holding more.
    private func takeHeld(stopHolding: Bool) -> [(CommitUnit, Completion)] {
        state.withLock { state in
            if stopHolding {
                state.holdRebuildBatches = false
                state.holdCheckpointBatches = false
            }
            defer { state.held = [] }
            return state.held
        }
    }

    /// A rebuild batch: it is guarded by the rebuild's progress (the `rebuild` state table, see ViewStorage) and
    /// is not the swap (which writes the `generation` table).
    private static func isRebuildBatch(_ unit: CommitUnit) -> Bool {
        unit.conditions.contains { $0.table == "rebuild" && $0.expected != nil }
            && !unit.writes.contains { $0.table == "generation" }
    }

    func append(_ request: AppendRequest, completion: @escaping @Sendable (Result<AppendResult, AppendError>) -> Void) {
        base.append(request, completion: completion)
    }

    func commit(_ unit: CommitUnit, completion: @escaping @Sendable (Result<[AppendResult], CommitError>) -> Void) {
        let id = state.withLock { state -> UInt64 in
            state.nextUnit += 1
            state.outstanding[state.nextUnit] = unit
            return state.nextUnit
        }
        let completion: Completion = { [self] result in
            state.withLock { _ = $0.outstanding.removeValue(forKey: id) }
            completion(result)
        }
        let heldCount = state.withLock { state -> Int? in
            state.units.append(unit)
            guard
                (state.holdRebuildBatches && Self.isRebuildBatch(unit))
                    || (state.holdCheckpointBatches && unit.conditions.contains { $0.table == "checkpoint" })
            else { return nil }
            state.held.append((unit, completion))
            return state.held.count
        }
        if let heldCount {
            heldCommits.put(heldCount)
        } else {
            base.commit(unit, completion: completion)
        }
    }

    func readStream(_ stream: StreamName, from version: StreamVersion, limit: Int) throws -> [RecordedEvent] {
        try base.readStream(stream, from: version, limit: limit)
    }

    func readAll(from position: LogPosition, limit: Int, eventTypes: Set<String>) throws -> [RecordedEvent] {
        try base.readAll(from: position, limit: limit, eventTypes: eventTypes)
    }

    func streamVersion(_ stream: StreamName) throws -> StreamVersion { try base.streamVersion(stream) }

    var headPosition: LogPosition { base.headPosition }

    func info() throws -> LogInfo { try base.info() }

    func onCommit(_ listener: @escaping @Sendable (LogPosition) -> Void) { base.onCommit(listener) }

    func readBatch(after position: LogPosition, limit: Int, eventTypes: Set<String>) throws -> EventBatch {
        let batch = try base.readBatch(after: position, limit: limit, eventTypes: eventTypes)
        state.withLock {
            $0.reads.append(
                BatchRead(
                    after: position, limit: limit, eventTypes: eventTypes, returned: batch.events.count,
                    scannedThrough: batch.scannedThrough))
        }
        return batch
    }

    func readState(table: String, key: [UInt8]) throws -> [UInt8]? {
        let fail = state.withLock { state -> Bool in
            guard state.failingDocumentReads > 0, table.hasPrefix("v/") else { return false }
            state.failingDocumentReads -= 1
            return true
        }
        if fail { throw SpyLogReadFailure() }
        noteStaleReads(table: table, keys: [key])
        return try base.readState(table: table, key: key)
    }

    func readState(table: String, keys: [[UInt8]]) throws -> [[UInt8]?] {
        let fail = state.withLock { state -> Bool in
            guard state.failingStateReads > 0 else { return false }
            state.failingStateReads -= 1
            return true
        }
        if fail { throw SpyLogReadFailure() }
        noteStaleReads(table: table, keys: keys)
        return try base.readState(table: table, keys: keys)
    }

    private func noteStaleReads(table: String, keys: [[UInt8]]) {
        state.withLock { state in
            state.stateReads += keys.map { "\(table)/\(String(decoding: $0, as: UTF8.self))" }
            for unit in state.outstanding.values {
                for write in unit.writes where write.table == table && keys.contains(write.key) {
                    state.staleReads.append("\(table)/\(String(decoding: write.key, as: UTF8.self))")
                }
            }
        }
    }

    func scanState(table: String, prefix: [UInt8], after: [UInt8]?, limit: Int) throws -> [(
        key: [UInt8], value: [UInt8]
    )] {
        try base.scanState(table: table, prefix: prefix, after: after, limit: limit)
    }

    func backup(to destination: String) throws -> LogPosition { try base.backup(to: destination) }
}

// MARK: - Events

/// The stream of an item.
func itemStream(_ key: String) -> StreamName { StreamName(uncheckedType: "item", id: key) }

/// A proposed event with a JSON body and optional metadata.
func proposed(_ type: String, _ data: JSONValue, metadata: JSONObject = [:]) -> ProposedEvent {
    ProposedEvent(eventType: type, data: data.jsonBytes, metadata: JSONValue.object(metadata).jsonBytes)
}

/// `item-added` for `key`.
func added(_ key: String, color: String = "red", size: Int = 1, correlation: String? = nil) -> AppendRequest {
    var metadata: JSONObject = [:]
    if let correlation { metadata["correlation_id"] = .string(correlation) }
    return AppendRequest(
        stream: itemStream(key),
        events: [
            proposed(
                "item-added", ["key": .string(key), "color": .string(color), "size": .number(JSONNumber(size))],
                metadata: metadata)
        ])
}

/// `item-recolored` for `key`.
func recolored(_ key: String, to color: String) -> AppendRequest {
    AppendRequest(
        stream: itemStream(key), events: [proposed("item-recolored", ["key": .string(key), "color": .string(color)])])
}

/// `item-removed` for `key`.
func removed(_ key: String) -> AppendRequest {
    AppendRequest(stream: itemStream(key), events: [proposed("item-removed", ["key": .string(key)])])
}

/// An event no test module handles.
func unrelated(_ n: Int) -> AppendRequest {
    AppendRequest(
        stream: StreamName(uncheckedType: "noise", id: "n\(n)"),
        events: [proposed("noise-made", ["n": .number(JSONNumber(n))])])
}

/// A `poison` event for `key`: the poison projectors throw on it.
func poison(_ key: String) -> AppendRequest {
    AppendRequest(stream: itemStream(key), events: [proposed("poison", ["key": .string(key)])])
}

/// A zero-padded key, so that key order is numeric order.
func key(_ n: Int) -> String {
    let digits = String(n)
    return "k" + String(repeating: "0", count: max(0, 3 - digits.count)) + digits
}

extension EventLog {
    /// Appends requests one by one; returns the position of each request's (single) event.
    @discardableResult
    func appendEach(_ requests: [AppendRequest]) async throws -> [LogPosition] {
        var positions: [LogPosition] = []
        for request in requests {
            let result = try await append(request)
            positions.append(result.events[0].position)
        }
        return positions
    }

    /// Appends all requests in one commit unit (one transaction); returns the last position.
    @discardableResult
    func appendAll(_ requests: [AppendRequest]) async throws -> LogPosition {
        let results = try await commit(CommitUnit(appends: requests))
        return results.last?.events.last?.position ?? headPosition
    }

    /// Every event of the log, in position order.
    func everything(types: Set<String> = []) throws -> [RecordedEvent] {
        try readAll(from: 1, limit: Int.max, eventTypes: types)
    }
}

// MARK: - Looking at the host

extension ProjectionHost {
    /// The status of one module.
    func status(_ module: String) async -> ModuleStatus? {
        await moduleStatuses().first { $0.name == module }
    }

    /// A document, parsed.
    func json(view: String, key: String) throws -> JSONValue? {
        try document(view: view, key: key).map { try JSONValue(parsing: $0) }
    }

    /// Every document of a view in key order, parsed.
    func allDocuments(_ view: String, where filter: (field: String, value: String)? = nil) throws -> [JSONValue] {
        try query(view: view, where: filter, limit: 1_000_000, after: nil).map { try JSONValue(parsing: $0) }
    }

    /// The document count `VIEWS` reports for a view.
    func documentCount(_ view: String) -> UInt64? {
        viewStatuses().first { $0.name == view }?.documentCount
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
///
/// Only for states that no awaitable event announces (a module becoming faulted, a rebuild being swapped in):
/// the host has no notification for them, so this looks every few milliseconds, within a bound.
func eventually(
    within timeout: Duration = .seconds(5), _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return try await condition()
}

/// Runs `body` and returns the ``HostError`` it threw, or `nil` (recording an issue) when it threw something else
/// or nothing.
func hostError<T>(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T
) async -> HostError? {
    do {
        _ = try await body()
        Issue.record("expected a HostError, but the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as HostError {
        return error
    } catch {
        Issue.record("expected a HostError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// What a projector's views hold after folding `events` from empty views, in memory: the reference a host's
/// views are compared with.
func fold(_ projector: some Projector, over events: [RecordedEvent]) throws -> [String: [String: JSONValue]] {
    var changes = ViewChanges(views: projector.views, reader: { _, _ in nil })
    for event in events where projector.handledEventTypes.contains(event.eventType) {
        try projector.apply(try ModuleEvent(event), to: &changes)
    }
    var result: [String: [String: JSONValue]] = [:]
    for view in projector.views {
        result[view.name] = (changes.changes[view.name] ?? [:]).compactMapValues { $0 }
    }
    return result
}

/// The documents of a folded view in key order.
func inKeyOrder(_ documents: [String: JSONValue]?) -> [JSONValue] {
    (documents ?? [:]).sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }.map(\.value)
}
