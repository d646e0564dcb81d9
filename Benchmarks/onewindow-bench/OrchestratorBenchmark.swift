import Bus
import CivilTime
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import Histogram
import Orchestrator
import OrchestratorService
import Synchronization
import TestSupport

// The orchestrator's benchmark: the real engine (consumer, relay and timer loops on its GRDB store)
// with departments that approve every request at once, on the embedded log or a Kafka broker.
//
// - Throughput: applications submitted in batches of 500 as fast as the window can, timed from
//   the first submission until every one is completed in the store and the outbox is empty (the
//   completion's progress update and notification are on the bus).
// - Latency: an open loop at a fixed rate; each application's latency runs from the instant it was
//   due to be submitted (not when the submitter got to it: no coordinated omission) until the
//   departments' consumer reads its last approval request (the sixth: the fan-out after the
//   business licence was approved).
// - Memory: VmRSS of a fresh orchestrator process holding many open applications (submitted, first
//   request emitted, no decision), so the other runs do not inflate it.

/// The repository's catalog, rules and calendar.
struct OrchestratorSetup: Sendable {
    let catalog: TopicCatalog
    let rules: RuleBook
    let calendar: WorkingDayCalendar

    static func load() throws -> OrchestratorSetup {
        let catalog = try TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))
        let rules = repositoryRoot.appendingPathComponent("Rules")
        return OrchestratorSetup(
            catalog: catalog, rules: try RuleBook.load(directory: rules, catalog: catalog),
            calendar: try WorkingDayCalendar.load(from: rules.appendingPathComponent("calendar.yaml")))
    }

    /// An engine on a store at `path` reading and writing `log`, on the system clock.
    func engine(store path: String, log: any EventLog) throws -> OrchestratorEngine {
        try OrchestratorEngine(
            store: OrchestratorStore(path: path), rules: rules, calendar: calendar, log: log, catalog: catalog)
    }
}

/// Every step of the restaurant workflow on: above 150 m², over 50 seats, with a sign.
let requestsPerApplication = 6

/// The id of the benchmark's application `number`: `RA-2026-000042`.
func benchApplicationId(_ number: Int, prefix: String = "RA-2026-") -> String {
    prefix + String(format: "%06d", number)
}

/// The applications `ids` as submissions of the window, validated and appended in one call.
func submit(_ ids: some Sequence<Int>, publisher: Publisher, prefix: String = "RA-2026-") async throws {
    let now = Date()
    let publications = ids.map { number in
        let id = benchApplicationId(number, prefix: prefix)
        let body = RestaurantExample.application(id: id, submitted: now, area: 200, seats: 60, sign: true)
        return Publication(
            event: Event(
                id: "submit-\(id)", type: "application.restaurant.submitted", source: "bench-window", subject: nil,
                time: now, data: body.serialized()),
            body: body)
    }
    _ = try await publisher.publish(publications, deadLetter: false)
}

/// Departments that approve every request at once: one consumer group on every
/// `approval.<department>.requested` topic, one validated append of decisions per polled batch.
/// `observe` is called with each request's application id and its time (when the orchestrator
/// planned it) as it is read.
func runInstantDepartments(
    log: any EventLog, setup: OrchestratorSetup, observe: @escaping @Sendable (String, Date) -> Void = { _, _ in }
) async throws {
    let publisher = Publisher(log: log, catalog: setup.catalog, name: "bench-departments")
    let topics = setup.catalog.topics(carrying: "approval.requested").map(\.name)
    let consumer = try await log.makeConsumer(.group("bench-departments", topics: topics))
    defer { Task { await consumer.close() } }
    while !Task.isCancelled {
        let records: [LogRecord]
        do {
            records = try await consumer.poll(maxRecords: 1000, timeout: .milliseconds(100))
        } catch is CancellationError { break }
        if records.isEmpty { continue }
        let now = Date()
        var publications: [Publication] = []
        publications.reserveCapacity(records.count)
        for record in records {
            let request = try CloudEventsBinding.event(from: record)
            let body = try JSONValue.parse(request.data)
            guard let application = body[pointer: "/applicationId"]?.stringValue,
                let department = body[pointer: "/department"]?.stringValue,
                let item = body[pointer: "/item"]?.stringValue
            else { throw BenchmarkFailure("approval request \(request.id) lacks applicationId, department or item") }
            observe(application, request.time)
            let decision = RestaurantExample.decision(
                applicationId: application, department: department, item: item, decidedAt: now)
            publications.append(
                Publication(
                    event: Event(
                        id: "re-\(request.id)", type: "approval.decided", source: "bench-\(department)", subject: nil,
                        time: now, data: decision.serialized()),
                    body: decision))
        }
        _ = try await publisher.publish(publications, deadLetter: false)
        try await consumer.commit(records)
    }
}

/// The orchestrator's three loops, as `orchestrator run` runs them, until cancelled.
func runOrchestrator(_ engine: OrchestratorEngine) -> Task<Void, any Error> {
    Task {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await engine.runConsumer() }
            group.addTask { try await engine.runRelay() }
            group.addTask { try await engine.runTimers() }
            try await group.waitForAll()
        }
    }
}

/// Cases in the store, open ones, and outbox rows not yet published (all three through indexes).
func storeProgress(_ store: OrchestratorStore) async throws -> (cases: Int, open: Int, unsent: Int) {
    let counts = try await store.pool.read { db in
        (
            try Int.fetchOne(db, sql: "SELECT count(*) FROM cases") ?? 0,
            try Int.fetchOne(db, sql: "SELECT count(*) FROM cases WHERE status = 'in-progress'") ?? 0
        )
    }
    return (counts.0, counts.1, try await store.unsentCount())
}

/// Waits until the store holds `cases` cases, `open` of them open, and the outbox is published.
/// The store is counted (three counts, which grow with it) only once `ready` says the engine's
/// own counters could have got there; until then `ready` is asked every 2 ms, which costs nothing
/// beside the run (counting every 10 ms took CPU from the orchestrator it measures).
func waitForStore(
    _ store: OrchestratorStore, cases: Int, open: Int, timeout: Duration, what: String,
    ready: @Sendable () -> Bool = { true }
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while true {
        if !ready(), clock.now < deadline {
            try await Task.sleep(for: .milliseconds(2))
            continue
        }
        let progress = try await storeProgress(store)
        if progress.cases == cases, progress.open == open, progress.unsent == 0 { return }
        guard clock.now < deadline else {
            throw BenchmarkFailure(
                "\(what): after \(timeout) the store has \(progress.cases) of \(cases) cases, \(progress.open) open (\(open) expected) and \(progress.unsent) outbox rows unsent"
            )
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// Whether the engine's counters say `applications` workflows since `before` could be done: every
/// input applied (the submission and a decision per request) and every row written published.
func allDone(_ stats: OrchestratorStats, since before: OrchestratorStats.Snapshot, applications: Int)
    -> @Sendable () -> Bool
{
    {
        let now = stats.snapshot
        return now.inputsApplied - before.inputsApplied >= (1 + requestsPerApplication) * applications
            && now.relayed >= now.effectsEmitted + now.deadLettered
    }
}

/// Waits for the orchestrator's consumer to hold partitions (a Kafka group takes seconds to form).
func waitForAssignment(_ engine: OrchestratorEngine) async throws {
    for _ in 0..<600 where (engine.assignedPartitions ?? []).isEmpty { try await Task.sleep(for: .milliseconds(100)) }
    if (engine.assignedPartitions ?? []).isEmpty { throw BenchmarkFailure("the orchestrator got no partitions in 60 s") }
}

/// Where the time of a run went, from the engine's counters: one line for the report.
func phases(_ before: OrchestratorStats.Snapshot, _ after: OrchestratorStats.Snapshot, seconds: Double) -> String {
    func share(_ value: Double) -> String { String(format: "%.0f %%", 100 * value / seconds) }
    return
        "decoding \(share(after.decodeSeconds - before.decodeSeconds)), planning outside the store's transactions \(share(after.planSeconds - before.planSeconds)), store transactions \(share(after.applySeconds - before.applySeconds)) (their CPU \(String(format: "%.3f", (after.writeCPUSeconds - before.writeCPUSeconds) * 1000 / Double(max(1, after.inputsApplied - before.inputsApplied) / 7))) ms per workflow), relay reading \(share(after.relayReadSeconds - before.relayReadSeconds)), relay publishing \(share(after.relayPublishSeconds - before.relayPublishSeconds)), relay marking \(share(after.relayMarkSeconds - before.relayMarkSeconds)) of the wall time; \(after.inputsApplied - before.inputsApplied) inputs in \(after.batches - before.batches) batches (\(after.replanned - before.replanned) planned again in their transaction), \(after.relayed - before.relayed) rows relayed in \(after.relayBatches - before.relayBatches) appends (\(after.relayedFromMemory - before.relayedFromMemory) rows as the consumer handed them over, \(after.relayStoreReads - before.relayStoreReads) reads of the store); from the start of its planning, a batch was written in \(String(format: "%.1f", (after.plannedToCommittedSeconds - before.plannedToCommittedSeconds) * 1000 / Double(max(1, after.batches - before.batches)))) ms and a row published in \(String(format: "%.1f", (after.plannedToPublishedSeconds - before.plannedToPublishedSeconds) * 1000 / Double(max(1, after.relayed - before.relayed)))) ms on average"
}

/// An orchestrator and the instant departments running on a log, warmed up: topics created, both
/// groups formed, 50 applications completed (statements prepared, pages cached).
struct OrchestratorRig {
    static let warmUp = 50
    let log: any EventLog
    let engine: OrchestratorEngine
    /// The window's publisher, for submissions.
    let publisher: Publisher
    let orchestrator: Task<Void, any Error>
    let departments: Task<Void, any Error>

    static func start(
        log: any EventLog, directory: URL, name: String,
        observe: @escaping @Sendable (String, Date) -> Void = { _, _ in }
    ) async throws -> OrchestratorRig {
        let setup = try OrchestratorSetup.load()
        _ = try await log.createTopics(setup.catalog.topicSpecs)
        let engine = try setup.engine(
            store: directory.appendingPathComponent("orchestrator-\(name).sqlite").path, log: log)
        let rig = OrchestratorRig(
            log: log, engine: engine, publisher: Publisher(log: log, catalog: setup.catalog, name: "bench-window"),
            orchestrator: runOrchestrator(engine),
            departments: Task { try await runInstantDepartments(log: log, setup: setup, observe: observe) })
        do {
            try await waitForAssignment(engine)
            try await submit(900_000..<(900_000 + warmUp), publisher: rig.publisher)
            try await waitForStore(engine.store, cases: warmUp, open: 0, timeout: .seconds(120), what: "the warm-up")
        } catch {
            await rig.stop()
            throw error
        }
        return rig
    }

    /// Stops both and closes the log.
    func stop() async {
        orchestrator.cancel()
        departments.cancel()
        _ = try? await orchestrator.value
        _ = try? await departments.value
        await log.close()
    }
}

struct OrchestratorThroughput {
    let applications: Int
    let seconds: Double
    /// CPU time (user and system, every thread) the whole process spent meanwhile: the
    /// orchestrator, the departments and the submitter.
    let cpuSeconds: Double
    let phases: String
    var perSecond: Double { Double(applications) / seconds }
    /// CPU milliseconds per completed workflow: comparable between runs on a machine others load,
    /// where the wall time is not.
    var cpuMillisecondsPerWorkflow: Double { cpuSeconds * 1000 / Double(applications) }
}

/// The CPU time this process has used so far (user and system, every thread), in seconds.
func processCPUSeconds() -> Double { cpuSeconds(CLOCK_PROCESS_CPUTIME_ID) }

/// Completed restaurant workflows per second on `log` (empty, topics not yet created).
func benchOrchestratorThroughput(log: any EventLog, directory: URL, applications: Int, name: String) async throws
    -> OrchestratorThroughput
{
    let rig = try await OrchestratorRig.start(log: log, directory: directory, name: name)
    let engine = rig.engine
    let before = engine.stats.snapshot
    let clock = ContinuousClock()
    let start = clock.now
    let cpuStart = processCPUSeconds()
    for first in stride(from: 1, through: applications, by: 500) {
        try await submit(first..<min(first + 500, applications + 1), publisher: rig.publisher)
    }
    try await waitForStore(
        engine.store, cases: OrchestratorRig.warmUp + applications, open: 0, timeout: .seconds(600),
        what: "the throughput run", ready: allDone(engine.stats, since: before, applications: applications))
    let seconds = (clock.now - start).seconds
    let cpuSeconds = processCPUSeconds() - cpuStart
    let after = engine.stats.snapshot
    await rig.stop()
    return OrchestratorThroughput(
        applications: applications, seconds: seconds, cpuSeconds: cpuSeconds,
        phases: phases(before, after, seconds: seconds))
}

/// When each application was due to be submitted, how many of its requests were read, and the
/// latencies (microseconds, up to a minute) of those whose last request was read.
final class LatencyTracking: Sendable {
    struct State {
        var scheduled: [String: ContinuousClock.Instant] = [:]
        /// The same instants on the wall clock, which the requests' times are on.
        var scheduledWall: [String: Date] = [:]
        /// When the submitter's append of it returned (wall clock).
        var appended: [String: Date] = [:]
        var requests: [String: Int] = [:]
        /// When the first request was planned and read.
        var first: [String: (planned: Date, read: Date)] = [:]
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000)
        /// The latency's stages (``LatencyStage``), microseconds, of the applications whose last request was read.
        var stages = LatencyStage.allCases.map { _ in Histogram<UInt64>(highestTrackableValue: 60_000_000) }
    }
    let state = Mutex(State())
}

/// Where an application's latency goes, from the times the orchestrator gave its requests (whole
/// milliseconds: a stage is within a millisecond) and the wall clock when the departments read them.
enum LatencyStage: Int, CaseIterable {
    /// Due → its submission appended: the submitter's wake-up (it shares the process's threads with
    /// the orchestrator and the departments) and the append.
    case appended
    /// → its first request planned: the orchestrator's poll, decoding and planning.
    case firstPlanned
    /// → the first request read by the departments: the store's transaction, the relay's append, their poll.
    case firstRead
    /// → the last request planned: the decision's append, the orchestrator's poll, decoding and planning.
    case lastPlanned
    /// → the last request read: the store's transaction, the relay's append, the departments' poll.
    case lastRead

    var name: String {
        switch self {
        case .appended: "due → appended"
        case .firstPlanned: "→ first request planned"
        case .firstRead: "→ read"
        case .lastPlanned: "→ last request planned"
        case .lastRead: "→ read"
        }
    }
}

struct OrchestratorLatency {
    let rate: Int
    let applications: Int
    let p50: Double
    let p99: Double
    let max: Double
    let phases: String
    /// Each ``LatencyStage``'s p50/p99 in milliseconds, one line.
    let stages: String
}

/// The latencies of an open loop at `rate` applications a second for `seconds` seconds, in
/// milliseconds, from each application's scheduled submission to its last approval request read.
func benchOrchestratorLatency(log: any EventLog, directory: URL, rate: Int, seconds: Int) async throws
    -> OrchestratorLatency
{
    let clock = ContinuousClock()
    let tracking = LatencyTracking()
    let observe: @Sendable (String, Date) -> Void = { application, planned in
        let now = clock.now
        let wall = Date()
        tracking.state.withLock { state in
            let count = state.requests[application, default: 0] + 1
            state.requests[application] = count
            if count == 1 { state.first[application] = (planned, wall) }
            if count == requestsPerApplication, let scheduled = state.scheduled[application] {
                let micros = (now - scheduled).seconds * 1_000_000
                _ = state.histogram.record(UInt64(max(1, micros.rounded())))
                if let due = state.scheduledWall[application], let appended = state.appended[application],
                    let first = state.first[application]
                {
                    let times = [due, appended, first.planned, first.read, planned, wall]
                    for stage in LatencyStage.allCases {
                        let micros = times[stage.rawValue + 1].timeIntervalSince(times[stage.rawValue]) * 1_000_000
                        _ = state.stages[stage.rawValue].record(UInt64(max(1, micros.rounded())))
                    }
                }
            }
        }
    }
    let rig = try await OrchestratorRig.start(log: log, directory: directory, name: "latency", observe: observe)
    let engine = rig.engine
    let before = engine.stats.snapshot
    let total = rate * seconds
    let interval = Duration.seconds(1) / rate
    let start = clock.now.advanced(by: .milliseconds(10))
    let startWall = Date(timeIntervalSinceNow: 0.010)
    var next = 0
    while next < total {
        // Everything due by now, in one append: a submitter that falls behind catches up at once,
        // and each application's latency still counts from when it was due.
        let now = clock.now
        var due: [Int] = []
        while next < total, start.advanced(by: interval * next) <= now {
            due.append(next + 1)
            next += 1
        }
        if !due.isEmpty {
            let ids = due.map { benchApplicationId($0) }
            tracking.state.withLock { state in
                for (number, id) in zip(due, ids) {
                    state.scheduled[id] = start.advanced(by: interval * (number - 1))
                    state.scheduledWall[id] = startWall.addingTimeInterval((interval * (number - 1)).seconds)
                }
            }
            try await submit(due, publisher: rig.publisher)
            let appended = Date()
            tracking.state.withLock { state in
                for id in ids { state.appended[id] = appended }
            }
        }
        if next < total { try await Task.sleep(until: start.advanced(by: interval * next), clock: clock) }
    }
    let submitted = clock.now
    try await waitForStore(
        engine.store, cases: OrchestratorRig.warmUp + total, open: 0, timeout: .seconds(300), what: "the latency run",
        ready: allDone(engine.stats, since: before, applications: total))
    let after = engine.stats.snapshot
    let (count, p50, p99, slowest) = tracking.state.withLock { state in
        (
            state.histogram.totalCount, state.histogram.valueAtPercentile(50), state.histogram.valueAtPercentile(99),
            state.histogram.max
        )
    }
    let stages = tracking.state.withLock { state in
        LatencyStage.allCases.map { stage in
            let histogram = state.stages[stage.rawValue]
            let p50 = Double(histogram.valueAtPercentile(50)) / 1000
            let p99 = Double(histogram.valueAtPercentile(99)) / 1000
            return "\(stage.name) " + String(format: "%.1f/%.1f", p50, p99)
        }.joined(separator: ", ")
    }
    await rig.stop()
    guard count == UInt64(total) else {
        throw BenchmarkFailure("the latency run saw the last request of \(count) of \(total) applications")
    }
    return OrchestratorLatency(
        rate: rate, applications: total, p50: Double(p50) / 1000, p99: Double(p99) / 1000, max: Double(slowest) / 1000,
        phases: phases(before, after, seconds: (submitted - start).seconds), stages: stages)
}

// MARK: - Memory

/// The command-line flag that makes `onewindow-bench` the memory run's orchestrator process.
let memoryChildFlag = "--orchestrator-memory-child"

struct OrchestratorMemory {
    let applications: Int
    let residentMB: Double
    let peakMB: Double
    let seconds: Double
}

/// Submits `applications` applications to a fresh embedded log, then starts a fresh orchestrator
/// process (this executable with ``memoryChildFlag``) on it with no departments, and reads its
/// resident memory once every application is open in its store with its first request published.
func benchOrchestratorMemory(directory: URL, applications: Int) async throws -> OrchestratorMemory {
    let setup = try OrchestratorSetup.load()
    let bus = directory.appendingPathComponent("memory-bus.sqlite").path
    let store = directory.appendingPathComponent("memory-orchestrator.sqlite").path
    let log = try EmbeddedLog(path: bus)
    _ = try await log.createTopics(setup.catalog.topicSpecs)
    let publisher = Publisher(log: log, catalog: setup.catalog, name: "bench-window")
    for first in stride(from: 1, through: applications, by: 1000) {
        try await submit(first..<min(first + 1000, applications + 1), publisher: publisher)
    }
    await log.close()
    guard let executable = Bundle.main.executableURL else { throw BenchmarkFailure("no path to this executable") }
    let process = childProcess(executable, [memoryChildFlag, bus, store, String(applications)])
    let output = Pipe()
    let error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    let result = await collect(process, output: output, error: error, timeout: .seconds(900))
    let text = String(decoding: result.output, as: UTF8.self)
    guard result.status == 0,
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MEMORY ") })
    else {
        throw BenchmarkFailure(
            "the memory run's orchestrator process exited \(result.status): \(text) \(String(decoding: result.error, as: UTF8.self))"
        )
    }
    let fields = line.split(separator: " ").compactMap { Double($0) }
    guard fields.count == 3 else { throw BenchmarkFailure("the memory run printed \(line)") }
    return OrchestratorMemory(
        applications: applications, residentMB: fields[0] / 1024, peakMB: fields[1] / 1024, seconds: fields[2])
}

/// The memory run's orchestrator process: runs the engine on `bus` and `store` until the store
/// holds `applications` open cases and the outbox is published, then prints
/// `MEMORY <VmRSS kB> <VmHWM kB> <seconds>` and exits.
func orchestratorMemoryChild(bus: String, store: String, applications: Int) async throws -> Never {
    let setup = try OrchestratorSetup.load()
    let log = try EmbeddedLog(path: bus)
    let engine = try setup.engine(store: store, log: log)
    let clock = ContinuousClock()
    let start = clock.now
    let orchestrator = runOrchestrator(engine)
    let stats = engine.stats
    try await waitForStore(
        engine.store, cases: applications, open: applications, timeout: .seconds(900), what: "the memory run",
        ready: { stats.snapshot.inputsApplied >= applications })
    let seconds = (clock.now - start).seconds
    let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
    func kilobytes(_ field: String) -> String {
        status.split(separator: "\n").first { $0.hasPrefix(field + ":") }?.split(separator: " ").dropFirst().first
            .map(String.init) ?? "0"
    }
    print("MEMORY \(kilobytes("VmRSS")) \(kilobytes("VmHWM")) \(seconds)")
    orchestrator.cancel()
    exit(0)
}
