import LoglineModuleAPI

/// The order service of the article: the `create-order` command and the `orders` view.
///
/// Register it in the `logline` executable's module registry:
///
/// ```swift
/// "orders": OrdersModule.modules()
/// ```
public enum OrdersModule {
    /// The modules of the order service: ``CreateOrderHandler`` and ``OrdersProjector``.
    /// - Returns: The command handler and the projector.
    public static func modules() -> [any LoglineModule] {
        [CreateOrderHandler(), OrdersProjector()]
    }
}

/// The event types of the order saga, as they appear in the log.
enum OrderEventType {
    static let created = "order-created"
    static let paymentDebited = "order-payment-debited"
    static let paymentFailed = "order-payment-failed"
    static let approved = "order-approved"
    static let rejected = "order-rejected"
    static let paymentRefunded = "order-payment-refunded"
}
