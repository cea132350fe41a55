import Logging
import LoglineCore
import LoglineLog
import LoglineModuleAPI
import Metrics
import ServiceLifecycle

/// Runs registered modules over an ``LoglineLog/EventLog`` and answers queries on their views.
///
/// Projectors and reactors each run in their own loop (a ``ModuleRunner``), fed from their checkpoints; command
/// handlers run when a command is submitted. Views, checkpoints and parked events live in the log's state
/// tables, so each module's effects and its checkpoint commit together.
///
/// A `Service`: its `run()` starts the modules and, on graceful shutdown, lets each finish the batch in hand.
public final class ProjectionHost: Service, Sendable {
    /// Tuning.
    public struct Configuration: Sendable {
        /// The most events a module takes into one transaction while it keeps up with the log.
        public var batchSize: Int = 1000
        /// The most events a rebuild takes into one transaction, and a projector at least this far behind the log
        /// (catching up after a start). Larger than ``batchSize``: such a projector replays much of the log, and
        /// the fewer batches an order's events are spread over, the fewer times its document is written. Not
        /// larger: a rebuild, or a projector catching up, holds a batch and the two committing beside it in memory,
        /// and at 16,000 the server's peak RSS over a rebuild of 1,000,000 order events was 146-153 MB against
        /// 116-124 MB at 8,000, for 10-15% more speed.
        public var rebuildBatchSize: Int = 8000
        /// How long a query with `AT` waits for its view before `-TIMEOUT`.
        public var readYourWritesTimeout: Duration = .seconds(5)
        /// The wait before the second retry of an event whose module failed differently on its first two attempts;
        /// it doubles with each wait after that. The first retry runs at once, and so does a retry after an attempt
        /// that failed the same way as the one before it: modules are deterministic, so such a failure is the
        /// event's own, and waiting would only hold the module back.
        public var retryBackoff: Duration = .milliseconds(20)

        /// The defaults.
        public init() {}
    }

    private struct ViewEntry: Sendable {
        let definition: ViewDefinition
        let runner: ModuleRunner
        let handle: ModuleHandle
    }

    private let log: any EventLog
    private let configuration: Configuration
    private let logger: Logger
    private let runners: [ModuleRunner]
    private let commandHandlers: [String: any CommandHandler]
    private let commandHandlerNames: [String]
    private let viewsByName: [String: ViewEntry]
    private let runnersByName: [String: ModuleRunner]

    /// Creates a host for `modules`.
    /// - Parameters:
    ///   - log: The log the modules read and write.
    ///   - modules: Projectors, reactors and command handlers.
    ///   - configuration: Tuning.
    ///   - logger: Where notable things are logged.
    ///   - metricsFactory: Where each module's metrics go (checkpoint, lag, events processed, batch time, parked
    ///     events), with the module's name as the dimension `module`; the process's `MetricsSystem` by default.
    /// - Throws: ``HostError/badRequest(_:)`` when two modules share a name, a view or a command, a name is
    ///   invalid, or a batch size is less than 1; ``HostError/internal(_:)`` when a module's stored state cannot be
    ///   read.
    public init(
        log: any EventLog, modules: [any LoglineModule], configuration: Configuration = Configuration(),
        logger: Logger, metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) throws(HostError) {
        // A batch of no events would read nothing and never reach the head: a projector would spin on it.
        guard configuration.batchSize >= 1, configuration.rebuildBatchSize >= 1 else {
            throw .badRequest("batchSize and rebuildBatchSize must be at least 1")
        }
        self.log = log
        self.configuration = configuration
        self.logger = logger
        var runners: [ModuleRunner] = []
        var handlers: [String: any CommandHandler] = [:]
        var handlerNames: [String] = []
        var views: [String: ViewEntry] = [:]
        var names = Set<String>()
        for module in modules {
            guard Name.isValid(module.name) else { throw .badRequest("invalid module name '\(module.name)'") }
            guard names.insert(module.name).inserted else { throw .badRequest("two modules are named \(module.name)") }
            let kind: ModuleRunner.Module
            if let projector = module as? any Projector {
                kind = .projector(projector)
            } else if let reactor = module as? any Reactor {
                kind = .reactor(reactor)
            } else if let handler = module as? any CommandHandler {
                guard handlers[handler.commandName] == nil else {
                    throw .badRequest("two command handlers take \(handler.commandName)")
                }
                handlers[handler.commandName] = handler
                handlerNames.append(handler.name)
                continue
            } else {
                throw .badRequest("\(module.name) is neither a projector, a reactor nor a command handler")
            }
            let runner: ModuleRunner
            do {
                runner = try ModuleRunner(
                    module: kind, log: log, batchSize: configuration.batchSize,
                    rebuildBatchSize: configuration.rebuildBatchSize, retryBackoff: configuration.retryBackoff,
                    logger: logger, metricsFactory: metricsFactory)
            } catch {
                throw .internal("cannot read the state of \(module.name): \(error)")
            }
            for view in runner.views {
                guard Name.isValid(view.name), view.name.utf8.count <= 64 else {
                    throw .badRequest("invalid view name '\(view.name)' in \(module.name)")
                }
                guard views[view.name] == nil else { throw .badRequest("two modules declare the view \(view.name)") }
                views[view.name] = ViewEntry(definition: view, runner: runner, handle: runner.handle)
            }
            runners.append(runner)
        }
        self.runners = runners
        self.commandHandlers = handlers
        self.commandHandlerNames = handlerNames
        self.viewsByName = views
        self.runnersByName = Dictionary(uniqueKeysWithValues: runners.map { ($0.name, $0) })
        let signals = runners.map(\.signal)
        log.onCommit { _ in for signal in signals { signal.notify() } }
    }

    /// The names of every module: projectors, reactors and command handlers.
    public var moduleNames: Set<String> { Set(runnersByName.keys).union(commandHandlerNames) }

    /// Runs the modules until graceful shutdown or cancellation.
    public func run() async throws {
        logger.info(
            "projection host starting",
            metadata: [
                "projectors_and_reactors": "\(runners.map(\.name).joined(separator: ","))",
                "command_handlers": "\(commandHandlerNames.joined(separator: ","))",
                "head": "\(log.headPosition)",
            ])
        await withTaskGroup(of: Void.self) { group in
            for runner in runners {
                group.addTask { await runner.run() }
            }
            group.addTask {
                // Keeps the group alive until shutdown, then stops the runners between batches.
                try? await gracefulShutdown()
            }
            await group.next()
            group.cancelAll()
        }
        logger.info("projection host stopped")
    }

    // MARK: - Queries

    private func view(_ name: String) throws(HostError) -> ViewEntry {
        guard let entry = viewsByName[name] else {
            throw .notFound("no view named '\(name)'; VIEWS lists them")
        }
        return entry
    }

    /// Waits until the module owning `view` has processed `position` (read your own writes).
    /// - Parameters:
    ///   - view: The view.
    ///   - position: The log position the view must reflect.
    /// - Throws: ``HostError/notFound(_:)`` or ``HostError/timeout(_:)``.
    public func waitForView(_ view: String, at position: LogPosition) async throws(HostError) {
        let entry = try self.view(view)
        guard await entry.handle.wait(for: position, timeout: configuration.readYourWritesTimeout) else {
            throw .timeout(
                "view \(view) has not reached position \(position) within \(configuration.readYourWritesTimeout) "
                    + "(it is at \(entry.handle.checkpoint))")
        }
    }

    /// The document of `key` in `view`, as JSON bytes.
    /// - Parameters:
    ///   - view: The view.
    ///   - key: The document's key.
    /// - Returns: The document, or `nil`.
    /// - Throws: ``HostError``.
    public func document(view: String, key: String) throws(HostError) -> [UInt8]? {
        let entry = try self.view(view)
        do {
            return try log.readState(
                table: ViewStorage.documentTable(view, generation: entry.handle.generation), key: ViewStorage.bytes(key)
            )
        } catch {
            throw .internal("read failed: \(error)")
        }
    }

    /// Documents of `view` in key order, optionally those whose indexed `field` equals `value`.
    /// - Parameters:
    ///   - view: The view.
    ///   - filter: A declared index and the value to match.
    ///   - limit: The most documents.
    ///   - after: Start after this key.
    /// - Returns: The documents' JSON bytes.
    /// - Throws: ``HostError``.
    public func query(
        view: String, where filter: (field: String, value: String)?, limit: Int, after: String?
    ) throws(HostError) -> [[UInt8]] {
        let entry = try self.view(view)
        let generation = entry.handle.generation
        do {
            guard let filter else {
                return try log.scanState(
                    table: ViewStorage.documentTable(view, generation: generation), prefix: [],
                    after: after.map(ViewStorage.bytes), limit: limit
                ).map(\.value)
            }
            guard entry.definition.indexes.contains(filter.field) else {
                throw HostError.badRequest(
                    "\(view) has no index on \(filter.field); indexes: \(entry.definition.indexes.joined(separator: ", "))"
                )
            }
            let prefix = ViewStorage.indexPrefix(field: filter.field, value: filter.value)
            let entries = try log.scanState(
                table: ViewStorage.indexTable(view, generation: generation), prefix: prefix,
                after: after.map { prefix + ViewStorage.bytes($0) }, limit: limit)
            let keys = entries.map { Array($0.key.dropFirst(prefix.count)) }
            return try log.readState(table: ViewStorage.documentTable(view, generation: generation), keys: keys)
                .compactMap { $0 }
        } catch let error as HostError {
            throw error
        } catch {
            throw .internal("query failed: \(error)")
        }
    }

    /// The views, for `VIEWS`.
    /// - Returns: One status per view, by name.
    public func viewStatuses() -> [ViewStatus] {
        viewsByName.values.sorted { $0.definition.name < $1.definition.name }.map { entry in
            let count =
                (try? log.readState(
                    table: ViewStorage.countTable,
                    key: ViewStorage.countKey(entry.definition.name, generation: entry.handle.generation)
                ).map { ViewStorage.readBigEndian($0) }) ?? nil
            return ViewStatus(
                name: entry.definition.name, module: entry.runner.name, indexes: entry.definition.indexes,
                documentCount: count ?? 0)
        }
    }

    /// The modules, for `PROJECTIONS`.
    /// - Returns: One status per module, projectors and reactors by registration order, then command handlers.
    public func moduleStatuses() async -> [ModuleStatus] {
        let head = log.headPosition
        var result: [ModuleStatus] = []
        for runner in runners { result.append(await runner.status(head: head)) }
        for name in commandHandlerNames {
            result.append(
                ModuleStatus(
                    name: name, kind: .commandHandler, checkpoint: 0, lag: 0, state: .running, eventsProcessed: 0,
                    parkedCount: 0, lastError: nil, rebuildPosition: nil))
        }
        return result
    }

    // MARK: - Operations

    private func runner(_ module: String) throws(HostError) -> ModuleRunner {
        guard let runner = runnersByName[module] else {
            if commandHandlerNames.contains(module) {
                throw .badRequest("\(module) is a command handler; it has no checkpoint")
            }
            throw .notFound("no module named '\(module)'; PROJECTIONS lists them")
        }
        return runner
    }

    /// `REBUILD <module>`: replays a projector into a shadow copy, then swaps it in.
    /// - Parameter module: The projector's name.
    /// - Returns: A message.
    /// - Throws: ``HostError``.
    public func rebuild(module: String) async throws(HostError) -> String {
        try await runner(module).requestRebuild().get()
    }

    /// `RETRY <module> <position>`: processes a parked event again, or resumes a faulted module.
    /// - Parameters:
    ///   - module: The module.
    ///   - position: The event's position.
    /// - Returns: A message.
    /// - Throws: ``HostError``.
    public func retry(module: String, position: LogPosition) async throws(HostError) -> String {
        try await runner(module).requestRetry(position).get()
    }

    /// `SKIP <module> <position>`: drops a parked event, or steps a faulted module over its failing event.
    /// - Parameters:
    ///   - module: The module.
    ///   - position: The event's position.
    /// - Returns: A message.
    /// - Throws: ``HostError``.
    public func skip(module: String, position: LogPosition) async throws(HostError) -> String {
        try await runner(module).requestSkip(position).get()
    }

    /// `PARKED <module>`: the parked events of a module, oldest first.
    /// - Parameter module: The module.
    /// - Returns: One JSON record per parked event.
    /// - Throws: ``HostError``.
    public func parked(module: String) throws(HostError) -> [[UInt8]] {
        _ = try runner(module)
        do {
            return try log.scanState(table: ViewStorage.parkedTable(module), prefix: [], after: nil, limit: 10_000)
                .map(\.value)
        } catch {
            throw .internal("read failed: \(error)")
        }
    }

    // MARK: - Commands

    /// `SUBMIT <command> <json>`: runs a command handler.
    /// - Parameters:
    ///   - command: The command's name.
    ///   - body: The JSON body's bytes.
    /// - Returns: The handler's result object, with `position` (of the last event appended) and `events`.
    /// - Throws: ``HostError``.
    public func submit(command: String, body: [UInt8]) async throws(HostError) -> [UInt8] {
        guard let handler = commandHandlers[command] else {
            throw .notFound(
                "no command named '\(command)'; commands: \(commandHandlers.keys.sorted().joined(separator: ", "))")
        }
        let json: JSONValue
        do {
            json = try JSONValue(parsing: body)
        } catch {
            throw .badJSON("body: \(error)")
        }
        let outcome: CommandOutcome
        do {
            outcome = try await handler.handle(json, context: LogCommandContext(log: log))
        } catch let error as CommandError {
            switch error {
            case .rejected(let reason): throw .rejected(reason)
            case .badJSON(let reason): throw .badJSON(reason)
            case .conflict(let reason): throw .conflict(reason)
            }
        } catch let error as HostError {
            throw error
        } catch {
            logger.error("command failed", metadata: ["command": "\(command)", "error": "\(error)"])
            throw .internal("\(command) failed: \(error)")
        }
        var result = outcome.result
        if let last = outcome.appended.last { result["position"] = .number(JSONNumber(Int64(last.position))) }
        result["events"] = .array(
            outcome.appended.map {
                .object([
                    "event_id": .string($0.eventID.description), "position": .number(JSONNumber(Int64($0.position))),
                    "version": .number(JSONNumber(Int64($0.version))),
                ])
            })
        return JSONValue.object(result).jsonBytes
    }
}

/// A command handler's access to the log.
struct LogCommandContext: CommandContext {
    let log: any EventLog

    func read(_ stream: StreamName) async throws -> [ModuleEvent] {
        var events: [ModuleEvent] = []
        var from: StreamVersion = 1
        while true {
            let page = try log.readStream(stream, from: from, limit: 10_000)
            events += try page.map { try ModuleEvent($0) }
            guard page.count == 10_000, let last = page.last else { return events }
            from = last.version + 1
        }
    }

    func append(
        _ events: [NewEvent], to stream: StreamName, expectedVersion: ExpectedVersion
    ) async throws -> [AppendedEvent] {
        let request = AppendRequest(
            stream: stream, expectedVersion: expectedVersion,
            events: events.map {
                ProposedEvent(
                    eventID: nil, eventType: $0.eventType, data: $0.data.jsonBytes,
                    metadata: JSONValue.object($0.metadata).jsonBytes)
            })
        do {
            return try await log.append(request).events
        } catch {
            if case .wrongExpectedVersion = error { throw CommandError.conflict(error.description) }
            if case .diskFull = error { throw HostError.diskFull("\(error)") }
            throw HostError.internal("append failed: \(error)")
        }
    }
}
