import EventLog
import EventModel
import Foundation
import GRDB
@testable import OrchestratorService
import Testing

/// The relay's position (`relay_position`) that replaced the `sent` flag of each outbox row, the
/// migration of stores written with the flags, and emissions validated as they are written.
@Suite("The outbox relay's position")
struct RelayPositionTests {
    @Test("A store written with sent flags opens with the relay's position after its last sent row")
    func storeWithSentFlagsMigrates() async throws {
        let bench = try await Bench()
        // The store as the code before the position wrote it: migrations up to v2, three rows sent
        // and two not.
        let old = try DatabasePool(path: bench.storePath)
        try OrchestratorStore.migrator.migrate(old, upTo: "v2-case-stamps")
        try await old.write { db in
            for number in 1...5 {
                try OutboxTable.insert(
                    partition: 0, topic: "application.progress.updated", key: "RA-2026-000001",
                    eventId: "old-\(number)", type: "application.progress.updated", timeMilliseconds: 0,
                    body: Data("{}".utf8), db)
            }
            try db.execute(sql: "UPDATE outbox SET sent = 1 WHERE seq <= 3")
            try db.execute(
                sql: """
                    INSERT INTO cases (application_id, partition, workflow, rule_version, status, updated_at, body)
                    VALUES ('RA-2026-000001', 2, 'restaurant-opening', 'restaurant-opening@0000000000000000', 'in-progress', 0, '{}');
                    INSERT INTO timers (id, partition, application_id, step, attempt, kind, due_at, fired)
                    VALUES ('t-due', 2, 'RA-2026-000001', 'tax-registration', 1, 'overdue', 100, 0),
                           ('t-fired', 2, 'RA-2026-000001', 'business-licence', 1, 'overdue', 50, 1)
                    """)
        }
        try old.close()

        let store = try OrchestratorStore(path: bench.storePath)
        let unsent = try await store.unsent(limit: 100)
        #expect(unsent.map(\.eventId) == ["old-4", "old-5"])
        #expect(unsent.allSatisfy { $0.checkedSubject == nil }, "rows written before are validated by the relay")
        #expect(try await store.unsentCount() == 2)

        // The timers moved (now into their case's row: migration v4), the fired one kept (it
        // counts as overdue).
        let due = try await store.dueTimers(at: Date(timeIntervalSince1970: 200), partitions: nil)
        #expect(due.map(\.0.step) == ["tax-registration"])
        #expect(due.map(\.1) == [2])
        #expect(try await store.counts().overdue == 1)

        // Published but not recorded: this store does not offer them again, a restart does.
        store.relayed(through: 5)
        #expect(try await store.unsent().isEmpty)
        #expect(try await OrchestratorStore(path: bench.storePath).unsentCount() == 2)
        #expect(try await store.recordRelayPosition())
        #expect(try await store.recordRelayPosition() == false, "nothing left to record")
        #expect(try await OrchestratorStore(path: bench.storePath).unsent().isEmpty)
    }

    @Test("An empty store written with sent flags starts the position at zero")
    func emptyStoreMigrates() async throws {
        let bench = try await Bench()
        let old = try DatabasePool(path: bench.storePath)
        try OrchestratorStore.migrator.migrate(old, upTo: "v2-case-stamps")
        try old.close()
        let store = try OrchestratorStore(path: bench.storePath)
        #expect(try await store.pool.read { try OrchestratorStore.recordedPosition($0) } == 0)
        #expect(try await store.unsentCount() == 0)
    }

    @Test("Emissions are validated as they are written and published with the subject validation gives")
    func emissionsCheckedAtWrite() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        try await bench.submit(Repo.restaurant(id: "RA-2026-000031"))
        try await bench.apply(engine)
        let rows = try await engine.store.unsent()
        #expect(!rows.isEmpty)
        // Validation takes the subject from the topic's key field: the record's key.
        #expect(rows.allSatisfy { $0.checkedSubject == .some($0.key) }, "\(rows.map(\.checkedSubject))")
        #expect(try await engine.relayOnce() == rows.count)
        // The outbox found empty: the position is recorded, a restart publishes nothing again.
        #expect(try await engine.relayOnce() == 0)
        #expect(try await bench.engine().store.unsentCount() == 0)
        for row in rows {
            let event = try #require(try await bench.events(row.topic).first { $0.id == row.eventId })
            #expect(event.subject == row.key)
            #expect(event.source == OrchestratorEngine.source)
            #expect(event.type == row.type)
        }
    }

    @Test("The next transaction that applies inputs records the position the relay moved to")
    func transactionRecordsPosition() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        try await bench.submit(Repo.restaurant(id: "RA-2026-000032"))
        try await bench.apply(engine)
        let rows = try await engine.store.unsent()
        try await engine.publish(rows)
        engine.store.relayed(through: rows.last!.seq)
        #expect(try await bench.engine().store.unsentCount() == rows.count, "not recorded yet")
        try await bench.submit(Repo.restaurant(id: "RA-2026-000033"))
        try await bench.apply(engine)
        let restarted = try bench.engine()
        let left = try await restarted.store.unsent()
        #expect(!left.isEmpty)
        #expect(left.allSatisfy { $0.seq > rows.last!.seq }, "the rows published before are recorded")
    }
}
