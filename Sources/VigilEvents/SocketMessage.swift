/// A message the syscalls sensor reads out of socket buffers for the fields of rules: one case
/// per kind. The rules' analysis (which rules need it, whether they need nothing else of its
/// syscalls) and the capture (which syscalls, how many bytes, which kernel flag) both go
/// through it, so a new kind is a case here and a row in each of their switches.
public enum SocketMessage: CaseIterable, Sendable, Hashable {
    /// DNS answers (dns.*, and the peer names fd.sip.name...): the kernel keeps the calls of
    /// port 53 when nothing else is wanted of their syscalls.
    case dns
    /// What a client writes first on a TCP connection (net.stratum.*): the kernel keeps each
    /// connection's first payload (armed at connect) when nothing else is wanted.
    case firstPayload

    /// The syscalls it is read from (table names).
    public var syscalls: [String] {
        switch self {
        case .dns: NetworkFields.dnsSyscalls
        case .firstPayload: NetworkFields.payloadSyscalls
        }
    }

    /// This arch's numbers of `syscalls`.
    public var numbers: Set<Int> {
        switch self {
        case .dns: Self.dnsNumbers
        case .firstPayload: Self.payloadNumbers
        }
    }
    private static let dnsNumbers = numbers(of: NetworkFields.dnsSyscalls)
    private static let payloadNumbers = numbers(of: NetworkFields.payloadSyscalls)
    private static func numbers(of names: [String]) -> Set<Int> { Set(names.compactMap { Syscalls.named($0)?.number() }) }

    /// The fields that make a rule (in its condition or output) need the message parsed.
    public var fieldNames: Set<String> {
        switch self {
        case .dns: NetworkFields.dnsFieldNames
        case .firstPayload: NetworkFields.payloadFieldNames
        }
    }

    /// Whether `field` exists only on an event that carried this message, so a condition that
    /// requires it can be true for nothing else (dns.*; net.stratum.*). A peer's name
    /// (fd.sip.name) needs DNS but exists on connections, so it is not one.
    public func isMessageField(_ field: String) -> Bool {
        switch self {
        case .dns: field.hasPrefix("dns.")
        case .firstPayload: NetworkFields.payloadFieldNames.contains(field)
        }
    }

    /// Bytes of its syscalls' buffer kept at least: a UDP DNS answer without EDNS, and a miner's
    /// login line, fit in 512.
    public var bytes: Int { 512 }
}

/// How one kind of socket message is captured.
public struct MessageCapture: Sendable, Equatable {
    /// The message is read: a rule (or the tracer) needs it.
    public var wanted: Bool
    /// Nothing but the message is wanted of its syscalls, so the kernel drops the calls that carry
    /// none (counted as filtered). Implies `wanted`.
    public var only: Bool

    /// A capture; `only` without `wanted` is nothing.
    public init(wanted: Bool = false, only: Bool = false) {
        self.wanted = wanted
        self.only = wanted && only
    }
}

/// How each kind of socket message is captured (not wanted unless set).
public struct MessageCaptures: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    private var byKind: [SocketMessage: MessageCapture] = [:]

    /// No message wanted.
    public init() {}

    /// The captures listed.
    public init(dictionaryLiteral elements: (SocketMessage, MessageCapture)...) {
        for (kind, capture) in elements { self[kind] = capture }
    }

    /// How `kind` is captured.
    public subscript(_ kind: SocketMessage) -> MessageCapture {
        get { byKind[kind] ?? MessageCapture() }
        set { byKind[kind] = newValue.wanted ? newValue : nil }
    }

    /// The kinds wanted.
    public var wanted: [SocketMessage] { SocketMessage.allCases.filter { self[$0].wanted } }
}
