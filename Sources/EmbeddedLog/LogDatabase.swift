import EventLog
import Foundation
import GRDB
import Logging
import SQLiteSupport

/// The SQLite file behind an ``EmbeddedLog``: one `DatabasePool` in WAL mode and its migrations.
///
/// Tables:
/// - `topic`: name, partition count, cleanup policy (`delete` + `retention_ms`, or `compact`);
/// - `partition`: per partition, `next_offset` (the high-water mark) and `start_offset` (the low one);
/// - `record`: one row per record — topic, partition, offset, timestamp, key, value, headers — in a
///   rowid table (`id INTEGER PRIMARY KEY`) whose rows are appended at the end of its B-tree in
///   commit order, with the unique index `record_position` on `(topic_id, partition, offset)`: a
///   partition is read as a range of that index, each entry then looking its row up by `id`.
///   Nothing reads `id`; it only orders the rows as they were appended (migration `v3-record-rowid`,
///   below, explains why it replaced v1's table clustered by position);
/// - `group_offset`: a consumer group's committed next-offset per partition;
/// - `group_state`: each group's generation, bumped whenever its membership changes;
/// - `group_member`: the live members of each group, their subscribed topics, last heartbeat, the
///   generation whose assignment they have taken up (the rebalance barrier), and the name each
///   gave itself (`client_id`, added by migration `v2-member-client`).
///
/// Several processes may open the same file: every write is an `IMMEDIATE` transaction (the
/// offset counter is read and bumped under SQLite's write lock), readers see committed data only.
struct LogDatabase: Sendable {
    let writer: DatabasePool
    /// Copies the WAL into the file on a thread of its own instead of in the commit that crosses
    /// 1,000 pages (16 MiB with the log's pages): appends do not wait for those copies and their
    /// syncs. Stopped by ``EmbeddedLog/close()``.
    let checkpointer: WALCheckpointer

    /// Opens the file at `path`; when there is none, creates it (and its folder) if
    /// `createIfMissing`, else throws ``LogError`` `.logNotFound`. Migrates a log written by an
    /// older version, saying so on `logger` when that rewrites its records (see
    /// ``recordRowidMigration``).
    init(path: String, createIfMissing: Bool = true, logger: Logger) throws {
        let checkpointer = WALCheckpointer(path: path)
        self.checkpointer = checkpointer
        var configuration = Configuration()
        // Another process may hold the write lock for a batch: wait for it instead of failing.
        configuration.busyMode = .timeout(30)
        // GRDB opens write transactions as IMMEDIATE: the write lock is taken when the transaction
        // starts, so two processes never both read a partition's next offset and then fight over
        // upgrading to a writer.
        configuration.prepareDatabase { db in
            // WAL + NORMAL: a committed append survives a process crash (SIGKILL); after a power
            // loss the last transactions may be lost, as with Kafka's default of not fsyncing.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // 8 MiB of page cache a connection instead of SQLite's 2 MiB:
            // consumers reading recent records found them read from the file again.
            try db.execute(sql: "PRAGMA cache_size = -8192")
            checkpointer.install(on: db)
        }
        if !createIfMissing {
            try Self.checkExisting(path)
        } else {
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
            do {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            } catch {
                throw LogError(
                    .storage, "cannot create the folder of the embedded log: \(error.localizedDescription)",
                    remedy: "check the path and the permissions of its folders", subject: path)
            }
        }
        do {
            if !FileManager.default.fileExists(atPath: path) {
                // A new file gets 4 KiB pages. Most of the log's transactions are small (one
                // submission, a relay's or a department's few records, an offset commit), and each
                // writes every page it changed into the WAL whole: with 16 KiB pages, as files
                // made before 2026-11-30 have (they keep them), the orchestrator's latency run
                // wrote about 10,000 frames of 16 KiB a second, and the kernel's writeback of
                // them made appends wait (p99 at 500 applications/s 30.5-48.1 ms against
                // 24.7-26.0 with 4 KiB pages, BENCHMARKS.md; batched appends and consumption
                // within a few percent either way). The page size is fixed when the file is first
                // written and cannot change once the file is in WAL mode, so set it, then switch
                // to WAL, before the pool opens it.
                // With the busy timeout: another process may be creating the same file now.
                let creator = try DatabaseQueue(path: path, configuration: Self.waitingConfiguration)
                try creator.writeWithoutTransaction { db in
                    try db.execute(sql: "PRAGMA page_size = 4096")
                    try db.execute(sql: "PRAGMA journal_mode = WAL")
                }
                try creator.close()
            }
            writer = try DatabasePool(path: path, configuration: configuration)
            let rewritesRecords = try writer.read { db in
                try db.tableExists("record")
                    && !Self.migrator.appliedIdentifiers(db).contains(Self.recordRowidMigration)
            }
            let started = ContinuousClock.now
            if rewritesRecords {
                let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
                logger.notice(
                    "converting the embedded log's records to the append-ordered table (once, in one transaction)",
                    metadata: ["path": "\(path)", "file_bytes": "\(size.map(String.init) ?? "?")"])
            }
            try Self.migrator.migrateAmongProcesses(writer)
            if rewritesRecords {
                // The WAL holds about twice the records now: give that space back to the disk.
                _ = try? writer.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
                logger.notice(
                    "converted the embedded log's records to the append-ordered table",
                    metadata: ["path": "\(path)", "seconds": "\((ContinuousClock.now - started).seconds)"])
            }
        } catch let error as DatabaseError {
            throw Self.openFailure(error, path: path)
        }
    }

    /// Why the log at `path` could not be opened, naming the file and what to do.
    ///
    /// A read-only file or folder is the case a person meets most (a log copied from a backup, a
    /// volume mounted read-only, a log created by another user): SQLite answers `SQLITE_READONLY`
    /// when it opened the file for reading only, `SQLITE_CANTOPEN` when the folder refuses the
    /// `-wal` and `-shm` files it keeps beside it. Nothing was written in either case (opening
    /// writes only when it creates or migrates the file, in a transaction). Not retriable: the
    /// same open fails until someone changes the permissions; `onewindow` exits with status 74.
    static func openFailure(_ error: DatabaseError, path: String) -> LogError {
        let remedy: String
        switch error.resultCode {
        case .SQLITE_READONLY, .SQLITE_PERM, .SQLITE_AUTH:
            remedy = "the log file or its folder is read-only for this user: make both writable by the user that runs "
                + "onewindow (chmod u+w, or chown), then run it again; nothing was written"
        case .SQLITE_CANTOPEN:
            remedy = "SQLite cannot open the file or create its -wal and -shm files beside it (the file, its folder "
                + "or the file system read-only, or the folder missing): make the file and its folder readable and "
                + "writable by the user that runs onewindow, on a file system mounted read-write, then run it again"
        case .SQLITE_FULL:
            remedy = "the disk holding the log file is full: free space there, then run it again; nothing was written"
        case .SQLITE_BUSY:
            remedy = "another process held the log's write lock for longer than the 30 s this one waits (a long "
                + "migration or append): run it again once that process has finished its work; nothing was written"
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            remedy = "the file is damaged or not a SQLite file: check the path, or restore the log from a backup"
        default:
            remedy = "check that the path is readable and writable and is a OneWindow log file"
        }
        return LogError(
            .storage, "cannot open the embedded log: \(error.message ?? error.description)", remedy: remedy,
            subject: path, backendName: "SQLITE_\(error.resultCode)",
            isRetriable: error.resultCode == .SQLITE_FULL || error.resultCode == .SQLITE_BUSY)
    }

    /// A connection for a moment's work on the file outside the pool (creating it, checking it is
    /// a log), waiting as the pool does when another process holds a lock. Without the wait,
    /// such a connection failed at once with `SQLITE_BUSY` when it met the lock that the last
    /// connection to a WAL file takes while closing it (it copies the WAL into the file and
    /// deletes it): two `onewindow publish` started together on one log, each checking the file
    /// before opening its pool, made one of them exit 75, "database is locked".
    private static var waitingConfiguration: Configuration {
        var configuration = Configuration()
        configuration.busyMode = .timeout(30)
        return configuration
    }

    /// Refuses a path where there is no OneWindow log, without creating or changing anything
    /// there (a department's database at a mistyped path is left as it is).
    private static func checkExisting(_ path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
            throw LogError(
                .logNotFound, "there is no embedded log at \(absolute)",
                remedy: "check the path (--bus embedded:PATH or ONEWINDOW_BUS), or create the log and its topics "
                    + "with `onewindow topics apply --bus embedded:\(path)`",
                subject: nil)
        }
        // Opened read-write (a read-only connection cannot open a WAL file whose -shm is missing)
        // but only read: nothing in the file changes.
        let isLog: Bool
        do {
            let probe = try DatabaseQueue(path: path, configuration: waitingConfiguration)
            defer { try? probe.close() }
            isLog = try probe.read { db in try db.tableExists("topic") && db.tableExists("record") }
        } catch let error as DatabaseError {
            throw openFailure(error, path: path)
        }
        guard isLog else {
            throw LogError(
                .storage, "the file is not a OneWindow log (it has no topic and record tables)",
                remedy: "check the path; a new log is created with `onewindow topics apply`", subject: path)
        }
    }

    /// The migration that moved the records from v1's `WITHOUT ROWID` table clustered by
    /// `(topic_id, partition, offset)` into a rowid table appended in order, with a unique index
    /// on the position.
    ///
    /// Why: the partitions' appends interleave, so each insert into the clustered table landed in
    /// the middle of its B-tree: page splits, half-full pages, and whole rows (300 B to 64 KiB, where
    /// SQLite advises `WITHOUT ROWID` only for rows under a twentieth of a page) moved when pages
    /// were balanced. Appending at the end of a rowid table plus one small index entry cost about
    /// 35–45 % less CPU per record (300 B–3 KB records, 12 partitions interleaved, batches of 100);
    /// in the flood benchmark a refused event (1 KB appended) went from 26.5 to 21.8 µs of CPU.
    /// Reading pays part of it back: a record read is an index entry plus a look-up of its row by
    /// `id`, and a partition's rows share their pages with the other partitions' appended at the
    /// same time. A consumer reading what was just appended pays about 0.2–0.3 µs more a record.
    /// One catching up on a long backlog (a replay, a rebuild) paid about 1.3 µs more when each
    /// append's records were stored in the order given (6 partitions interleaved record by
    /// record, 700 B records, Python's sqlite3): the benchmark's catch-up consume of 200,000
    /// records went from about 340,000 to 270,000 records/s. An append therefore stores its
    /// records partition by partition (``EmbeddedLog``'s append), so a partition's records of one
    /// append are neighbours: the same catch-up then ran at about 330,000 records/s (medians of 3
    /// noisy runs each; appends of 1,000 records over 6 partitions).
    ///
    /// What it costs a log that has records: it runs once, at the first open by a version that
    /// has it, in one write transaction that copies every record into the new table (in position
    /// order, so the copy and the index are built by appending) and then drops the old one. A log
    /// file of 670 MB (500,000 records of 1 KB in 12 partitions) took 10 s (9 s of CPU, most of it
    /// writing) on this project's 2-core machine when idle: count about 15 s a gigabyte, more on a
    /// loaded machine or a slow disk. While it runs, the log's other processes wait for SQLite's
    /// write lock (up to the 30 s busy timeout, after which their open or append fails as
    /// retriable: start them again), and readers see the old table until it commits. It needs
    /// free disk of about three times the log file: the WAL grows to about twice it during the
    /// transaction (truncated again when the migration is done, if no other process is reading),
    /// and the file to about twice it, because the old table's pages are only marked free: later
    /// appends reuse them, so the file does not grow again until they are filled (`VACUUM`, with
    /// every process stopped, gives the space back at once). A crash or a full disk during it
    /// rolls it back: the log stays as it was, and the next open tries again. A new log runs it
    /// on its empty table.
    static let recordRowidMigration = "v3-record-rowid"

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE topic (
                        id INTEGER PRIMARY KEY,
                        name TEXT NOT NULL UNIQUE,
                        partitions INTEGER NOT NULL CHECK (partitions > 0),
                        cleanup TEXT NOT NULL CHECK (cleanup IN ('delete', 'compact')),
                        retention_ms INTEGER,
                        created_ms INTEGER NOT NULL
                    );
                    CREATE TABLE partition (
                        topic_id INTEGER NOT NULL REFERENCES topic(id),
                        partition INTEGER NOT NULL,
                        next_offset INTEGER NOT NULL DEFAULT 0,
                        start_offset INTEGER NOT NULL DEFAULT 0,
                        PRIMARY KEY (topic_id, partition)
                    ) WITHOUT ROWID;
                    CREATE TABLE record (
                        topic_id INTEGER NOT NULL,
                        partition INTEGER NOT NULL,
                        offset INTEGER NOT NULL,
                        timestamp_ms INTEGER NOT NULL,
                        key BLOB,
                        value BLOB,
                        headers BLOB NOT NULL,
                        PRIMARY KEY (topic_id, partition, offset)
                    ) WITHOUT ROWID;
                    CREATE TABLE group_offset (
                        group_id TEXT NOT NULL,
                        topic_id INTEGER NOT NULL,
                        partition INTEGER NOT NULL,
                        offset INTEGER NOT NULL,
                        committed_ms INTEGER NOT NULL,
                        PRIMARY KEY (group_id, topic_id, partition)
                    ) WITHOUT ROWID;
                    CREATE TABLE group_state (
                        group_id TEXT PRIMARY KEY,
                        generation INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE TABLE group_member (
                        group_id TEXT NOT NULL,
                        member_id TEXT NOT NULL,
                        topics TEXT NOT NULL,
                        heartbeat_ms INTEGER NOT NULL,
                        acked_generation INTEGER NOT NULL DEFAULT -1,
                        PRIMARY KEY (group_id, member_id)
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v2-member-client") { db in
            // The name each member gives itself (ConsumerConfiguration.clientId), for groupMembers.
            try db.execute(sql: "ALTER TABLE group_member ADD COLUMN client_id TEXT NOT NULL DEFAULT ''")
        }
        migrator.registerMigration(recordRowidMigration) { db in
            // See recordRowidMigration: the records move, in position order, to a rowid table.
            // A process that applied this migration while this one waited for the write lock has
            // made the table already: then there is nothing to copy (see `migrateAmongProcesses`).
            if try db.columns(in: "record").contains(where: { $0.name == "id" }) { return }
            try db.execute(
                sql: """
                    CREATE TABLE record_appended (
                        id INTEGER PRIMARY KEY,
                        topic_id INTEGER NOT NULL,
                        partition INTEGER NOT NULL,
                        offset INTEGER NOT NULL,
                        timestamp_ms INTEGER NOT NULL,
                        key BLOB,
                        value BLOB,
                        headers BLOB NOT NULL
                    );
                    INSERT INTO record_appended (topic_id, partition, offset, timestamp_ms, key, value, headers)
                        SELECT topic_id, partition, offset, timestamp_ms, key, value, headers FROM record
                        ORDER BY topic_id, partition, offset;
                    DROP TABLE record;
                    ALTER TABLE record_appended RENAME TO record;
                    CREATE UNIQUE INDEX record_position ON record (topic_id, partition, offset);
                    """)
        }
        return migrator
    }
}

/// A topic row, cached per process (topics are never altered, only created).
struct TopicRow: Sendable, Hashable {
    let id: Int64
    let name: String
    let partitions: Int
    let cleanup: String
    let retentionMs: Int64?

    init(row: Row) {
        id = row["id"]
        name = row["name"]
        partitions = row["partitions"]
        cleanup = row["cleanup"]
        retentionMs = row["retention_ms"]
    }

    var spec: TopicSpec {
        let policy: CleanupPolicy =
            cleanup == "compact" ? .compact : .delete(retention: retentionMs.map { .milliseconds($0) })
        return TopicSpec(name: name, partitions: partitions, cleanup: policy)
    }
}

extension Date {
    /// Milliseconds since 1970, truncated as Kafka clients do (10:30:00.9997 is 10:30:00.999), the
    /// same rule as EventModel's `Timestamp.milliseconds` so a record's timestamp and its `ce_time`
    /// agree. Within a microsecond below a whole millisecond counts as that millisecond: a `Date`
    /// is a `Double`, and a time written in whole milliseconds can come back a hair below them.
    var milliseconds: Int64 { millisecondsSince1970 }
    init(milliseconds: Int64) { self.init(millisecondsSince1970: milliseconds) }
}

/// Turns GRDB errors into ``LogError``s that say what to do; `file` (the log's path) is named in
/// the advice for the errors a person fixes on the file itself (a full disk, a read-only file).
///
/// A full disk (`SQLITE_FULL`) is retriable: SQLite rolled the transaction back, so nothing half
/// written stays in the file, and the same call succeeds once there is room again.
func storageError(_ error: any Error, while action: String, subject: String? = nil, file: String? = nil) -> any Error {
    if error is LogError { return error }
    if let error = error as? DatabaseError {
        let named = file.map { " (\($0))" } ?? ""
        let remedy: String
        switch error.resultCode {
        case .SQLITE_FULL:
            remedy = "the disk holding the log file\(named) is full: free space there; nothing was stored, retry"
        case .SQLITE_BUSY, .SQLITE_LOCKED: remedy = "another process holds the log locked for too long; retry"
        case .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PERM:
            remedy = "the log file\(named) or its folder is read-only for this user: make both writable by the user "
                + "that runs onewindow (chmod u+w, or chown); nothing was written"
        case .SQLITE_CORRUPT, .SQLITE_NOTADB: remedy = "the log file\(named) is damaged: restore it from a backup"
        case .SQLITE_IOERR:
            remedy = "writing the log file\(named) failed (a full disk, a file-size limit or a failing disk): check the disk"
        default: remedy = "see the SQLite message"
        }
        return LogError(
            .storage, "\(action) failed: \(error.message ?? "\(error)")", remedy: remedy, subject: subject,
            backendName: "\(error.resultCode)",
            isRetriable: [.SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_FULL].contains(error.resultCode))
    }
    return error
}
