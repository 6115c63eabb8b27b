import CVigilABI
@testable import VigilEvents
import XCTest

/// The fast JSON path (a plan per kind, groups rendered once per process or container context,
/// one reusable buffer) against the obvious rendering from the field catalogue.
final class JSONOutputTests: XCTestCase {
    private static let payloads: [Payload] = [
        .exec(.init(filename: "./x", executablePath: "/usr/bin/cat", arguments: ["cat", ByteString([0x61, 0xff, 0x0a]), "", "é😀\u{1}"],
                    argumentsTruncated: true, cwd: "/tmp/a b", tty: "pts0", ttyNumber: 34816, loginUID: 1000, startTimeNs: 0)),
        .fork(.init(childPID: 11, childTID: 13, isThread: true, childStartTimeNs: 0)),
        .exit(.init(status: 9 | (3 << 8), startTimeNs: 0, durationNs: 1234)),
        .open(.init(syscall: "openat2", name: ByteString([0x78, 0xfe]), path: ByteString([0x2f, 0x78, 0xfe]), flags: 0o2000101,
                    mode: 0o600, dirfd: 3, result: -13, truncated: false)),
        .open(.init(syscall: "open", name: "/proc/12/status", path: "/proc/12/status", flags: 0xffff_ffff, mode: 0, dirfd: -100,
                    result: 7, truncated: true)),
    ]

    private static let containers: [ContainerContext] = [
        .host, .unidentified,
        ContainerContext(fullID: String(repeating: "ab", count: 32), runtime: "docker", name: "web", image: "nginx:1",
                         labels: ["app": "web", "tier": "front\"end"], podUID: ""),
        ContainerContext(fullID: "0123456789abcdef", runtime: "kube", name: "", image: "", labels: [:], podUID: "1234-5678"),
    ]

    private static func event(_ payload: Payload, container: ContainerContext = .host, known: Bool = true, comm: ByteString = "cat",
                              tid: UInt32 = 12, time: UInt64 = 1_795_390_514_463_098_509) -> Event {
        var e = Event(bootTimeNs: 5, timeNs: time, cgroupID: 77, pid: 10, tid: tid, ppid: 1, uid: 1000, gid: 100, cpu: 1,
                      mountNamespace: 4026531832, pidNamespace: 4026531836, comm: comm, payload: payload)
        if known {
            e.process.executablePath = "/usr/bin/cat"
            e.process.arguments = ["cat", ByteString([0x61, 0xff, 0x0a]), "x y"]
            e.process.cwd = "/tmp/a b"
            e.process.ttyNumber = 34816
            e.process.loginUID = 1000
            e.process.ancestorNames = ["bash", "sshd"]
            e.process.ancestorPIDs = [1, 0]
            e.process.parentArguments = ["bash", "-c", "cat\tx"]
            e.process.userName = "alice"
            e.process.loginUserName = "alice"
            e.process.groupName = "users"
        }
        e.container = container
        return e
    }

    private static var events: [Event] {
        payloads.flatMap { payload in
            containers.flatMap { container in [true, false].map { event(payload, container: container, known: $0) } }
        }
    }

    /// The JSON a field's value has, from `extract`.
    private static func valueJSON(_ field: FieldDefinition, _ event: Event) -> [UInt8]? {
        guard let value = field.extract(event, nil) else { return nil }
        var out = ByteBuffer()
        out.appendJSON(value)
        return out.bytes()
    }

    /// The object the obvious way: each field the kind carries, in catalogue order, then the labels.
    private static func referenceJSON(_ event: Event) -> String {
        var parts: [String] = []
        for field in Fields.all where !field.takesArgument && field.applies(to: event.kind) && !JSONPlan.onRequest.contains(field.name)
            && field.name != "evt.args" { // the default JSON has the args array instead (JSONArguments.standard)
            guard let value = valueJSON(field, event) else { continue }
            parts.append("\"\(field.name)\":" + String(decoding: value, as: UTF8.self))
        }
        let labels = event.container.labels
        if !labels.isEmpty {
            var out = ByteBuffer()
            for (i, key) in labels.keys.sorted().enumerated() {
                if i > 0 { out.append(0x2c) }
                out.appendJSON(key)
                out.append(0x3a)
                out.appendJSON(labels[key] ?? "")
            }
            parts.append("\"container.labels\":{" + String(decoding: out.bytes(), as: UTF8.self) + "}")
        }
        if case .syscall(let s) = event.payload {
            // Each argument's name, type and value (its text, as evt.arg[N] gives it).
            let entries = s.descriptor.params.enumerated().map { i, p in
                var out = ByteBuffer()
                out.append("{\"name\":")
                out.appendJSON(p.nameString)
                out.append(",\"type\":")
                out.appendJSON(p.type.name)
                out.append(",\"value\":")
                out.appendJSON(SyscallArguments.bytes(s, i))
                if s.truncated & (1 << UInt8(i)) != 0 { out.append(",\"truncated\":true") }
                out.append(0x7d)
                return String(decoding: out.bytes(), as: UTF8.self)
            }
            parts.append("\"args\":[" + entries.joined(separator: ",") + "]")
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    /// Syscall events (openat with a path, newfstatat, read with a buffer, write, close,
    /// sendto on a socket, a failed openat) with every kind of fd entry the fd table gives:
    /// none, a file (nested, top level, a bare name), a directory, a pipe, an IPv4 socket with
    /// names, a unix socket.
    private static var syscallEvents: [Event] {
        func call(_ name: String, _ args: [UInt64], captured: [Int: [UInt8]] = [:], result: Int64 = 0) -> Payload {
            var lengths = SIMD8<UInt16>.zero
            var data: [UInt8] = []
            for i in 0..<6 { if let bytes = captured[i] { lengths[i] = UInt16(bytes.count); data += bytes } }
            var raw = SIMD8<UInt64>.zero
            for (i, a) in args.enumerated() { raw[i] = a }
            return .syscall(.init(index: Syscalls.index(named: name)!, result: result, latencyNs: 1234, args: raw, lengths: lengths,
                                  data: ByteString(data)))
        }
        let atFDCWD = UInt64(bitPattern: -100)
        let payloads: [Payload] = [
            call("openat", [atFDCWD, 0x7000, 0o2000000, 0], captured: [1: Array("/etc/a \"b\".txt".utf8)], result: 3),
            call("openat", [atFDCWD, 0x7000, 0, 0], captured: [1: [0x78, 0xff, 0x0a]], result: -2),
            call("newfstatat", [3, 0x7000, 0x7100, 0x1000], captured: [1: []]),
            call("read", [3, 0x7200, 64], captured: [1: Array("ab\u{1}c".utf8)], result: 4),
            call("write", [1, 0x7200, 3], captured: [1: Array("xyz".utf8)], result: 3),
            call("close", [3]),
            call("sendto", [5, 0x7200, 3, 0, 0x7300, 16], captured: [1: Array("dns".utf8)], result: 3),
        ]
        let tcp = SocketInfo(l4proto: .udp, local: SocketAddress(ip: IPAddress("10.0.0.1")!, port: 40000),
                             remote: SocketAddress(ip: IPAddress("10.0.0.2")!, port: 53), role: .client, connected: true)
        let fds: [FDInfo?] = [
            nil,
            FDInfo(number: 3, type: .file, name: "/etc/a \"b\".txt", inode: 12, device: 2049),
            FDInfo(number: 3, type: .file, name: "/top"),
            FDInfo(number: 3, type: .file, name: "bare"),
            FDInfo(number: 4, type: .directory, closeOnExec: true, name: "/srv/d"),
            FDInfo(number: 5, type: .pipe, name: "pipe:[77]"),
            FDInfo(number: 5, type: .ipv4, name: "10.0.0.1:40000->10.0.0.2:53", socket: tcp),
            FDInfo(number: 6, type: .unix, name: "/run/s.sock", socket: SocketInfo(l4proto: .unknown, remote: SocketAddress(path: "/run/s.sock"))),
        ]
        return payloads.flatMap { payload in
            fds.enumerated().map { i, fd in
                var e = event(payload, container: containers[i % containers.count], known: i % 2 == 0)
                e.setFD(fd)
                e.fdNameChanged = i == 6
                if i == 6 { e.remoteIPName = "ns.example" } // DNSNames' name for the socket's remote end
                return e
            }
        }
    }

    func testSyscallEventsJSONIsTheCatalogueRenderingWithEveryStyleOfArguments() {
        for event in Self.syscallEvents {
            let first = EventFormat.json(event)
            XCTAssertEqual(first, Self.referenceJSON(event))
            XCTAssertEqual(EventFormat.json(event), first, "from the groups rendered the first time")
            for field in Fields.all where !field.takesArgument && field.applies(to: event.kind) {
                var out = ByteBuffer()
                let written = field.appendJSON(event, to: &out)
                XCTAssertEqual(written ? out.bytes() : nil, Self.valueJSON(field, event), "\(field.name)")
            }
            // The args array and evt.args, as `vigil trace --json-args` chooses.
            let memo = JSONMemo()
            let evtArgs = Fields.named("evt.args")?.extract(event, nil)
            for style in JSONArguments.allCases {
                var out = ByteBuffer()
                EventFormat.appendJSON(event, to: &out, memo: memo, arguments: style)
                guard case .object(let object)? = try? EventJSON.parse(String(decoding: out.bytes(), as: UTF8.self)) else {
                    XCTFail("\(style): not a JSON object")
                    continue
                }
                XCTAssertEqual(object["args"] != nil, style != .string, "\(style)")
                if case .string(let text)? = object["evt.args"] {
                    XCTAssertEqual(FieldValue.string(text), evtArgs, "\(style)")
                } else {
                    XCTAssertEqual(style, .array, "evt.args missing")
                }
            }
        }
    }

    /// A syscall event's runs of event fields that `SyscallLineField` knows are one step each in
    /// its plan (written straight from the payload), with every style of arguments: the header
    /// (evt.type to thread.tid) and evt.category to evt.latency, in catalogue order, and the
    /// `args` array alone (a run of one) when the style has it; the other kinds' plans have none.
    /// (What those steps write is the catalogue's rendering: above.)
    func testSyscallPlansWriteTheirEventFieldRunsInOneStepEach() {
        for style in JSONArguments.allCases {
            let plan = JSONPlan.forStyle[style.rawValue][EventKind.syscall.index]
            let runs = plan.steps.filter { $0.lineEnd > 0 }.map { step in
                plan.line[step.lineStart..<step.lineEnd].map { item in
                    String(decoding: plan.keys[Int(item.keyStart)..<Int(item.keyStart + item.keyCount)], as: UTF8.self)
                }
            }
            XCTAssertEqual(runs, [
                [",\"evt.type\":", ",\"evt.kind\":", ",\"evt.time\":", ",\"evt.rawtime\":", ",\"evt.res\":", ",\"evt.rawres\":",
                 ",\"evt.cpu\":", ",\"proc.pid\":", ",\"thread.tid\":"],
                [",\"evt.category\":", ",\"evt.failed\":", ",\"evt.truncated\":", ",\"evt.latency\":"],
            ] + (style == .string ? [] : [[",\"args\":"]]), "\(style)")
        }
        for kind in EventKind.allCases where kind != .syscall {
            XCTAssertTrue(JSONPlan.forKind[kind.index].line.isEmpty, "\(kind)")
            XCTAssertFalse(JSONPlan.forKind[kind.index].steps.contains { $0.lineEnd > 0 }, "\(kind)")
        }
    }

    func testTheFDFlagsFollowTheFDThroughEveryChange() {
        var e = Self.syscallEvents[1]
        func check(_ what: String) {
            XCTAssertEqual(e.hasFD, e.fd != nil, what)
            XCTAssertEqual(e.hasSocketFD, e.fd?.socket != nil, what)
            XCTAssertEqual(e.fd?.hasSocket, e.fd.map { $0.socket != nil }, what)
        }
        check("as made")
        e.setFD(nil); check("no fd")
        e.setFD(FDInfo(number: 3, type: .ipv4, name: "a", socket: SocketInfo(l4proto: .tcp))); check("a socket's")
        e.setFD(FDInfo(number: 3, type: .ipv4, name: "a")); check("a socket's entry replaced by one without")
        e.setFD(FDInfo(number: 4, type: .ipv4, name: "a", socket: SocketInfo(l4proto: .udp))); check("another socket's")
        var copy = e
        copy.setFD(nil)
        check("a copy changed")
        XCTAssertFalse(copy.hasFD || copy.hasSocketFD)
    }

    func testFieldsThatRequireASocketOrDNSHaveNoValueWithout() {
        for event in Self.events + Self.syscallEvents {
            for field in Fields.all where !field.takesArgument && field.applies(to: event.kind) && !field.requires.isMet(by: event) {
                XCTAssertNil(field.extract(event, nil), "\(field.name) on \(event.kind)")
            }
        }
        // The claim is made for every socket and DNS field, and met by events that have one.
        XCTAssertEqual(Fields.all.filter { $0.requires == .socket }.count, 23) // 22 fd.* and net.stratum.method
        XCTAssertEqual(Set(Fields.all.filter { $0.requires == .dns }.map(\.name)), Set(Fields.names.filter { $0.hasPrefix("dns.") }))
        XCTAssertTrue(Self.syscallEvents.contains { FieldRequirement.socket.isMet(by: $0) })
    }

    func testFieldJSONWritersWriteWhatExtractReturns() {
        for event in Self.events {
            for field in Fields.all where !field.takesArgument && field.applies(to: event.kind) {
                var out = ByteBuffer()
                let written = field.appendJSON(event, to: &out)
                let expected = Self.valueJSON(field, event)
                XCTAssertEqual(written ? out.bytes() : nil, expected, "\(field.name) on \(event.kind)")
            }
        }
    }

    func testJSONIsTheCatalogueRenderingFirstAndSecondTime() {
        for event in Self.events {
            let first = EventFormat.json(event)
            XCTAssertEqual(first, Self.referenceJSON(event), "\(event.kind)")
            XCTAssertEqual(EventFormat.json(event), first, "from the groups rendered the first time")
        }
    }

    func testProcessAndContainerScopedFieldsDependOnlyOnWhatTheirScopeSays() {
        // Same process context, key and container kind; everything else different.
        for payload in Self.payloads {
            let a = Self.event(payload, container: Self.containers[2], tid: 12, time: 1)
            var b = Self.event(payload, container: Self.containers[3], tid: 99, time: 2)
            b.process = a.process
            b.cpu = 0
            b.bootTimeNs = 9
            for field in Fields.all where field.scope == .process && field.applies(to: payload.kind) {
                XCTAssertEqual(Self.valueJSON(field, a), Self.valueJSON(field, b), field.name)
            }
            // Same container; process, header and payload different.
            let c = Self.event(payload, container: Self.containers[2], known: true, comm: "a")
            let d = Self.event(Self.payloads[(Self.payloads.count - 1) - 1], container: Self.containers[2], known: false, comm: "b", tid: 3)
            for field in Fields.all where field.scope == .container {
                XCTAssertEqual(Self.valueJSON(field, c), Self.valueJSON(field, d), field.name)
            }
        }
    }

    func testRenderedGroupsFollowChangesToTheirContext() {
        let open = Self.payloads[3]
        let parent = Self.event(open)
        XCTAssertTrue(EventFormat.json(parent).contains("\"proc.pname\":\"bash\""))
        // A copy that shares the context until it changes it.
        var changed = parent
        changed.process.ancestorNames = ["zsh"]
        XCTAssertTrue(EventFormat.json(changed).contains("\"proc.pname\":\"zsh\""))
        XCTAssertTrue(EventFormat.json(parent).contains("\"proc.pname\":\"bash\""), "the original keeps its own")
        // The only holder of a context changes it in place: what was rendered for it goes.
        var only = Self.event(open)
        XCTAssertTrue(EventFormat.json(only).contains("\"proc.cwd\":\"/tmp/a b\""))
        only.process.cwd = "/srv"
        XCTAssertTrue(EventFormat.json(only).contains("\"proc.cwd\":\"/srv\""))
        var container = Self.event(open, container: ContainerContext(fullID: "ab", runtime: "lxc", name: "", image: "",
                                                                    labels: [:], podUID: ""))
        XCTAssertTrue(EventFormat.json(container).contains("\"container.name\":\"\""))
        container.container.name = "named later"
        XCTAssertTrue(EventFormat.json(container).contains("\"container.name\":\"named later\""))
        // Threads of one process with names of their own share the context, not the rendering.
        var thread = parent
        thread.comm = "worker"
        XCTAssertTrue(EventFormat.json(thread).contains("\"proc.name\":\"worker\""))
        XCTAssertTrue(EventFormat.json(thread).contains("\"proc.cmdline\":\"worker a\\udcff\\n x y\""))
        XCTAssertEqual(EventFormat.json(thread), Self.referenceJSON(thread))
        // Header fields of the process group: a new parent or user after the first rendering.
        for change in [\Event.ppid, \Event.uid, \Event.gid, \Event.mountNamespace, \Event.pidNamespace] {
            var moved = parent
            moved[keyPath: change] = 77
            XCTAssertEqual(EventFormat.json(moved), Self.referenceJSON(moved), "\(change)")
        }
        var otherCgroup = parent
        otherCgroup.cgroupID = 78
        XCTAssertTrue(EventFormat.json(otherCgroup).contains("\"proc.cgroup_id\":78"))
        var inContainer = parent
        inContainer.container = Self.containers[2]
        XCTAssertTrue(EventFormat.json(inContainer).contains("\"proc.is_container\":true"))
        // A container renamed after its first events.
        var renamed = Self.event(open, container: Self.containers[2])
        XCTAssertTrue(EventFormat.json(renamed).contains("\"container.name\":\"web\""))
        renamed.container.name = "web-2"
        XCTAssertTrue(EventFormat.json(renamed).contains("\"container.name\":\"web-2\""))
        XCTAssertEqual(EventFormat.json(renamed), Self.referenceJSON(renamed))
    }

    func testDecoderSharesRepeatedStringsAndResolvesEveryPath() throws {
        var decoder = EventDecoder(bootToEpochNs: 0)
        /// An open record of `name` relative to `base` (absolute when `base` is empty).
        func record(_ name: String, base: String = "", flags: UInt32 = 0) -> [UInt8] {
            var e = vigil_open_event()
            e.hdr.kind = UInt32(VIGIL_EVENT_OPEN.rawValue)
            e.hdr.pid = 10
            withUnsafeMutableBytes(of: &e.hdr.comm) { $0.copyBytes(from: Array("cat".utf8)) }
            e.name_len = UInt16(name.utf8.count)
            e.base_len = UInt16(base.utf8.count)
            e.flags = flags
            var bytes = withUnsafeBytes(of: e) { Array($0) } + Array(name.utf8) + Array(base.utf8)
            bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt32($0.count), toByteOffset: 20, as: UInt32.self) }
            return bytes
        }
        func decode(_ bytes: [UInt8]) throws -> Payload.Open {
            let event = try XCTUnwrap(bytes.withUnsafeBytes { decoder.decode($0) })
            guard case .open(let o) = event.payload else { throw UnexpectedKind(kind: event.kind, expected: .open) }
            return o
        }
        // More distinct paths than the cache has slots, twice: replaced slots never give a wrong string.
        let paths = (0..<3000).map { "/srv/d\($0 % 37)/f\($0).txt" }
        for _ in 0..<2 {
            for path in paths {
                let o = try decode(record(path))
                XCTAssertEqual(o.path.string, path)
                XCTAssertEqual(o.name.string, path)
                XCTAssertEqual(o.directory, PathParts.directory(o.path))
                XCTAssertEqual(o.filename, PathParts.filename(o.path))
            }
        }
        let first = try decode(record("/etc/hosts")), again = try decode(record("/etc/hosts"))
        XCTAssertTrue(first.path.bytes.withUnsafeBufferPointer { a in again.path.bytes.withUnsafeBufferPointer { $0.baseAddress == a.baseAddress } },
                      "a repeated path shares one allocation")
        XCTAssertEqual(try decode(record("x/../y z", base: "/etc")).path, "/etc/y z")
        XCTAssertEqual(try decode(record("y", base: "/")).directory, "/")
        XCTAssertEqual(try decode(record("//etc/./hosts")).path, "/etc/hosts")
        let unknown = try decode(record("rel", base: "", flags: UInt32(VIGIL_OPEN_BASE_UNKNOWN.rawValue)))
        XCTAssertEqual(unknown.path, "rel", "dirfd named no directory: the name as given")
        XCTAssertEqual(unknown.directory, ".")
    }

    func testDecoderSplitsArgvAtEachNUL() throws {
        var decoder = EventDecoder(bootToEpochNs: 0)
        func arguments(_ argv: [UInt8]) throws -> [ByteString] {
            var e = vigil_exec_event()
            e.hdr.kind = UInt32(VIGIL_EVENT_EXEC.rawValue)
            e.filename_len = 4
            e.args_len = UInt16(argv.count)
            e.cwd_len = 1
            var bytes = withUnsafeBytes(of: e) { Array($0) } + Array("/x/y".utf8) + argv + Array("/".utf8)
            bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt32($0.count), toByteOffset: 20, as: UInt32.self) }
            let event = try XCTUnwrap(bytes.withUnsafeBytes { decoder.decode($0) })
            guard case .exec(let x) = event.payload else { throw UnexpectedKind(kind: event.kind, expected: .exec) }
            return x.arguments
        }
        XCTAssertEqual(try arguments(Array("ls\0-l\0".utf8)), ["ls", "-l"])
        XCTAssertEqual(try arguments(Array("ls\0-l".utf8)), ["ls", "-l"], "the last NUL cut with the bound")
        XCTAssertEqual(try arguments(Array("a\0\0b\0".utf8)), ["a", "", "b"], "an empty argument in the middle")
        XCTAssertEqual(try arguments([0]), [""], "execve with an empty argv: the kernel passes one empty argument")
        XCTAssertEqual(try arguments([]), [], "nothing read: no argument, not one empty one")
    }

    /// The JSON of `e` with `memo`, as `EventOutput` writes it.
    private static func memoizedJSON(_ e: Event, _ memo: JSONMemo) -> String {
        var out = ByteBuffer()
        EventFormat.appendJSON(e, to: &out, memo: memo)
        return String(decoding: out.bytes(), as: UTF8.self)
    }

    func testMemoizedOpenFieldsFollowEveryInputOfThePayload() {
        let memo = JSONMemo()
        func memoized(_ e: Event) -> String { Self.memoizedJSON(e, memo) }
        func changed(_ e: Event, _ change: (inout Payload.Open) -> Void) -> Event {
            guard case .open(var o) = e.payload else { return e }
            change(&o)
            var e = e
            e.payload = .open(o)
            return e
        }
        let base = Self.event(Self.payloads[4]) // /proc/12/status, pid 10: another process's file
        var variants = [base, base, changed(base) { $0.result = 4 }, changed(base) { $0.result = -2 }, changed(base) { $0.flags = 0o101 },
                        changed(base) { $0.mode = 0o644 }, changed(base) { $0.dirfd = 7 }, changed(base) { $0.truncated = false },
                        changed(base) { $0.killedInKernel = true }, changed(base) { $0.path = "/proc/12/stat" },
                        changed(base) { $0.name = "status" }, changed(base) { $0.path = ByteString("/proc/12/status") }]
        var own = base
        own.pid = 12 // now its own /proc entry
        variants.append(own)
        variants.append(Self.event(Self.payloads[3]))
        for event in variants + variants {
            XCTAssertEqual(memoized(event), Self.referenceJSON(event))
        }
    }

    /// evt.time through a memo's text of the last second: the same text as made whole, for
    /// events of one second, of the next, back in time, and at the clock's ends.
    func testMemoizedTimeIsTheWholeTimeForEverySecond() {
        let memo = JSONMemo()
        var event = Self.syscallEvents[1]
        let now: UInt64 = 1_796_609_830_834_841_321
        for time in [now, now + 1, now + 999_999, now + 165_158_678, now + 165_158_679, now - 1_000_000_000, 0, 999_999_999,
                     1_000_000_000, 951_782_400_000_000_001, UInt64.max, UInt64.max - 1, now] {
            event.timeNs = time
            XCTAssertEqual(Self.memoizedJSON(event, memo), Self.referenceJSON(event), "\(time)")
            XCTAssertTrue(Self.memoizedJSON(event, memo).contains("\"evt.time\":\"\(Timestamp.iso8601(time))\""), "\(time)")
        }
    }

    func testMemoizedSyscallFDFieldsFollowEveryInputOfTheFD() {
        let memo = JSONMemo()
        // Every syscall event, then one fd entry changed one input at a time: the number, the
        // type, the name (other bytes; the same bytes in other storage), the inode, the device,
        // the socket; and the same entry on another syscall and in another process.
        var variants = Self.syscallEvents
        let base = variants[1] // openat on /etc/a "b".txt, fd 3
        func changed(_ change: (inout FDInfo) -> Void) -> Event {
            var e = base
            if var fd = e.fd { change(&fd); e.setFD(fd) }
            return e
        }
        variants += [base, changed { $0.number = 4 }, changed { $0.type = .directory }, changed { $0.type = .pipe },
                     changed { $0.name = "/etc/other" }, changed { $0.name = ByteString(Array("/etc/a \"b\".txt".utf8)) },
                     changed { $0.inode = 13 }, changed { $0.device = 2050 }, changed { $0.closeOnExec = true },
                     changed { $0.socket = SocketInfo(l4proto: .tcp) }]
        var other = base
        other.pid = 11
        variants += [other, Self.syscallEvents[9], Self.syscallEvents[17]]
        for event in variants + variants {
            XCTAssertEqual(Self.memoizedJSON(event, memo), Self.referenceJSON(event))
        }
    }

    func testMemoizedProcessAndContainerFieldsFollowEveryInputOfTheContext() {
        let memo = JSONMemo()
        // One event's process and container contexts changed in place (the event then holds the
        // only other reference), one input at a time; the header fields of the process key; and
        // other contexts with the same values: every line the catalogue's rendering.
        var e = Self.syscallEvents[1]
        func write() {
            let reference = Self.referenceJSON(e)
            XCTAssertEqual(Self.memoizedJSON(e, memo), reference)
            XCTAssertEqual(Self.memoizedJSON(e, memo), reference, "the same event again")
        }
        write()
        e.process.cwd = "/srv"; write()
        e.process.userName = "bob"; write()
        e.process.arguments = ["cat", "-n"]; write()
        e.process.startTimeNs = 5; write()
        e.container.name = "renamed"; write()
        e.container = Self.containers[1]; write()
        e.container.image = "other:1"; write()
        e.comm = "dog"; write()
        e.uid = 1001; write()
        e.ppid = 2; write()
        e.cgroupID = 78; write()
        e.process = ProcessContext(); write()
        e.process.cwd = "/srv"; write() // the same values in new storage
        // Another thread of the process with a name of its own, between two of the process's.
        var thread = e
        thread.comm = "worker"; thread.tid = 13
        for event in [e, thread, e, thread] { XCTAssertEqual(Self.memoizedJSON(event, memo), Self.referenceJSON(event)) }
    }
}

/// A record decoded as another kind than the one the test built: the test fails with it.
private struct UnexpectedKind: Error, CustomStringConvertible {
    var kind: EventKind
    var expected: EventKind
    var description: String { "decoded a \(kind.rawValue) event, expected \(expected.rawValue)" }
}
