import EventLog
import Foundation
import GRDB
import TestSupport
import Testing
@testable import EmbeddedLog

/// A full disk and a read-only file under the embedded log (issue 12): a clear error naming the
/// file and what to do, no damage (SQLite's `integrity_check`), and the log going on once there
/// is room again, with every record stored before it still there, in order.
///
/// The full disk is SQLite's own: `PRAGMA max_page_count` on the log's writing connection caps
/// the file, and SQLite then answers `SQLITE_FULL` exactly as it does when the file system has no
/// more room (a small tmpfs would need root). Raising the cap is the space coming back.
@Suite("Embedded log on a full disk and a read-only file", .timeLimit(.minutes(1)))
struct EmbeddedDiskTests {
    static let topic = "reliability.disk.full"

    /// The folder, the log and its file.
    static func makeLog() async throws -> (URL, EmbeddedLog, String) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("onewindow-disk-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("log.sqlite").path
        let log = try EmbeddedLog(path: path)
        try await log.createTopics([TopicSpec(name: topic, partitions: 1)])
        return (folder, log, path)
    }

    static func integrity(_ path: String) throws -> String {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "" }
    }

    @Test("a full disk refuses the append with the file and what to do; the log goes on when space returns")
    func diskFull() async throws {
        let (folder, log, path) = try await Self.makeLog()
        defer { try? FileManager.default.removeItem(at: folder) }
        let pages = try await log.writer.read { db in try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0 }
        try await log.writer.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA max_page_count = \(pages + 8)")
        }
        let value = Data(repeating: UInt8(ascii: "x"), count: 3000)
        var stored = 0
        var failure: LogError?
        for number in 0..<1000 {
            do {
                _ = try await log.append([OutgoingRecord(topic: Self.topic, key: Data("k".utf8), value: value + Data("\(number)".utf8))])
                stored += 1
            } catch let error as LogError {
                failure = error
                break
            }
        }
        let error = try #require(failure, "the capped file never filled (stored \(stored))")
        #expect(stored > 0)
        #expect(error.code == .storage)
        #expect(error.isRetriable, "a full disk is worth retrying: \(error)")
        #expect(error.backendName?.contains("disk is full") == true, "\(error)")
        #expect(error.description.contains(path), "the error names the file: \(error)")
        #expect(error.description.contains("full") && error.description.contains("free space"), "\(error)")
        #expect(try Self.integrity(path) == "ok")

        // Space returns: the same log, in the same process, goes on.
        try await log.writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = 1073741823") }
        _ = try await log.append([OutgoingRecord(topic: Self.topic, key: Data("k".utf8), value: value + Data("after".utf8))])
        let records = try await log.read(TopicPartition(Self.topic, 0), from: 0, maxRecords: 2000)
        #expect(records.count == stored + 1)
        #expect(records.map(\.offset) == (0...Int64(stored)).map { $0 })
        #expect(records.last?.value == value + Data("after".utf8))
        await log.close()
        #expect(try Self.integrity(path) == "ok")

        // And a restart reads the same.
        let reopened = try EmbeddedLog(path: path)
        let again = try await reopened.read(TopicPartition(Self.topic, 0), from: 0, maxRecords: 2000)
        #expect(again.count == stored + 1)
        await reopened.close()
        try ReliabilityRun.report(
            part: "disk-full-embedded",
            markdown: """
                ### A full disk under the embedded log

                `swift test --filter EmbeddedDiskTests`: the log file capped (`PRAGMA max_page_count`, \
                SQLite's own SQLITE_FULL) at 8 pages above its size, then 3 KB records appended until one fails.

                - stored before the disk was full: \(stored) records; the next append failed with:
                  `\(error)`
                - `PRAGMA integrity_check` after the failure and after recovery: ok
                - space back (cap raised): the same process appended again; \(again.count) records read back after \
                a restart, offsets 0…\(stored) without a gap
                """)
    }

    /// chmod does not stop root, so this test runs only for another user (CI's and a developer's).
    @Test(
        "a read-only log file and folder: opening names the file and says to make it writable; nothing changes",
        .enabled(if: geteuid() != 0, "root writes through file permissions")
    )
    func readOnly() async throws {
        let (folder, log, path) = try await Self.makeLog()
        defer {
            chmod(folder.path, 0o755)
            try? FileManager.default.removeItem(at: folder)
        }
        _ = try await log.append([OutgoingRecord(topic: Self.topic, key: Data("k".utf8), value: Data("before".utf8))])
        await log.close()
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
            chmod(folder.appendingPathComponent(file).path, 0o444)
        }
        chmod(folder.path, 0o555)
        do {
            let reopened = try EmbeddedLog(path: path)
            _ = try await reopened.append([OutgoingRecord(topic: Self.topic, key: Data("k".utf8), value: Data("refused".utf8))])
            Issue.record("a read-only log accepted an append")
        } catch let error as LogError {
            #expect(error.description.contains(path), "\(error)")
            #expect(error.description.contains("writable") || error.description.contains("read-only"), "\(error)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        chmod(folder.path, 0o755)
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
            chmod(folder.appendingPathComponent(file).path, 0o644)
        }
        // Writable again: a restart goes on with what was there.
        let restarted = try EmbeddedLog(path: path)
        _ = try await restarted.append([OutgoingRecord(topic: Self.topic, key: Data("k".utf8), value: Data("after".utf8))])
        let records = try await restarted.read(TopicPartition(Self.topic, 0), from: 0, maxRecords: 10)
        #expect(records.map { String(decoding: $0.value, as: UTF8.self) } == ["before", "after"])
        await restarted.close()
        #expect(try Self.integrity(path) == "ok")
    }
}
