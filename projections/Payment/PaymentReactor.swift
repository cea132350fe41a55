import LoglineCore
import LoglineModuleAPI

/// The payment service: keeps each customer's wallet and pays for orders.
///
/// - `order-created` `{order_id, customer_id, restaurant_id, amount}`: once per order, when the customer's balance covers the
///   amount, debits it and emits `order-payment-debited` `{order_id, customer_id, restaurant_id, amount}` to
///   `order/<order_id>`; otherwise emits `order-payment-failed`
///   `{order_id, customer_id, amount, reason: "insufficient funds: balance X, amount Y"}` there.
/// - `customer-credited` `{customer_id, amount}` (stream `customer/<id>`; the id may also come from the stream):
///   adds to the balance.
/// - `order-rejected` `{order_id, …}`, the saga's compensation: when the order was debited, gives the amount back
///   and emits `order-payment-refunded` `{order_id, customer_id, amount}` to `order/<order_id>`; otherwise does
///   nothing.
///
/// A customer first seen starts with ``initialCredit``. Money is ``LoglineModuleAPI/ExactDecimal`` throughout and
/// written as JSON numbers with at least two fraction digits (`25.50`).
///
/// State, in two views:
/// - `wallets`, key `customer_id`: `{customer_id, balance, movements, updated_at}`, where `movements` holds the
///   last 20 `{kind: "credit"|"debit"|"refund", amount, order_id?, position}` (`position` is the log position of
///   the event that caused it) and `updated_at` the `recorded_at` of that event.
/// - `payments`, key `order_id`: `{order_id, customer_id, amount, status: "debited"|"failed"|"refunded"}`,
///   indexed by `customer_id` and `status`: the reactor's memory of each order, which makes it idempotent
///   against its own views: an order is charged at most once and refunded at most once.
///
/// A malformed event (no ids, an amount that is not a positive decimal) or a balance that would overflow (or need
/// more than the 18 significant digits an ``LoglineModuleAPI/ExactDecimal`` reads back) throws
/// ``PaymentError``, and the host parks the event (the default policy): money is not moved on a guess.
public struct PaymentReactor: Reactor {
    /// The balance a customer starts with unless told otherwise: 1000.00.
    public static let defaultInitialCredit = ExactDecimal(significand: 100_000, scale: 2)!
    /// The `wallets` view's name.
    public static let walletsView = "wallets"
    /// The `payments` view's name.
    public static let paymentsView = "payments"
    /// How many movements a wallet keeps.
    public static let keptMovements = 20

    /// The balance a customer starts with.
    public let initialCredit: ExactDecimal

    /// Creates the reactor.
    /// - Parameter initialCredit: The balance a customer starts with (1000.00 by default).
    public init(initialCredit: ExactDecimal = PaymentReactor.defaultInitialCredit) {
        self.initialCredit = initialCredit
    }

    /// The module's name: `payment`.
    public var name: String { "payment" }

    /// `order-created`, `customer-credited` and `order-rejected`.
    public var handledEventTypes: Set<String> { ["order-created", "customer-credited", "order-rejected"] }

    /// `wallets` (no index) and `payments` (indexed by `customer_id` and `status`).
    public var views: [ViewDefinition] {
        [
            ViewDefinition(name: Self.walletsView),
            ViewDefinition(name: Self.paymentsView, indexes: ["customer_id", "status"]),
        ]
    }

    /// Reacts to one event, as the type's documentation says.
    /// - Parameters:
    ///   - event: The event.
    ///   - context: The views and where the new events go.
    /// - Throws: ``PaymentError`` for a malformed event or an overflowing balance, or a
    ///   ``LoglineModuleAPI/ViewError``.
    public func react(to event: ModuleEvent, context: inout ReactorContext) throws {
        switch event.eventType {
        case "order-created": try pay(event, context: &context)
        case "customer-credited": try credit(event, context: &context)
        case "order-rejected": try refund(event, context: &context)
        default: return
        }
    }

    // MARK: - Reactions

    private func pay(_ event: ModuleEvent, context: inout ReactorContext) throws {
        let orderID = try Self.orderID(of: event)
        guard try context.views.document(Self.paymentsView, key: orderID) == nil else { return }  // already paid for
        let customerID = try Self.requiredName("customer_id", of: event)
        let amount = try Self.positiveAmount(of: event)
        let stream = StreamName(uncheckedType: "order", id: orderID)
        let restaurantID = try Self.requiredName("restaurant_id", of: event)
        var wallet = try self.wallet(customerID, views: context.views, event: event)
        let balance = try Self.decimal(wallet["balance"], "balance of wallet \(customerID)")
        if balance >= amount {
            guard let newBalance = Self.storable(balance.subtracting(amount)) else {
                throw PaymentError.overflow("debiting \(amount) from \(customerID)", position: event.position)
            }
            Self.record(
                &wallet, kind: "debit", amount: amount, orderID: orderID, balance: newBalance, event: event)
            try context.views.put(Self.walletsView, key: customerID, document: .object(wallet))
            try putPayment(orderID, customerID, amount, status: "debited", views: &context.views)
            context.emit(
                "order-payment-debited", to: stream,
                data: [
                    "order_id": .string(orderID), "customer_id": .string(customerID),
                    "restaurant_id": .string(restaurantID), "amount": amount.jsonValue,
                ])
        } else {
            if try context.views.document(Self.walletsView, key: customerID) == nil {
                // A new customer's wallet becomes visible even when the first order is refused.
                try context.views.put(Self.walletsView, key: customerID, document: .object(wallet))
            }
            try putPayment(orderID, customerID, amount, status: "failed", views: &context.views)
            context.emit(
                "order-payment-failed", to: stream,
                data: [
                    "order_id": .string(orderID), "customer_id": .string(customerID), "amount": amount.jsonValue,
                    "reason": .string("insufficient funds: balance \(balance), amount \(amount)"),
                ])
        }
    }

    private func credit(_ event: ModuleEvent, context: inout ReactorContext) throws {
        let customerID: String
        if event.data["customer_id"] != nil {
            customerID = try Self.requiredName("customer_id", of: event)
        } else if event.stream.aggregateType == "customer" {
            customerID = event.stream.aggregateID
        } else {
            throw PaymentError.malformed("customer_id is missing", position: event.position)
        }
        let amount = try Self.positiveAmount(of: event)
        var wallet = try self.wallet(customerID, views: context.views, event: event)
        let balance = try Self.decimal(wallet["balance"], "balance of wallet \(customerID)")
        guard let newBalance = Self.storable(balance.adding(amount)) else {
            throw PaymentError.overflow("crediting \(amount) to \(customerID)", position: event.position)
        }
        Self.record(&wallet, kind: "credit", amount: amount, orderID: nil, balance: newBalance, event: event)
        try context.views.put(Self.walletsView, key: customerID, document: .object(wallet))
    }

    private func refund(_ event: ModuleEvent, context: inout ReactorContext) throws {
        let orderID = try Self.orderID(of: event)
        guard case .object(var payment) = try context.views.document(Self.paymentsView, key: orderID),
            payment["status"] == "debited"
        else { return }  // never debited (or already refunded): nothing to give back
        guard let customerID = payment["customer_id"]?.stringValue else {
            throw PaymentError.malformed("payment \(orderID) has no customer_id", position: event.position)
        }
        let amount = try Self.decimal(payment["amount"], "amount of payment \(orderID)")
        var wallet = try self.wallet(customerID, views: context.views, event: event)
        let balance = try Self.decimal(wallet["balance"], "balance of wallet \(customerID)")
        guard let newBalance = Self.storable(balance.adding(amount)) else {
            throw PaymentError.overflow("refunding \(amount) to \(customerID)", position: event.position)
        }
        Self.record(&wallet, kind: "refund", amount: amount, orderID: orderID, balance: newBalance, event: event)
        try context.views.put(Self.walletsView, key: customerID, document: .object(wallet))
        payment["status"] = "refunded"
        try context.views.put(Self.paymentsView, key: orderID, document: .object(payment))
        context.emit(
            "order-payment-refunded", to: StreamName(uncheckedType: "order", id: orderID),
            data: ["order_id": .string(orderID), "customer_id": .string(customerID), "amount": amount.jsonValue])
    }

    // MARK: - State

    /// The customer's wallet, or a new one holding the initial credit (stamped with `event`'s time).
    private func wallet(_ customerID: String, views: ViewChanges, event: ModuleEvent) throws -> JSONObject {
        if case .object(let wallet) = try views.document(Self.walletsView, key: customerID) { return wallet }
        return [
            "customer_id": .string(customerID), "balance": initialCredit.normalized.jsonValue, "movements": [],
            "updated_at": .string(event.recordedAt.description),
        ]
    }

    /// Sets the balance, adds a movement (keeping the last ``keptMovements``) and stamps the wallet.
    private static func record(
        _ wallet: inout JSONObject, kind: String, amount: ExactDecimal, orderID: String?, balance: ExactDecimal,
        event: ModuleEvent
    ) {
        var movement: JSONObject = ["kind": .string(kind), "amount": amount.jsonValue]
        if let orderID { movement["order_id"] = .string(orderID) }
        movement["position"] = .number(JSONNumber(Int64(event.position)))
        var movements = wallet["movements"]?.arrayValue ?? []
        movements.append(.object(movement))
        if movements.count > keptMovements { movements.removeFirst(movements.count - keptMovements) }
        wallet["balance"] = balance.normalized.jsonValue
        wallet["movements"] = .array(movements)
        wallet["updated_at"] = .string(event.recordedAt.description)
    }

    private func putPayment(
        _ orderID: String, _ customerID: String, _ amount: ExactDecimal, status: String, views: inout ViewChanges
    ) throws {
        try views.put(
            Self.paymentsView, key: orderID,
            document: [
                "order_id": .string(orderID), "customer_id": .string(customerID), "amount": amount.jsonValue,
                "status": .string(status),
            ])
    }

    // MARK: - Reading events

    private static func orderID(of event: ModuleEvent) throws(PaymentError) -> String {
        if event.data["order_id"] == nil, event.stream.aggregateType == "order" { return event.stream.aggregateID }
        return try requiredName("order_id", of: event)
    }

    private static func requiredName(_ field: String, of event: ModuleEvent) throws(PaymentError) -> String {
        guard let value = event.data[field]?.stringValue, Name.isValid(value) else {
            throw .malformed("\(field) is missing or not a valid name", position: event.position)
        }
        return value
    }

    private static func positiveAmount(of event: ModuleEvent) throws(PaymentError) -> ExactDecimal {
        guard let amount = storable(event.data["amount"].flatMap({ ExactDecimal($0) })), amount.isPositive else {
            throw .malformed("amount is missing or not a positive decimal", position: event.position)
        }
        return amount
    }

    /// The value when it can be written as JSON and read back (at most 18 significant digits), else `nil`.
    private static func storable(_ value: ExactDecimal?) -> ExactDecimal? {
        guard let value = value?.normalized, ExactDecimal(value.description) != nil else { return nil }
        return value
    }

    private static func decimal(_ value: JSONValue?, _ what: String) throws(PaymentError) -> ExactDecimal {
        guard let value, let decimal = ExactDecimal(value) else { throw .corruptState(what) }
        return decimal
    }
}

/// Why ``PaymentReactor`` could not react to an event (the host parks it).
public enum PaymentError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The event lacks a field it needs, or has one of the wrong kind.
    case malformed(String, position: LogPosition)
    /// A balance would not fit in an ``LoglineModuleAPI/ExactDecimal``.
    case overflow(String, position: LogPosition)
    /// A document of the reactor's views is not what it wrote.
    case corruptState(String)

    /// A message for the parked event's record.
    public var description: String {
        switch self {
        case .malformed(let reason, let position): return "malformed event at position \(position): \(reason)"
        case .overflow(let what, let position): return "overflow at position \(position): \(what)"
        case .corruptState(let what): return "unreadable \(what) in the payment views"
        }
    }
}
