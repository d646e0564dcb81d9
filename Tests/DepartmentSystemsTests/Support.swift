import CivilTime
import Connectors
import DepartmentSystems
import EventSchemas
import Foundation
import GRDB
import TestSupport

/// The repository's catalog, loaded once.
let catalog: TopicCatalog = {
    do {
        return try TopicCatalog.load(from: repositoryRoot.appendingPathComponent("Topics"))
    } catch {
        fatalError("Topics/ does not load: \(error)")
    }
}()

/// The repository's working-day calendar, `Rules/calendar.yaml`.
let calendar: WorkingDayCalendar = {
    do {
        return try WorkingDayCalendar.load(from: repositoryRoot.appendingPathComponent(WorkingDayCalendar.defaultPath))
    } catch {
        fatalError("Rules/calendar.yaml does not load: \(error)")
    }
}()

/// The folder of this test process's department databases, removed when the process exits (a
/// database is opened by tests that end without closing it, and by processes they start).
let departmentDatabases: URL = {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
        "onewindow-depts-\(UUID().uuidString.prefix(8))")
    atexit { try? FileManager.default.removeItem(at: departmentDatabases) }
    return directory
}()

/// A fresh department database in a temporary file.
func temporaryDatabase(_ department: DepartmentID) throws -> DepartmentDatabase {
    let directory = departmentDatabases.appendingPathComponent(UUID().uuidString.prefix(8).description)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return try DepartmentDatabase.open(department, path: directory.appendingPathComponent("\(department).sqlite").path)
}

/// A date and time in China.
func china(_ text: String) -> Date { ChinaTime.parse(text)! }

/// A row's value as a connector's table source reads it.
func mappedValue(_ value: DatabaseValue) -> MappedValue {
    switch value.storage {
    case .null: .null
    case .int64(let number): .integer(number)
    case .double(let number): .number(number)
    case .string(let text): .text(text)
    case .blob(let data): .text(String(decoding: data, as: UTF8.self))
    }
}

/// Why a row would be dead-lettered by a connector, or `nil` when its event would be published:
/// the mapping of the connector file, then the type's schema and the topic's key field.
func refusal(of row: Row, mapper: BodyMapper, type: String) -> String? {
    let body: JSONValue
    do {
        body = try mapper.body(
            column: { name in row.hasColumn(name) ? mappedValue(row[name] as DatabaseValue) : .null },
            path: { _ in .null })
    } catch {
        return "mapping: \(error)"
    }
    return refusal(of: body, type: type)
}

/// Why a body would be refused for its type, or `nil`.
func refusal(of body: JSONValue, type: String) -> String? {
    guard let schema = catalog.schemas[type] else { return "no schema for \(type)" }
    let violations = schema.validate(body)
    if !violations.isEmpty { return "schema: \(violations.map(\.description).joined(separator: "; "))" }
    if let pointer = catalog.topics(carrying: type).first?.keyPointer, body[pointer: pointer]?.stringValue == nil {
        return "no key at \(pointer)"
    }
    return nil
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
