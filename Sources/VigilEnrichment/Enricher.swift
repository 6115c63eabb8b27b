import Foundation
import VigilContainers
import VigilEvents

/// Adds what the kernel does not say to each event: process ancestry and details (the process
/// table), user and group names, and the container (cgroup id -> id and runtime; name, image and
/// labels from the runtime's API). Never fails per event: unknown fields stay empty.
///
/// The container is the one the event's cgroup names. Where the cgroup cannot name it (the cgroup
/// was removed before the event was read, or a task outside the host's pid namespace is still in
/// the root cgroup), it is the one the process inherited through fork (the process table carries
/// it), else /proc's, else its pid namespace's (learned from events, and from /proc at start)
/// while that container's cgroup exists, else `unknown`; never the host for a task outside the
/// host's pid namespace.
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
    /// The fd table of every process (`event.fd`).
    public let fds: FDTable
    /// DNS messages and the names their answers give addresses (`event.dns`, fd.sip.name, ...).
    public let dns = DNSNames()
    /// The names each container image looks up (dns.name.new), judged once the event has its
    /// container; nil (the default): DNS names are not baselined.
    public var dnsBaseline: DNSBaseline?
    private let cgroups: CgroupResolver
    private let metadata: ContainerMetadataCache?
    private let users: [UInt32: String]
    private let groups: [UInt32: String]
    private var containers: [UInt64: ContainerContext] = [:]
    /// Containers by pid namespace, learned from events whose cgroup named the
    /// container, with that cgroup's id: a pid namespace's inode number is reused as soon as it
    /// is freed, so an entry holds only while its container's cgroup still exists.
    private var containersByPIDNamespace: [UInt32: (container: ContainerContext, cgroupID: UInt64)] = [:]
    /// Changes whenever `containers` or `containersByPIDNamespace` does.
    private var containerVersion: UInt64 = 0
    private var fetched: Set<String> = []
    /// Containers whose first fetch failed because the runtime could not be asked (its engine
    /// down): asked again in the background as their events come, at the pace the cache allows
    /// (every 30 s, at once when the engine's events resume), until named.
    private var unreachable: Set<String> = []
    /// What the last event of each process was given, and what it was given for.
    private var cache: [UInt32: Enriched] = [:]
    /// The entry of `cache` the last event used, and its pid (nil: none): a run of events of
    /// one process finds it without hashing. Set whenever an entry is used or stored; the pid is
    /// cleared when its entry leaves. (Not an optional entry: copying one went through the
    /// runtime's generic value witnesses.)
    private var lastUsedPID: UInt32?
    private var lastUsed = Enriched(tableVersion: 0, containerVersion: 0, ppid: 0, uid: 0, gid: 0, pidNamespace: 0, cgroupID: 0,
                                    process: ProcessContext(), container: .host)
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

    /// An enricher over the running system: the process table seeded from /proc, `cgroups` (by
    /// default over the cgroup v2 mount of /proc/self/mountinfo), and `metadata` (nil: no runtime
    /// API).
    public init(metadata: ContainerMetadataCache?, seedProcesses: Bool = true, cgroups: CgroupResolver = CgroupResolver()) {
        processes = ProcessTable()
        fds = FDTable()
        if seedProcesses {
            processes.seed()
            fds.seed()
        }
        self.cgroups = cgroups
        self.metadata = metadata
        users = Self.names(fromFile: "/etc/passwd")
        groups = Self.names(fromFile: "/etc/group")
        if seedProcesses { seedPIDNamespaces() }
    }

    /// Learns the container of every pid namespace that has a process now (from /proc): a
    /// container that runs idle while Vigil starts has had no event to learn it from, yet its
    /// `docker exec` runs runc's init in its pid namespace before that init joins its cgroup.
    private func seedPIDNamespaces(procRoot: String = "/proc") {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: procRoot) else { return }
        var info = stat()
        for entry in entries {
            guard let pid = Int32(entry), stat("\(procRoot)/\(pid)/ns/pid", &info) == 0 else { continue }
            let pidNamespace = UInt32(truncatingIfNeeded: info.st_ino)
            guard pidNamespace != Namespaces.hostPID, containersByPIDNamespace[pidNamespace] == nil,
                  let text = try? String(contentsOfFile: "\(procRoot)/\(pid)/cgroup", encoding: .utf8) else { continue }
            let identity = ContainerIdentity(cgroupFile: text)
            guard identity.isContainer else { continue }
            // The id of its v2 cgroup, whose existence later says whether the entry still holds.
            var cgroupID: UInt64 = 0
            if let mount = cgroups.mount, mount.root == "/",
               let path = text.split(separator: "\n").first(where: { $0.hasPrefix("0::/") })?.dropFirst(3),
               stat(mount.mountPoint + path, &info) == 0 {
                cgroupID = UInt64(info.st_ino)
            }
            learn(context(for: identity), pidNamespace: pidNamespace, cgroupID: cgroupID)
        }
    }

    /// Enriches `event` in place.
    public func enrich(_ event: inout Event) {
        enrichContexts(&event)
        if let dnsBaseline, event.dns != nil { dnsBaseline.apply(&event) }
    }

    /// The fd table, DNS, and the process and container contexts.
    private func enrichContexts(_ event: inout Event) {
        // Event.kind first: matching the payload enum copies it (~200 bytes, its strings
        // retained), so a syscall's is copied only when it has paths to resolve (or is fchdir),
        // and written back when one was.
        if event.kind == .syscall, let index = event.syscallIndex, SyscallPaths.resolves(index),
           case .syscall(var s) = event.payload {
            // Before the fd table (an open's new fd is named by the resolved path) and the
            // process table's update (a process first seen here is then known with no cwd,
            // which /proc gives).
            SyscallPaths.resolve(&s, pid: event.pid, processes: processes, fds: fds)
            if !s.resolved.isEmpty { event.payload = .syscall(s) }
        }
        fds.apply(&event)
        if event.hasSocketFD { dns.apply(&event) }
        switch event.kind {
        case .exec:
            break // it changes the table
        case .fork where Self.forksProcess(event):
            break // it adds the child to the table
        case .exit:
            processes.update(with: event)
            cache.removeValue(forKey: event.pid)
            if lastUsedPID == event.pid { lastUsedPID = nil }
            enrichAnew(&event)
            processes.finish(event)
            return
        case .open, .fork, .syscall, .conn, .tcpdrop, .fim, .shell, .program:
            // Opens, new threads and file integrity changes change nothing in the table. Kept contexts fit only while the
            // table's version is the one they were built at: the process had a record then and
            // still has.
            if lastUsedPID == event.pid {
                if lastUsed.fits(event, tableVersion: processes.version, containerVersion: containerVersion) {
                    event.process = lastUsed.process
                    event.container = lastUsed.container
                    return
                }
            } else if let index = cache.index(forKey: event.pid) {
                let known = cache.values[index]
                if known.fits(event, tableVersion: processes.version, containerVersion: containerVersion) {
                    event.process = known.process
                    event.container = known.container
                    (lastUsedPID, lastUsed) = (event.pid, known)
                    return
                }
            }
        }
        processes.update(with: event)
        if enrichAnew(&event) {
            if cache.count >= Self.cacheLimit { cache.removeAll() }
            let entry = Enriched(tableVersion: processes.version, containerVersion: containerVersion,
                                 ppid: event.ppid, uid: event.uid, gid: event.gid, pidNamespace: event.pidNamespace,
                                 cgroupID: event.cgroupID, process: event.process, container: event.container)
            cache[event.pid] = entry
            (lastUsedPID, lastUsed) = (event.pid, entry)
        }
    }

    /// Whether a fork event made a process (not a thread).
    private static func forksProcess(_ event: borrowing Event) -> Bool {
        if case .fork(let f) = event.payload { return !f.isThread }
        return false
    }

    /// Builds the process and container contexts of `event` from the tables. Returns whether
    /// they may be kept for the process's next events: not while its container is still being
    /// identified (no name yet, or not named by its cgroup), which is looked up again on every
    /// event.
    @discardableResult
    private func enrichAnew(_ event: inout Event) -> Bool {
        var process = processes.context(pid: event.pid, ppid: event.ppid)
        process.userName = users[event.uid]
        process.groupName = groups[event.gid]
        if let login = process.loginUID { process.loginUserName = users[login] }
        event.process = process
        let inHostPIDNamespace = event.pidNamespace == Namespaces.hostPID
        if let resolved = resolvedContainer(cgroupID: event.cgroupID), resolved.isContainer || inHostPIDNamespace {
            // The cgroup names the container (or the host, for a task in the host's pid namespace).
            event.container = resolved
            processes.setContainer(resolved, pid: event.pid)
            if resolved.isContainer, !inHostPIDNamespace { learn(resolved, pidNamespace: event.pidNamespace, cgroupID: event.cgroupID) }
            return isSettled(resolved)
        }
        // The cgroup does not name it: a cgroup the resolver never saw (removed before this event
        // was read), or the root while in another pid namespace (a runtime's init between clone
        // and joining the container's cgroup; any container on a host whose runtime leaves the
        // v2 hierarchy alone). What the process inherited through fork says it; else /proc (all
        // hierarchies) while the process lives; else its pid namespace's container.
        if let inherited = processes.container(pid: event.pid), inherited.isContainer {
            event.container = inherited
            return isSettled(inherited)
        }
        if inHostPIDNamespace {
            event.container = .host
            return true
        }
        if let identity = ContainerIdentity.ofProcess(Int32(bitPattern: event.pid)), identity.isContainer {
            let found = context(for: identity)
            event.container = found
            processes.setContainer(found, pid: event.pid)
            return false
        }
        event.container = containerOfPIDNamespace(event.pidNamespace) ?? .unidentified
        return false
    }

    /// The container last seen in a pid namespace, unless its cgroup is gone (the namespace's
    /// inode number may since name another container's namespace).
    private func containerOfPIDNamespace(_ pidNamespace: UInt32) -> ContainerContext? {
        guard let known = containersByPIDNamespace[pidNamespace] else { return nil }
        if cgroups.exists(cgroupID: known.cgroupID) == false {
            containersByPIDNamespace.removeValue(forKey: pidNamespace)
            containerVersion &+= 1
            return nil
        }
        return known.container
    }

    /// Whether a process's container context is final: the host, a named container, or one no
    /// runtime API will name.
    private func isSettled(_ container: ContainerContext) -> Bool {
        !container.isContainer || !container.name.isEmpty || metadata == nil
    }

    /// Remembers the container of a pid namespace and the cgroup that named it (its tasks that no
    /// cgroup names fall back to it).
    private func learn(_ container: ContainerContext, pidNamespace: UInt32, cgroupID: UInt64) {
        if let known = containersByPIDNamespace[pidNamespace], known.container == container, known.cgroupID == cgroupID { return }
        containersByPIDNamespace[pidNamespace] = (container, cgroupID)
        containerVersion &+= 1
    }

    /// The container of a cgroup: cached per cgroup id; the first sight of a container fetches
    /// its metadata once from the runtime (so its first event already carries the name). The
    /// host for a cgroup the resolver does not know.
    public func container(cgroupID: UInt64) -> ContainerContext {
        resolvedContainer(cgroupID: cgroupID) ?? .host
    }

    /// The container of a cgroup, nil when the resolver does not know the id. Only what the
    /// resolver said is kept (cgroup ids are not reused), so an unknown id is asked again.
    private func resolvedContainer(cgroupID: UInt64) -> ContainerContext? {
        if let known = containers[cgroupID] {
            guard known.isContainer, known.name.isEmpty, let metadata else { return known }
            let id = known.fullID
            guard let meta = unreachable.contains(id) ? metadata.lookup(id) : metadata.cached(id) else { return known }
            // Named since it was first seen (the runtime answered later).
            unreachable.remove(id)
            var named = known
            named.describe(by: meta)
            containers[cgroupID] = named
            containerVersion &+= 1
            return named
        }
        guard let identity = cgroups.identity(forCgroupID: cgroupID) else { return nil }
        let context = identity.isContainer ? context(for: identity) : .host
        containers[cgroupID] = context
        containerVersion &+= 1
        return context
    }

    /// The context of container `id` of `runtime`, as its events carry it (its metadata from the
    /// runtime's API, fetched once on first sight), for an event no cgroup names: a change in the
    /// container's files found by file integrity monitoring, whose writer may be gone.
    public func container(id: String, runtime: ContainerRuntime) -> ContainerContext {
        context(for: ContainerIdentity(id: id, runtime: runtime))
    }

    /// The context of a container: its metadata fetched once from the runtime on first sight.
    private func context(for identity: ContainerIdentity) -> ContainerContext {
        var context = ContainerContext(fullID: identity.id, runtime: identity.runtime.rawValue, name: "", image: "",
                                       labels: [:], podUID: identity.pod?.uid ?? "")
        var meta = metadata?.cached(identity.id)
        if meta == nil, let metadata, !fetched.contains(identity.id) {
            fetched.insert(identity.id)
            meta = metadata.fetch(identity.id)
            if meta == nil, case .unavailable = metadata.sourceStatus { unreachable.insert(identity.id) }
        }
        if let meta { context.describe(by: meta) }
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

extension ContainerContext {
    /// Takes what the runtime said: name, image, labels and the details.
    mutating func describe(by meta: ContainerMetadata) {
        name = meta.name
        image = meta.image
        labels = meta.labels
        details = ContainerDetails(imageID: meta.imageID, privileged: meta.privileged, upperDir: meta.upperDir, mounts: meta.mounts,
                                   startTimeNs: meta.startTimeNs, podLabels: meta.podLabels)
    }
}
