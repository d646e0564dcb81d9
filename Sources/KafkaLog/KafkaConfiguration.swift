import EventLog
import Foundation
import Logging

/// How the Kafka backend reaches and uses a cluster.
///
/// ```swift
/// var configuration = KafkaConfiguration(bootstrapServers: ["kafka-1:9092", "kafka-2:9092"])
/// configuration.properties["security.protocol"] = "SASL_SSL"
/// configuration.properties["sasl.mechanisms"] = "SCRAM-SHA-512"
/// configuration.properties["sasl.username"] = "onewindow-orchestrator"
/// configuration.properties["sasl.password"] = password
/// configuration.properties["ssl.ca.location"] = "/etc/onewindow/ca.pem"
/// let log = try KafkaLog(configuration: configuration)
/// ```
public struct KafkaConfiguration: Sendable {
    /// `host:port` of one or more brokers to bootstrap from.
    public var bootstrapServers: [String]
    /// Any librdkafka property, passed through unchanged (security, timeouts, tuning); these win
    /// over OneWindow's defaults. See librdkafka's CONFIGURATION.md.
    /// Default: empty.
    public var properties: [String: String]
    /// The `client.id` brokers see in their logs and quotas. Default: `onewindow`.
    public var clientId: String
    /// The replication factor of topics the catalog creates; `-1` takes the broker's
    /// `default.replication.factor`. Default: -1.
    public var replicationFactor: Int
    /// How long admin and metadata calls wait for the cluster. Default: 10 seconds.
    public var requestTimeout: Duration
    /// How long ``KafkaLog/close()`` waits for records in flight to be acknowledged. Records still
    /// unacknowledged then are purged: their appends throw (`.brokerUnreachable` when they were
    /// never sent, with "may have been written" when they were sent). Default: 10 seconds.
    public var closeTimeout: Duration
    /// librdkafka's own log lines: `nil` has librdkafka log up to info level (syslog 6: errors
    /// such as a refused connection, warnings, notices); `"1"` also its debug lines; a list such
    /// as `"broker,topic,msg"` (or `"all"`) also turns on those debug contexts (librdkafka's
    /// `debug` property). The lines go to ``logger``. Default: the `ONEWINDOW_KAFKA_DEBUG`
    /// environment variable.
    public var debug: String?
    /// Where librdkafka's own log lines go, through swift-log (levels mapped from syslog's:
    /// 3 error, 4 warning, 5 notice, 6 info, 7 debug); the logger's level filters them. `nil`: a
    /// logger labelled `onewindow.kafka.librdkafka`, made from the bootstrapped logging system
    /// when each client is made. Default: `nil`.
    public var logger: Logger?

    public init(bootstrapServers: [String]) {
        self.bootstrapServers = bootstrapServers
        self.properties = [:]
        self.clientId = "onewindow"
        self.replicationFactor = -1
        self.requestTimeout = .seconds(10)
        self.closeTimeout = .seconds(10)
        let debug = ProcessInfo.processInfo.environment["ONEWINDOW_KAFKA_DEBUG"]
        self.debug = debug?.isEmpty == false && debug != "0" ? debug : nil
        self.logger = nil
    }

    /// The logger of librdkafka's own lines.
    var librdkafkaLogger: Logger { logger ?? Logger(label: "onewindow.kafka.librdkafka") }

    /// The one conversion to librdkafka's property dictionary, for a producer.
    ///
    /// Idempotent producing (`enable.idempotence=true`, which implies `acks=all`): a retried
    /// batch is written once. `partitioner=murmur2_random` is the Java client's default, so a key
    /// lands in the same partition as with the embedded backend and with Java producers.
    var producerProperties: [String: String] {
        var result = common
        result["enable.idempotence"] = "true"
        result["acks"] = "all"
        result["partitioner"] = "murmur2_random"
        result["linger.ms"] = "1"
        result["message.timeout.ms"] = "120000"
        return result.merging(properties.filter { !Self.consumerOnly.contains($0.key) }) { _, user in user }
    }

    /// The properties of a consumer: offsets are stored and committed only when the caller says so.
    func consumerProperties(group: String, reset: String) -> [String: String] {
        var result = common
        result["group.id"] = group
        result["enable.auto.commit"] = "false"
        result["enable.auto.offset.store"] = "false"
        result["auto.offset.reset"] = reset
        result["allow.auto.create.topics"] = "false"
        result["topic.metadata.refresh.interval.ms"] = "5000"
        return result.merging(properties.filter { !Self.producerOnly.contains($0.key) }) { _, user in user }
    }

    private var common: [String: String] {
        var result = [
            "bootstrap.servers": bootstrapServers.joined(separator: ","),
            "client.id": clientId,
            "log.connection.close": "false",
            // syslog levels: 6 = up to info (librdkafka's default); 7 = debug too. The lines go
            // through swift-log (LibrdkafkaLogging), whose level filters them further.
            "log_level": debug == nil ? "6" : "7",
        ]
        if let debug, debug != "1" { result["debug"] = debug }
        return result
    }

    static let consumerOnly: Set<String> = [
        "group.id", "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms", "auto.offset.reset",
        "enable.auto.commit", "enable.auto.offset.store", "auto.commit.interval.ms", "partition.assignment.strategy",
        "group.instance.id", "fetch.min.bytes", "fetch.wait.max.ms", "fetch.max.bytes", "isolation.level",
        "allow.auto.create.topics", "queued.min.messages", "group.protocol",
    ]

    static let producerOnly: Set<String> = [
        "enable.idempotence", "acks", "partitioner", "linger.ms", "message.timeout.ms", "batch.size",
        "compression.type", "queue.buffering.max.messages", "queue.buffering.max.kbytes",
    ]

    /// ``requestTimeout`` in librdkafka's milliseconds (a fraction of a second kept: 500 ms is 500).
    var timeoutMilliseconds: Int32 { Int32(clamping: requestTimeout.milliseconds) }
}
