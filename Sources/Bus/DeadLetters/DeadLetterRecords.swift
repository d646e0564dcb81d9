import EventLog
import EventModel
import EventSchemas
import Foundation

/// A dead letter's id: its position on the dead-letter topic, written `topic/partition/offset`
/// (`deadletter.record.refused/0/42`). Positions never change and are never reused, so the id
/// names one refused record for as long as the topic keeps it.
public struct DeadLetterID: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Where the dead letter is.
    public var position: RecordPosition

    /// The id of the record at `position`.
    public init(_ position: RecordPosition) { self.position = position }

    public init(topic: String, partition: Int, offset: Int64) {
        self.init(RecordPosition(topic: topic, partition: partition, offset: offset))
    }

    /// Parses `topic/partition/offset`; `nil` when the text is not of that form.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, let partition = Int(parts[1]), partition >= 0,
            let offset = Int64(parts[2]), offset >= 0
        else { return nil }
        self.init(topic: String(parts[0]), partition: partition, offset: offset)
    }

    public var topic: String { position.topic }
    public var partition: Int { position.partition }
    public var offset: Int64 { position.offset }
    public var description: String { "\(topic)/\(partition)/\(offset)" }

    public static func < (left: DeadLetterID, right: DeadLetterID) -> Bool {
        (left.topic, left.partition, left.offset) < (right.topic, right.partition, right.offset)
    }
}

/// One record of the dead-letter topic, read back: the original bytes and headers, and what its
/// `dl_*` headers say (see ``DeadLetter`` for the format).
public struct StoredDeadLetter: Sendable {
    public var id: DeadLetterID
    /// The record as stored: the original key and bytes, the original headers and the `dl_*` ones.
    public var record: LogRecord

    public init(record: LogRecord) {
        self.id = DeadLetterID(record.position)
        self.record = record
    }

    /// `dl_code`, e.g. `schema-violation` (empty when the header is missing).
    public var code: String { record.header(DeadLetter.code) ?? "" }
    /// `dl_reason`, the reason in one line.
    public var reason: String { record.header(DeadLetter.reason) ?? "" }
    /// `dl_original_topic`; `nil` when it is missing or empty (the publisher named no topic and
    /// several, or none, carry the type).
    public var originalTopic: String? { record.header(DeadLetter.originalTopic).flatMap { $0.isEmpty ? nil : $0 } }
    /// `dl_refused_by`: the process that refused it.
    public var refusedBy: String { record.header(DeadLetter.refusedBy) ?? "" }
    /// When it was refused: `dl_time`, else (a header missing or unreadable) the record's timestamp.
    public var time: Date { record.header(DeadLetter.time).flatMap(Timestamp.parse) ?? record.timestamp }
    /// Whether the value holds only the first bytes of the original (`dl_truncated: true`).
    public var isTruncated: Bool { record.header(DeadLetter.truncated) == "true" }
    /// The dead letter a redrive sent here again (`dl_redrive_of`), when it came back from one.
    public var redriveOf: DeadLetterID? { record.header(DeadLetter.redriveOf).flatMap(DeadLetterID.init) }
    /// The event id (`ce_id`), when the record carries one.
    public var eventId: String? { record.header(CloudEventsBinding.id) }
    /// The event type (`ce_type`), when the record carries one.
    public var eventType: String? { record.header(CloudEventsBinding.type) }
    /// The `dl_*` headers, in their order.
    public var deadLetterHeaders: [LogHeader] { record.headers.filter { $0.name.hasPrefix("dl_") } }
    /// Every other header (the original record's), in their order.
    public var originalHeaders: [LogHeader] { record.headers.filter { !$0.name.hasPrefix("dl_") } }
}

/// Which dead letters to list, redrive or purge. Each non-empty list admits any of its values;
/// the conditions all hold together. An empty filter admits every dead letter.
public struct DeadLetterFilter: Sendable, Hashable {
    /// `dl_original_topic` is one of these.
    public var originalTopics: [String]
    /// `dl_code` is one of these (``ValidationFailure/Code`` raw values).
    public var codes: [String]
    /// `dl_refused_by` is one of these.
    public var refusedBy: [String]
    /// Refused at or after this time (`dl_time`).
    public var since: Date?
    /// Refused before this time (`dl_time`; the end is excluded, so `--since` of one range and
    /// `--until` of the next can meet without overlapping).
    public var until: Date?

    public init(
        originalTopics: [String] = [], codes: [String] = [], refusedBy: [String] = [], since: Date? = nil,
        until: Date? = nil
    ) {
        self.originalTopics = originalTopics
        self.codes = codes
        self.refusedBy = refusedBy
        self.since = since
        self.until = until
    }

    /// Whether it admits every dead letter (no condition given).
    public var isEmpty: Bool {
        originalTopics.isEmpty && codes.isEmpty && refusedBy.isEmpty && since == nil && until == nil
    }

    /// Whether `letter` meets every condition.
    public func matches(_ letter: StoredDeadLetter) -> Bool {
        if !originalTopics.isEmpty, !originalTopics.contains(letter.originalTopic ?? "") { return false }
        if !codes.isEmpty, !codes.contains(letter.code) { return false }
        if !refusedBy.isEmpty, !refusedBy.contains(letter.refusedBy) { return false }
        let time = letter.time
        if let since, time < since { return false }
        if let until, time >= until { return false }
        return true
    }
}

/// A marker on `deadletter.record.handled` (its schema: `Topics/schemas/deadletter.record.handled.json`):
/// a dead letter was redriven or purged, when, by whom, and for a redrive with what result.
public struct DeadLetterMarker: Sendable, Hashable {
    public enum Action: String, Sendable, Hashable {
        case redriven, purged
    }

    /// A redrive's result.
    public enum Result: String, Sendable, Hashable {
        /// Validated and appended to its topic.
        case published
        /// Refused again: a new dead letter with the new reason (`dl_redrive_of` names this one).
        case deadLetteredAgain = "dead-lettered-again"
    }

    public var deadLetterId: DeadLetterID
    public var action: Action
    public var result: Result?
    /// For a redrive: the topic the record was validated for.
    public var topic: String?
    /// For a redrive that failed again: the new reason.
    public var reason: String?
    public var eventId: String?
    public var at: Date
    public var by: String

    public init(
        deadLetterId: DeadLetterID, action: Action, result: Result? = nil, topic: String? = nil, reason: String? = nil,
        eventId: String? = nil, at: Date, by: String
    ) {
        self.deadLetterId = deadLetterId
        self.action = action
        self.result = result
        self.topic = topic
        self.reason = reason
        self.eventId = eventId
        self.at = at
        self.by = by
    }

    /// The event body.
    public var body: JSONValue {
        var object: JSONObject = [
            "deadLetterId": .string(deadLetterId.description), "action": .string(action.rawValue),
            "at": .string(Timestamp.format(at)), "by": .string(by),
        ]
        if let result { object["result"] = .string(result.rawValue) }
        if let topic { object["topic"] = .string(topic) }
        if let reason { object["reason"] = .string(reason) }
        if let eventId { object["eventId"] = .string(eventId) }
        return .object(object)
    }

    /// The marker a record of the marker topic carries; `nil` for a record that is not one.
    public init?(record: LogRecord) {
        guard let body = try? JSONValue.parse(record.value),
            let id = body[pointer: "/deadLetterId"]?.stringValue.flatMap(DeadLetterID.init),
            let action = body[pointer: "/action"]?.stringValue.flatMap(Action.init(rawValue:)),
            let at = body[pointer: "/at"]?.stringValue.flatMap(Timestamp.parse),
            let by = body[pointer: "/by"]?.stringValue
        else { return nil }
        self.init(
            deadLetterId: id, action: action,
            result: body[pointer: "/result"]?.stringValue.flatMap(Result.init(rawValue:)),
            topic: body[pointer: "/topic"]?.stringValue, reason: body[pointer: "/reason"]?.stringValue,
            eventId: body[pointer: "/eventId"]?.stringValue, at: at, by: by)
    }

    /// In a few words: `redriven (published)`, `redriven (dead-lettered-again)`, `purged`.
    public var summary: String {
        result.map { "\(action.rawValue) (\($0.rawValue))" } ?? action.rawValue
    }
}

/// A dead letter and, when it was handled, its marker.
public struct DeadLetterListing: Sendable {
    public var letter: StoredDeadLetter
    /// The first marker for it; `nil` while it is open (neither redriven nor purged).
    public var marker: DeadLetterMarker?

    public init(letter: StoredDeadLetter, marker: DeadLetterMarker?) {
        self.letter = letter
        self.marker = marker
    }

    /// `open`, or the marker's ``DeadLetterMarker/summary``.
    public var state: String { marker?.summary ?? "open" }
}

/// Why a dead-letter operation cannot be done, with what to do.
public struct DeadLetterError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// No dead letter has the id given.
        case notFound
        /// A purge without a filter (it would purge everything).
        case filterRequired
        /// The catalog or the bus lacks the marker topic.
        case markerTopicMissing
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
