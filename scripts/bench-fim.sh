#!/usr/bin/env bash
# scripts/bench-fim.sh: file integrity monitoring's floors (issue 14 section 5), on the release
# build of the daemon with `fim:` in its configuration, this host's kernel and its hook variant.
#
#   write loop, 10,000 inodes watched   `dd if=/dev/zero of=UNWATCHED bs=1 count=N` (one read and
#                                       one 1-byte write per iteration) pinned to CPU 1, timed with
#                                       the daemon running without `fim:` and with `fim:` watching
#                                       a directory of 10,000 files (10,001 inodes in the kernel),
#                                       rounds alternating; the ratio of the minimums (and of the
#                                       medians). Floor: 1.05x. Without any daemon, for reference.
#   change -> alert                     a rule on fim events of one watched file with a webhook
#                                       action; bench/webhook-receiver.py records, per POST, its
#                                       receive time minus the event's kernel time (evt.rawtime:
#                                       the write the sensor reported); --alerts appends of one
#                                       line, 100 ms apart (each its own alert: the daemon re-reads
#                                       a watch once it was quiet 20 ms). p50, p99. Floor: p99 50 ms.
#   memory, 100,000 watched files       VmRSS of the daemon watching a directory of 100,000 files
#                                       (after its start-up scan) against the daemon without
#                                       `fim:`, the fim maps' memory in the kernel (bpftool's
#                                       bytes_memlock of the fim_* maps among the daemon's fds'
#                                       map_ids) and the size of
#                                       the saved baseline. Written down (no floor).
#
# Prints a Markdown section between `<!-- BEGIN fim` and `<!-- END fim -->` on stdout; progress
# goes to stderr. `scripts/bench-section.sh fim FILE` puts it into BENCHMARKS.md.
#
# Usage (as root): scripts/bench-fim.sh [--rounds N] [--bytes N] [--alerts N] [--no-build]
# VIGIL names the vigil binary (default .build/release/vigil).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/webhook-config.sh
export PATH=/opt/swift/usr/bin:/usr/sbin:/sbin:$PATH
invocation="scripts/bench-fim.sh${*:+ $*}"

rounds=5 bytes=1000000 alerts=200 build=1
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --bytes) bytes=$2; shift 2 ;;
    --alerts) alerts=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

[ "$build" = 1 ] && swift build -c release --product vigil >&2
bench_daemon_setup fim

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
verdict() { awk -v v="$1" -v f="$2" 'BEGIN { print (v <= f ? "within" : "OVER") }'; }
# config FIM_YAML: the daemon's configuration (webhook action `hook`, state under WORK/state) with
# FIM_YAML appended (empty: no fim).
config() {
  webhook_config "$work" "$port" "state_dir: $work/state"
  [ -n "$1" ] && printf '%s\n' "$1" >> "$work/vigil.yaml"
  return 0
}
start_daemon() {
  : > "$work/daemon.log"
  "$vigil" daemon --config "$work/vigil.yaml" 2>>"$work/daemon.log" >/dev/null &
  daemon_pid=$!
  until curl -sf --unix-socket "$work/vigil.sock" http://x/v1/status >/dev/null 2>&1; do
    kill -0 "$daemon_pid" 2>/dev/null || { echo "the daemon exited:" >&2; cat "$work/daemon.log" >&2; exit 1; }
    sleep 0.05
  done
}
stop_daemon() {
  kill -TERM "$daemon_pid"
  wait "$daemon_pid" || { echo "the daemon exited with $?" >&2; exit 1; }
  daemon_pid=
}
make_files() { python3 -c "
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
for i in range(n):
    with open(f'{d}/f{i}', 'w') as f: f.write(f'{i}\n')
" "$1" "$2"; }
dd_ms() {
  local t0 t1
  t0=$(date +%s%N)
  taskset -c 1 dd if=/dev/zero of="$work/unwatched" bs=1 count="$bytes" conv=notrunc status=none
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}
stats() { sort -n | awk '{v[NR]=$1} END {printf "%d %d %d\n", v[1], v[int((NR+1)/2)], v[NR]}'; }

# --- write loop to an unwatched file, 10,000 inodes watched -----------------------------------
echo "write loop: $rounds rounds of dd bs=1 count=$bytes, no daemon / daemon / daemon + fim (10,000 files)" >&2
make_files "$work/watched" 10000
: > "$work/none.txt"; : > "$work/plain.txt"; : > "$work/fim.txt"
for r in $(seq "$rounds"); do
  dd_ms >> "$work/none.txt"
  config ""; start_daemon; sleep 1; dd_ms >> "$work/plain.txt"; stop_daemon
  config "fim: {directories: [$work/watched]}"; start_daemon
  until grep -q "inodes in the kernel" "$work/daemon.log"; do sleep 0.05; done
  sleep 1; dd_ms >> "$work/fim.txt"
  inodes=$(grep -o '[0-9]* inodes in the kernel' "$work/daemon.log" | head -1 | cut -d' ' -f1)
  variant=$(curl -sf --unix-socket "$work/vigil.sock" http://x/v1/status | python3 -c "import json,sys; s=json.load(sys.stdin); print(next(x['hooks'][0]['active'] for x in s['sensors'] if x['name']=='fim'))")
  stop_daemon
  echo "  round $r: none $(tail -1 "$work/none.txt") ms, daemon $(tail -1 "$work/plain.txt") ms, daemon + fim $(tail -1 "$work/fim.txt") ms" >&2
done
read -r none_min none_med none_max < <(stats < "$work/none.txt")
read -r plain_min plain_med plain_max < <(stats < "$work/plain.txt")
read -r fim_min fim_med fim_max < <(stats < "$work/fim.txt")
ratio_min=$(awk -v a="$fim_min" -v b="$plain_min" 'BEGIN { printf "%.2f", a / b }')
ratio_med=$(awk -v a="$fim_med" -v b="$plain_med" 'BEGIN { printf "%.2f", a / b }')
per_write=$(awk -v a="$fim_min" -v b="$plain_min" -v n="$bytes" 'BEGIN { printf "%.0f", (a - b) * 1e6 / n }')

# --- change to a watched file -> alert ---------------------------------------------------------
echo "change -> alert: $alerts appends, 100 ms apart" >&2
python3 bench/webhook-receiver.py "$port" "$work/latency.txt" &
receiver_pid=$!
echo "root:x:0:0:root:/root:/bin/sh" > "$work/latency-file"
config "fim: {paths: [$work/latency-file]}"
# Only changes made while the daemon runs: the file is new since the write-loop phase's baseline
# in the same state dir, so the daemon reports it at start too (fim.while_down), which is no
# change-to-alert latency (it made 201 alerts of 200 before).
cat > "$work/rules.d/latency.yaml" <<RULE
- rule: FIM latency marker
  desc: scripts/bench-fim.sh
  condition: evt.type = fim_change and fim.path = $work/latency-file and fim.while_down = false
  output: "changed by %proc.name"
  priority: WARNING
  actions: [hook]
RULE
start_daemon
until grep -q "inodes in the kernel" "$work/daemon.log"; do sleep 0.05; done
sleep 1
python3 -c "
import time
for i in range($alerts):
    with open('$work/latency-file', 'a') as f: f.write(f'{i}\n')
    time.sleep(0.1)
"
for _ in $(seq 100); do [ "$(wc -l < "$work/latency.txt" 2>/dev/null || echo 0)" -ge "$alerts" ] && break; sleep 0.1; done
stop_daemon
rm -f "$work/rules.d/latency.yaml"
received=$(wc -l < "$work/latency.txt" 2>/dev/null || echo 0)
if [ "$received" -gt 0 ]; then
  read -r p50 p99 pmax < <(sort -n "$work/latency.txt" | awk '{v[NR]=$1} END {i50=int(NR*0.5); i99=int(NR*0.99); if (i50<1) i50=1; if (i99<1) i99=1; printf "%.1f %.1f %.1f\n", v[i50]/1e6, v[i99]/1e6, v[NR]/1e6}')
  latency="$p50 / $p99 ms (max $pmax; $received of $alerts alerts received)"
  latency_verdict=$(verdict "$p99" 50)
else
  latency="no alert received"; latency_verdict=OVER
fi

# --- memory with 100,000 watched files ---------------------------------------------------------
echo "memory: 100,000 files" >&2
make_files "$work/many" 100000
config ""; start_daemon; sleep 3; rss_plain=$(rss_kib "$daemon_pid"); stop_daemon
config "fim: {directories: [$work/many]}"
t0=$(date +%s%N); start_daemon
until grep -q "inodes in the kernel" "$work/daemon.log"; do sleep 0.05; done
t1=$(date +%s%N)
sleep 3
rss_fim=$(rss_kib "$daemon_pid")
many_inodes=$(grep -o '[0-9]* inodes in the kernel' "$work/daemon.log" | head -1 | cut -d' ' -f1)
# the daemon's maps: the map_id of each of its fds (fdinfo), their fim_* ones' bytes_memlock
kernel_kib=$(bpftool map show -j | python3 -c "
import glob, json, sys
ids = set()
for info in glob.glob('/proc/$daemon_pid/fdinfo/*'):
    try:
        for line in open(info):
            if line.startswith('map_id:'): ids.add(int(line.split()[1]))
    except OSError: pass
print(sum(m.get('bytes_memlock', 0) for m in json.load(sys.stdin) if m['id'] in ids and m.get('name', '').startswith('fim_')) // 1024)")
stop_daemon
baseline_kib=$(( $(stat -c %s "$work/state/fim/baseline.json") / 1024 ))
start_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
rss_delta=$(awk -v a="$rss_fim" -v b="$rss_plain" 'BEGIN { printf "%.1f", (a - b) / 1024 }')

cat <<SECTION
<!-- BEGIN fim (generated by scripts/bench-fim.sh: do not edit by hand) -->
## File integrity monitoring (issue 14 section 5: \`scripts/bench-fim.sh\`)

\`$invocation\` on $(date -u +%Y-%m-%d), $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end;
the fim sensor's hook variant: $variant; the daemon: \`$vigil\` (release).

| measure | result | floor | verdict |
| --- | --- | --- | --- |
| \`dd bs=1 count=$bytes\` to an unwatched file, CPU 1, $inodes inodes watched: with fim / without, min (median) of $rounds rounds | ${ratio_min}x (${ratio_med}x); ~$per_write ns per unwatched write | 1.05x | $(verdict "$ratio_min" 1.05) |
| the same loop, ms min / median / max: no daemon; daemon; daemon + fim | $none_min / $none_med / $none_max; $plain_min / $plain_med / $plain_max; $fim_min / $fim_med / $fim_max | | |
| a change to a watched file (an append) until its alert at a webhook, p50 / p99 | $latency | p99 50 ms | $latency_verdict |
| 100,000 watched files: daemon VmRSS with fim / without | $(awk -v k="$rss_fim" 'BEGIN{printf "%.1f", k/1024}') / $(awk -v k="$rss_plain" 'BEGIN{printf "%.1f", k/1024}') MiB (+$rss_delta MiB) | written down | |
| 100,000 watched files: the fim maps in the kernel (bytes_memlock), the saved baseline, start until watched and scanned | $kernel_kib KiB ($many_inodes inodes); $baseline_kib KiB; $start_s s | written down | |
<!-- END fim -->
SECTION
