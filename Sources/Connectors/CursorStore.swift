import CivilTime
import Foundation
import GRDB

/// A connector's own state: one cursor per source, saved only after the bus confirmed what was
/// read up to it. Lives in its own SQLite file so that the department's database is never
/// written by a source.
public struct CursorStore: Sendable {
    let writer: DatabaseQueue
    /// The clock of each cursor's `updated_at`.
    let clock: any WallClock

    /// Opens (creating) the store at `path`.
    /// - Parameter clock: the clock of each cursor's `updated_at`. Default: the system clock.
    public init(path: String, clock: any WallClock = .system) throws {
        self.clock = clock
        try FileManager.default.createDirectory(
            at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        writer = try DatabaseQueue(path: path, configuration: configuration)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE cursor (
                        source TEXT PRIMARY KEY,
                        position TEXT NOT NULL,
                        updated_at TEXT NOT NULL
                    )
                    """)
        }
        try migrator.migrate(writer)
    }

    /// The saved position of a source, `nil` before its first save.
    public func position(of source: String) async throws -> String? {
        try await writer.read { db in
            try String.fetchOne(db, sql: "SELECT position FROM cursor WHERE source = ?", arguments: [source])
        }
    }

    /// Saves a source's position (durably: the file is in rollback-journal mode with full sync).
    public func save(_ position: String, of source: String) async throws {
        let now = clock.now().formatted(.iso8601)
        try await writer.write { db in
            try db.execute(
                sql: """
                    INSERT INTO cursor (source, position, updated_at) VALUES (?, ?, ?)
                    ON CONFLICT (source) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at
                    """, arguments: [source, position, now])
        }
    }

    /// Forgets a source's position (a dropped file that is done: its cursor is not needed again).
    public func remove(_ source: String) async throws {
        try await writer.write { db in
            try db.execute(sql: "DELETE FROM cursor WHERE source = ?", arguments: [source])
        }
    }
}
