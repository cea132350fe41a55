import LoglineCore
import LoglineModuleAPI
import LoglineModuleTesting
import OrdersModule
import Testing

@Suite struct OrdersProjectorTests {
    /// A log with one order created.
    func createdLog() -> (TestEventLog, RecordedEvent) {
        var log = TestEventLog()
        let created = log.append("order-created", to: orderStream("o-1"), data: orderCreatedData("o-1"))
        return (log, created)
    }

    @Test func declaration() {
        let projector = OrdersProjector()
        #expect(projector.name == "orders")
        #expect(
            projector.views == [ViewDefinition(name: "orders", indexes: ["customer_id", "restaurant_id", "status"])])
        #expect(
            projector.handledEventTypes == [
                "order-created", "order-payment-debited", "order-payment-failed", "order-approved", "order-rejected",
                "order-payment-refunded",
            ])
        #expect(projector.failurePolicy == .park(attempts: 3))
    }

    @Test func orderCreatedMakesAPendingOrder() throws {
        let (log, created) = createdLog()
        var harness = ProjectorHarness(OrdersProjector())
        try harness.apply(log.events)
        let expected: JSONValue = [
            "order_id": "o-1", "customer_id": "c-1", "restaurant_id": "r-1",
            "order_items": [["code": "pizza", "name": "Margherita", "unit_price": number("25.50"), "quantity": 1]],
            "amount": number("25.50"), "status": "Pending", "payment": "none",
            "created_on": "2025-01-01T00:00:00.000Z", "updated_at": .string(created.recordedAt.description),
            "version": 1,
        ]
        #expect(harness.document("orders", key: "o-1") == expected)
        #expect(harness.documents("orders").count == 1)
        #expect(try harness.query("orders", where: "status", equals: "Pending") == ["o-1"])
        #expect(try harness.query("orders", where: "customer_id", equals: "c-1") == ["o-1"])
        #expect(try harness.query("orders", where: "restaurant_id", equals: "r-2") == [])
    }

    @Test func happyPathPendingPaidApproved() throws {
        var (log, _) = createdLog()
        var harness = ProjectorHarness(OrdersProjector())
        try harness.catchUp(with: log)

        let debited = log.append(
            "order-payment-debited", to: orderStream("o-1"),
            data: ["order_id": "o-1", "customer_id": "c-1", "restaurant_id": "r-1", "amount": number("25.50")])
        try harness.catchUp(with: log)
        var order = try #require(harness.document("orders", key: "o-1"))
        #expect(order["status"] == "Paid")
        #expect(order["payment"] == "debited")
        #expect(order["version"] == 2)
        #expect(order["updated_at"] == .string(debited.recordedAt.description))
        #expect(order["reason"] == nil)

        let approved = log.append(
            "order-approved", to: orderStream("o-1"), data: ["order_id": "o-1", "restaurant_id": "r-1"])
        try harness.catchUp(with: log)
        order = try #require(harness.document("orders", key: "o-1"))
        #expect(order["status"] == "Approved")
        #expect(order["payment"] == "debited")
        #expect(order["version"] == 3)
        #expect(order["updated_at"] == .string(approved.recordedAt.description))
        #expect(order["amount"] == number("25.50"))
        #expect(try harness.query("orders", where: "status", equals: "Approved") == ["o-1"])
        #expect(try harness.query("orders", where: "status", equals: "Pending") == [])
    }

    @Test func paymentFailedRejectsTheOrder() throws {
        var (log, _) = createdLog()
        log.append(
            "order-payment-failed", to: orderStream("o-1"),
            data: [
                "order_id": "o-1", "customer_id": "c-1", "amount": number("25.50"),
                "reason": "insufficient funds: balance 10.00, amount 25.50",
            ])
        var harness = ProjectorHarness(OrdersProjector())
        try harness.apply(log.events)
        let order = try #require(harness.document("orders", key: "o-1"))
        #expect(order["status"] == "Rejected")
        #expect(order["payment"] == "failed")
        #expect(order["reason"] == "insufficient funds: balance 10.00, amount 25.50")
        #expect(order["version"] == 2)
    }

    @Test func restaurantRejectionThenRefund() throws {
        var (log, _) = createdLog()
        log.append(
            "order-payment-debited", to: orderStream("o-1"),
            data: ["order_id": "o-1", "customer_id": "c-1", "restaurant_id": "r-1", "amount": number("25.50")])
        log.append(
            "order-rejected", to: orderStream("o-1"),
            data: ["order_id": "o-1", "restaurant_id": "r-1", "reason": "restaurant r-1 is closed"])
        var harness = ProjectorHarness(OrdersProjector())
        try harness.apply(log.events)
        var order = try #require(harness.document("orders", key: "o-1"))
        #expect(order["status"] == "Rejected")
        #expect(order["payment"] == "debited")
        #expect(order["reason"] == "restaurant r-1 is closed")
        #expect(order["version"] == 3)

        log.append(
            "order-payment-refunded", to: orderStream("o-1"),
            data: ["order_id": "o-1", "customer_id": "c-1", "amount": number("25.50")])
        try harness.catchUp(with: log)
        order = try #require(harness.document("orders", key: "o-1"))
        #expect(order["status"] == "Rejected")
        #expect(order["payment"] == "refunded")
        #expect(order["reason"] == "restaurant r-1 is closed")
        #expect(order["version"] == 4)
        #expect(
            order.objectValue?.keys == [
                "order_id", "customer_id", "restaurant_id", "order_items", "amount", "status", "payment", "created_on",
                "updated_at", "version", "reason",
            ])
    }

    @Test func anEventForAnUnknownOrderThrowsAndIsParked() throws {
        var log = TestEventLog()
        let stray = log.append(
            "order-approved", to: orderStream("o-9"), data: ["order_id": "o-9", "restaurant_id": "r-1"])
        log.append("order-created", to: orderStream("o-1"), data: orderCreatedData("o-1"))

        var strict = ProjectorHarness(OrdersProjector())
        #expect(throws: OrdersProjectorError.unknownOrder("o-9", eventType: "order-approved", position: 1)) {
            try strict.apply(log.events)
        }
        #expect(strict.documents("orders").isEmpty)

        var host = ProjectorHarness(OrdersProjector())
        let failures = host.process(log.events)
        #expect(failures.count == 1)
        #expect(failures.first?.event == stray)
        #expect(failures.first?.disposition == .parked)
        #expect(host.document("orders", key: "o-1")?["status"] == "Pending", "the projector went on")
        #expect(host.checkpoint == 2)
    }

    @Test func aSecondOrderCreatedThrows() throws {
        var (log, _) = createdLog()
        log.append("order-created", to: orderStream("o-1"), data: orderCreatedData("o-1", amount: "99.00"))
        var harness = ProjectorHarness(OrdersProjector())
        #expect(throws: OrdersProjectorError.duplicateOrder("o-1", position: 2)) { try harness.apply(log.events) }
        #expect(harness.document("orders", key: "o-1")?["amount"] == number("25.50"))
    }

    @Test func malformedOrderCreatedThrows() {
        var log = TestEventLog()
        log.append("order-created", to: orderStream("o-1"), data: orderCreatedData("o-1").withMember("amount", "lots"))
        var harness = ProjectorHarness(OrdersProjector())
        #expect(throws: OrdersProjectorError.self) { try harness.apply(log.events) }
    }

    @Test func otherEventTypesAreSkipped() throws {
        var (log, _) = createdLog()
        log.append("customer-credited", to: customerStream("c-1"), data: ["customer_id": "c-1", "amount": 5])
        var harness = ProjectorHarness(OrdersProjector())
        try harness.apply(log.events)
        #expect(harness.checkpoint == 2)
        #expect(harness.document("orders", key: "o-1")?["version"] == 1)
    }

    @Test func aRebuildProducesIdenticalDocuments() throws {
        var log = TestEventLog()
        for index in 1...5 {
            let id = "o-\(index)"
            log.append("order-created", to: orderStream(id), data: orderCreatedData(id, customer: "c-\(index % 2)"))
        }
        log.append("order-payment-debited", to: orderStream("o-2"), data: ["order_id": "o-2", "restaurant_id": "r-1"])
        log.append("order-payment-failed", to: orderStream("o-3"), data: ["order_id": "o-3", "reason": "no"])
        log.append("order-approved", to: orderStream("o-2"), data: ["order_id": "o-2"])

        var live = ProjectorHarness(OrdersProjector())
        for event in log.events { try live.apply(event) }  // one at a time, as they arrive
        var rebuilt = ProjectorHarness(OrdersProjector())
        try rebuilt.apply(log.events)  // all at once, as a rebuild replays them
        #expect(live.documents("orders").mapValues(\.jsonBytes) == rebuilt.documents("orders").mapValues(\.jsonBytes))
        #expect(try rebuilt.query("orders", where: "customer_id", equals: "c-1") == ["o-1", "o-3", "o-5"])
        #expect(rebuilt.document("orders", key: "o-2")?["status"] == "Approved")
        #expect(rebuilt.document("orders", key: "o-3")?["status"] == "Rejected")
    }
}
