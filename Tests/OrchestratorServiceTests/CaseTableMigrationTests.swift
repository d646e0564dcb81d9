import EventLog
import EventModel
import Foundation
import GRDB
import Orchestrator
@testable import OrchestratorService
import Testing

/// The case table rebuilt with its small columns first and the case's JSON last (migration
/// `v5-cases-small-columns-first`): a store in the column order before it opens with the same
/// rows, indexes and trigger, and its cases go on from where they were.
@Suite("The case table with its small columns first")
struct CaseTableMigrationTests {
    /// Every column of every case row, by application id, in a fixed column order.
    static func caseRows(_ db: Database) throws -> [String: [DatabaseValue]] {
        let columns = [
            "application_id", "partition", "workflow", "rule_version", "status", "next_due", "overdue", "updated_at",
            "body", "stamp", "timers", "next_timer", "fired_overdue",
        ]
        var rows: [String: [DatabaseValue]] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT \(columns.joined(separator: ", ")) FROM cases") {
            rows[row["application_id"]] = columns.indices.map { row[$0] as DatabaseValue }
        }
        return rows
    }

    /// Approves the requests of one application not answered yet.
    func approve(_ applicationId: String, _ bench: Bench, answered: inout Set<String>) async throws -> Int {
        var count = 0
        for request in try await bench.requests()
        where !answered.contains(request.id) && request.body[pointer: "/applicationId"]?.stringValue == applicationId {
            answered.insert(request.id)
            try await bench.approve(request: request)
            count += 1
        }
        return count
    }

    @Test("A store with the body before the later columns opens with the same rows, indexes and trigger, and its cases go on")
    func oldColumnOrderMigrates() async throws {
        let bench = try await Bench()
        // The cases, written by this code in a store beside the one under test: 000811 with its
        // fan-out requested and a reminder fired; 000812 just received; 000813 completed.
        let staging = bench.directory.appendingPathComponent("staging.sqlite").path
        var answered = Set<String>()
        do {
            let engine = try bench.engine(store: staging)
            try await bench.submit(Repo.restaurant(id: "RA-2026-000811"))
            try await bench.submit(Repo.restaurant(id: "RA-2026-000813"))
            try await bench.pump(engine)
            #expect(try await bench.approveAll(answered: &answered) == 2)
            try await bench.pump(engine)
            while try await approve("RA-2026-000813", bench, answered: &answered) > 0 { try await bench.pump(engine) }
            await bench.clock.advance(to: Repo.at("2026-03-05", 12))
            #expect(try await engine.fireDueTimers(partitions: nil).applied >= 1)
            try await bench.submit(Repo.restaurant(id: "RA-2026-000812", submitted: Repo.at("2026-03-05", 11)))
            try await bench.pump(engine)
        }
        let expected = try await DatabasePool(path: staging).read { try Self.caseRows($0) }
        #expect(expected.count == 3)
        #expect(expected.values.allSatisfy { $0[9] != .null }, "every row has its stamp")
        #expect(expected.values.contains { $0[10] != .null }, "a row has timers")

        // The store under test as the code before wrote it: migrations up to v4, the same rows.
        let old = try DatabasePool(path: bench.storePath)
        try OrchestratorStore.migrator.migrate(old, upTo: "v4-timers-in-cases")
        try await old.writeWithoutTransaction { db in
            try db.execute(sql: "ATTACH DATABASE ? AS staging", arguments: [staging])
            try db.execute(
                sql: """
                    BEGIN;
                    INSERT INTO cases (application_id, partition, workflow, rule_version, status, next_due, overdue, updated_at, body, stamp, timers, next_timer, fired_overdue)
                        SELECT application_id, partition, workflow, rule_version, status, next_due, overdue, updated_at, body, stamp, timers, next_timer, fired_overdue
                        FROM staging.cases;
                    INSERT INTO rule_versions SELECT * FROM staging.rule_versions;
                    INSERT INTO applied_inputs SELECT * FROM staging.applied_inputs;
                    INSERT INTO outbox SELECT * FROM staging.outbox;
                    UPDATE relay_position SET sent_through = (SELECT sent_through FROM staging.relay_position);
                    COMMIT;
                    DETACH DATABASE staging;
                    """)
        }
        let oldColumns = try await old.read { db in try db.columns(in: "cases").map(\.name) }
        #expect(oldColumns.firstIndex(of: "body")! < oldColumns.firstIndex(of: "stamp")!, "\(oldColumns)")
        try old.close()

        var engine = try bench.engine()
        let (rows, columns, schema) = try await engine.store.pool.read { db in
            (
                try Self.caseRows(db), try db.columns(in: "cases").map(\.name),
                try Row.fetchAll(db, sql: "SELECT type, name FROM sqlite_master WHERE tbl_name = 'cases'").map {
                    "\($0["type"] as String) \($0["name"] as String)"
                }
            )
        }
        #expect(rows == expected, "the rows, stamps and timers as they were")
        #expect(columns.prefix(3) == ["application_id", "partition", "stamp"], "\(columns)")
        #expect(columns.last == "body", "\(columns)")
        #expect(
            Set(schema) == [
                "table cases", "index sqlite_autoindex_cases_1", "index cases_open", "index cases_partition",
                "index cases_next_timer", "index cases_fired_overdue", "trigger cases_stale_stamp",
            ], "\(schema)")

        // The cases go on: 000811's pending timers and 000812's fire once each across a restart,
        // and the decisions still due complete both.
        #expect(try await engine.fireDueTimers(partitions: nil).applied == 0, "the fired reminder stays fired")
        await bench.clock.advance(to: Repo.at("2026-03-20", 12))
        let fired = try await engine.fireDueTimers(partitions: nil).applied
        #expect(fired >= 2)
        engine = try bench.engine()
        #expect(try await engine.fireDueTimers(partitions: nil).applied == 0)
        while try await bench.approveAll(answered: &answered) > 0 { try await bench.pump(engine) }
        for id in ["RA-2026-000811", "RA-2026-000812", "RA-2026-000813"] {
            #expect(try engine.store.findCase(id)?.state.status == .completed, "\(id)")
        }
        #expect(try await bench.events(Repo.catalog.deadLetterTopic).isEmpty)
        let requests = try await bench.requests().map(\.id)
        #expect(requests.count == Set(requests).count, "no request twice")

        // The trigger still clears a stamp a write of the body left as it was.
        let cleared = try await engine.store.pool.write { db in
            try db.execute(sql: "UPDATE cases SET body = body || ' ' WHERE application_id = 'RA-2026-000813'")
            return try Int64.fetchOne(db, sql: "SELECT stamp FROM cases WHERE application_id = 'RA-2026-000813'")
        }
        #expect(cleared == nil)
    }
}
