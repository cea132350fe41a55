import LoglineCore
import LoglineLog
import Testing

@Suite("LMDBEventLog: idempotency and event ids")
struct IdempotencyTests {
    @Test("retrying the same events returns the original positions and versions and writes nothing")
    func retry() async throws {
        try await withLog { log, _ in
            let target = stream("order", "1")
            _ = try await log.append(request(stream("other", "1"), event()))
            let ids = (0..<3).map { _ in EventID.random() }
            let events = ids.enumerated().map { event("item-added", id: $1, data: #"{"i":\#($0)}"#) }
            let original = try await log.append(request(target, .noStream, events: events))
            #expect(!original.alreadyAppended)
            #expect(original.events.map(\.position) == [2, 3, 4])
            _ = try await log.append(request(target, event("later")))
            let snapshot = try log.everything()
            let head = log.headPosition

            let retry = try await log.append(request(target, .noStream, events: events))
            #expect(retry.alreadyAppended)
            #expect(retry.events == original.events)
            #expect(log.headPosition == head)
            #expect(try log.everything() == snapshot)
            #expect(try log.streamVersion(target) == 4)

            // Whatever the expectation: a retry reports what happened the first time.
            for expectation in [ExpectedVersion.any, .exact(0), .exact(3), .exact(99)] {
                let again = try await log.append(request(target, expectation, events: events))
                #expect(again.alreadyAppended)
                #expect(again.events == original.events)
            }
            #expect(log.headPosition == head)
        }
    }

    @Test("a retry of a subset, or in another order, reports each event's own position")
    func retrySubset() async throws {
        try await withLog { log, _ in
            let target = stream("order", "1")
            let ids = (0..<4).map { _ in EventID.random() }
            let events = ids.enumerated().map { event("e", id: $1, data: "[\($0)]") }
            let original = try await log.append(request(target, events: events))
            let subset = try await log.append(request(target, events: [events[3], events[1]]))
            #expect(subset.alreadyAppended)
            #expect(subset.events == [original.events[3], original.events[1]])
            #expect(log.headPosition == 4)
        }
    }

    @Test("metadata is not part of an event's identity")
    func metadataIgnored() async throws {
        try await withLog { log, _ in
            let id = EventID.random()
            let target = stream("order", "1")
            let original = try await log.append(request(target, event("e", id: id, metadata: #"{"try":1}"#)))
            let retry = try await log.append(request(target, event("e", id: id, metadata: #"{"try":2}"#)))
            #expect(retry.alreadyAppended)
            #expect(retry.events == original.events)
            #expect(try log.everything().map(\.metadata) == [Array(#"{"try":1}"#.utf8)])
        }
    }

    @Test("the same id with other data, another stream or another type is refused with eventIDReused")
    func reused() async throws {
        try await withLog { log, _ in
            let id = EventID.random()
            let target = stream("order", "1")
            _ = try await log.append(request(stream("x", "1"), event(), event()))
            let original = try await log.append(request(target, event("created", id: id, data: #"{"a":1}"#)))
            let position = original.events[0].position
            #expect(position == 3)

            let variants: [AppendRequest] = [
                request(target, event("created", id: id, data: #"{"a":2}"#)),  // other data
                request(target, event("created", id: id, data: #"{"a": 1}"#)),  // same value, other bytes
                request(stream("order", "2"), event("created", id: id, data: #"{"a":1}"#)),  // other stream id
                request(stream("orders", "1"), event("created", id: id, data: #"{"a":1}"#)),  // other stream type
                request(target, event("updated", id: id, data: #"{"a":1}"#)),  // other type
            ]
            for variant in variants {
                await #expect(throws: AppendError.eventIDReused(id, position: position)) {
                    try await log.append(variant)
                }
            }
            #expect(log.headPosition == 3)
            #expect(try log.streamVersion(stream("order", "2")) == 0)
            #expect(try log.streamVersion(stream("orders", "1")) == 0)
            #expect(try log.streamVersion(target) == 1)
        }
    }

    @Test("a reused id anywhere in a multi-event request writes none of the request")
    func reusedInsideRequest() async throws {
        try await withLog { log, _ in
            let taken = EventID.random()
            _ = try await log.append(request(stream("a", "1"), event("e", id: taken)))
            let fresh = (0..<3).map { _ in EventID.random() }
            let events = [
                event("n", id: fresh[0]), event("n", id: fresh[1]), event("n", id: taken), event("n", id: fresh[2]),
            ]
            await #expect(throws: AppendError.eventIDReused(taken, position: 1)) {
                try await log.append(request(stream("b", "1"), events: events))
            }
            #expect(log.headPosition == 1)
            #expect(try log.streamVersion(stream("b", "1")) == 0)
            // None of the fresh ids was recorded.
            let later = try await log.append(request(stream("b", "1"), events: fresh.map { event("n", id: $0) }))
            #expect(!later.alreadyAppended)
            #expect(later.events.map(\.position) == [2, 3, 4])
        }
    }

    @Test("a request where only some ids are stored fails with partiallyAppended and writes nothing")
    func partiallyAppended() async throws {
        try await withLog { log, _ in
            let target = stream("order", "1")
            let stored = (0..<2).map { _ in EventID.random() }
            let original = try await log.append(request(target, events: stored.map { event("e", id: $0) }))
            let newID = EventID.random()

            await #expect(throws: AppendError.partiallyAppended(stored[0], position: original.events[0].position)) {
                try await log.append(request(target, events: [event("e", id: stored[0]), event("e", id: newID)]))
            }
            // The new event comes first: the stored one is still reported.
            await #expect(throws: AppendError.partiallyAppended(stored[1], position: original.events[1].position)) {
                try await log.append(request(target, events: [event("e", id: newID), event("e", id: stored[1])]))
            }
            // An event without an id next to a stored one is also a partial retry.
            await #expect(throws: AppendError.partiallyAppended(stored[0], position: original.events[0].position)) {
                try await log.append(request(target, events: [event("e", id: stored[0]), event("e")]))
            }
            #expect(log.headPosition == 2)
            #expect(try log.streamVersion(target) == 2)
            // newID was not recorded.
            let later = try await log.append(request(target, event("e", id: newID)))
            #expect(!later.alreadyAppended)
            #expect(later.events.map(\.position) == [3])
        }
    }

    @Test("the same id twice in one request fails with duplicateEventIDInRequest and writes nothing")
    func duplicateInRequest() async throws {
        try await withLog { log, _ in
            let target = stream("order", "1")
            let id = EventID.random()
            await #expect(throws: AppendError.duplicateEventIDInRequest(id)) {
                try await log.append(request(target, events: [event("a", id: id), event("b"), event("a", id: id)]))
            }
            // Even when the two events are identical.
            await #expect(throws: AppendError.duplicateEventIDInRequest(id)) {
                try await log.append(request(target, events: [event("a", id: id), event("a", id: id)]))
            }
            #expect(log.headPosition == 0)
            #expect(try log.streamVersion(target) == 0)
            // And when the id is already stored.
            _ = try await log.append(request(target, event("a", id: id)))
            await #expect(throws: AppendError.duplicateEventIDInRequest(id)) {
                try await log.append(request(target, events: [event("a", id: id), event("a", id: id)]))
            }
            #expect(log.headPosition == 1)
        }
    }

    @Test("error descriptions name the id and position")
    func descriptions() {
        let id = EventID.random()
        #expect(AppendError.eventIDReused(id, position: 17).description.contains(id.description))
        #expect(AppendError.eventIDReused(id, position: 17).description.contains("17"))
        #expect(AppendError.partiallyAppended(id, position: 9).description.contains(id.description))
        #expect(AppendError.duplicateEventIDInRequest(id).description.contains(id.description))
        #expect(AppendError.closed.description.contains("closed"))
    }
}
