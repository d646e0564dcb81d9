import CivilTime
import EventSchemas
import Foundation
import Orchestrator
import Testing

@Suite("The orchestrator's core: inputs to effects")
struct CoreTests {
    let core = Fixtures.core
    typealias F = Fixtures

    /// Runs decisions in order, each at its own instant (also the processing time).
    func run(_ start: Transition, _ decisions: [Decision]) throws -> (Case, [Effect]) {
        var state = start.state
        var effects = start.effects
        for decision in decisions {
            let next = try core.apply(state, .decided(decision), now: decision.decidedAt)
            state = next.state
            effects += next.effects
        }
        return (state, effects)
    }

    @Test func submissionRequestsOnlyTheBusinessLicenceAndNotifiesReceipt() throws {
        let first = try core.apply(nil, .submitted(F.restaurant()), now: F.at("2026-03-02", 9, 21))
        #expect(first.effects.requestedSteps == ["business-licence"])
        #expect(first.effects.moments == [.received])
        #expect(first.state.step("food-licence")?.status == .waiting)
        #expect(
            first.state.waitingFor("food-licence", in: Fixtures.rules.current["restaurant-opening"]!)
                == ["business-licence"])
        #expect(first.state.status == .inProgress)
        // 3 working days from Monday 2 March 2026: Thursday 5 March.
        #expect(first.state.step("business-licence")?.dueDate == CivilDate("2026-03-05"))
        let text = first.effects.notification(.received)?.body[pointer: "/parameters/text"]?.stringValue ?? ""
        #expect(text.contains("陈美玲") && text.contains("RA-2026-000001") && text.contains("我要开餐馆"), "\(text)")
        let request = first.effects.requests[0]
        #expect(request.topic == "approval.market-regulation.requested")
        #expect(request.id == "RA-2026-000001/request/business-licence/1")
        #expect(request.body[pointer: "/details/name"]?.stringValue == "佛山市禅城区粤味轩餐饮店")
        F.expectValid(first.effects)
        // The last effect is the progress update, with what each step waits for.
        guard case .updateProgress(let progress) = first.effects.last else {
            Issue.record("no progress update last")
            return
        }
        let food = progress.body[pointer: "/steps/1"]
        #expect(food?[pointer: "/status"]?.stringValue == "waiting")
        #expect(food?[pointer: "/waitingFor/0"]?.stringValue == "business-licence")
    }

    @Test func theFanOutIsParallelAfterTheBusinessLicence() throws {
        let first = try core.apply(nil, .submitted(F.restaurant(area: 200, seats: 80)), now: F.at("2026-03-02", 9, 21))
        let approved = F.decision(
            "RA-2026-000001", "market-regulation", "business-licence", at: F.at("2026-03-03"),
            licence: "92440604MA4X8K2Q1R")
        let next = try core.apply(first.state, .decided(approved), now: F.at("2026-03-03"))
        #expect(
            Set(next.effects.requestedSteps)
                == ["food-licence", "fire-inspection", "environmental-filing", "signboard-permit", "tax-registration"])
        // Every request carries the licence as a material from the earlier step, not from the applicant.
        for request in next.effects.requests {
            let materials = request.body[pointer: "/materials"]?.arrayValue ?? []
            let licence = materials.first { $0[pointer: "/name"]?.stringValue == "营业执照" }
            #expect(licence?[pointer: "/source"]?.stringValue == "earlier-step", "\(request.id)")
            #expect(licence?[pointer: "/step"]?.stringValue == "business-licence")
            #expect(licence?[pointer: "/value"]?.stringValue == "92440604MA4X8K2Q1R")
        }
        F.expectValid(next.effects)
    }

    @Test(arguments: [
        (120.0, 48, true, false, true),  // small, with a sign: no fire inspection
        (200.0, 48, false, true, false),  // large floor, no sign
        (100.0, 60, true, true, true),  // many seats
        (150.0, 50, false, false, false),  // exactly at the limits: not above
    ])
    func conditionsSwitchFireAndSignboard(area: Double, seats: Int, sign: Bool, fire: Bool, signboard: Bool) throws {
        let first = try core.apply(
            nil, .submitted(F.restaurant(area: area, seats: seats, sign: sign)), now: F.at("2026-03-02", 10))
        #expect((first.state.step("fire-inspection")?.status == .skipped) == !fire)
        #expect((first.state.step("signboard-permit")?.status == .skipped) == !signboard)
        let approved = F.decision("RA-2026-000001", "market-regulation", "business-licence", at: F.at("2026-03-03"))
        let next = try core.apply(first.state, .decided(approved), now: F.at("2026-03-03"))
        #expect(next.effects.requestedSteps.contains("fire-inspection") == fire)
        #expect(next.effects.requestedSteps.contains("signboard-permit") == signboard)
        // A decision for a skipped step is refused: it was never requested.
        if !fire {
            #expect(throws: Rejection.self) {
                try core.apply(
                    next.state,
                    .decided(
                        F.decision("RA-2026-000001", "fire-safety", "fire-safety-inspection", at: F.at("2026-03-05"))),
                    now: F.at("2026-03-05"))
            }
        }
    }

    /// The restaurant under the departments' processing times: business licence 1 day, then food
    /// 5, fire 7, environment 3, signboard 3, tax 1 — elapsed is the longest path (1 + 7 = 8), the
    /// serial sum 20; the completion notifies the applicant with both numbers.
    @Test func elapsedWorkingDaysAreTheLongestPathNotTheSum() throws {
        let days = [
            "business-licence": 1, "food-licence": 5, "fire-inspection": 7, "environmental-filing": 3,
            "signboard-permit": 3, "tax-registration": 1,
        ]
        let items = [
            "business-licence": ("market-regulation", "business-licence"),
            "food-licence": ("food-safety", "food-business-licence"),
            "fire-inspection": ("fire-safety", "fire-safety-inspection"),
            "environmental-filing": ("environment", "environmental-filing"),
            "signboard-permit": ("urban-management", "outdoor-signboard-permit"),
            "tax-registration": ("tax", "tax-registration"),
        ]
        let submitted = F.at("2026-03-02", 9, 20)
        var state = try core.apply(nil, .submitted(F.restaurant(submitted: submitted, area: 200)), now: submitted).state
        var effects: [Effect] = []
        // Simulate: each requested step is decided `days` working days after the day it was requested, at 09:00.
        var pending = [("business-licence", submitted)]
        while let (step, requestedAt) = pending.first {
            pending.removeFirst()
            let decidedDay = try Fixtures.calendar.addingWorkingDays(days[step]!, to: CivilDate.china(requestedAt))
            let (department, item) = items[step]!
            let decision = F.decision("RA-2026-000001", department, item, at: decidedDay.chinaTime(hour: 9))
            pending.append(contentsOf: [])
            let next = try core.apply(state, .decided(decision), now: decision.decidedAt)
            state = next.state
            effects += next.effects
            pending += next.effects.requestedSteps.map { ($0, decision.decidedAt) }
            pending.sort { $0.1 < $1.1 }
        }
        #expect(state.status == .completed)
        let record = try #require(effects.completion)
        #expect(record.elapsedWorkingDays == 8)
        #expect(record.serialWorkingDays == 20)
        let workflow = Fixtures.rules.current["restaurant-opening"]!
        let path = workflow.longestPath { days[$0.id] }
        #expect(record.elapsedWorkingDays == path.longest)
        #expect(record.serialWorkingDays == path.serial)
        #expect(record.elapsedWorkingDays < record.serialWorkingDays)
        let text = effects.notification(.completed)?.body[pointer: "/parameters/text"]?.stringValue ?? ""
        #expect(text.contains("用时8个工作日") && text.contains("20个工作日"), "\(text)")
        #expect(effects.filter { if case .notify(.completed, _) = $0 { true } else { false } }.count == 1)
        F.expectValid(effects)
    }

    @Test func aRejectionWithFailEndsTheApplication() throws {
        let first = try core.apply(nil, .submitted(F.restaurant()), now: F.at("2026-03-02", 10))
        let rejected = F.decision(
            "RA-2026-000001", "market-regulation", "business-licence", .rejected, at: F.at("2026-03-03"),
            reason: "企业名称含有“中国”字词")
        let next = try core.apply(first.state, .decided(rejected), now: F.at("2026-03-03"))
        #expect(next.state.status == .failed)
        #expect(next.effects.requestedSteps.isEmpty)
        #expect(next.effects.moments == [.stepRejected])
        let text = next.effects.notification(.stepRejected)?.body[pointer: "/parameters/text"]?.stringValue ?? ""
        #expect(text.contains("企业名称含有“中国”字词") && text.contains("营业执照"), "\(text)")
        #expect(
            next.effects.notification(.stepRejected)?.body[pointer: "/template"]?.stringValue == "application-rejected")
        F.expectValid(next.effects)
    }

    @Test func aResubmissionRequestsTheStepAgain() throws {
        var (state, _) = try run(
            try core.apply(nil, .submitted(F.restaurant(sign: false)), now: F.at("2026-03-02", 10)),
            [F.decision("RA-2026-000001", "market-regulation", "business-licence", at: F.at("2026-03-03"))])
        let missing = F.decision(
            "RA-2026-000001", "food-safety", "food-business-licence", .needsMoreInformation, at: F.at("2026-03-05"),
            reason: "未提交经营场所平面图")
        let asked = try core.apply(state, .decided(missing), now: F.at("2026-03-05"))
        #expect(asked.state.step("food-licence")?.status == .awaitingResubmission)
        #expect(asked.effects.moments == [.resubmissionRequested])
        #expect(asked.state.status == .inProgress)
        state = asked.state
        // The department's exact retry of that decision is a no-op.
        #expect(try core.apply(state, .decided(missing), now: F.at("2026-03-05", 10)).effects.isEmpty)
        // A resubmission of a step that is not waiting is refused.
        #expect(throws: Rejection.self) {
            try core.apply(
                state,
                .resubmitted(
                    Resubmission(applicationId: "RA-2026-000001", step: "tax-registration", at: F.at("2026-03-06"))),
                now: F.at("2026-03-06"))
        }
        let again = try core.apply(
            state,
            .resubmitted(Resubmission(applicationId: "RA-2026-000001", step: "food-licence", at: F.at("2026-03-06"))),
            now: F.at("2026-03-06"))
        #expect(again.effects.requestedSteps == ["food-licence"])
        #expect(again.effects.requests[0].id == "RA-2026-000001/request/food-licence/2")
        #expect(again.state.step("food-licence")?.attempt == 2)
        // Attempt 2 may be decided differently from attempt 1.
        let approved = F.decision("RA-2026-000001", "food-safety", "food-business-licence", at: F.at("2026-03-10"))
        let decided = try core.apply(again.state, .decided(approved), now: F.at("2026-03-10"))
        #expect(decided.state.step("food-licence")?.status == .approved)
        F.expectValid(asked.effects + again.effects + decided.effects)
    }

    @Test func theHouseTransferPassesTheValuationToTax() throws {
        let first = try core.apply(nil, .submitted(F.house()), now: F.at("2026-03-02", 10))
        #expect(first.effects.requestedSteps == ["contract-filing"])
        let (state, effects) = try run(
            first,
            [
                F.decision(
                    "HT-2026-000001", "real-estate", "contract-filing", at: F.at("2026-03-03"), licence: "WQ2026-00042"),
                F.decision(
                    "HT-2026-000001", "real-estate", "valuation", at: F.at("2026-03-05"), licence: "PG2026-0007",
                    fields: ["assessedPriceFen": .integer(162_000_000)]),
                F.decision(
                    "HT-2026-000001", "tax", "tax-assessment-clearance", at: F.at("2026-03-06"),
                    licence: "244066260300000001"),
                F.decision(
                    "HT-2026-000001", "real-estate", "transfer-registration", at: F.at("2026-03-09"),
                    licence: "粤(2026)佛禅不动产权第0000001号"),
            ])
        #expect(effects.requestedSteps == ["contract-filing", "valuation", "tax-clearance", "registration"])
        let tax = try #require(effects.requests.first { $0.topic == "approval.tax.requested" })
        #expect(tax.body[pointer: "/details/assessedPriceFen"] == .integer(162_000_000))
        #expect(tax.body[pointer: "/details/declaredPriceFen"] == .integer(150_000_000))
        let filing = tax.body[pointer: "/materials"]?.arrayValue?.first {
            $0[pointer: "/name"]?.stringValue == "存量房买卖合同备案"
        }
        #expect(filing?[pointer: "/value"]?.stringValue == "WQ2026-00042")
        let registration = try #require(effects.requests.last)
        let clearance = registration.body[pointer: "/materials"]?.arrayValue?.first {
            $0[pointer: "/name"]?.stringValue == "完税证明"
        }
        #expect(clearance?[pointer: "/value"]?.stringValue == "244066260300000001")
        #expect(state.status == .completed)
        // Serial workflow: elapsed equals the sum.
        #expect(effects.completion?.elapsedWorkingDays == effects.completion?.serialWorkingDays)
        F.expectValid(effects)
    }

    /// Due dates counted through the core over the 2026 Spring Festival (15–23 February off,
    /// Saturday 14 and Saturday 28 February worked), Mid-Autumn (25–27 September off) and National
    /// Day (1–7 October off, Sunday 20 September and Saturday 10 October worked).
    @Test(arguments: [
        ("2026-02-13", 3, "2026-02-25"),  // Friday: Sat 14 (worked), then the festival, Tue 24, Wed 25
        ("2026-02-12", 1, "2026-02-13"),
        ("2026-02-14", 1, "2026-02-24"),  // requested on the moved Saturday
        ("2026-02-26", 2, "2026-02-28"),  // Thursday: Friday, then the worked Saturday 28
        ("2026-09-18", 2, "2026-09-21"),  // Friday: Sunday 20 is worked, then Monday
        ("2026-09-24", 2, "2026-09-29"),  // Thursday: Mid-Autumn 25–27 off
        ("2026-09-30", 1, "2026-10-08"),  // the day before National Day
        ("2026-10-08", 2, "2026-10-10"),  // Thursday: Friday, Saturday 10 worked
    ])
    func dueDatesAcrossHolidays(requested: String, sla: Int, due: String) throws {
        // House transfer's contract filing has SLA 1, valuation 2; use a workflow-independent check
        // through the core's request of the first step with the calendar, and the calendar alone
        // for other SLAs.
        let now = F.at(requested, 10)
        if sla == 1 {
            let first = try core.apply(nil, .submitted(F.house(submitted: now)), now: now)
            #expect(first.state.step("contract-filing")?.dueDate == CivilDate(due))
            #expect(first.effects.requests[0].body[pointer: "/dueBy"]?.stringValue == due)
        } else if sla == 3 {
            let first = try core.apply(nil, .submitted(F.restaurant(submitted: now)), now: now)
            #expect(first.state.step("business-licence")?.dueDate == CivilDate(due))
        } else {
            let first = try core.apply(nil, .submitted(F.house(submitted: now)), now: now)
            let next = try core.apply(
                first.state, .decided(F.decision("HT-2026-000001", "real-estate", "contract-filing", at: now)), now: now
            )
            #expect(next.state.step("valuation")?.dueDate == CivilDate(due))
        }
    }

    @Test func correlationErrorsAreTypedRejections() throws {
        let decision = F.decision("RA-2026-000009", "food-safety", "food-business-licence", at: F.at("2026-03-05"))
        #expect { try core.apply(nil, .decided(decision), now: F.at("2026-03-05")) } throws: {
            ($0 as? Rejection)?.code == .unknownApplication
        }
        let first = try core.apply(nil, .submitted(F.restaurant()), now: F.at("2026-03-02", 10))
        let food = F.decision("RA-2026-000001", "food-safety", "food-business-licence", at: F.at("2026-03-05"))
        #expect { try core.apply(first.state, .decided(food), now: F.at("2026-03-05")) } throws: {
            ($0 as? Rejection)?.code == .stepNotRequested
        }
        let unknown = F.decision("RA-2026-000001", "tax", "tax-assessment-clearance", at: F.at("2026-03-05"))
        #expect { try core.apply(first.state, .decided(unknown), now: F.at("2026-03-05")) } throws: {
            ($0 as? Rejection)?.code == .unknownStep
        }
        let approved = F.decision("RA-2026-000001", "market-regulation", "business-licence", at: F.at("2026-03-03"))
        let next = try core.apply(first.state, .decided(approved), now: F.at("2026-03-03"))
        // An exact repeat: no effects, the case unchanged.
        let repeated = try core.apply(next.state, .decided(approved), now: F.at("2026-03-04"))
        #expect(repeated.effects.isEmpty)
        #expect(repeated.state == next.state)
        // A different second decision: conflicting.
        let conflicting = F.decision(
            "RA-2026-000001", "market-regulation", "business-licence", .rejected, at: F.at("2026-03-04"))
        #expect { try core.apply(next.state, .decided(conflicting), now: F.at("2026-03-04")) } throws: {
            ($0 as? Rejection)?.code == .conflictingDecision
        }
        // The same submission again is a no-op; different content is refused.
        #expect(try core.apply(next.state, .submitted(F.restaurant()), now: F.at("2026-03-04")).effects.isEmpty)
        #expect { try core.apply(next.state, .submitted(F.restaurant(seats: 10)), now: F.at("2026-03-04")) } throws: {
            ($0 as? Rejection)?.code == .conflictingSubmission
        }
    }

    /// Any order of concurrent decisions gives the same end state (and the same completion),
    /// whenever each is processed: a decision is applied some minutes after it was made, later
    /// the later it comes in the order.
    @Test(arguments: [Decision.Outcome.approved, .needsMoreInformation])
    func concurrentDecisionsCommute(tax: Decision.Outcome) throws {
        let submitted = F.at("2026-03-02", 9, 20)
        let first = try core.apply(nil, .submitted(F.restaurant(submitted: submitted, area: 200)), now: submitted)
        let licence = F.decision("RA-2026-000001", "market-regulation", "business-licence", at: F.at("2026-03-03"))
        let fanned = try core.apply(first.state, .decided(licence), now: F.at("2026-03-03"))
        let decisions = [
            F.decision("RA-2026-000001", "food-safety", "food-business-licence", at: F.at("2026-03-10")),
            F.decision("RA-2026-000001", "fire-safety", "fire-safety-inspection", at: F.at("2026-03-10")),
            F.decision("RA-2026-000001", "environment", "environmental-filing", at: F.at("2026-03-06")),
            F.decision("RA-2026-000001", "urban-management", "outdoor-signboard-permit", at: F.at("2026-03-06")),
            F.decision("RA-2026-000001", "tax", "tax-registration", tax, at: F.at("2026-03-04")),
        ]
        func permutations<T>(_ items: [T]) -> [[T]] {
            guard items.count > 1 else { return [items] }
            return items.indices.flatMap { index in
                var rest = items
                let head = rest.remove(at: index)
                return permutations(rest).map { [head] + $0 }
            }
        }
        var ends: Set<Case> = []
        var effectIds: Set<Set<String>> = []
        for order in permutations(decisions) {
            var state = fanned.state
            var ids: Set<String> = []
            for (position, decision) in order.enumerated() {
                let now = decision.decidedAt.addingTimeInterval(Double(60 * (position + 1)))
                let next = try core.apply(state, .decided(decision), now: now)
                state = next.state
                ids.formUnion(next.effects.filter { if case .updateProgress = $0 { false } else { true } }.map(\.id))
            }
            ends.insert(state)
            effectIds.insert(ids)
        }
        #expect(ends.count == 1)
        #expect(effectIds.count == 1, "the same effects, by id, whatever the order")
        if tax == .approved {
            #expect(ends.first?.status == .completed)
            #expect(ends.first?.completion?.completedAt == F.at("2026-03-10"))
            #expect(ends.first?.completion?.elapsedWorkingDays == 6)
        } else {
            #expect(ends.first?.step("tax-registration")?.status == .awaitingResubmission)
        }
    }

    @Test func aDepartmentThatNeverAnswersIsRemindedThenEscalated() throws {
        let submitted = F.at("2026-03-02", 9, 20)
        let first = try core.apply(nil, .submitted(F.restaurant(submitted: submitted, area: 200)), now: submitted)
        let fanned = try core.apply(
            first.state,
            .decided(F.decision("RA-2026-000001", "market-regulation", "business-licence", at: F.at("2026-03-03"))),
            now: F.at("2026-03-03"))
        // Fire inspection: SLA 7 from Tuesday 3 March → due Thursday 12 March; reminder at ⌈5.6⌉ = 6
        // working days: Wednesday 11 March 09:00; overdue from Friday 13 March 00:00.
        let timers = fanned.effects.compactMap { effect -> (TimerKey, Date)? in
            if case .setTimer(let key, let at) = effect, key.step == "fire-inspection" { (key, at) } else { nil }
        }
        let reminder = try #require(timers.first { $0.0.kind == .reminder })
        let overdue = try #require(timers.first { $0.0.kind == .overdue })
        #expect(reminder.1 == F.at("2026-03-11", 9))
        #expect(overdue.1 == F.at("2026-03-13", 0))
        #expect(fanned.state.step("fire-inspection")?.dueDate == CivilDate("2026-03-12"))

        let reminded = try core.apply(fanned.state, .timerFired(reminder.0), now: reminder.1)
        #expect(reminded.effects.moments == [.reminder])
        let toDepartment = try #require(reminded.effects.notification(.reminder))
        #expect(toDepartment.body[pointer: "/mobile"]?.stringValue == "13800000003")
        #expect(toDepartment.body[pointer: "/parameters/text"]?.stringValue?.contains("2026-03-12") == true)
        // Fired twice (a restart): once only.
        #expect(try core.apply(reminded.state, .timerFired(reminder.0), now: reminder.1).effects.isEmpty)

        #expect(
            !reminded.state.overdueSteps(at: overdue.1.addingTimeInterval(-1)).map(\.id).contains("fire-inspection"))
        #expect(reminded.state.overdueSteps(at: overdue.1).map(\.id).contains("fire-inspection"))
        let escalated = try core.apply(reminded.state, .timerFired(overdue.0), now: overdue.1)
        #expect(Set(escalated.effects.moments) == [.escalation, .overdue])
        let alert = try #require(escalated.effects.first { if case .raiseAlert = $0 { true } else { false } }?.emission)
        #expect(alert.body[pointer: "/rule"]?.stringValue == "sla-breach")
        #expect(alert.id == "RA-2026-000001/alert/sla-breach/fire-inspection/1")
        #expect(escalated.effects.notification(.escalation)?.body[pointer: "/mobile"]?.stringValue == "13800000008")
        #expect(try core.apply(escalated.state, .timerFired(overdue.0), now: overdue.1).effects.isEmpty)
        F.expectValid(reminded.effects + escalated.effects)

        // A decided step's timers change nothing.
        let decided = try core.apply(
            fanned.state,
            .decided(F.decision("RA-2026-000001", "fire-safety", "fire-safety-inspection", at: F.at("2026-03-10"))),
            now: F.at("2026-03-10"))
        #expect(decided.effects.contains(.cancelTimer(reminder.0)))
        #expect(try core.apply(decided.state, .timerFired(reminder.0), now: reminder.1).effects.isEmpty)
    }

    @Test func effectIdsAreDeterministic() throws {
        let a = try core.apply(nil, .submitted(F.restaurant()), now: F.at("2026-03-02", 10))
        let b = try core.apply(nil, .submitted(F.restaurant()), now: F.at("2026-03-02", 10))
        #expect(a == b)
        #expect(Set(a.effects.map(\.id)).count == a.effects.count, "ids are unique within a transition")
    }

    @Test func aCaseRoundTripsThroughJSON() throws {
        let first = try core.apply(nil, .submitted(F.house()), now: F.at("2026-03-02", 10))
        let data = try JSONEncoder().encode(first.state)
        #expect(try JSONDecoder().decode(Case.self, from: data) == first.state)
    }

    /// The store's hand-written JSON (``Case/storedJSON()``) keeps `Codable`'s format: every state
    /// of a house transfer (decision fields, licence numbers, the completion record) and of a
    /// restaurant asked for more information (a reason, a second attempt) reads back equal, reads
    /// what `JSONEncoder` wrote (stores written before), and `JSONDecoder` reads it.
    @Test func theStoredJSONKeepsTheCodableFormat() throws {
        var states: [Case] = []
        var house = try core.apply(nil, .submitted(F.house()), now: F.at("2026-03-02", 10)).state
        states.append(house)
        for decision in [
            F.decision("HT-2026-000001", "real-estate", "contract-filing", at: F.at("2026-03-03"), licence: "WQ2026-00042"),
            F.decision(
                "HT-2026-000001", "real-estate", "valuation", at: F.at("2026-03-05", 11, 7), licence: "PG2026-0007",
                fields: ["assessedPriceFen": .integer(162_000_000), "note": "含\"引号\"\n与换行", "ratio": .number(0.375)]),
            F.decision("HT-2026-000001", "tax", "tax-assessment-clearance", at: F.at("2026-03-06"), licence: nil),
            F.decision("HT-2026-000001", "real-estate", "transfer-registration", at: F.at("2026-03-09")),
        ] {
            house = try core.apply(house, .decided(decision), now: decision.decidedAt.addingTimeInterval(0.25)).state
            states.append(house)
        }
        #expect(house.completion != nil)
        var restaurant = try core.apply(nil, .submitted(F.restaurant(sign: false)), now: F.at("2026-03-02", 10)).state
        for (index, decision) in [
            F.decision("RA-2026-000001", "market-regulation", "business-licence", at: F.at("2026-03-03")),
            F.decision(
                "RA-2026-000001", "food-safety", "food-business-licence", .needsMoreInformation, at: F.at("2026-03-05"),
                reason: "未提交经营场所平面图"),
        ].enumerated() {
            restaurant = try core.apply(restaurant, .decided(decision), now: F.at("2026-03-0\(3 + index)", 12)).state
            states.append(restaurant)
        }
        restaurant = try core.apply(
            restaurant,
            .resubmitted(Resubmission(applicationId: "RA-2026-000001", step: "food-licence", at: F.at("2026-03-06"))),
            now: F.at("2026-03-06")
        ).state
        states.append(restaurant)
        for state in states {
            let stored = state.storedJSON()
            #expect(try Case(storedJSON: stored) == state)
            // Valid UTF-8, so the store binds the bytes as its text column as they are
            // (`RawValue.utf8Text`): the text `String(decoding:)` made of them has the same bytes.
            #expect(Array(String(decoding: stored, as: UTF8.self).utf8) == stored)
            // `Codable` turns a whole-numbered double of the application (an area of 120 m²)
            // into an integer; the hand-written pair keeps it. Either reader reads either writer's
            // JSON as the other does.
            let codable = try JSONEncoder().encode(state)
            let byCodable = try JSONDecoder().decode(Case.self, from: codable)
            #expect(try JSONDecoder().decode(Case.self, from: Data(stored)) == byCodable)
            #expect(try Case(storedJSON: Array(codable)) == byCodable)
        }
        // A damaged row names the member.
        var damaged = try JSONValue.parse(Data(house.storedJSON()))
        damaged.set(.integer(7), at: "/completion/ruleVersion/hash")
        let error = #expect(throws: StoredCaseError.self) { try Case(storedJSON: Array(damaged.serialized())) }
        #expect(error?.path == "/completion/ruleVersion/hash")
        #expect("\(error.map { "\($0)" } ?? "")".contains("case HT-2026-000001"))
    }

    @Test func aCaseKeepsItsRuleVersion() throws {
        let first = try core.apply(nil, .submitted(F.restaurant()), now: F.at("2026-03-02", 10))
        // A rule book whose current restaurant workflow is another version still has the old one.
        let old = Fixtures.rules.current["restaurant-opening"]!
        #expect(first.state.ruleVersion == old.version)
        let empty = Orchestrator(rules: RuleBook(workflows: []), calendar: Fixtures.calendar)
        #expect {
            try empty.apply(
                first.state,
                .decided(F.decision("RA-2026-000001", "market-regulation", "business-licence", at: F.at("2026-03-03"))),
                now: F.at("2026-03-03"))
        } throws: {
            ($0 as? Rejection)?.code == .unknownWorkflow
        }
    }
}
