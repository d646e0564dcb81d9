import Foundation
import TestSupport
import Testing

extension ReliabilityTests {
    /// The bound a soak holds each process to, after its warm-up (the first third of the run):
    /// resident memory at the end (the mean of the last tenth of the samples) at most 10 % above the
    /// baseline (the mean of the tenth right after the warm-up), or at most 8 MB above it for a
    /// small process, whose allocator moves by a few MB either way; open descriptors never more than
    /// 5 above the most the process had open during the warm-up, plus the 6 that the WAL
    /// checkpointers of the two SQLite files a process writes (its log and its store) open once, at
    /// their first checkpoint, which may come after the warm-up (a file, its WAL and its shared
    /// memory each: the orchestrator went from 22 to 28 in a run where both came late).
    static let rssGrowthBound = 0.10
    static let rssSlackKB = 8 * 1024
    static let descriptorBound = 5 + 2 * 3

    /// An hour-equivalent of load on the embedded log, every process sampled once a second for its
    /// resident memory (`VmRSS` of /proc/PID/status) and open descriptors (/proc/PID/fd); no
    /// growth beyond the bound above, and nothing lost or duplicated at the end (``Ledger``).
    ///
    /// The hour-equivalent (full, `make reliability`): 15 minutes of wall time at 100 department
    /// rows/s and 4 applications/s (90,000 rows and 3,600 applications, as much as an hour of the
    /// district's 3 million records a day, about 125,000 an hour, minus the applications' share),
    /// on a clock running six hours a second, so that the timers and SLAs of the workflows cover
    /// 225 simulated days, far more than an hour's. (A day a second, as the short run and the kill
    /// tests go, would carry the clock past the end of the working-day calendar in Rules/, which
    /// covers 2025–2027, within 15 minutes: the orchestrator then rightly dead-letters every new
    /// application as `outside-calendar`. That is what the first full run found.) Short (`make
    /// test`): 30 s at a day a second, the bound alike.
    /// How fast a world's clock runs, in words ("a day a second", "6 hours a second").
    static func clockText(_ speed: Int) -> String {
        speed % 86_400 == 0 ? (speed == 86_400 ? "a day a second" : "\(speed / 86_400) days a second")
            : "\(speed / 3_600) hours a second"
    }

    @Test(.timeLimit(.minutes(30)))
    func soak() async throws {
        let duration = Duration.seconds(ReliabilityRun.scale(short: 30, full: 900))
        let applicationsPerSecond = 4.0
        let paymentsPerSecond = 100
        let world = try LoadWorld(bus: .embedded, speed: ReliabilityRun.scale(short: 86_400, full: 21_600))
        try await world.startAll(paymentsPerSecond: paymentsPerSecond)
        let load = ApplicationLoad(world: world)
        let loading = Task { await load.run(perSecond: applicationsPerSecond) }
        let started = ContinuousClock.now
        var samples: [String: [ResourceSample]] = [:]
        let sampled = world.names.filter { $0 != "generator-tax" }
        while ContinuousClock.now - started < duration {
            for name in sampled {
                if let sample = world.sample(name) { samples[name, default: []].append(sample) }
            }
            try await Task.sleep(for: .seconds(1))
        }
        load.stop()
        await loading.value
        try await world.stopGenerating()
        let accepted = load.accepted
        let log = try world.reader()
        let progress = try await Progress(world, log: log)
        let drained = try await progress.drained(accepted, limit: .seconds(300))
        await progress.close()
        await log.close()
        let exits = world.unexpectedExits
        let unclean = await world.stopAll()
        let ledger = try await Ledger(world: world, applications: accepted)

        var rows = [
            "| process | RSS baseline (MB) | RSS end (MB) | growth | fds max in warm-up | fds max after | within bound |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        var outside: [String] = []
        for name in sampled {
            let series = samples[name] ?? []
            guard series.count >= 10 else {
                outside.append("\(name): \(series.count) samples only")
                continue
            }
            let warmUpEnd = series.count / 3
            let tenth = max(1, series.count / 10)
            func mean(_ slice: ArraySlice<ResourceSample>) -> Double {
                Double(slice.map(\.rssKB).reduce(0, +)) / Double(slice.count)
            }
            let baseline = mean(series[warmUpEnd..<(warmUpEnd + tenth)])
            let end = mean(series.suffix(tenth))
            let growth = end / baseline - 1
            let fdsWarm = series[..<warmUpEnd].map(\.descriptors).max() ?? 0
            let fdsAfter = series[warmUpEnd...].map(\.descriptors).max() ?? 0
            let rssOK = growth <= Self.rssGrowthBound || end - baseline <= Double(Self.rssSlackKB)
            let fdsOK = fdsAfter <= fdsWarm + Self.descriptorBound
            if !rssOK || !fdsOK {
                outside.append(
                    "\(name): RSS \(Int(baseline / 1024)) → \(Int(end / 1024)) MB, fds \(fdsWarm) → \(fdsAfter)")
            }
            rows.append(
                "| \(name) | \(String(format: "%.1f", baseline / 1024)) | \(String(format: "%.1f", end / 1024)) | "
                    + "\(String(format: "%+.1f %%", growth * 100)) | \(fdsWarm) | \(fdsAfter) | \(rssOK && fdsOK ? "yes" : "**no**") |")
        }
        let table = rows.joined(separator: "\n")
        let summary = """
            \(Self.seconds(duration)) s of load, \(accepted.count) applications accepted, \
            \(try progress.rows("tax", "tax_payments")) payment rows written
            """
        print("ReliabilityTests.soak: \(summary)\n\(table)\n\(ledger.table)")
        #expect(outside.isEmpty, "beyond the bound:\n\(outside.joined(separator: "\n"))\n\(table)")
        #expect(drained, "the world did not drain:\n\(ledger.table)\n\(world.outputs)")
        #expect(exits.isEmpty, "processes that ended by themselves:\n\(exits.joined(separator: "\n"))")
        #expect(unclean.isEmpty, "processes that did not stop cleanly on SIGTERM: \(unclean)")
        Self.expectClean(ledger)

        try ReliabilityRun.report(
            part: "soak-embedded",
            markdown: """
                ### Soak (embedded log)

                `swift test --filter 'soak'` (Tests/ReliabilityTests/SoakTests.swift). The world of the \
                kill test with no kills: \(Int(applicationsPerSecond)) applications/s and \(paymentsPerSecond) \
                payment rows/s for \(Self.seconds(duration)) s (the hour-equivalent: as many records as an \
                hour of the district's 3 million a day; clocks at \(Self.clockText(world.speed)), so timers and SLAs \
                cover far more than an hour), each process's `VmRSS` and open descriptors sampled every second. \
                Bound, after the warm-up (the first third): RSS at the end (mean of the last tenth of the \
                samples) at most \(Int(Self.rssGrowthBound * 100)) % above the baseline (mean of the tenth \
                after the warm-up) or at most \(Self.rssSlackKB / 1024) MB above it; descriptors at most \
                \(Self.descriptorBound) above the warm-up's maximum. Then nothing lost or duplicated.

                \(summary).

                \(table)

                \(ledger.table)

                """)
    }
}
