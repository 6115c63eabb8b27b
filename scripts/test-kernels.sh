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
# One vCPU: with two, qemu's software emulation (TCG) sometimes livelocked both vCPUs in
# do_syscall_64 at a jump-label site right after the check switched syscall tracepoints on and
# off (the kernel patches that code while the other vCPU runs it): an RCU stall, soft lockups
# and no summary until the timeout (2 runs of 13 on 2026-12-04, 6.1 and 6.12; 0 of 16 with one
# vCPU, which is also faster: ~27 s a kernel instead of ~45 s). A normal run takes well under a
# minute, so a stuck VM is stopped after 5 minutes and tried once more, not after 15.
export KVMTEST_CPUS=${KVMTEST_CPUS:-1}
export KVMTEST_TIMEOUT=${KVMTEST_TIMEOUT:-300}
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
  local log rc attempt
  log=$(mktemp)
  for attempt in 1 2; do
    scripts/run-in-kernel.sh "$version" "$bin" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    # The check always ends with its summary line. Without it and with run-in-kernel's "no exit
    # status came back" (255) or qemu's timeout (124), the VM itself failed (boot, 9p), not a
    # check: that, and only that, is tried once more. A crash of the check is a failure.
    grep -q '^kernel-check: ' "$log" && break
    [ "$rc" = 255 ] || [ "$rc" = 124 ] || break
    echo "test-kernels: $version: the VM ended without the check's summary (exit $rc), attempt $attempt of 2"
  done
  if [ "$rc" = 0 ]; then ran=$((ran + 1)); else
    failed=$((failed + 1))
    summary+="test-kernels: FAILED on $version (exit $rc):"$'\n'"$(grep -E '^(FAIL|kernel-check:|kvmtest:)' "$log" || tail -5 "$log")"$'\n'
  fi
  rm -f "$log"
}
summary=
run '6.1.*-amd64' attach:kprobe attach:fentry attach:lsm
run '6.12.*-amd64' attach:kprobe attach:kprobe.multi attach:fentry attach:lsm
# The failures again at the end, where a CI log's tail shows them.
printf '%s' "$summary"
echo "test-kernels: $ran kernels ok, $failed failed"
[ $failed = 0 ]
