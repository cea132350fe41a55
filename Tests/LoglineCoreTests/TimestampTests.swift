import Foundation
import LoglineCore
import Testing

/// The RFC 3339 text of `milliseconds`, computed with Foundation's Gregorian calendar: an independent oracle.
private func foundationRFC3339(_ milliseconds: Int64) -> String {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    let seconds = milliseconds >= 0 ? milliseconds / 1000 : -((-milliseconds + 999) / 1000)
    let millis = milliseconds - seconds * 1000
    let date = Date(timeIntervalSince1970: TimeInterval(seconds))
    let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
    func pad(_ value: Int?, _ width: Int) -> String {
        let text = String(value!)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
    return "\(pad(parts.year, 4))-\(pad(parts.month, 2))-\(pad(parts.day, 2))T"
        + "\(pad(parts.hour, 2)):\(pad(parts.minute, 2)):\(pad(parts.second, 2)).\(pad(Int(millis), 3))Z"
}

@Suite("Timestamp")
struct TimestampTests {
    @Test(
        "formats known instants",
        arguments: [
            (Int64(0), "1970-01-01T00:00:00.000Z"),
            (1, "1970-01-01T00:00:00.001Z"),
            (999, "1970-01-01T00:00:00.999Z"),
            (1000, "1970-01-01T00:00:01.000Z"),
            (86_399_999, "1970-01-01T23:59:59.999Z"),
            (86_400_000, "1970-01-02T00:00:00.000Z"),
            (951_782_400_123, "2000-02-29T00:00:00.123Z"),
            (951_868_800_000, "2000-03-01T00:00:00.000Z"),
            (946_684_799_999, "1999-12-31T23:59:59.999Z"),
            (1_700_000_000_000, "2023-11-14T22:13:20.000Z"),
            (2_147_483_647_000, "2038-01-19T03:14:07.000Z"),
            (4_107_456_000_000, "2100-02-28T00:00:00.000Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),  // 2100 is not a leap year
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (-999, "1969-12-31T23:59:59.001Z"),
            (-1000, "1969-12-31T23:59:59.000Z"),
            (-1001, "1969-12-31T23:59:58.999Z"),
            (-86_400_000, "1969-12-31T00:00:00.000Z"),
            (-86_400_001, "1969-12-30T23:59:59.999Z"),
            (-2_208_988_800_000, "1900-01-01T00:00:00.000Z"),
            (-2_203_891_200_000, "1900-03-01T00:00:00.000Z"),  // 1900 is not a leap year
            (-62_135_596_800_000, "0001-01-01T00:00:00.000Z"),
            (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
        ])
    func formatsKnownInstants(_ milliseconds: Int64, _ expected: String) {
        let timestamp = Timestamp(millisecondsSinceEpoch: milliseconds)
        #expect(timestamp.description == expected)
        var buffer = Array("at ".utf8)
        timestamp.appendRFC3339(to: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self) == "at " + expected)
        #expect(buffer.count == 3 + 24)
        #expect(Timestamp(rfc3339: expected) == timestamp)
    }

    @Test("agrees with Foundation's Gregorian calendar over a sweep of instants, and parses back")
    func sweepAgainstFoundation() {
        var rng = SplitMix64(seed: 2024)
        // 1600-01-01 to 9999-12-31: Foundation's calendar is Julian before 1582, so stay well after.
        let range: ClosedRange<Int64> = -11_676_096_000_000...253_402_300_799_999
        var values = (0..<3000).map { _ in Int64.random(in: range, using: &rng) }
        // Around every month boundary of a few leap and non-leap years.
        for year in [1700, 1900, 1970, 1999, 2000, 2001, 2004, 2100, 2400] {
            for month in 1...12 {
                var calendar = Calendar(identifier: .gregorian)
                calendar.timeZone = TimeZone(identifier: "UTC")!
                let date = calendar.date(from: DateComponents(year: year, month: month, day: 1))!
                let ms = Int64(date.timeIntervalSince1970) * 1000
                values += [ms - 1, ms, ms + 1]
            }
        }
        for value in values {
            let timestamp = Timestamp(millisecondsSinceEpoch: value)
            #expect(timestamp.description == foundationRFC3339(value), "\(value)")
            var appended: [UInt8] = []
            timestamp.appendRFC3339(to: &appended)
            #expect(Array(timestamp.description.utf8) == appended, "\(value)")
            #expect(Timestamp(rfc3339: timestamp.description) == timestamp, "\(value)")
        }
    }

    @Test(
        "parses the forms it documents",
        arguments: [
            ("2000-02-29T00:00:00Z", Int64(951_782_400_000)),
            ("2000-02-29T00:00:00.123Z", 951_782_400_123),
            ("2000-02-29T00:00:00.1Z", 951_782_400_100),
            ("2000-02-29T00:00:00.12Z", 951_782_400_120),
            ("2000-02-29T00:00:00.123456Z", 951_782_400_123),  // finer digits are cut, not rounded
            ("2000-02-29T00:00:00.999999999Z", 951_782_400_999),
            ("1970-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59.999Z", -1),
            ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ])
    func parses(_ text: String, _ expected: Int64) {
        #expect(Timestamp(rfc3339: text)?.millisecondsSinceEpoch == expected)
    }

    @Test(
        "rejects malformed text",
        arguments: [
            "", "2000-02-29", "2000-02-29T00:00:00", "2000-02-29T00:00:00.123", "2000-02-29T00:00:00+00:00",
            "2000-02-29T00:00:00.123+01:00", "2000-02-29 00:00:00Z", "2000/02/29T00:00:00Z",
            "2000-02-29T00-00-00Z", "2000-13-01T00:00:00Z", "2000-00-01T00:00:00Z", "2000-01-00T00:00:00Z",
            "2000-01-32T00:00:00Z", "2000-01-01T24:00:00Z", "2000-01-01T00:60:00Z", "2000-01-01T00:00:61Z",
            "2000-02-29T00:00:00.Z", "2000-02-29T00:00:00,123Z", "2000-02-29T00:00:00.12aZ",
            "20x0-02-29T00:00:00Z", "2000-02-29T00:00:00ZZ", "2000-02-29T00:00:00.123Zx", "-200-02-29T00:00:00Z",
            "2000-02-29T0:00:00Z",
        ])
    func rejects(_ text: String) {
        #expect(Timestamp(rfc3339: text) == nil)
    }

    @Test("a fraction longer than Int64 can hold is a valid RFC 3339 time, not a crash")
    func longFraction() async {
        await #expect(processExitsWith: .success) {
            let parsed = Timestamp(rfc3339: "2000-02-29T00:00:00.123456789012345678901234567890Z")
            if parsed != nil && parsed?.millisecondsSinceEpoch != 951_782_400_123 { exit(1) }
        }
    }

    @Test(
        "years outside 0000 to 9999 are written as ISO 8601 expanded years, the rest of the text as usual",
        arguments: [
            (Int64(253_402_300_800_000), "+10000-01-01T00:00:00.000Z"),
            (-62_167_219_200_001, "-1-12-31T23:59:59.999Z"),
        ])
    func expandedYears(_ milliseconds: Int64, _ expected: String) {
        let timestamp = Timestamp(millisecondsSinceEpoch: milliseconds)
        #expect(timestamp.description == expected)
        var buffer = Array("at ".utf8)
        timestamp.appendRFC3339(to: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self) == "at " + expected)
    }

    @Test(
        "formatting never traps, even for instants outside the years 0000 to 9999",
        arguments: [Int64.min, .max, -62_167_219_200_001, -100_000_000_000_000, 253_402_300_800_000])
    func extremeInstantsDoNotTrap(_ millis: Int64) async {
        await #expect(processExitsWith: .success) { [millis] in
            _ = Timestamp(millisecondsSinceEpoch: millis).description
        }
    }

    @Test(
        "text that is written either parses back to the same instant or does not parse at all",
        arguments: [
            Int64(253_402_300_800_000),  // 10000-01-01T00:00:00Z
            Int64(253_406_188_800_000),  // 10000-02-15T00:00:00Z
            Int64(300_000_000_000_000),
        ])
    func formattedTextNeverNamesAnotherInstant(_ millis: Int64) {
        let timestamp = Timestamp(millisecondsSinceEpoch: millis)
        var buffer: [UInt8] = []
        timestamp.appendRFC3339(to: &buffer)
        let text = String(decoding: buffer, as: UTF8.self)
        if let parsed = Timestamp(rfc3339: text) {
            #expect(
                parsed == timestamp, "\(millis) was written as \(text), which names \(parsed.millisecondsSinceEpoch)")
        }
    }

    @Test("ordering, equality and now()")
    func orderingAndNow() {
        #expect(Timestamp(millisecondsSinceEpoch: -1) < Timestamp(millisecondsSinceEpoch: 0))
        #expect(Timestamp(millisecondsSinceEpoch: 5) == Timestamp(millisecondsSinceEpoch: 5))
        #expect(!(Timestamp(millisecondsSinceEpoch: 5) < Timestamp(millisecondsSinceEpoch: 5)))
        let before = Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
        let now = Timestamp.now()
        let after = Int64((Date().timeIntervalSince1970 * 1000).rounded(.up))
        #expect(now.millisecondsSinceEpoch >= before - 1)
        #expect(now.millisecondsSinceEpoch <= after + 1)
        #expect(Timestamp.now() >= now)
    }
}
