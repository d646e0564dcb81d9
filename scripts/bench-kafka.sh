#!/usr/bin/env bash
# Kafka part of `make bench`: the hub's Kafka backend and librdkafka alone
# (Benchmarks/kafka-raw/raw_bench.c) produce and consume the same number of ~500-byte records.
# Writes a Markdown section to the file given as $1 and, when $2 is given, appends the ratios of
# the medians ("kafka_produce_ratio 0.93") to that file for scripts/bench.sh's target check.
#
# One run of 100,000 records lasts about a third of a second and the test broker (Tansu) keeps
# everything in memory, so a single pair of runs is noisy and favours whichever side runs first on
# an empty broker. So: ONEWINDOW_BENCH_KAFKA_ROUNDS rounds (default 5), each on a fresh broker,
# raw first in odd rounds and the hub first in even ones; the table gives the medians, and the
# ratio of the medians, with every round's ratio beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
figures=${2:-/dev/null}
records=${ONEWINDOW_BENCH_KAFKA_RECORDS:-100000}
rounds=${ONEWINDOW_BENCH_KAFKA_ROUNDS:-5}
# ONEWINDOW_BENCH_BIN: the onewindow-bench binary to run (default: the release build in .build).
bin=${ONEWINDOW_BENCH_BIN:-$(swift build -c release --show-bin-path)/onewindow-bench}
raw_bench=$(dirname "$bin")/raw_bench
# Both topics get the same partitions (the hub's benchmark creates its topic with 6).
partitions=6
cc -O2 -o "$raw_bench" Benchmarks/kafka-raw/raw_bench.c $(pkg-config --cflags --libs rdkafka)
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq 1 "$rounds"); do
  order=$([ $((round % 2)) = 1 ] && echo "raw hub" || echo "hub raw")
  scripts/with-test-broker.sh bash -c '
    set -euo pipefail
    for side in '"$order"'; do
      if [ "$side" = raw ]; then
        raw=$('"$raw_bench"' "$ONEWINDOW_TEST_KAFKA" "bench.raw.$RANDOM" '"$records"' '"$partitions"')
      else
        hub=$(ONEWINDOW_BENCH_KAFKA="$ONEWINDOW_TEST_KAFKA" ONEWINDOW_BENCH_KAFKA_RECORDS='"$records"' \
              ONEWINDOW_BENCH_ONLY_KAFKA=1 '"$bin"' | grep KAFKA_HUB)
      fi
    done
    rp=$(echo "$raw" | awk "/produce/ {print \$2}"); rc=$(echo "$raw" | awk "/consume/ {print \$2}")
    hp=$(echo "$hub" | awk "{print \$3}"); hc=$(echo "$hub" | awk "{print \$5}")
    echo "$rp $rc $hp $hc" >> '"$results"'
  ' > /dev/null
  echo "   round $round ($order): $(tail -1 "$results")"
done
python3 - "$results" "$records" "$rounds" "$figures" > "$out" <<'PY'
import statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1]) if line.strip()]
records, rounds = int(sys.argv[2]), int(sys.argv[3])
figures = open(sys.argv[4], "a")
def column(i): return [row[i] for row in rows]
print(f"### Kafka backend against librdkafka alone ({records:,} records of ~500 bytes, {rounds} rounds, "
      "Tansu 0.6.0 on loopback, librdkafka 2.16)")
print()
print("Medians over the rounds, each round on a fresh broker, raw and hub taking turns to go first.")
print()
print("| what | raw librdkafka events/s | hub events/s | ratio of medians | ratio in each round |")
print("|---|---:|---:|---:|---|")
for key, name, raw, hub in (("produce", "produce (idempotent, acks=all, delivery reports awaited)", 0, 2),
                            ("consume", "consume (new group, from its first record, key, value and headers read)", 1, 3)):
    r, h = statistics.median(column(raw)), statistics.median(column(hub))
    ratios = [row[hub] / row[raw] for row in rows]
    each = ", ".join(f"{ratio:.2f}" for ratio in ratios)
    print(f"| {name} | {r:,.0f} | {h:,.0f} | {h / r:.2f} | {each} |")
    print(f"kafka_{key}_ratio {h / r}", file=figures)
    print(f"kafka_{key}_ratio_lowest_round {min(ratios)}", file=figures)
    print(f"kafka_{key}_ratio_highest_round {max(ratios)}", file=figures)
PY
