// Micro-benchmarks of Logline's hot paths: parsing a request, encoding an envelope, a group commit and a
// projector batch. Run them from bench/micro with `swift package benchmark` (see bench/README.md).
//
// Every benchmark goes through the public API that the server itself uses, so a change that slows the server's
// path slows the benchmark too.

import Benchmark
import Foundation
import Logging
import LoglineCore
import LoglineLog
import LoglineModuleAPI
import LoglineProjectionHost
import LoglineProtocol
import NIOCore
import OrdersModule
import Synchronization

/// The metrics every benchmark reports.
private let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]

/// A logger that stays quiet unless something goes wrong.
private let quietLogger: Logger = {
    var logger = Logger(label: "logline-benchmarks")
    logger.logLevel = .warning
    return logger
}()

// MARK: - Fixtures

/// The `data` of an order-created event as the `create-order` command writes it (about 300 bytes).
private func orderCreatedData(_ order: Int) -> String {
    #"{"order_id":"o-\#(order)","customer_id":"c\#(order % 5000)","restaurant_id":"r\#(order % 50)","#
        + #""order_items":[{"code":"chk-tikka","name":"Chicken Tikka","unit_price":12.50,"quantity":2},"#
        + #"{"code":"naan","name":"Garlic Naan","unit_price":3.25,"quantity":2}],"amount":31.50,"#
        + #""status":"Pending","created_on":"2026-11-27T13:30:23.012Z"}"#
}

/// One request as a client sends it over netcat: an inline line.
private let inlineAppend = "APPEND order o-1001 order-created \(orderCreatedData(1001))\r\n"

/// The same request as redis-cli and Redis client libraries send it: a RESP array of bulk strings.
private let respAppend: String = {
    let arguments = ["APPEND", "order", "o-1001", "order-created", orderCreatedData(1001)]
    var text = "*\(arguments.count)\r\n"
    for argument in arguments { text += "$\(argument.utf8.count)\r\n\(argument)\r\n" }
    return text
}()

/// An envelope as READ, READALL and SUBSCRIBE send it.
private let sampleEnvelope = RecordedEvent(
    eventID: EventID(high: 0x01a2_1d33_2dc9_7d00, low: 0xb9be_fbf7_2379_b663), eventType: "order-created",
    stream: StreamName(uncheckedType: "order", id: "o-1001"), version: 1, position: 5,
    recordedAt: Timestamp(millisecondsSinceEpoch: 1_795_786_223_049), data: Array(orderCreatedData(1001).utf8),
    metadata: Array("{}".utf8))

/// `count` order events as the saga writes them: for each order, order-created, order-payment-debited, then
/// order-approved, with the orders of a batch interleaved as concurrent sagas interleave them.
private func orderEvents(count: Int, firstPosition: UInt64 = 1) -> [RecordedEvent] {
    var events: [RecordedEvent] = []
    events.reserveCapacity(count)
    let ordersPerWave = 100
    var order = 0
    var position = firstPosition
    func add(_ type: String, _ order: Int, version: UInt64, data: String) {
        guard events.count < count else { return }
        events.append(
            RecordedEvent(
                eventID: EventID(high: 0x01a2_0000_0000_7000 | UInt64(order), low: 0x8000_0000_0000_0000 | position),
                eventType: type, stream: StreamName(uncheckedType: "order", id: "o-\(order)"), version: version,
                position: position, recordedAt: Timestamp(millisecondsSinceEpoch: 1_795_786_223_049 + Int64(position)),
                data: Array(data.utf8), metadata: Array("{}".utf8)))
        position += 1
    }
    while events.count < count {
        let wave = order..<(order + ordersPerWave)
        for id in wave { add("order-created", id, version: 1, data: orderCreatedData(id)) }
        for id in wave {
            add(
                "order-payment-debited", id, version: 2,
                data: #"{"order_id":"o-\#(id)","customer_id":"c\#(id % 5000)","restaurant_id":"r\#(id % 50)","#
                    + #""amount":31.50}"#)
        }
        for id in wave {
            add("order-approved", id, version: 3, data: #"{"order_id":"o-\#(id)","restaurant_id":"r\#(id % 50)"}"#)
        }
        order += ordersPerWave
    }
    return events
}

/// A fresh directory under the system's temporary directory.
private func temporaryDirectory(_ purpose: String) throws -> String {
    let path = NSTemporaryDirectory() + "logline-bench-\(purpose)-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A log that lives for one benchmark: opened by its setup, closed and removed by its teardown.
private final class LogFixture: Sendable {
    private struct State {
        var log: LMDBEventLog?
        var directory: String?
        var nextStream = 0
    }
    private let state = Mutex(State())

    /// Opens a new log in a fresh directory.
    func open() throws {
        let directory = try temporaryDirectory("log")
        let log = try LMDBEventLog(directory: directory, logger: quietLogger)
        state.withLock { state in
            state.log = log
            state.directory = directory
        }
    }

    /// The open log.
    var log: LMDBEventLog {
        state.withLock { $0.log! }
    }

    /// `count` appends of one order-created event each, to streams no earlier call used.
    func nextAppends(_ count: Int) -> [AppendRequest] {
        let first = state.withLock { state in
            defer { state.nextStream += count }
            return state.nextStream
        }
        return (first..<(first + count)).map { id in
            AppendRequest(
                stream: StreamName(uncheckedType: "order", id: "g-\(id)"),
                events: [ProposedEvent(eventType: "order-created", data: Array(orderCreatedData(id).utf8))])
        }
    }

    /// Closes the log and removes its directory.
    func close() {
        let (log, directory) = state.withLock { ($0.log, $0.directory) }
        log?.close()
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
        state.withLock { state in state = State() }
    }
}

private let groupCommitFixture = LogFixture()
private let concurrentAppendFixture = LogFixture()

/// A stopped store holding order events, copied afresh for each run of the projection host.
private final class StoreTemplate: Sendable {
    private let directory = Mutex<String?>(nil)
    /// The events in the template.
    let eventCount: Int

    init(eventCount: Int) {
        self.eventCount = eventCount
    }

    /// Writes the template store.
    func create() async throws {
        let path = try temporaryDirectory("template")
        let log = try LMDBEventLog(directory: path, logger: quietLogger)
        let events = orderEvents(count: eventCount)
        for start in stride(from: 0, to: events.count, by: 1000) {
            let appends = events[start..<min(start + 1000, events.count)].map { event in
                AppendRequest(
                    stream: event.stream,
                    events: [
                        ProposedEvent(
                            eventID: event.eventID, eventType: event.eventType, data: event.data,
                            metadata: event.metadata)
                    ])
            }
            _ = try await log.commit(CommitUnit(appends: Array(appends)))
        }
        log.close()
        directory.withLock { $0 = path }
    }

    /// Runs `body` on a log opened over a fresh copy of the template, which is checked to hold every event;
    /// closes the log and removes the copy afterwards.
    func withCopy(_ body: (LMDBEventLog) async throws -> Void) async throws {
        let source = directory.withLock { $0! }
        let copy = NSTemporaryDirectory() + "logline-bench-store-" + UUID().uuidString
        try FileManager.default.copyItem(atPath: source, toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let log = try LMDBEventLog(directory: copy, logger: quietLogger)
        defer { log.close() }
        guard log.headPosition == UInt64(eventCount) else {
            throw BenchmarkFailure(description: "the copied store holds \(log.headPosition) events")
        }
        try await body(log)
    }

    /// Removes the template.
    func remove() {
        if let path = directory.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
    }
}

private let hostTemplate = StoreTemplate(eventCount: 10_000)

/// Why a benchmark could not do its work.
private struct BenchmarkFailure: Error, CustomStringConvertible {
    let description: String
}

// MARK: - Benchmarks

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: metrics, maxDuration: .seconds(2))

    // Parsing a request: framing the bytes (RequestFrameDecoder), then understanding them (RequestParser), as the
    // server's decoder handler does for each request. An iteration runs 1,000 requests; the figures are per
    // request (the scaling factor divides them).
    let decoder = RequestFrameDecoder()
    let parser = RequestParser()
    for (name, text) in [("inline", inlineAppend), ("RESP", respAppend)] {
        let bytes = ByteBuffer(string: text)
        Benchmark(
            "Parse one \(name) APPEND (frame + parse)",
            configuration: .init(metrics: metrics, scalingFactor: .kilo)
        ) { benchmark throws in
            for _ in benchmark.scaledIterations {
                var buffer = bytes
                guard case .frame(let frame) = decoder.decode(&buffer) else {
                    throw BenchmarkFailure(description: "the request did not frame")
                }
                blackHole(try parser.parse(frame))
            }
        }
    }

    // Encoding an envelope: the JSON of one event and its RESP bulk framing, as READ and SUBSCRIBE write it.
    // Per envelope, measured over 1,000 per iteration.
    Benchmark("Encode one envelope (JSON + RESP bulk)", configuration: .init(metrics: metrics, scalingFactor: .kilo)) {
        benchmark in
        var buffer = ByteBufferAllocator().buffer(capacity: 1024)
        var json: [UInt8] = []
        json.reserveCapacity(1024)
        for _ in benchmark.scaledIterations {
            buffer.clear()
            json.removeAll(keepingCapacity: true)
            sampleEnvelope.appendJSON(to: &json)
            ReplyWriter.bulk(json, into: &buffer)
            blackHole(buffer)
        }
    }

    // A group commit: 100 appends of one event each, to 100 new streams, in one durable LMDB transaction (one
    // commit and its fsyncs). One commit per iteration; the log grows across iterations.
    Benchmark(
        "Group commit: 100 appends in one CommitUnit (LMDBEventLog, fsync)",
        configuration: .init(
            metrics: metrics, maxDuration: .seconds(3),
            setup: { try groupCommitFixture.open() }, teardown: { groupCommitFixture.close() })
    ) { (benchmark: Benchmark) async throws in
        for _ in benchmark.scaledIterations {
            let unit = CommitUnit(appends: groupCommitFixture.nextAppends(100))
            benchmark.startMeasurement()
            let results = try await groupCommitFixture.log.commit(unit)
            benchmark.stopMeasurement()
            guard results.count == 100 else { throw BenchmarkFailure(description: "\(results.count) results") }
        }
    }

    // The same 100 appends sent at once as 100 separate requests, as 100 connections' APPENDs reach the log: the
    // writer thread gathers what is waiting into group commits. One round of 100 per iteration.
    Benchmark(
        "Group commit: 100 concurrent appends through the writer (LMDBEventLog, fsync)",
        configuration: .init(
            metrics: metrics, maxDuration: .seconds(3),
            setup: { try concurrentAppendFixture.open() }, teardown: { concurrentAppendFixture.close() })
    ) { (benchmark: Benchmark) async throws in
        for _ in benchmark.scaledIterations {
            let requests = concurrentAppendFixture.nextAppends(100)
            let log = concurrentAppendFixture.log
            benchmark.startMeasurement()
            let failures = await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
                let remaining = Mutex((count: requests.count, failures: 0))
                for request in requests {
                    log.append(request) { result in
                        let done = remaining.withLock { state -> Int? in
                            state.count -= 1
                            if case .failure = result { state.failures += 1 }
                            return state.count == 0 ? state.failures : nil
                        }
                        if let done { continuation.resume(returning: done) }
                    }
                }
            }
            benchmark.stopMeasurement()
            guard failures == 0 else { throw BenchmarkFailure(description: "\(failures) appends failed") }
        }
    }

    // A projector batch: 1,000 order events through OrdersProjector the way the host runs a batch (decode each
    // event's JSON into a ModuleEvent, apply it inside a savepoint of the batch's ViewChanges), then encode the
    // changed documents. Through LoglineModuleAPI, without storage: the next benchmark adds LMDB.
    let batch = orderEvents(count: 1000)
    let projector = OrdersProjector()
    Benchmark("Projector batch: OrdersProjector over 1,000 events (ModuleAPI, no storage)") { benchmark throws in
        for _ in benchmark.scaledIterations {
            var changes = ViewChanges(views: projector.views, reader: { _, _ in nil })
            for event in batch {
                let moduleEvent = try ModuleEvent(event)
                changes.beginSavepoint()
                try projector.apply(moduleEvent, to: &changes)
                changes.releaseSavepoint()
            }
            var bytes = 0
            for (_, documents) in changes.changes {
                for (_, document) in documents { bytes += document?.jsonBytes.count ?? 0 }
            }
            blackHole(bytes)
        }
    }

    // The projection host end to end: a ProjectionHost running OrdersProjector over a store of 10,000 order
    // events, from an empty view until the view has caught up with the head (batches of 1,000, each committed
    // with its checkpoint). The store is copied afresh, outside the measurement, for each iteration.
    Benchmark(
        "Projection host: OrdersProjector catches up over 10,000 events (LMDB)",
        configuration: .init(
            metrics: metrics, maxDuration: .seconds(5), maxIterations: 20,
            setup: { try await hostTemplate.create() }, teardown: { hostTemplate.remove() })
    ) { (benchmark: Benchmark) async throws in
        for _ in benchmark.scaledIterations {
            try await hostTemplate.withCopy { log in
                let head = log.headPosition
                benchmark.startMeasurement()
                let host = try ProjectionHost(log: log, modules: [OrdersProjector()], logger: quietLogger)
                let running = Task { try await host.run() }
                try await host.waitForView(OrdersProjector.viewName, at: head)
                benchmark.stopMeasurement()
                running.cancel()
                _ = try? await running.value
            }
        }
    }

    // REBUILD: the same host, caught up outside the measurement, replays OrdersProjector over the 10,000 events into
    // a new generation of its view (each batch committing while the next runs through the projector) until the
    // rebuilt view is swapped in. The swap is announced by nothing that can be awaited, so the status is polled.
    Benchmark(
        "Projection host: REBUILD orders over 10,000 events (LMDB)",
        configuration: .init(
            metrics: metrics, maxDuration: .seconds(5), maxIterations: 20,
            setup: { try await hostTemplate.create() }, teardown: { hostTemplate.remove() })
    ) { (benchmark: Benchmark) async throws in
        for _ in benchmark.scaledIterations {
            try await hostTemplate.withCopy { log in
                let head = log.headPosition
                let host = try ProjectionHost(log: log, modules: [OrdersProjector()], logger: quietLogger)
                let running = Task { try await host.run() }
                try await host.waitForView(OrdersProjector.viewName, at: head)
                benchmark.startMeasurement()
                _ = try await host.rebuild(module: "orders")
                func orders() async -> ModuleStatus? { await host.moduleStatuses().first { $0.name == "orders" } }
                while await orders()?.rebuildPosition != nil { try await Task.sleep(for: .microseconds(100)) }
                benchmark.stopMeasurement()
                let rebuilt = await orders()
                running.cancel()
                _ = try? await running.value
                guard rebuilt?.checkpoint == head, rebuilt?.eventsProcessed == UInt64(hostTemplate.eventCount) else {
                    throw BenchmarkFailure(description: "after the rebuild: \(String(describing: rebuilt))")
                }
            }
        }
    }
}
