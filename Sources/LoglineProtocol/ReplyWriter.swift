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

    /// `$len\r\nbytes\r\n`.
    /// - Parameters:
    ///   - bytes: The payload (a JSON document, in Logline's replies).
    ///   - buffer: Where the reply goes.
    public static func bulk<Bytes: Collection>(_ bytes: Bytes, into buffer: inout ByteBuffer)
    where Bytes.Element == UInt8 {
        buffer.writeInteger(UInt8(ascii: "$"))
        buffer.writeString(String(bytes.count))
        buffer.writeStaticString("\r\n")
        buffer.writeBytes(bytes)
        buffer.writeStaticString("\r\n")
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
