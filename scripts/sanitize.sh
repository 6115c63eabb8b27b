#!/usr/bin/env bash
# make sanitize: builds the unit tests with AddressSanitizer (.build-asan) and ThreadSanitizer
# (.build-tsan) and runs them through the xctest binary with VIGIL_REQUIRE_BPF=1 (FUZZING.md).
# Not part of `make test`: each run takes several times the normal suite.
#
#   scripts/sanitize.sh                  both sanitizers, the whole suite each
#   scripts/sanitize.sh address          only ASan (or: thread)
#   SANITIZE_TESTS="VigilRulesTests.RuleFileTests VigilEventsTests.FieldTests/testX" scripts/sanitize.sh thread
#                                        only those classes / tests (Module.Class[/test], xctest's filter)
#   SANITIZE_TIMEOUT=5400                seconds per run (default 3600)
#
# `swift build --sanitize=X` instruments Swift and C targets alike (the package's C shims and
# the C inside dependencies) and links the sanitizer runtime. Every instrumented process the
# tests start (the vigil binary as a daemon or CLI) inherits the options below and writes its
# reports to .build-SAN/reports/PID-san.PID; the test process's own report goes to the same
# place. Logs: .build-SAN/logs/tests.log. Any report, or a failed test, fails the run.
# Suppressions for findings that are not Vigil's (each one with its evidence) are in sanitize/.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
# Swift's crash handler would take a trap's signal before the sanitizer reports it.
export SWIFT_BACKTRACE=enable=no
export VIGIL_REQUIRE_BPF=1
SANITIZERS=("$@")
[ ${#SANITIZERS[@]} -eq 0 ] && SANITIZERS=(address thread)
TIMEOUT=${SANITIZE_TIMEOUT:-3600}
# xctest takes one argument: Module.Class[/test] names joined by commas.
TESTS=()
[ -n "${SANITIZE_TESTS:-}" ] && TESTS=("$(echo "$SANITIZE_TESTS" | xargs | tr ' ' ',')")

failed=()
for san in "${SANITIZERS[@]}"; do
    case $san in
        address) scratch=.build-asan ;;
        thread) scratch=.build-tsan ;;
        *) echo "unknown sanitizer: $san (address or thread)" >&2; exit 2 ;;
    esac
    echo "== $san: swift build --scratch-path $scratch --build-tests --sanitize=$san"
    start=$SECONDS
    swift build --scratch-path "$scratch" --build-tests --sanitize="$san" || exit 1
    echo "   built in $((SECONDS - start)) s"
    reports="$PWD/$scratch/reports"
    rm -rf "$reports"
    mkdir -p "$reports" "$scratch/logs"
    log="$scratch/logs/tests.log"
    case $san in
        # detect_leaks=0 and sanitize/tsan.supp are compiled into the build
        # (Sources/CLibbpf/sanitizer_defaults.c), so processes started without these variables
        # (the daemon in ImageTests' container) have them too; these add where reports go.
        address)
            export ASAN_OPTIONS="log_path=$reports/asan:abort_on_error=0"
            ;;
        thread)
            export TSAN_OPTIONS="log_path=$reports/tsan:halt_on_error=0:second_deadlock_stack=1"
            ;;
    esac
    echo "== $san: VIGIL_REQUIRE_BPF=1 timeout $TIMEOUT $scratch/.../vigilPackageTests.xctest ${TESTS[*]:-} > $log"
    start=$SECONDS
    timeout "$TIMEOUT" "$scratch/x86_64-unknown-linux-gnu/debug/vigilPackageTests.xctest" "${TESTS[@]}" \
        > "$log" 2>&1 < /dev/null
    rc=$?
    unset ASAN_OPTIONS TSAN_OPTIONS
    echo "   ran in $((SECONDS - start)) s, exit $rc"
    grep -E '^(Test Suite .(All tests|Selected tests). (passed|failed)|	 Executed [0-9]+ tests)' "$log" | tail -2 | sed 's/^/   /'
    grep -E "^Test Case '.*' failed \(" "$log" | sed 's/^/   /' | head -50
    nreports=$(find "$reports" -type f | wc -l)
    if [ "$nreports" -gt 0 ]; then
        echo "   $nreports sanitizer report file(s) in $reports:"
        for f in "$reports"/*; do
            echo "   -- $f: $(grep -m1 -E '^(==[0-9]+==ERROR|WARNING: ThreadSanitizer|SUMMARY)' "$f")"
        done
    fi
    if [ $rc -ne 0 ] || [ "$nreports" -gt 0 ]; then failed+=("$san"); fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "sanitize: failures or reports under: ${failed[*]}" >&2
    exit 1
fi
echo "sanitize: no sanitizer report, every test passed"
