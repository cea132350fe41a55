import LoglineCore
import LoglineModuleAPI

/// The committed documents of a module's views, in memory.
struct ViewStore: Sendable {
    var documents: [String: [String: JSONValue]] = [:]

    /// A reader over a snapshot of the documents, for ``ViewChanges``.
    func reader() -> ViewChanges.Reader {
        let snapshot = documents
        return { view, key in snapshot[view]?[key] }
    }

    /// Commits changes as the host does: each document is stored as JSON text and read back from it.
    mutating func commit(_ changes: ViewChanges) throws {
        for (view, changed) in changes.changes {
            for (key, document) in changed {
                if let document {
                    documents[view, default: [:]][key] = try JSONValue(parsing: document.jsonBytes)
                } else {
                    documents[view]?[key] = nil
                }
            }
        }
    }
}

/// Runs one projector or reactor over events the way the host does, one event at a time.
struct ModuleDriver: Sendable {
    enum Kind: Sendable {
        case projector(any Projector)
        case reactor(any Reactor)
    }

    /// What one event did, before it is committed.
    struct Step: Sendable {
        var event: ModuleEvent
        var changes: ViewChanges
        var emitted: [EmittedEvent]
    }

    let kind: Kind
    let module: any LoglineModule
    let views: [ViewDefinition]
    let policy: FailurePolicy
    var store = ViewStore()
    /// The position of the last event fed (0 before the first).
    var checkpoint: LogPosition = 0
    /// The event the module stopped before, when its policy stopped it.
    var stoppedBefore: RecordedEvent?
    var failures: [ModuleFailure] = []

    init(projector: any Projector) {
        kind = .projector(projector)
        module = projector
        views = projector.views
        policy = projector.failurePolicy
    }

    init(reactor: any Reactor) {
        kind = .reactor(reactor)
        module = reactor
        views = reactor.views
        policy = reactor.failurePolicy
    }

    var name: String { module.name }

    func feeds(_ event: RecordedEvent) -> Bool {
        HostConventions.feeds(module, eventType: event.eventType)
    }

    /// Runs the module on one event without committing anything.
    func step(_ event: RecordedEvent) throws -> Step {
        let moduleEvent = try ModuleEvent(event)
        let changes = ViewChanges(views: views, reader: store.reader())
        switch kind {
        case .projector(let projector):
            var trial = changes
            try projector.apply(moduleEvent, to: &trial)
            return Step(event: moduleEvent, changes: trial, emitted: [])
        case .reactor(let reactor):
            var context = ReactorContext(views: changes)
            try reactor.react(to: moduleEvent, context: &context)
            return Step(event: moduleEvent, changes: context.views, emitted: context.emitted)
        }
    }

    /// Commits a step's view changes and moves the checkpoint past its event.
    mutating func commit(_ step: Step) throws {
        try store.commit(step.changes)
        checkpoint = step.event.position
    }

    /// Records a failure on `event` according to the module's policy (or parks it regardless, for a reaction
    /// that could not be appended) and returns the record.
    mutating func fail(_ event: RecordedEvent, error: any Error, forceParking: Bool = false) -> ModuleFailure {
        let disposition: ModuleFailure.Disposition
        if forceParking {
            disposition = .parked
        } else {
            switch policy {
            case .park: disposition = .parked
            case .stop: disposition = .stopped
            }
        }
        let failure = ModuleFailure(module: name, event: event, error: error, disposition: disposition)
        failures.append(failure)
        if disposition == .stopped {
            stoppedBefore = event
        } else {
            checkpoint = event.position
        }
        return failure
    }

    func document(_ view: String, key: String) -> JSONValue? {
        store.documents[view]?[key]
    }

    func documents(_ view: String) -> [String: JSONValue] {
        store.documents[view] ?? [:]
    }

    func query(_ view: String, where field: String, equals value: JSONValue) throws(HarnessError) -> [String] {
        guard let definition = views.first(where: { $0.name == view }) else { throw .unknownView(view) }
        guard definition.indexes.contains(field) else { throw .notIndexed(view: view, field: field) }
        guard let wanted = ViewDefinition.indexText(value) else { return [] }
        return documents(view).filter { ViewDefinition.indexText($0.value[field]) == wanted }.keys.sorted()
    }
}

/// A misuse of a harness.
public enum HarnessError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The view is not one of the module's.
    case unknownView(String)
    /// The field is not one of the view's indexes, so the host could not query by it.
    case notIndexed(view: String, field: String)
    /// The module stopped before an event (its policy is to stop) and takes no more until the test clears it.
    case stopped(module: String, position: LogPosition)

    /// A message.
    public var description: String {
        switch self {
        case .unknownView(let view): return "no view named '\(view)' in this module"
        case .notIndexed(let view, let field): return "view \(view) has no index on '\(field)'"
        case .stopped(let module, let position): return "\(module) stopped before position \(position)"
        }
    }
}
