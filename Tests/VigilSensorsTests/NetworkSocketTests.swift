import Foundation
import VigilEvents
import VigilRules
import VigilSensors
import VigilTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Socket tuples on the real kernel, from this process's own sockets on loopback: connect's local
/// end comes from the kernel's struct sock at the syscall's exit, accept's peer likewise; the fd
/// table carries the tuple so later reads, writes and the close know it (fd.name in Falco's
/// `cip:cport->sip:sport` form, fd.sip/cport/..., fd.l4proto, fd.connected); IPv4, IPv6 with a
/// non-blocking connect (EINPROGRESS), a dual-stack server seeing an IPv4 client, unix sockets,
/// and an unconnected UDP sendto. CIDR conditions are evaluated on the real events.
final class NetworkSocketTests: XCTestCase {
    private func harness(_ syscalls: [String]) throws -> TraceHarness {
        var filter = KernelFilter()
        filter.ignorePID = 0 // this process's own syscalls
        return try TraceHarness(files: false, filter: filter, syscalls: SyscallCapture(names: syscalls))
    }

    private func mine(_ events: [Event], _ name: String, fd: Int32? = nil) -> [Event] {
        let me = UInt32(getpid())
        return events.filter {
            guard $0.pid == me, case .syscall(let s) = $0.payload, s.descriptor.nameString == name else { return false }
            return fd.map { Int32(truncatingIfNeeded: s.args[0]) == $0 } ?? true
        }
    }

    private func field(_ name: String, _ event: Event) -> FieldValue? { Fields.named(name)?.extract(event, nil) }

    /// The port a socket is bound to (getsockname).
    private func localPort(_ fd: Int32) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return withUnsafeBytes(of: storage) { UInt16($0[2]) << 8 | UInt16($0[3]) }
    }

    private func bindListen(_ family: Int32, _ address: String) throws -> Int32 {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        try withSockaddr(family, address, 0) { XCTAssertEqual(bind(fd, $0, $1), 0, "bind \(address): \(errno)") }
        XCTAssertEqual(listen(fd, 8), 0)
        return fd
    }

    private func withSockaddr(_ family: Int32, _ address: String, _ port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> Void) throws {
        if family == AF_INET {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            XCTAssertEqual(inet_pton(AF_INET, address, &a.sin_addr), 1)
            try withUnsafePointer(to: &a) { try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        } else {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            XCTAssertEqual(inet_pton(AF_INET6, address, &a.sin6_addr), 1)
            try withUnsafePointer(to: &a) { try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        }
    }

    func testTCPv4ConnectAcceptReadWriteClose() throws {
        let harness = try harness(["connect", "accept4", "accept", "write", "read", "close", "bind", "listen"])
        var server: Int32 = -1, client: Int32 = -1, accepted: Int32 = -1
        var serverPort: UInt16 = 0, clientPort: UInt16 = 0
        let events = try harness.collect {
            server = try bindListen(AF_INET, "127.0.0.1")
            serverPort = localPort(server)
            client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            try withSockaddr(AF_INET, "127.0.0.1", serverPort) { XCTAssertEqual(connect(client, $0, $1), 0) }
            clientPort = localPort(client)
            accepted = accept4(server, nil, nil, 0)
            XCTAssertGreaterThanOrEqual(accepted, 0)
            XCTAssertEqual(write(client, "ping", 4), 4)
            var buffer = [UInt8](repeating: 0, count: 8)
            XCTAssertEqual(read(accepted, &buffer, 8), 4)
            close(client); close(accepted); close(server)
        }
        let name = "127.0.0.1:\(clientPort)->127.0.0.1:\(serverPort)"
        let connectEvent = try XCTUnwrap(mine(events, "connect", fd: client).first, "the connect")
        XCTAssertEqual(connectEvent.fd?.name.string, name)
        XCTAssertEqual(connectEvent.fd?.type, .ipv4)
        XCTAssertEqual(field("fd.sip", connectEvent), .string("127.0.0.1"))
        XCTAssertEqual(field("fd.sport", connectEvent), .uint(UInt64(serverPort)))
        XCTAssertEqual(field("fd.cport", connectEvent), .uint(UInt64(clientPort)))
        XCTAssertEqual(field("fd.lport", connectEvent), .uint(UInt64(clientPort)))
        XCTAssertEqual(field("fd.rport", connectEvent), .uint(UInt64(serverPort)))
        XCTAssertEqual(field("fd.l4proto", connectEvent), .string("tcp"))
        XCTAssertEqual(field("fd.connected", connectEvent), .bool(true))
        let acceptEvent = try XCTUnwrap(mine(events, "accept4", fd: server).first, "the accept4")
        XCTAssertEqual(acceptEvent.fd?.number, accepted)
        XCTAssertEqual(acceptEvent.fd?.name.string, name, "the accepted socket: client -> server")
        XCTAssertEqual(field("fd.rport", acceptEvent), .uint(UInt64(clientPort)))
        XCTAssertEqual(field("fd.lport", acceptEvent), .uint(UInt64(serverPort)))
        XCTAssertEqual(field("fd.cip", acceptEvent), .string("127.0.0.1"))
        XCTAssertEqual(mine(events, "write", fd: client).first?.fd?.name.string, name, "a write knows the tuple")
        XCTAssertEqual(mine(events, "read", fd: accepted).first?.fd?.name.string, name, "a read on the accepted fd knows it")
        XCTAssertEqual(mine(events, "close", fd: client).first?.fd?.name.string, name, "the close knows it")
        let bindEvent = try XCTUnwrap(mine(events, "bind", fd: server).first)
        XCTAssertEqual(bindEvent.fd?.name.string, "127.0.0.1:\(serverPort)")
        let listenEvent = try XCTUnwrap(mine(events, "listen", fd: server).first)
        XCTAssertEqual(field("fd.lport", listenEvent), .uint(UInt64(serverPort)))

        // CIDR matching on the real events.
        let inLoopback = try ConditionCompiler.compile("evt.type = connect and fd.snet in (\"10.0.0.0/8\", \"127.0.0.0/8\") and fd.sport = \(serverPort)",
                                                       at: SourceLocation(file: "t", line: 1, column: 1), context: ConditionContext())
        XCTAssertTrue(inLoopback.matches(connectEvent))
        let elsewhere = try ConditionCompiler.compile("fd.net = \"10.0.0.0/8\" or fd.sip = 127.0.0.2",
                                                      at: SourceLocation(file: "t", line: 1, column: 1), context: ConditionContext())
        XCTAssertFalse(elsewhere.matches(connectEvent))
        XCTAssertFalse(elsewhere.matches(acceptEvent))
    }

    /// A non-blocking connect to a dual-stack (::) listener: EINPROGRESS with both ends set; the
    /// server side, on an IPv6 socket, sees an IPv4 client as IPv4 (as Falco does).
    func testNonBlockingConnectAndDualStackServer() throws {
        let harness = try harness(["connect", "accept", "accept4", "write", "bind", "listen", "close"])
        var v6server: Int32 = -1, client: Int32 = -1, accepted: Int32 = -1, v4client: Int32 = -1, accepted4: Int32 = -1
        var port: UInt16 = 0, clientPort: UInt16 = 0, v4ClientPort: UInt16 = 0
        var connectResult: Int32 = 0, connectErrno: Int32 = 0
        let events = try harness.collect {
            v6server = try bindListen(AF_INET6, "::")
            port = localPort(v6server)
            client = socket(AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            try withSockaddr(AF_INET6, "::1", port) {
                connectResult = connect(client, $0, $1)
                connectErrno = errno
            }
            clientPort = localPort(client)
            var poll = pollfd(fd: client, events: Int16(POLLOUT), revents: 0)
            XCTAssertEqual(Glibc.poll(&poll, 1, -1), 1)
            accepted = accept(v6server, nil, nil)
            XCTAssertEqual(write(client, "x", 1), 1)
            v4client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            try withSockaddr(AF_INET, "127.0.0.1", port) { XCTAssertEqual(connect(v4client, $0, $1), 0) }
            v4ClientPort = localPort(v4client)
            accepted4 = accept(v6server, nil, nil)
            close(client); close(accepted); close(v4client); close(accepted4); close(v6server)
        }
        XCTAssertTrue(connectResult == 0 || connectErrno == EINPROGRESS, "connect: \(connectResult) errno \(connectErrno)")
        let connectEvent = try XCTUnwrap(mine(events, "connect", fd: client).first)
        XCTAssertEqual(connectEvent.fd?.name.string, "::1:\(clientPort)->::1:\(port)")
        XCTAssertEqual(connectEvent.fd?.type, .ipv6)
        if connectErrno == EINPROGRESS {
            XCTAssertEqual(field("evt.res", connectEvent), .string("EINPROGRESS"))
        }
        let writeEvent = try XCTUnwrap(mine(events, "write", fd: client).first)
        XCTAssertEqual(field("fd.connected", writeEvent), .bool(true), "connected once a write on it succeeded")
        XCTAssertEqual(field("fd.sip", writeEvent), .string("::1"))
        let acceptV6 = try XCTUnwrap(mine(events, "accept", fd: v6server).first { $0.fd?.number == accepted })
        XCTAssertEqual(acceptV6.fd?.name.string, "::1:\(clientPort)->::1:\(port)")
        let acceptV4 = try XCTUnwrap(mine(events, "accept", fd: v6server).first { $0.fd?.number == accepted4 })
        XCTAssertEqual(acceptV4.fd?.name.string, "127.0.0.1:\(v4ClientPort)->127.0.0.1:\(port)")
        XCTAssertEqual(acceptV4.fd?.type, .ipv4, "an IPv4-mapped peer on an IPv6 socket is IPv4")
        let bindEvent = try XCTUnwrap(mine(events, "bind", fd: v6server).first)
        XCTAssertEqual(bindEvent.fd?.name.string, ":::\(port)")
    }

    func testUnixSocketsAndUDPSendto() throws {
        let harness = try harness(["connect", "accept", "accept4", "sendto", "write", "bind", "close"])
        let path = NSTemporaryDirectory() + "vigil-net-\(getpid()).sock"
        unlink(path)
        defer { unlink(path) }
        var client: Int32 = -1, accepted: Int32 = -1, udp: Int32 = -1, udpPort: UInt16 = 0, sink: Int32 = -1, sinkPort: UInt16 = 0
        let events = try harness.collect {
            let server = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
            }
            let length = socklen_t(MemoryLayout<sa_family_t>.size + path.utf8.count + 1)
            withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { XCTAssertEqual(bind(server, $0, length), 0) } }
            XCTAssertEqual(listen(server, 4), 0)
            client = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { XCTAssertEqual(connect(client, $0, length), 0) } }
            accepted = accept(server, nil, nil)
            XCTAssertEqual(write(client, "u", 1), 1)
            sink = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            try withSockaddr(AF_INET, "127.0.0.1", 0) { XCTAssertEqual(bind(sink, $0, $1), 0) }
            sinkPort = localPort(sink)
            udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            try withSockaddr(AF_INET, "127.0.0.1", sinkPort) { XCTAssertEqual(sendto(udp, "d", 1, 0, $0, $1), 1) }
            udpPort = localPort(udp)
            close(client); close(accepted); close(server); close(udp); close(sink)
        }
        let connectEvent = try XCTUnwrap(mine(events, "connect", fd: client).first)
        XCTAssertEqual(connectEvent.fd?.name.string, path)
        XCTAssertEqual(connectEvent.fd?.type, .unix)
        XCTAssertEqual(mine(events, "write", fd: client).first?.fd?.name.string, path)
        let acceptEvent = try XCTUnwrap(mine(events, "accept").first { $0.fd?.number == accepted })
        XCTAssertEqual(acceptEvent.fd?.name.string, path, "the accepted unix socket has the listener's path")
        let sendEvent = try XCTUnwrap(mine(events, "sendto", fd: udp).first)
        XCTAssertEqual(sendEvent.fd?.name.string, "0.0.0.0:\(udpPort)->127.0.0.1:\(sinkPort)", "an unconnected UDP socket: the kernel bound it to any address")
        XCTAssertEqual(field("fd.l4proto", sendEvent), .string("udp"))
        XCTAssertEqual(field("fd.sport", sendEvent), .uint(UInt64(sinkPort)))
    }
}
