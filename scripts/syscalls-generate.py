#!/usr/bin/env python3
"""Generates everything that comes from bpf/syscalls/syscalls.table (the one table of syscalls):
  Sources/VigilEvents/Generated/Syscalls.swift   the descriptors (SyscallDescriptor), DO NOT EDIT
  docs/syscalls.md                               the table for people, DO NOT EDIT
Usage: scripts/syscalls-generate.py ROOT OUTDIR (check-generated passes a temporary OUTDIR).
Errors name the table's file and line."""
import os
import re
import sys

root, out = sys.argv[1], sys.argv[2]
TABLE = "bpf/syscalls/syscalls.table"
CATEGORIES = ["fs", "net", "proc", "ipc", "mem", "signal", "time", "user", "system", "sleep", "other"]
FLAGS = {"fd_create": "fdCreate", "fd_close": "fdClose", "uses_fd": "usesFD", "reads": "reads", "writes": "writes",
         "state": "state", "noreturn": "noReturn"}
SIMPLE = {"int", "uint", "hex", "fd", "pid", "uid", "gid", "mode", "signal", "timespec", "string", "fdpair"}
SETS = {"flags": ["open", "prot", "mmap", "clone", "access", "at", "rename", "memfd", "sockflags", "wait", "flock",
                  "mount", "umount"],
        "enum": ["af", "sock", "fcntl", "ptrace", "prctl", "whence", "madvise", "clock", "shut", "bpf"]}


def fail(line, message):
    sys.exit(f"{TABLE}:{line}: {message}")


def swift_type(lineno, text, params):
    """The Swift SyscallValueType expression of a table type."""
    names = [p[0] for p in params]
    if text in SIMPLE:
        return ".fdPair" if text == "fdpair" else "." + text
    m = re.fullmatch(r"(path|buffer|sockaddr|flags|enum)(?:\((\*?)(\w*)\))?", text)
    if not m:
        fail(lineno, f"unknown type '{text}'")
    kind, star, arg = m.groups()
    if kind == "path":
        if not arg:
            return ".path(dirfd: -1)"
        if arg not in names:
            fail(lineno, f"path({arg}): no argument named '{arg}'")
        return f".path(dirfd: {names.index(arg)})"
    if kind == "buffer":
        if arg == "ret":
            return ".buffer(length: -1)"
        if arg not in names:
            fail(lineno, f"buffer({arg}): no argument named '{arg}'")
        return f".buffer(length: {names.index(arg)})"
    if kind == "sockaddr":
        if arg not in names:
            fail(lineno, f"sockaddr({arg}): no argument named '{arg}'")
        return f".sockaddr(length: {names.index(arg)}, lengthIsPointer: {'true' if star else 'false'})"
    if arg not in SETS[kind]:
        fail(lineno, f"{kind}({arg}): unknown set (known: {', '.join(SETS[kind])})")
    return f".{'flags' if kind == 'flags' else 'enumeration'}(.{arg})"


rows = []
seen = set()
for lineno, line in enumerate(open(os.path.join(root, TABLE)), 1):
    if not line.strip() or line.startswith("#"):
        continue
    cols = line.split()
    if len(cols) < 8:
        fail(lineno, f"expected 8 columns (name x86_64 arm64 tracefs categories flags result params), got {len(cols)}")
    name, x86, arm, tracefs, cats, flags, result = cols[:7]
    if name in seen:
        fail(lineno, f"'{name}' appears twice")
    seen.add(name)
    params = []
    if cols[7:] != ["-"]:
        for token in cols[7:]:
            parts = token.split(":")
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "out"):
                fail(lineno, f"parameter '{token}': expected NAME:TYPE or NAME:TYPE:out")
            params.append(parts)
    if len(params) > 6:
        fail(lineno, f"{len(params)} parameters; a syscall has at most 6")
    for c in cats.split(","):
        if c not in CATEGORIES:
            fail(lineno, f"unknown category '{c}' (known: {' '.join(CATEGORIES)})")
    for f in ([] if flags == "-" else flags.split(",")):
        if f not in FLAGS:
            fail(lineno, f"unknown flag '{f}' (known: {' '.join(FLAGS)})")
    if result not in ("int", "fd", "pid", "hex"):
        fail(lineno, f"unknown result type '{result}' (int, fd, pid, hex)")
    for field, value in (("x86_64", x86), ("arm64", arm)):
        if value != "-" and not value.isdigit():
            fail(lineno, f"{field} number '{value}' is neither a number nor '-'")
    rows.append((lineno, name, x86, arm, tracefs, cats.split(","), [] if flags == "-" else flags.split(","), result,
                 params))

swift = ["// DO NOT EDIT: generated from bpf/syscalls/syscalls.table by 'make generate' (scripts/syscalls-generate.py).",
         "",
         "extension Syscalls {",
         "    /// Every syscall of x86_64 and arm64, in x86_64 order (arm64-only ones last).",
         "    static let generated: [SyscallDescriptor] = ["]
for lineno, name, x86, arm, tracefs, cats, flags, result, params in rows:
    ps = ", ".join(f"SyscallParam(\"{p[0]}\", {swift_type(lineno, p[1], params)}{', atExit: true' if len(p) == 3 else ''})"
                   for p in params)
    swift.append(
        f"        SyscallDescriptor(\"{name}\", x86_64: {x86 if x86 != '-' else -1}, arm64: {arm if arm != '-' else -1}, "
        f"tracefs: {'nil' if tracefs == '-' else chr(34) + tracefs + chr(34)}, "
        f"categories: [{', '.join('.' + c for c in cats)}], flags: [{', '.join('.' + FLAGS[f] for f in flags)}], "
        f"result: .{result}, params: [{ps}]),")
swift += ["    ]", "}", ""]

docs = ["<!-- DO NOT EDIT: generated from bpf/syscalls/syscalls.table by 'make generate'. -->",
        "# Syscalls",
        "",
        "Every syscall of x86_64 and arm64 as Vigil knows it: one table (`bpf/syscalls/syscalls.table`) drives the",
        "kernel side's capture (what it reads of each argument, at entry or at exit), the decoder, the fields",
        "(`evt.type`, `evt.arg.NAME`, ...) and `vigil trace --event NAME`. Argument types: `path(DIRFD)` is resolved",
        "against cwd or the fd argument DIRFD, `buffer(LEN)` keeps at most the configured snap length of LEN bytes",
        "(`buffer(ret)`: as many as the call returned), `sockaddr` prints as ip:port or a unix path, `flags(SET)` and",
        "`enum(SET)` as names (`O_RDONLY|O_CLOEXEC`), `mode` in octal; `:out` is read when the call returns.",
        "",
        "`vigil trace --event NAME` (or `syscall:NAME`, `all`, `--set CATEGORY`) captures them with the syscalls sensor",
        "(bpf/syscalls.bpf.c, docs/ARCHITECTURE.md): one event per call with `evt.type` (the name), `evt.category`,",
        "`evt.res`/`evt.rawres`, `evt.failed`, `evt.latency` (ns), `evt.args`, `evt.arg.NAME` / `evt.arg[N]`,",
        "`evt.rawarg.NAME`, and in JSON an `args` array of name/type/value. Bounds: strings and paths 4096 bytes,",
        "buffers `--snaplen` (80) bytes, socket addresses 128 bytes, 8192 bytes of arguments per call; a cut value ends",
        "in `...`, a value that could not be read is `<fault>`. Not yet: paths are as given (not resolved against",
        "dirfd), no fd table (`fd.*` of syscall events); a 32-bit task's syscalls (another numbering) are dropped and counted as filtered.",
        "",
        f"{len(rows)} syscalls.",
        "",
        "| syscall | x86_64 | arm64 | categories | flags | result | arguments |",
        "|---|---|---|---|---|---|---|"]
for lineno, name, x86, arm, tracefs, cats, flags, result, params in rows:
    args = ", ".join(f"{p[0]}: {p[1]}{' (exit)' if len(p) == 3 else ''}" for p in params) or "none"
    docs.append(f"| `{name}` | {x86} | {arm} | {' '.join(cats)} | {' '.join(flags) or '-'} | {result} | {args} |")
docs.append("")

os.makedirs(os.path.join(out, "Sources/VigilEvents/Generated"), exist_ok=True)
os.makedirs(os.path.join(out, "docs"), exist_ok=True)
with open(os.path.join(out, "Sources/VigilEvents/Generated/Syscalls.swift"), "w") as f:
    f.write("\n".join(swift))
with open(os.path.join(out, "docs/syscalls.md"), "w") as f:
    f.write("\n".join(docs))
print(f"generated syscalls: {len(rows)} rows")
