import EventLog
import Foundation

/// The CloudEvents Kafka protocol binding, binary content mode: the one mapping between an
/// ``Event`` and a log record, used by every backend and every tool.
///
/// | event attribute   | record                         |
/// |-------------------|--------------------------------|
/// | id                | header `ce_id`                 |
/// | source            | header `ce_source`             |
/// | type              | header `ce_type`               |
/// | subject           | header `ce_subject`, and key   |
/// | time              | header `ce_time` (RFC 3339, ms) and record timestamp |
/// | specversion       | header `ce_specversion`        |
/// | datacontenttype   | header `content-type`          |
/// | correlationid     | header `ce_correlationid` (extension) |
/// | causationid       | header `ce_causationid` (extension)   |
/// | data              | value                          |
public enum CloudEventsBinding {
    public static let id = "ce_id"
    public static let source = "ce_source"
    public static let type = "ce_type"
    public static let subject = "ce_subject"
    public static let time = "ce_time"
    public static let specVersion = "ce_specversion"
    public static let contentType = "content-type"
    public static let correlationId = "ce_correlationid"
    public static let causationId = "ce_causationid"

    /// The record for an event.
    /// - Parameters:
    ///   - topic: where it goes.
    ///   - key: the record key; default: the event's subject.
    public static func record(for event: Event, topic: String, key: String? = nil) -> OutgoingRecord {
        var headers: [LogHeader] = [
            LogHeader(name: specVersion, text: event.specVersion),
            LogHeader(name: id, text: event.id),
            LogHeader(name: source, text: event.source),
            LogHeader(name: type, text: event.type),
        ]
        if let subject = event.subject { headers.append(LogHeader(name: Self.subject, text: subject)) }
        headers.append(LogHeader(name: time, text: Timestamp.format(event.time)))
        headers.append(LogHeader(name: contentType, text: event.dataContentType))
        if let value = event.correlationId { headers.append(LogHeader(name: correlationId, text: value)) }
        if let value = event.causationId { headers.append(LogHeader(name: causationId, text: value)) }
        return OutgoingRecord(
            topic: topic, key: key ?? event.subject, value: event.data, headers: headers, timestamp: event.time)
    }

    /// The event a record carries.
    /// - Throws: ``BindingError`` naming the missing or malformed header and the record's position.
    public static func event(from record: LogRecord) throws -> Event {
        func required(_ name: String) throws -> String {
            guard let value = record.header(name), !value.isEmpty else {
                throw BindingError(position: record.position, header: name, problem: "is missing")
            }
            return value
        }
        let timeText = try required(time)
        guard let parsedTime = Timestamp.parse(timeText) else {
            throw BindingError(
                position: record.position, header: time, problem: "is not an RFC 3339 time: \(timeText)")
        }
        let version = try required(specVersion)
        guard version == "1.0" else {
            throw BindingError(
                position: record.position, header: specVersion, problem: "is \(version), only 1.0 is supported")
        }
        return Event(
            id: try required(id), type: try required(type), source: try required(source),
            subject: record.header(subject) ?? record.keyString, time: parsedTime, data: record.value,
            dataContentType: record.header(contentType) ?? "application/json",
            correlationId: record.header(correlationId), causationId: record.header(causationId),
            specVersion: version)
    }
}

/// A record that does not carry a well-formed CloudEvent.
public struct BindingError: Error, Sendable, CustomStringConvertible {
    public var position: RecordPosition
    public var header: String
    public var problem: String

    public var description: String {
        "record \(position) is not a CloudEvent: header \(header) \(problem)"
    }
}

/// RFC 3339 timestamps as CloudEvents writes them: UTC, millisecond precision.
public enum Timestamp {
    /// `2024-01-15T08:30:00.000Z`. Computed directly (civil-from-days), because it runs for every
    /// record published and Foundation's formatters cost tens of microseconds a call.
    public static func format(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var days = milliseconds >= 0 ? milliseconds / 86_400_000 : (milliseconds - 86_399_999) / 86_400_000
        let dayMilliseconds = milliseconds - days * 86_400_000
        // Howard Hinnant's civil_from_days.
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        var text = ""
        text.reserveCapacity(24)
        func pad(_ value: Int64, _ width: Int) {
            let digits = String(value)
            if digits.count < width { text += String(repeating: "0", count: width - digits.count) }
            text += digits
        }
        pad(year, 4)
        text += "-"
        pad(month, 2)
        text += "-"
        pad(day, 2)
        text += "T"
        pad(dayMilliseconds / 3_600_000, 2)
        text += ":"
        pad(dayMilliseconds / 60_000 % 60, 2)
        text += ":"
        pad(dayMilliseconds / 1000 % 60, 2)
        text += "."
        pad(dayMilliseconds % 1000, 3)
        text += "Z"
        return text
    }

    /// Parses RFC 3339 with or without fractional seconds, with `Z` or a numeric offset.
    public static func parse(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try? Date.ISO8601FormatStyle().parse(text)
    }
}
