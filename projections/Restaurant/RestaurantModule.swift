import LoglineModuleAPI

/// The restaurant service of the article, as a reactor: it approves paid orders of open restaurants.
///
/// Register it in the `logline` executable's module registry:
///
/// ```swift
/// "restaurant": RestaurantModule.modules()
/// ```
public enum RestaurantModule {
    /// The modules of the restaurant service: one ``RestaurantReactor``.
    /// - Returns: The reactor.
    public static func modules() -> [any LoglineModule] {
        [RestaurantReactor()]
    }
}
