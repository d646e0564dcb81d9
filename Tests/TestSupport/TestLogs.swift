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
    return (try KafkaLog(configuration: configuration), broker)
}
