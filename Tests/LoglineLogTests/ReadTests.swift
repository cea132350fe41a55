import LoglineCore
import LoglineLog
import Testing

@Suite("LMDBEventLog: reads")
struct ReadTests {
    @Test("a read of large events stops past maximumReadBytes, and paging on returns every event once")
    func readsOfLargeEventsAreBoundedInBytes() async throws {
        try await withLog { log, _ in
            let target = stream("blob", "1")
            let eventBytes = 1 << 20  // 1 MiB each: 40 of them hold 40 MiB
            let body = #"{"fill":""# + String(repeating: "x", count: eventBytes - 11) + #""}"#
            for index in 1...40 {
                _ = try await log.append(request(target, event("blob-\(index)", data: body)))
            }
            let perRead = (LMDBEventLog.maximumReadBytes + eventBytes - 1) / eventBytes
            let firstStreamPage = try log.readStream(target, from: 1, limit: 10_000)
            #expect(firstStreamPage.count == perRead)
            #expect(firstStreamPage.count < 40)
            let firstLogPage = try log.readAll(from: 1, limit: 10_000, eventTypes: [])
            #expect(firstLogPage.map(\.position) == Array(1...UInt64(perRead)))
            // Paging with FROM = last + 1 returns all 40, in order, each once.
            var versions: [StreamVersion] = []
            while true {
                let page = try log.readStream(target, from: (versions.last ?? 0) + 1, limit: 10_000)
                if page.isEmpty { break }
                #expect(!page.isEmpty && page.count <= perRead)
                versions += page.map(\.version)
            }
            #expect(versions == Array(1...40))
            // The last page holds what is left.
            #expect(try log.readAll(from: 40, limit: 10, eventTypes: []).map(\.position) == [40])
        }
    }

    @Test("readStream honours from and limit")
    func readStreamWindow() async throws {
        try await withLog { log, _ in
            let target = stream("order", "1")
            for index in 1...10 {
                _ = try await log.append(request(target, event("e\(index)")))
                _ = try await log.append(request(stream("noise", "\(index % 3)"), event("noise")))
            }
            #expect(try log.readStream(target, from: 1, limit: 100).map(\.version) == Array(1...10))
            #expect(try log.readStream(target, from: 0, limit: 100).map(\.version) == Array(1...10))
            #expect(try log.readStream(target, from: 4, limit: 3).map(\.version) == [4, 5, 6])
            #expect(try log.readStream(target, from: 4, limit: 3).map(\.eventType) == ["e4", "e5", "e6"])
            #expect(try log.readStream(target, from: 9, limit: 5).map(\.version) == [9, 10])
            #expect(try log.readStream(target, from: 10, limit: 1).map(\.version) == [10])
            #expect(try log.readStream(target, from: 11, limit: 5).isEmpty)
            #expect(try log.readStream(target, from: .max, limit: 5).isEmpty)
            #expect(try log.readStream(target, from: 1, limit: 0).isEmpty)
            #expect(try log.readStream(target, from: 1, limit: -1).isEmpty)
            #expect(try log.readStream(target, from: 1, limit: 1).map(\.version) == [1])
            // Positions interleave with the noise stream.
            #expect(try log.readStream(target, from: 1, limit: 3).map(\.position) == [1, 3, 5])
        }
    }

    @Test("an unknown stream reads as empty, with version 0")
    func unknownStream() async throws {
        try await withLog { log, _ in
            _ = try await log.append(request(stream("order", "1"), event()))
            #expect(try log.readStream(stream("order", "2"), from: 1, limit: 10).isEmpty)
            #expect(try log.readStream(stream("nothing", "here"), from: 1, limit: 10).isEmpty)
            #expect(try log.streamVersion(stream("order", "2")) == 0)
        }
    }

    @Test("streams whose names are prefixes of one another stay apart")
    func prefixStreams() async throws {
        try await withLog { log, _ in
            let names = [
                stream("order", "1"), stream("order", "12"), stream("order", "1.2"), stream("order1", "2"),
                stream("orde", "r1"), stream("o", "rder1"), stream("order", "10"),
            ]
            for (index, name) in names.enumerated() {
                for version in 1...(index + 1) {
                    _ = try await log.append(
                        request(name, event("\(name.aggregateType)-\(name.aggregateID)-\(version)")))
                }
            }
            for (index, name) in names.enumerated() {
                let events = try log.everything(in: name)
                #expect(events.count == index + 1, "\(name)")
                #expect(events.allSatisfy { $0.stream == name }, "\(name)")
                #expect(events.map(\.version) == Array(1...StreamVersion(index + 1)), "\(name)")
                #expect(try log.streamVersion(name) == StreamVersion(index + 1))
            }
        }
    }

    @Test("readAll honours from, limit and the event type filter")
    func readAllWindowAndFilter() async throws {
        try await withLog { log, _ in
            let types = ["created", "paid", "shipped", "created", "cancelled", "paid", "created", "shipped"]
            for (index, type) in types.enumerated() {
                _ = try await log.append(request(stream("order", "\(index % 3)"), event(type, data: "[\(index)]")))
            }
            #expect(try log.readAll(from: 1, limit: 100, eventTypes: []).map(\.eventType) == types)
            #expect(try log.readAll(from: 0, limit: 100, eventTypes: []).map(\.position) == Array(1...8))
            #expect(try log.readAll(from: 3, limit: 2, eventTypes: []).map(\.position) == [3, 4])
            #expect(try log.readAll(from: 8, limit: 10, eventTypes: []).map(\.position) == [8])
            #expect(try log.readAll(from: 9, limit: 10, eventTypes: []).isEmpty)
            #expect(try log.readAll(from: .max, limit: 10, eventTypes: []).isEmpty)
            #expect(try log.readAll(from: 1, limit: 0, eventTypes: []).isEmpty)
            #expect(try log.readAll(from: 1, limit: -5, eventTypes: []).isEmpty)

            #expect(try log.readAll(from: 1, limit: 100, eventTypes: ["created"]).map(\.position) == [1, 4, 7])
            #expect(try log.readAll(from: 2, limit: 100, eventTypes: ["created"]).map(\.position) == [4, 7])
            #expect(
                try log.readAll(from: 1, limit: 100, eventTypes: ["paid", "shipped"]).map(\.position) == [2, 3, 6, 8])
            // The limit counts matching events, not the events skipped over.
            #expect(
                try log.readAll(from: 1, limit: 2, eventTypes: ["shipped", "cancelled"]).map(\.position) == [3, 5])
            #expect(try log.readAll(from: 1, limit: 100, eventTypes: ["unknown"]).isEmpty)
            // Types are matched exactly, not by prefix.
            #expect(try log.readAll(from: 1, limit: 100, eventTypes: ["creat", "createdd", "Created"]).isEmpty)
            let filtered = try log.readAll(from: 1, limit: 100, eventTypes: ["cancelled"])
            #expect(filtered.count == 1)
            #expect(filtered.first?.data == Array("[4]".utf8))
            #expect(filtered.first?.stream == stream("order", "1"))
            #expect(filtered.first?.version == 2)
        }
    }

    @Test("paging through readAll visits every event once, in order")
    func paging() async throws {
        try await withLog { log, _ in
            for index in 0..<37 {
                _ = try await log.append(request(stream("s", "\(index % 5)"), event("t\(index % 2)")))
            }
            var seen: [LogPosition] = []
            var next: LogPosition = 1
            while true {
                let page = try log.readAll(from: next, limit: 5, eventTypes: [])
                if page.isEmpty { break }
                #expect(page.count <= 5)
                seen += page.map(\.position)
                next = page.last!.position + 1
            }
            #expect(seen == Array(1...37))

            var odd: [LogPosition] = []
            next = 1
            while true {
                let page = try log.readAll(from: next, limit: 4, eventTypes: ["t1"])
                if page.isEmpty { break }
                odd += page.map(\.position)
                next = page.last!.position + 1
            }
            #expect(odd == stride(from: 2, through: 36, by: 2).map { LogPosition($0) })
        }
    }

    @Test("readStream and readAll return the same envelopes")
    func readsAgree() async throws {
        try await withLog { log, _ in
            for index in 0..<12 {
                _ = try await log.append(
                    request(
                        stream("s", "\(index % 3)"),
                        event("e", data: #"{"i":\#(index)}"#, metadata: #"{"m":\#(index)}"#)))
            }
            let all = try log.everything()
            for id in 0..<3 {
                let target = stream("s", "\(id)")
                #expect(try log.everything(in: target) == all.filter { $0.stream == target })
            }
        }
    }
}
