import CRDKafka
import EventLog
import Foundation
import Synchronization

/// What the rebalance callback needs; lives as long as the consumer (passed unretained as the
/// client's opaque, and the consumer destroys the client before releasing it).
final class RebalanceContext: @unchecked Sendable {
    // @unchecked Sendable: only read on the consumer's serial queue, where librdkafka calls the
    // rebalance callback (from inside rd_kafka_consumer_poll / rd_kafka_consumer_close).
    let onRevoked: (@Sendable ([TopicPartition]) -> Void)?
    let onAssigned: (@Sendable ([TopicPartition]) -> Void)?
    let reset: SeekPosition
    let timeout: Int32

    init(configuration: ConsumerConfiguration, timeout: Int32) {
        onRevoked = configuration.onPartitionsRevoked
        onAssigned = configuration.onPartitionsAssigned
        reset = configuration.autoOffsetReset
        self.timeout = timeout
    }

    /// For partitions the group has no committed offset on, a reset to an offset or a time is
    /// applied here (librdkafka's auto.offset.reset knows only earliest and latest).
    func applyStartPositions(_ client: OpaquePointer, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        guard case .offset = reset else {
            guard case .time = reset else { return }
            return applyTimes(client, list)
        }
        guard case .offset(let offset) = reset else { return }
        _ = rd_kafka_committed(client, list, timeout)
        for index in 0..<Int(list.pointee.cnt) where list.pointee.elems[index].offset < 0 {
            list.pointee.elems[index].offset = offset
        }
    }

    private func applyTimes(_ client: OpaquePointer, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        guard case .time(let time) = reset else { return }
        _ = rd_kafka_committed(client, list, timeout)
        let lookup = rd_kafka_topic_partition_list_new(list.pointee.cnt)!
        defer { rd_kafka_topic_partition_list_destroy(lookup) }
        for index in 0..<Int(list.pointee.cnt) where list.pointee.elems[index].offset < 0 {
            let element = list.pointee.elems[index]
            rd_kafka_topic_partition_list_add(lookup, element.topic, element.partition)!.pointee.offset =
                Int64(time.timeIntervalSince1970 * 1000)
        }
        guard lookup.pointee.cnt > 0, rd_kafka_offsets_for_times(client, lookup, timeout) == RD_KAFKA_RESP_ERR_NO_ERROR
        else { return }
        for found in PartitionList.elements(of: lookup) {
            for index in 0..<Int(list.pointee.cnt)
            where String(cString: list.pointee.elems[index].topic) == found.0.topic
                && Int(list.pointee.elems[index].partition) == found.0.partition
            {
                list.pointee.elems[index].offset = found.1 >= 0 ? found.1 : Int64(RD_KAFKA_OFFSET_END)
            }
        }
    }
}

/// librdkafka's rebalance callback: tells the application before partitions go, and after they come.
private func rebalance(
    _ client: OpaquePointer?, _ error: rd_kafka_resp_err_t,
    _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let client, let partitions, let opaque else { return }
    let context = Unmanaged<RebalanceContext>.fromOpaque(opaque).takeUnretainedValue()
    let list = PartitionList.elements(of: partitions).map(\.0)
    let cooperative = String(cString: rd_kafka_rebalance_protocol(client)) == "COOPERATIVE"
    switch error {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        context.applyStartPositions(client, partitions)
        if cooperative {
            if let failure = rd_kafka_incremental_assign(client, partitions) { rd_kafka_error_destroy(failure) }
        } else {
            rd_kafka_assign(client, partitions)
        }
        context.onAssigned?(list)
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        context.onRevoked?(list)
        if cooperative {
            if let failure = rd_kafka_incremental_unassign(client, partitions) { rd_kafka_error_destroy(failure) }
        } else {
            rd_kafka_assign(client, nil)
        }
    default:
        rd_kafka_assign(client, nil)
    }
}

/// A Kafka consumer: a group member (subscribe, rebalance callbacks, explicit commits) or, without
/// a group, a reader assigned every partition of its topics. Every librdkafka call runs on its own
/// serial queue.
final class KafkaConsumer: LogConsumer, @unchecked Sendable {
    // @unchecked Sendable: `client` and `buffer` are touched only on `blocking`'s serial queue.
    private let client: OpaquePointer
    private let context: Unmanaged<RebalanceContext>
    private let blocking = BlockingQueue(label: "onewindow.kafka.consume")
    private let group: String?
    private var buffer: [LogRecord] = []
    private var closed = false

    init(
        configuration: ConsumerConfiguration, kafka: KafkaConfiguration, admin: AdminClient, only: TopicPartition? = nil
    ) async throws {
        group = configuration.group
        let reset: String
        switch configuration.autoOffsetReset {
        case .latest: reset = "latest"
        default: reset = "earliest"
        }
        let conf = try makeConf(
            kafka.consumerProperties(group: configuration.group ?? "onewindow-reader-\(UUID().uuidString)", reset: reset))
        let context = Unmanaged.passRetained(RebalanceContext(configuration: configuration, timeout: kafka.timeoutMilliseconds))
        if configuration.group != nil {
            rd_kafka_conf_set_rebalance_cb(conf, rebalance)
        }
        rd_kafka_conf_set_opaque(conf, context.toOpaque())
        do {
            client = try makeClient(RD_KAFKA_CONSUMER, conf)
        } catch {
            context.release()
            throw error
        }
        self.context = context
        rd_kafka_poll_set_consumer(client)
        let handle = SendableHandle(client)
        switch (configuration.subscription, configuration.group) {
        case (.topics(let topics), .some):
            try await blocking.run { try Self.subscribe(handle.pointer, topics) }
        case (.pattern(let pattern), .some):
            try await blocking.run { try Self.subscribe(handle.pointer, ["^" + pattern]) }
        case (let subscription, nil):
            // No group: read every partition of the topics from the reset position.
            let all = try await admin.blocking.run { try admin.topics() }
            let names: [String]
            switch subscription {
            case .topics(let topics):
                for topic in topics where all[topic] == nil { throw LogError.unknownTopic(topic) }
                names = topics
            case .pattern(let pattern):
                let regex = try Regex(pattern)
                names = all.keys.filter { (try? regex.wholeMatch(in: $0)) != nil && !$0.hasPrefix("__") }
            }
            var starts: [TopicPartition: Int64] = [:]
            for name in names {
                for partition in 0..<(all[name] ?? 0) where only == nil || only == TopicPartition(name, partition) {
                    starts[TopicPartition(name, partition)] = try await Self.start(
                        configuration.autoOffsetReset, TopicPartition(name, partition), admin: admin)
                }
            }
            let list = PartitionList(starts)
            try await blocking.run {
                let error = rd_kafka_assign(handle.pointer, list.pointer)
                guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaErrors.error(error, "assigning partitions") }
            }
        }
    }

    private static func start(_ reset: SeekPosition, _ partition: TopicPartition, admin: AdminClient) async throws -> Int64 {
        switch reset {
        case .earliest: return Int64(RD_KAFKA_OFFSET_BEGINNING)
        case .latest: return Int64(RD_KAFKA_OFFSET_END)
        case .offset(let offset): return offset
        case .time(let time):
            let found = try await admin.blocking.run {
                try admin.offsets(atOrAfter: [partition: Int64(time.timeIntervalSince1970 * 1000)])
            }
            return (found[partition] ?? nil) ?? Int64(RD_KAFKA_OFFSET_END)
        }
    }

    private static func subscribe(_ client: OpaquePointer, _ topics: [String]) throws {
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
        let error = rd_kafka_subscribe(client, list)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaErrors.error(error, "subscribing") }
    }

    deinit {
        if !closed { rd_kafka_consumer_close(client) }
        rd_kafka_destroy(client)
        context.release()
    }

    func poll(maxRecords: Int, timeout: Duration) async throws -> [LogRecord] {
        let milliseconds = Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        return try await blocking.run { [self] in
            if closed { throw LogError(.closed, "the consumer is closed") }
            let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(milliseconds) * 1_000_000
            var topicNames: [OpaquePointer: String] = [:]
            while buffer.count < max(maxRecords, 1) {
                let now = DispatchTime.now().uptimeNanoseconds
                // Once something arrived, only take what is already fetched.
                let wait = buffer.isEmpty ? Int32(max(0, Int(deadline > now ? (deadline - now) / 1_000_000 : 0))) : 0
                guard let message = rd_kafka_consumer_poll(client, wait) else {
                    if !buffer.isEmpty || DispatchTime.now().uptimeNanoseconds >= deadline { break }
                    continue
                }
                defer { rd_kafka_message_destroy(message) }
                let error = message.pointee.err
                if error == RD_KAFKA_RESP_ERR__PARTITION_EOF { continue }
                if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                    if buffer.isEmpty { throw KafkaErrors.error(error, "consuming") }
                    break
                }
                buffer.append(Self.record(message, topicNames: &topicNames))
            }
            let count = min(maxRecords, buffer.count)
            let result = Array(buffer.prefix(count))
            buffer.removeFirst(count)
            return result
        }
    }

    private static func record(
        _ message: UnsafeMutablePointer<rd_kafka_message_t>, topicNames: inout [OpaquePointer: String]
    ) -> LogRecord {
        let pointee = message.pointee
        let topic: String
        if let known = topicNames[pointee.rkt] {
            topic = known
        } else {
            topic = String(cString: rd_kafka_topic_name(pointee.rkt))
            topicNames[pointee.rkt] = topic
        }
        var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &type)
        let key = pointee.key.map { Data(bytes: $0, count: pointee.key_len) }
        let value = pointee.payload.map { Data(bytes: $0, count: pointee.len) } ?? Data()
        var headers: [LogHeader] = []
        var list: OpaquePointer?
        if rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list {
            var index = 0
            var name: UnsafePointer<CChar>?
            var bytes: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(list, index, &name, &bytes, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                headers.append(
                    LogHeader(name: String(cString: name!), value: bytes.map { Data(bytes: $0, count: size) } ?? Data()))
                index += 1
            }
        }
        return LogRecord(
            topic: topic, partition: Int(pointee.partition), offset: pointee.offset,
            timestamp: Date(timeIntervalSince1970: Double(max(timestamp, 0)) / 1000), key: key, value: value,
            headers: headers)
    }

    func commit(offsets: [TopicPartition: Int64]) async throws {
        guard let group else {
            throw LogError(.configuration, "a consumer without a group cannot commit offsets", remedy: "give the consumer a group")
        }
        let list = PartitionList(offsets)
        try await blocking.run { [self] in
            let error = rd_kafka_commit(client, list.pointer, 0)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaErrors.error(error, "committing offsets", subject: group) }
            for (partition, _, elementError) in list.elements where elementError != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaErrors.error(elementError, "committing offsets", subject: "\(group) \(partition)")
            }
        }
    }

    func assignment() async throws -> [TopicPartition] {
        try await blocking.run { [self] in
            var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
            let error = rd_kafka_assignment(client, &list)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { throw KafkaErrors.error(error, "reading the assignment") }
            return PartitionList(owning: list).elements.map(\.0).sorted()
        }
    }

    func close() async {
        _ = try? await blocking.run { [self] in
            guard !closed else { return }
            closed = true
            rd_kafka_consumer_close(client)
        }
    }
}
