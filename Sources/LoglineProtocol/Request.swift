import LoglineCore

/// A request the server understands, parsed and validated.
public enum Request: Hashable, Sendable {
    /// `PING [message]`: `+PONG`, or the message back.
    case ping(message: [UInt8]?)
    /// `APPEND`: one event.
    case append(AppendCommand)
    /// `APPENDMANY`: several events to one stream, atomically.
    case appendMany(AppendManyCommand)
    /// `READ`: a stream's events.
    case read(ReadCommand)
    /// `READALL`: the log in position order.
    case readAll(ReadAllCommand)
    /// `INFO`: figures about the server.
    case info
    /// `QUIT`: `+OK`, then the server closes the connection.
    case quit
    /// `AUTH <token>`, or `AUTH <username> <token>` as Redis clients send it (the username is ignored):
    /// authenticates the connection.
    case auth(token: [UInt8])
    /// `SUBMIT <command-name> <json>`: runs a command handler.
    case submit(command: String, body: [UInt8])
    /// `GET <view> <key> [AT <position>]`: one document of a view.
    case get(GetCommand)
    /// `QUERY <view> [WHERE <field> <value>] [LIMIT <n>] [AFTER <key>] [AT <position>]`: documents in key order.
    case query(QueryCommand)
    /// `VIEWS`: the views.
    case views
    /// `PROJECTIONS`: the modules and their progress.
    case projections
    /// `REBUILD <module>`: replays a projector into a shadow copy, then swaps it in.
    case rebuild(module: String)
    /// `PARKED <module>`: the events a module parked.
    case parked(module: String)
    /// `RETRY <module> <position>`: processes a parked event again.
    case retry(module: String, position: LogPosition)
    /// `SKIP <module> <position>`: drops a parked event.
    case skip(module: String, position: LogPosition)
    /// `SUBSCRIBE [FROM <position>|NOW] [TYPE <event_type>]...`: a live tail of the log.
    case subscribe(SubscribeCommand)
    /// `UNSUBSCRIBE`: ends the live tail.
    case unsubscribe
    /// `GROUP CREATE <group> [FROM <position>|NOW] [TYPE <t>]... [ACKWAIT <ms>] [MAXINFLIGHT <n>] [MAXDELIVER <n>]`.
    case groupCreate(GroupCreateCommand)
    /// `GROUP DELETE <group>`.
    case groupDelete(group: String)
    /// `GROUPS`: every consumer group.
    case groups
    /// `FETCH <group> <consumer> [COUNT <n>] [BLOCK <ms>]`.
    case fetch(FetchCommand)
    /// `ACK <group> <position>...`.
    case ack(group: String, positions: [LogPosition])
    /// `NACK <group> <position>...`.
    case nack(group: String, positions: [LogPosition])
    /// `PENDING <group>`.
    case pending(group: String)
    /// `DEAD <group>`.
    case dead(group: String)
    /// `BACKUP <directory>`: a consistent, compacted copy of the store into a new directory on the server.
    case backup(directory: String)
    /// Verbs that Redis tools send on their own (`COMMAND`, `CONFIG GET`, `CLIENT`, `SELECT`, `ECHO`), answered
    /// harmlessly so that redis-cli, redis-benchmark and client libraries work.
    case redisCompatibility(RedisCompatibilityCommand)
}

/// Where a subscription or a consumer group starts.
public enum StartPosition: Hashable, Sendable {
    /// At this position: events at or after it.
    case position(LogPosition)
    /// After the current head: only new events.
    case now
}

/// `SUBSCRIBE [FROM <position>|NOW] [TYPE <event_type>]...`.
public struct SubscribeCommand: Hashable, Sendable {
    /// Where to start (``StartPosition/now`` by default).
    public var start: StartPosition
    /// Only these event types; all when empty.
    public var eventTypes: [String]
}

/// `GROUP CREATE <group> [FROM <position>|NOW] [TYPE <t>]... [ACKWAIT <ms>] [MAXINFLIGHT <n>] [MAXDELIVER <n>]`.
public struct GroupCreateCommand: Hashable, Sendable {
    /// The group's name.
    public var group: String
    /// Where it starts (`nil`: the server's default, the whole log).
    public var start: StartPosition?
    /// Only these event types; all when empty.
    public var eventTypes: [String]
    /// `ACKWAIT` in milliseconds.
    public var ackWaitMilliseconds: UInt64?
    /// `MAXINFLIGHT`.
    public var maxInFlight: UInt64?
    /// `MAXDELIVER`.
    public var maxDeliver: UInt64?
}

/// `FETCH <group> <consumer> [COUNT <n>] [BLOCK <ms>]`.
public struct FetchCommand: Hashable, Sendable {
    /// The group.
    public var group: String
    /// The consumer.
    public var consumer: String
    /// The most deliveries (10 by default).
    public var count: Int
    /// How long to wait for something to deliver, in milliseconds (0: without limit); `nil`: do not wait.
    public var blockMilliseconds: UInt64?
}

/// `GET <view> <key> [AT <position>]`.
public struct GetCommand: Hashable, Sendable {
    /// The view.
    public var view: String
    /// The document's key.
    public var key: String
    /// Wait until the view has processed this position.
    public var atPosition: LogPosition?
}

/// `QUERY <view> [WHERE <field> <value>] [LIMIT <n>] [AFTER <key>] [AT <position>]`.
public struct QueryCommand: Hashable, Sendable {
    /// The view.
    public var view: String
    /// An indexed field and the value it must have.
    public var filter: QueryFilter?
    /// The most documents (100 by default).
    public var limit: Int
    /// Start after this key.
    public var afterKey: String?
    /// Wait until the view has processed this position.
    public var atPosition: LogPosition?
}

/// `WHERE <field> <value>`.
public struct QueryFilter: Hashable, Sendable {
    /// The indexed field.
    public var field: String
    /// The value to match (strings as they are, numbers as written, booleans as true or false).
    public var value: String
}

extension Request {
    /// Whether the request appends to the log (and so completes only once durable).
    public var isAppend: Bool {
        switch self {
        case .append, .appendMany: return true
        default: return false
        }
    }
}

/// An event as given in a request.
public struct EventSpec: Hashable, Sendable {
    /// The event's id, or `nil` for one generated by the server.
    public var eventID: EventID?
    /// The event's type.
    public var eventType: String
    /// The JSON body's bytes, as sent.
    public var data: [UInt8]
    /// The JSON metadata object's bytes, as sent (`{}` when none).
    public var metadata: [UInt8]

    /// Creates an event spec.
    /// - Parameters:
    ///   - eventID: The id or `nil`.
    ///   - eventType: The type.
    ///   - data: The JSON body.
    ///   - metadata: The JSON metadata object.
    public init(eventID: EventID?, eventType: String, data: [UInt8], metadata: [UInt8]) {
        self.eventID = eventID
        self.eventType = eventType
        self.data = data
        self.metadata = metadata
    }
}

/// `APPEND <aggregate_type> <aggregate_id> <event_type> [EXPECT <n>|ANY|NONE] [ID <event_id>] [META <json>] <data>`.
public struct AppendCommand: Hashable, Sendable {
    /// The stream.
    public var stream: StreamName
    /// The expectation.
    public var expectedVersion: ExpectedVersion
    /// The event.
    public var event: EventSpec
}

/// `APPENDMANY <aggregate_type> <aggregate_id> [EXPECT ...] <json array of events>`.
public struct AppendManyCommand: Hashable, Sendable {
    /// The stream.
    public var stream: StreamName
    /// The expectation for the whole batch.
    public var expectedVersion: ExpectedVersion
    /// The events, in order.
    public var events: [EventSpec]
}

/// `READ <aggregate_type> <aggregate_id> [FROM <version>] [COUNT <n>]`.
public struct ReadCommand: Hashable, Sendable {
    /// The stream.
    public var stream: StreamName
    /// The first version to return.
    public var fromVersion: StreamVersion
    /// The most events to return.
    public var count: Int
}

/// `READALL [FROM <position>] [COUNT <n>] [TYPE <event_type>]...`.
public struct ReadAllCommand: Hashable, Sendable {
    /// The first position to return.
    public var fromPosition: LogPosition
    /// The most events to return.
    public var count: Int
    /// Only these event types; all when empty.
    public var eventTypes: Set<String>
}

/// The Redis housekeeping verbs Logline answers for compatibility.
public enum RedisCompatibilityCommand: Hashable, Sendable {
    /// `COMMAND ...`: an empty array (Logline has no Redis command table).
    case command
    /// `CONFIG GET <parameter>`: `[parameter, value]` for the few parameters Redis tools ask about
    /// (`save`, `appendonly`, `appendfsync`), an empty array for the rest.
    case configGet(String)
    /// `CLIENT ...`, `SELECT 0`: `+OK`.
    case ok
    /// `ECHO <message>`: the message.
    case echo([UInt8])
}

/// A request that was framed but is not valid: the reply is `-CODE message`.
public struct RequestError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The error code.
    public let code: ErrorCode
    /// What is wrong.
    public let message: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: The code.
    ///   - message: The message.
    public init(_ code: ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }

    /// `CODE message`.
    public var description: String { "\(code) \(message)" }
}
