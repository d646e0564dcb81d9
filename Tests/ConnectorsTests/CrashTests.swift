import Connectors
import EventLog
import Foundation
import GRDB
import Testing
import TestSupport

/// A connector process killed with SIGKILL at random moments while the department writes rows:
/// after restarts, consumers that drop repeated ids see every row once, none missing.
@Suite("Connector crash safety", .timeLimit(.minutes(5)))
struct CrashTests {
    @Test func sigkillAtRandomMomentsLosesNothing() async throws {
        let bench = try await Workbench(.embedded)
        defer { Task { await bench.tearDown() } }
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

        let total = 3000
        // The department writes rows while the connector is being killed.
        let writer = Task {
            for start in stride(from: 0, to: total, by: 20) {
                try await department.write { db in for _ in start..<min(start + 20, total) { try table.insert(db) } }
                try await Task.sleep(for: .milliseconds(15))
            }
        }
        var generator = SystemRandomNumberGenerator()
        var kills = 0
        for _ in 0..<5 {
            let process = try startConnector(file, bus: bench.busAddress)
            try await Task.sleep(for: .milliseconds(Int.random(in: 300...1200, using: &generator)))
            kill(process.processIdentifier, SIGKILL)
            try await waitForExit(process)
            #expect(process.terminationReason == .uncaughtSignal)
            kills += 1
        }
        try await writer.value
        let last = try startConnector(file, bus: bench.busAddress)
        try await bench.eventually("every row", seconds: 120) {
            try await bench.events(on: "tax.payment.received", idPrefix: "tax/payments/").count == total
        }
        kill(last.processIdentifier, SIGTERM)
        try await waitForExit(last)
        #expect(last.terminationStatus == 0, "SIGTERM stops the connector cleanly")

        let events = try await bench.events(on: "tax.payment.received", idPrefix: "tax/payments/")
        let ids = Set(events.compactMap { $0.header("ce_id") })
        #expect(ids == Set((1...total).map { "tax/payments/\($0)/1" }), "every row once, none missing")
        let raw = try await rawCount(bench, topic: "tax.payment.received", prefix: "tax/payments/")
        #expect(raw >= total)
        #expect(kills == 5)
    }

    func startConnector(_ file: String, bus: String) throws -> Process {
        let process = Process()
        process.executableURL = try onewindowExecutable()
        process.arguments = ["connector", "run", file, "--bus", bus, "--log-level", "warning"]
        process.currentDirectoryURL = repositoryRoot
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }
}

