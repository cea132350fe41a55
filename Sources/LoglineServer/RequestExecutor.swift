import Logging
import LoglineConsumerGroups
import LoglineCore
import LoglineLog
import LoglineProjectionHost
import LoglineProtocol
import NIOCore
import Synchronization

/// A reply that completed away from the event loop: rendered already, or an append's outcome that the event loop
/// renders (``RequestExecutor/render(_:)``), so that the log's writer thread, which completes every append, spends
/// its time on the next group commit rather than on JSON.
enum CompletedReply: Sendable {
    case rendered(ByteBuffer)
    case append(Result<AppendResult, AppendError>, many: Bool)
}

/// Where a reply that completes later goes: a slot of a connection, by way of its ``ReplyRouter``.
///
/// A value, so that a request answered at once (most of them) costs no allocation for a completion it never uses.
struct ReplySink: Sendable {
    let router: ReplyRouter
    let slot: Int
    let isAppend: Bool

    /// Hands the reply to the connection's event loop.
    func deliver(_ reply: CompletedReply) {
        router.deliver((slot, isAppend, reply))
    }
}

/// Carries out requests against the log and renders their replies; knows nothing of sockets.
///
/// Reads run on the caller's thread (LMDB readers never wait for the writer) and return their reply at once.
/// Appends go to the log's group commit and reply through `completion` once durable.
final class RequestExecutor: Sendable {
    private let log: any EventLog
    private let host: ProjectionHost?
    private let groups: ConsumerGroups?
    private let logger: Logger
    private let allocator = ByteBufferAllocator()
    private let startedAt = ContinuousClock.now
    private let openConnections = Atomic<Int>(0)
    private let totalConnections = Atomic<Int>(0)
    /// The server's metrics, shared with its connection handlers.
    let metrics: ServerMetrics
    /// The server's version, reported by `INFO`.
    static let version = "0.1.0"

    init(log: any EventLog, host: ProjectionHost?, groups: ConsumerGroups?, logger: Logger, metrics: ServerMetrics) {
        self.log = log
        self.host = host
        self.groups = groups
        self.logger = logger
        self.metrics = metrics
    }

    /// Counts a new connection.
    /// - Returns: The number of open connections, this one included.
    func connectionOpened() -> Int {
        totalConnections.add(1, ordering: .relaxed)
        metrics.connectionsTotal.increment()
        metrics.connections.increment()
        return openConnections.add(1, ordering: .relaxed).newValue
    }

    func connectionClosed() {
        openConnections.subtract(1, ordering: .relaxed)
        metrics.connections.decrement()
    }

    /// Runs `request`.
    /// - Parameters:
    ///   - request: The request.
    ///   - tasks: Where work that completes later is started, so that it ends with its connection.
    ///   - completion: Receives the reply when it is not ready at once.
    /// - Returns: The reply when it is ready now; `nil` when it will come through `completion`.
    func execute(
        _ request: Request, tasks: ConnectionTasks, completion: ReplySink
    ) -> ByteBuffer? {
        switch request {
        case .ping(let message):
            var buffer = allocator.buffer(capacity: 16)
            if let message {
                ReplyWriter.bulk(message, into: &buffer)
            } else {
                ReplyWriter.simpleString("PONG", into: &buffer)
            }
            return buffer
        case .quit:
            var buffer = allocator.buffer(capacity: 8)
            ReplyWriter.simpleString("OK", into: &buffer)
            return buffer
        case .auth:
            // With tokens, the connection handler answers AUTH itself; without, there is nothing to check.
            return errorReply(.badRequest, "AUTH is not enabled on this server: it runs without --auth-token-file")
        case .append(let command):
            let request = AppendRequest(
                stream: command.stream, expectedVersion: command.expectedVersion,
                events: [proposed(command.event)])
            log.append(request) { result in completion.deliver(.append(result, many: false)) }
            return nil
        case .appendMany(let command):
            let request = AppendRequest(
                stream: command.stream, expectedVersion: command.expectedVersion,
                events: command.events.map(proposed))
            log.append(request) { result in completion.deliver(.append(result, many: true)) }
            return nil
        case .read(let command):
            return readReply {
                try log.readStream(command.stream, from: command.fromVersion, limit: command.count)
            }
        case .readAll(let command):
            return readReply {
                try log.readAll(from: command.fromPosition, limit: command.count, eventTypes: command.eventTypes)
            }
        case .info:
            return infoReply()
        case .groupCreate, .groupDelete, .groups, .fetch, .ack, .nack, .pending, .dead:
            guard let groups else { return errorReply(.notFound, "this server has no consumer groups") }
            runTask(tasks, completion) { () async throws(GroupError) in
                try await self.groupReply(request, groups: groups)
            }
            return nil
        case .retry(let name, let position):
            // RETRY names a consumer group when one has that name, else a module.
            runTask(tasks, completion) { () async throws(HostError) in
                if let groups = self.groups, await groups.exists(name) {
                    do {
                        try await groups.retry(group: name, position: position)
                    } catch let error as GroupError {
                        return self.errorReply(error.code, error.description)
                    } catch {
                        return self.errorReply(.internal, "\(error)")
                    }
                    return self.simpleReply("OK")
                }
                guard let host = self.host else { return self.errorReply(.notFound, "no module or group '\(name)'") }
                return self.simpleReply(try await host.retry(module: name, position: position))
            }
            return nil
        case .backup(let directory):
            // The copy reads the whole store: run it off the event loop.
            let log = self.log
            runTask(tasks, completion) { () async throws(HostError) in
                do {
                    let position = try await Task.detached { try log.backup(to: directory) }.value
                    var json: [UInt8] = Array(#"{"directory":"#.utf8)
                    JSONWriter.appendString(directory, to: &json)
                    json.append(contentsOf: #","includes_position":"#.utf8)
                    EnvelopeJSON.appendDecimal(position, to: &json)
                    json.append(UInt8(ascii: "}"))
                    return self.bulkReply(json)
                } catch {
                    self.logger.error("backup failed", metadata: ["destination": "\(directory)", "error": "\(error)"])
                    return self.errorReply(.internal, "backup failed: \(error)")
                }
            }
            return nil
        case .subscribe, .unsubscribe:
            // The connection handler runs live tails; UNSUBSCRIBE outside one is answered as Redis does.
            var buffer = allocator.buffer(capacity: 32)
            ReplyWriter.arrayHeader(3, into: &buffer)
            ReplyWriter.bulk(Array("unsubscribe".utf8), into: &buffer)
            ReplyWriter.null(into: &buffer)
            ReplyWriter.integer(0, into: &buffer)
            return buffer
        case .submit, .get, .query, .views, .projections, .rebuild, .parked, .skip:
            guard let host else { return errorReply(.notFound, "this server runs no modules") }
            return executeModuleRequest(request, host: host, tasks: tasks, completion: completion)
        case .redisCompatibility(let command):
            var buffer = allocator.buffer(capacity: 16)
            switch command {
            case .command: ReplyWriter.arrayHeader(0, into: &buffer)
            case .configGet(let parameter):
                // What redis-benchmark and client libraries ask; the values describe Logline truthfully.
                let values = ["save": "", "appendonly": "yes", "appendfsync": "always"]
                if let value = values[parameter] {
                    ReplyWriter.arrayHeader(2, into: &buffer)
                    ReplyWriter.bulk(Array(parameter.utf8), into: &buffer)
                    ReplyWriter.bulk(Array(value.utf8), into: &buffer)
                } else {
                    ReplyWriter.arrayHeader(0, into: &buffer)
                }
            case .ok: ReplyWriter.simpleString("OK", into: &buffer)
            case .echo(let message): ReplyWriter.bulk(message, into: &buffer)
            }
            return buffer
        }
    }

    /// Runs `body` as a task and passes its reply, or its error's, to `completion`.
    private func runTask<E: Error & CustomStringConvertible>(
        _ tasks: ConnectionTasks, _ completion: ReplySink,
        _ body: @escaping @Sendable () async throws(E) -> ByteBuffer
    ) {
        tasks.start {
            let reply: ByteBuffer
            do {
                reply = try await body()
            } catch let error as HostError {
                reply = self.errorReply(error.code, error.description)
            } catch let error as GroupError {
                reply = self.errorReply(error.code, error.description)
            } catch {
                reply = self.errorReply(.internal, "\(error)")
            }
            completion.deliver(.rendered(reply))
        }
    }

    /// The bytes of a reply completed away from the event loop.
    func render(_ reply: CompletedReply) -> ByteBuffer {
        switch reply {
        case .rendered(let buffer): buffer
        case .append(let result, let many): appendReply(result, many: many)
        }
    }

    private func groupReply(_ request: Request, groups: ConsumerGroups) async throws(GroupError) -> ByteBuffer {
        switch request {
        case .groupCreate(let command):
            if let host, host.moduleNames.contains(command.group) {
                throw .badRequest("\(command.group) is the name of a module; RETRY would be ambiguous")
            }
            var settings = GroupSettings()
            switch command.start {
            case .none: break
            case .now?: settings.start = .now
            case .position(let position)?: settings.start = .position(position)
            }
            settings.eventTypes = command.eventTypes
            if let ackWait = command.ackWaitMilliseconds { settings.ackWaitMilliseconds = Int64(ackWait) }
            if let maxInFlight = command.maxInFlight { settings.maxInFlight = Int(maxInFlight) }
            if let maxDeliver = command.maxDeliver { settings.maxDeliver = Int(maxDeliver) }
            try await groups.create(command.group, settings: settings)
            return simpleReply("OK")
        case .groupDelete(let group):
            try await groups.delete(group)
            return simpleReply("OK")
        case .groups:
            return documentsReply(await groups.describeAll().map(\.jsonBytes))
        case .fetch(let command):
            let deliveries = try await groups.fetch(
                group: command.group, consumer: command.consumer, count: command.count,
                block: command.blockMilliseconds.map { .milliseconds($0) })
            return documentsReply(deliveries.map(\.json))
        case .ack(let group, let positions):
            return integerReply(try await groups.ack(group: group, positions: positions))
        case .nack(let group, let positions):
            return integerReply(try await groups.nack(group: group, positions: positions))
        case .pending(let group):
            return documentsReply(try await groups.pending(group: group).map(\.jsonBytes))
        case .dead(let group):
            return documentsReply(try await groups.dead(group: group).map(\.jsonBytes))
        default:
            return errorReply(.internal, "not a group request")
        }
    }

    private func integerReply(_ value: Int) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 16)
        ReplyWriter.integer(Int64(value), into: &buffer)
        return buffer
    }

    /// Requests for the projection host. Reads without `AT` answer at once; the rest run as tasks.
    private func executeModuleRequest(
        _ request: Request, host: ProjectionHost, tasks: ConnectionTasks,
        completion: ReplySink
    ) -> ByteBuffer? {
        switch request {
        case .get(let command) where command.atPosition == nil:
            return hostReply { () throws(HostError) in try getReply(command, host: host) }
        case .query(let command) where command.atPosition == nil:
            return hostReply { () throws(HostError) in try queryReply(command, host: host) }
        case .views:
            return documentsReply(host.viewStatuses().map(\.json.jsonBytes))
        case .parked(let module):
            return hostReply { () throws(HostError) in documentsReply(try host.parked(module: module)) }
        default:
            break
        }
        runTask(tasks, completion) { () async throws(HostError) in
            try await self.asyncModuleReply(request, host: host)
        }
        return nil
    }

    private func asyncModuleReply(_ request: Request, host: ProjectionHost) async throws(HostError) -> ByteBuffer {
        switch request {
        case .submit(let command, let body):
            return bulkReply(try await host.submit(command: command, body: body))
        case .get(let command):
            if let position = command.atPosition { try await host.waitForView(command.view, at: position) }
            return try getReply(command, host: host)
        case .query(let command):
            if let position = command.atPosition { try await host.waitForView(command.view, at: position) }
            return try queryReply(command, host: host)
        case .projections:
            return documentsReply(await host.moduleStatuses().map(\.json.jsonBytes))
        case .rebuild(let module):
            return simpleReply(try await host.rebuild(module: module))
        case .skip(let module, let position):
            return simpleReply(try await host.skip(module: module, position: position))
        default:
            return errorReply(.internal, "not a module request")
        }
    }

    private func getReply(_ command: GetCommand, host: ProjectionHost) throws(HostError) -> ByteBuffer {
        guard let document = try host.document(view: command.view, key: command.key) else {
            var buffer = allocator.buffer(capacity: 8)
            ReplyWriter.null(into: &buffer)
            return buffer
        }
        return bulkReply(document)
    }

    private func queryReply(_ command: QueryCommand, host: ProjectionHost) throws(HostError) -> ByteBuffer {
        documentsReply(
            try host.query(
                view: command.view, where: command.filter.map { ($0.field, $0.value) }, limit: command.limit,
                after: command.afterKey))
    }

    private func hostReply(_ body: () throws(HostError) -> ByteBuffer) -> ByteBuffer {
        do {
            return try body()
        } catch {
            return errorReply(error.code, error.description)
        }
    }

    private func bulkReply(_ bytes: [UInt8]) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: bytes.count + ReplyWriter.bulkFramingBytes)
        ReplyWriter.bulk(bytes, into: &buffer)
        return buffer
    }

    private func simpleReply(_ message: String) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: message.utf8.count + 8)
        ReplyWriter.simpleString(message, into: &buffer)
        return buffer
    }

    private func documentsReply(_ documents: [[UInt8]]) -> ByteBuffer {
        var buffer = allocator.buffer(
            capacity: 16 + documents.reduce(0) { $0 + $1.count + ReplyWriter.bulkFramingBytes })
        ReplyWriter.arrayHeader(documents.count, into: &buffer)
        for document in documents { ReplyWriter.bulk(document, into: &buffer) }
        return buffer
    }

    /// An error reply, counted by its code.
    func errorReply(_ code: ErrorCode, _ message: String) -> ByteBuffer {
        metrics.countError(code)
        var buffer = allocator.buffer(capacity: 32 + message.utf8.count)
        ReplyWriter.error(code, message, into: &buffer)
        return buffer
    }

    private func proposed(_ event: EventSpec) -> ProposedEvent {
        ProposedEvent(eventID: event.eventID, eventType: event.eventType, data: event.data, metadata: event.metadata)
    }

    private func appendReply(_ result: Result<AppendResult, AppendError>, many: Bool) -> ByteBuffer {
        switch result {
        case .success(let outcome):
            var json = [UInt8]()
            json.reserveCapacity(96)
            if many {
                json.append(contentsOf: #"{"events":["#.utf8)
                for (index, event) in outcome.events.enumerated() {
                    if index > 0 { json.append(UInt8(ascii: ",")) }
                    appendedJSON(event, duplicate: nil, into: &json)
                }
                json.append(contentsOf: #"],"first_position":"#.utf8)
                EnvelopeJSON.appendDecimal(outcome.events.first?.position ?? 0, to: &json)
                json.append(contentsOf: #","last_position":"#.utf8)
                EnvelopeJSON.appendDecimal(outcome.events.last?.position ?? 0, to: &json)
                json.append(contentsOf: #","version":"#.utf8)
                EnvelopeJSON.appendDecimal(outcome.events.last?.version ?? 0, to: &json)
                json.append(contentsOf: #","duplicate":"#.utf8)
                json.append(contentsOf: (outcome.alreadyAppended ? "true" : "false").utf8)
                json.append(UInt8(ascii: "}"))
            } else {
                appendedJSON(outcome.events[0], duplicate: outcome.alreadyAppended, into: &json)
            }
            return bulkReply(json)
        case .failure(let error):
            let code: ErrorCode
            switch error {
            case .wrongExpectedVersion, .eventIDReused, .partiallyAppended: code = .conflict
            case .duplicateEventIDInRequest, .emptyRequest: code = .badRequest
            case .closed: code = .unavailable
            case .storage: code = .internal
            case .diskFull: code = .diskFull
            }
            return errorReply(code, error.description)
        }
    }

    private func appendedJSON(_ event: AppendedEvent, duplicate: Bool?, into json: inout [UInt8]) {
        json.append(contentsOf: #"{"event_id":""#.utf8)
        event.eventID.appendText(to: &json)
        json.append(contentsOf: #"","position":"#.utf8)
        EnvelopeJSON.appendDecimal(event.position, to: &json)
        json.append(contentsOf: #","version":"#.utf8)
        EnvelopeJSON.appendDecimal(event.version, to: &json)
        if let duplicate {
            json.append(contentsOf: #","duplicate":"#.utf8)
            json.append(contentsOf: (duplicate ? "true" : "false").utf8)
        }
        json.append(UInt8(ascii: "}"))
    }

    private func readReply(_ read: () throws -> [RecordedEvent]) -> ByteBuffer {
        let events: [RecordedEvent]
        do {
            events = try read()
        } catch {
            logger.error("read failed", metadata: ["error": "\(error)"])
            return errorReply(.internal, "read failed: \(error)")
        }
        if !events.isEmpty { metrics.readEvents.increment(by: events.count) }
        var buffer = allocator.buffer(capacity: 16 + events.count * 320)
        ReplyWriter.arrayHeader(events.count, into: &buffer)
        var json = [UInt8]()
        json.reserveCapacity(512)
        for event in events {
            json.removeAll(keepingCapacity: true)
            event.appendJSON(to: &json)
            ReplyWriter.bulk(json, into: &buffer)
        }
        return buffer
    }

    private func infoReply() -> ByteBuffer {
        let info: LogInfo
        do {
            info = try log.info()
        } catch {
            return errorReply(.internal, "info failed: \(error)")
        }
        let uptime = ContinuousClock.now - startedAt
        var json = [UInt8]()
        json.append(contentsOf: #"{"version":"#.utf8)
        JSONWriter.appendString(Self.version, to: &json)
        json.append(contentsOf: #","last_position":"#.utf8)
        EnvelopeJSON.appendDecimal(info.lastPosition, to: &json)
        json.append(contentsOf: #","event_count":"#.utf8)
        EnvelopeJSON.appendDecimal(info.eventCount, to: &json)
        json.append(contentsOf: #","stream_count":"#.utf8)
        EnvelopeJSON.appendDecimal(info.streamCount, to: &json)
        json.append(contentsOf: #","data_dir":"#.utf8)
        JSONWriter.appendString(info.location, to: &json)
        json.append(contentsOf: #","storage_bytes":"#.utf8)
        EnvelopeJSON.appendDecimal(info.storageBytes, to: &json)
        json.append(contentsOf: #","uptime_s":"#.utf8)
        EnvelopeJSON.appendDecimal(UInt64(max(0, uptime.components.seconds)), to: &json)
        json.append(contentsOf: #","connections":"#.utf8)
        EnvelopeJSON.appendDecimal(UInt64(max(0, openConnections.load(ordering: .relaxed))), to: &json)
        json.append(contentsOf: #","total_connections":"#.utf8)
        EnvelopeJSON.appendDecimal(UInt64(max(0, totalConnections.load(ordering: .relaxed))), to: &json)
        json.append(UInt8(ascii: "}"))
        return bulkReply(json)
    }
}
