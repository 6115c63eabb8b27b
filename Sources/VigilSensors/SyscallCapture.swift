import CVigilABI
import VigilBPF
import VigilEvents

/// How much the syscalls sensor keeps of a variable-length argument (the daemon's
/// `syscall_buffer_bytes` / `syscall_string_bytes`, `vigil trace --snaplen` / `--string-bytes`).
/// A value cut at its bound says so: `...` after it in evt.arg and evt.args, `"truncated":true`
/// in JSON's `args`, and evt.truncated.
public struct SyscallBounds: Sendable, Equatable {
    /// Bytes kept of a buffer argument (read/write data): Falco's snaplen, 0 ... 4096.
    public var bufferBytes = 80
    /// Bytes kept of a string or path argument, 1 ... 4096.
    public var stringBytes = 4096

    /// The defaults: 80 bytes of buffers, 4096 of strings and paths.
    public init() {}

    /// Bounds; checked by `validate`.
    public init(bufferBytes: Int, stringBytes: Int) {
        self.bufferBytes = bufferBytes
        self.stringBytes = stringBytes
    }

    /// Why the bounds cannot be used, nil when they can (the ABI's VIGIL_SYSCALL_BUF_MAX and
    /// VIGIL_SYSCALL_STR_MAX are the largest).
    public var problem: String? {
        if bufferBytes < 0 || bufferBytes > Int(VIGIL_SYSCALL_BUF_MAX) { return "buffer bound \(bufferBytes) is not in 0 ... \(VIGIL_SYSCALL_BUF_MAX)" }
        if stringBytes < 1 || stringBytes > Int(VIGIL_SYSCALL_STR_MAX) { return "string bound \(stringBytes) is not in 1 ... \(VIGIL_SYSCALL_STR_MAX)" }
        return nil
    }
}

/// What the syscalls sensor captures: which syscalls (this arch's numbers) and the bounds of
/// strings and buffers. The per-syscall spec the kernel reads comes from the one table
/// (`Syscalls`, generated from bpf/syscalls/syscalls.table): nothing about a syscall's arguments
/// is written here by hand.
public struct SyscallCapture: Sendable, Equatable {
    /// This arch's syscall numbers to capture.
    public var numbers: Set<Int>
    /// The syscalls asked for: `numbers` minus those only the fd table needs.
    public var shown: Set<Int>

    /// This arch's syscalls that change the fd table (the table's fd_create and fd_close flags).
    /// With them, the socket syscalls that set an fd's ends (connect, bind, listen, shutdown,
    /// getsockname, getpeername: `SocketTracking.setsEnds`), so fd.name of a socket is known.
    public static let fdTableNumbers: Set<Int> = Set(Syscalls.all.filter { !$0.flags.isDisjoint(with: [.fdCreate, .fdClose]) || SocketTracking.setsEnds($0) }
        .compactMap { $0.number() })
    /// This arch's syscalls that set the working directory (chdir, fchdir): relative paths are
    /// resolved against it.
    public static let cwdNumbers: Set<Int> = Set(["chdir", "fchdir"].compactMap { Syscalls.named($0)?.number() })
    /// Bytes kept of a buffer argument (read/write data): Falco's snaplen.
    public var bufferBytes: Int
    /// DNS is read (a rule uses dns.* or fd.sip.name...: `NetworkFields.dnsFieldNames`): the
    /// syscalls resolvers receive answers with (`dnsNumbers`) are captured, shown only when asked
    /// for, with at least `dnsBytes` of their buffer.
    public let dns: Bool
    /// With `dns`: the kernel drops the calls of `dnsNumbers` whose socket or address has no port
    /// 53 (VIGIL_SPEC_DNS_ONLY, counted as filtered): they are captured for DNS alone, or shown
    /// only to rules that need a DNS message (`KernelPushdown.dnsOnly`). One of them not asked
    /// for (not in `shown`) is captured for DNS alone whatever this says (`capturesForDNSAlone`).
    public let dnsOnly: Bool
    /// This arch's numbers of the syscalls DNS answers are read from (`NetworkFields.dnsSyscalls`).
    public static let dnsNumbers: Set<Int> = Set(NetworkFields.dnsSyscalls.compactMap { Syscalls.named($0)?.number() })
    /// Those of `dnsNumbers` kept only on the UDP sockets connect armed (read:
    /// `NetworkFields.dnsConnectedSyscalls`; VIGIL_SPEC_DNS_ARMED, VIGIL_SPEC_ARM_DNS).
    public static let dnsConnectedNumbers: Set<Int> = Set(NetworkFields.dnsConnectedSyscalls.compactMap { Syscalls.named($0)?.number() })

    /// Whether syscall `n` of `dnsNumbers` is captured for DNS alone: `dnsOnly`, or not asked for.
    public func capturesForDNSAlone(_ n: Int) -> Bool { dns && (dnsOnly || !shown.contains(n)) }
    /// Bytes of a DNS syscall's buffer kept at least: a UDP answer without EDNS fits in 512.
    public static let dnsBytes = 512
    /// Payloads are read (a rule uses net.stratum.*: `NetworkFields.payloadFieldNames`): the
    /// syscalls clients write with (`payloadNumbers`) are captured, shown only when asked for,
    /// with at least `payloadBytes` of their buffer.
    public let payloads: Bool
    /// With `payloads`: the kernel keeps only each TCP connection's first payload, armed at
    /// connect's exit (VIGIL_SPEC_ARM_PAYLOAD) and dropping every other call of `payloadNumbers`
    /// at entry (VIGIL_SPEC_FIRST_PAYLOAD, counted as filtered): they are captured for it alone,
    /// or shown only to rules that need a payload field (`KernelPushdown.firstPayloadOnly`).
    public let firstPayloadOnly: Bool
    /// This arch's numbers of the syscalls payloads are read from (`NetworkFields.payloadSyscalls`).
    public static let payloadNumbers: Set<Int> = Set(NetworkFields.payloadSyscalls.compactMap { Syscalls.named($0)?.number() })
    /// Bytes of a payload syscall's buffer kept at least: a miner's login line fits in 512.
    public static let payloadBytes = 512
    /// Bytes kept of a string or path argument.
    public var stringBytes: Int

    /// The largest buffer bound (VIGIL_SYSCALL_BUF_MAX).
    public static let maxBufferBytes = Int(VIGIL_SYSCALL_BUF_MAX)
    /// The largest string bound (VIGIL_SYSCALL_STR_MAX).
    public static let maxStringBytes = Int(VIGIL_SYSCALL_STR_MAX)

    /// The bounds in use.
    public var bounds: SyscallBounds { SyscallBounds(bufferBytes: bufferBytes, stringBytes: stringBytes) }

    /// A selection; the bounds are capped at the ABI's (VIGIL_SYSCALL_BUF_MAX, VIGIL_SYSCALL_STR_MAX).
    ///
    /// When a syscall asked for takes an fd (the table's uses_fd) or a path, the syscalls that
    /// change the fd table are captured too (`fdTableNumbers`), so its fd.* fields are known and a
    /// path relative to a dirfd resolves; with a path, chdir and fchdir too (`cwdNumbers`: the
    /// cwd relative paths resolve against). The stream shows only `shown` (what was asked for) and
    /// counts the rest as suppressed.
    public init(numbers: Set<Int>, bufferBytes: Int = 80, stringBytes: Int = 4096, dns: Bool = false, dnsRulesOnly: Bool = false,
                payloads: Bool = false, payloadRulesOnly: Bool = false) {
        let asked = numbers.filter { $0 >= 0 && $0 < Int(VIGIL_SYSCALL_MAX) }
        shown = asked
        let usesFDs = asked.contains { Syscalls.numbered($0)?.flags.contains(.usesFD) ?? false }
        // A path argument is resolved against the cwd (chdir, fchdir) or a dirfd (the fd table).
        let usesPaths = asked.contains { n in
            Syscalls.numbered(n)?.params.contains { if case .path = $0.type { true } else { false } } ?? false
        }
        var numbers = asked
        if usesFDs || usesPaths { numbers.formUnion(Self.fdTableNumbers.filter { $0 < Int(VIGIL_SYSCALL_MAX) }) }
        if usesPaths { numbers.formUnion(Self.cwdNumbers) }
        if dns { numbers.formUnion(Self.dnsNumbers.union(Self.fdTableNumbers).filter { $0 < Int(VIGIL_SYSCALL_MAX) }) }
        if payloads { numbers.formUnion(Self.payloadNumbers.union(Self.fdTableNumbers).filter { $0 < Int(VIGIL_SYSCALL_MAX) }) }
        self.numbers = numbers
        self.bufferBytes = max(0, min(bufferBytes, Int(VIGIL_SYSCALL_BUF_MAX)))
        self.stringBytes = max(1, min(stringBytes, Int(VIGIL_SYSCALL_STR_MAX)))
        self.dns = dns
        self.dnsOnly = dns && (asked.isDisjoint(with: Self.dnsNumbers) || dnsRulesOnly)
        self.payloads = payloads
        self.firstPayloadOnly = payloads && (asked.isDisjoint(with: Self.payloadNumbers) || payloadRulesOnly)
    }

    /// The syscalls named (table names); names this arch lacks are left out.
    public init(names: [String], bufferBytes: Int = 80, stringBytes: Int = 4096, dns: Bool = false) {
        self.init(numbers: Set(names.compactMap { Syscalls.named($0)?.number() }), bufferBytes: bufferBytes, stringBytes: stringBytes, dns: dns)
    }

    /// The kernel's capture spec of `syscall`, from its table row.
    public func spec(for syscall: SyscallDescriptor) -> vigil_syscall_spec {
        var spec = vigil_syscall_spec()
        spec.buf_max = UInt16(bufferBytes)
        if dns, let n = syscall.number(), Self.dnsNumbers.contains(n) {
            // Room for an answer; wanted for DNS alone, the kernel drops the calls of other ports
            // (a read, before anything, unless connect armed its fd).
            spec.buf_max = UInt16(max(bufferBytes, Self.dnsBytes))
            if capturesForDNSAlone(n) { spec.flags |= UInt16(VIGIL_SPEC_DNS_ONLY.rawValue) }
            if capturesForDNSAlone(n), Self.dnsConnectedNumbers.contains(n) { spec.flags |= UInt16(VIGIL_SPEC_DNS_ARMED.rawValue) }
        }
        if payloads, let n = syscall.number(), Self.payloadNumbers.contains(n) {
            // Room for a request; wanted for first payloads alone, the kernel drops every other call.
            spec.buf_max = UInt16(max(bufferBytes, Self.payloadBytes))
            if firstPayloadOnly { spec.flags |= UInt16(VIGIL_SPEC_FIRST_PAYLOAD.rawValue) }
        }
        // connect arms its connection for the first payload.
        if firstPayloadOnly, syscall.nameString == "connect" { spec.flags |= UInt16(VIGIL_SPEC_ARM_PAYLOAD.rawValue) }
        // and a resolver's UDP socket for the answers read receives.
        if Self.dnsConnectedNumbers.contains(where: capturesForDNSAlone), syscall.nameString == "connect" { spec.flags |= UInt16(VIGIL_SPEC_ARM_DNS.rawValue) }
        spec.str_max = UInt16(stringBytes)
        if syscall.flags.contains(.noReturn) { spec.flags |= UInt16(VIGIL_SPEC_NO_RETURN.rawValue) }
        // State changes are never dropped by the kernel's filters (StateChangeFilter applies them).
        if syscall.flags.contains(.state) { spec.flags |= UInt16(VIGIL_SPEC_STATE.rawValue) }
        // Socket syscalls carry the kernel's view of their socket (bpf/lib/socket.bpf.h).
        switch SocketTracking.source(syscall) {
        case .result: spec.flags |= UInt16(VIGIL_SPEC_SOCKET_RESULT.rawValue)
        case .fdArgument: spec.flags |= UInt16(VIGIL_SPEC_SOCKET_FD.rawValue)
        case nil: break
        }
        withUnsafeMutableBytes(of: &spec.kind) { kinds in
            withUnsafeMutableBytes(of: &spec.len) { lengths in
                for (i, param) in syscall.params.prefix(Int(VIGIL_SYSCALL_ARGS)).enumerated() {
                    let (kind, length) = Self.capture(param)
                    kinds[i] = UInt8(kind.rawValue)
                    lengths[i] = length
                }
            }
        }
        return spec
    }

    /// What the kernel reads of one parameter, and its length argument (7: the result) or size.
    static func capture(_ param: SyscallParam) -> (vigil_syscall_capture, UInt8) {
        let exit = param.capturedAtExit // the decoder finds the bytes by it: the one definition
        switch param.type {
        case .path, .string:
            return (exit ? VIGIL_CAPTURE_STR_EXIT : VIGIL_CAPTURE_STR_ENTRY, 0)
        case .buffer(let length):
            let index = length < 0 ? 7 : UInt8(length)
            return (exit ? VIGIL_CAPTURE_BUF_EXIT : VIGIL_CAPTURE_BUF_ENTRY, index)
        case .iovec(let count):
            return (exit ? VIGIL_CAPTURE_IOV_EXIT : VIGIL_CAPTURE_IOV_ENTRY, UInt8(count))
        case .msghdr:
            return (exit ? VIGIL_CAPTURE_MSG_EXIT : VIGIL_CAPTURE_MSG_ENTRY, 0)
        case .sockaddr(let length, _):
            return (exit ? VIGIL_CAPTURE_SOCKADDR_EXIT : VIGIL_CAPTURE_SOCKADDR_ENTRY, UInt8(length))
        case .timespec:
            return (exit ? VIGIL_CAPTURE_FIXED_EXIT : VIGIL_CAPTURE_FIXED_ENTRY, 16)
        case .fdPair:
            return (VIGIL_CAPTURE_FIXED_EXIT, 8)
        default:
            return (VIGIL_CAPTURE_NONE, 0)
        }
    }

    /// The bitmap of `numbers` as the kernel tests it.
    var bitmap: vigil_syscall_bitmap {
        var map = vigil_syscall_bitmap()
        withUnsafeMutableBytes(of: &map.bits) { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for n in numbers { words[n >> 6] |= 1 << UInt64(n & 63) }
        }
        return map
    }

    /// Writes every syscall's spec, then the bitmap (a syscall is never wanted before its spec is in).
    func write(to object: BPFObject) throws {
        let specs = try TypedMap<UInt32, vigil_syscall_spec>(object.map(named: "syscall_specs"))
        for d in Syscalls.all {
            guard let n = d.number(), n < Int(VIGIL_SYSCALL_MAX) else { continue }
            try specs.update(UInt32(n), spec(for: d))
        }
        try writeBitmap(to: object)
    }

    /// Writes the bitmap alone (the specs of every syscall are in since load): a running sensor
    /// changes what it captures at once, without reloading.
    func writeBitmap(to object: BPFObject) throws {
        try TypedMap<UInt32, vigil_syscall_bitmap>(object.map(named: "syscall_wanted")).update(0, bitmap)
    }
}
