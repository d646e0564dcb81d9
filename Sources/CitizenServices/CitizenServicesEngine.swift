import Bus
import CivilTime
import Connectors
import EventLog
import EventModel
import EventSchemas
import Foundation
import Logging
import Metrics
import OrchestratorService
import Retrying
import ServiceLifecycle
import Synchronization

/// Counts of what the citizen services did, for logs, metrics and tests.
public final class CitizenServicesStats: Sendable {
    public struct Snapshot: Sendable, Hashable {
        public var handled = 0
        public var duplicates = 0
        /// Records that were not valid events of their topic (logged and skipped: their producer's
        /// publisher validated them, and the orchestrator dead-letters what it reads).
        public var refused = 0
        public var messages = 0
        public var applicationsStarted = 0
        public var alerts = 0
        public var unreachable = 0
        public var relayed = 0
    }

    private let state = Mutex(Snapshot())
    private let handled = Counter(label: "onewindow_citizen_services_events_handled_total")
    private let duplicates = Counter(label: "onewindow_citizen_services_duplicate_events_total")
    private let refused = Counter(label: "onewindow_citizen_services_refused_total")
    private let messages = Counter(label: "onewindow_citizen_services_messages_total")
    private let started = Counter(label: "onewindow_citizen_services_applications_started_total")
    private let alerts = Counter(label: "onewindow_citizen_services_alerts_total")
    private let unreachable = Counter(label: "onewindow_citizen_services_unreachable_total")
    private let relayed = Counter(label: "onewindow_citizen_services_relayed_total")

    public init() {}

    public var snapshot: Snapshot { state.withLock { $0 } }

    func count(_ outcome: CitizenBatchOutcome, refused refusedCount: Int = 0) {
        state.withLock {
            $0.handled += outcome.handled
            $0.duplicates += outcome.duplicates
            $0.refused += refusedCount
            $0.messages += outcome.messages
            $0.applicationsStarted += outcome.applicationsStarted
            $0.alerts += outcome.alerts
            $0.unreachable += outcome.unreachable
        }
        handled.increment(by: outcome.handled)
        duplicates.increment(by: outcome.duplicates)
        refused.increment(by: refusedCount)
        messages.increment(by: outcome.messages)
        started.increment(by: outcome.applicationsStarted)
        alerts.increment(by: outcome.alerts)
        unreachable.increment(by: outcome.unreachable)
    }

    func relayed(_ count: Int) {
        state.withLock { $0.relayed += count }
        relayed.increment(by: count)
    }
}

/// The citizen services' I/O shell: the consumer of births, deaths, pension enrolments,
/// applications and decisions, the outbox relay and the retirement timer loop, each a `run…`
/// method looping until cancelled, and the one-step methods tests call (``process(_:)``,
/// ``relayOnce(limit:)``, ``fireDueRetirements(partitions:)``).
///
/// ```swift
/// let engine = CitizenServicesEngine(store: store, rules: rules, log: log, clock: clock)
/// try await engine.process(records)   // one store transaction
/// try await engine.relayOnce()        // publish the pushes and alerts it wrote
/// ```
public struct CitizenServicesEngine: Sendable {
    /// The consumer group every instance joins.
    public static let group = "onewindow.citizen-services"
    /// The `ce_source` of everything it publishes.
    public static let source = "onewindow-citizen-services"

    public let store: CitizenStore
    public let rules: CitizenServicesRules
    public let log: any EventLog
    public let publisher: Publisher
    public let clock: any WallClock
    public let logger: Logger
    public let stats: CitizenServicesStats
    /// The topics consumed (``CitizenServicesRules/inputTopics``).
    public let topics: [String]
    let assigned = Assignment()

    public init(
        store: CitizenStore, rules: CitizenServicesRules, log: any EventLog, clock: any WallClock = .system,
        logger: Logger = Logger(label: "onewindow.citizen-services"), stats: CitizenServicesStats = CitizenServicesStats()
    ) {
        self.store = store
        self.rules = rules
        self.log = log
        self.publisher = Publisher(log: log, catalog: rules.catalog, name: Self.source, clock: clock)
        self.clock = clock
        self.logger = logger
        self.stats = stats
        self.topics = rules.inputTopics
    }

    /// The partition numbers the consumer holds now; `nil` before its first poll.
    public var assignedPartitions: Set<Int>? { assigned.get() }

    /// A consumed record as an input, or why it is skipped.
    public func decode(_ record: LogRecord) -> Result<PendingCitizenInput, Refusal> {
        let event: Event
        do {
            event = try CloudEventsBinding.event(from: record)
        } catch {
            return .failure(Refusal(code: "invalid-envelope", reason: "\(record.position): \(error)"))
        }
        let body: JSONValue
        do {
            body = try publisher.validator.validate(event, topic: record.topic).body
        } catch {
            return .failure(Refusal(code: "invalid-input", reason: "\(event.id) on \(record.topic): \(error)"))
        }
        let input: CitizenInput
        switch event.type {
        case "household.birth.registered": input = .birth(body)
        case "household.death.registered": input = .death(body)
        case "socialsecurity.enrolment.registered": input = .enrolment(body)
        case "approval.decided": input = .decision(body)
        default:
            guard let workflow = rules.workflows.workflow(applicationType: event.type) else {
                return .failure(Refusal(code: "unknown-type", reason: "\(event.type) on \(record.topic)"))
            }
            input = .submission(workflow, body)
        }
        return .success(PendingCitizenInput(eventId: event.id, partition: record.partition, input: input))
    }

    // MARK: - One step each

    /// Handles a polled batch in one store transaction (ids handled before are skipped; records
    /// that are not valid events are logged and skipped).
    @discardableResult
    public func process(_ records: [LogRecord]) async throws -> CitizenBatchOutcome {
        var batch: [PendingCitizenInput] = []
        var refused = 0
        for record in records {
            switch decode(record) {
            case .success(let pending): batch.append(pending)
            case .failure(let refusal):
                refused += 1
                logger.warning("skipping a record of \(record.topic) that is not a valid event: \(refusal)")
            }
        }
        let outcome = try await store.apply(batch, services: rules, now: clock.now())
        stats.count(outcome, refused: refused)
        return outcome
    }

    /// Publishes the first unsent outbox rows with their ids, then marks them sent.
    @discardableResult
    public func relayOnce(limit: Int = 500) async throws -> Int {
        let rows = try await store.unsent(limit: limit)
        guard !rows.isEmpty else { return 0 }
        try await OutboxRelay(publisher: publisher, source: Self.source, logger: logger).publish(rows)
        try await store.markSent(through: rows.map(\.seq))
        stats.relayed(rows.count)
        return rows.count
    }

    /// Fires the retirement timers due on the injected clock, in one store transaction.
    /// - Parameter partitions: only timers of these partition numbers (`nil`: all).
    @discardableResult
    public func fireDueRetirements(partitions: Set<Int>?) async throws -> CitizenBatchOutcome {
        let now = clock.now()
        let due = try await store.dueRetirements(at: now, partitions: partitions)
        guard !due.isEmpty else { return CitizenBatchOutcome() }
        let inputs = due.map { residentId, partition in
            PendingCitizenInput(
                eventId: "retirement/\(residentId)", partition: partition, input: .retirementDue(residentId: residentId))
        }
        let outcome = try await store.apply(inputs, services: rules, now: now)
        stats.count(outcome)
        return outcome
    }

    // MARK: - Loops

    /// The retry loop of this engine's parts: back-off on the injected clock, each retry counted in
    /// `onewindow_citizen_services_retries_total{part}` (see `Retrier.inLoop`).
    var retrier: Retrier {
        Retrier(clock: clock, logger: logger, firstBackoff: .milliseconds(100)) { part in
            Counter(label: "onewindow_citizen_services_retries_total", dimensions: [("part", part)]).increment()
        }
    }

    /// Consumes ``topics`` as group ``group`` until cancelled (``consumeInBatches``).
    public func runConsumer(maxRecords: Int = 500) async throws {
        let assigned = self.assigned
        let engine = self
        try await consumeInBatches(
            log: log, group: Self.group, topics: topics, retrier: retrier, logger: logger, maxRecords: maxRecords,
            what: store.path, assigned: assigned, process: { _ = try await engine.process($0) })
    }

    /// Publishes the outbox until cancelled, polling it every 20 ms (real time) when it is empty.
    public func runRelay() async throws {
        try await relayUntilCancelled(retrier: retrier, relayOnce: { try await relayOnce() })
    }

    /// Fires due retirement timers of the assigned partitions until cancelled, waking on the
    /// injected clock at the next due instant or after an hour of its time, and at most every
    /// 50 ms of real time.
    public func runTimers() async throws {
        try await fireTimersUntilCancelled(
            clock: clock, assigned: assigned, retrier: retrier, idle: .seconds(3600),
            fire: { _ = try await fireDueRetirements(partitions: $0) }, next: { try? await store.nextRetirement() })
    }
}

/// The citizen services' services for one `ServiceGroup`: the consumer, the outbox relay, the
/// retirement timer loop, the pass that deletes outbox rows published long ago, and (with a port)
/// the Prometheus endpoint. A graceful shutdown cancels each loop; the batch in flight finishes
/// its transaction and offset commit first.
public enum CitizenServicesGroup {
    /// - Parameters:
    ///   - metricsPort: serve `GET /metrics` on `127.0.0.1:PORT`; `nil`: no endpoint.
    ///   - keepPublished: how long published outbox rows stay in the store before a pass deletes
    ///     them (``OutboxStore/prunePublished(keeping:now:chunk:)``); `nil`: for ever.
    public static func make(
        _ engine: CitizenServicesEngine, metricsPort: Int?,
        keepPublished: Duration? = OutboxRetention.defaultKeep
    ) throws -> [any Service] {
        var services: [any Service] = [
            OrchestratorServices.Loop(name: "citizen services consumer") { try await engine.runConsumer() },
            OrchestratorServices.Loop(name: "citizen services relay") { try await engine.runRelay() },
            OrchestratorServices.Loop(name: "citizen services timers") { try await engine.runTimers() },
        ]
        if let keepPublished {
            services.append(
                OrchestratorServices.Loop(name: "citizen services outbox pruning") {
                    try await pruneOutboxUntilCancelled(
                        engine.store, keeping: keepPublished, service: "citizen-services", logger: engine.logger)
                })
        }
        if let metricsPort {
            services.append(try ConnectorMetrics.service(on: "127.0.0.1:\(metricsPort)", logger: engine.logger))
        }
        return services
    }
}
