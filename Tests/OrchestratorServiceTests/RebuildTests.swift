import EventLog
import EventModel
import Foundation
import GRDB
import Orchestrator
import OrchestratorService
import TestSupport
import Testing

@Suite("Rebuilding the orchestrator's state from the topics", .timeLimit(.minutes(2)))
struct RebuildTests {
    /// Approves every approval request not answered yet but `waiting`'s fire inspection, which
    /// nobody answers. - Returns: how many requests were new.
    @discardableResult
    static func answer(_ bench: Bench, _ answered: inout Set<String>, leavingWaiting waiting: String) async throws
        -> Int
    {
        let requests = try await bench.requests().filter { !answered.contains($0.id) }
        for request in requests {
            answered.insert(request.id)
            let body = request.body
            if body[pointer: "/applicationId"]?.stringValue == waiting,
                body[pointer: "/item"]?.stringValue == "fire-safety-inspection"
            {
                continue
            }
            try await bench.approve(request: request)
        }
        return requests.count
    }

    /// `engine`'s store rebuilt into the bench's `rebuilt.sqlite`, on the bench's clock.
    static func rebuild(_ engine: OrchestratorEngine, _ bench: Bench) async throws -> RebuildReport {
        try await StoreRebuild.rebuild(
            live: engine.store, into: bench.directory.appendingPathComponent("rebuilt.sqlite").path,
            rules: Repo.rules, calendar: Repo.calendar, log: bench.log, catalog: Repo.catalog, clock: bench.clock)
    }

    /// Rebuilds `engine`'s store and expects no difference, `applications` cases and timers fired.
    static func expectRebuiltWithoutDifference(_ engine: OrchestratorEngine, _ bench: Bench, applications: Int)
        async throws
    {
        let report = try await rebuild(engine, bench)
        #expect(report.differences.isEmpty, "\(report.differences.map(\.description).joined(separator: "\n"))")
        #expect(report.applications == applications)
        #expect(report.timersFired >= 2)
    }

    /// Two restaurant applications completed, one left waiting on its fire inspection until its
    /// reminder and overdue timers fired: the live store as a normal run leaves it.
    static func normalRun(_ bench: Bench) async throws -> OrchestratorEngine {
        let engine = try bench.engine()
        for id in ["RA-2026-800001", "RA-2026-800002", "RA-2026-800003"] {
            try await bench.submit(Repo.restaurant(id: id, area: 200, seats: 60, sign: true))
        }
        try await bench.pump(engine)
        var answered = Set<String>()
        for _ in 0..<4 {
            if try await answer(bench, &answered, leavingWaiting: "RA-2026-800003") == 0 { break }
            await bench.clock.advance(by: .seconds(600))
            try await bench.pump(engine)
        }
        // Weeks later: the waiting step's reminder and overdue timers fire.
        await bench.clock.advance(by: .seconds(30 * 86_400))
        #expect(try await engine.fireDueTimers(partitions: nil).applied >= 2)
        while try await engine.relayOnce() > 0 {}
        return engine
    }

    @Test("After a normal run the rebuilt state has no difference with the live store")
    func noDifferenceAfterANormalRun() async throws {
        let bench = try await Bench()
        let engine = try await Self.normalRun(bench)
        #expect(try engine.store.findCase("RA-2026-800001")?.state.status == .completed)
        #expect(try engine.store.findCase("RA-2026-800003")?.state.step("fire-inspection")?.escalated == true)
        try await Self.expectRebuiltWithoutDifference(engine, bench, applications: 3)
        // Nothing was published by the rebuild.
        let rebuilt = try OrchestratorStore(path: bench.directory.appendingPathComponent("rebuilt.sqlite").path)
        #expect(try await rebuilt.unsent(limit: 10_000).count > 0, "the rebuilt outbox is kept, not relayed")
    }

    @Test(
        "An orchestrator that applied its inputs days after they were appended (stopped, then catching up), or is stopped now, is rebuilt without a difference: its own instants, not the records' timestamps or the clock's"
    )
    func catchingUpAfterAStopIsRebuiltAsItHappened() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        // Submitted on Monday 2 March 2026; the orchestrator, stopped, applies them on Thursday.
        for id in ["RA-2026-810001", "RA-2026-810002"] {
            try await bench.submit(Repo.restaurant(id: id, area: 200, seats: 60, sign: true))
        }
        await bench.clock.advance(by: .seconds(3 * 86_400))
        try await bench.pump(engine)
        // The departments answer that afternoon; the orchestrator reads their decisions a week later,
        // except the second application's fire inspection, which nobody answers.
        var answered = Set<String>()
        for _ in 0..<3 {
            await bench.clock.advance(by: .seconds(4 * 3_600))
            try await Self.answer(bench, &answered, leavingWaiting: "RA-2026-810002")
            await bench.clock.advance(by: .seconds(7 * 86_400))
            try await bench.pump(engine)
        }
        // The waiting step's timers fire, and the live timer loop fires them late, days after due.
        await bench.clock.advance(by: .seconds(40 * 86_400))
        #expect(try await engine.fireDueTimers(partitions: nil).applied >= 2)
        while try await engine.relayOnce() > 0 {}
        let first = try #require(try engine.store.findCase("RA-2026-810001")).state
        #expect(first.status == .completed)
        // The business licence was requested on Thursday, not on Monday when it was submitted.
        let licence = try #require(first.steps.first)
        #expect(licence.requestedAt.map { Timestamp.format($0) }?.hasPrefix("2026-03-05") == true, "\(licence)")
        // A third application gets its first request, and then the orchestrator stops for a month:
        // its timers fall due, and nobody fires them.
        try await bench.submit(Repo.restaurant(id: "RA-2026-810003", area: 80, seats: 20, sign: false))
        await bench.clock.advance(by: .seconds(3_600))
        try await bench.pump(engine)
        await bench.clock.advance(by: .seconds(30 * 86_400))

        try await Self.expectRebuiltWithoutDifference(engine, bench, applications: 3)
    }

    @Test(
        "A step's state changed by SQL in the live store is reported with the application and the step; the command exits 1, and 0 on an intact store"
    )
    func tamperedStoreIsReported() async throws {
        let executable = try onewindowExecutable().path
        let bench = try await Bench()
        let engine = try await Self.normalRun(bench)
        let arguments = [
            "orchestrator", "rebuild", "--bus", "embedded:" + bench.directory.appendingPathComponent("bus.sqlite").path,
            "--store", bench.storePath, "--catalog", repositoryRoot.appendingPathComponent("Topics").path,
            "--rules", Repo.rulesDirectory.path, "--view", bench.directory.appendingPathComponent("no-view.sqlite").path,
        ]
        // The command's clock is the system's, later than the test clock's: the timers it fires
        // to the end are those the live store fired (the other cases' were cancelled).
        let intact = try await runProgram(executable, arguments)
        let intactText = String(decoding: intact.output, as: UTF8.self)
        #expect(intact.status == 0, "\(intactText)\(String(decoding: intact.error, as: UTF8.self))")
        #expect(intactText.contains("no difference"), "\(intactText)")

        let (state, _) = try #require(try engine.store.findCase("RA-2026-800002"))
        let index = try #require(state.steps.firstIndex { $0.id == "fire-inspection" })
        try await engine.store.pool.write { db in
            try db.execute(
                sql: "UPDATE cases SET body = json_set(body, '$.steps[\(index)].status', 'rejected') WHERE application_id = ?",
                arguments: ["RA-2026-800002"])
        }
        let report = try await Self.rebuild(engine, bench)
        #expect(
            report.differences.map(\.description) == [
                "RA-2026-800002: step fire-inspection state: live rejected, rebuilt approved"
            ])

        let tampered = try await runProgram(executable, arguments)
        let text = String(decoding: tampered.output, as: UTF8.self)
        #expect(tampered.status == 1, "\(String(decoding: tampered.error, as: UTF8.self))")
        #expect(text.contains("RA-2026-800002: step fire-inspection state: live rejected, rebuilt approved"), "\(text)")
        #expect(String(decoding: tampered.error, as: UTF8.self).contains("difference(s)"))
    }
}
