import Foundation
import VigilTestSupport
import XCTest
import Synchronization

@testable import VigilContainers

final class CgroupResolverTests: XCTestCase {
    private let dockerID = "c8f67df2938b256665aea37287fdcbf967281b7a443140ebbb14766e281aca15"
    private let podmanID = "3c795a6f416d346a998dc8e779393eedc2ccace75ba7810440857017884fad4e"
    private var tree = ""

    override func setUpWithError() throws {
        tree = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-cgroup-\(UUID().uuidString)").path
        for directory in ["docker/\(dockerID)", "machine.slice/libpod-\(podmanID).scope/container", "init.scope"] {
            try FileManager.default.createDirectory(atPath: "\(tree)/\(directory)", withIntermediateDirectories: true)
        }
        try Data().write(to: URL(fileURLWithPath: "\(tree)/cgroup.procs"))  // files are not cgroups
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: tree)
    }

    // MARK: mountinfo

    func testFindsUnifiedMountOnHybridHost() {
        let mountInfo = """
            31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
            32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
            40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
            """
        XCTAssertEqual(
            CgroupResolver.unifiedMount(inMountInfo: mountInfo),
            CgroupResolver.UnifiedMount(mountPoint: "/sys/fs/cgroup/unified", root: "/"))
    }

    func testChoosesTheHierarchyEventsTakeCgroupIDsFrom() {
        let v1Only = """
            32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
            33 31 0:30 /kubepods /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
            34 31 0:30 / /sys/fs/cgroup/pids rw,relatime shared:10 - cgroup cgroup rw,pids
            35 31 0:31 / /sys/fs/cgroup/pids_extra rw,relatime - cgroup cgroup rw,name=pidsx
            """
        XCTAssertEqual(CgroupHierarchy(mountInfo: v1Only), .v1Pids)
        XCTAssertEqual(CgroupResolver.v1Mount(of: "pids", inMountInfo: v1Only),
                       CgroupResolver.UnifiedMount(mountPoint: "/sys/fs/cgroup/pids", root: "/"), "the whole hierarchy, not name=pidsx")
        let hybrid = v1Only + "\n41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw"
        XCTAssertEqual(CgroupHierarchy(mountInfo: hybrid), .unified)
        XCTAssertEqual(CgroupHierarchy(mountInfo: "26 22 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw"), .unified)
        XCTAssertEqual(CgroupHierarchy(mountInfo: "22 1 252:1 / / rw - ext4 /dev/vda1 rw"), .unified, "nothing to choose from")
    }

    func testFindsUnifiedMountOnPureV2HostWithOptionalFields() {
        let mountInfo = """
            22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
            26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
            """
        XCTAssertEqual(CgroupResolver.unifiedMount(inMountInfo: mountInfo)?.mountPoint, "/sys/fs/cgroup")
    }

    func testPrefersWholeHierarchyAndUnescapesMountPoints() {
        let mountInfo = """
            50 22 0:23 /kubepods /var/lib/with\\040space rw - cgroup2 cgroup2 rw
            51 22 0:23 / /mnt/cgroup\\040two rw - cgroup2 cgroup2 rw
            """
        XCTAssertEqual(
            CgroupResolver.unifiedMount(inMountInfo: mountInfo),
            CgroupResolver.UnifiedMount(mountPoint: "/mnt/cgroup two", root: "/"))
        XCTAssertEqual(
            CgroupResolver.unifiedMount(inMountInfo: String(mountInfo.split(separator: "\n")[0])),
            CgroupResolver.UnifiedMount(mountPoint: "/var/lib/with space", root: "/kubepods"))
    }

    func testNoCgroup2MountMeansNilLookupsAndAReason() throws {
        let mountInfoPath = "\(tree)/mountinfo"
        try "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\nmalformed line\n"
            .write(toFile: mountInfoPath, atomically: true, encoding: .utf8)
        let resolver = CgroupResolver(mountInfoPath: mountInfoPath)
        XCTAssertNil(resolver.mount)
        XCTAssertEqual(resolver.unavailableReason, "no cgroup2 mount in \(mountInfoPath)")
        XCTAssertNil(resolver.identity(forCgroupID: 1))
        XCTAssertEqual(resolver.statistics.scans, 0)

        let unreadable = CgroupResolver(mountInfoPath: "\(tree)/missing")
        XCTAssertEqual(unreadable.unavailableReason, "cannot read \(tree)/missing")
        XCTAssertNil(unreadable.path(forCgroupID: 1))
    }

    // MARK: walking a tree

    func testMapsInodesToPathsAndIdentities() throws {
        let resolver = CgroupResolver(mount: .init(mountPoint: tree))
        let dockerInode = try inode("docker/\(dockerID)")
        XCTAssertEqual(resolver.path(forCgroupID: dockerInode), "/docker/\(dockerID)")
        XCTAssertEqual(resolver.identity(forCgroupID: dockerInode)?.id, dockerID)
        XCTAssertEqual(resolver.identity(forCgroupID: dockerInode)?.runtime, .docker)

        let podmanIdentity = resolver.identity(forCgroupID: try inode("machine.slice/libpod-\(podmanID).scope/container"))
        XCTAssertEqual(podmanIdentity?.runtime, .podman)
        XCTAssertEqual(podmanIdentity?.id, podmanID)

        XCTAssertEqual(resolver.path(forCgroupID: try inode("")), "/")
        XCTAssertEqual(resolver.identity(forCgroupID: try inode("")), .host)
        XCTAssertEqual(resolver.identity(forCgroupID: try inode("init.scope")), .host)
        XCTAssertEqual(resolver.statistics.scans, 1, "all of that from one walk")
        XCTAssertEqual(resolver.statistics.knownCgroups, 7)
    }

    func testCgroupIDsOfAContainerIncludeItsSubCgroups() throws {
        try FileManager.default.createDirectory(
            atPath: "\(tree)/docker/\(dockerID)/init.scope", withIntermediateDirectories: true)
        let resolver = CgroupResolver(mount: .init(mountPoint: tree))
        XCTAssertEqual(
            resolver.cgroupIDs(ofContainer: dockerID),
            [try inode("docker/\(dockerID)"), try inode("docker/\(dockerID)/init.scope")])
        XCTAssertEqual(
            resolver.cgroupIDs(ofContainer: podmanID),
            [try inode("machine.slice/libpod-\(podmanID).scope"), try inode("machine.slice/libpod-\(podmanID).scope/container")])
        XCTAssertEqual(resolver.cgroupIDs(ofContainer: String(repeating: "0", count: 64)), [])
        XCTAssertEqual(resolver.cgroupIDs(ofContainer: ""), [], "the host is not a container")
    }

    func testMissTriggersRescanForNewCgroup() throws {
        let resolver = CgroupResolver(mount: .init(mountPoint: tree), minimumRescanInterval: .zero)
        XCTAssertNotNil(resolver.identity(forCgroupID: try inode("init.scope")))
        let newID = String(repeating: "ab", count: 32)
        try FileManager.default.createDirectory(atPath: "\(tree)/docker/\(newID)", withIntermediateDirectories: true)
        XCTAssertEqual(resolver.identity(forCgroupID: try inode("docker/\(newID)"))?.id, newID)
        XCTAssertEqual(resolver.statistics.scans, 2)
    }

    func testRescansAreRateLimitedButCanBeForced() throws {
        let resolver = CgroupResolver(mount: .init(mountPoint: tree), minimumRescanInterval: .seconds(3600))
        XCTAssertNotNil(resolver.path(forCgroupID: try inode("init.scope")))
        try FileManager.default.createDirectory(atPath: "\(tree)/late.scope", withIntermediateDirectories: true)
        let lateInode = try inode("late.scope")
        XCTAssertNil(resolver.path(forCgroupID: lateInode), "within the interval a miss does not walk")
        XCTAssertNil(resolver.identity(forCgroupID: 0xdead_beef))
        XCTAssertEqual(resolver.statistics.scans, 1)

        resolver.rescan()
        XCTAssertEqual(resolver.path(forCgroupID: lateInode), "/late.scope")
        XCTAssertEqual(resolver.statistics.scans, 2)
    }

    func testRemovedCgroupsAreForgottenAfterRescan() throws {
        let resolver = CgroupResolver(mount: .init(mountPoint: tree))
        let dockerInode = try inode("docker/\(dockerID)")
        XCTAssertNotNil(resolver.identity(forCgroupID: dockerInode))
        try FileManager.default.removeItem(atPath: "\(tree)/docker/\(dockerID)")
        resolver.rescan()
        XCTAssertNil(resolver.path(forCgroupID: dockerInode))
    }

    func testWalkIsBounded() throws {
        let resolver = CgroupResolver(mount: .init(mountPoint: tree), maximumDirectories: 3)
        resolver.rescan()
        XCTAssertEqual(resolver.statistics.knownCgroups, 3)
        XCTAssertTrue(resolver.statistics.lastScanTruncated)
    }

    func testMountShowingASubtreePrefixesItsRoot() throws {
        let podUID = "95675ae9-a6f8-4a63-a7c9-6dc4dd2d6b26"
        try FileManager.default.createDirectory(
            atPath: "\(tree)/burstable/pod\(podUID)/\(dockerID)", withIntermediateDirectories: true)
        let resolver = CgroupResolver(mount: .init(mountPoint: tree, root: "/kubepods"))
        let identity = resolver.identity(forCgroupID: try inode("burstable/pod\(podUID)/\(dockerID)"))
        XCTAssertEqual(resolver.path(forCgroupID: try inode("")), "/kubepods")
        XCTAssertEqual(identity?.runtime, .kube)
        XCTAssertEqual(identity?.pod, KubernetesPod(uid: podUID, qosClass: .burstable))
    }

    func testConcurrentLookupsAgree() throws {
        let resolver = CgroupResolver(mount: .init(mountPoint: tree), minimumRescanInterval: .zero)
        let dockerInode = try inode("docker/\(dockerID)")
        let expectedID = dockerID
        let wrong = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 2_000) { iteration in
            if iteration % 100 == 0 { resolver.rescan() }
            let found = resolver.identity(forCgroupID: dockerInode)
            _ = resolver.identity(forCgroupID: UInt64(iteration) | 0xffff_0000_0000)  // misses
            // A lookup may only miss while another thread's walk is swapping maps.
            if let found, found.id != expectedID { wrong.withLock { $0 += 1 } }
        }
        XCTAssertEqual(wrong.withLock { $0 }, 0)
        XCTAssertEqual(resolver.identity(forCgroupID: dockerInode)?.id, dockerID)
    }

    // MARK: this host

    func testResolvesOwnCgroupOnThisHost() throws {
        let resolver = CgroupResolver()
        guard let mount = resolver.mount else {
            // Every kernel Vigil's sensors run on has cgroup v2 (bpf_get_current_cgroup_id needs it).
            throw cannotRun("no cgroup v2 hierarchy on this host: \(resolver.unavailableReason ?? "")")
        }
        let ownCgroup = try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)
        let v2Path = try XCTUnwrap(
            ownCgroup.split(separator: "\n").first { $0.hasPrefix("0::") }?.dropFirst(3), "no 0:: line")
        var info = stat()
        XCTAssertEqual(stat(mount.mountPoint + v2Path, &info), 0)
        XCTAssertEqual(resolver.path(forCgroupID: UInt64(info.st_ino)), v2Path == "/" ? "/" : String(v2Path))
        XCTAssertEqual(resolver.identity(forCgroupID: UInt64(info.st_ino)), ContainerIdentity(cgroupPath: v2Path))
    }

    func testACgroupMadeAfterAWalkIsFoundByItsIDWithoutWaitingForTheNextWalk() throws {
        // Containers start at any time: a cgroup made just after a walk (another container's, a
        // moment earlier) must be named at its first event, not after the walk interval, and
        // never taken for the host meanwhile.
        let resolver = CgroupResolver(minimumRescanInterval: .seconds(3600))
        guard let mount = resolver.mount else {
            throw cannotRun("no cgroup v2 hierarchy on this host: \(resolver.unavailableReason ?? "")")
        }
        guard getuid() == 0 else { throw cannotRun("making cgroups and open_by_handle_at need root") }
        resolver.rescan()
        let scans = resolver.statistics.scans, handleLookups = resolver.statistics.handleLookups
        let parent = "\(mount.mountPoint)/vigil-test-\(UUID().uuidString.prefix(8))"
        let made = "\(parent)/docker/\(dockerID)"
        XCTAssertEqual(mkdir(parent, 0o755), 0, "mkdir \(parent): \(String(cString: strerror(errno)))")
        defer { for path in [made, "\(parent)/docker", parent] { rmdir(path) } }
        XCTAssertEqual(mkdir("\(parent)/docker", 0o755), 0)
        XCTAssertEqual(mkdir(made, 0o755), 0)
        var info = stat()
        XCTAssertEqual(stat(made, &info), 0)
        let hierarchyPath = String(made.dropFirst(mount.mountPoint.count))
        XCTAssertEqual(resolver.path(forCgroupID: UInt64(info.st_ino)), hierarchyPath)
        XCTAssertEqual(resolver.identity(forCgroupID: UInt64(info.st_ino))?.id, dockerID)
        XCTAssertEqual(resolver.statistics.scans, scans, "found by its id, not by a walk")
        XCTAssertEqual(resolver.statistics.handleLookups, handleLookups + 1)
        XCTAssertNil(resolver.path(forCgroupID: 0xffff_ffff_0000), "an id no cgroup has")
    }

    func testHierarchyPathOfAMountPathHonoursTheMountsRoot() {
        let whole = CgroupResolver.UnifiedMount(mountPoint: "/sys/fs/cgroup/unified")
        XCTAssertEqual(CgroupResolver.hierarchyPath(ofMountPath: "/sys/fs/cgroup/unified", mount: whole), "/")
        XCTAssertEqual(CgroupResolver.hierarchyPath(ofMountPath: "/sys/fs/cgroup/unified/docker/\(dockerID)", mount: whole),
                       "/docker/\(dockerID)")
        XCTAssertNil(CgroupResolver.hierarchyPath(ofMountPath: "/sys/fs/cgroup/unifiedx/a", mount: whole))
        let subtree = CgroupResolver.UnifiedMount(mountPoint: "/sys/fs/cgroup/", root: "/kubepods/")
        XCTAssertEqual(CgroupResolver.hierarchyPath(ofMountPath: "/sys/fs/cgroup", mount: subtree), "/kubepods")
        XCTAssertEqual(CgroupResolver.hierarchyPath(ofMountPath: "/sys/fs/cgroup/burstable/x", mount: subtree), "/kubepods/burstable/x")
    }

    private func inode(_ relativePath: String) throws -> UInt64 {
        var info = stat()
        guard stat("\(tree)/\(relativePath)", &info) == 0 else {
            throw StatFailed(path: "\(tree)/\(relativePath)", errno: errno)
        }
        return UInt64(info.st_ino)
    }
}

private struct StatFailed: Error, CustomStringConvertible {
    var path: String
    var errno: Int32
    var description: String { "stat \(path): \(String(cString: strerror(errno)))" }
}
