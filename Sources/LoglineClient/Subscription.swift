import LoglineCore
import NIOCore
import NIOPosix
import Synchronization

/// Where a subscription or a consumer group starts in the log.
public enum SubscriptionStart: Hashable, Sendable {
    /// After the log's current head: only events appended from now on.
    case now
    /// At this position: every event at it and after (the catch-up), then new events as they are appended.
    case position(LogPosition)
}

extension LoglineClient {
    /// `SUBSCRIBE`: the log's events, pushed by the server in position order with no gaps and no duplicates,
    /// first the catch-up from `from`, then new events as they are committed.
    ///
    /// A subscription has a connection of its own to the same server (a subscribed connection speaks a different
    /// protocol), so this client stays usable. The events come at the pace they are read: while the loop over
    /// the subscription is busy, the client stops reading from the socket, so memory stays bounded. A subscriber
    /// that falls too far behind is dropped by the server: the loop then throws an error whose
    /// ``LoglineClientError/isLagging`` is true, and ``EventSubscription/resumePoint`` says where to subscribe
    /// again.
    ///
    /// ```swift
    /// let subscription = try await client.subscribe(from: .position(1), eventTypes: ["order-approved"])
    /// for try await event in subscription {
    ///     print(event.position, event.eventType)
    /// }
    /// ```
    /// - Parameters:
    ///   - from: Where to start (``SubscriptionStart/now`` by default).
    ///   - eventTypes: Only these types; all when empty.
    /// - Returns: The subscription, confirmed by the server.
    /// - Throws: ``LoglineClientError``: the connection failed, or the server refused (``ErrorCode/badRequest``).
    public func subscribe(
        from: SubscriptionStart = .now, eventTypes: [String] = []
    ) async throws(LoglineClientError) -> EventSubscription {
        var arguments = ["SUBSCRIBE"]
        if case .position(let position) = from { arguments += ["FROM", String(position)] }
        for type in eventTypes { arguments += ["TYPE", type] }

        let token = self.token
        let tlsContext = self.tlsContext
        let connected:
            (
                channel: any Channel, pushes: SubscriptionHandler.Pushes, reply: EventLoopFuture<RESPValue>,
                handshake: EventLoopFuture<Void>?
            )
        do {
            connected = try await ClientBootstrap(group: eventLoopGroup)
                .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(5))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let (handler, pushes, reply) = SubscriptionHandler.make(
                            eventLoop: channel.eventLoop, preliminaryReplies: token == nil ? 0 : 1)
                        let handshake = try tlsContext?.addHandlers(to: channel)
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPReplyDecoder()))
                        try channel.pipeline.syncOperations.addHandler(handler)
                        return (channel, pushes, reply, handshake)
                    }
                }
        } catch {
            throw .connectionFailed("\(host):\(port): \(error)")
        }
        let channel = connected.channel
        try await LoglineClient.awaitHandshake(connected.handshake, of: channel, host: host, port: port)
        var request = channel.allocator.buffer(capacity: 64)
        if let token { RESPRequestEncoder.encode([Array("AUTH".utf8), Array(token.utf8)], into: &request) }
        RESPRequestEncoder.encode(arguments.map { Array($0.utf8) }, into: &request)
        channel.writeAndFlush(request, promise: nil)
        do {
            let channelName = try EventSubscription.confirmedChannel(try await connected.reply.get())
            return EventSubscription(
                channel: channel, pushes: connected.pushes, channelName: channelName, start: from,
                eventTypes: eventTypes)
        } catch {
            channel.close(promise: nil)
            throw error as? LoglineClientError ?? .connectionFailed("\(error)")
        }
    }
}

/// The events of a ``LoglineClient/subscribe(from:eventTypes:)``, in position order, as they come.
///
/// Iterate it once, from one task. The loop ends when the subscription is cancelled or its connection closes,
/// and throws ``LoglineClientError`` when the server drops the subscriber (``LoglineClientError/isLagging``) or
/// the connection fails. Leaving the loop, or dropping the subscription, closes its connection.
public final class EventSubscription: AsyncSequence, Sendable {
    /// The events.
    public typealias Element = RecordedEvent
    /// What iterating throws.
    public typealias Failure = LoglineClientError

    /// The server's name for the subscription: `*` for all types, else the types joined by commas.
    public let channelName: String
    /// Where the subscription started.
    public let start: SubscriptionStart
    /// The event types asked for; empty for all.
    public let eventTypes: [String]

    private let channel: any Channel
    private let pushes: SubscriptionHandler.Pushes
    private let state = Mutex(State())

    private struct State {
        var lastPosition: LogPosition?
        var iterated = false
    }

    init(
        channel: any Channel, pushes: SubscriptionHandler.Pushes, channelName: String, start: SubscriptionStart,
        eventTypes: [String]
    ) {
        self.channel = channel
        self.pushes = pushes
        self.channelName = channelName
        self.start = start
        self.eventTypes = eventTypes
    }

    deinit {
        channel.close(promise: nil)
    }

    /// The position of the last event the loop has received, or `nil` before the first.
    public var lastPosition: LogPosition? {
        state.withLock { $0.lastPosition }
    }

    /// Where a new subscription should start to go on exactly after this one: after ``lastPosition``, or where
    /// this one started when it has received nothing.
    public var resumePoint: SubscriptionStart {
        lastPosition.map { .position($0 + 1) } ?? start
    }

    /// Ends the subscription: sends `UNSUBSCRIBE` and closes its connection. The loop over it then ends.
    public func cancel() async {
        var request = channel.allocator.buffer(capacity: 24)
        RESPRequestEncoder.encode([Array("UNSUBSCRIBE".utf8)], into: &request)
        // Not awaited: a server that does not read must not hold up the close.
        channel.writeAndFlush(request, promise: nil)
        try? await channel.close()
    }

    /// Creates the iterator; a subscription can be iterated once.
    /// - Returns: The iterator.
    public func makeAsyncIterator() -> Iterator {
        let first = state.withLock { state in
            defer { state.iterated = true }
            return !state.iterated
        }
        guard first else {
            return Iterator(subscription: self, inner: nil, refusal: .invalidRequest("a subscription is iterated once"))
        }
        return Iterator(subscription: self, inner: pushes.makeAsyncIterator(), refusal: nil)
    }

    /// Reads a subscription's events one by one.
    public struct Iterator: AsyncIteratorProtocol {
        /// The events.
        public typealias Element = RecordedEvent
        /// What `next()` throws.
        public typealias Failure = LoglineClientError

        private let subscription: EventSubscription
        private var inner: SubscriptionHandler.Pushes.AsyncIterator?
        private var refusal: LoglineClientError?

        fileprivate init(
            subscription: EventSubscription, inner: SubscriptionHandler.Pushes.AsyncIterator?,
            refusal: LoglineClientError?
        ) {
            self.subscription = subscription
            self.inner = inner
            self.refusal = refusal
        }

        /// The next event.
        /// - Returns: The event, or `nil` once the subscription has ended.
        /// - Throws: ``LoglineClientError``: the server's `-LAGGING` (or other error), or a failed connection.
        public mutating func next() async throws(LoglineClientError) -> RecordedEvent? {
            if let refusal {
                self.refusal = nil
                throw refusal
            }
            while inner != nil {
                let value: RESPValue?
                do {
                    value = try await inner!.next()
                } catch {
                    finish()
                    if error is CancellationError || Task.isCancelled { return nil }
                    throw error as? LoglineClientError ?? .connectionFailed("\(error)")
                }
                guard let value else {
                    finish()
                    return nil
                }
                let push: SubscriptionPush
                do {
                    push = try SubscriptionPush(value)
                } catch {
                    finish()
                    throw error
                }
                switch push {
                case .event(let event):
                    if subscription.record(event.position) { return event }
                case .unsubscribed:
                    finish()
                    return nil
                case .other:
                    continue
                }
            }
            return nil
        }

        private mutating func finish() {
            inner = nil
            subscription.channel.close(promise: nil)
        }
    }

    /// Notes an event's position; `false` when it is not after the last one (a duplicate, dropped).
    private func record(_ position: LogPosition) -> Bool {
        state.withLock { state in
            if let last = state.lastPosition, position <= last { return false }
            state.lastPosition = position
            return true
        }
    }

    /// Checks the server's reply to `SUBSCRIBE`: `["subscribe", <channel>, 1]`.
    /// - Returns: The channel's name.
    static func confirmedChannel(_ reply: RESPValue) throws(LoglineClientError) -> String {
        switch reply {
        case .error(let text):
            throw LoglineClientError(errorReply: text)
        case .array(let items?) where items.count >= 2 && items[0].text?.lowercased() == "subscribe":
            guard let name = items[1].text else { throw .unexpectedReply("\(reply)") }
            return name
        default:
            throw .unexpectedReply("\(reply)")
        }
    }
}

/// What a subscribed connection pushes.
enum SubscriptionPush: Hashable {
    /// `["message", <event_type>, <envelope>]`.
    case event(RecordedEvent)
    /// `["unsubscribe", <channel>, 0]`: the server has ended the subscription.
    case unsubscribed
    /// Anything else that is well formed, such as `["pong", ""]`: skipped.
    case other

    /// Reads one pushed value.
    /// - Throws: The server's error reply (for example `-LAGGING`) as ``LoglineClientError/server(code:message:)``,
    ///   or ``LoglineClientError/unexpectedReply(_:)``.
    init(_ value: RESPValue) throws(LoglineClientError) {
        switch value {
        case .error(let text):
            throw LoglineClientError(errorReply: text)
        case .array(let items?) where !items.isEmpty:
            switch items[0].text?.lowercased() {
            case "message":
                guard items.count == 3, case .bulkString(let envelope?) = items[2] else {
                    throw .unexpectedReply("\(value)")
                }
                self = .event(try RecordedEvent(envelopeJSON: envelope))
            case "unsubscribe":
                self = .unsubscribed
            case .some:
                self = .other
            case nil:
                throw .unexpectedReply("\(value)")
            }
        default:
            throw .unexpectedReply("\(value)")
        }
    }
}

/// Reads a subscribed connection: hands the first reply (the answer to `SUBSCRIBE`) to a promise, and feeds
/// the pushed replies after it to an async sequence, reading from the socket only while that sequence wants more.
final class SubscriptionHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The sequence of pushed replies.
    typealias Pushes = NIOThrowingAsyncSequenceProducer<
        RESPValue, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, Delegate
    >

    /// The most pushed replies buffered while the consumer is busy; past this, reading from the socket stops.
    static let highWatermark = 32
    /// Reading resumes once the consumer has taken the buffer down to this.
    static let lowWatermark = 8

    private enum Reading {
        case on
        case paused
        case pausedWithReadPending
    }

    private var reply: EventLoopPromise<RESPValue>?
    /// Replies to requests sent before `SUBSCRIBE` (`AUTH`) still to come: an error among them fails `reply`.
    private var preliminaryReplies: Int
    private var source: Pushes.Source?
    private var context: ChannelHandlerContext?
    private var buffer: [RESPValue] = []
    private var reading = Reading.on

    private init(reply: EventLoopPromise<RESPValue>, preliminaryReplies: Int) {
        self.reply = reply
        self.preliminaryReplies = preliminaryReplies
    }

    /// Creates a handler, the sequence it feeds and the future of the reply to `SUBSCRIBE`, which comes after
    /// `preliminaryReplies` replies to earlier requests (`AUTH`); on the channel's event loop.
    static func make(
        eventLoop: any EventLoop, preliminaryReplies: Int = 0
    ) -> (SubscriptionHandler, Pushes, EventLoopFuture<RESPValue>) {
        let reply = eventLoop.makePromise(of: RESPValue.self)
        let handler = SubscriptionHandler(reply: reply, preliminaryReplies: preliminaryReplies)
        let made = Pushes.makeSequence(
            backPressureStrategy: .init(lowWatermark: lowWatermark, highWatermark: highWatermark),
            finishOnDeinit: false, delegate: Delegate(handler: NIOLoopBound(handler, eventLoop: eventLoop)))
        handler.source = made.source
        return (handler, made.sequence, reply.futureResult)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish(nil)
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        if preliminaryReplies > 0 {
            preliminaryReplies -= 1
            if case .error(let text) = value {
                reply?.fail(LoglineClientError(errorReply: text))
                reply = nil
            }
            return
        }
        if let reply {
            self.reply = nil
            reply.succeed(value)
        } else {
            buffer.append(value)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        deliver()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        finish(error)
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        switch reading {
        case .on: context.read()
        case .paused: reading = .pausedWithReadPending
        case .pausedWithReadPending: break
        }
    }

    private func deliver() {
        guard !buffer.isEmpty else { return }
        defer { buffer.removeAll(keepingCapacity: true) }
        guard let source else { return }
        switch source.yield(contentsOf: buffer) {
        case .produceMore, .dropped: break
        case .stopProducing: if reading == .on { reading = .paused }
        }
    }

    private func finish(_ error: (any Error)?) {
        reply?.fail(error.map { LoglineClientError.connectionFailed("\($0)") } ?? .connectionClosed)
        reply = nil
        deliver()
        if let error { source?.finish(error) } else { source?.finish() }
        source = nil
    }

    private func produceMore() {
        switch reading {
        case .on: break
        case .paused: reading = .on
        case .pausedWithReadPending:
            reading = .on
            context?.read()
        }
    }

    private func terminated() {
        // The consumer has gone: nothing will read the connection again.
        source = nil
        buffer.removeAll()
        context?.close(promise: nil)
    }

    /// Passes the sequence's demand to the handler, on its event loop.
    struct Delegate: NIOAsyncSequenceProducerDelegate {
        let handler: NIOLoopBound<SubscriptionHandler>

        func produceMore() {
            let handler = self.handler
            if handler.eventLoop.inEventLoop {
                handler.value.produceMore()
            } else {
                handler.eventLoop.execute { handler.value.produceMore() }
            }
        }

        func didTerminate() {
            let handler = self.handler
            if handler.eventLoop.inEventLoop {
                handler.value.terminated()
            } else {
                handler.eventLoop.execute { handler.value.terminated() }
            }
        }
    }
}
