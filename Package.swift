// swift-tools-version:6.1
import PackageDescription

/// Logline: an event-sourcing and CQRS server on LMDB.
///
/// Dependencies run one way only:
///   logline (CLI, composition root) → LoglineServer → LoglineProjectionHost → LoglineLog → LoglineLMDB → CLMDB
///   (LoglineServer also → LoglineConsumerGroups → LoglineLog; logline also → LoglineMetricsEndpoint)
/// The libraries emit metrics through swift-metrics only; Prometheus is known to LoglineMetricsEndpoint and the CLI.
/// LoglineProtocol, LoglineClient, LoglineModuleAPI and the modules under projections/ depend on nothing of
/// ours except LoglineCore (modules also on LoglineModuleAPI), which depends on nothing at all.
let package = Package(
    name: "Logline",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "logline", targets: ["logline"]),
        .library(name: "LoglineCore", targets: ["LoglineCore"]),
        .library(name: "LoglineClient", targets: ["LoglineClient"]),
        .library(name: "LoglineLog", targets: ["LoglineLog"]),
        .library(name: "LoglineServer", targets: ["LoglineServer"]),
        // The next four let bench/micro (a package of its own) measure the hot paths without `@testable`, and
        // fuzz/ (a package of its own too) run the libFuzzer targets.
        .library(name: "LoglineProtocol", targets: ["LoglineProtocol"]),
        .library(name: "LoglineModuleAPI", targets: ["LoglineModuleAPI"]),
        .library(name: "LoglineProjectionHost", targets: ["LoglineProjectionHost"]),
        .library(name: "OrdersModule", targets: ["OrdersModule"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Core vocabulary shared by everything: envelope, positions, names, JSON validation. No dependencies.
        .target(name: "LoglineCore"),

        // LMDB from Debian's liblmdb-dev.
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        // A thin, safe Swift wrapper over LMDB: environments, transactions confined to closures, cursors.
        .target(name: "LoglineLMDB", dependencies: ["CLMDB"]),
        // The append-only event log: the `EventLog` protocol and its LMDB backend with group commit.
        .target(
            name: "LoglineLog",
            dependencies: [
                "LoglineCore", "LoglineLMDB",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The wire protocol as pure parsing and serialising: no sockets.
        .target(
            name: "LoglineProtocol",
            dependencies: [
                "LoglineCore",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // What module authors target: projectors, reactors, command handlers, views. Depends on core types only.
        .target(name: "LoglineModuleAPI", dependencies: ["LoglineCore"]),
        // A harness to test a projector or reactor as a pure function over a list of events, without a server.
        .target(name: "LoglineModuleTesting", dependencies: ["LoglineCore", "LoglineModuleAPI"]),
        // Runs registered modules over the log: checkpoints, batches, views, parking, rebuilds.
        .target(
            name: "LoglineProjectionHost",
            dependencies: [
                "LoglineCore", "LoglineLog", "LoglineModuleAPI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Durable consumer groups for services outside the server: deliveries, acks, redelivery, dead letters.
        .target(
            name: "LoglineConsumerGroups",
            dependencies: [
                "LoglineCore", "LoglineLog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The order domain of the article, as modules (each depends on the module API and core types only).
        .target(name: "OrdersModule", dependencies: ["LoglineCore", "LoglineModuleAPI"], path: "projections/Orders"),
        .target(name: "PaymentModule", dependencies: ["LoglineCore", "LoglineModuleAPI"], path: "projections/Payment"),
        .target(
            name: "RestaurantModule", dependencies: ["LoglineCore", "LoglineModuleAPI"], path: "projections/Restaurant"),
        // The TCP server: SwiftNIO pipeline (with optional TLS), request dispatch, lifecycle.
        .target(
            name: "LoglineServer",
            dependencies: [
                "LoglineCore", "LoglineLog", "LoglineProtocol", "LoglineProjectionHost", "LoglineConsumerGroups",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Prometheus metrics over HTTP: `GET /metrics` from a registry that the composition root bootstraps.
        // The only target (with the CLI) that knows Prometheus; the libraries emit through swift-metrics alone.
        .target(
            name: "LoglineMetricsEndpoint",
            dependencies: [
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The Swift client library (async/await, pipelined, optional TLS).
        .target(
            name: "LoglineClient",
            dependencies: [
                "LoglineCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        // The `logline` command: the composition root.
        .executableTarget(
            name: "logline",
            dependencies: [
                "LoglineCore", "LoglineLog", "LoglineServer", "LoglineClient", "LoglineModuleAPI",
                "LoglineProjectionHost", "LoglineConsumerGroups", "LoglineMetricsEndpoint", "OrdersModule",
                "PaymentModule", "RestaurantModule",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "NotificationService", dependencies: ["LoglineClient", "LoglineCore"],
            path: "examples/NotificationService"),

        .testTarget(name: "LoglineCoreTests", dependencies: ["LoglineCore"]),
        .testTarget(
            name: "LoglineLogTests",
            dependencies: [
                "LoglineCore", "LoglineLog", "LoglineLMDB",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "LoglineProtocolTests",
            dependencies: ["LoglineCore", "LoglineProtocol", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(name: "LoglineModuleAPITests", dependencies: ["LoglineCore", "LoglineModuleAPI"]),
        .testTarget(
            name: "OrderModulesTests",
            dependencies: [
                "LoglineCore", "LoglineModuleAPI", "LoglineModuleTesting", "OrdersModule", "PaymentModule",
                "RestaurantModule",
            ]
        ),
        .testTarget(
            name: "LoglineProjectionHostTests",
            dependencies: [
                "LoglineCore", "LoglineLog", "LoglineModuleAPI", "LoglineProjectionHost",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "LoglineServerTests",
            dependencies: [
                "LoglineCore", "LoglineLog", "LoglineServer", "LoglineClient", "LoglineProjectionHost",
                "LoglineConsumerGroups", "LoglineModuleAPI", "LoglineProtocol", "LoglineMetricsEndpoint",
                "OrdersModule", "PaymentModule", "RestaurantModule",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
