@testable import EventSchemas
import Foundation
import Testing

/// A JSON object keeps its members sorted by name in one array: it must answer as the dictionary
/// it replaced did (set, replace, remove, look up, compare, hash), whatever order the members came
/// in, and serialise in the order the hub always wrote.
@Suite struct JSONObjectTests {
    /// Names in a scrambled order, with non-ASCII ones and ones longer than 16 bytes.
    static let names = [
        "zeta", "alpha", "步骤", "a", "mobile", "applicationId", "b", "decidedAt", "Zulu", "材料清单",
        "aVeryLongMemberNameIndeed", "aVeryLongMemberNameIndeeds", "item", "", "department", "é", "e\u{301}x",
    ]

    /// The same members set one by one into an object and a dictionary, some replaced and some
    /// removed on the way, at every size across the switch from a scan to a bisection.
    @Test(arguments: [1, 5, 8, 9, 12, 17])
    func answersAsADictionary(count: Int) {
        var object = JSONObject()
        var dictionary: [String: JSONValue] = [:]
        let chosen = Array(Self.names.prefix(count))
        for (index, name) in chosen.enumerated() {
            object[name] = .integer(Int64(index))
            dictionary[name] = .integer(Int64(index))
        }
        for name in chosen.enumerated().filter({ $0.offset % 3 == 0 }).map(\.element) {
            #expect(object.updateValue(.string("again"), forKey: name) == dictionary.updateValue(.string("again"), forKey: name))
        }
        for name in chosen.enumerated().filter({ $0.offset % 4 == 1 }).map(\.element) {
            #expect(object.removeValue(forKey: name) == dictionary.removeValue(forKey: name))
        }
        #expect(object.removeValue(forKey: "absent") == nil)
        #expect(object.count == dictionary.count)
        for name in Self.names + ["absent", "zz"] {
            #expect(object[name] == dictionary[name], "member \(name)")
        }
        #expect(object.keys == dictionary.keys.sorted(), "names in the order of <")
        #expect(object == JSONObject(dictionary))
        #expect(object.dictionary == dictionary)
    }

    @Test("Objects with the same members are equal and hash alike, whatever order they were built in")
    func orderDoesNotMatter() {
        let forward = JSONObject(uniqueKeysWithValues: Self.names.map { ($0, JSONValue.string($0)) })
        var backward = JSONObject()
        for name in Self.names.reversed() { backward[name] = .string(name) }
        #expect(forward == backward)
        #expect(forward.hashValue == backward.hashValue)
        #expect(JSONValue.object(forward) == .object(backward))
        var changed = backward
        changed["alpha"] = .integer(1)
        #expect(changed != forward)
    }

    @Test("Serialised, the members come in the order sorted keys always gave, and parse back to the same object")
    func serialisedSorted() throws {
        let object = JSONObject(uniqueKeysWithValues: Self.names.map { ($0, JSONValue.integer(Int64($0.utf8.count))) })
        let text = String(decoding: JSONValue.object(object).serialized(), as: UTF8.self)
        let expected =
            "{" + Self.names.sorted().map { "\"\($0)\":\($0.utf8.count)" }.joined(separator: ",") + "}"
        #expect(text == expected)
        #expect(try JSONValue.parse(Data(text.utf8)) == .object(object))
    }

    @Test("A member changed in place through the default subscript, and a nested pointer set")
    func changedInPlace() {
        var value = JSONValue.object(["b": .integer(1)])
        value.set(.string("x"), at: "/a/c")
        value.set(.string("y"), at: "/a/b")
        #expect(value[pointer: "/a/c"] == .string("x"))
        #expect(value[pointer: "/a/b"] == .string("y"))
        #expect(value.objectValue?.keys == ["a", "b"])
        var counts: JSONObject = [:]
        for name in ["k", "j", "k"] {
            counts[name, default: .integer(0)] = .integer((counts[name]?.int64Value ?? 0) + 1)
        }
        #expect(counts == ["j": .integer(1), "k": .integer(2)])
    }

    @Test("Merging keeps the order, and the closure picks the value of a name both have")
    func merging() {
        let object: JSONObject = ["c": .integer(3), "a": .integer(1)]
        let merged = object.merging(["a": .integer(9), "b": .integer(2)]) { _, new in new }
        #expect(merged == ["a": .integer(9), "b": .integer(2), "c": .integer(3)])
        #expect(merged.keys == ["a", "b", "c"])
    }

    @Test("A parsed object of thousands of members written in reverse is sorted once and looked up")
    func largeParsedObject() throws {
        let count = 5_000
        let text = "{" + (0..<count).reversed().map { "\"m\(String(format: "%05d", $0))\":\($0)" }.joined(separator: ",") + "}"
        let object = try #require(try JSONValue.parse(Data(text.utf8)).objectValue)
        #expect(object.count == count)
        #expect(object.keys == object.keys.sorted())
        #expect(object["m00000"] == .integer(0) && object["m04999"] == .integer(4999) && object["m05000"] == nil)
    }
}
