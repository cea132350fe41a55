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
/// cannot make the server hold more than ``maximumRequestBytes`` for one request. With a ``Progress`` kept
/// between calls (``decode(_:resuming:)``), each call goes on where the last one stopped, so a request costs time
/// in proportion to its size however many reads it arrives in.
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
        /// Not enough bytes yet; nothing of the request was consumed (blank lines and empty arrays before it may
        /// have been).
        case needMoreData
    }

    /// How far the decoder got into a request that has not arrived whole.
    ///
    /// Without it, each call frames the request again from its start: a request of many arguments, or a long
    /// line, arriving in many small reads would cost time quadratic in its size, which a client could use to make
    /// the server spin. Offsets are relative to the start of the request (the buffer's reader index), so the
    /// caller may compact the buffer between calls, as long as it consumes nothing and only appends.
    public struct Progress: Hashable, Sendable {
        /// The argument count of a RESP request whose header has been read; 0 before.
        fileprivate var count = 0
        /// Where the next bulk header starts.
        fileprivate var offset = 0
        /// The arguments framed so far.
        fileprivate var arguments: [Range<Int>] = []
        /// How far the search for the end of the current line has looked without finding it.
        fileprivate var searched = 0

        /// Nothing framed yet.
        public init() {}

        /// Back to nothing framed, keeping the memory of a short argument list for the next request.
        fileprivate mutating func reset() {
            count = 0
            offset = 0
            if arguments.capacity > 64 {
                arguments = []  // not kept for every later request of the connection
            } else {
                arguments.removeAll(keepingCapacity: true)
            }
            searched = 0
        }
    }

    /// Takes the next request from the front of `buffer`, framing it from its start.
    /// - Parameter buffer: The bytes received so far; consumed as frames are taken.
    /// - Returns: A frame, an error, or a request for more data.
    public func decode(_ buffer: inout ByteBuffer) -> Outcome {
        var progress = Progress()
        return decode(&buffer, resuming: &progress)
    }

    /// Takes the next request from the front of `buffer`, going on from where the last call stopped.
    /// - Parameters:
    ///   - buffer: The bytes received so far; consumed as frames are taken.
    ///   - progress: What the last call on this buffer left (a fresh ``Progress`` at first); updated.
    /// - Returns: A frame, an error, or a request for more data.
    public func decode(_ buffer: inout ByteBuffer, resuming progress: inout Progress) -> Outcome {
        // A loop, not recursion: a client may send a megabyte of `*0\r\n`, and each must not cost a stack frame.
        while true {
            // Skip blank lines between requests, as Redis does. (Within a request, the first byte is never one.)
            while let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
                first == UInt8(ascii: "\r") || first == UInt8(ascii: "\n")
            {
                buffer.moveReaderIndex(forwardBy: 1)
            }
            guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return .needMoreData }
            let outcome: Outcome?
            if first == UInt8(ascii: "*") {
                outcome = decodeRESP(&buffer, &progress)
            } else {
                outcome = decodeInline(&buffer, &progress)
            }
            switch outcome {
            case .some(.needMoreData):
                return .needMoreData
            case .some(let outcome):
                progress.reset()
                return outcome
            case .none:
                // An empty array was skipped: look at what follows.
                progress.reset()
            }
        }
    }

    private func tooLarge(_ what: String) -> Outcome {
        .error(
            FramingError(
                code: .tooLarge, message: "\(what) exceeds the limit of \(maximumRequestBytes) bytes",
                closesConnection: true))
    }

    /// Finds the end of a line: the index just past the first `\n` at or after `from`, or `nil` when none has
    /// arrived. Bytes searched on an earlier call (``Progress/searched``) are not searched again.
    private func lineEnd(in buffer: ByteBuffer, from: Int, _ progress: inout Progress) -> Int? {
        let start = buffer.readerIndex
        return buffer.withUnsafeReadableBytes { bytes in
            Self.lineEnd(in: bytes, from: from - start, &progress).map { $0 + start }
        }
    }

    private func decodeInline(_ buffer: inout ByteBuffer, _ progress: inout Progress) -> Outcome {
        guard let end = lineEnd(in: buffer, from: buffer.readerIndex, &progress) else {
            return buffer.readableBytes > maximumRequestBytes ? tooLarge("request") : .needMoreData
        }
        let lineLength = end - 1 - buffer.readerIndex
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

    /// The end of a line in `bytes` (the readable bytes of the buffer): the offset just past the first `\n` at or
    /// after `from`, or `nil` when none has arrived. Bytes searched on an earlier call (``Progress/searched``) are
    /// not searched again. Offsets are relative to the start of `bytes`.
    private static func lineEnd(in bytes: UnsafeRawBufferPointer, from: Int, _ progress: inout Progress) -> Int? {
        let begin = max(from, progress.searched)
        guard begin < bytes.count else { return nil }
        guard let newline = bytes[begin...].firstIndex(of: UInt8(ascii: "\n")) else {
            progress.searched = bytes.count
            return nil
        }
        return newline + 1
    }

    /// Reads a header line of `bytes` (the buffer's readable bytes) at `offset`, relative to their start.
    private static func header(
        _ bytes: UnsafeRawBufferPointer, at offset: Int, marker: UInt8, name: StaticString, _ progress: inout Progress
    ) -> HeaderResult {
        // A header is at most 20 digits plus marker and sign; do not scan further than that for its end.
        let limit = min(bytes.count, offset + 24)
        var index = offset
        while index < limit, bytes[index] != UInt8(ascii: "\n") { index += 1 }
        guard index < limit else {
            if bytes.count >= offset + 24 {
                // No line end where one must be: find the next one to resynchronise.
                if let end = lineEnd(in: bytes, from: offset, &progress) {
                    return .bad("invalid \(name)", lineEnd: end)
                }
            }
            return .incomplete
        }
        let lineEnd = index + 1
        guard bytes[offset] == marker, index - 1 > offset + 1, bytes[index - 1] == UInt8(ascii: "\r") else {
            return .bad("expected '\(Character(UnicodeScalar(marker)))' \(name)", lineEnd: lineEnd)
        }
        var value = 0
        var negative = false
        var position = offset + 1
        if bytes[position] == UInt8(ascii: "-") {
            negative = true
            position += 1
        }
        guard position < index - 1 else { return .bad("invalid \(name)", lineEnd: lineEnd) }
        while position < index - 1 {
            let byte = bytes[position]
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

    /// What a scan of a RESP array found, with offsets relative to the start of the request.
    private enum RESPScan {
        /// Every argument has arrived; the request ends at `end`. The ranges are in ``Progress/arguments``.
        case complete(end: Int)
        /// An empty array (`*0`, `*-1`) that ends at `end`: skipped.
        case empty(end: Int)
        case needMoreData
        case tooLarge
        case tooManyArguments(Int)
        /// A bad request, to drop through `lineEnd`.
        case bad(String, lineEnd: Int)
    }

    /// Decodes a RESP array at the front of `buffer`, from where `progress` says the last call stopped; `nil` when
    /// it was an empty array (`*0`, `*-1`), skipped.
    private func decodeRESP(_ buffer: inout ByteBuffer, _ progress: inout Progress) -> Outcome? {
        let start = buffer.readerIndex
        // One pass over the raw bytes: reading them through the buffer byte by byte paid for an exclusivity check
        // of its storage on every byte.
        let scan = buffer.withUnsafeReadableBytes { bytes in
            Self.scanRESP(
                bytes, maximumRequestBytes: maximumRequestBytes, maximumArguments: maximumArguments, &progress)
        }
        switch scan {
        case .complete(let end):
            let arguments = progress.arguments.map { buffer.getSlice(at: start + $0.lowerBound, length: $0.count)! }
            buffer.moveReaderIndex(to: start + end)
            return .frame(.resp(arguments))
        case .empty(let end):
            buffer.moveReaderIndex(to: start + end)
            return nil
        case .needMoreData:
            return .needMoreData
        case .tooLarge:
            return tooLarge("request")
        case .tooManyArguments(let count):
            return .error(
                FramingError(
                    code: .tooLarge, message: "request has \(count) arguments, the limit is \(maximumArguments)",
                    closesConnection: true))
        case .bad(let message, let lineEnd):
            return badFrame(message, from: start, consumingTo: start + lineEnd, &buffer)
        }
    }

    /// Frames a RESP array over the readable bytes, going on from `progress`.
    private static func scanRESP(
        _ bytes: UnsafeRawBufferPointer, maximumRequestBytes: Int, maximumArguments: Int, _ progress: inout Progress
    ) -> RESPScan {
        var offset: Int
        if progress.count > 0 {
            offset = progress.offset
        } else {
            switch header(bytes, at: 0, marker: UInt8(ascii: "*"), name: "multibulk length", &progress) {
            case .incomplete:
                return bytes.count > maximumRequestBytes ? .tooLarge : .needMoreData
            case .bad(let message, let lineEnd):
                return .bad(message, lineEnd: lineEnd)
            case .value(let value, let next):
                // `*0` and `*-1` are empty requests: skip them, as Redis does.
                if value <= 0 { return .empty(end: next) }
                if value > maximumArguments { return .tooManyArguments(value) }
                progress.reset()
                progress.count = value
                progress.arguments.reserveCapacity(value)
                offset = next
            }
        }
        while progress.arguments.count < progress.count {
            // Where the next call goes on if this argument has not arrived whole.
            progress.offset = offset
            let length: Int
            switch header(bytes, at: offset, marker: UInt8(ascii: "$"), name: "bulk length", &progress) {
            case .incomplete:
                return bytes.count > maximumRequestBytes ? .tooLarge : .needMoreData
            case .bad(let message, let lineEnd):
                return .bad(message, lineEnd: lineEnd)
            case .value(let value, let next):
                length = value
                offset = next
            }
            guard length >= 0 else { return .bad("invalid bulk length", lineEnd: offset) }
            // Compared without adding to `length` first: a header may say up to about Int.max, and the sum would
            // overflow and trap.
            if length > maximumRequestBytes - 2 - offset { return .tooLarge }
            guard bytes.count >= offset + length + 2 else { return .needMoreData }
            guard bytes[offset + length] == UInt8(ascii: "\r"), bytes[offset + length + 1] == UInt8(ascii: "\n") else {
                // The bulk is not followed by CRLF: drop through the next line end and resynchronise.
                // Wait for that line end, so the outcome never depends on how the bytes were split into reads.
                guard let end = lineEnd(in: bytes, from: offset + length, &progress) else {
                    return bytes.count > maximumRequestBytes ? .tooLarge : .needMoreData
                }
                return .bad("bulk string not terminated by CRLF", lineEnd: end)
            }
            progress.arguments.append(offset..<(offset + length))
            progress.searched = 0
            offset += length + 2
        }
        return .complete(end: offset)
    }
}
