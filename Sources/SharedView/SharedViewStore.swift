import EventSchemas
import Foundation
import GRDB
import SQLiteSupport

/// One fact of the shared view: the latest event of one kind about one subject (and qualifier).
public struct ViewFact: Sendable, Hashable {
    /// The kind (`Rules/shared-view.yaml`), e.g. `household-record`.
    public var kind: String
    /// The resident ID or unified social credit code it is about.
    public var subject: String
    /// The value of the kind's `per` pointer (a scheme, a property); `""` for a kind without one.
    public var qualifier: String
    /// The CloudEvents id of the event the fact is: what the usage log names.
    public var eventId: String
    public var topic: String
    /// The department that published it (the topic's owner in the catalog).
    public var department: String
    /// The event's time (`ce_time`).
    public var time: Date
    /// The event's body.
    public var body: JSONValue

    public init(
        kind: String, subject: String, qualifier: String, eventId: String, topic: String, department: String,
        time: Date, body: JSONValue
    ) {
        self.kind = kind
        self.subject = subject
        self.qualifier = qualifier
        self.eventId = eventId
        self.topic = topic
        self.department = department
        self.time = time
        self.body = body
    }
}

/// One read of a subject's facts, as the usage log keeps it.
public struct DataUsage: Sendable, Hashable {
    /// Who read: a service (`orchestrator`, `data-comparison`) or an operator's name.
    public var reader: String
    /// Why: the application id, the rule, the operator's stated reason.
    public var reason: String
    public var at: Date
    /// The subject whose facts were read.
    public var subject: String
    /// The facts returned, by event id (empty when nothing was found).
    public var eventIds: [String]
    /// The kind asked for, `nil` for a read of all the subject's facts.
    public var kind: String?
}

/// The reads every consumer of the shared view goes through. Each call records who read which
/// facts and why in the usage log (the same database), in the transaction that reads them; a read
/// that finds nothing is recorded too (someone looked). Ingesting, rebuilding and listing the usage
/// log itself are not reads of anyone's data and are not recorded.
///
/// ```swift
/// let licence = try await view.latestFact(
///     kind: "business-licence", subject: "91440604MA4X7Q1C2D",
///     reader: "orchestrator", reason: "RA-2026-000001 materials")
/// ```
public protocol SharedDataReading: Sendable {
    /// The latest fact of `kind` about `subject` (of all its qualifiers, the latest by event time),
    /// or `nil` when the view holds none.
    /// - Parameters:
    ///   - reader: who reads (a service name or an operator).
    ///   - reason: why: the application id, the rule, the stated purpose.
    func latestFact(kind: String, subject: String, reader: String, reason: String) async throws -> ViewFact?
    /// Every fact the view holds about `subject`, by kind then qualifier.
    func facts(about subject: String, reader: String, reason: String) async throws -> [ViewFact]
}

/// Why the store refuses to open.
public struct ViewStoreError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The shared view in one SQLite file (GRDB, WAL): the facts, the usage log and the alerts raised by
/// comparisons (an outbox: a row is written with the comparison that found it, published, then
/// marked sent).
///
/// Decisions:
/// - The latest fact per (subject, kind, qualifier) is the one with the latest event time, ties
///   broken by the larger event id. Ingest is an upsert that replaces a fact only with a later one,
///   so applying an event twice, or the topics in another order (partitions interleave differently
///   on every read), gives the same view: a restart that re-reads a batch, and a rebuild, are safe.
/// - Facts are keyed `(subject, kind, qualifier)` (a `WITHOUT ROWID` primary key), so every query by
///   ID is a range of that key; the usage log is indexed by subject.
public struct SharedViewStore: Sendable {
    public let pool: DatabasePool
    public let path: String

    /// Opens (creating when missing) the store at `path` and migrates it.
    public init(path: String) throws {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        // WAL with synchronous=NORMAL: a commit survives a crash of the process (not of the machine's
        // power); every read writes a usage row, and a full sync per read would cost milliseconds.
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        pool = try DatabasePool(path: path, configuration: configuration)
        self.path = path
        try Self.migrator.migrateAmongProcesses(pool)
    }

    /// Opens an existing store (the reading commands), refusing a path with none.
    public static func openExisting(path: String) throws -> SharedViewStore {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ViewStoreError(
                "no shared view at \(path); start `onewindow view run --view \(path)` first or name it with --view")
        }
        return try SharedViewStore(path: path)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE facts (
                        subject TEXT NOT NULL, kind TEXT NOT NULL, qualifier TEXT NOT NULL,
                        event_id TEXT NOT NULL, topic TEXT NOT NULL, department TEXT NOT NULL,
                        time_ms INTEGER NOT NULL, body BLOB NOT NULL,
                        PRIMARY KEY (subject, kind, qualifier)
                    ) WITHOUT ROWID;
                    CREATE TABLE usage (
                        seq INTEGER PRIMARY KEY, subject TEXT NOT NULL, reader TEXT NOT NULL, reason TEXT NOT NULL,
                        at_ms INTEGER NOT NULL, kind TEXT, event_ids TEXT NOT NULL
                    );
                    CREATE INDEX usage_subject ON usage (subject, seq);
                    CREATE TABLE alerts (
                        alert_id TEXT PRIMARY KEY, subject TEXT NOT NULL, rule TEXT NOT NULL,
                        body BLOB NOT NULL, raised_ms INTEGER NOT NULL, sent INTEGER NOT NULL DEFAULT 0
                    );
                    CREATE INDEX alerts_unsent ON alerts (alert_id) WHERE sent = 0;
                    """)
        }
        return migrator
    }

    // MARK: - Ingest

    static let upsert = """
        INSERT INTO facts (subject, kind, qualifier, event_id, topic, department, time_ms, body)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (subject, kind, qualifier) DO UPDATE SET
            event_id = excluded.event_id, topic = excluded.topic, department = excluded.department,
            time_ms = excluded.time_ms, body = excluded.body
        WHERE excluded.time_ms > facts.time_ms
            OR (excluded.time_ms = facts.time_ms AND excluded.event_id > facts.event_id)
        """

    /// Upserts facts in one transaction (a later fact replaces an earlier one; an older or the same
    /// one changes nothing).
    /// - Returns: how many rows changed.
    @discardableResult
    public func upsert(_ facts: [IncomingFact]) async throws -> Int {
        guard !facts.isEmpty else { return 0 }
        return try await pool.write { db in try Self.upsert(facts, db) }
    }

    static func upsert(_ facts: [IncomingFact], _ db: Database) throws -> Int {
        let statement = try db.cachedStatement(sql: upsert)
        var changed = 0
        for fact in facts {
            try statement.execute(arguments: [
                fact.subject, fact.kind, fact.qualifier, fact.eventId, fact.topic, fact.department,
                fact.timeMilliseconds, fact.body,
            ])
            changed += db.changesCount
        }
        return changed
    }

    // MARK: - Reads (recorded)

    static let columns = "subject, kind, qualifier, event_id, topic, department, time_ms, body"

    static func fact(_ row: Row) throws -> ViewFact {
        let body: Data = row["body"]
        return ViewFact(
            kind: row["kind"], subject: row["subject"], qualifier: row["qualifier"], eventId: row["event_id"],
            topic: row["topic"], department: row["department"],
            time: Date(timeIntervalSince1970: Double(row["time_ms"] as Int64) / 1000), body: try JSONValue.parse(body))
    }

    /// The query ``latestFact(kind:subject:reader:reason:)`` runs (tests read its plan).
    public static let latestQuery = """
        SELECT \(columns) FROM facts WHERE subject = ? AND kind = ? ORDER BY time_ms DESC, event_id DESC LIMIT 1
        """
    /// The query ``facts(about:reader:reason:)`` runs.
    public static let aboutQuery = "SELECT \(columns) FROM facts WHERE subject = ? ORDER BY kind, qualifier"

    static func record(_ db: Database, subject: String, kind: String?, facts: [ViewFact], reader: String, reason: String, at: Date)
        throws
    {
        let ids = facts.map(\.eventId)
        let text = String(decoding: try JSONSerialization.data(withJSONObject: ids), as: UTF8.self)
        try db.execute(
            sql: "INSERT INTO usage (subject, reader, reason, at_ms, kind, event_ids) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [subject, reader, reason, Int64((at.timeIntervalSince1970 * 1000).rounded()), kind, text])
    }

    /// The usage log of one subject, oldest first.
    public func usage(of subject: String) async throws -> [DataUsage] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT reader, reason, at_ms, kind, event_ids FROM usage WHERE subject = ? ORDER BY seq",
                arguments: [subject]
            ).map { row in
                let ids = try JSONSerialization.jsonObject(with: Data((row["event_ids"] as String).utf8)) as? [String]
                return DataUsage(
                    reader: row["reader"], reason: row["reason"],
                    at: Date(timeIntervalSince1970: Double(row["at_ms"] as Int64) / 1000), subject: subject,
                    eventIds: ids ?? [], kind: row["kind"])
            }
        }
    }

    // MARK: - Unrecorded reads for the view's own machinery

    /// How many facts and distinct subjects the view holds (counts only: reads no one's data).
    public func counts() async throws -> (facts: Int, subjects: Int) {
        try await pool.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT count(*) FROM facts") ?? 0,
                try Int.fetchOne(db, sql: "SELECT count(DISTINCT subject) FROM facts") ?? 0
            )
        }
    }

    /// The identity of every fact, `subject kind qualifier event_id`, sorted: what a rebuild compares.
    static func identities(_ db: Database) throws -> [String] {
        try String.fetchAll(
            db,
            sql: "SELECT subject || ' ' || kind || ' ' || qualifier || ' ' || event_id FROM facts ORDER BY subject, kind, qualifier"
        )
    }

    /// How this view differs from `other`: each fact (by subject, kind, qualifier and event id) that
    /// one holds and the other does not, as `only in <path>: subject kind qualifier event-id`.
    /// Empty when they hold the same facts.
    public func differences(from other: SharedViewStore, limit: Int = 100) async throws -> [String] {
        let mine = Set(try await pool.read(Self.identities))
        let theirs = Set(try await other.pool.read(Self.identities))
        let onlyMine = mine.subtracting(theirs).sorted().map { "only in \(path): \($0)" }
        let onlyTheirs = theirs.subtracting(mine).sorted().map { "only in \(other.path): \($0)" }
        return Array((onlyMine + onlyTheirs).prefix(limit))
    }

    // MARK: - Alerts outbox

    /// Alerts written by comparisons and not yet published, oldest first.
    func unsentAlerts(limit: Int) async throws -> [(alertId: String, body: Data)] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT alert_id, body FROM alerts WHERE sent = 0 ORDER BY alert_id LIMIT ?",
                arguments: [limit]
            ).map { ($0["alert_id"], $0["body"]) }
        }
    }

    func markSent(_ ids: [String]) async throws {
        try await pool.write { db in
            for id in ids { try db.execute(sql: "UPDATE alerts SET sent = 1 WHERE alert_id = ?", arguments: [id]) }
        }
    }

    /// Every alert id comparisons have raised about a subject.
    public func alertIds(subject: String) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(
                db, sql: "SELECT alert_id FROM alerts WHERE subject = ? ORDER BY alert_id", arguments: [subject])
        }
    }
}

extension SharedViewStore: SharedDataReading {
    public func latestFact(kind: String, subject: String, reader: String, reason: String) async throws -> ViewFact? {
        try await pool.write { db in
            let fact = try Row.fetchOne(db, sql: Self.latestQuery, arguments: [subject, kind]).map(Self.fact)
            try Self.record(
                db, subject: subject, kind: kind, facts: fact.map { [$0] } ?? [], reader: reader, reason: reason,
                at: Date())
            return fact
        }
    }

    public func facts(about subject: String, reader: String, reason: String) async throws -> [ViewFact] {
        try await pool.write { db in
            let facts = try Row.fetchAll(db, sql: Self.aboutQuery, arguments: [subject]).map(Self.fact)
            try Self.record(db, subject: subject, kind: nil, facts: facts, reader: reader, reason: reason, at: Date())
            return facts
        }
    }
}

/// A fact about to be stored, as ingest builds it from a record.
public struct IncomingFact: Sendable, Hashable {
    public var subject: String
    public var kind: String
    public var qualifier: String
    public var eventId: String
    public var topic: String
    public var department: String
    public var timeMilliseconds: Int64
    /// The event's body bytes, as published.
    public var body: Data

    public init(
        subject: String, kind: String, qualifier: String, eventId: String, topic: String, department: String,
        timeMilliseconds: Int64, body: Data
    ) {
        self.subject = subject
        self.kind = kind
        self.qualifier = qualifier
        self.eventId = eventId
        self.topic = topic
        self.department = department
        self.timeMilliseconds = timeMilliseconds
        self.body = body
    }
}
