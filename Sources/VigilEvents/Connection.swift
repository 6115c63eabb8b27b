import CVigilABI
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension Payload {
    /// A TCP connection opened (connect established, accept returned) or closed (bpf/conn.bpf.c:
    /// the kernel's inet_sock_set_state). The event's process is the task that opened it.
    public struct Conn: Sendable {
        /// Which change of the connection this is.
        public enum Phase: UInt8, Sendable, CaseIterable {
            /// An outgoing connection was established.
            case connect = 0
            /// accept returned an incoming connection.
            case accept = 1
            /// The connection closed (or a connect failed: `state` is SYN_SENT).
            case close = 2
            /// The kernel retransmitted one of its segments (`retransmits`: the count so far).
            case retransmit = 3

            /// The evt.type of this phase (the `conn` row of kinds.table: tcp_connect, tcp_accept,
            /// tcp_close, tcp_retransmit).
            public var eventType: String { EventKind.conn.descriptor.types[Int(rawValue)] }
        }

        public var phase: Phase
        /// Both ends, the protocol (tcp) and the role (client for a connect, server for an accept).
        public var socket: SocketInfo
        /// The TCP state it left (a close: ESTABLISHED, FIN_WAIT2, SYN_SENT for a failed connect, ...);
        /// the state it is in for an open.
        public var state: UInt8
        /// The kernel's struct sock address (the same for the open and the close of one connection).
        public var sock: UInt64
        /// When it began (boot ns: SYN_SENT, or SYN_RECV of an accepted one).
        public var startNs: UInt64
        /// Close: how long it lasted.
        public var durationNs: UInt64
        /// Close: bytes the peer acknowledged (tcp_sock.bytes_acked) and bytes received.
        public var bytesSent: UInt64, bytesReceived: UInt64
        /// Close: segments retransmitted (tcp_sock.total_retrans).
        public var retransmits: UInt32

        /// Creates the payload.
        public init(phase: Phase, socket: SocketInfo, state: UInt8, sock: UInt64 = 0, startNs: UInt64 = 0, durationNs: UInt64 = 0,
                    bytesSent: UInt64 = 0, bytesReceived: UInt64 = 0, retransmits: UInt32 = 0) {
            self.phase = phase; self.socket = socket; self.state = state; self.sock = sock; self.startNs = startNs
            self.durationNs = durationNs; self.bytesSent = bytesSent; self.bytesReceived = bytesReceived; self.retransmits = retransmits
        }
    }

    /// The kernel freed a TCP packet with a drop reason (skb/kfree_skb). The event's process is
    /// the task that opened the packet's connection when the sensor knows it (`ownerKnown`), else
    /// whatever task was running.
    public struct TCPDrop: Sendable {
        /// The packet's ends: `socket.local` its source (client), `socket.remote` its destination (server).
        public var socket: SocketInfo
        /// The kernel's enum skb_drop_reason value (its own numbering) and its name without the
        /// SKB_DROP_REASON_ prefix (NO_SOCKET, SOCKET_FILTER, TCP_INVALID_SEQUENCE, ...).
        public var reason: UInt32, reasonName: String
        /// The TCP flags of the packet (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10).
        public var tcpFlags: UInt8
        /// The state of the socket it belonged to (0: none).
        public var state: UInt8
        /// The socket's struct sock address (0: none) and the kernel address that dropped it.
        public var sock: UInt64, location: UInt64
        /// The event's process is the connection's opener (not just the task that ran).
        public var ownerKnown: Bool

        /// Creates the payload.
        public init(socket: SocketInfo, reason: UInt32, reasonName: String, tcpFlags: UInt8, state: UInt8 = 0,
                    sock: UInt64 = 0, location: UInt64 = 0, ownerKnown: Bool = false) {
            self.socket = socket; self.reason = reason; self.reasonName = reasonName; self.tcpFlags = tcpFlags
            self.state = state; self.sock = sock; self.location = location; self.ownerKnown = ownerKnown
        }
    }
}

/// TCP states (include/net/tcp_states.h) by name.
public enum TCPStates {
    static let names = ["", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
                        "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV", "BOUND_INACTIVE"]

    /// The state's name (ESTABLISHED, SYN_SENT, ...), its number when unknown.
    public static func name(_ state: UInt8) -> String {
        Int(state) < names.count && state != 0 ? names[Int(state)] : String(state)
    }

    /// The TCP flags as text: SYN|ACK, RST, ...
    public static func flags(_ f: UInt8) -> String {
        let all: [(UInt8, String)] = [(0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"), (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR")]
        let set = all.filter { f & $0.0 != 0 }.map(\.1)
        return set.isEmpty ? "0" : set.joined(separator: "|")
    }
}

/// The names of the running kernel's enum skb_drop_reason (its numbering changes between
/// versions): installed from the kernel's BTF by the conn sensor when it loads
/// (`Sensors`), read by the decoder. Without them a reason is named by its number.
public enum DropReasons {
    private static let table = Mutex<[UInt32: String]>([:])

    /// Installs the names (value -> name without the SKB_DROP_REASON_ prefix).
    public static func install(_ names: [UInt32: String]) { table.withLock { $0 = names } }

    /// The name of `reason` (NO_SOCKET, SOCKET_FILTER, ...), `reason_N` when unknown.
    public static func name(_ reason: UInt32) -> String { table.withLock { $0[reason] } ?? "reason_\(reason)" }

    /// The value named `name`, nil when unknown.
    public static func value(named name: String) -> UInt32? { table.withLock { $0.first { $0.value == name }?.key } }
}

/// Kernel function names of code addresses, from /proc/kallsyms (read once, when first asked;
/// only root sees real addresses there, which Vigil is).
public enum KernelSymbols {
    /// Text symbols by address.
    private static let table: [(address: UInt64, name: String)] = load(path: "/proc/kallsyms")

    static func load(path: String) -> [(address: UInt64, name: String)] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        var symbols: [(address: UInt64, name: String)] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
            guard parts.count >= 3, parts[1] == "t" || parts[1] == "T", let address = UInt64(parts[0], radix: 16), address != 0 else { continue }
            symbols.append((address, String(parts[2])))
        }
        return symbols.sorted { $0.address < $1.address }
    }

    /// `function+0xOFFSET` for `address`, nil when no text symbol precedes it within 1 MiB.
    public static func describe(_ address: UInt64) -> String? {
        var low = 0, high = table.count
        while low < high {
            let middle = (low + high) / 2
            if table[middle].address <= address { low = middle + 1 } else { high = middle }
        }
        guard low > 0, address - table[low - 1].address < 1 << 20 else { return nil }
        return table[low - 1].name + "+0x" + String(address - table[low - 1].address, radix: 16)
    }
}

extension EventDecoder {
    /// The ends of a kernel tuple as a TCP socket with `role`.
    private static func tcpSocket(_ t: vigil_socket_tuple, role: SocketRole) -> SocketInfo? {
        guard let tuple = withUnsafeBytes(of: t, { KernelSocketTuple(bytes: Array($0)[...]) }) else { return nil }
        return SocketInfo(l4proto: .tcp, local: tuple.local, remote: tuple.remote, role: role, connected: true)
    }

    func decodeConn(_ record: UnsafeRawBufferPointer) -> Payload? {
        guard record.count >= MemoryLayout<vigil_conn_event>.size else { return nil }
        let e = record.loadUnaligned(as: vigil_conn_event.self)
        guard let phase = Payload.Conn.Phase(rawValue: e.phase) else { return nil }
        let passive = e.flags & UInt8(VIGIL_CONN_PASSIVE.rawValue) != 0
        guard var socket = Self.tcpSocket(e.tuple, role: passive ? .server : .client) else { return nil }
        socket.connected = phase != .close
        return .conn(.init(phase: phase, socket: socket, state: e.tuple.state, sock: e.sock, startNs: e.start_ns,
                           durationNs: e.duration_ns, bytesSent: e.bytes_sent, bytesReceived: e.bytes_received,
                           retransmits: e.retransmits))
    }

    func decodeTCPDrop(_ record: UnsafeRawBufferPointer) -> Payload? {
        guard record.count >= MemoryLayout<vigil_tcpdrop_event>.size else { return nil }
        let e = record.loadUnaligned(as: vigil_tcpdrop_event.self)
        guard var socket = Self.tcpSocket(e.tuple, role: .client) else { return nil }
        socket.connected = false
        return .tcpdrop(.init(socket: socket, reason: e.reason, reasonName: DropReasons.name(e.reason), tcpFlags: e.tcp_flags,
                              state: e.tuple.state, sock: e.sock, location: e.location,
                              ownerKnown: e.flags & UInt8(VIGIL_TCPDROP_OWNER.rawValue) != 0))
    }
}

/// The fields of connection and drop events Falco has no names for (the ends use Falco's fd.*:
/// `NetworkFields`).
public enum ConnectionFields {
    static func conn(_ e: Event) -> Payload.Conn? { if case .conn(let c) = e.payload { return c }; return nil }
    static func closed(_ e: Event) -> Payload.Conn? { conn(e).flatMap { $0.phase == .close ? $0 : nil } }
    static func drop(_ e: Event) -> Payload.TCPDrop? { if case .tcpdrop(let d) = e.payload { return d }; return nil }

    static let fields: [FieldDefinition] = [
        .init("conn.phase", .string, [.conn], "What happened to the connection: connect (an outgoing one was established), accept (accept returned an incoming one), close (it reached TCP_CLOSE; a connect that failed closes from SYN_SENT), retransmit (the kernel sent one of its segments again). evt.type is tcp_connect, tcp_accept, tcp_close or tcp_retransmit.") { e, _ in
            conn(e).map { c in .string(ByteString(String(c.phase.eventType.dropFirst("tcp_".count)))) }
        },
        .init("conn.id", .uint, [.conn, .tcpdrop], "The kernel's struct sock address of the connection: the same on its open, its close and its drops (0 for a drop without a socket).") { e, _ in
            if let c = conn(e) { return .uint(c.sock) }
            return drop(e).map { .uint($0.sock) }
        },
        .init("conn.duration", .uint, [.conn], "A close or a retransmit: nanoseconds from the connection's start (SYN_SENT, or SYN_RECV of an accepted one) to it.") { e, _ in
            conn(e).flatMap { $0.phase == .close || $0.phase == .retransmit ? .uint($0.durationNs) : nil }
        },
        .init("conn.bytes_sent", .uint, [.conn], "A close: bytes sent that the peer acknowledged (the kernel's tcp_sock.bytes_acked).") { e, _ in
            closed(e).map { .uint($0.bytesSent) }
        },
        .init("conn.bytes_received", .uint, [.conn], "A close: bytes received (tcp_sock.bytes_received).") { e, _ in
            closed(e).map { .uint($0.bytesReceived) }
        },
        .init("conn.retransmits", .uint, [.conn], "A close or a retransmit: segments retransmitted so far (tcp_sock.total_retrans).") { e, _ in
            conn(e).flatMap { $0.phase == .close || $0.phase == .retransmit ? .uint(UInt64($0.retransmits)) : nil }
        },
        .init("tcp.state", .string, [.conn, .tcpdrop], "TCP state: for an open, the state it is in (ESTABLISHED); for a close, the state it left (ESTABLISHED, FIN_WAIT2, LAST_ACK, SYN_SENT for a connect that failed, ...); for a drop, the state of the packet's socket (empty when it had none).") { e, _ in
            if let c = conn(e) { return .string(ByteString(TCPStates.name(c.state))) }
            return drop(e).flatMap { $0.state == 0 ? nil : .string(ByteString(TCPStates.name($0.state))) }
        },
        .init("tcp.drop_reason", .string, [.tcpdrop], "Why the kernel dropped the packet: its enum skb_drop_reason name without SKB_DROP_REASON_ (NO_SOCKET, SOCKET_FILTER, TCP_INVALID_SEQUENCE, PROTO_MEM, ...), named from the running kernel's BTF; `reason_N` for a value it does not name.") { e, _ in
            drop(e).map { .string(ByteString($0.reasonName)) }
        },
        .init("tcp.drop_location", .string, [.tcpdrop], "Where the kernel dropped it: the function that freed the packet, as function+0xOFFSET (from /proc/kallsyms; the address in hex when no symbol covers it).") { e, _ in
            drop(e).flatMap { $0.location == 0 ? nil : .string(ByteString(KernelSymbols.describe($0.location) ?? "0x" + String($0.location, radix: 16))) }
        },
        .init("tcp.flags", .string, [.tcpdrop], "The dropped packet's TCP flags: SYN, SYN|ACK, ACK, PSH|ACK, RST, FIN|ACK, ...") { e, _ in
            drop(e).map { .string(ByteString(TCPStates.flags($0.tcpFlags))) }
        },
        .init("tcp.drop_owner", .bool, [.tcpdrop], "Whether the drop's process is the task that opened the packet's connection (the sensor knew the socket); false: the task that happened to run when the kernel dropped it (softirq).") { e, _ in
            drop(e).map { .bool($0.ownerKnown) }
        },
    ]
}
