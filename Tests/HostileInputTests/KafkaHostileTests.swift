import Bus
import EventLog
import EventSchemas
import Foundation
import KafkaLog
import Testing
import TestSupport

/// The validated publisher's corpus run on the Kafka test broker, and a Python reader with
/// confluent-kafka (Tests/HostileInput/read-kafka.py) that must decode every record the hub
/// accepted — value as JSON, `ce_*` headers as UTF-8 — and count exactly as many. `make test`
/// sends every good record and every 4th bad one; `make reliability` the whole corpus.
@Suite("Hostile input on the Kafka backend", .timeLimit(.minutes(5)))
struct HostileKafkaTests {
    @Test func theValidatedPublisherOnKafkaAndAPythonReaderOfEveryAcceptedRecord() async throws {
        guard let bootstrap = ProcessInfo.processInfo.environment["ONEWINDOW_TEST_KAFKA"] else {
            print(
                "skipped: ONEWINDOW_TEST_KAFKA is not set, so there is no Kafka test broker; run under "
                    + "scripts/with-test-broker.sh (make test does)")
            return
        }
        let started = ContinuousClock.now
        var configuration = KafkaConfiguration(bootstrapServers: bootstrap.split(separator: ",").map(String.init))
        configuration.properties["session.timeout.ms"] = "6000"
        configuration.properties["heartbeat.interval.ms"] = "500"
        let log = try KafkaLog(configuration: configuration)
        _ = try await log.createTopics(catalog.topicSpecs)
        // The broker is shared with other tests: this run's events carry ids of their own.
        let prefix = "hostile-kafka-\(UUID().uuidString.prefix(8).lowercased())-"
        let publisher = Publisher(log: log, catalog: catalog, name: "hostile-kafka-test")
        let records = HostileCorpus.records(entry: "event", to: "publisher", every: 4)
        var tally = Tally("validated publisher on Kafka")
        try await HostileInputTests.publish(records, through: publisher, tally: &tally, idPrefix: prefix)
        await log.close()

        let python = repositoryRoot.appendingPathComponent(".venv/bin/python").path
        let script = repositoryRoot.appendingPathComponent("Tests/HostileInput/read-kafka.py").path
        let topics = Set(HostileInputTests.eventTopics.values).sorted()
        let result = try await runProgram(
            FileManager.default.isExecutableFile(atPath: python) ? python : "python3", [script, bootstrap, prefix] + topics,
            timeout: .seconds(180))
        let answer = try? JSONValue.parse(result.output)
        #expect(result.status == 0 && answer != nil, "the Python reader failed (\(result.status)): \(String(decoding: result.error, as: UTF8.self).prefix(800))")
        tally.problems += answer?[pointer: "/problems"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let read = (answer?[pointer: "/read"]?.arrayValue ?? []).compactMap { entry -> (String, Int64, String)? in
            guard let topic = entry[pointer: "/0"]?.stringValue, let partition = entry[pointer: "/1"]?.int64Value,
                let id = entry[pointer: "/2"]?.stringValue
            else { return nil }
            return (topic, partition, id)
        }
        #expect(read.count == tally.accepted, "Python read \(read.count) records, the hub accepted \(tally.accepted)")
        // Every good record once, in corpus order within its partition.
        let good = HostileInputTests.goodIds(records).map { prefix + $0 }
        let rank = Dictionary(uniqueKeysWithValues: good.enumerated().map { ($1, $0) })
        var seen: [String: Int] = [:]
        var last: [String: Int] = [:]
        for (topic, partition, id) in read {
            seen[id, default: 0] += 1
            guard let position = rank[id] else { continue }
            if let before = last["\(topic)/\(partition)"], before > position {
                tally.problems.append("\(id) was read after a later good record on \(topic)/\(partition)")
            }
            last["\(topic)/\(partition)"] = position
        }
        for id in good where seen[id] != 1 { tally.problems.append("good record \(id) read \(seen[id] ?? 0) time(s)") }
        tally.check()
        print("\(tally); Python (confluent-kafka) read \(read.count)")
        try report("hostile-kafka", [tally], seconds: (ContinuousClock.now - started).seconds)
    }
}
