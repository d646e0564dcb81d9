// The C side of the Kafka backend: librdkafka's header plus a static inline wrapper for what
// Swift cannot call (the variadic rd_kafka_producev).
// Only Sources/KafkaLog/RDKafka imports it.
#ifndef ONEWINDOW_CRDKAFKA_SHIM_H
#define ONEWINDOW_CRDKAFKA_SHIM_H

#include <librdkafka/rdkafka.h>

/// Adds a header whose value is present: a NULL `value` (what an empty Swift buffer gives) becomes
/// zero bytes, not librdkafka's null value.
static inline void onewindow_header_add(
    rd_kafka_headers_t *headers, const void *name, size_t name_length, const void *value, size_t value_length) {
    rd_kafka_header_add(headers, name ? (const char *)name : "", (ssize_t)name_length, value ? value : "",
                        (ssize_t)value_length);
}

/// Produces one record (librdkafka copies key and value and takes `headers` on success), waiting
/// for room when librdkafka's queue is full. `partition` RD_KAFKA_PARTITION_UA lets the configured
/// partitioner choose; `timestamp_ms` 0 means now; `has_key` 0 means no key. A NULL `key` or
/// `value` (what an empty Swift buffer gives) is zero bytes, never null: a null value would be a
/// tombstone. On failure the headers are freed here and the error returned.
static inline rd_kafka_resp_err_t onewindow_produce(
    rd_kafka_t *rk, rd_kafka_topic_t *topic, int32_t partition, int64_t timestamp_ms, int has_key, const void *key,
    size_t key_length, const void *value, size_t value_length, rd_kafka_headers_t *headers, void *opaque) {
    rd_kafka_resp_err_t result;
    if (has_key && !key) key = "";
    if (!has_key) { key = NULL; key_length = 0; }
    if (!value) value = "";
    for (;;) {
        result = rd_kafka_producev(
            rk, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_KEY(key, key_length),
            RD_KAFKA_V_VALUE((void *)value, value_length), RD_KAFKA_V_TIMESTAMP(timestamp_ms),
            RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_END);
        if (result != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        rd_kafka_poll(rk, 5); /* delivery reports free the queue */
    }
    if (result != RD_KAFKA_RESP_ERR_NO_ERROR) rd_kafka_headers_destroy(headers);
    return result;
}

#endif
