import CitizenServices
import CivilTime
import EventModel
import EventSchemas
import Foundation
import TestSupport
import Testing

/// Supervision of repeat visits on a real bus and store.
@Suite("Repeat visits")
struct RepeatVisitTests {
    static let creditCode = UnifiedSocialCreditCode.make(first17: "91440604MA4W00010")!
    static let applicant = Repo.residentId(born: "1993-08-22", sequence: 24)

    /// A restaurant application by the same company (or, without `company`, by the applicant alone).
    static func restaurant(_ id: String, submitted: Date, company: Bool = true) -> JSONValue {
        var business: JSONObject = [
            "name": "佛山市禅城区粤味轩餐饮店", "address": "佛山市禅城区祖庙路33号首层", "areaSquareMetres": .number(120),
            "seats": .integer(48),
        ]
        if company { business["creditCode"] = .string(creditCode) }
        return .object([
            "applicationId": .string(id), "submittedAt": .string(ChinaTime.rfc3339(submitted)),
            "applicant": .object(["name": "陈美玲", "residentId": .string(applicant), "mobile": "13802761234"]),
            "business": .object(business), "materials": .array([]),
        ])
    }

    @Test("A second application within the window raises one alert with both dates; one outside it raises none")
    func secondSubmission() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        let type = "application.restaurant.submitted"
        let first = Repo.at("2026-03-02", 9, 20)
        let second = Repo.at("2026-03-20", 15, 5)  // 18 days later: within 30
        let third = Repo.at("2026-05-06", 10, 0)  // 47 days after the second: outside
        try await bench.publish(type, id: "submit-1", Self.restaurant("RA-2026-100001", submitted: first))
        try await bench.publish(type, id: "submit-2", Self.restaurant("RA-2026-100002", submitted: second))
        try await bench.publish(type, id: "submit-3", Self.restaurant("RA-2026-100003", submitted: third))
        // The same application again under another event id is not a visit.
        try await bench.publish(type, id: "submit-3-again", Self.restaurant("RA-2026-100003", submitted: third))
        // Another subject (no company) on the same day is nobody's repeat.
        try await bench.publish(type, id: "submit-4", Self.restaurant("RA-2026-100004", submitted: second, company: false))
        let outcome = try await bench.pump(engine)
        #expect(outcome.alerts == 1)
        let replay = try await bench.pump(engine, group: "replay-visits")
        #expect(replay.alerts == 0 && replay.duplicates == 5)

        let alerts = try await bench.events("supervision.alert.raised").map(\.body)
        #expect(alerts.count == 1)
        let alert = try #require(alerts.first)
        #expect(alert[pointer: "/rule"] == "repeat-visit")
        #expect(alert[pointer: "/item"] == "restaurant-opening")
        #expect(alert[pointer: "/creditCode"]?.stringValue == Self.creditCode)
        #expect(alert[pointer: "/residentId"]?.stringValue == Self.applicant)
        #expect(
            alert[pointer: "/occurrences"]
                == .array([.string(ChinaTime.rfc3339(first)), .string(ChinaTime.rfc3339(second))]))
        #expect(alert[pointer: "/applicationIds"] == .array(["RA-2026-100001", "RA-2026-100002"]))
    }

    @Test("Each further occurrence raises its own alert: three visits in the window, two alerts")
    func oncePerOccurrence() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        let type = "application.restaurant.submitted"
        let days = ["2026-03-02", "2026-03-09", "2026-03-16"].map { Repo.at($0, 10) }
        for (index, day) in days.enumerated() {
            try await bench.publish(type, id: "visit-\(index)", Self.restaurant("RA-2026-20000\(index)", submitted: day))
        }
        try await bench.pump(engine)
        let alerts = try await bench.events("supervision.alert.raised").map(\.body)
        #expect(
            alerts.map { $0[pointer: "/occurrences"] } == [
                .array([.string(ChinaTime.rfc3339(days[0])), .string(ChinaTime.rfc3339(days[1]))]),
                .array([.string(ChinaTime.rfc3339(days[1])), .string(ChinaTime.rfc3339(days[2]))]),
            ])
    }

    @Test("A second rejection of the same step within the window raises rejected-twice with both dates")
    func secondRejection() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        try await bench.publish(
            "application.restaurant.submitted", id: "submit-r",
            Self.restaurant("RA-2026-300001", submitted: Repo.at("2026-03-02", 9)))
        func decide(_ id: String, _ outcome: String, _ at: Date) async throws {
            var body: JSONObject = [
                "applicationId": "RA-2026-300001", "department": "food-safety", "item": "food-business-licence",
                "decision": .string(outcome), "decidedAt": .string(ChinaTime.rfc3339(at)), "decidedBy": "FS-0417",
            ]
            if outcome != "approved" { body["reason"] = "经营场所平面图不清晰" }
            try await bench.publish("approval.decided", id: id, .object(body))
        }
        try await decide("decision-1", "rejected", Repo.at("2026-03-05", 11))
        try await decide("decision-2", "needs-more-information", Repo.at("2026-03-12", 16))
        try await decide("decision-3", "approved", Repo.at("2026-03-19", 10))
        try await bench.pump(engine)
        try await bench.pump(engine, group: "replay-decisions")
        let alerts = try await bench.events("supervision.alert.raised").map(\.body)
        #expect(alerts.count == 1)
        #expect(alerts.first?[pointer: "/rule"] == "rejected-twice")
        #expect(alerts.first?[pointer: "/item"] == "food-business-licence")
        #expect(
            alerts.first?[pointer: "/occurrences"]
                == .array([
                    .string(ChinaTime.rfc3339(Repo.at("2026-03-05", 11))),
                    .string(ChinaTime.rfc3339(Repo.at("2026-03-12", 16))),
                ]))
    }
}
