import Connectors
import EventLog
import EventModel
import EventSchemas
import Foundation
import GRDB
import Logging
import Testing
import TestSupport

/// One department row (or CSV line) made from a record of the hostile corpus, and what must
/// become of it.
struct HostileRow: Sendable {
    /// A column's value as the department stores it.
    enum Value: Sendable {
        case null
        case integer(Int64)
        case real(Double)
        case text(String)
        /// Bytes that are not UTF-8, stored as TEXT (`CAST(… AS TEXT)`) or as a BLOB.
        case bytes(Data, asText: Bool)
    }

    let source: HostileRecord
    let values: [String: Value]
    /// `nil`: accepted. Otherwise the field (a pointer of the event body) the reason must name and
    /// the rules it may name (the corpus's rule, or the mapping's for the field: a NULL column is
    /// `required`, a code missing from the code table `codes`, a conversion its name).
    let refusal: (field: String, rules: [String])?
}

/// The table source and the file drop's CSV files with the corpus's bad values among its good
/// ones: the department's `tax_payments` table (the mapping of `Connectors/tax.yaml`, as the tax
/// connector reads it) holding a row for each `tax.payment.received` record of the corpus whose
/// body can be a row, and a CSV file of the same rows as lines, with lines that break CSV itself.
@Suite("Hostile input at the table and CSV sources", .timeLimit(.minutes(3)))
struct HostileTableAndCSVTests {
    static let type = "tax.payment.received"
    /// The table's columns, each with the body field `Connectors/tax.yaml` maps it to.
    static let columns: [(column: String, field: String)] = [
        ("taxpayer_id", "/taxpayerId"), ("levy_item_code", "/taxType"), ("amount_fen", "/amountFen"),
        ("tax_period", "/period"), ("voucher_no", "/voucherNumber"), ("paid_at", "/paidAt"),
    ]
    /// The mapping's own rule for a field (its code table or conversion), besides `required`.
    static let mappingRules: [String: [String]] = [
        "/taxType": ["codes"], "/amountFen": ["integer", "number-range"], "/paidAt": ["date-time"],
    ]
    /// Kinds whose fault is in the envelope (headers, topic) or a member no column holds: as a
    /// row, the body is good.
    static let envelopeKinds: Set<String> = [
        "wrong-topic", "duplicated-headers", "oversized-headers", "subject-mismatch", "missing-headers", "unknown-field",
    ]

    /// The `tax_payments` source of `Connectors/tax.yaml`, verbatim, with a short interval and a
    /// small batch (so batches end between bad rows and good ones).
    static func sourceYAML(table: String) throws -> String {
        let text = try String(contentsOf: repositoryRoot.appendingPathComponent("Connectors/tax.yaml"), encoding: .utf8)
        let start = try #require(text.range(of: "  - kind: table\n    table: tax_payments\n"))
        let end = text[start.upperBound...].range(of: "\n\n")?.lowerBound ?? text.endIndex
        return String(text[start.lowerBound..<end]).replacingOccurrences(of: "table: tax_payments", with: "table: \(table)")
            .replacingOccurrences(of: "    time: paid_at\n", with: "    time: paid_at\n    interval: 20ms\n    batch: 7\n")
    }

    /// The code table of `/taxType`, backwards (the name in the body → the department's code).
    static let levyCodes: [String: String] = [
        "value-added-tax": "10101", "corporate-income-tax": "10104", "individual-income-tax": "10106",
        "stamp-duty": "10111", "land-value-increment-tax": "10113", "deed-tax": "10119",
    ]

    /// The rows, in corpus order, and how many records could not be rows (a body that is not an
    /// object with members: broken JSON, an empty body, duplicate keys, a bare value).
    static func rows(textOnly: Bool = false) -> (rows: [HostileRow], skipped: Int) {
        var rows: [HostileRow] = []
        var skipped = 0
        for record in HostileCorpus.all where record.entry == "event" && record.type == type {
            if let row = row(record, textOnly: textOnly) { rows.append(row) } else { skipped += 1 }
        }
        return (rows, skipped)
    }

    static func row(_ record: HostileRecord, textOnly: Bool) -> HostileRow? {
        let body = record.bytes
        let pointer = record.expect.pointer ?? ""
        var values: [String: HostileRow.Value] = [:]
        var refusal: (String, [String])? = nil
        if record.expect.accepted || envelopeKinds.contains(record.kind) {
            guard case .object(let members)? = try? JSONValue.parse(body) else { return nil }
            for (column, field) in columns { values[column] = value(members[String(field.dropFirst())]) }
        } else if record.kind == "invalid-utf8" || record.kind == "lone-surrogate" || record.kind == "huge-number"
            || (record.kind == "deep-nesting" && (try? JSONValue.parse(body)) == nil)
        {
            // The body does not parse: the other members from it read leniently, the bad one raw.
            let name = String(pointer.dropFirst())
            guard !name.isEmpty, let raw = rawMember(body, name),
                case .object(let members)? = try? JSONValue.parse(Data(String(decoding: replacing(body, name), as: UTF8.self).utf8))
            else { return nil }
            for (column, field) in columns { values[column] = value(members[String(field.dropFirst())]) }
            let column = columns.first { $0.field == pointer }!.column
            switch record.kind {
            case "invalid-utf8":
                values[column] = .bytes(Data(raw.dropFirst().dropLast()), asText: record.seq % 2 == 0)
                refusal = (pointer, ["utf-8"])
            case "lone-surrogate":
                // A table has no escapes: the surrogates as UTF-8 would encode them (CESU-8), which is not UTF-8.
                values[column] = .bytes(cesu(String(decoding: raw.dropFirst().dropLast(), as: UTF8.self)), asText: record.seq % 2 == 0)
                refusal = (pointer, ["utf-8"])
            case "huge-number":
                let text = String(decoding: raw, as: UTF8.self)
                if textOnly {
                    values[column] = .text(text)
                } else if let number = Int64(text) {
                    values[column] = .integer(number)
                } else if let number = Double(text), number != 0 {
                    values[column] = .real(number)  // ±Inf for 1e400: SQLite's REAL holds it
                } else {
                    values[column] = .text(text)
                }
                refusal = (pointer, ["number-range", "integer"])
            default:  // deep nesting the JSON reader refuses: as text in the column
                values[column] = .text(String(decoding: raw, as: UTF8.self))
                refusal = (pointer, [])
            }
        } else {
            guard case .object(let members)? = try? JSONValue.parse(body), !pointer.isEmpty else { return nil }
            for (column, field) in columns { values[column] = value(members[String(field.dropFirst())]) }
            let member = members[String(pointer.dropFirst())]
            let column = columns.first { $0.field == pointer }?.column
            switch (pointer, member) {
            case ("/amountFen", .bool?), ("/amountFen", .string(_)?) where Int64(values[column ?? ""].flatMap(textOf) ?? "") != nil:
                // A department's INTEGER holds a boolean as 1; "1" in a text column is the whole
                // number the conversion reads: as a row, both are amounts.
                break
            case (_, .bool?) where textOnly, (_, .integer?) where textOnly, (_, .number?) where textOnly:
                return nil  // CSV has no types: "1" is the same text as 1
            default:
                var rules = [record.expect.rule ?? ""] + (mappingRules[pointer] ?? [])
                if member == nil || member == .null { rules.append("required") }
                if record.kind == "huge-string" || record.kind == "deep-nesting" { rules = [] }
                // An array or object is its JSON text in a column: a string, whose fault depends on the field.
                if case .array? = member { rules = [] }
                if case .object? = member { rules = [] }
                refusal = (pointer, rules)
            }
        }
        if refusal != nil, pointer == "/paidAt", case .text(let text)? = values["paid_at"], text.utf8.count == 19 {
            // `2025-03-05 10:30:00` (or with a T), no offset: the department's China time, which
            // the date-time conversion exists to read.
            refusal = nil
        }
        if textOnly, case .text("")? = values[columns.first { $0.field == pointer }?.column ?? ""], refusal != nil {
            refusal?.1.append("required")  // an empty CSV field is no value
        }
        // The row's own expectation, for the tally (a row has no headers; the mapping decides types).
        var source = record
        source.expect.outcome = refusal == nil ? "accepted" : "refused"
        source.expect.code = nil
        source.expect.pointer = nil
        source.expect.rule = nil
        return HostileRow(source: source, values: values, refusal: refusal.map { (field: $0.0, rules: $0.1) })
    }

    static func value(_ json: JSONValue?) -> HostileRow.Value {
        switch json {
        case nil, .null?: .null
        case .string(let text)?: .text(levyCodes[text] ?? text)
        case .integer(let number)?: .integer(number)
        case .number(let number)?: .real(number)
        case .bool(let flag)?: .integer(flag ? 1 : 0)
        case let other?: .text(String(decoding: other.serialized(), as: UTF8.self))
        }
    }

    static func textOf(_ value: HostileRow.Value) -> String? {
        switch value {
        case .null: nil
        case .integer(let number): String(number)
        case .real(let number): String(number)
        case .text(let text): text
        case .bytes: nil
        }
    }

    /// The raw bytes of member `name`'s value in a body: from after `"name":` to the `,"` or `}`
    /// that ends it (the corpus writes the bad member on one line, other members plain).
    static func rawMember(_ body: Data, _ name: String) -> Data? {
        guard let start = body.range(of: Data("\"\(name)\":".utf8))?.upperBound else { return nil }
        let rest = body[start...]
        // The value ends at the last `,"` before the next member's name, or the body's final `}`.
        let ends = [",\"voucherNumber\"", ",\"paidAt\"", ",\"period\"", ",\"taxType\"", ",\"amountFen\""].compactMap {
            rest.range(of: Data($0.utf8), options: .backwards)?.lowerBound
        }.filter { $0 > start }
        let end = ends.min() ?? (rest.lastIndex(of: UInt8(ascii: "}")) ?? rest.endIndex)
        return Data(body[start..<end])
    }

    /// The body with member `name`'s value replaced by `null`, so the rest parses.
    static func replacing(_ body: Data, _ name: String) -> Data {
        guard let raw = rawMember(body, name), let start = body.range(of: Data("\"\(name)\":".utf8))?.upperBound else { return body }
        var copy = Data(body[..<start])
        copy.append(Data("null".utf8))
        copy.append(body[body.index(start, offsetBy: raw.count)...])
        return copy
    }

    /// A JSON string's `\uXXXX` escapes as three bytes each (the surrogates' CESU-8 form).
    static func cesu(_ escaped: String) -> Data {
        var bytes: [UInt8] = []
        var rest = Substring(escaped)
        while !rest.isEmpty {
            if rest.hasPrefix("\\u"), let unit = UInt16(rest.dropFirst(2).prefix(4), radix: 16) {
                if unit < 0x80 {
                    bytes.append(UInt8(unit))
                } else if unit < 0x800 {
                    bytes += [0xC0 | UInt8(unit >> 6), 0x80 | UInt8(unit & 0x3F)]
                } else {
                    bytes += [0xE0 | UInt8(unit >> 12), 0x80 | UInt8((unit >> 6) & 0x3F), 0x80 | UInt8(unit & 0x3F)]
                }
                rest = rest.dropFirst(6)
            } else {
                bytes += Array(String(rest.first!).utf8)
                rest = rest.dropFirst()
            }
        }
        return Data(bytes)
    }

    /// The checks both sources share: each good row once and in order, each bad one dead-lettered
    /// once naming its field and a rule; Python reads every accepted record.
    static func check(
        _ tally: inout Tally, bench: Bench, rows: [Int: HostileRow], idOf: (LogRecord) -> Int?
    ) async throws {
        var published: [Int: Int] = [:]
        var lastOnPartition: [Int: Int] = [:]
        for record in try await readTopic(bench.log, type) {
            guard let number = idOf(record), let row = rows[number] else { continue }
            published[number, default: 0] += 1
            tally.acceptance(row.source)
            if let before = lastOnPartition[record.partition], before > number {
                tally.problems.append("\(row.source.label): \(number) arrived after \(before)")
            }
            lastOnPartition[record.partition] = number
        }
        var deadLettered: [Int: Int] = [:]
        for letter in try await readTopic(bench.log, catalog.deadLetterTopic) {
            guard let number = idOf(letter), let row = rows[number] else { continue }
            deadLettered[number, default: 0] += 1
            let reason = letter.header("dl_reason") ?? ""
            tally.refusal(row.source, code: letter.header("dl_code"), reason: reason, deadLettered: true)
            guard let refusal = row.refusal else { continue }  // the tally counted it a problem
            let column = columns.first { $0.field == refusal.field }?.column ?? "?"
            if !reason.contains(refusal.field) && !reason.contains(column) {
                tally.problems.append("\(row.source.label) (\(number)): the reason names neither \(refusal.field) nor \(column): \(reason.prefix(300))")
            }
            if !refusal.rules.isEmpty, !refusal.rules.contains(where: { !$0.isEmpty && reason.contains($0) }) {
                tally.problems.append("\(row.source.label) (\(number)): the reason names none of the rules \(refusal.rules): \(reason.prefix(300))")
            }
        }
        for (number, row) in rows.sorted(by: { $0.key < $1.key }) {
            if row.refusal == nil, published[number] != 1 {
                tally.problems.append("\(row.source.label) (\(number)): good, published \(published[number] ?? 0) time(s)")
            }
            if row.refusal != nil, deadLettered[number] != 1 || published[number] != nil {
                tally.problems.append(
                    "\(row.source.label) (\(number)): bad, dead-lettered \(deadLettered[number] ?? 0) and published \(published[number] ?? 0) time(s)")
            }
        }
        let python = try await pythonReads(bench.path, topics: [type])
        tally.problems += python.problems
        #expect(python.records == tally.accepted, "Python read \(python.records) records, the hub accepted \(tally.accepted)")
    }

    /// Bad rows among good ones in a real SQLite department table: each bad row dead-lettered (its
    /// event id `tax/<table>/<key>/1` names the row; the reason its field and rule), each good row
    /// published once and in order, and the source's position past them all (a last good row
    /// inserted after the others arrives).
    @Test func theTableSourceDeadLettersBadRowsAndPublishesTheGoodOnesOnce() async throws {
        let bench = try await Bench()
        defer { Task { await bench.tearDown() } }
        let started = ContinuousClock.now
        let (rows, skipped) = Self.rows()
        let table = "tax_payments"
        let database = bench.file("tax.sqlite").path
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)  // the table source reads it while the test writes
        let department = try DatabasePool(path: database, configuration: configuration)
        // Columns without a declared type: each value keeps the storage class it was written with.
        try await department.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE \(table) (id INTEGER PRIMARY KEY, change_seq INTEGER NOT NULL, version INTEGER NOT NULL DEFAULT 1,
                      taxpayer_id, levy_item_code, amount_fen, tax_period, voucher_no, paid_at, remark)
                    """)
            for (index, row) in rows.enumerated() {
                try Self.insert(row, id: index + 1, into: table, db)
            }
        }
        let yaml = """
            name: hostile-table
            department: tax
            database: \(database)
            state: \(bench.file("state.sqlite").path)
            sources:
            \(try Self.sourceYAML(table: table))
            """
        // A good row added after all the others: its arrival shows the position moved past every bad row.
        let last = rows.count + 1
        let prefix = "tax/\(table)/"
        @Sendable func idOf(_ record: LogRecord) -> Int? {
            guard let id = record.header("ce_id"), id.hasPrefix(prefix) else { return nil }
            return Int(id.dropFirst(prefix.count).split(separator: "/").first ?? "")
        }
        let finished = try await runConnector(yaml, on: bench) {
            if try await department.read({ db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") }) == rows.count {
                guard let good = rows.first(where: { $0.refusal == nil }) else { return false }
                try await department.write { db in try Self.insert(good, id: last, into: table, db) }
            }
            return try await readTopic(bench.log, Self.type).contains { idOf($0) == last }
        }
        #expect(finished, "the row inserted after the bad ones did not arrive in 60 s: the source stalled")
        var tally = Tally("table source (bad rows among good)")
        tally.records = rows.count + 1
        var byId = Dictionary(uniqueKeysWithValues: rows.enumerated().map { ($0.offset + 1, $0.element) })
        byId[last] = rows.first { $0.refusal == nil }
        try await Self.check(&tally, bench: bench, rows: byId, idOf: idOf)
        #expect(tally.deadLettered == rows.filter { $0.refusal != nil }.count)
        tally.check()
        print("table source: \(rows.count) rows from the corpus (\(skipped) records not representable as a row), \(tally)")
        try report("hostile-table", [tally], seconds: (ContinuousClock.now - started).seconds)
    }

    static func insert(_ row: HostileRow, id: Int, into table: String, _ db: Database) throws {
        var arguments: [(any DatabaseValueConvertible)?] = [id, id]
        var placeholders: [String] = ["?", "?"]
        for (column, _) in columns {
            switch row.values[column] ?? .null {
            case .null: arguments.append(nil); placeholders.append("?")
            case .integer(let number): arguments.append(number); placeholders.append("?")
            case .real(let number): arguments.append(number); placeholders.append("?")
            case .text(let text): arguments.append(text); placeholders.append("?")
            case .bytes(let bytes, let asText):
                arguments.append(bytes)
                placeholders.append(asText ? "CAST(? AS TEXT)" : "?")
            }
        }
        // An unused column holding bytes that are not UTF-8: no reason to refuse the row.
        arguments.append(Data([0xFF, 0xFE, 0x00, 0x41]))
        placeholders.append("?")
        try db.execute(
            sql: "INSERT INTO \(table) (id, change_seq, taxpayer_id, levy_item_code, amount_fen, tax_period, voucher_no, paid_at, remark) "
                + "VALUES (\(placeholders.joined(separator: ", ")))",
            arguments: StatementArguments(arguments))
    }

    /// A CSV file of the same rows (CSV has no types, so the records whose fault is a JSON type
    /// are left out), with lines that break CSV itself every few lines: a quote inside an unquoted
    /// field, text after a closing quote, a quote that never closes, a field too few or too many.
    /// Each bad line is dead-lettered with its line number, field and rule; the good lines arrive
    /// once, in order; the file ends in done/.
    @Test func theFileDropSourceDeadLettersBadCSVLinesAndKeepsTheGoodOnes() async throws {
        let bench = try await Bench()
        defer { Task { await bench.tearDown() } }
        let started = ContinuousClock.now
        let (rows, _) = Self.rows(textOnly: true)
        let good = try #require(rows.first { $0.refusal == nil })
        func field(_ value: HostileRow.Value, quoted: Bool) -> Data {
            switch value {
            case .bytes(let bytes, _):
                return quoted ? Data("\"".utf8) + bytes + Data("\"".utf8) : bytes
            default:
                let text = Self.textOf(value) ?? ""
                if quoted || text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
                    return Data(("\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"").utf8)
                }
                return Data(text.utf8)
            }
        }
        func line(_ row: HostileRow, _ edit: ((inout [Data]) -> Void)? = nil) -> Data {
            var fields = Self.columns.map { field(row.values[$0.column] ?? .null, quoted: row.source.seq % 3 == 0) }
            edit?(&fields)
            var joined = Data()
            for (index, field) in fields.enumerated() {
                if index > 0 { joined.append(UInt8(ascii: ",")) }
                joined.append(field)
            }
            return joined
        }
        // The broken lines: (what to do to a good line's fields, the field the reason must name, rule).
        let broken: [(edit: (inout [Data]) -> Void, field: String, rule: String)] = [
            ({ $0[0] = Data("4406\"06197506145456".utf8) }, "column taxpayer_id", "quoting"),
            ({ $0[3] = Data("\"2025-03\"x".utf8) }, "column tax_period", "quoting"),
            ({ $0[4] = Data("\"3440662503".utf8) }, "column voucher_no", "quoting"),
            ({ $0.removeLast() }, "paid_at", "columns"),
            ({ $0.append(Data("extra".utf8)) }, "7", "columns"),
        ]
        var file = Data((Self.columns.map(\.column).joined(separator: ",") + "\r\n").utf8)
        var byLine: [Int: HostileRow] = [:]
        var number = 2
        for (index, row) in rows.enumerated() {
            let bytes = line(row)
            byLine[number] = row
            file.append(bytes)
            file.append(contentsOf: index % 2 == 0 ? [0x0D, 0x0A] : [0x0A])
            number += 1 + bytes.filter { $0 == 0x0A }.count
            if index % 9 == 4 {
                let (edit, name, rule) = broken[(index / 9) % broken.count]
                var source = good.source
                source.expect.outcome = "refused"
                byLine[number] = HostileRow(source: source, values: good.values, refusal: (field: name, rules: [rule]))
                file.append(line(good, edit))
                file.append(0x0A)
                number += 1
                file.append(0x0A)  // and a blank line, which holds no record
                number += 1
            }
        }
        let folder = bench.file("drop")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try file.write(to: folder.appendingPathComponent(".payments.csv"))
        try FileManager.default.moveItem(
            at: folder.appendingPathComponent(".payments.csv"), to: folder.appendingPathComponent("payments.csv"))
        let mapping = try Self.sourceYAML(table: "tax_payments")
        let mappingLines = try #require(mapping.range(of: "    mapping:\n")).lowerBound
        let yaml = """
            name: hostile-csv
            department: tax
            state: \(bench.file("state.sqlite").path)
            sources:
              - kind: file-drop
                directory: \(folder.path)
                format: csv
                type: \(Self.type)
                interval: 50ms
                settle: 0ms
            \(mapping[mappingLines...])
            """
        let done = folder.appendingPathComponent("done/payments.csv").path
        let failed = folder.appendingPathComponent("failed/payments.csv").path
        let finished = try await runConnector(yaml, on: bench) {
            FileManager.default.fileExists(atPath: done) || FileManager.default.fileExists(atPath: failed)
        }
        var tally = Tally("file-drop source (CSV)")
        tally.records = byLine.count
        #expect(finished, "the CSV file was not finished in 60 s (a stall)")
        if let reason = try? String(contentsOfFile: failed + ".reason", encoding: .utf8) {
            tally.problems.append("the file went to failed/ whole: \(reason)")
        }
        @Sendable func idOf(_ record: LogRecord) -> Int? {
            guard let id = record.header("ce_id"), id.hasPrefix("tax/payments.csv/") else { return nil }
            return id.split(separator: "/").last.flatMap { Int($0) }
        }
        try await Self.check(&tally, bench: bench, rows: byLine, idOf: idOf)
        // Every dead letter gives its line number.
        for letter in try await readTopic(bench.log, catalog.deadLetterTopic) {
            guard let number = idOf(letter), let reason = letter.header("dl_reason"), byLine[number] != nil,
                letter.header("dl_code") == "mapping-failed"
            else { continue }
            if !reason.contains("line \(number) ") && !reason.contains("line \(number):") {
                tally.problems.append("line \(number): the reason does not give its line: \(reason.prefix(200))")
            }
        }
        tally.check()
        try report("hostile-csv", [tally], seconds: (ContinuousClock.now - started).seconds)
    }
}
