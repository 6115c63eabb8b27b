#!/usr/bin/env bash
# Installs what Vigil needs on a Debian 12 machine and prepares the kernel interfaces.
#   scripts/setup.sh          build + run: libbpf, libssl (the actions' TLS), bpftool; tracefs and bpffs mounted
#   scripts/setup.sh --test   also what the tests use: qemu + Debian's 6.1/6.12 kernels, Docker,
#                             aiosmtpd (the SMTP server the email action is tested against),
#                             nats-server (the JetStream server the nats action and `vigil fleet` are tested against),
#                             openssl (the CLI that makes the TLS tests' throw-away CA),
#                             curl and setpriv (the daemon tests' API client and non-root peer)
#                             btrfs-progs (a hard link on btrfs), gdb (closes a link fd in the daemon: tamper tests),
#                             PyPI's regopy 1.5.2 (the Rego engine behind the policy tests' OPA-compatible server)
#                             PyPI's hpack 4.1.0 (the HPACK decoder tests' independent encoder)
#                             and a running Docker engine (scripts/docker-engine.sh starts dockerd
#                             when none answers)
#   scripts/setup.sh --image  also Docker and a running engine (`make image`)
#   scripts/setup.sh --bench  also the peers the benchmarks compare with (bpftrace, libbpf-tools)
# Idempotent: installs only what is missing (apt-get update once, only when installing).
set -euo pipefail
mode=${1:-run}

need=(libbpf-dev libssl-dev ca-certificates bpftool pkg-config make)
case $mode in
  --test) need+=(qemu-system-x86 busybox-static kmod cpio xz-utils zstd linux-image-amd64 linux-image-6.12-amd64 docker.io containerd criu aide python3-aiosmtpd python3-pip nats-server openssl curl util-linux btrfs-progs gdb socat gcc) ;;
  --image) need+=(docker.io) ;;
  --bench) need+=(bpftrace libbpf-tools hyperfine curl linux-perf strace) ;;
  run) ;;
  *) echo "usage: scripts/setup.sh [--test | --image | --bench]" >&2; exit 2 ;;
esac

if [ "$(id -u)" != 0 ]; then
  echo "setup: Vigil loads eBPF programs and needs root; run as root (or via sudo)." >&2
  exit 1
fi

missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null; then
  if [ -x /opt/swift/usr/bin/swift ]; then
    echo "setup: swift is at /opt/swift/usr/bin (the Makefile adds it to PATH)"
  else
    echo "setup: no Swift toolchain found: install Swift 6.1 or later (swift.org) into /opt/swift" >&2
    exit 1
  fi
fi

# tracefs: perf tracepoints need it, and a fresh machine often has an empty /sys/kernel/tracing.
if [ ! -d /sys/kernel/tracing/events ]; then
  mount -t tracefs nodev /sys/kernel/tracing && echo "setup: mounted tracefs at /sys/kernel/tracing"
fi
# bpffs: where pinned objects live.
if ! mountpoint -q /sys/fs/bpf; then
  mount -t bpf bpf /sys/fs/bpf && echo "setup: mounted bpffs at /sys/fs/bpf"
fi
# The Rego engine of the policy tests (Tests/Fixtures/opa-server.py): PyPI's regopy, for the
# python3 found on PATH (Debian's own python3 refuses a system-wide pip install without
# --break-system-packages).
if [ "$mode" = --test ] && ! python3 -c 'import regopy' 2>/dev/null; then
  echo "setup: installing regopy 1.5.2 (pip)"
  python3 -m pip install -q regopy==1.5.2 2>/dev/null || python3 -m pip install -q --break-system-packages regopy==1.5.2
fi
# The independent HPACK encoder of the HPACK decoder's tests (HPACKTests) and of
# fuzz/containerd-seeds.py: PyPI's hpack, for the same python3.
if [ "$mode" = --test ] && ! python3 -c 'import hpack' 2>/dev/null; then
  echo "setup: installing hpack 4.1.0 (pip)"
  python3 -m pip install -q hpack==4.1.0 2>/dev/null || python3 -m pip install -q --break-system-packages hpack==4.1.0
fi
# A Docker engine for the Docker tests and the image (none runs right after apt-get install
# docker.io on a machine without systemd).
case $mode in
  --test | --image) "$(dirname "$0")/docker-engine.sh" ;;
esac
exit 0
