import CivilTime
import EventSchemas
import Foundation
@testable import Orchestrator
import Testing

/// The stored case's application is serialised once per application value
/// (``SerializedApplication``) instead of at every write; checked here against writing it anew.
@Suite("The stored case's application, written once")
struct StoredJSONShortcutTests {
    typealias F = Fixtures

    /// The case's stored JSON as written without a kept application: a fresh, empty one.
    static func plain(_ state: Case) -> [UInt8] {
        var fresh = state
        fresh.applicationJSON = SerializedApplication()
        return fresh.storedJSON()
    }

    @Test func everyWriteIsWhatWritingTheApplicationAnewGives() throws {
        let core = F.core
        var state = try core.apply(nil, .submitted(F.restaurant(sign: false)), now: F.at("2026-03-02", 10)).state
        var states = [state]
        // The business licence, then tax approved and the food licence asked for more information.
        let decided: [(String, String, Decision.Outcome, String)] = [
            ("market-regulation", "business-licence", .approved, "2026-03-03"), ("tax", "tax-registration", .approved, "2026-03-04"),
            ("food-safety", "food-business-licence", .needsMoreInformation, "2026-03-05"),
        ]
        for (department, item, outcome, day) in decided {
            let decision = F.decision("RA-2026-000001", department, item, outcome, at: F.at(day))
            state = try core.apply(state, .decided(decision), now: F.at(day, 12)).state
            states.append(state)
        }
        // A resubmission with a corrected application: the case's next writes carry the new one.
        var corrected = F.restaurant(sign: false, materials: ["身份证", "经营场所平面图", "租赁合同", "食品安全管理制度"])
            .application
        if case .object(var members) = corrected {
            members["note"] = "补充了平面图"
            corrected = .object(members)
        }
        let before = state
        #expect(!before.storedJSON().isEmpty)  // its application kept
        state = try core.apply(
            state,
            .resubmitted(
                Resubmission(
                    applicationId: "RA-2026-000001", step: "food-licence", at: F.at("2026-03-06"), application: corrected,
                    workflow: "restaurant-opening")),
            now: F.at("2026-03-06")
        ).state
        #expect(state.application == corrected)
        states.append(state)
        for state in states {
            let first = state.storedJSON()
            #expect(first == Self.plain(state))
            #expect(state.storedJSON() == first, "written again from the kept application")
            let read = try JSONValue.parse(Data(first))
            #expect(read[pointer: "/application"] == state.application)
            #expect(try Case(storedJSON: first) == state)
        }
        // The case before the resubmission still writes its own application.
        #expect(try JSONValue.parse(Data(before.storedJSON()))[pointer: "/application"] == before.application)
        #expect(before.application != state.application)
    }

    @Test func changingTheApplicationInPlaceForgetsTheKeptOne() throws {
        var state = try F.core.apply(nil, .submitted(F.house()), now: F.at("2026-03-02", 10)).state
        let copy = state
        _ = state.storedJSON()
        state.application = .object(["applicationId": "HT-2026-000001", "changed": true])
        #expect(try JSONValue.parse(Data(state.storedJSON()))[pointer: "/application"] == state.application)
        #expect(state.storedJSON() == Self.plain(state))
        #expect(try JSONValue.parse(Data(copy.storedJSON()))[pointer: "/application"] == copy.application)
        // Not part of the case's value.
        var other = copy
        other.applicationJSON = SerializedApplication()
        #expect(other == copy && other.hashValue == copy.hashValue)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(try encoder.encode(copy) == encoder.encode(other))
        #expect(try JSONDecoder().decode(Case.self, from: encoder.encode(copy)) == copy)
    }
}
