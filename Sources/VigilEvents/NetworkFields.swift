/// Falco's network fields of the fd an event acts on (from the fd table's `SocketInfo`): the
/// client, server, local and remote ends, ports, protocol, networks (CIDR matching: the types
/// ipaddr and ipnet) and whether the socket is connected.
public enum NetworkFields {
    static func socket(_ e: Event) -> SocketInfo? { payloadSocket(e) ?? e.fd?.socket }

    /// Whether `socket(e)` is not nil, without copying the socket out.
    @inline(__always)
    static func hasSocket(_ e: Event) -> Bool {
        // The kind, not the payload, and the flag kept with the fd: reading either copies it.
        e.kind == .conn || e.kind == .tcpdrop || e.hasSocketFD
    }

    /// The socket a connection or drop event carries itself (nil for other kinds).
    static func payloadSocket(_ e: Event) -> SocketInfo? {
        guard e.kind == .conn || e.kind == .tcpdrop else { return nil }
        return switch e.payload {
        case .conn(let c): c.socket
        case .tcpdrop(let d): d.socket
        default: nil
        }
    }

    /// The kinds that carry a socket: a syscall's fd, a connection, a drop.
    static let socketKinds: KindSet = [.syscall, .conn, .tcpdrop]

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

    /// Both ends' ports (client first), for fd.port.
    static func ports(_ e: Event) -> FieldValue? {
        guard let s = socket(e) else { return nil }
        let ends = [s.client, s.server].compactMap { end in end.flatMap { $0.ip == nil ? nil : UInt64($0.port) } }
        return ends.isEmpty ? nil : .uints(ends)
    }

    static func name(_ name: String?) -> FieldValue? { name.map { .string(ByteString($0)) } }

    /// The client's DNS name (with `server`, the server's): the local end's (`Event.localIPName`)
    /// when the socket is that end, else the remote end's; nil without a role.
    static func roleName(_ e: Event, server: Bool) -> FieldValue? {
        guard let role = socket(e)?.role, role != .none else { return nil }
        return name((role == .server) == server ? e.localIPName : e.remoteIPName)
    }

    static func dns(_ e: Event) -> DNSMessage? { e.dns }

    /// The field of a DNS name new for the container's image (`DNSMessage.isNewName`): a rule
    /// that reads it makes the daemon keep the images' baselines.
    public static let dnsNewNameField = "dns.name.new"

    /// The syscalls DNS answers are read from when a rule needs them (glibc, musl and busybox
    /// receive with recvfrom, systemd-resolved with recvmsg, Go with read on a connected UDP
    /// socket): the one list the capture and the rules' analysis both use (`SocketMessage.dns`).
    public static let dnsSyscalls = ["recvfrom", "recvmsg"] + dnsConnectedSyscalls

    /// Those of `dnsSyscalls` that only a connected socket receives with, and every other fd too
    /// (read): captured for DNS alone, the kernel keeps only the calls on a UDP socket whose
    /// connect to port 53 armed it (VIGIL_SPEC_DNS_ARMED, VIGIL_SPEC_ARM_DNS).
    public static let dnsConnectedSyscalls = ["read"]

    /// The fields that need DNS messages parsed and their answers kept (`DNSNames`): a rule that
    /// reads one makes the syscalls sensor capture `dnsSyscalls` with room for a DNS answer.
    public static let dnsFieldNames: Set<String> = Set(fields.map(\.name).filter { $0.hasPrefix("dns.") || $0.hasSuffix(".name") })

    /// The syscalls a client writes a connection's first payload with (`send` is sendto on every
    /// arch the table has): the one list the capture and the
    /// rules' analysis both use (`SocketMessage.firstPayload`).
    public static let payloadSyscalls = ["write", "writev", "sendto", "sendmsg"]

    /// The fields read from what a client wrote on a TCP connection (net.stratum.*): a rule that
    /// reads one makes the syscalls sensor capture `payloadSyscalls`, and when every rule asking for
    /// them needs such a field, only each connection's first payload (VIGIL_SPEC_FIRST_PAYLOAD).
    public static let payloadFieldNames: Set<String> = Set(payloadFields.map(\.name))

    /// The rows of `payloadSyscalls`.
    private static let payloadRows: Set<Int> = Set(payloadSyscalls.compactMap { Syscalls.index(named: $0) })

    /// The stratum request a client wrote on a TCP socket it connected (`Stratum.method`).
    static func stratumMethod(_ e: Event) -> FieldValue? {
        guard e.kind == .syscall, let socket = e.fd?.socket, socket.l4proto == .tcp, socket.role == .client,
              case .syscall(let s) = e.payload, payloadRows.contains(s.index), !s.failedCall,
              let bytes = s.capturedBuffer, let method = Stratum.method(bytes) else { return nil }
        return .string(ByteString(method))
    }

    /// The fields (appended to `Fields.all`): those of the socket have no value on an event
    /// without one, those of DNS none on an event without a DNS message (`FieldRequirement`).
    static let fields: [FieldDefinition] = socketFields.map { $0.requiring(.socket) } + dnsFields.map { $0.requiring(.dns) }
        + payloadFields.map { $0.requiring(.socket) }

    private static let payloadFields: [FieldDefinition] = [
        .init("net.stratum.method", .string, [.syscall], "The crypto-mining pool protocol (stratum) request a client wrote on a TCP connection it made: mining.subscribe, mining.authorize, ... or XMRig's login (a login with a pass or an agent); none for anything else (an HTTP request, another JSON-RPC method). Read from write, writev, sendto and sendmsg; when every rule asking for those needs this field, the kernel keeps only each connection's first payload (from connect to the first call that wrote something) and drops every other write before copying it.") { e, _ in
            stratumMethod(e)
        },
    ]

    private static let socketFields: [FieldDefinition] = [
        .init("fd.l4proto", .string, socketKinds, "The socket's transport protocol: tcp, udp, icmp, raw, or unknown.") { e, _ in
            socket(e).map { .string(ByteString($0.l4proto.name)) }
        },
        .init("fd.connected", .bool, socketKinds, "Whether the socket is connected (connect returned 0, accepted, or the kernel reported it established; a connect that returned EINPROGRESS is connected once the kernel says so).") { e, _ in
            socket(e).map { .bool($0.connected) }
        },
        .init("fd.ip", .ipaddr, socketKinds, "Either end's IP address (matches when the client's or the server's does).") { e, _ in both(e) },
        .init("fd.port", .uint, socketKinds, "Either end's port (matches when the client's or the server's does: `fd.port in (53, 123)`).") { e, _ in ports(e) },
        .init("fd.sockfamily", .string, socketKinds, "The socket's family: ip (ipv4 or ipv6) or unix; none for another fd.") { e, _ in
            switch Fields.fdType(e) {
            case .ipv4?, .ipv6?: .string("ip")
            case .unix?: .string("unix")
            default: nil
            }
        },
        .init("fd.cip", .ipaddr, socketKinds, "The client's IP address (the end that connected or sent first).") { e, _ in socket(e).flatMap { ip($0.client) } },
        .init("fd.sip", .ipaddr, socketKinds, "The server's IP address (the end that accepted or received first; for connect, the destination).") { e, _ in socket(e).flatMap { ip($0.server) } },
        .init("fd.lip", .ipaddr, socketKinds, "The local IP address (the kernel's, read at the syscall's exit).") { e, _ in socket(e).flatMap { ip($0.local) } },
        .init("fd.rip", .ipaddr, socketKinds, "The remote IP address.") { e, _ in socket(e).flatMap { ip($0.remote) } },
        .init("fd.cport", .uint, socketKinds, "The client's port.") { e, _ in socket(e).flatMap { port($0.client) } },
        .init("fd.sport", .uint, socketKinds, "The server's port.") { e, _ in socket(e).flatMap { port($0.server) } },
        .init("fd.lport", .uint, socketKinds, "The local port.") { e, _ in socket(e).flatMap { port($0.local) } },
        .init("fd.rport", .uint, socketKinds, "The remote port.") { e, _ in socket(e).flatMap { port($0.remote) } },
        .init("fd.net", .ipnet, socketKinds, "Either end's address, matched as a network: `fd.net = \"10.0.0.0/8\"` when the client or the server is in 10.0.0.0/8.") { e, _ in both(e) },
        .init("fd.cnet", .ipnet, socketKinds, "The client's address, matched as a network (`fd.cnet in (\"10.0.0.0/8\", \"fd00::/8\")`).") { e, _ in socket(e).flatMap { ip($0.client) } },
        .init("fd.snet", .ipnet, socketKinds, "The server's address, matched as a network.") { e, _ in socket(e).flatMap { ip($0.server) } },
        .init("fd.lnet", .ipnet, socketKinds, "The local address, matched as a network.") { e, _ in socket(e).flatMap { ip($0.local) } },
        .init("fd.rnet", .ipnet, socketKinds, "The remote address, matched as a network.") { e, _ in socket(e).flatMap { ip($0.remote) } },
        .init("fd.sip.name", .string, socketKinds, "The server's name: the name a DNS answer the host saw gave for fd.sip (the name asked for, after the resolver's search list; kept at least 5 minutes). Vigil learns answers from recvfrom and recvmsg on sockets to port 53 (glibc, musl, busybox, systemd-resolved) and from read on UDP sockets connected to port 53 (Go): a peer reached by address alone has none. Falco resolves the rule's name instead.") { e, _ in
            roleName(e, server: true)
        },
        .init("fd.cip.name", .string, socketKinds, "The client's name, from DNS answers (see fd.sip.name).") { e, _ in roleName(e, server: false) },
        .init("fd.lip.name", .string, socketKinds, "The local end's name, from DNS answers (see fd.sip.name).") { e, _ in hasSocket(e) ? name(e.localIPName) : nil },
        .init("fd.rip.name", .string, socketKinds, "The remote end's name, from DNS answers (see fd.sip.name).") { e, _ in hasSocket(e) ? name(e.remoteIPName) : nil },
    ]

    /// dns.qr's values, and the names of record types and response codes, as bytes once (each
    /// DNS event's fields are read for the condition, the output and output_fields).
    private static let query: ByteString = "Q", response: ByteString = "R"
    private static let typeNames = Dictionary(uniqueKeysWithValues: [1, 2, 5, 6, 12, 15, 16, 28, 33, 64, 65, 255].map {
        (UInt16($0), ByteString(DNSMessage.typeName(UInt16($0))))
    })
    private static let rcodeNames = (0...15).map { ByteString(DNSMessage.rcodeName(UInt8($0))) }

    private static let dnsFields: [FieldDefinition] = [
        .init("dns.qr", .string, [.syscall], "Q for a DNS query, R for a response: a syscall that sent or received a DNS message on a socket to or from port 53 (recvfrom, sendto, read, write...; over TCP after its 2-byte length).") { e, _ in
            dns(e).map { .string($0.isResponse ? response : query) }
        },
        .init("dns.id", .uint, [.syscall], "The DNS message's transaction id.") { e, _ in dns(e).map { .uint(UInt64($0.id)) } },
        .init("dns.name", .string, [.syscall], "The name asked for (the first question), lowercased, without the final dot.") { e, _ in
            dns(e).map { .string($0.nameBytes) }
        },
        .init(dnsNewNameField, .bool, [.syscall], "Whether dns.name is new for the container's image: a name none of the image's containers looked up before, once the image's learning window is over (`dns_baseline` in vigil.yaml; the names looked up during it are the image's baseline, and a new name joins it, so it is new once). A lookup is a DNS message on a socket whose remote port is 53 (the resolver's end: a query sent or an answer received). Only the daemon keeps baselines, and only while a rule reads this field; no value for a host process, a container whose image is not known, an image past the bound of images, or `vigil trace`.") { e, _ in
            dns(e).flatMap { m in m.isNewName.map { .bool($0) } }
        },
        .init("dns.qtype", .string, [.syscall], "The first question's type: A, AAAA, CNAME, MX, TXT, PTR, SRV, HTTPS, ... (a number when unnamed).") { e, _ in
            dns(e).flatMap { $0.questions.first.map { .string(typeNames[$0.type] ?? ByteString(DNSMessage.typeName($0.type))) } }
        },
        .init("dns.rcode", .string, [.syscall], "A response's code: NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ... (empty for a query).") { e, _ in
            dns(e).flatMap { $0.isResponse ? .string(rcodeNames[Int($0.rcode)]) : nil }
        },
        .init("dns.addrs", .ipaddr, [.syscall], "A response's addresses (its A and AAAA answers; matched like fd.ip: `dns.addrs = 10.0.0.1`, `dns.addrs in (...)`).") { e, _ in
            dns(e).flatMap { m in m.isResponse ? .strings(m.addresses.map { ByteString($0.description) }) : nil }
        },
        .init("dns.aliases", .string, [.syscall], "A response's CNAME targets, space separated.") { e, _ in
            dns(e).flatMap { m in
                let aliases = m.answers.compactMap(\.alias)
                return aliases.isEmpty ? nil : .string(ByteString(aliases.joined(separator: " ")))
            }
        },
    ]
}
