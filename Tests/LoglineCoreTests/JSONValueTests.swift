import LoglineCore
import Testing

/// Parses `text`, recording a failure instead of throwing.
private func parse(_ text: String) -> JSONValue? {
    do {
        return try JSONValue(parsing: text)
    } catch {
        Issue.record("\(text.debugDescription) should parse: \(error)")
        return nil
    }
}

/// The failure parsing `bytes` gives, or `nil` when it parses.
private func parseFailure(_ bytes: [UInt8]) -> JSONValidator.Failure? {
    do {
        _ = try JSONValue(parsing: bytes)
        return nil
    } catch {
        return error
    }
}

private func quoted(_ raw: [UInt8]) -> [UInt8] { [UInt8(ascii: "\"")] + raw + [UInt8(ascii: "\"")] }

private func nestedArrays(_ depth: Int) -> String {
    String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
}

private func nestedObjects(_ depth: Int) -> String {
    String(repeating: #"{"a":"#, count: depth - 1) + "{}" + String(repeating: "}", count: depth - 1)
}

/// A small deterministic generator (SplitMix64), so that fuzzing is repeatable.
private struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Valid documents of every kind.
private let validCorpus: [String] = [
    "null", "true", "false", "0", "-0", "1", "-1", "123", "1.5", "-1.5", "0.0", "0.000001", "1e10", "1E10",
    "1e+10", "1e-10", "-1.5e10", "0e0", "0E-0", "-0.0e+00", "123456789012345678901234567890",
    "1.7976931348623157e308", "4.9e-324", "-9223372036854775808", "18446744073709551615", "12.50", "1e400",
    #""""#, #""abc""#, #""\"\\\/\b\f\n\r\t""#, #""\u0041\u00e9\u00E9\uABCD\uabcd\u0000\uFFFF""#,
    #""\uD83D\uDE00""#, #""\uD800""#, #""\uDC00x""#, #""\uD800\u0041""#, "\"héllo wörld\"", "\"日本語のテキスト\"",
    "\"emoji 😀👍🏽\"", "\"mixed \\u00e9 é\"", "\"\u{7F}\"", "\"\u{80}\"", "\"\u{7FF}\"", "\"\u{800}\"",
    "\"\u{D7FF}\"", "\"\u{E000}\"", "\"\u{FFFD}\"", "\"\u{FFFF}\"", "\"\u{10000}\"", "\"\u{10FFFF}\"",
    "\"a string long enough to take the eight-bytes-at-a-time path, twice over at least\"",
    "\"long prefix before an escape ........ \\n and after it ........ é and more ........\"",
    "[]", "{}", "[ ]", "{ }", "[1,2,3]", "[null,true,false]", #"["a",["b",["c"]]]"#, #"{"a":1}"#, #"{"":0}"#,
    #"{"a":1,"a":2}"#, #"{"a":1,"b":[true,false,null],"c":{"d":"e","f":[{"g":[]}]},"h":-0.5e-3}"#,
    #"[{"a":{}},{"b":[]},[[{}]]]"#, #"{"key with \"escapes\" \u00e9":"välue"}"#,
    " \t\n\r{ \"a\" : [ 1 , 2 ] , \"b\" :\n{ } }\r\n ", "\n[\n  1,\n  2\n]\n",
    #"{"order":{"id":"o-1","lines":[{"sku":"A","unit_price":"19.99","quantity":3}],"total":59.97}}"#,
]

/// Invalid documents: structure, escapes, UTF-8, numbers, literals, truncation, trailing data.
private let invalidCorpus: [[UInt8]] =
    [
        "", "   \n\t ", "[1,2,]", #"{"a":1,}"#, "[,1]", "{,}", "[1 2]", #"{"a" 1}"#, #"{"a":}"#, "{a:1}", "{'a':1}",
        #"{"a":1 "b":2}"#, #"{"a":1,,"b":2}"#, "{1:2}", "]", "}", ":", "'single'", #""\x""#, #""\'""#,
        #""\U0041""#, #""\a""#, #""\0""#, #""\u12""#, #""\u12G4""#, #""\u""#, #""\u123"#, #""\u1234"#,
        #""\uD800\u12""#, #""\"#, #""abc\"#, "01", "00", "-01", "-00", "[01]", #"{"a":007}"#, "-", "-a", "- 1",
        "1.", "1.e5", ".5", "1e", "1e+", "1E-", "1e+-1", "+1", "0x10", "1_000", "1.5.5", "NaN", "Infinity",
        "-Infinity", "[1,-]", "tru", "True", "nul", "nulL", "fals", "falsy", "nulll", "truex", "[tru]", #""abc"#,
        #"""#, "[1,2", "[1,2,", "[", "{", #"{"a":1"#, #"{"a""#, #"{"a":"#, #"{"a":["#, #"[{"a":[1]}"#, "{} x",
        "1 2", "[]]", "{}{}", #""a""b""#, "null,", "true false", "{}\u{0}", "[] // comment", "é",
        "\"long string then a control char ....\u{1}...\"", "\"long string unterminated ...............",
    ].map { Array($0.utf8) }
    + [UInt8(0x00), 0x01, 0x08, 0x09, 0x0A, 0x0D, 0x1B, 0x1F].map { quoted(Array("ab".utf8) + [$0] + Array("cd".utf8)) }
    + [
        [0x80], [0x61, 0xBF], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF],
        [0xF0, 0x80, 0x80, 0x80], [0xF0, 0x8F, 0xBF, 0xBF], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],
        [0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80],
        [0xF8, 0x88, 0x80, 0x80, 0x80], [0xFE], [0xFF], [0xC3], [0xE6, 0x97], [0xF0, 0x9F, 0x98],
        [0xE6, 0x97, 0x41], [0xF0, 0x9F, 0x98, 0x41], Array("é".utf8) + [0xC0, 0xAF],
        Array("a long run of ASCII first, then: ".utf8) + [0xC0, 0xAF],
        Array(#"escape \n first, then: "#.utf8) + [0xE0, 0x80, 0x80],
    ].map(quoted)
    + [[0x22, 0xE6, 0x97], Array(#"{"k\"#.utf8) + [0xFF] + Array(#"":1}"#.utf8)]

/// All the tests of this file, so that `--filter JSONValueTests` selects them.
@Suite("JSONValue")
struct JSONValueTests {}

extension JSONValueTests {
    @Suite("parsing agrees with JSONValidator")
    struct ValidatorAgreement {
        @Test("every valid document parses", arguments: validCorpus)
        func valid(_ text: String) {
            #expect(JSONValidator.validate(Array(text.utf8)) == nil)
            #expect(parseFailure(Array(text.utf8)) == nil)
        }

        @Test("every invalid document is refused with the validator's failure", arguments: invalidCorpus)
        func invalid(_ bytes: [UInt8]) {
            let expected = JSONValidator.validate(bytes)
            #expect(expected != nil, "the corpus entry \(bytes) should be invalid")
            #expect(parseFailure(bytes) == expected)
        }

        @Test("nesting: the same depth limit and the same failure")
        func nesting() throws {
            let depth = JSONValidator.maximumDepth
            for text in [nestedArrays(depth), nestedObjects(depth)] {
                let value = try JSONValue(parsing: text)
                #expect(value.jsonText == text)
            }
            let mixed =
                String(repeating: #"{"k":"#, count: 128) + nestedArrays(128) + String(repeating: "}", count: 128)
            #expect(try JSONValue(parsing: mixed).jsonText == mixed)

            let tooDeep = [
                nestedArrays(depth + 1), nestedObjects(depth + 1), "{\"k\":" + nestedArrays(depth) + "}",
                String(repeating: "[", count: 100_000), String(repeating: #"{"a":"#, count: 100_000),
            ]
            for text in tooDeep {
                let bytes = Array(text.utf8)
                let failure = parseFailure(bytes)
                #expect(failure != nil)
                #expect(failure == JSONValidator.validate(bytes))
                #expect(failure?.reason.contains("nested too deeply") == true)
            }
        }

        @Test("random mutations of valid documents: accepted and refused alike, with the same failure")
        func fuzz() {
            var generator = SplitMix(state: 0x5EED)
            let alphabet =
                Array(#"{}[]",:\-+.0123456789eEtrufalsn u/bfnrtx"#.utf8) + [0x00, 0x1F, 0x7F, 0xC3, 0xA9, 0xED, 0xFF]
            var accepted = 0
            var refused = 0
            for round in 0..<4000 {
                var bytes = Array(validCorpus[round % validCorpus.count].utf8)
                for _ in 0...Int.random(in: 0...3, using: &generator) {
                    let position = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &generator)
                    switch Int.random(in: 0..<3, using: &generator) {
                    case 0 where !bytes.isEmpty: bytes.remove(at: position)
                    case 1 where !bytes.isEmpty: bytes[position] = alphabet.randomElement(using: &generator)!
                    default: bytes.insert(alphabet.randomElement(using: &generator)!, at: position)
                    }
                }
                let expected = JSONValidator.validate(bytes)
                let failure = parseFailure(bytes)
                #expect(failure == expected, "\(bytes)")
                if expected == nil { accepted += 1 } else { refused += 1 }
            }
            // The mutations exercise both outcomes.
            #expect(accepted > 100)
            #expect(refused > 1000)
        }

        @Test("every overload parses the same bytes the same way")
        func overloads() throws {
            let text = #"{"a":[1,2,{"b":"é\n"}],"c":12.50}"#
            let array = Array(text.utf8)
            let expected = try JSONValue(parsing: text)
            #expect(try JSONValue(parsing: array) == expected)
            #expect(try JSONValue(parsing: array[...]) == expected)
            #expect(try JSONValue(parsing: text.utf8) == expected)
            #expect(try JSONValue(parsing: array.lazy.map { $0 }) == expected)
            #expect(try JSONValue(parsing: AnySequence(array)) == expected)
            let fromBuffer = try array.withUnsafeBufferPointer { try JSONValue(parsing: $0) }
            #expect(fromBuffer == expected)
            // A slice is parsed within its own bounds.
            let storage = Array(#"xx[1,2]yy"#.utf8)
            #expect(try JSONValue(parsing: storage[2..<7]) == [1, 2])
            #expect(parseFailure(Array(storage[2..<6])) != nil)
            // The empty buffer.
            #expect(throws: JSONValidator.Failure.self) {
                try JSONValue(parsing: UnsafeBufferPointer<UInt8>(start: nil, count: 0))
            }
        }
    }
}

extension JSONValueTests {
    @Suite("round trips and serialising")
    struct RoundTrips {
        @Test("parse → serialise → parse gives the same value", arguments: validCorpus)
        func roundTrip(_ text: String) throws {
            let value = try JSONValue(parsing: text)
            let bytes = value.jsonBytes
            #expect(JSONValidator.validate(bytes) == nil)
            #expect(try JSONValue(parsing: bytes) == value)
            #expect(value.jsonText == String(decoding: bytes, as: UTF8.self))
            #expect(value.description == value.jsonText)
        }

        @Test(
            "compact documents are written back byte for byte",
            arguments: [
                "null", "true", "false", "12.50", "-0", "1E+2", "[]", "{}", #"[1,"a",null]"#,
                #"{"b":1,"a":[true,false,{"c":{}}],"":""}"#, #""tab\there \"quoted\" back\\slash""#,
                #"{"z":0,"y":1,"x":2,"w":3,"v":4,"u":5,"t":6}"#,
            ])
        func compact(_ text: String) throws {
            #expect(try JSONValue(parsing: text).jsonText == text)
        }

        @Test("white space is dropped and members keep their order")
        func whitespace() throws {
            let value = try JSONValue(parsing: " \t\n{ \"b\" : [ 1 , 2 ] , \"a\" :\n{ } }\r\n ")
            #expect(value.jsonText == #"{"b":[1,2],"a":{}}"#)
        }

        @Test("strings are escaped exactly as JSONWriter.appendString does")
        func escapingMatchesJSONWriter() throws {
            var samples: [String] = [
                "", "plain", #"quote " and backslash \ and slash /"#, "é日本😀", "\u{7F}", "a\u{0}b", "\u{2028}\u{2029}",
                "line\nbreak\r\ttab", String(repeating: "long text with a \"quote\" ", count: 10),
            ]
            samples.append(String(decoding: (0..<0x20).map { UInt8($0) }, as: UTF8.self))
            for control in 0..<0x20 {
                samples.append("x" + String(UnicodeScalar(UInt8(control))) + "y")
            }
            for sample in samples {
                var expected: [UInt8] = []
                JSONWriter.appendString(sample, to: &expected)
                #expect(JSONValue.string(sample).jsonBytes == expected, "\(sample.debugDescription)")
                var key: [UInt8] = []
                JSONWriter.appendString(sample, to: &key)
                let object: JSONValue = [sample: nil]
                #expect(object.jsonBytes == [UInt8(ascii: "{")] + key + Array(":null}".utf8))
                // And it reads back as the same string.
                #expect(try JSONValue(parsing: expected) == .string(sample))
            }
        }

        @Test("appendJSON appends after what the buffer already holds")
        func appends() {
            var buffer = Array("prefix:".utf8)
            JSONValue.array([1, "two", [3]]).appendJSON(to: &buffer)
            buffer.append(UInt8(ascii: ";"))
            JSONValue.null.appendJSON(to: &buffer)
            #expect(String(decoding: buffer, as: UTF8.self) == #"prefix:[1,"two",[3]];null"#)
        }
    }
}

extension JSONValueTests {
    @Suite("strings and escapes")
    struct Strings {
        @Test(
            "escapes decode to the characters they stand for",
            arguments: [
                (#""\"\\\/\b\f\n\r\t""#, "\"\\/\u{8}\u{C}\n\r\t"),
                (#""\u0041\u00e9\u00E9\u65E5""#, "Aéé日"),
                (#""\u0000""#, "\u{0}"),
                (#""\uD83D\uDE00""#, "😀"),
                (#""\ud83d\ude00 lower-case hex""#, "😀 lower-case hex"),
                (#""\uD800""#, "\u{FFFD}"),
                (#""\uDC00""#, "\u{FFFD}"),
                (#""\uDE00\uD83D""#, "\u{FFFD}\u{FFFD}"),
                (#""\uD800\u0041""#, "\u{FFFD}A"),
                (#""\uD800x""#, "\u{FFFD}x"),
                (#""\uD800\n""#, "\u{FFFD}\n"),
                (#""\uD800\uD83D\uDE00""#, "\u{FFFD}😀"),
                ("\"é\\n日本 😀 \\u00e9\"", "é\n日本 😀 é"),
                ("\"\u{10FFFF}\\t\u{10000}\"", "\u{10FFFF}\t\u{10000}"),
                (
                    #""a fairly long string before the escape \u0041 and a fairly long string after it""#,
                    "a fairly long string before the escape A and a fairly long string after it"
                ),
            ])
        func escapes(_ text: String, _ expected: String) throws {
            #expect(try JSONValue(parsing: text) == .string(expected))
        }

        @Test("raw UTF-8 passes through unchanged")
        func rawUTF8() throws {
            let text = "héllo wörld 日本語のテキスト emoji 😀👍🏽 \u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}"
            let value = try JSONValue(parsing: JSONWriter.quoted(text))
            #expect(value.stringValue == text)
            #expect(Array(value.stringValue!.utf8) == Array(text.utf8))
        }

        @Test("strings and keys compare by bytes, not by Unicode canonical equivalence")
        func byteExactStrings() throws {
            let composed = "\u{E9}"  // é
            let decomposed = "e\u{301}"  // e + combining acute accent
            #expect(composed == decomposed)  // Swift strings say equal…
            #expect(JSONValue.string(composed) != JSONValue.string(decomposed))  // …JSON values do not.
            let object = try JSONValue(parsing: "{\"\u{E9}\":1,\"e\u{301}\":2}")
            #expect(object.objectValue?.count == 2)
            #expect(object[composed] == 1)
            #expect(object[decomposed] == 2)
            let set: Set<JSONValue> = [.string(composed), .string(decomposed), .string(composed)]
            #expect(set.count == 2)
        }
    }
}

extension JSONValueTests {
    @Suite("numbers")
    struct Numbers {
        @Test(
            "numbers keep their exact text",
            arguments: [
                "12.50", "0.10", "1e400", "-1E-400", "-0", "0.0", "1.0", "100", "123456789012345678901234567890.000",
                "1.7976931348623157e309", "5e-324", "0.30000000000000004",
            ])
        func exactText(_ text: String) throws {
            let value = try JSONValue(parsing: text)
            #expect(value.numberValue?.text == text)
            #expect(value.jsonText == text)
            #expect(try JSONValue(parsing: "[\(text)]")[0]?.numberValue?.text == text)
        }

        @Test("numbers compare by text")
        func comparison() throws {
            #expect(try JSONValue(parsing: "1.0") != JSONValue(parsing: "1"))
            #expect(try JSONValue(parsing: "12.50") == JSONValue(parsing: "12.50"))
            #expect(try JSONValue(parsing: "12.50") != JSONValue(parsing: "12.5"))
        }

        @Test(
            "int64Value: integers within range only",
            arguments: [
                ("0", Int64(0)), ("-0", 0), ("42", 42), ("-42", -42), ("9223372036854775807", .max),
                ("-9223372036854775808", .min),
            ] as [(String, Int64)])
        func int64(_ text: String, _ expected: Int64) throws {
            #expect(JSONNumber(text)?.int64Value == expected)
            #expect(try JSONValue(parsing: text).int64Value == expected)
        }

        @Test(
            "int64Value is nil for fractions, exponents and out-of-range integers",
            arguments: ["1.0", "1e2", "1E0", "0.5", "9223372036854775808", "-9223372036854775809", "1e400"])
        func notInt64(_ text: String) {
            #expect(JSONNumber(text)?.int64Value == nil)
            #expect(JSONNumber(text) != nil)
        }

        @Test("doubleValue: the nearest Double, nil when not finite")
        func double() {
            #expect(JSONNumber("1.5")?.doubleValue == 1.5)
            #expect(JSONNumber("-2e3")?.doubleValue == -2000)
            #expect(JSONNumber("0.1")?.doubleValue == 0.1)
            #expect(JSONNumber("1e400")?.doubleValue == nil)
            #expect(JSONNumber("-1e400")?.doubleValue == nil)
            #expect(JSONNumber("1e-400")?.doubleValue == 0)
            #expect(JSONValue.string("1").doubleValue == nil)
        }

        @Test(
            "JSONNumber(text) checks the JSON number grammar",
            arguments: [
                ("0", true), ("-0", true), ("12.50", true), ("1e400", true), ("1E+2", true), ("1e-05", true),
                ("", false),
                ("-", false), ("01", false), ("+1", false), (".5", false), ("1.", false), ("1e", false), ("1e+", false),
                (" 1", false), ("1 ", false), ("NaN", false), ("Infinity", false), ("0x1", false), ("1_000", false),
                ("1.5.5", false), ("١", false),
            ])
        func grammar(_ text: String, _ valid: Bool) {
            #expect((JSONNumber(text) != nil) == valid)
            if !text.contains(" ") {  // the validator allows white space around a value
                #expect((JSONNumber(text) != nil) == (JSONValidator.validate(Array(text.utf8)) == nil))
            }
        }

        @Test("numbers from integers and doubles")
        func fromIntegers() {
            #expect(JSONNumber(Int64.min).text == "-9223372036854775808")
            #expect(JSONNumber(Int64.max).int64Value == .max)
            #expect(JSONNumber(42).text == "42")
            #expect(JSONNumber(1.5)?.text == "1.5")
            #expect(JSONNumber(0.00001)?.doubleValue == 0.00001)
            #expect(JSONNumber(1e300)?.doubleValue == 1e300)
            #expect(JSONNumber(Double.infinity) == nil)
            #expect(JSONNumber(Double.nan) == nil)
            #expect(JSONNumber(-0.0) != nil)
        }
    }
}

extension JSONValueTests {
    @Suite("objects and duplicates")
    struct Objects {
        @Test("a duplicate key replaces the earlier value where it first appeared")
        func duplicates() throws {
            let value = try JSONValue(parsing: #"{"a":1,"b":2,"a":3}"#)
            #expect(value.objectValue?.keys == ["a", "b"])
            #expect(value["a"] == 3)
            #expect(value.jsonText == #"{"a":3,"b":2}"#)
            // Escaped and raw spellings of one key are the same key.
            let escaped = try JSONValue(parsing: #"{"\u0061":1,"a":2}"#)
            #expect(escaped.jsonText == #"{"a":2}"#)
        }

        @Test("duplicates in large objects, before and after the hash index is built")
        func largeDuplicates() throws {
            let keys = (0..<300).map { "key\($0)" }
            var text = "{"
            text += keys.map { "\"\($0)\":0" }.joined(separator: ",")
            text += "," + keys.reversed().map { "\"\($0)\":1" }.joined(separator: ",")
            text += #","key0":2,"new":3}"#
            let object = try #require(try JSONValue(parsing: text).objectValue)
            #expect(object.count == 301)
            #expect(object.keys == keys + ["new"])
            #expect(object["key0"] == 2)
            #expect(object["key299"] == 1)
            #expect(object["new"] == 3)
            // Duplicates right around the index threshold.
            for size in 20..<30 {
                let members = (0..<size).map { #""k\#($0)":\#($0)"# }
                let doubled = try JSONValue(parsing: "{" + (members + members).joined(separator: ",") + "}")
                #expect(doubled.objectValue?.count == size)
                #expect(try doubled == JSONValue(parsing: "{" + members.joined(separator: ",") + "}"))
            }
        }

        @Test("subscript set, replace in place, remove")
        func editing() {
            var object: JSONObject = ["a": 1, "b": 2]
            object["c"] = 3
            object["a"] = "one"
            #expect(object.keys == ["a", "b", "c"])
            #expect(object["a"] == "one")
            object["b"] = nil
            #expect(object.keys == ["a", "c"])
            object["missing"] = nil
            #expect(object.count == 2)
            #expect(object.updateValue(true, forKey: "c") == 3)
            #expect(object.updateValue(false, forKey: "d") == nil)
            #expect(object.removeValue(forKey: "a") == "one")
            #expect(object.removeValue(forKey: "a") == nil)
            #expect(object.keys == ["c", "d"])
            #expect(object.values == [true, false])
            #expect(object.index(forKey: "d") == 1)
            #expect(object.contains(key: "c"))
            #expect(!object.contains(key: "a"))
            #expect(object.members.map(\.key) == ["c", "d"])
            #expect(object[0].key == "c")
            #expect(object.map(\.value) == [true, false])
            object.removeAll()
            #expect(object.isEmpty)
            #expect(JSONObject().isEmpty)
        }

        @Test("large objects stay correct while growing and shrinking")
        func largeObjects() {
            var object = JSONObject()
            for index in 0..<2000 { object["k\(index)"] = .number(JSONNumber(index)) }
            #expect(object.count == 2000)
            for index in stride(from: 0, to: 2000, by: 2) { object["k\(index)"] = nil }
            #expect(object.count == 1000)
            for index in 0..<2000 {
                #expect(object["k\(index)"] == (index % 2 == 0 ? nil : .number(JSONNumber(index))))
            }
            #expect(object.keys == (0..<1000).map { "k\($0 * 2 + 1)" })
            for index in 0..<990 { object.removeValue(forKey: "k\(index * 2 + 1)") }
            #expect(object.keys == (990..<1000).map { "k\($0 * 2 + 1)" })
            object["k1999"] = "last"
            #expect(object.keys.last == "k1999")
            #expect(object["k1999"] == "last")
        }

        @Test("sequence initialiser and dictionary literal: later duplicates replace earlier ones")
        func initialisers() {
            let fromPairs = JSONObject([(key: "x", value: 1), (key: "y", value: 2), (key: "x", value: 3)])
            #expect(fromPairs.keys == ["x", "y"])
            #expect(fromPairs["x"] == 3)
            let literal: JSONObject = ["x": 1, "y": 2, "x": 3]
            #expect(literal == fromPairs)
            #expect(literal.description == #"{"x":3,"y":2}"#)
        }

        @Test("equality is ordered; isEquivalent ignores member order")
        func equality() throws {
            let ab = try JSONValue(parsing: #"{"a":1,"b":{"c":[1,{"d":2,"e":3}]}}"#)
            let ba = try JSONValue(parsing: #"{"b":{"c":[1,{"e":3,"d":2}]},"a":1}"#)
            #expect(ab != ba)
            #expect(ab.isEquivalent(to: ba))
            #expect(!ab.isEquivalent(to: try JSONValue(parsing: #"{"a":1,"b":{"c":[{"d":2,"e":3},1]}}"#)))
            #expect(!ab.isEquivalent(to: try JSONValue(parsing: #"{"a":1.0,"b":{"c":[1,{"d":2,"e":3}]}}"#)))
            #expect(!ab.isEquivalent(to: try JSONValue(parsing: #"{"a":1}"#)))
            #expect(ab == (try JSONValue(parsing: ab.jsonText)))
            #expect(ab.hashValue == (try JSONValue(parsing: ab.jsonText)).hashValue)
            let values: Set<JSONValue> = [ab, ba, try JSONValue(parsing: ab.jsonText), nil, false, 0, "0", [], [:]]
            #expect(values.count == 8)
        }
    }
}

extension JSONValueTests {
    @Suite("accessors and literals")
    struct AccessorsAndLiterals {
        @Test("accessors give a value only for the matching kind")
        func accessors() throws {
            let value = try JSONValue(
                parsing: #"{"s":"text","n":42,"f":1.5,"b":true,"z":null,"a":[1,"x"],"o":{"k":"v"}}"#)
            #expect(value["s"]?.stringValue == "text")
            #expect(value["n"]?.int64Value == 42)
            #expect(value["n"]?.numberValue == JSONNumber(42))
            #expect(value["f"]?.doubleValue == 1.5)
            #expect(value["f"]?.int64Value == nil)
            #expect(value["b"]?.boolValue == true)
            #expect(value["z"]?.isNull == true)
            #expect(value["a"]?.arrayValue == [1, "x"])
            #expect(value["a"]?[1] == "x")
            #expect(value["a"]?[2] == nil)
            #expect(value["a"]?[-1] == nil)
            #expect(value["o"]?.objectValue?["k"] == "v")
            #expect(value["o"]?["k"] == "v")
            #expect(value["missing"] == nil)
            for kind in ["s", "n", "b", "z", "a", "o"] {
                let item = try #require(value[kind])
                #expect((item.stringValue != nil) == (kind == "s"))
                #expect((item.numberValue != nil) == (kind == "n"))
                #expect((item.boolValue != nil) == (kind == "b"))
                #expect(item.isNull == (kind == "z"))
                #expect((item.arrayValue != nil) == (kind == "a"))
                #expect((item.objectValue != nil) == (kind == "o"))
                #expect(item["k"] == (kind == "o" ? "v" : nil))
                #expect(item[0] == (kind == "a" ? 1 : nil))
            }
            #expect(value.int64Value == nil)
            #expect(value.stringValue == nil)
        }

        @Test("literals build the same values as parsing")
        func literals() throws {
            let built: JSONValue = [
                "name": "Ada", "age": 36, "admin": true, "manager": nil, "tags": ["a", 1, false, nil, [:], []],
                "nested": ["deep": ["deeper": -7]],
            ]
            let parsed = try JSONValue(
                parsing:
                    #"{"name":"Ada","age":36,"admin":true,"manager":null,"tags":["a",1,false,null,{},[]],"nested":{"deep":{"deeper":-7}}}"#
            )
            #expect(built == parsed)
            #expect(built.jsonText == parsed.jsonText)
            let duplicate: JSONValue = ["a": 1, "b": 2, "a": 3]
            #expect(duplicate.jsonText == #"{"a":3,"b":2}"#)
            let null: JSONValue = nil
            #expect(null.isNull)
            #expect(JSONValue(integerLiteral: .min).jsonText == "-9223372036854775808")
        }
    }
}

extension JSONValueTests {
    @Suite("volume (a sanity check of scaling, not a timing)")
    struct Volume {
        @Test("many documents, a wide object, a long array and a long string parse and round-trip")
        func volume() throws {
            // Many small documents, each like an event's data.
            var total: Int64 = 0
            for index in 0..<20_000 {
                let text =
                    #"{"order_id":"o-\#(index)","lines":[{"sku":"A","unit_price":"19.99","quantity":\#(index % 7)}],"paid":true,"note":null}"#
                let value = try JSONValue(parsing: text)
                total += value["lines"]?[0]?["quantity"]?.int64Value ?? 0
                #expect(value.jsonText == text)
            }
            #expect(total == (0..<20_000).reduce(0) { $0 + Int64($1 % 7) })

            // A wide object: duplicate detection must not be quadratic.
            let wide = "{" + (0..<50_000).map { #""key\#($0)":\#($0)"# }.joined(separator: ",") + "}"
            let object = try #require(try JSONValue(parsing: wide).objectValue)
            #expect(object.count == 50_000)
            #expect(object["key49999"] == 49_999)
            #expect(JSONValue.object(object).jsonText == wide)

            // A long array and a long string with escapes.
            let long = "[" + (0..<100_000).map(String.init).joined(separator: ",") + "]"
            #expect(try JSONValue(parsing: long).arrayValue?.count == 100_000)
            let string = String(repeating: "abcdefé\\n\\u00e9\\uD83D\\uDE00 ", count: 50_000)
            let parsed = try JSONValue(parsing: "\"" + string + "\"")
            #expect(parsed.stringValue?.count == 50_000 * 11)
            #expect(try JSONValue(parsing: parsed.jsonBytes) == parsed)
        }
    }
}
