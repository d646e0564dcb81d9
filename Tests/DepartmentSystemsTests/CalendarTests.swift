import DepartmentSystems
import Foundation
import Testing

@Suite struct CalendarTests {
    let calendar = WorkingDayCalendar.chinaOfficial

    @Test func weekdaysAndDates() {
        #expect(CalendarDate("2025-09-30")!.weekday == 2)
        #expect(CalendarDate("20251011")!.weekday == 6)
        #expect(CalendarDate("2024-02-29") != nil)
        #expect(CalendarDate("20240231") == nil)
        #expect(CalendarDate("abc") == nil)
        #expect(CalendarDate("2024-12-31")!.adding(days: 1).description == "2025-01-01")
        #expect(CalendarDate(daysSinceEpoch: 0).description == "1970-01-01")
        #expect(CalendarDate.china(china("2025-09-30T23:30:00+08:00")).description == "2025-09-30")
        #expect(CalendarDate.china(china("2025-09-30T16:30:00Z")).description == "2025-10-01")
    }

    @Test func nationalDay2025() {
        // 国庆节、中秋节: 10-01 to 10-08 off; Sunday 09-28 and Saturday 10-11 are working days.
        #expect(calendar.isWorkingDay(CalendarDate("2025-09-28")!))
        #expect(!calendar.isWorkingDay(CalendarDate("2025-10-01")!))
        #expect(!calendar.isWorkingDay(CalendarDate("2025-10-08")!))
        #expect(calendar.isWorkingDay(CalendarDate("2025-10-09")!))
        #expect(calendar.isWorkingDay(CalendarDate("2025-10-11")!))
        #expect(!calendar.isWorkingDay(CalendarDate("2025-10-12")!))
        #expect(calendar.addingWorkingDays(3, to: CalendarDate("2025-09-30")!).description == "2025-10-11")
        #expect(calendar.addingWorkingDays(1, to: CalendarDate("2025-09-26")!).description == "2025-09-28")
        #expect(calendar.workingDays(after: CalendarDate("2025-09-30")!, through: CalendarDate("2025-10-11")!) == 3)
    }

    @Test func springFestival2026() {
        #expect(calendar.isWorkingDay(CalendarDate("2026-02-14")!))
        #expect((15...23).allSatisfy { !calendar.isWorkingDay(CalendarDate(year: 2026, month: 2, day: $0)!) })
        #expect(calendar.isWorkingDay(CalendarDate("2026-02-28")!))
        #expect(calendar.addingWorkingDays(1, to: CalendarDate("2026-02-13")!).description == "2026-02-14")
        #expect(calendar.addingWorkingDays(2, to: CalendarDate("2026-02-13")!).description == "2026-02-24")
    }

    @Test func movedWorkingDaysAreWeekendsAndHolidaysAreNotWorkingDays() {
        #expect(calendar.movedWorkingDays.count == 11)
        #expect(calendar.movedWorkingDays.allSatisfy { $0.isWeekend })
        #expect(calendar.holidays.isDisjoint(with: calendar.movedWorkingDays))
        // 2025: 28 holiday days (some on weekends); 2026: 33.
        #expect(calendar.holidays.filter { $0.year == 2025 }.count == 28)
        #expect(calendar.holidays.filter { $0.year == 2026 }.count == 33)
    }

    @Test func loadsFromData() throws {
        let json = Data(#"{"holidays": ["2025-10-01", "2025-10-02"], "movedWorkingDays": ["2025-10-11"]}"#.utf8)
        let loaded = try WorkingDayCalendar.load(json: json)
        #expect(!loaded.isWorkingDay(CalendarDate("2025-10-02")!))
        #expect(loaded.isWorkingDay(CalendarDate("2025-10-03")!))
        #expect(loaded.isWorkingDay(CalendarDate("2025-10-11")!))
        #expect(throws: WorkingDayCalendarError.self) {
            try WorkingDayCalendar(holidays: ["2025-02-30"], movedWorkingDays: [])
        }
        let roundTrip = try WorkingDayCalendar.load(json: try JSONEncoder().encode(calendar))
        #expect(roundTrip == calendar)
    }
}
