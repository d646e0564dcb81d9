import Bus
import EventModel
import EventSchemas
import Foundation
import GRDB

/// Change data capture by polling: reads rows whose cursor column is past the saved cursor, in
/// order, publishes them (or dead-letters them), and saves the cursor only after the bus confirmed.
///
/// Event ids are `<department>/<table>/<id>/<version>`: a row published again after a crash
/// (between the bus's confirmation and the cursor's save) carries the same id, so consumers that
/// drop repeated ids see it once.
struct TableSource: Sendable {
    let configuration: TableSourceConfiguration
    let context: ConnectorContext

    var id: String { "table:\(configuration.table)" }

    func run() async throws {
        guard let department = context.department else { return }
        let mapper = BodyMapper(rules: configuration.mapping)
        var position = Int64(try await context.cursors.position(of: id) ?? "0") ?? 0
        context.logger.notice("\(id): reading \(configuration.table) after \(configuration.cursor) \(position)")
        let query = "SELECT * FROM \(quoted(configuration.table)) WHERE \(quoted(configuration.cursor)) > ? ORDER BY \(quoted(configuration.cursor)) LIMIT ?"
        let lagQuery = "SELECT COUNT(*) FROM \(quoted(configuration.table)) WHERE \(quoted(configuration.cursor)) > ?"
        let clock = ContinuousClock()
        var lastLag = clock.now.advanced(by: .seconds(-60))
        while !Task.isCancelled {
            let after = position
            let rows = try await context.persistently(id, "reading \(configuration.table)") {
                try await department.read { db in
                    try Row.fetchAll(db, sql: query, arguments: [after, configuration.batch]).map(SourceRow.init)
                }
            }
            if clock.now - lastLag > .seconds(5) {
                lastLag = clock.now
                let lag = try await context.persistently(id, "measuring lag") {
                    try await department.read { db in try Int.fetchOne(db, sql: lagQuery, arguments: [after]) ?? 0 }
                }
                context.stats.sourceLag(lag)
            }
            guard let last = rows.last else {
                try await Task.sleep(for: configuration.interval)
                continue
            }
            context.stats.read(rows.count)
            let publications = rows.map { publication(for: $0, mapper: mapper) }
            let outcomes = try await context.persistently(id, "publishing to the bus") {
                try await context.publisher.publish(publications, deadLetter: true)
            }
            context.stats.count(outcomes)
            for case .deadLettered(let position, let failure) in outcomes {
                context.logger.warning("\(id): dead-lettered to \(position): \(failure.reason)")
            }
            guard case .integer(let next) = last.mapped(configuration.cursor) else {
                context.logger.critical("\(id): the cursor column \(configuration.cursor) is not an integer; stopping")
                return
            }
            try await context.persistently(id, "saving the cursor") {
                try await context.cursors.save(String(next), of: id)
            }
            position = next
        }
    }

    func publication(for row: SourceRow, mapper: BodyMapper) -> Publication {
        let key = row.mapped(configuration.id).text ?? "?"
        let version = configuration.version.flatMap { row.mapped($0).text } ?? "1"
        let eventId = "\(context.configuration.department)/\(configuration.table)/\(key)/\(version)"
        var time = context.now()
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

/// An SQL identifier in double quotes.
func quoted(_ identifier: String) -> String { "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
