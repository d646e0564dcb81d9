#!/usr/bin/env bash
# `make reliability` (issue 12): the full version of each reliability test, whose short version
# `make test` runs, with its figures written into RELIABILITY.md together with the commands, the
# machine and the date.
#
# Each part below is a Swift Testing filter. It runs with ONEWINDOW_RELIABILITY=full (the tests'
# ReliabilityRun.scale picks their full counts) under scripts/with-test-broker.sh (the Kafka parts
# need the broker), and writes its section into $ONEWINDOW_RELIABILITY_REPORT_DIR/<part>.md, which
# this script then gathers, sorted by name. A part that fails is named in RELIABILITY.md with its
# exit status and the tail of its output, and makes this script exit 1 after the others have run.
set -uo pipefail
cd "$(dirname "$0")/.."

# filter|what it is — one line per reliability suite (the filter may hold |, the title may not).
parts=(
    "HostileInputTests|hostile input at every entry point (Tests/HostileInput)"
    "killedAtRandomUnderLoad|Kills under load, embedded log and Kafka test broker"
    "brokerOutageUnderLoad|Broker outage under load (Kafka)"
    "ReliabilityTests/soak|Soak (embedded log)"
    "EmbeddedDiskTests|StoreDiskTests|a full disk and read-only files (embedded log, orchestrator store)"
)

# ONEWINDOW_RELIABILITY_ONLY=REGEX runs only the parts whose line matches it (e.g. 'Kills|outage').
if [ -n "${ONEWINDOW_RELIABILITY_ONLY:-}" ]; then
    selected=()
    for part in "${parts[@]}"; do [[ $part =~ $ONEWINDOW_RELIABILITY_ONLY ]] && selected+=("$part"); done
    parts=("${selected[@]}")
fi

report_dir=$(mktemp -d)
trap 'rm -rf "$report_dir"' EXIT
swift build --build-tests || exit 1

failed=()
for part in "${parts[@]}"; do
    filter=${part%|*}
    title=${part##*|}
    echo "==> $title ($filter)"
    name=$(echo "$filter" | tr -c 'A-Za-z0-9\n' '-')
    log="$report_dir/$name.log"
    ONEWINDOW_RELIABILITY=full ONEWINDOW_RELIABILITY_REPORT_DIR="$report_dir" \
        scripts/with-test-broker.sh swift test --skip-build --filter "$filter" > "$log" 2>&1
    status=$?
    if [ "$status" -ne 0 ]; then
        failed+=("$title")
        { echo "### FAILED: $title"; echo; echo "\`swift test --filter '$filter'\` exited $status; the end of its output:"; echo;
          echo '```'; tail -n 30 "$log"; echo '```'; } > "$report_dir/zz-failed-$name.md"
    fi
    tail -n 3 "$log"
done

# Fuzzing is not a Swift test: `make fuzz` (scripts/fuzz.sh) runs it and writes its own section.
echo "==> fuzzing (scripts/fuzz.sh, FUZZ_SECONDS=${FUZZ_SECONDS:-60} a target)"
if ! ONEWINDOW_RELIABILITY_REPORT_DIR="$report_dir" scripts/fuzz.sh > "$report_dir/fuzz.log" 2>&1; then
    failed+=("fuzzing")
    { echo "### FAILED: fuzzing"; echo; echo "\`scripts/fuzz.sh\` failed; the end of its output:"; echo;
      echo '```'; tail -n 30 "$report_dir/fuzz.log"; echo '```'; } > "$report_dir/zz-failed-fuzz.md"
fi
tail -n 9 "$report_dir/fuzz.log"

{
    echo "# Reliability"
    echo
    echo "Produced by \`make reliability\` (scripts/reliability.sh) on $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr), $(swift --version 2>&1 | head -n 1)."
    echo "Load average when the run ended: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "\`make test\` runs a short version of every part below (the same tests with smaller counts)."
    echo
    for section in $(ls "$report_dir"/*.md 2>/dev/null | sort); do cat "$section"; echo; done
} > RELIABILITY.md
echo "wrote RELIABILITY.md"
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
