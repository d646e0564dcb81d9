import Bus
import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import Orchestrator
import OrchestratorService
import TestSupport
import Testing

@Suite("Orchestrator engine on the embedded bus and a real store")
struct EngineTests {
    static let fanOut: Set<String> = [
        "food-business-licence", "fire-safety-inspection", "environmental-filing", "outdoor-signboard-permit",
        "tax-registration",
    ]

    @Test("The restaurant end to end: business licence first, fan-out, completion notifies and reports progress")
    func restaurantEndToEnd() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        try await bench.submit(Repo.restaurant(id: "RA-2026-000001", area: 200, seats: 60, sign: true))
        try await bench.pump(engine)
        var answered = Set<String>()
        // Only the business licence at first.
        let first = try await bench.requests()
        #expect(first.map { $0.body[pointer: "/item"]!.stringValue! } == ["business-licence"])
        #expect(try await bench.approveAll(answered: &answered) == 1)
        await bench.clock.advance(by: .seconds(3600))
        try await bench.pump(engine)
        // The fan-out: every parallel step requested in the one transition.
        let afterLicence = try await bench.requests().map { $0.body[pointer: "/item"]!.stringValue! }
        #expect(Set(afterLicence) == Self.fanOut.union(["business-licence"]))
        #expect(try await bench.approveAll(answered: &answered) == 5)
        await bench.clock.advance(by: .seconds(3600))
        try await bench.pump(engine)

        let (state, _) = try #require(try engine.store.findCase("RA-2026-000001"))
        #expect(state.status == .completed)
        #expect(state.completion != nil)
        let sms = try await bench.events("notification.sms.requested")
        #expect(sms.filter { $0.id.hasPrefix("RA-2026-000001/") }.map(\.id).contains { $0.contains("completed") })
        let progress = try await bench.events("application.progress.updated")
        #expect(progress.count == state.revision)
        #expect(Set(progress.map(\.id)).count == progress.count)
        // Nothing dead-lettered on the way.
        #expect(try await bench.events(Repo.catalog.deadLetterTopic).isEmpty)
    }

    @Test(
        "A resubmission on application.step.resubmitted requests the step again; one whose corrected application breaks the schema is dead-lettered with the field"
    )
    func resubmissionThroughItsTopic() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        let id = "RA-2026-000010"
        #expect(engine.topics.contains(Resubmission.eventType))
        try await bench.submit(Repo.restaurant(id: id, area: 80, seats: 20, sign: false))
        try await bench.pump(engine)
        try await bench.decide(id, "market-regulation", "business-licence")
        try await bench.pump(engine)
        try await bench.decide(id, "food-safety", "food-business-licence", outcome: "rejected")
        try await bench.pump(engine)
        #expect(try engine.store.findCase(id)?.state.step("food-licence")?.status == .awaitingResubmission)

        func resubmit(_ eventId: String, application: JSONValue?) async throws {
            var body: JSONObject = [
                "applicationId": .string(id), "workflow": "restaurant-opening", "step": "food-licence",
                "resubmittedAt": .string(ChinaTime.rfc3339(bench.clock.now())),
            ]
            if let application { body["application"] = application }
            _ = try await bench.publisher.publish(
                Event(
                    id: eventId, type: Resubmission.eventType, source: "test-window", subject: nil,
                    time: bench.clock.now(), data: JSONValue.object(body).serialized()))
        }
        var broken = Repo.restaurant(id: id, area: 80, seats: 20, sign: false)
        broken.set("yesterday", at: "/submittedAt")
        try await resubmit("resubmit-broken", application: broken)
        let refused = try await bench.pump(engine)
        #expect(refused.deadLettered == 1)
        let deadLetter = try #require(try await readTopic(bench.log, Repo.catalog.deadLetterTopic).last)
        #expect(deadLetter.header("dl_reason")?.contains("/submittedAt") == true, "\(deadLetter.header("dl_reason") ?? "")")
        #expect(try engine.store.findCase(id)?.state.step("food-licence")?.attempt == 1)

        var corrected = Repo.restaurant(id: id, area: 80, seats: 20, sign: false)
        corrected.set(.number(85), at: "/business/areaSquareMetres")
        try await resubmit("resubmit-corrected", application: corrected)
        let accepted = try await bench.pump(engine)
        #expect(accepted.applied == 1 && accepted.deadLettered == 0)
        let state = try #require(try engine.store.findCase(id)?.state)
        #expect(state.step("food-licence")?.status == .requested)
        #expect(state.step("food-licence")?.attempt == 2)
        let again = try #require(try await bench.requests().first { $0.id == "\(id)/request/food-licence/2" })
        #expect(again.body[pointer: "/details/areaSquareMetres"]?.doubleValue == 85)
    }

    @Test("Conditions switch the fire inspection and the signboard permit off for a small restaurant without a sign")
    func conditionsSwitchSteps() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        try await bench.submit(Repo.restaurant(id: "RA-2026-000002", area: 80, seats: 20, sign: false))
        try await bench.pump(engine)
        var answered = Set<String>()
        _ = try await bench.approveAll(answered: &answered)
        try await bench.pump(engine)
        let items = Set(try await bench.requests().map { $0.body[pointer: "/item"]!.stringValue! })
        #expect(!items.contains("fire-safety-inspection"))
        #expect(!items.contains("outdoor-signboard-permit"))
        #expect(items.contains("food-business-licence"))
        _ = try await bench.approveAll(answered: &answered)
        try await bench.pump(engine)
        #expect(try engine.store.findCase("RA-2026-000002")?.state.status == .completed)
    }

    @Test("The same batch applied twice (a redelivery) emits nothing twice")
    func redeliveredBatch() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        try await bench.submit(Repo.restaurant(id: "RA-2026-000003"))
        let records = try await readTopic(bench.log, "application.restaurant.submitted")
        let first = try await engine.process(records)
        let second = try await engine.process(records)
        #expect(first.applied == 1 && first.emitted > 0)
        #expect(second.applied == 0 && second.duplicates == 1 && second.emitted == 0)
        while try await engine.relayOnce() > 0 {}
        let requests = try await bench.requests()
        #expect(requests.count == 1)
        // A department's exact retry (a new event id, the same decision) is a no-op too.
        try await bench.decide("RA-2026-000003", "market-regulation", "business-licence", id: "d1")
        try await bench.decide("RA-2026-000003", "market-regulation", "business-licence", id: "d1-retry")
        try await bench.pump(engine)
        let afterRetry = try await bench.requests()
        #expect(afterRetry.count == 5)  // the licence and four in parallel (no fire inspection at 120 m², 48 seats)
        #expect(Set(afterRetry.map(\.id)).count == afterRetry.count)
    }

    @Test("A relay that crashed between publishing and marking sent republishes the same ids, and only those")
    func relayCrashRepublishesSameIds() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        try await bench.submit(Repo.restaurant(id: "RA-2026-000004"))
        try await bench.apply(engine)
        // The crash: the rows are published but not marked sent.
        let rows = try await engine.store.unsent()
        #expect(!rows.isEmpty)
        try await engine.publish(rows)
        // The restart relays them again.
        let restarted = try bench.engine()
        #expect(try await restarted.relayOnce() == rows.count)
        #expect(try await restarted.relayOnce() == 0)
        var published: [String] = []
        for topic in Set(rows.map(\.topic)) { published += try await bench.events(topic).map(\.id) }
        let expected = rows.map(\.eventId)
        #expect(published.sorted() == (expected + expected).sorted())
    }

    @Test("A decision for an unknown application is dead-lettered with the reason; a conflicting one too")
    func unknownAndConflictingDecisions() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        try await bench.decide("RA-2026-000999", "market-regulation", "business-licence")
        let outcome = try await bench.pump(engine)
        #expect(outcome.deadLettered == 1)
        var dead = try await readTopic(bench.log, Repo.catalog.deadLetterTopic)
        #expect(dead.count == 1)
        #expect(dead.first?.header(DeadLetter.code) == "unknown-application")
        #expect(dead.first?.header(DeadLetter.reason)?.contains("RA-2026-000999") == true)
        #expect(dead.first?.header(DeadLetter.originalTopic) == "approval.market-regulation.decided")

        try await bench.submit(Repo.restaurant(id: "RA-2026-000005"))
        try await bench.pump(engine)
        try await bench.decide("RA-2026-000005", "market-regulation", "business-licence", outcome: "approved")
        try await bench.decide("RA-2026-000005", "market-regulation", "business-licence", outcome: "rejected")
        // A step never requested.
        try await bench.decide("RA-2026-000005", "tax", "tax-registration-x", outcome: "approved")
        try await bench.pump(engine)
        dead = try await readTopic(bench.log, Repo.catalog.deadLetterTopic)
        // (Partitions are read one after another: compare without order.)
        #expect(
            dead.compactMap { $0.header(DeadLetter.code) }.sorted()
                == ["conflicting-decision", "unknown-application", "unknown-step"])
        // Running the same batch again dead-letters nothing again.
        try await bench.pump(try bench.engine())
        #expect(try await readTopic(bench.log, Repo.catalog.deadLetterTopic).count == 3)
    }

    @Test("Two decisions for one application in one batch both count")
    func twoDecisionsInOneBatch() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        try await bench.submit(Repo.restaurant(id: "RA-2026-000006", area: 80, seats: 20, sign: false))
        try await bench.pump(engine)
        try await bench.decide("RA-2026-000006", "market-regulation", "business-licence")
        try await bench.pump(engine)
        // All three parallel steps decided before the orchestrator polls again: one batch.
        try await bench.decide("RA-2026-000006", "food-safety", "food-business-licence")
        try await bench.decide("RA-2026-000006", "environment", "environmental-filing")
        try await bench.decide("RA-2026-000006", "tax", "tax-registration")
        let outcome = try await bench.pump(engine)
        #expect(outcome.applied == 3)
        let state = try #require(try engine.store.findCase("RA-2026-000006")?.state)
        #expect(state.status == .completed)
        #expect(state.steps.filter { $0.status == .approved }.count == 4)
    }

    @Test("A timer survives a restart and fires once")
    func timerSurvivesRestart() async throws {
        let bench = try await Bench()
        do {
            let engine = try bench.engine()
            try await bench.submit(Repo.restaurant(id: "RA-2026-000007"))
            try await bench.pump(engine)
            #expect(try await engine.fireDueTimers(partitions: nil).applied == 0)
        }
        // Restart; the business licence's SLA is 3 working days: 2026-03-05 is its due date.
        let engine = try bench.engine()
        await bench.clock.advance(to: Repo.at("2026-03-10", 12))
        let fired = try await engine.fireDueTimers(partitions: nil)
        #expect(fired.applied == 2)  // the reminder and the overdue escalation
        while try await engine.relayOnce() > 0 {}
        #expect(try await engine.fireDueTimers(partitions: nil).applied == 0)
        let again = try bench.engine()
        #expect(try await again.fireDueTimers(partitions: nil).applied == 0)
        let alerts = try await bench.events("supervision.alert.raised")
        #expect(alerts.count == 1)
        let state = try #require(try engine.store.findCase("RA-2026-000007")?.state)
        #expect(state.step("business-licence")?.escalated == true)
        try await engine.refreshGauges()
        #expect(engine.stats.snapshot.overdueSteps == 1)
        #expect(engine.stats.snapshot.openApplications == 1)
        // Timers of partitions not assigned here are left alone.
        #expect(try await engine.store.dueTimers(at: bench.clock.now(), partitions: []).isEmpty)
    }

    @Test("The consumer, relay and timer services run and stop on cancellation with the batch committed")
    func servicesRunAndStop() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        try await bench.submit(Repo.restaurant(id: "RA-2026-000008"))
        let task = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await engine.runConsumer() }
                group.addTask { try await engine.runRelay() }
                try await group.waitForAll()
            }
        }
        var requests: [Event] = []
        for _ in 0..<200 {
            requests = try await bench.requests()
            if !requests.isEmpty { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        task.cancel()
        _ = try? await task.value
        #expect(requests.count == 1)
        let committed = try await bench.log.committedOffsets(
            group: OrchestratorEngine.group, topics: ["application.restaurant.submitted"])
        #expect(committed.values.reduce(0, +) == 1)
    }
}
