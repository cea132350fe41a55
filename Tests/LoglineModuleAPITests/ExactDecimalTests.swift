import LoglineCore
import LoglineModuleAPI
import Testing

/// Reads `text`, recording a failure when it is refused.
private func decimal(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> ExactDecimal {
    guard let value = ExactDecimal(text) else {
        Issue.record("\(text.debugDescription) should be read", sourceLocation: sourceLocation)
        return .zero
    }
    return value
}

/// All the tests of this file, so that `--filter ExactDecimalTests` selects them.
@Suite("ExactDecimal")
struct ExactDecimalTests {}

extension ExactDecimalTests {
    @Suite("reading and writing")
    struct Text {
        @Test(
            "plain decimals are read and written with at least two fraction digits",
            arguments: [
                ("12", "12.00", 1200, 2), ("12.5", "12.50", 125, 1), ("0.01", "0.01", 1, 2),
                ("-3.10", "-3.10", -310, 2),
                ("1.125", "1.125", 1125, 3), ("25", "25.00", 25, 0), ("0", "0.00", 0, 0), ("-0", "0.00", 0, 0),
                ("0.000000001", "0.000000001", 1, 9), ("-0.5", "-0.50", -5, 1), ("007.50", "7.50", 750, 2),
                ("123456789012345678", "123456789012345678.00", 123_456_789_012_345_678, 0),
                ("123456789.123456789", "123456789.123456789", 123_456_789_123_456_789, 9),
                ("-999999999999999999", "-999999999999999999.00", -999_999_999_999_999_999, 0),
            ] as [(String, String, Int64, Int)])
        func read(_ text: String, _ written: String, _ significand: Int64, _ scale: Int) {
            let value = decimal(text)
            #expect(value.description == written)
            // The scale is the number of fraction digits written; the significand goes with it.
            let digitsWritten = text.split(separator: ".").dropFirst().first?.count ?? 0
            #expect(value.scale == digitsWritten)
            #expect(value == ExactDecimal(significand: significand, scale: scale))
        }

        @Test(
            "exponents, garbage and too many digits are refused",
            arguments: [
                "", "-", ".", ".5", "5.", "-.5", "+1", " 1", "1 ", "1e2", "1E2", "1.5e-3", "0x10", "1_000", "1,5",
                "1.2.3",
                "--1", "1-", "abc", "NaN", "Infinity", "١٢", "12.5a", "1234567890123456789", "-1234567890123456789",
                "0.1234567891", "0.0000000001", "12345678901.123456789", "99999999999999999999",
                "1000000000000000000.0",
            ])
        func refused(_ text: String) {
            #expect(ExactDecimal(text) == nil)
        }

        @Test("leading zeros are not significant; trailing fraction zeros count while they fit, then are dropped")
        func significantDigits() {
            #expect(ExactDecimal("000000000000000000000123") == 123)
            #expect(ExactDecimal("0.000000123")?.scale == 9)
            #expect(ExactDecimal("100000000000000000") != nil)  // 18 digits
            #expect(ExactDecimal("1000000000000000000") == nil)  // 19 digits
            #expect(ExactDecimal("100000000.00000000")?.scale == 8)  // 17 digits
            #expect(ExactDecimal("1000000000.000000000")?.scale == 8)  // 19 digits: one zero dropped
            #expect(ExactDecimal("1000000000.000000000")?.description == "1000000000.00000000")
            #expect(ExactDecimal("123456789012345678.00")?.description == "123456789012345678.00")
            #expect(ExactDecimal("123456789012345678.00")?.scale == 0)
            #expect(ExactDecimal("1.0000000000")?.scale == 9)  // 10 fraction digits: the last zero dropped
            #expect(ExactDecimal("1.0000000000") == 1)
            #expect(ExactDecimal("0.000000000000000000000")?.isZero == true)
            #expect(ExactDecimal("0.000000000000000000000")?.scale == 9)
            #expect(ExactDecimal("-0.10000000000000000000")?.description == "-0.100000000")
            #expect(ExactDecimal("0.0000000001") == nil)  // a non-zero tenth fraction digit
            #expect(ExactDecimal("1234567890123456789.0") == nil)
        }

        @Test("integers, literals and the significand-and-scale initialiser")
        func integers() {
            #expect(ExactDecimal(42).description == "42.00")
            #expect(ExactDecimal(Int64(-7)).description == "-7.00")
            let literal: ExactDecimal = 5
            #expect(literal == decimal("5.000"))
            #expect(ExactDecimal(Int64.min).description == "-9223372036854775808.00")
            #expect(ExactDecimal(significand: 1999, scale: 2)?.description == "19.99")
            #expect(ExactDecimal(significand: 1, scale: 10) == nil)
            #expect(ExactDecimal(significand: 1, scale: -1) == nil)
            #expect(ExactDecimal.zero.description == "0.00")
        }

        @Test("withScale pads zeros, drops only zeros, never rounds")
        func withScale() {
            #expect(decimal("12.5").withScale(2)?.description == "12.50")
            #expect(decimal("12.5").withScale(4)?.description == "12.5000")
            #expect(decimal("12.500").withScale(1)?.description == "12.50")
            #expect(decimal("12.500").withScale(1)?.scale == 1)
            #expect(decimal("12.500").withScale(0)?.description == nil)
            #expect(decimal("12.000").withScale(0)?.description == "12.00")
            #expect(decimal("1.125").withScale(2) == nil)
            #expect(decimal("1").withScale(10) == nil)
            #expect(decimal("1").withScale(-1) == nil)
            #expect(decimal("999999999999999999").withScale(2) == nil)  // would overflow
            #expect(decimal("12.50").normalized.description == "12.50")
            #expect(decimal("12.50").normalized.scale == 1)
            #expect(decimal("3.000").normalized.scale == 0)
        }
    }
}

extension ExactDecimalTests {
    @Suite("arithmetic")
    struct Arithmetic {
        @Test("sums and products are exact")
        func exactness() {
            #expect(decimal("0.1") + decimal("0.2") == decimal("0.3"))
            #expect((decimal("0.1") + decimal("0.2")).description == "0.30")
            #expect(decimal("19.99") * 3 == decimal("59.97"))
            #expect((decimal("19.99") * 3).description == "59.97")
            #expect((decimal("19.99") * decimal("3.0")).description == "59.97")
            #expect((decimal("1.5") * decimal("1.5")).description == "2.25")
            #expect((decimal("0.001") * decimal("0.001")).description == "0.000001")
            #expect((decimal("1.10") - decimal("0.1")).description == "1.00")
            #expect((decimal("0.01") - decimal("0.02")).description == "-0.01")
            #expect((-decimal("-3.10")).description == "3.10")
            #expect((-decimal("3.10")).description == "-3.10")
            // Ten cents, a thousand times: exactly one hundred.
            var total = ExactDecimal.zero
            for _ in 0..<1000 { total += decimal("0.10") }
            #expect(total == 100)
            #expect(total.description == "100.00")
            // amount = Σ unit_price × quantity
            let lines: [(String, Int64)] = [("19.99", 3), ("5.25", 1), ("0.10", 7), ("1234.56", 12)]
            let amount = ExactDecimal.sum(lines.map { decimal($0.0) * ExactDecimal($0.1) })
            #expect(amount?.description == "14880.64")
            #expect(ExactDecimal.sum([ExactDecimal]()) == .zero)
            var running = decimal("10")
            running -= decimal("2.5")
            running *= decimal("2")
            #expect(running.description == "15.00")
        }

        @Test("overflow gives nil from the methods")
        func overflow() {
            let big = ExactDecimal(Int64.max)
            #expect(big.adding(1) == nil)
            #expect(big.adding(-1) != nil)
            #expect(ExactDecimal(Int64.min).subtracting(1) == nil)
            #expect(big.multiplied(by: 2) == nil)
            #expect(decimal("999999999999999999").multiplied(by: decimal("999999999999999999")) == nil)
            // Aligning scales may overflow even though each operand fits.
            #expect(decimal("999999999999999999").adding(decimal("0.000000001")) == nil)
            // A product that needs more than 9 fraction digits.
            #expect(decimal("0.00001").multiplied(by: decimal("0.000001")) == nil)
            // …but a product whose trailing zeros bring it back within range is fine.
            #expect(decimal("0.000010").multiplied(by: decimal("0.000100"))?.description == "0.000000001")
            // The intermediate product may exceed Int64 when the result does not.
            // …and trailing zeros are dropped when that is what it takes to fit.
            #expect(
                decimal("1.000000000").multiplied(by: decimal("100000000000"))?.description == "100000000000.0000000")
            #expect(decimal("1.000000000").adding(decimal("99999999999"))?.description == "100000000000.0000000")
            #expect(ExactDecimal(Int64.min).negated() == nil)
            #expect(ExactDecimal.sum([big, 1]) == nil)
        }

        @Test("signs")
        func signs() {
            #expect(decimal("0.01").isPositive)
            #expect(!decimal("0.01").isNegative)
            #expect(decimal("-0.01").isNegative)
            #expect(!decimal("-0.01").isPositive)
            #expect(decimal("0.00").isZero)
            #expect(decimal("-0").isZero)
            #expect(!decimal("0.00").isPositive)
            #expect(!decimal("0.00").isNegative)
        }

        @Test("equality, hashing and order are by value")
        func byValue() {
            #expect(decimal("12.5") == decimal("12.50"))
            #expect(decimal("12.5") == decimal("12.500000000"))
            #expect(decimal("12.5").hashValue == decimal("12.50").hashValue)
            #expect(decimal("0") == decimal("-0.00"))
            #expect(decimal("0").hashValue == decimal("-0.00").hashValue)
            #expect(decimal("12.5") != decimal("12.05"))
            #expect(Set([decimal("1"), decimal("1.0"), decimal("1.00"), decimal("2")]).count == 2)
            #expect(decimal("1.99") < decimal("2"))
            #expect(decimal("-2") < decimal("-1.99"))
            #expect(decimal("0.000000001") > decimal("0"))
            #expect(decimal("999999999999999999") > decimal("99999999.999999999"))
            #expect(ExactDecimal(Int64.min) < ExactDecimal(Int64.max))
            let sorted = ["3", "-1.5", "0.25", "0.2", "-10", "2.50"].map { decimal($0) }.sorted()
            #expect(sorted.map(\.description) == ["-10.00", "-1.50", "0.20", "0.25", "2.50", "3.00"])
        }
    }
}

extension ExactDecimalTests {
    @Suite("JSON")
    struct JSON {
        @Test("read from a JSON number's exact text or a JSON string")
        func fromJSON() throws {
            let document = try JSONValue(
                parsing: #"{"n":19.99,"s":"19.99","i":3,"e":1.5e2,"b":true,"z":null,"bad":"12 EUR","neg":-3.10}"#)
            #expect(ExactDecimal(try #require(document["n"])) == decimal("19.99"))
            #expect(ExactDecimal(try #require(document["s"])) == decimal("19.99"))
            #expect(ExactDecimal(try #require(document["i"])) == 3)
            #expect(ExactDecimal(try #require(document["neg"]))?.description == "-3.10")
            #expect(ExactDecimal(try #require(document["e"])) == nil)
            #expect(ExactDecimal(try #require(document["b"])) == nil)
            #expect(ExactDecimal(try #require(document["z"])) == nil)
            #expect(ExactDecimal(try #require(document["bad"])) == nil)
            #expect(ExactDecimal(JSONValue.array([1])) == nil)
            // A number with more digits than a Double holds is read exactly.
            let precise = try JSONValue(parsing: "123456789.123456789")
            #expect(ExactDecimal(precise)?.description == "123456789.123456789")
            #expect(ExactDecimal(try JSONValue(parsing: "1234567890.123456789")) == nil)  // 19 digits
        }

        @Test("written as a JSON number with the description's text")
        func toJSON() throws {
            let amount = decimal("19.99") * 3
            #expect(amount.jsonValue == .number(try #require(JSONNumber("59.97"))))
            #expect(decimal("25").jsonValue.jsonText == "25.00")
            #expect(decimal("-0.5").jsonValue.jsonText == "-0.50")
            let document: JSONValue = ["amount": amount.jsonValue]
            #expect(document.jsonText == #"{"amount":59.97}"#)
            // And back again.
            #expect(ExactDecimal(try JSONValue(parsing: document.jsonText)["amount"]!) == amount)
            for text in ["0.01", "-3.10", "1.125", "123456789012345678", "-0.000000001"] {
                let value = decimal(text)
                #expect(ExactDecimal(value.jsonValue) == value)
                #expect(JSONValidator.validate(value.jsonValue.jsonBytes) == nil)
            }
        }
    }
}
