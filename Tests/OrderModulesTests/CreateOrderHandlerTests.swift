import LoglineCore
import LoglineModuleAPI
import LoglineModuleTesting
import OrdersModule
import Testing

@Suite struct CreateOrderHandlerTests {
    let handler = CreateOrderHandler()

    /// Runs the handler and returns the refusal, or `nil` when it accepted the command.
    func refusal(_ body: JSONValue, log: TestEventLog = TestEventLog()) async -> CommandError? {
        let context = InMemoryCommandContext(log: log)
        do {
            _ = try await handler.handle(body, context: context)
            return nil
        } catch let error as CommandError {
            #expect(context.log.events.count == log.events.count, "a refused command appends nothing")
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test func names() {
        #expect(handler.name == "create-order")
        #expect(handler.commandName == "create-order")
        #expect(handler.handledEventTypes.isEmpty)
    }

    @Test func appendsOrderCreatedWithAnExactAmount() async throws {
        let context = InMemoryCommandContext()
        let before = Timestamp.now()
        let outcome = try await handler.handle(orderBody(), context: context)
        let after = Timestamp.now()

        #expect(outcome.result == ["order_id": "o-1", "status": "Pending", "amount": number("59.97")])
        #expect(outcome.appended.count == 1)
        #expect(outcome.appended.first?.version == 1)
        let events = context.log.events
        #expect(events.count == 1)
        let event = try #require(events.first)
        #expect(event.eventType == "order-created")
        #expect(event.stream == orderStream("o-1"))
        #expect(outcome.appended.first?.eventID == event.eventID)
        #expect(outcome.appended.first?.position == event.position)

        let data = try ModuleEvent(event).data
        #expect(data["order_id"] == "o-1")
        #expect(data["customer_id"] == "c-1")
        #expect(data["restaurant_id"] == "r-1")
        #expect(
            data["order_items"] == [
                ["code": "pizza", "name": "Margherita", "unit_price": number("19.99"), "quantity": 3]
            ])
        #expect(data["amount"] == number("59.97"))
        #expect(data["status"] == "Pending")
        let createdOn = try #require(data["created_on"]?.stringValue.flatMap { Timestamp(rfc3339: $0) })
        #expect(createdOn >= before && createdOn <= after)
        #expect(
            data.objectValue?.keys == [
                "order_id", "customer_id", "restaurant_id", "order_items", "amount", "status", "created_on",
            ])
    }

    @Test func assignsARandomOrderIDWhenNoneIsGiven() async throws {
        for body in [orderBody(orderID: nil), orderBody(orderID: nil).withMember("order_id", .null)] {
            let context = InMemoryCommandContext()
            let outcome = try await handler.handle(body, context: context)
            let orderID = try #require(outcome.result["order_id"]?.stringValue)
            #expect(EventID(orderID) != nil, "a UUID")
            #expect(context.log.events.first?.stream == orderStream(orderID))
        }
        let first = try await handler.handle(orderBody(orderID: nil), context: InMemoryCommandContext())
        let second = try await handler.handle(orderBody(orderID: nil), context: InMemoryCommandContext())
        #expect(first.result["order_id"] != second.result["order_id"])
    }

    static let sums: [([(String, Int64)], String)] = [
        // 3 × 19.99 = 59.97 exactly (in Double, 19.99 * 3 = 59.969999999999999).
        ([("19.99", 3)], "59.97"),
        // 0.1 × 3 + 0.2 = 0.50 (in Double, 0.1 * 3 + 0.2 = 0.5000000000000001).
        ([("0.1", 3), ("0.2", 1)], "0.50"),
        ([("19.99", 3), ("0.01", 1)], "59.98"),
        ([("12.75", 2)], "25.50"),
        ([("1.2345", 2)], "2.469"),
        ([("10", 1)], "10.00"),
        ([("0.0001", 10000)], "1.00"),
        ([("99999.99", 10000)], "999999900.00"),
    ]

    @Test(arguments: sums)
    func amountIsTheExactSumOfTheLines(lines: [(String, Int64)], expected: String) async throws {
        let items: [JSONValue] = lines.enumerated().map { index, line in
            [
                "code": .string("item-\(index)"), "name": "Item", "unit_price": number(line.0),
                "quantity": .number(JSONNumber(line.1)),
            ]
        }
        let outcome = try await handler.handle(orderBody(items: items), context: InMemoryCommandContext())
        #expect(outcome.result["amount"] == number(expected))
    }

    @Test func normalisesUnitPrices() async throws {
        let context = InMemoryCommandContext()
        let items: [JSONValue] = [
            ["quantity": 2, "unit_price": "19.990", "name": "A", "code": "a"],
            ["code": "b", "name": "B", "unit_price": number("7"), "quantity": 1],
            ["code": "c", "name": "C", "unit_price": number("0.50000"), "quantity": 1],
        ]
        let outcome = try await handler.handle(orderBody(items: items), context: context)
        #expect(outcome.result["amount"] == number("47.48"))
        let data = try ModuleEvent(context.log.events[0]).data
        // Members keep the order they were given in; only unit_price is rewritten, as a number.
        #expect(
            data["order_items"] == [
                ["quantity": 2, "unit_price": number("19.99"), "name": "A", "code": "a"],
                ["code": "b", "name": "B", "unit_price": number("7.00"), "quantity": 1],
                ["code": "c", "name": "C", "unit_price": number("0.50"), "quantity": 1],
            ])
    }

    @Test func anExistingOrderIsAConflict() async throws {
        let context = InMemoryCommandContext()
        _ = try await handler.handle(orderBody(), context: context)
        await #expect(throws: CommandError.conflict("order o-1 already exists")) {
            try await handler.handle(orderBody(), context: context)
        }
        #expect(context.log.events.count == 1)
        // Another order id is fine.
        _ = try await handler.handle(orderBody(orderID: "o-2"), context: context)
        #expect(context.log.headPosition == 2)
    }

    @Test func aBodyThatIsNotAnObjectIsBadJSON() async {
        for body: JSONValue in [[], "order", 42, .null, true] {
            let error = await refusal(body)
            guard case .badJSON(let reason) = error else {
                Issue.record("expected badJSON for \(body), got \(String(describing: error))")
                continue
            }
            #expect(reason.contains("JSON object"))
        }
    }

    static let item: JSONObject = ["code": "pizza", "name": "Margherita", "unit_price": number("19.99"), "quantity": 3]

    static func withItem(_ change: (inout JSONObject) -> Void) -> JSONValue {
        var item = item
        change(&item)
        return orderBody(items: [.object(item)])
    }

    static let tooLongName = String(repeating: "x", count: 201)

    static let rejections: [(JSONValue, String)] = [
        (orderBody().withMember("note", "hi"), "unknown field 'note'"),
        (orderBody().withMember("customer_id", nil), "customer_id"),
        (orderBody().withMember("customer_id", 7), "customer_id must be a string, not a number"),
        (orderBody().withMember("customer_id", ""), "customer_id must not be empty"),
        (orderBody().withMember("customer_id", "c 1"), "invalid customer_id 'c 1'"),
        (orderBody().withMember("restaurant_id", nil), "restaurant_id is required"),
        (orderBody().withMember("restaurant_id", ["r-1"]), "restaurant_id must be a string, not an array"),
        (orderBody().withMember("order_id", 42), "order_id must be a string"),
        (orderBody().withMember("order_id", "o/1"), "invalid order_id"),
        (orderBody().withMember("order_items", nil), "order_items is required"),
        (orderBody().withMember("order_items", ["a": 1]), "order_items must be an array, not an object"),
        (orderBody(items: []), "order_items must have at least one item"),
        (orderBody(items: Array(repeating: .object(item), count: 101)), "at most 100"),
        (orderBody(items: ["pizza"]), "order_items[0] must be an object, not a string"),
        (withItem { $0["extra"] = true }, "unknown field 'extra' in order_items[0]"),
        (withItem { $0["code"] = nil }, "order_items[0].code is required"),
        (withItem { $0["code"] = "piz za" }, "invalid order_items[0].code"),
        (withItem { $0["name"] = nil }, "order_items[0].name is required"),
        (withItem { $0["name"] = "" }, "order_items[0].name must not be empty"),
        (withItem { $0["name"] = 5 }, "order_items[0].name must be a string, not a number"),
        (withItem { $0["name"] = .string(tooLongName) }, "order_items[0].name is longer than 200 bytes"),
        (withItem { $0["unit_price"] = nil }, "order_items[0].unit_price is required"),
        (withItem { $0["unit_price"] = 0 }, "order_items[0].unit_price must be positive"),
        (withItem { $0["unit_price"] = number("-1.50") }, "order_items[0].unit_price must be positive"),
        (withItem { $0["unit_price"] = "abc" }, "order_items[0].unit_price must be a plain decimal"),
        (withItem { $0["unit_price"] = number("1e2") }, "order_items[0].unit_price must be a plain decimal"),
        (withItem { $0["unit_price"] = number("1.23456") }, "more than 4 fraction digits"),
        (withItem { $0["unit_price"] = true }, "unit_price must be a number or a decimal string, not a boolean"),
        (withItem { $0["quantity"] = nil }, "order_items[0].quantity is required"),
        (withItem { $0["quantity"] = 0 }, "quantity must be an integer from 1 to 10000, not 0"),
        (withItem { $0["quantity"] = 10001 }, "not 10001"),
        (withItem { $0["quantity"] = number("1.5") }, "not 1.5"),
        (withItem { $0["quantity"] = "2" }, "quantity must be a number, not a string"),
        (
            withItem {
                $0["unit_price"] = number("9000000000000000"); $0["quantity"] = 10000
            }, "too large"
        ),
        // Fits an Int64, but "9000000000000000000.00" would not read back (over 18 significant digits).
        (
            withItem {
                $0["unit_price"] = number("900000000000000"); $0["quantity"] = 10000
            }, "amount is too large"
        ),
        (
            orderBody(
                items: Array(
                    repeating: [
                        "code": "gold", "name": "Gold", "unit_price": number("900000000000000"), "quantity": 10000,
                    ],
                    count: 3)),
            "the order's amount is too large"
        ),
    ]

    @Test(arguments: rejections)
    func invalidBodiesAreRejectedWithAReason(body: JSONValue, reason: String) async {
        let error = await refusal(body)
        guard case .rejected(let message) = error else {
            Issue.record("expected a rejection containing '\(reason)', got \(String(describing: error))")
            return
        }
        #expect(message.contains(reason), "\(message)")
    }

    @Test func unitPriceMayBeADecimalString() async throws {
        let outcome = try await handler.handle(
            orderBody(items: [["code": "a", "name": "A", "unit_price": "0.10", "quantity": 3]]),
            context: InMemoryCommandContext())
        #expect(outcome.result["amount"] == number("0.30"))
    }
}

extension JSONValue {
    /// This object with `key` set to `value` (or removed when `value` is `nil`).
    func withMember(_ key: String, _ value: JSONValue?) -> JSONValue {
        guard case .object(var object) = self else { return self }
        object[key] = value
        return .object(object)
    }
}
