// librdkafka alone, the yardstick for the hub's Kafka backend: produce N ~500-byte records with
// the hub's producer settings (idempotent, acks=all, murmur2_random, linger.ms=1), wait for every
// delivery report, then consume them with a new group, reading each record's key, value and
// headers. The topic is created first through the admin API with PARTITIONS partitions, as the
// hub's benchmark creates its own, so both write to the same shape of topic. Prints
// "produce <events/s>" and "consume <events/s>"; gives up (exit 1) when the records do not all
// arrive within a minute.
// Usage: raw_bench BOOTSTRAP TOPIC N PARTITIONS
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

/* What a consumer of these events does at the least, as the hub does for each record it hands
 * over: read the key, the value and every header (librdkafka parses headers on first access).
 * Returns the bytes seen, so the reads cannot be left out. */
static size_t read_record(rd_kafka_message_t *m) {
    size_t bytes = m->key_len + m->len;
    const unsigned char *value = m->payload;
    if (m->len) bytes += value[0] + value[m->len - 1];
    rd_kafka_headers_t *headers = NULL;
    if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *header_value;
        size_t size;
        for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &header_value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
            bytes += strlen(name) + size;
    }
    return bytes;
}

static void set(rd_kafka_conf_t *conf, const char *name, const char *value) {
    char error[512];
    if (rd_kafka_conf_set(conf, name, value, error, sizeof error) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "%s: %s\n", name, error);
        exit(1);
    }
}

/* Creates the topic with the given partitions (replication: the broker's default) and waits for
 * the answer. Exits on failure. */
static void create_topic(rd_kafka_t *rk, const char *topic, int partitions) {
    char error[512];
    rd_kafka_NewTopic_t *new_topic = rd_kafka_NewTopic_new(topic, partitions, -1, error, sizeof error);
    if (!new_topic) { fprintf(stderr, "topic %s: %s\n", topic, error); exit(1); }
    rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &new_topic, 1, NULL, queue);
    rd_kafka_event_t *event = rd_kafka_queue_poll(queue, 30000);
    if (!event) { fprintf(stderr, "creating %s: no answer within 30 s\n", topic); exit(1); }
    size_t count = 0;
    const rd_kafka_topic_result_t **results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count);
    if (rd_kafka_event_error(event) || count != 1 || rd_kafka_topic_result_error(results[0])) {
        fprintf(stderr, "creating %s failed: %s\n", topic,
                count == 1 ? rd_kafka_err2str(rd_kafka_topic_result_error(results[0])) : rd_kafka_event_error_string(event));
        exit(1);
    }
    rd_kafka_event_destroy(event);
    rd_kafka_queue_destroy(queue);
    rd_kafka_NewTopic_destroy(new_topic);
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: raw_bench BOOTSTRAP TOPIC N PARTITIONS\n"); return 2; }
    const char *bootstrap = argv[1], *topic = argv[2];
    long n = atol(argv[3]);
    int partitions = atoi(argv[4]);
    char error[512], value[420], key[32];
    memset(value, 'x', sizeof value);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", bootstrap);
    set(conf, "enable.idempotence", "true");
    set(conf, "acks", "all");
    set(conf, "partitioner", "murmur2_random");
    set(conf, "linger.ms", "1");
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    if (!producer) { fprintf(stderr, "%s\n", error); return 1; }
    create_topic(producer, topic, partitions);
    /* Wait until the producer sees the topic with all its partitions (metadata propagates). */
    for (int attempt = 0;; attempt++) {
        const rd_kafka_metadata_t *metadata = NULL;
        rd_kafka_topic_t *handle = rd_kafka_topic_new(producer, topic, NULL);
        int ready = rd_kafka_metadata(producer, 0, handle, &metadata, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                    metadata->topic_cnt == 1 && metadata->topics[0].partition_cnt == partitions;
        if (metadata) rd_kafka_metadata_destroy(metadata);
        rd_kafka_topic_destroy(handle);
        if (ready) break;
        if (attempt == 50) { fprintf(stderr, "topic %s never showed %d partitions\n", topic, partitions); return 1; }
        struct timespec pause = {0, 100000000};
        nanosleep(&pause, NULL);
    }

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
    size_t touched = 0;
    double first = 0, deadline = now() + 60;
    while (seen < n) {
        if (now() > deadline) {
            fprintf(stderr, "consumed %ld of %ld records within a minute\n", seen, n);
            return 1;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 1000);
        if (!m) continue;
        if (!m->err) {
            if (seen == 0) first = now();
            seen++;
            touched += read_record(m);
        }
        rd_kafka_message_destroy(m);
    }
    double consume = (n - 1) / (now() - first);
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    if (touched == 0) { fprintf(stderr, "the records read back empty\n"); return 1; }
    printf("produce %.0f\nconsume %.0f\n", produce, consume);
    return 0;
}
