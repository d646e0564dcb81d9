import CRDKafka
import EventLog
import Foundation
import Synchronization

/// The delivery reports of one `append`: resumes the caller when the last record is reported.
final class DeliveryBatch: Sendable {
    struct State {
        var remaining: Int
        var positions: [RecordPosition?]
        var error: LogError?
        var continuation: CheckedContinuation<[RecordPosition], any Error>?
    }

    let state: Mutex<State>

    init(count: Int, continuation: CheckedContinuation<[RecordPosition], any Error>) {
        state = Mutex(State(remaining: count, positions: Array(repeating: nil, count: count), continuation: continuation))
    }

    func complete(_ index: Int, _ result: Result<RecordPosition, LogError>) {
        let finished = state.withLock { state -> (CheckedContinuation<[RecordPosition], any Error>, Result<[RecordPosition], any Error>)? in
            switch result {
            case .success(let position): state.positions[index] = position
            case .failure(let error): if state.error == nil { state.error = error }
            }
            state.remaining -= 1
            guard state.remaining == 0, let continuation = state.continuation else { return nil }
            state.continuation = nil
            if let error = state.error { return (continuation, .failure(error)) }
            return (continuation, .success(state.positions.map { $0! }))
        }
        if let (continuation, outcome) = finished { continuation.resume(with: outcome) }
    }
}

/// One record in flight: its batch and its place in it. Passed to librdkafka retained as the
/// message opaque; the delivery report callback takes the retain back.
final class PendingDelivery {
    let batch: DeliveryBatch
    let index: Int
    let topic: String

    init(batch: DeliveryBatch, index: Int, topic: String) {
        self.batch = batch
        self.index = index
        self.topic = topic
    }
}

/// librdkafka's delivery report callback: runs on the producer's poll thread, once per message.
private func deliveryReport(
    _ client: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let message, let context = message.pointee._private else { return }
    let pending = Unmanaged<PendingDelivery>.fromOpaque(context).takeRetainedValue()
    let error = message.pointee.err
    if error == RD_KAFKA_RESP_ERR_NO_ERROR {
        pending.batch.complete(
            pending.index,
            .success(RecordPosition(topic: pending.topic, partition: Int(message.pointee.partition), offset: message.pointee.offset)))
    } else {
        pending.batch.complete(pending.index, .failure(KafkaErrors.error(error, "delivering a record", subject: pending.topic)))
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

    init(configuration: KafkaConfiguration) throws {
        let conf = try makeConf(configuration.producerProperties)
        rd_kafka_conf_set_dr_msg_cb(conf, deliveryReport)
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

    /// Produces records and waits for every delivery report.
    func produce(_ records: [OutgoingRecord]) async throws -> [RecordPosition] {
        try await withCheckedThrowingContinuation { continuation in
            let batch = DeliveryBatch(count: records.count, continuation: continuation)
            let handle = SendableHandle(client)
            blocking.queue.async {
                for (index, record) in records.enumerated() {
                    Self.produce(record, index: index, batch: batch, client: handle.pointer)
                }
            }
        }
    }

    private static func produce(_ record: OutgoingRecord, index: Int, batch: DeliveryBatch, client: OpaquePointer) {
        let headers = rd_kafka_headers_new(record.headers.count)!
        for header in record.headers {
            header.value.withUnsafeBytes { value in
                _ = rd_kafka_header_add(headers, header.name, -1, value.baseAddress, value.count)
            }
        }
        let pending = Unmanaged.passRetained(PendingDelivery(batch: batch, index: index, topic: record.topic))
        let timestamp = Int64(((record.timestamp ?? Date()).timeIntervalSince1970 * 1000).rounded())
        let partition = record.partition.map(Int32.init) ?? RD_KAFKA_PARTITION_UA
        while true {
            let error = record.value.withUnsafeBytes { value in
                withKey(record.key) { key, keyLength in
                    onewindow_produce(
                        client, record.topic, partition, key, keyLength, value.baseAddress, value.count, timestamp,
                        headers, pending.toOpaque())
                }
            }
            if error == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                // Wait for room: delivery reports free the queue.
                rd_kafka_poll(client, 50)
                continue
            }
            if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                // Not enqueued: the headers and the opaque are still ours.
                rd_kafka_headers_destroy(headers)
                pending.release()
                batch.complete(index, .failure(KafkaErrors.error(error, "producing a record", subject: record.topic)))
            }
            return
        }
    }

    private static func withKey<T>(_ key: Data?, _ body: (UnsafeRawPointer?, Int) -> T) -> T {
        guard let key else { return body(nil, 0) }
        return key.withUnsafeBytes { body($0.baseAddress, $0.count) }
    }

    /// Waits for in-flight records, stops the report thread and frees the client.
    func close() {
        _ = rd_kafka_flush(client, 10_000)
        running.turnOff()
        stopped.wait()
        rd_kafka_destroy(client)
    }
}

/// A flag a background thread polls to know when to stop.
final class RunFlag: Sendable {
    private let value = Atomic<Bool>(true)
    var isOn: Bool { value.load(ordering: .acquiring) }
    func turnOff() { value.store(false, ordering: .releasing) }
}
