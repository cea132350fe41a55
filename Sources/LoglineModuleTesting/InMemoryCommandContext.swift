import LoglineCore
import LoglineModuleAPI
import Synchronization

/// A ``LoglineModuleAPI/CommandContext`` over a ``TestEventLog``, to run a command handler without a server.
///
/// It behaves as the host's context does: reads return a stream's events oldest first, appends are atomic and
/// checked against their ``LoglineCore/ExpectedVersion``, and a failed expectation throws
/// ``LoglineModuleAPI/CommandError/conflict(_:)`` with the log's message.
///
/// ```swift
/// let context = InMemoryCommandContext()
/// let outcome = try await CreateOrderHandler().handle(body, context: context)
/// #expect(context.log.events.map(\.eventType) == ["order-created"])
/// ```
public final class InMemoryCommandContext: CommandContext {
    private let state: Mutex<TestEventLog>

    /// Creates a context over a log.
    /// - Parameter log: The events already there (none by default).
    public init(log: TestEventLog = TestEventLog()) {
        state = Mutex(log)
    }

    /// The log as it is now, with what the handler appended.
    public var log: TestEventLog {
        state.withLock { $0 }
    }

    /// Reads a stream's events, oldest first.
    /// - Parameter stream: The stream.
    /// - Returns: Its events (empty when it has none).
    /// - Throws: Never in practice (events of a ``TestEventLog`` always parse).
    public func read(_ stream: StreamName) async throws -> [ModuleEvent] {
        let events = state.withLock { $0.events(in: stream) }
        return try events.map { try ModuleEvent($0) }
    }

    /// Appends events to a stream atomically, under an expectation.
    /// - Parameters:
    ///   - events: The events.
    ///   - stream: The stream.
    ///   - expectedVersion: The expectation.
    /// - Returns: Where they landed.
    /// - Throws: ``LoglineModuleAPI/CommandError/conflict(_:)`` when the expectation fails, or a
    ///   ``TestEventLog/AppendFailure`` for anything else the log refuses (an invalid event type, for example).
    public func append(_ events: [NewEvent], to stream: StreamName, expectedVersion: ExpectedVersion) async throws
        -> [AppendedEvent]
    {
        let result = state.withLock { log in
            Result { () throws(TestEventLog.AppendFailure) in
                try log.append(events, to: stream, expectedVersion: expectedVersion)
            }
        }
        switch result {
        case .success(let appended):
            return appended.map { AppendedEvent(eventID: $0.eventID, position: $0.position, version: $0.version) }
        case .failure(let failure):
            if case .wrongExpectedVersion = failure { throw CommandError.conflict(failure.description) }
            throw failure
        }
    }
}
