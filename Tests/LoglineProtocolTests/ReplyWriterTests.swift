import LoglineCore
import LoglineProtocol
import NIOCore
import Testing

/// What a writer call puts into an empty buffer.
private func written(_ write: (inout ByteBuffer) -> Void) -> [UInt8] {
    var out = ByteBuffer()
    write(&out)
    return Array(out.readableBytesView)
}

@Suite("ReplyWriter")
struct ReplyWriterTests {
    @Test("simple strings")
    func simpleString() {
        #expect(written { ReplyWriter.simpleString("OK", into: &$0) } == bytes("+OK\r\n"))
        #expect(written { ReplyWriter.simpleString("PONG", into: &$0) } == bytes("+PONG\r\n"))
        #expect(written { ReplyWriter.simpleString("", into: &$0) } == bytes("+\r\n"))
        #expect(written { ReplyWriter.simpleString("é", into: &$0) } == [0x2B, 0xC3, 0xA9, 0x0D, 0x0A])
    }

    @Test("errors: -CODE message, with CR and LF in the message turned into spaces")
    func error() {
        #expect(
            written { ReplyWriter.error(.badRequest, "unknown verb 'X'", into: &$0) }
                == bytes("-BADREQ unknown verb 'X'\r\n"))
        #expect(
            written { ReplyWriter.error(.conflict, "a\r\nb\nc\rd", into: &$0) } == bytes("-CONFLICT a  b c d\r\n"))
        #expect(written { ReplyWriter.error(.tooLarge, "\n", into: &$0) } == bytes("-TOOLARGE  \r\n"))
        #expect(written { ReplyWriter.error(.badJSON, "é", into: &$0) } == bytes("-BADJSON é\r\n"))
        let reply = written { ReplyWriter.error(.internal, "x\r\n\r\n-ERR injected\r\n", into: &$0) }
        // Exactly one line: the only CR and LF are the final ones.
        #expect(reply.filter { $0 == 0x0D || $0 == 0x0A } == [0x0D, 0x0A])
        #expect(reply == bytes("-INTERNAL x    -ERR injected  \r\n"))
    }

    @Test("integers, negative and extreme included")
    func integer() {
        #expect(written { ReplyWriter.integer(0, into: &$0) } == bytes(":0\r\n"))
        #expect(written { ReplyWriter.integer(42, into: &$0) } == bytes(":42\r\n"))
        #expect(written { ReplyWriter.integer(-7, into: &$0) } == bytes(":-7\r\n"))
        #expect(written { ReplyWriter.integer(Int64.max, into: &$0) } == bytes(":9223372036854775807\r\n"))
        #expect(written { ReplyWriter.integer(Int64.min, into: &$0) } == bytes(":-9223372036854775808\r\n"))
    }

    @Test("bulk strings carry their byte length and any bytes")
    func bulk() {
        #expect(written { ReplyWriter.bulk(bytes("hello"), into: &$0) } == bytes("$5\r\nhello\r\n"))
        #expect(written { ReplyWriter.bulk([UInt8](), into: &$0) } == bytes("$0\r\n\r\n"))
        #expect(written { ReplyWriter.bulk("é".utf8, into: &$0) } == bytes("$2\r\né\r\n"))
        let binary: [UInt8] = [0x00, 0x0D, 0x0A, 0xFF]
        #expect(written { ReplyWriter.bulk(binary, into: &$0) } == bytes("$4\r\n") + binary + bytes("\r\n"))
        let long = [UInt8](repeating: 0x61, count: 1234)
        #expect(written { ReplyWriter.bulk(long, into: &$0) } == bytes("$1234\r\n") + long + bytes("\r\n"))
        // Lengths on each side of a new digit.
        for count in [9, 10, 99, 100, 1000, 65536] {
            let payload = [UInt8](repeating: 0x62, count: count)
            #expect(
                written { ReplyWriter.bulk(payload, into: &$0) } == bytes("$\(count)\r\n") + payload + bytes("\r\n"))
        }
        // Any collection of bytes: a slice and a buffer's view.
        let source = bytes("0123456789")
        #expect(written { ReplyWriter.bulk(source[2..<5], into: &$0) } == bytes("$3\r\n234\r\n"))
        let view = ByteBuffer(string: "{}").readableBytesView
        #expect(written { ReplyWriter.bulk(view, into: &$0) } == bytes("$2\r\n{}\r\n"))
    }

    @Test("null")
    func null() {
        #expect(written { ReplyWriter.null(into: &$0) } == bytes("$-1\r\n"))
    }

    @Test("array headers")
    func arrayHeader() {
        #expect(written { ReplyWriter.arrayHeader(0, into: &$0) } == bytes("*0\r\n"))
        #expect(written { ReplyWriter.arrayHeader(3, into: &$0) } == bytes("*3\r\n"))
        #expect(written { ReplyWriter.arrayHeader(10_000, into: &$0) } == bytes("*10000\r\n"))
    }

    @Test("replies are appended after what the buffer already holds")
    func appends() {
        var out = ByteBuffer(string: "+OK\r\n")
        ReplyWriter.arrayHeader(2, into: &out)
        ReplyWriter.bulk(bytes("a"), into: &out)
        ReplyWriter.null(into: &out)
        ReplyWriter.integer(1, into: &out)
        #expect(Array(out.readableBytesView) == bytes("+OK\r\n*2\r\n$1\r\na\r\n$-1\r\n:1\r\n"))
    }

    @Test("an array of bulks written by ReplyWriter is a request the decoder frames back")
    func roundTrip() {
        let arguments: [[UInt8]] = [
            bytes("ECHO"), [0x00, 0x0D, 0x0A, 0x2A], [], bytes(String(repeating: "z", count: 300)),
        ]
        var out = ByteBuffer()
        ReplyWriter.arrayHeader(arguments.count, into: &out)
        for argument in arguments { ReplyWriter.bulk(argument, into: &out) }
        #expect(Array(out.readableBytesView) == respRequest(arguments))
        #expect(RequestFrameDecoder().decode(&out) == .frame(respFrame(arguments)))
        #expect(out.readableBytes == 0)
    }
}
