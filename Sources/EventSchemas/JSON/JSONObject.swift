/// A JSON object's members: names with their values, each name once, kept in the order of
/// `String`'s `<` on the names (the order ``JSONValue/serialized()`` writes them in).
///
/// It reads like the `[String: JSONValue]` it replaces (a dictionary literal, `object["name"]`
/// to read and to set, `for (name, value) in object`, `keys`, `count`), but holds its members in
/// one array instead of a hash table:
/// - an event body's objects have a handful of members, and comparing a name with a few others is
///   cheaper than hashing it (SipHash, for every lookup and every insertion);
/// - the members are already in the order the hub writes them, so serialising sorts nothing;
/// - two objects with the same members hold the same array, so equality and hashing compare
///   arrays.
///
/// Setting a member that sorts after every other appends it; one that sorts in between moves the
/// members after it (objects are small; the parser sorts a large one once, at its end).
public struct JSONObject: Sendable, Hashable {
    /// One member. A struct, not a tuple: the array's buffer is then handled without going
    /// through a tuple's type metadata.
    public struct Member: Sendable, Hashable {
        public var key: String
        public var value: JSONValue

        @inlinable
        public init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    /// The members, sorted by ``Member/key`` with `<`, no name twice.
    @usableFromInline var members: ContiguousArray<Member>

    /// The members, in the order of their names.
    @inlinable
    public var sortedMembers: ContiguousArray<Member> { members }

    /// Objects up to this size are searched member by member with `==` (a short name's `==` is a
    /// comparison of two words); larger ones by bisection with `<`.
    @usableFromInline static let scanLimit = 8

    @inlinable
    public init() { members = [] }

    public init(minimumCapacity: Int) {
        members = []
        members.reserveCapacity(minimumCapacity)
    }

    /// The members of a dictionary.
    public init(_ dictionary: [String: JSONValue]) {
        members = ContiguousArray(dictionary.map { Member(key: $0.key, value: $0.value) })
        members.sort { $0.key < $1.key }
    }

    /// Members whose names are all different (checked: a repeated name traps, as a dictionary's
    /// `init(uniqueKeysWithValues:)` does).
    public init<S: Sequence>(uniqueKeysWithValues elements: S) where S.Element == (String, JSONValue) {
        self.init(sorting: ContiguousArray(elements.lazy.map { Member(key: $0.0, value: $0.1) }))
    }

    /// Members in any order, names all different (trapping otherwise; the parser has checked):
    /// sorted once, unless they already are (the hub writes its documents sorted).
    init(sorting unsorted: ContiguousArray<Member>) {
        members = unsorted
        if !Self.isStrictlyAscending(members) {
            members.sort { $0.key < $1.key }
            for index in members.indices.dropFirst() {
                precondition(members[index - 1].key != members[index].key, "the member name \"\(members[index].key)\" appears twice")
            }
        }
    }

    static func isStrictlyAscending(_ members: ContiguousArray<Member>) -> Bool {
        var index = 1
        while index < members.count {
            if !(members[index - 1].key < members[index].key) { return false }
            index += 1
        }
        return true
    }

    @inlinable
    public var count: Int { members.count }

    @inlinable
    public var isEmpty: Bool { members.isEmpty }

    /// The names, in order.
    public var keys: [String] { members.map(\.key) }

    /// The values, in the order of their names.
    public var values: [JSONValue] { members.map(\.value) }

    /// Where the member named `key` is (`found`), or where it would go.
    @usableFromInline
    func position(of key: String) -> (index: Int, found: Bool) {
        let count = members.count
        if count <= Self.scanLimit {
            return members.withUnsafeBufferPointer { buffer in
                for index in 0..<count {
                    let name = buffer[index].key
                    if name == key { return (index, true) }
                    if key < name { return (index, false) }
                }
                return (count, false)
            }
        }
        return members.withUnsafeBufferPointer { buffer in
            var low = 0
            var high = count
            while low < high {
                let middle = (low + high) / 2
                let name = buffer[middle].key
                if name == key { return (middle, true) }
                if name < key { low = middle + 1 } else { high = middle }
            }
            return (low, false)
        }
    }

    /// The value of the member named `key`; setting `nil` removes the member.
    public subscript(key: String) -> JSONValue? {
        get {
            let (index, found) = position(of: key)
            return found ? members[index].value : nil
        }
        set {
            if let newValue {
                updateValue(newValue, forKey: key)
            } else {
                removeValue(forKey: key)
            }
        }
    }

    /// The value of the member named `key`, changed in place; a missing member is added with
    /// `defaultValue` first.
    public subscript(key: String, default defaultValue: @autoclosure () -> JSONValue) -> JSONValue {
        get {
            let (index, found) = position(of: key)
            return found ? members[index].value : defaultValue()
        }
        _modify {
            let (index, found) = position(of: key)
            if !found { members.insert(Member(key: key, value: defaultValue()), at: index) }
            yield &members[index].value
        }
    }

    /// Sets the member named `key`, answering the value it replaced.
    @discardableResult
    public mutating func updateValue(_ value: JSONValue, forKey key: String) -> JSONValue? {
        if let last = members.last, last.key < key {
            members.append(Member(key: key, value: value))
            return nil
        }
        let (index, found) = position(of: key)
        if found {
            let old = members[index].value
            members[index].value = value
            return old
        }
        members.insert(Member(key: key, value: value), at: index)
        return nil
    }

    /// Removes the member named `key`, answering its value.
    @discardableResult
    public mutating func removeValue(forKey key: String) -> JSONValue? {
        let (index, found) = position(of: key)
        guard found else { return nil }
        return members.remove(at: index).value
    }

    /// This object with `other`'s members added; for a name both have, `combine` picks the value.
    public func merging(
        _ other: JSONObject, uniquingKeysWith combine: (JSONValue, JSONValue) throws -> JSONValue
    ) rethrows -> JSONObject {
        var result = self
        for member in other.members {
            let (index, found) = result.position(of: member.key)
            if found {
                result.members[index].value = try combine(result.members[index].value, member.value)
            } else {
                result.members.insert(member, at: index)
            }
        }
        return result
    }

    /// The members as a dictionary (for APIs that take one).
    public var dictionary: [String: JSONValue] {
        var dictionary = [String: JSONValue](minimumCapacity: members.count)
        for member in members { dictionary[member.key] = member.value }
        return dictionary
    }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    /// A literal's names must all differ (a repeated one traps, as in a dictionary literal).
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(uniqueKeysWithValues: elements)
    }
}

extension JSONObject: RandomAccessCollection {
    public typealias Element = (key: String, value: JSONValue)
    public typealias Index = Int

    @inlinable
    public var startIndex: Int { 0 }

    @inlinable
    public var endIndex: Int { members.count }

    @inlinable
    public subscript(position: Int) -> (key: String, value: JSONValue) {
        let member = members[position]
        return (member.key, member.value)
    }
}

extension JSONObject: CustomStringConvertible {
    public var description: String {
        "[" + members.map { "\($0.key.debugDescription): \($0.value)" }.joined(separator: ", ") + "]"
    }
}

extension JSONObject: Codable {
    public init(from decoder: any Decoder) throws {
        self.init(try [String: JSONValue](from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        try dictionary.encode(to: encoder)
    }
}
