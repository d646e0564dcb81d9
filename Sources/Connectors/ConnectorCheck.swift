import EventSchemas
import Foundation
import GRDB

/// What `onewindow connector check` finds before `run` would: the catalog, the event schemas and
/// the department's database, against a connector file.
extension Connector {
    /// Every problem of a file against the catalog and the event schemas, in file order: a
    /// department, type or topic the catalog lacks; a mapping to a field the event's schema does
    /// not have; a constant or a code table's value the field's schema refuses (outside its
    /// `enum`, of the wrong type or format); a webhook sink whose retries outlast a poll.
    public static func problems(in configuration: ConnectorConfiguration, against catalog: TopicCatalog)
        -> [ConnectorConfigurationError]
    {
        var problems: [ConnectorConfigurationError] = []
        func fail(_ location: String, _ problem: String) {
            problems.append(configuration.problem(at: location, problem))
        }
        if catalog.departments[configuration.department] == nil {
            fail(
                "department",
                "department \(configuration.department) is not in the catalog (\(catalog.departments.keys.sorted().joined(separator: ", ")))")
        }
        for (index, source) in configuration.sources.enumerated() {
            let here = "sources[\(index)]"
            let (type, topic, mapping): (String, String?, [FieldRule]?) =
                switch source {
                case .table(let table): (table.type, table.topic, table.mapping)
                case .webhook(let webhook): (webhook.type, webhook.topic, webhook.mapping)
                case .fileDrop(let drop): (drop.type, drop.topic, drop.mapping)
                }
            guard let schema = catalog.schemas[type] else {
                fail("\(here).type", "event type \(type) is not in the catalog")
                continue
            }
            if let topic, catalog.topic(named: topic)?.types.contains(type) != true {
                fail("\(here).topic", "topic \(topic) does not carry \(type)")
            }
            if topic == nil, catalog.topics(carrying: type).count != 1 {
                fail("\(here).type", "\(type) is carried by several topics: name one with `topic:`")
            }
            for rule in mapping ?? [] {
                let location = "\(here).mapping.\(rule.field)"
                if let problem = schema.fieldProblem(at: rule.field) {
                    fail(location, "\(type) has \(problem.message)")
                    continue
                }
                for (what, value) in fixedValues(of: rule) {
                    let violations = schema.validate(value, atField: rule.field)
                    if let first = violations.first {
                        fail(location, "\(what) \(String(decoding: value.serialized(), as: UTF8.self)) is refused by the schema of \(type): \(first)")
                    }
                }
            }
        }
        for (index, sink) in configuration.sinks.enumerated() {
            let here = "sinks[\(index)]"
            var topics: [(String, String)] = []
            switch sink {
            case .inbox(let inbox): topics = [("\(here).requests", inbox.requests), ("\(here).decisions", inbox.decisions)]
            case .webhook(let webhook): topics = webhook.topics.map { ("\(here).topics", $0) }
            case .file(let file): topics = file.topics.map { ("\(here).topics", $0) }
            case .table(let table): topics = table.topics.map { ("\(here).topics", $0) }
            }
            for (location, topic) in topics where catalog.topic(named: topic) == nil {
                fail(location, "topic \(topic) is not in the catalog")
            }
            if case .webhook(let webhook) = sink, webhook.worstCasePerRecord > WebhookSinkConfiguration.longestPerRecord {
                fail(
                    "\(here).retries",
                    "webhook sink \(webhook.url): \(webhook.retries) retries from \(webhook.backoff) can take \(webhook.worstCasePerRecord) "
                        + "for one event (\(Int(WebhookSinkConfiguration.requestTimeout)) s a request), over the "
                        + "\(WebhookSinkConfiguration.longestPerRecord) a consumer may spend between polls: lower `retries` or `backoff`")
            }
        }
        return problems
    }

    /// The values a rule can give whatever the input: its constant, or each value of its code
    /// table, converted as the rule says.
    static func fixedValues(of rule: FieldRule) -> [(String, JSONValue)] {
        let single = BodyMapper(rules: [FieldRule(field: "/value", value: rule.value, convert: rule.convert, codes: rule.codes)])
        func mapped(_ raw: MappedValue) -> JSONValue? {
            try? single.body(column: { _ in raw }, path: { _ in raw })[pointer: "/value"]
        }
        if case .constant = rule.value, rule.codes == nil {
            return mapped(.null).map { [("the constant", $0)] } ?? []
        }
        guard let codes = rule.codes else { return [] }
        return codes.keys.sorted().compactMap { code in mapped(.text(code)).map { ("code '\(code)' gives", $0) } }
    }

    /// The problem of a file whose department database does not exist, or `nil`: its path and
    /// how to make one (`onewindow dept-sim DEPARTMENT --seed`).
    ///
    /// The simulator is the one whose default file the path is (`…/departments/<simulator>.sqlite`),
    /// else the department's (`sms-gateway` for the hub itself, `onewindow`, whose simulated system
    /// is the SMS gateway); `--db` is added when the path is not `var/departments/<simulator>.sqlite`.
    public static func missingDatabase(of configuration: ConnectorConfiguration) -> ConnectorConfigurationError? {
        guard let path = configuration.database, !FileManager.default.fileExists(atPath: path) else { return nil }
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let absolute = url.path
        var simulator = configuration.department == "onewindow" ? "sms-gateway" : configuration.department
        if url.deletingLastPathComponent().lastPathComponent == "departments", url.pathExtension == "sqlite" {
            simulator = url.deletingPathExtension().lastPathComponent
        }
        var command = "onewindow dept-sim \(simulator) --seed"
        if path != "var/departments/\(simulator).sqlite" { command += " --db \(path)" }
        return configuration.problem(
            at: "database",
            "the department's database \(path) does not exist\(path == absolute ? "" : " (\(absolute))"); create the simulated one with "
                + "`\(command)`, or point `database:` at the department's file")
    }

    /// Every table and column the file names that the department's database lacks: each table
    /// source's table and its `cursor`, `id`, `version`, `subject`, `time` and mapped columns;
    /// an inbox sink's two tables and the columns it writes and reads; a table sink's table, id
    /// column and columns. A missing database is one problem (``missingDatabase(of:)``). The
    /// database is opened read-only and never created.
    /// - Throws: when the database exists but cannot be read.
    public static func databaseProblems(in configuration: ConnectorConfiguration) throws -> [ConnectorConfigurationError] {
        guard let path = configuration.database else { return [] }
        if let missing = missingDatabase(of: configuration) { return [missing] }
        var options = Configuration()
        options.readonly = true
        options.busyMode = .timeout(10)
        let database = try DatabaseQueue(path: path, configuration: options)
        defer { try? database.close() }
        var wanted: [(location: String, table: String, columns: [(key: String, column: String)])] = []
        for (index, source) in configuration.sources.enumerated() {
            guard case .table(let table) = source else { continue }
            var named: [(String, String)] = [("cursor", table.cursor), ("id", table.id)]
            if let version = table.version { named.append(("version", version)) }
            if let subject = table.subject { named.append(("subject", subject)) }
            if let time = table.time { named.append(("time", time)) }
            for rule in table.mapping {
                if case .column(let column) = rule.value { named.append(("mapping.\(rule.field)", column)) }
            }
            wanted.append(("sources[\(index)]", table.table, named))
        }
        for (index, sink) in configuration.sinks.enumerated() {
            switch sink {
            case .inbox(let inbox):
                wanted.append(
                    ("sinks[\(index)]", inbox.inboxTable,
                     ["event_id", "application_id", "item", "service", "due_by", "payload", "received_at", "status"].map {
                         ("inboxTable", $0)
                     }))
                wanted.append(
                    ("sinks[\(index)]", inbox.decisionsTable,
                     ["seq", "application_id", "item", "decision", "reason", "decided_at", "decided_by", "licence_number"].map {
                         ("decisionsTable", $0)
                     }))
            case .table(let table):
                wanted.append(
                    ("sinks[\(index)]", table.table,
                     [("idColumn", table.idColumn)] + table.columns.map { ("columns.\($0.column)", $0.column) }))
            default:
                continue
            }
        }
        var problems: [ConnectorConfigurationError] = []
        try database.read { db in
            for (location, table, columns) in wanted {
                let present = try Row.fetchAll(db, sql: "SELECT name FROM pragma_table_info(?)", arguments: [table]).map {
                    $0["name"] as String
                }
                guard !present.isEmpty else {
                    let tables = try String.fetchAll(
                        db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
                    problems.append(
                        configuration.problem(
                            at: location,
                            "the department's database \(path) has no table \(table); its tables are \(tables.joined(separator: ", "))"))
                    continue
                }
                let known = Set(present)
                for (key, column) in columns where !known.contains(column) {
                    let place = "\(location).\(key)"
                    problems.append(
                        configuration.problem(
                            at: configuration.places[place] != nil ? place : location,
                            "table \(table) has no column \(column) (named by `\(key)`); its columns are \(present.joined(separator: ", "))"))
                }
            }
        }
        return problems
    }
}
