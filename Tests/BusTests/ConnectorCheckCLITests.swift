import Foundation
import Testing
import TestSupport

/// `onewindow connector check` catches what `connector run` would fail on, each problem with the
/// file and line; `connector run` names a missing department database instead of SQLite's error.
@Suite("onewindow connector check", .timeLimit(.minutes(3)))
struct ConnectorCheckCLITests {
    /// A folder with a connector file written from `text` (its `DATABASE` replaced).
    struct Folder {
        let directory: URL
        let file: String
        let database: String

        init(_ text: String, database name: String = "tax.sqlite") throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "connector-check-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            database = directory.appendingPathComponent(name).path
            file = directory.appendingPathComponent("tax.yaml").path
            let state = directory.appendingPathComponent("state.sqlite").path
            try text.replacingOccurrences(of: "DATABASE", with: database).replacingOccurrences(of: "STATE", with: state)
                .write(toFile: file, atomically: true, encoding: .utf8)
        }

        /// Creates the simulated tax bureau's database.
        func seed() async throws {
            let seeded = try await runOnewindow(["dept-sim", "tax", "--seed", "--db", database])
            #expect(seeded.status == 0, "\(seeded.error)")
        }

        func remove() { try? FileManager.default.removeItem(at: directory) }
    }

    static let good = """
        name: tax-check
        department: tax
        database: DATABASE
        state: STATE
        sources:
          - kind: table
            table: tax_payments
            cursor: change_seq
            version: version
            type: tax.payment.received
            time: paid_at
            mapping:
              /taxpayerId: {column: taxpayer_id}
              /taxType: {column: levy_item_code, codes: {"10101": value-added-tax, "10106": individual-income-tax}}
              /amountFen: {column: amount_fen, convert: integer}
              /period: {column: tax_period}
              /voucherNumber: {column: voucher_no}
              /paidAt: {column: paid_at, convert: date-time}
        sinks:
          - kind: inbox
            requests: approval.tax.requested
            decisions: approval.tax.decided

        """

    @Test func aGoodFileAgainstItsDatabaseIsOk() async throws {
        let folder = try Folder(Self.good)
        defer { folder.remove() }
        try await folder.seed()
        let check = try await runOnewindow(["connector", "check", folder.file])
        #expect(check.status == 0, "\(check.error)")
        #expect(check.output.contains("— ok"), "\(check.output)")
    }

    @Test func aMisspeltKeyIsRefusedWithTheLineAndTheNearestKey() async throws {
        let folder = try Folder(Self.good.replacingOccurrences(of: "    time: paid_at", with: "    tiem: paid_at"))
        defer { folder.remove() }
        let check = try await runOnewindow(["connector", "check", folder.file])
        #expect(check.status == 78, "a connector file with problems is a configuration error")
        #expect(check.error.contains("\(folder.file):11:5:"), "\(check.error)")
        #expect(check.error.contains("sources[0].tiem: unknown key; did you mean time?"), "\(check.error)")
    }

    @Test func aMappingToAFieldTheSchemaLacksAndAValueOutsideItsEnumAreRefused() async throws {
        let text = Self.good
            .replacingOccurrences(of: "/voucherNumber: {column: voucher_no}", with: "/voucherNumbr: {column: voucher_no}")
            .replacingOccurrences(of: "\"10106\": individual-income-tax", with: "\"10106\": income-tax")
            .replacingOccurrences(
                of: "sinks:\n",
                with: "  - kind: webhook\n    listen: 127.0.0.1:8499\n    path: /payments\n    type: tax.payment.received\n"
                    + "    mapping:\n      /taxType: {const: wealth-tax}\nsinks:\n")
        let folder = try Folder(text)
        defer { folder.remove() }
        try await folder.seed()
        let check = try await runOnewindow(["connector", "check", folder.file])
        #expect(check.status == 78, "a connector file with problems is a configuration error")
        #expect(
            check.error.contains(
                "sources[0].mapping./voucherNumbr: tax.payment.received has no field voucherNumbr in the body; did you mean voucherNumber?"),
            "\(check.error)")
        #expect(check.error.contains("sources[0].mapping./taxType: code '10106' gives \"income-tax\""), "\(check.error)")
        #expect(check.error.contains("sources[1].mapping./taxType: the constant \"wealth-tax\""), "\(check.error)")
        #expect(check.error.contains("enum"), "\(check.error)")
        #expect(check.error.contains("3 problem(s)"), "\(check.error)")
    }

    @Test func aTableOrColumnTheDatabaseLacksIsRefused() async throws {
        let text = Self.good
            .replacingOccurrences(of: "/period: {column: tax_period}", with: "/period: {column: period}")
            .replacingOccurrences(of: "requests: approval.tax.requested", with: "requests: approval.tax.requested\n    inboxTable: work_queue")
        let folder = try Folder(text)
        defer { folder.remove() }
        try await folder.seed()
        let check = try await runOnewindow(["connector", "check", folder.file])
        #expect(check.status == 78, "a connector file with problems is a configuration error")
        #expect(check.error.contains("table tax_payments has no column period (named by `mapping./period`)"), "\(check.error)")
        #expect(check.error.contains("\(folder.file):16:"), "the line of the mapping: \(check.error)")
        #expect(check.error.contains("has no table work_queue"), "\(check.error)")
    }

    @Test func aMissingDatabaseIsNamedWithHowToCreateItByCheckAndByRun() async throws {
        let folder = try Folder(Self.good, database: "nowhere/tax.sqlite")
        defer { folder.remove() }
        let check = try await runOnewindow(["connector", "check", folder.file])
        #expect(check.status == 78, "a connector file with problems is a configuration error")
        #expect(check.error.contains(folder.database), "\(check.error)")
        #expect(check.error.contains("onewindow dept-sim tax --seed"), "\(check.error)")

        let bus = "embedded:" + folder.directory.appendingPathComponent("bus.sqlite").path
        let run = try await runOnewindow(["connector", "run", folder.file, "--bus", bus], timeout: .seconds(30))
        #expect(run.status != 0 && run.status != -9, "run stops at once")
        #expect(run.error.contains(folder.database), "\(run.error)")
        #expect(run.error.contains("onewindow dept-sim tax --seed"), "\(run.error)")
        #expect(!run.error.contains("SQLite error 14"), "\(run.error)")
        #expect(!FileManager.default.fileExists(atPath: folder.database), "the database is not created")
    }
}
