# scripts/lib/webhook-config.sh: sourced by scripts/bench-daemon.sh, scripts/bench-fim.sh and scripts/soak.sh.

# webhook_config WORK PORT [LINE]: writes WORK/vigil.yaml for a daemon with its API socket and
# rules directory under WORK, no default actions, deduplication off and one named webhook action,
# `hook`, posting to 127.0.0.1:PORT; LINE (e.g. `kernel_pushdown: false`) is added at the top.
webhook_config() {
  local work=$1 port=$2 line=${3:-}
  mkdir -p "$work/rules.d"
  {
    echo "socket: $work/vigil.sock"
    echo "rules_dir: $work/rules.d"
    [ -n "$line" ] && echo "$line"
    cat <<CONF
actions:
  default_actions: []
  dedup: {window: 0}
  named:
    hook: {type: webhook, url: "http://127.0.0.1:$port/"}
CONF
  } > "$work/vigil.yaml"
}

# bench_daemon_setup NAME: for the daemon benchmarks (scripts/bench-daemon.sh, bench-fim.sh):
# `vigil` (VIGIL, default the release build), `work` (a fresh /tmp/vigil-bench-NAME.XXXXXX),
# `daemon_pid` and `receiver_pid` (empty), and an EXIT trap that stops both and removes `work`.
bench_daemon_setup() {
  vigil=${VIGIL:-$PWD/.build/release/vigil}
  work=$(mktemp -d "/tmp/vigil-bench-$1.XXXXXX")
  daemon_pid= receiver_pid=
  trap bench_daemon_cleanup EXIT
}
bench_daemon_cleanup() {
  [ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -n "$receiver_pid" ] && kill "$receiver_pid" 2>/dev/null
  rm -rf "$work"
}
