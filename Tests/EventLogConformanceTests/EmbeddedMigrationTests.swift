import EventLog
import Foundation
import GRDB
import Logging
import Synchronization
import TestSupport
import Testing
@testable import EmbeddedLog

/// A log written by an older version opens, and its records move to the append-ordered table
/// (migration `v3-record-rowid`) with their positions, timestamps, keys, values and headers.
@Suite("Embedded log migration", .timeLimit(.minutes(1)))
struct EmbeddedMigrationTests {
    /// The stored records of an old log, as it is read back.
    struct OldLog {
        var records: [LogRecord] = []
        /// Per partition: (start offset, next offset).
        var marks: [TopicPartition: Watermarks] = [:]
    }

    /// Writes a log in the v1/v2 format (records clustered by position, `WITHOUT ROWID`) by hand:
    /// `orders` with 3 partitions whose records were appended interleaved, its partition 2 with
    /// records retention removed (starting at offset 2), and the compacted `residents` with a gap.
    static func writeOldLog(_ path: String, rounds: Int = 40) throws -> OldLog {
        let creator = try DatabaseQueue(path: path)
        try creator.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA page_size = 16384")
            try db.execute(sql: "PRAGMA journal_mode = WAL")
        }
        try LogDatabase.migrator.migrate(creator, upTo: "v2-member-client")
        var old = OldLog()
        let base: Int64 = 1_750_000_000_000
        try creator.write { db in
            #expect(
                try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE name = 'record'")?
                    .contains("WITHOUT ROWID") == true, "the old format")
            try db.execute(
                sql: """
                    INSERT INTO topic (id, name, partitions, cleanup, retention_ms, created_ms)
                    VALUES (1, 'orders', 3, 'delete', NULL, 0), (2, 'residents', 1, 'compact', NULL, 0)
                    """)
            var next: [TopicPartition: Int64] = [TopicPartition("orders", 2): 2, TopicPartition("residents", 0): 0]
            func store(_ topic: String, _ topicId: Int64, _ partition: Int, key: String?, gap: Int64 = 0) throws {
                let position = TopicPartition(topic, partition)
                let offset = next[position, default: 0] + gap
                next[position] = offset + 1
                let record = LogRecord(
                    topic: topic, partition: partition, offset: offset,
                    timestamp: Date(milliseconds: base + Int64(old.records.count) * 1000), key: key.map { Data($0.utf8) },
                    value: Data(repeating: UInt8(truncatingIfNeeded: old.records.count), count: 200 + old.records.count % 50 * 37),
                    headers: [LogHeader(name: "ce_id", text: "event-\(old.records.count)")])
                try db.execute(
                    sql: """
                        INSERT INTO record (topic_id, partition, offset, timestamp_ms, key, value, headers)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        topicId, partition, offset, record.timestamp.milliseconds, record.key, record.value,
                        HeaderCodec.encode(record.headers),
                    ])
                old.records.append(record)
            }
            // Interleaved: the clustered table stored them by position, not in this order.
            for round in 0..<rounds {
                try store("orders", 1, round % 3, key: "case-\(round)")
                try store("orders", 1, (round * 7 + 1) % 3, key: nil)
                if round % 4 == 0 { try store("residents", 2, 0, key: "resident-\(round % 3)", gap: round % 8 == 0 ? 3 : 0) }
            }
            for (position, end) in next {
                let start: Int64 = position == TopicPartition("orders", 2) ? 2 : 0
                try db.execute(
                    sql: "INSERT INTO partition (topic_id, partition, next_offset, start_offset) VALUES (?, ?, ?, ?)",
                    arguments: [position.topic == "orders" ? 1 : 2, position.partition, end, start])
                old.marks[position] = Watermarks(low: start, high: end)
            }
            // A consumer group's committed position, kept through the migration.
            try db.execute(
                sql: "INSERT INTO group_offset (group_id, topic_id, partition, offset, committed_ms) VALUES ('g', 1, 0, 5, 0)")
        }
        try creator.close()
        return old
    }

    @Test func anOldLogMigratesKeepingEveryRecordAtItsOffsetAndAppendsGoOn() async throws {
        let folder = try EmbeddedLogTests.Folder()
        defer { folder.remove() }
        let old = try Self.writeOldLog(folder.log)
        let lines = CapturedLines()
        var configuration = EmbeddedLogConfiguration(maintenanceInterval: nil)
        configuration.logger = Logger(label: "test") { _ in CapturingLogHandler(lines) }
        let log = try EmbeddedLog(path: folder.log, configuration: configuration)

        // The conversion said so, once.
        let said = lines.all.filter { $0.message.contains("append-ordered table") }
        #expect(said.count == 2, "a line before and one after: \(said.map(\.message))")
        #expect(said.first?.metadata["path"] == folder.log)

        // Every record is back at its position, and the watermarks are those of the old log.
        for (position, marks) in old.marks.sorted(by: { $0.key < $1.key }) {
            #expect(try await log.watermarks(position) == marks, "\(position)")
            let read = try await log.read(position, from: 0, maxRecords: 1000)
            let expected = old.records.filter { $0.topic == position.topic && $0.partition == position.partition }
            #expect(read == expected, "\(position)")
        }
        #expect(old.records.count == 40 * 2 + 10)
        let time = old.records[41].timestamp
        let firstAfter = old.records.first { $0.topic == "orders" && $0.partition == 1 && $0.timestamp >= time }
        #expect(try await log.offset(TopicPartition("orders", 1), atOrAfter: time) == firstAfter?.offset)

        // Appends go on after each partition's last offset, and are read after the old records.
        let positions = try await log.append([
            OutgoingRecord(topic: "orders", key: "case-new", value: Data("new-0".utf8), partition: 0),
            OutgoingRecord(topic: "orders", key: "case-new", value: Data("new-2".utf8), partition: 2),
            OutgoingRecord(topic: "residents", key: "resident-0", value: Data("new-r".utf8), partition: 0),
        ])
        #expect(
            positions.map(\.offset) == [
                old.marks[TopicPartition("orders", 0)]!.high, old.marks[TopicPartition("orders", 2)]!.high,
                old.marks[TopicPartition("residents", 0)]!.high,
            ])
        let tail = try await log.read(TopicPartition("orders", 2), from: old.marks[TopicPartition("orders", 2)]!.high - 1, maxRecords: 10)
        #expect(tail.map { String(decoding: $0.value, as: UTF8.self).hasPrefix("new") } == [false, true])

        // A group's committed position survived; compaction still keeps the latest of each key.
        #expect(try await log.committedOffsets(group: "g", topics: ["orders"]) == [TopicPartition("orders", 0): 5])
        let report = try await log.runMaintenance()
        #expect(report.compacted == 8, "11 records of 3 keys: 3 remain")
        let kept = try await log.read(TopicPartition("residents", 0), from: 0, maxRecords: 100)
        #expect(kept.compactMap(\.keyString).sorted() == ["resident-0", "resident-1", "resident-2"])
        await log.close()

        // The table is the new one, the old one is gone, and opening again does not convert again.
        let schema = try DatabaseQueue(path: folder.log)
        let tables = try await schema.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE tbl_name LIKE 'record%' ORDER BY name")
        }
        #expect(tables == ["record", "record_position"])
        let rowid = try await schema.read { db in
            try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE name = 'record'")
        }
        #expect(rowid?.contains("WITHOUT ROWID") == false)
        try schema.close()
        let reopened = try EmbeddedLog(path: folder.log, configuration: configuration)
        #expect(lines.all.filter { $0.message.contains("append-ordered table") }.count == 2)
        await reopened.close()
    }

    /// Processes opening an old log at the same moment (a deployment's services started
    /// together): each read that the migration was due, one applied it, and the others, which
    /// waited for its write lock, find it applied and open the migrated log instead of failing.
    @Test func opensOfAnOldLogAtTheSameMomentAllSucceed() async throws {
        let folder = try EmbeddedLogTests.Folder()
        defer { folder.remove() }
        let old = try Self.writeOldLog(folder.log, rounds: 3000)
        let opened = Mutex<[EmbeddedLog]>([])
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 3) { _ in
            do {
                let log = try EmbeddedLog(path: folder.log)
                opened.withLock { $0.append(log) }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
        let logs = opened.withLock { $0 }
        for log in logs {
            var count = 0
            for (position, marks) in old.marks {
                count += try await log.read(position, from: marks.low, maxRecords: 10_000).count
            }
            #expect(count == old.records.count)
            await log.close()
        }
    }

    /// One append's records of a partition are neighbours in the table (a consumer reading the
    /// partition finds them on the same pages), each partition's in offset order, whatever the
    /// order of the records given; their positions come back in that order.
    @Test func anAppendStoresEachPartitionsRecordsTogether() async throws {
        let folder = try EmbeddedLogTests.Folder()
        defer { folder.remove() }
        let log = try EmbeddedLog(path: folder.log, configuration: EmbeddedLogConfiguration(maintenanceInterval: nil))
        try await log.createTopics([TopicSpec(name: "orders", partitions: 3)])
        let partitions = [2, 0, 1, 0, 2, 1, 0, 2]
        let positions = try await log.append(
            partitions.enumerated().map { index, partition in
                OutgoingRecord(topic: "orders", key: "k", value: Data("\(index)".utf8), partition: partition)
            })
        #expect(positions.map(\.partition) == partitions)
        #expect(positions.map(\.offset) == [0, 0, 0, 1, 1, 1, 2, 2])
        await log.close()
        let queue = try DatabaseQueue(path: folder.log)
        defer { try? queue.close() }
        let stored = try await queue.read { db in
            try Row.fetchAll(db, sql: "SELECT partition, offset, value FROM record ORDER BY id").map { row in
                "\(row["partition"] as Int)/\(row["offset"] as Int64)=\(String(decoding: row["value"] as Data, as: UTF8.self))"
            }
        }
        #expect(stored == ["0/0=1", "0/1=3", "0/2=6", "1/0=2", "1/1=5", "2/0=0", "2/1=4", "2/2=7"])
    }

    /// The consumer's read of a partition is a range of the position index, each row then looked
    /// up by its id; retention and compaction find their records through the same index.
    @Test func everyStatementOnRecordsUsesThePositionIndex() async throws {
        let folder = try EmbeddedLogTests.Folder()
        defer { folder.remove() }
        let log = try EmbeddedLog(path: folder.log)
        await log.close()
        let queue = try DatabaseQueue(path: folder.log)
        defer { try? queue.close() }
        for sql in RecordSQL.all {
            let plan = try await queue.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: StatementArguments(Array(repeating: 0, count: sql.count { $0 == "?" })))
                    .map { $0["detail"] as String }
            }
            #expect(plan.count == 1 && plan[0].hasPrefix("SEARCH record USING INDEX record_position"), "\(sql): \(plan)")
            #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "\(sql): \(plan)")
        }
    }
}
