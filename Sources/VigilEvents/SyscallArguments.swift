/// Turns a syscall event's arguments into text by the table's types: flags as `O_RDONLY|O_CLOEXEC`,
/// modes in octal, signals and errnos by name, socket addresses as ip:port or a unix path. The one
/// decoder of syscall arguments: fields, JSON and the table output all call it.
public enum SyscallArguments {
    /// Appends argument `i` of `s` as text. Captured bytes (paths, strings, buffers) are appended
    /// raw: a JSON writer escapes them (`appendJSON`).
    public static func append(_ s: Payload.Syscall, _ i: Int, to out: inout ByteBuffer) {
        append(s, i, params: s.params, to: &out)
    }

    /// The same with the syscall's parameters handed in (`SyscallJSONTables.params`).
    @inline(__always)
    static func append(_ s: borrowing Payload.Syscall, _ i: Int, params: UnsafeBufferPointer<SyscallParam>, to out: inout ByteBuffer) {
        guard i < params.count else { return }
        if let resolved = s.resolvedPath(i) {
            out.append(resolved.bytes)
            if s.truncated & (1 << UInt8(i)) != 0 { out.append("...") }
            return
        }
        appendRaw(s, i, params: params, to: &out)
    }

    /// Argument `i` as a String (fields' `extract`, the table output).
    public static func text(_ s: Payload.Syscall, _ i: Int) -> String {
        var out = ByteBuffer(capacity: 64)
        append(s, i, to: &out)
        return out.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// Argument `i` as bytes (fields' `extract`).
    public static func bytes(_ s: Payload.Syscall, _ i: Int) -> ByteString {
        var out = ByteBuffer(capacity: 64)
        append(s, i, to: &out)
        return out.withUnsafeBytes { ByteString($0) }
    }

    /// The result as text: the fd, pid or count, a hex address, or the errno's name.
    public static func appendResult(_ s: Payload.Syscall, to out: inout ByteBuffer) {
        if s.failedCall {
            out.append(ErrnoNames.name(result: s.result).utf8.map { $0 })
        } else if s.descriptor.result == .hex {
            appendHex(UInt64(bitPattern: s.result), to: &out)
        } else {
            out.append(decimal: s.result)
        }
    }

    /// `name=value` for every argument, separated by spaces (Falco's evt.args); a path resolved
    /// to another text shows as Falco shows it: `name=as-given(resolved)`.
    public static func appendAll(_ s: Payload.Syscall, to out: inout ByteBuffer) {
        for (i, p) in s.params.enumerated() {
            if i > 0 { out.append(0x20) }
            out.append(p.name)
            out.append(0x3d)
            appendRaw(s, i, to: &out)
            if let resolved = s.resolvedPath(i), let raw = s.captured(i), !resolved.bytes.elementsEqual(raw) {
                out.append(0x28)
                out.append(resolved.bytes)
                out.append(0x29)
            }
        }
    }

    /// Argument `i` of `s` as text, a path as given (not resolved: evt.rawarg's text).
    public static func appendRaw(_ s: Payload.Syscall, _ i: Int, to out: inout ByteBuffer) {
        appendRaw(s, i, params: s.params, to: &out)
    }

    /// The same with the syscall's parameters handed in.
    @inline(__always)
    static func appendRaw(_ s: borrowing Payload.Syscall, _ i: Int, params: UnsafeBufferPointer<SyscallParam>, to out: inout ByteBuffer) {
        guard i < params.count else { return }
        append(params[i].type, raw: s.args[i], captured: s.captured(i, params: params), failed: s.failed & (1 << UInt8(i)) != 0,
               truncated: s.truncated & (1 << UInt8(i)) != 0, atExit: params[i].atExit, result: s.result, to: &out)
    }

    /// Index of the parameter named `name`, nil when the syscall has none.
    public static func index(of name: String, in s: Payload.Syscall) -> Int? {
        s.params.firstIndex { $0.isNamed(name) }
    }

    static func append(_ type: SyscallValueType, raw: UInt64, captured: ArraySlice<UInt8>?, failed: Bool, truncated: Bool,
                       atExit: Bool, result: Int64, to out: inout ByteBuffer) {
        switch type {
        case .int: out.append(decimal: int(raw))
        case .uint: out.append(decimal: raw)
        case .hex: appendHex(raw, to: &out)
        case .fd, .pid: out.append(decimal: Int64(Int32(truncatingIfNeeded: raw)))
        case .uid, .gid: out.append(decimal: UInt64(UInt32(truncatingIfNeeded: raw)))
        case .mode:
            out.append(0x30)
            appendOctal(raw, to: &out)
        case .signal: appendNamed(raw & 0xffff_ffff, SyscallNames.signals, to: &out)
        case .path, .string, .buffer, .iovec, .msghdr:
            if let captured {
                captured.withUnsafeBytes { out.append($0) }
                if truncated { out.append("...") }
            } else if raw == 0 {
                out.append("NULL")
            } else if failed {
                out.append("<fault>")
            } else if atExit && result < 0 {
                out.append("<NA>")
            } else if type.isData {
                out.append("") // an empty buffer
            } else {
                out.append("<NA>")
            }
        case .sockaddr:
            if let captured { appendSockaddr(captured, to: &out) } else if raw == 0 { out.append("NULL") } else { out.append("<NA>") }
        case .timespec:
            if let captured, captured.count >= 16 {
                let sec = load(captured, 0), nsec = load(captured, 8)
                out.append(decimal: Int64(bitPattern: sec))
                out.append(0x2e)
                out.append(decimal: nsec, width: 9)
            } else {
                raw == 0 ? out.append("NULL") : appendHex(raw, to: &out)
            }
        case .fdPair:
            if let captured, captured.count >= 8 {
                out.append(0x5b)
                out.append(decimal: Int64(Int32(truncatingIfNeeded: load32(captured, 0))))
                out.append(0x2c)
                out.append(decimal: Int64(Int32(truncatingIfNeeded: load32(captured, 4))))
                out.append(0x5d)
            } else {
                out.append("<NA>")
            }
        case .flags(let set): appendFlags(raw, set, to: &out)
        case .enumeration(let set): appendEnum(raw, set, to: &out)
        }
    }

    /// A C int passed in a 64-bit register: the low 32 bits sign-extended when the upper half
    /// is all zeros or ones (the kernel reads an int); a long otherwise.
    static func int(_ raw: UInt64) -> Int64 {
        let high = raw >> 32
        return high == 0 || high == 0xffff_ffff ? Int64(Int32(truncatingIfNeeded: raw)) : Int64(bitPattern: raw)
    }

    static func load(_ b: ArraySlice<UInt8>, _ offset: Int) -> UInt64 {
        var v: UInt64 = 0
        for k in 0..<8 { v |= UInt64(b[b.startIndex + offset + k]) << (8 * UInt64(k)) }
        return v
    }

    static func load32(_ b: ArraySlice<UInt8>, _ offset: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 { v |= UInt32(b[b.startIndex + offset + k]) << (8 * UInt32(k)) }
        return v
    }

    static func appendHex(_ v: UInt64, to out: inout ByteBuffer) {
        out.append("0x")
        out.appendHexDigits(v)
    }

    /// `v` in octal, at least three digits (0644, 0000), written in place.
    static func appendOctal(_ v: UInt64, to out: inout ByteBuffer) {
        let digits = max(3, (64 - v.leadingZeroBitCount + 2) / 3)
        out.withUnfilled(digits) { o in
            var rest = v
            for i in stride(from: digits - 1, through: 0, by: -1) {
                o[i] = 0x30 + UInt8(truncatingIfNeeded: rest & 7)
                rest >>= 3
            }
        }
    }

    static func appendNamed(_ v: UInt64, _ names: [UInt64: StaticString], to out: inout ByteBuffer) {
        if let name = names[v] { out.append(name) } else { out.append(decimal: Int64(bitPattern: v)) }
    }

    static func appendFlags(_ raw: UInt64, _ set: SyscallFlagSet, to out: inout ByteBuffer) {
        if set == .open {
            OpenFlags.append(UInt32(truncatingIfNeeded: raw), to: &out)
            return
        }
        var rest = set == .clone || set == .sockflags || set == .wait || set == .umount || set == .at || set == .access
            || set == .rename || set == .memfd || set == .flock || set == .prot ? raw & 0xffff_ffff : raw
        var first = true
        func name(_ text: StaticString) {
            if !first { out.append(0x7c) }
            out.append(text)
            first = false
        }
        if set == .clone, rest & 0xff != 0 { // the exit signal in the low byte
            if let signal = SyscallNames.signals[rest & 0xff] { name(signal) } else { out.append(decimal: rest & 0xff); first = false }
            rest &= ~0xff
        }
        for (bits, text) in SyscallNames.flags(set) where bits != 0 && rest & bits == bits {
            name(text)
            rest &= ~bits
        }
        if rest != 0 {
            if !first { out.append(0x7c) }
            appendHex(rest, to: &out)
            first = false
        }
        if first { // no bit set
            if let zero = SyscallNames.flags(set).first(where: { $0.0 == 0 }) { out.append(zero.1) } else { out.append(0x30) }
        }
    }

    static func appendEnum(_ raw: UInt64, _ set: SyscallEnumSet, to out: inout ByteBuffer) {
        let v = raw & 0xffff_ffff
        if set == .sock { // the type in the low bits, SOCK_NONBLOCK/SOCK_CLOEXEC above
            appendNamed(v & 0xf, SyscallNames.enumeration(.sock), to: &out)
            if v & ~0xf != 0 {
                out.append(0x7c)
                appendFlags(v & ~0xf, .sockflags, to: &out)
            }
            return
        }
        appendNamed(v, SyscallNames.enumeration(set), to: &out)
    }

    /// ip:port, [ip6]:port, a unix socket's path (`@name` for an abstract one), or `family N`.
    static func appendSockaddr(_ b: ArraySlice<UInt8>, to out: inout ByteBuffer) {
        guard b.count >= 2 else { out.append("<NA>"); return }
        let s = b.startIndex
        let family = UInt16(b[s]) | UInt16(b[s + 1]) << 8
        switch family {
        case 2 where b.count >= 8: // AF_INET
            for k in 0..<4 {
                if k > 0 { out.append(0x2e) }
                out.append(decimal: UInt64(b[s + 4 + k]))
            }
            out.append(0x3a)
            out.append(decimal: UInt64(b[s + 2]) << 8 | UInt64(b[s + 3]))
        case 10 where b.count >= 24: // AF_INET6
            out.append(0x5b)
            appendIPv6(b[(s + 8)..<(s + 24)], to: &out)
            out.append(0x5d)
            out.append(0x3a)
            out.append(decimal: UInt64(b[s + 2]) << 8 | UInt64(b[s + 3]))
        case 1: // AF_UNIX
            var path = b[(s + 2)...]
            if path.first == 0 && path.count > 1 {
                out.append(0x40)
                path = path.dropFirst()
                path.withUnsafeBytes { out.append($0) }
            } else {
                let end = path.firstIndex(of: 0) ?? path.endIndex
                path[..<end].withUnsafeBytes { out.append($0) }
            }
        default:
            out.append("family ")
            if let name = SyscallNames.enumeration(.af)[UInt64(family)] { out.append(name) } else { out.append(decimal: UInt64(family)) }
        }
    }

    /// RFC 5952 text of 16 bytes (the longest run of zero groups as ::).
    static func appendIPv6(_ b: ArraySlice<UInt8>, to out: inout ByteBuffer) {
        var groups = [UInt16](repeating: 0, count: 8)
        for k in 0..<8 { groups[k] = UInt16(b[b.startIndex + 2 * k]) << 8 | UInt16(b[b.startIndex + 2 * k + 1]) }
        var bestStart = -1, bestLength = 0, k = 0
        while k < 8 {
            if groups[k] == 0 {
                var end = k
                while end < 8 && groups[end] == 0 { end += 1 }
                if end - k > bestLength && end - k > 1 { (bestStart, bestLength) = (k, end - k) }
                k = end
            } else {
                k += 1
            }
        }
        k = 0
        while k < 8 {
            if k == bestStart {
                out.append(0x3a)
                if k == 0 { out.append(0x3a) }
                k += bestLength
                continue
            }
            out.appendHexDigits(UInt64(groups[k]))
            if k < 7 { out.append(0x3a) }
            k += 1
        }
    }
}

/// The names of flag bits and enumerated values the table's types refer to (x86_64 and arm64
/// agree on all of these).
enum SyscallNames {
    static let signals: [UInt64: StaticString] = [
        1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE",
        9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM",
        16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU",
        23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO",
        30: "SIGPWR", 31: "SIGSYS",
    ]

    private static let flagTables: [SyscallFlagSet: [(UInt64, StaticString)]] = [
        .prot: [(0, "PROT_NONE"), (1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"), (8, "PROT_SEM"),
                (0x0100_0000, "PROT_GROWSDOWN"), (0x0200_0000, "PROT_GROWSUP")],
        .mmap: [(1, "MAP_SHARED"), (2, "MAP_PRIVATE"), (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"),
                (0x100, "MAP_GROWSDOWN"), (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"), (0x2000, "MAP_LOCKED"),
                (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"), (0x10000, "MAP_NONBLOCK"), (0x20000, "MAP_STACK"),
                (0x40000, "MAP_HUGETLB"), (0x80000, "MAP_SYNC"), (0x100000, "MAP_FIXED_NOREPLACE")],
        .clone: [(0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"), (0x800, "CLONE_SIGHAND"),
                 (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"), (0x4000, "CLONE_VFORK"), (0x8000, "CLONE_PARENT"),
                 (0x10000, "CLONE_THREAD"), (0x20000, "CLONE_NEWNS"), (0x40000, "CLONE_SYSVSEM"), (0x80000, "CLONE_SETTLS"),
                 (0x100000, "CLONE_PARENT_SETTID"), (0x200000, "CLONE_CHILD_CLEARTID"), (0x400000, "CLONE_DETACHED"),
                 (0x800000, "CLONE_UNTRACED"), (0x1000000, "CLONE_CHILD_SETTID"), (0x2000000, "CLONE_NEWCGROUP"),
                 (0x4000000, "CLONE_NEWUTS"), (0x8000000, "CLONE_NEWIPC"), (0x10000000, "CLONE_NEWUSER"),
                 (0x20000000, "CLONE_NEWPID"), (0x40000000, "CLONE_NEWNET"), (0x80000000, "CLONE_IO")],
        .access: [(0, "F_OK"), (4, "R_OK"), (2, "W_OK"), (1, "X_OK")],
        .at: [(0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"), (0x400, "AT_SYMLINK_FOLLOW"),
              (0x800, "AT_NO_AUTOMOUNT"), (0x1000, "AT_EMPTY_PATH")],
        .rename: [(1, "RENAME_NOREPLACE"), (2, "RENAME_EXCHANGE"), (4, "RENAME_WHITEOUT")],
        .memfd: [(1, "MFD_CLOEXEC"), (2, "MFD_ALLOW_SEALING"), (4, "MFD_HUGETLB"), (8, "MFD_NOEXEC_SEAL"), (0x10, "MFD_EXEC")],
        .sockflags: [(0o4000, "SOCK_NONBLOCK"), (0o2000000, "SOCK_CLOEXEC")],
        .wait: [(1, "WNOHANG"), (2, "WUNTRACED"), (4, "WEXITED"), (8, "WCONTINUED"), (0x0100_0000, "WNOWAIT"),
                (0x2000_0000, "__WNOTHREAD"), (0x4000_0000, "__WALL"), (0x8000_0000, "__WCLONE")],
        .flock: [(1, "LOCK_SH"), (2, "LOCK_EX"), (4, "LOCK_NB"), (8, "LOCK_UN")],
        .mount: [(1, "MS_RDONLY"), (2, "MS_NOSUID"), (4, "MS_NODEV"), (8, "MS_NOEXEC"), (16, "MS_SYNCHRONOUS"),
                 (32, "MS_REMOUNT"), (64, "MS_MANDLOCK"), (128, "MS_DIRSYNC"), (1024, "MS_NOATIME"), (2048, "MS_NODIRATIME"),
                 (4096, "MS_BIND"), (8192, "MS_MOVE"), (16384, "MS_REC"), (32768, "MS_SILENT"), (1 << 17, "MS_UNBINDABLE"),
                 (1 << 18, "MS_PRIVATE"), (1 << 19, "MS_SLAVE"), (1 << 20, "MS_SHARED"), (1 << 21, "MS_RELATIME"),
                 (1 << 24, "MS_STRICTATIME"), (1 << 25, "MS_LAZYTIME")],
        .umount: [(1, "MNT_FORCE"), (2, "MNT_DETACH"), (4, "MNT_EXPIRE"), (8, "UMOUNT_NOFOLLOW")],
        .open: [],
    ]

    private static let enumTables: [SyscallEnumSet: [UInt64: StaticString]] = [
        .af: [0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET",
              31: "AF_BLUETOOTH", 38: "AF_ALG", 40: "AF_VSOCK", 44: "AF_XDP"],
        .sock: [1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET", 6: "SOCK_DCCP",
                10: "SOCK_PACKET"],
        .fcntl: [0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL", 5: "F_GETLK", 6: "F_SETLK",
                 7: "F_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN", 10: "F_SETSIG", 11: "F_GETSIG", 1024: "F_SETLEASE",
                 1025: "F_GETLEASE", 1026: "F_NOTIFY", 1030: "F_DUPFD_CLOEXEC", 1031: "F_SETPIPE_SZ",
                 1032: "F_GETPIPE_SZ", 1033: "F_ADD_SEALS", 1034: "F_GET_SEALS"],
        .ptrace: [0: "PTRACE_TRACEME", 1: "PTRACE_PEEKTEXT", 2: "PTRACE_PEEKDATA", 3: "PTRACE_PEEKUSER",
                  4: "PTRACE_POKETEXT", 5: "PTRACE_POKEDATA", 6: "PTRACE_POKEUSER", 7: "PTRACE_CONT", 8: "PTRACE_KILL",
                  9: "PTRACE_SINGLESTEP", 12: "PTRACE_GETREGS", 13: "PTRACE_SETREGS", 16: "PTRACE_ATTACH",
                  17: "PTRACE_DETACH", 24: "PTRACE_SYSCALL", 0x4200: "PTRACE_SETOPTIONS", 0x4201: "PTRACE_GETEVENTMSG",
                  0x4202: "PTRACE_GETSIGINFO", 0x4204: "PTRACE_GETREGSET", 0x4205: "PTRACE_SETREGSET",
                  0x4206: "PTRACE_SEIZE", 0x4207: "PTRACE_INTERRUPT"],
        .prctl: [1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE",
                 7: "PR_GET_KEEPCAPS", 8: "PR_SET_KEEPCAPS", 15: "PR_SET_NAME", 16: "PR_GET_NAME", 21: "PR_GET_SECCOMP",
                 22: "PR_SET_SECCOMP", 23: "PR_CAPBSET_READ", 24: "PR_CAPBSET_DROP", 35: "PR_SET_MM",
                 36: "PR_SET_CHILD_SUBREAPER", 38: "PR_SET_NO_NEW_PRIVS", 39: "PR_GET_NO_NEW_PRIVS", 47: "PR_CAP_AMBIENT",
                 0x5961_6d61: "PR_SET_PTRACER"],
        .whence: [0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"],
        .madvise: [0: "MADV_NORMAL", 1: "MADV_RANDOM", 2: "MADV_SEQUENTIAL", 3: "MADV_WILLNEED", 4: "MADV_DONTNEED",
                   8: "MADV_FREE", 9: "MADV_REMOVE", 10: "MADV_DONTFORK", 11: "MADV_DOFORK", 12: "MADV_MERGEABLE",
                   13: "MADV_UNMERGEABLE", 14: "MADV_HUGEPAGE", 15: "MADV_NOHUGEPAGE", 16: "MADV_DONTDUMP",
                   17: "MADV_DODUMP", 18: "MADV_WIPEONFORK", 19: "MADV_KEEPONFORK", 20: "MADV_COLD", 21: "MADV_PAGEOUT",
                   100: "MADV_HWPOISON"],
        .clock: [0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID", 3: "CLOCK_THREAD_CPUTIME_ID",
                 4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE", 6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME",
                 8: "CLOCK_REALTIME_ALARM", 9: "CLOCK_BOOTTIME_ALARM", 11: "CLOCK_TAI"],
        .shut: [0: "SHUT_RD", 1: "SHUT_WR", 2: "SHUT_RDWR"],
        .bpf: [0: "BPF_MAP_CREATE", 1: "BPF_MAP_LOOKUP_ELEM", 2: "BPF_MAP_UPDATE_ELEM", 3: "BPF_MAP_DELETE_ELEM",
               4: "BPF_MAP_GET_NEXT_KEY", 5: "BPF_PROG_LOAD", 6: "BPF_OBJ_PIN", 7: "BPF_OBJ_GET", 8: "BPF_PROG_ATTACH",
               9: "BPF_PROG_DETACH", 10: "BPF_PROG_TEST_RUN", 15: "BPF_OBJ_GET_INFO_BY_FD", 17: "BPF_RAW_TRACEPOINT_OPEN",
               18: "BPF_BTF_LOAD", 28: "BPF_LINK_CREATE"],
    ]

    static func flags(_ set: SyscallFlagSet) -> [(UInt64, StaticString)] { flagTables[set] ?? [] }
    static func enumeration(_ set: SyscallEnumSet) -> [UInt64: StaticString] { enumTables[set] ?? [:] }
}
