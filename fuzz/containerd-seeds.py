#!/usr/bin/env python3
# Writes the containerd fuzz seeds that carry header blocks (fuzz/corpus/containerd/*.bin but
# message-only, reset and goaway, which it leaves alone): HTTP/2 frames around HPACK blocks
# written by PyPI's hpack (scripts/setup.sh --test installs it), as a gRPC server's encoder
# writes them. The first byte of each seed is the fuzz target's read size. The gRPC message is
# message-only.bin's GetContainerResponse. Run: python3 fuzz/containerd-seeds.py
import os
from hpack import Encoder
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'containerd'))
response = open('message-only.bin', 'rb').read()[1:]
msg = b'\x00' + len(response).to_bytes(4, 'big') + response
def frame(t, f, s, p): return len(p).to_bytes(3, 'big') + bytes([t, f]) + s.to_bytes(4, 'big') + p
settings = frame(4, 0, 0, bytes.fromhex('000300000064000400ffff00')) + frame(8, 0, 0, (1 << 20).to_bytes(4, 'big')) + frame(4, 1, 0, b'')
def found(enc, stream, padded=False, split=False):
    head = enc.encode([(':status', '200'), ('content-type', 'application/grpc')])
    trailers = enc.encode([('grpc-status', '0'), ('grpc-message', '')])
    out = b''
    if padded:  # PADDED + PRIORITY
        out += frame(1, 0x4 | 0x8 | 0x20, stream, bytes([3]) + bytes(5) + head + bytes(3))
        out += frame(0, 0x8, stream, bytes([2]) + msg + bytes(2))
    elif split:
        out += frame(1, 0x4, stream, head)
        out += frame(0, 0, stream, msg[:40]) + frame(0, 0, stream, msg[40:])
    else:
        out += frame(1, 0x4, stream, head) + frame(0, 0, stream, msg)
    if split:  # trailers in HEADERS + CONTINUATION
        out += frame(1, 0x1, stream, trailers[:3]) + frame(9, 0x4, stream, trailers[3:])
    else:
        out += frame(1, 0x5, stream, trailers)
    return out
def status(enc, stream, code, message):
    return frame(1, 0x5, stream, enc.encode([(':status', '200'), ('content-type', 'application/grpc'), ('grpc-status', str(code)), ('grpc-message', message)]))
notfound = 'container %22abc%22 in namespace %22k8s.io%22: not found'
invalid = 'namespace validation: identifier %22na%C3%AFve%22 must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$: invalid argument'
seeds = {
    'found.bin': (0xff, settings + found(Encoder(), 1)),
    'found-padded.bin': (0x1f, settings + found(Encoder(), 1, padded=True)),
    'found-split-data.bin': (0x07, settings + found(Encoder(), 1, split=True)),
    'not-found.bin': (0x3f, settings + status(Encoder(), 1, 5, notfound)),
    'invalid-argument.bin': (0x2f, settings + status(Encoder(), 1, 3, invalid)),
}
enc = Encoder()  # one connection: the second and third answers reuse the first's table entries
seeds['not-found-then-found.bin'] = (0x0b, settings + status(enc, 1, 5, notfound) + status(enc, 3, 5, notfound) + found(enc, 5))
enc = Encoder()
enc.header_table_size = 0
seeds['http-503-table-size-0.bin'] = (0x13, settings + frame(1, 0x5, 1, enc.encode([(':status', '503'), ('content-type', 'text/plain')])))
for name, (first, body) in seeds.items():
    open(name, 'wb').write(bytes([first]) + body)
