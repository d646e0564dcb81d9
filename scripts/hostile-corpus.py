#!/usr/bin/env python3
"""Writes the hostile-input corpus (issue 12) into Tests/HostileInput/corpus/corpus.jsonl.

Python 3 standard library only, deterministic: the same --seed and --good give byte-identical
files. The format and how to grow the corpus: Tests/HostileInput/README.md.

    scripts/hostile-corpus.py                      # the committed corpus (seed 12)
    scripts/hostile-corpus.py --seed 7 --out /tmp/c.jsonl --good 2000
"""
import argparse
import base64
import json
import os
import random
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMAS = os.path.join(ROOT, "Topics", "schemas")

# The event types the corpus publishes, their topic and key field (Topics/catalog.yaml).
EVENT_TYPES = {
    "household.birth.registered": ("household.birth.registered", "/child/residentId"),
    "household.death.registered": ("household.death.registered", "/residentId"),
    "tax.payment.received": ("tax.payment.received", "/taxpayerId"),
    "market.business.registered": ("market.business.registered", "/creditCode"),
    "approval.decided": ("approval.food-safety.decided", "/applicationId"),
}

ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CODE_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def id_check(first17):
    """GB 11643-1999: ISO 7064 MOD 11-2 check character of a resident ID number."""
    return "10X98765432"[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS)) % 11]


def resident_id(region, birth, sequence):
    first = "%s%s%03d" % (region, birth, sequence % 1000)
    return first + id_check(first)


def code_check(first17):
    """GB 32100-2015: MOD 31 check character of a unified social credit code."""
    return CODE_CHARS[(31 - sum(CODE_CHARS.index(c) * w for c, w in zip(first17, CODE_WEIGHTS)) % 31) % 31]


def credit_code(number):
    first = "92440604MA%07d" % (number % 10_000_000)
    first = first[:17]
    return first + code_check(first)


def wrong(check, right):
    """Another check character than the right one."""
    for candidate in "0123456789X":
        if candidate != right:
            return candidate
    return check


RUN = re.compile(rb"(.{1,8}?)\1{63,}", re.S)


def compact(body):
    """The body as (bytes, times) parts whose concatenation it is: runs of 64 or more repeats of a
    unit of up to 8 bytes become one part, so that huge strings and deep nesting stay small in the
    committed file."""
    if len(body) < 4096:
        return [(body, 1)]
    parts = []
    position = 0
    for run in RUN.finditer(body):
        if run.start() > position:
            parts.append((body[position:run.start()], 1))
        unit = run.group(1)
        parts.append((unit, (run.end() - run.start()) // len(unit)))
        position = run.end()
    if position < len(body):
        parts.append((body[position:], 1))
    assert b"".join(unit * times for unit, times in parts) == body
    return parts


def example(type_):
    with open(os.path.join(SCHEMAS, type_ + ".json"), encoding="utf-8") as f:
        return json.load(f)["examples"][0]


def dumps(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def put(body, pointer, value):
    """Sets the member at a JSON pointer of plain names (creating nothing)."""
    parts = pointer.strip("/").split("/")
    target = body
    for part in parts[:-1]:
        target = target[part]
    target[parts[-1]] = value


def get(body, pointer):
    target = body
    for part in pointer.strip("/").split("/"):
        target = target[part]
    return target


class Corpus:
    def __init__(self, seed):
        self.random = random.Random(seed)
        self.records = []
        self.serial = 0

    def add(self, kind, entry, body, expect, type_=None, topic=None, headers=None, via=None, workflow=None, note=None):
        record = {"seq": len(self.records) + 1, "kind": kind, "entry": entry}
        if type_ is not None:
            record["type"] = type_
        if topic is not None:
            record["topic"] = topic
        if workflow is not None:
            record["workflow"] = workflow
        record["headers"] = headers or []
        parts = compact(body)
        if len(parts) == 1 and parts[0][1] == 1:
            record["body"] = base64.b64encode(body).decode("ascii")
        else:
            record["bodyParts"] = [{"base64": base64.b64encode(unit).decode("ascii"), "times": times} for unit, times in parts]
        record["expect"] = expect
        if via is not None:
            record["via"] = via
        if note is not None:
            record["note"] = note
        self.records.append(record)

    # -- good events ---------------------------------------------------------------------------
    def next_serial(self):
        self.serial += 1
        return self.serial

    def good_event(self, type_):
        """A valid body of `type_`, distinct from every other good one (its key field and a
        number in it carry the serial)."""
        n = self.next_serial()
        body = example(type_)
        birth = "2025%02d%02d" % (1 + n % 12, 1 + n % 28)
        if type_ == "household.birth.registered":
            body["child"]["residentId"] = resident_id("440604", birth, n)
            body["child"]["birthDate"] = "%s-%s-%s" % (birth[:4], birth[4:6], birth[6:])
            body["householdNumber"] = "44060%07d" % n
        elif type_ == "household.death.registered":
            body["residentId"] = resident_id("440604", "19%02d%02d%02d" % (30 + n % 60, 1 + n % 12, 1 + n % 28), n)
        elif type_ == "tax.payment.received":
            body["taxpayerId"] = resident_id("440606", "19%02d%02d%02d" % (50 + n % 40, 1 + n % 12, 1 + n % 28), n)
            body["voucherNumber"] = "3440662503%08d" % n
            body["amountFen"] = 1000 + n
        elif type_ == "market.business.registered":
            body["creditCode"] = credit_code(n)
        elif type_ == "approval.decided":
            body["applicationId"] = "RA-2026-%06d" % (900000 + n)
            body["decidedBy"] = "FS-%04d" % (n % 10000)
        return body

    def good(self):
        type_ = self.random.choice(sorted(EVENT_TYPES))
        topic = EVENT_TYPES[type_][0]
        body = self.good_event(type_)
        self.add("good", "event", dumps(body), {"outcome": "accepted"}, type_=type_, topic=topic,
                 headers=[["ce-id", "hostile-good-%05d" % self.serial]])

    # -- hostile events ------------------------------------------------------------------------
    def refused(self, kind, type_, body, code, pointer, rule, topic=None, headers=None, via=None, note=None):
        topic = topic if topic is not None else EVENT_TYPES.get(type_, (None,))[0]
        self.add(kind, "event", body, {"outcome": "refused", "code": code, "pointer": pointer, "rule": rule},
                 type_=type_, topic=topic, headers=headers, via=via, note=note)

    def hostile_events(self):
        r = self.random
        types = sorted(EVENT_TYPES)
        tax = "tax.payment.received"
        birth = "household.birth.registered"
        # Broken JSON: cut, stray characters, other formats, JSON5-isms.
        for type_ in types:
            text = dumps(self.good_event(type_))
            for cut in sorted({1, 2, len(text) // 3, len(text) // 2, len(text) - 1} | {r.randrange(1, len(text)) for _ in range(4)}):
                self.refused("broken-json", type_, text[:cut], "invalid-json", "", "syntax")
            for bad in [b"<xml/>", b"null", b"[]", b"\"text\"", b"42", b"{'a': 1}", b"{\"a\": 1,}", b"{\"a\": NaN}",
                        b"{\"a\": Infinity}", b"{\"a\": 01}", b"{\"a\": .5}", b"{\"a\": +1}", b"{\"a\": \"\t\"}",
                        b"{\"a\": 1} {\"b\": 2}", b"{\"a\" 1}", b"{a: 1}", b"/* c */ {}", b"{\"a\": tru}",
                        b"\xef\xbb\xbf{}", b"{\"a\": \"\\x41\"}", b"{\"a\": \"\\u12\"}", b"\x00", b"{\"a\":[1,2}"]:
                if bad in (b"null", b"[]", b"\"text\"", b"42"):
                    self.refused("wrong-type", type_, bad, "schema-violation", "", "type")
                else:
                    self.refused("broken-json", type_, bad, "invalid-json", "", "syntax" if bad != b"\xef\xbb\xbf{}" else "")
        # Invalid UTF-8 and overlong encodings inside a string member.
        utf8 = [b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xc1\xbf", b"\xed\xa0\x80",
                b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\x80", b"\xe6\x9d", b"\xf8\x88\x80\x80\x80", b"\xe6\x9d\x8e\xbf"]
        for type_ in types:
            body = self.good_event(type_)
            member, pointer = {
                "household.birth.registered": ("李", "/child/name"),
                "household.death.registered": ("黄", "/name"),
                "tax.payment.received": ("344066", "/voucherNumber"),
                "market.business.registered": ("佛山", "/businessName"),
                "approval.decided": ("FS", "/decidedBy"),
            }[type_]
            text = dumps(body)
            for bad in utf8:
                self.refused("invalid-utf8", type_, text.replace(member.encode(), bad + member.encode(), 1),
                             "invalid-json", pointer, "utf-8")
        # Lone surrogates in \u escapes.
        for type_ in types:
            for escape in ["\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\ud800\\u0041", "\\udc00\\ud800", "\\ud83d"]:
                body = self.good_event(type_)
                pointer = {"household.birth.registered": "/child/name", "household.death.registered": "/name",
                           "tax.payment.received": "/voucherNumber", "market.business.registered": "/businessName",
                           "approval.decided": "/decidedBy"}[type_]
                put(body, pointer, "@@")
                text = dumps(body).replace(b"@@", escape.encode())
                self.refused("lone-surrogate", type_, text, "invalid-json", pointer, "utf-8")
            # A surrogate pair is a character: accepted.
            body = self.good_event(type_)
            pointer = {"household.birth.registered": "/child/name", "household.death.registered": "/name",
                       "tax.payment.received": "/voucherNumber", "market.business.registered": "/businessName",
                       "approval.decided": "/decidedBy"}[type_]
            put(body, pointer, "@@" + get(body, pointer))
            self.add("good", "event", dumps(body).replace(b"@@", b"\\ud840\\udc00"), {"outcome": "accepted"},
                     type_=type_, topic=EVENT_TYPES[type_][0], headers=[["ce-id", "hostile-good-%05d" % self.next_serial()]],
                     note="a surrogate pair in a \\u escape is one character (U+20000): accepted")
        # Duplicate member names.
        for type_ in types:
            body = self.good_event(type_)
            key = EVENT_TYPES[type_][1]
            first = key.strip("/").split("/")[0]
            text = dumps(body)
            value = dumps(body[first])
            self.refused("duplicate-keys", type_, text[:-1] + b',"' + first.encode() + b'":' + value + b"}",
                         "invalid-json", "", "unique-keys")
            self.refused("duplicate-keys", type_, b'{"' + first.encode() + b'":null,' + text[1:], "invalid-json", "",
                         "unique-keys")
            if type_ == birth:
                inner = dumps(body["child"])
                twice = inner[:-1] + ',"name":"王五"}'.encode()
                self.refused("duplicate-keys", type_, text.replace(inner, twice), "invalid-json", "/child", "unique-keys")
        # Deep nesting.
        for type_ in types:
            for depth in [513, 600, 5000] + ([100_000] if type_ == birth else []):
                for opener, closer in [(b"[", b"]"), (b'{"a":', b"}")]:
                    body = self.good_event(type_)
                    pointer = {"household.birth.registered": "/child/birthPlace", "household.death.registered": "/placeOfDeath",
                               "tax.payment.received": "/period", "market.business.registered": "/businessScope",
                               "approval.decided": "/reason"}[type_]
                    put(body, pointer, "@@")
                    nested = opener * depth + b"1" + closer * depth
                    self.refused("deep-nesting", type_, dumps(body).replace(b'"@@"', nested), "invalid-json", pointer,
                                 "syntax")
            body = self.good_event(type_)
            # 500 levels: within the reader's limit while it was 512 (the schema refused the nested
            # value then); past its 64 levels since 2026-11-30 (issue 12's floods), refused as JSON.
            pointer = {"household.birth.registered": "/child/birthPlace", "household.death.registered": "/placeOfDeath",
                       "tax.payment.received": "/period", "market.business.registered": "/businessScope",
                       "approval.decided": "/reason"}[type_]
            put(body, pointer, "@@")
            self.refused("deep-nesting", type_, dumps(body).replace(b'"@@"', b"[" * 500 + b"]" * 500), "invalid-json",
                         pointer, "syntax")
        # Huge strings (under and over the log's 1 MiB record limit) and huge numbers.
        for type_ in types:
            for size in [100_000] + ([900_000, 1_500_000] if type_ == birth else []):
                body = self.good_event(type_)
                pointer = {"household.birth.registered": "/child/name", "household.death.registered": "/name",
                           "tax.payment.received": "/taxType", "market.business.registered": "/entityType",
                           "approval.decided": "/decision"}[type_]
                put(body, pointer, "名" * (size // 3))
                rule = "maxLength" if pointer.endswith("name") else "enum"
                self.refused("huge-string", type_, dumps(body), "schema-violation", pointer, rule,
                             via=None if size < 1_000_000 else ["publisher", "cli", "webhook", "file-drop"])
        numbers = [
            (b"1e400", "number-range"), (b"-1e400", "number-range"), (b"1" + b"0" * 400, "number-range"),
            (b"123456789012345678901234567890", "number-range"), (b"9007199254740993", "number-range"),
            (b"-9007199254740993", "number-range"), (b"18446744073709551616", "number-range"),
            (b"9223372036854775808", "number-range"), (b"1" * 5000, "number-range"),
        ]
        for text, rule in numbers:
            body = self.good_event(tax)
            put(body, "/amountFen", "@@")
            self.refused("huge-number", tax, dumps(body).replace(b'"@@"', text), "invalid-json", "/amountFen", rule)
            body = self.good_event("market.business.registered")
            put(body, "/registeredCapitalFen", "@@")
            self.refused("huge-number", "market.business.registered", dumps(body).replace(b'"@@"', text),
                         "invalid-json", "/registeredCapitalFen", rule)
        # Numbers a Double holds exactly, at the edge: accepted.
        for text in [b"9007199254740991", b"0", b"4500000.0", b"1e3"]:
            body = self.good_event(tax)
            put(body, "/amountFen", "@@")
            self.add("good", "event", dumps(body).replace(b'"@@"', text), {"outcome": "accepted"}, type_=tax,
                     topic=EVENT_TYPES[tax][0], headers=[["ce-id", "hostile-good-%05d" % self.next_serial()]],
                     note="an integer a Double holds exactly")
        # Fractions and negatives where an integer amount is due.
        body = self.good_event(tax)
        put(body, "/amountFen", "@@")
        self.refused("huge-number", tax, dumps(body).replace(b'"@@"', b"1e-400"), "invalid-json", "/amountFen", "number-range")
        for text, rule in [(b"4500000.5", "type"), (b"-1", "minimum"), (b"0.1", "type")]:
            body = self.good_event(tax)
            put(body, "/amountFen", "@@")
            self.refused("wrong-type", tax, dumps(body).replace(b'"@@"', text), "schema-violation", "/amountFen", rule)
        # Wrong types.
        for type_ in types:
            for pointer, value in self.typed_members(type_):
                for wrong_value in [None, True, 1, 1.5, "1", [], {}]:
                    if type(wrong_value) is type(value) or (isinstance(value, int) and type(wrong_value) is int):
                        continue
                    body = self.good_event(type_)
                    put(body, pointer, wrong_value)
                    rule = "type"
                    if pointer == EVENT_TYPES[type_][1] and type_ == tax:
                        rule = "anyOf"
                    self.refused("wrong-type", type_, dumps(body), "schema-violation", pointer, rule)
            body = self.good_event(type_)
            required = EVENT_TYPES[type_][1].strip("/").split("/")[0]
            del body[required]
            self.refused("missing-field", type_, dumps(body), "schema-violation", "/" + required, "required")
            body = self.good_event(type_)
            body["unexpected"] = "x"
            self.refused("unknown-field", type_, dumps(body), "schema-violation", "/unexpected", "additionalProperties")
        # Invalid check characters in resident ID numbers and credit codes.
        for i in range(40):
            body = self.good_event(birth)
            right = body["child"]["residentId"]
            body["child"]["residentId"] = right[:17] + wrong(right[17], right[17])
            self.refused("invalid-check-character", birth, dumps(body), "schema-violation", "/child/residentId", "format")
            body = self.good_event(birth)
            right = body["mother"]["residentId"]
            body["mother"]["residentId"] = right[:17] + wrong(right[17], right[17]) if i % 2 else right.lower()[:16] + "ab"
            self.refused("invalid-check-character", birth, dumps(body), "schema-violation", "/mother/residentId", "format")
        for i in range(40):
            body = self.good_event("market.business.registered")
            right = body["creditCode"]
            other = next(c for c in CODE_CHARS if c != right[17])
            body["creditCode"] = right[:17] + (other if i % 4 else "I")  # I, O, S, V, Z are not in the alphabet
            self.refused("invalid-check-character", "market.business.registered", dumps(body), "schema-violation",
                         "/creditCode", "format")
        for i in range(20):
            body = self.good_event(tax)
            right = body["taxpayerId"]
            body["taxpayerId"] = right[:17] + wrong(right[17], right[17])
            self.refused("invalid-check-character", tax, dumps(body), "schema-violation", "/taxpayerId", "anyOf")
        # Impossible dates (in date fields, in date-times and inside resident ID numbers).
        for date in ["2025-02-29", "2024-02-30", "2025-04-31", "2025-13-01", "2025-00-10", "2025-01-32", "2025-1-5",
                     "20250115", "2025-02-28T", "٢٠٢٥-٠١-٠١"]:
            body = self.good_event(birth)
            body["child"]["birthDate"] = date
            self.refused("impossible-date", birth, dumps(body), "schema-violation", "/child/birthDate", "format")
            body = self.good_event("household.death.registered")
            body["dateOfDeath"] = date
            self.refused("impossible-date", "household.death.registered", dumps(body), "schema-violation",
                         "/dateOfDeath", "format")
        for instant in ["2025-02-30T10:00:00+08:00", "2025-03-05T24:30:00+08:00", "2025-03-05T10:60:00+08:00",
                        "2025-03-05T10:30:61+08:00", "2025-03-05 10:30:00", "2025-03-05T10:30:00+25:00",
                        "2025-03-05T10:30:00", "yesterday", ""]:
            body = self.good_event(tax)
            body["paidAt"] = instant
            self.refused("impossible-date", tax, dumps(body), "schema-violation", "/paidAt", "format")
        for born in ["20250230", "20251301", "20250000", "21000101"]:
            body = self.good_event(birth)
            body["child"]["residentId"] = resident_id("440604", born, 13)
            self.refused("impossible-date", birth, dumps(body), "schema-violation", "/child/residentId", "format")
        # Unknown types and wrong topics (only where the caller names them).
        for unknown in ["tax.payment.unknown", "household.birth", "", "HOUSEHOLD.BIRTH.REGISTERED", "a" * 300,
                        "household.birth.registered\n", "approval.decided.v2"]:
            body = self.good_event(birth)
            self.refused("unknown-type", unknown, dumps(body), "unknown-type", "", "unknown-type", topic="",
                         via=["publisher", "cli"])
        for type_, topic in [(birth, "tax.payment.received"), (tax, "household.birth.registered"),
                             ("approval.decided", "approval.tax.decided"), ("approval.decided", "approval.food-safety.requested"),
                             (birth, "deadletter.record.refused"), (tax, "no.such.topic")]:
            body = self.good_event(type_)
            self.refused("wrong-topic", type_, dumps(body), "wrong-topic", "", "wrong-topic", topic=topic,
                         via=["publisher", "cli"])
        # Headers: missing (accepted, the id comes from elsewhere), duplicated, oversized.
        for type_ in types:
            body = self.good_event(type_)
            self.add("missing-headers", "event", dumps(body), {"outcome": "accepted"}, type_=type_,
                     topic=EVENT_TYPES[type_][0], headers=[],
                     note="no ce-id: the webhook names it from the body's fingerprint, the CLI draws one")
            body = self.good_event(type_)
            self.refused("duplicated-headers", type_, dumps(body), "invalid-envelope", "ce-id", "once",
                         headers=[["ce-id", "hostile-dup-a-%05d" % self.serial], ["ce-id", "hostile-dup-b-%05d" % self.serial]],
                         via=["webhook"])
            body = self.good_event(type_)
            key = get(body, EVENT_TYPES[type_][1])
            self.refused("duplicated-headers", type_, dumps(body), "invalid-envelope", "ce-subject", "once",
                         headers=[["ce-id", "hostile-dups-%05d" % self.serial], ["ce-subject", key], ["ce-subject", key + "0"]],
                         via=["webhook"])
            body = self.good_event(type_)
            self.refused("oversized-headers", type_, dumps(body), "invalid-envelope", "ce_id", "maxLength",
                         headers=[["ce-id", "x" * 4096]], via=["webhook", "cli"])
            body = self.good_event(type_)
            self.refused("oversized-headers", type_, dumps(body), "header-too-large", "", "http",
                         headers=[["ce-id", "hostile-big-%05d" % self.serial], ["x-padding", "p" * 200_000]], via=["webhook"],
                         note="over the HTTP server's header limit: refused by the server (431) before the hub reads it")
        # Empty bodies and bodies of whitespace.
        for type_ in types:
            for empty in [b"", b" ", b"\n", b"\r\n\t "]:
                self.refused("empty-body", type_, empty, "invalid-json", "", "syntax", via=["publisher", "cli", "webhook"],
                             note="a blank line of a JSON-lines file holds no record: the file drop skips it")
        # A key field that disagrees with the subject.
        for type_ in types:
            for _ in range(4):
                body = self.good_event(type_)
                other = get(self.good_event(type_), EVENT_TYPES[type_][1])
                self.refused("subject-mismatch", type_, dumps(body), "subject-mismatch", EVENT_TYPES[type_][1],
                             "subject-mismatch", headers=[["ce-id", "hostile-subj-%05d" % self.serial], ["ce-subject", other]],
                             via=["publisher", "cli", "webhook"])
        # Decisions: for applications nobody submitted, conflicting ones, a department not the topic's.
        for i in range(10):
            body = self.good_event("approval.decided")
            body["applicationId"] = "RA-2099-%06d" % i
            self.add("decision-unknown-application", "event", dumps(body), {"outcome": "accepted"},
                     type_="approval.decided", topic=EVENT_TYPES["approval.decided"][0],
                     headers=[["ce-id", "hostile-good-%05d" % self.serial]],
                     note="a valid event: the bus takes it; the orchestrator must ignore it (no case), not stop")
            conflicting = dict(body)
            conflicting["decision"] = "rejected"
            conflicting["reason"] = "材料不全"
            self.add("decision-conflicting", "event", dumps(conflicting), {"outcome": "accepted"},
                     type_="approval.decided", topic=EVENT_TYPES["approval.decided"][0],
                     headers=[["ce-id", "hostile-good-%05d" % self.next_serial()]],
                     note="contradicts the decision before it: valid on the bus; the orchestrator keeps the first")
            body = self.good_event("approval.decided")
            body["department"] = "tax"
            self.refused("wrong-topic", "approval.decided", dumps(body), "wrong-topic", "/department", "ownerField")
            body = self.good_event("approval.decided")
            body["decision"] = "maybe"
            self.refused("rule-breaking", "approval.decided", dumps(body), "schema-violation", "/decision", "enum")
            body = self.good_event("approval.decided")
            body["applicationId"] = "ra-2026-1"
            self.refused("rule-breaking", "approval.decided", dumps(body), "schema-violation", "/applicationId", "pattern")

    def typed_members(self, type_):
        return {
            "household.birth.registered": [("/child/name", "x"), ("/child/gender", "x"), ("/householdNumber", "x"),
                                           ("/mother", {})],
            "household.death.registered": [("/name", "x"), ("/dateOfDeath", "x"), ("/informant", {})],
            "tax.payment.received": [("/amountFen", 1), ("/taxpayerId", "x"), ("/voucherNumber", "x")],
            "market.business.registered": [("/registeredCapitalFen", 1), ("/legalRepresentative", {}), ("/address", "x")],
            "approval.decided": [("/decision", "x"), ("/fields", {}), ("/decidedBy", "x")],
        }[type_]

    # -- applications at the front desk --------------------------------------------------------
    def good_application(self):
        n = self.next_serial()
        application = example("application.restaurant.submitted")
        application["applicationId"] = "RA-2026-%06d" % n
        application["business"]["seats"] = 10 + n % 200
        return {"workflow": "restaurant-opening", "application": application}

    def applications(self, good):
        r = self.random
        wf = "restaurant-opening"

        def app(kind, body, status, pointer="", rule="", code=None):
            expect = {"outcome": "accepted"} if status == 202 else {
                "outcome": "refused", "status": status, "code": code, "pointer": pointer, "rule": rule}
            self.add(kind, "application", body, expect, type_="application.restaurant.submitted", workflow=wf)

        hostile = []
        text = dumps(self.good_application())
        for cut in [1, 10, len(text) // 2, len(text) - 1]:
            hostile.append(("broken-json", text[:cut], 400, "", "syntax", "not-json"))
        for bad in [b"", b"<xml/>", b"{'workflow': 1}", b"{\"workflow\": \"restaurant-opening\",}", b"\x00"]:
            hostile.append(("broken-json" if bad else "empty-body", bad, 400, "", "syntax", "not-json"))
        for bad in [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe6\x9d"]:
            hostile.append(("invalid-utf8", text.replace("陈".encode(), bad, 1), 400, "/application/applicant/name",
                            "utf-8", "not-json"))
        for escape in [b"\\ud800", b"\\udfff"]:
            body = self.good_application()
            body["application"]["applicant"]["name"] = "@@"
            hostile.append(("lone-surrogate", dumps(body).replace(b"@@", escape), 400, "/application/applicant/name",
                            "utf-8", "not-json"))
        body = self.good_application()
        t = dumps(body)
        hostile.append(("duplicate-keys", t[:-1] + b',"workflow":"house-transfer"}', 400, "", "unique-keys", "not-json"))
        inner = dumps(body["application"]["business"])
        hostile.append(("duplicate-keys", t.replace(inner, inner[:-1] + b',"seats":0}'), 400, "/application/business",
                        "unique-keys", "not-json"))
        for depth in [600, 20_000]:
            body = self.good_application()
            body["application"]["window"] = "@@"
            hostile.append(("deep-nesting", dumps(body).replace(b'"@@"', b"[" * depth + b"]" * depth), 400,
                            "/application/window", "syntax", "not-json"))
        body = self.good_application()
        body["application"]["applicant"]["name"] = "名" * 300_000
        hostile.append(("huge-string", dumps(body), 422, "/application/applicant/name", "maxLength", "invalid-application"))
        body = self.good_application()
        body["application"]["window"] = "名" * 2_000_000
        hostile.append(("huge-string", dumps(body), 400, "", "size", "bad-request"))
        for number in [b"1e400", b"123456789012345678901234567890", b"9007199254740993"]:
            body = self.good_application()
            body["application"]["business"]["seats"] = "@@"
            hostile.append(("huge-number", dumps(body).replace(b'"@@"', number), 400, "/application/business/seats",
                            "number-range", "not-json"))
        for pointer, value, rule in [("/business/seats", "48", "type"), ("/business/seats", -1, "minimum"),
                                     ("/business/areaSquareMetres", None, "type"), ("/applicant", [], "type"),
                                     ("/materials", {}, "type"), ("/business/hasOutdoorSignboard", "yes", "type")]:
            body = self.good_application()
            put(body["application"], pointer, value)
            hostile.append(("wrong-type", dumps(body), 422, "/application" + pointer, rule, "invalid-application"))
        for i in range(6):
            body = self.good_application()
            right = body["application"]["applicant"]["residentId"]
            body["application"]["applicant"]["residentId"] = right[:17] + wrong(right[17], right[17])
            hostile.append(("invalid-check-character", dumps(body), 422, "/application/applicant/residentId", "format",
                            "invalid-application"))
        for date in ["2026-02-30T09:20:00+08:00", "2026-13-01T09:20:00+08:00", "2026-02-14"]:
            body = self.good_application()
            body["application"]["submittedAt"] = date
            hostile.append(("impossible-date", dumps(body), 422, "/application/submittedAt", "format",
                            "invalid-application"))
        for workflow in ["open-a-restaurant", "", "../../etc/passwd"]:
            body = self.good_application()
            body["workflow"] = workflow
            hostile.append(("unknown-type", dumps(body), 422, "/workflow", "workflow", "unknown-workflow"))
        body = self.good_application()
        body["workflow"] = "house-transfer"
        hostile.append(("wrong-topic", dumps(body), 422, "/application", "required", "invalid-application"))
        for pointer in ["/applicant", "/business", "/materials", "/applicationId"]:
            body = self.good_application()
            del body["application"][pointer[1:]]
            hostile.append(("rule-breaking", dumps(body), 422, "/application" + pointer, "required", "invalid-application"))
        for pointer, value, rule in [("/applicationId", "RA-26-1", "pattern"), ("/applicant/mobile", "1380276123", "format"),
                                     ("/business/name", "", "minLength")]:
            body = self.good_application()
            put(body["application"], pointer, value)
            hostile.append(("rule-breaking", dumps(body), 422, "/application" + pointer, rule, "invalid-application"))
        body = self.good_application()
        del body["application"]
        hostile.append(("missing-field", dumps(body), 400, "", "request", "bad-request"))
        # Interleave: each hostile request between good ones.
        r.shuffle(hostile)
        for kind, body, status, pointer, rule, code in hostile:
            app("good", dumps(self.good_application()), 202)
            app(kind, body, status, pointer, rule, code)
        for _ in range(good):
            app("good", dumps(self.good_application()), 202)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--good", type=int, default=400, help="good events interleaved among the hostile ones")
    parser.add_argument("--out", default=os.path.join(ROOT, "Tests", "HostileInput", "corpus", "corpus.jsonl"))
    args = parser.parse_args()
    corpus = Corpus(args.seed)
    corpus.hostile_events()
    hostile = corpus.records
    corpus.records = []
    # Good events interleaved at random places among the hostile ones, in a fixed order.
    slots = sorted(corpus.random.randrange(0, len(hostile) + 1) for _ in range(args.good))
    merged = []
    goods = iter(slots)
    next_slot = next(goods, None)
    for index in range(len(hostile) + 1):
        while next_slot == index:
            corpus.good()
            merged.append(corpus.records.pop())
            next_slot = next(goods, None)
        if index < len(hostile):
            merged.append(hostile[index])
    corpus.records = []
    corpus.applications(good=max(10, args.good // 10))
    merged.extend(corpus.records)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="ascii", newline="\n") as out:
        for seq, record in enumerate(merged, start=1):
            record["seq"] = seq
            out.write(json.dumps(record, separators=(",", ":"), sort_keys=False) + "\n")
    kinds = {}
    for record in merged:
        kinds[record["kind"]] = kinds.get(record["kind"], 0) + 1
    print("wrote %d records to %s" % (len(merged), os.path.relpath(args.out, ROOT)), file=sys.stderr)
    for kind in sorted(kinds):
        print("  %-30s %d" % (kind, kinds[kind]), file=sys.stderr)


if __name__ == "__main__":
    main()
