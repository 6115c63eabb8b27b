#!/usr/bin/env bash
# scripts/soak.sh: the daemon's soak of issue 16 section 6 (`make soak`).
#
# `vigil daemon` runs the default rules plus one rule with a webhook action (bench/webhook-
# receiver.py, a real HTTP server) for --minutes (30) while bench/openrate opens a file at --rate
# (100000) opens/s, each an open event the rules evaluate (kernel_pushdown: false, else the kernel
# drops these opens, which no rule wants), and a marker file is opened every 100 ms (an alert
# through the webhook each time). Every --interval (30) seconds it samples the daemon's resident
# memory, its CPU time and the sensors' emitted and lost counters.
#
# Floors: resident memory growth under 5% (the first sample after --warmup (60) seconds against
# the last), 0 lost, CPU per event flat (the mean of the last quarter of the intervals within 10%
# of the first quarter's), every alert received by the webhook.
#
# Prints a Markdown section between `<!-- BEGIN soak` and `<!-- END soak -->` on stdout; progress
# goes to stderr; `scripts/bench-section.sh soak FILE` puts it into BENCHMARKS.md. Exits 1 when a
# floor is missed.
#
# Usage (as root): scripts/soak.sh [--minutes N] [--rate N] [--interval S] [--warmup S] [--no-build]
# VIGIL names the vigil binary (default .build/release/vigil, built unless --no-build).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/webhook-config.sh

minutes=30 rate=100000 interval=30 warmup=60 build=1
invocation="scripts/soak.sh${*:+ $*}"
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) minutes=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "soak: run as root (it loads BPF programs)" >&2; exit 2; }
[ "$build" = 1 ] && swift build -c release --product vigil >&2
vigil=${VIGIL:-$PWD/.build/release/vigil}
seconds=$(( minutes * 60 ))

work=$(mktemp -d /tmp/vigil-soak.XXXXXX)
daemon_pid= receiver_pid= load_pid= marker_pid=
cleanup() {
  for pid in $marker_pid $load_pid; do kill "$pid" 2>/dev/null || true; done
  [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -n "$receiver_pid" ] && kill "$receiver_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cc -O2 -o "$work/openrate" bench/openrate.c

port=$(( 20000 + $$ % 20000 ))
python3 bench/webhook-receiver.py "$port" "$work/received.txt" &
receiver_pid=$!
webhook_config "$work" "$port" "kernel_pushdown: false"
cat > "$work/rules.d/soak.yaml" <<RULE
- rule: Soak marker
  desc: scripts/soak.sh
  condition: evt.type in (open, openat, openat2) and fd.name = $work/marker
  output: "marker opened by %proc.name"
  priority: WARNING
  actions: [hook]
RULE

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
counter() { curl -sf --unix-socket "$work/vigil.sock" http://x/v1/status \
  | python3 -c "import json,sys; s=json.load(sys.stdin); print(sum(x['$1'] for x in s['sensors']))"; }

"$vigil" daemon --config "$work/vigil.yaml" 2>>"$work/daemon.log" &
daemon_pid=$!
until curl -sf --unix-socket "$work/vigil.sock" http://x/v1/status >/dev/null 2>&1; do
  kill -0 "$daemon_pid" 2>/dev/null || { echo "soak: the daemon exited:" >&2; cat "$work/daemon.log" >&2; exit 1; }
  sleep 0.05
done
sleep 2
echo "soak: $rate opens/s for $minutes min, a sample every $interval s (daemon pid $daemon_pid)" >&2
: > "$work/load"
"$work/openrate" "$work/load" "$rate" "$seconds" > "$work/openrate.out" &
load_pid=$!
( n=0; while [ -e "$work/vigil.yaml" ]; do cat "$work/marker" 2>/dev/null; echo $((n += 1)) > "$work/markers"; sleep 0.1; done ) &
marker_pid=$!
: > "$work/marker"

# Samples: elapsed s, RSS KiB, CPU s, emitted, lost.
start=$(date +%s)
sample() { echo "$(( $(date +%s) - start )) $(rss_kib "$daemon_pid") $(cpu_seconds "$daemon_pid") $(counter emitted) $(counter lost)"; }
sample > "$work/samples"
while kill -0 "$load_pid" 2>/dev/null; do
  sleep "$interval"
  kill -0 "$daemon_pid" 2>/dev/null || { echo "soak: the daemon died:" >&2; tail -20 "$work/daemon.log" >&2; exit 1; }
  sample >> "$work/samples"
  echo "soak: $(tail -1 "$work/samples")" >&2
done
wait "$load_pid"
kill "$marker_pid"; wait "$marker_pid" 2>/dev/null || true; marker_pid=
markers=$(cat "$work/markers")
sleep 2
sample >> "$work/samples"
read -r opens achieved < "$work/openrate.out"
received=$(wc -l < "$work/received.txt" 2>/dev/null || echo 0)

python3 - "$work/samples" "$warmup" "$markers" "$received" "$opens" "$achieved" "$invocation" "$vigil" <<'PY'
import sys, os, platform, datetime
path, warmup, markers, received, opens, achieved, invocation, vigil = sys.argv[1:]
rows = [list(map(float, l.split())) for l in open(path) if l.strip()]
warmup = float(warmup)
after = [r for r in rows if r[0] >= warmup] or rows[-1:]
rss0, rss1 = after[0][1], rows[-1][1]
growth = 100 * (rss1 - rss0) / rss0
lost = int(rows[-1][4] - rows[0][4])
emitted = int(rows[-1][3] - rows[0][3])
per_event = []  # microseconds of daemon CPU per emitted event, per interval under load
loaded = rows[:-1]  # the last sample is taken after the load ended
for a, b in zip(loaded, loaded[1:]):
    if b[3] > a[3]:
        per_event.append(1e6 * (b[2] - a[2]) / (b[3] - a[3]))
q = max(1, len(per_event) // 4)
first, last = sum(per_event[:q]) / q, sum(per_event[-q:]) / q
drift = 100 * (last - first) / first if first else 0.0
ok = lambda c: "within" if c else "OVER"
floors = [growth < 5, lost == 0, abs(drift) <= 10, int(received) >= int(markers)]
load = open("/proc/loadavg").read().split()[:3]
print(f"<!-- BEGIN soak: generated by scripts/soak.sh (make soak); edits inside are overwritten -->")
print("## Soak (issue 16 section 6)\n")
print(f"`{invocation}` on {os.cpu_count()} CPUs, kernel {platform.release()}, "
      f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}, vigil binary `{vigil}`; load average at the end: {' '.join(load)}.\n")
print("| measure | figure | floor | |\n|---|---|---|---|")
print(f"| opens asked / achieved | {opens} opens, {achieved}/s | 100k/s | |")
print(f"| resident memory after {warmup:.0f} s / at the end | {rss0/1024:.1f} / {rss1/1024:.1f} MiB ({growth:+.1f}%) | growth under 5% | {ok(floors[0])} |")
print(f"| events emitted / lost by the sensors | {emitted} / {lost} | 0 lost | {ok(floors[1])} |")
print(f"| daemon CPU per event, first / last quarter of the intervals | {first:.2f} / {last:.2f} us ({drift:+.1f}%) | flat (within 10%) | {ok(floors[2])} |")
print(f"| alerts sent (marker opens) / received by the webhook | {markers} / {received} | all | {ok(floors[3])} |")
print("\nSamples (elapsed s, RSS MiB, daemon CPU s, emitted, lost): " +
      "; ".join(f"{r[0]:.0f} {r[1]/1024:.1f} {r[2]:.1f} {int(r[3])} {int(r[4])}" for r in rows))
print("<!-- END soak -->")
sys.exit(0 if all(floors) else 1)
PY
