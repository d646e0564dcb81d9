import EventLog
import Logging
import Synchronization

/// One record as the hub hands it out, with its delivered forms made once and shared by every
/// subscriber (a hundred subscribers of a topic cost one JSON encoding per record and form, and
/// one masking of its personal data for all those without the grant to see it). A subscriber that
/// is behind what its partition's feed keeps reads the log itself and makes its own forms.
public final class FeedRecord: Sendable {
    public let record: LogRecord
    private let forms = Mutex<(plain: DeliveredForm?, redacted: DeliveredForm?)>((nil, nil))

    init(_ record: LogRecord) { self.record = record }

    /// The record's delivered form, redacted or not, made on first use: exactly once per form,
    /// however many subscribers ask at the same time (those that come while it is being made wait
    /// for it rather than make it again: masking costs more than the wait).
    func form(redacted: Bool, redaction: @escaping EventRedaction) -> DeliveredForm {
        forms.withLock { forms in
            if let made = redacted ? forms.redacted : forms.plain { return made }
            let made = DeliveredForm(record, redaction: redacted ? redaction : nil)
            if redacted { forms.redacted = made } else { forms.plain = made }
            return made
        }
    }
}

/// Wakes a subscription waiting for records. A signal that comes while nobody waits is kept, so a
/// record appended between a subscriber's look and its wait is never slept through.
final class Wakeup: Sendable {
    private let state = Mutex<(pending: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns at the next signal (or a pending one), after `timeout`, or when the task is cancelled.
    func wait(timeout: Duration) async {
        if state.withLock({ state in
            defer { state.pending = false }
            return state.pending
        }) { return }
        let timer = Task { [self] in
            try? await Task.sleep(for: timeout)
            signal()
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.pending {
                        state.pending = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            signal()
        }
    }
}

/// What a feed has for a subscriber at some offset.
enum FeedTake {
    /// Records from the offset on, in order.
    case records(ArraySlice<FeedRecord>)
    /// The offset is before what the feed keeps: read the log directly. When that read finds
    /// nothing, nothing is left below `next` either (records the feed holds were removed by
    /// retention) and the subscriber may go on at `next` (`nil`: the feed has not started yet).
    case behind(next: Int64?)
    /// The subscriber has everything the feed has read: wait for a signal.
    case caughtUp
    /// The feed cannot read the partition any more.
    case failed(any Error & Sendable)
}

/// The shared tail of one partition: reads the log from the high-water mark on (when its first
/// subscriber comes) and keeps the latest records for every subscriber that has caught up, so a
/// partition is read once however many subscribe to it. Subscribers further behind read the log
/// themselves until they reach what the feed keeps.
final class PartitionFeed: Sendable {
    let partition: TopicPartition
    private let log: any EventLog
    private let configuration: SubscriptionHub.Configuration
    private let logger: Logger

    private struct State {
        /// Records from `start` to `next`, oldest first (index `first` on; earlier ones are dropped).
        var records: [FeedRecord] = []
        var first = 0
        var start: Int64?
        var next: Int64?
        var listeners: [ObjectIdentifier: Wakeup] = [:]
        var running = false
        var failure: (any Error & Sendable)?
    }
    private let state = Mutex(State())

    init(partition: TopicPartition, log: any EventLog, configuration: SubscriptionHub.Configuration, logger: Logger) {
        self.partition = partition
        self.log = log
        self.configuration = configuration
        self.logger = logger
    }

    /// Registers a subscription to be woken by new records; starts the feed's reading if needed.
    func attach(_ id: ObjectIdentifier, _ wakeup: Wakeup) {
        let start = state.withLock { state -> Bool in
            state.listeners[id] = wakeup
            guard !state.running else { return false }
            state.running = true
            state.failure = nil
            return true
        }
        if start { Task { await self.run() } }
    }

    func detach(_ id: ObjectIdentifier) {
        state.withLock { _ = $0.listeners.removeValue(forKey: id) }
    }

    /// The records at and after `offset`, at most `max`.
    func take(from offset: Int64, max: Int) -> FeedTake {
        state.withLock { state in
            if let failure = state.failure { return .failed(failure) }
            guard let start = state.start, let next = state.next else { return .behind(next: nil) }
            if offset < start { return .behind(next: next) }
            if offset >= next { return .caughtUp }
            // First kept record at or after `offset` (offsets grow; compaction may leave gaps).
            var low = state.first
            var high = state.records.count
            while low < high {
                let middle = (low + high) / 2
                if state.records[middle].record.offset < offset { low = middle + 1 } else { high = middle }
            }
            return .records(state.records[low..<Swift.min(low + max, state.records.count)])
        }
    }

    /// Reads while anyone listens (and `linger` after the last one left), then stops and forgets
    /// what it kept: the next subscriber starts it again at the then high-water mark.
    private func run() async {
        let clock = ContinuousClock()
        var idle = configuration.minimumPoll
        var lonelySince: ContinuousClock.Instant?
        var retryDelay = Duration.milliseconds(100)
        while true {
            let (stop, next) = state.withLock { state -> (Bool, Int64?) in
                if state.listeners.isEmpty {
                    let since = lonelySince ?? clock.now
                    lonelySince = since
                    if clock.now - since >= configuration.feedLinger {
                        state = State()
                        return (true, nil)
                    }
                } else {
                    lonelySince = nil
                }
                return (false, state.next)
            }
            if stop { return }
            do {
                guard let next else {
                    let high = try await log.watermarks(partition).high
                    wakeAll { state in
                        state.start = high
                        state.next = high
                    }
                    continue
                }
                let records = try await log.read(partition, from: next, maxRecords: configuration.fetchSize)
                retryDelay = .milliseconds(100)
                if records.isEmpty {
                    try? await Task.sleep(for: idle)
                    idle = min(idle * 2, configuration.maximumPoll)
                    continue
                }
                idle = configuration.minimumPoll
                let wrapped = records.map(FeedRecord.init)
                wakeAll { state in
                    state.records.append(contentsOf: wrapped)
                    state.next = records.last!.offset + 1
                    let kept = state.records.count - state.first
                    if kept > configuration.keptRecords { state.first += kept - configuration.keptRecords }
                    if state.first > configuration.keptRecords {
                        state.records.removeFirst(state.first)
                        state.first = 0
                    }
                    state.start = state.records[state.first].record.offset
                }
            } catch let error as LogError where error.isRetriable {
                logger.warning(
                    "reading for subscribers failed, retrying", metadata: ["partition": "\(partition)", "error": "\(error)"])
                try? await Task.sleep(for: retryDelay)
                retryDelay = min(retryDelay * 2, .seconds(5))
            } catch {
                if (error as? LogError)?.code == .closed {
                    logger.debug("the log is closed: the feed stops", metadata: ["partition": "\(partition)"])
                } else {
                    logger.error(
                        "reading for subscribers failed, their streams end",
                        metadata: ["partition": "\(partition)", "error": "\(error)"])
                }
                let failure: any Error & Sendable = (error as? LogError) ?? LogError(.backend, "\(error)", subject: partition.description)
                wakeAll { state in
                    state = State(listeners: state.listeners)
                    state.failure = failure
                }
                return
            }
        }
    }

    /// Changes the state and signals every listener.
    private func wakeAll(_ change: (inout State) -> Void) {
        let listeners = state.withLock { state in
            change(&state)
            return Array(state.listeners.values)
        }
        for listener in listeners { listener.signal() }
    }
}
