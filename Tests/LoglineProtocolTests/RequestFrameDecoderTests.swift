import LoglineCore
import LoglineProtocol
import NIOCore
import Testing

@Suite("RequestFrameDecoder: well-formed input")
struct RequestFrameDecoderTests {
    let decoder = RequestFrameDecoder()

    @Test("a RESP array of bulk strings is one frame and is consumed whole")
    func respArray() {
        var input = byteBuffer("*3\r\n$4\r\nREAD\r\n$5\r\norder\r\n$2\r\no1\r\n")
        #expect(decoder.decode(&input) == .frame(respFrame("READ", "order", "o1")))
        #expect(input.readableBytes == 0)
        #expect(decoder.decode(&input) == .needMoreData)
    }

    @Test("bulk strings are binary-safe: CR, LF, NUL, high bytes and '*' or '$' inside are kept")
    func binaryBulk() {
        let payload: [UInt8] = [0x00, 0x0D, 0x0A, 0xFF, 0x2A, 0x24, 0x0D, 0x0A, 0x80, 0x20]
        var raw = bytes("*2\r\n$4\r\nECHO\r\n$10\r\n")
        raw += payload
        raw += bytes("\r\n")
        var input = byteBuffer(raw)
        #expect(decoder.decode(&input) == .frame(respFrame([bytes("ECHO"), payload])))
        #expect(input.readableBytes == 0)
    }

    @Test("an empty bulk string is an empty argument")
    func emptyBulk() {
        var input = byteBuffer("*3\r\n$0\r\n\r\n$1\r\nx\r\n$0\r\n\r\n")
        guard case .frame(.resp(let arguments)) = decoder.decode(&input) else {
            Issue.record("expected a RESP frame")
            return
        }
        #expect(arguments.map(\.readableBytes) == [0, 1, 0])
        #expect(arguments[1] == byteBuffer("x"))
        #expect(input.readableBytes == 0)
    }

    @Test("a bulk length of ten or more and an argument count of ten or more")
    func multiDigitLengths() {
        let long = String(repeating: "0123456789", count: 30)
        let words = (0..<12).map { "w\($0)" }
        var input = byteBuffer(respRequest([bytes(long)]) + respRequest(words.map(bytes)))
        #expect(decoder.decode(&input) == .frame(respFrame(long)))
        #expect(decoder.decode(&input) == .frame(.resp(words.map(byteBuffer))))
        #expect(input.readableBytes == 0)
    }

    @Test("`*0` and `*-1` are empty requests that are skipped")
    func emptyArrays() {
        var alone = byteBuffer("*0\r\n")
        #expect(decoder.decode(&alone) == .needMoreData)
        #expect(alone.readableBytes == 0)

        var followed = byteBuffer("*0\r\n*-1\r\n*0\r\n*1\r\n$4\r\nPING\r\n")
        #expect(decoder.decode(&followed) == .frame(respFrame("PING")))
        #expect(followed.readableBytes == 0)
    }

    @Test("blank lines before and between requests are skipped")
    func blankLines() {
        var input = byteBuffer("\r\n\n\r\n*1\r\n$4\r\nPING\r\n\r\n\n\nINFO\n\r\n")
        #expect(decoder.decode(&input) == .frame(respFrame("PING")))
        #expect(decoder.decode(&input) == .frame(inlineFrame("INFO")))
        #expect(decoder.decode(&input) == .needMoreData)
        #expect(input.readableBytes == 0)
    }

    @Test("inline lines end in LF or CRLF; the line ending is not part of the frame")
    func inlineLines() {
        var input = byteBuffer("PING\nECHO hello world\r\nAPPEND order o1 created {\"a\": 1}\r\n")
        #expect(decoder.decode(&input) == .frame(inlineFrame("PING")))
        #expect(decoder.decode(&input) == .frame(inlineFrame("ECHO hello world")))
        #expect(decoder.decode(&input) == .frame(inlineFrame("APPEND order o1 created {\"a\": 1}")))
        #expect(input.readableBytes == 0)
    }

    @Test("an inline line keeps its inner white space, a lone CR inside it, and only one trailing CR is removed")
    func inlineContent() {
        var input = byteBuffer("  a\tb\rc  \r\r\n")
        #expect(decoder.decode(&input) == .frame(inlineFrame("  a\tb\rc  \r")))
        #expect(input.readableBytes == 0)
    }

    @Test("an unfinished inline line waits for more data and consumes nothing")
    func inlineIncomplete() {
        var input = byteBuffer("PING\r")
        #expect(decoder.decode(&input) == .needMoreData)
        #expect(input.readableBytes == 5)
        input.writeString("\n")
        #expect(decoder.decode(&input) == .frame(inlineFrame("PING")))
    }

    @Test("an unfinished RESP request waits for more data and consumes nothing")
    func respIncomplete() {
        let whole = bytes("*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n")
        for cut in 1..<whole.count {
            var input = byteBuffer(Array(whole[..<cut]))
            #expect(decoder.decode(&input) == .needMoreData, "cut at \(cut)")
            #expect(input.readableBytes == cut, "cut at \(cut)")
        }
    }

    @Test("several pipelined requests in one buffer come out in order")
    func pipelined() {
        var raw = respRequest("PING")
        raw += bytes("PING hi\r\n")
        raw += respRequest("APPEND", "order", "o1", "created", "{}")
        raw += bytes("READ order o1\n")
        raw += respRequest("READALL", "COUNT", "5")
        raw += bytes("QUIT\r\n")
        let (results, left) = decodeAllAtOnce(decoder, raw)
        #expect(
            results == [
                .frame(respFrame("PING")),
                .frame(inlineFrame("PING hi")),
                .frame(respFrame("APPEND", "order", "o1", "created", "{}")),
                .frame(inlineFrame("READ order o1")),
                .frame(respFrame("READALL", "COUNT", "5")),
                .frame(inlineFrame("QUIT")),
            ])
        #expect(left == 0)
    }

    @Test("a frame's arguments are independent of later writes to the accumulating buffer")
    func framesOutliveBuffer() {
        var input = byteBuffer("*1\r\n$3\r\nabc\r\n")
        let outcome = decoder.decode(&input)
        input.clear()
        input.writeString("XYZXYZXYZXYZXYZXYZ")
        #expect(outcome == .frame(respFrame("abc")))
    }

    @Test("a request of exactly the size limit is accepted, framing included")
    func exactlyAtLimit() {
        // "*1\r\n" (4) + "$89\r\n" (5) + 89 bytes + "\r\n" (2) = 100 bytes.
        let small = RequestFrameDecoder(maximumRequestBytes: 100)
        let payload = String(repeating: "p", count: 89)
        let raw = respRequest(payload)
        #expect(raw.count == 100)
        var input = byteBuffer(raw)
        #expect(small.decode(&input) == .frame(respFrame(payload)))

        // An inline line of 99 bytes plus its LF is 100 bytes.
        let line = String(repeating: "q", count: 99)
        var inline = byteBuffer(line + "\n")
        #expect(small.decode(&inline) == .frame(inlineFrame(line)))
    }

    @Test("exactly the maximum number of arguments is accepted")
    func exactlyMaximumArguments() {
        let small = RequestFrameDecoder(maximumArguments: 10)
        let words = (0..<10).map { "a\($0)" }
        var input = byteBuffer(respRequest(words.map(bytes)))
        #expect(small.decode(&input) == .frame(.resp(words.map(byteBuffer))))
    }
}

@Suite("RequestFrameDecoder: delivery in pieces")
struct RequestFrameDecoderIncrementalTests {
    /// A mixed corpus of RESP and inline requests and the frames each must give.
    static let corpus: [(raw: [UInt8], frames: [RequestFrame])] = {
        var binary: [UInt8] = [0x7B, 0x22, 0x62, 0x22, 0x3A, 0x22, 0x0D, 0x0A, 0x00, 0xFF, 0x22, 0x7D]
        binary += Array(repeating: 0x2A, count: 30)
        let big = String(repeating: "x", count: 1_500)
        let manyWords = (0..<15).map { "word\($0)" }
        return [
            (respRequest("PING"), [respFrame("PING")]),
            (bytes("PING\n"), [inlineFrame("PING")]),
            (bytes("\r\n\n"), []),
            (
                respRequest([bytes("APPEND"), bytes("order"), bytes("o1"), bytes("created"), binary]),
                [respFrame([bytes("APPEND"), bytes("order"), bytes("o1"), bytes("created"), binary])]
            ),
            (
                bytes("APPEND order o2 order-created {\"a\": 1, \"b\": [1, 2]}\r\n"),
                [inlineFrame("APPEND order o2 order-created {\"a\": 1, \"b\": [1, 2]}")]
            ),
            (bytes("*0\r\n"), []),
            (respRequest("ECHO", ""), [respFrame("ECHO", "")]),
            (bytes("READ\torder\to1\r\n"), [inlineFrame("READ\torder\to1")]),
            (respRequest(manyWords.map(bytes)), [.resp(manyWords.map(byteBuffer))]),
            (respRequest("ECHO", big), [respFrame("ECHO", big)]),
            (bytes("*-1\r\n\r\n"), []),
            (bytes("INFO\r\n"), [inlineFrame("INFO")]),
            (respRequest("CONFIG", "GET", "save"), [respFrame("CONFIG", "GET", "save")]),
            (bytes("QUIT\n"), [inlineFrame("QUIT")]),
        ]
    }()

    static var corpusBytes: [UInt8] { corpus.flatMap(\.raw) }
    static var corpusFrames: [Decoded] { corpus.flatMap(\.frames).map { .frame($0) } }

    @Test("the corpus delivered all at once gives the expected frames and leaves nothing")
    func allAtOnce() {
        let (results, left) = decodeAllAtOnce(RequestFrameDecoder(), Self.corpusBytes)
        #expect(results == Self.corpusFrames)
        #expect(left == 0)
    }

    @Test("the corpus delivered one byte at a time gives exactly the same frames")
    func byteByByte() {
        let decoder = RequestFrameDecoder()
        let atOnce = decodeAllAtOnce(decoder, Self.corpusBytes)
        let oneByOne = decodeInChunks(decoder, Self.corpusBytes, chunk: 1)
        #expect(oneByOne.results == atOnce.results)
        #expect(oneByOne.results == Self.corpusFrames)
        #expect(oneByOne.left == 0)
    }

    @Test(
        "the corpus delivered in chunks of various sizes gives exactly the same frames",
        arguments: [2, 3, 5, 7, 13, 64, 1000])
    func chunks(size: Int) {
        let result = decodeInChunks(RequestFrameDecoder(), Self.corpusBytes, chunk: size)
        #expect(result.results == Self.corpusFrames)
        #expect(result.left == 0)
    }

    @Test("each corpus request on its own, byte by byte, gives its frames and then needs more data")
    func eachRequestByteByByte() {
        for (index, entry) in Self.corpus.enumerated() {
            let result = decodeInChunks(RequestFrameDecoder(), entry.raw, chunk: 1)
            #expect(result.results == entry.frames.map { .frame($0) }, "corpus entry \(index)")
            #expect(result.left == 0, "corpus entry \(index)")
        }
    }
}
