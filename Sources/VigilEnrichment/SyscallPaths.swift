import Foundation
import VigilEvents

/// Resolves the path arguments of syscall events (the table's `path` and `path(DIRFD)` types) to
/// absolute paths, as Falco does for evt.arg.NAME and fd.name: a relative path is joined to the
/// directory of its DIRFD argument (the fd table's entry) or, for AT_FDCWD and plain `path`
/// arguments, to the process's working directory (the process table's, kept by exec, fork,
/// chdir and fchdir; read from /proc/PID/cwd for a process the table has none for); `.`, `..`
/// and repeated slashes are folded. A clean absolute path is left as given (nothing made). A
/// base the tables do not know leaves the path unresolved (evt.arg.NAME then shows it as
/// given). chdir and fchdir that succeed set the process's working directory.
enum SyscallPaths {
    /// AT_FDCWD.
    static let atFDCWD: Int32 = -100

    /// Per syscall (indexed like `Syscalls.all`): bit i set when argument i is a path.
    static let pathMask: [UInt8] = Syscalls.all.map { d in
        var mask: UInt8 = 0
        for (i, p) in d.params.prefix(6).enumerated() { if case .path = p.type { mask |= 1 << UInt8(i) } }
        return mask
    }

    /// Per syscall (indexed like `Syscalls.all`): whether `resolve` has anything to do for it
    /// (a path argument, or fchdir).
    private static let resolving: [Bool] = Syscalls.all.indices.map { pathMask[$0] != 0 || $0 == fchdir }

    /// Whether `resolve` has anything to do for the syscall of row `index`: the enricher copies
    /// the payload out to resolve it only then.
    static func resolves(_ index: Int) -> Bool { resolving[index] }

    /// The rows of chdir and fchdir (-1 when the table lacks one).
    static let chdir = Syscalls.index(named: "chdir") ?? -1
    static let fchdir = Syscalls.index(named: "fchdir") ?? -1

    /// Resolves the path arguments of `s`, the syscall payload of process `pid`'s event, into
    /// `s.resolved`, before the fd table applies it (an open's new fd is named by the resolved
    /// path); a successful chdir or fchdir sets the process's cwd. The caller writes the payload
    /// back when `s.resolved` is not empty.
    static func resolve(_ s: inout Payload.Syscall, pid: UInt32, processes: ProcessTable, fds: FDTable) {
        let mask = pathMask[s.index]
        if s.index == fchdir {
            if !s.failedCall, let dir = fds.entry(pid: pid, fd: Int32(truncatingIfNeeded: s.args[0])), dir.hasPath {
                processes.setCwd(dir.name, pid: pid)
            }
            return
        }
        guard mask != 0 else { return }
        let params = s.params
        let slash = UInt8(ascii: "/")
        for i in 0..<min(params.count, 6) where mask & (1 << UInt8(i)) != 0 {
            guard case .path(let dirfd) = params[i].type, let raw = s.captured(i) else { continue }
            if raw.first == slash {
                if raw.withUnsafeBytes({ PathResolution.isClean($0) }) { continue }
                s.resolved.set(i, PathResolution.clean(ByteString(raw)))
                continue
            }
            let fd = dirfd >= 0 ? Int32(truncatingIfNeeded: s.args[Int(dirfd)]) : atFDCWD
            let base: ByteString?
            if fd == atFDCWD {
                base = processes.cwd(pid: pid)
            } else if let entry = fds.entry(pid: pid, fd: fd), entry.hasPath {
                base = entry.name
            } else {
                base = nil
            }
            guard let base, base.bytes.first == slash else { continue }
            s.resolved.set(i, PathResolution.resolve(ByteString(raw), against: base))
        }
        if s.index == chdir, !s.failedCall, let cwd = s.resolvedPath(0) ?? s.captured(0).map({ ByteString($0) }),
           cwd.bytes.first == slash {
            processes.setCwd(cwd, pid: pid)
        }
    }
}
