import EventModel
import EventSchemas
import Foundation
import Orchestrator
import OrchestratorService
import TestSupport
import Testing

/// `onewindow orchestrator run` killed with SIGKILL at random moments while applications run, and
/// started again each time: every application completes, and every request and notification id
/// appears (repeats of one id are allowed: readers drop them; a missing or extra id is not).
@Suite("The orchestrator killed with SIGKILL and restarted")
struct CrashTests {
    @Test(.timeLimit(.minutes(4)))
    func killedAndRestarted() async throws {
        let executable = try onewindowExecutable()
        let bench = try await Bench()
        let bus = "embedded:" + bench.directory.appendingPathComponent("bus.sqlite").path
        func start() throws -> Process {
            let process = childProcess(
                executable,
                [
                    "orchestrator", "run", "--bus", bus, "--store", bench.storePath, "--log-level", "error",
                    "--catalog", repositoryRoot.appendingPathComponent("Topics").path, "--rules",
                    Repo.rulesDirectory.path,
                ])
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        let count = 60
        let ids = (1...count).map { String(format: "RA-2026-6%05d", $0) }
        for id in ids { try await bench.submit(Repo.restaurant(id: id, area: 200, seats: 60, sign: true)) }
        let watched = Repo.catalog.topics(carrying: "approval.requested").map(\.name) + ["notification.sms.requested"]
        let responder = try await bench.log.makeConsumer(.group("test-crash-responder", topics: watched))
        var requests: [String] = []
        var notifications: [String] = []
        var orchestrator = try start()
        var kills = 0
        var generator = SystemRandomNumberGenerator()
        let clock = ContinuousClock()
        var nextKill = clock.now.advanced(by: .milliseconds(Int64.random(in: 300...900, using: &generator)))
        var done = false
        for _ in 0..<1500 {
            for record in try await responder.poll(maxRecords: 500, timeout: .milliseconds(100)) {
                let event = try CloudEventsBinding.event(from: record)
                if event.type == "notification.sms.requested" {
                    notifications.append(event.id)
                    continue
                }
                requests.append(event.id)
                try await bench.approve(request: event)
            }
            if kills < 10, clock.now > nextKill {
                kill(orchestrator.processIdentifier, SIGKILL)
                try await waitForExit(orchestrator)
                kills += 1
                orchestrator = try start()
                nextKill = clock.now.advanced(by: .milliseconds(Int64.random(in: 300...900, using: &generator)))
            }
            if Set(notifications.filter { $0.contains("completed") }).count == count {
                done = true
                break
            }
        }
        await responder.close()
        kill(orchestrator.processIdentifier, SIGTERM)
        try await waitForExit(orchestrator, timeout: .seconds(30))
        #expect(done)
        #expect(kills >= 5, "only \(kills) kills landed before the applications completed")
        let store = try OrchestratorStore(path: bench.storePath)
        let states = try ids.compactMap { try store.findCase($0)?.state }
        #expect(states.count == count)
        #expect(states.allSatisfy { $0.status == .completed })
        // Every request id once or repeated, none missing, none unexpected.
        let expected = Set(
            ids.flatMap { id in Repo.rules.current["restaurant-opening"]!.steps.map { "\(id)/request/\($0.id)/1" } })
        #expect(Set(requests) == expected)
        #expect(Set(notifications.filter { $0.contains("completed") }).count == count)
        // No dead letters: nothing was refused along the way.
        #expect(try await readTopic(bench.log, Repo.catalog.deadLetterTopic).isEmpty)
    }
}
