#!/usr/bin/env bash
# Builds the daemon's container image without a registry (`make image`): the release `vigil`
# built on this host, the closure of its shared libraries (ldd: the Swift runtime under
# /opt/swift, libbpf, libelf, libz, libc, the loader...), libssl/libcrypto and the CA bundle for
# the TLS actions, and the empty default directories are
# assembled into a root filesystem under .build/image/rootfs, which deploy/Dockerfile copies
# into an image FROM scratch. The legacy builder (DOCKER_BUILDKIT=0) needs no network.
#
# The image is tagged vigil:<tree> (the first 12 hex digits of the git tree hash of the working
# directory, uncommitted changes included) and vigil:latest. When vigil:<tree> exists already,
# nothing is rebuilt; images this script built for other trees are removed. The last line of
# standard output is the image reference vigil:<tree>.
#
# --binary PATH (the image test, which cannot run `swift build` inside `swift test`: SwiftPM
# holds the lock of .build): reuse vigil:<tree> when it exists, else package PATH as is into
# vigil:<tree>-dev (not tagged latest), without building.
#
# Environment: VIGIL_IMAGE_REBUILD=1 rebuilds even when the tag exists.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
binary=
case "${1:-}" in
  --binary) binary=${2:?--binary needs a path} ;;
  "") ;;
  *) echo "usage: scripts/build-image.sh [--binary PATH]" >&2; exit 2 ;;
esac
# No engine answering (a fresh machine): start one, the way everything in the project does.
scripts/docker-engine.sh >&2

# The tree hash of the working directory: a throw-away copy of the index with every change added.
index=$(mktemp)
trap 'rm -f "$index"' EXIT
cp "$(git rev-parse --git-path index)" "$index"
GIT_INDEX_FILE=$index git add -A
tree=$(GIT_INDEX_FILE=$index git write-tree)
image=vigil:${tree:0:12}
exists() { [ "${VIGIL_IMAGE_REBUILD:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

if exists "$image"; then
  echo "image: $image exists (same tree), not rebuilt" >&2
  [ -n "$binary" ] || docker tag "$image" vigil:latest
  echo "$image"
  exit 0
fi
tags=(-t "$image" -t vigil:latest) root=.build/image/rootfs
if [ -n "$binary" ]; then
  image=$image-dev root=.build/image/rootfs-dev
  tags=(-t "$image")
  if exists "$image"; then echo "image: $image exists (same tree), not rebuilt" >&2; echo "$image"; exit 0; fi
else
  swift build -c release --product vigil >&2
  binary=.build/release/vigil
fi

rm -rf "$root"
mkdir -p "$root/usr/local/bin" "$root/etc/vigil/rules.d" "$root/run/vigil" "$root/tmp" \
  "$root/proc" "$root/sys" "$root/dev"
chmod 1777 "$root/tmp"
install -m 0755 "$binary" "$root/usr/local/bin/vigil"

# Every library the loader resolves, at the path it resolves it to (so the binary's RUNPATH
# into /opt/swift keeps working), plus the loader itself at the binary's PT_INTERP path.
libraries=$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -n "$libraries" ] || { echo "build-image.sh: ldd found no libraries for $binary" >&2; exit 1; }
for library in $libraries; do
  mkdir -p "$root$(dirname "$library")"
  cp -L "$library" "$root$library"
done
# The TLS actions open libssl with dlopen on first use (ldd does not list it), and verify against
# Debian's CA bundle, which OpenSSL finds as OPENSSLDIR/cert.pem (/usr/lib/ssl/cert.pem).
for name in libssl.so.3 libcrypto.so.3; do
  # awk reads to the end: leaving early would kill ldconfig with SIGPIPE, which pipefail turns
  # into a silent exit 141 of this script.
  library=$(ldconfig -p | awk -v n="$name" '$1 == n && /x86-64/ && !found { found = $NF } END { print found }')
  [ -n "$library" ] || { echo "build-image.sh: $name not found (apt-get install libssl3)" >&2; exit 1; }
  mkdir -p "$root$(dirname "$library")"
  cp -L "$library" "$root$library"
done
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
mkdir -p "$root/usr/lib/ssl"
ln -s /etc/ssl/certs/ca-certificates.crt "$root/usr/lib/ssl/cert.pem"
if missing=$(ldd "$binary" | grep 'not found'); then
  echo "build-image.sh: unresolved libraries of $binary:" >&2
  echo "$missing" >&2
  exit 1
fi

label=org.vigil.image.builder=scripts/build-image.sh
DOCKER_BUILDKIT=0 docker build -q --label "$label" -f deploy/Dockerfile "${tags[@]}" "$root" >&2
# Earlier images of this script for other trees go (one per tree would pile up, ~120 MiB each).
for old in $(docker images --filter "label=$label" --format '{{.Repository}}:{{.Tag}}'); do
  case $old in "$image" | vigil:latest | *:"<none>") ;; *) docker rmi "$old" >/dev/null ;; esac
done
size=$(docker image inspect -f '{{.Size}}' "$image")
echo "image: $image ($(awk -v b="$size" 'BEGIN { printf "%.1f MiB", b / 1048576 }'))" >&2
echo "$image"
