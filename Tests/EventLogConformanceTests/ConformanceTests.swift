import EmbeddedLog
import EventLog
import Foundation
import TestCleanup
import Testing
import TestSupport

/// The log's semantics, written once and run against every backend (embedded SQLite and a real
/// Kafka-protocol broker started by `make test`).
@Suite("EventLog conformance", .timeLimit(.minutes(3)), .awaitedCleanup)
struct ConformanceTests {
    // MARK: Topics

    @Test(arguments: Backend.allCases)
    func createTopicsIsIdempotentAndDescribes(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let events = fixture.topic("events")
        let compacted = fixture.topic("latest")
        let specs = [
            TopicSpec(name: events, partitions: 3, cleanup: .delete(retention: .seconds(7 * 86_400))),
            TopicSpec(name: compacted, partitions: 2, cleanup: .compact),
        ]
        let created = try await fixture.log.createTopics(specs)
        #expect(Set(created) == [events, compacted])
        let again = try await fixture.log.createTopics(specs)
        #expect(again.isEmpty)

        let described = try await fixture.log.describeTopics([events, compacted, fixture.topic("absent")])
        #expect(described.count == 2)
        let byName = Dictionary(uniqueKeysWithValues: described.map { ($0.name, $0) })
        #expect(byName[events]?.partitions.count == 3)
        #expect(byName[events]?.spec.cleanup == .delete(retention: .seconds(7 * 86_400)))
        #expect(byName[compacted]?.spec.cleanup == .compact)
        #expect(byName[compacted]?.partitions.count == 2)
        let listed = try await fixture.log.listTopics()
        #expect(listed.contains(events) && listed.contains(compacted))
    }

    @Test(arguments: Backend.allCases)
    func appendToUnknownTopicFailsClearly(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let missing = fixture.topic("never-created")
        do {
            _ = try await fixture.log.append([OutgoingRecord(topic: missing, key: "k", value: Data("{}".utf8))])
            Issue.record("append to a missing topic succeeded")
        } catch let error as LogError {
            #expect(error.code == .unknownTopic)
            #expect(error.description.contains(missing))
        }
    }

    // MARK: Appending and reading

    @Test(arguments: Backend.allCases)
    func recordsOfOnePartitionKeepTheirOrder(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("ordered")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 4)])
        // Three batches of records for one key, interleaved with other keys.
        var expected: [String] = []
        for batch in 0..<3 {
            var records: [OutgoingRecord] = []
            for index in 0..<40 {
                let value = "b\(batch)-\(index)"
                records.append(OutgoingRecord(topic: topic, key: "app-1", value: Data(value.utf8)))
                expected.append(value)
                records.append(OutgoingRecord(topic: topic, key: "other-\(index)", value: Data("x".utf8)))
            }
            let positions = try await fixture.log.append(records)
            #expect(positions.count == records.count)
        }
        let partition = Partitioner.partition(forKey: Data("app-1".utf8), partitions: 4)
        let all = try await readAll(fixture.log, TopicPartition(topic, partition))
        let mine = all.filter { $0.keyString == "app-1" }.map { String(decoding: $0.value, as: UTF8.self) }
        #expect(mine == expected)
        let offsets = all.map(\.offset)
        #expect(offsets == offsets.sorted())
        #expect(Set(offsets).count == offsets.count)
    }

    @Test(arguments: Backend.allCases)
    func keyChoosesPartitionWithKafkasMurmur2(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("keyed")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 6)])
        let keys = (0..<60).map { "44060420000101\(String(format: "%04d", $0))" }
        let positions = try await fixture.log.append(
            keys.map { OutgoingRecord(topic: topic, key: $0, value: Data($0.utf8)) })
        for (key, position) in zip(keys, positions) {
            #expect(position.partition == Partitioner.partition(forKey: Data(key.utf8), partitions: 6), "key \(key)")
        }
        // The keys are spread: more than one partition used.
        #expect(Set(positions.map(\.partition)).count > 1)
        // An explicit partition wins over the key.
        let explicit = try await fixture.log.append([
            OutgoingRecord(topic: topic, key: keys[0], value: Data("x".utf8), partition: 5)
        ])
        #expect(explicit[0].partition == 5)
    }

    @Test(arguments: Backend.allCases)
    func headersKeysAndTimestampsRoundTrip(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("roundtrip")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 1)])
        let time = Date(timeIntervalSince1970: 1_705_300_000.123)
        let headers = [
            LogHeader(name: "ce_id", text: "e-1"), LogHeader(name: "ce_type", text: "household.birth.registered"),
            LogHeader(name: "empty", value: Data()), LogHeader(name: "名字", text: "李小明"),
        ]
        let body = Data(#"{"name":"李小明","n":1}"#.utf8)
        _ = try await fixture.log.append([
            OutgoingRecord(topic: topic, key: "k-1", value: body, headers: headers, timestamp: time),
            // An empty key and an empty value are present, zero bytes long; no key is absent.
            OutgoingRecord(topic: topic, key: Data(), value: Data()),
            OutgoingRecord(topic: topic, key: nil as Data?, value: Data("x".utf8)),
        ])
        let records = try await fixture.log.read(TopicPartition(topic, 0), from: 0, maxRecords: 10)
        try #require(records.count == 3)
        #expect(records[0].keyString == "k-1")
        #expect(records[0].value == body)
        #expect(records[0].headers == headers)
        #expect(abs(records[0].timestamp.timeIntervalSince(time)) < 0.001)
        #expect(records[1].key == Data())
        #expect(records[1].value == Data())
        #expect(records[2].key == nil)
        #expect(records[2].value == Data("x".utf8))
    }

    /// Backends may share header values between the records of a batch they read; whatever they
    /// share, each record reads back with exactly its own headers.
    @Test(arguments: Backend.allCases)
    func headersThatRepeatOrChangeBetweenRecordsReadBackAsWritten(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("headers")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 1)])
        let written: [[LogHeader]] = [
            [LogHeader(name: "a", text: "1"), LogHeader(name: "b", text: "x")],
            [LogHeader(name: "a", text: "1"), LogHeader(name: "b", text: "y")],
            [LogHeader(name: "a", text: "1"), LogHeader(name: "c", text: "y"), LogHeader(name: "d", text: "z")],
            [LogHeader(name: "a", text: "12")],
            [],
            [LogHeader(name: "a", text: "1"), LogHeader(name: "b", value: Data())],
            [LogHeader(name: "a", text: "1"), LogHeader(name: "b", value: Data())],
        ]
        _ = try await fixture.log.append(
            written.enumerated().map { OutgoingRecord(topic: topic, key: "k-\($0.offset)", value: Data(), headers: $0.element) })
        let read = try await fixture.log.read(TopicPartition(topic, 0), from: 0, maxRecords: 100)
        #expect(read.map(\.headers) == written)
        let consumer = try await fixture.log.makeConsumer(.group(fixture.topic("headers-group"), topics: [topic]))
        let consumed = try await drain(consumer, count: written.count)
        await consumer.close()
        #expect(consumed.sorted { $0.offset < $1.offset }.map(\.headers) == written)
    }

    @Test(arguments: Backend.allCases)
    func watermarksAndOffsetForTime(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("timed")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 1)])
        let start = Date(timeIntervalSince1970: 1_735_689_600)  // 2025-01-01T00:00:00Z
        // One append per record: Tansu reports a wrong high-water mark after a multi-record batch
        // (KAFKA_TESTING.md); the batched case is covered by `batchedHighWaterMark` below.
        for minute in 0..<10 {
            _ = try await fixture.log.append([
                OutgoingRecord(
                    topic: topic, key: "k", value: Data("\(minute)".utf8),
                    timestamp: start.addingTimeInterval(Double(minute) * 60))
            ])
        }
        let tp = TopicPartition(topic, 0)
        let marks = try await fixture.log.watermarks(tp)
        #expect(marks == Watermarks(low: 0, high: 10))
        #expect(try await fixture.log.offset(tp, atOrAfter: start.addingTimeInterval(5 * 60)) == 5)
        #expect(try await fixture.log.offset(tp, atOrAfter: start.addingTimeInterval(4 * 60 + 1)) == 5)
        #expect(try await fixture.log.offset(tp, atOrAfter: start.addingTimeInterval(-3600)) == 0)
        #expect(try await fixture.log.offset(tp, atOrAfter: start.addingTimeInterval(3600)) == 10)
    }

    @Test(arguments: Backend.allCases)
    func batchedHighWaterMark(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("batched")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 1)])
        _ = try await fixture.log.append((0..<5).map { OutgoingRecord(topic: topic, key: "k", value: Data("\($0)".utf8)) })
        let records = try await readAll(fixture.log, TopicPartition(topic, 0))
        #expect(records.map(\.offset) == [0, 1, 2, 3, 4])
        let marks = try await fixture.log.watermarks(TopicPartition(topic, 0))
        if backend == .kafka {
            // Known Tansu 0.6.0 quirk (KAFKA_TESTING.md): after one five-record produce request the
            // high-water mark reads 1. A real Kafka broker says 5, as the embedded backend does.
            #expect(marks.high >= 1)
        } else {
            #expect(marks.high == 5)
        }
    }

    // MARK: Consumer groups

    @Test(arguments: Backend.allCases)
    func groupOffsetsSurviveAReopen(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("resume")
        let group = fixture.group("resume")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 1)])
        for index in 0..<10 {
            _ = try await fixture.log.append([OutgoingRecord(topic: topic, key: "k", value: Data("\(index)".utf8))])
        }
        let first = try await fixture.log.makeConsumer(.group(group, topics: [topic]))
        let seen = try await drain(first, count: 10)
        #expect(seen.map(\.offset) == Array(0..<10))
        try await first.commit(Array(seen.prefix(6)))  // processed 0…5
        await first.close()

        let reopened = try fixture.reopen()
        let committed = try await reopened.committedOffsets(group: group, topics: [topic])
        #expect(committed[TopicPartition(topic, 0)] == 6)
        let second = try await reopened.makeConsumer(.group(group, topics: [topic]))
        let rest = try await drain(second, count: 4)
        #expect(rest.map(\.offset) == [6, 7, 8, 9])
        await second.close()
        await reopened.close()
    }

    @Test(arguments: Backend.allCases)
    func twoGroupsAreIndependent(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("shared")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 2)])
        _ = try await fixture.log.append((0..<20).map { OutgoingRecord(topic: topic, key: "k\($0)", value: Data("\($0)".utf8)) })

        let a = try await fixture.log.makeConsumer(.group(fixture.group("a"), topics: [topic]))
        let seenA = try await drain(a, count: 20)
        try await a.commit(seenA)
        await a.close()

        let b = try await fixture.log.makeConsumer(.group(fixture.group("b"), topics: [topic]))
        let seenB = try await drain(b, count: 20)
        #expect(Set(seenB.map(\.value)) == Set(seenA.map(\.value)))
        await b.close()

        // Group a committed just past what it read on each partition; b's reading moved none of it.
        var expected: [TopicPartition: Int64] = [:]
        for record in seenA {
            let partition = TopicPartition(topic, record.partition)
            expected[partition] = max(expected[partition] ?? 0, record.offset + 1)
        }
        #expect(try await fixture.log.committedOffsets(group: fixture.group("a"), topics: [topic]) == expected)
        if backend == .embedded {
            // Lag needs a true high-water mark, which the Kafka test broker does not report after
            // a multi-record produce request (../shared/KAFKA_TESTING.md).
            let lagA = try await fixture.log.lag(group: fixture.group("a"), topics: [topic])
            #expect(lagA.map(\.lag).reduce(0, +) == 0)
        }
        let lagB = try await fixture.log.lag(group: fixture.group("b"), topics: [topic])
        #expect(lagB.allSatisfy { $0.committed == nil })
        let groups = try await fixture.log.listGroups()
        #expect(groups.contains(fixture.group("a")))
    }

    @Test(arguments: Backend.allCases)
    func seekGroupByOffsetTimeEarliestAndLatest(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("replay")
        let group = fixture.group("replay")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 1)])
        let start = Date(timeIntervalSince1970: 1_735_689_600)
        for index in 0..<10 {
            _ = try await fixture.log.append([
                OutgoingRecord(
                    topic: topic, key: "k", value: Data("\(index)".utf8),
                    timestamp: start.addingTimeInterval(Double(index) * 3600))
            ])
        }
        let tp = TopicPartition(topic, 0)
        #expect(try await fixture.log.seekGroup(group, topics: [topic], to: .time(start.addingTimeInterval(7 * 3600)))[tp] == 7)
        let consumer = try await fixture.log.makeConsumer(.group(group, topics: [topic]))
        let replayed = try await drain(consumer, count: 3)
        #expect(replayed.map(\.offset) == [7, 8, 9])
        await consumer.close()

        #expect(try await fixture.log.seekGroup(group, topics: [topic], to: .offset(3))[tp] == 3)
        #expect(try await fixture.log.committedOffsets(group: group, topics: [topic])[tp] == 3)
        #expect(try await fixture.log.seekGroup(group, topics: [topic], to: .earliest)[tp] == 0)
        #expect(try await fixture.log.seekGroup(group, topics: [topic], to: .latest)[tp] == 10)
        let lag = try await fixture.log.lag(group: group, topics: [topic])
        #expect(lag.first?.lag == 0)
    }

    @Test(arguments: Backend.allCases)
    func consumerWithoutCommitsStartsAtResetPosition(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("reset")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 1)])
        for index in 0..<3 {
            _ = try await fixture.log.append([OutgoingRecord(topic: topic, key: "k", value: Data("old-\(index)".utf8))])
        }
        let latest = try await fixture.log.makeConsumer(
            ConsumerConfiguration(subscription: .topics([topic]), group: fixture.group("latest"), autoOffsetReset: .latest))
        try await waitForAssignment(latest)
        // Where "latest" is resolved races with a record appended right after the assignment, so
        // append until one arrives: whatever arrives must be new, never one of the old records.
        var seen: [LogRecord] = []
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(60))
        var index = 0
        while seen.isEmpty && clock.now < deadline {
            _ = try await fixture.log.append([OutgoingRecord(topic: topic, key: "k", value: Data("new-\(index)".utf8))])
            index += 1
            seen += try await latest.poll(maxRecords: 10, timeout: .milliseconds(500))
        }
        #expect(!seen.isEmpty)
        #expect(seen.allSatisfy { String(decoding: $0.value, as: UTF8.self).hasPrefix("new-") })
        await latest.close()

        let reader = try await fixture.log.makeConsumer(
            ConsumerConfiguration(subscription: .topics([topic]), group: nil, autoOffsetReset: .earliest))
        let all = try await drain(reader, count: 3 + index)
        #expect(all.count == 3 + index)
        await reader.close()
    }

    @Test(arguments: Backend.allCases)
    func patternSubscription(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let births = fixture.topic("household.birth.registered")
        let deaths = fixture.topic("household.death.registered")
        let tax = fixture.topic("tax.payment.received")
        try await fixture.log.createTopics([births, deaths, tax].map { TopicSpec(name: $0, partitions: 1) })
        for topic in [births, deaths, tax] {
            _ = try await fixture.log.append([OutgoingRecord(topic: topic, key: "k", value: Data(topic.utf8))])
        }
        let pattern = "\(NSRegularExpression.escapedPattern(for: fixture.prefix))\\.household\\..*"
        let consumer = try await fixture.log.makeConsumer(
            ConsumerConfiguration(subscription: .pattern(pattern), group: fixture.group("pattern")))
        let seen = try await drain(consumer, count: 2)
        #expect(Set(seen.map(\.topic)) == [births, deaths])
        // Nothing from the tax topic arrives later either.
        let more = try await consumer.poll(maxRecords: 10, timeout: .milliseconds(500))
        #expect(more.isEmpty)
        await consumer.close()
    }

    @Test(arguments: Backend.allCases)
    func membersOfOneGroupSharePartitionsWithoutOverlap(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("split")
        let group = fixture.group("split")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 4)])
        let revoked = RevokedPartitions()
        func configuration() -> ConsumerConfiguration {
            ConsumerConfiguration(
                subscription: .topics([topic]), group: group, onPartitionsRevoked: { revoked.add($0) })
        }
        let first = try await fixture.log.makeConsumer(configuration())
        try await waitForAssignment(first, count: 4)
        let second = try await fixture.log.makeConsumer(configuration())
        // Both members poll until the group settles with two partitions each.
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(60))
        while clock.now < deadline {
            async let a = first.poll(maxRecords: 10, timeout: .milliseconds(200))
            async let b = second.poll(maxRecords: 10, timeout: .milliseconds(200))
            _ = try await (a, b)
            let (ownedA, ownedB) = (try await first.assignment(), try await second.assignment())
            if ownedA.count == 2 && ownedB.count == 2 { break }
        }
        let ownedA = Set(try await first.assignment())
        let ownedB = Set(try await second.assignment())
        #expect(ownedA.count == 2 && ownedB.count == 2)
        #expect(ownedA.isDisjoint(with: ownedB))
        #expect(!revoked.all.isEmpty, "the first member was told before its partitions went")

        let records = (0..<40).map { OutgoingRecord(topic: topic, key: "key-\($0)", value: Data("\($0)".utf8)) }
        _ = try await fixture.log.append(records)
        var fromA: [LogRecord] = []
        var fromB: [LogRecord] = []
        while clock.now < deadline && fromA.count + fromB.count < 40 {
            async let a = first.poll(maxRecords: 50, timeout: .milliseconds(200))
            async let b = second.poll(maxRecords: 50, timeout: .milliseconds(200))
            let (batchA, batchB) = try await (a, b)
            fromA += batchA
            fromB += batchB
        }
        #expect(fromA.count + fromB.count == 40)
        #expect(Set(fromA.map(\.value)).isDisjoint(with: Set(fromB.map(\.value))))
        #expect(fromA.allSatisfy { ownedA.contains(TopicPartition($0.topic, $0.partition)) })
        await first.close()
        await second.close()
    }

    /// `groupMembers` names each live member (its client id) with the partitions it holds, and
    /// forgets a member that left.
    @Test(arguments: Backend.allCases)
    func groupMembersNameTheLiveMembersAndTheirPartitions(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("members")
        let group = fixture.group("members")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 3)])
        #expect(try await fixture.log.groupMembers(group).isEmpty, "a group nobody joined has no members")
        var configuration = ConsumerConfiguration.group(group, topics: [topic])
        configuration.clientId = "members-test-\(backend)"
        let consumer = try await fixture.log.makeConsumer(configuration)
        try await waitForAssignment(consumer, count: 3)
        // The coordinator may list the member a moment after the assignment arrived.
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(20))
        var members: [GroupMember] = []
        while clock.now < deadline {
            members = try await fixture.log.groupMembers(group)
            if members.first?.partitions.count == 3 || members.first?.isUnnamed == true { break }
            _ = try await consumer.poll(maxRecords: 1, timeout: .milliseconds(200))
        }
        #expect(members.count == 1)
        if let member = members.first, member.isUnnamed {
            // Tansu 0.6.0, the Kafka test broker, reports the group stable but lists no member:
            // the one unnamed member stands for them (a real Kafka broker names them).
            #expect(backend == .kafka, "only a broker that does not name members gives an unnamed one")
        } else {
            #expect(members.map(\.clientId) == ["members-test-\(backend)"])
            #expect(members.first?.partitions == (0..<3).map { TopicPartition(topic, $0) })
        }
        await consumer.close()
        var left: [GroupMember] = members
        while clock.now < deadline {
            left = try await fixture.log.groupMembers(group)
            if left.isEmpty { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(left.isEmpty, "a member that closed is no longer listed")
    }

    /// A member that `store`s what it processed, without committing, hands its partitions over
    /// in a rebalance without redelivery: the stored offsets are committed before they go.
    @Test(arguments: Backend.allCases)
    func storedOffsetsAreCommittedBeforePartitionsAreRevoked(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("handover")
        let group = fixture.group("handover")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 2)])
        let partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        for partition in partitions {
            _ = try await fixture.log.append(
                (0..<10).map {
                    OutgoingRecord(topic: topic, key: "k", value: Data("p\(partition.partition)-\($0)".utf8), partition: partition.partition)
                })
        }
        let revoked = RevokedPartitions()
        let first = try await fixture.log.makeConsumer(
            ConsumerConfiguration(subscription: .topics([topic]), group: group, onPartitionsRevoked: { revoked.add($0) }))
        let fromFirst = try await drain(first, count: 20)
        // Processed: offsets 0-5 of each partition. Stored, not committed.
        first.store(fromFirst.filter { $0.offset < 6 })
        #expect(try await fixture.log.committedOffsets(group: group, topics: [topic]).isEmpty, "store alone commits nothing")

        let second = try await fixture.log.makeConsumer(.group(group, topics: [topic]))
        var fromSecond: [LogRecord] = []
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(60))
        while clock.now < deadline {
            async let a = first.poll(maxRecords: 50, timeout: .milliseconds(200))
            async let b = second.poll(maxRecords: 50, timeout: .milliseconds(200))
            fromSecond += try await b
            _ = try await a
            let ownedByFirst = try await first.assignment().count
            let ownedBySecond = try await second.assignment().count
            if ownedByFirst == 1 && ownedBySecond == 1 && fromSecond.count >= 4 { break }
        }
        // Anything redelivered would arrive now.
        fromSecond += try await second.poll(maxRecords: 50, timeout: .milliseconds(500))
        let taken = try await second.assignment()
        try #require(taken.count == 1, "the second member owns one partition, got \(taken)")
        #expect(revoked.all.contains(taken[0]), "the first member was told before the partition went")
        let committed = try await fixture.log.committedOffsets(group: group, topics: [topic])
        #expect(committed[taken[0]] == 6, "the stored offset was committed before the partition went (\(committed))")
        #expect(fromSecond.map(\.offset).sorted() == [6, 7, 8, 9], "the new owner starts after what was stored")
        #expect(fromSecond.allSatisfy { TopicPartition($0.topic, $0.partition) == taken[0] })

        await first.close()
        await second.close()
        let afterClose = try await fixture.log.committedOffsets(group: group, topics: [topic])
        #expect(afterClose == [partitions[0]: 6, partitions[1]: 6], "closing commits what is still stored")
    }

    @Test(arguments: Backend.allCases)
    func twoWritersAppendConcurrentlyWithoutLossOrRepeat(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("writers")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 3)])
        let other = try fixture.reopen()
        async let one = appendMany(fixture.log, topic: topic, writer: "w1", count: 600)
        async let two = appendMany(other, topic: topic, writer: "w2", count: 600)
        let positions = try await one + two
        #expect(Set(positions).count == 1200, "no two records got the same position")
        var values: [String] = []
        for partition in 0..<3 {
            values += try await readAll(fixture.log, TopicPartition(topic, partition)).map {
                String(decoding: $0.value, as: UTF8.self)
            }
        }
        #expect(values.count == 1200)
        #expect(Set(values).count == 1200)
        await other.close()
    }

    // MARK: Compaction

    @Test(arguments: Backend.allCases)
    func compactedTopicKeepsTheLatestValuePerKey(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("progress")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 1, cleanup: .compact)])
        let described = try await fixture.log.describeTopics([topic])
        #expect(described.first?.spec.cleanup == .compact)
        guard backend == .embedded, let embedded = fixture.log as? EmbeddedLog else {
            // A Kafka broker compacts closed segments in the background, on its own schedule:
            // no test can wait for it (KAFKA_TESTING.md). Creation as compacted is what is proven.
            return
        }
        for version in 1...3 {
            for application in ["A-1", "A-2"] {
                _ = try await embedded.append([
                    OutgoingRecord(topic: topic, key: application, value: Data("\(application) v\(version)".utf8))
                ])
            }
        }
        let report = try await embedded.runMaintenance()
        #expect(report.compacted == 4)
        let left = try await readAll(embedded, TopicPartition(topic, 0))
        #expect(left.map { String(decoding: $0.value, as: UTF8.self) } == ["A-1 v3", "A-2 v3"])
        #expect(left.map(\.offset) == [4, 5], "offsets keep their gaps")
    }

    // MARK: Closing

    /// After `close()` every call on a consumer, and on the log and the consumers made from it,
    /// throws `.closed` (fatal, not retriable); closing twice does nothing.
    @Test(arguments: Backend.allCases)
    func everyCallAfterCloseThrowsClosed(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("closing")
        let tp = TopicPartition(topic, 0)
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 1)])
        _ = try await fixture.log.append([OutgoingRecord(topic: topic, key: "k", value: Data("x".utf8))])

        let consumer = try await fixture.log.makeConsumer(.group(fixture.group("closing"), topics: [topic]))
        await consumer.close()
        await consumer.close()
        try await expectClosed("consumer poll") { _ = try await consumer.poll(maxRecords: 1, timeout: .milliseconds(10)) }
        try await expectClosed("consumer commit") { try await consumer.commit(offsets: [tp: 1]) }
        try await expectClosed("consumer assignment") { _ = try await consumer.assignment() }
        try await expectClosed("consumer position") { _ = try await consumer.position() }

        // A consumer still open when its log closes is closed with it.
        let open = try await fixture.log.makeConsumer(ConsumerConfiguration(subscription: .topics([topic]), group: nil))
        await fixture.log.close()
        await fixture.log.close()
        let log = fixture.log
        try await expectClosed("append") { _ = try await log.append([OutgoingRecord(topic: topic, key: "k", value: Data())]) }
        try await expectClosed("read") { _ = try await log.read(tp, from: 0, maxRecords: 1) }
        try await expectClosed("watermarks") { _ = try await log.watermarks(tp) }
        try await expectClosed("offset for time") { _ = try await log.offset(tp, atOrAfter: Date()) }
        try await expectClosed("createTopics") { try await log.createTopics([TopicSpec(name: fixture.topic("late"), partitions: 1)]) }
        try await expectClosed("describeTopics") { _ = try await log.describeTopics([topic]) }
        try await expectClosed("listTopics") { _ = try await log.listTopics() }
        try await expectClosed("makeConsumer") { _ = try await log.makeConsumer(.group(fixture.group("late"), topics: [topic])) }
        try await expectClosed("committedOffsets") { _ = try await log.committedOffsets(group: fixture.group("closing"), topics: [topic]) }
        try await expectClosed("seekGroup") { try await log.seekGroup(fixture.group("closing"), topics: [topic], to: .earliest) }
        try await expectClosed("listGroups") { _ = try await log.listGroups() }
        try await expectClosed("lag") { _ = try await log.lag(group: fixture.group("closing"), topics: [topic]) }
        try await expectClosed("poll of a consumer of the closed log") { _ = try await open.poll(maxRecords: 1, timeout: .milliseconds(10)) }
        try await expectClosed("position of a consumer of the closed log") { _ = try await open.position() }
    }

    // MARK: Errors callers branch on

    @Test(arguments: Backend.allCases)
    func aRecordTooLargeIsNotRetriable(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("large")
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 1)])
        do {
            _ = try await fixture.log.append([OutgoingRecord(topic: topic, key: "k", value: Data(count: 3_000_000))])
            Issue.record("a 3 MB record was appended")
        } catch let error as LogError {
            #expect(error.code == .recordTooLarge, "\(error)")
            #expect(!error.isRetriable)
            #expect(!error.isFatal)
        }
        // The log goes on working for records that fit.
        let positions = try await fixture.log.append([OutgoingRecord(topic: topic, key: "k", value: Data("small".utf8))])
        #expect(positions.count == 1)
    }

    // MARK: Position

    /// `position()` is where the next record comes from: the committed offset or the reset
    /// position before anything is read, then just after what was returned.
    @Test(arguments: Backend.allCases)
    func positionIsWhereTheNextRecordComesFrom(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topic = fixture.topic("position")
        let tp = TopicPartition(topic, 0)
        try await fixture.log.createTopics([TopicSpec(name: topic, partitions: 1)])
        // One append per record: Tansu reports a wrong high-water mark after a batch (KAFKA_TESTING.md).
        for index in 0..<5 {
            _ = try await fixture.log.append([OutgoingRecord(topic: topic, key: "k", value: Data("\(index)".utf8))])
        }
        let group = fixture.group("position")
        let first = try await fixture.log.makeConsumer(.group(group, topics: [topic]))
        try await waitForAssignment(first)
        #expect(try await first.position() == [tp: 0], "nothing committed, reset earliest: the log start")
        let three = try await drain(first, count: 3)
        #expect(three.map(\.offset) == [0, 1, 2])
        #expect(try await first.position() == [tp: 3], "after the records returned")
        try await first.commit(three)
        await first.close()

        let second = try await fixture.log.makeConsumer(.group(group, topics: [topic], from: .latest))
        try await waitForAssignment(second)
        #expect(try await second.position() == [tp: 3], "the committed offset wins over the reset position")
        let rest = try await drain(second, count: 2)
        #expect(rest.map(\.offset) == [3, 4])
        #expect(try await second.position() == [tp: 5], "caught up: at the high-water mark")
        await second.close()

        let latest = try await fixture.log.makeConsumer(.group(fixture.group("latest"), topics: [topic], from: .latest))
        try await waitForAssignment(latest)
        #expect(try await latest.position() == [tp: 5], "nothing committed, reset latest: the high-water mark")
        await latest.close()

        let reader = try await fixture.log.makeConsumer(
            ConsumerConfiguration(subscription: .topics([topic]), group: nil, autoOffsetReset: .offset(2)))
        try await waitForAssignment(reader)
        #expect(try await reader.position() == [tp: 2], "a reader from an offset")
        await reader.close()
    }

    /// `position()` of a member holding many partitions it has read nothing from does not stall:
    /// on Kafka their watermarks were asked through the member's own connection, each waiting
    /// behind the fetch held open there (500 ms a partition: 30 s for these 60, and the
    /// orchestrator's 90 looked hung).
    @Test(arguments: Backend.allCases)
    func positionOfManyUnreadPartitionsIsQuick(_ backend: Backend) async throws {
        let fixture = try LogFixture.make(backend)
        atEnd { await fixture.tearDown() }
        let topics = (0..<3).map { fixture.topic("many\($0)") }
        try await fixture.log.createTopics(topics.map { TopicSpec(name: $0, partitions: 20) })
        let tp = TopicPartition(topics[0], 7)
        _ = try await fixture.log.append([OutgoingRecord(topic: tp.topic, key: "k", value: Data("x".utf8), partition: tp.partition)])
        let member = try await fixture.log.makeConsumer(.group(fixture.group("many"), topics: topics))
        try await waitForAssignment(member, count: 60)
        _ = try await drain(member, count: 1)
        let clock = ContinuousClock()
        let started = clock.now
        let positions = try await member.position()
        let took = clock.now - started
        #expect(positions.count == 60)
        #expect(positions[tp] == 1, "after the one record returned")
        #expect(positions.filter { $0.key != tp }.allSatisfy { $0.value == 0 }, "the others at their start")
        // A stall guard, not a speed figure: the fault cost ~0.5 s a partition (30 s here, seen
        // 29.6 s); a sound position() takes well under a second, so 15 s leaves a loaded CI
        // machine room and still catches it.
        #expect(took < .seconds(15), "position() of 60 partitions took \(took)")
        await member.close()
    }
}

// MARK: Helpers

final class RevokedPartitions: Sendable {
    private let box = Mutex<[TopicPartition]>([])
    func add(_ partitions: [TopicPartition]) { box.withLock { $0 += partitions } }
    var all: [TopicPartition] { box.withLock { $0 } }
}

import Synchronization

func readAll(_ log: any EventLog, _ partition: TopicPartition) async throws -> [LogRecord] {
    var records: [LogRecord] = []
    var offset: Int64 = 0
    while true {
        let batch = try await log.read(partition, from: offset, maxRecords: 500)
        guard let last = batch.last else { return records }
        records += batch
        offset = last.offset + 1
    }
}

/// Polls until `count` records arrived (or fails after a minute).
func drain(_ consumer: any LogConsumer, count: Int) async throws -> [LogRecord] {
    var records: [LogRecord] = []
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: .seconds(60))
    while records.count < count && clock.now < deadline {
        records += try await consumer.poll(maxRecords: count - records.count, timeout: .milliseconds(500))
    }
    try #require(records.count == count, "expected \(count) records, got \(records.count)")
    return records
}

/// Expects `body` to throw `LogError` `.closed`, fatal and not retriable.
func expectClosed(_ what: String, _ body: () async throws -> Void) async throws {
    do {
        try await body()
        Issue.record("\(what) after close succeeded")
    } catch let error as LogError {
        #expect(error.code == .closed, "\(what): \(error)")
        #expect(error.isFatal && !error.isRetriable, "\(what): \(error)")
    } catch {
        Issue.record("\(what) after close threw \(error), not LogError .closed")
    }
}

func waitForAssignment(_ consumer: any LogConsumer, count: Int = 1) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: .seconds(60))
    while clock.now < deadline {
        if try await consumer.assignment().count >= count { return }
        _ = try await consumer.poll(maxRecords: 0, timeout: .milliseconds(200))
    }
    Issue.record("the consumer got no assignment within a minute")
}

func appendMany(_ log: any EventLog, topic: String, writer: String, count: Int) async throws -> [RecordPosition] {
    var positions: [RecordPosition] = []
    for batch in stride(from: 0, to: count, by: 50) {
        let records = (batch..<min(batch + 50, count)).map {
            OutgoingRecord(topic: topic, key: "\(writer)-\($0 % 7)", value: Data("\(writer)-\($0)".utf8))
        }
        positions += try await log.append(records)
    }
    return positions
}
