import VigilEvents

/// Ports as sorted, disjoint, non-adjacent closed ranges (`fd.sport = 443`, `fd.rport in (53, 853)`,
/// `fd.lport >= 1024`).
public struct PortRanges: Sendable, Equatable, CustomStringConvertible {
    /// The ranges, sorted, disjoint and never adjacent.
    public private(set) var ranges: [ClosedRange<UInt16>]

    /// The ranges given, merged.
    public init(_ ranges: [ClosedRange<UInt16>]) {
        var merged: [ClosedRange<UInt16>] = []
        for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, Int(r.lowerBound) <= Int(last.upperBound) + 1 {
                merged[merged.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        self.ranges = merged
    }

    /// Every port.
    public static let all = PortRanges([0...UInt16.max])

    /// Whether no port is in.
    public var isEmpty: Bool { ranges.isEmpty }

    /// Whether `port` is in.
    public func contains(_ port: UInt16) -> Bool { ranges.contains { $0.contains(port) } }

    /// The ports in either.
    public func union(_ other: PortRanges) -> PortRanges { PortRanges(ranges + other.ranges) }

    /// The ports in both.
    public func intersection(_ other: PortRanges) -> PortRanges {
        var out: [ClosedRange<UInt16>] = []
        for a in ranges {
            for b in other.ranges where a.overlaps(b) { out.append(max(a.lowerBound, b.lowerBound)...min(a.upperBound, b.upperBound)) }
        }
        return PortRanges(out)
    }

    public var description: String {
        ranges.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ", ")
    }
}

/// The calls of one network syscall some rule may match, by the address and port the call names:
/// the destination of connect, sendto and sendmsg, the local end of bind and listen. nil in a
/// field: any. What the kernel may drop is a call outside `networks` or outside `ports`.
public struct NetworkCallFilter: Sendable, Equatable, CustomStringConvertible {
    /// The networks the address lies in (IPv4 as IPv4-mapped IPv6, `IPNetwork`); nil: any address.
    public var networks: Set<IPNetwork>?
    /// The ports; nil: any port.
    public var ports: PortRanges?

    /// A filter.
    public init(networks: Set<IPNetwork>?, ports: PortRanges?) {
        self.networks = networks
        self.ports = ports
    }

    /// Whether it restricts anything.
    public var restricts: Bool { networks != nil || ports != nil }

    public var description: String {
        var parts: [String] = []
        if let networks { parts.append("addresses " + networks.map(\.description).sorted().joined(separator: ", ")) }
        if let ports { parts.append("ports " + ports.description) }
        return parts.isEmpty ? "any address and port" : parts.joined(separator: "; ")
    }
}

/// The network syscalls whose calls may be filtered by address and port, and which fields name
/// the address and port that call carries (the destination for a client's calls, the local end
/// for a server's), exactly: a field that may name another end for some call (fd.sip of a
/// sendto on a socket that received first is the local end; fd.net is either end) is not used.
public enum NetworkPushdown {
    /// One pushable syscall: its address fields (ipaddr and ipnet) and its port fields.
    struct Role {
        let addresses: Set<String>
        let ports: Set<String>
    }

    /// By syscall name. connect's destination is the server and the remote end; sendto and
    /// sendmsg name the remote end (a UDP server's reply goes to its client, not its server);
    /// bind and listen name the local end.
    static let roles: [String: Role] = [
        "connect": Role(addresses: ["fd.sip", "fd.rip", "fd.snet", "fd.rnet"], ports: ["fd.sport", "fd.rport"]),
        "sendto": Role(addresses: ["fd.rip", "fd.rnet"], ports: ["fd.rport"]),
        "sendmsg": Role(addresses: ["fd.rip", "fd.rnet"], ports: ["fd.rport"]),
        "bind": Role(addresses: ["fd.lip", "fd.lnet"], ports: ["fd.lport"]),
        "listen": Role(addresses: ["fd.lip", "fd.lnet"], ports: ["fd.lport"]),
    ]

    /// The rows of `Syscalls.all` that `roles` names.
    public static let rows: [Int] = roles.keys.compactMap { Syscalls.index(named: $0) }.sorted()

    /// The calls of syscall row `row` that `rules` may match: nil when some rule may match a call
    /// whatever its address and port (no pushdown for that syscall), else the union of what each
    /// rule allows. Rules that cannot match the syscall add nothing.
    static func filter(row: Int, conditions: [CompiledCondition]) -> NetworkCallFilter? {
        guard let role = roles[Syscalls.all[row].nameString] else { return nil }
        var traffic = NetworkTraffic()
        for condition in conditions {
            traffic.formUnion(condition.root.networkSets(row: row, role: role).whenTrue)
        }
        guard let restriction = traffic.restriction, restriction.restricts else { return nil }
        return restriction
    }

    /// Whether `condition` may match a call of syscall row `row` whatever its address and port.
    static func unbounded(row: Int, condition: CompiledCondition) -> Bool {
        guard let role = roles[Syscalls.all[row].nameString] else { return true }
        return condition.root.networkSets(row: row, role: role).whenTrue.restriction?.restricts == false
    }
}

/// The calls of one syscall a condition may be true for, by the call's address and port: none,
/// or those inside `networks` (nil: any) and `ports` (nil: any). An over-approximation: a union
/// of two products is widened to the product of the unions.
struct NetworkTraffic: TruthSet {
    /// nil: no call.
    var restriction: NetworkCallFilter?

    init() { restriction = nil }
    init(_ restriction: NetworkCallFilter) { self.restriction = restriction }

    static var all: NetworkTraffic { NetworkTraffic(NetworkCallFilter(networks: nil, ports: nil)) }

    mutating func formUnion(_ other: NetworkTraffic) {
        guard let b = other.restriction else { return }
        guard let a = restriction else { restriction = b; return }
        let networks: Set<IPNetwork>? = if let x = a.networks, let y = b.networks { x.union(y) } else { nil }
        let ports: PortRanges? = if let x = a.ports, let y = b.ports { x.union(y) } else { nil }
        restriction = NetworkCallFilter(networks: networks, ports: ports)
    }

    mutating func formIntersection(_ other: NetworkTraffic) {
        guard let a = restriction, let b = other.restriction else { restriction = nil; return }
        var networks = a.networks ?? b.networks
        if let x = a.networks, let y = b.networks {
            // Two prefixes overlap only when one holds the other: the longer is their intersection.
            var both = Set<IPNetwork>()
            for n in x { for m in y { if n.contains(m.address) && n.prefix <= m.prefix { both.insert(m) } else if m.contains(n.address) && m.prefix <= n.prefix { both.insert(n) } } }
            networks = both
        }
        var ports = a.ports ?? b.ports
        if let x = a.ports, let y = b.ports { ports = x.intersection(y) }
        if networks?.isEmpty == true || ports?.isEmpty == true { restriction = nil; return }
        restriction = NetworkCallFilter(networks: networks, ports: ports)
    }
}

extension PlanNode {
    /// The calls of syscall row `row` for which the node may be true, and those for which it may
    /// be false, by address and port (`NetworkTraffic`). A comparison is narrowed only when it is
    /// an untransformed, positive `=`/`in` on an address field of `role`, or a port comparison
    /// (`=`, `in`, `<`, `<=`, `>`, `>=`) on a port field of `role`; its false side, and every
    /// other comparison, is any call (so `not` of a narrowing comparison narrows nothing).
    func networkSets(row: Int, role: NetworkPushdown.Role) -> (whenTrue: NetworkTraffic, whenFalse: NetworkTraffic) {
        truthSets { test in
            if case .eventType(let table) = test.operand {
                return table.syscalls[row] ? (.all, NetworkTraffic()) : (NetworkTraffic(), .all)
            }
            // A field syscall events lack is false for them; a message field is carried only by
            // the syscalls its message is read from.
            let carried = test.fieldKinds.isEmpty || test.fieldKinds.contains(.syscall)
            if !carried { return (NetworkTraffic(), .all) }
            if let message = SocketMessage.allCases.first(where: { $0.isMessageField(test.fieldName) }), !message.rows.contains(row) {
                return (NetworkTraffic(), .all)
            }
            guard test.transformers.isEmpty, case .field(_, nil) = test.operand else { return (.all, .all) }
            if role.addresses.contains(test.fieldName), case .network(let t) = test.test, !t.negated {
                return (NetworkTraffic(NetworkCallFilter(networks: Set(t.networks), ports: nil)), .all)
            }
            if role.ports.contains(test.fieldName), case .unsigned(let t) = test.test, let ports = Self.ports(t) {
                return (ports.isEmpty ? NetworkTraffic() : NetworkTraffic(NetworkCallFilter(networks: nil, ports: ports)), .all)
            }
            return (.all, .all)
        }
    }

    /// The ports a port comparison is true for; nil for `!=` (no narrowing worth a map).
    private static func ports(_ test: ConditionNumberTest<UInt64>) -> PortRanges? {
        let top = UInt64(UInt16.max)
        switch test {
        case .oneOf(let values):
            return PortRanges(values.filter { $0 <= top }.map { UInt16($0)...UInt16($0) })
        case .compare(let op, let v):
            switch op {
            case .equal: return v <= top ? PortRanges([UInt16(v)...UInt16(v)]) : PortRanges([])
            case .less: return v == 0 ? PortRanges([]) : PortRanges([0...UInt16(min(v - 1, top))])
            case .lessOrEqual: return PortRanges([0...UInt16(min(v, top))])
            case .greater: return v >= top ? PortRanges([]) : PortRanges([UInt16(v + 1)...UInt16.max])
            case .greaterOrEqual: return v > top ? PortRanges([]) : PortRanges([UInt16(v)...UInt16.max])
            default: return nil
            }
        }
    }
}
