import LoglineCore
import LoglineModuleAPI

/// Handles `SUBMIT create-order <json>`: validates an order, prices it exactly and appends `order-created` to the
/// new stream `order/<order_id>`.
///
/// The body:
///
/// ```json
/// {"customer_id":"c-1","restaurant_id":"r-1","order_id":"o-1",
///  "order_items":[{"code":"pizza","name":"Margherita","unit_price":12.75,"quantity":2}]}
/// ```
///
/// `order_id` is optional (a random UUID when absent or `null`). `unit_price` is a JSON number or a string holding a plain
/// decimal, positive, with at most 4 fraction digits once trailing zeros are dropped; `quantity` a positive
/// integer up to 10000; at most 100 items. The amount is `Σ unit_price × quantity`, computed with
/// ``LoglineModuleAPI/ExactDecimal`` (never floating point).
///
/// Errors: a body that is not a JSON object is ``LoglineModuleAPI/CommandError/badJSON(_:)`` (it is not the JSON
/// kind the command takes, as the protocol defines `-BADJSON`); every problem inside the object (an unknown or
/// missing field, a wrong type, an invalid value, an amount too large) is
/// ``LoglineModuleAPI/CommandError/rejected(_:)`` naming the field; an order id already used is
/// ``LoglineModuleAPI/CommandError/conflict(_:)``.
public struct CreateOrderHandler: CommandHandler {
    /// The most items an order may have.
    public static let maximumItems = 100
    /// The largest quantity of one item.
    public static let maximumQuantity: Int64 = 10_000
    /// The most fraction digits of a unit price (after trailing zeros are dropped).
    public static let maximumPriceScale = 4
    /// The longest item name, in UTF-8 bytes.
    public static let maximumItemNameBytes = 200

    private static let bodyFields: Set<String> = ["customer_id", "restaurant_id", "order_items", "order_id"]
    private static let itemFields: Set<String> = ["code", "name", "unit_price", "quantity"]

    /// The module's name: `create-order`.
    public var name: String { "create-order" }
    /// The command it takes: `create-order`.
    public var commandName: String { "create-order" }

    /// Creates the handler.
    public init() {}

    /// Validates the order and appends `order-created` with expectation `NONE` (the order must not exist).
    /// - Parameters:
    ///   - body: The command's JSON body.
    ///   - context: Where the event is appended.
    /// - Returns: `{"order_id", "status": "Pending", "amount"}` and where the event landed.
    /// - Throws: ``LoglineModuleAPI/CommandError`` as the type's documentation says, or a storage error.
    public func handle(_ body: JSONValue, context: any CommandContext) async throws -> CommandOutcome {
        let order = try Self.validate(body)
        let orderID = order.orderID ?? EventID.random().description
        let stream = StreamName(uncheckedType: "order", id: orderID)  // both parts are valid names
        let data: JSONValue = [
            "order_id": .string(orderID),
            "customer_id": .string(order.customerID),
            "restaurant_id": .string(order.restaurantID),
            "order_items": .array(order.items),
            "amount": order.amount.jsonValue,
            "status": "Pending",
            "created_on": .string(Timestamp.now().description),
        ]
        let appended: [AppendedEvent]
        do {
            appended = try await context.append(
                [NewEvent(eventType: OrderEventType.created, data: data)], to: stream, expectedVersion: .noStream)
        } catch CommandError.conflict {
            throw CommandError.conflict("order \(orderID) already exists")
        }
        return CommandOutcome(
            result: ["order_id": .string(orderID), "status": "Pending", "amount": order.amount.jsonValue],
            appended: appended)
    }

    /// A validated order, before it has an id.
    struct ValidOrder: Hashable, Sendable {
        var orderID: String?
        var customerID: String
        var restaurantID: String
        /// The items as given, with `unit_price` rewritten as its normalised decimal number.
        var items: [JSONValue]
        var amount: ExactDecimal
    }

    /// Checks a `create-order` body and prices it.
    /// - Parameter body: The command's body.
    /// - Returns: The order.
    /// - Throws: ``LoglineModuleAPI/CommandError``.
    static func validate(_ body: JSONValue) throws(CommandError) -> ValidOrder {
        guard case .object(let object) = body else {
            throw .badJSON("create-order takes a JSON object, not \(kind(of: body))")
        }
        for key in object.keys where !bodyFields.contains(key) {
            throw .rejected(
                "unknown field '\(key)': create-order takes customer_id, restaurant_id, order_items, order_id")
        }
        let customerID = try name(object["customer_id"], field: "customer_id")
        let restaurantID = try name(object["restaurant_id"], field: "restaurant_id")
        var orderID: String?
        if let value = object["order_id"], !value.isNull { orderID = try name(value, field: "order_id") }
        guard let itemsValue = object["order_items"] else { throw .rejected("order_items is required") }
        guard case .array(let itemValues) = itemsValue else {
            throw .rejected("order_items must be an array, not \(kind(of: itemsValue))")
        }
        guard !itemValues.isEmpty else { throw .rejected("order_items must have at least one item") }
        guard itemValues.count <= maximumItems else {
            throw .rejected("order_items has \(itemValues.count) items; at most \(maximumItems) are allowed")
        }
        var items: [JSONValue] = []
        var amount = ExactDecimal.zero
        for (index, itemValue) in itemValues.enumerated() {
            let (item, lineAmount) = try validateItem(itemValue, field: "order_items[\(index)]")
            guard let total = amount.adding(lineAmount) else {
                throw .rejected("the order's amount is too large")
            }
            amount = total
            items.append(item)
        }
        amount = amount.normalized
        // What is written must read back: ExactDecimal reads at most 18 significant digits.
        guard ExactDecimal(amount.description) != nil else { throw .rejected("the order's amount is too large") }
        return ValidOrder(
            orderID: orderID, customerID: customerID, restaurantID: restaurantID, items: items, amount: amount)
    }

    /// Checks one item; returns it with its price normalised, and `unit_price × quantity`.
    private static func validateItem(_ value: JSONValue, field: String) throws(CommandError) -> (
        JSONValue, ExactDecimal
    ) {
        guard case .object(var item) = value else {
            throw .rejected("\(field) must be an object, not \(kind(of: value))")
        }
        for key in item.keys where !itemFields.contains(key) {
            throw .rejected("unknown field '\(key)' in \(field): an item has code, name, unit_price, quantity")
        }
        _ = try name(item["code"], field: "\(field).code")
        guard let nameValue = item["name"] else { throw .rejected("\(field).name is required") }
        guard case .string(let itemName) = nameValue else {
            throw .rejected("\(field).name must be a string, not \(kind(of: nameValue))")
        }
        guard !itemName.isEmpty else { throw .rejected("\(field).name must not be empty") }
        guard itemName.utf8.count <= maximumItemNameBytes else {
            throw .rejected("\(field).name is longer than \(maximumItemNameBytes) bytes")
        }
        guard let priceValue = item["unit_price"] else { throw .rejected("\(field).unit_price is required") }
        switch priceValue {
        case .number, .string: break
        default:
            throw .rejected("\(field).unit_price must be a number or a decimal string, not \(kind(of: priceValue))")
        }
        guard let parsedPrice = ExactDecimal(priceValue) else {
            throw .rejected(
                "\(field).unit_price must be a plain decimal such as 12.50 (no exponent), not \(priceValue.jsonText)")
        }
        let price = parsedPrice.normalized
        guard price.isPositive else { throw .rejected("\(field).unit_price must be positive, not \(parsedPrice)") }
        guard price.scale <= maximumPriceScale else {
            throw .rejected("\(field).unit_price has more than \(maximumPriceScale) fraction digits")
        }
        guard ExactDecimal(price.description) != nil else { throw .rejected("\(field).unit_price is too large") }
        guard let quantityValue = item["quantity"] else { throw .rejected("\(field).quantity is required") }
        guard case .number = quantityValue else {
            throw .rejected("\(field).quantity must be a number, not \(kind(of: quantityValue))")
        }
        guard let quantity = quantityValue.int64Value, quantity >= 1, quantity <= maximumQuantity else {
            throw .rejected(
                "\(field).quantity must be an integer from 1 to \(maximumQuantity), not \(quantityValue.jsonText)")
        }
        guard let lineAmount = price.multiplied(by: ExactDecimal(quantity)) else {
            throw .rejected("\(field): unit_price × quantity is too large")
        }
        item["unit_price"] = price.jsonValue
        item["quantity"] = .number(JSONNumber(quantity))
        return (.object(item), lineAmount)
    }

    /// A required, non-empty string that is a valid name.
    private static func name(_ value: JSONValue?, field: String) throws(CommandError) -> String {
        guard let value else { throw .rejected("\(field) is required") }
        guard case .string(let text) = value else {
            throw .rejected("\(field) must be a string, not \(kind(of: value))")
        }
        guard !text.isEmpty else { throw .rejected("\(field) must not be empty") }
        guard Name.isValid(text) else {
            throw .rejected(NameError(field: field, value: text).description)
        }
        return text
    }

    /// The kind of a JSON value, for messages.
    private static func kind(of value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}
