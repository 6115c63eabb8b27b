#!/usr/bin/env bash
# scripts/bench-sensors.sh: what tracing costs the traced workload, `vigil trace` next to its peers.
#
# Two small C loops, compiled here from bench/*.c, time themselves pinned to one CPU:
#   open   open()+close() of one file                         (bench/openclose.c)
#   exec   fork + exec of /bin/true + wait                    (bench/forkexec.c)
# while one tracer, pinned to the other CPU, reports every event they cause:
#   none        no tracer
#   vigil       vigil trace --event open|exec, JSON to a file (.build/release/vigil, built here)
#   vigil-rules vigil trace --alerts: the embedded default rules, JSON alerts to a file. No default
#               rule matches the loop's plain read, so the path pushdown drops its opens in the
#               kernel: it should report none and count them as filtered. Its verification loop
#               opens a file named id_rsa, which the rule "Sensitive file read" matches (open loop)
#   vigil-ring  the same with --ring-mib 64: a ring that holds a whole run, so every event is
#               delivered even when the consumer falls behind (open loop only, by default)
#   snoop       opensnoop / execsnoop from Debian's libbpf-tools
#   bpftrace    bench/opens.bt (openat entry+exit) / bench/execs.bt (execve), printing every event
#
# One run measures everything side by side, in interleaved rounds. In each round, for each loop,
# the tracers run in rotated order with a run of the loop without a tracer before and after each
# traced run (none, T1, none, T2, ..., none); a traced run's slowdown is its ns/iteration over
# the median of that round's runs without a tracer (robust to one of them hitting a slow phase of
# the host), and the tables show medians over the rounds.
#
# Each traced run: start the tracer, wait until its programs are attached (vigil: its
# "sensor/hook: variant" lines on stderr, printed after attaching; peers: `bpftool perf list`
# shows their tracepoints), run a short verification loop on a second target, run the timed
# loop, stop the tracer with SIGINT and count, in its output, the events of both loops. The
# verification loop runs before timing, so finding its events proves the tracer was attached
# when timing started.
#
# Tracer output goes to files on tmpfs (not /dev/null) so that every run can be checked and
# counted; writing them costs the tracer's CPU, not the loop's. A SCHED_IDLE spinner
# (bench/idle-spin.c) keeps the loop's CPU from idling between runs: see that file for why.
#
# Prints a Markdown section between `<!-- BEGIN sensors` and `<!-- END sensors -->` on stdout;
# progress goes to stderr. `scripts/bench-section.sh sensors FILE` puts it into BENCHMARKS.md.
#
# Usage (as root; about 3 minutes with the defaults):
#   scripts/bench-sensors.sh [--rounds N] [--open-iterations N] [--exec-iterations N]
#                            [--loops open,exec] [--tracers vigil,vigil-rules,vigil-ring,snoop,bpftrace]
#                            [--vigil-args "ARGS"] [--no-build] [--median] [--raw FILE]
#   --tracers      the tracers for every loop (default: all five for open, no vigil-ring or
#                  vigil-rules for exec)
#   --vigil-args   extra arguments for `vigil trace` (e.g. "--ring-mib 16"), for experiments
#   --median       take the median of a run's slices as its figure, not the 10th percentile
#   --raw FILE     also write every run as tab-separated values to FILE
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/median.sh
export PATH=/opt/swift/usr/bin:/usr/sbin:/sbin:$PATH
invocation="scripts/bench-sensors.sh${*:+ $*}"

# --- settings ------------------------------------------------------------------------------------
rounds=7
open_iterations=50000    # timed open()+close() steps per run (after a warm-up)
exec_iterations=300      # timed fork+exec steps per run (after a warm-up)
loops=open,exec
tracers=""               # empty: the defaults per loop, below
vigil_extra=""
build=1
raw=""
loop_cpu=0 tracer_cpu=1
warmup_ms=50                       # untimed steps before the timed ones (caches, page tables)
verify_open=2000 verify_exec=20    # steps of the verification loop run before timing
open_floor=2.0 exec_floor=1.10     # vigil trace's allowed slowdown (issue "Process and file sensors", 6)
rules_floor=1.10                   # vigil trace --alerts with the default rules (issue "The rules engine", 2)
big_ring_mib=64                    # vigil-ring: holds every event of an open run (~160 B each)
stat=p10_ns                        # a run's figure: p10_ns (10th percentile of its slices) or ns_per_iter (median)
vigil=.build/release/vigil

while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --open-iterations) open_iterations=$2; shift 2 ;;
    --exec-iterations) exec_iterations=$2; shift 2 ;;
    --loops) loops=$2; shift 2 ;;
    --tracers) tracers=$2; shift 2 ;;
    --vigil-args) vigil_extra=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --raw) raw=$2; shift 2 ;;
    --median) stat=ns_per_iter; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-sensors: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
IFS=, read -r -a loop_list <<< "$loops"
declare -A tracers_of=([open]=vigil,vigil-rules,vigil-ring,snoop,bpftrace [exec]=vigil,snoop,bpftrace)
if [ -n "$tracers" ]; then tracers_of[open]=$tracers; tracers_of[exec]=$tracers; fi
read -r -a vigil_extra_args <<< "$vigil_extra"

log() { echo "bench-sensors: $*" >&2; }
die() { log "$*"; exit 1; }

# --- prerequisites ---------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "loads eBPF programs: run as root"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (the loop on one, the tracer on the other)"
for tool in bpftrace opensnoop execsnoop bpftool cc taskset chrt; do
  command -v $tool >/dev/null || { log "$tool missing: running scripts/setup.sh --bench"; scripts/setup.sh --bench >&2; break; }
done
if [ $build = 1 ]; then
  log "building vigil (swift build -c release --product vigil)"
  swift build -c release --product vigil >&2
fi
[ -x $vigil ] || die "$vigil missing: build it with swift build -c release --product vigil"

# The CLI's option names: newer builds have -o/--format FMT and --output FILE, older ones had
# -o/--output FMT and --output-file FILE.
trace_help=$($vigil trace --help 2>&1)
if grep -q -- '--output-file' <<< "$trace_help"; then
  vigil_format=(--output json) vigil_file=--output-file
elif grep -q -- '--format' <<< "$trace_help"; then
  vigil_format=(--format json) vigil_file=--output
else
  die "cannot tell vigil trace's output options from its --help"
fi

# --- scratch space: loop targets on the root file system, tracer output on tmpfs ---------------
work=$(mktemp -d /tmp/vigil-bench-sensors.XXXXXX)
outdir=$(mktemp -d "$([ -d /dev/shm ] && echo /dev/shm || echo /tmp)/vigil-bench-sensors.XXXXXX")
tracer_pid="" spin_pid=""
cleanup() {
  if [ -n "$tracer_pid" ] && kill -0 "$tracer_pid" 2>/dev/null; then
    kill -INT "$tracer_pid" 2>/dev/null; sleep 1; kill -KILL "$tracer_pid" 2>/dev/null || true
  fi
  [ -n "$spin_pid" ] && kill "$spin_pid" 2>/dev/null || true
  rm -rf "$work" "$outdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for program in openclose forkexec idle-spin; do cc -O2 -Wall -Wextra -o "$work/vb-$program" bench/$program.c; done
: > "$work/open-timed"
: > "$work/open-verify"
: > "$work/id_rsa"                   # vigil-rules' verification target: "Sensitive file read" matches it
ln -s /bin/true "$work/vbtrue-t"     # timed exec target; its comm is "vbtrue-t"
ln -s /bin/true "$work/vbtrue-v"     # verification exec target

# --- one run of a loop ---------------------------------------------------------------------------
# run_loop LOOP ROLE ITERATIONS SLICES WARMUP_MS: prints the loop's result line.
run_loop() {
  local loop=$1 role=$2 n=$3 slices=$4 warm=$5
  case $loop in
    open) taskset -c $loop_cpu "$work/vb-openclose" "$(open_target $role)" "$n" "$slices" "$warm" ;;
    exec) taskset -c $loop_cpu "$work/vb-forkexec" "$work/vbtrue-${role:0:1}" "$n" "$slices" "$warm" ;;
  esac
}
# The open loop's target for ROLE (timed, verify); vigil-rules verifies with a file a rule matches.
open_target() { if [ "$1" = verify ] && [ "${current_tracer:-}" = vigil-rules ]; then echo "$work/id_rsa"; else echo "$work/open-$1"; fi; }
field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<< "$2"; }   # field NAME "k=v k=v": the value

# Events of the loop's ROLE target in a tracer's output, counted exactly (one line per event; the
# path also appears in the loop's own command line, which vigil prints with every event).
count_events() {
  local tracer=$1 loop=$2 role=$3 file=$4
  case ${tracer%-ring}/$loop in
    vigil/open|vigil-rules/open) grep -cF "\"fd.name\":\"$(open_target $role)\"" "$file" || true ;;
    vigil/exec) grep -cF "\"proc.name\":\"vbtrue-${role:0:1}\"" "$file" || true ;;
    snoop/open|bpftrace/open) awk -v p="$work/open-$role" '$NF == p' "$file" | wc -l ;;
    snoop/exec) awk -v c="vbtrue-${role:0:1}" '$1 == c' "$file" | wc -l ;;
    bpftrace/exec) awk -v p="$work/vbtrue-${role:0:1}" '$NF == p' "$file" | wc -l ;;
  esac
}

# CPU time (clock ticks) a process has used so far; empty once it is gone.
cpu_ticks() { local s; s=$(cat /proc/$1/stat 2>/dev/null) || return 0; awk '{ print $12 + $13 }' <<< "${s##*) }"; }

# start_tracer TRACER LOOP OUT ERR: starts it pinned to the tracer CPU; sets tracer_pid.
start_tracer() {
  local tracer=$1 loop=$2 out=$3 err=$4
  local -a cmd
  case $tracer/$loop in
    vigil/*) cmd=($vigil trace "${vigil_format[@]}" --event $loop $vigil_file "$out" "${vigil_extra_args[@]}"); out=/dev/null ;;
    vigil-ring/*) cmd=($vigil trace "${vigil_format[@]}" --event $loop $vigil_file "$out" --ring-mib $big_ring_mib "${vigil_extra_args[@]}"); out=/dev/null ;;
    vigil-rules/*) cmd=($vigil trace "${vigil_format[@]}" --alerts $vigil_file "$out" "${vigil_extra_args[@]}"); out=/dev/null ;;
    snoop/open) cmd=(opensnoop) ;;
    snoop/exec) cmd=(execsnoop) ;;
    bpftrace/open) cmd=(bpftrace bench/opens.bt) ;;
    bpftrace/exec) cmd=(bpftrace bench/execs.bt) ;;
  esac
  taskset -c $tracer_cpu "${cmd[@]}" > "$out" 2> "$err" &
  tracer_pid=$!
}

# wait_attached TRACER LOOP ERR: until the tracer's programs are attached (at most 60 s).
wait_attached() {
  local tracer=$1 loop=$2 err=$3 i hook ok listed
  local -a hooks=()
  case $tracer/$loop in
    */open) hooks=(sys_enter_openat sys_exit_openat) ;;
    snoop/exec) hooks=(sys_enter_execve sys_exit_execve) ;;
    bpftrace/exec) hooks=(sys_enter_execve) ;;
  esac
  for ((i = 0; i < 600; i++)); do
    kill -0 "$tracer_pid" 2>/dev/null || return 1
    if [[ $tracer == vigil* ]]; then
      # vigil logs one line per hook ("file/open: tracepoint ...") once its sensors are attached.
      grep -qs "^vigil: $([ $loop = open ] && echo file/open || echo process/exec):" "$err" && return 0
    else
      listed=$(bpftool perf list 2>/dev/null | grep "^pid $tracer_pid " || true)
      ok=1
      for hook in "${hooks[@]}"; do grep -q " $hook\$" <<< "$listed" || ok=0; done
      [ $ok = 1 ] && return 0
    fi
    sleep 0.1
  done
  return 1
}

# stop_tracer: SIGINT (every tracer here prints its last events and summary on it), wait for it
# to exit (vigil first drains what its ring still holds). Sets stop_ticks: its CPU time, sampled
# up to its exit.
stop_tracer() {
  local i t
  stop_ticks=$(cpu_ticks "$tracer_pid")
  kill -INT "$tracer_pid" 2>/dev/null || true
  for ((i = 0; i < 6000; i++)); do          # at most 120 s
    t=$(cpu_ticks "$tracer_pid"); [ -n "$t" ] && stop_ticks=$t
    kill -0 "$tracer_pid" 2>/dev/null || break
    [ $i = 3000 ] && { log "tracer $tracer_pid still running after 60 s: SIGTERM"; kill -TERM "$tracer_pid" 2>/dev/null || true; }
    sleep 0.02
  done
  kill -KILL "$tracer_pid" 2>/dev/null || true
  wait "$tracer_pid" 2>/dev/null || true
  tracer_pid=""
}

# --- results, keyed "loop/tracer/round" (runs without a tracer: "loop/none/round/k") --------------
declare -A ns steps verify_seen verify_steps seen cpu summary variants
declare -A iterations=([open]=$open_iterations [exec]=$exec_iterations)
declare -A slices=([open]=20 [exec]=20)
declare -A verify_n=([open]=$verify_open [exec]=$verify_exec)
[ -n "$raw" ] && printf 'loop\ttracer\tround\tns\tsteps\tseen\tverify_steps\tverify_seen\tcpu_s\tvigil_summary\n' > "$raw"

# baseline LOOP ROUND K: one run without a tracer.
baseline() {
  local r; r=$(run_loop $1 timed ${iterations[$1]} ${slices[$1]} $warmup_ms)
  ns[$1/none/$2/$3]=$(field $stat "$r")
  [ -n "$raw" ] && printf '%s\tnone\t%s\t%s\t%s\t\t\t\t\t\n' $1 $2 "${ns[$1/none/$2/$3]}" "$(field steps "$r")" >> "$raw"
  return 0
}

# traced LOOP TRACER ROUND: one run under a tracer, with its verification.
traced() {
  local loop=$1 tracer=$2 round=$3 key=$1/$2/$3
  local out=$outdir/$loop-$tracer.out err=$outdir/$loop-$tracer.err r v t0
  current_tracer=$tracer
  rm -f "$out" "$err"
  start_tracer $tracer $loop "$out" "$err"
  wait_attached $tracer $loop "$err" || { cat "$err" >&2; die "$tracer ($loop) did not attach"; }
  sleep 0.2
  t0=$(cpu_ticks "$tracer_pid")
  v=$(run_loop $loop verify ${verify_n[$loop]} 1 0)
  r=$(run_loop $loop timed ${iterations[$loop]} ${slices[$loop]} $warmup_ms)
  sleep 0.2                                       # let the tracer read the last events
  stop_tracer
  ns[$key]=$(field $stat "$r")
  steps[$key]=$(field steps "$r")
  verify_steps[$key]=$(field steps "$v")
  verify_seen[$key]=$(count_events $tracer $loop verify "$out")
  seen[$key]=$(count_events $tracer $loop timed "$out")
  cpu[$key]=$(awk -v a="$t0" -v b="$stop_ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')
  if [[ $tracer == vigil* ]]; then
    summary[$key]=$(sed -n 's/^vigil trace: //p' "$err" | tail -1)
    variants[$loop]=$(sed -n 's/^vigil: \([a-z]*\/[a-z]*: \)/\1/p' "$err" | awk '{ printf "%s%s", (NR > 1 ? "; " : ""), $0 }')
  fi
  [ -n "$raw" ] && printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' $loop $tracer $round "${ns[$key]}" "${steps[$key]}" \
    "${seen[$key]}" "${verify_steps[$key]}" "${verify_seen[$key]}" "${cpu[$key]}" "${summary[$key]:-}" >> "$raw"
  [ "${verify_seen[$key]}" -ge "${verify_steps[$key]}" ] || log "WARNING: $tracer ($loop) reported ${verify_seen[$key]} of ${verify_steps[$key]} verification events: was it attached?"
  rm -f "$out"
  current_tracer=""
}

# --- background: CPU time of everything but this script and its children --------------------------
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }           # all CPUs, ticks
total() { awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
steal() { awk '/^cpu / { print $9 }' /proc/stat; }
ours() { local s; s=$(cat /proc/$$/stat); awk '{ print $12 + $13 + $14 + $15 }' <<< "${s##*) }"; }   # this shell + reaped children
b0=$(busy) t0=$(total); sleep 1; b1=$(busy) t1=$(total)
before=$(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.0f%%", 100 * b / t }')
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
run_busy0=$(busy) run_total0=$(total) run_steal0=$(steal) run_ours0=$(ours)

chrt -i 0 taskset -c $loop_cpu "$work/vb-idle-spin" &
spin_pid=$!

# --- the rounds ------------------------------------------------------------------------------------
# rotation LOOP ROUND: that loop's tracers in that round's order (rotated by one each round).
rotation() {
  local -a list; IFS=, read -r -a list <<< "${tracers_of[$1]}"
  local r=$(( ($2 - 1) % ${#list[@]} ))
  echo "${list[@]:$r}" "${list[@]:0:$r}"
}
started=$(date +%s)
for ((round = 1; round <= rounds; round++)); do
  for loop in "${loop_list[@]}"; do
    read -r -a order <<< "$(rotation $loop $round)"
    log "round $round/$rounds, $loop loop: none ${order[*]/#/+ }"
    k=0
    baseline $loop $round $k
    for tracer in "${order[@]}"; do
      traced $loop $tracer $round
      baseline $loop $round $((++k))
      log "  $tracer: ${ns[$loop/$tracer/$round]} ns/iteration (neighbours ${ns[$loop/none/$round/$((k - 1))]}, ${ns[$loop/none/$round/$k]}); reported ${seen[$loop/$tracer/$round]}/${steps[$loop/$tracer/$round]} events${summary[$loop/$tracer/$round]:+; ${summary[$loop/$tracer/$round]}}"
    done
  done
done
elapsed=$(( $(date +%s) - started ))
kill $spin_pid; wait $spin_pid 2>/dev/null || true; spin_pid=""
# other processes' share of all CPUs' time during the rounds, and the host's steal
background=$(awk -v b=$(( $(busy) - run_busy0 )) -v o=$(( $(ours) - run_ours0 )) -v t=$(( $(total) - run_total0 )) -v s=$(( $(steal) - run_steal0 )) \
  'BEGIN { printf "other processes used %.0f%% of the CPUs'"'"' time, the host stole %.1f%%", (b > o ? 100 * (b - o) / t : 0), 100 * s / t }')

# --- report ----------------------------------------------------------------------------------------
scaled() { awk -v x="$1" -v s="$2" 'BEGIN { printf "%.0f", x / s }'; }    # ns -> ns or us
group() { sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<< "$1"; }                # 1234567 -> 1,234,567
label() {
  case $1/$2 in
    vigil/*) echo "\`vigil trace --event $2\`, JSON to a file" ;;
    vigil-ring/*) echo "\`vigil trace --event $2 --ring-mib $big_ring_mib\`, JSON to a file" ;;
    vigil-rules/*) echo "\`vigil trace --alerts\` (default rules, pushed down), JSON alerts to a file" ;;
    snoop/open) echo "opensnoop (libbpf-tools)" ;;
    snoop/exec) echo "execsnoop (libbpf-tools)" ;;
    bpftrace/open) echo "bpftrace bench/opens.bt" ;;
    bpftrace/exec) echo "bpftrace bench/execs.bt" ;;
  esac
}

verdicts=() findings=()
cat <<EOF
<!-- BEGIN sensors: generated by scripts/bench-sensors.sh (make bench); edits inside are overwritten -->
## What tracing costs a traced loop (\`scripts/bench-sensors.sh\`)

- Command: \`$invocation\` (what \`make bench\` runs)
- Machine: Linux $(uname -r), nproc $(nproc), $(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1); run on $(date +%Y-%m-%d), rounds took $((elapsed / 60)) min $((elapsed % 60)) s
- Tracers: vigil $($vigil --version 2>/dev/null || echo "?") (\`$vigil\`, built from $(git rev-parse --short HEAD 2>/dev/null || echo "?")$(git diff --quiet HEAD -- Sources Package.swift bpf 2>/dev/null || echo " plus uncommitted changes")); libbpf-tools $(dpkg-query -W -f='${Version}' libbpf-tools 2>/dev/null); bpftrace $(bpftrace --version 2>/dev/null | awk '{ print $2 }')
EOF
for loop in "${loop_list[@]}"; do
  [ -n "${variants[$loop]:-}" ] && echo "- vigil's hooks (as it reported them in the $loop loop runs): ${variants[$loop]}"
done
cat <<EOF
- Loops (\`cc -O2\`): \`bench/openclose.c\` opens and closes one file by absolute path, ${open_iterations} timed steps per run in 20 slices; \`bench/forkexec.c\` forks, execs \`/bin/true\` (through a symlink with a unique name) and waits, ${exec_iterations} timed steps per run in 20 slices. Each runs ${warmup_ms} ms of untimed steps first; a run's figure is $([ $stat = p10_ns ] && echo "the 10th percentile of its slices (this VM's host has a slow state in which syscall-heavy code runs ~1.65x slower for 0.1 s to seconds at a time, plain arithmetic not; the fastest slices keep a run that is partly in it comparable)" || echo "the median of its slices"). The loop is pinned to CPU $loop_cpu (the exec'd children inherit it), the tracer to CPU $tracer_cpu; a SCHED_IDLE spinner keeps CPU $loop_cpu from idling (bench/idle-spin.c says why).
- Method: $rounds rounds; per round and loop the tracers run in rotated order, each between two runs of the loop without a tracer; a traced run's ratio is its time per iteration over the median of that round's runs without a tracer, and the slowdown is the median ratio over the rounds. Each tracer is started fresh per run and waited for until attached (vigil: its per-hook lines on stderr; peers: their tracepoints in \`bpftool perf list\`); a verification loop (${verify_open} opens / ${verify_exec} execs of a second target) runs before the timed one, and after SIGINT the tracer's output (a file on tmpfs) is searched for the events of both. Every tracer reports every event; vigil writes one JSON object per event (\`${vigil_format[*]} $vigil_file FILE\`${vigil_extra:+ \`$vigil_extra\`}). "Tracer CPU" is the tracer's CPU time from attached to exited (draining its backlog included) over the loop events it reported.
- Background: before the rounds the machine was $before busy (load average $loadavg); during them $background (the quieter, the steadier the figures; rerun when other processes used more than a few percent).
EOF

for loop in "${loop_list[@]}"; do
  case $loop in
    open) title="open()+close() loop"; floor=$open_floor unit=ns scale=1 ;;
    exec) title="fork+exec loop (fork, exec /bin/true, wait)"; floor=$exec_floor unit=us scale=1000 ;;
  esac
  IFS=, read -r -a list <<< "${tracers_of[$loop]}"
  base_all=() base_rounds=() base_median=()
  for ((round = 1; round <= rounds; round++)); do
    this=()
    for ((k = 0; k <= ${#list[@]}; k++)); do this+=("${ns[$loop/none/$round/$k]}"); done
    base_all+=("${this[@]}")
    base_median[$round]=$(median "${this[@]}")
    base_rounds+=("$(scaled "${base_median[$round]}" $scale)")
  done
  echo
  echo "### $title"
  echo
  echo "Floor: \`vigil trace\` at most ${floor}x the loop without a tracer, delivering every event (0 lost, every event of the loop in its output). The peers are shown for comparison."
  echo
  echo "| tracer | $unit/iteration (median) | runs: $unit/iteration (ratio to the round's median without tracer) | slowdown (median) | loop events in the tracer's output (timed runs) | attached before timing (verification loop seen) | tracer CPU per event reported | floor |"
  echo "|---|---:|---|---:|---|---|---:|---|"
  base_rounds_text=$(IFS=,; echo "${base_rounds[*]}" | sed 's/,/, /g')
  echo "| no tracer | $(scaled "$(median "${base_all[@]}")" $scale) | round medians: $base_rounds_text | 1.00x | | | | |"
  for tracer in "${list[@]}"; do
    runs="" all_ns=() ratios=() made=0 got=0 vmade=0 vgot=0 cpusum=0 events=0 ok_runs=0 lost=0
    for ((round = 1; round <= rounds; round++)); do
      key=$loop/$tracer/$round
      ratio=$(awk -v t="${ns[$key]}" -v b="${base_median[$round]}" 'BEGIN { printf "%.2f", t / b }')
      ratios+=("$ratio") all_ns+=("${ns[$key]}")
      runs+="$(scaled "${ns[$key]}" $scale) ($ratio), "
      made=$((made + steps[$key])) got=$((got + seen[$key]))
      vmade=$((vmade + verify_steps[$key])) vgot=$((vgot + verify_seen[$key]))
      [ "${verify_seen[$key]}" -ge "${verify_steps[$key]}" ] && ok_runs=$((ok_runs + 1))
      cpusum=$(awk -v a=$cpusum -v b="${cpu[$key]}" 'BEGIN { print a + b }')
      events=$((events + seen[$key] + verify_seen[$key]))
      l=$(sed -n 's/.* \([0-9]*\) lost.*/\1/p' <<< "${summary[$key]:-}")
      lost=$((lost + ${l:-0}))
    done
    slow=$(printf "%.2f" "$(median "${ratios[@]}")")
    verdict="comparison, no floor"
    if [[ $tracer == vigil* ]]; then
      what="vigil trace"
      [ $tracer = vigil-ring ] && what+=" --ring-mib $big_ring_mib"
      [ $tracer = vigil-rules ] && what+=" --alerts"
      what+="${vigil_extra:+ $vigil_extra}"
      if [ $tracer = vigil-rules ]; then
        # No rule matches the timed loop's opens: none may be reported, and none lost.
        if awk -v s="$slow" -v f=$rules_floor 'BEGIN { exit !(s <= f) }' && [ $lost = 0 ] && [ $got = 0 ] && [ $ok_runs = $rounds ]; then verdict=PASS; else verdict=FAIL; fi
        verdicts+=("$verdict $title, \`$what\` (default rules, path pushdown): ${slow}x (floor ${rules_floor}x); $(group $got) alerts for the $(group $made) loop opens no rule matches (each dropped in the kernel), $(group $lost) lost in the kernel")
        echo "| $(label $tracer $loop) | $(scaled "$(median "${all_ns[@]}")" $scale) | ${runs%, } | ${slow}x | $(group $got) alerts for $(group $made) opens no rule matches | $ok_runs of $rounds runs ($(group $vgot) of $(group $vmade) alerts) | | $verdict |"
        continue
      fi
      if awk -v s="$slow" -v f=$floor 'BEGIN { exit !(s <= f) }' && [ $lost = 0 ] && [ $got -ge $made ] && [ $ok_runs = $rounds ]; then verdict=PASS; else verdict=FAIL; fi
      verdicts+=("$verdict $title, \`$what\`: ${slow}x (floor ${floor}x); $(group $got) of $(group $made) loop events in its output, $(group $lost) lost in the kernel")
      # Can its consumer keep up? CPU per event reported against the loop's time per event.
      findings+=("$title, \`$what\`: its process used $(awk -v c=$cpusum -v e=$events 'BEGIN { printf "%.1f", 1e6 * c / e }') us of CPU per event it reported, while the traced loop made one event every $(scaled "$(median "${all_ns[@]}")" $scale) $unit: it keeps up with $(awk -v c=$cpusum -v e=$events -v t="$(median "${all_ns[@]}")" 'BEGIN { x = 100 * t / (1e9 * c / e); printf (x >= 100 ? "all" : "%.0f%%"), x }') of that rate (one CPU each).$([ $lost -gt 0 ] && echo " The rest waits in the ring until it is full, then is lost: $(group $((lost / rounds))) events per run." || true)")
    fi
    echo "| $(label $tracer $loop) | $(scaled "$(median "${all_ns[@]}")" $scale) | ${runs%, } | ${slow}x | $(group $got) of $(group $made) ($(awk -v g=$got -v m=$made 'BEGIN { printf "%.1f%%", 100 * g / m }')) | $ok_runs of $rounds runs ($(group $vgot) of $(group $vmade) events) | $(awk -v c=$cpusum -v e=$events 'BEGIN { printf "%.1f us", 1e6 * c / e }') | $verdict |"
  done
  for tracer in "${list[@]}"; do
    [[ $tracer == vigil* ]] || continue
    echo
    echo "\`$(label $tracer $loop | sed 's/`//g; s/, JSON to a file//')\`: its own summary per run (printed on SIGINT; it counts every process's events, not only the loop's):"
    echo
    for ((round = 1; round <= rounds; round++)); do echo "- round $round: ${summary[$loop/$tracer/$round]:-(no summary line)}"; done
  done
done

if [ ${#findings[@]} -gt 0 ]; then
  echo
  echo "### Findings"
  echo
  for f in "${findings[@]}"; do echo "- $f"; done
fi
echo
echo "### Verdict"
echo
for v in "${verdicts[@]}"; do echo "- $v"; done
[ ${#verdicts[@]} = 0 ] && echo "- (vigil trace was not measured)"
echo "<!-- END sensors -->"
