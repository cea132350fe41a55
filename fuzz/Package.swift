// swift-tools-version:6.1
import PackageDescription

/// libFuzzer targets for Logline: built by `scripts/fuzz-libfuzzer` with `-sanitize=fuzzer`, never by the main
/// package's `swift build` or `swift test`.
///
/// `FuzzRequestDecoder` runs the oracle of the seeded fuzzer in the tests (`ProtocolFuzzer.check`, shared through
/// symbolic links to Tests/LoglineProtocolTests) on the inputs libFuzzer generates.
let package = Package(
    name: "LoglineFuzzing",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Logline", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // libFuzzer's driver, declared for Swift.
        .target(name: "CLibFuzzer"),
        .executableTarget(
            name: "FuzzRequestDecoder",
            dependencies: [
                "CLibFuzzer",
                .product(name: "LoglineCore", package: "Logline"),
                .product(name: "LoglineProtocol", package: "Logline"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
