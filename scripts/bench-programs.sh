#!/usr/bin/env bash
# scripts/bench-programs.sh: what each of the daemon's BPF programs costs per run, from the
# kernel's own accounting (sysctl kernel.bpf_stats_enabled=1: run_time_ns and run_cnt per
# program), over a `dd bs=1` write loop to a file (a read and a write per byte) with the
# daemon's embedded default rules. The time is the program's own, without the tracepoint's
# dispatch around it; every task on the host adds runs, so run it on a quiet machine.
#
# With --capture, instead: `vigil trace -o json --comm vb-sysloop --event getpid` (every getpid of
# bench/sysloop.c captured, JSON to /dev/null) over N getpid calls pinned to CPU 0: what an emitted
# syscall event costs in the kernel (the entry and exit programs), and the loop's ns per call.
#
# Usage (as root): scripts/bench-programs.sh [--vigil PATH] [--count N] [--config FILE] [--capture]
#   --vigil PATH   the vigil binary (.build/release/vigil)
#   --count N      bytes dd writes one at a time, or getpid calls with --capture (500000)
#   --config FILE  more daemon configuration appended (e.g. a fim: block)
#   --capture      the getpid capture above instead of the daemon's dd loop
set -euo pipefail
cd "$(dirname "$0")/.."
vigil=.build/release/vigil count=500000 extra="" capture=false
while [ $# -gt 0 ]; do
  case $1 in
    --vigil) vigil=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --config) extra=$2; shift 2 ;;
    --capture) capture=true; shift ;;
    *) echo "bench-programs: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench-programs: run as root" >&2; exit 1; }
[ -x "$vigil" ] || { echo "bench-programs: no $vigil (make release)" >&2; exit 1; }
command -v bpftool >/dev/null || { echo "bench-programs: bpftool missing (scripts/setup.sh installs it)" >&2; exit 1; }
work=$(mktemp -d /tmp/vigil-bench-programs.XXXXXXXX)
previous=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
if $capture; then
  cc -O2 -o "$work/vb-sysloop" bench/sysloop.c
  taskset -c 1 "$vigil" trace -o json --comm vb-sysloop --event getpid --output /dev/null > /dev/null 2> "$work/tracer.log" &
else
  printf 'state_dir: %s/state\nsocket: %s/api.sock\n' "$work" "$work" > "$work/vigil.yaml"
  [ -n "$extra" ] && cat "$extra" >> "$work/vigil.yaml"
  "$vigil" daemon --config "$work/vigil.yaml" > "$work/daemon.out" 2> "$work/tracer.log" &
fi
tracer=$!
cleanup() { kill -INT "$tracer" 2>/dev/null; wait "$tracer" 2>/dev/null; sysctl -qw kernel.bpf_stats_enabled="$previous"; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 100); do { [ -S "$work/api.sock" ] || grep -qs "^vigil: tracing" "$work/tracer.log"; } && break; sleep 0.2; done
[ -S "$work/api.sock" ] || grep -qs "^vigil: tracing" "$work/tracer.log" || { echo "bench-programs: vigil did not start:" >&2; cat "$work/tracer.log" >&2; exit 1; }
sleep 2
# id name run_time_ns run_cnt of every program with statistics
snapshot() {
  bpftool prog show | sed -nE 's/^([0-9]+): [a-z_]+ +name ([^ ]+) .*run_time_ns ([0-9]+) run_cnt ([0-9]+).*/\1 \2 \3 \4/p' | sort
}
snapshot > "$work/before"
if $capture; then
  result=$(taskset -c 0 "$work/vb-sysloop" getpid "$work/target" "$count" 20 200)
  snapshot > "$work/after"
  echo "bench-programs: $vigil trace, $count getpid calls on CPU 0, every one captured: $(sed -n 's/.*\bp10_ns=\([0-9]*\).*/\1/p' <<< "$result") ns per call (10th percentile of 20 slices); $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)"
else
  TIMEFORMAT=%R
  seconds=$( { time taskset -c 1 dd if=/dev/zero of="$work/file" bs=1 count="$count" 2>/dev/null; } 2>&1 )
  snapshot > "$work/after"
  echo "bench-programs: $vigil, dd bs=1 count=$count on CPU 1: ${seconds} s; $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)"
fi
printf '%-20s %12s %10s\n' program runs ns/run
join "$work/before" "$work/after" | awk '{ runs = $7 - $4; ns = $6 - $3; if (runs > 1000) printf "%-20s %12d %10.1f\n", $2, runs, ns / runs }'
