import NIOCore

/// Matches replies to requests in order: the connection is pipelined, so many requests may be in flight.
final class ClientHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = (arguments: [[UInt8]], promise: EventLoopPromise<RESPValue>)
    typealias OutboundOut = ByteBuffer

    private var waiting = CircularBuffer<EventLoopPromise<RESPValue>>()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        var buffer = context.channel.allocator.buffer(capacity: 64)
        RESPRequestEncoder.encode(request.arguments, into: &buffer)
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
