import Foundation
import TestSupport
import Testing

extension ReliabilityTests {
    /// The orchestrator, the gateway and each connector kind (table source and inbox sink: real
    /// estate, tax; table sink: the SMS gateway; webhook source and file-drop source: the household
    /// registry) killed with SIGKILL at random moments, in a random order, and started again, while
    /// applications come through the gateway and `onewindow publish`, the tax department writes
    /// payment rows, and the household registry POSTs births to its webhook and drops files of
    /// deaths into its folder (``DepartmentEventLoad``). After the load stops and the world drains:
    /// nothing lost and nothing duplicated among the department events (rows, webhooks, file lines),
    /// the applications, the approval requests (on the bus and in the departments' inboxes), the
    /// decisions, the notifications (on the bus and in the SMS outbox) and the applications
    /// completed (``Ledger``).
    ///
    /// Short (`make test`): 2 kills of each of the 7 processes; full (`make reliability`): 20 each.
    /// The orchestrator's own crash test (Tests/OrchestratorServiceTests/CrashTests.swift) aims its
    /// kills inside its transactions and publishes; these are at random, with everything else
    /// running and being killed too.
    @Test(.timeLimit(.minutes(20)), arguments: [Backend.embedded, Backend.kafka])
    func killedAtRandomUnderLoad(bus: Backend) async throws {
        let killsEach = ReliabilityRun.scale(short: 2, full: 20)
        let applicationsPerSecond = 4.0
        let paymentsPerSecond = 20
        let birthsPerSecond = 5.0
        let filesPerSecond = 2.0
        let world = try LoadWorld(bus: bus)
        try await world.startAll(paymentsPerSecond: paymentsPerSecond)
        try await world.startEventSources()
        let started = ContinuousClock.now
        let load = ApplicationLoad(world: world)
        let loading = Task { await load.run(perSecond: applicationsPerSecond) }
        let events = DepartmentEventLoad(world: world)
        let pushing = Task { await events.run(birthsPerSecond: birthsPerSecond, filesPerSecond: filesPerSecond) }

        struct Kill {
            var target: String
            var at: Duration
        }
        var kills: [Kill] = []
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<killsEach {
            for target in world.killable.shuffled(using: &generator) {
                try await Task.sleep(for: .milliseconds(Int.random(in: 200...1500, using: &generator)))
                try await world.kill9(target)
                kills.append(Kill(target: target, at: ContinuousClock.now - started))
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...300, using: &generator)))
                try world.restart(target)
            }
        }
        let killPhase = ContinuousClock.now - started
        load.stop()
        events.stop()
        await loading.value
        await pushing.value
        try await world.stopGenerating()
        let accepted = load.accepted
        let draining = ContinuousClock.now
        let log = try world.reader()
        let progress = try await Progress(world, log: log)
        let drained = try await progress.drained(accepted, departmentEvents: events, limit: .seconds(ReliabilityRun.scale(short: 180, full: 600)))
        let drainTime = ContinuousClock.now - draining
        await progress.close()
        await log.close()
        let exits = world.unexpectedExits
        let unclean = await world.stopAll()
        let ledger = try await Ledger(world: world, applications: accepted, departmentEvents: events)

        let byTarget = Dictionary(grouping: kills, by: \.target).mapValues(\.count)
        let summary = """
            \(kills.count) kills in \(Self.seconds(killPhase)) s (\(world.killable.map { "\($0) \(byTarget[$0] ?? 0)" }.joined(separator: ", "))); \
            \(accepted.count) applications accepted (\(load.retries) attempts retried), \
            \(events.births.count) births POSTed (\(events.retries) attempts retried), \
            \(events.deaths.count) deaths in \(events.files) files dropped, \
            drained \(Self.seconds(drainTime)) s after the load stopped
            """
        print("ReliabilityTests.killedAtRandomUnderLoad(\(bus)): \(summary)\n\(ledger.table)")
        #expect(drained, "the world did not drain:\n\(ledger.table)\n\(world.outputs)")
        #expect(load.refused.isEmpty, "\(load.refused.prefix(5))")
        #expect(events.refused.isEmpty, "\(events.refused.prefix(5))")
        #expect(exits.isEmpty, "processes that ended by themselves:\n\(exits.joined(separator: "\n"))")
        #expect(unclean.isEmpty, "processes that did not stop cleanly on SIGTERM: \(unclean)\n\(world.outputs)")
        #expect(kills.count == killsEach * world.killable.count)
        #expect(world.dropFolderLeftovers.isEmpty, "files not moved to done/: \(world.dropFolderLeftovers.prefix(10))")
        Self.expectClean(ledger)

        try ReliabilityRun.report(
            part: "kills-\(bus)",
            markdown: """
                ### Kills under load (\(bus == .embedded ? "embedded log" : "Kafka test broker"))

                `swift test --filter 'killedAtRandomUnderLoad'` (Tests/ReliabilityTests/KillsUnderLoadTests.swift). \
                The orchestrator, the gateway and the connectors of real estate, tax (table source and \
                inbox sink), the SMS gateway (table sink) and the household registry (one with a webhook \
                source, one with a file-drop source), each killed with SIGKILL \(killsEach) times at \
                random moments (200–1500 ms apart, in a random order) and started again 0–300 ms later, \
                while house-transfer applications came at \(Int(applicationsPerSecond))/s (nine in ten \
                through the gateway, one in ten with `onewindow publish`, each retried until accepted) and the \
                tax department wrote \(paymentsPerSecond) payment rows/s; the household registry POSTed \
                \(Int(birthsPerSecond)) births/s to its webhook over HTTP (each retried until answered 2xx, half \
                with a `ce-id`, half identified by the body's fingerprint) and dropped \(Int(filesPerSecond)) CSV \
                files/s of \(events.linesPerFile) deaths each into its folder. Department simulators decide at a \
                day a second. Pass: nothing lost, nothing duplicated, nothing dead-lettered, no process \
                ending by itself.

                \(summary).

                \(ledger.table)

                "Repeated copies" are records appended again under the same id by a process killed between \
                appending and recording it (for the webhook also a POST whose answer a kill lost, sent \
                again); every reader drops them by id (the inbox and SMS-outbox rows above are the proof).

                """)
    }
}
