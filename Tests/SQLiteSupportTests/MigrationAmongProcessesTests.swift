import Foundation
import GRDB
import SQLiteSupport
import Synchronization
import Testing

/// Two openers of one new file migrating it at the same moment
/// (``DatabaseMigrator/migrateAmongProcesses(_:)``): the second read "nothing applied" before the
/// first committed, and must not fail for it. Two pools on one file stand for two processes: each
/// has its own SQLite connections and takes SQLite's locks as a process would.
@Suite("Migrations applied by several openers of one file")
struct MigrationAmongProcessesTests {
    /// The race made certain: the second opener has read the applied migrations (none) and is
    /// about to take the write lock when the first one migrates the whole file.
    private static func race(second migrate: (DatabaseMigrator, DatabasePool) throws -> Void) throws -> (
        Result<Void, any Error>, [String]
    ) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "onewindow-migration-race-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("store.sqlite").path
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: "CREATE TABLE facts (subject TEXT PRIMARY KEY, body TEXT NOT NULL)")
        }
        migrator.registerMigration("v2") { db in try db.execute(sql: "CREATE INDEX facts_body ON facts (body)") }
        let firstMigrator = migrator

        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        let first = try DatabasePool(path: path, configuration: configuration)
        let firstResult = Mutex<Result<Void, any Error>?>(nil)
        var secondConfiguration = configuration
        secondConfiguration.prepareDatabase { db in
            db.trace(options: .statement) { event in
                guard "\(event)".hasPrefix("BEGIN IMMEDIATE") else { return }
                firstResult.withLock { result in
                    if result == nil { result = Result { try firstMigrator.migrate(first) } }
                }
            }
        }
        let second = try DatabasePool(path: path, configuration: secondConfiguration)
        let secondResult = Result { try migrate(migrator, second) }
        try firstResult.withLock { try #require($0).get() }
        let applied = try second.read { db in
            try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier")
        }
        return (secondResult, applied)
    }

    @Test("The second opener finds the first one's tables and applies nothing twice; GRDB's own migrate fails there")
    func secondOpenerSucceeds() throws {
        let (amongProcesses, applied) = try Self.race { migrator, pool in try migrator.migrateAmongProcesses(pool) }
        #expect(throws: Never.self) { try amongProcesses.get() }
        #expect(applied == ["v1", "v2"])

        // What the project's stores did before: the same race refuses the second opener.
        let (plain, _) = try Self.race { migrator, pool in try migrator.migrate(pool) }
        #expect {
            try plain.get()
        } throws: { error in
            "\(error)".contains("table facts already exists")
        }
    }

    @Test("A full disk is thrown at the first try; what the race throws is tried five times, then thrown")
    func whichFailuresAreTriedAgain() throws {
        for (code, tries) in [(ResultCode.SQLITE_FULL, 1), (.SQLITE_READONLY, 1), (.SQLITE_ERROR, 5), (.SQLITE_BUSY, 5)] {
            let runs = Mutex(0)
            var migrator = DatabaseMigrator()
            migrator.registerMigration("v1") { _ in
                runs.withLock { $0 += 1 }
                throw DatabaseError(resultCode: code, message: "made to fail")
            }
            #expect {
                try migrator.migrateAmongProcesses(try DatabaseQueue())
            } throws: { error in
                (error as? DatabaseError)?.resultCode == code
            }
            #expect(runs.withLock { $0 } == tries, "\(code)")
        }
    }
}
