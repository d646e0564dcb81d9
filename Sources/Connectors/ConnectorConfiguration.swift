import Foundation
import ConfigFiles

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
    /// Where each value is in the file, by location (`sources[0].mapping./child/name`), for
    /// messages of checks made after reading; empty for a configuration not read from a file.
    public var places: [String: Place] = [:]

    /// A problem at a location of the file, with its line when known.
    public func problem(at location: String, _ problem: String) -> ConnectorConfigurationError {
        let place = places[location]
        return ConnectorConfigurationError(
            file: file, line: place?.line, column: place?.column, location: location, problem: problem)
    }

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
    /// Columns of the decisions table carried onto `approval.decided`'s `fields` (the facts a
    /// decision establishes for later steps, e.g. a valuation's `/assessedPriceFen`), mapped as a
    /// table source's `mapping` is. Default: none.
    public var fields: [FieldRule] = []
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

/// A connector file that cannot be used: the file, the line, the place (`sources[0].interval`) and
/// what is wrong. The one error of configuration files (``ConfigFileError``).
public typealias ConnectorConfigurationError = ConfigFileError

extension ConnectorConfiguration {
    /// Loads and checks a connector file.
    /// - Throws: ``ConnectorConfigurationError`` naming the file, line, place and what is wrong:
    ///   an unknown or misspelt key (with the nearest known key), a value of the wrong type, a
    ///   missing key.
    public static func load(path: String) throws -> ConnectorConfiguration {
        try read(ConfigNode.load(path: path))
    }

    /// Parses the text of a connector file.
    public static func parse(_ text: String, file: String) throws -> ConnectorConfiguration {
        try read(ConfigNode.parse(text, file: file))
    }

    /// The keys of a connector file, of each source kind, sink kind and mapping rule
    /// (`Connectors/README.md`).
    static let documentKeys = ["name", "department", "database", "state", "metrics", "sources", "sinks"]
    static let sourceKeys: [String: [String]] = [
        "table": [
            "kind", "table", "cursor", "id", "version", "type", "topic", "subject", "time", "interval", "batch", "mapping",
        ],
        "webhook": ["kind", "listen", "path", "type", "topic", "mapping"],
        "file-drop": ["kind", "directory", "format", "type", "topic", "interval", "settle", "mapping"],
    ]
    static let sinkKeys: [String: [String]] = [
        "inbox": ["kind", "requests", "decisions", "inboxTable", "decisionsTable", "interval", "fields"],
        "webhook": ["kind", "topics", "url", "retries", "backoff"],
        "file": ["kind", "topics", "directory"],
        "table": ["kind", "topics", "table", "columns", "idColumn"],
    ]
    static let ruleKeys = ["column", "path", "const", "convert", "codes"]

    static func read(_ root: ConfigNode) throws -> ConnectorConfiguration {
        let file = root.file
        let document = try root.mapping(keys: documentKeys)
        let name = try document.string("name")
        let department = try document.string("department")
        let database = try document.optionalString("database")
        let state = try document.optionalString("state") ?? "var/connectors/\(name).sqlite"
        let metrics = try document.optionalString("metrics")
        if let metrics, metrics.split(separator: ":").count != 2 || Int(metrics.split(separator: ":")[1]) == nil {
            throw document["metrics"]!.fail("expected HOST:PORT, e.g. 127.0.0.1:9464")
        }
        let reader = YAMLReader()
        let sources = try (document["sources"]?.list() ?? []).map { try reader.source($0) }
        let sinks = try (document["sinks"]?.list() ?? []).map { try reader.sink($0) }
        if sources.isEmpty && sinks.isEmpty {
            throw root.fail("no sources and no sinks: nothing to do")
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
                file: file, line: root.line, location: "database",
                problem: "table sources and inbox/table sinks need the department's database")
        }
        return ConnectorConfiguration(
            file: file, name: name, department: department, database: database, state: state, sources: sources, sinks: sinks,
            metrics: metrics, places: root.places())
    }
}

/// Reads the parts of a connector file, each refused with its file, line and place.
struct YAMLReader {
    func int(_ map: ConfigMapping, _ key: String, default value: Int) throws -> Int {
        guard let node = map[key] else { return value }
        let number = try node.int()
        guard number > 0 else { throw node.fail("expected a positive whole number, found \(number)") }
        return number
    }

    func duration(_ map: ConfigMapping, _ key: String, default value: Duration) throws -> Duration {
        guard let node = map[key] else { return value }
        let text = try node.string()
        guard let parsed = DurationText.parse(text) else {
            throw node.fail("'\(text)' is not a duration such as 500ms, 2s or 5m")
        }
        return parsed
    }

    func topics(_ map: ConfigMapping) throws -> [String] {
        let list = try map.require("topics", "list the topics").list()
        guard !list.isEmpty else { throw map["topics"]!.fail("expected a list of topics, found an empty list") }
        return try list.map { try $0.string() }
    }

    /// The mapping's keys checked against those of its `kind`.
    func kinded(_ node: ConfigNode, _ keys: [String: [String]], _ what: String) throws -> (String, ConfigMapping) {
        let map = try node.mapping()
        let kindNode = try map.require("kind", "say which \(what) kind: \(keys.keys.sorted().joined(separator: ", "))")
        let kind = try kindNode.string()
        guard let known = keys[kind] else {
            let nearest = KeySuggestion.nearest(to: kind, in: Array(keys.keys)).map { "; did you mean \($0)?" } ?? ""
            throw kindNode.fail("'\(kind)' is not a \(what) kind (\(keys.keys.sorted().joined(separator: ", ")))\(nearest)")
        }
        try map.allowOnly(known)
        return (kind, map)
    }

    func source(_ node: ConfigNode) throws -> SourceConfiguration {
        let (kind, map) = try kinded(node, ConnectorConfiguration.sourceKeys, "source")
        switch kind {
        case "table":
            return .table(
                TableSourceConfiguration(
                    table: try map.string("table"), cursor: try map.string("cursor"),
                    id: try map.optionalString("id") ?? "id",
                    version: try map.optionalString("version"),
                    type: try map.string("type"), topic: try map.optionalString("topic"),
                    subject: try map.optionalString("subject"),
                    time: try map.optionalString("time"),
                    interval: try duration(map, "interval", default: .milliseconds(500)),
                    batch: try int(map, "batch", default: 500),
                    mapping: try rules(map, required: true)!))
        case "webhook":
            let listenNode = try map.require("listen")
            let listen = try listenNode.string()
            guard listen.split(separator: ":").count == 2, Int(listen.split(separator: ":")[1]) != nil else {
                throw listenNode.fail("expected HOST:PORT")
            }
            let pathNode = try map.require("path")
            let path = try pathNode.string()
            guard path.hasPrefix("/") else { throw pathNode.fail("must start with /") }
            return .webhook(
                WebhookSourceConfiguration(
                    listen: listen, path: path, type: try map.string("type"), topic: try map.optionalString("topic"),
                    mapping: try rules(map, required: false)))
        default:
            let formatNode = try map.require("format", "csv or jsonl")
            let formatText = try formatNode.string()
            guard let format = FileDropSourceConfiguration.Format(rawValue: formatText) else {
                throw formatNode.fail("'\(formatText)' is not csv or jsonl")
            }
            return .fileDrop(
                FileDropSourceConfiguration(
                    directory: try map.string("directory"), format: format,
                    type: try map.string("type"), topic: try map.optionalString("topic"),
                    interval: try duration(map, "interval", default: .seconds(1)),
                    settle: try duration(map, "settle", default: .seconds(1)),
                    mapping: try rules(map, required: false)))
        }
    }

    func sink(_ node: ConfigNode) throws -> SinkConfiguration {
        let (kind, map) = try kinded(node, ConnectorConfiguration.sinkKeys, "sink")
        switch kind {
        case "inbox":
            return .inbox(
                InboxSinkConfiguration(
                    requests: try map.string("requests"),
                    decisions: try map.string("decisions"),
                    inboxTable: try map.optionalString("inboxTable") ?? "approval_inbox",
                    decisionsTable: try map.optionalString("decisionsTable") ?? "approval_decisions",
                    interval: try duration(map, "interval", default: .milliseconds(500)),
                    fields: try rules(map, required: false, key: "fields") ?? []))
        case "webhook":
            let urlNode = try map.require("url")
            let url = try urlNode.string()
            guard let parsed = URL(string: url), parsed.scheme == "http" || parsed.scheme == "https" else {
                throw urlNode.fail("'\(url)' is not an http(s) URL")
            }
            return .webhook(
                WebhookSinkConfiguration(
                    topics: try topics(map), url: url,
                    retries: try int(map, "retries", default: 5),
                    backoff: try duration(map, "backoff", default: .milliseconds(200))))
        case "file":
            return .file(FileSinkConfiguration(topics: try topics(map), directory: try map.string("directory")))
        default:
            var columns: [(String, String)] = []
            for entry in try map.require("columns", "map table columns to body fields").mapping().entries {
                let source = try entry.value.string()
                guard source.hasPrefix("/") || source.hasPrefix("$") else {
                    throw entry.value.fail("'\(source)' is not a JSON pointer (/field) or $id, $time, $type, $subject")
                }
                columns.append((entry.key, source))
            }
            return .table(
                TableSinkConfiguration(
                    topics: try topics(map), table: try map.string("table"),
                    columns: columns.sorted { $0.0 < $1.0 }, idColumn: try map.optionalString("idColumn") ?? "event_id"))
        }
    }

    func rules(_ owner: ConfigMapping, required: Bool, key: String = "mapping") throws -> [FieldRule]? {
        guard let node = owner[key] else {
            if required { _ = try owner.require(key, "map columns to event fields") }
            return nil
        }
        var rules: [FieldRule] = []
        for entry in try node.mapping().entries.sorted(by: { $0.key < $1.key }) {
            let field = entry.key
            guard field.hasPrefix("/") else {
                throw entry.keyNode.fail("an event field is a JSON pointer such as /child/name")
            }
            let spec = try entry.value.mapping(keys: ConnectorConfiguration.ruleKeys)
            let origins = ["column", "path", "const"].filter { spec[$0] != nil }
            guard origins.count <= 1 else {
                throw entry.value.fail("give one of column, path or const, not \(origins.joined(separator: " and "))")
            }
            let source: FieldSource
            if let column = spec["column"] {
                source = .column(try column.string())
            } else if let pathNode = spec["path"] {
                let path = try pathNode.string()
                guard path.hasPrefix("/") else { throw pathNode.fail("path '\(path)' is not a JSON pointer") }
                source = .path(path)
            } else if let constant = spec["const"] {
                source = .constant(MappedValue(yaml: constant.any))
            } else {
                throw entry.value.fail("say where the value comes from: column, path or const")
            }
            var convert: Conversion?
            if let convertNode = spec["convert"] {
                let text = try convertNode.string()
                guard let conversion = Conversion(rawValue: text) else {
                    let names = Conversion.allCases.map(\.rawValue)
                    let nearest = KeySuggestion.nearest(to: text, in: names).map { "; did you mean \($0)?" } ?? ""
                    throw convertNode.fail("'\(text)' is not a conversion (\(names.joined(separator: ", ")))\(nearest)")
                }
                convert = conversion
            }
            var codes: [String: String]?
            if let table = spec["codes"] {
                var entries: [String: String] = [:]
                for code in try table.mapping().entries { entries[code.key] = try code.value.string() }
                codes = entries
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
