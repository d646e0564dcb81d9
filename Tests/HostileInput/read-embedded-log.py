#!/usr/bin/env python3
"""Reads every record an embedded log accepted, as a consumer in another language would: Python's
sqlite3 on the log file, no OneWindow code. Checks that each value on the given topics is UTF-8 JSON
that Python reads without loss (no member named twice, no NaN or infinity, integers a double holds)
and that the CloudEvents headers are there (ce_id, ce_source, ce_type, ce_specversion 1.0, ce_time,
content-type application/json, the key equal to ce_subject).

    read-embedded-log.py LOG.sqlite TOPIC [TOPIC...]

Prints one JSON object: {"records": N, "problems": ["topic/partition/offset: what", ...]}.
"""
import json
import sqlite3
import struct
import sys

REQUIRED = ["ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "content-type"]


def headers(blob):
    """The embedded log's header encoding: (u32 LE name length, name, u32 LE value length, value)*."""
    result = []
    index = 0
    while index < len(blob):
        (length,) = struct.unpack_from("<I", blob, index)
        name = blob[index + 4:index + 4 + length].decode("utf-8")
        index += 4 + length
        (length,) = struct.unpack_from("<I", blob, index)
        value = blob[index + 4:index + 4 + length]
        index += 4 + length
        result.append((name, value))
    return result


def strict_pairs(pairs):
    names = [name for name, _ in pairs]
    if len(names) != len(set(names)):
        raise ValueError("a member named twice")
    return dict(pairs)


def exact_int(text):
    value = int(text)
    if abs(value) > 2**53 - 1:
        raise ValueError("integer %s is beyond what a double holds" % text[:30])
    return value


def finite_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number %s reads as infinity" % text[:30])
    return value


def no_constant(name):
    raise ValueError("%s is not JSON" % name)


def main():
    path, topics = sys.argv[1], sys.argv[2:]
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    problems = []
    count = 0
    for topic in topics:
        rows = db.execute(
            "SELECT r.partition, r.offset, r.key, r.value, r.headers FROM record r JOIN topic t ON t.id = r.topic_id "
            "WHERE t.name = ? ORDER BY r.partition, r.offset", (topic,))
        for partition, offset, key, value, blob in rows:
            count += 1
            where = "%s/%d/%d" % (topic, partition, offset)
            try:
                found = dict(headers(bytes(blob)))
                missing = [name for name in REQUIRED if name not in found]
                if missing:
                    problems.append("%s: headers %s missing" % (where, ", ".join(missing)))
                    continue
                attributes = {name: value.decode("utf-8") for name, value in found.items()}
                if attributes["ce_specversion"] != "1.0":
                    problems.append("%s: ce_specversion %r" % (where, attributes["ce_specversion"]))
                if not attributes["content-type"].startswith("application/json"):
                    problems.append("%s: content-type %r" % (where, attributes["content-type"]))
                subject = attributes.get("ce_subject")
                if key is not None and subject is not None and bytes(key).decode("utf-8") != subject:
                    problems.append("%s: key %r differs from ce_subject %r" % (where, bytes(key), subject))
                json.loads(bytes(value).decode("utf-8"), object_pairs_hook=strict_pairs, parse_int=exact_int,
                           parse_float=finite_float, parse_constant=no_constant)
            except Exception as error:  # every failure is a finding, reported with its place
                problems.append("%s: %s" % (where, error))
    print(json.dumps({"records": count, "problems": problems[:50]}))


if __name__ == "__main__":
    main()
