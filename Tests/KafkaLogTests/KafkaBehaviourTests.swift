import EventLog
import Foundation
import KafkaLog
import Synchronization
import Testing

/// Kafka-specific behaviour beyond the shared conformance suite: error mapping, start positions
/// librdkafka does not know natively, rebalance callbacks, group-less consumers.
@Suite("Kafka backend behaviour", .timeLimit(.minutes(3)))
struct KafkaBehaviourTests {
    let prefix = "kb\(UUID().uuidString.prefix(8).lowercased())"

    func makeLog() throws -> KafkaLog {
        try KafkaIntegrationTests.log(try KafkaIntegrationTests.bootstrap())
    }

    /// Topics of single-record appends (Tansu's high-water mark is only right for those).
    func timedTopic(_ log: KafkaLog, _ name: String, count: Int, start: Date) async throws -> String {
        let topic = "\(prefix).\(name)"
        try await log.createTopics([TopicSpec(name: topic, partitions: 1)])
        for index in 0..<count {
            _ = try await log.append([
                OutgoingRecord(
                    topic: topic, key: "k", value: Data("\(index)".utf8),
                    timestamp: start.addingTimeInterval(Double(index) * 60))
            ])
        }
        return topic
    }

    @Test func aRecordTooLargeIsReportedWithLibrdkafkasName() async throws {
        let log = try makeLog()
        let topic = "\(prefix).large"
        try await log.createTopics([TopicSpec(name: topic, partitions: 1)])
        do {
            _ = try await log.append([OutgoingRecord(topic: topic, key: "k", value: Data(count: 2_000_000))])
            Issue.record("a 2 MB record was accepted")
        } catch let error as LogError {
            #expect(error.code == .recordTooLarge)
            #expect(error.backendName == "RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE")
            #expect(error.description.contains("message.max.bytes"))
        }
        await log.close()
    }

    @Test func aPartitionOutOfRangeIsRefusedBeforeProducing() async throws {
        let log = try makeLog()
        let topic = "\(prefix).range"
        try await log.createTopics([TopicSpec(name: topic, partitions: 2)])
        await #expect(throws: LogError.self) {
            _ = try await log.append([OutgoingRecord(topic: topic, key: "k", value: Data(), partition: 2)])
        }
        do {
            _ = try await log.read(TopicPartition(topic, 5), from: 0, maxRecords: 1)
            Issue.record("reading partition 5 of 2 succeeded")
        } catch let error as LogError {
            #expect(error.code == .invalidPartition)
        }
        await log.close()
    }

    @Test func aGroupStartsAtAnOffsetOrATimeWhenItHasNoCommit() async throws {
        let log = try makeLog()
        let start = Date(timeIntervalSince1970: 1_735_689_600)
        let topic = try await timedTopic(log, "start", count: 10, start: start)

        let byOffset = try await log.makeConsumer(
            ConsumerConfiguration(subscription: .topics([topic]), group: "\(prefix)-offset", autoOffsetReset: .offset(6)))
        #expect(try await drain(byOffset, count: 4).map(\.offset) == [6, 7, 8, 9])
        await byOffset.close()

        let byTime = try await log.makeConsumer(
            ConsumerConfiguration(
                subscription: .topics([topic]), group: "\(prefix)-time",
                autoOffsetReset: .time(start.addingTimeInterval(7 * 60 - 30))))
        #expect(try await drain(byTime, count: 3).map(\.offset) == [7, 8, 9])
        await byTime.close()

        let groupLess = try await log.makeConsumer(
            ConsumerConfiguration(
                subscription: .topics([topic]), group: nil, autoOffsetReset: .time(start.addingTimeInterval(8 * 60))))
        #expect(try await drain(groupLess, count: 2).map(\.offset) == [8, 9])
        await #expect(throws: LogError.self) { try await groupLess.commit(offsets: [TopicPartition(topic, 0): 9]) }
        await groupLess.close()
        await log.close()
    }

    @Test func revokedIsCalledBeforeThePartitionsGoAndAssignedAfter() async throws {
        let log = try makeLog()
        let topic = "\(prefix).callbacks"
        try await log.createTopics([TopicSpec(name: topic, partitions: 2)])
        let box = EventBox()
        let consumer = try await log.makeConsumer(
            ConsumerConfiguration(
                subscription: .topics([topic]), group: "\(prefix)-callbacks",
                onPartitionsRevoked: { partitions in box.add("revoked \(partitions.count)") },
                onPartitionsAssigned: { partitions in box.add("assigned \(partitions.count)") }))
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(60))
        while try await consumer.assignment().count < 2 && clock.now < deadline {
            _ = try await consumer.poll(maxRecords: 0, timeout: .milliseconds(200))
        }
        #expect(box.all == ["assigned 2"])
        await consumer.close()
        #expect(box.all == ["assigned 2", "revoked 2"], "close revokes, and tells the application first")
        await log.close()
    }

    @Test func aGroupWithAnActiveMemberCannotBeMoved() async throws {
        let log = try makeLog()
        let start = Date(timeIntervalSince1970: 1_735_689_600)
        let topic = try await timedTopic(log, "busy", count: 3, start: start)
        let group = "\(prefix)-busy"
        let member = try await log.makeConsumer(.group(group, topics: [topic]))
        _ = try await drain(member, count: 3)
        do {
            try await log.seekGroup(group, topics: [topic], to: .earliest)
            Issue.record("moving the offsets of a group with an active member succeeded")
        } catch let error as LogError {
            // Kafka (and Tansu) refuse a commit from outside a group that has members.
            #expect(error.code == .groupBusy)
            #expect(error.isRetriable)
        }
        await member.close()
        #expect(try await log.seekGroup(group, topics: [topic], to: .offset(1))[TopicPartition(topic, 0)] == 1)
        #expect(try await log.seekGroup(group, topics: [topic], to: .offset(99))[TopicPartition(topic, 0)] == 3, "clamped")
        await log.close()
    }
}

/// Callback events, in order, from whatever thread librdkafka calls on.
final class EventBox: Sendable {
    private let events = Mutex<[String]>([])
    func add(_ event: String) { events.withLock { $0.append(event) } }
    var all: [String] { events.withLock { $0 } }
}

/// Polls until `count` records arrived (or a minute passed).
func drain(_ consumer: any LogConsumer, count: Int) async throws -> [LogRecord] {
    var records: [LogRecord] = []
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: .seconds(60))
    while records.count < count && clock.now < deadline {
        records += try await consumer.poll(maxRecords: count - records.count, timeout: .milliseconds(500))
    }
    return records
}
