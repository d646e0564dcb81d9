import EventLog
import Foundation
import GRDB
import Logging
import Synchronization
import TestSupport
import Testing
@testable import EmbeddedLog

/// What only the embedded backend does: maintenance in the background, one transaction per
/// partition, and opening without creating.
@Suite("Embedded log", .timeLimit(.minutes(1)))
struct EmbeddedLogTests {
    /// A temporary folder for one test.
    struct Folder {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("onewindow-embedded-\(UUID())")
        init() throws { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }
        var log: String { url.appendingPathComponent("log.sqlite").path }
        func remove() { try? FileManager.default.removeItem(at: url) }
    }

    /// Makes every DELETE of a record of `partition` fail, as a failing disk would: a real
    /// SQLite failure, in the log file itself, that appends (INSERTs) do not meet.
    static func breakDeletes(_ path: String, partition: Int? = nil) throws {
        let database = try DatabaseQueue(path: path)
        let condition = partition.map { " WHEN OLD.partition = \($0)" } ?? ""
        try database.write { db in
            try db.execute(
                sql: """
                    CREATE TRIGGER injected_failure BEFORE DELETE ON record\(condition)
                    BEGIN SELECT RAISE(ABORT, 'injected maintenance failure'); END
                    """)
        }
        try database.close()
    }

    @Test func anAppendWhoseMaintenanceFailsStillReturnsItsPositions() async throws {
        let folder = try Folder()
        defer { folder.remove() }
        let clock = EmbeddedRetentionTests.TestClock(Date(timeIntervalSince1970: 1_750_000_000))
        let lines = CapturedLines()
        var configuration = EmbeddedLogConfiguration(now: { clock.now }, maintenanceInterval: .seconds(3600))
        configuration.logger = Logger(label: "test") { _ in CapturingLogHandler(lines) }
        let log = try EmbeddedLog(path: folder.log, configuration: configuration)
        let topic = "sms.message.sent"
        try await log.createTopics([TopicSpec(name: topic, partitions: 1, cleanup: .delete(retention: .seconds(86_400)))])
        _ = try await log.append([OutgoingRecord(topic: topic, key: "k", value: Data("old".utf8))])
        try Self.breakDeletes(folder.log)

        // Two days later: the old record is due to expire, and maintenance is due.
        clock.advance(days: 2)
        let positions = try await log.append([
            OutgoingRecord(topic: topic, key: "k", value: Data("new-1".utf8)),
            OutgoingRecord(topic: topic, key: "k", value: Data("new-2".utf8)),
        ])
        #expect(positions.map(\.offset) == [1, 2])
        let stored = try await log.read(TopicPartition(topic, 0), from: 0, maxRecords: 10)
        #expect(stored.map { String(decoding: $0.value, as: UTF8.self) } == ["old", "new-1", "new-2"])

        // The failure was logged, not thrown.
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        while lines.all.isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let failure = try #require(lines.all.first { $0.level == .error }, "the failed maintenance was logged")
        #expect(failure.message.contains("maintenance"))
        #expect(failure.message.contains("injected maintenance failure"))
        #expect(failure.message.contains("\(topic)[0]"), "names the partition: \(failure.message)")

        // Run by hand, the same failure is thrown.
        await #expect(throws: LogError.self) { try await log.runMaintenance() }
        await log.close()
    }

    /// Each partition is cleaned in its own transaction: a failure on one partition keeps what
    /// the partitions cleaned before it removed (one transaction over all would roll them back).
    @Test func maintenanceCommitsPartitionByPartition() async throws {
        let folder = try Folder()
        defer { folder.remove() }
        let clock = EmbeddedRetentionTests.TestClock(Date(timeIntervalSince1970: 1_750_000_000))
        let log = try EmbeddedLog(
            path: folder.log, configuration: EmbeddedLogConfiguration(now: { clock.now }, maintenanceInterval: nil))
        let topic = "sms.message.sent"
        try await log.createTopics([TopicSpec(name: topic, partitions: 2, cleanup: .delete(retention: .seconds(86_400)))])
        for partition in 0..<2 {
            _ = try await log.append([OutgoingRecord(topic: topic, key: "k", value: Data(), partition: partition)])
        }
        try Self.breakDeletes(folder.log, partition: 1)
        clock.advance(days: 2)
        do {
            try await log.runMaintenance()
            Issue.record("maintenance succeeded although deletes on partition 1 fail")
        } catch let error as LogError {
            #expect(error.code == .storage)
            #expect(error.description.contains("\(topic)[1]"), "names the partition: \(error)")
        }
        #expect(try await log.watermarks(TopicPartition(topic, 0)) == Watermarks(low: 1, high: 1), "partition 0 was cleaned")
        #expect(try await log.watermarks(TopicPartition(topic, 1)) == Watermarks(low: 0, high: 1))
        await log.close()
    }

    @Test func openingAMissingLogWithoutCreateIfMissingNamesThePathAndHowToCreateIt() async throws {
        let folder = try Folder()
        defer { folder.remove() }
        let path = folder.url.appendingPathComponent("nonexistent/dir/x.sqlite").path
        do {
            _ = try EmbeddedLog(path: path, configuration: EmbeddedLogConfiguration(createIfMissing: false))
            Issue.record("a missing log was opened")
        } catch let error as LogError {
            #expect(error.code == .logNotFound)
            #expect(error.description.contains(path))
            #expect(error.description.contains("onewindow topics apply"))
            #expect(!error.isRetriable)
        }
        #expect(!FileManager.default.fileExists(atPath: folder.url.appendingPathComponent("nonexistent").path), "nothing created")

        // A SQLite file that is not a log is refused and left unchanged.
        let other = folder.url.appendingPathComponent("department.sqlite").path
        let department = try DatabaseQueue(path: other)
        try await department.write { db in try db.execute(sql: "CREATE TABLE resident (id TEXT)") }
        try department.close()
        #expect(throws: LogError.self) {
            _ = try EmbeddedLog(path: other, configuration: EmbeddedLogConfiguration(createIfMissing: false))
        }
        let tables = try await DatabaseQueue(path: other).read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        #expect(tables == ["resident"])

        // An existing log opens; the default still creates.
        let created = try EmbeddedLog(path: folder.log)
        await created.close()
        let reopened = try EmbeddedLog(path: folder.log, configuration: EmbeddedLogConfiguration(createIfMissing: false))
        #expect(try await reopened.listTopics() == [])
        await reopened.close()
    }

    /// Opening an existing log waits for another connection's lock instead of failing with
    /// `SQLITE_BUSY`: the last connection to a WAL file locks it while it closes, and two
    /// processes started together on one log met that lock when checking the file (CI, stop 20:
    /// a second `onewindow publish` exited 75, "database is locked").
    @Test func openingALogWaitsForAnotherConnectionsLock() async throws {
        let folder = try Folder()
        defer { folder.remove() }
        do {
            let created = try EmbeddedLog(path: folder.log)
            await created.close()
        }  // released here: its pool closes its connections
        // A connection in exclusive locking mode keeps the file locked after its write, as a
        // closing connection does while it checkpoints: every other connection meets SQLITE_BUSY.
        var waiting = Configuration()
        waiting.busyMode = .timeout(10)
        let holder = try DatabaseQueue(path: folder.log, configuration: waiting)
        try await holder.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA locking_mode = EXCLUSIVE")
            try db.execute(sql: "CREATE TABLE held (x)")
        }
        let released = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 0.5)
            try? holder.close()
            released.signal()
        }
        let started = ContinuousClock.now
        let reopened = try EmbeddedLog(path: folder.log, configuration: EmbeddedLogConfiguration(createIfMissing: false))
        #expect(ContinuousClock.now - started >= .milliseconds(400), "the open waited for the lock")
        #expect(try await reopened.listTopics() == [])
        await reopened.close()
        released.wait()

        // Past the wait, the refusal says so and is retriable.
        let timedOut = LogDatabase.openFailure(DatabaseError(resultCode: .SQLITE_BUSY), path: folder.log)
        #expect(timedOut.isRetriable)
        #expect(timedOut.description.contains("run it again once that process has finished"), "\(timedOut)")
    }

    /// Moving a group's offsets while it has a member is refused as retriable `groupBusy`; a
    /// commit of a partition lost in a rebalance too (the caller polls again).
    @Test func groupBusyIsRetriable() async throws {
        let folder = try Folder()
        defer { folder.remove() }
        // A session long enough that a member stays live on a loaded machine between its polls
        // (with the default 10 s, a slow run could evict it and let seekGroup pass).
        let log = try EmbeddedLog(path: folder.log, configuration: EmbeddedLogConfiguration(sessionTimeout: .seconds(120)))
        let topic = "household.birth.registered"
        try await log.createTopics([TopicSpec(name: topic, partitions: 2)])
        let first = try await log.makeConsumer(.group("g", topics: [topic]))
        try await waitForAssignment(first, count: 2)
        do {
            try await log.seekGroup("g", topics: [topic], to: .earliest)
            Issue.record("seekGroup moved a group with a live member")
        } catch let error as LogError {
            #expect(error.code == .groupBusy && error.isRetriable && !error.isFatal, "\(error)")
        }
        let second = try await log.makeConsumer(.group("g", topics: [topic]))
        // Both poll until the group settles with one partition each.
        let deadline = ContinuousClock.now.advanced(by: .seconds(20))
        while try await first.assignment().count != 1, ContinuousClock.now < deadline {
            async let a = first.poll(maxRecords: 1, timeout: .milliseconds(100))
            async let b = second.poll(maxRecords: 1, timeout: .milliseconds(100))
            _ = try await (a, b)
        }
        let lost = try #require(Set([TopicPartition(topic, 0), TopicPartition(topic, 1)]).subtracting(try await first.assignment()).first)
        do {
            try await first.commit(offsets: [lost: 0])
            Issue.record("a member committed a partition it lost")
        } catch let error as LogError {
            #expect(error.code == .groupBusy && error.isRetriable, "\(error)")
        }
        await log.close()
    }

    /// A service stopped by SIGTERM closes its consumer inside a cancelled task: the member must
    /// still leave its group and commit what it stored, or an operator's replay is refused as if
    /// it still ran until its session times out.
    @Test func aConsumerClosedInACancelledTaskLeavesItsGroupAndCommits() async throws {
        let folder = try Folder()
        defer { folder.remove() }
        let log = try EmbeddedLog(path: folder.log, configuration: EmbeddedLogConfiguration(sessionTimeout: .seconds(120)))
        let topic = "household.birth.registered"
        try await log.createTopics([TopicSpec(name: topic, partitions: 1)])
        _ = try await log.append([OutgoingRecord(topic: topic, key: Data("k".utf8), value: Data("{}".utf8))])
        let consumer = try await log.makeConsumer(.group("g", topics: [topic]))
        try await waitForAssignment(consumer, count: 1)
        let records = try await consumer.poll(maxRecords: 10, timeout: .seconds(5))
        #expect(records.count == 1)
        consumer.store(offsets: [TopicPartition(topic, 0): 1])
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await consumer.close()
        }
        await task.value
        #expect(try embeddedGroupMembers(path: folder.log, group: "g") == 0)
        #expect(try await log.committedOffsets(group: "g", topics: [topic])[TopicPartition(topic, 0)] == 1)
        await log.close()
    }

    /// SQLite's busy and full are worth retrying (another process lets go of the lock; space is
    /// freed), a read-only or damaged file is not.
    @Test(arguments: [
        (ResultCode.SQLITE_BUSY, true, "retry"), (.SQLITE_LOCKED, true, "retry"), (.SQLITE_FULL, true, "free space"),
        (.SQLITE_READONLY, false, "read-only"), (.SQLITE_CORRUPT, false, "backup"),
    ])
    func storageErrorsSayWhetherToRetry(_ code: ResultCode, _ retriable: Bool, _ remedy: String) throws {
        let error = try #require(storageError(DatabaseError(resultCode: code), while: "appending") as? LogError)
        #expect(error.code == .storage)
        #expect(error.isRetriable == retriable, "\(error)")
        #expect(!error.isFatal)
        #expect(error.remedy.contains(remedy), "\(error)")
    }

    /// A consumer's position below the log start (retention removed what the group had not
    /// read) is the log start, where reading goes on.
    @Test func aPositionRetentionPassedIsTheLogStart() async throws {
        let folder = try Folder()
        defer { folder.remove() }
        let clock = EmbeddedRetentionTests.TestClock(Date(timeIntervalSince1970: 1_750_000_000))
        let log = try EmbeddedLog(
            path: folder.log, configuration: EmbeddedLogConfiguration(now: { clock.now }, maintenanceInterval: nil))
        let topic = "sms.message.sent"
        let tp = TopicPartition(topic, 0)
        try await log.createTopics([TopicSpec(name: topic, partitions: 1, cleanup: .delete(retention: .seconds(86_400)))])
        for _ in 0..<3 {
            _ = try await log.append([OutgoingRecord(topic: topic, key: "k", value: Data())])
            clock.advance(days: 1)
        }
        try await log.seekGroup("archivist", topics: [topic], to: .offset(1))
        let consumer = try await log.makeConsumer(.group("archivist", topics: [topic]))
        try await waitForAssignment(consumer)
        #expect(try await consumer.position() == [tp: 1])
        // Day 3: the records of days 0 and 1 are more than a day old.
        #expect(try await log.runMaintenance().expired == 2)
        #expect(try await consumer.position() == [tp: 2])
        #expect(try await consumer.poll(maxRecords: 10, timeout: .seconds(1)).map(\.offset) == [2])
        #expect(try await consumer.position() == [tp: 3])
        await log.close()
    }

    @Test func theFlagsFollowTheCodeUnlessTheThrowerSaysOtherwise() {
        #expect(LogError(.groupBusy, "x").isRetriable)
        #expect(LogError(.brokerUnreachable, "x").isRetriable)
        #expect(LogError(.timedOut, "x").isRetriable)
        #expect(!LogError(.recordTooLarge, "x").isRetriable)
        #expect(!LogError(.storage, "x").isRetriable)
        #expect(LogError(.storage, "x", isRetriable: true).isRetriable)
        // Fatal errors are never retriable, whatever the thrower says.
        #expect(LogError(.closed, "x", isRetriable: true).isFatal)
        #expect(!LogError(.closed, "x", isRetriable: true).isRetriable)
        #expect(LogError(.fatal, "x").isFatal && !LogError(.fatal, "x").isRetriable)
        #expect(!LogError(.brokerUnreachable, "x").isFatal)
    }
}
