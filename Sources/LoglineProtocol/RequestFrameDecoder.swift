import LoglineCore
import NIOCore

/// One request as it arrived, before its verb is understood.
public enum RequestFrame: Hashable, Sendable {
    /// A RESP array of bulk strings, as redis-cli and Redis client libraries send.
    case resp([ByteBuffer])
    /// A line typed by a person (netcat), without its line ending.
    case inline(ByteBuffer)
}

/// A request the decoder could not frame.
public struct FramingError: Error, Hashable, Sendable {
    /// The error code for the reply (`BADREQ` or `TOOLARGE`).
    public let code: ErrorCode
    /// What is wrong.
    public let message: String
    /// Whether the connection must close after the reply (the input can no longer be trusted or is too large).
    public let closesConnection: Bool
}

/// Splits a byte stream into request frames: RESP arrays of bulk strings, or inline lines.
///
/// A pure state machine over a `ByteBuffer`: no I/O, so it is tested byte by byte without sockets. It consumes
/// bytes only when a whole frame (or a whole bad line) is there, and checks sizes before buffering, so a client
/// cannot make the server hold more than ``maximumRequestBytes`` for one request.
public struct RequestFrameDecoder: Sendable {
    /// The largest request accepted, in bytes, framing included.
    public let maximumRequestBytes: Int
    /// The most arguments in one RESP request.
    public let maximumArguments: Int

    /// Creates a decoder.
    /// - Parameters:
    ///   - maximumRequestBytes: The size limit of one request (1 MiB by default).
    ///   - maximumArguments: The most arguments of one request.
    public init(maximumRequestBytes: Int = 1 << 20, maximumArguments: Int = 4096) {
        self.maximumRequestBytes = maximumRequestBytes
        self.maximumArguments = maximumArguments
    }

    /// What one call of ``decode(_:)`` found.
    public enum Outcome: Hashable, Sendable {
        /// A whole request; its bytes were consumed.
        case frame(RequestFrame)
        /// A bad request; the bad bytes were consumed (up to the end of the offending line).
        case error(FramingError)
        /// Not enough bytes yet; nothing was consumed.
        case needMoreData
    }

    /// Takes the next request from the front of `buffer`.
    /// - Parameter buffer: The bytes received so far; consumed as frames are taken.
    /// - Returns: A frame, an error, or a request for more data.
    public func decode(_ buffer: inout ByteBuffer) -> Outcome {
        // A loop, not recursion: a client may send a megabyte of `*0\r\n`, and each must not cost a stack frame.
        while true {
            // Skip blank lines between requests, as Redis does.
            while let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
                first == UInt8(ascii: "\r") || first == UInt8(ascii: "\n")
            {
                buffer.moveReaderIndex(forwardBy: 1)
            }
            guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return .needMoreData }
            if first != UInt8(ascii: "*") {
                return decodeInline(&buffer)
            }
            if let outcome = decodeRESP(&buffer) {
                return outcome
            }
            // An empty array was skipped: look at what follows.
        }
    }

    private func tooLarge(_ what: String) -> Outcome {
        .error(
            FramingError(
                code: .tooLarge, message: "\(what) exceeds the limit of \(maximumRequestBytes) bytes",
                closesConnection: true))
    }

    private func decodeInline(_ buffer: inout ByteBuffer) -> Outcome {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
            return buffer.readableBytes > maximumRequestBytes ? tooLarge("request") : .needMoreData
        }
        let lineLength = newline - view.startIndex
        if lineLength + 1 > maximumRequestBytes { return tooLarge("request") }
        var contentLength = lineLength
        if contentLength > 0, buffer.getInteger(at: buffer.readerIndex + contentLength - 1, as: UInt8.self) == 13 {
            contentLength -= 1
        }
        let line = buffer.getSlice(at: buffer.readerIndex, length: contentLength)!
        buffer.moveReaderIndex(forwardBy: lineLength + 1)
        return .frame(.inline(line))
    }

    /// Reads a `\r\n`-terminated header line starting at `offset` whose first byte is `marker`, as an integer.
    private enum HeaderResult {
        case value(Int, next: Int)
        case incomplete
        case bad(String, lineEnd: Int)
    }

    private func header(_ buffer: ByteBuffer, at offset: Int, marker: UInt8, name: String) -> HeaderResult {
        // A header is at most 20 digits plus marker and sign; do not scan further than that for its end.
        let limit = min(buffer.writerIndex, offset + 24)
        var index = offset
        while index < limit, buffer.getInteger(at: index, as: UInt8.self) != UInt8(ascii: "\n") { index += 1 }
        guard index < limit else {
            if buffer.writerIndex >= offset + 24 {
                // No line end where one must be: find the next one to resynchronise.
                let view = buffer.readableBytesView
                let relative = offset - buffer.readerIndex
                if let end = view[(view.startIndex + relative)...].firstIndex(of: UInt8(ascii: "\n")) {
                    return .bad("invalid \(name)", lineEnd: end - view.startIndex + buffer.readerIndex + 1)
                }
                return .incomplete
            }
            return .incomplete
        }
        let lineEnd = index + 1
        guard buffer.getInteger(at: offset, as: UInt8.self) == marker,
            index - 1 > offset + 1, buffer.getInteger(at: index - 1, as: UInt8.self) == UInt8(ascii: "\r")
        else {
            return .bad("expected '\(Character(UnicodeScalar(marker)))' \(name)", lineEnd: lineEnd)
        }
        var value = 0
        var negative = false
        var position = offset + 1
        if buffer.getInteger(at: position, as: UInt8.self) == UInt8(ascii: "-") {
            negative = true
            position += 1
        }
        guard position < index - 1 else { return .bad("invalid \(name)", lineEnd: lineEnd) }
        while position < index - 1 {
            let byte = buffer.getInteger(at: position, as: UInt8.self)!
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), value < Int.max / 10 - 10 else {
                return .bad("invalid \(name)", lineEnd: lineEnd)
            }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
            position += 1
        }
        return .value(negative ? -value : value, next: lineEnd)
    }

    /// Drops a bad request through the end of the offending line, which must lie within the size limit.
    ///
    /// A bad line that ends further than ``maximumRequestBytes`` from the start of the request is `TOOLARGE`,
    /// as it is when its end has not arrived yet: so the outcome is the same however the bytes were split into
    /// reads, and the decoder never holds more than the limit waiting for a line end.
    private func badFrame(
        _ message: String, from start: Int, consumingTo lineEnd: Int, _ buffer: inout ByteBuffer
    ) -> Outcome {
        if lineEnd - start > maximumRequestBytes { return tooLarge("request") }
        buffer.moveReaderIndex(to: lineEnd)
        return .error(FramingError(code: .badRequest, message: "protocol error: \(message)", closesConnection: false))
    }

    /// Decodes a RESP array at the front of `buffer`; `nil` when it was an empty array (`*0`, `*-1`), skipped.
    private func decodeRESP(_ buffer: inout ByteBuffer) -> Outcome? {
        let start = buffer.readerIndex
        let count: Int
        var offset: Int
        switch header(buffer, at: start, marker: UInt8(ascii: "*"), name: "multibulk length") {
        case .incomplete:
            return buffer.readableBytes > maximumRequestBytes ? tooLarge("request") : .needMoreData
        case .bad(let message, let lineEnd):
            return badFrame(message, from: start, consumingTo: lineEnd, &buffer)
        case .value(let value, let next):
            count = value
            offset = next
        }
        if count <= 0 {
            // `*0` and `*-1` are empty requests: skip them, as Redis does.
            buffer.moveReaderIndex(to: offset)
            return nil
        }
        if count > maximumArguments {
            return .error(
                FramingError(
                    code: .tooLarge, message: "request has \(count) arguments, the limit is \(maximumArguments)",
                    closesConnection: true))
        }
        var arguments: [ByteBuffer] = []
        arguments.reserveCapacity(count)
        for _ in 0..<count {
            let length: Int
            switch header(buffer, at: offset, marker: UInt8(ascii: "$"), name: "bulk length") {
            case .incomplete:
                return buffer.writerIndex - start > maximumRequestBytes ? tooLarge("request") : .needMoreData
            case .bad(let message, let lineEnd):
                return badFrame(message, from: start, consumingTo: lineEnd, &buffer)
            case .value(let value, let next):
                length = value
                offset = next
            }
            guard length >= 0 else {
                return badFrame("invalid bulk length", from: start, consumingTo: offset, &buffer)
            }
            if offset + length + 2 - start > maximumRequestBytes { return tooLarge("request") }
            guard buffer.writerIndex >= offset + length + 2 else { return .needMoreData }
            guard buffer.getInteger(at: offset + length, as: UInt8.self) == UInt8(ascii: "\r"),
                buffer.getInteger(at: offset + length + 1, as: UInt8.self) == UInt8(ascii: "\n")
            else {
                // The bulk is not followed by CRLF: drop through the next line end and resynchronise.
                // Wait for that line end, so the outcome never depends on how the bytes were split into reads.
                let view = buffer.readableBytesView
                let relative = offset + length - buffer.readerIndex
                guard let newline = view[(view.startIndex + relative)...].firstIndex(of: UInt8(ascii: "\n")) else {
                    return buffer.readableBytes > maximumRequestBytes ? tooLarge("request") : .needMoreData
                }
                let end = newline - view.startIndex + buffer.readerIndex + 1
                return badFrame("bulk string not terminated by CRLF", from: start, consumingTo: end, &buffer)
            }
            arguments.append(buffer.getSlice(at: offset, length: length)!)
            offset += length + 2
        }
        buffer.moveReaderIndex(to: offset)
        return .frame(.resp(arguments))
    }
}
