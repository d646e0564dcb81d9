import Bus
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import Orchestrator
import OrchestratorService
import Retrying
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The orchestrator's one retry rule (the shared ``Retrier`` and ``ErrorDisposition`` of the
/// connectors): a retriable error is retried with back-off on the injected clock and counted; a
/// fatal one ends `onewindow orchestrator run` with status 75 and one critical line.
@Suite("The orchestrator retries what may pass and stops on what cannot")
struct FailureTests {
    /// A log of its own in the bench's folder with every topic of the catalog but `missing`.
    static func logWithout(_ missing: String, in bench: Bench) async throws -> (EmbeddedLog, String) {
        let path = bench.directory.appendingPathComponent("partial.sqlite").path
        let log = try EmbeddedLog(path: path)
        _ = try await log.createTopics(Repo.catalog.topicSpecs.filter { $0.name != missing })
        return (log, path)
    }

    /// The relay meets a missing topic (an error that may pass: an operator creates it): it is
    /// retried, each attempt counted, the back-off slept on the engine's clock (a test clock
    /// that does not move holds the next attempt however long real time waits), and the rows go
    /// out once the topic exists.
    @Test(.timeLimit(.minutes(1)))
    func retriableErrorRetriedOnTheInjectedClockAndCounted() async throws {
        let bench = try await Bench()
        let (log, _) = try await Self.logWithout("application.progress.updated", in: bench)
        let engine = try OrchestratorEngine(
            store: OrchestratorStore(path: bench.storePath), rules: Repo.rules, calendar: Repo.calendar, log: log,
            catalog: Repo.catalog, clock: bench.clock)
        let publisher = Publisher(log: log, catalog: Repo.catalog, name: "test", clock: bench.clock)
        let body = Repo.restaurant(id: "RA-2026-810001")
        _ = try await publisher.publish(
            Event(
                id: "submit-RA-2026-810001", type: "application.restaurant.submitted", source: "test-window",
                subject: nil, time: bench.clock.now(), data: body.serialized()))
        try await engine.process(try await readTopic(log, "application.restaurant.submitted"))
        #expect(try await engine.store.unsent().count > 0)

        let relay = Task { try await engine.runRelay() }
        func retries() -> Int { engine.stats.snapshot.retries["relay"] ?? 0 }
        for _ in 0..<200 where retries() == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(retries() == 1)
        // Real time passes, the engine's clock does not: no second attempt.
        try await Task.sleep(for: .milliseconds(500))
        #expect(retries() == 1, "the back-off waits on the injected clock, not in real time")
        // The clock moves past the first back-off (0.1 s): the second attempt fails the same way.
        for _ in 0..<200 where retries() < 2 {
            if bench.clock.sleeperCount > 0 { await bench.clock.advance(by: .milliseconds(100)) }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(retries() == 2)
        #expect(engine.stats.snapshot.relayed == 0)
        _ = try await log.createTopics(Repo.catalog.topicSpecs.filter { $0.name == "application.progress.updated" })
        for _ in 0..<200 where engine.stats.snapshot.relayed == 0 {
            if bench.clock.sleeperCount > 0 { await bench.clock.advance(by: .seconds(1)) }
            try await Task.sleep(for: .milliseconds(10))
        }
        relay.cancel()
        _ = await relay.result
        #expect(engine.stats.snapshot.relayed > 0, "the rows went out once the topic existed")
        #expect(try await engine.store.unsent().isEmpty)
        await log.close()
    }

    /// A real `onewindow orchestrator run` whose bus lacks a topic it publishes to: the relay's
    /// retries show on `/metrics` as `onewindow_orchestrator_retries_total{part="relay"}`. Then the
    /// bus breaks under it (its record table dropped: an error no retry can fix), and the process
    /// exits with status 75 and one critical line telling a supervisor to restart it.
    @Test(.timeLimit(.minutes(2)))
    func retriesOnMetricsThenABrokenBusExits75() async throws {
        let bench = try await Bench()
        let (log, path) = try await Self.logWithout("application.progress.updated", in: bench)
        let publisher = Publisher(log: log, catalog: Repo.catalog, name: "test", clock: bench.clock)
        _ = try await publisher.publish(
            Event(
                id: "submit-RA-2026-810002", type: "application.restaurant.submitted", source: "test-window",
                subject: nil, time: bench.clock.now(), data: Repo.restaurant(id: "RA-2026-810002").serialized()))
        await log.close()
        let port = freePort()
        let orchestrator = try OrchestratorProcess(
            executable: try onewindowExecutable(), bus: "embedded:" + path, store: bench.storePath,
            logFile: bench.directory.appendingPathComponent("orchestrator.log"),
            arguments: ["--log-level", "warning", "--metrics-port", "\(port)"])
        defer { if orchestrator.process.isRunning { kill(orchestrator.process.processIdentifier, SIGKILL) } }

        let url = URL(string: "http://127.0.0.1:\(port)/metrics")!
        var retries = 0.0
        for _ in 0..<300 where retries < 2 {
            if let (data, response) = try? await URLSession.shared.data(from: url),
                (response as? HTTPURLResponse)?.statusCode == 200
            {
                let text = String(decoding: data, as: UTF8.self)
                let line = text.split(separator: "\n").first {
                    $0.hasPrefix("onewindow_orchestrator_retries_total{") && $0.contains("part=\"relay\"")
                }
                retries = line.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) } ?? 0
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(retries >= 2, "the relay's retries on /metrics:\n\(orchestrator.logText)")
        #expect(orchestrator.logText.contains("relay: publishing the outbox failed, pausing and retrying"))

        // The bus breaks: its records' table is gone, which the consumer's next poll finds.
        // Waiting for the orchestrator's own writes to the log (a commit, a heartbeat): without a
        // busy timeout the drop failed at once, now and then, with "database is locked".
        var waiting = Configuration()
        waiting.busyMode = .timeout(10)
        let bus = try DatabaseQueue(path: path, configuration: waiting)
        try await bus.write { db in try db.execute(sql: "DROP TABLE record") }
        let clock = ContinuousClock()
        let broken = clock.now
        try await waitForExit(orchestrator.process, timeout: .seconds(60))
        let status = orchestrator.process.terminationStatus
        let text = orchestrator.logText
        #expect(status == FatalFailure.exitStatus, "exit status \(status):\n\(text)")
        let critical = text.split(separator: "\n").filter { $0.contains("critical") }
        #expect(critical.count == 1, "one critical line:\n\(text)")
        #expect(critical.first?.contains("supervisor") == true, "\(text)")
        #expect(critical.first?.contains("no such table") == true, "\(critical)")
        #expect(clock.now - broken < .seconds(30), "it stopped instead of retrying")
    }
}
