#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// The cgroup hierarchy whose ids events carry: what the sensors' `vigil_cgroup_hierarchy` is set
/// to before load, and which mount `CgroupResolver` reads.
public enum CgroupHierarchy: UInt32, Sendable, Hashable {
    /// The v2 hierarchy (`bpf_get_current_cgroup_id()`).
    case unified = 0
    /// The v1 hierarchy of the pids controller (`task->cgroups->subsys[pids_cgrp_id]`).
    case v1Pids = 1

    /// The hierarchy for the host whose /proc/self/mountinfo this is: the v2 one when it is
    /// mounted (pure v2 and hybrid hosts), else the v1 pids hierarchy when that is (v1-only hosts:
    /// there every task's v2 cgroup is the root, which names nothing).
    public init(mountInfo text: String) {
        self = CgroupResolver.unifiedMount(inMountInfo: text) == nil && CgroupResolver.v1Mount(of: "pids", inMountInfo: text) != nil
            ? .v1Pids : .unified
    }

    /// The hierarchy for this host (`init(mountInfo:)` over /proc/self/mountinfo).
    public static var onThisHost: CgroupHierarchy {
        (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)).map(CgroupHierarchy.init(mountInfo:)) ?? .unified
    }
}

/// Maps the cgroup id a BPF program reports to the cgroup's path and container.
///
/// `bpf_get_current_cgroup_id()` returns the kernfs id of the task's cgroup v2 directory, which
/// is that directory's inode number (`st_ino`). The resolver walks the cgroup v2 mount, caches
/// inode -> path, and parses each path into a `ContainerIdentity` the first time it is asked.
/// A lookup is a dictionary hit under a mutex. A miss first asks the kernel for that one
/// directory: cgroupfs (kernfs) exports file handles whose 8 bytes are the cgroup id, so
/// `open_by_handle_at(2)` on the mount opens the directory of any live cgroup, whenever it was
/// made (needs CAP_DAC_READ_SEARCH). Only when that fails (no privilege, not a cgroupfs) does a
/// miss walk the tree, at most once per `minimumRescanInterval` (bounded by `maximumDirectories`).
/// Never throws.
public final class CgroupResolver: Sendable {
    /// Where the cgroup v2 hierarchy is mounted (`cgroup2` in /proc/self/mountinfo).
    public struct UnifiedMount: Sendable, Hashable {
        /// The mount point, e.g. `/sys/fs/cgroup/unified` on a hybrid host.
        public var mountPoint: String
        /// The hierarchy path shown at the mount point (`/` unless a sub-tree is bind-mounted).
        public var root: String

        /// Creates a mount description.
        public init(mountPoint: String, root: String = "/") {
            self.mountPoint = mountPoint
            self.root = root
        }
    }

    /// Counters describing the cache, for status output and tests.
    public struct Statistics: Sendable, Hashable {
        /// Completed walks of the hierarchy.
        public var scans: Int
        /// Cgroup directories known after the last walk.
        public var knownCgroups: Int
        /// True when the last walk stopped at `maximumDirectories`.
        public var lastScanTruncated: Bool
        /// Cgroups found by their id alone (`open_by_handle_at`), without a walk.
        public var handleLookups: Int
    }

    /// The cgroup v2 mount in use; nil when none was found (every lookup then returns nil).
    public let mount: UnifiedMount?
    /// Why there is no mount, when `mount` is nil.
    public let unavailableReason: String?
    /// The least time between two walks triggered by lookup misses.
    public let minimumRescanInterval: Duration
    /// The most directories one walk records.
    public let maximumDirectories: Int

    private let state = Mutex(State())
    /// The mount's root directory, opened on first use for `open_by_handle_at`; -1 when it
    /// cannot be opened.
    private let mountDescriptor: Mutex<Int32?> = Mutex(nil)

    /// Creates a resolver over a known cgroup v2 mount. Nothing is read until the first lookup.
    public init(
        mount: UnifiedMount, minimumRescanInterval: Duration = .milliseconds(250),
        maximumDirectories: Int = 100_000
    ) {
        self.mount = mount
        self.unavailableReason = nil
        self.minimumRescanInterval = minimumRescanInterval
        self.maximumDirectories = maximumDirectories
    }

    /// Creates a resolver over the mount of `hierarchy` listed in `mountInfoPath` (by default the
    /// hierarchy the sensors take cgroup ids from on this host); when there is none, `mount` is
    /// nil, `unavailableReason` says why, and lookups return nil.
    public init(
        hierarchy: CgroupHierarchy? = nil, mountInfoPath: String = "/proc/self/mountinfo",
        minimumRescanInterval: Duration = .milliseconds(250), maximumDirectories: Int = 100_000
    ) {
        let mountInfo = try? String(contentsOfFile: mountInfoPath, encoding: .utf8)
        let hierarchy = hierarchy ?? mountInfo.map(CgroupHierarchy.init(mountInfo:)) ?? .unified
        let mount = mountInfo.flatMap { hierarchy == .unified ? CgroupResolver.unifiedMount(inMountInfo: $0) : CgroupResolver.v1Mount(of: "pids", inMountInfo: $0) }
        self.mount = mount
        switch (mountInfo, mount) {
        case (nil, _): self.unavailableReason = "cannot read \(mountInfoPath)"
        case (_, nil): self.unavailableReason = hierarchy == .unified ? "no cgroup2 mount in \(mountInfoPath)" : "no cgroup v1 pids mount in \(mountInfoPath)"
        default: self.unavailableReason = nil
        }
        self.minimumRescanInterval = minimumRescanInterval
        self.maximumDirectories = maximumDirectories
    }

    /// The mount of the v1 hierarchy of `controller` (a `cgroup` mount whose options name it) in
    /// the text of /proc/PID/mountinfo, preferring one that shows the whole hierarchy.
    public static func v1Mount(of controller: String, inMountInfo text: String) -> UnifiedMount? {
        mounts(ofType: "cgroup", inMountInfo: text) { $0.split(separator: ",").contains { $0 == controller } }
    }

    /// The first `cgroup2` mount in the text of /proc/PID/mountinfo (see proc(5)), preferring
    /// one that shows the whole hierarchy (root `/`).
    public static func unifiedMount(inMountInfo text: String) -> UnifiedMount? {
        mounts(ofType: "cgroup2", inMountInfo: text) { _ in true }
    }

    /// The first mount of file system `type` whose super options `accept`, preferring one that
    /// shows the whole hierarchy (root `/`).
    private static func mounts(ofType type: Substring, inMountInfo text: String, options accept: (Substring) -> Bool) -> UnifiedMount? {
        var mounts: [UnifiedMount] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let separator = fields.firstIndex(of: "-"), separator >= 6, separator + 1 < fields.endIndex,
                fields[separator + 1] == type, accept(separator + 3 < fields.endIndex ? fields[separator + 3] : "")
            else { continue }
            mounts.append(
                UnifiedMount(
                    mountPoint: unescapeMountInfoField(fields[4]), root: unescapeMountInfoField(fields[3])))
        }
        return mounts.first { $0.root == "/" } ?? mounts.first
    }

    /// The container of the cgroup with this id: nil when the id is unknown (even after a
    /// permitted re-scan), an identity with runtime `.host` for host cgroups.
    public func identity(forCgroupID cgroupID: UInt64) -> ContainerIdentity? {
        lookUp(cgroupID) { state in state.identity(of: cgroupID) }
    }

    /// The cgroup's path in the hierarchy (as in /proc/PID/cgroup, e.g. `/docker/<id>`), or nil.
    public func path(forCgroupID cgroupID: UInt64) -> String? {
        lookUp(cgroupID) { state in state.paths[cgroupID] }
    }

    /// Whether the cgroup with this id still exists, asked of the kernel by its id: nil when the
    /// kernel cannot be asked (no privilege, no cgroupfs mount).
    public func exists(cgroupID: UInt64) -> Bool? {
        guard let openByHandle = Self.openByHandleAt, let root = rootDescriptor() else { return nil }
        let descriptor = Self.openDirectory(cgroupID, below: root, openByHandle)
        if descriptor >= 0 {
            close(descriptor)
            return true
        }
        return errno == ESTALE || errno == ENOENT ? false : nil
    }

    /// The ids of every cgroup in container `id` (its own cgroup and those below it), after a
    /// fresh walk: what a kernel-side cgroup filter for one container needs. Empty when none.
    public func cgroupIDs(ofContainer id: String) -> Set<UInt64> {
        guard !id.isEmpty else { return [] }
        rescan()
        return state.withLock { state in
            var matching: Set<UInt64> = []
            for cgroupID in Array(state.paths.keys) where state.identity(of: cgroupID)?.id == id {
                matching.insert(cgroupID)
            }
            return matching
        }
    }

    /// Walks the hierarchy now, regardless of `minimumRescanInterval` (unless a walk is running).
    public func rescan() {
        if claimScan(force: true) { scan() }
    }

    /// Current counters.
    public var statistics: Statistics {
        state.withLock {
            Statistics(scans: $0.scans, knownCgroups: $0.paths.count, lastScanTruncated: $0.lastScanTruncated,
                       handleLookups: $0.handleLookups)
        }
    }

    deinit {
        if let descriptor = mountDescriptor.withLock({ $0 }), descriptor >= 0 { close(descriptor) }
    }

    // MARK: - Internals

    private struct State: Sendable {
        var paths: [UInt64: String] = [:]
        /// Parsed lazily from `paths`; cleared by every walk.
        var identities: [UInt64: ContainerIdentity] = [:]
        var lastScan: ContinuousClock.Instant?
        var scanInProgress = false
        var scans = 0
        var lastScanTruncated = false
        var handleLookups = 0

        mutating func identity(of cgroupID: UInt64) -> ContainerIdentity? {
            if let cached = identities[cgroupID] { return cached }
            guard let path = paths[cgroupID] else { return nil }
            let identity = ContainerIdentity(cgroupPath: path)
            identities[cgroupID] = identity
            return identity
        }
    }

    private func lookUp<T>(_ cgroupID: UInt64, _ read: (inout State) -> T?) -> T? {
        if let hit = state.withLock({ read(&$0) }) { return hit }
        if let path = pathByHandle(cgroupID) {
            return state.withLock { state in
                state.paths[cgroupID] = path
                state.handleLookups += 1
                return read(&state)
            }
        }
        guard claimScan(force: false) else { return nil }
        scan()
        return state.withLock { read(&$0) }
    }

    /// The hierarchy path of the live cgroup `cgroupID`, asked of the kernel: a kernfs file
    /// handle (type FILEID_KERNFS, 0xfe) is the 8-byte id, `open_by_handle_at` opens the
    /// directory and /proc/self/fd names it. Nil when the cgroup is gone, the caller lacks
    /// CAP_DAC_READ_SEARCH, or the mount is not a cgroupfs (a test tree).
    private func pathByHandle(_ cgroupID: UInt64) -> String? {
        guard let mount, let openByHandle = Self.openByHandleAt, let root = rootDescriptor() else { return nil }
        let descriptor = Self.openDirectory(cgroupID, below: root, openByHandle)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(descriptor)") else { return nil }
        return Self.hierarchyPath(ofMountPath: target, mount: mount)
    }

    /// The directory of cgroup `cgroupID` opened by its kernfs file handle (type FILEID_KERNFS,
    /// 0xfe: the 8-byte id), or -1 with errno set.
    private static func openDirectory(_ cgroupID: UInt64, below root: Int32, _ openByHandle: OpenByHandleAt) -> Int32 {
        // struct file_handle { unsigned int handle_bytes; int handle_type; unsigned char f_handle[8]; }
        var handle: (UInt32, Int32, UInt64) = (8, 0xfe, cgroupID)
        return withUnsafeMutableBytes(of: &handle) { openByHandle(root, $0.baseAddress!, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    }

    /// `path` (below `mount.mountPoint`, as /proc/self/fd shows it) as a hierarchy path.
    static func hierarchyPath(ofMountPath path: String, mount: UnifiedMount) -> String? {
        let mountPoint = mount.mountPoint.hasSuffix("/") ? String(mount.mountPoint.dropLast()) : mount.mountPoint
        let root = mount.root.hasSuffix("/") ? String(mount.root.dropLast()) : mount.root
        guard path == mountPoint || path.hasPrefix(mountPoint + "/") else { return nil }
        let below = path.dropFirst(mountPoint.count)
        let joined = root + below
        return joined.isEmpty ? "/" : joined
    }

    private func rootDescriptor() -> Int32? {
        guard let mount else { return nil }
        let descriptor = mountDescriptor.withLock { descriptor in
            if descriptor == nil { descriptor = open(mount.mountPoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            return descriptor ?? -1
        }
        return descriptor >= 0 ? descriptor : nil
    }

    /// open_by_handle_at(2), a GNU extension the Glibc module does not import (no _GNU_SOURCE):
    /// looked up once in libc by name, with its C type.
    private typealias OpenByHandleAt = @convention(c) (Int32, UnsafeMutableRawPointer, Int32) -> Int32
    private static let openByHandleAt: OpenByHandleAt? = {
        // RTLD_DEFAULT is ((void *)0) in glibc: search the process's global symbols.
        guard let symbol = dlsym(nil, "open_by_handle_at") else { return nil }
        return unsafeBitCast(symbol, to: OpenByHandleAt.self)
    }()

    /// Marks a walk as running if one may start now.
    private func claimScan(force: Bool) -> Bool {
        guard mount != nil else { return false }
        let now = ContinuousClock.now
        return state.withLock { state in
            if state.scanInProgress { return false }
            if !force, let last = state.lastScan, now - last < minimumRescanInterval { return false }
            state.scanInProgress = true
            return true
        }
    }

    /// Walks outside the lock (lookups keep being served from the old map), then swaps.
    private func scan() {
        guard let mount else { return }
        let walk = CgroupTreeWalk(mount: mount, maximumDirectories: maximumDirectories)
        state.withLock { state in
            state.paths = walk.paths
            state.identities = [:]
            state.lastScan = .now
            state.scanInProgress = false
            state.scans += 1
            state.lastScanTruncated = walk.truncated
        }
    }

    /// Undoes mountinfo's octal escapes (`\040` for a space).
    private static func unescapeMountInfoField(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        var rest = field.utf8[...]
        while let byte = rest.first {
            if byte == UInt8(ascii: "\\"), rest.count >= 4,
                let value = UInt8(String(decoding: rest.dropFirst().prefix(3), as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                rest = rest.dropFirst(4)
            } else {
                bytes.append(byte)
                rest = rest.dropFirst()
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// One depth-first walk of a cgroup v2 mount: inode -> hierarchy path of every directory.
private struct CgroupTreeWalk {
    private(set) var paths: [UInt64: String] = [:]
    private(set) var truncated = false

    init(mount: CgroupResolver.UnifiedMount, maximumDirectories: Int) {
        let rootPath = mount.root.hasSuffix("/") ? String(mount.root.dropLast()) : mount.root
        guard let rootInode = Self.directoryInode(mount.mountPoint) else { return }
        paths[rootInode] = rootPath.isEmpty ? "/" : rootPath
        var pending = [(directory: mount.mountPoint, path: rootPath)]
        while let next = pending.popLast() {
            guard let stream = opendir(next.directory) else { continue }
            defer { closedir(stream) }
            while let entry = readdir(stream) {
                let type = entry.pointee.d_type
                guard type == UInt8(DT_DIR) || type == UInt8(DT_UNKNOWN) else { continue }
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                guard name != ".", name != "..", name != "" else { continue }
                let directory = next.directory + "/" + name
                guard let inode = Self.directoryInode(directory) else { continue }
                guard paths.count < maximumDirectories else {
                    truncated = true
                    return
                }
                let path = next.path + "/" + name
                paths[inode] = path
                pending.append((directory, path))
            }
        }
    }

    /// The inode of `path` if it is a directory (symbolic links are not followed).
    private static func directoryInode(_ path: String) -> UInt64? {
        var info = stat()
        guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else { return nil }
        return UInt64(info.st_ino)
    }
}
