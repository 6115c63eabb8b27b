import VigilEvents

/// TCP connections per (source, destination) pair, from the conn sensor's events (`vigil flows`).
/// A connection counts on the side that opened it: a connect and its close. An accepted one
/// counts only when its peer is not on this host (not loopback, not a local container's address),
/// so a connection between two local processes or containers counts once.
public struct FlowTable {
    /// Outgoing (this host opened it) or incoming (accepted from a peer elsewhere).
    public enum Direction: String, Sendable { case out, `in` }

    /// One pair.
    public struct Key: Hashable, Sendable {
        public var direction: Direction
        /// Outgoing: the local container's name (`host` outside containers); incoming: the peer's address.
        public var source: String
        /// The local process (comm) that connected or accepted.
        public var process: String
        /// `name:port`: a local container's address by the container's name, else the address.
        public var destination: String

        /// A pair.
        public init(direction: Direction, source: String, process: String, destination: String) {
            self.direction = direction; self.source = source; self.process = process; self.destination = destination
        }
    }

    /// What was seen of one pair.
    public struct Flow: Sendable, Equatable {
        /// Connections established (and connects that failed, counted in `failed` too).
        public var connections = 0
        /// Established and not closed yet.
        public var open = 0
        /// Connects that never established (closed from SYN_SENT).
        public var failed = 0
        /// Payload bytes of the closed connections, from the source's side.
        public var bytesSent: UInt64 = 0, bytesReceived: UInt64 = 0
        /// Segments the kernel retransmitted (tcp_retransmit events).
        public var retransmits = 0
        /// Time of the last event (ns since the Unix epoch).
        public var lastSeenNs: UInt64 = 0

        /// Counts (nothing seen by default).
        public init(connections: Int = 0, open: Int = 0, failed: Int = 0, bytesSent: UInt64 = 0, bytesReceived: UInt64 = 0,
                    retransmits: Int = 0, lastSeenNs: UInt64 = 0) {
            self.connections = connections; self.open = open; self.failed = failed
            self.bytesSent = bytesSent; self.bytesReceived = bytesReceived; self.retransmits = retransmits; self.lastSeenNs = lastSeenNs
        }
    }

    /// Every pair seen.
    public private(set) var flows: [Key: Flow] = [:]
    /// Names of local addresses: a container's address -> its name (`DockerClient.containers`).
    public var addressNames: [IPAddress: String] = [:]

    /// An empty table.
    public init() {}

    private func name(_ end: SocketAddress?) -> String {
        guard let end, let ip = end.ip else { return "?" }
        return (addressNames[ip] ?? ip.description) + ":\(end.port)"
    }

    private func isLocal(_ ip: IPAddress?) -> Bool {
        guard let ip else { return true }
        if addressNames[ip] != nil { return true }
        if ip.isIPv4 { return ip.ipv4 >> 24 == 127 }
        return ip == IPAddress(high: 0, low: 1)
    }

    /// Counts a `conn` event (others are ignored).
    public mutating func add(_ event: Event) {
        guard case .conn(let c) = event.payload else { return }
        let process = event.comm.string
        let key: Key
        if c.socket.role == .server {
            guard !isLocal(c.socket.remote?.ip) else { return }
            let local = event.container.isContainer ? event.container.name : "host"
            key = Key(direction: .in, source: c.socket.remote?.ip?.description ?? "?", process: process,
                      destination: local + ":\(c.socket.local?.port ?? 0)")
        } else {
            key = Key(direction: .out, source: event.container.isContainer ? event.container.name : "host", process: process,
                      destination: name(c.socket.remote))
        }
        var flow = flows[key] ?? Flow()
        switch c.phase {
        case .connect, .accept:
            flow.connections += 1
            flow.open += 1
        case .close where c.state == 2: // TCP_SYN_SENT: the connect failed
            flow.connections += 1
            flow.failed += 1
        case .close:
            flow.open = max(0, flow.open - 1)
            flow.bytesSent += c.bytesSent
            flow.bytesReceived += c.bytesReceived
        case .retransmit:
            flow.retransmits += 1
        }
        flow.lastSeenNs = max(flow.lastSeenNs, event.timeNs)
        flows[key] = flow
    }

    /// The table for a terminal: one line per pair, the most recently seen first.
    public func table() -> String {
        let header = ["DIR", "SOURCE", "PROCESS", "DESTINATION", "CONNS", "OPEN", "FAILED", "SENT", "RECEIVED", "RETRANS", "LAST SEEN"]
        let rows = flows.sorted { ($0.value.lastSeenNs, $1.key.destination) > ($1.value.lastSeenNs, $0.key.destination) }.map { key, flow in
            [key.direction.rawValue, key.source, key.process, key.destination, String(flow.connections), String(flow.open),
             String(flow.failed), String(flow.bytesSent), String(flow.bytesReceived), String(flow.retransmits),
             String(Timestamp.iso8601(flow.lastSeenNs).dropFirst(11).prefix(12))]
        }
        let widths = header.indices.map { i in ([header] + rows).map { $0[i].count }.max() ?? 0 }
        return ([header] + rows).map { row in
            row.indices.map { i in i == row.count - 1 ? row[i] : row[i] + String(repeating: " ", count: widths[i] - row[i].count + 2) }.joined()
        }.joined(separator: "\n") + "\n"
    }
}
