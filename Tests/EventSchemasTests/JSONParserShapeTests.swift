@testable import EventSchemas
import Foundation
import Testing

/// The parser gathers an object's members on one stack and reads integers without making text:
/// objects nested in objects and arrays, objects past the size where repeated names are looked up
/// in a dictionary, and integers up to the edge of the exact range read as they did.
@Suite struct JSONParserShapeTests {
    func parseError(_ text: String) -> JSONParseError? {
        do {
            _ = try JSONValue.parse(Data(text.utf8))
            return nil
        } catch {
            return error as? JSONParseError
        }
    }

    /// `{"m0":0,…}` with `count` members, nested objects every third one.
    static func wide(_ count: Int, repeating repeated: Int? = nil) -> String {
        var members = (0..<count).map { index in
            index % 3 == 0 ? "\"m\(index)\":{\"a\":[{\"b\":\(index)}],\"c\":\"\(index)\"}" : "\"m\(index)\":\(index)"
        }
        if let repeated { members.append("\"m\(repeated)\":true") }
        return "{" + members.joined(separator: ",") + "}"
    }

    @Test(arguments: [0, 1, 15, 16, 17, 40])
    func objectsOfEverySize(count: Int) throws {
        let value = try JSONValue.parse(Data(Self.wide(count).utf8))
        let members = try #require(value.objectValue)
        #expect(members.count == count)
        for index in 0..<count {
            let expected: JSONValue =
                index % 3 == 0
                ? .object(["a": .array([.object(["b": .integer(Int64(index))])]), "c": .string("\(index)")])
                : .integer(Int64(index))
            #expect(members["m\(index)"] == expected)
        }
        // What it writes reads back the same.
        #expect(try JSONValue.parse(value.serialized()) == value)
    }

    @Test(arguments: [(3, 1), (16, 0), (17, 16), (40, 2), (40, 39)])
    func aRepeatedNameInAnyObjectIsRefused(count: Int, repeated: Int) throws {
        let text = Self.wide(count, repeating: repeated)
        let error = try #require(parseError(text))
        #expect(error.rule == .uniqueKeys)
        #expect(error.pointer == "")
        #expect(error.problem.contains("\"m\(repeated)\""), "\(error.problem)")
        // The error points at the repeated name.
        #expect(error.offset == text.utf8.count - "\"m\(repeated)\":true}".utf8.count)
        let nested = try #require(parseError(#"{"x":[1,{"y":"# + Self.wide(count, repeating: repeated) + "}]}"))
        #expect(nested.pointer == "/x/1/y" && nested.rule == .uniqueKeys)
    }

    /// A refusal is located in the one pass that finds it (issue 12's floods: refusing must cost no
    /// more than accepting): the pointer is read back from where the names began, so names written
    /// with escapes come out as the names, `~` and `/` escaped as RFC 6901 says.
    @Test func theRefusedFieldIsNamedWithoutASecondPass() throws {
        let cases: [(String, String)] = [
            (#"{"a":{"b":[1,2,{"c":tru}]}}"#, "/a/b/2/c"),
            (#"{"a\/b":{"c~d":[0,{"e\u0066":nul}]}}"#, "/a~1b/c~0d/1/ef"),
            (#"{"x\u002fy":[[],[1,"\ud800"]]}"#, "/x~1y/1/1"),
            (#"{"ok":1,"bad":{"k":1,"k":2}}"#, "/bad"),
            (#"{"n":[1e400]}"#, "/n/0"),
            (#"{"s":"\#u{1}"}"#, "/s"),
            ("[1,", "/1"),
        ]
        for (text, pointer) in cases {
            let error = try #require(parseError(text), "\(text)")
            #expect(error.pointer == pointer, "\(text): \(error)")
        }
        // Nested past the limit: every level on the way is named.
        let deep = #"{"reason":"# + String(repeating: "[", count: 600) + String(repeating: "]", count: 600) + "}"
        let error = try #require(parseError(deep))
        #expect(error.pointer == "/reason" + String(repeating: "/0", count: JSONParser.maximumDepth - 1), "\(error.pointer.prefix(40))")
        #expect(error.problem.contains("nested more than"))
    }

    /// Arrays and objects nest at most 64 levels (the document being the first): 64 are read, the
    /// 65th is refused, naming the limit, at the pointer where it opens.
    @Test(arguments: [("[", "]"), (#"{"a":"#, "}")])
    func nestingStopsAt64Levels(_ opener: String, _ closer: String) throws {
        #expect(JSONParser.maximumDepth == 64)
        func nested(_ depth: Int) -> String {
            String(repeating: opener, count: depth) + "1" + String(repeating: closer, count: depth)
        }
        var value = try JSONValue.parse(Data(nested(64).utf8))
        for _ in 0..<64 {
            switch value {
            case .array(let elements): value = try #require(elements.first)
            case .object(let members): value = try #require(members["a"])
            default: Issue.record("\(value) is not nested 64 levels")
            }
        }
        #expect(value == .integer(1))
        for depth in [65, 66, 513, 5000] {
            let error = try #require(parseError(nested(depth)), "\(depth) levels accepted")
            #expect(error.rule == .syntax)
            #expect(error.problem == "nested more than 64 levels deep", "\(error)")
            let step = opener == "[" ? "/0" : "/a"
            #expect(error.pointer == String(repeating: step, count: 64), "\(depth): \(error.pointer)")
            #expect(error.offset == 64 * opener.utf8.count, "\(depth): the 65th level opens there")
        }
    }

    /// Integers read exactly up to ±(2⁵³−1), on the fast path (up to 15 digits) and the slow one;
    /// beyond it, and beyond a Double's range, the reader refuses (`number-range`, issue 12).
    @Test func integersAtTheEdgesOfTheExactRange() throws {
        let cases: [(String, JSONValue)] = [
            ("0", .integer(0)), ("-0", .integer(0)), ("7", .integer(7)), ("-7", .integer(-7)),
            ("999999999999999", .integer(999_999_999_999_999)),
            ("-999999999999999", .integer(-999_999_999_999_999)),
            ("1000000000000000", .integer(1_000_000_000_000_000)),
            ("9007199254740991", .integer(9_007_199_254_740_991)),
            ("-9007199254740991", .integer(-9_007_199_254_740_991)),
            ("1.5", .number(1.5)), ("1e3", .number(1000)), ("-2.50E-1", .number(-0.25)),
        ]
        for (text, expected) in cases {
            #expect(try JSONValue.parse(Data(text.utf8)) == expected, "\(text)")
            #expect(try JSONValue.parse(Data("[\(text)]".utf8)) == .array([expected]), "\(text)")
        }
        for text in ["9007199254740992", "-9007199254740992", "9223372036854775807", "12345678901234567890123", "1e400", "1e-400"] {
            #expect(parseError(text)?.rule == .numberRange, "\(text)")
        }
        for text in ["01", "-", "-01", "1.", "+1", "1e"] {
            #expect(parseError(text)?.rule == .syntax, "\(text)")
        }
    }

    @Test func stringsAreWrittenWithTheirEscapes() throws {
        let text = "a\"b\\c\nd\re\tf\u{01}g/李😀"
        var bytes: [UInt8] = []
        JSONValue.writeString(text, to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == #""a\"b\\c\nd\re\tf\u0001g/李😀""#)
        #expect(try JSONValue.parse(Data(bytes)) == .string(text))
        var plain: [UInt8] = []
        JSONValue.writeString("陈美玲 RA-2026-000001", to: &plain)
        #expect(String(decoding: plain, as: UTF8.self) == "\"陈美玲 RA-2026-000001\"")
    }
}

/// The byte-level resident ID check of the masking against the character-level one it replaced.
@Suite struct PersonalDataCheckTests {
    static func characterLevel(_ text: String) -> Bool {
        let utf8 = Array(text.utf8)
        guard utf8.count == 18, utf8.prefix(17).allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }) else { return false }
        guard let check = ResidentIDNumber.checkCharacter(for: String(text.prefix(17))) else { return false }
        return Character(UnicodeScalar(utf8[17])) == check
    }

    @Test func residentIDsAreFoundAsBefore() {
        var texts = [
            "440604199308220247", "440604199308220248", "11010519491231002X", "11010519491231002x",
            "1101051949123100２X", "", "4406041993082202471", "44060419930822024", "a40604199308220247",
            "李40604199308220247",
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let digits = (0..<17).map { _ in String(Int.random(in: 0...9, using: &generator)) }.joined()
            texts.append(digits + String("0123456789Xx".randomElement(using: &generator)!))
        }
        for text in texts {
            #expect(PersonalData.isResidentID(text) == Self.characterLevel(text), "\(text)")
        }
        #expect(PersonalData.lowercased("residentId") == "residentid")
        #expect(PersonalData.lowercased("name") == "name")
        #expect(PersonalData.lowercased("Ünïcode") == "Ünïcode".lowercased())
    }
}
