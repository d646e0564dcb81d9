import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import Orchestrator
import OrchestratorService
import TestSupport
import Testing

/// `onewindow orchestrator run` killed with SIGKILL again and again while 1,000 restaurant
/// applications run, and started again each time: every application completes, and every
/// request and notification was emitted exactly once (``EmissionCheck``).
///
/// The kills are aimed, not only random: every other kill waits until the store's write lock is
/// held (a batch's transaction, or the relay marking rows sent, under way), the others until the
/// outbox has rows not yet sent (a publish under way or due). After each kill, before the restart,
/// the test looks at what the dead process left: outbox rows unsent, rows already on the bus but
/// not marked sent (published again after the restart), inputs applied whose offsets were not
/// committed (delivered again and dropped by id). Those counts are the evidence that the kills
/// landed mid-transaction and mid-publish; the test requires some of each kind it aims at.
///
/// Departments are an in-process responder approving at once (the simulators have tests of their
/// own); the orchestrator runs with `--session-timeout 1`, so that a restarted process takes the
/// partitions of the killed one after a second instead of the default ten.
@Suite("The orchestrator killed with SIGKILL and restarted")
struct CrashTests {
    /// What one kill found.
    struct Kill: CustomStringConvertible {
        var aim: String
        var hit = false
        var unsent = 0
        var publishedUnmarked = 0
        var appliedUncommitted = 0
        /// Seconds from the start of the test to the kill, from the restart to the first outbox
        /// row written and sent by the restarted process, and of the look at the store and bus.
        var at = 0.0
        var firstRow = 0.0
        var looking = 0.0

        var description: String {
            let times = String(
                format: "at %.1f s (first row written and sent %.1f s after the restart, looked %.2f s)", at, firstRow,
                looking)
            return
                "\(aim)\(hit ? "" : " (missed, killed anyway)") \(times): \(unsent) unsent, \(publishedUnmarked) published unmarked, \(appliedUncommitted) applied uncommitted"
        }
    }

    static let applications = 1000
    static let kills = 12

    @Test(.timeLimit(.minutes(6)))
    func killedAndRestarted() async throws {
        let executable = try onewindowExecutable()
        let bench = try await Bench()
        let bus = "embedded:" + bench.directory.appendingPathComponent("bus.sqlite").path
        var incarnation = 0
        func start() throws -> OrchestratorProcess {
            incarnation += 1
            return try OrchestratorProcess(
                executable: executable, bus: bus, store: bench.storePath,
                logFile: bench.directory.appendingPathComponent("orchestrator-\(incarnation).log"),
                arguments: ["--log-level", "error", "--session-timeout", "1"])
        }
        let ids = (1...Self.applications).map { String(format: "RA-2026-7%05d", $0) }
        let workflow = try #require(Repo.rules.current["restaurant-opening"])
        _ = try OrchestratorStore(path: bench.storePath)  // created and migrated before the probe opens it
        let probe = try StoreProbe(path: bench.storePath)
        let responder = try await Responder(bench: bench, group: "test-crash-responder")
        let responding = Task {
            while !Task.isCancelled { try await responder.round() }
        }
        let started = ContinuousClock.now
        var orchestrator = try start()
        var kills: [Kill] = []
        // The applications come in waves, one after each restart, so that work is under way at
        // every kill; the last wave comes with the last restart.
        let waves = stride(from: 0, to: ids.count, by: ids.count / Self.kills + 1).map {
            Array(ids[$0..<min($0 + ids.count / Self.kills + 1, ids.count)])
        }
        for index in 0..<Self.kills {
            if index < waves.count {
                for id in waves[index] {
                    try await bench.submit(Repo.restaurant(id: id, area: 200, seats: 60, sign: true))
                }
            }
            // Work of this incarnation under way — a row its consumer wrote and a row its relay
            // marked sent — then a random moment more.
            let before = try probe.progress()
            let restarted = ContinuousClock.now
            while ContinuousClock.now - restarted < .seconds(15) {
                let now = try probe.progress()
                if now.written > before.written && now.sent > before.sent { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            var found = Kill(aim: index.isMultiple(of: 2) ? "mid-transaction" : "mid-publish")
            found.firstRow = (ContinuousClock.now - restarted) / .seconds(1)
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...150)))
            for _ in 0..<2000 {
                if index.isMultiple(of: 2) {
                    found.hit = try probe.writeLockHeld()
                } else {
                    found.hit = try probe.unsentRows() > 0
                }
                if found.hit { break }
                try await Task.sleep(for: .milliseconds(1))
            }
            try await orchestrator.kill9()
            found.at = (ContinuousClock.now - started) / .seconds(1)
            found.unsent = try probe.unsentRows()
            found.publishedUnmarked = try await probe.publishedButUnmarked(bench.log)
            found.appliedUncommitted = try await probe.appliedButUncommitted(bench.log)
            found.looking = (ContinuousClock.now - started) / .seconds(1) - found.at
            kills.append(found)
            orchestrator = try start()
        }
        for wave in waves.dropFirst(Self.kills) {
            for id in wave { try await bench.submit(Repo.restaurant(id: id, area: 200, seats: 60, sign: true)) }
        }
        // Completion takes what the orchestrator needs for 7,000 inputs and 16,000 outputs: on a
        // quiet machine well under a minute, on one shared by other builds several.
        let deadline = ContinuousClock.now.advanced(by: .seconds(240))
        while responder.completedCount < ids.count, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        // The outbox drained: what the relay publishes last is seen before the check.
        var draining = 0
        while try probe.unsentRows() > 0, draining < 200 {
            draining += 1
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .milliseconds(300))
        responding.cancel()
        if case .failure(let error) = await responding.result, !(error is CancellationError) {
            Issue.record("the responder stopped: \(error)")
        }
        await responder.close()
        let status = try await orchestrator.stop()
        let elapsed = ContinuousClock.now - started
        let lastKill = kills.last?.at ?? 0

        let summary = kills.enumerated().map { "  kill \($0.offset + 1): \($0.element)" }.joined(separator: "\n")
        let check = EmissionCheck(
            responder.seen, applications: ids, steps: workflow.steps,
            moments: ["application-received", "application-completed"])
        print(
            """
            CrashTests: \(ids.count) applications, \(kills.count) kills in \(elapsed) (the last kill at \(lastKill) s); \(check.distinctRequests) requests \
            and \(check.distinctNotifications) notifications, \(check.repeatedDeliveries) repeated deliveries
            \(summary)
            """)
        #expect(status == 0, "the last orchestrator stops cleanly on SIGTERM:\n\(orchestrator.logText)")
        #expect(kills.count >= 10)
        #expect(check.problems.isEmpty, "\(check.problems.prefix(20).joined(separator: "\n"))")
        #expect(check.distinctRequests == ids.count * workflow.steps.count)
        #expect(check.distinctNotifications == ids.count * 2)
        // The kills landed where they were aimed: with the store's write lock held, and with rows
        // in the outbox not sent yet.
        let inTransaction = kills.filter { $0.aim == "mid-transaction" && $0.hit }.count
        let inPublish = kills.filter { $0.unsent > 0 }.count
        #expect(inTransaction >= 3, "kills with the store's write lock held: \(inTransaction)\n\(summary)")
        #expect(inPublish >= 3, "kills with outbox rows unsent: \(inPublish)\n\(summary)")
        // A kill after the relay's append and before it marked the rows sent leaves rows on the
        // bus that the restarted relay publishes again with the same ids (the responder itself
        // never re-reads), so the readers see those ids twice and drop the second copy. Where such
        // a kill landed is chance (a loaded machine may give none): when one did, the ids repeat.
        let publishedUnmarked = kills.map(\.publishedUnmarked).reduce(0, +)
        if publishedUnmarked > 0 {
            #expect(
                check.repeatedDeliveries > 0,
                "\(publishedUnmarked) rows were on the bus unmarked at kills, yet no id came twice")
        }
        let store = try OrchestratorStore(path: bench.storePath)
        let states = try ids.compactMap { try store.findCase($0)?.state }
        #expect(states.count == ids.count)
        #expect(states.filter { $0.status != .completed }.map(\.applicationId).isEmpty)
        #expect(try await readTopic(bench.log, Repo.catalog.deadLetterTopic).isEmpty, "nothing was dead-lettered")
    }
}

/// Looks into the store of an orchestrator process from the outside (another SQLite connection,
/// never waiting for a lock): whether a write transaction is under way, and what the outbox and
/// the applied ids say after a kill.
struct StoreProbe {
    let queue: DatabaseQueue

    init(path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .immediateError
        queue = try DatabaseQueue(path: path, configuration: configuration)
    }

    /// Whether another connection holds the write lock now (`BEGIN IMMEDIATE` is refused as busy).
    /// When it is free, the probe takes and releases it at once.
    func writeLockHeld() throws -> Bool {
        do {
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: "BEGIN IMMEDIATE")
                try db.execute(sql: "ROLLBACK")
            }
            return false
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
            return true
        }
    }

    /// Outbox rows after the relay's recorded position (a row published since is still unsent
    /// here: a restart publishes it again).
    static let unsent = "seq > (SELECT sent_through FROM relay_position)"

    /// The last outbox row written, and the relay's recorded position.
    func progress() throws -> (written: Int64, sent: Int) {
        try retryingBusy {
            try queue.read { db in
                let written = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM outbox") ?? 0
                let sent = try Int.fetchOne(db, sql: "SELECT sent_through FROM relay_position") ?? 0
                return (written, sent)
            }
        }
    }

    func unsentRows() throws -> Int {
        try retryingBusy {
            try queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE \(Self.unsent)") ?? 0 }
        }
    }

    /// Unsent outbox rows whose event is on the bus already: the kill came between the relay's
    /// append and its marking the rows sent.
    func publishedButUnmarked(_ log: any EventLog) async throws -> Int {
        let rows = try await queue.read { db in
            try Row.fetchAll(
                db,
                sql:
                    "SELECT topic, partition, event_id FROM outbox WHERE \(Self.unsent) AND dead_letter IS NULL ORDER BY seq LIMIT 500"
            )
        }
        var wanted: [TopicPartition: Set<String>] = [:]
        for row in rows { wanted[TopicPartition(row["topic"], row["partition"]), default: []].insert(row["event_id"]) }
        var found = 0
        for (partition, ids) in wanted {
            let end = try await log.watermarks(partition).high
            let from = max(0, end - Int64(ids.count) - 50)
            guard end > from else { continue }
            let records = try await log.read(partition, from: from, maxRecords: Int(end - from))
            found += Set(records.compactMap { $0.header("ce_id") }).intersection(ids).count
        }
        return found
    }

    /// Inputs the store applied whose offsets the group had not committed: the kill came between
    /// a batch's transaction and its commit.
    func appliedButUncommitted(_ log: any EventLog) async throws -> Int {
        let topics = Repo.rules.inputTopics(in: Repo.catalog)
        let committed = try await log.committedOffsets(group: OrchestratorEngine.group, topics: topics)
        var ids: [String] = []
        for spec in Repo.catalog.topicSpecs where topics.contains(spec.name) {
            for number in 0..<spec.partitions {
                let partition = TopicPartition(spec.name, number)
                let from = committed[partition] ?? 0
                ids += try await log.read(partition, from: from, maxRecords: 100).compactMap { $0.header("ce_id") }
            }
        }
        guard !ids.isEmpty else { return 0 }
        let candidates = ids
        return try await queue.read { db in
            try candidates.filter {
                try Bool.fetchOne(db, sql: "SELECT 1 FROM applied_inputs WHERE event_id = ?", arguments: [$0]) ?? false
            }.count
        }
    }

    /// A read finds the store busy only while the orchestrator checkpoints; try again shortly.
    private func retryingBusy<T>(_ body: () throws -> T) throws -> T {
        for _ in 0..<100 {
            do { return try body() } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
                usleep(2000)
            }
        }
        return try body()
    }
}
