/// Falco's network fields of the fd an event acts on (from the fd table's `SocketInfo`): the
/// client, server, local and remote ends, ports, protocol, networks (CIDR matching: the types
/// ipaddr and ipnet) and whether the socket is connected.
public enum NetworkFields {
    static func socket(_ e: Event) -> SocketInfo? { e.fd?.socket }

    static func ip(_ end: SocketAddress?) -> FieldValue? {
        guard let ip = end?.ip else { return nil }
        return .string(ByteString(ip.description))
    }

    static func port(_ end: SocketAddress?) -> FieldValue? {
        guard let end, end.ip != nil else { return nil }
        return .uint(UInt64(end.port))
    }

    /// Both ends' addresses (client first), for the fields that match either end.
    static func both(_ e: Event) -> FieldValue? {
        guard let s = socket(e) else { return nil }
        let ends = (s.role == .server ? [s.remote, s.local] : [s.local, s.remote]).compactMap { $0?.ip }
        return ends.isEmpty ? nil : .strings(ends.map { ByteString($0.description) })
    }

    /// The fields (appended to `Fields.all`).
    static let fields: [FieldDefinition] = [
        .init("fd.l4proto", .string, [.syscall], "The socket's transport protocol: tcp, udp, icmp, raw, or unknown.") { e, _ in
            socket(e).map { .string(ByteString($0.l4proto.name)) }
        },
        .init("fd.connected", .bool, [.syscall], "Whether the socket is connected (connect returned 0, accepted, or the kernel reported it established; a connect that returned EINPROGRESS is connected once the kernel says so).") { e, _ in
            socket(e).map { .bool($0.connected) }
        },
        .init("fd.ip", .ipaddr, [.syscall], "Either end's IP address (matches when the client's or the server's does).") { e, _ in both(e) },
        .init("fd.cip", .ipaddr, [.syscall], "The client's IP address (the end that connected or sent first).") { e, _ in socket(e).flatMap { ip($0.client) } },
        .init("fd.sip", .ipaddr, [.syscall], "The server's IP address (the end that accepted or received first; for connect, the destination).") { e, _ in socket(e).flatMap { ip($0.server) } },
        .init("fd.lip", .ipaddr, [.syscall], "The local IP address (the kernel's, read at the syscall's exit).") { e, _ in socket(e).flatMap { ip($0.local) } },
        .init("fd.rip", .ipaddr, [.syscall], "The remote IP address.") { e, _ in socket(e).flatMap { ip($0.remote) } },
        .init("fd.cport", .uint, [.syscall], "The client's port.") { e, _ in socket(e).flatMap { port($0.client) } },
        .init("fd.sport", .uint, [.syscall], "The server's port.") { e, _ in socket(e).flatMap { port($0.server) } },
        .init("fd.lport", .uint, [.syscall], "The local port.") { e, _ in socket(e).flatMap { port($0.local) } },
        .init("fd.rport", .uint, [.syscall], "The remote port.") { e, _ in socket(e).flatMap { port($0.remote) } },
        .init("fd.net", .ipnet, [.syscall], "Either end's address, matched as a network: `fd.net = \"10.0.0.0/8\"` when the client or the server is in 10.0.0.0/8.") { e, _ in both(e) },
        .init("fd.cnet", .ipnet, [.syscall], "The client's address, matched as a network (`fd.cnet in (\"10.0.0.0/8\", \"fd00::/8\")`).") { e, _ in socket(e).flatMap { ip($0.client) } },
        .init("fd.snet", .ipnet, [.syscall], "The server's address, matched as a network.") { e, _ in socket(e).flatMap { ip($0.server) } },
        .init("fd.lnet", .ipnet, [.syscall], "The local address, matched as a network.") { e, _ in socket(e).flatMap { ip($0.local) } },
        .init("fd.rnet", .ipnet, [.syscall], "The remote address, matched as a network.") { e, _ in socket(e).flatMap { ip($0.remote) } },
    ]
}
