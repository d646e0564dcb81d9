import Foundation
import GRDB
import OrchestratorService
import Testing

@Suite("The store's queries with 100,000 cases")
struct StoreIndexTests {
    /// Seeds cases with plain SQL (the bodies are placeholders: the plans, not the JSON, are under
    /// test) and reads the query plans instead of timing the queries, which a loaded machine skews.
    @Test("applications and status use indexes, with no sort and no scan of the cases")
    func queryPlansUseIndexes() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "onewindow-orch-index-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try OrchestratorStore(path: directory.appendingPathComponent("orchestrator.sqlite").path)
        try await store.pool.write { db in
            let insert = try db.makeStatement(
                sql: """
                    INSERT INTO cases (application_id, partition, workflow, rule_version, status, next_due, overdue, updated_at, body)
                    VALUES (?, ?, 'restaurant-opening', 'restaurant-opening@0000000000000000', ?, ?, ?, 0, '{}')
                    """)
            for number in 0..<100_000 {
                let status = number % 3 == 0 ? "completed" : "in-progress"
                try insert.execute(arguments: [
                    String(format: "RA-2026-%06d", number), number % 6, status, Double(1_800_000_000 + number),
                    number % 97 == 0 ? 1 : 0,
                ])
            }
            try db.execute(sql: "ANALYZE")
        }
        let plans = try await store.pool.read { db in
            let open = try Row.fetchAll(
                db, sql: "EXPLAIN QUERY PLAN " + OrchestratorStore.openCasesQuery, arguments: [100]
            ).map { $0["detail"] as String }
            let one = try Row.fetchAll(
                db, sql: "EXPLAIN QUERY PLAN SELECT partition, body FROM cases WHERE application_id = ?",
                arguments: ["RA-2026-000042"]
            ).map { $0["detail"] as String }
            return (open, one)
        }
        #expect(plans.0.contains { $0.contains("USING INDEX cases_open") }, "\(plans.0)")
        #expect(!plans.0.contains { $0.contains("TEMP B-TREE") }, "\(plans.0)")
        #expect(plans.1.contains { $0.contains("USING INDEX") || $0.contains("PRIMARY KEY") }, "\(plans.1)")
        #expect(!plans.1.contains { $0.hasPrefix("SCAN") }, "\(plans.1)")
        let listed = try await store.pool.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM cases WHERE status = 'in-progress'")
        }
        #expect(listed == 66_666)
    }
}
