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
///
/// The timeout of a wait is kept by one timer task per wake-up that outlives the waits: a
/// subscriber woken a hundred times a second with a 15 s keep-alive does not start and cancel a
/// timer each time (a hundred subscribers did that 20,000 times a second in the fan-out
/// benchmark); the timer, when it fires, ends the wait that is due or sleeps on to the deadline of
/// the wait there is now.
final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
        /// When the waiting `waiter` is due.
        var deadline: ContinuousClock.Instant?
        /// When the timer task running now wakes (`nil`: none runs).
        var timerAt: ContinuousClock.Instant?
    }
    private let state = Mutex(State())

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                state.deadline = nil
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
        let deadline = ContinuousClock.now.advanced(by: timeout)
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let (resumeNow, startTimer) = state.withLock { state -> (Bool, Bool) in
                    if state.pending {
                        state.pending = false
                        return (true, false)
                    }
                    state.waiter = continuation
                    state.deadline = deadline
                    // A timer already running that wakes by the deadline will see this wait then.
                    if let timerAt = state.timerAt, timerAt <= deadline { return (false, false) }
                    state.timerAt = deadline
                    return (false, true)
                }
                if resumeNow { continuation.resume() }
                if startTimer { Task { await self.runTimer(until: deadline) } }
            }
        } onCancel: {
            signal()
        }
    }

    /// Sleeps to `instant`, then ends the wait that is due, or sleeps on to the deadline of the wait
    /// there is now; stops when no wait is left or a timer started later for an earlier deadline
    /// took over.
    private func runTimer(until instant: ContinuousClock.Instant) async {
        var wakeAt = instant
        while true {
            try? await Task.sleep(until: wakeAt, clock: .continuous)
            let (due, next) = state.withLock { state -> (CheckedContinuation<Void, Never>?, ContinuousClock.Instant?) in
                // Another timer was started for an earlier deadline: it keeps the time from now on.
                guard state.timerAt == wakeAt else { return (nil, nil) }
                guard let deadline = state.deadline, let waiter = state.waiter else {
                    state.timerAt = nil
                    return (nil, nil)
                }
                if deadline <= .now {
                    state.waiter = nil
                    state.deadline = nil
                    state.timerAt = nil
                    return (waiter, nil)
                }
                state.timerAt = deadline
                return (nil, deadline)
            }
            due?.resume()
            guard let next else { return }
            wakeAt = next
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
    /// The log, when it wakes readers at this process's appends (the embedded log).
    private let waking: (any AppendWaking)?
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
        self.waking = log as? any AppendWaking
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
                // This process's appends wake the tail at once (the embedded log signals them);
                // other processes' appends, and a log that does not signal, are seen at the poll.
                let seen = waking?.appendCount
                let records = try await log.read(partition, from: next, maxRecords: configuration.fetchSize)
                retryDelay = .milliseconds(100)
                if records.isEmpty {
                    await pause(idle, after: seen)
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
                // A short read reached the end as of `seen`: nothing to read again before the next
                // append (or the poll, for other processes' appends).
                if records.count < configuration.fetchSize, let seen { await pause(idle, after: seen) }
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

    /// Waits `idle`, or less: until this process's next append after `seen` when the log signals
    /// appends (``AppendWaking``).
    private func pause(_ idle: Duration, after seen: UInt64?) async {
        if let waking, let seen {
            await waking.waitForAppend(after: seen, upTo: idle)
        } else {
            try? await Task.sleep(for: idle)
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
