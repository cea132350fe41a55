import Foundation
import LoglineCore
import Testing

/// Helpers that turn test inputs into bytes.
private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Wraps raw bytes (possibly not UTF-8) in a JSON string's quotes.
private func quoted(_ raw: [UInt8]) -> [UInt8] { [UInt8(ascii: "\"")] + raw + [UInt8(ascii: "\"")] }

private func nestedArrays(_ depth: Int) -> String {
    String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
}

private func nestedObjects(_ depth: Int) -> String {
    String(repeating: #"{"a":"#, count: depth - 1) + "{}" + String(repeating: "}", count: depth - 1)
}

@Suite("JSONValidator: valid documents")
struct JSONValidatorValidTests {
    @Test(
        "scalars and literals",
        arguments: [
            "null", "true", "false", "0", "-0", "1", "-1", "7", "123", "1.5", "-1.5", "0.0", "0.000001",
            "1e10", "1E10", "1e+10", "1e-10", "1E+2", "-1.5e10", "0e0", "0E-0", "1.0E-0", "-0.0e+00",
            "123456789012345678901234567890", "1.7976931348623157e308", "4.9e-324",
            "-9223372036854775808", "18446744073709551615",
        ])
    func scalars(_ text: String) {
        #expect(JSONValidator.validate(bytes(text)) == nil)
    }

    @Test(
        "strings, escapes and unicode",
        arguments: [
            #""""#, #""abc""#, #""with space and 'single quotes'""#,
            #""\"\\\/\b\f\n\r\t""#,
            #""\u0041\u00e9\u00E9\uABCD\uabcd\u0000\uFFFF""#,
            #""\uD83D\uDE00""#,
            #""\uD800""#,  // a lone surrogate escape is allowed by the RFC 8259 grammar
            "\"héllo wörld\"", "\"日本語のテキスト\"", "\"emoji 😀👍🏽\"", "\"mixed \\u00e9 é\"",
            "\"\u{7F}\"",  // DEL is not a control character for JSON
            "\"\u{80}\"", "\"\u{7FF}\"", "\"\u{800}\"", "\"\u{D7FF}\"", "\"\u{E000}\"", "\"\u{FFFD}\"",
            "\"\u{FFFF}\"", "\"\u{10000}\"", "\"\u{10FFFF}\"",
        ])
    func strings(_ text: String) {
        #expect(JSONValidator.validate(bytes(text)) == nil)
    }

    @Test(
        "arrays and objects",
        arguments: [
            "[]", "{}", "[ ]", "{ }", "[1,2,3]", "[null,true,false]", #"["a",["b",["c"]]]"#,
            #"{"a":1}"#, #"{"":0}"#, #"{"a":1,"a":2}"#,
            #"{"a":1,"b":[true,false,null],"c":{"d":"e","f":[{"g":[]}]},"h":-0.5e-3}"#,
            #"[{"a":{}},{"b":[]},[[{}]]]"#,
            #"{"key with \"escapes\" \u00e9":"välue"}"#,
            " \t\n\r{ \"a\" : [ 1 , 2 ] , \"b\" :\n{ } }\r\n ",
            "\n[\n  1,\n  2\n]\n",
        ])
    func containers(_ text: String) {
        #expect(JSONValidator.validate(bytes(text)) == nil)
    }

    @Test("nesting up to the maximum depth is accepted")
    func maximumDepth() {
        #expect(JSONValidator.maximumDepth == 256)
        #expect(JSONValidator.validate(bytes(nestedArrays(JSONValidator.maximumDepth))) == nil)
        #expect(JSONValidator.validate(bytes(nestedObjects(JSONValidator.maximumDepth))) == nil)
        // Mixed: 128 objects around 128 arrays.
        let mixed = String(repeating: #"{"k":"#, count: 128) + nestedArrays(128) + String(repeating: "}", count: 128)
        #expect(JSONValidator.validate(bytes(mixed)) == nil)
    }

    @Test("every overload agrees: arrays, slices, String.UTF8View, non-contiguous sequences, buffers")
    func overloads() {
        let text = #"{"a":[1,2,{"b":"é"}]}"#
        let array = bytes(text)
        #expect(JSONValidator.validate(array) == nil)
        #expect(JSONValidator.validate(array[...]) == nil)
        #expect(JSONValidator.validate(text.utf8) == nil)
        #expect(JSONValidator.validate(array.lazy.map { $0 }) == nil)
        #expect(JSONValidator.validate(AnySequence(array)) == nil)
        array.withUnsafeBufferPointer { #expect(JSONValidator.validate($0) == nil) }

        let broken = bytes(#"{"a":[1,2,}"#)
        let expected = JSONValidator.validate(broken)
        #expect(expected != nil)
        #expect(JSONValidator.validate(AnySequence(broken)) == expected)
        #expect(JSONValidator.validate(broken.lazy.map { $0 }) == expected)
        broken.withUnsafeBufferPointer { #expect(JSONValidator.validate($0) == expected) }
    }

    @Test("a slice is validated within its own bounds")
    func sliceBounds() {
        let storage = bytes(#"xx[1,2]yy"abc"zz"#)
        #expect(JSONValidator.validate(storage[2..<7]) == nil)  // [1,2]
        #expect(JSONValidator.validate(storage[9..<14]) == nil)  // "abc"
        #expect(JSONValidator.validate(storage[2..<6]) != nil)  // [1,2 — the ] beyond the slice must not count
        #expect(JSONValidator.validate(storage[9..<13]) != nil)  // "abc — unterminated inside the slice
    }
}

@Suite("JSONValidator: invalid documents")
struct JSONValidatorInvalidTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let input: [UInt8]
        let offset: Int?
        let reason: String?

        init(_ name: String, _ input: [UInt8], offset: Int? = nil, reason: String? = nil) {
            self.name = name
            self.input = input
            self.offset = offset
            self.reason = reason
        }

        init(_ text: String, offset: Int? = nil, reason: String? = nil) {
            self.init(text.debugDescription, Array(text.utf8), offset: offset, reason: reason)
        }

        var testDescription: String { name }
    }

    private static func check(_ testCase: Case) {
        let failure = JSONValidator.validate(testCase.input)
        #expect(failure != nil, "\(testCase.name) should be rejected")
        guard let failure else { return }
        #expect(failure.offset >= 0 && failure.offset <= testCase.input.count)
        if let offset = testCase.offset {
            #expect(failure.offset == offset, "\(testCase.name): \(failure)")
        }
        if let reason = testCase.reason {
            #expect(failure.reason.contains(reason), "\(testCase.name): \(failure)")
        }
        #expect(failure.description == "\(failure.reason) at byte \(failure.offset)")
    }

    @Test(
        "empty input and structural errors",
        arguments: [
            Case("", offset: 0, reason: "unexpected end"),
            Case("   \n\t ", offset: 6, reason: "unexpected end"),
            Case("[1,2,]", offset: 5, reason: "unexpected character"),
            Case(#"{"a":1,}"#, offset: 7, reason: "expected a string key"),
            Case("[,1]", offset: 1, reason: "unexpected character"),
            Case("{,}", offset: 1, reason: "expected a string key"),
            Case("[1 2]", offset: 3, reason: "expected ',' or ']'"),
            Case(#"{"a" 1}"#, offset: 5, reason: "expected ':'"),
            Case(#"{"a":}"#, offset: 5, reason: "unexpected character"),
            Case("{a:1}", offset: 1, reason: "expected a string key"),
            Case("{'a':1}", offset: 1, reason: "expected a string key"),
            Case(#"{"a":1 "b":2}"#, offset: 7, reason: "expected ',' or '}'"),
            Case(#"{"a":1,,"b":2}"#, offset: 7),
            Case(#"{1:2}"#, offset: 1),
            Case("]", offset: 0, reason: "unexpected character"),
            Case("}", offset: 0, reason: "unexpected character"),
            Case(":", offset: 0),
            Case("'single'", offset: 0),
        ])
    func structure(_ testCase: Case) { Self.check(testCase) }

    @Test(
        "bad escapes",
        arguments: [
            Case(#""\x""#, offset: 2, reason: "invalid escape"),
            Case(#""\'""#, offset: 2, reason: "invalid escape"),
            Case(#""\U0041""#, offset: 2, reason: "invalid escape"),
            Case(#""\a""#, offset: 2, reason: "invalid escape"),
            Case(#""\0""#, offset: 2, reason: "invalid escape"),
            Case(#""\u12""#, offset: 2, reason: "invalid \\u escape"),
            Case(#""\u12G4""#, offset: 2, reason: "invalid \\u escape"),
            Case(#""\u""#, offset: 2, reason: "invalid \\u escape"),
            Case(#""\u123"#, reason: "invalid \\u escape"),
            Case(#""\"#),
            Case(#""abc\"#),
        ])
    func escapes(_ testCase: Case) { Self.check(testCase) }

    @Test(
        "raw control characters in strings",
        arguments: [UInt8(0x00), 0x01, 0x08, 0x09, 0x0A, 0x0D, 0x1B, 0x1F])
    func controlCharacters(_ byte: UInt8) {
        let input = quoted(bytes("ab") + [byte] + bytes("cd"))
        let failure = JSONValidator.validate(input)
        #expect(failure?.offset == 3)
        #expect(failure?.reason.contains("control character") == true)
    }

    @Test(
        "invalid UTF-8 in strings",
        arguments: [
            Case("lone continuation byte", quoted([0x80]), offset: 1),
            Case("lone continuation byte 0xBF", quoted([0x61, 0xBF]), offset: 2),
            Case("overlong 2-byte C0 80", quoted([0xC0, 0x80]), offset: 1),
            Case("overlong 2-byte C1 BF", quoted([0xC1, 0xBF]), offset: 1),
            Case("overlong 3-byte E0 80 80", quoted([0xE0, 0x80, 0x80]), offset: 1),
            Case("overlong 3-byte E0 9F BF", quoted([0xE0, 0x9F, 0xBF]), offset: 1),
            Case("overlong 4-byte F0 80 80 80", quoted([0xF0, 0x80, 0x80, 0x80]), offset: 1),
            Case("overlong 4-byte F0 8F BF BF", quoted([0xF0, 0x8F, 0xBF, 0xBF]), offset: 1),
            Case("high surrogate U+D800", quoted([0xED, 0xA0, 0x80]), offset: 1),
            Case("low surrogate U+DFFF", quoted([0xED, 0xBF, 0xBF]), offset: 1),
            Case("encoded surrogate pair", quoted([0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]), offset: 1),
            Case("above U+10FFFF (F4 90)", quoted([0xF4, 0x90, 0x80, 0x80]), offset: 1),
            Case("lead byte F5", quoted([0xF5, 0x80, 0x80, 0x80]), offset: 1),
            Case("lead byte F8", quoted([0xF8, 0x88, 0x80, 0x80, 0x80]), offset: 1),
            Case("lead byte FE", quoted([0xFE]), offset: 1),
            Case("lead byte FF", quoted([0xFF]), offset: 1),
            Case("truncated 2-byte sequence before the quote", quoted([0xC3]), offset: 1),
            Case("truncated 3-byte sequence before the quote", quoted([0xE6, 0x97]), offset: 1),
            Case("truncated 4-byte sequence before the quote", quoted([0xF0, 0x9F, 0x98]), offset: 1),
            Case("bad third byte", quoted([0xE6, 0x97, 0x41]), offset: 1),
            Case("bad fourth byte", quoted([0xF0, 0x9F, 0x98, 0x41]), offset: 1),
            Case("truncated at end of input", [0x22, 0xE6, 0x97], offset: 1),
            Case("valid prefix then invalid", quoted(Array("é".utf8) + [0xC0, 0xAF]), offset: 3),
            Case("raw UTF-8 outside a string", Array("é".utf8), offset: 0, reason: "unexpected character"),
        ])
    func invalidUTF8(_ testCase: Case) { Self.check(testCase) }

    @Test(
        "numbers",
        arguments: [
            Case("01", offset: 1, reason: "unexpected data after"),
            Case("00", offset: 1),
            Case("-01", offset: 2),
            Case("-00", offset: 2),
            Case("[01]", offset: 2),
            Case(#"{"a":007}"#, offset: 6),
            Case("-", offset: 1, reason: "invalid number"),
            Case("-a", offset: 1, reason: "invalid number"),
            Case("- 1", offset: 1, reason: "invalid number"),
            Case("1.", offset: 2, reason: "invalid number"),
            Case("1.e5", offset: 2, reason: "invalid number"),
            Case(".5", offset: 0, reason: "unexpected character"),
            Case("1e", offset: 2, reason: "invalid number"),
            Case("1e+", offset: 3, reason: "invalid number"),
            Case("1E-", offset: 3, reason: "invalid number"),
            Case("1e+-1", offset: 3, reason: "invalid number"),
            Case("+1", offset: 0, reason: "unexpected character"),
            Case("0x10", offset: 1),
            Case("1_000", offset: 1),
            Case("1.5.5", offset: 3),
            Case("NaN", offset: 0),
            Case("Infinity", offset: 0),
            Case("-Infinity", offset: 1, reason: "invalid number"),
            Case("[1,-]", offset: 4, reason: "invalid number"),
        ])
    func numbers(_ testCase: Case) { Self.check(testCase) }

    @Test(
        "literals",
        arguments: [
            Case("tru", offset: 0, reason: "invalid literal"),
            Case("True", offset: 0),
            Case("nul", offset: 0, reason: "invalid literal"),
            Case("nulL", offset: 0, reason: "invalid literal"),
            Case("fals", offset: 0, reason: "invalid literal"),
            Case("falsy", offset: 0, reason: "invalid literal"),
            Case("nulll", offset: 4, reason: "unexpected data after"),
            Case("truex", offset: 4, reason: "unexpected data after"),
            Case("[tru]", offset: 1, reason: "invalid literal"),
        ])
    func literals(_ testCase: Case) { Self.check(testCase) }

    @Test(
        "unterminated documents",
        arguments: [
            Case(#""abc"#, offset: 4, reason: "unterminated string"),
            Case(#"""#, offset: 1, reason: "unterminated string"),
            Case("[1,2", offset: 4, reason: "unexpected end"),
            Case("[1,2,", offset: 5, reason: "unexpected end"),
            Case("[", offset: 1),
            Case("{", offset: 1),
            Case(#"{"a":1"#, offset: 6, reason: "unexpected end"),
            Case(#"{"a""#, offset: 4),
            Case(#"{"a":"#, offset: 5, reason: "unexpected end"),
            Case(#"{"a":["#, offset: 6),
            Case(#"[{"a":[1]}"#, offset: 10),
        ])
    func unterminated(_ testCase: Case) { Self.check(testCase) }

    @Test(
        "trailing garbage",
        arguments: [
            Case("{} x", offset: 3, reason: "unexpected data after the JSON value"),
            Case("1 2", offset: 2, reason: "unexpected data after the JSON value"),
            Case("[]]", offset: 2),
            Case("{}{}", offset: 2),
            Case(#""a""b""#, offset: 3),
            Case("null,", offset: 4),
            Case("true false", offset: 5),
            Case("{}\u{0}", offset: 2),
            Case("[] // comment", offset: 3),
        ])
    func trailingGarbage(_ testCase: Case) { Self.check(testCase) }

    @Test("nesting deeper than the maximum is rejected at the first bracket too deep")
    func tooDeep() {
        let depth = JSONValidator.maximumDepth + 1
        let arrays = JSONValidator.validate(bytes(nestedArrays(depth)))
        #expect(arrays?.offset == JSONValidator.maximumDepth)
        #expect(arrays?.reason.contains("nested too deeply") == true)

        let objects = JSONValidator.validate(bytes(nestedObjects(depth)))
        #expect(objects != nil)
        #expect(objects?.reason.contains("nested too deeply") == true)

        // Deep nesting inside an object value counts the object too.
        let mixed = "{\"k\":" + nestedArrays(JSONValidator.maximumDepth) + "}"
        #expect(JSONValidator.validate(bytes(mixed))?.reason.contains("nested too deeply") == true)

        // Far too deep must fail cleanly, not crash.
        #expect(JSONValidator.validate(bytes(String(repeating: "[", count: 100_000))) != nil)
    }
}

@Suite("JSONValidator: validateObject")
struct JSONValidatorObjectTests {
    @Test("objects are accepted", arguments: ["{}", #" {"a":1} "#, "\n{\"a\":{\"b\":[]}}\n"])
    func objects(_ text: String) {
        #expect(JSONValidator.validateObject(bytes(text)) == nil)
        #expect(JSONValidator.validateObject(text.utf8) == nil)
    }

    @Test(
        "other valid JSON values are refused",
        arguments: ["[]", "[{}]", #""{}""#, "1", "null", "true", " false "])
    func nonObjects(_ text: String) {
        let failure = JSONValidator.validateObject(bytes(text))
        #expect(failure?.reason == "expected a JSON object")
    }

    @Test("invalid JSON reports the syntax problem, not just the kind")
    func invalid() {
        let failure = JSONValidator.validateObject(bytes(#"{"a":1,}"#))
        #expect(failure == JSONValidator.validate(bytes(#"{"a":1,}"#)))
        #expect(failure?.reason.contains("expected a string key") == true)
        #expect(JSONValidator.validateObject(bytes("")) != nil)
        #expect(JSONValidator.validateObject(bytes("   ")) != nil)
        #expect(JSONValidator.validateObject(bytes("{} {}")) != nil)
    }
}

@Suite("JSONValidator: endOfValue")
struct JSONValidatorEndOfValueTests {
    private func end(_ text: String, from start: Int) -> Result<Int, JSONValidator.Failure> {
        bytes(text).withUnsafeBufferPointer { JSONValidator.endOfValue(in: $0, from: start) }
    }

    @Test("finds each JSON argument of a line that goes on after it")
    func lineWithSeveralValues() throws {
        let line = #"APPEND order 42 {"items":[1,{"x":"}"}],"s":"a\"b"} {"meta":true} tail"#
        let utf8 = bytes(line)
        let firstStart = try #require(utf8.firstIndex(of: UInt8(ascii: "{")))
        let firstEnd = try end(line, from: firstStart - 1).get()  // starts on the space before
        #expect(String(decoding: utf8[firstStart..<firstEnd], as: UTF8.self) == #"{"items":[1,{"x":"}"}],"s":"a\"b"}"#)
        let secondEnd = try end(line, from: firstEnd).get()
        #expect(String(decoding: utf8[firstEnd..<secondEnd], as: UTF8.self) == #" {"meta":true}"#)
        #expect(String(decoding: utf8[secondEnd...], as: UTF8.self) == " tail")
        // The value found is itself valid JSON.
        #expect(JSONValidator.validate(utf8[firstStart..<firstEnd]) == nil)
    }

    @Test(
        "every kind of value ends where it should",
        arguments: [
            ("123 rest", 0, 3), ("-1.5e3,", 0, 6), ("true false", 0, 4), ("null]", 0, 4), ("false", 0, 5),
            (#""a\"b" x"#, 0, 6), (#"{"a":1}xyz"#, 0, 7), ("[1,[2,3]] [4]", 0, 9), ("   [] ", 0, 5),
            ("x y 42", 3, 6), ("\t\n\"é\"!", 0, 6), ("123abc", 0, 3), ("0123", 0, 1),
        ])
    func ends(_ text: String, _ start: Int, _ expected: Int) throws {
        #expect(try end(text, from: start).get() == expected)
    }

    @Test("failures report where the value goes wrong")
    func failures() {
        let cases: [(String, Int, Int)] = [
            (#"{"a":"#, 0, 5), ("   ", 0, 3), ("x", 0, 0), (#"[1,2,]"#, 0, 5), (#"{"a" 1}"#, 0, 5), ("abc {", 3, 5),
        ]
        for (text, start, offset) in cases {
            switch end(text, from: start) {
            case .success(let value): Issue.record("\(text.debugDescription) should fail, got end \(value)")
            case .failure(let failure): #expect(failure.offset == offset, "\(text.debugDescription): \(failure)")
            }
        }
    }

    @Test("too-deep nesting fails in endOfValue as well")
    func tooDeep() throws {
        let text = nestedArrays(JSONValidator.maximumDepth + 1) + " tail"
        guard case .failure(let failure) = end(text, from: 0) else {
            Issue.record("expected a failure")
            return
        }
        #expect(failure.reason.contains("nested too deeply"))
        #expect(try end(nestedArrays(JSONValidator.maximumDepth) + " tail", from: 0).get() == 512)
    }
}

/// A small deterministic generator so that the property tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("JSONValidator: generated documents")
struct JSONValidatorPropertyTests {
    private static let whitespace = ["", " ", "\n", "\t", "\r\n", "  "]
    private static let stringPieces = [
        "a", "Z", "0", " ", "é", "日", "😀", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\u00e9",
        "\\uD83D\\uDE00", "'", "}", "]", ",", ":", "\u{7F}", "\u{10FFFF}",
    ]

    private static func ws(_ rng: inout SplitMix64) -> String { whitespace.randomElement(using: &rng)! }

    private static func string(_ rng: inout SplitMix64) -> String {
        let count = Int.random(in: 0...6, using: &rng)
        return "\"" + (0..<count).map { _ in stringPieces.randomElement(using: &rng)! }.joined() + "\""
    }

    private static func number(_ rng: inout SplitMix64) -> String {
        var text = Bool.random(using: &rng) ? "-" : ""
        text += Bool.random(using: &rng) ? "0" : String(Int.random(in: 1...999_999, using: &rng))
        if Bool.random(using: &rng) { text += "." + String(Int.random(in: 0...99_999, using: &rng)) }
        if Bool.random(using: &rng) {
            text += ["e", "E"].randomElement(using: &rng)! + ["", "+", "-"].randomElement(using: &rng)!
            text += String(Int.random(in: 0...30, using: &rng))
        }
        return text
    }

    static func value(_ rng: inout SplitMix64, depth: Int) -> String {
        let kind = depth >= 5 ? Int.random(in: 0..<4, using: &rng) : Int.random(in: 0..<6, using: &rng)
        switch kind {
        case 0: return ["null", "true", "false"].randomElement(using: &rng)!
        case 1: return number(&rng)
        case 2, 3: return string(&rng)
        case 4:
            let count = Int.random(in: 0...4, using: &rng)
            let items = (0..<count).map { _ in ws(&rng) + value(&rng, depth: depth + 1) + ws(&rng) }
            return "[" + (items.isEmpty ? ws(&rng) : items.joined(separator: ",")) + "]"
        default:
            let count = Int.random(in: 0...4, using: &rng)
            let members = (0..<count).map { _ in
                ws(&rng) + string(&rng) + ws(&rng) + ":" + ws(&rng) + value(&rng, depth: depth + 1) + ws(&rng)
            }
            return "{" + (members.isEmpty ? ws(&rng) : members.joined(separator: ",")) + "}"
        }
    }

    @Test("generated valid documents are accepted, and Foundation agrees they are JSON")
    func generatedValid() throws {
        var rng = SplitMix64(seed: 0x1095_11E0)
        for _ in 0..<400 {
            let text = Self.ws(&rng) + Self.value(&rng, depth: 0) + Self.ws(&rng)
            let utf8 = bytes(text)
            #expect(JSONValidator.validate(utf8) == nil, "\(text)")
            // Cross-check the generator with an independent parser.
            #expect(
                (try? JSONSerialization.jsonObject(with: Data(utf8), options: [.fragmentsAllowed])) != nil, "\(text)")
            // endOfValue consumes the value (but not the trailing white space).
            let end = utf8.withUnsafeBufferPointer { JSONValidator.endOfValue(in: $0, from: 0) }
            let trimmedEnd = (utf8.lastIndex { !JSONValidator.isWhitespace($0) } ?? -1) + 1
            #expect((try? end.get()) == trimmedEnd, "\(text)")
        }
    }

    @Test("every strict prefix of an object, array or string is invalid")
    func prefixesAreInvalid() {
        var rng = SplitMix64(seed: 42)
        var checked = 0
        while checked < 60 {
            let text = Self.value(&rng, depth: 0)
            guard let first = text.utf8.first, first == UInt8(ascii: "[") || first == UInt8(ascii: "{") else {
                continue
            }
            checked += 1
            let utf8 = bytes(text)
            #expect(JSONValidator.validate(utf8) == nil)
            for length in 0..<utf8.count {
                #expect(JSONValidator.validate(utf8[..<length]) != nil, "prefix \(length) of \(text)")
            }
        }
    }

    @Test("a trailing comma inserted before any closing bracket is rejected")
    func trailingCommas() {
        var rng = SplitMix64(seed: 7)
        var checked = 0
        for _ in 0..<300 {
            let utf8 = bytes(Self.value(&rng, depth: 0))
            // Positions of closers outside strings.
            var inString = false
            var escaped = false
            var closers: [Int] = []
            for (index, byte) in utf8.enumerated() {
                if inString {
                    if escaped {
                        escaped = false
                    } else if byte == UInt8(ascii: "\\") {
                        escaped = true
                    } else if byte == UInt8(ascii: "\"") {
                        inString = false
                    }
                } else if byte == UInt8(ascii: "\"") {
                    inString = true
                } else if byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}") {
                    closers.append(index)
                }
            }
            for closer in closers {
                var mutated = utf8
                mutated.insert(UInt8(ascii: ","), at: closer)
                #expect(JSONValidator.validate(mutated) != nil, "\(String(decoding: mutated, as: UTF8.self))")
                checked += 1
            }
        }
        #expect(checked > 50)
    }
}
