import Foundation
import VigilBPF
import VigilEvents
import VigilSensors
import VigilTestSupport
import XCTest

/// The syscalls sensor on the real kernel: Tests/Fixtures/syscall-helper.c (built here with cc)
/// makes syscalls of several categories and prints what each returned; every event must decode,
/// by the table, to the right named arguments and result. Filters apply; syscalls nobody asked
/// for are not emitted (the sensor's counters).
final class SyscallSensorTests: XCTestCase {
    struct HelperBuildFailed: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    static let asked = ["openat", "read", "write", "close", "renameat2", "unlinkat", "socket", "connect", "pipe2", "mmap",
                        "kill", "nanosleep"]

    /// The helper, compiled once per run.
    static let helper: Result<String, Error> = Result {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/syscall-helper.c").path
        let binary = NSTemporaryDirectory() + "syscall-helper-\(getpid())"
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/cc")
        cc.arguments = ["-O1", "-Wall", "-Werror", "-o", binary, source]
        try cc.run()
        cc.waitUntilExit()
        guard cc.terminationStatus == 0 else { throw HelperBuildFailed(message: "cc \(source) failed (status \(cc.terminationStatus))") }
        return binary
    }

    /// A TCP port on 127.0.0.1 that nothing listens on (bound, then closed: connect is refused).
    func closedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Runs the helper; returns its output lines ("NAME RESULT ...") keyed in order, and its pid.
    func runHelper(port: Int, directory: String) throws -> (lines: [[String]], pid: UInt32) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.helper.get())
        process.arguments = [String(port), directory]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, output)
        return (output.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }, UInt32(process.processIdentifier))
    }

    func arg(_ s: Payload.Syscall, _ name: String) -> String? {
        SyscallArguments.index(of: name, in: s).map { SyscallArguments.text(s, $0) }
    }

    func testHelperSyscallsDecodeByTheTable() throws {
        let capture = SyscallCapture(names: Self.asked)
        var filter = KernelFilter()
        let binaryName = String(URL(fileURLWithPath: try Self.helper.get()).lastPathComponent.prefix(15))
        filter.includeComms = [binaryName]
        let harness = try TraceHarness(kinds: Sensor.process.kinds, filter: filter, syscalls: capture)
        let directory = try temporaryDirectory()
        let port = try closedPort()
        let before = try harness.sensors.counters()["syscalls"] ?? SensorCounters()
        var ran: (lines: [[String]], pid: UInt32) = ([], 0)
        let events = try harness.collect {
            ran = try runHelper(port: port, directory: directory)
            try runProgram("/bin/cat", ["/etc/hostname"]) // another comm: filtered in the kernel
        }
        let after = try harness.sensors.counters()["syscalls"] ?? SensorCounters()
        let syscalls = events.filter { $0.kind == .syscall }
        XCTAssertTrue(syscalls.allSatisfy { $0.pid == ran.pid }, "only the helper passes the comm filter: \(Set(syscalls.map(\.comm)))")
        XCTAssertGreaterThan(after.filtered, before.filtered, "cat's syscalls were dropped in the kernel and counted")
        XCTAssertEqual(after.lost, before.lost)
        // The fd table's syscalls (captured because asked ones take fds) are emitted for every
        // comm (state changes skip the kernel's filters) and dropped or suppressed in userspace.
        XCTAssertGreaterThanOrEqual(after.emitted - before.emitted, UInt64(syscalls.count), "every delivered event was emitted")
        let names = Set(syscalls.compactMap { $0.syscall?.descriptor.nameString })
        XCTAssertTrue(names.isSubset(of: Set(Self.asked)), "only asked-for syscalls: \(names.subtracting(Self.asked))")

        // The helper's own calls, in order (the loader's are before them): match each printed line.
        var calls = syscalls.compactMap(\.syscall)
        func next(_ name: String, where match: (Payload.Syscall) -> Bool = { _ in true }) -> Payload.Syscall? {
            guard let i = calls.firstIndex(where: { $0.descriptor.nameString == name && match($0) }) else { return nil }
            let found = calls[i]
            calls.removeFirst(i + 1)
            return found
        }
        let hostname = try String(contentsOfFile: "/etc/hostname", encoding: .utf8)
        let file = directory + "/helper file", renamed = directory + "/renamed"
        for line in ran.lines {
            let result = Int64(line[1]) ?? 0
            let what = "helper line '\(line.joined(separator: " "))'"
            switch line[0] {
            case "openat":
                let s = try XCTUnwrap(next("openat") { self.arg($0, "filename") == "/etc/hostname" }, what)
                XCTAssertEqual(s.result, result, what)
                XCTAssertEqual(arg(s, "flags"), "O_RDONLY|O_CLOEXEC", what)
                XCTAssertEqual(arg(s, "dfd"), "-100", what)
                XCTAssertEqual(arg(s, "name"), "/etc/hostname", "Falco's name: \(what)")
                XCTAssertEqual(arg(s, "dirfd"), "-100", "Falco's name: \(what)")
            case "read":
                let s = try XCTUnwrap(next("read"), what)
                XCTAssertEqual(s.result, result, what)
                XCTAssertEqual(arg(s, "buf"), String(hostname.prefix(Int(result))), what)
                XCTAssertEqual(arg(s, "count"), "5", what)
                XCTAssertEqual(arg(s, "data"), arg(s, "buf"), "Falco's name: \(what)")
                XCTAssertEqual(arg(s, "size"), "5", "Falco's name: \(what)")
            case "close":
                let s = try XCTUnwrap(next("close"), what)
                XCTAssertEqual(s.result, result, what)
            case "openat-missing":
                let s = try XCTUnwrap(next("openat") { self.arg($0, "filename") == "/nonexistent-vigil-helper" }, what)
                XCTAssertEqual(s.result, result, what)
                XCTAssertTrue(s.failedCall, what)
                XCTAssertEqual(SyscallArguments.text(s, 0), "-100")
            case "openat-create":
                let s = try XCTUnwrap(next("openat") { self.arg($0, "filename") == file }, what)
                XCTAssertEqual(s.result, result, what)
                XCTAssertEqual(arg(s, "flags"), "O_WRONLY|O_CREAT|O_TRUNC", what)
                XCTAssertEqual(arg(s, "mode"), "0640", what)
            case "write":
                // (the helper's own output lines are writes too)
                let s = try XCTUnwrap(next("write") { self.arg($0, "buf") == "hello vigil" }, what)
                XCTAssertEqual(s.result, result, what)
                XCTAssertEqual(arg(s, "count"), "11", what)
            case "renameat2":
                let s = try XCTUnwrap(next("renameat2"), what)
                XCTAssertEqual(s.result, result, what)
                XCTAssertEqual(arg(s, "oldname"), file, what)
                XCTAssertEqual(arg(s, "newname"), renamed, what)
                XCTAssertEqual(arg(s, "oldpath"), file, "Falco's name: \(what)")
                XCTAssertEqual(arg(s, "newpath"), renamed, "Falco's name: \(what)")
                XCTAssertEqual(arg(s, "olddirfd"), arg(s, "olddfd"), "Falco's name: \(what)")
            case "unlinkat", "unlinkat-missing":
                let s = try XCTUnwrap(next("unlinkat") { self.arg($0, "pathname") == renamed }, what)
                XCTAssertEqual(s.result, result, what)
                XCTAssertEqual(arg(s, "name"), renamed, "Falco's name: \(what)")
                XCTAssertEqual(arg(s, "flags"), arg(s, "flag"), "Falco's name: \(what)")
            case "socket":
                let s = try XCTUnwrap(next("socket") { self.arg($0, "family") == "AF_INET" }, what)
                XCTAssertEqual(s.result, result, what)
                XCTAssertEqual(arg(s, "type"), "SOCK_STREAM|SOCK_CLOEXEC", what)
                XCTAssertEqual(arg(s, "domain"), "AF_INET", "Falco's name: \(what)")
            case "connect":
                let s = try XCTUnwrap(next("connect") { self.arg($0, "uservaddr") == "127.0.0.1:\(port)" }, what)
                XCTAssertEqual(s.result, result, what)
                XCTAssertEqual(ErrnoNames.name(Int32(-s.result)), "ECONNREFUSED", what)
                XCTAssertEqual(arg(s, "addr"), "127.0.0.1:\(port)", "Falco's name: \(what)")
            case "socket-unix":
                let s = try XCTUnwrap(next("socket") { self.arg($0, "family") == "AF_UNIX" }, what)
                XCTAssertEqual(s.result, result, what)
            case "connect-unix":
                let s = try XCTUnwrap(next("connect") { self.arg($0, "uservaddr") == "/nonexistent-vigil.sock" }, what)
                XCTAssertEqual(s.result, result, what)
            case "pipe2":
                let s = try XCTUnwrap(next("pipe2"), what)
                XCTAssertEqual(s.result, result, what)
                XCTAssertEqual(arg(s, "fildes"), "[\(line[2]),\(line[3])]", what)
                XCTAssertEqual(arg(s, "flags"), "O_RDONLY|O_CLOEXEC", what)
            case "mmap":
                let s = try XCTUnwrap(next("mmap") { self.arg($0, "len") == "4096" }, what)
                XCTAssertEqual(s.result, result, what)
                XCTAssertEqual(arg(s, "prot"), "PROT_READ|PROT_WRITE", what)
                XCTAssertEqual(arg(s, "flags"), "MAP_PRIVATE|MAP_ANONYMOUS", what)
                XCTAssertEqual(arg(s, "fd"), "-1", what)
                XCTAssertEqual(arg(s, "length"), "4096", "Falco's name: \(what)")
            case "kill":
                let s = try XCTUnwrap(next("kill"), what)
                XCTAssertEqual(s.result, result, what)
                XCTAssertEqual(arg(s, "pid"), String(ran.pid), what)
                XCTAssertEqual(arg(s, "sig"), "0", what)
            case "nanosleep":
                let s = try XCTUnwrap(next("nanosleep"), what)
                XCTAssertEqual(s.result, result, what)
                XCTAssertEqual(arg(s, "rqtp"), "0.001000000", what)
                XCTAssertEqual(arg(s, "interval"), "0.001000000", "Falco's name: \(what)")
                XCTAssertGreaterThanOrEqual(s.latencyNs, 1_000_000, "the latency covers the sleep")
            case "pid":
                break
            default:
                XCTFail("unknown \(what)")
            }
        }

        // JSON: the args array and Falco's fields.
        let connect = try XCTUnwrap(syscalls.first { $0.syscall?.descriptor.nameString == "connect" })
        let json = EventFormat.json(connect)
        XCTAssertTrue(json.contains("\"evt.type\":\"connect\""), json)
        XCTAssertTrue(json.contains("{\"name\":\"uservaddr\",\"type\":\"sockaddr\",\"value\":\"127.0.0.1:\(port)\"}"), json)
        XCTAssertTrue(json.contains("\"evt.failed\":true"), json)
        XCTAssertTrue(json.contains("\"evt.res\":\"ECONNREFUSED\""), json)
        XCTAssertEqual(Fields.named("evt.arg.uservaddr")?.extract(connect, nil), .string(ByteString("127.0.0.1:\(port)")))
        XCTAssertEqual(Fields.named("evt.arg")?.extract(connect, "0"), .string(ByteString(arg(connect.syscall!, "fd")!)))
    }

    func testSyscallsNotAskedForAreNotEmitted() throws {
        // Only nanosleep: the helper's thousand getpid calls, its opens and reads pass the hook
        // and leave at the bitmap (the helper passes the filter: had they reached it, they would
        // be emitted). The helper's tree is the only one the kernel keeps (followChildren): the
        // host's nanosleeps (Go runtimes sleep with it) are dropped there, never emitted, so what
        // is emitted between the two counter reads is exactly what the helper did, whatever the
        // host does meanwhile.
        var filter = KernelFilter()
        filter.followChildren = true
        let harness = try TraceHarness(kinds: Sensor.process.kinds, filter: filter, syscalls: SyscallCapture(names: ["nanosleep"]))
        let before = try harness.sensors.counters()["syscalls"] ?? SensorCounters()
        var pid: UInt32 = 0
        let events = try harness.collect { pid = try runHelper(port: try closedPort(), directory: try temporaryDirectory()).pid }
        let after = try harness.sensors.counters()["syscalls"] ?? SensorCounters()
        let mine = events.compactMap { $0.pid == pid ? $0.syscall : nil }
        XCTAssertEqual(mine.map(\.descriptor.nameString), ["nanosleep"])
        let all = events.filter { $0.kind == .syscall }
        XCTAssertEqual(all.map(\.pid), [pid], "only the helper's tree passes the kernel")
        XCTAssertEqual(after.emitted - before.emitted, UInt64(all.count))
    }

    /// `KernelFilter.followChildren` (`vigil trace --summary -- CMD`): the kernel keeps the
    /// syscalls of what this process (Vigil here) forks from the load on, and of their children,
    /// and drops the rest there: a getppid loop forked before the load is filtered, never emitted.
    func testFollowingChildrenKeepsOnlyWhatIsForkedAfterTheLoad() throws {
        let loop = Process()
        loop.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        loop.arguments = ["-c", "import os\nwhile True: os.getppid()"]
        try loop.run()
        defer { loop.terminate(); loop.waitUntilExit() }
        var filter = KernelFilter()
        filter.followChildren = true
        let harness = try TraceHarness(kinds: Sensor.process.kinds, filter: filter, syscalls: SyscallCapture(names: ["getppid"]))
        let before = try harness.sensors.counters()["syscalls"] ?? SensorCounters()
        var shell: Int32 = 0
        // The shell forks python (`; true`: not exec'd in its place): a grandchild of this process.
        let events = try harness.collect {
            shell = try runProgram("/bin/sh", ["-c", "/usr/bin/python3 -c 'import os\nfor _ in range(100): os.getppid()'; true"])
        }
        let after = try harness.sensors.counters()["syscalls"] ?? SensorCounters()
        let calls = events.filter { $0.syscall?.descriptor.nameString == "getppid" }
        XCTAssertFalse(calls.contains { $0.pid == UInt32(loop.processIdentifier) }, "the loop forked before the load is dropped")
        XCTAssertGreaterThanOrEqual(calls.filter { $0.ppid == UInt32(shell) }.count, 100, "the grandchild's calls: \(calls.count) calls")
        XCTAssertTrue(calls.allSatisfy { $0.ppid == UInt32(shell) || $0.pid == UInt32(shell) }, "\(Set(calls.map(\.comm)))")
        XCTAssertGreaterThan(after.filtered, before.filtered, "the loop's calls are counted as filtered in the kernel")
        XCTAssertEqual(after.emitted - before.emitted, UInt64(calls.count), "nothing else emitted")
    }

    /// Nothing lost silently, on the hooks this host has (tracepoints: no pool of pending returns):
    /// 30 threads of this process blocked in read at once, released at once, each deliver their
    /// read, and none is counted lost. (The kprobe variant's bounded returns, counted lost, are
    /// checked on Debian's 6.1 and 6.12 by vigil-kernel-check.)
    func testThirtyBlockedReadsAreAllDeliveredOnTheTracepointHooks() throws {
        let capture = SyscallCapture(names: ["read"])
        for name in [Sensors.perSyscallVariantName, "tp_btf", "raw_tp"] {
            var filter = KernelFilter()
            filter.ignorePID = 0 // the reads are this process's
            filter.pids = [UInt32(getpid())]
            let harness = try TraceHarness(kinds: Sensor.process.kinds, filter: filter, syscalls: capture,
                                           hooks: [Sensor.syscalls.name: Sensors.syscallHooks(for: capture, forcing: name)])
            XCTAssertEqual(harness.sensors.reports.first { $0.sensor == "syscalls" }?.report.active, name)
            let (reads, delivered, lost) = try BlockedReads.measure(harness.sensors, harness.stream, threads: 30)
            XCTAssertEqual(reads, 30, name)
            XCTAssertEqual(delivered, 30, "\(name): every blocked read delivered")
            XCTAssertEqual(lost, 0, "\(name): nothing lost")
        }
    }

    /// The followed tree (`KernelFilter.followChildren`) lives in the pids map: a fork the full map
    /// cannot take is not followed, and counted (`SensorCounters.unfollowed`, in `vigil trace
    /// --summary`'s loss line and `vigil status`). A map of 4 entries here, and 8 children of this
    /// process alive at once: the first 4 are followed, the other 4 counted.
    func testAForkPastThePidsMapIsCountedUnfollowed() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        var filter = KernelFilter()
        filter.followChildren = true
        let sensors = try Sensors(kinds: Sensor.process.kinds, filter: filter, pidsCapacity: 4)
        let before = try sensors.counters()["process"] ?? SensorCounters()
        var children: [Process] = []
        defer { children.forEach { $0.terminate(); $0.waitUntilExit() } }
        for _ in 0..<8 {
            let child = Process()
            child.executableURL = URL(fileURLWithPath: "/bin/sleep")
            child.arguments = ["600"]
            try child.run()
            children.append(child)
        }
        let after = try sensors.counters()["process"] ?? SensorCounters()
        XCTAssertEqual(after.unfollowed - before.unfollowed, 4, "the 4 children the map could not take")
    }

    func testTheGenericHookIsNotAttachedUnlessSyscallsAreAsked() throws {
        // What exec/fork/exit/open need never pays for a hook on every syscall (notes/performance.md).
        let harness = try TraceHarness()
        XCTAssertFalse(harness.sensors.reports.contains { $0.sensor == "syscalls" }, "\(harness.sensors.reports.map(\.sensor))")
        let empty = try TraceHarness(kinds: Sensor.process.kinds, syscalls: SyscallCapture(numbers: []))
        XCTAssertFalse(empty.sensors.reports.contains { $0.sensor == "syscalls" })
    }

    func testRawTracepointVariant() throws {
        let rawOnly = Sensor.syscalls.hooks.map { Hook($0.name, variants: $0.variants.filter { $0.name == "raw_tp" }) }
        let harness = try TraceHarness(kinds: Sensor.process.kinds, syscalls: SyscallCapture(names: ["kill"]), hooks: [Sensor.syscalls.name: rawOnly])
        XCTAssertEqual(harness.sensors.reports.first { $0.sensor == "syscalls" }?.report.active, "raw_tp")
        var pid: UInt32 = 0
        let events = try harness.collect { pid = try runHelper(port: try closedPort(), directory: try temporaryDirectory()).pid }
        let kill = try XCTUnwrap(events.first { $0.pid == pid && $0.syscall?.descriptor.nameString == "kill" }?.syscall)
        XCTAssertEqual(SyscallArguments.text(kill, 0), String(pid))
        XCTAssertEqual(kill.result, 0)
    }
}
