import EventLog
import Foundation
import GRDB

/// What one maintenance pass removed.
public struct MaintenanceReport: Sendable, Hashable {
    /// Records deleted because they were older than their topic's retention.
    public var expired: Int
    /// Records deleted by compaction because a later record has the same key.
    public var compacted: Int
}

extension EmbeddedLog {
    /// Applies time retention and compaction to every topic, as a Kafka broker's log cleaner does.
    ///
    /// - Retention (`cleanup: delete`): records are removed from the start of each partition up to the
    ///   first record younger than the retention, and the log start offset moves past them, so
    ///   offsets stay contiguous from the start offset on.
    /// - Compaction (`cleanup: compact`): in each partition only the latest record of each key stays;
    ///   offsets keep their gaps, as on Kafka.
    ///
    /// Each partition is cleaned in its own short write transaction, so appends (which wait for
    /// SQLite's write lock) wait for one partition's clean-up at most, never for the whole pass.
    /// A pass that fails part-way keeps what the partitions before the failure had removed.
    /// Appending processes start a pass in the background every
    /// ``EmbeddedLogConfiguration/maintenanceInterval``; calling it yourself runs one now.
    /// - Throws: ``LogError`` `.storage` naming the topic and partition that failed, or `.closed`.
    @discardableResult
    public func runMaintenance() async throws -> MaintenanceReport {
        try checkOpen()
        return try await maintain()
    }

    /// One pass, a transaction per partition. Stops between partitions when the log closes
    /// (throwing `.closed`) or the task is cancelled (throwing `CancellationError`).
    func maintain() async throws -> MaintenanceReport {
        let now = configuration.now().milliseconds
        let topics: [TopicRow]
        do {
            topics = try await writer.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM topic ORDER BY id").map(TopicRow.init(row:))
            }
        } catch {
            throw storageError(error, while: "log maintenance: listing topics")
        }
        var report = MaintenanceReport(expired: 0, compacted: 0)
        for topic in topics {
            let retention = topic.retentionMs
            guard topic.cleanup == "compact" || retention != nil else { continue }
            for partition in 0..<topic.partitions {
                try checkOpen()
                try Task.checkCancellation()
                do {
                    if topic.cleanup == "compact" {
                        report.compacted += try await writer.write { db in
                            try Self.compact(db, topicId: topic.id, partition: partition)
                        }
                    } else if let retention {
                        report.expired += try await writer.write { db in
                            try Self.expire(db, topicId: topic.id, partition: partition, before: now - retention)
                        }
                    }
                } catch {
                    throw storageError(
                        error, while: "log maintenance (\(topic.cleanup == "compact" ? "compaction" : "retention"))",
                        subject: TopicPartition(topic.name, partition).description)
                }
            }
        }
        return report
    }

    private static func expire(_ db: Database, topicId: Int64, partition: Int, before cutoff: Int64) throws -> Int {
        let keepFrom = try offset(db, topicId: topicId, partition: partition, atOrAfter: cutoff)
        try db.execute(sql: RecordSQL.deleteBefore, arguments: [topicId, partition, keepFrom])
        let removed = db.changesCount
        try db.execute(
            sql: "UPDATE partition SET start_offset = max(start_offset, ?) WHERE topic_id = ? AND partition = ?",
            arguments: [keepFrom, topicId, partition])
        return removed
    }

    private static func compact(_ db: Database, topicId: Int64, partition: Int) throws -> Int {
        // The latest offset of each key, then every keyed record that is not it goes.
        var latest: [Data: Int64] = [:]
        let rows = try Row.fetchCursor(db, sql: RecordSQL.keyed, arguments: [topicId, partition])
        var superseded: [Int64] = []
        while let row = try rows.next() {
            let key: Data = row[1]
            let offset: Int64 = row[0]
            if let previous = latest[key] { superseded.append(min(previous, offset)) }
            latest[key] = max(latest[key] ?? offset, offset)
        }
        let delete = try db.cachedStatement(sql: RecordSQL.deleteOne)
        for offset in superseded { try delete.execute(arguments: [topicId, partition, offset]) }
        return superseded.count
    }
}
