import LoglineCore
import LoglineProtocol
import NIOCore
import Testing

/// The error of an outcome, or `nil` when it is not an error.
private func framingError(_ outcome: RequestFrameDecoder.Outcome) -> FramingError? {
    if case .error(let error) = outcome { return error }
    return nil
}

@Suite("RequestFrameDecoder: oversized requests")
struct RequestFrameDecoderLimitTests {
    @Test("a bulk length over the limit is refused from its header alone, before the body arrives")
    func bulkOverLimitBeforeBody() throws {
        let decoder = RequestFrameDecoder()
        #expect(decoder.maximumRequestBytes == 1 << 20)
        for length in [1 << 20, (1 << 20) + 1, 5_000_000] {
            let header = "*2\r\n$6\r\nAPPEND\r\n$\(length)\r\n"
            var input = byteBuffer(header)
            let error = try #require(framingError(decoder.decode(&input)), "length \(length)")
            #expect(error.code == .tooLarge)
            #expect(error.code.rawValue == "TOOLARGE")
            #expect(error.closesConnection)
        }
    }

    @Test("a bulk that would take the request one byte over the limit is refused from the header")
    func bulkOneOverLimit() throws {
        // "*1\r\n" (4) + "$90\r\n" (5) + 90 + "\r\n" (2) = 101 bytes.
        let decoder = RequestFrameDecoder(maximumRequestBytes: 100)
        var input = byteBuffer("*1\r\n$90\r\n")
        let error = try #require(framingError(decoder.decode(&input)))
        #expect(error.code == .tooLarge)
        #expect(error.closesConnection)
    }

    @Test("a later bulk that takes the request over the limit is refused once its header arrives")
    func laterBulkOverLimit() throws {
        let decoder = RequestFrameDecoder(maximumRequestBytes: 100)
        var input = byteBuffer("*3\r\n$4\r\nECHO\r\n$40\r\n" + String(repeating: "a", count: 40) + "\r\n")
        #expect(decoder.decode(&input) == .needMoreData)
        input.writeString("$50\r\n")
        let error = try #require(framingError(decoder.decode(&input)))
        #expect(error.code == .tooLarge)
        #expect(error.closesConnection)
    }

    @Test("the largest bulk length the header takes, after a first argument, is TOOLARGE and does not trap")
    func largestBulkLengthLater() throws {
        // The header parser takes values up to Int.max / 10 - 10 and a digit more; added to where the bulk starts,
        // such a length overflowed Int and trapped, bringing the server down.
        let first = String(repeating: "a", count: 100)
        for length in ["9223372036854775699", "922337203685477579", "9223372036854775"] {
            var input = byteBuffer("*2\r\n$100\r\n\(first)\r\n$\(length)\r\n")
            let error = try #require(framingError(RequestFrameDecoder().decode(&input)), "length \(length)")
            #expect(error.code == .tooLarge)
            #expect(error.closesConnection)
        }
    }

    @Test("a huge bulk length that does not overflow is TOOLARGE")
    func hugeBulkLength() throws {
        var input = byteBuffer("*1\r\n$9223372036854775\r\n")
        let error = try #require(framingError(RequestFrameDecoder().decode(&input)))
        #expect(error.code == .tooLarge)
        #expect(error.closesConnection)
    }

    @Test("an inline line with no newline longer than the limit is TOOLARGE; at the limit it waits")
    func inlineWithoutNewline() throws {
        let decoder = RequestFrameDecoder(maximumRequestBytes: 100)
        var atLimit = byteBuffer(String(repeating: "a", count: 100))
        #expect(decoder.decode(&atLimit) == .needMoreData)
        #expect(atLimit.readableBytes == 100)

        var over = byteBuffer(String(repeating: "a", count: 101))
        let error = try #require(framingError(decoder.decode(&over)))
        #expect(error.code == .tooLarge)
        #expect(error.closesConnection)
    }

    @Test("an inline line whose newline comes after the limit is TOOLARGE")
    func inlineLongLine() throws {
        let decoder = RequestFrameDecoder(maximumRequestBytes: 100)
        var input = byteBuffer(String(repeating: "a", count: 100) + "\nPING\n")
        let error = try #require(framingError(decoder.decode(&input)))
        #expect(error.code == .tooLarge)
        #expect(error.closesConnection)
    }

    @Test("an inline line growing byte by byte is refused as soon as it passes the limit")
    func inlineGrowing() {
        let decoder = RequestFrameDecoder(maximumRequestBytes: 50)
        let result = decodeInChunks(decoder, Array(repeating: UInt8(ascii: "z"), count: 200), chunk: 1)
        #expect(result.results == [.error(code: "TOOLARGE", closes: true)])
        #expect(result.left == 51)
    }

    @Test("a RESP header that never ends is refused once past the limit")
    func endlessHeader() throws {
        let decoder = RequestFrameDecoder(maximumRequestBytes: 64)
        var input = byteBuffer("*" + String(repeating: "1", count: 70))
        let error = try #require(framingError(decoder.decode(&input)))
        #expect(error.closesConnection)
        #expect(error.code == .tooLarge)
    }

    @Test("too many arguments is TOOLARGE and closes the connection, from the header alone")
    func tooManyArguments() throws {
        var input = byteBuffer("*4097\r\n")
        let error = try #require(framingError(RequestFrameDecoder().decode(&input)))
        #expect(error.code == .tooLarge)
        #expect(error.closesConnection)

        let small = RequestFrameDecoder(maximumArguments: 3)
        var four = byteBuffer(respRequest("a", "b", "c", "d"))
        let smallError = try #require(framingError(small.decode(&four)))
        #expect(smallError.code == .tooLarge)
        #expect(smallError.closesConnection)

        var three = byteBuffer(respRequest("a", "b", "c"))
        #expect(small.decode(&three) == .frame(respFrame("a", "b", "c")))
    }
}

@Suite("RequestFrameDecoder: garbage")
struct RequestFrameDecoderGarbageTests {
    let decoder = RequestFrameDecoder()

    /// Decodes `garbage` followed by a valid request and checks: one BADREQ that keeps the connection, then the
    /// valid request, then nothing left.
    private func checkRecovers(_ garbage: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let next = respRequest("PING", "after")
        var input = byteBuffer(bytes(garbage) + next)
        let outcome = decoder.decode(&input)
        guard case .error(let error) = outcome else {
            Issue.record("expected an error, got \(outcome)", sourceLocation: sourceLocation)
            return
        }
        #expect(error.code == .badRequest, sourceLocation: sourceLocation)
        #expect(error.code.rawValue == "BADREQ", sourceLocation: sourceLocation)
        #expect(!error.closesConnection, sourceLocation: sourceLocation)
        #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
        // The offending bytes, through the end of the bad line, are gone; the next request is intact.
        #expect(Array(input.readableBytesView) == next, sourceLocation: sourceLocation)
        #expect(decoder.decode(&input) == .frame(respFrame("PING", "after")), sourceLocation: sourceLocation)
        #expect(input.readableBytes == 0, sourceLocation: sourceLocation)
    }

    @Test("a multibulk length that is not a number")
    func badMultibulkLength() {
        checkRecovers("*abc\r\n")
    }

    @Test("a line that should be a bulk header but does not start with '$'")
    func missingDollar() {
        checkRecovers("*2\r\n$3\r\nfoo\r\nXbar\r\n")
    }

    @Test("a bulk that is not followed by CRLF")
    func bulkWithoutCRLF() {
        checkRecovers("*1\r\n$3\r\nfooXY\r\n")
        checkRecovers("*2\r\n$3\r\nfoo\r\n$1\r\nab\r\n")
    }

    @Test("a negative bulk length")
    func negativeBulkLength() {
        checkRecovers("*1\r\n$-5\r\n")
        checkRecovers("*1\r\n$-1\r\n")
    }

    @Test("more bad headers: empty, sign only, LF without CR, trailing junk, '+' sign")
    func otherBadHeaders() {
        checkRecovers("*\r\n")
        checkRecovers("*-\r\n")
        checkRecovers("*2\n")
        checkRecovers("*2x\r\n")
        checkRecovers("*+2\r\n")
        checkRecovers("*1\r\n$\r\n")
        checkRecovers("*1\r\n$3x\r\n")
        checkRecovers("*1\r\n$99999999999999999999999\r\n")
    }

    @Test("a bad bulk header waits for its line end before failing, then consumes exactly that line")
    func badHeaderWaitsForLineEnd() {
        var input = byteBuffer("*2\r\n$3\r\nfoo\r\nXba")
        #expect(decoder.decode(&input) == .needMoreData)
        input.writeString("r\r\nPING\n")
        guard case .error(let error) = decoder.decode(&input) else {
            Issue.record("expected an error")
            return
        }
        #expect(error.code == .badRequest)
        #expect(decoder.decode(&input) == .frame(inlineFrame("PING")))
    }

    @Test("a bulk not followed by CRLF, delivered byte by byte, gives the same outcomes as delivered at once")
    func bulkWithoutCRLFByteByByte() {
        // The rest of the bad line ("XYZ SECRET") must be dropped, however the bytes are split into reads:
        // otherwise it would run as an inline request.
        let raw = bytes("*1\r\n$3\r\nfooXYZ SECRET\r\n") + respRequest("PING")
        let atOnce = decodeAllAtOnce(decoder, raw)
        #expect(atOnce.results == [.error(code: "BADREQ", closes: false), .frame(respFrame("PING"))])
        let oneByOne = decodeInChunks(decoder, raw, chunk: 1)
        #expect(oneByOne.results == atOnce.results)
    }

    @Test("garbage and valid requests mixed give the same outcomes byte by byte as all at once")
    func mixedGarbageByteByByte() {
        var raw: [UInt8] = []
        raw += bytes("*abc\r\n")
        raw += respRequest("PING")
        raw += bytes("*2\r\n$3\r\nfoo\r\nXbar\r\n")
        raw += bytes("INFO\n")
        raw += bytes("*1\r\n$-5\r\n")
        raw += respRequest("ECHO", "x")
        let expected: [Decoded] = [
            .error(code: "BADREQ", closes: false), .frame(respFrame("PING")),
            .error(code: "BADREQ", closes: false), .frame(inlineFrame("INFO")),
            .error(code: "BADREQ", closes: false), .frame(respFrame("ECHO", "x")),
        ]
        #expect(decodeAllAtOnce(decoder, raw).results == expected)
        #expect(decodeInChunks(decoder, raw, chunk: 1).results == expected)
    }
}

@Suite("RequestFrameDecoder: random input")
struct RequestFrameDecoderFuzzTests {
    /// Random byte strings biased towards the protocol's own bytes, many starting with `*` or `$`.
    static func randomInputs(seed: UInt64, count: Int) -> [[UInt8]] {
        var generator = SeededGenerator(seed: seed)
        let pieces: [[UInt8]] = [
            bytes("*"), bytes("$"), bytes("\r"), bytes("\n"), bytes("\r\n"), bytes("-"), bytes("0"), bytes("1"),
            bytes("3"), bytes("9"), bytes("12"), bytes("*2\r\n"), bytes("$3\r\n"), bytes("foo"), bytes(" "),
            bytes("PING"), bytes("$-1\r\n"), bytes("*0\r\n"), bytes("99999999999"),
        ]
        let valid: [[UInt8]] = [
            respRequest("PING"), respRequest("ECHO", "hello"), respRequest("READ", "order", "o1"),
            respRequest("APPEND", "o", "1", "c", "{\"a\":[1,2]}"), bytes("PING\r\n"), bytes("READ order o1\n"),
        ]
        let protocolBytes = bytes("*$\r\n-0123456789 x")
        var inputs: [[UInt8]] = []
        for index in 0..<count {
            if index % 4 == 3 {
                // Valid requests with a few bytes replaced, removed or inserted.
                var input = valid.randomElement(using: &generator)! + valid.randomElement(using: &generator)!
                for _ in 0..<Int.random(in: 1...3, using: &generator) {
                    let position = Int.random(in: 0..<input.count, using: &generator)
                    let byte = protocolBytes.randomElement(using: &generator)!
                    switch Int.random(in: 0..<3, using: &generator) {
                    case 0: input[position] = byte
                    case 1: input.remove(at: position)
                    default: input.insert(byte, at: position)
                    }
                }
                inputs.append(input)
                continue
            }
            var input: [UInt8] = []
            switch index % 4 {
            case 0: input = bytes("*")
            case 1: input = bytes("$")
            default: break
            }
            let length = Int.random(in: 0...60, using: &generator)
            while input.count < length {
                if Bool.random(using: &generator) {
                    input += pieces.randomElement(using: &generator)!
                } else {
                    input.append(UInt8.random(in: 0...255, using: &generator))
                }
            }
            inputs.append(input)
        }
        return inputs
    }

    /// Decodes until the decoder needs more data, checking at every step that it made progress.
    private func checkProgress(_ decoder: RequestFrameDecoder, _ input: [UInt8], _ index: Int) {
        var remaining = byteBuffer(input)
        var steps = 0
        while true {
            steps += 1
            guard steps <= input.count + 2 else {
                Issue.record("input \(index) \(input): no progress after \(steps) steps")
                return
            }
            let before = remaining.readableBytes
            switch decoder.decode(&remaining) {
            case .needMoreData:
                #expect(remaining.readableBytes <= decoder.maximumRequestBytes, "input \(index) \(input)")
                #expect(remaining.readableBytes <= before, "input \(index) \(input)")
                return
            case .frame:
                #expect(remaining.readableBytes < before, "input \(index) \(input): a frame consumed nothing")
            case .error(let error):
                if error.closesConnection {
                    #expect(error.code == .tooLarge, "input \(index) \(input)")
                    return
                }
                #expect(error.code == .badRequest, "input \(index) \(input)")
                #expect(remaining.readableBytes < before, "input \(index) \(input): an error consumed nothing")
            }
        }
    }

    @Test("thousands of random byte strings never crash and always make progress")
    func progress() {
        let inputs = Self.randomInputs(seed: 0x5EED_1234, count: 4_000)
        let decoders = [
            RequestFrameDecoder(),
            RequestFrameDecoder(maximumRequestBytes: 24, maximumArguments: 4),
        ]
        for decoder in decoders {
            for (index, input) in inputs.enumerated() {
                checkProgress(decoder, input, index)
            }
        }
    }

    @Test("random byte strings fed byte by byte never crash and keep the buffer within the limit")
    func progressByteByByte() {
        let decoder = RequestFrameDecoder(maximumRequestBytes: 24, maximumArguments: 4)
        for (index, input) in Self.randomInputs(seed: 42, count: 2_000).enumerated() {
            let result = decodeInChunks(decoder, input, chunk: 1)
            #expect(!result.results.contains(.error(code: "NO PROGRESS", closes: true)), "input \(index)")
            if result.results.last != .error(code: "TOOLARGE", closes: true) {
                #expect(result.left <= decoder.maximumRequestBytes, "input \(index) \(input)")
            }
        }
    }

    @Test("random byte strings give the same outcomes byte by byte as all at once")
    func sameOutcomesWhateverTheSplit() {
        let decoder = RequestFrameDecoder()
        var mismatches = 0
        var firstMismatch: String?
        for (index, input) in Self.randomInputs(seed: 7, count: 3_000).enumerated() {
            let atOnce = decodeAllAtOnce(decoder, input)
            let oneByOne = decodeInChunks(decoder, input, chunk: 1)
            if atOnce.results != oneByOne.results {
                mismatches += 1
                if firstMismatch == nil {
                    firstMismatch =
                        "input \(index) \(String(decoding: input, as: UTF8.self).debugDescription): "
                        + "at once \(atOnce.results), byte by byte \(oneByOne.results)"
                }
            }
        }
        #expect(mismatches == 0, "\(mismatches) inputs differ; first: \(firstMismatch ?? "")")
    }
}
