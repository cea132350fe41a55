import LoglineCore
import LoglineModuleAPI

/// Keeps the `orders` view: one document per order, key `order_id`, indexed by `customer_id`, `restaurant_id`
/// and `status`.
///
/// ```json
/// {"order_id":"o-1","customer_id":"c-1","restaurant_id":"r-1","order_items":[…],"amount":25.50,
///  "status":"Approved","payment":"debited","created_on":"…","updated_at":"…","version":3}
/// ```
///
/// | event | `status` | `payment` |
/// |---|---|---|
/// | `order-created` | `Pending` | `none` |
/// | `order-payment-debited` | `Paid` | `debited` |
/// | `order-payment-failed` | `Rejected` (with `reason`) | `failed` |
/// | `order-approved` | `Approved` | unchanged |
/// | `order-rejected` | `Rejected` (with `reason`) | unchanged |
/// | `order-payment-refunded` | unchanged | `refunded` |
///
/// `updated_at` is the event's `recorded_at` and `version` its version in its stream, so the documents depend on
/// the log alone: a rebuild reaches the same bytes. The projector records what the log says happened; it does
/// not police the saga's order of events (the reactors decide), so each event sets its fields whatever the
/// current status.
///
/// An event about an order whose `order-created` it has not seen, a second `order-created` for one order, or an
/// event without the fields it needs throws ``OrdersProjectorError``: the host retries, then parks the event
/// (the default policy), where an operator can see it and `RETRY` or `SKIP` it. Guessing a document for an
/// unknown order would hide the problem and put made-up data in the view.
public struct OrdersProjector: Projector {
    /// The view's name, `orders`.
    public static let viewName = "orders"

    /// The module's name: `orders`.
    public var name: String { "orders" }

    /// The saga's order events.
    public var handledEventTypes: Set<String> {
        [
            OrderEventType.created, OrderEventType.paymentDebited, OrderEventType.paymentFailed,
            OrderEventType.approved, OrderEventType.rejected, OrderEventType.paymentRefunded,
        ]
    }

    /// The `orders` view, indexed by `customer_id`, `restaurant_id` and `status`.
    public var views: [ViewDefinition] {
        [ViewDefinition(name: Self.viewName, indexes: ["customer_id", "restaurant_id", "status"])]
    }

    /// Creates the projector.
    public init() {}

    /// Folds one order event into its order's document.
    /// - Parameters:
    ///   - event: The event.
    ///   - views: The `orders` view.
    /// - Throws: ``OrdersProjectorError`` for an unknown order or a malformed event, or a ``LoglineModuleAPI/ViewError``.
    public func apply(_ event: ModuleEvent, to views: inout ViewChanges) throws {
        let orderID = try Self.orderID(of: event)
        if event.eventType == OrderEventType.created {
            guard try views.document(Self.viewName, key: orderID) == nil else {
                throw OrdersProjectorError.duplicateOrder(orderID, position: event.position)
            }
            try views.put(Self.viewName, key: orderID, document: .object(try Self.newDocument(orderID, event)))
            return
        }
        guard case .object(var document) = try views.document(Self.viewName, key: orderID) else {
            throw OrdersProjectorError.unknownOrder(orderID, eventType: event.eventType, position: event.position)
        }
        switch event.eventType {
        case OrderEventType.paymentDebited:
            document["status"] = "Paid"
            document["payment"] = "debited"
        case OrderEventType.paymentFailed:
            document["status"] = "Rejected"
            document["payment"] = "failed"
            document["reason"] = .string(event.data["reason"]?.stringValue ?? "payment failed")
        case OrderEventType.approved:
            document["status"] = "Approved"
        case OrderEventType.rejected:
            document["status"] = "Rejected"
            document["reason"] = .string(event.data["reason"]?.stringValue ?? "rejected")
        case OrderEventType.paymentRefunded:
            document["payment"] = "refunded"
        default:
            return
        }
        document["updated_at"] = .string(event.recordedAt.description)
        document["version"] = .number(JSONNumber(Int64(event.version)))
        try views.put(Self.viewName, key: orderID, document: .object(document))
    }

    /// The order's id: `data.order_id`, or the stream's id for an event of an `order` stream without it.
    private static func orderID(of event: ModuleEvent) throws(OrdersProjectorError) -> String {
        if let value = event.data["order_id"] {
            guard case .string(let id) = value, Name.isValid(id) else {
                throw .malformed("order_id is not a valid name", position: event.position)
            }
            return id
        }
        guard event.stream.aggregateType == "order" else {
            throw .malformed("no order_id", position: event.position)
        }
        return event.stream.aggregateID
    }

    /// The document of a new order, from its `order-created` event.
    private static func newDocument(_ orderID: String, _ event: ModuleEvent) throws(OrdersProjectorError)
        -> JSONObject
    {
        func string(_ field: String) throws(OrdersProjectorError) -> String {
            guard let value = event.data[field]?.stringValue, !value.isEmpty else {
                throw .malformed("\(field) is missing or not a string", position: event.position)
            }
            return value
        }
        guard let amount = event.data["amount"].flatMap(ExactDecimal.init) else {
            throw .malformed("amount is missing or not a decimal", position: event.position)
        }
        return [
            "order_id": .string(orderID),
            "customer_id": .string(try string("customer_id")),
            "restaurant_id": .string(try string("restaurant_id")),
            "order_items": event.data["order_items"] ?? [],
            "amount": amount.normalized.jsonValue,
            "status": "Pending",
            "payment": "none",
            "created_on": .string(event.data["created_on"]?.stringValue ?? event.recordedAt.description),
            "updated_at": .string(event.recordedAt.description),
            "version": .number(JSONNumber(Int64(event.version))),
        ]
    }
}

/// Why ``OrdersProjector`` could not fold an event (the host parks it).
public enum OrdersProjectorError: Error, Hashable, Sendable, CustomStringConvertible {
    /// An event about an order the projector has no `order-created` for.
    case unknownOrder(String, eventType: String, position: LogPosition)
    /// A second `order-created` for an order.
    case duplicateOrder(String, position: LogPosition)
    /// The event lacks a field it needs, or has one of the wrong kind.
    case malformed(String, position: LogPosition)

    /// A message for the parked event's record.
    public var description: String {
        switch self {
        case .unknownOrder(let id, let type, let position):
            return "\(type) at position \(position) is about order \(id), which has no order-created"
        case .duplicateOrder(let id, let position):
            return "order-created at position \(position) for order \(id), which already exists"
        case .malformed(let reason, let position):
            return "malformed order event at position \(position): \(reason)"
        }
    }
}
