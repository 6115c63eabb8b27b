import VigilEvents
import XCTest

/// The one decoder of syscall arguments (`SyscallArguments`), by the table's types, without a kernel.
final class SyscallArgumentsTests: XCTestCase {
    func event(_ name: String, args: [UInt64], captured: [[UInt8]?] = [], result: Int64 = 0) throws -> Payload.Syscall {
        let index = try XCTUnwrap(Syscalls.index(named: name), name)
        var raw = SIMD8<UInt64>.zero, lengths = SIMD8<UInt16>.zero
        for (i, v) in args.enumerated() { raw[i] = v }
        // The record's order: bytes captured at entry, then at exit.
        let params = Syscalls.all[index].params
        var data: [UInt8] = []
        for exit in [false, true] {
            for (i, bytes) in captured.enumerated() where params[i].capturedAtExit == exit {
                guard let bytes else { continue }
                lengths[i] = UInt16(bytes.count)
                data += bytes
            }
        }
        return Payload.Syscall(index: index, result: result, latencyNs: 1000, args: raw, lengths: lengths, data: ByteString(data))
    }

    func text(_ s: Payload.Syscall, _ name: String) -> String? {
        SyscallArguments.index(of: name, in: s).map { SyscallArguments.text(s, $0) }
    }

    func testEntryAndExitBytesAreFoundInTheirOrder() throws {
        // readlinkat: pathname read at entry, buf at exit (after it in the record whatever the order).
        let s = try event("readlinkat", args: [UInt64(bitPattern: -100), 0x1000, 0x2000, 64],
                          captured: [nil, Array("/proc/self/exe".utf8), Array("/usr/bin/x".utf8), nil], result: 10)
        XCTAssertEqual(text(s, "pathname"), "/proc/self/exe")
        XCTAssertEqual(text(s, "buf"), "/usr/bin/x")
        XCTAssertEqual(text(s, "dfd"), "-100")
        XCTAssertEqual(text(s, "bufsiz"), "64")
    }

    func testSocketAddresses() throws {
        var v6: [UInt8] = [10, 0, 0x1f, 0x90, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 15) + [1] + [0, 0, 0, 0]
        var s = try event("connect", args: [3, 0x1000, 28], captured: [nil, v6, nil])
        XCTAssertEqual(text(s, "uservaddr"), "[::1]:8080")
        v6 = [10, 0, 0, 80, 0, 0, 0, 0, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
        s = try event("connect", args: [3, 0x1000, 28], captured: [nil, v6, nil])
        XCTAssertEqual(text(s, "uservaddr"), "[2001:db8::1]:80")
        s = try event("connect", args: [3, 0x1000, 16], captured: [nil, [2, 0, 0x01, 0xbb, 10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0], nil])
        XCTAssertEqual(text(s, "uservaddr"), "10.1.2.3:443")
        s = try event("bind", args: [3, 0x1000, 7], captured: [nil, [1, 0, 0] + Array("sock".utf8), nil])
        XCTAssertEqual(text(s, "umyaddr"), "@sock", "an abstract unix socket")
        s = try event("connect", args: [3, 0, 0], captured: [])
        XCTAssertEqual(text(s, "uservaddr"), "NULL")
    }

    /// The data buffer (DNS reads it) and the socket address (the fd table reads it) are found by
    /// their types in the table, where the call has them and they were captured.
    func testTheBufferAndTheSocketAddressAreFoundByType() throws {
        let address: [UInt8] = [2, 0, 0, 53, 10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]
        let sendto = try event("sendto", args: [5, 0x7200, 3, 0, 0x7300, 16], captured: [nil, Array("dns".utf8), nil, nil, address, nil], result: 3)
        XCTAssertEqual(sendto.capturedBuffer.map(Array.init), Array("dns".utf8))
        XCTAssertEqual(sendto.capturedSocketAddress.map(Array.init), address)
        let decoded = try XCTUnwrap(sendto.capturedSocketAddress.flatMap { SocketAddress(sockaddr: $0) })
        XCTAssertEqual(decoded.ip, IPAddress("10.0.0.2"))
        XCTAssertEqual(decoded.port, 53)
        // recvfrom's buffer and source are read at exit, after what was read at entry.
        let recvfrom = try event("recvfrom", args: [5, 0x7200, 512, 0, 0x7300, 0x7400], captured: [nil, [1, 2], nil, nil, address, nil], result: 2)
        XCTAssertEqual(recvfrom.capturedBuffer.map(Array.init), [1, 2])
        XCTAssertEqual(recvfrom.capturedSocketAddress.map(Array.init), address)
        let connect = try event("connect", args: [3, 0, 0])
        XCTAssertNil(connect.capturedSocketAddress, "not captured")
        XCTAssertNil(connect.capturedBuffer, "connect has no buffer")
        XCTAssertNil(try event("getpid", args: []).capturedSocketAddress)
    }

    func testFlagsModesSignalsAndResults() throws {
        var s = try event("clone", args: [0x0100_0000 | 0x0020_0000 | 17, 0, 0, 0, 0], result: 1234)
        XCTAssertEqual(text(s, "clone_flags"), "SIGCHLD|CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID")
        s = try event("fchmodat", args: [UInt64(bitPattern: -100), 0x1000, 0o4755], captured: [nil, Array("/bin/x".utf8), nil])
        XCTAssertEqual(text(s, "mode"), "04755")
        s = try event("kill", args: [42, 9])
        XCTAssertEqual(text(s, "sig"), "SIGKILL")
        XCTAssertEqual(text(s, "pid"), "42")
        s = try event("mmap", args: [0, 4096, 5, 0x22 | 0x8000_0000, UInt64(bitPattern: -1), 0], result: 0x7f00_0000_0000)
        XCTAssertEqual(text(s, "prot"), "PROT_READ|PROT_EXEC")
        XCTAssertEqual(text(s, "flags"), "MAP_PRIVATE|MAP_ANONYMOUS|0x80000000", "unknown bits as hex")
        XCTAssertEqual(text(s, "fd"), "-1")
        var out = ByteBuffer(capacity: 16)
        SyscallArguments.appendResult(s, to: &out)
        XCTAssertEqual(out.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }, "0x7f0000000000")
        s = try event("socket", args: [10, 2 | 0o2000000, 0], result: -97)
        XCTAssertEqual(text(s, "family"), "AF_INET6")
        XCTAssertEqual(text(s, "type"), "SOCK_DGRAM|SOCK_CLOEXEC")
        XCTAssertTrue(s.failedCall)
        out = ByteBuffer(capacity: 16)
        SyscallArguments.appendResult(s, to: &out)
        XCTAssertEqual(out.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }, "EAFNOSUPPORT")
    }

    func testModesAreOctalWithALeadingZeroAndAtLeastThreeDigits() throws {
        for (mode, text) in [(0, "0000"), (0o7, "0007"), (0o644, "0644"), (0o1777, "01777"), (0o177777, "0177777"),
                             (UInt64.max, "01777777777777777777777")] {
            let s = try event("fchmodat", args: [UInt64(bitPattern: -100), 0x1000, UInt64(mode)], captured: [nil, Array("/x".utf8), nil])
            XCTAssertEqual(self.text(s, "mode"), text, "mode \(String(mode, radix: 8))")
        }
    }

    /// A buffer's bytes in JSON's `args`: escaped exactly as any JSON string (quotes, control
    /// characters, bytes that are not UTF-8), however long.
    func testBuffersInJSONAreEscapedLikeAnyString() throws {
        for bytes in [Array("plain".utf8), [0x22, 0x5c, 0x0a, 0x00, 0xff, 0xc3, 0xa9, 0x41], [UInt8](repeating: 0x0a, count: 5000)] {
            let s = try event("write", args: [1, 0x1000, UInt64(bytes.count)], captured: [nil, bytes, nil], result: Int64(bytes.count))
            let e = Event(bootTimeNs: 0, timeNs: 0, cgroupID: 0, pid: 1, tid: 1, ppid: 0, uid: 0, gid: 0, cpu: 0, mountNamespace: 1,
                          pidNamespace: 1, comm: "x", payload: .syscall(s))
            var value = ByteBuffer(capacity: 64)
            bytes.withUnsafeBufferPointer { value.appendJSONString($0) }
            let expected = #"{"name":"buf","type":"buffer","value":"# + value.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } + "}"
            XCTAssertTrue(EventFormat.json(e).contains(expected), "\(bytes.prefix(8)) (\(bytes.count) bytes)")
        }
    }

    func testMissingAndCutValuesSaySo() throws {
        var s = try event("unlinkat", args: [UInt64(bitPattern: -100), 0x1000, 0x200], captured: [nil, nil, nil])
        s.failed = 0b10
        XCTAssertEqual(text(s, "pathname"), "<fault>")
        XCTAssertEqual(text(s, "flag"), "AT_REMOVEDIR")
        s = try event("write", args: [1, 0x1000, 100], captured: [nil, Array("abc".utf8), nil], result: 100)
        s.truncated = 0b10
        XCTAssertEqual(text(s, "buf"), "abc...")
    }

    /// Falco's rules name some arguments otherwise than Linux (symlinkat's `oldname` is Falco's
    /// `target`, linkat's `oldname` its `oldpath`): evt.arg.NAME answers to both names.
    func testFalcosArgumentNamesAnswerToo() throws {
        func syscallEvent(_ s: Payload.Syscall) -> Event {
            Event(bootTimeNs: 0, timeNs: 0, cgroupID: 0, pid: 1, tid: 1, ppid: 0, uid: 0, gid: 0, cpu: 0, mountNamespace: 1,
                  pidNamespace: 1, comm: "ln", payload: .syscall(s))
        }
        let symlink = syscallEvent(try event("symlinkat", args: [0x1000, UInt64(bitPattern: -100), 0x2000],
                                             captured: [Array("/etc/shadow".utf8), nil, Array("/tmp/x".utf8)]))
        for (name, value) in [("target", "/etc/shadow"), ("oldname", "/etc/shadow"), ("linkpath", "/tmp/x"), ("newname", "/tmp/x")] {
            XCTAssertEqual(Fields.named("evt.arg." + name)?.extract(symlink, nil), .string(ByteString(value)), name)
        }
        let link = syscallEvent(try event("linkat", args: [UInt64(bitPattern: -100), 0x1000, UInt64(bitPattern: -100), 0x2000, 0],
                                          captured: [nil, Array("/etc/shadow".utf8), nil, Array("/tmp/y".utf8), nil]))
        XCTAssertEqual(Fields.named("evt.arg.oldpath")?.extract(link, nil), .string("/etc/shadow"))
        XCTAssertEqual(Fields.named("evt.arg.newpath")?.extract(link, nil), .string("/tmp/y"))
        XCTAssertEqual(Fields.named("evt.rawarg.olddir")?.extract(link, nil), .int(-100))
        XCTAssertNil(Fields.named("evt.arg.no_such_argument"))
    }

    func testFieldsAndJSONAgree() throws {
        let s = try event("openat", args: [UInt64(bitPattern: -100), 0x1000, 0o2000000, 0], captured: [nil, Array("/etc/a\"b".utf8), nil, nil], result: 3)
        let e = Event(bootTimeNs: 0, timeNs: 0, cgroupID: 0, pid: 1, tid: 1, ppid: 0, uid: 0, gid: 0, cpu: 0, mountNamespace: 1,
                      pidNamespace: 1, comm: "x", payload: .syscall(s))
        XCTAssertEqual(Fields.named("evt.type")?.extract(e, nil), .string("openat"))
        XCTAssertEqual(Fields.named("evt.arg.filename")?.extract(e, nil), .string("/etc/a\"b"))
        XCTAssertEqual(Fields.named("evt.arg")?.extract(e, "2"), .string("O_RDONLY|O_CLOEXEC"))
        XCTAssertEqual(Fields.named("evt.rawarg.flags")?.extract(e, nil), .uint(0o2000000))
        XCTAssertEqual(Fields.named("evt.rawarg.dfd")?.extract(e, nil), .int(-100))
        XCTAssertNil(Fields.named("evt.arg.no_such_argument"))
        let json = EventFormat.json(e)
        XCTAssertFalse(json.contains(#""evt.args""#), "by default the arguments are written once, as the array: \(json)")
        XCTAssertTrue(json.contains(#""args":[{"name":"dfd","type":"fd","value":"-100"},{"name":"filename","type":"path","value":"/etc/a\"b"}"#), json)
        var both = ByteBuffer(capacity: 2048)
        EventFormat.appendJSON(e, to: &both, memo: JSONMemo(), arguments: .both)
        let bothJSON = both.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
        XCTAssertTrue(bothJSON.contains(#""evt.args":"dfd=-100 filename=/etc/a\"b flags=O_RDONLY|O_CLOEXEC mode=0000""#), bothJSON)
        XCTAssertTrue(bothJSON.contains(#""args":[{"name":"dfd""#), bothJSON)
        XCTAssertTrue(json.contains(#""evt.res":"SUCCESS","evt.rawres":3"#), json)
        // Every syscall field's JSON writer writes what its extract gives.
        for field in Fields.all where field.applies(to: .syscall) && !field.takesArgument {
            let value = field.extract(e, nil)
            var expected = ByteBuffer(capacity: 256)
            if let value { expected.appendJSON(value) }
            if let value, case .string = value, json.contains("\"\(field.name)\":") {
                let rendered = expected.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
                XCTAssertTrue(json.contains("\"\(field.name)\":" + rendered), "\(field.name): \(rendered)")
            }
        }
    }
}
