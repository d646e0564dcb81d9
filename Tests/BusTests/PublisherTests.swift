import Bus
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import TestCleanup
import Testing
import TestSupport

@Suite("Validated publishing and dead letters", .awaitedCleanup)
struct PublisherTests {
    func birthExample() throws -> JSONValue {
        try #require(repositoryCatalog.schemas["household.birth.registered"]?.examples.first)
    }

    func event(_ type: String, _ body: Data, subject: String? = nil) -> Event {
        Event(type: type, source: "/test", subject: subject, data: body)
    }

    @Test func everyExampleOfEveryTypePublishes() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        try await bus.log.createTopics(repositoryCatalog.topicSpecs)
        let publisher = Publisher(log: bus.log, catalog: repositoryCatalog, name: "test")
        for type in repositoryCatalog.eventTypes {
            let example = try #require(repositoryCatalog.schemas[type]?.examples.first, "\(type) has no example")
            // A type on per-department topics goes to the topic of the department its body names.
            let topics = repositoryCatalog.topics(carrying: type).filter { topic in
                topic.ownerField.map { example[pointer: $0] == .string(topic.owner) } ?? true
            }
            let (position, published) = try await publisher.publish(
                event(type, example.serialized()), topic: topics.first?.name)
            #expect(position.topic == topics.first?.name)
            // The key is the body's key field, as the catalog names it.
            if let pointer = topics.first?.keyPointer, case .string(let key)? = example[pointer: pointer] {
                #expect(published.subject == key, "\(type)")
                let stored = try await bus.log.read(position.topicPartition, from: position.offset, maxRecords: 1)
                #expect(stored.first?.keyString == key)
                #expect(try stored.first.map(CloudEventsBinding.event(from:))?.type == type)
            }
        }
    }

    @Test func refusedEventsGoToTheDeadLetterTopicWithTheReason() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        try await bus.log.createTopics(repositoryCatalog.topicSpecs)
        let publisher = Publisher(log: bus.log, catalog: repositoryCatalog, name: "test-connector")
        let birth = try birthExample()
        guard case .string(let id)? = birth[pointer: "/child/residentId"] else {
            Issue.record("the birth example has no /child/residentId")
            return
        }
        let corrupted = String(id.dropLast()) + (id.last == "1" ? "2" : "1")
        let badCheck = Data(String(decoding: birth.serialized(), as: UTF8.self).replacingOccurrences(of: id, with: corrupted).utf8)
        let notJSON = Data("{\"child\": {".utf8)
        let batch = [
            Publication(event: event("household.birth.registered", birth.serialized())),
            Publication(event: event("household.birth.registered", notJSON)),
            Publication(event: event("household.birth.registered", badCheck)),
            Publication(event: event("household.wedding.registered", birth.serialized())),
            Publication(event: event("household.birth.registered", birth.serialized()), topic: "tax.payment.received"),
            Publication(event: event("household.birth.registered", birth.serialized(), subject: "someone-else")),
        ]
        let outcomes = try await publisher.publish(batch, deadLetter: true)
        #expect(outcomes.count == 6)
        guard case .published = outcomes[0] else {
            Issue.record("the valid birth was not published")
            return
        }
        var codes: [String] = []
        for outcome in outcomes.dropFirst() {
            guard case .deadLettered(let position, let failure) = outcome else {
                Issue.record("a bad event was published: \(outcome)")
                continue
            }
            #expect(position.topic == "deadletter.record.refused")
            codes.append(failure.code.rawValue)
        }
        #expect(codes == ["invalid-json", "schema-violation", "unknown-type", "wrong-topic", "subject-mismatch"])

        let dead = try await readAll(bus.log, topic: "deadletter.record.refused").sorted { $0.timestamp < $1.timestamp }
        #expect(dead.count == 5)
        let byCode = Dictionary(grouping: dead) { $0.header("dl_code") ?? "" }
        let json = try #require(byCode["invalid-json"]?.first)
        #expect(json.value == notJSON, "the original bytes are kept")
        #expect(json.header("dl_refused_by") == "test-connector")
        #expect(json.header("ce_type") == "household.birth.registered")
        #expect(json.header("dl_time").flatMap(Timestamp.parse) != nil)
        let schema = try #require(byCode["schema-violation"]?.first)
        #expect(schema.header("dl_reason")?.contains("/child/residentId") == true)
        #expect(schema.header("dl_reason")?.contains("cn-resident-id") == true)
        #expect(byCode["wrong-topic"]?.first?.header("dl_original_topic") == "tax.payment.received")
        // Each dead letter keeps the original record's headers, in order, then the five dl_ ones;
        // the batch's refusals share one dl_time, and each reason is its failure's.
        let failures = Dictionary(
            uniqueKeysWithValues: outcomes.compactMap { outcome -> (String, ValidationFailure)? in
                if case .deadLettered(_, let failure) = outcome { (failure.eventId ?? "", failure) } else { nil }
            })
        #expect(failures.count == 5)
        for record in dead {
            let failure = try #require(failures[record.header("ce_id") ?? ""])
            let original = CloudEventsBinding.record(for: try CloudEventsBinding.event(from: record), topic: "")
            #expect(record.headers.map(\.name) == original.headers.map(\.name) + ["dl_code", "dl_reason", "dl_original_topic", "dl_time", "dl_refused_by"])
            #expect(Array(record.headers.prefix(original.headers.count)) == original.headers)
            #expect(record.header("dl_reason") == failure.reason)
            #expect(record.header("dl_code") == failure.code.rawValue)
        }
        #expect(Set(dead.compactMap { $0.header("dl_time") }).count == 1)
    }

    @Test func withoutDeadLetteringARefusalThrowsAndAppendsNothing() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        try await bus.log.createTopics(repositoryCatalog.topicSpecs)
        let publisher = Publisher(log: bus.log, catalog: repositoryCatalog, name: "test")
        let birth = try birthExample()
        let batch = [
            Publication(event: event("household.birth.registered", birth.serialized())),
            Publication(event: event("household.birth.registered", Data("[1,2".utf8))),
        ]
        await #expect(throws: ValidationFailure.self) { try await publisher.publish(batch, deadLetter: false) }
        #expect(try await readAll(bus.log, topic: "household.birth.registered").isEmpty)
        #expect(try await readAll(bus.log, topic: "deadletter.record.refused").isEmpty)
    }

    /// `records(for:deadLetter:)` is `publish`'s work without the log (the flood benchmark measures
    /// it): the same records in the same order, dead letters with their reasons, nothing appended.
    /// It is synchronous, so it cannot append: the log has not even its topics.
    @Test func theRecordsOfABatchAreBuiltWithoutAppending() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        let publisher = Publisher(log: bus.log, catalog: repositoryCatalog, name: "records")
        let body = try birthExample().serialized()
        let batch = [
            Publication(event: event("household.birth.registered", Data(#"{"child":{"name":tru}}"#.utf8))),
            Publication(event: event("household.birth.registered", body)),
            Publication(event: event("household.wedding.registered", body)),
        ]
        let (records, results) = try publisher.records(for: batch, deadLetter: true)
        #expect(records.map(\.topic) == ["deadletter.record.refused", "household.birth.registered", "deadletter.record.refused"])
        #expect(records[0].value == batch[0].event.data)
        #expect(records[0].headers.first { $0.name == "dl_code" }?.text == "invalid-json")
        #expect(records[0].headers.first { $0.name == "dl_reason" }?.text?.contains("/child/name") == true)
        #expect(records[0].headers.first { $0.name == "dl_original_topic" }?.text == "household.birth.registered")
        #expect(records[2].headers.first { $0.name == "dl_code" }?.text == "unknown-type")
        #expect(records[2].headers.first { $0.name == "dl_original_topic" }?.text == "")
        #expect(results.map { (try? $0.get()) != nil } == [false, true, false])
        #expect(throws: ValidationFailure.self) { try publisher.records(for: batch, deadLetter: false) }
    }

    /// The embedded log's record timestamp and the `ce_time` header say the same millisecond,
    /// truncated as Kafka clients truncate (not rounded up to the next one).
    @Test func recordTimestampAndCloudEventsTimeAgree() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        try await bus.log.createTopics(repositoryCatalog.topicSpecs)
        let publisher = Publisher(log: bus.log, catalog: repositoryCatalog, name: "test")
        let birth = try birthExample()
        for (seconds, expected) in [(1_735_689_600.9997, "2025-01-01T00:00:00.999Z"), (0.002, "1970-01-01T00:00:00.002Z")] {
            var published = event("household.birth.registered", birth.serialized())
            published.time = Date(timeIntervalSince1970: seconds)
            let (position, _) = try await publisher.publish(published)
            let stored = try #require(try await bus.log.read(position.topicPartition, from: position.offset, maxRecords: 1).first)
            #expect(stored.header("ce_time") == expected)
            #expect(Timestamp.format(stored.timestamp) == expected)
            #expect(try CloudEventsBinding.event(from: stored).time == stored.timestamp)
        }
    }

    /// A batch read shares repeated header values between records; values that differ, even
    /// with the same length, or that come under another name, are each read back as written.
    @Test func headersReadBackAsWrittenWhenValuesRepeatOrAlternate() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        try await bus.log.createTopics([TopicSpec(name: "test.header.values", partitions: 1)])
        let sources = ["/departments/tax-bureau-a", "/departments/tax-bureau-b", "/departments/tax-bureau-b"]
        var written: [OutgoingRecord] = []
        for index in 0..<30 {
            let source = sources[index % sources.count]
            written.append(
                OutgoingRecord(
                    topic: "test.header.values", key: "k", value: Data("{}".utf8),
                    headers: [
                        LogHeader(name: "ce_source", text: source), LogHeader(name: "ce_type", text: "tax.payment.received"),
                        LogHeader(name: "ce_subject", text: source), LogHeader(name: "x-custom", text: source),
                        LogHeader(name: "content-type", text: index == 7 ? "" : "application/json; charset=utf-8"),
                    ]))
        }
        _ = try await bus.log.append(written)
        let read = try await bus.log.read(TopicPartition("test.header.values", 0), from: 0, maxRecords: 100)
        #expect(read.count == written.count)
        for (record, original) in zip(read, written) {
            #expect(record.headers == original.headers, "offset \(record.offset)")
        }
    }

    /// A type carried by every department's topic goes, without a named topic, to the topic of
    /// the department its body names; a body naming no such department needs a topic.
    @Test func typeCarriedBySeveralTopicsGoesToTheBodysDepartment() async throws {
        var example = try #require(repositoryCatalog.schemas["approval.requested"]?.examples.first)
        let validator = EventValidator(catalog: repositoryCatalog)
        #expect(try validator.validate(event("approval.requested", example.serialized())).topic == "approval.food-safety.requested")
        example.set(.string("nowhere"), at: "/department")
        #expect(throws: ValidationFailure.self) {
            try validator.validate(event("approval.requested", example.serialized()))
        }
    }
}

@Suite("Bus addresses", .awaitedCleanup)
struct BusAddressTests {
    @Test func parsesEmbeddedAndKafka() throws {
        #expect(try BusAddress(parsing: "embedded:var/x.sqlite") == .embedded(path: "var/x.sqlite"))
        #expect(throws: BusAddressError.self, "a path needs its scheme") { try BusAddress(parsing: "/tmp/x.sqlite") }
        #expect(try BusAddress(parsing: "kafka:k1:9092,k2:9092") == .kafka(bootstrapServers: ["k1:9092", "k2:9092"]))
        #expect(throws: BusAddressError.self) { try BusAddress(parsing: "kafka:") }
        #expect(throws: BusAddressError.self) { try BusAddress(parsing: "redis:localhost") }
    }

    @Test func optionThenEnvironmentThenDefault() throws {
        #expect(try BusAddress.resolve("kafka:a:1", environment: ["ONEWINDOW_BUS": "embedded:b"]) == .kafka(bootstrapServers: ["a:1"]))
        #expect(try BusAddress.resolve(nil, environment: ["ONEWINDOW_BUS": "embedded:b"]) == .embedded(path: "b"))
        #expect(try BusAddress.resolve(nil, environment: [:]) == BusAddress.defaultAddress)
    }
}

@Suite("The topic catalog", .awaitedCleanup)
struct CatalogTests {
    @Test func catalogCoversTheMissionsDepartments() {
        let owners = Set(repositoryCatalog.topics.map(\.owner))
        for department in [
            "household-registry", "social-security", "tax", "real-estate", "market-regulation", "food-safety",
            "fire-safety", "environment", "urban-management",
        ] {
            #expect(owners.contains(department), "\(department) owns no topic")
            #expect(repositoryCatalog.topic(named: "approval.\(department).requested") != nil)
            #expect(repositoryCatalog.topic(named: "approval.\(department).decided") != nil)
        }
        #expect(repositoryCatalog.topic(named: repositoryCatalog.deadLetterTopic)?.types == [])
        #expect(repositoryCatalog.topic(named: "application.progress.updated")?.spec.cleanup == .compact)
    }

    /// A dead letter's intended topic, read without copying topics, is the one topic that carries
    /// the type, or none when several or none do.
    @Test func theOnlyTopicCarryingATypeIsTheOneOfTopicsCarryingIt() {
        for type in repositoryCatalog.eventTypes + ["no.such.type"] {
            let carriers = repositoryCatalog.topics(carrying: type)
            #expect(repositoryCatalog.onlyTopic(carrying: type) == (carriers.count == 1 ? carriers[0].name : nil), "\(type)")
        }
    }

    @Test func topicNamesFollowTheConvention() {
        for topic in repositoryCatalog.topics {
            let parts = topic.name.split(separator: ".")
            #expect(parts.count == 3, "\(topic.name) is not <domain>.<entity>.<event>")
            #expect(topic.name == topic.name.lowercased())
        }
    }

    @Test func malformedCatalogsAreRefusedWithTheirLocation() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("catalog-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let catalog = """
            deadLetterTopic: dead.letter.records
            departments: {tax: Tax}
            topics:
              - {name: dead.letter.records, owner: tax, types: []}
              - {name: tax.payment.received, owner: tax, retention: 12x, types: [tax.payment.received]}
            """
        try catalog.write(to: directory.appendingPathComponent("catalog.yaml"), atomically: true, encoding: .utf8)
        do {
            _ = try TopicCatalog.load(from: directory)
            Issue.record("a bad retention was accepted")
        } catch let error as CatalogError {
            #expect(error.location == "topics[1].retention")
        }
    }
}
