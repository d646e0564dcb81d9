import EventLog
import EventModel
import Foundation
import KafkaLog

/// The hub's Kafka backend on the same broker and the same number of records as
/// `Benchmarks/kafka-raw/raw_bench.c`, which produces from one thread with up to five requests
/// in flight and waits for every delivery report.
///
/// - Produce: batches of 1,000 records (`ONEWINDOW_BENCH_KAFKA_BATCH`), with up to eight
///   (`ONEWINDOW_BENCH_KAFKA_IN_FLIGHT`) `append`s in flight at once (as several
///   connectors and the orchestrator append concurrently); each append returns only when all its
///   delivery reports are in. One append at a time is latency-bound instead (one linger and one
///   round trip per batch), which measures the broker's latency, not the hub.
/// - Consume: a new group reads everything, batches of 1,000, timed from its first record as the
///   C program does (the group join is not part of the rate).
func benchKafka(bootstrap: String, records total: Int) async throws -> (produce: Double, consume: Double) {
    var configuration = KafkaConfiguration(bootstrapServers: [bootstrap])
    configuration.properties["session.timeout.ms"] = "6000"
    configuration.properties["heartbeat.interval.ms"] = "500"
    let log = try KafkaLog(configuration: configuration)
    let topic = "bench.hub.\(UUID().uuidString.prefix(8).lowercased())"
    try await log.createTopics([TopicSpec(name: topic, partitions: 6)])
    // The C program's producer is connected and has its idempotent producer id before its clock
    // starts (it created the topic): warm the hub's producer up the same way, off the clock.
    let warmUp = topic + ".warm-up"
    try await log.createTopics([TopicSpec(name: warmUp, partitions: 1)])
    _ = try await log.append(makeRecords(topic: warmUp, count: 1))
    let records = makeRecords(topic: topic, count: total)
    let environment = ProcessInfo.processInfo.environment
    let batchSize = Int(environment["ONEWINDOW_BENCH_KAFKA_BATCH"] ?? "") ?? 1000
    let inFlight = Int(environment["ONEWINDOW_BENCH_KAFKA_IN_FLIGHT"] ?? "") ?? 8
    let batches = stride(from: 0, to: total, by: batchSize).map { Array(records[$0..<min($0 + batchSize, total)]) }
    let clock = ContinuousClock()
    let start = clock.now
    try await withThrowingTaskGroup(of: Int.self) { group in
        var next = 0
        for _ in 0..<min(inFlight, batches.count) {
            let batch = batches[next]
            next += 1
            group.addTask { try await log.append(batch).count }
        }
        while try await group.next() != nil {
            if next < batches.count {
                let batch = batches[next]
                next += 1
                group.addTask { try await log.append(batch).count }
            }
        }
    }
    let produced = clock.now - start

    let consumer = try await log.makeConsumer(.group("bench-\(UUID().uuidString.prefix(8))", topics: [topic]))
    var seen = 0
    var first: ContinuousClock.Instant?
    while seen < total {
        let batch = try await consumer.poll(maxRecords: 1000, timeout: .seconds(1))
        if !batch.isEmpty, first == nil { first = clock.now }
        seen += batch.count
    }
    let consumed = clock.now - (first ?? start)
    await consumer.close()
    await log.close()
    func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
    return (Double(total) / seconds(produced), Double(total - 1) / seconds(consumed))
}
