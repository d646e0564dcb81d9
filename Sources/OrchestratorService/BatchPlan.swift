import CivilTime
import EventLog
import EventSchemas
import Foundation
import GRDB
import Orchestrator
import SQLiteSupport

/// What applying a batch writes, worked out before it is written: the applied ids, the outbox
/// rows (emissions serialised and validated, dead letters), and each changed case with its stored
/// JSON and its timers (``CaseTimers``), against the write stamp of the row it was planned on.
///
/// The consumer plans a batch outside the store's one write transaction
/// (``OrchestratorStore/prepare(_:core:now:checker:after:)``), while the previous batch is being
/// written, and then writes it (``OrchestratorStore/commit(_:core:checker:)``), which checks in the
/// transaction that nothing it was planned on changed: every id is still unapplied and every case
/// row still holds the stamp it was read with. Anything else (a redelivered input, a timer that
/// fired on one of the cases meanwhile, a previous batch that was written differently from its
/// plan) writes nothing of the plan and plans the batch again inside the transaction, against
/// the store as it is — so the outcome is always the one a plan inside the transaction gives.
/// What the transaction holds the writer for is then the SQL alone: the core, serialising,
/// validating and the cases' JSON, about three quarters of it before, run beside it.
public struct BatchPlan: Sendable {
    /// An `applied_inputs` row.
    struct Applied: Sendable {
        let eventId: String
        let partition: Int
        let applicationId: String
    }

    /// An outbox row, in the order written.
    enum OutboxWrite: Sendable {
        /// An emission: its body serialised, and the subject validation gave it (`nil`: did not
        /// validate; the relay validates it again and dead-letters it).
        case emission(Emission, partition: Int, body: Data, subject: String??)
        case deadLetter(PendingInput, Refusal)
    }

    /// A changed case, after the batch's last input for it.
    struct CaseWrite: Sendable {
        let state: Case
        let partition: Int
        /// The stamp of the row it was planned on: `nil` when there was no row, `.some(nil)` for a
        /// row written before stamps.
        let base: Int64??
        /// The row's new stamp.
        let stamp: Int64
        /// The case's stored JSON (``Case/storedJSON()``), UTF-8, bound as the row's text as it is.
        let body: [UInt8]
        let nextDue: Date?
        let overdue: Bool
        /// Its timers, in its row (``CaseTimers``).
        let timers: CaseTimers
        /// The timers' columns (`timers`, `next_timer`, `fired_overdue`), worked out with the plan
        /// rather than in the write transaction.
        let storedTimers: String?
        let nextTimer: Double?
        let firedOverdue: Int

        init(
            state: Case, partition: Int, base: Int64??, stamp: Int64, body: [UInt8], nextDue: Date?, overdue: Bool,
            timers: CaseTimers
        ) {
            self.state = state
            self.partition = partition
            self.base = base
            self.stamp = stamp
            self.body = body
            self.nextDue = nextDue
            self.overdue = overdue
            self.timers = timers
            storedTimers = timers.stored
            nextTimer = timers.next
            firedOverdue = timers.firedOverdue
        }
    }

    /// Tells plans apart.
    let token = UInt64.random(in: .min ... .max)
    /// The inputs, for planning again inside the transaction.
    let batch: [PendingInput]
    /// The time of processing.
    let now: Date
    var applied: [Applied] = []
    var outbox: [OutboxWrite] = []
    var cases: [CaseWrite] = []
    /// The rule versions of new cases, to keep their sources.
    var workflows: [Workflow] = []
    public internal(set) var outcome = BatchOutcome()

    /// Keeps the written cases in the decoded-case cache under their new stamps.
    func remember(in decoded: DecodedCases?) {
        guard let decoded else { return }
        for write in cases {
            decoded.remember(write.state.applicationId, stamp: write.stamp, state: write.state, timers: write.timers)
        }
    }
}

extension OrchestratorStore {
    /// Plans a batch: skips ids applied before (`isApplied`, and repeats within the batch), applies
    /// the core to each new input in order on the case `cases` gives (read once per batch and
    /// application), and gathers what to write. Pure but for what the two closures read.
    static func plan(
        _ batch: [PendingInput], core: Orchestrator, now: Date, checker: EmissionChecker?,
        cases load: (String) throws -> StoredCase?, isApplied: (String) throws -> Bool
    ) throws -> BatchPlan {
        var plan = BatchPlan(batch: batch, now: now)
        // The time the relay stamps on the emissions, to the millisecond (the outbox rows carry it).
        let eventTime = Date(millisecondsSince1970: now.millisecondsSince1970)
        // The cases this batch touched, loaded once and written once at the end (an application's
        // inputs often arrive together: its five decisions after the fan-out), in first-touch order.
        var cases: [String: StoredCase?] = [:]
        // The stamp of each case row read (`nil` inside: a row written before stamps); no entry:
        // no row.
        var bases: [String: Int64?] = [:]
        var changed: [String] = []
        var changedSet = Set<String>()
        func noteChanged(_ applicationId: String) {
            if changedSet.insert(applicationId).inserted { changed.append(applicationId) }
        }
        var seen = Set<String>()
        for pending in batch {
            guard seen.insert(pending.eventId).inserted, try !isApplied(pending.eventId) else {
                plan.outcome.duplicates += 1
                continue
            }
            let applicationId = (try? pending.input.get().applicationId) ?? ""
            plan.applied.append(.init(eventId: pending.eventId, partition: pending.partition, applicationId: applicationId))
            let input: Input
            switch pending.input {
            case .failure(let refusal):
                plan.outbox.append(.deadLetter(pending, refusal))
                plan.outcome.deadLettered += 1
                continue
            case .success(let value): input = value
            }
            let current: StoredCase?
            if let cached = cases[input.applicationId] {
                current = cached
            } else {
                current = try load(input.applicationId)
                cases[input.applicationId] = .some(current)
                if let current { bases[input.applicationId] = .some(current.stamp) }
            }
            // The case's timers: a firing marks its own fired (a firing changes its case's row even
            // when the core changes nothing, so a plan made before it fails its stamp check), and
            // the core's effects set and cancel them.
            var timers = current?.timers ?? CaseTimers()
            var timersChanged = false
            if case .timerFired(let key) = input { timersChanged = timers.markFired(key) }
            let transition: Transition
            do {
                transition = try core.apply(current?.state, input, now: now)
            } catch {
                if case .timerFired = input {
                    // A timer the core cannot fire (no such case, step or rules): nothing to tell
                    // anyone; it is marked fired, and so not fired again.
                    if timersChanged, let current {
                        noteChanged(input.applicationId)
                        cases[input.applicationId] = .some(
                            StoredCase(state: current.state, partition: current.partition, timers: timers))
                    }
                    continue
                }
                plan.outbox.append(.deadLetter(pending, Refusal(error)))
                plan.outcome.deadLettered += 1
                continue
            }
            plan.outcome.applied += 1
            if transition.effects.isEmpty && transition.state == current?.state && !timersChanged { continue }
            let partition = current?.partition ?? pending.partition
            if current == nil, let workflow = core.rules.workflow(version: transition.state.ruleVersion) {
                plan.workflows.append(workflow)
            }
            noteChanged(input.applicationId)
            for effect in transition.effects {
                switch effect {
                // The core sets and cancels the timers of the case it transitions (their key names it).
                case .setTimer(let key, let at): timers.set(key, at: at)
                case .cancelTimer(let key): timers.cancel(key)
                case .recordCompletion: break  // the case's JSON carries the completion record
                default:
                    guard let emission = effect.emission else { continue }
                    let body = emission.body.serialized()
                    plan.outbox.append(
                        .emission(
                            emission, partition: partition, body: body,
                            subject: checker?.subject(of: emission, data: body, time: eventTime)))
                    plan.outcome.emitted += 1
                }
            }
            cases[input.applicationId] = .some(
                StoredCase(state: transition.state, partition: partition, timers: timers))
        }
        for applicationId in changed {
            guard let stored = cases[applicationId] ?? nil else { continue }
            let state = stored.state
            let requested = state.steps.filter { $0.status == .requested }
            plan.cases.append(
                BatchPlan.CaseWrite(
                    state: state, partition: stored.partition, base: bases[applicationId],
                    // A new stamp for every write: a cached case is used only while its row holds
                    // the stamp this store wrote with it (another writer, or a rolled-back
                    // transaction, and it never matches).
                    stamp: Int64.random(in: .min ... .max),
                    // Bound as text as it is: `String(decoding:)` checked and copied the writer's
                    // UTF-8 (made from `String`s, so valid) for nothing (issue 9's profile: 1.2 %).
                    body: state.storedJSON(),
                    nextDue: requested.compactMap(\.overdueAt).min(),
                    overdue: state.status == .inProgress
                        && requested.contains { ($0.overdueAt ?? .distantFuture) <= now },
                    timers: stored.timers))
        }
        return plan
    }

    /// Whether each case row of `plan` still holds the stamp it was read with (no row for a new
    /// case).
    static func casesHold(_ plan: BatchPlan, _ db: Database) throws -> Bool {
        // No row (`nil`), or whether the row's stamp is the one given (1 or 0).
        let stampIs = try RawStatement("SELECT stamp IS ? FROM cases WHERE application_id = ?", db)
        for write in plan.cases {
            stampIs.bind([.optionalInteger(write.base ?? nil), .text(write.state.applicationId)])
            let same = try stampIs.int64()
            switch write.base {
            case nil: if same != nil { return false }
            case .some: if same != .some(1) { return false }
            }
        }
        return true
    }

    /// Writes a plan in the caller's transaction when the store is still what the plan was made
    /// on: its case rows at the stamps they were read with (``casesHold(_:_:)``, checked first)
    /// and its ids unapplied (found as they are inserted; the ids inserted before one found
    /// applied are deleted again).
    /// - Returns: the outbox rows it inserted, in `seq` order, as the relay would read them back
    ///   (handed to the engine's relay once the transaction commits: ``CommittedRows``); `nil`,
    ///   having written nothing, when the store is not what the plan was made on (an id already
    ///   applied, a case row with another stamp, a new case that has a row).
    ///
    /// Nothing else has to be undone: the write used to run in a savepoint, rolled back when a
    /// row turned out to differ, and the savepoint kept a copy of every page the batch changed in
    /// its sub-journal, beyond 64 KiB in a temporary file. Those copies were about a third of the
    /// store transactions' CPU in the benchmark, where a batch is almost never planned again (perf:
    /// writes to files 8 % of the whole process's CPU before, 3.7 % after; the transactions' CPU
    /// about 0.31 ms a workflow before, 0.24 after).
    ///
    /// The statements are prepared once per connection (GRDB's statement cache) and bound and run
    /// with SQLite's functions (``RawStatement``).
    /// - Throws: ``StoreError`` when a case row changed under the write all the same (a bug: the
    ///   caller's transaction holds the store's one write lock); the transaction rolls back.
    static func write(_ plan: BatchPlan, _ db: Database) throws -> [OutboxRow]? {
        guard try casesHold(plan, db) else { return nil }
        let appliedAt = plan.now.timeIntervalSince1970
        let markApplied = try RawStatement(
            "INSERT INTO applied_inputs (event_id, partition, application_id, applied_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            db)
        for (index, applied) in plan.applied.enumerated() {
            markApplied.bind([
                .text(applied.eventId), .int(applied.partition), .text(applied.applicationId), .real(appliedAt),
            ])
            guard try markApplied.execute() > 0 else {
                let unmark = try db.cachedStatement(sql: "DELETE FROM applied_inputs WHERE event_id = ?")
                for earlier in plan.applied[..<index] { try unmark.execute(arguments: [earlier.eventId]) }
                return nil
            }
        }
        let nowMs = plan.now.millisecondsSince1970
        let emit = try RawStatement(
            """
            INSERT INTO outbox (partition, topic, key, event_id, type, time_ms, body, checked, subject)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, db)
        var written: [OutboxRow] = []
        written.reserveCapacity(plan.outbox.count)
        for row in plan.outbox {
            switch row {
            case .emission(let emission, let partition, let body, let subject):
                emit.bind([
                    .int(partition), .text(emission.topic), .text(emission.key), .text(emission.id),
                    .text(emission.type), .integer(nowMs), .blob(body), .bool(subject != nil),
                    .optionalText(subject ?? nil),
                ])
                try emit.execute()
                // The row as `OutboxTable.rows` reads it back: `checked` and `subject` as stored.
                written.append(
                    OutboxRow(
                        seq: db.lastInsertedRowID, partition: partition, topic: emission.topic, key: emission.key,
                        eventId: emission.id, type: emission.type, timeMilliseconds: nowMs, body: body,
                        deadLetter: nil, checkedSubject: subject))
            case .deadLetter(let pending, let refusal):
                written.append(try deadLetter(pending, refusal, nowMs: nowMs, db))
            }
        }
        for workflow in plan.workflows { try remember(workflow, db, now: plan.now) }
        let insertCase = try RawStatement(
            """
            INSERT INTO cases (application_id, partition, workflow, rule_version, status, next_due, overdue, updated_at, body, stamp, timers, next_timer, fired_overdue)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (application_id) DO NOTHING
            """, db)
        let updateCase = try RawStatement(
            """
            UPDATE cases SET status = ?, next_due = ?, overdue = ?, updated_at = ?, body = ?, stamp = ?,
                timers = ?, next_timer = ?, fired_overdue = ?
            WHERE application_id = ? AND stamp IS ?
            """, db)
        for write in plan.cases {
            let state = write.state
            let changed: Int
            if let base = write.base {
                updateCase.bind([
                    .text(state.status.rawValue), .optionalReal(write.nextDue?.timeIntervalSince1970), .bool(write.overdue),
                    .real(appliedAt), .utf8Text(write.body), .integer(write.stamp), .optionalText(write.storedTimers),
                    .optionalReal(write.nextTimer), .int(write.firedOverdue), .text(state.applicationId),
                    .optionalInteger(base),
                ])
                changed = try updateCase.execute()
            } else {
                insertCase.bind([
                    .text(state.applicationId), .int(write.partition), .text(state.workflow),
                    .text(state.ruleVersion.description), .text(state.status.rawValue),
                    .optionalReal(write.nextDue?.timeIntervalSince1970), .bool(write.overdue), .real(appliedAt),
                    .utf8Text(write.body), .integer(write.stamp), .optionalText(write.storedTimers),
                    .optionalReal(write.nextTimer), .int(write.firedOverdue),
                ])
                changed = try insertCase.execute()
            }
            guard changed > 0 else {
                throw StoreError(
                    "the case row of \(state.applicationId) changed under a batch's write in its own transaction: report this as a bug"
                )
            }
        }
        return written
    }

    /// Plans a consumed batch outside the write transaction, on the store as last committed,
    /// with `previous` — the plan being written now, if any — taken as written: its applied ids
    /// and its cases. Only ids repeated within the batch or in `previous` are known as
    /// duplicates here; the write finds the others (``commit(_:core:checker:)``).
    public func prepare(
        _ batch: [PendingInput], core: Orchestrator, now: Date, checker: EmissionChecker?, after previous: BatchPlan?
    ) async throws -> BatchPlan {
        let decoded = self.decoded
        let written = Dictionary(
            (previous?.cases ?? []).map {
                (
                    $0.state.applicationId,
                    StoredCase(state: $0.state, partition: $0.partition, stamp: $0.stamp, timers: $0.timers)
                )
            }, uniquingKeysWith: { $1 })
        let appliedBefore = Set((previous?.applied ?? []).map(\.eventId))
        do {
            return try await pool.read { db in
                try Self.plan(
                    batch, core: core, now: now, checker: checker,
                    cases: { try written[$0] ?? Self.loadCase($0, db, decoded: decoded) },
                    isApplied: { appliedBefore.contains($0) })
            }
        } catch {
            throw Self.fileFailure(error, path: path, while: "planning a batch of \(batch.count) input(s)")
        }
    }

    /// Writes a plan from ``prepare(_:core:now:checker:after:)`` in one write transaction; when the
    /// store is no longer what it was planned on, plans the batch again inside the transaction
    /// and writes that. Records the relay's position when it moved, as ``apply(_:core:now:checker:)``.
    /// - Returns: what the batch did (from the plan written).
    /// - Parameters:
    ///   - writeCPU: told the CPU time the transaction took on its thread.
    ///   - committed: told the outbox rows the plan wrote, in `seq` order, as the relay would read
    ///     them back (the engine hands them to its relay: ``CommittedRows``), as soon as the
    ///     transaction has committed, on the store's writer queue (GRDB's `afterNextTransaction`),
    ///     before this method resumes: a caller busy elsewhere on the cooperative threads does not
    ///     hold them back. Not called when the transaction failed or rolled back, nor when the
    ///     batch was planned again inside it (the relay then reads those rows from the store).
    public func commit(
        _ plan: BatchPlan, core: Orchestrator, checker: EmissionChecker?,
        writeCPU: @escaping @Sendable (Double) -> Void = { _ in },
        committed: @escaping @Sendable ([OutboxRow]) -> Void = { _ in }
    ) async throws -> BatchOutcome {
        let decoded = self.decoded
        return try await writeRecordingPosition(while: "applying a batch of \(plan.batch.count) input(s)") { db in
            let started = cpuSeconds(CLOCK_THREAD_CPUTIME_ID)
            defer { writeCPU(cpuSeconds(CLOCK_THREAD_CPUTIME_ID) - started) }
            if let written = try Self.write(plan, db) {
                plan.remember(in: decoded)
                if !written.isEmpty { db.afterNextTransaction(onCommit: { _ in committed(written) }) }
                return plan.outcome
            }
            var outcome = try Self.apply(plan.batch, core: core, now: plan.now, decoded: decoded, checker: checker, db)
            outcome.replanned = 1
            return outcome
        }
    }
}
