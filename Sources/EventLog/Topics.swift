import Foundation

/// How a topic gets rid of old records.
public enum CleanupPolicy: Sendable, Hashable {
    /// Records older than the retention are deleted; `nil` keeps them for ever.
    case delete(retention: Duration?)
    /// Only the latest record of each key survives (`cleanup.policy=compact`); records without a
    /// key are kept. Consumers may still see older values of a key until compaction has run.
    case compact
}

/// What a topic should look like: the part of the catalog a log needs.
public struct TopicSpec: Sendable, Hashable {
    /// The topic name, `<domain>.<entity>.<event>` in lower case.
    public var name: String
    /// The number of partitions. Records with the same key always land in the same one.
    public var partitions: Int
    /// Deletion or compaction.
    public var cleanup: CleanupPolicy

    public init(name: String, partitions: Int, cleanup: CleanupPolicy = .delete(retention: nil)) {
        self.name = name
        self.partitions = partitions
        self.cleanup = cleanup
    }

    /// The retention in milliseconds (rounded up), `nil` when records are kept for ever or the
    /// topic is compacted.
    public var retentionMilliseconds: Int64? {
        guard case .delete(let retention?) = cleanup else { return nil }
        return retention.milliseconds
    }
}

/// A topic as the log has it.
public struct TopicDescription: Sendable, Hashable {
    public var spec: TopicSpec
    /// The watermarks of each partition, indexed by partition number.
    public var partitions: [Watermarks]

    public init(spec: TopicSpec, partitions: [Watermarks]) {
        self.spec = spec
        self.partitions = partitions
    }

    public var name: String { spec.name }
}
