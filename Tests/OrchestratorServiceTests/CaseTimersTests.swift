import EventLog
import EventModel
import Foundation
import GRDB
import Orchestrator
@testable import OrchestratorService
import Testing

/// The timers kept in their case's row (``CaseTimers``, migration `v4-timers-in-cases`): the
/// migration of a store with the table of their own, and a firing between a batch's plan and its
/// write.
@Suite("Timers in their case's row")
struct CaseTimersTests {
    /// The SMS reminders and supervision alerts on the bus, by event id.
    func reminders(_ bench: Bench) async throws -> [String] {
        try await bench.events("notification.sms.requested").map(\.id).filter { $0.contains("/sms/reminder") }.sorted()
    }

    @Test("The stored text reads back as written, and a line that is not a timer is refused naming the case")
    func storedTextRoundTrips() throws {
        var timers = CaseTimers()
        let key = TimerKey(applicationId: "RA-2026-000001", step: "fire inspection", attempt: 2, kind: .overdue)
        timers.set(key, at: Date(timeIntervalSince1970: 1_772_755_200))
        timers.set(
            TimerKey(applicationId: "RA-2026-000001", step: "tax-registration", attempt: 1, kind: .reminder),
            at: Date(timeIntervalSince1970: 1_772_672_400))
        let first = timers.markFired(key)
        let second = timers.markFired(key)
        #expect(first && !second, "marked fired once")
        let text = try #require(timers.stored)
        #expect(text == "1772755200000 1 o 2 fire inspection\n1772672400000 0 r 1 tax-registration\n")
        #expect(try CaseTimers(stored: text, applicationId: "RA-2026-000001") == timers)
        #expect(timers.next == 1_772_672_400)
        #expect(timers.firedOverdue == 1)
        timers.cancel(key)
        #expect(timers.firedOverdue == 0)
        #expect(CaseTimers().stored == nil)
        #expect(throws: StoreError.self) { try CaseTimers(stored: "12 0 reminder 1 x\n", applicationId: "RA-2026-000001") }
    }

    @Test("The one-pass reading of the stored text takes what the writer writes and leaves the rest to the general reading")
    func storedTextScan() throws {
        func scanned(_ text: String) -> [CaseTimers.Timer]? {
            var text = text
            return text.withUTF8(CaseTimers.scan)
        }
        let written = "1772755200000 1 o 2 fire inspection\n1772672400000 0 r 12 税务登记\n"
        let timers = try #require(scanned(written))
        #expect(timers.map(\.step) == ["fire inspection", "税务登记"])
        #expect(timers.map(\.attempt) == [2, 12])
        #expect(timers.map(\.fired) == [true, false])
        #expect(timers.map(\.kind) == [.overdue, .reminder])
        #expect(timers.map(\.dueMilliseconds) == [1_772_755_200_000, 1_772_672_400_000])
        // Not as the writer writes it: the general reading decides (and reads these the same).
        for text in ["12 0 r 1 x", "+12 0 r 1 x\n", "12 0 r 1 x\n\n", "12  0 r 1 x\n"] {
            #expect(scanned(text) == nil, "\(text)")
        }
        #expect(try CaseTimers(stored: "12 0 r 1 x", applicationId: "RA-2026-000001").timers.map(\.step) == ["x"])
        #expect(try CaseTimers(stored: "12 0 r 1 x\n\n", applicationId: "RA-2026-000001").timers.count == 1)
        // Refused either way, naming the case.
        for text in ["12 2 r 1 x\n", "12 0 q 1 x\n", "12 0 r 1 \n", "12 0 r x y\n"] {
            #expect(scanned(text) == nil, "\(text)")
            #expect(throws: StoreError.self, "\(text)") { try CaseTimers(stored: text, applicationId: "RA-2026-000001") }
        }
    }

    @Test("A store with the timers table, with pending and fired timers, opens with them in their cases' rows and fires each once")
    func timersTableMigrates() async throws {
        let bench = try await Bench()
        // The cases, written by this code in a store beside the one under test: 000801's
        // business-licence reminder fired and its overdue timer pending; 000802's two pending.
        let staging = bench.directory.appendingPathComponent("staging.sqlite").path
        do {
            let engine = try bench.engine(store: staging)
            try await bench.submit(Repo.restaurant(id: "RA-2026-000801"))
            try await bench.pump(engine)
            await bench.clock.advance(to: Repo.at("2026-03-05", 12))
            #expect(try await engine.fireDueTimers(partitions: nil).applied == 1)
            try await bench.submit(Repo.restaurant(id: "RA-2026-000802", submitted: Repo.at("2026-03-05", 11)))
            try await bench.pump(engine)
        }
        #expect(try await reminders(bench).count == 1)

        // The store under test as the code before wrote it: migrations up to v3, the same rows,
        // the timers in their table.
        let old = try DatabasePool(path: bench.storePath)
        try OrchestratorStore.migrator.migrate(old, upTo: "v3-relay-position")
        try await old.writeWithoutTransaction { db in
            try db.execute(sql: "ATTACH DATABASE ? AS staging", arguments: [staging])
            try db.inTransaction {
                try db.execute(
                    sql: """
                        INSERT INTO cases (application_id, partition, workflow, rule_version, status, next_due, overdue, updated_at, body, stamp)
                            SELECT application_id, partition, workflow, rule_version, status, next_due, overdue, updated_at, body, stamp
                            FROM staging.cases;
                        INSERT INTO rule_versions SELECT * FROM staging.rule_versions;
                        INSERT INTO applied_inputs SELECT * FROM staging.applied_inputs;
                        INSERT INTO outbox SELECT * FROM staging.outbox;
                        UPDATE relay_position SET sent_through = (SELECT sent_through FROM staging.relay_position);
                        """)
                let insert = try db.makeStatement(
                    sql: """
                        INSERT INTO timers (id, partition, application_id, step, attempt, kind, due_at, fired)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        """)
                for row in try Row.fetchAll(db, sql: "SELECT application_id, partition, timers FROM staging.cases") {
                    let applicationId: String = row["application_id"]
                    for timer in try CaseTimers(stored: row["timers"], applicationId: applicationId).timers {
                        try insert.execute(arguments: [
                            timer.key(applicationId).description, row["partition"] as Int, applicationId, timer.step,
                            timer.attempt, timer.kind.rawValue, timer.due.timeIntervalSince1970, timer.fired,
                        ])
                    }
                }
                return .commit
            }
            try db.execute(sql: "DETACH DATABASE staging")
        }
        let oldTimers = try await old.read { db in
            try Row.fetchAll(db, sql: "SELECT id, fired FROM timers ORDER BY id").map { "\($0["id"] as String) \($0["fired"] as Int)" }
        }
        #expect(
            oldTimers == [
                "RA-2026-000801/timer/business-licence/1/overdue 0", "RA-2026-000801/timer/business-licence/1/reminder 1",
                "RA-2026-000802/timer/business-licence/1/overdue 0", "RA-2026-000802/timer/business-licence/1/reminder 0",
            ])
        try old.close()

        var engine = try bench.engine()
        #expect(try await engine.store.pool.read { try $0.tableExists("timers") } == false)
        #expect(try await engine.store.dueTimers(at: bench.clock.now(), partitions: nil).isEmpty, "the fired one stays fired")
        #expect(try await engine.store.nextTimer() == Repo.at("2026-03-06", 0))
        #expect(try await engine.fireDueTimers(partitions: nil).applied == 0)

        // 000801 overdue; a restart; 000802's two, each once.
        await bench.clock.advance(to: Repo.at("2026-03-06", 1))
        #expect(try await engine.fireDueTimers(partitions: nil).applied == 1)
        #expect(try await engine.fireDueTimers(partitions: nil).applied == 0)
        engine = try bench.engine()
        #expect(try await engine.fireDueTimers(partitions: nil).applied == 0)
        await bench.clock.advance(to: Repo.at("2026-03-20", 1))
        #expect(try await engine.fireDueTimers(partitions: nil).applied == 2)
        #expect(try await engine.fireDueTimers(partitions: nil).applied == 0)
        #expect(try await bench.engine().fireDueTimers(partitions: nil).applied == 0)
        #expect(try await engine.store.nextTimer() == nil)
        while try await engine.relayOnce() > 0 {}
        #expect(try await reminders(bench).count == 2)
        #expect(try await bench.events("supervision.alert.raised").map(\.id).sorted() == [
            "RA-2026-000801/alert/sla-breach/business-licence/1", "RA-2026-000802/alert/sla-breach/business-licence/1",
        ])
        #expect(try await engine.store.counts().overdue == 2)

        // A decision cancels the step's timers, fired or not: no longer an overdue step.
        try await bench.decide("RA-2026-000801", "market-regulation", "business-licence")
        try await bench.pump(engine)
        #expect(try await engine.store.counts().overdue == 1)
    }

    @Test("A timer firing on a case between a batch's plan and its write makes the batch planned again, and its mark is kept")
    func firingBetweenPlanAndWrite() async throws {
        let bench = try await Bench()
        let first = try bench.engine()
        let id = "RA-2026-000901"
        try await bench.submit(Repo.restaurant(id: id, area: 200, seats: 60, sign: true))
        try await bench.pump(first)
        var answered = Set<String>()
        #expect(try await bench.approveAll(answered: &answered) == 1)
        try await bench.pump(first)
        // The fan-out is requested (2026-03-02). A timer the core does not know (a step of no
        // rules) is in the row too: its firing changes nothing but its mark. Then a restart, so
        // that nothing planned or cached before this edit is taken for the row.
        try await first.store.pool.write { db in
            try db.execute(
                sql: """
                    UPDATE cases SET timers = timers || ?, next_timer = min(next_timer, ?), stamp = NULL
                    WHERE application_id = ?
                    """,
                arguments: [
                    "\(Repo.at("2026-03-03").millisecondsSince1970) 0 r 1 no-such-step\n",
                    Repo.at("2026-03-03").timeIntervalSince1970, id,
                ])
        }
        let engine = try bench.engine()
        let consumer = try await bench.log.makeConsumer(.group(OrchestratorEngine.group, topics: engine.topics))
        defer { Task { await consumer.close() } }
        try await bench.decide(id, "food-safety", "food-business-licence")
        var records: [LogRecord] = []
        for _ in 0..<100 where records.isEmpty {
            records += try await consumer.poll(maxRecords: 1, timeout: .milliseconds(100))
        }

        // The decision planned at 2026-03-04 12:00, then only the odd timer fires before it is written.
        await bench.clock.advance(to: Repo.at("2026-03-04", 12))
        let plan = try await engine.prepare(records)
        let fired = try await engine.fireDueTimers(partitions: nil)
        #expect(fired.applied == 0 && fired.emitted == 0, "the core changed nothing")
        let written = try await engine.commit(plan)
        #expect(written.replanned == 1)
        #expect(written.applied == 1)
        #expect(try await engine.store.dueTimers(at: bench.clock.now(), partitions: nil).isEmpty)

        // Once more with a firing the core acts on: the tax registration's reminder (3 working days:
        // 2026-03-05 09:00), racing the fire inspection's decision.
        try await bench.decide(id, "fire-safety", "fire-safety-inspection")
        records = []
        for _ in 0..<100 where records.isEmpty {
            records += try await consumer.poll(maxRecords: 1, timeout: .milliseconds(100))
        }
        await bench.clock.advance(to: Repo.at("2026-03-05", 12))
        let second = try await engine.prepare(records)
        let reminded = try await engine.fireDueTimers(partitions: nil)
        #expect(reminded.applied >= 1)
        let then = try await engine.commit(second)
        #expect(then.replanned == 1 && then.applied == 1)
        #expect(try await engine.store.dueTimers(at: bench.clock.now(), partitions: nil).isEmpty, "no mark was lost")
        #expect(try await engine.fireDueTimers(partitions: nil).applied == 0)
        while try await engine.relayOnce() > 0 {}
        let state = try #require(try engine.store.findCase(id)?.state)
        #expect(state.step("food-licence")?.status == .approved)
        #expect(state.step("fire-inspection")?.status == .approved)
        #expect(state.step("tax-registration")?.reminded == true)
        let sent = try await reminders(bench)
        #expect(sent.count == Set(sent).count && !sent.isEmpty, "\(sent)")
        #expect(try await bench.events(Repo.catalog.deadLetterTopic).isEmpty)
    }

    @Test("The timer loop's queries use the cases' partial indexes")
    func timerQueriesUseIndexes() async throws {
        let bench = try await Bench()
        let store = try OrchestratorStore(path: bench.storePath)
        let plans = try await store.pool.read { db in
            let due = try Row.fetchAll(
                db, sql: "EXPLAIN QUERY PLAN " + OrchestratorStore.dueTimersQuery, arguments: [0, 500]
            ).map { $0["detail"] as String }
            let next = try Row.fetchAll(
                db, sql: "EXPLAIN QUERY PLAN SELECT min(next_timer) FROM cases WHERE next_timer IS NOT NULL"
            ).map { $0["detail"] as String }
            let overdue = try Row.fetchAll(
                db, sql: "EXPLAIN QUERY PLAN SELECT total(fired_overdue) FROM cases WHERE fired_overdue > 0"
            ).map { $0["detail"] as String }
            return (due, next, overdue)
        }
        #expect(plans.0.contains { $0.contains("cases_next_timer") }, "\(plans.0)")
        #expect(!plans.0.contains { $0.contains("TEMP B-TREE") }, "\(plans.0)")
        #expect(plans.1.contains { $0.contains("cases_next_timer") }, "\(plans.1)")
        #expect(plans.2.contains { $0.contains("cases_fired_overdue") }, "\(plans.2)")
    }
}
