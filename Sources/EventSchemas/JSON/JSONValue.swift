import Foundation

/// A parsed JSON document: what schemas validate, mappings build and the CLI prints.
///
/// Numbers without a fraction or exponent that fit 64 bits are ``integer``; all others ``number``.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The value at an RFC 6901 JSON pointer (`""` is the whole document, `/a/0/b` a member of
    /// the first element of `a`), or `nil` when there is none.
    public subscript(pointer pointer: String) -> JSONValue? {
        if pointer.isEmpty { return self }
        guard pointer.hasPrefix("/") else { return nil }
        if pointer.utf8.contains(UInt8(ascii: "~")) { return self[tokens: Self.tokens(ofPointer: pointer)] }
        // No escapes: walk the tokens as they are, without splitting the pointer into an array
        // first (pointer lookups run many times per event in the orchestrator).
        var current = self
        var rest = pointer.utf8.dropFirst()
        while true {
            let end = rest.firstIndex(of: UInt8(ascii: "/")) ?? rest.endIndex
            guard let next = current.member(Substring(rest[..<end])) else { return nil }
            current = next
            if end == rest.endIndex { return current }
            rest = rest[rest.index(after: end)...]
        }
    }

    /// One step of a pointer: an object's member or an array's element.
    private func member(_ token: Substring) -> JSONValue? {
        switch self {
        case .object(let members):
            return members[String(token)]
        case .array(let elements):
            guard let index = Int(token), index >= 0, index < elements.count, token == "0" || !token.hasPrefix("0")
            else { return nil }
            return elements[index]
        default:
            return nil
        }
    }

    /// The value at a pointer already split by ``tokens(ofPointer:)`` (member names unescaped, or
    /// array indices): a path kept as names is looked up without building pointer text.
    public subscript(tokens tokens: [String]) -> JSONValue? {
        var current = self
        for token in tokens {
            switch current {
            case .object(let members):
                guard let next = members[token] else { return nil }
                current = next
            case .array(let elements):
                guard let index = Int(token), index >= 0, index < elements.count,
                    token == "0" || !token.hasPrefix("0")
                else { return nil }
                current = elements[index]
            default:
                return nil
            }
        }
        return current
    }

    /// Sets a value at a JSON pointer made of object member names, creating objects on the way
    /// (a non-object on the way is replaced by an object).
    public mutating func set(_ value: JSONValue, at pointer: String) {
        set(value, atTokens: Self.tokens(ofPointer: pointer)[...])
    }

    /// The member names of a JSON pointer, unescaped (`/a~1b/c` → `["a/b", "c"]`; `""` → `[]`).
    /// Split a pointer once with this and use ``set(_:atTokens:)`` to set many values cheaply.
    public static func tokens(ofPointer pointer: String) -> [String] {
        pointer.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { token in
            guard token.utf8.contains(UInt8(ascii: "~")) else { return String(token) }
            return token.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }

    /// ``set(_:at:)`` with the pointer already split by ``tokens(ofPointer:)``.
    public mutating func set(_ value: JSONValue, atTokens tokens: ArraySlice<String>) {
        guard let first = tokens.first else {
            self = value
            return
        }
        var object: JSONObject
        if case .object(let existing) = self { object = existing } else { object = [:] }
        // Let go of this value's reference to the members so they are changed in place, not copied.
        self = .null
        if tokens.count == 1 {
            object[first] = value
        } else {
            object[first, default: .object([:])].set(value, atTokens: tokens.dropFirst())
        }
        self = .object(object)
    }

    /// The text, when this is a string.
    public var stringValue: String? { if case .string(let value) = self { value } else { nil } }
    /// The members, when this is an object.
    public var objectValue: JSONObject? { if case .object(let value) = self { value } else { nil } }
    /// The elements, when this is an array.
    public var arrayValue: [JSONValue]? { if case .array(let value) = self { value } else { nil } }
    /// The number, when this is an integer.
    public var int64Value: Int64? { if case .integer(let value) = self { value } else { nil } }
    /// The number as a `Double`, when this is any number.
    public var doubleValue: Double? {
        switch self {
        case .integer(let value): Double(value)
        case .number(let value): value
        default: nil
        }
    }

    /// The JSON type name as JSON Schema says it (`integer` for integers).
    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .integer: "integer"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// Parses JSON text (RFC 8259, strict).
    ///
    /// Arrays and objects nest at most 64 levels deep (the document itself is the first): a deeper
    /// document is refused (`syntax`, "nested more than 64 levels deep"), at the pointer where the
    /// 65th level opens.
    ///
    /// Besides the grammar it refuses what other languages' readers disagree on: bytes that are not
    /// UTF-8 (RFC 8259 §8.1: JSON exchanged between systems is UTF-8 — overlong forms, encoded
    /// surrogates and stray bytes included), a `\u` escape of a lone surrogate (`"\ud800"`: no
    /// character, not encodable in UTF-8), and an object with the same member name twice (§4: readers
    /// keep the first, the last, or both, so they would see different data).
    /// - Throws: ``JSONParseError`` with the line, column, the JSON pointer of the value concerned,
    ///   the rule broken and what was expected.
    public static func parse(_ data: Data) throws -> JSONValue {
        try data.withUnsafeBytes { raw in
            var parser = JSONParser(bytes: raw.bindMemory(to: UInt8.self))
            return try parser.parseDocument()
        }
    }

    /// Compact JSON text. Non-ASCII characters are kept as UTF-8. An object's members are written
    /// in the order of `String`'s `<` on their names, the order a ``JSONObject`` holds them in, so
    /// the same value always gives the same bytes (golden files and stored rows compare bytes).
    public func serialized() -> Data {
        // One allocation for the usual event body (an approval request is ~1 KB, a progress update
        // ~1.5 KB), instead of growing from 256 bytes through three copies.
        var output = JSONOutput(capacity: 2048)
        write(to: &output)
        return output.data
    }

    /// Appends the compact JSON text of ``serialized()`` to `bytes`, for a writer that
    /// builds a larger document around it without copying through `Data`.
    public func write(to bytes: inout [UInt8]) {
        var output = JSONOutput(capacity: 512)
        write(to: &output)
        output.append(to: &bytes)
    }

    /// Appends the compact JSON text of ``serialized()`` to `output`.
    public func write(to output: inout JSONOutput) {
        switch self {
        case .null: output.append("null")
        case .bool(let value): output.append(value ? "true" : "false")
        case .integer(let value): Self.writeInteger(value, to: &output)
        case .number(let value):
            if value.isFinite {
                output.appendUTF8(value.description)
            } else {
                output.append("null")
            }
        case .string(let value): Self.writeString(value, to: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                element.write(to: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            // The members are kept in the order sorted output has (``JSONObject``).
            output.append(UInt8(ascii: "{"))
            members.sortedMembers.withUnsafeBufferPointer { members in
                for index in members.indices {
                    if index > 0 { output.append(UInt8(ascii: ",")) }
                    Self.writeMember(members[index].key, members[index].value, to: &output)
                }
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// `"key":value`.
    private static func writeMember(_ key: String, _ value: JSONValue, to output: inout JSONOutput) {
        writeString(key, to: &output)
        output.append(UInt8(ascii: ":"))
        value.write(to: &output)
    }

    /// Appends an integer in decimal, as `Int64.description` writes it.
    public static func writeInteger(_ value: Int64, to output: inout JSONOutput) {
        output.appendDecimal(value)
    }

    /// Appends `value` as a JSON string (quoted, escaped as ``serialized()`` escapes).
    public static func writeString(_ value: String, to bytes: inout [UInt8]) {
        var output = JSONOutput(capacity: value.utf8.count + 16)
        writeString(value, to: &output)
        output.append(to: &bytes)
    }

    /// Appends `value` as a JSON string to `output` (quoted and escaped the same way).
    public static func writeString(_ value: String, to output: inout JSONOutput) {
        var value = value
        value.withUTF8 { utf8 in writeString(utf8, to: &output) }
    }

    /// Writes UTF-8 text as a JSON string: `"` and `\` escaped with a backslash, line feed, carriage
    /// return and tab as `\n`, `\r`, `\t`, the other control characters below U+0020 as `\u00xx`;
    /// everything else (non-ASCII included, which JSON needs no escape for) is copied as it is, in
    /// whole runs between the bytes that need an escape, found eight bytes at a time.
    static func writeString(_ utf8: UnsafeBufferPointer<UInt8>, to output: inout JSONOutput) {
        guard let base = utf8.baseAddress else {
            output.append("\"\"")
            return
        }
        let count = utf8.count
        // Room for the quotes and the text as it is: a string without escapes (the usual one)
        // checks the capacity once.
        output.reserve(count &+ 2)
        output.append(UInt8(ascii: "\""))
        var runStart = 0
        while true {
            let position = firstToEscape(base, from: runStart, count: count)
            if position > runStart {
                output.append(UnsafeBufferPointer(start: base + runStart, count: position - runStart))
            }
            if position == count { break }
            appendEscape(of: base[position], to: &output)
            runStart = position + 1
        }
        output.append(UInt8(ascii: "\""))
    }

    /// The position of the first byte from `start` that a JSON string must escape (below 0x20,
    /// `"` or `\`), or `count` when there is none.
    @inline(__always)
    static func firstToEscape(_ base: UnsafePointer<UInt8>, from start: Int, count: Int) -> Int {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        var position = start
        // Whether a word holds a byte below 0x20, a `"` or a `\` (the classic tests for a zero
        // byte, and for a byte below n, on the word and on the word XOR-ed with the character):
        // exact for the word as a whole, so a word without any is skipped entirely.
        while position &+ 8 <= count {
            let word = UnsafeRawPointer(base + position).loadUnaligned(as: UInt64.self)
            let quotes = word ^ (ones &* 0x22)
            let backslashes = word ^ (ones &* 0x5C)
            let found =
                ((word &- ones &* 0x20) & ~word) | ((quotes &- ones) & ~quotes) | ((backslashes &- ones) & ~backslashes)
            if found & highs != 0 { break }
            position &+= 8
        }
        while position < count {
            let byte = base[position]
            if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { return position }
            position &+= 1
        }
        return count
    }

    /// Appends the escape of one byte that needs one.
    private static func appendEscape(of byte: UInt8, to output: inout JSONOutput) {
        output.append(UInt8(ascii: "\\"))
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): output.append(byte)
        case 0x0A: output.append(UInt8(ascii: "n"))
        case 0x0D: output.append(UInt8(ascii: "r"))
        case 0x09: output.append(UInt8(ascii: "t"))
        default:
            let low = byte & 0xF
            output.append("u00")
            output.append(UInt8(ascii: "0") + (byte >> 4))
            output.append(low < 10 ? UInt8(ascii: "0") + low : UInt8(ascii: "a") + low - 10)
        }
    }
}

/// JSON text that could not be parsed: where, which rule, and what was expected.
public struct JSONParseError: Error, Sendable, CustomStringConvertible {
    /// The rule a document broke.
    public enum Rule: String, Sendable, Hashable {
        /// The grammar of RFC 8259.
        case syntax
        /// Text is UTF-8, and strings are Unicode characters (no lone surrogate in a `\u` escape).
        case utf8 = "utf-8"
        /// An object names each member once.
        case uniqueKeys = "unique-keys"
        /// A number is one a binary64 `Double` holds, integers exactly (RFC 7493, I-JSON §2.2): a
        /// reader in JavaScript or any reader of doubles would read another value otherwise.
        case numberRange = "number-range"
    }

    /// The byte offset of the problem.
    public var offset: Int
    /// 1-based line and column (in bytes) of the problem.
    public var line: Int
    public var column: Int
    /// The JSON pointer of the value being read (for a repeated member name: the object's), `""`
    /// for the whole document.
    public var pointer: String
    public var rule: Rule
    public var problem: String

    public init(offset: Int, line: Int, column: Int, pointer: String = "", rule: Rule = .syntax, problem: String) {
        self.offset = offset
        self.line = line
        self.column = column
        self.pointer = pointer
        self.rule = rule
        self.problem = problem
    }

    public var description: String {
        "invalid JSON at line \(line), column \(column) (\(pointer.isEmpty ? "/" : pointer)): \(rule.rawValue): \(problem)"
    }
}

/// A strict RFC 8259 parser over bytes.
struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0
    var depth = 0
    /// Where the value being read sits, outermost first: for a member, the offset of its name's
    /// opening quote; for an array element, −(index + 1). Offsets and not names, so that a valid
    /// document pays no string for it and a refused one needs no second pass to be located:
    /// ``error(_:_:)`` reads the names back into a JSON pointer (issue 12's floods: refusing
    /// must cost no more than accepting).
    var trail: [Int] = []
    /// The members of the objects being read, innermost last (see ``parseObject()``).
    var members: ContiguousArray<JSONObject.Member> = []
    /// How deep arrays and objects may nest (the outermost counts as one level). No government
    /// event body nests beyond about 8 levels; 64 is generous and keeps what a refusal of a deeper
    /// body costs small (read to the limit, a pointer of as many steps): issue 12's floods, where
    /// refusing must cost no more than accepting. It was 512.
    static let maximumDepth = 64
    /// 2⁵³ − 1: the largest integer every reader of doubles reads exactly.
    static let largestExactInteger: UInt64 = 9_007_199_254_740_991
    /// Objects with up to this many members find a repeated name by comparing names.
    static let scanLimit = 16

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    mutating func parseDocument() throws -> JSONValue {
        skipWhitespace()
        let value = try parseValue()
        skipWhitespace()
        if index < bytes.count { throw error("unexpected text after the end of the document") }
        return value
    }

    func error(_ problem: String, _ rule: JSONParseError.Rule = .syntax) -> JSONParseError {
        var line = 1
        var lineStart = 0
        for position in 0..<min(index, bytes.count) where bytes[position] == 0x0A {
            line += 1
            lineStart = position + 1
        }
        return JSONParseError(
            offset: index, line: line, column: index - lineStart + 1, pointer: pointer(), rule: rule, problem: problem)
    }

    /// The RFC 6901 pointer of the value being read, from ``trail`` (`""`: the whole document),
    /// `~` and `/` in names escaped as `~0` and `~1`. The names on the trail were read already, so
    /// reading them again cannot fail.
    func pointer() -> String {
        if trail.isEmpty { return "" }
        // Built as bytes and made a string once: a document nested to the limit has a pointer of
        // as many steps, and appending to a String step by step showed in a flood's profile.
        var text: [UInt8] = []
        text.reserveCapacity(trail.count * 4)
        for step in trail {
            text.append(UInt8(ascii: "/"))
            if step < 0 {
                text.append(contentsOf: String(-(step + 1)).utf8)
                continue
            }
            var name = JSONParser(bytes: bytes)
            name.index = step
            for byte in ((try? name.parseString()) ?? "").utf8 {
                switch byte {
                case UInt8(ascii: "~"): text += [UInt8(ascii: "~"), UInt8(ascii: "0")]
                case UInt8(ascii: "/"): text += [UInt8(ascii: "~"), UInt8(ascii: "1")]
                default: text.append(byte)
                }
            }
        }
        return String(decoding: text, as: UTF8.self)
    }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    mutating func parseValue() throws -> JSONValue {
        guard index < bytes.count else { throw error("unexpected end of the document, expected a value") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected character '\(Character(Unicode.Scalar(bytes[index])))', expected a value")
        }
    }

    mutating func literal(_ text: StaticString, _ value: JSONValue) throws -> JSONValue {
        let count = text.utf8CodeUnitCount
        guard index + count <= bytes.count,
            memcmp(bytes.baseAddress! + index, text.utf8Start, count) == 0
        else { throw error("invalid literal, expected \(text)") }
        index += count
        return value
    }

    mutating func enter() throws {
        depth += 1
        if depth > Self.maximumDepth { throw error("nested more than \(Self.maximumDepth) levels deep") }
    }

    mutating func parseObject() throws -> JSONValue {
        try enter()
        defer { depth -= 1 }
        index += 1
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object([:])
        }
        // The members are gathered on a stack shared by every object of the document, and the
        // object is made once from them, sorted by name (``JSONObject``; nothing moves when the
        // document was written sorted). Repeated names are found by comparing with the names read
        // so far (objects are small), or, past `Self.scanLimit` members, in a dictionary (a
        // flood's padding of thousands of members).
        let base = members.count
        // Popped one by one: `removeSubrange(base...)` looked up generic metadata on every object.
        defer { while members.count > base { members.removeLast() } }
        var large: [String: JSONValue]?
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw error("expected a member name in double quotes")
            }
            let keyStart = index
            let key = try parseString()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':' after a member name") }
            index += 1
            skipWhitespace()
            trail.append(keyStart)
            let value = try parseValue()
            trail.removeLast()
            var repeated = false
            if large != nil {
                repeated = large!.updateValue(value, forKey: key) != nil
            } else {
                for position in base..<members.count where members[position].key == key {
                    repeated = true
                    break
                }
                members.append(JSONObject.Member(key: key, value: value))
                if members.count - base > Self.scanLimit {
                    var dictionary = [String: JSONValue](minimumCapacity: 2 * Self.scanLimit)
                    for position in base..<members.count { dictionary[members[position].key] = members[position].value }
                    large = dictionary
                    while members.count > base { members.removeLast() }
                }
            }
            if repeated {
                index = keyStart
                throw error("the member name \"\(key)\" appears twice in this object", .uniqueKeys)
            }
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of the document in an object") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            if bytes[index] == UInt8(ascii: "}") {
                index += 1
                if let large { return .object(JSONObject(large)) }
                // Names already known to differ: sorted (most documents are written sorted, and
                // then nothing moves).
                return .object(JSONObject(sorting: ContiguousArray(members[base...])))
            }
            throw error("expected ',' or '}' after an object member")
        }
    }

    mutating func parseArray() throws -> JSONValue {
        try enter()
        defer { depth -= 1 }
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            trail.append(-(elements.count + 1))
            elements.append(try parseValue())
            trail.removeLast()
            skipWhitespace()
            guard index < bytes.count else { throw error("unexpected end of the document in an array") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            if bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            throw error("expected ',' or ']' after an array element")
        }
    }

    mutating func parseString() throws -> String {
        index += 1
        let start = index
        // Every byte of the string OR-ed together: below 0x80, the string is ASCII and needs no
        // UTF-8 check. The check, when needed, is ``UTF8Check/isValid(_:)``'s and the string is
        // then made with `String(decoding:as:)`: `String(validating:as:)` is generic over the
        // encoding and looked up type metadata on every call (a fifth of a flood's profile).
        var seen: UInt8 = 0
        // Fast path: no escapes.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let text = UnsafeBufferPointer(rebasing: bytes[start..<index])
                guard seen < 0x80 || UTF8Check.isValid(text) else { throw utf8Error(from: start) }
                index += 1
                return String(decoding: text, as: UTF8.self)
            }
            if byte == UInt8(ascii: "\\") || byte < 0x20 { break }
            seen |= byte
            index += 1
        }
        var result = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                // Escapes add only valid UTF-8, so a problem lies in the bytes as written.
                let valid = seen < 0x80 || result.withUnsafeBufferPointer { UTF8Check.isValid($0) }
                guard valid else { throw utf8Error(from: start) }
                index += 1
                return String(decoding: result, as: UTF8.self)
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { throw error("unterminated escape") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): result.append(0x22)
                case UInt8(ascii: "\\"): result.append(0x5C)
                case UInt8(ascii: "/"): result.append(0x2F)
                case UInt8(ascii: "b"): result.append(0x08)
                case UInt8(ascii: "f"): result.append(0x0C)
                case UInt8(ascii: "n"): result.append(0x0A)
                case UInt8(ascii: "r"): result.append(0x0D)
                case UInt8(ascii: "t"): result.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        let escape = String(scalar, radix: 16)
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                            bytes[index + 1] == UInt8(ascii: "u")
                        else {
                            index -= 6
                            throw error(
                                "\\u\(escape) is a lone high surrogate (it must be followed by a low surrogate \\udc00-\\udfff); it is no character and has no UTF-8 form",
                                .utf8)
                        }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else {
                            index -= 12
                            throw error(
                                "\\u\(escape) is a high surrogate not followed by a low surrogate (\\udc00-\\udfff); it has no UTF-8 form",
                                .utf8)
                        }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        index -= 6
                        throw error(
                            "\\u\(String(scalar, radix: 16)) is a lone low surrogate; it is no character and has no UTF-8 form",
                            .utf8)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                    result += Array(String(Character(unicode)).utf8)
                default:
                    index -= 1
                    throw error("invalid escape '\\\(Character(Unicode.Scalar(escape)))'")
                }
            case 0..<0x20:
                throw error("a control character must be escaped in a string")
            default:
                seen |= byte
                result.append(byte)
                index += 1
            }
        }
        throw error("unterminated string")
    }

    /// The error for a string holding bytes that are not UTF-8, at the first bad byte from `start`.
    mutating func utf8Error(from start: Int) -> JSONParseError {
        var position = start
        while position < bytes.count {
            switch UTF8Check.sequence(in: bytes, at: position) {
            case .valid(let length): position += length
            case .invalid(let problem):
                index = position
                return error(problem, .utf8)
            }
        }
        index = start
        return error("the string is not valid UTF-8", .utf8)
    }

    mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("a \\u escape needs four hex digits") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw error("a \\u escape needs four hex digits")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    mutating func parseNumber() throws -> JSONValue {
        let start = index
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
            throw error("expected a digit")
        }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
            if index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                throw error("a number must not have a leading zero")
            }
        } else {
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        var integral = true
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            integral = false
            index += 1
            guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
                throw error("expected a digit after the decimal point")
            }
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            integral = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
                throw error("expected a digit in the exponent")
            }
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
        }
        // An integer of up to 15 digits is below 2⁵³ (see below): read it without making text first.
        let negative = bytes[start] == UInt8(ascii: "-")
        if integral, index - start - (negative ? 1 : 0) <= 15 {
            var value: Int64 = 0
            for position in (negative ? start + 1 : start)..<index {
                value = value * 10 + Int64(bytes[position] &- UInt8(ascii: "0"))
            }
            return .integer(negative ? -value : value)
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        // What a reader of doubles reads must be what was written: an integer beyond ±(2⁵³−1)
        // would read as a neighbour, a number beyond the double range as infinity (issue 12's
        // hostile corpus published 1e400 and 9007199254740993 as valid amounts).
        func outOfRange(_ why: String) -> JSONParseError {
            index = start
            let shown = text.count > 40 ? "\(text.prefix(20))…(\(text.count) characters)" : text
            return error("the number \(shown) \(why)", .numberRange)
        }
        if integral {
            guard let value = Int64(text), value.magnitude <= Self.largestExactInteger else {
                throw outOfRange("is beyond ±9007199254740991, the integers a Double holds exactly (RFC 7493): send it as a string")
            }
            return .integer(value)
        }
        guard let value = Double(text) else { throw error("invalid number \(text)") }
        guard value.isFinite else {
            throw outOfRange("is beyond the range of a Double (about ±1.8e308): send it as a string")
        }
        if value == 0, text.prefix(while: { $0 != "e" && $0 != "E" }).contains(where: { $0 >= "1" && $0 <= "9" }) {
            throw outOfRange("is too small for a Double, which reads it as 0: send it as a string")
        }
        return .number(value)
    }
}

/// Names what is wrong with a UTF-8 sequence, by the table of well-formed sequences of Unicode
/// (§3.9, table 3-7): overlong forms, encoded surrogates and code points past U+10FFFF are not UTF-8.
enum UTF8Check {
    enum Result {
        case valid(Int)
        case invalid(String)
    }

    /// Whether `bytes` are well-formed UTF-8 (the same table as ``sequence(in:at:)``).
    static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var position = 0
        while position < bytes.count {
            if bytes[position] < 0x80 {
                position += 1
                continue
            }
            guard case .valid(let length) = sequence(in: bytes, at: position) else { return false }
            position += length
        }
        return true
    }

    static func sequence(in bytes: UnsafeBufferPointer<UInt8>, at start: Int) -> Result {
        let lead = bytes[start]
        func hex(_ byte: UInt8) -> String { "0x" + String(byte, radix: 16, uppercase: true) }
        let length: Int
        var second: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0x00...0x7F: return .valid(1)
        case 0x80...0xBF: return .invalid("byte \(hex(lead)) is a continuation byte without a lead byte: not UTF-8")
        case 0xC0, 0xC1: return .invalid("bytes \(hex(lead)) … are an overlong encoding: not UTF-8")
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            second = 0xA0...0xBF
        case 0xED:
            length = 3
            second = 0x80...0x9F
        case 0xE1...0xEF: length = 3
        case 0xF0:
            length = 4
            second = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            second = 0x80...0x8F
        default: return .invalid("byte \(hex(lead)) never occurs in UTF-8")
        }
        guard start + 1 < bytes.count, (0x80...0xBF).contains(bytes[start + 1]) else {
            return .invalid("byte \(hex(lead)) starts a \(length)-byte sequence that is cut short: not UTF-8")
        }
        guard second.contains(bytes[start + 1]) else {
            let kind =
                switch lead {
                case 0xED: "a UTF-16 surrogate encoded in UTF-8 (CESU-8), which UTF-8 forbids"
                case 0xF4: "a code point past U+10FFFF"
                default: "an overlong encoding"
                }
            return .invalid("bytes \(hex(lead)) \(hex(bytes[start + 1])) … are \(kind): not UTF-8")
        }
        for offset in 2..<length {
            guard start + offset < bytes.count, (0x80...0xBF).contains(bytes[start + offset]) else {
                return .invalid("byte \(hex(lead)) starts a \(length)-byte sequence that is cut short: not UTF-8")
            }
        }
        return .valid(length)
    }
}
