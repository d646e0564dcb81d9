// swift-tools-version:6.1
import PackageDescription

// One library target per responsibility; the `onewindow` executable is a thin shell over them.
// Dependency direction: EventLog (bytes on a partitioned log) ← EventModel (CloudEvents binding)
// ← EventSchemas (catalog, JSON Schema) ← Bus (validated publishing, backends) ← OneWindowCLI.
let package = Package(
    name: "OneWindow",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "onewindow", targets: ["onewindow"]),
        .library(name: "EventModel", targets: ["EventModel"]),
        .library(name: "EventLog", targets: ["EventLog"]),
        .library(name: "Bus", targets: ["Bus"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        // The log interface: topics, partitions, offsets, consumer groups. Knows bytes, not events.
        .target(name: "EventLog"),
        // The embedded backend: the log in one SQLite file (GRDB, WAL).
        .target(
            name: "EmbeddedLog",
            dependencies: ["EventLog", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // librdkafka, through pkg-config. Only KafkaLog imports it.
        .systemLibrary(
            name: "CRDKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        // The Kafka backend over librdkafka.
        .target(name: "KafkaLog", dependencies: ["EventLog", "CRDKafka"]),
        // Events: CloudEvents attributes and their Kafka binding (binary mode).
        .target(name: "EventModel", dependencies: ["EventLog"]),
        // JSON, JSON Schema (draft 2020-12 subset), identifier formats, the topic catalog.
        .target(name: "EventSchemas", dependencies: ["EventModel", "EventLog", "Yams"]),
        // Validated publishing with dead letters; choosing a backend from a bus address.
        .target(
            name: "Bus",
            dependencies: [
                "EventModel", "EventSchemas", "EventLog", "EmbeddedLog", "KafkaLog",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Connector processes: department tables, webhooks and dropped files onto the bus, and
        // approval requests and notifications back into the departments' systems.
        .target(
            name: "Connectors",
            dependencies: [
                "Bus", "EventModel", "EventSchemas", "EventLog", "Yams",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Simulated department systems: their own SQLite databases, seed data, a row generator for
        // load tests, and a decision policy per approving department.
        .target(
            name: "DepartmentSystems",
            dependencies: [
                "EventSchemas", "EventModel", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The commands of `onewindow`, callable from tests without parsing.
        .target(
            name: "OneWindowCLI",
            dependencies: [
                "Bus", "EventModel", "EventSchemas", "EventLog", "EmbeddedLog", "Connectors", "DepartmentSystems",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "onewindow", dependencies: ["OneWindowCLI"]),
        .executableTarget(
            name: "onewindow-bench",
            dependencies: [
                "Bus", "EventLog", "EmbeddedLog", "KafkaLog", "EventModel", "EventSchemas", "Connectors", "TestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Benchmarks/onewindow-bench"
        ),
        // Shared by the test targets and the benchmark (example-shaped tables, ports, the executable).
        .target(
            name: "TestSupport", dependencies: ["EventSchemas", "EventLog", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "EventModelTests", dependencies: ["EventModel", "EventLog"]),
        .testTarget(name: "EventSchemasTests", dependencies: ["EventSchemas", "EventModel"]),
        .testTarget(
            name: "EventLogConformanceTests",
            dependencies: ["EventLog", "EmbeddedLog", "KafkaLog", "Bus"]
        ),
        .testTarget(
            name: "ConnectorsTests",
            dependencies: [
                "Connectors", "Bus", "EventModel", "EventSchemas", "EventLog", "EmbeddedLog", "KafkaLog", "TestSupport",
                "DepartmentSystems",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "DepartmentSystemsTests",
            dependencies: [
                "DepartmentSystems", "EventSchemas", "Connectors", .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(name: "KafkaLogTests", dependencies: ["KafkaLog", "EventLog", "EventModel", "TestSupport"]),
        .testTarget(
            name: "BusTests",
            dependencies: ["Bus", "EventModel", "EventSchemas", "EventLog", "EmbeddedLog", "OneWindowCLI", "TestSupport"]
        ),
    ]
)

for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    target.swiftSettings = settings
}
