import Foundation
import Logging
import LoglineCore
import LoglineLog
import LoglineProtocol
import Metrics
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import LoglineServer

#if canImport(Glibc)
    import Glibc
#endif

/// A log whose appends wait until the test settles them, on the test's own thread: a stand-in for a slow disk.
/// Everything else goes to a real log.
final class HeldAppendsLog: EventLog {
    private let inner: LMDBEventLog
    private let held = Mutex<[@Sendable (Result<AppendResult, AppendError>) -> Void]>([])
    private let counts = Mutex<(appends: Int, mostHeld: Int)>((0, 0))

    init(inner: LMDBEventLog) {
        self.inner = inner
    }

    /// Appends received so far.
    var appendsReceived: Int { counts.withLock { $0.appends } }
    /// The most appends ever waiting at once.
    var mostHeld: Int { counts.withLock { $0.mostHeld } }
    /// Appends waiting now.
    var heldCount: Int { held.withLock { $0.count } }

    /// Answers every waiting append, the n-th one ever received with `-CONFLICT … at version n`, so that the
    /// replies show their order.
    func settleAll() {
        let waiting = held.withLock { held in
            defer { held.removeAll() }
            return held
        }
        let first = appendsReceived - waiting.count + 1
        for (offset, completion) in waiting.enumerated() {
            let stream = StreamName(uncheckedType: "order", id: "o1")
            completion(
                .failure(.wrongExpectedVersion(stream: stream, expected: .noStream, actual: UInt64(first + offset))))
        }
    }

    func append(_ request: AppendRequest, completion: @escaping @Sendable (Result<AppendResult, AppendError>) -> Void) {
        let count = held.withLock { held in
            held.append(completion)
            return held.count
        }
        counts.withLock { $0 = ($0.appends + 1, max($0.mostHeld, count)) }
    }

    func readStream(_ stream: StreamName, from version: StreamVersion, limit: Int) throws -> [RecordedEvent] {
        try inner.readStream(stream, from: version, limit: limit)
    }
    func readAll(from position: LogPosition, limit: Int, eventTypes: Set<String>) throws -> [RecordedEvent] {
        try inner.readAll(from: position, limit: limit, eventTypes: eventTypes)
    }
    func streamVersion(_ stream: StreamName) throws -> StreamVersion { try inner.streamVersion(stream) }
    var headPosition: LogPosition { inner.headPosition }
    func info() throws -> LogInfo { try inner.info() }
    func onCommit(_ listener: @escaping @Sendable (LogPosition) -> Void) { inner.onCommit(listener) }
    func commit(_ unit: CommitUnit, completion: @escaping @Sendable (Result<[AppendResult], CommitError>) -> Void) {
        inner.commit(unit, completion: completion)
    }
    func readBatch(after position: LogPosition, limit: Int, eventTypes: Set<String>) throws -> EventBatch {
        try inner.readBatch(after: position, limit: limit, eventTypes: eventTypes)
    }
    func readState(table: String, key: [UInt8]) throws -> [UInt8]? { try inner.readState(table: table, key: key) }
    func readState(table: String, keys: [[UInt8]]) throws -> [[UInt8]?] {
        try inner.readState(table: table, keys: keys)
    }
    func backup(to destination: String) throws -> LogPosition { try inner.backup(to: destination) }
    func scanState(table: String, prefix: [UInt8], after: [UInt8]?, limit: Int) throws -> [(
        key: [UInt8], value: [UInt8]
    )] {
        try inner.scanState(table: table, prefix: prefix, after: after, limit: limit)
    }
}

/// Stands for a socket whose send buffer is full: holds every write until ``release()``, and drops what it holds
/// when the channel closes, as NIO drops the writes it has not handed to the kernel.
final class HeldWrites: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var held: [(buffer: ByteBuffer, promise: EventLoopPromise<Void>?)] = []
    private var context: ChannelHandlerContext?
    /// How many writes were dropped by a close.
    private(set) var dropped = 0

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        held.append((unwrapOutboundIn(data), promise))
    }

    func flush(context: ChannelHandlerContext) {}

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        dropped += held.count
        for write in held { write.promise?.fail(ChannelError.ioOnClosedChannel) }
        held = []
        context.close(mode: mode, promise: promise)
    }

    /// Lets everything held go on, as the client reading its replies would.
    func release() {
        guard let context else { return }
        let writes = held
        held = []
        for write in writes { context.write(wrapOutboundOut(write.buffer), promise: write.promise) }
        context.flush()
    }
}

/// Backpressure: a connection that sends faster than the server can answer, or than it reads its replies, is not
/// read from, and its requests wait as bytes, not as work or replies. The pipeline of one connection (decoder and
/// connection handler) runs in an `EmbeddedChannel`, one step at a time, on the test's thread.
@Suite("Backpressure", .serialized)
struct BackpressureTests {
    final class Connection {
        let channel = EmbeddedChannel()
        let decoder: RequestDecoderHandler
        let log: any EventLog

        /// - Parameter heldWrites: put first in the pipeline, in the place of the socket, to hold the replies.
        init(log: any EventLog, maximumPipelinedRequests: Int = 1024, heldWrites: HeldWrites? = nil) throws {
            self.log = log
            let intake = RequestIntake()
            var logger = Logger(label: "test")
            logger.logLevel = .warning
            let metrics = ServerMetrics(factory: NOOPMetricsHandler.instance)
            let handler = ConnectionHandler(
                executor: RequestExecutor(log: log, host: nil, groups: nil, logger: logger, metrics: metrics),
                parser: RequestParser(), maximumPipelinedRequests: maximumPipelinedRequests,
                hub: SubscriptionHub(log: log), maximumSubscriberLag: 1000, tokens: TokenTable([]),
                limits: ConnectionLimits(maximumConnections: 10, idleTimeout: nil), intake: intake, metrics: metrics,
                logger: logger)
            // Wired as the server wires them: the decoder hands requests to the handler with a call.
            decoder = RequestDecoderHandler(decoder: RequestFrameDecoder(), intake: intake, receiver: handler)
            if let heldWrites { try channel.pipeline.syncOperations.addHandler(heldWrites) }
            try channel.pipeline.syncOperations.addHandler(decoder)
            try channel.pipeline.syncOperations.addHandler(handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        /// Everything the server has sent since the last call, once the event loop has run the tasks it was
        /// given (replies to a read are flushed at the end of the loop's turn).
        func replies() throws -> String {
            channel.embeddedEventLoop.run()
            var text = ""
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
                text += String(buffer: buffer)
            }
            return text
        }

        /// The client has stopped reading: the replies written so far fill the channel's buffer, and the channel
        /// says so, as a socket channel does when its pending writes pass the high-water mark.
        func clientStopsReading() {
            channel.isWritable = false
            channel.pipeline.fireChannelWritabilityChanged()
        }

        /// The client reads again: the channel's buffer drains and the channel says so.
        func clientReadsAgain() {
            channel.isWritable = true
            channel.pipeline.fireChannelWritabilityChanged()
        }
    }

    static func withLog(_ body: (LMDBEventLog) throws -> Void) throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let log = try LMDBEventLog(directory: directory.path, logger: logger)
        defer { log.close() }
        try body(log)
    }

    @Test("a client that does not read its replies has no request run, all kept as bytes until it reads")
    func notReadingStopsTheServer() throws {
        try Self.withLog { log in
            let connection = try Connection(log: log)
            connection.clientStopsReading()
            let request = "PING\r\n"
            try connection.channel.writeInbound(ByteBuffer(string: String(repeating: request, count: 100)))
            // The handler paused when the channel said it was full: all 100 wait unparsed, costing their bytes only.
            #expect(try connection.replies() == "")
            #expect(connection.decoder.bufferedBytes == 100 * request.utf8.count)
            // More input while paused is kept, not run.
            try connection.channel.writeInbound(ByteBuffer(string: "PING\r\n"))
            #expect(try connection.replies() == "")
            connection.clientReadsAgain()
            #expect(try connection.replies() == String(repeating: "+PONG\r\n", count: 101))
            #expect(connection.decoder.bufferedBytes == 0)
        }
    }

    @Test("large replies: a client that stops reading has no more request run")
    func largeRepliesToAClientThatDoesNotRead() throws {
        try Self.withLog { log in
            // A READALL of these 20 events is a reply of about 40 KB, for 9 bytes of request.
            let data = #"{"padding":""# + String(repeating: "x", count: 2000) + #""}"#
            for index in 0..<20 {
                let stream = try StreamName(aggregateType: "order", aggregateID: "o\(index)")
                _ = try awaitAppend(
                    log, AppendRequest(stream: stream, events: [ProposedEvent(eventType: "e", data: Array(data.utf8))]))
            }
            let connection = try Connection(log: log)
            try connection.channel.writeInbound(ByteBuffer(string: "READALL\r\n"))
            let single = try connection.replies()
            #expect(single.hasPrefix("*20\r\n"))
            connection.clientStopsReading()
            // 1,000 of them would be 40 MB of replies held for a client that does not read; a megabyte of them, 4 GB.
            try connection.channel.writeInbound(ByteBuffer(string: String(repeating: "READALL\r\n", count: 1000)))
            #expect(try connection.replies() == "")
            #expect(connection.decoder.bufferedBytes == 1000 * 9)
            // The embedded channel stays writable from now on: everything runs.
            connection.clientReadsAgain()
            let text = try connection.replies()
            #expect(text == String(repeating: single, count: 1000))
            #expect(connection.decoder.bufferedBytes == 0)
        }
    }

    @Test("at most --max-pipelined requests of one connection are in flight; the rest wait as bytes, in order")
    func pipelinedLimit() throws {
        try Self.withLog { inner in
            let log = HeldAppendsLog(inner: inner)
            let connection = try Connection(log: log, maximumPipelinedRequests: 4)
            try connection.channel.writeInbound(
                ByteBuffer(string: String(repeating: "APPEND order o1 e {}\r\n", count: 20)))
            #expect(log.appendsReceived == 4)
            #expect(try connection.replies() == "")
            var replies = ""
            var rounds = 0
            while log.heldCount > 0 && rounds < 20 {
                rounds += 1
                log.settleAll()
                connection.channel.embeddedEventLoop.run()
                replies += try connection.replies()
            }
            #expect(log.appendsReceived == 20)
            #expect(log.mostHeld == 4)
            let expected = (1...20).map { "-CONFLICT stream order/o1 is at version \($0), expected NONE\r\n" }.joined()
            #expect(replies == expected)
            #expect(connection.decoder.bufferedBytes == 0)
        }
    }

    /// Requests sent just before end of input, and their replies: PINGs leave nothing pending when the input ends;
    /// QUIT has already begun closing.
    static let lastRequests: [(requests: String, replies: String)] = [
        ("PING\r\nPING\r\n", "+PONG\r\n+PONG\r\n"), ("QUIT\r\n", "+OK\r\n"),
    ]

    @Test(
        "end of input: the connection closes only once its last replies are written, not while they wait",
        arguments: lastRequests)
    func endOfInputWaitsForTheRepliesToBeWritten(requests: String, replies: String) throws {
        try Self.withLog { log in
            let socket = HeldWrites()
            let connection = try Connection(log: log, heldWrites: socket)
            try connection.channel.writeInbound(ByteBuffer(string: requests))
            connection.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            connection.channel.embeddedEventLoop.run()
            // The replies wait in the "socket": closing now would drop them.
            #expect(connection.channel.isActive)
            #expect(try connection.replies() == "")
            socket.release()
            #expect(try connection.replies() == replies)
            connection.channel.embeddedEventLoop.run()
            #expect(!connection.channel.isActive)
            #expect(socket.dropped == 0)
        }
    }

    @Test("end of input while paused: every request before it is still answered, then the connection closes")
    func endOfInputWhilePaused() throws {
        try Self.withLog { log in
            let connection = try Connection(log: log)
            connection.clientStopsReading()
            try connection.channel.writeInbound(ByteBuffer(string: String(repeating: "PING\r\n", count: 10) + "PI"))
            connection.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            #expect(try connection.replies() == "")
            #expect(connection.channel.isActive)
            connection.clientReadsAgain()
            // The partial "PI" at the end is dropped: the client went away before finishing it.
            #expect(try connection.replies() == String(repeating: "+PONG\r\n", count: 10))
            #expect(!connection.channel.isActive)
        }
    }
}

/// Appends through the completion API and waits on a semaphore: for setting up data in synchronous tests.
func awaitAppend(_ log: any EventLog, _ request: AppendRequest) throws -> AppendResult {
    let semaphore = DispatchSemaphore(value: 0)
    let result = Mutex<Result<AppendResult, AppendError>?>(nil)
    log.append(request) { outcome in
        result.withLock { $0 = outcome }
        semaphore.signal()
    }
    semaphore.wait()
    return try result.withLock { $0! }.get()
}
