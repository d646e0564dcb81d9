internal import CRDKafka
import Dispatch
import EventLog
import Foundation
import Logging
import Synchronization

/// Builds an `rd_kafka_conf_t` from properties. The caller owns the result until it hands it to
/// `rd_kafka_new`, which takes it over only on success.
/// Every client's own log lines go through swift-log (``LibrdkafkaLogging``).
func makeConf(_ properties: [String: String]) throws -> OpaquePointer {
    let conf = rd_kafka_conf_new()!
    rd_kafka_conf_set_log_cb(conf, librdkafkaLogLine)
    var buffer = [CChar](repeating: 0, count: 512)
    for (name, value) in properties.sorted(by: { $0.key < $1.key }) {
        if rd_kafka_conf_set(conf, name, value, &buffer, buffer.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            let message = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw LogError(
                .configuration, "librdkafka refused \(name)=\(name.contains("password") ? "***" : value): \(message)",
                remedy: "fix the property in the Kafka configuration (see librdkafka's CONFIGURATION.md)")
        }
    }
    return conf
}

/// Creates a client from a conf whose own log lines go to `logger`. On failure the conf is
/// destroyed here (rd_kafka_new frees it only on success). Free the client with `destroyClient`.
func makeClient(_ type: rd_kafka_type_t, _ conf: OpaquePointer, logger: Logger) throws -> OpaquePointer {
    var buffer = [CChar](repeating: 0, count: 512)
    // Registered before `creating` lets go of the logger: a line of the new client's threads in
    // between went to the default logger (and reached standard error in a one-shot command).
    let made = LibrdkafkaLogging.creating(logger) {
        let client = rd_kafka_new(type, conf, &buffer, buffer.count)
        if let client { LibrdkafkaLogging.register(client, logger) }
        return client
    }
    guard let client = made else {
        rd_kafka_conf_destroy(conf)
        let message = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw LogError(.configuration, "cannot create the Kafka client: \(message)")
    }
    return client
}

/// Runs blocking librdkafka calls on a dedicated serial queue, never on Swift's cooperative pool.
struct BlockingQueue: Sendable {
    let queue: DispatchQueue

    init(label: String) {
        queue = DispatchQueue(label: label)
    }

    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }
}

/// A consumer-type `rd_kafka_t` that never joins a group: metadata, watermarks, offsets for
/// times, admin requests. Freed in `deinit`.
final class AdminClient: @unchecked Sendable {
    // @unchecked Sendable: the handle is thread-safe for the calls made here (librdkafka
    // documents metadata, watermark, offsets_for_times and admin calls as thread-safe), and every
    // call goes through `blocking`, off the cooperative pool.
    let client: OpaquePointer
    let blocking = BlockingQueue(label: "onewindow.kafka.admin")
    let timeout: Int32

    init(configuration: KafkaConfiguration) throws {
        var properties = configuration.consumerProperties(group: "onewindow-admin-\(UUID().uuidString)", reset: "earliest")
        properties["client.id"] = configuration.clientId + "-admin"
        client = try makeClient(RD_KAFKA_CONSUMER, try makeConf(properties), logger: configuration.librdkafkaLogger)
        timeout = configuration.timeoutMilliseconds
    }

    deinit {
        // Destroying waits for the client's threads: on its queue, off the cooperative pool.
        let handle = SendableHandle(client)
        KafkaTeardown.begin()
        blocking.queue.async {
            destroyClient(handle.pointer)
            KafkaTeardown.end()
        }
    }

    /// Topic name → partition count, of every topic in the cluster.
    func topics() throws -> [String: Int] {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let error = rd_kafka_metadata(client, 1, nil, &metadata, timeout)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaErrors.error(error, "reading the cluster's metadata")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        var result: [String: Int] = [:]
        for index in 0..<Int(metadata.pointee.topic_cnt) {
            let topic = metadata.pointee.topics[index]
            if topic.err != RD_KAFKA_RESP_ERR_NO_ERROR { continue }
            result[String(cString: topic.topic)] = Int(topic.partition_cnt)
        }
        return result
    }

    func watermarks(_ partition: TopicPartition) throws -> Watermarks {
        var low: Int64 = 0
        var high: Int64 = 0
        let error = rd_kafka_query_watermark_offsets(client, partition.topic, Int32(partition.partition), &low, &high, timeout)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaErrors.error(error, "reading the watermarks", subject: partition.description)
        }
        return Watermarks(low: low, high: high)
    }

    /// First offset at or after each time (Kafka's ListOffsets by timestamp); `nil` when none.
    func offsets(atOrAfter times: [TopicPartition: Int64]) throws -> [TopicPartition: Int64?] {
        let list = PartitionList(times)
        let error = rd_kafka_offsets_for_times(client, list.pointer, timeout)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaErrors.error(error, "looking up offsets by time") }
        var result: [TopicPartition: Int64?] = [:]
        for (partition, offset, elementError) in list.elements {
            if elementError != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaErrors.error(elementError, "looking up offsets by time", subject: partition.description)
            }
            result[partition] = offset >= 0 ? offset : nil
        }
        return result
    }

    /// Groups known to the cluster.
    func groups() throws -> [String] {
        var list: UnsafePointer<rd_kafka_group_list>?
        let error = rd_kafka_list_groups(client, nil, &list, timeout)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { throw KafkaErrors.error(error, "listing consumer groups") }
        defer { rd_kafka_group_list_destroy(list) }
        return (0..<Int(list.pointee.group_cnt)).map { String(cString: list.pointee.groups[$0].group) }
    }

    /// The members of one group as its coordinator describes them (the DescribeConsumerGroups
    /// admin request), each with its client id, host and assigned partitions.
    ///
    /// A broker that reports the group active (stable or rebalancing) but lists no member
    /// (Tansu 0.6.0 lists none, ever) gives one member standing for them all,
    /// ``GroupMember/unnamed(state:)``: the group is known to be in use, not by whom.
    func members(of group: String) throws -> [GroupMember] {
        let event = try adminRequest { options, queue in
            group.withCString { name in
                var names: [UnsafePointer<CChar>?] = [name]
                names.withUnsafeMutableBufferPointer { buffer in
                    rd_kafka_DescribeConsumerGroups(client, buffer.baseAddress, 1, options, queue)
                }
            }
        }
        defer { rd_kafka_event_destroy(event) }
        var count = 0
        guard let result = rd_kafka_event_DescribeConsumerGroups_result(event),
            let groups = rd_kafka_DescribeConsumerGroups_result_groups(result, &count)
        else { return [] }
        var members: [GroupMember] = []
        for index in 0..<count {
            guard let description = groups[index] else { continue }
            if let error = rd_kafka_ConsumerGroupDescription_error(description) {
                let code = rd_kafka_error_code(error)
                if code == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND { continue }
                var failure = KafkaErrors.error(code, "describing the consumer group", subject: group)
                if let text = rd_kafka_error_string(error) { failure.reason += " (\(String(cString: text)))" }
                throw failure
            }
            for memberIndex in 0..<rd_kafka_ConsumerGroupDescription_member_count(description) {
                guard let member = rd_kafka_ConsumerGroupDescription_member(description, memberIndex) else { continue }
                var partitions: [TopicPartition] = []
                if let assignment = rd_kafka_MemberDescription_assignment(member),
                    let list = rd_kafka_MemberAssignment_partitions(assignment)
                {
                    partitions = PartitionList.elements(of: list).map(\.0)
                }
                let host = rd_kafka_MemberDescription_host(member).map { String(cString: $0) }
                members.append(
                    GroupMember(
                        memberId: rd_kafka_MemberDescription_consumer_id(member).map { String(cString: $0) } ?? "",
                        clientId: rd_kafka_MemberDescription_client_id(member).map { String(cString: $0) } ?? "",
                        host: host.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 },
                        partitions: partitions.sorted()))
            }
            let state = rd_kafka_ConsumerGroupDescription_state(description)
            let active: [rd_kafka_consumer_group_state_t: String] = [
                RD_KAFKA_CONSUMER_GROUP_STATE_STABLE: "stable",
                RD_KAFKA_CONSUMER_GROUP_STATE_PREPARING_REBALANCE: "preparing a rebalance",
                RD_KAFKA_CONSUMER_GROUP_STATE_COMPLETING_REBALANCE: "completing a rebalance",
            ]
            if members.isEmpty, let name = active[state] { members.append(.unnamed(state: name)) }
        }
        return members.sorted { $0.memberId < $1.memberId }
    }

    /// Runs one admin request and returns its result event (destroyed by the caller).
    func adminRequest(_ send: (OpaquePointer, OpaquePointer) -> Void) throws -> OpaquePointer {
        let queue = rd_kafka_queue_new(client)!
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(client, RD_KAFKA_ADMIN_OP_ANY)!
        defer { rd_kafka_AdminOptions_destroy(options) }
        var buffer = [CChar](repeating: 0, count: 256)
        _ = rd_kafka_AdminOptions_set_request_timeout(options, timeout, &buffer, buffer.count)
        send(options, queue)
        guard let event = rd_kafka_queue_poll(queue, timeout + 2000) else {
            throw LogError(.timedOut, "the cluster did not answer an admin request in time", isRetriable: true)
        }
        let error = rd_kafka_event_error(event)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            rd_kafka_event_destroy(event)
            throw KafkaErrors.error(error, "an admin request")
        }
        return event
    }
}

/// A group-less consumer client that reads one partition range at a time, for `KafkaLog.read`:
/// made once and reassigned for each read (a new client per read costs a connection and
/// metadata round trips). Every call runs on `blocking`.
final class PartitionReader: @unchecked Sendable {
    // @unchecked Sendable: `client` and `closed` are used only on `blocking`'s serial queue.
    private let client: OpaquePointer
    let blocking = BlockingQueue(label: "onewindow.kafka.read")
    private var closed = false

    init(configuration: KafkaConfiguration) throws {
        var properties = configuration.consumerProperties(group: "onewindow-reader-\(UUID().uuidString)", reset: "earliest")
        properties["client.id"] = configuration.clientId + "-reader"
        properties["enable.partition.eof"] = "true"
        client = try makeClient(RD_KAFKA_CONSUMER, try makeConf(properties), logger: configuration.librdkafkaLogger)
        rd_kafka_poll_set_consumer(client)
    }

    deinit {
        let handle = SendableHandle(client)
        let wasClosed = closed
        KafkaTeardown.begin()
        blocking.queue.async {
            if !wasClosed { rd_kafka_consumer_close(handle.pointer) }
            destroyClient(handle.pointer)
            KafkaTeardown.end()
        }
    }

    /// Reads `partition` from `start`: at least up to `min(high, start + maxRecords)` (the end the
    /// watermarks promise), then whatever is already there beyond it, up to `maxRecords` (some
    /// brokers report the high-water mark low: Tansu 0.6.0 after a batched produce, docs/KAFKA.md).
    /// Past the promised end it stops at librdkafka's end-of-partition event at the read position
    /// (a fetch came back empty there), after a quiet moment once records flowed, or after two
    /// seconds when nothing at all came since the assignment (the first fetch takes a while).
    /// On `blocking`.
    func read(_ partition: TopicPartition, from start: Int64, maxRecords: Int, high: Int64, timeout: Int32) throws
        -> [LogRecord]
    {
        if closed { throw LogError(.closed, "the Kafka log is closed", subject: partition.description) }
        let list = PartitionList([partition: start])
        var error = rd_kafka_assign(client, list.pointer)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaErrors.error(error, "assigning the partition to read", subject: partition.description)
        }
        defer { _ = rd_kafka_assign(client, nil) }
        let target = min(high, start + Int64(maxRecords))
        var records: [LogRecord] = []
        var next = start
        var topicNames = KafkaConsumer.TopicNames()
        var previousHeaders: [LogHeader] = []
        let assigned = DispatchTime.now().uptimeNanoseconds
        let deadline = assigned + UInt64(max(timeout, 1000)) * 1_000_000
        var heard = false
        while records.count < maxRecords {
            let promised = next < target
            let now = DispatchTime.now().uptimeNanoseconds
            if promised && now >= deadline {
                throw LogError(
                    .timedOut,
                    "read \(records.count) of the \(target - start) records from offset \(start) the watermarks promise (high-water mark \(high)) before the timeout",
                    remedy: "check that the broker is reachable and retry", subject: partition.description,
                    isRetriable: true)
            }
            // Past the promised end: only take what is already fetched or arrives soon.
            let wait = promised ? Int32(min(500, (deadline - now) / 1_000_000)) : 300
            guard let message = rd_kafka_consumer_poll(client, wait) else {
                if promised { continue }
                if heard || DispatchTime.now().uptimeNanoseconds - assigned > 2_000_000_000 { break }
                continue
            }
            defer { rd_kafka_message_destroy(message) }
            guard message.pointee.partition == Int32(partition.partition) else { continue }
            heard = true
            error = message.pointee.err
            if error == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                if !promised && message.pointee.offset >= next { break }
                continue
            }
            if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaErrors.error(error, "reading from offset \(next)", subject: partition.description)
            }
            let record = KafkaConsumer.record(message, topicNames: &topicNames, previousHeaders: &previousHeaders)
            guard record.topic == partition.topic, record.offset >= next else { continue }
            records.append(record)
            next = record.offset + 1
        }
        return records
    }

    func close() async {
        _ = try? await blocking.run { [self] in
            guard !closed else { return }
            closed = true
            rd_kafka_consumer_close(client)
        }
    }
}

/// A librdkafka handle that may cross into the closures run on a `BlockingQueue`.
/// @unchecked Sendable: librdkafka handles are thread-safe for the calls OneWindow makes, and each
/// owner serialises its calls on one queue anyway.
struct SendableHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}

/// Owns an `rd_kafka_topic_partition_list_t`, freed in `deinit`.
/// @unchecked Sendable: a list is built, handed to one librdkafka call on one queue, and read back
/// there; it is never used from two threads at once.
final class PartitionList: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    init(_ offsets: [TopicPartition: Int64]) {
        pointer = rd_kafka_topic_partition_list_new(Int32(max(offsets.count, 1)))
        for (partition, offset) in offsets.sorted(by: { $0.key < $1.key }) {
            let element = rd_kafka_topic_partition_list_add(pointer, partition.topic, Int32(partition.partition))!
            element.pointee.offset = offset
        }
    }

    /// Takes over a list librdkafka gave us to free.
    init(owning pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        self.pointer = pointer
    }

    deinit {
        rd_kafka_topic_partition_list_destroy(pointer)
    }

    var elements: [(TopicPartition, Int64, rd_kafka_resp_err_t)] {
        Self.elements(of: pointer)
    }

    static func elements(of list: UnsafePointer<rd_kafka_topic_partition_list_t>) -> [(TopicPartition, Int64, rd_kafka_resp_err_t)] {
        (0..<Int(list.pointee.cnt)).map { index in
            let element = list.pointee.elems[index]
            return (TopicPartition(String(cString: element.topic), Int(element.partition)), element.offset, element.err)
        }
    }
}

