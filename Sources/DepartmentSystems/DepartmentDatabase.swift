import Foundation
import GRDB
import SQLiteSupport

/// A department system's own SQLite database: the store of one simulated department.
///
/// A `Sendable` value around a GRDB writer; every migration of the department is in
/// ``DepartmentSystem/migrator``, applied when the store is made. Reads and writes live in
/// extensions (seeding, generating rows, deciding).
public struct DepartmentDatabase: Sendable {
    /// The department this database belongs to.
    public let system: DepartmentSystem
    /// The database connection (a pool on a file: WAL, so a connector reads while it writes).
    public let writer: any DatabaseWriter

    /// Wraps a writer and migrates it to the department's schema.
    /// - Throws: a GRDB `DatabaseError` when the migration fails.
    public init(system: DepartmentSystem, writer: any DatabaseWriter) throws {
        self.system = system
        self.writer = writer
        try system.migrator.migrateAmongProcesses(writer)
    }

    /// Opens (creating it and its folder if needed) the database file of a department.
    /// - Throws: when the file cannot be opened or migrated.
    public static func open(_ department: DepartmentID, path: String) throws -> DepartmentDatabase {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        return try DepartmentDatabase(system: .named(department), writer: pool)
    }

    /// How many rows `table` holds.
    public func count(_ table: String) throws -> Int {
        try writer.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(quoted(table))") ?? 0 }
    }
}

/// An SQL identifier in double quotes.
func quoted(_ identifier: String) -> String { "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

/// The `change_seq` a write must carry: one past the last the table's counter handed out, read
/// inside the write transaction (the connector contract; a trigger moves the counter on).
func nextChangeSeq(_ table: String) -> String {
    "(SELECT value + 1 FROM change_counter WHERE table_name = '\(table.replacingOccurrences(of: "'", with: "''"))')"
}
