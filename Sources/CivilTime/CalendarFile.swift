import Foundation
import Yams

/// Reads `Rules/calendar.yaml`: strict (an unknown key is refused with the nearest known one),
/// with the line of every problem.
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
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: yaml) else { throw problem(nil, "the file is empty") }
            root = node
        } catch let error as WorkingDayCalendarError {
            throw error
        } catch let error as YamlError {
            throw problem(nil, "not YAML: \(error)")
        }
        let top = try mapping(root, "the file", keys: ["years"])
        guard let yearsNode = top["years"] else { throw problem(root, "no `years:` (one entry per year)") }
        var years = Set<Int>()
        var provisional = Set<Int>()
        var holidays = Set<CivilDate>()
        var working = Set<CivilDate>()
        for (key, entry) in try pairs(yearsNode, "years") {
            guard let text = key.string, text.utf8.count == 4, let year = Int(text), year >= 1900 else {
                throw problem(key, "`\(key.string ?? "?")` is not a year (four digits, 1900 or later)")
            }
            guard years.insert(year).inserted else { throw problem(key, "\(year) is listed twice") }
            let fields = try mapping(entry, "year \(year)", keys: ["notice", "provisional", "holidays"])
            guard fields["notice"]?.string?.isEmpty == false else {
                throw problem(entry, "year \(year) has no `notice:` (the State Council notice the dates come from)")
            }
            if let flag = fields["provisional"] {
                guard let value = flag.bool else { throw problem(flag, "`provisional:` is true or false") }
                if value { provisional.insert(year) }
            }
            guard let list = fields["holidays"], case .sequence(let items) = list else {
                throw problem(fields["holidays"] ?? entry, "year \(year) needs `holidays:`, a list")
            }
            for item in items {
                let holiday = try mapping(item, "a holiday", keys: ["name", "off", "work"])
                guard let name = holiday["name"]?.string, !name.isEmpty else {
                    throw problem(item, "a holiday of \(year) has no `name:`")
                }
                guard let off = holiday["off"] else { throw problem(item, "\(name) has no `off:` days") }
                for day in try range(off, of: name) {
                    try near(day, year, off)
                    holidays.insert(day)
                }
                if let work = holiday["work"] {
                    let nodes: [Node]
                    switch work {
                    case .sequence(let sequence): nodes = Array(sequence)
                    default: nodes = [work]
                    }
                    for node in nodes {
                        let day = try date(node, "a working day of \(name)")
                        try near(day, year, node)
                        guard day.isWeekend else {
                            let weekday = WorkingDayCalendar.weekdayName(day)
                            throw problem(
                                node, "\(day) (\(name)) is a \(weekday): a moved working day is a Saturday or Sunday")
                        }
                        working.insert(day)
                    }
                }
            }
        }
        if let both = holidays.intersection(working).sorted().first {
            throw problem(nil, "\(both) is both a holiday (`off:`) and a working day (`work:`)")
        }
        return try WorkingDayCalendar(
            years: years, holidays: holidays, movedWorkingDays: working, provisionalYears: provisional, source: source)
    }

    /// `2026-02-15`, or `2026-02-15 to 2026-02-23` (both ends included, at most 31 days).
    private func range(_ node: Node, of name: String) throws -> [CivilDate] {
        guard let text = node.string else { throw problem(node, "\(name): `off:` is a date or `FIRST to LAST`") }
        let ends = text.components(separatedBy: " to ")
        guard ends.count <= 2, let first = CivilDate(ends[0].trimmingCharacters(in: .whitespaces)),
            let last = CivilDate(ends[ends.count - 1].trimmingCharacters(in: .whitespaces))
        else {
            throw problem(node, "\(name): `\(text)` is not a date (YYYY-MM-DD) or `YYYY-MM-DD to YYYY-MM-DD`")
        }
        let days = first.days(until: last) + 1
        guard (1...31).contains(days) else {
            throw problem(node, "\(name): `\(text)` is not a range of 1 to 31 days (is the order right?)")
        }
        return (0..<days).map { first.adding(days: $0) }
    }

    private func date(_ node: Node, _ what: String) throws -> CivilDate {
        guard let text = node.string, let day = CivilDate(text) else {
            throw problem(node, "\(what): `\(node.string ?? "?")` is not a date (YYYY-MM-DD)")
        }
        return day
    }

    /// A notice's dates fall in its year, or at most in the days around New Year next to it.
    private func near(_ day: CivilDate, _ year: Int, _ node: Node) throws {
        guard abs(day.year - year) <= 1 else {
            throw problem(node, "\(day) is listed under \(year): is the year mistyped?")
        }
    }

    private func pairs(_ node: Node, _ what: String) throws -> [(Node, Node)] {
        guard case .mapping(let mapping) = node else { throw problem(node, "\(what) should be a mapping") }
        return mapping.map { ($0.key, $0.value) }
    }

    /// A mapping's values by key, refusing keys other than `keys` with the nearest known one.
    private func mapping(_ node: Node, _ what: String, keys: [String]) throws -> [String: Node] {
        var result: [String: Node] = [:]
        for (key, value) in try pairs(node, what) {
            let name = key.string ?? "?"
            guard keys.contains(name) else {
                let nearest = keys.min { distance($0, name) < distance($1, name) }!
                let hint =
                    distance(nearest, name) <= 3
                    ? "did you mean \(nearest)?" : "known: \(keys.joined(separator: ", "))"
                throw problem(key, "\(name): unknown key in \(what); \(hint)")
            }
            guard result.updateValue(value, forKey: name) == nil else {
                throw problem(key, "\(name) appears twice in \(what)")
            }
        }
        return result
    }

    private func problem(_ node: Node?, _ reason: String) -> WorkingDayCalendarError {
        WorkingDayCalendarError(.invalidData, source: source, line: node?.mark?.line, reason)
    }
}

/// The Levenshtein distance between two short keys.
private func distance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    var previous = Array(0...b.count)
    for (i, x) in a.enumerated() {
        var current = [i + 1]
        for (j, y) in b.enumerated() {
            current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
        }
        previous = current
    }
    return previous[b.count]
}
