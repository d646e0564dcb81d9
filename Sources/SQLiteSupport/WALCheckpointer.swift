import Foundation
import GRDB
import GRDBSQLite
import Synchronization

/// Checkpoints a SQLite database in WAL mode on a thread of its own, so that its writer does not
/// stop to copy the WAL into the database file and flush both to disk.
///
/// SQLite's automatic checkpoint runs inside the commit that leaves the WAL at 1,000 pages or
/// more: that commit copies the pages and calls `fdatasync` on the WAL and on the file before it
/// returns, holding the database's one writer meanwhile. In the orchestrator's latency benchmark
/// (500 applications/s for 20 s) the commits of the store and the embedded log made 493 such
/// syncs, 8 ms each on average and up to 167 ms, on the consumer's and the relay's serial paths.
///
/// Installed on a writer connection (``install(on:)``, from `Configuration.prepareDatabase`), it
/// takes the automatic checkpoint's place: after a commit that leaves `framesBeforeCheckpoint` or
/// more frames in the WAL, the commit only wakes the checkpointer's thread, which runs a passive
/// checkpoint on a connection of its own (a passive checkpoint takes no lock a reader or the
/// writer waits for, and stops where a reader still needs the WAL). If the thread falls far
/// behind, so that the WAL reaches `writerCheckpointsAt` frames, the committing writer checkpoints
/// as SQLite would have: the WAL stays bounded whatever the thread does.
///
/// The thread starts at the first commit over the threshold (a database that never gets there
/// costs no thread) and ends with ``stop()`` or when the checkpointer is released. A checkpoint
/// that fails (a full disk, a read-only file) is counted and tried again after the next commit
/// over the threshold, as SQLite's own would be; nothing is lost by it, the WAL only grows until
/// one succeeds.
public final class WALCheckpointer: Sendable {
    /// The state the writer's hook and the thread share. The hook holds it by a pointer that
    /// SQLite keeps for the connection's life, so it is retained once for each connection the
    /// checkpointer is installed on and never released (a few dozen bytes per writer connection).
    final class Shared: @unchecked Sendable {
        let path: String
        let framesBeforeCheckpoint: Int32
        let writerCheckpointsAt: Int32
        /// Guards `wanted`, `stopped` and `started`.
        let condition = NSCondition()
        var wanted = false
        var stopped = false
        var started = false
        let finished = DispatchSemaphore(value: 0)
        let inBackground = Atomic<Int>(0)
        let byWriter = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        let lastFailure = Atomic<Int32>(0)

        init(path: String, framesBeforeCheckpoint: Int32, writerCheckpointsAt: Int32) {
            self.path = path
            self.framesBeforeCheckpoint = framesBeforeCheckpoint
            self.writerCheckpointsAt = writerCheckpointsAt
        }

        /// Asks the thread for a checkpoint, starting it the first time.
        func wake() {
            condition.lock()
            defer { condition.unlock() }
            guard !stopped else { return }
            wanted = true
            if !started {
                started = true
                let thread = Thread { [self] in run() }
                thread.name = "wal-checkpoint"
                thread.start()
            }
            condition.signal()
        }

        func stop() -> Bool {
            condition.lock()
            defer { condition.unlock() }
            stopped = true
            condition.signal()
            return started
        }

        private func run() {
            var connection: OpaquePointer?
            defer {
                if let connection { sqlite3_close_v2(connection) }
                finished.signal()
            }
            while true {
                condition.lock()
                while !wanted && !stopped { condition.wait() }
                if stopped {
                    condition.unlock()
                    return
                }
                wanted = false
                condition.unlock()
                if connection == nil {
                    var opened: OpaquePointer?
                    guard sqlite3_open_v2(path, &opened, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK
                    else {
                        lastFailure.store(sqlite3_errcode(opened), ordering: .relaxed)
                        sqlite3_close_v2(opened)
                        failed.add(1, ordering: .relaxed)
                        continue
                    }
                    sqlite3_busy_timeout(opened, 1000)
                    // A connection that has read nothing has not opened the WAL yet, and its
                    // checkpoint does nothing (and says SQLITE_OK): read the schema once first.
                    let read = sqlite3_exec(opened, "SELECT count(*) FROM sqlite_schema", nil, nil, nil)
                    guard read == SQLITE_OK else {
                        lastFailure.store(read, ordering: .relaxed)
                        sqlite3_close_v2(opened)
                        failed.add(1, ordering: .relaxed)
                        continue
                    }
                    connection = opened
                }
                var frames: Int32 = 0
                var copied: Int32 = 0
                let status = sqlite3_wal_checkpoint_v2(connection, nil, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied)
                if status == SQLITE_OK {
                    inBackground.add(1, ordering: .relaxed)
                } else if status & 0xff == SQLITE_BUSY || status & 0xff == SQLITE_LOCKED {
                    // Another checkpoint is running, or the writer is restarting the WAL: not a
                    // failure; the next commit over the threshold asks again.
                    continue
                } else {
                    failed.add(1, ordering: .relaxed)
                    lastFailure.store(status, ordering: .relaxed)
                }
            }
        }
    }

    let shared: Shared

    /// - Parameters:
    ///   - path: the database file, as the pool opens it.
    ///   - framesBeforeCheckpoint: WAL frames (pages) after which a commit wakes the thread;
    ///     default 1,000, SQLite's own threshold for its automatic checkpoint.
    ///   - writerCheckpointsAt: WAL frames at which the committing writer checkpoints itself;
    ///     default four times `framesBeforeCheckpoint`.
    public init(path: String, framesBeforeCheckpoint: Int = 1000, writerCheckpointsAt: Int? = nil) {
        let threshold = Int32(clamping: max(1, framesBeforeCheckpoint))
        shared = Shared(
            path: path, framesBeforeCheckpoint: threshold,
            writerCheckpointsAt: Int32(clamping: max(writerCheckpointsAt ?? Int(threshold) * 4, Int(threshold))))
    }

    deinit { _ = shared.stop() }

    /// Replaces SQLite's automatic checkpoint on `db` by this checkpointer (a pool's reader
    /// connections, which never commit, are left as they are). Call it from the configuration's
    /// `prepareDatabase`, so that every connection the pool opens gets it.
    public func install(on db: Database) {
        guard !db.configuration.readonly, let connection = db.sqliteConnection else { return }
        let context = Unmanaged.passRetained(shared).toOpaque()
        _ = sqlite3_wal_hook(
            connection,
            { context, connection, name, frames in
                guard let context else { return SQLITE_OK }
                let shared = Unmanaged<WALCheckpointer.Shared>.fromOpaque(context).takeUnretainedValue()
                if frames >= shared.writerCheckpointsAt {
                    // What SQLite's automatic checkpoint does; its failures are ignored as SQLite
                    // ignores them there (the commit itself has succeeded).
                    _ = sqlite3_wal_checkpoint_v2(connection, name, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
                    shared.byWriter.add(1, ordering: .relaxed)
                } else if frames >= shared.framesBeforeCheckpoint {
                    // At every such commit, until the WAL restarts: the thread then keeps the
                    // WAL copied almost to its end, so that the next writer can restart it from
                    // its start. Waking it only every `framesBeforeCheckpoint` new frames let
                    // the WAL grow to the writer's own threshold in the latency benchmark (its
                    // consumers' reads often hold the restart back): its p50 was 4.0 s where the
                    // build without a checkpointer made 0.19 s, and 0.28 s where waking at every
                    // commit made 0.09 s (one pair each, on a shared machine).
                    shared.wake()
                }
                return SQLITE_OK
            }, context)
    }

    /// Ends the thread after the checkpoint it is running, if any, and waits (up to `timeout`)
    /// until it has closed its connection. Later commits over the threshold wake nothing; the
    /// writer still checkpoints at `writerCheckpointsAt`.
    public func stop(timeout: Duration = .seconds(10)) {
        guard shared.stop() else { return }
        let (seconds, attoseconds) = timeout.components
        let nanoseconds = Double(seconds) * 1e9 + Double(attoseconds) / 1e9
        if shared.finished.wait(timeout: .now() + .nanoseconds(Int(nanoseconds))) == .success {
            shared.finished.signal()  // a second stop() returns at once
        }
    }

    /// Checkpoints the thread has completed.
    public var checkpointsInBackground: Int { shared.inBackground.load(ordering: .relaxed) }
    /// Checkpoints a committing writer ran itself, the thread being `writerCheckpointsAt` behind.
    public var checkpointsByWriter: Int { shared.byWriter.load(ordering: .relaxed) }
    /// Checkpoints that failed (a full disk, a read-only file; not one skipped because another
    /// was running), or a connection the thread could not open.
    public var failedCheckpoints: Int { shared.failed.load(ordering: .relaxed) }
    /// SQLite's result code of the last failure counted in ``failedCheckpoints`` (0: none).
    public var lastFailureCode: Int32 { shared.lastFailure.load(ordering: .relaxed) }
}
