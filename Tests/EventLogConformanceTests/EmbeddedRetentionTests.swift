import EmbeddedLog
import EventLog
import Foundation
import Synchronization
import Testing

/// Time retention on the embedded backend, with an injected clock. (On Kafka the broker's log
/// cleaner does this on closed segments, in the background: nothing a test can wait for; the
/// conformance suite checks there that topics are created with their retention.)
@Suite("Embedded log retention")
struct EmbeddedRetentionTests {
    /// A clock the test moves by hand.
    final class TestClock: Sendable {
        private let current: Mutex<Date>
        init(_ start: Date) { current = Mutex(start) }
        var now: Date { current.withLock { $0 } }
        func advance(days: Double) { current.withLock { $0 += days * 86_400 } }
    }

    @Test func recordsOlderThanTheRetentionGoAndTheStartOffsetMoves() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("onewindow-retention-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let clock = TestClock(Date(timeIntervalSince1970: 1_750_000_000))
        let log = try EmbeddedLog(
            path: directory.appendingPathComponent("log.sqlite").path,
            configuration: EmbeddedLogConfiguration(now: { clock.now }, maintenanceInterval: nil))
        let topic = "sms.message.sent"
        let kept = "tax.payment.received"
        try await log.createTopics([
            TopicSpec(name: topic, partitions: 1, cleanup: .delete(retention: .seconds(7 * 86_400))),
            TopicSpec(name: kept, partitions: 1),
        ])
        // Four records a day apart, stamped by the log's clock; the same on a topic kept for ever.
        for _ in 0..<4 {
            _ = try await log.append([
                OutgoingRecord(topic: topic, key: "k", value: Data("{}".utf8)),
                OutgoingRecord(topic: kept, key: "k", value: Data("{}".utf8)),
            ])
            clock.advance(days: 1)
        }
        let group = "archivist"
        try await log.seekGroup(group, topics: [topic], to: .offset(1))

        // Day 4 + 5 = 9: the records of days 0 and 1 are more than seven days old.
        clock.advance(days: 5)
        let report = try await log.runMaintenance()
        #expect(report.expired == 2)
        let partition = TopicPartition(topic, 0)
        #expect(try await log.watermarks(partition) == Watermarks(low: 2, high: 4))
        #expect(try await log.read(partition, from: 0, maxRecords: 10).map(\.offset) == [2, 3])
        #expect(try await log.watermarks(TopicPartition(kept, 0)) == Watermarks(low: 0, high: 4))
        // A group whose committed offset fell behind the start has only what is left to read.
        #expect(try await log.lag(group: group, topics: [topic]).map(\.lag) == [2])
        #expect(try await log.seekGroup(group, topics: [topic], to: .earliest) == [partition: 2])

        // Another pass the same day removes nothing more; new records are kept.
        #expect(try await log.runMaintenance().expired == 0)
        _ = try await log.append([OutgoingRecord(topic: topic, key: "k", value: Data("{}".utf8))])
        #expect(try await log.watermarks(partition) == Watermarks(low: 2, high: 5))
        await log.close()
    }
}
