import CivilTime
import Foundation
import GRDB
import SQLiteSupport

/// A connector's own state: one cursor per source and bus, saved only after the bus confirmed
/// what was read up to it. Lives in its own SQLite file so that the department's database is
/// never written by a source.
///
/// A cursor belongs to the bus it was saved for (``bus``): a connector pointed at another bus
/// finds no cursor there and starts from the beginning, so that bus gets every row — instead of
/// skipping every row that went to the other one. Pointed back at the first bus it resumes where it
/// was there. (Event ids are deterministic, so a row published again is dropped as a repeat by
/// consumers that drop repeated ids.)
public struct CursorStore: Sendable {
    let writer: DatabaseQueue
    /// The identity of the bus the cursors are read and saved for (see
    /// `BusAddress.cursorIdentity`); `""` when the caller does not say.
    public let bus: String
    /// The clock of each cursor's `updated_at`.
    let clock: any WallClock

    /// Opens (creating) the store at `path`, for the cursors of one bus.
    /// - Parameters:
    ///   - bus: the bus's identity, e.g. `embedded:/srv/var/onewindow.sqlite#1234` or
    ///     `kafka:broker-1:9092,broker-2:9092`; `""`: unknown. Cursors saved for an unknown bus (also
    ///     those of an earlier OneWindow, which did not record buses) are taken over by the first bus
    ///     that ``claim()``s them.
    ///   - clock: the clock of each cursor's `updated_at`. Default: the system clock.
    public init(path: String, bus: String = "", clock: any WallClock = .system) throws {
        self.clock = clock
        try FileManager.default.createDirectory(
            at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        writer = try DatabaseQueue(path: path, configuration: configuration)
        self.bus = bus
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
        // Cursors per bus. Those of v1 keep an unknown bus ('') until a bus adopts them.
        migrator.registerMigration("v2: cursors per bus") { db in
            try db.execute(
                sql: """
                    CREATE TABLE bus_cursor (
                        bus TEXT NOT NULL,
                        source TEXT NOT NULL,
                        position TEXT NOT NULL,
                        updated_at TEXT NOT NULL,
                        PRIMARY KEY (bus, source)
                    );
                    INSERT INTO bus_cursor (bus, source, position, updated_at)
                        SELECT '', source, position, updated_at FROM cursor;
                    DROP TABLE cursor;
                    """)
        }
        try migrator.migrateAmongProcesses(writer)
    }

    /// What ``claim()`` found.
    public enum Claim: Sendable, Equatable {
        /// The store has cursors for this bus, or none at all: nothing to say.
        case resumed
        /// Cursors saved before buses were recorded now belong to this bus.
        case adopted
        /// The store has cursors for other buses only: the sources start from the beginning here.
        case startingOver(others: [String])
    }

    /// Settles which cursors this bus uses, once at start-up: adopts cursors of an unknown bus, or
    /// reports that the cursors on file belong to other buses (the connector then starts from the
    /// beginning on this one, and says so).
    public func claim() throws -> Claim {
        let bus = self.bus
        // Without a bus identity the store works as before buses were recorded.
        if bus.isEmpty { return .resumed }
        return try writer.write { db in
            if try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM bus_cursor WHERE bus = ?", arguments: [bus])! > 0 {
                return .resumed
            }
            if try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM bus_cursor WHERE bus = ''")! > 0 {
                try db.execute(sql: "UPDATE bus_cursor SET bus = ? WHERE bus = ''", arguments: [bus])
                return .adopted
            }
            let others = try String.fetchAll(db, sql: "SELECT DISTINCT bus FROM bus_cursor ORDER BY bus")
            return others.isEmpty ? .resumed : .startingOver(others: others)
        }
    }

    /// The saved position of a source on this bus, `nil` before its first save there.
    public func position(of source: String) async throws -> String? {
        let bus = self.bus
        return try await writer.read { db in
            try String.fetchOne(
                db, sql: "SELECT position FROM bus_cursor WHERE bus = ? AND source = ?", arguments: [bus, source])
        }
    }

    /// Saves a source's position on this bus (durably: the file is in rollback-journal mode with
    /// full sync).
    public func save(_ position: String, of source: String) async throws {
        let now = clock.now().formatted(.iso8601)
        let bus = self.bus
        try await writer.write { db in
            try db.execute(
                sql: """
                    INSERT INTO bus_cursor (bus, source, position, updated_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (bus, source) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at
                    """, arguments: [bus, source, position, now])
        }
    }

    /// Forgets a source's position on this bus (a dropped file that is done: its cursor is not
    /// needed again).
    public func remove(_ source: String) async throws {
        let bus = self.bus
        try await writer.write { db in
            try db.execute(sql: "DELETE FROM bus_cursor WHERE bus = ? AND source = ?", arguments: [bus, source])
        }
    }
}
