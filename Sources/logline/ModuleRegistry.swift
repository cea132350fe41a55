import ArgumentParser
import LoglineModuleAPI
import OrdersModule
import PaymentModule
import RestaurantModule

/// The modules this build of Logline can run, in named groups: `logline serve --modules orders,payment` picks
/// groups by name (all of them by default).
///
/// To add a module: write it under projections/<Name>/ as its own target (see projections/README.md), add the
/// target to Package.swift and to this executable's dependencies, and add a group here.
enum ModuleRegistry {
    /// Settings the groups may use, from the command line.
    struct Settings: Sendable {
        /// The credit each customer starts with.
        var initialCredit: ExactDecimal
    }

    /// A named group of modules.
    struct Group: Sendable {
        /// The name used with `--modules`.
        let name: String
        /// What the group does.
        let summary: String
        /// Makes the group's modules.
        let make: @Sendable (Settings) -> [any LoglineModule]
    }

    /// Every group, in the order they are listed and registered.
    static let groups: [Group] = [
        Group(
            name: "orders",
            summary: "the create-order command and the orders view (status, payment, amount per order)",
            make: { _ in OrdersModule.modules() }),
        Group(
            name: "payment",
            summary: "debits wallets on order-created, refunds on order-rejected; the wallets view",
            make: { settings in PaymentModule.modules(initialCredit: settings.initialCredit) }),
        Group(
            name: "restaurant",
            summary: "approves paid orders of open restaurants, rejects those of closed ones",
            make: { _ in RestaurantModule.modules() }),
    ]

    /// The modules of the named groups.
    /// - Parameters:
    ///   - names: Group names; `all` or an empty list means every group; `none` means no module.
    ///   - settings: Settings for the groups.
    /// - Returns: The modules.
    /// - Throws: `ValidationError` naming an unknown group.
    static func modules(named names: [String], settings: Settings) throws -> [any LoglineModule] {
        if names == ["none"] { return [] }
        let selected: [Group]
        if names.isEmpty || names == ["all"] {
            selected = groups
        } else {
            selected = try names.map { name in
                guard let group = groups.first(where: { $0.name == name }) else {
                    throw ValidationError(
                        "unknown module group '\(name)'; known: \(groups.map(\.name).joined(separator: ", ")), all, none"
                    )
                }
                return group
            }
        }
        return selected.flatMap { $0.make(settings) }
    }
}
