import Foundation
import LoglineCore
import Testing

private func makeEvent(
    id: EventID = EventID("123e4567-e89b-12d3-a456-426614174000")!, type: String = "order-created",
    stream: StreamName = StreamName(uncheckedType: "order", id: "42"), version: StreamVersion = 3,
    position: LogPosition = 42, recordedAt: Int64 = 951_782_400_123,
    data: String = #"{"total":12.5,"items":["a","b"]}"#,
    metadata: String = #"{"user":"ann"}"#
) -> RecordedEvent {
    RecordedEvent(
        eventID: id, eventType: type, stream: stream, version: version, position: position,
        recordedAt: Timestamp(millisecondsSinceEpoch: recordedAt), data: Array(data.utf8),
        metadata: Array(metadata.utf8))
}

private func parseObject(_ json: String) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(json.utf8))
    return try #require(object as? [String: Any])
}

private func number(_ value: Any?) -> UInt64? {
    (value as? NSNumber)?.uint64Value
}

@Suite("RecordedEvent JSON")
struct RecordedEventTests {
    static let fields: Set<String> = [
        "event_id", "event_type", "aggregate_type", "aggregate_id", "version", "position", "recorded_at", "data",
        "metadata",
    ]

    @Test("renders every field of the envelope")
    func everyField() throws {
        let event = makeEvent()
        let object = try parseObject(event.json)
        #expect(Set(object.keys) == Self.fields)
        #expect(object["event_id"] as? String == "123e4567-e89b-12d3-a456-426614174000")
        #expect(object["event_type"] as? String == "order-created")
        #expect(object["aggregate_type"] as? String == "order")
        #expect(object["aggregate_id"] as? String == "42")
        #expect(number(object["version"]) == 3)
        #expect(number(object["position"]) == 42)
        #expect(object["recorded_at"] as? String == "2000-02-29T00:00:00.123Z")
        let data = try #require(object["data"] as? [String: Any])
        #expect(Set(data.keys) == ["total", "items"])
        #expect((data["total"] as? NSNumber)?.doubleValue == 12.5)
        #expect(data["items"] as? [String] == ["a", "b"])
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata.count == 1)
        #expect(metadata["user"] as? String == "ann")
        #expect(JSONValidator.validateObject(Array(event.json.utf8)) == nil)
    }

    @Test("the fields follow the envelope's values, not constants")
    func fieldsFollowValues() throws {
        var rng = SplitMix64(seed: 77)
        for index in 0..<50 {
            let id = EventID.random(using: &rng)
            let version = StreamVersion.random(in: 1...1_000_000, using: &rng)
            let position = LogPosition.random(in: 1...1_000_000_000, using: &rng)
            let millis = Int64.random(in: 0...4_000_000_000_000, using: &rng)
            let event = makeEvent(
                id: id, type: "type-\(index)", stream: StreamName(uncheckedType: "agg.\(index)", id: "id:\(index)@x"),
                version: version, position: position, recordedAt: millis, data: "[\(index)]", metadata: "{}")
            let object = try parseObject(event.json)
            #expect(object["event_id"] as? String == id.description)
            #expect(object["event_type"] as? String == "type-\(index)")
            #expect(object["aggregate_type"] as? String == "agg.\(index)")
            #expect(object["aggregate_id"] as? String == "id:\(index)@x")
            #expect(number(object["version"]) == version)
            #expect(number(object["position"]) == position)
            #expect(object["recorded_at"] as? String == Timestamp(millisecondsSinceEpoch: millis).description)
            #expect((object["data"] as? [Any])?.count == 1)
            #expect(number((object["data"] as? [Any])?.first) == UInt64(index))
            #expect((object["metadata"] as? [String: Any])?.isEmpty == true)
        }
    }

    @Test(
        "data may be any JSON value and is copied byte for byte",
        arguments: [
            "null", "true", "false", "0", "-12.5e-3", #""text""#, #""\u00e9\n\"q\"""#, "\"日本😀\"", "[]", "[1,[2,[3]]]",
            "{}", "{ \"spaced\" : [ 1 , 2 ] ,\n \"n\": null }",
        ])
    func anyData(_ data: String) throws {
        let event = makeEvent(data: data, metadata: "{ }")
        let json = event.json
        #expect(json.contains(#","data":"# + data + #","metadata":{ }}"#))
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        let expected = try JSONSerialization.jsonObject(with: Data(data.utf8), options: [.fragmentsAllowed])
        let rendered = try #require(object?["data"])
        // Compare through a canonical re-encoding of both values.
        let options: JSONSerialization.WritingOptions = [.sortedKeys, .fragmentsAllowed]
        #expect(
            try JSONSerialization.data(withJSONObject: rendered, options: options)
                == JSONSerialization.data(withJSONObject: expected, options: options))
        #expect(JSONValidator.validateObject(Array(json.utf8)) == nil)
    }

    @Test("appendJSON appends after existing bytes and matches json")
    func appendJSON() {
        let event = makeEvent()
        var buffer = Array("*1\r\n".utf8)
        event.appendJSON(to: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self) == "*1\r\n" + event.json)

        // EnvelopeJSON renders the same bytes straight from parts.
        var direct = [UInt8]()
        EnvelopeJSON.append(
            eventID: event.eventID, eventType: Array(event.eventType.utf8),
            aggregateType: Array(event.stream.aggregateType.utf8), aggregateID: Array(event.stream.aggregateID.utf8),
            version: event.version, position: event.position, recordedAt: event.recordedAt, data: event.data,
            metadata: event.metadata, to: &direct)
        #expect(String(decoding: direct, as: UTF8.self) == event.json)
    }

    @Test("names using every allowed punctuation need no escaping")
    func punctuation() throws {
        let event = makeEvent(
            type: "a.b_c:d@e-f", stream: StreamName(uncheckedType: "Type.With_All:Chars@ok-1", id: "ID-0._:@"))
        let object = try parseObject(event.json)
        #expect(object["event_type"] as? String == "a.b_c:d@e-f")
        #expect(object["aggregate_type"] as? String == "Type.With_All:Chars@ok-1")
        #expect(object["aggregate_id"] as? String == "ID-0._:@")
    }

    @Test("extreme versions, positions and times are rendered exactly")
    func extremes() throws {
        let event = makeEvent(version: .max, position: 0, recordedAt: -1)
        let json = event.json
        #expect(json.contains(#""version":18446744073709551615,"#))
        #expect(json.contains(#""position":0,"#))
        #expect(json.contains(#""recorded_at":"1969-12-31T23:59:59.999Z""#))
        _ = try parseObject(json)
    }

    @Test("appendDecimal agrees with String(_:) for every magnitude")
    func decimal() {
        var values: [UInt64] = [0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, .max, .max - 1, 1 << 63, (1 << 63) - 1]
        var power: UInt64 = 1
        for _ in 0..<19 {
            power *= 10
            values += [power - 1, power, power + 1]
        }
        var rng = SplitMix64(seed: 3)
        values += (0..<500).map { _ in rng.next() >> UInt64.random(in: 0...63, using: &rng) }
        for value in values {
            var buffer = Array("x".utf8)
            EnvelopeJSON.appendDecimal(value, to: &buffer)
            #expect(String(decoding: buffer, as: UTF8.self) == "x" + String(value))
        }
    }

    @Test("envelopes are values: equal when every field is equal")
    func equality() {
        #expect(makeEvent() == makeEvent())
        #expect(makeEvent() != makeEvent(version: 4))
        #expect(makeEvent() != makeEvent(metadata: "{}"))
        #expect(makeEvent() != makeEvent(recordedAt: 0))
        var changed = makeEvent()
        changed.data = Array("[]".utf8)
        #expect(changed != makeEvent())
    }
}
