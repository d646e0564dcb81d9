import EventLog
import Foundation
import Yams

/// The topic catalog: every topic OneWindow uses, which event types each carries, and the JSON
/// Schema of every event type. Loaded from `Topics/catalog.yaml` and `Topics/schemas/<type>.json`
/// (the format is described in `Topics/README.md`).
///
/// ```swift
/// let catalog = try TopicCatalog.load(from: URL(fileURLWithPath: "Topics"))
/// let topic = catalog.topic(named: "household.birth.registered")
/// ```
public struct TopicCatalog: Sendable {
    /// Where records refused by validation go.
    public var deadLetterTopic: String
    /// Department id → human description (e.g. `tax` → `税务 Tax bureau`).
    public var departments: [String: String]
    /// Every topic, in catalog order.
    public var topics: [CatalogTopic] {
        didSet { index = Index(topics) }
    }
    /// Every event type's compiled schema, by type.
    public var schemas: [String: JSONSchema]
    /// Topics by name and by the types they carry, so that validating an event does not scan them.
    private var index: Index

    private struct Index: Sendable {
        var byName: [String: Int] = [:]
        var carriers: [String: [Int]] = [:]

        init(_ topics: [CatalogTopic]) {
            for (position, topic) in topics.enumerated() {
                if byName[topic.name] == nil { byName[topic.name] = position }
                for type in Set(topic.types) { carriers[type, default: []].append(position) }
            }
        }
    }

    public init(
        deadLetterTopic: String, departments: [String: String], topics: [CatalogTopic], schemas: [String: JSONSchema]
    ) {
        self.deadLetterTopic = deadLetterTopic
        self.departments = departments
        self.topics = topics
        self.schemas = schemas
        self.index = Index(topics)
    }

    /// The topic with this name.
    public func topic(named name: String) -> CatalogTopic? { index.byName[name].map { topics[$0] } }

    /// The topics that may carry this event type, in catalog order.
    public func topics(carrying type: String) -> [CatalogTopic] { (index.carriers[type] ?? []).map { topics[$0] } }

    /// Every event type with a schema, sorted.
    public var eventTypes: [String] { schemas.keys.sorted() }

    /// What the log needs to create every topic.
    public var topicSpecs: [TopicSpec] { topics.map(\.spec) }

    /// The topic names of one department.
    public func topics(ownedBy department: String) -> [CatalogTopic] { topics.filter { $0.owner == department } }
}

/// One topic of the catalog.
public struct CatalogTopic: Sendable, Hashable {
    /// `<domain>.<entity>.<event>`, lower case.
    public var name: String
    /// The department that writes it (a key of ``TopicCatalog/departments``).
    public var owner: String
    /// What the topic holds, for people.
    public var description: String
    /// The JSON pointer of the body field that is the record key (the entity whose order
    /// matters), e.g. `/applicationId`; `nil` for topics without a key (dead letters).
    public var keyPointer: String? {
        didSet { keyTokens = keyPointer.map(JSONValue.tokens(ofPointer:)) }
    }
    /// ``keyPointer`` split into member names once.
    var keyTokens: [String]?
    /// The event types it carries; empty for the dead-letter topic, which carries raw records.
    public var types: [String]
    /// Partitions and cleanup.
    public var spec: TopicSpec

    public init(
        name: String, owner: String, description: String, keyPointer: String?, types: [String], spec: TopicSpec
    ) {
        self.name = name
        self.owner = owner
        self.description = description
        self.keyPointer = keyPointer
        self.keyTokens = keyPointer.map(JSONValue.tokens(ofPointer:))
        self.types = types
        self.spec = spec
    }
}

/// A catalog file that cannot be used: which file, where in it, and what is wrong.
public struct CatalogError: Error, Sendable, CustomStringConvertible {
    /// The file concerned.
    public var file: String
    /// Where in it, e.g. `topics[3].retention`.
    public var location: String
    /// What is wrong and what would be right.
    public var problem: String

    public init(file: String, location: String, problem: String) {
        self.file = file
        self.location = location
        self.problem = problem
    }

    public var description: String {
        location.isEmpty ? "\(file): \(problem)" : "\(file): \(location): \(problem)"
    }
}

extension TopicCatalog {
    /// The catalog directory used when none is given: `$ONEWINDOW_TOPICS`, else `./Topics`.
    public static var defaultDirectory: URL {
        if let path = ProcessInfo.processInfo.environment["ONEWINDOW_TOPICS"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("Topics")
    }

    /// Loads `catalog.yaml` and every schema its topics name from a directory.
    /// - Throws: ``CatalogError`` for a malformed catalog or a missing schema, ``SchemaLoadError`` for
    ///   a schema that does not compile.
    public static func load(from directory: URL) throws -> TopicCatalog {
        let file = directory.appendingPathComponent("catalog.yaml")
        let name = file.path
        guard let text = try? String(contentsOf: file, encoding: .utf8) else {
            throw CatalogError(
                file: name, location: "",
                problem: "cannot read the catalog; run from the repository root or set ONEWINDOW_TOPICS")
        }
        let root: Any?
        do {
            root = try Yams.load(yaml: text)
        } catch {
            throw CatalogError(file: name, location: "", problem: "not valid YAML: \(error)")
        }
        guard let document = root as? [String: Any] else {
            throw CatalogError(file: name, location: "", problem: "expected a mapping at the top")
        }
        let defaults = document["defaults"] as? [String: Any] ?? [:]
        let defaultPartitions = defaults["partitions"] as? Int ?? 6
        let departments = (document["departments"] as? [String: Any] ?? [:]).mapValues { "\($0)" }
        guard let deadLetterTopic = document["deadLetterTopic"] as? String else {
            throw CatalogError(file: name, location: "deadLetterTopic", problem: "missing; name the dead-letter topic")
        }
        guard let entries = document["topics"] as? [[String: Any]] else {
            throw CatalogError(file: name, location: "topics", problem: "expected a list of topics")
        }
        var topics: [CatalogTopic] = []
        var seen = Set<String>()
        for (index, entry) in entries.enumerated() {
            let topic = try parseTopic(
                entry, at: "topics[\(index)]", file: name, defaultPartitions: defaultPartitions,
                departments: departments)
            guard seen.insert(topic.name).inserted else {
                throw CatalogError(file: name, location: "topics[\(index)].name", problem: "\(topic.name) is listed twice")
            }
            topics.append(topic)
        }
        guard seen.contains(deadLetterTopic) else {
            throw CatalogError(
                file: name, location: "deadLetterTopic", problem: "\(deadLetterTopic) is not one of the topics")
        }
        var schemas: [String: JSONSchema] = [:]
        for type in Set(topics.flatMap(\.types)).sorted() {
            let schemaFile = directory.appendingPathComponent("schemas").appendingPathComponent("\(type).json")
            guard let data = try? Data(contentsOf: schemaFile) else {
                throw CatalogError(
                    file: schemaFile.path, location: "",
                    problem: "event type \(type) is carried by a topic but has no schema file")
            }
            schemas[type] = try JSONSchema(data: data, name: "schemas/\(type).json")
        }
        return TopicCatalog(deadLetterTopic: deadLetterTopic, departments: departments, topics: topics, schemas: schemas)
    }

    private static func parseTopic(
        _ entry: [String: Any], at location: String, file: String, defaultPartitions: Int,
        departments: [String: String]
    ) throws -> CatalogTopic {
        func fail(_ field: String, _ problem: String) -> CatalogError {
            CatalogError(file: file, location: "\(location).\(field)", problem: problem)
        }
        guard let name = entry["name"] as? String else { throw fail("name", "missing") }
        do { try TopicName.validate(name) } catch { throw fail("name", "\(error)") }
        guard let owner = entry["owner"] as? String else { throw fail("owner", "missing: name the department") }
        guard departments[owner] != nil else {
            throw fail("owner", "\(owner) is not one of the departments (\(departments.keys.sorted().joined(separator: ", ")))")
        }
        let partitions = entry["partitions"] as? Int ?? defaultPartitions
        guard partitions > 0 else { throw fail("partitions", "must be at least 1") }
        let compact = entry["compact"] as? Bool ?? false
        let retentionText = entry["retention"].map { "\($0)" }
        if compact && retentionText != nil {
            throw fail("retention", "a compacted topic keeps the latest record per key; remove retention or compact")
        }
        let cleanup: CleanupPolicy
        if compact {
            cleanup = .compact
        } else if let retentionText {
            guard let retention = parseRetention(retentionText) else {
                throw fail("retention", "\(retentionText) is not a duration such as 90d, 12h, 30m or forever")
            }
            cleanup = .delete(retention: retention)
        } else {
            cleanup = .delete(retention: nil)
        }
        let key = entry["key"] as? String
        if let key, !key.hasPrefix("/") {
            throw fail("key", "\(key) is not a JSON pointer into the body; write it like /applicationId")
        }
        guard let types = entry["types"] as? [String] else { throw fail("types", "missing: list the event types") }
        return CatalogTopic(
            name: name, owner: owner, description: entry["description"] as? String ?? "", keyPointer: key,
            types: types, spec: TopicSpec(name: name, partitions: partitions, cleanup: cleanup))
    }

    /// `90d`, `12h`, `30m`, `45s`, `forever` (→ `nil` inside `.some`).
    static func parseRetention(_ text: String) -> Duration?? {
        if text == "forever" { return .some(nil) }
        guard let unit = text.last, let amount = Int64(text.dropLast()), amount > 0 else { return nil }
        switch unit {
        case "d": return .some(.seconds(amount * 86_400))
        case "h": return .some(.seconds(amount * 3_600))
        case "m": return .some(.seconds(amount * 60))
        case "s": return .some(.seconds(amount))
        default: return nil
        }
    }
}
