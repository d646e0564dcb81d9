import Foundation

/// China Standard Time — UTC+8 all year, no daylight saving since 1991 — and the conversions
/// between an instant and the date and time on a wall clock in China.
///
/// ```swift
/// let instant = ChinaTime.instant(of: CivilDateTime(date: CivilDate("2026-02-14")!, hour: 9)!)
/// ChinaTime.rfc3339(instant)                  // "2026-02-14T09:00:00+08:00"
/// ChinaTime.date(at: instant)                 // 2026-02-14
/// ```
public enum ChinaTime {
    /// +08:00 in seconds.
    public static let offsetSeconds = 8 * 3600

    /// The time zone, for Foundation APIs that take one (`Asia/Shanghai` without its history:
    /// a fixed +08:00, which is what it has been since 1991).
    public static let timeZone = TimeZone(secondsFromGMT: offsetSeconds)!

    /// The calendar day in China at an instant (a day starts at 00:00 China time, 16:00 UTC the
    /// day before).
    public static func date(at instant: Date) -> CivilDate { split(instant).0 }

    /// The date and time on a wall clock in China at an instant, to the second (a fraction of a
    /// second is dropped: 09:00:00.999 is 09:00:00).
    public static func dateTime(at instant: Date) -> CivilDateTime {
        let (day, seconds) = split(instant)
        return CivilDateTime(date: day, hour: seconds / 3600, minute: seconds / 60 % 60, second: seconds % 60)!
    }

    /// The instant a wall clock in China shows `dateTime`.
    public static func instant(of dateTime: CivilDateTime) -> Date {
        let seconds = dateTime.date.daysSinceEpoch * 86_400 + dateTime.secondOfDay - offsetSeconds
        return Date(timeIntervalSince1970: TimeInterval(seconds))
    }

    /// `2025-02-17 10:05:00`: local China time, as department databases store it.
    public static func local(_ instant: Date) -> String { dateTime(at: instant).description }

    /// `2025-02-17T10:05:00+08:00` (RFC 3339 with the China offset, whole seconds).
    public static func rfc3339(_ instant: Date) -> String {
        let time = dateTime(at: instant)
        guard (0...9999).contains(time.date.year) else {
            return "\(time.date)T\(pad(time.hour, 2)):\(pad(time.minute, 2)):\(pad(time.second, 2))+08:00"
        }
        // Byte by byte: every body the orchestrator emits carries a few of these.
        return String(unsafeUninitializedCapacity: 25) { buffer in
            var index = 0
            time.date.write(into: buffer, at: &index)
            buffer[index] = UInt8(ascii: "T")
            putDigits(time.hour, 2, buffer, &index, after: 1)
            buffer[index] = UInt8(ascii: ":")
            putDigits(time.minute, 2, buffer, &index, after: 1)
            buffer[index] = UInt8(ascii: ":")
            putDigits(time.second, 2, buffer, &index, after: 1)
            for byte in "+08:00".utf8 {
                buffer[index] = byte
                index += 1
            }
            return index
        }
    }

    /// Parses RFC 3339 (any offset, optional fractional seconds) or `YYYY-MM-DD HH:MM:SS` China
    /// time; `nil` for anything else.
    public static func parse(_ text: String) -> Date? {
        if let date = parseWholeSeconds(text) { return date }
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
        let parts = text.split(separator: " ")
        guard parts.count == 2, let day = CivilDate(String(parts[0])) else { return nil }
        let fields = parts[1].split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
        guard fields.count == 3, let hour = fields[0], let minute = fields[1], let second = fields[2],
            let time = CivilDateTime(date: day, hour: hour, minute: minute, second: second)
        else { return nil }
        return instant(of: time)
    }

    /// The form OneWindow writes, read without Foundation's ISO 8601 parser (tens of microseconds a
    /// call, and every decision carries a time): exactly `YYYY-MM-DDTHH:MM:SS` and `Z` or an offset
    /// `±HH:MM` of at most 14 hours, a real calendar day of the years 1583…9999 (Foundation counts
    /// earlier days on the Julian calendar), hours below 24,
    /// minutes and seconds below 60. `nil` for anything else, which ``parse(_:)`` hands to
    /// Foundation as before; the tests check both agree on what this reads.
    static func parseWholeSeconds(_ text: String) -> Date? {
        var text = text
        return text.withUTF8 { bytes -> Date? in
            guard bytes.count == 20 || bytes.count == 25 else { return nil }
            func number(_ start: Int, _ count: Int) -> Int? { ASCIIDigits.read(bytes, start, count) }
            guard bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
                bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"),
                let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
                let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
                year >= 1583, CivilDate.isValid(year: year, month: month, day: day), hour < 24, minute < 60, second < 60
            else { return nil }
            var offsetSeconds = 0
            if bytes.count == 20 {
                guard bytes[19] == UInt8(ascii: "Z") else { return nil }
            } else {
                let sign = bytes[19]
                guard sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-"), bytes[22] == UInt8(ascii: ":"),
                    let hours = number(20, 2), let minutes = number(23, 2), minutes < 60, hours * 60 + minutes <= 14 * 60
                else { return nil }
                offsetSeconds = (hours * 60 + minutes) * 60 * (sign == UInt8(ascii: "-") ? -1 : 1)
            }
            let seconds =
                CivilDate.daysSinceEpoch(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60
                + second - offsetSeconds
            return Date(timeIntervalSince1970: TimeInterval(seconds))
        }
    }

    /// The China day of an instant and the seconds since its midnight.
    private static func split(_ instant: Date) -> (CivilDate, Int) {
        let total = Int((instant.timeIntervalSince1970 + Double(offsetSeconds)).rounded(.down))
        let days = Int((Double(total) / 86_400).rounded(.down))
        return (CivilDate(daysSinceEpoch: days), total - days * 86_400)
    }
}

extension CivilDate {
    /// The calendar day in China at an instant (``ChinaTime/date(at:)``).
    public static func china(_ instant: Date) -> CivilDate { ChinaTime.date(at: instant) }

    /// The instant of a time of this day in China (UTC+8).
    /// - Precondition: `hour` 0…23, `minute` and `second` 0…59.
    public func chinaTime(hour: Int = 0, minute: Int = 0, second: Int = 0) -> Date {
        guard let time = CivilDateTime(date: self, hour: hour, minute: minute, second: second) else {
            preconditionFailure("\(hour):\(minute):\(second) is not a time of day")
        }
        return ChinaTime.instant(of: time)
    }
}
