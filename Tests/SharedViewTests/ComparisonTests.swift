import Bus
import CivilTime
import EventModel
import EventSchemas
import Foundation
import SharedView
import TestSupport
import Testing

@Suite("Data comparison")
struct ComparisonTests {
    /// Publishes `facts`, ingests them, compares `subject`, and returns the rules that fired.
    func compare(_ bench: ViewBench, _ subject: String, facts: [(String, JSONValue, Date)]) async throws
        -> SharedViewEngine.Comparison
    {
        for (index, (type, body, time)) in facts.enumerated() {
            try await bench.publish(type, body, at: time, id: "\(subject)-\(index)")
        }
        let engine = try bench.engine()
        try await engine.process(try await bench.factRecords())
        return try await engine.compare(subject: subject)
    }

    static let person = Repo.resident(7)
    static let household = "440604012345"
    static let move: (String, JSONValue, Date) = (
        "household.move.registered", DepartmentFacts.move(person, name: "黄桂英", household: household, at: Repo.at("2025-06-01")),
        Repo.at("2025-06-01")
    )

    @Test("a name that differs between departments fires name-differs; the same name does not")
    func nameDiffers() async throws {
        let differs = try await compare(
            try await ViewBench(), Self.person,
            facts: [Self.move, ("socialsecurity.pension.certified", DepartmentFacts.pension(Self.person, name: "黄桂瑛", certified: Repo.at("2025-03-02")), Repo.at("2025-03-02"))])
        #expect(differs.discrepancies.map(\.rule) == ["name-differs"])
        #expect(differs.discrepancies.first?.details.contains("黄桂瑛") == true)
        let same = try await compare(
            try await ViewBench(), Self.person,
            facts: [Self.move, ("socialsecurity.pension.certified", DepartmentFacts.pension(Self.person, name: "黄桂英", certified: Repo.at("2025-03-02")), Repo.at("2025-03-02"))])
        #expect(same.discrepancies.isEmpty)
        #expect(same.facts.count == 2)
    }

    @Test("a household number that differs between the register's records fires household-number-differs")
    func householdDiffers() async throws {
        let death = ("household.death.registered", DepartmentFacts.death(Self.person, name: "黄桂英", household: "440604099999", on: "2026-01-06"), Repo.at("2026-01-06", 15))
        let differs = try await compare(try await ViewBench(), Self.person, facts: [Self.move, death])
        #expect(differs.discrepancies.map(\.rule) == ["household-number-differs"])
        let consistent = ("household.death.registered", DepartmentFacts.death(Self.person, name: "黄桂英", household: Self.household, on: "2026-01-06"), Repo.at("2026-01-06", 15))
        #expect(try await compare(try await ViewBench(), Self.person, facts: [Self.move, consistent]).discrepancies.isEmpty)
    }

    @Test("a contribution paid or a pension certified after the registered death fires paid-after-death")
    func paidAfterDeath() async throws {
        let death = ("household.death.registered", DepartmentFacts.death(Self.person, name: "黄桂英", household: Self.household, on: "2026-01-06"), Repo.at("2026-01-06", 15))
        let after = try await compare(
            try await ViewBench(), Self.person,
            facts: [Self.move, death,
                    ("socialsecurity.contribution.paid", DepartmentFacts.contribution(Self.person, period: "2026-01", paid: Repo.at("2026-02-10")), Repo.at("2026-02-10")),
                    ("socialsecurity.pension.certified", DepartmentFacts.pension(Self.person, name: "黄桂英", certified: Repo.at("2026-03-02")), Repo.at("2026-03-02"))])
        #expect(after.discrepancies.map(\.rule) == ["paid-after-death", "paid-after-death"])
        let before = try await compare(
            try await ViewBench(), Self.person,
            facts: [Self.move, death,
                    ("socialsecurity.contribution.paid", DepartmentFacts.contribution(Self.person, period: "2025-12", paid: Repo.at("2026-01-06", 8)), Repo.at("2026-01-06", 8))])
        #expect(before.discrepancies.isEmpty, "paid on the day of death is not after it")
    }

    @Test("a property registered to someone with no tax clearance for it fires property-without-tax-clearance")
    func propertyWithoutClearance() async throws {
        let property = "440604003001GB00012F00010123"
        let registered = ("realestate.registration.completed", DepartmentFacts.property(Self.person, name: "黄桂英", property: property, at: Repo.at("2026-03-06")), Repo.at("2026-03-06"))
        let otherClearance = ("tax.clearance.issued", DepartmentFacts.clearance(Self.person, property: "440604003001GB00012F00010999", at: Repo.at("2026-03-05")), Repo.at("2026-03-05"))
        let missing = try await compare(try await ViewBench(), Self.person, facts: [Self.move, registered, otherClearance])
        #expect(missing.discrepancies.map(\.rule) == ["property-without-tax-clearance"])
        let cleared = ("tax.clearance.issued", DepartmentFacts.clearance(Self.person, property: property, at: Repo.at("2026-03-05")), Repo.at("2026-03-05"))
        #expect(try await compare(try await ViewBench(), Self.person, facts: [Self.move, registered, cleared]).discrepancies.isEmpty)
    }

    @Test("each disagreement raises one supervision alert, valid against its schema, even when compared twice and with --all")
    func alertOnce() async throws {
        let bench = try await ViewBench()
        let death = ("household.death.registered", DepartmentFacts.death(Self.person, name: "黄桂英", household: "440604099999", on: "2026-01-06"), Repo.at("2026-01-06", 15))
        let first = try await compare(bench, Self.person, facts: [Self.move, death])
        #expect(first.newAlerts.count == 1)
        let engine = try bench.engine()
        let second = try await engine.compare(subject: Self.person)
        #expect(second.discrepancies.count == 1 && second.newAlerts.isEmpty)
        let all = try await engine.compareAll()
        #expect(all.subjects == 1 && all.discrepancies == 1 && all.newAlerts == 0)
        let alerts = try await bench.alerts()
        #expect(alerts.count == 1)
        #expect(alerts.first?.id == first.discrepancies.first?.alertId)
        let body = try JSONValue.parse(alerts.first?.data ?? Data())
        #expect(body[pointer: "/rule"] == "data-comparison")
        #expect(body[pointer: "/item"] == "household-number-differs")
        #expect(body[pointer: "/residentId"] == .string(Self.person))
        #expect(body[pointer: "/facts"] == .array([.string("\(Self.person)-0"), .string("\(Self.person)-1")]))
        #expect(try await readTopic(bench.log, Repo.catalog.deadLetterTopic).isEmpty)
    }
}
