import EventLog
import Foundation
import GRDB
import OrchestratorService
import Retrying
import TestSupport
import Testing

/// The orchestrator's store on a full disk and a read-only file (issue 12): a clear error naming
/// the file and what to do, no damage (`integrity_check`), and the batch applied once there is
/// room again, with nothing lost (the consumer had not committed its offsets).
///
/// The full disk is SQLite's own: `PRAGMA max_page_count` on the store's writing connection caps
/// the file at its present size, and SQLite answers `SQLITE_FULL` as it does when the file system
/// is full (a small tmpfs would need root). Raising the cap is the space coming back.
@Suite("The orchestrator's store on a full disk", .timeLimit(.minutes(1)))
struct StoreDiskTests {
    static func integrity(_ path: String) throws -> String {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "" }
    }

    @Test("a full disk fails the batch with the file and what to do; it is applied once space returns")
    func diskFull() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        let ids = (1...5).map { String(format: "RA-2026-%06d", 900 + $0) }
        for id in ids { try await bench.submit(Repo.restaurant(id: id)) }
        let pool = engine.store.pool
        let pages = try await pool.read { db in try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0 }
        try await pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = \(pages)") }

        let consumer = try await bench.log.makeConsumer(.group(OrchestratorEngine.group, topics: engine.topics))
        var records: [LogRecord] = []
        while records.count < ids.count {
            records += try await consumer.poll(maxRecords: 500, timeout: .milliseconds(200))
        }
        var failure: (any Error)?
        do { _ = try await engine.process(records) } catch { failure = error }
        let error = try #require(failure as? LogError, "a full store must fail the batch, got \(String(describing: failure))")
        #expect(ErrorDisposition.of(error) == .retry, "a full disk is retried: \(error)")
        #expect(error.description.contains(bench.storePath), "the error names the file: \(error)")
        #expect(error.description.contains("full") && error.description.contains("free space"), "\(error)")
        #expect(try engine.store.findCase(ids[0]) == nil, "nothing of the failed batch is stored")
        #expect(try Self.integrity(bench.storePath) == "ok")

        // Space returns: the same batch (its offsets were not committed) is applied, once.
        try await pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = 1073741823") }
        let outcome = try await engine.process(records)
        #expect(outcome.applied == ids.count)
        try await consumer.commit(records)
        await consumer.close()
        while try await engine.relayOnce() > 0 {}
        for id in ids { #expect(try engine.store.findCase(id) != nil, "\(id) has its case") }
        let requested = Set(try await bench.requests().compactMap { $0.body[pointer: "/applicationId"]?.stringValue })
        #expect(requested == Set(ids))
        #expect(try Self.integrity(bench.storePath) == "ok")
        try ReliabilityRun.report(
            part: "disk-full-store",
            markdown: """
                ### A full disk under the orchestrator's store

                `swift test --filter StoreDiskTests`: the store capped at its size (`PRAGMA max_page_count`), \
                a batch of \(ids.count) applications polled and applied.

                - the batch failed with (disposition: \(ErrorDisposition.of(error))):
                  `\(error)`
                - nothing of it stored; `PRAGMA integrity_check`: ok
                - space back: the same uncommitted batch applied (\(outcome.applied) applied), \
                \(requested.count) applications with approval requests, integrity ok
                """)
    }
}
