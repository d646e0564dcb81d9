import CRDKafka
import Dispatch
import EventLog
import Foundation
import Synchronization

/// What the rebalance callback needs.
///
/// Lifetime: passed retained (`Unmanaged.passRetained`) as the client's opaque; the consumer
/// releases it in `deinit`, after `rd_kafka_destroy`, so librdkafka never calls back with a
/// dangling context. The callback runs on the consumer's serial queue (librdkafka calls it from
/// inside `rd_kafka_consumer_poll` and `rd_kafka_consumer_close`, which only that queue calls).
final class RebalanceContext: Sendable {
    let onRevoked: (@Sendable ([TopicPartition]) -> Void)?
    let onAssigned: (@Sendable ([TopicPartition]) -> Void)?
    let reset: SeekPosition
    let timeout: Int32
    /// Partitions started "at a time": records older than the time are skipped until the first
    /// one at or after it (see ``TimeFloors``).
    let floors = TimeFloors()

    init(configuration: ConsumerConfiguration, timeout: Int32) {
        onRevoked = configuration.onPartitionsRevoked
        onAssigned = configuration.onPartitionsAssigned
        reset = configuration.autoOffsetReset
        self.timeout = timeout
    }

    /// librdkafka's `auto.offset.reset` knows only earliest and latest. For `.offset(n)` and
    /// `.time(t)`, partitions the group has no committed offset on get their start here, in the
    /// assign callback, before they are assigned.
    ///
    /// `.latest` is resolved here too, to the high-water mark at assignment: "only what is appended
    /// from now on" then means from the moment the consumer got the partition, not from whenever
    /// librdkafka's first fetch later resolves "latest" (records appended in between were lost).
    func applyStartPositions(_ client: OpaquePointer, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        switch reset {
        case .earliest:
            return
        case .latest:
            _ = rd_kafka_committed(client, list, timeout)
            for index in 0..<Int(list.pointee.cnt) where list.pointee.elems[index].offset < 0 {
                var low: Int64 = 0
                var high: Int64 = 0
                let element = list.pointee.elems[index]
                if rd_kafka_query_watermark_offsets(client, element.topic, element.partition, &low, &high, timeout)
                    == RD_KAFKA_RESP_ERR_NO_ERROR
                {
                    list.pointee.elems[index].offset = high
                } else {
                    // librdkafka's auto.offset.reset=latest decides at the first fetch.
                    list.pointee.elems[index].offset = Int64(RD_KAFKA_OFFSET_INVALID)
                }
            }
        case .offset(let offset):
            _ = rd_kafka_committed(client, list, timeout)
            for index in 0..<Int(list.pointee.cnt) where list.pointee.elems[index].offset < 0 {
                list.pointee.elems[index].offset = offset
            }
        case .time(let time):
            _ = rd_kafka_committed(client, list, timeout)
            let milliseconds = Int64((time.timeIntervalSince1970 * 1000).rounded(.up))
            // Ownership: `lookup` is ours; `list` is lent by librdkafka for the callback.
            let lookup = rd_kafka_topic_partition_list_new(list.pointee.cnt)!
            defer { rd_kafka_topic_partition_list_destroy(lookup) }
            for index in 0..<Int(list.pointee.cnt) where list.pointee.elems[index].offset < 0 {
                let element = list.pointee.elems[index]
                rd_kafka_topic_partition_list_add(lookup, element.topic, element.partition)!.pointee.offset = milliseconds
            }
            guard lookup.pointee.cnt > 0 else { return }
            let error = rd_kafka_offsets_for_times(client, lookup, timeout)
            for found in PartitionList.elements(of: lookup) {
                let offset = error == RD_KAFKA_RESP_ERR_NO_ERROR && found.error == RD_KAFKA_RESP_ERR_NO_ERROR
                    ? found.offset : Int64(RD_KAFKA_OFFSET_BEGINNING)
                floors.set(found.partition, milliseconds)
                for index in 0..<Int(list.pointee.cnt)
                where String(cString: list.pointee.elems[index].topic) == found.partition.topic
                    && Int(list.pointee.elems[index].partition) == found.partition.partition
                {
                    // -1: nothing that recent yet, start at the end.
                    list.pointee.elems[index].offset = offset >= 0 ? offset : Int64(RD_KAFKA_OFFSET_END)
                }
            }
        }
    }
}

/// Start-at-a-time guards. Kafka's `offsetsForTimes` answer is exact and the guard never skips a
/// record there; brokers that answer the log start instead (Tansu 0.6.0, docs/KAFKA.md) would
/// otherwise replay from the beginning.
final class TimeFloors: Sendable {
    private let floors = Mutex<[TopicPartition: Int64]>([:])
    /// Whether any guard was ever set: the per-record check costs nothing for other consumers.
    private let active = Atomic<Bool>(false)

    func set(_ partition: TopicPartition, _ milliseconds: Int64) {
        floors.withLock { $0[partition] = milliseconds }
        active.store(true, ordering: .releasing)
    }

    /// Whether to deliver a record: once one at or after the floor passes, its partition's guard is gone.
    func admits(_ record: LogRecord) -> Bool {
        guard active.load(ordering: .acquiring) else { return true }
        return floors.withLock { floors in
            let partition = TopicPartition(record.topic, record.partition)
            guard let floor = floors[partition] else { return true }
            if Int64((record.timestamp.timeIntervalSince1970 * 1000).rounded()) < floor { return false }
            floors[partition] = nil
            return true
        }
    }
}

/// librdkafka's rebalance callback: tells the application before partitions go (so it can finish
/// and commit what it processed) and after they come. Handles both protocols: eager (`assign` the
/// whole new set, `assign(NULL)` on revoke) and cooperative (`incremental_assign`/`unassign` of the
/// partitions that move), as `rd_kafka_rebalance_protocol` says.
private func rebalance(
    _ client: OpaquePointer?, _ error: rd_kafka_resp_err_t,
    _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let client, let partitions, let opaque else { return }
    let context = Unmanaged<RebalanceContext>.fromOpaque(opaque).takeUnretainedValue()
    let list = PartitionList.elements(of: partitions).map(\.partition)
    let cooperative = rd_kafka_rebalance_protocol(client).map { String(cString: $0) } == "COOPERATIVE"
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
        // A failed rebalance: drop everything and let librdkafka rejoin.
        if cooperative {
            if let failure = rd_kafka_incremental_unassign(client, partitions) { rd_kafka_error_destroy(failure) }
        } else {
            rd_kafka_assign(client, nil)
        }
    }
}

/// A Kafka consumer: a group member (subscribe, rebalance callbacks, explicit commits) or, without
/// a group, a reader assigned every partition of its topics. Every librdkafka call runs on the
/// consumer's own serial queue, so a waiting poll never blocks a cooperative-pool thread.
final class KafkaConsumer: LogConsumer, @unchecked Sendable {
    // @unchecked Sendable: `client`, `buffer`, `pendingError`, `closed` and `topicNames` are touched only on
    // `blocking`'s serial queue (and in `deinit`, when no other reference exists).
    private let client: OpaquePointer
    private let context: Unmanaged<RebalanceContext>
    private let blocking = BlockingQueue(label: "onewindow.kafka.consumer")
    private let group: String?
    private var buffer: [LogRecord] = []
    private var pendingError: LogError?
    private var closed = false
    private var topicNames = TopicNames()

    /// Creates the handle and subscribes (group) or assigns (no group).
    /// - Throws: ``LogError`` `.configuration`, `.unknownTopic` (group-less reader of a missing
    ///   topic), or a broker error.
    init(configuration: ConsumerConfiguration, kafka: KafkaConfiguration, admin: AdminClient) async throws {
        group = configuration.group
        let reset: String
        switch configuration.autoOffsetReset {
        case .latest: reset = "latest"
        default: reset = "earliest"
        }
        let conf = try KafkaConf(kafka.librdkafkaProperties(.consumer(group: configuration.group, reset: reset)))
        let context = Unmanaged.passRetained(RebalanceContext(configuration: configuration, timeout: kafka.timeoutMilliseconds))
        if configuration.group != nil {
            rd_kafka_conf_set_rebalance_cb(conf.pointer, rebalance)
        }
        rd_kafka_conf_set_opaque(conf.pointer, context.toOpaque())
        do {
            client = try makeClient(RD_KAFKA_CONSUMER, conf)
        } catch {
            context.release()
            throw error
        }
        self.context = context
        // Everything (rebalances, errors, messages) through rd_kafka_consumer_poll.
        rd_kafka_poll_set_consumer(client)
        let handle = SendableHandle(client)
        switch (configuration.subscription, configuration.group) {
        case (.topics(let topics), .some):
            try await blocking.run { try Self.subscribe(handle.pointer, topics) }
        case (.pattern(let pattern), .some):
            // librdkafka treats a subscription starting with ^ as a regular expression, matched
            // anywhere in the name: anchor it so that the whole name must match.
            try await blocking.run { try Self.subscribe(handle.pointer, ["^(" + pattern + ")$"]) }
        case (let subscription, nil):
            let starts = try await Self.groupLessStarts(subscription, configuration.autoOffsetReset, admin: admin)
            for (partition, _) in starts {
                if case .time(let time) = configuration.autoOffsetReset {
                    context.takeUnretainedValue().floors.set(partition, Int64((time.timeIntervalSince1970 * 1000).rounded(.up)))
                }
            }
            let list = PartitionList(starts)
            try await blocking.run {
                let error = rd_kafka_assign(handle.pointer, list.pointer)
                guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaErrors.error(error, "assigning partitions") }
            }
        }
    }

    /// Every partition of the subscribed topics (a pattern is matched now, once) at the reset position.
    private static func groupLessStarts(_ subscription: ConsumerConfiguration.Subscription, _ reset: SeekPosition, admin: AdminClient)
        async throws -> [TopicPartition: Int64]
    {
        let all = try await admin.blocking.run { try admin.topics() }
        let names: [String]
        switch subscription {
        case .topics(let topics):
            for topic in topics where all[topic] == nil { throw LogError.unknownTopic(topic) }
            names = topics
        case .pattern(let pattern):
            let regex: Regex<AnyRegexOutput>
            do { regex = try Regex(pattern) } catch {
                throw LogError(.configuration, "invalid subscription pattern: \(error)", subject: pattern)
            }
            names = all.keys.filter { !$0.hasPrefix("__") && (try? regex.wholeMatch(in: $0)) != nil }
        }
        var starts: [TopicPartition: Int64] = [:]
        for name in names {
            for index in 0..<(all[name] ?? 0) {
                let partition = TopicPartition(name, index)
                switch reset {
                case .earliest: starts[partition] = Int64(RD_KAFKA_OFFSET_BEGINNING)
                case .latest: starts[partition] = Int64(RD_KAFKA_OFFSET_END)
                case .offset(let offset): starts[partition] = offset
                case .time(let time):
                    let milliseconds = Int64((time.timeIntervalSince1970 * 1000).rounded(.up))
                    let found = try await admin.blocking.run { try admin.offsets(atOrAfter: [partition: milliseconds]) }
                    starts[partition] = (found[partition] ?? nil) ?? Int64(RD_KAFKA_OFFSET_END)
                }
            }
        }
        return starts
    }

    private static func subscribe(_ client: OpaquePointer, _ topics: [String]) throws {
        let list = PartitionList(topics: topics)
        let error = rd_kafka_subscribe(client, list.pointer)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaErrors.error(error, "subscribing") }
    }

    deinit {
        // A consumer dropped without close(): leave the group now (blocking, but rare), then free
        // the handle, and only then the context librdkafka's callbacks use.
        if !closed { rd_kafka_consumer_close(client) }
        rd_kafka_destroy(client)
        context.release()
    }

    func poll(maxRecords: Int, timeout: Duration) async throws -> [LogRecord] {
        let milliseconds = UInt64(timeout.milliseconds)
        return try await blocking.run { [self] in
            if closed { throw LogError(.closed, "the consumer is closed", remedy: "make a new consumer") }
            if buffer.isEmpty, let error = pendingError {
                pendingError = nil
                throw error
            }
            let deadline = DispatchTime.now().uptimeNanoseconds + milliseconds * 1_000_000
            let floors = context.takeUnretainedValue().floors
            while buffer.count < max(maxRecords, 1) {
                // Once something arrived, only take what is already fetched (and skip the clock).
                var wait: Int32 = 0
                if buffer.isEmpty {
                    let now = DispatchTime.now().uptimeNanoseconds
                    wait = deadline > now ? Int32((deadline - now) / 1_000_000) : 0
                }
                guard let message = rd_kafka_consumer_poll(client, wait) else {
                    if !buffer.isEmpty || DispatchTime.now().uptimeNanoseconds >= deadline { break }
                    continue
                }
                // Ownership: each polled message is ours to destroy.
                defer { rd_kafka_message_destroy(message) }
                let error = message.pointee.err
                if error == RD_KAFKA_RESP_ERR__PARTITION_EOF { continue }
                if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                    let failure = KafkaErrors.error(error, "consuming", subject: group)
                    // Connection trouble: librdkafka reconnects and resumes on its own.
                    if failure.isRetriable && error != RD_KAFKA_RESP_ERR__FATAL { continue }
                    if buffer.isEmpty { throw failure }
                    pendingError = failure
                    break
                }
                let record = makeRecord(message, topics: &topicNames)
                if floors.admits(record) { buffer.append(record) }
            }
            if buffer.count <= maxRecords {
                defer { buffer = [] }
                return buffer
            }
            let result = Array(buffer.prefix(maxRecords))
            buffer.removeFirst(maxRecords)
            return result
        }
    }

    func commit(offsets: [TopicPartition: Int64]) async throws {
        guard let group else {
            throw LogError(
                .configuration, "a consumer without a group cannot commit offsets",
                remedy: "give the consumer a group (ConsumerConfiguration.group)")
        }
        if offsets.isEmpty { return }
        let list = PartitionList(offsets)
        try await blocking.run { [self] in
            if closed { throw LogError(.closed, "the consumer is closed", remedy: "make a new consumer") }
            let error = rd_kafka_commit(client, list.pointer, 0)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaErrors.error(error, "committing offsets", subject: group)
            }
            try list.throwFirstError("committing offsets", subject: group)
        }
    }

    func assignment() async throws -> [TopicPartition] {
        try await blocking.run { [self] in
            if closed { return [] }
            var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
            let error = rd_kafka_assignment(client, &list)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let list else {
                throw KafkaErrors.error(error, "reading the assignment")
            }
            return PartitionList(owning: list).elements.map(\.partition).sorted()
        }
    }

    func close() async {
        _ = try? await blocking.run { [self] in
            guard !closed else { return }
            closed = true
            // Revokes (calling onPartitionsRevoked), leaves the group, waits for outstanding commits.
            rd_kafka_consumer_close(client)
        }
    }
}

/// The last topic name a consumer decoded, so that a stream of records of one topic does not
/// allocate a new `String` for each.
struct TopicNames {
    private var last: (pointer: UnsafePointer<CChar>, name: String)?

    /// The name, reused when the C string is the same one (same address *and* same contents: a
    /// freed topic handle's address could be reused for another topic).
    mutating func name(_ cString: UnsafePointer<CChar>) -> String {
        if let last, last.pointer == cString, last.name.withCString({ strcmp($0, cString) == 0 }) {
            return last.name
        }
        let name = String(cString: cString)
        last = (cString, name)
        return name
    }
}

/// A consumed message as a ``LogRecord`` (key, value and headers copied out of librdkafka's memory).
func makeRecord(_ message: UnsafeMutablePointer<rd_kafka_message_t>, topics: inout TopicNames) -> LogRecord {
    let pointee = message.pointee
    let topic = topics.name(rd_kafka_topic_name(pointee.rkt))
    var type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
    let timestamp = rd_kafka_message_timestamp(message, &type)
    let key = pointee.key.map { Data(bytes: $0, count: pointee.key_len) }
    let value = pointee.payload.map { Data(bytes: $0, count: pointee.len) } ?? Data()
    var headers: [LogHeader] = []
    // Ownership: the headers belong to the message (rd_kafka_message_headers lends them).
    var list: OpaquePointer?
    if rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list {
        headers.reserveCapacity(rd_kafka_header_cnt(list))
        var index = 0
        var name: UnsafePointer<CChar>?
        var bytes: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(list, index, &name, &bytes, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            let text = name.map { String(cString: $0) } ?? ""
            headers.append(LogHeader(name: text, value: bytes.map { Data(bytes: $0, count: size) } ?? Data()))
            index += 1
        }
    }
    return LogRecord(
        topic: topic, partition: Int(pointee.partition), offset: pointee.offset,
        timestamp: Date(timeIntervalSince1970: Double(max(timestamp, 0)) / 1000), key: key, value: value,
        headers: headers)
}
