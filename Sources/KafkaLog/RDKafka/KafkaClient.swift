import CRDKafka
import Dispatch
import EventLog
import Foundation
import Synchronization

// The door to librdkafka: building confs and handles, the log callback, the queue that keeps
// blocking calls off Swift's cooperative pool, and the owner of partition lists. Only the files of
// this folder import CRDKafka; no C type leaves it.

/// librdkafka's log lines, to standard error. librdkafka filters by `log_level` before calling
/// this (critical only unless `KafkaConfiguration.debug` is set), so everything that arrives is
/// printed. Called on librdkafka's own threads, never on Swift's: it touches no Swift state.
private func forwardLog(
    _ client: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?, _ message: UnsafePointer<CChar>?
) {
    guard let message else { return }
    let name = client.map { String(cString: rd_kafka_name($0)) } ?? "librdkafka"
    let facilityText = facility.map { String(cString: $0) } ?? ""
    FileHandle.standardError.write(Data("\(name) [\(level)] \(facilityText): \(String(cString: message))\n".utf8))
}

/// The text librdkafka wrote into an error buffer.
func errorText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Owns an `rd_kafka_conf_t` until `rd_kafka_new` takes it.
///
/// Ownership: `rd_kafka_conf_new` gives us the conf; `rd_kafka_new` takes it over **only on
/// success** (on failure it is still ours). ``makeClient(_:_:)`` marks it consumed on success, so
/// `deinit` destroys it only when no handle took it.
final class KafkaConf {
    let pointer: OpaquePointer
    fileprivate var consumed = false

    /// Builds a conf from properties.
    /// - Throws: ``LogError`` `.configuration` naming the property librdkafka refused (a password's
    ///   value is not repeated).
    init(_ properties: [String: String]) throws {
        pointer = rd_kafka_conf_new()
        rd_kafka_conf_set_log_cb(pointer, forwardLog)
        var buffer = [CChar](repeating: 0, count: 512)
        for (name, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(pointer, name, value, &buffer, buffer.count) != RD_KAFKA_CONF_OK {
                let shown = name.contains("password") || name.contains("secret") ? "***" : value
                throw LogError(
                    .configuration, "librdkafka refused \(name)=\(shown): \(errorText(buffer))",
                    remedy: "fix the property in the Kafka configuration (see librdkafka's CONFIGURATION.md)")
            }
        }
    }

    deinit {
        if !consumed { rd_kafka_conf_destroy(pointer) }
    }
}

/// Creates a handle from a conf (which it takes over on success, see ``KafkaConf``).
/// The caller owns the handle and frees it with `rd_kafka_destroy`.
/// - Throws: ``LogError`` `.configuration` with librdkafka's reason.
func makeClient(_ type: rd_kafka_type_t, _ conf: KafkaConf) throws -> OpaquePointer {
    var buffer = [CChar](repeating: 0, count: 512)
    guard let client = rd_kafka_new(type, conf.pointer, &buffer, buffer.count) else {
        throw LogError(
            .configuration, "cannot create the Kafka client: \(errorText(buffer))",
            remedy: "fix the Kafka configuration (see docs/KAFKA.md)")
    }
    conf.consumed = true
    return client
}

/// Runs blocking librdkafka calls on a dedicated serial dispatch queue, never on Swift's
/// cooperative pool (a blocked pool thread would stall unrelated tasks on a two-core machine).
struct BlockingQueue: Sendable {
    let queue: DispatchQueue

    init(label: String) {
        queue = DispatchQueue(label: label)
    }

    /// Runs `work` on the queue and returns its result to the awaiting task.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }
}

/// A librdkafka handle that crosses into the closures run on a ``BlockingQueue``.
/// @unchecked Sendable: `rd_kafka_t` is thread-safe for every call OneWindow makes on it
/// (librdkafka's contract), and each owner serialises its calls on one queue anyway; the owner
/// keeps the handle alive until that queue is drained.
struct SendableHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
}

/// Owns an `rd_kafka_topic_partition_list_t`, freed in `deinit`.
///
/// Ownership: lists we create with `rd_kafka_topic_partition_list_new`, and lists librdkafka hands
/// over for us to free (`rd_kafka_assignment`), are destroyed here; lists librdkafka lends to a
/// callback (the rebalance callback's) are never wrapped in this class.
/// @unchecked Sendable: a list is built, handed to one librdkafka call on one queue and read back
/// there; it is never used from two threads at once.
final class PartitionList: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    /// A list of partitions with an offset each (or a timestamp, for `rd_kafka_offsets_for_times`).
    init(_ offsets: [TopicPartition: Int64]) {
        pointer = rd_kafka_topic_partition_list_new(Int32(max(offsets.count, 1)))
        for (partition, offset) in offsets.sorted(by: { $0.key < $1.key }) {
            let element = rd_kafka_topic_partition_list_add(pointer, partition.topic, Int32(partition.partition))!
            element.pointee.offset = offset
        }
    }

    /// A list of topics without partitions, for `rd_kafka_subscribe`.
    init(topics: [String]) {
        pointer = rd_kafka_topic_partition_list_new(Int32(max(topics.count, 1)))
        for topic in topics { rd_kafka_topic_partition_list_add(pointer, topic, RD_KAFKA_PARTITION_UA) }
    }

    /// Takes over a list librdkafka gave us to free.
    init(owning pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        self.pointer = pointer
    }

    deinit {
        rd_kafka_topic_partition_list_destroy(pointer)
    }

    /// The partitions, their offsets and per-partition errors.
    var elements: [(partition: TopicPartition, offset: Int64, error: rd_kafka_resp_err_t)] {
        Self.elements(of: pointer)
    }

    /// The elements of any list, owned or lent.
    static func elements(of list: UnsafePointer<rd_kafka_topic_partition_list_t>)
        -> [(partition: TopicPartition, offset: Int64, error: rd_kafka_resp_err_t)]
    {
        (0..<Int(list.pointee.cnt)).map { index in
            let element = list.pointee.elems[index]
            return (TopicPartition(String(cString: element.topic), Int(element.partition)), element.offset, element.err)
        }
    }

    /// Throws the first per-partition error, if any.
    func throwFirstError(_ action: String, subject: String? = nil) throws {
        for element in elements where element.error != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaErrors.error(element.error, action, subject: subject.map { "\($0) \(element.partition)" }
                ?? element.partition.description)
        }
    }
}

/// A flag a background thread polls to know when to stop.
final class RunFlag: Sendable {
    private let value = Atomic<Bool>(true)
    var isOn: Bool { value.load(ordering: .acquiring) }
    func turnOff() { value.store(false, ordering: .releasing) }
}

extension Duration {
    /// Whole milliseconds, clamped to what librdkafka's `int` timeouts take.
    var milliseconds: Int32 {
        let (seconds, attoseconds) = components
        return Int32(clamping: max(0, seconds * 1000 + attoseconds / 1_000_000_000_000_000))
    }
}
