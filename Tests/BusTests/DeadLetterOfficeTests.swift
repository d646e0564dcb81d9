import Bus
import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation
import TestCleanup
import Testing
import TestSupport

/// The dead-letter desk on both backends: filters, show, a redrive after the cause is fixed (the
/// catalog learns a type a department published too early), a redrive that fails again, and a
/// purge with a filter.
@Suite("Dead letters: list, show, redrive, purge", .awaitedCleanup)
struct DeadLetterOfficeTests {
    /// The catalog before urban management's signboards were in it.
    static let olderCatalog: TopicCatalog = {
        var catalog = repositoryCatalog
        catalog.topics.removeAll { $0.name == "urban.signboard.approved" }
        catalog.schemas["urban.signboard.approved"] = nil
        return catalog
    }()

    @Test(.timeLimit(.minutes(3)), arguments: ["embedded", "kafka"])
    func filtersShowRedriveAndPurge(backend: String) async throws {
        // The bus as `topics apply` made it with the older catalog.
        let (directory, log, broker) = try await serviceTestBus(
            prefix: "onewindow-dlq", kafka: backend == "kafka", topics: Self.olderCatalog.topicSpecs)
        atEnd {
            await log.close()
            broker?.stop()
            try? FileManager.default.removeItem(at: directory)
        }
        let start = try #require(Timestamp.parse("2026-11-29T01:00:00Z"))
        let clock = TestWallClock(start)
        func publisher(_ name: String) -> Publisher {
            Publisher(log: log, catalog: Self.olderCatalog, name: name, clock: clock)
        }
        let schemas = repositoryCatalog.schemas
        let signboard = try #require(schemas["urban.signboard.approved"]?.examples.first)
        var badSignboard = signboard
        badSignboard.set(.string("92440604MA4X8K2Q1Z"), at: "/creditCode")  // Z is not in the code's alphabet
        var badBirth = try #require(schemas["household.birth.registered"]?.examples.first)
        badBirth.set(.string("440604202501150135"), at: "/child/residentId")  // wrong check character
        let request = try #require(schemas["approval.requested"]?.examples.first)
        let department = try #require(request[pointer: "/department"]?.stringValue)
        let wrongInbox = department == "tax" ? "approval.food-safety.requested" : "approval.tax.requested"

        // One refusal an hour, each its own append (Tansu's high-water mark is wrong after a batch).
        let refusals: [(String, Publication)] = [
            ("urban-management-connector", Publication(
                event: Event(type: "urban.signboard.approved", source: "/urban", subject: nil, data: signboard.serialized()),
                topic: "urban.signboard.approved")),
            ("urban-management-connector", Publication(
                event: Event(type: "urban.signboard.approved", source: "/urban", subject: nil, data: badSignboard.serialized()),
                topic: "urban.signboard.approved")),
            ("household-registry-connector", Publication(
                event: Event(type: "household.birth.registered", source: "/household", subject: nil, data: badBirth.serialized()))),
            ("onewindow publish", Publication(
                event: Event(type: "approval.requested", source: "/cli", subject: nil, data: request.serialized()),
                topic: wrongInbox)),
        ]
        var ids: [DeadLetterID] = []
        for (name, publication) in refusals {
            let outcome = try await publisher(name).publish([publication], deadLetter: true)[0]
            guard case .deadLettered(let position, _) = outcome else {
                Issue.record("\(publication.event.type) was published: \(outcome.position)")
                return
            }
            ids.append(DeadLetterID(position))
            await clock.advance(by: .seconds(3600))
        }

        let office = DeadLetterOffice(log: log, catalog: Self.olderCatalog, clock: clock)
        #expect(try await office.list().map(\.letter.id) == ids, "every one, oldest first")
        #expect(try await office.list(DeadLetterFilter(codes: ["unknown-type"])).map(\.letter.id) == [ids[0], ids[1]])
        #expect(
            try await office.list(DeadLetterFilter(originalTopics: ["household.birth.registered"])).map(\.letter.id)
                == [ids[2]])
        #expect(try await office.list(DeadLetterFilter(refusedBy: ["onewindow publish"])).map(\.letter.id) == [ids[3]])
        let window = DeadLetterFilter(since: start.addingTimeInterval(3600), until: start.addingTimeInterval(3 * 3600))
        #expect(try await office.list(window).map(\.letter.id) == [ids[1], ids[2]], "since included, until excluded")
        #expect(
            try await office.list(DeadLetterFilter(codes: ["unknown-type"], refusedBy: ["onewindow publish"])).isEmpty,
            "conditions hold together")

        // show: the original bytes and every dl_* header.
        let shown = try await office.show(ids[2]).letter
        #expect(shown.record.value == badBirth.serialized())
        let names = shown.deadLetterHeaders.map(\.name)
        for name in [DeadLetter.code, DeadLetter.reason, DeadLetter.originalTopic, DeadLetter.time, DeadLetter.refusedBy] {
            #expect(names.contains(name), "\(name) in \(names)")
        }
        #expect(shown.code == "schema-violation")
        #expect(shown.reason.contains("/child/residentId"), "\(shown.reason)")
        #expect(shown.refusedBy == "household-registry-connector")
        #expect(shown.time == start.addingTimeInterval(2 * 3600))
        #expect(shown.originalHeaders.contains { $0.name == CloudEventsBinding.id && $0.text == refusals[2].1.event.id })
        let missing = DeadLetterID(topic: repositoryCatalog.deadLetterTopic, partition: 0, offset: 999)
        await #expect(throws: DeadLetterError.self) { try await office.show(missing) }

        // The cause is fixed: the catalog learns signboards and `topics apply` creates their topic.
        try await log.createTopics(repositoryCatalog.topicSpecs)
        let fixed = DeadLetterOffice(log: log, catalog: repositoryCatalog, clock: clock)
        let redrive = DeadLetterRequest(.redrive, .matching(DeadLetterFilter(codes: ["unknown-type"])), by: "ops-zhang")
        let report = try await fixed.handle(redrive)
        #expect((report.published, report.deadLetteredAgain, report.skipped) == (1, 1, 0))
        let boards = try await readAll(log, topic: "urban.signboard.approved")
        #expect(boards.count == 1)
        #expect(boards.first?.value == signboard.serialized())
        #expect(boards.first?.header(CloudEventsBinding.id) == refusals[0].1.event.id, "the original event id")
        #expect(boards.first?.keyString == signboard[pointer: "/creditCode"]?.stringValue)
        // The one that fails again is back with the new reason, its bytes unchanged.
        guard case .deadLetteredAgain(let again, let reason) = report.outcomes.first(where: { $0.id == ids[1] })?.result
        else {
            Issue.record("the bad signboard did not come back: \(report.outcomes)")
            return
        }
        #expect(reason.hasPrefix("schema-violation: /creditCode"), "\(reason)")
        let back = try await fixed.show(again).letter
        #expect(back.code == "schema-violation")
        #expect(back.redriveOf == ids[1])
        #expect(back.refusedBy == "onewindow dlq redrive")
        #expect(back.originalTopic == "urban.signboard.approved")
        #expect(back.record.value == badSignboard.serialized())
        #expect(back.eventId == refusals[1].1.event.id)

        #expect(try await fixed.list().map(\.letter.id) == [ids[2], ids[3], again], "handled ones hidden")
        let everything = try await fixed.list(includeHandled: true)
        #expect(everything.count == 5)
        let first = try #require(everything.first { $0.letter.id == ids[0] }?.marker)
        #expect((first.action, first.result, first.by) == (.redriven, .published, "ops-zhang"))
        #expect(first.topic == "urban.signboard.approved")

        // A second run sends nothing again, whether by filter or by id.
        #expect(try await fixed.handle(redrive).outcomes.isEmpty)
        let byId = try await fixed.handle(DeadLetterRequest(.redrive, .ids([ids[0]]), by: "ops-li"))
        #expect(byId.skipped == 1 && byId.published == 0)
        #expect(try await readAll(log, topic: "urban.signboard.approved").count == 1)

        // Purge: refused without a filter; with one, it marks only what matches.
        await #expect(throws: DeadLetterError.self) {
            try await fixed.handle(DeadLetterRequest(.purge, .all, by: "ops-zhang"))
        }
        await #expect(throws: DeadLetterError.self) {
            try await fixed.handle(DeadLetterRequest(.purge, .matching(DeadLetterFilter()), by: "ops-zhang"))
        }
        let purge = DeadLetterRequest(.purge, .matching(DeadLetterFilter(refusedBy: ["onewindow publish"])), by: "ops-zhang")
        let purged = try await fixed.handle(purge)
        #expect(purged.purged == 1)
        #expect(purged.outcomes.map(\.id) == [ids[3]])
        #expect(try await fixed.list().map(\.letter.id) == [ids[2], again])
        #expect(try await fixed.show(ids[3]).marker?.action == .purged)
        #expect(try await readAll(log, topic: wrongInbox).isEmpty, "a purge sends nothing")
    }
}
