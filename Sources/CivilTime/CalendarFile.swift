import ConfigFiles
import Foundation

/// Reads `Rules/calendar.yaml` through the strict reader every configuration file shares
/// (``ConfigNode``): an unknown key is refused with the nearest known one, and every problem
/// names its line.
///
/// ```yaml
/// years:
///   2026:
///     notice: 国办发明电〔2025〕7号, 2025-11-04
///     holidays:
///       - name: 春节 Spring Festival
///         off: 2026-02-15 to 2026-02-23
///         work: [2026-02-14, 2026-02-28]
/// ```
struct CalendarFileReader {
    let source: String

    func read(_ yaml: String) throws -> WorkingDayCalendar {
        do {
            return try read(ConfigNode.parse(yaml, file: source))
        } catch let error as ConfigFileError {
            let reason = error.location.isEmpty ? error.problem : "\(error.location): \(error.problem)"
            throw WorkingDayCalendarError(.invalidData, source: source, line: error.line, reason)
        }
    }

    private func read(_ root: ConfigNode) throws -> WorkingDayCalendar {
        let top = try root.mapping(keys: ["years"])
        var years = Set<Int>()
        var provisional = Set<Int>()
        var holidays = Set<CivilDate>()
        var working = Set<CivilDate>()
        for entry in try top.require("years", "one entry per year").mapping().entries {
            guard entry.key.utf8.count == 4, let year = Int(entry.key), year >= 1900 else {
                throw entry.keyNode.fail("`\(entry.key)` is not a year (four digits, 1900 or later)")
            }
            years.insert(year)
            let fields = try entry.value.mapping(keys: ["notice", "provisional", "holidays"])
            _ = try fields.string("notice", "the State Council notice the dates come from")
            if try fields.optionalBool("provisional") == true { provisional.insert(year) }
            for item in try fields.require("holidays", "a list").list() {
                let holiday = try item.mapping(keys: ["name", "off", "work"])
                let name = try holiday.string("name")
                let off = try holiday.require("off", "the days off")
                for day in try range(off, of: name) {
                    try near(day, year, off)
                    holidays.insert(day)
                }
                guard let work = holiday["work"] else { continue }
                for node in (try? work.list()) ?? [work] {
                    let day = try date(node, "a working day of \(name)")
                    try near(day, year, node)
                    guard day.isWeekend else {
                        let weekday = WorkingDayCalendar.weekdayName(day)
                        throw node.fail("\(day) (\(name)) is a \(weekday): a moved working day is a Saturday or Sunday")
                    }
                    working.insert(day)
                }
            }
        }
        if let both = holidays.intersection(working).sorted().first {
            throw ConfigFileError(
                file: source, location: "", problem: "\(both) is both a holiday (`off:`) and a working day (`work:`)")
        }
        return try WorkingDayCalendar(
            years: years, holidays: holidays, movedWorkingDays: working, provisionalYears: provisional, source: source)
    }

    /// `2026-02-15`, or `2026-02-15 to 2026-02-23` (both ends included, at most 31 days).
    private func range(_ node: ConfigNode, of name: String) throws -> [CivilDate] {
        let text = try node.string()
        let ends = text.components(separatedBy: " to ")
        guard ends.count <= 2, let first = CivilDate(ends[0].trimmingCharacters(in: .whitespaces)),
            let last = CivilDate(ends[ends.count - 1].trimmingCharacters(in: .whitespaces))
        else {
            throw node.fail("\(name): `\(text)` is not a date (YYYY-MM-DD) or `YYYY-MM-DD to YYYY-MM-DD`")
        }
        let days = first.days(until: last) + 1
        guard (1...31).contains(days) else {
            throw node.fail("\(name): `\(text)` is not a range of 1 to 31 days (is the order right?)")
        }
        return (0..<days).map { first.adding(days: $0) }
    }

    private func date(_ node: ConfigNode, _ what: String) throws -> CivilDate {
        let text = try node.string()
        guard let day = CivilDate(text) else { throw node.fail("\(what): `\(text)` is not a date (YYYY-MM-DD)") }
        return day
    }

    /// A notice's dates fall in its year, or at most in the days around New Year next to it.
    private func near(_ day: CivilDate, _ year: Int, _ node: ConfigNode) throws {
        guard abs(day.year - year) <= 1 else { throw node.fail("\(day) is listed under \(year): is the year mistyped?") }
    }
}
