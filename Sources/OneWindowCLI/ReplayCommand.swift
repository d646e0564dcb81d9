import ArgumentParser
import EmbeddedLog
import EventLog
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `onewindow replay`: moves a consumer group back (or forward) on chosen topics, with a plan first.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Move a consumer group on chosen topics to an offset, a time, earliest or latest, with a plan first.",
        discussion: """
            Prints the plan (topic, partition, the group's committed offset FROM, the new offset \
            TO, and the records the group will read again) and moves nothing unless --execute is \
            given. The group must be stopped: while it has live members the replay is refused \
            with their names (exit 75), unless --force (embedded bus: the members are removed \
            from the group first, for members known to be gone; a Kafka broker still refuses to \
            move a group with members).
            Exit status: 0 planned or moved, 64 usage, 66 no such group or no topic matches, \
            69 bus unreachable, 75 the group has live members, 77 --execute without an operator's \
            key holding the replay grant.
            Examples:
              onewindow replay --group onewindow.orchestrator --pattern 'approval.*' \\
                  --to time:2026-03-02T00:00:00+08:00
              onewindow replay --group dashboard --topic household.birth.registered \\
                  --to earliest --execute --api-key "$OPS_KEY"
            """
    )

    @OptionGroup var options: BusOptions
    @Option(help: "The consumer group to move.") var group: String
    @Option(name: .customLong("topic"), help: "A topic (repeatable).") var topics: [String] = []
    @Option(help: "A glob (* ? [..]) matched against whole topic names, instead of --topic: 'approval.*.decided'.")
    var pattern: String?
    @Option(help: "Where to: earliest, latest, offset:N, or time:RFC3339.") var to: String
    @Flag(help: "Move the group as planned (without it, only the plan is printed); needs an operator's key with the replay grant.")
    var execute = false
    @OptionGroup var operatorKey: OperatorKeyOptions
    @Flag(help: "Move the group even though it has live members (see the discussion).") var force = false

    func validate() throws {
        if topics.isEmpty == (pattern == nil) { throw ValidationError("give --topic (one or more) or --pattern") }
        _ = try SeekPositionParser.parse(to)
    }

    func run() async throws {
        let position = try SeekPositionParser.parse(to)
        try await withLog(options) { log in
            try await GroupCheck.requireExisting(group, on: log)
            let names = try await Replay.topics(topics, pattern: pattern, on: log)
            let plan = try await Replay.plan(group: group, topics: names, to: position, on: log)
            print(plan.table)
            let members = try await log.groupMembers(group)
            if !members.isEmpty && !force {
                throw CommandFailure(
                    .temporary,
                    "the group \(group) has \(members.count) live member(s): \(members.map(\.name).joined(separator: ", ")); "
                        + "stop them and run again, or add --force if they are gone (nothing was moved)")
            }
            guard execute else {
                print("nothing moved: add --execute to move the group as planned")
                return
            }
            let (principal, audit) = try await operatorKey.authorize(.replay)
            let moved = try await Replay.execute(plan, on: log, force: force)
            try await audit.recordReplay(by: principal, group: group, moves: moved)
            let reread = moved.map(\.recordsToReread).reduce(0, +)
            print("moved \(moved.count) partition(s) of \(group); \(reread) record(s) to re-read")
        }
    }
}

/// One partition of a replay: where the group's committed offset is and where it goes.
public struct ReplayMove: Sendable, Hashable {
    public var partition: TopicPartition
    /// The committed offset before the move; `nil` when the group had none on this partition.
    public var from: Int64?
    /// The committed offset after it.
    public var to: Int64

    public init(partition: TopicPartition, from: Int64?, to: Int64) {
        self.partition = partition
        self.from = from
        self.to = to
    }

    /// Records the group will read a second time: from `to` up to where it had got (none when it
    /// moves forward or had read nothing).
    public var recordsToReread: Int64 { max(0, (from ?? to) - to) }
    /// Records the group will never read (it moves forward past them).
    public var recordsSkipped: Int64 { max(0, to - (from ?? to)) }
}

/// What a replay will do, before it does it.
public struct ReplayPlan: Sendable {
    public var group: String
    public var topics: [String]
    public var position: SeekPosition
    /// Every partition of the topics, sorted.
    public var moves: [ReplayMove]

    /// The plan as the table `onewindow replay` prints, with a total.
    public var table: String {
        let rows = moves.map { move in
            [move.partition.topic, "\(move.partition.partition)", move.from.map(String.init) ?? "-", "\(move.to)",
             "\(move.recordsToReread)"]
        }
        var text = Table.render(header: ["TOPIC", "PARTITION", "FROM", "TO", "RECORDS-TO-REREAD"], rows: rows)
        text += "\ntotal: \(moves.map(\.recordsToReread).reduce(0, +)) record(s) to re-read"
        let skipped = moves.map(\.recordsSkipped).reduce(0, +)
        if skipped > 0 { text += ", \(skipped) skipped (the group moves forward past them)" }
        return text
    }
}

/// Replay's planning and moving, apart from the command (tests and the audit log call them).
public enum Replay {
    /// The topics named, or those on the bus whose whole name matches the glob `pattern`.
    /// - Throws: ``LogError`` `.unknownTopic` for a named topic the bus lacks; ``CommandFailure``
    ///   (not found) when the pattern matches no topic.
    public static func topics(_ names: [String], pattern: String?, on log: any EventLog) async throws -> [String] {
        let existing = try await log.listTopics()
        guard let pattern else {
            for name in names where !existing.contains(name) { throw LogError.unknownTopic(name) }
            return Array(Set(names)).sorted()
        }
        let matching = existing.filter { fnmatch(pattern, $0, 0) == 0 }
        if matching.isEmpty {
            throw CommandFailure(.notFound, "no topic on the bus matches the pattern '\(pattern)' (a glob: * ? [..])")
        }
        return matching
    }

    /// Where each partition of `topics` is for the group and where `position` would put it,
    /// resolved as ``EventLog/seekGroup(_:topics:to:)`` does (clamped to the watermarks; a time
    /// past the last record is the high-water mark). Moves nothing.
    public static func plan(group: String, topics: [String], to position: SeekPosition, on log: any EventLog)
        async throws -> ReplayPlan
    {
        let committed = try await log.committedOffsets(group: group, topics: topics)
        var moves: [ReplayMove] = []
        for description in try await log.describeTopics(topics) {
            for (index, marks) in description.partitions.enumerated() {
                let partition = TopicPartition(description.name, index)
                let target: Int64
                switch position {
                case .earliest: target = marks.low
                case .latest: target = marks.high
                case .offset(let offset): target = min(max(offset, marks.low), marks.high)
                case .time(let time): target = try await log.offset(partition, atOrAfter: time)
                }
                moves.append(ReplayMove(partition: partition, from: committed[partition], to: target))
            }
        }
        return ReplayPlan(group: group, topics: topics, position: position, moves: moves.sorted { $0.partition < $1.partition })
    }

    /// Moves the group as `plan` says and returns what was moved: each partition with the offset
    /// it had when planned and the one it has now (the one record of a replay for the audit log).
    ///
    /// The targets are resolved again at the move (``EventLog/seekGroup(_:topics:to:)``), so
    /// `latest` or a time includes records appended since the plan.
    /// - Parameter force: on the embedded bus, remove the group's members first
    ///   (``EmbeddedLog/evictMembers(of:)``); without it a live member makes the move fail.
    /// - Throws: ``CommandFailure`` (temporary) naming the live members, unless `force`.
    @discardableResult
    public static func execute(_ plan: ReplayPlan, on log: any EventLog, force: Bool = false) async throws
        -> [ReplayMove]
    {
        if force, let embedded = log as? EmbeddedLog {
            try await embedded.evictMembers(of: plan.group)
        } else if !force {
            let members = try await log.groupMembers(plan.group)
            if !members.isEmpty {
                throw CommandFailure(
                    .temporary,
                    "the group \(plan.group) has \(members.count) live member(s): \(members.map(\.name).joined(separator: ", ")); "
                        + "stop them before moving the group")
            }
        }
        let moved = try await log.seekGroup(plan.group, topics: plan.topics, to: plan.position)
        let before = Dictionary(uniqueKeysWithValues: plan.moves.map { ($0.partition, $0.from) })
        return moved.map { partition, offset in
            ReplayMove(partition: partition, from: before[partition] ?? nil, to: offset)
        }.sorted { $0.partition < $1.partition }
    }
}
