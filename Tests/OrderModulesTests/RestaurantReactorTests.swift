import LoglineCore
import LoglineModuleAPI
import LoglineModuleTesting
import RestaurantModule
import Testing

@Suite struct RestaurantReactorTests {
    func debited(_ orderID: String, restaurant: String = "r-1", in log: inout TestEventLog) -> RecordedEvent {
        log.append(
            "order-payment-debited", to: orderStream(orderID),
            data: [
                "order_id": .string(orderID), "customer_id": "c-1", "restaurant_id": .string(restaurant),
                "amount": number("25.50"),
            ])
    }

    @Test func declaration() {
        let reactor = RestaurantReactor()
        #expect(reactor.name == "restaurant")
        #expect(reactor.handledEventTypes == ["order-payment-debited", "restaurant-closed", "restaurant-opened"])
        #expect(reactor.views == [ViewDefinition(name: "restaurants", indexes: ["open"])])
        #expect(RestaurantModule.modules().map(\.name) == ["restaurant"])
    }

    @Test func approvesOrdersOfRestaurantsNeverClosed() throws {
        var log = TestEventLog()
        let event = debited("o-1", in: &log)
        var harness = ReactorHarness(RestaurantReactor())
        #expect(
            try harness.react(to: event) == [
                EmittedEvent(
                    eventType: "order-approved", stream: orderStream("o-1"),
                    data: ["order_id": "o-1", "restaurant_id": "r-1"])
            ])
        #expect(harness.documents("restaurants").isEmpty)
    }

    @Test func rejectsOrdersOfClosedRestaurantsUntilTheyReopen() throws {
        var log = TestEventLog()
        var harness = ReactorHarness(RestaurantReactor())
        let closed = log.append("restaurant-closed", to: restaurantStream("r-1"), data: ["restaurant_id": "r-1"])
        #expect(try harness.react(to: closed).isEmpty)
        #expect(
            harness.document("restaurants", key: "r-1") == [
                "restaurant_id": "r-1", "open": false, "updated_at": .string(closed.recordedAt.description),
            ])
        #expect(try harness.query("restaurants", where: "open", equals: false) == ["r-1"])

        #expect(
            try harness.react(to: debited("o-1", in: &log)) == [
                EmittedEvent(
                    eventType: "order-rejected", stream: orderStream("o-1"),
                    data: ["order_id": "o-1", "restaurant_id": "r-1", "reason": "restaurant r-1 is closed"])
            ])
        // Another restaurant is unaffected.
        #expect(
            try harness.react(to: debited("o-2", restaurant: "r-2", in: &log)).map(\.eventType) == ["order-approved"])

        // The id may come from the stream alone.
        let opened = log.append("restaurant-opened", to: restaurantStream("r-1"), data: [:])
        try harness.react(to: opened)
        #expect(harness.document("restaurants", key: "r-1")?["open"] == true)
        #expect(try harness.react(to: debited("o-3", in: &log)).map(\.eventType) == ["order-approved"])
    }

    @Test func malformedEventsThrow() {
        var log = TestEventLog()
        log.append("order-payment-debited", to: orderStream("o-1"), data: ["order_id": "o-1"])
        log.append("restaurant-closed", to: customerStream("c-1"), data: [:])
        log.append("restaurant-closed", to: restaurantStream("r-1"), data: ["restaurant_id": 12])
        for event in log.events {
            var harness = ReactorHarness(RestaurantReactor())
            #expect(throws: RestaurantError.self) { try harness.react(to: event) }
        }
    }
}
