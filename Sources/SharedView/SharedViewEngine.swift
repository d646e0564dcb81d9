import Bus
import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import Logging
import Metrics
import Retrying
import Synchronization

/// Counts of what the view's consumer did, for logs, metrics and tests.
public final class ViewStats: Sendable {
    public struct Snapshot: Sendable, Hashable {
        /// Facts handed to the store (one record may be a fact of several kinds).
        public var factsIngested = 0
        /// Records of the view's topics that could not be read as a fact (logged with the reason).
        public var skipped = 0
    }

    private let state = Mutex(Snapshot())
    private let ingested = Counter(label: "onewindow_view_facts_ingested_total")
    private let skippedCounter = Counter(label: "onewindow_view_records_skipped_total")

    public init() {}

    public var snapshot: Snapshot { state.withLock { $0 } }

    func count(facts: Int, skipped: Int) {
        state.withLock {
            $0.factsIngested += facts
            $0.skipped += skipped
        }
        ingested.increment(by: facts)
        skippedCounter.increment(by: skipped)
    }
}

/// The shared view's I/O: the consumer that turns the departments' events into facts
/// (``process(_:)``, ``runConsumer(maxRecords:)``), the rebuild from the topics
/// (``rebuild(log:rules:catalog:into:)``), and data comparison with its alerts
/// (``compare(subject:)``, ``compareAll(batchSize:)``, ``publishAlerts(limit:)``).
///
/// A record is a fact of every kind whose `topics` list its topic; one without the kind's subject
/// (or not a CloudEvent) is skipped, counted and logged, not dead-lettered: the department's
/// connector validated it when it was published, and the view is one reader among many.
public struct SharedViewEngine: Sendable {
    /// The consumer group of `onewindow view run`.
    public static let group = "onewindow.shared-view"
    /// The `ce_source` of the alerts comparisons publish.
    public static let source = "onewindow-data-comparison"
    /// The reader name comparisons record in the usage log.
    public static let comparisonReader = "data-comparison"

    public let store: SharedViewStore
    public let rules: ViewRules
    public let comparison: ComparisonRules?
    public let log: any EventLog
    public let publisher: Publisher
    public let clock: any WallClock
    public let logger: Logger
    public let stats: ViewStats

    /// - Parameter comparison: the comparison rules (`nil`: the engine only ingests).
    public init(
        store: SharedViewStore, rules: ViewRules, comparison: ComparisonRules? = nil, log: any EventLog,
        catalog: TopicCatalog, clock: any WallClock = .system, logger: Logger = Logger(label: "onewindow.view"),
        stats: ViewStats = ViewStats()
    ) {
        self.store = store
        self.rules = rules
        self.comparison = comparison
        self.log = log
        self.publisher = Publisher(log: log, catalog: catalog, name: Self.source, clock: clock)
        self.clock = clock
        self.logger = logger
        self.stats = stats
    }

    // MARK: - Ingest

    /// The facts a record is, and the reason when it is none.
    public static func facts(
        of record: LogRecord, rules: ViewRules, catalog: TopicCatalog
    ) -> Result<[IncomingFact], ViewStoreError> {
        let kinds = rules.kinds(onTopic: record.topic)
        guard !kinds.isEmpty else { return .success([]) }
        let event: Event
        let body: JSONValue
        do {
            event = try CloudEventsBinding.event(from: record)
            body = try JSONValue.parse(event.data)
        } catch {
            return .failure(ViewStoreError("\(record.position): not a readable event: \(error)"))
        }
        let department = catalog.topic(named: record.topic)?.owner ?? ""
        var facts: [IncomingFact] = []
        for kind in kinds {
            guard case .string(let subject)? = body[pointer: kind.subject], !subject.isEmpty else {
                return .failure(
                    ViewStoreError("\(record.position) (\(event.id)): no \(kind.subject) for fact kind \(kind.name)"))
            }
            var qualifier = ""
            if let per = kind.per, let value = body[pointer: per] {
                if case .string(let text) = value { qualifier = text } else { qualifier = "\(value)" }
            }
            facts.append(
                IncomingFact(
                    subject: subject, kind: kind.name, qualifier: qualifier, eventId: event.id, topic: record.topic,
                    department: department, timeMilliseconds: Timestamp.milliseconds(event.time), body: event.data))
        }
        return .success(facts)
    }

    /// Applies a polled batch in one store transaction.
    /// - Returns: how many facts it carried.
    @discardableResult
    public func process(_ records: [LogRecord]) async throws -> Int {
        var facts: [IncomingFact] = []
        facts.reserveCapacity(records.count)
        var skipped = 0
        for record in records {
            switch Self.facts(of: record, rules: rules, catalog: publisher.catalog) {
            case .success(let found): facts += found
            case .failure(let problem):
                skipped += 1
                logger.warning("skipping a record the shared view cannot read: \(problem)")
            }
        }
        try await store.upsert(facts)
        stats.count(facts: facts.count, skipped: skipped)
        return facts.count
    }

    /// Consumes the view's topics as group ``group`` until cancelled (`consumeInBatches`): each
    /// batch is upserted in one transaction, then its offsets are committed. A restart resumes from
    /// the committed offsets; a batch applied but not committed is read again, and the upsert makes
    /// that a no-op. What may pass (the bus unreachable, the store busy) is retried with back-off
    /// on the injected clock and counted in `onewindow_view_retries_total{part}`; what cannot ends
    /// the loop with a `FatalFailure`.
    public func runConsumer(maxRecords: Int = 1000) async throws {
        let retrier = Retrier(clock: clock, logger: logger, firstBackoff: .milliseconds(100)) { part in
            Counter(label: "onewindow_view_retries_total", dimensions: [("part", part)]).increment()
        }
        let engine = self
        try await consumeInBatches(
            log: log, group: Self.group, topics: rules.topics, retrier: retrier, logger: logger,
            maxRecords: maxRecords, what: store.path, assigned: Assignment(),
            process: { _ = try await engine.process($0) })
    }

    /// Builds a view afresh from the topics, from their first record to their end when called,
    /// into a new store at `path` (which must not exist). Reads partitions directly, joins no group.
    /// - Returns: the new store and how many facts were read.
    public static func rebuild(
        log: any EventLog, rules: ViewRules, catalog: TopicCatalog, into path: String, batch: Int = 2000
    ) async throws -> (SharedViewStore, Int) {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw ViewStoreError("\(path) exists already; a rebuild writes a new store (remove it or name another)")
        }
        let store = try SharedViewStore(path: path)
        var total = 0
        try await readToEnd(log: log, topics: rules.topics, batch: batch) { records in
            var facts: [IncomingFact] = []
            for record in records {
                if case .success(let found) = Self.facts(of: record, rules: rules, catalog: catalog) { facts += found }
            }
            try await store.upsert(facts)
            total += facts.count
        }
        return (store, total)
    }

    /// Reads every partition of `topics` (those that exist) from its first record up to its end
    /// when called, handing each batch to `body`; joins no group. A read that returns nothing
    /// before the end (Kafka answers an empty fetch while it catches up) is tried again, for up to
    /// 30 s without progress (``EventLog/readToEnd(topics:batch:stall:_:)``).
    public static func readToEnd(
        log: any EventLog, topics: [String], batch: Int = 2000, _ body: ([LogRecord]) async throws -> Void
    ) async throws {
        try await log.readToEnd(topics: topics, batch: batch, body)
    }

    // MARK: - Comparison

    /// What one subject's comparison found: the facts side by side and the rules that fired.
    public struct Comparison: Sendable {
        public var subject: String
        public var facts: [ViewFact]
        public var discrepancies: [Discrepancy]
        /// The alert ids this comparison wrote for the first time (a disagreement found before keeps its alert).
        public var newAlerts: [String]
    }

    /// Compares one subject's facts (a read recorded as reader `data-comparison`), writes an alert
    /// for each new occurrence, and publishes the unsent alerts.
    public func compare(subject: String) async throws -> Comparison {
        guard let comparison else { throw ViewStoreError("the engine has no comparison rules") }
        let now = clock.now()
        let result = try await store.pool.write { db in
            let facts = try Row.fetchAll(db, sql: SharedViewStore.aboutQuery, arguments: [subject]).map(SharedViewStore.fact)
            try SharedViewStore.record(
                db, subject: subject, kind: nil, facts: facts, reader: Self.comparisonReader,
                reason: "comparison rules \(comparison.rules.map(\.id).joined(separator: ", "))", at: now)
            let found = comparison.evaluate(subject: subject, facts: facts)
            let new = try Self.writeAlerts(found, facts: facts, comparison: comparison, now: now, db)
            return Comparison(subject: subject, facts: facts, discrepancies: found, newAlerts: new)
        }
        try await publishAlerts()
        return result
    }

    /// What a comparison of every subject found.
    public struct ComparisonRun: Sendable, Hashable {
        public var subjects = 0
        public var discrepancies = 0
        public var newAlerts = 0
        public var seconds = 0.0
        public var subjectsPerSecond: Double { seconds > 0 ? Double(subjects) / seconds : 0 }
    }

    /// Compares every subject in the view, `batchSize` subjects per transaction (each recorded in the
    /// usage log as a comparison read), then publishes the unsent alerts.
    public func compareAll(batchSize: Int = 2000) async throws -> ComparisonRun {
        guard let comparison else { throw ViewStoreError("the engine has no comparison rules") }
        let started = ContinuousClock.now
        var run = ComparisonRun()
        var after = ""
        let reason = "comparison rules \(comparison.rules.map(\.id).joined(separator: ", ")) (all subjects)"
        while true {
            let now = clock.now()
            let from = after
            let (count, last, discrepancies, new) = try await store.pool.write { db in
                // The next batch of subjects after the last one, through the primary key.
                let subjects = try String.fetchAll(
                    db,
                    sql: "SELECT DISTINCT subject FROM facts WHERE subject > ? ORDER BY subject LIMIT ?",
                    arguments: [from, batchSize])
                guard let last = subjects.last else { return (0, from, 0, 0) }
                let rows = try Row.fetchAll(
                    db,
                    sql: "SELECT \(SharedViewStore.columns) FROM facts WHERE subject > ? AND subject <= ? ORDER BY subject, kind, qualifier",
                    arguments: [from, last])
                var bySubject: [String: [ViewFact]] = [:]
                for row in rows {
                    let fact = try SharedViewStore.fact(row)
                    bySubject[fact.subject, default: []].append(fact)
                }
                var discrepancies = 0
                var new = 0
                for subject in subjects {
                    let facts = bySubject[subject] ?? []
                    try SharedViewStore.record(
                        db, subject: subject, kind: nil, facts: facts, reader: Self.comparisonReader, reason: reason,
                        at: now)
                    let found = comparison.evaluate(subject: subject, facts: facts)
                    discrepancies += found.count
                    new += try Self.writeAlerts(found, facts: facts, comparison: comparison, now: now, db).count
                }
                return (subjects.count, last, discrepancies, new)
            }
            if count == 0 { break }
            after = last
            run.subjects += count
            run.discrepancies += discrepancies
            run.newAlerts += new
        }
        try await publishAlerts()
        run.seconds = (ContinuousClock.now - started).seconds
        return run
    }

    /// Writes an alert row for each discrepancy not alerted before; returns the new alert ids.
    static func writeAlerts(
        _ found: [Discrepancy], facts: [ViewFact], comparison: ComparisonRules, now: Date, _ db: Database
    ) throws -> [String] {
        var new: [String] = []
        for discrepancy in found {
            let id = discrepancy.alertId
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM alerts WHERE alert_id = ?", arguments: [id]) == true {
                continue
            }
            var body: JSONObject = [
                "alertId": .string(id), "rule": .string("data-comparison"), "item": .string(discrepancy.rule),
                "occurrences": .array(discrepancy.times.map { .string(ChinaTime.rfc3339($0)) }),
                "raisedAt": .string(ChinaTime.rfc3339(now)), "facts": .array(discrepancy.facts.map { .string($0) }),
                "details": .string(discrepancy.details),
            ]
            if ResidentIDNumber.problem(in: discrepancy.subject) == nil {
                body["residentId"] = .string(discrepancy.subject)
            } else {
                // A company: the alert is keyed by its legal representative, when a fact names one.
                body["creditCode"] = .string(discrepancy.subject)
                guard let representative = facts.lazy.compactMap({ comparison.value("representative", of: $0) }).first
                else { continue }
                body["residentId"] = .string(representative)
            }
            try db.execute(
                sql: "INSERT INTO alerts (alert_id, subject, rule, body, raised_ms, sent) VALUES (?, ?, ?, ?, ?, 0)",
                arguments: [
                    id, discrepancy.subject, discrepancy.rule, JSONValue.object(body).serialized(),
                    Timestamp.milliseconds(now),
                ])
            new.append(id)
        }
        return new
    }

    /// Publishes unsent alerts through the validating publisher (an invalid one goes to the
    /// dead-letter topic with the reason), then marks them sent. A crash in between publishes the
    /// same event ids again, which readers drop.
    /// - Returns: how many were published.
    @discardableResult
    public func publishAlerts(limit: Int = 500) async throws -> Int {
        var total = 0
        while true {
            let rows = try await store.unsentAlerts(limit: limit)
            if rows.isEmpty { return total }
            let publications = rows.map { row in
                Publication(
                    event: Event(
                        id: row.alertId, type: "supervision.alert.raised", source: Self.source, subject: nil,
                        time: clock.now(), data: row.body))
            }
            _ = try await publisher.publish(publications, deadLetter: true)
            try await store.markSent(rows.map(\.alertId))
            total += rows.count
        }
    }
}
