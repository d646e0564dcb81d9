import EventLog
import EventModel
import Foundation
import KafkaLog
import Testing

/// A broker that stops answering mid-stream and comes back: the idempotent producer neither loses
/// nor duplicates, and a consumer group resumes from its committed offsets.
///
/// The test broker keeps its log in memory (Tansu's `memory://` storage), so a killed and
/// restarted process would come back empty and prove nothing. Instead the test freezes the
/// broker's process (SIGSTOP) for several seconds — connections stall and requests time out, as
/// with a broker that is down — and thaws it (SIGCONT). It runs its own broker, so the shared one
/// of the other suites is never disturbed.
@Suite("Kafka broker outage", .serialized, .timeLimit(.minutes(3)))
struct BrokerOutageTests {
    @Test(.timeLimit(.minutes(3)))
    func producerAndConsumerRideOutAStoppedBroker() async throws {
        let broker = try await Task.detached { try TestBroker() }.value
        defer { broker.stop() }
        var configuration = KafkaConfiguration(bootstrapServers: [broker.address])
        configuration.properties["session.timeout.ms"] = "6000"
        configuration.properties["heartbeat.interval.ms"] = "500"
        configuration.properties["socket.timeout.ms"] = "3000"
        let log = try KafkaLog(configuration: configuration)
        let topic = "outage.records"
        try await log.createTopics([TopicSpec(name: topic, partitions: 3)])

        let total = 2000
        let producing = Task.detached {
            var positions: [RecordPosition] = []
            for start in stride(from: 0, to: total, by: 20) {
                let batch = (start..<min(start + 20, total)).map {
                    OutgoingRecord(topic: topic, key: "k\($0 % 13)", value: Data("record-\($0)".utf8))
                }
                positions += try await log.append(batch)
            }
            return positions
        }
        try await Task.sleep(for: .milliseconds(300))
        broker.freeze()
        try await Task.sleep(for: .seconds(4))
        broker.thaw()
        let positions = try await producing.value
        #expect(positions.count == total)

        // Every record is there once: read each partition to its end.
        var values: [String] = []
        for partition in 0..<3 {
            values += try await readAll(log, TopicPartition(topic, partition)).map { String(decoding: $0.value, as: UTF8.self) }
        }
        #expect(values.count == total, "nothing duplicated")
        #expect(Set(values) == Set((0..<total).map { "record-\($0)" }), "nothing lost")

        // A group consumes half, commits, the broker stops and comes back, a new member resumes.
        let group = "outage-group"
        let first = try await log.makeConsumer(.group(group, topics: [topic]))
        var seen: [LogRecord] = []
        let firstDeadline = Date().addingTimeInterval(60)
        while seen.count < total / 2 && Date() < firstDeadline {
            seen += try await first.poll(maxRecords: total / 2 - seen.count, timeout: .seconds(1))
        }
        try #require(seen.count == total / 2, "the first member read \(seen.count) of \(total / 2)")
        try await first.commit(seen)
        await first.close()
        broker.freeze()
        try await Task.sleep(for: .seconds(3))
        broker.thaw()
        let second = try await log.makeConsumer(.group(group, topics: [topic]))
        var rest: [LogRecord] = []
        let deadline = Date().addingTimeInterval(60)
        while seen.count + rest.count < total && Date() < deadline {
            rest += try await second.poll(maxRecords: 500, timeout: .seconds(1))
        }
        await second.close()
        #expect(seen.count + rest.count == total)
        #expect(Set(seen.map(\.position)).isDisjoint(with: Set(rest.map(\.position))), "resumed after the committed offsets")
        await log.close()
    }
}

func readAll(_ log: any EventLog, _ partition: TopicPartition) async throws -> [LogRecord] {
    var records: [LogRecord] = []
    var offset: Int64 = 0
    while true {
        let batch = try await log.read(partition, from: offset, maxRecords: 1000)
        guard let last = batch.last else { return records }
        records += batch
        offset = last.offset + 1
    }
}

/// A Tansu broker of the test's own on a free port (the binary `make test` installed).
final class TestBroker: Sendable {
    let process: Process
    let address: String

    init() throws {
        guard let tansu = ProcessInfo.processInfo.environment["ONEWINDOW_TEST_TANSU"] else {
            throw TestFailure("ONEWINDOW_TEST_TANSU is not set: run the tests with `make test`")
        }
        let port = try run("python3", ["-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        address = "127.0.0.1:\(port)"
        process = Process()
        process.executableURL = URL(fileURLWithPath: tansu)
        process.arguments = [
            "broker", "--listener-url", "tcp://\(address)", "--advertised-listener-url", "tcp://\(address)",
            "--storage-engine", "memory://tansu/",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<100 {
            if (try? run("python3", ["-c", "import socket; socket.create_connection(('127.0.0.1', \(port)), 0.2).close()"])) != nil {
                return
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        process.terminate()
        throw TestFailure("the outage test's own broker did not start on \(address)")
    }

    func freeze() { kill(process.processIdentifier, SIGSTOP) }
    func thaw() { kill(process.processIdentifier, SIGCONT) }
    /// Kills the broker and waits (at most five seconds) for it to be gone. `waitUntilExit` is
    /// not used: on Linux it spins a run loop that can hang when called off the main thread.
    func stop() {
        kill(process.processIdentifier, SIGCONT)
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<50 where process.isRunning { usleep(100_000) }
    }
}
