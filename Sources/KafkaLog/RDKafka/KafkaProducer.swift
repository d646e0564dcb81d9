internal import CRDKafka
import EventLog
import Foundation
import Synchronization

/// The delivery reports of one `append`: resumes the caller when the last record is reported.
///
/// librdkafka gets one opaque per record, a pointer to that record's ``Slot`` in this batch's one
/// slot array; a report writes its slot and counts down, and the last one builds the result. The
/// batch keeps itself alive (one retain for the whole batch) until then, or until the producer
/// fails what is left after destroying its client.
final class DeliveryBatch: @unchecked Sendable {
    // @unchecked Sendable: each slot's result is written by exactly one report before the atomic
    // countdown (release) and read only by whoever brings it to zero (acquire); the rest of a
    // slot is written once, in `init`; `finish` is a Mutex.
    struct Slot {
        let batch: Unmanaged<DeliveryBatch>
        var partition: Int32 = -1
        var error: Int32 = 0
        var offset: Int64 = -1
    }

    private struct Finish {
        var continuation: CheckedContinuation<[RecordPosition], any Error>?
        var retained: Unmanaged<DeliveryBatch>?
    }

    let slots: UnsafeMutablePointer<Slot>
    let count: Int
    /// Each record's topic (an append may span topics).
    let topics: [String]
    let producer: ProducerState
    private let remaining: Atomic<Int>
    private let finish: Mutex<Finish>

    init(topics: [String], producer: ProducerState, continuation: CheckedContinuation<[RecordPosition], any Error>) {
        let count = topics.count
        self.count = count
        self.topics = topics
        self.producer = producer
        remaining = Atomic(count)
        finish = Mutex(Finish(continuation: continuation))
        slots = UnsafeMutablePointer<Slot>.allocate(capacity: count)
        let retained = Unmanaged.passRetained(self)
        for index in 0..<count { (slots + index).initialize(to: Slot(batch: retained)) }
        finish.withLock { $0.retained = retained }
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    static var slotStride: Int { MemoryLayout<Slot>.stride }

    /// Reports record `index`: where it landed, or librdkafka's error code.
    func report(_ index: Int, partition: Int32, offset: Int64, error: rd_kafka_resp_err_t) {
        slots[index].partition = partition
        slots[index].offset = offset
        slots[index].error = error.rawValue
        if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { complete() }
    }

    /// The last report: the positions, or the first record's failure.
    private func complete() {
        var result: Result<[RecordPosition], any Error>
        if let failed = (0..<count).first(where: { slots[$0].error != 0 }) {
            let slot = slots[failed]
            let code = rd_kafka_resp_err_t(rawValue: slot.error)
            if code == RD_KAFKA_RESP_ERR__FATAL, let fatal = producer.fatal {
                result = .failure(fatal)
            } else {
                var failure = KafkaErrors.error(code, "delivering record \(failed) of the append", subject: topics[failed])
                if slot.partition >= 0 { failure.subject = "\(topics[failed])[\(slot.partition)]" }
                result = .failure(failure)
            }
        } else {
            result = .success(
                (0..<count).map { RecordPosition(topic: topics[$0], partition: Int(slots[$0].partition), offset: slots[$0].offset) })
        }
        resume(result)
    }

    private func resume(_ result: Result<[RecordPosition], any Error>) {
        let taken = finish.withLock { finish -> (CheckedContinuation<[RecordPosition], any Error>, Unmanaged<DeliveryBatch>?)? in
            guard let continuation = finish.continuation else { return nil }
            finish.continuation = nil
            defer { finish.retained = nil }
            return (continuation, finish.retained)
        }
        guard let (continuation, retained) = taken else { return }
        producer.unregister(self)
        continuation.resume(with: result)
        retained?.release()
    }

    /// Fails the append if it is not finished; only once librdkafka can no longer report its
    /// records (or before any was handed to it).
    func failRemaining(_ error: LogError) {
        resume(.failure(error))
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
    let slots = context.assumingMemoryBound(to: DeliveryBatch.Slot.self)
    let error = message.pointee.err
    if error == RD_KAFKA_RESP_ERR__FATAL, let client, let opaque {
        Unmanaged<ProducerState>.fromOpaque(opaque).takeUnretainedValue().raiseFatal(ProducerState.fatalError(client))
    }
    let batch = slots.pointee.batch.takeUnretainedValue()
    let index = (Int(bitPattern: context) - Int(bitPattern: batch.slots)) / DeliveryBatch.slotStride
    batch.report(index, partition: message.pointee.partition, offset: message.pointee.offset, error: error)
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
    // `destroyed` and `topicHandles` are read and written only on the producer's serial queue; the report thread ends
    // before `client` is destroyed.
    let client: OpaquePointer
    let state: ProducerState
    let closeTimeoutMilliseconds: Int32
    private let running = RunFlag()
    private let stopped = DispatchSemaphore(value: 0)
    private var destroyed = false
    private var topicHandles: [String: OpaquePointer] = [:]

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

    /// Enqueues the records of one batch: laid out in one byte buffer and handed to librdkafka in
    /// one C call (no per-record Swift closures or C-string conversions). On the producer's queue.
    func produce(_ records: [OutgoingRecord], batch: DeliveryBatch) {
        if destroyed {
            batch.failRemaining(LogError(.closed, "the Kafka log is closed", remedy: "open the bus again", subject: batch.topics[0]))
            return
        }
        if let fatal = state.fatal {
            batch.failRemaining(fatal)
            return
        }
        state.register(batch)
        var bytes: [UInt8] = [0]  // never empty, so every offset is inside the buffer
        bytes.reserveCapacity(records.reduce(64) { $0 + $1.value.count + ($1.key?.count ?? 0) + $1.headers.count * 48 })
        var layout: [onewindow_record_t] = []
        layout.reserveCapacity(records.count)
        var headers: [onewindow_header_t] = []
        headers.reserveCapacity(records.count * (records.first?.headers.count ?? 0))
        var topicIndex: [String: Int64] = [:]
        var handles: [OpaquePointer?] = []
        for record in records {
            let topic: Int64
            if let known = topicIndex[record.topic] {
                topic = known
            } else {
                topic = Int64(handles.count)
                topicIndex[record.topic] = topic
                handles.append(self.topic(record.topic))
            }
            let firstHeader = Int64(headers.count)
            for header in record.headers {
                let nameOffset = Int64(bytes.count)
                bytes.append(contentsOf: header.name.utf8)
                let valueOffset = Int64(bytes.count)
                bytes.append(contentsOf: header.value)
                headers.append(
                    onewindow_header_t(
                        name_offset: nameOffset, name_length: valueOffset - nameOffset, value_offset: valueOffset,
                        value_length: Int64(bytes.count) - valueOffset))
            }
            var keyOffset: Int64 = -1
            var keyLength: Int64 = 0
            if let key = record.key {
                keyOffset = Int64(bytes.count)
                bytes.append(contentsOf: key)
                keyLength = Int64(key.count)
            }
            let valueOffset = Int64(bytes.count)
            bytes.append(contentsOf: record.value)
            layout.append(
                onewindow_record_t(
                    topic: topic, partition: Int64(record.partition ?? Int(RD_KAFKA_PARTITION_UA)),
                    timestamp_ms: record.timestamp.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) } ?? 0,
                    key_offset: keyOffset, key_length: keyLength, value_offset: valueOffset,
                    value_length: Int64(record.value.count), first_header: firstHeader,
                    header_count: Int64(record.headers.count)))
        }
        var next = 0
        while next < records.count {
            var error = RD_KAFKA_RESP_ERR_NO_ERROR
            let stopped = bytes.withUnsafeBufferPointer { bytes in
                layout.withUnsafeBufferPointer { layout in
                    headers.withUnsafeBufferPointer { headers in
                        handles.withUnsafeBufferPointer { handles in
                            onewindow_produce_batch(
                                client, handles.baseAddress, layout.baseAddress, next, records.count, headers.baseAddress,
                                bytes.baseAddress, UnsafeMutableRawPointer(batch.slots).assumingMemoryBound(to: CChar.self),
                                DeliveryBatch.slotStride, &error)
                        }
                    }
                }
            }
            if stopped >= records.count { break }
            // Refused: no report will come for this record; fail it here and go on after it.
            if error == RD_KAFKA_RESP_ERR__FATAL { state.raiseFatal(ProducerState.fatalError(client)) }
            batch.report(stopped, partition: -1, offset: -1, error: error)
            next = stopped + 1
        }
    }

    /// librdkafka's handle of a topic, made once per topic (producing through it saves the lookup
    /// by name per record); destroyed in `shutdown`.
    private func topic(_ name: String) -> OpaquePointer? {
        if let known = topicHandles[name] { return known }
        let made = rd_kafka_topic_new(client, name, nil)
        topicHandles[name] = made
        return made
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
        for handle in topicHandles.values { rd_kafka_topic_destroy(handle) }
        topicHandles = [:]
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
            let batch = DeliveryBatch(topics: records.map(\.topic), producer: core.state, continuation: continuation)
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
