import Foundation
import VigilEnrichment
import VigilEvents
import XCTest

/// Falco's lineage, session, process group, capability and executable fields, on real processes
/// read from /proc by a seeded process table: a shell in a session of its own running sleep as a
/// child, the same as an unprivileged user (setpriv), and a program executed from a memfd.
final class ProcessDetailsTests: XCTestCase {
    private var started: [Process] = []

    /// What `start` found (children of the started programs): killed with them.
    private var found: [Int32] = []

    override func tearDown() {
        // SIGKILL: a shell may have been started with SIGTERM ignored.
        for pid in found {
            let group = getpgid(pid)
            kill(pid, SIGKILL)
            if group > 1, group != getpgrp() { kill(-group, SIGKILL) } // setsid's shell and its children
        }
        for p in started where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        started = []
        found = []
    }

    struct NeverStarted: Error {}

    /// Starts `arguments` and returns its pid and the pid `found` picks once /proc shows it
    /// (polled every millisecond; a program that neither gets there nor exits in a minute fails).
    private func start(_ arguments: [String], environment: [String: String]? = nil, found: (Int32) -> Int32?) throws -> (started: Int32, found: Int32) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: arguments[0])
        p.arguments = Array(arguments.dropFirst())
        if let environment { p.environment = environment }
        // Not this test's output: a child left holding it would keep `swift test` waiting.
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        started.append(p)
        let pid = p.processIdentifier
        for _ in 0..<60_000 where p.isRunning {
            if let other = found(pid) {
                self.found.append(other)
                return (pid, other)
            }
            usleep(1000)
        }
        XCTFail("\(arguments) exited or never got there")
        throw NeverStarted()
    }

    /// Where /proc/PID/exe points.
    private static func exe(_ pid: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/\(pid)/exe", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }

    private static func comm(_ pid: Int32) -> String? {
        (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines)
    }

    /// The process itself once it runs sleep.
    private static func sleeping(_ pid: Int32) -> Int32? { comm(pid) == "sleep" ? pid : nil }

    /// Its child or grandchild once that runs sleep (setsid forks when it is a group leader).
    private static func sleepingDescendant(_ pid: Int32) -> Int32? {
        var queue = [pid]
        while let next = queue.popLast() {
            if next != pid, comm(next) == "sleep" { return next }
            let children = (try? String(contentsOfFile: "/proc/\(next)/task/\(next)/children", encoding: .utf8)) ?? ""
            queue += children.split(separator: " ").compactMap { Int32($0) }
        }
        return nil
    }

    /// The parent pid /proc gives.
    private static func parent(_ pid: Int32) -> Int32? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ").dropFirst(1).first.flatMap { Int32($0) }
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
        let (_, sleep) = try start(["/usr/bin/setsid", "-w", "/bin/sh", "-c", "/bin/sleep 1000; true"], found: Self.sleepingDescendant)
        let shell = try XCTUnwrap(Self.parent(sleep))
        let grandparent = try XCTUnwrap(Self.parent(shell))
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
        XCTAssertEqual(text(e, "proc.aexepath", "2"), Self.exe(grandparent),
                       "the grandparent: setsid when it forked, else this test process")
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
            Self.exe(pid)?.hasPrefix("/memfd:") == true ? pid : nil
        }
        let table = ProcessTable()
        table.seed()
        let e = event(table, pid: sleep)
        XCTAssertEqual(flag(e, "proc.is_exe_from_memfd"), true, "exe: \(text(e, "proc.exepath") ?? "nil")")
    }
    /// proc.vpid and proc.is_vpgid_leader on a program that is pid 1 of a new pid namespace and
    /// leads its own group there (unshare --pid --fork setsid sleep), and on its host-side
    /// parent; proc.env is the environment it was started with.
    func testNamespacePidGroupLeaderAndEnvironmentOfARealProcess() throws {
        let marker = "vigil-\(UUID().uuidString)"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        p.arguments = ["--pid", "--fork", "/usr/bin/setsid", "/bin/sleep", "1000"]
        p.environment = ["PATH": "/usr/bin:/bin", "VIGIL_MARKER": marker]
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        started.append(p)
        var sleep: Int32?
        for _ in 0..<60_000 where p.isRunning && sleep == nil {
            sleep = Self.sleepingDescendant(p.processIdentifier)
            if sleep == nil { usleep(1000) }
        }
        let pid = try XCTUnwrap(sleep, "unshare's sleep never ran")
        found.append(pid)
        let table = ProcessTable()
        table.readsEnvironment = true
        table.seed()
        let e = event(table, pid: pid)
        XCTAssertEqual(number(e, "proc.vpid"), 1, "pid 1 of the new pid namespace")
        XCTAssertNotEqual(UInt32(pid), 1)
        XCTAssertEqual(number(e, "proc.vpgid"), 1, "setsid made it lead its group")
        XCTAssertEqual(flag(e, "proc.is_vpgid_leader"), true)
        XCTAssertEqual(Set(text(e, "proc.env")?.split(separator: " ").map(String.init) ?? []), ["PATH=/usr/bin:/bin", "VIGIL_MARKER=\(marker)"],
                       "the environment given to unshare, passed on by setsid to sleep")
        // unshare itself: in the host's namespace, in this test's process group, not its leader.
        let unshare = event(table, pid: p.processIdentifier)
        XCTAssertEqual(number(unshare, "proc.vpid"), UInt64(p.processIdentifier), "the host's pid namespace: the same id")
        XCTAssertEqual(flag(unshare, "proc.is_vpgid_leader"), getpgid(p.processIdentifier) == p.processIdentifier)
    }
    /// An exec Vigil reads too late (the process is gone) keeps the pids and group from before,
    /// not the environment: the exec was given a new one, which /proc can no longer tell.
    func testAnExecOfAProcessAlreadyGoneHasNoEnvironment() throws {
        let (_, sleep) = try start(["/bin/sleep", "1000"], found: Self.sleeping)
        _ = try environ(sleep)
        let table = ProcessTable()
        table.readsEnvironment = true
        table.seed()
        XCTAssertNotNil(table.record(UInt32(sleep))?.details.environment, "read while it runs")
        kill(sleep, SIGKILL)
        started.last?.waitUntilExit()
        let exec = Event(bootTimeNs: 1, timeNs: 2, cgroupID: 1, pid: UInt32(sleep), tid: UInt32(sleep), ppid: 1, uid: 0, gid: 0, cpu: 0,
                         mountNamespace: 0, pidNamespace: Namespaces.hostPID, comm: "curl",
                         payload: .exec(.init(filename: "/usr/bin/curl", executablePath: "/usr/bin/curl", arguments: ["curl"],
                                              argumentsTruncated: false, cwd: "/", tty: "", ttyNumber: 0, loginUID: 0, startTimeNs: 1)))
        table.update(with: exec)
        let details = try XCTUnwrap(table.record(UInt32(sleep))?.details)
        XCTAssertNil(details.environment)
        XCTAssertEqual(details.vpid, UInt32(sleep), "the pid stays across an exec")
    }
    /// A forked child is not its parent: no proc.vpid (nor group leadership) until it is known,
    /// which its first own event in the host's pid namespace tells (there its pid is its pid).
    func testAForkedChildHasItsOwnNamespacePid() throws {
        let (_, sleep) = try start(["/bin/sleep", "1000"], found: Self.sleeping)
        let table = ProcessTable()
        table.seed()
        func event(pid: UInt32, _ payload: Payload) -> Event {
            Event(bootTimeNs: 1, timeNs: 2, cgroupID: 1, pid: pid, tid: pid, ppid: UInt32(sleep), uid: 0, gid: 0, cpu: 0,
                  mountNamespace: 0, pidNamespace: Namespaces.hostPID, comm: "sleep", payload: payload)
        }
        XCTAssertEqual(table.record(UInt32(sleep))?.details.vpid, UInt32(sleep))
        let child = UInt32(sleep) + 100_000
        table.update(with: event(pid: UInt32(sleep), .fork(.init(childPID: child, childTID: child, isThread: false, childStartTimeNs: 5))))
        XCTAssertNil(table.record(child)?.details.vpid, "not the parent's")
        XCTAssertEqual(table.record(child)?.details.vpgid, table.record(UInt32(sleep))?.details.vpgid, "the parent's group")
        table.update(with: event(pid: child, .exit(.init(status: 0, startTimeNs: 5, durationNs: 1))))
        XCTAssertEqual(table.record(child)?.details.vpid, child)
    }

    /// /proc/PID/environ once exec has laid out the new stack: exec names the process (what
    /// `start` waits for) before that, and until then environ reads empty (seen once in a full run).
    private func environ(_ pid: Int32) throws -> Data {
        var data = Data()
        for _ in 0..<5_000 {
            data = try XCTUnwrap(FileHandle(forReadingAtPath: "/proc/\(pid)/environ")).readDataToEndOfFile()
            if !data.isEmpty { break }
            usleep(1_000)
        }
        return data
    }

    /// proc.env keeps at most `ProcessDetails.environmentLimit` (4096) bytes of a process's
    /// environment, whole NAME=VALUE entries in order, and proc.env_truncated says it was cut:
    /// a real sleep started with about 64 KiB of environment.
    func testAProcessWithALargeEnvironmentKeepsAtMost4096BytesOfWholeEntries() throws {
        let value = String(repeating: "x", count: 200)
        var environment: [String: String] = [:]
        for n in 0..<320 { environment[String(format: "VIGIL_BIG_%03d", n)] = value }
        let (_, sleep) = try start(["/bin/sleep", "1000"], environment: environment, found: Self.sleeping)
        let whole = try environ(sleep)
        XCTAssertGreaterThan(whole.count, 60_000, "the process really has the large environment")
        let given = whole.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        let table = ProcessTable()
        table.readsEnvironment = true
        table.seed()
        let kept = try XCTUnwrap(table.record(UInt32(sleep))?.details.environment, "read while it runs")
        let bytes = kept.reduce(0) { $0 + $1.bytes.count + 1 }
        XCTAssertLessThanOrEqual(bytes, ProcessDetails.environmentLimit)
        XCTAssertGreaterThan(bytes, ProcessDetails.environmentLimit - 216, "as many whole entries as fit (each is 214 bytes with its NUL)")
        XCTAssertEqual(kept.map(\.string), Array(given.prefix(kept.count)), "whole entries, in /proc's order")
        let e = event(table, pid: sleep)
        XCTAssertEqual(flag(e, "proc.env_truncated"), true)
        XCTAssertEqual(text(e, "proc.env"), given.prefix(kept.count).joined(separator: " "))

        // A small environment is kept whole and not marked.
        let (_, small) = try start(["/bin/sleep", "1000"], environment: ["PATH": "/usr/bin:/bin"], found: Self.sleeping)
        _ = try environ(small)
        let again = ProcessTable()
        again.readsEnvironment = true
        again.seed()
        let s = event(again, pid: small)
        XCTAssertEqual(text(s, "proc.env"), "PATH=/usr/bin:/bin")
        XCTAssertEqual(flag(s, "proc.env_truncated"), false)
    }

    /// The table reads no process's environment unless asked (a rule uses proc.env): reading
    /// every /proc/PID/environ is what detections of environment theft watch for. Asked later,
    /// it reads the environments of the processes it knows; no longer asked, it drops them.
    func testTheEnvironmentIsReadOnlyWhileAsked() throws {
        let (_, sleep) = try start(["/bin/sleep", "1000"], environment: ["PATH": "/usr/bin:/bin", "VIGIL_ASKED": "1"], found: Self.sleeping)
        _ = try environ(sleep)
        let table = ProcessTable()
        table.seed()
        XCTAssertNil(table.record(UInt32(sleep))?.details.environment, "not read by default")
        XCTAssertNil(text(event(table, pid: sleep), "proc.env"))
        table.readsEnvironment = true
        XCTAssertEqual(Set(text(event(table, pid: sleep), "proc.env")?.split(separator: " ").map(String.init) ?? []),
                       ["PATH=/usr/bin:/bin", "VIGIL_ASKED=1"])
        table.readsEnvironment = false
        XCTAssertNil(table.record(UInt32(sleep))?.details.environment, "dropped when no longer asked")
    }
}
