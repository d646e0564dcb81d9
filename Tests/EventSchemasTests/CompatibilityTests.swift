import EventSchemas
import Foundation
import Testing
import TestSupport

/// A small catalog written to a temporary folder: one topic with a person schema, changed a
/// little per test.
struct CatalogVersion {
    var partitions = 6
    var key = "/residentId"
    var extraTopic = false
    var types = ["demo.person.registered"]
    var schema: [String: Any] = CatalogVersion.personSchema

    static var personSchema: [String: Any] { [
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["residentId", "name"],
        "additionalProperties": false,
        "properties": [
            "residentId": ["type": "string", "format": "cn-resident-id"],
            "name": ["$ref": "#/$defs/name"],
            "age": ["type": "number", "minimum": 0],
            "nickname": ["type": ["string", "null"], "maxLength": 20],
            "status": ["type": "string", "enum": ["active", "moved", "deceased"]],
            "address": [
                "type": "object",
                "properties": ["city": ["type": "string"], "street": ["type": "string"]],
            ],
            "phones": ["type": "array", "items": ["type": "string", "pattern": "^1[3-9][0-9]{9}$"]],
        ],
        "$defs": ["name": ["type": "string", "minLength": 1, "maxLength": 50]],
    ] }

    func write(to directory: URL) throws {
        try FileManager.default.createDirectory(
            at: directory.appendingPathComponent("schemas"), withIntermediateDirectories: true)
        var yaml = """
            version: 1
            deadLetterTopic: deadletter.record.refused
            departments:
              household-registry: 公安户政
            topics:
              - name: demo.person.registered
                owner: household-registry
                key: \(key)
                partitions: \(partitions)
                types: [\(types.joined(separator: ", "))]
              - name: deadletter.record.refused
                owner: household-registry
                types: []

            """
        if extraTopic {
            yaml += """
                  - name: demo.person.moved
                    owner: household-registry
                    key: /residentId
                    types: [demo.person.registered]

                """
        }
        try Data(yaml.utf8).write(to: directory.appendingPathComponent("catalog.yaml"))
        let json = try JSONSerialization.data(withJSONObject: schema, options: [.sortedKeys, .prettyPrinted])
        try json.write(to: directory.appendingPathComponent("schemas/demo.person.registered.json"))
        if types.contains("demo.person.noted") {
            try Data(#"{"type": "object"}"#.utf8).write(to: directory.appendingPathComponent("schemas/demo.person.noted.json"))
        }
    }

    func load() throws -> TopicCatalog {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("compat-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        try write(to: directory)
        return try TopicCatalog.load(from: directory)
    }

    /// The schema with one property's schema replaced (`nil`: removed).
    func property(_ name: String, _ value: Any?) -> CatalogVersion {
        var copy = self
        var properties = copy.schema["properties"] as! [String: Any]
        properties[name] = value
        copy.schema["properties"] = properties
        return copy
    }

    func with(_ key: String, _ value: Any?) -> CatalogVersion {
        var copy = self
        copy.schema[key] = value
        return copy
    }
}

/// The changes `new` makes to `old` that break readers, as report lines.
func breaking(_ old: CatalogVersion, _ new: CatalogVersion) throws -> [String] {
    try new.load().breakingChanges(since: old.load()).map(\.description)
}

@Suite("Schema evolution: changes that break existing readers")
struct CompatibilityTests {
    let base = CatalogVersion()
    let file = "demo.person.registered: schemas/demo.person.registered.json#"

    @Test func anUnchangedCatalogHasNoProblem() throws {
        #expect(try breaking(base, base) == [])
        let real = try TopicCatalog.load(from: schemasDirectory)
        #expect(real.breakingChanges(since: real).isEmpty)
    }

    @Test func aRemovedFieldIsRefused() throws {
        #expect(try breaking(base, base.property("age", nil)) == ["\(file)/properties/age: field /age removed"])
        let nested = base.property("address", ["type": "object", "properties": ["city": ["type": "string"]]])
        #expect(try breaking(base, nested) == ["\(file)/properties/address/properties/street: field /address/street removed"])
    }

    @Test func aFieldMadeRequiredIsRefused() throws {
        #expect(
            try breaking(base, base.with("required", ["residentId", "name", "age"]))
                == ["\(file)/required: field /age made required"])
        let newRequired = base.property("email", ["type": "string"]).with("required", ["residentId", "name", "email"])
        #expect(try breaking(base, newRequired) == ["\(file)/required: new required field /email"])
    }

    @Test func aNarrowedTypeIsRefused() throws {
        #expect(
            try breaking(base, base.property("age", ["type": "integer", "minimum": 0]))
                == ["\(file)/properties/age/type: type of field /age narrowed from number to integer"])
        #expect(
            try breaking(base, base.property("nickname", ["type": "string", "maxLength": 20]))
                == ["\(file)/properties/nickname/type: type of field /nickname narrowed from null, string to string"])
    }

    @Test func tighterBoundsPatternsAndFormatsAreRefused() throws {
        #expect(
            try breaking(base, base.property("nickname", ["type": ["string", "null"], "maxLength": 10]))
                == ["\(file)/properties/nickname/maxLength: maxLength of field /nickname lowered from 20 to 10"])
        #expect(
            try breaking(base, base.property("age", ["type": "number", "minimum": 18]))
                == ["\(file)/properties/age/minimum: minimum of field /age raised from 0 to 18"])
        #expect(
            try breaking(base, base.property("age", ["type": "number", "minimum": 0, "maximum": 150]))
                == ["\(file)/properties/age/maximum: maximum 150 added to field /age"])
        #expect(
            try breaking(base, base.property("phones", ["type": "array", "items": ["type": "string", "pattern": "^13[0-9]{9}$"]]))
                == ["\(file)/properties/phones/items/pattern: pattern of field /phones/* changed: ^13[0-9]{9}$ (was ^1[3-9][0-9]{9}$)"])
        #expect(
            try breaking(base, base.property("address", ["type": "object", "properties": ["city": ["type": "string", "format": "date"], "street": ["type": "string"]]]))
                == ["\(file)/properties/address/properties/city/format: format of field /address/city added: date"])
        let closed = base.property(
            "address",
            ["type": "object", "additionalProperties": false, "properties": ["city": ["type": "string"], "street": ["type": "string"]]])
        #expect(
            try breaking(base, closed)
                == ["\(file)/properties/address/additionalProperties: additionalProperties: false added to field /address (fields not listed are now refused)"])
    }

    @Test func aChangeInADefinitionIsNamedWhereItIs() throws {
        let narrowed = base.with("$defs", ["name": ["type": "string", "minLength": 2, "maxLength": 50]])
        #expect(try breaking(base, narrowed) == ["\(file)/$defs/name/minLength: minLength of field /name raised from 1 to 2"])
    }

    @Test func aRemovedEnumValueIsRefused() throws {
        #expect(
            try breaking(base, base.property("status", ["type": "string", "enum": ["active", "moved"]]))
                == [#"\#(file)/properties/status/enum: enum value "deceased" of field /status removed"#])
    }

    @Test func topicChangesAreRefused() throws {
        var changed = base
        changed.partitions = 12
        changed.key = "/name"
        #expect(
            try breaking(base, changed) == [
                "demo.person.registered: catalog.yaml key: key changed from /residentId to /name (events of one entity would no longer share a partition and their order)",
                "demo.person.registered: catalog.yaml partitions: partition count changed from 6 to 12 (keys would move to other partitions; create a new topic instead)",
            ])
        var withExtra = base
        withExtra.extraTopic = true
        #expect(
            try breaking(withExtra, base)
                == ["demo.person.moved: catalog.yaml topics: topic removed (its readers and the events on it would be left without a catalog entry)"])
        var twoTypes = base
        twoTypes.types = ["demo.person.registered", "demo.person.noted"]
        #expect(
            try breaking(twoTypes, base)
                == ["demo.person.registered: catalog.yaml types: event type demo.person.noted no longer carried (the events of that type on the topic fail validation)"])
    }

    @Test func additiveChangesAreAccepted() throws {
        var additive = base
            .property("email", ["type": "string", "format": "email"])  // a new optional field
            .property("status", ["type": "string", "enum": ["active", "moved", "deceased", "emigrated"]])
            .property("age", ["type": ["number", "string"]])  // widened, bound dropped
            .property("nickname", ["type": ["string", "null"], "maxLength": 40])
            .with("$defs", ["name": ["type": "string", "minLength": 1, "maxLength": 100]])
        additive.extraTopic = true
        additive.types = ["demo.person.registered", "demo.person.noted"]
        #expect(try breaking(base, additive) == [])
        let integerToNumber = base.property("age", ["type": "integer", "minimum": 0])
        #expect(try breaking(integerToNumber, base) == [], "integer → number widens")
    }
}
