import EventLog
import Foundation
import Logging
import Synchronization

/// What a subscriber asks for.
public struct SubscriptionRequest: Sendable {
    /// The topics or pattern.
    public var selection: TopicSelection
    /// The consumer group in the log whose committed offsets are the subscriber's bookmark;
    /// `nil` reads without one.
    public var group: String?
    /// The cursor text the subscriber sends back (`Last-Event-ID`, a batch's `cursor`); `nil`
    /// starts from the group's committed offsets.
    public var cursor: String?
    /// Where a partition starts that neither the cursor nor the group names. Default: `.earliest`.
    public var start: SeekPosition
    /// Whether the subscriber's events go through the hub's ``SubscriptionHub/Configuration/redaction``
    /// (it does not hold the grant to see personal data).
    public var redacted: Bool
    /// Whether a cursor the subscriber sends is committed for the group when the subscription
    /// opens: it proves the subscriber has everything before it (SSE's `Last-Event-ID`).
    /// Default: `false`.
    public var commitCursorOnOpen: Bool

    public init(
        selection: TopicSelection, group: String?, cursor: String? = nil, start: SeekPosition = .earliest,
        redacted: Bool, commitCursorOnOpen: Bool = false
    ) {
        self.selection = selection
        self.group = group
        self.cursor = cursor
        self.start = start
        self.redacted = redacted
        self.commitCursorOnOpen = commitCursorOnOpen
    }
}

/// Subscriptions over one log: opens them at the right position, shares one tail per partition
/// among them, and commits what subscribers acknowledge. See the folder's README for where resume
/// state lives and why a resume neither skips nor repeats.
public final class SubscriptionHub: Sendable {
    /// How the hub reads.
    public struct Configuration: Sendable {
        /// Records read from the log at a time. Default: 500.
        public var fetchSize = 500
        /// Records a partition's tail keeps for subscribers just behind it. Default: 4,096.
        public var keptRecords = 4096
        /// The first pause of a tail after reading nothing; it doubles up to ``maximumPoll`` while
        /// nothing comes and drops back when something does. Default: 2 ms.
        public var minimumPoll: Duration = .milliseconds(2)
        /// The longest pause of a tail between reads when nothing comes. Default: 20 ms.
        public var maximumPoll: Duration = .milliseconds(20)
        /// How long a tail goes on reading after its last subscriber left, for the next long-poll
        /// request of the same topic. Default: 30 s.
        public var feedLinger: Duration = .seconds(30)
        /// How often a subscription looks for new topics of its pattern and new partitions.
        /// Default: 10 s.
        public var topicRefresh: Duration = .seconds(10)
        /// Applied to the events of subscribers without the grant to see personal data, once per
        /// record a feed holds, however many such subscribers read it (see ``FeedRecord``).
        /// Default: ``DeliveredEvent/personalDataMasking``.
        public var redaction: EventRedaction = DeliveredEvent.personalDataMasking

        public init() {}
    }

    let log: any EventLog
    let configuration: Configuration
    let logger: Logger
    private let feeds = Mutex<[TopicPartition: PartitionFeed]>([:])
    /// The subscriptions open now (weakly: one dropped without closing goes too), and whether
    /// ``endAll()`` was called.
    private let open = Mutex<(subscriptions: [ObjectIdentifier: OpenSubscription], ended: Bool)>(([:], false))

    private struct OpenSubscription {
        weak var subscription: Subscription?
    }

    public init(log: any EventLog, configuration: Configuration = Configuration(), logger: Logger = Logger(label: "onewindow.subscriptions")) {
        self.log = log
        self.configuration = configuration
        self.logger = logger
    }

    func feed(_ partition: TopicPartition) -> PartitionFeed {
        feeds.withLock { feeds in
            if let feed = feeds[partition] { return feed }
            let feed = PartitionFeed(partition: partition, log: log, configuration: configuration, logger: logger)
            feeds[partition] = feed
            return feed
        }
    }

    /// The topics a selection means now (to ask for access before opening).
    public func topics(of selection: TopicSelection) async throws -> [SubscribedTopic] {
        try await selection.resolve(in: log)
    }

    /// Opens a subscription.
    ///
    /// Each partition starts at the cursor's offset when a cursor is given (a partition the cursor
    /// does not name at 0: it had delivered nothing), else at the group's committed offset, else
    /// at `request.start`.
    /// - Parameter admit: asked with the topics when the subscription opens (throw to refuse it),
    ///   and with each topic that joins a pattern later (a throw leaves that topic out).
    /// - Throws: ``CursorError`` for a cursor this hub did not make, ``LogError`` `.unknownTopic`
    ///   for a listed topic that does not exist, what `admit` throws, or the log's error.
    public func open(
        _ request: SubscriptionRequest, admit: @escaping @Sendable ([String]) async throws -> Void = { _ in }
    ) async throws -> Subscription {
        let topics = try await request.selection.resolve(in: log)
        try await admit(topics.map(\.name))
        let start = try await startOffsets(request, topics: topics)
        let subscription = Subscription(
            hub: self, selection: request.selection, redacted: request.redacted, start: start, admit: admit)
        let ended = open.withLock { open in
            if !open.ended { open.subscriptions[subscription.identity] = OpenSubscription(subscription: subscription) }
            return open.ended
        }
        if ended { subscription.end() }
        return subscription
    }

    /// Ends every open subscription and every one opened from now on (``Subscription/end()``): a
    /// server calls it on its graceful shutdown, so SSE streams end at once rather than at their
    /// next keep-alive, and long polls answer at once with what they have. Subscribers resume from
    /// their last cursor (an SSE client from its `Last-Event-ID`) at the next server.
    public func endAll() {
        let ending = open.withLock { open in
            open.ended = true
            defer { open.subscriptions = [:] }
            return open.subscriptions.values.compactMap(\.subscription)
        }
        for subscription in ending { subscription.end() }
    }

    /// A subscription that closed or went (its ``Subscription/release()``).
    func forget(_ identity: ObjectIdentifier) {
        open.withLock { _ = $0.subscriptions.removeValue(forKey: identity) }
    }

    /// One long-poll batch: opens at the request's position, waits up to `wait` for at most `max`
    /// events, and closes. Nothing is committed: the caller commits the batch's cursor with
    /// ``commit(group:selection:cursor:)`` once it has processed the batch, or passes the cursor
    /// to the next poll to read on without committing.
    public func poll(
        _ request: SubscriptionRequest, max: Int, wait: Duration,
        admit: @escaping @Sendable ([String]) async throws -> Void = { _ in }
    ) async throws -> SubscriptionBatch {
        let subscription = try await open(request, admit: admit)
        do {
            let batch = try await subscription.next(max: max, wait: wait)
            await subscription.close()
            return batch
        } catch {
            await subscription.close()
            throw error
        }
    }

    /// Commits a cursor for a group: every partition of the selection's topics is set to the
    /// cursor's offset (0 for a partition it does not name), so the group's next subscription
    /// starts exactly after what the cursor had.
    /// - Returns: the committed offsets.
    /// - Throws: ``CursorError``, or the log's error (`.groupBusy` when a member of the log's own
    ///   consumers is active in the group).
    @discardableResult
    public func commit(group: String, selection: TopicSelection, cursor text: String) async throws -> [TopicPartition: Int64] {
        let topics = try await selection.resolve(in: log)
        let cursor = try SubscriptionCursor.parse(text, topics: topics.map(\.name))
        var offsets: [TopicPartition: Int64] = [:]
        for topic in topics { for partition in topic.partitions { offsets[partition] = cursor[partition] } }
        try await log.commitGroup(group, offsets: offsets)
        return offsets
    }

    private func startOffsets(_ request: SubscriptionRequest, topics: [SubscribedTopic]) async throws
        -> [SubscribedTopic: [Int64]]
    {
        let names = topics.map(\.name)
        var start: [SubscribedTopic: [Int64]] = [:]
        if let text = request.cursor {
            let cursor = try SubscriptionCursor.parse(text, topics: names)
            var all: [TopicPartition: Int64] = [:]
            for topic in topics {
                start[topic] = topic.partitions.map { cursor[$0] }
                for partition in topic.partitions { all[partition] = cursor[partition] }
            }
            if request.commitCursorOnOpen, let group = request.group, !all.isEmpty {
                do {
                    try await log.commitGroup(group, offsets: all)
                } catch {
                    // The cursor is still exact; only the group's bookmark stays behind.
                    logger.warning(
                        "could not commit the subscriber's cursor for its group", metadata: ["group": "\(group)", "error": "\(error)"])
                }
            }
            return start
        }
        var committed: [TopicPartition: Int64] = [:]
        if let group = request.group { committed = try await log.committedOffsets(group: group, topics: names) }
        for topic in topics {
            var offsets: [Int64] = []
            for partition in topic.partitions {
                if let offset = committed[partition] {
                    offsets.append(offset)
                    continue
                }
                switch request.start {
                case .earliest: offsets.append(0)
                case .latest: offsets.append(topic.watermarks[partition.partition].high)
                case .offset(let offset): offsets.append(Swift.max(0, offset))
                case .time(let time): offsets.append(try await log.offset(partition, atOrAfter: time))
                }
            }
            start[topic] = offsets
        }
        return start
    }
}
