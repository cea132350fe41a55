import LoglineCore
import LoglineModuleAPI

/// The restaurant service: knows which restaurants are open and approves or rejects paid orders.
///
/// - `restaurant-closed` / `restaurant-opened` (stream `restaurant/<id>`, data `{restaurant_id}`; the id is taken
///   from the data, or from the stream when the data has none): records the restaurant as closed or open.
/// - `order-payment-debited` `{order_id, restaurant_id, …}`: emits `order-approved` `{order_id, restaurant_id}`
///   to `order/<order_id>` when the restaurant is open, or `order-rejected`
///   `{order_id, restaurant_id, reason: "restaurant <id> is closed"}` when it is closed, which starts the
///   saga's compensation (the payment service refunds).
///
/// Restaurants are open unless a `restaurant-closed` says otherwise. The state is the `restaurants` view, key
/// `restaurant_id`: `{restaurant_id, open, updated_at}` (`updated_at` is the event's `recorded_at`), indexed by
/// `open`.
///
/// An event without the ids it needs throws ``RestaurantError`` and the host parks it (the default policy).
public struct RestaurantReactor: Reactor {
    /// The `restaurants` view's name.
    public static let restaurantsView = "restaurants"

    /// Creates the reactor.
    public init() {}

    /// The module's name: `restaurant`.
    public var name: String { "restaurant" }

    /// `order-payment-debited`, `restaurant-closed` and `restaurant-opened`.
    public var handledEventTypes: Set<String> { ["order-payment-debited", "restaurant-closed", "restaurant-opened"] }

    /// The `restaurants` view, indexed by `open`.
    public var views: [ViewDefinition] { [ViewDefinition(name: Self.restaurantsView, indexes: ["open"])] }

    /// Reacts to one event, as the type's documentation says.
    /// - Parameters:
    ///   - event: The event.
    ///   - context: The view and where the new events go.
    /// - Throws: ``RestaurantError`` for a malformed event, or a ``LoglineModuleAPI/ViewError``.
    public func react(to event: ModuleEvent, context: inout ReactorContext) throws {
        switch event.eventType {
        case "restaurant-closed", "restaurant-opened":
            let restaurantID = try Self.id("restaurant_id", of: event, streamType: "restaurant")
            try context.views.put(
                Self.restaurantsView, key: restaurantID,
                document: [
                    "restaurant_id": .string(restaurantID), "open": .bool(event.eventType == "restaurant-opened"),
                    "updated_at": .string(event.recordedAt.description),
                ])
        case "order-payment-debited":
            let orderID = try Self.id("order_id", of: event, streamType: "order")
            guard let restaurantID = event.data["restaurant_id"]?.stringValue, Name.isValid(restaurantID) else {
                throw RestaurantError.malformed(
                    "restaurant_id is missing or not a valid name", position: event.position)
            }
            let stream = StreamName(uncheckedType: "order", id: orderID)
            let open = try context.views.document(Self.restaurantsView, key: restaurantID)?["open"]?.boolValue ?? true
            if open {
                context.emit(
                    "order-approved", to: stream,
                    data: ["order_id": .string(orderID), "restaurant_id": .string(restaurantID)])
            } else {
                context.emit(
                    "order-rejected", to: stream,
                    data: [
                        "order_id": .string(orderID), "restaurant_id": .string(restaurantID),
                        "reason": .string("restaurant \(restaurantID) is closed"),
                    ])
            }
        default:
            return
        }
    }

    /// `data[field]`, or the stream's id when the data has no such field and the stream is of `streamType`.
    private static func id(_ field: String, of event: ModuleEvent, streamType: String) throws(RestaurantError)
        -> String
    {
        guard let value = event.data[field] else {
            guard event.stream.aggregateType == streamType else {
                throw .malformed("\(field) is missing", position: event.position)
            }
            return event.stream.aggregateID
        }
        guard let id = value.stringValue, Name.isValid(id) else {
            throw .malformed("\(field) is not a valid name", position: event.position)
        }
        return id
    }
}

/// Why ``RestaurantReactor`` could not react to an event (the host parks it).
public enum RestaurantError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The event lacks an id it needs, or has one of the wrong kind.
    case malformed(String, position: LogPosition)

    /// A message for the parked event's record.
    public var description: String {
        switch self {
        case .malformed(let reason, let position): return "malformed event at position \(position): \(reason)"
        }
    }
}
