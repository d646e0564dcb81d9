import Connectors
import DepartmentSystems
import EventLog
import EventModel
import Foundation
import GRDB
import TestCleanup
import Testing
import TestSupport

/// A simulated department system (its own SQLite database, realistic rows, bad ones among them)
/// bridged by its real connector file from Connectors/, on both backends.
@Suite("Department systems through their connector files", .timeLimit(.minutes(3)), .awaitedCleanup)
struct DepartmentEndToEndTests {
    @Test(arguments: Backend.allCases)
    func taxRowsReachTheirTopicsOrTheDeadLetters(_ backend: Backend) async throws {
        let bench = try await Workbench(backend)
        atEnd { await bench.tearDown() }
        let path = bench.path("tax.sqlite")
        let department = try DepartmentDatabase.open(.tax, path: path)
        _ = try await department.seed()
        let generator = try RowGenerator(
            database: department, options: .init(tables: ["tax_payments"], badFraction: 0.1, updateFraction: 0, seed: 7))
        let report = try await generator.write(200)
        #expect(report.bad == 20)

        // The repository's own file, pointed at this test's database and state.
        var yaml = try String(contentsOf: repositoryRoot.appendingPathComponent("Connectors/tax.yaml"), encoding: .utf8)
        yaml = yaml.replacingOccurrences(of: "database: var/departments/tax.sqlite", with: "database: \(path)")
        yaml = yaml.replacingOccurrences(of: "name: tax\n", with: "name: tax-\(bench.unique)\nstate: \(bench.path("state.sqlite"))\n")
        let connector = try RunningConnector(yaml, on: bench)
        let payments = try department.count("tax_payments")
        try await bench.eventually("every payment row on the bus or dead-lettered", seconds: 90) {
            let published = try await bench.events(on: "tax.payment.received", idPrefix: "tax/tax_payments/").count
            let dead = try await bench.events(on: catalog.deadLetterTopic, idPrefix: "tax/tax_payments/").count
            return published + dead == payments
        }
        await connector.stop()
        let dead = try await bench.events(on: catalog.deadLetterTopic, idPrefix: "tax/tax_payments/")
        let deadIds = Set(dead.compactMap { $0.header("ce_id") })
        let expected = Set(report.badRows.filter { $0.table == "tax_payments" }.map { "tax/tax_payments/\($0.id)/1" })
        #expect(deadIds == expected, "exactly the spoiled rows are refused")
        for record in dead {
            #expect(["schema-violation", "mapping-failed"].contains(record.header("dl_code") ?? ""), "\(record.header("dl_reason") ?? "")")
        }
    }
}
