// swift-tools-version:6.1
import Foundation
import PackageDescription

/// jemalloc as the executables' allocator (Debian's libjemalloc-dev, installed by `make deps`):
/// 7 % less CPU per orchestrated workflow than glibc's malloc, measured (BENCHMARKS.md).
let jemalloc: [LinkerSetting] = [.linkedLibrary("jemalloc", .when(platforms: [.linux]))]

// One library target per responsibility; the `onewindow` executable is a thin shell over them.
// Dependency direction: EventLog (bytes on a partitioned log) ← EventModel (CloudEvents binding)
// ← EventSchemas (catalog, JSON Schema) ← Bus (validated publishing, backends) ← OneWindowCLI.
// CivilTime (dates, the China time zone, working days, the one `WallClock`) stands beside them,
// depending on nothing of ours; everything above EventLog may use it. The log layer (EventLog,
// EmbeddedLog, KafkaLog) does not: a log stores and ages bytes by a timestamp and knows no
// calendar, so EmbeddedLogConfiguration keeps its `now` closure (callers pass `clock.now`), its
// polling waits are real-time I/O waits, and Duration's one conversion to milliseconds and
// seconds lives in EventLog, which every target reaches.
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
        // The gateway's interface is generated from Sources/Gateway/openapi.yaml (see its README).
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.13.0"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird", from: "2.1.0"),
        // Built already as a dependency of Hummingbird's TLS stack: the dead letters' digests.
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.0.0"),
        // The benchmark's latency percentiles (onewindow-bench only).
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // The strict reader of configuration files (YAML through Yams' nodes: every value with its
        // line; unknown keys refused with the nearest known one). A target of its own, depending on
        // Yams alone, so that the catalog (EventSchemas), connector files (Connectors), the
        // calendar data (CivilTime) and the orchestrator's rules read files the same way without
        // one of them having to depend on another's code.
        .target(name: "ConfigFiles", dependencies: ["Yams"]),
        // Time: civil dates, the China time zone, working days (data in Rules/calendar.yaml) and the
        // one injectable `WallClock` that reads the time and sleeps. Of ours, it depends only on the
        // strict reader of its data file.
        .target(
            name: "CivilTime",
            dependencies: ["ConfigFiles"]
        ),
        // The one retry rule of the long-running processes: what an error means (ErrorDisposition:
        // retry, dead-letter, poll again, fatal), the back-off loop on the injected clock
        // (Retrier), and the failure that ends a process with status 75 (FatalFailure). Shared by
        // the connectors and the orchestrator; it classifies GRDB's errors by their SQLite code
        // and imports no C module itself.
        .target(
            name: "Retrying",
            dependencies: [
                "EventLog", "EventSchemas", "CivilTime", "ConfigFiles", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Who may do what: principals, grants, API keys (hashed, in SQLite) and the access decision
        // the gateway and the operator commands ask for; refusals counted and audited.
        .target(
            name: "AccessControl",
            dependencies: [
                "Audit", "EventModel", "EventSchemas", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The hash-chained audit log (SHA-256 over each entry and the one before, in SQLite) and the
        // recorder that appends every approval decision from the bus, once per event id.
        .target(
            name: "Audit",
            dependencies: [
                "SQLiteSupport", "CivilTime", "EventLog", "EventModel", "EventSchemas", "Retrying",
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The log interface: topics, partitions, offsets, consumer groups. Knows bytes, not events.
        .target(name: "EventLog"),
        // What the SQLite files (the embedded log, the orchestrator's and the services' stores) share:
        // the WAL checkpoint off the writer's path, and migrations that several processes opening one
        // file at the same moment apply once. The one place that calls SQLite's C API itself.
        .target(
            name: "SQLiteSupport",
            dependencies: [
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ]
        ),
        // The embedded backend: the log in one SQLite file (GRDB, WAL).
        .target(
            name: "EmbeddedLog",
            dependencies: [
                "EventLog", "SQLiteSupport", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // librdkafka, through pkg-config. Only KafkaLog imports it.
        .systemLibrary(
            name: "CRDKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        // The Kafka backend over librdkafka.
        .target(
            name: "KafkaLog", dependencies: ["EventLog", "CRDKafka", .product(name: "Logging", package: "swift-log")]
        ),
        // Events: CloudEvents attributes and their Kafka binding (binary mode).
        .target(name: "EventModel", dependencies: ["EventLog", "CivilTime"]),
        // JSON, JSON Schema (draft 2020-12 subset), identifier formats, the topic catalog.
        .target(name: "EventSchemas", dependencies: ["EventModel", "EventLog", "CivilTime", "ConfigFiles"]),
        // Validated publishing with dead letters; choosing a backend from a bus address.
        .target(
            name: "Bus",
            dependencies: [
                "EventModel", "EventSchemas", "EventLog", "EmbeddedLog", "KafkaLog", "CivilTime",
                .product(name: "Logging", package: "swift-log"), .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Connector processes: department tables, webhooks and dropped files onto the bus, and
        // approval requests and notifications back into the departments' systems.
        .target(
            name: "Connectors",
            dependencies: [
                "SQLiteSupport", "Retrying", "Bus", "EventModel", "EventSchemas", "EventLog", "CivilTime", "ConfigFiles",
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
                "SQLiteSupport", "EventSchemas", "EventModel", "EventLog", "CivilTime", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The orchestrator's pure part: rules as data (Rules/), the condition language, notification
        // templates and the state machine `apply(case, input, now) -> (case', effects)`. No I/O and no
        // bus: the store, relay and services build on it. swift-mustache renders the templates (it
        // depends on nothing); the expression parser is our own (swift-parsing would pull
        // swift-case-paths and swift-syntax's macros into every build).
        .target(
            name: "Orchestrator",
            dependencies: [
                "EventSchemas", "CivilTime", "ConfigFiles", .product(name: "Mustache", package: "swift-mustache"),
            ]
        ),
        // The orchestrator's I/O shell around the pure core: the store (GRDB: cases, applied input ids,
        // the outbox, timers, pinned rule sources), the consumer, the outbox relay and the timer loop
        // as services of one service group, and their metrics.
        .target(
            name: "OrchestratorService",
            dependencies: [
                "Orchestrator", "Bus", "EventModel", "EventSchemas", "EventLog", "CivilTime", "Connectors", "Retrying",
                "SharedView", "SQLiteSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The services that come to the citizen (issue 10): life-event pushes (Rules/life-events.yaml)
        // and the supervision of repeat visits (Rules/repeat-visits.yaml), one consumer with a GRDB
        // store and an outbox, published by the orchestrator's relay.
        .target(
            name: "CitizenServices",
            dependencies: [
                "Orchestrator", "OrchestratorService", "Bus", "EventModel", "EventSchemas", "EventLog", "CivilTime",
                "ConfigFiles", "Connectors", "Retrying", "SQLiteSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The shared data view: the departments' latest facts per resident ID and credit code (GRDB),
        // its consumer and rebuild, the read path that records every read ("who used my data"), and
        // data comparison by the rules in Rules/comparison.yaml with its supervision alerts.
        .target(
            name: "SharedView",
            dependencies: [
                "Bus", "EventModel", "EventSchemas", "EventLog", "CivilTime", "ConfigFiles", "Connectors", "Retrying",
                "SQLiteSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Subscriptions for downstream systems (issue 11): a topic or pattern read for a consumer
        // group from a cursor (the SSE `Last-Event-ID`) without gap or repeat, through one shared
        // tail per partition; SSE framing and long-poll batches. HTTP-free: the gateway serves it.
        .target(
            name: "Subscriptions",
            dependencies: [
                "AccessControl", "EventLog", "EventModel", "EventSchemas", .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"]
        ),
        // The HTTP gateway (issue 11): the front desk, progress, "who used my data", health and
        // metrics, served from the OpenAPI document Sources/Gateway/openapi.yaml through the
        // interface swift-openapi-generator made of it (committed under Sources/Gateway/Generated).
        .target(
            name: "Gateway",
            dependencies: [
                "SQLiteSupport", "AccessControl", "Bus", "EventModel", "EventSchemas", "EventLog", "CivilTime", "ConfigFiles",
                "Orchestrator", "OrchestratorService", "SharedView", "Connectors", "Retrying", "Subscriptions",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
            ],
            exclude: ["openapi.yaml", "openapi-generator-config.yaml", "README.md", "Generated/openapi.sha256"]
        ),
        // The commands of `onewindow`, callable from tests without parsing.
        .target(
            name: "OneWindowCLI",
            dependencies: [
                "Bus", "EventModel", "EventSchemas", "EventLog", "EmbeddedLog", "Connectors", "DepartmentSystems",
                "CivilTime", "Orchestrator", "OrchestratorService", "ConfigFiles", "Retrying", "CitizenServices",
                "SharedView", "Gateway", "AccessControl", "Audit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The processes allocate through jemalloc (README, "Decisions"; MallocArenas.swift).
        .executableTarget(name: "onewindow", dependencies: ["OneWindowCLI"], linkerSettings: jemalloc),
        .executableTarget(
            name: "onewindow-bench",
            dependencies: [
                "Bus", "EventLog", "EmbeddedLog", "KafkaLog", "EventModel", "EventSchemas", "Connectors", "TestSupport",
                "SharedView", "Orchestrator", "OrchestratorService", "CivilTime", "Subscriptions", "Gateway",
                "AccessControl", "Audit", "Retrying",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Benchmarks/onewindow-bench",
            linkerSettings: jemalloc
        ),
        // Shared by the test targets and the benchmark (example-shaped tables, ports, the executable).
        .target(
            name: "TestSupport",
            dependencies: [
                "EventSchemas", "EventLog", "EmbeddedLog", "KafkaLog", "CivilTime",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TestSupport"
        ),
        // Awaited clean-ups for test suites (Swift Testing's scoping trait); apart from TestSupport,
        // which the benchmark links, so that only test targets link Swift Testing.
        .target(name: "TestCleanup", path: "Tests/TestCleanup"),
        .testTarget(name: "CivilTimeTests", dependencies: ["CivilTime", "EventLog"]),
        .testTarget(name: "TestSupportTests", dependencies: ["TestSupport"]),
        .testTarget(
            name: "SQLiteSupportTests",
            dependencies: ["SQLiteSupport", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "AccessControlTests",
            dependencies: [
                "AccessControl", "Audit", "Bus", "EventLog", "EmbeddedLog", "EventModel", "EventSchemas", "CivilTime",
                "Connectors", "OneWindowCLI", "TestSupport", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "OrchestratorTests",
            dependencies: ["Orchestrator", "EventSchemas", "CivilTime", "ConfigFiles", "TestSupport"]
        ),
        .testTarget(
            name: "OrchestratorServiceTests",
            dependencies: [
                "OrchestratorService", "Orchestrator", "Bus", "EventModel", "EventSchemas", "EventLog", "EmbeddedLog",
                "KafkaLog", "CivilTime", "OneWindowCLI", "TestSupport", "Retrying", "ConfigFiles", "SharedView",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "CitizenServicesTests",
            dependencies: [
                "CitizenServices", "OrchestratorService", "Orchestrator", "Bus", "EventModel", "EventSchemas", "EventLog",
                "EmbeddedLog", "KafkaLog", "CivilTime", "ConfigFiles", "OneWindowCLI", "TestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "SharedViewTests",
            dependencies: [
                "SharedView", "Bus", "EventModel", "EventSchemas", "EventLog", "EmbeddedLog", "KafkaLog", "CivilTime",
                "ConfigFiles", "OneWindowCLI", "TestSupport", .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "SubscriptionsTests",
            dependencies: [
                "Subscriptions", "EventLog", "EmbeddedLog", "KafkaLog", "EventModel", "EventSchemas", "TestSupport",
                "TestCleanup",
            ]
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Gateway", "AccessControl", "Audit", "Bus", "EventModel", "EventSchemas", "EventLog", "EmbeddedLog", "CivilTime",
                "Orchestrator", "OrchestratorService", "SharedView", "TestSupport", "Yams",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "EventModelTests", dependencies: ["EventModel", "EventLog"]),
        .testTarget(
            name: "EventSchemasTests", dependencies: ["EventSchemas", "EventModel", "ConfigFiles", "CivilTime", "TestSupport"]
        ),
        .testTarget(
            name: "EventLogConformanceTests",
            dependencies: [
                "EventLog", "EmbeddedLog", "KafkaLog", "Bus", "TestSupport", "TestCleanup",
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "ConnectorsTests",
            dependencies: [
                "Connectors", "Bus", "EventModel", "EventSchemas", "EventLog", "EmbeddedLog", "KafkaLog", "TestSupport", "TestCleanup",
                "DepartmentSystems", "CivilTime", "Retrying",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "DepartmentSystemsTests",
            dependencies: [
                "DepartmentSystems", "EventSchemas", "Connectors", "CivilTime", "TestSupport",
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "KafkaLogTests",
            dependencies: [
                "KafkaLog", "EventLog", "EventModel", "TestSupport", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Issue 12: the hostile-input corpus (Tests/HostileInput) through every entry point.
        .testTarget(
            name: "HostileInputTests",
            dependencies: [
                "AccessControl", "Audit", "Bus", "CivilTime", "Connectors", "EmbeddedLog", "EventLog", "EventModel",
                "EventSchemas", "Gateway", "KafkaLog", "Orchestrator", "OrchestratorService", "Retrying", "TestSupport",
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Issue 12's measured promises with every process running (kills under load, a broker
        // outage, a soak); `make test` runs their short versions apart, `make reliability` the full.
        .testTarget(
            name: "ReliabilityTests",
            dependencies: [
                "OrchestratorService", "Orchestrator", "EventModel", "EventSchemas", "EventLog", "EmbeddedLog", "KafkaLog",
                "CivilTime", "TestSupport", .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "BusTests",
            dependencies: [
                "Bus", "EventModel", "EventSchemas", "EventLog", "EmbeddedLog", "OneWindowCLI", "TestSupport", "TestCleanup", "CivilTime",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)

// The libFuzzer targets (Fuzz/README.md), only when `make fuzz` asks for them (ONEWINDOW_FUZZ=1,
// built in .build-fuzz with the fuzzer and address sanitizers): neither `swift build`, `make test`
// nor CI sees them. A target here rather than a package of its own under Fuzz/, because a package
// depending on this one by path could use only its products (EventSchemas, Connectors and
// Orchestrator are not), and would name it by the clone's folder name.
if ProcessInfo.processInfo.environment["ONEWINDOW_FUZZ"] == "1" {
    package.targets.append(
        .executableTarget(
            name: "onewindow-fuzz",
            dependencies: ["EventSchemas", "EventModel", "CivilTime", "Connectors", "Orchestrator"],
            path: "Fuzz/Sources/onewindow-fuzz"
        )
    )
}

for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    target.swiftSettings = settings
}
