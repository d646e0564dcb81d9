import Foundation
import Orchestrator
import OrchestratorService
import TestSupport
import Testing

/// Two `onewindow orchestrator run` processes in one consumer group on a Kafka test broker of
/// their own, each with its own store: they split the partitions, and every application completes
/// once, in the store of the process holding its partition (the in-process version on the
/// embedded log is `ServicesTests.twoInstances`).
@Suite("Two orchestrator processes in one group on Kafka")
struct TwoProcessesTests {
    @Test(.timeLimit(.minutes(3)))
    func twoProcessesSplitThePartitions() async throws {
        let started = ContinuousClock.now
        func phase(_ name: String) { print("TwoProcessesTests: \(name) after \(ContinuousClock.now - started)") }
        let bench = try await Bench(kafka: true)
        let broker = try #require(bench.broker)
        let bus = "kafka:127.0.0.1:\(broker.port)"
        let executable = try onewindowExecutable()
        let stores = (1...2).map { bench.storePath + ".\($0)" }
        let processes = try stores.enumerated().map { index, store in
            try OrchestratorProcess(
                executable: executable, bus: bus, store: store,
                logFile: bench.directory.appendingPathComponent("orchestrator-\(index + 1).log"),
                arguments: ["--log-level", "notice", "--session-timeout", "6"])
        }
        defer {
            for process in processes where process.process.isRunning {
                kill(process.process.processIdentifier, SIGKILL)
            }
        }
        // Both hold partitions, disjoint, all of them, settled, before the first application.
        let held = try await settledPartitions { processes.map(\.heldPartitions) }
        #expect(held.count == 2, "\(held)\n\(processes.map(\.logText))")
        phase("both hold partitions \(held)")

        let ids = (1...40).map { String(format: "RA-2026-9%05d", $0) }
        for id in ids { try await bench.submit(Repo.restaurant(id: id, area: 200, seats: 60, sign: true)) }
        let responder = try await Responder(bench: bench, group: "test-two-processes-responder")
        for _ in 0..<600 where responder.completedCount < ids.count {
            try await responder.round(timeout: .milliseconds(200))
        }
        phase("\(responder.completedCount) completed")
        await responder.close()
        var statuses: [Int32] = []
        for process in processes { statuses.append(try await process.stop()) }
        #expect(statuses == [0, 0], "\(processes.map(\.logText))")
        phase("both stopped")

        let workflow = try #require(Repo.rules.current["restaurant-opening"])
        let check = EmissionCheck(
            responder.seen, applications: ids, steps: workflow.steps,
            moments: ["application-received", "application-completed"])
        #expect(check.problems.isEmpty, "\(check.problems.prefix(20).joined(separator: "\n"))")
        #expect(check.repeatedDeliveries == 0, "no crash, so no republishing")
        // Each application lives in exactly one store, completed; each process had some.
        let opened = try stores.map { try OrchestratorStore(path: $0) }
        let homes = try ids.map { id in
            try opened.enumerated().compactMap { index, store in try store.findCase(id).map { (index, $0.state) } }
        }
        #expect(homes.allSatisfy { $0.count == 1 }, "each application in one store")
        #expect(homes.allSatisfy { $0.allSatisfy { $0.1.status == .completed } })
        let perProcess = (0..<2).map { index in homes.filter { $0.first?.0 == index }.count }
        #expect(perProcess.allSatisfy { $0 > 0 }, "both processes had applications: \(perProcess)")
        #expect(try await readTopic(bench.log, Repo.catalog.deadLetterTopic).isEmpty, "nothing was dead-lettered")
        await bench.log.close()
        phase("checked")
    }
}
