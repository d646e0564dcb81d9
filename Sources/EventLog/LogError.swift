/// An error from a log backend: what failed, on which topic or record, and what to do.
///
/// Modelled on Kafka's error codes so that both backends report the same condition the same way;
/// `backendName` keeps the backend's own name for it (e.g. librdkafka's `_TRANSPORT`).
public struct LogError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure. Extensible: new codes can be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Value: String, Sendable {
            case unknownTopic, invalidTopic, invalidPartition, recordTooLarge, brokerUnreachable
            case authorizationFailed, groupBusy, invalidOffset, timedOut, closed, storage, configuration
            case backend
        }
        fileprivate let value: Value
        public var description: String { value.rawValue }

        /// The topic does not exist: create it from the catalog (`onewindow topics apply`).
        public static let unknownTopic = Code(value: .unknownTopic)
        /// A topic name or partition count is not valid.
        public static let invalidTopic = Code(value: .invalidTopic)
        /// The partition number is outside the topic's partitions.
        public static let invalidPartition = Code(value: .invalidPartition)
        /// The record is larger than the log accepts.
        public static let recordTooLarge = Code(value: .recordTooLarge)
        /// No broker could be reached.
        public static let brokerUnreachable = Code(value: .brokerUnreachable)
        /// The credentials or ACLs do not allow the operation.
        public static let authorizationFailed = Code(value: .authorizationFailed)
        /// The consumer group has active members, so its offsets cannot be moved now.
        public static let groupBusy = Code(value: .groupBusy)
        /// An offset outside the log.
        public static let invalidOffset = Code(value: .invalidOffset)
        /// The operation did not finish in time.
        public static let timedOut = Code(value: .timedOut)
        /// The log or consumer was used after it was closed.
        public static let closed = Code(value: .closed)
        /// The storage (the SQLite file) failed: disk full, locked, corrupt.
        public static let storage = Code(value: .storage)
        /// A configuration value is missing or wrong.
        public static let configuration = Code(value: .configuration)
        /// Any other backend error; `backendName` says which.
        public static let backend = Code(value: .backend)
    }

    public var code: Code
    /// What failed, in a sentence.
    public var reason: String
    /// What to do about it, in a sentence; empty when there is nothing to add.
    public var remedy: String
    /// The topic, partition or group concerned, when there is one.
    public var subject: String?
    /// The backend's own name for the error, e.g. `RD_KAFKA_RESP_ERR__TRANSPORT` or `SQLITE_FULL`.
    public var backendName: String?
    /// Whether trying the same operation again later may succeed.
    public var isRetriable: Bool

    public init(
        _ code: Code, _ reason: String, remedy: String = "", subject: String? = nil, backendName: String? = nil,
        isRetriable: Bool = false
    ) {
        self.code = code
        self.reason = reason
        self.remedy = remedy
        self.subject = subject
        self.backendName = backendName
        self.isRetriable = isRetriable
    }

    public var description: String {
        var text = reason
        if let subject { text = "\(subject): " + text }
        if let backendName { text += " [\(backendName)]" }
        if !remedy.isEmpty { text += " — " + remedy }
        return text
    }

    /// The standard error for a missing topic.
    public static func unknownTopic(_ topic: String) -> LogError {
        LogError(
            .unknownTopic, "topic does not exist",
            remedy: "create it from the catalog with `onewindow topics apply`", subject: topic)
    }
}

/// Topic name rules shared by both backends (Kafka's: 1–249 characters of `[a-zA-Z0-9._-]`).
public enum TopicName {
    /// Throws ``LogError`` `.invalidTopic` when `name` is not a valid topic name.
    public static func validate(_ name: String) throws {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        guard !name.isEmpty, name.count <= 249, name != ".", name != "..", name.allSatisfy(allowed.contains) else {
            throw LogError(
                .invalidTopic, "invalid topic name",
                remedy: "use 1–249 characters of a-z, A-Z, 0-9, '.', '_' and '-'", subject: name)
        }
    }
}
