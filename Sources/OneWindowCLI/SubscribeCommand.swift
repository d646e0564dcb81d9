import ArgumentParser
import Bus
import EventLog
import Foundation

/// `onewindow subscribe`: print records of topics as JSON lines.
struct SubscribeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscribe",
        abstract: "Print the records of topics, one JSON object a line.",
        discussion: """
            With --group the group's committed offsets decide where to start and are committed after \
            each printed batch, so a second run goes on where the first stopped. Follows new records \
            until interrupted, or stops once caught up with --until-end.
            Examples:
              onewindow subscribe --topic household.birth.registered --from earliest --until-end
              onewindow subscribe --pattern 'approval\\..*\\.decided' --group dashboard
            """
    )

    @OptionGroup var options: BusOptions
    @Option(name: .customLong("topic"), help: "A topic to read (repeatable).") var topics: [String] = []
    @Option(help: "A regular expression matched against whole topic names, instead of --topic.") var pattern: String?
    @Option(help: "The consumer group; its offsets are committed after each printed batch.") var group: String?
    @Option(help: "Where to start without a committed offset: earliest, latest, offset:N, or time:RFC3339. Default: earliest.")
    var from: String = "earliest"
    @Flag(help: "Stop once every partition is read up to where it ended when the command started.")
    var untilEnd = false
    @Option(help: "Stop after this many records.") var max: Int?

    func validate() throws {
        if topics.isEmpty == (pattern == nil) { throw ValidationError("give --topic (one or more) or --pattern") }
        _ = try SeekPositionParser.parse(from)
    }

    func run() async throws {
        let start = try SeekPositionParser.parse(from)
        let subscription: ConsumerConfiguration.Subscription = pattern.map { .pattern($0) } ?? .topics(topics)
        try await withLog(options) { log in
            let consumer = try await log.makeConsumer(
                ConsumerConfiguration(subscription: subscription, group: group, autoOffsetReset: start))
            defer { Task { await consumer.close() } }
            var ends: [TopicPartition: Int64]? = nil
            var positions: [TopicPartition: Int64] = [:]
            var printed = 0
            while !Task.isCancelled {
                let records = try await consumer.poll(maxRecords: 500, timeout: .milliseconds(500))
                for record in records {
                    if let max, printed >= max { break }
                    print(OutputLine.record(record))
                    printed += 1
                    positions[TopicPartition(record.topic, record.partition)] = record.offset + 1
                }
                if group != nil, !records.isEmpty { try await consumer.commit(records) }
                if let max, printed >= max { break }
                if untilEnd {
                    let assigned = try await consumer.assignment()
                    if assigned.isEmpty { continue }
                    if ends == nil {
                        var marks: [TopicPartition: Int64] = [:]
                        for partition in assigned { marks[partition] = try await log.watermarks(partition).high }
                        ends = marks
                    }
                    if records.isEmpty, try await caughtUp(ends!, positions, consumer, log) { break }
                }
            }
            await consumer.close()
        }
    }

    /// Every partition is read up to its end as it was when reading began (or has nothing left).
    private func caughtUp(
        _ ends: [TopicPartition: Int64], _ positions: [TopicPartition: Int64], _ consumer: any LogConsumer,
        _ log: any EventLog
    ) async throws -> Bool {
        for (partition, end) in ends {
            let position: Int64
            if let read = positions[partition] {
                position = read
            } else if let group, let committed = try await log.committedOffsets(group: group, topics: [partition.topic])[partition] {
                position = committed
            } else {
                position = try await log.watermarks(partition).low
            }
            if position < end { return false }
        }
        return true
    }
}

enum SeekPositionParser {
    static func parse(_ text: String) throws -> SeekPosition {
        switch text {
        case "earliest": return .earliest
        case "latest": return .latest
        default:
            if text.hasPrefix("offset:"), let offset = Int64(text.dropFirst(7)), offset >= 0 { return .offset(offset) }
            if text.hasPrefix("time:"), let time = Timestamp.parse(String(text.dropFirst(5))) { return .time(time) }
            throw ValidationError("'\(text)' is not earliest, latest, offset:N or time:RFC3339 (e.g. time:2025-01-01T00:00:00Z)")
        }
    }
}

import EventModel
