internal import CRDKafka
import EventLog
import Foundation
import Synchronization

/// The delivery reports of one `append`: resumes the caller when the last record is reported.
///
/// librdkafka gets one opaque per record, a pointer to that record's ``Slot`` in this batch's one
/// slot array; the batch keeps itself alive (one retain for the whole batch) until its last report,
/// or until the producer fails what is left after destroying its client.
final class DeliveryBatch: @unchecked Sendable {
    // @unchecked Sendable: `slots` is written once, in `init`, and only read afterwards; `state`
    // is a Mutex.
    struct Slot {
        let batch: Unmanaged<DeliveryBatch>
        let index: Int
    }

    struct State {
        var remaining: Int
        var positions: [RecordPosition?]
        var error: LogError?
        var continuation: CheckedContinuation<[RecordPosition], any Error>?
        var retained: Unmanaged<DeliveryBatch>?
    }

    let slots: UnsafeMutablePointer<Slot>
    let count: Int
    /// Each record's topic (an append may span topics).
    let topics: [String]
    let state: Mutex<State>

    init(topics: [String], continuation: CheckedContinuation<[RecordPosition], any Error>) {
        let count = topics.count
        self.count = count
        self.topics = topics
        state = Mutex(State(remaining: count, positions: Array(repeating: nil, count: count), continuation: continuation))
        slots = UnsafeMutablePointer<Slot>.allocate(capacity: count)
        let retained = Unmanaged.passRetained(self)
        for index in 0..<count { (slots + index).initialize(to: Slot(batch: retained, index: index)) }
        state.withLock { $0.retained = retained }
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    /// The opaque librdkafka carries for record `index`.
    func opaque(_ index: Int) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(slots + index) }

    /// Reports one record. Returns true when it was the batch's last.
    @discardableResult
    func complete(_ index: Int, _ result: Result<RecordPosition, LogError>) -> Bool {
        let finished = state.withLock {
            state -> (CheckedContinuation<[RecordPosition], any Error>, Result<[RecordPosition], any Error>, Unmanaged<DeliveryBatch>?)? in
            guard state.remaining > 0 else { return nil }
            switch result {
            case .success(let position): state.positions[index] = position
            case .failure(let error): if state.error == nil { state.error = error }
            }
            state.remaining -= 1
            guard state.remaining == 0, let continuation = state.continuation else { return nil }
            state.continuation = nil
            let retained = state.retained
            state.retained = nil
            if let error = state.error { return (continuation, .failure(error), retained) }
            return (continuation, .success(state.positions.map { $0! }), retained)
        }
        guard let (continuation, outcome, retained) = finished else { return false }
        continuation.resume(with: outcome)
        retained?.release()
        return true
    }

    /// Fails every record not reported yet; only once librdkafka can no longer report them.
    func failRemaining(_ error: LogError) {
        let finished = state.withLock {
            state -> (CheckedContinuation<[RecordPosition], any Error>, Unmanaged<DeliveryBatch>?)? in
            guard state.remaining > 0, let continuation = state.continuation else { return nil }
            state.remaining = 0
            state.continuation = nil
            let retained = state.retained
            state.retained = nil
            return (continuation, retained)
        }
        guard let (continuation, retained) = finished else { return }
        continuation.resume(throwing: error)
        retained?.release()
    }
}

/// What librdkafka's callbacks share with the producer (the client's opaque): the fatal error,
/// once one is raised, and the batches still waiting for reports.
final class ProducerState: Sendable {
    private struct State {
        var fatal: LogError?
        var batches: [ObjectIdentifier: DeliveryBatch] = [:]
    }

    private let state = Mutex(State())

    var fatal: LogError? { state.withLock { $0.fatal } }

    func raiseFatal(_ error: LogError) {
        state.withLock { if $0.fatal == nil { $0.fatal = error } }
    }

    func register(_ batch: DeliveryBatch) {
        state.withLock { $0.batches[ObjectIdentifier(batch)] = batch }
    }

    func unregister(_ batch: DeliveryBatch) {
        _ = state.withLock { $0.batches.removeValue(forKey: ObjectIdentifier(batch)) }
    }

    func takeBatches() -> [DeliveryBatch] {
        state.withLock { state in
            defer { state.batches = [:] }
            return Array(state.batches.values)
        }
    }

    /// The fatal error librdkafka raised, read with `rd_kafka_fatal_error` for its reason.
    static func fatalError(_ client: OpaquePointer) -> LogError {
        var buffer = [CChar](repeating: 0, count: 512)
        let code = rd_kafka_fatal_error(client, &buffer, buffer.count)
        let reason = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var error = KafkaErrors.error(code == RD_KAFKA_RESP_ERR_NO_ERROR ? RD_KAFKA_RESP_ERR__FATAL : code, "producing")
        error.code = .closed
        error.reason = "the producer hit a fatal error and refuses further records: \(reason.isEmpty ? error.reason : reason)"
        error.remedy =
            "close the bus and open it again (a new producer); records not acknowledged before may or may not be written"
        error.backendName = "RD_KAFKA_RESP_ERR__FATAL (" + KafkaErrors.name(code) + ")"
        error.isRetriable = false
        return error
    }
}

/// librdkafka's delivery report callback: runs on a thread serving `rd_kafka_poll` (the report
/// thread, or the closing thread inside `rd_kafka_flush`), once per message.
private func deliveryReport(
    _ client: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let message, let context = message.pointee._private else { return }
    let slot = context.assumingMemoryBound(to: DeliveryBatch.Slot.self).pointee
    let batch = slot.batch.takeUnretainedValue()
    let error = message.pointee.err
    let result: Result<RecordPosition, LogError>
    if error == RD_KAFKA_RESP_ERR_NO_ERROR {
        result = .success(
            RecordPosition(topic: batch.topics[slot.index], partition: Int(message.pointee.partition), offset: message.pointee.offset))
    } else if error == RD_KAFKA_RESP_ERR__FATAL, let client, let opaque {
        let state = Unmanaged<ProducerState>.fromOpaque(opaque).takeUnretainedValue()
        let fatal = ProducerState.fatalError(client)
        state.raiseFatal(fatal)
        result = .failure(fatal)
    } else {
        let topic = batch.topics[slot.index]
        var failure = KafkaErrors.error(error, "delivering record \(slot.index) of the append", subject: topic)
        if message.pointee.partition >= 0 { failure.subject = "\(topic)[\(message.pointee.partition)]" }
        result = .failure(failure)
    }
    if batch.complete(slot.index, result), let opaque {
        Unmanaged<ProducerState>.fromOpaque(opaque).takeUnretainedValue().unregister(batch)
    }
}

/// librdkafka's error callback: only a fatal error matters here (the others are transient and
/// retried by librdkafka itself; the records they affect are reported through delivery reports).
private func producerError(
    _ client: OpaquePointer?, _ code: Int32, _ reason: UnsafePointer<CChar>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard code == RD_KAFKA_RESP_ERR__FATAL.rawValue, let client, let opaque else { return }
    Unmanaged<ProducerState>.fromOpaque(opaque).takeUnretainedValue().raiseFatal(ProducerState.fatalError(client))
}

/// The librdkafka side of a producer: the client, its delivery-report thread, and the shutdown
/// that frees them. Every call on it runs on the producer's serial queue.
final class ProducerCore: @unchecked Sendable {
    // @unchecked Sendable: `client` is thread-safe for produce/poll/flush (librdkafka's contract);
    // `destroyed` is read and written only on the producer's serial queue; the report thread ends
    // before `client` is destroyed.
    let client: OpaquePointer
    let state: ProducerState
    let closeTimeoutMilliseconds: Int32
    private let running = RunFlag()
    private let stopped = DispatchSemaphore(value: 0)
    private var destroyed = false

    init(configuration: KafkaConfiguration) throws {
        let conf = try makeConf(configuration.producerProperties)
        rd_kafka_conf_set_dr_msg_cb(conf, deliveryReport)
        rd_kafka_conf_set_error_cb(conf, producerError)
        let state = ProducerState()
        // Unretained: this core keeps the state alive until after `rd_kafka_destroy`.
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(state).toOpaque())
        self.state = state
        client = try makeClient(RD_KAFKA_PRODUCER, conf)
        closeTimeoutMilliseconds = Int32(clamping: configuration.closeTimeout.milliseconds)
        let handle = SendableHandle(client)
        let running = self.running
        let stopped = self.stopped
        let thread = Thread {
            while running.isOn { rd_kafka_poll(handle.pointer, 100) }
            stopped.signal()
        }
        thread.name = "onewindow.kafka.delivery-reports"
        thread.start()
    }

    /// Enqueues the records of one batch. On the producer's serial queue.
    func produce(_ records: [OutgoingRecord], batch: DeliveryBatch) {
        if destroyed {
            batch.failRemaining(LogError(.closed, "the Kafka log is closed", remedy: "open the bus again", subject: batch.topics[0]))
            return
        }
        state.register(batch)
        for (index, record) in records.enumerated() {
            if let fatal = state.fatal {
                fail(batch, index, fatal)
                continue
            }
            produce(record, index: index, batch: batch)
        }
    }

    private func fail(_ batch: DeliveryBatch, _ index: Int, _ error: LogError) {
        if batch.complete(index, .failure(error)) { state.unregister(batch) }
    }

    /// Hands one record to librdkafka, which reports it later; a record it refuses is failed here.
    private func produce(_ record: OutgoingRecord, index: Int, batch: DeliveryBatch) {
        let headers = rd_kafka_headers_new(record.headers.count)!
        for header in record.headers {
            header.value.withUnsafeBytes { value in
                _ = rd_kafka_header_add(headers, header.name, -1, value.baseAddress, value.count)
            }
        }
        let timestamp = record.timestamp.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) } ?? 0
        let partition = record.partition.map(Int32.init) ?? RD_KAFKA_PARTITION_UA
        let opaque = batch.opaque(index)
        while true {
            let error = record.value.withUnsafeBytes { value in
                withKey(record.key) { key, keyLength in
                    onewindow_produce(
                        client, record.topic, partition, key, keyLength, value.baseAddress, value.count, timestamp,
                        headers, opaque)
                }
            }
            if error == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                // Wait for room: delivery reports free the queue.
                rd_kafka_poll(client, 50)
                continue
            }
            if error == RD_KAFKA_RESP_ERR_NO_ERROR { return }
            // Not enqueued: the headers are still ours, and no report will come for this record.
            rd_kafka_headers_destroy(headers)
            let failure: LogError
            if error == RD_KAFKA_RESP_ERR__FATAL {
                failure = ProducerState.fatalError(client)
                state.raiseFatal(failure)
            } else {
                failure = KafkaErrors.error(error, "producing record \(index) of the append", subject: record.topic)
            }
            fail(batch, index, failure)
            return
        }
    }

    private func withKey<T>(_ key: Data?, _ body: (UnsafeRawPointer?, Int) -> T) -> T {
        guard let key else { return body(nil, 0) }
        return key.withUnsafeBytes { body($0.baseAddress, $0.count) }
    }

    /// Waits up to the close timeout for in-flight records; then purges what is left, so every
    /// record still gets its report (`_PURGE_QUEUE`: never sent; `_PURGE_INFLIGHT`: sent, outcome
    /// unknown); stops the report thread and frees the client. Any batch librdkafka did not report
    /// is failed afterwards. On the producer's serial queue; idempotent.
    func shutdown() {
        guard !destroyed else { return }
        destroyed = true
        if rd_kafka_flush(client, closeTimeoutMilliseconds) != RD_KAFKA_RESP_ERR_NO_ERROR {
            _ = rd_kafka_purge(client, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            // Purged messages are reported locally, without the broker: this is quick.
            _ = rd_kafka_flush(client, 5000)
        }
        running.turnOff()
        stopped.wait()
        rd_kafka_destroy(client)
        for batch in state.takeBatches() {
            batch.failRemaining(
                LogError(
                    .closed, "the Kafka log was closed before the broker acknowledged these records",
                    remedy: "they may or may not have been written; append them again (consumers are idempotent)",
                    subject: batch.topics[0]))
        }
    }
}

/// An idempotent producer: every append is resolved by its delivery reports. A dedicated thread
/// serves the reports (`rd_kafka_poll`); produce calls, the flush and the destroy run on one serial
/// queue, off the cooperative pool (producing blocks when librdkafka's queue is full).
///
/// Closing is safe with appends in flight: an append either was enqueued on the queue before the
/// close (its records are flushed or purged, and reported) or is refused with `.closed`.
final class KafkaProducer: Sendable {
    private let core: ProducerCore
    private let blocking = BlockingQueue(label: "onewindow.kafka.produce")
    private let closed = Mutex(false)

    init(configuration: KafkaConfiguration) throws {
        core = try ProducerCore(configuration: configuration)
    }

    deinit {
        // The safety net for a producer dropped without `close`: free the client on its queue.
        let core = self.core
        blocking.queue.async { core.shutdown() }
    }

    /// Produces records and waits for every delivery report.
    /// - Throws: ``LogError`` `.closed` after ``close()`` or after a fatal producer error, or the
    ///   first record's failure.
    func produce(_ records: [OutgoingRecord]) async throws -> [RecordPosition] {
        if let fatal = core.state.fatal { throw fatal }
        let core = self.core
        let queue = blocking.queue
        return try await withCheckedThrowingContinuation { continuation in
            let batch = DeliveryBatch(topics: records.map(\.topic), continuation: continuation)
            // Check and enqueue under the lock: a close that comes after is queued after this.
            let accepted = closed.withLock { closed -> Bool in
                if closed { return false }
                queue.async { core.produce(records, batch: batch) }
                return true
            }
            if !accepted {
                batch.failRemaining(
                    LogError(.closed, "the Kafka log is closed", remedy: "open the bus again", subject: records[0].topic))
            }
        }
    }

    /// Refuses new appends, then, after every append already queued, flushes (purging after the
    /// close timeout), stops the report thread and frees the client. Never blocks the caller's
    /// thread: the work runs on the producer's queue.
    func close() async {
        closed.withLock { $0 = true }
        let core = self.core
        let queue = blocking.queue
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                core.shutdown()
                continuation.resume()
            }
        }
    }
}

/// A flag a background thread polls to know when to stop.
final class RunFlag: Sendable {
    private let value = Atomic<Bool>(true)
    var isOn: Bool { value.load(ordering: .acquiring) }
    func turnOff() { value.store(false, ordering: .releasing) }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
