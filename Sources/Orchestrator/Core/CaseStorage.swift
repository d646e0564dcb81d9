import CivilTime
import EventSchemas
import Foundation

// The case as the orchestrator's store keeps it, written and read by hand instead of through
// `JSONEncoder`/`JSONDecoder` (which were half of a batch's transaction in the benchmark: the
// decoder tries every kind of value in turn for each member of the application).
//
// The format is unchanged: the same JSON object `Codable` gives a ``Case`` (the same member
// names, absent optionals left out, instants as seconds since 2001-01-01 — Foundation's default
// date encoding —, a ``CivilDate`` as `YYYY-MM-DD`, a ``RuleVersion`` as `{workflow, hash}`), so a
// store written before reads as it is and `JSONDecoder` still reads what this writes (a test
// checks both ways). No migration.

extension Case {
    /// The case as the store's JSON (see the top of this file for the format).
    public func storedJSON() -> [UInt8] {
        var writer = StoredJSONWriter()
        writer.open()
        writer.member("applicationId", applicationId)
        writer.member("workflow", workflow)
        writer.key("ruleVersion")
        writer.ruleVersion(ruleVersion)
        writer.key("application")
        writer.raw(applicationJSON.json(of: application))
        writer.key("submittedAt")
        writer.date(submittedAt)
        writer.member("status", status.rawValue)
        writer.key("steps")
        writer.bytes.append(UInt8(ascii: "["))
        for (index, step) in steps.enumerated() {
            if index > 0 { writer.bytes.append(UInt8(ascii: ",")) }
            writer.step(step)
        }
        writer.bytes.append(UInt8(ascii: "]"))
        writer.key("revision")
        writer.integer(revision)
        if let completion {
            writer.key("completion")
            writer.completion(completion)
        }
        if let facts {
            writer.key("facts")
            writer.bytes.append(UInt8(ascii: "["))
            for (index, fact) in facts.enumerated() {
                if index > 0 { writer.bytes.append(UInt8(ascii: ",")) }
                writer.open()
                writer.member("kind", fact.kind)
                writer.member("subject", fact.subject)
                writer.member("eventId", fact.eventId)
                writer.member("topic", fact.topic)
                writer.close()
            }
            writer.bytes.append(UInt8(ascii: "]"))
        }
        writer.close()
        return writer.bytes.bytes
    }

    /// Reads a case from the store's JSON (this file's writer's or `JSONEncoder`'s).
    /// - Throws: ``StoredCaseError`` naming the member that is missing or malformed.
    public init(storedJSON data: some Collection<UInt8>) throws {
        // The common case straight from the bytes (StoredCaseScanner.swift); anything it does not
        // take is read here as before, and refused naming the member.
        if let found = StoredCaseScanner.read(data) {
            self = found
            return
        }
        let value: JSONValue
        do {
            value = try JSONValue.parse(Data(data))
        } catch {
            throw StoredCaseError(path: "", problem: "the stored case is not JSON: \(error)")
        }
        let reader = StoredJSONReader(value: value, path: "")
        let applicationId = try reader.string("applicationId")
        do {
            self = try Self.read(reader)
        } catch let error as StoredCaseError {
            throw StoredCaseError(path: error.path, problem: "case \(applicationId): \(error.problem)")
        }
    }

    private static func read(_ reader: StoredJSONReader) throws -> Case {
        let steps = try reader.array("steps").map { step in
            StepState(
                id: try step.string("id"), status: try step.enumeration("status"), attempt: try step.integer("attempt"),
                requestedAt: try step.optionalDate("requestedAt"),
                requestTimes: try step.array("requestTimes").map { try $0.date() },
                dueDate: try step.optionalCivilDate("dueDate"), reminderAt: try step.optionalDate("reminderAt"),
                overdueAt: try step.optionalDate("overdueAt"), reminded: try step.bool("reminded"),
                escalated: try step.bool("escalated"),
                decisions: try step.array("decisions").map { record in
                    DecisionRecord(attempt: try record.integer("attempt"), decision: try record.member("decision").decision())
                })
        }
        let completion = try reader.optionalMember("completion").map { record in
            CompletionRecord(
                applicationId: try record.string("applicationId"), workflow: try record.string("workflow"),
                ruleVersion: try record.member("ruleVersion").ruleVersion(),
                submittedAt: try record.member("submittedAt").date(),
                completedAt: try record.member("completedAt").date(),
                elapsedWorkingDays: try record.integer("elapsedWorkingDays"),
                serialWorkingDays: try record.integer("serialWorkingDays"),
                stepWorkingDays: try record.object("stepWorkingDays").mapValues { try $0.integer() },
                documents: try record.optionalMember("documents").map { documents in
                    DocumentCount(serial: try documents.integer("serial"), submitted: try documents.integer("submitted"))
                })
        }
        let facts = try reader.optionalMember("facts").map { facts in
            try facts.array().map { fact in
                SharedFact(
                    kind: try fact.string("kind"), subject: try fact.string("subject"),
                    eventId: try fact.string("eventId"), topic: try fact.string("topic"))
            }
        }
        return Case(
            applicationId: try reader.string("applicationId"), workflow: try reader.string("workflow"),
            ruleVersion: try reader.member("ruleVersion").ruleVersion(),
            application: try reader.member("application").value, submittedAt: try reader.member("submittedAt").date(),
            status: try reader.enumeration("status"), steps: steps, revision: try reader.integer("revision"),
            completion: completion, facts: facts)
    }
}

/// A stored case the store cannot read: which member (a JSON pointer into the stored JSON) and
/// what is wrong with it.
public struct StoredCaseError: Error, Sendable, CustomStringConvertible {
    /// The member: `/steps/2/status`.
    public var path: String
    public var problem: String

    public var description: String { path.isEmpty ? problem : "\(problem) (at \(path) of the stored case)" }
}

/// Appends the store's JSON to a byte buffer (``JSONOutput``: appending to a `[UInt8]` checked
/// its uniqueness and room per byte and per run, and member names were scanned for escapes).
private struct StoredJSONWriter: ~Copyable {
    var bytes = JSONOutput(capacity: 4096)
    /// Whether the object being written has no member yet.
    private var first = true

    mutating func open() {
        bytes.append(UInt8(ascii: "{"))
        first = true
    }

    mutating func close() {
        bytes.append(UInt8(ascii: "}"))
        first = false
    }

    /// A member name written as it is: a literal of this file, which needs no escape.
    mutating func key(_ name: StaticString) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        bytes.appendMemberName(name)
    }

    /// A member name from data, escaped as a JSON string.
    mutating func key(text name: String) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
        string(name)
        bytes.append(UInt8(ascii: ":"))
    }

    mutating func member(_ name: StaticString, _ value: String) {
        key(name)
        string(value)
    }

    mutating func string(_ value: String) {
        // JSON's escapes (`\n` rather than `\u000a`): any JSON reader, `JSONDecoder` included,
        // reads them as the same text.
        JSONValue.writeString(value, to: &bytes)
    }

    mutating func integer(_ value: Int) {
        if value >= 0, value < 10 {
            bytes.append(UInt8(ascii: "0") + UInt8(value))
        } else {
            bytes.appendDecimal(Int64(value))
        }
    }

    mutating func bool(_ value: Bool) {
        bytes.append(value ? "true" : "false")
    }

    /// Foundation's default: seconds since 2001-01-01 as a number, exact (Swift prints the
    /// shortest text that reads back as the same `Double`).
    mutating func date(_ value: Date) {
        let seconds = value.timeIntervalSinceReferenceDate
        if seconds.isFinite {
            bytes.appendDescription(of: seconds)
        } else {
            bytes.append(UInt8(ascii: "0"))
        }
    }

    /// JSON text already written (``SerializedApplication``).
    mutating func raw(_ json: [UInt8]) {
        json.withUnsafeBufferPointer { bytes.append($0) }
        first = false
    }

    mutating func json(_ value: JSONValue) {
        value.write(to: &bytes)
        first = false
    }

    mutating func ruleVersion(_ version: RuleVersion) {
        open()
        member("workflow", version.workflow)
        member("hash", version.hash)
        close()
    }

    mutating func step(_ step: StepState) {
        open()
        member("id", step.id)
        member("status", step.status.rawValue)
        key("attempt")
        integer(step.attempt)
        if let requestedAt = step.requestedAt {
            key("requestedAt")
            date(requestedAt)
        }
        key("requestTimes")
        bytes.append(UInt8(ascii: "["))
        for (index, time) in step.requestTimes.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            date(time)
        }
        bytes.append(UInt8(ascii: "]"))
        if let dueDate = step.dueDate { member("dueDate", dueDate.description) }
        if let reminderAt = step.reminderAt {
            key("reminderAt")
            date(reminderAt)
        }
        if let overdueAt = step.overdueAt {
            key("overdueAt")
            date(overdueAt)
        }
        key("reminded")
        bool(step.reminded)
        key("escalated")
        bool(step.escalated)
        key("decisions")
        bytes.append(UInt8(ascii: "["))
        for (index, record) in step.decisions.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            open()
            key("attempt")
            integer(record.attempt)
            key("decision")
            decision(record.decision)
            close()
        }
        bytes.append(UInt8(ascii: "]"))
        close()
    }

    mutating func decision(_ decision: Decision) {
        open()
        member("applicationId", decision.applicationId)
        member("department", decision.department)
        member("item", decision.item)
        member("outcome", decision.outcome.rawValue)
        if let reason = decision.reason { member("reason", reason) }
        key("decidedAt")
        date(decision.decidedAt)
        member("decidedBy", decision.decidedBy)
        if let licenceNumber = decision.licenceNumber { member("licenceNumber", licenceNumber) }
        key("fields")
        json(.object(decision.fields))
        close()
    }

    mutating func completion(_ record: CompletionRecord) {
        open()
        member("applicationId", record.applicationId)
        member("workflow", record.workflow)
        key("ruleVersion")
        ruleVersion(record.ruleVersion)
        key("submittedAt")
        date(record.submittedAt)
        key("completedAt")
        date(record.completedAt)
        key("elapsedWorkingDays")
        integer(record.elapsedWorkingDays)
        key("serialWorkingDays")
        integer(record.serialWorkingDays)
        key("stepWorkingDays")
        open()
        for (step, days) in record.stepWorkingDays.sorted(by: { $0.key < $1.key }) {
            key(text: step)
            integer(days)
        }
        close()
        if let documents = record.documents {
            key("documents")
            open()
            key("serial")
            integer(documents.serial)
            key("submitted")
            integer(documents.submitted)
            close()
        }
        close()
    }
}

/// Reads members of the store's JSON, naming the member in its errors.
private struct StoredJSONReader {
    let value: JSONValue
    /// A JSON pointer to `value` in the stored case.
    let path: String

    func failure(_ problem: String) -> StoredCaseError { StoredCaseError(path: path, problem: problem) }

    func member(_ name: String) throws -> StoredJSONReader {
        guard let found = try optionalMember(name) else { throw failure("member \(name) is missing") }
        return found
    }

    func optionalMember(_ name: String) throws -> StoredJSONReader? {
        guard case .object(let members) = value else { throw failure("not an object") }
        guard let found = members[name], found != .null else { return nil }
        return StoredJSONReader(value: found, path: "\(path)/\(name)")
    }

    func string() throws -> String {
        guard case .string(let text) = value else { throw failure("not a string") }
        return text
    }

    func integer() throws -> Int {
        guard case .integer(let number) = value, let int = Int(exactly: number) else {
            throw failure("not an integer")
        }
        return int
    }

    func array() throws -> [StoredJSONReader] {
        guard case .array(let elements) = value else { throw failure("not an array") }
        return elements.enumerated().map { StoredJSONReader(value: $1, path: "\(path)/\($0)") }
    }

    func object() throws -> [String: StoredJSONReader] {
        guard case .object(let members) = value else { throw failure("not an object") }
        var result: [String: StoredJSONReader] = [:]
        for (key, member) in members { result[key] = StoredJSONReader(value: member, path: "\(path)/\(key)") }
        return result
    }

    /// Seconds since 2001-01-01 (an integer when `JSONEncoder` wrote a whole number).
    func date() throws -> Date {
        switch value {
        case .integer(let seconds): return Date(timeIntervalSinceReferenceDate: Double(seconds))
        case .number(let seconds): return Date(timeIntervalSinceReferenceDate: seconds)
        default: throw failure("not an instant (seconds since 2001-01-01)")
        }
    }

    func bool() throws -> Bool {
        guard case .bool(let flag) = value else { throw failure("not true or false") }
        return flag
    }

    func string(_ name: String) throws -> String { try member(name).string() }
    func integer(_ name: String) throws -> Int { try member(name).integer() }
    func bool(_ name: String) throws -> Bool { try member(name).bool() }
    func array(_ name: String) throws -> [StoredJSONReader] { try member(name).array() }
    func object(_ name: String) throws -> [String: StoredJSONReader] { try member(name).object() }
    func optionalDate(_ name: String) throws -> Date? { try optionalMember(name)?.date() }

    func optionalCivilDate(_ name: String) throws -> CivilDate? {
        guard let member = try optionalMember(name) else { return nil }
        guard let date = CivilDate(try member.string()) else { throw member.failure("not a date (YYYY-MM-DD)") }
        return date
    }

    func enumeration<T: RawRepresentable>(_ name: String) throws -> T where T.RawValue == String {
        let member = try member(name)
        let text = try member.string()
        guard let value = T(rawValue: text) else { throw member.failure("'\(text)' is not a \(T.self)") }
        return value
    }

    func ruleVersion() throws -> RuleVersion {
        RuleVersion(workflow: try string("workflow"), hash: try string("hash"))
    }

    func decision() throws -> Decision {
        Decision(
            applicationId: try string("applicationId"), department: try string("department"), item: try string("item"),
            outcome: try enumeration("outcome"), reason: try optionalMember("reason")?.string(),
            decidedAt: try member("decidedAt").date(), decidedBy: try string("decidedBy"),
            licenceNumber: try optionalMember("licenceNumber")?.string(),
            fields: JSONObject(try optionalMember("fields")?.object().mapValues(\.value) ?? [:]))
    }
}
