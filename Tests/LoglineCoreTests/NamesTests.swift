import LoglineCore
import Testing

/// The documented alphabet, `A-Z a-z 0-9 . _ : @ -`, written independently of the implementation.
private func documentedNameByte(_ byte: UInt8) -> Bool {
    let scalar = Unicode.Scalar(byte)
    guard scalar.isASCII else { return false }
    let character = Character(scalar)
    return (character.isLetter || character.isNumber) || ".-_:@".contains(character)
}

@Suite("Name")
struct NameTests {
    @Test("every byte is allowed exactly when the documented alphabet says so")
    func alphabet() {
        var allowed = 0
        for value in 0...255 {
            let byte = UInt8(value)
            #expect(Name.isNameByte(byte) == documentedNameByte(byte), "byte \(value)")
            #expect(Name.isValid([byte]) == documentedNameByte(byte), "byte \(value)")
            if documentedNameByte(byte) { allowed += 1 }
        }
        #expect(allowed == 26 + 26 + 10 + 5)
    }

    @Test("lengths: 0 and 201 are refused, 1 and 200 accepted")
    func lengths() {
        #expect(Name.maximumLength == 200)
        #expect(!Name.isValid(""))
        #expect(Name.isValid("a"))
        #expect(Name.isValid(String(repeating: "a", count: 199)))
        #expect(Name.isValid(String(repeating: "a", count: 200)))
        #expect(!Name.isValid(String(repeating: "a", count: 201)))
        #expect(!Name.isValid(String(repeating: "a", count: 10_000)))
        #expect(!Name.isValid([UInt8]()))
        #expect(Name.isValid([UInt8](repeating: UInt8(ascii: "Z"), count: 200)))
        #expect(!Name.isValid([UInt8](repeating: UInt8(ascii: "Z"), count: 201)))
        // 100 two-byte characters are 200 bytes but not ASCII.
        #expect(!Name.isValid(String(repeating: "é", count: 100)))
    }

    @Test(
        "typical names are valid",
        arguments: [
            "order", "Order", "order-created", "order_created", "order.created.v2", "urn:order:42", "user@example.com",
            "0", "-", ".", "_", ":", "@", "550e8400-e29b-41d4-a716-446655440000", "A-Za-z0-9._:@-",
        ])
    func valid(_ name: String) {
        #expect(Name.isValid(name))
        #expect(Name.isValid(Array(name.utf8)))
    }

    @Test(
        "names with bad bytes are refused",
        arguments: [
            " ", "a b", " a", "a ", "a/b", "/", "a\\b", "é", "café", "日本", "😀", "a\0b", "\0", "a\nb", "a\tb", "#", "+",
            "%", "*", "\"", "'", ",", "~", "!", "?", "=", "&", "(", ")", "[", "]", "{", "}", "<", ">", "|", "$", ";",
            "`", "^", "\u{7F}",
        ])
    func invalid(_ name: String) {
        #expect(!Name.isValid(name))
        #expect(!Name.isValid(Array(name.utf8)))
    }
}

@Suite("StreamName and NameError")
struct StreamNameTests {
    @Test("valid parts make a stream")
    func valid() throws {
        let stream = try StreamName(aggregateType: "order", aggregateID: "42")
        #expect(stream.aggregateType == "order")
        #expect(stream.aggregateID == "42")
        #expect(stream.description == "order/42")
        #expect(stream == StreamName(uncheckedType: "order", id: "42"))
        #expect(stream != (try StreamName(aggregateType: "order", aggregateID: "43")))
        #expect(stream != (try StreamName(aggregateType: "orders", aggregateID: "42")))
        let longest = String(repeating: "x", count: 200)
        #expect((try StreamName(aggregateType: longest, aggregateID: longest)).aggregateID == longest)
    }

    @Test(
        "a bad aggregate type throws NameError for aggregate_type",
        arguments: ["", "a b", "a/b", "é", String(repeating: "t", count: 201)])
    func badType(_ type: String) {
        #expect(throws: NameError(field: "aggregate_type", value: type)) {
            try StreamName(aggregateType: type, aggregateID: "42")
        }
    }

    @Test(
        "a bad aggregate id throws NameError for aggregate_id",
        arguments: ["", "4 2", "a/b", "ü", String(repeating: "i", count: 201)])
    func badID(_ id: String) {
        #expect(throws: NameError(field: "aggregate_id", value: id)) {
            try StreamName(aggregateType: "order", aggregateID: id)
        }
    }

    @Test("when both parts are bad, the type is reported")
    func bothBad() {
        #expect(throws: NameError(field: "aggregate_type", value: "a b")) {
            try StreamName(aggregateType: "a b", aggregateID: "c d")
        }
    }

    @Test("the typed error carries the field and value, and its message states the rule")
    func errorDetails() throws {
        do {
            _ = try StreamName(aggregateType: "order", aggregateID: "bad/id")
            Issue.record("expected a NameError")
        } catch {
            // `error` is statically a NameError: the initialiser uses typed throws.
            #expect(error.field == "aggregate_id")
            #expect(error.value == "bad/id")
            #expect(error.description.contains("aggregate_id"))
            #expect(error.description.contains("'bad/id'"))
            #expect(error.description.contains("1 to 200 bytes"))
            #expect(error.description.contains("A-Z a-z 0-9 . _ : @ -"))
        }
    }

    @Test("NameError cuts long values to 64 characters")
    func truncation() {
        let long = String(repeating: "abc/", count: 100)
        let error = NameError(field: "event_type", value: long)
        #expect(error.value == String(long.prefix(64)))
        #expect(error.value.count == 64)
        #expect(NameError(field: "f", value: "short").value == "short")
        let unicode = String(repeating: "é", count: 70)
        #expect(NameError(field: "f", value: unicode).value.count == 64)
    }
}

@Suite("ExpectedVersion")
struct ExpectedVersionTests {
    @Test("any is satisfied by every version")
    func any() {
        for version: StreamVersion in [0, 1, 2, 1000, .max] {
            #expect(ExpectedVersion.any.isSatisfied(by: version))
        }
    }

    @Test("noStream is satisfied only by version 0")
    func noStream() {
        #expect(ExpectedVersion.noStream.isSatisfied(by: 0))
        for version: StreamVersion in [1, 2, 1000, .max] {
            #expect(!ExpectedVersion.noStream.isSatisfied(by: version))
        }
    }

    @Test("exact is satisfied only by that version", arguments: [StreamVersion(0), 1, 2, 41, .max])
    func exact(_ expected: StreamVersion) {
        let expectation = ExpectedVersion.exact(expected)
        #expect(expectation.isSatisfied(by: expected))
        if expected > 0 { #expect(!expectation.isSatisfied(by: expected - 1)) }
        if expected < .max { #expect(!expectation.isSatisfied(by: expected + 1)) }
        #expect(!expectation.isSatisfied(by: expected ^ 0x8000))
    }

    @Test("descriptions use the protocol's words")
    func descriptions() {
        #expect(ExpectedVersion.any.description == "ANY")
        #expect(ExpectedVersion.noStream.description == "NONE")
        #expect(ExpectedVersion.exact(0).description == "0")
        #expect(ExpectedVersion.exact(17).description == "17")
        #expect(ExpectedVersion.exact(.max).description == "18446744073709551615")
    }
}

@Suite("ErrorCode")
struct ErrorCodeTests {
    @Test("codes are distinct upper-case words whose description is the wire form")
    func codes() {
        let codes: [ErrorCode] = [
            .badRequest, .badJSON, .conflict, .notFound, .tooLarge, .noAuth, .internal, .timeout, .rejected,
            .unavailable,
        ]
        #expect(Set(codes).count == codes.count)
        for code in codes {
            #expect(code.description == code.rawValue)
            #expect(code.rawValue == code.rawValue.uppercased())
            #expect(!code.rawValue.contains(" "))
            #expect(ErrorCode(rawValue: code.rawValue) == code)
        }
        #expect(ErrorCode.conflict.rawValue == "CONFLICT")
        #expect(ErrorCode.badJSON.rawValue == "BADJSON")
    }
}
