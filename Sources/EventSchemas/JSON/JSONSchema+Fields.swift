import Foundation

/// What a schema says about one field of the documents it validates: enough for a rule to be
/// checked against the schema before any document arrives (the orchestrator's conditions name
/// application fields, and a field the schema does not have is refused at load).
public struct SchemaField: Sendable, Hashable {
    /// The JSON types the schema allows there, as JSON Schema names them (`integer`, `number`,
    /// `string`, `boolean`, `array`, `object`, `null`); empty when the schema does not constrain the
    /// type.
    public var types: Set<String>
    /// The `format` of a string field (`date`, `date-time`, `cn-resident-id`…), when one is given.
    public var format: String?
    /// The values an `enum` allows, when the field has one.
    public var enumValues: [JSONValue]?
    /// Whether every level on the way is required, so a valid document always has the field.
    public var alwaysPresent: Bool
}

extension JSONSchema {
    /// The field at an RFC 6901 pointer (`/business/areaSquareMetres`), following `$ref`s and
    /// `allOf`; `nil` when the schema has no property of that name on the way. Array elements are
    /// named by any index (`/materials/0/name`).
    ///
    /// A schema whose objects allow any member (no `properties` and no `additionalProperties:
    /// false`) answers `nil` too: a rule naming a field nothing declares is a typo more often than
    /// not.
    public func field(at pointer: String) -> SchemaField? {
        var nodes = [root]
        var alwaysPresent = true
        for token in JSONValue.tokens(ofPointer: pointer) {
            var next: [SchemaNode] = []
            var required = false
            for node in nodes.flatMap(Self.expanded) {
                if let property = node.properties.first(where: { $0.0 == token }) {
                    next.append(property.1)
                    if node.required.contains(token) { required = true }
                } else if let items = node.items, Int(token) != nil {
                    next.append(items)
                    required = false
                }
            }
            guard !next.isEmpty else { return nil }
            if !required { alwaysPresent = false }
            nodes = next
        }
        var types: JSONTypes = []
        var format: String?
        var enumValues: [JSONValue]?
        for node in nodes.flatMap(Self.expanded) {
            if let nodeTypes = node.types { types.formUnion(nodeTypes) }
            if let nodeFormat = node.format?.name { format = nodeFormat }
            if let values = node.enumValues { enumValues = values }
        }
        return SchemaField(
            types: Set(types.sortedNames), format: format, enumValues: enumValues, alwaysPresent: alwaysPresent)
    }

    /// A node with the nodes it refers to (`$ref`) and those it combines (`allOf`).
    private static func expanded(_ node: SchemaNode) -> [SchemaNode] {
        var result = [node]
        if let reference = node.reference { result += expanded(reference) }
        for part in node.allOf { result += expanded(part) }
        return result
    }
}
