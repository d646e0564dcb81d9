#!/usr/bin/env bash
# `make bench`: release build, embedded-log figures, Kafka figures against a broker this script
# starts, all written into BENCHMARKS.md with the command, the machine and the date.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build -c release --product onewindow-bench
bin=$(swift build -c release --show-bin-path)/onewindow-bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "==> embedded log"
"$bin" "$work/embedded.md" "$work/figures"

kafka_section=""
if [ -x scripts/bench-kafka.sh ]; then
  echo "==> Kafka backend against raw librdkafka"
  scripts/bench-kafka.sh "$work/kafka.md" "$work/figures"
  kafka_section=$(cat "$work/kafka.md")
fi

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
load=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "# Benchmarks"
  echo
  echo "Produced by \`make bench\` (scripts/bench.sh, release build) on $(date -u +%Y-%m-%d)."
  echo "Machine: $(nproc) cores ($cpu), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr), $(swift --version 2>/dev/null | head -1)."
  echo "Load average when the run ended: $load (anything above 0 means other work shared the two cores)."
  echo "Events are ~500-byte JSON bodies with CloudEvents headers (\`ce_*\`), as the hub writes them."
  echo
  cat "$work/embedded.md"
  echo
  if [ -n "$kafka_section" ]; then echo "$kafka_section"; echo; fi
  echo "## Against the targets"
  echo
  echo "Checked by scripts/bench.sh against the figures above."
  echo
  python3 - "$work/figures" <<'PY'
import sys
figures = {}
for line in open(sys.argv[1]):
    if line.strip():
        name, value = line.split()
        figures[name] = float(value)
def verdict(ok): return "met" if ok else "**not met**"
def line(target, names, check, measured):
    if not all(name in figures for name in names):
        print(f"- {target}: not measured in this run.")
    else:
        f = figures
        print(f"- {target}: {verdict(check(f))} ({measured(f)}).")
line("Embedded batched append, at least 0.5 of raw GRDB inserts of the same rows and at least 100,000 events/s",
     ["embedded_append_events_per_second", "embedded_append_ratio"],
     lambda f: f["embedded_append_ratio"] >= 0.5 and f["embedded_append_events_per_second"] >= 100_000,
     lambda f: f"{f['embedded_append_events_per_second']:,.0f} events/s in batches of 1,000, {f['embedded_append_ratio']:.2f} of raw")
line("Embedded consume, at least 300,000 events/s", ["embedded_consume_events_per_second"],
     lambda f: f["embedded_consume_events_per_second"] >= 300_000,
     lambda f: f"{f['embedded_consume_events_per_second']:,.0f} events/s")
line("Connector table source, at least 20,000 rows/s (3 million records a day in under three minutes)",
     ["connector_rows_per_second"], lambda f: f["connector_rows_per_second"] >= 20_000,
     lambda f: f"{f['connector_rows_per_second']:,.0f} rows/s")
line("Shared view ingest, at least 17,000 facts/s (a Chancheng day of 3 million shared records in under 3 minutes)",
     ["view_ingest_facts_per_second"], lambda f: f["view_ingest_facts_per_second"] >= 17_000,
     lambda f: f"{f['view_ingest_facts_per_second']:,.0f} facts/s")
line("Full-population comparison, 100,000 residents in under a minute (at least 1,667 subjects/s)",
     ["view_compare_subjects_per_second"], lambda f: f["view_compare_subjects_per_second"] >= 100_000 / 60,
     lambda f: f"{f['view_compare_subjects_per_second']:,.0f} subjects/s")
line("By-ID lookup p99 under 5 ms with 1 million residents in the view",
     ["view_lookup_p99_milliseconds", "view_lookup_residents"],
     lambda f: f["view_lookup_p99_milliseconds"] < 5 and f["view_lookup_residents"] >= 1_000_000,
     lambda f: f"p99 {f['view_lookup_p99_milliseconds']:.2f} ms with {f['view_lookup_residents']:,.0f} residents")
for side in ("produce", "consume"):
    key = f"kafka_{side}_ratio"
    line(f"Kafka {side}, at least 0.8 of raw librdkafka's rate", [key, key + "_lowest_round", key + "_highest_round"],
         lambda f, key=key: f[key] >= 0.8,
         lambda f, key=key: f"{f[key]:.2f} on the medians; single rounds {f[key + '_lowest_round']:.2f} to {f[key + '_highest_round']:.2f}")
PY
} > BENCHMARKS.md
echo "==> BENCHMARKS.md written"
