/// An error from a log backend: what failed, on which topic or record, and what to do.
///
/// Modelled on Kafka's error codes so that both backends report the same condition the same way;
/// `backendName` keeps the backend's own name for it (e.g. librdkafka's `_TRANSPORT`).
///
/// ## What a caller does with it
/// Long-running loops (connectors, the orchestrator) branch on two flags, set the same way by
/// both backends:
///
/// - ``isFatal``: the log or consumer that threw can never succeed again (it is closed, or the
///   Kafka producer hit a fatal error). Stop, close it, and exit non-zero so a supervisor restarts
///   the process (or open a new log). Fatal errors are never retriable.
/// - ``isRetriable``: the same call may succeed later; retry with backoff.
/// - neither: the call can never succeed as it is (a record too large, a missing topic, a wrong
///   configuration): do not retry it; dead-letter the record or report the error.
///
/// | Code | Retriable | Notes |
/// |------|-----------|-------|
/// | `brokerUnreachable` | yes | the broker is down or unreachable; retry with backoff |
/// | `timedOut` | yes | an append may have been written: retrying can duplicate (consumers dedupe by `ce_id`) |
/// | `groupBusy` | yes | a rebalance is in progress or the member lost its partitions: **poll again** before retrying a commit (its records are redelivered to their owner); `seekGroup` needs the group's consumers stopped |
/// | `storage` | `SQLITE_BUSY`, `SQLITE_LOCKED`, `SQLITE_FULL`: yes | disk full: free space (see `remedy`); other SQLite errors (read-only, corrupt): no |
/// | `backend` | as the backend says | librdkafka's retriable codes |
/// | `closed` | no, **fatal** | the log or consumer was closed (or the Kafka client destroyed) |
/// | `fatal` | no, **fatal** | the Kafka producer raised a fatal error (e.g. idempotence broken): it refuses every record from now on |
/// | `recordTooLarge` | no | the record is over the limit: dead-letter it |
/// | `unknownTopic`, `invalidTopic`, `invalidPartition`, `invalidOffset` | no | fix the input or run `onewindow topics apply` |
/// | `authorizationFailed`, `configuration` | no | fix the credentials or configuration |
/// | `logNotFound` | no | the embedded log file does not exist: create it with `onewindow topics apply` |
public struct LogError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure. Extensible: new codes can be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Value: String, Sendable {
            case unknownTopic, invalidTopic, invalidPartition, recordTooLarge, brokerUnreachable
            case authorizationFailed, groupBusy, invalidOffset, timedOut, closed, fatal, storage, configuration
            case logNotFound, backend
        }
        fileprivate let value: Value
        public var description: String { value.rawValue }

        /// The topic does not exist: create it from the catalog (`onewindow topics apply`).
        public static let unknownTopic = Code(value: .unknownTopic)
        /// A topic name or partition count is not valid.
        public static let invalidTopic = Code(value: .invalidTopic)
        /// The partition number is outside the topic's partitions.
        public static let invalidPartition = Code(value: .invalidPartition)
        /// The record is larger than the log accepts. Not retriable: the same record always fails.
        public static let recordTooLarge = Code(value: .recordTooLarge)
        /// No broker could be reached. Retriable.
        public static let brokerUnreachable = Code(value: .brokerUnreachable)
        /// The credentials or ACLs do not allow the operation.
        public static let authorizationFailed = Code(value: .authorizationFailed)
        /// The consumer group is rebalancing, this member no longer owns the partition, or the
        /// group has active members so its offsets cannot be moved now. Retriable: poll again
        /// (the rebalance completes inside `poll`), then retry.
        public static let groupBusy = Code(value: .groupBusy)
        /// An offset outside the log.
        public static let invalidOffset = Code(value: .invalidOffset)
        /// The operation did not finish in time. Retriable.
        public static let timedOut = Code(value: .timedOut)
        /// The log or consumer was used after it was closed. Fatal.
        public static let closed = Code(value: .closed)
        /// The client hit an unrecoverable error (librdkafka's fatal producer error) and refuses
        /// every further operation. Fatal: close it and open a new one (restart the process).
        public static let fatal = Code(value: .fatal)
        /// The storage (the SQLite file) failed: disk full, locked, corrupt.
        public static let storage = Code(value: .storage)
        /// A configuration value is missing or wrong.
        public static let configuration = Code(value: .configuration)
        /// The embedded log file does not exist and was opened without creating it
        /// (``EmbeddedLogConfiguration``'s `createIfMissing` is false).
        public static let logNotFound = Code(value: .logNotFound)
        /// Any other backend error; `backendName` says which.
        public static let backend = Code(value: .backend)

        /// Whether an error of this code is retriable unless its thrower says otherwise.
        public var isRetriableByDefault: Bool {
            switch value {
            case .brokerUnreachable, .timedOut, .groupBusy: true
            default: false
            }
        }

        /// Whether an error of this code means the client can never succeed again.
        public var isFatal: Bool { value == .closed || value == .fatal }
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
    /// Whether trying the same operation again later may succeed (see the table above). Never
    /// true for a fatal error.
    public var isRetriable: Bool {
        get { retriable && !isFatal }
        set { retriable = newValue }
    }
    private var retriable: Bool

    /// Whether the log or consumer that threw can never succeed again: it is closed, or its
    /// Kafka client hit a fatal error. A long-running process stops, closes it, and exits
    /// non-zero so its supervisor restarts it. Derived from ``code`` (`.closed`, `.fatal`).
    public var isFatal: Bool { code.isFatal }

    /// - Parameter isRetriable: `nil` takes the code's default (``Code/isRetriableByDefault``).
    public init(
        _ code: Code, _ reason: String, remedy: String = "", subject: String? = nil, backendName: String? = nil,
        isRetriable: Bool? = nil
    ) {
        self.code = code
        self.reason = reason
        self.remedy = remedy
        self.subject = subject
        self.backendName = backendName
        self.retriable = isRetriable ?? code.isRetriableByDefault
    }

    public var description: String {
        var text = reason
        if let subject { text = "\(subject): " + text }
        if let backendName { text += " [\(backendName)]" }
        if !remedy.isEmpty { text += " — " + remedy }
        return text
    }

    /// The standard error for a log or consumer used after `close()`.
    public static func closed(_ what: String = "the log", subject: String? = nil) -> LogError {
        LogError(
            .closed, "\(what) is closed", remedy: "open the bus again (a closed log or consumer cannot be reused)",
            subject: subject)
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
