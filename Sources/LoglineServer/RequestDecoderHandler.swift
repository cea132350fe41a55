import LoglineProtocol
import NIOCore

/// Whether a connection takes more requests now; shared by its ``RequestDecoderHandler`` and its
/// ``ConnectionHandler``, both on the channel's event loop.
final class RequestIntake {
    /// Set by the connection handler while too many requests are in flight or the client is not reading its
    /// replies: the decoder then frames nothing more, and the socket is not read.
    var isPaused = false
    /// Set by the connection handler once it is closing: every byte is read and dropped.
    var isDiscarding = false
}

/// What takes the decoder's requests when it sits right before it in the pipeline: the decoder hands each one over
/// with a call, rather than boxed in an `NIOAny` through the pipeline.
protocol RequestFrameReceiver: AnyObject {
    /// Takes one framed request (or a framing error), as `channelRead` would.
    func receive(_ outcome: RequestFrameDecoder.Outcome)
}

/// Frames requests off the socket with ``RequestFrameDecoder``, only as fast as the connection handler takes them.
///
/// A plain `ByteToMessageHandler` would frame every request of a read at once, even after the connection handler
/// has stopped reading: a client that pipelines a megabyte of `READALL` without reading its replies would have the
/// server run them all and hold every reply. This handler frames one request at a time and stops while
/// ``RequestIntake/isPaused``, keeping the rest as bytes; it also holds back `read()` while paused. When the
/// connection handler resumes, its `read()` passes through here: the handler frames what it holds first, and reads
/// the socket again only once it needs more bytes.
///
/// After a framing error that closes the connection (a request over the size limit), every further byte is
/// dropped. End of input (`inputClosed`) is passed on only after every whole request before it has been framed,
/// so that the connection handler answers them all before it closes.
final class RequestDecoderHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = RequestFrameDecoder.Outcome
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let decoder: RequestFrameDecoder
    private let intake: RequestIntake
    /// Whether input is dropped: after a framing error that closes the connection, or while the connection closes.
    private var isDropping: Bool { discarding || intake.isDiscarding }
    /// Bytes received and not yet framed.
    private var buffer: ByteBuffer?
    /// How far the decoder got into the request at the front of ``buffer``.
    private var progress = RequestFrameDecoder.Progress()
    private var discarding = false
    /// Inside ``decodeAvailable(context:)``: a `read()` or a writability change during it must not re-enter.
    private var decoding = false
    /// End of input has arrived and is passed on once what precedes it has been framed.
    private var inputClosed = false
    private var inputClosedPassedOn = false
    /// The next handler, called directly; `nil` passes frames down the pipeline.
    private let receiver: (any RequestFrameReceiver)?

    /// - Parameter receiver: the handler added right after this one, which then takes each request with a call
    ///   (about a twentieth of the event loop's time went to boxing pipelined requests for the pipeline);
    ///   `nil` fires them down the pipeline.
    init(decoder: RequestFrameDecoder, intake: RequestIntake, receiver: (any RequestFrameReceiver)? = nil) {
        self.decoder = decoder
        self.intake = intake
        self.receiver = receiver
    }

    /// The bytes held, not yet framed (for tests).
    var bufferedBytes: Int { buffer?.readableBytes ?? 0 }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !isDropping else {
            buffer = nil
            return
        }
        var incoming = unwrapInboundIn(data)
        if buffer == nil {
            buffer = incoming
        } else {
            buffer!.writeBuffer(&incoming)
        }
        // The channel fires channelReadComplete after its reads: no need to here.
        _ = decodeAvailable(context: context)
    }

    func read(context: ChannelHandlerContext) {
        // The connection handler resumed (or the channel reads on its own): first frame what is held.
        if decodeAvailable(context: context) {
            context.fireChannelReadComplete()
        }
        // While paused, the socket is not read: the connection handler calls read() again when it resumes.
        guard !intake.isPaused || isDropping, !inputClosed else { return }
        context.read()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event as? ChannelEvent == .some(.inputClosed) else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        inputClosed = true
        if decodeAvailable(context: context) {
            context.fireChannelReadComplete()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The connection is gone: nothing held can be answered.
        buffer = nil
        discarding = true
        context.fireChannelInactive()
    }

    /// Frames and passes on requests while the connection handler takes them.
    /// - Returns: Whether anything was passed on.
    private func decodeAvailable(context: ChannelHandlerContext) -> Bool {
        guard !decoding else { return false }
        decoding = true
        defer { decoding = false }
        var passedOn = false
        while !intake.isPaused && !isDropping, var current = buffer {
            buffer = nil  // one owner while decoding, so the buffer is not copied on write
            let outcome = decoder.decode(&current, resuming: &progress)
            buffer = current
            switch outcome {
            case .needMoreData:
                compact()
                passOnEndOfInput(context: context)
                return passedOn
            case .frame:
                passedOn = true
                passOn(outcome, context: context)
            case .error(let error):
                if error.closesConnection {
                    discarding = true
                    buffer = nil
                }
                passedOn = true
                passOn(outcome, context: context)
            }
        }
        if buffer == nil || isDropping { passOnEndOfInput(context: context) }
        return passedOn
    }

    private func passOn(_ outcome: RequestFrameDecoder.Outcome, context: ChannelHandlerContext) {
        if let receiver {
            receiver.receive(outcome)
        } else {
            context.fireChannelRead(wrapInboundOut(outcome))
        }
    }

    /// Passes on end of input once every whole request has been framed; a partial one is dropped.
    private func passOnEndOfInput(context: ChannelHandlerContext) {
        guard inputClosed, !inputClosedPassedOn, !intake.isPaused || isDropping else { return }
        inputClosedPassedOn = true
        buffer = nil
        context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
    }

    /// Gives back the memory of framed bytes.
    private func compact() {
        guard var current = buffer else { return }
        if current.readableBytes == 0 {
            buffer = nil
        } else if current.readerIndex > 4096 && current.readerIndex > current.capacity / 2 {
            buffer = nil
            current.discardReadBytes()
            buffer = current
        }
    }
}
