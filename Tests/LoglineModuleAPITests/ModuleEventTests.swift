import LoglineCore
import LoglineModuleAPI
import Testing

/// All the tests of this file, so that `--filter ModuleEventTests` selects them.
@Suite("ModuleEvent")
struct ModuleEventTests {
    static func envelope(data: String, metadata: String) -> RecordedEvent {
        RecordedEvent(
            eventID: EventID(high: 1, low: 2), eventType: "order-created",
            stream: StreamName(uncheckedType: "order", id: "o-1"), version: 1, position: 7,
            recordedAt: Timestamp(millisecondsSinceEpoch: 1_795_000_000_000), data: Array(data.utf8),
            metadata: Array(metadata.utf8))
    }

    @Test("the metadata, parsed when asked for, is the envelope's, and gives the correlation id")
    func metadataParsedOnAccess() throws {
        let event = try ModuleEvent(
            Self.envelope(data: #"{"order_id":"o-1"}"#, metadata: #"{"correlation_id":"k1","n":[1, 2.50]}"#))
        #expect(event.data == ["order_id": "o-1"])
        #expect(event.metadata == ["correlation_id": "k1", "n": [1, .number(JSONNumber("2.50")!)]])
        #expect(event.correlationID == "k1")
        let plain = try ModuleEvent(Self.envelope(data: "{}", metadata: "{}"))
        #expect(plain.metadata == [:])
        #expect(plain.correlationID == plain.eventID.description)
    }

    @Test("invalid data or metadata is refused when the event is made, with the parser's failure")
    func invalidJSONThrows() throws {
        let bad = #"{"a": 1, "#
        let parserFailure = try #require(throws: JSONValidator.Failure.self) { try JSONValue(parsing: bad) }
        #expect(throws: parserFailure) {
            try ModuleEvent(Self.envelope(data: "{}", metadata: bad))
        }
        #expect(throws: JSONValidator.Failure.self) {
            try ModuleEvent(Self.envelope(data: #"{"a": tru}"#, metadata: "{}"))
        }
    }

    @Test("two events are equal when their envelopes and data are")
    func equality() throws {
        let first = try ModuleEvent(Self.envelope(data: #"{"a":1}"#, metadata: #"{"b":2}"#))
        let same = try ModuleEvent(Self.envelope(data: #"{"a":1}"#, metadata: #"{"b":2}"#))
        let other = try ModuleEvent(Self.envelope(data: #"{"a":1}"#, metadata: #"{"b":3}"#))
        #expect(first == same)
        #expect(first.hashValue == same.hashValue)
        #expect(first != other)
    }
}
