import LoglineCore

/// What every module has: a stable name and the event types it handles.
///
/// The name is the module's checkpoint identity: renaming a module makes it start over from the beginning of
/// the log. Names follow the rules of ``LoglineCore/Name``.
public protocol LoglineModule: Sendable {
    /// The stable name, for example `orders`.
    var name: String { get }
    /// The event types the module is fed; the others are skipped (and checkpointed past).
    var handledEventTypes: Set<String> { get }
}

/// What the host does when a module throws on an event.
public enum FailurePolicy: Hashable, Sendable {
    /// Try up to `attempts` times, then park the event (kept, listed, replayable) and go on. Retries run at once
    /// while the error repeats word for word, and with backoff when it changes.
    case park(attempts: Int)
    /// Try up to `attempts` times, then stop the module before the event (state `faulted`). Retries run at once
    /// while the error repeats word for word, and with backoff when it changes.
    case stop(attempts: Int)

    /// How many times the event is tried in all.
    public var attempts: Int {
        switch self {
        case .park(let attempts), .stop(let attempts): return max(1, attempts)
        }
    }
}

/// A view a module keeps: documents under a key, with secondary indexes.
public struct ViewDefinition: Hashable, Sendable {
    /// The view's name, for example `orders`.
    public var name: String
    /// The top-level fields of a document that are indexed, for `QUERY <view> WHERE <field> <value>`.
    ///
    /// A field is indexed by its value when that is a string, a number or a boolean.
    public var indexes: [String]

    /// Creates a view definition.
    /// - Parameters:
    ///   - name: The view's name.
    ///   - indexes: The indexed top-level fields.
    public init(name: String, indexes: [String] = []) {
        self.name = name
        self.indexes = indexes
    }
}

extension ViewDefinition {
    /// The longest value an index keeps, in bytes; longer values are not indexed.
    public static let maximumIndexedValueBytes = 200

    /// The text an index keeps for a field's value: strings as they are, numbers as their exact text, Booleans
    /// as `true` or `false`, up to ``maximumIndexedValueBytes``; other values and absent fields are not indexed.
    /// `QUERY <view> WHERE <field> <value>` matches documents whose field has this text.
    /// - Parameter value: The field's value.
    /// - Returns: The indexed text, or `nil` when the value is not indexed.
    public static func indexText(_ value: JSONValue?) -> String? {
        guard let value else { return nil }
        let text: String
        switch value {
        case .string(let string): text = string
        case .number(let number): text = number.text
        case .bool(let bool): text = bool ? "true" : "false"
        default: return nil
        }
        guard !text.utf8.contains(0), text.utf8.count <= maximumIndexedValueBytes else { return nil }
        return text
    }
}

/// The read side: folds events into views.
///
/// The host feeds events in log order, in batches. Everything `apply` writes to `views` for a batch commits in
/// one transaction with the projector's checkpoint, so each event takes effect exactly once.
///
/// - Important: `apply` must be deterministic and depend only on the event and the views: a rebuild replays it
///   from the start of the log and must reach the same views.
public protocol Projector: LoglineModule {
    /// The views this projector owns.
    var views: [ViewDefinition] { get }
    /// What happens when `apply` throws (``FailurePolicy/park(attempts:)`` with 3 attempts by default).
    var failurePolicy: FailurePolicy { get }
    /// Folds one event into the views.
    /// - Parameters:
    ///   - event: The event.
    ///   - views: The views as of the previous event; changes made here are seen by the next event.
    /// - Throws: Any error: the host retries, then parks or stops according to ``failurePolicy``.
    func apply(_ event: ModuleEvent, to views: inout ViewChanges) throws
}

/// A reactive service: reacts to events by appending new events (the payment and restaurant services).
///
/// A reactor may keep its own state in views. Its new events, its view changes and its checkpoint commit in
/// one log transaction, so a crash never loses or repeats a reaction. Each new event's id is derived from the
/// reactor's name and the source event's id, its `causation_id` is the source event's id, and its
/// `correlation_id` is carried along from the source, so a replay appends nothing new.
public protocol Reactor: LoglineModule {
    /// The views this reactor keeps (its state), if any.
    var views: [ViewDefinition] { get }
    /// What happens when `react` throws.
    var failurePolicy: FailurePolicy { get }
    /// Reacts to one event.
    /// - Parameters:
    ///   - event: The event.
    ///   - context: The reactor's views and where its new events go.
    /// - Throws: Any error: the host retries, then parks or stops according to ``failurePolicy``.
    func react(to event: ModuleEvent, context: inout ReactorContext) throws
}

extension Projector {
    /// Three attempts, then park.
    public var failurePolicy: FailurePolicy { .park(attempts: 3) }
}

extension Reactor {
    /// No views.
    public var views: [ViewDefinition] { [] }
    /// Three attempts, then park.
    public var failurePolicy: FailurePolicy { .park(attempts: 3) }
}

/// What a reactor sees and produces while reacting to one event.
public struct ReactorContext: Sendable {
    /// The reactor's views.
    public var views: ViewChanges
    /// The events to append, in order.
    public private(set) var emitted: [EmittedEvent] = []

    /// Creates a context over views.
    /// - Parameter views: The reactor's views.
    public init(views: ViewChanges) {
        self.views = views
    }

    /// Appends an event to a stream when the reaction commits.
    /// - Parameters:
    ///   - eventType: The new event's type.
    ///   - stream: Its stream.
    ///   - data: Its body.
    ///   - expectedVersion: The stream's expected version (``LoglineCore/ExpectedVersion/any`` by default).
    public mutating func emit(
        _ eventType: String, to stream: StreamName, data: JSONValue, expectedVersion: ExpectedVersion = .any
    ) {
        emitted.append(EmittedEvent(eventType: eventType, stream: stream, data: data, expectedVersion: expectedVersion))
    }
}

extension ReactorContext {
    /// The id of the `index`-th event a reactor emits while reacting to `source`: derived from the reactor's
    /// name (with `#index` after it from the second event on) and the source event's id, so a replay of the same
    /// reaction proposes the same ids and appends nothing new. The host and the test harness both use this.
    /// - Parameters:
    ///   - reactor: The reactor's name.
    ///   - index: The emitted event's place among that reaction's events, from 0.
    ///   - source: The id of the event reacted to.
    /// - Returns: The new event's id.
    public static func reactionEventID(reactor: String, index: Int, source: EventID) -> EventID {
        EventID.derived(namespace: index == 0 ? reactor : "\(reactor)#\(index)", source: source)
    }

    /// The metadata of an event a reactor emits: `causation_id` is the source event's id, `correlation_id` is
    /// the source's correlation id (its own id when it has none), so every event of a saga shares one.
    /// - Parameter source: The event reacted to.
    /// - Returns: The metadata object.
    public static func reactionMetadata(source: ModuleEvent) -> JSONObject {
        [
            "causation_id": .string(source.eventID.description),
            "correlation_id": .string(source.correlationID),
        ]
    }
}

/// An event a reactor asked to append.
public struct EmittedEvent: Hashable, Sendable {
    /// Its type.
    public var eventType: String
    /// Its stream.
    public var stream: StreamName
    /// Its body.
    public var data: JSONValue
    /// The stream's expected version.
    public var expectedVersion: ExpectedVersion

    /// Creates an emitted event.
    /// - Parameters:
    ///   - eventType: Its type.
    ///   - stream: Its stream.
    ///   - data: Its body.
    ///   - expectedVersion: The expectation.
    public init(eventType: String, stream: StreamName, data: JSONValue, expectedVersion: ExpectedVersion = .any) {
        self.eventType = eventType
        self.stream = stream
        self.data = data
        self.expectedVersion = expectedVersion
    }
}
