#!/usr/bin/env bash
# `make bench`: release build, embedded-log figures (log, connector, orchestrator), Kafka figures
# against brokers this script starts, the Temporal peer's figures from the same run, all written
# into BENCHMARKS.md with the command, the machine and the date.
#
# The peer: $PEER_DIR/temporal/run.sh (PEER_DIR defaults to ../shared/peers from the repository
# root) runs the same restaurant workflow on a Temporal dev server; when it is missing or fails,
# the reason is printed and written into BENCHMARKS.md instead of its figures.
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
  echo "==> the orchestrator on the Kafka test broker"
  bin="$bin" scripts/with-test-broker.sh bash -c \
    'ONEWINDOW_BENCH_ORCHESTRATOR_KAFKA="$ONEWINDOW_TEST_KAFKA" "$bin" "$0/orchestrator-kafka.md" "$0/figures-kafka"' "$work"
  cat "$work/figures-kafka" >> "$work/figures"
fi

peer_dir=${PEER_DIR:-../shared/peers}
peer_line=""
peer_reason=""
if [ ! -f "$peer_dir/temporal/run.sh" ]; then
  peer_reason="$peer_dir/temporal/run.sh does not exist (set PEER_DIR to the folder holding temporal/run.sh)"
else
  echo "==> the peer: the restaurant workflow on a Temporal dev server ($peer_dir/temporal/run.sh)"
  # The peer README's quiet-machine run (about 3 minutes); PEER_TOTAL etc. change it.
  if TOTAL=${PEER_TOTAL:-1000} WARMUP=${PEER_WARMUP:-100} DURATION=${PEER_DURATION:-10} \
      bash "$peer_dir/temporal/run.sh" > "$work/peer.log" 2>&1; then
    peer_line=$(grep '^temporal restaurant:' "$work/peer.log" || true)
    [ -n "$peer_line" ] || peer_reason="run.sh printed no 'temporal restaurant:' line: $(tail -3 "$work/peer.log" | tr '\n' ' ')"
  else
    peer_reason="run.sh failed (status $?): $(tail -3 "$work/peer.log" | tr '\n' ' ')"
  fi
fi
if [ -n "$peer_reason" ]; then echo "   peer skipped: $peer_reason"; else echo "   $peer_line"; fi
echo "$peer_line" > "$work/peer-line"

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
  if [ -f "$work/orchestrator-kafka.md" ]; then cat "$work/orchestrator-kafka.md"; echo; fi
  echo "### The peer: the same restaurant workflow on Temporal, same run"
  echo
  if [ -n "$peer_reason" ]; then
    echo "Not measured: $peer_reason."
  else
    python3 - "$work/figures" "$work/peer-line" <<'PY'
import re, sys
figures = dict((l.split()[0], float(l.split()[1])) for l in open(sys.argv[1]) if l.strip())
line = open(sys.argv[2]).read().strip()
def grab(pattern):
    m = re.search(pattern, line)
    return float(m.group(1)) if m else None
wfs = grab(r"restaurant: ([\d.]+) wf/s")
fixed = re.search(r"fixed ([\d.]+)/s x ([\d.]+)s: p50 ([\d.]+) ms, p99 ([\d.]+) ms", line)
print(f"run.sh printed: `{line}`")
print()
print("| what | OneWindow | Temporal peer | OneWindow / peer |")
print("|---|---:|---:|---:|")
ours = figures.get("orchestrator_embedded_workflows_per_second")
if ours and wfs:
    print(f"| completed restaurant workflows/s (closed loop; peer: 7 activities each, 200 in flight) | {ours:,.0f} | {wfs:,.1f} | {ours / wfs:,.0f}× |")
p99 = figures.get("orchestrator_latency_p99_ms")
if fixed and p99 is not None:
    rate, _, peer_p50, peer_p99 = map(float, fixed.groups())
    print(f"| p50 latency at a fixed rate (ours: to the last approval request at 500/s; peer: workflow complete at {rate:g}/s) | {figures['orchestrator_latency_p50_ms']:.1f} ms | {peer_p50:.0f} ms | {peer_p50 / max(figures['orchestrator_latency_p50_ms'], 0.1):,.0f}× faster |")
    print(f"| p99 latency, the same | {p99:.1f} ms | {peer_p99:.0f} ms | {peer_p99 / max(p99, 0.1):,.0f}× faster |")
PY
  fi
  echo
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
line("Orchestrator, at least 2,000 completed restaurant workflows/s on the embedded log",
     ["orchestrator_embedded_workflows_per_second"], lambda f: f["orchestrator_embedded_workflows_per_second"] >= 2_000,
     lambda f: f"{f['orchestrator_embedded_workflows_per_second']:,.0f}/s")
line("Orchestrator, p99 from submission to the last approval request under 20 ms at 500 applications/s",
     ["orchestrator_latency_p99_ms"], lambda f: f["orchestrator_latency_p99_ms"] < 20,
     lambda f: f"p99 {f['orchestrator_latency_p99_ms']:.1f} ms, p50 {f['orchestrator_latency_p50_ms']:.1f} ms")
line("Orchestrator, under 300 MB resident with 100,000 open applications",
     ["orchestrator_resident_mb", "orchestrator_open_applications"],
     lambda f: f["orchestrator_resident_mb"] < 300 and f["orchestrator_open_applications"] >= 100_000,
     lambda f: f"{f['orchestrator_resident_mb']:.0f} MB with {f['orchestrator_open_applications']:,.0f} open")
line("SSE fan-out, at least 100,000 events/s delivered in total to 100 subscribers on loopback",
     ["sse_delivered_events_per_second", "sse_subscribers"],
     lambda f: f["sse_delivered_events_per_second"] >= 100_000 and f["sse_subscribers"] >= 100,
     lambda f: f"{f['sse_delivered_events_per_second']:,.0f} events/s to {f['sse_subscribers']:.0f} subscribers")
line("SSE fan-out, p99 from append to delivery under 50 ms", ["sse_latency_p99_ms"],
     lambda f: f["sse_latency_p99_ms"] < 50, lambda f: f"p99 {f['sse_latency_p99_ms']:.1f} ms")
line("Front-desk submissions through HTTP with validation, at least 5,000/s (the desk kept busy by its most clients)",
     ["desk_capacity_per_second", "desk_accepted_fraction"],
     lambda f: f["desk_capacity_per_second"] >= 5_000 and f["desk_accepted_fraction"] == 1,
     lambda f: f"{f['desk_capacity_per_second']:,.0f} accepted/s with {f['desk_capacity_clients']:.0f} clients "
     f"(p99 {f['desk_capacity_latency_p99_ms']:.1f} ms); with {f['desk_clients']:.0f} clients {f['desk_accepted_per_second']:,.0f}/s, "
     f"p50 {f['desk_latency_p50_ms']:.1f} ms, p99 {f['desk_latency_p99_ms']:.1f} ms"
     + ("" if f["desk_accepted_fraction"] == 1 else f"; only {f['desk_accepted_fraction']:.1%} accepted"))
# Met only when both hold against the good stream (valid tax payments): the garbage's rate alone is
# at least the good rate, and a refused record costs the process no more CPU than an accepted one.
# The second comparison (the corpus's good events of the garbage's own types) is printed beside it,
# not used for the verdict.
line("Floods: refusing garbage at least as fast as accepting good events (garbage events/s at least the good rate, and CPU per refused record at most an accepted one's), and the good stream beside a flood",
     ["flood_good_per_second", "flood_garbage_per_second", "flood_good_beside_garbage_per_second",
      "flood_good_cpu_us_per_record", "flood_garbage_cpu_us_per_record"],
     lambda f: f["flood_garbage_per_second"] >= f["flood_good_per_second"]
     and f["flood_garbage_cpu_us_per_record"] <= f["flood_good_cpu_us_per_record"],
     lambda f: f"good {f['flood_good_per_second']:,.0f}/s, garbage {f['flood_garbage_per_second']:,.0f}/s, "
     f"good beside a flood {f['flood_good_beside_garbage_per_second']:,.0f}/s; CPU per record "
     f"{f['flood_good_cpu_us_per_record']:.1f} µs good, {f['flood_garbage_cpu_us_per_record']:.1f} µs garbage"
     + (f"; second comparison, the corpus's good events of the garbage's types: {f['flood_corpus_good_per_second']:,.0f}/s, "
        f"{f['flood_corpus_good_cpu_us_per_record']:.1f} µs" if "flood_corpus_good_cpu_us_per_record" in f else ""))
for side in ("produce", "consume"):
    key = f"kafka_{side}_ratio"
    line(f"Kafka {side}, at least 0.8 of raw librdkafka's rate", [key, key + "_lowest_round", key + "_highest_round"],
         lambda f, key=key: f[key] >= 0.8,
         lambda f, key=key: f"{f[key]:.2f} on the medians; single rounds {f[key + '_lowest_round']:.2f} to {f[key + '_highest_round']:.2f}")
PY
} > BENCHMARKS.md
echo "==> BENCHMARKS.md written"
