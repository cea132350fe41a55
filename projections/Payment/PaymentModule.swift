import LoglineModuleAPI

/// The payment service of the article, as a reactor: it debits customers for new orders and refunds them when
/// the restaurant rejects a paid order.
///
/// Register it in the `logline` executable's module registry:
///
/// ```swift
/// "payment": PaymentModule.modules()
/// ```
public enum PaymentModule {
    /// The modules of the payment service: one ``PaymentReactor``.
    /// - Parameter initialCredit: The balance a customer starts with (1000.00 by default).
    /// - Returns: The reactor.
    public static func modules(initialCredit: ExactDecimal = PaymentReactor.defaultInitialCredit)
        -> [any LoglineModule]
    {
        [PaymentReactor(initialCredit: initialCredit)]
    }
}
