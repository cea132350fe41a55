import Logging
import LoglineCore
import LoglineLog
import Metrics
import Synchronization

/// Why a consumer-group operation failed; each case maps to a protocol error code.
public enum GroupError: Error, Hashable, Sendable, CustomStringConvertible {
    /// No such group (`NOTFOUND`).
    case notFound(String)
    /// The group exists already (`CONFLICT`).
    case exists(String)
    /// The request does not make sense (`BADREQ`).
    case badRequest(String)
    /// The storage failed (`INTERNAL`).
    case storage(String)
    /// The disk is full (`DISKFULL`): nothing was written.
    case diskFull(String)

    /// The protocol's error code.
    public var code: ErrorCode {
        switch self {
        case .notFound: return .notFound
        case .exists: return .conflict
        case .badRequest: return .badRequest
        case .storage: return .internal
        case .diskFull: return .diskFull
        }
    }

    /// The message.
    public var description: String {
        switch self {
        case .notFound(let message), .exists(let message), .badRequest(let message), .storage(let message),
            .diskFull(let message):
            return message
        }
    }
}

/// How a group is set up: `GROUP CREATE <group> [FROM <position>|NOW] [TYPE <event_type>]... [ACKWAIT <ms>]
/// [MAXINFLIGHT <n>] [MAXDELIVER <n>]`.
public struct GroupSettings: Hashable, Sendable {
    /// Where the group starts.
    public enum Start: Hashable, Sendable {
        /// At this position (events at and after it are delivered).
        case position(LogPosition)
        /// After the current head: only events appended from now on.
        case now
    }

    /// Where the group starts (the whole log by default).
    public var start: Start = .position(1)
    /// Only events of these types; all when empty.
    public var eventTypes: [String] = []
    /// How long a delivery may stay unacknowledged before it is delivered again.
    public var ackWaitMilliseconds: Int64 = 30_000
    /// The most unacknowledged deliveries one consumer may hold.
    public var maxInFlight: Int = 25
    /// How many deliveries an event gets before it goes to the dead letters.
    public var maxDeliver: Int = 5

    /// The defaults: the whole log, all types, 30 s ack wait, 25 in flight, 5 deliveries.
    public init() {}
}

/// One event handed to a consumer.
public struct Delivery: Hashable, Sendable {
    /// The event.
    public var event: RecordedEvent
    /// How many times it has been delivered, this time included.
    public var deliveryCount: Int

    /// The envelope's JSON with one more member, `delivery_count`, as the protocol sends it.
    public var json: [UInt8] {
        var bytes: [UInt8] = []
        event.appendJSON(to: &bytes)
        bytes.removeLast()  // the envelope's closing brace
        bytes.append(contentsOf: #","delivery_count":"#.utf8)
        EnvelopeJSON.appendDecimal(UInt64(deliveryCount), to: &bytes)
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }
}

/// Durable consumer groups, like Redis Streams consumer groups and NATS JetStream pull consumers.
///
/// Several consumers of one group share its events (each event goes to one of them); different groups each
/// see all events. A delivery stays pending until acknowledged; after the group's ack wait it is delivered
/// again, to any consumer; after `maxDeliver` deliveries it goes to the dead letters. All of this state lives
/// in the log's state tables and changes in commit units before any reply, so a restart of the server or of a
/// consumer loses no event and redelivers exactly what was not acknowledged.
///
/// - Important: An actor: operations on all groups are serialised, and the in-memory mirror of each group
///   changes only after the commit that makes the change durable has succeeded.
public actor ConsumerGroups {
    private struct Pending: Hashable {
        var eventID: EventID
        var eventType: String
        var consumer: String
        var deliveries: Int
        var deliveredAt: Int64

        var json: JSONValue {
            .object([
                "event_id": .string(eventID.description), "event_type": .string(eventType),
                "consumer": .string(consumer), "delivery_count": .number(JSONNumber(deliveries)),
                "delivered_at_ms": .number(JSONNumber(deliveredAt)),
            ])
        }

        init(eventID: EventID, eventType: String, consumer: String, deliveries: Int, deliveredAt: Int64) {
            self.eventID = eventID
            self.eventType = eventType
            self.consumer = consumer
            self.deliveries = deliveries
            self.deliveredAt = deliveredAt
        }

        init?(json: JSONValue) {
            guard let id = json["event_id"]?.stringValue.flatMap(EventID.init),
                let type = json["event_type"]?.stringValue, let consumer = json["consumer"]?.stringValue,
                let deliveries = json["delivery_count"]?.int64Value, let at = json["delivered_at_ms"]?.int64Value
            else { return nil }
            self.init(eventID: id, eventType: type, consumer: consumer, deliveries: Int(deliveries), deliveredAt: at)
        }
    }

    private struct DeadLetter: Hashable {
        var eventID: EventID
        var eventType: String
        var deliveries: Int
        var lastConsumer: String
        var deadAt: Int64

        var json: JSONValue {
            .object([
                "event_id": .string(eventID.description), "event_type": .string(eventType),
                "delivery_count": .number(JSONNumber(deliveries)), "last_consumer": .string(lastConsumer),
                "dead_at_ms": .number(JSONNumber(deadAt)),
            ])
        }

        init(eventID: EventID, eventType: String, deliveries: Int, lastConsumer: String, deadAt: Int64) {
            self.eventID = eventID
            self.eventType = eventType
            self.deliveries = deliveries
            self.lastConsumer = lastConsumer
            self.deadAt = deadAt
        }

        init?(json: JSONValue) {
            guard let id = json["event_id"]?.stringValue.flatMap(EventID.init),
                let type = json["event_type"]?.stringValue, let deliveries = json["delivery_count"]?.int64Value,
                let consumer = json["last_consumer"]?.stringValue, let at = json["dead_at_ms"]?.int64Value
            else { return nil }
            self.init(eventID: id, eventType: type, deliveries: Int(deliveries), lastConsumer: consumer, deadAt: at)
        }
    }

    private struct Group {
        var settings: GroupSettings
        var createdAt: Int64
        /// The last position examined for new deliveries.
        var cursor: LogPosition
        var pending: [LogPosition: Pending] = [:]
        var dead: [LogPosition: DeadLetter] = [:]
        var lastSeen: [String: Int64] = [:]

        var configJSON: JSONValue {
            .object([
                "types": .array(settings.eventTypes.map { .string($0) }),
                "ack_wait_ms": .number(JSONNumber(settings.ackWaitMilliseconds)),
                "max_in_flight": .number(JSONNumber(settings.maxInFlight)),
                "max_deliver": .number(JSONNumber(settings.maxDeliver)),
                "created_at_ms": .number(JSONNumber(createdAt)), "cursor": .number(JSONNumber(Int64(cursor))),
            ])
        }

        /// The deliveries a consumer holds that have not run out their ack wait (expired ones are up for
        /// redelivery, to it or to another consumer, and do not count against its limit).
        func inFlight(of consumer: String, now: Int64) -> Int {
            pending.values.reduce(0) {
                $0 + ($1.consumer == consumer && $1.deliveredAt + settings.ackWaitMilliseconds > now ? 1 : 0)
            }
        }
    }

    private static let groupsTable = "groups"
    private static func pendingTable(_ group: String) -> String { "gpending/\(group)" }
    private static func deadTable(_ group: String) -> String { "gdead/\(group)" }

    private let log: any EventLog
    private let logger: Logger
    private let metricsFactory: any MetricsFactory
    private var groups: [String: Group] = [:]
    /// Each group's metrics, made when the group is loaded or created and destroyed when it is deleted.
    private var metrics: [String: GroupMetrics] = [:]

    /// The metrics of one group, with the dimension `group`.
    private struct GroupMetrics {
        /// Deliveries not yet acknowledged.
        let pending: Gauge
        /// Dead letters.
        let dead: Gauge
        /// Deliveries handed out by `FETCH`, redeliveries included.
        let deliveries: Counter
        /// Deliveries settled by `ACK`.
        let acks: Counter

        init(group: String, factory: any MetricsFactory) {
            let dimensions = [("group", group)]
            pending = Gauge(label: "logline_consumer_group_pending", dimensions: dimensions, factory: factory)
            dead = Gauge(label: "logline_consumer_group_dead", dimensions: dimensions, factory: factory)
            deliveries = Counter(
                label: "logline_consumer_group_deliveries_total", dimensions: dimensions, factory: factory)
            acks = Counter(label: "logline_consumer_group_acks_total", dimensions: dimensions, factory: factory)
        }

        func destroy() {
            pending.destroy()
            dead.destroy()
            deliveries.destroy()
            acks.destroy()
        }
    }

    /// Records a group's pending deliveries and dead letters, making its metrics when they do not exist yet.
    private func recordSizes(_ name: String) {
        guard let group = groups[name] else { return }
        let groupMetrics: GroupMetrics
        if let existing = metrics[name] {
            groupMetrics = existing
        } else {
            groupMetrics = GroupMetrics(group: name, factory: metricsFactory)
            metrics[name] = groupMetrics
        }
        groupMetrics.pending.record(group.pending.count)
        groupMetrics.dead.record(group.dead.count)
    }
    private let wakeups = Wakeups()
    /// Set by ``stopBlocking()``: no `FETCH` waits any more.
    private let blockingStopped = Atomic<Bool>(false)
    /// Groups with an operation between its read of the state and its commit, and who waits for them: an
    /// actor is re-entered at every `await`, so this keeps two operations on one group from interleaving.
    private var busy: [String: [CheckedContinuation<Void, Never>]] = [:]

    private func lock(_ name: String) async {
        if busy[name] == nil {
            busy[name] = []
            return
        }
        await withCheckedContinuation { busy[name]!.append($0) }
    }

    private func unlock(_ name: String) {
        guard var waiting = busy[name], !waiting.isEmpty else {
            busy[name] = nil
            return
        }
        let next = waiting.removeFirst()
        busy[name] = waiting
        next.resume()
    }

    /// Runs `body` with the group's lock held.
    private func locked<T>(_ name: String, _ body: () async throws(GroupError) -> T) async throws(GroupError) -> T {
        await lock(name)
        defer { unlock(name) }
        return try await body()
    }

    /// Loads every group from the log's state tables.
    /// - Parameters:
    ///   - log: The log whose events are delivered and whose state tables keep the groups.
    ///   - logger: Where notable things are logged.
    ///   - metricsFactory: Where each group's metrics go (pending deliveries, dead letters, deliveries, acks),
    ///     with the group's name as the dimension `group`; the process's `MetricsSystem` by default.
    /// - Throws: ``GroupError/storage(_:)`` when the state cannot be read.
    public init(
        log: any EventLog, logger: Logger, metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) throws(GroupError) {
        self.log = log
        self.logger = logger
        self.metricsFactory = metricsFactory
        do {
            for entry in try Self.all(table: Self.groupsTable, log: log) {
                let name = String(decoding: entry.key, as: UTF8.self)
                let config = try JSONValue(parsing: entry.value)
                var settings = GroupSettings()
                settings.eventTypes = config["types"]?.arrayValue?.compactMap(\.stringValue) ?? []
                settings.ackWaitMilliseconds = config["ack_wait_ms"]?.int64Value ?? settings.ackWaitMilliseconds
                settings.maxInFlight = Int(config["max_in_flight"]?.int64Value ?? Int64(settings.maxInFlight))
                settings.maxDeliver = Int(config["max_deliver"]?.int64Value ?? Int64(settings.maxDeliver))
                var group = Group(
                    settings: settings, createdAt: config["created_at_ms"]?.int64Value ?? 0,
                    cursor: LogPosition(config["cursor"]?.int64Value ?? 0))
                for pending in try Self.all(table: Self.pendingTable(name), log: log) {
                    if let record = Pending(json: try JSONValue(parsing: pending.value)) {
                        group.pending[Self.position(pending.key)] = record
                    }
                }
                for dead in try Self.all(table: Self.deadTable(name), log: log) {
                    if let record = DeadLetter(json: try JSONValue(parsing: dead.value)) {
                        group.dead[Self.position(dead.key)] = record
                    }
                }
                groups[name] = group
            }
        } catch {
            throw .storage("cannot load the consumer groups: \(error)")
        }
        for (name, group) in groups {
            let groupMetrics = GroupMetrics(group: name, factory: metricsFactory)
            groupMetrics.pending.record(group.pending.count)
            groupMetrics.dead.record(group.dead.count)
            metrics[name] = groupMetrics
        }
        let loaded = groups.keys.sorted().joined(separator: ",")
        if !loaded.isEmpty { logger.info("consumer groups loaded", metadata: ["groups": "\(loaded)"]) }
        let wakeups = self.wakeups
        log.onCommit { _ in wakeups.notifyAll() }
    }

    private static func all(table: String, log: any EventLog) throws -> [(key: [UInt8], value: [UInt8])] {
        var entries: [(key: [UInt8], value: [UInt8])] = []
        while true {
            let page = try log.scanState(table: table, prefix: [], after: entries.last?.key, limit: 1000)
            entries += page
            guard page.count == 1000 else { return entries }
        }
    }

    private static func key(_ position: LogPosition) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: position >> UInt64(56 - $0 * 8)) }
    }

    private static func position(_ key: [UInt8]) -> LogPosition {
        key.prefix(8).reduce(0) { ($0 << 8) | UInt64($1) }
    }

    private static func now() -> Int64 { Timestamp.now().millisecondsSinceEpoch }

    private func commit(_ unit: CommitUnit) async throws(GroupError) {
        do {
            _ = try await log.commit(unit)
        } catch {
            if case .diskFull = error { throw .diskFull("\(error)") }
            throw .storage("\(error)")
        }
    }

    private func group(_ name: String) throws(GroupError) -> Group {
        guard let group = groups[name] else { throw .notFound("no consumer group named '\(name)'; GROUPS lists them") }
        return group
    }

    /// Whether a group of that name exists.
    /// - Parameter name: The group's name.
    /// - Returns: `true` when it exists.
    public func exists(_ name: String) -> Bool { groups[name] != nil }

    // MARK: - Groups

    /// `GROUP CREATE`.
    /// - Parameters:
    ///   - name: The group's name.
    ///   - settings: Its settings.
    /// - Throws: ``GroupError``.
    public func create(_ name: String, settings: GroupSettings) async throws(GroupError) {
        guard Name.isValid(name), name.utf8.count <= 64 else {
            throw .badRequest("invalid group name '\(name.prefix(64))': use 1 to 64 bytes of A-Z a-z 0-9 . _ : @ -")
        }
        guard groups[name] == nil else { throw .exists("consumer group \(name) exists already") }
        guard settings.ackWaitMilliseconds >= 1, settings.maxInFlight >= 1, settings.maxDeliver >= 1 else {
            throw .badRequest("ACKWAIT, MAXINFLIGHT and MAXDELIVER must be at least 1")
        }
        let cursor: LogPosition
        switch settings.start {
        case .now: cursor = log.headPosition
        case .position(let position):
            // Positions are stored, and shown, as JSON integers of 64 bits with a sign.
            guard position <= LogPosition(Int64.max) else {
                throw .badRequest("FROM must be a position of at most \(Int64.max)")
            }
            cursor = position > 0 ? position - 1 : 0
        }
        let group = Group(settings: settings, createdAt: Self.now(), cursor: cursor)
        try await commit(
            CommitUnit(
                writes: [StateWrite(table: Self.groupsTable, key: Array(name.utf8), value: group.configJSON.jsonBytes)],
                conditions: [StateCondition(table: Self.groupsTable, key: Array(name.utf8), expected: nil)]))
        groups[name] = group
        recordSizes(name)
        logger.info(
            "consumer group created",
            metadata: [
                "group": "\(name)", "cursor": "\(cursor)", "types": "\(settings.eventTypes.joined(separator: ","))",
            ])
    }

    /// `GROUP DELETE`: the group, its pending deliveries and its dead letters.
    /// - Parameter name: The group's name.
    /// - Throws: ``GroupError``.
    public func delete(_ name: String) async throws(GroupError) {
        try await locked(name) { () async throws(GroupError) in try await deleteLocked(name) }
    }

    private func deleteLocked(_ name: String) async throws(GroupError) {
        let group = try self.group(name)
        var writes = [StateWrite(table: Self.groupsTable, key: Array(name.utf8), value: nil)]
        writes += group.pending.keys.map { StateWrite(table: Self.pendingTable(name), key: Self.key($0), value: nil) }
        writes += group.dead.keys.map { StateWrite(table: Self.deadTable(name), key: Self.key($0), value: nil) }
        // Large dead-letter lists go in several commits; the group itself disappears with the first.
        var first = true
        var remaining = writes[...]
        while !remaining.isEmpty {
            let chunk = remaining.prefix(first ? 1 + 4999 : 5000)
            remaining = remaining.dropFirst(chunk.count)
            try await commit(CommitUnit(writes: Array(chunk)))
            if first {
                groups[name] = nil
                metrics.removeValue(forKey: name)?.destroy()
                first = false
            }
        }
        wakeups.notifyAll()
        logger.info(
            "consumer group deleted",
            metadata: ["group": "\(name)", "pending": "\(group.pending.count)", "dead": "\(group.dead.count)"])
    }

    /// `GROUPS`: every group as a JSON object.
    /// - Returns: The groups, by name.
    public func describeAll() -> [JSONValue] {
        let head = log.headPosition
        return groups.keys.sorted().map { name in
            let group = groups[name]!
            var consumers: [String: Int] = [:]
            for pending in group.pending.values { consumers[pending.consumer, default: 0] += 1 }
            for consumer in group.lastSeen.keys where consumers[consumer] == nil { consumers[consumer] = 0 }
            let acked = group.pending.keys.min().map { $0 - 1 } ?? group.cursor
            return .object([
                "name": .string(name), "types": .array(group.settings.eventTypes.map { .string($0) }),
                "ack_wait_ms": .number(JSONNumber(group.settings.ackWaitMilliseconds)),
                "max_in_flight": .number(JSONNumber(group.settings.maxInFlight)),
                "max_deliver": .number(JSONNumber(group.settings.maxDeliver)),
                "cursor": .number(JSONNumber(Int64(group.cursor))),
                "acked_position": .number(JSONNumber(Int64(acked))),
                "pending": .number(JSONNumber(group.pending.count)), "dead": .number(JSONNumber(group.dead.count)),
                "lag": .number(JSONNumber(Int64(head > group.cursor ? head - group.cursor : 0))),
                "consumers": .array(
                    consumers.keys.sorted().map { consumer in
                        .object([
                            "name": .string(consumer), "pending": .number(JSONNumber(consumers[consumer]!)),
                            "last_seen": group.lastSeen[consumer].map {
                                .string(Timestamp(millisecondsSinceEpoch: $0).description)
                            } ?? .null,
                        ])
                    }),
            ])
        }
    }

    // MARK: - Deliveries

    /// Ends every blocked `FETCH` now, with what it has (usually nothing), and makes later ones return without
    /// waiting: the server calls this when it shuts down, so that no connection waits out a client's `BLOCK`.
    public nonisolated func stopBlocking() {
        blockingStopped.store(true, ordering: .releasing)
        wakeups.notifyAll()
    }

    /// `FETCH`: hands out up to `count` events to `consumer`: expired deliveries first, then new events.
    /// - Parameters:
    ///   - name: The group.
    ///   - consumer: The consumer's name.
    ///   - count: The most deliveries.
    ///   - block: How long to wait when there is nothing to deliver (`nil`: do not wait; `.zero`: no limit).
    /// - Returns: The deliveries, durable as pending before this returns.
    /// - Throws: ``GroupError``.
    public func fetch(
        group name: String, consumer: String, count: Int, block: Duration?
    ) async throws(GroupError) -> [Delivery] {
        guard Name.isValid(consumer) else { throw .badRequest("invalid consumer name '\(consumer.prefix(64))'") }
        let deadline = block.map { $0 == .zero ? ContinuousClock.now + .seconds(86_400 * 365) : .now + $0 }
        while true {
            let epoch = wakeups.epoch
            // A cancelled fetch (its connection closed) takes nothing: a delivery nobody reads would wait out
            // the whole ack wait.
            let (deliveries, nextExpiry, scannedMore) = try await locked(name) {
                () async throws(GroupError) -> (deliveries: [Delivery], nextExpiry: Int64?, scannedMore: Bool) in
                if Task.isCancelled { return ([], nil, false) }
                return try await fetchStep(group: name, consumer: consumer, count: count)
            }
            if Task.isCancelled { return deliveries }
            if !deliveries.isEmpty { return deliveries }
            // The cursor moved past events of other types: look further before waiting for new commits.
            if scannedMore { continue }
            guard let deadline, ContinuousClock.now < deadline, !blockingStopped.load(ordering: .acquiring) else {
                return []
            }
            // Wait for a commit, an ACK or NACK, the next expiry, or the deadline.
            var wait = deadline - ContinuousClock.now
            if let nextExpiry { wait = min(wait, .milliseconds(max(1, nextExpiry - Self.now()))) }
            await wakeups.wait(for: wait, since: epoch)
            if Task.isCancelled { return [] }
        }
    }

    /// One pass of `FETCH`, under the group's lock: returns the deliveries, durable, or when to look again.
    private func fetchStep(
        group name: String, consumer: String, count: Int
    ) async throws(GroupError) -> (deliveries: [Delivery], nextExpiry: Int64?, scannedMore: Bool) {
        var group = try self.group(name)
        let startCursor = group.cursor
        let now = Self.now()
        group.lastSeen[consumer] = now
        groups[name]?.lastSeen[consumer] = now
        var budget = min(count, group.settings.maxInFlight - group.inFlight(of: consumer, now: now))
        var writes: [StateWrite] = []
        var deliveries: [(position: LogPosition, count: Int, event: RecordedEvent?)] = []
        var nextExpiry: Int64?
        var newlyDead: [LogPosition] = []
        // Expired (or NACKed) deliveries, oldest position first: to this consumer, or to the dead letters.
        for position in group.pending.keys.sorted() {
            let pending = group.pending[position]!
            let due = pending.deliveredAt + group.settings.ackWaitMilliseconds
            guard due <= now else {
                nextExpiry = min(nextExpiry ?? due, due)
                continue
            }
            if pending.deliveries >= group.settings.maxDeliver {
                let dead = DeadLetter(
                    eventID: pending.eventID, eventType: pending.eventType, deliveries: pending.deliveries,
                    lastConsumer: pending.consumer, deadAt: now)
                group.pending[position] = nil
                group.dead[position] = dead
                writes.append(StateWrite(table: Self.pendingTable(name), key: Self.key(position), value: nil))
                writes.append(
                    StateWrite(table: Self.deadTable(name), key: Self.key(position), value: dead.json.jsonBytes))
                newlyDead.append(position)
                continue
            }
            // A consumer at its limit of deliveries in flight gets nothing more until it acknowledges some.
            guard budget > 0 else { continue }
            var again = pending
            again.consumer = consumer
            again.deliveries += 1
            again.deliveredAt = now
            group.pending[position] = again
            writes.append(
                StateWrite(table: Self.pendingTable(name), key: Self.key(position), value: again.json.jsonBytes))
            deliveries.append((position, again.deliveries, nil))
            budget -= 1
        }
        // New events after the cursor.
        if budget > 0 {
            let batch: EventBatch
            do {
                batch = try log.readBatch(
                    after: group.cursor, limit: budget, eventTypes: Set(group.settings.eventTypes))
            } catch {
                throw .storage("read failed: \(error)")
            }
            for event in batch.events {
                let pending = Pending(
                    eventID: event.eventID, eventType: event.eventType, consumer: consumer, deliveries: 1,
                    deliveredAt: now)
                group.pending[event.position] = pending
                writes.append(
                    StateWrite(
                        table: Self.pendingTable(name), key: Self.key(event.position), value: pending.json.jsonBytes))
                deliveries.append((event.position, 1, event))
            }
            if batch.scannedThrough > group.cursor {
                group.cursor = batch.scannedThrough
                writes.append(
                    StateWrite(table: Self.groupsTable, key: Array(name.utf8), value: group.configJSON.jsonBytes))
            }
        }
        if !writes.isEmpty {
            try await commit(CommitUnit(writes: writes))
            groups[name] = group
            recordSizes(name)
            if !deliveries.isEmpty { metrics[name]?.deliveries.increment(by: deliveries.count) }
            if let first = newlyDead.first {
                // One line per fetch, however many deliveries ran out of attempts in it.
                logger.warning(
                    "deliveries moved to the dead letters; DEAD lists them, RETRY brings one back",
                    metadata: [
                        "group": "\(name)", "count": "\(newlyDead.count)", "first_position": "\(first)",
                        "max_deliver": "\(group.settings.maxDeliver)",
                    ])
            }
        }
        let result = try deliveries.map { (delivery) throws(GroupError) -> Delivery in
            if let event = delivery.event { return Delivery(event: event, deliveryCount: delivery.count) }
            do {
                guard let event = try log.readAll(from: delivery.position, limit: 1, eventTypes: []).first else {
                    throw GroupError.storage("event \(delivery.position) is missing")
                }
                return Delivery(event: event, deliveryCount: delivery.count)
            } catch let error as GroupError {
                throw error
            } catch {
                throw .storage("read failed: \(error)")
            }
        }
        return (result, nextExpiry, group.cursor > startCursor)
    }

    /// `ACK`: settles deliveries.
    /// - Parameters:
    ///   - name: The group.
    ///   - positions: The positions of the delivered events.
    /// - Returns: How many were pending and are now settled.
    /// - Throws: ``GroupError``.
    public func ack(group name: String, positions: [LogPosition]) async throws(GroupError) -> Int {
        try await locked(name) { () async throws(GroupError) in try await ackLocked(group: name, positions: positions) }
    }

    private func ackLocked(group name: String, positions: [LogPosition]) async throws(GroupError) -> Int {
        let group = try self.group(name)
        let settled = Set(positions).filter { group.pending[$0] != nil }
        guard !settled.isEmpty else { return 0 }
        try await commit(
            CommitUnit(
                writes: settled.map { StateWrite(table: Self.pendingTable(name), key: Self.key($0), value: nil) }))
        for position in settled { groups[name]?.pending[position] = nil }
        recordSizes(name)
        metrics[name]?.acks.increment(by: settled.count)
        wakeups.notifyAll()
        return settled.count
    }

    /// `NACK`: asks for pending deliveries to be delivered again now.
    /// - Parameters:
    ///   - name: The group.
    ///   - positions: The positions of the delivered events.
    /// - Returns: How many were pending.
    /// - Throws: ``GroupError``.
    public func nack(group name: String, positions: [LogPosition]) async throws(GroupError) -> Int {
        try await locked(name) { () async throws(GroupError) in
            try await nackLocked(group: name, positions: positions)
        }
    }

    private func nackLocked(group name: String, positions: [LogPosition]) async throws(GroupError) -> Int {
        let group = try self.group(name)
        var writes: [StateWrite] = []
        var changed: [LogPosition: Pending] = [:]
        for position in Set(positions) {
            guard var pending = group.pending[position] else { continue }
            pending.deliveredAt = 0
            changed[position] = pending
            writes.append(
                StateWrite(table: Self.pendingTable(name), key: Self.key(position), value: pending.json.jsonBytes))
        }
        guard !writes.isEmpty else { return 0 }
        try await commit(CommitUnit(writes: writes))
        for (position, pending) in changed { groups[name]?.pending[position] = pending }
        wakeups.notifyAll()
        return changed.count
    }

    /// `RETRY <group> <position>`: moves a dead letter back, to be delivered again at once.
    /// - Parameters:
    ///   - name: The group.
    ///   - position: The dead letter's position.
    /// - Throws: ``GroupError``.
    public func retry(group name: String, position: LogPosition) async throws(GroupError) {
        try await locked(name) { () async throws(GroupError) in try await retryLocked(group: name, position: position) }
    }

    private func retryLocked(group name: String, position: LogPosition) async throws(GroupError) {
        let group = try self.group(name)
        guard let dead = group.dead[position] else {
            throw .notFound("no dead letter at position \(position) in group \(name)")
        }
        let pending = Pending(
            eventID: dead.eventID, eventType: dead.eventType, consumer: dead.lastConsumer, deliveries: 0,
            deliveredAt: 0)
        try await commit(
            CommitUnit(writes: [
                StateWrite(table: Self.deadTable(name), key: Self.key(position), value: nil),
                StateWrite(table: Self.pendingTable(name), key: Self.key(position), value: pending.json.jsonBytes),
            ]))
        groups[name]?.dead[position] = nil
        groups[name]?.pending[position] = pending
        recordSizes(name)
        wakeups.notifyAll()
    }

    /// `PENDING`: the deliveries not yet acknowledged, by position.
    /// - Parameter name: The group.
    /// - Returns: One JSON object per pending delivery.
    /// - Throws: ``GroupError``.
    public func pending(group name: String) throws(GroupError) -> [JSONValue] {
        let group = try self.group(name)
        let now = Self.now()
        return group.pending.keys.sorted().map { position in
            let pending = group.pending[position]!
            return .object([
                "position": .number(JSONNumber(Int64(position))), "event_id": .string(pending.eventID.description),
                "event_type": .string(pending.eventType), "consumer": .string(pending.consumer),
                "delivery_count": .number(JSONNumber(pending.deliveries)),
                "delivered_at": pending.deliveredAt > 0
                    ? .string(Timestamp(millisecondsSinceEpoch: pending.deliveredAt).description) : .null,
                "idle_ms": .number(JSONNumber(pending.deliveredAt > 0 ? max(0, now - pending.deliveredAt) : 0)),
            ])
        }
    }

    /// `DEAD`: the dead letters, by position.
    /// - Parameter name: The group.
    /// - Returns: One JSON object per dead letter.
    /// - Throws: ``GroupError``.
    public func dead(group name: String) throws(GroupError) -> [JSONValue] {
        let group = try self.group(name)
        return group.dead.keys.sorted().map { position in
            let dead = group.dead[position]!
            return .object([
                "position": .number(JSONNumber(Int64(position))), "event_id": .string(dead.eventID.description),
                "event_type": .string(dead.eventType), "delivery_count": .number(JSONNumber(dead.deliveries)),
                "last_consumer": .string(dead.lastConsumer),
                "dead_at": .string(Timestamp(millisecondsSinceEpoch: dead.deadAt).description),
            ])
        }
    }
}

/// Wakes blocked `FETCH`es: on new commits, acks, nacks and retries.
///
/// Each notification moves an epoch forward. A `FETCH` reads the epoch before it looks for work, and its wait
/// returns at once when the epoch has moved since: a commit that lands between the look and the wait is not
/// missed.
final class Wakeups: Sendable {
    private struct Waiter {
        let continuation: CheckedContinuation<Void, Never>
        var timer: Task<Void, Never>?
    }

    private struct State {
        var epoch: UInt64 = 0
        var waiters: [UInt64: Waiter] = [:]
    }

    private let state = Mutex(State())
    private let next = Atomic<UInt64>(0)

    /// The current epoch, to pass to ``wait(for:since:)``.
    var epoch: UInt64 { state.withLock { $0.epoch } }

    func notifyAll() {
        let all = state.withLock { state -> [Waiter] in
            state.epoch &+= 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in all {
            waiter.timer?.cancel()
            waiter.continuation.resume()
        }
    }

    /// Waits for a notification after `epoch`, at most `duration`; also ends on cancellation.
    func wait(for duration: Duration, since epoch: UInt64) async {
        let id = next.add(1, ordering: .relaxed).newValue
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let alreadyNotified = state.withLock { state -> Bool in
                    guard state.epoch == epoch else { return true }
                    state.waiters[id] = Waiter(continuation: continuation, timer: nil)
                    return false
                }
                if alreadyNotified {
                    continuation.resume()
                    return
                }
                let timer = Task {
                    try? await Task.sleep(for: duration)
                    self.resume(id)
                }
                let registered = state.withLock { state -> Bool in
                    guard state.waiters[id] != nil else { return false }
                    state.waiters[id]?.timer = timer
                    return true
                }
                if !registered { timer.cancel() }
                if Task.isCancelled { resume(id) }
            }
        } onCancel: {
            resume(id)
        }
    }

    private func resume(_ id: UInt64) {
        guard let waiter = state.withLock({ $0.waiters.removeValue(forKey: id) }) else { return }
        waiter.timer?.cancel()
        waiter.continuation.resume()
    }
}
