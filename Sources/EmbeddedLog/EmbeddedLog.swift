import EventLog
import Foundation
import GRDB
import Logging
import SQLiteSupport
import Synchronization

/// Settings of an ``EmbeddedLog``.
public struct EmbeddedLogConfiguration: Sendable {
    /// The clock that stamps records without a timestamp and ages them for retention.
    /// Default: the system clock.
    public var now: @Sendable () -> Date
    /// A group member that has not polled for this long is considered gone and its partitions
    /// move to the other members. Default: 10 seconds.
    public var sessionTimeout: Duration
    /// How often a polling consumer looks for new records written by other processes.
    /// Default: 20 milliseconds.
    public var pollInterval: Duration
    /// How often an appending process runs retention and compaction, in the background (an
    /// append that finds it due starts it and returns without waiting; see
    /// ``EmbeddedLog/runMaintenance()``). `nil` never does (run ``EmbeddedLog/runMaintenance()``
    /// yourself). Default: 60 seconds.
    public var maintenanceInterval: Duration?
    /// The largest record value accepted, in bytes. Default: 1 MiB (Kafka's `message.max.bytes`).
    public var maxRecordBytes: Int
    /// Whether opening a path where no log exists creates it (and its folder). `false` makes the
    /// open throw ``LogError`` `.logNotFound` naming the path, for commands that only read or
    /// write an existing log. Default: `true`.
    public var createIfMissing: Bool = true
    /// Where the log reports what goes wrong outside any caller's call (a failed background
    /// maintenance pass). `nil`: a logger labelled `onewindow.embedded-log`. Default: `nil`.
    public var logger: Logger? = nil

    public init(
        now: @escaping @Sendable () -> Date = { Date() }, sessionTimeout: Duration = .seconds(10),
        pollInterval: Duration = .milliseconds(20), maintenanceInterval: Duration? = .seconds(60),
        maxRecordBytes: Int = 1_048_576
    ) {
        self.now = now
        self.sessionTimeout = sessionTimeout
        self.pollInterval = pollInterval
        self.maintenanceInterval = maintenanceInterval
        self.maxRecordBytes = maxRecordBytes
    }

    /// The default configuration with `createIfMissing` and `logger` set.
    public init(createIfMissing: Bool, logger: Logger? = nil) {
        self.init()
        self.createIfMissing = createIfMissing
        self.logger = logger
    }
}

/// The embedded backend: the whole log in one SQLite file, with Kafka's semantics.
///
/// Zero set-up: `EmbeddedLog(path: "var/onewindow.sqlite")` creates the file (unless
/// ``EmbeddedLogConfiguration/createIfMissing`` is false). Several processes can append to and
/// consume from the same file at once; SQLite's write lock orders the appends, so no record is
/// lost or repeated. Compaction and time retention run in ``runMaintenance()``, which appending
/// processes start in the background every ``EmbeddedLogConfiguration/maintenanceInterval``.
///
/// After ``close()`` every call on the log and on its consumers throws ``LogError`` `.closed`.
public final class EmbeddedLog: EventLog {
    let database: LogDatabase
    let configuration: EmbeddedLogConfiguration
    /// The file, for messages.
    let path: String
    /// Per-process state: the topic cache, the round-robin counter for keyless records, when
    /// maintenance last ran and the pass running now.
    private let state = Mutex(State())
    private let consumers = OpenConsumers()
    /// Wakes this process's polling consumers as soon as this process appended, instead of at
    /// their next poll interval (appends of other processes are still seen at the interval).
    let appended = AppendSignal()

    private struct State {
        var topics: [String: TopicRow] = [:]
        var roundRobin = 0
        var lastMaintenance: Date?
        /// The background maintenance pass in progress, awaited by `close`.
        var maintenance: Task<Void, Never>?
        /// Set when `close` starts: every call throws `.closed` from then on.
        var closed = false
    }

    /// Opens the log at `path`, creating it (and its folder) when it does not exist, unless
    /// ``EmbeddedLogConfiguration/createIfMissing`` is false.
    /// - Throws: ``LogError`` `.logNotFound` when there is no log at `path` and it is not to be
    ///   created; `.storage` when the file cannot be opened or is not a log.
    public init(path: String, configuration: EmbeddedLogConfiguration = EmbeddedLogConfiguration()) throws {
        self.database = try LogDatabase(
            path: path, createIfMissing: configuration.createIfMissing,
            logger: configuration.logger ?? Logger(label: "onewindow.embedded-log"))
        self.configuration = configuration
        self.path = path
        state.withLock { $0.lastMaintenance = configuration.now() }
    }

    var writer: DatabasePool { database.writer }

    /// Whether ``close()`` was called.
    var isClosed: Bool { state.withLock { $0.closed } }

    /// Throws ``LogError`` `.closed` once the log is closed.
    func checkOpen() throws {
        if isClosed { throw LogError.closed("the embedded log", subject: path) }
    }

    // MARK: Topics

    @discardableResult
    public func createTopics(_ specs: [TopicSpec]) async throws -> [String] {
        try checkOpen()
        for spec in specs {
            try TopicName.validate(spec.name)
            guard spec.partitions > 0 else {
                throw LogError(.invalidTopic, "a topic needs at least one partition", subject: spec.name)
            }
        }
        let now = configuration.now().milliseconds
        do {
            return try await writer.write { db in
                var created: [String] = []
                for spec in specs {
                    let exists = try Bool.fetchOne(
                        db, sql: "SELECT EXISTS (SELECT 1 FROM topic WHERE name = ?)", arguments: [spec.name])
                    if exists == true { continue }
                    let cleanup: String
                    if case .compact = spec.cleanup { cleanup = "compact" } else { cleanup = "delete" }
                    try db.execute(
                        sql: "INSERT INTO topic (name, partitions, cleanup, retention_ms, created_ms) VALUES (?,?,?,?,?)",
                        arguments: [spec.name, spec.partitions, cleanup, spec.retentionMilliseconds, now])
                    let id = db.lastInsertedRowID
                    for partition in 0..<spec.partitions {
                        try db.execute(
                            sql: "INSERT INTO partition (topic_id, partition) VALUES (?, ?)",
                            arguments: [id, partition])
                    }
                    created.append(spec.name)
                }
                return created
            }
        } catch {
            throw storageError(error, while: "creating topics", file: path)
        }
    }

    public func describeTopics(_ names: [String]) async throws -> [TopicDescription] {
        try checkOpen()
        do {
            return try await writer.read { db in
                var result: [TopicDescription] = []
                for name in names {
                    guard let row = try Row.fetchOne(db, sql: "SELECT * FROM topic WHERE name = ?", arguments: [name])
                    else { continue }
                    let topic = TopicRow(row: row)
                    let marks = try Row.fetchAll(
                        db,
                        sql: "SELECT start_offset, next_offset FROM partition WHERE topic_id = ? ORDER BY partition",
                        arguments: [topic.id]
                    ).map { Watermarks(low: $0["start_offset"], high: $0["next_offset"]) }
                    result.append(TopicDescription(spec: topic.spec, partitions: marks))
                }
                return result
            }
        } catch {
            throw storageError(error, while: "describing topics")
        }
    }

    public func listTopics() async throws -> [String] {
        try checkOpen()
        do {
            return try await writer.read { db in try String.fetchAll(db, sql: "SELECT name FROM topic ORDER BY name") }
        } catch {
            throw storageError(error, while: "listing topics")
        }
    }

    /// The topic's row, from the per-process cache or the database.
    func topic(_ name: String, _ db: Database) throws -> TopicRow {
        if let cached = state.withLock({ $0.topics[name] }) { return cached }
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM topic WHERE name = ?", arguments: [name]) else {
            throw LogError.unknownTopic(name)
        }
        let topic = TopicRow(row: row)
        state.withLock { $0.topics[name] = topic }
        return topic
    }

    func topic(_ name: String) async throws -> TopicRow {
        if let cached = state.withLock({ $0.topics[name] }) { return cached }
        return try await writer.read { db in try self.topic(name, db) }
    }

    // MARK: Appending

    public func append(_ records: [OutgoingRecord]) async throws -> [RecordPosition] {
        try checkOpen()
        if records.isEmpty { return [] }
        for record in records where record.value.count > configuration.maxRecordBytes {
            throw LogError(
                .recordTooLarge,
                "a record of \(record.value.count) bytes is larger than the limit of \(configuration.maxRecordBytes)",
                remedy: "split the payload, or raise maxRecordBytes", subject: record.topic)
        }
        let now = configuration.now().milliseconds
        let positions: [RecordPosition]
        do {
            positions = try await writer.write { db in try self.append(records, now: now, db) }
        } catch {
            throw storageError(error, while: "appending \(records.count) record(s)", subject: records.first?.topic, file: path)
        }
        appended.signal()
        // The records are stored: whatever maintenance does now cannot change that (it runs in
        // the background, and its failures are logged, not thrown).
        startMaintenanceIfDue()
        return positions
    }

    /// Appends inside the caller's write transaction: the offsets of each partition are reserved
    /// with one `UPDATE … RETURNING`, then the rows are inserted with one cached statement.
    private func append(_ records: [OutgoingRecord], now: Int64, _ db: Database) throws -> [RecordPosition] {
        // Choose partitions and count records per partition.
        var topics: [String: TopicRow] = [:]
        var partitionOf: [Int] = []
        partitionOf.reserveCapacity(records.count)
        var counts: [TopicPartitionKey: Int64] = [:]
        for record in records {
            let topic: TopicRow
            if let known = topics[record.topic] {
                topic = known
            } else {
                topic = try self.topic(record.topic, db)
                topics[record.topic] = topic
            }
            let partition: Int
            if let explicit = record.partition {
                guard explicit >= 0, explicit < topic.partitions else {
                    throw LogError(
                        .invalidPartition, "partition \(explicit) does not exist (the topic has \(topic.partitions))",
                        subject: topic.name)
                }
                partition = explicit
            } else if let key = record.key {
                partition = Partitioner.partition(forKey: key, partitions: topic.partitions)
            } else {
                partition = state.withLock { state in
                    state.roundRobin &+= 1
                    return state.roundRobin % topic.partitions
                }
            }
            partitionOf.append(partition)
            counts[TopicPartitionKey(topicId: topic.id, partition: partition), default: 0] += 1
        }
        // Reserve offsets.
        var nextOffset: [TopicPartitionKey: Int64] = [:]
        let reserve = try db.cachedStatement(
            sql: "UPDATE partition SET next_offset = next_offset + ? WHERE topic_id = ? AND partition = ? RETURNING next_offset")
        for (key, count) in counts {
            guard let end = try Int64.fetchOne(reserve, arguments: [count, key.topicId, key.partition]) else {
                throw LogError(.storage, "partition \(key.partition) has no row", subject: "\(key.topicId)")
            }
            nextOffset[key] = end - count
        }
        // Insert.
        // Bound with SQLite's functions (``RawStatement``): GRDB's argument arrays and binding
        // were about a third of an append's CPU.
        let insert = try RawStatement(
            """
            INSERT INTO record (topic_id, partition, offset, timestamp_ms, key, value, headers)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """, db)
        // Offsets in the order given: a partition's records keep their order.
        var positions: [RecordPosition] = []
        positions.reserveCapacity(records.count)
        var keys: [TopicPartitionKey] = []
        keys.reserveCapacity(records.count)
        for (index, record) in records.enumerated() {
            let topic = topics[record.topic]!
            let key = TopicPartitionKey(topicId: topic.id, partition: partitionOf[index])
            let offset = nextOffset[key]!
            nextOffset[key] = offset + 1
            keys.append(key)
            positions.append(RecordPosition(topic: topic.name, partition: key.partition, offset: offset))
        }
        // Inserted partition by partition, so a partition's records of one append are neighbours
        // in the table (appended in rowid order): a consumer reading the partition then finds
        // consecutive rows on the same pages instead of one row a page among the other
        // partitions' (a backlog of 6 interleaved partitions read with about a third less CPU).
        var order = Array(records.indices)
        if counts.count > 1 {
            order.sort { (keys[$0].topicId, keys[$0].partition, $0) < (keys[$1].topicId, keys[$1].partition, $1) }
        }
        for index in order {
            let record = records[index]
            insert.bind([
                .integer(keys[index].topicId), .int(keys[index].partition), .integer(positions[index].offset),
                .integer(record.timestamp?.milliseconds ?? now), record.key.map { .blob($0) } ?? .null,
                .blob(record.value), .blob(HeaderCodec.encode(record.headers)),
            ])
            try insert.execute()
        }
        return positions
    }

    // MARK: Reading

    public func read(_ partition: TopicPartition, from offset: Int64, maxRecords: Int) async throws -> [LogRecord] {
        try checkOpen()
        let topic = try await topic(partition.topic)
        try checkPartition(partition, of: topic)
        do {
            return try await writer.read { db in
                try RecordReader.read(db, topic: topic, partition: partition.partition, from: offset, limit: maxRecords)
            }
        } catch {
            throw storageError(error, while: "reading", subject: partition.description)
        }
    }

    public func watermarks(_ partition: TopicPartition) async throws -> Watermarks {
        try checkOpen()
        let topic = try await topic(partition.topic)
        try checkPartition(partition, of: topic)
        return try await writer.read { db in try Self.watermarks(db, topicId: topic.id, partition: partition.partition) }
    }

    static func watermarks(_ db: Database, topicId: Int64, partition: Int) throws -> Watermarks {
        let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT start_offset, next_offset FROM partition WHERE topic_id = ? AND partition = ?"),
            arguments: [topicId, partition])
        return Watermarks(low: row?["start_offset"] ?? 0, high: row?["next_offset"] ?? 0)
    }

    public func offset(_ partition: TopicPartition, atOrAfter time: Date) async throws -> Int64 {
        try checkOpen()
        let topic = try await topic(partition.topic)
        try checkPartition(partition, of: topic)
        return try await writer.read { db in
            try Self.offset(db, topicId: topic.id, partition: partition.partition, atOrAfter: time.milliseconds)
        }
    }

    /// The first offset whose timestamp is at or after `milliseconds`, else the high-water mark.
    static func offset(_ db: Database, topicId: Int64, partition: Int, atOrAfter milliseconds: Int64) throws -> Int64 {
        let found = try Int64.fetchOne(db, sql: RecordSQL.firstAtOrAfter, arguments: [topicId, partition, milliseconds])
        if let found { return found }
        return try watermarks(db, topicId: topicId, partition: partition).high
    }

    func checkPartition(_ partition: TopicPartition, of topic: TopicRow) throws {
        guard partition.partition >= 0, partition.partition < topic.partitions else {
            throw LogError(
                .invalidPartition, "partition \(partition.partition) does not exist (the topic has \(topic.partitions))",
                subject: topic.name)
        }
    }

    // MARK: Consumer groups

    public func makeConsumer(_ configuration: ConsumerConfiguration) async throws -> any LogConsumer {
        try checkOpen()
        let consumer = try await EmbeddedConsumer(log: self, configuration: configuration)
        consumers.add(consumer)
        return consumer
    }

    public func committedOffsets(group: String, topics: [String]) async throws -> [TopicPartition: Int64] {
        try checkOpen()
        var rows: [String: TopicRow] = [:]
        for name in topics { rows[name] = try await topic(name) }
        let resolved = rows
        return try await writer.read { db in
            var result: [TopicPartition: Int64] = [:]
            for (name, topic) in resolved {
                let offsets = try Row.fetchAll(
                    db, sql: "SELECT partition, offset FROM group_offset WHERE group_id = ? AND topic_id = ?",
                    arguments: [group, topic.id])
                for row in offsets { result[TopicPartition(name, row["partition"])] = row["offset"] }
            }
            return result
        }
    }

    @discardableResult
    public func seekGroup(_ group: String, topics: [String], to position: SeekPosition) async throws
        -> [TopicPartition: Int64]
    {
        try checkOpen()
        var rows: [TopicRow] = []
        for name in topics { rows.append(try await topic(name)) }
        let resolved = rows
        let now = configuration.now().milliseconds
        let liveSince = now - configuration.sessionTimeout.milliseconds
        do {
            return try await writer.write { db in
                try Self.checkNoLiveMember(db, group: group, liveSince: liveSince)
                var result: [TopicPartition: Int64] = [:]
                for topic in resolved {
                    for partition in 0..<topic.partitions {
                        let target = try Self.resolve(position, db, topicId: topic.id, partition: partition)
                        try Self.storeOffset(db, group: group, topicId: topic.id, partition: partition, offset: target, at: now)
                        result[TopicPartition(topic.name, partition)] = target
                    }
                }
                return result
            }
        } catch {
            throw storageError(error, while: "moving the offsets of group \(group)", subject: group)
        }
    }

    /// Removes every member row of a group, live or not, and starts a new generation: for an
    /// operator who knows the members are gone (a process killed moments ago still counts as
    /// live until ``EmbeddedLogConfiguration/sessionTimeout``) and must move the group now
    /// (`onewindow replay --force`). A member that is in fact still running joins again at its
    /// next poll and keeps reading from where it was.
    /// - Returns: how many member rows were removed.
    @discardableResult
    public func evictMembers(of group: String) async throws -> Int {
        try checkOpen()
        do {
            return try await writer.write { db in
                try db.execute(sql: "DELETE FROM group_member WHERE group_id = ?", arguments: [group])
                let removed = db.changesCount
                if removed > 0 {
                    try db.execute(
                        sql: "UPDATE group_state SET generation = generation + 1 WHERE group_id = ?", arguments: [group])
                }
                return removed
            }
        } catch {
            throw storageError(error, while: "removing the members of group \(group)", subject: group)
        }
    }

    public func commitGroup(_ group: String, offsets: [TopicPartition: Int64]) async throws {
        try checkOpen()
        var rows: [String: TopicRow] = [:]
        for (partition, offset) in offsets {
            if rows[partition.topic] == nil { rows[partition.topic] = try await topic(partition.topic) }
            try checkPartition(partition, of: rows[partition.topic]!)
            guard offset >= 0 else {
                throw LogError(.invalidOffset, "a committed offset cannot be negative (\(offset))", subject: partition.description)
            }
        }
        let resolved = rows
        let now = configuration.now().milliseconds
        let liveSince = now - configuration.sessionTimeout.milliseconds
        do {
            try await writer.write { db in
                try Self.checkNoLiveMember(db, group: group, liveSince: liveSince)
                for (partition, offset) in offsets {
                    try Self.storeOffset(
                        db, group: group, topicId: resolved[partition.topic]!.id, partition: partition.partition,
                        offset: offset, at: now)
                }
            }
        } catch {
            throw storageError(error, while: "committing the offsets of group \(group)", subject: group, file: path)
        }
    }

    /// Refuses to move a group's offsets while a member has heartbeated within the session timeout.
    static func checkNoLiveMember(_ db: Database, group: String, liveSince: Int64) throws {
        let live = try Int.fetchOne(
            db, sql: "SELECT COUNT(*) FROM group_member WHERE group_id = ? AND heartbeat_ms >= ?",
            arguments: [group, liveSince]) ?? 0
        if live > 0 {
            throw LogError(
                .groupBusy, "the group has \(live) active member(s)",
                remedy: "stop the group's consumers before moving its offsets", subject: group)
        }
    }

    /// Writes a group's committed next-offset of one partition.
    static func storeOffset(
        _ db: Database, group: String, topicId: Int64, partition: Int, offset: Int64, at milliseconds: Int64
    ) throws {
        let statement = try db.cachedStatement(
            sql: """
                INSERT INTO group_offset (group_id, topic_id, partition, offset, committed_ms) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (group_id, topic_id, partition)
                DO UPDATE SET offset = excluded.offset, committed_ms = excluded.committed_ms
                """)
        try statement.execute(arguments: [group, topicId, partition, offset, milliseconds])
    }

    /// The offset a seek position means on one partition, clamped to the watermarks.
    static func resolve(_ position: SeekPosition, _ db: Database, topicId: Int64, partition: Int) throws -> Int64 {
        let marks = try watermarks(db, topicId: topicId, partition: partition)
        switch position {
        case .earliest: return marks.low
        case .latest: return marks.high
        case .offset(let offset): return min(max(offset, marks.low), marks.high)
        case .time(let time):
            return try offset(db, topicId: topicId, partition: partition, atOrAfter: time.milliseconds)
        }
    }

    public func listGroups() async throws -> [String] {
        try checkOpen()
        return try await writer.read { db in
            try String.fetchAll(
                db,
                sql: "SELECT group_id FROM group_offset UNION SELECT group_id FROM group_member ORDER BY group_id")
        }
    }

    /// The members whose heartbeat is within ``EmbeddedLogConfiguration/sessionTimeout`` (a
    /// member that stopped without leaving counts until then), with the partitions the range
    /// assignment over them gives each (what each takes up at its next poll).
    public func groupMembers(_ group: String) async throws -> [GroupMember] {
        try checkOpen()
        let liveSince = configuration.now().milliseconds - configuration.sessionTimeout.milliseconds
        do {
            return try await writer.read { db in
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT member_id, client_id, topics FROM group_member
                        WHERE group_id = ? AND heartbeat_ms >= ? ORDER BY member_id
                        """, arguments: [group, liveSince])
                let members = rows.map { row -> (id: String, client: String, topics: [String]) in
                    let topics: String = row["topics"]
                    return (row["member_id"], row["client_id"], topics.split(separator: "\n").map(String.init))
                }
                var partitions: [String: Int] = [:]
                for name in Set(members.flatMap(\.topics)) {
                    partitions[name] = try Int.fetchOne(
                        db, sql: "SELECT partitions FROM topic WHERE name = ?", arguments: [name])
                }
                let counts = partitions
                let assigned = RangeAssignor.assign(
                    members: members.map { ($0.id, $0.topics) }, partitions: { counts[$0] ?? 0 })
                return members.map {
                    GroupMember(memberId: $0.id, clientId: $0.client, partitions: (assigned[$0.id] ?? []).sorted())
                }
            }
        } catch {
            throw storageError(error, while: "listing the members of group \(group)", subject: group)
        }
    }

    public func lag(group: String, topics: [String]) async throws -> [PartitionLag] {
        try checkOpen()
        let committed = try await committedOffsets(group: group, topics: topics)
        var result: [PartitionLag] = []
        for description in try await describeTopics(topics) {
            for (partition, marks) in description.partitions.enumerated() {
                let tp = TopicPartition(description.name, partition)
                result.append(PartitionLag(partition: tp, committed: committed[tp], watermarks: marks))
            }
        }
        return result
    }

    /// Closes the consumers made from this log, lets a background maintenance pass stop (it
    /// stops between partitions), and checkpoints the WAL. Afterwards every call throws
    /// ``LogError`` `.closed`; closing twice does nothing.
    public func close() async {
        let (wasClosed, maintenance) = state.withLock { state in
            defer { state.closed = true }
            return (state.closed, state.maintenance)
        }
        if wasClosed { return }
        // The consumers commit what they stored and leave their groups (their closing goes
        // straight to the database, past the closed log's checks).
        await consumers.closeAll()
        maintenance?.cancel()
        await maintenance?.value
        // Checkpoint the WAL now so the file is compact; the pool closes its connections when freed.
        _ = try? await writer.write { db in try db.checkpoint(.passive) }
        database.checkpointer.stop()
    }

    // MARK: Maintenance

    /// Starts a maintenance pass in the background when one is due and none is running. Never
    /// throws and never waits: the caller's append is done whatever the pass does.
    private func startMaintenanceIfDue() {
        guard let interval = configuration.maintenanceInterval else { return }
        let now = configuration.now()
        state.withLock { state in
            guard !state.closed, state.maintenance == nil else { return }
            if let last = state.lastMaintenance, now.timeIntervalSince(last) < interval.seconds { return }
            state.lastMaintenance = now
            state.maintenance = Task { [self] in
                await maintainInBackground()
                self.state.withLock { $0.maintenance = nil }
            }
        }
    }

    /// One background pass; a failure is logged (the next due pass tries again).
    private func maintainInBackground() async {
        do {
            let report = try await maintain()
            if report.expired + report.compacted > 0 {
                logger.debug(
                    "log maintenance removed records",
                    metadata: ["expired": "\(report.expired)", "compacted": "\(report.compacted)", "path": "\(path)"])
            }
        } catch is CancellationError {
            // The log is closing.
        } catch let error as LogError where error.code == .closed {
            // The log closed during the pass: what was cleaned stays, the rest waits.
        } catch {
            logger.error(
                "background log maintenance (retention and compaction) failed; it is tried again at the next interval: \(error)",
                metadata: ["path": "\(path)"])
        }
    }

    var logger: Logger { configuration.logger ?? Logger(label: "onewindow.embedded-log") }
}

/// A partition identified by its topic's row id.
struct TopicPartitionKey: Hashable {
    let topicId: Int64
    let partition: Int
}

/// The statements that find records by position, each a search of the `record_position` index
/// (a test checks their query plans): the rows themselves are then looked up by `id`.
enum RecordSQL {
    /// A partition's records from an offset on, in offset order (the consumers' read).
    static let read = """
        SELECT offset, timestamp_ms, key, value, headers FROM record
        WHERE topic_id = ? AND partition = ? AND offset >= ? ORDER BY offset LIMIT ?
        """
    /// The first offset of a partition stamped at or after a time.
    static let firstAtOrAfter = """
        SELECT offset FROM record WHERE topic_id = ? AND partition = ? AND timestamp_ms >= ?
        ORDER BY offset LIMIT 1
        """
    /// Retention: a partition's records before an offset go.
    static let deleteBefore = "DELETE FROM record WHERE topic_id = ? AND partition = ? AND offset < ?"
    /// Compaction: a partition's keyed records.
    static let keyed = "SELECT offset, key FROM record WHERE topic_id = ? AND partition = ? AND key IS NOT NULL"
    /// Compaction: one superseded record goes.
    static let deleteOne = "DELETE FROM record WHERE topic_id = ? AND partition = ? AND offset = ?"

    /// Every statement above.
    static let all = [read, firstAtOrAfter, deleteBefore, keyed, deleteOne]
}

/// Reads records of one partition.
enum RecordReader {
    static func read(_ db: Database, topic: TopicRow, partition: Int, from offset: Int64, limit: Int) throws
        -> [LogRecord]
    {
        // Stepped and read with SQLite's functions (``RawStatement``), not GRDB's cursor and rows.
        let statement = try RawStatement(RecordSQL.read, db)
        statement.bind([.integer(topic.id), .int(partition), .integer(offset), .int(limit)])
        var records: [LogRecord] = []
        records.reserveCapacity(min(limit, 4096))
        var cache = HeaderCodec.ValueCache()
        try statement.forEachRow { row in
            records.append(
                LogRecord(
                    topic: topic.name, partition: partition, offset: row.int64(0),
                    timestamp: Date(milliseconds: row.int64(1)), key: row.data(2), value: row.data(3) ?? Data(),
                    headers: try HeaderCodec.decode(row.data(4) ?? Data(), cache: &cache)))
        }
        return records
    }
}

/// Counts this process's appends to one log and wakes the consumers waiting for one: a poll that
/// found nothing waits for the next append or its poll interval, whichever comes first. The count
/// read before a fetch makes the wait return at once when an append landed in between, so no
/// wake-up is missed.
final class AppendSignal: Sendable {
    private struct State {
        var appends: UInt64 = 0
        var nextWaiter: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Mutex(State())

    /// The appends so far (read before fetching, passed to ``wait(after:upTo:)``).
    var appends: UInt64 { state.withLock { $0.appends } }

    /// An append committed: wakes every waiter.
    func signal() {
        let waiters = state.withLock { state in
            state.appends &+= 1
            defer { state.waiters.removeAll(keepingCapacity: true) }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns when an append follows the `seen` count, after `timeout`, or at cancellation.
    func wait(after seen: UInt64, upTo timeout: Duration) async {
        let id = state.withLock { state in
            defer { state.nextWaiter &+= 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.appends != seen || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now {
                    continuation.resume()
                    return
                }
                Task {
                    try? await Task.sleep(for: timeout)
                    self.resume(id)
                }
            }
        } onCancel: {
            resume(id)
        }
    }

    /// Resumes one waiter, unless a signal or its timer did already (whoever removes it resumes it).
    private func resume(_ id: UInt64) {
        state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
    }
}

extension EmbeddedLog: AppendWaking {
    /// This process's appends to the log so far (see ``AppendWaking``).
    public var appendCount: UInt64 { appended.appends }

    /// Returns at this process's next append after `seen`, after `timeout`, or at cancellation
    /// (see ``AppendWaking``); the subscription hub's partition tails wait here.
    public func waitForAppend(after seen: UInt64, upTo timeout: Duration) async {
        await appended.wait(after: seen, upTo: timeout)
    }
}
