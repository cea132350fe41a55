import NIOCore

/// A RESP2 reply as the server sent it.
public enum RESPValue: Hashable, Sendable {
    /// `+text`.
    case simpleString(String)
    /// `-CODE message`.
    case error(String)
    /// `:n`.
    case integer(Int64)
    /// `$n` bytes, or nil (`$-1`).
    case bulkString([UInt8]?)
    /// `*n` values, or nil (`*-1`).
    indirect case array([RESPValue]?)

    /// The bulk string as UTF-8 text, if this is one.
    public var text: String? {
        switch self {
        case .bulkString(let bytes?): return String(decoding: bytes, as: UTF8.self)
        case .simpleString(let text): return text
        default: return nil
        }
    }
}

/// Decodes RESP2 replies from a byte stream (the client's half of the protocol).
struct RESPReplyDecoder: ByteToMessageDecoder {
    typealias InboundOut = RESPValue

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        var copy = buffer
        guard let value = try Self.parse(&copy) else { return .needMoreData }
        buffer = copy
        context.fireChannelRead(wrapInboundOut(value))
        return .continue
    }

    /// A reply that does not follow RESP2.
    struct MalformedReply: Error {}

    /// Parses one value from the front of `buffer`, or returns `nil` (consuming nothing useful) when incomplete.
    static func parse(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        guard let line = readLine(&buffer), let marker = line.first else { return nil }
        let rest = String(decoding: line.dropFirst(), as: UTF8.self)
        switch marker {
        case UInt8(ascii: "+"): return .simpleString(rest)
        case UInt8(ascii: "-"): return .error(rest)
        case UInt8(ascii: ":"):
            guard let value = Int64(rest) else { throw MalformedReply() }
            return .integer(value)
        case UInt8(ascii: "$"):
            guard let length = Int(rest) else { throw MalformedReply() }
            if length < 0 { return .bulkString(nil) }
            guard buffer.readableBytes >= length + 2, let bytes = buffer.readBytes(length: length) else { return nil }
            buffer.moveReaderIndex(forwardBy: 2)
            return .bulkString(bytes)
        case UInt8(ascii: "*"):
            guard let count = Int(rest) else { throw MalformedReply() }
            if count < 0 { return .array(nil) }
            var values: [RESPValue] = []
            values.reserveCapacity(count)
            for _ in 0..<count {
                guard let value = try parse(&buffer) else { return nil }
                values.append(value)
            }
            return .array(values)
        default:
            throw MalformedReply()
        }
    }

    private static func readLine(_ buffer: inout ByteBuffer) -> [UInt8]? {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let length = newline - view.startIndex
        var line = buffer.readBytes(length: length + 1)!
        line.removeLast()
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return line
    }
}

/// Encodes requests as RESP arrays of bulk strings.
enum RESPRequestEncoder {
    static func encode(_ arguments: [[UInt8]], into buffer: inout ByteBuffer) {
        buffer.writeString("*\(arguments.count)\r\n")
        for argument in arguments {
            buffer.writeString("$\(argument.count)\r\n")
            buffer.writeBytes(argument)
            buffer.writeStaticString("\r\n")
        }
    }
}
