import LoglineCore

/// An event handed to one consumer of a consumer group by ``LoglineClient/fetch(group:consumer:count:block:)``.
///
/// Settle it with ``LoglineClient/ack(group:positions:)`` once it is handled, or
/// ``LoglineClient/nack(group:positions:)`` to have it delivered again now. An event left unsettled is delivered
/// again after the group's ack wait.
public struct Delivery: Hashable, Sendable {
    /// The event.
    public var event: RecordedEvent
    /// How many times the group has delivered this event, this delivery included (1 the first time).
    public var deliveryCount: Int
    /// The consumer group it was delivered for.
    public var group: String

    /// The event's position in the log: what ``LoglineClient/ack(group:positions:)`` takes.
    public var position: LogPosition { event.position }

    /// Creates a delivery.
    /// - Parameters:
    ///   - event: The event.
    ///   - deliveryCount: How many times it has been delivered.
    ///   - group: The consumer group.
    public init(event: RecordedEvent, deliveryCount: Int, group: String) {
        self.event = event
        self.deliveryCount = deliveryCount
        self.group = group
    }

    /// Reads one element of a `FETCH` reply: the envelope's JSON object with a `delivery_count` member.
    /// - Parameters:
    ///   - json: The JSON bytes.
    ///   - group: The consumer group it was fetched from.
    /// - Throws: ``LoglineClientError/unexpectedReply(_:)`` when a field is missing or malformed.
    public init(json: [UInt8], group: String) throws(LoglineClientError) {
        let fields = try JSONFields(bytes: json)
        guard let count = fields.int("delivery_count") else {
            throw .unexpectedReply(String(decoding: json.prefix(200), as: UTF8.self))
        }
        self.event = try RecordedEvent(fields: fields, envelopeJSON: json)
        self.deliveryCount = count
        self.group = group
    }
}

/// A consumer group as `GROUPS` reports it.
public struct GroupInfo: Hashable, Sendable {
    /// The group's name.
    public var name: String
    /// The event types it receives; empty for all.
    public var eventTypes: [String]
    /// How long a delivery may stay unacknowledged before it is delivered again.
    public var ackWait: Duration
    /// The most unacknowledged deliveries one consumer may hold.
    public var maxInFlight: Int
    /// The most deliveries of one event before it becomes a dead letter.
    public var maxDeliver: Int
    /// The last position the group has handed out.
    public var cursor: LogPosition
    /// The position up to which every event is settled (acknowledged or dead).
    public var ackedPosition: LogPosition
    /// How many deliveries wait for an acknowledgement.
    public var pending: Int
    /// How many dead letters the group holds.
    public var dead: Int
    /// The positions between the group's cursor and the head of the log.
    public var lag: UInt64
    /// The consumers the group has seen.
    public var consumers: [GroupConsumer]
    /// The server's JSON for the group, as sent.
    public var json: String

    /// Reads one element of a `GROUPS` reply.
    /// - Parameter json: The JSON bytes.
    /// - Throws: ``LoglineClientError/unexpectedReply(_:)`` when a field is missing or malformed.
    public init(json: [UInt8]) throws(LoglineClientError) {
        let fields = try JSONFields(bytes: json)
        let text = String(decoding: json, as: UTF8.self)
        guard let name = fields.string("name"), let types = fields.strings("types"),
            let ackWait = fields.unsigned("ack_wait_ms"), let maxInFlight = fields.int("max_in_flight"),
            let maxDeliver = fields.int("max_deliver"), let cursor = fields.unsigned("cursor"),
            let acked = fields.unsigned("acked_position"), let pending = fields.int("pending"),
            let dead = fields.int("dead"), let lag = fields.unsigned("lag")
        else { throw .unexpectedReply(text) }
        var consumers: [GroupConsumer] = []
        for element in fields.elements("consumers") ?? [] {
            consumers.append(try GroupConsumer(json: element))
        }
        self.name = name
        self.eventTypes = types
        self.ackWait = .milliseconds(ackWait)
        self.maxInFlight = maxInFlight
        self.maxDeliver = maxDeliver
        self.cursor = cursor
        self.ackedPosition = acked
        self.pending = pending
        self.dead = dead
        self.lag = lag
        self.consumers = consumers
        self.json = text
    }
}

/// One consumer of a consumer group, as `GROUPS` reports it.
public struct GroupConsumer: Hashable, Sendable {
    /// The consumer's name, as given to `FETCH`.
    public var name: String
    /// How many deliveries it holds unacknowledged.
    public var pending: Int
    /// When it last fetched, when the server says.
    public var lastSeen: Timestamp?

    /// Reads one element of a group's `consumers`.
    /// - Parameter json: The JSON bytes.
    /// - Throws: ``LoglineClientError/unexpectedReply(_:)`` when a field is missing or malformed.
    public init(json: [UInt8]) throws(LoglineClientError) {
        let fields = try JSONFields(bytes: json)
        guard let name = fields.string("name"), let pending = fields.int("pending") else {
            throw .unexpectedReply(String(decoding: json, as: UTF8.self))
        }
        self.name = name
        self.pending = pending
        self.lastSeen = fields.timestamp("last_seen")
    }
}

/// A delivery that waits for its acknowledgement, as `PENDING` reports it.
public struct PendingDelivery: Hashable, Sendable {
    /// The event's position.
    public var position: LogPosition
    /// The event's id.
    public var eventID: EventID
    /// The event's type.
    public var eventType: String
    /// The consumer that holds it.
    public var consumer: String
    /// How many times it has been delivered.
    public var deliveryCount: Int
    /// When it was last delivered, when the server says.
    public var deliveredAt: Timestamp?
    /// How long it has been waiting since then.
    public var idle: Duration
    /// The server's JSON, as sent.
    public var json: String

    /// Reads one element of a `PENDING` reply.
    /// - Parameter json: The JSON bytes.
    /// - Throws: ``LoglineClientError/unexpectedReply(_:)`` when a field is missing or malformed.
    public init(json: [UInt8]) throws(LoglineClientError) {
        let fields = try JSONFields(bytes: json)
        let text = String(decoding: json, as: UTF8.self)
        guard let position = fields.unsigned("position"), let id = fields.string("event_id").flatMap(EventID.init),
            let type = fields.string("event_type"), let consumer = fields.string("consumer"),
            let count = fields.int("delivery_count"), let idle = fields.unsigned("idle_ms")
        else { throw .unexpectedReply(text) }
        self.position = position
        self.eventID = id
        self.eventType = type
        self.consumer = consumer
        self.deliveryCount = count
        self.deliveredAt = fields.timestamp("delivered_at")
        self.idle = .milliseconds(idle)
        self.json = text
    }
}

/// An event a consumer group gave up on after its most deliveries, as `DEAD` reports it.
///
/// ``LoglineClient/retryDead(group:position:)`` delivers it again.
public struct DeadLetter: Hashable, Sendable {
    /// The event's position.
    public var position: LogPosition
    /// The event's id.
    public var eventID: EventID
    /// The event's type.
    public var eventType: String
    /// How many times it was delivered.
    public var deliveryCount: Int
    /// The consumer it was last delivered to, when the server says.
    public var lastConsumer: String?
    /// When it became a dead letter, when the server says.
    public var deadAt: Timestamp?
    /// The server's JSON, as sent.
    public var json: String

    /// Reads one element of a `DEAD` reply.
    /// - Parameter json: The JSON bytes.
    /// - Throws: ``LoglineClientError/unexpectedReply(_:)`` when a field is missing or malformed.
    public init(json: [UInt8]) throws(LoglineClientError) {
        let fields = try JSONFields(bytes: json)
        let text = String(decoding: json, as: UTF8.self)
        guard let position = fields.unsigned("position"), let id = fields.string("event_id").flatMap(EventID.init),
            let type = fields.string("event_type"), let count = fields.int("delivery_count")
        else { throw .unexpectedReply(text) }
        self.position = position
        self.eventID = id
        self.eventType = type
        self.deliveryCount = count
        self.lastConsumer = fields.string("last_consumer")
        self.deadAt = fields.timestamp("dead_at")
        self.json = text
    }
}
