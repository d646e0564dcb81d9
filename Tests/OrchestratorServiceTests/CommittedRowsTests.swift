import EventLog
import EventModel
import Foundation
import GRDB
@testable import OrchestratorService
import TestSupport
import Testing

/// The consumer hands the outbox rows its transactions committed to the relay in memory
/// (``CommittedRows``); the relay publishes them without reading them back when they follow its
/// position, and reads the store whenever rows were written that were not handed over.
@Suite("Outbox rows handed to the relay in memory")
struct CommittedRowsTests {
    /// Every outbox row is on the bus exactly once, in `seq` order for each topic and key (the
    /// order a partition keeps), and there are as many dead letters as dead-letter rows.
    func expectPublishedOnceInOrder(_ bench: Bench, _ store: OrchestratorStore) async throws {
        let all = try await store.pool.read { try OutboxTable.rows(after: 0, limit: 1_000_000, $0) }
        #expect(!all.isEmpty)
        var expected: [String: [String]] = [:]
        for row in all where row.deadLetter == nil {
            expected["\(row.topic) \(row.key ?? "")", default: []].append(row.eventId)
        }
        var published: [String: [String]] = [:]
        for topic in Set(all.filter { $0.deadLetter == nil }.map(\.topic)) {
            for record in try await readTopic(bench.log, topic) {
                let event = try CloudEventsBinding.event(from: record)
                let key = record.key.map { String(decoding: $0, as: UTF8.self) } ?? ""
                published["\(topic) \(key)", default: []].append(event.id)
            }
        }
        #expect(published == expected)
        let deadLetters = try await bench.events(Repo.catalog.deadLetterTopic)
        #expect(deadLetters.count == all.filter { $0.deadLetter != nil }.count)
    }

    @Test("Rows the consumer committed reach the relay as the store holds them and are published once, in order, unread")
    func handedOverRowsPublishedOnce() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        #expect(try await engine.relayOnce() == 0, "an empty outbox; the position is read")
        for number in 41...43 { try await bench.submit(Repo.restaurant(id: "RA-2026-0000\(number)")) }
        // A decision for an application nobody submitted: a dead-letter row.
        try await bench.decide("RA-2026-000049", "market-regulation", "business-licence")
        try await bench.apply(engine)

        let stored = try await engine.store.unsent(limit: 10_000)
        #expect(stored.contains { $0.deadLetter != nil } && stored.contains { $0.checkedSubject != nil })
        let handed = engine.committedRows.take(after: engine.store.position.publishedIfKnown, limit: 10_000)
        #expect(handed == .rows(stored), "handed over exactly as the relay reads them back")

        let reads = engine.stats.snapshot.relayStoreReads
        #expect(try await engine.relayOnce(limit: 10_000) == stored.count)
        #expect(engine.stats.snapshot.relayStoreReads == reads, "published without reading the store")
        #expect(engine.stats.snapshot.relayedFromMemory == stored.count)
        #expect(try await engine.relayOnce() == 0)

        // The departments approve; their decisions' rows are handed over too, in rounds of 7.
        var answered = Set<String>()
        #expect(try await bench.approveAll(answered: &answered) > 0)
        try await bench.apply(engine)
        while try await engine.relayOnce(limit: 7) > 0 {}
        let stats = engine.stats.snapshot
        #expect(stats.relayedFromMemory == stats.relayed, "every row came from the hand-over")
        try await expectPublishedOnceInOrder(bench, engine.store)
    }

    @Test("A transaction that rolled back and a batch planned again in its transaction hand nothing over")
    func rolledBackAndReplannedHandNothing() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        #expect(try await engine.relayOnce() == 0)
        let consumer = try await bench.log.makeConsumer(.group(OrchestratorEngine.group, topics: engine.topics))
        defer { Task { await consumer.close() } }

        // Rolled back at the commit: the batch is written, then a deferred foreign key a trigger
        // broke refuses the commit.
        try await bench.submit(Repo.restaurant(id: "RA-2026-000051"))
        let records = try await poll(consumer, 1)
        try await engine.store.pool.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE parent (id INTEGER PRIMARY KEY);
                    CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
                    CREATE TRIGGER refuse AFTER INSERT ON cases BEGIN INSERT INTO child VALUES (42); END
                    """)
        }
        await #expect(throws: (any Error).self) { try await engine.process(records) }
        #expect(engine.committedRows.take(after: engine.store.position.publishedIfKnown, limit: 100) == .empty)
        #expect(try await engine.store.unsentCount() == 0, "nothing committed")
        try await engine.store.pool.write { db in try db.execute(sql: "DROP TRIGGER refuse") }
        // Consumed again (its offsets were not committed): committed and handed over this time.
        #expect(try await engine.process(records).emitted > 0)
        try await consumer.commit(records)
        #expect(try await engine.relayOnce(limit: 10_000) > 0)
        #expect(engine.stats.snapshot.relayedFromMemory == engine.stats.snapshot.relayed)

        // Planned again: a decision the plan counted as new is applied by another path first.
        let id = "RA-2026-000051"
        let licence = try await bench.decide(id, "market-regulation", "business-licence")
        let stray = try await bench.decide("RA-2026-000059", "market-regulation", "business-licence")
        let polled = try await poll(consumer, 2)
        let ordered = try [licence.id, stray.id].map { wanted in
            try #require(polled.first { (try? CloudEventsBinding.event(from: $0).id) == wanted })
        }
        let plan = try await engine.prepare(ordered)
        _ = try await engine.store.apply([engine.decode(ordered[1])], core: engine.core, now: bench.clock.now())
        let written = try await engine.commit(plan)
        #expect(written.replanned == 1 && written.emitted > 0)
        #expect(engine.committedRows.take(after: engine.store.position.publishedIfKnown, limit: 100) == .empty)
        let fromMemory = engine.stats.snapshot.relayedFromMemory
        while try await engine.relayOnce() > 0 {}
        #expect(engine.stats.snapshot.relayedFromMemory == fromMemory, "read from the store")
        try await expectPublishedOnceInOrder(bench, engine.store)
    }

    @Test("Rows of the timer loop and of a second engine on the store make the relay loop read the store, and everything is published once, in order")
    func gapsReadTheStore() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        let other = try OrchestratorEngine(
            store: engine.store, rules: Repo.rules, calendar: Repo.calendar, log: bench.log, catalog: Repo.catalog,
            clock: bench.clock)
        // A round of the relay loop, which reads the store only when it may hold rows not handed
        // over (no time-based reads within the test).
        func round() async throws -> Int {
            try await engine.relayRound(
                limit: 10_000, recording: .awaited, storeReads: .whenItMayHaveMore(interval: .seconds(3600)))
        }
        func reads() -> Int { engine.stats.snapshot.relayStoreReads }
        #expect(try await round() == 0)
        #expect(reads() == 1, "the first round reads the store")

        try await bench.submit(Repo.restaurant(id: "RA-2026-000061"))
        try await bench.apply(engine)
        #expect(try await round() > 0)
        #expect(try await round() == 0)
        #expect(reads() == 1, "rows handed over and an outbox known empty: not read")

        // The timer loop's reminder and escalation, then rows this engine's consumer hands over.
        await bench.clock.advance(to: Repo.at("2026-03-10", 12))
        #expect(try await engine.fireDueTimers(partitions: nil).emitted > 0)
        #expect(try await round() > 0, "the timer loop's rows are read from the store")
        #expect(reads() == 2)
        try await bench.submit(Repo.restaurant(id: "RA-2026-000062"))
        try await bench.apply(engine)
        #expect(try await round() > 0)
        #expect(reads() == 2)

        // The second engine's rows, then this one's after them: a gap before the rows handed over.
        try await bench.submit(Repo.restaurant(id: "RA-2026-000063"))
        try await bench.apply(other)
        try await bench.submit(Repo.restaurant(id: "RA-2026-000064"))
        try await bench.apply(engine)
        if case .gap = engine.committedRows.take(after: engine.store.position.publishedIfKnown, limit: 10) {
        } else {
            Issue.record("the rows handed over do not follow the relay's position")
        }
        #expect(try await round() > 0)
        #expect(reads() == 3)
        #expect(try await round() == 0)
        #expect(try await engine.store.unsentCount() == 0)
        try await expectPublishedOnceInOrder(bench, engine.store)
    }
}
