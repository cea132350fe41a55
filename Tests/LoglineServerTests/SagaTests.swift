import Foundation
import LoglineClient
import LoglineCore
import LoglineModuleAPI
import OrdersModule
import PaymentModule
import RestaurantModule
import Testing

/// The order flow of the article, and its saga, through the real server with the real modules.
@Suite("Order saga over TCP")
struct SagaTests {
    static func modules(initialCredit: String = "1000.00") -> [any LoglineModule] {
        OrdersModule.modules() + PaymentModule.modules(initialCredit: ExactDecimal(initialCredit)!)
            + RestaurantModule.modules()
    }

    static func createOrder(_ id: String, customer: String, restaurant: String, price: String, quantity: Int) -> String
    {
        """
        {"order_id":"\(id)","customer_id":"\(customer)","restaurant_id":"\(restaurant)","order_items":[\
        {"code":"item-1","name":"Item one","unit_price":\(price),"quantity":\(quantity)}]}
        """
    }

    static func json(_ reply: RESPValue) throws -> [String: Any] {
        guard let text = reply.text,
            let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        else { throw TestFailure("not a JSON object: \(reply)") }
        return object
    }

    /// Waits, with `AT`, until every view has processed the head of the log, and the head no longer moves.
    static func settle(_ client: LoglineClient, views: [String] = ["orders", "wallets", "restaurants"]) async throws {
        for _ in 0..<50 {
            let head = try await client.info().lastPosition
            for view in views { _ = try await client.send(["QUERY", view, "LIMIT", "1", "AT", String(head)]) }
            if try await client.info().lastPosition == head { return }
        }
        throw TestFailure("the modules did not settle")
    }

    @Test func happyPathApprovesTheOrderWithTheExactAmount() async throws {
        let server = try await RunningServer.start(modules: Self.modules())
        let client = try await server.client()
        let submitted = try Self.json(
            try await client.send([
                "SUBMIT", "create-order",
                Self.createOrder("o1", customer: "c1", restaurant: "r1", price: "19.99", quantity: 3),
            ]))
        #expect(submitted["order_id"] as? String == "o1")
        #expect(submitted["position"] as? Int == 1)
        try await Self.settle(client)
        let order = try Self.json(try await client.send(["GET", "orders", "o1", "AT", "1"]))
        #expect(order["status"] as? String == "Approved")
        #expect(order["payment"] as? String == "debited")
        let amount = try #require(try await client.send(["GET", "orders", "o1"]).text)
        #expect(amount.contains("\"amount\":59.97"))
        let events = try await client.read(StreamName(aggregateType: "order", aggregateID: "o1"))
        #expect(events.map(\.eventType) == ["order-created", "order-payment-debited", "order-approved"])
        for (cause, effect) in zip(events, events.dropFirst()) {
            let metadata = try #require(
                try JSONSerialization.jsonObject(with: Data(effect.metadata)) as? [String: Any])
            #expect(metadata["causation_id"] as? String == cause.eventID.description)
            #expect(metadata["correlation_id"] as? String == events[0].eventID.description)
        }
        // Money is compared as the JSON text the server wrote: a Double would hide a wrong decimal.
        let wallet = try #require(try await client.send(["GET", "wallets", "c1"]).text)
        #expect(wallet.contains(#""balance":940.03,"#))
        await client.close()
        await server.stop()
    }

    @Test func tooLittleCreditRejectsTheOrder() async throws {
        let server = try await RunningServer.start(modules: Self.modules(initialCredit: "10.00"))
        let client = try await server.client()
        _ = try await client.send([
            "SUBMIT", "create-order",
            Self.createOrder("o2", customer: "c2", restaurant: "r1", price: "12.50", quantity: 1),
        ])
        try await Self.settle(client)
        let events = try await client.read(StreamName(aggregateType: "order", aggregateID: "o2"))
        #expect(events.map(\.eventType) == ["order-created", "order-payment-failed"])
        let order = try Self.json(try await client.send(["GET", "orders", "o2"]))
        #expect(order["status"] as? String == "Rejected")
        #expect(order["payment"] as? String == "failed")
        #expect((order["reason"] as? String)?.isEmpty == false)
        await client.close()
        await server.stop()
    }

    @Test func closedRestaurantRejectsAndRefunds() async throws {
        let server = try await RunningServer.start(modules: Self.modules())
        let client = try await server.client()
        _ = try await client.send(["APPEND", "restaurant", "r9", "restaurant-closed", #"{"restaurant_id":"r9"}"#])
        _ = try await client.send([
            "SUBMIT", "create-order",
            Self.createOrder("o3", customer: "c3", restaurant: "r9", price: "30.00", quantity: 2),
        ])
        try await Self.settle(client)
        let events = try await client.read(StreamName(aggregateType: "order", aggregateID: "o3"))
        #expect(
            events.map(\.eventType) == [
                "order-created", "order-payment-debited", "order-rejected", "order-payment-refunded",
            ])
        let order = try Self.json(try await client.send(["GET", "orders", "o3"]))
        #expect(order["status"] as? String == "Rejected")
        #expect(order["payment"] as? String == "refunded")
        let wallet = try #require(try await client.send(["GET", "wallets", "c3"]).text)
        #expect(wallet.contains(#""balance":1000.00,"#))
        await client.close()
        await server.stop()
    }

    @Test func duplicateOrderIDConflictsAndBadBodiesAreRefused() async throws {
        let server = try await RunningServer.start(modules: Self.modules())
        let client = try await server.client()
        let body = Self.createOrder("o4", customer: "c4", restaurant: "r1", price: "1.00", quantity: 1)
        _ = try await client.send(["SUBMIT", "create-order", body])
        await #expect { _ = try await client.send(["SUBMIT", "create-order", body]) } throws: {
            ($0 as? LoglineClientError)?.code == .conflict
        }
        await #expect { _ = try await client.send(["SUBMIT", "create-order", #"{"customer_id":"c1"}"#]) } throws: {
            ($0 as? LoglineClientError)?.code == .rejected
        }
        await #expect { _ = try await client.send(["SUBMIT", "create-order", "{nope"]) } throws: {
            ($0 as? LoglineClientError)?.code == .badJSON
        }
        await #expect { _ = try await client.send(["SUBMIT", "launch-rocket", "{}"]) } throws: {
            ($0 as? LoglineClientError)?.code == .notFound
        }
        #expect(try await client.read(StreamName(aggregateType: "order", aggregateID: "o4")).count >= 1)
        try await Self.settle(client)
        #expect(try await client.info().eventCount == 3)
        await client.close()
        await server.stop()
    }

    @Test func queriesUseIndexesAndProjectionsSettleAtLagZero() async throws {
        let server = try await RunningServer.start(modules: Self.modules(initialCredit: "50.00"))
        let client = try await server.client()
        _ = try await client.send(["APPEND", "restaurant", "r2", "restaurant-closed", "{}"])
        let orders = [
            ("q1", "c1", "r1", "10.00"), ("q2", "c1", "r2", "10.00"), ("q3", "c2", "r1", "10.00"),
            ("q4", "c1", "r1", "60.00"), ("q5", "c3", "r1", "5.00"),
        ]
        for (id, customer, restaurant, price) in orders {
            _ = try await client.send([
                "SUBMIT", "create-order",
                Self.createOrder(id, customer: customer, restaurant: restaurant, price: price, quantity: 1),
            ])
        }
        try await Self.settle(client)
        func ids(_ reply: RESPValue) throws -> [String] {
            guard case .array(let items?) = reply else { throw TestFailure("not an array") }
            return try items.map { try Self.json($0)["order_id"] as? String ?? "" }
        }
        #expect(
            try ids(try await client.send(["QUERY", "orders", "WHERE", "customer_id", "c1"])) == ["q1", "q2", "q4"])
        #expect(
            try ids(try await client.send(["QUERY", "orders", "WHERE", "status", "Approved"])) == ["q1", "q3", "q5"])
        #expect(try ids(try await client.send(["QUERY", "orders", "WHERE", "status", "Rejected"])) == ["q2", "q4"])
        #expect(try ids(try await client.send(["QUERY", "orders", "LIMIT", "2", "AFTER", "q2"])) == ["q3", "q4"])
        await #expect { _ = try await client.send(["QUERY", "orders", "WHERE", "amount", "10.00"]) } throws: {
            ($0 as? LoglineClientError)?.code == .badRequest
        }
        await #expect { _ = try await client.send(["GET", "nope", "x"]) } throws: {
            ($0 as? LoglineClientError)?.code == .notFound
        }
        guard case .array(let statuses?) = try await client.send(["PROJECTIONS"]) else { throw TestFailure("array") }
        let byName = Dictionary(
            uniqueKeysWithValues: try statuses.map { try Self.json($0) }.map { ($0["name"] as! String, $0) })
        for name in ["orders", "payment", "restaurant"] {
            #expect(byName[name]?["lag"] as? Int == 0)
            #expect(byName[name]?["state"] as? String == "running")
        }
        #expect(byName["create-order"]?["kind"] as? String == "command-handler")
        guard case .array(let views?) = try await client.send(["VIEWS"]) else { throw TestFailure("array") }
        let orderView = try views.map { try Self.json($0) }.first { $0["name"] as? String == "orders" }
        #expect(orderView?["documents"] as? Int == 5)
        await client.close()
        await server.stop()
    }

    @Test func rebuildProducesViewsIdenticalToTheIncrementalOnes() async throws {
        let server = try await RunningServer.start(modules: Self.modules())
        let client = try await server.client()
        _ = try await client.send(["APPEND", "restaurant", "r3", "restaurant-closed", "{}"])
        for index in 0..<30 {
            _ = try await client.send([
                "SUBMIT", "create-order",
                Self.createOrder(
                    "r\(index)", customer: "c\(index % 4)", restaurant: index % 5 == 0 ? "r3" : "r1",
                    price: "\(index + 1).25", quantity: index % 3 + 1),
            ])
        }
        try await Self.settle(client)
        func allOrders() async throws -> [String] {
            guard case .array(let items?) = try await client.send(["QUERY", "orders", "LIMIT", "1000"]) else {
                return []
            }
            return items.compactMap(\.text)
        }
        let before = try await allOrders()
        #expect(before.count == 30)
        let reply = try await client.send(["REBUILD", "orders"])
        #expect(reply.text?.hasPrefix("rebuilding") == true)
        // New events during the rebuild reach the views too.
        _ = try await client.send([
            "SUBMIT", "create-order",
            Self.createOrder("late", customer: "c1", restaurant: "r1", price: "2.00", quantity: 1),
        ])
        var rebuilt = false
        for _ in 0..<500 where !rebuilt {
            // The rebuild reports its end only through PROJECTIONS: poll it, bounded.
            guard case .array(let statuses?) = try await client.send(["PROJECTIONS"]) else { break }
            let orders = try statuses.map { try Self.json($0) }.first { $0["name"] as? String == "orders" }
            rebuilt = orders?["state"] as? String == "running" && orders?["rebuild_position"] == nil
            if !rebuilt { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(rebuilt)
        try await Self.settle(client)
        let after = try await allOrders()
        #expect(after.count == 31)
        #expect(Array(after.filter { !$0.contains("\"order_id\":\"late\"") }) == before)
        await #expect { _ = try await client.send(["REBUILD", "payment"]) } throws: {
            ($0 as? LoglineClientError)?.code == .badRequest
        }
        await client.close()
        await server.stop()
    }

    @Test func everyOrderReachesItsFinalStateAcrossARestart() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var server = try await RunningServer.start(
            directory: directory.path, modules: Self.modules(initialCredit: "100.00"))
        var client = try await server.client()
        _ = try await client.send(["APPEND", "restaurant", "r3", "restaurant-closed", "{}"])
        for index in 0..<40 {
            _ = try await client.send([
                "SUBMIT", "create-order",
                Self.createOrder(
                    "x\(index)", customer: "c\(index % 6)", restaurant: index % 7 == 0 ? "r3" : "r1", price: "17.50",
                    quantity: 1),
            ])
        }
        await client.close()
        await server.stop()
        server = try await RunningServer.start(
            directory: directory.path, modules: Self.modules(initialCredit: "100.00"))
        client = try await server.client()
        try await Self.settle(client)
        for index in 0..<40 {
            let events = try await client.read(StreamName(aggregateType: "order", aggregateID: "x\(index)")).map(
                \.eventType)
            #expect(Set(events).count == events.count, "no event twice for x\(index): \(events)")
            let order = try Self.json(try await client.send(["GET", "orders", "x\(index)"]))
            let status = order["status"] as? String
            #expect(status == "Approved" || status == "Rejected")
            if index % 7 == 0 {
                #expect(events.last == "order-payment-refunded" || events.last == "order-payment-failed")
            }
        }
        await client.close()
        await server.stop()
    }
}
