import EventSchemas
import Foundation

/// What `onewindow topics example TYPE` prints: an event type's fields (from its JSON Schema file)
/// and an example body, so nobody has to open the schema to write a first event.
struct EventTypeText {
    /// One field of a body.
    struct Field: Equatable {
        /// Its JSON pointer, e.g. `/child/residentId`; `*` stands for every element of an array
        /// (`/materials/*/name`).
        var pointer: String
        /// `yes`, `no`, or `with /parent` when it is required inside an optional object.
        var required: String
        /// The JSON type(s), e.g. `string` or `string | integer`.
        var type: String
        /// Format, enum, const, pattern and bounds, e.g. `format cn-resident-id`.
        var rule: String
    }

    let type: String
    let document: JSONValue

    /// Reads the schema file of `type` from the catalog directory.
    /// - Throws: ``CommandFailure`` when the catalog has no such type or its file cannot be read.
    init(type: String, catalog: TopicCatalog, directory: URL) throws {
        guard catalog.schemas[type] != nil else {
            throw CommandFailure(
                .notFound,
                "the catalog has no event type \(type); the types are: \(catalog.eventTypes.joined(separator: ", "))")
        }
        let file = directory.appendingPathComponent("schemas").appendingPathComponent("\(type).json").path
        self.type = type
        self.document = try JSONValue.parse(try InputFile.read(file, what: "the schema of \(type)"))
    }

    /// Every field of the body, required ones of each object first (in the schema's order), then
    /// the optional ones by name; members of nested objects and array elements follow their parent.
    var fields: [Field] {
        var result: [Field] = []
        walk(document, pointer: "", requiredWhen: "yes", into: &result)
        return result
    }

    /// The schema's first example, if it has one.
    var example: JSONValue? { document[pointer: "/examples/0"] }

    /// The whole text: type, topic, fields, example.
    func render(catalog: TopicCatalog) -> String {
        var lines: [String] = []
        let title = document[pointer: "/title"]?.stringValue.map { " — \($0)" } ?? ""
        lines.append("event type:  \(type)\(title)")
        if let description = document[pointer: "/description"]?.stringValue {
            lines.append("description: \(description)")
        }
        for topic in catalog.topics(carrying: type) {
            lines.append("topic:       \(topic.name) (key \(topic.keyPointer ?? "none"))")
        }
        lines.append("")
        lines.append(
            Table.render(
                header: ["FIELD", "REQUIRED", "TYPE", "RULE"],
                rows: fields.map { [$0.pointer, $0.required, $0.type, $0.rule] }))
        if fields.contains(where: { $0.pointer.contains("/*") }) {
            lines.append("(* stands for every element of an array)")
        }
        if let example {
            lines.append("")
            lines.append("An example body (--body prints it alone; publish --example publishes it):")
            lines.append(Self.pretty(example))
        }
        return lines.joined(separator: "\n")
    }

    /// `$ref`s to `#/$defs/…` (or any local pointer) replaced by what they point at, members of
    /// the referring schema winning.
    private func resolved(_ schema: JSONValue) -> JSONValue {
        guard case .object(var members) = schema, let reference = members["$ref"]?.stringValue,
            reference.hasPrefix("#"), let target = document[pointer: String(reference.dropFirst())]
        else { return schema }
        members["$ref"] = nil
        guard case .object(let targetMembers) = resolved(target) else { return .object(members) }
        return .object(targetMembers.merging(members) { _, own in own })
    }

    private func walk(_ rawSchema: JSONValue, pointer: String, requiredWhen: String, into result: inout [Field]) {
        let schema = resolved(rawSchema)
        if !pointer.isEmpty {
            result.append(Field(pointer: pointer, required: requiredWhen, type: typeText(schema), rule: ruleText(schema)))
        }
        if let properties = schema[pointer: "/properties"]?.objectValue {
            let required = schema[pointer: "/required"]?.arrayValue?.compactMap(\.stringValue) ?? []
            let optional = properties.keys.filter { !required.contains($0) }.sorted()
            for name in required + optional {
                guard let child = properties[name] else { continue }
                // Required in an object that is itself optional: required whenever that object is given.
                let when: String
                if !required.contains(name) {
                    when = "no"
                } else if pointer.isEmpty || requiredWhen == "yes" {
                    when = "yes"
                } else {
                    when = "with \(pointer)"
                }
                walk(child, pointer: pointer + "/" + name, requiredWhen: when, into: &result)
            }
        }
        if let items = schema[pointer: "/items"] {
            walk(items, pointer: pointer + "/*", requiredWhen: requiredWhen, into: &result)
        }
    }

    private func alternatives(_ schema: JSONValue) -> [JSONValue] {
        (schema[pointer: "/anyOf"]?.arrayValue ?? schema[pointer: "/oneOf"]?.arrayValue ?? []).map(resolved)
    }

    private func typeText(_ schema: JSONValue) -> String {
        if let type = schema[pointer: "/type"] {
            if let name = type.stringValue { return name }
            return type.arrayValue?.compactMap(\.stringValue).joined(separator: " | ") ?? ""
        }
        var choices: [String] = []
        for choice in alternatives(schema).map(typeText) where !choice.isEmpty && !choices.contains(choice) {
            choices.append(choice)
        }
        return choices.joined(separator: " | ")
    }

    private func ruleText(_ schema: JSONValue) -> String {
        var rules: [String] = []
        if let format = schema[pointer: "/format"]?.stringValue { rules.append("format \(format)") }
        if let values = schema[pointer: "/enum"]?.arrayValue {
            rules.append("one of " + values.map(Self.scalar).joined(separator: ", "))
        }
        if let value = schema[pointer: "/const"] { rules.append("always " + Self.scalar(value)) }
        if let pattern = schema[pointer: "/pattern"]?.stringValue { rules.append("pattern \(pattern)") }
        for (minimum, maximum, unit) in [("minLength", "maxLength", "characters"), ("minItems", "maxItems", "items")] {
            switch (schema[pointer: "/" + minimum].map(Self.scalar), schema[pointer: "/" + maximum].map(Self.scalar)) {
            case (let low?, let high?): rules.append("\(low) to \(high) \(unit)")
            case (let low?, nil): rules.append("at least \(low) \(low == "1" ? String(unit.dropLast()) : unit)")
            case (nil, let high?): rules.append("at most \(high) \(high == "1" ? String(unit.dropLast()) : unit)")
            case (nil, nil): break
            }
        }
        for (keyword, symbol) in [("minimum", "≥"), ("maximum", "≤"), ("exclusiveMinimum", ">"), ("exclusiveMaximum", "<")] {
            if let value = schema[pointer: "/" + keyword] { rules.append("\(symbol) \(Self.scalar(value))") }
        }
        let choices = alternatives(schema).map(ruleText).filter { !$0.isEmpty }
        if !choices.isEmpty { rules.append("either " + choices.joined(separator: " or ")) }
        return rules.joined(separator: "; ")
    }

    private static func scalar(_ value: JSONValue) -> String {
        if let text = value.stringValue { return text }
        return String(decoding: value.serialized(), as: UTF8.self)
    }

    /// JSON with two-space indentation and sorted keys, non-ASCII kept as it is.
    static func pretty(_ value: JSONValue, indent: String = "") -> String {
        let inner = indent + "  "
        switch value {
        case .object(let members) where !members.isEmpty:
            let lines = members.keys.sorted().map { key in
                String(decoding: JSONValue.string(key).serialized(), as: UTF8.self) + ": "
                    + pretty(members[key]!, indent: inner)
            }
            return "{\n" + lines.map { inner + $0 }.joined(separator: ",\n") + "\n" + indent + "}"
        case .array(let elements) where !elements.isEmpty:
            return "[\n" + elements.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent
                + "]"
        default:
            return String(decoding: value.serialized(), as: UTF8.self)
        }
    }
}
