import EventLog
import EventModel
import Foundation
import GRDB
@testable import OrchestratorService
import Testing
import TestSupport

/// Published outbox rows deleted after the retention (``OrchestratorStore/prunePublished(keeping:now:chunk:)``),
/// never a row the relay has not published, and the rebuild's comparison after it.
@Suite("Deleting published outbox rows", .timeLimit(.minutes(2)))
struct OutboxPruningTests {
    static let day = Duration.seconds(86_400)

    static func outboxSeqs(_ store: OrchestratorStore) async throws -> [Int64] {
        try await store.pool.read { db in try Int64.fetchAll(db, sql: "SELECT seq FROM outbox ORDER BY seq") }
    }

    @Test("Rows published more than the retention ago go, unpublished rows stay whatever their age, the relay goes on")
    func publishedRowsGoAfterTheRetention() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        let store = engine.store
        for id in ["RA-2026-810001", "RA-2026-810002", "RA-2026-810003"] {
            try await bench.submit(Repo.restaurant(id: id))
        }
        try await bench.pump(engine)
        try await store.recordRelayPosition()
        let published = try await Self.outboxSeqs(store)
        #expect(published.count >= 9, "received notifications, progress and first requests: \(published.count)")
        let start = Date()

        // The first pass notes where the outbox ends now; nothing is old enough yet.
        var report = try await store.prunePublished(keeping: Self.day, now: start)
        #expect(report.deleted == 0)
        #expect(try await Self.outboxSeqs(store) == published)

        // Two more applications, applied but not published.
        for id in ["RA-2026-810004", "RA-2026-810005"] {
            try await bench.submit(Repo.restaurant(id: id))
        }
        try await bench.apply(engine)
        let unsent = try await store.unsent(limit: 10_000).map(\.seq)
        #expect(!unsent.isEmpty)

        // Two days later the published rows go, in chunks; the unpublished ones stay.
        report = try await store.prunePublished(keeping: Self.day, now: start + 2 * 86_400, chunk: 4)
        #expect(report.deleted == published.count)
        #expect(report.prunedThrough == published.last)
        #expect(report.horizonMilliseconds > 0)
        #expect(try await Self.outboxSeqs(store) == unsent)
        #expect(try await store.outboxPruning().prunedThrough == published.last)

        // However old, a row the relay has not published is kept.
        report = try await store.prunePublished(keeping: Self.day, now: start + 30 * 86_400)
        #expect(report.deleted == 0)
        #expect(try await store.unsent(limit: 10_000).map(\.seq) == unsent)

        // The relay publishes them (once each), and a later pass deletes them too.
        while try await engine.relayOnce() > 0 {}
        try await store.recordRelayPosition()
        report = try await store.prunePublished(keeping: Self.day, now: start + 32 * 86_400)
        #expect(report.deleted == unsent.count)
        #expect(try await Self.outboxSeqs(store).isEmpty)
        let progress = try await bench.events("application.progress.updated")
        #expect(Set(progress.map(\.id)).count == progress.count, "no emission published twice")
        #expect(Set(progress.compactMap { $0.body[pointer: "/applicationId"]?.stringValue }).count == 5)

        // New rows after pruning take new numbers (AUTOINCREMENT): none is mistaken for a deleted one.
        try await bench.submit(Repo.restaurant(id: "RA-2026-810006"))
        try await bench.apply(engine)
        let later = try await store.unsent(limit: 10_000).map(\.seq)
        #expect(later.first.map { $0 > report.prunedThrough } == true, "\(later)")
    }

    /// The rebuild tests' normal run, everything published, then two passes two days apart: the
    /// live store's whole outbox deleted.
    static func prunedRun(_ bench: Bench) async throws -> (OrchestratorEngine, OutboxPruningReport) {
        let engine = try await RebuildTests.normalRun(bench)
        try await engine.store.recordRelayPosition()
        let start = Date()
        try await engine.store.prunePublished(keeping: Self.day, now: start)
        return (engine, try await engine.store.prunePublished(keeping: Self.day, now: start + 2 * 86_400))
    }

    @Test("The rebuild finds no difference after pruning, and still finds a live row it did not make")
    func rebuildAfterPruning() async throws {
        let bench = try await Bench()
        let (engine, report) = try await Self.prunedRun(bench)
        #expect(report.deleted > 0)
        #expect(try await Self.outboxSeqs(engine.store).isEmpty)

        let rebuilt = try await StoreRebuild.rebuild(
            live: engine.store, into: bench.directory.appendingPathComponent("rebuilt.sqlite").path,
            rules: Repo.rules, calendar: Repo.calendar, log: bench.log, catalog: Repo.catalog, clock: bench.clock)
        #expect(rebuilt.differences.isEmpty, "\(rebuilt.differences.map(\.description).joined(separator: "\n"))")
        #expect(rebuilt.emissionsLeftOut == report.deleted, "every deleted row, and only those, left out")
        #expect(rebuilt.prunedHorizon == Date(millisecondsSince1970: report.horizonMilliseconds))

        // A row in the live outbox that the rebuild does not make is still reported.
        try await engine.store.pool.write { db in
            try OutboxTable.insert(
                partition: 0, topic: "application.progress.updated", key: "RA-2026-800001", eventId: "stray",
                type: "application.progress.updated", timeMilliseconds: 0, body: Data("{}".utf8), db)
        }
        let again = try await StoreRebuild.rebuild(
            live: engine.store, into: bench.directory.appendingPathComponent("rebuilt-2.sqlite").path,
            rules: Repo.rules, calendar: Repo.calendar, log: bench.log, catalog: Repo.catalog, clock: bench.clock)
        #expect(again.differences.map(\.what) == ["emitted application.progress.updated stray"])
    }

    @Test("orchestrator rebuild says how many emissions the live store's retention left out, and finds no difference")
    func rebuildCommandSaysWhatItLeftOut() async throws {
        let bench = try await Bench()
        let deleted = try await Self.prunedRun(bench).1.deleted
        let rebuilt = try await runProgram(
            try onewindowExecutable().path,
            [
                "orchestrator", "rebuild", "--bus",
                "embedded:" + bench.directory.appendingPathComponent("bus.sqlite").path, "--store", bench.storePath,
                "--catalog", repositoryRoot.appendingPathComponent("Topics").path, "--rules",
                Repo.rulesDirectory.path, "--view", bench.directory.appendingPathComponent("no-view.sqlite").path,
            ])
        let text = String(decoding: rebuilt.output, as: UTF8.self)
        #expect(rebuilt.status == 0, "\(text)\(String(decoding: rebuilt.error, as: UTF8.self))")
        #expect(text.contains("\(deleted) rebuilt emission(s) up to "), "\(text)")
        #expect(text.contains("not compared: the live store deleted its published outbox rows"), "\(text)")
        #expect(text.contains("no difference"), "\(text)")
    }

    @Test("orchestrator run prunes unless told to keep published rows for ever")
    func theServiceIsThereUnlessTurnedOff() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        let pruning = "orchestrator outbox pruning"
        #expect(try OrchestratorServices.make(engine, metricsPort: nil).map { "\($0)" }.contains(pruning))
        #expect(
            try !OrchestratorServices.make(engine, metricsPort: nil, keepPublished: nil).map { "\($0)" }.contains(pruning))
    }
}
