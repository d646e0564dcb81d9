// The C side of the Kafka backend: librdkafka's header plus a static inline wrapper for what
// Swift cannot call (the variadic rd_kafka_producev), producing a whole batch in one call.
// Only Sources/KafkaLog/RDKafka imports it.
#ifndef ONEWINDOW_CRDKAFKA_SHIM_H
#define ONEWINDOW_CRDKAFKA_SHIM_H

#include <librdkafka/rdkafka.h>

/// One record of a batch for onewindow_produce_batch: where its parts are in the batch's byte
/// buffer. `key_offset` -1 means no key; `timestamp_ms` 0 means now; `partition`
/// RD_KAFKA_PARTITION_UA lets the configured partitioner choose.
typedef struct {
    int64_t topic;
    int64_t partition;
    int64_t timestamp_ms;
    int64_t key_offset;
    int64_t key_length;
    int64_t value_offset;
    int64_t value_length;
    int64_t first_header;
    int64_t header_count;
} onewindow_record_t;

/// One header of a batch: name and value in the batch's byte buffer.
typedef struct {
    int64_t name_offset;
    int64_t name_length;
    int64_t value_offset;
    int64_t value_length;
} onewindow_header_t;

/// Produces records[from..<count] of a batch in one call (copying keys, values and headers),
/// waiting for room when librdkafka's queue is full. Record i carries the opaque
/// `opaques + i * opaque_stride`. Returns `count`, or the index of the first record librdkafka
/// refused, with its error in `*error` (its headers are freed here; nothing after it is sent).
static inline size_t onewindow_produce_batch(
    rd_kafka_t *rk, rd_kafka_topic_t *const *topics, const onewindow_record_t *records, size_t from, size_t count,
    const onewindow_header_t *headers, const uint8_t *bytes, char *opaques, size_t opaque_stride,
    rd_kafka_resp_err_t *error) {
    for (size_t i = from; i < count; i++) {
        const onewindow_record_t *r = &records[i];
        rd_kafka_headers_t *list = rd_kafka_headers_new((size_t)r->header_count);
        for (int64_t h = r->first_header; h < r->first_header + r->header_count; h++) {
            rd_kafka_header_add(
                list, (const char *)bytes + headers[h].name_offset, (ssize_t)headers[h].name_length,
                bytes + headers[h].value_offset, (ssize_t)headers[h].value_length);
        }
        const void *key = r->key_offset < 0 ? NULL : bytes + r->key_offset;
        size_t key_length = r->key_offset < 0 ? 0 : (size_t)r->key_length;
        rd_kafka_resp_err_t result;
        for (;;) {
            result = rd_kafka_producev(
                rk, RD_KAFKA_V_RKT(topics[r->topic]), RD_KAFKA_V_PARTITION((int32_t)r->partition),
                RD_KAFKA_V_KEY(key, key_length), RD_KAFKA_V_VALUE((void *)(bytes + r->value_offset), (size_t)r->value_length),
                RD_KAFKA_V_TIMESTAMP(r->timestamp_ms), RD_KAFKA_V_HEADERS(list),
                RD_KAFKA_V_OPAQUE(opaques + i * opaque_stride), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (result != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
            rd_kafka_poll(rk, 50); /* delivery reports free the queue */
        }
        if (result != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_headers_destroy(list);
            *error = result;
            return i;
        }
    }
    return count;
}

#endif
