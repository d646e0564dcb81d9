import Bus
import Connectors
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import KafkaLog
import Logging
import ServiceLifecycle
import Synchronization
import TestCleanup
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

    /// - Parameter maxRecordBytes: the embedded log's record limit (the default's 1 MiB when `nil`).
    init(_ backend: Backend, maxRecordBytes: Int? = nil) async throws {
        unique = "t" + UUID().uuidString.prefix(8).lowercased()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("onewindow-conn-\(unique)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // A failure from here on (no broker configured, a broker that does not start) leaves
        // no folder behind: the deinit that removes it does not run for an init that throws.
        do {
            self.backend = backend
            switch backend {
            case .embedded:
                let path = directory.appendingPathComponent("bus.sqlite").path
                var configuration = EmbeddedLogConfiguration()
                if let maxRecordBytes { configuration.maxRecordBytes = maxRecordBytes }
                log = try EmbeddedLog(path: path, configuration: configuration)
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
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// The example table `payments` of `type` in the department database, with `rows` rows.
    func paymentsTable(type: String, rows: Int = 1) async throws -> ExampleTable {
        let table = try ExampleTable(type: type, table: "payments", catalog: catalog)
        try await departmentDatabase().write { db in
            try db.execute(sql: table.createSQL)
            for _ in 0..<rows { try table.insert(db) }
        }
        return table
    }

    /// The text of a tax connector file with one table source of `type` over `table` (cursor
    /// `change_seq`, polled every 50 ms) on this bench's department database and state file, as
    /// most connector tests need. `top` adds keys to the file (`metrics: …`), `source` to the
    /// source (`batch: 10`).
    func tableConnectorYAML(
        _ name: String, table: ExampleTable, type: String, top: [String] = [], source: [String] = []
    ) -> String {
        (["name: \(name)-\(unique)", "department: tax", "database: \(path("department.sqlite"))",
          "state: \(path("state.sqlite"))"] + top
            + ["sources:", "  - kind: table", "    table: \(table.table)", "    cursor: change_seq", "    type: \(type)",
               "    interval: 50ms"] + source.map { "    " + $0 } + ["    mapping:", table.mappingYAML])
            .joined(separator: "\n")
    }

    /// The text of a tax connector file with one inbox sink (`approval.tax.requested` in, the
    /// decisions out to `approval.tax.decided`) on this bench's department database and the state
    /// file `state`.
    func inboxConnectorYAML(_ name: String, state: String = "state.sqlite", interval: String = "100ms") -> String {
        ["name: \(name)-\(unique)", "department: tax", "database: \(path("department.sqlite"))",
         "state: \(path(state))", "sinks:", "  - kind: inbox", "    requests: approval.tax.requested",
         "    decisions: approval.tax.decided", "    interval: \(interval)"].joined(separator: "\n")
    }

    /// The text of a tax connector file with one webhook source of `type` on `127.0.0.1:port`.
    func webhookConnectorYAML(_ name: String, port: Int, type: String, path: String = "/payments") -> String {
        ["name: \(name)-\(unique)", "department: tax", "sources:", "  - kind: webhook",
         "    listen: 127.0.0.1:\(port)", "    path: \(path)", "    type: \(type)"].joined(separator: "\n")
    }

    /// A department database file with the approval tables of the connector contract.
    func departmentDatabase() throws -> DatabasePool {
        // Shared with the running connector, which writes its inbox rows into it: without a busy
        // timeout, the test's own write failed at once ("database is locked") whenever it met one.
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        let pool = try DatabasePool(path: path("department.sqlite"), configuration: configuration)
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

/// Runs a connector in a task, in a `ServiceGroup` as `onewindow connector run` does, until
/// `stop()` shuts the group down gracefully (as SIGTERM does): cancelling a task that serves HTTP
/// can trap in NIO when a connection is being accepted at that moment (swift-nio#3481).
final class RunningConnector: Sendable {
    let connector: Connector
    private let group: ServiceGroup
    private let task: Task<Void, any Error>
    private let finished = Flag()

    /// - Parameter log: the bus, when not the bench's.
    init(_ yaml: String, on bench: Workbench, log: (any EventLog)? = nil) throws {
        let configuration = try ConnectorConfiguration.parse(yaml, file: "test")
        let connector = try Connector(configuration: configuration, log: log ?? bench.log, catalog: catalog)
        self.connector = connector
        let group = ServiceGroup(services: [connector], logger: Logger(label: "test"))
        self.group = group
        let finished = self.finished
        task = Task {
            defer { finished.set() }
            try await group.run()
        }
    }

    /// Shuts the connector down gracefully and waits for it.
    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }

    /// How the connector's run ended, waiting at most `seconds`: `nil` when it returned, the error
    /// it threw otherwise. Fails the test (and stops the connector) when it is still running then.
    func ended(within seconds: Double) async throws -> (any Error)? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if finished.isSet { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        guard finished.isSet else {
            Issue.record("the connector still runs after \(seconds) s")
            await stop()
            throw WorkbenchError("the connector still runs after \(seconds) s")
        }
        do {
            try await task.value
            return nil
        } catch {
            return error
        }
    }
}


/// A flag set once, read from any task.
final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

/// A test's own HTTP server (a Hummingbird `Application`) in a `ServiceGroup`, stopped gracefully:
/// cancelling the serving task instead can trap in NIO (see ``RunningConnector``).
final class RunningServer: Sendable {
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    init(_ service: some Service) {
        let group = ServiceGroup(services: [service], logger: Logger(label: "test-server"))
        self.group = group
        task = Task { try await group.run() }
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}
