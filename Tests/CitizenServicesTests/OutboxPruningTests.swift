import CitizenServices
import Foundation
import GRDB
import OrchestratorService
import Testing

/// The citizen services' store marks its published outbox rows `sent`; the pruning passes delete
/// those, and only those, once they are older than the retention.
@Suite("Deleting the citizen services' published outbox rows")
struct CitizenOutboxPruningTests {
    @Test("Rows marked sent go after the retention; the first unsent row and all after it stay")
    func sentRowsGo() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("citizen-prune-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try CitizenStore(path: directory.appendingPathComponent("citizen.sqlite").path)
        func seqs() async throws -> [Int64] {
            try await store.pool.read { db in try Int64.fetchAll(db, sql: "SELECT seq FROM outbox ORDER BY seq") }
        }
        try await store.pool.write { db in
            for number in 1...6 {
                try OutboxTable.insert(
                    partition: 0, topic: "notification.sms.requested", key: "440604199308220247",
                    eventId: "push-\(number)", type: "notification.sms.requested", timeMilliseconds: Int64(number),
                    body: Data("{}".utf8), db)
            }
        }
        // 1 and 2 published (the relay marks a range), and 4 marked by hand: it is past the first
        // unsent row (3), so it stays too.
        try await store.markSent(through: [1, 2])
        try await store.pool.write { db in try db.execute(sql: "UPDATE outbox SET sent = 1 WHERE seq = 4") }
        let day = Duration.seconds(86_400)
        let start = Date()
        #expect(try await store.prunePublished(keeping: day, now: start).deleted == 0)
        let report = try await store.prunePublished(keeping: day, now: start + 2 * 86_400)
        #expect(report.deleted == 2)
        #expect(report.prunedThrough == 2)
        #expect(report.horizonMilliseconds == 2)
        #expect(try await seqs() == [3, 4, 5, 6])
        #expect(try await store.unsent().map(\.eventId) == ["push-3", "push-5", "push-6"])

        try await store.markSent(through: [3, 5, 6])
        #expect(try await store.prunePublished(keeping: day, now: start + 4 * 86_400).deleted == 4)
        #expect(try await seqs().isEmpty)
    }
}
