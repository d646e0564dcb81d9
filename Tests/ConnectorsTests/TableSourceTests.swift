import Bus
import Connectors
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import TestCleanup
import Testing
import TestSupport

/// The table source's cursor and its start-up checks.
@Suite("Table source cursor and columns", .timeLimit(.minutes(3)), .awaitedCleanup)
struct TableSourceTests {
    static let type = "tax.payment.received"

    /// A payments table whose cursor column allows ties (several rows written in one transaction
    /// can share a value): rows 1…10 with change_seq 1,1,1,2,2,2,2,3,3,3.
    static func tiedTable(_ bench: Workbench) async throws -> (ExampleTable, DatabasePool) {
        let table = try ExampleTable(type: type, table: "payments_\(bench.unique)", catalog: catalog)
        let department = try bench.departmentDatabase()
        try await department.write { db in
            try db.execute(sql: table.createSQL.replacingOccurrences(of: "change_seq INTEGER NOT NULL UNIQUE", with: "change_seq INTEGER NOT NULL"))
            try db.execute(sql: "CREATE INDEX \(table.table)_seq ON \(table.table) (change_seq)")
            for _ in 0..<10 { try table.insert(db) }
            for (id, seq) in zip(1...10, [1, 1, 1, 2, 2, 2, 2, 3, 3, 3]) {
                try db.execute(sql: "UPDATE \(table.table) SET change_seq = ? WHERE id = ?", arguments: [seq, id])
            }
        }
        return (table, department)
    }

    static func yaml(_ bench: Workbench, _ table: ExampleTable, extra: String = "") -> String {
        """
        name: ties-\(bench.unique)
        department: tax
        database: \(bench.path("department.sqlite"))
        state: \(bench.path("state.sqlite"))
        sources:
          - kind: table
            table: \(table.table)
            cursor: change_seq
            type: \(type)
            interval: 50ms
            batch: 3
        \(extra)
            mapping:
        \(table.mappingYAML)
        """
    }

    @Test func rowsSharingACursorValueAcrossABatchBoundaryAreAllRead() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let (table, department) = try await Self.tiedTable(bench)
        let prefix = "tax/\(table.table)/"
        // Batches of 3 end inside the run of 2s (rows 4-6 | 7) and inside the run of 3s (rows 8-9 | 10).
        let connector = try RunningConnector(Self.yaml(bench, table), on: bench)
        try await bench.eventually("all 10 rows") { try await bench.events(on: Self.type, idPrefix: prefix).count == 10 }
        // A row added later with the current top value (a tie with what was already read) is read too.
        try await department.write { db in
            try table.insert(db)
            try db.execute(sql: "UPDATE \(table.table) SET change_seq = 3 WHERE id = 11")
        }
        try await bench.eventually("the late tie") { try await bench.events(on: Self.type, idPrefix: prefix).count == 11 }
        await connector.stop()
        let ids = try await bench.events(on: Self.type, idPrefix: prefix, deduplicate: false).compactMap { $0.header("ce_id") }
        #expect(Set(ids) == Set((1...11).map { "\(prefix)\($0)/1" }))
        #expect(ids.count == 11, "no row read twice")
    }

    @Test func aCursorSavedByAnOlderConnectorResumesAtItsValue() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let (table, _) = try await Self.tiedTable(bench)
        // The older connector saved a bare change_seq; rows with that value may not all have been read.
        let state = try CursorStore(path: bench.path("state.sqlite"))
        try await state.save("2", of: "table:\(table.table)")
        let prefix = "tax/\(table.table)/"
        let connector = try RunningConnector(Self.yaml(bench, table), on: bench)
        try await bench.eventually("rows 4 to 10") { try await bench.events(on: Self.type, idPrefix: prefix).count == 7 }
        try await Task.sleep(for: .milliseconds(300))
        await connector.stop()
        let ids = Set(try await bench.events(on: Self.type, idPrefix: prefix).compactMap { $0.header("ce_id") })
        #expect(ids == Set((4...10).map { "\(prefix)\($0)/1" }))
        let saved = try #require(try await state.position(of: "table:\(table.table)"))
        #expect(saved.contains("\"cursor\":3") && saved.contains("\"id\":10"), "saved as (cursor, id): \(saved)")
    }

    @Test(arguments: ["id", "cursor", "version"])
    func aColumnMissingFromTheTableStopsTheStartWithItsName(_ key: String) async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let (table, _) = try await Self.tiedTable(bench)
        var yaml = Self.yaml(bench, table, extra: key == "version" ? "    version: revision" : "")
        if key == "id" { yaml = yaml.replacingOccurrences(of: "    cursor: change_seq", with: "    cursor: change_seq\n    id: payment_no") }
        if key == "cursor" { yaml = yaml.replacingOccurrences(of: "    cursor: change_seq", with: "    cursor: modified_seq") }
        let missing = ["id": "payment_no", "cursor": "modified_seq", "version": "revision"][key]!
        let configuration = try ConnectorConfiguration.parse(yaml, file: "Connectors/ties.yaml")
        let connector = try Connector(configuration: configuration, log: bench.log, catalog: catalog)
        do {
            try await connector.run()
            Issue.record("the connector started without the column \(missing)")
        } catch {
            let message = "\(error)"
            #expect(message.contains("Connectors/ties.yaml"), "\(message)")
            #expect(message.contains("table \(table.table) has no column \(missing) (named by `\(key)`)"), "\(message)")
        }
        #expect(connector.stats.snapshot.recordsIn == 0)
    }

    /// Three rows of the example in a table whose key is an ordinary TEXT column: `P-<change_seq>`,
    /// but `key` (SQL) for row `row`; a connector reading it, once it has published 2 and
    /// dead-lettered 1.
    static func textKeyTable(_ bench: Workbench, row: Int, key: String) async throws
        -> (ExampleTable, DatabasePool, RunningConnector)
    {
        let table = try ExampleTable(type: Self.type, table: "payments_\(bench.unique)", catalog: catalog)
        let department = try bench.departmentDatabase()
        try await department.write { db in
            try db.execute(
                sql: table.createSQL.replacingOccurrences(of: "id INTEGER PRIMARY KEY AUTOINCREMENT", with: "id TEXT"))
            for _ in 0..<3 { try table.insert(db) }
            try db.execute(sql: "UPDATE \(table.table) SET id = 'P-' || change_seq WHERE change_seq <> ?", arguments: [row])
            try db.execute(sql: "UPDATE \(table.table) SET id = \(key) WHERE change_seq = ?", arguments: [row])
        }
        let prefix = "tax/\(table.table)/"
        let connector = try RunningConnector(Self.yaml(bench, table), on: bench)
        try await bench.eventually("2 events and 1 dead letter") {
            let published = try await bench.events(on: Self.type, idPrefix: prefix).count
            let dead = try await bench.events(on: catalog.deadLetterTopic, idPrefix: prefix).count
            return published == 2 && dead == 1
        }
        return (table, department, connector)
    }

    @Test func aRowWithoutAnIdIsDeadLetteredWithTheReason() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        let (table, _, connector) = try await Self.textKeyTable(bench, row: 2, key: "NULL")
        let prefix = "tax/\(table.table)/"
        await connector.stop()
        let ids = Set(try await bench.events(on: Self.type, idPrefix: prefix).compactMap { $0.header("ce_id") })
        #expect(ids == ["\(prefix)P-1/1", "\(prefix)P-3/1"])
        let dead = try #require(try await bench.events(on: catalog.deadLetterTopic, idPrefix: prefix).first)
        #expect(dead.header("ce_id") == "\(prefix)null-2/1")
        #expect(dead.header("dl_code") == "mapping-failed")
        #expect(dead.header("dl_reason")?.contains("change_seq 2 has no id (NULL)") == true, "\(dead.header("dl_reason") ?? "")")
    }

    /// Issue 12: a key that is not UTF-8 ending a batch. Taken as NULL, the position made the source
    /// read that row again at every poll; it is dead-lettered once and the next row is read.
    @Test func aRowWhoseKeyIsNotUTF8IsDeadLetteredOnceAndReadingGoesOn() async throws {
        let bench = try await Workbench(.embedded)
        atEnd { await bench.tearDown() }
        // The last row of the first batch of 3: a key of bytes that are not UTF-8.
        let (table, department, connector) = try await Self.textKeyTable(bench, row: 3, key: "CAST(X'50FF2D33' AS TEXT)")
        let prefix = "tax/\(table.table)/"
        try await Task.sleep(for: .milliseconds(500))  // ten polls
        try await department.write { db in
            try table.insert(db)
            try db.execute(sql: "UPDATE \(table.table) SET id = 'P-4' WHERE change_seq = 4")
        }
        try await bench.eventually("the row after it") {
            try await bench.events(on: Self.type, idPrefix: prefix).count == 3
        }
        await connector.stop()
        let dead = try await bench.events(on: catalog.deadLetterTopic, idPrefix: prefix, deduplicate: false)
        #expect(dead.count == 1, "the row was read \(dead.count) times")
        #expect(dead.first?.header("ce_id") == "\(prefix)invalid-3/1")
        let reason = dead.first?.header("dl_reason") ?? ""
        #expect(reason.contains("id (from column id): utf-8"), "\(reason)")
        let published = try await bench.events(on: Self.type, idPrefix: prefix, deduplicate: false).compactMap { $0.header("ce_id") }
        #expect(published == ["\(prefix)P-1/1", "\(prefix)P-2/1", "\(prefix)P-4/1"])
    }
}
