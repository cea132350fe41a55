import LoglineCore
import LoglineProtocol
import NIOCore
import Testing

private let uuid = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
private let uuidValue = EventID(high: 0x7c9e_6679_7425_40de, low: 0x944b_e07f_c1f9_0ae7)

/// Parses `frame`, recording an issue when it fails.
private func parsed(
    _ frame: RequestFrame, _ parser: RequestParser = RequestParser(), sourceLocation: SourceLocation = #_sourceLocation
) -> Request? {
    do {
        return try parser.parse(frame)
    } catch {
        Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The same words as a RESP frame and as an inline line joined by single spaces.
private func bothForms(_ words: [String]) -> [RequestFrame] {
    [.resp(words.map(byteBuffer)), inlineFrame(words.joined(separator: " "))]
}

/// Checks that `frame` fails with `code`.
private func expectFailure(
    _ frame: RequestFrame, _ code: ErrorCode, _ parser: RequestParser = RequestParser(),
    sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let error = parseError(frame, parser) else {
        Issue.record("expected \(code), but \(frame) parsed", sourceLocation: sourceLocation)
        return
    }
    #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
}

/// Checks that `words` fail with `code` as RESP and as an inline line.
private func expectFailure(
    _ words: [String], _ code: ErrorCode, _ parser: RequestParser = RequestParser(),
    sourceLocation: SourceLocation = #_sourceLocation
) {
    for frame in bothForms(words) {
        expectFailure(frame, code, parser, sourceLocation: sourceLocation)
    }
}

@Suite("RequestParser: PING and the housekeeping verbs")
struct RequestParserSimpleVerbTests {
    @Test("PING without a message")
    func ping() {
        for frame in [respFrame("PING"), inlineFrame("PING"), inlineFrame("  PING  ")] {
            #expect(parsed(frame) == .ping(message: nil))
        }
    }

    @Test("PING with a message gives the message's bytes")
    func pingMessage() {
        #expect(parsed(respFrame("PING", "hello")) == .ping(message: bytes("hello")))
        #expect(parsed(inlineFrame("PING hello")) == .ping(message: bytes("hello")))
        // Inline: the rest of the line, trimmed.
        #expect(parsed(inlineFrame("PING  hello world  ")) == .ping(message: bytes("hello world")))
        // RESP: one argument, exactly as sent, even with spaces or binary bytes.
        let binary: [UInt8] = [0x20, 0x00, 0xFF, 0x0D, 0x0A, 0x20]
        #expect(parsed(respFrame([bytes("PING"), binary])) == .ping(message: binary))
        #expect(parsed(respFrame("PING", "")) == .ping(message: []))
    }

    @Test("PING with two RESP arguments is too many")
    func pingTooMany() {
        expectFailure(respFrame("PING", "a", "b"), .badRequest)
    }

    @Test("verbs are case-insensitive", arguments: ["ping", "Ping", "pInG", "PING"])
    func caseInsensitiveVerb(_ verb: String) {
        #expect(parsed(respFrame(verb)) == .ping(message: nil))
        #expect(parsed(inlineFrame(verb)) == .ping(message: nil))
    }

    @Test("verbs and options take ASCII letters in any case, and nothing else for them")
    func keywordsAreASCII() throws {
        #expect(
            parsed(inlineFrame("read order o1 from 2 Count 3")) == parsed(inlineFrame("READ order o1 FROM 2 COUNT 3")))
        // A dotless ı or a long ſ is not an I or an S, in a verb or in an option.
        expectFailure(respFrame("pıng"), .badRequest)
        expectFailure(respFrame("ſubmit", "create-order", "{}"), .badRequest)
        #expect(parsed(inlineFrame("QUERY orders limit 5")) == parsed(inlineFrame("QUERY orders LIMIT 5")))
        expectFailure(inlineFrame("QUERY orders lımıt 5"), .badRequest)
        // An unknown verb is echoed as it came, its ASCII letters in upper case.
        let error = try #require(parseError(respFrame("été"), RequestParser()))
        #expect(error.message.contains("'éTé'"))
        // The verb a frame shows, for the checks before parsing, is read the same way.
        #expect(RequestFrame.inline(byteBuffer("  aUtH secret")).verb == "AUTH")
        #expect(respFrame("pıng").verb == "PıNG")
    }

    @Test("INFO, with or without a section")
    func info() {
        for frame in [respFrame("INFO"), respFrame("info", "server"), inlineFrame("INFO"), inlineFrame("Info all")] {
            #expect(parsed(frame) == .info)
        }
    }

    @Test("QUIT")
    func quit() {
        #expect(parsed(respFrame("QUIT")) == .quit)
        #expect(parsed(inlineFrame("quit")) == .quit)
    }

    @Test("COMMAND and COMMAND DOCS")
    func command() {
        #expect(parsed(respFrame("COMMAND")) == .redisCompatibility(.command))
        #expect(parsed(respFrame("COMMAND", "DOCS")) == .redisCompatibility(.command))
        #expect(parsed(inlineFrame("command")) == .redisCompatibility(.command))
    }

    @Test("CONFIG GET gives the parameter in lower case")
    func configGet() {
        for frame in bothForms(["CONFIG", "GET", "save"]) {
            #expect(parsed(frame) == .redisCompatibility(.configGet("save")))
        }
        #expect(parsed(respFrame("config", "get", "APPENDONLY")) == .redisCompatibility(.configGet("appendonly")))
        #expect(parsed(respFrame("CONFIG", "GET")) == .redisCompatibility(.configGet("")))
    }

    @Test("CLIENT and SELECT are answered with OK")
    func clientSelect() {
        #expect(parsed(respFrame("CLIENT", "SETNAME", "x")) == .redisCompatibility(.ok))
        #expect(parsed(respFrame("SELECT", "0")) == .redisCompatibility(.ok))
        #expect(parsed(inlineFrame("select 0")) == .redisCompatibility(.ok))
    }

    @Test("ECHO gives its message back; without one it is BADREQ")
    func echo() {
        #expect(parsed(respFrame("ECHO", "hi there")) == .redisCompatibility(.echo(bytes("hi there"))))
        #expect(parsed(inlineFrame("ECHO hi there")) == .redisCompatibility(.echo(bytes("hi there"))))
        #expect(parsed(respFrame("echo", "")) == .redisCompatibility(.echo([])))
        expectFailure(respFrame("ECHO"), .badRequest)
        expectFailure(inlineFrame("ECHO   "), .badRequest)
    }

    @Test("unknown and empty verbs are BADREQ")
    func unknownVerb() {
        expectFailure(["SET", "a", "b"], .badRequest)
        expectFailure(["PINGX"], .badRequest)
        expectFailure(["APPEND2", "a", "b", "c", "{}"], .badRequest)
        expectFailure(inlineFrame(""), .badRequest)
        expectFailure(inlineFrame(" \t "), .badRequest)
        expectFailure(.resp([ByteBuffer()]), .badRequest)
        expectFailure(respFrame([[0xFF, 0xFE]]), .badRequest)
    }
}

@Suite("RequestParser: APPEND")
struct RequestParserAppendTests {
    /// Parses `frame` as an APPEND.
    private func append(
        _ frame: RequestFrame, _ parser: RequestParser = RequestParser(),
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> AppendCommand? {
        guard let request = parsed(frame, parser, sourceLocation: sourceLocation) else { return nil }
        guard case .append(let command) = request else {
            Issue.record("expected APPEND, got \(request)", sourceLocation: sourceLocation)
            return nil
        }
        return command
    }

    @Test("the plainest APPEND: EXPECT ANY, no id, metadata {}")
    func plain() {
        for frame in bothForms(["APPEND", "order", "o1", "order-created", #"{"total":12}"#]) {
            guard let command = append(frame) else { continue }
            #expect(command.stream == StreamName(uncheckedType: "order", id: "o1"))
            #expect(command.stream.aggregateType == "order")
            #expect(command.stream.aggregateID == "o1")
            #expect(command.expectedVersion == .any)
            #expect(command.event.eventType == "order-created")
            #expect(command.event.eventID == nil)
            #expect(command.event.data == bytes(#"{"total":12}"#))
            #expect(command.event.metadata == bytes("{}"))
        }
    }

    @Test("every combination and order of EXPECT, ID and META, in both forms")
    func optionCombinations() {
        let expectations: [(words: [String], value: ExpectedVersion)?] = [
            nil, (["EXPECT", "0"], .exact(0)), (["EXPECT", "7"], .exact(7)), (["EXPECT", "ANY"], .any),
            (["EXPECT", "NONE"], .noStream), (["expect", "none"], .noStream), (["Expect", "any"], .any),
            (["EXPECT", "18446744073709551615"], .exact(UInt64.max)),
        ]
        let ids: [[String]?] = [nil, ["ID", uuid], ["id", uuid.uppercased()]]
        let metas: [[String]?] = [nil, ["META", #"{"user":"ann","n":[1,2]}"#], ["meta", "{}"]]
        var checked = 0
        for expectation in expectations {
            for id in ids {
                for meta in metas {
                    let groups = [expectation?.words, id, meta].compactMap { $0 }
                    for order in permutations(groups) {
                        let words = ["APPEND", "account", "acc-9", "deposited"] + order.flatMap { $0 } + ["[1,2]"]
                        for frame in bothForms(words) {
                            guard let command = append(frame) else { continue }
                            #expect(command.stream == StreamName(uncheckedType: "account", id: "acc-9"), "\(words)")
                            #expect(command.event.eventType == "deposited", "\(words)")
                            #expect(command.expectedVersion == (expectation?.value ?? .any), "\(words)")
                            #expect(command.event.eventID == (id == nil ? nil : uuidValue), "\(words)")
                            #expect(command.event.metadata == bytes(meta?[1] ?? "{}"), "\(words)")
                            #expect(command.event.data == bytes("[1,2]"), "\(words)")
                            checked += 1
                        }
                    }
                }
            }
        }
        // 7 EXPECT values, 2 IDs and 2 METAs, or none of each; k options present can come in k! orders:
        // 1 (none) + 11 (one) + 32 × 2 (two) + 28 × 6 (three) = 244 requests, each in 2 forms.
        #expect(checked == 2 * (1 + 11 + 32 * 2 + 28 * 6))
    }

    @Test("an option repeated takes its last value")
    func repeatedOption() {
        let command = append(respFrame("APPEND", "a", "b", "c", "EXPECT", "1", "EXPECT", "2", "{}"))
        #expect(command?.expectedVersion == .exact(2))
    }

    @Test("inline data may contain spaces: the rest of the line is the data")
    func inlineDataWithSpaces() {
        let command = append(inlineFrame(#"APPEND order o2 order-created {"a": 1, "b": [1, 2]}"#))
        #expect(command?.stream == StreamName(uncheckedType: "order", id: "o2"))
        #expect(command?.event.eventType == "order-created")
        #expect(command?.event.data == bytes(#"{"a": 1, "b": [1, 2]}"#))
        #expect(command?.event.metadata == bytes("{}"))
    }

    @Test("inline data is trimmed of the spaces and tabs around it, and may contain tabs")
    func inlineDataTrimmed() {
        let command = append(inlineFrame("APPEND\torder  o2\t order-created \t {\"a\":\t[1,  2]} \t "))
        #expect(command?.stream == StreamName(uncheckedType: "order", id: "o2"))
        #expect(command?.event.data == bytes("{\"a\":\t[1,  2]}"))
    }

    @Test("inline META with spaces, followed by options and data with spaces")
    func inlineMetaWithSpaces() {
        let line = #"APPEND order o3 shipped META {"user": "ann", "tags": ["a b", "}"]} EXPECT 3 {"x": 1, "y": "z w"}"#
        let command = append(inlineFrame(line))
        #expect(command?.event.metadata == bytes(#"{"user": "ann", "tags": ["a b", "}"]}"#))
        #expect(command?.expectedVersion == .exact(3))
        #expect(command?.event.data == bytes(#"{"x": 1, "y": "z w"}"#))
    }

    @Test("inline META followed directly by data")
    func inlineMetaThenData() {
        let command = append(inlineFrame(#"APPEND order o3 shipped META { "k" : [ 1 ] } "plain string""#))
        #expect(command?.event.metadata == bytes(#"{ "k" : [ 1 ] }"#))
        #expect(command?.event.data == bytes(#""plain string""#))
    }

    @Test("RESP data is kept byte for byte, white space, escapes and UTF-8 included")
    func respDataExact() {
        let data = " {\"é\" : \"\\u00e9\\n\\\"\", \"n\":[ 1.5e3 , -0 , null ]}\n "
        let meta = "{ \"trace\" : \"t-1\" }"
        let command = append(respFrame("APPEND", "order", "o1", "created", "META", meta, data))
        #expect(command?.event.data == bytes(data))
        #expect(command?.event.metadata == bytes(meta))
    }

    @Test("scalar JSON data is accepted: numbers, strings, literals")
    func scalarData() {
        for data in ["5", "-1.5e-3", "\"text\"", "true", "false", "null", "[]", "{}"] {
            #expect(append(respFrame("APPEND", "a", "b", "c", data))?.event.data == bytes(data), "\(data)")
        }
        // A number after EXPECT's value is data, not another option.
        let command = append(respFrame("APPEND", "a", "b", "c", "EXPECT", "5", "7"))
        #expect(command?.expectedVersion == .exact(5))
        #expect(command?.event.data == bytes("7"))
    }

    @Test("names of 1 and 200 bytes from the whole alphabet are accepted")
    func validNames() {
        let longest = String(repeating: "a", count: 200)
        let alphabet = "AZaz09._:@-"
        let command = append(respFrame("APPEND", longest, alphabet, longest, "{}"))
        #expect(command?.stream.aggregateType == longest)
        #expect(command?.stream.aggregateID == alphabet)
        #expect(command?.event.eventType == longest)
        #expect(append(respFrame("APPEND", "a", "b", "c", "{}"))?.stream == StreamName(uncheckedType: "a", id: "b"))
    }

    @Test(
        "bad names in any of the three positions are BADREQ",
        arguments: [String(repeating: "a", count: 201), "a/b", "a b", "é", "a\u{0}b", "a,b", "{}", "a\"b", ""])
    func badNames(_ bad: String) {
        expectFailure(respFrame("APPEND", bad, "o1", "created", "{}"), .badRequest)
        expectFailure(respFrame("APPEND", "order", bad, "created", "{}"), .badRequest)
        expectFailure(respFrame("APPEND", "order", "o1", bad, "{}"), .badRequest)
    }

    @Test("bad names inline are BADREQ")
    func badNamesInline() {
        expectFailure(inlineFrame("APPEND " + String(repeating: "x", count: 201) + " o1 created {}"), .badRequest)
        expectFailure(inlineFrame("APPEND order o/1 created {}"), .badRequest)
        expectFailure(inlineFrame("APPEND order o1 créé {}"), .badRequest)
    }

    @Test("missing parts are BADREQ")
    func missingParts() {
        expectFailure(["APPEND"], .badRequest)
        expectFailure(["APPEND", "order"], .badRequest)
        expectFailure(["APPEND", "order", "o1"], .badRequest)
        expectFailure(["APPEND", "order", "o1", "created"], .badRequest)
        expectFailure(["APPEND", "order", "o1", "created", "EXPECT", "1"], .badRequest)
        expectFailure(["APPEND", "order", "o1", "created", "EXPECT"], .badRequest)
        expectFailure(["APPEND", "order", "o1", "created", "ID"], .badRequest)
        expectFailure(["APPEND", "order", "o1", "created", "META"], .badRequest)
    }

    @Test("bad EXPECT values are BADREQ", arguments: ["-1", "abc", "+1", "1.0", "0x10", "18446744073709551616", "1 2"])
    func badExpect(_ value: String) {
        expectFailure(respFrame("APPEND", "order", "o1", "created", "EXPECT", value, "{}"), .badRequest)
    }

    @Test("bad EXPECT values inline are BADREQ")
    func badExpectInline() {
        expectFailure(inlineFrame("APPEND order o1 created EXPECT -1 {}"), .badRequest)
        expectFailure(inlineFrame("APPEND order o1 created EXPECT abc {}"), .badRequest)
    }

    @Test(
        "bad event ids are BADREQ",
        arguments: [
            "not-a-uuid", "7c9e6679-7425-40de-944b-e07fc1f90ae", "7c9e6679-7425-40de-944b-e07fc1f90ae7a",
            "7c9e6679x7425-40de-944b-e07fc1f90ae7", "7c9e6679-7425-40de-944b-e07fc1f90aeg",
            "{7c9e6679-7425-40de-944b-e07fc1f90ae7}", "7c9e6679742540de944be07fc1f90ae7", "",
        ])
    func badEventID(_ id: String) {
        expectFailure(respFrame("APPEND", "order", "o1", "created", "ID", id, "{}"), .badRequest)
    }

    @Test("an event id in upper case is the same id")
    func upperCaseID() {
        #expect(append(respFrame("APPEND", "o", "1", "c", "ID", uuid.uppercased(), "{}"))?.event.eventID == uuidValue)
    }

    @Test(
        "data that is not JSON is BADJSON",
        arguments: [#"{"a":}"#, "{'a':1}", "abc", "{", "[1,]", #"{"a":1}}"#, "01", "\"unterminated", "nul"])
    func badData(_ data: String) {
        expectFailure(respFrame("APPEND", "order", "o1", "created", data), .badJSON)
    }

    @Test("inline data with words after the JSON is BADJSON; RESP data with an extra argument is BADREQ")
    func trailingAfterData() {
        expectFailure(inlineFrame(#"APPEND order o1 created {"a":1} extra"#), .badJSON)
        expectFailure(respFrame("APPEND", "order", "o1", "created", "{}", "extra"), .badRequest)
    }

    @Test("data that is not UTF-8 is BADJSON")
    func nonUTF8Data() {
        let data: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        expectFailure(respFrame([bytes("APPEND"), bytes("o"), bytes("1"), bytes("c"), data]), .badJSON)
    }

    @Test(
        "META that is not a JSON object is BADJSON", arguments: ["[1,2]", "\"x\"", "5", "null", "true", "{bad", "{}}"])
    func metaNotObject(_ meta: String) {
        expectFailure(respFrame("APPEND", "order", "o1", "created", "META", meta, "{}"), .badJSON)
    }

    @Test("inline META that is not a JSON object is BADJSON")
    func metaNotObjectInline() {
        expectFailure(inlineFrame("APPEND order o1 created META [1, 2] {}"), .badJSON)
        expectFailure(inlineFrame(#"APPEND order o1 created META "x" {}"#), .badJSON)
        expectFailure(inlineFrame("APPEND order o1 created META {bad {}"), .badJSON)
    }

    @Test("data up to maximumDataBytes is accepted; one byte more is TOOLARGE")
    func dataLimit() {
        let parser = RequestParser(maximumDataBytes: 16)
        let fits = "\"" + String(repeating: "a", count: 14) + "\""
        let over = "\"" + String(repeating: "a", count: 15) + "\""
        #expect(fits.utf8.count == 16)
        #expect(append(respFrame("APPEND", "o", "1", "c", fits), parser)?.event.data == bytes(fits))
        expectFailure(respFrame("APPEND", "o", "1", "c", over), .tooLarge, parser)
        expectFailure(inlineFrame("APPEND o 1 c " + over), .tooLarge, parser)
        #expect(RequestParser().maximumDataBytes == 1 << 20)
    }

    @Test("metadata over 64 KiB is TOOLARGE")
    func metadataLimit() {
        let fits = #"{"k":""# + String(repeating: "m", count: 65_536 - 8) + #""}"#
        let over = #"{"k":""# + String(repeating: "m", count: 65_536 - 7) + #""}"#
        #expect(fits.utf8.count == 65_536)
        #expect(append(respFrame("APPEND", "o", "1", "c", "META", fits, "{}"))?.event.metadata == bytes(fits))
        expectFailure(respFrame("APPEND", "o", "1", "c", "META", over, "{}"), .tooLarge)
    }
}

/// All orders of `items`.
private func permutations<T>(_ items: [T]) -> [[T]] {
    guard items.count > 1 else { return [items] }
    var result: [[T]] = []
    for (index, item) in items.enumerated() {
        var rest = items
        rest.remove(at: index)
        for tail in permutations(rest) { result.append([item] + tail) }
    }
    return result
}
