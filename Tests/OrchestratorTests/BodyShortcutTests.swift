import CivilTime
import EventSchemas
import Foundation
@testable import Orchestrator
import Testing

/// The core's bodies take shortcuts (issue 9): times formatted once per transition, the listed
/// materials found by name in a table, each step's fixed members kept per rule version. Each is
/// checked here against the plain code it replaced; `GoldenTransitionTests` pins the bytes of
/// whole runs besides.
@Suite("Shortcuts in the core's bodies")
struct BodyShortcutTests {
    typealias F = Fixtures

    /// What a request listed for a material before the table: the `source` of the first element of
    /// the application's `materials` whose `name` equals it (`submitted` when it has none).
    static func plainSource(_ name: String, in application: JSONValue) -> JSONValue? {
        guard case .array(let listed)? = application.objectValue?["materials"] else { return nil }
        for element in listed {
            if case .object(let members) = element, case .string(let text)? = members["name"], text == name {
                return members["source"] ?? .string("submitted")
            }
        }
        return nil
    }

    /// Repeated names with other sources, canonically equivalent spellings (composed and
    /// decomposed, a compatibility ideograph and its unified one), full-width forms, elements without a name, with a name that is no string, that are no object, and
    /// without a source; an application without materials and one whose materials are no array.
    @Test func listedMaterialsFindWhatTheSearchFound() {
        let composed = "caf\u{E9}"
        let decomposed = "cafe\u{301}"
        let hangul = "\u{D55C}"
        let jamo = "\u{1112}\u{1161}\u{11AB}"
        // A CJK compatibility ideograph and the unified one it decomposes to; a full-width and an
        // ideographic comma before a combining mark (NFC composes neither, so only `==` knows).
        let compatibility = "\u{F900}"
        let unified = "\u{8C48}"
        let element: (String, String?) -> JSONValue = { name, source in
            var members: JSONObject = ["name": .string(name)]
            if let source { members["source"] = .string(source) }
            return .object(members)
        }
        let lists: [JSONValue] = [
            .array([
                element("身份证", "shared-data"), element("身份证", "submitted"), element("租赁合同", nil),
                element(decomposed, "shared-data"), element(composed, "submitted"), element(jamo, nil),
                element(compatibility, "shared-data"), element(unified, "submitted"), element("身份证\u{301}", nil),
                element("（一）、", "shared-data"), element("ＡＢ", nil),
                .object(["source": "submitted"]), .object(["name": .integer(3), "source": "submitted"]),
                .string("身份证"), element("经营场所平面图", "submitted"),
            ]),
            .array([]),
            .string("not a list"),
        ]
        let names = [
            "身份证", "租赁合同", composed, decomposed, hangul, jamo, "经营场所平面图", "招牌设计效果图", "", "3", compatibility,
            unified, "身份证\u{301}", "（一）、", "（一）", "ＡＢ", "AB",
        ]
        var applications: [JSONValue] = lists.map { .object(["applicationId": "X", "materials": $0]) }
        applications.append(.object(["applicationId": "X"]))
        applications.append(.string("no object"))
        for application in applications {
            let table = ListedMaterials(application)
            for name in names {
                #expect(table.source(of: name) == Self.plainSource(name, in: application), "\(name) in \(application)")
            }
        }
    }

    /// Every scalar the listed-materials table compares as bytes is in NFC on its own and beside
    /// each other kind (Foundation's canonical composition leaves it as it is), and a few others
    /// are not taken for plain.
    @Test func plainNamesAreInNFC() {
        let ranges: [ClosedRange<UInt32>] = [0...0x7F, 0x3001...0x3003, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xFF01...0xFF5E]
        for range in ranges {
            for value in range {
                let text = String(Character(Unicode.Scalar(value)!))
                #expect(ListedMaterials.isPlainNFC(text))
                for neighbour in ["a", "、", "证", "Ａ"] {
                    for pair in [text + neighbour, neighbour + text] {
                        #expect(pair.precomposedStringWithCanonicalMapping.utf8.elementsEqual(pair.utf8), "\(value)")
                    }
                }
            }
        }
        // Every other scalar of one to three UTF-8 bytes, alone and after a plain one, is not plain.
        for value in UInt32(0x80)...0xFFFF where !ranges.contains(where: { $0.contains(value) }) {
            guard let scalar = Unicode.Scalar(value) else { continue }
            #expect(!ListedMaterials.isPlainNFC(String(Character(scalar))), "\(value)")
            #expect(!ListedMaterials.isPlainNFC("证" + String(Character(scalar))), "\(value)")
        }
        for other in ["\u{F900}", "e\u{301}", "\u{1112}", "\u{302A}", "\u{3000}", "\u{FF5F}", "😀", "a😀"] {
            #expect(!ListedMaterials.isPlainNFC(other))
        }
        #expect(ListedMaterials.isPlainNFC(""))
        #expect(ListedMaterials.sameBytes("身份证", "身份证") && !ListedMaterials.sameBytes("身份证", "身份"))
        #expect(ListedMaterials.sameBytes("", "") && !ListedMaterials.sameBytes("a", "b"))
    }

    /// Times repeated, interleaved and new, and the transition's own time, through both slots.
    @Test func timeTextsAreTheFormattedTimes() {
        let now = F.at("2026-03-02", 9, 30)
        let others = [
            F.at("2026-03-02", 9, 30).addingTimeInterval(0.4), F.at("2026-03-03", 11), F.at("2026-03-03", 11),
            F.at("2026-03-04", 8), F.at("2026-03-03", 11), F.at("2026-03-05", 0), F.at("2026-03-04", 8),
            F.at("2026-03-03", 11), now, F.at("2025-12-31", 23, 59),
        ]
        var times = TimeTexts(now: now)
        #expect(times.nowText == .string(ChinaTime.rfc3339(now)))
        for instant in others + others.reversed() {
            #expect(times.text(instant) == .string(ChinaTime.rfc3339(instant)), "\(instant)")
        }
        let days = ["2026-03-02", "2026-03-02", "2026-03-20", "2026-03-02", "2026-10-09", "2026-10-09"].map {
            CivilDate($0)!
        }
        for day in days { #expect(times.text(day) == .string(day.description)) }
    }

    /// A progress update as it was written before the templates and the shared texts: every member
    /// of every step's entry set on a new object, every time formatted where it is written.
    static func plainProgress(_ state: Case, _ workflow: Workflow, now: Date) -> JSONValue {
        let status: String =
            switch state.status {
            case .inProgress: "in-progress"
            case .completed: "completed"
            case .failed: "rejected"
            }
        let steps: [JSONValue] = workflow.steps.map { step in
            let stepState = state.step(step.id)!
            var entry: JSONObject = [
                "step": .string(step.id), "title": .string(step.title), "department": .string(step.department),
                "item": .string(step.item),
            ]
            entry["status"] =
                switch stepState.status {
                case .waiting: "waiting"
                case .skipped: "skipped"
                case .requested: "requested"
                case .approved: "approved"
                case .rejected: "rejected"
                case .awaitingResubmission, .awaitingDocuments: "needs-more-information"
                }
            if let due = stepState.dueDate { entry["dueBy"] = .string(due.description) }
            if let requestedAt = stepState.requestedAt { entry["requestedAt"] = .string(ChinaTime.rfc3339(requestedAt)) }
            if let decision = stepState.decision { entry["decidedAt"] = .string(ChinaTime.rfc3339(decision.decision.decidedAt)) }
            if stepState.status == .waiting {
                entry["waitingFor"] = .array(state.waitingFor(step.id, in: workflow).map(JSONValue.string))
            }
            return .object(entry)
        }
        var body: JSONObject = [
            "applicationId": .string(state.applicationId), "service": .string(workflow.id), "status": .string(status),
            "steps": .array(steps), "updatedAt": .string(ChinaTime.rfc3339(now)),
        ]
        if let documents = state.completion?.documents {
            body["documents"] = .object([
                "serial": .integer(Int64(documents.serial)), "submitted": .integer(Int64(documents.submitted)),
                "notBrought": .integer(Int64(documents.notBrought)),
            ])
        }
        return .object(body)
    }

    /// Every case of a restaurant run (the fan-out, a request for more information, a
    /// resubmission, the completion) and of a house transfer: the progress update the core emitted
    /// is the plain one, byte for byte, and so is one made again with the transition's texts
    /// already holding other times; a request made with its step's template is the one made without.
    @Test func templatedBodiesAreThePlainOnes() throws {
        var runs: [[(Input, Date)]] = []
        let id = "RA-2026-000007"
        var restaurant: [(Input, Date)] = [(.submitted(F.restaurant(id: id, area: 200, seats: 60)), F.at("2026-03-02", 9, 30))]
        restaurant.append((.decided(F.decision(id, "market-regulation", "business-licence", at: F.at("2026-03-03", 10))), F.at("2026-03-03", 10, 1)))
        restaurant.append(
            (.decided(F.decision(id, "food-safety", "food-business-licence", .needsMoreInformation, at: F.at("2026-03-04"))), F.at("2026-03-04", 9, 5)))
        restaurant.append((.resubmitted(Resubmission(applicationId: id, step: "food-licence", at: F.at("2026-03-05"))), F.at("2026-03-05")))
        for (index, (department, item)) in [
            ("food-safety", "food-business-licence"), ("fire-safety", "fire-safety-inspection"),
            ("environment", "environmental-filing"), ("urban-management", "outdoor-signboard-permit"), ("tax", "tax-registration"),
        ].enumerated() {
            let at = F.at("2026-03-1\(index)", 14)
            restaurant.append((.decided(F.decision(id, department, item, at: at)), at.addingTimeInterval(60)))
        }
        runs.append(restaurant)
        var house: [(Input, Date)] = [(.submitted(F.house()), F.at("2026-03-02", 10))]
        for (index, (department, item)) in [
            ("real-estate", "contract-filing"), ("real-estate", "valuation"), ("tax", "tax-assessment-clearance"),
            ("real-estate", "transfer-registration"),
        ].enumerated() {
            let at = F.at("2026-03-0\(3 + index)", 11, 7)
            house.append((.decided(F.decision("HT-2026-000001", department, item, at: at)), at))
        }
        runs.append(house)
        var progressUpdates = 0
        for run in runs {
            var state: Case?
            for (input, now) in run {
                let transition = try F.core.apply(state, input, now: now)
                state = transition.state
                let workflow = F.rules.workflow(version: transition.state.ruleVersion)!
                let templates = EffectBodies.Templates(workflow)
                for effect in transition.effects {
                    guard case .updateProgress(let emission) = effect else { continue }
                    progressUpdates += 1
                    let plain = Self.plainProgress(transition.state, workflow, now: now)
                    #expect(emission.body.serialized() == plain.serialized())
                    var busy = TimeTexts(now: now)
                    for step in transition.state.steps {
                        _ = step.requestedAt.map { busy.text($0.addingTimeInterval(1)) }
                        _ = step.dueDate.map { busy.text(CivilDate(daysSinceEpoch: $0.daysSinceEpoch + 1)) }
                    }
                    let again = EffectBodies.progress(
                        transition.state, workflow, now: now, templates: templates.progress, times: &busy)
                    #expect(again.body == plain)
                }
                for (index, step) in workflow.steps.enumerated() {
                    guard let due = transition.state.step(step.id)?.dueDate else { continue }
                    var first = TimeTexts(now: now)
                    var second = TimeTexts(now: now)
                    let templated = EffectBodies.approvalRequest(
                        step, transition.state, workflow, due: due, template: templates.requests[index], times: &first)
                    let plain = EffectBodies.approvalRequest(step, transition.state, workflow, due: due, times: &second)
                    #expect(templated.serialized() == plain.serialized())
                }
            }
            #expect(state?.status == .completed)
        }
        // One progress update per input (each of these changes its case).
        #expect(progressUpdates == runs.map(\.count).reduce(0, +))
    }
}
