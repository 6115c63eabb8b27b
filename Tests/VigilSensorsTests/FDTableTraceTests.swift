import Foundation
import VigilEvents
import VigilRules
import VigilSensors
import VigilTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The fd table on the real kernel, fed by this process's own syscalls: an fd opened before
/// tracing started is known from /proc, a write to a dup2'ed fd names the file, a read on a pipe
/// says pipe, a socket's family is its type, close forgets what it closed (close_range: FDTableTests); and Falco's
/// open_read macro (fd.typechar='f') compiles and matches a real read open.
final class FDTableTraceTests: XCTestCase {
    /// Traces `syscalls` of this process (`comms` empty) or of the programs named in `comms` only:
    /// a host-wide write capture can outrun the reader on a busy machine.
    private func harness(syscalls: [String], comms: Set<String> = []) throws -> TraceHarness {
        var filter = KernelFilter()
        filter.ignorePID = 0 // this process's own syscalls
        filter.includeComms = comms
        if comms.isEmpty { filter.pids = [UInt32(getpid())] }
        return try TraceHarness(filter: filter, syscalls: SyscallCapture(names: syscalls))
    }

    func testFDsThroughOpenDup2PipeSocketClose() throws {
        let path = NSTemporaryDirectory() + "vigil-fdtable-\(getpid())"
        FileManager.default.createFile(atPath: path, contents: nil)
        defer { unlink(path) }
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        let before = open(path, O_WRONLY) // opened before tracing: known from /proc
        XCTAssertGreaterThanOrEqual(before, 0)
        defer { close(before) }
        let harness = try harness(syscalls: ["write", "read", "dup2"])
        let me = UInt32(getpid())
        var dupped: Int32 = -1, pipeFDs: [Int32] = [0, 0], sock: Int32 = -1
        func lost() throws -> UInt64 { try harness.sensors.counters().values.map(\.lost).reduce(0, +) }
        let lostBefore = try lost()
        let events = try harness.collect {
            XCTAssertEqual(write(before, "a", 1), 1)
            dupped = dup2(before, 200)
            XCTAssertEqual(write(dupped, "b", 1), 1)
            XCTAssertEqual(pipe(&pipeFDs), 0)
            XCTAssertEqual(write(pipeFDs[1], "c", 1), 1)
            var byte: UInt8 = 0
            XCTAssertEqual(read(pipeFDs[0], &byte, 1), 1)
            sock = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)
            XCTAssertGreaterThanOrEqual(sock, 0)
            _ = write(sock, "d", 1) // not connected: fails, still an event on the socket
            XCTAssertEqual(close(200), 0)
            _ = write(200, "e", 1) // EBADF: the table no longer knows fd 200
            close(pipeFDs[0]); close(pipeFDs[1]); close(sock)
        }
        // State changes (open, dup, pipe, close) of every process on the host pass the kernel
        // filters (the fd table needs them); a full ring refuses some, counted as lost. Said in
        // each message, so a failure under a flood of the host's is told from the table's own.
        let lostDuring = try lost() - lostBefore
        let lostNote = "the kernel lost \(lostDuring) events during the work"
        let mine = events.filter { $0.pid == me && $0.kind == .syscall }
        func writes(to fd: Int32) -> [Event] {
            mine.filter {
                guard case .syscall(let s) = $0.payload else { return false }
                return s.descriptor.nameString == "write" && Int32(truncatingIfNeeded: s.args[0]) == fd
            }
        }
        let first = try XCTUnwrap(writes(to: before).first, "the write to the fd opened before tracing")
        XCTAssertEqual(first.fd?.name.string, resolved, lostNote)
        XCTAssertEqual(first.fd?.type, .file, lostNote)
        let viaDup = try XCTUnwrap(writes(to: 200).first, "the write to the dup2'ed fd")
        XCTAssertEqual(viaDup.fd?.name.string, resolved, lostNote)
        XCTAssertEqual(viaDup.fd?.number, 200, lostNote)
        XCTAssertEqual(Fields.named("fd.typechar")?.extract(viaDup, nil), FieldValue.string("f"), lostNote)
        let pipeRead = try XCTUnwrap(mine.first {
            guard case .syscall(let s) = $0.payload else { return false }
            return s.descriptor.nameString == "read" && Int32(truncatingIfNeeded: s.args[0]) == pipeFDs[0]
        }, "the read on the pipe")
        XCTAssertEqual(Fields.named("fd.type")?.extract(pipeRead, nil), FieldValue.string("pipe"), lostNote)
        XCTAssertEqual(writes(to: sock).first?.fd?.type, .ipv6, lostNote)
        let afterClose = try XCTUnwrap(writes(to: 200).last)
        XCTAssertEqual(afterClose.fd?.type, .unknown, "close removed fd 200; \(lostNote)")
        // Syscalls captured only for the fd table (pipe2, socket, close) are not shown.
        XCTAssertFalse(mine.contains { if case .syscall(let s) = $0.payload { return s.descriptor.nameString == "socket" } else { return false } })
    }

    /// A comm filter drops this process's write in the kernel, but not its dup2 (flagged state:
    /// the fd table needs it): the kernel emits it and the stream filters it after enrichment,
    /// counted as filtered; nothing of this process is delivered.
    func testStateSyscallsPassTheKernelFiltersAndAreFilteredAfterEnrichment() throws {
        var filter = KernelFilter()
        filter.ignorePID = 0
        filter.includeComms = ["vigil-no-such"]
        let harness = try TraceHarness(kinds: Sensor.process.kinds, filter: filter, syscalls: SyscallCapture(names: ["write", "dup2"]))
        let before = try XCTUnwrap(harness.sensors.counters()["syscalls"])
        let filteredBefore = harness.stream.statistics.filtered
        let me = UInt32(getpid())
        let path = NSTemporaryDirectory() + "vigil-fdtable-state-\(getpid())"
        let fd = open(path, O_WRONLY | O_CREAT, 0o600)
        defer { close(fd); unlink(path) }
        let events = try harness.collect {
            for _ in 0..<10 {
                let copy = dup2(fd, 201)
                XCTAssertEqual(copy, 201)
                XCTAssertEqual(write(copy, "x", 1), 1)
            }
            close(201)
        }
        let after = try XCTUnwrap(harness.sensors.counters()["syscalls"])
        XCTAssertFalse(events.contains { $0.pid == me }, "the comm filter keeps nothing of this process")
        XCTAssertGreaterThanOrEqual(after.emitted - before.emitted, 10, "the dup2 calls were emitted despite the comm filter")
        XCTAssertGreaterThanOrEqual(after.filtered - before.filtered, 10, "the writes were dropped in the kernel")
        XCTAssertGreaterThanOrEqual(harness.stream.statistics.filtered - filteredBefore, 10, "the dup2 calls were filtered after enrichment")
        XCTAssertEqual(harness.stream.enricher.fds.entry(pid: me, fd: 201), nil, "closed")
    }

    func testFalcoOpenReadMacroMatchesARealReadOpen() throws {
        let yaml = """
        - macro: open_read
          condition: (evt.type in (open,openat,openat2) and evt.is_open_read=true and fd.typechar='f' and fd.num>=0)
        - rule: read marker
          desc: d
          condition: open_read and fd.filename startswith vigil-open-read-
          output: o
          priority: WARNING
        """
        let set = try RuleSet(files: [("falco.yaml", try YAMLRules.load(yaml, file: "falco.yaml"))])
        let path = NSTemporaryDirectory() + "vigil-open-read-\(getpid())"
        FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
        defer { unlink(path) }
        let harness = try harness(syscalls: [])
        let events = try harness.collect {
            let fd = open(path, O_RDONLY)
            XCTAssertGreaterThanOrEqual(fd, 0)
            close(fd)
            let writer = open(path, O_WRONLY)
            close(writer)
        }
        let opens = events.filter { $0.pid == UInt32(getpid()) && $0.open?.path.string.hasSuffix("vigil-open-read-\(getpid())") == true }
        XCTAssertEqual(opens.count, 2)
        XCTAssertEqual(opens.filter { set.matches($0).contains { $0.rule.name == "read marker" } }.count, 1, "the read open matches, the write open does not")
    }

    /// Tests/Fixtures/fdtable-helper.c: dup2 to 50, 60, 61; close_range(60, 61); fork; the child
    /// execs the helper again, which writes to 50 (inherited through fork and exec: the file)
    /// and to the O_CLOEXEC fd (dropped by exec: EBADF, unknown to the table).
    func testFDsThroughDup2CloseRangeForkAndExec() throws {
        let helper = try compileFixture("fdtable-helper")
        defer { unlink(helper) }
        let path = URL(fileURLWithPath: NSTemporaryDirectory()).resolvingSymlinksInPath().path + "/vigil-fdtable-fork-\(getpid())"
        FileManager.default.createFile(atPath: path, contents: nil)
        defer { unlink(path) }
        let harness = try harness(syscalls: ["write"], comms: [String(URL(fileURLWithPath: helper).lastPathComponent.prefix(15))])
        var parent: Int32 = 0
        let events = try harness.collect { parent = try runProgram(helper, [path]) }
        let writes = events.compactMap { e -> (Event, Payload.Syscall)? in
            guard let s = e.syscall, s.descriptor.nameString == "write" else { return nil }
            return (e, s)
        }
        let mine = writes.filter { $0.0.pid == UInt32(parent) }
        let on61 = try XCTUnwrap(mine.first { Int32(truncatingIfNeeded: $0.1.args[0]) == 61 }, "the write to 61")
        XCTAssertEqual(on61.0.fd?.name.string, path, "dup2 copied the file")
        let on60 = try XCTUnwrap(mine.first { Int32(truncatingIfNeeded: $0.1.args[0]) == 60 }, "the write to 60")
        XCTAssertEqual(on60.0.fd?.type, .unknown, "close_range closed 60")
        // The helper prints each result on stdout (fd 1): those writes are not the ones under test.
        let child = writes.filter { $0.0.ppid == UInt32(parent) && $0.1.args[0] != 1 }
        XCTAssertEqual(child.count, 2, "the exec'ed child's two writes")
        let kept = try XCTUnwrap(child.first { Int32(truncatingIfNeeded: $0.1.args[0]) == 50 })
        XCTAssertEqual(kept.0.fd?.name.string, path, "fd 50 was inherited through fork and kept by exec")
        let dropped = try XCTUnwrap(child.first { Int32(truncatingIfNeeded: $0.1.args[0]) != 50 })
        XCTAssertEqual(dropped.1.result, -9, "EBADF")
        XCTAssertEqual(dropped.0.fd?.type, .unknown, "the O_CLOEXEC fd was dropped at exec")
    }
}
