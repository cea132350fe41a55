import Foundation
import LoglineCore
import LoglineLog
import Testing

@Suite("LMDBEventLog: appends, positions and versions")
struct AppendTests {
    @Test("a new log is empty")
    func emptyLog() async throws {
        try await withLog { log, path in
            #expect(log.headPosition == 0)
            #expect(try log.everything().isEmpty)
            #expect(try log.streamVersion(stream("order", "1")) == 0)
            let info = try log.info()
            #expect(info.lastPosition == 0)
            #expect(info.eventCount == 0)
            #expect(info.streamCount == 0)
            #expect(info.location == URL(fileURLWithPath: path).standardizedFileURL.path)
            #expect(log.directory == info.location)
        }
    }

    @Test("positions are gap-free across streams and versions are gap-free within each stream")
    func positionsAndVersions() async throws {
        try await withLog { log, _ in
            let streams = [stream("order", "1"), stream("order", "2"), stream("customer", "1")]
            var expectedVersions: [StreamName: StreamVersion] = [:]
            var nextPosition: LogPosition = 1
            var reported: [LogPosition: (StreamName, StreamVersion, EventID, String, Int)] = [:]
            // An irregular interleaving, with requests of 1 to 3 events.
            for step in 0..<30 {
                let target = streams[(step * 7 + step / 3) % streams.count]
                let count = step % 3 + 1
                let events = (0..<count).map { event("step-\(step)", data: #"{"step":\#(step),"i":\#($0)}"#) }
                let result = try await log.append(request(target, events: events))
                #expect(!result.alreadyAppended)
                #expect(result.events.count == count)
                for (offset, appended) in result.events.enumerated() {
                    let version = expectedVersions[target, default: 0] + 1
                    #expect(appended.position == nextPosition)
                    #expect(appended.version == version)
                    reported[appended.position] = (target, version, appended.eventID, "step-\(step)", offset)
                    expectedVersions[target] = version
                    nextPosition += 1
                }
                #expect(log.headPosition == nextPosition - 1)
            }
            let all = try log.everything()
            #expect(all.map(\.position) == Array(1..<nextPosition))
            for stored in all {
                let (target, version, id, type, offset) = try #require(reported[stored.position])
                #expect(stored.stream == target)
                #expect(stored.version == version)
                #expect(stored.eventID == id)
                #expect(stored.eventType == type)
                #expect(Array(stored.data.suffix(6)) == Array(#""i":\#(offset)}"#.utf8))
            }
            for target in streams {
                let events = try log.everything(in: target)
                #expect(events.map(\.version) == Array(1...expectedVersions[target]!))
                #expect(events.allSatisfy { $0.stream == target })
                #expect(zip(events, events.dropFirst()).allSatisfy { $0.position < $1.position })
                #expect(try log.streamVersion(target) == expectedVersions[target])
            }
        }
    }

    @Test("stored events keep their id, type, stream, data and metadata byte for byte")
    func contentRoundTrip() async throws {
        try await withLog { log, _ in
            let id = EventID.random()
            let data = "{ \"text\": \"héllo \\\"wörld\\\" 😀\",\n  \"n\": [1, 2.5e3, null, true] }"
            let metadata = #"{"correlation_id":"abc","causation_id":null}"#
            let target = stream("Order.Type_1:x@y-z", "ID-42")
            let before = Timestamp.now()
            let result = try await log.append(
                request(target, .noStream, event("order.created:v2", id: id, data: data, metadata: metadata)))
            let after = Timestamp.now()
            let stored = try #require(try log.everything().first)
            #expect(stored.eventID == id)
            #expect(stored.eventType == "order.created:v2")
            #expect(stored.stream == target)
            #expect(stored.version == 1)
            #expect(stored.position == result.events[0].position)
            #expect(stored.data == Array(data.utf8))
            #expect(stored.metadata == Array(metadata.utf8))
            #expect(stored.recordedAt >= before)
            #expect(stored.recordedAt <= after)
            #expect(try log.everything(in: target) == [stored])
        }
    }

    @Test("events without an id get a fresh, unique RFC 9562 id that is reported and stored")
    func generatedIDs() async throws {
        try await withLog { log, _ in
            let target = stream("order", "1")
            let result = try await log.append(request(target, events: [event(), event(), event()]))
            let ids = result.events.map(\.eventID)
            #expect(Set(ids).count == 3)
            for id in ids {
                // Random (version 4) or time-ordered (version 7), with the RFC 9562 variant.
                #expect([4, 7].contains((id.high >> 12) & 0xF), "\(id)")
                #expect(id.low >> 62 == 0b10, "\(id)")
            }
            #expect(try log.everything().map(\.eventID) == ids)
            // Appending the same id-less events again is not a retry: they are new events.
            let again = try await log.append(request(target, events: [event(), event(), event()]))
            #expect(!again.alreadyAppended)
            #expect(again.events.map(\.position) == [4, 5, 6])
        }
    }

    @Test("recorded_at never goes backwards along the log")
    func recordedAtMonotonic() async throws {
        try await withLog { log, _ in
            for index in 0..<20 {
                _ = try await log.append(request(stream("s", "\(index % 4)"), event()))
            }
            let times = try log.everything().map(\.recordedAt)
            #expect(zip(times, times.dropFirst()).allSatisfy { $0 <= $1 })
        }
    }

    @Test("an empty request fails with emptyRequest and writes nothing")
    func emptyRequest() async throws {
        try await withLog { log, _ in
            _ = try await log.append(request(stream("a", "1"), event()))
            await #expect(throws: AppendError.emptyRequest) {
                try await log.append(request(stream("a", "1"), events: []))
            }
            #expect(log.headPosition == 1)
            #expect(try log.streamVersion(stream("a", "1")) == 1)
        }
    }
}

@Suite("LMDBEventLog: expected versions")
struct ExpectedVersionAppendTests {
    @Test("noStream succeeds on a new stream and conflicts once it has events")
    func noStream() async throws {
        try await withLog { log, _ in
            let target = stream("order", "1")
            let first = try await log.append(request(target, .noStream, event("created")))
            #expect(first.events.map(\.version) == [1])
            await #expect(throws: AppendError.wrongExpectedVersion(stream: target, expected: .noStream, actual: 1)) {
                try await log.append(request(target, .noStream, event("created-again")))
            }
            // Another stream is unaffected.
            let other = try await log.append(request(stream("order", "2"), .noStream, event("created")))
            #expect(other.events.map(\.version) == [1])
            #expect(other.events.map(\.position) == [2])
        }
    }

    @Test("exact(0) means the stream has no events")
    func exactZero() async throws {
        try await withLog { log, _ in
            let target = stream("order", "1")
            let first = try await log.append(request(target, .exact(0), event()))
            #expect(first.events[0].version == 1)
            await #expect(throws: AppendError.wrongExpectedVersion(stream: target, expected: .exact(0), actual: 1)) {
                try await log.append(request(target, .exact(0), event()))
            }
        }
    }

    @Test("exact succeeds at the current version and conflicts otherwise, reporting the actual version")
    func exact() async throws {
        try await withLog { log, _ in
            let target = stream("order", "1")
            _ = try await log.append(request(target, .any, event(), event()))
            let third = try await log.append(request(target, .exact(2), event()))
            #expect(third.events.map(\.version) == [3])
            for wrong: StreamVersion in [0, 1, 2, 4, 100] {
                await #expect(
                    throws: AppendError.wrongExpectedVersion(stream: target, expected: .exact(wrong), actual: 3)
                ) {
                    try await log.append(request(target, .exact(wrong), event("never")))
                }
            }
            #expect(try log.streamVersion(target) == 3)
            #expect(log.headPosition == 3)
            #expect(try log.everything().allSatisfy { $0.eventType != "never" })
            let fourth = try await log.append(request(target, .exact(3), event()))
            #expect(fourth.events.map(\.position) == [4])
            #expect(fourth.events.map(\.version) == [4])
        }
    }

    @Test("any appends whatever the version")
    func any() async throws {
        try await withLog { log, _ in
            let target = stream("order", "1")
            for expected: StreamVersion in 1...5 {
                let result = try await log.append(request(target, .any, event()))
                #expect(result.events[0].version == expected)
            }
        }
    }

    @Test("a conflicting multi-event request writes none of its events")
    func conflictIsAtomic() async throws {
        try await withLog { log, _ in
            let target = stream("order", "1")
            _ = try await log.append(request(target, event("first")))
            let ids = (0..<5).map { _ in EventID.random() }
            let batch = ids.map { event("batched", id: $0) }
            await #expect(throws: AppendError.wrongExpectedVersion(stream: target, expected: .exact(0), actual: 1)) {
                try await log.append(request(target, .exact(0), events: batch))
            }
            #expect(log.headPosition == 1)
            #expect(try log.streamVersion(target) == 1)
            #expect(try log.everything().map(\.eventType) == ["first"])
            #expect(try log.info().eventCount == 1)
            // The ids were not recorded either: the same request at the right version succeeds as new.
            let result = try await log.append(request(target, .exact(1), events: batch))
            #expect(!result.alreadyAppended)
            #expect(result.events.map(\.eventID) == ids)
            #expect(result.events.map(\.position) == [2, 3, 4, 5, 6])
            #expect(result.events.map(\.version) == [2, 3, 4, 5, 6])
        }
    }

    @Test("the conflict's description names the stream and both versions")
    func conflictDescription() async throws {
        try await withLog { log, _ in
            let target = stream("order", "7")
            _ = try await log.append(request(target, event(), event()))
            let failure = await log.outcome(request(target, .exact(5), event())).failure
            let description = try #require(failure).description
            #expect(description.contains("order/7"))
            #expect(description.contains("version 2"))
            #expect(description.contains("expected 5"))
        }
    }
}
