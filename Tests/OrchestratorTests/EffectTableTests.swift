import CivilTime
import EventSchemas
import Foundation
import Orchestrator
import Testing

/// The house transfer as a table: each input, and exactly the effects (by id, in order) it gives.
/// The ids are what a relay republishes after a crash, so they are part of the contract.
@Suite("Inputs to effects, as a table")
struct EffectTableTests {
    typealias F = Fixtures
    static let id = "HT-2026-000001"

    static func decided(
        _ department: String, _ item: String, _ day: String, _ outcome: Decision.Outcome = .approved,
        fields: JSONObject = [:]
    ) -> Input {
        .decided(F.decision(id, department, item, outcome, at: F.at(day), fields: fields))
    }

    static let rows: [(input: Input, now: Date, effects: [String])] = [
        (
            .submitted(F.house()), F.at("2026-03-02", 10),
            [
                "\(id)/sms/received",
                "\(id)/request/contract-filing/1", "\(id)/timer/contract-filing/1/reminder",
                "\(id)/timer/contract-filing/1/overdue",
                "\(id)/progress/1",
            ]
        ),
        (
            decided("real-estate", "contract-filing", "2026-03-03"), F.at("2026-03-03"),
            [
                "\(id)/timer/contract-filing/1/reminder", "\(id)/timer/contract-filing/1/overdue",  // cancelled
                "\(id)/request/valuation/1", "\(id)/timer/valuation/1/reminder", "\(id)/timer/valuation/1/overdue",
                "\(id)/progress/2",
            ]
        ),
        // The department's retry of the same decision: nothing.
        (decided("real-estate", "contract-filing", "2026-03-03"), F.at("2026-03-03", 11), []),
        // The valuation's reminder fires before its decision (SLA 2 → ⌈1.6⌉ = 2nd working day, 09:00).
        (
            .timerFired(TimerKey(applicationId: id, step: "valuation", attempt: 1, kind: .reminder)),
            F.at("2026-03-05"),
            [
                "\(id)/sms/reminder/valuation/1"
            ]
        ),
        (
            decided("real-estate", "valuation", "2026-03-05", fields: ["assessedPriceFen": .integer(160_000_000)]),
            F.at("2026-03-05", 10),
            [
                "\(id)/timer/valuation/1/reminder", "\(id)/timer/valuation/1/overdue",
                "\(id)/request/tax-clearance/1", "\(id)/timer/tax-clearance/1/reminder",
                "\(id)/timer/tax-clearance/1/overdue",
                "\(id)/progress/4",
            ]
        ),
        // A timer of a finished attempt: nothing.
        (
            .timerFired(TimerKey(applicationId: id, step: "valuation", attempt: 1, kind: .overdue)),
            F.at("2026-03-06", 0), []
        ),
        (
            decided("tax", "tax-assessment-clearance", "2026-03-06", .rejected), F.at("2026-03-06"),
            [
                "\(id)/timer/tax-clearance/1/reminder", "\(id)/timer/tax-clearance/1/overdue",
                "\(id)/sms/resubmission-requested/tax-clearance/1",
                "\(id)/progress/5",
            ]
        ),
        (
            .resubmitted(Resubmission(applicationId: id, step: "tax-clearance", at: F.at("2026-03-09"))),
            F.at("2026-03-09"),
            [
                "\(id)/request/tax-clearance/2", "\(id)/timer/tax-clearance/2/reminder",
                "\(id)/timer/tax-clearance/2/overdue",
                "\(id)/progress/6",
            ]
        ),
        (
            decided("tax", "tax-assessment-clearance", "2026-03-10"), F.at("2026-03-10"),
            [
                "\(id)/timer/tax-clearance/2/reminder", "\(id)/timer/tax-clearance/2/overdue",
                "\(id)/request/registration/1", "\(id)/timer/registration/1/reminder",
                "\(id)/timer/registration/1/overdue",
                "\(id)/progress/7",
            ]
        ),
        (
            decided("real-estate", "transfer-registration", "2026-03-11"), F.at("2026-03-11"),
            [
                "\(id)/timer/registration/1/reminder", "\(id)/timer/registration/1/overdue",
                "\(id)/completed", "\(id)/sms/completed",
                "\(id)/progress/8",
            ]
        ),
    ]

    @Test func theHouseTransferRowByRow() throws {
        var state: Case?
        var all: [Effect] = []
        for (index, row) in Self.rows.enumerated() {
            let transition = try F.core.apply(state, row.input, now: row.now)
            #expect(transition.effects.map(\.id) == row.effects, "row \(index)")
            state = transition.state
            all += transition.effects
        }
        F.expectValid(all)
        let record = try #require(all.completion)
        // Submitted Mon 2 March, completed Wed 11 March: 7 working days. The steps' own days are
        // 1 + 2 + (1 + 1: both tax attempts) + 1 = 6; the 7th is the applicant's, between the
        // rejection on Friday and the resubmission on Monday.
        #expect(record.elapsedWorkingDays == 7)
        #expect(
            record.stepWorkingDays == ["contract-filing": 1, "valuation": 2, "tax-clearance": 2, "registration": 1])
        #expect(record.serialWorkingDays == 6)
    }

    /// `Decision(body:)` reads the `approval.decided` schema's example.
    @Test func aDecisionReadsTheSchemaExample() throws {
        let example = try #require(F.catalog.schemas["approval.decided"]?.examples.first)
        let decision = try #require(Decision(body: example))
        #expect(decision.department == "food-safety")
        #expect(decision.outcome == .approved)
        #expect(decision.licenceNumber == "JY24406040012345")
        #expect(decision.decidedAt == ChinaTime.parse("2025-02-26T15:00:00+08:00"))
    }
}

@Suite("Events to inputs")
struct EventInputTests {
    @Test func eventsBecomeInputs() throws {
        let rules = Fixtures.rules
        let application = Fixtures.restaurant().application
        #expect(
            Input(eventType: "application.restaurant.submitted", body: application, rules: rules)
                == .submitted(Submission(applicationType: "application.restaurant.submitted", application: application))
        )
        let example = try #require(Fixtures.catalog.schemas["approval.decided"]?.examples.first)
        #expect(Input(eventType: "approval.decided", body: example, rules: rules)?.applicationId == "RA-2025-000123")
        #expect(Input(eventType: "tax.payment.received", body: example, rules: rules) == nil)
        #expect(Input(eventType: "approval.decided", body: .object([:]), rules: rules) == nil)
        let resubmission = try #require(Fixtures.catalog.schemas[Resubmission.eventType]?.examples.first)
        #expect(
            Input(eventType: Resubmission.eventType, body: resubmission, rules: rules)
                == .resubmitted(
                    Resubmission(
                        applicationId: "RA-2025-000123", step: "food-licence",
                        at: ChinaTime.parse("2025-02-20T10:15:00+08:00")!, workflow: "restaurant-opening")))
        #expect(Input(eventType: Resubmission.eventType, body: .object(["step": .string("food-licence")]), rules: rules) == nil)
    }

    @Test func theOrchestratorReadsTheApplicationAndDecisionTopics() {
        let topics = Fixtures.rules.inputTopics(in: Fixtures.catalog)
        #expect(
            topics == [
                "application.death-aftercare.submitted", "application.graduate-registration.submitted",
                "application.house-transfer.submitted", "application.pension-certification.submitted",
                "application.restaurant.submitted", "application.step.resubmitted", "approval.environment.decided",
                "approval.fire-safety.decided", "approval.food-safety.decided", "approval.household-registry.decided",
                "approval.market-regulation.decided", "approval.real-estate.decided",
                "approval.social-security.decided", "approval.tax.decided", "approval.urban-management.decided",
            ])
    }
}
