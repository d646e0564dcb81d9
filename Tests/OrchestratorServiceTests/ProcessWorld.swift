import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import KafkaLog
import Orchestrator
import OrchestratorService
import TestSupport
import Testing

/// The bus the processes of a ``ProcessWorld`` share.
enum Backend: String, Sendable, CaseIterable, CustomTestStringConvertible {
    /// An embedded log in the world's folder.
    case embedded
    /// A Kafka test broker of the world's own (`ONEWINDOW_TEST_TANSU`, which `make test` sets): the
    /// orchestrator reads every department's decisions, and on the shared broker it would read (and
    /// dead-letter) other tests' decisions.
    case kafka

    var testDescription: String { rawValue }
}

/// Everything as separate processes, as in production: a temporary folder holding copies of the
/// repository's Topics, Rules and Connectors, one bus, and the `onewindow` processes a test starts
/// in it — department simulators deciding on an accelerated clock, their connectors, the SMS
/// gateway, the orchestrator. The orchestrator's store is read directly to follow the cases.
///
/// Used by one test at a time (not `Sendable`); everything it started is killed when it goes.
final class ProcessWorld {
    let backend: Backend
    let directory: URL
    let executable: URL
    /// `embedded:PATH` or `kafka:127.0.0.1:PORT`.
    let bus: String
    let storePath: String
    /// Simulated seconds per real second, for the departments and the orchestrator alike.
    let speed: Int
    private let broker: TestBroker?
    /// The librdkafka settings file the children read (`ONEWINDOW_KAFKA_CONFIG`) on Kafka.
    private let kafkaConfig: URL?
    private var started: [(name: String, process: ChildProcess)] = []

    init(backend: Backend, speed: Int = 86_400) throws {
        self.backend = backend
        self.speed = speed
        executable = try onewindowExecutable()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "onewindow-e2e-\(backend.rawValue)-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // A failure from here on (no broker configured, a broker that does not start) leaves
        // no folder behind: the deinit that removes it does not run for an init that throws.
        do {
            for folder in ["Topics", "Rules", "Connectors"] {
                try FileManager.default.copyItem(
                    at: repositoryRoot.appendingPathComponent(folder), to: directory.appendingPathComponent(folder))
            }
            storePath = directory.appendingPathComponent("orchestrator.sqlite").path
            switch backend {
            case .embedded:
                broker = nil
                kafkaConfig = nil
                bus = "embedded:" + directory.appendingPathComponent("bus.sqlite").path
            case .kafka:
                let broker = try TestBroker()
                self.broker = broker
                // Group joins take ~3.5 s with these against Tansu, ~23 s with librdkafka's defaults.
                let config = directory.appendingPathComponent("kafka.properties")
                try "session.timeout.ms=6000\nheartbeat.interval.ms=500\n".write(to: config, atomically: true, encoding: .utf8)
                kafkaConfig = config
                bus = "kafka:127.0.0.1:\(broker.port)"
            }
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    deinit {
        for (_, process) in started where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        broker?.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// `--bus` and the bus.
    var busArguments: [String] { ["--bus", bus] }

    /// Starts `onewindow ARGUMENTS` in the folder, its output in `NAME.log`.
    @discardableResult
    func start(_ name: String, _ arguments: [String]) throws -> ChildProcess {
        let process = childProcess(executable, arguments, in: directory, kafkaConfig: kafkaConfig)
        let log = directory.appendingPathComponent("\(name).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        started.append((name, process))
        return process
    }

    /// Runs `onewindow ARGUMENTS` to its end; its exit status.
    func run(_ name: String, _ arguments: [String]) async throws -> Int32 {
        let process = try start(name, arguments)
        try await waitForExit(process)
        return process.terminationStatus
    }

    /// What a process printed (for failure messages).
    func output(_ name: String) -> String {
        (try? String(contentsOf: directory.appendingPathComponent("\(name).log"), encoding: .utf8)) ?? ""
    }

    /// The last lines of every process's output, for a failure message.
    var outputs: String {
        started.map { name, _ in
            let lines = output(name).split(separator: "\n").suffix(8)
            return lines.isEmpty ? "" : "[\(name)]\n" + lines.joined(separator: "\n")
        }.filter { !$0.isEmpty }.joined(separator: "\n")
    }

    /// Creates the catalog's topics on the bus.
    func createTopics() async throws {
        let status = try await run("topics", ["topics", "apply"] + busArguments)
        #expect(status == 0, "topics apply: \(output("topics"))")
    }

    /// Each department's simulator deciding on the world's clock, and its connector once the
    /// simulator made its database; `sms-gateway` sends the text messages the connector queues.
    func startDepartments(_ departments: [String]) async throws {
        for department in departments {
            try start(
                "sim-\(department)",
                ["dept-sim", department, "--decide", "--speed", "\(speed)", "--log-level", "warning"])
        }
        for department in departments {
            let database = directory.appendingPathComponent("var/departments/\(department).sqlite").path
            for _ in 0..<200 where !FileManager.default.fileExists(atPath: database) {
                try await Task.sleep(for: .milliseconds(50))
            }
            try start(
                "connector-\(department)",
                ["connector", "run", "Connectors/\(department).yaml", "--log-level", "warning"] + busArguments)
        }
    }

    /// `onewindow orchestrator run` on the world's clock, with `arguments` added (`--view PATH`).
    @discardableResult
    func startOrchestrator(_ arguments: [String] = []) throws -> ChildProcess {
        try start(
            "orchestrator",
            ["orchestrator", "run", "--store", storePath, "--clock-speed", "\(speed)", "--log-level", "warning"]
                + arguments + busArguments)
    }

    /// Submits an application through `onewindow apply`.
    func apply(_ workflow: String, _ body: JSONValue) async throws {
        let id = body[pointer: "/applicationId"]?.stringValue ?? "application"
        let file = directory.appendingPathComponent("\(id).json")
        try body.serialized().write(to: file)
        let status = try await run("apply-\(id)", ["apply", workflow, "--file", file.path] + busArguments)
        #expect(status == 0, "apply \(id): \(output("apply-\(id)"))")
    }

    /// The cases of `ids` the store holds now (none before the orchestrator made it).
    func cases(_ ids: [String]) throws -> [String: Case] {
        guard FileManager.default.fileExists(atPath: storePath) else { return [:] }
        let store = try OrchestratorStore(path: storePath)
        var found: [String: Case] = [:]
        for id in ids { found[id] = try store.findCase(id)?.state }
        return found
    }

    /// Stops the orchestrator with SIGTERM (it must exit 0), then everything else.
    func stop() async throws {
        if let orchestrator = started.first(where: { $0.name == "orchestrator" })?.process, orchestrator.isRunning {
            kill(orchestrator.processIdentifier, SIGTERM)
            try await waitForExit(orchestrator, timeout: .seconds(30))
            #expect(orchestrator.terminationStatus == 0, "orchestrator: \(output("orchestrator"))")
        }
        for (_, process) in started where process.isRunning { kill(process.processIdentifier, SIGTERM) }
        for (_, process) in started { try? await waitForExit(process, timeout: .seconds(20)) }
    }

    /// A reader of the world's bus, for the test's own checks.
    func reader() throws -> any EventLog {
        switch backend {
        case .embedded:
            return try EmbeddedLog(path: directory.appendingPathComponent("bus.sqlite").path)
        case .kafka:
            var configuration = KafkaConfiguration(bootstrapServers: ["127.0.0.1:\(broker!.port)"])
            configuration.properties["session.timeout.ms"] = "6000"
            configuration.properties["heartbeat.interval.ms"] = "500"
            return try KafkaLog(configuration: configuration)
        }
    }

    /// A department's database, read-only.
    func departmentDatabase(_ department: String) throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(5)
        return try DatabaseQueue(
            path: directory.appendingPathComponent("var/departments/\(department).sqlite").path,
            configuration: configuration)
    }
}

/// Every event of a topic.
func events(_ log: any EventLog, _ topic: String) async throws -> [Event] {
    try await readTopic(log, topic).map { try CloudEventsBinding.event(from: $0) }
}

/// Follows topics from their start as a consumer group of its own, keeping what it read: one
/// subscription for all of them, which on Kafka is much quicker than reading partition by
/// partition (each read of a partition's end waits for more).
final class Follower {
    private let consumer: any LogConsumer
    /// The records read, by topic.
    private(set) var records: [String: [LogRecord]] = [:]
    /// Consecutive polls that returned nothing since the last record.
    private var quietPolls = 0
    private var heard = false

    init(_ log: any EventLog, topics: [String]) async throws {
        consumer = try await log.makeConsumer(.group("e2e-follower-\(UUID().uuidString.prefix(8))", topics: topics))
    }

    /// Polls once (up to 200 ms).
    func poll() async throws {
        let batch = try await consumer.poll(maxRecords: 1000, timeout: .milliseconds(200))
        for record in batch { records[record.topic, default: []].append(record) }
        if batch.isEmpty {
            quietPolls += 1
        } else {
            heard = true
            quietPolls = 0
        }
    }

    /// Whether it read something and then nothing for a second (five polls).
    var caughtUp: Bool { heard && quietPolls >= 5 }

    /// Polls until caught up, or for `limit` at most.
    func catchUp(limit: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + limit
        while !caughtUp, ContinuousClock.now < deadline { try await poll() }
    }

    /// The events read from a topic.
    func events(_ topic: String) throws -> [Event] {
        try (records[topic] ?? []).map { try CloudEventsBinding.event(from: $0) }
    }

    func close() async { await consumer.close() }
}
