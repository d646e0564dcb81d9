import EventModel
import EventSchemas
import Foundation
import Orchestrator
import OrchestratorService
import TestSupport
import Testing

/// The consumer and relay loops themselves (not their one-step methods), with an in-process
/// responder approving every request at once, on each backend through the same EventLog interface.
@Suite("The orchestrator's services on each backend", .serialized)
struct ServicesTests {
    @Test("The restaurant completes with the services running; the embedded log", .timeLimit(.minutes(2)))
    func embedded() async throws { try await run(kafka: false, prefix: "RA-2026-2") }

    @Test(
        "The restaurant completes with the services running; a Kafka test broker of its own", .timeLimit(.minutes(3)))
    func onKafka() async throws { try await run(kafka: true, prefix: "RA-2026-3") }

    @Test(
        "Two instances in one group split the partitions, and every application completes once",
        .timeLimit(.minutes(2)))
    func twoInstances() async throws {
        try await run(kafka: false, prefix: "RA-2026-4", instances: 2, applications: 12)
    }

    func run(kafka: Bool, prefix: String, instances: Int = 1, applications: Int = 3) async throws {
        let bench = try await Bench(kafka: kafka)
        let engines = try (0..<instances).map { try bench.engine(store: bench.storePath + ".\($0)") }
        let services = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for engine in engines {
                    group.addTask { try await engine.runConsumer() }
                    group.addTask { try await engine.runRelay() }
                }
                try await group.waitForAll()
            }
        }
        defer { services.cancel() }
        // Every instance holds its partitions, settled, before the first application.
        _ = try await settledPartitions { engines.map(\.assignedPartitions) }
        let ids = (1...applications).map { String(format: "\(prefix)%05d", $0) }
        for id in ids { try await bench.submit(Repo.restaurant(id: id, area: 200, seats: 60, sign: true)) }
        // The responder reads as a consumer group (a group-less read of every partition of nine
        // topics is slow on Kafka) and keeps every request and notification it saw, repeats included.
        let watched = Repo.catalog.topics(carrying: "approval.requested").map(\.name) + ["notification.sms.requested"]
        let responder = try await bench.log.makeConsumer(.group("test-responder-\(prefix)", topics: watched))
        var requests: [String] = []
        var notifications: [String] = []
        var states: [Case] = []
        for _ in 0..<600 {
            for record in try await responder.poll(maxRecords: 500, timeout: .milliseconds(200)) {
                let event = try CloudEventsBinding.event(from: record)
                guard event.id.hasPrefix(prefix) else { continue }
                if event.type == "notification.sms.requested" {
                    notifications.append(event.id)
                    continue
                }
                requests.append(event.id)
                try await bench.approve(request: event)
            }
            states = try ids.compactMap { id in try engines.compactMap { try $0.store.findCase(id)?.state }.first }
            if states.count == ids.count, states.allSatisfy({ $0.status == .completed }),
                notifications.filter({ $0.contains("completed") }).count == ids.count
            {
                break
            }
            if ProcessInfo.processInfo.environment["ORCH_DEBUG"] != nil {
                print(
                    "requests \(requests.count), cases \(states.map(\.status)), stats \(engines.map(\.stats.snapshot))")
            }
        }
        await responder.close()
        services.cancel()
        _ = try? await services.value
        #expect(states.map(\.status) == ids.map { _ in .completed })
        // One of each request: 6 steps per application, no id twice.
        #expect(requests.count == 6 * applications)
        #expect(Set(requests).count == requests.count)
        #expect(notifications.filter { $0.contains("completed") }.count == applications)
        // Each application lives in one instance's store only, and with two, each had some.
        let held = try engines.map { engine in try ids.filter { try engine.store.findCase($0) != nil } }
        #expect(held.map(\.count).reduce(0, +) == applications)
        if instances > 1 { #expect(held.allSatisfy { !$0.isEmpty }, "\(held)") }
        #expect(Set(notifications).count == notifications.count)
        await bench.log.close()
    }
}
