import LoglineCore

/// The write side: takes a named command with a JSON body, reads the aggregate's events, decides, and appends
/// new events with an expected version.
public protocol CommandHandler: LoglineModule {
    /// The command's name, as in `SUBMIT <command-name> <json>`, for example `create-order`.
    var commandName: String { get }
    /// Handles one command.
    /// - Parameters:
    ///   - body: The command's JSON body.
    ///   - context: Reads streams and appends events.
    /// - Returns: The result, as a JSON object; the host adds where the events were appended.
    /// - Throws: ``CommandError`` (refusals, conflicts), or any error (reported as an internal failure).
    func handle(_ body: JSONValue, context: any CommandContext) async throws -> CommandOutcome
}

extension CommandHandler {
    /// Command handlers are not fed events.
    public var handledEventTypes: Set<String> { [] }
}

/// What a command handler did.
public struct CommandOutcome: Hashable, Sendable {
    /// The result for the client: a JSON object.
    public var result: JSONObject
    /// Where the command's events landed.
    public var appended: [AppendedEvent]

    /// Creates an outcome.
    /// - Parameters:
    ///   - result: The result object.
    ///   - appended: Where the events landed.
    public init(result: JSONObject, appended: [AppendedEvent]) {
        self.result = result
        self.appended = appended
    }
}

/// An event a command handler wants appended.
public struct NewEvent: Hashable, Sendable {
    /// Its type.
    public var eventType: String
    /// Its body.
    public var data: JSONValue
    /// Its metadata object.
    public var metadata: JSONObject

    /// Creates an event to append.
    /// - Parameters:
    ///   - eventType: Its type.
    ///   - data: Its body.
    ///   - metadata: Its metadata.
    public init(eventType: String, data: JSONValue, metadata: JSONObject = [:]) {
        self.eventType = eventType
        self.data = data
        self.metadata = metadata
    }
}

/// What a command handler may do: read a stream, append to it under an expectation.
public protocol CommandContext: Sendable {
    /// Reads a stream's events, oldest first.
    /// - Parameter stream: The stream.
    /// - Returns: Its events (empty when it does not exist).
    /// - Throws: A storage error.
    func read(_ stream: StreamName) async throws -> [ModuleEvent]

    /// Appends events to a stream atomically.
    /// - Parameters:
    ///   - events: The events.
    ///   - stream: The stream.
    ///   - expectedVersion: The expectation.
    /// - Returns: Where they landed.
    /// - Throws: ``CommandError/conflict(_:)`` when the expectation fails, or a storage error.
    func append(_ events: [NewEvent], to stream: StreamName, expectedVersion: ExpectedVersion) async throws
        -> [AppendedEvent]
}

extension CommandContext {
    /// Reads the stream, decides, and appends what `decide` returns with the version it read as the expectation;
    /// on a conflict (someone appended in between) it reads again and decides again, up to `attempts` times.
    /// - Parameters:
    ///   - stream: The aggregate's stream.
    ///   - attempts: How many times to try (3 by default).
    ///   - decide: Turns the current events into new events; throws to refuse.
    /// - Returns: Where the new events landed.
    /// - Throws: What `decide` throws, or ``CommandError/conflict(_:)`` after the last attempt.
    public func decide(
        _ stream: StreamName, attempts: Int = 3, _ decide: ([ModuleEvent]) throws -> [NewEvent]
    ) async throws -> [AppendedEvent] {
        var attempt = 1
        while true {
            let history = try await read(stream)
            let events = try decide(history)
            guard !events.isEmpty else { return [] }
            let expected: ExpectedVersion = history.isEmpty ? .noStream : .exact(history.last!.version)
            do {
                return try await append(events, to: stream, expectedVersion: expected)
            } catch let error as CommandError {
                guard case .conflict = error, attempt < attempts else { throw error }
                attempt += 1
            }
        }
    }
}

/// Why a command was not carried out.
public enum CommandError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The handler refused the command, with its reason (`-REJECTED`).
    case rejected(String)
    /// The body is not the JSON the command takes (`-BADJSON`).
    case badJSON(String)
    /// The aggregate is not in the state the command expects, for example it already exists (`-CONFLICT`).
    case conflict(String)

    /// The reason.
    public var description: String {
        switch self {
        case .rejected(let reason), .badJSON(let reason), .conflict(let reason): return reason
        }
    }
}
