import EmbeddedLog
import EventLog
import Foundation
import KafkaLog
import Logging

/// Which bus a process talks to: `embedded:PATH` (the default) or `kafka:HOST:PORT[,HOST:PORT…]`.
///
/// Chosen by `--bus` or the `ONEWINDOW_BUS` variable. Kafka client properties (security, tuning)
/// come from a Java-style properties file named by `--kafka-config` or `ONEWINDOW_KAFKA_CONFIG`,
/// with librdkafka's property names (`security.protocol=SASL_SSL`, `sasl.mechanisms=SCRAM-SHA-512`…).
public enum BusAddress: Sendable, Hashable, CustomStringConvertible {
    /// The embedded SQLite log at this path.
    case embedded(path: String)
    /// A Kafka cluster reached through these bootstrap servers.
    case kafka(bootstrapServers: [String])

    /// The default when neither `--bus` nor `ONEWINDOW_BUS` says otherwise.
    public static let defaultAddress = BusAddress.embedded(path: "var/onewindow.sqlite")

    /// Parses `embedded:PATH` or `kafka:HOST:PORT,…`.
    ///
    /// The scheme is required: a bare word such as `bogus` or `var/x.sqlite` is refused rather than
    /// taken as a file path, so that a typo in `--bus` or `ONEWINDOW_BUS` is reported instead of
    /// naming a new, empty log.
    /// - Throws: ``BusAddressError`` naming what is wrong.
    public init(parsing text: String) throws {
        if text.hasPrefix("kafka:") {
            let servers = text.dropFirst("kafka:".count).split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard !servers.isEmpty, servers.allSatisfy({ $0.contains(":") && !$0.hasSuffix(":") }) else {
                throw BusAddressError(text: text, problem: "expected kafka:HOST:PORT[,HOST:PORT…]")
            }
            self = .kafka(bootstrapServers: servers)
        } else if text.hasPrefix("embedded:") {
            let path = String(text.dropFirst("embedded:".count))
            guard !path.isEmpty else { throw BusAddressError(text: text, problem: "expected embedded:PATH") }
            self = .embedded(path: path)
        } else if !text.isEmpty, !text.contains(":") || text.hasPrefix("/") {
            throw BusAddressError(
                text: text,
                problem: "a bus address needs its scheme: embedded:\(text) for a log file, or kafka:HOST:PORT[,HOST:PORT…]")
        } else {
            throw BusAddressError(text: text, problem: "expected embedded:PATH or kafka:HOST:PORT[,HOST:PORT…]")
        }
    }

    /// `--bus` if given, else `ONEWINDOW_BUS`, else ``defaultAddress``.
    public static func resolve(_ option: String?, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> BusAddress
    {
        if let option, !option.isEmpty { return try BusAddress(parsing: option) }
        if let variable = environment["ONEWINDOW_BUS"], !variable.isEmpty { return try BusAddress(parsing: variable) }
        return defaultAddress
    }

    public var description: String {
        switch self {
        case .embedded(let path): "embedded:\(path)"
        case .kafka(let servers): "kafka:" + servers.joined(separator: ",")
        }
    }

    /// Opens the log this address names.
    ///
    /// Only the commands that set a bus up (`topics apply`) and the long-running processes
    /// (connectors, department simulators, the demo) pass `create: true`; everything that reads or
    /// publishes passes `false`, so a mistyped path is reported instead of becoming a new, empty
    /// log (and its folder). A Kafka cluster is never created: `create` only matters for embedded.
    /// - Parameters:
    ///   - create: whether an embedded log that does not exist yet is created (with its folder).
    ///   - kafkaProperties: extra librdkafka properties (security, tuning) for a Kafka bus.
    ///   - embeddedConfiguration: settings for an embedded bus (clock, intervals).
    ///   - kafkaLogger: where librdkafka's own lines go, with its level; `nil`: the default
    ///     (`KafkaConfiguration.logger`).
    /// - Throws: ``LogError`` `.logNotFound` when `create` is false and there is no log at the path.
    public func open(
        create: Bool,
        kafkaProperties: [String: String] = [:],
        embeddedConfiguration: EmbeddedLogConfiguration = EmbeddedLogConfiguration(),
        kafkaLogger: Logger? = nil
    ) throws -> any EventLog {
        switch self {
        case .embedded(let path):
            var configuration = embeddedConfiguration
            configuration.createIfMissing = create
            return try EmbeddedLog(path: path, configuration: configuration)
        case .kafka(let servers):
            var configuration = KafkaConfiguration(bootstrapServers: servers)
            configuration.properties.merge(kafkaProperties) { _, new in new }
            if let kafkaLogger { configuration.logger = kafkaLogger }
            return try KafkaLog(configuration: configuration)
        }
    }
}

/// A bus address that cannot be understood.
public struct BusAddressError: Error, Sendable, CustomStringConvertible {
    /// The address (or file and line) concerned.
    public var text: String
    /// What is wrong and what would be right.
    public var problem: String

    public init(text: String, problem: String) {
        self.text = text
        self.problem = problem
    }

    public var description: String { "bus address '\(text)': \(problem)" }
}

/// Reads a Java-style properties file: `name=value` lines, `#` and `!` comments, blank lines.
public enum PropertiesFile {
    /// - Throws: an error naming the file and line of a malformed entry.
    public static func load(_ path: String) throws -> [String: String] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? "\(error)"
            throw BusAddressError(text: path, problem: "cannot read the Kafka properties file: \(reason)")
        }
        var result: [String: String] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("!") { continue }
            guard let separator = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
                throw BusAddressError(text: "\(path):\(number + 1)", problem: "expected name=value")
            }
            let name = line[..<separator].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: separator)...].trimmingCharacters(in: .whitespaces)
            result[name] = value
        }
        return result
    }
}
