import Foundation

/// A record header: a name and opaque bytes, as on a Kafka record.
public struct LogHeader: Sendable, Hashable {
    /// The header name, e.g. `ce_type`.
    public var name: String
    /// The header value bytes (UTF-8 text for every header OneWindow writes).
    public var value: Data

    public init(name: String, value: Data) {
        self.name = name
        self.value = value
    }

    /// A header whose value is UTF-8 text, its bytes copied in one go (`Data(text.utf8)` copies
    /// byte by byte: a dead letter's five `dl_*` headers showed in a flood's profile).
    public init(name: String, text: String) {
        var text = text
        self.init(
            name: name,
            value: text.withUTF8 { bytes in bytes.isEmpty ? Data() : Data(bytes: bytes.baseAddress!, count: bytes.count) })
    }

    /// The value decoded as UTF-8, or `nil` when it is not valid UTF-8.
    public var text: String? { String(data: value, encoding: .utf8) }
}

/// A record to append: the backend chooses the partition from the key unless one is given.
public struct OutgoingRecord: Sendable, Hashable {
    /// The topic to append to.
    public var topic: String
    /// The record key: the entity whose order matters. `nil` spreads records over partitions.
    public var key: Data?
    /// The record value (the event body).
    public var value: Data
    /// Headers, in order.
    public var headers: [LogHeader]
    /// An explicit partition; `nil` (the default) lets the key choose with ``Partitioner/murmur2``.
    public var partition: Int?
    /// The record's create time; `nil` (the default) means "now" on the log's clock.
    public var timestamp: Date?

    public init(
        topic: String, key: Data?, value: Data, headers: [LogHeader] = [], partition: Int? = nil,
        timestamp: Date? = nil
    ) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition
        self.timestamp = timestamp
    }

    /// A record whose key is UTF-8 text.
    public init(
        topic: String, key: String?, value: Data, headers: [LogHeader] = [], partition: Int? = nil,
        timestamp: Date? = nil
    ) {
        self.init(
            topic: topic, key: key.map { Data($0.utf8) }, value: value, headers: headers, partition: partition,
            timestamp: timestamp)
    }
}

/// A record as stored in the log, with its position.
public struct LogRecord: Sendable, Hashable {
    public var topic: String
    public var partition: Int
    /// The record's offset within its partition; offsets only grow, and may have gaps after compaction.
    public var offset: Int64
    /// The record's create time, millisecond precision.
    public var timestamp: Date
    public var key: Data?
    public var value: Data
    public var headers: [LogHeader]

    public init(
        topic: String, partition: Int, offset: Int64, timestamp: Date, key: Data?, value: Data,
        headers: [LogHeader]
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers
    }

    /// The key decoded as UTF-8.
    public var keyString: String? { key.flatMap { String(data: $0, encoding: .utf8) } }

    /// The value of the first header with this name, as UTF-8 text.
    public func header(_ name: String) -> String? {
        headers.first { $0.name == name }?.text
    }

    /// Where this record stands.
    public var position: RecordPosition { RecordPosition(topic: topic, partition: partition, offset: offset) }
}

/// One partition of one topic.
public struct TopicPartition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int

    public init(_ topic: String, _ partition: Int) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (lhs: TopicPartition, rhs: TopicPartition) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }

    public var description: String { "\(topic)[\(partition)]" }
}

/// Where an appended record landed.
public struct RecordPosition: Sendable, Hashable, CustomStringConvertible {
    public var topic: String
    public var partition: Int
    public var offset: Int64

    public init(topic: String, partition: Int, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    public var topicPartition: TopicPartition { TopicPartition(topic, partition) }
    public var description: String { "\(topic)[\(partition)]@\(offset)" }
}

/// The low and high watermarks of a partition.
public struct Watermarks: Sendable, Hashable {
    /// The first offset still in the log (the log start offset).
    public var low: Int64
    /// The offset the next appended record will get (the high-water mark).
    public var high: Int64

    public init(low: Int64, high: Int64) {
        self.low = low
        self.high = high
    }
}
