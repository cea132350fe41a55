import Logging
import LoglineConsumerGroups
import LoglineCore
import LoglineLog
import LoglineProjectionHost
import LoglineProtocol
import Metrics
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The Logline server: one TCP socket speaking the line protocol (RESP and inline), over an ``EventLog``; over TLS
/// when ``Configuration/tls`` is set.
///
/// A `Service`: run it in a `ServiceGroup`, which handles SIGTERM and SIGINT. On graceful shutdown it stops
/// accepting connections and drains the open ones: each stops reading new requests, answers every request it has
/// already taken (an append in the group commit in flight is answered once it is on disk; a blocked `FETCH`
/// returns at once), ends its output after the last reply, and closes once the client has read it, or when
/// ``Configuration/shutdownGracePeriod`` runs out. The owner of the log closes the log afterwards.
public final class LoglineServer: Service, Sendable {
    /// How the server listens and what it accepts.
    public struct Configuration: Sendable {
        /// The address to listen on.
        public var host: String = "127.0.0.1"
        /// The port to listen on; 0 picks a free one (reported through `onServerRunning`).
        public var port: Int = 7480
        /// The largest request, in bytes; a larger one is answered `-TOOLARGE` and the connection closes.
        public var maximumRequestBytes: Int = 1 << 20
        /// The most requests of one connection in flight before the server stops reading from it.
        public var maximumPipelinedRequests: Int = 1024
        /// How many events a live subscriber that does not read may fall behind before it is dropped.
        public var maximumSubscriberLag: UInt64 = 100_000
        /// The most open connections; one more is answered `-UNAVAILABLE` and closed.
        public var maximumConnections: Int = 10_000
        /// How long a connection may send nothing while it has nothing in flight (no subscription, no blocked
        /// `FETCH`, no pending reply) before it is answered `-TIMEOUT` and closed; `nil` for never.
        public var idleTimeout: Duration? = .seconds(300)
        /// The tokens clients must present with `AUTH` before any request but `AUTH`, `PING`, `QUIT` and the Redis
        /// housekeeping verbs; empty (the default): no authentication, every connection may read and write.
        public var tokens: [AccessToken] = []
        /// Whether the server may listen on an address other than loopback without ``tokens``
        /// (`logline serve --insecure`); see ``validate()``.
        public var insecure = false
        /// TLS for the port (`logline serve --tls-cert CERT.pem --tls-key KEY.pem`): when set, every connection
        /// speaks TLS 1.2 or later and plain TCP is refused; `nil` (the default): plain TCP. See ``ServerTLS``.
        ///
        /// TLS does not replace ``tokens``: it keeps them, and everything else on the wire, secret, while the
        /// tokens say who may read and write. The loopback rule of ``validate()`` is about tokens only.
        public var tls: ServerTLS?
        /// How long a graceful shutdown waits for connections to finish what they took in and for their clients
        /// to read the last replies, before it closes them anyway.
        public var shutdownGracePeriod: Duration = .seconds(10)

        /// The defaults: 127.0.0.1:7480, 1 MiB requests, no authentication, no TLS.
        public init() {}
    }

    /// The server's version, as `INFO` reports it.
    public static var version: String { RequestExecutor.version }

    private let configuration: Configuration
    private let executor: RequestExecutor
    private let hub: SubscriptionHub
    private let groups: ConsumerGroups?
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let onServerRunning: @Sendable (SocketAddress) async -> Void
    private let connections = Mutex<[ObjectIdentifier: any Channel]>([:])

    /// Creates a server.
    /// - Parameters:
    ///   - configuration: Address and limits.
    ///   - log: The event log it serves.
    ///   - host: The projection host whose views and commands it serves, if any.
    ///   - groups: The consumer groups it serves, if any.
    ///   - eventLoopGroup: The NIO threads (the shared singleton by default).
    ///   - logger: Where notable things are logged.
    ///   - metricsFactory: Where the server's metrics go (connections, requests by verb, error replies, reads, live
    ///     tails, authentication and TLS failures); the process's `MetricsSystem` by default.
    ///   - onServerRunning: Called with the bound address once the server listens.
    public init(
        configuration: Configuration, log: any EventLog, host: ProjectionHost? = nil, groups: ConsumerGroups? = nil,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        onServerRunning: @escaping @Sendable (SocketAddress) async -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.executor = RequestExecutor(
            log: log, host: host, groups: groups, logger: logger, metrics: ServerMetrics(factory: metricsFactory))
        self.hub = SubscriptionHub(log: log)
        self.groups = groups
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.onServerRunning = onServerRunning
    }

    /// Listens until graceful shutdown or cancellation.
    /// - Throws: ``ConfigurationError`` when the configuration is refused (see ``Configuration/validate()``);
    ///   an error when the address cannot be bound.
    public func run() async throws {
        try configuration.validate()
        let tokens = TokenTable(configuration.tokens)
        let decoder = RequestFrameDecoder(maximumRequestBytes: configuration.maximumRequestBytes)
        let parser = RequestParser(maximumDataBytes: configuration.maximumRequestBytes)
        let executor = self.executor
        let hub = self.hub
        let maximumLag = configuration.maximumSubscriberLag
        let maximumPipelined = configuration.maximumPipelinedRequests
        let tls = configuration.tls
        let logger = self.logger
        let metrics = executor.metrics
        let limits = ConnectionLimits(
            maximumConnections: configuration.maximumConnections, idleTimeout: configuration.idleTimeout)
        let replies = ReplyDispatch()
        let serverChannel = try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { [self] channel in
                self.track(channel)
                return channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        // First in the pipeline: everything after it sees plaintext.
                        try channel.pipeline.syncOperations.addHandler(tls.makeHandler())
                        try channel.pipeline.syncOperations.addHandler(TLSErrorFilter(logger: logger, metrics: metrics))
                    }
                    if let idle = limits.idleTimeout {
                        try channel.pipeline.syncOperations.addHandler(
                            IdleStateHandler(readTimeout: TimeAmount.nanoseconds(idle.nanoseconds)))
                    }
                    let intake = RequestIntake()
                    let connection = ConnectionHandler(
                        executor: executor, parser: parser, maximumPipelinedRequests: maximumPipelined, hub: hub,
                        maximumSubscriberLag: maximumLag, tokens: tokens, limits: limits, intake: intake,
                        metrics: metrics, logger: logger, replies: replies)
                    try channel.pipeline.syncOperations.addHandler(
                        RequestDecoderHandler(decoder: decoder, intake: intake, receiver: connection))
                    try channel.pipeline.syncOperations.addHandler(connection)
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        let address = serverChannel.localAddress!
        logger.info(
            "listening",
            metadata: [
                "address": "\(address)", "tls": "\(tls != nil ? "on" : "off")",
                "max_connections": "\(configuration.maximumConnections)",
            ])
        if tokens.isEnabled {
            let readOnly = configuration.tokens.filter { $0.role == .readOnly }.count
            logger.info(
                "authentication required",
                metadata: [
                    "read-write tokens": "\(configuration.tokens.count - readOnly)", "read-only tokens": "\(readOnly)",
                ])
        }
        await onServerRunning(address)

        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await serverChannel.closeFuture.get()
            } onGracefulShutdown: { [self] in
                let open = connections.withLock { $0.count }
                logger.info(
                    "shutting down: no new connections; closing the open ones", metadata: ["open": "\(open)"])
                serverChannel.close(promise: nil)
            }
        } onCancel: {
            serverChannel.close(promise: nil)
        }
        if !Task.isCancelled { await drainConnections() }
        // What is still open: closed together. With TLS, each close waits (up to NIOSSL's shutdown timeout) for
        // the client's close_notify.
        let open = connections.withLock { Array($0.values) }
        await withTaskGroup(of: Void.self) { group in
            for channel in open { group.addTask { try? await channel.close() } }
        }
        logger.info("stopped listening", metadata: ["address": "\(address)"])
    }

    /// Asks every connection to finish what it has taken in, and waits until they have closed or the grace
    /// period is over.
    private func drainConnections() async {
        groups?.stopBlocking()
        let open = connections.withLock { Array($0.values) }
        guard !open.isEmpty else { return }
        logger.info("draining connections", metadata: ["connections": "\(open.count)"])
        for channel in open { channel.pipeline.fireUserInboundEventTriggered(ConnectionHandler.Drain()) }
        let eventLoop = eventLoopGroup.next()
        let finished = eventLoop.makePromise(of: Bool.self)
        let settled = FirstCaller()
        let grace = TimeAmount.nanoseconds(configuration.shutdownGracePeriod.nanoseconds)
        let timer = eventLoop.scheduleTask(in: grace) {
            guard settled.claim() else { return }
            finished.succeed(false)
        }
        EventLoopFuture.andAllComplete(open.map(\.closeFuture), on: eventLoop).whenComplete { _ in
            guard settled.claim() else { return }
            timer.cancel()
            finished.succeed(true)
        }
        if !((try? await finished.futureResult.get()) ?? false) {
            let left = connections.withLock { $0.count }
            logger.notice(
                "shutdown grace period over; closing the connections still open", metadata: ["connections": "\(left)"])
        }
    }

    private func track(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        connections.withLock { $0[key] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            _ = self.connections.withLock { $0.removeValue(forKey: key) }
        }
    }
}

/// Lets exactly one of several racing callbacks act: the first to call ``claim()`` gets `true`.
private final class FirstCaller: Sendable {
    private let claimed = Atomic<Bool>(false)

    func claim() -> Bool { !claimed.exchange(true, ordering: .acquiringAndReleasing) }
}
