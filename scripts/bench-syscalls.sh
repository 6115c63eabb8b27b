#!/usr/bin/env bash
# scripts/bench-syscalls.sh: what the syscalls sensor costs the traced workload (issue 12 §6),
# `vigil trace` next to bpftrace, `perf trace` and `strace -f`, measured side by side in one run.
#
# bench/sysloop.c, compiled here, times itself pinned to CPU 0 (the figure of a run: the 10th
# percentile of its slices' ns/step, as in scripts/bench-sensors.sh):
#   getpid   one getpid syscall per step
#   mixed    openat, fstat, read, write (/dev/null), close per step (five syscalls)
#   udp      sendto + recvfrom between two loopback UDP sockets per step (two syscalls): what
#            the default rules' DNS capture (recvfrom, dropped in the kernel unless port 53)
#            costs other UDP traffic (not in the default --loops; `--loops udp --section
#            syscalls-udp`, as `make bench` runs it)
#   tcp      one whole loopback TCP connection per step: socket, connect, accept4 and two closes
#            (five syscalls; issue 13 §4: the default rules at most 1.3x; not in the default
#            --loops: `--loops tcp --section syscalls-tcp`, as `make bench` runs it)
#   dns      one DNS lookup per step over loopback UDP: a query sent to a server socket on
#            127.0.53.1:53, received, answered, the answer received with its source address (as
#            musl's resolver does): sendto, recvfrom, sendto, recvfrom (four syscalls, two DNS
#            messages received; issue 13 §4: every query and answer delivered, zero lost; not in
#            the default --loops: `--loops dns --section syscalls-dns`, as `make bench` runs it)
# Tracers, pinned to CPU 1:
#   none          no tracer
#   vigil-openat  vigil trace --event openat (the syscalls sensor loaded, capturing openat and
#                 the fd table's syscalls on per-syscall tracepoints): what the getpid calls it
#                 does not capture pay
#   vigil-openat-generic  the same on the generic sys_enter/sys_exit hook (--syscall-hook tp_btf)
#   vigil-rules   vigil trace --alerts (the default rules: their syscalls on the hook the set's
#                 size chooses)
#   vigil-rules-generic   the same on the generic hook
#   vigil-falco   vigil trace --alerts --no-default-rules with Falco's stock rule files (issue 12
#                 §6: the mixed loop at most 1.3x while they run); only when VIGIL_FALCO_RULES
#                 names them (space separated, in Falco's load order: falco_rules.yaml first;
#                 they are Falco's, not in this repository)
#   vigil-json    vigil trace -o json --comm vb-sysloop --event <the loop's syscalls>: every
#                 syscall of the loop captured (per-syscall tracepoints) and written as JSON to a
#                 file on tmpfs
#   vigil-json-generic    the same on the generic hook
#   vigil-json-fields     vigil-json with --fields: each syscall's time, pid, tid, command, name,
#                 arguments (evt.args), result and latency, what strace and bpftrace print, not
#                 every field
#   bpftrace      raw_syscalls sys_enter+sys_exit for comm vb-sysloop, printing every syscall
#                 (id, return value, latency)
#   vigil-dns     vigil trace --alerts --no-default-rules --rules bench/dns-log.yaml -o json: one
#                 alert per DNS message received on the host (a rule reading only dns.* fields:
#                 the kernel keeps only port 53's calls), written as JSON (dns loop)
#   vigil-dns-output  the same with --output-fields output: the alerts' output_fields hold only
#                 the fields the rule's output names, as Falco's (dns loop)
#   vigil-conn    vigil trace -o json --comm vb-sysloop --event conn: the connection sensor's
#                 lifecycle events (tcp_connect, tcp_accept, tcp_close: the kernel's socket state
#                 tracepoints), written as JSON (tcp loop)
#   tcplife       libbpf-tools' tcplife (the same socket state tracepoint), one line per
#                 connection end it saw close (tcp loop; libbpf-tools' tcpconnect needs kprobes,
#                 which hosts without CONFIG_KPROBES do not have: it runs only where they exist)
#   tcpconnect    libbpf-tools' tcpconnect (kprobes on tcp_v4_connect), when this kernel has kprobes
#   perf-trace    perf trace -o FILE running the loop (every syscall of it)
#   strace        strace -f -o FILE running the loop (every syscall of it)
# Each round runs, per loop, none before and after each tracer (rotated order); a traced run's
# ratio is its figure over the median of the round's untraced runs; tables show medians over
# rounds. "lost" is steps x events-per-step minus the loop's events found in the tracer's output
# (at least 0), and for vigil also its own count of events lost in the kernel. Events per step
# are the loop's syscalls, except for the connection tracers (vigil-conn, tcplife, tcpconnect),
# whose events per connection are counted by kind, and vigil-dns*, whose are the DNS messages
# (see `events_per_step`).
#
# Prints a Markdown section between `<!-- BEGIN syscalls` and `<!-- END syscalls -->` on stdout.
# Usage (as root): scripts/bench-syscalls.sh [--rounds N] [--getpid-iterations N] [--mixed-iterations N]
#                  [--udp-iterations N] [--tcp-iterations N] [--dns-iterations N] [--loops "getpid mixed"]
#                  [--getpid-tracers "LIST"] [--mixed-tracers "LIST"] [--udp-tracers "LIST"] [--tcp-tracers "LIST"]
#                  [--dns-tracers "LIST"] [--section NAME]
#                  [--ring-mib N]
# --ring-mib N gives every vigil tracer a ring of N MiB (vigil trace --ring-mib; default 8): a ring
# that holds a whole loop's events measures the capture's cost with zero lost even where the
# JSON writer is slower than the loop.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/median.sh
export PATH=/opt/swift/usr/bin:/usr/sbin:/sbin:$PATH
invocation="scripts/bench-syscalls.sh${*:+ $*}"
rounds=3 getpid_iterations=1000000 mixed_iterations=100000 udp_iterations=200000 tcp_iterations=5000 dns_iterations=100000 loops="getpid mixed" section=syscalls
tracers_of_getpid="vigil-openat vigil-openat-generic vigil-rules vigil-rules-generic vigil-json vigil-json-generic vigil-json-fields bpftrace perf-trace strace"
tracers_of_mixed="vigil-json vigil-json-generic vigil-json-fields bpftrace perf-trace strace${VIGIL_FALCO_RULES:+ vigil-falco}"
falco_rules=()
for f in ${VIGIL_FALCO_RULES:-}; do falco_rules+=(--rules "$f"); done
tracers_of_udp="vigil-rules vigil-rules-generic vigil-json vigil-json-fields bpftrace"
tracers_of_tcp="vigil-rules vigil-rules-generic vigil-json vigil-conn tcplife bpftrace"
[ -e /sys/bus/event_source/devices/kprobe ] && tracers_of_tcp+=" tcpconnect"
tracers_of_dns="vigil-rules vigil-dns vigil-dns-output bpftrace"
vigil=${VIGIL:-.build/release/vigil}
ring_opt=""
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --getpid-iterations) getpid_iterations=$2; shift 2 ;;
    --mixed-iterations) mixed_iterations=$2; shift 2 ;;
    --udp-iterations) udp_iterations=$2; shift 2 ;;
    --udp-tracers) tracers_of_udp=$2; shift 2 ;;
    --tcp-iterations) tcp_iterations=$2; shift 2 ;;
    --tcp-tracers) tracers_of_tcp=$2; shift 2 ;;
    --dns-iterations) dns_iterations=$2; shift 2 ;;
    --dns-tracers) tracers_of_dns=$2; shift 2 ;;
    --section) section=$2; shift 2 ;;
    --loops) loops=$2; shift 2 ;;
    --getpid-tracers) tracers_of_getpid=$2; shift 2 ;;
    --mixed-tracers) tracers_of_mixed=$2; shift 2 ;;
    --ring-mib) ring_opt="--ring-mib $2"; shift 2 ;;
    *) echo "bench-syscalls: unknown option $1" >&2; exit 2 ;;
  esac
done
log() { echo "bench-syscalls: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "run as root"; exit 1; }
[ -x "$vigil" ] || { log "$vigil missing: swift build -c release --product vigil"; exit 1; }
work=$(mktemp -d /dev/shm/vigil-bench-syscalls.XXXXXX)
tracer_pid=""
cleanup() { [ -n "$tracer_pid" ] && kill -INT "$tracer_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cc -O2 -Wall -Wextra -o "$work/vb-sysloop" bench/sysloop.c
head -c 4096 /dev/urandom > "$work/target"
declare -A per_step=([getpid]=1 [mixed]=5 [udp]=2 [tcp]=5 [dns]=4)
declare -A iterations=([getpid]=$getpid_iterations [mixed]=$mixed_iterations [udp]=$udp_iterations [tcp]=$tcp_iterations [dns]=$dns_iterations)
declare -A syscalls_of=([getpid]=getpid [mixed]=openat,fstat,read,write,close [udp]=sendto,recvfrom [tcp]=socket,connect,accept4,close [dns]=sendto,recvfrom)
declare -A ids_of=([getpid]="39" [mixed]="257 5 0 1 3" [udp]="44 45" [tcp]="41 42 288 3" [dns]="44 45")   # x86_64 numbers, for bpftrace's output
# Events per step of the tracers that report other things than syscalls: vigil-conn's
# tcp_connect, tcp_accept and the two ends' tcp_close, tcplife's line per end, tcpconnect's line
# per connect (tcp loop); vigil-dns's query and answer (dns loop).
declare -A tracer_events_per_step=([vigil-conn]=4 [tcplife]=2 [tcpconnect]=1 [vigil-dns]=2 [vigil-dns-output]=2)
events_per_step() { echo "${tracer_events_per_step[$2]:-${per_step[$1]}}"; }

loop_cmd() { echo taskset -c 0 "$work/vb-sysloop" "$1" "$work/target" "${iterations[$1]}" 20 200; }
field() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<< "$2"; }

# run LOOP TRACER: prints "p10_ns steps found vigil_lost"
run() {
  local loop=$1 tracer=$2 out=$work/out err=$work/err result found=0 vlost=0
  rm -f "$out" "$err"; tracer_pid=""
  case $tracer in
    none) result=$($(loop_cmd $loop)) ;;
    vigil-*)
      case $tracer in
        vigil-openat) taskset -c 1 $vigil trace $ring_opt -o json --event openat --output "$out" 2> "$err" & ;;
        vigil-openat-generic) taskset -c 1 $vigil trace $ring_opt -o json --event openat --syscall-hook tp_btf --output "$out" 2> "$err" & ;;
        vigil-rules) taskset -c 1 $vigil trace $ring_opt --alerts -o json --output "$out" 2> "$err" & ;;
        vigil-rules-generic) taskset -c 1 $vigil trace $ring_opt --alerts -o json --syscall-hook tp_btf --output "$out" 2> "$err" & ;;
        vigil-falco) taskset -c 1 $vigil trace $ring_opt --alerts --no-default-rules "${falco_rules[@]}" -o json --output "$out" 2> "$err" & ;;
        vigil-json) taskset -c 1 $vigil trace $ring_opt -o json --comm vb-sysloop --event ${syscalls_of[$loop]} --output "$out" 2> "$err" & ;;
        vigil-json-generic) taskset -c 1 $vigil trace $ring_opt -o json --comm vb-sysloop --event ${syscalls_of[$loop]} --syscall-hook tp_btf --output "$out" 2> "$err" & ;;
        vigil-json-fields) taskset -c 1 $vigil trace $ring_opt -o json --comm vb-sysloop --event ${syscalls_of[$loop]} --output "$out" \
          --fields evt.time,proc.pid,thread.tid,proc.name,evt.type,evt.args,evt.res,evt.latency 2> "$err" & ;;
        vigil-conn) taskset -c 1 $vigil trace $ring_opt -o json --comm vb-sysloop --event conn --output "$out" 2> "$err" & ;;
        vigil-dns) taskset -c 1 $vigil trace $ring_opt --alerts --no-default-rules --rules bench/dns-log.yaml -o json --output "$out" 2> "$err" & ;;
        vigil-dns-output) taskset -c 1 $vigil trace $ring_opt --alerts --no-default-rules --rules bench/dns-log.yaml -o json --output-fields output --output "$out" 2> "$err" & ;;
      esac
      tracer_pid=$!
      for _ in $(seq 600); do grep -qs "^vigil: tracing" "$err" && break; sleep 0.1; done
      result=$($(loop_cmd $loop))
      sleep 0.5; kill -INT $tracer_pid; wait $tracer_pid || true; tracer_pid=""
      log "$tracer: $(grep -E 'syscalls/|no tracepoint' "$err" | tr '\n' ' ')"
      if [[ $tracer == vigil-json* || $tracer == vigil-conn || $tracer == vigil-dns* ]]; then
        found=$(grep -c '"proc.name":"vb-sysloop"' "$out" || true)
        vlost=$(sed -n 's/.* \([0-9]*\) lost.*/\1/p' "$err" | tail -1)
      fi ;;
    bpftrace)
      taskset -c 1 bpftrace -e 'tracepoint:raw_syscalls:sys_enter /comm == "vb-sysloop"/ { @start[tid] = nsecs; }
        tracepoint:raw_syscalls:sys_exit /comm == "vb-sysloop" && @start[tid]/ { printf("%d %d %d %d\n", pid, args->id, args->ret, nsecs - @start[tid]); delete(@start[tid]); }' > "$out" 2> "$err" &
      tracer_pid=$!
      for _ in $(seq 600); do bpftool perf list 2>/dev/null | grep -q "^pid $tracer_pid .*sys_exit" && break; sleep 0.1; done
      result=$($(loop_cmd $loop))
      sleep 0.5; kill -INT $tracer_pid; wait $tracer_pid || true; tracer_pid=""
      found=$(awk -v ids="${ids_of[$loop]}" 'BEGIN { n = split(ids, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1 } NF == 4 && ($2 in want)' "$out" | wc -l) ;;
    tcplife | tcpconnect)
      taskset -c 1 $tracer > "$out" 2> "$err" &
      tracer_pid=$!
      for _ in $(seq 600); do bpftool link list 2>/dev/null | grep -q "pid $tracer_pid\b" && break; bpftool perf list 2>/dev/null | grep -q "^pid $tracer_pid " && break; sleep 0.1; done
      result=$($(loop_cmd $loop))
      sleep 0.5; kill -INT $tracer_pid; wait $tracer_pid || true; tracer_pid=""
      found=$(grep -c ' vb-sysloop ' "$out" || true) ;;
    perf-trace)
      result=$(taskset -c 1 perf trace -o "$out" -- $(loop_cmd $loop) 2> "$err")
      found=$(grep -cE " (${syscalls_of[$loop]//,/|})\(" "$out" || true) ;;
    strace)
      result=$(taskset -c 1 strace -f -o "$out" $(loop_cmd $loop) 2> "$err")
      found=$(grep -cE "^[0-9]+ +(${syscalls_of[$loop]//,/|})\(" "$out" || true) ;;
  esac
  echo "$(field p10_ns "$result") $(field steps "$result") $found ${vlost:-0}"
}

declare -A ratios lost
for ((r = 1; r <= rounds; r++)); do
  for loop in $loops; do
    eval "list=(\$tracers_of_$loop)"
    list=("${list[@]:$(( (r - 1) % ${#list[@]} ))}" "${list[@]:0:$(( (r - 1) % ${#list[@]} ))}")
    base=() traced=()
    read -r ns _ <<< "$(run $loop none)"; base+=($ns)
    for t in "${list[@]}"; do
      read -r ns steps found vlost <<< "$(run $loop $t)"
      traced+=("$t $ns $steps $found $vlost")
      read -r b _ <<< "$(run $loop none)"; base+=($b)
      log "round $r $loop $t: ${ns} ns/step (untraced ${b}), steps $steps, found $found, vigil lost $vlost"
    done
    median=$(median "${base[@]}")
    ratios[$loop,none]+="$median "
    for entry in "${traced[@]}"; do
      read -r t ns steps found vlost <<< "$entry"
      ratios[$loop,$t]+="$(awk -v a=$ns -v b=$median 'BEGIN { printf "%.2f", a / b }') "
      expected=$(( steps * $(events_per_step $loop $t) ))
      missing=$(( expected - found )); [ $missing -lt 0 ] && missing=0
      lost[$loop,$t]+="$(( missing > vlost ? missing : vlost ))/$expected "
    done
  done
done

med() { median <<< "$1"; }
echo "<!-- BEGIN $section (generated by $invocation) -->"
echo "\`$invocation\` on $(uname -r), $(nproc) CPUs, $(date -u +%F): $rounds rounds, median ratio over rounds, loop on CPU 0, tracer on CPU 1, vigil binary \`$vigil\`; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
for loop in $loops; do
  eval "list=(\$tracers_of_$loop)"
  echo "**$loop loop** (${iterations[$loop]} timed steps of ${per_step[$loop]} syscall(s); untraced: $(med "${ratios[$loop,none]}") ns/step)"
  echo
  echo "| tracer | slowdown | per round | events lost (missing/expected, per round) |"
  echo "|---|---|---|---|"
  for t in "${list[@]}"; do
    echo "| $t | $(med "${ratios[$loop,$t]}")x | ${ratios[$loop,$t]% } | $([[ $t == vigil-openat* || $t == vigil-rules* || $t == vigil-falco ]] && echo "n/a (not captured)" || echo "${lost[$loop,$t]% }") |"
  done
  echo
done
echo "<!-- END $section -->"
