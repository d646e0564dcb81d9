import Foundation
import TestSupport
import Testing

extension ReliabilityTests {
    /// The Kafka broker taken away for 30 s (short: 5 s) under the load of the kill test, and brought
    /// back; no process is restarted by the test. Every process must ride it out by itself (none
    /// ends), nothing is lost or duplicated (``Ledger``), and the time to recover is measured: from
    /// the broker's return to the first submission accepted, to the first application completed, and
    /// to the backlog drained (every application accepted completed, every payment row published,
    /// every notification in the SMS outbox).
    ///
    /// "Taken away" is a cut of the TCP proxy every client goes through (``TestProxy``: every
    /// connection closed, new ones refused), not a stopped broker process: the test broker (Tansu
    /// 0.6) keeps its log in memory only, so a restarted one comes back empty, which no real broker
    /// does (Tests/KafkaLogTests/BrokerOutageTests.swift). To the processes it is the same: the
    /// broker's address stops answering, then answers again with its data.
    @Test(.timeLimit(.minutes(15)))
    func brokerOutageUnderLoad() async throws {
        let outage = Duration.seconds(ReliabilityRun.scale(short: 5, full: 30))
        let warmUp = Duration.seconds(ReliabilityRun.scale(short: 8, full: 20))
        let afterwards = Duration.seconds(ReliabilityRun.scale(short: 8, full: 30))
        let applicationsPerSecond = 4.0
        let paymentsPerSecond = 20
        let world = try LoadWorld(bus: .kafkaBehindProxy)
        let proxy = try #require(world.proxy)
        try await world.startAll(paymentsPerSecond: paymentsPerSecond)
        let load = ApplicationLoad(world: world)
        let loading = Task { await load.run(perSecond: applicationsPerSecond) }
        let log = try world.reader()
        let progress = try await Progress(world, log: log)
        let warming = ContinuousClock.now
        while ContinuousClock.now - warming < warmUp { await progress.poll() }
        let completedBeforeCut = try progress.completedCount(of: load.accepted)

        try await proxy.cut()
        let cutAt = ContinuousClock.now
        try await Task.sleep(until: cutAt + outage, clock: .continuous)
        let acceptedAtRestore = load.accepted.count
        let completedAtRestore = try progress.completedCount(of: load.accepted)
        try await proxy.restore()
        let restoredAt = ContinuousClock.now

        var firstAccepted: Duration?
        var firstCompleted: Duration?
        while ContinuousClock.now - restoredAt < afterwards || firstAccepted == nil || firstCompleted == nil {
            await progress.poll()
            let since = ContinuousClock.now - restoredAt
            if firstAccepted == nil, load.accepted.count > acceptedAtRestore { firstAccepted = since }
            if firstCompleted == nil, try progress.completedCount(of: load.accepted) > completedAtRestore {
                firstCompleted = since
            }
            if since > .seconds(240) { break }
        }
        load.stop()
        await loading.value
        try await world.stopGenerating()
        let accepted = load.accepted
        let drained = try await progress.drained(accepted, limit: .seconds(300))
        let drainedAfter = ContinuousClock.now - restoredAt
        await progress.close()
        await log.close()
        let exits = world.unexpectedExits
        let unclean = await world.stopAll()
        let ledger = try await Ledger(world: world, applications: accepted)

        func figure(_ value: Duration?) -> String { value.map { "\(Self.seconds($0)) s" } ?? "never (240 s)" }
        let summary = """
            outage \(Self.seconds(outage)) s; \(accepted.count) applications accepted (\(load.retries) attempts retried; \
            \(completedBeforeCut) completed before the cut, \(completedAtRestore) when the broker came back); \
            after its return: first submission accepted \(figure(firstAccepted)), first application completed \
            \(figure(firstCompleted)), backlog drained \(drained ? "\(Self.seconds(drainedAfter)) s" : "never") \
            (the load went on \(Self.seconds(afterwards)) s after the return, then stopped)
            """
        print("ReliabilityTests.brokerOutageUnderLoad: \(summary)\n\(ledger.table)")
        #expect(drained, "the world did not drain after the outage:\n\(ledger.table)\n\(world.outputs)")
        #expect(firstAccepted != nil && firstCompleted != nil, "\(summary)\n\(world.outputs)")
        #expect(exits.isEmpty, "processes that did not ride out the outage:\n\(exits.joined(separator: "\n"))")
        #expect(unclean.isEmpty, "processes that did not stop cleanly on SIGTERM: \(unclean)\n\(world.outputs)")
        #expect(load.refused.isEmpty, "\(load.refused.prefix(5))")
        Self.expectClean(ledger)

        try ReliabilityRun.report(
            part: "outage-kafka",
            markdown: """
                ### Broker outage under load (Kafka test broker)

                `swift test --filter 'brokerOutageUnderLoad'` (Tests/ReliabilityTests/BrokerOutageUnderLoadTests.swift). \
                The world of the kill test (departments, connectors, orchestrator, gateway as processes; \
                \(Int(applicationsPerSecond)) applications/s and \(paymentsPerSecond) payment rows/s) runs \
                \(Self.seconds(warmUp)) s, then the broker is unreachable for \(Self.seconds(outage)) s (every \
                connection through the proxy the clients use is closed and new ones refused; Tansu keeps \
                its log only in memory, so it is not restarted) and comes back. No process is restarted by \
                the test. Pass: no process ends, nothing lost or duplicated, the backlog drains.

                \(summary).

                \(ledger.table)

                """)
    }
}
