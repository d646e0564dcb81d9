#!/usr/bin/env bash
# Kafka part of `make bench`: the hub's Kafka backend against librdkafka alone
# (Benchmarks/kafka-raw/raw_bench.c), producing and consuming the same number of ~500-byte
# records on the same broker. Writes a Markdown section to the file given as $1.
#
# Each round starts a fresh Tansu broker (scripts/with-test-broker.sh: its memory storage grows
# with every run and slows later ones) and runs the C program, then the hub, on it. The machine
# and the broker share two cores, so single runs vary by ±30 %: the table gives the median of
# ONEWINDOW_BENCH_KAFKA_ROUNDS rounds (default 3) and every round's ratio.
#   ONEWINDOW_BENCH_KAFKA_RECORDS  records per run (default 100000)
#   ONEWINDOW_BENCH_BIN            the release onewindow-bench (default: the one `swift build -c
#                                  release` made, as scripts/bench.sh does)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
records=${ONEWINDOW_BENCH_KAFKA_RECORDS:-100000}
rounds=${ONEWINDOW_BENCH_KAFKA_ROUNDS:-3}
bin=${ONEWINDOW_BENCH_BIN:-$(swift build -c release --show-bin-path)/onewindow-bench}
mkdir -p .build
# Compiled against Debian's librdkafka 2.0.2 headers, run against 2.16 (LD_LIBRARY_PATH set by
# with-test-broker.sh), exactly like the hub.
cc -O2 -o .build/raw_bench Benchmarks/kafka-raw/raw_bench.c $(pkg-config --cflags --libs rdkafka)
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq 1 "$rounds"); do
  RECORDS=$records BIN=$bin scripts/with-test-broker.sh bash -c '
    set -euo pipefail
    raw=$(.build/raw_bench "$ONEWINDOW_TEST_KAFKA" "bench.raw.$RANDOM" "$RECORDS" 2>/dev/null)
    hub=$(ONEWINDOW_BENCH_KAFKA="$ONEWINDOW_TEST_KAFKA" ONEWINDOW_BENCH_KAFKA_RECORDS="$RECORDS" \
          ONEWINDOW_BENCH_ONLY_KAFKA=1 "$BIN" | grep KAFKA_HUB)
    echo "$(echo "$raw" | awk "/produce/ {print \$2}") $(echo "$raw" | awk "/consume/ {print \$2}") $(echo "$hub" | awk "{print \$3, \$5}")"
  ' | grep -v '^==>' >> "$results"
done
python3 - "$results" "$records" "$rounds" > "$out" <<'EOF'
import statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1]) if line.strip()]
records, rounds = int(sys.argv[2]), int(sys.argv[3])
def median(index): return statistics.median(row[index] for row in rows)
def ratios(hub, raw): return ", ".join(f"{row[hub] / row[raw]:.2f}" for row in rows)
print(f"### Kafka backend against librdkafka alone ({records:,} records of ~500 bytes, Tansu 0.6.0 on loopback, "
      f"librdkafka 2.16; median of {rounds} rounds, a fresh broker each)")
print()
print("| what | raw librdkafka events/s | hub events/s | ratio of medians | ratio per round |")
print("|---|---:|---:|---:|---|")
print(f"| produce (idempotent, acks=all, every delivery report awaited; hub: batches of 1,000, up to 8 appends "
      f"in flight) | {median(0):,.0f} | {median(2):,.0f} | {median(2) / median(0):.2f} | {ratios(2, 0)} |")
print(f"| consume (new group, from its first record; raw looks at key, value and headers, the hub copies them "
      f"into `LogRecord`s) | {median(1):,.0f} | {median(3):,.0f} | {median(3) / median(1):.2f} | {ratios(3, 1)} |")
EOF
cat "$out"
