import Bus
import EventModel
import EventSchemas
import Foundation

/// CSV or JSON-lines files dropped into a folder. Each line becomes an event with the id
/// `<department>/<file name>/<line>`; a finished file moves to `done/`, a file that cannot be read
/// at all (not UTF-8, no CSV header) to `failed/` with a `<file>.reason` beside it. Lines that
/// cannot be mapped or validated go to the dead-letter topic; the rest of the file goes on.
///
/// Departments should write a file under another name (or a name starting with `.`) and rename
/// it when complete: files starting with `.` or ending in `.tmp` or `.part` are not read.
struct FileDropSource: Sendable {
    let configuration: FileDropSourceConfiguration
    let context: ConnectorContext

    var id: String { "file-drop:\(configuration.directory)" }

    func run() async throws {
        let directory = URL(fileURLWithPath: configuration.directory)
        for folder in ["", "done", "failed"] {
            try FileManager.default.createDirectory(
                at: folder.isEmpty ? directory : directory.appendingPathComponent(folder),
                withIntermediateDirectories: true)
        }
        context.logger.notice("\(id): watching \(directory.path) for .\(configuration.format.rawValue) files")
        while !Task.isCancelled {
            for file in try pendingFiles(in: directory) {
                try await process(file, in: directory)
            }
            try await Task.sleep(for: configuration.interval)
        }
    }

    func pendingFiles(in directory: URL) throws -> [URL] {
        let extensions: Set<String> = configuration.format == .csv ? ["csv"] : ["jsonl", "ndjson", "json"]
        return try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: [.isRegularFileKey])
            .filter { url in
                let name = url.lastPathComponent
                return !name.hasPrefix(".") && extensions.contains(url.pathExtension.lowercased())
                    && (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true
            }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    func process(_ file: URL, in directory: URL) async throws {
        let name = file.lastPathComponent
        let cursorKey = "\(id)/\(name)"
        guard let data = FileManager.default.contents(atPath: file.path),
            let text = String(data: data, encoding: .utf8)
        else {
            try fail(file, in: directory, reason: "the file is not readable UTF-8 text")
            return
        }
        let lines: [(number: Int, publication: Publication)]
        switch configuration.format {
        case .csv:
            guard let table = CSVTable(text: text) else {
                try fail(file, in: directory, reason: "the file has no CSV header line")
                return
            }
            lines = table.rows.map { row in (row.line, publication(csv: row, header: table.header, file: name)) }
        case .jsonl:
            lines = text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap {
                index, line in
                let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
                return trimmed.isEmpty ? nil : (index + 1, publication(json: Data(trimmed.utf8), line: index + 1, file: name))
            }
        }
        let done = Int(try await context.cursors.position(of: cursorKey) ?? "0") ?? 0
        let remaining = lines.filter { $0.number > done }
        if done == 0 { context.logger.notice("\(id): reading \(name) (\(lines.count) line(s))") }
        for start in stride(from: 0, to: remaining.count, by: 500) {
            let batch = Array(remaining[start..<min(start + 500, remaining.count)])
            context.stats.read(batch.count)
            let outcomes = try await context.persistently(id, "publishing \(name) to the bus") {
                try await context.publisher.publish(batch.map(\.publication), deadLetter: true)
            }
            context.stats.count(outcomes)
            for case .deadLettered(let position, let failure) in outcomes {
                context.logger.warning("\(id): \(name): dead-lettered to \(position): \(failure.reason)")
            }
            try await context.cursors.save(String(batch.last!.number), of: cursorKey)
        }
        let target = unique(directory.appendingPathComponent("done").appendingPathComponent(name))
        try FileManager.default.moveItem(at: file, to: target)
        context.logger.notice("\(id): \(name) done, moved to \(target.path)")
    }

    func publication(csv row: CSVTable.Row, header: [String], file: String) -> Publication {
        let eventId = "\(context.configuration.department)/\(file)/\(row.line)"
        var values: [String: String] = [:]
        for (index, column) in header.enumerated() where index < row.fields.count { values[column] = row.fields[index] }
        let original = JSONValue.object(values.mapValues { .string($0) }).serialized()
        if row.fields.count != header.count {
            return refused(eventId, original, .mappingFailed, "line \(row.line) of \(file) has \(row.fields.count) fields, the header \(header.count)")
        }
        do {
            let body: JSONValue
            if let rules = configuration.mapping {
                body = try BodyMapper(rules: rules).body(
                    column: { values[$0].map { $0.isEmpty ? MappedValue.null : .text($0) } ?? .null }, path: { _ in .null })
            } else {
                body = .object(values.mapValues { .string($0) })
            }
            return Publication(event: event(eventId, body.serialized()), topic: configuration.topic)
        } catch {
            return refused(eventId, original, .mappingFailed, "line \(row.line) of \(file): \(error)")
        }
    }

    func publication(json line: Data, line number: Int, file: String) -> Publication {
        let eventId = "\(context.configuration.department)/\(file)/\(number)"
        do {
            let document = try JSONValue.parse(line)
            guard let rules = configuration.mapping else {
                return Publication(event: event(eventId, line), topic: configuration.topic)
            }
            let body = try BodyMapper(rules: rules).body(
                column: { _ in .null }, path: { document[pointer: $0].map(MappedValue.init(json:)) ?? .null })
            return Publication(event: event(eventId, body.serialized()), topic: configuration.topic)
        } catch let error as MappingError {
            return refused(eventId, line, .mappingFailed, "line \(number) of \(file): \(error)")
        } catch {
            return refused(eventId, line, .invalidJSON, "line \(number) of \(file) is not JSON: \(error)")
        }
    }

    private func event(_ id: String, _ data: Data) -> Event {
        Event(
            id: id, type: configuration.type, source: context.configuration.eventSource, subject: nil,
            time: context.now(), data: data)
    }

    private func refused(_ id: String, _ data: Data, _ code: ValidationFailure.Code, _ message: String) -> Publication {
        Publication(
            event: event(id, data), topic: configuration.topic,
            refusal: ValidationFailure(code, message, eventType: configuration.type, eventId: id))
    }

    private func fail(_ file: URL, in directory: URL, reason: String) throws {
        let target = unique(directory.appendingPathComponent("failed").appendingPathComponent(file.lastPathComponent))
        try FileManager.default.moveItem(at: file, to: target)
        try (reason + "\n").write(to: target.appendingPathExtension("reason"), atomically: true, encoding: .utf8)
        context.logger.error("\(id): \(file.lastPathComponent) failed, moved to \(target.path): \(reason)")
    }

    /// `url`, or `url` with a time suffix when a file of that name is already there.
    private func unique(_ url: URL) -> URL {
        guard FileManager.default.fileExists(atPath: url.path) else { return url }
        let stamp = Int(Date().timeIntervalSince1970 * 1000)
        return url.deletingLastPathComponent().appendingPathComponent("\(stamp)-\(url.lastPathComponent)")
    }
}

/// RFC 4180 CSV: a header line, fields separated by commas, double quotes around fields that hold
/// commas, quotes (doubled) or line breaks.
struct CSVTable {
    struct Row {
        /// The 1-based line number where the row starts (the header is line 1).
        let line: Int
        let fields: [String]
    }

    let header: [String]
    let rows: [Row]

    init?(text: String) {
        var records: [(Int, [String])] = []
        var field = ""
        var fields: [String] = []
        var inQuotes = false
        var line = 1
        var recordLine = 1
        var iterator = Array(text.unicodeScalars)[...]
        func endRecord() {
            fields.append(field)
            field = ""
            if !(fields.count == 1 && fields[0].isEmpty) { records.append((recordLine, fields)) }
            fields = []
        }
        while let scalar = iterator.popFirst() {
            if inQuotes {
                if scalar == "\"" {
                    if iterator.first == "\"" {
                        field.unicodeScalars.append("\"")
                        iterator.removeFirst()
                    } else {
                        inQuotes = false
                    }
                } else {
                    if scalar == "\n" { line += 1 }
                    field.unicodeScalars.append(scalar)
                }
                continue
            }
            switch scalar {
            case "\"": inQuotes = true
            case ",":
                fields.append(field)
                field = ""
            case "\r": continue
            case "\n":
                endRecord()
                line += 1
                recordLine = line
            default: field.unicodeScalars.append(scalar)
            }
        }
        if !field.isEmpty || !fields.isEmpty { endRecord() }
        guard let first = records.first, !first.1.allSatisfy(\.isEmpty) else { return nil }
        header = first.1.map { $0.trimmingCharacters(in: .whitespaces) }
        rows = records.dropFirst().map { Row(line: $0.0, fields: $0.1) }
    }
}
