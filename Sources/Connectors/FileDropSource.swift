import Bus
import EventModel
import EventSchemas
import Foundation

/// CSV or JSON-lines files dropped into a folder. Each line becomes an event with the id
/// `<department>/<file name>/<fingerprint>/<line>`, where the fingerprint is a 64-bit hash of the
/// file's bytes (16 hex digits): a file re-read after a crash gives the same ids, and a later file
/// under a reused name gives new ones. A finished file moves to `done/`, a file that cannot be
/// read at all (a CSV file without a readable header line) to `failed/` with a `<file>.reason`
/// beside it. Lines that cannot be read (a JSON line that is not UTF-8 or not JSON, a CSV line
/// with a field that is not UTF-8, broken quoting or another number of fields than the header),
/// mapped or validated go to the dead-letter topic with their line number; the rest of the file
/// goes on.
///
/// Departments should write a file under another name (or a name starting with `.`) and rename
/// it when complete: files starting with `.` or ending in `.tmp` or `.part` are not read, and
/// neither is a file modified less than `settle` (default 1 s) ago.
struct FileDropSource: Sendable {
    let configuration: FileDropSourceConfiguration
    let context: ConnectorContext

    var id: String { "file-drop:\(configuration.directory)" }

    func run() async throws {
        let directory = URL(fileURLWithPath: configuration.directory)
        try await BlockingIO.run {
            for folder in ["", "done", "failed"] {
                try FileManager.default.createDirectory(
                    at: folder.isEmpty ? directory : directory.appendingPathComponent(folder),
                    withIntermediateDirectories: true)
            }
        }
        context.logger.notice("\(id): watching \(directory.path) for .\(configuration.format.rawValue) files")
        while partShouldContinue {
            for file in try await pendingFiles(in: directory) {
                guard partShouldContinue else { break }
                try await process(file, in: directory)
            }
            try await context.idle(for: configuration.interval)
        }
    }

    /// The files ready to read, by name: of the configured format, not hidden, not `*.tmp` or
    /// `*.part`, and not modified for at least `settle`. Listed on a dispatch thread.
    func pendingFiles(in directory: URL) async throws -> [URL] {
        let configuration = configuration
        let now = context.clock.now()
        return try await BlockingIO.run { try Self.readyFiles(in: directory, configuration: configuration, now: now) }
    }

    static func readyFiles(in directory: URL, configuration: FileDropSourceConfiguration, now: Date) throws -> [URL] {
        let extensions: Set<String> = configuration.format == .csv ? ["csv"] : ["jsonl", "ndjson", "json"]
        let settled = now.addingTimeInterval(-configuration.settle.seconds)
        return try FileManager.default.contentsOfDirectory(
            at: directory, includingPropertiesForKeys: [.isRegularFileKey, .contentModificationDateKey]
        )
        .filter { url in
            let name = url.lastPathComponent.lowercased()
            guard !name.hasPrefix("."), !name.hasSuffix(".tmp"), !name.hasSuffix(".part"),
                extensions.contains(url.pathExtension.lowercased()),
                let values = try? url.resourceValues(forKeys: [.isRegularFileKey, .contentModificationDateKey]),
                values.isRegularFile == true
            else { return false }
            return (values.contentModificationDate ?? .distantPast) <= settled
        }
        .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    func process(_ file: URL, in directory: URL) async throws {
        let name = file.lastPathComponent
        guard let data = await Self.contents(of: file) else {
            // Gone meanwhile (taken back by the department): nothing to do. Otherwise unreadable.
            if await BlockingIO.run({ FileManager.default.fileExists(atPath: file.path) }) {
                try await fail(file, in: directory, reason: "the file cannot be read (permissions?)")
            }
            return
        }
        let fingerprint = ContentFingerprint.hex(data)
        let fileId = "\(name)/\(fingerprint)"
        // The cursor is the file's, as its ids are: its name and its bytes. Keyed on the bytes
        // alone, the cursor a kill leaves behind (below) made a later file of the same bytes under
        // another name — whose lines have ids of their own — look read already, and its lines were
        // never published. (A cursor of the former key, of a file half-read when the connector was
        // upgraded, is not found: that file is read again from its first line, under the same ids.)
        let cursorKey = "\(id)/\(fileId)"
        let lines: [(number: Int, publication: Publication)]
        switch configuration.format {
        case .csv:
            // On the bytes: a line that is not UTF-8 or breaks the quoting is dead-lettered with its
            // number, field and rule, the lines around it go on (issue 12: one bad byte sent a whole
            // file of good lines to failed/).
            guard let table = CSVTable(data: data) else {
                try await fail(
                    file, in: directory,
                    reason: "the file has no readable CSV header line (empty, not UTF-8, or broken quoting on line 1)")
                return
            }
            lines = table.rows.map { row in
                (row.line, publication(csv: row, header: table.header, file: name, fileId: fileId))
            }
        case .jsonl:
            // Line by line on the bytes: a line that is not UTF-8 is dead-lettered with its place
            // (the JSON reader names it), the lines around it go on (issue 12's hostile corpus
            // sent a whole file of good lines to failed/ for one bad byte).
            lines = Self.jsonLines(data).map { number, line in
                (number, publication(json: line, line: number, file: name, fileId: fileId))
            }
        }
        let saved = try await context.persistently(id, "reading the cursor of \(name)") {
            try await context.cursors.position(of: cursorKey)
        }
        let done = Int(saved ?? "0") ?? 0
        let remaining = lines.filter { $0.number > done }
        context.logger.notice(
            "\(id): reading \(name) (\(lines.count) line(s), fingerprint \(fingerprint)\(done > 0 ? ", resuming after line \(done)" : ""))")
        for start in stride(from: 0, to: remaining.count, by: 500) {
            // A graceful shutdown stops between batches: the cursor says where to resume.
            guard partShouldContinue else { return }
            let batch = Array(remaining[start..<min(start + 500, remaining.count)])
            context.stats.read(batch.count)
            _ = try await context.publish(batch.map(\.publication), part: id, what: "publishing \(name) to the bus")
            let last = String(batch.last!.number)
            try await context.persistently(id, "saving the cursor of \(name)") {
                try await context.cursors.save(last, of: cursorKey)
            }
        }
        let target = try await BlockingIO.run { [self] in
            let target = unique(directory.appendingPathComponent("done").appendingPathComponent(name))
            try FileManager.default.moveItem(at: file, to: target)
            return target
        }
        // A crash before this removal leaves a finished cursor behind: a later file with the same
        // name and bytes is then taken as already read — its ids would be the same, so nothing is
        // lost; one of another name or other bytes has a cursor of its own.
        try await context.persistently(id, "clearing the cursor of \(name)") {
            try await context.cursors.remove(cursorKey)
        }
        context.logger.notice("\(id): \(name) done, moved to \(target.path)")
    }

    /// The lines of a JSON-lines file that hold something: their 1-based numbers and bytes, cut at
    /// each line feed with the JSON whitespace around them (space, tab, CR) trimmed.
    static func jsonLines(_ data: Data) -> [(number: Int, line: Data)] {
        var lines: [(number: Int, line: Data)] = []
        let bytes = [UInt8](data)
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A }
        var start = 0
        var number = 1
        while start <= bytes.count {
            let end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
            var low = start
            var high = end
            while low < high, isSpace(bytes[low]) { low += 1 }
            while high > low, isSpace(bytes[high - 1]) { high -= 1 }
            if low < high { lines.append((number, Data(bytes[low..<high]))) }
            start = end + 1
            number += 1
        }
        return lines
    }

    /// Reads a whole file on a dispatch thread (not the cooperative pool); `nil` when it cannot be read.
    static func contents(of file: URL) async -> Data? {
        await BlockingIO.run { FileManager.default.contents(atPath: file.path) }
    }

    func publication(csv row: CSVTable.Row, header: [String], file: String, fileId: String) -> Publication {
        let eventId = "\(context.configuration.department)/\(fileId)/\(row.line)"
        var values: [String: String] = [:]
        for (index, column) in header.enumerated() where index < row.fields.count { values[column] = row.fields[index] }
        // The dead letter keeps the line's fields (a field that is not UTF-8 as {"base64": …}).
        var kept = JSONObject(values.mapValues { JSONValue.string($0) })
        for (index, bytes) in row.invalid {
            kept[index < header.count ? header[index] : "field \(index + 1)"] = .object(["base64": .string(bytes.base64EncodedString())])
        }
        let original = JSONValue.object(kept).serialized()
        if let problem = row.problem {
            let column = problem.field < header.count ? "column \(header[problem.field])" : "beyond the header's columns"
            return refused(
                eventId, original, .mappingFailed,
                "line \(row.line) of \(file): field \(problem.field + 1) (\(column)): \(problem.rule): \(problem.message)")
        }
        if row.fields.count != header.count {
            return refused(
                eventId, original, .mappingFailed,
                "line \(row.line) of \(file): columns: it has \(row.fields.count) fields, the header \(header.count) ("
                    + (row.fields.count < header.count
                        ? "no field for \(header[row.fields.count...].joined(separator: ", "))"
                        : "field \(header.count + 1) and after have no column") + ")")
        }
        do {
            let body: JSONValue
            if let rules = configuration.mapping {
                body = try BodyMapper(rules: rules).body(
                    column: { values[$0].map { $0.isEmpty ? MappedValue.null : .text($0) } ?? .null }, path: { _ in .null })
            } else {
                body = .object(JSONObject(values.mapValues { JSONValue.string($0) }))
            }
            return Publication(event: event(eventId, body.serialized()), topic: configuration.topic)
        } catch {
            return refused(eventId, original, .mappingFailed, "line \(row.line) of \(file): \(error)")
        }
    }

    func publication(json line: Data, line number: Int, file: String, fileId: String) -> Publication {
        let eventId = "\(context.configuration.department)/\(fileId)/\(number)"
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
            time: context.clock.now(), data: data)
    }

    private func refused(_ id: String, _ data: Data, _ code: ValidationFailure.Code, _ message: String) -> Publication {
        Publication(
            event: event(id, data), topic: configuration.topic,
            refusal: ValidationFailure(code, message, eventType: configuration.type, eventId: id))
    }

    /// Moves a file that cannot be read to `failed/`, writing `<file>.reason` first: a crash in
    /// between leaves the file where it was (it fails again, overwriting the same reason file).
    private func fail(_ file: URL, in directory: URL, reason: String) async throws {
        let target = try await BlockingIO.run { [self] in
            let target = unique(directory.appendingPathComponent("failed").appendingPathComponent(file.lastPathComponent))
            try (reason + "\n").write(to: target.appendingPathExtension("reason"), atomically: true, encoding: .utf8)
            try FileManager.default.moveItem(at: file, to: target)
            return target
        }
        context.logger.error("\(id): \(file.lastPathComponent) failed, moved to \(target.path): \(reason)")
    }

    /// `url`, or `url` with a time suffix when a file of that name is already there.
    private func unique(_ url: URL) -> URL {
        guard FileManager.default.fileExists(atPath: url.path) else { return url }
        let stamp = Int(context.clock.now().timeIntervalSince1970 * 1000)
        return url.deletingLastPathComponent().appendingPathComponent("\(stamp)-\(url.lastPathComponent)")
    }
}

/// A 64-bit FNV-1a hash of a file's bytes as 16 hex digits: the identity of a dropped file's
/// content. Two different files of one department get the same fingerprint with a chance of about
/// n²/2⁶⁵ after n files (one in 37 million after a million files).
enum ContentFingerprint {
    static func hex(_ data: Data) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            for byte in bytes {
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01b3
            }
        }
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

/// RFC 4180 CSV, read on the file's bytes: a header line, fields separated by commas, double
/// quotes around fields that hold commas, quotes (doubled) or line breaks; CR LF or LF line ends,
/// a UTF-8 byte order mark ignored, blank lines skipped.
///
/// A line that breaks the format does not stop the file: its row carries a ``Problem`` (the field,
/// the rule and what is wrong) and the rows after it are read as usual. The rules:
/// - `utf-8`: a field's bytes are not UTF-8 (the field, not the file, is refused);
/// - `quoting`: a quote inside a field that does not start with one (`ab"c`: RFC 4180 allows a
///   quote only in a quoted field, doubled), text after a field's closing quote (`"ab"c`), or a
///   quote that never closes, or closes on a later line followed by text — then the row is the one
///   that line starts, and reading goes on from the next line, so a stray quote costs one line
///   instead of the lines it swallowed.
struct CSVTable {
    /// Why a row cannot be read: the 0-based index of the field, the rule, what is wrong.
    struct Problem: Equatable {
        let field: Int
        let rule: String
        let message: String
    }

    struct Row {
        /// The 1-based line number where the row starts (the header is line 1).
        let line: Int
        /// The fields as text; a field that is not UTF-8 is empty here and its bytes in `invalid`.
        let fields: [String]
        /// The fields whose bytes are not UTF-8, by index.
        var invalid: [Int: Data] = [:]
        /// What is wrong with the line, if anything (the first problem).
        var problem: Problem?
    }

    let header: [String]
    let rows: [Row]

    init?(text: String) { self.init(data: Data(text.utf8)) }

    /// `nil` when there is no header line, or the header line itself breaks the format.
    init?(data: Data) {
        let bytes = [UInt8](data)
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), newline = UInt8(ascii: "\n"), cr = UInt8(ascii: "\r")
        var index = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        var line = 1
        var records: [Row] = []
        while index < bytes.count {
            let start = index
            let startLine = line
            var fields: [[UInt8]] = []
            var field: [UInt8] = []
            var problem: Problem?
            var restart: Int?  // where reading goes on after a quote that never closed
            record: while true {
                // At the start of a field.
                if index < bytes.count, bytes[index] == quote {
                    index += 1
                    var closed = false
                    while index < bytes.count {
                        let byte = bytes[index]
                        if byte == quote {
                            if index + 1 < bytes.count, bytes[index + 1] == quote {
                                field.append(quote)
                                index += 2
                                continue
                            }
                            index += 1
                            closed = true
                            break
                        }
                        if byte == newline { line += 1 }
                        field.append(byte)
                        index += 1
                    }
                    if !closed {
                        problem = Problem(
                            field: fields.count, rule: "quoting",
                            message: "the quote that opens field \(fields.count + 1) never closes")
                        // The row is this line only; the lines after it are read again on their own.
                        let end = bytes[start...].firstIndex(of: newline) ?? bytes.count
                        restart = end + 1
                        line = startLine + 1
                        fields.append(field)
                        break record
                    }
                    // After the closing quote: a comma, the line's end, or the file's.
                    var junk = false
                    while index < bytes.count, bytes[index] != comma, bytes[index] != newline {
                        if bytes[index] != cr { junk = true }
                        index += 1
                    }
                    if junk, problem == nil, line > startLine {
                        // A quote that spans lines and then breaks: a stray quote that swallowed the
                        // lines after it. The row is this line only; those lines are read again.
                        problem = Problem(
                            field: fields.count, rule: "quoting",
                            message: "the quote that opens field \(fields.count + 1) does not close on its line "
                                + "(it closes on line \(line), followed by text)")
                        let end = bytes[start...].firstIndex(of: newline) ?? bytes.count
                        restart = end + 1
                        line = startLine + 1
                        fields.append(field)
                        break record
                    }
                    if junk, problem == nil {
                        problem = Problem(
                            field: fields.count, rule: "quoting",
                            message: "field \(fields.count + 1) has text after its closing quote")
                    }
                } else {
                    while index < bytes.count, bytes[index] != comma, bytes[index] != newline {
                        let byte = bytes[index]
                        if byte == quote, problem == nil {
                            problem = Problem(
                                field: fields.count, rule: "quoting",
                                message: "field \(fields.count + 1) holds a quote but does not start with one "
                                    + "(quote the field and double the quote)")
                        }
                        if byte != cr { field.append(byte) }
                        index += 1
                    }
                }
                fields.append(field)
                field = []
                if index >= bytes.count { break record }
                if bytes[index] == comma {
                    index += 1
                    if index >= bytes.count { fields.append([]) ; break record }
                    continue record
                }
                // A line feed: the record ends.
                index += 1
                line += 1
                break record
            }
            if let restart { index = restart }
            if fields.count == 1, fields[0].isEmpty, problem == nil { continue }  // a blank line
            var texts: [String] = []
            var invalid: [Int: Data] = [:]
            for (number, bytes) in fields.enumerated() {
                if let text = String(validating: bytes, as: UTF8.self) {
                    texts.append(text)
                } else {
                    texts.append("")
                    invalid[number] = Data(bytes)
                    if problem == nil {
                        let offset = SourceRow.firstInvalidByte(Data(bytes)) ?? 0
                        problem = Problem(
                            field: number, rule: "utf-8",
                            message: "field \(number + 1) is not UTF-8 text (byte 0x\(String(bytes[offset], radix: 16)) at offset \(offset))")
                    }
                }
            }
            records.append(Row(line: startLine, fields: texts, invalid: invalid, problem: problem))
        }
        guard let first = records.first, first.problem == nil, !first.fields.allSatisfy(\.isEmpty) else { return nil }
        header = first.fields.map { $0.trimmingCharacters(in: .whitespaces) }
        rows = Array(records.dropFirst())
    }
}
