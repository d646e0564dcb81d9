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
    var count: Int { records.count }
    /// The append's records (shared with the caller's array, not copied): each one's topic, as
    /// an append may span topics.
    let records: [OutgoingRecord]
    let producer: ProducerState
    private let remaining: Atomic<Int>
    private let finish: Mutex<Finish>

    init(records: [OutgoingRecord], producer: ProducerState, continuation: CheckedContinuation<[RecordPosition], any Error>) {
        let count = records.count
        self.records = records
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
                var failure = KafkaErrors.error(code, "delivering record \(failed) of the append", subject: records[failed].topic)
                if slot.partition >= 0 { failure.subject = "\(records[failed].topic)[\(slot.partition)]" }
                result = .failure(failure)
            }
        } else {
            result = .success(
                (0..<count).map { RecordPosition(topic: records[$0].topic, partition: Int(slots[$0].partition), offset: slots[$0].offset) })
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
        error.code = .fatal
        error.reason = "the producer hit a fatal error and refuses further records: \(reason.isEmpty ? error.reason : reason)"
        error.remedy =
            "close the bus and open it again (a new producer); records not acknowledged before may or may not be written"
        error.backendName = "RD_KAFKA_RESP_ERR__FATAL (" + KafkaErrors.name(code) + ")"
        error.isRetriable = false
        return error
    }
}

/// librdkafka's delivery report callback: runs on the producer thread, inside `rd_kafka_poll` or
/// `rd_kafka_flush`, once per message.
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

/// The librdkafka side of a producer: the client and the one thread that drives it.
///
/// The thread produces every submitted append and serves the client's delivery reports
/// (`rd_kafka_poll`) in one loop, as a plain librdkafka producer program does: a busy producer
/// frees each message on the thread that allocated it, which keeps malloc's per-thread caches
/// warm (with a separate report thread freeing them, `perf` showed the hub spending more in
/// malloc's arena work, `malloc_consolidate` and `unlink_chunk`, than librdkafka alone; docs/KAFKA.md). When there is nothing to produce it waits in
/// `rd_kafka_poll`; a submit wakes it with `rd_kafka_queue_yield` on the queue that poll serves.
/// Closing flushes, purges what is left after the close timeout, and frees the client, on the
/// same thread. Blocking C calls thus never run on the cooperative pool.
final class ProducerCore: @unchecked Sendable {
    // @unchecked Sendable: `client` is thread-safe for produce/poll/flush/yield (librdkafka's
    // contract); `topicHandles` is used only on the producer thread; `inbox` is a Mutex; `client`
    // and `mainQueue` are destroyed on the producer thread after the last append was taken.
    let client: OpaquePointer
    let state: ProducerState
    let closeTimeoutMilliseconds: Int32
    /// The queue `rd_kafka_poll` serves, held to wake the thread with `rd_kafka_queue_yield`.
    private let mainQueue: OpaquePointer
    private let inbox = Mutex(Inbox())
    private var topicHandles: [String: OpaquePointer] = [:]

    /// What other threads hand the producer thread.
    private struct Inbox {
        var appends: [DeliveryBatch] = []
        /// Set by `close`: no append is taken after it.
        var closing = false
        /// Set by the thread when it leaves its loop, before it destroys the queue: no more wakes.
        var stopped = false
        /// Set by the thread once the client is destroyed.
        var finished = false
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
    }

    init(configuration: KafkaConfiguration) throws {
        let conf = try makeConf(configuration.producerProperties)
        rd_kafka_conf_set_dr_msg_cb(conf, deliveryReport)
        rd_kafka_conf_set_error_cb(conf, producerError)
        let state = ProducerState()
        // Unretained: this core keeps the state alive until after `rd_kafka_destroy`.
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(state).toOpaque())
        self.state = state
        client = try makeClient(RD_KAFKA_PRODUCER, conf, logger: configuration.librdkafkaLogger)
        mainQueue = rd_kafka_queue_get_main(client)
        closeTimeoutMilliseconds = Int32(clamping: configuration.closeTimeout.milliseconds)
        // The thread keeps the core alive until the client is destroyed.
        let thread = Thread { [self] in run() }
        thread.name = "onewindow.kafka.producer"
        thread.start()
    }

    /// Hands an append to the producer thread.
    /// - Returns: `false` when the producer is closing or closed (the append was not taken).
    func submit(_ batch: DeliveryBatch) -> Bool {
        inbox.withLock { inbox -> Bool in
            if inbox.closing { return false }
            inbox.appends.append(batch)
            wake(inbox)
            return true
        }
    }

    /// Wakes the thread from `rd_kafka_poll`. Called with the inbox locked, so the queue cannot be
    /// destroyed meanwhile (the thread marks `stopped` under the lock before destroying it).
    private func wake(_ inbox: borrowing Inbox) {
        if !inbox.stopped { rd_kafka_queue_yield(mainQueue) }
    }

    /// Refuses further appends, lets the thread produce the ones already taken, flush, purge and
    /// free the client, and returns when it has. Idempotent; safe from any thread or task.
    func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let finished = inbox.withLock { inbox -> Bool in
                if !inbox.closing { KafkaTeardown.begin() }
                inbox.closing = true
                if inbox.finished { return true }
                inbox.closeWaiters.append(continuation)
                wake(inbox)
                return false
            }
            if finished { continuation.resume() }
        }
    }

    /// Starts closing without waiting (the safety net for a producer dropped without `close`).
    func beginClose() {
        inbox.withLock { inbox in
            if !inbox.closing { KafkaTeardown.begin() }
            inbox.closing = true
            wake(inbox)
        }
    }

    /// The producer thread: produce what was submitted, serve delivery reports, and shut down
    /// once closing with nothing left to take.
    private func run() {
        while true {
            let (appends, closing) = inbox.withLock { inbox in
                defer { inbox.appends = [] }
                return (inbox.appends, inbox.closing)
            }
            if appends.isEmpty {
                if closing { break }
                // Returns on a delivery report, an error event, or a submit's yield.
                rd_kafka_poll(client, 1000)
                continue
            }
            for batch in appends { produce(batch) }
        }
        inbox.withLock { $0.stopped = true }
        shutdown()
        KafkaTeardown.end()  // begun when closing was set, which is what ended the loop
        let waiters = inbox.withLock { inbox in
            inbox.finished = true
            defer { inbox.closeWaiters = [] }
            return inbox.closeWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Enqueues the records of one append, each handed to librdkafka straight from its own bytes
    /// (librdkafka copies them). Every `reportInterval` records, and after the append, it serves
    /// the delivery reports that are ready. On the producer thread.
    private func produce(_ batch: DeliveryBatch) {
        if let fatal = state.fatal {
            batch.failRemaining(fatal)
            return
        }
        state.register(batch)
        var lastTopic: (name: String, handle: OpaquePointer?)?
        for (index, record) in batch.records.enumerated() {
            let handle: OpaquePointer?
            if let lastTopic, lastTopic.name == record.topic {
                handle = lastTopic.handle
            } else {
                handle = topic(record.topic)
                lastTopic = (record.topic, handle)
            }
            let error = produce(record, topic: handle, opaque: UnsafeMutableRawPointer(batch.slots + index))
            if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                // Refused: no report will come for this record; fail it here and go on.
                if error == RD_KAFKA_RESP_ERR__FATAL { state.raiseFatal(ProducerState.fatalError(client)) }
                batch.report(index, partition: -1, offset: -1, error: error)
            }
            if index % Self.reportInterval == Self.reportInterval - 1 { rd_kafka_poll(client, 0) }
        }
        rd_kafka_poll(client, 0)
    }

    /// How many records `produce` enqueues between two servings of ready delivery reports.
    static let reportInterval = 64

    /// One record: its headers into a librdkafka header list, then key and value by pointer.
    private func produce(_ record: OutgoingRecord, topic: OpaquePointer?, opaque: UnsafeMutableRawPointer) -> rd_kafka_resp_err_t {
        let headers = rd_kafka_headers_new(record.headers.count)
        for header in record.headers {
            var name = header.name
            name.withUTF8 { name in
                header.value.withUnsafeBytes { value in
                    onewindow_header_add(headers, name.baseAddress, name.count, value.baseAddress, value.count)
                }
            }
        }
        let partition = Int32(record.partition ?? Int(RD_KAFKA_PARTITION_UA))
        let timestamp = record.timestamp?.millisecondsSince1970 ?? 0
        let key = record.key ?? Data()
        let hasKey: Int32 = record.key == nil ? 0 : 1
        return key.withUnsafeBytes { key in
            record.value.withUnsafeBytes { value in
                onewindow_produce(
                    client, topic, partition, timestamp, hasKey, key.baseAddress, key.count, value.baseAddress, value.count,
                    headers, opaque)
            }
        }
    }

    /// librdkafka's handle of a topic, made once per topic (producing through it saves the lookup
    /// by name per record); destroyed in `shutdown`. On the producer thread.
    private func topic(_ name: String) -> OpaquePointer? {
        if let known = topicHandles[name] { return known }
        let made = rd_kafka_topic_new(client, name, nil)
        topicHandles[name] = made
        return made
    }

    /// Waits up to the close timeout for in-flight records; then purges what is left, so every
    /// record still gets its report (`_PURGE_QUEUE`: never sent; `_PURGE_INFLIGHT`: sent, outcome
    /// unknown); frees the client. Any batch librdkafka did not report is failed afterwards. On
    /// the producer thread, once.
    private func shutdown() {
        if rd_kafka_flush(client, closeTimeoutMilliseconds) != RD_KAFKA_RESP_ERR_NO_ERROR {
            _ = rd_kafka_purge(client, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            // Purged messages are reported locally, without the broker: this is quick.
            _ = rd_kafka_flush(client, 5000)
        }
        for handle in topicHandles.values { rd_kafka_topic_destroy(handle) }
        topicHandles = [:]
        rd_kafka_queue_destroy(mainQueue)
        destroyClient(client)
        for batch in state.takeBatches() {
            batch.failRemaining(
                LogError(
                    .closed, "the Kafka log was closed before the broker acknowledged these records",
                    remedy: "they may or may not have been written; append them again (consumers are idempotent)",
                    subject: batch.records[0].topic))
        }
    }
}

/// An idempotent producer: every append is resolved by its delivery reports. One thread produces
/// and serves the reports (``ProducerCore``), off the cooperative pool (producing blocks when
/// librdkafka's queue is full).
///
/// Closing is safe with appends in flight: an append either was taken before the close (its
/// records are flushed or purged, and reported) or is refused with `.closed`.
final class KafkaProducer: Sendable {
    private let core: ProducerCore

    init(configuration: KafkaConfiguration) throws {
        core = try ProducerCore(configuration: configuration)
    }

    deinit {
        // The safety net for a producer dropped without `close`: the thread frees the client.
        core.beginClose()
    }

    /// Produces records and waits for every delivery report.
    /// - Throws: ``LogError`` `.closed` after ``close()``, `.fatal` after a fatal producer error,
    ///   or the first record's failure.
    func produce(_ records: [OutgoingRecord]) async throws -> [RecordPosition] {
        if let fatal = core.state.fatal { throw fatal }
        let core = self.core
        return try await withCheckedThrowingContinuation { continuation in
            let batch = DeliveryBatch(records: records, producer: core.state, continuation: continuation)
            if !core.submit(batch) {
                batch.failRemaining(
                    LogError(.closed, "the Kafka log is closed", remedy: "open the bus again", subject: records[0].topic))
            }
        }
    }

    /// Refuses new appends, then, after every append already taken, flushes (purging after the
    /// close timeout) and frees the client. Never blocks the caller's thread.
    func close() async {
        await core.close()
    }
}
