import CivilTime
import DepartmentSystems
import EventSchemas
import Foundation
import GRDB
import Testing

@Suite struct SchemaTests {
    @Test(arguments: DepartmentID.allCases)
    func migratesAndFollowsTheContract(_ department: DepartmentID) throws {
        let database = try temporaryDatabase(department)
        try database.writer.read { db in
            for table in database.system.sourceTables {
                let columns = try db.columns(in: table.name)
                let id = try #require(columns.first { $0.name == "id" })
                #expect(id.type == "INTEGER")
                #expect(try db.primaryKey(table.name).columns == ["id"])
                let version = try #require(columns.first { $0.name == "version" })
                #expect(version.isNotNull && version.defaultValueSQL == "1")
                let changeSeq = try #require(columns.first { $0.name == "change_seq" })
                #expect(changeSeq.isNotNull)
                #expect(try db.indexes(on: table.name).contains { $0.isUnique && $0.columns == ["change_seq"] })
            }
            if database.system.approves {
                #expect(
                    try db.columns(in: "approval_inbox").map(\.name) == [
                        "event_id", "application_id", "item", "service", "due_by", "payload", "received_at", "status",
                    ])
                #expect(try db.primaryKey("approval_inbox").columns == ["event_id"])
                // The contract's columns, then the facts the department's decisions establish.
                #expect(
                    try db.columns(in: "approval_decisions").map(\.name) == [
                        "seq", "application_id", "item", "decision", "reason", "decided_at", "decided_by",
                        "licence_number",
                    ] + (["real-estate": ["assessed_price_fen"], "tax": ["assessed_tax_fen"]][department.rawValue] ?? []))
            }
            if department == .smsGateway {
                #expect(
                    try Array(db.columns(in: "sms_outbox").map(\.name).prefix(6)) == [
                        "event_id", "mobile", "template", "text", "application_id", "queued_at",
                    ])
            }
        }
        // Opening again migrates nothing twice.
        _ = try DepartmentDatabase(system: database.system, writer: database.writer)
    }

    @Test func approvingDepartmentsAndProcessingDays() {
        let days = Dictionary(
            uniqueKeysWithValues: DepartmentSystem.all.compactMap { system in
                system.policy.map { (system.id, $0.processingDays) }
            })
        #expect(
            days == [
                .householdRegistry: 1, .socialSecurity: 2, .tax: 1, .realEstate: 1, .marketRegulation: 1,
                .foodSafety: 5,
                .fireSafety: 7, .environment: 3, .urbanManagement: 3,
            ])
        #expect(!DepartmentSystem.named(.smsGateway).approves)
    }
}

@Suite struct SeedTests {
    @Test func householdRegistryHasValidResidents() async throws {
        let database = try temporaryDatabase(.householdRegistry)
        let report = try await database.seed()
        #expect((report.rows["residents"] ?? 0) >= 300)
        #expect((report.rows["households"] ?? 0) >= 80)
        try await database.writer.read { db in
            for row in try Row.fetchAll(
                db, sql: "SELECT id_no, name, gender, birth_date, mobile, household_no FROM residents")
            {
                let id: String = row["id_no"]
                #expect(ResidentIDNumber.problem(in: id) == nil, "\(id)")
                #expect(id.hasPrefix("440604"))
                #expect(MobileNumber.problem(in: row["mobile"] as String) == nil)
                // The sex in the ID number's sequence matches the GB/T 2261.1 code.
                let odd = Int(String(Array(id)[16]))! % 2 == 1
                #expect((row["gender"] as String) == (odd ? "1" : "2"))
                #expect(CivilDate(row["birth_date"] as String)?.compact == String(id.dropFirst(6).prefix(8)))
                #expect((2...4).contains((row["name"] as String).count))
            }
            let distinct = try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT id_no) FROM residents")
            #expect(distinct == report.rows["residents"])
        }
        let again = try await database.seed()
        #expect(again.alreadySeeded)
        #expect(try database.count("residents") == report.rows["residents"])
    }

    @Test func companiesHaveValidCreditCodesAndTheSamePeopleAppearEverywhere() async throws {
        let market = try temporaryDatabase(.marketRegulation)
        let population = try temporaryDatabase(.householdRegistry)
        try await market.seed()
        try await population.seed()
        let residents = Set(
            try await population.writer.read { db in try String.fetchAll(db, sql: "SELECT id_no FROM residents") })
        try await market.writer.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT credit_code, legal_rep_id_no FROM enterprises")
            #expect(rows.count == 60)
            for row in rows {
                let code: String = row["credit_code"]
                #expect(UnifiedSocialCreditCode.problem(in: code) == nil, "\(code)")
                #expect(code.dropFirst(2).hasPrefix("440604"))
                #expect(residents.contains(row["legal_rep_id_no"] as String))
            }
        }
    }

    @Test(arguments: DepartmentID.allCases.filter { $0 != .smsGateway })
    func seedRowsAreValidEvents(_ department: DepartmentID) async throws {
        let database = try temporaryDatabase(department)
        try await database.seed(clock: TestWallClock(china("2025-03-03 10:00:00")))
        let configuration = try ConnectorFiles.configuration(for: department)
        for source in ConnectorFiles.tableSources(configuration) {
            let rows = try await database.writer.read { db in try Row.fetchAll(db, sql: "SELECT * FROM \(source.table)")
            }
            for row in rows {
                let problem = refusal(of: row, mapper: .init(rules: source.mapping), type: source.type)
                #expect(problem == nil, "\(department) \(source.table) row \(row["id"] as Int64): \(problem ?? "")")
            }
        }
    }
}

@Suite struct GeneratorTests {
    @Test func writesRowsWithStrictlyIncreasingChangeSeqAndExactlyTheBadFraction() async throws {
        let database = try temporaryDatabase(.householdRegistry)
        let generator = try RowGenerator(
            database: database,
            options: .init(tables: ["birth_registrations"], badFraction: 0.1, updateFraction: 0, seed: 7, maxBatch: 64))
        let report = try await generator.write(1_000)
        #expect(report.inserted == 1_000)
        #expect(report.bad == 100)
        #expect(report.updated == 0)
        #expect(Set(report.badRows.map(\.kind)) == Set(BadRowKind.allCases))
        let sequences = try await database.writer.read { db in
            try Int64.fetchAll(db, sql: "SELECT change_seq FROM birth_registrations ORDER BY id")
        }
        #expect(sequences.count == 1_000)
        #expect(zip(sequences, sequences.dropFirst()).allSatisfy { $0 < $1 })
        #expect(sequences.first == 1)
    }

    @Test func aDeletedRowsChangeSeqIsNeverHandedOutAgain() async throws {
        let database = try temporaryDatabase(.tax)
        let generator = try RowGenerator(
            database: database, options: .init(tables: ["tax_payments"], updateFraction: 0, seed: 5))
        _ = try await generator.write(5)
        // The department deletes its newest row; MAX(change_seq) + 1 would give its value to the next write.
        let deleted = try await database.writer.write { db -> Int64 in
            let top = try #require(try Int64.fetchOne(db, sql: "SELECT MAX(change_seq) FROM tax_payments"))
            try db.execute(sql: "DELETE FROM tax_payments WHERE change_seq = ?", arguments: [top])
            return top
        }
        _ = try await generator.write(1)
        let next = try await database.writer.read { db in
            try Int64.fetchOne(db, sql: "SELECT MAX(change_seq) FROM tax_payments")
        }
        #expect(next == deleted + 1)
    }

    @Test func ratesAndLimitsStopTheRun() async throws {
        let database = try temporaryDatabase(.tax)
        let generator = try RowGenerator(database: database, options: .init(seed: 3))
        let report = try await generator.run(rate: .infinity, limit: .count(2_500), shouldStop: { false })
        #expect(report.written == 2_500)
        #expect(Set(report.byTable.keys) == ["taxpayers", "tax_payments", "clearance_certificates"])
        let stopped = try await generator.run(rate: 100, limit: .unlimited, shouldStop: { true })
        #expect(stopped.written == 0)
    }

    @Test func updatesBumpVersionAndChangeSeq() async throws {
        let database = try temporaryDatabase(.socialSecurity)
        let generator = try RowGenerator(
            database: database, options: .init(tables: ["contributions"], updateFraction: 0.25, seed: 11))
        let report = try await generator.write(400)
        #expect(report.updated == 100)
        #expect(report.inserted == 300)
        try await database.writer.read { db in
            let updated = try Row.fetchAll(
                db, sql: "SELECT id, version, change_seq FROM contributions WHERE version > 1")
            #expect(!updated.isEmpty)
            #expect(try Int.fetchOne(db, sql: "SELECT SUM(version - 1) FROM contributions") == 100)
            // Every write took the next change_seq: 300 inserts and 100 updates.
            #expect(try Int64.fetchOne(db, sql: "SELECT MAX(change_seq) FROM contributions") == 400)
            #expect(try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT change_seq) FROM contributions") == 300)
            // An updated row's change_seq is past every insert that came before it.
            for row in updated {
                let id: Int64 = row["id"]
                let seq: Int64 = row["change_seq"]
                #expect(seq > id)
            }
        }
    }

    @Test func unknownTablesAreRefused() throws {
        let database = try temporaryDatabase(.tax)
        #expect(throws: DepartmentSimulatorError.self) {
            try RowGenerator(database: database, options: .init(tables: ["births"]))
        }
    }
}
