import EventLog
import Logging
import Synchronization

/// One event of a batch: the record, the cursor after it, and its delivered bytes.
public struct SubscriptionEvent: Sendable {
    public let record: LogRecord
    /// The cursor text standing after this event: the SSE `id`, and the `Last-Event-ID` that
    /// resumes exactly after it.
    public let id: String
    let form: DeliveredForm

    /// The JSON object's bytes the subscriber receives (see ``DeliveredEvent``).
    public var json: [UInt8] { form.json }
}

/// What one call of ``Subscription/next(max:wait:)`` returns.
public struct SubscriptionBatch: Sendable {
    /// The events, each partition's in offset order.
    public var events: [SubscriptionEvent]
    /// The cursor after the batch (the start cursor when the batch is empty).
    public var cursor: SubscriptionCursor
}

/// A subscriber's read of its topics from a start position on: batches of events with the cursor
/// after each, per partition in order, from the hub's shared tails once caught up.
///
/// One task reads it at a time (``next(max:wait:)`` is not meant to be called concurrently); call
/// ``close()`` when done so the feeds stop waking it.
public actor Subscription {
    private struct Part {
        let partition: TopicPartition
        let feed: PartitionFeed
        var next: Int64
    }
    private struct Topic {
        let name: String
        let hash: UInt64
        var parts: [Part]
        /// This topic's bytes of the cursor (see ``SubscriptionCursor``), kept up to date.
        var encoded: [UInt8] = []

        /// Encodes the cursor's bytes again in place (once per delivered event: no allocation).
        mutating func encode() {
            let parts = self.parts
            encoded.removeAll(keepingCapacity: true)
            CursorCoding.appendTopic(
                hash: hash, count: parts.count, entry: { (parts[$0].partition.partition, parts[$0].next) }, to: &encoded)
        }
    }

    private let hub: SubscriptionHub
    private let selection: TopicSelection
    private let redacted: Bool
    private let admit: @Sendable ([String]) async throws -> Void
    private let wakeup = Wakeup()
    private var topics: [Topic]
    private var lastRefresh = ContinuousClock.now
    private var rotation = 0
    /// Partitions whose direct read found nothing: not read directly again until a feed signals
    /// (a record appended, a feed started), which spares the log (on Kafka a read that finds
    /// nothing waits for the broker's end-of-partition answer).
    private var quiet: Set<TopicPartition> = []
    private var closed = false
    /// Set by ``end()`` (from outside the actor): ``next(max:wait:)`` returns at once, empty.
    private let ending = Mutex(false)
    /// The feeds this subscription listens to, for ``release()`` from outside the actor.
    private let attached = AttachedFeeds()
    /// New topics the subscriber was refused (asked once).
    private var refused: Set<String> = []

    init(
        hub: SubscriptionHub, selection: TopicSelection, redacted: Bool, start: [SubscribedTopic: [Int64]],
        admit: @escaping @Sendable ([String]) async throws -> Void
    ) {
        self.hub = hub
        self.selection = selection
        self.redacted = redacted
        self.admit = admit
        let token = ListenerToken()
        var made: [Topic] = []
        for (topic, offsets) in start.sorted(by: { $0.key.name < $1.key.name }) {
            made.append(
                Self.makeTopic(
                    topic, offsets: offsets, hub: hub, listener: ObjectIdentifier(token), wakeup: wakeup, attached: attached))
        }
        self.token = token
        self.topics = made
    }

    /// Who this subscription is to the feeds it listens to.
    private let token: ListenerToken
    nonisolated var identity: ObjectIdentifier { ObjectIdentifier(token) }

    private static func makeTopic(
        _ topic: SubscribedTopic, offsets: [Int64], hub: SubscriptionHub, listener: ObjectIdentifier, wakeup: Wakeup,
        attached: AttachedFeeds
    ) -> Topic {
        var made = Topic(
            name: topic.name, hash: CursorCoding.hash(topic.name),
            parts: topic.partitions.map { partition in
                let feed = hub.feed(partition)
                attached.feeds.withLock { $0.append(feed) }
                feed.attach(listener, wakeup)
                return Part(partition: partition, feed: feed, next: offsets[partition.partition])
            })
        made.encode()
        return made
    }

    /// Where the subscription stands: the next offset of every partition.
    public var cursor: SubscriptionCursor {
        var offsets: [TopicPartition: Int64] = [:]
        for topic in topics { for part in topic.parts { offsets[part.partition] = part.next } }
        return SubscriptionCursor(offsets: offsets)
    }

    /// The topics read now.
    public var topicNames: [String] { topics.map(\.name) }

    /// The next events: at most `max`, returned as soon as there are any, or an empty batch after
    /// `wait`.
    ///
    /// After ``end()`` it returns an empty batch at once (the cursor where the subscription stands),
    /// also when it was waiting.
    /// - Throws: `CancellationError` when the task is cancelled, or the log's error when a
    ///   partition cannot be read (the subscriber resumes later from its last cursor).
    public func next(max: Int, wait: Duration) async throws -> SubscriptionBatch {
        var events: [SubscriptionEvent] = []
        try await gather(max: max, wait: wait) { record, form, cursor in
            events.append(SubscriptionEvent(record: record, id: CursorCoding.prefix + Base64URL.encode(cursor), form: form))
        }
        return SubscriptionBatch(events: events, cursor: cursor)
    }

    /// The next events as Server-Sent Events frames, like ``next(max:wait:)`` (the same events,
    /// waits and errors), written straight into one buffer: each event's `id` (the cursor after
    /// it) is encoded into the frame without a string of its own, and its `event`/`data` lines
    /// are the ones made once per record and form for every subscriber (``FeedRecord``).
    /// - Returns: the frames (empty when no event came) and how many events they hold.
    public func nextFrames(max: Int, wait: Duration) async throws -> (frames: [UInt8], events: Int) {
        var frames: [UInt8] = []
        var count = 0
        try await gather(max: max, wait: wait) { _, form, cursor in
            if count == 0 { frames.reserveCapacity((form.sseTail.count + cursor.count * 2 + 16) * 4) }
            count += 1
            frames.append(contentsOf: "id: ".utf8)
            frames.append(contentsOf: CursorCoding.prefix.utf8)
            Base64URL.encode(cursor, into: &frames)
            frames.append(UInt8(ascii: "\n"))
            frames.append(contentsOf: form.sseTail)
        }
        return (frames, count)
    }

    /// Waits for events as ``next(max:wait:)`` describes and hands each to `each` with its
    /// delivered form and the cursor's bytes after it (before base64).
    private func gather(
        max: Int, wait: Duration, _ each: (LogRecord, DeliveredForm, [UInt8]) -> Void
    ) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: wait)
        while true {
            try Task.checkCancellation()
            if closed { throw LogError.closed("the subscription") }
            if hasEnded { return }
            if clock.now - lastRefresh >= hub.configuration.topicRefresh { try await refresh() }
            let count = try await collect(max: Swift.max(1, max), each)
            if count > 0 || clock.now >= deadline { return }
            let refreshAt = lastRefresh.advanced(by: hub.configuration.topicRefresh)
            await wakeup.wait(timeout: Swift.min(deadline, refreshAt) - clock.now)
            quiet = []
        }
    }

    /// Ends the subscription from anywhere (the hub's ``SubscriptionHub/endAll()`` on a server's
    /// graceful shutdown): a ``next(max:wait:)`` waiting returns at once, and every later one
    /// returns an empty batch; an SSE stream over it ends. Nothing is lost: the subscriber resumes
    /// from its last cursor.
    public nonisolated func end() {
        ending.withLock { $0 = true }
        wakeup.signal()
    }

    /// Whether ``end()`` was called.
    public nonisolated var hasEnded: Bool { ending.withLock { $0 } }

    /// Stops listening to the feeds. Afterwards ``next(max:wait:)`` throws.
    public func close() {
        closed = true
        release()
    }

    /// Stops listening to the feeds, from anywhere (an abandoned stream's iterator calls it when
    /// it goes); ``close()`` does it too.
    public nonisolated func release() {
        let feeds = attached.feeds.withLock { feeds in
            defer { feeds = [] }
            return feeds
        }
        for feed in feeds { feed.detach(identity) }
        hub.forget(identity)
    }

    /// The cursor's bytes (before base64), rebuilt in place after each event.
    private var cursorBytes: [UInt8] = []

    private func updateCursorBytes() {
        cursorBytes.removeAll(keepingCapacity: true)
        for topic in topics { cursorBytes.append(contentsOf: topic.encoded) }
    }

    /// Takes what is there from every partition, starting at a different one each time so a busy
    /// partition does not hold the others back.
    /// - Returns: how many events it handed to `each`.
    private func collect(max: Int, _ each: (LogRecord, DeliveredForm, [UInt8]) -> Void) async throws -> Int {
        var slots: [(Int, Int)] = []
        for (t, topic) in topics.enumerated() { for p in topic.parts.indices { slots.append((t, p)) } }
        if slots.isEmpty { return 0 }
        rotation = (rotation + 1) % slots.count
        var count = 0
        let redaction = hub.configuration.redaction
        for k in 0..<slots.count where count < max {
            let (t, p) = slots[(rotation + k) % slots.count]
            let part = topics[t].parts[p]
            let records: [FeedRecord]
            switch part.feed.take(from: part.next, max: max - count) {
            case .records(let slice):
                records = Array(slice)
            case .caughtUp:
                continue
            case .failed(let error):
                throw error
            case .behind(let feedNext):
                if quiet.contains(part.partition) { continue }
                let read = try await hub.log.read(
                    part.partition, from: part.next, maxRecords: Swift.min(max - count, hub.configuration.fetchSize))
                if read.isEmpty {
                    // Nothing at or after `next` in the log now: whatever the feed has read
                    // before its `next` was removed (retention), so going on there skips nothing.
                    if let feedNext, feedNext > part.next { advance(t, p, to: feedNext) }
                    quiet.insert(part.partition)
                    continue
                }
                records = read.map(FeedRecord.init)
            }
            for record in records {
                advance(t, p, to: record.record.offset + 1)
                updateCursorBytes()
                count += 1
                each(record.record, record.form(redacted: redacted, redaction: redaction), cursorBytes)
            }
        }
        return count
    }

    private func advance(_ t: Int, _ p: Int, to next: Int64) {
        topics[t].parts[p].next = next
        topics[t].encode()
    }

    /// Takes up topics created (or partitions added) since the last look; a pattern's topics that
    /// are gone are dropped. A new topic the subscriber may not read is left out.
    private func refresh() async throws {
        lastRefresh = ContinuousClock.now
        let now: [SubscribedTopic]
        do {
            now = try await selection.resolve(in: hub.log)
        } catch let error as LogError where error.isRetriable {
            hub.logger.warning("could not look up the subscription's topics, trying later", metadata: ["error": "\(error)"])
            return
        }
        let known = Dictionary(uniqueKeysWithValues: topics.enumerated().map { ($1.name, $0) })
        var kept: [Topic] = []
        for topic in now {
            if let index = known[topic.name] {
                var existing = topics[index]
                // Partitions added to the topic start at offset 0: all they hold is new.
                for partition in topic.partitions.dropFirst(existing.parts.count) {
                    let feed = hub.feed(partition)
                    attached.feeds.withLock { $0.append(feed) }
                    feed.attach(identity, wakeup)
                    existing.parts.append(Part(partition: partition, feed: feed, next: 0))
                }
                kept.append(existing)
                continue
            }
            if refused.contains(topic.name) { continue }
            do {
                try await admit([topic.name])
            } catch {
                refused.insert(topic.name)
                hub.logger.notice(
                    "a new topic matching the subscription is not granted to the subscriber and is left out",
                    metadata: ["topic": "\(topic.name)", "selection": "\(selection)"])
                continue
            }
            // A topic created since the subscription opened holds only what came after: from 0.
            kept.append(
                Self.makeTopic(
                    topic, offsets: Array(repeating: 0, count: topic.watermarks.count), hub: hub, listener: identity,
                    wakeup: wakeup, attached: attached))
        }
        let keptNames = Set(kept.map(\.name))
        for topic in topics where !keptNames.contains(topic.name) {
            for part in topic.parts {
                part.feed.detach(identity)
                attached.feeds.withLock { $0.removeAll { $0 === part.feed } }
            }
        }
        topics = kept.sorted { $0.name < $1.name }
    }
}

/// The feeds a subscription listens to, reachable outside its actor.
final class AttachedFeeds: Sendable {
    let feeds = Mutex<[PartitionFeed]>([])
}

/// A subscription's identity as a listener of feeds.
final class ListenerToken: Sendable {}
