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

    /// What one run of `onewindow publish` on the read-only log did.
    struct Refusal {
        var what: String
        var status: Int32
        var message: String
    }

    /// The records in the log file, counted by another connection.
    static func recordCount(_ path: String) throws -> Int {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM record") ?? -1 }
    }

    /// The real `onewindow` against a log whose file (and folder) it cannot write: as root, the
    /// child runs as user nobody (``ReadOnlyFiles``), since chmod does not stop root. Twice: the
    /// file 0444 in a 0555 folder, then the file 0444 in a folder the child may write (SQLite then
    /// opens the file for reading and the append is what fails). Each run ends with status 74
    /// (`ExitStatus.ioError`), not a crash, and one error naming the file and saying to make it
    /// writable; the file keeps every byte. Writable again, the same command appends after the
    /// record that was there.
    @Test("a read-only log file and folder: onewindow publish exits 74 naming the file, nothing changes, it goes on once writable")
    func readOnly() async throws {
        if let reason = try ReadOnlyFiles.reportUnavailable(
            test: "EmbeddedDiskTests.readOnly", part: "disk-readonly-embedded", title: "A read-only embedded log")
        {
            try Test.cancel(Comment(rawValue: reason))
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("onewindow-disk-ro-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer {
            chmod(folder.path, 0o755)
            try? FileManager.default.removeItem(at: folder)
        }
        let path = folder.appendingPathComponent("log.sqlite").path
        let executable = try onewindowExecutable()
        let catalog = repositoryRoot.appendingPathComponent("Topics").path
        let publish = [
            "publish", "--bus", "embedded:" + path, "--catalog", catalog, "--example", "household.birth.registered",
        ]
        /// `onewindow ARGUMENTS`, as this process's user or as the child of ReadOnlyFiles (with the
        /// folder read-only for it when `readOnly`: its read-only mount, if that is the method).
        func onewindow(_ arguments: [String], asChild: Bool = true, readOnly: Bool = true) async throws
            -> ProcessOutput
        {
            let (program, all) =
                asChild
                ? ReadOnlyFiles.command(executable, arguments, readOnly: readOnly ? [folder] : [])
                : (executable, arguments)
            return try await runProgram(program.path, all, timeout: .seconds(30))
        }
        func text(_ data: Data) -> String { String(decoding: data, as: UTF8.self) }
        let started = ContinuousClock.now

        let created = try await onewindow(["topics", "apply", "--bus", "embedded:" + path, "--catalog", catalog], asChild: false)
        #expect(created.status == 0, "\(text(created.error))")
        let first = try await onewindow(publish, asChild: false)
        #expect(first.status == 0, "\(text(first.error))")
        #expect(try Self.recordCount(path) == 1)

        var refusals: [Refusal] = []
        func refused(_ what: String) async throws {
            let before = try Data(contentsOf: URL(fileURLWithPath: path))
            let run = try await onewindow(publish)
            let message = text(run.error).trimmingCharacters(in: .whitespacesAndNewlines)
            refusals.append(Refusal(what: what, status: run.status, message: message))
            #expect(run.status == 74, "\(what): exit status \(run.status) (74: the log cannot be written):\n\(message)")
            #expect(run.output.isEmpty, "\(what): nothing published: \(text(run.output))")
            #expect(message.hasPrefix("Error: ") && message.split(separator: "\n").count == 1, "\(what): \(message)")
            #expect(message.contains(path), "\(what): the error names the file: \(message)")
            #expect(message.contains("read-only") && message.contains("writable"), "\(what): \(message)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before, "\(what): the file changed")
            #expect(try Self.integrity(path) == "ok")
            #expect(try Self.recordCount(path) == 1)
        }
        // The file 0444 in a 0555 folder, both root's (SQLite cannot even keep its -shm beside
        // it); then the folder writable by the child, the file still 0444 and root's.
        try await ReadOnlyFiles.eachReadOnlyCase(of: URL(fileURLWithPath: path), refused)

        // Writable again (and the child's): the same command appends after the first record.
        let after = try await onewindow(publish, readOnly: false)
        #expect(after.status == 0, "\(text(after.error))")
        #expect(try Self.recordCount(path) == 2)
        #expect(try Self.integrity(path) == "ok")
        let elapsed = ContinuousClock.now - started
        try ReliabilityRun.report(
            part: "disk-readonly-embedded",
            markdown: """
                ### A read-only embedded log

                `swift test --filter EmbeddedDiskTests/readOnly`: a log with one record, made read-only, \
                then `onewindow publish --example household.birth.registered` run against it as a process \
                that cannot write it: \(ReadOnlyFiles.method).

                \(refusals.map { "- \($0.what): exit status \($0.status), the file unchanged, `integrity_check` ok:\n  `\($0.message)`" }.joined(separator: "\n"))
                - made writable again: the same command exited \(after.status); \(try Self.recordCount(path)) records, \
                `integrity_check` ok (\(String(format: "%.1f", elapsed / .seconds(1))) s in all)
                """)
    }
}
