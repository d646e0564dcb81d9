import Bus
import EventModel
import EventSchemas
import Foundation
import GRDB

/// Change data capture by polling: reads rows past the saved cursor, in order, publishes them (or
/// dead-letters them), and saves the cursor only after the bus confirmed.
///
/// The cursor is compound — the cursor column's value and the primary key of the last row read —
/// so rows that share a cursor value across a batch boundary are not skipped: the next batch
/// reads `cursor > c OR (cursor = c AND id > k)`, ordered by cursor then id. The cursor column must
/// only grow: a value written below one already read is never seen.
///
/// Event ids are `<department>/<table>/<id>/<version>`: a row published again after a crash
/// (between the bus's confirmation and the cursor's save) carries the same id, so consumers that
/// drop repeated ids see it once.
struct TableSource: Sendable {
    let configuration: TableSourceConfiguration
    let context: ConnectorContext

    var id: String { "table:\(configuration.table)" }

    /// Where reading resumes: after the row with cursor value `cursor` and primary key `key`.
    struct Position: Equatable {
        enum Key: Equatable {
            /// A cursor saved by an older connector, without a key: reading resumes *at* the cursor
            /// value, publishing those rows again (same ids) rather than risking skipping ties.
            case none
            /// The last row read had no key (NULL, dead-lettered): resume after the rows of this cursor
            /// value that have none. (NULL keys sort first, so the rest of the value's rows follow.)
            case null
            case value(MappedValue)
        }

        var cursor: Int64
        var key: Key
        /// The last row read had a key that is not UTF-8 (dead-lettered): its bytes, compared as
        /// TEXT, and `key` is `.none`. (Read as text, the key would not compare equal to itself;
        /// taken as NULL, the row was read again at every poll: a stall.) A field of its own: as a
        /// case of `Key` with a payload, Swift 6.3's debug build read a `nil` `Position?` as a
        /// position of garbage (`{"cursor":7813868915974483037,"id":0}`).
        var keyBytes: [UInt8]?

        init(cursor: Int64, key: Key, keyBytes: [UInt8]? = nil) {
            self.cursor = cursor
            self.key = key
            self.keyBytes = keyBytes
        }

        /// Reads a saved position: `{"cursor":…,"id":…}`, or an older connector's bare integer.
        init?(saved text: String) {
            if let number = Int64(text) {
                self.init(cursor: number, key: .none)
                return
            }
            guard let object = try? JSONValue.parse(Data(text.utf8)), case .integer(let cursor)? = object[pointer: "/cursor"]
            else { return nil }
            switch object[pointer: "/id"] {
            case .integer(let number)?: self.init(cursor: cursor, key: .value(.integer(number)))
            case .number(let number)?: self.init(cursor: cursor, key: .value(.number(number)))
            case .string(let text)?: self.init(cursor: cursor, key: .value(.text(text)))
            case .null?: self.init(cursor: cursor, key: .null)
            case .object(let members)?:
                guard case .string(let base64)? = members["base64"], let bytes = Data(base64Encoded: base64) else { return nil }
                self.init(cursor: cursor, key: .none, keyBytes: Array(bytes))
            default: return nil
            }
        }

        /// Where the rows after `row` start.
        init(after row: SourceRow, cursor: Int64, keyColumn: String) {
            if let bytes = row.invalidText[keyColumn] {
                self.init(cursor: cursor, key: .none, keyBytes: Array(bytes))
                return
            }
            switch row.mapped(keyColumn) {
            case .null: self.init(cursor: cursor, key: .null)
            case let value: self.init(cursor: cursor, key: .value(value))
            }
        }

        var saved: String {
            var object: JSONObject = ["cursor": .integer(cursor)]
            switch key {
            case .none: break
            case .null: object["id"] = .null
            case .value(let value): object["id"] = value.json
            }
            if let keyBytes { object["id"] = .object(["base64": .string(Data(keyBytes).base64EncodedString())]) }
            return String(decoding: JSONValue.object(object).serialized(), as: UTF8.self)
        }

        /// The WHERE clause and its arguments. `cursor >= c AND (…)`
        /// lets SQLite use an index on the cursor column for the range.
        func condition(cursor column: String, key keyColumn: String) -> (String, StatementArguments) {
            if let keyBytes {
                return ("WHERE \(column) >= ? AND (\(column) > ? OR \(keyColumn) > CAST(? AS TEXT))", [cursor, cursor, Data(keyBytes)])
            }
            switch key {
            case .none:
                return ("WHERE \(column) >= ?", [cursor])
            case .null:
                return ("WHERE \(column) >= ? AND (\(column) > ? OR \(keyColumn) IS NOT NULL)", [cursor, cursor])
            case .value(let value):
                let last: (any DatabaseValueConvertible)? =
                    switch value {
                    case .integer(let number): number
                    case .number(let number): number
                    case .bool(let flag): flag
                    default: value.text
                    }
                return ("WHERE \(column) >= ? AND (\(column) > ? OR \(keyColumn) > ?)", [cursor, cursor, last])
            }
        }
    }

    func run() async throws {
        guard let department = context.department else { return }
        try await checkColumns(department)
        let mapper = BodyMapper(rules: configuration.mapping)
        let saved = try await context.persistently(id, "reading the cursor") { try await context.cursors.position(of: id) }
        var position: Position? = try saved.map { text in
            guard let position = Position(saved: text) else {
                throw ConnectorConfigurationError(
                    file: context.configuration.file, location: "state",
                    problem: "the saved cursor of \(id) is unreadable ('\(text)'); fix or delete it in \(context.configuration.state)")
            }
            return position
        }
        let table = quoted(configuration.table)
        let cursor = quoted(configuration.cursor)
        let key = quoted(configuration.id)
        context.logger.notice("\(id): reading \(configuration.table) after \(position?.saved ?? "the start")")
        var lagDue = Every(.seconds(5))
        while partShouldContinue {
            let (condition, arguments) = position?.condition(cursor: cursor, key: key) ?? ("WHERE \(cursor) IS NOT NULL", [])
            let query = "SELECT * FROM \(table) \(condition) ORDER BY \(cursor), \(key) LIMIT ?"
            let rows = try await context.persistently(id, "reading \(configuration.table)") {
                try await department.read { db in
                    // From the statement, not copied rows: SourceRow sees the bytes of text that is not UTF-8.
                    try Array(Row.fetchCursor(db, sql: query, arguments: arguments + [configuration.batch]).map(SourceRow.init))
                }
            }
            if lagDue.now() {
                let lagQuery = "SELECT COUNT(*) FROM \(table) \(condition)"
                let lag = try await context.persistently(id, "measuring lag") {
                    try await department.read { db in try Int.fetchOne(db, sql: lagQuery, arguments: arguments) ?? 0 }
                }
                context.stats.sourceLag(lag)
            }
            guard let last = rows.last else {
                try await context.idle(for: configuration.interval)
                continue
            }
            context.stats.read(rows.count)
            // A row too large for the bus goes to the dead-letter topic cut short (with its size and
            // digest) rather than blocking the table: the cursor moves past it like past any other.
            _ = try await context.publish(
                rows.map { publication(for: $0, mapper: mapper) }, part: id, what: "publishing to the bus")
            guard case .integer(let next) = last.mapped(configuration.cursor) else {
                throw ConnectorConfigurationError(
                    file: context.configuration.file, location: "sources: \(id)",
                    problem: "the cursor column \(configuration.cursor) of \(configuration.table) holds "
                        + "\(last.mapped(configuration.cursor)), not an integer; the cursor must be a growing integer column")
            }
            let reached = Position(after: last, cursor: next, keyColumn: configuration.id)
            try await context.persistently(id, "saving the cursor") {
                try await context.cursors.save(reached.saved, of: id)
            }
            position = reached
        }
    }

    /// Refuses to start when a column the file names is not in the department's table.
    /// - Throws: ``ConnectorConfigurationError`` naming the file, the table and the column.
    func checkColumns(_ department: DatabasePool) async throws {
        let table = configuration.table
        let columns = try await context.persistently(id, "reading the columns of \(table)") {
            try await department.read { db in
                try Row.fetchAll(db, sql: "SELECT name FROM pragma_table_info(?)", arguments: [table]).map {
                    $0["name"] as String
                }
            }
        }
        func fail(_ problem: String) -> ConnectorConfigurationError {
            ConnectorConfigurationError(file: context.configuration.file, location: "sources: table \(table)", problem: problem)
        }
        guard !columns.isEmpty else {
            throw fail("the department's database \(context.configuration.database ?? "") has no table \(table)")
        }
        var named: [(String, String)] = [("cursor", configuration.cursor), ("id", configuration.id)]
        if let version = configuration.version { named.append(("version", version)) }
        if let subject = configuration.subject { named.append(("subject", subject)) }
        if let time = configuration.time { named.append(("time", time)) }
        for rule in configuration.mapping {
            if case .column(let column) = rule.value { named.append(("mapping \(rule.field)", column)) }
        }
        let present = Set(columns)
        for (key, column) in named where !present.contains(column) {
            throw fail(
                "table \(table) has no column \(column) (named by `\(key)`); its columns are \(columns.joined(separator: ", "))")
        }
    }

    /// The columns a row's event is made of, each with what it becomes: `id`, `version`, `subject`,
    /// `time` or the mapped field's pointer.
    var usedColumns: [(column: String, use: String)] {
        var used: [(String, String)] = [(configuration.id, "id"), (configuration.cursor, "cursor")]
        if let version = configuration.version { used.append((version, "version")) }
        if let subject = configuration.subject { used.append((subject, "subject")) }
        if let time = configuration.time { used.append((time, "time")) }
        for rule in configuration.mapping {
            if case .column(let column) = rule.value { used.append((column, rule.field)) }
        }
        return used
    }

    func publication(for row: SourceRow, mapper: BodyMapper) -> Publication {
        let version = configuration.version.flatMap { row.mapped($0).text } ?? "1"
        if !row.invalidText.isEmpty, let refusal = refusalForBytes(row, version: version) { return refusal }
        guard let key = row.mapped(configuration.id).text else {
            let cursor = row.mapped(configuration.cursor).text ?? "NULL"
            return refused(
                row, eventId: "\(context.configuration.department)/\(configuration.table)/null-\(cursor)/\(version)",
                "the row of \(configuration.table) with \(configuration.cursor) \(cursor) has no \(configuration.id) "
                    + "(NULL): its event would have no id; give the row its primary key")
        }
        let eventId = "\(context.configuration.department)/\(configuration.table)/\(key)/\(version)"
        var time = context.clock.now()
        if let column = configuration.time, let text = row.mapped(column).text,
            case .string(let formatted)? = try? Conversion.dateTime.apply(.text(text)),
            let parsed = RFC3339.parse(formatted)
        {
            time = parsed
        }
        let subject = configuration.subject.flatMap { row.mapped($0).text }
        do {
            let body = try mapper.body(column: { row.mapped($0) }, path: { _ in .null })
            return Publication(
                event: Event(
                    id: eventId, type: configuration.type, source: context.configuration.eventSource, subject: subject,
                    time: time, data: body.serialized()),
                topic: configuration.topic, body: body)
        } catch {
            return Publication(
                event: Event(
                    id: eventId, type: configuration.type, source: context.configuration.eventSource, subject: subject,
                    time: time, data: row.json.serialized()),
                topic: configuration.topic,
                refusal: ValidationFailure(
                    .mappingFailed, "row \(key) of \(configuration.table): \(error)", eventType: configuration.type,
                    eventId: eventId))
        }
    }
}

extension TableSource {
    /// The dead letter of a row a column of which, used by the event, holds bytes that are not
    /// UTF-8: refused (rule `utf-8`), never published with U+FFFD in their place. `nil` when the
    /// only such columns are ones the file does not use.
    func refusalForBytes(_ row: SourceRow, version: String) -> Publication? {
        let cursor = row.mapped(configuration.cursor).text ?? "NULL"
        // A key that is itself not text: the row is named by its cursor value, as a NULL key is.
        let key = row.mapped(configuration.id).text
        let name = key.map { "row \($0) of \(configuration.table)" }
            ?? "the row of \(configuration.table) with \(configuration.cursor) \(cursor)"
        guard let problem = row.utf8Problem(of: name, used: usedColumns) else { return nil }
        let eventId =
            "\(context.configuration.department)/\(configuration.table)/\(key ?? "invalid-\(cursor)")/\(version)"
        return refused(row, eventId: eventId, problem)
    }

    /// The dead letter of a row that makes no event: the row itself as the data, no subject.
    private func refused(_ row: SourceRow, eventId: String, _ message: String) -> Publication {
        Publication(
            event: Event(
                id: eventId, type: configuration.type, source: context.configuration.eventSource, subject: nil,
                time: context.clock.now(), data: row.json.serialized()),
            topic: configuration.topic,
            refusal: ValidationFailure(.mappingFailed, message, eventType: configuration.type, eventId: eventId))
    }
}

/// An SQL identifier in double quotes.
func quoted(_ identifier: String) -> String { "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
