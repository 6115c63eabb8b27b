import Foundation
import VigilContainers
import VigilEnrichment
import VigilEvents
import VigilTestSupport
import XCTest

/// The enricher keeps what it gave a process's events and hands it to the next ones; these tests
/// feed it exec, fork, exit and open events the way the kernel orders them and check that what it
/// hands out follows every change (and the JSON with it).
final class EnricherCacheTests: XCTestCase {
    /// A cgroup id no cgroup has: the host.
    private static let hostCgroup: UInt64 = 1

    private func event(_ pid: UInt32, ppid: UInt32, _ comm: ByteString, _ payload: Payload, uid: UInt32 = 0,
                       cgroupID: UInt64 = hostCgroup) -> Event {
        Event(bootTimeNs: 1, timeNs: 2, cgroupID: cgroupID, pid: pid, tid: pid, ppid: ppid, uid: uid, gid: 0, cpu: 0,
              mountNamespace: 4026531840, pidNamespace: Namespaces.hostPID, comm: comm, payload: payload)
    }

    /// `event` in cgroup `cgroupID` and pid namespace `pidNamespace`.
    private func inside(_ event: Event, cgroupID: UInt64, pidNamespace: UInt32) -> Event {
        var event = event
        event.cgroupID = cgroupID
        event.pidNamespace = pidNamespace
        return event
    }

    private func exec(_ pid: UInt32, ppid: UInt32, _ comm: ByteString, _ args: [ByteString]) -> Event {
        event(pid, ppid: ppid, comm, .exec(.init(filename: ByteString("/bin/\(comm)"), executablePath: ByteString("/bin/\(comm)"), arguments: args,
                                                 argumentsTruncated: false, cwd: "/", tty: "", ttyNumber: 0, loginUID: UInt32.max,
                                                 startTimeNs: 0)))
    }

    private func open(_ pid: UInt32, ppid: UInt32, _ comm: ByteString, uid: UInt32 = 0) -> Event {
        event(pid, ppid: ppid, comm, .open(.init(syscall: "openat", name: "/etc/hosts", path: "/etc/hosts", flags: 0, mode: 0,
                                                 dirfd: -100, result: 3, truncated: false)), uid: uid)
    }

    private func fork(_ pid: UInt32, ppid: UInt32, _ comm: ByteString, child: UInt32) -> Event {
        event(pid, ppid: ppid, comm, .fork(.init(childPID: child, childTID: child, isThread: false, childStartTimeNs: 0)))
    }

    private func exit(_ pid: UInt32, ppid: UInt32, _ comm: ByteString) -> Event {
        event(pid, ppid: ppid, comm, .exit(.init(status: 0, startTimeNs: 0, durationNs: 1)))
    }

    private func enriched(_ enricher: Enricher, _ event: Event) -> Event {
        var event = event
        enricher.enrich(&event)
        return event
    }

    /// init (1) -> bash (100) -> sh (200), each known from its exec.
    private func tree() -> Enricher {
        let enricher = Enricher(metadata: nil, seedProcesses: false)
        for e in [exec(1, ppid: 0, "systemd", ["/sbin/init"]), exec(100, ppid: 1, "bash", ["bash", "-l"]),
                  exec(200, ppid: 100, "sh", ["sh", "-c", "cat"])] {
            _ = enriched(enricher, e)
        }
        return enricher
    }

    /// Every event of a process gets its start time (from its exec, its parent's fork, or the
    /// /proc seed), so proc.duration is its age on opens too, not only on exit.
    func testEveryEventKnowsWhenItsProcessStarted() {
        let enricher = Enricher(metadata: nil, seedProcesses: false)
        var start = exec(300, ppid: 1, "nginx", ["nginx"])
        if case .exec(var x) = start.payload { x.startTimeNs = 1_000_000_000; start.payload = .exec(x) }
        _ = enriched(enricher, start)
        var later = open(300, ppid: 1, "nginx")
        later.bootTimeNs = 61_000_000_000
        XCTAssertEqual(Fields.named("proc.duration")?.extract(enriched(enricher, later), nil), .uint(60_000_000_000))

        var forked = fork(300, ppid: 1, "nginx", child: 301)
        if case .fork(var f) = forked.payload { f.childStartTimeNs = 50_000_000_000; forked.payload = .fork(f) }
        _ = enriched(enricher, forked)
        var child = open(301, ppid: 300, "nginx")
        child.bootTimeNs = 51_000_000_000
        XCTAssertEqual(Fields.named("proc.duration")?.extract(enriched(enricher, child), nil), .uint(1_000_000_000),
                       "a forked child's age counts from its own fork, not its parent's start")
    }

    /// The /proc seed reads each process's start (stat field 22, in clock ticks since boot).
    func testTheProcSeedReadsStartTimes() throws {
        let table = ProcessTable()
        table.seed()
        let own = try XCTUnwrap(table.record(UInt32(getpid())))
        let start = try XCTUnwrap(own.startTimeNs)
        var now = timespec()
        clock_gettime(CLOCK_BOOTTIME, &now)
        XCTAssertLessThanOrEqual(start, UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec), "started before now")
        XCTAssertGreaterThan(start, 0)
    }

    func testAncestryHandedToLaterEventsFollowsAnAncestorsExec() {
        let enricher = tree()
        let before = enriched(enricher, open(200, ppid: 100, "sh"))
        XCTAssertEqual(before.process.ancestorNames, ["bash", "systemd"])
        XCTAssertTrue(EventFormat.json(before).contains("\"proc.pcmdline\":\"bash -l\""))
        XCTAssertEqual(enriched(enricher, open(200, ppid: 100, "sh")).process.ancestorNames, ["bash", "systemd"], "the same, kept")
        _ = enriched(enricher, exec(100, ppid: 1, "zsh", ["zsh"])) // the parent execs another program
        let after = enriched(enricher, open(200, ppid: 100, "sh"))
        XCTAssertEqual(after.process.ancestorNames, ["zsh", "systemd"])
        XCTAssertEqual(after.process.parentArguments, ["zsh"])
        XCTAssertTrue(EventFormat.json(after).contains("\"proc.pname\":\"zsh\""))
        XCTAssertTrue(EventFormat.json(after).contains("\"proc.pcmdline\":\"zsh\""))
    }

    func testAncestryFollowsReparentingWhenTheParentExits() {
        let enricher = tree()
        XCTAssertEqual(enriched(enricher, open(200, ppid: 100, "sh")).process.ancestorNames, ["bash", "systemd"])
        _ = enriched(enricher, exit(100, ppid: 1, "bash"))
        // The kernel now reports init as the parent.
        let orphan = enriched(enricher, open(200, ppid: 1, "sh"))
        XCTAssertEqual(orphan.process.ancestorNames, ["systemd"])
        XCTAssertEqual(orphan.process.ancestorPIDs, [1])
        XCTAssertTrue(EventFormat.json(orphan).contains("\"proc.ppid\":1,"))
        XCTAssertTrue(EventFormat.json(orphan).contains("\"proc.anames\":[\"systemd\"]"))
    }

    func testAGrandparentsExitShortensTheAncestry() {
        let enricher = tree()
        _ = enriched(enricher, exec(300, ppid: 200, "cat", ["cat"]))
        XCTAssertEqual(enriched(enricher, open(300, ppid: 200, "cat")).process.ancestorNames, ["sh", "bash", "systemd"])
        _ = enriched(enricher, exit(100, ppid: 1, "bash")) // sh's own events would now say ppid 1; cat's still say 200
        XCTAssertEqual(enriched(enricher, open(300, ppid: 200, "cat")).process.ancestorNames, ["sh"],
                       "the walk stops where the table has no record, as it did before anything was kept")
    }

    func testAForkedChildAndAReusedPidGetTheirOwnDetails() {
        let enricher = tree()
        _ = enriched(enricher, fork(200, ppid: 100, "sh", child: 201))
        let child = enriched(enricher, open(201, ppid: 200, "sh"))
        XCTAssertEqual(child.process.arguments, ["sh", "-c", "cat"], "a forked child runs its parent's program")
        XCTAssertEqual(child.process.ancestorNames, ["sh", "bash", "systemd"])
        _ = enriched(enricher, exec(201, ppid: 200, "cat", ["cat", "/etc/hosts"]))
        XCTAssertEqual(enriched(enricher, open(201, ppid: 200, "cat")).process.arguments, ["cat", "/etc/hosts"])
        _ = enriched(enricher, exit(201, ppid: 200, "cat"))
        // pid 201 again, for another process that the table learns only from this event.
        let reused = enriched(enricher, open(201, ppid: 100, "vi"))
        XCTAssertNil(reused.process.arguments)
        XCTAssertEqual(reused.process.ancestorNames, ["bash", "systemd"])
        XCTAssertTrue(EventFormat.json(reused).contains("\"proc.name\":\"vi\""))
        XCTAssertFalse(EventFormat.json(reused).contains("proc.argv"))
    }

    func testUserNamesFollowAChangeOfUserWithoutExec() {
        let enricher = tree()
        XCTAssertEqual(enriched(enricher, open(200, ppid: 100, "sh", uid: 0)).process.userName, "root")
        let dropped = enriched(enricher, open(200, ppid: 100, "sh", uid: 4_000_123)) // setuid() to a uid with no name
        XCTAssertNil(dropped.process.userName)
        XCTAssertTrue(EventFormat.json(dropped).contains("\"user.uid\":4000123"))
        XCTAssertFalse(EventFormat.json(dropped).contains("user.name"))
        XCTAssertEqual(enriched(enricher, open(200, ppid: 100, "sh", uid: 0)).process.userName, "root")
    }

    func testEventsOfAProcessShareOneContextUntilSomethingChanges() {
        let enricher = tree()
        let a = enriched(enricher, open(200, ppid: 100, "sh")), b = enriched(enricher, open(200, ppid: 100, "sh"))
        XCTAssertEqual(EventFormat.json(a), EventFormat.json(b))
        XCTAssertTrue(a.process.ancestorNames.withUnsafeBufferPointer { x in b.process.ancestorNames.withUnsafeBufferPointer { $0.baseAddress == x.baseAddress } },
                      "the second event got the first one's context, not a new one")
    }

    // MARK: containers

    /// A cgroup tree in a temporary directory (not a cgroupfs: only walks find its directories).
    private final class CgroupTree {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-enricher-\(UUID().uuidString)").path
        let resolver: CgroupResolver

        init() throws {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            // Walks only when told (`rescan`), as on a host where one has just run.
            resolver = CgroupResolver(mount: .init(mountPoint: root), minimumRescanInterval: .seconds(3600))
        }

        deinit { try? FileManager.default.removeItem(atPath: root) }

        /// Makes `docker/<id>` and returns its cgroup id (inode).
        func container(_ id: String) throws -> UInt64 {
            try FileManager.default.createDirectory(atPath: "\(root)/docker/\(id)", withIntermediateDirectories: true)
            return try XCTUnwrap((try FileManager.default.attributesOfItem(atPath: "\(root)/docker/\(id)")[.systemFileNumber] as? NSNumber)?.uint64Value)
        }

        var rootID: UInt64 { (try? FileManager.default.attributesOfItem(atPath: root)[.systemFileNumber] as? NSNumber)?.uint64Value ?? 0 }
    }

    /// A pid namespace that is not the host's, and pids no process can have (above pid_max), so
    /// /proc never names their container.
    private static let containerPIDNamespace: UInt32 = 4026599999
    private static let absentPID: UInt32 = 0x7fff_0000
    private let firstID = String(repeating: "1f", count: 32), secondID = String(repeating: "2e", count: 32)

    func testACgroupTheResolverDidNotKnowYetIsNamedOnceItDoesAndNeverTakenForTheHost() throws {
        let tree = try CgroupTree()
        let enricher = Enricher(metadata: nil, seedProcesses: false, cgroups: tree.resolver)
        XCTAssertEqual(enriched(enricher, inside(open(1, ppid: 0, "systemd"), cgroupID: tree.rootID, pidNamespace: Namespaces.hostPID)).container.id,
                       "host", "the first lookup walks the tree")
        let late = try tree.container(firstID) // made after the walk: unknown until the next one
        let pid = Self.absentPID
        let before = enriched(enricher, inside(open(pid, ppid: 1, "cat"), cgroupID: late, pidNamespace: Self.containerPIDNamespace))
        XCTAssertEqual(before.container.id, "unknown", "not the host, and not a container it cannot name")
        tree.resolver.rescan()
        for _ in 0..<2 {
            let after = enriched(enricher, inside(open(pid, ppid: 1, "cat"), cgroupID: late, pidNamespace: Self.containerPIDNamespace))
            XCTAssertEqual(after.container.fullID, firstID)
            XCTAssertTrue(EventFormat.json(after).contains("\"container.id\":\"\(firstID.prefix(12))\""))
        }
        // A host process in a cgroup that is gone before it was seen: the host.
        XCTAssertEqual(enriched(enricher, inside(open(pid + 1, ppid: 1, "cat"), cgroupID: 0xffff_ffff_0000, pidNamespace: Namespaces.hostPID)).container.id,
                       "host")
    }

    func testAProcessWhoseCgroupCannotNameItKeepsItsAncestorsContainerThroughForkAndExec() throws {
        let tree = try CgroupTree()
        let cgroup = try tree.container(firstID)
        let enricher = Enricher(metadata: nil, seedProcesses: false, cgroups: tree.resolver)
        let shell = Self.absentPID, child = Self.absentPID + 1, grandchild = Self.absentPID + 2
        // The container's shell, named by its cgroup; in the host's pid namespace (docker run --pid=host).
        let host = Namespaces.hostPID
        let named = enriched(enricher, inside(exec(shell, ppid: 1, "bash", ["bash"]), cgroupID: cgroup, pidNamespace: host))
        XCTAssertEqual(named.container.fullID, firstID)
        _ = enriched(enricher, inside(fork(shell, ppid: 1, "bash", child: child), cgroupID: cgroup, pidNamespace: host))
        // Its child's events carry a cgroup id the resolver does not know (the cgroup was removed
        // before they were read): the child is still in its parent's container, after its exec too.
        let gone: UInt64 = 0xffff_ffff_0000
        XCTAssertEqual(enriched(enricher, inside(open(child, ppid: shell, "bash"), cgroupID: gone, pidNamespace: host)).container.fullID, firstID)
        _ = enriched(enricher, inside(exec(child, ppid: shell, "cat", ["cat"]), cgroupID: gone, pidNamespace: host))
        XCTAssertEqual(enriched(enricher, inside(open(child, ppid: shell, "cat"), cgroupID: gone, pidNamespace: host)).container.fullID, firstID)
        _ = enriched(enricher, inside(fork(child, ppid: shell, "cat", child: grandchild), cgroupID: gone, pidNamespace: host))
        let last = enriched(enricher, inside(exit(grandchild, ppid: child, "cat"), cgroupID: gone, pidNamespace: host))
        XCTAssertEqual(last.container.fullID, firstID, "to its last event")
        // A host process's child is the host's, whatever its cgroup id.
        _ = enriched(enricher, fork(100, ppid: 1, "bash", child: 101))
        XCTAssertEqual(enriched(enricher, inside(open(101, ppid: 100, "bash"), cgroupID: gone, pidNamespace: host)).container.id, "host")
    }

    func testATaskInAnotherPIDNamespaceIsNeverTheHostAndACgroupOverridesWhatItInherited() throws {
        let tree = try CgroupTree()
        let first = try tree.container(firstID), second = try tree.container(secondID)
        let enricher = Enricher(metadata: nil, seedProcesses: false, cgroups: tree.resolver)
        let runtime = Self.absentPID, initPID = Self.absentPID + 1
        // A runtime on the host forks its init, which enters a new pid namespace before it joins
        // the container's cgroup: not the host it was forked from.
        _ = enriched(enricher, fork(runtime, ppid: 1, "runc", child: initPID))
        let setup = enriched(enricher, inside(open(initPID, ppid: runtime, "runc:[2:INIT]"), cgroupID: tree.rootID, pidNamespace: Self.containerPIDNamespace))
        XCTAssertEqual(setup.container.id, "unknown")
        XCTAssertEqual(enriched(enricher, inside(open(initPID, ppid: runtime, "bash"), cgroupID: first, pidNamespace: Self.containerPIDNamespace)).container.fullID,
                       firstID)
        // Moved to another container's cgroup: the cgroup says so.
        XCTAssertEqual(enriched(enricher, inside(open(initPID, ppid: runtime, "bash"), cgroupID: second, pidNamespace: Self.containerPIDNamespace)).container.fullID,
                       secondID)
    }

    func testAPIDNamespacesContainerHoldsOnlyWhileItsCgroupExists() throws {
        // Pid namespace inode numbers are reused as soon as a namespace is freed: the next
        // container's runtime init, before it joins its cgroup, may have the last one's number.
        let resolver = CgroupResolver()
        guard let mount = resolver.mount else { throw cannotRun("no cgroup v2 hierarchy: \(resolver.unavailableReason ?? "")") }
        guard getuid() == 0 else { throw cannotRun("making cgroups and open_by_handle_at need root") }
        let parent = "\(mount.mountPoint)/vigil-test-\(UUID().uuidString.prefix(8))", made = "\(parent)/docker/\(firstID)"
        defer { for path in [made, "\(parent)/docker", parent] { rmdir(path) } }
        for path in [parent, "\(parent)/docker", made] { XCTAssertEqual(mkdir(path, 0o755), 0, "mkdir \(path)") }
        var info = stat(), root = stat()
        XCTAssertEqual(stat(made, &info), 0)
        XCTAssertEqual(stat(mount.mountPoint, &root), 0)
        let enricher = Enricher(metadata: nil, seedProcesses: false, cgroups: resolver)
        let shell = Self.absentPID, execInit = Self.absentPID + 1, nextInit = Self.absentPID + 2
        let ns = Self.containerPIDNamespace
        XCTAssertEqual(enriched(enricher, inside(open(shell, ppid: 1, "bash"), cgroupID: UInt64(info.st_ino), pidNamespace: ns)).container.fullID, firstID)
        // docker exec: runc's init enters the namespace before the cgroup; the container still runs.
        XCTAssertEqual(enriched(enricher, inside(open(execInit, ppid: 1, "runc:[2:INIT]"), cgroupID: UInt64(root.st_ino), pidNamespace: ns)).container.fullID,
                       firstID)
        // The container is gone (its cgroup removed); another one's init has the same namespace number.
        XCTAssertEqual(rmdir(made), 0)
        XCTAssertEqual(enriched(enricher, inside(open(nextInit, ppid: 1, "runc:[2:INIT]"), cgroupID: UInt64(root.st_ino), pidNamespace: ns)).container.id,
                       "unknown", "not the container that had the namespace number before")
    }
}
