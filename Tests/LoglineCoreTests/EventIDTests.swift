import Foundation
import LoglineCore
import Testing

/// Hex digits of `text` with the hyphens removed, decoded to bytes: an independent reading of a UUID's text.
private func hexBytes(_ text: String) -> [UInt8] {
    let digits = Array(text.replacingOccurrences(of: "-", with: ""))
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

/// A generator that always returns the same word, to check the version and variant bits are forced.
private struct ConstantGenerator: RandomNumberGenerator {
    let word: UInt64
    mutating func next() -> UInt64 { word }
}

@Suite("EventID")
struct EventIDTests {
    static let sample = "123e4567-e89b-12d3-a456-426614174000"

    @Test("parses the canonical form into its two halves")
    func parse() throws {
        let id = try #require(EventID(Self.sample))
        #expect(id.high == 0x123e_4567_e89b_12d3)
        #expect(id.low == 0xa456_4266_1417_4000)
        #expect(id.description == Self.sample)
        #expect("\(id)" == Self.sample)
    }

    @Test(
        "formats and parses back",
        arguments: [
            "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "123e4567-e89b-12d3-a456-426614174000", "0123abcd-4567-89ef-0a1b-2c3d4e5f6a7b",
            "f47ac10b-58cc-4372-a567-0e02b2c3d479",
        ])
    func roundTrip(_ text: String) throws {
        let id = try #require(EventID(text))
        #expect(id.description == text)
        #expect(EventID(id.description) == id)
        #expect(id.bytes == hexBytes(text))
    }

    @Test("upper- and mixed-case input parse to the same id and format in lower case")
    func upperCase() throws {
        let lower = try #require(EventID(Self.sample))
        let upper = try #require(EventID(Self.sample.uppercased()))
        let mixed = try #require(EventID("123E4567-e89B-12d3-A456-426614174000"))
        #expect(upper == lower)
        #expect(mixed == lower)
        #expect(upper.description == Self.sample)
        #expect(EventID("ABCDEF01-ABCD-ABCD-ABCD-ABCDEF012345")?.description == "abcdef01-abcd-abcd-abcd-abcdef012345")
    }

    @Test(
        "rejects malformed text",
        arguments: [
            "", "123e4567", "123e4567-e89b-12d3-a456-42661417400",  // 35 characters
            "123e4567-e89b-12d3-a456-4266141740000",  // 37 characters
            "123e4567e89b12d3a456426614174000",  // no hyphens
            "123e4567-e89b-12d3-a4564-26614174000",  // hyphen moved
            "123e4567ee89b-12d3-a456-426614174000",  // hyphen replaced by a digit
            "123e4567-e89b-12d3-a456_426614174000",  // wrong separator
            "g23e4567-e89b-12d3-a456-426614174000",  // not hex
            "123e4567-e89b-12d3-a456-42661417400z", "123e4567-e89b-12d3-a456-42661417400 ",
            " 23e4567-e89b-12d3-a456-426614174000", "{23e4567-e89b-12d3-a456-42661417400}",
            "123e4567-e89b-12d3-a456-4266141740é",  // 36 bytes with a non-ASCII character
            "+23e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456--26614174000",
            "-23e4567-e89b-12d3-a456-426614174000",
        ])
    func malformed(_ text: String) {
        #expect(EventID(text) == nil)
        #expect(EventID(utf8: Array(text.utf8)) == nil)
    }

    @Test("parses from UTF-8 bytes of any collection")
    func parseUTF8() throws {
        let expected = try #require(EventID(Self.sample))
        #expect(EventID(utf8: Array(Self.sample.utf8)) == expected)
        #expect(EventID(utf8: Self.sample.utf8) == expected)
        let padded = Array(("xx" + Self.sample + "yy").utf8)
        #expect(EventID(utf8: padded[2..<38]) == expected)
        #expect(EventID(utf8: padded) == nil)
    }

    @Test("random ids are version 4, RFC 9562 variant, and distinct")
    func randomIDs() {
        var seen = Set<EventID>()
        for _ in 0..<2000 {
            let id = EventID.random()
            #expect((id.high >> 12) & 0xF == 4)
            #expect(id.low >> 62 == 0b10)
            let text = Array(id.description)
            #expect(text[14] == "4")
            #expect("89ab".contains(text[19]))
            #expect(EventID(id.description) == id)
            seen.insert(id)
        }
        #expect(seen.count == 2000)
    }

    @Test("random(using:) forces the version and variant bits whatever the generator gives")
    func randomBitsForced() {
        var ones = ConstantGenerator(word: .max)
        let fromOnes = EventID.random(using: &ones)
        #expect(fromOnes.description == "ffffffff-ffff-4fff-bfff-ffffffffffff")
        var zeros = ConstantGenerator(word: 0)
        let fromZeros = EventID.random(using: &zeros)
        #expect(fromZeros.description == "00000000-0000-4000-8000-000000000000")

        var first = SplitMix64(seed: 99)
        var second = SplitMix64(seed: 99)
        #expect(EventID.random(using: &first) == EventID.random(using: &second))
        #expect(EventID.random(using: &first) != EventID.random(using: &first))
    }

    @Test("time-ordered ids are version 7, carry their milliseconds, and sort by time")
    func timeOrdered() {
        let base: Int64 = 1_700_000_000_000
        var previous: EventID?
        var seen = Set<EventID>()
        for offset in 0..<200 {
            let millis = base + Int64(offset / 4)  // four ids per millisecond
            let id = EventID.timeOrdered(at: millis)
            #expect((id.high >> 12) & 0xF == 7)
            #expect(id.low >> 62 == 0b10)
            #expect(Int64(id.high >> 16) == millis)
            // The text form starts with the 48-bit time in hex.
            let hex = String(UInt64(millis), radix: 16)
            let timeText = String(repeating: "0", count: 12 - hex.count) + hex
            #expect(id.description.replacingOccurrences(of: "-", with: "").hasPrefix(timeText))
            if let previous, offset % 4 == 0 { #expect(previous < id) }
            previous = id
            seen.insert(id)
        }
        #expect(seen.count == 200)
    }

    @Test("derived ids are deterministic, name-based (version 5), and differ per namespace and source")
    func derived() throws {
        let source = try #require(EventID(Self.sample))
        let other = try #require(EventID("f47ac10b-58cc-4372-a567-0e02b2c3d479"))
        let a = EventID.derived(namespace: "orders", source: source)
        #expect(a == EventID.derived(namespace: "orders", source: source))
        #expect((a.high >> 12) & 0xF == 5)
        #expect(a.low >> 62 == 0b10)
        #expect(a != source)
        #expect(a != EventID.derived(namespace: "orders2", source: source))
        #expect(a != EventID.derived(namespace: "order", source: source))
        #expect(a != EventID.derived(namespace: "", source: source))
        #expect(a != EventID.derived(namespace: "orders", source: other))
        // Only the low half of the source differs.
        let lowDiffers = EventID(high: source.high, low: source.low ^ 1)
        #expect(a != EventID.derived(namespace: "orders", source: lowDiffers))
        // Only the high half differs.
        let highDiffers = EventID(high: source.high ^ (1 << 40), low: source.low)
        #expect(a != EventID.derived(namespace: "orders", source: highDiffers))
        // The halves are not trivially related.
        #expect(a.high != a.low)

        // Many namespaces and sources give distinct ids.
        var seen = Set<EventID>()
        var rng = SplitMix64(seed: 5)
        let sources = (0..<50).map { _ in EventID.random(using: &rng) }
        for namespace in ["a", "b", "projection-x", "saga:payments", "é"] {
            for source in sources { seen.insert(EventID.derived(namespace: namespace, source: source)) }
        }
        #expect(seen.count == 5 * 50)
    }

    @Test("bytes are big-endian and round-trip through fromBytes")
    func bytesRoundTrip() throws {
        let id = try #require(EventID(Self.sample))
        #expect(
            id.bytes == [
                0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00,
            ])
        #expect(EventID.fromBytes(id.bytes) == id)
        #expect(EventID.fromBytes(id.bytes[...]) == id)
        #expect(EventID.fromBytes(Array(id.bytes.prefix(15))) == nil)
        #expect(EventID.fromBytes(id.bytes + [0]) == nil)
        #expect(EventID.fromBytes([UInt8]()) == nil)

        for _ in 0..<200 {
            let random = EventID.random()
            #expect(random.bytes.count == 16)
            #expect(EventID.fromBytes(random.bytes) == random)
            #expect(random.bytes == hexBytes(random.description))
        }
    }

    @Test("appendBytes and appendText append after what the buffer already holds")
    func appending() throws {
        let id = try #require(EventID(Self.sample))
        var buffer: [UInt8] = [1, 2, 3]
        id.appendBytes(to: &buffer)
        #expect(buffer == [1, 2, 3] + id.bytes)
        var text = Array("id=".utf8)
        id.appendText(to: &text)
        #expect(String(decoding: text, as: UTF8.self) == "id=" + Self.sample)
        #expect(text.count == 3 + 36)
    }

    @Test("ordering follows the bytes, which is the order of the lower-case text")
    func ordering() {
        var rng = SplitMix64(seed: 11)
        var ids = (0..<300).map { _ in
            EventID(high: rng.next() >> UInt64.random(in: 0...63, using: &rng), low: rng.next())
        }
        ids.append(EventID(high: 0, low: 0))
        ids.append(EventID(high: 0, low: .max))
        ids.append(EventID(high: 1, low: 0))
        ids.append(EventID(high: .max, low: .max))
        let byComparable = ids.sorted()
        let byText = ids.sorted { $0.description < $1.description }
        let byBytes = ids.sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
        #expect(byComparable == byText)
        #expect(byComparable == byBytes)
        #expect(EventID(high: 0, low: .max) < EventID(high: 1, low: 0))
        #expect(!(EventID(high: 1, low: 0) < EventID(high: 1, low: 0)))
    }

    @Test("Foundation's UUID agrees with the parser and the formatter")
    func foundationAgreement() throws {
        for _ in 0..<100 {
            let uuid = UUID()
            let id = try #require(EventID(uuid.uuidString))  // Foundation writes upper case
            #expect(id.description == uuid.uuidString.lowercased())
            let u = uuid.uuid
            let foundationBytes = [
                u.0, u.1, u.2, u.3, u.4, u.5, u.6, u.7, u.8, u.9, u.10, u.11, u.12, u.13, u.14, u.15,
            ]
            #expect(id.bytes == foundationBytes)
            #expect(UUID(uuidString: EventID.random().description) != nil)
        }
    }
}
