import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import KafkaLog
import Subscriptions
import Synchronization
import TestCleanup
import TestSupport
import Testing

/// The subscription engine on real logs: an embedded log in a temporary file and a Kafka test
/// broker of the test's own.
@Suite("Subscriptions on a real log", .serialized, .awaitedCleanup)
struct SubscriptionHubTests {
    @Test("Resuming from any event's id after a restart neither skips nor repeats; embedded", .timeLimit(.minutes(1)))
    func resumeEmbedded() async throws { try await resumeWithoutGapOrRepeat(kafka: false) }

    @Test("Resuming from any event's id after a restart neither skips nor repeats; Kafka", .timeLimit(.minutes(2)))
    func resumeKafka() async throws { try await resumeWithoutGapOrRepeat(kafka: true) }

    @Test("Long-poll batches repeat until committed and go on after the commit; embedded", .timeLimit(.minutes(1)))
    func longPollEmbedded() async throws { try await longPollWithCommit(kafka: false) }

    @Test("Long-poll batches repeat until committed and go on after the commit; Kafka", .timeLimit(.minutes(2)))
    func longPollKafka() async throws { try await longPollWithCommit(kafka: true) }

    func resumeWithoutGapOrRepeat(kafka: Bool) async throws {
        let bench = try await Bench(kafka: kafka)
        let topic = "subs.resume.events"
        try await bench.log.createTopics([TopicSpec(name: topic, partitions: 3)])
        try await bench.append(topic, count: 30, from: 0)

        var hub = SubscriptionHub(log: bench.log, configuration: Bench.configuration)
        let subscription = try await hub.open(
            SubscriptionRequest(selection: .topics([topic]), group: "resume", redacted: false))
        var delivered = try await Self.read(subscription, until: 30)
        // Caught up, the subscriber is served by the partition's tail: append while it waits.
        try await bench.append(topic, count: 10, from: 30)
        delivered += try await Self.read(subscription, until: 10)
        await subscription.close()
        #expect(delivered.count == 40)
        #expect(Set(delivered.map(\.eventId)).count == 40)
        Self.expectPartitionOrder(delivered)

        // The gateway restarts: a new log client and a new hub; events come meanwhile.
        let log = try await bench.reopen()
        try await log.createTopics([TopicSpec(name: topic, partitions: 3)])
        try await bench.append(topic, count: 5, from: 40)
        hub = SubscriptionHub(log: log, configuration: Bench.configuration)
        // Every resume on Kafka costs reads that wait for the broker's end of partition: two cuts there.
        for cut in kafka ? [7, 39] : [0, 7, 29, 39] {
            let resumed = try await hub.open(
                SubscriptionRequest(selection: .topics([topic]), group: "resume", cursor: delivered[cut].id, redacted: false))
            let rest = try await Self.read(resumed, until: 39 - cut + 5)
            let extra = try await resumed.next(max: 100, wait: .milliseconds(kafka ? 1500 : 300))
            await resumed.close()
            #expect(extra.events.isEmpty, "nothing after the end (resumed after event \(cut))")
            let expected = Set(delivered[(cut + 1)...].map(\.eventId)).union((40..<45).map { "event-\($0)" })
            #expect(Set(rest.map(\.eventId)) == expected, "exactly the events after event \(cut)")
            #expect(rest.count == expected.count, "no event twice after event \(cut)")
            Self.expectPartitionOrder(rest)
        }
    }

    func longPollWithCommit(kafka: Bool) async throws {
        let bench = try await Bench(kafka: kafka)
        let topic = "subs.poll.events"
        try await bench.log.createTopics([TopicSpec(name: topic, partitions: 2)])
        try await bench.append(topic, count: 12, from: 0)
        let hub = SubscriptionHub(log: bench.log, configuration: Bench.configuration)
        let request = SubscriptionRequest(selection: .topics([topic]), group: "poller", redacted: false)
        let wait: Duration = .seconds(kafka ? 5 : 2)

        let first = try await hub.poll(request, max: 5, wait: wait)
        #expect(first.events.count == 5)
        let again = try await hub.poll(request, max: 5, wait: wait)
        #expect(again.events.map(\.eventId) == first.events.map(\.eventId), "uncommitted: the same batch again")

        let committed = try await hub.commit(group: "poller", selection: .topics([topic]), cursor: first.cursor.text)
        #expect(try await bench.log.committedOffsets(group: "poller", topics: [topic]) == committed)
        var seen = first.events.map(\.eventId)
        // After the commit the next batch goes on; a cursor passed along reads on without a commit.
        var batch = try await hub.poll(request, max: 5, wait: wait)
        seen += batch.events.map(\.eventId)
        var onward = request
        onward.cursor = batch.cursor.text
        batch = try await hub.poll(onward, max: 5, wait: wait)
        seen += batch.events.map(\.eventId)
        try await hub.commit(group: "poller", selection: .topics([topic]), cursor: batch.cursor.text)
        onward.cursor = batch.cursor.text
        while seen.count < 12 {
            batch = try await hub.poll(onward, max: 5, wait: wait)
            try #require(!batch.events.isEmpty, "events \(seen.count)..<12 arrive")
            seen += batch.events.map(\.eventId)
            onward.cursor = batch.cursor.text
        }
        try await hub.commit(group: "poller", selection: .topics([topic]), cursor: batch.cursor.text)
        #expect(Set(seen) == Set((0..<12).map { "event-\($0)" }))
        #expect(seen.count == 12)
        let empty = try await hub.poll(request, max: 5, wait: .milliseconds(300))
        #expect(empty.events.isEmpty, "everything committed: nothing left")
        let lag = try await bench.log.lag(group: "poller", topics: [topic])
        if !kafka { #expect(lag.allSatisfy { $0.lag == 0 }) }  // Tansu's high-water mark is unreliable (KAFKA_TESTING.md)

        // SSE's resume commits the Last-Event-ID it is given: the subscriber has everything before it.
        var resume = SubscriptionRequest(
            selection: .topics([topic]), group: "sse", cursor: first.events[2].id, redacted: false, commitCursorOnOpen: true)
        let subscription = try await hub.open(resume)
        await subscription.close()
        let sseCommitted = try await bench.log.committedOffsets(group: "sse", topics: [topic])
        #expect(sseCommitted.values.reduce(0, +) == 3)
        resume.cursor = "not a cursor"
        await #expect(throws: CursorError.self) { try await hub.open(resume) }
    }

    @Test("Twenty subscribers caught up each get every new record once, per partition in order", .timeLimit(.minutes(1)))
    func fanOut() async throws {
        let bench = try await Bench(kafka: false)
        let topic = "subs.fanout.events"
        try await bench.log.createTopics([TopicSpec(name: topic, partitions: 4)])
        try await bench.append(topic, count: 7, from: 0)
        let hub = SubscriptionHub(log: bench.log, configuration: Bench.configuration)
        var subscriptions: [Subscription] = []
        for index in 0..<20 {
            subscriptions.append(
                try await hub.open(
                    SubscriptionRequest(selection: .topics([topic]), group: "fan-\(index)", start: .latest, redacted: false)))
        }
        try await bench.append(topic, count: 60, from: 7)
        try await withThrowingTaskGroup(of: [Delivered].self) { group in
            for subscription in subscriptions { group.addTask { try await Self.read(subscription, until: 60) } }
            for try await delivered in group {
                #expect(Set(delivered.map(\.eventId)) == Set((7..<67).map { "event-\($0)" }))
                #expect(delivered.count == 60)
                Self.expectPartitionOrder(delivered)
            }
        }
        for subscription in subscriptions { await subscription.close() }
    }

    @Test("A pattern takes up a topic created later, and leaves out one the subscriber may not read", .timeLimit(.minutes(1)))
    func patternGrows() async throws {
        let bench = try await Bench(kafka: false)
        try await bench.log.createTopics([TopicSpec(name: "subs.pattern.first", partitions: 2)])
        try await bench.append("subs.pattern.first", count: 3, from: 0)
        var configuration = Bench.configuration
        configuration.topicRefresh = .milliseconds(100)
        let hub = SubscriptionHub(log: bench.log, configuration: configuration)
        let admit: @Sendable ([String]) async throws -> Void = { topics in
            if let secret = topics.first(where: { $0.hasSuffix("secret") }) { throw SupportError("\(secret) is not granted") }
        }
        let subscription = try await hub.open(
            SubscriptionRequest(selection: .pattern("subs.pattern.*"), group: "pattern", redacted: false), admit: admit)
        let before = try await Self.read(subscription, until: 3)
        try await bench.log.createTopics([
            TopicSpec(name: "subs.pattern.second", partitions: 3), TopicSpec(name: "subs.pattern.secret", partitions: 1),
        ])
        try await bench.append("subs.pattern.secret", count: 2, from: 100)
        try await bench.append("subs.pattern.second", count: 4, from: 200)
        let after = try await Self.read(subscription, until: 4)
        let extra = try await subscription.next(max: 10, wait: .milliseconds(400))
        #expect(before.allSatisfy { $0.topic == "subs.pattern.first" })
        #expect(Set(after.map(\.eventId)) == Set((200..<204).map { "event-\($0)" }))
        #expect(extra.events.isEmpty)
        #expect(await subscription.topicNames == ["subs.pattern.first", "subs.pattern.second"])
        // The id of the last event resumes on both topics at once; a topic the cursor does not
        // name (the secret one, now granted) is read from its start: nothing of it was delivered.
        let resumed = try await hub.open(
            SubscriptionRequest(selection: .pattern("subs.pattern.*"), group: "pattern", cursor: after.last!.id, redacted: false),
            admit: { _ in })
        try await bench.append("subs.pattern.first", count: 1, from: 300)
        let next = try await Self.read(resumed, until: 3)
        #expect(Set(next.map(\.eventId)) == ["event-100", "event-101", "event-300"])
        #expect(next.count == 3)
        await resumed.close()
        await subscription.close()
        // A refusal when the subscription opens is the caller's error.
        await #expect(throws: SupportError.self) {
            try await hub.open(
                SubscriptionRequest(selection: .pattern("subs.pattern.*"), group: "pattern", redacted: false), admit: admit)
        }
        await #expect(throws: LogError.self) {
            try await hub.open(SubscriptionRequest(selection: .topics(["subs.no.such"]), group: "pattern", redacted: false))
        }
    }

    @Test("An event is delivered as a CloudEvent in JSON with where it stands; redaction masks the personal data of body and subject")
    func deliveredForm() async throws {
        let bench = try await Bench(kafka: false)
        let topic = "subs.form.events"
        try await bench.log.createTopics([TopicSpec(name: topic, partitions: 1)])
        let event = Event(
            id: "form-1", type: "household.birth.registered", source: "/departments/household-registry",
            subject: "440604201801150019",
            data: Data(#"{"child":{"name":"李小明","residentId":"440604201801150019"},"office":{"name":"祖庙派出所"},"n":1}"#.utf8))
        _ = try await bench.log.append([CloudEventsBinding.record(for: event, topic: topic)])
        let hub = SubscriptionHub(log: bench.log, configuration: Bench.configuration)
        for redacted in [false, true] {
            let batch = try await hub.poll(
                SubscriptionRequest(selection: .topics([topic]), group: nil, redacted: redacted), max: 10, wait: .seconds(2))
            try #require(batch.events.count == 1)
            let json = try JSONValue.parse(Data(batch.events[0].json))
            #expect(json[pointer: "/id"] == .string("form-1"))
            #expect(json[pointer: "/type"] == .string("household.birth.registered"))
            #expect(json[pointer: "/specversion"] == .string("1.0"))
            #expect(json[pointer: "/data/child/name"] == .string(redacted ? "李**" : "李小明"))
            #expect(json[pointer: "/data/child/residentId"] == .string(redacted ? "440604********0019" : "440604201801150019"))
            #expect(json[pointer: "/data/office/name"] == .string("祖庙派出所"), "no person's name")
            #expect(json[pointer: "/data/n"] == .integer(1))
            #expect(json[pointer: "/topic"] == .string(topic))
            #expect(json[pointer: "/partition"] == .integer(0))
            #expect(json[pointer: "/offset"] == .integer(0))
            #expect(json[pointer: "/subject"] == .string(redacted ? "440604********0019" : "440604201801150019"))

            let frames = String(decoding: ServerSentEvents.frames(batch), as: UTF8.self)
            let lines = frames.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.count == 5)
            #expect(lines[0] == "id: \(batch.events[0].id)")
            #expect(lines[1] == "event: household.birth.registered")
            #expect(lines[2] == "data: \(String(decoding: batch.events[0].json, as: UTF8.self))")
            #expect(lines[3] == "" && lines[4] == "")
            let page = try JSONValue.parse(Data(batch.json))
            #expect(page[pointer: "/cursor"] == .string(batch.cursor.text))
            #expect(page[pointer: "/events/0/id"] == .string("form-1"))
        }
        #expect(ServerSentEvents.comment() == Array(": keep-alive\n\n".utf8))
        #expect(ServerSentEvents.retry(.seconds(2)) == Array("retry: 2000\n\n".utf8))
    }

    @Test("Caught-up subscribers share one redaction and one plain form per event, however many they are", .timeLimit(.minutes(1)))
    func redactionOncePerForm() async throws {
        let bench = try await Bench(kafka: false)
        let topic = "subs.masking.events"
        try await bench.log.createTopics([TopicSpec(name: topic, partitions: 2)])
        let redactions = Mutex<[Int64: Int]>([:])
        var configuration = Bench.configuration
        configuration.redaction = { event, record in
            redactions.withLock { $0[record.offset * 2 + Int64(record.partition), default: 0] += 1 }
            DeliveredEvent.personalDataMasking(&event, record)
        }
        let hub = SubscriptionHub(log: bench.log, configuration: configuration)
        var subscriptions: [(Subscription, redacted: Bool)] = []
        for index in 0..<12 {
            let redacted = index % 3 != 0
            subscriptions.append(
                (try await hub.open(
                    SubscriptionRequest(selection: .topics([topic]), group: nil, start: .latest, redacted: redacted)), redacted))
        }
        // Until the feeds have started (what they keep is what a caught-up subscriber reads).
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (subscription, _) in subscriptions {
                group.addTask { _ = try await subscription.next(max: 1, wait: .milliseconds(200)) }
            }
            try await group.waitForAll()
        }
        try await bench.append(topic, count: 40, from: 0)
        try await withThrowingTaskGroup(of: (Bool, [Delivered]).self) { group in
            for (subscription, redacted) in subscriptions {
                group.addTask { (redacted, try await Self.read(subscription, until: 40)) }
            }
            for try await (_, delivered) in group { #expect(delivered.count == 40) }
        }
        let counts = redactions.withLock { $0 }
        #expect(counts.count == 40, "every event redacted")
        #expect(counts.values.allSatisfy { $0 == 1 }, "once each for eight redacted subscribers: \(counts.values.sorted().suffix(3))")
        for (subscription, _) in subscriptions { await subscription.close() }
    }

    @Test("endAll ends a waiting subscription at once with an empty batch, and any opened afterwards", .timeLimit(.minutes(1)))
    func endAll() async throws {
        let bench = try await Bench(kafka: false)
        let topic = "subs.end.events"
        try await bench.log.createTopics([TopicSpec(name: topic, partitions: 1)])
        let hub = SubscriptionHub(log: bench.log, configuration: Bench.configuration)
        let subscription = try await hub.open(SubscriptionRequest(selection: .topics([topic]), group: nil, redacted: false))
        let waiting = Task { try await subscription.next(max: 10, wait: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(200))
        let ending = ContinuousClock.now
        hub.endAll()
        let batch = try await waiting.value
        #expect(ContinuousClock.now - ending < .seconds(2))
        #expect(batch.events.isEmpty)
        #expect(subscription.hasEnded)
        var stream = ServerSentEventStream(subscription).makeAsyncIterator()
        _ = try await stream.next()  // retry:
        let last = try await stream.next().map { String(decoding: $0, as: UTF8.self) }
        #expect(last?.contains("reconnect with Last-Event-ID") == true, "\(last ?? "nil")")
        #expect(try await stream.next() == nil, "the stream ends")
        let later = try await hub.open(SubscriptionRequest(selection: .topics([topic]), group: nil, redacted: false))
        #expect(later.hasEnded)
    }

    @Test("The SSE frames a subscription writes straight are the bytes of its batches' frames, ids included", .timeLimit(.minutes(1)))
    func framesAsBatches() async throws {
        let bench = try await Bench(kafka: false)
        let topic = "subs.frames.events"
        try await bench.log.createTopics([TopicSpec(name: topic, partitions: 3)])
        try await bench.append(topic, count: 30, from: 0)
        let hub = SubscriptionHub(log: bench.log, configuration: Bench.configuration)
        for redacted in [false, true] {
            let batches = try await hub.open(SubscriptionRequest(selection: .topics([topic]), group: nil, redacted: redacted))
            let framed = try await hub.open(SubscriptionRequest(selection: .topics([topic]), group: nil, redacted: redacted))
            var expected: [UInt8] = []
            var written: [UInt8] = []
            var (fromBatches, fromFrames) = (0, 0)
            // The same calls on both (a batch's partitions rotate from call to call).
            while fromBatches < 30 || fromFrames < 30 {
                let batch = try await batches.next(max: 7, wait: .seconds(2))
                let frames = try await framed.nextFrames(max: 7, wait: .seconds(2))
                expected += ServerSentEvents.frames(batch)
                written += frames.frames
                fromBatches += batch.events.count
                fromFrames += frames.events
                try #require(batch.events.count == frames.events && !batch.events.isEmpty)
            }
            #expect(written == expected)
            #expect(await framed.cursor == batches.cursor)
            await batches.close()
            await framed.close()
        }
    }

    @Test("A short wait after a long one that an event ended returns after its own timeout", .timeLimit(.minutes(1)))
    func shortWaitAfterLongWait() async throws {
        let bench = try await Bench(kafka: false)
        let topic = "subs.wait.events"
        try await bench.log.createTopics([TopicSpec(name: topic, partitions: 1)])
        let hub = SubscriptionHub(log: bench.log, configuration: Bench.configuration)
        let subscription = try await hub.open(
            SubscriptionRequest(selection: .topics([topic]), group: nil, start: .latest, redacted: false))
        _ = try await subscription.next(max: 1, wait: .milliseconds(100))  // the feed starts
        let waiting = Task { try await subscription.next(max: 10, wait: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(200))
        try await bench.append(topic, count: 1, from: 0)
        let woken = try await waiting.value
        #expect(woken.events.count == 1, "the append ends the long wait")
        let clock = ContinuousClock()
        let started = clock.now
        let empty = try await subscription.next(max: 10, wait: .milliseconds(300))
        let waited = clock.now - started
        #expect(empty.events.isEmpty)
        #expect(waited >= .milliseconds(290) && waited < .seconds(5), "waited \(waited) for a wait of 300 ms")
        await subscription.close()
    }

    // MARK: Helpers

    struct Delivered: Sendable {
        var eventId: String
        var topic: String
        var partition: Int
        var offset: Int64
        var id: String
    }

    /// Reads until `count` events came (fails after 45 s without them: a loaded machine, Kafka).
    static func read(_ subscription: Subscription, until count: Int) async throws -> [Delivered] {
        var delivered: [Delivered] = []
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(45))
        while delivered.count < count {
            try #require(clock.now < deadline, "\(count) events within 45 s (got \(delivered.count))")
            let batch = try await subscription.next(max: 7, wait: .seconds(1))
            for event in batch.events {
                delivered.append(
                    Delivered(
                        eventId: event.record.header("ce_id") ?? "?", topic: event.record.topic,
                        partition: event.record.partition, offset: event.record.offset, id: event.id))
            }
        }
        return delivered
    }

    static func expectPartitionOrder(_ delivered: [Delivered], sourceLocation: SourceLocation = #_sourceLocation) {
        var last: [String: Int64] = [:]
        for event in delivered {
            let key = "\(event.topic)[\(event.partition)]"
            if let previous = last[key] {
                #expect(event.offset > previous, "\(key) in order", sourceLocation: sourceLocation)
            }
            last[key] = event.offset
        }
    }
}

/// A log for one test: embedded in a temporary folder, or a Kafka test broker of its own.
final class Bench: Sendable {
    let folder: URL
    let kafka: Bool
    let broker: TestBroker?
    let log: any EventLog
    private let reopened = Mutex<[any EventLog]>([])

    static var configuration: SubscriptionHub.Configuration {
        var configuration = SubscriptionHub.Configuration()
        configuration.feedLinger = .milliseconds(200)
        return configuration
    }

    init(kafka: Bool) async throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("subs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        self.kafka = kafka
        (log, broker) = try serviceTestLog(in: folder, kafka: kafka)
        atEnd { [self] in await close() }
    }

    /// A second client of the same log (what a restarted gateway opens); the first is closed.
    func reopen() async throws -> any EventLog {
        await log.close()
        let next: any EventLog
        if let broker {
            next = try KafkaLog(configuration: KafkaConfiguration(bootstrapServers: ["127.0.0.1:\(broker.port)"]))
        } else {
            next = try EmbeddedLog(path: folder.appendingPathComponent("bus.sqlite").path)
        }
        reopened.withLock { $0.append(next) }
        return next
    }

    /// Appends `count` CloudEvents `event-N` keyed over ten keys, one append each (Tansu reports
    /// a wrong high-water mark after a batched produce, KAFKA_TESTING.md).
    func append(_ topic: String, count: Int, from first: Int) async throws {
        let target = reopened.withLock { $0.last } ?? log
        for index in first..<(first + count) {
            let event = Event(
                id: "event-\(index)", type: "subs.test.event", source: "/tests", subject: "key-\(index % 10)",
                data: Data(#"{"index":\#(index)}"#.utf8))
            _ = try await target.append([CloudEventsBinding.record(for: event, topic: topic)])
        }
    }

    func close() async {
        for log in reopened.withLock({ $0 }) { await log.close() }
        await log.close()
        broker?.stop()
        try? FileManager.default.removeItem(at: folder)
    }
}

extension SubscriptionEvent {
    /// The CloudEvents id of the event's record.
    var eventId: String { record.header("ce_id") ?? "?" }
}
