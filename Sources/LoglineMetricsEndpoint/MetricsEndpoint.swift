import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import Synchronization

/// A small HTTP server that answers `GET /metrics` with a Prometheus registry in the text exposition format 0.0.4
/// (`logline serve --metrics-port`).
///
/// It serves nothing else: any other path is `404`, any other method `405`. HTTP/1.1 keep-alive is honoured, so
/// a scraper may reuse its connection. A `Service`: on graceful shutdown it stops listening and closes the open
/// connections.
public final class MetricsEndpoint: Service, Sendable {
    /// The `Content-Type` of the text exposition format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private let registry: PrometheusCollectorRegistry
    private let host: String
    private let port: Int
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let onServerRunning: @Sendable (SocketAddress) async -> Void
    private let connections = Mutex<[ObjectIdentifier: any Channel]>([:])

    /// Creates an endpoint; it listens once `run()` is called.
    /// - Parameters:
    ///   - registry: The registry whose metrics are served.
    ///   - host: The address to listen on (the main listener's, in `logline serve`).
    ///   - port: The port to listen on; 0 picks a free one, reported through `onServerRunning` and the log.
    ///   - eventLoopGroup: The NIO threads (the shared singleton by default).
    ///   - logger: Where the bound address and failures are logged.
    ///   - onServerRunning: Called with the bound address once the endpoint listens.
    public init(
        registry: PrometheusCollectorRegistry, host: String, port: Int,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger,
        onServerRunning: @escaping @Sendable (SocketAddress) async -> Void = { _ in }
    ) {
        self.registry = registry
        self.host = host
        self.port = port
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.onServerRunning = onServerRunning
    }

    /// Listens until graceful shutdown or cancellation.
    /// - Throws: An error when the address cannot be bound.
    public func run() async throws {
        let registry = self.registry
        let logger = self.logger
        let serverChannel = try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                self.track(channel)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        MetricsHTTPHandler(registry: registry, logger: logger))
                }
            }
            .bind(host: host, port: port)
            .get()
        let address = serverChannel.localAddress!
        logger.info("metrics endpoint listening", metadata: ["address": "\(address)", "path": "/metrics"])
        await onServerRunning(address)

        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await serverChannel.closeFuture.get()
            } onGracefulShutdown: {
                serverChannel.close(promise: nil)
            }
        } onCancel: {
            serverChannel.close(promise: nil)
        }
        let open = connections.withLock { Array($0.values) }
        for channel in open { try? await channel.close() }
        logger.info("metrics endpoint stopped", metadata: ["address": "\(address)"])
    }

    private func track(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        connections.withLock { $0[key] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            _ = self.connections.withLock { $0.removeValue(forKey: key) }
        }
    }
}

/// Answers each request of one HTTP connection: `GET` or `HEAD /metrics` with the registry, anything else with
/// an error status.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private let logger: Logger
    private var request: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry, logger: Logger) {
        self.registry = registry
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break  // A scrape has no body; whatever comes is ignored.
        case .end:
            guard let head = request else { return }
            request = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        var headers = HTTPHeaders()
        let status: HTTPResponseStatus
        var body: ByteBuffer
        if path != "/metrics" {
            status = .notFound
            body = context.channel.allocator.buffer(string: "not found; metrics are at /metrics\n")
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        } else if head.method != .GET && head.method != .HEAD {
            status = .methodNotAllowed
            body = context.channel.allocator.buffer(string: "only GET and HEAD\n")
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
            headers.add(name: "Allow", value: "GET, HEAD")
        } else {
            status = .ok
            let bytes = registry.emitToBuffer()
            body = context.channel.allocator.buffer(capacity: bytes.count)
            body.writeBytes(bytes)
            headers.add(name: "Content-Type", value: MetricsEndpoint.contentType)
        }
        headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        let keepAlive = head.isKeepAlive
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
            promise: nil)
        if head.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            written.whenComplete { _ in boundContext.value.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("metrics connection error; closing", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
