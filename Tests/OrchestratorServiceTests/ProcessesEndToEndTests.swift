import CivilTime
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import Orchestrator
import OrchestratorService
import TestSupport
import Testing

/// The workflows with everything as separate processes (``ProcessWorld``): department simulators
/// deciding on a day-a-second clock, their connectors, the SMS gateway and `onewindow orchestrator
/// run`, on the embedded log and on a Kafka test broker.
@Suite("The workflows end to end with departments, connectors and the orchestrator as processes")
struct ProcessesEndToEndTests {
    static let restaurantDepartments = [
        "market-regulation", "food-safety", "fire-safety", "environment", "urban-management", "tax",
    ]

    /// A restaurant application with its materials but the floor plan (food safety rejects it).
    static func withoutFloorPlan(_ application: JSONValue) -> JSONValue {
        var changed = application
        let materials = application[pointer: "/materials"]?.arrayValue ?? []
        changed.set(.array(materials.filter { $0[pointer: "/name"]?.stringValue != "经营场所平面图" }), at: "/materials")
        return changed
    }

    /// A large restaurant with a sign (every step), a small one without (no fire, no sign), one
    /// without its floor plan (food safety rejects; resubmitted with it through `onewindow
    /// resubmit`, the step alone is requested again) and one whose name is refused (the application
    /// fails). Each completion is notified, and the SMS gateway sends the text the orchestrator
    /// rendered. Two simulated days a real second.
    @Test(.timeLimit(.minutes(4)), arguments: Backend.allCases)
    func restaurantAcrossProcesses(backend: Backend) async throws {
        let world = try ProcessWorld(backend: backend, speed: 2 * 86_400)
        try await world.createTopics()
        try await world.startDepartments(Self.restaurantDepartments + ["sms-gateway"])
        try world.startOrchestrator()

        let now = Date()
        let big = "RA-2026-100001"
        let small = "RA-2026-100002"
        let corrected = "RA-2026-100003"
        let refused = "RA-2026-100004"
        let ids = [big, small, corrected, refused]
        let resubmission = Repo.restaurant(id: corrected, submitted: now, area: 60, seats: 16, sign: false)
        // Market regulation refuses a name with 中国 in it.
        var refusedName = Repo.restaurant(id: refused, submitted: now, area: 80, seats: 20, sign: false)
        refusedName.set("中国粤味轩餐饮有限公司", at: "/business/name")
        try await world.apply(
            "restaurant-opening", Repo.restaurant(id: big, submitted: now, area: 200, seats: 60, sign: true))
        try await world.apply(
            "restaurant-opening", Repo.restaurant(id: small, submitted: now, area: 80, seats: 20, sign: false))
        try await world.apply("restaurant-opening", Self.withoutFloorPlan(resubmission))
        try await world.apply(
            "restaurant-opening",
            refusedName)

        var cases: [String: Case] = [:]
        var resubmitted = false
        let deadline = ContinuousClock.now + .seconds(150)
        while ContinuousClock.now < deadline {
            cases = try world.cases(ids)
            if !resubmitted, cases[corrected]?.step("food-licence")?.status == .awaitingResubmission {
                // The applicant adds the floor plan at the window.
                let file = world.directory.appendingPathComponent("corrected.json")
                try resubmission.serialized().write(to: file)
                let status = try await world.run(
                    "resubmit",
                    ["resubmit", corrected, "--step", "food-licence", "--file", file.path, "--note", "已补充经营场所平面图"]
                        + world.busArguments)
                #expect(status == 0, "resubmit: \(world.output("resubmit"))")
                resubmitted = true
            }
            if cases.count == ids.count, cases.values.allSatisfy({ $0.status != .inProgress }) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let statuses: [Case.Status?] = ids.map { cases[$0]?.status }
        let steps: [String] = ids.map { id in
            "\(id): " + (cases[id]?.steps.map { "\($0.id) \($0.status.rawValue)" } ?? []).joined(separator: ", ")
        }
        #expect(
            statuses == [.completed, .completed, .completed, .failed],
            "\(steps.joined(separator: "\n"))\n\(world.outputs)")

        // Conditions: every step for the big one; no fire inspection or signboard for the small ones.
        let bigCase = try #require(cases[big])
        #expect(bigCase.steps.allSatisfy { $0.status == .approved })
        for id in [small, corrected] {
            #expect(cases[id]?.step("fire-inspection")?.status == .skipped)
            #expect(cases[id]?.step("signboard-permit")?.status == .skipped)
        }
        // The fan-out: every step after the business licence requested at one instant, after it.
        for id in [big, small, corrected] {
            let state = try #require(cases[id])
            let licence = try #require(state.step("business-licence")?.requestedAt)
            let parallel = Set(
                state.steps.filter { $0.id != "business-licence" && $0.status != .skipped }.compactMap(\.requestTimes.first))
            #expect(parallel.count == 1, "\(id)")
            #expect(parallel.allSatisfy { $0 > licence }, "\(id)")
        }
        // The rejection and the resubmission: the food licence alone requested a second time.
        let correctedCase = try #require(cases[corrected])
        #expect(correctedCase.step("food-licence")?.decisions.map(\.decision.outcome) == [.rejected, .approved])
        #expect(
            correctedCase.steps.filter { $0.status != .skipped }.map { "\($0.id) \($0.attempt)" } == [
                "business-licence 1", "food-licence 2", "environmental-filing 1", "tax-registration 1",
            ])
        #expect(cases[refused]?.step("business-licence")?.status == .rejected)
        #expect(cases[refused]?.steps.filter { $0.attempt > 0 }.map(\.id) == ["business-licence"])

        // The SMS gateway sends every text message the orchestrator requested, with its text.
        let log = try world.reader()
        let follower = try await Follower(
            log,
            topics: ["notification.sms.requested", Repo.catalog.deadLetterTopic]
                + Self.restaurantDepartments.map { "approval.\($0).requested" })
        var sms: [Event] = []
        var sent: [String: String] = [:]
        let smsDeadline = ContinuousClock.now + .seconds(30)
        repeat {
            try await follower.poll()
            sms = try follower.events("notification.sms.requested")
            sent = try await world.departmentDatabase("sms-gateway").read { db in
                Dictionary(
                    uniqueKeysWithValues: try Row.fetchAll(
                        db, sql: "SELECT event_id, text FROM sms_outbox WHERE sent_at IS NOT NULL"
                    ).map { ($0["event_id"] as String, $0["text"] as String) })
            }
            if follower.caughtUp, Set(sms.map(\.id)).isSubset(of: sent.keys) { break }
        } while ContinuousClock.now < smsDeadline
        try await world.stop()

        #expect(Set(sms.map(\.id)).count == sms.count, "each text message requested once")
        for message in sms {
            let rendered = message.body[pointer: "/parameters/text"]?.stringValue
            #expect(rendered != nil, "\(message.id) carries the rendered text")
            #expect(sent[message.id] == rendered, "\(message.id): sent \(sent[message.id] ?? "nothing")")
        }
        for id in [big, small, corrected] {
            let completion = sms.first { $0.id == "\(id)/sms/completed" }
            #expect(sent[completion?.id ?? ""]?.contains("陈美玲您好，您申请的我要开餐馆（办件号\(id)）已办结") == true, "\(id)")
        }
        #expect(sent["\(corrected)/sms/resubmission-requested/food-licence/1"]?.contains("需补正") == true, "\(sent)")
        #expect(sms.contains { $0.id.hasPrefix("\(refused)/sms/step-rejected") })

        // Requests exactly once each; the second food licence request carries the floor plan.
        var requests: [Event] = []
        for department in Self.restaurantDepartments {
            requests += try follower.events("approval.\(department).requested")
        }
        let expected = 6 + 4 + 5 + 1
        #expect(requests.count == expected, "\(requests.map(\.id))")
        #expect(Set(requests.map(\.id)).count == requests.count)
        let again = try #require(requests.first { $0.id == "\(corrected)/request/food-licence/2" })
        #expect(
            again.body[pointer: "/materials"]?.arrayValue?.contains { $0[pointer: "/name"]?.stringValue == "经营场所平面图" }
                == true)
        let deadLetters = follower.records[Repo.catalog.deadLetterTopic] ?? []
        #expect(deadLetters.isEmpty, "\(deadLetters.map { $0.header("dl_reason") ?? "" })")
        await follower.close()
        await log.close()
    }

    /// The house transfer with the real estate centre and the tax bureau as processes: each step's
    /// request carries what the earlier steps decided — the contract filing's number, the
    /// valuation's assessed price (to tax, without anyone re-entering it), the tax clearance's
    /// certificate (to the registration).
    @Test(.timeLimit(.minutes(3)))
    func houseTransferAcrossProcesses() async throws {
        let world = try ProcessWorld(backend: .embedded)
        try await world.createTopics()
        try await world.startDepartments(["real-estate", "tax"])
        try world.startOrchestrator()
        let id = "HT-2026-000045"
        var application = try #require(Repo.catalog.schemas["application.house-transfer.submitted"]?.examples.first)
        application.set(.string(id), at: "/applicationId")
        application.set(.string(ChinaTime.rfc3339(Date())), at: "/submittedAt")
        let declared = try #require(application[pointer: "/declaredPriceFen"]?.doubleValue)
        try await world.apply("house-transfer", application)

        var state: Case?
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            state = try world.cases([id])[id]
            if let state, state.status != .inProgress { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        try await world.stop()
        #expect(
            state?.status == .completed,
            "\(state?.steps.map { "\($0.id) \($0.status.rawValue)" } ?? [])\n\(world.outputs)")

        let log = try world.reader()
        let requests =
            try await events(log, "approval.real-estate.requested") + events(log, "approval.tax.requested")
        let decisions = try await events(log, "approval.real-estate.decided") + events(log, "approval.tax.decided")
        await log.close()
        func request(_ item: String) throws -> JSONValue {
            try #require(requests.first { $0.body[pointer: "/item"]?.stringValue == item }?.body, "no \(item) request")
        }
        func decision(_ item: String) throws -> JSONValue {
            try #require(decisions.first { $0.body[pointer: "/item"]?.stringValue == item }?.body, "no \(item) decision")
        }
        func material(_ request: JSONValue, _ name: String) -> String? {
            request[pointer: "/materials"]?.arrayValue?.first { $0[pointer: "/name"]?.stringValue == name }?[
                pointer: "/value"]?.stringValue
        }
        #expect(requests.count == 4)
        #expect(decisions.count == 4)

        let contract = try request("contract-filing")
        #expect(contract[pointer: "/details/contractNumber"]?.stringValue == "FS2025CC001234")
        let filed = try #require(try decision("contract-filing")[pointer: "/licenceNumber"]?.stringValue)

        // The real estate centre's valuation (batch model for a unit it has no reference price of:
        // the declared price × 1.00–1.25 by the unit number, here 1.06) travels in the decision's fields.
        let assessed = try #require(try decision("valuation")[pointer: "/fields/assessedPriceFen"]?.doubleValue)
        #expect(assessed == declared * 1.06)
        let tax = try request("tax-assessment-clearance")
        #expect(tax[pointer: "/details/assessedPriceFen"]?.doubleValue == assessed)
        #expect(tax[pointer: "/details/declaredPriceFen"]?.doubleValue == declared)
        #expect(material(tax, "存量房买卖合同备案") == filed)

        // The tax bureau's deed tax on the higher price, and its certificate to the registration.
        let cleared = try decision("tax-assessment-clearance")
        #expect(cleared[pointer: "/fields/assessedTaxFen"]?.doubleValue == (max(assessed, declared) * 0.03).rounded())
        let certificate = try #require(cleared[pointer: "/licenceNumber"]?.stringValue)
        let registration = try request("transfer-registration")
        #expect(material(registration, "完税证明") == certificate)
        #expect(state?.step("tax-clearance")?.decision?.field("assessedTaxFen") != nil)
    }
}
