import Foundation
import VigilBPF
import VigilContainers
import VigilEvents
import VigilRules
import VigilSensors
import VigilTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The conn sensor on this kernel (bpf/conn.bpf.c): real TCP connections on loopback and between
/// two Docker containers, and a real drop. Every capture is narrowed to this process (or one
/// container's cgroup) in the kernel.
final class ConnectionSensorTests: XCTestCase {
    /// struct sock_filter and struct sock_fprog of linux/filter.h (not in Glibc's module).
    private struct ClassicBPF { var code: UInt16; var jt: UInt8; var jf: UInt8; var k: UInt32 }
    private struct ClassicProgram { var len: UInt16; var filter: UnsafeMutablePointer<ClassicBPF>? }

    /// A TCP socket on 127.0.0.1; returns the fd.
    private func tcpSocket() throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        return fd
    }

    private func loopback(_ port: UInt16) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return a
    }

    private func call(_ what: String, _ rc: Int32) throws {
        if rc < 0 { throw NSError(domain: what, code: Int(errno), userInfo: [NSLocalizedDescriptionKey: "\(what): \(String(cString: strerror(errno)))"]) }
    }

    /// A listener on 127.0.0.1, an ephemeral port: (fd, port).
    private func listener() throws -> (Int32, UInt16) {
        let fd = try tcpSocket()
        var a = loopback(0)
        try call("bind", withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } })
        try call("listen", listen(fd, 8))
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        try call("getsockname", withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } })
        return (fd, UInt16(bigEndian: a.sin_port))
    }

    private func connectTo(_ port: UInt16) throws -> Int32 {
        let fd = try tcpSocket()
        var a = loopback(port)
        let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc < 0 { let e = errno; close(fd); errno = e }
        try call("connect", rc)
        return fd
    }

    /// A connection to `server` (listening on `port`): the client's fd and the accepted one.
    private func connectAndAccept(_ server: Int32, _ port: UInt16) throws -> (Int32, Int32) {
        let client = try connectTo(port)
        let accepted = accept(server, nil, nil)
        try call("accept", accepted)
        return (client, accepted)
    }

    private func localPort(_ fd: Int32) -> UInt16 {
        var a = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return UInt16(bigEndian: a.sin_port)
    }

    private func sendAll(_ fd: Int32, _ count: Int) throws {
        let bytes = [UInt8](repeating: 0x61, count: count)
        var sent = 0
        while sent < count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, count - sent, 0) }
            try call("send", Int32(n < 0 ? -1 : 0))
            sent += n
        }
    }

    private func receiveAll(_ fd: Int32, _ count: Int) throws {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            guard n > 0 else { throw NSError(domain: "recv", code: Int(errno)) }
            got += n
        }
    }

    /// Closes at once with a reset (SO_LINGER 0): the socket reaches TCP_CLOSE now.
    private func abort(_ fd: Int32) {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        close(fd)
    }

    private func harness(connHooks: [Hook] = Sensor.conn.hooks) throws -> TraceHarness {
        var filter = KernelFilter()
        filter.pids = [UInt32(getpid())]
        filter.ignorePID = 0 // this process is the one traced (by default the kernel ignores it as Vigil's own)
        return try TraceHarness(kinds: Sensor.conn.kinds, filter: filter, hooks: [Sensor.conn.name: connHooks])
    }

    /// Waits until `events` (collected so far) satisfy `done`, draining the ring, at most 3 s.
    private func collect(_ harness: TraceHarness, until done: ([Event]) -> Bool, _ work: () throws -> Void) throws -> [Event] {
        var events = try harness.collect(work)
        let deadline = Date().addingTimeInterval(3)
        while !done(events), Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
            events += try harness.collect {}
        }
        return events
    }

    func testLoopbackConnectAcceptSendCloseReportsTupleBytesDurationAndProcess() throws {
        let harness = try harness()
        let (server, port) = try listener()
        defer { close(server) }
        var clientPort: UInt16 = 0
        let pid = UInt32(getpid())
        let events = try collect(harness, until: { $0.filter { $0.conn?.phase == .close && $0.pid == pid }.count >= 2 }) {
            let (client, accepted) = try connectAndAccept(server, port)
            clientPort = localPort(client)
            try sendAll(client, 1000)
            try receiveAll(accepted, 1000)
            try sendAll(accepted, 300)
            try receiveAll(client, 300)
            Thread.sleep(forTimeInterval: 0.02)
            close(client)        // FIN first: the client goes through FIN_WAIT to TIME_WAIT (CLOSE)
            Thread.sleep(forTimeInterval: 0.02)
            close(accepted)      // CLOSE_WAIT -> LAST_ACK -> CLOSE when the client acks
        }
        let mine = events.filter { $0.kind == .conn && $0.pid == pid }
        let name = "127.0.0.1:\(clientPort)->127.0.0.1:\(port)"
        let connect = try XCTUnwrap(mine.first { $0.conn?.phase == .connect }, "\(mine.map(EventFormat.tableRow))")
        XCTAssertEqual(connect.comm.string, ownComm)
        XCTAssertEqual(Fields.named("fd.name")?.extract(connect, nil), .string(ByteString(name)))
        XCTAssertEqual(Fields.named("evt.type")?.extract(connect, nil), .string("tcp_connect"))
        XCTAssertEqual(Fields.named("fd.sport")?.extract(connect, nil), .uint(UInt64(port)))
        XCTAssertEqual(Fields.named("fd.cport")?.extract(connect, nil), .uint(UInt64(clientPort)))
        XCTAssertEqual(Fields.named("fd.sip")?.extract(connect, nil), .string("127.0.0.1"))
        XCTAssertEqual(Fields.named("fd.l4proto")?.extract(connect, nil), .string("tcp"))
        let accepted = try XCTUnwrap(mine.first { $0.conn?.phase == .accept })
        XCTAssertEqual(Fields.named("fd.name")?.extract(accepted, nil), .string(ByteString(name)), "the server side names the same flow")
        XCTAssertEqual(Fields.named("evt.type")?.extract(accepted, nil), .string("tcp_accept"))

        let closes = mine.filter { $0.conn?.phase == .close }
        let clientClose = try XCTUnwrap(closes.first { $0.conn?.socket.local?.port == clientPort }, "\(mine.map(EventFormat.tableRow))")
        let serverClose = try XCTUnwrap(closes.first { $0.conn?.socket.local?.port == port }, "\(mine.map(EventFormat.tableRow))")
        for (close, sent, received) in [(clientClose, 1000, 300), (serverClose, 300, 1000)] {
            let c = try XCTUnwrap(close.conn)
            XCTAssertEqual(c.bytesSent, UInt64(sent), EventFormat.tableRow(close))
            XCTAssertEqual(c.bytesReceived, UInt64(received), EventFormat.tableRow(close))
            XCTAssertGreaterThan(c.durationNs, 20_000_000, "the connection lasted over 20 ms: \(EventFormat.tableRow(close))")
            XCTAssertLessThan(c.durationNs, 10_000_000_000)
            XCTAssertEqual(c.retransmits, 0)
            XCTAssertEqual(close.comm.string, ownComm, "the opener, whatever context closed it")
            XCTAssertEqual(Fields.named("fd.name")?.extract(close, nil), .string(ByteString(name)))
            XCTAssertEqual(Fields.named("conn.bytes_sent")?.extract(close, nil), .uint(UInt64(sent)))
        }
        XCTAssertEqual(clientClose.conn?.sock, connect.conn?.sock, "open and close of one connection share conn.id")
        // The JSON names them too.
        let json = EventFormat.json(clientClose)
        XCTAssertTrue(json.contains("\"evt.type\":\"tcp_close\""), json)
        XCTAssertTrue(json.contains("\"conn.bytes_received\":300"), json)
        XCTAssertTrue(json.contains("\"fd.name\":\"\(name)\""), json)
    }

    func testARuleOnConnectionsLoadsTheConnSensorAndMatchesAndApplyReleasesIt() throws {
        var filter = KernelFilter()
        filter.pids = [UInt32(getpid())]
        filter.ignorePID = 0
        let harness = try TraceHarness(kinds: Sensor.process.kinds, filter: filter)
        XCTAssertFalse(harness.sensors.loaded.contains { $0.name == "conn" }, "nothing asked for connections")
        let rules = try RuleSet(files: [("c.yaml", RuleFiles.items(text: """
            - rule: loopback connection closed
              desc: a TCP connection to a local port closed after sending data
              condition: evt.type = tcp_close and fd.sip = 127.0.0.1 and conn.bytes_sent >= 5
              output: "%fd.name sent %conn.bytes_sent"
              priority: NOTICE
            """, file: "c.yaml"))])
        filter.add(rules.pushdown)
        XCTAssertTrue(filter.connections, "the rule's kinds ask for the conn sensor")
        try harness.sensors.apply(filter)
        XCTAssertTrue(harness.sensors.loaded.contains { $0.name == "conn" })
        let (server, port) = try listener()
        defer { close(server) }
        let pid = UInt32(getpid())
        let events = try collect(harness, until: { $0.filter { $0.conn?.phase == .close && $0.pid == pid }.count >= 2 }) {
            let (client, accepted) = try connectAndAccept(server, port)
            try sendAll(client, 5)
            try receiveAll(accepted, 5)
            abort(client)
            abort(accepted)
        }
        let matched = events.filter { !rules.matches($0).isEmpty }
        XCTAssertEqual(matched.count, 1, "the client's close alone sent 5 bytes: \(events.map(EventFormat.tableRow))")
        XCTAssertEqual(matched.first?.conn?.socket.remote?.port, port)

        filter.connections = false
        try harness.sensors.apply(filter)
        XCTAssertFalse(harness.sensors.loaded.contains { $0.name == "conn" }, "released when no rule wants it")
    }

    func testIPv6LoopbackConnectionIsNamedWithItsAddresses() throws {
        let harness = try harness()
        let server = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        try call("socket", server)
        defer { close(server) }
        var a = sockaddr_in6()
        a.sin6_family = sa_family_t(AF_INET6)
        a.sin6_addr = in6addr_loopback
        var len = socklen_t(MemoryLayout<sockaddr_in6>.size)
        try call("bind", withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(server, $0, len) } })
        try call("listen", listen(server, 4))
        try call("getsockname", withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(server, $0, &len) } })
        let port = UInt16(bigEndian: a.sin6_port)
        let pid = UInt32(getpid())
        let events = try collect(harness, until: { $0.contains { $0.conn?.phase == .close && $0.pid == pid } }) {
            let client = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
            try call("socket", client)
            try call("connect", withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, len) } })
            let accepted = accept(server, nil, nil)
            try call("accept", accepted)
            try sendAll(client, 7)
            try receiveAll(accepted, 7)
            abort(client)
            abort(accepted)
        }
        let opened = try XCTUnwrap(events.first { $0.conn?.phase == .connect && $0.pid == pid }, "\(events.map(EventFormat.tableRow))")
        let clientPort = try XCTUnwrap(opened.conn?.socket.local?.port)
        XCTAssertEqual(Fields.named("fd.name")?.extract(opened, nil), .string(ByteString("::1:\(clientPort)->::1:\(port)")))
        XCTAssertEqual(Fields.named("fd.type")?.extract(opened, nil), .string("ipv6"))
        let closed = try XCTUnwrap(events.first { $0.conn?.phase == .close && $0.conn?.socket.local?.port == clientPort })
        XCTAssertEqual(closed.conn?.bytesSent, 7)
    }

    func testAnotherProcesssConnectionIsFilteredInTheKernelAndCounted() throws {
        let harness = try harness()
        let filtered = { try harness.sensors.counters()["conn"]?.filtered ?? 0 }
        let before = try filtered()
        var childPID: Int32 = 0
        let events = try harness.collect {
            let child = Process()
            child.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            child.arguments = ["python3", "-c", """
                import socket
                s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
                c = socket.create_connection(s.getsockname()); a, _ = s.accept(); c.sendall(b"x"); a.recv(1); c.close(); a.close()
                """]
            child.standardInput = FileHandle.nullDevice
            child.standardOutput = FileHandle.nullDevice
            child.standardError = FileHandle.nullDevice
            try child.run()
            childPID = child.processIdentifier
            addTeardownBlock { kill(child.processIdentifier, SIGKILL) }
            child.waitUntilExit()
            XCTAssertEqual(child.terminationStatus, 0)
        }
        XCTAssertFalse(events.contains { $0.pid == UInt32(childPID) && ($0.kind == .conn || $0.kind == EventKind.tcpdrop) },
                       "\(events.filter { $0.kind == .conn }.map(EventFormat.tableRow))")
        XCTAssertGreaterThanOrEqual(try filtered() - before, 2, "its connect and its accept were dropped by the pid filter, and counted")
    }

    func testConnectToAClosedPortClosesFromSynSent() throws {
        let harness = try harness()
        let (probe, port) = try listener()
        close(probe) // the port is free now: a SYN gets a reset
        let pid = UInt32(getpid())
        let events = try collect(harness, until: { $0.contains { $0.conn?.phase == .close && $0.pid == pid } }) {
            XCTAssertThrowsError(try connectTo(port))
        }
        let failed = try XCTUnwrap(events.first { $0.conn?.phase == .close && $0.pid == pid && $0.conn?.socket.remote?.port == port },
                                   "\(events.map(EventFormat.tableRow))")
        XCTAssertEqual(Fields.named("tcp.state")?.extract(failed, nil), .string("SYN_SENT"))
        XCTAssertFalse(events.contains { $0.conn?.phase == .connect && $0.conn?.socket.remote?.port == port }, "never established")
    }

    func testSocketFilterDropIsReportedWithTheKernelsReason() throws {
        try socketFilterDrop(harness())
    }

    /// The fallbacks (raw_tp for the state changes, the kfree_skb tracepoint's record for drops)
    /// report the same: a connection and its drop.
    func testFallbackVariantsReportConnectionsAndDrops() throws {
        let fallbacks = Sensor.conn.hooks.map { hook in Hook(hook.name, variants: [hook.variants.last!]) }
        XCTAssertEqual(fallbacks.map { $0.variants[0].name }, ["raw_tp", "tracepoint", "tracepoint", "raw_tp"])
        let harness = try harness(connHooks: fallbacks)
        XCTAssertEqual(harness.sensors.reports.filter { $0.sensor == "conn" }.map(\.report.active), ["raw_tp", "tracepoint", "tracepoint", "raw_tp"])
        try socketFilterDrop(harness)
    }

    private func socketFilterDrop(_ harness: TraceHarness) throws {
        let (server, port) = try listener()
        defer { close(server) }
        var clientPort: UInt16 = 0
        let pid = UInt32(getpid())
        let events = try collect(harness, until: { $0.contains { $0.tcpdrop != nil && $0.pid == pid } && $0.contains { $0.conn?.phase == .close && $0.pid == pid } }) {
            let (client, accepted) = try connectAndAccept(server, port)
            clientPort = localPort(client)
            // A classic BPF filter that keeps nothing: every segment to this socket is dropped
            // (tcp_filter: SKB_DROP_REASON_SOCKET_FILTER).
            var insns = [ClassicBPF(code: 0x06, jt: 0, jf: 0, k: 0)] // BPF_RET | BPF_K, 0
            try insns.withUnsafeMutableBufferPointer { buffer in
                var program = ClassicProgram(len: 1, filter: buffer.baseAddress)
                try call("SO_ATTACH_FILTER", setsockopt(accepted, SOL_SOCKET, 26 /* SO_ATTACH_FILTER */, &program,
                                                        socklen_t(MemoryLayout<ClassicProgram>.size)))
            }
            try sendAll(client, 100)
            Thread.sleep(forTimeInterval: 0.6) // the client retransmits (RTO: 200 ms at least), dropped again
            abort(client)
            abort(accepted)
        }
        let drops = events.filter { $0.kind == EventKind.tcpdrop && $0.pid == pid }
        let drop = try XCTUnwrap(drops.first { $0.tcpdrop?.socket.local?.port == clientPort }, "\(events.map(EventFormat.tableRow))")
        XCTAssertEqual(Fields.named("tcp.drop_reason")?.extract(drop, nil), .string("SOCKET_FILTER"), EventFormat.tableRow(drop))
        XCTAssertEqual(Fields.named("fd.name")?.extract(drop, nil), .string(ByteString("127.0.0.1:\(clientPort)->127.0.0.1:\(port)")))
        // The function that freed the segment, named from /proc/kallsyms: TCP's receive path.
        guard case .string(let location)? = Fields.named("tcp.drop_location")?.extract(drop, nil) else { return XCTFail("no drop location") }
        XCTAssertNotNil(location.string.range(of: #"^[A-Za-z0-9_.]*tcp[A-Za-z0-9_.]*\+0x[0-9a-f]+$"#, options: .regularExpression), location.string)
        XCTAssertEqual(drop.tcpdrop?.ownerKnown, true, "the accepted socket's opener (this process)")
        XCTAssertEqual(drop.comm.string, ownComm)
        XCTAssertEqual(Fields.named("tcp.state")?.extract(drop, nil), .string("ESTABLISHED"))
        XCTAssertTrue(drop.tcpdrop.map { $0.tcpFlags & 0x08 != 0 } ?? false, "the data segment (PSH): \(EventFormat.tableRow(drop))")
        XCTAssertTrue(EventFormat.json(drop).contains("\"tcp.drop_reason\":\"SOCKET_FILTER\""))
        XCTAssertGreaterThanOrEqual(drops.filter { $0.tcpdrop?.socket.local?.port == clientPort }.count, 2, "the segment and its retransmission")
        // The client's retransmission of the dropped segment: its own event (tcp/tcp_retransmit_skb).
        let retransmit = try XCTUnwrap(events.first { $0.conn?.phase == .retransmit && $0.conn?.socket.local?.port == clientPort },
                                       "\(events.map(EventFormat.tableRow))")
        XCTAssertEqual(Fields.named("evt.type")?.extract(retransmit, nil), .string("tcp_retransmit"))
        XCTAssertEqual(Fields.named("conn.phase")?.extract(retransmit, nil), .string("retransmit"))
        // The count so far: 1 for the first retransmission in most runs, more where an earlier
        // one left no event here (a tail-loss probe under load: CI saw 2 once); never 0, and it
        // never goes back.
        let counts = events.filter { $0.conn?.phase == .retransmit && $0.conn?.socket.local?.port == clientPort }.map { $0.conn?.retransmits ?? 0 }
        XCTAssertGreaterThanOrEqual(counts.first ?? 0, 1, "\(counts)")
        XCTAssertEqual(counts, counts.sorted(), "counted up: \(counts)")
        XCTAssertEqual(retransmit.pid, pid, "the connection's opener")
        let clientClose = try XCTUnwrap(events.first { $0.conn?.phase == .close && $0.conn?.socket.local?.port == clientPort })
        XCTAssertGreaterThanOrEqual(clientClose.conn?.retransmits ?? 0, 1, EventFormat.tableRow(clientClose))
        XCTAssertEqual(clientClose.conn?.bytesSent, 100, "sent once (the retransmission is not counted again), never acknowledged")
    }

    func testContainerToContainerConnectionNamesTheConnectingContainer() throws {
        let network = try DockerTestEngine.createNetwork(for: self)
        let server = try DockerTestEngine.startContainer(for: self, command: ["sh", "-c", "nc -ll -p 8080 -e echo hello"], network: network)
        let client = try DockerTestEngine.startContainer(for: self, network: network)
        var filter = KernelFilter()
        filter.cgroupIDs = CgroupResolver().cgroupIDs(ofContainer: client.id)
        XCTAssertFalse(filter.cgroupIDs.isEmpty)
        let harness = try TraceHarness(kinds: Sensor.conn.kinds, filter: filter, metadata: true)
        var serverAddress = ""
        let events = try collect(harness, until: { $0.contains { $0.conn?.phase == .close } }) {
            let inspect = DockerTestEngine.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", server.name])
            serverAddress = inspect.output.trimmingCharacters(in: .whitespacesAndNewlines)
            let result = DockerTestEngine.run(["docker", "exec", client.name, "sh", "-c", "nc \(server.name) 8080 </dev/null"])
            XCTAssertEqual(result.status, 0, result.errors)
            XCTAssertTrue(result.output.contains("hello"), result.output)
        }
        let connect = try XCTUnwrap(events.first { $0.conn?.phase == .connect }, "\(events.map(EventFormat.tableRow))")
        XCTAssertEqual(connect.container.name, client.name)
        XCTAssertEqual(connect.container.fullID, client.id)
        XCTAssertEqual(Fields.named("fd.sip")?.extract(connect, nil), .string(ByteString(serverAddress)))
        XCTAssertEqual(Fields.named("fd.sport")?.extract(connect, nil), .uint(8080))
        XCTAssertEqual(Fields.named("container.name")?.extract(connect, nil), .string(ByteString(client.name)))
        let close = try XCTUnwrap(events.first { $0.conn?.phase == .close })
        XCTAssertEqual(close.container.name, client.name)
        XCTAssertEqual(close.conn?.bytesReceived, 6, "hello and a newline")
        XCTAssertTrue(events.allSatisfy { $0.container.fullID == client.id }, "only the client container's cgroup passed")
    }
}
