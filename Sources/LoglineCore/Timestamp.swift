#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A moment in UTC, in whole milliseconds since 1970-01-01T00:00:00Z: the resolution of `recorded_at`.
public struct Timestamp: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch.
    public let millisecondsSinceEpoch: Int64

    /// Creates a timestamp.
    /// - Parameter millisecondsSinceEpoch: Milliseconds since the Unix epoch.
    public init(millisecondsSinceEpoch: Int64) {
        self.millisecondsSinceEpoch = millisecondsSinceEpoch
    }

    /// The wall-clock time now.
    /// - Returns: The current time, cut to milliseconds.
    public static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(millisecondsSinceEpoch: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }

    /// Orders timestamps by time.
    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch
    }

    /// The UTC calendar date and the milliseconds into its day.
    private var civil: (year: Int64, month: Int64, day: Int64, msOfDay: Int64) {
        let millis = millisecondsSinceEpoch
        var days = millis / 86_400_000
        var msOfDay = millis % 86_400_000
        if msOfDay < 0 {
            msOfDay += 86_400_000
            days -= 1
        }
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day, msOfDay)
    }

    /// Appends the RFC 3339 form, `YYYY-MM-DDTHH:MM:SS.mmmZ`, to `buffer`.
    /// - Parameter buffer: Where the 24 bytes go.
    public func appendRFC3339(to buffer: inout [UInt8]) {
        let fields = civil
        let yearWidth: Int
        if (0...9999).contains(fields.year) {
            yearWidth = 4
        } else {
            // Outside RFC 3339's years: an ISO 8601 expanded year, which ``init(rfc3339:)`` does not accept.
            buffer.append(contentsOf: (fields.year < 0 ? "-" : "+").utf8)
            buffer.append(contentsOf: String(fields.year.magnitude).utf8)
            yearWidth = 0
        }
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: yearWidth + 20))
        buffer.withUnsafeMutableBufferPointer { bytes in
            Self.write(fields, yearWidth: yearWidth, into: UnsafeMutableBufferPointer(rebasing: bytes[start...]))
        }
    }

    /// Writes the year in `yearWidth` digits (none when 0), then `-MM-DDTHH:MM:SS.mmmZ`, into `text`, which holds
    /// exactly that many bytes.
    private static func write(
        _ fields: (year: Int64, month: Int64, day: Int64, msOfDay: Int64), yearWidth: Int,
        into text: UnsafeMutableBufferPointer<UInt8>
    ) {
        func digits(_ value: Int64, _ width: Int, at offset: Int) {
            var rest = value
            for index in stride(from: offset + width - 1, through: offset, by: -1) {
                text[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            }
        }
        if yearWidth > 0 { digits(fields.year, yearWidth, at: 0) }
        let tail = yearWidth
        text[tail] = UInt8(ascii: "-")
        digits(fields.month, 2, at: tail + 1)
        text[tail + 3] = UInt8(ascii: "-")
        digits(fields.day, 2, at: tail + 4)
        text[tail + 6] = UInt8(ascii: "T")
        digits(fields.msOfDay / 3_600_000, 2, at: tail + 7)
        text[tail + 9] = UInt8(ascii: ":")
        digits(fields.msOfDay / 60_000 % 60, 2, at: tail + 10)
        text[tail + 12] = UInt8(ascii: ":")
        digits(fields.msOfDay / 1000 % 60, 2, at: tail + 13)
        text[tail + 15] = UInt8(ascii: ".")
        digits(fields.msOfDay % 1000, 3, at: tail + 16)
        text[tail + 19] = UInt8(ascii: "Z")
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fff]Z`, the form this type writes.
    /// - Parameter text: The RFC 3339 text, in UTC.
    public init?(rfc3339 text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20, bytes.last == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for index in range {
                let byte = bytes[index]
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
            bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var millis: Int64 = 0
        if bytes.count > 20 {
            // Any number of fraction digits; only the first three count (milliseconds).
            let fractionDigits = bytes.count - 21
            guard bytes[19] == UInt8(ascii: "."), fractionDigits >= 1,
                bytes[20..<(bytes.count - 1)].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                var scaled = number(20..<(20 + min(fractionDigits, 3)))
            else { return nil }
            for _ in min(fractionDigits, 3)..<3 { scaled *= 10 }
            millis = scaled
        } else {
            guard bytes.count == 20 else { return nil }
        }
        // Howard Hinnant's days_from_civil.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        self.init(millisecondsSinceEpoch: ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
    }

    /// The RFC 3339 form.
    public var description: String {
        let fields = civil
        guard (0...9999).contains(fields.year) else {
            var buffer = [UInt8]()
            buffer.reserveCapacity(32)
            appendRFC3339(to: &buffer)
            return String(decoding: buffer, as: UTF8.self)
        }
        // The common case, written in place: projections format a timestamp for nearly every event.
        return String(unsafeUninitializedCapacity: 24) { text in
            Self.write(fields, yearWidth: 4, into: UnsafeMutableBufferPointer(rebasing: text[0..<24]))
            return 24
        }
    }
}
