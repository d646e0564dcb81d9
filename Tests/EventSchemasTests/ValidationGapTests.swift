import CivilTime
@testable import EventSchemas
import EventModel
import Foundation
import Testing

/// What other readers disagree on is refused with the field and the rule: bytes that are not
/// UTF-8, lone surrogates, repeated member names; and the rules that depend on today or on the
/// topic: a resident ID born in the future, an approval request on another department's topic.
@Suite("Validation gaps: UTF-8, repeated keys, birth dates, department topics")
struct ValidationGapTests {
    func parseError(_ bytes: [UInt8]) -> JSONParseError? {
        do {
            _ = try JSONValue.parse(Data(bytes))
            return nil
        } catch let error as JSONParseError {
            return error
        } catch {
            Issue.record("unexpected \(error)")
            return nil
        }
    }

    func parseError(_ text: String) -> JSONParseError? { parseError(Array(text.utf8)) }

    /// Invalid UTF-8 inside a string: refused at that string's pointer with the rule `utf-8`.
    @Test(arguments: [
        ([0xC3, 0x28], "cut short"),             // a lead byte without its continuation
        ([0xC0, 0xAF], "overlong"),              // '/' written in two bytes
        ([0xE0, 0x80, 0xAF], "overlong"),        // '/' written in three bytes
        ([0xED, 0xA0, 0x80], "surrogate"),       // U+D800 encoded (CESU-8)
        ([0xF4, 0x90, 0x80, 0x80], "U+10FFFF"),  // past the last code point
        ([0xFF], "never occurs"),
        ([0x80], "continuation byte"),
        ([0xE6, 0x9D], "cut short"),             // 李 cut after two of its three bytes
    ] as [([UInt8], String)])
    func invalidUTF8IsRefusedAtItsField(_ bad: [UInt8], _ fragment: String) throws {
        let prefix = Array(#"{"applicant":{"names":["ok","陈"#.utf8)
        let bytes = prefix + bad + Array(#""]}}"#.utf8)
        let error = try #require(parseError(bytes), "accepted \(bad)")
        #expect(error.rule == .utf8)
        #expect(error.pointer == "/applicant/names/1")
        #expect(error.problem.contains(fragment), "\(error.problem)")
        #expect(error.line == 1 && error.column == prefix.count + 1, "at the first bad byte")
    }

    @Test func invalidUTF8InAMemberNameIsRefusedAtTheObject() throws {
        let bytes = Array(#"{"a":{"b"#.utf8) + [0xC0, 0x80] + Array(#"":1}}"#.utf8)
        let error = try #require(parseError(bytes))
        #expect(error.rule == .utf8)
        #expect(error.pointer == "/a")
    }

    @Test func loneSurrogateEscapesAreRefused() throws {
        for (text, pointer) in [
            (#"{"name":"\ud800"}"#, "/name"), (#"{"name":"x\udc00y"}"#, "/name"), (#"["\ud800\u0041"]"#, "/0"),
            (#"{"a":["\uDBFF"]}"#, "/a/0"),
        ] {
            let error = try #require(parseError(text), "accepted \(text)")
            #expect(error.rule == .utf8, "\(text)")
            #expect(error.pointer == pointer, "\(text)")
            #expect(error.problem.contains("surrogate"), "\(error.problem)")
        }
        // A pair is one character, and characters beyond the BMP written as UTF-8 are fine.
        #expect(try JSONValue.parse(Data(#"{"e":"\ud83d\ude00","f":"😀","g":"\u00e9李"}"#.utf8)) == .object([
            "e": .string("😀"), "f": .string("😀"), "g": .string("é李"),
        ]))
    }

    @Test func aRepeatedMemberNameIsRefusedAtItsObject() throws {
        let nested = try #require(parseError(#"{"applicant":{"name":"陈美玲","mobile":"13802761234","name":"李四"}}"#))
        #expect(nested.rule == .uniqueKeys)
        #expect(nested.pointer == "/applicant")
        #expect(nested.problem.contains("\"name\""), "\(nested.problem)")
        let top = try #require(parseError(#"{"x":1,"x":1}"#))
        #expect(top.pointer == "" && top.rule == .uniqueKeys)
        let inArray = try #require(parseError(#"[{"k":1},{"k":1,"k":2}]"#))
        #expect(inArray.pointer == "/1")
        #expect(inArray.description.contains("unique-keys"))
        // Equal names in different objects are fine.
        #expect(parseError(#"{"a":{"k":1},"b":{"k":1}}"#) == nil)
    }

    @Test func aRefusedBodyNamesTheFieldAndTheRuleInTheValidationFailure() throws {
        let validator = EventValidator(catalog: catalog)
        let example = try #require(catalog.schemas["household.death.registered"]?.examples.first)
        var text = Array(example.serialized())
        // Spoil the first byte of the name's value with an overlong form.
        let name = try #require(example[pointer: "/name"]?.stringValue)
        let start = try #require(text.firstRange(of: Array(name.utf8))).lowerBound
        text.replaceSubrange(start..<start + 1, with: [0xC1, 0x81])
        do {
            _ = try validator.validate(Event(type: "household.death.registered", source: "/test", subject: nil, data: Data(text)))
            Issue.record("accepted a body that is not UTF-8")
        } catch let failure as ValidationFailure {
            #expect(failure.code == .invalidJSON)
            #expect(failure.reason.hasPrefix("invalid-json: /name: utf-8: "), "\(failure.reason)")
        }
        let twice = Data(#"{"residentId":"440604193512080017","residentId":"110105194912310021","dateOfDeath":"2025-01-06"}"#.utf8)
        do {
            _ = try validator.validate(Event(type: "household.death.registered", source: "/test", subject: nil, data: twice))
            Issue.record("accepted a repeated key")
        } catch let failure as ValidationFailure {
            #expect(failure.reason.hasPrefix("invalid-json: /: unique-keys: "), "\(failure.reason)")
            #expect(failure.reason.contains("residentId"))
        }
    }

    // MARK: Birth dates

    @Test func aResidentIDBornInTheFutureOrBefore1900IsRefused() throws {
        let today = CivilDate(year: 2026, month: 11, day: 29)!
        let bornToday = ResidentIDNumber.make(region: "440604", birthDate: (2026, 11, 29), sequence: 12)
        let bornTomorrow = ResidentIDNumber.make(region: "440604", birthDate: (2026, 11, 30), sequence: 12)
        let bornNextCentury = ResidentIDNumber.make(region: "440604", birthDate: (2109, 1, 1), sequence: 12)
        let born1899 = ResidentIDNumber.make(region: "440604", birthDate: (1899, 12, 31), sequence: 12)
        let born1900 = ResidentIDNumber.make(region: "440604", birthDate: (1900, 1, 1), sequence: 12)
        #expect(ResidentIDNumber.problem(in: bornToday, today: today) == nil)
        #expect(ResidentIDNumber.problem(in: born1900, today: today) == nil)
        #expect(ResidentIDNumber.problem(in: bornTomorrow, today: today)?.contains("in the future") == true)
        #expect(ResidentIDNumber.problem(in: bornNextCentury, today: today)?.contains("20261129") == false)
        #expect(ResidentIDNumber.problem(in: bornNextCentury, today: today)?.contains("21090101 is in the future") == true)
        #expect(ResidentIDNumber.problem(in: born1899, today: today)?.contains("before 1900-01-01") == true)
        // By default, today is the system clock's.
        #expect(ResidentIDNumber.problem(in: bornNextCentury) != nil)
    }

    /// Today is China's date (UTC+8): at 23:59:59 UTC on the 28th it is already the 29th there.
    @Test func todayIsChinaTimeAndComesFromTheValidatorsClock() throws {
        let schema = try JSONSchema(data: Data(#"{"format":"cn-resident-id"}"#.utf8), name: "test")
        let id = JSONValue.string(ResidentIDNumber.make(region: "440604", birthDate: (2026, 11, 29), sequence: 12))
        let chinaMidnight = try #require(ISO8601DateFormatter().date(from: "2026-11-28T16:00:00Z"))
        #expect(schema.validate(id, now: chinaMidnight) == [])
        let violations = schema.validate(id, now: chinaMidnight.addingTimeInterval(-1))
        #expect(violations.map(\.keyword) == ["format"])
        #expect(violations.first?.message.contains("in the future (today is 2026-11-28 in China time)") == true)

        // Through the validator, with its injected clock.
        var body = try #require(catalog.schemas["household.death.registered"]?.examples.first)
        body.set(id, at: "/residentId")
        let event = Event(type: "household.death.registered", source: "/test", subject: nil, data: body.serialized())
        #expect(throws: ValidationFailure.self) {
            try EventValidator(catalog: catalog, clock: TestWallClock(chinaMidnight.addingTimeInterval(-1))).validate(event)
        }
        let validated = try EventValidator(catalog: catalog, clock: TestWallClock(chinaMidnight)).validate(event)
        #expect(validated.event.subject == id.stringValue)
    }

    // MARK: Department topics

    @Test func anApprovalRequestForOneDepartmentIsRefusedOnAnothersTopic() throws {
        let validator = EventValidator(catalog: catalog)
        let example = try #require(catalog.schemas["approval.requested"]?.examples.first)
        #expect(example[pointer: "/department"] == .string("food-safety"))
        let event = Event(type: "approval.requested", source: "/onewindow/orchestrator", subject: nil, data: example.serialized())
        #expect(try validator.validate(event, topic: "approval.food-safety.requested").topic == "approval.food-safety.requested")
        do {
            _ = try validator.validate(event, topic: "approval.tax.requested")
            Issue.record("a food-safety request was accepted onto the tax inbox")
        } catch let failure as ValidationFailure {
            #expect(failure.code == .wrongTopic)
            #expect(failure.violations.map(\.pointer) == ["/department"])
            #expect(failure.reason.hasPrefix("wrong-topic: /department: ownerField: "), "\(failure.reason)")
            #expect(failure.reason.contains("publish it to approval.food-safety.requested"), "\(failure.reason)")
        }
    }

    /// A member nested within the JSON reader's 64 levels is the schema's to refuse; one level
    /// more is refused as JSON, the reason naming the field and the limit.
    @Test func aBodyNestedPastTheLimitIsRefusedAsJSONNamingTheLimit() throws {
        let validator = EventValidator(catalog: catalog)
        let example = try #require(catalog.schemas["approval.decided"]?.examples.first)
        func event(_ levels: Int) -> Event {
            var body = example
            body.set(.string("@@"), at: "/reason")
            let nested = String(repeating: "[", count: levels) + String(repeating: "]", count: levels)
            let text = String(decoding: body.serialized(), as: UTF8.self).replacingOccurrences(of: "\"@@\"", with: nested)
            return Event(type: "approval.decided", source: "/test", subject: nil, data: Data(text.utf8))
        }
        // The body is the first level: 63 more under /reason are 64 in all.
        let within = #expect(throws: ValidationFailure.self) { try validator.validate(event(63)) }
        #expect(within?.code == .schemaViolation)
        #expect(within?.reason.hasPrefix("schema-violation: /reason: type: ") == true, "\(within?.reason ?? "")")
        let beyond = #expect(throws: ValidationFailure.self) { try validator.validate(event(64)) }
        #expect(beyond?.code == .invalidJSON)
        let reason = beyond?.reason ?? ""
        #expect(reason.hasPrefix("invalid-json: /reason" + String(repeating: "/0", count: 63) + ": syntax: "), "\(reason)")
        #expect(reason.contains("nested more than 64 levels deep"), "\(reason)")
    }

    /// A dead letter's `dl_reason` is written as bytes in one go: the same text as ``reason``, which
    /// is the code, then the message or each violation as it describes itself.
    @Test func theReasonAsBytesIsTheReason() {
        let violations = [
            SchemaViolation(pointer: "", keyword: "type", message: "should be object, found array"),
            SchemaViolation(pointer: "/child/residentId", keyword: "format", message: "cn-resident-id: check character should be 'X', found '1'"),
            SchemaViolation(pointer: "/名字", keyword: "maxLength", message: "is 3 characters 李小明, more than 2"),
        ]
        let failures = [
            ValidationFailure(.unknownType, "the catalog has no event type x.y; see `onewindow topics list`"),
            ValidationFailure(.invalidJSON, ""),
            ValidationFailure(.schemaViolation, "ignored", violations: Array(violations.prefix(1))),
            ValidationFailure(.schemaViolation, "ignored", violations: violations),
        ]
        for failure in failures {
            let expected =
                failure.violations.isEmpty
                ? "\(failure.code.rawValue): \(failure.message)"
                : "\(failure.code.rawValue): " + failure.violations.map(\.description).joined(separator: "; ")
            #expect(failure.reason == expected)
            #expect(failure.reasonUTF8 == Data(expected.utf8), "\(String(decoding: failure.reasonUTF8, as: UTF8.self))")
        }
    }

    @Test func withoutATopicTheBodysDepartmentPicksItsOwnTopic() throws {
        let validator = EventValidator(catalog: catalog)
        var request = try #require(catalog.schemas["approval.requested"]?.examples.first)
        for department in ["food-safety", "tax"] {
            request.set(.string(department), at: "/department")
            let event = Event(type: "approval.requested", source: "/onewindow/orchestrator", subject: nil, data: request.serialized())
            #expect(try validator.validate(event).topic == "approval.\(department).requested")
        }
        request.set(.string("no-such-department"), at: "/department")
        let unknown = Event(type: "approval.requested", source: "/onewindow/orchestrator", subject: nil, data: request.serialized())
        let failure = #expect(throws: ValidationFailure.self) { try validator.validate(unknown) }
        #expect(failure?.code == .wrongTopic)
    }

    @Test func everyPerDepartmentTopicOfASharedTypeNamesItsOwnerField() throws {
        for topic in catalog.topics where topic.name.hasPrefix("approval.") {
            #expect(topic.ownerField == "/department", "\(topic.name)")
            #expect(topic.name == "approval.\(topic.owner).\(topic.name.split(separator: ".").last!)")
        }
        // Decisions too: a tax decision cannot land among food-safety's.
        var decision = try #require(catalog.schemas["approval.decided"]?.examples.first)
        decision.set(.string("tax"), at: "/department")
        let event = Event(type: "approval.decided", source: "/departments/tax", subject: nil, data: decision.serialized())
        #expect(throws: ValidationFailure.self) { try EventValidator(catalog: catalog).validate(event, topic: "approval.food-safety.decided") }
        #expect(try EventValidator(catalog: catalog).validate(event, topic: "approval.tax.decided").topic == "approval.tax.decided")
    }
}
