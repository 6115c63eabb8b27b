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
    }

    /// The container of a cgroup: cached per cgroup id; the first sight of a container fetches
    /// its metadata once from the runtime (so its first event already carries the name).
    public func container(cgroupID: UInt64) -> ContainerContext {
        if let known = containers[cgroupID], !known.isContainer || !known.name.isEmpty { return known }
        guard let identity = cgroups.identity(forCgroupID: cgroupID), identity.isContainer else {
            containers[cgroupID] = .host
            return .host
        }
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
        containers[cgroupID] = context
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
