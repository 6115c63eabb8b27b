import VigilEnrichment
import VigilEvents

/// The in-kernel filters of a `KernelFilter`, applied in userspace to state changes (exec,
/// fork, exit) after enrichment. The kernel never drops those (bpf/lib/sensor.bpf.h,
/// `vigil_filtered`): the process table needs every one, or the ancestry of what the filters
/// keep is lost. The same settings, the same meaning: containers only (the task's pid namespace
/// is not the host's), command names included/excluded, pids (thread group ids), uids, cgroup ids.
struct StateChangeFilter {
    private let active: Bool
    private let containersOnly: Bool
    private let includeComms: Set<ByteString>
    private let excludeComms: Set<ByteString>
    private let pids: Set<UInt32>
    private let uids: Set<UInt32>
    private let cgroupIDs: Set<UInt64>

    /// The state-change half of `filter`.
    init(_ filter: KernelFilter) {
        containersOnly = filter.containersOnly
        includeComms = Set(filter.includeComms.map { ByteString($0) })
        excludeComms = Set(filter.excludeComms.map { ByteString($0) })
        pids = filter.followChildren ? [] : filter.pids // the tree is the consumer's to follow
        uids = filter.uids
        cgroupIDs = filter.cgroupIDs
        active = containersOnly || !includeComms.isEmpty || !excludeComms.isEmpty || !pids.isEmpty || !uids.isEmpty
            || !cgroupIDs.isEmpty
    }

    /// Whether `event` passes the filters. Every other kind already passed them in the kernel.
    /// Inlined: called per event, a call was handed a copy of the event (~450 bytes).
    @inline(__always)
    func keeps(_ event: borrowing Event) -> Bool {
        guard active else { return true }
        // The kind first (matching the payload copies it), and the row's flags rather than its
        // descriptor (a copy of the row, its arrays retained), per event.
        switch event.kind {
        case .exec, .fork, .exit: break
        case .syscall:
            guard let index = event.syscallIndex, Syscalls.all[index].flags.contains(.state) else { return true } // open, dup, close...: the fd table
        default: return true
        }
        if containersOnly && event.pidNamespace == Namespaces.hostPID { return false }
        if !pids.isEmpty && !pids.contains(event.pid) { return false }
        if !uids.isEmpty && !uids.contains(event.uid) { return false }
        if !cgroupIDs.isEmpty && !cgroupIDs.contains(event.cgroupID) { return false }
        if !includeComms.isEmpty && !includeComms.contains(event.comm) { return false }
        if !excludeComms.isEmpty && excludeComms.contains(event.comm) { return false }
        return true
    }
}
