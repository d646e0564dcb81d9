import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import Logging
import Orchestrator
import SQLiteSupport
import Synchronization

/// One input to apply, as the consumer or the timer loop hands it to the store.
public struct PendingInput: Sendable {
    /// What de-duplicates it: the CloudEvents id of the record, or the timer's id for a firing.
    public var eventId: String
    /// The partition number of its application (the record's partition; the case's for a timer).
    public var partition: Int
    /// The input, or why it cannot be one (a record that is not a CloudEvent, a body that lacks
    /// what the core needs): such a record is dead-lettered in the same transaction.
    public var input: Result<Input, Refusal>
    /// The original record, kept for a dead letter (key, value, headers, topic).
    public var original: OriginalRecord?

    public init(eventId: String, partition: Int, input: Result<Input, Refusal>, original: OriginalRecord?) {
        self.eventId = eventId
        self.partition = partition
        self.input = input
        self.original = original
    }
}

/// The bytes of a consumed record, for its dead letter.
public struct OriginalRecord: Sendable {
    public var topic: String
    public var key: Data?
    public var value: Data
    /// The headers as the log gave them (made into text only for a dead letter: every consumed
    /// record carries one, and few are refused).
    public var logHeaders: [LogHeader]

    public init(_ record: LogRecord) {
        topic = record.topic
        key = record.key
        value = record.value
        logHeaders = record.headers
    }

    /// The headers as `[name, text]` pairs, as a dead letter keeps them.
    public var headers: [[String]] { logHeaders.map { [$0.name, String(decoding: $0.value, as: UTF8.self)] } }
}

/// Why an input is dead-lettered instead of applied: a ``Rejection`` code of the core
/// (`unknown-application`, `step-not-requested`, `conflicting-decision`…) or one of the shell
/// (`invalid-envelope`, `invalid-input`), with the reason.
public struct Refusal: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: String
    public var reason: String

    public init(code: String, reason: String) {
        self.code = code
        self.reason = reason
    }

    public init(_ rejection: Rejection) {
        self.init(code: rejection.code.description, reason: rejection.reason)
    }

    public var description: String { "\(code): \(reason)" }
}

/// What one batch did.
public struct BatchOutcome: Sendable, Hashable {
    /// Inputs applied (new ids, including no-op repeats the core recognised).
    public var applied = 0
    /// Inputs skipped because their id was applied before (redeliveries, replays).
    public var duplicates = 0
    /// Inputs dead-lettered with the reason.
    public var deadLettered = 0
    /// Outbox rows written for emissions (requests, progress, notifications, alerts).
    public var emitted = 0
    /// Batches planned again inside their transaction because the store changed under the plan
    /// made outside it (``BatchPlan``).
    public var replanned = 0

    public init() {}

    /// Adds another batch's counts (the halves of one batch, a run's batches).
    public mutating func add(_ other: BatchOutcome) {
        applied += other.applied
        duplicates += other.duplicates
        deadLettered += other.deadLettered
        emitted += other.emitted
        replanned += other.replanned
    }
}

/// An outbox row as the relay reads it.
public struct OutboxRow: Sendable, Hashable {
    public var seq: Int64
    public var partition: Int
    public var topic: String
    public var key: String?
    public var eventId: String
    public var type: String
    /// The event time (milliseconds since 1970): the time of the transition, so a republished row
    /// is the same event.
    public var timeMilliseconds: Int64
    public var body: Data
    /// For a dead letter: the original record's headers and the refusal (`nil` for an emission).
    public var deadLetter: DeadLetterPayload?
    /// For an emission validated when it was written (the orchestrator's store, column `checked`):
    /// the subject validation gave it (`.some(nil)`: none), so the relay publishes it without
    /// parsing and validating its body again. `nil`: validated by the relay.
    public var checkedSubject: String??
}

/// What a dead-letter outbox row carries besides the original value.
public struct DeadLetterPayload: Sendable, Hashable, Codable {
    public var originalTopic: String
    public var headers: [[String]]
    public var code: String
    public var reason: String
}

/// The orchestrator's state in one SQLite file (GRDB, WAL): cases, the ids of the inputs already
/// applied (each case with its timers), the outbox and the rule sources of every pinned version. Every row carries
/// the partition number of its application, so a partition's rows can move together.
///
/// Decisions:
/// - One write transaction per batch (``apply(_:core:now:)``): the case, the applied ids, the
///   outbox rows, the timers and the dead letters of refused inputs are committed together or not
///   at all. The consumer commits its offsets only after it; a crash before re-reads the batch, and
///   the applied ids make the second pass a no-op.
/// - Within a batch, a case is read and decoded once and written once, after the batch's last input
///   for it (its five decisions after the fan-out often arrive together); the hot statements are
///   prepared once per connection. (Measured in the benchmark: BENCHMARKS.md.)
/// - The consumer's batches are planned outside the transaction (``BatchPlan``): the core, the
///   emissions' serialising and validation and the cases' JSON run while the previous batch is
///   written, and the transaction checks that what the plan was made on still holds (its ids
///   unapplied, its case rows at the stamps it read) before it writes, planning the batch again
///   inside itself when not. The timer loop's firings are planned inside their transaction.
/// - A dead letter is an outbox row to the dead-letter topic, not a publish from the consumer, so
///   a crash can neither lose it (the offset moved on) nor send it twice.
/// - Cases are JSON (the core's `Case`, in `Codable`'s format but written and read by hand:
///   ``Case/storedJSON()``), with the columns the queries need beside them: status, next due
///   instant and whether a step is overdue, indexed for `status` and `applications`; and a
///   write stamp for the decoded-case cache (``DecodedCases``). Stores written before the stamp
///   migrate by themselves (migration `v2-case-stamps`): the bodies did not change. The JSON is
///   the row's last column, so reading the others does not walk its overflow pages
///   (``casesSmallColumnsFirstMigration``).
/// - A case's timers live in its row (``CaseTimers``: columns `timers`, `next_timer`,
///   `fired_overdue`, migration `v4-timers-in-cases`), written by the statement that writes the
///   case, not as rows of their own; the timer loop finds the due ones through the `next_timer`
///   index, and a firing marks its timer fired in the row (a new stamp, so a batch planned before
///   on that case is planned again). Timers the core cancels (their step was decided) are removed,
///   fired or not; a fired timer is kept, marked, until then, so the fired `overdue` timers are
///   the overdue steps.
/// - The outbox is published in `seq` order, and what is on the bus is one number, the relay's
///   position (`relay_position`, migration `v3-relay-position`), not a flag per row: the relay
///   moves it in memory after each append (``relayed(through:)``) and the next transaction that
///   applies inputs records it, so the relay does not wait for the one writer at every round; it
///   records it itself when it finds the outbox empty, each second and at its stop. Published rows
///   stay in the table for the retention `orchestrator run` is given (30 days by default), then a
///   pass deletes them (``OutboxStore/prunePublished(keeping:now:chunk:)``); the rebuild compares
///   the ids of those still there. The rows a consumer's transaction committed are handed to the
///   same engine's relay in memory (``CommittedRows``), which publishes them without reading them
///   back when they follow its position; the store stays the source of truth, read whenever rows
///   were written that were not handed over. Emissions are validated as they are written
///   (``EmissionChecker``, the body still parsed) and the relay publishes them without parsing
///   them again (BENCHMARKS.md: parsing and validating in the relay was a tenth of the benchmark's
///   CPU).
/// - WAL with `synchronous = NORMAL` (``openStorePool(path:)``): durable against a crash of the
///   process, not against a power loss.
public struct OrchestratorStore: OutboxStore {
    public let pool: DatabasePool
    public let path: String
    /// The WAL's checkpoints, off the writer's path (``openStorePool(path:)``).
    let checkpointer: WALCheckpointer
    /// Cases this store decoded or encoded lately, each with the stored text it stands for.
    ///
    /// 16,384 open cases: the throughput benchmark's default run (20,000 restaurant applications
    /// submitted at once, so that most are open together) decoded about half its cases again
    /// from their JSON with 8,192 (1,010–1,080 workflows/s, 1.41–1.50 CPU-ms each, against
    /// 1,140–1,223/s and 1.25–1.33 ms with 16,384). The cost is memory, about 4.5 KB a kept
    /// case: a fresh orchestrator holding 100,000 open applications is 227 MB resident against
    /// 190 MB (issue 9's bound is 300 MB).
    let decoded = DecodedCases(capacity: 16_384)
    /// How far this store's relay published, and how much of that is recorded.
    let position = RelayPosition()

    /// Opens (creating when missing) the store at `path` and migrates it.
    /// - Throws: ``LogError`` `.storage` naming the file and what to do when the file cannot be
    ///   opened for writing (read-only, in a read-only folder, on a full disk, damaged): `onewindow
    ///   orchestrator run` then exits with status 74 before it joins the consumer group, so no
    ///   offset is committed; other errors as they come.
    /// - Parameter logger: says when opening rebuilds the case table (a migration that copies every
    ///   case once: ``casesSmallColumnsFirstMigration``), before and after.
    public init(path: String, logger: Logger = Logger(label: "onewindow.orchestrator")) throws {
        do {
            (pool, checkpointer) = try openStorePool(path: path)
            // Asked of the writer connection, which the migration uses next: a reader opened first
            // on a store that cannot be written gets further than the writer, and the store's
            // refusal then came at the first batch instead of here (exit 75 instead of 74).
            let casesToRebuild = try pool.writeWithoutTransaction { db -> Int? in
                guard
                    try db.tableExists("cases"),
                    try !Self.migrator.appliedIdentifiers(db).contains(Self.casesSmallColumnsFirstMigration)
                else { return nil }
                return try Int.fetchOne(db, sql: "SELECT count(*) FROM cases") ?? 0
            }
            let started = ContinuousClock.now
            if let count = casesToRebuild {
                logger.notice(
                    "rebuilding the orchestrator store's case table with its small columns first (once, in one transaction)",
                    metadata: ["path": "\(path)", "cases": "\(count)"])
            }
            try Self.migrator.migrateAmongProcesses(pool)
            if casesToRebuild != nil {
                // The WAL holds about the whole case table now: give that space back to the disk.
                _ = try? pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
                logger.notice(
                    "rebuilt the orchestrator store's case table",
                    metadata: ["path": "\(path)", "seconds": "\((ContinuousClock.now - started).seconds)"])
            }
        } catch {
            throw Self.fileFailure(error, path: path, while: "opening the orchestrator's store")
        }
        self.path = path
    }

    /// Opens an existing store for reading (the `status` and `applications` commands).
    public static func openExisting(path: String) throws -> OrchestratorStore {
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError(
                "no orchestrator store at \(path); start `onewindow orchestrator run --store \(path)` first or name the store with --store"
            )
        }
        return try OrchestratorStore(path: path)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: OutboxTable.createSQL)
            try db.execute(
                sql: """
                    CREATE TABLE rule_versions (
                        version TEXT PRIMARY KEY,
                        workflow TEXT NOT NULL,
                        sources TEXT NOT NULL,
                        stored_at REAL NOT NULL
                    );
                    CREATE TABLE cases (
                        application_id TEXT PRIMARY KEY,
                        partition INTEGER NOT NULL,
                        workflow TEXT NOT NULL,
                        rule_version TEXT NOT NULL,
                        status TEXT NOT NULL,
                        next_due REAL,
                        overdue INTEGER NOT NULL DEFAULT 0,
                        updated_at REAL NOT NULL,
                        body TEXT NOT NULL
                    );
                    -- `applications`: open ones, overdue first, then by the next due instant.
                    CREATE INDEX cases_open ON cases (overdue DESC, next_due, application_id)
                        WHERE status = 'in-progress';
                    CREATE INDEX cases_partition ON cases (partition);
                    CREATE TABLE applied_inputs (
                        event_id TEXT PRIMARY KEY,
                        partition INTEGER NOT NULL,
                        application_id TEXT NOT NULL,
                        applied_at REAL NOT NULL
                    ) WITHOUT ROWID;
                    CREATE TABLE timers (
                        id TEXT PRIMARY KEY,
                        partition INTEGER NOT NULL,
                        application_id TEXT NOT NULL,
                        step TEXT NOT NULL,
                        attempt INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        due_at REAL NOT NULL,
                        fired INTEGER NOT NULL DEFAULT 0
                    );
                    CREATE INDEX timers_due ON timers (due_at) WHERE fired = 0;
                    """)
        }
        // The write stamp of the decoded-case cache (``DecodedCases``). Rows of a store written
        // before have none, so their first load reads the body; nothing else changes (the body
        // keeps its format), so the migration is automatic. A binary from before it still works
        // on the migrated store beside this one: its writes do not set the stamp, and the
        // trigger clears a stamp a write of the body left as it was, so no cache takes that row
        // for the case it held.
        migrator.registerMigration("v2-case-stamps") { db in
            try db.execute(
                sql: """
                    ALTER TABLE cases ADD COLUMN stamp INTEGER;
                    CREATE TRIGGER cases_stale_stamp AFTER UPDATE OF body ON cases
                    WHEN NEW.stamp IS OLD.stamp AND NEW.stamp IS NOT NULL
                    BEGIN UPDATE cases SET stamp = NULL WHERE application_id = NEW.application_id; END;
                    """)
        }
        // The relay's position instead of a `sent` flag per row (an UPDATE of every published
        // row and of the unsent index, and a write transaction the relay waited for each round):
        // `relay_position.sent_through` is the last seq on the bus, recorded lazily (see
        // ``relayed(through:)``). Rows stay in the table as before (the rebuild compares their
        // ids); `sent` is no longer written. An emission validated when it was written says so
        // (`checked`, with the `subject` validation gave it), and the relay does not parse it again.
        // The position starts where the flags left off: rows are marked sent as a prefix.
        migrator.registerMigration("v3-relay-position") { db in
            try db.execute(
                sql: """
                    ALTER TABLE outbox ADD COLUMN checked INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE outbox ADD COLUMN subject TEXT;
                    CREATE TABLE relay_position (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        sent_through INTEGER NOT NULL
                    );
                    INSERT INTO relay_position (id, sent_through) VALUES (1, coalesce(
                        (SELECT min(seq) - 1 FROM outbox WHERE sent = 0), (SELECT max(seq) FROM outbox), 0));
                    DROP INDEX outbox_unsent;
                    """)
            // Timers clustered by their id (WITHOUT ROWID): every requested step writes two and its
            // decision deletes them, and a rowid table kept a second B-tree for the id besides.
            try db.execute(
                sql: """
                    CREATE TABLE timers_by_id (
                        id TEXT PRIMARY KEY,
                        partition INTEGER NOT NULL,
                        application_id TEXT NOT NULL,
                        step TEXT NOT NULL,
                        attempt INTEGER NOT NULL,
                        kind TEXT NOT NULL,
                        due_at REAL NOT NULL,
                        fired INTEGER NOT NULL DEFAULT 0
                    ) WITHOUT ROWID;
                    INSERT INTO timers_by_id (id, partition, application_id, step, attempt, kind, due_at, fired)
                        SELECT id, partition, application_id, step, attempt, kind, due_at, fired FROM timers;
                    DROP TABLE timers;
                    ALTER TABLE timers_by_id RENAME TO timers;
                    CREATE INDEX timers_due ON timers (due_at) WHERE fired = 0;
                    """)
        }
        // The timers in their case's row (``CaseTimers``: columns `timers`, `next_timer`,
        // `fired_overdue`) instead of a table of their own: every requested step set two timer
        // rows and its decision deleted them, 24 row operations on a text-keyed B-tree and its
        // index per restaurant workflow in the consumer's one write transaction, while the case
        // row they belong to is rewritten in that transaction anyway. Each application's timers
        // move into its row; a timer whose case is not in the store (none is: a timer is written
        // with its case) is dropped — its firing would have changed nothing. The rows' stamps
        // are cleared, so no decoded-case cache takes a row for timers it did not read.
        migrator.registerMigration("v4-timers-in-cases") { db in
            try db.execute(
                sql: """
                    ALTER TABLE cases ADD COLUMN timers TEXT;
                    ALTER TABLE cases ADD COLUMN next_timer REAL;
                    ALTER TABLE cases ADD COLUMN fired_overdue INTEGER NOT NULL DEFAULT 0;
                    """)
            var byCase: [String: CaseTimers] = [:]
            let rows = try Row.fetchCursor(
                db, sql: "SELECT application_id, step, attempt, kind, due_at, fired FROM timers ORDER BY due_at, id")
            while let row = try rows.next() {
                let applicationId: String = row["application_id"]
                let kindName: String = row["kind"]
                guard let kind = TimerKey.Kind(rawValue: kindName) else {
                    throw StoreError(
                        "timer of \(applicationId) step \(row["step"] as String) has an unknown kind '\(kindName)'; rebuild the store from the log (onewindow orchestrator rebuild)"
                    )
                }
                let key = TimerKey(applicationId: applicationId, step: row["step"], attempt: row["attempt"], kind: kind)
                byCase[applicationId, default: CaseTimers()].set(
                    key, at: Date(timeIntervalSince1970: row["due_at"]))
                if row["fired"] as Bool { byCase[applicationId]?.markFired(key) }
            }
            let update = try db.makeStatement(
                sql: """
                    UPDATE cases SET timers = ?, next_timer = ?, fired_overdue = ?, stamp = NULL
                    WHERE application_id = ?
                    """)
            for (applicationId, timers) in byCase {
                try update.execute(arguments: [timers.stored, timers.next, timers.firedOverdue, applicationId])
            }
            try db.execute(
                sql: """
                    DROP TABLE timers;
                    CREATE INDEX cases_next_timer ON cases (next_timer, application_id) WHERE next_timer IS NOT NULL;
                    CREATE INDEX cases_fired_overdue ON cases (fired_overdue) WHERE fired_overdue > 0;
                    """)
        }
        migrator.registerMigration(casesSmallColumnsFirstMigration) { db in
            // See casesSmallColumnsFirstMigration: the same rows, the small columns first, the
            // case's JSON last. Dropping the old table drops its indexes and its trigger; they are
            // made again as they were.
            try db.execute(
                sql: """
                    CREATE TABLE cases_reordered (
                        application_id TEXT PRIMARY KEY,
                        partition INTEGER NOT NULL,
                        stamp INTEGER,
                        status TEXT NOT NULL,
                        overdue INTEGER NOT NULL DEFAULT 0,
                        next_due REAL,
                        next_timer REAL,
                        fired_overdue INTEGER NOT NULL DEFAULT 0,
                        updated_at REAL NOT NULL,
                        workflow TEXT NOT NULL,
                        rule_version TEXT NOT NULL,
                        timers TEXT,
                        body TEXT NOT NULL
                    );
                    INSERT INTO cases_reordered (application_id, partition, stamp, status, overdue, next_due, next_timer,
                            fired_overdue, updated_at, workflow, rule_version, timers, body)
                        SELECT application_id, partition, stamp, status, overdue, next_due, next_timer,
                            fired_overdue, updated_at, workflow, rule_version, timers, body
                        FROM cases ORDER BY rowid;
                    DROP TABLE cases;
                    ALTER TABLE cases_reordered RENAME TO cases;
                    CREATE INDEX cases_open ON cases (overdue DESC, next_due, application_id)
                        WHERE status = 'in-progress';
                    CREATE INDEX cases_partition ON cases (partition);
                    CREATE INDEX cases_next_timer ON cases (next_timer, application_id) WHERE next_timer IS NOT NULL;
                    CREATE INDEX cases_fired_overdue ON cases (fired_overdue) WHERE fired_overdue > 0;
                    CREATE TRIGGER cases_stale_stamp AFTER UPDATE OF body ON cases
                    WHEN NEW.stamp IS OLD.stamp AND NEW.stamp IS NOT NULL
                    BEGIN UPDATE cases SET stamp = NULL WHERE application_id = NEW.application_id; END;
                    """)
        }
        // Deleting published outbox rows (``OutboxStore/prunePublished(keeping:now:chunk:)``): two
        // small tables, nothing else changes.
        migrator.registerMigration("v6-outbox-pruning") { db in
            try db.execute(sql: OutboxTable.pruningSQL)
        }
        return migrator
    }

    /// The migration that rebuilt `cases` with its small columns first and the case's JSON
    /// (`body`, about 4 KB for a restaurant case) last.
    ///
    /// Why: SQLite stores a row's columns in order and keeps what does not fit in the row's page
    /// on a chain of overflow pages; a column after a large one is read by walking that chain.
    /// `body` came before the columns later migrations added (`stamp`, `timers`, `next_timer`,
    /// `fired_overdue`), so every look-up of a case's write stamp (``loadCase(_:_:decoded:)``,
    /// once per case and batch, to find it in the decoded-case cache) and every read of the timer
    /// loop's timers went through the body's overflow pages. With `body` last they read the
    /// row's first page only.
    ///
    /// What it costs a store that has cases: it runs once, at the first open by a version that has
    /// it, in one write transaction that copies every case row (in rowid order) into the new
    /// table, drops the old one and builds the indexes again. 100,000 cases of 4.5 KB (a 470 MB
    /// store) took 9 s (4 s of CPU) on this project's 2-core machine under a load of 13 (SQLite
    /// from Python, the same statements). The store's other users (another orchestrator,
    /// `onewindow status`) wait for the write lock meanwhile, up to the 10 s busy timeout. It
    /// needs free disk of about twice the store: the file grows by about the size of the cases
    /// (the old table's pages are freed and reused by later writes; `VACUUM`, with every process
    /// stopped, gives them back), and the WAL holds about as much again until the checkpoint that
    /// follows the migration truncates it (when no other process is reading). A crash or a full
    /// disk during it rolls it back, and the next open tries again. The stamps are kept: the rows'
    /// contents did not change.
    static let casesSmallColumnsFirstMigration = "v5-cases-small-columns-first"

    // MARK: - Relay position

    /// The relay's recorded position (``recordedPosition(_:)``): rows are not marked `sent` here.
    public func publishedThrough(_ db: Database) throws -> Int64 { try Self.recordedPosition(db) }

    /// The relay's position as recorded in the store: every row up to it is on the bus.
    static func recordedPosition(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT sent_through FROM relay_position WHERE id = 1")) ?? 0
    }

    /// Records `position` (when it is further than the recorded one), in the caller's transaction.
    static func record(position: Int64, _ db: Database) throws {
        let statement = try db.cachedStatement(
            sql: "UPDATE relay_position SET sent_through = ? WHERE id = 1 AND sent_through < ?")
        statement.setUncheckedArguments([position, position])
        try statement.execute()
    }

    /// The first outbox rows the relay has not published, in order: after the position this store
    /// published through (``relayed(through:)``), recorded or not.
    public func unsent(limit: Int = 500) async throws -> [OutboxRow] {
        let position = self.position
        return try await pool.read { db in
            let recorded = try Self.recordedPosition(db)
            position.read(recorded: recorded)
            let after = max(recorded, position.published)
            return try OutboxTable.rows(after: after, limit: limit, db)
        }
    }

    /// How many outbox rows the relay has not published.
    public func unsentCount() async throws -> Int {
        let position = self.position
        return try await pool.read { db in
            let recorded = try Self.recordedPosition(db)
            let after = max(recorded, position.published)
            return try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE seq > ?", arguments: [after]) ?? 0
        }
    }

    /// Notes that the rows through `seq` are on the bus. The position is recorded in the store
    /// lazily: by the next transaction that applies inputs (the consumer's, the timer loop's), or
    /// by ``recordRelayPosition(ifOlderThan:orRowsBehind:)``. A crash before that publishes those
    /// rows again with the same ids, which readers drop (as a crash between a publish and the
    /// marking of the rows did before); in exchange the relay does not wait for the store's one
    /// writer at every round.
    public func relayed(through seq: Int64) {
        position.advance(published: seq)
    }

    /// Records the relay's position in its own transaction when what was published is not recorded
    /// yet and either `age` passed since the last recording or `rows` rows are unrecorded (with
    /// the defaults: always). - Returns: whether it wrote.
    @discardableResult
    public func recordRelayPosition(ifOlderThan age: Duration = .zero, orRowsBehind rows: Int64 = 0) async throws
        -> Bool
    {
        guard let published = position.due(age: age, rows: rows) else { return false }
        do {
            try await pool.write { db in try Self.record(position: published, db) }
        } catch {
            throw Self.fileFailure(error, path: path, while: "recording the relay's position")
        }
        position.recorded(published)
        return true
    }

    // MARK: - Rule versions

    /// Records the sources of a workflow version once (the first case pinned to it).
    static func remember(_ workflow: Workflow, _ db: Database, now: Date) throws {
        // Looked up before the sources are encoded (tens of kilobytes of rule files): every new
        // case comes here, and all but the first of a version find it.
        let known = try db.cachedStatement(sql: "SELECT 1 FROM rule_versions WHERE version = ?")
        if try Int.fetchOne(known, arguments: [workflow.version.description]) != nil { return }
        let sources = String(decoding: try JSONEncoder().encode(workflow.sources), as: UTF8.self)
        try db.execute(
            sql:
                "INSERT INTO rule_versions (version, workflow, sources, stored_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            arguments: [workflow.version.description, workflow.id, sources, now.timeIntervalSince1970])
    }

    /// The sources of every version cases were pinned to.
    public func pinnedSources() throws -> [(RuleVersion, RuleSources)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT version, sources FROM rule_versions ORDER BY version").compactMap { row in
                guard let version = RuleVersion(row["version"] as String) else { return nil }
                let sources = try JSONDecoder().decode(RuleSources.self, from: Data((row["sources"] as String).utf8))
                return (version, sources)
            }
        }
    }

    /// `rules` with every pinned version the files no longer have compiled again from its stored
    /// sources, so a case keeps its version after the files changed.
    /// - Throws: ``StoreError`` naming the version when its stored sources no longer compile.
    public func withPinnedVersions(_ rules: RuleBook, catalog: TopicCatalog) throws -> RuleBook {
        var rules = rules
        for (version, sources) in try pinnedSources() where rules.workflow(version: version) == nil {
            do {
                rules.add(try RuleBook.compile(sources, catalog: catalog), current: false)
            } catch {
                throw StoreError(
                    "the rules of \(version), which cases in \(path) are pinned to, no longer compile: \(error)")
            }
        }
        return rules
    }

    // MARK: - Applying a batch

    /// Applies a batch in one write transaction: skips ids applied before, applies the core to
    /// each new input in order, writes the cases, outbox rows and timers, and dead-letters (as
    /// outbox rows) what the core or the decoder refused.
    /// - Parameter checker: validates each emission as it is written (its body is at hand, not
    ///   yet serialised), so the relay publishes it without parsing it again; one that does not
    ///   validate is written unchecked and the relay dead-letters it, as it did every invalid one
    ///   before. `nil`: the relay validates every row.
    ///
    /// The transaction also records the relay's position (``relayed(through:)``) when it moved.
    public func apply(
        _ batch: [PendingInput], core: Orchestrator, now: Date, checker: EmissionChecker? = nil
    ) async throws -> BatchOutcome {
        let decoded = self.decoded
        return try await writeRecordingPosition(while: "applying a batch of \(batch.count) input(s)") { db in
            try Self.apply(batch, core: core, now: now, decoded: decoded, checker: checker, db)
        }
    }

    /// Runs `body` in one write transaction that also records the relay's position when it moved
    /// (``relayed(through:)``). A SQLite error a person fixes on the file comes back as
    /// ``fileFailure(_:path:while:)``, naming `action`.
    func writeRecordingPosition<T: Sendable>(
        while action: String, _ body: @Sendable (Database) throws -> T
    ) async throws -> T {
        let published = position.unrecorded
        let result: T
        do {
            result = try await pool.write { db in
                if let published { try Self.record(position: published, db) }
                return try body(db)
            }
        } catch {
            throw Self.fileFailure(error, path: path, while: action)
        }
        if let published { position.recorded(published) }
        return result
    }

    /// A SQLite error that a person fixes on the store's file (a full disk, a read-only or damaged
    /// file) as a ``LogError`` `.storage` naming the file and what to do; other errors unchanged.
    /// The disposition stays what it was for the SQLite error (ErrorDisposition): a full disk or
    /// a failed write is retried — the transaction was rolled back, so the batch is applied again
    /// once there is room, and its offsets were not committed — while a read-only or damaged file
    /// stops the process (status 75) until someone fixes it.
    static func fileFailure(_ error: any Error, path: String, while action: String) -> any Error {
        guard let error = error as? DatabaseError else { return error }
        let remedy: String
        switch error.resultCode {
        case .SQLITE_FULL:
            remedy = "the disk holding the store is full: free space there; nothing of this was stored, and it is done again once there is room"
        case .SQLITE_IOERR:
            remedy = "writing the store failed (a full disk, a file-size limit or a failing disk): check the disk; it is retried"
        case .SQLITE_READONLY, .SQLITE_PERM:
            remedy = "the store file or its folder is read-only for this user: make both writable by the user that "
                + "runs the orchestrator (chmod u+w, or chown), then start it again; nothing of this was stored, and "
                + "what was not stored is consumed again (offsets are committed only after the store)"
        case .SQLITE_CANTOPEN:
            remedy = "SQLite cannot open the store or create its -wal and -shm files beside it (the file, its folder "
                + "or the file system read-only): make the file and its folder readable and writable by the user that "
                + "runs the orchestrator, on a file system mounted read-write, then start it again"
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            remedy = "the store is damaged: restore it from a backup, or rebuild it from the log (onewindow orchestrator rebuild)"
        default:
            return error
        }
        return LogError(
            .storage, "\(action) failed: \(error.message ?? "\(error)")", remedy: remedy, subject: path,
            backendName: "\(error.resultCode)", isRetriable: [.SQLITE_FULL, .SQLITE_IOERR].contains(error.resultCode))
    }

    /// Applies a batch inside the caller's write transaction: plans it against the store as it is
    /// (``plan(_:core:now:checker:cases:isApplied:)`` with the store's own cases and applied ids),
    /// then writes the plan.
    static func apply(
        _ batch: [PendingInput], core: Orchestrator, now: Date, decoded: DecodedCases? = nil,
        checker: EmissionChecker? = nil, _ db: Database
    ) throws -> BatchOutcome {
        let applied = try db.cachedStatement(sql: "SELECT 1 FROM applied_inputs WHERE event_id = ?")
        let plan = try Self.plan(
            batch, core: core, now: now, checker: checker,
            cases: { try loadCase($0, db, decoded: decoded) },
            isApplied: { try Int.fetchOne(applied, arguments: [$0]) != nil })
        guard try write(plan, db) != nil else {
            throw StoreError("a batch planned inside its own transaction conflicted with the store: report this as a bug")
        }
        plan.remember(in: decoded)
        return plan.outcome
    }

    /// Writes a dead letter's outbox row. - Returns: the row as the relay reads it back.
    @discardableResult
    static func deadLetter(_ pending: PendingInput, _ refusal: Refusal, nowMs: Int64, _ db: Database) throws
        -> OutboxRow
    {
        let original = pending.original
        let payload = DeadLetterPayload(
            originalTopic: original?.topic ?? "", headers: original?.headers ?? [], code: refusal.code,
            reason: refusal.reason)
        let key = original?.key.map { String(decoding: $0, as: UTF8.self) }
        let body = original?.value ?? Data()
        try db.execute(
            sql: """
                INSERT INTO outbox (partition, topic, key, event_id, type, time_ms, body, dead_letter)
                VALUES (?, '', ?, ?, 'dead-letter', ?, ?, ?)
                """,
            arguments: [
                pending.partition, key, pending.eventId, nowMs, body,
                String(decoding: try JSONEncoder().encode(payload), as: UTF8.self),
            ])
        return OutboxRow(
            seq: db.lastInsertedRowID, partition: pending.partition, topic: "", key: key, eventId: pending.eventId,
            type: "dead-letter", timeMilliseconds: nowMs, body: body, deadLetter: payload, checkedSubject: nil)
    }

    struct StoredCase {
        var state: Case
        var partition: Int
        /// The row's write stamp when it was read (`nil` in rows written before stamps).
        var stamp: Int64? = nil
        /// The case's timers (its row's `timers` column).
        var timers = CaseTimers()
    }

    /// The stored case and its timers; read from the row unless `decoded` holds them for the
    /// row's write stamp (then neither the body nor the timers are read).
    static func loadCase(_ applicationId: String, _ db: Database, decoded: DecodedCases? = nil) throws -> StoredCase? {
        if let decoded {
            // Through SQLite's functions (``RawStatement``): GRDB's row and cursor were most of
            // this look-up's cost.
            let lookUp = try RawStatement("SELECT partition, stamp FROM cases WHERE application_id = ?", db)
            lookUp.bind([.text(applicationId)])
            guard let (partition, stamp) = try lookUp.int64Pair() else { return nil }
            if let stamp, let entry = decoded.entry(applicationId, stamp: stamp) {
                return StoredCase(
                    state: entry.state, partition: Int(partition ?? 0), stamp: stamp, timers: entry.timers)
            }
        }
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT partition, stamp, body, timers FROM cases WHERE application_id = ?"),
                arguments: [applicationId])
        else { return nil }
        let state = try readCase(row[2], applicationId: applicationId)
        let timers = try CaseTimers(stored: row[3], applicationId: applicationId)
        let stamp: Int64? = row[1]
        if let stamp { decoded?.remember(applicationId, stamp: stamp, state: state, timers: timers) }
        return StoredCase(state: state, partition: row[0], stamp: stamp, timers: timers)
    }

    /// A case from its stored JSON (``Case/init(storedJSON:)``).
    /// - Throws: ``StoreError`` naming the application and the member that cannot be read.
    static func readCase(_ body: String, applicationId: String) throws -> Case {
        do {
            return try Case(storedJSON: Array(body.utf8))
        } catch {
            throw StoreError("the stored case of \(applicationId) cannot be read: \(error)")
        }
    }

    // MARK: - Timers

    /// Timers due at `now` on the given partitions (all partitions when `nil`), earliest first
    /// (then by id): the first `limit` unfired due timers of the store, those of other partitions
    /// left out. Read from the cases whose earliest unfired timer is due (the `cases_next_timer`
    /// index): the first `limit` of them in that order hold the first `limit` timers.
    public func dueTimers(at now: Date, partitions: Set<Int>?, limit: Int = 500) async throws -> [(TimerKey, Int)] {
        try await dueTimersWithInstants(at: now, partitions: partitions, limit: limit).map { ($0.0, $0.1) }
    }

    /// ``dueTimers(at:partitions:limit:)`` with each timer's due instant.
    func dueTimersWithInstants(at now: Date, partitions: Set<Int>?, limit: Int = 500) async throws
        -> [(TimerKey, Int, Date)]
    {
        try await pool.read { db in
            var due: [(key: TimerKey, partition: Int, due: Double)] = []
            let rows = try Row.fetchCursor(
                db.cachedStatement(sql: Self.dueTimersQuery), arguments: [now.timeIntervalSince1970, limit])
            while let row = try rows.next() {
                let applicationId: String = row[0]
                let partition: Int = row[1]
                for timer in try CaseTimers(stored: row[2], applicationId: applicationId).due(at: now) {
                    due.append((timer.key(applicationId), partition, timer.due.timeIntervalSince1970))
                }
            }
            due.sort { ($0.due, $0.key.description) < ($1.due, $1.key.description) }
            return due.prefix(limit).compactMap { timer in
                if let partitions, !partitions.contains(timer.partition) { return nil }
                return (timer.key, timer.partition, Date(timeIntervalSince1970: timer.due))
            }
        }
    }

    /// The query of ``dueTimers(at:partitions:limit:)`` (a test checks its plan uses the index).
    public static let dueTimersQuery = """
        SELECT application_id, partition, timers FROM cases WHERE next_timer <= ?
        ORDER BY next_timer, application_id LIMIT ?
        """

    /// The earliest instant an unfired timer is due, if any.
    public func nextTimer() async throws -> Date? {
        try await pool.read { db in
            try Double.fetchOne(db, sql: "SELECT min(next_timer) FROM cases WHERE next_timer IS NOT NULL").map {
                Date(timeIntervalSince1970: $0)
            }
        }
    }

    /// Refreshes the `overdue` flag of open cases whose next due instant has passed (the timer
    /// loop calls it; `applications` lists them first).
    public func markOverdue(at now: Date) async throws {
        do {
            try await pool.write { db in
                try db.execute(
                    sql: "UPDATE cases SET overdue = 1 WHERE status = 'in-progress' AND overdue = 0 AND next_due <= ?",
                    arguments: [now.timeIntervalSince1970])
            }
        } catch {
            throw Self.fileFailure(error, path: path, while: "marking overdue applications")
        }
    }

    // MARK: - Queries

    /// A case by application id.
    public func findCase(_ applicationId: String) throws -> (state: Case, partition: Int)? {
        try pool.read { db in try Self.loadCase(applicationId, db).map { ($0.state, $0.partition) } }
    }

    /// Open cases, overdue first, then by the next due instant (the `cases_open` index).
    public func openCases(limit: Int = 100) throws -> [Case] {
        try pool.read { db in
            try Row.fetchAll(db, sql: Self.openCasesQuery, arguments: [limit]).map {
                try Self.readCase($0["body"], applicationId: $0["application_id"])
            }
        }
    }

    /// The query `applications` runs (a test checks its plan uses the index).
    public static let openCasesQuery = """
        SELECT application_id, body FROM cases WHERE status = 'in-progress'
        ORDER BY overdue DESC, next_due, application_id LIMIT ?
        """

    /// Counts for the metrics: open cases, and steps past their due date and still undecided (their
    /// `overdue` timer fired and was not cancelled by a decision).
    public func counts() async throws -> (open: Int, overdue: Int) {
        try await pool.read { db in
            let open = try Int.fetchOne(db, sql: "SELECT count(*) FROM cases WHERE status = 'in-progress'") ?? 0
            let overdue =
                try Int.fetchOne(db, sql: "SELECT total(fired_overdue) FROM cases WHERE fired_overdue > 0") ?? 0
            return (open, overdue)
        }
    }
}

/// Cases this store read or wrote lately, keyed by application id, each with the write stamp of
/// its row (the `stamp` column, new at every write): a load whose row holds that same stamp takes
/// the case from here without reading its body (decoding the stored JSON was a quarter of a
/// batch's transaction in the benchmark). A row another writer changed, or a write whose
/// transaction rolled back, never matches. Only open cases are kept (a finished one gets no more
/// inputs but repeats); bounded: at `capacity` entries an arbitrary one makes room.
final class DecodedCases: Sendable {
    struct Entry {
        let stamp: Int64
        let state: Case
        let timers: CaseTimers
    }
    private let entries = Mutex<[String: Entry]>([:])
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// The case and its timers as the row with `stamp` holds them, if kept.
    func entry(_ applicationId: String, stamp: Int64) -> Entry? {
        entries.withLock { entries in
            guard let entry = entries[applicationId], entry.stamp == stamp else { return nil }
            return entry
        }
    }

    func remember(_ applicationId: String, stamp: Int64, state: Case, timers: CaseTimers) {
        entries.withLock { entries in
            guard state.status == .inProgress else {
                entries[applicationId] = nil
                return
            }
            if entries.count >= capacity, entries[applicationId] == nil { entries.remove(at: entries.startIndex) }
            entries[applicationId] = Entry(stamp: stamp, state: state, timers: timers)
        }
    }

    var count: Int { entries.withLock { $0.count } }
}

/// Validates the orchestrator's emissions as the store writes them, with the body the core built
/// (no parsing), exactly as the relay would validate them: the same event (id, type, source, the
/// transition's time) for the same topic.
public struct EmissionChecker: Sendable {
    public let validator: EventValidator
    /// The `ce_source` the relay publishes under.
    public let source: String

    public init(validator: EventValidator, source: String) {
        self.validator = validator
        self.source = source
    }

    /// The subject validation gives the emission (`.some(nil)`: none), or `nil` when it does not
    /// validate (the relay validates it again and dead-letters it with the reason).
    func subject(of emission: Emission, data: Data, time: Date) -> String?? {
        let event = Event(id: emission.id, type: emission.type, source: source, subject: nil, time: time, data: data)
        guard let validated = try? validator.validate(event, topic: emission.topic, body: emission.body) else {
            return nil
        }
        return .some(validated.event.subject)
    }
}

/// How far the relay of one store published (in memory) and how much of that the store records
/// (`relay_position`): the relay moves the first, transactions that write anyway record it.
final class RelayPosition: Sendable {
    private struct State {
        var published: Int64 = 0
        var recorded: Int64 = 0
        var recordedAt = ContinuousClock.now
        /// Whether the store's recorded position was read (``unsent(limit:)``) since the store
        /// was opened: before, `published` does not know what an earlier run published.
        var known = false
    }
    private let state = Mutex(State())

    var published: Int64 { state.withLock { $0.published } }

    /// The last seq published, once the recorded position was read from the store; `nil` before
    /// (the relay then reads the store rather than trusting rows handed to it in memory).
    var publishedIfKnown: Int64? { state.withLock { $0.known ? $0.published : nil } }

    /// Takes in the position recorded in the store: what an earlier run (or this one) published
    /// and recorded.
    func read(recorded seq: Int64) {
        state.withLock {
            $0.published = max($0.published, seq)
            $0.recorded = max($0.recorded, seq)
            $0.known = true
        }
    }

    /// The published position when it is not recorded yet.
    var unrecorded: Int64? {
        state.withLock { $0.published > $0.recorded ? $0.published : nil }
    }

    func advance(published seq: Int64) {
        state.withLock { $0.published = max($0.published, seq) }
    }

    func recorded(_ seq: Int64) {
        state.withLock {
            $0.recorded = max($0.recorded, seq)
            $0.recordedAt = ContinuousClock.now
        }
    }

    /// The published position when it is unrecorded and `age` passed since the last recording or
    /// `rows` are unrecorded.
    func due(age: Duration, rows: Int64) -> Int64? {
        state.withLock { state in
            guard state.published > state.recorded else { return nil }
            guard ContinuousClock.now - state.recordedAt >= age || state.published - state.recorded >= rows else {
                return nil
            }
            return state.published
        }
    }
}

/// A store that cannot be used, with what to do.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
