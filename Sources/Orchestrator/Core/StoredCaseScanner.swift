import CivilTime
import EventSchemas
import Foundation

/// Reads the store's JSON of a case (the format at the top of `CaseStorage.swift`) straight from
/// its bytes into a ``Case``, without first making a ``JSONValue`` of the whole document: a case's
/// steps and decisions were dictionaries built, hashed and looked up again member by member, and
/// reading the case was the largest part of the core's work per event. Only the application and
/// a decision's `fields`, which are any JSON, are parsed as ``JSONValue``.
///
/// It takes the common case only: members it knows (in any order, each once), strings without
/// escapes, numbers as the writer and `JSONEncoder` write them. For anything else — an escape, an
/// exponent, an unknown member, a `null` where a value is needed, bytes that are not UTF-8 or not
/// JSON — it answers `nil` and ``Case/init(storedJSON:)`` reads the document the general way,
/// which accepts and refuses exactly what it did before and names the problem.
struct StoredCaseScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    /// The case, or `nil` to read the document the general way.
    static func read(_ data: some Collection<UInt8>) -> Case? {
        let result = data.withContiguousStorageIfAvailable { buffer -> Case? in
            var scanner = StoredCaseScanner(bytes: buffer)
            scanner.whitespace()
            guard let found = scanner.caseObject() else { return nil }
            scanner.whitespace()
            return scanner.index == buffer.count ? found : nil
        }
        return result ?? nil
    }

    // MARK: - The case's parts

    mutating func caseObject() -> Case? {
        var applicationId: String?
        var workflow: String?
        var ruleVersion: RuleVersion?
        var application: JSONValue?
        var submittedAt: Date?
        var status: Case.Status?
        var steps: [StepState]?
        var revision: Int?
        var completion: CompletionRecord?
        var facts: [SharedFact]?
        guard
            members({ scanner, key in
                switch key {
                case "applicationId": return Self.once(&applicationId, scanner.string())
                case "workflow": return Self.once(&workflow, scanner.string())
                case "ruleVersion": return Self.once(&ruleVersion, scanner.ruleVersion())
                case "application": return Self.once(&application, scanner.anyValue())
                case "submittedAt": return Self.once(&submittedAt, scanner.date())
                case "status": return Self.once(&status, scanner.string().flatMap(Case.Status.init(rawValue:)))
                case "steps": return Self.once(&steps, scanner.array { $0.step() })
                case "revision": return Self.once(&revision, scanner.integer())
                case "completion": return Self.once(&completion, scanner.completion())
                case "facts":
                    return Self.once(
                        &facts,
                        scanner.array { scanner in
                            var kind: String?
                            var subject: String?
                            var eventId: String?
                            var topic: String?
                            guard
                                scanner.members({ scanner, key in
                                    switch key {
                                    case "kind": return Self.once(&kind, scanner.string())
                                    case "subject": return Self.once(&subject, scanner.string())
                                    case "eventId": return Self.once(&eventId, scanner.string())
                                    case "topic": return Self.once(&topic, scanner.string())
                                    default: return false
                                    }
                                }), let kind, let subject, let eventId, let topic
                            else { return nil }
                            return SharedFact(kind: kind, subject: subject, eventId: eventId, topic: topic)
                        })
                default: return false
                }
            }),
            let applicationId, let workflow, let ruleVersion, let application, application != .null, let submittedAt,
            let status, let steps, let revision
        else { return nil }
        return Case(
            applicationId: applicationId, workflow: workflow, ruleVersion: ruleVersion, application: application,
            submittedAt: submittedAt, status: status, steps: steps, revision: revision, completion: completion,
            facts: facts)
    }

    mutating func step() -> StepState? {
        var id: String?
        var status: StepState.Status?
        var attempt: Int?
        var requestedAt: Date?
        var requestTimes: [Date]?
        var dueDate: CivilDate?
        var reminderAt: Date?
        var overdueAt: Date?
        var reminded: Bool?
        var escalated: Bool?
        var decisions: [DecisionRecord]?
        guard
            members({ scanner, key in
                switch key {
                case "id": return Self.once(&id, scanner.string())
                case "status": return Self.once(&status, scanner.string().flatMap(StepState.Status.init(rawValue:)))
                case "attempt": return Self.once(&attempt, scanner.integer())
                case "requestedAt": return Self.once(&requestedAt, scanner.date())
                case "requestTimes": return Self.once(&requestTimes, scanner.array { $0.date() })
                case "dueDate": return Self.once(&dueDate, scanner.string().flatMap(CivilDate.init))
                case "reminderAt": return Self.once(&reminderAt, scanner.date())
                case "overdueAt": return Self.once(&overdueAt, scanner.date())
                case "reminded": return Self.once(&reminded, scanner.bool())
                case "escalated": return Self.once(&escalated, scanner.bool())
                case "decisions":
                    return Self.once(
                        &decisions,
                        scanner.array { scanner in
                            var attempt: Int?
                            var decision: Decision?
                            guard
                                scanner.members({ scanner, key in
                                    switch key {
                                    case "attempt": return Self.once(&attempt, scanner.integer())
                                    case "decision": return Self.once(&decision, scanner.decision())
                                    default: return false
                                    }
                                }), let attempt, let decision
                            else { return nil }
                            return DecisionRecord(attempt: attempt, decision: decision)
                        })
                default: return false
                }
            }),
            let id, let status, let attempt, let requestTimes, let reminded, let escalated, let decisions
        else { return nil }
        return StepState(
            id: id, status: status, attempt: attempt, requestedAt: requestedAt, requestTimes: requestTimes,
            dueDate: dueDate, reminderAt: reminderAt, overdueAt: overdueAt, reminded: reminded, escalated: escalated,
            decisions: decisions)
    }

    mutating func decision() -> Decision? {
        var applicationId: String?
        var department: String?
        var item: String?
        var outcome: Decision.Outcome?
        var reason: String?
        var decidedAt: Date?
        var decidedBy: String?
        var licenceNumber: String?
        var fields: JSONObject?
        guard
            members({ scanner, key in
                switch key {
                case "applicationId": return Self.once(&applicationId, scanner.string())
                case "department": return Self.once(&department, scanner.string())
                case "item": return Self.once(&item, scanner.string())
                case "outcome": return Self.once(&outcome, scanner.string().flatMap(Decision.Outcome.init(rawValue:)))
                case "reason": return Self.once(&reason, scanner.string())
                case "decidedAt": return Self.once(&decidedAt, scanner.date())
                case "decidedBy": return Self.once(&decidedBy, scanner.string())
                case "licenceNumber": return Self.once(&licenceNumber, scanner.string())
                case "fields": return Self.once(&fields, scanner.anyValue()?.objectValue)
                default: return false
                }
            }),
            let applicationId, let department, let item, let outcome, let decidedAt, let decidedBy
        else { return nil }
        return Decision(
            applicationId: applicationId, department: department, item: item, outcome: outcome, reason: reason,
            decidedAt: decidedAt, decidedBy: decidedBy, licenceNumber: licenceNumber, fields: fields ?? [:])
    }

    mutating func completion() -> CompletionRecord? {
        var applicationId: String?
        var workflow: String?
        var ruleVersion: RuleVersion?
        var submittedAt: Date?
        var completedAt: Date?
        var elapsed: Int?
        var serial: Int?
        var perStep: [String: Int]?
        var documents: DocumentCount?
        guard
            members({ scanner, key in
                switch key {
                case "applicationId": return Self.once(&applicationId, scanner.string())
                case "workflow": return Self.once(&workflow, scanner.string())
                case "ruleVersion": return Self.once(&ruleVersion, scanner.ruleVersion())
                case "submittedAt": return Self.once(&submittedAt, scanner.date())
                case "completedAt": return Self.once(&completedAt, scanner.date())
                case "elapsedWorkingDays": return Self.once(&elapsed, scanner.integer())
                case "serialWorkingDays": return Self.once(&serial, scanner.integer())
                case "stepWorkingDays":
                    var days: [String: Int] = [:]
                    // Step ids are any text: each once, as the parser refuses a name twice.
                    guard
                        scanner.members({ scanner, key in
                            guard let step = key.text, days[step] == nil, let count = scanner.integer() else {
                                return false
                            }
                            days[step] = count
                            return true
                        })
                    else { return false }
                    return Self.once(&perStep, days)
                case "documents":
                    var counted: Int?
                    var submitted: Int?
                    guard
                        scanner.members({ scanner, key in
                            switch key {
                            case "serial": return Self.once(&counted, scanner.integer())
                            case "submitted": return Self.once(&submitted, scanner.integer())
                            default: return false
                            }
                        }), let counted, let submitted
                    else { return false }
                    return Self.once(&documents, DocumentCount(serial: counted, submitted: submitted))
                default: return false
                }
            }),
            let applicationId, let workflow, let ruleVersion, let submittedAt, let completedAt, let elapsed, let serial,
            let perStep
        else { return nil }
        return CompletionRecord(
            applicationId: applicationId, workflow: workflow, ruleVersion: ruleVersion, submittedAt: submittedAt,
            completedAt: completedAt, elapsedWorkingDays: elapsed, serialWorkingDays: serial, stepWorkingDays: perStep,
            documents: documents)
    }

    mutating func ruleVersion() -> RuleVersion? {
        var workflow: String?
        var hash: String?
        guard
            members({ scanner, key in
                switch key {
                case "workflow": return Self.once(&workflow, scanner.string())
                case "hash": return Self.once(&hash, scanner.string())
                default: return false
                }
            }), let workflow, let hash
        else { return nil }
        return RuleVersion(workflow: workflow, hash: hash)
    }

    /// Sets a member read for the first time; `false` (not taken) when it was read before, or
    /// could not be read.
    static func once<T>(_ slot: inout T?, _ value: T?) -> Bool {
        guard slot == nil, let value else { return false }
        slot = value
        return true
    }

    // MARK: - JSON

    mutating func whitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    /// Takes `byte` (after whitespace) when it is next.
    mutating func take(_ byte: UInt8) -> Bool {
        whitespace()
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    /// A member name as its bytes, matched against the names the format has without making a
    /// `String` of it (`case "steps":` in a `switch` compares the bytes).
    struct Key {
        let bytes: UnsafeBufferPointer<UInt8>

        static func ~= (pattern: StaticString, key: Key) -> Bool {
            pattern.utf8CodeUnitCount == key.bytes.count
                && memcmp(pattern.utf8Start, key.bytes.baseAddress!, key.bytes.count) == 0
        }

        /// The name as text (for names that are data: a step's id), `nil` when not UTF-8.
        var text: String? { StoredCaseScanner.text(bytes) }
    }

    /// An object: `member` reads each member's value after its name and says whether it took it.
    mutating func members(_ member: (inout StoredCaseScanner, Key) -> Bool) -> Bool {
        guard take(UInt8(ascii: "{")) else { return false }
        if take(UInt8(ascii: "}")) { return true }
        while true {
            whitespace()
            guard let name = stringBytes(), take(UInt8(ascii: ":")) else { return false }
            whitespace()
            guard member(&self, name) else { return false }
            if take(UInt8(ascii: ",")) { continue }
            return take(UInt8(ascii: "}"))
        }
    }

    mutating func array<T>(_ element: (inout StoredCaseScanner) -> T?) -> [T]? {
        guard take(UInt8(ascii: "[")) else { return nil }
        var elements: [T] = []
        if take(UInt8(ascii: "]")) { return elements }
        while true {
            whitespace()
            guard let next = element(&self) else { return nil }
            elements.append(next)
            if take(UInt8(ascii: ",")) { continue }
            return take(UInt8(ascii: "]")) ? elements : nil
        }
    }

    /// The bytes of a string without escapes or control characters (not checked for UTF-8).
    mutating func stringBytes() -> Key? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
        let start = index + 1
        var end = start
        while end < bytes.count {
            let byte = bytes[end]
            if byte == UInt8(ascii: "\"") { break }
            if byte == UInt8(ascii: "\\") || byte < 0x20 { return nil }
            end += 1
        }
        guard end < bytes.count else { return nil }
        index = end + 1
        return Key(bytes: UnsafeBufferPointer(rebasing: bytes[start..<end]))
    }

    /// A string without escapes or control characters, whose bytes are UTF-8.
    mutating func string() -> String? {
        let start = index
        guard let key = stringBytes(), let text = key.text else {
            index = start
            return nil
        }
        return text
    }

    /// Bytes as text when they are UTF-8, as the parser decides it (`String(validating:)`, which
    /// was a tenth of reading a case, generic as it is): `String(decoding:)` replaces what is not
    /// UTF-8 with U+FFFD, so the text has the same bytes exactly when they were UTF-8.
    static func text(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.utf8.count == bytes.count else { return nil }
        if bytes.allSatisfy({ $0 < 0x80 }) { return text }
        return text.utf8.elementsEqual(bytes) ? text : nil
    }

    mutating func bool() -> Bool? {
        if literal("true") { return true }
        if literal("false") { return false }
        return nil
    }

    mutating func literal(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { return false }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { return false }
        index += count
        return true
    }

    /// The digits of a number from `index`: its end, and whether it has a fraction; `nil` for an
    /// exponent, a leading zero or anything that is not a number (the parser decides those).
    func numberEnd() -> (end: Int, integral: Bool)? {
        var end = index
        if end < bytes.count, bytes[end] == UInt8(ascii: "-") { end += 1 }
        let digits = end
        while end < bytes.count, bytes[end] >= UInt8(ascii: "0"), bytes[end] <= UInt8(ascii: "9") { end += 1 }
        guard end > digits, bytes[digits] != UInt8(ascii: "0") || end == digits + 1 else { return nil }
        var integral = true
        if end < bytes.count, bytes[end] == UInt8(ascii: ".") {
            integral = false
            end += 1
            let fraction = end
            while end < bytes.count, bytes[end] >= UInt8(ascii: "0"), bytes[end] <= UInt8(ascii: "9") { end += 1 }
            guard end > fraction else { return nil }
        }
        if end < bytes.count, bytes[end] == UInt8(ascii: "e") || bytes[end] == UInt8(ascii: "E") { return nil }
        return (end, integral)
    }

    /// An integer of at most 15 digits (which the parser reads as an integer without limits).
    mutating func integer() -> Int? {
        guard let (end, integral) = numberEnd(), integral else { return nil }
        let negative = bytes[index] == UInt8(ascii: "-")
        let first = negative ? index + 1 : index
        guard end - first <= 15 else { return nil }
        var value = 0
        for position in first..<end { value = value * 10 + Int(bytes[position] &- UInt8(ascii: "0")) }
        index = end
        return negative ? -value : value
    }

    /// An instant as seconds since 2001-01-01: an integer, or a number with a fraction read as
    /// the parser reads it (`Double` of its text, finite, not a nonzero number read as 0).
    mutating func date() -> Date? {
        guard let (end, integral) = numberEnd() else { return nil }
        if integral {
            guard let seconds = integer() else { return nil }
            return Date(timeIntervalSinceReferenceDate: Double(seconds))
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[index..<end]), as: UTF8.self)
        guard let seconds = Double(text), seconds.isFinite, seconds != 0 else { return nil }
        index = end
        return Date(timeIntervalSinceReferenceDate: seconds)
    }

    /// Any JSON value (the application, a decision's fields), parsed by ``JSONValue/parse(_:)``
    /// from its extent, which is found first. Values nested deeper than 64 levels are left to the
    /// general reading, which counts the depth from the top of the document.
    mutating func anyValue() -> JSONValue? {
        if index + 1 < bytes.count, bytes[index] == UInt8(ascii: "{"), bytes[index + 1] == UInt8(ascii: "}") {
            index += 2  // most decisions' `fields`
            return .object([:])
        }
        let start = index
        var depth = 0
        var inString = false
        var position = index
        scanning: while position < bytes.count {
            let byte = bytes[position]
            if inString {
                if byte == UInt8(ascii: "\\") {
                    position += 2
                    continue
                }
                if byte == UInt8(ascii: "\"") { inString = false }
                position += 1
                if depth == 0 { break scanning }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                if depth > 64 { return nil }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                if depth == 0 { break scanning }
                depth -= 1
                if depth == 0 {
                    position += 1
                    break scanning
                }
            case UInt8(ascii: ","):
                if depth == 0 { break scanning }
            default: break
            }
            position += 1
        }
        guard position > start, position <= bytes.count, !inString,
            let value = try? JSONValue.parse(Data(UnsafeBufferPointer(rebasing: bytes[start..<position])))
        else { return nil }
        index = position
        return value
    }
}
