import LoglineCore
import NIOCore

/// Writes RESP2 replies into a `ByteBuffer`.
public enum ReplyWriter {
    /// `+text\r\n`.
    /// - Parameters:
    ///   - text: A string with no line breaks.
    ///   - buffer: Where the reply goes.
    public static func simpleString(_ text: String, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "+"))
        buffer.writeString(text)
        buffer.writeStaticString("\r\n")
    }

    /// `-CODE message\r\n`; line breaks in the message become spaces.
    /// - Parameters:
    ///   - code: The error code.
    ///   - message: What went wrong.
    ///   - buffer: Where the reply goes.
    public static func error(_ code: ErrorCode, _ message: String, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "-"))
        buffer.writeString(code.rawValue)
        buffer.writeInteger(UInt8(ascii: " "))
        for byte in message.utf8 {
            buffer.writeInteger(byte == 13 || byte == 10 ? UInt8(ascii: " ") : byte)
        }
        buffer.writeStaticString("\r\n")
    }

    /// `:n\r\n`.
    /// - Parameters:
    ///   - value: The integer.
    ///   - buffer: Where the reply goes.
    public static func integer(_ value: Int64, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: ":"))
        buffer.writeString(String(value))
        buffer.writeStaticString("\r\n")
    }

    /// The most bytes a bulk string takes beyond its payload: `$`, the length's digits and two CRLFs. A buffer with
    /// this much room past the payload takes ``bulk(_:into:)`` without growing.
    public static let bulkFramingBytes = 24

    /// `$len\r\nbytes\r\n`.
    /// - Parameters:
    ///   - bytes: The payload (a JSON document, in Logline's replies).
    ///   - buffer: Where the reply goes.
    public static func bulk<Bytes: Collection>(_ bytes: Bytes, into buffer: inout ByteBuffer)
    where Bytes.Element == UInt8 {
        let written = bytes.withContiguousStorageIfAvailable { payload in
            // The whole reply in one write into the buffer's memory: a reply to GET is mostly this, and writing it
            // piece by piece cost a check of the buffer's storage and a String for the length each time.
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: payload.count + bulkFramingBytes) { target in
                var offset = 0
                target[offset] = UInt8(ascii: "$")
                offset += 1
                offset += writeDecimal(payload.count, into: UnsafeMutableRawBufferPointer(rebasing: target[offset...]))
                target[offset] = UInt8(ascii: "\r")
                target[offset + 1] = UInt8(ascii: "\n")
                offset += 2
                if let base = payload.baseAddress, !payload.isEmpty {
                    (target.baseAddress! + offset).copyMemory(from: base, byteCount: payload.count)
                }
                offset += payload.count
                target[offset] = UInt8(ascii: "\r")
                target[offset + 1] = UInt8(ascii: "\n")
                return offset + 2
            }
        }
        guard written == nil else { return }
        buffer.writeInteger(UInt8(ascii: "$"))
        buffer.writeString(String(bytes.count))
        buffer.writeStaticString("\r\n")
        buffer.writeBytes(bytes)
        buffer.writeStaticString("\r\n")
    }

    /// Writes the decimal digits of a count (0 or more) at the start of `target`, which has room for them.
    /// - Returns: How many bytes were written.
    private static func writeDecimal(_ value: Int, into target: UnsafeMutableRawBufferPointer) -> Int {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        var remaining = value
        for index in stride(from: digits - 1, through: 0, by: -1) {
            target[index] = UInt8(ascii: "0") + UInt8(remaining % 10)
            remaining /= 10
        }
        return digits
    }

    /// `$-1\r\n`: nil.
    /// - Parameter buffer: Where the reply goes.
    public static func null(into buffer: inout ByteBuffer) {
        buffer.writeStaticString("$-1\r\n")
    }

    /// `*n\r\n`: the header of an array whose `count` elements follow.
    /// - Parameters:
    ///   - count: The number of elements.
    ///   - buffer: Where the reply goes.
    public static func arrayHeader(_ count: Int, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "*"))
        buffer.writeString(String(count))
        buffer.writeStaticString("\r\n")
    }
}
