// swift-tools-version:6.1
import PackageDescription

/// Micro-benchmarks of Logline's hot paths, with ordo-one/benchmark.
///
/// A package of its own, so that the main package's `swift build` and `swift test` never build the benchmark
/// dependency. Run from this directory: `swift package benchmark`. See bench/README.md.
let package = Package(
    name: "LoglineMicroBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Logline", path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // The benchmark plugin looks for benchmark targets under Benchmarks/.
        .executableTarget(
            name: "LoglineBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "LoglineCore", package: "Logline"),
                .product(name: "LoglineLog", package: "Logline"),
                .product(name: "LoglineProtocol", package: "Logline"),
                .product(name: "LoglineModuleAPI", package: "Logline"),
                .product(name: "LoglineProjectionHost", package: "Logline"),
                .product(name: "OrdersModule", package: "Logline"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/LoglineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ],
    swiftLanguageModes: [.v6]
)
