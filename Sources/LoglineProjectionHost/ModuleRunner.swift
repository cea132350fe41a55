import Dispatch
import Logging
import LoglineCore
import LoglineLog
import LoglineModuleAPI
import Metrics
import Synchronization

/// Runs one projector or reactor: catch up from its checkpoint in batches, then follow new commits.
///
/// Each batch commits as one ``LoglineLog/CommitUnit``: the view changes (and, for a reactor, its new events),
/// the parked events and the new checkpoint, guarded by a condition on the checkpoint the batch started from.
/// So an event takes effect exactly once, whatever the moment of a crash.
///
/// Everything that changes the module's state (batches, rebuilds, RETRY, SKIP) runs in this actor's one loop,
/// one step at a time, so no two of them ever interleave.
actor ModuleRunner {
    enum Module {
        case projector(any Projector)
        case reactor(any Reactor)
    }

    /// An operation requested from outside, carried out by the loop between batches.
    private enum Operation {
        case rebuild
        case retry(LogPosition)
        case skip(LogPosition)
    }

    private struct RebuildProgress {
        var generation: UInt64
        var checkpoint: ViewStorage.Checkpoint

        var bytes: [UInt8] { checkpoint.bytes + ViewStorage.bigEndian(generation) }

        init(generation: UInt64, checkpoint: ViewStorage.Checkpoint) {
            self.generation = generation
            self.checkpoint = checkpoint
        }

        init?(bytes: [UInt8]?) {
            guard let bytes, bytes.count >= 24 else { return nil }
            checkpoint = ViewStorage.Checkpoint(bytes: Array(bytes[0..<16]))
            generation = ViewStorage.readBigEndian(bytes, at: 16)
        }
    }

    /// What processing a run of events produced.
    private struct Outcome {
        /// The writes for the views' changes, not yet encoded.
        var viewWrites = ViewWritePlan()
        /// The other writes: parked events, then whatever the caller adds (the checkpoint).
        var writes: [StateWrite] = []
        var appends: [AppendRequest] = []
        /// For each append, the position of the event that caused it.
        var appendSources: [LogPosition] = []
        var parked: [(event: RecordedEvent, error: String, attempts: Int)] = []
        var processed: UInt64 = 0
        /// The position of the event the module stopped before, when its policy is to stop.
        var stoppedBefore: LogPosition?
        var failures: [String] = []
        /// The host is stopping: the work was cut short and must not be committed.
        var interrupted = false
        /// The views could not be read, by the module or to work out the writes: nothing of the run may be committed
        /// (its checkpoint would pass events whose effects were never written, or that were parked for nothing).
        var storageFailure: String?
        /// The views as they will be stored once this batch commits: what the next batch starts from while the
        /// commit is still in flight.
        var views = PendingViews()

        /// Every write of the batch, in order: the views', then the others.
        func allWrites() -> [StateWrite] {
            viewWrites.encoded(followedBy: writes)
        }
    }

    /// The documents and counts a batch wrote, by view, for the batch after it to read while the commit is in
    /// flight: the store does not have them yet, and nothing else writes the module's views.
    struct PendingViews {
        /// The documents by view and key: a document, or `nil` for a deletion.
        var documents: [String: [String: JSONValue?]] = [:]
        /// The document counts by view, for the views whose count was written by this batch or a batch in flight
        /// before it.
        var counts: [String: Int64] = [:]
    }

    let name: String
    let module: Module
    let views: [ViewDefinition]
    let handle: ModuleHandle
    let signal = WakeSignal()
    /// The module's gauges, counters and timer; the host also records the lag after each group commit.
    let metrics: ModuleMetrics
    private let handledEventTypes: Set<String>
    /// How far the checkpoint may run ahead of the stored one over events the module does not handle.
    static let unstoredCheckpointLimit: UInt64 = 10_000
    /// The least time between two live commits of a projector that is keeping up (less than a batch behind).
    ///
    /// A projector woken by every group commit would take a group commit of its own for each: at 1,000 orders/s
    /// the orders projector alone asked for 1,250 commits a second, and the writer, busy 89 % of the time, made
    /// every step of every saga queue behind them. Waiting this long gathers those events into one commit; the
    /// views lag by as much more. Reactors never wait: sagas and services run through them.
    static let projectorCommitInterval = Duration.milliseconds(2)
    /// When the last live batch of this module committed.
    private var lastLiveCommit: ContinuousClock.Instant?
    private let policy: FailurePolicy
    private let log: any EventLog
    private let logger: Logger
    private let batchSize: Int
    private let rebuildBatchSize: Int
    /// The first wait between attempts that failed differently (``ProjectionHost/Configuration/retryBackoff``).
    private let retryBackoff: Duration

    private var checkpoint = ViewStorage.Checkpoint(position: 0, processed: 0)
    private var checkpointBytes: [UInt8]?
    private var state: ModuleState = .running {
        didSet { metrics.faulted.record(state == .faulted ? 1 : 0) }
    }
    private var lastError: String?
    private var parkedCount = 0 {
        didSet { metrics.parked.record(parkedCount) }
    }
    private var rebuild: RebuildProgress?
    private var cleanups: [UInt64] = []
    /// Events whose reaction could not be appended (for example an id clash): parked on the next try.
    private var poisoned: [LogPosition: String] = [:]
    private var operations: [(Operation, CheckedContinuation<Result<String, HostError>, Never>)] = []
    /// Whether the loop has ended: operations asked after that are answered `UNAVAILABLE` at once.
    private var finished = false

    /// What the module left in the state tables: read when the runner is made, so that queries answer from the
    /// right generation and checkpoint before the loop has started.
    private struct StoredState {
        var checkpointBytes: [UInt8]?
        var generation: UInt64
        var rebuild: RebuildProgress?
        var cleanups: [UInt64]
        var parkedCount: Int

        init(name: String, log: any EventLog) throws {
            checkpointBytes = try log.readState(table: ViewStorage.checkpointTable, key: ViewStorage.bytes(name))
            generation =
                try log.readState(table: ViewStorage.generationTable, key: ViewStorage.bytes(name)).map {
                    ViewStorage.readBigEndian($0)
                } ?? 1
            rebuild = RebuildProgress(
                bytes: try log.readState(table: ViewStorage.rebuildTable, key: ViewStorage.bytes(name)))
            cleanups = try log.scanState(
                table: ViewStorage.cleanupTable, prefix: ViewStorage.bytes(name + "/"), after: nil, limit: 1000
            ).map { ViewStorage.readBigEndian($0.value) }
            parkedCount = try ModuleRunner.parkedEntries(in: ViewStorage.parkedTable(name), log: log).count
        }
    }

    init(
        module: Module, log: any EventLog, batchSize: Int, rebuildBatchSize: Int, retryBackoff: Duration,
        logger: Logger, metricsFactory: any MetricsFactory
    ) throws {
        self.module = module
        switch module {
        case .projector(let projector):
            name = projector.name
            views = projector.views
            handledEventTypes = projector.handledEventTypes
            policy = projector.failurePolicy
        case .reactor(let reactor):
            name = reactor.name
            views = reactor.views
            handledEventTypes = reactor.handledEventTypes
            policy = reactor.failurePolicy
        }
        self.handle = ModuleHandle(name: name)
        self.log = log
        self.batchSize = batchSize
        self.rebuildBatchSize = rebuildBatchSize
        self.retryBackoff = retryBackoff
        var logger = logger
        logger[metadataKey: "module"] = "\(name)"
        self.logger = logger
        self.metrics = ModuleMetrics(module: name, factory: metricsFactory)
        let stored = try StoredState(name: name, log: log)
        checkpointBytes = stored.checkpointBytes
        checkpoint = ViewStorage.Checkpoint(bytes: stored.checkpointBytes)
        rebuild = stored.rebuild
        cleanups = stored.cleanups
        parkedCount = stored.parkedCount
        handle.setGeneration(stored.generation)
        handle.advance(to: checkpoint.position)
        // Property observers do not run in an initialiser: record the starting values here.
        metrics.parked.record(stored.parkedCount)
        metrics.faulted.record(0)
        metrics.record(checkpoint: checkpoint.position, head: log.headPosition)
    }

    /// Publishes the checkpoint: to the metrics, then to the queries waiting for it (so that a query with `AT` that
    /// has returned always finds the metrics up to date).
    private func publishCheckpoint() {
        metrics.record(checkpoint: checkpoint.position, head: log.headPosition)
        handle.advance(to: checkpoint.position)
    }

    var kind: ModuleKind {
        switch module {
        case .projector: return .projector
        case .reactor: return .reactor
        }
    }

    // MARK: - Status

    /// The module's status for `PROJECTIONS`.
    func status(head: LogPosition) -> ModuleStatus {
        ModuleStatus(
            name: name, kind: kind, checkpoint: checkpoint.position,
            lag: head > checkpoint.position ? head - checkpoint.position : 0,
            state: rebuild != nil && state == .running ? .rebuilding : state, eventsProcessed: checkpoint.processed,
            parkedCount: parkedCount, lastError: lastError, rebuildPosition: rebuild?.checkpoint.position)
    }

    // MARK: - Operations

    /// Asks the loop to carry out an operation and waits for its answer.
    private func request(_ operation: Operation) async -> Result<String, HostError> {
        guard !finished else { return .failure(.unavailable("\(name) has stopped")) }
        return await withCheckedContinuation { continuation in
            operations.append((operation, continuation))
            signal.notify()
        }
    }

    /// `REBUILD`: replays the projector from the start into a shadow copy, then swaps.
    func requestRebuild() async -> Result<String, HostError> { await request(.rebuild) }
    /// `RETRY`: runs a parked event again (or resumes a faulted module at its failing event).
    func requestRetry(_ position: LogPosition) async -> Result<String, HostError> { await request(.retry(position)) }
    /// `SKIP`: drops a parked event (or steps a faulted module over its failing event).
    func requestSkip(_ position: LogPosition) async -> Result<String, HostError> { await request(.skip(position)) }

    // MARK: - The loop

    /// Runs until cancelled.
    func run() async {
        while !Task.isCancelled {
            // The loop runs after every group commit (and after its own work): the lag is recorded here, by the
            // module's one loop, so that no older figure can overwrite a newer one. A faulted module's lag grows too.
            metrics.record(checkpoint: checkpoint.position, head: log.headPosition)
            var worked = false
            if !operations.isEmpty {
                await runOperations()
                worked = true
            }
            if state == .running, case .projector = module,
                eventsBehind(checkpoint.position) >= UInt64(rebuildBatchSize)
            {
                // Far behind (catching up after a start, say): batches commit while the next ones are processed.
                _ = await runBurst(.catchUp)
                worked = true
            } else if state == .running, log.headPosition > checkpoint.position {
                if case .projector = module, let last = lastLiveCommit,
                    log.headPosition - checkpoint.position < UInt64(batchSize),
                    ContinuousClock.now < last + Self.projectorCommitInterval
                {
                    try? await Task.sleep(until: last + Self.projectorCommitInterval, clock: .continuous)
                }
                worked = await liveBatch() || worked
            }
            if rebuild != nil {
                worked = await rebuildBatch() || worked
            } else if !cleanups.isEmpty {
                worked = await cleanupBatch() || worked
            }
            if !worked { await signal.wait() }
        }
        finished = true
        for (_, continuation) in operations { continuation.resume(returning: .failure(.unavailable("stopping"))) }
        operations.removeAll()
        state = .stopped
    }

    /// How far the log's head is past `position`; 0 when it is not. A batch can reach past the head the log has
    /// published: its commit is visible to readers a moment before the head moves.
    private func eventsBehind(_ position: LogPosition) -> UInt64 {
        let head = log.headPosition
        return head > position ? head - position : 0
    }

    /// Reads the module's state again from the tables (after its checkpoint moved unexpectedly).
    private func reload() throws {
        let stored = try StoredState(name: name, log: log)
        checkpointBytes = stored.checkpointBytes
        checkpoint = ViewStorage.Checkpoint(bytes: stored.checkpointBytes)
        rebuild = stored.rebuild
        cleanups = stored.cleanups
        parkedCount = stored.parkedCount
        handle.setGeneration(stored.generation)
        publishCheckpoint()
    }

    /// Every entry of a parked table, in position order.
    static func parkedEntries(in table: String, log: any EventLog) throws -> [(key: [UInt8], value: [UInt8])] {
        var entries: [(key: [UInt8], value: [UInt8])] = []
        while true {
            let page = try log.scanState(table: table, prefix: [], after: entries.last?.key, limit: 1000)
            entries += page
            guard page.count == 1000 else { return entries }
        }
    }

    // MARK: - Live batches

    private func liveBatch() async -> Bool {
        let started = ContinuousClock.now
        let batch: EventBatch
        do {
            batch = try log.readBatch(after: checkpoint.position, limit: batchSize, eventTypes: handledEventTypes)
        } catch {
            await storageTrouble("read failed: \(error)")
            return true
        }
        guard batch.scannedThrough > checkpoint.position else { return false }
        if batch.events.isEmpty && state == .running {
            // Only events of other types: nothing to apply, so nothing to commit yet. The checkpoint moves on in
            // memory, and is stored with the module's next effects, or once it is far ahead of the stored one. A
            // restart before then reads those events again and finds nothing to apply in them again. Committing
            // here would cost a group commit for every commit of the other modules.
            let stored = ViewStorage.Checkpoint(bytes: checkpointBytes).position
            if batch.scannedThrough - stored < Self.unstoredCheckpointLimit {
                checkpoint = ViewStorage.Checkpoint(position: batch.scannedThrough, processed: checkpoint.processed)
                publishCheckpoint()
                return true
            }
        }
        let generation = handle.generation
        var outcome = await process(batch.events, generation: generation, mayEmit: true)
        if outcome.interrupted { return true }
        if let failure = outcome.storageFailure {
            await storageTrouble(failure)
            return true
        }
        let newCheckpoint = ViewStorage.Checkpoint(
            position: outcome.stoppedBefore.map { $0 - 1 } ?? batch.scannedThrough,
            processed: checkpoint.processed + outcome.processed)
        outcome.writes.append(
            StateWrite(table: ViewStorage.checkpointTable, key: ViewStorage.bytes(name), value: newCheckpoint.bytes))
        let unit = CommitUnit(
            appends: outcome.appends, writes: outcome.allWrites(),
            conditions: [
                StateCondition(
                    table: ViewStorage.checkpointTable, key: ViewStorage.bytes(name), expected: checkpointBytes)
            ])
        switch await commit(unit, sources: outcome.appendSources) {
        case .committed:
            poisoned.removeAll()
            recordLiveCommit(
                checkpoint: newCheckpoint, processed: outcome.processed, parked: outcome.parked,
                failure: outcome.failures.last, stoppedBefore: outcome.stoppedBefore, started: started)
        case .retry:
            break
        }
        return true
    }

    /// Records a committed batch of the live views: the checkpoint it stored, what it parked, its last error, and
    /// the fault when it stopped before a failing event; then publishes the checkpoint.
    private func recordLiveCommit(
        checkpoint newCheckpoint: ViewStorage.Checkpoint, processed: UInt64,
        parked: [(event: RecordedEvent, error: String, attempts: Int)], failure: String?,
        stoppedBefore: LogPosition?, started: ContinuousClock.Instant
    ) {
        lastLiveCommit = started
        checkpoint = newCheckpoint
        checkpointBytes = newCheckpoint.bytes
        if !parked.isEmpty { parkedCount += parked.count }
        if let failure { lastError = failure }
        if let position = stoppedBefore {
            state = .faulted
            logger.error(
                "module stopped before a failing event; RETRY or SKIP it",
                metadata: ["position": "\(position)", "error": "\(failure ?? "")"])
        }
        metrics.processed.increment(by: processed)
        metrics.batchDuration.record(duration: ContinuousClock.now - started)
        publishCheckpoint()
        logParked(parked)
    }

    /// One warning line for the events a batch parked: how many, and the first of them with its error.
    private func logParked(_ parked: [(event: RecordedEvent, error: String, attempts: Int)]) {
        guard let first = parked.first else { return }
        logger.warning(
            "events parked; PARKED lists them",
            metadata: [
                "count": "\(parked.count)", "first_position": "\(first.event.position)",
                "first_event_type": "\(first.event.eventType)", "first_error": "\(first.error)",
                "parked_now": "\(parkedCount)",
            ])
    }

    private enum CommitOutcome {
        case committed
        case retry
    }

    /// Commits a unit; on failure, decides what to do about it and says whether to try the work again.
    private func commit(_ unit: CommitUnit, sources: [LogPosition]) async -> CommitOutcome {
        await settle(await PendingCommit(unit, log: log).result, sources: sources)
    }

    /// Acts on a commit's result: on failure, decides what to do about it and says whether to try the work again.
    private func settle(
        _ result: Result<[AppendResult], CommitError>, sources: [LogPosition]
    ) async -> CommitOutcome {
        do {
            _ = try result.get()
            return .committed
        } catch {
            switch error {
            case .append(let index, let appendError):
                // A reaction could not be appended: park its source event on the next try.
                let source = sources[index]
                poisoned[source] = "its reaction could not be appended: \(appendError)"
                logger.warning(
                    "reaction could not be appended", metadata: ["position": "\(source)", "error": "\(appendError)"])
            case .conditionFailed:
                // The checkpoint moved under us (it should not): reload the state and go on from there.
                logger.warning("checkpoint changed unexpectedly; reloading")
                try? reload()
            case .closed:
                state = .stopped
            case .storage(let message), .diskFull(let message):
                await storageTrouble(message)
            }
            return .retry
        }
    }

    private func storageTrouble(_ message: String) async {
        lastError = message
        logger.error("storage failure; retrying in one second", metadata: ["error": "\(message)"])
        try? await Task.sleep(for: .seconds(1))
    }

    // MARK: - Processing

    /// Runs events through the module and turns what it did into state writes and appends.
    /// - Parameters:
    ///   - events: The events.
    ///   - generation: The generation of the views to read and write.
    ///   - mayEmit: Whether a reactor's events are appended (not in a rebuild).
    ///   - pending: What the batches whose commits are still in flight wrote, oldest first: read instead of the
    ///     store.
    ///   - parkedTable: Where parked events go: the module's parked table unless given.
    private func process(
        _ events: [RecordedEvent], generation: UInt64, mayEmit: Bool, after pending: [PendingViews] = [],
        parkingIn parkedTable: String? = nil
    ) async -> Outcome {
        var outcome = Outcome()
        let stored = StoredDocuments(views: views, pending: pending.map(\.documents))
        var changes = ViewChanges(views: views, reader: documentReader(generation: generation, remembering: stored))
        eventLoop: for event in events {
            if !poisoned.isEmpty, let reason = poisoned[event.position] {
                outcome.parked.append((event, reason, 1))
                outcome.failures.append(reason)
                outcome.processed += 1
                continue
            }
            var attempt = 0
            // The error of the attempt before, to tell a failure that repeats from one that changes.
            var previousFailure: String?
            // Retries that waited so far.
            var waits = 0
            while true {
                attempt += 1
                do {
                    let moduleEvent = try ModuleEvent(event)
                    // A savepoint, not a copy of the batch's changes: copying them for every event made a
                    // batch cost the square of its size.
                    changes.beginSavepoint()
                    switch module {
                    case .projector(let projector):
                        do {
                            try projector.apply(moduleEvent, to: &changes)
                        } catch {
                            changes.rollBack()
                            throw error
                        }
                        changes.releaseSavepoint()
                    case .reactor(let reactor):
                        var context = ReactorContext(views: changes)
                        changes.reset()  // the context holds the only copy while the reactor runs
                        do {
                            try reactor.react(to: moduleEvent, context: &context)
                        } catch {
                            changes = context.views
                            changes.rollBack()
                            throw error
                        }
                        changes = context.views
                        changes.releaseSavepoint()
                        if mayEmit {
                            for (index, emitted) in context.emitted.enumerated() {
                                outcome.appends.append(reaction(emitted, index: index, source: moduleEvent))
                                outcome.appendSources.append(event.position)
                            }
                        }
                    }
                    outcome.processed += 1
                    continue eventLoop
                } catch {
                    if let failure = error as? ViewReadFailure {
                        // The store, not the event: nothing of the run is committed, and it runs again later
                        // rather than use up the event's attempts and park it.
                        outcome.storageFailure = failure.description
                        return outcome
                    }
                    let message = "position \(event.position) (\(event.eventType)): \(error)"
                    let failure = "\(error)"
                    defer { previousFailure = failure }
                    // The first retry runs at once. A failure that repeats word for word is the event's own (modules
                    // are deterministic): its retries run at once too, so that a flood of events a module cannot
                    // use costs it no time asleep. Only a failure that changes waits, with doubling backoff.
                    if attempt < policy.attempts, previousFailure == nil || previousFailure == failure {
                        // Without a wait there is no suspension point: a module with many attempts would hold up
                        // stopping.
                        if Task.isCancelled {
                            outcome.interrupted = true
                            return outcome
                        }
                        continue
                    }
                    if attempt < policy.attempts {
                        do {
                            try await Task.sleep(for: retryBackoff * (1 << min(waits, 6)))
                            waits += 1
                        } catch {
                            // Stopping: leave the event for the next start rather than use up its attempts.
                            outcome.interrupted = true
                            return outcome
                        }
                        continue
                    }
                    outcome.failures.append(message)
                    switch policy {
                    case .park:
                        // Logged once per batch by the caller, after the commit: not one line per event.
                        outcome.parked.append((event, "\(error)", attempt))
                        outcome.processed += 1
                        continue eventLoop
                    case .stop:
                        outcome.stoppedBefore = event.position
                        break eventLoop
                    }
                }
            }
        }
        do {
            // Each batch's counts start from those of the batch before it: the newest batch's are all of them.
            outcome.views.counts = pending.last?.counts ?? [:]
            outcome.viewWrites = try viewWritePlan(
                changes, generation: generation, stored: stored, counts: &outcome.views.counts)
            outcome.views.documents = changes.changes
        } catch {
            outcome.storageFailure = ViewReadFailure(underlying: "\(error)").description
        }
        let now = Timestamp.now()
        for parked in outcome.parked {
            let record: JSONValue = .object([
                "module": .string(name), "position": .number(JSONNumber(Int64(parked.event.position))),
                "event_id": .string(parked.event.eventID.description), "event_type": .string(parked.event.eventType),
                "error": .string(parked.error), "attempts": .number(JSONNumber(parked.attempts)),
                "parked_at": .string(now.description),
            ])
            outcome.writes.append(
                StateWrite(
                    table: parkedTable ?? ViewStorage.parkedTable(name),
                    key: ViewStorage.bigEndian(parked.event.position),
                    value: record.jsonBytes))
        }
        return outcome
    }

    /// The append for one event a reactor emitted: a derived id, and causation and correlation in metadata.
    private func reaction(_ emitted: EmittedEvent, index: Int, source: ModuleEvent) -> AppendRequest {
        let metadata = JSONValue.object(ReactorContext.reactionMetadata(source: source))
        return AppendRequest(
            stream: emitted.stream, expectedVersion: emitted.expectedVersion,
            events: [
                ProposedEvent(
                    eventID: ReactorContext.reactionEventID(reactor: name, index: index, source: source.eventID),
                    eventType: emitted.eventType, data: emitted.data.jsonBytes, metadata: metadata.jsonBytes)
            ])
    }

    /// Reads stored documents for one batch, and remembers each as it was read, so that the batch's view writes
    /// need not read and parse it again.
    private func documentReader(generation: UInt64, remembering stored: StoredDocuments) -> ViewChanges.Reader {
        let log = self.log
        // ViewChanges asks only for the module's own views.
        let tables = Dictionary(
            uniqueKeysWithValues: views.map { ($0.name, ViewStorage.documentTable($0.name, generation: generation)) })
        return { view, key in
            if let known = stored.document(view, key) { return known }
            let bytes: [UInt8]?
            do {
                bytes = try log.readState(
                    table: tables[view] ?? ViewStorage.documentTable(view, generation: generation),
                    key: ViewStorage.bytes(key))
            } catch {
                throw ViewReadFailure(underlying: "\(error)")
            }
            let document = try bytes.map { try JSONValue(parsing: $0) }
            stored.remember(document, view, key)
            return document
        }
    }

    /// The state writes for view changes (documents, index entries and document counts), worked out up to their
    /// encoding: what it needs from the store is read here, so that ``ViewWritePlan/encoded(followedBy:)`` can run anywhere.
    /// - Parameter counts: The document counts known without reading the store (those the batches in flight wrote);
    ///   updated with the counts this batch writes.
    private func viewWritePlan(
        _ changes: ViewChanges, generation: UInt64, stored storedDocuments: StoredDocuments,
        counts: inout [String: Int64]
    ) throws -> ViewWritePlan {
        var plan = ViewWritePlan()
        for definition in views {
            guard let changed = changes.changes[definition.name], !changed.isEmpty else { continue }
            let documentTable = ViewStorage.documentTable(definition.name, generation: generation)
            let entries = changed.sorted { $0.key < $1.key }
            // The documents as stored: those the module read are known already; the others are read now.
            var oldDocuments: [JSONValue?] = []
            oldDocuments.reserveCapacity(entries.count)
            var unread: [Int] = []
            for (index, entry) in entries.enumerated() {
                let known = storedDocuments.document(definition.name, entry.key)
                if known == nil { unread.append(index) }
                oldDocuments.append(known ?? nil)
            }
            if !unread.isEmpty {
                let read = try log.readState(
                    table: documentTable, keys: unread.map { ViewStorage.bytes(entries[$0].key) })
                for (index, bytes) in zip(unread, read) {
                    oldDocuments[index] = try bytes.map { try JSONValue(parsing: $0) }
                }
            }
            var countDelta: Int64 = 0
            for (index, entry) in entries.enumerated() {
                countDelta += (entry.value == nil ? 0 : 1) - (oldDocuments[index] == nil ? 0 : 1)
            }
            var countWrite: StateWrite?
            if countDelta != 0 {
                let countKey = ViewStorage.countKey(definition.name, generation: generation)
                let current =
                    try counts[definition.name]
                    ?? log.readState(table: ViewStorage.countTable, key: countKey).map {
                        Int64(bitPattern: ViewStorage.readBigEndian($0))
                    } ?? 0
                let new = max(0, current + countDelta)
                counts[definition.name] = new
                countWrite = StateWrite(
                    table: ViewStorage.countTable, key: countKey, value: ViewStorage.bigEndian(UInt64(bitPattern: new)))
            }
            plan.views.append(
                ViewWritePlan.View(
                    documentTable: documentTable,
                    indexTable: ViewStorage.indexTable(definition.name, generation: generation),
                    indexes: definition.indexes,
                    documents: entries.map { ViewWritePlan.Change(key: $0.key, document: $0.value) },
                    oldDocuments: oldDocuments, countWrite: countWrite))
        }
        return plan
    }

    // MARK: - Rebuild

    /// Where this module's rebuild batches are encoded into their commits: serial, so that they reach the log in the
    /// order the runner handed them over. One per module, so that one module's rebuild does not wait on another's.
    private let rebuildEncoder = DispatchQueue(label: "logline-rebuild-encoder")

    /// The most rebuild batches whose commits are in flight at once: the runner processes the next batch while the
    /// encoder and the log's writer work through these, so that neither waits on the other's slower batches.
    private static let rebuildDepth = 2

    /// The most rebuild batches one call of ``rebuildBatch()`` runs before the loop gets its turn again.
    private static let rebuildBurst = 32

    /// What a burst of pipelined batches fills: the shadow copy of a rebuild, or the live views of a projector far
    /// behind the log (catching up after a start, say).
    private enum BurstKind {
        case rebuild
        case catchUp
    }

    /// A batch of a burst whose commit is in flight.
    private struct BurstCommit {
        let commit: PendingCommit
        /// Where the batch leaves the rebuild, or the live checkpoint, once committed.
        let next: RebuildProgress
        let stoppedBefore: LogPosition?
        let failure: String?
        /// For a batch of the live views: what the host records once it has committed.
        let processed: UInt64
        let parked: [(event: RecordedEvent, error: String, attempts: Int)]
        let started: ContinuousClock.Instant
    }

    /// Runs rebuild batches (``runBurst(_:)``) and swaps the rebuilt views in once they reach the live ones.
    /// - Returns: Whether there was work.
    private func rebuildBatch() async -> Bool {
        guard rebuild != nil else { return false }
        guard let caughtUp = await runBurst(.rebuild) else { return true }
        guard caughtUp, let progress = rebuild else { return true }
        // Caught up with the log. Swap once the live views are not ahead of the shadow copy.
        if progress.checkpoint.position >= checkpoint.position { await swap(progress) }
        return progress.checkpoint.position >= checkpoint.position
    }

    /// Runs batches, each committing while the next ones are read and processed: processing and the log's writer
    /// overlap. Up to ``rebuildDepth`` commits are in flight, and each batch's commit is conditional on the
    /// progress (a rebuild's) or checkpoint (the live views') the batch before it writes, so a batch can only
    /// commit after the one before it has; when one fails, those after it fail their condition and change nothing.
    ///
    /// The burst ends when an operation is requested, live events wait (for a rebuild), the host stops, the batches
    /// reach the head (a rebuild) or come within a batch of it (a catch-up), the module stops before a failing
    /// event, or after ``rebuildBurst`` batches; every commit is settled before it returns. A batch processed while
    /// such work came up is dropped rather than committed, so that the work waits for no more than the commits in
    /// flight.
    /// - Returns: Whether a rebuild reached the head, when every batch committed; `nil` when one did not.
    private func runBurst(_ kind: BurstKind) async -> Bool? {
        var progress: RebuildProgress
        var expected: [UInt8]?
        switch kind {
        case .rebuild:
            guard let rebuild else { return nil }
            progress = rebuild
            expected = rebuild.bytes
        case .catchUp:
            progress = RebuildProgress(generation: handle.generation, checkpoint: checkpoint)
            expected = checkpointBytes
        }
        // Oldest first, each with the views it writes: the batches after it read them instead of the store.
        var inFlight: [(commit: BurstCommit, views: PendingViews)] = []
        var reachedHead = false
        for _ in 0..<Self.rebuildBurst {
            if kind == .catchUp && eventsBehind(progress.checkpoint.position) < UInt64(rebuildBatchSize) { break }
            let started = ContinuousClock.now
            let batch: EventBatch
            do {
                batch = try log.readBatch(
                    after: progress.checkpoint.position, limit: rebuildBatchSize, eventTypes: handledEventTypes)
            } catch {
                return await stopBurst(kind, settling: inFlight.map(\.commit), storageTrouble: "read failed: \(error)")
            }
            if batch.scannedThrough <= progress.checkpoint.position {
                reachedHead = true
                break
            }
            // What a rebuild parks becomes the module's parked list when the rebuild is swapped in.
            var outcome = await process(
                batch.events, generation: progress.generation, mayEmit: false, after: inFlight.map(\.views),
                parkingIn: kind == .rebuild ? ViewStorage.rebuildParkedTable(name) : nil)
            if outcome.interrupted { break }
            if let failure = outcome.storageFailure {
                return await stopBurst(kind, settling: inFlight.map(\.commit), storageTrouble: failure)
            }
            let next = RebuildProgress(
                generation: progress.generation,
                checkpoint: ViewStorage.Checkpoint(
                    position: outcome.stoppedBefore.map { $0 - 1 } ?? batch.scannedThrough,
                    processed: progress.checkpoint.processed + outcome.processed))
            let (table, nextBytes) =
                kind == .rebuild
                ? (ViewStorage.rebuildTable, next.bytes) : (ViewStorage.checkpointTable, next.checkpoint.bytes)
            outcome.writes.append(StateWrite(table: table, key: ViewStorage.bytes(name), value: nextBytes))
            let conditions = [StateCondition(table: table, key: ViewStorage.bytes(name), expected: expected)]
            if inFlight.count == Self.rebuildDepth {
                guard await settle(inFlight.removeFirst().commit, kind) else {
                    await drain(inFlight.map(\.commit))
                    return nil
                }
                // Whatever came up meanwhile goes first; the batch is read and processed again next time.
                if mustYield(kind) { break }
            }
            // The documents are encoded on the encoder's thread while this one processes the next batch.
            let (viewWrites, otherWrites) = (outcome.viewWrites, outcome.writes)
            let commit = BurstCommit(
                commit: PendingCommit(log: log, buildingOn: rebuildEncoder) {
                    CommitUnit(writes: viewWrites.encoded(followedBy: otherWrites), conditions: conditions)
                },
                next: next, stoppedBefore: outcome.stoppedBefore, failure: outcome.failures.last,
                processed: outcome.processed, parked: outcome.parked, started: started)
            inFlight.append((commit, outcome.views))
            progress = next
            expected = nextBytes
            if outcome.stoppedBefore != nil || mustYield(kind) { break }
        }
        guard await settleInOrder(inFlight.map(\.commit), kind) else { return nil }
        return reachedHead
    }

    /// Ends a burst on a storage failure: settles the commits in flight, then waits as ``storageTrouble(_:)`` does.
    /// The loop runs the batches again from the stored progress or checkpoint.
    /// - Returns: `nil`: not every batch committed.
    private func stopBurst(
        _ kind: BurstKind, settling inFlight: [BurstCommit], storageTrouble message: String
    ) async -> Bool? {
        _ = await settleInOrder(inFlight, kind)
        await storageTrouble(message)
        return nil
    }

    /// Settles `commits` in order; once one fails, only waits for the rest (``drain(_:)``).
    /// - Returns: Whether every one committed and the burst's work goes on.
    private func settleInOrder(_ commits: [BurstCommit], _ kind: BurstKind) async -> Bool {
        for (index, commit) in commits.enumerated() {
            guard await settle(commit, kind) else {
                await drain(Array(commits[(index + 1)...]))
                return false
            }
        }
        return true
    }

    /// Waits for the commits that followed a failed one: each expected the progress or checkpoint the failed one
    /// did not write, so each fails, on its condition or with the failed one's transaction, and changes nothing;
    /// there is nothing to act on.
    private func drain(_ commits: [BurstCommit]) async {
        for commit in commits { _ = await commit.commit.result }
    }

    /// Whether the loop has other work that a burst must not hold up: an operation, stopping, or for a rebuild,
    /// live events.
    private func mustYield(_ kind: BurstKind) -> Bool {
        if Task.isCancelled || !operations.isEmpty { return true }
        return kind == .rebuild && state == .running && log.headPosition > checkpoint.position
    }

    /// Waits for a batch's commit and records it: a rebuild's progress, or the live checkpoint with what the batch
    /// did. A catch-up batch that stopped before a failing event faults the module.
    /// - Returns: Whether the batch committed and the burst goes on.
    private func settle(_ batch: BurstCommit, _ kind: BurstKind) async -> Bool {
        switch kind {
        case .rebuild:
            return await settleRebuild(batch)
        case .catchUp:
            guard case .committed = await settle(await batch.commit.result, sources: []) else { return false }
            recordLiveCommit(
                checkpoint: batch.next.checkpoint, processed: batch.processed, parked: batch.parked,
                failure: batch.failure, stoppedBefore: batch.stoppedBefore, started: batch.started)
            return batch.stoppedBefore == nil
        }
    }

    /// Waits for a rebuild batch's commit; abandons the rebuild when the batch stopped before a failing event.
    /// - Returns: Whether the batch committed and the rebuild goes on.
    private func settleRebuild(_ batch: BurstCommit) async -> Bool {
        guard case .committed = await settle(await batch.commit.result, sources: []) else { return false }
        rebuild = batch.next
        guard let stopped = batch.stoppedBefore else { return true }
        lastError = "rebuild stopped before position \(stopped); the live views stay in place"
        logger.error(
            "rebuild abandoned: the projector failed; the live views stay in place",
            metadata: [
                "generation": "\(batch.next.generation)", "position": "\(stopped)",
                "error": "\(batch.failure ?? "")",
            ])
        await abandonRebuild()
        return false
    }

    private func swap(_ progress: RebuildProgress) async {
        let oldGeneration = handle.generation
        let newCheckpoint = progress.checkpoint
        // The rebuilt views replace the parked list too: an event the rebuild applied is no longer parked.
        let liveParked: [(key: [UInt8], value: [UInt8])]
        let rebuildParked: [(key: [UInt8], value: [UInt8])]
        do {
            liveParked = try Self.parkedEntries(in: ViewStorage.parkedTable(name), log: log)
            rebuildParked = try Self.parkedEntries(in: ViewStorage.rebuildParkedTable(name), log: log)
        } catch {
            await storageTrouble("cannot read the parked events: \(error)")
            return
        }
        var parkedWrites = liveParked.map { StateWrite(table: ViewStorage.parkedTable(name), key: $0.key, value: nil) }
        parkedWrites += rebuildParked.map {
            StateWrite(table: ViewStorage.rebuildParkedTable(name), key: $0.key, value: nil)
        }
        parkedWrites += rebuildParked.map {
            StateWrite(table: ViewStorage.parkedTable(name), key: $0.key, value: $0.value)
        }
        let unit = CommitUnit(
            writes: parkedWrites + [
                StateWrite(
                    table: ViewStorage.generationTable, key: ViewStorage.bytes(name),
                    value: ViewStorage.bigEndian(progress.generation)),
                StateWrite(
                    table: ViewStorage.checkpointTable, key: ViewStorage.bytes(name), value: newCheckpoint.bytes),
                StateWrite(table: ViewStorage.rebuildTable, key: ViewStorage.bytes(name), value: nil),
                StateWrite(
                    table: ViewStorage.cleanupTable, key: ViewStorage.bytes("\(name)/\(oldGeneration)"),
                    value: ViewStorage.bigEndian(oldGeneration)),
            ],
            conditions: [
                StateCondition(
                    table: ViewStorage.checkpointTable, key: ViewStorage.bytes(name), expected: checkpointBytes),
                StateCondition(table: ViewStorage.rebuildTable, key: ViewStorage.bytes(name), expected: progress.bytes),
            ])
        guard case .committed = await commit(unit, sources: []) else { return }
        checkpoint = newCheckpoint
        checkpointBytes = newCheckpoint.bytes
        parkedCount = rebuildParked.count
        if state == .faulted {
            // The rebuilt views went past the event the module had stopped before.
            state = .running
        }
        lastError = nil
        rebuild = nil
        cleanups.append(oldGeneration)
        handle.setGeneration(progress.generation)
        publishCheckpoint()
        logger.info(
            "rebuild finished and swapped in",
            metadata: [
                "generation": "\(progress.generation)", "checkpoint": "\(newCheckpoint.position)",
                "events_processed": "\(newCheckpoint.processed)", "parked": "\(parkedCount)",
            ])
    }

    private func abandonRebuild() async {
        guard let progress = rebuild else { return }
        let rebuildParked =
            (try? Self.parkedEntries(in: ViewStorage.rebuildParkedTable(name), log: log)) ?? []
        let unit = CommitUnit(
            writes: rebuildParked.map {
                StateWrite(table: ViewStorage.rebuildParkedTable(name), key: $0.key, value: nil)
            } + [
                StateWrite(table: ViewStorage.rebuildTable, key: ViewStorage.bytes(name), value: nil),
                StateWrite(
                    table: ViewStorage.cleanupTable, key: ViewStorage.bytes("\(name)/\(progress.generation)"),
                    value: ViewStorage.bigEndian(progress.generation)),
            ])
        if case .committed = await commit(unit, sources: []) {
            rebuild = nil
            cleanups.append(progress.generation)
        }
    }

    /// Deletes up to a thousand entries of a generation that is no longer used.
    private func cleanupBatch() async -> Bool {
        guard let generation = cleanups.first else { return false }
        do {
            var writes: [StateWrite] = []
            for definition in views {
                for table in [
                    ViewStorage.documentTable(definition.name, generation: generation),
                    ViewStorage.indexTable(definition.name, generation: generation),
                ] where writes.count < 1000 {
                    let entries = try log.scanState(table: table, prefix: [], after: nil, limit: 1000 - writes.count)
                    writes += entries.map { StateWrite(table: table, key: $0.key, value: nil) }
                }
            }
            if writes.isEmpty {
                for definition in views {
                    writes.append(
                        StateWrite(
                            table: ViewStorage.countTable,
                            key: ViewStorage.countKey(definition.name, generation: generation), value: nil))
                }
                writes.append(
                    StateWrite(
                        table: ViewStorage.cleanupTable, key: ViewStorage.bytes("\(name)/\(generation)"), value: nil))
                if case .committed = await commit(CommitUnit(writes: writes), sources: []) { cleanups.removeFirst() }
            } else {
                _ = await commit(CommitUnit(writes: writes), sources: [])
            }
        } catch {
            await storageTrouble("cleanup failed: \(error)")
        }
        return true
    }

    // MARK: - Operations

    private func runOperations() async {
        let pending = operations
        operations.removeAll()
        for (operation, continuation) in pending {
            let result: Result<String, HostError>
            switch operation {
            case .rebuild: result = await startRebuild()
            case .retry(let position): result = await retry(position)
            case .skip(let position): result = await skip(position)
            }
            continuation.resume(returning: result)
        }
    }

    private func startRebuild() async -> Result<String, HostError> {
        guard case .projector = module else {
            return .failure(.badRequest("\(name) is a \(kind.rawValue); only projectors can be rebuilt"))
        }
        if let rebuild {
            return .success("already rebuilding, at position \(rebuild.checkpoint.position)")
        }
        let generation = max(handle.generation, cleanups.max() ?? 0) + 1
        let progress = RebuildProgress(generation: generation, checkpoint: .init(position: 0, processed: 0))
        let unit = CommitUnit(
            writes: [StateWrite(table: ViewStorage.rebuildTable, key: ViewStorage.bytes(name), value: progress.bytes)],
            conditions: [StateCondition(table: ViewStorage.rebuildTable, key: ViewStorage.bytes(name), expected: nil)])
        guard case .committed = await commit(unit, sources: []) else {
            return .failure(.internal("could not start the rebuild: \(lastError ?? "unknown")"))
        }
        rebuild = progress
        logger.info(
            "rebuild started", metadata: ["generation": "\(generation)", "head": "\(log.headPosition)"])
        return .success("rebuilding into generation \(generation)")
    }

    private func retry(_ position: LogPosition) async -> Result<String, HostError> {
        if state == .faulted && position == checkpoint.position + 1 {
            state = .running
            lastError = nil
            logger.notice("RETRY: resuming at the failing event", metadata: ["position": "\(position)"])
            return .success("resumed at position \(position)")
        }
        let parkedKey = ViewStorage.bigEndian(position)
        let table = ViewStorage.parkedTable(name)
        let record: [UInt8]?
        let events: [RecordedEvent]
        do {
            record = try log.readState(table: table, key: parkedKey)
            events = try log.readAll(from: position, limit: 1, eventTypes: [])
        } catch {
            return .failure(.internal("\(error)"))
        }
        guard let record, let event = events.first, event.position == position else {
            return .failure(.notFound("no parked event at position \(position) for \(name)"))
        }
        var outcome = await process([event], generation: handle.generation, mayEmit: true)
        if outcome.interrupted {
            // Stopping while the event waited between attempts: it was not processed, and stays parked.
            return .failure(.unavailable("the server is stopping; position \(position) stays parked"))
        }
        if let failure = outcome.storageFailure { return .failure(.internal(failure)) }
        guard outcome.parked.isEmpty, outcome.stoppedBefore == nil else {
            let error = outcome.failures.last ?? "failed again"
            var updated = (try? JSONValue(parsing: record))?.objectValue ?? [:]
            updated["error"] = .string(error)
            updated["attempts"] = .number(JSONNumber((updated["attempts"]?.int64Value ?? 0) + Int64(policy.attempts)))
            _ = await commit(
                CommitUnit(writes: [
                    StateWrite(table: table, key: parkedKey, value: JSONValue.object(updated).jsonBytes)
                ]),
                sources: [])
            return .failure(.internal("position \(position) failed again: \(error)"))
        }
        outcome.writes.append(StateWrite(table: table, key: parkedKey, value: nil))
        let unit = CommitUnit(
            appends: outcome.appends, writes: outcome.allWrites(),
            conditions: [StateCondition(table: table, key: parkedKey, expected: record)])
        guard case .committed = await commit(unit, sources: outcome.appendSources) else {
            return .failure(.internal("could not commit the retry: \(lastError ?? "unknown")"))
        }
        parkedCount -= 1
        logger.notice(
            "RETRY: parked event processed", metadata: ["position": "\(position)", "parked_now": "\(parkedCount)"])
        return .success("position \(position) processed")
    }

    private func skip(_ position: LogPosition) async -> Result<String, HostError> {
        if state == .faulted && position == checkpoint.position + 1 {
            let next = ViewStorage.Checkpoint(position: position, processed: checkpoint.processed)
            let unit = CommitUnit(
                writes: [
                    StateWrite(table: ViewStorage.checkpointTable, key: ViewStorage.bytes(name), value: next.bytes)
                ],
                conditions: [
                    StateCondition(
                        table: ViewStorage.checkpointTable, key: ViewStorage.bytes(name), expected: checkpointBytes)
                ])
            guard case .committed = await commit(unit, sources: []) else {
                return .failure(.internal("could not skip: \(lastError ?? "unknown")"))
            }
            checkpoint = next
            checkpointBytes = next.bytes
            state = .running
            lastError = nil
            publishCheckpoint()
            logger.notice("SKIP: stepped over the failing event; resumed", metadata: ["position": "\(position)"])
            return .success("skipped position \(position); resumed")
        }
        let table = ViewStorage.parkedTable(name)
        let key = ViewStorage.bigEndian(position)
        guard let record = try? log.readState(table: table, key: key) else {
            return .failure(.notFound("no parked event at position \(position) for \(name)"))
        }
        let unit = CommitUnit(
            writes: [StateWrite(table: table, key: key, value: nil)],
            conditions: [StateCondition(table: table, key: key, expected: record)])
        guard case .committed = await commit(unit, sources: []) else {
            return .failure(.internal("could not skip: \(lastError ?? "unknown")"))
        }
        parkedCount -= 1
        logger.notice(
            "SKIP: parked event dropped", metadata: ["position": "\(position)", "parked_now": "\(parkedCount)"])
        return .success("dropped parked position \(position)")
    }
}

/// The stored documents one batch has read, as they were read (`nil` for an absent one): the store does not change
/// under a batch, since only the batch's own commit writes its views.
final class StoredDocuments: Sendable {
    /// The module's views: a view is found by comparing names, which is cheaper than hashing them.
    private let views: [String]
    /// For each view, documents as they will be stored once the batches in flight commit, newest batch first;
    /// never changed, so never copied.
    private let pending: [[[String: JSONValue?]]]
    /// For each view, the documents read from the store.
    private let documents: Mutex<[[String: JSONValue?]]>

    /// Starts with `pending`: by batch in flight, oldest first, documents as they will be stored (`nil` for absent
    /// ones) once it commits.
    init(views: [ViewDefinition], pending: [[String: [String: JSONValue?]]] = []) {
        self.views = views.map(\.name)
        self.pending = views.map { view in pending.reversed().compactMap { $0[view.name] } }
        documents = Mutex(Array(repeating: [:], count: views.count))
    }

    /// The document as stored: `nil` when not read yet, `.some(nil)` when read and absent.
    func document(_ view: String, _ key: String) -> JSONValue?? {
        guard let index = views.firstIndex(of: view) else { return nil }
        for layer in pending[index] {
            if let known = layer[key] { return known }
        }
        return documents.withLock { $0[index][key] }
    }

    func remember(_ document: JSONValue?, _ view: String, _ key: String) {
        guard let index = views.firstIndex(of: view) else { return }
        documents.withLock { $0[index][key] = .some(document) }
    }
}

/// The writes for a batch's view changes, with everything read from the store that they need, but with the
/// documents not yet encoded: encoding is the costliest part, and a rebuild does it on another thread while its
/// runner goes on with the next batch.
struct ViewWritePlan: Sendable {
    /// A document's new state.
    struct Change: Sendable {
        let key: String
        /// The document, or `nil` for a deletion.
        let document: JSONValue?
    }

    /// One view's changes.
    struct View: Sendable {
        let documentTable: String
        let indexTable: String
        /// The indexed fields.
        let indexes: [String]
        /// The changed documents, in key order.
        let documents: [Change]
        /// For each changed document, the document as stored before (`nil`: there was none).
        let oldDocuments: [JSONValue?]
        /// The view's new document count, when it changed.
        let countWrite: StateWrite?
    }

    var views: [View] = []

    /// The writes, in order: for each view, its documents' writes, then its index entries' changes in key order,
    /// then its count; then `others`.
    func encoded(followedBy others: [StateWrite]) -> [StateWrite] {
        var writes: [StateWrite] = []
        for view in views {
            var indexWrites: [StateWrite] = []
            for (change, oldDocument) in zip(view.documents, view.oldDocuments) {
                writes.append(
                    StateWrite(
                        table: view.documentTable, key: ViewStorage.bytes(change.key), value: change.document?.jsonBytes
                    ))
                for field in view.indexes {
                    let oldText = ViewDefinition.indexText(oldDocument?[field])
                    let newText = ViewDefinition.indexText(change.document?[field])
                    guard oldText != newText else { continue }
                    if let oldText {
                        indexWrites.append(
                            StateWrite(
                                table: view.indexTable,
                                key: ViewStorage.indexKey(field: field, value: oldText, documentKey: change.key),
                                value: nil))
                    }
                    if let newText {
                        indexWrites.append(
                            StateWrite(
                                table: view.indexTable,
                                key: ViewStorage.indexKey(field: field, value: newText, documentKey: change.key),
                                value: []))
                    }
                }
            }
            // In key order, as the documents are: each key is written once (an entry names its document), so the
            // order changes nothing but how far apart in the tree consecutive writes land.
            indexWrites.sort { $0.key.lexicographicallyPrecedes($1.key) }
            writes += indexWrites
            if let countWrite = view.countWrite { writes.append(countWrite) }
        }
        writes += others
        return writes
    }
}

/// A commit handed to the log's writer, whose result is awaited later: the runner processes its next batch
/// meanwhile.
final class PendingCommit: Sendable {
    private enum State {
        case waiting(CheckedContinuation<Result<[AppendResult], CommitError>, Never>?)
        case done(Result<[AppendResult], CommitError>)
    }

    private let state = Mutex(State.waiting(nil))

    /// Hands `unit` to the log at once.
    convenience init(_ unit: CommitUnit, log: any EventLog) {
        self.init()
        start(unit, log: log)
    }

    /// Builds the unit on `queue`, then hands it to the log from there: the caller goes on meanwhile.
    convenience init(log: any EventLog, buildingOn queue: DispatchQueue, _ build: @escaping @Sendable () -> CommitUnit)
    {
        self.init()
        queue.async { [self] in start(build(), log: log) }
    }

    private init() {}

    private func start(_ unit: CommitUnit, log: any EventLog) {
        log.commit(unit) { [self] result in
            let waiter = state.withLock {
                state -> CheckedContinuation<Result<[AppendResult], CommitError>, Never>? in
                defer { state = .done(result) }
                guard case .waiting(let waiter) = state else { return nil }
                return waiter
            }
            waiter?.resume(returning: result)
        }
    }

    /// The commit's result, once the log has it.
    var result: Result<[AppendResult], CommitError> {
        get async {
            await withCheckedContinuation { continuation in
                let done = state.withLock { state -> Result<[AppendResult], CommitError>? in
                    switch state {
                    case .done(let result): return result
                    case .waiting: state = .waiting(continuation)
                    }
                    return nil
                }
                if let done { continuation.resume(returning: done) }
            }
        }
    }
}

/// A read of a module's views from the store failed while the module ran: thrown through the module, so that the
/// runner tells a failing store from a failing event.
struct ViewReadFailure: Error, CustomStringConvertible {
    let underlying: String

    var description: String { "cannot read the views: \(underlying)" }
}
