import Connectors
import EventLog
import EventSchemas
import Foundation
import GRDB
import Synchronization
import TestCleanup
import Testing
import TestSupport

/// A connector process killed with SIGKILL at random moments while the department writes rows:
/// after restarts, consumers that drop repeated ids see every row once, none missing.
@Suite("Connector crash safety", .timeLimit(.minutes(5)), .awaitedCleanup)
struct CrashTests {
    @Test func sigkillAtRandomMomentsLosesNothing() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let table = try ExampleTable(type: "tax.payment.received", table: "payments", catalog: catalog)
        let department = try bench.departmentDatabase()
        try await department.write { db in try db.execute(sql: table.createSQL) }
        let file = bench.path("connector.yaml")
        try """
        name: crash-\(bench.unique)
        department: tax
        database: \(bench.path("department.sqlite"))
        state: \(bench.path("state.sqlite"))
        sources:
          - kind: table
            table: payments
            cursor: change_seq
            version: version
            type: tax.payment.received
            interval: 50ms
            batch: 100
            mapping:
        \(table.mappingYAML)
        """.write(toFile: file, atomically: true, encoding: .utf8)

        let total = 6000
        // The department writes rows while the connector is being killed.
        let writer = Task {
            for start in stride(from: 0, to: total, by: 20) {
                try await department.write { db in for _ in start..<min(start + 20, total) { try table.insert(db) } }
                try await Task.sleep(for: .milliseconds(15))
            }
        }
        let published = TopicProgress(log: bench.log, topic: "tax.payment.received", idPrefix: "tax/payments/")
        let kills = try await killRepeatedly(file, bench: bench, progress: published, total: total)
        try await writer.value
        let last = try startConnector(file, bus: bench.busAddress)
        try await bench.eventually("every row", seconds: 120) { try await published.distinct() == total }
        kill(last.processIdentifier, SIGTERM)
        try await waitForExit(last)
        #expect(last.terminationStatus == 0, "SIGTERM stops the connector cleanly")

        #expect(published.ids == Set((1...total).map { "tax/payments/\($0)/1" }), "every row once, none missing")
        #expect(published.conflicting.isEmpty, "a repeated id carries the same event: \(published.conflicting.prefix(3))")
        let midPublish = kills.filter { $0.before < $0.atKill && $0.atKill < total }
        #expect(midPublish.count >= 3, "killed while publishing, several times: \(kills)")
    }

    /// Starts the connector and kills it with SIGKILL, five times, each time once it has published
    /// something (so the kill lands while it is at work), after a random moment more.
    func killRepeatedly(_ file: String, bench: Workbench, progress: TopicProgress, total: Int) async throws -> [Kill] {
        var generator = SystemRandomNumberGenerator()
        var kills: [Kill] = []
        for _ in 0..<5 {
            let before = try await progress.distinct()
            let process = try startConnector(file, bus: bench.busAddress)
            try await bench.eventually("the connector publishing", seconds: 60) {
                let now = try await progress.distinct()
                return now > before || now == total
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...150, using: &generator)))
            kill(process.processIdentifier, SIGKILL)
            let atKill = try await progress.distinct()
            try await waitForExit(process)
            #expect(process.terminationReason == .uncaughtSignal)
            kills.append(Kill(before: before, atKill: atKill))
        }
        return kills
    }

    struct Kill: CustomStringConvertible {
        /// Distinct events on the bus when the process started, and just after it was killed.
        let before: Int
        let atKill: Int
        var description: String { "\(before)→\(atKill)" }
    }

    @Test func sigkillInTheMiddleOfADroppedFileLosesNoLine() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let drop = bench.path("drop")
        try FileManager.default.createDirectory(atPath: drop, withIntermediateDirectories: true)
        let total = 30000
        var example = try #require(catalog.schemas["tax.payment.received"]?.examples.first)
        var lines: [String] = []
        for line in 1...total {
            example.set(.string(String(format: "3440662503%08d", line)), at: "/voucherNumber")
            lines.append(String(decoding: example.serialized(), as: UTF8.self))
        }
        let name = "payments.jsonl"
        try lines.joined(separator: "\n").write(toFile: "\(drop)/\(name)", atomically: true, encoding: .utf8)
        let file = bench.path("connector.yaml")
        try """
        name: crash-drop-\(bench.unique)
        department: tax
        state: \(bench.path("state.sqlite"))
        sources:
          - kind: file-drop
            directory: \(drop)
            format: jsonl
            type: tax.payment.received
            interval: 50ms
            settle: 0ms
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let prefix = "tax/\(name)/"
        let published = TopicProgress(log: bench.log, topic: "tax.payment.received", idPrefix: prefix)
        let kills = try await killRepeatedly(file, bench: bench, progress: published, total: total)
        let last = try startConnector(file, bus: bench.busAddress)
        try await bench.eventually("the file done", seconds: 120) { FileManager.default.fileExists(atPath: "\(drop)/done/\(name)") }
        kill(last.processIdentifier, SIGTERM)
        try await waitForExit(last)

        #expect(try await published.distinct() == total)
        let lineNumbers = Set(published.ids.compactMap { $0.split(separator: "/").last.flatMap { Int($0) } })
        #expect(lineNumbers == Set(1...total), "every line once by id, none missing")
        #expect(Set(published.ids.map { $0.split(separator: "/").dropLast().joined(separator: "/") }).count == 1, "one fingerprint")
        #expect(published.conflicting.isEmpty, "a repeated id carries the same line")
        let midFile = kills.filter { $0.before < $0.atKill && $0.atKill < total }
        #expect(midFile.count >= 3, "killed in the middle of the file, several times: \(kills)")
    }

    func startConnector(_ file: String, bus: String) throws -> ChildProcess {
        let process = childProcess(
            try onewindowExecutable(), ["connector", "run", file, "--bus", bus, "--log-level", "warning"])
        process.currentDirectoryURL = repositoryRoot
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }
}

/// Follows a topic as it grows: the distinct event ids with a prefix, and any id seen twice with a
/// different value (which deterministic ids must never produce).
final class TopicProgress: Sendable {
    struct State {
        var offsets: [Int: Int64] = [:]
        var values: [String: [UInt8]] = [:]
        var conflicting: [String] = []
    }

    let log: any EventLog
    let topic: String
    let idPrefix: String
    private let state = Mutex(State())

    init(log: any EventLog, topic: String, idPrefix: String) {
        self.log = log
        self.topic = topic
        self.idPrefix = idPrefix
    }

    var ids: Set<String> { state.withLock { Set($0.values.keys) } }
    var conflicting: [String] { state.withLock { $0.conflicting } }

    /// Reads what was appended since the last call; the number of distinct ids so far.
    func distinct() async throws -> Int {
        let partitions = try await log.describeTopics([topic]).first?.partitions.count ?? 0
        for partition in 0..<partitions {
            while true {
                let from = state.withLock { $0.offsets[partition] ?? 0 }
                let batch = try await log.read(TopicPartition(topic, partition), from: from, maxRecords: 5000)
                guard let last = batch.last else { break }
                state.withLock { state in
                    for record in batch {
                        guard let id = record.header("ce_id"), id.hasPrefix(idPrefix) else { continue }
                        let value = Array(record.value)
                        if let earlier = state.values[id] {
                            if earlier != value { state.conflicting.append(id) }
                        } else {
                            state.values[id] = value
                        }
                    }
                    state.offsets[partition] = last.offset + 1
                }
            }
        }
        return state.withLock { $0.values.count }
    }
}
