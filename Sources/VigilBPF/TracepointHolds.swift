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
/// Each hold has owners (the loaded objects whose links use the tracepoint): a release drops only
/// its owner's holds, and a tracepoint is let go when its last owner releases it, so one
/// `Sensors` unloading its syscalls sensor leaves another's holds in the same process alone.
public enum TracepointHolds {
    /// A held tracepoint: its disabled perf event and who holds it.
    private struct Hold {
        var fd: Int32
        var owners: Set<ObjectIdentifier>
    }

    private static let held = Mutex<[String: Hold]>([:])

    /// The tracefs root libbpf uses too.
    private static let tracefs = access("/sys/kernel/tracing/events", F_OK) == 0 ? "/sys/kernel/tracing" : "/sys/kernel/debug/tracing"

    /// Holds `category/name` for `owner` (idempotent per owner; the caller releases it, and must
    /// before `owner` goes away). Best effort: a tracepoint this kernel lacks, or a perf event
    /// the kernel refuses, is not held, and attaching then behaves as without holds.
    public static func hold(category: String, name: String, owner: AnyObject) {
        let key = "\(category)/\(name)", id = ObjectIdentifier(owner)
        held.withLock { held in
            if held[key]?.owners.insert(id) != nil { return }
            guard let tracepoint = tracepointID(key) else { return }
            let fd = clibbpf_tracepoint_event_open(tracepoint)
            if fd >= 0 { held[key] = Hold(fd: fd, owners: [id]) }
        }
    }

    /// The tracepoints held now, by any owner (`category/name`).
    public static var names: Set<String> { held.withLock { Set($0.keys) } }

    /// Releases `owner`'s holds of `category` (of every category when nil). A tracepoint no
    /// other owner holds is let go, which waits for its grace periods when no link uses it any
    /// more, as closing a link would have.
    public static func release(category: String? = nil, owner: AnyObject) {
        let id = ObjectIdentifier(owner)
        let fds = held.withLock { held -> [Int32] in
            var fds: [Int32] = []
            for key in Array(held.keys) where category.map({ key.hasPrefix($0 + "/") }) ?? true {
                guard var hold = held[key], hold.owners.remove(id) != nil else { continue }
                if hold.owners.isEmpty {
                    held[key] = nil
                    fds.append(hold.fd)
                } else {
                    held[key] = hold
                }
            }
            return fds
        }
        fds.forEach { close($0) }
    }

    /// Hands every hold of `owner` to `successor` (an object loaded in its place, before it goes
    /// away): the tracepoints stay held until `successor` releases them.
    public static func transfer(from owner: AnyObject, to successor: AnyObject) {
        let from = ObjectIdentifier(owner), to = ObjectIdentifier(successor)
        held.withLock { held in
            for key in Array(held.keys) {
                guard var hold = held[key], hold.owners.remove(from) != nil else { continue }
                hold.owners.insert(to)
                held[key] = hold
            }
        }
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
