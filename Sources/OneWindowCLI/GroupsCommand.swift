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
                try await GroupCheck.requireExisting(group, on: log)
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
        @Flag(help: "Create the group if it does not exist yet (a group to be started at the position given).")
        var create = false

        func validate() throws {
            if topics.isEmpty { throw ValidationError("give at least one --topic") }
            _ = try SeekPositionParser.parse(to)
        }

        func run() async throws {
            let position = try SeekPositionParser.parse(to)
            let moved = try await withLog(options) { log in
                if !create { try await GroupCheck.requireExisting(group, on: log, creatable: true) }
                return try await log.seekGroup(group, topics: topics, to: position)
            }
            for (partition, offset) in moved.sorted(by: { $0.key < $1.key }) { print("\(partition) → \(offset)") }
        }
    }
}

/// Refuses a consumer group the bus does not know (a typo would otherwise show an empty table, or
/// `seek` would create a group nobody uses).
enum GroupCheck {
    /// - Parameter creatable: whether to suggest `--create` (for `seek`).
    /// - Throws: ``CommandFailure`` (``ExitStatus/notFound``) naming the group and the known ones.
    static func requireExisting(_ group: String, on log: any EventLog, creatable: Bool = false) async throws {
        let groups = try await log.listGroups()
        guard !groups.contains(group) else { return }
        var message = "there is no consumer group \(group) on the bus"
        message += groups.isEmpty ? " (it has none yet)" : "; the groups are: \(groups.joined(separator: ", "))"
        if creatable { message += "; add --create to create it at the position given" }
        throw CommandFailure(.notFound, message)
    }
}
