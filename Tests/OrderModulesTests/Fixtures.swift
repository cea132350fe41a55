import LoglineCore
import LoglineModuleAPI
import LoglineModuleTesting
import OrdersModule
import PaymentModule
import RestaurantModule

/// A JSON number with exactly this text (money is written as text, never as a `Double`).
func number(_ text: String) -> JSONValue {
    .number(JSONNumber(text)!)
}

/// An exact decimal from its text.
func decimal(_ text: String) -> ExactDecimal {
    ExactDecimal(text)!
}

func orderStream(_ id: String) -> StreamName {
    try! StreamName(aggregateType: "order", aggregateID: id)
}

func customerStream(_ id: String) -> StreamName {
    try! StreamName(aggregateType: "customer", aggregateID: id)
}

func restaurantStream(_ id: String) -> StreamName {
    try! StreamName(aggregateType: "restaurant", aggregateID: id)
}

/// A valid `create-order` body.
func orderBody(
    orderID: String? = "o-1", customer: String = "c-1", restaurant: String = "r-1",
    items: [JSONValue] = [["code": "pizza", "name": "Margherita", "unit_price": number("19.99"), "quantity": 3]]
) -> JSONValue {
    var body: JSONObject = [
        "customer_id": .string(customer), "restaurant_id": .string(restaurant), "order_items": .array(items),
    ]
    if let orderID { body["order_id"] = .string(orderID) }
    return .object(body)
}

/// The data of an `order-created` event as the handler writes it.
func orderCreatedData(
    _ orderID: String, customer: String = "c-1", restaurant: String = "r-1", amount: String = "25.50"
) -> JSONValue {
    [
        "order_id": .string(orderID), "customer_id": .string(customer), "restaurant_id": .string(restaurant),
        "order_items": [["code": "pizza", "name": "Margherita", "unit_price": number(amount), "quantity": 1]],
        "amount": number(amount), "status": "Pending", "created_on": "2025-01-01T00:00:00.000Z",
    ]
}

/// All the order modules, as the `logline` registry groups them.
func allOrderModules(initialCredit: ExactDecimal = PaymentReactor.defaultInitialCredit) -> [any LoglineModule] {
    OrdersModule.modules() + PaymentModule.modules(initialCredit: initialCredit) + RestaurantModule.modules()
}
