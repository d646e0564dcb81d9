import ArgumentParser
import EventLog
import Foundation

/// `onewindow groups list|lag|seek`: consumer groups, for operators.
struct GroupsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "groups",
        abstract: "Consumer groups: list them, show their lag, move their offsets for replay.",
        subcommands: [List.self, Lag.self, Seek.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the consumer groups.")
        @OptionGroup var options: BusOptions
        func run() async throws {
            for group in try await withLog(options, { try await $0.listGroups() }) { print(group) }
        }
    }

    struct Lag: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show how far a group is behind, per partition.")
        @OptionGroup var options: BusOptions
        @Argument(help: "The group.") var group: String
        @Option(name: .customLong("topic"), help: "A topic (repeatable). Default: every catalog topic on the bus.")
        var topics: [String] = []

        func run() async throws {
            let lags = try await withLog(options) { log in
                let names = try topics.isEmpty ? await log.listTopics() : topics
                return try await log.lag(group: group, topics: names).filter { $0.committed != nil }
            }
            let rows = lags.map { lag in
                [lag.partition.topic, "\(lag.partition.partition)", lag.committed.map(String.init) ?? "-",
                 "\(lag.watermarks.high)", "\(lag.lag)"]
            }
            print(Table.render(header: ["TOPIC", "PARTITION", "COMMITTED", "HIGH", "LAG"], rows: rows))
            print("total lag: \(lags.map(\.lag).reduce(0, +))")
        }
    }

    struct Seek: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move a group's offsets (the group must be stopped): earliest, latest, offset:N, time:RFC3339.")
        @OptionGroup var options: BusOptions
        @Argument(help: "The group.") var group: String
        @Option(name: .customLong("topic"), help: "A topic (repeatable).") var topics: [String]
        @Option(help: "Where to: earliest, latest, offset:N, or time:RFC3339.") var to: String

        func validate() throws {
            if topics.isEmpty { throw ValidationError("give at least one --topic") }
            _ = try SeekPositionParser.parse(to)
        }

        func run() async throws {
            let position = try SeekPositionParser.parse(to)
            let moved = try await withLog(options) { try await $0.seekGroup(group, topics: topics, to: position) }
            for (partition, offset) in moved.sorted(by: { $0.key < $1.key }) { print("\(partition) → \(offset)") }
        }
    }
}
