import EventSchemas
import Foundation

/// A scalar read from a department's row, file or posted document, before conversion.
public enum MappedValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case number(Double)
    case text(String)
    case bool(Bool)
    /// A JSON value taken as it is (a webhook's nested object or array).
    case json(JSONValue)

    init(yaml: Any) {
        switch yaml {
        case let value as Bool: self = .bool(value)
        case let value as Int: self = .integer(Int64(value))
        case let value as Double: self = .number(value)
        case let value as String: self = .text(value)
        default: self = .text("\(yaml)")
        }
    }

    init(json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let value): self = .bool(value)
        case .integer(let value): self = .integer(value)
        case .number(let value): self = .number(value)
        case .string(let value): self = .text(value)
        default: self = .json(json)
        }
    }

    /// The value as text, as a code table or a date parser sees it.
    var text: String? {
        switch self {
        case .null: nil
        case .integer(let value): String(value)
        case .number(let value): value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        case .text(let value): value
        case .bool(let value): value ? "true" : "false"
        case .json(let value): String(decoding: value.serialized(), as: UTF8.self)
        }
    }

    var json: JSONValue {
        switch self {
        case .null: .null
        case .integer(let value): .integer(value)
        case .number(let value): .number(value)
        case .text(let value): .string(value)
        case .bool(let value): .bool(value)
        case .json(let value): value
        }
    }
}

/// A conversion from a department's representation to the event's.
public enum Conversion: String, Sendable, CaseIterable {
    /// `20240115`, `2024/01/15`, `2024.01.15`, `2024-01-15` → `2024-01-15` (a real calendar day).
    case date
    /// `2024-01-15 08:30:00` (China time) or RFC 3339 → RFC 3339.
    case dateTime = "date-time"
    case integer
    case number
    /// `1/0`, `Y/N`, `yes/no`, `true/false`, `是/否`.
    case boolean
    case string
    /// Text holding JSON (a department's JSON column) → that JSON value.
    case json

    func apply(_ value: MappedValue) throws(MappingProblem) -> JSONValue {
        guard let text = value.text?.trimmingCharacters(in: .whitespaces) else { return .null }
        switch self {
        case .date:
            let digits = text.filter(\.isNumber)
            guard digits.count == 8, text.count == 8 || text.count == 10,
                let year = Int(digits.prefix(4)), let month = Int(digits.dropFirst(4).prefix(2)),
                let day = Int(digits.suffix(2)), CalendarDay.isValid(year: year, month: month, day: day)
            else { throw MappingProblem("'\(text)' is not a date") }
            return .string(String(format: "%04d-%02d-%02d", year, month, day))
        case .dateTime:
            if let date = RFC3339.parse(text) { return .string(RFC3339.format(date, offsetHours: 8)) }
            let normalized = text.replacingOccurrences(of: "/", with: "-")
            if let date = RFC3339.parse(normalized.replacingOccurrences(of: " ", with: "T") + "+08:00") {
                return .string(RFC3339.format(date, offsetHours: 8))
            }
            throw MappingProblem("'\(text)' is not a date and time")
        case .integer:
            if case .integer(let number) = value { return .integer(number) }
            if let number = Int64(text) { return .integer(number) }
            if let number = Double(text), number == number.rounded(), abs(number) < 9e15 { return .integer(Int64(number)) }
            throw MappingProblem("'\(text)' is not a whole number")
        case .number:
            if let number = Int64(text) { return .integer(number) }
            if let number = Double(text), number.isFinite { return .number(number) }
            throw MappingProblem("'\(text)' is not a number")
        case .boolean:
            switch text.lowercased() {
            case "1", "y", "yes", "true", "是": return .bool(true)
            case "0", "n", "no", "false", "否": return .bool(false)
            default: throw MappingProblem("'\(text)' is not a yes/no value")
            }
        case .string:
            return .string(text)
        case .json:
            if case .json(let value) = value { return value }
            do {
                return try JSONValue.parse(Data(text.utf8))
            } catch {
                throw MappingProblem("'\(text.prefix(40))' is not JSON")
            }
        }
    }
}

/// Why a value could not be mapped.
public struct MappingProblem: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// A field that could not be mapped: which field, from where, and why.
public struct MappingError: Error, Sendable, CustomStringConvertible {
    public var field: String
    public var origin: String
    public var problem: String
    public var description: String { "\(field) (from \(origin)): \(problem)" }
}

/// Builds event bodies from the mapping rules of a connector file.
public struct BodyMapper: Sendable {
    public let rules: [FieldRule]

    public init(rules: [FieldRule]) {
        self.rules = rules
    }

    /// The body for one input.
    /// - Parameters:
    ///   - column: the value of a named column (`.null` when absent).
    ///   - path: the value at a JSON pointer of the input document.
    /// - Throws: ``MappingError`` for the first field whose value cannot be converted.
    public func body(column: (String) -> MappedValue, path: (String) -> MappedValue) throws -> JSONValue {
        var body: JSONValue = .object([:])
        for rule in rules {
            let raw: MappedValue
            let origin: String
            switch rule.value {
            case .column(let name):
                raw = column(name)
                origin = "column \(name)"
            case .path(let pointer):
                raw = path(pointer)
                origin = "path \(pointer)"
            case .constant(let value):
                raw = value
                origin = "constant"
            }
            if raw == .null { continue }
            var value: JSONValue
            do {
                if let codes = rule.codes {
                    guard let text = raw.text, let mapped = codes[text] else {
                        throw MappingProblem(
                            "code '\(raw.text ?? "")' is not in the code table (\(codes.keys.sorted().joined(separator: ", ")))")
                    }
                    value = .string(mapped)
                    if let convert = rule.convert { value = try convert.apply(.text(mapped)) }
                } else if let convert = rule.convert {
                    value = try convert.apply(raw)
                } else {
                    value = raw.json
                }
            } catch let problem as MappingProblem {
                throw MappingError(field: rule.field, origin: origin, problem: problem.description)
            }
            body.set(value, at: rule.field)
        }
        return body
    }
}

enum CalendarDay {
    static func isValid(year: Int, month: Int, day: Int) -> Bool {
        guard year >= 1900, (1...12).contains(month), day >= 1 else { return false }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        return day <= days
    }
}

enum RFC3339 {
    static func parse(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try? Date.ISO8601FormatStyle().parse(text)
    }

    /// `2024-01-15T08:30:00+08:00`.
    static func format(_ date: Date, offsetHours: Int) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: offsetHours * 3600)!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let sign = offsetHours < 0 ? "-" : "+"
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d%@%02d:00", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!,
            sign, abs(offsetHours))
    }
}
