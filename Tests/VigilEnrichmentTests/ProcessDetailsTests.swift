import Foundation
import VigilEnrichment
import VigilEvents
import XCTest

/// Falco's lineage, session, process group, capability and executable fields, on real processes
/// read from /proc by a seeded process table: a shell in a session of its own running sleep as a
/// child, the same as an unprivileged user (setpriv), and a program executed from a memfd.
final class ProcessDetailsTests: XCTestCase {
    private var started: [Process] = []

    override func tearDown() {
        for p in started where p.isRunning { p.terminate(); p.waitUntilExit() }
        started = []
    }

    struct NeverStarted: Error {}

    /// Starts `arguments` and returns its pid and the pid `found` picks once /proc shows it
    /// (polled without a clock: the process's own progress decides).
    private func start(_ arguments: [String], found: (Int32) -> Int32?) throws -> (started: Int32, found: Int32) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: arguments[0])
        p.arguments = Array(arguments.dropFirst())
        try p.run()
        started.append(p)
        let pid = p.processIdentifier
        while p.isRunning {
            if let other = found(pid) { return (pid, other) }
            sched_yield()
        }
        XCTFail("\(arguments) exited before it was found")
        throw NeverStarted()
    }

    private static func comm(_ pid: Int32) -> String? {
        (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines)
    }

    /// The process itself once it runs sleep.
    private static func sleeping(_ pid: Int32) -> Int32? { comm(pid) == "sleep" ? pid : nil }

    /// Its child once that runs sleep.
    private static func sleepingChild(_ pid: Int32) -> Int32? {
        let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        guard let child = children.split(separator: " ").first.flatMap({ Int32($0) }) else { return nil }
        return comm(child) == "sleep" ? child : nil
    }

    private func event(_ table: ProcessTable, pid: Int32, uid: UInt32 = 0) -> Event {
        let record = table.record(UInt32(pid))
        var e = Event(bootTimeNs: 1, timeNs: 2, cgroupID: 1, pid: UInt32(pid), tid: UInt32(pid), ppid: record?.ppid ?? 0,
                      uid: uid, gid: uid, cpu: 0, mountNamespace: 0, pidNamespace: Namespaces.hostPID,
                      comm: record?.comm ?? "", payload: .exit(.init(status: 0, startTimeNs: 0, durationNs: 0)))
        e.process = table.context(pid: UInt32(pid), ppid: record?.ppid ?? 0)
        return e
    }

    private func text(_ e: Event, _ field: String, _ argument: String? = nil) -> String? {
        guard case .string(let s)? = Fields.named(field)?.extract(e, argument) else { return nil }
        return s.string
    }

    private func number(_ e: Event, _ field: String) -> UInt64? {
        guard case .uint(let n)? = Fields.named(field)?.extract(e, nil) else { return nil }
        return n
    }

    private func flag(_ e: Event, _ field: String) -> Bool? {
        guard case .bool(let b)? = Fields.named(field)?.extract(e, nil) else { return nil }
        return b
    }

    func testSessionGroupAncestorsAndCapabilitiesOfAShellAndItsChild() throws {
        // setsid: sh leads a new session and process group; sh forks sleep (not its last command).
        let (shell, sleep) = try start(["/usr/bin/setsid", "/bin/sh", "-c", "/bin/sleep 1000; true"], found: Self.sleepingChild)
        let table = ProcessTable()
        table.seed()
        let e = event(table, pid: sleep)
        let shellPath = URL(fileURLWithPath: "/bin/sh").resolvingSymlinksInPath().path
        let sleepPath = URL(fileURLWithPath: "/bin/sleep").resolvingSymlinksInPath().path
        XCTAssertEqual(text(e, "proc.exepath"), sleepPath)
        XCTAssertEqual(text(e, "proc.pexe"), "/bin/sh")
        XCTAssertEqual(text(e, "proc.pexepath"), shellPath)
        XCTAssertEqual(text(e, "proc.aexepath", "1"), shellPath)
        XCTAssertEqual(text(e, "proc.aexepath", "0"), sleepPath)
        XCTAssertEqual(text(e, "proc.aexepath", "2"), try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
                       "the grandparent: this test process")
        XCTAssertEqual(text(e, "proc.aexe", "1"), "/bin/sh")
        XCTAssertEqual(number(e, "proc.sid"), UInt64(shell), "setsid made the shell a session leader")
        XCTAssertEqual(text(e, "proc.sname"), "sh")
        XCTAssertEqual(number(e, "proc.pgid"), UInt64(shell))
        XCTAssertEqual(number(e, "proc.vpgid"), UInt64(shell), "the host's pid namespace: the same id")
        XCTAssertEqual(text(e, "proc.vpgid.name"), "sh")
        XCTAssertEqual(text(e, "proc.vpgid.exe"), "/bin/sh")
        XCTAssertEqual(text(e, "proc.vpgid.exepath"), shellPath)
        // Root's sets, as /proc/PID/status says them (this test runs as root: the full bounding set).
        let status = try String(contentsOfFile: "/proc/\(sleep)/status", encoding: .utf8)
        let effective = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }.flatMap {
            UInt64($0.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16)
        })
        XCTAssertEqual(text(e, "thread.cap_effective")?.split(separator: " ").count, effective.nonzeroBitCount)
        XCTAssertEqual(text(e, "thread.cap_effective")?.contains("CAP_SYS_ADMIN"), effective & (1 << 21) != 0)
        XCTAssertEqual(text(e, "thread.cap_inheritable"), "", "nothing inheritable")
        XCTAssertEqual(flag(e, "proc.is_exe_from_memfd"), false)
        XCTAssertEqual(flag(e, "proc.is_exe_writable"), true, "root may write it")
        var info = stat()
        XCTAssertEqual(stat(sleepPath, &info), 0)
        XCTAssertEqual(number(e, "proc.exe_ino"), UInt64(info.st_ino))
        XCTAssertEqual(number(e, "proc.exe_ino.mtime"), UInt64(info.st_mtim.tv_sec) * 1_000_000_000 + UInt64(info.st_mtim.tv_nsec))
    }

    func testAnUnprivilegedProcessHasNoCapabilitiesAndCannotWriteItsExecutable() throws {
        let (_, sleep) = try start(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sleep", "1000"],
                                   found: Self.sleeping)
        let table = ProcessTable()
        table.seed()
        let e = event(table, pid: sleep, uid: 65534)
        XCTAssertEqual(text(e, "thread.cap_effective"), "")
        XCTAssertEqual(text(e, "thread.cap_permitted"), "")
        XCTAssertEqual(flag(e, "proc.is_exe_writable"), false, "root's /bin/sleep, mode 0755")
    }

    func testAProgramExecutedFromAMemfd() throws {
        let script = "import os; fd = os.memfd_create('vigil-test'); os.write(fd, open('/bin/sleep', 'rb').read()); "
            + "os.execve(fd, ['sleep', '1000'], {})"
        let (_, sleep) = try start(["/usr/bin/python3", "-c", script]) { pid in
            let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
            return exe?.hasPrefix("/memfd:") == true ? pid : nil
        }
        let table = ProcessTable()
        table.seed()
        let e = event(table, pid: sleep)
        XCTAssertEqual(flag(e, "proc.is_exe_from_memfd"), true, "exe: \(text(e, "proc.exepath") ?? "nil")")
    }
}
