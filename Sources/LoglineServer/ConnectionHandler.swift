import Logging
import LoglineCore
import LoglineLog
import LoglineProtocol
import NIOCore
import Synchronization

/// One client connection: runs each request through the ``RequestExecutor`` and writes the replies in request
/// order, however late the durable ones complete.
///
/// Reads are answered at once; appends are answered when the group commit that holds them is on disk. Each
/// request takes a slot in `pending`; a reply fills its slot, and every filled slot at the front is written.
/// Requests take effect in the order they were sent: an append goes to the log's queue at once (the writer
/// keeps queue order), while any other request waits until the appends before it are durable.
/// When too many requests are in flight, or the client stops reading its replies, the handler stops taking requests
/// (``RequestIntake/isPaused``: its ``RequestDecoderHandler`` frames nothing more and stops reading the socket)
/// until it catches up: backpressure, rather than unbounded memory.
///
/// When the server has tokens, the connection has no role until `AUTH` succeeds: every request but the few that
/// ``RequestFrame/isAllowedBeforeAuthentication`` allows is answered `-NOAUTH` unparsed, and a request its role
/// does not permit is answered `-NOPERM`. Both checks happen as requests arrive, in order, so each request is
/// judged by the `AUTH` requests sent before it. After ``maximumFailedAuthentications`` failed `AUTH` requests,
/// the connection closes.
final class ConnectionHandler: ChannelInboundHandler, RequestFrameReceiver {
    typealias InboundIn = RequestFrameDecoder.Outcome
    typealias OutboundOut = ByteBuffer

    /// The event the server sends down every connection's pipeline on graceful shutdown: take no new request,
    /// answer those taken, end the output after the last reply, and close when the client has read it.
    struct Drain: Sendable {}

    private let executor: RequestExecutor
    private let parser: RequestParser
    private let maximumPipelinedRequests: Int
    private let hub: SubscriptionHub
    private let maximumSubscriberLag: UInt64
    private let limits: ConnectionLimits
    private let intake: RequestIntake
    private let tokens: TokenTable
    private let metrics: ServerMetrics
    private let logger: Logger
    /// What this connection may do: `nil` until `AUTH` succeeds when the server has tokens.
    private var role: AccessToken.Role?
    /// Failed `AUTH` requests on this connection.
    private var failedAuthentications = 0
    /// How many failed `AUTH` requests close the connection.
    static let maximumFailedAuthentications = 10
    /// `-NOPERM`: the connection's role does not allow the request (not in LoglineCore's codes).
    static let noPermission = ErrorCode(rawValue: "NOPERM")
    /// `-LAGGING`: a live subscriber fell too far behind and is dropped (not in LoglineCore's codes).
    static let lagging = ErrorCode(rawValue: "LAGGING")

    /// A live tail in progress: the connection is in subscribed mode.
    private struct Subscription {
        /// The last position sent (or skipped by the filter).
        var position: LogPosition
        let eventTypes: Set<String>
        let channel: String
        let listener: UInt64
        /// Whether the subscriber has reached the head at least once: the lag limit applies to the live tail,
        /// not to a replay from far back, which a fast reader may take its time over.
        var caughtUp = false
    }

    private var subscription: Subscription? {
        didSet {
            switch (oldValue == nil, subscription == nil) {
            case (true, false): metrics.subscriptions.increment()
            case (false, true): metrics.subscriptions.decrement()
            default: break
            }
        }
    }
    private let trigger = PumpTrigger()
    private let tasks = ConnectionTasks()
    /// Where replies completed elsewhere go; set while the handler is in a pipeline.
    private var router: ReplyRouter?
    /// Replies ready to go, gathered into one buffer while a read loop or a drain of completions runs and written as
    /// one at its flush: one trip down the pipeline per batch of pipelined replies rather than one per reply.
    private var outgoing: ByteBuffer?
    private var pumping = false
    private var pending = CircularBuffer<ByteBuffer?>(initialCapacity: 16)
    private var firstPendingSlot = 0
    private var nextSlot = 0
    private var closeAfterSlot: Int?
    /// The last reply is written or on its way: the connection closes once the client has had it.
    private var closing = false
    /// The client has shut down its side: it sends nothing more.
    private var inputClosed = false
    /// When a client that has shut down its side is closed even if it has not read its last replies; cancelled
    /// when the connection closes first.
    private var readDeadline: Scheduled<Void>?
    /// Appends of this connection not yet durable.
    private var appendsInFlight = 0
    /// Other requests of this connection that complete later (commands, waits for a view, rebuilds).
    private var othersInFlight = 0
    /// Requests held back until the appends before them are durable, so each one sees the effects of every
    /// request the client sent before it (appends may run ahead: the log's writer keeps their order).
    private var waiting = CircularBuffer<(slot: Int, request: Request)>()
    private var readingPaused = false
    /// The channel's writability as of its last change (NIO reports every change with
    /// `channelWritabilityChanged`, at once): read per request, where reaching the channel through the context
    /// retains and releases it.
    private var channelIsWritable = true
    private var insideReadLoop = false
    /// Bytes written since the last flush: flushed early past ``flushThreshold``, so that a long read loop does not
    /// gather its replies unflushed (with TLS, unflushed replies wait in the TLS handler, where the channel's
    /// writability does not see them).
    private var unflushedBytes = 0
    /// A flush is scheduled for the end of the event loop's turn.
    private var flushDue = false
    /// Replies gathered or written since the last flush.
    private var hasUnflushedReplies: Bool { outgoing != nil || unflushedBytes > 0 }
    static let flushThreshold = 64 * 1024
    private var context: ChannelHandlerContext?
    /// The server's per-event-loop hand-off of completed replies.
    private let replies: ReplyDispatch

    init(
        executor: RequestExecutor, parser: RequestParser, maximumPipelinedRequests: Int, hub: SubscriptionHub,
        maximumSubscriberLag: UInt64, tokens: TokenTable, limits: ConnectionLimits, intake: RequestIntake,
        metrics: ServerMetrics, logger: Logger, replies: ReplyDispatch = ReplyDispatch()
    ) {
        self.replies = replies
        self.executor = executor
        self.parser = parser
        self.maximumPipelinedRequests = maximumPipelinedRequests
        self.hub = hub
        self.maximumSubscriberLag = maximumSubscriberLag
        self.tokens = tokens
        self.role = tokens.isEnabled ? nil : .readWrite
        self.limits = limits
        self.intake = intake
        self.metrics = metrics
        self.logger = logger
    }

    /// The client's address, for log lines.
    private var remote: String {
        context?.channel.remoteAddress.map { "\($0)" } ?? "?"
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        channelIsWritable = context.channel.isWritable
        router = ReplyRouter(
            handler: NIOLoopBound(self, eventLoop: context.eventLoop), loop: replies.replies(for: context.eventLoop))
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if let subscription { hub.unregister(subscription.listener) }
        subscription = nil
        self.context = nil
        router = nil  // it holds the handler: completions still in flight keep both until they end
    }

    /// Adds a ready reply to ``outgoing``.
    private func gather(_ reply: ByteBuffer, _ context: ChannelHandlerContext) {
        guard var gathered = outgoing else {
            outgoing = reply
            return
        }
        outgoing = nil  // so that `gathered` is the buffer's only reference, and grows in place
        if gathered.writableBytes < reply.readableBytes && gathered.capacity < 4096 {
            var larger = context.channel.allocator.buffer(
                capacity: max(4096, gathered.readableBytes + reply.readableBytes))
            larger.writeImmutableBuffer(gathered)
            gathered = larger
        }
        gathered.writeImmutableBuffer(reply)
        outgoing = gathered
    }

    /// Writes the gathered replies, before anything else is written.
    private func writeOutgoing(_ context: ChannelHandlerContext) {
        guard let gathered = outgoing else { return }
        outgoing = nil
        context.write(wrapOutboundOut(gathered), promise: nil)
    }

    /// Writes the gathered replies and flushes.
    private func flushOutgoing(_ context: ChannelHandlerContext) {
        writeOutgoing(context)
        unflushedBytes = 0
        context.flush()
    }

    /// Writes the gathered replies, then `buffer`, and flushes.
    /// - Parameter promise: Completed when `buffer` is written.
    private func flushOutgoing(
        _ context: ChannelHandlerContext, then buffer: ByteBuffer, promise: EventLoopPromise<Void>?
    ) {
        writeOutgoing(context)
        unflushedBytes = 0
        context.writeAndFlush(wrapOutboundOut(buffer), promise: promise)
    }

    func channelActive(context: ChannelHandlerContext) {
        let open = executor.connectionOpened()
        context.fireChannelActive()
        if open > limits.maximumConnections {
            metrics.closedOverLimit.increment()
            logger.notice(
                "connection refused: too many connections",
                metadata: ["remote": "\(remote)", "limit": "\(limits.maximumConnections)"])
            refuse(
                context, .unavailable,
                "too many connections (limit \(limits.maximumConnections)); try again later")
        }
    }

    /// Answers with an error that ends the connection, and closes it; later input is ignored.
    private func refuse(_ context: ChannelHandlerContext, _ code: ErrorCode, _ message: String) {
        close(context, after: executor.errorReply(code, message))
    }

    /// Sends a last reply, then closes; requests that arrive after it are ignored.
    private func close(_ context: ChannelHandlerContext, after reply: ByteBuffer) {
        closeAfterSlot = nextSlot
        finish(context, with: reply)
    }

    /// How long a closing connection goes on reading, and dropping, what the client still sends.
    static let lingerTime = TimeAmount.seconds(2)

    /// Writes the last reply and closes so that the client gets to read it.
    ///
    /// Closing a socket while input is still unread makes the kernel reset the connection, and the client loses
    /// what it has not read yet: a client still sending a request over the size limit would see "connection reset"
    /// instead of `-TOOLARGE`. So after the reply the server shuts down only its output (the client reads the reply,
    /// then the end of the stream), and reads on, dropping everything, until the client closes or ``lingerTime``
    /// has passed.
    private func finish(_ context: ChannelHandlerContext, with reply: ByteBuffer) {
        closing = true
        intake.isDiscarding = true
        intake.isPaused = false
        if readingPaused {
            readingPaused = false
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        }
        context.read()
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let inputClosed = self.inputClosed
        if inputClosed, let idleTimeout = limits.idleTimeout {
            // The client has sent all it will: it gets as long as an idle connection to read its last replies.
            readDeadline = context.eventLoop.scheduleTask(in: .nanoseconds(Int64(idleTimeout.nanoseconds))) {
                bound.value.close(promise: nil)
            }
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        flushOutgoing(context, then: reply, promise: written)
        written.futureResult.whenComplete { result in
            let context = bound.value
            guard case .success = result, !inputClosed else {
                context.close(promise: nil)
                return
            }
            let shutdown = context.eventLoop.makePromise(of: Void.self)
            context.close(mode: .output, promise: shutdown)
            shutdown.futureResult.whenFailure { _ in bound.value.close(promise: nil) }
            context.eventLoop.scheduleTask(in: Self.lingerTime) { bound.value.close(promise: nil) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        readDeadline?.cancel()
        readDeadline = nil
        tasks.cancelAll()
        executor.connectionClosed()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        receive(unwrapInboundIn(data))
    }

    func receive(_ outcome: RequestFrameDecoder.Outcome) {
        guard closeAfterSlot == nil else { return }  // QUIT or a fatal error: ignore what follows.
        insideReadLoop = true
        let slot = nextSlot
        nextSlot += 1
        pending.append(nil)
        switch outcome {
        case .needMoreData:
            preconditionFailure("the decoder never forwards needMoreData")
        case .error(let error):
            if error.closesConnection { closeAfterSlot = slot }
            fill(slot, with: executor.errorReply(error.code, error.message))
        case .frame(let frame):
            if role == nil && !frame.isAllowedBeforeAuthentication {
                fill(slot, with: executor.errorReply(.noAuth, "authentication required; send AUTH <token>"))
                return
            }
            let request: Request
            do {
                request = try parser.parse(frame)
            } catch {
                fill(slot, with: executor.errorReply(error.code, error.message))
                return
            }
            metrics.count(request)
            if case .quit = request { closeAfterSlot = slot }
            if subscription != nil {
                fill(slot, with: subscribedModeReply(request))
                return
            }
            if let refusal = accessRefusal(request, in: slot) {
                fill(slot, with: refusal)
                return
            }
            if waiting.isEmpty && mayStart(request) {
                run(request, in: slot)
            } else {
                waiting.append((slot, request))
            }
        }
        updateReading()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        insideReadLoop = false
        if hasUnflushedReplies, let router, !flushDue {
            flushDue = true
            router.flushAtEndOfTurn()
        }
        context.fireChannelReadComplete()
    }

    /// Flushes what a read loop of this turn wrote; called once the event loop has handled every channel that
    /// was ready in this turn.
    func flushAtEndOfTurn() {
        flushDue = false
        // A drain of completions, or a reply outside the read loop, may have flushed everything since.
        guard let context, hasUnflushedReplies else { return }
        flushOutgoing(context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        channelIsWritable = context.channel.isWritable
        startWaiting()
        updateReading()
        if subscription != nil { pump() }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is Drain {
            beginDraining(context)
            return
        }
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            // Quiet is fine while the server owes this client something: a subscription, a blocked FETCH,
            // replies in flight. Otherwise the connection has been forgotten.
            if subscription == nil && pending.isEmpty && appendsInFlight == 0 && othersInFlight == 0
                && closeAfterSlot == nil
            {
                let milliseconds = limits.idleTimeout.map { $0.nanoseconds / 1_000_000 } ?? 0
                metrics.closedIdle.increment()
                logger.debug("closing an idle connection", metadata: ["remote": "\(remote)"])
                refuse(context, .timeout, "idle for \(milliseconds) ms with nothing in flight; closing")
            }
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The client sent all it will send (`printf ... | nc`): answer what is in flight, then close.
            inputClosed = true
            if closing {
                // The last reply is on its way: the connection closes once it is written (``finish(_:with:)``).
                return
            } else if pending.isEmpty {
                // Closed once every reply is written, not at once: closing drops what the kernel has not taken yet.
                close(context, after: context.channel.allocator.buffer(capacity: 0))
            } else if closeAfterSlot == nil {
                closeAfterSlot = nextSlot - 1
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // Connection resets and the like: nothing to reply to, and nothing an operator needs at the default level.
        logger.debug("connection error; closing", metadata: ["remote": "\(remote)", "error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: - Authentication

    /// The reply to `AUTH`, or the refusal of a request the connection may not make; `nil` when the request
    /// goes on to run.
    private func accessRefusal(_ request: Request, in slot: Int) -> ByteBuffer? {
        if case .auth(let token) = request, tokens.isEnabled {
            return authenticate(token, in: slot)
        }
        let access = request.requiredAccess
        guard access != .unauthenticated else { return nil }
        guard let role else {
            return executor.errorReply(.noAuth, "authentication required; send AUTH <token>")
        }
        guard role.permits(access) else {
            return executor.errorReply(Self.noPermission, "this token is read-only")
        }
        return nil
    }

    /// Checks a token: on success the connection takes its role; a failure leaves the role as it was, and the
    /// last allowed failure closes the connection after its reply.
    private func authenticate(_ token: [UInt8], in slot: Int) -> ByteBuffer {
        if let granted = tokens.role(for: token) {
            role = granted
            var reply = ByteBufferAllocator().buffer(capacity: 8)
            ReplyWriter.simpleString("OK", into: &reply)
            return reply
        }
        failedAuthentications += 1
        metrics.authenticationFailures.increment()
        guard failedAuthentications < Self.maximumFailedAuthentications else {
            closeAfterSlot = slot
            metrics.closedAfterFailedAuthentication.increment()
            logger.warning(
                "authentication failed too often; closing the connection",
                metadata: ["remote": "\(remote)", "attempts": "\(failedAuthentications)"])
            return executor.errorReply(
                .noAuth, "invalid token; \(Self.maximumFailedAuthentications) failed attempts, closing the connection")
        }
        logger.notice(
            "authentication failed: invalid token",
            metadata: ["remote": "\(remote)", "attempts": "\(failedAuthentications)"])
        return executor.errorReply(.noAuth, "invalid token")
    }

    /// Whether a request may start now: an append when nothing but appends is in flight (the log's writer
    /// keeps their order), anything else when nothing at all is in flight.
    private func mayStart(_ request: Request) -> Bool {
        request.isAppend ? othersInFlight == 0 : appendsInFlight == 0 && othersInFlight == 0
    }

    /// Runs a request now: a read at once, an append through the group commit, a module request as a task.
    private func run(_ request: Request, in slot: Int) {
        guard context != nil else { return }
        if case .subscribe(let command) = request {
            startSubscription(command, in: slot)
            return
        }
        guard let router else { return }
        let isAppend = request.isAppend
        let immediate = executor.execute(
            request, tasks: tasks, completion: ReplySink(router: router, slot: slot, isAppend: isAppend))
        if let immediate {
            fill(slot, with: immediate)
        } else if isAppend {
            appendsInFlight += 1
        } else {
            othersInFlight += 1
        }
    }

    /// Fills the slots of every reply completed elsewhere, then flushes once.
    func drainInbox() {
        guard let items = router?.inbox.drain(), !items.isEmpty else { return }
        let wasDeferring = insideReadLoop
        insideReadLoop = true
        for item in items { completed(item.slot, isAppend: item.isAppend, with: executor.render(item.reply)) }
        insideReadLoop = wasDeferring
        if !wasDeferring, let context { flushOutgoing(context) }
    }

    private func completed(_ slot: Int, isAppend: Bool, with reply: ByteBuffer) {
        if isAppend { appendsInFlight -= 1 } else { othersInFlight -= 1 }
        fill(slot, with: reply)
        startWaiting()
    }

    /// Starts the requests held back that may start now, in order: each sees the effects of every request sent
    /// before it. None starts while the client is not taking its replies, which would only pile up; they start
    /// when the channel is writable again.
    private func startWaiting() {
        guard let context else { return }
        while let (waitingSlot, request) = waiting.first, mayStart(request), context.channel.isWritable {
            waiting.removeFirst()
            run(request, in: waitingSlot)
        }
    }

    // MARK: - Live tail

    private func startSubscription(_ command: SubscribeCommand, in slot: Int) {
        guard let context else { return }
        let start: LogPosition
        switch command.start {
        case .now: start = hub.log.headPosition
        case .position(let position): start = position > 0 ? position - 1 : 0
        }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let trigger = self.trigger
        let listener = hub.register {
            guard trigger.claim() else { return }
            eventLoop.execute { loopBound.value.pump() }
        }
        let channel = command.eventTypes.isEmpty ? "*" : command.eventTypes.joined(separator: ",")
        subscription = Subscription(
            position: start, eventTypes: Set(command.eventTypes), channel: channel, listener: listener)
        var reply = context.channel.allocator.buffer(capacity: 64)
        ReplyWriter.arrayHeader(3, into: &reply)
        ReplyWriter.bulk(Array("subscribe".utf8), into: &reply)
        ReplyWriter.bulk(Array(channel.utf8), into: &reply)
        ReplyWriter.integer(1, into: &reply)
        fill(slot, with: reply)
        pump()
    }

    /// The reply to a request that arrives while subscribed: only UNSUBSCRIBE, PING and QUIT are allowed.
    private func subscribedModeReply(_ request: Request) -> ByteBuffer {
        var reply = ByteBufferAllocator().buffer(capacity: 64)
        switch request {
        case .unsubscribe:
            let channel = subscription?.channel ?? "*"
            if let subscription { hub.unregister(subscription.listener) }
            subscription = nil
            ReplyWriter.arrayHeader(3, into: &reply)
            ReplyWriter.bulk(Array("unsubscribe".utf8), into: &reply)
            ReplyWriter.bulk(Array(channel.utf8), into: &reply)
            ReplyWriter.integer(0, into: &reply)
        case .ping:
            ReplyWriter.arrayHeader(2, into: &reply)
            ReplyWriter.bulk(Array("pong".utf8), into: &reply)
            ReplyWriter.bulk([], into: &reply)
        case .quit:
            ReplyWriter.simpleString("OK", into: &reply)
        default:
            metrics.countError(.badRequest)
            ReplyWriter.error(.badRequest, "only UNSUBSCRIBE, PING and QUIT are allowed while subscribed", into: &reply)
        }
        return reply
    }

    /// Sends the events after the subscription's position while the client takes them, in position order.
    ///
    /// One cursor serves both the catch-up and the live tail, so there is no switch-over to race: new commits
    /// only wake the pump. A client that does not read is not sent more; past the lag limit it is dropped.
    private func pump() {
        trigger.release()
        // A write can change writability, which calls back into pump(): the outer call does the work.
        guard !pumping else { return }
        pumping = true
        defer { pumping = false }
        guard var current = subscription, let context, pending.isEmpty else { return }
        var rounds = 0
        while context.channel.isWritable && rounds < 8 {
            let batch: EventBatch
            do {
                batch = try hub.log.readBatch(after: current.position, limit: 256, eventTypes: current.eventTypes)
            } catch {
                logger.error("live tail read failed", metadata: ["remote": "\(remote)", "error": "\(error)"])
                metrics.countError(.internal)
                var reply = context.channel.allocator.buffer(capacity: 64)
                ReplyWriter.error(.internal, "read failed: \(error)", into: &reply)
                endSubscription(closingWith: reply)
                return
            }
            guard batch.scannedThrough > current.position else {
                current.caughtUp = true
                break
            }
            var buffer = context.channel.allocator.buffer(capacity: batch.events.count * 400)
            var json: [UInt8] = []
            for event in batch.events {
                json.removeAll(keepingCapacity: true)
                event.appendJSON(to: &json)
                ReplyWriter.arrayHeader(3, into: &buffer)
                ReplyWriter.bulk(Array("message".utf8), into: &buffer)
                ReplyWriter.bulk(Array(event.eventType.utf8), into: &buffer)
                ReplyWriter.bulk(json, into: &buffer)
            }
            current.position = batch.scannedThrough
            subscription = current
            // Flushed round by round: with TLS, only flushed bytes count against the channel's writability.
            if buffer.readableBytes > 0 { flushOutgoing(context, then: buffer, promise: nil) }
            rounds += 1
            guard subscription != nil else { return }  // ended while writing
        }
        subscription = current
        flushOutgoing(context)
        if rounds == 8 && context.channel.isWritable {
            // More may be waiting: go on after other connections have had their turn.
            if trigger.claim() {
                let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
                context.eventLoop.execute { loopBound.value.pump() }
            }
        } else if !context.channel.isWritable {
            let head = hub.log.headPosition
            let lag = head > current.position ? head - current.position : 0
            if current.caughtUp && lag > maximumSubscriberLag {
                metrics.closedLagging.increment()
                metrics.countError(Self.lagging)
                logger.notice(
                    "live subscriber dropped: it stopped reading",
                    metadata: ["remote": "\(remote)", "behind": "\(lag)", "limit": "\(maximumSubscriberLag)"])
                var reply = context.channel.allocator.buffer(capacity: 128)
                ReplyWriter.error(
                    Self.lagging,
                    "subscriber is \(lag) events behind (limit \(maximumSubscriberLag)); resume with SUBSCRIBE FROM "
                        + "\(current.position + 1)", into: &reply)
                endSubscription(closingWith: reply)
            }
        }
    }

    private func endSubscription(closingWith reply: ByteBuffer) {
        guard let context else { return }
        if let subscription { hub.unregister(subscription.listener) }
        subscription = nil
        close(context, after: reply)
    }

    /// Puts a reply in its slot and writes every reply that is now ready, in order.
    private func fill(_ slot: Int, with reply: ByteBuffer) {
        guard let context, slot >= firstPendingSlot, slot - firstPendingSlot < pending.count else { return }
        pending[pending.index(pending.startIndex, offsetBy: slot - firstPendingSlot)] = reply
        var wrote = false
        while let first = pending.first, let ready = first {
            pending.removeFirst()
            let written = firstPendingSlot
            firstPendingSlot += 1
            wrote = true
            if written == closeAfterSlot {
                pending.removeAll()
                finish(context, with: ready)
                return
            }
            unflushedBytes += ready.readableBytes
            gather(ready, context)
        }
        if wrote && (!insideReadLoop || unflushedBytes >= Self.flushThreshold) {
            flushOutgoing(context)
        }
        if subscription != nil && pending.isEmpty { pump() }
        updateReading()
    }

    // MARK: - Graceful shutdown

    /// Takes no new request from here on; once every request already taken is answered, ends the output
    /// (``close(_:after:)``). A second `Drain`, or one after `QUIT`, changes nothing: the last slot is set already.
    private func beginDraining(_ context: ChannelHandlerContext) {
        guard !closing else { return }
        let nothing = context.channel.allocator.buffer(capacity: 0)
        if subscription != nil {
            // A live tail owes nothing more than what it has sent.
            pending.removeAll()
            endSubscription(closingWith: nothing)
        } else if pending.isEmpty {
            close(context, after: nothing)
        } else if closeAfterSlot == nil {
            closeAfterSlot = nextSlot - 1
        }
    }

    /// Stops reading while too many requests wait or the client is not taking its replies; resumes after.
    private func updateReading() {
        guard let context, !closing else { return }
        let shouldPause = pending.count >= maximumPipelinedRequests || !channelIsWritable
        if shouldPause != readingPaused {
            readingPaused = shouldPause
            intake.isPaused = shouldPause
            context.channel.setOption(ChannelOptions.autoRead, value: !shouldPause).whenComplete { _ in }
            if !shouldPause { context.read() }
        }
    }
}

/// Takes replies completed away from a connection's event loop (group commits, tasks) to it: they wait in an inbox,
/// and the first one into an empty inbox has the connection drained by its event loop's ``EventLoopReplies``.
final class ReplyRouter: Sendable {
    let inbox = CompletionInbox()
    private let handler: NIOLoopBound<ConnectionHandler>
    private let loop: EventLoopReplies

    init(handler: NIOLoopBound<ConnectionHandler>, loop: EventLoopReplies) {
        self.handler = handler
        self.loop = loop
    }

    /// Adds a reply to the inbox, and has the connection drained when the inbox was empty.
    func deliver(_ item: CompletionInbox.Item) {
        guard inbox.post(item) else { return }
        loop.schedule(self)
    }

    /// Hands the inbox's replies to the connection; on its event loop.
    func drain() {
        handler.value.drainInbox()
    }

    /// Has the connection flushed once its event loop has handled every channel ready in this turn; on its loop.
    func flushAtEndOfTurn() {
        loop.flushes.value.add(handler)
    }
}

/// The connections of one event loop that have replies waiting: the first of them schedules one task on the loop
/// that drains them all.
///
/// A group commit completes requests of many connections at once; scheduling a task per connection woke the event
/// loop (a write to its eventfd) once per connection, on the writer's thread, between its commits.
final class EventLoopReplies: Sendable {
    private let ready = Mutex<[ReplyRouter]>([])
    private let eventLoop: any EventLoop
    /// The connections of this loop that wrote replies in the current turn.
    let flushes: NIOLoopBound<EndOfTurnFlushes>

    /// Made on `eventLoop`.
    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.flushes = NIOLoopBound(EndOfTurnFlushes(eventLoop: eventLoop), eventLoop: eventLoop)
    }

    /// Queues `router` for draining, and schedules the drain when none was queued.
    func schedule(_ router: ReplyRouter) {
        let first = ready.withLock { ready in
            ready.append(router)
            return ready.count == 1
        }
        guard first else { return }
        // On the log's writer, at the end of its pass over the commit's completions: the routers of every
        // connection of this loop that the commit completed are in `ready` by then.
        CompletionPass.atEnd { [self] in
            eventLoop.execute { [self] in
                let routers = ready.withLock { ready in
                    defer { ready.removeAll(keepingCapacity: true) }
                    return ready
                }
                for router in routers { router.drain() }
            }
        }
    }
}

/// The connections of one event loop whose replies wait for the end of the loop's turn, to be flushed together.
///
/// The loop handles every channel that epoll found ready, then runs its tasks: a flush queued as a task therefore
/// comes after the reads of every ready connection, as Redis writes its replies before it sleeps. The client's
/// process then takes a burst of replies at one wake-up instead of being woken once per connection.
final class EndOfTurnFlushes {
    private var due: [NIOLoopBound<ConnectionHandler>] = []
    /// The array ``flushAll()`` walks, swapped with ``due`` so that neither is reallocated turn after turn.
    private var flushing: [NIOLoopBound<ConnectionHandler>] = []
    private let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Queues `handler` for the flush at the end of this turn; the first one schedules it.
    func add(_ handler: NIOLoopBound<ConnectionHandler>) {
        if due.isEmpty {
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            eventLoop.execute { bound.value.flushAll() }
        }
        due.append(handler)
    }

    private func flushAll() {
        swap(&due, &flushing)
        for handler in flushing { handler.value.flushAtEndOfTurn() }
        flushing.removeAll(keepingCapacity: true)
    }
}

/// One ``EventLoopReplies`` per event loop, for all of a server's connections.
final class ReplyDispatch: Sendable {
    private let loops = Mutex<[ObjectIdentifier: EventLoopReplies]>([:])

    init() {}

    /// The hand-off of `eventLoop`, made on first use.
    func replies(for eventLoop: any EventLoop) -> EventLoopReplies {
        loops.withLock { loops in
            let key = ObjectIdentifier(eventLoop as AnyObject)
            if let existing = loops[key] { return existing }
            let made = EventLoopReplies(eventLoop: eventLoop)
            loops[key] = made
            return made
        }
    }
}
