import Foundation

/// How the Kafka backend reaches and uses a cluster.
///
/// Every librdkafka property can be passed through ``properties``; OneWindow sets only what its
/// semantics need (idempotent producing, murmur2 partitioning, explicit commits) and what makes
/// failures quick to see. A SASL/SCRAM cluster over TLS:
///
/// ```swift
/// var configuration = KafkaConfiguration(bootstrapServers: ["kafka-1:9093", "kafka-2:9093"])
/// configuration.properties["security.protocol"] = "SASL_SSL"
/// configuration.properties["sasl.mechanisms"] = "SCRAM-SHA-512"
/// configuration.properties["sasl.username"] = "onewindow-orchestrator"
/// configuration.properties["sasl.password"] = password
/// configuration.properties["ssl.ca.location"] = "/etc/onewindow/ca.pem"
/// let log = try KafkaLog(configuration: configuration)
/// ```
public struct KafkaConfiguration: Sendable {
    /// `host:port` of one or more brokers to bootstrap from (`bootstrap.servers`).
    /// Default: none; the initialiser takes them.
    public var bootstrapServers: [String]
    /// Any librdkafka property, passed through unchanged: security (`security.protocol`,
    /// `sasl.mechanisms`, `sasl.username`, `sasl.password`, `ssl.ca.location`, …), timeouts, tuning.
    /// These win over OneWindow's own settings, so they can also override them (at the price of the
    /// semantics those settings give). See librdkafka's CONFIGURATION.md.
    /// Default: empty.
    public var properties: [String: String]
    /// The `client.id` brokers see in their logs, metrics and quotas.
    /// Default: `onewindow`.
    public var clientId: String
    /// The replication factor of topics ``KafkaLog/createTopics(_:)`` creates; `-1` takes the
    /// broker's `default.replication.factor`.
    /// Default: -1.
    public var replicationFactor: Int
    /// How long metadata, admin, offset and watermark requests wait for the cluster before they
    /// fail with ``EventLog/LogError/Code/brokerUnreachable`` or `.timedOut`.
    /// Default: 10 seconds.
    public var requestTimeout: Duration
    /// librdkafka's debug contexts (its `debug` property, e.g. `broker,topic,msg` or `all`). When
    /// set, every librdkafka log line goes to standard error; otherwise only critical ones do (what
    /// matters to the caller arrives as a ``EventLog/LogError`` anyway, and a broker that is down
    /// would flood the logs). The environment variable `ONEWINDOW_KAFKA_DEBUG` sets it too.
    /// Default: `nil`.
    public var debug: String?

    /// A configuration with OneWindow's defaults for these brokers.
    /// - Parameter bootstrapServers: `host:port` of one or more brokers.
    public init(bootstrapServers: [String]) {
        self.bootstrapServers = bootstrapServers
        self.properties = [:]
        self.clientId = "onewindow"
        self.replicationFactor = -1
        self.requestTimeout = .seconds(10)
        self.debug = nil
    }
}

extension KafkaConfiguration {
    /// Which librdkafka handle the properties are for.
    enum Role {
        /// The appending producer.
        case producer
        /// A member of a consumer group (or a group-less reader when `group` is nil).
        case consumer(group: String?, reset: String)
        /// The client for metadata, watermarks and admin requests (never joins a group).
        case admin
        /// A short-lived reader of one partition at a time (`read(_:from:maxRecords:)`).
        case reader
    }

    /// The one conversion to librdkafka's property dictionary.
    ///
    /// - Producer: idempotent (`enable.idempotence=true`, which implies `acks=all` and at most five
    ///   requests in flight), so a retried batch is written once and in order;
    ///   `partitioner=murmur2_random`, the Java client's default, so a key lands in the same
    ///   partition as with the embedded backend and with Java producers; `linger.ms=5` batches
    ///   concurrent appends; each record's create time is set by the producer.
    /// - Consumers: offsets are stored and committed only when the caller commits
    ///   (`enable.auto.commit=false`, `enable.auto.offset.store=false`); topics are never created
    ///   by subscribing (`allow.auto.create.topics=false`); pattern subscriptions see new topics
    ///   within five seconds (`topic.metadata.refresh.interval.ms`).
    /// - Readers report the end of a partition (`enable.partition.eof=true`) and do not wait long
    ///   at the end of the log (`fetch.wait.max.ms=50`).
    func librdkafkaProperties(_ role: Role) -> [String: String] {
        var result: [String: String] = [
            "bootstrap.servers": bootstrapServers.joined(separator: ","),
            "client.id": clientId,
            "log.connection.close": "false",
            // Critical lines only, unless debugging (see `debug`).
            "log_level": effectiveDebug == nil ? "2" : "7",
        ]
        if let effectiveDebug { result["debug"] = effectiveDebug }
        switch role {
        case .producer:
            result["enable.idempotence"] = "true"
            result["acks"] = "all"
            result["partitioner"] = "murmur2_random"
            result["linger.ms"] = "5"
            result["message.timeout.ms"] = "120000"
            // Appending checks the topic exists first; a typo never creates a topic on a broker
            // with auto.create.topics.enable.
            result["allow.auto.create.topics"] = "false"
        case .consumer(let group, let reset):
            result["group.id"] = group ?? "onewindow-reader-\(UUID().uuidString)"
            result["enable.auto.commit"] = "false"
            result["enable.auto.offset.store"] = "false"
            result["auto.offset.reset"] = reset
            result["allow.auto.create.topics"] = "false"
            result["topic.metadata.refresh.interval.ms"] = "5000"
        case .admin:
            result["client.id"] = clientId + "-admin"
            // A consumer-type handle is needed for offsets and groups; it never subscribes.
            result["group.id"] = "onewindow-admin-\(UUID().uuidString)"
            result["enable.auto.commit"] = "false"
            result["allow.auto.create.topics"] = "false"
        case .reader:
            result["client.id"] = clientId + "-reader"
            result["group.id"] = "onewindow-reader-\(UUID().uuidString)"
            result["enable.auto.commit"] = "false"
            result["enable.auto.offset.store"] = "false"
            result["enable.partition.eof"] = "true"
            result["fetch.wait.max.ms"] = "50"
            // An offset outside the log is reported, never silently replaced by the log start.
            result["auto.offset.reset"] = "error"
            result["allow.auto.create.topics"] = "false"
        }
        let passed: [String: String]
        if case .producer = role {
            passed = properties.filter { !Self.consumerOnly.contains($0.key) }
        } else {
            passed = properties.filter { !Self.producerOnly.contains($0.key) }
        }
        return result.merging(passed) { _, user in user }
    }

    /// Producer properties that a consumer-type handle refuses or warns about.
    static let producerOnly: Set<String> = [
        "enable.idempotence", "acks", "request.required.acks", "partitioner", "linger.ms", "queue.buffering.max.ms",
        "message.timeout.ms", "batch.size", "batch.num.messages", "compression.type", "compression.codec",
        "queue.buffering.max.messages", "queue.buffering.max.kbytes", "retries", "message.send.max.retries",
        "max.in.flight.requests.per.connection", "max.in.flight", "transactional.id", "enable.gapless.guarantee",
    ]

    /// Consumer properties that a producer handle warns about.
    static let consumerOnly: Set<String> = [
        "group.id", "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms", "auto.offset.reset",
        "enable.auto.commit", "enable.auto.offset.store", "group.instance.id", "partition.assignment.strategy",
        "fetch.wait.max.ms", "fetch.min.bytes", "fetch.max.bytes", "max.partition.fetch.bytes",
        "group.protocol", "isolation.level", "enable.partition.eof", "check.crcs",
    ]

    /// `debug`, or the environment's `ONEWINDOW_KAFKA_DEBUG` (`1` meaning "log lines, no contexts").
    var effectiveDebug: String? {
        if let debug, !debug.isEmpty { return debug }
        guard let value = ProcessInfo.processInfo.environment["ONEWINDOW_KAFKA_DEBUG"], !value.isEmpty else {
            return nil
        }
        return value == "1" ? "generic" : value
    }

    /// ``requestTimeout`` in milliseconds, as librdkafka's calls take it.
    var timeoutMilliseconds: Int32 {
        let (seconds, attoseconds) = requestTimeout.components
        return Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }
}
