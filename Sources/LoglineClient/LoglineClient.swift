import LoglineCore
import NIOCore
import NIOPosix
import Synchronization

/// A connection to a Logline server.
///
/// Safe to share between tasks: calls from many tasks are pipelined on one connection, and each gets its own
/// reply, in order. Errors are ``LoglineClientError``; a server error keeps its ``ErrorCode``.
///
/// ```swift
/// let client = try await LoglineClient.connect(port: 7480, token: token)  // token: when the server requires one
/// // Over TLS: let client = try await LoglineClient.connect(port: 7480, tls: ClientTLS(caFile: "ca.pem"))
/// let receipt = try await client.append(
///     to: try StreamName(aggregateType: "order", aggregateID: "o1"), eventType: "order-created",
///     data: #"{"customer_id":"c1"}"#)
/// let events = try await client.read(receipt.stream)
/// try await client.close()
/// ```
public final class LoglineClient: Sendable {
    /// The server's address, as given to ``connect(host:port:token:tls:eventLoopGroup:)``.
    ///
    /// Subscriptions and consumers open connections of their own to the same address.
    public let host: String
    /// The server's port, as given to ``connect(host:port:token:tls:eventLoopGroup:)``.
    public let port: Int
    /// The TLS settings, as given to ``connect(host:port:token:tls:eventLoopGroup:)``; `nil`: plain TCP.
    ///
    /// The connections of subscriptions and consumers use the same settings.
    public var tls: ClientTLS? { tlsContext?.settings }
    /// The TLS context every connection of this client uses, or `nil` for plain TCP.
    let tlsContext: ClientTLSContext?
    /// The NIO threads this client's connections use.
    let eventLoopGroup: any EventLoopGroup
    /// The connection that carries the pipelined requests.
    let channel: any Channel
    /// The token of the last successful ``auth(token:)``: subscriptions and consumers authenticate their own
    /// connections with it.
    private let authenticatedToken = Mutex<String?>(nil)

    /// The token this client authenticated with, if any.
    var token: String? { authenticatedToken.withLock { $0 } }

    private init(
        channel: any Channel, host: String, port: Int, tlsContext: ClientTLSContext?, eventLoopGroup: any EventLoopGroup
    ) {
        self.channel = channel
        self.host = host
        self.port = port
        self.tlsContext = tlsContext
        self.eventLoopGroup = eventLoopGroup
    }

    /// Connects to a server (over TLS when given ``ClientTLS`` settings), and authenticates when given a token.
    /// - Parameters:
    ///   - host: The server's address (127.0.0.1 by default).
    ///   - port: The server's port (7480 by default).
    ///   - token: The access token, for a server started with `--auth-token-file`: sent with `AUTH` before
    ///     anything else, and used again for the connections of subscriptions and consumers. `nil` (the
    ///     default): no authentication.
    ///   - tls: TLS settings, for a server started with `--tls-cert` and `--tls-key`: the connection, and those of
    ///     subscriptions and consumers, speak TLS 1.2 or later and check the server's certificate. `nil` (the
    ///     default): plain TCP.
    ///   - eventLoopGroup: The NIO threads to use (the shared singleton by default).
    /// - Returns: A connected (and authenticated) client; with TLS, once the handshake is done.
    /// - Throws: ``LoglineClientError/connectionFailed(_:)``, also when the CA file cannot be read or the TLS
    ///   handshake fails (an untrusted certificate, a wrong name, a server without TLS); a refused token is
    ///   ``LoglineClientError/server(code:message:)`` with the code ``ErrorCode/noAuth`` (``ErrorCode/badRequest``
    ///   from a server without tokens), and the connection is closed.
    public static func connect(
        host: String = "127.0.0.1", port: Int = 7480, token: String? = nil, tls: ClientTLS? = nil,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws(LoglineClientError) -> LoglineClient {
        let tlsContext = try tls.map { (tls) throws(LoglineClientError) in try ClientTLSContext(tls, host: host) }
        return try await connect(
            host: host, port: port, token: token, tlsContext: tlsContext, eventLoopGroup: eventLoopGroup)
    }

    /// Connects with a TLS context already built: the connections of subscriptions and consumers share their
    /// client's.
    static func connect(
        host: String, port: Int, token: String?, tlsContext: ClientTLSContext?, eventLoopGroup: any EventLoopGroup
    ) async throws(LoglineClientError) -> LoglineClient {
        let client = try await open(host: host, port: port, tlsContext: tlsContext, eventLoopGroup: eventLoopGroup)
        if let token {
            do {
                try await client.auth(token: token)
            } catch {
                await client.close()
                throw error
            }
        }
        return client
    }

    private static func open(
        host: String, port: Int, tlsContext: ClientTLSContext?, eventLoopGroup: any EventLoopGroup
    ) async throws(LoglineClientError) -> LoglineClient {
        let connected: (channel: any Channel, handshake: EventLoopFuture<Void>?)
        do {
            connected = try await ClientBootstrap(group: eventLoopGroup)
                .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(5))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handshake = try tlsContext?.addHandlers(to: channel)
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPReplyDecoder()))
                        try channel.pipeline.syncOperations.addHandler(ClientHandler())
                        return (channel, handshake)
                    }
                }
        } catch {
            throw .connectionFailed("\(host):\(port): \(error)")
        }
        try await awaitHandshake(connected.handshake, of: connected.channel, host: host, port: port)
        return LoglineClient(
            channel: connected.channel, host: host, port: port, tlsContext: tlsContext, eventLoopGroup: eventLoopGroup)
    }

    /// Waits for the TLS handshake of a new connection, if it has one; closes the connection when it fails.
    static func awaitHandshake(
        _ handshake: EventLoopFuture<Void>?, of channel: any Channel, host: String, port: Int
    ) async throws(LoglineClientError) {
        guard let handshake else { return }
        do {
            try await handshake.get()
        } catch {
            try? await channel.close()
            throw .connectionFailed("\(host):\(port): TLS handshake failed: \(error)")
        }
    }

    /// `AUTH <token>`: authenticates the connection with an access token. Subscriptions and consumers started
    /// from this client afterwards authenticate with it too.
    /// - Parameter token: The access token.
    /// - Throws: ``LoglineClientError``: a refused token has the code ``ErrorCode/noAuth`` (after 10 refusals
    ///   the server closes the connection).
    public func auth(token: String) async throws(LoglineClientError) {
        let reply = try await send(["AUTH", token])
        guard reply.text == "OK" else { throw .unexpectedReply("\(reply)") }
        authenticatedToken.withLock { $0 = token }
    }

    /// Closes the connection.
    public func close() async {
        try? await channel.close()
    }

    /// Sends any request as a list of arguments and returns the raw reply; error replies are returned, not thrown.
    /// - Parameter arguments: The verb and its arguments.
    /// - Returns: The reply.
    /// - Throws: ``LoglineClientError`` when the connection fails.
    public func sendRaw(_ arguments: [[UInt8]]) async throws(LoglineClientError) -> RESPValue {
        try await send(.arguments(arguments))
    }

    /// Sends one line in the inline form, as typed into netcat, and returns the raw reply.
    /// - Parameter line: The request, without a line ending; the last JSON argument may contain spaces.
    /// - Returns: The reply; error replies are returned, not thrown.
    /// - Throws: ``LoglineClientError`` when the connection fails.
    public func sendInline(_ line: String) async throws(LoglineClientError) -> RESPValue {
        guard !line.contains("\n"), !line.contains("\r") else {
            throw .invalidRequest("an inline request is one line")
        }
        return try await send(.inline(line))
    }

    private func send(_ request: ClientRequest) async throws(LoglineClientError) -> RESPValue {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        let written = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush((request: request, promise: promise), promise: written)
        // A write to a closed channel never reaches the handler: fail the reply instead of waiting forever.
        // (A promise completes once; a later failure of an already answered request is ignored.)
        written.futureResult.whenFailure { _ in promise.fail(LoglineClientError.connectionClosed) }
        do {
            return try await promise.futureResult.get()
        } catch let error as LoglineClientError {
            throw error
        } catch {
            throw .connectionFailed("\(error)")
        }
    }

    /// Sends a request and throws the server's error reply as ``LoglineClientError/server(code:message:)``.
    /// - Parameter arguments: The verb and its arguments.
    /// - Returns: The reply, which is not an error.
    /// - Throws: ``LoglineClientError``.
    public func send(_ arguments: [String]) async throws(LoglineClientError) -> RESPValue {
        let reply = try await sendRaw(arguments.map { Array($0.utf8) })
        if case .error(let text) = reply { throw LoglineClientError(errorReply: text) }
        return reply
    }

    /// `PING`.
    /// - Returns: `PONG`.
    /// - Throws: ``LoglineClientError``.
    public func ping() async throws(LoglineClientError) -> String {
        let reply = try await send(["PING"])
        guard let text = reply.text else { throw .unexpectedReply("\(reply)") }
        return text
    }

    /// `APPEND`: appends one event and returns once it is durable.
    /// - Parameters:
    ///   - stream: The stream.
    ///   - eventType: The event's type.
    ///   - data: The event's JSON body.
    ///   - expectedVersion: The stream's expected version (``ExpectedVersion/any`` by default).
    ///   - eventID: The event's id, for idempotent retries; generated by the server when `nil`.
    ///   - metadata: A JSON object of metadata.
    /// - Returns: Where the event landed.
    /// - Throws: ``LoglineClientError``; a conflict has the code ``ErrorCode/conflict``.
    public func append(
        to stream: StreamName, eventType: String, data: String, expectedVersion: ExpectedVersion = .any,
        eventID: EventID? = nil, metadata: String? = nil
    ) async throws(LoglineClientError) -> AppendReceipt {
        var arguments = ["APPEND", stream.aggregateType, stream.aggregateID, eventType]
        if expectedVersion != .any { arguments += ["EXPECT", expectedVersion.description] }
        if let eventID { arguments += ["ID", eventID.description] }
        if let metadata { arguments += ["META", metadata] }
        arguments.append(data)
        let json = try await bulkJSON(arguments)
        return try AppendReceipt(stream: stream, json: json)
    }

    /// `APPENDMANY`: appends several events to one stream atomically, under one expectation.
    /// - Parameters:
    ///   - stream: The stream.
    ///   - events: The events, in order.
    ///   - expectedVersion: The stream's expected version.
    /// - Returns: Where each event landed.
    /// - Throws: ``LoglineClientError``.
    public func appendMany(
        to stream: StreamName, events: [NewEvent], expectedVersion: ExpectedVersion = .any
    ) async throws(LoglineClientError) -> [AppendReceipt] {
        var body = [UInt8]()
        body.append(UInt8(ascii: "["))
        for (index, event) in events.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body.append(contentsOf: #"{"event_type":"#.utf8)
            JSONWriter.appendString(event.eventType, to: &body)
            body.append(contentsOf: #","data":"#.utf8)
            body.append(contentsOf: event.data.utf8)
            if let id = event.eventID {
                body.append(contentsOf: #","event_id":""#.utf8)
                id.appendText(to: &body)
                body.append(UInt8(ascii: "\""))
            }
            if let metadata = event.metadata {
                body.append(contentsOf: #","metadata":"#.utf8)
                body.append(contentsOf: metadata.utf8)
            }
            body.append(UInt8(ascii: "}"))
        }
        body.append(UInt8(ascii: "]"))
        var arguments = ["APPENDMANY", stream.aggregateType, stream.aggregateID]
        if expectedVersion != .any { arguments += ["EXPECT", expectedVersion.description] }
        arguments.append(String(decoding: body, as: UTF8.self))
        let json = try await bulkJSON(arguments)
        let members = try JSONFields(json)
        guard let list = members.raw("events") else { throw .unexpectedReply(json) }
        let elements = list.withUnsafeBufferPointer { JSONSlicer.arrayElements($0) } ?? []
        // `duplicate` is said once, for the whole request (all of its events were stored before, or none).
        let duplicate = members.raw("duplicate") == Array("true".utf8)
        return try elements.map { (range) throws(LoglineClientError) in
            var receipt = try AppendReceipt(stream: stream, json: String(decoding: list[range], as: UTF8.self))
            receipt.duplicate = duplicate
            return receipt
        }
    }

    /// `READ`: a stream's events, oldest first.
    /// - Parameters:
    ///   - stream: The stream.
    ///   - fromVersion: The first version to return.
    ///   - count: The most events (the server's default when `nil`).
    /// - Returns: The events; empty for an unknown stream.
    /// - Throws: ``LoglineClientError``.
    public func read(
        _ stream: StreamName, fromVersion: StreamVersion = 1, count: Int? = nil
    ) async throws(LoglineClientError) -> [RecordedEvent] {
        var arguments = ["READ", stream.aggregateType, stream.aggregateID]
        if fromVersion > 1 { arguments += ["FROM", String(fromVersion)] }
        if let count { arguments += ["COUNT", String(count)] }
        return try await envelopes(arguments)
    }

    /// `READALL`: the log in position order.
    /// - Parameters:
    ///   - fromPosition: The first position to return.
    ///   - count: The most events (the server's default when `nil`).
    ///   - eventTypes: Only these types; all when empty.
    /// - Returns: The events.
    /// - Throws: ``LoglineClientError``.
    public func readAll(
        fromPosition: LogPosition = 1, count: Int? = nil, eventTypes: [String] = []
    ) async throws(LoglineClientError) -> [RecordedEvent] {
        var arguments = ["READALL"]
        if fromPosition > 1 { arguments += ["FROM", String(fromPosition)] }
        if let count { arguments += ["COUNT", String(count)] }
        for type in eventTypes { arguments += ["TYPE", type] }
        return try await envelopes(arguments)
    }

    /// `INFO`.
    /// - Returns: The server's figures.
    /// - Throws: ``LoglineClientError``.
    public func info() async throws(LoglineClientError) -> ServerInfo {
        try ServerInfo(json: try await bulkJSON(["INFO"]))
    }

    // MARK: - Helpers

    func bulkJSON(_ arguments: [String]) async throws(LoglineClientError) -> String {
        let reply = try await send(arguments)
        guard case .bulkString(let bytes?) = reply else { throw .unexpectedReply("\(reply)") }
        return String(decoding: bytes, as: UTF8.self)
    }

    func envelopes(_ arguments: [String]) async throws(LoglineClientError) -> [RecordedEvent] {
        let reply = try await send(arguments)
        guard case .array(let items?) = reply else { throw .unexpectedReply("\(reply)") }
        return try items.map { (item) throws(LoglineClientError) in
            guard case .bulkString(let bytes?) = item else { throw .unexpectedReply("\(item)") }
            return try RecordedEvent(envelopeJSON: bytes)
        }
    }
}
