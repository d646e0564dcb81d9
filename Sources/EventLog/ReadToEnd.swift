import Foundation

extension EventLog {
    /// Reads every record of `topics` (those that exist; the others are skipped) from each
    /// partition's log start up to its high-water mark when the partition is reached, partition
    /// by partition, handing `body` batches of at most `batch` records in offset order. No
    /// consumer group is involved.
    ///
    /// A read that returns nothing before the end is tried again every 50 ms (a Kafka broker can
    /// answer empty for a moment after an append) until `stall` has passed without progress.
    /// - Throws: ``LogError`` `.timedOut` naming the partition and offset when nothing more
    ///   could be read in time; whatever the log or `body` throws.
    public func readToEnd(
        topics: [String], batch: Int = 2000, stall: Duration = .seconds(30), _ body: ([LogRecord]) async throws -> Void
    ) async throws {
        let existing = Set(try await listTopics())
        for description in try await describeTopics(topics.filter(existing.contains)) {
            for (partition, marks) in description.partitions.enumerated() {
                let place = TopicPartition(description.spec.name, partition)
                var offset = marks.low
                var deadline = ContinuousClock.now + stall
                while offset < marks.high {
                    let records = try await read(place, from: offset, maxRecords: batch)
                    guard let last = records.last else {
                        if ContinuousClock.now > deadline {
                            throw LogError(
                                .timedOut,
                                "nothing could be read from offset \(offset) although the partition ends at \(marks.high)",
                                remedy: "try again; if it persists, check the broker", subject: "\(place)")
                        }
                        try await Task.sleep(for: .milliseconds(50))
                        continue
                    }
                    offset = last.offset + 1
                    deadline = ContinuousClock.now + stall
                    try await body(records.filter { $0.offset < marks.high })
                }
            }
        }
    }
}
