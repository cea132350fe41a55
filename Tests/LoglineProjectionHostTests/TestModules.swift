import LoglineCore
import LoglineModuleAPI

/// An error a test module throws.
struct TestModuleError: Error, CustomStringConvertible {
    var description: String
}

/// Counts items: `items` (indexed by `color` and `size`) holds one document per item with how many times it was
/// added; `totals/all` counts every event the projector applied, so a duplicate or a loss shows.
struct CountingProjector: Projector {
    var name = "counter"
    var itemsView = "items"
    var totalsView = "totals"

    var handledEventTypes: Set<String> { ["item-added", "item-recolored", "item-removed"] }

    var views: [ViewDefinition] {
        [ViewDefinition(name: itemsView, indexes: ["color", "size"]), ViewDefinition(name: totalsView)]
    }

    func apply(_ event: ModuleEvent, to views: inout ViewChanges) throws {
        guard let key = event.data["key"]?.stringValue else { throw TestModuleError(description: "no key") }
        switch event.eventType {
        case "item-added":
            let adds = try views.document(itemsView, key: key)?["adds"]?.int64Value ?? 0
            try views.put(
                itemsView, key: key,
                document: [
                    "key": .string(key), "color": event.data["color"] ?? .null, "size": event.data["size"] ?? .null,
                    "adds": .number(JSONNumber(adds + 1)),
                ])
        case "item-recolored":
            guard var document = try views.document(itemsView, key: key)?.objectValue else { break }
            document["color"] = event.data["color"] ?? .null
            try views.put(itemsView, key: key, document: .object(document))
        case "item-removed":
            try views.delete(itemsView, key: key)
        default:
            throw TestModuleError(description: "unexpected \(event.eventType)")
        }
        let total = try views.document(totalsView, key: "all")?["events"]?.int64Value ?? 0
        try views.put(totalsView, key: "all", document: ["events": .number(JSONNumber(total + 1))])
    }
}

/// Emits one `item-echoed` event per `item-added` (to `echo/<key>`) and counts its reactions per item in its state
/// view `echo-state`.
struct EchoReactor: Reactor {
    var name = "echoer"
    var handledEventTypes: Set<String> { ["item-added"] }
    var views: [ViewDefinition] { [ViewDefinition(name: "echo-state")] }

    func react(to event: ModuleEvent, context: inout ReactorContext) throws {
        guard let key = event.data["key"]?.stringValue else { throw TestModuleError(description: "no key") }
        let reactions = try context.views.document("echo-state", key: key)?["reactions"]?.int64Value ?? 0
        try context.views.put("echo-state", key: key, document: ["reactions": .number(JSONNumber(reactions + 1))])
        context.emit(
            "item-echoed", to: StreamName(uncheckedType: "echo", id: key),
            data: ["key": .string(key), "source": .string(event.eventID.description)])
    }
}

/// Records one document per event under its `key`, counts the events it applied in the document `tally`, and
/// throws on `poison` events until `healed` is set.
struct PoisonProjector: Projector {
    var name: String
    var view: String
    var failurePolicy: FailurePolicy
    /// When `true`, poison events are applied like any other.
    let healed: Locked<Bool>
    /// When `true`, each failure names its attempt, so that it changes from one attempt to the next.
    let varyingErrors = Locked(false)
    /// How many times `apply` saw each poison event.
    let poisonAttempts: Locked<[LogPosition: Int]>

    init(name: String, view: String, failurePolicy: FailurePolicy) {
        self.name = name
        self.view = view
        self.failurePolicy = failurePolicy
        self.healed = Locked(false)
        self.poisonAttempts = Locked([:])
    }

    var handledEventTypes: Set<String> { ["item-added", "poison"] }
    var views: [ViewDefinition] { [ViewDefinition(name: view)] }

    func apply(_ event: ModuleEvent, to views: inout ViewChanges) throws {
        guard let key = event.data["key"]?.stringValue else { throw TestModuleError(description: "no key") }
        if event.eventType == "poison" {
            let position = event.position
            let attempt = poisonAttempts.withLock { attempts in
                attempts[position, default: 0] += 1
                return attempts[position]!
            }
            if !healed.value {
                throw TestModuleError(description: "poisoned by \(key)" + (varyingErrors.value ? " (\(attempt))" : ""))
            }
        }
        try views.put(
            view, key: key,
            document: ["type": .string(event.eventType), "position": .number(JSONNumber(Int64(event.position)))])
        let applied = try views.document(view, key: "tally")?["applied"]?.int64Value ?? 0
        try views.put(view, key: "tally", document: ["applied": .number(JSONNumber(applied + 1))])
    }
}

/// Fails each `item-added` event on its first two attempts, with an error that names the attempt (so it changes
/// from one attempt to the next), and applies it on the third. Records when each attempt began.
struct FlakyProjector: Projector {
    var name = "flaky"
    var view = "flaky-seen"
    var failurePolicy: FailurePolicy { .park(attempts: 3) }
    /// The instants of each event's attempts, by position.
    let attempts = Locked<[LogPosition: [ContinuousClock.Instant]]>([:])

    var handledEventTypes: Set<String> { ["item-added"] }
    var views: [ViewDefinition] { [ViewDefinition(name: view)] }

    func apply(_ event: ModuleEvent, to views: inout ViewChanges) throws {
        let position = event.position
        let attempt = attempts.withLock { attempts in
            attempts[position, default: []].append(.now)
            return attempts[position]!.count
        }
        if attempt < 3 { throw TestModuleError(description: "attempt \(attempt) lost its connection") }
        try views.put(view, key: event.data["key"]?.stringValue ?? "?", document: ["attempt": 3])
    }
}

/// Claims one stream for the first `item-added` only: every reaction appends to `claim/all` expecting no stream,
/// so every reaction after the first cannot be appended. Counts its successful reactions in `claims/count`.
struct ClaimingReactor: Reactor {
    var name = "claimer"
    var handledEventTypes: Set<String> { ["item-added"] }
    var views: [ViewDefinition] { [ViewDefinition(name: "claims")] }

    func react(to event: ModuleEvent, context: inout ReactorContext) throws {
        let claims = try context.views.document("claims", key: "count")?["claims"]?.int64Value ?? 0
        try context.views.put("claims", key: "count", document: ["claims": .number(JSONNumber(claims + 1))])
        context.emit(
            "item-claimed", to: StreamName(uncheckedType: "claim", id: "all"),
            data: ["by": .string(event.eventID.description)], expectedVersion: .noStream)
    }
}

/// `create-item {"id": ..., "color": ...}`: adds an item once; refuses the color `forbidden`; a second create of
/// the same item is a conflict.
struct CreateItemHandler: CommandHandler {
    var name = "items-commands"
    var commandName = "create-item"

    func handle(_ body: JSONValue, context: any CommandContext) async throws -> CommandOutcome {
        guard let id = body["id"]?.stringValue, let color = body["color"]?.stringValue else {
            throw CommandError.badJSON("create-item takes {\"id\": string, \"color\": string}")
        }
        guard color != "forbidden" else { throw CommandError.rejected("the color \(color) is not allowed") }
        let stream = try StreamName(aggregateType: "item", aggregateID: id)
        let appended = try await context.decide(stream) { history in
            guard history.isEmpty else { throw CommandError.conflict("item \(id) already exists") }
            return [
                NewEvent(
                    eventType: "item-added",
                    data: ["key": .string(id), "color": .string(color), "size": .number(JSONNumber(1))])
            ]
        }
        return CommandOutcome(result: ["id": .string(id)], appended: appended)
    }
}

/// `recolor-at {"id": ..., "color": ..., "version": n}`: appends at exactly the given stream version, without
/// reading first, so a stale version is a conflict reported by the log (through the command context).
struct RecolorAtVersionHandler: CommandHandler {
    var name = "recolor-commands"
    var commandName = "recolor-at"

    func handle(_ body: JSONValue, context: any CommandContext) async throws -> CommandOutcome {
        guard let id = body["id"]?.stringValue, let color = body["color"]?.stringValue,
            let version = body["version"]?.int64Value
        else { throw CommandError.badJSON("recolor-at takes id, color and version") }
        let appended = try await context.append(
            [NewEvent(eventType: "item-recolored", data: ["key": .string(id), "color": .string(color)])],
            to: itemStream(id), expectedVersion: .exact(StreamVersion(version)))
        return CommandOutcome(result: [:], appended: appended)
    }
}

/// A command whose handler fails with an error that is not a ``CommandError``.
struct BrokenHandler: CommandHandler {
    var name = "broken-commands"
    var commandName = "break"

    func handle(_ body: JSONValue, context: any CommandContext) async throws -> CommandOutcome {
        throw TestModuleError(description: "the handler broke")
    }
}
