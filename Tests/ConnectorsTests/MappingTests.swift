import Connectors
import EventSchemas
import Foundation
import Testing
import TestSupport

@Suite("Connector files and mappings")
struct MappingTests {
    @Test func theReadmeExampleParses() throws {
        let readme = try String(
            contentsOf: repositoryRoot.appendingPathComponent("Connectors/README.md"), encoding: .utf8)
        // The first ```yaml block of the README is a complete connector file.
        let start = try #require(readme.range(of: "```yaml\n"))
        let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
        let configuration = try ConnectorConfiguration.parse(String(readme[start.upperBound..<end.lowerBound]), file: "README")
        #expect(configuration.name == "household-registry-example")
        #expect(configuration.sources.count == 3)
        #expect(configuration.sinks.count == 3)
        #expect(configuration.consumerGroup(forSink: 0) == "connector.household-registry-example.inbox")
        #expect(configuration.consumerGroup(forSink: 1) == "connector.household-registry-example.webhook")
        guard case .table(let table) = configuration.sources[0] else {
            Issue.record("the first source is not a table")
            return
        }
        #expect(table.cursor == "change_seq")
        #expect(table.interval == .milliseconds(500))
        #expect(table.mapping.count == 10)
        try Connector.check(configuration, against: catalog)
    }

    @Test func mistakesAreReportedWithTheirPlace() {
        let cases: [(String, String)] = [
            ("name: x\ndepartment: tax\nsources:\n  - kind: ftp\n", "sources[0].kind"),
            ("name: x\ndepartment: tax\ndatabase: d\nsources:\n  - {kind: table, table: t, cursor: c, type: t.t.t, mapping: {childName: {column: a}}}\n", "sources[0].mapping.childName"),
            ("name: x\ndepartment: tax\ndatabase: d\nsources:\n  - {kind: table, table: t, cursor: c, type: t.t.t, interval: soon, mapping: {/a: {column: a}}}\n", "sources[0].interval"),
            ("name: x\ndepartment: tax\nsinks:\n  - {kind: webhook, topics: [a.b.c], url: 'ftp://x'}\n", "sinks[0].url"),
            ("name: x\ndepartment: tax\nsources:\n  - {kind: table, table: t, cursor: c, type: t.t.t, mapping: {/a: {column: a}}}\n", "database"),
        ]
        for (text, location) in cases {
            do {
                _ = try ConnectorConfiguration.parse(text, file: "test.yaml")
                Issue.record("accepted: \(text)")
            } catch let error as ConnectorConfigurationError {
                #expect(error.location == location, "\(error)")
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
    }

    @Test func conversionsAndCodeTables() throws {
        let yaml = """
            name: x
            department: household-registry
            database: d
            sources:
              - kind: table
                table: births
                cursor: change_seq
                type: household.birth.registered
                mapping:
                  /child/birthDate: {column: birth_date, convert: date}
                  /child/gender: {column: gender, codes: {"1": male, "2": female}}
                  /registeredAt: {column: registered_at, convert: date-time}
                  /weightGrams: {column: weight, convert: integer}
                  /twin: {column: twin, convert: boolean}
                  /office: {const: 佛山市公安局禅城分局}
                  /missing: {column: absent}
            """
        let configuration = try ConnectorConfiguration.parse(yaml, file: "t")
        guard case .table(let table) = configuration.sources[0] else { return }
        let mapper = BodyMapper(rules: table.mapping)
        let row: [String: MappedValue] = [
            "birth_date": .integer(20_240_115), "gender": .text("2"), "registered_at": .text("2024-01-16 09:30:00"),
            "weight": .text("3250"), "twin": .text("N"),
        ]
        let body = try mapper.body(column: { row[$0] ?? .null }, path: { _ in .null })
        #expect(body[pointer: "/child/birthDate"] == .string("2024-01-15"))
        #expect(body[pointer: "/child/gender"] == .string("female"))
        #expect(body[pointer: "/registeredAt"] == .string("2024-01-16T09:30:00+08:00"))
        #expect(body[pointer: "/weightGrams"] == .integer(3250))
        #expect(body[pointer: "/twin"] == .bool(false))
        #expect(body[pointer: "/office"] == .string("佛山市公安局禅城分局"))
        #expect(body[pointer: "/missing"] == nil, "a NULL column leaves its field out")

        for (column, value, fragment) in [
            ("birth_date", MappedValue.text("20240231"), "not a date"), ("gender", .text("9"), "code table"),
            ("weight", .text("heavy"), "whole number"),
        ] {
            var bad = row
            bad[column] = value
            #expect {
                _ = try mapper.body(column: { bad[$0] ?? .null }, path: { _ in .null })
            } throws: { error in
                "\(error)".contains(fragment) && "\(error)".contains(column)
            }
        }
    }

    /// The forms department systems write dates and times in, each converted to the event's form,
    /// and what is not a date refused.
    @Test func datesAndTimesInTheDepartmentsForms() throws {
        let yaml = """
            name: x
            department: household-registry
            database: d
            sources:
              - kind: table
                table: births
                cursor: change_seq
                type: household.birth.registered
                mapping:
                  /day: {column: day, convert: date}
                  /at: {column: at, convert: date-time}
            """
        let configuration = try ConnectorConfiguration.parse(yaml, file: "t")
        guard case .table(let table) = configuration.sources[0] else { return }
        let mapper = BodyMapper(rules: table.mapping)
        func convert(_ column: String, _ value: MappedValue) throws -> JSONValue? {
            try mapper.body(column: { $0 == column ? value : .null }, path: { _ in .null })[pointer: "/\(column)"]
        }
        for (value, expected) in [
            (MappedValue.text("2024-01-16 09:30:00"), "2024-01-16T09:30:00+08:00"),
            (.text("2024/01/16 09:30:00"), "2024-01-16T09:30:00+08:00"),
            (.text(" 2024-01-16 09:30:00\t"), "2024-01-16T09:30:00+08:00"),
            (.text("2024-01-16T01:30:00Z"), "2024-01-16T09:30:00+08:00"),
            (.text("2024-01-16T09:30:00.750+08:00"), "2024-01-16T09:30:00+08:00"),
            (.text("2024-01-15T20:30:00-05:00"), "2024-01-16T09:30:00+08:00"),
            (.text("2024-12-31 23:59:59"), "2024-12-31T23:59:59+08:00"),
        ] {
            #expect(try convert("at", value) == .string(expected), "\(value)")
        }
        // The shortcut for the local form relies on the RFC 3339 parser refusing it.
        #expect((try? Date.ISO8601FormatStyle().parse("2024-01-16 09:30:00")) == nil)
        for (value, expected) in [
            (MappedValue.text("2024-01-15"), "2024-01-15"), (.text("2024/01/15"), "2024-01-15"),
            (.text("2024.01.15"), "2024-01-15"), (.text("20240115"), "2024-01-15"), (.integer(20_240_115), "2024-01-15"),
            (.text(" 20240229 "), "2024-02-29"),
        ] {
            #expect(try convert("day", value) == .string(expected), "\(value)")
        }
        for (column, value) in [
            ("at", MappedValue.text("yesterday")), ("at", .text("2024-01-16")), ("day", .text("2023-02-29")),
            ("day", .text("２０２４０１１５")), ("day", .text("2024-1-15")), ("day", .text("1899-12-31")),
        ] {
            #expect(throws: MappingError.self, "\(value)") { try convert(column, value) }
        }
    }
}
