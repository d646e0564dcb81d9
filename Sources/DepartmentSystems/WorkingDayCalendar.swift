import Foundation

/// Working days in mainland China: Monday to Friday, minus the public holidays, plus the weekend
/// days moved to working days (调休) — as the State Council's yearly notice
/// (国务院办公厅关于部分节假日安排的通知) sets them.
///
/// The calendar is data: a list of holiday dates and a list of moved working days, so it loads
/// from JSON (`{"holidays": ["2025-01-01", …], "movedWorkingDays": ["2025-01-26", …]}`) and a new
/// year is an edit, not code. The orchestrator's calendar will later live in `Rules/` (the
/// department simulators then load it from there); ``chinaOfficial`` holds the 2025 and 2026
/// notices until then. Days outside the years of the data count as plain Monday–Friday weeks.
///
/// ```swift
/// let calendar = WorkingDayCalendar.chinaOfficial
/// calendar.addingWorkingDays(3, to: CalendarDate("2025-09-30")!)   // 2025-10-11, a moved Saturday
/// ```
public struct WorkingDayCalendar: Sendable, Codable, Hashable {
    /// Public holidays, including the weekdays taken off for 调休.
    public var holidays: Set<CalendarDate>
    /// Saturdays and Sundays that are working days (调休上班).
    public var movedWorkingDays: Set<CalendarDate>

    /// A calendar from its two lists.
    public init(holidays: Set<CalendarDate>, movedWorkingDays: Set<CalendarDate>) {
        self.holidays = holidays
        self.movedWorkingDays = movedWorkingDays
    }

    /// A calendar from dates written `YYYY-MM-DD`.
    /// - Throws: ``WorkingDayCalendarError`` naming the first text that is not a date.
    public init(holidays: [String], movedWorkingDays: [String]) throws {
        func parse(_ texts: [String], _ list: String) throws -> Set<CalendarDate> {
            try Set(
                texts.map { text in
                    guard let date = CalendarDate(text) else {
                        throw WorkingDayCalendarError(description: "\(list): '\(text)' is not a date (YYYY-MM-DD)")
                    }
                    return date
                })
        }
        self.init(
            holidays: try parse(holidays, "holidays"), movedWorkingDays: try parse(movedWorkingDays, "movedWorkingDays")
        )
    }

    /// Loads a calendar from JSON: `{"holidays": [...], "movedWorkingDays": [...]}`.
    /// - Throws: `DecodingError` when the JSON does not have that shape.
    public static func load(json: Data) throws -> WorkingDayCalendar {
        try JSONDecoder().decode(WorkingDayCalendar.self, from: json)
    }

    /// Whether people work on `date`.
    public func isWorkingDay(_ date: CalendarDate) -> Bool {
        if movedWorkingDays.contains(date) { return true }
        if holidays.contains(date) { return false }
        return !date.isWeekend
    }

    /// The `count`-th working day after `date` (not counting `date` itself); `date` when `count` is 0.
    public func addingWorkingDays(_ count: Int, to date: CalendarDate) -> CalendarDate {
        var day = date
        var remaining = count
        while remaining > 0 {
            day = day.adding(days: 1)
            if isWorkingDay(day) { remaining -= 1 }
        }
        return day
    }

    /// The working days in `(start, end]`: after `start`, up to and including `end`.
    public func workingDays(after start: CalendarDate, through end: CalendarDate) -> Int {
        guard start < end else { return 0 }
        var count = 0
        var day = start.adding(days: 1)
        while day <= end {
            if isWorkingDay(day) { count += 1 }
            day = day.adding(days: 1)
        }
        return count
    }

    /// The official calendars of 2025 (国办发明电〔2024〕12号) and 2026 (notice of 2025-11-04).
    public static let chinaOfficial: WorkingDayCalendar = {
        func days(_ first: String, _ last: String) -> [String] {
            let start = CalendarDate(first)!
            let end = CalendarDate(last)!
            return (0...(end.daysSinceEpoch - start.daysSinceEpoch)).map { start.adding(days: $0).description }
        }
        let holidays2025 =
            ["2025-01-01"] + days("2025-01-28", "2025-02-04") + days("2025-04-04", "2025-04-06")
            + days("2025-05-01", "2025-05-05") + days("2025-05-31", "2025-06-02") + days("2025-10-01", "2025-10-08")
        let moved2025 = ["2025-01-26", "2025-02-08", "2025-04-27", "2025-09-28", "2025-10-11"]
        let holidays2026 =
            days("2026-01-01", "2026-01-03") + days("2026-02-15", "2026-02-23") + days("2026-04-04", "2026-04-06")
            + days("2026-05-01", "2026-05-05") + days("2026-06-19", "2026-06-21") + days("2026-09-25", "2026-09-27")
            + days("2026-10-01", "2026-10-07")
        let moved2026 = ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"]
        return try! WorkingDayCalendar(holidays: holidays2025 + holidays2026, movedWorkingDays: moved2025 + moved2026)
    }()
}

/// A working-day calendar that cannot be loaded.
public struct WorkingDayCalendarError: Error, Sendable, CustomStringConvertible {
    /// What is wrong.
    public var description: String
}
