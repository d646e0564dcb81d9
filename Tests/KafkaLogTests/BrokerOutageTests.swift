import EventLog
import EventModel
import Foundation
import KafkaLog
import Synchronization
import Testing

/// A broker that goes away mid-stream and comes back: the idempotent producer neither loses nor
/// duplicates, and a consumer group resumes from its committed offsets.
///
/// The test broker keeps its log in memory (this Tansu build has no persistent storage engine:
/// `sqlite://` needs a feature it was built without, `postgres://` and `s3://` need servers), so a
/// killed and restarted broker process would come back empty and prove nothing. So the test runs
/// its own broker behind its own TCP relay, and clients know only the relay's address (it is the
/// advertised listener):
/// - **stopped and started again**: the relay is killed (every connection drops, new ones are
///   refused, exactly what clients see of a stopped broker) and started again on the same port
///   seconds later, while the broker keeps its data;
/// - **frozen**: the broker process is stopped with SIGSTOP (connections stall, requests time out
///   and are retried while the originals are still pending: the duplicate case idempotence is for)
///   and resumed with SIGCONT.
/// It never touches the shared broker of the other suites, which run in parallel.
@Suite("Kafka broker outage", .serialized, .timeLimit(.minutes(4)))
struct BrokerOutageTests {
    @Test func producerAndConsumerRideOutAStoppedBroker() async throws {
        let broker = try await TestBroker.start()
        defer { broker.stop() }
        var configuration = KafkaConfiguration(bootstrapServers: [broker.address])
        configuration.properties["session.timeout.ms"] = "6000"
        configuration.properties["heartbeat.interval.ms"] = "500"
        configuration.properties["socket.timeout.ms"] = "3000"
        configuration.properties["reconnect.backoff.max.ms"] = "500"
        let log = try KafkaLog(configuration: configuration)
        let topic = "outage.records"
        try await log.createTopics([TopicSpec(name: topic, partitions: 3)])

        // 2,000 records with distinct ids, in batches of 20, while the broker goes away twice.
        let total = 2000
        let appended = Counter()
        let producing = Task {
            var positions: [RecordPosition] = []
            for start in stride(from: 0, to: total, by: 20) {
                let batch = (start..<min(start + 20, total)).map {
                    OutgoingRecord(topic: topic, key: "k\($0 % 13)", value: Data("record-\($0)".utf8))
                }
                positions += try await log.append(batch)
                appended.value.store(positions.count, ordering: .relaxed)
                try await Task.sleep(for: .milliseconds(5))
            }
            return positions
        }
        // Let the producer get going (connect, get its producer id), then pull the plug.
        let started = ContinuousClock.now
        while appended.value.load(ordering: .relaxed) < 200 && ContinuousClock.now - started < .seconds(30) {
            try await Task.sleep(for: .milliseconds(10))
        }
        let beforeStop = appended.value.load(ordering: .relaxed)
        try broker.stopRelay()
        try await Task.sleep(for: .seconds(4))
        try await broker.startRelay()
        try await Task.sleep(for: .milliseconds(500))
        broker.freeze()
        try await Task.sleep(for: .seconds(4))
        broker.thaw()
        let positions = try await producing.value
        #expect(beforeStop > 0 && beforeStop < total, "the broker went away mid-stream (\(beforeStop) appended before)")
        #expect(positions.count == total)

        // Every record is there exactly once: read each partition to its end.
        var stored: [LogRecord] = []
        for partition in 0..<3 { stored += try await readAll(log, TopicPartition(topic, partition)) }
        let values = stored.map { String(decoding: $0.value, as: UTF8.self) }
        #expect(values.count == total, "nothing duplicated")
        #expect(Set(values) == Set((0..<total).map { "record-\($0)" }), "nothing lost")
        // And each append reported where its records really are.
        let actual = Dictionary(stored.map { (String(decoding: $0.value, as: UTF8.self), $0.position) }) { first, _ in first }
        let wrong = positions.enumerated().filter { actual["record-\($0.offset)"] != $0.element }
        // Known Tansu 0.6.0 quirk (docs/KAFKA.md): it answers a retried produce request that it
        // recognises as a duplicate with base offset -1, and librdkafka reports -1, 0, 1, … for
        // that request's records. The log itself is right (checked above); Apache Kafka answers
        // the original offsets. Only then are wrong positions tolerated, and only those.
        withKnownIssue("Tansu answers a deduplicated retry with base offset -1", isIntermittent: true) {
            #expect(wrong.isEmpty, "reported positions that are not the records' own: \(wrong.prefix(5).map { "record-\($0.offset) reported \($0.element), stored at \(actual["record-\($0.offset)"].map(\.description) ?? "nowhere")" })")
        } when: {
            positions.contains { $0.offset < 0 }
        }

        // A group consumes half and commits; the broker stops and starts again; a new member
        // resumes after the committed offsets.
        let group = "outage-group"
        let first = try await log.makeConsumer(.group(group, topics: [topic]))
        var seen: [LogRecord] = []
        let clock = ContinuousClock()
        var deadline = clock.now.advanced(by: .seconds(60))
        while seen.count < total / 2 && clock.now < deadline {
            seen += try await first.poll(maxRecords: total / 2 - seen.count, timeout: .seconds(1))
        }
        try #require(seen.count == total / 2)
        try await first.commit(seen)
        await first.close()
        let committed = try await log.committedOffsets(group: group, topics: [topic])

        try broker.stopRelay()
        try await Task.sleep(for: .seconds(3))
        try await broker.startRelay()
        #expect(try await log.committedOffsets(group: group, topics: [topic]) == committed)
        let second = try await log.makeConsumer(.group(group, topics: [topic]))
        var rest: [LogRecord] = []
        deadline = clock.now.advanced(by: .seconds(90))
        while seen.count + rest.count < total && clock.now < deadline {
            rest += try await second.poll(maxRecords: 500, timeout: .seconds(1))
        }
        await second.close()
        #expect(seen.count + rest.count == total)
        #expect(Set(seen.map(\.position)).isDisjoint(with: Set(rest.map(\.position))), "resumed after the committed offsets")
        for record in rest {
            #expect(record.offset >= committed[TopicPartition(record.topic, record.partition)] ?? 0)
        }
        await log.close()
    }
}

/// How many records the producing task has appended so far.
final class Counter: Sendable {
    let value = Atomic<Int>(0)
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

/// A Tansu broker of the test's own (the binary `make test` installed, ONEWINDOW_TEST_TANSU),
/// reachable only through a TCP relay that can be stopped and started again on the same port.
final class TestBroker: Sendable {
    let broker: Process
    let relay: Mutex<Process?>
    let brokerPort: Int
    let relayPort: Int
    /// The address clients use: the relay's, which the broker advertises.
    var address: String { "127.0.0.1:\(relayPort)" }

    private init(broker: Process, brokerPort: Int, relayPort: Int) {
        self.broker = broker
        self.brokerPort = brokerPort
        self.relayPort = relayPort
        self.relay = Mutex(nil)
    }

    static func start() async throws -> TestBroker {
        guard let tansu = ProcessInfo.processInfo.environment["ONEWINDOW_TEST_TANSU"] else {
            throw TestFailure("ONEWINDOW_TEST_TANSU is not set: run the tests with `make test`")
        }
        let (brokerPort, relayPort) = (try freePort(), try freePort())
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tansu)
        process.arguments = [
            "broker", "--listener-url", "tcp://127.0.0.1:\(brokerPort)",
            "--advertised-listener-url", "tcp://127.0.0.1:\(relayPort)", "--storage-engine", "memory://tansu/",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let broker = TestBroker(broker: process, brokerPort: brokerPort, relayPort: relayPort)
        do {
            try await waitForPort(brokerPort, what: "the outage test's own broker")
            try await broker.startRelay()
        } catch {
            broker.stop()
            throw error
        }
        return broker
    }

    /// Starts the relay on its port (the same port every time).
    func startRelay() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", relayScript, String(relayPort), String(brokerPort)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        relay.withLock { $0 = process }
        try await waitForPort(relayPort, what: "the outage test's relay")
    }

    /// Kills the relay: established connections drop, new ones are refused.
    func stopRelay() throws {
        guard let process = relay.withLock({ relay in defer { relay = nil }; return relay }) else { return }
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<50 where process.isRunning { usleep(100_000) }
    }

    func freeze() { kill(broker.processIdentifier, SIGSTOP) }
    func thaw() { kill(broker.processIdentifier, SIGCONT) }

    /// Kills relay and broker. SIGKILL: Tansu ignores SIGTERM while clients are connected, and its
    /// storage is memory. `waitUntilExit` is not used: on Linux it spins a run loop.
    func stop() {
        try? stopRelay()
        kill(broker.processIdentifier, SIGCONT)
        kill(broker.processIdentifier, SIGKILL)
        for _ in 0..<50 where broker.isRunning { usleep(100_000) }
    }
}



/// A TCP relay in Python's standard library: `python3 -c SCRIPT LISTEN_PORT TARGET_PORT`.
private let relayScript = """
    import asyncio, sys
    listen, target = int(sys.argv[1]), int(sys.argv[2])
    async def pipe(reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except Exception:
            pass
        finally:
            writer.close()
    async def handle(client_reader, client_writer):
        try:
            broker_reader, broker_writer = await asyncio.open_connection('127.0.0.1', target)
        except Exception:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, broker_writer), pipe(broker_reader, client_writer))
    async def main():
        server = await asyncio.start_server(handle, '127.0.0.1', listen, reuse_address=True)
        async with server:
            await server.serve_forever()
    asyncio.run(main())
    """

/// A free loopback port (bound and released at once).
func freePort() throws -> Int {
    let text = try run(
        "python3", ["-c", "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"])
    guard let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        throw TestFailure("no free port: \(text)")
    }
    return port
}

/// Waits (at most ten seconds) until something accepts connections on the port.
func waitForPort(_ port: Int, what: String) async throws {
    for _ in 0..<100 {
        let probe = "import socket; socket.create_connection(('127.0.0.1', \(port)), 0.2).close()"
        if (try? run("python3", ["-c", probe])) != nil { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw TestFailure("\(what) did not start on 127.0.0.1:\(port)")
}
