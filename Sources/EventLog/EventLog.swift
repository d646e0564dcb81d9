import Foundation
import Synchronization

/// An append-only, partitioned log with consumer groups: the bus every OneWindow process talks to.
///
/// Two backends implement it with the same semantics, proven by one conformance suite:
/// `EmbeddedLog` (one SQLite file, the default) and `KafkaLog` (librdkafka).
///
/// Semantics, as in Kafka:
/// - a record's partition is chosen from its key with ``Partitioner/murmur2`` (Kafka's default
///   partitioner) unless the record names one; records of one partition keep their append order;
/// - offsets within a partition only grow; the high-water mark is the next offset to be given;
/// - a consumer group's committed offset of a partition is the offset of the *next* record to
///   read (last processed offset + 1);
/// - a group without a committed offset starts at ``ConsumerConfiguration/autoOffsetReset``.
///
/// ## Topics
/// - ``createTopics(_:)``, ``describeTopics(_:)``, ``listTopics()``
/// ## Writing and reading
/// - ``append(_:)``, ``read(_:from:maxRecords:)``, ``watermarks(_:)``, ``offset(_:atOrAfter:)``
/// ## Consumer groups
/// - ``makeConsumer(_:)``, ``committedOffsets(group:topics:)``, ``seekGroup(_:topics:to:)``,
///   ``commitGroup(_:offsets:)``, ``listGroups()``, ``groupMembers(_:)``, ``lag(group:topics:)``
///
/// ## Closing
/// After ``close()`` every call on the log, and on every consumer made from it, throws
/// ``LogError`` `.closed` (``LogError/isFatal``); closing twice does nothing.
public protocol EventLog: Sendable {
    /// Creates the topics that do not exist yet; topics that exist are left as they are.
    ///
    /// - Returns: the names of the topics that were created.
    /// - Throws: ``LogError`` with code `.invalidTopic` for an invalid name or partition count, or a
    ///   backend error.
    @discardableResult
    func createTopics(_ specs: [TopicSpec]) async throws -> [String]

    /// Describes the named topics (partitions, cleanup, watermarks). Unknown names are left out.
    func describeTopics(_ names: [String]) async throws -> [TopicDescription]

    /// The names of every topic in the log, sorted.
    func listTopics() async throws -> [String]

    /// Appends records, in order, and returns where each landed, in the same order.
    ///
    /// The call returns only when every record is durably stored (embedded: committed to SQLite;
    /// Kafka: acknowledged by all in-sync replicas). Either every record is appended or the call
    /// throws; on Kafka a throw can follow a partial append, which idempotent consumers absorb.
    /// Work the log does for itself (the embedded log's retention and compaction) never makes an
    /// append that stored its records throw: it runs apart from the caller's call.
    /// - Throws: ``LogError`` `.unknownTopic` when a topic does not exist, `.invalidPartition`
    ///   for a partition out of range, `.recordTooLarge`, or a backend error.
    func append(_ records: [OutgoingRecord]) async throws -> [RecordPosition]

    /// Reads up to `maxRecords` records of one partition from `offset` on (no group involved).
    func read(_ partition: TopicPartition, from offset: Int64, maxRecords: Int) async throws -> [LogRecord]

    /// The low and high watermarks of one partition.
    func watermarks(_ partition: TopicPartition) async throws -> Watermarks

    /// The first offset whose record's timestamp is at or after `time`, or the high-water mark
    /// when there is none (Kafka's `offsetsForTimes`).
    func offset(_ partition: TopicPartition, atOrAfter time: Date) async throws -> Int64

    /// Joins a consumer group (or reads without one) and returns the consumer.
    func makeConsumer(_ configuration: ConsumerConfiguration) async throws -> any LogConsumer

    /// The offsets a group has committed on the given topics' partitions (partitions without a
    /// commit are left out).
    func committedOffsets(group: String, topics: [String]) async throws -> [TopicPartition: Int64]

    /// Moves a group's committed offsets on the given topics, for replay or skipping.
    ///
    /// The group should have no active member while it is moved (Kafka refuses otherwise).
    /// - Returns: the new committed offset of every partition.
    @discardableResult
    func seekGroup(_ group: String, topics: [String], to position: SeekPosition) async throws
        -> [TopicPartition: Int64]

    /// Sets a group's committed offsets of the given partitions (each the offset of the next record
    /// to read) without joining the group, the way a member's commit would set them: how a reader
    /// outside the log's own consumers (the gateway's HTTP subscribers) records what it has
    /// acknowledged. Partitions not named keep their committed offsets. An offset may move back.
    ///
    /// Like ``seekGroup(_:topics:to:)``, it is refused while the group has an active member.
    /// - Throws: ``LogError`` `.unknownTopic`, `.invalidPartition`, `.invalidOffset` for a negative
    ///   offset, `.groupBusy` (embedded) or a backend error.
    func commitGroup(_ group: String, offsets: [TopicPartition: Int64]) async throws

    /// The consumer groups that have committed offsets, sorted.
    func listGroups() async throws -> [String]

    /// The live members of a consumer group, sorted by member id: empty when nobody consumes as
    /// the group now (or the group does not exist).
    ///
    /// Embedded: the members whose last heartbeat is within the session timeout. Kafka: the
    /// members the group coordinator lists (DescribeGroups).
    func groupMembers(_ group: String) async throws -> [GroupMember]

    /// How far a group is behind on each partition of the topics: high-water mark minus committed
    /// offset (minus the log start offset when nothing is committed).
    func lag(group: String, topics: [String]) async throws -> [PartitionLag]

    /// Releases the log's resources and closes the consumers made from it that are still open.
    /// Appends in flight finish (with their positions or an error). Afterwards every call on the
    /// log or its consumers throws ``LogError`` `.closed`. Closing twice does nothing.
    func close() async
}

/// Where a group or consumer starts reading.
public enum SeekPosition: Sendable, Hashable {
    /// The first record still in the log.
    case earliest
    /// After the last record: only what is appended from now on.
    case latest
    /// An absolute offset, applied to every partition.
    case offset(Int64)
    /// The first record at or after this time.
    case time(Date)
}

/// A live member of a consumer group, as ``EventLog/groupMembers(_:)`` lists it.
public struct GroupMember: Sendable, Hashable {
    /// The id the log gave the member (changes each time it joins).
    public var memberId: String
    /// The name the consumer gave itself: ``ConsumerConfiguration/clientId`` (Kafka's `client.id`).
    public var clientId: String
    /// The host it connects from, when the log knows it (Kafka); `nil` on the embedded log.
    public var host: String?
    /// The partitions assigned to it now, sorted (empty while the group rebalances).
    public var partitions: [TopicPartition]

    public init(memberId: String, clientId: String, host: String? = nil, partitions: [TopicPartition]) {
        self.memberId = memberId
        self.clientId = clientId
        self.host = host
        self.partitions = partitions
    }

    /// The one member a Kafka broker's answer stands for when it reports the group active
    /// (`state`: stable, rebalancing) without listing its members (Tansu 0.6.0 does): the group is
    /// in use, by members it does not name. Its `memberId` is empty.
    public static func unnamed(state: String) -> GroupMember {
        GroupMember(
            memberId: "", clientId: "members the broker does not name (the group is \(state))", partitions: [])
    }

    /// Whether this stands for members the broker did not name (``unnamed(state:)``).
    public var isUnnamed: Bool { memberId.isEmpty }

    /// `client-id on host [member-id]`, for messages naming the member.
    public var name: String {
        var text = clientId.isEmpty ? memberId : clientId
        if let host, !host.isEmpty { text += " on \(host)" }
        if !clientId.isEmpty { text += " [\(memberId)]" }
        return text
    }
}

/// How far a group is behind on one partition.
public struct PartitionLag: Sendable, Hashable {
    public var partition: TopicPartition
    /// The committed offset, `nil` when the group has not committed on this partition.
    public var committed: Int64?
    public var watermarks: Watermarks

    public init(partition: TopicPartition, committed: Int64?, watermarks: Watermarks) {
        self.partition = partition
        self.committed = committed
        self.watermarks = watermarks
    }

    /// The number of records not yet processed by the group.
    public var lag: Int64 { max(0, watermarks.high - max(committed ?? watermarks.low, watermarks.low)) }
}

/// What a consumer reads and on whose behalf.
public struct ConsumerConfiguration: Sendable {
    /// What to subscribe to.
    public enum Subscription: Sendable, Hashable {
        /// These topics.
        case topics([String])
        /// Every topic whose whole name matches this regular expression (evaluated when the
        /// consumer is made and at each rebalance).
        case pattern(String)
    }

    /// The topics or pattern.
    public var subscription: Subscription
    /// The consumer group; its committed offsets survive restarts. `nil` reads without a group
    /// (nothing is committed and ``autoOffsetReset`` decides the start).
    public var group: String?
    /// Where to start on a partition the group has no committed offset for.
    /// Default: `.earliest`.
    public var autoOffsetReset: SeekPosition
    /// Called with the partitions a consumer is about to lose, before they go, from inside
    /// ``LogConsumer/poll(maxRecords:timeout:)`` (or ``LogConsumer/close()``).
    ///
    /// Call ``LogConsumer/store(_:)`` here for what was processed and not yet stored: right after
    /// this callback returns, the consumer commits the stored offsets of these partitions itself,
    /// still before they go, so their next owner starts after them. Do not `await` a `commit`
    /// from here (the callback is synchronous and runs inside the consumer's own poll).
    /// Default: `nil`.
    public var onPartitionsRevoked: (@Sendable ([TopicPartition]) -> Void)?
    /// Called with the partitions just assigned. Default: `nil`.
    public var onPartitionsAssigned: (@Sendable ([TopicPartition]) -> Void)?
    /// The name this consumer gives itself in its group, shown by ``EventLog/groupMembers(_:)``
    /// (and as Kafka's `client.id`, unless the Kafka properties set one). Default:
    /// ``defaultClientId`` (the process name and id, `onewindow-4711`).
    public var clientId: String = ConsumerConfiguration.defaultClientId

    /// The process name and id: `onewindow-4711`.
    public static var defaultClientId: String {
        "\(ProcessInfo.processInfo.processName)-\(ProcessInfo.processInfo.processIdentifier)"
    }

    public init(
        subscription: Subscription, group: String?, autoOffsetReset: SeekPosition = .earliest,
        onPartitionsRevoked: (@Sendable ([TopicPartition]) -> Void)? = nil,
        onPartitionsAssigned: (@Sendable ([TopicPartition]) -> Void)? = nil
    ) {
        self.subscription = subscription
        self.group = group
        self.autoOffsetReset = autoOffsetReset
        self.onPartitionsRevoked = onPartitionsRevoked
        self.onPartitionsAssigned = onPartitionsAssigned
    }

    /// Convenience: a group consumer of these topics.
    public static func group(_ group: String, topics: [String], from reset: SeekPosition = .earliest)
        -> ConsumerConfiguration
    {
        ConsumerConfiguration(subscription: .topics(topics), group: group, autoOffsetReset: reset)
    }
}

/// A member of a consumer group (or a group-less reader).
///
/// Records come in partition order. Offsets are committed only when the caller says so, after
/// processing: a consumer that stops without committing has its records delivered again.
///
/// Two ways to say so: ``commit(_:)`` commits now (a round trip to the log), and ``store(_:)``
/// only marks records processed; stored offsets are committed at the next `commit`, at
/// ``close()``, and automatically before their partitions are revoked in a rebalance (Kafka's
/// `offsets_store` pattern), so a member that stores as it goes hands its partitions over without
/// redelivering what it processed.
public protocol LogConsumer: AnyObject, Sendable {
    /// Waits up to `timeout` for records and returns at most `maxRecords` (possibly none).
    func poll(maxRecords: Int, timeout: Duration) async throws -> [LogRecord]

    /// Commits, for the group, that every given record and all before it in its partition are
    /// processed (the committed offset becomes `offset + 1` of the last record per partition).
    func commit(_ records: [LogRecord]) async throws

    /// Commits explicit next-offsets per partition, together with every stored offset (see
    /// ``store(offsets:)``) of a partition this consumer owns.
    func commit(offsets: [TopicPartition: Int64]) async throws

    /// Marks next-offsets per partition as processed without committing them: they are committed
    /// at the next `commit`, at ``close()``, and automatically before their partitions are
    /// revoked in a rebalance. A stored offset never moves back (the largest one per partition
    /// is kept), and offsets of partitions the consumer no longer owns are not committed.
    ///
    /// Synchronous and cheap (a lock, no I/O), so it can be called from
    /// ``ConsumerConfiguration/onPartitionsRevoked``.
    func store(offsets: [TopicPartition: Int64])

    /// The partitions this consumer currently reads.
    func assignment() async throws -> [TopicPartition]

    /// For each partition assigned now, the offset of the next record this consumer will return
    /// from it: after the records already returned, else where it starts (the group's committed
    /// offset, else ``ConsumerConfiguration/autoOffsetReset`` resolved against the partition
    /// now: earliest is the log start offset, latest the high-water mark, a time the first
    /// offset at or after it). A position below the log start offset (retention removed
    /// records) is reported as the log start offset, where reading goes on. A consumer is caught
    /// up on a partition when its position is at or past the high-water mark.
    ///
    /// Partitions not assigned yet (a group still joining) are left out.
    func position() async throws -> [TopicPartition: Int64]

    /// Leaves the group (letting its partitions move to other members) and frees resources.
    /// Afterwards `poll`, `commit`, `assignment` and `position` throw ``LogError`` `.closed`
    /// (`store` does nothing). Closing twice does nothing.
    func close() async
}

extension LogConsumer {
    public func commit(_ records: [LogRecord]) async throws {
        let next = nextOffsets(of: records)
        if !next.isEmpty { try await commit(offsets: next) }
    }

    /// Commits every stored offset (see ``store(offsets:)``) now.
    public func commit() async throws {
        try await commit(offsets: [:])
    }

    /// Marks every given record and all before it in its partition as processed, without
    /// committing (the stored offset becomes `offset + 1` of the last record per partition); see
    /// ``store(offsets:)`` for when stored offsets are committed.
    public func store(_ records: [LogRecord]) {
        store(offsets: nextOffsets(of: records))
    }

    /// The records as an asynchronous sequence that polls until the task is cancelled.
    /// The caller still commits.
    public func records(batchSize: Int = 500, pollTimeout: Duration = .milliseconds(500)) -> LogRecords {
        LogRecords(consumer: self, batchSize: batchSize, pollTimeout: pollTimeout)
    }
}

/// The next offset to read per partition after the given records: the last offset + 1.
private func nextOffsets(of records: [LogRecord]) -> [TopicPartition: Int64] {
    var next: [TopicPartition: Int64] = [:]
    for record in records {
        let partition = TopicPartition(record.topic, record.partition)
        next[partition] = max(next[partition] ?? 0, record.offset + 1)
    }
    return next
}

/// Offsets a consumer has been told are processed but has not committed yet (see
/// ``LogConsumer/store(offsets:)``). Backends share it: a lock around a dictionary, safe to use
/// from a rebalance callback.
public final class StoredOffsets: Sendable {
    private let offsets = Mutex<[TopicPartition: Int64]>([:])

    public init() {}

    /// Keeps the largest offset per partition.
    public func store(_ new: [TopicPartition: Int64]) {
        offsets.withLock { offsets in
            for (partition, offset) in new { offsets[partition] = max(offsets[partition] ?? offset, offset) }
        }
    }

    /// The stored offsets of these partitions (all when `nil`), removed from the store.
    public func take(_ partitions: Set<TopicPartition>? = nil) -> [TopicPartition: Int64] {
        offsets.withLock { offsets in
            guard let partitions else {
                defer { offsets = [:] }
                return offsets
            }
            var taken: [TopicPartition: Int64] = [:]
            for partition in partitions { if let offset = offsets.removeValue(forKey: partition) { taken[partition] = offset } }
            return taken
        }
    }

    /// Puts offsets back after a commit that failed, unless larger ones were stored meanwhile.
    public func restore(_ old: [TopicPartition: Int64]) { store(old) }
}

/// The consumers a log made and has not seen closed, so that closing the log closes them too.
/// Backends share it; it holds them weakly (a consumer dropped without closing is not kept).
public final class OpenConsumers: Sendable {
    private final class WeakConsumer: @unchecked Sendable {
        // @unchecked Sendable: `consumer` is written once, in `init`; weak loads are thread-safe.
        weak var consumer: (any LogConsumer)?
        init(_ consumer: any LogConsumer) { self.consumer = consumer }
    }
    private let consumers = Mutex<[ObjectIdentifier: WeakConsumer]>([:])

    public init() {}

    /// Remembers a consumer the log made.
    public func add(_ consumer: any LogConsumer) {
        consumers.withLock { consumers in
            consumers = consumers.filter { $0.value.consumer != nil }
            consumers[ObjectIdentifier(consumer)] = WeakConsumer(consumer)
        }
    }

    /// Closes every consumer still alive (a consumer closed already ignores it) and forgets them.
    public func closeAll() async {
        let all = consumers.withLock { consumers in
            defer { consumers = [:] }
            return consumers.values.compactMap(\.consumer)
        }
        for consumer in all { await consumer.close() }
    }
}

/// An endless sequence of a consumer's records; ends when the task is cancelled.
public struct LogRecords: AsyncSequence, Sendable {
    public typealias Element = LogRecord
    let consumer: any LogConsumer
    let batchSize: Int
    let pollTimeout: Duration

    public struct AsyncIterator: AsyncIteratorProtocol {
        let consumer: any LogConsumer
        let batchSize: Int
        let pollTimeout: Duration
        var buffer: [LogRecord] = []
        var index = 0

        public mutating func next() async throws -> LogRecord? {
            while index >= buffer.count {
                if Task.isCancelled { return nil }
                buffer = try await consumer.poll(maxRecords: batchSize, timeout: pollTimeout)
                index = 0
            }
            defer { index += 1 }
            return buffer[index]
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(consumer: consumer, batchSize: batchSize, pollTimeout: pollTimeout)
    }
}

/// A log that wakes this process's readers as soon as this process appended (the embedded log
/// does): a reader that found nothing waits for the next append instead of sleeping a poll
/// interval. Appends of other processes are not signalled; a reader still looks again after its
/// timeout to see them.
public protocol AppendWaking: EventLog {
    /// This process's appends to the log so far: read it before a read, and pass it to
    /// ``waitForAppend(after:upTo:)`` so an append landing in between is not slept through.
    var appendCount: UInt64 { get }

    /// Returns as soon as ``appendCount`` is past `seen` (at once if it already is), after
    /// `timeout`, or when the task is cancelled.
    func waitForAppend(after seen: UInt64, upTo timeout: Duration) async
}
