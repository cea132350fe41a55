import NIOCore

/// A request as the client sends it.
enum ClientRequest {
    /// A RESP array of bulk strings.
    case arguments([[UInt8]])
    /// One inline line, as a person would type it.
    case inline(String)
}

/// Matches replies to requests in order: the connection is pipelined, so many requests may be in flight.
final class ClientHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = (request: ClientRequest, promise: EventLoopPromise<RESPValue>)
    typealias OutboundOut = ByteBuffer

    private var waiting = CircularBuffer<EventLoopPromise<RESPValue>>()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        var buffer = context.channel.allocator.buffer(capacity: 64)
        switch request.request {
        case .arguments(let arguments):
            RESPRequestEncoder.encode(arguments, into: &buffer)
        case .inline(let line):
            buffer.writeString(line)
            buffer.writeStaticString("\r\n")
        }
        waiting.append(request.promise)
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        guard let promise = waiting.popFirst() else { return }
        promise.succeed(value)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(LoglineClientError.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failAll(LoglineClientError.connectionFailed("\(error)"))
        context.close(promise: nil)
    }

    private func failAll(_ error: Error) {
        while let promise = waiting.popFirst() { promise.fail(error) }
    }
}
