import EventSchemas
import Foundation
import Testing

let schemasDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Topics")

let catalog: TopicCatalog = {
    do {
        return try TopicCatalog.load(from: schemasDirectory)
    } catch {
        fatalError("Topics/ does not load: \(error)")
    }
}()

/// Every schema file, its example valid, and invalid variants of it refused at the right place.
@Suite("Event schemas in Topics/schemas")
struct SchemaFilesTests {
    static let types = catalog.eventTypes

    @Test func everyCatalogTypeHasASchemaAndNoSchemaIsOrphaned() throws {
        let files = try FileManager.default.contentsOfDirectory(
            atPath: schemasDirectory.appendingPathComponent("schemas").path)
        #expect(Set(files.map { String($0.dropLast(".json".count)) }) == Set(Self.types))
        #expect(Self.types.count == 30)  // 29 and deadletter.record.handled (onewindow dlq)
    }

    @Test(arguments: types)
    func exampleIsValidAndIdentifiesItself(_ type: String) throws {
        let schema = try #require(catalog.schemas[type])
        #expect(schema.id == "urn:onewindow:schema:\(type)")
        #expect(schema.title?.isEmpty == false && schema.description?.isEmpty == false)
        #expect(!schema.examples.isEmpty, "\(type) has no example")
        for example in schema.examples {
            #expect(schema.validate(example) == [], "\(type)")
        }
        // The key field of every topic carrying the type is in the example.
        for topic in catalog.topics(carrying: type) {
            if let pointer = topic.keyPointer { #expect(schema.examples[0][pointer: pointer] != nil, "\(type) \(pointer)") }
        }
    }

    @Test(arguments: types)
    func removingEachRequiredFieldIsRefusedAtThatField(_ type: String) throws {
        let schema = try #require(catalog.schemas[type])
        let raw = try JSONValue.parse(Data(contentsOf: schemasDirectory.appendingPathComponent("schemas/\(type).json")))
        let required = raw[pointer: "/required"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(!required.isEmpty)
        guard case .object(var members) = schema.examples[0] else { return }
        for field in required {
            let removed = members.removeValue(forKey: field)
            let violations = schema.validate(.object(members))
            #expect(violations.contains(SchemaViolation(pointer: "/\(field)", keyword: "required", message: "is missing")), "\(type) /\(field)")
            members[field] = removed
        }
    }

    @Test(arguments: types)
    func unknownFieldsAndWrongTypesAreRefused(_ type: String) throws {
        let schema = try #require(catalog.schemas[type])
        var extra = schema.examples[0]
        extra.set(.string("x"), at: "/notInTheSchema")
        #expect(schema.validate(extra).map(\.keyword) == ["additionalProperties"])
        #expect(schema.validate(extra).first?.pointer == "/notInTheSchema")
        // Every top-level field set to a value of another JSON type is refused at that field.
        guard case .object(let members) = schema.examples[0] else { return }
        for (field, value) in members {
            var wrong = schema.examples[0]
            let replacement: JSONValue = value.stringValue != nil ? .array([.integer(1)]) : .string("wrong")
            wrong.set(replacement, at: "/\(field)")
            let violations = schema.validate(wrong)
            #expect(violations.contains { $0.pointer.hasPrefix("/\(field)") }, "\(type) /\(field): \(violations)")
        }
    }

    @Test(arguments: types)
    func corruptedIdentifiersAreRefusedByTheirFormat(_ type: String) throws {
        let schema = try #require(catalog.schemas[type])
        var found = 0
        func walk(_ value: JSONValue, _ pointer: String) throws {
            switch value {
            case .object(let members): for (key, member) in members { try walk(member, "\(pointer)/\(key)") }
            case .array(let elements): for (index, element) in elements.enumerated() { try walk(element, "\(pointer)/\(index)") }
            case .string(let text):
                let isResident = ResidentIDNumber.problem(in: text) == nil
                let isCredit = UnifiedSocialCreditCode.problem(in: text) == nil
                guard isResident || isCredit else { return }
                found += 1
                var corrupted = schema.examples[0]
                let last = text.last!
                let wrong: Character = last == "1" ? "2" : "1"
                corrupted.set(.string(String(text.dropLast()) + String(wrong)), at: pointer)
                let violations = schema.validate(corrupted)
                #expect(
                    violations.contains { $0.pointer == pointer && ($0.keyword == "format" || $0.keyword == "anyOf") },
                    "\(type) \(pointer): \(violations)")
            default: return
            }
        }
        try walk(schema.examples[0], "")
        if type.hasPrefix("household.") || type.hasPrefix("socialsecurity.") || type.hasPrefix("market.") {
            #expect(found > 0, "\(type) carries an ID number")
        }
    }
}
