import LoglineCore
import LoglineModuleAPI
import LoglineModuleTesting
import OrdersModule
import PaymentModule
import RestaurantModule
import Testing

/// The whole order saga: create-order, payment, restaurant and the orders view, run together.
@Suite struct SagaTests {
    /// Checks that each event of `events` after the first was caused by the one before it, carries the first
    /// one's id as its correlation id, and has the id the host derives for the module that emitted it.
    func expectCausalChain(_ events: [RecordedEvent], emitters: [String]) throws {
        let parsed = try events.map { try ModuleEvent($0) }
        let root = try #require(parsed.first)
        #expect(emitters.count == parsed.count - 1)
        for (offset, event) in parsed.enumerated().dropFirst() {
            let cause = parsed[offset - 1]
            #expect(event.metadata["causation_id"] == .string(cause.eventID.description))
            #expect(event.metadata["correlation_id"] == .string(root.eventID.description))
            #expect(event.correlationID == root.eventID.description)
            #expect(
                event.eventID
                    == HostConventions.reactionEventID(module: emitters[offset - 1], index: 0, source: cause.eventID))
        }
    }

    @Test func happyPath() async throws {
        var saga = try SagaSimulator(modules: allOrderModules())
        let outcome = try await saga.submit("create-order", orderBody())
        #expect(outcome.result["amount"] == number("59.97"))
        let appended = try saga.run()
        #expect(appended.map(\.eventType) == ["order-payment-debited", "order-approved"])
        #expect(saga.failures.isEmpty)

        let events = saga.events(in: orderStream("o-1"))
        #expect(events.map(\.eventType) == ["order-created", "order-payment-debited", "order-approved"])
        #expect(events.map(\.version) == [1, 2, 3])
        try expectCausalChain(events, emitters: ["payment", "restaurant"])

        let order = try #require(saga.document("orders", key: "o-1"))
        #expect(order["status"] == "Approved")
        #expect(order["payment"] == "debited")
        #expect(order["amount"] == number("59.97"))
        #expect(order["version"] == 3)
        #expect(order["reason"] == nil)
        #expect(saga.document("wallets", key: "c-1")?["balance"] == number("940.03"))
        #expect(saga.document("payments", key: "o-1")?["status"] == "debited")
        #expect(try saga.query("orders", where: "status", equals: "Approved") == ["o-1"])

        // Every module has seen the whole log; running again does nothing.
        for module in ["orders", "payment", "restaurant"] { #expect(saga.checkpoint(of: module) == 3) }
        #expect(try saga.run().isEmpty)
        #expect(saga.log.headPosition == 3)
    }

    @Test func tooLittleCredit() async throws {
        var saga = try SagaSimulator(modules: allOrderModules(initialCredit: decimal("50.00")))
        try await saga.submit("create-order", orderBody())
        try saga.run()

        let events = saga.events(in: orderStream("o-1"))
        #expect(events.map(\.eventType) == ["order-created", "order-payment-failed"])
        try expectCausalChain(events, emitters: ["payment"])
        let order = try #require(saga.document("orders", key: "o-1"))
        #expect(order["status"] == "Rejected")
        #expect(order["payment"] == "failed")
        #expect(order["reason"] == "insufficient funds: balance 50.00, amount 59.97")
        #expect(saga.document("wallets", key: "c-1")?["balance"] == number("50.00"))
        #expect(saga.failures.isEmpty)
    }

    @Test func closedRestaurantIsCompensated() async throws {
        var saga = try SagaSimulator(modules: allOrderModules())
        saga.append("restaurant-closed", to: restaurantStream("r-1"), data: ["restaurant_id": "r-1"])
        try saga.run()
        try await saga.submit("create-order", orderBody())
        let appended = try saga.run()
        #expect(appended.map(\.eventType) == ["order-payment-debited", "order-rejected", "order-payment-refunded"])

        let events = saga.events(in: orderStream("o-1"))
        #expect(
            events.map(\.eventType) == [
                "order-created", "order-payment-debited", "order-rejected", "order-payment-refunded",
            ])
        try expectCausalChain(events, emitters: ["payment", "restaurant", "payment"])

        let order = try #require(saga.document("orders", key: "o-1"))
        #expect(order["status"] == "Rejected")
        #expect(order["payment"] == "refunded")
        #expect(order["reason"] == "restaurant r-1 is closed")
        #expect(order["version"] == 4)
        let wallet = try #require(saga.document("wallets", key: "c-1"))
        #expect(wallet["balance"] == number("1000.00"), "back where it was")
        #expect(wallet["movements"]?.arrayValue?.map { $0["kind"] } == ["debit", "refund"])
        #expect(saga.document("payments", key: "o-1")?["status"] == "refunded")
        #expect(saga.failures.isEmpty)
    }

    @Test func manyOrdersOneCustomer() async throws {
        var saga = try SagaSimulator(modules: allOrderModules())
        let item: JSONValue = ["code": "tv", "name": "Television", "unit_price": number("333.33"), "quantity": 1]
        for index in 1...4 {
            try await saga.submit("create-order", orderBody(orderID: "o-\(index)", items: [item]))
        }
        try saga.run()
        // 1000.00 pays for three at 333.33 (999.99); the fourth fails with 0.01 left.
        #expect(try saga.query("orders", where: "status", equals: "Approved") == ["o-1", "o-2", "o-3"])
        #expect(try saga.query("orders", where: "status", equals: "Rejected") == ["o-4"])
        #expect(saga.document("wallets", key: "c-1")?["balance"] == number("0.01"))

        // A credit, then the same order again under a new id, goes through.
        saga.append(
            "customer-credited", to: customerStream("c-1"), data: ["customer_id": "c-1", "amount": number("333.32")])
        try await saga.submit("create-order", orderBody(orderID: "o-5", items: [item]))
        try saga.run()
        #expect(saga.document("orders", key: "o-5")?["status"] == "Approved")
        #expect(saga.document("wallets", key: "c-1")?["balance"] == number("0.00"))
        #expect(try saga.query("orders", where: "customer_id", equals: "c-1").count == 5)
    }

    @Test func theOrdersViewRebuildsToTheSameDocuments() async throws {
        var saga = try SagaSimulator(modules: allOrderModules())
        saga.append("restaurant-closed", to: restaurantStream("r-2"), data: ["restaurant_id": "r-2"])
        try await saga.submit("create-order", orderBody(orderID: "o-1"))
        try await saga.submit("create-order", orderBody(orderID: "o-2", restaurant: "r-2"))
        try await saga.submit("create-order", orderBody(orderID: "o-3", customer: "c-2"))
        try saga.run()

        var rebuilt = ProjectorHarness(OrdersProjector())
        try rebuilt.apply(saga.log.events)
        #expect(rebuilt.documents("orders").mapValues(\.jsonBytes) == saga.documents("orders").mapValues(\.jsonBytes))
        #expect(saga.documents("orders").count == 3)
    }
}
