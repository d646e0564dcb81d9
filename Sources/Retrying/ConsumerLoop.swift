import EventLog
import Logging
import Synchronization

// The consumer loop of the long-running processes that keep a store (the orchestrator, the
// citizen services, the shared data view): poll, apply in one transaction, commit, with the one
// retry rule of ``Retrier``.

extension Retrier {
    /// The service loops' retry (the orchestrator's and the citizen services' consumer, relay and
    /// timer loop): ``Retrier/persistently(_:_:_:)``, except that an error ``ErrorDisposition``
    /// would dead-letter (a record the log refuses as too large, a constraint of the store) is
    /// fatal too. It cannot be set aside here: the batch or outbox rows it belongs to would block
    /// everything behind them, so the process stops with the reason instead of retrying for ever.
    /// `groupBusy` is thrown for the consumer to poll again.
    public func inLoop<T: Sendable>(_ part: String, _ what: String, _ operation: () async throws -> T)
        async throws -> T
    {
        do {
            return try await persistently(part, what, operation)
        } catch where ErrorDisposition.of(error) == .deadLetter {
            throw FatalFailure(part: part, action: what, underlying: error)
        }
    }
}

/// Consumes `topics` as consumer group `group` until cancelled: each polled batch goes to
/// `process` (one store transaction), then its offsets are committed. The transaction and the
/// commit run in a task of their own, so a stop (cancellation) that arrives meanwhile lets them
/// finish; a commit refused by a rebalance polls again (the partitions' new owner reads the batch
/// again and its store drops the ids it applied). `assigned` holds the partition numbers held after
/// each poll (a change is logged). The consumer is closed, awaited, however the loop ends. The orchestrator's and the
/// citizen services' consumers are this loop.
public func consumeInBatches(
    log: any EventLog, group: String, topics: [String], retrier: Retrier, logger: Logger, maxRecords: Int = 500,
    what: String, assigned: Assignment,
    process: @escaping @Sendable ([LogRecord]) async throws -> Void
) async throws {
    try await consumeInBatches(
        log: log, group: group, topics: topics, retrier: retrier, logger: logger, maxRecords: maxRecords, what: what,
        assigned: assigned, overlapping: false, prepare: { $0 }, process: process)
}

/// ``consumeInBatches(log:group:topics:retrier:logger:maxRecords:what:assigned:process:)`` in two
/// stages: `prepare` works a polled batch out (outside any transaction), `process` writes what it
/// prepared (one transaction), then the batch's offsets are committed. With `overlapping`, the
/// next batch is polled and prepared while the previous one is processed (the orchestrator plans a
/// batch while the last one is written: ``BatchPlan``); batches are still processed and committed
/// one at a time, in order, and each one's offsets only after its transaction. `prepare` is retried
/// as `process` is; both run with the one retry rule.
public func consumeInBatches<Prepared: Sendable>(
    log: any EventLog, group: String, topics: [String], retrier: Retrier, logger: Logger, maxRecords: Int = 500,
    what: String, assigned: Assignment, overlapping: Bool,
    prepare: @escaping @Sendable ([LogRecord]) async throws -> Prepared,
    process: @escaping @Sendable (Prepared) async throws -> Void
) async throws {
    let consumer = try await retrier.inLoop("consumer", "joining group \(group)") {
        try await log.makeConsumer(.group(group, topics: topics))
    }
    logger.notice("consuming \(topics.joined(separator: ", ")) as group \(group)")
    // The batch being processed (in a task of its own, so a stop that arrives meanwhile lets its
    // transaction finish) and its records, whose offsets are committed once it is done.
    var inFlight: (records: [LogRecord], task: Task<Void, any Error>)?
    // With `overlapping`, a written batch's offsets are committed while the next batch is written
    // (the commit is a write to the log, which may wait behind the log's other writers, such as the
    // relay's appends; the next transaction need not wait for it). A commit is awaited before the
    // next one starts, so they stay in order and a failed one stops the loop one batch later.
    var committing: Task<Void, any Error>?
    func settle() async throws {
        guard let (records, task) = inFlight else { return }
        inFlight = nil
        try await task.value
        try await awaitCommit()
        let commit = Task {
            do {
                try await retrier.inLoop("consumer", "committing offsets") { try await consumer.commit(records) }
            } catch let error as LogError where error.code == .groupBusy {
                logger.notice("commit refused by a rebalance, polling again: \(error)")
            }
        }
        committing = commit
        if !overlapping { try await awaitCommit() }
    }
    func awaitCommit() async throws {
        guard let commit = committing else { return }
        committing = nil
        try await commit.value
    }
    /// Waits for the batch in flight and its offsets' commit.
    func settleAll() async throws {
        try await settle()
        try await awaitCommit()
    }
    do {
        while !Task.isCancelled {
            let records: [LogRecord]
            do {
                records = try await retrier.inLoop("consumer", "polling the bus") {
                    try await consumer.poll(maxRecords: maxRecords, timeout: .milliseconds(inFlight == nil ? 200 : 0))
                }
            } catch is CancellationError {
                break
            } catch let error as LogError where error.code == .groupBusy {
                try await settleAll()
                continue  // the group rebalanced under this member: poll again
            }
            if let partitions = try? await consumer.assignment() {
                let numbers = Set(partitions.map(\.partition))
                if assigned.set(numbers) {
                    logger.notice("holding partitions \(numbers.sorted().map(String.init).joined(separator: ","))")
                }
            }
            if records.isEmpty {
                try await settleAll()
                continue
            }
            let prepared = try await retrier.inLoop("consumer", "preparing a batch of \(records.count) for \(what)") {
                try await prepare(records)
            }
            try await settle()
            let count = records.count
            inFlight = (
                records,
                Task {
                    _ = try await retrier.inLoop("consumer", "applying a batch of \(count) to \(what)") {
                        try await process(prepared)
                    }
                }
            )
            if !overlapping { try await settle() }
        }
        try await settleAll()
    } catch {
        _ = try? await inFlight?.task.value
        _ = try? await committing?.value
        await consumer.close()
        throw error
    }
    await consumer.close()
}

/// The partition numbers the consumer holds, shared with the timer loop (a partition number is the
/// same on every input topic: they are keyed by application id with one partition count).
/// ``consumeInBatches`` records them; the orchestrator's and the citizen services' timer loops read them.
public final class Assignment: Sendable {
    private let partitions = Mutex<Set<Int>?>(nil)
    public init() {}
    /// The partition numbers held; `nil` before the first poll.
    public func get() -> Set<Int>? { partitions.withLock { $0 } }
    /// Records the partitions held now. - Returns: whether they changed.
    @discardableResult
    public func set(_ new: Set<Int>) -> Bool {
        partitions.withLock { held in
            let changed = held != new
            held = new
            return changed
        }
    }
}
