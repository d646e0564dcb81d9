import EventSchemas
import Foundation
import Testing

/// What a schema says about one field, as `connector check` and the catalog's `ownerField` ask it.
@Suite("Schema fields")
struct SchemaFieldTests {
    let schema: JSONSchema

    init() throws {
        schema = try JSONSchema(
            data: Data(
                ##"""
                {"type":"object","additionalProperties":false,
                 "properties":{
                   "child":{"$ref":"#/$defs/person"},
                   "kind":{"enum":["a","b"]},
                   "details":{"type":"object"},
                   "items":{"type":"array","items":{"type":"object","additionalProperties":false,"properties":{"n":{"type":"integer"}}}}
                 },
                 "$defs":{"person":{"type":"object","additionalProperties":false,"properties":{
                   "name":{"type":"string"},"residentId":{"type":"string","format":"cn-resident-id"}}}}}
                """##.utf8), name: "test")
    }

    @Test func fieldsTheSchemaHasAndHasNot() {
        #expect(schema.fieldProblem(at: "/kind") == nil)
        #expect(schema.fieldProblem(at: "/child/name") == nil, "through a $ref")
        #expect(schema.fieldProblem(at: "/details/anything/deeper") == nil, "an open object")
        #expect(schema.fieldProblem(at: "/items/0/n") == nil)
        let top = schema.fieldProblem(at: "/kidn")
        #expect(top?.pointer == "/kidn")
        #expect(top?.message.contains("did you mean kind?") == true, "\(top?.message ?? "")")
        let nested = schema.fieldProblem(at: "/child/nmae")
        #expect(nested?.message.hasPrefix("no field nmae in /child; did you mean name?") == true, "\(nested?.message ?? "")")
        #expect(schema.fieldProblem(at: "/items/0/m") != nil)
    }

    @Test func aValueAgainstOneFieldsSchema() {
        #expect(schema.validate(.string("a"), atField: "/kind") == [])
        #expect(schema.validate(.string("c"), atField: "/kind").map(\.keyword) == ["enum"])
        #expect(schema.validate(.string("c"), atField: "/kind").first?.pointer == "/kind")
        #expect(schema.validate(.string("110105194912310021"), atField: "/child/residentId").map(\.keyword) == ["format"])
        #expect(schema.validate(.integer(3), atField: "/details/x") == [], "nothing said about it")
    }
}
