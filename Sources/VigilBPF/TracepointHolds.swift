import CLibbpf
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Disabled perf events, one per tracepoint, that keep the tracepoints a process attaches to
/// and detaches from again and again registered, so that detaching is immediate.
///
/// Closing the last perf event of a tracepoint unregisters it, and the kernel then waits for
/// the tracepoint's grace periods while holding its `event_mutex` (`perf_trace_event_unreg`):
/// ~15-40 ms per tracepoint on 6.18, one after the other whatever the number of threads, so
/// detaching the ~140 per-syscall links of the default rules took 2-6 s. While a hold is open
/// the tracepoint stays registered and closing a link's perf event skips that wait. A held
/// tracepoint with no program costs what any syscall tracepoint costs (the syscall slow path)
/// and nothing more: its perf event is disabled and has no program.
public enum TracepointHolds {
    private static let held = Mutex<[String: Int32]>([:])

    /// The tracefs root libbpf uses too.
    private static let tracefs = access("/sys/kernel/tracing/events", F_OK) == 0 ? "/sys/kernel/tracing" : "/sys/kernel/debug/tracing"

    /// Holds `category/name` (idempotent). Best effort: a tracepoint this kernel lacks, or a
    /// perf event the kernel refuses, is not held, and attaching then behaves as without holds.
    public static func hold(category: String, name: String) {
        let key = "\(category)/\(name)"
        held.withLock { held in
            guard held[key] == nil, let id = tracepointID(key) else { return }
            let fd = clibbpf_tracepoint_event_open(id)
            if fd >= 0 { held[key] = fd }
        }
    }

    /// The tracepoints held now (`category/name`).
    public static var names: Set<String> { held.withLock { Set($0.keys) } }

    /// Releases the holds of `category` (every one when nil): each release of a tracepoint no
    /// link uses any more waits for its grace periods, as closing a link would have.
    public static func release(category: String? = nil) {
        let fds = held.withLock { held -> [Int32] in
            let keys = held.keys.filter { category == nil || $0.hasPrefix(category! + "/") }
            return keys.compactMap { held.removeValue(forKey: $0) }
        }
        fds.forEach { close($0) }
    }

    /// The tracefs id of `category/name`, nil when this kernel has no such tracepoint.
    private static func tracepointID(_ key: String) -> UInt64? {
        let fd = open("\(tracefs)/events/\(key)/id", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 32)
        let count = read(fd, &bytes, bytes.count)
        guard count > 0 else { return nil }
        return UInt64(String(decoding: bytes[..<count].filter { (0x30...0x39).contains($0) }, as: UTF8.self))
    }
}
