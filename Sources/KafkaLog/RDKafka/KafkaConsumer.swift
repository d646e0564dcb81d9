internal import CRDKafka
import EventLog
import Foundation
import Synchronization

/// What the rebalance callback needs, and what it shares with the consumer: the stored offsets,
/// the current assignment, and the partitions revoked since the consumer last looked. Lives as
/// long as the consumer (passed unretained as the client's opaque; the client is destroyed before
/// the consumer releases it).
final class RebalanceContext: Sendable {
    let onRevoked: (@Sendable ([TopicPartition]) -> Void)?
    let onAssigned: (@Sendable ([TopicPartition]) -> Void)?
    let reset: SeekPosition
    let timeout: Int32
    let group: String?
    /// Offsets marked processed with `store`, committed at the next commit, at close, and here
    /// before their partitions are revoked.
    let stored = StoredOffsets()
    private let state = Mutex(State())
    /// Bumped at each revocation, so `poll` notices without taking the lock per message.
    private let revocations = Atomic<Int>(0)

    private struct State {
        var assigned: Set<TopicPartition> = []
        /// A failure the consumer reports at its next poll (e.g. committed offsets unreadable).
        var failure: LogError?
    }

    init(configuration: ConsumerConfiguration, timeout: Int32) {
        onRevoked = configuration.onPartitionsRevoked
        onAssigned = configuration.onPartitionsAssigned
        reset = configuration.autoOffsetReset
        group = configuration.group
        self.timeout = timeout
    }

    var assigned: Set<TopicPartition> { state.withLock { $0.assigned } }
    var revocationCount: Int { revocations.load(ordering: .acquiring) }

    func didAssign(_ partitions: [TopicPartition]) {
        state.withLock { $0.assigned.formUnion(partitions) }
    }

    func didRevoke(_ partitions: [TopicPartition]) {
        state.withLock { $0.assigned.subtract(partitions) }
        revocations.add(1, ordering: .releasing)
    }

    func report(_ failure: LogError) {
        state.withLock { if $0.failure == nil { $0.failure = failure } }
    }

    func takeFailure() -> LogError? {
        state.withLock { state in
            defer { state.failure = nil }
            return state.failure
        }
    }

    /// Commits, synchronously, the stored offsets of partitions about to be revoked. Called from
    /// the rebalance callback, on the thread polling the consumer, where librdkafka allows a
    /// synchronous commit; the partitions are still assigned, so the commit is this member's.
    func commitStored(_ client: OpaquePointer, revoking partitions: [TopicPartition]) {
        let going = stored.take(Set(partitions))
        guard !going.isEmpty else { return }
        let list = PartitionList(going)
        let error = rd_kafka_commit(client, list.pointer, 0)
        var failure: LogError?
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            failure = KafkaErrors.error(error, "committing the stored offsets of partitions being revoked", subject: group)
        } else if let (partition, _, elementError) = list.elements.first(where: { $0.2 != RD_KAFKA_RESP_ERR_NO_ERROR }) {
            failure = KafkaErrors.error(
                elementError, "committing the stored offset of a partition being revoked", subject: "\(group ?? "") \(partition)")
        }
        if var failure {
            // The partitions are going anyway: their records are delivered again to the next
            // owner (at-least-once). Say so at the next poll instead of losing the fact.
            failure.remedy = "the records after the last committed offset will be delivered again to the partitions' next owner"
            report(failure)
        }
    }

    /// For partitions the group has no committed offset on, a reset to an offset or a time is
    /// applied here (librdkafka's auto.offset.reset knows only earliest and latest). A partition
    /// whose committed offset cannot be read is left to librdkafka (it reads the committed offset
    /// itself, with retries), so a real commit is never overwritten by the reset position.
    func applyStartPositions(_ client: OpaquePointer, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        switch reset {
        case .earliest, .latest: return
        case .offset, .time: break
        }
        let count = Int(list.pointee.cnt)
        guard count > 0 else { return }
        // The committed offsets, into a copy (a failed lookup must not leave half-written offsets).
        let lookup = rd_kafka_topic_partition_list_copy(list)!
        defer { rd_kafka_topic_partition_list_destroy(lookup) }
        var error = RD_KAFKA_RESP_ERR_NO_ERROR
        for attempt in 0..<3 {
            if attempt > 0 { usleep(200_000) }  // on the consumer's own thread, never the cooperative pool
            error = rd_kafka_committed(client, lookup, timeout)
            if error == RD_KAFKA_RESP_ERR_NO_ERROR { break }
        }
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            report(
                KafkaErrors.error(
                    error, "reading the group's committed offsets while taking up partitions (they start at the committed offset, else at the earliest)",
                    subject: group))
            return
        }
        var needsStart: [Int] = []
        for index in 0..<count {
            let found = lookup.pointee.elems[index]
            if found.err == RD_KAFKA_RESP_ERR_NO_ERROR && found.offset < 0 { needsStart.append(index) }
        }
        switch reset {
        case .offset(let offset):
            for index in needsStart { list.pointee.elems[index].offset = offset }
        case .time(let time):
            applyTime(time, client, list, needsStart)
        default:
            return
        }
    }

    private func applyTime(
        _ time: Date, _ client: OpaquePointer, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>, _ indices: [Int]
    ) {
        guard !indices.isEmpty else { return }
        let lookup = rd_kafka_topic_partition_list_new(Int32(indices.count))!
        defer { rd_kafka_topic_partition_list_destroy(lookup) }
        for index in indices {
            let element = list.pointee.elems[index]
            rd_kafka_topic_partition_list_add(lookup, element.topic, element.partition)!.pointee.offset =
                Int64(time.timeIntervalSince1970 * 1000)
        }
        let error = rd_kafka_offsets_for_times(client, lookup, timeout)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            report(KafkaErrors.error(error, "looking up the start offsets by time (the partitions start at the earliest)", subject: group))
            return
        }
        for (position, index) in indices.enumerated() {
            let found = lookup.pointee.elems[position]
            list.pointee.elems[index].offset = found.offset >= 0 ? found.offset : Int64(RD_KAFKA_OFFSET_END)
        }
    }
}

/// The retained context, carried into the closure that releases it.
/// @unchecked Sendable: `Unmanaged` is a pointer; the context itself is Sendable.
struct SendableContext: @unchecked Sendable {
    let value: Unmanaged<RebalanceContext>
    init(_ value: Unmanaged<RebalanceContext>) { self.value = value }
}

/// librdkafka's rebalance callback, on the thread that polls (or closes) the consumer: tells the
/// application before partitions go, commits their stored offsets, and after they come.
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
        context.didAssign(list)
        context.onAssigned?(list)
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        // First the application (it may `store` what it processed), then the commit of what is
        // stored, and only then do the partitions go.
        context.onRevoked?(list)
        if rd_kafka_assignment_lost(client) == 0 {
            context.commitStored(client, revoking: list)
        } else {
            // Lost, not revoked (session timeout): another member may own them already, so a
            // commit now could move its offsets. Drop what was stored.
            _ = context.stored.take(Set(list))
        }
        if cooperative {
            if let failure = rd_kafka_incremental_unassign(client, partitions) { rd_kafka_error_destroy(failure) }
        } else {
            rd_kafka_assign(client, nil)
        }
        context.didRevoke(list)
    default:
        rd_kafka_assign(client, nil)
        context.didRevoke(Array(context.assigned))
    }
}

/// A Kafka consumer: a group member (subscribe, rebalance callbacks, explicit commits) or, without
/// a group, a reader assigned every partition of its topics. Every librdkafka call runs on its own
/// serial queue, including the rebalance callbacks (they run inside `rd_kafka_consumer_poll` and
/// `rd_kafka_consumer_close`) and the final close and destroy.
final class KafkaConsumer: LogConsumer, @unchecked Sendable {
    // @unchecked Sendable: `client`, `buffer` and `closed` are touched only on `blocking`'s serial
    // queue (and in `deinit`, when nothing else holds the consumer).
    private let client: OpaquePointer
    private let context: Unmanaged<RebalanceContext>
    private let blocking = BlockingQueue(label: "onewindow.kafka.consume")
    private let group: String?
    /// The log's client that never joins a group, for the lookups that must not queue behind
    /// this member's fetches (see `position()`).
    private let admin: AdminClient
    private var buffer: [LogRecord] = []
    private var closed = false

    init(
        configuration: ConsumerConfiguration, kafka: KafkaConfiguration, admin: AdminClient, only: TopicPartition? = nil
    ) async throws {
        group = configuration.group
        self.admin = admin
        let reset: String
        switch configuration.autoOffsetReset {
        case .latest: reset = "latest"
        default: reset = "earliest"
        }
        var properties = kafka.consumerProperties(
            group: configuration.group ?? "onewindow-reader-\(UUID().uuidString)", reset: reset)
        // The member's name in its group (groupMembers), unless the Kafka properties name the client.
        if kafka.properties["client.id"] == nil { properties["client.id"] = configuration.clientId }
        let conf = try makeConf(properties)
        let context = Unmanaged.passRetained(RebalanceContext(configuration: configuration, timeout: kafka.timeoutMilliseconds))
        if configuration.group != nil {
            rd_kafka_conf_set_rebalance_cb(conf, rebalance)
        }
        rd_kafka_conf_set_opaque(conf, context.toOpaque())
        do {
            client = try makeClient(RD_KAFKA_CONSUMER, conf, logger: kafka.librdkafkaLogger)
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
        // Closing and destroying block (they wait for the group and the broker): on the
        // consumer's own queue, never on whatever thread dropped the last reference.
        let handle = SendableHandle(client)
        let wasClosed = closed
        let context = SendableContext(context)
        KafkaTeardown.begin()
        blocking.queue.async {
            if !wasClosed { rd_kafka_consumer_close(handle.pointer) }
            destroyClient(handle.pointer)
            context.value.release()
            KafkaTeardown.end()
        }
    }

    func poll(maxRecords: Int, timeout: Duration) async throws -> [LogRecord] {
        let milliseconds = Int(clamping: timeout.milliseconds)
        let context = self.context.takeUnretainedValue()
        return try await blocking.run { [self] in
            if closed { throw LogError(.closed, "the consumer is closed") }
            if let failure = context.takeFailure() { throw failure }
            let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(milliseconds) * 1_000_000
            var topicNames = TopicNames()
            var previousHeaders: [LogHeader] = []
            var revocations = context.revocationCount
            while buffer.count < max(maxRecords, 1) {
                // Once something arrived, only take what is already fetched (no clock read then).
                var wait: Int32 = 0
                if buffer.isEmpty {
                    let now = DispatchTime.now().uptimeNanoseconds
                    wait = Int32(clamping: deadline > now ? (deadline - now) / 1_000_000 : 0)
                }
                let message = rd_kafka_consumer_poll(client, wait)
                if context.revocationCount != revocations {
                    // A rebalance took partitions away inside that poll: what was fetched from
                    // them belongs to their next owner now.
                    revocations = context.revocationCount
                    if group != nil {
                        let assigned = context.assigned
                        buffer.removeAll { !assigned.contains(TopicPartition($0.topic, $0.partition)) }
                    }
                }
                guard let message else {
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
                buffer.append(Self.record(message, topicNames: &topicNames, previousHeaders: &previousHeaders))
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

    /// The topic names seen in one poll, by librdkafka topic handle; the last one first.
    struct TopicNames {
        var last: (handle: OpaquePointer, name: String)?
        var names: [OpaquePointer: String] = [:]
    }

    static func record(
        _ message: UnsafeMutablePointer<rd_kafka_message_t>, topicNames: inout TopicNames,
        previousHeaders: inout [LogHeader]
    ) -> LogRecord {
        let pointee = message.pointee
        let topic: String
        if let last = topicNames.last, last.handle == pointee.rkt {
            topic = last.name
        } else if let known = topicNames.names[pointee.rkt] {
            topic = known
            topicNames.last = (pointee.rkt, known)
        } else {
            topic = String(cString: rd_kafka_topic_name(pointee.rkt))
            topicNames.names[pointee.rkt] = topic
            topicNames.last = (pointee.rkt, topic)
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
            headers.reserveCapacity(previousHeaders.count)
            while rd_kafka_header_get_all(list, index, &name, &bytes, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                // Records of one batch mostly repeat their headers (spec version, source, type,
                // content type) and always their header names: reuse the previous record's name,
                // and value, at this place when the bytes are the same, instead of making a new
                // String and Data.
                let previous = index < previousHeaders.count ? previousHeaders[index] : nil
                let header: LogHeader
                if let previous, Self.sameName(previous, name!) {
                    header =
                        Self.sameValue(previous, bytes, size)
                        ? previous : LogHeader(name: previous.name, value: Self.data(bytes, size))
                } else {
                    header = LogHeader(name: String(cString: name!), value: Self.data(bytes, size))
                }
                headers.append(header)
                index += 1
            }
            previousHeaders = headers
        }
        return LogRecord(
            topic: topic, partition: Int(pointee.partition), offset: pointee.offset,
            timestamp: Date(timeIntervalSince1970: Double(max(timestamp, 0)) / 1000), key: key, value: value,
            headers: headers)
    }

    /// Whether a header has this C name.
    private static func sameName(_ header: LogHeader, _ name: UnsafePointer<CChar>) -> Bool {
        var stored = header.name
        return stored.withUTF8 { utf8 in
            strlen(name) == utf8.count && memcmp(utf8.baseAddress!, name, utf8.count) == 0
        }
    }

    /// Whether a header has these value bytes.
    private static func sameValue(_ header: LogHeader, _ bytes: UnsafeRawPointer?, _ size: Int) -> Bool {
        guard header.value.count == size else { return false }
        return header.value.withUnsafeBytes { stored in
            size == 0 || (bytes != nil && memcmp(stored.baseAddress!, bytes!, size) == 0)
        }
    }

    private static func data(_ bytes: UnsafeRawPointer?, _ size: Int) -> Data {
        bytes.map { Data(bytes: $0, count: size) } ?? Data()
    }

    func commit(offsets: [TopicPartition: Int64]) async throws {
        guard let group else {
            throw LogError(.configuration, "a consumer without a group cannot commit offsets", remedy: "give the consumer a group")
        }
        let context = self.context.takeUnretainedValue()
        try await blocking.run { [self] in
            if closed { throw LogError(.closed, "the consumer is closed", subject: group) }
            // On the consumer's queue, so no rebalance runs meanwhile: the assignment is stable.
            let fromStore = context.stored.take(context.assigned)
            let all = fromStore.merging(offsets) { max($0, $1) }
            if all.isEmpty { return }
            let list = PartitionList(all)
            let error = rd_kafka_commit(client, list.pointer, 0)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                context.stored.restore(fromStore)
                throw KafkaErrors.error(error, "committing offsets", subject: group)
            }
            for (partition, _, elementError) in list.elements where elementError != RD_KAFKA_RESP_ERR_NO_ERROR {
                context.stored.restore(fromStore)
                throw KafkaErrors.error(elementError, "committing offsets", subject: "\(group) \(partition)")
            }
        }
    }

    func store(offsets: [TopicPartition: Int64]) {
        context.takeUnretainedValue().stored.store(offsets)
    }

    func assignment() async throws -> [TopicPartition] {
        try await blocking.run { [self] in
            if closed { throw LogError.closed("the consumer", subject: group) }
            return try currentAssignment().elements.map(\.0).sorted()
        }
    }

    /// librdkafka's current assignment. On `blocking`.
    private func currentAssignment() throws -> PartitionList {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        let error = rd_kafka_assignment(client, &list)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { throw KafkaErrors.error(error, "reading the assignment") }
        return PartitionList(owning: list)
    }

    /// Per assigned partition: the first record fetched but not returned yet, else librdkafka's
    /// position (after the last record returned), else, for a partition nothing was read from
    /// yet, where it starts: the group's committed offset when it lies within the watermarks,
    /// else the reset position resolved now. librdkafka itself only knows a position once a
    /// record was consumed.
    ///
    /// The assignment, the positions and the committed offsets are read on the consumer's own
    /// queue; the watermarks (and a reset to a time) through the log's admin client, on its queue.
    /// Not through this member's client: its connection to a partition's leader carries the fetch
    /// librdkafka keeps waiting there (up to `fetch.wait.max.ms`, 500 ms), and a broker answers one
    /// connection's requests in order, so each watermark query on it waited for a fetch to come
    /// back, half a second a partition: a member of 90 partitions that had read from few of them
    /// took 45 s for one `position()` and looked hung.
    func position() async throws -> [TopicPartition: Int64] {
        let context = self.context.takeUnretainedValue()
        let (known, unread, committed) = try await blocking.run {
            [self] () throws -> ([TopicPartition: Int64], [TopicPartition], [TopicPartition: Int64]) in
            if closed { throw LogError.closed("the consumer", subject: group) }
            let assigned = try currentAssignment()
            let partitions = assigned.elements.map(\.0)
            if partitions.isEmpty { return ([:], [], [:]) }
            var result: [TopicPartition: Int64] = [:]
            for record in buffer {
                let partition = TopicPartition(record.topic, record.partition)
                result[partition] = min(result[partition] ?? record.offset, record.offset)
            }
            var error = rd_kafka_position(client, assigned.pointer)
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaErrors.error(error, "reading the consumer's position") }
            for (partition, offset, _) in assigned.elements where result[partition] == nil && offset >= 0 {
                result[partition] = offset
            }
            let unread = partitions.filter { result[$0] == nil }
            if unread.isEmpty { return (result, [], [:]) }
            // The group's offsets are the coordinator's: a connection of their own, no fetch waits there.
            var committed: [TopicPartition: Int64] = [:]
            if let group {
                let lookup = PartitionList(Dictionary(uniqueKeysWithValues: unread.map { ($0, Int64(RD_KAFKA_OFFSET_INVALID)) }))
                error = rd_kafka_committed(client, lookup.pointer, context.timeout)
                guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                    throw KafkaErrors.error(error, "reading the committed offsets for the consumer's position", subject: group)
                }
                for (partition, offset, _) in lookup.elements where offset >= 0 { committed[partition] = offset }
            }
            return (result, unread, committed)
        }
        if unread.isEmpty { return known }
        let admin = self.admin
        let reset = context.reset
        return try await admin.blocking.run {
            var result = known
            var marks: [TopicPartition: Watermarks] = [:]
            for partition in unread { marks[partition] = try admin.watermarks(partition) }
            var byTime: [TopicPartition] = []
            for partition in unread {
                let (low, high) = (marks[partition]!.low, marks[partition]!.high)
                if let offset = committed[partition], offset >= low, offset <= high {
                    result[partition] = offset
                    continue
                }
                switch reset {
                case .earliest: result[partition] = low
                case .latest: result[partition] = high
                case .offset(let offset): result[partition] = min(max(offset, low), high)
                case .time: byTime.append(partition)
                }
            }
            if case .time(let time) = reset, !byTime.isEmpty {
                let milliseconds = Int64(time.timeIntervalSince1970 * 1000)
                let found = try admin.offsets(atOrAfter: Dictionary(uniqueKeysWithValues: byTime.map { ($0, milliseconds) }))
                for partition in byTime { result[partition] = (found[partition] ?? nil) ?? marks[partition]!.high }
            }
            return result
        }
    }

    /// Leaves the group: librdkafka revokes the assignment through the rebalance callback, which
    /// commits the stored offsets first (see `RebalanceContext.commitStored`).
    func close() async {
        _ = try? await blocking.run { [self] in
            guard !closed else { return }
            closed = true
            rd_kafka_consumer_close(client)
        }
    }
}
