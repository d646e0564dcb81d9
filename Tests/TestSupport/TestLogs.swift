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
    do {
        return (try KafkaLog(configuration: configuration), broker)
    } catch {
        broker.stop()  // started, but nobody would hold it to stop it
        throw error
    }
}

/// A bus for a service test in a folder of its own: the folder (`prefix`, a dash and 8 random
/// characters, in the temporary directory) with ``serviceTestLog(in:kafka:)`` in it and `topics`
/// created. A failure (no broker configured, one that does not start) removes the folder and stops
/// the broker before it throws: the test bench's deinit, which removes them otherwise, does not run
/// for an init that throws.
public func serviceTestBus(prefix: String, kafka: Bool, topics: [TopicSpec]) async throws
    -> (directory: URL, log: any EventLog, broker: TestBroker?)
{
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    var broker: TestBroker?
    do {
        let (log, started) = try serviceTestLog(in: directory, kafka: kafka)
        broker = started
        _ = try await log.createTopics(topics)
        return (directory, log, broker)
    } catch {
        broker?.stop()
        try? FileManager.default.removeItem(at: directory)
        throw error
    }
}
