import CivilTime
import EventSchemas
import Foundation
import GRDB
import Orchestrator
import OrchestratorService
import SQLiteSupport

/// What the citizen services consume, decoded.
public enum CitizenInput: Sendable {
    /// `household.birth.registered`.
    case birth(JSONValue)
    /// `household.death.registered`.
    case death(JSONValue)
    /// `socialsecurity.enrolment.registered`.
    case enrolment(JSONValue)
    /// An application of a workflow, submitted at the window.
    case submission(Workflow, JSONValue)
    /// `approval.decided`.
    case decision(JSONValue)
    /// A resident's retirement timer came due.
    case retirementDue(residentId: String)
}

/// One input with what de-duplicates it.
public struct PendingCitizenInput: Sendable {
    /// The CloudEvents id of the record, or `retirement/RESIDENT_ID` for a timer's firing.
    public var eventId: String
    /// The record's partition (the timer's for a firing), written to the outbox rows.
    public var partition: Int
    public var input: CitizenInput

    public init(eventId: String, partition: Int, input: CitizenInput) {
        self.eventId = eventId
        self.partition = partition
        self.input = input
    }
}

/// What one batch did.
public struct CitizenBatchOutcome: Sendable, Hashable {
    /// Inputs handled for the first time.
    public var handled = 0
    /// Inputs skipped because their id was handled before (redeliveries, replays).
    public var duplicates = 0
    /// Text messages written to the outbox.
    public var messages = 0
    /// Applications started (death aftercare, pension certification).
    public var applicationsStarted = 0
    /// Supervision alerts raised.
    public var alerts = 0
    /// Pushes that had no one with a mobile number to go to.
    public var unreachable = 0

    public init() {}
}

/// The citizen services' state in one SQLite file (GRDB, WAL): the ids of the events handled, the
/// outbox (``OutboxTable``, published by ``OutboxRelay``), the retirement timers, the application
/// numbers given, the applications seen at the window and the visits.
///
/// Decisions:
/// - One write transaction per batch: the handled ids, the outbox rows, timers and visits of a
///   batch are committed together; the consumer commits its offsets after it. A replayed or
///   redelivered event finds its id handled and does nothing, so every push happens once.
/// - Outbox rows carry ids derived from the triggering event (`life-event/ID/sms/RESIDENT`,
///   `life-event/ID/application`, `retirement/RESIDENT/…`, `repeat-visit/ID`): a republished row is
///   the same event.
/// - Application numbers (`DA-2026-000001`) come from a counter per prefix and year in this store,
///   in the transaction that starts the application, so a replay cannot give a second number.
public struct CitizenStore: OutboxStore {
    public let pool: DatabasePool
    public let path: String
    /// The WAL's checkpoints, off the writer's path (``openStorePool(path:)``).
    let checkpointer: WALCheckpointer

    /// Opens (creating when missing) the store at `path` and migrates it.
    public init(path: String) throws {
        (pool, checkpointer) = try openStorePool(path: path)
        self.path = path
        try Self.migrator.migrateAmongProcesses(pool)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: OutboxTable.createSQL)
            try db.execute(
                sql: """
                    CREATE TABLE handled_events (
                        event_id TEXT PRIMARY KEY,
                        partition INTEGER NOT NULL,
                        handled_at REAL NOT NULL
                    ) WITHOUT ROWID;
                    CREATE TABLE retirement_timers (
                        resident_id TEXT PRIMARY KEY,
                        partition INTEGER NOT NULL,
                        name TEXT,
                        mobile TEXT,
                        scheme TEXT NOT NULL,
                        birth_date TEXT NOT NULL,
                        retirement_date TEXT NOT NULL,
                        due_at REAL NOT NULL,
                        -- 0 waiting, 1 fired, 2 cancelled (the resident died first)
                        state INTEGER NOT NULL DEFAULT 0
                    );
                    CREATE INDEX retirement_due ON retirement_timers (due_at) WHERE state = 0;
                    CREATE TABLE deceased (resident_id TEXT PRIMARY KEY) WITHOUT ROWID;
                    CREATE TABLE application_numbers (
                        prefix TEXT PRIMARY KEY,
                        last INTEGER NOT NULL
                    );
                    CREATE TABLE applications (
                        application_id TEXT PRIMARY KEY,
                        workflow TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        resident_id TEXT NOT NULL,
                        credit_code TEXT
                    );
                    CREATE TABLE visits (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        kind TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        item TEXT NOT NULL,
                        at REAL NOT NULL,
                        application_id TEXT NOT NULL,
                        event_id TEXT NOT NULL,
                        -- 1 once the alert of this visit (as the later of two) is written
                        alerted INTEGER NOT NULL DEFAULT 0
                    );
                    CREATE INDEX visits_by_subject ON visits (kind, subject, item, at);
                    """)
        }
        // Deleting published outbox rows (``OutboxStore/prunePublished(keeping:now:chunk:)``):
        // two small tables, nothing else changes.
        migrator.registerMigration("v2-outbox-pruning") { db in
            try db.execute(sql: OutboxTable.pruningSQL)
        }
        return migrator
    }

    // MARK: - Timers

    /// Residents whose retirement timer is due at `now`, on the given partitions (all when `nil`).
    public func dueRetirements(at now: Date, partitions: Set<Int>?, limit: Int = 500) async throws -> [(String, Int)] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT resident_id, partition FROM retirement_timers WHERE state = 0 AND due_at <= ? ORDER BY due_at LIMIT ?",
                arguments: [now.timeIntervalSince1970, limit]
            ).compactMap { row -> (String, Int)? in
                let partition: Int = row["partition"]
                if let partitions, !partitions.contains(partition) { return nil }
                return (row["resident_id"], partition)
            }
        }
    }

    /// The earliest instant a waiting retirement timer is due, if any.
    public func nextRetirement() async throws -> Date? {
        try await pool.read { db in
            try Double.fetchOne(db, sql: "SELECT min(due_at) FROM retirement_timers WHERE state = 0").map {
                Date(timeIntervalSince1970: $0)
            }
        }
    }

    /// A resident's retirement timer: its due instant and state (`waiting`, `fired`, `cancelled`).
    public func retirementTimer(_ residentId: String) throws -> (dueAt: Date, state: String)? {
        try pool.read { db in
            try Row.fetchOne(
                db, sql: "SELECT due_at, state FROM retirement_timers WHERE resident_id = ?", arguments: [residentId]
            ).map { row in
                let state: Int = row["state"]
                return (Date(timeIntervalSince1970: row["due_at"]), ["waiting", "fired", "cancelled"][state])
            }
        }
    }

    // MARK: - Applying a batch

    /// Handles a batch in one write transaction, skipping ids handled before.
    public func apply(_ batch: [PendingCitizenInput], services: CitizenServicesRules, now: Date) async throws
        -> CitizenBatchOutcome
    {
        try await pool.write { db in
            var work = Transaction(db: db, rules: services, now: now)
            for pending in batch {
                try db.execute(
                    sql: "INSERT INTO handled_events (event_id, partition, handled_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    arguments: [pending.eventId, pending.partition, now.timeIntervalSince1970])
                guard db.changesCount > 0 else {
                    work.outcome.duplicates += 1
                    continue
                }
                work.outcome.handled += 1
                try work.handle(pending)
            }
            return work.outcome
        }
    }
}
