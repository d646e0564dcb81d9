import CivilTime
import Crypto
import EventSchemas
import Foundation
import GRDB
import SQLiteSupport

/// What an audit entry records. The hub's own actions are the static members; any other text is
/// accepted (a new command names its own), written `noun.verb` in lower case.
public struct AuditAction: RawRepresentable, Sendable, Hashable, Codable, ExpressibleByStringLiteral,
    CustomStringConvertible
{
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    /// An API key and its grants created (`onewindow grants create`); subject: the principal.
    public static let grantCreated: AuditAction = "grant.created"
    /// An API key revoked (`onewindow grants revoke`); subject: the principal.
    public static let grantRevoked: AuditAction = "grant.revoked"
    /// A request refused by the access policy (401 or 403); subject: what was attempted.
    public static let accessRefused: AuditAction = "access.refused"
    /// Consumer groups moved (`onewindow replay --execute`); subject: the group.
    public static let replay: AuditAction = "replay"
    /// Dead letters sent back to their topics (`onewindow dlq redrive`); subject: the filter or id.
    public static let deadLetterRedrive: AuditAction = "dlq.redrive"
    /// Dead letters purged (`onewindow dlq purge`); subject: the filter.
    public static let deadLetterPurge: AuditAction = "dlq.purge"
    /// A department's decision on an approval request (recorded by `onewindow audit record`);
    /// subject: the application id.
    public static let approvalDecided: AuditAction = "approval.decided"
}

/// One entry of the audit log.
public struct AuditEntry: Sendable, Hashable {
    /// 1, 2, 3… in the order of appending, without gaps.
    public var sequence: Int64
    /// When it was appended (millisecond precision: what the hash covers).
    public var time: Date
    /// Who acted: a principal's name, an operator (`ops-li-wei`), a service (`audit-recorder`),
    /// `anonymous` for a request without a key.
    public var actor: String
    public var action: AuditAction
    /// What it was done to: a principal, a topic, a consumer group, an application id.
    public var subject: String
    /// Everything else, as canonical JSON text (members sorted, no spaces).
    public var details: String
    /// The event this entry records, when it records one (an approval decision's CloudEvents id);
    /// an event id is recorded at most once.
    public var eventId: String?
    /// The previous entry's ``hash`` (64 zeros for the first entry).
    public var previousHash: String
    /// SHA-256, in lower-case hex, of ``canonicalEncoding``.
    public var hash: String

    /// The details parsed (an object).
    public var detailsValue: JSONValue { (try? JSONValue.parse(Data(details.utf8))) ?? .object([:]) }

    /// The bytes the hash covers: a version tag, then time (milliseconds since 1970, decimal),
    /// actor, action, subject, details, event id (empty when none) and previous hash, each as its
    /// UTF-8 byte count (8 bytes, big-endian) followed by its bytes. Length prefixes make the
    /// encoding unambiguous (no separator a field could contain); the sequence number is not
    /// covered, the chain is what fixes the order (see ``AuditLog/verify()``).
    public var canonicalEncoding: Data {
        var bytes = Data()
        let fields = [
            AuditLog.formatVersion, String(Int64((time.timeIntervalSince1970 * 1000).rounded())), actor,
            action.rawValue, subject, details, eventId ?? "", previousHash,
        ]
        for field in fields {
            let utf8 = Array(field.utf8)
            withUnsafeBytes(of: UInt64(utf8.count).bigEndian) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: utf8)
        }
        return bytes
    }

    /// The hash this entry's fields give (equal to ``hash`` unless the entry was edited).
    public var computedHash: String { AuditLog.hex(SHA256.hash(data: canonicalEncoding)) }
}

/// What ``AuditLog/verify()`` found.
public enum AuditVerification: Sendable, Hashable, CustomStringConvertible {
    /// Every entry's hash matches its contents and each links to the one before.
    case intact(entries: Int64, head: String)
    /// The first entry whose contents no longer give its hash.
    case edited(sequence: Int64)
    /// Entry `sequence` does not follow the entry before it, and the hash it names is nowhere in
    /// the log: an entry between `after` (the entry now before it, `nil` at the start) and it was
    /// removed (or the one before it edited and rehashed).
    case removed(after: Int64?, sequence: Int64)
    /// Entry `sequence` names as its predecessor the entry now at `predecessorNow`, which comes
    /// later: entries were swapped or moved.
    case reordered(sequence: Int64, predecessorNow: Int64)
    /// The chain is whole but the numbering has a gap or a repeat at `sequence` (renumbered).
    case renumbered(sequence: Int64, expected: Int64)

    public var isIntact: Bool { if case .intact = self { true } else { false } }

    public var description: String {
        switch self {
        case .intact(let entries, let head):
            return "intact: \(entries) entr\(entries == 1 ? "y" : "ies"), head \(head)"
        case .edited(let sequence):
            return "entry \(sequence) was edited: its contents no longer give the hash it was appended with"
        case .removed(let after, let sequence):
            let before = after.map { "between entry \($0) and entry \(sequence)" } ?? "before entry \(sequence) (the start of the log)"
            return "an entry was removed \(before): entry \(sequence) names a previous entry that is not in the log (or entry \(after.map { String($0) } ?? "before it") was edited and rehashed)"
        case .reordered(let sequence, let predecessorNow):
            return "entry \(sequence) is out of order: the entry it was appended after is now entry \(predecessorNow)"
        case .renumbered(let sequence, let expected):
            return "entry numbered \(sequence) should be numbered \(expected): the entries were renumbered"
        }
    }
}

/// A problem with the audit log's file or an append.
public struct AuditLogError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The hash-chained, append-only audit log: who did what to what, when, in one SQLite file (GRDB).
///
/// Each entry carries the SHA-256 of the entry before it and its own SHA-256 over a canonical
/// encoding of its fields (``AuditEntry/canonicalEncoding``), so editing, removing or reordering
/// an entry breaks the chain at that entry, and ``verify()`` names it.
///
/// Decisions:
/// - **SQLite rather than a flat file**: the gateway, `onewindow audit record`, `grants` and the
///   operator commands append from several processes at once; SQLite's write lock (each append
///   is one `BEGIN IMMEDIATE` transaction reading the last hash and inserting the next entry)
///   gives them one order without a lock file of our own, and `audit list` filters by indexes.
///   Tamper evidence comes from the chain, not from the storage.
/// - **Append-only by triggers**: `UPDATE` and `DELETE` on the entries abort, which stops an
///   accident; someone who drops the triggers can edit the file, and ``verify()`` then names the
///   entry. Removing the *last* entries leaves a shorter, consistent chain: compare the head
///   `verify` prints with one written down earlier (`onewindow audit verify --head SEQ:HASH`).
/// - **Exactly once by event id**: an entry may carry the id of the event it records; a second
///   append with the same id changes nothing (``append(actor:action:subject:details:eventId:)``
///   returns `nil`), so a redelivered decision is recorded once.
///
/// ```swift
/// let audit = try AuditLog(path: "var/audit.sqlite")
/// try await audit.append(actor: "ops-li-wei", action: .replay, subject: "onewindow.orchestrator",
///     details: ["topics": "application.restaurant.submitted", "to": "2026-03-02T09:00:00+08:00"])
/// ```
public struct AuditLog: Sendable {
    /// The tag the canonical encoding starts with.
    public static let formatVersion = "onewindow-audit-v1"
    /// The previous hash of the first entry.
    public static let genesisHash = String(repeating: "0", count: 64)
    /// Where the CLI keeps it unless told otherwise.
    public static let defaultPath = "var/audit.sqlite"

    public let pool: DatabasePool
    public let path: String
    let clock: any WallClock

    /// Opens (creating when missing, folder included) the audit log at `path`.
    /// - Parameter clock: what the entries' times are read from. Default: the system clock.
    /// - Throws: GRDB's error when the file cannot be opened or is not an audit log.
    public init(path: String, clock: any WallClock = .system) throws {
        pool = try Self.openPool(path: path, migrator: Self.migrator)
        self.path = path
        self.clock = clock
    }

    /// Opens a store of several processes' (WAL, a 10 s busy timeout), creating its folder and file
    /// when missing, and migrates it. The audit log and the key store open their files this way.
    public static func openPool(path: String, migrator: DatabaseMigrator) throws -> DatabasePool {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        let pool = try DatabasePool(path: path, configuration: configuration)
        try migrator.migrateAmongProcesses(pool)
        return pool
    }

    /// Opens an existing audit log (the reading commands), refusing a path with none.
    public static func openExisting(path: String) throws -> AuditLog {
        guard FileManager.default.fileExists(atPath: path) else {
            throw AuditLogError("there is no audit log at \(path); name it with --audit (the default is \(defaultPath))")
        }
        return try AuditLog(path: path)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE entries (
                        seq INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, actor TEXT NOT NULL,
                        action TEXT NOT NULL, subject TEXT NOT NULL, details TEXT NOT NULL,
                        event_id TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
                    );
                    CREATE UNIQUE INDEX entries_event ON entries (event_id) WHERE event_id IS NOT NULL;
                    CREATE INDEX entries_action ON entries (action, seq);
                    CREATE INDEX entries_actor ON entries (actor, seq);
                    CREATE INDEX entries_subject ON entries (subject, seq);
                    CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
                        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: entries are never updated'); END;
                    CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
                        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: entries are never deleted'); END;
                    """)
        }
        return migrator
    }

    // MARK: - Appending

    /// One entry to append (``append(_:)`` writes several in one transaction).
    public struct Draft: Sendable, Hashable {
        public var actor: String
        public var action: AuditAction
        public var subject: String
        public var details: JSONValue
        public var eventId: String?

        /// - Parameter details: an object (anything else is wrapped as `{"value": …}`).
        public init(actor: String, action: AuditAction, subject: String, details: JSONValue = .object([:]), eventId: String? = nil) {
            self.actor = actor
            self.action = action
            self.subject = subject
            self.details = details
            self.eventId = eventId
        }
    }

    /// Appends one entry: who (`actor`) did what (`action`) to what (`subject`), with details.
    ///
    /// This is the call every part makes: `grants`, the access policy's refusals, replay, the
    /// dead-letter redrive and purge, and the decision recorder.
    /// - Parameters:
    ///   - details: text values, e.g. `["topics": "…", "records": "120"]`.
    ///   - eventId: the id of the event recorded, for exactly-once recording (see ``AuditLog``).
    /// - Returns: the entry, or `nil` when `eventId` was recorded already.
    /// - Throws: GRDB's error when the file cannot be written (nothing is appended).
    @discardableResult
    public func append(
        actor: String, action: AuditAction, subject: String, details: [String: String] = [:], eventId: String? = nil
    ) async throws -> AuditEntry? {
        try await append(
            [Draft(actor: actor, action: action, subject: subject, details: .object(JSONObject(details.mapValues { JSONValue.string($0) })), eventId: eventId)]
        ).first
    }

    /// Appends one entry with structured details (numbers, lists, objects).
    @discardableResult
    public func append(actor: String, action: AuditAction, subject: String, details: JSONValue, eventId: String? = nil)
        async throws -> AuditEntry?
    {
        try await append([Draft(actor: actor, action: action, subject: subject, details: details, eventId: eventId)]).first
    }

    /// Appends entries in order in one transaction (all or none); drafts whose event id is
    /// recorded already (or repeated within `drafts`) are skipped.
    /// - Returns: the entries appended.
    @discardableResult
    public func append(_ drafts: [Draft]) async throws -> [AuditEntry] {
        guard !drafts.isEmpty else { return [] }
        let now = clock.now()
        return try await pool.writeWithoutTransaction { db in
            var appended: [AuditEntry] = []
            try db.inTransaction(.immediate) {
                appended = try Self.append(drafts, at: now, db)
                return .commit
            }
            return appended
        }
    }

    /// Appends within the caller's transaction (which must be a write transaction of this log).
    static func append(_ drafts: [Draft], at now: Date, _ db: Database) throws -> [AuditEntry] {
        let last = try Row.fetchOne(db, sql: "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1")
        var sequence: Int64 = last?["seq"] ?? 0
        var previous: String = last?["hash"] ?? genesisHash
        let milliseconds = Int64((now.timeIntervalSince1970 * 1000).rounded())
        let time = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
        var appended: [AuditEntry] = []
        var seen = Set<String>()
        for draft in drafts {
            if let id = draft.eventId {
                guard seen.insert(id).inserted else { continue }
                if try Bool.fetchOne(db, sql: "SELECT 1 FROM entries WHERE event_id = ?", arguments: [id]) == true {
                    continue
                }
            }
            let details: JSONValue = if case .object = draft.details { draft.details } else { .object(["value": draft.details]) }
            sequence += 1
            var entry = AuditEntry(
                sequence: sequence, time: time, actor: draft.actor, action: draft.action, subject: draft.subject,
                details: String(decoding: details.serialized(), as: UTF8.self), eventId: draft.eventId,
                previousHash: previous, hash: "")
            entry.hash = entry.computedHash
            try db.execute(
                sql: """
                    INSERT INTO entries (seq, time_ms, actor, action, subject, details, event_id, prev_hash, hash)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    entry.sequence, milliseconds, entry.actor, entry.action.rawValue, entry.subject, entry.details,
                    entry.eventId, entry.previousHash, entry.hash,
                ])
            previous = entry.hash
            appended.append(entry)
        }
        return appended
    }

    // MARK: - Reading

    /// Which entries ``entries(matching:)`` returns; every filter set must hold.
    public struct Filter: Sendable, Hashable {
        public var action: String?
        public var actor: String?
        public var subject: String?
        /// Entries appended at or after.
        public var since: Date?
        /// Entries appended before.
        public var until: Date?
        /// At most this many, the latest ones (in sequence order). Default: all.
        public var limit: Int?
        public init(
            action: String? = nil, actor: String? = nil, subject: String? = nil, since: Date? = nil, until: Date? = nil,
            limit: Int? = nil
        ) {
            self.action = action
            self.actor = actor
            self.subject = subject
            self.since = since
            self.until = until
            self.limit = limit
        }
    }

    /// The entries matching `filter`, in sequence order.
    public func entries(matching filter: Filter = Filter()) async throws -> [AuditEntry] {
        var conditions: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let action = filter.action {
            if action.hasSuffix("*") {
                conditions.append("action LIKE ? ESCAPE '\\'")
                arguments.append(Self.likePrefix(String(action.dropLast())))
            } else {
                conditions.append("action = ?")
                arguments.append(action)
            }
        }
        if let actor = filter.actor {
            conditions.append("actor = ?")
            arguments.append(actor)
        }
        if let subject = filter.subject {
            conditions.append("subject = ?")
            arguments.append(subject)
        }
        if let since = filter.since {
            conditions.append("time_ms >= ?")
            arguments.append(Int64((since.timeIntervalSince1970 * 1000).rounded(.down)))
        }
        if let until = filter.until {
            conditions.append("time_ms < ?")
            arguments.append(Int64((until.timeIntervalSince1970 * 1000).rounded(.down)))
        }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let sql =
            if let limit = filter.limit {
                "SELECT * FROM (SELECT * FROM entries \(whereClause) ORDER BY seq DESC LIMIT \(max(0, limit))) ORDER BY seq"
            } else {
                "SELECT * FROM entries \(whereClause) ORDER BY seq"
            }
        let statementArguments = StatementArguments(arguments)
        return try await pool.read { db in
            try Row.fetchAll(db, sql: sql, arguments: statementArguments).map(Self.entry)
        }
    }

    /// Whether an entry records the event `id`.
    public func contains(eventId id: String) async throws -> Bool {
        try await pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM entries WHERE event_id = ?", arguments: [id]) == true
        }
    }

    static func likePrefix(_ prefix: String) -> String {
        prefix.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_") + "%"
    }

    static func entry(_ row: Row) -> AuditEntry {
        AuditEntry(
            sequence: row["seq"], time: Date(timeIntervalSince1970: Double(row["time_ms"] as Int64) / 1000),
            actor: row["actor"], action: AuditAction(rawValue: row["action"]), subject: row["subject"],
            details: row["details"], eventId: row["event_id"], previousHash: row["prev_hash"], hash: row["hash"])
    }

    // MARK: - Verifying

    /// Walks the whole log in sequence order and reports the first entry that breaks the chain.
    ///
    /// For each entry: its fields must give its hash (else ``AuditVerification/edited(sequence:)``);
    /// its previous hash must be the hash of the entry before it (else, when that hash belongs to
    /// an entry further on, ``AuditVerification/reordered(sequence:predecessorNow:)``, otherwise
    /// ``AuditVerification/removed(after:sequence:)``); and it must be numbered one more than the
    /// entry before it (``AuditVerification/renumbered(sequence:expected:)``). Reads in one
    /// snapshot, so appends meanwhile are not seen half-done.
    public func verify() async throws -> AuditVerification {
        try await pool.read { db in
            let hashes = try Dictionary(
                Row.fetchAll(db, sql: "SELECT hash, seq FROM entries").map { ($0["hash"] as String, $0["seq"] as Int64) },
                uniquingKeysWith: { first, _ in first })
            var previousHash = Self.genesisHash
            var previousSequence: Int64? = nil
            var count: Int64 = 0
            let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM entries ORDER BY seq")
            while let row = try cursor.next() {
                let entry = Self.entry(row)
                count += 1
                if entry.computedHash != entry.hash { return .edited(sequence: entry.sequence) }
                if entry.previousHash != previousHash {
                    if let now = hashes[entry.previousHash], now > entry.sequence {
                        return .reordered(sequence: entry.sequence, predecessorNow: now)
                    }
                    return .removed(after: previousSequence, sequence: entry.sequence)
                }
                let expected = (previousSequence ?? 0) + 1
                if entry.sequence != expected { return .renumbered(sequence: entry.sequence, expected: expected) }
                previousHash = entry.hash
                previousSequence = entry.sequence
            }
            return .intact(entries: count, head: previousHash)
        }
    }

    /// The hash of entry `sequence`, or `nil` when there is none (to check a head written down
    /// earlier is still in the log).
    public func hash(ofEntry sequence: Int64) async throws -> String? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT hash FROM entries WHERE seq = ?", arguments: [sequence])
        }
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = []
        for byte in digest {
            bytes.append(digits[Int(byte >> 4)])
            bytes.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
