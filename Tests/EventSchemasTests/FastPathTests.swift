@testable import EventSchemas
import Foundation
import Testing

/// The writer and the validator take shortcuts (issue 9: runs of a string copied whole, found eight
/// bytes at a time; members sorted by their first bytes; properties found without hashing; patterns
/// run over UTF-8). Each is checked here against the plain definition it stands for: the bytes
/// written are those of escaping byte by byte and sorting names with `<`, and the violations those
/// of looking each property up in the instance.
@Suite("Shortcuts in writing and validating JSON")
struct FastPathTests {
    /// JSON text as the writer made it before the shortcuts: every byte looked at on its own, members
    /// sorted by `<` on their names.
    static func reference(_ value: JSONValue) -> [UInt8] {
        switch value {
        case .string(let text): return referenceString(text)
        case .array(let elements):
            return Array("[".utf8) + Array(elements.map(reference).joined(separator: Array(",".utf8))) + Array("]".utf8)
        case .object(let members):
            let parts = members.sorted { $0.key < $1.key }.map { referenceString($0.key) + Array(":".utf8) + reference($0.value) }
            return Array("{".utf8) + Array(parts.joined(separator: Array(",".utf8))) + Array("}".utf8)
        default: return Array(value.serialized())
        }
    }

    static func referenceString(_ text: String) -> [UInt8] {
        var bytes = Array("\"".utf8)
        for byte in text.utf8 {
            switch byte {
            case 0x22: bytes += Array(#"\""#.utf8)
            case 0x5C: bytes += Array(#"\\"#.utf8)
            case 0x0A: bytes += Array(#"\n"#.utf8)
            case 0x0D: bytes += Array(#"\r"#.utf8)
            case 0x09: bytes += Array(#"\t"#.utf8)
            case 0..<0x20: bytes += Array(String(format: "\\u%04x", byte).utf8)
            default: bytes.append(byte)
            }
        }
        return bytes + Array("\"".utf8)
    }

    /// Every character that needs an escape, and some that do not (DEL, non-ASCII of two, three and
    /// four bytes), at every position of strings of 0 to 24 characters: each word boundary of the
    /// eight-byte scan is crossed, at the start, in the middle and in the tail.
    @Test func everyEscapeClassAtEveryPosition() throws {
        let specials: [String] =
            (0..<0x20).map { String(UnicodeScalar(UInt8($0))) } + ["\"", "\\", "\u{7F}", "é", "李", "😀", "/", " "]
        for special in specials {
            for length in 0...24 {
                for position in 0...length {
                    let text = String(repeating: "a", count: position) + special + String(repeating: "b", count: length - position)
                    let written = Array(JSONValue.string(text).serialized())
                    #expect(written == Self.referenceString(text), "\(Array(text.utf8))")
                    #expect(try JSONValue.parse(Data(written)) == .string(text))
                }
            }
        }
    }

    /// Long text (a progress update's Chinese, thousands of bytes) with escapes scattered in it, and
    /// strings made only of escapes.
    @Test func longAndEscapeOnlyStrings() throws {
        let chinese = String(repeating: "市场监督管理局已受理您的营业执照申请，请耐心等待。", count: 40)
        let texts = [
            chinese, chinese + "\n", "\"" + chinese + "\\", chinese.replacingOccurrences(of: "。", with: "。\t\u{1}\"\\\r\n"),
            String(repeating: "\"", count: 100), String(repeating: "\u{0}", count: 33), String(repeating: "x", count: 4096),
        ]
        for text in texts {
            let written = Array(JSONValue.string(text).serialized())
            #expect(written == Self.referenceString(text))
            #expect(try JSONValue.parse(Data(written)) == .string(text))
        }
    }

    /// Names whose order needs more than their first 16 bytes, names with NUL bytes and prefixes of
    /// one another, the empty name, and non-ASCII names where `<` (canonical order) and byte order
    /// differ: U+212B ANGSTROM SIGN is U+00C5 to `<`, so it sorts before U+00C6, whose UTF-8 is smaller.
    @Test(arguments: [
        ["b", "a", "c"],
        ["applicationId", "applicant", "applicationType", "application", "app", ""],
        ["abcdefghijklmnopq2", "abcdefghijklmnopq1", "abcdefghijklmnop", "abcdefghijklmnopqr", "abcdefgh"],
        ["a", "a\u{0}", "a\u{0}b", "a\u{1}", "\u{0}", "A", "Z", "_", "~"],
        ["\u{212B}", "\u{00C6}", "\u{00C4}", "B"],
        ["申请人", "applicant", "材料", "status", "é"],
    ])
    func membersAreSortedAsNamesCompare(_ names: [String]) throws {
        var members: JSONObject = [:]
        for (index, name) in names.enumerated() {
            members[name] = index % 2 == 0 ? .integer(Int64(index)) : .object(["z": .null, "y": .string(name), "x": .array([])])
        }
        let value = JSONValue.object(["outer": .object(members), "list": .array([.object(members)])])
        let written = Array(value.serialized())
        #expect(written == Self.reference(value))
        let order = names.sorted()
        let text = String(decoding: JSONValue.object(members).serialized(), as: UTF8.self)
        let positions = order.map { text.range(of: String(decoding: Self.referenceString($0), as: UTF8.self) + ":")!.lowerBound }
        #expect(positions == positions.sorted(), "\(order)")
        // Unsorted output holds the same members.
        #expect(try JSONValue.parse(value.serialized()) == value)
    }

    /// Integers are written digit by digit into a buffer on the stack (``JSONOutput``): the text is
    /// `Int64`'s own, at the edges of every digit count and of the type.
    @Test func integersAreWrittenAsInt64WritesThem() throws {
        var values: [Int64] = [0, -1, 1, 9, 10, 99, 100, .max, .min, .max - 1, .min + 1]
        var power: Int64 = 1
        for _ in 0..<18 {
            power *= 10
            values += [power - 1, power, power + 1, -(power - 1), -power, -(power + 1)]
        }
        var generator = SystemRandomNumberGenerator()
        values += (0..<500).map { _ in Int64.random(in: .min ... .max, using: &generator) }
        for value in values {
            #expect(String(decoding: JSONValue.integer(value).serialized(), as: UTF8.self) == String(value))
        }
        let list = JSONValue.array(values.map { .integer($0) })
        #expect(String(decoding: list.serialized(), as: UTF8.self) == "[" + values.map(String.init).joined(separator: ",") + "]")
    }

    /// The buffer grows past its first capacity keeping what it holds, and the writers into a
    /// `[UInt8]` append after what the array holds: the same bytes as the reference either way.
    @Test func theOutputBufferGrowsAndAppends() throws {
        var members: JSONObject = [:]
        for index in 0..<300 {
            members["member-\(index)"] = .array([.string("值\(index)\n"), .integer(Int64(index)), .bool(index % 2 == 0), .null])
        }
        let value = JSONValue.object(members)
        let reference = Self.reference(value)
        #expect(reference.count > 3 * 2048)
        #expect(Array(value.serialized()) == reference)
        var bytes = Array("prefix:".utf8)
        value.write(to: &bytes)
        #expect(bytes == Array("prefix:".utf8) + reference)
        var quoted = Array("x".utf8)
        JSONValue.writeString("a\"b", to: &quoted)
        #expect(quoted == Array("x".utf8) + Self.referenceString("a\"b"))
        var output = JSONOutput(capacity: 1)
        for _ in 0..<1000 { output.append(UInt8(ascii: "a")) }
        output.append("bc")
        #expect(output.bytes == Array(repeating: UInt8(ascii: "a"), count: 1000) + Array("bc".utf8))
        #expect(output.count == 1002)
        // A member name written as it is: what escaping it as a string and a colon give.
        var names = JSONOutput(capacity: 1)
        names.appendMemberName("applicationId")
        names.appendMemberName("x")
        names.appendMemberName("")
        #expect(
            names.bytes == Self.referenceString("applicationId") + Array(":".utf8) + Self.referenceString("x")
                + Array(":".utf8) + Self.referenceString("") + Array(":".utf8))
    }

    /// ``JSONOutput/appendDescription(of:)`` writes what `Double.description` writes: whole
    /// milliseconds (its shortcut) at every number of decimals, whole numbers, and everything it
    /// leaves to `description` (negative zero, finer fractions, large and tiny values).
    @Test func doublesAreWrittenAsTheirDescription() {
        var values: [Double] = [
            0, -0.0, 1, 0.001, 0.01, 0.1, 0.5, 0.0005, 1e-7, 0.123, 0.12, 0.1 + 0.2, 801_234_567, 801_234_567.1,
            801_234_567.12, 801_234_567.123, 801_234_567.1234, 1_099_511_627_775.999, 1_099_511_627_776,
            1_099_511_627_776.5, 1e15, 1e16, 1e300, -1.5, -801_234_567.25, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
            .infinity, -.infinity, .nan,
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let milliseconds = Int64.random(in: 0...1_099_511_627_775_999, using: &generator)
            values.append(Double(milliseconds) / 1000)
            values.append(Date(timeIntervalSince1970: Double(milliseconds % 4_000_000_000_000) / 1000).timeIntervalSinceReferenceDate)
            values.append(Double.random(in: 0..<1e12, using: &generator))
            values.append(Double(Int64.random(in: 0..<1_000_000_000, using: &generator)))
        }
        for value in values {
            var output = JSONOutput(capacity: 8)
            output.appendDescription(of: value)
            #expect(String(decoding: output.bytes, as: UTF8.self) == value.description, "\(value.bitPattern)")
        }
    }

    func schema(_ text: String) throws -> JSONSchema { try JSONSchema(data: Data(text.utf8), name: "test") }

    /// Violations come in property-name order whatever order the instance's members are in, with
    /// missing required members first and members no property names last, in name order.
    @Test func violationsKeepTheirOrder() throws {
        let properties = (0..<20).map { #""p\#($0)":{"type":"integer"}"# }.joined(separator: ",")
        let s = try schema(
            #"{"type":"object","required":["p3","p19"],"additionalProperties":false,"properties":{\#(properties)}}"#)
        var members: JSONObject = [:]
        for index in [0, 5, 7, 11, 18] { members["p\(index)"] = .string("x") }
        members["zz"] = .integer(1)
        members["extra"] = .integer(1)
        let violations = s.validate(.object(members)).map(\.description)
        #expect(
            violations == [
                "/p3: required: is missing", "/p19: required: is missing", "/p0: type: should be integer, found string",
                "/p11: type: should be integer, found string", "/p18: type: should be integer, found string",
                "/p5: type: should be integer, found string", "/p7: type: should be integer, found string",
                "/extra: additionalProperties: is not allowed here", "/zz: additionalProperties: is not allowed here",
            ])
        // Many more members than properties (looked up property by property): the same order.
        var wide: JSONObject = ["p2": .string("x"), "p1": .string("y")]
        for index in 0..<50 { wide["m\(index)"] = .integer(Int64(index)) }
        let few = try schema(
            #"{"type":"object","properties":{"p1":{"type":"integer"},"p2":{"type":"integer"}},"additionalProperties":{"type":"integer"}}"#
        )
        #expect(
            few.validate(.object(wide)).map(\.description) == [
                "/p1: type: should be integer, found string", "/p2: type: should be integer, found string",
            ])
    }

    /// A member name that is not ASCII but equals a property's name as `String`s compare (U+212A
    /// KELVIN SIGN is `K`) is that property, as it was when members were looked up by name; a
    /// property with a non-ASCII name is found too.
    @Test func nonASCIINamesFindTheirProperties() throws {
        let s = try schema(
            #"{"type":"object","additionalProperties":false,"properties":{"K":{"type":"integer"},"名称":{"type":"string"},"a":{}}}"#)
        #expect(s.validate(.object(["\u{212A}": .integer(1)])) == [])
        #expect(s.validate(.object(["\u{212A}": .string("x")])).map(\.description) == ["/K: type: should be integer, found string"])
        #expect(s.validate(.object(["名称": .integer(1)])).map(\.description) == ["/名称: type: should be string, found integer"])
        #expect(s.validate(.object(["名": .integer(1)])).map(\.description) == ["/名: additionalProperties: is not allowed here"])
        #expect(s.validate(.object(["K": .integer(1), "名称": .string("x"), "a": .null])) == [])
    }

    /// `$ref` chains (a property that is only a reference, to a definition that is one too) validate
    /// as their target, with the member's pointer.
    @Test func referencesValidateAsTheirTargets() throws {
        let s = try schema(
            ##"{"type":"object","properties":{"at":{"$ref":"#/$defs/instant"},"again":{"$ref":"#/$defs/alias"}},"$defs":{"instant":{"type":"string","format":"date-time"},"alias":{"$ref":"#/$defs/instant"}}}"##
        )
        #expect(s.validate(.object(["at": .string("2026-05-28T09:00:00+08:00"), "again": .string("2026-05-28T09:00:00Z")])) == [])
        #expect(
            s.validate(.object(["at": .string("yesterday"), "again": .integer(3)])).map(\.description) == [
                "/again: type: should be string, found integer",
                "/at: format: date-time: should be a date and time like 2025-01-31T08:30:00+08:00",
            ])
    }

    /// Lengths count Unicode scalars (counted from the UTF-8 bytes): two-, three- and four-byte
    /// characters and combining marks each count one.
    @Test func lengthsCountScalars() throws {
        let s = try schema(#"{"type":"string","minLength":3,"maxLength":4}"#)
        for text in ["abc", "李小明", "é😀x", "e\u{301}x", "李小明王"] { #expect(s.validate(.string(text)) == [], "\(text)") }
        #expect(s.validate(.string("李小")).map(\.message) == ["should have at least 3 characters, has 2"])
        #expect(s.validate(.string("😀😀😀😀😀")).map(\.message) == ["should have at most 4 characters, has 5"])
        #expect(s.validate(.string("e\u{301}e\u{301}e")).map(\.message) == ["should have at most 4 characters, has 5"])
    }

    /// Patterns over text with non-ASCII characters before, inside and after a match; anchored
    /// patterns that fail early; classes of non-ASCII ranges.
    @Test func patternsOverUTF8() throws {
        let cases: [(String, [String], [String])] = [
            ("[0-9]{3}", ["李123", "😀😀123😀", "é1234"], ["李12", "1李23", ""]),
            ("^[A-Z]{2}", ["AB", "AB李", "ABC1"], ["1AB", "李AB", "A"]),
            ("^[一-龥]+$", ["李小明", "王"], ["李a", "a李", "", "😀"]),
            ("^[😀-😂]x$", ["😀x", "😂x"], ["😃x", "x"]),
            ("^[^a]+$", ["李😀é", "b"], ["李a"]),
            ("明$", ["李小明"], ["明小"]),
        ]
        for (pattern, good, bad) in cases {
            let compiled = try SchemaPattern(pattern)
            #expect(compiled.isCompiled, "\(pattern)")
            for text in good { #expect(compiled.matches(text), "\(pattern) should match \(text)") }
            for text in bad { #expect(!compiled.matches(text), "\(pattern) should not match \(text)") }
        }
    }

    /// The one-pass matcher (``LinearPattern``) takes the patterns of the shape it is exact for,
    /// refuses the others, and answers as the automaton does: every pattern the schemas in
    /// `Topics/schemas` use, and harder ones, on texts made of the patterns' own characters and
    /// a few others (every text up to 3 characters of a small alphabet, and random longer ones).
    @Test func onePassPatternsAnswerAsTheAutomaton() throws {
        let linear = [
            "^[A-Z]{2,4}-[0-9]{4}-[0-9]{6}$", "^[0-9]{9,12}$", "^[0-9A-Z]{8,28}$", "^[a-z][a-z0-9-]*$",
            "^[a-zA-Z0-9._-]+/[0-9]+/[0-9]+$", "^JY[0-9]{14}$", "^a?$", "^[ab]{0,2}c+$", "^$", "^x{0}y$",
        ]
        let notLinear = [
            "^[0-9]{4}-(0[1-9]|1[0-2])$",  // a group
            "[0-9]{3}",  // not anchored
            "^a*a$",  // a run giving back to the next of its own class
            "^a+b?c$",  // a varying run followed by an optional one
            "^[^a]+$",  // negated
            "^[一-龥]+$",  // not ASCII
        ]
        for pattern in linear { #expect(try SchemaPattern(pattern).isLinear, "\(pattern)") }
        for pattern in notLinear { #expect(try !SchemaPattern(pattern).isLinear, "\(pattern)") }
        let alphabet = Array("aAbcxyZ09-./_李")
        var generator = SystemRandomNumberGenerator()
        for pattern in linear {
            let compiled = try SchemaPattern(pattern)
            var texts: [String] = [""]
            var frontier: [String] = [""]
            for _ in 0..<3 {
                frontier = frontier.flatMap { prefix in alphabet.map { prefix + String($0) } }
                texts += frontier
            }
            let own = Array(Set(pattern.filter { $0.isLetter || $0.isNumber || "-./_".contains($0) }))
            for _ in 0..<3_000 {
                let length = Int.random(in: 0...30, using: &generator)
                texts.append(String((0..<length).map { _ in
                    Bool.random(using: &generator) && !own.isEmpty ? own.randomElement(using: &generator)! : alphabet.randomElement(using: &generator)!
                }))
            }
            texts += ["AB-2025-000123", "ABCDE-2025-000123", "RA-2025-00012", "123456789", "1234567890123", "abc-9", "a.b/1/2", "JY20250101000001"]
            for text in texts {
                #expect(compiled.matches(text) == compiled.automatonMatches(text), "\(pattern) on \(text)")
            }
        }
    }
}
