import EventLog
import EventModel
import EventSchemas
import Foundation
import Orchestrator
import OrchestratorService
import Testing

/// The consumer plans a batch outside the store's write transaction, while the previous one is
/// written (``BatchPlan``). Whatever changed in between, the store must end as if each batch had
/// been planned inside its own transaction.
@Suite("Batches planned outside the store's transaction")
struct PlannedBatchTests {
    @Test("A batch planned while the one before is unwritten takes that one's ids and cases as written")
    func plannedWhileThePreviousIsWritten() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        let consumer = try await bench.log.makeConsumer(.group(OrchestratorEngine.group, topics: engine.topics))
        defer { Task { await consumer.close() } }
        try await bench.submit(Repo.restaurant(id: "RA-2026-000501"))
        let first = try await poll(consumer, 1)
        let firstPlan = try await engine.prepare(first)
        // The same submission again (a redelivery) and another application, planned before the
        // first batch is written.
        try await bench.submit(Repo.restaurant(id: "RA-2026-000501"))
        try await bench.submit(Repo.restaurant(id: "RA-2026-000502"))
        let second = try await poll(consumer, 2)
        let secondPlan = try await engine.prepare(second)
        #expect(try engine.store.findCase("RA-2026-000501") == nil, "nothing is written by planning")

        let wrote = try await engine.commit(firstPlan)
        let then = try await engine.commit(secondPlan)
        #expect(wrote.applied == 1)
        #expect(then.applied == 1 && then.duplicates == 1)
        while try await engine.relayOnce() > 0 {}
        let requested = try await bench.requests().map(\.id)
        #expect(requested.sorted() == ["RA-2026-000501/request/business-licence/1", "RA-2026-000502/request/business-licence/1"])
    }

    @Test(
        "A plan whose ids or cases changed before it is written is planned again in the transaction: a redelivered decision applied meanwhile counts once, and a decision applied meanwhile on the same case is kept"
    )
    func plannedOnWhatChanged() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        let id = "RA-2026-000601"
        try await bench.submit(Repo.restaurant(id: id, area: 200, seats: 60, sign: true))
        try await bench.pump(engine)
        var answered = Set<String>()
        #expect(try await bench.approveAll(answered: &answered) == 1)
        try await bench.pump(engine)
        // The fan-out is requested; two decisions come in.
        let consumer = try await bench.log.makeConsumer(.group(OrchestratorEngine.group, topics: engine.topics))
        defer { Task { await consumer.close() } }
        let food = try await bench.decide(id, "food-safety", "food-business-licence")
        let fire = try await bench.decide(id, "fire-safety", "fire-safety-inspection")
        let records = try await poll(consumer, 2)
        let foodRecord = try #require(records.first { (try? CloudEventsBinding.event(from: $0).id) == food.id })
        let fireRecord = try #require(records.first { (try? CloudEventsBinding.event(from: $0).id) == fire.id })

        // Planned: the food decision. Before it is written, the same record is applied by another
        // path that plans in its transaction (as the timer loop does).
        let foodPlan = try await engine.prepare([foodRecord])
        _ = try await engine.store.apply([engine.decode(foodRecord)], core: engine.core, now: bench.clock.now())
        let again = try await engine.commit(foodPlan)
        #expect(again.applied == 0 && again.duplicates == 1)

        // Planned: the fire decision on the case as it was; before it is written the case changes
        // (the environmental filing is decided).
        let firePlan = try await engine.prepare([fireRecord])
        let environment = try await bench.decide(id, "environment", "environmental-filing")
        let more = try await poll(consumer, 1)
        #expect(try CloudEventsBinding.event(from: more[0]).id == environment.id)
        _ = try await engine.store.apply(
            [engine.decode(more[0])], core: engine.core, now: bench.clock.now())
        let late = try await engine.commit(firePlan)
        #expect(late.applied == 1)
        let (state, _) = try #require(try engine.store.findCase(id))
        #expect(state.step("food-licence")?.status == .approved)
        #expect(state.step("fire-inspection")?.status == .approved)
        #expect(state.step("environmental-filing")?.status == .approved)
        #expect(try await bench.events(Repo.catalog.deadLetterTopic).isEmpty)
    }

    @Test(
        "A plan whose later id was applied meanwhile, on no case of the plan, writes none of its ids and is planned again: its earlier decision is applied once"
    )
    func laterIdAppliedMeanwhile() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        let id = "RA-2026-000611"
        try await bench.submit(Repo.restaurant(id: id))
        try await bench.pump(engine)
        let consumer = try await bench.log.makeConsumer(.group(OrchestratorEngine.group, topics: engine.topics))
        defer { Task { await consumer.close() } }
        // The business licence's decision, then one for an application the store does not know
        // (dead-lettered: it changes no case).
        let licence = try await bench.decide(id, "market-regulation", "business-licence")
        let stray = try await bench.decide("RA-2026-000699", "market-regulation", "business-licence")
        let records = try await poll(consumer, 2)
        let ordered = try [licence.id, stray.id].map { wanted in
            try #require(records.first { (try? CloudEventsBinding.event(from: $0).id) == wanted })
        }
        let plan = try await engine.prepare(ordered)
        // The stray decision is applied by another path before the plan is written: the plan's
        // case rows are as they were, its second id is not.
        let meanwhile = try await engine.store.apply([engine.decode(ordered[1])], core: engine.core, now: bench.clock.now())
        #expect(meanwhile.deadLettered == 1)
        let written = try await engine.commit(plan)
        #expect(written.replanned == 1)
        #expect(written.applied == 1 && written.duplicates == 1 && written.deadLettered == 0)
        let (state, _) = try #require(try engine.store.findCase(id))
        #expect(state.step("business-licence")?.status == .approved, "the first id was not left applied")
        while try await engine.relayOnce() > 0 {}
        #expect(try await bench.events(Repo.catalog.deadLetterTopic).count == 1, "one dead letter, for the stray decision")
    }
}
