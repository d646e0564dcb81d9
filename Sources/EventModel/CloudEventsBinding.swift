import CivilTime
import EventLog
import Foundation
import Synchronization

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
        var headers: [LogHeader] = []
        headers.reserveCapacity(9)
        // In ``forEachHeader(of:time:_:)``'s order, which dead letters follow (DeadLetterWritingTests).
        headers.append(header(specVersion, event.specVersion))
        headers.append(header(id, event.id))
        headers.append(LogHeader(name: source, value: HeaderValues.shared.value(event.source)))
        headers.append(LogHeader(name: type, value: HeaderValues.shared.value(event.type)))
        if let subject = event.subject { headers.append(header(Self.subject, subject)) }
        headers.append(LogHeader(name: time, value: Timestamp.formatData(event.time)))
        headers.append(
            LogHeader(
                name: contentType,
                value: event.dataContentType == "application/json" ? jsonContentType : utf8(event.dataContentType)))
        if let value = event.correlationId { headers.append(header(correlationId, value)) }
        if let value = event.causationId { headers.append(header(causationId, value)) }
        return OutgoingRecord(
            topic: topic, key: (key ?? event.subject).map(utf8), value: event.data, headers: headers,
            timestamp: event.time)
    }

    /// `application/json`'s bytes, shared by every record that has it (the usual content type).
    private static let jsonContentType = Data("application/json".utf8)

    /// The headers of ``record(for:topic:key:)`` for `event`, in their order, each as its name
    /// and text: for a record made otherwise that must carry the same headers (a dead letter's
    /// values written into one buffer, `Bus.DeadLetter`).
    /// - Parameter time: the event's time as ``Timestamp/format(_:)`` writes it (`ce_time`).
    @inlinable
    public static func forEachHeader(of event: Event, time: String, _ body: (_ name: String, _ text: String) -> Void) {
        body(specVersion, event.specVersion)
        body(id, event.id)
        body(source, event.source)
        body(type, event.type)
        if let subject = event.subject { body(Self.subject, subject) }
        body(Self.time, time)
        body(contentType, event.dataContentType)
        if let value = event.correlationId { body(correlationId, value) }
        if let value = event.causationId { body(causationId, value) }
    }

    /// A text header, its bytes copied in one go (`Data(text.utf8)` copies byte by byte).
    private static func header(_ name: String, _ text: String) -> LogHeader {
        LogHeader(name: name, value: utf8(text))
    }

    static func utf8(_ text: String) -> Data {
        var text = text
        return text.withUTF8 { bytes in bytes.isEmpty ? Data() : Data(bytes: bytes.baseAddress!, count: bytes.count) }
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
        // An attribute given twice with different values is ambiguous (which id, which type?):
        // refused, naming it, rather than taking the first (issue 12's hostile inputs).
        for (index, header) in record.headers.enumerated() where header.name.hasPrefix("ce_") {
            if record.headers[..<index].contains(where: { $0.name == header.name && $0.value != header.value }) {
                throw BindingError(
                    position: record.position, header: header.name, problem: "is given twice with different values")
            }
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
    /// Milliseconds since 1970, truncated (rounded down, as Kafka clients and Java's
    /// `Instant.toEpochMilli` do): 10:30:00.9997 is 10:30:00.999. A `Date` holds a `Double`, so a
    /// time written with whole milliseconds can come back a hair below them (…122.99999 ms): within
    /// a microsecond below a whole millisecond counts as that millisecond. The embedded log stamps
    /// its records the same way, so a record's timestamp and its `ce_time` always agree.
    public static func milliseconds(_ date: Date) -> Int64 { date.millisecondsSince1970 }

    /// `2024-01-15T08:30:00.000Z`. Computed directly (civil-from-days), because it runs for every
    /// record published and Foundation's formatters cost tens of microseconds a call.
    public static func format(_ date: Date) -> String {
        String(unsafeUninitializedCapacity: 32) { write(date, into: $0) }
    }

    /// ``format(_:)``'s text as UTF-8 bytes, written straight into the `Data` (a header's value)
    /// rather than into a `String` first and copied.
    public static func formatData(_ date: Date) -> Data {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { buffer in
            Data(bytes: buffer.baseAddress!, count: write(date, into: buffer))
        }
    }

    /// Writes ``format(_:)``'s text into `buffer` (32 bytes hold it for every year a count of
    /// milliseconds in an `Int64` reaches: nine digits and a sign) and gives its length.
    private static func write(_ date: Date, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        let (year, month, day, dayMilliseconds) = split(milliseconds(date))
        var index = 0
        write(year, month, day, seconds: dayMilliseconds / 1000, into: buffer, at: &index)
        buffer[index] = UInt8(ascii: ".")
        index += 1
        put(dayMilliseconds % 1000, 3, buffer, &index)
        buffer[index] = UInt8(ascii: "Z")
        return index + 1
    }

    /// `2024-01-15T08:30:00+08:00`: whole seconds (truncated) at a fixed offset from UTC, always
    /// written as a number (`+00:00` for UTC).
    /// - Parameter offsetMinutes: minutes east of UTC (480 for China Standard Time).
    public static func format(_ date: Date, offsetMinutes: Int) -> String {
        let (year, month, day, dayMilliseconds) = split(milliseconds(date) + Int64(offsetMinutes) * 60_000)
        return String(unsafeUninitializedCapacity: 32) { buffer in
            var index = 0
            write(year, month, day, seconds: dayMilliseconds / 1000, into: buffer, at: &index)
            buffer[index] = offsetMinutes < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+")
            index += 1
            put(Int64(abs(offsetMinutes) / 60), 2, buffer, &index)
            buffer[index] = UInt8(ascii: ":")
            index += 1
            put(Int64(abs(offsetMinutes) % 60), 2, buffer, &index)
            return index
        }
    }

    /// The calendar day of a count of milliseconds since 1970 and the milliseconds into that day.
    private static func split(_ milliseconds: Int64) -> (year: Int64, month: Int64, day: Int64, dayMilliseconds: Int64) {
        let days = milliseconds >= 0 ? milliseconds / 86_400_000 : (milliseconds - 86_399_999) / 86_400_000
        let (year, month, day) = civil(days)
        return (year, month, day, milliseconds - days * 86_400_000)
    }

    /// `YYYY-MM-DDTHH:MM:SS` into `buffer` from `index` (years outside 0…9999 take more digits).
    private static func write(
        _ year: Int64, _ month: Int64, _ day: Int64, seconds: Int64, into buffer: UnsafeMutableBufferPointer<UInt8>,
        at index: inout Int
    ) {
        var year = year
        if year < 0 {
            buffer[index] = UInt8(ascii: "-")
            index += 1
            year = -year
        }
        let width = year >= 10_000 ? String(year).utf8.count : 4
        put(year, width, buffer, &index)
        buffer[index] = UInt8(ascii: "-")
        index += 1
        put(month, 2, buffer, &index)
        buffer[index] = UInt8(ascii: "-")
        index += 1
        put(day, 2, buffer, &index)
        buffer[index] = UInt8(ascii: "T")
        index += 1
        put(seconds / 3600, 2, buffer, &index)
        buffer[index] = UInt8(ascii: ":")
        index += 1
        put(seconds / 60 % 60, 2, buffer, &index)
        buffer[index] = UInt8(ascii: ":")
        index += 1
        put(seconds % 60, 2, buffer, &index)
    }

    /// Writes `value` (not negative) in exactly `width` digits at `index`, and moves `index` past them.
    private static func put(_ value: Int64, _ width: Int, _ buffer: UnsafeMutableBufferPointer<UInt8>, _ index: inout Int) {
        var value = value
        var position = index + width - 1
        while position >= index {
            buffer[position] = UInt8(ascii: "0") + UInt8(value % 10)
            value /= 10
            position -= 1
        }
        index += width
    }

    /// The proleptic Gregorian year, month and day of a day count from 1970-01-01 (CivilTime's).
    static func civil(_ daysSince1970: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let (year, month, day) = CivilDate.civil(daysSinceEpoch: Int(daysSince1970))
        return (Int64(year), Int64(month), Int64(day))
    }

    /// Days from 1970-01-01 to a valid day: the inverse of ``civil(_:)`` (CivilTime's).
    static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        Int64(CivilDate.daysSinceEpoch(year: Int(year), month: Int(month), day: Int(day)))
    }

    /// Parses RFC 3339 with or without fractional seconds, with `Z` or a numeric offset.
    ///
    /// The forms OneWindow writes (`2024-01-15T08:30:00Z`, `…00.123Z`, `…00+08:00`) are read
    /// directly; anything else goes to Foundation's ISO 8601 parser, which decides.
    public static func parse(_ text: String) -> Date? {
        if let date = parseCommon(text) { return date }
        // Foundation's parser rolls a day the calendar lacks over (a `ce_time` of 2025-02-30 was read
        // as 2025-03-02 by the orchestrator: issue 12's hostile inputs): such a time is no time.
        guard let day = CivilDate(String(text.prefix(10))), day.description == String(text.prefix(10)) else { return nil }
        // It rolls a time of day the clock lacks over too (24:30, 10:60, a 61st second — a leap
        // second as well, which RFC 3339 allows but no clock here keeps): such a time is no time.
        guard Self.timeOfDayIsReal(text) else { return nil }
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try? Date.ISO8601FormatStyle().parse(text)
    }

    /// Whether the `HH:MM:SS` after the date (characters 11 to 18), where it is written so, is a
    /// time a clock shows: hours below 24, minutes and seconds below 60. Other shapes are left to
    /// Foundation's parser, which refuses them.
    static func timeOfDayIsReal(_ text: String) -> Bool {
        let bytes = Array(text.utf8.prefix(19))
        guard bytes.count == 19, bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":") else { return true }
        func number(_ start: Int) -> Int? {
            let tens = bytes[start] &- UInt8(ascii: "0"), ones = bytes[start + 1] &- UInt8(ascii: "0")
            return tens < 10 && ones < 10 ? Int(tens) * 10 + Int(ones) : nil
        }
        guard let hour = number(11), let minute = number(14), let second = number(17) else { return true }
        return hour < 24 && minute < 60 && second < 60
    }

    /// `YYYY-MM-DDTHH:MM:SS[.f…](Z|±HH:MM)` with a real calendar day, hours below 24, minutes and
    /// seconds below 60, an offset below 24 hours; `nil` for anything else.
    static func parseCommon(_ text: String) -> Date? {
        var text = text
        return text.withUTF8 { bytes -> Date? in
            func number(_ start: Int, _ count: Int) -> Int64? {
                var value: Int64 = 0
                for index in start..<start + count {
                    let digit = bytes[index] &- UInt8(ascii: "0")
                    guard digit < 10 else { return nil }
                    value = value * 10 + Int64(digit)
                }
                return value
            }
            guard bytes.count >= 20, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
                bytes[10] == UInt8(ascii: "T"), bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
                let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
                let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
                year >= 1, CivilDate.isValid(year: Int(year), month: Int(month), day: Int(day)),
                hour < 24, minute < 60, second < 60
            else { return nil }
            var index = 19
            var fraction: Int64 = 0
            var scale: Int64 = 1
            if bytes[index] == UInt8(ascii: ".") {
                index += 1
                let first = index
                while index < bytes.count, bytes[index] &- UInt8(ascii: "0") < 10, index - first < 9 {
                    fraction = fraction * 10 + Int64(bytes[index] &- UInt8(ascii: "0"))
                    scale *= 10
                    index += 1
                }
                guard index > first, index < bytes.count else { return nil }
                guard bytes[index] &- UInt8(ascii: "0") >= 10 else { return nil }  // more than 9 digits: Foundation's
            }
            var offsetSeconds: Int64 = 0
            if bytes[index] == UInt8(ascii: "Z") {
                guard index + 1 == bytes.count else { return nil }
            } else {
                guard bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-"), index + 6 == bytes.count,
                    bytes[index + 3] == UInt8(ascii: ":"), let hours = number(index + 1, 2), hours < 24,
                    let minutes = number(index + 4, 2), minutes < 60
                else { return nil }
                offsetSeconds = (hours * 60 + minutes) * 60 * (bytes[index] == UInt8(ascii: "-") ? -1 : 1)
            }
            let seconds =
                days(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
            // Up to microseconds, one exact integer divided once: `…40.999Z` is the same `Date` as
            // 1705300000999 milliseconds, so the log's timestamp and `ce_time` compare equal.
            if scale <= 1_000_000, abs(seconds) < 4_000_000_000 {
                return Date(timeIntervalSince1970: Double(seconds * scale + fraction) / Double(scale))
            }
            return Date(timeIntervalSince1970: Double(seconds) + Double(fraction) / Double(scale))
        }
    }
}

/// The header values that repeat from record to record (`ce_source`, `ce_type`), each kept as
/// one `Data` that every record shares instead of two allocations per header per record (issue 9's
/// relay profile). At most ``capacity`` texts are kept, found by comparing the text with each (a
/// publisher's source and the catalog's types: a few dozen; no hashing); a text beyond them is
/// copied as before. Ids, subjects and times are never kept.
final class HeaderValues: Sendable {
    static let shared = HeaderValues(capacity: 64)
    let capacity: Int
    private let values = Mutex<[(text: String, bytes: Data)]>([])

    init(capacity: Int) { self.capacity = capacity }

    /// The text's UTF-8 bytes: the kept `Data`, or a new one (kept while there is room).
    func value(_ text: String) -> Data {
        let kept = values.withLock { values -> Data? in
            for entry in values where entry.text == text { return entry.bytes }
            return nil
        }
        if let kept { return kept }
        let made = CloudEventsBinding.utf8(text)
        values.withLock { values in
            if values.count < capacity, !values.contains(where: { $0.text == text }) { values.append((text, made)) }
        }
        return made
    }

    /// How many texts are kept.
    var count: Int { values.withLock { $0.count } }
}
