import EventLog
import EventModel
import Foundation
import KafkaLog
import Synchronization
import Testing
import TestSupport

/// A broker that becomes unreachable mid-stream and comes back: the idempotent producer neither
/// loses nor duplicates, a consumer group resumes from its committed offsets, and a log closed
/// during an outage fails its pending appends instead of hanging.
///
/// Why a proxy: the test broker (Tansu) keeps its log only in memory (`memory://`; its `sqlite://`
/// storage is not built in), so a killed and restarted broker comes back empty and proves
/// nothing, and freezing its process (SIGSTOP) keeps the TCP connections open, so reconnecting is
/// never exercised. Instead the test runs its own broker behind a small TCP proxy on loopback and
/// tells the broker to advertise the proxy's address (`--advertised-listener-url`), so every
/// connection the clients make, bootstrap and metadata alike, goes through the proxy. A cut
/// closes every connection and refuses new ones (the listening socket is closed); a restore
/// listens again. From the clients' side that is a broker that went away and came back.
@Suite("Kafka broker outage", .serialized, .timeLimit(.minutes(5)))
struct BrokerOutageTests {
    static let total = 3000

    @Test(.timeLimit(.minutes(5)))
    func producerAndConsumerRideOutAnUnreachableBroker() async throws {
        let proxyPort = freePort()
        let broker = try await Task.detached { try TestBroker(advertisedPort: proxyPort) }.value
        defer { broker.stop() }
        let proxy = try await Task.detached { try TestProxy(port: proxyPort, target: broker.port) }.value
        defer { proxy.stop() }
        var configuration = KafkaConfiguration(bootstrapServers: ["127.0.0.1:\(proxyPort)"])
        configuration.properties["session.timeout.ms"] = "6000"
        configuration.properties["heartbeat.interval.ms"] = "500"
        configuration.properties["socket.timeout.ms"] = "3000"
        configuration.properties["reconnect.backoff.max.ms"] = "1000"
        // Records wait 100 ms in the producer before they are sent, so at the cut some appends
        // are certainly unanswered (on loopback an answer otherwise comes within a millisecond or
        // two, and an append whose answer is already in the client's socket completes anyway).
        configuration.properties["linger.ms"] = "100"
        let log = try KafkaLog(configuration: configuration)
        let topic = "outage.records"
        try await log.createTopics([TopicSpec(name: topic, partitions: 3)])

        // 1. Four writers append batches of 20 events; the broker goes away while they do.
        let inFlight = InFlightAppends()
        let producing = Task.detached {
            try await withThrowingTaskGroup(of: [RecordPosition].self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        var positions: [RecordPosition] = []
                        for start in stride(from: writer * 20, to: Self.total, by: 80) {
                            let batch = (start..<min(start + 20, Self.total)).map { Self.record($0, topic: topic) }
                            let id = inFlight.begin()
                            positions += try await log.append(batch)
                            inFlight.end(id)
                        }
                        return positions
                    }
                }
                var all: [RecordPosition] = []
                for try await positions in group { all += positions }
                return all
            }
        }
        while inFlight.finished < 10 { try await Task.sleep(for: .milliseconds(20)) }
        try await proxy.cut()
        let pendingAtCut = inFlight.pending
        try #require(!proxy.accepts(), "the cut refuses connections")
        try await Task.sleep(for: .seconds(1))
        let stillPending = pendingAtCut.intersection(inFlight.pending)
        #expect(!stillPending.isEmpty, "appends started before the cut were still unresolved a second into it")
        try await Task.sleep(for: .seconds(4))
        try await proxy.restore()
        #expect(proxy.accepts(), "the proxy accepts connections again")
        let positions = try await producing.value
        #expect(positions.count == Self.total)
        #expect(Set(positions).count == Self.total, "every record got its own position")

        // Every record is there exactly once: count by ce_id through a fresh group.
        let counter = try await log.makeConsumer(.group("outage-count", topics: [topic]))
        let everything = try await pollUntil(counter, count: Self.total + 1, quietAfter: Self.total)
        await counter.close()
        var counts: [String: Int] = [:]
        for record in everything { counts[ceID(record), default: 0] += 1 }
        #expect(counts.count == Self.total, "nothing lost: \(counts.count) of \(Self.total) ids")
        #expect(counts.values.allSatisfy { $0 == 1 }, "nothing duplicated: \(counts.filter { $0.value > 1 }.count) ids twice")

        // 2. A group member consumes half and commits; the broker goes away longer than the
        //    session timeout while the member is open; it resumes from the committed offsets.
        let group = "outage-group"
        let member = try await log.makeConsumer(.group(group, topics: [topic]))
        let seen = try await pollUntil(member, count: Self.total / 2)
        try #require(seen.count == Self.total / 2, "the member read \(seen.count) of \(Self.total / 2)")
        try await member.commit(seen)
        let committed = try await log.committedOffsets(group: group, topics: [topic])
        try await proxy.cut()
        try await Task.sleep(for: .seconds(8))
        try await proxy.restore()
        let rest = try await pollUntil(member, count: Self.total - seen.count, quietAfter: Self.total - seen.count)
        await member.close()
        let seenIDs = Set(seen.map(ceID))
        #expect(Set(rest.map(ceID)).isDisjoint(with: seenIDs), "nothing committed was delivered again")
        #expect(seenIDs.union(rest.map(ceID)).count == Self.total, "the rest arrived")
        for partition in 0..<3 {
            let tp = TopicPartition(topic, partition)
            if let first = rest.filter({ $0.partition == partition }).map(\.offset).min() {
                #expect(first == committed[tp] ?? 0, "partition \(partition) resumed at its committed offset")
            }
        }

        // 3. Closing during an outage: pending appends fail with a clear error instead of hanging.
        var closing = configuration
        closing.closeTimeout = .seconds(2)
        let doomed = try KafkaLog(configuration: closing)
        #expect(try await doomed.listTopics().contains(topic))  // learns the topic before the cut
        try await proxy.cut()
        let started = Task.detached { () -> [Result<[RecordPosition], any Error>] in
            await withTaskGroup(of: Result<[RecordPosition], any Error>.self) { group in
                for index in 0..<4 {
                    group.addTask {
                        do {
                            return .success(try await doomed.append([Self.record(Self.total + index, topic: topic)]))
                        } catch {
                            return .failure(error)
                        }
                    }
                }
                var results: [Result<[RecordPosition], any Error>] = []
                for await result in group { results.append(result) }
                return results
            }
        }
        try await Task.sleep(for: .milliseconds(500))
        await doomed.close()
        let results = await started.value
        #expect(results.count == 4, "every pending append finished")
        for result in results {
            guard case .failure(let error) = result else {
                Issue.record("an append succeeded while the broker was unreachable")
                continue
            }
            let logError = try #require(error as? LogError, "\(error)")
            #expect(logError.code == .closed, "\(logError)")
            #expect(logError.description.contains("written"), "says whether it may have been written: \(logError)")
        }
        try await proxy.restore()
        await log.close()
    }

    static func record(_ index: Int, topic: String) -> OutgoingRecord {
        OutgoingRecord(
            topic: topic, key: "k\(index % 13)", value: Data("record-\(index)".utf8),
            headers: [LogHeader(name: "ce_id", text: "record-\(index)")])
    }
}

private func ceID(_ record: LogRecord) -> String {
    record.headers.first { $0.name == "ce_id" }?.text ?? "?"
}

/// Polls until `count` records arrived, or until `quietAfter` records arrived and a poll came back
/// empty, or a minute passed. Retriable errors while the broker is away are tolerated.
private func pollUntil(_ consumer: any LogConsumer, count: Int, quietAfter: Int? = nil) async throws -> [LogRecord] {
    var records: [LogRecord] = []
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: .seconds(90))
    while records.count < count && clock.now < deadline {
        do {
            let batch = try await consumer.poll(maxRecords: count - records.count, timeout: .seconds(1))
            if batch.isEmpty, let quietAfter, records.count >= quietAfter { break }
            records += batch
        } catch let error as LogError where error.isRetriable {
            try await Task.sleep(for: .milliseconds(200))
        }
    }
    return records
}

/// Appends started and not finished yet, by id.
final class InFlightAppends: Sendable {
    private struct State {
        var next = 0
        var pending: Set<Int> = []
        var finished = 0
    }
    private let state = Mutex(State())

    func begin() -> Int {
        state.withLock { state in
            state.next += 1
            state.pending.insert(state.next)
            return state.next
        }
    }

    func end(_ id: Int) {
        state.withLock { state in
            state.pending.remove(id)
            state.finished += 1
        }
    }

    var pending: Set<Int> { state.withLock { $0.pending } }
    var finished: Int { state.withLock { $0.finished } }
}
