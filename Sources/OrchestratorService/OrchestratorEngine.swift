import Bus
import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import Logging
import Metrics
import Orchestrator
import Retrying
import Synchronization

/// Counts of what the orchestrator did, for logs, metrics and tests.
public final class OrchestratorStats: Sendable {
    public struct Snapshot: Sendable, Hashable {
        public var inputsApplied = 0
        public var duplicates = 0
        public var deadLettered = 0
        /// Outbox rows written (requests, progress, notifications, alerts).
        public var effectsEmitted = 0
        /// Outbox rows the relay published.
        public var relayed = 0
        public var openApplications = 0
        public var overdueSteps = 0
        /// Operations retried after an error that may pass (``ErrorDisposition/retry``), each
        /// attempt counted, per part of the engine (`consumer`, `relay`, `timers`).
        public var retries: [String: Int] = [:]
        /// Polled batches applied, and the relay's appends.
        public var batches = 0
        /// Batches planned again in their transaction (``BatchOutcome/replanned``).
        public var replanned = 0
        public var relayBatches = 0
        /// Seconds spent in each phase (the benchmark's breakdown): decoding and validating polled
        /// records, planning batches outside the store's transactions (``BatchPlan``), the store
        /// transactions writing them, and the relay's reading of the outbox, publishing
        /// (validating and appending) and marking rows sent.
        public var decodeSeconds = 0.0
        public var planSeconds = 0.0
        /// The CPU time of the consumer's store transactions (their wall time is `applySeconds`).
        public var writeCPUSeconds = 0.0
        public var applySeconds = 0.0
        public var relayReadSeconds = 0.0
        public var relayPublishSeconds = 0.0
        public var relayMarkSeconds = 0.0
        /// Rows the relay published as this engine's consumer handed them over (``CommittedRows``),
        /// not read back from the store; and its reads of the store.
        public var relayedFromMemory = 0
        public var relayStoreReads = 0
        /// Summed over the batches written, the time (on the engine's clock) from the start of
        /// their planning to the end of their transaction; and over the rows published, from the
        /// start of their batch's planning (their event time) to the end of their append.
        public var plannedToCommittedSeconds = 0.0
        public var plannedToPublishedSeconds = 0.0
    }

    private let state = Mutex(Snapshot())
    private let applied = Counter(label: "onewindow_orchestrator_inputs_applied_total")
    private let duplicates = Counter(label: "onewindow_orchestrator_duplicate_inputs_total")
    private let deadLettered = Counter(label: "onewindow_orchestrator_dead_lettered_total")
    private let emitted = Counter(label: "onewindow_orchestrator_effects_emitted_total")
    private let relayed = Counter(label: "onewindow_orchestrator_relayed_total")
    private let open = Gauge(label: "onewindow_orchestrator_open_applications")
    private let overdue = Gauge(label: "onewindow_orchestrator_overdue_steps")

    public init() {}

    public var snapshot: Snapshot { state.withLock { $0 } }

    func count(_ outcome: BatchOutcome) {
        state.withLock {
            $0.batches += 1
            $0.replanned += outcome.replanned
            $0.inputsApplied += outcome.applied
            $0.duplicates += outcome.duplicates
            $0.deadLettered += outcome.deadLettered
            $0.effectsEmitted += outcome.emitted
        }
        applied.increment(by: outcome.applied)
        duplicates.increment(by: outcome.duplicates)
        deadLettered.increment(by: outcome.deadLettered)
        emitted.increment(by: outcome.emitted)
    }

    /// Counts a retry of one part, in `onewindow_orchestrator_retries_total{part}`.
    func retried(part: String) {
        state.withLock { $0.retries[part, default: 0] += 1 }
        Counter(label: "onewindow_orchestrator_retries_total", dimensions: [("part", part)]).increment()
    }

    func relayed(_ count: Int, fromMemory: Bool, sincePlanned: Double = 0) {
        state.withLock {
            $0.plannedToPublishedSeconds += sincePlanned
            $0.relayed += count
            $0.relayBatches += 1
            if fromMemory { $0.relayedFromMemory += count }
        }
        relayed.increment(by: count)
    }

    func readStore() {
        state.withLock { $0.relayStoreReads += 1 }
    }

    /// Adds time spent in a phase.
    func spent(_ phase: WritableKeyPath<Snapshot, Double>, since start: ContinuousClock.Instant) {
        add(phase, (ContinuousClock.now - start).seconds)
    }

    /// Adds to a figure.
    func add(_ figure: WritableKeyPath<Snapshot, Double>, _ amount: Double) {
        state.withLock { $0[keyPath: figure] += amount }
    }

    func gauges(open: Int, overdue: Int) {
        state.withLock {
            $0.openApplications = open
            $0.overdueSteps = overdue
        }
        self.open.record(open)
        self.overdue.record(overdue)
    }
}

/// The orchestrator's I/O shell: the consumer that applies inputs in batches, the relay that
/// publishes the outbox and the timer loop, each a `run…` method that loops until cancelled (the
/// services of ``OrchestratorServices`` call them), and the one-step methods tests call directly
/// (``process(_:)``, ``relayOnce()``, ``fireDueTimers(partitions:)``).
///
/// ```swift
/// let engine = try OrchestratorEngine(store: store, rules: rules, calendar: calendar, log: log, catalog: catalog)
/// try await engine.process(records)    // one store transaction
/// try await engine.relayOnce()         // publish what it wrote
/// ```
public struct OrchestratorEngine: Sendable {
    /// The consumer group every orchestrator instance joins.
    public static let group = "onewindow.orchestrator"
    /// The `ce_source` of everything the orchestrator publishes.
    public static let source = "onewindow-orchestrator"

    public let store: OrchestratorStore
    public let core: Orchestrator
    public let log: any EventLog
    public let publisher: Publisher
    public let clock: any WallClock
    public let logger: Logger
    public let stats: OrchestratorStats
    /// The topics consumed: every workflow's application topic and every department's decisions.
    public let topics: [String]
    /// The partition numbers the consumer was last assigned; `nil` before the first assignment.
    let assigned = Assignment()
    /// Where submissions' `sharedFact:` materials are looked up (`SharedFactLookup.swift`); `nil`:
    /// nowhere, and such materials are asked of the applicant unless the application lists them.
    public let sharedFacts: (any SharedFactLookup)?
    /// Wakes the relay as soon as a transaction wrote outbox rows, instead of at its next poll.
    let outboxWritten = Wakeup()
    /// The consumer's last plan, which the next batch is planned after.
    let lastPlan = LastPlan()
    /// The relay loop's recordings of its position, one at a time beside its rounds.
    let positionRecorder = BackgroundWork()
    /// The outbox rows the consumer's transactions committed, for the relay to publish without
    /// reading them back (``CommittedRows``): a few rounds of the relay's.
    let committedRows = CommittedRows(capacity: OrchestratorEngine.relayBatch * 4)

    /// The partition numbers the consumer holds now; `nil` before its first poll.
    public var assignedPartitions: Set<Int>? { assigned.get() }

    /// - Parameter rules: the rules loaded from the files; the versions cases in the store are
    ///   pinned to are added from their stored sources.
    public init(
        store: OrchestratorStore, rules: RuleBook, calendar: WorkingDayCalendar, log: any EventLog,
        catalog: TopicCatalog, clock: any WallClock = .system, logger: Logger = Logger(label: "onewindow.orchestrator"),
        stats: OrchestratorStats = OrchestratorStats(), sharedFacts: (any SharedFactLookup)? = nil
    ) throws {
        self.store = store
        self.core = Orchestrator(rules: try store.withPinnedVersions(rules, catalog: catalog), calendar: calendar)
        self.log = log
        self.publisher = Publisher(log: log, catalog: catalog, name: Self.source, clock: clock)
        self.clock = clock
        self.logger = logger
        self.stats = stats
        self.sharedFacts = sharedFacts
        self.topics = rules.inputTopics(in: catalog)
    }

    // MARK: - Decoding

    /// A consumed record as an input, or the reason it cannot be one.
    public func decode(_ record: LogRecord) -> PendingInput {
        let original = OriginalRecord(record)
        func refused(_ id: String, _ code: String, _ reason: String) -> PendingInput {
            PendingInput(
                eventId: id, partition: record.partition, input: .failure(Refusal(code: code, reason: reason)),
                original: original)
        }
        let event: Event
        do {
            event = try CloudEventsBinding.event(from: record)
        } catch {
            return refused("\(record.position)", ValidationFailure.Code.invalidEnvelope.rawValue, "\(error)")
        }
        let body: JSONValue
        do {
            body = try publisher.validator.validate(event, topic: record.topic).body
        } catch let failure as ValidationFailure {
            return refused(event.id, failure.code.rawValue, failure.reason)
        } catch {
            return refused(event.id, "invalid-input", "\(error)")
        }
        guard let input = Input(eventType: event.type, body: body, rules: core.rules) else {
            if event.type == "approval.decided" || event.type == Resubmission.eventType {
                return refused(
                    event.id, "invalid-input", "\(event.type) \(event.id) lacks a member the orchestrator needs")
            }
            return refused(event.id, "unknown-workflow", "no workflow takes \(event.type) (on \(record.topic))")
        }
        if case .resubmitted(let resubmission) = input, let problem = problem(in: resubmission) {
            return refused(event.id, "invalid-input", "resubmission \(event.id): \(problem)")
        }
        return PendingInput(eventId: event.id, partition: record.partition, input: .success(input), original: original)
    }

    /// What is wrong with a resubmission's corrected application: it must validate against the
    /// application schema of the workflow it names (what `onewindow apply` checks); `nil` when
    /// there is none or it is valid.
    func problem(in resubmission: Resubmission) -> String? {
        guard let corrected = resubmission.application else { return nil }
        guard let name = resubmission.workflow, let workflow = core.rules.current[name] else {
            return "it carries a corrected application but names no workflow of the rules (\(resubmission.workflow ?? "none"))"
        }
        let event = Event(
            id: "resubmitted-application", type: workflow.applicationType, source: Self.source, subject: nil,
            time: clock.now(), data: corrected.serialized())
        do {
            _ = try publisher.validator.validate(event)
            return nil
        } catch let failure as ValidationFailure {
            return "the corrected application is not a valid \(workflow.applicationType): \(failure.reason)"
        } catch {
            return "the corrected application is not a valid \(workflow.applicationType): \(error)"
        }
    }

    // MARK: - One step each

    /// Applies a polled batch in one store transaction (ids applied before are skipped):
    /// ``prepare(_:)`` then ``commit(_:)``.
    @discardableResult
    public func process(_ records: [LogRecord]) async throws -> BatchOutcome {
        try await commit(try await prepare(records))
    }

    /// Decodes a polled batch and plans it outside the store's write transaction, after the plan
    /// this engine prepared before (which may still be being written: the consumer prepares a
    /// batch while the previous one is written).
    ///
    /// A batch of records from more than one partition is split in two by partition and both
    /// halves are decoded and planned at once, each on a thread of its own, into one plan
    /// (``PlanningInHalves``). The stats' decoding time is then the longer half's.
    public func prepare(_ records: [LogRecord]) async throws -> BatchPlan {
        let started = ContinuousClock.now
        let now = clock.now()
        let previous = lastPlan.get()
        let split = PlanningInHalves(records)
        let plan: BatchPlan
        let decodeSeconds: Double
        if split.halves.count == 2 {
            async let first = prepare(split.halves[0], now: now, after: previous)
            async let second = prepare(split.halves[1], now: now, after: previous)
            let (one, two) = try await (first, second)
            plan = BatchPlan(merging: [one.plan, two.plan], sides: split.sides)
            decodeSeconds = max(one.decodeSeconds, two.decodeSeconds)
        } else {
            (plan, decodeSeconds) = try await prepare(records, now: now, after: previous)
        }
        lastPlan.set(plan)
        stats.add(\.decodeSeconds, decodeSeconds)
        stats.add(\.planSeconds, (ContinuousClock.now - started).seconds - decodeSeconds)
        return plan
    }

    /// Decodes and plans `records` (all of a batch, or one half of it) at `now` after `previous`.
    private func prepare(_ records: [LogRecord], now: Date, after previous: BatchPlan?) async throws
        -> (plan: BatchPlan, decodeSeconds: Double)
    {
        let decoding = ContinuousClock.now
        let decoded = records.map(decode)
        let decodeSeconds = (ContinuousClock.now - decoding).seconds
        let inputs = try await withSharedFacts(decoded)
        let plan = try await store.prepare(inputs, core: core, now: now, checker: checker, after: previous)
        return (plan, decodeSeconds)
    }

    /// Writes a plan of ``prepare(_:)`` in one store transaction (planning it again there when
    /// the store changed under it: ``OrchestratorStore/commit(_:core:checker:)``).
    @discardableResult
    public func commit(_ plan: BatchPlan) async throws -> BatchOutcome {
        let applying = ContinuousClock.now
        let outcome: BatchOutcome
        committedRows.committing(true)
        defer { committedRows.committing(false) }
        do {
            let stats = self.stats, committedRows = self.committedRows, outboxWritten = self.outboxWritten
            outcome = try await store.commit(
                plan, core: core, checker: checker, writeCPU: { stats.add(\.writeCPUSeconds, $0) },
                committed: { rows in
                    // On the writer's queue, right after the commit: the relay wakes with them.
                    committedRows.handOver(rows)
                    outboxWritten.signal()
                })
        } catch {
            // Not written: the next batch is planned on the store alone (this one, prepared
            // again, must not find its own ids applied). Nothing was handed to the relay; it
            // reads the store, whatever became of the transaction.
            lastPlan.forget(plan)
            committedRows.wroteWithoutHandingOver()
            throw error
        }
        // Planned again: the store is not what the plan says, so the next batch is planned on
        // the store alone, not after it; and the rows written were not handed to the relay.
        if outcome.replanned > 0 {
            lastPlan.forget(plan)
            committedRows.wroteWithoutHandingOver()
        }
        stats.spent(\.applySeconds, since: applying)
        stats.add(\.plannedToCommittedSeconds, clock.now().timeIntervalSince(plan.now))
        stats.count(outcome)
        // Rows written as planned woke the relay at the commit, with the hand-over; rows of a batch
        // planned again wake it here (a second signal would only send it round once more).
        if outcome.replanned > 0 && outcome.emitted + outcome.deadLettered > 0 { outboxWritten.signal() }
        if outcome.deadLettered > 0 {
            logger.warning(
                "dead-lettered \(outcome.deadLettered) input(s) the orchestrator refused (see the dead-letter topic)")
        }
        return outcome
    }

    /// Validates emissions as the store writes them (``EmissionChecker``), for this engine's relay.
    var checker: EmissionChecker { EmissionChecker(validator: publisher.validator, source: Self.source) }

    /// Publishes the first unsent outbox rows in order with the ids the core gave them, then moves
    /// the relay's position past them (``OrchestratorStore/relayed(through:)``). The rows are
    /// those this engine's consumer handed over when they begin right after the position
    /// (``CommittedRows``), else read from the store. The position is
    /// recorded in the store by the next transaction that applies inputs, or here when the outbox
    /// is found empty, a second has passed or `limit` × 10 rows are unrecorded (before returning,
    /// or, with `recording` `.inBackground`, beside the relay's next rounds). A crash before it is
    /// recorded republishes the same ids, which readers drop.
    /// - Returns: how many rows were published.
    @discardableResult
    public func relayOnce(limit: Int = 500, recording: PositionRecording = .awaited) async throws -> Int {
        try await relayRound(limit: limit, recording: recording, storeReads: .always)
    }

    /// When a round of the relay with nothing handed over reads the store.
    enum StoreReads {
        /// Every time (``relayOnce(limit:recording:)``: a caller that asks means it).
        case always
        /// Only when it may hold rows not handed over, or `interval` passed since the last read
        /// (the relay loop: rows of another process on the same store are found within it).
        case whenItMayHaveMore(interval: Duration)
    }

    /// One round of the relay (``relayOnce(limit:recording:)``).
    func relayRound(limit: Int, recording: PositionRecording, storeReads: StoreReads) async throws -> Int {
        let reading = ContinuousClock.now
        let rows: [OutboxRow]
        let fromMemory: Bool
        switch committedRows.take(after: store.position.publishedIfKnown, limit: limit) {
        case .rows(let handed):
            rows = handed
            fromMemory = true
        case .empty:
            if case .whenItMayHaveMore(let interval) = storeReads,
                !committedRows.storeMayHaveMore(within: interval)
            {
                return 0
            }
            fallthrough
        case .gap:
            let token = committedRows.readingStore()
            rows = try await store.unsent(limit: limit)
            committedRows.readStore(token, toTheEnd: rows.count < limit)
            stats.readStore()
            fromMemory = false
        }
        stats.spent(\.relayReadSeconds, since: reading)
        guard let last = rows.last else {
            try await record(recording) { try await $0.recordRelayPosition() }
            return 0
        }
        let publishing = ContinuousClock.now
        try await publish(rows)
        stats.spent(\.relayPublishSeconds, since: publishing)
        // Before the position moves: whoever sees the outbox empty sees the count.
        let published = clock.now().millisecondsSince1970
        stats.relayed(
            rows.count, fromMemory: fromMemory,
            sincePlanned: Double(rows.reduce(0) { $0 + max(0, published - $1.timeMilliseconds) }) / 1000)
        store.relayed(through: last.seq)
        try await record(recording) {
            try await $0.recordRelayPosition(ifOlderThan: .seconds(1), orRowsBehind: Int64(limit) * 10)
        }
        return rows.count
    }

    /// Records the relay's position as `recording` says (`write` answers whether it wrote).
    private func record(
        _ recording: PositionRecording, _ write: @escaping @Sendable (OrchestratorStore) async throws -> Bool
    ) async throws {
        let store = self.store, stats = self.stats
        let marking = ContinuousClock.now
        switch recording {
        case .awaited:
            if try await write(store) { stats.spent(\.relayMarkSeconds, since: marking) }
        case .inBackground:
            // A failure is not the relay's: the next recording, or the consumer's next
            // transaction, records the position (a store that cannot be written stops the
            // consumer with the reason).
            positionRecorder.start {
                if (try? await write(store)) == true { stats.spent(\.relayMarkSeconds, since: marking) }
            }
        }
    }

    /// Appends outbox rows to the log in one call, in order (``OutboxRelay``, with the
    /// orchestrator's source). It does not mark them sent (``relayOnce(limit:)`` does).
    public func publish(_ rows: [OutboxRow]) async throws {
        try await OutboxRelay(publisher: publisher, source: Self.source, logger: logger).publish(rows)
    }

    /// Turns due timers into firings through the core, in one store transaction.
    /// - Parameter partitions: only timers of these partition numbers (`nil`: all).
    @discardableResult
    public func fireDueTimers(partitions: Set<Int>?) async throws -> BatchOutcome {
        let now = clock.now()
        let due = try await store.dueTimers(at: now, partitions: partitions)
        try await store.markOverdue(at: now)
        guard !due.isEmpty else { return BatchOutcome() }
        let inputs = due.map { key, partition in
            PendingInput(
                eventId: key.description, partition: partition, input: .success(.timerFired(key)), original: nil)
        }
        let outcome: BatchOutcome
        do {
            outcome = try await store.apply(inputs, core: core, now: now, checker: checker)
        } catch {
            committedRows.wroteWithoutHandingOver()  // it may have committed before the error reached here
            throw error
        }
        // Its rows are read from the store by the relay (they are not handed over).
        committedRows.wroteWithoutHandingOver()
        stats.count(outcome)
        if outcome.emitted + outcome.deadLettered > 0 { outboxWritten.signal() }
        return outcome
    }

    /// Refreshes the open and overdue gauges from the store.
    public func refreshGauges() async throws {
        let counts = try await store.counts()
        stats.gauges(open: counts.open, overdue: counts.overdue)
    }

    // MARK: - Loops

    /// Runs `operation` until it succeeds, by the one retry rule of the long-running processes
    /// (``Retrier/inLoop(_:_:_:)``): what ``ErrorDisposition`` calls retriable is retried with
    /// back-off (0.1 s doubling to 30 s) on the injected clock and counted in ``OrchestratorStats``
    /// and `onewindow_orchestrator_retries_total{part}`; `groupBusy` is thrown for the consumer to
    /// poll again; any other error (the log closed or broken, the store damaged, a record the log
    /// refuses) ends the part with a ``FatalFailure``, and `orchestrator run` exits 75 for a
    /// supervisor to restart it.
    func persistently<T: Sendable>(_ part: String, _ what: String, _ operation: () async throws -> T) async throws
        -> T
    {
        try await retrier.inLoop(part, what, operation)
    }

    /// The retry loop of this engine's parts (see ``persistently(_:_:_:)``).
    var retrier: Retrier {
        let stats = self.stats
        return Retrier(clock: clock, logger: logger, firstBackoff: .milliseconds(100)) { part in
            stats.retried(part: part)
        }
    }

    /// Consumes the input topics as group ``group`` until cancelled: each polled batch is planned
    /// (``prepare(_:)``) while the one before is written, then written in one store transaction
    /// (``commit(_:)``), then its offsets are committed. The transaction and the commit run in a
    /// task of their own, so a stop (cancellation) that arrives meanwhile lets them finish.
    public func runConsumer(maxRecords: Int = 500) async throws {
        let assigned = self.assigned
        let engine = self
        try await consumeInBatches(
            log: log, group: Self.group, topics: topics, retrier: retrier, logger: logger, maxRecords: maxRecords,
            what: store.path, assigned: assigned, overlapping: true, prepare: { try await engine.prepare($0) },
            process: { _ = try await engine.commit($0) })
    }

    /// The most outbox rows one round of the relay publishes: a batch of 500 inputs writes about
    /// a thousand rows, and marking rows sent waits for the consumer's transaction, so a round
    /// of 500 fell behind the consumer in the benchmark.
    static let relayBatch = 2000

    /// Publishes the outbox until cancelled; when it is empty, waits until this engine's consumer or
    /// timer loop writes to it, or 20 ms (real time: rows another process wrote), whichever comes
    /// first. Refreshes the open and overdue gauges about once a second, beside it.
    public func runRelay() async throws {
        let outboxWritten = self.outboxWritten
        let store = self.store
        // What was published is recorded before the stop (in a task of its own: GRDB's async
        // writes refuse to start in a cancelled one), so a restart does not publish it again.
        let recorder = positionRecorder
        let gauges = BackgroundWork()
        func recordPosition() async {
            await gauges.finish()
            await recorder.finish()
            await Task { _ = try? await store.recordRelayPosition() }.value
        }
        do {
            try await relayUntilCancelled(
                retrier: retrier,
                relayOnce: {
                    try await relayRound(
                        limit: Self.relayBatch, recording: .inBackground,
                        storeReads: .whenItMayHaveMore(interval: .milliseconds(20)))
                },
                everySecond: {
                    // For the metrics only (a failure is tried again next time), beside the relay:
                    // counting the open cases of a large store is not the relay's to wait for.
                    gauges.start { try? await self.refreshGauges() }
                },
                whenIdle: { await outboxWritten.wait(upTo: .milliseconds(20)) })
        } catch {
            await recordPosition()
            throw error
        }
        await recordPosition()
    }

    /// Fires due timers of the assigned partitions until cancelled, waking on the injected clock
    /// at the next due instant or after a minute of its time, whichever comes first, and at most
    /// every 50 ms of real time (an accelerated clock's minute can be a millisecond).
    public func runTimers() async throws {
        try await fireTimersUntilCancelled(
            clock: clock, assigned: assigned, retrier: retrier, idle: .seconds(60),
            fire: { _ = try await fireDueTimers(partitions: $0) }, next: { try? await store.nextTimer() })
    }
}

/// How ``OrchestratorEngine/relayOnce(limit:recording:)`` records the relay's position when that is due.
public enum PositionRecording: Sendable {
    /// Before it returns (a single round: tests, tools).
    case awaited
    /// In a task of its own, one at a time, while the relay goes on publishing (the relay loop):
    /// the recording waits for the store's one writer, which the consumer's transaction holds for
    /// tens of milliseconds under load, and the rows written meanwhile should not wait with it.
    case inBackground
}

/// Work started at most once at a time: ``start(_:)`` does nothing while the last one runs, and
/// ``finish()`` waits for it.
final class BackgroundWork: Sendable {
    private struct State {
        var running = false
        var task: Task<Void, Never>?
    }
    private let state = Mutex(State())

    func start(_ work: @escaping @Sendable () async -> Void) {
        state.withLock { state in
            guard !state.running else { return }
            state.running = true
            state.task = Task {
                await work()
                self.state.withLock { $0.running = false }
            }
        }
    }

    func finish() async {
        await state.withLock { $0.task }?.value
    }
}

/// A wake-up call for one waiter (the relay): ``signal()`` ends the current ``wait(upTo:)`` or,
/// when nobody waits, makes the next one return at once. Cancellation ends a wait too.
final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns at the first signal since the last wait, or after `timeout`.
    func wait(upTo timeout: Duration) async {
        if state.withLock({ state in
            defer { state.pending = false }
            return state.pending
        }) { return }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.signal()
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if state.pending || Task.isCancelled {
                        state.pending = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            signal()
        }
        timer.cancel()
        // A timer that fired after a signal ended the wait leaves a stale `pending`: harmless (the
        // relay looks at the outbox once more).
    }
}


/// The consumer's last plan (``OrchestratorEngine/prepare(_:)``).
final class LastPlan: Sendable {
    private let plan = Mutex<BatchPlan?>(nil)
    func get() -> BatchPlan? { plan.withLock { $0 } }
    func set(_ new: BatchPlan) { plan.withLock { $0 = new } }
    /// Forgets `stale` (a plan not written, or written differently) when it is the last plan.
    func forget(_ stale: BatchPlan) { plan.withLock { if $0?.token == stale.token { $0 = nil } } }
}
