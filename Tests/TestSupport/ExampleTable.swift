import EventSchemas
import Foundation
import GRDB

/// A department table shaped after a schema's example: one column per leaf field of the example,
/// so a connector mapping can rebuild the example exactly, whatever the schema holds.
public struct ExampleTable: Sendable {
    public struct Column: Sendable {
        public let pointer: String
        public let name: String
        public let value: JSONValue
        /// Arrays and objects are stored as JSON text and mapped with `convert: json`.
        public var isJSON: Bool { value.arrayValue != nil || value.objectValue != nil }
    }

    public let type: String
    public let table: String
    public let example: JSONValue
    public let columns: [Column]

    public init(type: String, table: String, catalog: TopicCatalog) throws {
        self.type = type
        self.table = table
        guard let example = catalog.schemas[type]?.examples.first else { throw SupportError("\(type) has no example") }
        self.example = example
        var columns: [Column] = []
        func walk(_ value: JSONValue, _ pointer: String) {
            if case .object(let members) = value, !members.isEmpty, !members.values.contains(where: { $0.arrayValue != nil }) {
                for key in members.keys.sorted() { walk(members[key]!, pointer + "/" + key) }
            } else {
                let name = pointer.dropFirst().replacingOccurrences(of: "/", with: "_")
                columns.append(Column(pointer: pointer, name: name, value: value))
            }
        }
        walk(example, "")
        self.columns = columns
    }

    /// The `CREATE TABLE` of the connector contract: id, version, change_seq and the columns.
    public var createSQL: String {
        let fields = columns.map { "\(quotedName($0.name)) \(sqlType($0.value))" }.joined(separator: ", ")
        return """
            CREATE TABLE \(table) (id INTEGER PRIMARY KEY AUTOINCREMENT, version INTEGER NOT NULL DEFAULT 1,
            change_seq INTEGER NOT NULL UNIQUE, \(fields))
            """
    }

    /// The mapping block of a connector file: every column back to its field.
    public var mappingYAML: String {
        columns.map { column in
            let convert = column.isJSON ? ", convert: json" : column.value.isBool ? ", convert: boolean" : ""
            return "      \(column.pointer): {column: \(column.name)\(convert)}"
        }.joined(separator: "\n")
    }

    /// Inserts one row holding the example, with `overrides` (column name → value, `nil` for NULL).
    public func insert(_ db: Database, overrides: [String: DatabaseValue] = [:]) throws {
        var names = ["change_seq"]
        var placeholders = ["(SELECT COALESCE(MAX(change_seq), 0) + 1 FROM \(table))"]
        var values: [DatabaseValue] = []
        for column in columns {
            names.append(quotedName(column.name))
            placeholders.append("?")
            values.append(overrides[column.name] ?? databaseValue(column.value))
        }
        try db.execute(
            sql: "INSERT INTO \(table) (\(names.joined(separator: ", "))) VALUES (\(placeholders.joined(separator: ", ")))",
            arguments: StatementArguments(values))
    }

    /// Updates a row as a department does: new version, new change_seq.
    public func touch(_ db: Database, id: Int64) throws {
        try db.execute(
            sql: "UPDATE \(table) SET version = version + 1, change_seq = (SELECT MAX(change_seq) + 1 FROM \(table)) WHERE id = ?",
            arguments: [id])
    }

    private func databaseValue(_ value: JSONValue) -> DatabaseValue {
        switch value {
        case .null: return .null
        case .bool(let flag): return (flag ? 1 : 0).databaseValue
        case .integer(let number): return number.databaseValue
        case .number(let number): return number.databaseValue
        case .string(let text): return text.databaseValue
        default: return String(decoding: value.serialized(), as: UTF8.self).databaseValue
        }
    }

    private func sqlType(_ value: JSONValue) -> String {
        switch value {
        case .integer, .bool: "INTEGER"
        case .number: "REAL"
        default: "TEXT"
        }
    }

    /// A required top-level field of the schema held in a plain column (for a NULL test).
    public func requiredScalarColumn() throws -> Column {
        let schema = try JSONValue.parse(
            Data(contentsOf: repositoryRoot.appendingPathComponent("Topics/schemas/\(type).json")))
        let required = schema[pointer: "/required"]?.arrayValue?.compactMap(\.stringValue) ?? []
        guard let column = columns.first(where: { column in
            !column.isJSON && required.contains(String(column.pointer.dropFirst())) && !column.pointer.dropFirst().contains("/")
        }) else { throw SupportError("\(type) has no required top-level scalar") }
        return column
    }
}


func quotedName(_ name: String) -> String { "\"\(name)\"" }

extension JSONValue {
    /// Booleans as the example had them: a department stores them as 1/0, mapped back by `convert: boolean`.
    public var isBool: Bool { if case .bool = self { true } else { false } }
}
