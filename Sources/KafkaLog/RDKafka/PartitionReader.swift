import CRDKafka
import Dispatch
import EventLog
import Foundation

/// Reads one partition at a time without a group (``KafkaLog/read(_:from:maxRecords:)``): one
/// cached consumer handle, re-assigned at the requested offset, that reports the end of the
/// partition (`enable.partition.eof`) so a read stops as soon as the log is exhausted.
///
/// A read that stopped at `maxRecords` leaves the fetch where it was, so reading on from the next
/// offset (what `readAll`-style loops do) needs no re-assignment.
final class PartitionReader: @unchecked Sendable {
    // @unchecked Sendable: `client`, `position` and `topicNames` are touched only on `blocking`'s serial queue
    // (and in `deinit`, when no other reference exists).
    private let client: OpaquePointer
    let blocking = BlockingQueue(label: "onewindow.kafka.reader")
    private let timeout: Int32
    /// Where an unfinished read left the fetch: the partition and the next offset it will deliver.
    private var position: (partition: TopicPartition, next: Int64)?
    private var topicNames = TopicNames()

    /// - Throws: ``LogError`` `.configuration` when librdkafka refuses a property.
    init(configuration: KafkaConfiguration) throws {
        client = try makeClient(RD_KAFKA_CONSUMER, try KafkaConf(configuration.librdkafkaProperties(.reader)))
        rd_kafka_poll_set_consumer(client)
        timeout = configuration.timeoutMilliseconds
    }

    deinit {
        // Never subscribed: destroying leaves no group behind.
        rd_kafka_destroy(client)
    }

    /// Up to `maxRecords` records of `partition` from `offset` on; fewer (or none) at the end of the
    /// log. An offset below the log start reads from the log start. Blocking: run on ``blocking``.
    /// - Throws: ``LogError`` `.unknownTopic`, `.brokerUnreachable` when the broker does not answer
    ///   within the request timeout.
    func read(_ partition: TopicPartition, from offset: Int64, maxRecords: Int) throws -> [LogRecord] {
        if maxRecords <= 0 { return [] }
        if position.map({ $0.partition != partition || $0.next != offset }) ?? true {
            try assign(partition, offset)
        }
        position = nil
        var records: [LogRecord] = []
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeout) * 1_000_000
        while records.count < maxRecords {
            let now = DispatchTime.now().uptimeNanoseconds
            if now >= deadline {
                if !records.isEmpty { break }
                throw LogError(
                    .brokerUnreachable, "no answer from the broker while reading", 
                    remedy: "check that the brokers in --bus are up and reachable; the operation can be retried",
                    subject: partition.description, isRetriable: true)
            }
            // Once records arrived, take only what is already fetched.
            let wait = records.isEmpty ? Int32(min((deadline - now) / 1_000_000, 100)) : 0
            guard let message = rd_kafka_consumer_poll(client, wait) else {
                if records.isEmpty { continue }
                position = (partition, records.last!.offset + 1)
                return records
            }
            // Ownership: each polled message is ours to destroy.
            defer { rd_kafka_message_destroy(message) }
            let error = message.pointee.err
            if error == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                // The end of the log, where this read is (not a stale one from before re-assigning).
                if message.pointee.partition == Int32(partition.partition)
                    && message.pointee.offset >= (records.last.map { $0.offset + 1 } ?? offset)
                {
                    return records
                }
                continue
            }
            if error == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET || error == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE {
                // Outside the log: below its start, read from the start; past its end, nothing.
                var low: Int64 = 0
                var high: Int64 = 0
                let watermarkError = rd_kafka_query_watermark_offsets(
                    client, partition.topic, Int32(partition.partition), &low, &high, timeout)
                if watermarkError == RD_KAFKA_RESP_ERR_NO_ERROR, offset < low, records.isEmpty {
                    try assign(partition, low)
                    continue
                }
                return records
            }
            if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                let failure = KafkaErrors.error(error, "reading", subject: partition.description)
                if failure.isRetriable { continue }
                throw failure
            }
            let record = makeRecord(message, topics: &topicNames)
            if record.topic == partition.topic && record.partition == partition.partition && record.offset >= offset {
                records.append(record)
            }
        }
        if let last = records.last { position = (partition, last.offset + 1) }
        return records
    }

    /// Points the handle at one partition and offset. Messages fetched for an earlier assignment
    /// are discarded by librdkafka (its fetch version barrier), and the end-of-partition report is
    /// re-armed.
    private func assign(_ partition: TopicPartition, _ offset: Int64) throws {
        _ = rd_kafka_assign(client, nil)
        let list = PartitionList([partition: max(offset, 0)])
        let error = rd_kafka_assign(client, list.pointer)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaErrors.error(error, "assigning a partition to read", subject: partition.description)
        }
    }
}
