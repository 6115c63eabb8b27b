#!/usr/bin/env bash
# scripts/bench-kernels.sh: what the file sensor's open hook costs an open()+close() loop on
# Debian's 6.1 and 6.12 kernels, where it runs as fexit on do_sys_openat2 (BPF trampolines), next
# to its syscall-exit-tracepoint variant (the one hosts without trampolines run) in the same guest.
#
# Each kernel boots under qemu (scripts/run-in-kernel.sh: the host's / read-only with a tmpfs
# overlay, so the binaries built here run as they are) and, inside one guest, runs interleaved
# rounds of bench/openclose.c pinned to CPU 0 with, pinned to CPU 1:
#   none              no tracer
#   fexit-alerts      vigil trace --alerts --file-hook fexit: the default rules, path pushdown on
#                     (no default rule matches the loop's opens: each is dropped in the kernel)
#   fexit-open        vigil trace --event open --file-hook fexit: every open delivered (JSON to a
#                     file on tmpfs)
#   tracepoint-alerts / tracepoint-open: the same with --file-hook tracepoint
# Per round the tracers run in rotated order, each between two runs without a tracer; a run's
# ratio is its ns/iteration over the median of that round's runs without a tracer, a config's
# slowdown the median ratio over the rounds (as in scripts/bench-sensors.sh). vigil is started
# fresh per run and the loop starts once vigil has logged its hooks (it does so after attaching).
#
# qemu runs in software emulation (TCG) on these machines: absolute times mean nothing (an
# iteration takes tens of microseconds) and BPF runs JITed but emulated, like everything else.
# Only the ratios measured side by side in one guest are an indication, and the noise is larger
# than on the host.
#
# Prints a Markdown section between `<!-- BEGIN kernels` and `<!-- END kernels -->` on stdout;
# progress goes to stderr. `scripts/bench-section.sh kernels FILE` puts it into BENCHMARKS.md.
#
# --syscalls (issue 12 §6, first bullet): what capturing only openat costs a getpid() loop, whose
# syscall is not captured (bench/sysloop.c getpid), with the syscalls sensor on its per-syscall
# variants, measured the same way (section `getpid-kernels`):
#   none              no tracer
#   default-openat    vigil trace --event openat: the variant the chain chooses (kprobe.multi on
#                     6.12, kprobe on 6.1: kprobes on the syscalls' own functions)
#   kprobe-openat     the same with --syscall-hook kprobe (a kprobe and a kretprobe per syscall)
#   tracepoint-openat the same with --syscall-hook tracepoint (the per-syscall tracepoints, which
#                     send every syscall of the host through the kernel's slow entry path)
#
# --seccomp (issue 15 §1/§5): what `vigil seccomp record` costs, where its syscall-entry hook is
# fentry on x64_sys_call (both kernels), next to its sys_enter tracepoint variant (the one hosts
# without trampolines run), with bench/sysloop.c mixed (openat, fstat, read, write, close per
# step; `--loop getpid` for the getpid loop), measured the same way (section `seccomp-kernels`,
# `seccomp-getpid-kernels` with --loop getpid):
#   none               no recorder
#   fentry-recorded    the loop IS the recorded command: `vigil seccomp record --enter-hook fentry
#                      -o FILE -- taskset -c 0 sysloop mixed ...` (recorded from its exec; its
#                      profile must allow openat, fstat, read, write and close)
#   fentry-other       `vigil seccomp record --enter-hook fentry -- sleep 3600` attached while the
#                      loop runs outside the recorded cgroup (what every other task pays)
#   sys_enter-recorded / sys_enter-other: the same with --enter-hook sys_enter
#
# Usage (as root; about 10 minutes with the defaults):
#   scripts/bench-kernels.sh [--syscalls | --seccomp [--loop mixed|getpid]] [--rounds N] [--iterations N]
#                            [--kernels 'GLOB,GLOB'] [--no-build] [--vigil PATH (default .build/release/vigil)]
#   (--guest ROUNDS ITERATIONS MODE VIGIL [LOOP] is the part that runs inside the guest)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/median.sh
export PATH=/opt/swift/usr/bin:/usr/sbin:/sbin:$PATH
invocation="scripts/bench-kernels.sh${*:+ $*}"
vigil=.build/release/vigil
bin=.build/bench-kernels          # the loops, built here (the guest sees them read-only)
mode=open
configs_of_open=(fexit-alerts fexit-open tracepoint-alerts tracepoint-open)
configs_of_syscalls=(default-openat kprobe-openat tracepoint-openat)
configs_of_seccomp=(fentry-recorded fentry-other sys_enter-recorded sys_enter-other)
configs=("${configs_of_open[@]}")
rules_floor=1.10
seccomp_floor=1.05   # issue 15 §5: the recorded workload at most 1.05x, the others unchanged
seccomp_loop=mixed

# --- inside the guest: prints "bench-kernels-run<TAB>CONFIG<TAB>ROUND<TAB>NS<TAB>SUMMARY" lines ---
if [ "${1:-}" = --guest ]; then
  rounds=$2 iterations=$3 mode=${4:-open} vigil=${5:-$vigil} seccomp_loop=${6:-mixed}
  [ $mode = syscalls ] && configs=("${configs_of_syscalls[@]}")
  [ $mode = seccomp ] && configs=("${configs_of_seccomp[@]}")
  work=$(mktemp -d /tmp/vigil-bench-kernels.XXXXXX)
  : > "$work/open-timed"
  chrt -i 0 taskset -c 0 $bin/vb-idle-spin & spin=$!
  trap 'kill $spin 2>/dev/null' EXIT
  if [ $mode = syscalls ]; then
    loop() { taskset -c 0 $bin/vb-sysloop getpid "$work/open-timed" "$iterations" 40 200 | sed -n 's/.*min_ns=\([0-9]*\).*/\1/p'; }
  elif [ $mode = seccomp ]; then
    head -c 64 /dev/zero > "$work/open-timed"   # mixed reads 64 bytes and writes them to /dev/null
    loop_argv=(taskset -c 0 $bin/vb-sysloop $seccomp_loop "$work/open-timed" "$iterations" 40 200)
    loop() { "${loop_argv[@]}" | sed -n 's/.*min_ns=\([0-9]*\).*/\1/p'; }
  else
    loop() { taskset -c 0 $bin/vb-openclose "$work/open-timed" "$iterations" 40 200 | sed -n 's/.*min_ns=\([0-9]*\).*/\1/p'; }
  fi
  report() { printf 'bench-kernels-run\t%s\t%s\t%s\t%s\n' "$@"; }
  # The open program's own run time per call (guest-wide setting; the guest is thrown away).
  sysctl -q kernel.bpf_stats_enabled=1
  prog_stats() { bpftool prog show -j 2>/dev/null | python3 -c 'import json, sys
p = [x for x in json.load(sys.stdin) if x.get("name") in ("open_fexit", "openat_exit")]
print(p[-1].get("run_time_ns", 0), p[-1].get("run_cnt", 0)) if p else print(0, 0)'; }
  # The seccomp enter programs' run time and calls, summed (fentry: x64/ia32/x32, or sys_enter's).
  seccomp_stats() { bpftool prog show -j 2>/dev/null | python3 -c 'import json, sys
p = [x for x in json.load(sys.stdin) if x.get("name", "").startswith("seccomp_enter")]
print(sum(x.get("run_time_ns", 0) for x in p), sum(x.get("run_cnt", 0) for x in p))'; }
  # What a profile allows (OCI JSON): the names of its SCMP_ACT_ALLOW rules, sorted, one line.
  allowed() { python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join(sorted(n for r in d.get("syscalls", []) if r.get("action") == "SCMP_ACT_ALLOW" for n in r.get("names", []))))' "$1" 2>/dev/null; }
  # Waits (at most 2 minutes) until vigil PID logs that it records, or exits.
  recording_started() {
    local i
    for ((i = 0; i < 1200; i++)); do
      grep -qs "^vigil: recording " "$work/err" && return 0
      kill -0 $1 2>/dev/null || return 0
      sleep 0.1
    done
  }
  # One seccomp configuration: the recorder started fresh on CPU 1, the loop recorded or not.
  seccomp_run() {
    local config=$1 round=$2 hook=${1%-*} want ns t0 c0 t1 c1 names missing wanted n
    [ $hook = fentry ] && want=fentry || want='\(tp_btf\|raw_tp\)'
    rm -f "$work/out" "$work/err" "$work/profile.json"
    if [ ${config##*-} = recorded ]; then
      # The loop is the recorded command (from its exec): vigil's stdout is the loop's. The
      # program's statistics are sampled on CPU 1 while vigil runs (its programs go with it):
      # from when it records to the last sample before the loop ended.
      wanted="openat fstat read write close"; [ $seccomp_loop = getpid ] && wanted=getpid
      taskset -c 1 $vigil seccomp record --enter-hook $hook -o "$work/profile.json" -- "${loop_argv[@]}" > "$work/out" 2> "$work/err" &
      local pid=$! sample
      recording_started $pid
      read -r t0 c0 <<< "$(taskset -c 1 bash -c "$(declare -f seccomp_stats); seccomp_stats")"
      t1=$t0 c1=$c0
      while kill -0 $pid 2>/dev/null; do
        sample=$(taskset -c 1 bash -c "$(declare -f seccomp_stats); seccomp_stats")
        [ "${sample%% *}" -gt 0 ] 2>/dev/null && read -r t1 c1 <<< "$sample"
        taskset -c 1 sleep 1
      done
      wait $pid || true
      ns=$(sed -n 's/.*min_ns=\([0-9]*\).*/\1/p' "$work/out")
    else
      wanted=nanosleep
      taskset -c 1 $vigil seccomp record --enter-hook $hook -o "$work/profile.json" -- sleep 3600 > /dev/null 2> "$work/err" &
      local pid=$!
      recording_started $pid
      sleep 0.5
      read -r t0 c0 <<< "$(seccomp_stats)"
      ns=$(loop)
      read -r t1 c1 <<< "$(seccomp_stats)"
      kill -INT $pid 2>/dev/null; wait $pid || true
    fi
    if ! grep -qs "^vigil: syscall entries hooked with $want\( \|\$\)" "$work/err"; then
      echo "bench-kernels: $config did not attach its $hook hook:" >&2; cat "$work/err" >&2; return 1
    fi
    names=" $(allowed "$work/profile.json") " missing=""
    for n in $wanted; do
      case $names in *" $n "*|*" clock_$n "*) ;; *) missing+=" $n" ;; esac
    done
    if [ -n "$missing" ] || [ -z "$ns" ]; then
      echo "bench-kernels: $config: no loop figure ($ns) or the profile lacks$missing (allowed:$names):" >&2; cat "$work/err" >&2; return 1
    fi
    report "$config" $round "$ns" "$(sed -n 's/^vigil: syscall entries hooked with \([^ ]*\).*/\1/p' "$work/err" | head -1); $( ((c1 > c0)) && echo "$(( (t1 - t0) / (c1 - c0) )) ns per call of the enter program over $(( c1 - c0 )) calls host-wide" || echo "the enter program not sampled (the loop ended before the first sample)"); the profile allows $(wc -w <<< "$names") syscalls, $(echo $wanted | tr ' ' ,) among them"
  }
  for ((round = 1; round <= rounds; round++)); do
    report none $round "$(loop)" ""
    for ((k = 0; k < ${#configs[@]}; k++)); do
      config=${configs[$(( (k + round - 1) % ${#configs[@]} ))]}
      if [ $mode = seccomp ]; then
        seccomp_run $config $round || exit 1
        report none $round "$(loop)" ""
        continue
      fi
      # hook: the log line vigil writes once attached; want: the variant it must name there.
      case $config in
        *-alerts) args=(--alerts --file-hook "${config%-*}") hook=file/open want=${config%-*} ;;
        *-open) args=(--event open --file-hook "${config%-*}") hook=file/open want=${config%-*} ;;
        default-openat) args=(--event openat) hook=syscalls/syscalls want='kprobe\(\.multi\)\?' ;;
        *-openat) args=(--event openat --syscall-hook "${config%-*}") hook=syscalls/syscalls want=${config%-*} ;;
      esac
      rm -f "$work/out" "$work/err"
      taskset -c 1 $vigil trace "${args[@]}" --format json --output "$work/out" > /dev/null 2> "$work/err" &
      pid=$!
      for ((i = 0; i < 1200; i++)); do
        grep -qs "^vigil: $hook:" "$work/err" && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.1
      done
      if ! grep -qs "^vigil: $hook: $want\( \|\$\)" "$work/err"; then
        echo "bench-kernels: $config did not attach its $want variant:" >&2; cat "$work/err" >&2
        kill -KILL $pid 2>/dev/null; exit 1
      fi
      sleep 0.5
      read -r t0 c0 <<< "$(prog_stats)"
      ns=$(loop)
      read -r t1 c1 <<< "$(prog_stats)"
      kill -INT $pid; wait $pid || true
      if [ $mode = syscalls ]; then
        report "$config" $round "$ns" "$(sed -n "s|^vigil: $hook: \([^ ]*\).*|\1|p" "$work/err" | head -1); $(sed -n 's/^vigil trace: //p' "$work/err" | tail -1)"
      else
        report "$config" $round "$ns" "$(( (t1 - t0) / (c1 > c0 ? c1 - c0 : 1) )) ns per call of the open program; $(sed -n 's/^vigil trace: //p' "$work/err" | tail -1)"
      fi
      report none $round "$(loop)" ""
    done
  done
  exit 0
fi

# --- on the host ---------------------------------------------------------------------------------
rounds=3 iterations=20000 build=1 kernels='6.1.*-amd64,6.12.*-amd64'
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --kernels) kernels=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --syscalls) mode=syscalls configs=("${configs_of_syscalls[@]}"); shift ;;
    --seccomp) mode=seccomp configs=("${configs_of_seccomp[@]}"); shift ;;
    --loop) seccomp_loop=$2; shift 2 ;;
    --vigil) vigil=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-kernels: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
log() { echo "bench-kernels: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "boots kernels and loads eBPF programs: run as root"; exit 1; }
command -v qemu-system-x86_64 >/dev/null || { log "qemu missing: running scripts/setup.sh --test"; scripts/setup.sh --test >&2; }
if [ $build = 1 ]; then
  log "building vigil (swift build -c release --product vigil)"
  swift build -c release --product vigil >&2
fi
mkdir -p $bin
for program in openclose sysloop idle-spin; do cc -O2 -Wall -Wextra -o $bin/vb-$program bench/$program.c; done

[ $mode = seccomp ] || [ $seccomp_loop = mixed ] || { log "--loop is for --seccomp"; exit 2; }
case $seccomp_loop in mixed|getpid) ;; *) log "--loop mixed or getpid"; exit 2 ;; esac
section=kernels
[ $mode = syscalls ] && section=getpid-kernels
[ $mode = seccomp ] && section=seccomp-kernels && [ $seccomp_loop = getpid ] && section=seccomp-getpid-kernels

label() {
  case $1 in
    fentry-recorded) echo "fentry, recorded: \`vigil seccomp record --enter-hook fentry -- sysloop $seccomp_loop ...\`" ;;
    fentry-other) echo "fentry, other: the loop outside \`vigil seccomp record --enter-hook fentry -- sleep 3600\`" ;;
    sys_enter-recorded) echo "sys_enter, recorded: \`vigil seccomp record --enter-hook sys_enter -- sysloop $seccomp_loop ...\`" ;;
    sys_enter-other) echo "sys_enter, other: the loop outside \`vigil seccomp record --enter-hook sys_enter -- sleep 3600\`" ;;
    default-openat) echo "default: \`vigil trace --event openat\` (the chain's choice: kprobe.multi or kprobe)" ;;
    kprobe-openat) echo "kprobe: \`vigil trace --event openat --syscall-hook kprobe\`" ;;
    tracepoint-openat) echo "tracepoint: \`vigil trace --event openat --syscall-hook tracepoint\`" ;;
    fexit-alerts) echo "fexit: \`vigil trace --alerts\` (default rules, pushdown on)" ;;
    fexit-open) echo "fexit: \`vigil trace --event open\` (every open delivered)" ;;
    tracepoint-alerts) echo "tracepoint: \`vigil trace --alerts --file-hook tracepoint\`" ;;
    tracepoint-open) echo "tracepoint: \`vigil trace --event open --file-hook tracepoint\`" ;;
  esac
}

if [ $mode = seccomp ]; then
if [ $seccomp_loop = mixed ]; then
  what_loop="\`bench/sysloop.c mixed\` ($iterations timed steps per run, each openat, fstat, read of 64 bytes, write of them to /dev/null, close, in 40 slices, the fastest slice as the run's figure)"
else
  what_loop="\`bench/sysloop.c getpid\` ($iterations timed getpid() calls per run in 40 slices, the fastest slice as the run's figure)"
fi
loop_option=$([ $seccomp_loop = mixed ] || echo " --loop $seccomp_loop")
cat <<EOF
<!-- BEGIN $section: generated by scripts/bench-kernels.sh --seccomp$loop_option (make bench); edits inside are overwritten -->
## What \`vigil seccomp record\` costs a $seccomp_loop loop on Debian's kernels under qemu: fentry on x64_sys_call next to sys_enter (\`scripts/bench-kernels.sh --seccomp$loop_option\`, issue 15 §5)

- Command: \`$invocation\`; vigil $($vigil --version 2>/dev/null || echo "?") ($vigil) built from $(git rev-parse --short HEAD 2>/dev/null || echo "?")$(git diff --quiet HEAD -- Sources Package.swift bpf 2>/dev/null || echo " plus uncommitted changes"); run on $(date +%Y-%m-%d) on a host with nproc $(nproc)
- **qemu runs in software emulation (TCG) here: absolute times mean nothing, only ratios measured side by side in the same guest are an indication** (noisier than on the host). The cost measured is the kernel's (the enter program on every syscall; userspace only polls the record every 100 ms), so a debug build of vigil measures the same.
- What it shows: what recording costs the recorded command and every other task, per way of hooking the syscall entry (\`--enter-hook\` forces it): fentry on the syscall dispatch x64_sys_call (the chain's choice on both kernels; tasks stay on the fast syscall path) and the generic sys_enter tracepoint (TIF_SYSCALL_TRACEPOINT on every task: every syscall of the host takes the slow entry path). Both then read the task's cgroup id and look it up in the hash of recorded cgroups.
- Method: in one guest per kernel, $rounds rounds of $what_loop pinned to CPU 0, \`vigil seccomp record\` pinned to CPU 1 and started fresh per run. *recorded*: the loop is the recorded command (\`-- taskset -c 0 sysloop ...\`, in vigil's fresh cgroup, recorded from its exec; a run counts only if its profile allows the loop's syscalls); *other*: the recorder records \`sleep 3600\` and the loop runs outside its cgroup once the sensor is attached. Per round the configurations run in rotated order, each between two runs without a recorder, and a run's ratio is over the median of that round's runs without one. Slowdown: the median ratio over the rounds.
EOF
elif [ $mode = syscalls ]; then
cat <<EOF
<!-- BEGIN getpid-kernels: generated by scripts/bench-kernels.sh --syscalls (make bench); edits inside are overwritten -->
## A getpid() loop while only openat is captured, on Debian's kernels under qemu (\`scripts/bench-kernels.sh --syscalls\`, issue 12 §6)

- Command: \`$invocation\`; vigil $($vigil --version 2>/dev/null || echo "?") ($vigil) built from $(git rev-parse --short HEAD 2>/dev/null || echo "?")$(git diff --quiet HEAD -- Sources Package.swift bpf 2>/dev/null || echo " plus uncommitted changes"); run on $(date +%Y-%m-%d) on a host with nproc $(nproc)
- **qemu runs in software emulation (TCG) here: absolute times mean nothing, only ratios measured side by side in the same guest are an indication** (noisier than on the host).
- What it shows: what the syscalls sensor capturing openat (and the fd table's syscalls) costs the getpid calls it does not capture. Per-syscall tracepoints set TIF_SYSCALL_TRACEPOINT on every task (every syscall takes the slow entry path); kprobes on the syscalls' own functions do not.
- Method: in one guest per kernel, $rounds rounds of \`bench/sysloop.c getpid\` ($iterations timed getpid() calls per run in 40 slices, the fastest slice as the run's figure) pinned to CPU 0, \`vigil trace --event openat\` pinned to CPU 1 and started fresh per run (\`--syscall-hook\` forces the variant); per round the configurations run in rotated order, each between two runs without a tracer, and a run's ratio is over the median of that round's runs without one. Slowdown: the median ratio over the rounds.
EOF
else
cat <<EOF
<!-- BEGIN kernels: generated by scripts/bench-kernels.sh (make bench); edits inside are overwritten -->
## The open hook on Debian's kernels under qemu (\`scripts/bench-kernels.sh\`)

- Command: \`$invocation\` (what \`make bench\` runs); vigil $($vigil --version 2>/dev/null || echo "?") built from $(git rev-parse --short HEAD 2>/dev/null || echo "?")$(git diff --quiet HEAD -- Sources Package.swift bpf 2>/dev/null || echo " plus uncommitted changes"); run on $(date +%Y-%m-%d) on a host with nproc $(nproc)
- **qemu runs in software emulation (TCG) here: absolute times mean nothing, only ratios measured side by side in the same guest are an indication** (noisier than on the host: the guest's two vCPUs are host threads on a shared machine).
- "ns per call of the open program" is the program's own run time per call (\`kernel.bpf_stats_enabled\` in the guest), as emulated.
- Method: in one guest per kernel, $rounds rounds of \`bench/openclose.c\` ($iterations timed open()+close() steps per run in 40 slices, the fastest slice as the run's figure: under emulation on a shared host the noise only adds time) pinned to CPU 0, \`vigil trace\` pinned to CPU 1 and started fresh per run (\`--file-hook\` forces the variant); per round the configurations run in rotated order, each between two runs without a tracer, and a run's ratio is over the median of that round's runs without one. Slowdown: the median ratio over the rounds.
EOF
fi
IFS=, read -r -a globs <<< "$kernels"
verdicts=()
for glob in "${globs[@]}"; do
  image=$(ls /boot/vmlinuz-$glob 2>/dev/null | sort -V | tail -1)
  if [ -z "$image" ]; then
    log "SKIP $glob: no /boot/vmlinuz-$glob (scripts/setup.sh --test installs it)"
    printf '\n### %s\n\nnot measured: no /boot/vmlinuz-%s\n' "$glob" "$glob"
    continue
  fi
  version=${image#/boot/vmlinuz-}
  log "$version: booting (qemu, TCG)"
  guest_log=$(mktemp)
  # A guest that runs out of time (KVMTEST_TIMEOUT) leaves its rounds incomplete: the tables show
  # only the runs that finished.
  KVMTEST_TIMEOUT=${KVMTEST_TIMEOUT:-3600} scripts/run-in-kernel.sh "$version" scripts/bench-kernels.sh --guest $rounds $iterations $mode "$vigil" $seccomp_loop > "$guest_log" || log "$version: the guest exited with $?"
  tr -d '\r' < "$guest_log" >&2
  raw=$(tr -d '\r' < "$guest_log" | grep '^bench-kernels-run' || true)
  rm -f "$guest_log"
  declare -A ns=() summary=() base=()
  declare -A nones=()
  while IFS=$'\t' read -r _ config round value text; do
    [ -n "$value" ] || continue
    if [ "$config" = none ]; then nones[$round]+="$value "; else ns[$config/$round]=$value; summary[$config/$round]=$text; fi
  done <<< "$raw"
  echo
  echo "### Linux $version (qemu, TCG)"
  echo
  if [ ${#ns[@]} = 0 ]; then echo "no run completed (see the guest's output on stderr)"; verdicts+=("FAIL $version: no run completed"); continue; fi
  all_base=()
  for ((round = 1; round <= rounds; round++)); do
    read -r -a b <<< "${nones[$round]:-}"
    [ ${#b[@]} -gt 0 ] || continue
    base[$round]=$(median "${b[@]}"); all_base+=("${b[@]}")
  done
  echo "| configuration | ns/iteration (median) | runs: ns/iteration (ratio) | slowdown (median) |"
  echo "|---|---:|---|---:|"
  echo "| no tracer | $(median "${all_base[@]}") | round medians: $(for r in "${!base[@]}"; do echo "$r ${base[$r]}"; done | sort -n | awk '{ printf "%s%s", (NR > 1 ? ", " : ""), $2 }') | 1.00x |"
  declare -A slow=()
  for config in "${configs[@]}"; do
    runs="" ratios=() values=()
    for ((round = 1; round <= rounds; round++)); do
      [ -n "${ns[$config/$round]:-}" ] && [ -n "${base[$round]:-}" ] || continue
      ratio=$(awk -v t="${ns[$config/$round]}" -v b="${base[$round]}" 'BEGIN { printf "%.2f", t / b }')
      ratios+=("$ratio") values+=("${ns[$config/$round]}") runs+="${ns[$config/$round]} ($ratio), "
    done
    [ ${#ratios[@]} -gt 0 ] || continue
    slow[$config]=$(printf "%.2f" "$(median "${ratios[@]}")")
    echo "| $(label $config) | $(median "${values[@]}") | ${runs%, } | ${slow[$config]}x |"
  done
  echo
  if [ $mode = seccomp ]; then
    echo "Per run: the enter hook vigil logged, the enter program's own run time per call (\`kernel.bpf_stats_enabled\`, as emulated; every task's syscalls, over the loop for *other*, over the whole recording for *recorded*), and the recorded profile:"
  else
    echo "vigil's $([ $mode = syscalls ] && echo "hook and ")own summary per run (it counts every process's events, not only the loop's):"
  fi
  echo
  for config in "${configs[@]}"; do
    for ((round = 1; round <= rounds; round++)); do
      [ -n "${summary[$config/$round]:-}" ] && echo "- $config, round $round: ${summary[$config/$round]}"
    done
  done
  for config in "${configs_of_syscalls[@]}"; do
    [ $mode = syscalls ] && [ -n "${slow[$config]:-}" ] || continue
    v=$(awk -v s="${slow[$config]}" -v f=$rules_floor 'BEGIN { print (s <= f ? "within" : "above") }')
    verdicts+=("$version, $(label $config): a getpid loop ${slow[$config]}x, $v the ${rules_floor}x floor (indicative: TCG)")
  done
  for config in "${configs_of_seccomp[@]}"; do
    [ $mode = seccomp ] && [ -n "${slow[$config]:-}" ] || continue
    v=$(awk -v s="${slow[$config]}" -v f=$seccomp_floor 'BEGIN { print (s <= f ? "within" : "above") }')
    verdicts+=("$version, $(label $config): ${slow[$config]}x, $v issue 15's ${seccomp_floor}x (indicative: TCG)")
  done
  for config in fexit-alerts tracepoint-alerts; do
    [ -n "${slow[$config]:-}" ] || continue
    v=$(awk -v s="${slow[$config]}" -v f=$rules_floor 'BEGIN { print (s <= f ? "within" : "above") }')
    verdicts+=("$version, ${config%-*}: \`vigil trace --alerts\` ${slow[$config]}x, $v the ${rules_floor}x floor (indicative: TCG); every open delivered: ${slow[${config%-*}-open]:-?}x")
  done
  unset ns summary base nones slow
done
echo
echo "### Verdict (indicative only: software emulation)"
echo
for v in "${verdicts[@]}"; do echo "- $v"; done
echo "<!-- END $section -->"
