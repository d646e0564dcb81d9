import EventModel
import EventSchemas
import Foundation
import Orchestrator
import OrchestratorService
import Testing
import TestSupport

/// The consumer and relay loops themselves (not their one-step methods), with an in-process
/// responder approving every request at once, on each backend through the same EventLog interface.
@Suite("The orchestrator's services on each backend", .serialized)
struct ServicesTests {
    static let kafka = ProcessInfo.processInfo.environment["ONEWINDOW_TEST_KAFKA"] != nil

    @Test("The restaurant completes with the services running; the embedded log", .timeLimit(.minutes(2)))
    func embedded() async throws { try await run(kafka: false, prefix: "RA-2026-2") }

    @Test("The restaurant completes with the services running; the Kafka test broker", .enabled(if: kafka),
        .timeLimit(.minutes(3)))
    func onKafka() async throws { try await run(kafka: true, prefix: "RA-2026-3") }

    func run(kafka: Bool, prefix: String) async throws {
        let bench = try await Bench(kafka: kafka)
        let engine = try bench.engine()
        let services = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await engine.runConsumer() }
                group.addTask { try await engine.runRelay() }
                try await group.waitForAll()
            }
        }
        defer { services.cancel() }
        let ids = (1...3).map { "\(prefix)0000\($0)" }
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
                let body = event.body
                try await bench.decide(
                    body[pointer: "/applicationId"]!.stringValue!, body[pointer: "/department"]!.stringValue!,
                    body[pointer: "/item"]!.stringValue!, id: "re-\(event.id)")
            }
            states = try ids.compactMap { try engine.store.findCase($0)?.state }
            if states.count == ids.count, states.allSatisfy({ $0.status == .completed }),
                notifications.filter({ $0.contains("completed") }).count == ids.count
            {
                break
            }
            if ProcessInfo.processInfo.environment["ORCH_DEBUG"] != nil {
                print("requests \(requests.count), cases \(states.map(\.status)), stats \(engine.stats.snapshot)")
            }
        }
        await responder.close()
        services.cancel()
        _ = try? await services.value
        #expect(states.map(\.status) == ids.map { _ in .completed })
        // One of each request: 6 steps × 3 applications, no id twice.
        #expect(requests.count == 18)
        #expect(Set(requests).count == requests.count)
        #expect(notifications.filter { $0.contains("completed") }.count == 3)
        #expect(Set(notifications).count == notifications.count)
        await bench.log.close()
    }
}
