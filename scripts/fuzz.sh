#!/usr/bin/env bash
# make fuzz: builds vigil-fuzz with libFuzzer and AddressSanitizer (-sanitize=fuzzer,address
# -D FUZZING) in .build-fuzz and runs each target for FUZZ_SECONDS (FUZZING.md).
#
#   FUZZ_SECONDS=60        time per target (libFuzzer's -max_total_time)
#   FUZZ_TARGETS="a b"     the targets to run (default: all seven)
#   FUZZ_ARGS="..."        more libFuzzer flags (-jobs=2, -max_len=65536, ...)
#
# Each target starts from the committed seeds (fuzz/corpus/TARGET) and the crash regressions
# (fuzz/regressions/TARGET), copied into .build-fuzz/corpus/TARGET where libFuzzer adds what it
# finds (the committed seeds stay as they are). A crash, trap, leak, timeout or OOM is saved
# under fuzz/crashes/ and fails the run after every target ran. Prints executions, exec/s and
# coverage per target; each target's whole log is .build-fuzz/logs/TARGET.log.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
# Swift's own crash handler would take the trap's signal before libFuzzer and ASan report it.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}
SCRATCH=.build-fuzz
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
ALL_TARGETS="condition yaml toml output decoder http docker containerd"
TARGETS=${FUZZ_TARGETS:-$ALL_TARGETS}

swift build -c release --scratch-path "$SCRATCH" --product vigil-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DFUZZING || exit 1
BIN="$SCRATCH/release/vigil-fuzz"

mkdir -p fuzz/crashes "$SCRATCH/logs"
failed=()
summary=()
for target in $TARGETS; do
    corpus="$SCRATCH/corpus/$target"
    mkdir -p "$corpus"
    for seeds in "fuzz/corpus/$target" "fuzz/regressions/$target"; do
        [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null
    done
    dict=()
    [ -f "fuzz/$target.dict" ] && dict=("-dict=fuzz/$target.dict")
    log="$SCRATCH/logs/$target.log"
    echo "== $target: ${SECONDS_PER_TARGET}s (log $log)"
    # shellcheck disable=SC2086
    VIGIL_FUZZ_TARGET=$target "$BIN" "$corpus" "${dict[@]}" -max_total_time="$SECONDS_PER_TARGET" \
        -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="fuzz/crashes/$target-" \
        ${FUZZ_ARGS:-} > "$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1)
    line=$(printf '%-10s %12s runs %8s exec/s  %-22s %s' "$target" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${corp:-}")
    if [ $rc -ne 0 ]; then
        line="$line  FAILED (exit $rc): $(grep -m1 -E 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|Fatal error|SUMMARY' "$log")"
        failed+=("$target")
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "== vigil-fuzz, ${SECONDS_PER_TARGET}s per target"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "findings in: ${failed[*]} (inputs in fuzz/crashes/; reproduce: VIGIL_FUZZ_TARGET=TARGET $BIN FILE)" >&2
    exit 1
fi
