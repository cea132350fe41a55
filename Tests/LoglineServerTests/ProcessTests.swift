import Foundation
import LoglineClient
import LoglineCore
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The real `logline` executable, started as a process: the directory lock, kill -9, the CLI and redis-cli.
@Suite("logline executable", .serialized)
struct ProcessTests {
    /// A `logline serve` process on port 0; the port is read from its "listening on" line.
    final class ServerProcess {
        let process = Process()
        let port: Int
        /// What the server wrote on standard error until it listened.
        let startupOutput: String
        private let errorPipe = Pipe()

        /// Starts the server with `arguments` after the data directory and port, and waits until its standard error
        /// holds each of `markers` (always "listening on").
        init(data: String, arguments: [String] = [], waitingFor markers: [String] = []) throws {
            process.executableURL = URL(fileURLWithPath: try loglineExecutable())
            process.arguments = ["serve", "--data", data, "--port", "0", "--log-level", "warning"] + arguments
            process.standardError = errorPipe
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            (self.port, self.startupOutput) = try readListeningPort(
                from: errorPipe.fileHandleForReading, waitingFor: markers)
        }

        func kill9() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        func terminate() {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// The receipts of acknowledged appends, shared between writer tasks.
    final class Acknowledged<Key: Hashable & Sendable, Value: Sendable>: Sendable {
        let receipts = Mutex<[Key: Value]>([:])
        let reachedTarget: AsyncStream<Void>
        private let continuation: AsyncStream<Void>.Continuation
        private let target: Int

        init(target: Int) {
            (reachedTarget, continuation) = AsyncStream<Void>.makeStream()
            self.target = target
        }

        func record(_ receipt: Value, for id: Key) {
            let count = receipts.withLock {
                $0[id] = receipt
                return $0.count
            }
            if count == target { continuation.yield() }
        }

        func writersStopped() { continuation.finish() }
    }

    /// Appends events of type `e` with fresh ids from `lanes` tasks on each client (the tasks of one client
    /// pipeline on its connection), each over `streamsPerLane` streams of its own, until the connection fails;
    /// records every acknowledged append, and says when all writers have stopped.
    static func appendUntilCutOff(
        _ clients: [LoglineClient], lanes: Int, streamsPerLane: Int,
        into acknowledged: Acknowledged<EventID, AppendReceipt>
    ) async {
        await withTaskGroup(of: Void.self) { group in
            for (index, client) in clients.enumerated() {
                for lane in 0..<lanes {
                    group.addTask {
                        for sequence in 0..<100_000 {
                            let id = EventID.random()
                            let stream = try! StreamName(
                                aggregateType: "order", aggregateID: "k\(index)-\(lane)-\(sequence % streamsPerLane)")
                            do {
                                let receipt = try await client.append(
                                    to: stream, eventType: "e", data: "{\"n\":\(sequence)}", eventID: id)
                                acknowledged.record(receipt, for: id)
                            } catch {
                                return
                            }
                        }
                    }
                }
            }
        }
        acknowledged.writersStopped()
    }

    @Test func secondServerOnTheSameDirectoryIsRefused() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let first = try ServerProcess(data: directory.path)
        let second = try runProgram(try loglineExecutable(), ["serve", "--data", directory.path, "--port", "0"])
        #expect(second.status != 0)
        #expect(second.error.contains("in use by another Logline server"))
        first.terminate()
        #expect(first.process.terminationStatus == 0)
    }

    @Test func killDashNineLosesNoAcknowledgedEvent() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try ServerProcess(data: directory.path)
        let port = server.port
        let acknowledged = Acknowledged<EventID, AppendReceipt>(target: 2000)
        let clients = try await withThrowingTaskGroup(of: LoglineClient.self) { group in
            for _ in 0..<8 { group.addTask { try await LoglineClient.connect(port: port) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        // Writers append until their connection dies; the server is killed once enough are acknowledged.
        let writers = Task { await Self.appendUntilCutOff(clients, lanes: 1, streamsPerLane: 5, into: acknowledged) }
        // Kill once 2,000 appends are acknowledged (or when the writers stop on their own, which fails below).
        for await _ in acknowledged.reachedTarget { break }
        server.kill9()
        await writers.value
        for client in clients { await client.close() }

        let restarted = try ServerProcess(data: directory.path)
        let client = try await LoglineClient.connect(port: restarted.port)
        let all = try await readWholeLog(client)
        #expect(all.map(\.position) == Array(1...UInt64(all.count)))
        let stored = Dictionary(all.map { ($0.eventID, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(stored.count == all.count)
        let acked = acknowledged.receipts.withLock { $0 }
        #expect(acked.count >= 2000)
        for (id, receipt) in acked {
            #expect(stored[id]?.position == receipt.position)
        }
        var versions: [StreamName: [StreamVersion]] = [:]
        for event in all { versions[event.stream, default: []].append(event.version) }
        for (_, list) in versions { #expect(list == Array(1...UInt64(list.count))) }
        await client.close()
        restarted.terminate()
    }

    @Test func sigtermAnswersEveryAppendItTookInAndExitsCleanly() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try ServerProcess(data: directory.path)
        let port = server.port
        // A consumer blocked in FETCH for ten minutes: shutdown must end the wait, not sit it out.
        let consumer = try await LoglineClient.connect(port: port)
        try await consumer.createGroup("mailer", from: .now, eventTypes: ["never-appended"])
        let blockedFetch = Task { () -> Result<Int, any Error> in
            do {
                return .success(
                    try await consumer.fetch(group: "mailer", consumer: "w1", block: .seconds(600)).count)
            } catch {
                return .failure(error)
            }
        }
        // Pipelined appenders: four tasks share each connection, so requests are in flight at every stage.
        let acknowledged = Acknowledged<EventID, AppendReceipt>(target: 2000)
        let clients = try await withThrowingTaskGroup(of: LoglineClient.self) { group in
            for _ in 0..<4 { group.addTask { try await LoglineClient.connect(port: port) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let writers = Task { await Self.appendUntilCutOff(clients, lanes: 4, streamsPerLane: 3, into: acknowledged) }
        for await _ in acknowledged.reachedTarget { break }
        server.terminate()  // SIGTERM, then wait for the exit.
        #expect(server.process.terminationStatus == 0)
        await writers.value
        // The blocked FETCH was answered (with nothing), not cut off.
        if case .success(let delivered) = await blockedFetch.value {
            #expect(delivered == 0)
        } else {
            Issue.record("the blocked FETCH was cut off instead of answered")
        }
        for client in clients { await client.close() }
        await consumer.close()

        // Every append the server took in was answered: what is stored is exactly what was acknowledged.
        let restarted = try ServerProcess(data: directory.path)
        let client = try await LoglineClient.connect(port: restarted.port)
        let all = try await readWholeLog(client)
        #expect(all.map(\.position) == Array(1...UInt64(all.count)))
        let acked = acknowledged.receipts.withLock { $0 }
        #expect(acked.count >= 2000)
        let storedIDs = Set(all.filter { $0.eventType == "e" }.map(\.eventID))
        #expect(storedIDs.subtracting(acked.keys).count == 0, "stored but never answered")
        #expect(Set(acked.keys).subtracting(storedIDs).count == 0, "acknowledged but missing")
        for event in all where event.eventType == "e" {
            #expect(acked[event.eventID]?.position == event.position)
        }
        await client.close()
        restarted.terminate()
    }

    @Test func killDashNineInABurstOfOrdersLeavesEveryOrderFinalAndNoEventTwice() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try ServerProcess(data: directory.path)
        let port = server.port
        let acknowledged = Acknowledged<String, Int>(target: 60)
        let setup = try await LoglineClient.connect(port: port)
        _ = try await setup.send(["APPEND", "restaurant", "r3", "restaurant-closed", "{}"])
        await setup.close()
        let writers = Task {
            await withTaskGroup(of: Void.self) { group in
                for worker in 0..<6 {
                    group.addTask {
                        guard let client = try? await LoglineClient.connect(port: port) else { return }
                        for index in 0..<1000 {
                            let id = "k\(worker)-\(index)"
                            let body = SagaTests.createOrder(
                                id, customer: "c\(index % 9)", restaurant: index % 4 == 0 ? "r3" : "r1", price: "3.50",
                                quantity: 1)
                            do {
                                let reply = try await client.send(["SUBMIT", "create-order", body])
                                let fields = try SagaTests.json(reply)
                                acknowledged.record(fields["position"] as? Int ?? 0, for: id)
                            } catch {
                                break
                            }
                        }
                        await client.close()
                    }
                }
            }
            acknowledged.writersStopped()
        }
        for await _ in acknowledged.reachedTarget { break }
        server.kill9()
        await writers.value
        let restarted = try ServerProcess(data: directory.path)
        let client = try await LoglineClient.connect(port: restarted.port)
        try await SagaTests.settle(client)
        // Every order that was created reached a final state, with no event twice in its stream.
        var created: [RecordedEvent] = []
        while true {
            let page = try await client.readAll(
                fromPosition: (created.last?.position ?? 0) + 1, count: 10_000, eventTypes: ["order-created"])
            if page.isEmpty { break }
            created += page
        }
        #expect(created.count >= 60)
        // Every acknowledged order is there.
        let createdIDs = Set(created.map(\.stream.aggregateID))
        for (id, position) in acknowledged.receipts.withLock({ $0 }) {
            #expect(createdIDs.contains(id), "acknowledged order \(id) at \(position) is missing")
        }
        for event in created {
            let events = try await client.read(event.stream).map(\.eventType)
            #expect(Set(events).count == events.count, "\(event.stream): \(events)")
            let document = try SagaTests.json(try await client.send(["GET", "orders", event.stream.aggregateID]))
            let status = document["status"] as? String
            #expect(status == "Approved" || status == "Rejected", "\(event.stream) is \(status ?? "missing")")
        }
        // The incremental views equal a full rebuild.
        func allOrders() async throws -> [String] {
            var result: [String] = []
            var after: String?
            while true {
                var arguments = ["QUERY", "orders", "LIMIT", "1000"]
                if let after { arguments += ["AFTER", after] }
                guard case .array(let items?) = try await client.send(arguments), !items.isEmpty else { return result }
                let texts = items.compactMap(\.text)
                result += texts
                after = try SagaTests.json(items.last!)["order_id"] as? String
            }
        }
        let incremental = try await allOrders()
        _ = try await client.send(["REBUILD", "orders"])
        var rebuilt = false
        for _ in 0..<1000 where !rebuilt {
            // The end of a rebuild is visible only through PROJECTIONS: poll it, bounded.
            guard case .array(let statuses?) = try await client.send(["PROJECTIONS"]) else { break }
            let orders = try statuses.map { try SagaTests.json($0) }.first { $0["name"] as? String == "orders" }
            rebuilt = orders?["state"] as? String == "running" && orders?["rebuild_position"] == nil
            if !rebuilt { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(rebuilt)
        #expect(try await allOrders() == incremental)
        await client.close()
        restarted.terminate()
    }

    @Test("serve runs as many event loops as --event-loop-threads says, and refuses 0")
    func eventLoopThreads() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try ServerProcess(data: directory.path, arguments: ["--event-loop-threads", "3"])
        defer { server.terminate() }
        #expect(try Self.eventLoopThreadCount(of: server.process.processIdentifier) == 3)
        #expect(try runProgram(try loglineExecutable(), ["ping", "--port", String(server.port)]).output == "PONG\n")
        let refused = try runProgram(
            try loglineExecutable(), ["serve", "--data", directory.path + "/other", "--event-loop-threads", "0"])
        #expect(refused.status != 0)
        #expect(refused.error.contains("--event-loop-threads must be between 1 and 1024"))
    }

    /// How many of a process's threads are NIO event loops of a group it made (named `NIO-ELT-…`).
    private static func eventLoopThreadCount(of pid: Int32) throws -> Int {
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")
        return try tasks.filter { task in
            try String(contentsOfFile: "/proc/\(pid)/task/\(task)/comm", encoding: .utf8).hasPrefix("NIO-ELT")
        }.count
    }

    @Test func cliPrintsRepliesAndFailsWithOneLine() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try ServerProcess(data: directory.path)
        let logline = try loglineExecutable()
        let port = String(server.port)
        let append = try runProgram(logline, ["append", "--port", port, "order", "o1", "order-created", #"{"a":1}"#])
        #expect(append.status == 0)
        #expect(append.output.contains("\"position\":1"))
        let conflict = try runProgram(
            logline, ["append", "--port", port, "--expect", "0", "order", "o1", "order-created", "{}"])
        #expect(conflict.status == 1)
        #expect(conflict.error.hasPrefix("logline: error: CONFLICT"))
        #expect(conflict.error.split(separator: "\n").count == 1)
        let many = try runProgram(
            logline,
            [
                "appendmany", "--port", port, "order", "o1",
                #"[{"event_type":"a","data":1},{"event_type":"b","data":2}]"#,
            ])
        #expect(many.status == 0)
        #expect(many.output.contains("\"last_position\":3"))
        let read = try runProgram(logline, ["read", "--port", port, "order", "o1"])
        #expect(read.output.split(separator: "\n").count == 3)
        let readAll = try runProgram(logline, ["readall", "--port", port, "--type", "b"])
        #expect(readAll.output.split(separator: "\n").count == 1)
        let info = try runProgram(logline, ["info", "--port", port])
        #expect(info.output.contains("\"event_count\":3"))
        #expect(try runProgram(logline, ["ping", "--port", port]).output == "PONG\n")
        server.terminate()
        let refused = try runProgram(logline, ["ping", "--port", port])
        #expect(refused.status == 1)
        #expect(refused.error.hasPrefix("logline: error: cannot connect"))
    }

    @Test(.enabled(if: which("redis-cli") != nil, "redis-cli is not installed"))
    func redisCLISpeaksToTheServer() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try ServerProcess(data: directory.path)
        let redis = which("redis-cli")!
        let port = String(server.port)
        let append = try runProgram(
            redis, ["-p", port, "APPEND", "order", "o1", "order-created", #"{"customer_id":"c1"}"#])
        #expect(append.output.contains(#""position":1,"version":1"#))
        let read = try runProgram(redis, ["-p", port, "READ", "order", "o1"])
        #expect(read.output.contains(#""data":{"customer_id":"c1"}"#))
        let conflict = try runProgram(redis, ["-p", port, "APPEND", "order", "o1", "x", "EXPECT", "0", "{}"])
        #expect(conflict.output.contains("CONFLICT"))
        #expect(conflict.output.contains("version 1"))
        let bad = try runProgram(redis, ["-p", port, "APPEND", "order", "o1", "x", "{nope"])
        #expect(bad.output.contains("BADJSON"))
        #expect(try runProgram(redis, ["-p", port, "PING"]).output == "PONG\n")
        server.terminate()
    }

    @Test(.enabled(if: which("redis-benchmark") != nil, "redis-benchmark is not installed"))
    func redisBenchmarkDrivesAppendWithoutErrors() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try ServerProcess(data: directory.path)
        let result = try runProgram(
            which("redis-benchmark")!,
            [
                "-p", String(server.port), "-c", "10", "-P", "4", "-n", "2000", "-q", "APPEND", "order", "__rand_int__",
                "order-created", #"{"x":1}"#,
            ])
        #expect(!result.output.contains("ERR"))
        #expect(!result.error.contains("Error"))
        let client = try await LoglineClient.connect(port: server.port)
        #expect(try await client.info().eventCount == 2000)
        await client.close()
        server.terminate()
    }
}
