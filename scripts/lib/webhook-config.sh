# scripts/lib/webhook-config.sh: sourced by scripts/bench-daemon.sh and scripts/soak.sh.

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
