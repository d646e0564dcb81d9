import CivilTime
import EventLog
import Foundation
import Testing

@Suite struct CivilDateTests {
    @Test(arguments: [(1900, false), (2000, true), (2024, true), (2025, false), (2100, false), (2400, true)])
    func leapYears(year: Int, leap: Bool) {
        #expect(CivilDate.isLeapYear(year) == leap)
        #expect(CivilDate.daysIn(year: year, month: 2) == (leap ? 29 : 28))
        #expect((CivilDate(year: year, month: 2, day: 29) != nil) == leap)
        #expect(CivilDate("\(year)-02-29").map { $0.adding(days: 1).description } == (leap ? "\(year)-03-01" : nil))
    }

    @Test func datesParseAndPrint() {
        #expect(CivilDate("2025-09-30")!.weekday == 2)
        #expect(CivilDate("20251011")!.weekday == 6)
        #expect(CivilDate("20240231") == nil)
        #expect(CivilDate("2025-13-01") == nil)
        #expect(CivilDate("2025-00-10") == nil)
        #expect(CivilDate("2025-1-01") == nil)
        #expect(CivilDate("abc") == nil)
        #expect(CivilDate("2024-12-31")!.adding(days: 1).description == "2025-01-01")
        #expect(CivilDate("2025-03-01")!.adding(days: -1).description == "2025-02-28")
        #expect(CivilDate("2024-03-01")!.adding(days: -1).compact == "20240229")
        #expect(CivilDate(daysSinceEpoch: 0).description == "1970-01-01")
        #expect(CivilDate(daysSinceEpoch: -1).description == "1969-12-31")
        #expect(CivilDate("2026-02-13")!.days(until: CivilDate("2026-02-24")!) == 11)
    }

    @Test func dayNumbersRoundTripOverFourCenturies() {
        // 1900-01-01 to 2300-01-01, every day: the day number and the date agree both ways.
        var previous = CivilDate(year: 1899, month: 12, day: 31)!
        for number in CivilDate("1900-01-01")!.daysSinceEpoch...CivilDate("2300-01-01")!.daysSinceEpoch {
            let date = CivilDate(daysSinceEpoch: number)
            #expect(date.daysSinceEpoch == number)
            #expect(previous < date)
            #expect(date.weekday == (previous.weekday % 7) + 1)
            previous = date
        }
    }

    @Test func codableAsISOText() throws {
        let data = try JSONEncoder().encode([CivilDate("2026-02-14")!])
        #expect(String(decoding: data, as: UTF8.self) == #"["2026-02-14"]"#)
        #expect(try JSONDecoder().decode([CivilDate].self, from: data) == [CivilDate("2026-02-14")!])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([CivilDate].self, from: Data(#"["2026-02-30"]"#.utf8)) }
    }
}

@Suite struct ChinaTimeTests {
    @Test func dayBoundaries() throws {
        // Midnight in China is 16:00 UTC the day before.
        let midnight = try #require(ChinaTime.parse("2026-01-01T00:00:00+08:00"))
        #expect(midnight == Date(timeIntervalSince1970: 1_767_196_800))
        #expect(ChinaTime.date(at: midnight).description == "2026-01-01")
        #expect(ChinaTime.date(at: midnight.addingTimeInterval(-0.001)).description == "2025-12-31")
        #expect(ChinaTime.local(midnight.addingTimeInterval(-1)) == "2025-12-31 23:59:59")
        #expect(ChinaTime.date(at: try #require(ChinaTime.parse("2025-09-30T16:30:00Z"))).description == "2025-10-01")
        #expect(ChinaTime.date(at: try #require(ChinaTime.parse("2025-09-30T15:59:59Z"))).description == "2025-09-30")
        // Before 1970: the day still starts at 00:00 China time.
        #expect(ChinaTime.local(Date(timeIntervalSince1970: -1)) == "1970-01-01 07:59:59")
        #expect(ChinaTime.local(Date(timeIntervalSince1970: -28_800.5)) == "1969-12-31 23:59:59")
    }

    @Test func instantsAndWallClockTimes() throws {
        let time = try #require(CivilDateTime(date: CivilDate("2026-02-14")!, hour: 9))
        let instant = ChinaTime.instant(of: time)
        #expect(ChinaTime.rfc3339(instant) == "2026-02-14T09:00:00+08:00")
        #expect(ChinaTime.dateTime(at: instant) == time)
        #expect(ChinaTime.dateTime(at: instant.addingTimeInterval(0.999)) == time, "fractions are dropped")
        #expect(CivilDate("2026-02-14")!.chinaTime(hour: 9) == instant)
        #expect(ChinaTime.parse("2026-02-14 09:00:00") == instant)
        #expect(ChinaTime.parse("2026-02-14 24:00:00") == nil)
        #expect(ChinaTime.parse("2026-02-30 09:00:00") == nil)
        #expect(CivilDateTime(date: CivilDate("2026-02-14")!, hour: 23, minute: 60) == nil)
        #expect(ChinaTime.timeZone.secondsFromGMT(for: instant) == 8 * 3600)
        // No daylight saving: the offset is the same in July.
        #expect(ChinaTime.timeZone.secondsFromGMT(for: ChinaTime.parse("2026-07-01 12:00:00")!) == 8 * 3600)
    }
}

@Suite struct DurationTests {
    @Test func millisecondsRoundUpAndKeepTheFraction() {
        #expect(Duration.milliseconds(500).milliseconds == 500)
        #expect(Duration.seconds(1.5).milliseconds == 1500)
        #expect(Duration.seconds(10).milliseconds == 10_000)
        #expect(Duration.microseconds(200).milliseconds == 1, "a positive wait never becomes 0")
        #expect(Duration.microseconds(1_000_001).milliseconds == 1001)
        #expect(Duration.microseconds(-200).milliseconds == 0)
        #expect(Duration.milliseconds(-1500).milliseconds == -1500)
        #expect(Duration.zero.milliseconds == 0)
        #expect(Duration.seconds(1.5).seconds == 1.5)
        #expect(Duration.milliseconds(-250).seconds == -0.25)
    }

    @Test func recordTimestampsTruncateToTheMillisecond() {
        #expect(Date(timeIntervalSince1970: 1_705_314_600.9997).millisecondsSince1970 == 1_705_314_600_999)
        #expect(Date(timeIntervalSince1970: 1_705_314_600.122_999_999).millisecondsSince1970 == 1_705_314_600_123)
        #expect(Date(timeIntervalSince1970: -0.0005).millisecondsSince1970 == -1)
        #expect(Date(millisecondsSince1970: 1_705_314_600_999).millisecondsSince1970 == 1_705_314_600_999)
    }

    @Test func retentionInMilliseconds() {
        let topic = TopicSpec(name: "t", partitions: 1, cleanup: .delete(retention: .milliseconds(1500)))
        #expect(topic.retentionMilliseconds == 1500)
        #expect(TopicSpec(name: "t", partitions: 1, cleanup: .delete(retention: .seconds(0.5))).retentionMilliseconds == 500)
    }
}
