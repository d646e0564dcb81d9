#!/usr/bin/env python3
"""Reads every record the hub accepted on a Kafka broker, as a consumer in another language would:
confluent-kafka (librdkafka), no OneWindow code. The same checks as read-embedded-log.py (whose
functions it uses): each value is UTF-8 JSON that Python reads without loss, the CloudEvents
headers (ce_*) are there and UTF-8, the key equals ce_subject.

    read-kafka.py BOOTSTRAP ID_PREFIX TOPIC [TOPIC...]

Reads each topic from its beginning until nothing new has come for 3 s (the test broker's high
water mark is not trusted: docs/KAFKA_TESTING), and counts only the records whose ce_id starts with
ID_PREFIX (the broker is shared with other tests). Prints one JSON object:
{"records": N, "read": [[topic, partition, ce_id], ...] in the order read, "problems": ["topic/partition/offset: what", ...]}.
"""
import importlib.util
import json
import os
import sys
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("embedded", os.path.join(here, "read-embedded-log.py"))
embedded = importlib.util.module_from_spec(spec)
spec.loader.exec_module(embedded)


def main():
    bootstrap, prefix, topics = sys.argv[1], sys.argv[2], sys.argv[3:]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "hostile-reader-%d" % os.getpid(),
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    assignment = []
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=30)
        for partition in metadata.topics[topic].partitions:
            assignment.append(TopicPartition(topic, partition, 0))
    consumer.assign(assignment)
    problems, ids = [], []
    quiet_since = time.monotonic()
    deadline = time.monotonic() + 120
    while time.monotonic() - quiet_since < 3 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().code() != KafkaError._PARTITION_EOF:
                problems.append("consumer: %s" % message.error())
            continue
        quiet_since = time.monotonic()
        where = "%s/%d/%d" % (message.topic(), message.partition(), message.offset())
        try:
            found = {name: value for name, value in (message.headers() or [])}
            attributes = {name: (value or b"").decode("utf-8") for name, value in found.items() if name.startswith("ce_")}
            if not attributes.get("ce_id", "").startswith(prefix):
                continue
            ids.append([message.topic(), message.partition(), attributes["ce_id"]])
            missing = [name for name in embedded.REQUIRED if name not in found]
            if missing:
                problems.append("%s: headers %s missing" % (where, ", ".join(missing)))
                continue
            if attributes["ce_specversion"] != "1.0":
                problems.append("%s: ce_specversion %r" % (where, attributes["ce_specversion"]))
            if not found["content-type"].decode("utf-8").startswith("application/json"):
                problems.append("%s: content-type %r" % (where, found["content-type"]))
            subject = attributes.get("ce_subject")
            key = message.key()
            if key is not None and subject is not None and key.decode("utf-8") != subject:
                problems.append("%s: key %r differs from ce_subject %r" % (where, key, subject))
            json.loads(message.value().decode("utf-8"), object_pairs_hook=embedded.strict_pairs,
                       parse_int=embedded.exact_int, parse_float=embedded.finite_float,
                       parse_constant=embedded.no_constant)
        except Exception as error:  # every failure is a finding, reported with its place
            problems.append("%s: %s" % (where, error))
    consumer.close()
    print(json.dumps({"records": len(ids), "read": ids, "problems": problems[:50]}))


if __name__ == "__main__":
    main()
