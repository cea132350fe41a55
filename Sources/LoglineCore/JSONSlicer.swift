/// Takes JSON apart into byte ranges without building values, so that parts of a document can be stored
/// exactly as the client sent them.
///
/// - Important: The input must already be valid JSON (see ``JSONValidator``); the slicer does not re-check it.
public enum JSONSlicer {
    /// The ranges of an array's elements.
    /// - Parameter bytes: A valid JSON text.
    /// - Returns: One range for each element, or `nil` when the text is not an array.
    public static func arrayElements(_ bytes: UnsafeBufferPointer<UInt8>) -> [Range<Int>]? {
        var index = skipWhitespace(bytes, 0)
        guard index < bytes.count, bytes[index] == UInt8(ascii: "[") else { return nil }
        index = skipWhitespace(bytes, index + 1)
        var result: [Range<Int>] = []
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") { return result }
        while index < bytes.count {
            guard case .success(let end) = JSONValidator.endOfValue(in: bytes, from: index) else { return nil }
            result.append(index..<end)
            index = skipWhitespace(bytes, end)
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: "]") { return result }
            index = skipWhitespace(bytes, index + 1)
        }
        return nil
    }

    /// The members of an object: each key, decoded, and the range of its value.
    /// - Parameter bytes: A valid JSON text.
    /// - Returns: The members in document order, or `nil` when the text is not an object.
    public static func objectMembers(_ bytes: UnsafeBufferPointer<UInt8>) -> [(key: String, value: Range<Int>)]? {
        var index = skipWhitespace(bytes, 0)
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return nil }
        index = skipWhitespace(bytes, index + 1)
        var result: [(key: String, value: Range<Int>)] = []
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") { return result }
        while index < bytes.count {
            guard case .success(let keyEnd) = JSONValidator.endOfValue(in: bytes, from: index),
                let key = decodeString(UnsafeBufferPointer(rebasing: bytes[index..<keyEnd]))
            else { return nil }
            index = skipWhitespace(bytes, keyEnd)
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
            index = skipWhitespace(bytes, index + 1)
            guard case .success(let valueEnd) = JSONValidator.endOfValue(in: bytes, from: index) else { return nil }
            result.append((key, index..<valueEnd))
            index = skipWhitespace(bytes, valueEnd)
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: "}") { return result }
            index = skipWhitespace(bytes, index + 1)
        }
        return nil
    }

    /// Decodes a JSON string literal (with its quotes) into a Swift string.
    /// - Parameter bytes: The literal, for example `"a\nb"`.
    /// - Returns: The string, or `nil` when the bytes are not one string literal.
    public static func decodeString(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "\""), bytes[bytes.count - 1] == UInt8(ascii: "\"") else {
            return nil
        }
        let body = UnsafeBufferPointer(rebasing: bytes[1..<(bytes.count - 1)])
        if !body.contains(UInt8(ascii: "\\")) {
            return String(decoding: body, as: UTF8.self)
        }
        var scalars = String.UnicodeScalarView()
        var utf8: [UInt8] = []
        var index = 0
        func flush() {
            if !utf8.isEmpty {
                scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars)
                utf8.removeAll(keepingCapacity: true)
            }
        }
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= body.count else { return nil }
            var value: UInt32 = 0
            for offset in 0..<4 {
                let byte = body[at + offset]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: return nil
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }
        while index < body.count {
            let byte = body[index]
            guard byte == UInt8(ascii: "\\") else {
                utf8.append(byte)
                index += 1
                continue
            }
            guard index + 1 < body.count else { return nil }
            let escaped = body[index + 1]
            index += 2
            switch escaped {
            case UInt8(ascii: "\""): utf8.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): utf8.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "/"): utf8.append(UInt8(ascii: "/"))
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                guard var code = hex4(index) else { return nil }
                index += 4
                if (0xD800...0xDBFF).contains(code), index + 6 <= body.count, body[index] == UInt8(ascii: "\\"),
                    body[index + 1] == UInt8(ascii: "u"), let low = hex4(index + 2), (0xDC00...0xDFFF).contains(low)
                {
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    index += 6
                }
                flush()
                scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default: return nil
            }
        }
        flush()
        return String(scalars)
    }

    @inline(__always)
    static func skipWhitespace(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int) -> Int {
        var index = start
        while index < bytes.count, JSONValidator.isWhitespace(bytes[index]) { index += 1 }
        return index
    }
}

/// Writes JSON strings and numbers into byte buffers: the small JSON writer the server's replies need.
public enum JSONWriter {
    /// Appends `string` as a JSON string literal, quotes included, escaping what JSON requires.
    /// - Parameters:
    ///   - string: The text.
    ///   - buffer: Where the literal goes.
    public static func appendString(_ string: String, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): buffer.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): buffer.append(contentsOf: #"\\"#.utf8)
            case 0x0A: buffer.append(contentsOf: #"\n"#.utf8)
            case 0x0D: buffer.append(contentsOf: #"\r"#.utf8)
            case 0x09: buffer.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                buffer.append(contentsOf: #"\u00"#.utf8)
                buffer.append(hex[Int(byte >> 4)])
                buffer.append(hex[Int(byte & 0xF)])
            default: buffer.append(byte)
            }
        }
        buffer.append(UInt8(ascii: "\""))
    }

    /// A JSON string literal for `string`.
    /// - Parameter string: The text.
    /// - Returns: The literal with quotes.
    public static func quoted(_ string: String) -> String {
        var buffer = [UInt8]()
        appendString(string, to: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
