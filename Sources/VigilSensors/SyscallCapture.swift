import CVigilABI
import VigilBPF
import VigilEvents
import VigilRules

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
    /// The socket messages read (DNS answers, first payloads: `SocketMessage`): their syscalls
    /// are captured, shown only when asked for, with at least the message's bytes of their
    /// buffer; `only`: the rules need nothing but the message of those syscalls
    /// (`KernelPushdown.messages`). Which calls the kernel then drops: `capturesForMessageAlone`.
    public let messages: MessageCaptures

    /// Whether syscall `n`, one `message` is read from, is captured for the message alone: the
    /// rules need only the message of it, or nobody asked for it (it is not in `shown`). Then the
    /// kernel drops its calls that carry no such message (`SocketMessage.onlyFlags`: not port 53;
    /// a read not armed by a connect to port 53; not a connection's first payload), counted as
    /// filtered. Per syscall, so a rule on read does not make every recvfrom leave the kernel.
    public func capturesForMessageAlone(_ message: SocketMessage, _ n: Int) -> Bool {
        messages[message].wanted && (messages[message].only || !shown.contains(n))
    }
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
    /// `messages`: the socket messages wanted, `only` when the rules that want their syscalls need
    /// nothing else of them; a message's syscalls that are asked for (in `numbers`) are kept whole.
    public init(numbers: Set<Int>, bufferBytes: Int = 80, stringBytes: Int = 4096, messages: MessageCaptures = MessageCaptures()) {
        let asked = numbers.filter { $0 >= 0 && $0 < Int(VIGIL_SYSCALL_MAX) }
        shown = asked
        let usesFDs = asked.contains { Syscalls.numbered($0)?.flags.contains(.usesFD) ?? false }
        // A path argument is resolved against the cwd (chdir, fchdir) or a dirfd (the fd table).
        let usesPaths = asked.contains { n in
            Syscalls.numbered(n)?.params.contains { if case .path = $0.type { true } else { false } } ?? false
        }
        var numbers = asked
        if usesFDs || usesPaths { numbers.formUnion(Self.fdTableNumbers) }
        if usesPaths { numbers.formUnion(Self.cwdNumbers) }
        for message in messages.wanted {
            // A message is read on a socket the fd table knows.
            numbers.formUnion(message.numbers.union(Self.fdTableNumbers))
        }
        self.numbers = numbers.filter { $0 < Int(VIGIL_SYSCALL_MAX) }
        self.bufferBytes = max(0, min(bufferBytes, Int(VIGIL_SYSCALL_BUF_MAX)))
        self.stringBytes = max(1, min(stringBytes, Int(VIGIL_SYSCALL_STR_MAX)))
        self.messages = messages
    }

    /// What the syscalls sensor captures for `numbers` and the socket messages the rules of
    /// `pushdown` read; `asked`: the syscalls someone asked to see besides the rules (a tracer's
    /// --event and --set; empty for the daemon). A message is read only for the rules while
    /// nobody asked for its syscalls, and DNS also when a network syscall is asked for (to name
    /// its peers). `vigil trace` and the daemon (`KernelFilter.add`) both decide here.
    public init(numbers: Set<Int>, bounds: SyscallBounds, asked: Set<Int>, pushdown: KernelPushdown?) {
        var messages = MessageCaptures()
        for message in SocketMessage.allCases {
            let rules = pushdown?.messages[message] ?? MessageCapture()
            let named = message == .dns && asked.contains { Syscalls.numbered($0)?.categories.contains(.net) == true }
            messages[message] = MessageCapture(wanted: rules.wanted || named, only: rules.only && asked.isDisjoint(with: message.numbers))
        }
        self.init(numbers: numbers, bufferBytes: bounds.bufferBytes, stringBytes: bounds.stringBytes, messages: messages)
    }

    /// The syscalls named (table names); names this arch lacks are left out.
    public init(names: [String], bufferBytes: Int = 80, stringBytes: Int = 4096, messages: MessageCaptures = MessageCaptures()) {
        self.init(numbers: Set(names.compactMap { Syscalls.named($0)?.number() }), bufferBytes: bufferBytes, stringBytes: stringBytes, messages: messages)
    }

    /// The kernel's capture spec of `syscall`, from its table row.
    public func spec(for syscall: SyscallDescriptor) -> vigil_syscall_spec {
        var spec = vigil_syscall_spec()
        spec.buf_max = UInt16(bufferBytes)
        for message in messages.wanted {
            guard let n = syscall.number(), message.numbers.contains(n) else { continue }
            // Room for the message; wanted for it alone, the kernel drops the calls that carry none.
            spec.buf_max = UInt16(max(bufferBytes, message.bytes))
            if capturesForMessageAlone(message, n) { spec.flags |= message.onlyFlags(n) }
        }
        // connect arms its socket for the messages read only on armed sockets (a TCP
        // connection's first payload; a resolver's UDP socket for the answers read receives).
        if syscall.nameString == "connect" {
            for message in messages.wanted where message.armedNumbers.contains(where: { capturesForMessageAlone(message, $0) }) {
                spec.flags |= message.armFlag
            }
        }
        if let n = syscall.number(), capturedAtExitAlone(n) { spec.flags |= UInt16(VIGIL_SPEC_AT_EXIT.rawValue) }
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

    /// Whether syscall `n` is captured at its exit alone (`VIGIL_SPEC_AT_EXIT`): it is captured
    /// for a socket message alone, so nearly all its calls are dropped, and one program run per
    /// call (the exit's) costs less than two. Its arguments are read from the saved registers.
    public func capturedAtExitAlone(_ n: Int) -> Bool {
        messages.wanted.contains { $0.numbers.contains(n) && capturesForMessageAlone($0, n) }
    }

    /// The syscalls of `numbers` whose entries the per-syscall hooks attach to: all but those
    /// captured at their exit alone.
    public var entryNumbers: Set<Int> { numbers.filter { !capturedAtExitAlone($0) } }

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

    /// Whether every syscall's spec is the same under `other` (`spec(for:)` reads the bounds, the
    /// messages and which syscalls are shown): then a change writes the bitmap alone.
    func hasSameSpecs(as other: SyscallCapture) -> Bool {
        bufferBytes == other.bufferBytes && stringBytes == other.stringBytes && messages == other.messages && shown == other.shown
    }

    /// Writes the bitmap alone (the specs of every syscall are in since load): a running sensor
    /// changes what it captures at once, without reloading.
    func writeBitmap(to object: BPFObject) throws {
        try Self.writeBitmap(bitmap, to: object)
    }

    /// Makes the sensor of `object` want nothing: its entries leave at once and its exits and
    /// task exits neither finish nor count a call still pending. Before its links are detached
    /// (`Sensor.syscalls.beforeDetach`): they go in no set order, and a call entered after its
    /// exit's link went would otherwise be counted lost at the thread's next entry.
    static func clearBitmap(of object: BPFObject) throws {
        try writeBitmap(vigil_syscall_bitmap(), to: object)
    }

    private static func writeBitmap(_ bitmap: vigil_syscall_bitmap, to object: BPFObject) throws {
        try TypedMap<UInt32, vigil_syscall_bitmap>(object.map(named: "syscall_wanted")).update(0, bitmap)
    }
}

extension SocketMessage {
    /// The spec flags that make the kernel drop the calls of syscall `n` (one the message is read
    /// from) that carry none: not port 53 (bpf/syscalls.bpf.c `vigil_dns_port`), and for read a
    /// socket no connect to port 53 armed (the `dns_sockets` map); not a connection's first
    /// payload (the `first_payload` map, armed at connect).
    func onlyFlags(_ n: Int) -> UInt16 {
        switch self {
        case .dns:
            UInt16(VIGIL_SPEC_DNS_ONLY.rawValue) | (Self.dnsConnectedNumbers.contains(n) ? UInt16(VIGIL_SPEC_DNS_ARMED.rawValue) : 0)
        case .firstPayload: UInt16(VIGIL_SPEC_FIRST_PAYLOAD.rawValue)
        }
    }

    /// The syscalls kept only on sockets connect armed: read (`NetworkFields.dnsConnectedSyscalls`);
    /// every payload syscall.
    var armedNumbers: Set<Int> {
        switch self {
        case .dns: Self.dnsConnectedNumbers
        case .firstPayload: numbers
        }
    }
    private static let dnsConnectedNumbers: Set<Int> = Set(NetworkFields.dnsConnectedSyscalls.compactMap { Syscalls.named($0)?.number() })

    /// connect's flag that arms its socket (`armedNumbers`).
    var armFlag: UInt16 {
        switch self {
        case .dns: UInt16(VIGIL_SPEC_ARM_DNS.rawValue)
        case .firstPayload: UInt16(VIGIL_SPEC_ARM_PAYLOAD.rawValue)
        }
    }
}
