import LoglineCore
import LoglineLog
import LoglineModuleAPI
import LoglineProjectionHost
import Testing

@Suite("Views: GET, QUERY and VIEWS")
struct QueryTests {
    /// Ten items k000…k009: even ones red, odd ones blue, size n % 3.
    static func tenItems() -> [AppendRequest] {
        (0..<10).map { n in added(key(n), color: n % 2 == 0 ? "red" : "blue", size: n % 3) }
    }

    /// The keys of documents.
    static func keys(_ documents: [[UInt8]]) throws -> [String] {
        try documents.map { try JSONValue(parsing: $0)["key"]?.stringValue ?? "?" }
    }

    /// Runs `body` with a host over the ten items, once they are in the views.
    func withTenItems(_ body: (ProjectionHost, LMDBEventLog) async throws -> Void) async throws {
        try await withFreshLog { log, _ in
            let head = try await log.appendAll(Self.tenItems())
            let host = try ProjectionHost(
                log: log, modules: [CountingProjector()], configuration: hostConfiguration(), logger: testLogger)
            try await running(host) {
                try await host.waitForView("items", at: head)
                try await body(host, log)
            }
        }
    }

    @Test("GET returns a document by key, or nothing")
    func getDocument() async throws {
        try await withTenItems { host, _ in
            let bytes = try #require(try host.document(view: "items", key: "k003"))
            #expect(try JSONValue(parsing: bytes) == ["key": "k003", "color": "blue", "size": 0, "adds": 1])
            #expect(try host.document(view: "items", key: "k999") == nil)
            #expect(try host.json(view: "totals", key: "all") == ["events": 10])
        }
    }

    @Test("QUERY without WHERE, with WHERE on a declared index, LIMIT and AFTER")
    func queries() async throws {
        try await withTenItems { host, _ in
            let all = try host.query(view: "items", where: nil, limit: 100, after: nil)
            #expect(try Self.keys(all) == (0..<10).map { key($0) })

            let red = try host.query(view: "items", where: ("color", "red"), limit: 100, after: nil)
            #expect(try Self.keys(red) == ["k000", "k002", "k004", "k006", "k008"])
            #expect(try red.allSatisfy { try JSONValue(parsing: $0)["color"] == "red" })

            // A numeric field is indexed by its text.
            let sizeTwo = try host.query(view: "items", where: ("size", "2"), limit: 100, after: nil)
            #expect(try Self.keys(sizeTwo) == ["k002", "k005", "k008"])
            #expect(try host.query(view: "items", where: ("color", "purple"), limit: 100, after: nil).isEmpty)
            // The value must match whole, not as a prefix.
            #expect(try host.query(view: "items", where: ("color", "re"), limit: 100, after: nil).isEmpty)

            #expect(
                try Self.keys(host.query(view: "items", where: nil, limit: 3, after: nil)) == ["k000", "k001", "k002"])
            #expect(
                try Self.keys(host.query(view: "items", where: ("color", "blue"), limit: 2, after: nil)) == [
                    "k001", "k003",
                ])
            #expect(try host.query(view: "items", where: nil, limit: 0, after: nil).isEmpty)

            #expect(
                try Self.keys(host.query(view: "items", where: nil, limit: 100, after: "k004"))
                    == ["k005", "k006", "k007", "k008", "k009"])
            // AFTER a key that is not stored starts at the next one in key order.
            #expect(try Self.keys(host.query(view: "items", where: nil, limit: 2, after: "k0045")) == ["k005", "k006"])
            #expect(
                try Self.keys(host.query(view: "items", where: ("color", "red"), limit: 100, after: "k004")) == [
                    "k006", "k008",
                ])
            #expect(
                try Self.keys(host.query(view: "items", where: ("color", "red"), limit: 100, after: "k005")) == [
                    "k006", "k008",
                ])
            #expect(try host.query(view: "items", where: nil, limit: 100, after: "k009").isEmpty)

            // Paging with LIMIT and AFTER visits every document once, in key order.
            var paged: [String] = []
            var after: String?
            while true {
                let page = try Self.keys(host.query(view: "items", where: nil, limit: 3, after: after))
                paged += page
                guard page.count == 3 else { break }
                after = page.last
            }
            #expect(paged == (0..<10).map { key($0) })
            var pagedBlue: [String] = []
            after = nil
            while true {
                let page = try Self.keys(host.query(view: "items", where: ("color", "blue"), limit: 2, after: after))
                pagedBlue += page
                guard page.count == 2 else { break }
                after = page.last
            }
            #expect(pagedBlue == ["k001", "k003", "k005", "k007", "k009"])
        }
    }

    @Test("a WHERE on an undeclared field is a bad request; an unknown view is not found")
    func queryErrors() async throws {
        try await withTenItems { host, _ in
            #expect(
                await hostError { try host.query(view: "items", where: ("adds", "1"), limit: 10, after: nil) }?.code
                    == .badRequest)
            #expect(
                await hostError { try host.query(view: "items", where: ("key", "k001"), limit: 10, after: nil) }?.code
                    == .badRequest)
            #expect(
                await hostError { try host.query(view: "totals", where: ("events", "10"), limit: 10, after: nil) }?.code
                    == .badRequest)
            #expect(
                await hostError { try host.query(view: "nope", where: nil, limit: 10, after: nil) }?.code == .notFound)
            #expect(await hostError { try host.document(view: "nope", key: "k001") }?.code == .notFound)
            #expect(await hostError { try await host.waitForView("nope", at: 1) }?.code == .notFound)
        }
    }

    @Test("VIEWS lists each view with its module, indexes and document count")
    func viewStatuses() async throws {
        try await withTenItems { host, _ in
            let statuses = host.viewStatuses()
            #expect(statuses.map(\.name) == ["items", "totals"])
            #expect(statuses.map(\.module) == ["counter", "counter"])
            #expect(statuses.first?.indexes == ["color", "size"])
            #expect(statuses.last?.indexes == [])
            #expect(statuses.map(\.documentCount) == [10, 1])
            #expect(
                statuses.first?.json == [
                    "name": "items", "module": "counter", "indexes": ["color", "size"], "documents": 10,
                ])
        }
    }

    @Test("document counts follow puts and deletes")
    func documentCounts() async throws {
        try await withTenItems { host, log in
            // Adding an existing item again replaces its document: no new document.
            var position = try await log.appendEach([added(key(3), color: "blue")]).last!
            try await host.waitForView("items", at: position)
            #expect(host.documentCount("items") == 10)
            #expect(try host.json(view: "items", key: key(3))?["adds"] == 2)

            position = try await log.appendEach([removed(key(1)), removed(key(2)), added(key(10))]).last!
            try await host.waitForView("items", at: position)
            #expect(host.documentCount("items") == 9)
            #expect(try host.document(view: "items", key: key(1)) == nil)
            #expect(try host.allDocuments("items").count == 9)

            // Removing what is not there changes nothing.
            position = try await log.appendEach([removed("never-added")]).last!
            try await host.waitForView("items", at: position)
            #expect(host.documentCount("items") == 9)

            // Added and removed within one batch: no document, no count, no index entry.
            position = try await log.appendAll([added("transient", color: "red"), removed("transient")])
            try await host.waitForView("items", at: position)
            #expect(host.documentCount("items") == 9)
            #expect(try host.document(view: "items", key: "transient") == nil)
            #expect(
                try !Self.keys(host.query(view: "items", where: ("color", "red"), limit: 100, after: nil)).contains(
                    "transient"))

            // Removing everything brings the count to zero.
            position = try await log.appendAll((0...10).map { removed(key($0)) })
            try await host.waitForView("items", at: position)
            #expect(host.documentCount("items") == 0)
            #expect(try host.allDocuments("items").isEmpty)
            #expect(try host.query(view: "items", where: ("color", "red"), limit: 100, after: nil).isEmpty)
            #expect(try host.query(view: "items", where: ("size", "1"), limit: 100, after: nil).isEmpty)
            #expect(host.documentCount("totals") == 1)
        }
    }

    @Test("index entries follow a changed indexed field")
    func indexFollowsChanges() async throws {
        try await withTenItems { host, log in
            var position = try await log.appendEach([recolored(key(0), to: "green"), recolored(key(1), to: "green")])
                .last!
            try await host.waitForView("items", at: position)
            #expect(
                try Self.keys(host.query(view: "items", where: ("color", "red"), limit: 100, after: nil)) == [
                    "k002", "k004", "k006", "k008",
                ])
            #expect(
                try Self.keys(host.query(view: "items", where: ("color", "blue"), limit: 100, after: nil)) == [
                    "k003", "k005", "k007", "k009",
                ])
            #expect(
                try Self.keys(host.query(view: "items", where: ("color", "green"), limit: 100, after: nil)) == [
                    "k000", "k001",
                ])
            // The other index is untouched.
            #expect(
                try Self.keys(host.query(view: "items", where: ("size", "0"), limit: 100, after: nil)) == [
                    "k000", "k003", "k006", "k009",
                ])

            // Changed twice in one batch: only the last value is indexed.
            position = try await log.appendAll([recolored(key(2), to: "yellow"), recolored(key(2), to: "black")])
            try await host.waitForView("items", at: position)
            #expect(
                try !Self.keys(host.query(view: "items", where: ("color", "red"), limit: 100, after: nil)).contains(
                    "k002"))
            #expect(try host.query(view: "items", where: ("color", "yellow"), limit: 100, after: nil).isEmpty)
            #expect(
                try Self.keys(host.query(view: "items", where: ("color", "black"), limit: 100, after: nil)) == ["k002"])

            // A removed document leaves its index.
            position = try await log.appendEach([removed(key(0))]).last!
            try await host.waitForView("items", at: position)
            #expect(
                try Self.keys(host.query(view: "items", where: ("color", "green"), limit: 100, after: nil)) == ["k001"])
            #expect(
                try !Self.keys(host.query(view: "items", where: ("size", "0"), limit: 100, after: nil)).contains("k000")
            )

            // And changed back: indexed under the old value again.
            position = try await log.appendEach([recolored(key(1), to: "blue")]).last!
            try await host.waitForView("items", at: position)
            #expect(
                try Self.keys(host.query(view: "items", where: ("color", "blue"), limit: 100, after: nil)) == [
                    "k001", "k003", "k005", "k007", "k009",
                ])
            #expect(try host.query(view: "items", where: ("color", "green"), limit: 100, after: nil).isEmpty)
        }
    }
}
