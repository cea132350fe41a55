import LoglineCore
import LoglineProtocol
import NIOCore

/// The UTF-8 bytes of a string.
func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A buffer holding exactly `text`'s UTF-8 bytes.
func byteBuffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

/// A buffer holding exactly `raw`.
func byteBuffer(_ raw: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: raw) }

/// Encodes a RESP array of bulk strings by hand, independently of the code under test.
func respRequest(_ arguments: [[UInt8]]) -> [UInt8] {
    var out = bytes("*\(arguments.count)\r\n")
    for argument in arguments {
        out += bytes("$\(argument.count)\r\n")
        out += argument
        out += bytes("\r\n")
    }
    return out
}

/// Encodes a RESP array of bulk strings given as text.
func respRequest(_ arguments: String...) -> [UInt8] {
    respRequest(arguments.map(bytes))
}

/// A RESP frame whose arguments are the given texts.
func respFrame(_ arguments: String...) -> RequestFrame {
    .resp(arguments.map(byteBuffer))
}

/// A RESP frame whose arguments are the given byte strings.
func respFrame(_ arguments: [[UInt8]]) -> RequestFrame {
    .resp(arguments.map(byteBuffer))
}

/// An inline frame holding `line` (without its line ending).
func inlineFrame(_ line: String) -> RequestFrame {
    .inline(byteBuffer(line))
}

/// A simple outcome, easy to compare: the frame, or the error's code and whether it closes the connection.
enum Decoded: Hashable, CustomStringConvertible {
    case frame(RequestFrame)
    case error(code: String, closes: Bool)

    var description: String {
        switch self {
        case .frame(.resp(let arguments)):
            return "resp(\(arguments.map { String(decoding: $0.readableBytesView, as: UTF8.self).debugDescription }))"
        case .frame(.inline(let line)):
            return "inline(\(String(decoding: line.readableBytesView, as: UTF8.self).debugDescription))"
        case .error(let code, let closes):
            return "error(\(code), closes: \(closes))"
        }
    }
}

/// Calls `decode` until it needs more data (or a connection-closing error), collecting what it found.
/// - Returns: The outcomes, in order; stops after an error that closes the connection, since a server would.
func decodeAvailable(
    _ decoder: RequestFrameDecoder, _ input: inout ByteBuffer, limit: Int = 100_000
) -> [Decoded] {
    var results: [Decoded] = []
    for _ in 0..<limit {
        switch decoder.decode(&input) {
        case .needMoreData:
            return results
        case .frame(let frame):
            results.append(.frame(frame))
        case .error(let error):
            results.append(.error(code: error.code.rawValue, closes: error.closesConnection))
            if error.closesConnection { return results }
        }
    }
    results.append(.error(code: "NO PROGRESS", closes: true))
    return results
}

/// Decodes `input` delivered all at once.
func decodeAllAtOnce(_ decoder: RequestFrameDecoder, _ input: [UInt8]) -> (results: [Decoded], left: Int) {
    var accumulated = byteBuffer(input)
    let results = decodeAvailable(decoder, &accumulated)
    return (results, accumulated.readableBytes)
}

/// Decodes `input` delivered `chunk` bytes at a time into one accumulating buffer, decoding after each delivery.
func decodeInChunks(
    _ decoder: RequestFrameDecoder, _ input: [UInt8], chunk: Int
) -> (results: [Decoded], left: Int) {
    var accumulated = ByteBufferAllocator().buffer(capacity: 16)
    var results: [Decoded] = []
    var start = 0
    while start < input.count {
        let end = min(start + chunk, input.count)
        accumulated.writeBytes(input[start..<end])
        start = end
        let found = decodeAvailable(decoder, &accumulated)
        results += found
        if case .error(_, true) = found.last { break }
    }
    return (results, accumulated.readableBytes)
}

/// The error a parse throws, or `nil` when it succeeds.
func parseError(_ frame: RequestFrame, _ parser: RequestParser = RequestParser()) -> RequestError? {
    do {
        _ = try parser.parse(frame)
        return nil
    } catch {
        return error
    }
}

/// A small deterministic generator (SplitMix64), so that random tests repeat exactly.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
