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
"$bin" "$work/embedded.md"

kafka_section=""
if [ -x scripts/bench-kafka.sh ]; then
  echo "==> Kafka backend against raw librdkafka"
  scripts/bench-kafka.sh "$work/kafka.md"
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
  echo "## Targets"
  echo
  echo "- Embedded batched append: at least 0.5 of raw GRDB inserts of the same rows, and at least 100,000 events/s."
  echo "- Embedded consume: at least 300,000 events/s."
  echo "- Kafka backend: at least 0.8 of raw librdkafka's produce and consume rates."
  echo "- Connector table source: at least 20,000 rows/s (3 million records a day in under three minutes)."
} > BENCHMARKS.md
echo "==> BENCHMARKS.md written"
