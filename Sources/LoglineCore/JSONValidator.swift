/// Checks that bytes are one well-formed JSON text (RFC 8259, strict UTF-8) without building any objects.
///
/// This sits on the append path: the log stores the bytes the client sent, so it only has to know they are
/// valid. It does not allocate, and it runs far faster than decoding with Foundation.
public enum JSONValidator {
    /// The deepest nesting of arrays and objects accepted.
    public static let maximumDepth = 256

    /// Why bytes are not valid JSON, and where.
    public struct Failure: Error, Hashable, Sendable, CustomStringConvertible {
        /// The byte offset of the problem.
        public let offset: Int
        /// What is wrong.
        public let reason: String

        /// Creates a failure.
        /// - Parameters:
        ///   - offset: The byte offset of the problem.
        ///   - reason: What is wrong.
        public init(offset: Int, reason: String) {
            self.offset = offset
            self.reason = reason
        }

        /// `reason at byte N`.
        public var description: String { "\(reason) at byte \(offset)" }
    }

    /// Checks that `bytes` hold exactly one JSON value, with optional white space around it.
    /// - Parameter bytes: The candidate text.
    /// - Returns: `nil` when valid, else the first problem.
    public static func validate(_ bytes: UnsafeBufferPointer<UInt8>) -> Failure? {
        var scanner = Scanner(bytes: bytes)
        do {
            scanner.skipWhitespace()
            try scanner.value(depth: 0)
            scanner.skipWhitespace()
            if scanner.index != bytes.count {
                return Failure(offset: scanner.index, reason: "unexpected data after the JSON value")
            }
            return nil
        } catch {
            return error
        }
    }

    /// Checks that `bytes` hold exactly one JSON value.
    /// - Parameter bytes: The candidate text.
    /// - Returns: `nil` when valid, else the first problem.
    public static func validate<Bytes: Sequence>(_ bytes: Bytes) -> Failure? where Bytes.Element == UInt8 {
        if let result = bytes.withContiguousStorageIfAvailable({ validate($0) }) {
            return result
        }
        let array = Array(bytes)
        return array.withUnsafeBufferPointer { validate($0) }
    }

    /// Checks that `bytes` hold exactly one JSON object (`{...}`).
    /// - Parameter bytes: The candidate text.
    /// - Returns: `nil` when valid, else the first problem.
    public static func validateObject<Bytes: Sequence>(_ bytes: Bytes) -> Failure? where Bytes.Element == UInt8 {
        if let failure = validate(bytes) { return failure }
        for byte in bytes where !isWhitespace(byte) {
            return byte == UInt8(ascii: "{") ? nil : Failure(offset: 0, reason: "expected a JSON object")
        }
        return Failure(offset: 0, reason: "expected a JSON object")
    }

    /// Finds where the JSON value that starts at `start` (after optional white space) ends.
    ///
    /// Used to take a JSON argument out of a line that goes on after it.
    /// - Parameters:
    ///   - bytes: The text.
    ///   - start: Where to begin.
    /// - Returns: The offset just past the value, or the problem.
    public static func endOfValue(in bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Result<Int, Failure> {
        var scanner = Scanner(bytes: bytes)
        scanner.index = start
        do {
            scanner.skipWhitespace()
            try scanner.value(depth: 0)
            return .success(scanner.index)
        } catch {
            return .failure(error)
        }
    }

    /// Whether `byte` is JSON white space.
    /// - Parameter byte: A byte.
    /// - Returns: `true` for space, tab, line feed and carriage return.
    @inlinable
    public static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
        }

        @inline(__always)
        mutating func skipWhitespace() {
            while index < bytes.count, JSONValidator.isWhitespace(bytes[index]) { index += 1 }
        }

        func fail(_ reason: String) -> Failure {
            Failure(offset: index, reason: reason)
        }

        mutating func value(depth: Int) throws(Failure) {
            guard index < bytes.count else { throw fail("unexpected end of JSON") }
            switch bytes[index] {
            case UInt8(ascii: "{"): try object(depth: depth + 1)
            case UInt8(ascii: "["): try array(depth: depth + 1)
            case UInt8(ascii: "\""): try string()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
            default: throw fail("unexpected character")
            }
        }

        mutating func literal(_ word: StaticString) throws(Failure) {
            guard JSONLexing.matches(word, in: bytes, at: index) else { throw fail("invalid literal") }
            index += word.utf8CodeUnitCount
        }

        mutating func object(depth: Int) throws(Failure) {
            guard depth <= JSONValidator.maximumDepth else { throw fail("JSON nested too deeply") }
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return
            }
            while true {
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                    throw fail("expected a string key")
                }
                try string()
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                index += 1
                skipWhitespace()
                try value(depth: depth)
                skipWhitespace()
                guard index < bytes.count else { throw fail("unexpected end of JSON") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    skipWhitespace()
                } else if bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return
                } else {
                    throw fail("expected ',' or '}'")
                }
            }
        }

        mutating func array(depth: Int) throws(Failure) {
            guard depth <= JSONValidator.maximumDepth else { throw fail("JSON nested too deeply") }
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                try value(depth: depth)
                skipWhitespace()
                guard index < bytes.count else { throw fail("unexpected end of JSON") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    skipWhitespace()
                } else if bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return
                } else {
                    throw fail("expected ',' or ']'")
                }
            }
        }

        mutating func string() throws(Failure) {
            index += 1
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    index += 1
                    return
                } else if byte == UInt8(ascii: "\\") {
                    index += 1
                    guard index < bytes.count else { break }
                    switch bytes[index] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                        UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        index += 1
                    case UInt8(ascii: "u"):
                        guard index + 4 < bytes.count else { throw fail("invalid \\u escape") }
                        for offset in 1...4 where !JSONLexing.isHexDigit(bytes[index + offset]) {
                            throw fail("invalid \\u escape")
                        }
                        index += 5
                    default:
                        throw fail("invalid escape")
                    }
                } else if byte < 0x20 {
                    throw fail("control character in string")
                } else if byte < 0x80 {
                    index += 1
                } else {
                    try utf8Sequence()
                }
            }
            throw fail("unterminated string")
        }

        /// One multi-byte UTF-8 sequence, rejecting overlong forms, surrogates and code points past U+10FFFF.
        @inline(__always)
        mutating func utf8Sequence() throws(Failure) {
            guard let length = JSONLexing.utf8SequenceLength(bytes, at: index) else { throw fail("invalid UTF-8") }
            index += length
        }

        @inline(__always)
        mutating func number() throws(Failure) {
            let scan = JSONLexing.scanNumber(bytes, from: index)
            index = scan.end
            guard scan.valid else { throw fail("invalid number") }
        }
    }
}

/// The pieces of JSON's grammar that the validator and the parser (``JSONValue``) share, so the two accept
/// exactly the same texts and fail at the same offsets.
enum JSONLexing {
    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    @inline(__always)
    static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
    }

    /// The length of the strict UTF-8 sequence whose lead byte is at `index` (a byte of 0x80 or more), or `nil`
    /// for an invalid one: overlong forms, surrogates, code points past U+10FFFF, truncated sequences.
    @inline(__always)
    static func utf8SequenceLength(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Int? {
        let length: Int
        var lower: UInt8 = 0x80
        var upper: UInt8 = 0xBF
        switch bytes[index] {
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            lower = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            upper = 0x9F
        case 0xF0:
            length = 4
            lower = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            upper = 0x8F
        default: return nil
        }
        guard index + length <= bytes.count else { return nil }
        let second = bytes[index + 1]
        guard second >= lower, second <= upper else { return nil }
        if length > 2 {
            for offset in 2..<length where bytes[index + offset] & 0xC0 != 0x80 { return nil }
        }
        return length
    }

    /// Whether `word` (`true`, `false`, `null`) stands in `bytes` at `index`.
    @inline(__always)
    static func matches(_ word: StaticString, in bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Bool {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { return false }
        let start = word.utf8Start
        for offset in 0..<count where bytes[index + offset] != start[offset] { return false }
        return true
    }

    /// Scans a number (`-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`) that starts at `start`.
    /// - Returns: Where it ends, or, when it is invalid, where it goes wrong.
    @inline(__always)
    static func scanNumber(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> (end: Int, valid: Bool) {
        var index = start
        func digits() {
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count else { return (index, false) }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else if bytes[index] >= UInt8(ascii: "1"), bytes[index] <= UInt8(ascii: "9") {
            digits()
        } else {
            return (index, false)
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < bytes.count, isDigit(bytes[index]) else { return (index, false) }
            digits()
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard index < bytes.count, isDigit(bytes[index]) else { return (index, false) }
            digits()
        }
        return (index, true)
    }
}
