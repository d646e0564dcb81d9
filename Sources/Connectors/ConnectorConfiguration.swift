import Foundation
import Yams

/// A connector file of `Connectors/` (the format is described in `Connectors/README.md`).
public struct ConnectorConfiguration: Sendable {
    /// The file it was read from, for error messages.
    public var file: String
    /// Unique name; the consumer group of its sinks is `connector.<name>`.
    public var name: String
    /// The department id (from the catalog); events' source is `/departments/<department>`.
    public var department: String
    /// The department system's SQLite file, for `table` sources and `inbox`/`table` sinks.
    public var database: String?
    /// Where the connector keeps its cursors. Default: `var/connectors/<name>.sqlite`.
    public var state: String
    public var sources: [SourceConfiguration]
    public var sinks: [SinkConfiguration]
    /// `HOST:PORT` to serve Prometheus text at `/metrics` on; `nil`: no endpoint
    /// (`onewindow connector run --metrics-port` sets it too).
    public var metrics: String?

    /// The CloudEvents source of the events this connector publishes.
    public var eventSource: String { "/departments/\(department)" }
    /// The consumer group a sink reads with: `connector.<name>.<sink kind>`, and `-2`, `-3`… for
    /// further sinks of the same kind. Each sink has its own group, so each sees every event.
    public func consumerGroup(forSink index: Int) -> String {
        let kinds = sinks.map(\.kind)
        let kind = kinds[index]
        let ordinal = kinds[..<index].filter { $0 == kind }.count + 1
        return "connector.\(name).\(kind)" + (ordinal > 1 ? "-\(ordinal)" : "")
    }
}

/// One source of a connector.
public enum SourceConfiguration: Sendable {
    case table(TableSourceConfiguration)
    case webhook(WebhookSourceConfiguration)
    case fileDrop(FileDropSourceConfiguration)

    /// A stable name for logs, metrics and the cursor store.
    public var id: String {
        switch self {
        case .table(let table): "table:\(table.table)"
        case .webhook(let webhook): "webhook:\(webhook.path)"
        case .fileDrop(let drop): "file-drop:\(drop.directory)"
        }
    }
}

/// Change data capture by polling one table by a monotonic column.
public struct TableSourceConfiguration: Sendable {
    public var table: String
    /// The column that grows with every insert and update (`change_seq`).
    public var cursor: String
    /// The primary key column. Default: `id`.
    public var id: String
    /// The column that grows with each update of a row; `nil` means every row is version 1.
    public var version: String?
    public var type: String
    public var topic: String?
    /// The column holding the subject; `nil` lets the topic's key field decide.
    public var subject: String?
    /// The column holding when the fact happened; `nil` means the time it was read.
    public var time: String?
    /// Default: 500 ms.
    public var interval: Duration
    /// Rows per poll. Default: 500.
    public var batch: Int
    public var mapping: [FieldRule]
}

/// An HTTP endpoint the department POSTs JSON to.
public struct WebhookSourceConfiguration: Sendable {
    /// `HOST:PORT` to listen on.
    public var listen: String
    public var path: String
    public var type: String
    public var topic: String?
    /// `nil`: the posted body is the event body as it is.
    public var mapping: [FieldRule]?
}

/// CSV or JSON-lines files dropped into a folder.
public struct FileDropSourceConfiguration: Sendable {
    public enum Format: String, Sendable { case csv, jsonl }
    public var directory: String
    public var format: Format
    public var type: String
    public var topic: String?
    /// Default: 1 s.
    public var interval: Duration
    /// A file is read only once it has not been modified for this long, so that a file still being
    /// written is not read half-way. Default: 1 s.
    public var settle: Duration
    public var mapping: [FieldRule]?
}

/// One sink of a connector.
public enum SinkConfiguration: Sendable {
    case inbox(InboxSinkConfiguration)
    case webhook(WebhookSinkConfiguration)
    case file(FileSinkConfiguration)
    case table(TableSinkConfiguration)

    /// `inbox`, `webhook`, `file` or `table`.
    public var kind: String {
        switch self {
        case .inbox: "inbox"
        case .webhook: "webhook"
        case .file: "file"
        case .table: "table"
        }
    }

    public var id: String {
        switch self {
        case .inbox(let inbox): "inbox:\(inbox.requests)"
        case .webhook(let webhook): "webhook:\(webhook.url)"
        case .file(let file): "file:\(file.directory)"
        case .table(let table): "table:\(table.table)"
        }
    }
}

/// Approval requests into the department's work queue; its decisions back onto the bus.
public struct InboxSinkConfiguration: Sendable {
    public var requests: String
    public var decisions: String
    /// Default: `approval_inbox`.
    public var inboxTable: String
    /// Default: `approval_decisions`.
    public var decisionsTable: String
    /// How often the decisions table is polled. Default: 500 ms.
    public var interval: Duration
}

/// POST each event to a URL, with retries and exponential back-off, then dead-letter.
public struct WebhookSinkConfiguration: Sendable {
    public var topics: [String]
    public var url: String
    /// Default: 5.
    public var retries: Int
    /// The first back-off, doubled after each failure up to 30 s. Default: 200 ms.
    public var backoff: Duration
}

/// Append each event as a JSON line to a file per topic and day.
public struct FileSinkConfiguration: Sendable {
    public var topics: [String]
    public var directory: String
}

/// Insert each event as a row of a department table (an outbox), once per event id.
public struct TableSinkConfiguration: Sendable {
    public var topics: [String]
    public var table: String
    /// Table column → JSON pointer into the event body (or `$id`, `$time`, `$type`, `$subject`).
    public var columns: [(column: String, source: String)]
    /// The column holding the event id, unique in the table. Default: `event_id`.
    public var idColumn: String
}

/// Where one field of an event body comes from.
public struct FieldRule: Sendable {
    /// The JSON pointer of the field in the event body, e.g. `/child/name`.
    public var field: String
    public var value: FieldSource
    /// A conversion applied to the value. Default: none (pass-through).
    public var convert: Conversion?
    /// A code table: the value's text → the event's value.
    public var codes: [String: String]?
}

/// The origin of a field's value.
public enum FieldSource: Sendable {
    /// A column of the row (table sources, CSV files).
    case column(String)
    /// A JSON pointer into the incoming document (webhooks, JSON-lines files).
    case path(String)
    /// A constant.
    case constant(MappedValue)
}

/// A connector file that cannot be used.
public struct ConnectorConfigurationError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var location: String
    public var problem: String
    public var description: String { location.isEmpty ? "\(file): \(problem)" : "\(file): \(location): \(problem)" }
}

extension ConnectorConfiguration {
    /// Loads and checks a connector file.
    /// - Throws: ``ConnectorConfigurationError`` naming the place in the file and what is wrong.
    public static func load(path: String) throws -> ConnectorConfiguration {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConnectorConfigurationError(file: path, location: "", problem: "cannot read the file")
        }
        return try parse(text, file: path)
    }

    /// Parses the text of a connector file.
    public static func parse(_ text: String, file: String) throws -> ConnectorConfiguration {
        let root: Any?
        do {
            root = try Yams.load(yaml: text)
        } catch {
            throw ConnectorConfigurationError(file: file, location: "", problem: "not valid YAML: \(error)")
        }
        let reader = YAMLReader(file: file)
        let document = try reader.map(root, at: "")
        let name = try reader.string(document, "name", at: "")
        let department = try reader.string(document, "department", at: "")
        let database = try reader.optionalString(document, "database", at: "")
        let state = try reader.optionalString(document, "state", at: "") ?? "var/connectors/\(name).sqlite"
        let metrics = try reader.optionalString(document, "metrics", at: "")
        if let metrics, metrics.split(separator: ":").count != 2 || Int(metrics.split(separator: ":")[1]) == nil {
            throw ConnectorConfigurationError(file: file, location: "metrics", problem: "expected HOST:PORT, e.g. 127.0.0.1:9464")
        }
        var sources: [SourceConfiguration] = []
        for (index, entry) in try reader.list(document["sources"], at: "sources").enumerated() {
            sources.append(try reader.source(entry, at: "sources[\(index)]"))
        }
        var sinks: [SinkConfiguration] = []
        for (index, entry) in try reader.list(document["sinks"], at: "sinks").enumerated() {
            sinks.append(try reader.sink(entry, at: "sinks[\(index)]"))
        }
        if sources.isEmpty && sinks.isEmpty {
            throw ConnectorConfigurationError(file: file, location: "", problem: "no sources and no sinks: nothing to do")
        }
        let needsDatabase = sources.contains { if case .table = $0 { true } else { false } }
            || sinks.contains {
                switch $0 {
                case .inbox, .table: true
                default: false
                }
            }
        if needsDatabase && database == nil {
            throw ConnectorConfigurationError(
                file: file, location: "database", problem: "table sources and inbox/table sinks need the department's database")
        }
        return ConnectorConfiguration(
            file: file, name: name, department: department, database: database, state: state, sources: sources, sinks: sinks,
            metrics: metrics)
    }
}

/// Reads the untyped YAML tree with errors that name the place.
struct YAMLReader {
    let file: String

    func fail(_ location: String, _ problem: String) -> ConnectorConfigurationError {
        ConnectorConfigurationError(file: file, location: location, problem: problem)
    }

    func map(_ value: Any?, at location: String) throws -> [String: Any] {
        guard let map = value as? [String: Any] else { throw fail(location, "expected a mapping") }
        return map
    }

    func list(_ value: Any?, at location: String) throws -> [Any] {
        guard let value else { return [] }
        guard let list = value as? [Any] else { throw fail(location, "expected a list") }
        return list
    }

    func string(_ map: [String: Any], _ key: String, at location: String) throws -> String {
        guard let value = map[key] else { throw fail(join(location, key), "missing") }
        guard let text = value as? String, !text.isEmpty else { throw fail(join(location, key), "expected text") }
        return text
    }

    func optionalString(_ map: [String: Any], _ key: String, at location: String) throws -> String? {
        guard map[key] != nil else { return nil }
        return try string(map, key, at: location)
    }

    func int(_ map: [String: Any], _ key: String, default value: Int, at location: String) throws -> Int {
        guard let raw = map[key] else { return value }
        guard let number = raw as? Int, number > 0 else { throw fail(join(location, key), "expected a positive whole number") }
        return number
    }

    func duration(_ map: [String: Any], _ key: String, default value: Duration, at location: String) throws -> Duration {
        guard let raw = map[key] else { return value }
        guard let parsed = DurationText.parse("\(raw)") else {
            throw fail(join(location, key), "'\(raw)' is not a duration such as 500ms, 2s or 5m")
        }
        return parsed
    }

    func strings(_ map: [String: Any], _ key: String, at location: String) throws -> [String] {
        guard let list = map[key] as? [Any], !list.isEmpty else { throw fail(join(location, key), "expected a list of topics") }
        return list.map { "\($0)" }
    }

    func join(_ location: String, _ key: String) -> String { location.isEmpty ? key : "\(location).\(key)" }

    func source(_ value: Any, at location: String) throws -> SourceConfiguration {
        let map = try self.map(value, at: location)
        let kind = try string(map, "kind", at: location)
        switch kind {
        case "table":
            return .table(
                TableSourceConfiguration(
                    table: try string(map, "table", at: location), cursor: try string(map, "cursor", at: location),
                    id: try optionalString(map, "id", at: location) ?? "id",
                    version: try optionalString(map, "version", at: location),
                    type: try string(map, "type", at: location), topic: try optionalString(map, "topic", at: location),
                    subject: try optionalString(map, "subject", at: location),
                    time: try optionalString(map, "time", at: location),
                    interval: try duration(map, "interval", default: .milliseconds(500), at: location),
                    batch: try int(map, "batch", default: 500, at: location),
                    mapping: try rules(map["mapping"], at: join(location, "mapping"), required: true)!))
        case "webhook":
            let listen = try string(map, "listen", at: location)
            guard listen.split(separator: ":").count == 2, Int(listen.split(separator: ":")[1]) != nil else {
                throw fail(join(location, "listen"), "expected HOST:PORT")
            }
            let path = try string(map, "path", at: location)
            guard path.hasPrefix("/") else { throw fail(join(location, "path"), "must start with /") }
            return .webhook(
                WebhookSourceConfiguration(
                    listen: listen, path: path, type: try string(map, "type", at: location),
                    topic: try optionalString(map, "topic", at: location),
                    mapping: try rules(map["mapping"], at: join(location, "mapping"), required: false)))
        case "file-drop":
            let formatText = try string(map, "format", at: location)
            guard let format = FileDropSourceConfiguration.Format(rawValue: formatText) else {
                throw fail(join(location, "format"), "'\(formatText)' is not csv or jsonl")
            }
            return .fileDrop(
                FileDropSourceConfiguration(
                    directory: try string(map, "directory", at: location), format: format,
                    type: try string(map, "type", at: location), topic: try optionalString(map, "topic", at: location),
                    interval: try duration(map, "interval", default: .seconds(1), at: location),
                    settle: try duration(map, "settle", default: .seconds(1), at: location),
                    mapping: try rules(map["mapping"], at: join(location, "mapping"), required: false)))
        default:
            throw fail(join(location, "kind"), "'\(kind)' is not a source kind (table, webhook, file-drop)")
        }
    }

    func sink(_ value: Any, at location: String) throws -> SinkConfiguration {
        let map = try self.map(value, at: location)
        let kind = try string(map, "kind", at: location)
        switch kind {
        case "inbox":
            return .inbox(
                InboxSinkConfiguration(
                    requests: try string(map, "requests", at: location),
                    decisions: try string(map, "decisions", at: location),
                    inboxTable: try optionalString(map, "inboxTable", at: location) ?? "approval_inbox",
                    decisionsTable: try optionalString(map, "decisionsTable", at: location) ?? "approval_decisions",
                    interval: try duration(map, "interval", default: .milliseconds(500), at: location)))
        case "webhook":
            let url = try string(map, "url", at: location)
            guard let parsed = URL(string: url), parsed.scheme == "http" || parsed.scheme == "https" else {
                throw fail(join(location, "url"), "'\(url)' is not an http(s) URL")
            }
            return .webhook(
                WebhookSinkConfiguration(
                    topics: try strings(map, "topics", at: location), url: url,
                    retries: try int(map, "retries", default: 5, at: location),
                    backoff: try duration(map, "backoff", default: .milliseconds(200), at: location)))
        case "file":
            return .file(
                FileSinkConfiguration(
                    topics: try strings(map, "topics", at: location), directory: try string(map, "directory", at: location)))
        case "table":
            let columnsMap = try self.map(map["columns"], at: join(location, "columns"))
            let columns = columnsMap.keys.sorted().map { ($0, "\(columnsMap[$0]!)") }
            for (column, source) in columns where !source.hasPrefix("/") && !source.hasPrefix("$") {
                throw fail(join(location, "columns.\(column)"), "'\(source)' is not a JSON pointer (/field) or $id, $time, $type, $subject")
            }
            return .table(
                TableSinkConfiguration(
                    topics: try strings(map, "topics", at: location), table: try string(map, "table", at: location),
                    columns: columns, idColumn: try optionalString(map, "idColumn", at: location) ?? "event_id"))
        default:
            throw fail(join(location, "kind"), "'\(kind)' is not a sink kind (inbox, webhook, file, table)")
        }
    }

    func rules(_ value: Any?, at location: String, required: Bool) throws -> [FieldRule]? {
        guard let value else {
            if required { throw fail(location, "missing: map columns to event fields") }
            return nil
        }
        let map = try self.map(value, at: location)
        var rules: [FieldRule] = []
        for field in map.keys.sorted() {
            let here = "\(location).\(field)"
            guard field.hasPrefix("/") else { throw fail(here, "an event field is a JSON pointer such as /child/name") }
            let spec = try self.map(map[field], at: here)
            let source: FieldSource
            if let column = spec["column"] {
                source = .column("\(column)")
            } else if let path = spec["path"] {
                guard "\(path)".hasPrefix("/") else { throw fail(here, "path '\(path)' is not a JSON pointer") }
                source = .path("\(path)")
            } else if spec.keys.contains("const") {
                source = .constant(MappedValue(yaml: spec["const"] as Any))
            } else {
                throw fail(here, "say where the value comes from: column, path or const")
            }
            var convert: Conversion?
            if let text = spec["convert"] {
                guard let conversion = Conversion(rawValue: "\(text)") else {
                    throw fail(here, "'\(text)' is not a conversion (\(Conversion.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                convert = conversion
            }
            var codes: [String: String]?
            if let table = spec["codes"] {
                let entries = try self.map(table, at: "\(here).codes")
                codes = Dictionary(uniqueKeysWithValues: entries.map { ("\($0.key)", "\($0.value)") })
            }
            rules.append(FieldRule(field: field, value: source, convert: convert, codes: codes))
        }
        return rules
    }
}

/// `500ms`, `2s`, `5m`, `1h`.
enum DurationText {
    static func parse(_ text: String) -> Duration? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, milliseconds) in units where text.hasSuffix(suffix) {
            if let amount = Int64(text.dropLast(suffix.count)), amount >= 0 { return .milliseconds(amount * milliseconds) }
        }
        return nil
    }
}
