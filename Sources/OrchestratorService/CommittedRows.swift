import Synchronization

/// The outbox rows an engine's consumer has just committed, handed to the same engine's relay in
/// memory so that it publishes them without reading them back from the store (the relay's reading
/// was the largest share of the benchmark's wall time: a pool reader waited for and the rows
/// decoded again, for rows the consumer had in hand).
///
/// The store stays the source of truth. The relay publishes from here only when the first row
/// held is exactly the next after the position it published through (``OrchestratorStore/relayed(through:)``)
/// and that position was read from the store in this run; the rows held are always consecutive
/// seqs. Otherwise it reads the store, as before: at start, after a restart, when rows arrived
/// that were not handed over (the timer loop's, a batch planned again in its transaction, another
/// engine's or process's), when the queue was full, or when two hand-overs left a gap. Only the
/// rows of a transaction that committed, as planned, are handed over
/// (``OrchestratorStore/commit(_:core:checker:writeCPU:committed:)``), so a row here is a row in
/// the store with that seq and that content.
///
/// Also keeps whether the store may hold rows that were not handed over (``storeMayHaveMore(within:)``),
/// so that the relay loop does not read an outbox it knows to be empty at every round.
final class CommittedRows: Sendable {
    private struct State {
        /// Consecutive seqs, in order, from `head` on (rows before `head` are published).
        var rows: [OutboxRow] = []
        var head = 0
        /// Counts the writes whose rows were not handed over (and the rows dropped here); the
        /// store is read again while `storeRead` is behind it.
        var notHandedOver: UInt64 = 1
        var storeRead: UInt64 = 0
        /// When the store was last read to its end (rows another process wrote are found then).
        var readAt: ContinuousClock.Instant?
        /// The consumer's transactions under way, whose rows are about to be handed over.
        var committing = 0

        var count: Int { rows.count - head }
        mutating func replace(with new: [OutboxRow]) {
            rows = new
            head = 0
        }
    }
    private let state = Mutex(State())
    /// The most rows held: a hand-over that would go beyond it is dropped (the relay reads them
    /// from the store).
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Hands over the rows of a committed transaction, in `seq` order. Rows that do not follow the
    /// ones held replace them (the relay reads the gap from the store); rows beyond the capacity, or
    /// not consecutive among themselves, are dropped and counted as not handed over.
    func handOver(_ new: [OutboxRow]) {
        guard let first = new.first, let last = new.last else { return }
        state.withLock { state in
            guard last.seq - first.seq == Int64(new.count - 1), new.count <= capacity else {
                state.notHandedOver &+= 1
                return
            }
            if state.count == 0 || state.rows.last.map({ $0.seq + 1 }) != first.seq {
                state.replace(with: new)
                return
            }
            guard state.count + new.count <= capacity else {
                state.notHandedOver &+= 1
                return
            }
            if state.head > 0 && state.head >= state.rows.count / 2 {
                state.rows.removeFirst(state.head)
                state.head = 0
            }
            state.rows.append(contentsOf: new)
        }
    }

    /// Notes a write whose outbox rows were not handed over (the timer loop's, a batch planned
    /// again): the relay reads the store before it trusts the outbox to be empty.
    func wroteWithoutHandingOver() {
        state.withLock { $0.notHandedOver &+= 1 }
    }

    /// What ``take(after:limit:)`` found.
    enum Taken: Equatable {
        /// The next rows to publish.
        case rows([OutboxRow])
        /// Nothing held.
        case empty
        /// Rows held, but not the next ones (or the position is not known yet): the store has
        /// rows before them.
        case gap
    }

    /// The first `limit` rows after `published` when the rows held begin exactly there (those
    /// through `published` are forgotten). The rows stay held until the position moves past
    /// them, so a publish that fails is tried again from here.
    /// - Parameter published: the relay's position; `nil` when it is not known yet.
    func take(after published: Int64?, limit: Int) -> Taken {
        state.withLock { state in
            if let published {
                while state.head < state.rows.count && state.rows[state.head].seq <= published { state.head += 1 }
            }
            if state.head == state.rows.count { state.replace(with: []) }
            guard state.count > 0 else { return .empty }
            guard let published, state.rows[state.head].seq == published + 1 else { return .gap }
            return .rows(Array(state.rows[state.head..<min(state.rows.count, state.head + limit)]))
        }
    }

    /// Whether the relay should read the store although nothing was handed over: rows were
    /// written that were not handed over since its last read to the end, or `interval` passed
    /// since then (rows of another process on the same file are found within it) and no
    /// transaction of the consumer is under way. While one is, its rows come with its hand-over
    /// (and rows another process wrote before them show as a gap there): a timed read then found
    /// them in the store first, committed a few milliseconds before the hand-over (the writer
    /// copying the WAL after its commit, or waiting for a core), in half the throughput run's
    /// batches.
    func storeMayHaveMore(within interval: Duration) -> Bool {
        state.withLock { state in
            guard state.storeRead == state.notHandedOver, let readAt = state.readAt else { return true }
            return state.committing == 0 && ContinuousClock.now - readAt >= interval
        }
    }

    /// Notes a transaction of the consumer beginning (`true`) or over (`false`, committed or
    /// not: one that failed is noted with ``wroteWithoutHandingOver()`` first).
    func committing(_ begins: Bool) {
        state.withLock { $0.committing += begins ? 1 : -1 }
    }

    /// Called before a read of the store: the token to give ``readStore(_:toTheEnd:)`` after it.
    func readingStore() -> UInt64 {
        state.withLock { $0.notHandedOver }
    }

    /// Called after a read of the store that began at `token`: when it read to the end of the
    /// outbox, what was written before it began is published.
    func readStore(_ token: UInt64, toTheEnd: Bool) {
        guard toTheEnd else { return }
        state.withLock {
            $0.storeRead = token
            $0.readAt = .now
        }
    }
}
