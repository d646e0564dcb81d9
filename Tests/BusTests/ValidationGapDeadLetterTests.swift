import Bus
import CivilTime
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import TestCleanup
import Testing
import TestSupport

/// The validation gaps of issue 8, through the publisher: each refused record reaches the
/// dead-letter topic, with its original bytes and a `dl_reason` naming the field and the rule.
@Suite("Validation gaps reach the dead-letter topic", .awaitedCleanup)
struct ValidationGapDeadLetterTests {
    @Test func eachRefusedRecordIsDeadLetteredWithTheFieldInItsReason() async throws {
        let bus = try TemporaryBus()
        atEnd { await bus.tearDown() }
        try await bus.log.createTopics(repositoryCatalog.topicSpecs)
        // A fixed clock: 2026-11-29 in China.
        let now = try #require(ISO8601DateFormatter().date(from: "2026-11-29T04:00:00Z"))
        let publisher = Publisher(log: bus.log, catalog: repositoryCatalog, name: "gaps", clock: TestWallClock(now))
        let death = try #require(repositoryCatalog.schemas["household.death.registered"]?.examples.first)
        let request = try #require(repositoryCatalog.schemas["approval.requested"]?.examples.first)

        var notUTF8 = Array(death.serialized())
        let name = try #require(death[pointer: "/name"]?.stringValue)
        let at = try #require(notUTF8.firstRange(of: Array(name.utf8))).lowerBound
        notUTF8.insert(contentsOf: [0xED, 0xA0, 0x80], at: at)  // an encoded surrogate
        let loneSurrogate = Data(
            String(decoding: death.serialized(), as: UTF8.self).replacingOccurrences(of: name, with: #"\ud800"#).utf8)
        let twice = Data(
            #"{"residentId":"440604193512080017","dateOfDeath":"2025-01-06","dateOfDeath":"2025-01-07"}"#.utf8)
        var unborn = death
        unborn.set(.string(ResidentIDNumber.make(region: "440604", birthDate: (2026, 11, 30), sequence: 11)), at: "/residentId")
        func event(_ type: String, _ data: Data) -> Event { Event(type: type, source: "/test", subject: nil, data: data) }

        let batch = [
            Publication(event: event("household.death.registered", Data(notUTF8))),
            Publication(event: event("household.death.registered", loneSurrogate)),
            Publication(event: event("household.death.registered", twice)),
            Publication(event: event("household.death.registered", unborn.serialized())),
            Publication(event: event("approval.requested", request.serialized()), topic: "approval.tax.requested"),
            Publication(event: event("approval.requested", request.serialized()), topic: "approval.food-safety.requested"),
        ]
        let outcomes = try await publisher.publish(batch, deadLetter: true)
        let reasons = outcomes.dropLast().map { outcome -> String in
            guard case .deadLettered(let position, let failure) = outcome else { return "published: \(outcome.position)" }
            #expect(position.topic == "deadletter.record.refused")
            return failure.reason
        }
        guard case .published(let position, _) = outcomes.last else {
            Issue.record("the request on its own department's topic was refused: \(outcomes.last!)")
            return
        }
        #expect(position.topic == "approval.food-safety.requested")

        // Dead letters spread over the topic's partitions: find each by its original bytes.
        let all = try await readAll(bus.log, topic: "deadletter.record.refused")
        #expect(all.count == 5)
        let dead = try batch.dropLast().map { publication in
            try #require(all.first { $0.value == publication.event.data }, "the original bytes are kept")
        }
        let expected: [(code: String, prefix: String, fragment: String)] = [
            ("invalid-json", "invalid-json: /name: utf-8: ", "surrogate"),
            ("invalid-json", "invalid-json: /name: utf-8: ", "lone high surrogate"),
            ("invalid-json", "invalid-json: /: unique-keys: ", "\"dateOfDeath\""),
            ("schema-violation", "schema-violation: /residentId: format: ", "in the future"),
            ("wrong-topic", "wrong-topic: /department: ownerField: ", "approval.food-safety.requested"),
        ]
        for (index, (record, want)) in zip(dead, expected).enumerated() {
            let reason = record.header(DeadLetter.reason) ?? ""
            #expect(record.header(DeadLetter.code) == want.code, "\(index)")
            #expect(reason.hasPrefix(want.prefix), "\(index): \(reason)")
            #expect(reason.contains(want.fragment), "\(index): \(reason)")
            #expect(reason == reasons[index])
        }
        #expect(dead[4].header(DeadLetter.originalTopic) == "approval.tax.requested")
        #expect(try await readAll(bus.log, topic: "approval.tax.requested").isEmpty, "nothing in the tax inbox")
    }
}
