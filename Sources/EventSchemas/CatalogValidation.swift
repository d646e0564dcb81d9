import CivilTime
import EventModel
import Foundation

/// Why an event was refused. The code is stable (it goes into the dead-letter header `dl_code`);
/// the message is for people.
public struct ValidationFailure: Error, Sendable, CustomStringConvertible {
    /// The kind of refusal.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The body is not JSON.
        case invalidJSON = "invalid-json"
        /// The body breaks the type's schema (`violations` says where and how).
        case schemaViolation = "schema-violation"
        /// The catalog has no such event type.
        case unknownType = "unknown-type"
        /// The topic does not carry this type, or no topic was named for a type several carry.
        case wrongTopic = "wrong-topic"
        /// The topic's key field is missing from the body or is not a string.
        case missingKey = "missing-key"
        /// The event's subject differs from the key field in its body.
        case subjectMismatch = "subject-mismatch"
        /// The record is not a CloudEvent (a required `ce_*` header is missing or malformed).
        case invalidEnvelope = "invalid-envelope"
        /// A connector could not map its input to an event body (a date that is not a date, a
        /// code missing from the code table, an unreadable line).
        case mappingFailed = "mapping-failed"
        /// A sink could not deliver the event after its retries (the reason says why).
        case undeliverable = "undeliverable"
        /// The record is larger than the log accepts; its dead letter keeps only its first bytes,
        /// with the original's size and digest.
        case recordTooLarge = "record-too-large"
    }

    public var code: Code
    /// One sentence on what is wrong and, where it helps, what to do.
    public var message: String
    /// The schema violations, for `.schemaViolation`.
    public var violations: [SchemaViolation]
    /// The event type concerned, when known.
    public var eventType: String?
    /// The event id concerned, when known.
    public var eventId: String?

    public init(
        _ code: Code, _ message: String, violations: [SchemaViolation] = [], eventType: String? = nil,
        eventId: String? = nil
    ) {
        self.code = code
        self.message = message
        self.violations = violations
        self.eventType = eventType
        self.eventId = eventId
    }

    /// The reason in one line, e.g. `schema-violation: /child/residentId: format cn-resident-id: …`.
    public var reason: String {
        // Written into one string: interpolating each violation, then joining, made a string per
        // part (every dead letter carries its reason: issue 12's floods).
        var text = code.rawValue
        text += ": "
        if violations.isEmpty {
            text += message
            return text
        }
        for (index, violation) in violations.enumerated() {
            if index > 0 { text += "; " }
            text += violation.pointer.isEmpty ? "/" : violation.pointer
            text += ": "
            text += violation.keyword
            text += ": "
            text += violation.message
        }
        return text
    }

    /// ``reason`` as UTF-8 bytes, written at its final size in one go: a dead letter's `dl_reason`
    /// (every refused record carries one: issue 12's floods).
    public var reasonUTF8: Data {
        let size = reasonUTF8Count
        guard size > 0 else { return Data() }
        var bytes = Data(count: size)
        bytes.withUnsafeMutableBytes { buffer in _ = writeReason(into: buffer) }
        return bytes
    }

    /// The number of bytes of ``reason`` in UTF-8.
    public var reasonUTF8Count: Int {
        var size = code.rawValue.utf8.count + 2
        if violations.isEmpty {
            size += message.utf8.count
        } else {
            for violation in violations {
                size += max(violation.pointer.utf8.count, 1) + violation.keyword.utf8.count + violation.message.utf8.count + 4
            }
            size += 2 * (violations.count - 1)
        }
        return size
    }

    /// Writes ``reason`` in UTF-8 at the start of `buffer`, which holds at least
    /// ``reasonUTF8Count`` bytes: for a dead letter that writes all its header values into one
    /// buffer (`Bus.DeadLetter`). A smaller buffer is a programming error.
    /// - Returns: the bytes written (``reasonUTF8Count``).
    public func writeReason(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        // Checked in debug builds: counting again walks the violations a second time.
        assert(buffer.count >= reasonUTF8Count, "the buffer is smaller than the reason")
        var index = 0
        // Copies of whole runs; no closure captures the position (a nested writer paid an
        // exclusivity check a call).
        func put(_ text: String, _ index: inout Int) {
            var text = text
            text.withUTF8 { utf8 in
                if utf8.count > 0 {
                    buffer.baseAddress!.advanced(by: index).copyMemory(from: utf8.baseAddress!, byteCount: utf8.count)
                }
                index += utf8.count
            }
        }
        func separator(_ first: UInt8, _ index: inout Int) {
            buffer[index] = first
            buffer[index + 1] = UInt8(ascii: " ")
            index += 2
        }
        put(code.rawValue, &index)
        separator(UInt8(ascii: ":"), &index)
        if violations.isEmpty { put(message, &index) }
        for (position, violation) in violations.enumerated() {
            if position > 0 { separator(UInt8(ascii: ";"), &index) }
            if violation.pointer.isEmpty {
                buffer[index] = UInt8(ascii: "/")
                index += 1
            } else {
                put(violation.pointer, &index)
            }
            separator(UInt8(ascii: ":"), &index)
            put(violation.keyword, &index)
            separator(UInt8(ascii: ":"), &index)
            put(violation.message, &index)
        }
        return index
    }

    public var description: String {
        var text = "event"
        if let eventId { text += " \(eventId)" }
        if let eventType { text += " of type \(eventType)" }
        text += " refused: \(message)"
        for violation in violations { text += "\n  - \(violation)" }
        return text
    }
}

/// An event that passed validation, and where it goes.
public struct ValidatedEvent: Sendable {
    /// The event, with its subject filled from the key field when it had none.
    public var event: Event
    /// The topic it goes to.
    public var topic: String
    /// The parsed body.
    public var body: JSONValue
}

/// Checks events against the catalog: known type, right topic, JSON, schema, key, and that an
/// event for one department travels on that department's topic (``CatalogTopic/ownerField``).
public struct EventValidator: Sendable {
    public let catalog: TopicCatalog
    /// The clock that formats depending on today read (a resident ID's birth date may not be in
    /// the future). Default: the system clock.
    public let clock: any WallClock

    /// The longest event id taken, in UTF-8 bytes: ids name a record (a connector's are its
    /// department, file or table, key and version), and readers keep every id they have seen.
    public static let largestEventId = 1024

    public init(catalog: TopicCatalog, clock: any WallClock = .system) {
        self.catalog = catalog
        self.clock = clock
    }

    /// The topic among `carriers` whose owner the body names in the topics' owner field, when
    /// every carrier has one (`approval.requested` goes to the department in its `/department`).
    static func ownersTopic(among carriers: [CatalogTopic], body: JSONValue) -> CatalogTopic? {
        guard let field = carriers.first?.ownerField, carriers.allSatisfy({ $0.ownerField == field }),
            case .string(let owner)? = body[pointer: field]
        else { return nil }
        return carriers.first { $0.owner == owner }
    }

    /// Validates an event for a topic (or, when none is named, for the one topic that
    /// carries its type, or the topic of the department the body names in the topics' owner field).
    /// - Parameter parsed: the body already parsed from `event.data`, to skip parsing it again.
    /// - Throws: ``ValidationFailure`` saying what is wrong.
    public func validate(_ event: Event, topic requestedTopic: String? = nil, body parsed: JSONValue? = nil) throws
        -> ValidatedEvent
    {
        try check(event, topic: requestedTopic, body: parsed).get()
    }

    /// ``validate(_:topic:body:)``'s answer as a value: for a caller that refuses many records (a
    /// flood of garbage dead-lettered), which then neither boxes nor casts an error per record.
    public func check(_ event: Event, topic requestedTopic: String? = nil, body parsed: JSONValue? = nil)
        -> Result<ValidatedEvent, ValidationFailure>
    {
        Result { () throws(ValidationFailure) in try validating(event, topic: requestedTopic, body: parsed) }
    }

    /// A JSON reader's problem with its place, `problem (line 3, column 14)`, written into one
    /// string at its size (a flood of broken bodies refuses each with one).
    static func placed(_ error: JSONParseError) -> String {
        let line = String(error.line)
        let column = String(error.column)
        var text = ""
        text.reserveCapacity(error.problem.utf8.count + line.utf8.count + column.utf8.count + 18)
        text += error.problem
        text += " (line "
        text += line
        text += ", column "
        text += column
        text += ")"
        return text
    }

    private func validating(_ event: Event, topic requestedTopic: String?, body parsed: JSONValue?)
        throws(ValidationFailure) -> ValidatedEvent
    {
        func failure(_ code: ValidationFailure.Code, _ message: String, _ violations: [SchemaViolation] = [])
            -> ValidationFailure
        {
            ValidationFailure(code, message, violations: violations, eventType: event.type, eventId: event.id)
        }
        if event.id.isEmpty || event.id.utf8.count > Self.largestEventId {
            throw failure(
                .invalidEnvelope, "the event id is not usable",
                [
                    SchemaViolation(
                        pointer: "ce_id", keyword: event.id.isEmpty ? "required" : "maxLength",
                        message: event.id.isEmpty
                            ? "the event id is empty"
                            : "the event id is \(event.id.utf8.count) bytes, more than \(Self.largestEventId)")
                ])
        }
        guard let schema = catalog.schemas[event.type] else {
            throw failure(.unknownType, "the catalog has no event type \(event.type); see `onewindow topics list`")
        }
        let body: JSONValue
        do {
            body = try parsed ?? JSONValue.parse(event.data)
        } catch let error as JSONParseError {
            throw failure(
                .invalidJSON, "the body is not JSON as every reader reads it (RFC 8259: UTF-8, each member name once)",
                [SchemaViolation(pointer: error.pointer, keyword: error.rule.rawValue, message: Self.placed(error))])
        } catch {
            throw failure(.invalidJSON, "the body is not JSON: \(error)")
        }
        let topic: CatalogTopic
        if let requestedTopic {
            guard let named = catalog.topic(named: requestedTopic) else {
                throw failure(.wrongTopic, "the catalog has no topic \(requestedTopic)")
            }
            guard named.types.contains(event.type) else {
                let right = catalog.topics(carrying: event.type).map(\.name).joined(separator: ", ")
                throw failure(.wrongTopic, "topic \(requestedTopic) does not carry \(event.type); it goes to \(right)")
            }
            topic = named
        } else {
            let carriers = catalog.topics(carrying: event.type)
            if carriers.count == 1 {
                topic = carriers[0]
            } else if let owners = Self.ownersTopic(among: carriers, body: body) {
                // Several departments' topics carry the type: the body's owner field picks one.
                topic = owners
            } else {
                throw failure(
                    .wrongTopic,
                    "\(event.type) is carried by several topics (\(carriers.map(\.name).joined(separator: ", "))); name one")
            }
        }
        let violations = schema.validate(body, now: clock.now())
        if !violations.isEmpty {
            // Concatenated: an interpolation writes each part through a generic text stream
            // (most refusals of a flood of garbage are schema violations).
            throw failure(.schemaViolation, "the body does not match the schema of " + event.type, violations)
        }
        if let field = topic.ownerField {
            let named = body[pointer: field]
            if named != .string(topic.owner) {
                let shown = named.map { String(decoding: $0.serialized(), as: UTF8.self) } ?? "nothing"
                var advice = ""
                if case .string(let department)? = named {
                    let right = catalog.topics(carrying: event.type).filter { $0.owner == department }.map(\.name)
                    advice = right.isEmpty ? "" : "; publish it to \(right.joined(separator: " or "))"
                }
                throw failure(
                    .wrongTopic, "the body is for another department than topic \(topic.name)",
                    [
                        SchemaViolation(
                            pointer: field, keyword: "ownerField",
                            message: "names \(shown), but topic \(topic.name) carries only events for its owner \(topic.owner)\(advice)")
                    ])
            }
        }
        var validated = event
        if let pointer = topic.keyPointer, let tokens = topic.keyTokens {
            let key: String
            switch body[tokens: tokens] {
            case .string(let text)?: key = text
            case .integer(let number)?: key = String(number)
            default:
                throw failure(.missingKey, "the key field \(pointer) of topic \(topic.name) is missing or not a string")
            }
            if let subject = event.subject, subject != key {
                throw failure(
                    .subjectMismatch, "the subject \(subject) differs from the body's key field \(pointer) = \(key)")
            }
            validated.subject = key
        }
        return ValidatedEvent(event: validated, topic: topic.name, body: body)
    }
}
