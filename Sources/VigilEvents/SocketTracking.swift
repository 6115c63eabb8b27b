/// How socket syscalls change what the fd table knows of a socket (`SocketInfo`): its protocol,
/// its two ends, its role and whether it is connected. The ends come from the kernel's struct sock
/// at the call's exit (`Payload.Syscall.socketTuple`: connect's local end, accept's peer, the
/// address bind or an autobind chose) and from the call's own socket address argument (a unix
/// path; the destination of an unconnected datagram), decoded by the one table's types.
public enum SocketTracking {
    /// Which fd's socket the kernel reads at a syscall's exit.
    public enum Source: Sendable {
        /// The result is the new fd (socket, accept, accept4).
        case result
        /// Argument 0 is the fd (connect, bind, listen, sendto, recvfrom, ...).
        case fdArgument
    }

    /// What a socket syscall does to its socket.
    enum Action: UInt8 {
        case none, create, connect, accept, bind, listen, send, receive, refresh
    }

    /// Per row of `Syscalls.all`.
    static let actions: [Action] = Syscalls.all.map { d in
        guard d.categories.contains(.net) else { return .none }
        switch d.nameString {
        case "socket": return .create
        case "connect": return .connect
        case "accept", "accept4": return .accept
        case "bind": return .bind
        case "listen": return .listen
        case "sendto", "sendmsg", "sendmmsg": return .send
        case "recvfrom", "recvmsg", "recvmmsg": return .receive
        default: return d.flags.contains(.usesFD) && d.params.first?.type == .fd ? .refresh : .none
        }
    }

    /// The socket the kernel reads for syscall `d` (nil: none): socket and accept* read their
    /// result's, every other net syscall whose first argument is an fd reads that one's.
    public static func source(_ d: SyscallDescriptor) -> Source? {
        guard d.categories.contains(.net) else { return nil }
        if d.flags.contains(.fdCreate), d.result == .fd { return .result }
        if d.flags.contains(.usesFD), d.params.first?.type == .fd { return .fdArgument }
        return nil
    }

    /// Whether `d` sets a socket's ends or state without making or closing an fd and without
    /// data (connect, bind, listen, shutdown, getsockname, getpeername): the fd table needs them
    /// for the fd.* fields of later events on the socket.
    public static func setsEnds(_ d: SyscallDescriptor) -> Bool {
        d.categories.contains(.net) && d.flags.contains(.usesFD) && d.flags.isDisjoint(with: [.reads, .writes, .fdCreate, .fdClose])
    }

    /// EINPROGRESS: a non-blocking connect under way (its ends are set).
    static let inProgress: Int64 = -115

    /// Whether `apply` may change an entry of no socket for `s`: its syscall acts on sockets
    /// (`apply` changes a socket's entry only then, or to mark a pending connect connected).
    @inline(__always)
    public static func acts(_ s: Payload.Syscall) -> Bool { actions[s.index] != .none }

    /// Updates `entry` (the socket `s` acted on: argument 0) by `s`; false when `s` changes nothing.
    public static func apply(_ s: Payload.Syscall, to entry: inout FDInfo) -> Bool {
        let action = actions[s.index]
        if action == .none, !s.failedCall, var info = entry.socket, info.role == .client, !info.connected,
           !s.flags.isDisjoint(with: [.reads, .writes]) {
            info.connected = true // a connect that returned EINPROGRESS has completed
            entry.socket = info
            return true
        }
        guard action != .none, action != .create, action != .accept else { return false }
        // A failed connect (refused, unreachable, timed out) still names where it went: the
        // kernel has dropped the peer by its exit, so the destination is the sockaddr argument.
        if s.failedCall && action != .connect { return false }
        var info = entry.socket ?? SocketInfo()
        let kernel = s.socketTuple
        if let kernel { merge(kernel, into: &info, type: &entry.type) }
        let address = sockaddrArgument(s)
        switch action {
        case .connect:
            if info.role == .none { info.role = .client }
            // The kernel's peer when it has one (port set); else the destination asked for.
            if let address, kernel?.remote == nil || kernel?.remote?.port == 0 || info.remote?.ip == nil {
                info.remote = address
            }
            info.connected = s.result == 0 || kernel?.state == KernelSocketTuple.established
            if let path = address?.path, !path.isEmpty { entry.name = path }
        case .bind:
            if info.local == nil, let address { info.local = address }
            if let path = address?.path, !path.isEmpty { entry.name = path }
        case .listen:
            info.listening = true
            info.role = .server
        case .send:
            if info.role == .none { info.role = .client }
            if kernel?.remote == nil, let address, address.ip != nil { info.remote = address }
        case .receive:
            if info.role == .none { info.role = .server }
            if kernel?.remote == nil, let address, address.ip != nil { info.remote = address }
        default:
            break
        }
        entry.socket = info
        if entry.type == .ipv4 || entry.type == .ipv6 {
            if info.isIPv4 { entry.type = .ipv4 }
            let name = info.name
            if !name.isEmpty { entry.name = name }
        }
        return true
    }

    /// Fills a socket `s` made (socket, accept, accept4) into `made`: its protocol from the
    /// arguments or the kernel, and for accept the ends (server role, connected).
    public static func made(_ s: Payload.Syscall, _ made: inout FDInfo) {
        let action = actions[s.index]
        guard action == .create || action == .accept else { return }
        var info = SocketInfo()
        if action == .create, s.args[0] == 1 || s.args[0] == 2 || s.args[0] == 10 {
            info.l4proto = L4Protocol(socketType: s.args[1], protocol: s.args[2])
        }
        if action == .accept {
            info = made.socket ?? info // the listener's protocol
            info.listening = false
            info.role = .server
            info.connected = true
            info.remote = nil
            if let address = sockaddrArgument(s), address.ip != nil { info.remote = address }
        }
        if let kernel = s.socketTuple {
            merge(kernel, into: &info, type: &made.type)
            if action == .accept { made.inode = kernel.inode }
        }
        guard made.type == .ipv4 || made.type == .ipv6 || made.type == .unix else {
            made.socket = made.type == .socket ? info : nil
            return
        }
        made.socket = info
        if made.type != .unix {
            if info.isIPv4 { made.type = .ipv4 }
            let name = info.name
            if !name.isEmpty { made.name = name }
        }
    }

    /// Takes the kernel's ends and protocol (what it says overrides what the arguments said).
    static func merge(_ kernel: KernelSocketTuple, into info: inout SocketInfo, type: inout FDType) {
        let proto = L4Protocol(socketType: UInt64(kernel.type), protocol: UInt64(kernel.proto))
        if proto != .unknown { info.l4proto = proto }
        if let local = kernel.local { info.local = local }
        if let remote = kernel.remote { info.remote = remote }
        if kernel.state == KernelSocketTuple.established, info.l4proto == .tcp { info.connected = true }
        if kernel.state == KernelSocketTuple.listen, info.l4proto == .tcp { info.listening = true }
        if type == .socket || type == .unknown { type = FDType(addressFamily: UInt64(kernel.family)) }
    }

    /// The call's socket address argument, decoded (connect's destination, bind's address,
    /// sendto's destination, recvfrom's and accept's source), nil when it has none.
    static func sockaddrArgument(_ s: Payload.Syscall) -> SocketAddress? {
        s.capturedSocketAddress.flatMap { SocketAddress(sockaddr: $0) }
    }
}
