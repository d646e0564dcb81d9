#!/usr/bin/env bash
# Kafka part of `make bench`: on one Tansu broker started for it, the hub's Kafka backend and
# librdkafka alone (Benchmarks/kafka-raw/raw_bench.c) produce and consume the same number of
# ~500-byte records. Writes a Markdown section to the file given as $1.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
records=${ONEWINDOW_BENCH_KAFKA_RECORDS:-100000}
# ONEWINDOW_BENCH_BIN: the onewindow-bench binary to run (default: the release build in .build).
bin=${ONEWINDOW_BENCH_BIN:-$(swift build -c release --show-bin-path)/onewindow-bench}
raw_bench=$(dirname "$bin")/raw_bench
# Both topics get the same partitions (the hub's benchmark creates its topic with 6).
partitions=6
cc -O2 -o "$raw_bench" Benchmarks/kafka-raw/raw_bench.c $(pkg-config --cflags --libs rdkafka)
scripts/with-test-broker.sh bash -c '
  set -euo pipefail
  raw=$('"$raw_bench"' "$ONEWINDOW_TEST_KAFKA" "bench.raw.$RANDOM" '"$records"' '"$partitions"')
  hub=$(ONEWINDOW_BENCH_KAFKA="$ONEWINDOW_TEST_KAFKA" ONEWINDOW_BENCH_KAFKA_RECORDS='"$records"' \
        ONEWINDOW_BENCH_ONLY_KAFKA=1 '"$bin"' | grep KAFKA_HUB)
  rp=$(echo "$raw" | awk "/produce/ {print \$2}"); rc=$(echo "$raw" | awk "/consume/ {print \$2}")
  hp=$(echo "$hub" | awk "{print \$3}"); hc=$(echo "$hub" | awk "{print \$5}")
  {
    echo "### Kafka backend against librdkafka alone ('"$records"' records of ~500 bytes, Tansu 0.6.0 on loopback, librdkafka 2.16)"
    echo
    echo "| what | raw librdkafka events/s | hub events/s | ratio |"
    echo "|---|---:|---:|---:|"
    echo "| produce (idempotent, acks=all, delivery reports awaited) | $rp | $hp | $(python3 -c "print(f\"{$hp/$rp:.2f}\")") |"
    echo "| consume (new group, from its first record) | $rc | $hc | $(python3 -c "print(f\"{$hc/$rc:.2f}\")") |"
  } > '"$out"'
'
