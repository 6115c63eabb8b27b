/// What the kernel says of a process beyond the event header (from /proc/PID/stat, status and
/// exe when the process table meets it and after each exec; a fork hands the parent's to the
/// child): its session and process group, capabilities and executable file. nil: not known.
public struct ProcessDetails: Sendable, Equatable {
    /// The session id (the session leader's pid, host pid namespace).
    public var sid: UInt32?
    /// The process group id (host pid namespace).
    public var pgid: UInt32?
    /// The process group id as seen in the process's own pid namespace (NSpgid's last).
    public var vpgid: UInt32?
    /// The process id as seen in the process's own pid namespace (NSpid's last): 1 for a
    /// container's first process.
    public var vpid: UInt32?
    /// The environment the program was started with (/proc/PID/environ): whole NAME=VALUE
    /// entries, at most `environmentLimit` bytes of them (counting one NUL after each).
    public var environment: [ByteString]?
    /// Whether `environment` was cut at `environmentLimit` (entries past it are not kept).
    public var environmentTruncated: Bool?
    /// The most bytes of environment kept per process (NAME=VALUE entries and their NULs): a
    /// process's environ can be megabytes, and the process table keeps one per process.
    public static let environmentLimit = 4096
    /// The fields that read `environment`.
    public static let environmentFields: Set<String> = ["proc.env", "proc.env_truncated"]
    /// Capability sets (bit N: capability N, as CapEff/CapPrm/CapInh).
    public var capEffective: UInt64?, capPermitted: UInt64?, capInheritable: UInt64?
    /// The executable is a memfd (/proc/PID/exe names /memfd:...): a fileless program.
    public var exeFromMemfd: Bool?
    /// The executable file's inode, owner, mode and times.
    public var exe: ExecutableFile?

    /// Nothing known.
    public init() {}
}

/// The file a process executes (stat of /proc/PID/exe).
public struct ExecutableFile: Sendable, Equatable {
    /// Its inode number.
    public var inode: UInt64
    /// st_mode.
    public var mode: UInt32
    /// Owner and group.
    public var uid: UInt32, gid: UInt32
    /// Change and modification times, ns since the epoch.
    public var ctimeNs: UInt64, mtimeNs: UInt64

    /// A file's details.
    public init(inode: UInt64, mode: UInt32, uid: UInt32, gid: UInt32, ctimeNs: UInt64, mtimeNs: UInt64) {
        self.inode = inode; self.mode = mode; self.uid = uid; self.gid = gid; self.ctimeNs = ctimeNs; self.mtimeNs = mtimeNs
    }

    /// Whether user `uid` (group `gid`) may write it by its mode bits; root may always
    /// (Falco's proc.is_exe_writable).
    public func isWritable(uid: UInt32, gid: UInt32) -> Bool {
        if uid == 0 { return true }
        if uid == self.uid { return mode & 0o200 != 0 }
        if gid == self.gid { return mode & 0o020 != 0 }
        return mode & 0o002 != 0
    }
}

/// Linux capability names by bit (Falco's thread.cap_* texts).
public enum CapabilityNames {
    /// CAP_CHOWN (0) ... CAP_CHECKPOINT_RESTORE (40).
    public static let names: [StaticString] = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
        "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
        "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ]

    /// The names of the set's bits separated by spaces (an unnamed bit as CAP_N); empty for none.
    public static func text(_ set: UInt64) -> ByteString {
        var out = ByteBuffer(capacity: 64)
        for bit in 0..<64 where set & (1 << UInt64(bit)) != 0 {
            if out.count > 0 { out.append(0x20) }
            if bit < names.count { out.append(names[bit]) } else { out.append("CAP_"); out.append(decimal: UInt64(bit)) }
        }
        return out.withUnsafeBytes { ByteString($0) }
    }
}
