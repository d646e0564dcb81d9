import Connectors
import EventLog
import EventSchemas
import Foundation
import GRDB
import Retrying
import TestCleanup
import Testing
import TestSupport

/// The `onewindow connector run` process as a supervisor sees it: SIGTERM stops it cleanly
/// without losing or repeating what it had read; an error it cannot get past makes it exit with
/// a status that asks for a restart.
@Suite("Connector process stop", .timeLimit(.minutes(4)), .awaitedCleanup)
struct GracefulStopTests {
    static let type = "tax.payment.received"

    /// The department writes rows while the connector publishes them and a file sink writes them
    /// out; SIGTERM arrives mid-stream. The process exits 0 without an error-level line (the
    /// webhook and metrics HTTP servers included), and after a restart every row is on the bus
    /// once and in the sink's files once: the batches in flight were finished and committed.
    @Test func sigtermMidStreamStopsCleanlyAndARestartRepeatsNothing() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let table = try ExampleTable(type: Self.type, table: "payments", catalog: catalog)
        let department = try bench.departmentDatabase()
        try await department.write { db in try db.execute(sql: table.createSQL) }
        let out = bench.path("out")
        let file = bench.path("connector.yaml")
        try """
        name: graceful-\(bench.unique)
        department: tax
        database: \(bench.path("department.sqlite"))
        state: \(bench.path("state.sqlite"))
        metrics: 127.0.0.1:\(freePort())
        sources:
          - kind: table
            table: payments
            cursor: change_seq
            version: version
            type: \(Self.type)
            interval: 50ms
            batch: 20
            mapping:
        \(table.mappingYAML)
          - kind: webhook
            listen: 127.0.0.1:\(freePort())
            path: /payments
            type: \(Self.type)
        sinks:
          - kind: file
            topics: [\(Self.type)]
            directory: \(out)
        """.write(toFile: file, atomically: true, encoding: .utf8)

        let total = 3000
        let writer = Task {
            for start in stride(from: 0, to: total, by: 20) {
                try await department.write { db in for _ in start..<min(start + 20, total) { try table.insert(db) } }
                try await Task.sleep(for: .milliseconds(15))
            }
        }
        let published = TopicProgress(log: bench.log, topic: Self.type, idPrefix: "tax/payments/")
        let first = try ConnectorProcess(file, bus: bench.busAddress)
        try await bench.eventually("the connector publishing and the sink writing", seconds: 60) {
            try await published.distinct() >= 100 && !Self.lines(in: out).isEmpty
        }
        let first_ = await first.stop()
        #expect(first_.status == 0, "SIGTERM stops the connector with status 0:\n\(first_.errorText)")
        #expect(first_.errorLines.isEmpty, "a clean stop logs no error: \(first_.errorLines)")
        #expect(first_.errorText.contains("stopped:"), "the connector says it stopped:\n\(first_.errorText)")
        let atStop = try await published.distinct()
        #expect(atStop < total, "stopped mid-stream")

        try await writer.value
        let second = try ConnectorProcess(file, bus: bench.busAddress)
        try await bench.eventually("every row published and written", seconds: 120) {
            try await published.distinct() == total && Self.lines(in: out).count >= total
        }
        try await Task.sleep(for: .milliseconds(500))
        let second_ = await second.stop()
        #expect(second_.status == 0)
        #expect(second_.errorLines.isEmpty, "a clean stop logs no error: \(second_.errorLines)")

        let onBus = try await bench.events(on: Self.type, idPrefix: "tax/payments/", deduplicate: false)
        #expect(onBus.count == total, "each row published once, none repeated after the restart")
        let ids = try Self.lines(in: out).map { line -> String in
            guard case .string(let id)? = try JSONValue.parse(Data(line.utf8))[pointer: "/id"] else { return "" }
            return id
        }
        #expect(ids.count == total, "each event written once by the file sink")
        #expect(Set(ids).count == total)
    }

    /// SIGTERM while a part retries (here: its topic not created yet) stops the connector at once,
    /// with status 0 and no error line — not after the 20 s a part may take to finish its batch,
    /// and not as a failure: what it had not published is read again at the next start.
    @Test func sigtermWhileAPartRetriesStopsAtOnceWithStatusZero() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let table = try await bench.paymentsTable(type: Self.type)
        let file = bench.path("connector.yaml")
        try bench.tableConnectorYAML("retrying", table: table, type: Self.type)
            .write(toFile: file, atomically: true, encoding: .utf8)
        // A log of its own with no topics: publishing is retried until they are created.
        let process = try ConnectorProcess(file, bus: "embedded:" + bench.path("no-topics.sqlite"))
        try await Task.sleep(for: .seconds(3))
        let started = ContinuousClock.now
        let result = await process.stop()
        #expect(result.status == 0, "SIGTERM while retrying stops with status 0:\n\(result.errorText)")
        #expect(result.errorLines.isEmpty, "no error line: \(result.errorLines)")
        #expect(result.errorText.contains("pausing and retrying"), "the part was retrying when stopped:\n\(result.errorText)")
        #expect(ContinuousClock.now - started < .seconds(15), "it did not wait out the 20 s a batch may take")
    }

    /// The department's table dropped under a running connector: its source cannot go on, so the
    /// process exits with status 75 and a critical line saying why and that a supervisor should
    /// restart it — instead of retrying for ever.
    @Test func anErrorRetryingCannotFixExitsWithTheRestartStatus() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let table = try await bench.paymentsTable(type: Self.type)
        let department = try bench.departmentDatabase()
        let file = bench.path("connector.yaml")
        try bench.tableConnectorYAML("fatal", table: table, type: Self.type)
            .write(toFile: file, atomically: true, encoding: .utf8)
        let process = try ConnectorProcess(file, bus: bench.busAddress)
        try await bench.eventually("the first row published", seconds: 60) {
            try await !bench.events(on: Self.type, idPrefix: "tax/payments/").isEmpty
        }
        try await department.write { db in try db.execute(sql: "DROP TABLE payments") }
        let result = await process.wait(timeout: .seconds(30))
        #expect(result.status == ConnectorFailure.exitStatus, "exit status \(result.status):\n\(result.errorText)")
        let critical = result.lines(at: "critical")
        #expect(critical.count == 1, "one critical line: \(critical)")
        #expect(critical.first?.contains("no such table") == true)
        #expect(critical.first?.contains("supervisor") == true)
    }

    /// `onewindow dept-sim` with both loops (generating and deciding), each a service of one
    /// group: SIGTERM stops them after the transaction under way, with status 0 and no error line;
    /// without --decide, the generator reaching --count ends the process by itself, also with 0.
    @Test func deptSimStopsOnSigtermAndAtItsCountWithStatusZero() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deptsim-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let db = directory.appendingPathComponent("tax.sqlite").path
        let running = try OneWindowProcess(["dept-sim", "tax", "--db", db, "--seed", "--generate", "200", "--decide", "--speed", "86400"])
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            // Only once dept-sim made the file (opening it first would create it), and waiting for its locks.
            let rows =
                FileManager.default.fileExists(atPath: db)
                ? try? await sharedDatabase(db).read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM tax_payments") }
                : nil
            if (rows ?? 0) > 20 { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let stopped = await running.stop()
        #expect(stopped.status == 0, "SIGTERM stops dept-sim with status 0:\n\(stopped.errorText)")
        #expect(stopped.errorLines.isEmpty, "\(stopped.errorLines)")
        #expect(stopped.errorText.contains("tax: stopped"))

        let counted = try OneWindowProcess(["dept-sim", "tax", "--db", db, "--generate", "max", "--count", "50"])
        let done = await counted.wait(timeout: .seconds(60))
        #expect(done.status == 0, "\(done.errorText)")
        #expect(done.errorLines.isEmpty, "\(done.errorLines)")
    }

    /// The sink's output lines, every file.
    static func lines(in directory: String) throws -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return try names.filter { $0.hasSuffix(".jsonl") }.flatMap { name in
            try String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8).split(separator: "\n").map(String.init)
        }
    }
}

/// `onewindow connector run FILE` as a child process, its standard error collected.
typealias ConnectorProcess = OneWindowProcess

extension OneWindowProcess {
    init(_ file: String, bus: String) throws {
        try self.init(["connector", "run", file, "--bus", bus, "--log-level", "info"])
    }
}

/// An `onewindow` child process, its standard error collected.
struct OneWindowProcess {
    let process: ChildProcess
    let collected: Task<ProcessOutput, Never>

    init(_ arguments: [String]) throws {
        let process = childProcess(try onewindowExecutable(), arguments)
        process.currentDirectoryURL = repositoryRoot
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        self.process = process
        collected = Task { await collect(process, output: output, error: error, timeout: .seconds(120)) }
    }

    /// Sends SIGTERM and waits for the process to end (SIGKILL after 40 s).
    func stop() async -> Result {
        kill(process.processIdentifier, SIGTERM)
        return await wait(timeout: .seconds(40))
    }

    /// Waits for the process to end by itself (SIGKILL after `timeout`).
    func wait(timeout: Duration) async -> Result {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(100)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        return Result(output: await collected.value)
    }

    struct Result {
        let output: ProcessOutput
        var status: Int32 { output.status }
        var errorText: String { String(decoding: output.error, as: UTF8.self) }
        /// The log lines at a level (swift-log's stream handler: `<time> <level> <label>: …`).
        func lines(at level: String) -> [String] {
            errorText.split(separator: "\n").map(String.init).filter { line in
                line.split(separator: " ", maxSplits: 2).dropFirst().first.map(String.init) == level
            }
        }
        var errorLines: [String] { lines(at: "error") + lines(at: "critical") }
    }
}
