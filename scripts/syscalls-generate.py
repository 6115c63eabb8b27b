#!/usr/bin/env python3
"""Generates everything that comes from bpf/syscalls/syscalls.table (the one table of syscalls) and
bpf/syscalls/kinds.table (Vigil's event kinds):
  Sources/VigilEvents/Generated/Syscalls.swift   the descriptors (SyscallDescriptor), DO NOT EDIT
  Sources/VigilEvents/Generated/EventKinds.swift EventKind, its descriptors and dispatch, DO NOT EDIT
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


def fail(line, message, table=TABLE):
    sys.exit(f"{table}:{line}: {message}")


def swift_type(lineno, text, params):
    """The Swift SyscallValueType expression of a table type."""
    names = [p[0] for p in params]
    if text in SIMPLE:
        return ".fdPair" if text == "fdpair" else "." + text
    if text == "msghdr":
        return ".msghdr"
    m = re.fullmatch(r"(path|buffer|iovec|sockaddr|flags|enum)(?:\((\*?)(\w*)\))?", text)
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
    if kind == "iovec":
        if arg not in names:
            fail(lineno, f"iovec({arg}): no argument named '{arg}'")
        return f".iovec(count: {names.index(arg)})"
    if kind == "sockaddr":
        if arg not in names:
            fail(lineno, f"sockaddr({arg}): no argument named '{arg}'")
        return f".sockaddr(length: {names.index(arg)}, lengthIsPointer: {'true' if star else 'false'})"
    if arg not in SETS[kind]:
        fail(lineno, f"{kind}({arg}): unknown set (known: {', '.join(SETS[kind])})")
    return f".{'flags' if kind == 'flags' else 'enumeration'}(.{arg})"


rows = []
# (syscall, parameter index) -> the name Falco's rules use for it, where it differs from Linux's.
FALCO_NAMES = {}
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
                fail(lineno, f"parameter '{token}': expected NAME[|FALCO_NAME]:TYPE or NAME[|FALCO_NAME]:TYPE:out")
            # NAME|FALCO_NAME: the kernel's name, and the name Falco's rules use for it.
            name_part = parts[0].split("|")
            if len(name_part) > 2 or not all(name_part):
                fail(lineno, f"parameter '{token}': expected NAME or NAME|FALCO_NAME before the type")
            parts = [name_part[0]] + parts[1:]
            if len(name_part) == 2:
                FALCO_NAMES[(name, len(params))] = name_part[1]
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
    ps = ", ".join(f"SyscallParam(\"{p[0]}\", {swift_type(lineno, p[1], params)}{', atExit: true' if len(p) == 3 else ''}"
                   f"{', falcoName: ' + chr(34) + FALCO_NAMES[(name, i)] + chr(34) if (name, i) in FALCO_NAMES else ''})"
                   for i, p in enumerate(params))
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
        "(`buffer(ret)`: as many as the call returned), `iovec(COUNT)` and `msghdr` keep their first iovec's bytes as a buffer,",
        "`sockaddr` prints as ip:port or a unix path, `flags(SET)` and",
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
    args = ", ".join(f"{p[0]}{' (Falco: ' + FALCO_NAMES[(name, i)] + ')' if (name, i) in FALCO_NAMES else ''}: {p[1]}"
                     f"{' (exit)' if len(p) == 3 else ''}" for i, p in enumerate(params)) or "none"
    docs.append(f"| `{name}` | {x86} | {arm} | {' '.join(cats)} | {' '.join(flags) or '-'} | {result} | {args} |")
docs.append("")


KINDS = "bpf/syscalls/kinds.table"
ABI = "Sources/CVigilABI/include/vigil_abi.h"
abi_text = open(os.path.join(root, ABI)).read()
kinds = []
for lineno, line in enumerate(open(os.path.join(root, KINDS)), 1):
    if not line.strip() or line.startswith("#"):
        continue
    cols = line.split()
    if len(cols) != 9:
        fail(lineno, f"expected 9 columns (kind abi category sensor record decoder evt.type types syscalls), got {len(cols)}", KINDS)
    kind, abi, category, sensor, record, decoder, evttype, types, calls = cols
    if not re.fullmatch(r"[a-z][a-z0-9_]*", kind):
        fail(lineno, f"kind '{kind}': lower-case letters, digits and _", KINDS)
    if kind in (k[1] for k in kinds):
        fail(lineno, f"kind '{kind}' appears twice", KINDS)
    if not re.search(r"\b" + re.escape(abi) + r"\s*=", abi_text):
        fail(lineno, f"'{abi}' is not a constant of enum vigil_event_kind in {ABI}", KINDS)
    if (record == "-") != (decoder == "-"):
        fail(lineno, "a kind without a record ('-') has no decoder ('-'), and one with a record has one", KINDS)
    if record != "-" and not re.search(r"struct\s+" + re.escape(record) + r"\s*\{", abi_text):
        fail(lineno, f"'struct {record}' is not defined in {ABI}", KINDS)
    if category not in CATEGORIES + ["syscall"]:
        fail(lineno, f"unknown category '{category}' (known: {' '.join(CATEGORIES + ['syscall'])})", KINDS)
    if evttype not in ("fixed", "record", "syscall"):
        fail(lineno, f"evt.type '{evttype}': fixed, record or syscall", KINDS)
    types = [] if types == "-" else types.split(",")
    calls = [] if calls == "-" else calls.split(",")
    if evttype != "syscall" and not types:
        fail(lineno, f"kind '{kind}' has no evt.type names", KINDS)
    for c in calls:
        if c not in seen:
            fail(lineno, f"syscall '{c}' is not a row of {TABLE}", KINDS)
    kinds.append((lineno, kind, abi, category, sensor, record, decoder, evttype, types, calls))
if len([k for k in kinds if k[7] == "syscall"]) != 1:
    fail(1, "exactly one kind has evt.type 'syscall' (the kind of any syscall of the table)", KINDS)


def strings(names):
    return "[" + ", ".join(f'"{n}"' for n in names) + "]"


words = (len(kinds) + 63) // 64
k = ["// DO NOT EDIT: generated from bpf/syscalls/kinds.table by 'make generate' (scripts/syscalls-generate.py).",
     "",
     "import CVigilABI",
     "",
     "/// The kinds of events Vigil's sensors report, one per row of bpf/syscalls/kinds.table. The raw",
     "/// value is Vigil's short name (`vigil trace --event`, evt.kind); everything else about a kind is",
     "/// its `descriptor`. `syscall` is any syscall of the table (`Syscalls`): its evt.type is the syscall's name.",
     "public enum EventKind: String, Sendable, CaseIterable, Codable {",
     "    case " + ", ".join(r[1] for r in kinds),
     "",
     "    /// The kind's position in the table (and in `allCases`): the one index of a kind, for tables",
     "    /// indexed by kind and the bits of a `KindSet`.",
     "    @inlinable public var index: Int {",
     "        switch self {"]
k += [f"        case .{r[1]}: {i}" for i, r in enumerate(kinds)]
k += ["        }",
      "    }",
      "",
      "    /// The kind at `index` of the table.",
      "    @inlinable public init(index: Int) { self = Self.allCases[index] }",
      "",
      "    /// The kind of a record's `vigil_event_header.kind`, nil for a value no kind has.",
      "    public init?(abi: UInt32) {",
      "        switch abi {"]
k += [f"        case UInt32({r[2]}.rawValue): self = .{r[1]}" for r in kinds]
k += ["        default: return nil",
      "        }",
      "    }",
      "",
      "    /// The kind's row of the table.",
      "    public var descriptor: EventKindDescriptor { EventKindDescriptor.all[index] }",
      "",
      "    /// The sensor set the kind belongs to (`vigil trace --set`; a syscall event's categories are its syscall's).",
      "    public var set: String { descriptor.category }",
      "}",
      "",
      "extension EventKindDescriptor {",
      "    /// Every kind's row, in `EventKind.index` order.",
      "    public static let all: [EventKindDescriptor] = ["]
for r in kinds:
    lineno, kind, abi, category, sensor, record, decoder, evttype, types, calls = r
    k.append(f'        EventKindDescriptor(kind: .{kind}, abi: UInt32({abi}.rawValue), category: "{category}", sensor: "{sensor}", '
             f'record: "{"" if record == "-" else record}", recordSize: {"0" if record == "-" else f"MemoryLayout<{record}>.size"}, eventType: .{evttype}, types: {strings(types)}, '
             f'syscalls: {strings(calls)}),')
k += ["    ]",
      "}",
      "",
      "extension KindSet {",
      f"    /// Words of 64 bits that hold a bit per kind ({len(kinds)} kinds).",
      f"    public typealias Words = InlineArray<{words}, UInt64>",
      "}",
      "",
      "extension Names {",
      "    /// Every kind's name, indexed by `EventKind.index`.",
      "    static let kinds: [StaticString] = " + strings(r[1] for r in kinds),
      "    /// Every kind's evt.type names (the table's `types`), one kind after another.",
      "    static let eventTypes: [StaticString] = " + strings(t for r in kinds for t in r[8]),
      "    /// Where each kind's names start in `eventTypes`, by `EventKind.index`.",
      "    static let eventTypeStart: [Int] = [" + ", ".join(str(sum(len(r[8]) for r in kinds[:i])) for i in range(len(kinds))) + "]",
      "}",
      "",
      "extension Payload {",
      "    /// The event kind of this payload.",
      "    public var kind: EventKind {",
      "        switch self {"]
k += [f"        case .{r[1]}: .{r[1]}" for r in kinds]
k += ["        }",
      "    }",
      "}",
      "",
      "extension EventDecoder {",
      "    /// The payload of a record of `kind` (`vigil_event_header.kind`), decoded by its kind's",
      "    /// decoder; nil for an unknown kind or a record its decoder refuses.",
      "    @inline(__always)",
      "    mutating func decodePayload(kind: UInt32, _ record: UnsafeRawBufferPointer) -> Payload? {",
      "        switch kind {"]
k += [f"        case UInt32({r[2]}.rawValue): {r[6]}(record)" for r in kinds if r[6] != "-"]
k += ["        default: nil",
      "        }",
      "    }",
      "}",
      ""]

os.makedirs(os.path.join(out, "Sources/VigilEvents/Generated"), exist_ok=True)
os.makedirs(os.path.join(out, "docs"), exist_ok=True)
with open(os.path.join(out, "Sources/VigilEvents/Generated/Syscalls.swift"), "w") as f:
    f.write("\n".join(swift))
with open(os.path.join(out, "Sources/VigilEvents/Generated/EventKinds.swift"), "w") as f:
    f.write("\n".join(k))
with open(os.path.join(out, "docs/syscalls.md"), "w") as f:
    f.write("\n".join(docs))
print(f"generated syscalls: {len(rows)} rows, event kinds: {len(kinds)}")
