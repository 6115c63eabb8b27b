import VigilEvents

/// DNS seen through the syscall engine: a syscall that sent or received a buffer on an IP socket
/// to or from port 53 gets its message parsed (`event.dns`), and the addresses of each answer are
/// remembered under the name asked for, so any later event on a socket whose end has such an
/// address names it (`Event.localIPName`/`remoteIPName`: fd.sip.name, fd.rip.name, ...).
///
/// Names are host-wide (not per network namespace) and kept for the answer's TTL but at least
/// `minimumLifetimeNs`: a connection is often made after a short TTL has run out. At most
/// `capacity` addresses are kept; past it the expired ones go, then all. Driven by one thread
/// (the event pipeline), after the fd table.
public final class DNSNames {
    private var names: [IPAddress: (name: String, expiresNs: UInt64)] = [:]
    /// Messages parsed, and answers whose addresses were learned.
    public private(set) var messages: UInt64 = 0, learned: UInt64 = 0

    /// Addresses kept at most.
    public static let capacity = 1 << 16
    /// The least time a learned name is kept, whatever the answer's TTL.
    public static let minimumLifetimeNs: UInt64 = 300_000_000_000

    public init() {}

    /// Number of addresses named now.
    public var count: Int { names.count }

    /// The name known for `address` at `timeNs`.
    public func name(of address: IPAddress, at timeNs: UInt64) -> String? {
        guard let entry = names[address], entry.expiresNs > timeNs else { return nil }
        return entry.name
    }

    /// Parses the DNS message of `event` (a syscall on a socket to or from port 53), learns its
    /// answers, and names the ends of the event's socket.
    public func apply(_ event: inout Event) {
        guard case .syscall(let s) = event.payload, let socket = event.fd?.socket else { return }
        if socket.remote?.port == 53 || socket.local?.port == 53, !s.failedCall, let bytes = s.capturedBuffer,
           let message = DNSMessage(bytes: bytes, stream: socket.l4proto == .tcp) {
            messages += 1
            event.dns = message
            if message.isResponse, message.rcode == 0 { learn(message, at: event.timeNs) }
        }
        guard !names.isEmpty else { return }
        event.localIPName = socket.local?.ip.flatMap { name(of: $0, at: event.timeNs) }
        event.remoteIPName = socket.remote?.ip.flatMap { name(of: $0, at: event.timeNs) }
    }

    /// Remembers each address of `message`'s answers under its first question's name.
    func learn(_ message: DNSMessage, at timeNs: UInt64) {
        let name = message.name
        guard !name.isEmpty else { return }
        var any = false
        for answer in message.answers {
            guard let address = answer.address else { continue }
            if names.count >= Self.capacity, names[address] == nil {
                names = names.filter { $0.value.expiresNs > timeNs }
                if names.count >= Self.capacity { names.removeAll() }
            }
            names[address] = (name, timeNs + max(UInt64(answer.ttl) * 1_000_000_000, Self.minimumLifetimeNs))
            any = true
        }
        if any { learned += 1 }
    }
}
