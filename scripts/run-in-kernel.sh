#!/bin/bash
# run-in-kernel.sh KERNEL_VERSION CMD [ARGS...]   (Vigil's copy of the team's qemu runner)
# Boot /boot/vmlinuz-KERNEL_VERSION (e.g. 6.1.0-56-amd64, 6.12.117+deb12-amd64) in
# qemu-system-x86_64 and run CMD inside it as root, in the current directory.
# The guest sees the host's / read-only through 9p with a tmpfs overlay on top
# (guest writes are thrown away). proc, sys, devtmpfs, tracefs, debugfs, bpffs,
# securityfs and cgroup2 are mounted. Exit status = CMD's exit status.
#
# Env knobs:
#   KVMTEST_ACCEL=tcg|kvm  (default tcg: /dev/kvm on these machines is nested PVM virtualisation,
#                           which cannot run stock kernels)
#   KVMTEST_CPUS=2  KVMTEST_MEM=2G  KVMTEST_TIMEOUT=900 (seconds)
#   KVMTEST_APPEND="..."   extra kernel cmdline (e.g. lsm=...)
#   KVMTEST_VERBOSE=1      show kernel boot log on the console
#   KVMTEST_KERNEL=/path/vmlinuz  KVMTEST_MODDIR=/path/lib/modules/VER  (override)
set -euo pipefail
if [ $# -lt 2 ]; then echo "usage: $0 KERNEL_VERSION CMD [ARGS...]" >&2; exit 2; fi
KVER=$1; shift
BASE=${KVMTEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/run-in-kernel}
KERNEL=${KVMTEST_KERNEL:-/boot/vmlinuz-$KVER}
MODDIR=${KVMTEST_MODDIR:-/lib/modules/$KVER}
[ -r "$KERNEL" ] || { echo "no kernel $KERNEL" >&2; exit 2; }
[ -d "$MODDIR" ] || { echo "no modules $MODDIR" >&2; exit 2; }

# ---- build (and cache) a tiny busybox initramfs with the 9p/overlay modules ----
CACHE=$BASE/cache; mkdir -p "$CACHE"
INITRD=$CACHE/initramfs-$KVER.cpio.gz
if [ ! -s "$INITRD" ] || [ "$INITRD" -ot "$0" ]; then
  ST=$(mktemp -d "$CACHE/stage.XXXXXX")
  mkdir -p "$ST"/{bin,dev,proc,sys,mnt,lib/modules}
  cp /bin/busybox "$ST/bin/busybox"        # busybox-static
  mknod -m 600 "$ST/dev/console" c 5 1; mknod -m 666 "$ST/dev/null" c 1 3
  : > "$ST/modules.order"
  for m in virtio_pci 9pnet_virtio 9p overlay; do
    MB=${MODDIR%/lib/modules/$KVER}; modprobe -d "${MB:-/}" -S "$KVER" --show-depends "$m" 2>/dev/null | awk '$1=="insmod"{print $2}' |
    while read -r ko; do
      n=$(basename "$ko"); n=${n%.xz}; n=${n%.zst}; n=${n%.gz}
      grep -qx "$n" "$ST/modules.order" && continue
      case $ko in *.xz) xz -dc "$ko";; *.zst) zstd -qdc "$ko";; *.gz) gzip -dc "$ko";; *) cat "$ko";; esac > "$ST/lib/modules/$n"
      echo "$n" >> "$ST/modules.order"
    done
  done
  cat > "$ST/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
for m in $(cat /modules.order); do insmod /lib/modules/$m 2>/dev/null || echo "kvmtest: insmod $m failed"; done
CMD=$(sed -n 's/.*kvmtest\.cmd=\([^ ]*\).*/\1/p' /proc/cmdline)
mkdir -p /mnt/host /mnt/rw /mnt/root /mnt/out
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /mnt/host || { echo "kvmtest: 9p root mount failed"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 kvmout /mnt/out
mount -t tmpfs -o mode=755 tmpfs /mnt/rw; mkdir -p /mnt/rw/u /mnt/rw/w
if ! mount -t overlay overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/u,workdir=/mnt/rw/w /mnt/root; then
  echo "kvmtest: overlay failed, using read-only root"; mount --bind /mnt/host /mnt/root; mount -t tmpfs tmpfs /mnt/root/tmp 2>/dev/null
fi
R=/mnt/root
mount -t proc proc $R/proc; mount -t sysfs sys $R/sys; mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm; mount -t devpts devpts $R/dev/pts; mount -t tmpfs tmpfs $R/dev/shm
mount -t tmpfs tmpfs $R/run
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t bpf bpf $R/sys/fs/bpf 2>/dev/null
mount -t securityfs securityfs $R/sys/kernel/security 2>/dev/null
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null
stty -F /dev/console -onlcr 2>/dev/null
HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin chroot $R /bin/sh "$CMD" </dev/null
echo $? > /mnt/out/rc
sync; poweroff -f
EOF
  chmod +x "$ST/init"
  (cd "$ST" && find . | cpio -o -H newc --quiet | gzip -1) > "$INITRD.tmp" && mv "$INITRD.tmp" "$INITRD"
  rm -rf "$ST"
fi

# ---- per-run dir (rw 9p share for the exit code) + command script ----
mkdir -p "$BASE/runs"
RUN=$(mktemp -d "$BASE/runs/r.XXXXXX")
trap 'rm -rf "$RUN"' EXIT
{ printf 'cd %q 2>/dev/null || cd /\n' "$PWD"; printf '%q ' "$@"; echo; } > "$RUN/cmd.sh"
echo 255 > "$RUN/rc"

QUIET="quiet loglevel=0"; [ "${KVMTEST_VERBOSE:-0}" = 1 ] && QUIET=""
if [ "${KVMTEST_ACCEL:-tcg}" = kvm ]; then ACCEL=(-enable-kvm -cpu host,-arch-capabilities)
else ACCEL=(-accel tcg,thread=multi -cpu max); fi

timeout "${KVMTEST_TIMEOUT:-900}" qemu-system-x86_64 "${ACCEL[@]}" -nodefaults -no-user-config \
  -machine pc -smp "${KVMTEST_CPUS:-2}" -m "${KVMTEST_MEM:-2G}" -display none -no-reboot \
  -chardev stdio,id=con,signal=off -serial chardev:con \
  -fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=root,mount_tag=hostroot \
  -fsdev local,id=out,path="$RUN",security_model=none \
  -device virtio-9p-pci,fsdev=out,mount_tag=kvmout \
  -kernel "$KERNEL" -initrd "$INITRD" \
  -append "console=ttyS0 panic=-1 $QUIET rdinit=/init kvmtest.cmd=$RUN/cmd.sh ${KVMTEST_APPEND:-}" </dev/null
rc=$(cat "$RUN/rc" 2>/dev/null || echo 255)
exit "$rc"
