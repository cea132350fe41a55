import LoglineCore

/// Why a host operation failed; each case maps to a protocol error code.
public enum HostError: Error, Hashable, Sendable, CustomStringConvertible {
    /// No such view, module, command or parked event (`NOTFOUND`).
    case notFound(String)
    /// A bounded wait ran out (`TIMEOUT`).
    case timeout(String)
    /// A command handler refused the command (`REJECTED`).
    case rejected(String)
    /// A JSON body was not what the command takes (`BADJSON`).
    case badJSON(String)
    /// The aggregate was not in the expected state (`CONFLICT`).
    case conflict(String)
    /// The request does not make sense for this module (`BADREQ`).
    case badRequest(String)
    /// The host is shutting down (`UNAVAILABLE`).
    case unavailable(String)
    /// Something failed inside (`INTERNAL`).
    case `internal`(String)
    /// The disk is full (`DISKFULL`): nothing was written.
    case diskFull(String)

    /// The protocol's error code.
    public var code: ErrorCode {
        switch self {
        case .notFound: return .notFound
        case .timeout: return .timeout
        case .rejected: return .rejected
        case .badJSON: return .badJSON
        case .conflict: return .conflict
        case .badRequest: return .badRequest
        case .unavailable: return .unavailable
        case .internal: return .internal
        case .diskFull: return .diskFull
        }
    }

    /// The message.
    public var description: String {
        switch self {
        case .notFound(let message), .timeout(let message), .rejected(let message), .badJSON(let message),
            .conflict(let message), .badRequest(let message), .unavailable(let message), .internal(let message),
            .diskFull(let message):
            return message
        }
    }
}

/// The kind of a module, as `PROJECTIONS` reports it.
public enum ModuleKind: String, Hashable, Sendable {
    /// A command handler.
    case commandHandler = "command-handler"
    /// A projector.
    case projector
    /// A reactor.
    case reactor
}

/// The state of a module, as `PROJECTIONS` reports it.
public enum ModuleState: String, Hashable, Sendable {
    /// Processing events (or waiting for new ones).
    case running
    /// Running, and rebuilding its views into a shadow copy.
    case rebuilding
    /// Not processing: the host is stopping or stopped.
    case stopped
    /// Stopped before an event it could not process (its policy is to stop); see the last error.
    case faulted
}

/// What `PROJECTIONS` reports of one module.
public struct ModuleStatus: Hashable, Sendable {
    /// The module's name.
    public var name: String
    /// Its kind.
    public var kind: ModuleKind
    /// The last position it has processed (0 for command handlers).
    public var checkpoint: LogPosition
    /// Positions behind the head of the log.
    public var lag: UInt64
    /// Its state.
    public var state: ModuleState
    /// Events processed since it started from the beginning of the log.
    public var eventsProcessed: UInt64
    /// Events parked.
    public var parkedCount: Int
    /// The last error, if any.
    public var lastError: String?
    /// How far a running rebuild has got, if one runs.
    public var rebuildPosition: LogPosition?

    /// The status as a JSON object.
    public var json: JSONValue {
        var object: JSONObject = [
            "name": .string(name), "kind": .string(kind.rawValue), "checkpoint": .number(JSONNumber(Int64(checkpoint))),
            "lag": .number(JSONNumber(Int64(lag))), "state": .string(state.rawValue),
            "events_processed": .number(JSONNumber(Int64(eventsProcessed))),
            "parked": .number(JSONNumber(parkedCount)),
            "last_error": lastError.map { .string($0) } ?? .null,
        ]
        if let rebuildPosition { object["rebuild_position"] = .number(JSONNumber(Int64(rebuildPosition))) }
        return .object(object)
    }
}

/// What `VIEWS` reports of one view.
public struct ViewStatus: Hashable, Sendable {
    /// The view's name.
    public var name: String
    /// The module that owns it.
    public var module: String
    /// Its indexed fields.
    public var indexes: [String]
    /// How many documents it holds.
    public var documentCount: UInt64

    /// The status as a JSON object.
    public var json: JSONValue {
        .object([
            "name": .string(name), "module": .string(module), "indexes": .array(indexes.map { .string($0) }),
            "documents": .number(JSONNumber(Int64(documentCount))),
        ])
    }
}
