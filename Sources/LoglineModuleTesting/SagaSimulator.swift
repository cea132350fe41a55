import LoglineCore
import LoglineModuleAPI

/// Runs several projectors, reactors and command handlers together over a ``TestEventLog``, the way the host
/// runs them over the real log, until nothing more happens: a whole saga in a unit test.
///
/// Every module is fed every event it handles, in log order. The simulator goes through the log one position at
/// a time and offers the event to each module in the order they were given; what a reactor emits is appended at
/// the end of the log at once (ids derived from the reactor's name and the source event's id, `causation_id`
/// and `correlation_id` in the metadata, expected versions checked), so later modules and later positions see it.
/// A reaction whose events cannot be appended takes no effect and its source event is parked, as the host does.
///
/// ```swift
/// var saga = try SagaSimulator(modules: OrdersModule.modules() + PaymentModule.modules())
/// let outcome = try await saga.submit("create-order", body)
/// try saga.run()
/// #expect(saga.document("orders", key: id)?["status"] == "Paid")
/// ```
public struct SagaSimulator: Sendable {
    /// Why modules cannot run together, or a run did not settle.
    public enum SimulatorError: Error, Hashable, Sendable, CustomStringConvertible {
        /// Two modules have the same name.
        case duplicateModule(String)
        /// Two modules declare the same view, or a view's name is invalid.
        case badView(String)
        /// Two command handlers take the same command.
        case duplicateCommand(String)
        /// No command handler takes this command.
        case unknownCommand(String)
        /// The reactors went on emitting past the limit: they probably react to each other for ever.
        case notQuiescent(appended: Int)

        /// A message.
        public var description: String {
            switch self {
            case .duplicateModule(let name): return "two modules are named \(name)"
            case .badView(let reason): return reason
            case .duplicateCommand(let name): return "two command handlers take \(name)"
            case .unknownCommand(let name): return "no command handler takes \(name)"
            case .notQuiescent(let appended): return "still emitting after \(appended) events; a reaction loop?"
            }
        }
    }

    /// The log: the events appended by the test, the command handlers and the reactors.
    public private(set) var log: TestEventLog
    /// Every failure so far, in the order they happened.
    public private(set) var failures: [ModuleFailure] = []
    /// When `true` (the default), ``run()`` throws the first ``ModuleFailure``; when `false`, failures are only
    /// recorded in ``failures`` and the modules go on as their policies say.
    public var strict: Bool
    /// How many events one ``run()`` may append before it gives up with ``SimulatorError/notQuiescent(appended:)``.
    public var maximumAppendsPerRun = 10_000

    private var drivers: [ModuleDriver] = []
    private var driverByView: [String: Int] = [:]
    private var handlers: [String: any CommandHandler] = [:]

    /// Sets up the modules, checking them as the host does (unique module names, views and commands).
    /// - Parameters:
    ///   - modules: Projectors, reactors and command handlers; they are offered each event in this order.
    ///   - log: The events already there (none by default); ``run()`` feeds them too.
    ///   - strict: Whether ``run()`` throws the first failure.
    /// - Throws: ``SimulatorError`` when the modules clash.
    public init(modules: [any LoglineModule], log: TestEventLog = TestEventLog(), strict: Bool = true)
        throws(SimulatorError)
    {
        self.log = log
        self.strict = strict
        var names = Set<String>()
        for module in modules {
            guard names.insert(module.name).inserted else { throw .duplicateModule(module.name) }
            let driver: ModuleDriver
            if let projector = module as? any Projector {
                driver = ModuleDriver(projector: projector)
            } else if let reactor = module as? any Reactor {
                driver = ModuleDriver(reactor: reactor)
            } else {
                if let handler = module as? any CommandHandler {
                    guard handlers[handler.commandName] == nil else { throw .duplicateCommand(handler.commandName) }
                    handlers[handler.commandName] = handler
                }
                continue
            }
            for view in driver.views {
                guard Name.isValid(view.name), view.name.utf8.count <= 64 else {
                    throw .badView("invalid view name '\(view.name)' in \(module.name)")
                }
                guard driverByView[view.name] == nil else {
                    throw .badView("two modules declare the view \(view.name)")
                }
                driverByView[view.name] = drivers.count
            }
            drivers.append(driver)
        }
    }

    /// Appends an event as a client would (no expectation on its stream). ``run()`` feeds it to the modules.
    /// - Parameters:
    ///   - type: The event type.
    ///   - stream: The stream.
    ///   - data: The body.
    ///   - metadata: The metadata.
    /// - Returns: The stored event.
    @discardableResult
    public mutating func append(_ type: String, to stream: StreamName, data: JSONValue, metadata: JSONObject = [:])
        -> RecordedEvent
    {
        log.append(type, to: stream, data: data, metadata: metadata)
    }

    /// Runs a command handler, as `SUBMIT <command> <json>` does, against the simulator's log. ``run()`` then
    /// feeds what it appended to the modules.
    /// - Parameters:
    ///   - command: The command's name.
    ///   - body: The JSON body.
    /// - Returns: The handler's outcome.
    /// - Throws: ``SimulatorError/unknownCommand(_:)``, or what the handler threw.
    @discardableResult
    public mutating func submit(_ command: String, _ body: JSONValue) async throws -> CommandOutcome {
        guard let handler = handlers[command] else { throw SimulatorError.unknownCommand(command) }
        let context = InMemoryCommandContext(log: log)
        defer { log = context.log }
        return try await handler.handle(body, context: context)
    }

    /// Feeds every module the events it has not seen, appending what reactors emit, until every module has seen
    /// the whole log.
    /// - Returns: The events the reactors appended during this run, in log order.
    /// - Throws: The first ``ModuleFailure`` when ``strict``; ``SimulatorError/notQuiescent(appended:)`` when
    ///   the reactors do not settle.
    @discardableResult
    public mutating func run() throws -> [RecordedEvent] {
        var appended: [RecordedEvent] = []
        while true {
            let active = drivers.indices.filter { drivers[$0].stoppedBefore == nil }
            guard let next = active.map({ drivers[$0].checkpoint + 1 }).min(), let event = log.event(at: next) else {
                return appended
            }
            for index in active where drivers[index].checkpoint + 1 == next {
                guard drivers[index].feeds(event) else {
                    drivers[index].checkpoint = next
                    continue
                }
                let step: ModuleDriver.Step
                do {
                    step = try drivers[index].step(event)
                } catch {
                    try record(drivers[index].fail(event, error: error))
                    continue
                }
                do {
                    appended += try log.appendReactions(step, module: drivers[index].name)
                } catch {
                    try record(drivers[index].fail(event, error: error, forceParking: true))
                    continue
                }
                do {
                    try drivers[index].commit(step)
                } catch {
                    try record(drivers[index].fail(event, error: error))
                }
                guard appended.count <= maximumAppendsPerRun else {
                    throw SimulatorError.notQuiescent(appended: appended.count)
                }
            }
        }
    }

    private mutating func record(_ failure: ModuleFailure) throws {
        failures.append(failure)
        if strict { throw failure }
    }

    /// The events of one stream, oldest first.
    /// - Parameter stream: The stream.
    /// - Returns: Its events.
    public func events(in stream: StreamName) -> [RecordedEvent] {
        log.events(in: stream)
    }

    /// The position of the last event a module was offered (fed or skipped).
    /// - Parameter module: The module's name.
    /// - Returns: The position, or `nil` for an unknown module or a command handler.
    public func checkpoint(of module: String) -> LogPosition? {
        drivers.first { $0.name == module }?.checkpoint
    }

    /// A document of any module's view.
    /// - Parameters:
    ///   - view: The view's name.
    ///   - key: The document's key.
    /// - Returns: The document, or `nil` when there is none.
    public func document(_ view: String, key: String) -> JSONValue? {
        driverByView[view].flatMap { drivers[$0].document(view, key: key) }
    }

    /// All the documents of any module's view.
    /// - Parameter view: The view's name.
    /// - Returns: The documents by key (empty for an unknown view).
    public func documents(_ view: String) -> [String: JSONValue] {
        driverByView[view].map { drivers[$0].documents(view) } ?? [:]
    }

    /// The keys of the documents whose indexed `field` equals `value`, as `QUERY <view> WHERE` finds them.
    /// - Parameters:
    ///   - view: The view's name.
    ///   - field: An indexed field of the view.
    ///   - value: The value (a string, number or Boolean; compared by its text).
    /// - Returns: The matching keys, sorted.
    /// - Throws: ``HarnessError`` when no module has the view or the field is not indexed.
    public func query(_ view: String, where field: String, equals value: JSONValue) throws(HarnessError) -> [String] {
        guard let index = driverByView[view] else { throw .unknownView(view) }
        return try drivers[index].query(view, where: field, equals: value)
    }
}
