import LoglineCore
import LoglineModuleAPI

/// What the projection host does around a module, written out so tests (and the harnesses here) can do the
/// same: which events a module is fed, the ids and metadata of the events a reactor emits, and what an index
/// holds.
public enum HostConventions {
    /// Whether the host feeds `eventType` to `module`: when the module handles that type, or handles every type
    /// by declaring none.
    /// - Parameters:
    ///   - module: The module.
    ///   - eventType: The event's type.
    /// - Returns: `true` when the event is fed to the module.
    public static func feeds(_ module: any LoglineModule, eventType: String) -> Bool {
        let handled = module.handledEventTypes
        return handled.isEmpty || handled.contains(eventType)
    }

    /// The id of the `index`-th event a reactor emits while reacting to `source`: derived from the reactor's
    /// name (with `#index` after it from the second event on) and the source event's id, so a replay of the same
    /// reaction proposes the same ids and appends nothing new.
    /// - Parameters:
    ///   - module: The reactor's name.
    ///   - index: The emitted event's place among that reaction's events, from 0.
    ///   - source: The id of the event reacted to.
    /// - Returns: The new event's id.
    public static func reactionEventID(module: String, index: Int, source: EventID) -> EventID {
        ReactorContext.reactionEventID(reactor: module, index: index, source: source)
    }

    /// The metadata of an event a reactor emits: `causation_id` is the source event's id, `correlation_id` is
    /// the source's correlation id (its own id when it has none), so every event of a saga shares one.
    /// - Parameter source: The event reacted to.
    /// - Returns: The metadata object.
    public static func reactionMetadata(source: ModuleEvent) -> JSONObject {
        ReactorContext.reactionMetadata(source: source)
    }
}

/// A module that failed on an event, and what the host would have done about it.
public struct ModuleFailure: Error, Sendable, CustomStringConvertible {
    /// What became of the event.
    public enum Disposition: Hashable, Sendable {
        /// The event was parked and the module went on (``LoglineModuleAPI/FailurePolicy/park(attempts:)``, or a
        /// reaction that could not be appended).
        case parked
        /// The module stopped before the event (``LoglineModuleAPI/FailurePolicy/stop(attempts:)``).
        case stopped
    }

    /// The module's name.
    public var module: String
    /// The event it failed on.
    public var event: RecordedEvent
    /// What it threw (or why its reaction could not be appended).
    public var error: any Error
    /// What became of the event.
    public var disposition: Disposition

    /// Creates a failure record.
    /// - Parameters:
    ///   - module: The module's name.
    ///   - event: The event.
    ///   - error: The error.
    ///   - disposition: What became of the event.
    public init(module: String, event: RecordedEvent, error: any Error, disposition: Disposition) {
        self.module = module
        self.event = event
        self.error = error
        self.disposition = disposition
    }

    /// A message like the host's `last_error`.
    public var description: String {
        "\(module) \(disposition == .parked ? "parked" : "stopped before") position \(event.position) "
            + "(\(event.eventType)): \(error)"
    }
}
