import EmbeddedLog
import EventLog
import Foundation
import KafkaLog
import TestSupport

/// The bus of a ``LoadWorld``.
enum Backend: String, Sendable, CaseIterable, CustomStringConvertible {
    /// An embedded log in the world's folder.
    case embedded
    /// A Kafka test broker of the world's own (`ONEWINDOW_TEST_TANSU`): the orchestrator reads every
    /// department's decisions, and on `make test`'s shared broker it would read other tests' ones.
    case kafka
    /// A broker of the world's own behind a ``TestProxy`` that every client goes through (the broker
    /// advertises the proxy's port), so the test can take the broker away and bring it back.
    case kafkaBehindProxy

    var description: String { rawValue }
}

/// Everything of OneWindow as separate processes under a steady load, as production runs it: the
/// department simulators of the house transfer (real estate, tax, deciding on an accelerated clock;
/// tax also writing payment rows, the department events), their connectors (a table source and an
/// inbox sink each), the SMS gateway and its connector (a table sink), the orchestrator and the
/// HTTP gateway, all on one bus in a temporary folder. On request (``startEventSources()``) also
/// the two source kinds a department pushes to: a connector with a webhook source (births POSTed
/// over HTTP) and one with a file-drop source (deaths dropped as CSV files), both of the household
/// registry, fed by a ``DepartmentEventLoad``.
///
/// A process can be killed with SIGKILL and started again under its name (``kill9(_:)``,
/// ``restart(_:)``); the ones that ended without being killed are reported (``unexpectedExits``);
/// their resident memory and open descriptors can be sampled from `/proc` (``sample(_:)``).
///
/// Used by one test at a time (not `Sendable`); everything it started is killed when it goes.
final class LoadWorld {
    /// The processes a world runs, in start order; the names ``kill9(_:)`` takes.
    static let departments = ["real-estate", "tax", "sms-gateway"]
    static let killable = ["orchestrator", "gateway", "connector-real-estate", "connector-tax", "connector-sms-gateway"]
    /// The connectors ``startEventSources()`` adds: a webhook source and a file-drop source.
    static let eventSourceConnectors = ["connector-webhook", "connector-file-drop"]

    /// The processes the kill test kills: ``killable``, and ``eventSourceConnectors`` once started.
    var killable: [String] { Self.killable + Self.eventSourceConnectors.filter { members[$0] != nil } }

    let bus: Backend
    let directory: URL
    let executable: URL
    /// `embedded:PATH` or `kafka:127.0.0.1:PORT`, as the processes are given it.
    let address: String
    let storePath: String
    /// Simulated seconds per real second, for the departments and the orchestrator alike.
    let speed: Int
    /// The gateway's port and the front desk's API key (`submit:house-transfer`).
    let gatewayPort: Int
    private(set) var frontDeskKey = ""
    /// The port of the webhook source's connector (births are POSTed to `/births`).
    let webhookPort: Int
    /// The folder of the file-drop source's connector (deaths are dropped there as CSV files).
    let dropDirectory: URL
    let broker: TestBroker?
    let proxy: TestProxy?
    private let kafkaConfig: URL?

    /// A started process: its arguments (to start it again), the process, and whether the test
    /// killed it on purpose.
    private struct Member {
        var arguments: [String]
        var process: ChildProcess
        var incarnation = 1
        var killed = false
        /// Stopped by the test with SIGTERM before the end.
        var stopped = false
    }
    private var members: [String: Member] = [:]
    private var order: [String] = []

    init(bus: Backend, speed: Int = 86_400) throws {
        self.bus = bus
        self.speed = speed
        executable = try onewindowExecutable()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "onewindow-reliability-\(bus.rawValue)-\(UUID().uuidString.prefix(8).lowercased())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // A failure from here on (no broker configured, a broker that does not start) leaves
        // no folder behind: the deinit that removes it does not run for an init that throws.
        do {
            for folder in ["Topics", "Rules", "Connectors"] {
                try FileManager.default.copyItem(
                    at: repositoryRoot.appendingPathComponent(folder), to: directory.appendingPathComponent(folder))
            }
            storePath = directory.appendingPathComponent("orchestrator.sqlite").path
            gatewayPort = freePort()
            webhookPort = freePort()
            dropDirectory = directory.appendingPathComponent("var/drop/household-registry")
            switch bus {
            case .embedded:
                broker = nil
                proxy = nil
                kafkaConfig = nil
                address = "embedded:" + directory.appendingPathComponent("bus.sqlite").path
            case .kafka, .kafkaBehindProxy:
                let proxyPort = bus == .kafkaBehindProxy ? freePort() : nil
                let broker = try TestBroker(advertisedPort: proxyPort)
                self.broker = broker
                proxy = try proxyPort.map { try TestProxy(port: $0, target: broker.port) }
                // Group joins take ~3.5 s with these against Tansu, ~23 s with librdkafka's defaults; a
                // dead connection is noticed within 3 s and reconnecting backs off at most a second.
                let config = directory.appendingPathComponent("kafka.properties")
                try """
                session.timeout.ms=6000
                heartbeat.interval.ms=500
                socket.timeout.ms=3000
                reconnect.backoff.max.ms=1000

                """.write(to: config, atomically: true, encoding: .utf8)
                kafkaConfig = config
                address = "kafka:127.0.0.1:\(proxyPort ?? broker.port)"
            }
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    deinit {
        for member in members.values where member.process.isRunning { kill(member.process.processIdentifier, SIGKILL) }
        proxy?.stop()
        broker?.stop()
        if ProcessInfo.processInfo.environment["ONEWINDOW_KEEP_RELIABILITY"] == nil {
            try? FileManager.default.removeItem(at: directory)
        }
    }

    var busArguments: [String] { ["--bus", address] }

    // MARK: - Processes

    /// Starts `onewindow ARGUMENTS` in the folder as `name`, its output appended to `NAME.log`.
    @discardableResult
    func start(_ name: String, _ arguments: [String]) throws -> ChildProcess {
        let process = childProcess(executable, arguments, in: directory, kafkaConfig: kafkaConfig)
        let log = directory.appendingPathComponent("\(name).log")
        if !FileManager.default.fileExists(atPath: log.path) { _ = FileManager.default.createFile(atPath: log.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: log)
        try handle.seekToEnd()
        let incarnation = (members[name]?.incarnation ?? 0) + 1
        try handle.write(contentsOf: Data("=== \(name) #\(incarnation)\n".utf8))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        // The child has its own copy; keeping ours would leak a descriptor per restart.
        try handle.close()
        if members[name] == nil { order.append(name) }
        members[name] = Member(arguments: arguments, process: process, incarnation: incarnation)
        return process
    }

    /// Runs `onewindow ARGUMENTS` to its end; its exit status and output.
    func run(_ arguments: [String]) async throws -> ProcessOutput {
        let process = childProcess(executable, arguments, in: directory, kafkaConfig: kafkaConfig)
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return await collect(process, output: output, error: error, timeout: .seconds(120))
    }

    /// Kills the process `name` with SIGKILL and waits for it to be gone.
    func kill9(_ name: String) async throws {
        guard let member = members[name] else { throw SupportError("no process \(name) to kill") }
        members[name]?.killed = true
        kill(member.process.processIdentifier, SIGKILL)
        try await waitForExit(member.process, timeout: .seconds(10))
    }

    /// Starts the process `name` again with the arguments it had.
    func restart(_ name: String) throws {
        guard let member = members[name] else { throw SupportError("no process \(name) to restart") }
        try start(name, member.arguments)
    }

    /// The process id of `name`'s current incarnation.
    func pid(_ name: String) -> Int32? { members[name].map { $0.process.processIdentifier } }

    /// The names of the world's long-running processes, in start order.
    var names: [String] { order }

    /// Processes that are not running although the test did not kill them (each with its exit
    /// status and the end of its log): every process must keep going, or recover, by itself.
    var unexpectedExits: [String] {
        order.compactMap { name in
            guard let member = members[name], !member.stopped, !member.killed, !member.process.isRunning else { return nil }
            let tail = output(name).split(separator: "\n").suffix(6).joined(separator: "\n")
            return "\(name) exited with status \(member.process.terminationStatus):\n\(tail)"
        }
    }

    /// What a process printed over all its incarnations.
    func output(_ name: String) -> String {
        (try? String(contentsOf: directory.appendingPathComponent("\(name).log"), encoding: .utf8)) ?? ""
    }

    /// The last lines of every process's output, for a failure message.
    var outputs: String {
        order.map { name in
            let lines = output(name).split(separator: "\n").suffix(8)
            return "[\(name)]\n" + lines.joined(separator: "\n")
        }.joined(separator: "\n")
    }

    // MARK: - The world

    /// Creates the topics, issues the front desk's key, and starts the departments (simulators
    /// deciding on the world's clock, tax writing `paymentsPerSecond` payment rows a second), their
    /// connectors, the orchestrator and the gateway; returns once the gateway listens.
    func startAll(paymentsPerSecond: Int) async throws {
        let topics = try await run(["topics", "apply"] + busArguments)
        guard topics.status == 0 else {
            throw SupportError("topics apply exited \(topics.status): \(String(decoding: topics.error, as: UTF8.self))")
        }
        let keys = directory.appendingPathComponent("access.sqlite").path
        let issued = try await run([
            "grants", "create", "front-desk", "--kind", "downstream", "--grant", "submit:house-transfer", "--key-only",
            "--store", keys, "--audit", directory.appendingPathComponent("audit.sqlite").path,
        ])
        guard issued.status == 0 else {
            throw SupportError("grants create exited \(issued.status): \(String(decoding: issued.error, as: UTF8.self))")
        }
        frontDeskKey = String(decoding: issued.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)

        for department in Self.departments {
            try start(
                "sim-\(department)", ["dept-sim", department, "--decide", "--speed", "\(speed)", "--log-level", "warning"])
        }
        for department in Self.departments {
            let database = directory.appendingPathComponent("var/departments/\(department).sqlite").path
            for _ in 0..<600 where !FileManager.default.fileExists(atPath: database) {
                try await Task.sleep(for: .milliseconds(50))
            }
            if department == "tax" {
                // The department events: payment rows written by a second simulator process on the
                // same database, stopped (``stopGenerating()``) before the world drains.
                try start(
                    "generator-tax",
                    [
                        "dept-sim", "tax", "--generate", "\(paymentsPerSecond)", "--table", "tax_payments",
                        "--update-fraction", "0", "--random-seed", "12", "--log-level", "warning",
                    ])
            }
            try start(
                "connector-\(department)",
                ["connector", "run", "Connectors/\(department).yaml", "--log-level", "warning"] + busArguments)
        }
        // A second's session: a restarted orchestrator takes the partitions of the killed one after a
        // second on the embedded log instead of ten (on Kafka the properties file sets six).
        try start(
            "orchestrator",
            [
                "orchestrator", "run", "--store", storePath, "--clock-speed", "\(speed)", "--log-level", "warning",
                "--session-timeout", bus == .embedded ? "1" : "6",
            ] + busArguments)
        try start(
            "gateway",
            [
                "gateway", "--port", "\(gatewayPort)", "--store", "var/gateway.sqlite", "--view", "var/view.sqlite",
                "--keys", keys, "--audit", "var/audit.sqlite", "--log-level", "warning",
            ] + busArguments)
        guard await waitForListenerAsync(gatewayPort) else {
            throw SupportError("the gateway did not listen on \(gatewayPort):\n\(output("gateway"))")
        }
    }

    /// Starts the household registry's two connectors of the source kinds a department pushes to,
    /// each from a file of its own written into the world's `Connectors/`: `connector-webhook`
    /// (births POSTed to `http://127.0.0.1:PORT/births`, the posted body being the event body) and
    /// `connector-file-drop` (deaths as CSV lines of files in ``dropDirectory``, read 200 ms after
    /// they settle); returns once the webhook listens.
    func startEventSources() async throws {
        let connectors = directory.appendingPathComponent("Connectors")
        try """
        name: household-webhook
        department: household-registry
        sources:
          - kind: webhook
            listen: 127.0.0.1:\(webhookPort)
            path: /births
            type: household.birth.registered

        """.write(to: connectors.appendingPathComponent("household-webhook.yaml"), atomically: true, encoding: .utf8)
        try """
        name: household-file-drop
        department: household-registry
        sources:
          - kind: file-drop
            directory: \(dropDirectory.path)
            format: csv
            type: household.death.registered
            interval: 200ms
            settle: 200ms
            mapping:
              /residentId: {column: id_no}
              /name: {column: name}
              /dateOfDeath: {column: death_date, convert: date}
              /registeredAt: {column: registered_at, convert: date-time}

        """.write(to: connectors.appendingPathComponent("household-file-drop.yaml"), atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(at: dropDirectory, withIntermediateDirectories: true)
        for (name, file) in [("connector-webhook", "household-webhook"), ("connector-file-drop", "household-file-drop")] {
            try start(name, ["connector", "run", "Connectors/\(file).yaml", "--log-level", "warning"] + busArguments)
        }
        guard await waitForListenerAsync(webhookPort) else {
            throw SupportError("the webhook connector did not listen on \(webhookPort):\n\(output("connector-webhook"))")
        }
    }

    /// Files in the drop folder that a drained file-drop connector did not finish: any left in the
    /// folder itself, and any moved to `failed/`.
    var dropFolderLeftovers: [String] {
        let manager = FileManager.default
        let waiting = ((try? manager.contentsOfDirectory(atPath: dropDirectory.path)) ?? []).filter { $0 != "done" && $0 != "failed" }
        let failed = (try? manager.contentsOfDirectory(atPath: dropDirectory.appendingPathComponent("failed").path)) ?? []
        return waiting + failed.map { "failed/\($0)" }
    }

    /// Stops the tax simulator's row generator with SIGTERM (it finishes the row under way).
    func stopGenerating() async throws {
        guard let member = members["generator-tax"] else { return }
        members["generator-tax"]?.stopped = true
        kill(member.process.processIdentifier, SIGTERM)
        try await waitForExit(member.process, timeout: .seconds(30))
    }

    /// Stops every process with SIGTERM (the departments last, so what the connectors queued is
    /// decided and sent), and waits for them; the names of those that did not exit 0.
    @discardableResult
    func stopAll() async -> [String] {
        var unclean: [String] = []
        let running = order.filter { members[$0]?.stopped == false }
        for group in [running.filter { !$0.hasPrefix("sim-") }, running.filter { $0.hasPrefix("sim-") }] {
            for name in group {
                members[name]?.stopped = true
                if let process = members[name]?.process, process.isRunning { kill(process.processIdentifier, SIGTERM) }
            }
            for name in group {
                guard let process = members[name]?.process else { continue }
                if (try? await waitForExit(process, timeout: .seconds(30))) == nil {
                    kill(process.processIdentifier, SIGKILL)
                    unclean.append("\(name) (did not stop within 30 s of SIGTERM)")
                } else if process.terminationReason != .exit || process.terminationStatus != 0 {
                    unclean.append("\(name) (ended with \(process.terminationStatus))")
                }
            }
        }
        return unclean
    }

    /// A reader of the world's bus for the test's own checks (on Kafka through the proxy, when
    /// there is one, as every client).
    func reader() throws -> any EventLog {
        switch bus {
        case .embedded:
            return try EmbeddedLog(path: directory.appendingPathComponent("bus.sqlite").path)
        case .kafka, .kafkaBehindProxy:
            var configuration = KafkaConfiguration(bootstrapServers: [String(address.dropFirst("kafka:".count))])
            configuration.properties["session.timeout.ms"] = "6000"
            configuration.properties["heartbeat.interval.ms"] = "500"
            return try KafkaLog(configuration: configuration)
        }
    }

    /// A department's database file.
    func departmentDatabase(_ department: String) -> String {
        directory.appendingPathComponent("var/departments/\(department).sqlite").path
    }

    // MARK: - Resources

    /// The resident memory (kB, `VmRSS`) and open descriptors (entries of `/proc/PID/fd`) of the
    /// process `name` now; `nil` when it is not running.
    func sample(_ name: String) -> ResourceSample? {
        guard let member = members[name], member.process.isRunning else { return nil }
        return ResourceSample(pid: member.process.processIdentifier)
    }
}

/// One look at a process's resources in `/proc`.
struct ResourceSample: Sendable {
    var rssKB: Int
    var descriptors: Int

    init?(pid: Int32) {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? ""),
            let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")
        else { return nil }
        rssKB = kb
        descriptors = fds.count
    }
}

/// ``waitForListener(_:)`` without blocking a thread of the cooperative pool: up to 30 s.
func waitForListenerAsync(_ port: Int) async -> Bool {
    for _ in 0..<300 {
        if acceptsConnections(port: port) { return true }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return false
}
