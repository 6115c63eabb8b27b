#!/usr/bin/env bash
# scripts/bench-alert-cost.sh: the CPU time `vigil trace --alerts -o json` spends per alert, with
# a ring big enough that nothing is lost: the DNS loop of bench/sysloop.c (two DNS messages per
# step) under bench/dns-log.yaml (one alert per DNS message, every field of the event in
# output_fields), written to a file on tmpfs. The tracer's user+system CPU seconds of a run of
# STEPS steps, minus those of a run of 4 steps (its start and stop), over the alerts.
# Usage (as root): scripts/bench-alert-cost.sh [--steps N] [--runs K] VIGIL...
# A VIGIL may carry trace options after the binary, as one argument: "BIN --output-fields output".
# Prints one line per VIGIL: the median over runs of microseconds per alert, and each run's.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/median.sh
steps=50000 runs=3
while [ $# -gt 0 ]; do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--steps N] [--runs K] VIGIL..." >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench-alert-cost: run as root" >&2; exit 1; }
work=$(mktemp -d /dev/shm/vigil-bench-alerts.XXXXXX)
trap 'rm -rf "$work"' EXIT
cc -O2 -Wall -Wextra -o "$work/vb-sysloop" bench/sysloop.c

# cpu VIGIL STEPS: prints "cpu_seconds alerts lost" of one traced run
cpu() {
  local vigil=$1 n=$2 out=$work/out err=$work/err pid made
  local -a options
  read -r -a options <<< "$vigil"   # the binary, then any trace options given with it
  rm -f "$out" "$err"
  /usr/bin/time -f "%U %S" -o "$work/time" taskset -c 1 "${options[0]}" trace --ring-mib 256 --alerts --no-default-rules \
    --rules bench/dns-log.yaml -o json --output "$out" "${options[@]:1}" 2> "$err" &
  pid=$!
  for _ in $(seq 600); do grep -qs "^vigil: tracing" "$err" && break; sleep 0.1; done
  made=$(taskset -c 0 "$work/vb-sysloop" dns "$work/x" "$n" 4 0 | sed -n 's/.*steps=\([0-9]*\).*/\1/p')
  for _ in $(seq 1200); do [ "$(wc -l < "$out")" -ge $((2 * made)) ] && break; sleep 0.1; done
  pkill -INT -P "$pid" 2>/dev/null || kill -INT "$pid"
  wait "$pid" || true
  echo "$(awk '{ print $1 + $2 }' "$work/time") $(wc -l < "$out") $(sed -n 's/.* \([0-9]*\) lost.*/\1/p' "$err" | tail -1)"
}

for vigil in "$@"; do
  per=()
  for ((r = 1; r <= runs; r++)); do
    read -r base _ _ <<< "$(cpu "$vigil" 4)"
    read -r total alerts lost <<< "$(cpu "$vigil" "$steps")"
    per+=("$(awk -v t="$total" -v b="$base" -v a="$alerts" 'BEGIN { printf "%.1f", (t - b) * 1e6 / a }')")
    echo "bench-alert-cost: $vigil run $r: $alerts alerts, ${total}s CPU (start/stop ${base}s), lost ${lost:-0}" >&2
  done
  median=$(median "${per[@]}")
  echo "$vigil: $median us per alert (runs: ${per[*]})"
done
