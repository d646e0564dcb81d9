import CivilTime
@testable import Connectors
import EventModel
@testable import EventSchemas
import Foundation
@testable import Orchestrator

// The fuzz targets. Each takes libFuzzer's bytes, feeds them to the code a department's or an
// applicant's data reaches first, and checks what must hold for every input: no trap, no memory
// error (the address sanitizer), and a few properties whose failure is a bug even without a crash
// (`require` below traps on them, so libFuzzer keeps the input). Refusing an input (a thrown
// error) is the right answer to most of them and is not a finding.
//
// The data the targets read (the topic catalog, the connector files) comes from the repository:
// ONEWINDOW_ROOT, or the folder two levels above Fuzz/Sources/onewindow-fuzz.

enum Targets {
    /// A fixed "now", so that a date check gives the same answer on every run (a finding replays).
    static let now = Date(timeIntervalSince1970: 1_790_000_000)  // 2026-09-21
    static let today = CivilDate(year: 2026, month: 9, day: 21)!

    static let root: URL = {
        if let root = ProcessInfo.processInfo.environment["ONEWINDOW_ROOT"], !root.isEmpty {
            return URL(fileURLWithPath: root)
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }()

    static let catalog: TopicCatalog = {
        do {
            return try TopicCatalog.load(from: root.appendingPathComponent("Topics"))
        } catch {
            fatalError("onewindow-fuzz: cannot load Topics/ under \(root.path) (set ONEWINDOW_ROOT): \(error)")
        }
    }()

    /// Every event type's schema, in a fixed order (a selector byte picks one).
    static let schemas: [(type: String, schema: JSONSchema)] = catalog.eventTypes.map { ($0, catalog.schemas[$0]!) }

    /// Every mapping of every connector file (the examples too), with the event type it produces.
    static let mappings: [(type: String, rules: [FieldRule])] = {
        let folder = root.appendingPathComponent("Connectors")
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).map { "Connectors/\($0)" }
            + ((try? FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("examples").path)) ?? [])
            .map { "Connectors/examples/\($0)" }
        var mappings: [(String, [FieldRule])] = []
        for file in files.sorted() where file.hasSuffix(".yaml") && !file.hasSuffix("environment.yaml") {
            guard let configuration = try? ConnectorConfiguration.load(path: root.appendingPathComponent(file).path)
            else { continue }
            for source in configuration.sources {
                switch source {
                case .table(let table): mappings.append((table.type, table.mapping))
                case .webhook(let webhook): if let rules = webhook.mapping { mappings.append((webhook.type, rules)) }
                case .fileDrop(let drop): if let rules = drop.mapping { mappings.append((drop.type, rules)) }
                }
            }
        }
        precondition(!mappings.isEmpty, "onewindow-fuzz: no connector mapping found under \(folder.path)")
        return mappings
    }()

    /// Traps (a finding) when a property that must hold for every input does not.
    static func require(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fatalError("property broken: \(message())") }
    }

    // MARK: - json

    /// `JSONValue.parse` on any bytes; what it accepts, serialised and parsed again, is the same value.
    static let json: @Sendable (Data) -> Void = { data in
        guard let value = try? JSONValue.parse(data) else { return }
        let text = value.serialized()
        let again: JSONValue
        do {
            again = try JSONValue.parse(text)
        } catch {
            fatalError("property broken: the serialised form of an accepted document does not parse: \(error)")
        }
        require(again == value, "serialise then parse changed the value")
    }

    // MARK: - schema

    /// The first byte picks an event type's schema (or, one past the last, "compile the rest as a
    /// schema"); the rest is the JSON body validated against it, whole and field by field.
    static let schema: @Sendable (Data) -> Void = { data in
        guard let selector = data.first else { return }
        let rest = data.dropFirst()
        let index = Int(selector) % (schemas.count + 1)
        if index == schemas.count {
            // A schema document of someone else's making: compiling it must not trap, and the
            // schema it gives must validate the catalog's own examples without trapping either.
            guard let compiled = try? JSONSchema(data: Data(rest), name: "fuzz.json") else { return }
            for sample in samples { _ = compiled.validate(sample, now: now) }
            return
        }
        guard let body = try? JSONValue.parse(Data(rest)) else { return }
        let schema = schemas[index].schema
        let violations = schema.validate(body, now: now)
        if case .object(let members) = body {
            for name in members.keys {
                _ = schema.fieldProblem(at: "/" + name)
                _ = schema.validate(body, atField: "/" + name, now: now)
            }
        }
        for violation in violations { _ = violation.description }
    }

    /// Documents the compiled-schema branch validates: one of each JSON kind.
    static let samples: [JSONValue] = [
        .null, .bool(true), .integer(-7), .number(2.5), .string("2024-02-29"),
        .array([.integer(1), .string("a")]), .object(["a": .integer(1), "b": .object(["c": .string("x")])]),
    ]

    // MARK: - identifiers

    /// The identifier checks on any text: a text is valid exactly when its check character is the
    /// one computed for its first 17 characters (and the rest of the format holds).
    static let identifiers: @Sendable (Data) -> Void = { data in
        let text = String(decoding: data, as: UTF8.self)
        let resident = ResidentIDNumber.problem(in: text, today: today)
        if resident == nil {
            require(text.utf8.count == 18, "a valid resident ID number of \(text.utf8.count) bytes")
            require(
                ResidentIDNumber.checkCharacter(for: String(text.prefix(17))) == text.last,
                "a valid resident ID number whose check character is not the computed one")
        }
        _ = ResidentIDNumber.checkCharacter(for: text)
        let credit = UnifiedSocialCreditCode.problem(in: text)
        if credit == nil {
            require(text.utf8.count == 18, "a valid credit code of \(text.utf8.count) bytes")
            require(
                UnifiedSocialCreditCode.make(first17: String(text.prefix(17))) == text,
                "a valid credit code that make(first17:) does not give back")
        }
        _ = UnifiedSocialCreditCode.checkCharacter(for: text)
        _ = MobileNumber.problem(in: text)
        // The same checks through the schema formats, as an event body field.
        _ = Formats.fullDate(text)
        _ = Formats.dateTime(text)
    }

    // MARK: - mapping

    /// The first byte picks a connector mapping; the rest is the input record: a JSON object (its
    /// members are the columns, and it is the document the paths read) or, when not JSON, lines
    /// giving the mapping's columns in order. The body made is then validated as the connector
    /// would. Every conversion also reads the whole rest as text.
    static let mapping: @Sendable (Data) -> Void = { data in
        guard let selector = data.first else { return }
        let rest = Data(data.dropFirst())
        let text = String(decoding: rest, as: UTF8.self)
        for conversion in Conversion.allCases { _ = try? conversion.apply(.text(text)) }
        let (type, rules) = mappings[Int(selector) % mappings.count]
        let mapper = BodyMapper(rules: rules)
        let body: JSONValue?
        if let document = try? JSONValue.parse(rest), case .object(let members) = document {
            body = try? mapper.body(
                column: { members[$0].map(MappedValue.init(json:)) ?? .null },
                path: { document[pointer: $0].map(MappedValue.init(json:)) ?? .null })
        } else {
            let columns = rules.compactMap { rule -> String? in
                if case .column(let name) = rule.value { return name }
                return nil
            }
            var values: [String: MappedValue] = [:]
            for (name, line) in zip(columns, text.split(separator: "\n", omittingEmptySubsequences: false)) {
                values[name] = line.isEmpty ? .null : .text(String(line))
            }
            body = try? mapper.body(column: { values[$0] ?? .null }, path: { _ in .null })
        }
        guard let body else { return }
        // What the mapper made is JSON the reader reads back as the same value.
        let serialized = body.serialized()
        require((try? JSONValue.parse(serialized)) == body, "a mapped body that does not read back the same")
        if let schema = catalog.schemas[type] { _ = schema.validate(body, now: now) }
    }

    // MARK: - csv

    /// The file-drop source's CSV reader on any bytes (it reads bytes, and a line that is not
    /// UTF-8 is one bad row), then each good row through a connector mapping as the file-drop
    /// source maps it. Row line numbers (where resuming starts) only grow; a field whose bytes
    /// are not UTF-8 is named in the row's `invalid` and empty in its text.
    static let csv: @Sendable (Data) -> Void = { data in
        guard let table = CSVTable(data: data) else { return }
        var previous = 1
        for row in table.rows {
            require(row.line > previous, "row line \(row.line) after line \(previous)")
            previous = row.line
            for index in row.invalid.keys {
                require(index < row.fields.count && row.fields[index].isEmpty, "invalid field \(index) with text")
            }
        }
        let (type, rules) = mappings[data.count % mappings.count]
        let mapper = BodyMapper(rules: rules)
        for row in table.rows.prefix(50) where row.problem == nil && row.invalid.isEmpty {
            var values: [String: String] = [:]
            for (index, column) in table.header.enumerated() where index < row.fields.count {
                values[column] = row.fields[index]
            }
            guard let body = try? mapper.body(
                column: { values[$0].map { $0.isEmpty ? MappedValue.null : .text($0) } ?? .null }, path: { _ in .null })
            else { continue }
            if let schema = catalog.schemas[type] { _ = schema.validate(body, now: now) }
        }
    }

    // MARK: - condition

    /// A rule condition: parsing any text must not trap; what parses is written back in its
    /// canonical form, which parses to the same condition; it evaluates on any document and is
    /// checked against an application schema.
    static let condition: @Sendable (Data) -> Void = { data in
        let text = String(decoding: data, as: UTF8.self)
        guard let condition = try? Condition.parse(text) else { return }
        let canonical = condition.description
        let again: Condition
        do {
            again = try Condition.parse(canonical)
        } catch {
            fatalError("property broken: the canonical form '\(canonical)' of '\(text)' does not parse: \(error)")
        }
        require(again == condition, "the canonical form '\(canonical)' of '\(text)' parses to another condition")
        for sample in samples { _ = condition.evaluate(on: sample) }
        if let schema = catalog.schemas["application.restaurant.submitted"] {
            _ = try? condition.check(against: schema, text: text)
        }
    }
}
