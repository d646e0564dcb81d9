import CivilTime
import ConfigFiles
import Foundation

/// A JSON Schema (draft 2020-12, the subset OneWindow's schemas use), compiled once at load so that
/// validating an event walks a small tree instead of re-reading the schema.
///
/// Supported: `type`, `properties`, `required`, `additionalProperties`, `enum`, `const`, `pattern`,
/// `minLength`/`maxLength` (in Unicode code points), `minimum`/`maximum`,
/// `exclusiveMinimum`/`exclusiveMaximum`, `items`, `minItems`/`maxItems`, `allOf`/`anyOf`/`oneOf`,
/// `$ref` to `#/$defs/…`, and `format` (asserted, not only annotated): `date`, `date-time`,
/// `email`, `cn-resident-id`, `cn-credit-code`, `cn-mobile`. Annotations (`title`,
/// `description`, `examples`, `default`, `$comment`, `$schema`, `$id`, `x-*`) are ignored.
/// An unknown format, a `$ref` that does not resolve or a `pattern` that is not a regular
/// expression is a load error.
public struct JSONSchema: Sendable {
    /// The `$id`.
    public let id: String?
    /// The `title`.
    public let title: String?
    /// The `description`.
    public let description: String?
    /// The `examples`: realistic valid instances.
    public let examples: [JSONValue]
    let root: SchemaNode

    /// Compiles a schema.
    /// - Parameters:
    ///   - data: the schema's JSON text.
    ///   - name: how errors name it (a file name).
    /// - Throws: ``JSONParseError`` for bad JSON, ``SchemaLoadError`` for a schema that cannot be used.
    public init(data: Data, name: String) throws {
        let document = try JSONValue.parse(data)
        guard case .object(let members) = document else {
            throw SchemaLoadError(schema: name, pointer: "", problem: "a schema must be a JSON object")
        }
        var compiler = SchemaCompiler(name: name, document: document)
        root = try compiler.compile(document, at: "")
        id = members["$id"]?.stringValue
        title = members["title"]?.stringValue
        description = members["description"]?.stringValue
        examples = members["examples"]?.arrayValue ?? []
    }

    /// Every violation of the schema by `value`; empty when it is valid.
    /// - Parameter now: the time formats that depend on today judge by (a resident ID's birth date
    ///   may not be in the future, in China time).
    public func validate(_ value: JSONValue, now: Date = Date()) -> [SchemaViolation] {
        var violations: [SchemaViolation] = []
        var path = InstancePath(context: FormatContext(now: now))
        root.validate(value, at: &path, into: &violations)
        return violations
    }
}

/// What format checks need besides the text.
struct FormatContext: Sendable {
    /// The time now; a check that needs today's date derives it in China time (UTC+8).
    var now: Date

    /// Today's date in China time (UTC+8, no daylight saving).
    var chinaToday: CivilDate { CivilDate.china(now) }
}

/// One way an instance breaks its schema.
public struct SchemaViolation: Sendable, Hashable, CustomStringConvertible {
    /// The JSON pointer of the failing field in the instance (`""` for the whole document).
    public var pointer: String
    /// The rule broken, e.g. `required`, `format`, `pattern`.
    public var keyword: String
    /// What is wrong, in words.
    public var message: String

    public init(pointer: String, keyword: String, message: String) {
        self.pointer = pointer
        self.keyword = keyword
        self.message = message
    }

    public var description: String { "\(pointer.isEmpty ? "/" : pointer): \(keyword): \(message)" }
}

/// A schema that cannot be used: which, where in it, and what is wrong.
public struct SchemaLoadError: Error, Sendable, CustomStringConvertible {
    public var schema: String
    public var pointer: String
    public var problem: String
    public var description: String { "\(schema) at \(pointer.isEmpty ? "/" : pointer): \(problem)" }
}

/// The JSON types a `type` keyword allows, as bits: checking a value's type is a mask test.
struct JSONTypes: OptionSet, Sendable {
    let rawValue: UInt8

    init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    static let null = JSONTypes(rawValue: 1 << 0)
    static let boolean = JSONTypes(rawValue: 1 << 1)
    static let integer = JSONTypes(rawValue: 1 << 2)
    static let number = JSONTypes(rawValue: 1 << 3)
    static let string = JSONTypes(rawValue: 1 << 4)
    static let array = JSONTypes(rawValue: 1 << 5)
    static let object = JSONTypes(rawValue: 1 << 6)

    static let names: [(String, JSONTypes)] = [
        ("array", .array), ("boolean", .boolean), ("integer", .integer), ("null", .null), ("number", .number),
        ("object", .object), ("string", .string),
    ]

    /// The type named as JSON Schema names it, `nil` for an unknown name.
    init?(name: String) {
        guard let found = Self.names.first(where: { $0.0 == name }) else { return nil }
        self = found.1
    }

    /// The type of a value (`integer` for integers).
    init(of value: JSONValue) {
        switch value {
        case .null: self = .null
        case .bool: self = .boolean
        case .integer: self = .integer
        case .number: self = .number
        case .string: self = .string
        case .array: self = .array
        case .object: self = .object
        }
    }

    /// The names, sorted, as a violation message lists them.
    var sortedNames: [String] { Self.names.filter { contains($0.1) }.map(\.0) }
}

/// Where the value being validated sits in the instance. Kept as steps and turned into a JSON
/// pointer only when a violation is reported, so a valid document costs no string building.
struct InstancePath {
    enum Step {
        case member(String)
        case index(Int)
        /// The member named by property `position` of `node` (``SchemaNode/properties``): no
        /// name is copied (nor retained) until a violation asks for the pointer.
        case property(Unmanaged<SchemaNode>, position: Int)
    }

    var steps: [Step] = []
    /// What format checks need besides the text (today's date).
    let context: FormatContext

    init(context: FormatContext) {
        self.context = context
        steps.reserveCapacity(8)
    }

    /// The RFC 6901 pointer, `""` for the whole document.
    var pointer: String {
        var text = ""
        for step in steps {
            switch step {
            case .member(let name): text += "/" + SchemaNode.escape(name)
            case .index(let index): text += "/" + String(index)
            case .property(let node, let position):
                text += "/" + SchemaNode.escape(node._withUnsafeGuaranteedRef { $0.properties[position].0 })
            }
        }
        return text
    }

    /// The pointer of a member of the current value.
    func pointer(member name: String) -> String { pointer + "/" + SchemaNode.escape(name) }
}

/// A compiled schema node. Classes so that `$ref`s can share a node.
final class SchemaNode: @unchecked Sendable {
    // Immutable after compilation, which happens before the node is shared: @unchecked Sendable
    // holds because nothing mutates a node once `JSONSchema.init` returns.
    var types: JSONTypes?
    var properties: [(String, SchemaNode)] = [] {
        didSet {
            propertyNames = Set(properties.map(\.0))
            propertyNameList = ContiguousArray(properties.map(\.0))
        }
    }
    /// ``properties``' names, in their order (sorted with `<`, as a ``JSONObject``'s members are).
    var propertyNameList: ContiguousArray<String> = []
    var propertyNames: Set<String> = []
    /// ``properties``' nodes without ownership, for validating without a retain and release per
    /// member (the node's ``properties`` keep them alive).
    var propertyNodes: [Unmanaged<SchemaNode>] = []
    var required: [String] = []
    /// Per entry of ``properties``, whether `required` names it; and how many names `required`
    /// has, when every one of them is a property (else `nil`): a valid object's required members
    /// are then counted while its properties are validated instead of looked up a second time.
    var propertyRequired: [Bool] = []
    var requiredPropertyCount: Int? = 0
    var additionalProperties: SchemaNode?
    var forbidsAdditional = false
    var enumValues: [JSONValue]?
    var constValue: JSONValue?
    var pattern: SchemaPattern?
    var minLength: Int?
    var maxLength: Int?
    var minimum: Double?
    var maximum: Double?
    var exclusiveMinimum: Double?
    var exclusiveMaximum: Double?
    var items: SchemaNode? {
        didSet { itemsTarget = items.map { Unmanaged.passUnretained($0) } }
    }
    /// ``items`` without ownership (``items`` keeps it alive), as ``referenceTarget``.
    private(set) var itemsTarget: Unmanaged<SchemaNode>?
    var minItems: Int?
    var maxItems: Int?
    var allOf: [SchemaNode] = []
    var anyOf: [SchemaNode] = []
    var oneOf: [SchemaNode] = []
    var reference: SchemaNode? {
        didSet { referenceTarget = reference.map { Unmanaged.passUnretained($0) } }
    }
    /// ``reference`` without ownership, so that following it retains nothing (``reference`` keeps
    /// it alive for as long as this node lives).
    private(set) var referenceTarget: Unmanaged<SchemaNode>?
    var format: (name: String, check: @Sendable (String, FormatContext) -> String?)?
    var alwaysFalse = false
    /// Where the node is in its schema file, as a JSON pointer (`/properties/child`, `/$defs/name`):
    /// how the compatibility check names the place of a change.
    var location = ""
    /// Whether the node is a `$ref` and nothing else (a property `{"$ref": …}`, and each resolved
    /// definition's placeholder): validating it is validating its target.
    var isOnlyReference = false

    init() {}

    /// Whether ``reference`` is the node's only keyword (see ``isOnlyReference``).
    var hasOnlyReference: Bool {
        reference != nil && types == nil && properties.isEmpty && required.isEmpty && additionalProperties == nil
            && !forbidsAdditional && enumValues == nil && constValue == nil && pattern == nil && minLength == nil
            && maxLength == nil && minimum == nil && maximum == nil && exclusiveMinimum == nil && exclusiveMaximum == nil
            && items == nil && minItems == nil && maxItems == nil && allOf.isEmpty && anyOf.isEmpty && oneOf.isEmpty
            && format == nil && !alwaysFalse
    }

    func validate(_ value: JSONValue, at path: inout InstancePath, into violations: inout [SchemaViolation]) {
        func fail(_ keyword: String, _ message: String, _ at: String? = nil) {
            violations.append(SchemaViolation(pointer: at ?? path.pointer, keyword: keyword, message: message))
        }
        if isOnlyReference {
            referenceTarget!._withUnsafeGuaranteedRef { $0.validate(value, at: &path, into: &violations) }
            return
        }
        if alwaysFalse {
            fail("false", "no value is allowed here")
            return
        }
        if let referenceTarget { referenceTarget._withUnsafeGuaranteedRef { $0.validate(value, at: &path, into: &violations) } }
        if let types {
            let type = JSONTypes(of: value)
            let matches =
                types.contains(type) || (type == .integer && types.contains(.number))
                || (types.contains(.integer) && { if case .number(let n) = value { n == n.rounded() } else { false } }())
            if !matches {
                fail("type", "should be \(types.sortedNames.joined(separator: " or ")), found \(value.typeName)")
                return
            }
        }
        if let enumValues, !enumValues.contains(where: { Self.equal($0, value) }) {
            let allowed = enumValues.map { String(decoding: $0.serialized(), as: UTF8.self) }.joined(separator: ", ")
            fail("enum", "should be one of \(allowed)")
        }
        if let constValue, !Self.equal(constValue, value) {
            fail("const", "should be \(String(decoding: constValue.serialized(), as: UTF8.self))")
        }
        switch value {
        case .string(let text):
            if minLength != nil || maxLength != nil {
                let length = Self.scalarCount(text)
                if let minLength, length < minLength { fail("minLength", "should have at least \(minLength) characters, has \(length)") }
                if let maxLength, length > maxLength { fail("maxLength", "should have at most \(maxLength) characters, has \(length)") }
            }
            if let pattern, !pattern.matches(text) {
                fail("pattern", "should match \(pattern.source)")
            }
            if let format, let problem = format.check(text, path.context) { fail("format", "\(format.name): \(problem)") }
        case .integer, .number:
            let number = value.doubleValue!
            if let minimum, number < minimum { fail("minimum", "should be at least \(Self.show(minimum))") }
            if let maximum, number > maximum { fail("maximum", "should be at most \(Self.show(maximum))") }
            if let exclusiveMinimum, number <= exclusiveMinimum { fail("exclusiveMinimum", "should be more than \(Self.show(exclusiveMinimum))") }
            if let exclusiveMaximum, number >= exclusiveMaximum { fail("exclusiveMaximum", "should be less than \(Self.show(exclusiveMaximum))") }
        case .array(let elements):
            if let minItems, elements.count < minItems { fail("minItems", "should have at least \(minItems) items, has \(elements.count)") }
            if let maxItems, elements.count > maxItems { fail("maxItems", "should have at most \(maxItems) items, has \(elements.count)") }
            if let items = itemsTarget {
                elements.withUnsafeBufferPointer { elements in
                    for index in elements.indices {
                        path.steps.append(.index(index))
                        items._withUnsafeGuaranteedRef { $0.validate(elements[index], at: &path, into: &violations) }
                        path.steps.removeLast()
                    }
                }
            }
        case .object(let members):
            let start = violations.count
            var known = 0
            var requiredFound = 0
            if members.count <= 2 * properties.count {
                // Members and properties are both sorted by name with `<` (a ``JSONObject``'s
                // order, and the compiler's), so one walk pairs them: each member's property is
                // the next property equal to it, and none if a greater one comes first. Validated
                // in the members' order, the property order; no name is hashed or copied.
                let this = Unmanaged.passUnretained(self)
                let names = propertyNameList
                let count = names.count
                var cursor = 0
                propertyNodes.withUnsafeBufferPointer { nodes in
                    members.sortedMembers.withUnsafeBufferPointer { pairs in
                        for index in 0..<pairs.count {
                            var position = cursor
                            var found = false
                            while position < count {
                                if names[position] == pairs[index].key {
                                    found = true
                                    break
                                }
                                if pairs[index].key < names[position] { break }
                                position += 1
                            }
                            guard found else {
                                cursor = position
                                continue
                            }
                            cursor = position + 1
                            known += 1
                            if propertyRequired[position] { requiredFound += 1 }
                            path.steps.append(.property(this, position: position))
                            nodes[position]._withUnsafeGuaranteedRef {
                                $0.validate(pairs[index].value, at: &path, into: &violations)
                            }
                            path.steps.removeLast()
                        }
                    }
                }
            } else {
                // Many more members than properties (a map, or a flood's padding): look each
                // property up instead of going through every member.
                for position in properties.indices {
                    let (name, node) = properties[position]
                    guard let member = members[name] else { continue }
                    known += 1
                    if propertyRequired[position] { requiredFound += 1 }
                    path.steps.append(.member(name))
                    node.validate(member, at: &path, into: &violations)
                    path.steps.removeLast()
                }
            }
            if requiredFound != requiredPropertyCount {
                // Something required is missing (or not every required name is a property): the
                // required members' violations come first, as they always did.
                var missing: [SchemaViolation] = []
                for name in required where members[name] == nil {
                    missing.append(SchemaViolation(pointer: path.pointer(member: name), keyword: "required", message: "is missing"))
                }
                violations.insert(contentsOf: missing, at: start)
            }
            // Members the properties do not name, in name order; none in the usual valid document.
            if members.count > known, forbidsAdditional || additionalProperties != nil {
                for name in members.keys.sorted() where !propertyNames.contains(name) {
                    if forbidsAdditional {
                        fail("additionalProperties", "is not allowed here", path.pointer(member: name))
                    } else if let additionalProperties {
                        path.steps.append(.member(name))
                        additionalProperties.validate(members[name]!, at: &path, into: &violations)
                        path.steps.removeLast()
                    }
                }
            }
        default:
            break
        }
        for node in allOf { node.validate(value, at: &path, into: &violations) }
        if !anyOf.isEmpty {
            var best: [SchemaViolation]?
            for node in anyOf {
                var attempt: [SchemaViolation] = []
                node.validate(value, at: &path, into: &attempt)
                if attempt.isEmpty {
                    best = nil
                    break
                }
                if best == nil || attempt.count < best!.count { best = attempt }
            }
            if let best {
                fail("anyOf", "matches none of the alternatives: " + best.map(\.description).joined(separator: "; "))
            }
        }
        if !oneOf.isEmpty {
            var matched = 0
            var closest: [SchemaViolation]?
            for node in oneOf {
                var attempt: [SchemaViolation] = []
                node.validate(value, at: &path, into: &attempt)
                if attempt.isEmpty { matched += 1 } else if closest == nil || attempt.count < closest!.count { closest = attempt }
            }
            if matched == 0 {
                fail("oneOf", "matches none of the alternatives: " + (closest ?? []).map(\.description).joined(separator: "; "))
            } else if matched > 1 {
                fail("oneOf", "matches \(matched) alternatives, exactly one is allowed")
            }
        }
    }

    /// The number of Unicode scalars in `text` (what `minLength`/`maxLength` count), from its UTF-8
    /// bytes: every byte that is not a continuation byte starts one.
    static func scalarCount(_ text: String) -> Int {
        var text = text
        return text.withUTF8 { utf8 in
            var count = 0
            for byte in utf8 where byte & 0xC0 != 0x80 { count += 1 }
            return count
        }
    }

    static func escape(_ name: String) -> String {
        guard name.utf8.contains(where: { $0 == UInt8(ascii: "~") || $0 == UInt8(ascii: "/") }) else { return name }
        return name.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }

    static func show(_ number: Double) -> String {
        number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    }

    /// JSON equality where 1 and 1.0 are the same number.
    static func equal(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.integer, .number), (.number, .integer), (.number, .number): return a.doubleValue == b.doubleValue
        default: return a == b
        }
    }
}

/// Turns schema JSON into nodes, resolving `$ref`s once.
struct SchemaCompiler {
    let name: String
    let document: JSONValue
    var definitions: [String: SchemaNode] = [:]

    init(name: String, document: JSONValue) {
        self.name = name
        self.document = document
    }

    func fail(_ pointer: String, _ problem: String) -> SchemaLoadError {
        SchemaLoadError(schema: name, pointer: pointer, problem: problem)
    }

    mutating func compile(_ schema: JSONValue, at pointer: String) throws -> SchemaNode {
        let node = SchemaNode()
        node.location = pointer
        if case .bool(let allowed) = schema {
            node.alwaysFalse = !allowed
            return node
        }
        guard case .object(let members) = schema else { throw fail(pointer, "a schema must be an object or a boolean") }
        for (keyword, value) in members {
            let here = "\(pointer)/\(SchemaNode.escape(keyword))"
            switch keyword {
            case "$schema", "$id", "$comment", "$defs", "title", "description", "examples", "default", "deprecated",
                "readOnly", "writeOnly":
                continue
            case "type":
                let names: [String]
                if let single = value.stringValue {
                    names = [single]
                } else if let list = value.arrayValue?.compactMap(\.stringValue), !list.isEmpty {
                    names = list
                } else {
                    throw fail(here, "type must be a type name or a list of them")
                }
                var types: JSONTypes = []
                for name in names {
                    guard let type = JSONTypes(name: name) else { throw fail(here, "unknown type \(name)") }
                    types.insert(type)
                }
                node.types = types
            case "properties":
                guard case .object(let properties) = value else { throw fail(here, "properties must be an object") }
                for property in properties.keys.sorted() {
                    node.properties.append(
                        (property, try compile(properties[property]!, at: "\(here)/\(SchemaNode.escape(property))")))
                }
            case "required":
                guard let names = value.arrayValue?.compactMap(\.stringValue) else { throw fail(here, "required must be a list of names") }
                node.required = names
            case "additionalProperties":
                if case .bool(false) = value {
                    node.forbidsAdditional = true
                } else if case .bool(true) = value {
                    continue
                } else {
                    node.additionalProperties = try compile(value, at: here)
                }
            case "enum":
                guard let values = value.arrayValue else { throw fail(here, "enum must be a list") }
                node.enumValues = values
            case "const":
                node.constValue = value
            case "pattern":
                guard let source = value.stringValue else { throw fail(here, "pattern must be a string") }
                do {
                    node.pattern = try SchemaPattern(source)
                } catch {
                    throw fail(here, "pattern \(source) is not a valid regular expression")
                }
            case "minLength": node.minLength = try count(value, here)
            case "maxLength": node.maxLength = try count(value, here)
            case "minItems": node.minItems = try count(value, here)
            case "maxItems": node.maxItems = try count(value, here)
            case "minimum": node.minimum = try number(value, here)
            case "maximum": node.maximum = try number(value, here)
            case "exclusiveMinimum": node.exclusiveMinimum = try number(value, here)
            case "exclusiveMaximum": node.exclusiveMaximum = try number(value, here)
            case "items": node.items = try compile(value, at: here)
            case "allOf": node.allOf = try list(value, here)
            case "anyOf": node.anyOf = try list(value, here)
            case "oneOf": node.oneOf = try list(value, here)
            case "$ref":
                guard let target = value.stringValue else { throw fail(here, "$ref must be a string") }
                node.reference = try resolve(target, at: here)
            case "format":
                guard let format = value.stringValue else { throw fail(here, "format must be a string") }
                guard let check = Formats.all[format] else {
                    throw fail(here, "unknown format \(format) (known: \(Formats.all.keys.sorted().joined(separator: ", ")))")
                }
                node.format = (format, check)
            default:
                if keyword.hasPrefix("x-") { continue }
                throw fail(here, "keyword \(keyword) is not supported by OneWindow's validator")
            }
        }
        let requiredNames = Set(node.required)
        node.propertyRequired = node.properties.map { requiredNames.contains($0.0) }
        node.propertyNodes = node.properties.map { Unmanaged.passUnretained($0.1) }
        node.isOnlyReference = node.hasOnlyReference
        node.requiredPropertyCount =
            requiredNames.count == node.required.count && requiredNames.isSubset(of: node.propertyNames)
            ? node.required.count : nil
        return node
    }

    mutating func resolve(_ reference: String, at pointer: String) throws -> SchemaNode {
        guard reference.hasPrefix("#/$defs/") else {
            throw fail(pointer, "only local references to #/$defs/… are supported, found \(reference)")
        }
        if let known = definitions[reference] { return known }
        guard let target = document[pointer: String(reference.dropFirst())] else {
            throw fail(pointer, "$ref \(reference) does not resolve")
        }
        // Register before compiling so that a recursive definition refers to itself.
        let placeholder = SchemaNode()
        definitions[reference] = placeholder
        let compiled = try compile(target, at: String(reference.dropFirst()))
        placeholder.reference = compiled
        placeholder.isOnlyReference = true
        return placeholder
    }

    func count(_ value: JSONValue, _ pointer: String) throws -> Int {
        guard let number = value.int64Value, number >= 0 else { throw fail(pointer, "must be a non-negative integer") }
        return Int(number)
    }

    func number(_ value: JSONValue, _ pointer: String) throws -> Double {
        guard let number = value.doubleValue else { throw fail(pointer, "must be a number") }
        return number
    }

    mutating func list(_ value: JSONValue, _ pointer: String) throws -> [SchemaNode] {
        guard let schemas = value.arrayValue, !schemas.isEmpty else { throw fail(pointer, "must be a non-empty list of schemas") }
        return try schemas.enumerated().map { try compile($1, at: "\(pointer)/\($0)") }
    }
}

/// The formats the validator asserts, by name: adding one is one line here.
public enum Formats {
    /// Format name → a check returning what is wrong, or `nil` when the text is valid.
    static let all: [String: @Sendable (String, FormatContext) -> String?] = [
        "date": { text, _ in fullDate(text) },
        "date-time": { text, _ in dateTime(text) },
        "email": { text, _ in
            let parts = text.split(separator: "@", omittingEmptySubsequences: false)
            return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") ? nil : "is not an e-mail address"
        },
        "cn-resident-id": { text, context in ResidentIDNumber.problem(in: text, today: context.chinaToday) },
        "cn-credit-code": { text, _ in UnifiedSocialCreditCode.problem(in: text) },
        "cn-mobile": { text, _ in MobileNumber.problem(in: text) },
    ]

    /// RFC 3339 full-date: `YYYY-MM-DD` in ASCII digits (no signs or spaces), a real calendar day.
    static func fullDate(_ text: String) -> String? {
        var text = text
        let fields = text.withUTF8 { bytes in fullDate(bytes) }
        guard let (year, month, day) = fields else { return "should be a date like 2025-01-31" }
        return CivilDate.isValid(year: year, month: month, day: day) ? nil : "\(text) is not a calendar day"
    }

    /// The year, month and day of exactly `YYYY-MM-DD`, not yet checked against the calendar.
    static func fullDate(_ bytes: UnsafeBufferPointer<UInt8>) -> (Int, Int, Int)? {
        guard bytes.count == 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            let year = digits(bytes, 0, 4), let month = digits(bytes, 5, 2), let day = digits(bytes, 8, 2)
        else { return nil }
        return (year, month, day)
    }

    /// The number written with exactly `count` ASCII digits from `start`, `nil` if any is not one.
    static func digits(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ count: Int) -> Int? {
        ASCIIDigits.read(bytes, start, count)
    }

    /// RFC 3339 date-time with a time zone: `2025-01-31T08:30:00+08:00` or `…Z`, optionally with a
    /// fraction of a second; ASCII digits only, hours 00-23, minutes 00-59, seconds 00-60.
    static func dateTime(_ text: String) -> String? {
        var text = text
        let valid = text.withUTF8 { bytes -> Bool in
            guard bytes.count >= 20, bytes[10] == UInt8(ascii: "T"),
                let (year, month, day) = fullDate(UnsafeBufferPointer(rebasing: bytes[0..<10])),
                CivilDate.isValid(year: year, month: month, day: day)
            else { return false }
            guard let hour = digits(bytes, 11, 2), hour < 24, bytes[13] == UInt8(ascii: ":"),
                let minute = digits(bytes, 14, 2), minute < 60, bytes[16] == UInt8(ascii: ":"),
                let second = digits(bytes, 17, 2), second <= 60
            else { return false }
            var index = 19
            if bytes[index] == UInt8(ascii: ".") {
                index += 1
                let first = index
                while index < bytes.count, bytes[index] &- UInt8(ascii: "0") < 10 { index += 1 }
                guard index > first, index < bytes.count else { return false }
            }
            if bytes[index] == UInt8(ascii: "Z") { return index + 1 == bytes.count }
            guard bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-"), index + 6 == bytes.count,
                let offsetHours = digits(bytes, index + 1, 2), offsetHours < 24, bytes[index + 3] == UInt8(ascii: ":"),
                let offsetMinutes = digits(bytes, index + 4, 2), offsetMinutes < 60
            else { return false }
            return true
        }
        return valid ? nil : "should be a date and time like 2025-01-31T08:30:00+08:00"
    }
}

extension JSONSchema {
    /// Why the schema cannot hold a field at `pointer` (a member name no object on the way
    /// declares where `additionalProperties` is false), or `nil` when it can. Used to check a
    /// connector's mapping against the event type before any row arrives.
    public func fieldProblem(at pointer: String) -> SchemaViolation? {
        if case .forbidden(let violation) = lookup(pointer) { return violation }
        return nil
    }

    /// The violations of the schema of the field at `pointer` by `value` (a connector's constant:
    /// outside the field's `enum`, of the wrong type, breaking its format); empty when the value
    /// fits, or when the schema says nothing about that field.
    public func validate(_ value: JSONValue, atField pointer: String, now: Date = Date()) -> [SchemaViolation] {
        guard case .nodes(let nodes) = lookup(pointer) else { return [] }
        var violations: [SchemaViolation] = []
        var path = InstancePath(context: FormatContext(now: now))
        path.steps = JSONValue.tokens(ofPointer: pointer).map { .member($0) }
        for node in nodes { node.validate(value, at: &path, into: &violations) }
        var seen = Set<SchemaViolation>()
        return violations.filter { seen.insert($0).inserted }
    }

    enum Lookup {
        case nodes([SchemaNode])
        case forbidden(SchemaViolation)
    }

    /// The schema nodes that apply to the field at `pointer` (through `$ref`, `allOf`, `anyOf`,
    /// `oneOf` and `items` for numeric steps).
    func lookup(_ pointer: String) -> Lookup {
        func expand(_ node: SchemaNode, into nodes: inout [SchemaNode], depth: Int = 0) {
            guard depth < 32, !nodes.contains(where: { $0 === node }) else { return }
            nodes.append(node)
            if let reference = node.reference { expand(reference, into: &nodes, depth: depth + 1) }
            for child in node.allOf + node.anyOf + node.oneOf { expand(child, into: &nodes, depth: depth + 1) }
        }
        var current: [SchemaNode] = []
        expand(root, into: &current)
        var direct = [root]
        var walked = ""
        for token in JSONValue.tokens(ofPointer: pointer) {
            var next: [SchemaNode] = []
            var children: [SchemaNode] = []
            var forbidding: [SchemaNode] = []
            var open = false
            for node in current {
                if let (_, child) = node.properties.first(where: { $0.0 == token }) {
                    children.append(child)
                    expand(child, into: &next)
                } else if let items = node.items, Int(token) != nil {
                    children.append(items)
                    expand(items, into: &next)
                } else if let additional = node.additionalProperties {
                    children.append(additional)
                    expand(additional, into: &next)
                } else if node.forbidsAdditional {
                    forbidding.append(node)
                } else if !node.properties.isEmpty || node.types != nil || node.items != nil {
                    // Declares some members but allows others: this one is unconstrained.
                    open = true
                }
            }
            let here = walked + "/" + SchemaNode.escape(token)
            if next.isEmpty, !open, !forbidding.isEmpty {
                let known = Set(forbidding.flatMap { $0.properties.map(\.0) }).sorted()
                let place = walked.isEmpty ? "the body" : walked
                return .forbidden(
                    SchemaViolation(
                        pointer: here, keyword: "additionalProperties",
                        message: "no field \(token) in \(place)"
                            + (KeySuggestion.nearest(to: token, in: known).map { "; did you mean \($0)?" } ?? "")
                            + " (its fields there: \(known.joined(separator: ", ")))"))
            }
            if next.isEmpty { return .nodes([]) }
            current = next
            direct = children
            walked = here
        }
        return .nodes(direct)
    }
}
