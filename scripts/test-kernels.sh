#!/usr/bin/env bash
# Runs vigil-kernel-check inside Debian's 6.1 and 6.12 kernels under qemu (software emulation),
# where kprobe, fentry and BPF-LSM exist: each variant chain must choose that hook and deliver
# events. The host's / is shared read-only, so the freshly built binary runs as is.
# Without the kernels installed the run is skipped with the reason, and fails under
# VIGIL_REQUIRE_BPF=1 (CI).
set -uo pipefail
cd "$(dirname "$0")/.."
swift build --product vigil-kernel-check >/dev/null || exit 1
bin=.build/debug/vigil-kernel-check
# The guest's active LSMs must include bpf for BPF-LSM programs to attach.
export KVMTEST_APPEND="lsm=lockdown,capability,landlock,yama,apparmor,bpf"
failed=0 ran=0
run() { # KERNEL-GLOB FEATURES...
  local glob=$1; shift
  local image; image=$(ls /boot/vmlinuz-$glob 2>/dev/null | sort -V | tail -1)
  if [ -z "$image" ]; then
    echo "test-kernels: SKIP $glob: no /boot/vmlinuz-$glob (scripts/setup.sh --test installs it)"
    [ "${VIGIL_REQUIRE_BPF:-0}" = 1 ] && failed=$((failed + 1))
    return
  fi
  local version=${image#/boot/vmlinuz-}
  echo "test-kernels: $version (qemu): requires $*"
  if scripts/run-in-kernel.sh "$version" "$bin" "$@"; then ran=$((ran + 1)); else failed=$((failed + 1)); fi
}
run '6.1.*-amd64' attach:kprobe attach:fentry attach:lsm
run '6.12.*-amd64' attach:kprobe attach:kprobe.multi attach:fentry attach:lsm
echo "test-kernels: $ran kernels ok, $failed failed"
[ $failed = 0 ]
