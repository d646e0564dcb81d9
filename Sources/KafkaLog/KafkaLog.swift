import EventLog
import Foundation
import Synchronization

/// The Kafka backend of ``EventLog/EventLog``, over librdkafka.
///
/// - Appends go through one idempotent producer (`enable.idempotence=true`, `acks=all`,
///   `partitioner=murmur2_random`, `linger.ms=5`); each append returns when every record's
///   delivery report has arrived, with its partition and offset, or throws the first failure.
/// - Consumers are group members with explicit commits (`enable.auto.commit=false`,
///   `enable.auto.offset.store=false`) and rebalance callbacks, or group-less readers.
/// - Topic creation and description use the admin API; watermarks, offsets by time and group
///   offsets use a client that never joins a group.
///
/// Errors are ``EventLog/LogError``s carrying librdkafka's error name in `backendName` and a
/// sentence on what to do. Blocking librdkafka calls run on dedicated threads and dispatch queues,
/// never on Swift's cooperative pool.
///
/// ```swift
/// let log = try KafkaLog(configuration: KafkaConfiguration(bootstrapServers: ["kafka:9092"]))
/// try await log.createTopics([TopicSpec(name: "household.birth.registered", partitions: 6)])
/// let positions = try await log.append([record])
/// ```
public final class KafkaLog: EventLog {
    let configuration: KafkaConfiguration
    let admin: AdminClient
    private let producer = Mutex<KafkaProducer?>(nil)
    private let reader = Mutex<PartitionReader?>(nil)
    /// Topic → partition count, from the last metadata request.
    private let knownTopics = Mutex<[String: Int]>([:])

    /// Creates the log. Nothing is sent to the cluster yet: the first call that needs it connects.
    /// - Parameter configuration: the brokers and any librdkafka properties.
    /// - Throws: ``EventLog/LogError`` `.configuration` when librdkafka refuses a property.
    public init(configuration: KafkaConfiguration) throws {
        self.configuration = configuration
        self.admin = try AdminClient(configuration: configuration)
        // Fail now, not at the first append, when a producer property is refused.
        _ = try KafkaConf(configuration.librdkafkaProperties(.producer))
    }

    private func theProducer() throws -> KafkaProducer {
        try producer.withLock { producer in
            if let producer { return producer }
            let made = try KafkaProducer(configuration: configuration)
            producer = made
            return made
        }
    }

    private func theReader() throws -> PartitionReader {
        try reader.withLock { reader in
            if let reader { return reader }
            let made = try PartitionReader(configuration: configuration)
            reader = made
            return made
        }
    }

    /// The cluster's topics and partition counts, refreshed from metadata.
    private func refreshTopics() async throws -> [String: Int] {
        let admin = self.admin
        let topics = try await admin.blocking.run { try admin.topics() }
        knownTopics.withLock { $0 = topics }
        return topics
    }

    /// A topic's partition count, from the cache or fresh metadata.
    /// - Throws: ``EventLog/LogError`` `.unknownTopic` when the cluster does not have it.
    private func partitions(of topic: String) async throws -> Int {
        if let count = knownTopics.withLock({ $0[topic] }) { return count }
        guard let count = try await refreshTopics()[topic] else { throw LogError.unknownTopic(topic) }
        return count
    }

    private func checkPartition(_ partition: TopicPartition) async throws {
        let count = try await partitions(of: partition.topic)
        guard (0..<count).contains(partition.partition) else {
            throw LogError(
                .invalidPartition, "partition \(partition.partition) does not exist (the topic has \(count))",
                subject: partition.topic)
        }
    }

    // MARK: Topics

    /// Creates the topics that do not exist yet, with their partition counts, `cleanup.policy`
    /// and `retention.ms`, at ``KafkaConfiguration/replicationFactor``.
    /// - Returns: the names of the topics actually created (a topic another process created in the
    ///   meantime is not an error and is not listed).
    /// - Throws: ``EventLog/LogError`` `.invalidTopic`, `.authorizationFailed`, `.brokerUnreachable`.
    @discardableResult
    public func createTopics(_ specs: [TopicSpec]) async throws -> [String] {
        for spec in specs {
            try TopicName.validate(spec.name)
            guard spec.partitions > 0 else {
                throw LogError(
                    .invalidTopic, "a topic needs at least one partition",
                    remedy: "give the topic a partition count of 1 or more", subject: spec.name)
            }
        }
        let existing = try await refreshTopics()
        let missing = specs.filter { existing[$0.name] == nil }
        if missing.isEmpty { return [] }
        let admin = self.admin
        let replication = configuration.replicationFactor
        let created = try await admin.blocking.run { try admin.createTopics(missing, replicationFactor: replication) }
        // Metadata propagates asynchronously: wait (boundedly) until the new topics are visible.
        for _ in 0..<50 {
            let topics = try await refreshTopics()
            if created.allSatisfy({ topics[$0] != nil }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return created
    }

    /// Describes the named topics: partitions from metadata, cleanup from DescribeConfigs,
    /// watermarks from ListOffsets. Unknown names are left out.
    /// - Throws: ``EventLog/LogError`` `.brokerUnreachable` and other broker errors.
    public func describeTopics(_ names: [String]) async throws -> [TopicDescription] {
        let topics = try await refreshTopics()
        let present = names.filter { topics[$0] != nil }
        if present.isEmpty { return [] }
        let admin = self.admin
        let configs = try await admin.blocking.run { try admin.topicConfigs(present) }
        var result: [TopicDescription] = []
        for name in present {
            let count = topics[name] ?? 0
            var marks: [Watermarks] = []
            for partition in 0..<count {
                marks.append(try await watermarks(TopicPartition(name, partition)))
            }
            let config = configs[name] ?? [:]
            let cleanup: CleanupPolicy
            if config["cleanup.policy"]?.contains("compact") == true {
                cleanup = .compact
            } else if let text = config["retention.ms"], let milliseconds = Int64(text), milliseconds >= 0 {
                cleanup = .delete(retention: .milliseconds(milliseconds))
            } else {
                cleanup = .delete(retention: nil)
            }
            result.append(
                TopicDescription(spec: TopicSpec(name: name, partitions: count, cleanup: cleanup), partitions: marks))
        }
        return result
    }

    /// Every topic in the cluster, sorted, without internal ones (names starting with `__`, such as
    /// `__consumer_offsets`).
    /// - Throws: ``EventLog/LogError`` `.brokerUnreachable` when no broker answers.
    public func listTopics() async throws -> [String] {
        try await refreshTopics().keys.filter { !$0.hasPrefix("__") }.sorted()
    }

    // MARK: Writing and reading

    /// Appends records through the idempotent producer and returns where each landed.
    ///
    /// A record's partition is its explicit one, or murmur2 of its key (librdkafka's
    /// `murmur2_random`, the same as ``EventLog/Partitioner``), or random without a key; its
    /// timestamp is the record's, or now. Topics are checked against (cached) metadata first, so a
    /// missing topic fails at once instead of after `message.timeout.ms`.
    /// - Throws: ``EventLog/LogError`` `.unknownTopic`, `.invalidPartition`, `.recordTooLarge`
    ///   (librdkafka's MSG_SIZE_TOO_LARGE), `.brokerUnreachable` (`_MSG_TIMED_OUT`, `_TRANSPORT`,
    ///   retriable), `.authorizationFailed`.
    public func append(_ records: [OutgoingRecord]) async throws -> [RecordPosition] {
        if records.isEmpty { return [] }
        for topic in Set(records.map(\.topic)) {
            let count = try await partitions(of: topic)
            for record in records where record.topic == topic {
                if let partition = record.partition, !(0..<count).contains(partition) {
                    throw LogError(
                        .invalidPartition, "partition \(partition) does not exist (the topic has \(count))",
                        subject: topic)
                }
            }
        }
        return try await theProducer().produce(records)
    }

    /// Reads up to `maxRecords` records of one partition from `offset` on, without a group. Returns
    /// as soon as the end of the partition is reached (fewer records, or none).
    /// - Throws: ``EventLog/LogError`` `.unknownTopic`, `.invalidPartition`, `.brokerUnreachable`.
    public func read(_ partition: TopicPartition, from offset: Int64, maxRecords: Int) async throws -> [LogRecord] {
        try await checkPartition(partition)
        let reader = try theReader()
        return try await reader.blocking.run { try reader.read(partition, from: offset, maxRecords: maxRecords) }
    }

    /// The partition's log start offset and high-water mark, from its leader.
    /// - Throws: ``EventLog/LogError`` `.unknownTopic`, `.invalidPartition`, `.brokerUnreachable`.
    public func watermarks(_ partition: TopicPartition) async throws -> Watermarks {
        try await checkPartition(partition)
        let admin = self.admin
        return try await admin.blocking.run { try admin.watermarks(partition) }
    }

    /// The first offset whose record's timestamp is at or after `time` (ListOffsets by timestamp),
    /// or the high-water mark when there is none.
    ///
    /// The broker's answer is confirmed by reading from it: on Kafka the first record read is the
    /// one; a broker that answers the log start instead (Tansu 0.6.0) is corrected by reading on.
    /// - Throws: ``EventLog/LogError`` `.unknownTopic`, `.invalidPartition`, `.brokerUnreachable`.
    public func offset(_ partition: TopicPartition, atOrAfter time: Date) async throws -> Int64 {
        try await checkPartition(partition)
        let admin = self.admin
        let milliseconds = Int64((time.timeIntervalSince1970 * 1000).rounded(.up))
        let found = try await admin.blocking.run { try admin.offsets(atOrAfter: [partition: milliseconds]) }
        guard let answer = found[partition] ?? nil else { return try await watermarks(partition).high }
        var position = answer
        while true {
            let batch = try await read(partition, from: position, maxRecords: 500)
            guard let last = batch.last else { return max(position, try await watermarks(partition).high) }
            let hit = batch.first { Int64(($0.timestamp.timeIntervalSince1970 * 1000).rounded()) >= milliseconds }
            if let hit { return hit.offset }
            position = last.offset + 1
        }
    }

    // MARK: Consumer groups

    /// Joins a consumer group (subscribing to topics or a pattern) or, with `group == nil`, makes
    /// a reader assigned every partition of the topics at the reset position.
    ///
    /// `.earliest`/`.latest` map to `auto.offset.reset`; `.offset(n)` and `.time(t)` are applied in
    /// the assign callback to partitions the group has no committed offset on.
    /// - Throws: ``EventLog/LogError`` `.unknownTopic` for a named topic that does not exist,
    ///   `.configuration`, broker errors.
    public func makeConsumer(_ configuration: ConsumerConfiguration) async throws -> any LogConsumer {
        if case .topics(let topics) = configuration.subscription {
            for topic in topics { _ = try await partitions(of: topic) }
        }
        return try await KafkaConsumer(configuration: configuration, kafka: self.configuration, admin: admin)
    }

    /// Every partition of the topics.
    private func allPartitions(_ topics: [String]) async throws -> [TopicPartition] {
        var result: [TopicPartition] = []
        for topic in topics {
            for index in 0..<(try await partitions(of: topic)) { result.append(TopicPartition(topic, index)) }
        }
        return result
    }

    /// The group's committed offsets (OffsetFetch from a client that does not join the group).
    /// - Throws: ``EventLog/LogError`` `.unknownTopic`, broker errors.
    public func committedOffsets(group: String, topics: [String]) async throws -> [TopicPartition: Int64] {
        let partitions = try await allPartitions(topics)
        let admin = self.admin
        return try await admin.blocking.run { try admin.committed(group: group, partitions: partitions) }
    }

    /// Moves a group's committed offsets: earliest and latest from the watermarks, an offset
    /// clamped to them, a time through ``offset(_:atOrAfter:)``; then commits them for the group
    /// from a client that does not join it.
    /// - Returns: the new committed offset of every partition.
    /// - Throws: ``EventLog/LogError`` `.groupBusy` while the group has active members (Kafka
    ///   refuses the commit), `.unknownTopic`, broker errors.
    @discardableResult
    public func seekGroup(_ group: String, topics: [String], to position: SeekPosition) async throws
        -> [TopicPartition: Int64]
    {
        var targets: [TopicPartition: Int64] = [:]
        for partition in try await allPartitions(topics) {
            switch position {
            case .earliest: targets[partition] = try await watermarks(partition).low
            case .latest: targets[partition] = try await watermarks(partition).high
            case .offset(let offset):
                let marks = try await watermarks(partition)
                targets[partition] = min(max(offset, marks.low), marks.high)
            case .time(let time): targets[partition] = try await self.offset(partition, atOrAfter: time)
            }
        }
        let request = targets
        let admin = self.admin
        try await admin.blocking.run { try admin.commit(group: group, offsets: request) }
        return targets
    }

    /// The consumer groups the cluster knows (ListGroups), sorted.
    /// - Throws: ``EventLog/LogError`` `.brokerUnreachable` and other broker errors.
    public func listGroups() async throws -> [String] {
        let admin = self.admin
        return try await admin.blocking.run { try admin.groups() }.sorted()
    }

    /// How far the group is behind on each partition: high-water mark minus committed offset.
    /// - Throws: ``EventLog/LogError`` `.unknownTopic`, broker errors.
    public func lag(group: String, topics: [String]) async throws -> [PartitionLag] {
        let committed = try await committedOffsets(group: group, topics: topics)
        var result: [PartitionLag] = []
        for partition in try await allPartitions(topics) {
            result.append(
                PartitionLag(partition: partition, committed: committed[partition], watermarks: try await watermarks(partition)))
        }
        return result
    }

    /// Waits for records in flight (up to ten seconds; what is still undelivered then fails its
    /// append), then frees the producer. Consumers are closed on their own.
    public func close() async {
        let made = producer.withLock { producer -> KafkaProducer? in
            defer { producer = nil }
            return producer
        }
        reader.withLock { $0 = nil }
        guard let made else { return }
        // rd_kafka_flush blocks: not on the cooperative pool.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                made.close()
                continuation.resume()
            }
        }
    }
}
