import EmbeddedLog
import EventLog
import Foundation
import KafkaLog

/// A log for a service test: an embedded log in `directory`, or a Kafka test broker of the test's
/// own (a service reads every department's topic, and on the broker other tests share it would
/// read their records), with the short group session that makes a join take seconds, not 23.
/// - Returns: the log and the broker to stop (`nil` for the embedded log).
public func serviceTestLog(in directory: URL, kafka: Bool) throws -> (log: any EventLog, broker: TestBroker?) {
    guard kafka else {
        return (try EmbeddedLog(path: directory.appendingPathComponent("bus.sqlite").path), nil)
    }
    let broker = try TestBroker()
    var configuration = KafkaConfiguration(bootstrapServers: ["127.0.0.1:\(broker.port)"])
    configuration.properties["session.timeout.ms"] = "6000"
    configuration.properties["heartbeat.interval.ms"] = "500"
    // If the client cannot be made, the broker is released here, and its deinit stops it.
    return (try KafkaLog(configuration: configuration), broker)
}

/// A bus for a service test in a folder of its own: the folder (`prefix`, a dash and 8 random
/// characters, in the temporary directory) with ``serviceTestLog(in:kafka:)`` in it and `topics`
/// created. A failure (no broker configured, one that does not start) removes the folder before it
/// throws, as the test bench's deinit, which removes it otherwise, does not run for an init that
/// throws; a broker started by then is released, and its deinit stops it.
public func serviceTestBus(prefix: String, kafka: Bool, topics: [TopicSpec]) async throws
    -> (directory: URL, log: any EventLog, broker: TestBroker?)
{
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    do {
        let (log, broker) = try serviceTestLog(in: directory, kafka: kafka)
        _ = try await log.createTopics(topics)
        return (directory, log, broker)
    } catch {
        try? FileManager.default.removeItem(at: directory)
        throw error
    }
}
