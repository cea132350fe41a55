import LoglineProtocol
import NIOCore

/// Frames requests off the socket with ``RequestFrameDecoder``; nothing else.
///
/// After a framing error that closes the connection (a request over the size limit), every further byte is
/// dropped, so the connection handler only has to send the error and close.
final class RequestDecoderHandler: ByteToMessageDecoder {
    typealias InboundOut = RequestFrameDecoder.Outcome

    private let decoder: RequestFrameDecoder
    private var discarding = false

    init(decoder: RequestFrameDecoder) {
        self.decoder = decoder
    }

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if discarding {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        }
        let outcome = decoder.decode(&buffer)
        switch outcome {
        case .needMoreData:
            return .needMoreData
        case .frame:
            context.fireChannelRead(wrapInboundOut(outcome))
            return .continue
        case .error(let error):
            if error.closesConnection {
                discarding = true
                buffer.moveReaderIndex(to: buffer.writerIndex)
            }
            context.fireChannelRead(wrapInboundOut(outcome))
            return error.closesConnection ? .needMoreData : .continue
        }
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A partial request at end of input is dropped: the client went away before finishing it.
        while try decode(context: context, buffer: &buffer) == .continue {}
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}
