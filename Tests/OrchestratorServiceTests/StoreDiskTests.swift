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
@Suite("The orchestrator's store on a full disk and read-only", .timeLimit(.minutes(2)))
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

    /// What one start of the orchestrator on the read-only store did.
    struct Refusal {
        var what: String
        var status: Int32
        var message: String
        var seconds: Double
    }

    /// The real `onewindow orchestrator run` started on a store it cannot write, with applications
    /// waiting on the bus: as root, the process runs as user nobody (``ReadOnlyFiles``; chmod
    /// does not stop root), the bus given to it, the store root's with mode 0444. Twice: the
    /// store's folder 0555 too, then the folder writable (SQLite opens the file for reading).
    /// Each start ends by itself with status 74 and one error naming the store and saying to make
    /// it writable, commits no offset of its consumer group, and leaves the store's bytes as they
    /// were (`integrity_check` ok). Made writable, the next start applies every application
    /// once: each gets one request per step and completes, with one notification per moment.
    ///
    /// (A store becoming read-only while the orchestrator runs cannot be made here: a chmod does
    /// not reach a file already open, and Linux refuses to remount read-only a mount with a file
    /// open for writing (EBUSY). Such a failure in the middle of a batch is the store's write
    /// failing with SQLITE_READONLY or SQLITE_IOERR, which `fileFailure` names as above.)
    @Test("a read-only store: the orchestrator exits 74 naming it, commits nothing, and completes every application once writable")
    func readOnly() async throws {
        if let reason = try ReadOnlyFiles.reportUnavailable(
            test: "StoreDiskTests.readOnly", part: "disk-readonly-store", title: "A read-only orchestrator store")
        {
            try Test.cancel(Comment(rawValue: reason))
        }
        let executable = try onewindowExecutable()
        let bench = try await Bench()
        let bus = "embedded:" + bench.directory.appendingPathComponent("bus.sqlite").path
        let folder = bench.directory.appendingPathComponent("store")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { chmod(folder.path, 0o755) }
        let storePath = folder.appendingPathComponent("orchestrator.sqlite").path
        // The store as an earlier run left it: created, migrated, closed.
        try OrchestratorStore(path: storePath).pool.close()
        let workflow = try #require(Repo.rules.current["restaurant-opening"])
        let ids = (1...5).map { String(format: "RA-2026-%06d", 950 + $0) }
        for id in ids { try await bench.submit(Repo.restaurant(id: id, area: 200, seats: 60, sign: true)) }
        let topics = Repo.rules.inputTopics(in: Repo.catalog)
        let committedBefore = try await bench.log.committedOffsets(group: OrchestratorEngine.group, topics: topics)
        // The bus is the child's to write (its consumer group, its publishing), the store is not.
        try ReadOnlyFiles.giveToChild(bench.directory, except: [folder])
        var incarnation = 0
        func start(readOnly: Bool = true) throws -> OrchestratorProcess {
            incarnation += 1
            return try OrchestratorProcess(
                executable: executable, bus: bus, store: storePath,
                logFile: bench.directory.appendingPathComponent("orchestrator-\(incarnation).log"),
                arguments: ["--log-level", "warning", "--session-timeout", "1"], readOnly: readOnly ? [folder] : [])
        }

        var refusals: [Refusal] = []
        func refused(_ what: String) async throws {
            let before = try Data(contentsOf: URL(fileURLWithPath: storePath))
            let clock = ContinuousClock()
            let began = clock.now
            let orchestrator = try start()
            defer { if orchestrator.process.isRunning { kill(orchestrator.process.processIdentifier, SIGKILL) } }
            try await waitForExit(orchestrator.process, timeout: .seconds(30))
            let status = orchestrator.process.terminationStatus
            let message = orchestrator.logText.split(separator: "\n").filter { !$0.contains(" notice ") }
                .joined(separator: "\n")
            refusals.append(Refusal(what: what, status: status, message: message, seconds: (clock.now - began) / .seconds(1)))
            #expect(status == 74, "\(what): exit status \(status) (74: the store cannot be written):\n\(message)")
            #expect(message.contains(storePath), "\(what): the error names the store: \(message)")
            #expect(message.contains("read-only") && message.contains("writable"), "\(what): \(message)")
            #expect(!message.contains("Fatal error"), "\(what): no crash: \(message)")
            let committed = try await bench.log.committedOffsets(group: OrchestratorEngine.group, topics: topics)
            #expect(committed == committedBefore, "\(what): no offset committed past what was stored: \(committed)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: storePath)) == before, "\(what): the store changed")
            #expect(try Self.integrity(storePath) == "ok")
        }
        try await ReadOnlyFiles.eachReadOnlyCase(of: URL(fileURLWithPath: storePath), refused)

        // Writable again: the next start applies what waited, once, and every application completes.
        let began = ContinuousClock.now
        let responder = try await Responder(bench: bench, group: "test-readonly-responder")
        let orchestrator = try start(readOnly: false)
        defer { if orchestrator.process.isRunning { kill(orchestrator.process.processIdentifier, SIGKILL) } }
        while responder.completedCount < ids.count, ContinuousClock.now - began < .seconds(60),
            orchestrator.process.isRunning
        {
            try await responder.round()
        }
        let completedIn = ContinuousClock.now - began
        // What the relay publishes last (the completion notifications' neighbours) is seen too.
        for _ in 0..<5 { try await responder.round(timeout: .milliseconds(100)) }
        await responder.close()
        let status = try await orchestrator.stop()
        #expect(status == 0, "the orchestrator stops cleanly:\n\(orchestrator.logText)")
        let check = EmissionCheck(
            responder.seen, applications: ids, steps: workflow.steps,
            moments: ["application-received", "application-completed"])
        #expect(check.problems.isEmpty, "\(check.problems.prefix(20).joined(separator: "\n"))")
        #expect(check.distinctRequests == ids.count * workflow.steps.count)
        #expect(check.distinctNotifications == ids.count * 2)
        #expect(try Self.integrity(storePath) == "ok")
        let store = try OrchestratorStore(path: storePath)
        let completed = try ids.filter { try store.findCase($0)?.state.status == .completed }
        #expect(completed == ids)
        try store.pool.close()
        try ReliabilityRun.report(
            part: "disk-readonly-store",
            markdown: """
                ### A read-only orchestrator store

                `swift test --filter StoreDiskTests/readOnly`: \(ids.count) restaurant applications on the bus, \
                then `onewindow orchestrator run` started on a store it cannot write: \(ReadOnlyFiles.method).

                \(refusals.map { r in "- \(r.what): exit status \(r.status) after \(String(format: "%.1f", r.seconds)) s, no offset committed, the store unchanged, `integrity_check` ok:\n  `\(r.message.replacingOccurrences(of: "\n", with: " "))`" }.joined(separator: "\n"))
                - made writable again: the next start completed all \(completed.count) applications in \(String(format: "%.1f", completedIn / .seconds(1))) s, \
                \(check.distinctRequests) requests and \(check.distinctNotifications) notifications, none twice \
                (\(check.repeatedDeliveries) repeated deliveries), stopped with status \(status), `integrity_check` ok
                """)
    }
}
