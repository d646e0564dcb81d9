import CRDKafka
import EventLog
import Foundation

/// A consumer-type `rd_kafka_t` that never joins a group: metadata, watermarks, offsets for
/// times, group listing and admin requests (CreateTopics, DescribeConfigs). Freed in `deinit`.
///
/// Every method blocks; callers run them through ``blocking``, off the cooperative pool.
final class AdminClient: @unchecked Sendable {
    // @unchecked Sendable: the handle is thread-safe for the calls made here (librdkafka documents
    // metadata, watermark, offsets_for_times, list_groups and the admin API as thread-safe), the
    // stored properties are immutable, and every call goes through `blocking`.
    let client: OpaquePointer
    let blocking = BlockingQueue(label: "onewindow.kafka.admin")
    let timeout: Int32
    private let configuration: KafkaConfiguration

    /// - Throws: ``LogError`` `.configuration` when librdkafka refuses a property.
    init(configuration: KafkaConfiguration) throws {
        self.configuration = configuration
        client = try makeClient(RD_KAFKA_CONSUMER, try KafkaConf(configuration.librdkafkaProperties(.admin)))
        timeout = configuration.timeoutMilliseconds
    }

    deinit {
        // No request is in flight: every call is synchronous on `blocking`, which holds `self`.
        rd_kafka_destroy(client)
    }

    /// Topic name → partition count, of every topic in the cluster (internal ones included).
    /// - Throws: ``LogError`` `.brokerUnreachable` when no broker answers in time.
    func topics() throws -> [String: Int] {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let error = rd_kafka_metadata(client, 1, nil, &metadata, timeout)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaErrors.error(error, "reading the cluster's metadata")
        }
        // Ownership: the metadata is ours to free with rd_kafka_metadata_destroy.
        defer { rd_kafka_metadata_destroy(metadata) }
        var result: [String: Int] = [:]
        for index in 0..<Int(metadata.pointee.topic_cnt) {
            let topic = metadata.pointee.topics[index]
            if topic.err != RD_KAFKA_RESP_ERR_NO_ERROR { continue }
            result[String(cString: topic.topic)] = Int(topic.partition_cnt)
        }
        return result
    }

    /// The low and high watermarks, asked of the partition's leader (ListOffsets).
    func watermarks(_ partition: TopicPartition) throws -> Watermarks {
        var low: Int64 = 0
        var high: Int64 = 0
        let error = rd_kafka_query_watermark_offsets(
            client, partition.topic, Int32(partition.partition), &low, &high, timeout)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaErrors.error(error, "reading the watermarks", subject: partition.description)
        }
        return Watermarks(low: low, high: high)
    }

    /// The first offset at or after each time in milliseconds (ListOffsets by timestamp); `nil`
    /// where no record is that recent.
    func offsets(atOrAfter times: [TopicPartition: Int64]) throws -> [TopicPartition: Int64?] {
        let list = PartitionList(times)
        let error = rd_kafka_offsets_for_times(client, list.pointer, timeout)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaErrors.error(error, "looking up offsets by time") }
        try list.throwFirstError("looking up offsets by time")
        var result: [TopicPartition: Int64?] = [:]
        for element in list.elements { result[element.partition] = element.offset >= 0 ? element.offset : nil }
        return result
    }

    /// The consumer groups the cluster knows, without OneWindow's own never-joining clients.
    func groups() throws -> [String] {
        var list: UnsafePointer<rd_kafka_group_list>?
        let error = rd_kafka_list_groups(client, nil, &list, timeout)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let list else {
            throw KafkaErrors.error(error, "listing consumer groups")
        }
        // Ownership: the list is ours to free with rd_kafka_group_list_destroy.
        defer { rd_kafka_group_list_destroy(list) }
        return (0..<Int(list.pointee.group_cnt)).map { String(cString: list.pointee.groups[$0].group) }
            .filter { !$0.hasPrefix("onewindow-admin-") && !$0.hasPrefix("onewindow-reader-") }
    }

    // MARK: Admin API

    /// Creates topics and returns the names actually created (TOPIC_ALREADY_EXISTS is not an error:
    /// another process may have created the topic in between).
    func createTopics(_ specs: [TopicSpec], replicationFactor: Int) throws -> [String] {
        var buffer = [CChar](repeating: 0, count: 256)
        // Ownership: each NewTopic is ours (rd_kafka_CreateTopics copies what it needs).
        var newTopics: [OpaquePointer?] = []
        defer { for topic in newTopics { rd_kafka_NewTopic_destroy(topic) } }
        for spec in specs {
            guard
                let topic = rd_kafka_NewTopic_new(
                    spec.name, Int32(spec.partitions), Int32(replicationFactor), &buffer, buffer.count)
            else {
                throw LogError(.invalidTopic, errorText(buffer), subject: spec.name)
            }
            newTopics.append(topic)
            switch spec.cleanup {
            case .compact:
                _ = rd_kafka_NewTopic_set_config(topic, "cleanup.policy", "compact")
            case .delete:
                _ = rd_kafka_NewTopic_set_config(topic, "cleanup.policy", "delete")
                _ = rd_kafka_NewTopic_set_config(topic, "retention.ms", spec.retentionMilliseconds.map(String.init) ?? "-1")
            }
        }
        let event = try adminRequest { options, queue in
            newTopics.withUnsafeMutableBufferPointer { topics in
                rd_kafka_CreateTopics(client, topics.baseAddress, topics.count, options, queue)
            }
        }
        defer { rd_kafka_event_destroy(event) }
        var count = 0
        guard let result = rd_kafka_event_CreateTopics_result(event),
            let results = rd_kafka_CreateTopics_result_topics(result, &count)
        else { return [] }
        var created: [String] = []
        for index in 0..<count {
            let topic = results[index]
            let name = String(cString: rd_kafka_topic_result_name(topic))
            let error = rd_kafka_topic_result_error(topic)
            switch error {
            case RD_KAFKA_RESP_ERR_NO_ERROR: created.append(name)
            case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS: continue
            default:
                var failure = KafkaErrors.error(error, "creating the topic", subject: name)
                if let message = rd_kafka_topic_result_error_string(topic).map({ String(cString: $0) }),
                    !message.isEmpty
                {
                    failure.reason += " (\(message))"
                }
                throw failure
            }
        }
        return created
    }

    /// `cleanup.policy` and `retention.ms` of each topic (DescribeConfigs).
    func topicConfigs(_ names: [String]) throws -> [String: [String: String]] {
        // Ownership: each ConfigResource is ours; the result's resources belong to the event.
        var resources: [OpaquePointer?] = names.map { rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, $0) }
        defer { for resource in resources { rd_kafka_ConfigResource_destroy(resource) } }
        let event = try adminRequest { options, queue in
            resources.withUnsafeMutableBufferPointer { buffer in
                rd_kafka_DescribeConfigs(client, buffer.baseAddress, buffer.count, options, queue)
            }
        }
        defer { rd_kafka_event_destroy(event) }
        var result: [String: [String: String]] = [:]
        var count = 0
        guard let described = rd_kafka_event_DescribeConfigs_result(event),
            let list = rd_kafka_DescribeConfigs_result_resources(described, &count)
        else { return result }
        for index in 0..<count {
            let resource = list[index]
            let name = String(cString: rd_kafka_ConfigResource_name(resource))
            var entryCount = 0
            guard let entries = rd_kafka_ConfigResource_configs(resource, &entryCount) else { continue }
            var values: [String: String] = [:]
            for entry in 0..<entryCount {
                let key = String(cString: rd_kafka_ConfigEntry_name(entries[entry]))
                if key == "cleanup.policy" || key == "retention.ms", let value = rd_kafka_ConfigEntry_value(entries[entry]) {
                    values[key] = String(cString: value)
                }
            }
            result[name] = values
        }
        return result
    }

    /// Runs one admin request and returns its result event, which the caller destroys.
    private func adminRequest(_ send: (OpaquePointer, OpaquePointer) -> Void) throws -> OpaquePointer {
        // Ownership: the queue and the options are ours, destroyed when the answer is in.
        let queue = rd_kafka_queue_new(client)!
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(client, RD_KAFKA_ADMIN_OP_ANY)!
        defer { rd_kafka_AdminOptions_destroy(options) }
        var buffer = [CChar](repeating: 0, count: 256)
        _ = rd_kafka_AdminOptions_set_request_timeout(options, timeout, &buffer, buffer.count)
        send(options, queue)
        guard let event = rd_kafka_queue_poll(queue, timeout + 2000) else {
            throw LogError(
                .brokerUnreachable, "the cluster did not answer an admin request in time",
                remedy: "check that the brokers in --bus are up and reachable; the operation can be retried",
                isRetriable: true)
        }
        let error = rd_kafka_event_error(event)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            var failure = KafkaErrors.error(error, "an admin request")
            if let text = rd_kafka_event_error_string(event) { failure.reason += " (\(String(cString: text)))" }
            rd_kafka_event_destroy(event)
            throw failure
        }
        return event
    }

    // MARK: A group's offsets, from outside the group

    /// Runs `body` with a consumer handle carrying the group's id that never joins the group:
    /// it reads and writes the group's committed offsets like `kafka-consumer-groups` does.
    private func withGroupClient<T>(_ group: String, _ body: (OpaquePointer) throws -> T) throws -> T {
        let conf = try KafkaConf(configuration.librdkafkaProperties(.consumer(group: group, reset: "earliest")))
        let client = try makeClient(RD_KAFKA_CONSUMER, conf)
        // Never subscribed, so destroying does not leave or rebalance the group.
        defer { rd_kafka_destroy(client) }
        return try body(client)
    }

    /// The group's committed offsets on these partitions (left out where it has none).
    func committed(group: String, partitions: [TopicPartition]) throws -> [TopicPartition: Int64] {
        if partitions.isEmpty { return [:] }
        let list = PartitionList(Dictionary(uniqueKeysWithValues: partitions.map { ($0, Int64(RD_KAFKA_OFFSET_INVALID)) }))
        return try withGroupClient(group) { client in
            let error = rd_kafka_committed(client, list.pointer, timeout)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaErrors.error(error, "reading committed offsets", subject: group)
            }
            try list.throwFirstError("reading committed offsets", subject: group)
            var result: [TopicPartition: Int64] = [:]
            for element in list.elements where element.offset >= 0 { result[element.partition] = element.offset }
            return result
        }
    }

    /// Commits offsets for a group from outside it. A group with active members refuses
    /// (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION): that is ``LogError`` `.groupBusy`.
    func commit(group: String, offsets: [TopicPartition: Int64]) throws {
        if offsets.isEmpty { return }
        let list = PartitionList(offsets)
        try withGroupClient(group) { client in
            let error = rd_kafka_commit(client, list.pointer, 0)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaErrors.error(error, "moving the group's offsets", subject: group)
            }
            try list.throwFirstError("moving the group's offsets", subject: group)
        }
    }
}
