#!/usr/bin/env bash
# `make fuzz` (issue 12): builds onewindow-fuzz with libFuzzer and the address sanitizer in its own
# scratch folder (.build-fuzz: the normal build is left alone), runs each target for FUZZ_SECONDS
# (default 60) from its committed corpus (Fuzz/corpus/<target>/) and the seeds the repository
# gives (scripts/fuzz-seeds.py), then merges what it found back into the corpus, keeping only the
# inputs that reach new code. See Fuzz/README.md.
#
#   FUZZ_SECONDS=300 make fuzz              # longer
#   FUZZ_TARGETS="json csv" make fuzz       # some targets only
#
# A crash (or a broken property, or a leak/overflow the sanitizer reports) stops that target; its
# input is kept in .build-fuzz/findings/<target>/ and this script exits 1 after the other targets.
# With ONEWINDOW_RELIABILITY_REPORT_DIR set (make reliability), the figures go to fuzz.md there.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-json schema identifiers mapping csv condition}
scratch=.build-fuzz
# --sanitize=fuzzer makes SwiftPM link libFuzzer's main (not the executable's); the -Xswiftc flag
# compiles every Swift module with coverage and ASan. Both sanitizers go in one -sanitize= flag:
# of two separate ones the compiler keeps only the last.
build=(swift build --scratch-path "$scratch" --product onewindow-fuzz --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address)
export ONEWINDOW_FUZZ=1
# The build's own status (after `|| true`, PIPESTATUS would be true's): grep only hides the
# linker's noise about local symbols.
mkdir -p "$scratch"
"${build[@]}" > "$scratch/build.log" 2>&1
build_status=$?
grep -v "Cannot export local symbol" "$scratch/build.log"
[ "$build_status" -eq 0 ] || { echo "fuzz: the build failed (exit $build_status; its output is above and in $scratch/build.log)"; exit 1; }
binary="$("${build[@]}" --show-bin-path)/onewindow-fuzz"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 scripts/fuzz-seeds.py "$work/seeds" || exit 1

rows=()
failed=()
for target in $targets; do
    corpus=Fuzz/corpus/$target
    mkdir -p "$corpus" "$work/new-$target" "$work/seeds/$target" "$scratch/findings/$target"
    log="$work/$target.log"
    echo "==> $target ($seconds s)"
    touch "$work/start-$target"
    # The first folder receives what the run finds; the others are read.
    SWIFT_BACKTRACE=enable=no FUZZ_TARGET=$target "$binary" -max_total_time="$seconds" -max_len=4096 \
        -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$scratch/findings/$target/" \
        "$work/new-$target" "$corpus" "$work/seeds/$target" > "$log" 2>&1
    status=$?
    grep -E '^(#[0-9]+ +DONE|==[0-9]+==ERROR|SUMMARY|Fatal error|.*property broken)' "$log" | tail -n 4
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    # Minimise: a fresh corpus of the inputs (old, seeds, new) that together reach all the code reached.
    minimized="$work/min-$target"
    mkdir -p "$minimized"
    if SWIFT_BACKTRACE=enable=no FUZZ_TARGET=$target "$binary" -merge=1 -max_len=4096 -timeout=10 \
        "$minimized" "$corpus" "$work/seeds/$target" "$work/new-$target" > "$work/$target-merge.log" 2>&1; then
        rm -rf "$corpus" && mkdir -p "$corpus" && cp "$minimized"/* "$corpus"/ 2>/dev/null
    else
        echo "fuzz: merging the corpus of $target failed (an input of it crashes?): see the log below"
        tail -n 5 "$work/$target-merge.log"
    fi
    files=$(find "$corpus" -type f | wc -l)
    bytes=$(du -sb "$corpus" | cut -f1)
    crashes=$(find "$scratch/findings/$target" -type f -newer "$work/start-$target" | wc -l)
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        echo "fuzz: $target stopped with status $status; the input is in $scratch/findings/$target/; end of its log:"
        tail -n 25 "$log"
    fi
    rows+=("| $target | $seconds | ${runs:-?} | ${rate:-?} | $files ($((bytes / 1024)) KiB) | $crashes | $([ "$status" -eq 0 ] && echo ok || echo "FAILED ($status)") |")
done

table() {
    echo "| target | seconds | executions | executions/s | corpus after the merge | new findings | result |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
}
table
if [ -n "${ONEWINDOW_RELIABILITY_REPORT_DIR:-}" ]; then
    mkdir -p "$ONEWINDOW_RELIABILITY_REPORT_DIR"
    {
        echo "### Fuzzing (make fuzz)"
        echo
        echo "\`FUZZ_SECONDS=$seconds make fuzz\` (scripts/fuzz.sh): libFuzzer with the address sanitizer, a debug build"
        echo "(\`${build[*]}\`), each target from its corpus in Fuzz/corpus/ and the repository's seeds;"
        echo "the pass condition is no crash, no sanitizer report and no broken property. Crashes found earlier"
        echo "and fixed are listed in Fuzz/README.md with their regression tests (run by \`make test\`)."
        echo
        table
    } > "$ONEWINDOW_RELIABILITY_REPORT_DIR/fuzz.md"
fi
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: findings in ${failed[*]}"; exit 1; }
