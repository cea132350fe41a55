/// An event's identity: a UUID, kept as its 16 bytes.
///
/// Parsing and formatting are done here, without Foundation, because they sit on the append path.
public struct EventID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The UUID's bytes in network order.
    public let high: UInt64
    /// The UUID's last 8 bytes in network order.
    public let low: UInt64

    /// Creates an id from its two halves.
    /// - Parameters:
    ///   - high: The first 8 bytes, big-endian.
    ///   - low: The last 8 bytes, big-endian.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// A new random (version 4) UUID.
    /// - Returns: An id from the system's random source.
    public static func random() -> EventID {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    /// A new random (version 4) UUID from the given generator.
    /// - Parameter generator: The source of randomness.
    /// - Returns: An id with the version and variant bits set as RFC 9562 says.
    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> EventID {
        var high = generator.next() as UInt64
        var low = generator.next() as UInt64
        high = (high & ~0x0000_0000_0000_F000) | 0x0000_0000_0000_4000
        low = (low & ~0xC000_0000_0000_0000) | 0x8000_0000_0000_0000
        return EventID(high: high, low: low)
    }

    /// A new time-ordered (version 7) UUID: 48 bits of Unix milliseconds, then random bits.
    ///
    /// Ids made this way sort by creation time, so an index keyed by them grows at its right edge instead of
    /// touching a random page for every insert.
    /// - Parameter milliseconds: The Unix time in milliseconds to embed.
    /// - Returns: A new id.
    public static func timeOrdered(at milliseconds: Int64) -> EventID {
        var generator = SystemRandomNumberGenerator()
        return timeOrdered(at: milliseconds, using: &generator)
    }

    /// A new time-ordered (version 7) UUID with random bits from the given generator.
    /// - Parameters:
    ///   - milliseconds: The Unix time in milliseconds to embed.
    ///   - generator: The source of the 74 random bits.
    /// - Returns: A new id.
    public static func timeOrdered<G: RandomNumberGenerator>(at milliseconds: Int64, using generator: inout G)
        -> EventID
    {
        let randomHigh = generator.next() as UInt64
        let low = ((generator.next() as UInt64) & ~0xC000_0000_0000_0000) | 0x8000_0000_0000_0000
        let high = (UInt64(truncatingIfNeeded: milliseconds) << 16) | 0x7000 | (randomHigh & 0x0FFF)
        return EventID(high: high, low: low)
    }

    /// A deterministic (version 5 style) id derived from a name and a source id, without a hash library.
    ///
    /// Uses two rounds of 64-bit FNV-1a with different seeds over the inputs; stable across runs and machines.
    /// - Parameters:
    ///   - namespace: A stable name, such as a module's name.
    ///   - source: The id this one is derived from.
    /// - Returns: An id with the version bits of a name-based UUID.
    public static func derived(namespace: String, source: EventID) -> EventID {
        func fnv(_ seed: UInt64) -> UInt64 {
            var hash: UInt64 = seed
            for byte in namespace.utf8 {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            }
            hash = (hash ^ 0xFF) &* 0x0000_0100_0000_01B3
            for shift in stride(from: 56, through: 0, by: -8) {
                hash = (hash ^ ((source.high >> UInt64(shift)) & 0xFF)) &* 0x0000_0100_0000_01B3
            }
            for shift in stride(from: 56, through: 0, by: -8) {
                hash = (hash ^ ((source.low >> UInt64(shift)) & 0xFF)) &* 0x0000_0100_0000_01B3
            }
            return hash
        }
        var high = fnv(0xCBF2_9CE4_8422_2325)
        var low = fnv(0x84222325_CBF29CE4)
        high = (high & ~0x0000_0000_0000_F000) | 0x0000_0000_0000_5000
        low = (low & ~0xC000_0000_0000_0000) | 0x8000_0000_0000_0000
        return EventID(high: high, low: low)
    }

    /// Parses the canonical 36-character form (`8-4-4-4-12` hex digits, either case).
    /// - Parameter text: The UUID's text.
    public init?(_ text: String) {
        var text = text
        let parsed = text.withUTF8 { EventID(utf8: $0) }
        guard let parsed else { return nil }
        self = parsed
    }

    /// Parses the canonical 36-byte form from UTF-8 bytes.
    /// - Parameter utf8: The UUID's bytes.
    public init?<Bytes: Collection>(utf8: Bytes) where Bytes.Element == UInt8 {
        guard utf8.count == 36 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        var digits = 0
        var index = 0
        for byte in utf8 {
            defer { index += 1 }
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard byte == UInt8(ascii: "-") else { return nil }
                continue
            }
            let nibble: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            if digits < 16 {
                high = (high << 4) | UInt64(nibble)
            } else {
                low = (low << 4) | UInt64(nibble)
            }
            digits += 1
        }
        self.init(high: high, low: low)
    }

    /// The 16 bytes, big-endian.
    public var bytes: [UInt8] {
        var result = [UInt8]()
        result.reserveCapacity(16)
        appendBytes(to: &result)
        return result
    }

    /// Appends the 16 bytes, big-endian, to `buffer`.
    /// - Parameter buffer: Where the bytes go.
    public func appendBytes(to buffer: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) {
            buffer.append(UInt8(truncatingIfNeeded: high >> UInt64(shift)))
        }
        for shift in stride(from: 56, through: 0, by: -8) {
            buffer.append(UInt8(truncatingIfNeeded: low >> UInt64(shift)))
        }
    }

    /// Reads an id from 16 big-endian bytes.
    /// - Parameter bytes: Exactly 16 bytes.
    /// - Returns: The id, or `nil` when there are not 16 bytes.
    public static func fromBytes<Bytes: Collection>(_ bytes: Bytes) -> EventID? where Bytes.Element == UInt8 {
        guard bytes.count == 16 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (offset, byte) in bytes.enumerated() {
            if offset < 8 { high = (high << 8) | UInt64(byte) } else { low = (low << 8) | UInt64(byte) }
        }
        return EventID(high: high, low: low)
    }

    /// Appends the canonical lower-case text form to `buffer`.
    /// - Parameter buffer: Where the 36 bytes go.
    public func appendText(to buffer: inout [UInt8]) {
        let hex: StaticString = "0123456789abcdef"
        hex.withUTF8Buffer { digits in
            func put(_ value: UInt64, from: Int, to: Int, buffer: inout [UInt8]) {
                var nibble = from
                while nibble < to {
                    let shift = UInt64(60 - (nibble % 16) * 4)
                    buffer.append(digits[Int((value >> shift) & 0xF)])
                    nibble += 1
                }
            }
            put(high, from: 0, to: 8, buffer: &buffer)
            buffer.append(UInt8(ascii: "-"))
            put(high, from: 8, to: 12, buffer: &buffer)
            buffer.append(UInt8(ascii: "-"))
            put(high, from: 12, to: 16, buffer: &buffer)
            buffer.append(UInt8(ascii: "-"))
            put(low, from: 0, to: 4, buffer: &buffer)
            buffer.append(UInt8(ascii: "-"))
            put(low, from: 4, to: 16, buffer: &buffer)
        }
    }

    /// The canonical lower-case text form.
    public var description: String {
        var buffer = [UInt8]()
        buffer.reserveCapacity(36)
        appendText(to: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    /// Orders ids by their bytes.
    public static func < (lhs: EventID, rhs: EventID) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}
