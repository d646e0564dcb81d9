import ArgumentParser
import Bus
import EventLog
import Foundation
import Logging
import ServiceLifecycle

/// `onewindow subscribe`: print records of topics as JSON lines.
struct SubscribeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscribe",
        abstract: "Print the records of topics, one JSON object a line.",
        discussion: """
            With --group the group's committed offsets decide where to start and are committed after \
            each printed batch, so a second run goes on where the first stopped. Follows new records \
            until interrupted, or stops once caught up with --until-end.
            With --until-end and a --pattern that matches no topic on the bus, it says so and \
            exits with status 66 instead of waiting for one.
            Examples:
              onewindow subscribe --topic household.birth.registered --until-end
              onewindow subscribe --pattern 'approval\\..*\\.decided' --group dashboard
              onewindow subscribe --topic tax.payment.received \\
                --from time:2025-01-01T00:00:00Z --max 10
            """
    )

    @OptionGroup var options: BusOptions
    @Option(name: .customLong("topic"), help: "A topic to read (repeatable).") var topics: [String] = []
    @Option(help: "A regular expression matched against whole topic names, instead of --topic.") var pattern: String?
    @Option(help: "The consumer group; its offsets are committed after each printed batch.") var group: String?
    @Option(help: "Where to start without a committed offset: earliest, latest, offset:N, or time:RFC3339.")
    var from: String = "earliest"
    @Flag(help: "Stop once every partition is read up to where it ended when the command started.")
    var untilEnd = false
    @Option(help: "Stop after this many records.") var max: Int?
    @Flag(help: "Print resident ID numbers, names and mobile numbers unmasked (masked by default: 440602********1234, 王**, 138****5678).")
    var showPersonalData = false

    func validate() throws {
        if topics.isEmpty == (pattern == nil) { throw ValidationError("give --topic (one or more) or --pattern") }
        _ = try SeekPositionParser.parse(from)
        if let pattern {
            do {
                _ = try Regex(pattern)
            } catch {
                throw ValidationError("--pattern '\(pattern)' is not a regular expression: \(error)")
            }
        }
    }

    func run() async throws {
        let start = try SeekPositionParser.parse(from)
        let subscription: ConsumerConfiguration.Subscription = pattern.map { .pattern($0) } ?? .topics(topics)
        try await withLog(options) { log in
            if untilEnd, let pattern {
                try await Self.requireMatchingTopic(pattern, on: log)
            }
            let consumer = try await log.makeConsumer(
                ConsumerConfiguration(subscription: subscription, group: group, autoOffsetReset: start))
            // SIGTERM or SIGINT stops reading between batches; the consumer then leaves its group.
            let reader = ClosureService { [group, max, untilEnd, showPersonalData] in
                do {
                    try await Self.follow(
                        consumer, log, group: group, max: max, untilEnd: untilEnd, showPersonalData: showPersonalData)
                } catch is CancellationError {
                    // Stopped by a signal: what was printed and committed stands; the rest is read again.
                }
            }
            var configuration = ServiceGroupConfiguration(
                services: [.init(service: reader, successTerminationBehavior: .gracefullyShutdownGroup)],
                logger: Logger(label: "onewindow.subscribe", factory: { _ in SwiftLogNoOpLogHandler() }))
            configuration.gracefulShutdownSignals = [.sigterm, .sigint]
            do {
                try await ServiceGroup(configuration: configuration).run()
            } catch {
                await consumer.close()
                throw error
            }
            await consumer.close()
        }
    }

    /// Refuses `--until-end` with a pattern that matches no topic on the bus: there is no end to
    /// read up to, and waiting for a topic to appear is not what `--until-end` asks for.
    private static func requireMatchingTopic(_ pattern: String, on log: any EventLog) async throws {
        let regex = try Regex(pattern)
        let topics = try await log.listTopics()
        guard !topics.contains(where: { (try? regex.wholeMatch(in: $0)) != nil }) else { return }
        throw CommandFailure(
            .notFound,
            "no topic on the bus matches --pattern '\(pattern)' (it must match a whole topic name), so --until-end has nothing to read; `onewindow topics list` lists the topics")
    }

    /// Prints records until interrupted, `--max` is reached, or (with `--until-end`) every assigned
    /// partition is read up to where it ended when reading began. With a group, only what was
    /// printed is committed: a record polled but cut off by `--max` is read again by the next run.
    private static func follow(
        _ consumer: any LogConsumer, _ log: any EventLog, group: String?, max: Int?,
        untilEnd: Bool, showPersonalData: Bool
    ) async throws {
        var progress = ReadProgress()
        var printed = 0
        while !Task.isCancelled {
            var records: [LogRecord]
            do {
                records = try await consumer.poll(maxRecords: 500, timeout: .milliseconds(500))
            } catch is CancellationError {
                return
            }
            if let max { records = Array(records.prefix(Swift.max(0, max - printed))) }
            for record in records {
                print(OutputLine.record(record, showPersonalData: showPersonalData))
            }
            // What is committed must have reached the output first (stdout is buffered in a pipe).
            fflush(nil)
            printed += records.count
            if group != nil, !records.isEmpty { try await consumer.commit(records) }
            if let max, printed >= max { return }
            guard untilEnd, records.isEmpty else { continue }
            let assigned = try await consumer.assignment()
            if assigned.isEmpty { continue }
            if try await progress.caughtUp(assigned, consumer: consumer, log: log) { return }
        }
    }
}

/// A service that runs a closure, stopped by cancellation on graceful shutdown.
struct ClosureService: Service {
    let body: @Sendable () async throws -> Void

    func run() async throws {
        try await cancelWhenGracefulShutdown { try await body() }
    }
}

/// Where `subscribe --until-end` stands on each partition: the end it must reach (the high-water
/// mark when the partition was first seen assigned).
struct ReadProgress {
    private(set) var ends: [TopicPartition: Int64] = [:]

    /// Whether every assigned partition has nothing left before its end: the consumer's
    /// position there (the next record it returns, after what it returned, else where it starts:
    /// committed offset or reset position, as each backend resolves it) is at or past the end.
    mutating func caughtUp(_ assigned: [TopicPartition], consumer: any LogConsumer, log: any EventLog) async throws -> Bool {
        for partition in assigned where ends[partition] == nil {
            ends[partition] = try await log.watermarks(partition).high
        }
        let positions = try await consumer.position()
        for partition in assigned {
            guard let position = positions[partition], let end = ends[partition] else { return false }
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
