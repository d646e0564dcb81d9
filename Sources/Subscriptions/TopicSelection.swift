import AccessControl
import EventLog

/// What a subscriber reads: named topics, or every topic whose name matches a pattern.
///
/// A pattern is written like a grant's (`approval.tax.*`): `*` stands for any run of characters
/// (dots included), every other character for itself, and it must match the whole name. Topics
/// created after a subscription opened join it when they match (see
/// ``SubscriptionHub/Configuration/topicRefresh``).
public enum TopicSelection: Sendable, Hashable, CustomStringConvertible {
    /// These topics; each must exist.
    case topics([String])
    /// Every topic whose whole name matches this pattern.
    case pattern(String)

    /// Whether `topic` belongs to the selection.
    public func matches(_ topic: String) -> Bool {
        switch self {
        case .topics(let names): names.contains(topic)
        case .pattern(let pattern): TopicPattern.matches(pattern, topic)
        }
    }

    public var description: String {
        switch self {
        case .topics(let names): "topics \(names.joined(separator: ","))"
        case .pattern(let pattern): "pattern \(pattern)"
        }
    }
}

/// A topic of a subscription as the log has it now.
public struct SubscribedTopic: Sendable, Hashable {
    public var name: String
    /// The watermarks of each partition when the topic was resolved, indexed by partition number.
    public var watermarks: [Watermarks]

    public init(name: String, watermarks: [Watermarks]) {
        self.name = name
        self.watermarks = watermarks
    }

    /// The topic's partitions.
    public var partitions: [TopicPartition] { watermarks.indices.map { TopicPartition(name, $0) } }
}

extension TopicSelection {
    /// The topics the selection means in `log` now, sorted by name.
    /// - Throws: ``LogError`` `.unknownTopic` naming a listed topic that does not exist, or the
    ///   log's error.
    public func resolve(in log: any EventLog) async throws -> [SubscribedTopic] {
        let names: [String]
        switch self {
        case .topics(let listed):
            names = Array(Set(listed)).sorted()
        case .pattern:
            names = try await log.listTopics().filter { matches($0) }
        }
        if names.isEmpty { return [] }
        let described = try await log.describeTopics(names)
        let byName = Dictionary(described.map { ($0.name, $0.partitions) }, uniquingKeysWith: { first, _ in first })
        if case .topics = self {
            for name in names where byName[name] == nil {
                throw LogError(
                    .unknownTopic, "the subscription names a topic the log does not have",
                    remedy: "check the name against `onewindow topics list`", subject: name)
            }
        }
        return names.compactMap { name in byName[name].map { SubscribedTopic(name: name, watermarks: $0) } }
    }
}
