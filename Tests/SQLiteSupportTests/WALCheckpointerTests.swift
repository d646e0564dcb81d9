import Foundation
import GRDB
import SQLiteSupport
import Testing

/// The WAL checkpoint off the writer's path: commits over the threshold are checkpointed by the
/// checkpointer's thread, not by the committing writer, and the writer steps in when the thread
/// is far behind.
struct WALCheckpointerTests {
    /// A pool on a fresh WAL file with `checkpointer` installed, and the file's path.
    private func pool(_ name: String, _ checkpointer: (String) -> WALCheckpointer) throws
        -> (DatabasePool, WALCheckpointer, URL)
    {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("wal-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("test.sqlite").path
        let installed = checkpointer(path)
        var configuration = Configuration()
        configuration.prepareDatabase { db in installed.install(on: db) }
        let pool = try DatabasePool(path: path, configuration: configuration)
        try pool.write { db in try db.execute(sql: "CREATE TABLE item (id INTEGER PRIMARY KEY, body BLOB NOT NULL)") }
        return (pool, installed, folder)
    }

    /// Commits `count` transactions of one row of `bytes` bytes each (about a page or more).
    private func write(_ pool: DatabasePool, _ count: Int, bytes: Int = 3000) throws {
        let body = Data(repeating: 7, count: bytes)
        for _ in 0..<count {
            try pool.write { db in try db.execute(sql: "INSERT INTO item (body) VALUES (?)", arguments: [body]) }
        }
    }

    private func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? Int) ?? 0
    }

    @Test func commitsOverTheThresholdAreCheckpointedByTheThreadNotTheWriter() async throws {
        let (pool, checkpointer, folder) = try pool("thread") {
            WALCheckpointer(path: $0, framesBeforeCheckpoint: 20, writerCheckpointsAt: 1_000_000)
        }
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("test.sqlite").path
        let before = fileSize(path)
        try write(pool, 300)
        // The thread runs beside the writes; give it time to catch up with the last wake-up.
        let deadline = ContinuousClock.now + .seconds(10)
        while checkpointer.checkpointsInBackground == 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(checkpointer.checkpointsInBackground > 0)
        #expect(checkpointer.checkpointsByWriter == 0)
        #expect(checkpointer.failedCheckpoints == 0, "SQLite code \(checkpointer.lastFailureCode)")
        // The pages reached the database file itself: SQLite's own threshold (1,000 pages) was
        // never reached by these 300 commits, so only the thread can have copied them.
        #expect(fileSize(path) > before + 300 * 3000 / 2)
        let (rows, integrity) = try await pool.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM item"), try String.fetchOne(db, sql: "PRAGMA integrity_check"))
        }
        #expect(rows == 300)
        #expect(integrity == "ok")
        checkpointer.stop()
    }

    @Test func theWriterCheckpointsItselfWhenTheThreadIsFarBehind() throws {
        let (pool, checkpointer, folder) = try pool("writer") {
            WALCheckpointer(path: $0, framesBeforeCheckpoint: 10, writerCheckpointsAt: 40)
        }
        defer { try? FileManager.default.removeItem(at: folder) }
        // No thread: every checkpoint is the writer's.
        checkpointer.stop()
        let path = folder.appendingPathComponent("test.sqlite").path
        try write(pool, 200)
        #expect(checkpointer.checkpointsByWriter > 0)
        #expect(checkpointer.checkpointsInBackground == 0)
        #expect(fileSize(path) > 200 * 3000 / 2)
        // The WAL was restarted from its start: about 40 frames of 4 KiB, not 200 commits' worth.
        #expect(fileSize(path + "-wal") < 120 * 4096)
    }

    @Test func belowTheThresholdNothingIsCheckpointed() throws {
        let (pool, checkpointer, folder) = try pool("readers") { WALCheckpointer(path: $0) }
        defer { try? FileManager.default.removeItem(at: folder) }
        try write(pool, 5)
        #expect(try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM item") } == 5)
        #expect(checkpointer.checkpointsInBackground == 0)
        #expect(checkpointer.checkpointsByWriter == 0)
    }
}
