#!/usr/bin/env python3
"""Copies the kernel's own BTF (what /sys/kernel/btf/vmlinux shows on that kernel) out of an
uncompressed kernel image such as arm64's Image (Debian's arm64 vmlinuz is one): the .BTF section
is loaded as is, so it is found by its header (magic 0xeb9f, version 1, a 24-byte header, types
first and strings right after them). Usage: btf-from-image.py IMAGE OUT.btf"""
import struct
import sys

image, out = sys.argv[1], sys.argv[2]
data = open(image, 'rb').read()
header = struct.pack('<HBBI', 0xEB9F, 1, 0, 24)
found = []
at = data.find(header)
while at >= 0:
    type_off, type_len, str_off, str_len = struct.unpack_from('<IIII', data, at + 8)
    # The kernel's BTF: types at offset 0, strings right after, megabytes of them (a module's or a
    # stray match is far smaller or inconsistent).
    if type_off == 0 and str_off == type_len and type_len > 1_000_000 and at + 24 + type_len + str_len <= len(data):
        found.append((at, 24 + type_len + str_len))
    at = data.find(header, at + 1)
if len(found) != 1:
    sys.exit(f"btf-from-image.py: {image}: expected one kernel BTF blob, found {len(found)} (is the image compressed?)")
at, size = found[0]
with open(out, 'wb') as f:
    f.write(data[at:at + size])
print(f"btf-from-image.py: {image}: {size} bytes of BTF at offset {at}", file=sys.stderr)
