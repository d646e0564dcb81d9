import EventLog
import Foundation
import ConfigFiles

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

    /// The name of the one topic that carries `type`, `nil` when none or several do; without
    /// copying topics, for a dead letter's `dl_original_topic` on every refused record.
    public func onlyTopic(carrying type: String) -> String? {
        guard let positions = index.carriers[type], positions.count == 1 else { return nil }
        return topics[positions[0]].name
    }

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
    /// The JSON pointer of the body field naming the department an event is for (`/department`),
    /// on topics a department owns for events of a type several departments share
    /// (`approval.<department>.requested`): the field must equal ``owner``, so an event cannot land
    /// in another department's inbox. `nil`: no such rule.
    public var ownerField: String?

    public init(
        name: String, owner: String, description: String, keyPointer: String?, types: [String], spec: TopicSpec,
        ownerField: String? = nil
    ) {
        self.name = name
        self.owner = owner
        self.description = description
        self.keyPointer = keyPointer
        self.keyTokens = keyPointer.map(JSONValue.tokens(ofPointer:))
        self.types = types
        self.spec = spec
        self.ownerField = ownerField
    }
}

/// A catalog file that cannot be used: which file, the line, where in it (`topics[3].retention`),
/// and what is wrong. The one error of configuration files (``ConfigFileError``).
public typealias CatalogError = ConfigFileError

extension TopicCatalog {
    /// The catalog directory used when none is given: `$ONEWINDOW_TOPICS`, else `./Topics`.
    public static var defaultDirectory: URL {
        if let path = ProcessInfo.processInfo.environment["ONEWINDOW_TOPICS"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("Topics")
    }

    /// The keys of `catalog.yaml`, of `defaults:` and of each topic (README.md in `Topics/`).
    static let documentKeys = ["version", "deadLetterTopic", "defaults", "departments", "topics"]
    static let defaultsKeys = ["partitions"]
    static let topicKeys = [
        "name", "owner", "description", "partitions", "key", "retention", "compact", "types", "ownerField",
    ]

    /// Loads `catalog.yaml` and every schema its topics name from a directory.
    /// - Throws: ``CatalogError`` (a ``ConfigFileError``: file, line, place and problem) for a
    ///   malformed catalog — an unknown or misspelt key, a value of the wrong type, a missing key —
    ///   or a missing schema, ``SchemaLoadError`` for a schema that does not compile.
    public static func load(from directory: URL) throws -> TopicCatalog {
        let file = directory.appendingPathComponent("catalog.yaml")
        let root = try ConfigNode.load(path: file.path, hint: "run from the repository root or set ONEWINDOW_TOPICS")
        let document = try root.mapping(keys: documentKeys)
        if let version = document["version"], try version.int() != 1 {
            throw version.fail("this OneWindow reads catalog version 1")
        }
        var defaultPartitions = 6
        if let defaults = document["defaults"] {
            defaultPartitions = try defaults.mapping(keys: defaultsKeys).optionalInt("partitions") ?? 6
        }
        var departments: [String: String] = [:]
        if let listed = document["departments"] {
            for entry in try listed.mapping().entries { departments[entry.key] = try entry.value.string() }
        }
        let deadLetter = try document.require("deadLetterTopic", "name the dead-letter topic")
        let deadLetterTopic = try deadLetter.string()
        var topics: [CatalogTopic] = []
        var entries: [ConfigNode] = []
        var seen = Set<String>()
        for entry in try document.require("topics", "list the topics").list() {
            let topic = try parseTopic(entry, defaultPartitions: defaultPartitions, departments: departments)
            guard seen.insert(topic.name).inserted else {
                throw try entry.mapping().require("name").fail("\(topic.name) is listed twice")
            }
            topics.append(topic)
            entries.append(entry)
        }
        guard seen.contains(deadLetterTopic) else {
            throw deadLetter.fail("\(deadLetterTopic) is not one of the topics")
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
        for (topic, entry) in zip(topics, entries) {
            guard let field = topic.ownerField else { continue }
            for type in topic.types {
                if let violation = schemas[type]?.fieldProblem(at: field) {
                    throw try entry.mapping().require("ownerField").fail("schemas/\(type).json has \(violation.message)")
                }
            }
        }
        return TopicCatalog(deadLetterTopic: deadLetterTopic, departments: departments, topics: topics, schemas: schemas)
    }

    private static func parseTopic(_ entry: ConfigNode, defaultPartitions: Int, departments: [String: String]) throws
        -> CatalogTopic
    {
        let map = try entry.mapping(keys: topicKeys)
        let nameNode = try map.require("name")
        let name = try nameNode.string()
        do { try TopicName.validate(name) } catch { throw nameNode.fail("\(error)") }
        let ownerNode = try map.require("owner", "name the department")
        let owner = try ownerNode.string()
        guard departments[owner] != nil else {
            throw ownerNode.fail(
                "\(owner) is not one of the departments (\(departments.keys.sorted().joined(separator: ", ")))")
        }
        let partitions = try map.optionalInt("partitions") ?? defaultPartitions
        if partitions < 1 { throw map["partitions"]!.fail("must be at least 1") }
        let compact = try map.optionalBool("compact") ?? false
        let retentionNode = map["retention"]
        if compact, let retentionNode {
            throw retentionNode.fail("a compacted topic keeps the latest record per key; remove retention or compact")
        }
        let cleanup: CleanupPolicy
        if compact {
            cleanup = .compact
        } else if let retentionNode {
            let text = try retentionNode.string()
            guard let retention = parseRetention(text) else {
                throw retentionNode.fail("\(text) is not a duration such as 90d, 12h, 30m or forever")
            }
            cleanup = .delete(retention: retention)
        } else {
            cleanup = .delete(retention: nil)
        }
        let key = try map.optionalString("key")
        if let key, !key.hasPrefix("/") {
            throw map["key"]!.fail("\(key) is not a JSON pointer into the body; write it like /applicationId")
        }
        let ownerField = try map.optionalString("ownerField")
        if let ownerField, !ownerField.hasPrefix("/") {
            throw map["ownerField"]!.fail("\(ownerField) is not a JSON pointer into the body; write it like /department")
        }
        let types = try map.require("types", "list the event types").list().map { try $0.string() }
        return CatalogTopic(
            name: name, owner: owner, description: try map.optionalString("description") ?? "", keyPointer: key,
            types: types, spec: TopicSpec(name: name, partitions: partitions, cleanup: cleanup), ownerField: ownerField)
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
