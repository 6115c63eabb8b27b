#if canImport(Glibc)
import Glibc
#endif

/// Proof that the whole path works, kernel to rules: every `interval` Vigil starts a short-lived
/// child (`helper`, `/bin/true`) and waits for a record of that process to come back through
/// the ring. The sensors never report Vigil's own process (`vigil_ignore_tgid`), but the child
/// is another process, and its exec and exit are state changes, which no in-kernel filter drops.
/// A child not seen within `bound` means the sensor is silent. Driven by a thread of its own
/// (the daemon's integrity thread), while another reads the stream (`EventStream.childSeen`).
public struct Heartbeat {
    /// What a tick found.
    public enum Outcome: Sendable, Equatable {
        /// The awaited child came back after this many nanoseconds.
        case returned(latencyNs: UInt64)
        /// Nothing of the child came back within the bound (waited this many nanoseconds).
        case silent(waitedNs: UInt64)
        /// The child could not be started (errno text).
        case cannotStart(String)
    }

    /// Nanoseconds between heartbeats.
    public let interval: UInt64
    /// Nanoseconds a heartbeat may take to come back.
    public let bound: UInt64
    /// The child's command: `/bin/true`, or where there is none (an image FROM scratch)
    /// Vigil's own binary with `--version` (slower to start); its output goes to /dev/null.
    public let helper: [String]
    /// Heartbeats started, returned, and silent (not back within the bound).
    public private(set) var sent: UInt64 = 0, returned: UInt64 = 0, silent: UInt64 = 0
    /// The last heartbeat's time to come back, nanoseconds (nil: none yet).
    public private(set) var lastLatencyNs: UInt64?
    private var pending: (pid: UInt32, startedAt: UInt64)?
    private var lastStart: UInt64 = 0
    private var children: [pid_t] = []

    /// A heartbeat every `interval` ns, expected back within `bound` ns.
    public init(interval: UInt64, bound: UInt64, helper: [String] = Heartbeat.defaultHelper) {
        self.interval = interval
        self.bound = bound
        self.helper = helper
    }

    /// `/bin/true` when executable here, else `/proc/self/exe --version`.
    public static var defaultHelper: [String] {
        access("/bin/true", X_OK) == 0 ? ["/bin/true"] : ["/proc/self/exe", "--version"]
    }

    /// Looks whether the awaited child came back through `stream`, declares it silent past the
    /// bound, starts the next one when due. `now`: monotonic nanoseconds. Any record of the
    /// child counts, whenever the reader handled it: its pid is known only once it runs, and
    /// its records may be read before this learns it.
    public mutating func tick(stream: EventStream, now: UInt64) -> Outcome? {
        reap()
        if let pending {
            if stream.childSeen(pending.pid) {
                self.pending = nil
                returned += 1
                lastLatencyNs = now &- pending.startedAt
                return .returned(latencyNs: now &- pending.startedAt)
            }
            guard now &- pending.startedAt >= bound else { return nil }
            self.pending = nil
            silent += 1
            return .silent(waitedNs: now &- pending.startedAt)
        }
        guard now &- lastStart >= interval else { return nil }
        lastStart = now
        var pid: pid_t = 0
        var cArguments = helper.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in [0, 1, 2] { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
        let rc = posix_spawn(&pid, helper[0], &actions, nil, &cArguments, environ)
        guard rc == 0 else { return .cannotStart("posix_spawn \(helper.joined(separator: " ")): \(String(cString: strerror(rc)))") }
        children.append(pid)
        sent += 1
        pending = (UInt32(pid), now)
        return nil
    }

    /// Collects the children that exited (never blocks).
    private mutating func reap() {
        children.removeAll { pid in
            var status: Int32 = 0
            let rc = waitpid(pid, &status, WNOHANG)
            return rc == pid || (rc < 0 && errno == ECHILD)
        }
    }
}
