import Foundation
import VigilEvents
import VigilSensors
import VigilTestSupport
import XCTest

/// The process sensor loaded into this kernel, triggered by real programs.
final class ProcessSensorTests: XCTestCase {
    func testExecCarriesFilenameArgvCwdAndAncestry() throws {
        let harness = try TraceHarness(kinds: Sensor.process.kinds)
        let dir = try temporaryDirectory()
        var pid: Int32 = 0
        let events = try harness.collect {
            pid = try runProgram("/bin/sh", ["-c", "exec /bin/echo hello 'arg with space'"], cwd: dir)
        }
        let execs = events.filter { $0.pid == UInt32(pid) && $0.kind == .exec }
        XCTAssertEqual(execs.count, 2, "sh, then echo replacing it: \(execs.map(\.comm))")
        let echo = try XCTUnwrap(execs.last)
        XCTAssertEqual(echo.comm, "echo")
        XCTAssertEqual(echo.exec?.filename, "/bin/echo")
        XCTAssertEqual(echo.exec?.arguments, ["/bin/echo", "hello", "arg with space"])
        XCTAssertEqual(echo.exec?.cwd.string, dir)
        XCTAssertFalse(echo.exec?.argumentsTruncated ?? true)
        XCTAssertEqual(echo.ppid, UInt32(getpid()))
        XCTAssertEqual(echo.uid, getuid())
        XCTAssertEqual(echo.process.ancestorNames.first?.string, ownComm, "the parent's name comes from the process table")
        XCTAssertEqual(echo.process.executablePath, "/bin/echo")
        XCTAssertEqual(Fields.named("proc.cmdline")?.extract(echo, nil), .string("echo hello arg with space"))
        XCTAssertEqual(echo.container.id, "host")
        XCTAssertGreaterThan(echo.exec?.startTimeNs ?? 0, 0)
        XCTAssertEqual(echo.mountNamespace, namespaceInode("mnt"), "the child shares our mount namespace")
        XCTAssertEqual(echo.pidNamespace, namespaceInode("pid"))
    }

    private func namespaceInode(_ kind: String) -> UInt32 {
        var st = stat()
        return stat("/proc/self/ns/\(kind)", &st) == 0 ? UInt32(truncatingIfNeeded: st.st_ino) : 0
    }

    func testRelativeExecutableIsResolvedAgainstCwd() throws {
        let harness = try TraceHarness(kinds: Sensor.process.kinds)
        var pid: Int32 = 0
        let events = try harness.collect { pid = try runProgram("/bin/sh", ["-c", "cd /usr && exec ./bin/true"]) }
        let exec = try XCTUnwrap(events.last { $0.pid == UInt32(pid) && $0.kind == .exec })
        XCTAssertEqual(exec.exec?.filename, "./bin/true")
        XCTAssertEqual(exec.exec?.executablePath, "/usr/bin/true")
    }

    func testArgvLongerThanTheBoundIsCutAndFlagged() throws {
        let harness = try TraceHarness(kinds: Sensor.process.kinds)
        let long = String(repeating: "x", count: 2000)
        var pid: Int32 = 0
        let events = try harness.collect { pid = try runProgram("/bin/true", [long, long, long]) }
        let exec = try XCTUnwrap(events.first { $0.pid == UInt32(pid) && $0.kind == .exec })
        XCTAssertTrue(exec.exec?.argumentsTruncated ?? false)
        let kept = exec.exec?.arguments.map { $0.bytes.count + 1 }.reduce(0, +) ?? 0
        XCTAssertLessThanOrEqual(kept, 4096 + 1)
        XCTAssertEqual(exec.exec?.arguments.first, "/bin/true")
        XCTAssertEqual(exec.exec?.arguments[1].bytes.count, 2000)
        XCTAssertEqual(Fields.named("proc.args_truncated")?.extract(exec, nil), .bool(true))
    }

    func testForkAndExitWithCodeAndSignal() throws {
        let harness = try TraceHarness(kinds: Sensor.process.kinds)
        var pid: Int32 = 0
        let events = try harness.collect { pid = try runProgram("/bin/sh", ["-c", "(exit 3); kill -9 $$"]) }
        let fork = try XCTUnwrap(events.first { $0.pid == UInt32(pid) && $0.kind == .fork })
        XCTAssertFalse(fork.fork?.isThread ?? true)
        let child = try XCTUnwrap(fork.fork?.childPID)
        XCTAssertNotEqual(child, UInt32(pid))
        let childExit = try XCTUnwrap(events.first { $0.pid == child && $0.kind == .exit })
        XCTAssertEqual(childExit.exit?.exitCode, 3)
        XCTAssertEqual(childExit.exit?.signal, 0)
        XCTAssertEqual(childExit.process.ancestorNames.first, "sh", "the fork taught the table who the parent is")
        let shellExit = try XCTUnwrap(events.first { $0.pid == UInt32(pid) && $0.kind == .exit })
        XCTAssertEqual(shellExit.exit?.signal, 9)
    }

    func testProcessesThatExistedBeforeTracingHaveParentNames() throws {
        // sh starts before the sensors exist; its child cat is exec'ed while tracing.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "sleep 1; exec cat /etc/hostname"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let harness = try TraceHarness(kinds: Sensor.process.kinds)
        let events = try harness.collect { process.waitUntilExit() }
        let cat = try XCTUnwrap(events.first { $0.pid == UInt32(process.processIdentifier) && $0.comm == "cat" && $0.kind == .exec })
        XCTAssertEqual(cat.process.ancestorNames.first?.string, ownComm)
        let sleep = try XCTUnwrap(events.first { $0.comm == "sleep" && $0.kind == .exit && $0.ppid == UInt32(process.processIdentifier) })
        XCTAssertEqual(sleep.process.ancestorNames.first, "sh", "sh was seeded from /proc")
        XCTAssertEqual(sleep.process.ancestorNames.dropFirst().first?.string, ownComm)
    }
}
