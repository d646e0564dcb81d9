// The C side of the Kafka backend: librdkafka's header plus static inline wrappers for what
// Swift cannot call (the variadic rd_kafka_producev). Only Sources/KafkaLog/RDKafka imports it.
#ifndef ONEWINDOW_CRDKAFKA_SHIM_H
#define ONEWINDOW_CRDKAFKA_SHIM_H

#include <librdkafka/rdkafka.h>

/// Produces one message, copying key and value (RD_KAFKA_MSG_F_COPY).
/// On success the headers belong to the message; on failure they are still the caller's.
/// `partition` is RD_KAFKA_PARTITION_UA to let the configured partitioner choose.
static inline rd_kafka_resp_err_t onewindow_produce(
    rd_kafka_t *rk, const char *topic, int32_t partition, const void *key, size_t key_len, const void *value,
    size_t value_len, int64_t timestamp_ms, rd_kafka_headers_t *headers, void *opaque) {
    return rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_TIMESTAMP(timestamp_ms),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_END);
}

#endif
