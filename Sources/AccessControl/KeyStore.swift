import Audit
import Crypto
import EventModel
import EventSchemas
import Foundation
import GRDB
import Synchronization

/// An API key as the store keeps it: who holds it and with which grants, never the key itself.
public struct APIKeyRecord: Sendable, Hashable {
    /// The key's public identifier: the 16 hexadecimal characters after `owk_` in the key. Safe to
    /// show, log and audit; it names the key without giving it away.
    public var keyId: String
    public var principal: Principal
    public var created: Date
    /// When it was revoked; `nil` while it is active.
    public var revoked: Date?

    public var isActive: Bool { revoked == nil }
}

/// A key just created: the key itself, which is shown once and never stored, and its record.
public struct IssuedKey: Sendable {
    /// `owk_<key id>_<secret>`: what the holder presents.
    public var apiKey: String
    public var record: APIKeyRecord
}

/// Why the key store refuses something, with what to do.
public struct KeyStoreError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// The store's file does not exist (reading commands).
        case notFound = "not-found"
        /// A principal or its grants that do not go together (see ``KeyStore/problems(of:topicOwners:departments:)``).
        case invalidPrincipal = "invalid-principal"
        /// The name holds an active key already.
        case nameTaken = "name-taken"
        /// No key or principal by that name.
        case unknownKey = "unknown-key"
    }
    public var code: Code
    public var description: String
    public init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}

/// The API keys in one SQLite file (GRDB): each bound to one principal with its grants.
///
/// Decisions:
/// - **A key is `owk_` + a 16-hex-digit key id + `_` + 64 hex digits of secret** (8 and 32 bytes
///   from the system's cryptographic generator through swift-crypto's `SymmetricKey`). The prefix
///   makes a leaked key recognisable to secret scanners and to people; the key id finds the row
///   without comparing secrets in SQL, and is what lists, logs and the audit show.
/// - **Only SHA-256 of the key is stored.** A slow password hash (bcrypt, Argon2) protects
///   low-entropy passwords against guessing from a stolen hash; a key of 256 random bits cannot
///   be guessed however fast the hash, so a fast one costs nothing in safety and keeps each
///   request's check to microseconds. The hash is compared in constant time.
/// - **One active key per name.** To rotate a key, create it under a new name
///   (`tax-bureau-2026`), move the system over, then revoke the old one. A revoked key stays in
///   the store, so it is refused as `revoked-key` (not `unknown-key`) and the list shows its history.
/// - Creating and revoking append `grant.created` / `grant.revoked` to the audit log when one is
///   given; a creation the audit log could not record is undone (nobody saw the key yet).
/// - **A key found is remembered for ``cacheLifetime`` (default 1 s)**, so a gateway asking on
///   every request reads the file about once a second per key instead of thousands of times. A
///   key revoked through this store (any copy of it) is refused at once; one revoked by another
///   process (`onewindow grants revoke` beside a running gateway) is refused within the lifetime.
///   Only keys found (active or revoked) are remembered, by key id with the SHA-256 of the whole
///   key, never the key itself; an unknown key is looked up every time, so a key created by
///   another process is known at its first use.
public struct KeyStore: Sendable {
    /// The prefix of every key.
    public static let keyPrefix = "owk_"
    /// Where the CLI keeps it unless told otherwise.
    public static let defaultPath = "var/access.sqlite"
    /// How long a key found is remembered unless told otherwise: the longest a revocation by
    /// another process takes to reach this one.
    public static let defaultCacheLifetime: Duration = .seconds(1)

    public let pool: DatabasePool
    public let path: String
    /// How long a key found is remembered (`.zero`: never; every lookup reads the file).
    public let cacheLifetime: Duration
    /// The keys found lately, shared by every copy of this store.
    private let cache = LookupCache()

    /// Opens (creating when missing, folder included) the key store at `path`.
    /// - Parameter cacheLifetime: how long a key found is remembered (see the type's notes).
    public init(path: String, cacheLifetime: Duration = KeyStore.defaultCacheLifetime) throws {
        pool = try AuditLog.openPool(path: path, migrator: Self.migrator)
        self.path = path
        self.cacheLifetime = cacheLifetime
    }

    /// Opens an existing store, refusing a path with none (``KeyStoreError/Code/notFound``).
    public static func openExisting(path: String, cacheLifetime: Duration = KeyStore.defaultCacheLifetime) throws
        -> KeyStore
    {
        guard FileManager.default.fileExists(atPath: path) else {
            throw KeyStoreError(
                .notFound,
                "there is no key store at \(path); create a key with `onewindow grants create --store \(path)` first or name the store with --store")
        }
        return try KeyStore(path: path, cacheLifetime: cacheLifetime)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE keys (
                        key_id TEXT PRIMARY KEY, key_sha256 BLOB NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
                        subject TEXT, grants TEXT NOT NULL, created_ms INTEGER NOT NULL, revoked_ms INTEGER
                    );
                    CREATE UNIQUE INDEX keys_active_name ON keys (name) WHERE revoked_ms IS NULL;
                    CREATE INDEX keys_name ON keys (name);
                    """)
        }
        return migrator
    }

    // MARK: - Creating and revoking

    /// Creates a key for `principal`, after checking the principal (see
    /// ``problems(of:topicOwners:departments:)``).
    /// - Parameters:
    ///   - topicOwners: the catalog's topics and their owning departments, to check a department's
    ///     publish grants; `nil`: not checked.
    ///   - departments: the catalog's department codes, to check a department's subject.
    ///   - audit: where `grant.created` is appended (by `actor`); `nil`: nowhere.
    /// - Returns: the key (print it once: it cannot be shown again) and its record.
    /// - Throws: ``KeyStoreError`` (`invalidPrincipal`, `nameTaken`); the audit log's error, in which
    ///   case no key was created.
    public func create(
        _ principal: Principal, topicOwners: [String: String]? = nil, departments: Set<String>? = nil,
        audit: AuditLog? = nil, actor: String = "unknown", now: Date = Date()
    ) async throws -> IssuedKey {
        let problems = Self.problems(of: principal, topicOwners: topicOwners, departments: departments)
        guard problems.isEmpty else {
            throw KeyStoreError(
                .invalidPrincipal, "cannot create a key for \(principal.name): " + problems.joined(separator: "; "))
        }
        let keyId = Self.hex(SymmetricKey(size: SymmetricKeySize(bitCount: 64)))
        let secret = Self.hex(SymmetricKey(size: .bits256))
        let apiKey = Self.keyPrefix + keyId + "_" + secret
        let digest = Data(SHA256.hash(data: Data(apiKey.utf8)))
        let milliseconds = Int64((now.timeIntervalSince1970 * 1000).rounded())
        let record = APIKeyRecord(
            keyId: keyId, principal: principal, created: Date(timeIntervalSince1970: Double(milliseconds) / 1000),
            revoked: nil)
        try await pool.write { db in
            if try Bool.fetchOne(
                db, sql: "SELECT 1 FROM keys WHERE name = ? AND revoked_ms IS NULL", arguments: [principal.name]) == true
            {
                throw KeyStoreError(
                    .nameTaken,
                    "\(principal.name) holds an active key already; revoke it first (onewindow grants revoke \(principal.name)) or create the new key under another name, e.g. \(principal.name)-2")
            }
            try db.execute(
                sql: """
                    INSERT INTO keys (key_id, key_sha256, name, kind, subject, grants, created_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    keyId, digest, principal.name, principal.kind.rawValue, principal.subject,
                    principal.grants.map(\.description).joined(separator: "\n"), milliseconds,
                ])
        }
        if let audit {
            do {
                try await audit.append(
                    actor: actor, action: .grantCreated, subject: principal.name,
                    details: Self.auditDetails(record))
            } catch {
                // Nobody has seen the key: undo it rather than leave a key the audit log never saw.
                _ = try? await pool.write { db in
                    try db.execute(sql: "DELETE FROM keys WHERE key_id = ?", arguments: [keyId])
                }
                throw error
            }
        }
        return IssuedKey(apiKey: apiKey, record: record)
    }

    /// Revokes the active key of the principal named `nameOrKeyId`, or the key with that key id.
    /// - Returns: the keys revoked (with their revocation time).
    /// - Throws: ``KeyStoreError/Code/unknownKey`` when no active key has that name or id; the audit
    ///   log's error after the key was revoked (the revocation stands: refusing access matters more
    ///   than the record of it, and the error says so).
    @discardableResult
    public func revoke(_ nameOrKeyId: String, audit: AuditLog? = nil, actor: String = "unknown", now: Date = Date())
        async throws -> [APIKeyRecord]
    {
        let milliseconds = Int64((now.timeIntervalSince1970 * 1000).rounded())
        let revoked: [APIKeyRecord] = try await pool.write { db in
            let rows = try Row.fetchAll(
                db, sql: "SELECT * FROM keys WHERE (name = ? OR key_id = ?) AND revoked_ms IS NULL",
                arguments: [nameOrKeyId, nameOrKeyId])
            guard !rows.isEmpty else {
                let known = try Bool.fetchOne(
                    db, sql: "SELECT 1 FROM keys WHERE name = ? OR key_id = ?", arguments: [nameOrKeyId, nameOrKeyId])
                throw KeyStoreError(
                    .unknownKey,
                    known == true
                        ? "\(nameOrKeyId)'s keys are revoked already (onewindow grants list shows them)"
                        : "no key or principal named \(nameOrKeyId) in \(path) (onewindow grants list names them)")
            }
            try db.execute(
                sql: "UPDATE keys SET revoked_ms = ? WHERE (name = ? OR key_id = ?) AND revoked_ms IS NULL",
                arguments: [milliseconds, nameOrKeyId, nameOrKeyId])
            return try rows.map { row in
                var record = try Self.record(row)
                record.revoked = Date(timeIntervalSince1970: Double(milliseconds) / 1000)
                return record
            }
        }
        // After the commit: a lookup that read the key active before it cannot remember it now
        // (its generation is gone), and every later lookup reads the revocation.
        cache.forgetAll()
        if let audit {
            for record in revoked {
                do {
                    try await audit.append(
                        actor: actor, action: .grantRevoked, subject: record.principal.name,
                        details: Self.auditDetails(record))
                } catch {
                    throw AuditLogError(
                        "key \(record.keyId) of \(record.principal.name) IS revoked, but the audit log \(audit.path) could not record it: \(error)")
                }
            }
        }
        return revoked
    }

    static func auditDetails(_ record: APIKeyRecord) -> [String: String] {
        var details = [
            "keyId": record.keyId, "kind": record.principal.kind.rawValue,
            "grants": record.principal.grants.map(\.description).joined(separator: " "),
        ]
        if let subject = record.principal.subject { details["subject"] = Masking.subject(subject) }
        return details
    }

    // MARK: - Reading

    /// Every key, active and revoked, by name then creation.
    public func list() async throws -> [APIKeyRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM keys ORDER BY name, created_ms").map(Self.record)
        }
    }

    /// What a presented key is.
    public enum Lookup: Sendable, Hashable {
        /// Not a key of this store (malformed, unknown id, or a secret that does not match).
        case unknown
        case revoked(APIKeyRecord)
        case active(APIKeyRecord)
    }

    /// Looks a presented key up: by its key id, then the SHA-256 of the whole key compared in
    /// constant time with the stored one. A key found within ``cacheLifetime`` is answered from
    /// memory (see the type's notes).
    public func lookup(apiKey: String) async throws -> Lookup {
        guard let keyId = Self.keyId(of: apiKey) else { return .unknown }
        let digest = Array(SHA256.hash(data: Data(apiKey.utf8)))
        guard cacheLifetime > .zero else { return try await read(keyId: keyId, digest: digest) }
        let now = ContinuousClock.now
        switch cache.lookup(keyId: keyId, digest: digest, now: now) {
        case .found(let lookup): return lookup
        case .wrongSecret: return .unknown
        case .missing:
            let generation = cache.generation
            let lookup = try await read(keyId: keyId, digest: digest)
            switch lookup {
            case .active(let record), .revoked(let record):
                cache.remember(
                    keyId: keyId, digest: digest, record: record, until: now.advanced(by: cacheLifetime),
                    ifStill: generation)
            case .unknown: break
            }
            return lookup
        }
    }

    /// The key `keyId` as the file holds it, checked against the presented key's digest.
    private func read(keyId: String, digest: [UInt8]) async throws -> Lookup {
        try await pool.read { db in
            // A cached statement: every request of the gateway asks, and preparing anew each time
            // (with GRDB's authorizer) was the larger part of a lookup.
            let statement = try db.cachedStatement(sql: "SELECT * FROM keys WHERE key_id = ?")
            guard let row = try Row.fetchOne(statement, arguments: [keyId]) else {
                return .unknown
            }
            let stored: Data = row["key_sha256"]
            guard Self.constantTimeEqual(Array(stored), digest) else { return .unknown }
            let record = try Self.record(row)
            return record.isActive ? .active(record) : .revoked(record)
        }
    }

    /// The key id of a well-formed key (`owk_` + 16 hex + `_` + 64 hex), else `nil`.
    public static func keyId(of apiKey: String) -> String? {
        let utf8 = Array(apiKey.utf8)
        let prefix = Array(keyPrefix.utf8)
        guard utf8.count == prefix.count + 16 + 1 + 64, Array(utf8.prefix(prefix.count)) == prefix,
            utf8[prefix.count + 16] == UInt8(ascii: "_")
        else { return nil }
        let isHex: (UInt8) -> Bool = { (48...57).contains($0) || (97...102).contains($0) }
        let id = utf8[prefix.count..<(prefix.count + 16)]
        guard id.allSatisfy(isHex), utf8[(prefix.count + 17)...].allSatisfy(isHex) else { return nil }
        return String(decoding: id, as: UTF8.self)
    }

    /// Compares two byte strings in time that depends on their length only.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    static func record(_ row: Row) throws -> APIKeyRecord {
        let grantsText: String = row["grants"]
        let grants = try grantsText.split(separator: "\n").map { try Grant(parsing: String($0)) }
        let kindText: String = row["kind"]
        guard let kind = Principal.Kind(rawValue: kindText) else {
            throw KeyStoreError(.invalidPrincipal, "key \(row["key_id"] as String) has an unknown kind '\(kindText)'")
        }
        let revoked: Int64? = row["revoked_ms"]
        return APIKeyRecord(
            keyId: row["key_id"],
            principal: Principal(name: row["name"], kind: kind, subject: row["subject"], grants: grants),
            created: Date(timeIntervalSince1970: Double(row["created_ms"] as Int64) / 1000),
            revoked: revoked.map { Date(timeIntervalSince1970: Double($0) / 1000) })
    }

    static func hex(_ key: SymmetricKey) -> String {
        key.withUnsafeBytes { bytes in
            let digits = Array("0123456789abcdef".utf8)
            var text: [UInt8] = []
            for byte in bytes {
                text.append(digits[Int(byte >> 4)])
                text.append(digits[Int(byte & 0xF)])
            }
            return String(decoding: text, as: UTF8.self)
        }
    }

    // MARK: - Checking a principal

    /// What is wrong with a principal, each as a sentence (empty: nothing).
    ///
    /// | kind       | subject                                  | grants it may hold |
    /// |------------|------------------------------------------|--------------------|
    /// | department | its department code (required)           | `publish:`, `read:`, `personal-data` |
    /// | downstream | none                                     | `read:`, `submit:`, `progress`, `personal-data` |
    /// | applicant  | a resident ID or credit code (required)  | none: it reads and submits its own applications by its subject |
    /// | operator   | none                                     | all but `publish:` |
    ///
    /// With `topicOwners`, each `publish:` pattern of a department must match at least one topic and
    /// only topics that department owns (a department publishes only its own topics).
    public static func problems(
        of principal: Principal, topicOwners: [String: String]? = nil, departments: Set<String>? = nil
    ) -> [String] {
        var problems: [String] = []
        let nameCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if principal.name.count < 2 || principal.name.count > 64 || !principal.name.allSatisfy(nameCharacters.contains) {
            problems.append(
                "the name '\(principal.name)' must be 2 to 64 letters, digits, '.', '_' or '-' (e.g. tax-bureau, ops-li-wei)")
        }
        let kind = principal.kind
        switch kind {
        case .department:
            if let subject = principal.subject {
                if let departments, !departments.contains(subject) {
                    problems.append(
                        "'\(subject)' is not a department of the catalog (\(departments.sorted().joined(separator: ", ")))")
                }
            } else {
                problems.append("a department key needs --subject with its department code (e.g. tax)")
            }
        case .applicant:
            if let subject = principal.subject {
                if ResidentIDNumber.problem(in: subject) != nil, UnifiedSocialCreditCode.problem(in: subject) != nil {
                    problems.append(
                        "an applicant's subject must be a resident ID number or a unified social credit code; '\(Masking.subject(subject))' is neither (\(ResidentIDNumber.problem(in: subject) ?? ""))")
                }
            } else {
                problems.append("an applicant key needs --subject with the applicant's resident ID number or credit code")
            }
        case .downstream, .operator:
            if principal.subject != nil {
                problems.append("a \(kind.rawValue) key is bound to no subject; leave out --subject")
            }
        }
        for grant in principal.grants {
            let allowed: Bool
            switch (grant, kind) {
            case (_, .applicant): allowed = false
            case (.publish, .department): allowed = true
            case (.publish, _): allowed = false
            case (.replay, .operator), (.deadLetters, .operator): allowed = true
            case (.replay, _), (.deadLetters, _): allowed = false
            case (.submit, .department), (.progress, .department): allowed = false
            default: allowed = true
            }
            if !allowed {
                problems.append(
                    kind == .applicant
                        ? "an applicant holds no grants (it reads and submits its own applications by its subject); remove \(grant)"
                        : "a \(kind.rawValue) key cannot hold \(grant) (\(Self.whoMayHold(grant)))")
            }
            if case .publish(let pattern) = grant, kind == .department, let topicOwners, let subject = principal.subject {
                let matched = topicOwners.filter { TopicPattern.matches(pattern, $0.key) }
                if matched.isEmpty {
                    problems.append("\(grant) matches no topic of the catalog")
                }
                let foreign = matched.filter { $0.value != subject }.keys.sorted()
                if !foreign.isEmpty {
                    problems.append(
                        "\(grant) would let \(subject) publish to topics of other departments (\(foreign.prefix(3).joined(separator: ", "))\(foreign.count > 3 ? ", …" : "")); name only \(subject)'s topics, e.g. publish:approval.\(subject).decided")
                }
            }
        }
        return problems
    }

    static func whoMayHold(_ grant: Grant) -> String {
        switch grant {
        case .publish: "only departments publish"
        case .replay, .deadLetters: "only operators replay and handle dead letters"
        case .submit, .progress: "the front desk is a downstream or operator key"
        default: "see onewindow grants create --help"
        }
    }
}

/// The keys a ``KeyStore`` found lately: by key id, the SHA-256 of the whole key, the record and
/// until when it may be answered from memory.
final class LookupCache: Sendable {
    struct Entry {
        var digest: [UInt8]
        var record: APIKeyRecord
        var until: ContinuousClock.Instant
    }
    struct State {
        var entries: [String: Entry] = [:]
        /// Moves on at each ``forgetAll()``: a lookup that started before it does not remember.
        var generation = 0
    }
    enum Answer {
        case found(KeyStore.Lookup)
        /// The key id is known but the secret is not its: an unknown key.
        case wrongSecret
        case missing
    }
    /// The most keys remembered at once; past it the memory starts afresh (keys are few: one per
    /// department, downstream system, operator and applicant using the gateway at the moment).
    static let capacity = 10_000
    private let state = Mutex(State())

    var generation: Int { state.withLock { $0.generation } }

    func lookup(keyId: String, digest: [UInt8], now: ContinuousClock.Instant) -> Answer {
        guard let entry = state.withLock({ $0.entries[keyId] }), now < entry.until else { return .missing }
        guard KeyStore.constantTimeEqual(entry.digest, digest) else { return .wrongSecret }
        return .found(entry.record.isActive ? .active(entry.record) : .revoked(entry.record))
    }

    func remember(
        keyId: String, digest: [UInt8], record: APIKeyRecord, until: ContinuousClock.Instant, ifStill generation: Int
    ) {
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.entries.count >= Self.capacity { state.entries.removeAll(keepingCapacity: true) }
            state.entries[keyId] = Entry(digest: digest, record: record, until: until)
        }
    }

    func forgetAll() {
        state.withLock { state in
            state.entries.removeAll()
            state.generation += 1
        }
    }
}
