import EventLog
import EventSchemas
import Foundation
import GRDB
import SQLiteSupport

/// What the gateway knows of one application: who applied (for access decisions) and the latest
/// progress the orchestrator published.
struct TrackedApplication: Sendable, Hashable {
    var applicationId: String
    var workflow: String
    /// The access subject: the credit code when the workflow names one and the application carries
    /// it, else the resident ID; `nil` when only the progress has been read so far.
    var applicant: String?
    var submittedAt: Date?
    /// The body of the latest `application.progress.updated`, `nil` before the orchestrator took
    /// the application up.
    var progress: JSONValue?
}

/// The gateway's own store (SQLite, GRDB): the applications it read from the application topics
/// and the compacted `application.progress.updated` topic, and how far it has read each partition.
///
/// The gateway is a process of its own and reads those topics itself, every partition, without a
/// consumer group: each gateway instance keeps a whole copy, so several gateways (and several
/// orchestrator instances on Kafka) work side by side, and a gateway that restarts resumes from
/// the positions in its store. Deleting the file makes the next start read the topics afresh.
struct ProgressStore: Sendable {
    let pool: DatabasePool

    init(path: String) throws {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        pool = try DatabasePool(path: path, configuration: configuration)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE application (
                      applicationId TEXT PRIMARY KEY,
                      workflow TEXT NOT NULL,
                      applicant TEXT,
                      submittedAt REAL,
                      progress TEXT,
                      progressMillis INTEGER
                    );
                    CREATE TABLE position (
                      topic TEXT NOT NULL,
                      partition INTEGER NOT NULL,
                      next INTEGER NOT NULL,
                      PRIMARY KEY (topic, partition)
                    );
                    """)
        }
        try migrator.migrateAmongProcesses(pool)
    }

    /// The next offset to read of each partition read so far.
    func positions() async throws -> [TopicPartition: Int64] {
        try await pool.read { db in
            var result: [TopicPartition: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT topic, partition, next FROM position") {
                let next: Int64 = row["next"]
                result[TopicPartition(row["topic"], row["partition"])] = next
            }
            return result
        }
    }

    /// One application event read: who applied.
    struct Submission: Sendable {
        var applicationId: String
        var workflow: String
        var applicant: String?
        var submittedAt: Date?
    }

    /// One progress event read.
    struct Update: Sendable {
        var applicationId: String
        var workflow: String
        var body: String
        var millis: Int64
    }

    /// Applies what one read brought, and the partitions' new positions, in one transaction. A
    /// progress older than the one stored (a replayed topic) is ignored.
    func apply(submissions: [Submission], updates: [Update], positions: [TopicPartition: Int64]) async throws {
        try await pool.write { db in
            // Cached statements: this runs for every batch the progress loop reads, and preparing
            // each statement anew (with GRDB's authorizer) cost more than running it.
            for submission in submissions {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO application (applicationId, workflow, applicant, submittedAt)
                        VALUES (?, ?, ?, ?)
                        ON CONFLICT (applicationId) DO UPDATE SET
                          workflow = excluded.workflow, applicant = excluded.applicant,
                          submittedAt = excluded.submittedAt
                        """
                ).execute(arguments: [
                    submission.applicationId, submission.workflow, submission.applicant,
                    submission.submittedAt?.timeIntervalSince1970,
                ])
            }
            for update in updates {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO application (applicationId, workflow, progress, progressMillis)
                        VALUES (?, ?, ?, ?)
                        ON CONFLICT (applicationId) DO UPDATE SET
                          progress = excluded.progress, progressMillis = excluded.progressMillis
                        WHERE application.progressMillis IS NULL OR application.progressMillis <= excluded.progressMillis
                        """
                ).execute(arguments: [update.applicationId, update.workflow, update.body, update.millis])
            }
            for (partition, next) in positions {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO position (topic, partition, next) VALUES (?, ?, ?)
                        ON CONFLICT (topic, partition) DO UPDATE SET next = excluded.next
                        """
                ).execute(arguments: [partition.topic, partition.partition, next])
            }
        }
    }

    /// The application with this id, or `nil` when the gateway has not read it.
    func application(_ applicationId: String) async throws -> TrackedApplication? {
        try await pool.read { db in
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM application WHERE applicationId = ?", arguments: [applicationId])
            else { return nil }
            return try Self.tracked(row)
        }
    }

    /// Every application whose latest progress is still open (`submitted` or `in-progress`), for
    /// the open-applications and overdue-steps gauges.
    func openApplications() async throws -> [TrackedApplication] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM application
                    WHERE progress IS NULL
                       OR json_extract(progress, '$.status') IN ('submitted', 'in-progress')
                    """
            ).map(Self.tracked)
        }
    }

    private static func tracked(_ row: Row) throws -> TrackedApplication {
        let progressText: String? = row["progress"]
        let submitted: Double? = row["submittedAt"]
        return TrackedApplication(
            applicationId: row["applicationId"], workflow: row["workflow"], applicant: row["applicant"],
            submittedAt: submitted.map(Date.init(timeIntervalSince1970:)),
            progress: try progressText.map { try JSONValue.parse(Data($0.utf8)) })
    }
}
