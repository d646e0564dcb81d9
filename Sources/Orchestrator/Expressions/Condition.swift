import CivilTime
import EventSchemas
import Foundation

// The condition language of workflow steps (`condition: business.areaSquareMetres > 150 or
// business.seats >= 60`). A small recursive-descent parser of our own rather than
// pointfreeco/swift-parsing: that library pulls swift-case-paths and, through it, swift-syntax's
// macro plug-ins into every build (minutes of CI for ~200 lines of grammar), and a hand-written
// parser says exactly where an expression breaks (a column) in the words a rule author reads.
//
// Grammar (keywords in lower case; whitespace between tokens is free):
//
//     condition  := or
//     or         := and ("or" and)*
//     and        := not ("and" not)*
//     not        := "not" not | comparison
//     comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand
//                            | "in" list | "not" "in" list)?
//     operand    := number | string | date | "true" | "false" | path | "(" or ")"
//     list       := "[" literal ("," literal)* "]"
//     path       := name ("." name)*        a field of the application, e.g. business.seats
//     date       := YYYY-MM-DD              e.g. 2026-01-01
//     string     := "…" | '…'
//
// Nothing else exists: no function calls, no arithmetic, no assignment — a condition only reads
// the application and answers true or false.

/// A parsed condition: an expression over the fields of an application.
public indirect enum Condition: Sendable, Hashable, CustomStringConvertible {
    /// A constant.
    case literal(Literal)
    /// A field of the application, by its path (`["business", "seats"]`).
    case field([String])
    case not(Condition)
    case and(Condition, Condition)
    case or(Condition, Condition)
    case compare(Condition, ComparisonOperator, Condition)
    /// `path in [a, b]`; `negated` for `not in`.
    case member(Condition, [Literal], negated: Bool)

    /// A constant of the language.
    public enum Literal: Sendable, Hashable, CustomStringConvertible {
        case number(Double)
        case string(String)
        case date(CivilDate)
        case bool(Bool)

        public var description: String {
            switch self {
            case .number(let value): Self.digits(value)
            // A text holding a double quote is written between single quotes (it cannot hold both:
            // the language has no escapes).
            case .string(let value): value.contains("\"") ? "'\(value)'" : "\"\(value)\""
            case .date(let value): value.description
            case .bool(let value): String(value)
            }
        }

        /// A number as the tokenizer reads it back: digits, a point, a leading minus, never an
        /// exponent (Swift writes 1e16 as `1e+16`, which the language does not read). The exact
        /// decimal expansion (printf's) reads back as the same `Double`.
        static func digits(_ value: Double) -> String {
            if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
            let shortest = String(value)
            guard shortest.contains("e") else { return shortest }
            var text = String(format: "%.400f", value)
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
            return text
        }

        var type: ValueType {
            switch self {
            case .number: .number
            case .string: .string
            case .date: .date
            case .bool: .bool
            }
        }
    }

    /// `==`, `!=`, `<`, `<=`, `>`, `>=`.
    public enum ComparisonOperator: String, Sendable, Hashable, CaseIterable {
        case equal = "=="
        case notEqual = "!="
        case less = "<"
        case lessOrEqual = "<="
        case greater = ">"
        case greaterOrEqual = ">="
    }

    /// The type of a value in the language.
    public enum ValueType: String, Sendable, Hashable {
        case number, string, date, bool
    }

    /// Parses a condition.
    /// - Throws: ``ConditionError`` with the 1-based column of the problem in `text`.
    public static func parse(_ text: String) throws(ConditionError) -> Condition {
        var parser = ConditionParser(text: text)
        return try parser.parseAll()
    }

    /// The expression written back in canonical form (for diffs and messages).
    public var description: String {
        switch self {
        case .literal(let literal): literal.description
        case .field(let path): path.joined(separator: ".")
        case .not(let inner): "not \(inner.parenthesised)"
        case .and(let a, let b): "\(a.parenthesised(in: .and)) and \(b.parenthesised(in: .and, right: true))"
        case .or(let a, let b): "\(a.parenthesised(in: .or)) or \(b.parenthesised(in: .or, right: true))"
        case .compare(let a, let op, let b): "\(a.operand) \(op.rawValue) \(b.operand)"
        case .member(let a, let list, let negated):
            "\(a.operand) \(negated ? "not in" : "in") [\(list.map(\.description).joined(separator: ", "))]"
        }
    }

    private enum Context { case and, or }

    private var parenthesised: String {
        switch self {
        case .literal, .field, .not: description
        default: "(\(description))"
        }
    }

    /// Within `and`/`or`: an `or` inside an `and` needs parentheses, and so does a right-hand side
    /// of the same kind (`a and (b and c)`: the parser groups from the left).
    private func parenthesised(in context: Context, right: Bool = false) -> String {
        switch (self, context) {
        case (.or, .and): "(\(description))"
        case (.and, .and), (.or, .or): right ? "(\(description))" : description
        default: description
        }
    }

    /// A side of a comparison or `in`: anything but a literal or a field in parentheses.
    private var operand: String {
        switch self {
        case .literal, .field: description
        default: "(\(description))"
        }
    }

    /// The field paths the condition reads, in order of appearance.
    public var fields: [[String]] {
        switch self {
        case .literal: []
        case .field(let path): [path]
        case .not(let inner): inner.fields
        case .and(let a, let b), .or(let a, let b), .compare(let a, _, let b): a.fields + b.fields
        case .member(let a, _, _): a.fields
        }
    }
}

/// A condition that does not parse or does not fit the application's schema: the 1-based column
/// in the condition's text (when the problem is at one) and what is wrong.
public struct ConditionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// 1-based column in the condition's text.
    public var column: Int
    /// What is wrong and what would be right.
    public var problem: String

    public init(column: Int, problem: String) {
        self.column = column
        self.problem = problem
    }

    public var description: String { "column \(column): \(problem)" }
}

// MARK: - Type checking

extension Condition {
    /// Checks the condition against the schema of the documents it will read: every field exists
    /// there, comparisons compare values of one type, `<` and friends only numbers and dates, and
    /// the whole is true or false.
    ///
    /// Field types: `integer`/`number` are numbers, `boolean` booleans, a string of format `date`
    /// a date, any other string a string. A field of another type (an object, a list) cannot be
    /// used.
    /// - Parameter text: the condition's text, to find the column of a field named in an error.
    /// - Throws: ``ConditionError`` naming the field or operator.
    public func check(against schema: JSONSchema, text: String) throws(ConditionError) {
        let type = try Self.type(of: self, schema: schema, text: text)
        guard type == .bool else {
            throw ConditionError(
                column: 1, problem: "a condition must be true or false, this one is a \(type.rawValue)")
        }
    }

    static func column(of path: [String], in text: String) -> Int {
        let written = path.joined(separator: ".")
        guard let range = text.range(of: written) else { return 1 }
        return text.distance(from: text.startIndex, to: range.lowerBound) + 1
    }

    /// The language type of a schema field, or a reason it has none.
    static func fieldType(_ field: SchemaField) -> ValueType? {
        let types = field.types.subtracting(["null"])
        if types.isSubset(of: ["integer", "number"]), !types.isEmpty { return .number }
        if types == ["boolean"] { return .bool }
        if types == ["string"] { return field.format == "date" ? .date : .string }
        return nil
    }

    private static func type(of condition: Condition, schema: JSONSchema, text: String) throws(ConditionError)
        -> ValueType
    {
        switch condition {
        case .literal(let literal):
            return literal.type
        case .field(let path):
            let pointer = "/" + path.joined(separator: "/")
            let column = column(of: path, in: text)
            guard let field = schema.field(at: pointer) else {
                throw ConditionError(
                    column: column,
                    problem: "\(path.joined(separator: ".")) is not a field of \(schema.id ?? "the application")")
            }
            guard let type = fieldType(field) else {
                let found = field.types.sorted().joined(separator: " or ")
                throw ConditionError(
                    column: column,
                    problem: "\(path.joined(separator: ".")) is \(found.isEmpty ? "of no fixed type" : "a \(found)"); "
                        + "a condition can use numbers, text, dates and booleans")
            }
            return type
        case .not(let inner):
            try expect(.bool, inner, schema: schema, text: text, role: "not")
            return .bool
        case .and(let a, let b), .or(let a, let b):
            let word = if case .and = condition { "and" } else { "or" }
            try expect(.bool, a, schema: schema, text: text, role: word)
            try expect(.bool, b, schema: schema, text: text, role: word)
            return .bool
        case .compare(let a, let op, let b):
            let left = try type(of: a, schema: schema, text: text)
            let right = try type(of: b, schema: schema, text: text)
            guard left == right else {
                throw ConditionError(
                    column: columnOfFirstField(in: condition, text: text),
                    problem:
                        "\(a) is a \(left.rawValue) and \(b) a \(right.rawValue); \(op.rawValue) compares values of one type"
                )
            }
            if ![.equal, .notEqual].contains(op), ![.number, .date].contains(left) {
                throw ConditionError(
                    column: columnOfFirstField(in: condition, text: text),
                    problem: "\(op.rawValue) orders numbers and dates, not a \(left.rawValue) (\(a)); use == or !=")
            }
            return .bool
        case .member(let a, let list, _):
            let left = try type(of: a, schema: schema, text: text)
            for literal in list where literal.type != left {
                throw ConditionError(
                    column: columnOfFirstField(in: condition, text: text),
                    problem: "\(a) is a \(left.rawValue) but the list holds \(literal) (a \(literal.type.rawValue))")
            }
            return .bool
        }
    }

    private static func columnOfFirstField(in condition: Condition, text: String) -> Int {
        condition.fields.first.map { column(of: $0, in: text) } ?? 1
    }

    private static func expect(
        _ expected: ValueType, _ condition: Condition, schema: JSONSchema, text: String, role: String
    ) throws(ConditionError) {
        let found = try type(of: condition, schema: schema, text: text)
        guard found == expected else {
            throw ConditionError(
                column: columnOfFirstField(in: condition, text: text),
                problem:
                    "\(role) needs true or false, \(condition) is a \(found.rawValue); compare it, e.g. \(condition) > 0"
            )
        }
    }
}

// MARK: - Evaluation

extension Condition {
    /// Whether the condition holds for a document. A field the document does not have makes the
    /// comparison (or `in`) that reads it false, and a missing boolean field is false; `not`
    /// inverts that as it inverts anything.
    public func evaluate(on document: JSONValue) -> Bool {
        switch self {
        case .literal(.bool(let value)): return value
        case .literal: return false
        case .field(let path):
            if case .bool(let value)? = Self.value(at: path, in: document) { return value }
            return false
        case .not(let inner): return !inner.evaluate(on: document)
        case .and(let a, let b): return a.evaluate(on: document) && b.evaluate(on: document)
        case .or(let a, let b): return a.evaluate(on: document) || b.evaluate(on: document)
        case .compare(let a, let op, let b):
            guard let left = a.literal(on: document), let right = b.literal(on: document) else { return false }
            return Self.compare(left, op, right)
        case .member(let a, let list, let negated):
            guard let left = a.literal(on: document) else { return false }
            let found = list.contains { Self.compare(left, .equal, $0) }
            return negated ? !found : found
        }
    }

    private func literal(on document: JSONValue) -> Literal? {
        switch self {
        case .literal(let literal): return literal
        case .field(let path):
            switch Self.value(at: path, in: document) {
            case .integer(let value)?: return .number(Double(value))
            case .number(let value)?: return .number(value)
            case .bool(let value)?: return .bool(value)
            case .string(let text)?: return CivilDate(text).map(Literal.date) ?? .string(text)
            default: return nil
            }
        default:
            return .bool(evaluate(on: document))
        }
    }

    static func value(at path: [String], in document: JSONValue) -> JSONValue? {
        if path.contains(where: { $0.utf8.contains(UInt8(ascii: "/")) }) {
            return document[pointer: "/" + path.map { $0.replacingOccurrences(of: "~", with: "~0") }.joined(separator: "/")]
        }
        // Names without a slash: walked directly, not through a pointer's text.
        var field = FieldPath("")
        field.components = path
        return field.value(in: document)
    }

    private static func compare(_ a: Literal, _ op: ComparisonOperator, _ b: Literal) -> Bool {
        let order: Int?
        switch (a, b) {
        case (.number(let x), .number(let y)): order = x < y ? -1 : (x > y ? 1 : 0)
        case (.date(let x), .date(let y)): order = x < y ? -1 : (x > y ? 1 : 0)
        case (.string(let x), .string(let y)): order = x == y ? 0 : nil
        case (.bool(let x), .bool(let y)): order = x == y ? 0 : nil
        // A string field holding a date-shaped text compared with a string literal.
        case (.date(let x), .string(let y)), (.string(let y), .date(let x)): order = x.description == y ? 0 : nil
        default: order = nil
        }
        switch op {
        case .equal: return order == 0
        case .notEqual: return order != 0
        case .less: return order.map { $0 < 0 } ?? false
        case .lessOrEqual: return order.map { $0 <= 0 } ?? false
        case .greater: return order.map { $0 > 0 } ?? false
        case .greaterOrEqual: return order.map { $0 >= 0 } ?? false
        }
    }
}

// MARK: - Parsing

/// The recursive-descent parser behind ``Condition/parse(_:)``.
struct ConditionParser {
    enum Token: Equatable {
        case number(Double)
        case string(String)
        case date(CivilDate)
        case word(String)  // a name, a path or a keyword
        case symbol(String)  // ( ) [ ] , == != < <= > >=
        case end
    }

    let characters: [Character]
    var tokens: [(token: Token, column: Int)] = []
    var position = 0
    /// Parentheses and `not`s open around the current token: each is a level of recursion, so
    /// thousands of them would overflow the stack; a rule needs a handful.
    var depth = 0
    static let maximumDepth = 64

    /// Enters one more level of nesting at the current token, or refuses the condition.
    mutating func nest() throws(ConditionError) {
        depth += 1
        if depth > Self.maximumDepth {
            throw ConditionError(
                column: current.column, problem: "nested more than \(Self.maximumDepth) levels deep (parentheses and not)")
        }
    }

    init(text: String) {
        characters = Array(text)
    }

    mutating func parseAll() throws(ConditionError) -> Condition {
        try tokenize()
        guard tokens.count > 1 else { throw ConditionError(column: 1, problem: "the condition is empty") }
        let condition = try parseOr()
        guard case .end = current.token else {
            throw ConditionError(
                column: current.column, problem: "unexpected \(shown(current.token)); expected and, or, or the end")
        }
        return condition
    }

    var current: (token: Token, column: Int) { tokens[position] }

    func shown(_ token: Token) -> String {
        switch token {
        case .number(let value): "the number \(Condition.Literal.number(value))"
        case .string(let text): "the text \"\(text)\""
        case .date(let date): "the date \(date)"
        case .word(let word): "'\(word)'"
        case .symbol(let symbol): "'\(symbol)'"
        case .end: "the end of the condition"
        }
    }

    static let keywords: Set<String> = ["and", "or", "not", "in", "true", "false"]

    mutating func parseOr() throws(ConditionError) -> Condition {
        var result = try parseAnd()
        while current.token == .word("or") {
            position += 1
            result = .or(result, try parseAnd())
        }
        return result
    }

    mutating func parseAnd() throws(ConditionError) -> Condition {
        var result = try parseNot()
        while current.token == .word("and") {
            position += 1
            result = .and(result, try parseNot())
        }
        return result
    }

    mutating func parseNot() throws(ConditionError) -> Condition {
        if current.token == .word("not") {
            try nest()
            defer { depth -= 1 }
            position += 1
            return .not(try parseNot())
        }
        return try parseComparison()
    }

    mutating func parseComparison() throws(ConditionError) -> Condition {
        let left = try parseOperand()
        switch current.token {
        case .symbol(let symbol):
            guard let op = Condition.ComparisonOperator(rawValue: symbol) else { return left }
            position += 1
            let right = try parseOperand()
            if case .symbol(let next) = current.token, Condition.ComparisonOperator(rawValue: next) != nil {
                throw ConditionError(
                    column: current.column, problem: "comparisons do not chain; join them with and (a < b and b < c)")
            }
            return .compare(left, op, right)
        case .word("in"):
            position += 1
            return .member(left, try parseList(), negated: false)
        case .word("not"):
            guard position + 1 < tokens.count, tokens[position + 1].token == .word("in") else { return left }
            position += 2
            return .member(left, try parseList(), negated: true)
        default:
            return left
        }
    }

    mutating func parseOperand() throws(ConditionError) -> Condition {
        let (token, column) = current
        switch token {
        case .symbol("("):
            try nest()
            defer { depth -= 1 }
            position += 1
            let inner = try parseOr()
            guard current.token == .symbol(")") else {
                throw ConditionError(
                    column: current.column,
                    problem: "expected ) to close the ( at column \(column), found \(shown(current.token))")
            }
            position += 1
            return inner
        case .word("true"), .word("false"), .number, .string, .date:
            return .literal(try parseLiteral())
        case .word(let word) where !Self.keywords.contains(word):
            position += 1
            return .field(word.split(separator: ".", omittingEmptySubsequences: false).map(String.init))
        default:
            throw ConditionError(
                column: column,
                problem: "expected a field, a number, a text, a date, true, false or (, found \(shown(token))")
        }
    }

    mutating func parseLiteral() throws(ConditionError) -> Condition.Literal {
        let (token, column) = current
        position += 1
        switch token {
        case .word("true"): return .bool(true)
        case .word("false"): return .bool(false)
        case .number(let value): return .number(value)
        case .string(let text): return .string(text)
        case .date(let date): return .date(date)
        default:
            position -= 1
            throw ConditionError(
                column: column, problem: "expected a number, a text, a date, true or false, found \(shown(token))")
        }
    }

    mutating func parseList() throws(ConditionError) -> [Condition.Literal] {
        guard current.token == .symbol("[") else {
            throw ConditionError(
                column: current.column, problem: "expected [ to start the list after in, found \(shown(current.token))")
        }
        position += 1
        var list = [try parseLiteral()]
        while current.token == .symbol(",") {
            position += 1
            list.append(try parseLiteral())
        }
        guard current.token == .symbol("]") else {
            throw ConditionError(
                column: current.column, problem: "expected , or ] in the list, found \(shown(current.token))")
        }
        position += 1
        return list
    }

    // MARK: Tokens

    mutating func tokenize() throws(ConditionError) {
        var index = 0
        while index < characters.count {
            let character = characters[index]
            let column = index + 1
            if character.isWhitespace {
                index += 1
            } else if character.isASCII,
                character.isNumber
                    || (character == "-" && index + 1 < characters.count && characters[index + 1].isNumber)
            {
                var end = index + 1
                while end < characters.count, characters[end].isASCII,
                    characters[end].isNumber || characters[end] == "." || characters[end] == "-"
                {
                    end += 1
                }
                let text = String(characters[index..<end])
                if text.count == 10, text.dropFirst().contains("-") {
                    guard let date = CivilDate(text) else {
                        throw ConditionError(column: column, problem: "\(text) is not a date (YYYY-MM-DD, a real day)")
                    }
                    tokens.append((.date(date), column))
                } else if let value = Double(text), value.isFinite, !text.dropFirst().contains("-") {
                    tokens.append((.number(value), column))
                } else {
                    throw ConditionError(column: column, problem: "\(text) is neither a number nor a date (YYYY-MM-DD)")
                }
                index = end
            } else if character == "\"" || character == "'" {
                var end = index + 1
                while end < characters.count, characters[end] != character { end += 1 }
                guard end < characters.count else {
                    throw ConditionError(column: column, problem: "the text starting here has no closing \(character)")
                }
                tokens.append((.string(String(characters[(index + 1)..<end])), column))
                index = end + 1
            } else if character.isLetter || character == "_" {
                var end = index + 1
                while end < characters.count,
                    characters[end].isLetter || characters[end].isNumber || characters[end] == "_"
                        || characters[end] == "."
                {
                    end += 1
                }
                let word = String(characters[index..<end])
                if word.hasSuffix(".") || word.contains("..") {
                    throw ConditionError(
                        column: column, problem: "\(word) is not a field path (names joined by single dots)")
                }
                tokens.append((.word(word), column))
                index = end
            } else {
                let two = index + 1 < characters.count ? String(characters[index...(index + 1)]) : ""
                if ["==", "!=", "<=", ">="].contains(two) {
                    tokens.append((.symbol(two), column))
                    index += 2
                } else if "()[],<>".contains(character) {
                    tokens.append((.symbol(String(character)), column))
                    index += 1
                } else if character == "=" {
                    throw ConditionError(column: column, problem: "= alone is not an operator; compare with ==")
                } else if character == "&" || character == "|" || character == "!" {
                    throw ConditionError(
                        column: column, problem: "\(character) is not an operator here; write and, or, not")
                } else {
                    throw ConditionError(column: column, problem: "unexpected character \(character)")
                }
            }
        }
        tokens.append((.end, characters.count + 1))
    }
}
