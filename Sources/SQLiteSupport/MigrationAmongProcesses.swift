import Foundation
import GRDB

extension DatabaseMigrator {
    /// Applies the migrations not yet applied to a file that other processes may be opening at
    /// the same moment: the services and the commands that open their files are started
    /// together (`view run` and `orchestrator run --view`, `orchestrator run` and `onewindow
    /// status`, the processes on one embedded log).
    ///
    /// GRDB's ``DatabaseMigrator/migrate(_:)`` reads which migrations are applied before it takes
    /// the write lock to apply the rest. Two processes opening a new file both read "none", and
    /// the one that gets the lock second finds the first one's tables: its migration is refused
    /// ("table … already exists", "duplicate column", a unique constraint on `grdb_migrations`),
    /// or it waits past its busy timeout behind a long migration. Each of those rolls back
    /// whole, so this reads the applied migrations again and applies what is left, if anything:
    /// five tries, 100 ms apart. Other failures (a full disk, a read-only file, a corrupt file)
    /// are thrown at once, as is the fifth failure.
    public func migrateAmongProcesses(_ writer: any DatabaseWriter) throws {
        for attempt in 1... {
            do {
                return try migrate(writer)
            } catch let error as DatabaseError
                where attempt < 5 && [.SQLITE_ERROR, .SQLITE_CONSTRAINT, .SQLITE_BUSY].contains(error.resultCode)
            {
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }
}
