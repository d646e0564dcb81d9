@testable import Bus
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import TestCleanup
import Testing
import TestSupport

/// A refused event's dead letter is written with its header values in one buffer
/// (``DeadLetter/record(refusing:deadLetterTopic:originalTopic:failure:refusedBy:time:)``); it must
/// be, byte for byte, the dead letter made the way it was before: the event's CloudEvents record
/// made first, then ``DeadLetter/record(deadLetterTopic:originalTopic:key:value:headers:failure:refusedBy:time:)``
/// of its key, value and headers.
@Suite("Dead letters written in one buffer", .awaitedCleanup)
struct DeadLetterWritingTests {
    let refusedBy = LogHeader(name: DeadLetter.refusedBy, text: "test-connector")
    let time = LogHeader(name: DeadLetter.time, text: "2026-11-30T11:00:00.000Z")

    /// The construction before, kept as the reference.
    func reference(_ event: Event, originalTopic: String?, failure: ValidationFailure) -> OutgoingRecord {
        let original = CloudEventsBinding.record(for: event, topic: "")
        return DeadLetter.record(
            deadLetterTopic: "deadletter.record.refused", originalTopic: originalTopic, key: original.key,
            value: original.value, headers: original.headers, failure: failure, refusedBy: refusedBy, time: time)
    }

    func written(_ event: Event, originalTopic: String?, failure: ValidationFailure) -> OutgoingRecord {
        DeadLetter.record(
            refusing: event, deadLetterTopic: "deadletter.record.refused", originalTopic: originalTopic,
            failure: failure, refusedBy: refusedBy, time: time)
    }

    /// The corpus's refused events as the publisher takes them, each with the failure the
    /// validator gives it, in a few variants of their attributes (a subject, non-ASCII text,
    /// correlation and causation ids, an empty id).
    func refusals() -> [(event: Event, topic: String?, failure: ValidationFailure)] {
        let validator = EventValidator(catalog: repositoryCatalog)
        var refusals: [(Event, String?, ValidationFailure)] = []
        let bad = HostileCorpus.all.filter { $0.entry == "event" && !$0.expect.accepted && $0.goes(to: "publisher") }
        for (index, record) in bad.enumerated() {
            var event = Event(
                id: "corpus-\(record.seq)", type: record.type ?? "", source: "/test", subject: record.header("ce-subject"),
                data: record.bytes)
            switch index % 4 {
            case 1: event.subject = event.subject ?? "主体-\(index)"
            case 2:
                event.correlationId = "correlation-\(index)"
                event.causationId = "causation-\(index)"
                event.source = "/部门/\(index)"
            case 3: event.id = ""
            default: break
            }
            let topic = record.topic.flatMap { $0.isEmpty ? nil : $0 }
            guard case .failure(let failure) = validator.check(event, topic: topic) else { continue }
            refusals.append((event, topic, failure))
        }
        return refusals
    }

    @Test func everyCorpusRefusalIsWrittenAsTheRecordMadeBefore() throws {
        let refusals = refusals()
        #expect(refusals.count > 600, "the corpus's refused events: \(refusals.count)")
        for (index, refusal) in refusals.enumerated() {
            // Every other one without an original topic (`dl_original_topic` empty).
            let topic = index % 2 == 0 ? refusal.topic ?? "tax.payment.received" : nil
            let new = written(refusal.event, originalTopic: topic, failure: refusal.failure)
            let old = reference(refusal.event, originalTopic: topic, failure: refusal.failure)
            #expect(new == old, "event \(refusal.event.id) (\(refusal.failure.code.rawValue))")
            #expect(new.key == refusal.event.subject.map { Data($0.utf8) })
            #expect(new.timestamp == nil && new.partition == nil)
        }
    }

    @Test func failuresOfEveryShapeAreWrittenAsBefore() {
        let event = Event(id: "e-1", type: "tax.payment.received", source: "/test", subject: "k-1", data: Data("{}".utf8))
        let failures = [
            ValidationFailure(.unknownType, "no type é"),
            ValidationFailure(.invalidJSON, ""),
            ValidationFailure(
                .schemaViolation, "two",
                violations: [
                    SchemaViolation(pointer: "", keyword: "type", message: "should be object, found array"),
                    SchemaViolation(pointer: "/a~1b/0", keyword: "format", message: "cn-resident-id: 校验码 wrong"),
                    SchemaViolation(pointer: "/x", keyword: "", message: ""),
                ]),
        ]
        for failure in failures {
            for topic in [nil, "", "tax.payment.received"] as [String?] {
                #expect(written(event, originalTopic: topic, failure: failure) == reference(event, originalTopic: topic, failure: failure))
            }
            #expect(failure.reasonUTF8 == Data(failure.reason.utf8))
            #expect(failure.reasonUTF8Count == failure.reason.utf8.count)
        }
    }

    /// The order and values written, pinned on their own (the reference above makes the event's
    /// headers with ``CloudEventsBinding/forEachHeader(of:time:_:)`` too).
    @Test func aDeadLetterCarriesEveryAttributeThenTheFiveDeadLetterHeaders() throws {
        let time = try #require(Timestamp.parse("2026-11-30T03:04:05.678Z"))
        let event = Event(
            id: "e-7", type: "tax.payment.received", source: "/税务", subject: "主体-7", time: time,
            data: Data("{\"a\":1}".utf8), correlationId: "c-7", causationId: "cause-7")
        let failure = ValidationFailure(
            .schemaViolation, "ignored", violations: [SchemaViolation(pointer: "/a", keyword: "type", message: "should be string")])
        let record = written(event, originalTopic: "tax.payment.received", failure: failure)
        #expect(record.topic == "deadletter.record.refused")
        #expect(record.key == Data("主体-7".utf8))
        #expect(record.value == event.data)
        let expected: [(String, String)] = [
            ("ce_specversion", "1.0"), ("ce_id", "e-7"), ("ce_source", "/税务"), ("ce_type", "tax.payment.received"),
            ("ce_subject", "主体-7"), ("ce_time", "2026-11-30T03:04:05.678Z"), ("content-type", "application/json"),
            ("ce_correlationid", "c-7"), ("ce_causationid", "cause-7"), ("dl_code", "schema-violation"),
            ("dl_reason", "schema-violation: /a: type: should be string"), ("dl_original_topic", "tax.payment.received"),
            ("dl_time", "2026-11-30T11:00:00.000Z"), ("dl_refused_by", "test-connector"),
        ]
        #expect(record.headers.map(\.name) == expected.map(\.0))
        #expect(record.headers.map { String(decoding: $0.value, as: UTF8.self) } == expected.map(\.1))
    }

    @Test func theReasonBytesAreTheReasonForEveryCorpusRefusal() {
        for refusal in refusals() {
            #expect(refusal.failure.reasonUTF8 == Data(refusal.failure.reason.utf8), "event \(refusal.event.id)")
        }
    }

    /// The message of a body the JSON reader refuses names the place as it did when it was interpolated.
    @Test func aRefusedBodysMessageNamesItsLineAndColumnAsBefore() {
        let validator = EventValidator(catalog: repositoryCatalog)
        var checked = 0
        for refusal in refusals() where refusal.failure.code == .invalidJSON && !refusal.failure.violations.isEmpty {
            guard case .failure(let error as JSONParseError) = Result(catching: { try JSONValue.parse(refusal.event.data) })
            else { continue }
            #expect(refusal.failure.violations[0].message == "\(error.problem) (line \(error.line), column \(error.column))")
            #expect(
                validator.check(refusal.event).failure?.violations.first?.message
                    == "\(error.problem) (line \(error.line), column \(error.column))")
            checked += 1
        }
        #expect(checked > 100, "bodies refused by the JSON reader: \(checked)")
    }

    /// Stored and read back from an embedded log, a dead letter written in one buffer is the one
    /// made before: the same key, value and headers (the header values are slices of the buffer).
    @Test func writtenDeadLettersReadBackAsTheRecordsMadeBefore() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        try await bus.log.createTopics([
            TopicSpec(name: "new", partitions: 3), TopicSpec(name: "old", partitions: 3),
        ])
        let refusals = Array(refusals().prefix(200))
        var new: [OutgoingRecord] = []
        var old: [OutgoingRecord] = []
        // Keyless records go to partition 0 in both (round robin would part them); keyed ones
        // go where their key, a slice of the buffer in the new, sends them.
        func addressed(_ record: OutgoingRecord, to topic: String) -> OutgoingRecord {
            var record = record
            record.topic = topic
            if record.key == nil { record.partition = 0 }
            return record
        }
        for refusal in refusals {
            new.append(addressed(written(refusal.event, originalTopic: refusal.topic, failure: refusal.failure), to: "new"))
            old.append(addressed(reference(refusal.event, originalTopic: refusal.topic, failure: refusal.failure), to: "old"))
        }
        #expect(new.contains { $0.key != nil } && new.contains { $0.key == nil })
        let newPositions = try await bus.log.append(new)
        let oldPositions = try await bus.log.append(old)
        #expect(newPositions.map(\.partition) == oldPositions.map(\.partition), "the key chose the same partitions")
        let readNew = try await readAll(bus.log, topic: "new")
        let readOld = try await readAll(bus.log, topic: "old")
        #expect(readNew.count == refusals.count && readOld.count == refusals.count)
        for (a, b) in zip(readNew, readOld) {
            #expect(a.key == b.key && a.value == b.value && a.headers == b.headers && a.position.offset == b.position.offset)
        }
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let failure) = self { failure } else { nil }
    }
}
