import CivilTime
import EventSchemas
import Foundation
import Orchestrator
import Testing

/// The core's output pinned byte for byte: every effect (bodies, ids, topics, keys, timers,
/// completion records) and the stored JSON of every case of a set of runs, as the core wrote them
/// before its bodies and the store's reader were made cheaper (`Golden/transitions.jsonl`, one
/// transition per line). A change to what the core emits shows here as the first line that
/// differs; when a change is meant, write the file again with `ONEWINDOW_WRITE_GOLDEN=1` and say
/// why in the commit.
@Suite("The core's transitions, pinned")
struct GoldenTransitionTests {
    static let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Golden/transitions.jsonl")

    typealias F = Fixtures

    /// One line: the run, the input's place in it, and what the core answered.
    static func line(_ run: String, _ index: Int, _ answer: Result<Transition, Rejection>) throws -> String {
        var entry: JSONObject = ["run": .string(run), "input": .integer(Int64(index))]
        switch answer {
        case .success(let transition):
            entry["effects"] = .array(try transition.effects.map(Self.effect))
            entry["stored"] = .string(String(decoding: transition.state.storedJSON(), as: UTF8.self))
        case .failure(let rejection):
            entry["rejection"] = .string(rejection.description)
        }
        return String(decoding: JSONValue.object(entry).serialized(), as: UTF8.self)
    }

    static func effect(_ effect: Effect) throws -> JSONValue {
        func emission(_ kind: String, _ emission: Emission, _ extra: JSONObject = [:]) -> JSONValue {
            var members = extra
            members["kind"] = .string(kind)
            members["id"] = .string(emission.id)
            members["type"] = .string(emission.type)
            members["topic"] = .string(emission.topic)
            members["key"] = .string(emission.key)
            members["body"] = emission.body
            return .object(members)
        }
        switch effect {
        case .requestApproval(let step, let body): return emission("request", body, ["step": .string(step)])
        case .updateProgress(let body): return emission("progress", body)
        case .notify(let moment, let body): return emission("notify", body, ["moment": .string(moment.rawValue)])
        case .raiseAlert(let step, let body): return emission("alert", body, ["step": .string(step)])
        case .setTimer(let key, let at):
            return .object([
                "kind": "set-timer", "timer": .string(key.description),
                "at": .string(String(at.timeIntervalSinceReferenceDate)),
            ])
        case .cancelTimer(let key): return .object(["kind": "cancel-timer", "timer": .string(key.description)])
        case .recordCompletion(let record):
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            return .object([
                "kind": "completion", "record": .string(String(decoding: try encoder.encode(record), as: UTF8.self)),
            ])
        }
    }

    /// Applies the inputs in turn (a refused one leaves the case as it was) and returns a line
    /// for each.
    static func run(_ name: String, _ inputs: [(Input, Date)]) throws -> [String] {
        var state: Case?
        var lines: [String] = []
        for (index, (input, now)) in inputs.enumerated() {
            let answer: Result<Transition, Rejection>
            do {
                answer = .success(try F.core.apply(state, input, now: now))
            } catch {
                answer = .failure(error)
            }
            if case .success(let transition) = answer { state = transition.state }
            lines.append(try line(name, index, answer))
        }
        return lines
    }

    /// The decisions approving every step of a workflow, in workflow order, a day apart from `day`.
    static func approvals(_ workflow: String, _ id: String, from day: Int) -> [(Input, Date)] {
        F.rules.current[workflow]!.steps.enumerated().map { index, step in
            let at = F.at("2026-03-\(day + index < 10 ? "0" : "")\(day + index)", 11)
            return (.decided(F.decision(id, step.department, step.item, at: at)), at.addingTimeInterval(90))
        }
    }

    static func allLines() throws -> [String] {
        var lines: [String] = []
        // Every step applies; the decisions in workflow order (the fan-out, then one by one), a
        // department's exact retry, a decision for a step never requested.
        let id = "RA-2026-000001"
        let full = F.restaurant(id: id, area: 200, seats: 60, sign: true)
        var inputs: [(Input, Date)] = [(.submitted(full), F.at("2026-03-02", 9, 30))]
        inputs += approvals("restaurant-opening", id, from: 3)
        inputs.append(inputs[2])
        inputs.append((.decided(F.decision(id, "fire-safety", "nonexistent-item", at: F.at("2026-03-20"))), F.at("2026-03-20")))
        lines += try run("restaurant-every-step", inputs)

        // No sign, the ID card from the view: more information asked, a resubmission, a
        // rejection that fails the case, and the conflicting second decision.
        let small = F.restaurant(id: "RA-2026-000002", sign: false)
        let facts = Submission(
            applicationType: small.applicationType, application: small.application,
            facts: [SharedFact(kind: "household-record", subject: "440604199308220247", eventId: "evt-1", topic: "household.member.changed")])
        lines += try run(
            "restaurant-resubmission-rejection",
            [
                (.submitted(facts), F.at("2026-03-02", 10)),
                (.decided(F.decision("RA-2026-000002", "market-regulation", "business-licence", at: F.at("2026-03-03"))), F.at("2026-03-03", 9, 1)),
                (
                    .decided(
                        F.decision(
                            "RA-2026-000002", "food-safety", "food-business-licence", .needsMoreInformation,
                            at: F.at("2026-03-05"), reason: "未提交经营场所平面图")), F.at("2026-03-05", 12)
                ),
                (.resubmitted(Resubmission(applicationId: "RA-2026-000002", step: "food-licence", at: F.at("2026-03-06"))), F.at("2026-03-06")),
                (.decided(F.decision("RA-2026-000002", "tax", "tax-registration", .rejected, at: F.at("2026-03-09"))), F.at("2026-03-09", 10)),
                (.decided(F.decision("RA-2026-000002", "tax", "tax-registration", at: F.at("2026-03-10"))), F.at("2026-03-10", 10)),
            ])

        // A department that never answers: the reminder, the escalation, a repeat of each.
        let slow = F.restaurant(id: "RA-2026-000003")
        lines += try run(
            "restaurant-timers",
            [
                (.submitted(slow), F.at("2026-03-02", 9)),
                (.timerFired(TimerKey(applicationId: "RA-2026-000003", step: "business-licence", attempt: 1, kind: .reminder)), F.at("2026-03-05", 9)),
                (.timerFired(TimerKey(applicationId: "RA-2026-000003", step: "business-licence", attempt: 1, kind: .reminder)), F.at("2026-03-05", 9, 1)),
                (.timerFired(TimerKey(applicationId: "RA-2026-000003", step: "business-licence", attempt: 1, kind: .overdue)), F.at("2026-03-07", 0)),
                (.timerFired(TimerKey(applicationId: "RA-2026-000003", step: "business-licence", attempt: 1, kind: .overdue)), F.at("2026-03-07", 1)),
            ])

        // The house transfer: each step passes what it decided on.
        let house = F.house()
        var houseInputs: [(Input, Date)] = [(.submitted(house), F.at("2026-03-02", 10))]
        for (index, (department, item, fields)) in [
            ("real-estate", "contract-filing", JSONObject()),
            ("real-estate", "valuation", ["assessedPriceFen": .integer(162_000_000), "ratio": .number(0.375)]),
            ("tax", "tax-assessment-clearance", ["taxFen": .integer(4_860_000)]),
            ("real-estate", "transfer-registration", [:]),
        ].enumerated() {
            let at = F.at("2026-03-0\(3 + index)", 11, 7)
            houseInputs.append(
                (.decided(F.decision("HT-2026-000001", department, item, at: at, licence: "L-\(index)", fields: fields)), at))
        }
        lines += try run("house-transfer", houseInputs)

        // A graduate whose facts are missing, bringing them in two resubmissions.
        let graduate = SharedMaterialsTests.graduate(id: "GR-2026-000002")
        let withFacts = Submission(
            applicationType: graduate.applicationType, application: graduate.application,
            facts: [SharedMaterialsTests.fact("household-record", SharedMaterialsTests.graduateId)])
        lines += try run(
            "graduate-missing-documents",
            [
                (.submitted(withFacts), F.at("2026-03-02", 15, 5)),
                (
                    .resubmitted(
                        Resubmission(
                            applicationId: "GR-2026-000002", step: "household-entry", at: F.at("2026-03-03", 9),
                            application: SharedMaterialsTests.graduate(id: "GR-2026-000002", materials: ["社会保险参保证明"])
                                .application)), F.at("2026-03-03", 9)
                ),
                (
                    .resubmitted(
                        Resubmission(
                            applicationId: "GR-2026-000002", step: "household-entry", at: F.at("2026-03-04", 9),
                            application: SharedMaterialsTests.graduate(
                                id: "GR-2026-000002", materials: ["社会保险参保证明", "用人单位营业执照"]
                            ).application)), F.at("2026-03-04", 9)
                ),
                (
                    .decided(
                        F.decision(
                            "GR-2026-000002", "household-registry", "graduate-household-registration",
                            at: F.at("2026-03-05", 10))), F.at("2026-03-05", 10)
                ),
            ])
        return lines
    }

    @Test("Every effect and stored case of the pinned runs is what the core wrote before")
    func transitionsMatchTheGoldenFile() throws {
        let lines = try Self.allLines()
        if ProcessInfo.processInfo.environment["ONEWINDOW_WRITE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(
                at: Self.file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: Self.file)
            return
        }
        let golden = try String(contentsOf: Self.file, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count == golden.count, "transitions: \(lines.count), pinned: \(golden.count)")
        for (index, (line, pinned)) in zip(lines, golden).enumerated() {
            let (now, then) = (try Self.canonical(line), try Self.canonical(pinned))
            if now != then {
                Issue.record("line \(index + 1) of \(Self.file.path) differs:\nnow:    \(now)\npinned: \(then)")
                break
            }
        }
        // Every pinned stored case reads and writes back as it was.
        for line in golden {
            let entry = try JSONValue.parse(Data(line.utf8))
            guard let stored = entry[pointer: "/stored"]?.stringValue else { continue }
            let state = try Case(storedJSON: Array(stored.utf8))
            #expect(try Self.sorted(state.storedJSON()) == Self.sorted(Array(stored.utf8)))
        }
    }

    /// JSON text with sorted keys: the store writes the application's members in the order of its
    /// dictionary, which differs from process to process.
    static func sorted(_ json: [UInt8]) throws -> String {
        String(decoding: try JSONValue.parse(Data(json)).serialized(), as: UTF8.self)
    }

    /// A line with its stored case's members sorted.
    static func canonical(_ line: String) throws -> String {
        guard case .object(var entry) = try JSONValue.parse(Data(line.utf8)) else { return line }
        if let stored = entry["stored"]?.stringValue { entry["stored"] = .string(try sorted(Array(stored.utf8))) }
        return String(decoding: JSONValue.object(entry).serialized(), as: UTF8.self)
    }

    /// A damaged stored case is refused naming the member, wherever the damage is (the store's
    /// reader takes a fast path and reads again, naming the problem, only when that fails).
    @Test(
        "A damaged stored case names the member",
        arguments: [
            ("/steps/1/status", JSONValue.string("bogus"), "/steps/1/status", "'bogus' is not a Status"),
            ("/steps/0/attempt", .number(1.5), "/steps/0/attempt", "not an integer"),
            ("/steps/0/decisions/0/decision/decidedAt", .string("yesterday"), "/steps/0/decisions/0/decision/decidedAt",
                "not an instant"),
            ("/steps/0/dueDate", .string("2026-02-30"), "/steps/0/dueDate", "not a date"),
            ("/application", .null, "", "member application is missing"),
            ("/facts", .object([:]), "/facts", "not an array"),
            ("/steps/0/decisions/0/decision/fields", .array([]), "/steps/0/decisions/0/decision/fields", "not an object"),
            ("/revision", .string("3"), "/revision", "not an integer"),
        ])
    func aDamagedStoredCaseNamesTheMember(pointer: String, value: JSONValue, path: String, problem: String) throws {
        let core = Fixtures.core
        let submission = Submission(
            applicationType: F.restaurant().applicationType, application: F.restaurant().application,
            facts: [SharedFact(kind: "household-record", subject: "440604199308220247", eventId: "e", topic: "t")])
        let first = try core.apply(nil, .submitted(submission), now: F.at("2026-03-02", 10))
        let decided = try core.apply(
            first.state, .decided(F.decision("RA-2026-000001", "market-regulation", "business-licence", at: F.at("2026-03-03"))),
            now: F.at("2026-03-03", 10))
        var damaged = try JSONValue.parse(Data(decided.state.storedJSON()))
        Self.replace(&damaged, JSONValue.tokens(ofPointer: pointer)[...], with: value)
        let error = #expect(throws: StoredCaseError.self) { try Case(storedJSON: Array(damaged.serialized())) }
        #expect(error?.path == path)
        #expect(error?.problem.contains(problem) == true, "\(error.map { "\($0)" } ?? "")")
        #expect(error?.problem.hasPrefix("case RA-2026-000001: ") == true)
    }

    /// What the store's fast reading leaves to the general one reads as before: a reason with an
    /// escape, members in another order, numbers with an exponent; bytes that are not UTF-8 are
    /// still refused.
    @Test func theStoredCaseReadsWhatTheFastPathLeaves() throws {
        let core = Fixtures.core
        let first = try core.apply(nil, .submitted(F.restaurant()), now: F.at("2026-03-02", 10))
        let asked = try core.apply(
            first.state,
            .decided(
                F.decision(
                    "RA-2026-000001", "market-regulation", "business-licence", .needsMoreInformation,
                    at: F.at("2026-03-03"), reason: "请补充\"平面图\"\n及租赁合同 / 原件")), now: F.at("2026-03-03", 10)
        ).state
        let stored = asked.storedJSON()
        #expect(try Case(storedJSON: stored) == asked)
        // Sorted members, as another writer might order them.
        let sorted = Array(try Self.sorted(stored).utf8)
        #expect(try Case(storedJSON: sorted) == asked)
        // An instant with an exponent.
        let seconds = asked.submittedAt.timeIntervalSinceReferenceDate
        let exponent = String(decoding: stored, as: UTF8.self).replacingOccurrences(
            of: "\"submittedAt\":\(seconds.description)", with: "\"submittedAt\":\(seconds / 10)e1")
        #expect(exponent != String(decoding: stored, as: UTF8.self))
        #expect(try Case(storedJSON: Array(exponent.utf8)) == asked)
        // A byte that is not UTF-8 in a step's id.
        var broken = stored
        let id = Array("\"food-licence\"".utf8)
        let at = try #require(
            (0...(broken.count - id.count)).first { Array(broken[$0..<($0 + id.count)]) == id })
        broken[at + 1] = 0xFF
        let error = #expect(throws: StoredCaseError.self) { try Case(storedJSON: broken) }
        #expect(error?.problem.contains("not JSON") == true)
    }

    /// Sets a value at a path of member names and array indices (`JSONValue.set` takes member
    /// names only).
    static func replace(_ document: inout JSONValue, _ tokens: ArraySlice<String>, with value: JSONValue) {
        guard let first = tokens.first else {
            document = value
            return
        }
        switch document {
        case .object(var members):
            var member = members[first] ?? .null
            replace(&member, tokens.dropFirst(), with: value)
            members[first] = member
            document = .object(members)
        case .array(var elements):
            let index = Int(first)!
            replace(&elements[index], tokens.dropFirst(), with: value)
            document = .array(elements)
        default:
            Issue.record("no member \(first) to damage")
        }
    }
}
