import EventLog
import Synchronization

/// Appends the records of concurrent requests together: group commit for the front desk.
///
/// Each request hands over its record and waits for its position. While an append is on its
/// way to the log, the records that arrive meanwhile wait; when it returns, all of them go in one
/// `append` (one SQLite transaction on the embedded log, one produce batch on Kafka), up to
/// ``largestBatch`` at a time. A lone request is appended at once, as before; under load the
/// transactions are shared, which is where the front desk's time went (one transaction per
/// submission).
///
/// The promise of a 202 holds: ``append(_:)`` returns only after the `append` that carried the
/// record returned, that is after the log stored it durably (``EventLog/append(_:)``). When that
/// append throws, every request of the batch gets the error (503: nothing of it was accepted; on
/// Kafka a part may have been stored, which the event ids let consumers drop when the client
/// submits again).
final class GroupAppender: Sendable {
    /// The most records appended in one call.
    static let largestBatch = 256

    private struct Waiting {
        var record: OutgoingRecord
        var continuation: CheckedContinuation<RecordPosition, any Error>
    }
    private struct State {
        var waiting: [Waiting] = []
        /// Whether a task is appending (and will take what waits when it returns).
        var appending = false
    }

    let log: any EventLog
    private let state = Mutex(State())

    init(log: any EventLog) { self.log = log }

    /// Appends `record` with whatever other requests hand over meanwhile.
    /// - Returns: where it landed, once the log stored it.
    /// - Throws: the log's error for the batch that carried it.
    func append(_ record: OutgoingRecord) async throws -> RecordPosition {
        try await withCheckedThrowingContinuation { continuation in
            let lead = state.withLock { state in
                state.waiting.append(Waiting(record: record, continuation: continuation))
                if state.appending { return false }
                state.appending = true
                return true
            }
            if lead { Task { await self.drain() } }
        }
    }

    /// Appends what waits, batch after batch, until nothing does.
    private func drain() async {
        while true {
            let batch: [Waiting] = state.withLock { state in
                guard !state.waiting.isEmpty else {
                    state.appending = false
                    return []
                }
                let count = min(state.waiting.count, Self.largestBatch)
                let batch = Array(state.waiting.prefix(count))
                state.waiting.removeFirst(count)
                return batch
            }
            if batch.isEmpty { return }
            do {
                let positions = try await log.append(batch.map(\.record))
                guard positions.count == batch.count else {
                    throw LogError(
                        .storage, "the log answered \(positions.count) positions for \(batch.count) records appended",
                        subject: batch[0].record.topic)
                }
                for (waiting, position) in zip(batch, positions) { waiting.continuation.resume(returning: position) }
            } catch {
                for waiting in batch { waiting.continuation.resume(throwing: error) }
            }
        }
    }
}
