// A notification service outside the server: it consumes the consumer group "notifications" (order-approved
// and order-rejected) with two workers, and tells the customer of each order how it ended.
//
//     swift run NotificationService [--host 127.0.0.1] [--port 7480] [--token TOKEN]   (or LOGLINE_TOKEN)
//
// Stop it with Ctrl-C (SIGINT) or SIGTERM. See examples/README.md.

import Dispatch
import Foundation
import LoglineClient
import LoglineCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The notification service: options, the group, the workers, the notifications.
enum NotificationService {
    /// The consumer group the service reads.
    static let group = "notifications"
    /// The event types the group receives.
    static let eventTypes = ["order-approved", "order-rejected"]
    /// The consumers: each handles its share of the events.
    static let workers = ["worker-1", "worker-2"]

    /// Runs the service until SIGINT or SIGTERM.
    /// - Returns: The exit status.
    static func run(arguments: [String]) async -> Int32 {
        let host: String
        let port: Int
        let token: String?
        switch options(arguments) {
        case .success(let options): (host, port, token) = options
        case .failure(let usage):
            emit(usage.text, to: usage.isError ? 2 : 1)
            return usage.isError ? 2 : 0
        }

        let client: LoglineClient
        do {
            client = try await LoglineClient.connect(host: host, port: port, token: token)
            try await createGroup(client)
        } catch {
            emit("notification-service: \(error)\n", to: 2)
            return 1
        }

        let consumers = Task {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for worker in workers {
                    tasks.addTask {
                        try await client.consume(group: group, consumer: worker) { delivery in
                            emit(try notification(by: worker, for: delivery) + "\n", to: 1)
                        }
                    }
                }
                // The first worker to fail cancels the other.
                try await tasks.waitForAll()
            }
        }
        let signals = stopOnSignals([SIGINT, SIGTERM]) { consumers.cancel() }
        emit(
            "notification-service: consuming \(group) on \(host):\(port) with \(workers.joined(separator: ", "))\n",
            to: 2)

        let status: Int32
        do {
            try await consumers.value
            emit("notification-service: stopped\n", to: 2)
            status = 0
        } catch {
            emit("notification-service: \(error)\n", to: 2)
            status = 1
        }
        for source in signals { source.cancel() }
        await client.close()
        return status
    }

    /// Creates the group, or leaves it as it is when it exists already.
    static func createGroup(_ client: LoglineClient) async throws(LoglineClientError) {
        do {
            try await client.createGroup(group, eventTypes: eventTypes)
        } catch  where error.code == .conflict {
            // It exists: its cursor and its pending deliveries carry on from the last run.
        }
    }

    /// The line that tells a customer how an order ended.
    /// - Returns: For example `worker-1 notifies customer of order o-1004: rejected (restaurant r3 is closed)`.
    /// - Throws: When the event's data is not JSON; the delivery is then given back and, after the group's most
    ///   deliveries, becomes a dead letter.
    static func notification(by worker: String, for delivery: Delivery) throws -> String {
        let event = delivery.event
        let data = try JSONValue(parsing: event.data)
        let order = data["order_id"]?.stringValue ?? event.stream.aggregateID
        let outcome: String
        switch event.eventType {
        case "order-approved":
            outcome = "approved"
        case "order-rejected":
            outcome = "rejected (\(data["reason"]?.stringValue ?? "no reason given"))"
        default:
            outcome = event.eventType
        }
        let again = delivery.deliveryCount > 1 ? " [delivery \(delivery.deliveryCount)]" : ""
        return "\(worker) notifies customer of order \(order): \(outcome)\(again)"
    }

    /// What went wrong with the command line, or the help asked for.
    struct Usage: Error {
        var text: String
        var isError: Bool
    }

    /// Reads `--host`, `--port` and `--token` (the token also from `LOGLINE_TOKEN`).
    static func options(_ arguments: [String]) -> Result<(host: String, port: Int, token: String?), Usage> {
        let usage =
            "usage: NotificationService [--host HOST] [--port PORT] [--token TOKEN]   (default 127.0.0.1:7480)\n"
        var host = "127.0.0.1"
        var port = 7480
        var token = ProcessInfo.processInfo.environment["LOGLINE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        var rest = arguments[...]
        while let argument = rest.popFirst() {
            switch argument {
            case "--host":
                guard let value = rest.popFirst() else { return .failure(Usage(text: usage, isError: true)) }
                host = value
            case "--port":
                guard let value = rest.popFirst().flatMap({ Int($0) }), (1...65535).contains(value) else {
                    return .failure(Usage(text: usage, isError: true))
                }
                port = value
            case "--token":
                guard let value = rest.popFirst() else { return .failure(Usage(text: usage, isError: true)) }
                token = value
            case "-h", "--help":
                return .failure(Usage(text: usage, isError: false))
            default:
                return .failure(Usage(text: "unknown argument '\(argument)'\n" + usage, isError: true))
            }
        }
        return .success((host, port, token))
    }

    /// Calls `stop` on the first of these signals, instead of letting them end the process.
    /// - Returns: The signal sources; keep them until the service stops.
    static func stopOnSignals(_ numbers: [Int32], stop: @escaping @Sendable () -> Void) -> [any DispatchSourceSignal] {
        let queue = DispatchQueue(label: "notification-service.signals")
        return numbers.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler(handler: stop)
            source.resume()
            return source
        }
    }

    /// Writes a line at once, in one piece, so that the workers' lines never mix.
    static func emit(_ text: String, to descriptor: Int32) {
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let result = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + done, $0.count - done) }
            guard result > 0 else { return }
            done += result
        }
    }
}

exit(await NotificationService.run(arguments: Array(CommandLine.arguments.dropFirst())))
