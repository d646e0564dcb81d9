// librdkafka alone, the yardstick for the hub's Kafka backend: produce N ~500-byte records with
// the hub's producer settings (idempotent, acks=all, murmur2_random, linger.ms=5), wait for every
// delivery report, then consume them with a new group. Prints "produce <events/s>" and
// "consume <events/s>". Usage: raw_bench BOOTSTRAP TOPIC N
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long delivered = 0, failed = 0;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    if (m->err) failed++; else delivered++;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void set(rd_kafka_conf_t *conf, const char *name, const char *value) {
    char error[512];
    if (rd_kafka_conf_set(conf, name, value, error, sizeof error) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "%s: %s\n", name, error);
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: raw_bench BOOTSTRAP TOPIC N\n"); return 2; }
    const char *bootstrap = argv[1], *topic = argv[2];
    long n = atol(argv[3]);
    char error[512], value[420], key[32];
    memset(value, 'x', sizeof value);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", bootstrap);
    set(conf, "enable.idempotence", "true");
    set(conf, "acks", "all");
    set(conf, "partitioner", "murmur2_random");
    set(conf, "linger.ms", "5");
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    if (!producer) { fprintf(stderr, "%s\n", error); return 1; }

    double start = now();
    for (long i = 0; i < n; i++) {
        int key_length = snprintf(key, sizeof key, "RA-2025-%06ld", i % 100000);
        rd_kafka_headers_t *headers = rd_kafka_headers_new(7);
        rd_kafka_header_add(headers, "ce_specversion", -1, "1.0", 3);
        rd_kafka_header_add(headers, "ce_id", -1, key, key_length);
        rd_kafka_header_add(headers, "ce_source", -1, "/onewindow/orchestrator", -1);
        rd_kafka_header_add(headers, "ce_type", -1, "approval.requested", -1);
        rd_kafka_header_add(headers, "ce_subject", -1, key, key_length);
        rd_kafka_header_add(headers, "ce_time", -1, "2025-01-01T00:00:00.000Z", -1);
        rd_kafka_header_add(headers, "content-type", -1, "application/json", -1);
        while (rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_length),
                                 RD_KAFKA_V_VALUE(value, sizeof value), RD_KAFKA_V_HEADERS(headers),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(producer, 10);
        rd_kafka_poll(producer, 0);
    }
    rd_kafka_flush(producer, 120000);
    double produce = n / (now() - start);
    rd_kafka_destroy(producer);
    if (failed) { fprintf(stderr, "%ld deliveries failed\n", failed); return 1; }

    conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", bootstrap);
    char group[64];
    snprintf(group, sizeof group, "raw-bench-%ld", (long)time(NULL));
    set(conf, "group.id", group);
    set(conf, "auto.offset.reset", "earliest");
    set(conf, "enable.auto.commit", "false");
    set(conf, "session.timeout.ms", "6000");
    set(conf, "heartbeat.interval.ms", "500");
    rd_kafka_t *consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
    rd_kafka_poll_set_consumer(consumer);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    long seen = 0;
    double first = 0;
    while (seen < n) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 1000);
        if (!m) continue;
        if (!m->err) {
            if (seen == 0) first = now();
            seen++;
        }
        rd_kafka_message_destroy(m);
    }
    double consume = (n - 1) / (now() - first);
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    printf("produce %.0f\nconsume %.0f\n", produce, consume);
    return 0;
}
