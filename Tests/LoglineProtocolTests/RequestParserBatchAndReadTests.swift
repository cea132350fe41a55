import LoglineCore
import LoglineProtocol
import NIOCore
import Testing

private let uuid = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
private let uuidValue = EventID(high: 0x7c9e_6679_7425_40de, low: 0x944b_e07f_c1f9_0ae7)

/// Parses `frame`, returning the error code (or `nil` on success) and the request.
private func parse(
    _ frame: RequestFrame, _ parser: RequestParser = RequestParser()
) -> Result<Request, RequestError> {
    do {
        return .success(try parser.parse(frame))
    } catch {
        return .failure(error)
    }
}

/// The error code `frame` fails with, or `nil` when it parses.
private func failureCode(_ frame: RequestFrame, _ parser: RequestParser = RequestParser()) -> ErrorCode? {
    parseError(frame, parser)?.code
}

@Suite("RequestParser: APPENDMANY")
struct RequestParserAppendManyTests {
    private func appendMany(
        _ frame: RequestFrame, _ parser: RequestParser = RequestParser(),
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> AppendManyCommand? {
        switch parse(frame, parser) {
        case .success(.appendMany(let command)):
            return command
        case .success(let other):
            Issue.record("expected APPENDMANY, got \(other)", sourceLocation: sourceLocation)
        case .failure(let error):
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
        return nil
    }

    @Test("events with and without event_id and metadata, data slices kept byte for byte")
    func events() {
        let body =
            #"[{"event_type":"item-added","data":{"sku":"A-1","qty":2}},"#
            + #" { "data" : [1, 2 ,3] , "event_id" : ""# + uuid + #"", "event_type" : "item-removed","#
            + #" "metadata" : { "by" : "ann" } }, {"event_type":"noted","data":"a \"quoted\" string"}]"#
        guard let command = appendMany(respFrame("APPENDMANY", "cart", "c-1", body)) else { return }
        #expect(command.stream == StreamName(uncheckedType: "cart", id: "c-1"))
        #expect(command.expectedVersion == .any)
        #expect(command.events.count == 3)
        guard command.events.count == 3 else { return }
        #expect(
            command.events[0]
                == EventSpec(
                    eventID: nil, eventType: "item-added", data: bytes(#"{"sku":"A-1","qty":2}"#),
                    metadata: bytes("{}")))
        #expect(
            command.events[1]
                == EventSpec(
                    eventID: uuidValue, eventType: "item-removed", data: bytes("[1, 2 ,3]"),
                    metadata: bytes(#"{ "by" : "ann" }"#)))
        #expect(
            command.events[2]
                == EventSpec(
                    eventID: nil, eventType: "noted", data: bytes(#""a \"quoted\" string""#),
                    metadata: bytes("{}")))
    }

    @Test("EXPECT applies to the whole batch, in any case")
    func expect() {
        let body = #"[{"event_type":"e","data":1}]"#
        #expect(appendMany(respFrame("APPENDMANY", "s", "1", "EXPECT", "4", body))?.expectedVersion == .exact(4))
        #expect(appendMany(respFrame("appendmany", "s", "1", "expect", "none", body))?.expectedVersion == .noStream)
        #expect(appendMany(respFrame("AppendMany", "s", "1", "Expect", "Any", body))?.expectedVersion == .any)
        #expect(failureCode(respFrame("APPENDMANY", "s", "1", "EXPECT", "-1", body)) == .badRequest)
        #expect(failureCode(respFrame("APPENDMANY", "s", "1", "EXPECT", "abc", body)) == .badRequest)
    }

    @Test("inline, the events array may contain spaces")
    func inline() {
        let line =
            #"APPENDMANY order o1 EXPECT NONE [{"event_type": "a", "data": {"x": 1}}, {"event_type": "b", "data": []}]"#
        guard let command = appendMany(inlineFrame(line)) else { return }
        #expect(command.stream == StreamName(uncheckedType: "order", id: "o1"))
        #expect(command.expectedVersion == .noStream)
        #expect(command.events.map(\.eventType) == ["a", "b"])
        #expect(command.events.map(\.data) == [bytes(#"{"x": 1}"#), bytes("[]")])
        #expect(command.events.map(\.metadata) == [bytes("{}"), bytes("{}")])
    }

    @Test("an event_type written with JSON escapes is decoded before it is checked")
    func escapedEventType() {
        let command = appendMany(respFrame("APPENDMANY", "s", "1", #"[{"event_type":"\u0041b","data":0}]"#))
        #expect(command?.events.first?.eventType == "Ab")
    }

    @Test(
        "malformed events are BADREQ",
        arguments: [
            #"[{"event_type":"e","data":1,"extra":true}]"#,  // unknown field
            #"[{"data":1}]"#,  // missing event_type
            #"[{"event_type":"e"}]"#,  // missing data
            #"[{"event_type":"e","data":1},{"data":2}]"#,  // second event missing event_type
            "[]",  // no events
            " [ ] ",
            #"[{"event_type":"a/b","data":1}]"#,  // bad event type
            #"[{"event_type":5,"data":1}]"#,  // event type not a string
            #"[{"event_type":"","data":1}]"#,
            #"[{"event_type":"e","data":1,"event_id":"nope"}]"#,  // bad event id
            #"[{"event_type":"e","data":1,"event_id":5}]"#,
        ])
    func malformedEvents(_ body: String) {
        #expect(failureCode(respFrame("APPENDMANY", "s", "1", body)) == .badRequest)
    }

    @Test(
        "bodies that are not JSON arrays of objects are BADJSON",
        arguments: [
            #"{"event_type":"e","data":1}"#,  // an object, not an array
            "5", "\"x\"", "null",
            "[1]", "[[]]", #"[{"event_type":"e","data":1}, 2]"#,  // elements that are not objects
            #"[{"event_type":"e","data":1}"#, "[", "not json",  // not JSON
            #"[{"event_type":"e","data":1,"metadata":[1]}]"#,  // metadata not an object
            #"[{"event_type":"e","data":1,"metadata":"m"}]"#,
        ])
    func notArrays(_ body: String) {
        #expect(failureCode(respFrame("APPENDMANY", "s", "1", body)) == .badJSON)
    }

    @Test("missing parts, extra arguments and bad names are BADREQ")
    func badShape() {
        let body = #"[{"event_type":"e","data":1}]"#
        #expect(failureCode(respFrame("APPENDMANY", "s", "1")) == .badRequest)
        #expect(failureCode(respFrame("APPENDMANY", "s", "1", "EXPECT", "1")) == .badRequest)
        #expect(failureCode(respFrame("APPENDMANY", "s")) == .badRequest)
        #expect(failureCode(respFrame("APPENDMANY", "s", "1", body, "extra")) == .badRequest)
        #expect(failureCode(respFrame("APPENDMANY", "s s", "1", body)) == .badRequest)
        #expect(failureCode(respFrame("APPENDMANY", "s", String(repeating: "i", count: 201), body)) == .badRequest)
        #expect(failureCode(inlineFrame("APPENDMANY s 1")) == .badRequest)
    }

    @Test("an event's data over maximumDataBytes is TOOLARGE")
    func dataLimit() {
        let parser = RequestParser(maximumDataBytes: 10)
        let fits = #"[{"event_type":"e","data":"12345678"}]"#
        let over = #"[{"event_type":"e","data":"123456789"}]"#
        #expect(
            appendMany(respFrame("APPENDMANY", "s", "1", fits), parser)?.events.first?.data == bytes(#""12345678""#))
        #expect(failureCode(respFrame("APPENDMANY", "s", "1", over), parser) == .tooLarge)
    }

    @Test("an event's metadata over 64 KiB is TOOLARGE, as for APPEND (PROTOCOL.md: metadata up to 64 KiB)")
    func metadataLimit() {
        // {"k":"…"} of exactly 65536 bytes fits; one byte more does not.
        let fits = #"{"k":""# + String(repeating: "m", count: 65_536 - 8) + #""}"#
        let over = #"{"k":""# + String(repeating: "m", count: 65_536 - 7) + #""}"#
        #expect(fits.utf8.count == 65_536)
        let body = { (metadata: String) in #"[{"event_type":"e","data":1,"metadata":"# + metadata + "}]" }
        #expect(appendMany(respFrame("APPENDMANY", "s", "1", body(fits)))?.events.first?.metadata == bytes(fits))
        #expect(failureCode(respFrame("APPENDMANY", "s", "1", body(over))) == .tooLarge)
    }
}

@Suite("RequestParser: READ and READALL")
struct RequestParserReadTests {
    private func read(_ frame: RequestFrame, sourceLocation: SourceLocation = #_sourceLocation) -> ReadCommand? {
        switch parse(frame) {
        case .success(.read(let command)): return command
        case let other: Issue.record("expected READ, got \(other)", sourceLocation: sourceLocation)
        }
        return nil
    }

    private func readAll(_ frame: RequestFrame, sourceLocation: SourceLocation = #_sourceLocation) -> ReadAllCommand? {
        switch parse(frame) {
        case .success(.readAll(let command)): return command
        case let other: Issue.record("expected READALL, got \(other)", sourceLocation: sourceLocation)
        }
        return nil
    }

    @Test("READ defaults: from version 1, 1000 events")
    func readDefaults() {
        #expect(RequestParser.defaultCount == 1000)
        #expect(RequestParser.maximumCount == 10_000)
        for frame in [respFrame("READ", "order", "o1"), inlineFrame("read order o1")] {
            let command = read(frame)
            #expect(command?.stream == StreamName(uncheckedType: "order", id: "o1"))
            #expect(command?.fromVersion == 1)
            #expect(command?.count == 1000)
        }
    }

    @Test("READ with FROM and COUNT in either order and any case")
    func readOptions() {
        for frame in [
            respFrame("READ", "order", "o1", "FROM", "5", "COUNT", "10"),
            respFrame("READ", "order", "o1", "count", "10", "from", "5"),
            inlineFrame("READ order o1 From 5 Count 10"),
        ] {
            let command = read(frame)
            #expect(command?.fromVersion == 5)
            #expect(command?.count == 10)
        }
        #expect(read(respFrame("READ", "s", "1", "FROM", "0"))?.fromVersion == 0)
        #expect(read(respFrame("READ", "s", "1", "FROM", "18446744073709551615"))?.fromVersion == UInt64.max)
        #expect(read(respFrame("READ", "s", "1", "COUNT", "1"))?.count == 1)
        #expect(read(respFrame("READ", "s", "1", "COUNT", "10000"))?.count == 10_000)
    }

    @Test(
        "READ errors are BADREQ",
        arguments: [
            ["READ"], ["READ", "order"], ["READ", "order", "o1", "COUNT", "0"],
            ["READ", "order", "o1", "COUNT", "10001"], ["READ", "order", "o1", "COUNT", "-1"],
            ["READ", "order", "o1", "COUNT"], ["READ", "order", "o1", "FROM"], ["READ", "order", "o1", "FROM", "x"],
            ["READ", "order", "o1", "FROM", "-1"], ["READ", "order", "o1", "LIMIT", "5"], ["READ", "order", "o1", "5"],
            ["READ", "order/x", "o1"], ["READ", "order", String(repeating: "o", count: 201)],
            ["READ", "order", "o1", "FROM", "18446744073709551616"],
        ])
    func readErrors(_ words: [String]) {
        #expect(failureCode(.resp(words.map(byteBuffer))) == .badRequest)
        #expect(failureCode(inlineFrame(words.joined(separator: " "))) == .badRequest)
    }

    @Test("READALL defaults: from position 1, 1000 events, all types")
    func readAllDefaults() {
        for frame in [respFrame("READALL"), inlineFrame("readall")] {
            let command = readAll(frame)
            #expect(command?.fromPosition == 1)
            #expect(command?.count == 1000)
            #expect(command?.eventTypes == [])
        }
    }

    @Test("READALL with FROM, COUNT and several TYPEs in any order")
    func readAllOptions() {
        for frame in [
            respFrame("READALL", "FROM", "10", "COUNT", "5", "TYPE", "a", "TYPE", "b.c", "TYPE", "a"),
            respFrame("readall", "type", "b.c", "count", "5", "Type", "a", "from", "10"),
            inlineFrame("READALL TYPE a FROM 10 TYPE b.c COUNT 5"),
        ] {
            let command = readAll(frame)
            #expect(command?.fromPosition == 10)
            #expect(command?.count == 5)
            #expect(command?.eventTypes == ["a", "b.c"])
        }
        #expect(readAll(respFrame("READALL", "FROM", "0", "COUNT", "10000"))?.count == 10_000)
    }

    @Test(
        "READALL errors are BADREQ",
        arguments: [
            ["READALL", "COUNT", "0"], ["READALL", "COUNT", "10001"], ["READALL", "COUNT", "abc"],
            ["READALL", "FROM", "-3"], ["READALL", "TYPE"], ["READALL", "TYPE", "a/b"],
            ["READALL", "TYPE", String(repeating: "t", count: 201)], ["READALL", "order"], ["READALL", "FROM"],
        ])
    func readAllErrors(_ words: [String]) {
        #expect(failureCode(.resp(words.map(byteBuffer))) == .badRequest)
        #expect(failureCode(inlineFrame(words.joined(separator: " "))) == .badRequest)
    }
}
