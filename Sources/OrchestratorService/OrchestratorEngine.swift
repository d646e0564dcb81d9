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
        /// Polled batches applied, and the relay's appends.
        public var batches = 0
        public var relayBatches = 0
        /// Seconds spent in each phase (the benchmark's breakdown): decoding and validating polled
        /// records, the store transactions applying them, offset commits, and the relay's reading of
        /// the outbox, publishing (validating and appending) and marking rows sent.
        public var decodeSeconds = 0.0
        public var applySeconds = 0.0
        public var commitSeconds = 0.0
        public var relayReadSeconds = 0.0
        public var relayPublishSeconds = 0.0
        public var relayMarkSeconds = 0.0
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

    func relayed(_ count: Int) {
        state.withLock {
            $0.relayed += count
            $0.relayBatches += 1
        }
        relayed.increment(by: count)
    }

    /// Adds time spent in a phase.
    func spent(_ phase: WritableKeyPath<Snapshot, Double>, since start: ContinuousClock.Instant) {
        let seconds = (ContinuousClock.now - start).seconds
        state.withLock { $0[keyPath: phase] += seconds }
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
    /// Wakes the relay as soon as a transaction wrote outbox rows, instead of at its next poll.
    let outboxWritten = Wakeup()

    /// The partition numbers the consumer holds now; `nil` before its first poll.
    public var assignedPartitions: Set<Int>? { assigned.get() }

    /// - Parameter rules: the rules loaded from the files; the versions cases in the store are
    ///   pinned to are added from their stored sources.
    public init(
        store: OrchestratorStore, rules: RuleBook, calendar: WorkingDayCalendar, log: any EventLog,
        catalog: TopicCatalog, clock: any WallClock = .system, logger: Logger = Logger(label: "onewindow.orchestrator"),
        stats: OrchestratorStats = OrchestratorStats()
    ) throws {
        self.store = store
        self.core = Orchestrator(rules: try store.withPinnedVersions(rules, catalog: catalog), calendar: calendar)
        self.log = log
        self.publisher = Publisher(log: log, catalog: catalog, name: Self.source, clock: clock)
        self.clock = clock
        self.logger = logger
        self.stats = stats
        self.topics = Self.inputTopics(rules: rules, catalog: catalog)
    }

    /// Every current workflow's application topic and every topic carrying `approval.decided`.
    /// (The catalog has no resubmission topic yet; when it has one, its type is decoded here too.)
    public static func inputTopics(rules: RuleBook, catalog: TopicCatalog) -> [String] {
        var topics = Set<String>()
        for workflow in rules.current.values {
            for topic in catalog.topics(carrying: workflow.applicationType) { topics.insert(topic.name) }
        }
        for topic in catalog.topics(carrying: "approval.decided") { topics.insert(topic.name) }
        return topics.sorted()
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
        let input: Input
        if event.type == "approval.decided" {
            guard let decision = Decision(body: body) else {
                return refused(
                    event.id, "invalid-input", "approval.decided \(event.id) lacks a member the orchestrator needs")
            }
            input = .decided(decision)
        } else if core.rules.workflow(applicationType: event.type) != nil {
            input = .submitted(Submission(applicationType: event.type, application: body))
        } else {
            return refused(event.id, "unknown-workflow", "no workflow takes \(event.type) (on \(record.topic))")
        }
        return PendingInput(eventId: event.id, partition: record.partition, input: .success(input), original: original)
    }

    // MARK: - One step each

    /// Applies a polled batch in one store transaction (ids applied before are skipped).
    @discardableResult
    public func process(_ records: [LogRecord]) async throws -> BatchOutcome {
        let decoding = ContinuousClock.now
        let inputs = records.map(decode)
        stats.spent(\.decodeSeconds, since: decoding)
        let applying = ContinuousClock.now
        let outcome = try await store.apply(inputs, core: core, now: clock.now())
        stats.spent(\.applySeconds, since: applying)
        stats.count(outcome)
        if outcome.emitted + outcome.deadLettered > 0 { outboxWritten.signal() }
        if outcome.deadLettered > 0 {
            logger.warning(
                "dead-lettered \(outcome.deadLettered) input(s) the orchestrator refused (see the dead-letter topic)")
        }
        return outcome
    }

    /// Publishes the first unsent outbox rows in order with the ids the core gave them, then marks
    /// them sent. A crash between the two republishes the same ids, which readers drop.
    /// - Returns: how many rows were published.
    @discardableResult
    public func relayOnce(limit: Int = 500) async throws -> Int {
        let reading = ContinuousClock.now
        let rows = try await store.unsent(limit: limit)
        stats.spent(\.relayReadSeconds, since: reading)
        guard !rows.isEmpty else { return 0 }
        let publishing = ContinuousClock.now
        try await publish(rows)
        stats.spent(\.relayPublishSeconds, since: publishing)
        let marking = ContinuousClock.now
        try await store.markSent(through: rows.map(\.seq))
        stats.spent(\.relayMarkSeconds, since: marking)
        stats.relayed(rows.count)
        return rows.count
    }

    /// Appends outbox rows to the log in one call, in order: emissions validated by the publisher's
    /// validator (one that fails goes to the dead-letter topic in its place, as `Publisher` does),
    /// dead letters as the dead-letter record format with the refusal's code and reason. It does not
    /// mark them sent (``relayOnce(limit:)`` does).
    public func publish(_ rows: [OutboxRow]) async throws {
        var records: [OutgoingRecord] = []
        records.reserveCapacity(rows.count)
        for row in rows {
            let time = Date(timeIntervalSince1970: Double(row.timeMilliseconds) / 1000)
            if let deadLetter = row.deadLetter {
                var record = DeadLetter.record(
                    deadLetterTopic: publisher.catalog.deadLetterTopic, originalTopic: deadLetter.originalTopic,
                    key: row.key.map { Data($0.utf8) }, value: row.body,
                    headers: deadLetter.headers.map { LogHeader(name: $0[0], text: $0[1]) },
                    failure: ValidationFailure(.undeliverable, deadLetter.reason), refusedBy: publisher.name, at: time)
                record.headers = record.headers.map { header in
                    switch header.name {
                    case DeadLetter.code: LogHeader(name: DeadLetter.code, text: deadLetter.code)
                    case DeadLetter.reason:
                        LogHeader(name: DeadLetter.reason, text: "\(deadLetter.code): \(deadLetter.reason)")
                    default: header
                    }
                }
                records.append(record)
                continue
            }
            let event = Event(
                id: row.eventId, type: row.type, source: Self.source, subject: nil, time: time, data: row.body)
            do {
                let validated = try publisher.validator.validate(event, topic: row.topic)
                records.append(CloudEventsBinding.record(for: validated.event, topic: validated.topic, key: row.key))
            } catch let failure as ValidationFailure {
                logger.error(
                    "outbox row \(row.seq) (\(row.eventId)) does not validate, dead-lettering it: \(failure.reason)")
                records.append(
                    DeadLetter.record(
                        deadLetterTopic: publisher.catalog.deadLetterTopic, originalTopic: row.topic,
                        key: row.key.map { Data($0.utf8) }, value: row.body, headers: [], failure: failure,
                        refusedBy: publisher.name, at: time))
            }
        }
        _ = try await log.append(records)
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
        let outcome = try await store.apply(inputs, core: core, now: now)
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

    /// Retries `operation` with back-off (0.1 s doubling to 30 s, real time) while it fails with a
    /// retriable error; a fatal log error (`LogError.isFatal`), `groupBusy` (only polling again
    /// can pass) or cancellation ends it.
    func persistently<T: Sendable>(_ what: String, _ operation: () async throws -> T) async throws -> T {
        var backoff = Duration.milliseconds(100)
        var paused = false
        while true {
            do {
                let result = try await operation()
                if paused { logger.notice("\(what) works again; resuming") }
                return result
            } catch is CancellationError {
                throw CancellationError()
            } catch let error as LogError where error.isFatal || error.code == .groupBusy {
                // Fatal: the client can never succeed. Group busy: only polling again can pass.
                if error.code == .groupBusy { throw error }
                logger.critical("\(what) failed for good: \(error)")
                throw error
            } catch {
                if !paused { logger.error("\(what) failed, pausing and retrying: \(error)") }
                paused = true
                try await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(30))
            }
        }
    }

    /// Consumes the input topics as group ``group`` until cancelled: each polled batch is applied
    /// in one store transaction, then its offsets are committed. The transaction and the commit
    /// run in a task of their own, so a stop (cancellation) that arrives meanwhile lets them finish.
    public func runConsumer(maxRecords: Int = 500) async throws {
        let assigned = self.assigned
        let consumer = try await persistently("joining group \(Self.group)") {
            try await log.makeConsumer(.group(Self.group, topics: topics))
        }
        logger.notice("consuming \(topics.joined(separator: ", ")) as group \(Self.group)")
        // The consumer is closed, awaited, however the loop ends (it leaves the group at once).
        do {
            while !Task.isCancelled {
                let records: [LogRecord]
                do {
                    records = try await persistently("polling the bus") {
                        try await consumer.poll(maxRecords: maxRecords, timeout: .milliseconds(200))
                    }
                } catch is CancellationError {
                    break
                } catch let error as LogError where error.code == .groupBusy {
                    continue  // the group rebalanced under this member: poll again
                }
                if let partitions = try? await consumer.assignment() {
                    assigned.set(Set(partitions.map(\.partition)))
                }
                if records.isEmpty { continue }
                let engine = self
                try await Task {
                    _ = try await engine.persistently("applying a batch of \(records.count) to \(engine.store.path)") {
                        try await engine.process(records)
                    }
                    do {
                        let committing = ContinuousClock.now
                        try await engine.persistently("committing offsets") { try await consumer.commit(records) }
                        engine.stats.spent(\.commitSeconds, since: committing)
                    } catch let error as LogError where error.code == .groupBusy {
                        // A rebalance took the partitions: retrying the commit cannot pass, polling
                        // again can. Their new owner reads the batch again; the store drops the ids
                        // it has applied.
                        engine.logger.notice("commit refused by a rebalance, polling again: \(error)")
                    }
                }.value
            }
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
    }

    /// Publishes the outbox until cancelled; when it is empty, waits until this engine's consumer or
    /// timer loop writes to it, or 20 ms (real time: rows another process wrote), whichever comes
    /// first. Refreshes the open and overdue gauges about once a second.
    public func runRelay() async throws {
        let realTime = ContinuousClock()
        var gauges = realTime.now.advanced(by: .seconds(-10))
        while !Task.isCancelled {
            let sent: Int
            do {
                sent = try await persistently("publishing the outbox") { try await relayOnce() }
            } catch is CancellationError { break }
            if realTime.now - gauges > .seconds(1) {
                gauges = realTime.now
                try? await refreshGauges()  // for the metrics only: tried again next time
            }
            if sent == 0 { await outboxWritten.wait(upTo: .milliseconds(20)) }
        }
    }

    /// Fires due timers of the assigned partitions until cancelled, waking on the injected clock
    /// at the next due instant or after a minute of its time, whichever comes first, and at most
    /// every 50 ms of real time (an accelerated clock's minute can be a millisecond).
    public func runTimers() async throws {
        let realTime = ContinuousClock()
        while !Task.isCancelled {
            let started = realTime.now
            let partitions = assigned.get()
            if let partitions {
                do {
                    try await persistently("firing due timers") { try await fireDueTimers(partitions: partitions) }
                } catch is CancellationError { break }
            }
            let now = clock.now()
            var wait = 60.0
            if let next = try? await store.nextTimer() { wait = min(wait, max(0.001, next.timeIntervalSince(now))) }
            if partitions == nil { wait = min(wait, 0.2) }
            do {
                try await clock.sleep(for: .milliseconds(Int64(wait * 1000)))
                let spent = realTime.now - started
                if spent < .milliseconds(50) { try await Task.sleep(for: .milliseconds(50) - spent) }
            } catch { break }
        }
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

/// The partition numbers the consumer holds, shared with the timer loop (a partition number is the
/// same on every input topic: they are keyed by application id with one partition count).
final class Assignment: Sendable {
    private let partitions = Mutex<Set<Int>?>(nil)
    func get() -> Set<Int>? { partitions.withLock { $0 } }
    func set(_ new: Set<Int>) { partitions.withLock { $0 = new } }
}
