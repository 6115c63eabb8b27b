import Foundation

/// The cgroup v2 directories of a container: what `vigil trace --container` turns into the
/// kernel's cgroup-id filter.
public enum ContainerCgroups {
    /// The inodes (cgroup ids, as bpf_get_current_cgroup_id reports them) of every cgroup v2
    /// directory that belongs to container `id` (full id): `docker/<id>`,
    /// `system.slice/docker-<id>.scope` and their sub-directories' roots.
    public static func cgroupIDs(ofContainer id: String, resolver: CgroupResolver = CgroupResolver()) -> Set<UInt64> {
        guard let mount = resolver.mount?.mountPoint, let walker = FileManager.default.enumerator(atPath: mount) else { return [] }
        var ids: Set<UInt64> = []
        while let path = walker.nextObject() as? String {
            guard let last = path.split(separator: "/").last, last.contains(id) else { continue }
            walker.skipDescendants()
            var st = stat()
            if stat("\(mount)/\(path)", &st) == 0 { ids.insert(UInt64(st.st_ino)) }
        }
        return ids
    }
}
