#!/usr/bin/env bash
# `make reliability` (issue 12): the full version of each reliability test, whose short version
# `make test` runs, with its figures written into RELIABILITY.md together with the commands, the
# machine and the date.
#
# Each part below is a Swift Testing filter. It runs with ONEWINDOW_RELIABILITY=full (the tests'
# ReliabilityRun.scale picks their full counts) under scripts/with-test-broker.sh (the Kafka parts
# need the broker), and writes its sections into $ONEWINDOW_RELIABILITY_REPORT_DIR/<section>.md,
# which this script stamps and keeps in docs/reliability/ (below). A part that fails is named in
# RELIABILITY.md with its exit status and the tail of its output, and makes this script exit 1
# after the others have run. The last part, fuzzing, is scripts/fuzz.sh (make fuzz).
set -uo pipefail
# The whole script is one compound command, read before it runs: editing this file while a long
# run is going (a soak takes 15 minutes) cannot change what the running script does next.
{
cd "$(dirname "$0")/.."

# filter|what it is — one line per reliability suite (the filter may hold |, the title may not).
parts=(
    "HostileInputTests|hostile input at every entry point (Tests/HostileInput)"
    "killedAtRandomUnderLoad|Kills under load, embedded log and Kafka test broker"
    "brokerOutageUnderLoad|Broker outage under load (Kafka)"
    "ReliabilityTests/soak|Soak (embedded log)"
    "EmbeddedDiskTests|StoreDiskTests|a full disk and read-only files (embedded log, orchestrator store)"
    "fuzz|fuzzing (libFuzzer and the address sanitizer)"
)

# ONEWINDOW_RELIABILITY_ONLY=REGEX runs only the parts whose line matches it (e.g. 'Kills|outage').
if [ -n "${ONEWINDOW_RELIABILITY_ONLY:-}" ]; then
    selected=()
    for part in "${parts[@]}"; do [[ $part =~ $ONEWINDOW_RELIABILITY_ONLY ]] && selected+=("$part"); done
    parts=("${selected[@]}")
fi

# Each part's section is kept in docs/reliability/ (one or more files per part, named by the test
# that wrote them) with the date, the commit and the load of the run that produced it, so that a
# part run on its own (ONEWINDOW_RELIABILITY_ONLY) replaces only its own sections; RELIABILITY.md is
# then put together from every section there, sorted by name.
sections=docs/reliability
mkdir -p "$sections"
report_dir=$(mktemp -d)
trap 'rm -rf "$report_dir"' EXIT
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "unknown")
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit with uncommitted changes"

# Moves the sections a part wrote into $sections, each stamped with when and where it ran, and
# drops an earlier failure record of that part ($1: the part's file-name-safe name).
keep_sections() {
    local name=$1 section base
    rm -f "$sections/zz-failed-$name.md"
    for section in "$report_dir"/*.md; do
        [ -e "$section" ] || continue
        base=$(basename "$section")
        { cat "$section"; echo; echo "_Run on $(date -u '+%Y-%m-%d %H:%M UTC') at commit $commit; load average at its end: $(cut -d' ' -f1-3 /proc/loadavg)._"; } > "$sections/$base"
        rm -f "$section"
    done
}

# Records a failed part ($1 name, $2 title, $3 command, $4 status, $5 log).
record_failure() {
    { echo "### FAILED: $2"; echo; echo "\`$3\` exited $4 on $(date -u '+%Y-%m-%d %H:%M UTC') at commit $commit; the end of its output:"; echo;
      echo '```'; tail -n 30 "$5"; echo '```'; } > "$sections/zz-failed-$1.md"
    rm -f "$report_dir"/*.md
}

# The tests' build, unless fuzzing (which builds its own) is all that was asked for.
for part in "${parts[@]}"; do
    if [ "${part%|*}" != "fuzz" ]; then swift build --build-tests || exit 1; break; fi
done

failed=()
for part in "${parts[@]}"; do
    filter=${part%|*}
    title=${part##*|}
    name=$(echo "$filter" | tr -c 'A-Za-z0-9\n' '-')
    log="$report_dir/$name.log"
    if [ "$filter" = "fuzz" ]; then
        # Fuzzing is not a Swift test: scripts/fuzz.sh (make fuzz) runs it and writes its own section.
        echo "==> $title (scripts/fuzz.sh, FUZZ_SECONDS=${FUZZ_SECONDS:-60} a target)"
        ONEWINDOW_RELIABILITY_REPORT_DIR="$report_dir" scripts/fuzz.sh > "$log" 2>&1
        status=$?
        command="scripts/fuzz.sh"
    else
        echo "==> $title ($filter)"
        ONEWINDOW_RELIABILITY=full ONEWINDOW_RELIABILITY_REPORT_DIR="$report_dir" \
            scripts/with-test-broker.sh swift test --skip-build --filter "$filter" > "$log" 2>&1
        status=$?
        command="swift test --filter '$filter'"
    fi
    if [ "$status" -ne 0 ]; then
        failed+=("$title")
        record_failure "$name" "$title" "$command" "$status" "$log"
    else
        keep_sections "$name"
    fi
    tail -n 3 "$log"
done

{
    echo "# Reliability"
    echo
    echo "Produced by \`make reliability\` (scripts/reliability.sh); last put together on $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr), $(swift --version 2>&1 | head -n 1)."
    echo
    echo "Each section below ends with the date, the commit and the machine's load of the run that wrote"
    echo "it: \`ONEWINDOW_RELIABILITY_ONLY=REGEX make reliability\` re-runs some parts and replaces only"
    echo "their sections (kept in docs/reliability/). \`make test\` runs a short version of every part"
    echo "(the same tests with smaller counts) and fuzzing's regression inputs. Floods (refusing bad input"
    echo "at least as fast as accepting good input) are measured by \`make bench\`: see BENCHMARKS.md."
    echo
    for section in $(ls "$sections"/*.md 2>/dev/null | sort); do cat "$section"; echo; done
} > RELIABILITY.md
echo "wrote RELIABILITY.md"
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
exit
}
