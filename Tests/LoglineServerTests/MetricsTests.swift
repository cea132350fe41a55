import Foundation
import Logging
import LoglineClient
import LoglineCore
import LoglineMetricsEndpoint
import Prometheus
import Testing

/// A Prometheus scrape over plain HTTP: the status, the headers and every sample as `series → value`.
struct Scrape {
    let status: Int
    /// Header names in lower case.
    let headers: [String: String]
    /// `name{labels}` (as the text format writes it) → value.
    let samples: [String: Double]
    let body: String

    /// Sends `GET path` over a new TCP connection, as curl would, and reads the reply to the end.
    static func fetch(port: Int, path: String = "/metrics") async throws -> Scrape {
        let connection = try RawConnection(port: port)
        try connection.send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        let reply = await connection.readToEnd()
        guard let split = reply.range(of: "\r\n\r\n") else { throw TestFailure("no HTTP reply: \(reply)") }
        let head = reply[..<split.lowerBound].components(separatedBy: "\r\n")
        guard let statusLine = head.first, statusLine.hasPrefix("HTTP/1.1 "),
            let status = Int(statusLine.dropFirst(9).prefix(3))
        else { throw TestFailure("no status line: \(reply)") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(
                in: .whitespaces)
        }
        let body = String(reply[split.upperBound...])
        var samples: [String: Double] = [:]
        for line in body.split(separator: "\n") where status == 200 && !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw TestFailure("not a sample line: \(line)")
            }
            samples[String(line[..<space])] = value
        }
        return Scrape(status: status, headers: headers, samples: samples, body: body)
    }

    /// The value of a series, such as `logline_module_lag_events{module="orders"}`.
    subscript(_ series: String) -> Double? { samples[series] }
}

/// `logline serve --metrics-port`: the real server, with the real order modules, emitting into a registry of its
/// own (never `MetricsSystem`, which a process may bootstrap only once), served by the real HTTP endpoint.
@Suite("Prometheus metrics")
struct MetricsTests {
    /// A metrics endpoint on port 0 over `registry`, running until `stop()`.
    final class RunningEndpoint: Sendable {
        let port: Int
        private let task: Task<Void, any Error>

        init(registry: PrometheusCollectorRegistry) async throws {
            var logger = Logger(label: "test")
            logger.logLevel = .warning
            let (ports, continuation) = AsyncStream<Int>.makeStream()
            let endpoint = MetricsEndpoint(registry: registry, host: "127.0.0.1", port: 0, logger: logger) {
                address in
                continuation.yield(address.port ?? 0)
                continuation.finish()
            }
            task = Task { try await endpoint.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next(), port > 0 else {
                task.cancel()
                throw TestFailure("metrics endpoint did not start")
            }
            self.port = port
        }

        func stop() async {
            task.cancel()
            _ = try? await task.value
        }
    }

    @Test func countersMoveAndModulesAreLabelled() async throws {
        let registry = PrometheusCollectorRegistry()
        let server = try await RunningServer.start(
            modules: SagaTests.modules(), metricsFactory: LoglineMetrics.makeFactory(registry: registry))
        let endpoint = try await RunningEndpoint(registry: registry)
        let client = try await server.client()

        // Appends of every outcome: three appended (one by the create-order command), a duplicate, a conflict.
        _ = try await client.send([
            "SUBMIT", "create-order",
            SagaTests.createOrder("o1", customer: "c1", restaurant: "r1", price: "5.00", quantity: 2),
        ])
        let note = try StreamName(aggregateType: "note", aggregateID: "n1")
        let id = EventID.random()
        _ = try await client.append(to: note, eventType: "noted", data: #"{"n":1}"#, eventID: id)
        let again = try await client.append(to: note, eventType: "noted", data: #"{"n":1}"#, eventID: id)
        #expect(again.duplicate)
        await #expect(throws: LoglineClientError.self) {
            _ = try await client.append(to: note, eventType: "noted", data: "{}", expectedVersion: .noStream)
        }
        // A hand-written order-created without the fields the modules need: orders and payment park it.
        let bad = try StreamName(aggregateType: "order", aggregateID: "bad")
        _ = try await client.append(to: bad, eventType: "order-created", data: "{}")
        try await SagaTests.settle(client)
        let head = try await client.info().lastPosition
        _ = try await client.read(note)
        _ = try await client.send(["GET", "orders", "o1"])
        try await client.createGroup("mailer", from: .position(1), eventTypes: ["noted"])
        let deliveries = try await client.fetch(group: "mailer", consumer: "w1")
        #expect(deliveries.count == 1)

        let first = try await Scrape.fetch(port: endpoint.port)
        #expect(first.status == 200)
        #expect(first.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        // The log, recorded once per group commit.
        #expect(first[#"logline_append_requests_total{outcome="appended"}"#] == 3)
        #expect(first[#"logline_append_requests_total{outcome="duplicate"}"#] == 1)
        #expect(first[#"logline_append_requests_total{outcome="conflict"}"#] == 1)
        #expect(first[#"logline_error_replies_total{code="CONFLICT"}"#] == 1)
        #expect(first["logline_appended_events_total"] == Double(head))
        #expect(first["logline_head_position"] == Double(head))
        #expect(first["logline_group_commit_events_sum"] == Double(head))
        let commits = try #require(first["logline_group_commit_events_count"])
        #expect(commits >= 1)
        #expect(first["logline_group_commit_duration_seconds_count"] == commits)
        #expect(first["logline_group_commit_sync_seconds_count"] == commits)
        #expect(first[#"logline_group_commit_duration_seconds_bucket{le="+Inf"}"#] == commits)
        #expect((first["logline_group_commit_requests_sum"] ?? 0) >= 5)
        #expect((first[#"logline_commit_units_total{outcome="committed"}"#] ?? 0) >= 3)
        #expect((first["logline_map_size_bytes"] ?? 0) > 0)
        // Far fewer events than a bulk write of the stream index waits for: every entry is still in memory.
        #expect(first["logline_stream_index_pending_entries"] == Double(head))
        // The journal checkpointed at least when the store opened.
        #expect((first["logline_journal_checkpoint_seconds_count"] ?? 0) >= 1)
        // Each module, by its label: caught up with the head it settled at.
        for module in ["orders", "payment", "restaurant"] {
            let label = #"{module="\#(module)"}"#
            #expect(first["logline_module_checkpoint_position" + label] == Double(head), "\(module)")
            #expect(first["logline_module_lag_events" + label] == 0, "\(module)")
            #expect(first["logline_module_faulted" + label] == 0, "\(module)")
            #expect((first["logline_module_batch_duration_seconds_count" + label] ?? 0) >= 1, "\(module)")
            #expect((first["logline_module_events_processed_total" + label] ?? 0) >= 1, "\(module)")
        }
        #expect(first[#"logline_module_parked_events{module="orders"}"#] == 1)
        #expect(first[#"logline_module_parked_events{module="payment"}"#] == 1)
        #expect(first[#"logline_module_parked_events{module="restaurant"}"#] == 0)
        // The server: requests by verb (appends are the log's), reads, connections.
        #expect(first[#"logline_requests_total{verb="READ"}"#] == 1)
        #expect(first["logline_read_events_total"] == 1)
        #expect(first[#"logline_requests_total{verb="GET"}"#] == 1)
        #expect(first[#"logline_requests_total{verb="SUBMIT"}"#] == 1)
        #expect(first[#"logline_requests_total{verb="APPEND"}"#] == nil)
        #expect(first["logline_connections"] == 1)
        #expect(first["logline_connections_total"] == 1)
        // The consumer group, by its label.
        #expect(first[#"logline_consumer_group_pending{group="mailer"}"#] == 1)
        #expect(first[#"logline_consumer_group_deliveries_total{group="mailer"}"#] == 1)
        #expect(first[#"logline_consumer_group_dead{group="mailer"}"#] == 0)

        // The counters move: two more appends, the delivery acknowledged.
        #expect(try await client.ack(group: "mailer", positions: deliveries.map(\.position)) == 1)
        _ = try await client.append(to: note, eventType: "noted", data: #"{"n":2}"#)
        _ = try await client.append(to: note, eventType: "noted", data: #"{"n":3}"#)
        let second = try await Scrape.fetch(port: endpoint.port)
        #expect(second[#"logline_append_requests_total{outcome="appended"}"#] == 5)
        #expect((second["logline_appended_events_total"] ?? 0) >= Double(head + 2))
        #expect((second["logline_group_commit_events_count"] ?? 0) > commits)
        #expect(second[#"logline_consumer_group_pending{group="mailer"}"#] == 0)
        #expect(second[#"logline_consumer_group_acks_total{group="mailer"}"#] == 1)

        // A deleted group's series go away; anything but /metrics is not found.
        try await client.deleteGroup("mailer")
        let third = try await Scrape.fetch(port: endpoint.port)
        #expect(!third.body.contains(#"group="mailer""#))
        #expect(try await Scrape.fetch(port: endpoint.port, path: "/other").status == 404)

        await client.close()
        await endpoint.stop()
        await server.stop()
    }

    /// The executable bootstraps `MetricsSystem` with Prometheus only when `--metrics-port` is given, and says
    /// where the endpoint listens.
    @Test func theExecutableServesMetricsOnItsMetricsPort() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try ProcessTests.ServerProcess(
            data: directory.path, arguments: ["--metrics-port", "0"], waitingFor: ["metrics on http://"])
        defer { server.terminate() }
        let line = try #require(
            server.startupOutput.split(separator: "\n").first { $0.hasPrefix("logline: metrics on http://127.0.0.1:") })
        let metricsPort = try #require(Int(line.split(separator: ":").last!.split(separator: "/").first!))
        let client = try await LoglineClient.connect(port: server.port)
        for index in 1...3 {
            let stream = try StreamName(aggregateType: "note", aggregateID: "n\(index)")
            _ = try await client.append(to: stream, eventType: "noted", data: "{}")
        }
        let scrape = try await Scrape.fetch(port: metricsPort)
        #expect(scrape.status == 200)
        #expect(scrape[#"logline_append_requests_total{outcome="appended"}"#] == 3)
        #expect(scrape[#"logline_module_lag_events{module="orders"}"#] != nil)
        #expect(scrape["logline_connections"] == 1)
        await client.close()
    }

    @Test func withoutTheOptionNothingListensForMetrics() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let server = try ProcessTests.ServerProcess(data: directory.path, arguments: ["--log-level", "info"])
        defer { server.terminate() }
        #expect(server.startupOutput.contains("metrics_port=off"))
        #expect(!server.startupOutput.contains("metrics endpoint listening"))
    }
}
