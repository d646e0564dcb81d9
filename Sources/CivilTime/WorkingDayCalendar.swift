import Foundation

/// Working days in mainland China: Monday to Friday, minus the public holidays, plus the weekend
/// days moved to working days (调休上班) — as the State Council's yearly notice
/// (国务院办公厅关于部分节假日安排的通知) sets them.
///
/// The calendar is data, loaded from `Rules/calendar.yaml` (format: `Rules/README.md`), and it
/// knows which years it covers: asking about a day of another year throws
/// ``WorkingDayCalendarError`` naming the day and the years covered, rather than guessing a plain
/// Monday-to-Friday week — a due date computed over an unknown Spring Festival would be wrong by
/// a week.
///
/// ```swift
/// let calendar = try WorkingDayCalendar.load(from: URL(fileURLWithPath: "Rules/calendar.yaml"))
/// try calendar.isWorkingDay(CivilDate("2026-02-14")!)                 // true: a moved Saturday
/// try calendar.addingWorkingDays(2, to: CivilDate("2026-02-13")!)     // 2026-02-24
/// try calendar.addingWorkingDays(1, to: CivilDate("2028-01-03")!)     // throws: 2025–2027 covered
/// ```
public struct WorkingDayCalendar: Sendable, Hashable {
    /// The years whose holidays the data holds; a day of any other year is an error.
    public let years: Set<Int>
    /// Covered years whose data is not the State Council's notice yet (the statutory days only,
    /// without the bridge days and moved working days the notice adds). Replace them when the
    /// notice is published.
    public let provisionalYears: Set<Int>
    /// Public holidays, including the weekdays taken off for 调休.
    public let holidays: Set<CivilDate>
    /// Saturdays and Sundays that are working days (调休上班).
    public let movedWorkingDays: Set<CivilDate>
    /// Where the data came from (a file path), for error messages.
    public let source: String
    /// The covered days' kinds, from January 1st of the first covered year (``firstDay``, days
    /// since 1970-01-01) to December 31st of the last: 1 working, 2 off, 0 not covered (a year
    /// missing in between). Derived from the sets above, once: due dates count a few dozen days
    /// per request, and each day was three set lookups.
    private let dayKinds: [UInt8]
    private let firstDay: Int

    /// The calendar file's path from the repository root (and the default working directory of
    /// the department simulators): `Rules/calendar.yaml`.
    public static let defaultPath = "Rules/calendar.yaml"

    /// A calendar from its data.
    /// - Parameters:
    ///   - years: the years the data covers, each completely.
    ///   - holidays: days off, weekdays or not.
    ///   - movedWorkingDays: Saturdays and Sundays that are working days.
    ///   - provisionalYears: covered years whose data is not the official notice yet. Default: none.
    ///   - source: where the data came from, for error messages. Default: `"built in"`.
    /// - Throws: ``WorkingDayCalendarError`` when a moved working day is not a Saturday or Sunday,
    ///   a day is both a holiday and a working day, or a provisional year is not covered.
    public init(
        years: Set<Int>, holidays: Set<CivilDate>, movedWorkingDays: Set<CivilDate>,
        provisionalYears: Set<Int> = [], source: String = "built in"
    ) throws {
        if let weekday = movedWorkingDays.sorted().first(where: { !$0.isWeekend }) {
            throw WorkingDayCalendarError(
                .invalidData, source: source,
                "\(weekday) is a moved working day but a \(Self.weekdayName(weekday)), not a Saturday or Sunday")
        }
        if let both = holidays.intersection(movedWorkingDays).sorted().first {
            throw WorkingDayCalendarError(.invalidData, source: source, "\(both) is both a holiday and a working day")
        }
        if let year = provisionalYears.subtracting(years).sorted().first {
            throw WorkingDayCalendarError(.invalidData, source: source, "provisional year \(year) is not covered")
        }
        self.years = years
        self.holidays = holidays
        self.movedWorkingDays = movedWorkingDays
        self.provisionalYears = provisionalYears
        self.source = source
        // Up to a century (36.5 KB); years further apart are looked up in the sets as before.
        if let first = years.min(), let last = years.max(), last - first < 100 {
            let start = CivilDate.daysSinceEpoch(year: first, month: 1, day: 1)
            let end = CivilDate.daysSinceEpoch(year: last + 1, month: 1, day: 1)
            var kinds = [UInt8](repeating: 0, count: end - start)
            for offset in kinds.indices {
                let date = CivilDate(daysSinceEpoch: start + offset)
                guard years.contains(date.year) else { continue }
                kinds[offset] =
                    movedWorkingDays.contains(date) || (!holidays.contains(date) && !date.isWeekend) ? 1 : 2
            }
            dayKinds = kinds
            firstDay = start
        } else {
            dayKinds = []
            firstDay = 0
        }
    }

    /// Loads the calendar file (format: `Rules/README.md`, "The working-day calendar").
    /// - Throws: ``WorkingDayCalendarError`` (`.unreadable`) naming the path when the file cannot
    ///   be read, or (`.invalidData`) naming the file, the line and what is wrong.
    public static func load(from file: URL) throws -> WorkingDayCalendar {
        let text: String
        do {
            text = try String(contentsOf: file, encoding: .utf8)
        } catch {
            let reason = FileManager.default.fileExists(atPath: file.path) ? "\(error)" : "there is no such file"
            throw WorkingDayCalendarError(
                .unreadable, source: file.path,
                "cannot read the working-day calendar (\(reason)): it is Rules/calendar.yaml in the repository; "
                    + "run from the repository's folder, or give the rules folder (dept-sim: --rules DIR)")
        }
        return try WorkingDayCalendar(yaml: text, source: file.path)
    }

    /// A calendar from the text of a calendar file.
    /// - Parameters:
    ///   - yaml: the file's text.
    ///   - source: the file's path, for error messages. Default: `calendar.yaml`.
    /// - Throws: ``WorkingDayCalendarError`` naming the line and what is wrong.
    public init(yaml: String, source: String = "calendar.yaml") throws {
        self = try CalendarFileReader(source: source).read(yaml)
    }

    // MARK: Working days

    /// Whether people work on `date`.
    /// - Throws: ``WorkingDayCalendarError`` (`.outsideData`) when `date`'s year is not covered.
    public func isWorkingDay(_ date: CivilDate) throws -> Bool {
        try isWorkingDay(daysSinceEpoch: date.daysSinceEpoch, date)
    }

    /// ``isWorkingDay(_:)`` of the day `days` after 1970-01-01, from the table when it covers the
    /// day; `date` (that day, or `nil` to make it from `days`) only for the sets and the error.
    private func isWorkingDay(daysSinceEpoch days: Int, _ date: CivilDate? = nil) throws -> Bool {
        let offset = days - firstDay
        if offset >= 0, offset < dayKinds.count, dayKinds[offset] != 0 { return dayKinds[offset] == 1 }
        let date = date ?? CivilDate(daysSinceEpoch: days)
        guard years.contains(date.year) else { throw outside(date) }
        if movedWorkingDays.contains(date) { return true }
        if holidays.contains(date) { return false }
        return !date.isWeekend
    }

    /// The `count`-th working day after `date`, not counting `date` itself (before it when `count`
    /// is negative); `date` when `count` is 0.
    /// - Throws: ``WorkingDayCalendarError`` (`.outsideData`) naming the first day counted whose
    ///   year is not covered.
    public func addingWorkingDays(_ count: Int, to date: CivilDate) throws -> CivilDate {
        let step = count < 0 ? -1 : 1
        var day = date.daysSinceEpoch
        var remaining = abs(count)
        while remaining > 0 {
            day += step
            if try isWorkingDay(daysSinceEpoch: day) { remaining -= 1 }
        }
        return CivilDate(daysSinceEpoch: day)
    }

    /// The working days in `(start, end]`: after `start`, up to and including `end`; 0 when `end`
    /// is not after `start`.
    /// - Throws: ``WorkingDayCalendarError`` (`.outsideData`) when a day in between is not covered.
    public func workingDays(after start: CivilDate, through end: CivilDate) throws -> Int {
        guard start < end else { return 0 }
        var count = 0
        let last = end.daysSinceEpoch
        var day = start.daysSinceEpoch + 1
        while day <= last {
            if try isWorkingDay(daysSinceEpoch: day) { count += 1 }
            day += 1
        }
        return count
    }

    /// The day something received at `instant` is due when it has `workingDays` working days: the
    /// `workingDays`-th working day after the day (China time) it was received. A request received
    /// on Friday or Saturday with 1 working day is due on Monday, when Monday is a working day.
    /// - Throws: ``WorkingDayCalendarError`` (`.outsideData`) when a day counted is not covered.
    public func dueDate(receivedAt instant: Date, workingDays: Int) throws -> CivilDate {
        try addingWorkingDays(workingDays, to: ChinaTime.date(at: instant))
    }

    /// The covered years as a reader wants them: `2025–2027`, or `2025, 2027` with a gap.
    public var yearsDescription: String {
        let sorted = years.sorted()
        guard let first = sorted.first, let last = sorted.last else { return "no year" }
        if sorted.count > 1, last - first + 1 == sorted.count { return "\(first)–\(last)" }
        return sorted.map(String.init).joined(separator: ", ")
    }

    private func outside(_ date: CivilDate) -> WorkingDayCalendarError {
        WorkingDayCalendarError(
            .outsideData, source: source, date: date,
            "\(date) is outside the working-day calendar, which covers \(yearsDescription): add \(date.year)'s "
                + "holidays and moved working days from the State Council's notice to \(source)")
    }

    static func weekdayName(_ date: CivilDate) -> String {
        ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"][date.weekday - 1]
    }
}

/// A working-day calendar that cannot be loaded, or a day it does not cover.
public struct WorkingDayCalendarError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Kind: String { case outsideData, invalidData, unreadable }
        private let kind: Kind
        private init(_ kind: Kind) { self.kind = kind }

        /// A day whose year the calendar does not cover.
        public static let outsideData = Code(.outsideData)
        /// A calendar file or data that breaks a rule of the format.
        public static let invalidData = Code(.invalidData)
        /// A calendar file that cannot be read.
        public static let unreadable = Code(.unreadable)

        public var description: String { kind.rawValue }
    }

    /// What kind of failure.
    public let code: Code
    /// The file (or `built in`) the calendar came from.
    public let source: String
    /// The line of the file, when the failure is at one.
    public let line: Int?
    /// The day asked about, for `.outsideData`.
    public let date: CivilDate?
    /// What is wrong and what to do.
    public let reason: String

    init(_ code: Code, source: String, line: Int? = nil, date: CivilDate? = nil, _ reason: String) {
        self.code = code
        self.source = source
        self.line = line
        self.date = date
        self.reason = reason
    }

    /// `Rules/calendar.yaml:12: …`, or the reason alone for a day outside the data.
    public var description: String {
        if code == .outsideData { return reason }
        return "\(source)\(line.map { ":\($0)" } ?? ""): \(reason)"
    }
}
