import EmbeddedLog
import EventLog
import Foundation
import KafkaLog

/// The backends the conformance suite runs against: every test takes one as its argument.
enum Backend: String, CaseIterable, Sendable, CustomStringConvertible {
    case embedded
    case kafka

    var description: String { rawValue }

    /// The Kafka test broker's address, set by `make test` (which starts the broker).
    static var kafkaBootstrap: String? { ProcessInfo.processInfo.environment["ONEWINDOW_TEST_KAFKA"] }
}

/// A fresh log for one test: its own SQLite file, or unique topic names on the shared broker.
struct LogFixture: Sendable {
    let backend: Backend
    let log: any EventLog
    /// Prefix that makes this test's topic and group names unique on a shared broker.
    let prefix: String
    let directory: URL

    /// A unique topic name for this test.
    func topic(_ name: String) -> String { "\(prefix).\(name)" }
    /// A unique group name for this test.
    func group(_ name: String) -> String { "\(prefix)-\(name)" }

    /// Opens another handle on the same log, as a second process would.
    func reopen() throws -> any EventLog {
        switch backend {
        case .embedded: return try EmbeddedLog(path: directory.appendingPathComponent("log.sqlite").path)
        case .kafka: return try Self.kafka()
        }
    }

    static func make(_ backend: Backend) throws -> LogFixture {
        let id = UUID().uuidString.prefix(8).lowercased()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("onewindow-conf-\(id)")
        switch backend {
        case .embedded:
            // Made for the embedded backend only: a Kafka fixture that cannot connect (no broker
            // configured) throws before it has a tear-down that would remove the folder.
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let log = try EmbeddedLog(path: directory.appendingPathComponent("log.sqlite").path)
            return LogFixture(backend: backend, log: log, prefix: "t\(id)", directory: directory)
        case .kafka:
            return LogFixture(backend: backend, log: try kafka(), prefix: "t\(id)", directory: directory)
        }
    }

    static func kafka() throws -> any EventLog {
        guard let bootstrap = Backend.kafkaBootstrap else {
            throw FixtureError(
                "ONEWINDOW_TEST_KAFKA is not set: run the tests with `make test`, which starts a Kafka-protocol broker")
        }
        var configuration = KafkaConfiguration(bootstrapServers: bootstrap.split(separator: ",").map(String.init))
        // Faster group joins on the test broker (measured: ~3.5 s instead of ~23 s).
        configuration.properties["session.timeout.ms"] = "6000"
        configuration.properties["heartbeat.interval.ms"] = "500"
        return try KafkaLog(configuration: configuration)
    }

    func tearDown() async {
        await log.close()
        try? FileManager.default.removeItem(at: directory)
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
