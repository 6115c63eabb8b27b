/// Falco's process fields beyond Vigil's first ones, that its stock rules use: the parent's and
/// ancestors' executables, the session and process group leaders, capabilities and the
/// executable file. Values come from the process table (`ProcessContext`, `ProcessDetails`).
extension Fields {
    /// The fields (in `Fields.all` after the process fields).
    static let lineageFields: [FieldDefinition] = [
        .init("proc.pexe", .string, scope: .process, "The parent's first command-line argument (argv[0]).") { e, _ in
            e.process.parentArguments?.first.map { .string($0) }
        },
        .init("proc.pexepath", .string, scope: .process, "The parent's executable path.") { e, _ in
            known(e.process.ancestorExecutablePaths.first)
        },
        .init("proc.aexe", .string, argument: true, "argv[0] of ancestor N: proc.aexe[0] is the process's, [1] its parent's ... (as proc.aname).") { e, arg in
            guard let n = ancestorNumber(arg) else { return nil }
            if n == 0 { return e.process.arguments?.first.map { .string($0) } }
            return n - 1 < e.process.ancestorExes.count ? known(e.process.ancestorExes[n - 1]) : nil
        },
        .init("proc.aexepath", .string, argument: true, "Executable path of ancestor N: proc.aexepath[0] is the process's, [1] its parent's ... (as proc.aname).") { e, arg in
            guard let n = ancestorNumber(arg) else { return nil }
            if n == 0 { return e.process.executablePath.map { .string($0) } }
            return n - 1 < e.process.ancestorExecutablePaths.count ? known(e.process.ancestorExecutablePaths[n - 1]) : nil
        },
        .init("proc.sid", .uint, scope: .process, "The session id (the session leader's pid).") { e, _ in
            e.process.details.sid.map { .uint(UInt64($0)) }
        },
        .init("proc.sname", .string, scope: .process, "The session leader's name (comm).") { e, _ in
            e.process.sessionLeaderName.map { .string($0) }
        },
        .init("proc.pgid", .uint, scope: .process, "The process group id.") { e, _ in
            e.process.details.pgid.map { .uint(UInt64($0)) }
        },
        .init("proc.vpgid", .uint, scope: .process, "The process group id as seen in the process's own pid namespace.") { e, _ in
            e.process.details.vpgid.map { .uint(UInt64($0)) }
        },
        .init("proc.vpid", .uint, scope: .process, "The process id as seen in the process's own pid namespace (1 for a container's first process; proc.pid on the host).") { e, _ in
            e.process.details.vpid.map { .uint(UInt64($0)) }
        },
        .init("proc.is_vpgid_leader", .bool, scope: .process, "Whether the process leads its process group (proc.vpid = proc.vpgid): a command a shell ran directly, not one started by a script or another program.") { e, _ in
            guard let vpid = e.process.details.vpid, let vpgid = e.process.details.vpgid else { return nil }
            return .bool(vpid == vpgid)
        },
        .init("proc.env", .string, scope: .process, "The environment the program was started with (/proc/PID/environ, read when Vigil meets the process and after each exec, and only while a loaded rule or output uses proc.env or proc.env_truncated: Vigil does not read environments nobody asked for): NAME=VALUE entries separated by spaces, at most the first 4096 bytes of whole entries (`proc.env_truncated` says when it was cut); none when the process was gone before Vigil read it.") { e, _ in
            e.process.details.environment.map { entries in .string(ByteString(entries.map(\.bytes).joined(separator: [0x20]))) }
        },
        .init("proc.env_truncated", .bool, scope: .process, "Whether proc.env was cut: the environment was longer than 4096 bytes and only the whole NAME=VALUE entries within them are kept; missing whenever proc.env is missing.") { e, _ in
            e.process.details.environmentTruncated.map { .bool($0) }
        },
        .init("proc.vpgid.name", .string, scope: .process, "The process group leader's name (comm).") { e, _ in
            e.process.groupLeaderName.map { .string($0) }
        },
        .init("proc.vpgid.exe", .string, scope: .process, "The process group leader's argv[0].") { e, _ in
            e.process.groupLeaderExe.map { .string($0) }
        },
        .init("proc.vpgid.exepath", .string, scope: .process, "The process group leader's executable path.") { e, _ in
            e.process.groupLeaderExecutablePath.map { .string($0) }
        },
        .init("thread.cap_effective", .string, scope: .process, "The effective capabilities, names separated by spaces (CAP_CHOWN CAP_KILL ...); empty for none.") { e, _ in
            e.process.details.capEffective.map { .string(CapabilityNames.text($0)) }
        },
        .init("thread.cap_permitted", .string, scope: .process, "The permitted capabilities (as thread.cap_effective).") { e, _ in
            e.process.details.capPermitted.map { .string(CapabilityNames.text($0)) }
        },
        .init("thread.cap_inheritable", .string, scope: .process, "The inheritable capabilities (as thread.cap_effective).") { e, _ in
            e.process.details.capInheritable.map { .string(CapabilityNames.text($0)) }
        },
        .init("proc.is_exe_from_memfd", .bool, scope: .process, "Whether the executable is a memfd (a program run from memory, not from a file).") { e, _ in
            e.process.details.exeFromMemfd.map { .bool($0) }
        },
        .init("proc.is_exe_writable", .bool, scope: .process, "Whether the process's user may write its executable (by the file's mode and owner; always for root).") { e, _ in
            e.process.details.exe.map { .bool($0.isWritable(uid: e.uid, gid: e.gid)) }
        },
        .init("proc.exe_ino", .uint, scope: .process, "The executable file's inode number.") { e, _ in
            e.process.details.exe.map { .uint($0.inode) }
        },
        .init("proc.exe_ino.ctime", .uint, scope: .process, "The executable file's change time, ns since the epoch.") { e, _ in
            e.process.details.exe.map { .uint($0.ctimeNs) }
        },
        .init("proc.exe_ino.mtime", .uint, scope: .process, "The executable file's modification time, ns since the epoch.") { e, _ in
            e.process.details.exe.map { .uint($0.mtimeNs) }
        },
    ]

    /// A byte string the process table knew (empty: it did not).
    private static func known(_ value: ByteString?) -> FieldValue? {
        guard let value, !value.isEmpty else { return nil }
        return .string(value)
    }
}
