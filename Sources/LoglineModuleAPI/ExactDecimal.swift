import LoglineCore

/// An exact decimal number for money: amounts such as `amount = Σ unit_price × quantity` are computed without ever
/// going through binary floating point.
///
/// The value is ``significand`` × 10^-``scale``, with an `Int64` significand and 0 to 9 fraction digits. Arithmetic
/// is exact; a result that cannot be held (beyond `Int64`, or for a product more than 9 fraction digits) makes
/// ``adding(_:)``, ``subtracting(_:)`` and ``multiplied(by:)`` return `nil`, while the operators `+`, `-` and `*`
/// trap. When a result fits only without some of its trailing fraction zeros, those zeros are dropped.
///
/// Equality, hashing and ordering are by value: `12.5 == 12.50`. The scale only changes how the value is written:
/// ``description`` shows every fraction digit of the scale, at least two (`12.5` → `"12.50"`, `12.500` →
/// `"12.500"`); use ``withScale(_:)`` to choose it.
public struct ExactDecimal: Sendable, CustomStringConvertible {
    /// The digits as one integer: the value is `significand` × 10^-`scale`.
    public let significand: Int64
    /// The number of fraction digits, from 0 to ``maximumScale``.
    public let scale: Int

    /// The most fraction digits a value may have.
    public static let maximumScale = 9
    /// The most significant digits text may have to be read by ``init(_:)-(String)``.
    public static let maximumSignificantDigits = 18
    /// Zero.
    public static let zero = ExactDecimal(unchecked: 0, scale: 0)

    private init(unchecked significand: Int64, scale: Int) {
        self.significand = significand
        self.scale = scale
    }

    /// Creates `significand` × 10^-`scale`.
    /// - Parameters:
    ///   - significand: The digits as one integer.
    ///   - scale: The number of fraction digits; `nil` unless 0 to ``maximumScale``.
    public init?(significand: Int64, scale: Int) {
        guard scale >= 0, scale <= Self.maximumScale else { return nil }
        self.init(unchecked: significand, scale: scale)
    }

    /// Creates an integer value.
    /// - Parameter integer: The integer.
    public init(_ integer: Int64) {
        self.init(unchecked: integer, scale: 0)
    }

    /// Creates an integer value.
    /// - Parameter integer: The integer.
    public init(_ integer: Int) {
        self.init(unchecked: Int64(integer), scale: 0)
    }

    /// Reads a plain decimal: an optional `-`, digits, then optionally `.` and digits (`"12"`, `"12.5"`, `"0.01"`,
    /// `"-3.10"`). The scale is the number of fraction digits written.
    ///
    /// Refused: an exponent, a `+` sign, white space, a missing integer or fraction part (`".5"`, `"5."`), more
    /// than ``maximumSignificantDigits`` significant digits or a non-zero digit past ``maximumScale`` fraction
    /// digits. Leading zeros do not count. Trailing fraction zeros count while they fit; those that would go past
    /// either limit are dropped, since they do not change the value (`"1.0000000000"` reads as `1.000000000`).
    /// - Parameter text: The text.
    public init?(_ text: String) {
        var negative = false
        var significand: Int64 = 0
        var significantDigits = 0
        var integerDigits = 0
        var fractionDigits = 0  // fraction digits in `significand`
        var pendingZeros = 0  // fraction zeros read but not yet in `significand`
        var inFraction = false
        var first = true
        func push(_ digit: Int64) -> Bool {
            if significand != 0 || digit != 0 {
                significantDigits += 1
                guard significantDigits <= Self.maximumSignificantDigits else { return false }
            }
            significand = significand * 10 + digit  // at most 18 digits: cannot overflow
            return true
        }
        for byte in text.utf8 {
            defer { first = false }
            switch byte {
            case UInt8(ascii: "-") where first:
                negative = true
            case UInt8(ascii: "."):
                guard !inFraction, integerDigits > 0 else { return nil }
                inFraction = true
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let digit = Int64(byte - UInt8(ascii: "0"))
                if !inFraction {
                    integerDigits += 1
                    guard push(digit) else { return nil }
                } else if digit == 0 {
                    pendingZeros += 1
                } else {
                    fractionDigits += pendingZeros + 1
                    guard fractionDigits <= Self.maximumScale else { return nil }
                    for _ in 0..<pendingZeros { guard push(0) else { return nil } }
                    pendingZeros = 0
                    guard push(digit) else { return nil }
                }
            default:
                return nil
            }
        }
        guard integerDigits > 0, !inFraction || fractionDigits + pendingZeros > 0 else { return nil }
        // Keep the trailing zeros that fit.
        while pendingZeros > 0, fractionDigits < Self.maximumScale,
            significand == 0 || significantDigits < Self.maximumSignificantDigits
        {
            if significand != 0 { significantDigits += 1 }
            significand *= 10
            fractionDigits += 1
            pendingZeros -= 1
        }
        self.init(unchecked: negative ? -significand : significand, scale: fractionDigits)
    }

    /// Reads a JSON number (from its exact text) or a JSON string holding a plain decimal, by the rules of
    /// ``init(_:)-(String)``: numbers with an exponent are refused.
    /// - Parameter json: The value; `nil` for any other kind of JSON value.
    public init?(_ json: JSONValue) {
        switch json {
        case .number(let number): self.init(number.text)
        case .string(let text): self.init(text)
        default: return nil
        }
    }

    /// The value as a JSON number whose text is ``description``.
    public var jsonValue: JSONValue {
        .number(JSONNumber(description)!)
    }

    /// The value written out: `-` when negative, the integer digits, `.` and the fraction digits of the scale,
    /// never fewer than two (`"25.00"`, `"12.50"`, `"0.01"`, `"-3.10"`, `"1.125"`).
    public var description: String {
        let digits = String(significand.magnitude)
        var integerPart: String
        var fractionPart: String
        if digits.count > scale {
            integerPart = String(digits.dropLast(scale))
            fractionPart = String(digits.suffix(scale))
        } else {
            integerPart = "0"
            fractionPart = String(repeating: "0", count: scale - digits.count) + digits
        }
        if fractionPart.count < 2 { fractionPart += String(repeating: "0", count: 2 - fractionPart.count) }
        if significand < 0 { integerPart = "-" + integerPart }
        return integerPart + "." + fractionPart
    }

    /// Whether the value is above zero.
    public var isPositive: Bool { significand > 0 }
    /// Whether the value is below zero.
    public var isNegative: Bool { significand < 0 }
    /// Whether the value is zero (at any scale).
    public var isZero: Bool { significand == 0 }

    /// The same value with trailing fraction zeros removed (`12.50` → `12.5`, `3.00` → `3`).
    public var normalized: ExactDecimal {
        var significand = significand
        var scale = scale
        while scale > 0, significand % 10 == 0 {
            significand /= 10
            scale -= 1
        }
        return ExactDecimal(unchecked: significand, scale: scale)
    }

    /// The same value written with `scale` fraction digits: trailing zeros are added, or removed when they are
    /// zeros. No rounding is ever done.
    /// - Parameter scale: The number of fraction digits wanted, from 0 to ``maximumScale``.
    /// - Returns: The value, or `nil` when it would lose a non-zero digit, overflow, or `scale` is out of range.
    public func withScale(_ scale: Int) -> ExactDecimal? {
        guard scale >= 0, scale <= Self.maximumScale else { return nil }
        if scale >= self.scale {
            let (padded, overflow) = significand.multipliedReportingOverflow(by: Self.powerOfTen(scale - self.scale))
            return overflow ? nil : ExactDecimal(unchecked: padded, scale: scale)
        }
        let divisor = Self.powerOfTen(self.scale - scale)
        guard significand % divisor == 0 else { return nil }
        return ExactDecimal(unchecked: significand / divisor, scale: scale)
    }

    /// The exact sum; its scale is the larger of the two.
    /// - Parameter other: The value to add.
    /// - Returns: The sum, or `nil` when it does not fit.
    public func adding(_ other: ExactDecimal) -> ExactDecimal? {
        let scale = Swift.max(self.scale, other.scale)
        return Self.make(widened(to: scale) + other.widened(to: scale), scale: scale)
    }

    /// The exact difference; its scale is the larger of the two.
    /// - Parameter other: The value to subtract.
    /// - Returns: The difference, or `nil` when it does not fit.
    public func subtracting(_ other: ExactDecimal) -> ExactDecimal? {
        let scale = Swift.max(self.scale, other.scale)
        return Self.make(widened(to: scale) - other.widened(to: scale), scale: scale)
    }

    /// The exact product. Its scale is the sum of the two scales, less the trailing zeros that take it beyond the
    /// larger of the two (`19.99 × 3` → `59.97`, `19.99 × 3.0` → `59.97`, `1.5 × 1.5` → `2.25`).
    /// - Parameter other: The value to multiply by.
    /// - Returns: The product, or `nil` when it does not fit or needs more than ``maximumScale`` fraction digits.
    public func multiplied(by other: ExactDecimal) -> ExactDecimal? {
        var product = Int128(significand) * Int128(other.significand)
        var scale = self.scale + other.scale
        let floor = Swift.max(self.scale, other.scale)
        while scale > floor, product % 10 == 0 {
            product /= 10
            scale -= 1
        }
        guard scale <= Self.maximumScale else { return nil }
        return Self.make(product, scale: scale)
    }

    /// The value with its sign flipped.
    /// - Returns: The negation, or `nil` for the one significand (`Int64.min`) whose negation does not fit.
    public func negated() -> ExactDecimal? {
        let (negated, overflow) = Int64(0).subtractingReportingOverflow(significand)
        return overflow ? nil : ExactDecimal(unchecked: negated, scale: scale)
    }

    /// The exact sum of `values`, or zero when there are none.
    /// - Parameter values: The values to add.
    /// - Returns: The sum, or `nil` when a partial sum does not fit.
    public static func sum<Values: Sequence>(_ values: Values) -> ExactDecimal? where Values.Element == ExactDecimal {
        var total = ExactDecimal.zero
        for value in values {
            guard let next = total.adding(value) else { return nil }
            total = next
        }
        return total
    }

    // MARK: Operators (trap where the methods return nil)

    /// The exact sum; traps on overflow (use ``adding(_:)`` to handle it).
    /// - Parameters:
    ///   - lhs: A value.
    ///   - rhs: The value to add.
    /// - Returns: The sum.
    public static func + (lhs: ExactDecimal, rhs: ExactDecimal) -> ExactDecimal {
        guard let result = lhs.adding(rhs) else { preconditionFailure("ExactDecimal overflow in \(lhs) + \(rhs)") }
        return result
    }

    /// The exact difference; traps on overflow (use ``subtracting(_:)`` to handle it).
    /// - Parameters:
    ///   - lhs: A value.
    ///   - rhs: The value to subtract.
    /// - Returns: The difference.
    public static func - (lhs: ExactDecimal, rhs: ExactDecimal) -> ExactDecimal {
        guard let result = lhs.subtracting(rhs) else {
            preconditionFailure("ExactDecimal overflow in \(lhs) - \(rhs)")
        }
        return result
    }

    /// The exact product; traps on overflow or beyond 9 fraction digits (use ``multiplied(by:)`` to handle it).
    /// - Parameters:
    ///   - lhs: A value.
    ///   - rhs: The value to multiply by.
    /// - Returns: The product.
    public static func * (lhs: ExactDecimal, rhs: ExactDecimal) -> ExactDecimal {
        guard let result = lhs.multiplied(by: rhs) else {
            preconditionFailure("ExactDecimal overflow in \(lhs) * \(rhs)")
        }
        return result
    }

    /// Adds in place; traps on overflow.
    /// - Parameters:
    ///   - lhs: The value to change.
    ///   - rhs: The value to add.
    public static func += (lhs: inout ExactDecimal, rhs: ExactDecimal) {
        lhs = lhs + rhs
    }

    /// Subtracts in place; traps on overflow.
    /// - Parameters:
    ///   - lhs: The value to change.
    ///   - rhs: The value to subtract.
    public static func -= (lhs: inout ExactDecimal, rhs: ExactDecimal) {
        lhs = lhs - rhs
    }

    /// Multiplies in place; traps on overflow.
    /// - Parameters:
    ///   - lhs: The value to change.
    ///   - rhs: The value to multiply by.
    public static func *= (lhs: inout ExactDecimal, rhs: ExactDecimal) {
        lhs = lhs * rhs
    }

    /// The negation; traps for `Int64.min` (use ``negated()`` to handle it).
    /// - Parameter value: A value.
    /// - Returns: The value with its sign flipped.
    public static prefix func - (value: ExactDecimal) -> ExactDecimal {
        guard let result = value.negated() else { preconditionFailure("ExactDecimal overflow in -\(value)") }
        return result
    }

    // MARK: Helpers

    /// The significand at a larger or equal scale, in 128 bits so it cannot overflow.
    private func widened(to scale: Int) -> Int128 {
        Int128(significand) * Int128(Self.powerOfTen(scale - self.scale))
    }

    /// The value `significand` × 10^-`scale` with an `Int64` significand, dropping trailing fraction zeros only
    /// when that is needed to fit; `nil` when the value cannot be held.
    private static func make(_ significand: Int128, scale: Int) -> ExactDecimal? {
        var significand = significand
        var scale = scale
        while Int64(exactly: significand) == nil, scale > 0, significand % 10 == 0 {
            significand /= 10
            scale -= 1
        }
        guard let narrow = Int64(exactly: significand) else { return nil }
        return ExactDecimal(unchecked: narrow, scale: scale)
    }

    /// 10^`exponent` for `exponent` in 0...18.
    private static func powerOfTen(_ exponent: Int) -> Int64 {
        var result: Int64 = 1
        for _ in 0..<exponent { result &*= 10 }
        return result
    }
}

extension ExactDecimal: Hashable, Comparable {
    /// Equality by value: `12.5 == 12.50`.
    /// - Parameters:
    ///   - lhs: A value.
    ///   - rhs: Another value.
    /// - Returns: `true` when both are the same number.
    public static func == (lhs: ExactDecimal, rhs: ExactDecimal) -> Bool {
        let scale = Swift.max(lhs.scale, rhs.scale)
        return lhs.widened(to: scale) == rhs.widened(to: scale)
    }

    /// Ordering by value.
    /// - Parameters:
    ///   - lhs: A value.
    ///   - rhs: Another value.
    /// - Returns: `true` when `lhs` is the smaller number.
    public static func < (lhs: ExactDecimal, rhs: ExactDecimal) -> Bool {
        let scale = Swift.max(lhs.scale, rhs.scale)
        return lhs.widened(to: scale) < rhs.widened(to: scale)
    }

    /// Hashes the value, so that equal numbers at different scales hash alike.
    /// - Parameter hasher: The hasher to feed.
    public func hash(into hasher: inout Hasher) {
        let value = normalized
        hasher.combine(value.significand)
        hasher.combine(value.scale)
    }
}

extension ExactDecimal: ExpressibleByIntegerLiteral {
    /// Creates an integer value.
    /// - Parameter value: The integer.
    public init(integerLiteral value: Int64) {
        self.init(unchecked: value, scale: 0)
    }
}
