import CRDKafka
import Dispatch
import EventLog
import Foundation
import Synchronization

/// Builds an `rd_kafka_conf_t` from properties. The caller owns the result until it hands it to
/// `rd_kafka_new`, which takes it over only on success.
func makeConf(_ properties: [String: String]) throws -> OpaquePointer {
    let conf = rd_kafka_conf_new()!
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

/// Creates a client from a conf. On failure the conf is destroyed here (rd_kafka_new frees it
/// only on success).
func makeClient(_ type: rd_kafka_type_t, _ conf: OpaquePointer) throws -> OpaquePointer {
    var buffer = [CChar](repeating: 0, count: 512)
    guard let client = rd_kafka_new(type, conf, &buffer, buffer.count) else {
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
        client = try makeClient(RD_KAFKA_CONSUMER, try makeConf(properties))
        timeout = configuration.timeoutMilliseconds
    }

    deinit {
        rd_kafka_destroy(client)
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
