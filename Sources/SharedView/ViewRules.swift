import ConfigFiles
import EventSchemas
import Foundation

/// One kind of fact the shared view keeps: the topics its events come on, where in the body the
/// subject (resident ID or unified social credit code) is, and the named fields comparison rules read.
public struct FactKind: Sendable, Hashable {
    /// The name readers ask for, e.g. `household-record`.
    public var name: String
    /// The catalog topics whose events are facts of this kind.
    public var topics: [String]
    /// JSON pointer to the subject in the body, e.g. `/residentId`, `/owner/residentId`.
    public var subject: String
    /// JSON pointer to a qualifier: the view keeps the latest fact per subject and qualifier value
    /// (a scheme, a property). `nil`: one latest fact per subject.
    public var per: String?
    /// Named values for comparison rules: field name → JSON pointer into the body.
    public var fields: [String: String]
}

/// The fact kinds of `Rules/shared-view.yaml` (format: `Rules/README.md`).
///
/// ```swift
/// let rules = try ViewRules.load(path: "Rules/shared-view.yaml", catalog: catalog)
/// rules.kinds(onTopic: "household.death.registered")   // [death]
/// ```
public struct ViewRules: Sendable {
    /// The kinds by name.
    public let kinds: [String: FactKind]
    /// The file they were read from.
    public let file: String
    private let byTopic: [String: [FactKind]]

    /// The file in a rules directory.
    public static let fileName = "shared-view.yaml"

    public init(kinds: [FactKind], file: String) {
        self.kinds = Dictionary(uniqueKeysWithValues: kinds.map { ($0.name, $0) })
        self.file = file
        var byTopic: [String: [FactKind]] = [:]
        for kind in kinds.sorted(by: { $0.name < $1.name }) {
            for topic in kind.topics { byTopic[topic, default: []].append(kind) }
        }
        self.byTopic = byTopic
    }

    /// Every topic some kind reads, sorted.
    public var topics: [String] { byTopic.keys.sorted() }

    /// The kinds whose facts come on `topic`.
    public func kinds(onTopic topic: String) -> [FactKind] { byTopic[topic] ?? [] }

    /// Reads and checks the file: only known keys; kind names unique (YAML refuses a repeated key);
    /// every topic in the catalog; every pointer (`subject`, `per`, each field) a field of every
    /// schema on the kind's topics.
    /// - Throws: ``ConfigFileError`` with the file, line and what to change.
    public static func load(path: String, catalog: TopicCatalog) throws -> ViewRules {
        let root = try ConfigNode.load(path: path, hint: "run onewindow from the repository root or pass --rules")
            .mapping(keys: ["kinds"])
        let kindsNode = try root.require("kinds", "the fact kinds, name → topics and subject").mapping()
        var kinds: [FactKind] = []
        for entry in kindsNode.entries {
            let mapping = try entry.value.mapping(keys: ["topics", "subject", "per", "fields"])
            let topicsNode = try mapping.require("topics", "the catalog topics of this kind")
            let topicNodes = try topicsNode.list()
            if topicNodes.isEmpty { throw topicsNode.fail("expected at least one topic") }
            var topics: [String] = []
            for node in topicNodes {
                let name = try node.string()
                guard let topic = catalog.topic(named: name) else {
                    let hint = KeySuggestion.nearest(to: name, in: catalog.topics.map(\.name)).map { "; did you mean \($0)?" }
                    throw node.fail("no topic \(name) in the catalog\(hint ?? "")")
                }
                topics.append(topic.name)
            }
            func checkPointer(_ node: ConfigNode) throws -> String {
                let pointer = try node.string()
                guard pointer.hasPrefix("/") else { throw node.fail("expected a JSON pointer such as /residentId") }
                for topic in topics {
                    for type in catalog.topic(named: topic)?.types ?? [] {
                        guard let schema = catalog.schemas[type], schema.field(at: pointer) != nil else {
                            throw node.fail("\(pointer) is not a field of \(type) (Topics/schemas/\(type).json)")
                        }
                    }
                }
                return pointer
            }
            let subject = try checkPointer(try mapping.require("subject", "the pointer to the resident ID or credit code"))
            let per = try mapping["per"].map(checkPointer)
            var fields: [String: String] = [:]
            if let fieldsNode = mapping["fields"] {
                for field in try fieldsNode.mapping().entries { fields[field.key] = try checkPointer(field.value) }
            }
            kinds.append(FactKind(name: entry.key, topics: topics, subject: subject, per: per, fields: fields))
        }
        if kinds.isEmpty { throw kindsNode.node.fail("expected at least one kind") }
        return ViewRules(kinds: kinds, file: path)
    }
}
