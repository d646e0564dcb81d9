import Foundation

/// A day of the proleptic Gregorian calendar, without a time or a time zone: what a department's
/// system stores as `YYYYMMDD`, what a resident ID number holds as a birth date, and what
/// working-day arithmetic counts in.
///
/// This type holds OneWindow's only copy of the Gregorian rules (leap years, month lengths, day
/// numbers); every other module that checks or converts a date calls it.
///
/// ```swift
/// let day = CivilDate("2025-09-30")!          // or "20250930"
/// day.weekday                                 // 2 (Tuesday; 1 is Monday, 7 is Sunday)
/// day.adding(days: 1).description             // "2025-10-01"
/// CivilDate.isLeapYear(2100)                  // false
/// ```
public struct CivilDate: Hashable, Comparable, Sendable, Codable, LosslessStringConvertible {
    /// The year, e.g. 2025.
    public let year: Int
    /// The month, 1…12.
    public let month: Int
    /// The day of the month, 1…31.
    public let day: Int

    /// A date, or `nil` when the day does not exist (`2024-02-31`, month 13).
    public init?(year: Int, month: Int, day: Int) {
        guard Self.isValid(year: year, month: month, day: day) else { return nil }
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

    /// The day `days` days after 1970-01-01 (before it when negative).
    public init(daysSinceEpoch days: Int) {
        (year, month, day) = Self.civil(daysSinceEpoch: days)
    }

    /// Days since 1970-01-01 (negative before).
    public var daysSinceEpoch: Int { Self.daysSinceEpoch(year: year, month: month, day: day) }

    /// The ISO weekday: 1 is Monday, 7 is Sunday.
    public var weekday: Int { ((daysSinceEpoch % 7) + 7 + 3) % 7 + 1 }

    /// Saturday or Sunday.
    public var isWeekend: Bool { weekday >= 6 }

    /// The day `days` days later (earlier when negative).
    public func adding(days: Int) -> CivilDate { CivilDate(daysSinceEpoch: daysSinceEpoch + days) }

    /// The days from this date to `other`: 1 for the next day, negative when `other` is earlier.
    public func days(until other: CivilDate) -> Int { other.daysSinceEpoch - daysSinceEpoch }

    /// `2025-09-30` (ISO 8601).
    public var description: String {
        // Written byte by byte (a small string, no allocation): due dates are in every request and
        // progress update the orchestrator emits.
        guard (0...9999).contains(year) else { return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))" }
        return String(unsafeUninitializedCapacity: 10) { buffer in
            var index = 0
            write(into: buffer, at: &index)
            return index
        }
    }

    /// `YYYY-MM-DD` into `buffer` at `index` (a year of 0…9999), moving `index` past it.
    func write(into buffer: UnsafeMutableBufferPointer<UInt8>, at index: inout Int) {
        putDigits(year, 4, buffer, &index)
        buffer[index] = UInt8(ascii: "-")
        putDigits(month, 2, buffer, &index, after: 1)
        buffer[index] = UInt8(ascii: "-")
        putDigits(day, 2, buffer, &index, after: 1)
    }

    /// `20250930`, as department systems store dates.
    public var compact: String { "\(pad(year, 4))\(pad(month, 2))\(pad(day, 2))" }

    public static func < (lhs: CivilDate, rhs: CivilDate) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    /// Decodes `YYYY-MM-DD` (or `YYYYMMDD`) text.
    /// - Throws: `DecodingError.dataCorrupted` naming the text when it is not a date.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let date = CivilDate(text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(text)' is not a date (YYYY-MM-DD)")
        }
        self = date
    }

    /// Encodes `YYYY-MM-DD`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

// MARK: - The Gregorian rules, once

extension CivilDate {
    /// Whether `year` has a 29 February: every fourth year, except centuries not divisible by 400
    /// (2000 and 2024 are leap years; 1900 and 2100 are not).
    @inlinable
    public static func isLeapYear(_ year: Int) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    /// The days in a month of a year, 28…31; 0 for a month outside 1…12.
    @inlinable
    public static func daysIn(year: Int, month: Int) -> Int {
        switch month {
        case 1, 3, 5, 7, 8, 10, 12: 31
        case 4, 6, 9, 11: 30
        case 2: isLeapYear(year) ? 29 : 28
        default: 0
        }
    }

    /// Whether `year-month-day` is a day of the calendar (`2024-02-29` is, `2025-02-29` is not).
    @inlinable
    public static func isValid(year: Int, month: Int, day: Int) -> Bool {
        day >= 1 && day <= daysIn(year: year, month: month)
    }

    /// Days from 1970-01-01 to a valid `year-month-day` (Howard Hinnant's `days_from_civil`),
    /// for parsers that check the date themselves and need no ``CivilDate`` value.
    @inlinable
    public static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The year, month and day `days` days after 1970-01-01 (Howard Hinnant's `civil_from_days`).
    @inlinable
    public static func civil(daysSinceEpoch days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

/// A date and a time of day on a wall clock, without a time zone: `2026-02-14 09:00:00`.
/// ``ChinaTime`` turns it into an instant and back.
public struct CivilDateTime: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The day.
    public let date: CivilDate
    /// The hour, 0…23.
    public let hour: Int
    /// The minute, 0…59.
    public let minute: Int
    /// The second, 0…59 (no leap seconds, as in every system OneWindow talks to).
    public let second: Int

    /// A date and time, or `nil` when a field is out of range.
    public init?(date: CivilDate, hour: Int = 0, minute: Int = 0, second: Int = 0) {
        guard (0..<24).contains(hour), (0..<60).contains(minute), (0..<60).contains(second) else { return nil }
        self.date = date
        self.hour = hour
        self.minute = minute
        self.second = second
    }

    /// Seconds since midnight, 0…86 399.
    public var secondOfDay: Int { hour * 3600 + minute * 60 + second }

    /// `2026-02-14 09:00:00`.
    public var description: String { "\(date) \(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))" }

    public static func < (lhs: CivilDateTime, rhs: CivilDateTime) -> Bool {
        (lhs.date, lhs.secondOfDay) < (rhs.date, rhs.secondOfDay)
    }
}

/// Writes a non-negative number below 10^`width` in exactly `width` digits at `index` (after
/// skipping `after` bytes already written), and moves `index` past them.
@inline(__always)
func putDigits(
    _ value: Int, _ width: Int, _ buffer: UnsafeMutableBufferPointer<UInt8>, _ index: inout Int, after: Int = 0
) {
    index += after
    var value = value
    var position = index + width - 1
    while position >= index {
        buffer[position] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: value % 10)
        value /= 10
        position -= 1
    }
    index += width
}

/// A non-negative number left-padded with zeros (faster than `String(format:)` on Linux).
@inline(__always)
func pad(_ value: Int, _ width: Int) -> String {
    let text = String(value)
    return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
}
