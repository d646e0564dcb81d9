import EventLog
import Foundation
import GRDB
import Logging
import Metrics

/// What one pass of ``OutboxStore/prunePublished(keeping:now:chunk:)`` did.
public struct OutboxPruningReport: Sendable, Equatable {
    /// Published outbox rows deleted by this pass.
    public var deleted = 0
    /// Every row up to this `seq` is gone from the outbox (0: none ever was).
    public var prunedThrough: Int64 = 0
    /// The latest event time (`time_ms`, on the orchestrator's clock) of a deleted row: the
    /// rebuild does not compare emissions up to it (``StoreRebuild``).
    public var horizonMilliseconds: Int64 = 0
}

/// How long `orchestrator run` and `citizen-services run` keep outbox rows after they are on
/// the bus.
public enum OutboxRetention {
    /// 30 days: long enough for an operator to look at what was published last month, and the
    /// store stops growing by its outbox, about 22.6 KB of pages a completed restaurant
    /// application out of 31.4 KB (its case row 8.2 KB and its applied input ids 0.6 KB stay;
    /// `dbstat` of the throughput benchmark's store after 3,050 applications, 2026-12-01).
    public static let defaultDays = 30
    /// ``defaultDays`` as a duration.
    public static let defaultKeep = days(defaultDays)
    /// `count` days of 86,400 s.
    public static func days(_ count: Int) -> Duration { .seconds(count * 86_400) }
    /// How often the pass runs in `orchestrator run` and `citizen-services run`.
    public static let interval = Duration.seconds(3_600)
}

/// Deleting the outbox rows that were published long ago, in the orchestrator's store and the
/// citizen services'.
///
/// Without it the outbox grows by every emission for ever: 15 rows of about 1 KB a restaurant
/// application, 72 % of the store's pages (2.3 GB per 100,000 applications). A published row is
/// needed by nothing but the orchestrator rebuild's comparison: the relay reads after what it
/// published, and the bus holds what was published.
///
/// How a row's age is known without a column per row (which every write of the hot path would
/// pay): each pass notes the outbox's last `seq` with the real time of the pass (table
/// `outbox_marks`), so every row up to a noted `seq` was written by then. Rows are deleted up to
/// the last mark older than the retention, and never past what is recorded as published
/// (``OutboxStore/publishedThrough(_:)``): a row not yet on the bus is kept whatever its age.
/// The time is the machine's wall clock, not the orchestrator's clock (which the demo and the
/// tests run weeks ahead): retention is about disk, in real days. `seq` is `AUTOINCREMENT`, so a
/// deleted number is never used again. Rows written before a store had marks (before its
/// migration `…-outbox-pruning`) count from the first pass.
///
/// Deleting is done in transactions of `chunk` rows, each a range of the primary key, so the
/// consumer's transactions wait for at most one of them. SQLite reuses the freed pages for later
/// rows: the file stops growing by the outbox, it does not shrink (`VACUUM`, with every process
/// stopped, gives the space back to the disk). What was deleted is recorded in `outbox_pruned`:
/// through which `seq`, and the latest event time among the deleted rows, which the rebuild reads
/// to leave those emissions out of its comparison.
extension OutboxStore {
    /// Runs one pass: notes the outbox's end at `now`, then deletes the published rows noted more
    /// than `keep` ago.
    /// - Parameters:
    ///   - keep: how long a published row stays after it was written (at least); must be positive.
    ///   - now: the real time of the pass (a parameter for tests).
    ///   - chunk: rows deleted per transaction.
    /// - Throws: ``LogError`` `.storage` naming the store when SQLite fails (a full disk, a
    ///   read-only file): nothing of the failed transaction was deleted, the next pass goes on.
    @discardableResult
    public func prunePublished(keeping keep: Duration, now: Date = Date(), chunk: Int = 2_000) async throws
        -> OutboxPruningReport
    {
        precondition(keep > .zero && chunk > 0)
        let cutoff = now.timeIntervalSince1970 - keep.seconds
        do {
            var report = try await pool.write { db -> OutboxPruningReport in
                let end = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM outbox") ?? 0
                let lastMark = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM outbox_marks") ?? 0
                if end > lastMark {
                    try db.execute(
                        sql: "INSERT INTO outbox_marks (seq, noted_at) VALUES (?, ?)",
                        arguments: [end, now.timeIntervalSince1970])
                }
                return try OutboxTable.pruned(db)
            }
            let limit = try await pool.read { db -> Int64 in
                let old = try Int64.fetchOne(
                    db, sql: "SELECT max(seq) FROM outbox_marks WHERE noted_at <= ?", arguments: [cutoff]) ?? 0
                return min(old, try publishedThrough(db))
            }
            while report.prunedThrough < limit {
                try Task.checkCancellation()
                let through = min(limit, report.prunedThrough + Int64(chunk))
                report = try await pool.write { [report] db in
                    var report = report
                    let range: StatementArguments = [report.prunedThrough, through]
                    let latest = try Int64.fetchOne(
                        db, sql: "SELECT max(time_ms) FROM outbox WHERE seq > ? AND seq <= ?", arguments: range)
                    try db.execute(sql: "DELETE FROM outbox WHERE seq > ? AND seq <= ?", arguments: range)
                    report.deleted += db.changesCount
                    report.prunedThrough = through
                    report.horizonMilliseconds = max(report.horizonMilliseconds, latest ?? 0)
                    try db.execute(
                        sql: "UPDATE outbox_pruned SET through = ?, horizon_ms = ? WHERE id = 1",
                        arguments: [report.prunedThrough, report.horizonMilliseconds])
                    return report
                }
            }
            if report.deleted > 0 {
                // The marks up to the one used are spent; the last of them still says where it was.
                try await pool.write { db in
                    try db.execute(sql: "DELETE FROM outbox_marks WHERE seq < ?", arguments: [limit])
                }
            }
            return report
        } catch let error as DatabaseError {
            throw OrchestratorStore.fileFailure(error, path: path, while: "deleting published outbox rows")
        }
    }

    /// What the passes so far deleted.
    public func outboxPruning() async throws -> OutboxPruningReport {
        try await pool.read { db in try OutboxTable.pruned(db) }
    }
}

extension OutboxTable {
    /// What the pruning passes deleted so far, as recorded in the store.
    static func pruned(_ db: Database) throws -> OutboxPruningReport {
        guard let row = try Row.fetchOne(db, sql: "SELECT through, horizon_ms FROM outbox_pruned WHERE id = 1") else {
            return OutboxPruningReport()
        }
        return OutboxPruningReport(deleted: 0, prunedThrough: row["through"], horizonMilliseconds: row["horizon_ms"])
    }

    /// The tables the passes keep (a migration of each store): the marks and what was deleted.
    public static let pruningSQL = """
        CREATE TABLE outbox_marks (
            seq INTEGER PRIMARY KEY,
            noted_at REAL NOT NULL
        );
        CREATE TABLE outbox_pruned (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            through INTEGER NOT NULL,
            horizon_ms INTEGER NOT NULL
        );
        INSERT INTO outbox_pruned (id, through, horizon_ms) VALUES (1, 0, 0);
        """
}

/// The pruning loop of a service: a pass at start and then every ``OutboxRetention/interval``,
/// until cancelled. A pass that fails is logged and counted, and the next one tries again;
/// nothing depends on it but the store's size.
///
/// Metrics, with the dimension `service` (`orchestrator`, `citizen-services`):
/// `onewindow_outbox_pruned_rows_total` and `onewindow_outbox_pruning_failures_total` (an alert
/// on the second is how an operator learns that the store grows again).
public func pruneOutboxUntilCancelled(
    _ store: some OutboxStore, keeping keep: Duration, service: String, logger: Logger
) async throws {
    let pruned = Counter(label: "onewindow_outbox_pruned_rows_total", dimensions: [("service", service)])
    let failures = Counter(label: "onewindow_outbox_pruning_failures_total", dimensions: [("service", service)])
    while !Task.isCancelled {
        do {
            let report = try await store.prunePublished(keeping: keep)
            pruned.increment(by: report.deleted)
            if report.deleted > 0 {
                logger.info(
                    "deleted published outbox rows",
                    metadata: [
                        "rows": "\(report.deleted)", "through_seq": "\(report.prunedThrough)",
                        "kept_days": "\(keep.seconds / 86_400)", "store": "\(store.path)",
                    ])
            }
        } catch is CancellationError {
            return
        } catch {
            failures.increment()
            logger.warning(
                "deleting published outbox rows failed; the next pass tries again", metadata: ["error": "\(error)"])
        }
        try await Task.sleep(for: OutboxRetention.interval)
    }
}
