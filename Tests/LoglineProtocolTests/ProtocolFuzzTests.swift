import Foundation
import LoglineCore
import LoglineProtocol
import NIOCore
import Testing

/// The seeded mutation fuzzer over the decoder and the parser (see ``ProtocolFuzzer``).
///
/// Under plain `swift test` it runs a short, fixed form: 2,000 inputs from seed 1. For a long run, set
/// `LOGLINE_FUZZ_ITERATIONS` (and `LOGLINE_FUZZ_SEED` for other inputs than the short form's):
///
/// ```sh
/// LOGLINE_FUZZ_ITERATIONS=100000 LOGLINE_FUZZ_SEED=$RANDOM swift test --filter ProtocolFuzzTests/mutatedRequests
/// ```
///
/// (about 500 inputs a second in a debug build, on a slow machine).
///
/// A failure names the seed and the iteration; `LOGLINE_FUZZ_SEED=<seed> LOGLINE_FUZZ_FIRST=<iteration>
/// LOGLINE_FUZZ_ITERATIONS=1` runs that one input again.
@Suite("Protocol fuzzing: decoder and parser")
struct ProtocolFuzzTests {
    static let environment = ProcessInfo.processInfo.environment
    static let seed = environment["LOGLINE_FUZZ_SEED"].flatMap { UInt64($0) } ?? 1
    static let iterations = environment["LOGLINE_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? 2_000
    static let first = environment["LOGLINE_FUZZ_FIRST"].flatMap { Int($0) } ?? 0

    @Test("every corpus request parses, and to the same request inline and as RESP")
    func corpusIsValid() throws {
        let parser = RequestParser()
        let decoder = RequestFrameDecoder()
        for arguments in ProtocolFuzzer.corpus {
            let words = arguments.map { Array($0.utf8) }
            var requests: [Request] = []
            for encoded in [ProtocolFuzzer.resp(words), ProtocolFuzzer.inline(words)] {
                var buffer = ByteBuffer(bytes: encoded)
                guard case .frame(let frame) = decoder.decode(&buffer) else {
                    Issue.record("\(arguments): not one frame")
                    continue
                }
                #expect(buffer.readableBytes == 0, "\(arguments)")
                do {
                    requests.append(try parser.parse(frame))
                } catch {
                    Issue.record("\(arguments): \(error)")
                }
            }
            #expect(requests.count == 2 && requests[0] == requests[1], "\(arguments)")
        }
    }

    @Test("every verb of PROTOCOL.md is in the corpus")
    func corpusCoversEveryVerb() {
        let verbs = Set(ProtocolFuzzer.corpus.map { $0[0] })
        let documented: Set<String> = [
            "PING", "APPEND", "APPENDMANY", "READ", "READALL", "INFO", "QUIT", "AUTH", "COMMAND", "CONFIG", "CLIENT",
            "SELECT", "ECHO", "SUBMIT", "GET", "QUERY", "VIEWS", "PROJECTIONS", "REBUILD", "PARKED", "RETRY", "SKIP",
            "SUBSCRIBE", "UNSUBSCRIBE", "GROUP", "GROUPS", "FETCH", "ACK", "NACK", "PENDING", "DEAD", "BACKUP",
        ]
        #expect(documented.subtracting(verbs).isEmpty, "missing: \(documented.subtracting(verbs))")
    }

    @Test("mutated requests never trap, always make progress, stay within the limit and ignore how they are split")
    func mutatedRequests() {
        var failed = 0
        var bytesChecked = 0
        for iteration in Self.first..<(Self.first + Self.iterations) {
            var fuzzer = ProtocolFuzzer(seed: Self.seed, iteration: iteration)
            let generated = fuzzer.nextCase()
            let failures = ProtocolFuzzer.check(
                generated.input, limits: generated.limits, chunking: generated.chunking)
            bytesChecked += generated.input.count
            guard !failures.isEmpty else { continue }
            failed += 1
            Issue.record(
                """
                seed \(Self.seed) iteration \(iteration) (\(generated.limits)): \(failures.joined(separator: "; "))
                input: \(ProtocolFuzzer.describe(generated.input))
                """)
            if failed >= 10 {
                Issue.record("stopping after 10 failing inputs")
                return
            }
        }
        #expect(bytesChecked > 0)
    }

    @Test("many empty arrays in a row are skipped without deep recursion")
    func manyEmptyArrays() {
        // A megabyte of `*0\r\n` used to recurse once per array; it must be a loop.
        let input = Array(repeating: Array("*0\r\n".utf8), count: 300_000).flatMap { $0 } + Array("PING\r\n".utf8)
        var buffer = ByteBuffer(bytes: input)
        let decoder = RequestFrameDecoder(maximumRequestBytes: 2 << 20)
        #expect(decoder.decode(&buffer) == .frame(.inline(ByteBuffer(string: "PING"))))
        #expect(buffer.readableBytes == 0)
    }

    @Test(
        "a bad line that ends past the size limit is TOOLARGE whether it arrives at once or in pieces",
        arguments: [
            // A header that never becomes a number, found by the fuzzer (seed 1, iteration 801).
            "*2\r" + String(repeating: "0", count: 150) + "4\r\nNACK\r\n",
            // A bulk not followed by CRLF, whose line goes on past the limit (seed 1, iteration 844).
            "*2\r\n$4\r\nPING\r" + String(repeating: "x", count: 150) + "\r\n",
        ])
    func badLinePastTheLimit(input: String) {
        let decoder = RequestFrameDecoder(maximumRequestBytes: 64, maximumArguments: 4)
        let expected: [Decoded] = [.error(code: "TOOLARGE", closes: true)]
        #expect(decodeAllAtOnce(decoder, Array(input.utf8)).results == expected)
        #expect(decodeInChunks(decoder, Array(input.utf8), chunk: 1).results == expected)
        #expect(decodeInChunks(decoder, Array(input.utf8), chunk: 100).results == expected)
    }

    @Test("a bad line within the size limit is BADREQ and the requests after it are read")
    func badLineWithinTheLimit() {
        let decoder = RequestFrameDecoder(maximumRequestBytes: 64, maximumArguments: 4)
        let input = Array(("*2\r" + String(repeating: "0", count: 40) + "4\r\nPING\r\n").utf8)
        let expected: [Decoded] = [.error(code: "BADREQ", closes: false), .frame(inlineFrame("PING"))]
        #expect(decodeAllAtOnce(decoder, input).results == expected)
        #expect(decodeInChunks(decoder, input, chunk: 1).results == expected)
    }

    @Test(
        "a request arriving byte by byte costs time in proportion to its size, not its square",
        arguments: [
            // 4,096 arguments: framed again from the start on every read, this was 600 million header parses.
            ProtocolFuzzer.resp(Array(repeating: Array(repeating: UInt8(ascii: "a"), count: 64), count: 4096)),
            // A long line: searched again for its end from the start on every read.
            Array(repeating: UInt8(ascii: "x"), count: 300_000) + Array("\n".utf8),
        ])
    func byteByByteIsLinear(input: [UInt8]) {
        let decoder = RequestFrameDecoder()
        var progress = RequestFrameDecoder.Progress()
        var buffer = ByteBufferAllocator().buffer(capacity: input.count)
        let clock = ContinuousClock()
        let started = clock.now
        var outcome = RequestFrameDecoder.Outcome.needMoreData
        for byte in input {
            buffer.writeInteger(byte)
            outcome = decoder.decode(&buffer, resuming: &progress)
            // Linear, this takes a second or two even in a debug build; quadratic, it takes most of an hour.
            if clock.now - started > .seconds(120) { break }
        }
        #expect(clock.now - started < .seconds(120))
        guard case .frame = outcome else {
            Issue.record("expected a frame at the last byte, got \(outcome)")
            return
        }
        #expect(buffer.readableBytes == 0)
    }

    @Test("an unknown field of APPENDMANY is quoted in the error only in part, however long it is")
    func longUnknownFieldIsQuotedInPart() throws {
        // Found by scripts/fuzz-libfuzzer: the whole key went into the message, up to a megabyte of it.
        let key = String(repeating: "k", count: 5000)
        let frame = RequestFrame.inline(
            ByteBuffer(string: #"APPENDMANY order o1 [{"event_type":"e","data":{},"\#(key)":1}]"#))
        let error = try #require(parseError(frame))
        #expect(error.code == .badRequest)
        #expect(error.message.hasPrefix("event 0: unknown field '" + String(repeating: "k", count: 64) + "'"))
        #expect(error.message.utf8.count < 200)
    }
}
