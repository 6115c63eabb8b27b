#!/usr/bin/env bash
# Makes sure a Docker engine answers; the one way the project starts one: `make test` and
# `make image` (scripts/setup.sh --test / --image), scripts/build-image.sh, and the tests
# (Sources/VigilTestSupport/DockerTestEngine.swift) all call this script.
#
# When no engine answers on the socket (and no dockerd of that pidfile is still starting), it
# starts, as root,
#     dockerd --iptables=false --bridge=none --data-root /var/lib/docker >/var/log/dockerd.log 2>&1 &
# detached: its own session, stdin from /dev/null, none of the caller's other descriptors (a
# caller that waits for every holder of its pipes, as Foundation's Process does, is not kept
# waiting by dockerd), then waits up to 60 s for the socket to answer.
#
#   scripts/docker-engine.sh [--socket PATH] [--data-root DIR] [--log FILE] [-- DOCKERD-ARGS...]
#
# --socket (default: DOCKER_HOST's path when it is unix://PATH, else /var/run/docker.sock) other
# than /var/run/docker.sock adds --host unix://PATH, and
# DOCKERD-ARGS are passed on (e.g. --exec-root DIR --pidfile FILE): a second, private engine,
# which is how this script is tested without touching the machine's engine
# (Tests/VigilContainersTests/DockerEngineScriptTests.swift).
# Exit 0 once the engine answers (it says when it started one); 1 with the reason and the end of
# dockerd's log otherwise.
set -euo pipefail

socket=/var/run/docker.sock data_root=/var/lib/docker log=/var/log/dockerd.log
case ${DOCKER_HOST:-} in unix://*) socket=${DOCKER_HOST#unix://} ;; esac
while [ $# -gt 0 ]; do
  case $1 in
    --socket) socket=${2:?--socket needs a path}; shift 2 ;;
    --data-root) data_root=${2:?--data-root needs a directory}; shift 2 ;;
    --log) log=${2:?--log needs a file}; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: scripts/docker-engine.sh [--socket PATH] [--data-root DIR] [--log FILE] [-- DOCKERD-ARGS...]" >&2; exit 2 ;;
  esac
done
extra=("$@")

answers() { docker -H "unix://$socket" info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

if ! command -v docker >/dev/null || ! command -v dockerd >/dev/null; then
  echo "docker-engine.sh: docker/dockerd not found: apt-get install docker.io (scripts/setup.sh --test does)" >&2
  exit 1
fi
answers && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "docker-engine.sh: no Docker engine answers on $socket, and starting dockerd needs root" >&2
  exit 1
fi

args=(--iptables=false --bridge=none --data-root "$data_root")
[ "$socket" = /var/run/docker.sock ] || args+=(--host "unix://$socket")
args+=("${extra[@]}")
pidfile=/var/run/docker.pid
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[i]}" = --pidfile ] && pidfile=${args[i + 1]}; done

pid=
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  pid=$(cat "$pidfile")
  echo "docker-engine.sh: dockerd (pid $pid) is running but $socket does not answer yet; waiting for it" >&2
else
  mkdir -p "$(dirname "$log")"
  (
    # dockerd 20.10 drops descriptors it inherits, but only the log and /dev/null are meant for it.
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      [ "$fd" -gt 2 ] && eval "exec $fd>&-"
    done
    exec setsid dockerd "${args[@]}" </dev/null >"$log" 2>&1
  ) &
  pid=$!
  echo "docker-engine.sh: started dockerd ${args[*]} (pid $pid, log $log)" >&2
fi

for _ in $(seq 1 240); do
  if answers; then
    echo "docker-engine.sh: the engine answers on $socket" >&2
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "docker-engine.sh: dockerd (pid $pid) exited; $log ends:" >&2
    tail -n 15 "$log" >&2 || true
    exit 1
  fi
  sleep 0.25
done
echo "docker-engine.sh: dockerd (pid $pid) did not answer on $socket within 60 s; $log ends:" >&2
tail -n 15 "$log" >&2 || true
exit 1
