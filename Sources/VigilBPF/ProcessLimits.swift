#if canImport(Glibc)
import Glibc
#endif

/// The limits of this process that loading many programs and links runs into.
public enum ProcessLimits {
    /// Raises the soft limit of open files (RLIMIT_NOFILE) to the hard one when it is lower, and
    /// returns the soft limit now. Every link, map and held tracepoint is a file descriptor: the
    /// default rules' per-syscall links with their holds alone take ~560, and the holds grow with
    /// every syscall a rule change ever attached (`TracepointHolds`), while a login shell or a
    /// systemd service starts with a soft limit of 1024 (hard 524288 on Debian 12).
    @discardableResult
    public static func raiseOpenFiles() -> UInt64 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return UInt64(raised.rlim_cur) }
        }
        return UInt64(limit.rlim_cur)
    }
}
