import CivilTime
import EventSchemas
import Foundation
import Orchestrator
import Testing

/// Materials from the shared data view (`sharedFact:`), tested on the pure core: the facts come in
/// the submission, as the shell passes them after its lookup.
@Suite("Zero-document materials: filled from shared facts, the rest asked of the applicant, counted")
struct SharedMaterialsTests {
    static let graduateId = "430102200206100467"
    static let employer = "91440604MA51R7T3X1"

    static func graduate(
        id: String = "GR-2026-000001", employer: String? = SharedMaterialsTests.employer, materials: [String] = []
    ) -> Submission {
        var body: JSONObject = [
            "applicationId": .string(id), "submittedAt": .string(ChinaTime.rfc3339(Fixtures.at("2026-03-02", 15))),
            "applicant": .object(["name": "周雨桐", "residentId": .string(graduateId), "mobile": "15874001234"]),
            "university": "中南大学", "graduationDate": "2025-06-20", "degree": "bachelor",
            "toAddress": "佛山市禅城区季华五路22号人才公寓5栋803",
            "materials": .array(materials.map { .object(["name": .string($0), "source": "submitted"]) }),
        ]
        if let employer { body["employerCreditCode"] = .string(employer) }
        return Submission(applicationType: "application.graduate-registration.submitted", application: .object(body))
    }

    static func fact(_ kind: String, _ subject: String) -> SharedFact {
        SharedFact(kind: kind, subject: subject, eventId: "evt-\(kind)-\(subject.suffix(4))", topic: "topic.of.\(kind)")
    }

    static let allGraduateFacts = [
        fact("household-record", graduateId), fact("social-insurance-enrolment", graduateId),
        fact("business-licence", employer),
    ]

    static func materials(_ request: Emission) -> JSONObject {
        var result: JSONObject = [:]
        for material in request.body[pointer: "/materials"]?.arrayValue ?? [] {
            result[material[pointer: "/name"]?.stringValue ?? ""] = material
        }
        return result
    }

    /// The household registry approves a graduate's registration at 10:00 on `day`.
    static func approve(_ state: Case, on day: String) throws -> Transition {
        try Fixtures.core.apply(
            state,
            .decided(
                Fixtures.decision(
                    state.applicationId, "household-registry", "graduate-household-registration",
                    at: Fixtures.at(day, 10))), now: Fixtures.at(day, 10))
    }

    @Test("The restaurant's material lists count 45 documents serially and 27 handed in at the one window")
    func restaurantCountFromTheRules() throws {
        let restaurant = try #require(Fixtures.rules.current["restaurant-opening"])
        let count = restaurant.documentCount()
        #expect(count == DocumentCount(serial: 45, submitted: 27))
        #expect(count.notBrought == 18)
    }

    @Test("A restaurant where every step applies reports 45 → 27 on completion, the ID card filled from the view")
    func restaurantCompletionCountsDocuments() throws {
        let core = Fixtures.core
        let id = "RA-2026-000045"
        let base = Fixtures.restaurant(id: id, area: 200, sign: true, materials: ["经营场所平面图", "租赁合同"])
        let submission = Submission(
            applicationType: base.applicationType, application: base.application,
            facts: [Self.fact("household-record", "440604199308220247")])
        var transition = try core.apply(nil, .submitted(submission), now: Fixtures.at("2026-03-02", 9, 30))
        #expect(transition.effects.requestedSteps == ["business-licence"])
        let first = Self.materials(try #require(transition.effects.requests.first))
        #expect(first["身份证"]?[pointer: "/source"] == "shared-data")
        #expect(first["身份证"]?[pointer: "/eventId"] == "evt-household-record-0247")
        #expect(first["身份证"]?[pointer: "/topic"] == "topic.of.household-record")
        #expect(first["租赁合同"]?[pointer: "/source"] == "submitted")
        #expect(first["名称预先核准通知书"] == nil, "not handed in: the department sees it missing, as before")
        let received = try #require(transition.effects.notification(.received))
        #expect(received.body[pointer: "/parameters/text"]?.stringValue?.contains("需补交：无") == true)
        Fixtures.expectValid(transition.effects)

        transition = try core.apply(
            transition.state,
            .decided(Fixtures.decision(id, "market-regulation", "business-licence", at: Fixtures.at("2026-03-03", 10))),
            now: Fixtures.at("2026-03-03", 10))
        #expect(transition.effects.requestedSteps.count == 5)
        for request in transition.effects.requests {
            #expect(Self.materials(request)["身份证"]?[pointer: "/source"] == "shared-data", "\(request.id)")
        }
        for (department, item) in [
            ("food-safety", "food-business-licence"), ("fire-safety", "fire-safety-inspection"),
            ("environment", "environmental-filing"), ("urban-management", "outdoor-signboard-permit"),
            ("tax", "tax-registration"),
        ] {
            transition = try core.apply(
                transition.state, .decided(Fixtures.decision(id, department, item, at: Fixtures.at("2026-03-10", 11))),
                now: Fixtures.at("2026-03-10", 11))
        }
        let completion = try #require(transition.effects.completion)
        #expect(completion.documents == DocumentCount(serial: 45, submitted: 27))
        let progress = try #require(
            transition.effects.compactMap { effect -> Emission? in
                if case .updateProgress(let emission) = effect { emission } else { nil }
            }.last)
        #expect(progress.body[pointer: "/status"] == "completed")
        #expect(progress.body[pointer: "/documents/notBrought"] == .integer(18))
        #expect(progress.body[pointer: "/documents/serial"] == .integer(45))
        let completed = try #require(transition.effects.notification(.completed))
        #expect(completed.body[pointer: "/parameters/text"]?.stringValue?.contains("少交材料18份") == true)
        Fixtures.expectValid(transition.effects)
    }

    @Test("A graduate whose facts are all in the view submits none of them: requested at once, all shared-data")
    func graduateWithFactsSubmitsNothing() throws {
        let core = Fixtures.core
        let base = Self.graduate()
        let submission = Submission(
            applicationType: base.applicationType, application: base.application, facts: Self.allGraduateFacts)
        let first = try core.apply(nil, .submitted(submission), now: Fixtures.at("2026-03-02", 15, 5))
        #expect(first.effects.requestedSteps == ["household-entry"])
        let request = try #require(first.effects.requests.first)
        #expect(request.topic == "approval.household-registry.requested")
        let materials = Self.materials(request)
        #expect(Set(materials.keys) == ["居民身份证", "户口簿", "社会保险参保证明", "用人单位营业执照"])
        #expect(materials.values.allSatisfy { $0[pointer: "/source"] == "shared-data" })
        #expect(materials["用人单位营业执照"]?[pointer: "/eventId"] == "evt-business-licence-T3X1")
        let received = try #require(first.effects.notification(.received))
        #expect(received.body[pointer: "/parameters/missingDocuments"] == nil)
        #expect(received.body[pointer: "/parameters/text"]?.stringValue?.contains("需补交：无") == true)
        Fixtures.expectValid(first.effects)

        let done = try Self.approve(first.state, on: "2026-03-04")
        #expect(done.state.status == .completed)
        #expect(done.effects.completion?.documents == DocumentCount(serial: 4, submitted: 0))
        Fixtures.expectValid(done.effects)
    }

    @Test("A graduate whose facts are missing is asked for exactly those, and the step waits until they come")
    func graduateMissingFactsAskedForExactlyThose() throws {
        let core = Fixtures.core
        let base = Self.graduate(id: "GR-2026-000002")
        let submission = Submission(
            applicationType: base.applicationType, application: base.application,
            facts: [Self.fact("household-record", Self.graduateId)])
        let first = try core.apply(nil, .submitted(submission), now: Fixtures.at("2026-03-02", 15, 5))
        #expect(first.effects.requestedSteps.isEmpty)
        #expect(first.state.step("household-entry")?.status == .awaitingDocuments)
        let workflow = try #require(Fixtures.rules.current["graduate-registration"])
        #expect(
            workflow.missingDocuments(application: first.state.application, facts: first.state.facts ?? []).map(\.name)
                == ["社会保险参保证明", "用人单位营业执照"])
        let received = try #require(first.effects.notification(.received))
        #expect(received.body[pointer: "/parameters/missingDocuments"] == "社会保险参保证明、用人单位营业执照")
        #expect(received.body[pointer: "/parameters/text"]?.stringValue?.contains("需补交：社会保险参保证明、用人单位营业执照。") == true)
        Fixtures.expectValid(first.effects)

        // The applicant brings one of the two: the step still waits.
        let partly = try core.apply(
            first.state,
            .resubmitted(
                Resubmission(
                    applicationId: "GR-2026-000002", step: "household-entry", at: Fixtures.at("2026-03-03", 9),
                    application: Self.graduate(id: "GR-2026-000002", materials: ["社会保险参保证明"]).application)),
            now: Fixtures.at("2026-03-03", 9))
        #expect(partly.effects.requestedSteps.isEmpty)
        #expect(partly.state.step("household-entry")?.status == .awaitingDocuments)

        // Then both: the step is requested, with the view's facts and the documents brought.
        let both = try core.apply(
            partly.state,
            .resubmitted(
                Resubmission(
                    applicationId: "GR-2026-000002", step: "household-entry", at: Fixtures.at("2026-03-04", 9),
                    application: Self.graduate(id: "GR-2026-000002", materials: ["社会保险参保证明", "用人单位营业执照"])
                        .application)),
            now: Fixtures.at("2026-03-04", 9))
        #expect(both.effects.requestedSteps == ["household-entry"])
        let materials = Self.materials(try #require(both.effects.requests.first))
        #expect(materials["居民身份证"]?[pointer: "/source"] == "shared-data")
        #expect(materials["社会保险参保证明"]?[pointer: "/source"] == "submitted")
        Fixtures.expectValid(both.effects)

        let done = try Self.approve(both.state, on: "2026-03-05")
        #expect(done.effects.completion?.documents == DocumentCount(serial: 4, submitted: 2))
    }

    @Test("A graduate without an employer is not asked for an employer's licence")
    func noEmployerNoLicence() throws {
        let base = Self.graduate(id: "GR-2026-000003", employer: nil)
        let submission = Submission(
            applicationType: base.applicationType, application: base.application,
            facts: [
                Self.fact("household-record", Self.graduateId),
                Self.fact("social-insurance-enrolment", Self.graduateId),
            ])
        let workflow = try #require(Fixtures.rules.current["graduate-registration"])
        #expect(
            workflow.sharedFactsNeeded(by: base.application).map(\.kind) == [
                "household-record", "social-insurance-enrolment",
            ])
        let first = try Fixtures.core.apply(nil, .submitted(submission), now: Fixtures.at("2026-03-02", 15, 5))
        #expect(first.effects.requestedSteps == ["household-entry"])
        #expect(Self.materials(try #require(first.effects.requests.first)).count == 3)
    }

    @Test("rules diff shows a handed-in material that becomes a fact of the shared data view")
    func theDiffShowsASharedMaterial() throws {
        let rules = try RuleFileTests.copyOfRules()
        defer { try? FileManager.default.removeItem(at: rules) }
        let file = rules.appendingPathComponent("workflows/house-transfer.yaml")
        let old = try RuleBook.loadWorkflow(file: file, rulesDirectory: rules, catalog: Fixtures.catalog)
        let text = try String(contentsOf: file, encoding: .utf8).replacingOccurrences(
            of: "      - {name: 身份证, source: submitted}\n    onRejection: fail",
            with: "      - {name: 身份证, sharedFact: household-record, subject: buyer.residentId}\n    onRejection: fail")
        try text.write(to: file, atomically: true, encoding: .utf8)
        let new = try RuleBook.loadWorkflow(file: file, rulesDirectory: rules, catalog: Fixtures.catalog)
        #expect(
            RuleDiff.between(old, new) == [
                .materialsChanged(
                    step: "contract-filing", added: ["身份证 (shared household-record of buyer.residentId)"],
                    removed: ["身份证 (submitted)"])
            ])
    }

    @Test("A resubmission for a step awaiting documents with no new application changes nothing but progress")
    func resubmissionWithoutDocumentsKeepsWaiting() throws {
        let base = Self.graduate(id: "GR-2026-000004")
        let first = try Fixtures.core.apply(nil, .submitted(base), now: Fixtures.at("2026-03-02", 15, 5))
        #expect(first.state.step("household-entry")?.status == .awaitingDocuments)
        let again = try Fixtures.core.apply(
            first.state,
            .resubmitted(
                Resubmission(applicationId: "GR-2026-000004", step: "household-entry", at: Fixtures.at("2026-03-03", 9))
            ), now: Fixtures.at("2026-03-03", 9))
        #expect(again.effects.requestedSteps.isEmpty)
        #expect(again.state.step("household-entry")?.status == .awaitingDocuments)
    }
}
