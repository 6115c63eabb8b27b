#!/usr/bin/env bash
# scripts/bench-seccomp.sh: what `vigil seccomp record` costs the recorded container and the others
# (issue 15 section 5).
#
# Two containers of one small image (bench/sysloop.c built static, and busybox for `sleep`), both
# pinned to CPU 0: `recorded` and `other`. The loop is `sysloop getpid` (one getpid syscall per
# step, the cheapest syscall, so the largest relative cost) or, with `--loop mixed`, `sysloop
# mixed` (openat, fstat, read, write to /dev/null, close per step: what a server's syscalls look
# like), run with `docker exec` in a container; it times itself (bench/loop.h) and its figure is
# the 10th percentile of its slices.
#
# Each round, for both containers in turn: the loop without a recorder; then
# `vigil seccomp record --container recorded` (pinned to CPU 1, .build/release/vigil) is started
# and, once its sensor is attached, the loop runs in `recorded` and in `other`; the recorder is
# stopped with SIGINT and the loop runs again without it. A recorded run's ratio is its ns per
# step over the mean of the same container's runs before and after it; the table shows medians
# over the rounds. Each round's profile must allow the loop's syscall (getpid, or openat: the timed loop was recorded) and the
# recording of `recorded` must not hold anything of `other` (it cannot tell: the check is only
# that recording ran). Recording is a per-cgroup bitmap in the kernel: every syscall on the host
# pays one cgroup-id read and one hash lookup while a recorder is attached (bpf/seccomp.bpf.c).
#
# Prints a Markdown section between `<!-- BEGIN seccomp` and `<!-- END seccomp -->` on stdout;
# progress goes to stderr. `scripts/bench-section.sh seccomp FILE` puts it into BENCHMARKS.md.
#
# Usage (as root, with a Docker Engine; about 2 minutes with the defaults):
#   scripts/bench-seccomp.sh [--rounds N] [--iterations N] [--loop getpid|mixed] [--no-build] [--vigil PATH]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/median.sh
export PATH=/opt/swift/usr/bin:/usr/sbin:/sbin:$PATH
invocation="scripts/bench-seccomp.sh${*:+ $*}"

rounds=7
iterations=""        # timed steps per run (after a warm-up): 2000000 getpid, 200000 mixed
mode=getpid          # the loop: getpid or mixed
slices=20 warm=200   # bench/loop.h: timed slices, warm-up milliseconds
floor=1.05           # the recorded container's allowed slowdown (issue 15 section 5)
loop_cpu=0 recorder_cpu=1
build=1
vigil=.build/release/vigil

while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --loop) mode=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --vigil) vigil=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
case $mode in
  getpid) iterations=${iterations:-2000000} marker=getpid ;;
  mixed) iterations=${iterations:-200000} marker=openat ;;
  *) echo "unknown --loop $mode: use getpid or mixed" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "bench-seccomp: run as root (loads BPF programs)" >&2; exit 1; }
log() { echo "bench-seccomp: $*" >&2; }
if [ $build = 1 ]; then swift build -c release --product vigil >&2; fi
[ -x "$vigil" ] || { echo "bench-seccomp: no $vigil (build it, or drop --no-build)" >&2; exit 1; }
scripts/docker-engine.sh >&2

work=$(mktemp -d /tmp/vigil-bench-seccomp.XXXXXXXX)
tag=$(basename "$work" | tr 'A-Z' 'a-z' | tr -cd 'a-z0-9')
image=vigil-bench-sysloop:$tag recorded=vigil-bench-rec-$tag other=vigil-bench-other-$tag
recorder_pid=""
cleanup() {
  [ -n "$recorder_pid" ] && kill -INT "$recorder_pid" 2>/dev/null && wait "$recorder_pid" 2>/dev/null
  docker rm -f "$recorded" "$other" >/dev/null 2>&1 || true
  docker image rm "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/rootfs/bin" "$work/rootfs/tmp" "$work/rootfs/dev" "$work/rootfs/proc" "$work/rootfs/sys" "$work/rootfs/etc"
cc -O2 -static -Wall -o "$work/rootfs/sysloop" bench/sysloop.c
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
ln -s busybox "$work/rootfs/bin/sleep"
printf '%064d' 0 > "$work/rootfs/tmp/file"
tar -C "$work/rootfs" -c . | docker import - "$image" >/dev/null
# Starts both containers, or whichever is gone (the engine is shared: another user's cleanup
# may remove them; each restart is logged).
ensure_containers() {
  for c in "$recorded" "$other"; do
    [ "$(docker inspect -f '{{.State.Running}}' "$c" 2>/dev/null)" = true ] && continue
    [ -n "${started:-}" ] && log "container $c was gone: started again"
    docker rm -f "$c" >/dev/null 2>&1 || true
    docker run -d --rm --network none --cpuset-cpus $loop_cpu --name "$c" "$image" /bin/sleep 100000 >/dev/null
  done
  started=1
}
ensure_containers

# One timed run of the loop in container $1: prints its ns per step.
loop() {
  local line
  line=$(docker exec "$1" /sysloop "$mode" /tmp/file "$iterations" "$slices" "$warm")
  sed -n 's/.*p10_ns=\([0-9.]*\).*/\1/p' <<< "$line"
}

# Starts the recorder of `recorded` and waits until its sensor is attached (its log says so).
start_recorder() {
  : > "$work/recorder.err"
  taskset -c $recorder_cpu "$vigil" seccomp record --container "$recorded" --no-store -o "$work/profile-$1.json" \
    > /dev/null 2> "$work/recorder.err" &
  recorder_pid=$!
  for _ in $(seq 600); do
    grep -q "recording container" "$work/recorder.err" && return 0
    kill -0 $recorder_pid 2>/dev/null || break
    sleep 0.05
  done
  log "the recorder did not attach: $(cat "$work/recorder.err")"
  exit 1
}
stop_recorder() {
  kill -INT $recorder_pid
  wait $recorder_pid || { log "the recorder failed: $(cat "$work/recorder.err")"; exit 1; }
  recorder_pid=""
  grep -q "\"$marker\"" "$work/profile-$1.json" || { log "round $1: the profile does not allow $marker: the loop was not recorded"; exit 1; }
}

: > "$work/runs.tsv"
for r in $(seq "$rounds"); do
  ensure_containers
  rb=$(loop "$recorded"); ob=$(loop "$other")
  start_recorder "$r"
  ron=$(loop "$recorded"); oon=$(loop "$other")
  stop_recorder "$r"
  ra=$(loop "$recorded"); oa=$(loop "$other")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$rb" "$ron" "$ra" "$ob" "$oon" "$oa" >> "$work/runs.tsv"
  log "round $r/$rounds: recorded $rb -> $ron -> $ra ns, other $ob -> $oon -> $oa ns"
done

col() { awk -F'\t' -v c="$1" '{ print $c }' "$work/runs.tsv" | median; }
ratio() { awk -F'\t' -v on="$1" -v b="$2" -v a="$3" '{ printf "%.4f\n", $on / (($b + $a) / 2) }' "$work/runs.tsv" | median; }
rec_ratio=$(ratio 3 2 4) other_ratio=$(ratio 6 5 7)
rec_min=$(awk -F'\t' '{ printf "%.4f\n", $3 / (($2 + $4) / 2) }' "$work/runs.tsv" | sort -g | head -1)
rec_max=$(awk -F'\t' '{ printf "%.4f\n", $3 / (($2 + $4) / 2) }' "$work/runs.tsv" | sort -g | tail -1)
oth_min=$(awk -F'\t' '{ printf "%.4f\n", $6 / (($5 + $7) / 2) }' "$work/runs.tsv" | sort -g | head -1)
oth_max=$(awk -F'\t' '{ printf "%.4f\n", $6 / (($5 + $7) / 2) }' "$work/runs.tsv" | sort -g | tail -1)
met=$(awk -v r="$rec_ratio" -v f="$floor" 'BEGIN { print (r <= f) ? "met" : "NOT met" }')

cat <<MD
<!-- BEGIN seccomp: generated by scripts/bench-seccomp.sh (make bench); edits inside are overwritten -->
## What recording a seccomp profile costs (\`scripts/bench-seccomp.sh\`, issue 15 section 5)

\`$invocation\`, $(date -u +%Y-%m-%d), $(uname -r), $(nproc) CPUs; vigil $(git rev-parse --short HEAD 2>/dev/null || echo '?') (\`$vigil\`).
A $mode loop (\`bench/sysloop.c $mode\`, static) run with \`docker exec\` in two containers pinned to
CPU $loop_cpu, $iterations timed steps per run (the 10th percentile of $slices slices), $rounds round(s);
\`vigil seccomp record --container\` records one of them (on CPU $recorder_cpu). Ratio: a run while
recording over the mean of the same container's runs just before and after; medians over rounds
(min-max of the rounds in brackets). Every round's profile allows $marker: the timed loop was recorded.

| container | ns per step, not recording | ns per step, recording | ratio |
|---|---:|---:|---:|
| recorded (\`record --container\`) | $(col 2) / $(col 4) | $(col 3) | ${rec_ratio}x [$rec_min-$rec_max] |
| another container | $(col 5) / $(col 7) | $(col 6) | ${other_ratio}x [$oth_min-$oth_max] |

### Verdict
- The recorded container: ${rec_ratio}x against a floor of at most ${floor}x: **$met**.
- Another container while recording: ${other_ratio}x (the sys_enter hook runs for every task on the
  host: one cgroup-id read and a hash lookup that misses).
<!-- END seccomp -->
MD
