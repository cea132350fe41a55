import LoglineCore
import LoglineModuleAPI
import LoglineModuleTesting
import PaymentModule
import Testing

@Suite struct PaymentReactorTests {
    @Test func declaration() {
        let reactor = PaymentReactor()
        #expect(reactor.name == "payment")
        #expect(reactor.initialCredit == decimal("1000.00"))
        #expect(reactor.handledEventTypes == ["order-created", "customer-credited", "order-rejected"])
        #expect(reactor.views.map(\.name) == ["wallets", "payments"])
        #expect(PaymentModule.modules(initialCredit: 5).count == 1)
        #expect((PaymentModule.modules(initialCredit: 5).first as? PaymentReactor)?.initialCredit == 5)
    }

    @Test func debitsWhenTheBalanceCoversTheAmount() throws {
        var log = TestEventLog()
        let created = log.append(
            "order-created", to: orderStream("o-1"), data: orderCreatedData("o-1", amount: "25.50"))
        var harness = ReactorHarness(PaymentReactor())
        let emitted = try harness.react(to: created)
        #expect(
            emitted == [
                EmittedEvent(
                    eventType: "order-payment-debited", stream: orderStream("o-1"),
                    data: ["order_id": "o-1", "customer_id": "c-1", "restaurant_id": "r-1", "amount": number("25.50")])
            ])
        #expect(
            harness.document("wallets", key: "c-1") == [
                "customer_id": "c-1", "balance": number("974.50"),
                "movements": [["kind": "debit", "amount": number("25.50"), "order_id": "o-1", "position": 1]],
                "updated_at": .string(created.recordedAt.description),
            ])
        #expect(
            harness.document("payments", key: "o-1") == [
                "order_id": "o-1", "customer_id": "c-1", "amount": number("25.50"), "status": "debited",
            ])
        #expect(try harness.query("payments", where: "status", equals: "debited") == ["o-1"])
    }

    @Test func theWholeBalanceMayBeSpent() throws {
        var log = TestEventLog()
        log.append("order-created", to: orderStream("o-1"), data: orderCreatedData("o-1", amount: "1000.00"))
        var harness = ReactorHarness(PaymentReactor())
        let emitted = try harness.react(to: log.events)
        #expect(emitted.map(\.eventType) == ["order-payment-debited"])
        #expect(harness.document("wallets", key: "c-1")?["balance"] == number("0.00"))
    }

    @Test func failsWhenTheBalanceIsTooLow() throws {
        var log = TestEventLog()
        let created = log.append(
            "order-created", to: orderStream("o-1"), data: orderCreatedData("o-1", amount: "1000.01"))
        var harness = ReactorHarness(PaymentReactor())
        let emitted = try harness.react(to: created)
        #expect(
            emitted == [
                EmittedEvent(
                    eventType: "order-payment-failed", stream: orderStream("o-1"),
                    data: [
                        "order_id": "o-1", "customer_id": "c-1", "amount": number("1000.01"),
                        "reason": "insufficient funds: balance 1000.00, amount 1000.01",
                    ])
            ])
        #expect(harness.document("wallets", key: "c-1")?["balance"] == number("1000.00"))
        #expect(harness.document("wallets", key: "c-1")?["movements"] == [])
        #expect(harness.document("payments", key: "o-1")?["status"] == "failed")
    }

    @Test func tenDebitsOfTenCentsAreExactlyOneUnit() throws {
        var log = TestEventLog()
        for index in 1...10 {
            log.append(
                "order-created", to: orderStream("o-\(index)"), data: orderCreatedData("o-\(index)", amount: "0.10"))
        }
        var harness = ReactorHarness(PaymentReactor())
        let emitted = try harness.react(to: log.events)
        #expect(emitted.count == 10)
        #expect(harness.document("wallets", key: "c-1")?["balance"] == number("999.00"))
    }

    @Test func creditsAddToTheBalance() throws {
        var log = TestEventLog()
        log.append(
            "customer-credited", to: customerStream("c-1"), data: ["customer_id": "c-1", "amount": number("50.25")])
        log.append("customer-credited", to: customerStream("c-2"), data: ["amount": "0.75"])  // id from the stream
        var harness = ReactorHarness(PaymentReactor(initialCredit: decimal("10.00")))
        #expect(try harness.react(to: log.events).isEmpty)
        #expect(
            harness.document("wallets", key: "c-1") == [
                "customer_id": "c-1", "balance": number("60.25"),
                "movements": [["kind": "credit", "amount": number("50.25"), "position": 1]],
                "updated_at": .string(log.events[0].recordedAt.description),
            ])
        #expect(harness.document("wallets", key: "c-2")?["balance"] == number("10.75"))

        // The credit makes a refused order affordable.
        log.append(
            "order-created", to: orderStream("o-1"), data: orderCreatedData("o-1", customer: "c-2", amount: "10.75"))
        #expect(try harness.react(to: log.events[2]).map(\.eventType) == ["order-payment-debited"])
        #expect(harness.document("wallets", key: "c-2")?["balance"] == number("0.00"))
    }

    @Test func refundsADebitedOrderOnceOnly() throws {
        var log = TestEventLog()
        log.append("order-created", to: orderStream("o-1"), data: orderCreatedData("o-1", amount: "25.50"))
        let rejected = log.append(
            "order-rejected", to: orderStream("o-1"),
            data: ["order_id": "o-1", "restaurant_id": "r-1", "reason": "restaurant r-1 is closed"])
        var harness = ReactorHarness(PaymentReactor())
        try harness.react(to: log.events[0])
        #expect(harness.document("wallets", key: "c-1")?["balance"] == number("974.50"))

        let emitted = try harness.react(to: rejected)
        #expect(
            emitted == [
                EmittedEvent(
                    eventType: "order-payment-refunded", stream: orderStream("o-1"),
                    data: ["order_id": "o-1", "customer_id": "c-1", "amount": number("25.50")])
            ])
        #expect(harness.document("wallets", key: "c-1")?["balance"] == number("1000.00"))
        #expect(
            harness.document("wallets", key: "c-1")?["movements"] == [
                ["kind": "debit", "amount": number("25.50"), "order_id": "o-1", "position": 1],
                ["kind": "refund", "amount": number("25.50"), "order_id": "o-1", "position": 2],
            ])
        #expect(harness.document("payments", key: "o-1")?["status"] == "refunded")

        // A second rejection (a replayed or duplicated event) refunds nothing.
        let again = log.append("order-rejected", to: orderStream("o-1"), data: ["order_id": "o-1", "reason": "again"])
        #expect(try harness.react(to: again).isEmpty)
        #expect(harness.document("wallets", key: "c-1")?["balance"] == number("1000.00"))
    }

    @Test func aRejectedOrderThatWasNeverDebitedIsNotRefunded() throws {
        var log = TestEventLog()
        log.append("order-created", to: orderStream("o-1"), data: orderCreatedData("o-1", amount: "5000.00"))
        log.append("order-rejected", to: orderStream("o-1"), data: ["order_id": "o-1", "reason": "x"])
        log.append("order-rejected", to: orderStream("o-2"), data: ["order_id": "o-2", "reason": "unknown order"])
        var harness = ReactorHarness(PaymentReactor())
        let emitted = try harness.react(to: log.events)
        #expect(emitted.map(\.eventType) == ["order-payment-failed"])
        #expect(harness.document("wallets", key: "c-1")?["balance"] == number("1000.00"))
        #expect(harness.document("payments", key: "o-1")?["status"] == "failed")
        #expect(harness.document("payments", key: "o-2") == nil)
    }

    @Test func anOrderIsChargedOnlyOnce() throws {
        var log = TestEventLog()
        log.append("order-created", to: orderStream("o-1"), data: orderCreatedData("o-1", amount: "100.00"))
        log.append("order-created", to: orderStream("o-1"), data: orderCreatedData("o-1", amount: "100.00"))
        var harness = ReactorHarness(PaymentReactor())
        #expect(try harness.react(to: log.events).count == 1)
        #expect(harness.document("wallets", key: "c-1")?["balance"] == number("900.00"))
    }

    @Test func keepsTheLastTwentyMovements() throws {
        var log = TestEventLog()
        for _ in 1...25 {
            log.append("customer-credited", to: customerStream("c-1"), data: ["customer_id": "c-1", "amount": 1])
        }
        var harness = ReactorHarness(PaymentReactor())
        try harness.react(to: log.events)
        let wallet = try #require(harness.document("wallets", key: "c-1"))
        #expect(wallet["balance"] == number("1025.00"))
        let movements = try #require(wallet["movements"]?.arrayValue)
        #expect(movements.count == 20)
        #expect(movements.first?["position"] == 6)
        #expect(movements.last?["position"] == 25)
        #expect(movements.last?["amount"] == number("1.00"))
    }

    @Test(arguments: [
        ("order-created", orderCreatedData("o-1").withMember("amount", "a lot")),
        ("order-created", orderCreatedData("o-1").withMember("amount", number("-5.00"))),
        ("order-created", orderCreatedData("o-1").withMember("customer_id", nil)),
        ("order-created", orderCreatedData("o-1").withMember("restaurant_id", 3)),
        ("customer-credited", ["customer_id": "c-1", "amount": 0] as JSONValue),
        ("customer-credited", ["customer_id": "c-1"] as JSONValue),
    ])
    func malformedEventsThrow(type: String, data: JSONValue) {
        var log = TestEventLog()
        log.append(type, to: orderStream("o-1"), data: data)
        var harness = ReactorHarness(PaymentReactor())
        #expect(throws: PaymentError.self) { try harness.react(to: log.events) }
        #expect(harness.documents("wallets").isEmpty)
        #expect(harness.documents("payments").isEmpty)
    }

    @Test func aBalanceThatWouldOverflowThrows() throws {
        var log = TestEventLog()
        log.append("customer-credited", to: customerStream("c-1"), data: ["customer_id": "c-1", "amount": 1])
        // 999999999999999999 has 18 significant digits; 10^18 has 19 and would not read back from its JSON text.
        var harness = ReactorHarness(PaymentReactor(initialCredit: decimal("999999999999999999")))
        #expect(throws: PaymentError.overflow("crediting 1.00 to c-1", position: 1)) {
            try harness.react(to: log.events)
        }
    }
}
