import LoglineCore
import LoglineProtocol
import NIOCore

/// A seeded mutation fuzzer over ``RequestFrameDecoder`` and ``RequestParser``.
///
/// It starts from a corpus of valid requests (every verb of PROTOCOL.md), encodes each one inline or as RESP,
/// mutates it (at the level of arguments, of JSON and of bytes), and feeds a few such requests, back to back,
/// through the decoder twice: all at once, and in random chunks. ``check(_:decoder:parser:chunking:)`` holds
/// the properties a server relies on; it returns what went wrong rather than recording it, so that the same
/// oracle serves the short test, the long run and a reproduction of one failing input.
///
/// Everything is derived from one seed: iteration `i` of seed `s` is the same input on every machine.
struct ProtocolFuzzer {
    /// The decoder and parser limits one input is checked against: the server's defaults, and small limits
    /// that bring `TOOLARGE` within reach of short inputs.
    struct Limits: CustomStringConvertible {
        let maximumRequestBytes: Int
        let maximumArguments: Int

        var decoder: RequestFrameDecoder {
            RequestFrameDecoder(maximumRequestBytes: maximumRequestBytes, maximumArguments: maximumArguments)
        }
        /// As the server builds it: no event's data can be larger than a request.
        var parser: RequestParser { RequestParser(maximumDataBytes: maximumRequestBytes) }

        var description: String { "maximumRequestBytes \(maximumRequestBytes), maximumArguments \(maximumArguments)" }

        static let all: [Limits] = [
            Limits(maximumRequestBytes: 1 << 20, maximumArguments: 4096),
            Limits(maximumRequestBytes: 4096, maximumArguments: 64),
            Limits(maximumRequestBytes: 300, maximumArguments: 16),
            Limits(maximumRequestBytes: 64, maximumArguments: 4),
        ]
    }

    /// One generated input and how it is checked.
    struct Case {
        let input: [UInt8]
        let limits: Limits
        /// The sizes of the reads the input arrives in, for the chunked pass.
        let chunking: [Int]
    }

    // MARK: - Corpus

    /// Valid requests, as argument lists: every verb and option of PROTOCOL.md.
    static let corpus: [[String]] = [
        ["PING"],
        ["PING", "hello"],
        ["APPEND", "order", "o1", "order-created", #"{"customer_id":"c1","items":[1,2.5,-3e2,true,false,null]}"#],
        ["APPEND", "order", "o1", "order-created", #"{"customer_id": "c1", "note": "with spaces"}"#],
        [
            "APPEND", "order", "o1", "order-paid", "EXPECT", "1", "ID", "7c9e6679-7425-40de-944b-e07fc1f90ae7", "META",
            #"{"correlation_id":"k1"}"#, #"{"amount":"12.50"}"#,
        ],
        ["APPEND", "order", "o2", "order-created", "EXPECT", "NONE", "{}"],
        ["APPEND", "order", "o2", "order-created", "expect", "any", "meta", "{}", #""just a string""#],
        ["APPEND", "a.b_c:d@e-f", "0", "t", "EXPECT", "0", "[]"],
        [
            "APPENDMANY", "order", "o3", "EXPECT", "1",
            #"[{"event_type":"order-paid","data":{"amount":"3.00"}},{"event_type":"order-approved","data":{},"#
                + #""event_id":"01a21cb6-1a8d-7125-9734-045af9937b7a","metadata":{"a":"\u00e9\n"}}]"#,
        ],
        ["APPENDMANY", "order", "o4", #"[{"event_type":"x","data":null}]"#],
        ["READ", "order", "o1"],
        ["READ", "order", "o1", "FROM", "2", "COUNT", "100"],
        ["READALL"],
        ["READALL", "FROM", "5", "COUNT", "1", "TYPE", "order-paid", "TYPE", "order-created"],
        ["INFO"],
        ["INFO", "server"],
        ["QUIT"],
        ["AUTH", "0123456789abcdef0123"],
        ["AUTH", "default", "0123456789abcdef0123"],
        ["COMMAND"],
        ["COMMAND", "DOCS"],
        ["CONFIG", "GET", "save"],
        ["CLIENT", "SETNAME", "fuzz"],
        ["SELECT", "0"],
        ["ECHO", "hi"],
        [
            "SUBMIT", "create-order",
            #"{"customer_id":"c9","restaurant_id":"r1","order_items":[{"code":"pho","name":"Pho","unit_price":11.90,"#
                + #""quantity":2}]}"#,
        ],
        ["GET", "orders", "o-1004"],
        ["GET", "orders", "o-1004", "AT", "28"],
        ["QUERY", "orders"],
        ["QUERY", "orders", "WHERE", "status", "Approved", "LIMIT", "2", "AFTER", "o-1", "AT", "3"],
        ["VIEWS"],
        ["PROJECTIONS"],
        ["REBUILD", "orders"],
        ["PARKED", "orders"],
        ["RETRY", "orders", "5"],
        ["SKIP", "orders", "5"],
        ["SUBSCRIBE"],
        ["SUBSCRIBE", "FROM", "NOW"],
        ["SUBSCRIBE", "FROM", "3", "TYPE", "order-approved", "TYPE", "order-rejected"],
        ["UNSUBSCRIBE"],
        [
            "GROUP", "CREATE", "notif", "FROM", "NOW", "TYPE", "order-approved", "ACKWAIT", "500", "MAXINFLIGHT", "25",
            "MAXDELIVER", "2",
        ],
        ["GROUP", "CREATE", "g", "FROM", "1"],
        ["GROUP", "DELETE", "notif"],
        ["GROUPS"],
        ["FETCH", "notif", "w1"],
        ["FETCH", "notif", "w1", "COUNT", "10", "BLOCK", "5000"],
        ["ACK", "notif", "3", "6"],
        ["NACK", "notif", "2"],
        ["PENDING", "notif"],
        ["DEAD", "notif"],
        ["BACKUP", "/tmp/logline-backup"],
    ]

    /// A request's arguments as RESP: an array of bulk strings.
    static func resp(_ arguments: [[UInt8]]) -> [UInt8] {
        var out = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            out += Array("$\(argument.count)\r\n".utf8)
            out += argument
            out += [13, 10]
        }
        return out
    }

    /// A request's arguments as one inline line, ended by `\r\n`.
    static func inline(_ arguments: [[UInt8]], separator: UInt8 = 0x20, lineEnd: [UInt8] = [13, 10]) -> [UInt8] {
        var out: [UInt8] = []
        for (index, argument) in arguments.enumerated() {
            if index > 0 { out.append(separator) }
            out += argument
        }
        return out + lineEnd
    }

    // MARK: - Generation

    private var generator: SeededGenerator

    /// A fuzzer whose inputs all follow from `seed` and the iteration number.
    init(seed: UInt64, iteration: Int) {
        generator = SeededGenerator(seed: seed ^ (UInt64(iteration) &* 0x9E37_79B9_7F4A_7C15))
    }

    /// Whether a value may be as large as the limit: always for small limits, rarely for a megabyte, which is
    /// slow to check and tells little more.
    private mutating func mayBeHuge(_ limits: Limits) -> Bool {
        limits.maximumRequestBytes <= 4096 || chance(3)
    }

    private mutating func below(_ bound: Int) -> Int { Int.random(in: 0..<bound, using: &generator) }
    private mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    private mutating func pick<T>(_ values: [T]) -> T { values[below(values.count)] }

    /// The next input: one to four mutated requests back to back, and how to check it.
    mutating func nextCase() -> Case {
        let limits = pick(Limits.all)
        var input: [UInt8] = []
        for _ in 0...below(4) {
            input += request(limits: limits)
        }
        if chance(20) { input = spliced(input, with: request(limits: limits)) }
        return Case(input: input, limits: limits, chunking: chunking(for: input.count))
    }

    /// One request: a corpus entry, mutated at the level of its arguments, encoded, then mutated as bytes.
    private mutating func request(limits: Limits) -> [UInt8] {
        if chance(3) { return randomBytes(count: below(64)) }
        var arguments = pick(Self.corpus).map { Array($0.utf8) }
        if chance(70) {
            for _ in 0...below(3) { mutateArguments(&arguments, limits: limits) }
        }
        var encoded: [UInt8]
        if chance(50) {
            encoded = Self.resp(arguments)
        } else {
            encoded = Self.inline(
                arguments, separator: chance(10) ? 0x09 : 0x20, lineEnd: chance(30) ? [10] : [13, 10])
        }
        if chance(60) {
            for _ in 0...below(4) { mutateBytes(&encoded) }
        }
        return encoded
    }

    /// Where the input is cut into reads: sometimes byte by byte, usually at a few random places.
    private mutating func chunking(for count: Int) -> [Int] {
        guard count > 1 else { return [max(count, 1)] }
        if count <= 512 && chance(25) { return Array(repeating: 1, count: count) }
        var sizes: [Int] = []
        var left = count
        while left > 0 {
            let size = min(left, 1 + below(chance(50) ? 8 : max(count / 3, 1)))
            sizes.append(size)
            left -= size
        }
        return sizes
    }

    // MARK: - Argument mutations

    static let keywords = [
        "EXPECT", "ID", "META", "FROM", "COUNT", "TYPE", "ANY", "NONE", "NOW", "AT", "WHERE", "LIMIT", "AFTER",
        "BLOCK", "ACKWAIT", "MAXINFLIGHT", "MAXDELIVER", "CREATE", "DELETE", "GET",
    ]

    static let interestingArguments: [[UInt8]] = [
        [], Array("0".utf8), Array("-1".utf8), Array("1".utf8), Array("10000".utf8), Array("10001".utf8),
        Array("18446744073709551615".utf8), Array("18446744073709551616".utf8), Array("99999999999".utf8),
        Array("999999999999999999999999999999".utf8), Array("1e3".utf8), Array("+5".utf8), Array("0x10".utf8),
        Array(repeating: UInt8(ascii: "a"), count: 200), Array(repeating: UInt8(ascii: "a"), count: 201),
        [0xC3, 0x28], [0xFF, 0xFE], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82],
        [0], Array("a b".utf8), Array("a\tb".utf8), [13, 10], [13], [10], Array("*1".utf8), Array("$5".utf8),
        Array("{".utf8), Array("[".utf8), Array("{}".utf8), Array("[]".utf8), Array("null".utf8),
        Array(#""s""#.utf8), Array("7c9e6679-7425-40de-944b-e07fc1f90ae7".utf8),
        Array("7C9E6679-7425-40DE-944B-E07FC1F90AE7".utf8), Array("7c9e6679-7425-40de-944b-e07fc1f90aeZ".utf8),
        Array("7c9e66797425-40de-944b-e07fc1f90ae7x".utf8), Array("00000000-0000-0000-0000-000000000000".utf8),
    ]

    private mutating func mutateArguments(_ arguments: inout [[UInt8]], limits: Limits) {
        guard !arguments.isEmpty else {
            arguments.append(pick(Self.interestingArguments))
            return
        }
        let index = below(arguments.count)
        switch below(11) {
        case 0: arguments[index] = pick(Self.interestingArguments)
        case 1: arguments.remove(at: index)
        case 2: arguments.insert(arguments[index], at: index)
        case 3: arguments.swapAt(index, below(arguments.count))
        case 4: arguments.insert(Array(pick(Self.keywords).utf8), at: index)
        case 5: arguments.append(pick(Self.interestingArguments))
        case 6:
            // The verb in another case, or another verb with these arguments.
            let verb = pick(Self.corpus)[0]
            arguments[0] = Array((chance(50) ? verb.lowercased() : verb).utf8)
        case 7:
            // A value just over (or at) a limit: a name of 201 bytes, data over the size limit.
            let size = chance(50) || !mayBeHuge(limits) ? 201 : limits.maximumRequestBytes + below(3) - 1
            arguments[index] = Array(repeating: chance(50) ? UInt8(ascii: "x") : UInt8(ascii: "7"), count: size)
        case 8:
            // Many arguments: around the argument limit.
            guard mayBeHuge(limits) else { break }
            let extra = limits.maximumArguments + below(3) - 1 - arguments.count
            if extra > 0 { arguments += Array(repeating: Array("1".utf8), count: extra) }
        default:
            // Mutate the JSON argument if there is one, else any argument's bytes.
            let jsonIndex = arguments.lastIndex { $0.first == UInt8(ascii: "{") || $0.first == UInt8(ascii: "[") }
            if let jsonIndex {
                arguments[jsonIndex] = mutatedJSON(arguments[jsonIndex], limits: limits)
            } else {
                mutateBytes(&arguments[index])
            }
        }
    }

    // MARK: - JSON mutations

    static let jsonFragments: [String] = [
        "{", "}", "[", "]", ",", ":", "\"", "\\", " ", "\t", "\n", "\r", "-", "0", "1.", ".5", "1e", "1e+",
        "-0", "01", "1e999999999", "123456789012345678901234567890", "tru", "nul", "falsey", "NaN", "Infinity",
        #"\u12"#, #"\uD800"#, #"\uDFFF\uD800"#, #"\uZZZZ"#, #"\x"#, #"\u0000"#, "\u{00A0}", "\u{FEFF}",
        #"{"a":1,}"#, "[1,]", #"{"a" 1}"#, #"{"a":1 "b":2}"#, #"{"a":1,"a":2}"#, "{} {}", "[][]", #"{"":{}}"#,
    ]

    private mutating func mutatedJSON(_ json: [UInt8], limits: Limits) -> [UInt8] {
        var json = json
        switch below(12) {
        case 0:
            // Deep nesting, around the validator's depth limit and far past it.
            let depth = pick([63, 64, 65, 127, 128, 129, 1000, chance(10) ? 100_000 : 2000])
            let open: [UInt8] = chance(50) ? [UInt8(ascii: "[")] : Array(#"{"a":"#.utf8)
            let close: UInt8 = open.count == 1 ? UInt8(ascii: "]") : UInt8(ascii: "}")
            json = Array(repeating: open, count: depth).flatMap { $0 } + Array("1".utf8)
            if chance(80) { json += Array(repeating: close, count: depth) }
        case 1:
            json = Array(json.prefix(below(json.count + 1)))
        case 2:
            json.insert(contentsOf: Array(pick(Self.jsonFragments).utf8), at: below(json.count + 1))
        case 3:
            if !json.isEmpty { json[below(json.count)] = pick(Array("{}[],:\"\\ 0-.eE".utf8)) }
        case 4:
            // Invalid UTF-8 or a raw control character inside a string.
            let bad: [[UInt8]] = [[0xC3, 0x28], [0xFF], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0x01], [0x00], [0x1F]]
            if let quote = json.firstIndex(of: UInt8(ascii: "\"")) {
                json.insert(contentsOf: pick(bad), at: quote + 1)
            } else {
                json += pick(bad)
            }
        case 5:
            // A string over the data limit.
            let size = mayBeHuge(limits) ? limits.maximumRequestBytes : 300
            json = [UInt8(ascii: "\"")] + Array(repeating: UInt8(ascii: "z"), count: size) + [UInt8(ascii: "\"")]
        case 6:
            // What APPENDMANY refuses: elements of the wrong kind, missing or unknown fields.
            json = Array(
                pick([
                    "[]", "[1]", "[[]]", #"[{"data":{}}]"#, #"[{"event_type":"x"}]"#, #"[{"event_type":1,"data":1}]"#,
                    #"[{"event_type":"x","data":1,"event_id":7}]"#, #"[{"event_type":"x","data":1,"metadata":[]}]"#,
                    #"[{"event_type":"x","data":1,"extra":1}]"#, #"[{"event_type":"bad name","data":1}]"#,
                    #"[{"event_type":"x","data":1,"event_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7"},"#
                        + #"{"event_type":"y","data":2,"event_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}]"#,
                    #"{"event_type":"x","data":1}"#, #"[{"event_type":"\ud800","data":1}]"#,
                    #"[{"event_type":"x","data":1,""# + String(repeating: "k", count: 700) + #"":1}]"#,
                ]).utf8)
        case 7:
            // Leading or trailing white space, including white space JSON does not allow.
            let spaces: [[UInt8]] = [[0x20], [0x09], [0x0A], [0x0D], [0xC2, 0xA0], [0x0B], [0x0C]]
            if chance(50) { json = pick(spaces) + json } else { json += pick(spaces) }
        case 8:
            // A number of every awkward form in place of a value.
            let numbers = ["-", "01", "1.", ".5", "1e", "-0", "1E+2", "1e999999999", "-123456789012345678901234567890"]
            json = Array("{\"n\":\(pick(numbers))}".utf8)
        case 9:
            if !json.isEmpty { json.remove(at: below(json.count)) }
        case 10:
            json += json
        default:
            if let quote = json.lastIndex(of: UInt8(ascii: "\"")) { json.remove(at: quote) }
        }
        return json
    }

    // MARK: - Byte mutations

    static let interestingBytes: [UInt8] = Array("\r\n*$-+: \t0129{}\"\\".utf8) + [0x00, 0x7F, 0x80, 0xC3, 0xFF]
    static let interestingNumbers: [String] = [
        "99999999999", "-1", "-2", "-99999999999", "0", "1", "4096", "4097", "1048576", "1048577",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "99999999999999999999999999", "", "+5",
        " 5", "5 ", "0x10", "1.5", "00000000000000000000001",
    ]

    private mutating func mutateBytes(_ bytes: inout [UInt8]) {
        if bytes.isEmpty {
            bytes = [pick(Self.interestingBytes)]
            return
        }
        let position = below(bytes.count)
        switch below(13) {
        case 0: bytes[position] ^= UInt8(1) << UInt8(below(8))
        case 1: bytes[position] = pick(Self.interestingBytes)
        case 2: bytes.insert(contentsOf: randomBytes(count: 1 + below(8)), at: position)
        case 3: bytes.removeSubrange(position..<min(bytes.count, position + 1 + below(8)))
        case 4:
            let end = min(bytes.count, position + 1 + below(32))
            bytes.insert(contentsOf: bytes[position..<end], at: end)
        case 5: bytes.removeSubrange(position...)
        case 6: replaceNumber(in: &bytes)
        case 7:
            // A nested array where a bulk string header should be.
            let header = bytes.indices.filter { bytes[$0] == UInt8(ascii: "$") }
            let at = header.isEmpty ? position : pick(header)
            bytes.insert(
                contentsOf: Array(pick(["*2\r\n", "*1\r\n*1\r\n", "*-1\r\n", "*0\r\n", "*3\r\n:1\r\n"]).utf8), at: at)
        case 8: crlfGame(&bytes)
        case 9:
            let invalid: [[UInt8]] = [[0xC3, 0x28], [0xFF, 0xFE], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xF8, 0x88]]
            bytes.insert(contentsOf: pick(invalid), at: position)
        case 10:
            // `*-1`, `*0` or a stray header in front.
            bytes.insert(
                contentsOf: Array(pick(["*-1\r\n", "*0\r\n", "$-1\r\n", "*\r\n", "$\r\n", "*-\r\n"]).utf8), at: 0)
        case 11: bytes[position] = UInt8.random(in: 0...255, using: &generator)
        default:
            // A long run of one byte: lines over the limit, long headers.
            bytes.insert(
                contentsOf: Array(repeating: pick(Self.interestingBytes), count: 1 + below(600)), at: position)
        }
    }

    /// Replaces the digits after a `*` or `$` with an awkward number: huge, negative, empty, signed, spaced.
    private mutating func replaceNumber(in bytes: inout [UInt8]) {
        let markers = bytes.indices.filter { bytes[$0] == UInt8(ascii: "*") || bytes[$0] == UInt8(ascii: "$") }
        guard !markers.isEmpty else { return }
        let start = pick(markers) + 1
        var end = start
        while end < bytes.count, bytes[end] == UInt8(ascii: "-") || (bytes[end] >= 0x30 && bytes[end] <= 0x39) {
            end += 1
        }
        bytes.replaceSubrange(start..<end, with: Array(pick(Self.interestingNumbers).utf8))
    }

    /// Line-ending games: LF alone, CR alone, LF CR, doubled, or a line end removed.
    private mutating func crlfGame(_ bytes: inout [UInt8]) {
        let ends = bytes.indices.filter { bytes[$0] == 10 }
        guard !ends.isEmpty else {
            bytes.insert(pick([13, 10]), at: below(bytes.count + 1))
            return
        }
        let newline = pick(ends)
        let hasCR = newline > 0 && bytes[newline - 1] == 13
        let start = hasCR ? newline - 1 : newline
        let replacement: [UInt8] = pick([[], [10], [13], [10, 13], [13, 10, 13, 10], [13, 13, 10], [0x20, 13, 10]])
        bytes.replaceSubrange(start...newline, with: replacement)
    }

    private mutating func randomBytes(count: Int) -> [UInt8] {
        (0..<count).map { _ in chance(50) ? pick(Self.interestingBytes) : UInt8.random(in: 0...255, using: &generator) }
    }

    /// The front of one input followed by the back of another, cut at random places.
    private mutating func spliced(_ first: [UInt8], with second: [UInt8]) -> [UInt8] {
        Array(first.prefix(below(first.count + 1))) + Array(second.suffix(below(second.count + 1)))
    }

    // MARK: - The oracle

    /// What the server would make of one request: a parsed request, a parser error, or a framing error.
    enum Outcome: Hashable, CustomStringConvertible {
        case request(Request)
        case parseError(code: String)
        case framingError(code: String, closes: Bool)

        var description: String {
            switch self {
            case .request(let request): return "request(\(String(describing: request).prefix(120)))"
            case .parseError(let code): return "parse error \(code)"
            case .framingError(let code, let closes): return "framing error \(code)\(closes ? ", closes" : "")"
            }
        }
    }

    /// The codes a request may be refused with before it reaches the executor.
    static let framingCodes: Set<ErrorCode> = [.badRequest, .tooLarge]
    static let parserCodes: Set<ErrorCode> = [.badRequest, .badJSON, .tooLarge]
    /// The longest error message: a message quotes at most a short prefix of what the client sent.
    static let maximumMessageBytes = 600

    /// Feeds `input` through `decoder` in reads of the given sizes (all at once when `nil`), as a server would:
    /// decode after each read until the decoder needs more data, and stop at an error that closes the connection.
    ///
    /// - Returns: What each request came to, and the bytes left unconsumed; `failures` gets every broken property.
    static func run(
        _ input: [UInt8], decoder: RequestFrameDecoder, parser: RequestParser, reads: [Int]?,
        failures: inout [String]
    ) -> (outcomes: [Outcome], left: Int, closed: Bool) {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        var outcomes: [Outcome] = []
        var offset = 0
        let sizes = reads ?? [input.count]
        var steps = 0
        // In reads, as the server does: the decoder goes on from where it stopped, and the buffer is compacted
        // between reads now and then.
        var progress = RequestFrameDecoder.Progress()
        for (index, size) in sizes.enumerated() where offset < input.count {
            let end = min(input.count, offset + max(size, 1))
            if index % 3 == 2 { buffer.discardReadBytes() }
            buffer.writeBytes(input[offset..<end])
            offset = end
            decoding: while true {
                steps += 1
                // Each decode consumes at least one byte or asks for more: more steps than bytes is a loop.
                guard steps <= input.count + sizes.count + 2 else {
                    failures.append("no progress after \(steps) decode calls")
                    return (outcomes, buffer.readableBytes, false)
                }
                let before = buffer.readableBytes
                let outcome =
                    reads == nil ? decoder.decode(&buffer) : decoder.decode(&buffer, resuming: &progress)
                switch outcome {
                case .needMoreData:
                    if buffer.readableBytes > decoder.maximumRequestBytes {
                        failures.append(
                            "needs more data while holding \(buffer.readableBytes) bytes, over the limit of "
                                + "\(decoder.maximumRequestBytes)")
                    }
                    break decoding
                case .frame(let frame):
                    if buffer.readableBytes >= before { failures.append("a frame consumed nothing") }
                    outcomes.append(parse(frame, parser: parser, failures: &failures))
                case .error(let error):
                    checkMessage(error.code, error.message, failures: &failures)
                    if !framingCodes.contains(error.code) {
                        failures.append("framing error with code \(error.code)")
                    }
                    outcomes.append(.framingError(code: error.code.rawValue, closes: error.closesConnection))
                    if error.closesConnection {
                        if error.code != .tooLarge { failures.append("\(error.code) closes the connection") }
                        return (outcomes, buffer.readableBytes, true)
                    }
                    if buffer.readableBytes >= before { failures.append("an error consumed nothing") }
                }
            }
        }
        return (outcomes, buffer.readableBytes, false)
    }

    /// Parses a frame as the connection handler does, and checks what it needs of the outcome.
    static func parse(_ frame: RequestFrame, parser: RequestParser, failures: inout [String]) -> Outcome {
        // The authentication gate looks at the verb of every frame, before parsing.
        _ = frame.isAllowedBeforeAuthentication
        do {
            let request = try parser.parse(frame)
            // What the gate lets through must be what the parser classifies as needing no authentication.
            if frame.isAllowedBeforeAuthentication != (request.requiredAccess == .unauthenticated) {
                failures.append("verb \(frame.verb ?? "nil") and \(request.requiredAccess) disagree")
            }
            return .request(request)
        } catch {
            checkMessage(error.code, error.message, failures: &failures)
            if !parserCodes.contains(error.code) { failures.append("parser error with code \(error.code)") }
            return .parseError(code: error.code.rawValue)
        }
    }

    /// An error reply must be one line, `-CODE message\r\n`, with a message that says something and stays short.
    static func checkMessage(_ code: ErrorCode, _ message: String, failures: inout [String]) {
        if message.isEmpty { failures.append("\(code) with an empty message") }
        if message.utf8.count > maximumMessageBytes {
            failures.append("\(code) message of \(message.utf8.count) bytes: \(message.prefix(80))…")
        }
        var reply = ByteBufferAllocator().buffer(capacity: 64)
        ReplyWriter.error(code, message, into: &reply)
        let bytes = Array(reply.readableBytesView)
        let lineEnds = bytes.indices.filter { bytes[$0] == 10 || bytes[$0] == 13 }
        if bytes.first != UInt8(ascii: "-") || lineEnds != [bytes.count - 2, bytes.count - 1] {
            failures.append(
                "the reply to \(code) is not one line: \(String(decoding: bytes, as: UTF8.self).debugDescription)")
        }
    }

    /// Checks one input: no trap, progress, bounded buffering, every request parsed or refused with a code, and
    /// the same outcomes whatever the reads.
    static func check(_ input: [UInt8], limits: Limits, chunking: [Int]) -> [String] {
        var failures: [String] = []
        let decoder = limits.decoder
        let parser = limits.parser
        let atOnce = run(input, decoder: decoder, parser: parser, reads: nil, failures: &failures)
        let chunked = run(input, decoder: decoder, parser: parser, reads: chunking, failures: &failures)
        if atOnce.outcomes != chunked.outcomes {
            let index =
                zip(atOnce.outcomes, chunked.outcomes).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                ?? min(atOnce.outcomes.count, chunked.outcomes.count)
            failures.append(
                "outcomes depend on the reads: at once \(atOnce.outcomes.count), in \(chunking.count) reads "
                    + "\(chunked.outcomes.count); first difference at \(index): "
                    + "\(atOnce.outcomes.dropFirst(index).first.map(String.init(describing:)) ?? "none") vs "
                    + "\(chunked.outcomes.dropFirst(index).first.map(String.init(describing:)) ?? "none")")
        }
        if atOnce.closed != chunked.closed || (!atOnce.closed && atOnce.left != chunked.left) {
            failures.append(
                "ends differ: at once left \(atOnce.left) (closed \(atOnce.closed)), in reads left \(chunked.left) "
                    + "(closed \(chunked.closed))")
        }
        return failures
    }

    /// A printable form of an input, short enough for a failure message, to reproduce it by hand.
    static func describe(_ input: [UInt8]) -> String {
        let shown = String(decoding: input.prefix(400), as: UTF8.self).debugDescription
        return input.count > 400 ? "\(shown)… (\(input.count) bytes)" : shown
    }
}
