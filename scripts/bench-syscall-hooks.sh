#!/usr/bin/env bash
# scripts/bench-syscall-hooks.sh: where the per-syscall tracepoints stop paying off against the
# generic sys_enter/sys_exit hook (issue 12 §2; Sensors.perSyscallLimit).
#
# For sets of N syscalls (the first N rows of bpf/syscalls/syscalls.table with an x86_64 number,
# getpid left out, plus whatever fd-table syscalls SyscallCapture adds), `vigil trace --event
# LIST --syscall-hook HOOK` (HOOK: tracepoint = per-syscall, tp_btf = generic) is started on CPU 1,
# and then bench/sysloop.c's getpid loop runs on CPU 0 (getpid is never captured: what a
# syscall nobody asked for pays). Printed per N and hook: the start (seconds from launch to
# "vigil: tracing"), the loop's ns/call (10th percentile of its slices) and its ratio to the
# untraced loop run just before.
# Usage (as root): scripts/bench-syscall-hooks.sh [SIZES...]   (default: 8 40 64 128 256)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:/usr/sbin:/sbin:$PATH
vigil=${VIGIL:-.build/release/vigil}
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(8 40 64 128 256)
log() { echo "bench-syscall-hooks: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "run as root"; exit 1; }
[ -x "$vigil" ] || { log "$vigil missing: swift build -c release --product vigil"; exit 1; }
work=$(mktemp -d /dev/shm/vigil-bench-hooks.XXXXXX)
tracer_pid=""
cleanup() { [ -n "$tracer_pid" ] && kill -INT "$tracer_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cc -O2 -Wall -Wextra -o "$work/vb-sysloop" bench/sysloop.c
: > "$work/target"
iterations=${ITERATIONS:-1000000}
loop() { taskset -c 0 "$work/vb-sysloop" getpid "$work/target" "$iterations" 20 200 | sed -n 's/.*\bp10_ns=\([0-9.]*\).*/\1/p'; }

echo "| syscalls asked | hook | start (s) | getpid ns/call | untraced | ratio |"
echo "|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  list=$(awk '!/^#/ && NF > 3 && $2 ~ /^[0-9]+$/ && $1 != "getpid" { print $1 }' bpf/syscalls/syscalls.table | head -n "$n" | paste -sd,)
  for hook in tracepoint tp_btf; do
    base=$(loop)
    start=$(date +%s.%N)
    taskset -c 1 $vigil trace -o json --event "$list" --syscall-hook $hook --output /dev/null 2> "$work/err" &
    tracer_pid=$!
    for _ in $(seq 3000); do grep -qs "^vigil: tracing" "$work/err" && break; sleep 0.05; done
    ready=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    ns=$(loop)
    kill -INT $tracer_pid; wait $tracer_pid || true; tracer_pid=""
    log "$n $hook: $(grep -E 'syscalls/' "$work/err" | head -1)"
    echo "| $n | $hook | $ready | $ns | $base | $(awk -v a="$ns" -v b="$base" 'BEGIN { printf "%.2fx", a / b }') |"
  done
done
