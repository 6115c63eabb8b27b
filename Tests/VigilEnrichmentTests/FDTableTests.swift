import Foundation
import VigilEnrichment
import VigilEvents
import XCTest

/// The fd table's logic, fed events in the kernel's order: every change comes from the syscall
/// table's flags and parameter types (open, socket, dup2, pipe2, fcntl, close, close_range), and
/// from fork (copy), exec (close-on-exec fds dropped) and exit. Seeding reads this process's
/// real /proc/self/fd.
final class FDTableTests: XCTestCase {
    private func event(_ pid: UInt32, _ payload: Payload) -> Event {
        Event(bootTimeNs: 1, timeNs: 2, cgroupID: 1, pid: pid, tid: pid, ppid: 1, uid: 0, gid: 0, cpu: 0,
              mountNamespace: 0, pidNamespace: Namespaces.hostPID, comm: "t", payload: payload)
    }

    private func syscall(_ name: String, _ args: [UInt64], result: Int64, captured: [UInt8] = [], lengths: [UInt16] = []) -> Payload {
        guard let index = Syscalls.index(named: name) else { fatalError("no syscall \(name) in the table") }
        var a = SIMD8<UInt64>(repeating: 0)
        for (i, v) in args.enumerated() { a[i] = v }
        var l = SIMD8<UInt16>(repeating: 0)
        for (i, v) in lengths.enumerated() { l[i] = v }
        return .syscall(.init(index: index, result: result, latencyNs: 0, args: a, lengths: l, data: ByteString(captured)))
    }

    private func apply(_ table: FDTable, _ pid: UInt32, _ payload: Payload) -> FDInfo? {
        var e = event(pid, payload)
        table.apply(&e)
        return e.fd
    }

    private func open(_ path: String, fd: Int64, flags: UInt32) -> Payload {
        .open(.init(syscall: "openat", name: ByteString(path), path: ByteString(path), flags: flags, mode: 0, dirfd: -100, result: fd,
                    truncated: false))
    }

    func testOpenDupWriteCloseRange() {
        let table = FDTable(procRoot: "/nonexistent")
        let pid: UInt32 = 100
        XCTAssertEqual(apply(table, pid, open("/tmp/a.log", fd: 3, flags: 0o1 | 0o2000000))?.type, .file)
        // dup2(3, 7): the same file, not close-on-exec.
        let dup = apply(table, pid, syscall("dup2", [3, 7], result: 7))
        XCTAssertEqual(dup?.number, 7)
        XCTAssertEqual(dup?.name, "/tmp/a.log")
        XCTAssertEqual(dup?.closeOnExec, false)
        // write(7, ...) names the file.
        let write = apply(table, pid, syscall("write", [7, 0, 5], result: 5))
        XCTAssertEqual(write?.name, "/tmp/a.log")
        XCTAssertEqual(write?.type.typechar.description, "f")
        // socket(AF_INET6, SOCK_STREAM|SOCK_CLOEXEC, 0) = 8
        let sock = apply(table, pid, syscall("socket", [10, 1 | 0o2000000, 0], result: 8))
        XCTAssertEqual(sock?.type, .ipv6)
        XCTAssertEqual(sock?.closeOnExec, true)
        // pipe2([9, 10], 0): both ends are pipes; a read on 9 says pipe.
        let fds: [UInt8] = [9, 0, 0, 0, 10, 0, 0, 0]
        XCTAssertEqual(apply(table, pid, syscall("pipe2", [0x1000, 0], result: 0, captured: fds, lengths: [8]))?.number, 9)
        XCTAssertEqual(apply(table, pid, syscall("read", [9, 0, 1], result: 1))?.type, .pipe)
        XCTAssertEqual(table.entry(pid: pid, fd: 10)?.type, .pipe)
        // fcntl(3, F_DUPFD_CLOEXEC, 20) = 20
        XCTAssertEqual(apply(table, pid, syscall("fcntl", [3, 1030, 20], result: 20))?.closeOnExec, true)
        XCTAssertEqual(table.entry(pid: pid, fd: 20)?.name, "/tmp/a.log")
        // close(3), then close_range(9, ~0, 0) closes 9, 10 and 20; 7 and 8 stay.
        XCTAssertEqual(apply(table, pid, syscall("close", [3], result: 0))?.name, "/tmp/a.log")
        XCTAssertNil(table.entry(pid: pid, fd: 3))
        _ = apply(table, pid, syscall("close_range", [9, UInt64(UInt32.max), 0], result: 0))
        XCTAssertEqual(table.entries(pid: pid).map { Set($0.keys) }, [7, 8])
        // A failed close changes nothing.
        _ = apply(table, pid, syscall("close", [7], result: -9))
        XCTAssertNotNil(table.entry(pid: pid, fd: 7))
    }

    func testForkCopiesExecDropsCloexecExitDrops() {
        let table = FDTable(procRoot: "/nonexistent")
        _ = apply(table, 200, open("/etc/kept", fd: 3, flags: 0))
        _ = apply(table, 200, open("/etc/cloexec", fd: 4, flags: 0o2000000))
        _ = apply(table, 200, syscall("eventfd2", [0, 0o2000000], result: 5))
        XCTAssertEqual(table.entry(pid: 200, fd: 5)?.type, .event)
        _ = apply(table, 200, .fork(.init(childPID: 201, childTID: 201, isThread: false, childStartTimeNs: 0)))
        XCTAssertEqual(table.entries(pid: 201).map { Set($0.keys) }, [3, 4, 5])
        // close_range with CLOSE_RANGE_CLOEXEC marks fd 3 in the child only.
        _ = apply(table, 201, syscall("close_range", [3, 3, 4], result: 0))
        XCTAssertEqual(table.entry(pid: 201, fd: 3)?.closeOnExec, true)
        XCTAssertEqual(table.entry(pid: 200, fd: 3)?.closeOnExec, false)
        _ = apply(table, 201, .exec(.init(filename: "/bin/x", executablePath: "/bin/x", arguments: [], argumentsTruncated: false, cwd: "/",
                                          tty: "", ttyNumber: 0, loginUID: 0, startTimeNs: 0)))
        XCTAssertEqual(table.entries(pid: 201).map { Set($0.keys) }, [])
        XCTAssertEqual(table.entries(pid: 200).map { Set($0.keys) }, [3, 4, 5])
        _ = apply(table, 200, .exit(.init(status: 0, startTimeNs: 0, durationNs: 0)))
        XCTAssertNil(table.entries(pid: 200))
    }

    /// Low fds are kept in an array indexed by number and high ones in a dictionary (the table
    /// remembers the process it last served): the same answers on both sides of the boundary,
    /// across processes used in turn, and a forked child's table is its own.
    func testFDsOnBothSidesOfTheDirectRangeAndProcessesInTurn() {
        let table = FDTable(procRoot: "/nonexistent")
        for fd: Int64 in [0, 1023, 1024, 70000] {
            _ = apply(table, 300, open("/p300/\(fd)", fd: fd, flags: fd == 1024 ? 0o2000000 : 0))
            _ = apply(table, 301, open("/p301/\(fd)", fd: fd, flags: 0))
        }
        for fd: Int32 in [0, 1023, 1024, 70000] {
            XCTAssertEqual(apply(table, 300, syscall("read", [UInt64(fd), 0, 1], result: 1))?.name.description, "/p300/\(fd)")
            XCTAssertEqual(apply(table, 301, syscall("read", [UInt64(fd), 0, 1], result: 1))?.name.description, "/p301/\(fd)")
        }
        XCTAssertEqual(table.entries(pid: 300).map { Set($0.keys) }, [0, 1023, 1024, 70000])
        XCTAssertNil(table.entry(pid: 300, fd: 1022))
        XCTAssertNil(table.entry(pid: 300, fd: 5000))
        // A read on an fd the table does not know: its number, type unknown.
        XCTAssertEqual(apply(table, 300, syscall("read", [5000, 0, 1], result: 1)).map { [$0.number, Int32($0.type.rawValue)] }, [5000, 0])
        // The child's changes stay the child's.
        _ = apply(table, 300, .fork(.init(childPID: 302, childTID: 302, isThread: false, childStartTimeNs: 0)))
        _ = apply(table, 302, syscall("close_range", [1000, 80000, 0], result: 0))
        XCTAssertEqual(table.entries(pid: 302).map { Set($0.keys) }, [0])
        XCTAssertEqual(table.entries(pid: 300).map { Set($0.keys) }, [0, 1023, 1024, 70000])
        // exec drops the close-on-exec fd above the array's range.
        _ = apply(table, 300, .exec(.init(filename: "/bin/x", executablePath: "/bin/x", arguments: [], argumentsTruncated: false, cwd: "/",
                                          tty: "", ttyNumber: 0, loginUID: 0, startTimeNs: 0)))
        XCTAssertEqual(table.entries(pid: 300).map { Set($0.keys) }, [0, 1023, 70000])
        _ = apply(table, 300, syscall("close", [70000], result: 0))
        _ = apply(table, 300, syscall("close", [1023], result: 0))
        XCTAssertEqual(table.entries(pid: 300).map { Set($0.keys) }, [0])
        // An exited process's table is gone, even right after it was used.
        _ = apply(table, 301, .exit(.init(status: 0, startTimeNs: 0, durationNs: 0)))
        XCTAssertNil(table.entry(pid: 301, fd: 0))
        XCTAssertEqual(apply(table, 300, syscall("read", [0, 0, 1], result: 1))?.name.description, "/p300/0")
    }

    /// An openat of the same path again (the loop that floods a tracer: open, read, close) names
    /// its fd with the same string storage, so the JSON memo, keyed by the name's storage
    /// (`OpenKey`), finds the fd's fields already rendered; another path gets its own name.
    func testReopenedPathSharesTheNameStorage() {
        let table = FDTable(procRoot: "/nonexistent")
        let pid: UInt32 = 500
        let path = Array("/tmp/again".utf8)
        func openat(_ bytes: [UInt8]) -> FDInfo? {
            apply(table, pid, syscall("openat", [UInt64(bitPattern: -100), 0x1000, 0, 0], result: 3, captured: bytes, lengths: [0, UInt16(bytes.count)]))
        }
        func storage(_ fd: FDInfo?) -> UnsafeRawPointer? { fd?.name.bytes.withUnsafeBytes { $0.baseAddress } }
        let first = openat(path)
        _ = apply(table, pid, syscall("close", [3], result: 0))
        let second = openat(path)
        XCTAssertEqual(second?.name, "/tmp/again")
        XCTAssertNotNil(storage(first))
        XCTAssertEqual(storage(first), storage(second))
        XCTAssertEqual(storage(apply(table, pid, syscall("read", [3, 0, 1], result: 1))), storage(first))
        _ = apply(table, pid, syscall("close", [3], result: 0))
        let other = openat(Array("/tmp/other".utf8))
        XCTAssertEqual(other?.name, "/tmp/other")
        XCTAssertNotEqual(storage(other), storage(first))
    }

    /// Syscall events through `apply(&event)`, which reads their payload in place: each event gets
    /// the fd it acts on or made (a socket, its dup, a write and fstat on the dup, the original
    /// closed); a call on no fd (getpid) leaves the event's fd unset and gives its process no table.
    func testSyscallEventsSetTheirFDAndACallOnNoFDMakesNoTable() {
        let table = FDTable(procRoot: "/nonexistent")
        let pid: UInt32 = 400
        let calls: [(Payload, Int32?)] = [(syscall("socket", [2, 1, 0], result: 4), 4), (syscall("dup", [4], result: 5), 5),
                                          (syscall("write", [5, 0, 3], result: 3), 5), (syscall("close", [4], result: 0), 4),
                                          (syscall("fstat", [5, 0], result: 0), 5), (syscall("getpid", [], result: Int64(pid)), nil)]
        for (payload, fd) in calls {
            var e = event(pid, payload)
            table.apply(&e)
            XCTAssertEqual(e.fd?.number, fd, "\(payload)")
            XCTAssertEqual(e.fd?.type, fd.map { _ in .ipv4 }, "\(payload)")
        }
        XCTAssertEqual(table.entries(pid: pid).map { Set($0.keys) }, [5])
        var other = event(pid + 1, syscall("getpid", [], result: Int64(pid + 1)))
        table.apply(&other)
        XCTAssertNil(other.fd)
        XCTAssertNil(table.entries(pid: pid + 1))
    }

    func testProcLinkTypes() {
        XCTAssertEqual(FDType(procLink: "/etc/passwd"), .file)
        XCTAssertEqual(FDType(procLink: "pipe:[1234]"), .pipe)
        XCTAssertEqual(FDType(procLink: "socket:[99]"), .socket)
        XCTAssertEqual(FDType(procLink: "anon_inode:[eventfd]"), .event)
        XCTAssertEqual(FDType(procLink: "anon_inode:[eventpoll]"), .eventpoll)
        XCTAssertEqual(FDType(procLink: "anon_inode:[signalfd]"), .signalfd)
        XCTAssertEqual(FDType(procLink: "anon_inode:[timerfd]"), .timerfd)
        XCTAssertEqual(FDType(procLink: "anon_inode:inotify"), .inotify)
        XCTAssertEqual(FDType(procLink: "anon_inode:bpf-map"), .bpf)
        XCTAssertEqual(FDType(procLink: "anon_inode:bpf-prog"), .bpf)
        XCTAssertEqual(FDType(procLink: "/memfd:x (deleted)"), .memfd)
        XCTAssertEqual(FDType.ipv4.typechar.description, "4")
        XCTAssertEqual(FDType.eventpoll.typechar.description, "l")
    }

    /// Real fds of this process, read from /proc/self/fd: a file, a directory, a pipe, a unix
    /// and an IPv4 socket.
    func testSeedFromProc() throws {
        let path = NSTemporaryDirectory() + "fdtable-\(getpid())"
        FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
        defer { unlink(path) }
        let file = Foundation.open(path, O_RDONLY)
        let directory = Foundation.open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        var pipeFDs: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&pipeFDs), 0)
        let unixSocket = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let inetSocket = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        // Bound, so /proc/net/udp lists it (an unbound socket's family is not in /proc).
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(inetSocket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(bound, 0)
        defer { for fd in [file, directory, pipeFDs[0], pipeFDs[1], unixSocket, inetSocket] { close(fd) } }
        let table = FDTable()
        table.seed()
        let me = UInt32(getpid())
        XCTAssertEqual(table.entry(pid: me, fd: file)?.type, .file)
        XCTAssertEqual(table.entry(pid: me, fd: file)?.name.description, URL(fileURLWithPath: path).resolvingSymlinksInPath().path)
        XCTAssertNotEqual(table.entry(pid: me, fd: file)?.inode, 0)
        XCTAssertEqual(table.entry(pid: me, fd: file)?.closeOnExec, false)
        XCTAssertEqual(table.entry(pid: me, fd: directory)?.type, .directory)
        XCTAssertEqual(table.entry(pid: me, fd: directory)?.closeOnExec, true)
        XCTAssertEqual(table.entry(pid: me, fd: pipeFDs[0])?.type, .pipe)
        XCTAssertEqual(table.entry(pid: me, fd: unixSocket)?.type, .unix)
        XCTAssertEqual(table.entry(pid: me, fd: inetSocket)?.type, .ipv4)
    }
}
