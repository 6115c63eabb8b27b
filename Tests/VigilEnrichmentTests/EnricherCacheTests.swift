import Foundation
import VigilEnrichment
import VigilEvents
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
}
