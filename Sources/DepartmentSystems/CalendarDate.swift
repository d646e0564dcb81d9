import Foundation

/// A day of the Gregorian calendar, without a time or a time zone: what a department's system
/// stores as `YYYYMMDD` and what working-day arithmetic counts in.
///
/// ```swift
/// let day = CalendarDate("2025-09-30")!      // or "20250930"
/// day.weekday                                 // 2 (Tuesday; 1 is Monday, 7 is Sunday)
/// day.adding(days: 1).description             // "2025-10-01"
/// ```
public struct CalendarDate: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// The year, e.g. 2025.
    public let year: Int
    /// The month, 1…12.
    public let month: Int
    /// The day of the month, 1…31.
    public let day: Int

    /// A date, or `nil` when the day does not exist (`2024-02-31`).
    public init?(year: Int, month: Int, day: Int) {
        guard (1...12).contains(month), day >= 1, day <= CalendarDate.daysIn(year: year, month: month) else {
            return nil
        }
        self.year = year
        self.month = month
        self.day = day
    }

    /// Parses `YYYY-MM-DD` or `YYYYMMDD`; `nil` for anything else or a day that does not exist.
    public init?(_ text: String) {
        let digits = Array(text.utf8)
        let parts: (ArraySlice<UInt8>, ArraySlice<UInt8>, ArraySlice<UInt8>)
        if digits.count == 10, digits[4] == UInt8(ascii: "-"), digits[7] == UInt8(ascii: "-") {
            parts = (digits[0..<4], digits[5..<7], digits[8..<10])
        } else if digits.count == 8 {
            parts = (digits[0..<4], digits[4..<6], digits[6..<8])
        } else {
            return nil
        }
        func number(_ slice: ArraySlice<UInt8>) -> Int? {
            var value = 0
            for byte in slice {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(parts.0), let month = number(parts.1), let day = number(parts.2) else { return nil }
        self.init(year: year, month: month, day: day)
    }

    /// The day `daysSinceEpoch` days after 1970-01-01.
    public init(daysSinceEpoch days: Int) {
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }

    /// Days since 1970-01-01 (negative before).
    public var daysSinceEpoch: Int {
        // Howard Hinnant's days_from_civil.
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * ((month + 9) % 12) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The ISO weekday: 1 is Monday, 7 is Sunday.
    public var weekday: Int { ((daysSinceEpoch % 7) + 7 + 3) % 7 + 1 }

    /// Saturday or Sunday.
    public var isWeekend: Bool { weekday >= 6 }

    /// The day `days` days later (earlier when negative).
    public func adding(days: Int) -> CalendarDate { CalendarDate(daysSinceEpoch: daysSinceEpoch + days) }

    /// `2025-09-30`.
    public var description: String { "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))" }

    /// `20250930`, as department systems store dates.
    public var compact: String { "\(pad(year, 4))\(pad(month, 2))\(pad(day, 2))" }

    /// The calendar day in China (UTC+8) at an instant.
    public static func china(_ date: Date) -> CalendarDate {
        let seconds = Int((date.timeIntervalSince1970 + Double(ChinaTime.offsetSeconds)).rounded(.down))
        return CalendarDate(daysSinceEpoch: Int((Double(seconds) / 86_400).rounded(.down)))
    }

    /// The instant of a time of this day in China (UTC+8).
    public func chinaTime(hour: Int = 0, minute: Int = 0, second: Int = 0) -> Date {
        let seconds = daysSinceEpoch * 86_400 + hour * 3600 + minute * 60 + second - ChinaTime.offsetSeconds
        return Date(timeIntervalSince1970: TimeInterval(seconds))
    }

    public static func < (lhs: CalendarDate, rhs: CalendarDate) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    /// Days in a month of a year (February knows leap years).
    public static func daysIn(year: Int, month: Int) -> Int {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let date = CalendarDate(text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(text)' is not a date (YYYY-MM-DD)")
        }
        self = date
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// China Standard Time (UTC+8, no daylight saving) and the text forms department systems use.
public enum ChinaTime {
    /// +08:00 in seconds.
    public static let offsetSeconds = 8 * 3600

    /// `2025-02-17 10:05:00`: local China time, as department databases store it.
    public static func local(_ date: Date) -> String {
        let (day, seconds) = split(date)
        return "\(day) \(clock(seconds))"
    }

    /// `2025-02-17T10:05:00+08:00` (RFC 3339 with the China offset).
    public static func rfc3339(_ date: Date) -> String {
        let (day, seconds) = split(date)
        return "\(day)T\(clock(seconds))+08:00"
    }

    /// Parses RFC 3339 (any offset, optional fractional seconds) or `YYYY-MM-DD HH:MM:SS` China time.
    public static func parse(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
        let parts = text.split(separator: " ")
        guard parts.count == 2, let day = CalendarDate(String(parts[0])) else { return nil }
        let fields = parts[1].split(separator: ":").compactMap { Int($0) }
        guard fields.count == 3, (0..<24).contains(fields[0]), (0..<60).contains(fields[1]),
            (0..<60).contains(fields[2])
        else { return nil }
        return day.chinaTime(hour: fields[0], minute: fields[1], second: fields[2])
    }

    private static func split(_ date: Date) -> (CalendarDate, Int) {
        let total = Int((date.timeIntervalSince1970 + Double(offsetSeconds)).rounded(.down))
        let days = Int((Double(total) / 86_400).rounded(.down))
        return (CalendarDate(daysSinceEpoch: days), total - days * 86_400)
    }

    private static func clock(_ seconds: Int) -> String {
        "\(pad(seconds / 3600, 2)):\(pad(seconds / 60 % 60, 2)):\(pad(seconds % 60, 2))"
    }
}

/// A non-negative number left-padded with zeros (faster than `String(format:)` on Linux).
@inline(__always)
func pad(_ value: Int, _ width: Int) -> String {
    let text = String(value)
    return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
}
