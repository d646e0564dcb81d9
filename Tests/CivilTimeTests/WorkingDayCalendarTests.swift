import CivilTime
import Foundation
import Testing

/// The repository's `Rules/calendar.yaml`, found from this file's path.
let rulesCalendar = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Rules/calendar.yaml")

func day(_ text: String) -> CivilDate { CivilDate(text)! }

@Suite struct WorkingDayCalendarTests {
    let calendar: WorkingDayCalendar

    init() throws {
        calendar = try WorkingDayCalendar.load(from: rulesCalendar)
    }

    @Test func coversTwentyTwentyFiveToTwentyTwentySeven() {
        #expect(calendar.years == [2025, 2026, 2027])
        #expect(calendar.yearsDescription == "2025–2027")
        #expect(calendar.provisionalYears == [2027], "2027's notice is not in the file yet")
        #expect(calendar.movedWorkingDays.allSatisfy { $0.isWeekend })
        #expect(calendar.holidays.isDisjoint(with: calendar.movedWorkingDays))
        // The notices' day counts: 2025 has 28 holiday days (some on weekends), 2026 has 33.
        #expect(calendar.holidays.filter { $0.year == 2025 }.count == 28)
        #expect(calendar.holidays.filter { $0.year == 2026 }.count == 33)
        #expect(calendar.movedWorkingDays.filter { $0.year == 2025 }.count == 5)
        #expect(calendar.movedWorkingDays.filter { $0.year == 2026 }.count == 6)
    }

    @Test func springFestival2026() throws {
        // 2-15 (Sun) to 2-23 (Mon) off; Saturdays 2-14 and 2-28 are working days.
        #expect(try calendar.isWorkingDay(day("2026-02-13")))
        #expect(try calendar.isWorkingDay(day("2026-02-14")))
        for date in 15...23 {
            #expect(try !calendar.isWorkingDay(CivilDate(year: 2026, month: 2, day: date)!), "2026-02-\(date)")
        }
        #expect(try calendar.isWorkingDay(day("2026-02-24")))
        #expect(try !calendar.isWorkingDay(day("2026-02-21")), "a Saturday inside the holiday")
        #expect(try calendar.isWorkingDay(day("2026-02-28")))
        #expect(try !calendar.isWorkingDay(day("2026-03-01")), "an ordinary Sunday")
        #expect(try calendar.addingWorkingDays(1, to: day("2026-02-13")) == day("2026-02-14"))
        #expect(try calendar.addingWorkingDays(2, to: day("2026-02-13")) == day("2026-02-24"))
        // 2-24 to 2-27 (Tue–Fri), then Saturday 2-28, then Monday 3-02.
        #expect(try calendar.addingWorkingDays(4, to: day("2026-02-14")) == day("2026-02-27"))
        #expect(try calendar.addingWorkingDays(5, to: day("2026-02-14")) == day("2026-02-28"))
        #expect(try calendar.addingWorkingDays(6, to: day("2026-02-14")) == day("2026-03-02"))
        #expect(try calendar.addingWorkingDays(-1, to: day("2026-02-24")) == day("2026-02-14"))
        #expect(try calendar.workingDays(after: day("2026-02-13"), through: day("2026-02-28")) == 6)
        #expect(try calendar.workingDays(after: day("2026-02-28"), through: day("2026-02-13")) == 0)
    }

    @Test func nationalDay2026() throws {
        // 10-01 to 10-07 off; Sunday 9-20 and Saturday 10-10 are working days; Mid-Autumn 9-25 to 9-27 before.
        #expect(try calendar.isWorkingDay(day("2026-09-20")))
        #expect(try !calendar.isWorkingDay(day("2026-09-25")), "Mid-Autumn, a Friday")
        #expect(try !calendar.isWorkingDay(day("2026-10-01")))
        #expect(try !calendar.isWorkingDay(day("2026-10-07")))
        #expect(try calendar.isWorkingDay(day("2026-10-08")))
        #expect(try calendar.isWorkingDay(day("2026-10-10")))
        #expect(try !calendar.isWorkingDay(day("2026-10-11")))
        // Received Friday 9-18: Sunday 9-20, 9-21 to 9-24, (9-25 to 9-27 off) 9-28 to 9-30,
        // (10-01 to 10-07 off) 10-08, 10-09, Saturday 10-10, (Sunday) Monday 10-12.
        #expect(try calendar.addingWorkingDays(1, to: day("2026-09-18")) == day("2026-09-20"))
        #expect(try calendar.addingWorkingDays(5, to: day("2026-09-18")) == day("2026-09-24"))
        #expect(try calendar.addingWorkingDays(6, to: day("2026-09-18")) == day("2026-09-28"))
        #expect(try calendar.addingWorkingDays(8, to: day("2026-09-18")) == day("2026-09-30"))
        #expect(try calendar.addingWorkingDays(9, to: day("2026-09-18")) == day("2026-10-08"))
        #expect(try calendar.addingWorkingDays(11, to: day("2026-09-18")) == day("2026-10-10"))
        #expect(try calendar.addingWorkingDays(12, to: day("2026-09-18")) == day("2026-10-12"))
        #expect(try calendar.workingDays(after: day("2026-09-30"), through: day("2026-10-10")) == 3)
    }

    @Test func nationalDay2025() throws {
        #expect(try calendar.isWorkingDay(day("2025-09-28")))
        #expect(try !calendar.isWorkingDay(day("2025-10-08")))
        #expect(try calendar.addingWorkingDays(3, to: day("2025-09-30")) == day("2025-10-11"))
    }

    @Test func dueDateCountsFromTheChinaDayOfReceipt() throws {
        // 16:30 UTC on Friday 2-13 is already Saturday 2-14 in China, a working day: 2 working
        // days after it is 2-25 (2-24, 2-25); a second before 16:00 UTC it is still Friday: 2-24.
        let lateFriday = try #require(ChinaTime.parse("2026-02-13T16:30:00Z"))
        #expect(try calendar.dueDate(receivedAt: lateFriday, workingDays: 2) == day("2026-02-25"))
        let earlyFriday = try #require(ChinaTime.parse("2026-02-13T15:59:59Z"))
        #expect(try calendar.dueDate(receivedAt: earlyFriday, workingDays: 2) == day("2026-02-24"))
    }

    @Test func aDateOutsideTheDataThrowsNamingItAndTheYears() throws {
        for outside in ["2024-12-31", "2028-01-03"] {
            let error = try #require(throws: WorkingDayCalendarError.self) { try calendar.isWorkingDay(day(outside)) }
            #expect(error.code == .outsideData)
            #expect(error.date == day(outside))
            #expect(error.description.contains(outside) && error.description.contains("2025–2027"), "\(error)")
        }
        // Counting past the end of the data is the same error, on the first day not covered.
        let error = try #require(throws: WorkingDayCalendarError.self) {
            try calendar.addingWorkingDays(5, to: day("2027-12-29"))
        }
        #expect(error.date == day("2028-01-01"))
        #expect(throws: WorkingDayCalendarError.self) {
            try calendar.workingDays(after: day("2024-12-30"), through: day("2025-01-03"))
        }
    }
}

@Suite struct CalendarFileTests {
    @Test func readsHolidayRangesAndMovedWorkingDays() throws {
        let calendar = try WorkingDayCalendar(
            yaml: """
                years:
                  2026:
                    notice: test
                    holidays:
                      - name: National Day
                        off: 2026-10-01 to 2026-10-07
                        work: [2026-09-20, 2026-10-10]
                      - name: New Year
                        off: 2026-01-01
                        work: 2026-01-04
                """)
        #expect(calendar.holidays.count == 8)
        #expect(calendar.movedWorkingDays == [day("2026-09-20"), day("2026-10-10"), day("2026-01-04")])
        #expect(calendar.provisionalYears.isEmpty)
        #expect(calendar.years == [2026])
    }

    @Test(arguments: [
        ("years:\n  2026:\n    notice: x\n    holidays:\n      - name: A\n        of: 2026-10-01\n", 6, "did you mean off?"),
        ("years:\n  2026:\n    notice: x\n    holidays:\n      - name: A\n        off: 2026-10-01\n        work: [2026-10-12]\n",
         7, "2026-10-12 (A) is a Monday"),
        ("years:\n  2026:\n    notice: x\n    holidays:\n      - name: A\n        off: 2026-10-07 to 2026-10-01\n", 6, "range"),
        ("years:\n  2026:\n    notice: x\n    holidays:\n      - name: A\n        off: 2026-02-30\n", 6, "not a date"),
        ("years:\n  2026:\n    notice: x\n    holidays:\n      - name: A\n        off: 2062-10-01\n", 6, "mistyped"),
        ("years:\n  26:\n    notice: x\n    holidays: []\n", 2, "not a year"),
        ("years:\n  2026:\n    holidays: []\n", 3, "missing key notice"),
        ("yeers:\n  2026: {}\n", 1, "did you mean years?"),
    ])
    func refusesWithTheLineAndTheRule(yaml: String, line: Int, message: String) {
        let error = #expect(throws: WorkingDayCalendarError.self) {
            try WorkingDayCalendar(yaml: yaml, source: "Rules/calendar.yaml")
        }
        #expect(error?.code == .invalidData)
        #expect(error?.line == line, "\(error.map(String.init(describing:)) ?? "")")
        #expect(error?.description.hasPrefix("Rules/calendar.yaml:\(line): ") == true)
        #expect(error?.description.contains(message) == true, "\(error.map(String.init(describing:)) ?? "")")
    }

    @Test func aMissingFileNamesThePath() {
        let error = #expect(throws: WorkingDayCalendarError.self) {
            try WorkingDayCalendar.load(from: URL(fileURLWithPath: "/nonexistent/calendar.yaml"))
        }
        #expect(error?.code == .unreadable)
        #expect(error?.description.contains("/nonexistent/calendar.yaml") == true)
    }

    @Test func aHolidayThatIsAlsoAWorkingDayIsRefused() {
        #expect(throws: WorkingDayCalendarError.self) {
            try WorkingDayCalendar(years: [2026], holidays: [day("2026-10-10")], movedWorkingDays: [day("2026-10-10")])
        }
    }
}
