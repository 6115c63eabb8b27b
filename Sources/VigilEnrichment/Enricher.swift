import Foundation
import VigilContainers
import VigilEvents

/// Adds what the kernel does not say to each event: process ancestry and details (the process
/// table), user and group names, and the container (cgroup id -> id and runtime; name, image and
/// labels from the runtime's API). Never fails per event: unknown fields stay empty.
/// Driven by one thread (the event pipeline).
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
    private var fetched: Set<String> = []

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
        processes.apply(&event)
        event.process.userName = users[event.uid]
        event.process.groupName = groups[event.gid]
        if let login = event.process.loginUID { event.process.loginUserName = users[login] }
        event.container = container(cgroupID: event.cgroupID)
        guard event.pidNamespace != Namespaces.hostPID else { return }
        if event.container.isContainer {
            containersByPIDNamespace[event.pidNamespace] = event.container
        } else {
            // In another pid namespace but the v2 cgroup is still the root: a runtime's init
            // (runc:[2:INIT]) before it joined the container's cgroup. Its pid namespace, /proc
            // (all hierarchies) or, when it is already gone, "unidentified" says so.
            event.container = containersByPIDNamespace[event.pidNamespace]
                ?? ContainerIdentity.ofProcess(Int32(bitPattern: event.pid)).flatMap { $0.isContainer ? context(for: $0) : nil }
                ?? .unidentified
        }
    }

    /// The container of a cgroup: cached per cgroup id; the first sight of a container fetches
    /// its metadata once from the runtime (so its first event already carries the name).
    public func container(cgroupID: UInt64) -> ContainerContext {
        if let known = containers[cgroupID], !known.isContainer || !known.name.isEmpty { return known }
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
