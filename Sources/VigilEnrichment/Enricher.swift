import Foundation
import VigilContainers
import VigilEvents

/// Adds what the kernel does not say to each event: process ancestry and details (the process
/// table), user and group names, and the container (cgroup id -> id and runtime; name, image and
/// labels from the runtime's API). Never fails per event: unknown fields stay empty.
///
/// What it adds is the same for every event of a process until something changes, so it is kept
/// per process: the process context (ancestry, arguments, user and group names) and the container
/// context are built once and handed to each following event (one retain each), until the process
/// table changes (an exec, fork or exit anywhere: ancestry may change), the event's parent, user,
/// group, cgroup or pid namespace differ, or a container becomes known. Driven by one thread (the
/// event pipeline).
public final class Enricher {
    /// The process tree.
    public let processes: ProcessTable
    private let cgroups: CgroupResolver
    private let metadata: ContainerMetadataCache?
    private let users: [UInt32: String]
    private let groups: [UInt32: String]
    private var containers: [UInt64: ContainerContext] = [:]
    /// Containers by pid namespace, learned from events whose cgroup named the container.
    private var containersByPIDNamespace: [UInt32: ContainerContext] = [:]
    /// Changes whenever `containers` or `containersByPIDNamespace` does.
    private var containerVersion: UInt64 = 0
    private var fetched: Set<String> = []
    /// What the last event of each process was given, and what it was given for.
    private var cache: [UInt32: Enriched] = [:]
    /// Processes whose exit was never seen (lost events) leave entries behind; past this many the
    /// cache starts over.
    private static let cacheLimit = 1 << 16

    /// The contexts handed to the events of one process, and the inputs they were built from.
    private struct Enriched {
        var tableVersion: UInt64
        var containerVersion: UInt64
        var ppid: UInt32, uid: UInt32, gid: UInt32, pidNamespace: UInt32
        var cgroupID: UInt64
        var process: ProcessContext
        var container: ContainerContext

        func fits(_ event: Event, tableVersion: UInt64, containerVersion: UInt64) -> Bool {
            self.tableVersion == tableVersion && self.containerVersion == containerVersion && ppid == event.ppid
                && uid == event.uid && gid == event.gid && cgroupID == event.cgroupID && pidNamespace == event.pidNamespace
        }
    }

    /// An enricher over the running system: the process table seeded from /proc, the cgroup v2
    /// mount from /proc/self/mountinfo, and `metadata` (nil: no runtime API).
    public init(metadata: ContainerMetadataCache?, seedProcesses: Bool = true) {
        processes = ProcessTable()
        if seedProcesses { processes.seed() }
        cgroups = CgroupResolver()
        self.metadata = metadata
        users = Self.names(fromFile: "/etc/passwd")
        groups = Self.names(fromFile: "/etc/group")
    }

    /// Enriches `event` in place.
    public func enrich(_ event: inout Event) {
        switch event.payload {
        case .exec:
            break // it changes the table
        case .fork(let f) where !f.isThread:
            break // it adds the child to the table
        case .exit:
            processes.update(with: event)
            cache.removeValue(forKey: event.pid)
            enrichAnew(&event)
            processes.finish(event)
            return
        case .open, .fork, .syscall:
            // Opens and new threads change nothing in the table. Kept contexts fit only while the
            // table's version is the one they were built at: the process had a record then and
            // still has.
            if let index = cache.index(forKey: event.pid) {
                let known = cache.values[index]
                if known.fits(event, tableVersion: processes.version, containerVersion: containerVersion) {
                    event.process = known.process
                    event.container = known.container
                    return
                }
            }
        }
        processes.update(with: event)
        if enrichAnew(&event) {
            if cache.count >= Self.cacheLimit { cache.removeAll() }
            cache[event.pid] = Enriched(tableVersion: processes.version, containerVersion: containerVersion,
                                        ppid: event.ppid, uid: event.uid, gid: event.gid, pidNamespace: event.pidNamespace,
                                        cgroupID: event.cgroupID, process: event.process, container: event.container)
        }
    }

    /// Builds the process and container contexts of `event` from the tables. Returns whether
    /// they may be kept for the process's next events: not while its container is still being
    /// identified (no name yet, or known only through its pid namespace), which is looked up
    /// again on every event.
    @discardableResult
    private func enrichAnew(_ event: inout Event) -> Bool {
        var process = processes.context(pid: event.pid, ppid: event.ppid)
        process.userName = users[event.uid]
        process.groupName = groups[event.gid]
        if let login = process.loginUID { process.loginUserName = users[login] }
        event.process = process
        event.container = container(cgroupID: event.cgroupID)
        let settled = !event.container.isContainer || !event.container.name.isEmpty
        guard event.pidNamespace != Namespaces.hostPID else { return settled }
        if event.container.isContainer {
            if containersByPIDNamespace[event.pidNamespace] != event.container {
                containersByPIDNamespace[event.pidNamespace] = event.container
                containerVersion &+= 1
            }
            return settled
        }
        // In another pid namespace but the v2 cgroup is still the root: a runtime's init
        // (runc:[2:INIT]) before it joined the container's cgroup. Its pid namespace, /proc
        // (all hierarchies) or, when it is already gone, "unidentified" says so.
        event.container = containersByPIDNamespace[event.pidNamespace]
            ?? ContainerIdentity.ofProcess(Int32(bitPattern: event.pid)).flatMap { $0.isContainer ? context(for: $0) : nil }
            ?? .unidentified
        return false
    }

    /// The container of a cgroup: cached per cgroup id; the first sight of a container fetches
    /// its metadata once from the runtime (so its first event already carries the name).
    public func container(cgroupID: UInt64) -> ContainerContext {
        if let known = containers[cgroupID], !known.isContainer || !known.name.isEmpty { return known }
        containerVersion &+= 1
        guard let identity = cgroups.identity(forCgroupID: cgroupID), identity.isContainer else {
            containers[cgroupID] = .host
            return .host
        }
        let context = context(for: identity)
        containers[cgroupID] = context
        return context
    }

    /// The context of a container: its metadata fetched once from the runtime on first sight.
    private func context(for identity: ContainerIdentity) -> ContainerContext {
        var context = ContainerContext(fullID: identity.id, runtime: identity.runtime.rawValue, name: "", image: "",
                                       labels: [:], podUID: identity.pod?.uid ?? "")
        var meta = metadata?.cached(identity.id)
        if meta == nil, let metadata, !fetched.contains(identity.id) {
            fetched.insert(identity.id)
            meta = metadata.fetch(identity.id)
        }
        if let meta {
            context.name = meta.name
            context.image = meta.image
            context.labels = meta.labels
        }
        return context
    }

    /// uid/gid -> name from a passwd- or group-format file.
    static func names(fromFile path: String) -> [UInt32: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var result: [UInt32: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", omittingEmptySubsequences: false)
            if parts.count > 2, let id = UInt32(parts[2]), result[id] == nil { result[id] = String(parts[0]) }
        }
        return result
    }
}
