import Bus
import Connectors
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import KafkaLog
import Testing
import TestSupport

/// The repository's catalog, loaded once.
let catalog: TopicCatalog = {
    do {
        return try TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))
    } catch {
        fatalError("Topics/ does not load: \(error)")
    }
}()

enum Backend: String, CaseIterable, Sendable, CustomStringConvertible {
    case embedded, kafka
    var description: String { rawValue }
}

/// A bus, a department database and a state folder for one test, removed afterwards.
struct Workbench: Sendable {
    let backend: Backend
    let directory: URL
    let log: any EventLog
    let busAddress: String
    let unique: String

    init(_ backend: Backend) async throws {
        unique = "t" + UUID().uuidString.prefix(8).lowercased()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("onewindow-conn-\(unique)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.backend = backend
        switch backend {
        case .embedded:
            let path = directory.appendingPathComponent("bus.sqlite").path
            log = try EmbeddedLog(path: path)
            busAddress = "embedded:\(path)"
        case .kafka:
            guard let bootstrap = ProcessInfo.processInfo.environment["ONEWINDOW_TEST_KAFKA"] else {
                throw WorkbenchError(
                    "ONEWINDOW_TEST_KAFKA is not set: run the tests with `make test`, which starts a Kafka-protocol broker")
            }
            var configuration = KafkaConfiguration(bootstrapServers: bootstrap.split(separator: ",").map(String.init))
            configuration.properties["session.timeout.ms"] = "6000"
            configuration.properties["heartbeat.interval.ms"] = "500"
            log = try KafkaLog(configuration: configuration)
            busAddress = "kafka:\(bootstrap)"
        }
        try await log.createTopics(catalog.topicSpecs)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// A department database file with the approval tables of the connector contract.
    func departmentDatabase() throws -> DatabasePool {
        let pool = try DatabasePool(path: path("department.sqlite"))
        try pool.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS approval_inbox (
                        event_id TEXT PRIMARY KEY, application_id TEXT, item TEXT, service TEXT, due_by TEXT,
                        payload TEXT, received_at TEXT, status TEXT);
                    CREATE TABLE IF NOT EXISTS approval_decisions (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT, application_id TEXT, item TEXT, decision TEXT,
                        reason TEXT, decided_at TEXT, decided_by TEXT, licence_number TEXT);
                    """)
        }
        return pool
    }

    /// Every record of a catalog topic whose event id starts with `prefix`, de-duplicated by id
    /// (as consumers do), in offset order per partition.
    func events(on topic: String, idPrefix prefix: String, deduplicate: Bool = true) async throws -> [LogRecord] {
        var seen = Set<String>()
        return try await readTopic(log, topic).filter { record in
            guard let id = record.header("ce_id"), id.hasPrefix(prefix) else { return false }
            return !deduplicate || seen.insert(id).inserted
        }
    }

    /// Waits until `condition` holds, polling; fails the test after `seconds`.
    func eventually(_ what: String, seconds: Double = 60, _ condition: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("timed out waiting for \(what)")
        throw WorkbenchError("timed out waiting for \(what)")
    }

    func tearDown() async {
        await log.close()
        try? FileManager.default.removeItem(at: directory)
    }
}

struct WorkbenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a connector in a task until `stop()`.
final class RunningConnector: Sendable {
    let connector: Connector
    private let task: Task<Void, any Error>

    init(_ yaml: String, on bench: Workbench) throws {
        let configuration = try ConnectorConfiguration.parse(yaml, file: "test")
        let connector = try Connector(configuration: configuration, log: bench.log, catalog: catalog)
        self.connector = connector
        task = Task { try await connector.run() }
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
    }
}

