import CivilTime
import EventModel
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
        // Shortcuts giving what the general path below gives, without building text first.
        switch (self, value) {
        case (_, .null): return .null
        case (.integer, .integer(let number)), (.number, .integer(let number)): return .integer(number)
        default: break
        }
        guard let text = value.text.map(Self.trimmed) else { return .null }
        switch self {
        case .date:
            if let date = Self.asciiDate(text) { return .string(date) }
            let digits = text.filter(\.isNumber)
            guard digits.count == 8, text.count == 8 || text.count == 10,
                let year = Int(digits.prefix(4)), let month = Int(digits.dropFirst(4).prefix(2)),
                let day = Int(digits.suffix(2)), CalendarDay.isValid(year: year, month: month, day: day)
            else { throw MappingProblem("'\(text)' is not a date") }
            return .string(String(format: "%04d-%02d-%02d", year, month, day))
        case .dateTime:
            // What department databases hold, `2024-01-15 08:30:00`, read without first asking
            // the RFC 3339 parser (which refuses it: no `T`, no offset).
            if let local = Self.chinaLocalTime(text), let date = RFC3339.parse(local) {
                return .string(RFC3339.format(date, offsetHours: 8))
            }
            if let date = RFC3339.parse(text) { return .string(RFC3339.format(date, offsetHours: 8)) }
            let normalized = text.replacingOccurrences(of: "/", with: "-")
            if let date = RFC3339.parse(normalized.replacingOccurrences(of: " ", with: "T") + "+08:00") {
                return .string(RFC3339.format(date, offsetHours: 8))
            }
            throw MappingProblem("'\(text)' is not a date and time")
        case .integer:
            if case .integer(let number) = value { return .integer(number) }
            if let number = Int64(text) { return .integer(number) }
            if let number = Double(text), number == number.rounded(), abs(number) < 9e15 {
                try Self.checkUnderflow(number, text)
                return .integer(Int64(number))
            }
            throw MappingProblem("'\(text)' is not a whole number")
        case .number:
            if let number = Int64(text) { return .integer(number) }
            if let number = Double(text), number.isFinite {
                try Self.checkUnderflow(number, text)
                return .number(number)
            }
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

extension Conversion {
    /// Refuses text such as `1e-400`, which a double reads as 0 although it is not zero
    /// (`number-range`, as the hub's JSON reader refuses it in a body).
    static func checkUnderflow(_ number: Double, _ text: String) throws(MappingProblem) {
        guard number == 0 else { return }
        let mantissa = text.prefix { $0 != "e" && $0 != "E" }
        if mantissa.contains(where: { $0 >= "1" && $0 <= "9" }) {
            throw MappingProblem("'\(text.prefix(40))' is too small for a double, which reads it as 0", rule: "number-range")
        }
    }

    /// The text without leading and trailing white space (`CharacterSet.whitespaces`); the
    /// usual text, which starts and ends with a visible ASCII character, is returned as it is.
    static func trimmed(_ text: String) -> String {
        guard let first = text.utf8.first, let last = text.utf8.last else { return text }
        if first > 0x20, first < 0x7F, last > 0x20, last < 0x7F { return text }
        return text.trimmingCharacters(in: .whitespaces)
    }

    /// `.date` on ASCII text: eight digits, alone or with two separators, as `YYYY-MM-DD`; `nil`
    /// when the text is not ASCII or not a date (the general path then decides and explains).
    static func asciiDate(_ text: String) -> String? {
        var digits: [Int] = []
        digits.reserveCapacity(8)
        for byte in text.utf8 {
            // Non-ASCII, or CR (a CR LF pair is one character): leave to the general path.
            guard byte < 0x80, byte != 0x0D else { return nil }
            if byte &- UInt8(ascii: "0") < 10 { digits.append(Int(byte &- UInt8(ascii: "0"))) }
        }
        let count = text.utf8.count
        guard digits.count == 8, count == 8 || count == 10 else { return nil }
        let year = digits[0] * 1000 + digits[1] * 100 + digits[2] * 10 + digits[3]
        let month = digits[4] * 10 + digits[5]
        let day = digits[6] * 10 + digits[7]
        guard CalendarDay.isValid(year: year, month: month, day: day) else { return nil }
        var bytes: [UInt8] = []
        for (index, digit) in digits.enumerated() {
            if index == 4 || index == 6 { bytes.append(UInt8(ascii: "-")) }
            bytes.append(UInt8(ascii: "0") + UInt8(digit))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `2024-01-15 08:30:00` or `2024/01/15 08:30:00` (ASCII, no offset) as the RFC 3339 text of
    /// that China time, `2024-01-15T08:30:00+08:00`; `nil` for any other shape.
    static func chinaLocalTime(_ text: String) -> String? {
        var text = text
        return text.withUTF8 { source -> String? in
            guard source.count == 19 else { return nil }
            for (index, byte) in source.enumerated() {
                switch index {
                case 4, 7: guard byte == UInt8(ascii: "-") || byte == UInt8(ascii: "/") else { return nil }
                case 10: guard byte == UInt8(ascii: " ") else { return nil }
                case 13, 16: guard byte == UInt8(ascii: ":") else { return nil }
                default: guard byte &- UInt8(ascii: "0") < 10 else { return nil }
                }
            }
            return String(unsafeUninitializedCapacity: 25) { target in
                _ = target.initialize(from: source)
                target[4] = UInt8(ascii: "-")
                target[7] = UInt8(ascii: "-")
                target[10] = UInt8(ascii: "T")
                for (offset, byte) in "+08:00".utf8.enumerated() { target[19 + offset] = byte }
                return 25
            }
        }
    }
}

/// Why a value could not be mapped.
public struct MappingProblem: Error, Sendable, CustomStringConvertible {
    public var description: String
    /// The rule broken when it is not the mapping's own (`number-range`).
    var rule: String?
    init(_ description: String, rule: String? = nil) {
        self.description = description
        self.rule = rule
    }
}

/// A field that could not be mapped: which field, from where, and why.
public struct MappingError: Error, Sendable, CustomStringConvertible {
    public var field: String
    public var origin: String
    public var problem: String
    /// The rule of the mapping that failed: `codes` (the code table) or the conversion's name
    /// (`integer`, `date`, `date-time`, …).
    public var rule: String = ""
    public var description: String { "\(field) (from \(origin)): \(rule.isEmpty ? "" : "\(rule): ")\(problem)" }
}

/// Builds event bodies from the mapping rules of a connector file.
public struct BodyMapper: Sendable {
    public let rules: [FieldRule]
    /// Each rule's field as pointer tokens, split once here rather than for every record.
    private let fields: [[String]]

    public init(rules: [FieldRule]) {
        self.rules = rules
        self.fields = rules.map { JSONValue.tokens(ofPointer: $0.field) }
    }

    /// The body for one input.
    /// - Parameters:
    ///   - column: the value of a named column (`.null` when absent).
    ///   - path: the value at a JSON pointer of the input document.
    /// - Throws: ``MappingError`` for the first field whose value cannot be converted.
    public func body(column: (String) -> MappedValue, path: (String) -> MappedValue) throws -> JSONValue {
        var body: JSONValue = .object(JSONObject(minimumCapacity: rules.count))
        for (rule, field) in zip(rules, fields) {
            let raw: MappedValue
            switch rule.value {
            case .column(let name): raw = column(name)
            case .path(let pointer): raw = path(pointer)
            case .constant(let value): raw = value
            }
            if case .null = raw { continue }
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
                try Self.checkRange(value)
            } catch let problem as MappingProblem {
                throw MappingError(
                    field: rule.field, origin: Self.origin(of: rule), problem: problem.description,
                    rule: problem.rule ?? (rule.codes != nil ? "codes" : rule.convert?.rawValue ?? ""))
            }
            body.set(value, atTokens: field[...])
        }
        return body
    }

    /// Refuses a number the hub's JSON reader would refuse in a body (`number-range`): an integer
    /// beyond ±(2⁵³−1), which a reader of doubles reads as another amount, or a number that is not
    /// finite (an SQLite REAL can hold ±Inf). A department's INTEGER column holds up to 2⁶³−1, so
    /// without this the event would carry an amount the rest of the hub cannot read back.
    static func checkRange(_ value: JSONValue) throws(MappingProblem) {
        switch value {
        case .integer(let number) where number > 9_007_199_254_740_991 || number < -9_007_199_254_740_991:
            throw MappingProblem(
                "\(number) is beyond ±9007199254740991, the integers a Double holds exactly: store it as text",
                rule: "number-range")
        case .number(let number) where !number.isFinite:
            throw MappingProblem("\(number) is not a finite number", rule: "number-range")
        default: break
        }
    }

    /// Where a rule's value comes from, as an error names it.
    static func origin(of rule: FieldRule) -> String {
        switch rule.value {
        case .column(let name): "column \(name)"
        case .path(let pointer): "path \(pointer)"
        case .constant: "constant"
        }
    }
}

enum CalendarDay {
    /// A day of the calendar from 1900 on (a department's dates are never earlier).
    static func isValid(year: Int, month: Int, day: Int) -> Bool {
        year >= 1900 && CivilDate.isValid(year: year, month: month, day: day)
    }
}

enum RFC3339 {
    /// RFC 3339 with or without a fraction of a second (``Timestamp/parse(_:)``), with a real time
    /// of day: `24:30`, `10:60` or a 61st second are no time (Timestamp.parse leaves the forms it
    /// does not read itself to Foundation, which rolls them over into the next hour or day, so a
    /// department's impossible time was published as another, valid one: issue 12's corpus).
    static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8.prefix(19))
        if bytes.count == 19, bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":") {
            func number(_ at: Int) -> Int? {
                let high = bytes[at] &- UInt8(ascii: "0"), low = bytes[at + 1] &- UInt8(ascii: "0")
                return high < 10 && low < 10 ? Int(high) * 10 + Int(low) : nil
            }
            guard let hour = number(11), let minute = number(14), let second = number(17), hour < 24, minute < 60,
                second < 60
            else { return nil }
        }
        return Timestamp.parse(text)
    }

    /// `2024-01-15T08:30:00+08:00`: whole seconds at a fixed offset.
    static func format(_ date: Date, offsetHours: Int) -> String {
        Timestamp.format(date, offsetMinutes: offsetHours * 60)
    }
}
