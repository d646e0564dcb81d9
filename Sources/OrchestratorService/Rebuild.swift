import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import Logging
import Orchestrator

/// One way the live store and the rebuilt one disagree.
public struct StoreDifference: Sendable, Hashable, CustomStringConvertible {
    /// The application it concerns (empty for a row that names none).
    public var applicationId: String
    /// What differs: `status`, `step fire-safety-inspection state`, `timer …`, `processed event …`.
    public var what: String
    /// The value in the live store (`-` when it has none).
    public var live: String
    /// The value in the rebuilt store (`-` when it has none).
    public var rebuilt: String

    public var description: String {
        "\(applicationId.isEmpty ? "(no application)" : applicationId): \(what): live \(live), rebuilt \(rebuilt)"
    }
}

/// What ``StoreRebuild/rebuild(live:into:…)`` did and found.
public struct RebuildReport: Sendable {
    /// Input records read from the bus (up to the orchestrator group's committed offsets).
    public var inputsRead = 0
    /// Timer firings the rebuild applied between them.
    public var timersFired = 0
    /// Applications in the rebuilt store.
    public var applications = 0
    /// Every difference, by application, then by what.
    public var differences: [StoreDifference] = []
    /// Rebuilt emissions not looked for in the live store because its retention may have deleted
    /// them once published (at or before ``prunedHorizon``).
    public var emissionsLeftOut = 0
    /// The latest event time among the outbox rows the live store deleted; `nil`: it deleted none.
    public var prunedHorizon: Date?
}

/// `onewindow orchestrator rebuild`: the orchestrator's state built afresh from the topics and
/// compared with the live store, a consistency check an operator can run at any time.
///
/// How the state is rebuilt, and why so:
/// - The input topics (the rule book's, as the engine consumes them) are read from their first
///   record up to the orchestrator group's *committed* offsets: what the live store has applied for
///   certain. A batch the live orchestrator applied but has not committed yet shows as a
///   difference; run the check again (or with the orchestrator stopped) and it goes.
/// - Each record is applied at the instant the live store applied it (its `applied_inputs` row's
///   `applied_at`, on the live orchestrator's own clock), so due dates and timers come out as the
///   live store's did even when the orchestrator applied its inputs long after they were appended:
///   after it was stopped or behind, or on a simulated clock (`--clock-speed`, the demo). A record
///   the live store has no row for (a store rebuilt from scratch, or one that lost it) is applied at
///   its timestamp. Records go in the order of those instants (then timestamp, topic, partition,
///   offset), those with the same instant in one transaction (the live orchestrator's batch).
/// - Timers fire between the records at the instant the live store fired them; one it has not
///   fired, at its due instant but only after the live store's last instant (it was cancelled in
///   the live store, or is due since); the rebuild ends there, a millisecond after the live
///   store's last instant (a timer due later the live store has not fired either), or at the
///   clock's now when the live store has applied nothing.
/// - The same core, rules (with the live store's pinned versions copied over) and calendar; the
///   rebuilt outbox is compared (which event ids were emitted), never relayed.
/// - Compared, per application: status, rule version, each step's state, attempt, due date and
///   decisions; the timers (due instant, fired); the processed event ids; the outbox's event ids.
///   Not compared: request and update times (the processing instants, which the topics do not
///   carry: the rebuild takes them from the live store it checks), and the `overdue` column
///   (refreshed by the timer loop's clock); nor the emissions the live store's retention deleted
///   (`orchestrator run --keep-published-days`): a rebuilt row at or before the latest event time
///   of a deleted row counts as present.
///   The rebuilt store is never pruned, and a live row the rebuild did not make is always a
///   difference.
public enum StoreRebuild {
    /// Builds a new store at `path` from the bus and compares it with `live`.
    /// - Throws: ``StoreError`` when `path` exists already or a partition cannot be read to its
    ///   committed offset; errors of the bus and of SQLite.
    public static func rebuild(
        live: OrchestratorStore, into path: String, rules: RuleBook, calendar: WorkingDayCalendar, log: any EventLog,
        catalog: TopicCatalog, clock: any WallClock = .system, sharedFacts: (any SharedFactLookup)? = nil,
        logger: Logger = Logger(label: "onewindow.orchestrator.rebuild")
    ) async throws -> RebuildReport {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw StoreError("\(path) exists already: the rebuild writes a new store; remove it or name another with --into")
        }
        let rebuilt = try OrchestratorStore(path: path)
        // The rule versions live cases are pinned to, so the rebuilt cases keep theirs.
        let versions = try await live.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT version, workflow, sources, stored_at FROM rule_versions").map {
                ($0["version"] as String, $0["workflow"] as String, $0["sources"] as String, $0["stored_at"] as Double)
            }
        }
        try await rebuilt.pool.write { db in
            for (version, workflow, sources, storedAt) in versions {
                try db.execute(
                    sql: "INSERT INTO rule_versions (version, workflow, sources, stored_at) VALUES (?, ?, ?, ?)",
                    arguments: [version, workflow, sources, storedAt])
            }
        }
        let engine = try OrchestratorEngine(
            store: rebuilt, rules: rules, calendar: calendar, log: log, catalog: catalog, clock: clock, logger: logger,
            sharedFacts: sharedFacts)
        var report = RebuildReport()
        let liveInstants = try await LiveInstants.read(live)
        let inputs = timeline(try await inputs(of: engine, log: log), appliedAt: liveInstants.instants)
        report.inputsRead = inputs.count
        var index = 0
        while index < inputs.count {
            let time = inputs[index].instant
            var end = index + 1
            while end < inputs.count, end - index < 500, inputs[end].instant == time { end += 1 }
            report.timersFired += try await fireTimers(by: time, engine, live: liveInstants)
            // Decoded a batch at a time: decoded bodies take several times the records' bytes.
            let decoded = try await engine.withSharedFacts(inputs[index..<end].map { engine.decode($0.record) })
            _ = try await rebuilt.apply(decoded, core: engine.core, now: time)
            index = end
        }
        // The end: where the live store is, as the records end at what it committed. A timer due
        // later the live store has not fired yet either (it is stopped, or its timer loop comes to
        // it in a moment); with no live instant at all, now.
        let end = liveInstants.after ?? clock.now()
        report.timersFired += try await fireTimers(by: end, engine, live: liveInstants)
        report.applications = try await rebuilt.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM cases") ?? 0 }
        let comparison = try await compare(live: live, rebuilt: rebuilt)
        report.differences = comparison.differences
        report.emissionsLeftOut = comparison.leftOut
        report.prunedHorizon = comparison.horizon
        return report
    }

    /// When the live store applied each input and fired each timer (its `applied_inputs`, on its
    /// own clock), by event id or timer key, and the last of those instants.
    struct LiveInstants {
        var instants: [String: Date] = [:]
        var last: Date?
        /// A millisecond after ``last``.
        var after: Date? { last?.addingTimeInterval(0.001) }

        static func read(_ live: OrchestratorStore) async throws -> LiveInstants {
            try await live.pool.read { db in
                var read = LiveInstants()
                let rows = try Row.fetchCursor(db, sql: "SELECT event_id, applied_at FROM applied_inputs")
                while let row = try rows.next() {
                    let instant = Date(timeIntervalSince1970: row[1])
                    read.instants[row[0]] = instant
                    read.last = max(read.last ?? instant, instant)
                }
                return read
            }
        }
    }

    /// An input record and the instant the rebuild applies it at.
    struct TimedInput {
        let record: LogRecord
        let instant: Date
    }

    /// `records` at the instants the live store applied them (`appliedAt`, by the event id
    /// ``OrchestratorEngine/decode(_:)`` gives: the `ce_id` header, or the record's position when
    /// its envelope is broken; a record it has none for, at its timestamp), in the order of those
    /// instants, then of their timestamps, topics, partitions and offsets.
    static func timeline(_ records: [LogRecord], appliedAt: [String: Date]) -> [TimedInput] {
        records.map { record in
            let instant = record.header(CloudEventsBinding.id).flatMap { appliedAt[$0] }
                ?? appliedAt["\(record.position)"] ?? record.timestamp
            return TimedInput(record: record, instant: instant)
        }.sorted {
            ($0.instant, $0.record.timestamp, $0.record.topic, $0.record.partition, $0.record.offset)
                < ($1.instant, $1.record.timestamp, $1.record.topic, $1.record.partition, $1.record.offset)
        }
    }

    /// The input records up to the group's committed offsets, partition by partition.
    static func inputs(of engine: OrchestratorEngine, log: any EventLog) async throws -> [LogRecord] {
        let committed = try await log.committedOffsets(group: OrchestratorEngine.group, topics: engine.topics)
        var all: [LogRecord] = []
        for (partition, end) in committed.sorted(by: { $0.key < $1.key }) {
            var offset = try await log.watermarks(partition).low
            let deadline = ContinuousClock.now + .seconds(30)
            while offset < end {
                let records = try await log.read(partition, from: offset, maxRecords: min(2000, Int(end - offset)))
                guard let last = records.last else {
                    // Kafka may answer an empty fetch while it catches up: try again, for a while.
                    if ContinuousClock.now > deadline {
                        throw StoreError(
                            "\(partition): nothing could be read from offset \(offset) although the orchestrator committed \(end); check the bus and run again")
                    }
                    try await Task.sleep(for: .milliseconds(50))
                    continue
                }
                all += records.filter { $0.offset < end }
                offset = last.offset + 1
            }
        }
        return all
    }

    /// Fires the rebuilt store's timers that fire by `time`, earliest first, each group at its
    /// instant: when the live store fired it (`live.instants`, by timer key; its timer loop fires a
    /// timer a moment after it is due, or much later when it was stopped). A timer the live store
    /// did not fire fires at its due instant, but not before a millisecond after the last instant
    /// the live store applied anything (`live.after`): until then the live timer loop fired every
    /// timer still set, so one it did not fire was cancelled first, by an input the rebuild applies
    /// by then (or the live loop was about to fire it, which shows as a difference).
    static func fireTimers(by time: Date, _ engine: OrchestratorEngine, live: LiveInstants) async throws -> Int {
        var fired = 0
        // Each timer is fired once here: one the store keeps unfired after its firing (its key was
        // applied before, so the firing was skipped as a repeat) is not tried again for ever.
        var tried = Set<String>()
        while true {
            let due = try await engine.store.dueTimersWithInstants(at: time, partitions: nil, limit: .max).compactMap {
                key, partition, due -> (key: TimerKey, partition: Int, instant: Date)? in
                if tried.contains(key.description) { return nil }
                let instant = live.instants[key.description] ?? max(due, live.after ?? due)
                return (key: key, partition: partition, instant: instant)
            }
            guard let instant = due.map(\.instant).filter({ $0 <= time }).min() else { break }
            let inputs = due.filter { $0.instant == instant }.map { timer in
                PendingInput(
                    eventId: timer.key.description, partition: timer.partition,
                    input: .success(.timerFired(timer.key)), original: nil)
            }
            tried.formUnion(inputs.map(\.eventId))
            _ = try await engine.store.apply(inputs, core: engine.core, now: instant)
            fired += inputs.count
        }
        return fired
    }

    // MARK: - Comparing

    /// What one store holds that the comparison looks at.
    struct Snapshot {
        var cases: [String: Case] = [:]
        /// Timer id → (application, due instant, fired).
        var timers: [String: (application: String, due: Double, fired: Bool)] = [:]
        /// Application → processed event ids.
        var processed: [String: Set<String>] = [:]
        /// Application (the row's key) → outbox event ids (`topic event-id`).
        var emitted: [String: Set<String>] = [:]
        /// Outbox event id (`topic event-id`) → its event time in milliseconds.
        var emittedAt: [String: Int64] = [:]
        /// The latest event time of a row the store's pruning deleted (0: none).
        var prunedHorizon: Int64 = 0

        static func read(_ store: OrchestratorStore) async throws -> Snapshot {
            try await store.pool.read { db in
                var snapshot = Snapshot()
                for row in try Row.fetchAll(db, sql: "SELECT application_id, body FROM cases") {
                    let body: String = row["body"]
                    snapshot.cases[row["application_id"]] = try JSONDecoder().decode(Case.self, from: Data(body.utf8))
                }
                for row in try Row.fetchAll(db, sql: "SELECT application_id, timers FROM cases WHERE timers IS NOT NULL") {
                    let applicationId: String = row["application_id"]
                    for timer in try CaseTimers(stored: row["timers"], applicationId: applicationId).timers {
                        snapshot.timers[timer.key(applicationId).description] = (
                            applicationId, timer.due.timeIntervalSince1970, timer.fired
                        )
                    }
                }
                for row in try Row.fetchAll(db, sql: "SELECT event_id, application_id FROM applied_inputs") {
                    snapshot.processed[row["application_id"], default: []].insert(row["event_id"])
                }
                for row in try Row.fetchAll(db, sql: "SELECT key, topic, type, event_id, time_ms FROM outbox") {
                    let topic: String = row["topic"]
                    let type: String = row["type"]
                    let label = "\(topic.isEmpty ? type : topic) \(row["event_id"] as String)"
                    snapshot.emitted[(row["key"] as String?) ?? "", default: []].insert(label)
                    snapshot.emittedAt[label] = row["time_ms"]
                }
                snapshot.prunedHorizon = try OutboxTable.pruned(db).horizonMilliseconds
                return snapshot
            }
        }
    }

    /// Every difference between the two stores, by application, then by what.
    public static func differences(live: OrchestratorStore, rebuilt: OrchestratorStore) async throws
        -> [StoreDifference]
    {
        try await compare(live: live, rebuilt: rebuilt).differences
    }

    /// The differences, how many rebuilt emissions the live store's retention left out of the
    /// comparison, and the horizon of that retention (`nil`: the live store deleted nothing).
    static func compare(live: OrchestratorStore, rebuilt: OrchestratorStore) async throws
        -> (differences: [StoreDifference], leftOut: Int, horizon: Date?)
    {
        let left = try await Snapshot.read(live)
        let right = try await Snapshot.read(rebuilt)
        var found: [StoreDifference] = []
        var leftOut = 0
        func differ(_ application: String, _ what: String, _ live: String?, _ rebuilt: String?) {
            if live != rebuilt { found.append(StoreDifference(applicationId: application, what: what, live: live ?? "-", rebuilt: rebuilt ?? "-")) }
        }
        for id in Set(left.cases.keys).union(right.cases.keys).sorted() {
            let a = left.cases[id]
            let b = right.cases[id]
            guard let a, let b else {
                differ(id, "application", a.map { "present (\($0.status.rawValue))" }, b.map { "present (\($0.status.rawValue))" })
                continue
            }
            differ(id, "status", a.status.rawValue, b.status.rawValue)
            differ(id, "rule version", a.ruleVersion.description, b.ruleVersion.description)
            for step in Set(a.steps.map(\.id)).union(b.steps.map(\.id)).sorted() {
                let x = a.step(step)
                let y = b.step(step)
                differ(id, "step \(step) state", x?.status.rawValue, y?.status.rawValue)
                differ(id, "step \(step) attempt", x.map { "\($0.attempt)" }, y.map { "\($0.attempt)" })
                differ(id, "step \(step) due date", x?.dueDate?.description, y?.dueDate?.description)
                if x?.decisions != y?.decisions {
                    differ(id, "step \(step) decisions", describe(x?.decisions), describe(y?.decisions))
                }
            }
        }
        for timer in Set(left.timers.keys).union(right.timers.keys).sorted() {
            let a = left.timers[timer]
            let b = right.timers[timer]
            let application = a?.application ?? b?.application ?? ""
            func text(_ entry: (application: String, due: Double, fired: Bool)?) -> String? {
                entry.map {
                    Timestamp.format(Date(timeIntervalSince1970: $0.due)) + ($0.fired ? ", fired" : ", not fired")
                }
            }
            differ(application, "timer \(timer)", text(a), text(b))
        }
        for application in Set(left.processed.keys).union(right.processed.keys).sorted() {
            let a = left.processed[application] ?? []
            let b = right.processed[application] ?? []
            for id in a.subtracting(b).sorted() { differ(application, "processed event \(id)", "processed", nil) }
            for id in b.subtracting(a).sorted() { differ(application, "processed event \(id)", nil, "processed") }
        }
        for application in Set(left.emitted.keys).union(right.emitted.keys).sorted() {
            let a = left.emitted[application] ?? []
            let b = right.emitted[application] ?? []
            for id in a.subtracting(b).sorted() { differ(application, "emitted \(id)", "in the outbox", nil) }
            // A row the live store's pruning may have deleted is not missing: the rebuilt row's
            // time is its input's, at or before the live row's (written when it was applied), so
            // a rebuilt row after the horizon had a live row after it, which pruning kept.
            for id in b.subtracting(a).sorted() {
                if (right.emittedAt[id] ?? 0) > left.prunedHorizon {
                    differ(application, "emitted \(id)", nil, "in the outbox")
                } else {
                    leftOut += 1
                }
            }
        }
        return (
            found.sorted { ($0.applicationId, $0.what) < ($1.applicationId, $1.what) }, leftOut,
            left.prunedHorizon > 0 ? Date(millisecondsSince1970: left.prunedHorizon) : nil
        )
    }

    /// `attempt 1 approved by 张三` for each decision, or `-`.
    static func describe(_ decisions: [DecisionRecord]?) -> String? {
        guard let decisions else { return nil }
        if decisions.isEmpty { return "none" }
        return decisions.map { record in
            "attempt \(record.attempt) \(record.decision.outcome.rawValue) by \(record.decision.decidedBy) at \(Timestamp.format(record.decision.decidedAt))"
        }.joined(separator: "; ")
    }
}
