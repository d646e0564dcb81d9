import Bus
import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import Logging
import Retrying
import SQLiteSupport

/// The outbox table a service writes its emissions to in the transaction that applies its inputs,
/// and the relay publishes from: the orchestrator's store and the citizen services' store share
/// its layout and these statements.
public enum OutboxTable {
    /// The table and its index of unsent rows (for a migration).
    public static let createSQL = """
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            partition INTEGER NOT NULL,
            topic TEXT NOT NULL,
            key TEXT,
            event_id TEXT NOT NULL,
            type TEXT NOT NULL,
            time_ms INTEGER NOT NULL,
            body BLOB NOT NULL,
            dead_letter TEXT,
            sent INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent = 0;
        """

    /// Writes one emission (not a dead letter) with the id the relay will publish it under.
    public static func insert(
        partition: Int, topic: String, key: String?, eventId: String, type: String, timeMilliseconds: Int64,
        body: Data, _ db: Database
    ) throws {
        try db.execute(
            sql: "INSERT INTO outbox (partition, topic, key, event_id, type, time_ms, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
            arguments: [partition, topic, key, eventId, type, timeMilliseconds, body])
    }

    /// The first unsent rows, in order (a store that marks rows with the `sent` flag).
    public static func unsent(limit: Int, _ db: Database) throws -> [OutboxRow] {
        try rows(
            db.cachedStatement(sql: "SELECT * FROM outbox WHERE sent = 0 ORDER BY seq LIMIT ?"), arguments: [limit])
    }

    /// The first rows after `seq`, in order (a store that keeps the relay's position instead of
    /// marking rows: the orchestrator's).
    public static func rows(after seq: Int64, limit: Int, _ db: Database) throws -> [OutboxRow] {
        try rows(
            db.cachedStatement(sql: "SELECT * FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?"),
            arguments: [seq, limit])
    }

    /// Reads the rows of `SELECT * FROM outbox …`, each column by its position, found once per
    /// statement (a lookup by name per row and column was a quarter of the relay's reading), from
    /// a cursor (no copy of each row). Stores without the `checked` and `subject` columns (the
    /// citizen services') read as unchecked.
    static func rows(_ statement: Statement, arguments: StatementArguments) throws -> [OutboxRow] {
        let names = statement.columnNames
        func column(_ name: String) throws -> Int {
            guard let index = names.firstIndex(of: name) else {
                throw StoreError("the outbox table has no column \(name): the store was not migrated")
            }
            return index
        }
        let seq = try column("seq"), partition = try column("partition"), topic = try column("topic")
        let key = try column("key"), eventId = try column("event_id"), type = try column("type")
        let time = try column("time_ms"), body = try column("body"), deadLetter = try column("dead_letter")
        let checked = names.firstIndex(of: "checked"), subject = names.firstIndex(of: "subject")
        return try Array(
            Row.fetchCursor(statement, arguments: arguments).map { row in
                let payload: DeadLetterPayload? = try (row[deadLetter] as String?).map {
                    try JSONDecoder().decode(DeadLetterPayload.self, from: Data($0.utf8))
                }
                let isChecked = checked.map { (row[$0] as Bool?) == true } ?? false
                return OutboxRow(
                    seq: row[seq], partition: row[partition], topic: row[topic], key: row[key], eventId: row[eventId],
                    type: row[type], timeMilliseconds: row[time], body: row[body], deadLetter: payload,
                    checkedSubject: isChecked ? String??.some(subject.flatMap { row[$0] as String? }) : nil)
            })
    }

    /// Marks rows sent, after the log confirmed them: one statement for the range from the first
    /// to the last of `seqs`, which ``unsent(limit:_:)`` read as a prefix of the unsent rows (rows
    /// are numbered in commit order by the one writer, so no unsent row inside the range was missed).
    public static func markSent(_ seqs: [Int64], _ db: Database) throws {
        guard let first = seqs.min(), let last = seqs.max() else { return }
        try db.execute(
            sql: "UPDATE outbox SET sent = 1 WHERE sent = 0 AND seq BETWEEN ? AND ?", arguments: [first, last])
    }
}

/// A store with an ``OutboxTable`` in its database.
public protocol OutboxStore: Sendable {
    var pool: DatabasePool { get }
    /// The store's file, named in errors.
    var path: String { get }
    /// The last `seq` known to be on the bus: every row up to it is published. By default the
    /// rows before the first one not marked `sent`.
    func publishedThrough(_ db: Database) throws -> Int64
}

extension OutboxStore {
    public func publishedThrough(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(
            db,
            sql: "SELECT coalesce((SELECT min(seq) - 1 FROM outbox WHERE sent = 0), (SELECT max(seq) FROM outbox), 0)"
        ) ?? 0
    }

    /// The first unsent outbox rows, in order.
    public func unsent(limit: Int = 500) async throws -> [OutboxRow] {
        try await pool.read { db in try OutboxTable.unsent(limit: limit, db) }
    }

    /// Marks rows sent, after the log confirmed them.
    public func markSent(through seqs: [Int64]) async throws {
        guard !seqs.isEmpty else { return }
        try await pool.write { db in try OutboxTable.markSent(seqs, db) }
    }
}

/// Publishes outbox rows: emissions as CloudEvents with the ids the rows carry (validated; one
/// that fails goes to the dead-letter topic in its place, as `Publisher` does), dead letters in
/// the dead-letter record format with the refusal's code and reason.
public struct OutboxRelay: Sendable {
    /// Validates and names the dead-letter topic.
    public let publisher: Publisher
    /// The `ce_source` of the published events.
    public let source: String
    public let logger: Logger

    public init(publisher: Publisher, source: String, logger: Logger) {
        self.publisher = publisher
        self.source = source
        self.logger = logger
    }

    /// Appends the rows to the log in one call, in order. It does not mark them sent.
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
            if let subject = row.checkedSubject {
                // Validated when it was written (``OutboxRow/checkedSubject``): not parsed again.
                let event = Event(
                    id: row.eventId, type: row.type, source: source, subject: subject, time: time, data: row.body)
                records.append(CloudEventsBinding.record(for: event, topic: row.topic, key: row.key))
                continue
            }
            let event = Event(id: row.eventId, type: row.type, source: source, subject: nil, time: time, data: row.body)
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
        _ = try await publisher.log.append(records)
    }
}

/// Opens (creating the file and its folder when missing) a service's SQLite store with a 10 s
/// busy timeout, as the orchestrator's and the citizen services' stores do.
///
/// WAL with `synchronous = NORMAL`, as the embedded log: a commit is not synced to disk, the WAL
/// is at checkpoints. A committed transaction survives a crash of the process (SIGKILL, a fatal
/// error: the operating system has the written pages), which is what the exactly-once promise is
/// about; after a power loss or a crash of the operating system the last transactions before it
/// may be lost, never half-applied (the store stays consistent), and the consumer, whose offsets
/// (in the log, with the same setting) were committed after them, may then have moved past inputs
/// the store lost. SQLite's default (`FULL`) synced every commit, which held the one writer for the
/// length of a disk flush at each batch and each relay round.
///
/// The WAL is copied into the file by the returned ``WALCheckpointer``'s thread, not by the commit
/// that crosses 1,000 pages: the consumer's transaction and the relay's position do not wait for
/// those copies and their syncs. Keep the checkpointer as long as the pool (its thread ends when
/// it is released).
public func openStorePool(path: String) throws -> (pool: DatabasePool, checkpointer: WALCheckpointer) {
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let checkpointer = WALCheckpointer(path: path)
    var configuration = Configuration()
    configuration.busyMode = .timeout(10)
    configuration.prepareDatabase { db in
        try db.execute(sql: "PRAGMA synchronous = NORMAL")
        // 16 MiB of page cache a connection instead of SQLite's 2 MiB: the writer's working set
        // (the outbox's tail, the applied ids, the open cases) did not fit, and each miss is a read.
        try db.execute(sql: "PRAGMA cache_size = -16384")
        checkpointer.install(on: db)
    }
    return (try DatabasePool(path: path, configuration: configuration), checkpointer)
}

/// Publishes an outbox until cancelled (a fatal bus error ends it with that error): `relayOnce` publishes what is unsent and says how many
/// rows; when there were none the loop runs `whenIdle` (default: 20 ms of real time; the
/// orchestrator wakes as soon as its own transactions wrote rows). `everySecond` runs about once a
/// second (the orchestrator refreshes its gauges there).
public func relayUntilCancelled(
    retrier: Retrier, relayOnce: () async throws -> Int, everySecond: () async -> Void = {},
    whenIdle: () async -> Void = { try? await Task.sleep(for: .milliseconds(20)) }
) async throws {
    let realTime = ContinuousClock()
    var last = realTime.now.advanced(by: .seconds(-10))
    while !Task.isCancelled {
        let sent: Int
        do {
            sent = try await retrier.inLoop("relay", "publishing the outbox") { try await relayOnce() }
        } catch is CancellationError { break }
        if realTime.now - last > .seconds(1) {
            last = realTime.now
            await everySecond()
        }
        if sent == 0 { await whenIdle() }
    }
}

/// Fires stored timers until cancelled (a fatal bus or store error ends it with that error): `fire` fires those due on the assigned partitions (once
/// the consumer holds some), then the loop sleeps on `clock` until the `next` due instant or for
/// `idle` of its time, whichever comes first, and at least 50 ms of real time (an accelerated
/// clock's minute can be a millisecond).
public func fireTimersUntilCancelled(
    clock: any WallClock, assigned: Assignment, retrier: Retrier, idle: Duration,
    fire: (Set<Int>) async throws -> Void, next: () async -> Date?
) async throws {
    let realTime = ContinuousClock()
    while !Task.isCancelled {
        let started = realTime.now
        let partitions = assigned.get()
        if let partitions {
            do {
                try await retrier.inLoop("timers", "firing due timers") { try await fire(partitions) }
            } catch is CancellationError { break }
        }
        var wait = idle / .seconds(1)
        if let due = await next() { wait = min(wait, max(0.001, due.timeIntervalSince(clock.now()))) }
        if partitions == nil { wait = min(wait, 0.2) }
        do {
            try await clock.sleep(for: .milliseconds(Int64(wait * 1000)))
            let spent = realTime.now - started
            if spent < .milliseconds(50) { try await Task.sleep(for: .milliseconds(50) - spent) }
        } catch { break }
    }
}
