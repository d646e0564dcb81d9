#!/usr/bin/env python3
"""Seed inputs for the fuzz targets, made from what the repository holds (Fuzz/README.md).

    scripts/fuzz-seeds.py OUT_DIR

writes OUT_DIR/<target>/<name> for every target of onewindow-fuzz: the topic schemas and their
examples (json, schema), valid and near-valid identifiers (identifiers), records for each
connector mapping (mapping), CSV files (csv) and every rule condition in Rules/ (condition).
`make fuzz` passes them to libFuzzer beside the committed corpus on every run, so a new schema
example or rule is fuzzed at once; the merge keeps only those that reach new code.
"""
import json
import os
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
out = pathlib.Path(sys.argv[1])


def put(target, name, data):
    folder = out / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


schemas = sorted((root / "Topics" / "schemas").glob("*.json"))
examples = []
for index, path in enumerate(schemas):
    text = path.read_text()
    put("json", path.stem, text)
    document = json.loads(text)
    for number, example in enumerate(document.get("examples", [])):
        body = json.dumps(example, ensure_ascii=False).encode()
        examples.append(body)
        put("json", f"{path.stem}-{number}", body)
        put("schema", f"{path.stem}-{number}", bytes([index]) + body)
    put("schema", f"compile-{path.stem}", bytes([len(schemas)]) + text.encode())

# Identifiers: valid ones of each kind, and the usual mistakes (lower-case x, a wrong check
# character, an impossible birth date, full-width digits, letters the credit code forbids).
for number, text in enumerate([
    "11010519491231002X", "11010519491231002x", "110105194912310021", "110105194902300021",
    "１１０１０５１９４９１２３１００２X", "91350100M000100Y43", "91350100M000100Y4", "9135010OM000100Y43",
    "13812345678", "+8613812345678", "2024-02-29", "2024-02-30T08:00:00+08:00",
]):
    put("identifiers", f"seed-{number}", text)

# Connector mappings: for each, a record as a JSON object of plausible column values, and the
# same values as lines. The mapping target picks mapping number (first byte % count).
values = ["11010519491231002X", "张三", "1", "20240115", "2024-01-15 08:30:00", "2024/01/15", "Y", "是",
          "01", "42.5", "{\"a\": 1}", ""]
for selector in range(16):
    record = {f"c{number}": value for number, value in enumerate(values)}
    put("mapping", f"object-{selector}", bytes([selector]) + json.dumps(record, ensure_ascii=False).encode())
    put("mapping", f"lines-{selector}", bytes([selector]) + "\n".join(values).encode())

put("csv", "simple", "id,name,birth_date,registered_at\n1,张三,20240115,2024-01-15 08:30:00\n2,李四,2024/01/16,\n")
put("csv", "quoted", '\ufeffid,"note, with comma","multi\nline"\r\n1,"say ""hi""",x\r\n2,,\r\n')
put("csv", "ragged", "a,b,c\n1,2\n3,4,5,6\n\n")

conditions = set()
for path in (root / "Rules").rglob("*.yaml"):
    for line in path.read_text().splitlines():
        match = re.match(r"\s*condition:\s*(.+?)\s*(#.*)?$", line)
        if match:
            conditions.add(match.group(1).strip().strip("'\""))
for number, text in enumerate(sorted(conditions) + [
    "not (a.b in [1, 2.5, 'x', \"y\", 2026-01-01, true])", "x != false and (y <= 3 or z >= -4)",
]):
    put("condition", f"seed-{number}", text)
