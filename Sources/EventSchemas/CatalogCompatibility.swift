import EventLog
import Foundation

/// One change between two versions of the catalog that breaks existing readers.
///
/// "Existing readers" are today's readers of the events already on the log: the log keeps
/// events for years, and replays, rebuilds and new subscribers read them through the current
/// catalog. So a change is compatible when **every event valid under the previous version is still
/// valid under the new one, on the same topic, with the same key, in the same partition** — the
/// new schema may only accept more.
public struct CompatibilityProblem: Sendable, Hashable, CustomStringConvertible {
    /// The topic whose readers break.
    public var topic: String
    /// The file the change is in, relative to the catalog folder (`catalog.yaml`,
    /// `schemas/household.birth.registered.json`).
    public var file: String
    /// Where in that file: a JSON pointer into the schema (`/properties/child/required`), or the
    /// catalog key (`partitions`).
    public var place: String
    /// What changed, in words, with the field's pointer in the events where one applies.
    public var change: String

    public init(topic: String, file: String, place: String, change: String) {
        self.topic = topic
        self.file = file
        self.place = place
        self.change = change
    }

    /// `household.birth.registered: schemas/household.birth.registered.json#/properties/child/required: field /child/name made required`.
    public var description: String {
        file.hasSuffix(".json") ? "\(topic): \(file)#\(place): \(change)" : "\(topic): \(file) \(place): \(change)"
    }
}

extension TopicCatalog {
    /// The changes from `previous` to this catalog that break existing readers, in catalog order
    /// (topics of `previous`), empty when every change is additive.
    ///
    /// Breaking (each is one problem per topic it affects):
    /// - a topic removed; its `key`, `partitions`, or kind of cleanup (compact ↔ delete) changed;
    ///   an `ownerField` added or changed; an event type no longer carried; the dead-letter topic
    ///   changed;
    /// - in a schema: a field removed from `properties`; a field made required (or a new
    ///   required field); `additionalProperties: false` added; a type narrowed (a type dropped
    ///   from `type`, `number` → `integer`, a type given where none was); an `enum` value
    ///   removed or an `enum`/`const` added; a `format` added or changed; a `pattern` added or
    ///   changed (two patterns cannot be compared, so any new pattern counts); `minLength`,
    ///   `minimum`, `exclusiveMinimum`, `minItems` raised or added; `maxLength`, `maximum`,
    ///   `exclusiveMaximum`, `maxItems` lowered or added; an `anyOf`/`oneOf` alternative removed;
    ///   any of these inside a field, an array's `items`, `additionalProperties`, an `allOf` part,
    ///   an alternative, or a `$ref`'s definition.
    ///
    /// Accepted: a new topic or event type, a new optional field, a new `enum` value, a widened
    /// type or bound, a constraint removed, a new `anyOf`/`oneOf` alternative at the end, a
    /// longer or shorter retention, a description or owner changed.
    ///
    /// A field's rules are gathered through its `$ref` and `allOf` parts before comparing, so a
    /// rule moved into a definition is no change. `anyOf`/`oneOf` alternatives are compared by
    /// position: reordering them is reported as changes to each.
    public func breakingChanges(since previous: TopicCatalog) -> [CompatibilityProblem] {
        var problems: [CompatibilityProblem] = []
        var schemaProblems: [String: [(file: String, place: String, change: String)]] = [:]
        if previous.deadLetterTopic != deadLetterTopic {
            problems.append(
                CompatibilityProblem(
                    topic: previous.deadLetterTopic, file: "catalog.yaml", place: "deadLetterTopic",
                    change: "the dead-letter topic changed from \(previous.deadLetterTopic) to \(deadLetterTopic)"))
        }
        for old in previous.topics {
            func report(_ place: String, _ change: String) {
                problems.append(CompatibilityProblem(topic: old.name, file: "catalog.yaml", place: place, change: change))
            }
            guard let new = topic(named: old.name) else {
                report("topics", "topic removed (its readers and the events on it would be left without a catalog entry)")
                continue
            }
            if old.keyPointer != new.keyPointer {
                report(
                    "key",
                    "key changed from \(old.keyPointer ?? "none") to \(new.keyPointer ?? "none") (events of one entity would no longer share a partition and their order)")
            }
            if old.spec.partitions != new.spec.partitions {
                report(
                    "partitions",
                    "partition count changed from \(old.spec.partitions) to \(new.spec.partitions) (keys would move to other partitions; create a new topic instead)")
            }
            if old.spec.cleanup.isCompact != new.spec.cleanup.isCompact {
                report(
                    old.spec.cleanup.isCompact ? "compact" : "retention",
                    old.spec.cleanup.isCompact
                        ? "compaction removed (readers expect the latest record per key)"
                        : "compaction added (readers expect every record, not the latest per key)")
            }
            if let field = new.ownerField, field != old.ownerField {
                report(
                    "ownerField",
                    old.ownerField == nil
                        ? "ownerField \(field) added (events for other departments are refused)"
                        : "ownerField changed from \(old.ownerField!) to \(field)")
            }
            for type in old.types where !new.types.contains(type) {
                report("types", "event type \(type) no longer carried (the events of that type on the topic fail validation)")
            }
            for type in old.types where new.types.contains(type) {
                guard let before = previous.schemas[type], let after = schemas[type] else { continue }
                if schemaProblems[type] == nil {
                    var comparison = SchemaComparison(file: "schemas/\(type).json")
                    comparison.compare(old: [before.root], new: [after.root], field: "")
                    schemaProblems[type] = comparison.problems
                }
                for problem in schemaProblems[type]! {
                    problems.append(
                        CompatibilityProblem(topic: old.name, file: problem.file, place: problem.place, change: problem.change))
                }
            }
        }
        return problems
    }
}

extension CleanupPolicy {
    fileprivate var isCompact: Bool { if case .compact = self { true } else { false } }
}

/// Walks two versions of a schema side by side and lists what the new one refuses that the old
/// one accepted.
struct SchemaComparison {
    let file: String
    var problems: [(file: String, place: String, change: String)] = []
    /// Pairs of nodes already compared, so a recursive definition ends.
    private var visited = Set<[ObjectIdentifier]>()

    init(file: String) {
        self.file = file
    }

    /// What a list of nodes that all apply (a node, its `$ref`, its `allOf` parts) requires together.
    struct Combined {
        var location = ""
        var types: (JSONTypes, String)?
        var properties: [String: [SchemaNode]] = [:]
        var propertyLocations: [String: String] = [:]
        var required: [String: String] = [:]
        var forbidsAdditional: String?
        var additional: [SchemaNode] = []
        var enumValues: ([JSONValue], String)?
        var constValue: (JSONValue, String)?
        var patterns: [String: String] = [:]
        var formats: [String: String] = [:]
        var lower: [String: (Double, String)] = [:]
        var upper: [String: (Double, String)] = [:]
        var items: [SchemaNode] = []
        var itemsLocation = ""
        var alternatives: [(keyword: String, nodes: [SchemaNode], location: String)] = []
        var alwaysFalse = false

        init(_ nodes: [SchemaNode]) {
            var seen = Set<ObjectIdentifier>()
            location = nodes.first?.location ?? ""
            for node in nodes { add(node, &seen) }
        }

        private mutating func add(_ node: SchemaNode, _ seen: inout Set<ObjectIdentifier>) {
            guard seen.insert(ObjectIdentifier(node)).inserted else { return }
            let at = node.location
            if node.alwaysFalse { alwaysFalse = true }
            if let types = node.types {
                if let known = self.types {
                    self.types = (known.0.intersection(types), known.1)
                } else {
                    self.types = (types, at + "/type")
                }
            }
            for (name, child) in node.properties {
                properties[name, default: []].append(child)
                if propertyLocations[name] == nil { propertyLocations[name] = child.location }
            }
            for name in node.required where required[name] == nil { required[name] = at + "/required" }
            if node.forbidsAdditional, forbidsAdditional == nil { forbidsAdditional = at + "/additionalProperties" }
            if let additional = node.additionalProperties { self.additional.append(additional) }
            if let values = node.enumValues {
                if let known = enumValues {
                    enumValues = (known.0.filter { value in values.contains { SchemaNode.equal($0, value) } }, known.1)
                } else {
                    enumValues = (values, at + "/enum")
                }
            }
            if let value = node.constValue { constValue = (value, at + "/const") }
            if let pattern = node.pattern { patterns[pattern.source] = at + "/pattern" }
            if let format = node.format { formats[format.name] = at + "/format" }
            func bound(_ value: Double?, _ keyword: String, _ bounds: inout [String: (Double, String)], tighter: (Double, Double) -> Bool) {
                guard let value else { return }
                if let known = bounds[keyword], !tighter(value, known.0) { return }
                bounds[keyword] = (value, at + "/" + keyword)
            }
            bound(node.minLength.map(Double.init), "minLength", &lower, tighter: >)
            bound(node.minimum, "minimum", &lower, tighter: >)
            bound(node.exclusiveMinimum, "exclusiveMinimum", &lower, tighter: >)
            bound(node.minItems.map(Double.init), "minItems", &lower, tighter: >)
            bound(node.maxLength.map(Double.init), "maxLength", &upper, tighter: <)
            bound(node.maximum, "maximum", &upper, tighter: <)
            bound(node.exclusiveMaximum, "exclusiveMaximum", &upper, tighter: <)
            bound(node.maxItems.map(Double.init), "maxItems", &upper, tighter: <)
            if let items = node.items {
                if self.items.isEmpty { itemsLocation = items.location }
                self.items.append(items)
            }
            if !node.anyOf.isEmpty { alternatives.append(("anyOf", node.anyOf, at + "/anyOf")) }
            if !node.oneOf.isEmpty { alternatives.append(("oneOf", node.oneOf, at + "/oneOf")) }
            if let reference = node.reference { add(reference, &seen) }
            for part in node.allOf { add(part, &seen) }
        }
    }

    private mutating func report(_ place: String, _ change: String) {
        problems.append((file, place, change))
    }

    /// Compares the nodes that apply to one field in each version; `field` is the field's pointer
    /// in the events (`/child/residentId`, `/materials/*` for an array's elements).
    mutating func compare(old: [SchemaNode], new: [SchemaNode], field: String) {
        guard visited.insert((old + new).map { ObjectIdentifier($0) }).inserted else { return }
        let before = Combined(old)
        let after = Combined(new)
        let name = field.isEmpty ? "the body" : "field \(field)"
        if before.alwaysFalse { return }
        if after.alwaysFalse {
            report(after.location, "\(name) no longer allowed (schema false)")
            return
        }
        // Types: every type the old version allowed must still be allowed.
        if case let (types, place)? = after.types {
            let allowedBefore = before.types?.0 ?? JSONTypes(JSONTypes.names.map(\.1))
            var lost = allowedBefore.subtracting(types)
            if types.contains(.number) { lost.remove(.integer) }
            if !lost.isEmpty {
                let from = before.types.map { $0.0.sortedNames.joined(separator: ", ") } ?? "any type"
                report(place, "type of \(name) narrowed from \(from) to \(types.sortedNames.joined(separator: ", "))")
            }
        }
        if case let (values, place)? = after.enumValues {
            if case let (oldValues, _)? = before.enumValues {
                let removed = oldValues.filter { value in !values.contains { SchemaNode.equal($0, value) } }
                if !removed.isEmpty {
                    report(place, "enum value\(removed.count == 1 ? "" : "s") \(Self.show(removed)) of \(name) removed")
                }
            } else if before.constValue == nil {
                report(place, "enum \(Self.show(values)) added to \(name)")
            }
        }
        if case let (value, place)? = after.constValue {
            let same =
                before.constValue.map { SchemaNode.equal($0.0, value) }
                ?? (before.enumValues.map { $0.0.count == 1 && SchemaNode.equal($0.0[0], value) } ?? false)
            if !same { report(place, "const \(Self.show([value])) added to \(name)") }
        }
        for (pattern, place) in after.patterns.sorted(by: { $0.key < $1.key }) where before.patterns[pattern] == nil {
            let was = before.patterns.keys.sorted().first.map { " (was \($0))" } ?? ""
            report(place, "pattern of \(name) \(was.isEmpty ? "added" : "changed"): \(pattern)\(was)")
        }
        for (format, place) in after.formats.sorted(by: { $0.key < $1.key }) where before.formats[format] == nil {
            let was = before.formats.keys.sorted().first.map { " (was \($0))" } ?? ""
            report(place, "format of \(name) \(was.isEmpty ? "added" : "changed"): \(format)\(was)")
        }
        for (keyword, bound) in after.lower.sorted(by: { $0.key < $1.key }) {
            let (value, place) = bound
            if case let (old, _)? = before.lower[keyword] {
                if value > old { report(place, "\(keyword) of \(name) raised from \(SchemaNode.show(old)) to \(SchemaNode.show(value))") }
            } else if !(keyword.hasPrefix("min") && value == 0 && keyword != "minimum") {
                report(place, "\(keyword) \(SchemaNode.show(value)) added to \(name)")
            }
        }
        for (keyword, bound) in after.upper.sorted(by: { $0.key < $1.key }) {
            let (value, place) = bound
            if case let (old, _)? = before.upper[keyword] {
                if value < old { report(place, "\(keyword) of \(name) lowered from \(SchemaNode.show(old)) to \(SchemaNode.show(value))") }
            } else {
                report(place, "\(keyword) \(SchemaNode.show(value)) added to \(name)")
            }
        }
        // Members: every field kept, none newly required, no new ban on unknown members.
        for (member, place) in after.required.sorted(by: { $0.key < $1.key }) where before.required[member] == nil {
            let pointer = field + "/" + SchemaNode.escape(member)
            let existed = before.properties[member] != nil
            report(place, existed ? "field \(pointer) made required" : "new required field \(pointer)")
        }
        for member in before.properties.keys.sorted() {
            let pointer = field + "/" + SchemaNode.escape(member)
            if let newNodes = after.properties[member] {
                compare(old: before.properties[member]!, new: newNodes, field: pointer)
            } else {
                report(before.propertyLocations[member] ?? before.location, "field \(pointer) removed")
            }
        }
        if let place = after.forbidsAdditional, before.forbidsAdditional == nil {
            report(place, "additionalProperties: false added to \(name) (fields not listed are now refused)")
        }
        if !after.additional.isEmpty, before.forbidsAdditional == nil {
            compare(old: before.additional, new: after.additional, field: field + "/*")
        }
        if !after.items.isEmpty {
            compare(old: before.items, new: after.items, field: field + "/*")
        }
        for (keyword, newNodes, place) in after.alternatives {
            guard case let (_, oldNodes, _)? = before.alternatives.first(where: { $0.keyword == keyword }) else {
                report(place, "\(keyword) added to \(name)")
                continue
            }
            if newNodes.count < oldNodes.count {
                report(place, "\(keyword) of \(name) has \(newNodes.count) alternatives instead of \(oldNodes.count)")
            }
            for (oldNode, newNode) in zip(oldNodes, newNodes) {
                compare(old: [oldNode], new: [newNode], field: field)
            }
        }
    }

    static func show(_ values: [JSONValue]) -> String {
        values.map { String(decoding: $0.serialized(), as: UTF8.self) }.joined(separator: ", ")
    }
}
