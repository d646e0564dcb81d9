import EventLog
import EventModel
import Foundation
import KafkaLog

struct BenchmarkFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The partitions of both benchmark topics, the hub's and `raw_bench`'s (passed to it).
let kafkaBenchPartitions = 6

/// The hub's Kafka backend on the same broker and the same records as `kafka-raw/raw_bench.c`:
/// appends in batches of 1,000 (each resolved by its delivery reports), then a new group consumes
/// them (timed from its first record, as the C program does).
func benchKafka(bootstrap: String, records total: Int) async throws -> (produce: Double, consume: Double) {
    var configuration = KafkaConfiguration(bootstrapServers: [bootstrap])
    configuration.properties["session.timeout.ms"] = "6000"
    configuration.properties["heartbeat.interval.ms"] = "500"
    let log = try KafkaLog(configuration: configuration)
    let topic = "bench.hub.\(UUID().uuidString.prefix(8).lowercased())"
    try await log.createTopics([TopicSpec(name: topic, partitions: kafkaBenchPartitions)])
    let records = makeRecords(topic: topic, count: total)
    // As raw_bench connects and has the topic's metadata before its clock starts: one record first,
    // so the producer's connection, idempotent-producer id and topic metadata are not timed.
    _ = try await log.append([records[0]])
    let batches = stride(from: 0, to: total, by: 1000).map { Array(records[$0..<min($0 + 1000, total)]) }
    let clock = ContinuousClock()
    let start = clock.now
    // Eight appends in flight, as concurrent publishers (or a publisher that pipelines) have;
    // the C program likewise never waits for one batch before producing the next.
    try await withThrowingTaskGroup(of: Void.self) { group in
        var next = 0
        for _ in 0..<min(8, batches.count) {
            let batch = batches[next]
            next += 1
            group.addTask { _ = try await log.append(batch) }
        }
        while try await group.next() != nil, next < batches.count {
            let batch = batches[next]
            next += 1
            group.addTask { _ = try await log.append(batch) }
        }
        try await group.waitForAll()
    }
    let produced = clock.now - start
    let consumer = try await log.makeConsumer(.group("bench-\(UUID().uuidString.prefix(8))", topics: [topic]))
    var seen = 0
    var first: ContinuousClock.Instant?
    let deadline = clock.now.advanced(by: .seconds(60))
    while seen < total + 1 {  // the warm-up record too
        guard clock.now < deadline else {
            throw BenchmarkFailure("the hub consumed \(seen) of \(total + 1) records within a minute")
        }
        let batch = try await consumer.poll(maxRecords: 1000, timeout: .seconds(1))
        if !batch.isEmpty, first == nil { first = clock.now }
        seen += batch.count
    }
    let consumed = clock.now - first!
    await consumer.close()
    await log.close()
    func seconds(_ duration: Duration) -> Double {
        duration.seconds
    }
    return (Double(total) / seconds(produced), Double(total) / seconds(consumed))
}
