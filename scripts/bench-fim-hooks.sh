#!/usr/bin/env bash
# scripts/bench-fim-hooks.sh: what one unwatched write costs in the fim sensor's write program
# (docs/fim.md "Measured by hand"), kernel side only: `dd if=/dev/zero bs=1 count=N` to a file
# no map holds, pinned to CPU 1, timed by dd's own CPU time (perf stat task-clock: other load on
# the machine counts little), min of R runs, with one program attached (bench/fim-hooks.c):
#   fchown   an empty program on sys_exit_fchown (the syscall tracepoint path on, none on write)
#   empty    an empty program on sys_exit_write
#   probe    fim.bpf.o's write_exit with vigil_rdonly_cast false (the probe-read walk, < 6.2)
#   typed    fim.bpf.o's write_exit with vigil_rdonly_cast true (plain loads, 6.2 and later)
# Prints ms per configuration and ns per write over `fchown`.
# Usage (as root): scripts/bench-fim-hooks.sh [N] [R] [ROUNDS]   (default 300000 9 3)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:/usr/sbin:$PATH
n=${1:-300000} r=${2:-9} rounds=${3:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O1 -o "$work/fimhooks" bench/fim-hooks.c -lbpf
clang -g -O2 -target bpf -D__TARGET_ARCH_x86 -Ibpf/include/x86_64 -c bench/fim-null.bpf.c -o "$work/null.bpf.o"
fim=Sources/VigilBPFObjects/objects/x86_64/fim.bpf.o
run() { # OBJECT PROGRAM FLAG: the min task-clock ms of r dd runs
  "$work/fimhooks" "$1" "$2" "$3" -- sh -c '
    best=999999
    for i in $(seq '"$r"'); do
      ms=$(perf stat -x, -e task-clock taskset -c 1 dd if=/dev/zero of='"$work"'/unwatched bs=1 count='"$n"' status=none 2>&1 >/dev/null | awk -F, "/task-clock/ {printf \"%d\", \$1}")
      [ "$ms" -lt "$best" ] && best=$ms
    done
    echo $best'
}
echo "dd bs=1 count=$n, CPU 1, task-clock ms (min of $r); $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$rounds"); do
  base=$(run "$work/null.bpf.o" null_fchown 0)
  empty=$(run "$work/null.bpf.o" null_write 0)
  probe=$(run "$fim" write_exit 0)
  typed=$(run "$fim" write_exit 1)
  ns() { awk -v a="$1" -v b="$base" -v n="$n" 'BEGIN { printf "%+.0f", (a - b) * 1e6 / n }'; }
  echo "round $round: fchown $base ms; empty $empty ms ($(ns "$empty") ns/write); probe $probe ms ($(ns "$probe") ns/write); typed $typed ms ($(ns "$typed") ns/write)"
done
