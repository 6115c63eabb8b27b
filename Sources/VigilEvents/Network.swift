import CVigilABI
#if canImport(Glibc)
import Glibc
#endif

/// An IP address, IPv4 or IPv6, kept as 128 bits in network order: an IPv4 address as its
/// IPv4-mapped IPv6 form (::ffff:a.b.c.d), so one type and one comparison serve both, and an
/// IPv6 socket talking to an IPv4 peer (a dual-stack server) shows that peer as IPv4, as Falco does.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// The first 64 bits, big-endian.
    public var high: UInt64
    /// The last 64 bits, big-endian.
    public var low: UInt64

    /// The address of 128 bits.
    public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }

    /// An IPv4 address from its 32 bits (host order: 0x7f000001 is 127.0.0.1).
    public init(ipv4 value: UInt32) { high = 0; low = 0xffff_0000_0000 | UInt64(value) }

    /// The address in 4 (IPv4) or 16 (IPv6) bytes in network order; nil for another count.
    public init?(bytes: some Collection<UInt8>) {
        let count = bytes.count
        guard count == 4 || count == 16 else { return nil }
        // Read in place (no copy: this runs for both ends of every socket event).
        var h: UInt64 = 0, l: UInt64 = 0, k = 0
        for byte in bytes {
            if k < 8 { h = h << 8 | UInt64(byte) } else { l = l << 8 | UInt64(byte) }
            k += 1
        }
        if count == 4 { self.init(ipv4: UInt32(truncatingIfNeeded: h)) } else { self.init(high: h, low: l) }
    }

    /// Parses dotted IPv4 or RFC 4291 IPv6 text (inet_pton); nil when it is neither.
    public init?(_ text: some StringProtocol) {
        var v4 = in_addr()
        if inet_pton(AF_INET, String(text), &v4) == 1 {
            self.init(ipv4: UInt32(bigEndian: v4.s_addr))
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, String(text), &v6) == 1 else { return nil }
        self.init(bytes: withUnsafeBytes(of: &v6) { Array($0) })
    }

    /// Whether this is an IPv4 address (or an IPv4-mapped IPv6 one).
    public var isIPv4: Bool { high == 0 && low >> 32 == 0xffff }
    /// The IPv4 address (host order) when `isIPv4`.
    public var ipv4: UInt32 { UInt32(truncatingIfNeeded: low) }
    /// 0.0.0.0 or :: (a socket bound to every address).
    public var isUnspecified: Bool { (high == 0 && low == 0) || (isIPv4 && ipv4 == 0) }

    /// The 16 bytes in network order.
    public var bytes: [UInt8] {
        (0..<16).map { k in UInt8(truncatingIfNeeded: (k < 8 ? high : low) >> UInt64(8 * (7 - k % 8))) }
    }

    /// Appends the text: dotted IPv4, else RFC 5952 IPv6.
    public func append(to out: inout ByteBuffer) {
        if isIPv4 {
            for k in 0..<4 {
                if k > 0 { out.append(0x2e) }
                out.append(decimal: UInt64(ipv4 >> UInt32(8 * (3 - k)) & 0xff))
            }
        } else {
            SyscallArguments.appendIPv6(bytes[...], to: &out)
        }
    }

    /// The text (dotted IPv4, RFC 5952 IPv6).
    public var description: String {
        var out = ByteBuffer(capacity: 48)
        append(to: &out)
        return out.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }
}

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `fd00::/8`), Falco's ipnet.
/// An IPv4 network's prefix counts the 32 bits of IPv4 (it holds IPv4 addresses only).
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    /// The first address.
    public var address: IPAddress
    /// The prefix length over the 128-bit form (an IPv4 /8 is 104).
    public var prefix: Int

    /// `address/prefix` (IPv4 prefixes 0...32, IPv6 0...128), or a single address (its full
    /// length); nil when the text is neither.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        let width = address.isIPv4 ? 32 : 128
        var length = width
        if parts.count == 2 {
            guard let n = Int(parts[1]), n >= 0, n <= width else { return nil }
            length = n
        }
        self.address = address
        self.prefix = length + (address.isIPv4 ? 96 : 0)
        self.address = address.masked(prefix)
    }

    /// Whether `candidate` is in the network.
    public func contains(_ candidate: IPAddress) -> Bool { candidate.masked(prefix) == address }

    public var description: String { "\(address)/\(address.isIPv4 ? prefix - 96 : prefix)" }
}

extension IPAddress {
    /// The address with only its first `prefix` bits (of 128) kept.
    func masked(_ prefix: Int) -> IPAddress {
        func mask(_ bits: Int) -> UInt64 { bits <= 0 ? 0 : bits >= 64 ? .max : ~(UInt64.max >> UInt64(bits)) }
        return IPAddress(high: high & mask(prefix), low: low & mask(prefix - 64))
    }
}

/// Falco's fd.l4proto: the transport protocol of a socket.
public enum L4Protocol: UInt8, Sendable {
    case unknown, tcp, udp, icmp, raw

    /// Falco's name.
    public var name: StaticString {
        switch self {
        case .unknown: "unknown"
        case .tcp: "tcp"
        case .udp: "udp"
        case .icmp: "icmp"
        case .raw: "raw"
        }
    }

    /// From a socket's type (SOCK_STREAM, SOCK_DGRAM, SOCK_RAW; flags masked off) and protocol
    /// (IPPROTO_*).
    public init(socketType: UInt64, protocol proto: UInt64) {
        switch (socketType & 0xf, proto) {
        case (_, 6): self = .tcp
        case (_, 17): self = .udp
        case (_, 1), (_, 58): self = .icmp
        case (1, 0): self = .tcp
        case (2, 0): self = .udp
        case (3, _): self = .raw
        default: self = .unknown
        }
    }
}

/// A socket address: an IP address and port, or a unix socket's path.
public struct SocketAddress: Sendable, Equatable {
    /// The IP address (nil for a unix socket).
    public var ip: IPAddress?
    /// The port, host order.
    public var port: UInt16
    /// A unix socket's path (`@name` for an abstract one), empty for IP.
    public var path: ByteString

    /// An IP end.
    public init(ip: IPAddress, port: UInt16) { self.ip = ip; self.port = port; self.path = ByteString([UInt8]()) }
    /// A unix end.
    public init(path: ByteString) { self.ip = nil; self.port = 0; self.path = path }

    /// A struct sockaddr as the syscall passed it (sockaddr_in, sockaddr_in6, sockaddr_un); nil
    /// for another family or too few bytes.
    public init?(sockaddr b: ArraySlice<UInt8>) {
        guard b.count >= 2 else { return nil }
        let s = b.startIndex
        let family = UInt16(b[s]) | UInt16(b[s + 1]) << 8
        let port = b.count >= 4 ? UInt16(b[s + 2]) << 8 | UInt16(b[s + 3]) : 0
        switch family {
        case 2 where b.count >= 8:
            guard let ip = IPAddress(bytes: b[(s + 4)..<(s + 8)]) else { return nil }
            self.init(ip: ip, port: port)
        case 10 where b.count >= 24:
            guard let ip = IPAddress(bytes: b[(s + 8)..<(s + 24)]) else { return nil }
            self.init(ip: ip, port: port)
        case 1:
            var path = b[(s + 2)...]
            if path.first == 0 && path.count > 1 {
                self.init(path: ByteString([0x40] + path.dropFirst()))
            } else {
                let end = path.firstIndex(of: 0) ?? path.endIndex
                path = path[..<end]
                self.init(path: ByteString(path))
            }
        default:
            return nil
        }
    }
}

/// Both ends of a socket as the kernel's struct sock held them at a syscall's exit (struct
/// vigil_socket_tuple, appended to the record by bpf/lib/socket.bpf.h).
public struct KernelSocketTuple: Sendable, Equatable {
    /// AF_* of the sock.
    public var family: UInt16
    /// SOCK_* type.
    public var type: UInt16
    /// IPPROTO_*.
    public var proto: UInt16
    /// TCP_* state (1 established, 2 syn-sent, 10 listen, 7 close).
    public var state: UInt8
    /// The socket's inode.
    public var inode: UInt64
    /// Local end (IP families; nil when unbound: address and port 0).
    public var local: SocketAddress?
    /// Remote end (IP families; nil when not connected: address and port 0).
    public var remote: SocketAddress?
    /// A unix sock's kernel address and its peer's (0: none).
    public var unixSock: UInt64, unixPeer: UInt64

    /// TCP_ESTABLISHED.
    public static let established: UInt8 = 1
    /// TCP_LISTEN.
    public static let listen: UInt8 = 10

    /// Reads the 56 bytes of a struct vigil_socket_tuple.
    public init?(bytes b: ArraySlice<UInt8>) {
        let size = MemoryLayout<vigil_socket_tuple>.size
        guard b.count >= size else { return nil }
        let t = b.withUnsafeBytes { $0.loadUnaligned(as: vigil_socket_tuple.self) }
        family = t.family
        type = t.type
        proto = t.protocol
        state = t.state
        inode = t.inode
        unixSock = 0; unixPeer = 0
        local = nil; remote = nil
        switch family {
        case 2:
            let l = withUnsafeBytes(of: t.laddr) { IPAddress(bytes: $0.prefix(4)) }, r = withUnsafeBytes(of: t.raddr) { IPAddress(bytes: $0.prefix(4)) }
            if let a = l, t.lport != 0 || a.ipv4 != 0 { local = SocketAddress(ip: a, port: t.lport) }
            if let a = r, t.rport != 0 || a.ipv4 != 0 { remote = SocketAddress(ip: a, port: t.rport) }
        case 10:
            let l = withUnsafeBytes(of: t.laddr) { IPAddress(bytes: $0) }, r = withUnsafeBytes(of: t.raddr) { IPAddress(bytes: $0) }
            if let a = l, t.lport != 0 || !a.isUnspecified { local = SocketAddress(ip: a, port: t.lport) }
            if let a = r, t.rport != 0 || !a.isUnspecified { remote = SocketAddress(ip: a, port: t.rport) }
        case 1:
            unixSock = withUnsafeBytes(of: t.laddr) { $0.loadUnaligned(as: UInt64.self) }
            unixPeer = withUnsafeBytes(of: t.raddr) { $0.loadUnaligned(as: UInt64.self) }
        default:
            break
        }
    }
}

/// Which end of a connection a socket is (Falco's client/server roles).
public enum SocketRole: UInt8, Sendable {
    /// Not known yet (made, bound, listening).
    case none
    /// Made the connection (connect, the first sendto).
    case client
    /// Accepted it (accept, the first recvfrom).
    case server
}

/// What the fd table knows of a network socket: its ends, protocol, role, whether connected.
public struct SocketInfo: Sendable, Equatable {
    /// The transport protocol.
    public var l4proto: L4Protocol
    /// The local end (address and port), nil when not bound.
    public var local: SocketAddress?
    /// The remote end, nil when none.
    public var remote: SocketAddress?
    /// Client or server.
    public var role: SocketRole
    /// Connected (connect returned 0, accepted, or the kernel said established).
    public var connected: Bool
    /// listen() succeeded on it.
    public var listening: Bool

    /// A socket.
    public init(l4proto: L4Protocol = .unknown, local: SocketAddress? = nil, remote: SocketAddress? = nil,
                role: SocketRole = .none, connected: Bool = false, listening: Bool = false) {
        self.l4proto = l4proto
        self.local = local
        self.remote = remote
        self.role = role
        self.connected = connected
        self.listening = listening
    }

    /// The client end (local for a client, remote for a server; nil without a role).
    public var client: SocketAddress? { role == .client ? local : role == .server ? remote : nil }
    /// The server end.
    public var server: SocketAddress? { role == .client ? remote : role == .server ? local : nil }

    /// Whether both ends are IPv4 (an IPv6 socket with IPv4-mapped ends counts as IPv4).
    public var isIPv4: Bool {
        (local?.ip?.isIPv4 ?? true) && (remote?.ip?.isIPv4 ?? true) && (local?.ip != nil || remote?.ip != nil)
    }

    /// Falco's fd.name of an IP socket: `cip:cport->sip:sport` (client first; local first when
    /// no role), or `ip:port` of a socket with one end known. IPv6 addresses are written without
    /// brackets, as Falco does.
    public var name: ByteString {
        var out = ByteBuffer(capacity: 64)
        func end(_ a: SocketAddress) {
            if let ip = a.ip { ip.append(to: &out) } else { a.path.bytes.withUnsafeBytes { out.append($0) } }
            if a.ip != nil {
                out.append(0x3a)
                out.append(decimal: UInt64(a.port))
            }
        }
        let first = role == .server ? remote : local
        let second = role == .server ? local : remote
        switch (first, second) {
        case (let a?, let b?):
            end(a)
            out.append("->")
            end(b)
        case (let a?, nil), (nil, let a?):
            end(a)
        case (nil, nil):
            break
        }
        return out.withUnsafeBytes { ByteString($0) }
    }
}
