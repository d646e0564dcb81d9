import EventLog
import Foundation
import GRDB

/// A consumer of the embedded log, alone or as a member of a consumer group shared with other
/// processes.
///
/// Group protocol (an eager rebalance, as Kafka's classic one):
/// 1. joining, leaving, or a member missing heartbeats for the session timeout bumps the group's
///    generation;
/// 2. every member, at its next poll, computes the new assignment (range assignment over the live
///    members sorted by id), calls `onPartitionsRevoked` for the partitions it loses, commits the
///    stored offsets of those partitions (see ``LogConsumer/store(offsets:)``), then records that
///    it has taken up the generation;
/// 3. a member fetches only once every live member has taken up the current generation, so two
///    members never read the same partition at once; the start positions of partitions a member
///    gains are read from the committed offsets only then, after every previous owner committed.
/// Commits are accepted only for partitions the member owns in the current generation, except the
/// commit of step 2: the generation has already moved, but no other member fetches until this one
/// has taken it up (the barrier), so committing the partitions it is giving up is still safe.
actor EmbeddedConsumer: LogConsumer {
    private let log: EmbeddedLog
    private let configuration: ConsumerConfiguration
    private let memberId = "member-" + UUID().uuidString.lowercased()
    private var generation: Int64 = -1
    private var owned: [TopicPartition] = []
    private var positions: [TopicPartition: Int64] = [:]
    /// Gained partitions whose start is read once the barrier passes (their previous owner may
    /// still commit before it takes up the generation).
    private var unpositioned: Set<TopicPartition> = []
    private let stored = StoredOffsets()
    private var topics: [String: TopicRow] = [:]
    private var barrierPassed = false
    private var lastHeartbeat: ContinuousClock.Instant?
    private var cursor = 0
    private var closed = false
    private let heartbeatInterval: Duration

    init(log: EmbeddedLog, configuration: ConsumerConfiguration) async throws {
        self.log = log
        self.configuration = configuration
        self.heartbeatInterval = min(.milliseconds(250), log.configuration.sessionTimeout / 4)
        try await heartbeat()
    }

    private var now: Int64 { log.configuration.now().milliseconds }

    // MARK: LogConsumer

    /// Throws ``LogError`` `.closed` once this consumer or its log is closed.
    private func checkOpen() throws {
        if closed { throw LogError.closed("the consumer", subject: configuration.group) }
        if log.isClosed { throw LogError.closed("the embedded log of this consumer", subject: log.path) }
    }

    func poll(maxRecords: Int, timeout: Duration) async throws -> [LogRecord] {
        try checkOpen()
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            if let last = lastHeartbeat, clock.now - last < heartbeatInterval, barrierPassed {
                // Between heartbeats: keep reading what we own.
            } else {
                try await heartbeat()
            }
            let seen = log.appended.appends
            if barrierPassed && !owned.isEmpty {
                let records = try await fetch(maxRecords: maxRecords)
                if !records.isEmpty { return records }
            }
            let remaining = deadline - clock.now
            if remaining <= .zero { return [] }
            let interval = min(remaining, log.configuration.pollInterval)
            if barrierPassed && !owned.isEmpty {
                // Until this process appends, or the poll interval (other processes' appends).
                await log.appended.wait(after: seen, upTo: interval)
                try Task.checkCancellation()
            } else {
                // A member waiting for its group heartbeats at each round: at the interval only.
                try await Task.sleep(for: interval)
            }
            try checkOpen()
        }
    }

    func commit(offsets: [TopicPartition: Int64]) async throws {
        guard let group = configuration.group else {
            throw LogError(
                .configuration, "a consumer without a group cannot commit offsets",
                remedy: "give the consumer a group")
        }
        try checkOpen()
        let ownedSet = Set(owned)
        for partition in offsets.keys where !ownedSet.contains(partition) {
            throw LogError(
                .groupBusy, "cannot commit \(partition): the partition is not assigned to this member (rebalanced)",
                remedy: "the records will be delivered to the partition's new owner", subject: group)
        }
        let fromStore = stored.take(ownedSet)
        var all = fromStore
        all.merge(offsets) { max($0, $1) }
        if all.isEmpty { return }
        do {
            try await write(all, group: group, revoking: false)
        } catch {
            stored.restore(fromStore)
            throw error
        }
    }

    nonisolated func store(offsets: [TopicPartition: Int64]) {
        stored.store(offsets)
    }

    /// Commits offsets of owned partitions; with `revoking`, of partitions being given up in the
    /// generation this member has not taken up yet (allowed while it holds the barrier).
    private func write(_ offsets: [TopicPartition: Int64], group: String, revoking: Bool) async throws {
        var resolved: [(TopicRow, Int, Int64)] = []
        for (partition, offset) in offsets { resolved.append((try await topic(partition.topic), partition.partition, offset)) }
        let rows = resolved
        let time = now
        let myGeneration = generation
        let member = memberId
        do {
            try await log.writer.write { db in
                let current = try Int64.fetchOne(
                    db, sql: "SELECT generation FROM group_state WHERE group_id = ?", arguments: [group])
                if revoking {
                    // Still a member that has not taken up the new generation: nobody fetches yet.
                    let acked = try Int64.fetchOne(
                        db, sql: "SELECT acked_generation FROM group_member WHERE group_id = ? AND member_id = ?",
                        arguments: [group, member])
                    guard let acked, acked == myGeneration, current.map({ $0 >= acked }) ?? false else {
                        throw LogError(
                            .groupBusy, "cannot commit the partitions being revoked: this member left the group (session timeout)",
                            remedy: "poll more often than the session timeout; the records will be delivered again",
                            subject: group)
                    }
                } else if current != myGeneration {
                    throw LogError(
                        .groupBusy, "cannot commit: the group rebalanced (generation \(current ?? -1), this member has \(myGeneration))",
                        remedy: "poll again; the records will be delivered to the partitions' owners", subject: group)
                }
                try db.execute(
                    sql: "UPDATE group_member SET heartbeat_ms = ? WHERE group_id = ? AND member_id = ?",
                    arguments: [time, group, member])
                for (topic, partition, offset) in rows {
                    try EmbeddedLog.storeOffset(db, group: group, topicId: topic.id, partition: partition, offset: offset, at: time)
                }
            }
        } catch {
            throw storageError(error, while: "committing offsets", subject: group)
        }
    }

    func assignment() async throws -> [TopicPartition] {
        try checkOpen()
        if lastHeartbeat == nil { try await heartbeat() }
        return owned
    }

    func position() async throws -> [TopicPartition: Int64] {
        try checkOpen()
        if lastHeartbeat == nil { try await heartbeat() }
        if owned.isEmpty { return [:] }
        // Partitions whose start is not fixed yet (the group's barrier has not passed): where
        // they would start now.
        let pending = owned.filter { positions[$0] == nil }
        var result = try await startPositions(pending)
        for partition in owned where result[partition] == nil { result[partition] = positions[partition] ?? 0 }
        // Below the log start (retention removed records): reading goes on at the start.
        var rows: [(TopicPartition, TopicRow)] = []
        for partition in owned { rows.append((partition, try await topic(partition.topic))) }
        let lookups = rows
        let lows = try await log.writer.read { db -> [TopicPartition: Int64] in
            var lows: [TopicPartition: Int64] = [:]
            for (partition, topic) in lookups {
                lows[partition] = try EmbeddedLog.watermarks(db, topicId: topic.id, partition: partition.partition).low
            }
            return lows
        }
        for (partition, low) in lows { result[partition] = max(result[partition] ?? low, low) }
        return result
    }

    func close() async {
        guard !closed else { return }
        guard let group = configuration.group else {
            closed = true
            return
        }
        // As Kafka does: the partitions go, so the revoke callback runs and stored offsets of the
        // partitions still owned are committed before leaving.
        if !owned.isEmpty { configuration.onPartitionsRevoked?(owned) }
        let going = stored.take(Set(owned))
        closed = true
        let member = memberId
        // A service stopped by SIGTERM closes its consumer in a cancelled task, and GRDB's async
        // writes refuse to start there: the last commit and the leave run in a task of their own,
        // which the caller's cancellation does not reach, or the member would linger (and block a
        // replay) until its session timed out.
        await Task {
            if !going.isEmpty { try? await self.write(going, group: group, revoking: true) }
            _ = try? await self.log.writer.write { db in
                try db.execute(
                    sql: "DELETE FROM group_member WHERE group_id = ? AND member_id = ?", arguments: [group, member])
                try Self.bumpGeneration(db, group: group)
            }
        }.value
    }

    // MARK: Membership

    /// The topics this consumer subscribes to now (a pattern is matched against the current topics).
    private func subscribedTopics() async throws -> [String] {
        switch configuration.subscription {
        case .topics(let names):
            for name in names { _ = try await topic(name) }  // fail fast on an unknown topic
            return names.sorted()
        case .pattern(let pattern):
            let regex: Regex<AnyRegexOutput>
            do {
                regex = try Regex(pattern)
            } catch {
                throw LogError(.configuration, "the subscription pattern is not a valid regular expression: \(error)", subject: pattern)
            }
            try checkOpen()
            return try await log.listTopics().filter { (try? regex.wholeMatch(in: $0)) != nil }
        }
    }

    /// Refreshes membership, takes up a new generation's assignment, and checks the barrier.
    private func heartbeat() async throws {
        lastHeartbeat = ContinuousClock().now
        let subscribed = try await subscribedTopics()
        for name in subscribed { _ = try await topic(name) }
        guard let group = configuration.group else {
            // No group: every partition of every subscribed topic.
            let all = subscribed.flatMap { name in (0..<topics[name]!.partitions).map { TopicPartition(name, $0) } }
            try await takeUp(all, generation: 0)
            barrierPassed = true
            try await resolveStarts()
            return
        }
        let member = memberId
        let time = now
        let timeout = log.configuration.sessionTimeout.milliseconds
        let topicList = subscribed.joined(separator: "\n")
        let clientId = configuration.clientId
        let partitionCounts = topics.mapValues(\.partitions)
        let view = try await log.writer.write { db -> GroupView in
            // Evict members that stopped heartbeating.
            try db.execute(
                sql: "DELETE FROM group_member WHERE group_id = ? AND heartbeat_ms < ? AND member_id != ?",
                arguments: [group, time - timeout, member])
            var changed = db.changesCount > 0
            let existing = try Row.fetchOne(
                db, sql: "SELECT topics FROM group_member WHERE group_id = ? AND member_id = ?",
                arguments: [group, member])
            if existing == nil {
                try db.execute(
                    sql: """
                        INSERT INTO group_member (group_id, member_id, topics, heartbeat_ms, client_id)
                        VALUES (?, ?, ?, ?, ?)
                        """,
                    arguments: [group, member, topicList, time, clientId])
                changed = true
            } else {
                let previous: String = existing!["topics"]
                try db.execute(
                    sql: "UPDATE group_member SET heartbeat_ms = ?, topics = ? WHERE group_id = ? AND member_id = ?",
                    arguments: [time, topicList, group, member])
                if previous != topicList { changed = true }
            }
            if changed { try Self.bumpGeneration(db, group: group) }
            let generation = try Int64.fetchOne(
                db, sql: "SELECT generation FROM group_state WHERE group_id = ?", arguments: [group]) ?? 0
            let members = try Row.fetchAll(
                db, sql: "SELECT member_id, topics, acked_generation FROM group_member WHERE group_id = ? ORDER BY member_id",
                arguments: [group])
            return GroupView(
                generation: generation,
                members: members.map { row in
                    let topics: String = row["topics"]
                    return GroupView.Member(
                        id: row["member_id"], topics: topics.split(separator: "\n").map(String.init),
                        acked: row["acked_generation"])
                })
        }
        if view.generation != generation {
            let assigned = RangeAssignor.assign(
                members: view.members.map { ($0.id, $0.topics) }, partitions: { partitionCounts[$0] ?? 0 })
            try await takeUp(assigned[member] ?? [], generation: view.generation)
            let taken = view.generation
            try await log.writer.write { db in
                try db.execute(
                    sql: "UPDATE group_member SET acked_generation = ? WHERE group_id = ? AND member_id = ?",
                    arguments: [taken, group, member])
            }
            barrierPassed = false
        }
        if !barrierPassed {
            let current = generation
            let laggards = try await log.writer.read { db in
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM group_member WHERE group_id = ? AND acked_generation != ?",
                    arguments: [group, current]) ?? 0
            }
            barrierPassed = laggards == 0
        }
        if barrierPassed { try await resolveStarts() }
    }

    /// Switches to a new set of partitions: revoke callback, commit of the stored offsets of the
    /// partitions going, assign callback. Gained partitions get their start positions once the
    /// barrier passes (``resolveStarts()``).
    private func takeUp(_ partitions: [TopicPartition], generation newGeneration: Int64) async throws {
        let target = partitions.sorted()
        if target == owned {
            generation = newGeneration
            return
        }
        let lost = owned.filter { !target.contains($0) }
        let gained = target.filter { !owned.contains($0) }
        if !lost.isEmpty {
            configuration.onPartitionsRevoked?(lost)
            let going = stored.take(Set(lost))
            if let group = configuration.group, !going.isEmpty {
                // If this fails (the member was evicted), the records are delivered again to the
                // partitions' next owners: at-least-once, as documented on LogConsumer.
                try? await write(going, group: group, revoking: true)
            }
        }
        for partition in lost {
            positions[partition] = nil
            unpositioned.remove(partition)
        }
        unpositioned.formUnion(gained)
        owned = target
        generation = newGeneration
        if !gained.isEmpty { configuration.onPartitionsAssigned?(gained) }
    }

    /// Start positions of gained partitions: the committed offset, else the reset position. Read
    /// only after the barrier, so a previous owner's commit before handing over is seen.
    private func resolveStarts() async throws {
        guard !unpositioned.isEmpty else { return }
        let starts = try await startPositions(unpositioned.sorted())
        positions.merge(starts) { _, new in new }
        unpositioned.subtract(starts.keys)
    }

    /// Where reading these partitions starts: the committed offset, else the reset position.
    private func startPositions(_ gained: [TopicPartition]) async throws -> [TopicPartition: Int64] {
        guard !gained.isEmpty else { return [:] }
        let committed: [TopicPartition: Int64]
        if let group = configuration.group {
            committed = try await log.committedOffsets(group: group, topics: Array(Set(gained.map(\.topic))))
        } else {
            committed = [:]
        }
        var gainedRows: [(TopicPartition, TopicRow)] = []
        for partition in gained { gainedRows.append((partition, try await topic(partition.topic))) }
        let rows = gainedRows
        let reset = configuration.autoOffsetReset
        return try await log.writer.read { db -> [TopicPartition: Int64] in
            var result: [TopicPartition: Int64] = [:]
            for (partition, topic) in rows {
                let marks = try EmbeddedLog.watermarks(db, topicId: topic.id, partition: partition.partition)
                if let offset = committed[partition], offset >= marks.low {
                    result[partition] = min(offset, marks.high)
                } else {
                    result[partition] = try EmbeddedLog.resolve(reset, db, topicId: topic.id, partition: partition.partition)
                }
            }
            return result
        }
    }

    private static func bumpGeneration(_ db: Database, group: String) throws {
        try db.execute(
            sql: """
                INSERT INTO group_state (group_id, generation) VALUES (?, 1)
                ON CONFLICT (group_id) DO UPDATE SET generation = generation + 1
                """, arguments: [group])
    }

    // MARK: Fetching

    private func fetch(maxRecords: Int) async throws -> [LogRecord] {
        let order = (0..<owned.count).map { owned[($0 + cursor) % owned.count] }
        cursor = (cursor + 1) % max(owned.count, 1)
        var plan: [(TopicRow, TopicPartition, Int64)] = []
        for partition in order {
            plan.append((try await topic(partition.topic), partition, positions[partition] ?? 0))
        }
        let requests = plan
        let records = try await log.writer.read { db -> [LogRecord] in
            // The ends of the partitions of the topics polled, one range of the partition table's
            // key per topic, so the partitions with nothing new are not read one by one (a group on
            // many topics owns many partitions, most of them idle; a query per idle partition was
            // an eighth of the orchestrator benchmark's CPU). Not the whole table: it holds every
            // topic's partitions (276 rows with the catalog's 47 topics), all read and hashed at
            // each poll; the consumers' fetch was 7.4 % of the latency benchmark's CPU samples that
            // way, 6.1 % this way.
            var ends: [Int64: [Int64]] = [:]
            let statement = try db.cachedStatement(
                sql: "SELECT partition, next_offset FROM partition WHERE topic_id = ?")
            for (topic, _, _) in requests where ends[topic.id] == nil {
                var byPartition = [Int64](repeating: .max, count: topic.partitions)
                let rows = try Row.fetchCursor(statement, arguments: [topic.id])
                while let row = try rows.next() {
                    let partition: Int = row[0]
                    if byPartition.indices.contains(partition) { byPartition[partition] = row[1] }
                }
                ends[topic.id] = byPartition
            }
            var result: [LogRecord] = []
            for (index, (topic, partition, position)) in requests.enumerated() {
                let remaining = maxRecords - result.count
                if remaining <= 0 { break }
                // A partition the topic row does not count (added since it was read) is read.
                let topicEnds = ends[topic.id] ?? []
                let end = topicEnds.indices.contains(partition.partition) ? topicEnds[partition.partition] : .max
                // The first partition is read even when idle, so a broken log (its record table
                // gone) still fails every poll, as a read of every partition did.
                if position >= end && index > 0 { continue }
                // Reads from `position`: retention deleted what lies before the partition's start,
                // so a position behind it gets the first record kept.
                result.append(
                    contentsOf: try RecordReader.read(
                        db, topic: topic, partition: partition.partition, from: position, limit: remaining))
            }
            return result
        }
        for record in records {
            positions[TopicPartition(record.topic, record.partition)] = record.offset + 1
        }
        return records
    }

    private func topic(_ name: String) async throws -> TopicRow {
        if let known = topics[name] { return known }
        let row = try await log.topic(name)
        topics[name] = row
        return row
    }
}

/// What a heartbeat saw of the group.
private struct GroupView: Sendable {
    struct Member: Sendable {
        let id: String
        let topics: [String]
        let acked: Int64
    }
    let generation: Int64
    let members: [Member]
}

/// Kafka's range assignor: for each topic, the members subscribed to it (sorted by id) each take a
/// contiguous range of partitions; the first `partitions % members` members take one more.
enum RangeAssignor {
    static func assign(members: [(id: String, topics: [String])], partitions: (String) -> Int)
        -> [String: [TopicPartition]]
    {
        var result: [String: [TopicPartition]] = [:]
        let allTopics = Set(members.flatMap(\.topics)).sorted()
        for topic in allTopics {
            let subscribers = members.filter { $0.topics.contains(topic) }.map(\.id).sorted()
            let count = partitions(topic)
            guard !subscribers.isEmpty, count > 0 else { continue }
            let share = count / subscribers.count
            let extra = count % subscribers.count
            var next = 0
            for (index, member) in subscribers.enumerated() {
                let take = share + (index < extra ? 1 : 0)
                for partition in next..<(next + take) { result[member, default: []].append(TopicPartition(topic, partition)) }
                next += take
            }
        }
        return result
    }
}
