import CRDKafka
import EventLog
import Foundation
import Synchronization

/// Where one record's delivery report goes: its batch and its index in the append. librdkafka
/// gets a pointer to the record's slot as the message opaque.
struct DeliverySlot {
    /// The batch, unretained: the batch keeps itself alive until its last report (see below).
    var batch: UnsafeMutableRawPointer
    var index: Int
}

/// The delivery reports of one `append`: resumes the caller when the last record is reported.
///
/// Lifetime: ``start()`` retains the batch once for all its messages (one slot array, not one
/// object per record, so the delivery path allocates nothing per record); the report that
/// completes the last record releases it. Exactly one report arrives per enqueued message
/// (librdkafka's contract, also on timeout and purge); a record that could not be enqueued is
/// completed at once by the producer.
/// @unchecked Sendable: `slots` and `topics` are written before any message is enqueued (and so
/// before any report can read them) and never after; the mutable state is in a `Mutex`.
final class DeliveryBatch: @unchecked Sendable {
    struct State {
        var remaining: Int
        var positions: [RecordPosition?]
        var error: LogError?
        var continuation: CheckedContinuation<[RecordPosition], any Error>?
    }

    let state: Mutex<State>
    let slots: UnsafeMutablePointer<DeliverySlot>
    let topics: [String]

    init(records: [OutgoingRecord], continuation: CheckedContinuation<[RecordPosition], any Error>) {
        state = Mutex(
            State(remaining: records.count, positions: Array(repeating: nil, count: records.count), continuation: continuation))
        topics = records.map(\.topic)
        slots = .allocate(capacity: records.count)
    }

    deinit {
        slots.deallocate()
    }

    /// Takes the batch's own retain and fills the slots; call once, before producing.
    func start() {
        let me = Unmanaged.passRetained(self).toOpaque()
        for index in 0..<topics.count { (slots + index).initialize(to: DeliverySlot(batch: me, index: index)) }
    }

    /// The opaque for the record at `index`.
    func opaque(_ index: Int) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(slots + index) }

    func complete(_ index: Int, _ result: Result<(partition: Int, offset: Int64), LogError>) {
        let finished = state.withLock { state -> (CheckedContinuation<[RecordPosition], any Error>, Result<[RecordPosition], any Error>)? in
            switch result {
            case .success(let landed):
                state.positions[index] = RecordPosition(topic: topics[index], partition: landed.partition, offset: landed.offset)
            case .failure(let error): if state.error == nil { state.error = error }
            }
            state.remaining -= 1
            guard state.remaining == 0, let continuation = state.continuation else { return nil }
            state.continuation = nil
            if let error = state.error { return (continuation, .failure(error)) }
            return (continuation, .success(state.positions.map { $0! }))
        }
        if let (continuation, outcome) = finished {
            continuation.resume(with: outcome)
            // The last report: give back the retain `start()` took.
            Unmanaged.passUnretained(self).release()
        }
    }
}

/// librdkafka's delivery report callback: runs on the producer's poll thread (inside
/// `rd_kafka_poll`), once per message. It only resolves a lock-protected batch and resumes the
/// awaiting task; it never calls into async code.
private func deliveryReport(
    _ client: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let message, let context = message.pointee._private else { return }
    let slot = context.assumingMemoryBound(to: DeliverySlot.self).pointee
    let batch = Unmanaged<DeliveryBatch>.fromOpaque(slot.batch).takeUnretainedValue()
    let error = message.pointee.err
    if error == RD_KAFKA_RESP_ERR_NO_ERROR {
        batch.complete(slot.index, .success((Int(message.pointee.partition), message.pointee.offset)))
    } else {
        batch.complete(
            slot.index, .failure(KafkaErrors.error(error, "delivering a record", subject: batch.topics[slot.index])))
    }
}

/// An idempotent producer: every append is resolved by its delivery reports. A dedicated thread
/// serves the reports (`rd_kafka_poll`); produce calls run on a serial queue, off the
/// cooperative pool, since they block when librdkafka's queue is full.
final class KafkaProducer: @unchecked Sendable {
    // @unchecked Sendable: `client` is thread-safe for produce/poll/flush (librdkafka's contract);
    // `running` is atomic; the poll thread ends before `client` is destroyed (see `close`).
    let client: OpaquePointer
    private let blocking = BlockingQueue(label: "onewindow.kafka.produce")
    private let running = RunFlag()
    private let stopped = DispatchSemaphore(value: 0)

    /// - Throws: ``LogError`` `.configuration` when librdkafka refuses a property.
    init(configuration: KafkaConfiguration) throws {
        let conf = try KafkaConf(configuration.librdkafkaProperties(.producer))
        rd_kafka_conf_set_dr_msg_cb(conf.pointer, deliveryReport)
        client = try makeClient(RD_KAFKA_PRODUCER, conf)
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

    deinit {
        // A log dropped without close(): flush, stop the report thread and free the client now.
        if running.isOn { close() }
    }

    /// Produces records and waits for every delivery report: their positions in order, or the first
    /// failure (records after it may still have been appended; idempotent consumers absorb that).
    func produce(_ records: [OutgoingRecord]) async throws -> [RecordPosition] {
        try await withCheckedThrowingContinuation { continuation in
            let batch = DeliveryBatch(records: records, continuation: continuation)
            batch.start()
            let handle = SendableHandle(client)
            blocking.queue.async {
                for (index, record) in records.enumerated() {
                    Self.produce(record, index: index, batch: batch, client: handle.pointer)
                    // Serve the reports that are already in while producing (as librdkafka's own
                    // examples do): cheaper than waking the report thread for each small bunch.
                    if index % 64 == 63 { rd_kafka_poll(handle.pointer, 0) }
                }
            }
        }
    }

    private static func produce(_ record: OutgoingRecord, index: Int, batch: DeliveryBatch, client: OpaquePointer) {
        let headers = rd_kafka_headers_new(record.headers.count)!
        for header in record.headers {
            // withCString: a short name is passed from the stack (the implicit String-to-pointer
            // conversion would allocate a copy for each).
            header.name.withCString { name in
                header.value.withUnsafeBytes { value in
                    _ = rd_kafka_header_add(headers, name, -1, value.baseAddress, value.count)
                }
            }
        }
        let timestamp = Int64(((record.timestamp ?? Date()).timeIntervalSince1970 * 1000).rounded())
        let partition = record.partition.map(Int32.init) ?? RD_KAFKA_PARTITION_UA
        while true {
            let error = record.topic.withCString { topic in
                record.value.withUnsafeBytes { value in
                    withKey(record.key) { key, keyLength in
                        onewindow_produce(
                            client, topic, partition, key, keyLength, value.baseAddress, value.count, timestamp,
                            headers, batch.opaque(index))
                    }
                }
            }
            if error == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                // Wait for room: delivery reports free the queue.
                rd_kafka_poll(client, 50)
                continue
            }
            if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                // Not enqueued: the headers are still ours, and no report will come for it.
                rd_kafka_headers_destroy(headers)
                batch.complete(index, .failure(KafkaErrors.error(error, "producing a record", subject: record.topic)))
            }
            return
        }
    }

    private static func withKey<T>(_ key: Data?, _ body: (UnsafeRawPointer?, Int) -> T) -> T {
        guard let key else { return body(nil, 0) }
        return key.withUnsafeBytes { body($0.baseAddress, $0.count) }
    }

    /// Waits for in-flight records (up to ten seconds), fails what is still undelivered then,
    /// stops the report thread and frees the client. Blocking: call it off the cooperative pool.
    func close() {
        if rd_kafka_flush(client, 10_000) != RD_KAFKA_RESP_ERR_NO_ERROR {
            // Still undelivered: fail them now (their reports carry _PURGE_QUEUE/_PURGE_INFLIGHT),
            // so that no append waits for ever and every opaque is released.
            _ = rd_kafka_purge(client, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            _ = rd_kafka_flush(client, 2_000)
        }
        running.turnOff()
        stopped.wait()
        rd_kafka_destroy(client)
    }
}

