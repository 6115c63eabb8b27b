/// The machine architectures the syscall table numbers.
public enum SyscallArch: String, Sendable, CaseIterable {
    case x86_64, arm64

    /// The architecture this binary runs on.
    public static var current: SyscallArch {
        #if arch(arm64)
        .arm64
        #else
        .x86_64
        #endif
    }
}

/// Categories of syscalls (`evt.category`, `vigil trace --set`).
public struct SyscallCategories: OptionSet, Sendable, Hashable {
    /// The bits.
    public let rawValue: UInt16
    /// A set from its bits.
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// File systems: paths, fds of files, metadata.
    public static let fs = Self(rawValue: 1 << 0)
    /// Sockets.
    public static let net = Self(rawValue: 1 << 1)
    /// Processes: create, exec, exit, signal, schedule, limits, namespaces.
    public static let proc = Self(rawValue: 1 << 2)
    /// Pipes, message queues, semaphores, shared memory, event and poll fds.
    public static let ipc = Self(rawValue: 1 << 3)
    /// Memory mappings.
    public static let mem = Self(rawValue: 1 << 4)
    /// Signal handling.
    public static let signal = Self(rawValue: 1 << 5)
    /// Clocks, timers, sleeps.
    public static let time = Self(rawValue: 1 << 6)
    /// User and group ids, keys.
    public static let user = Self(rawValue: 1 << 7)
    /// The system: modules, mounts, reboot, BPF, random numbers.
    public static let system = Self(rawValue: 1 << 8)
    /// May block for long (in addition to its main category).
    public static let sleep = Self(rawValue: 1 << 9)
    /// None of the above.
    public static let other = Self(rawValue: 1 << 10)

    /// Every category with its name, in table order.
    public static let named: [(name: String, category: SyscallCategories)] = [
        ("fs", .fs), ("net", .net), ("proc", .proc), ("ipc", .ipc), ("mem", .mem), ("signal", .signal),
        ("time", .time), ("user", .user), ("system", .system), ("sleep", .sleep), ("other", .other),
    ]

    /// The category named `name`, nil when there is none.
    public init?(name: String) {
        guard let found = Self.named.first(where: { $0.name == name }) else { return nil }
        self = found.category
    }

    /// The names of the categories in the set.
    public var names: [String] { Self.named.filter { contains($0.category) }.map(\.name) }
}

/// What a syscall does to Vigil's state (from the table's flags column).
public struct SyscallFlags: OptionSet, Sendable, Hashable {
    /// The bits.
    public let rawValue: UInt16
    /// A set from its bits.
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// Returns (or writes) a new fd.
    public static let fdCreate = Self(rawValue: 1 << 0)
    /// Closes fds.
    public static let fdClose = Self(rawValue: 1 << 1)
    /// Takes an fd argument.
    public static let usesFD = Self(rawValue: 1 << 2)
    /// Reads data (I/O).
    public static let reads = Self(rawValue: 1 << 3)
    /// Writes data (I/O).
    public static let writes = Self(rawValue: 1 << 4)
    /// Changes the process or fd tables: never dropped.
    public static let state = Self(rawValue: 1 << 5)
    /// Does not return (exit, exit_group): reported at entry.
    public static let noReturn = Self(rawValue: 1 << 6)
}

/// Named bits of a flags argument.
public enum SyscallFlagSet: String, Sendable, CaseIterable {
    case open, prot, mmap, clone, access, at, rename, memfd, sockflags, wait, flock, mount, umount
}

/// Named values of an enumerated argument.
public enum SyscallEnumSet: String, Sendable, CaseIterable {
    case af, sock, fcntl, ptrace, prctl, whence, madvise, clock, shut, bpf
}

/// The type of a syscall argument or result, as the table says: how the kernel captures it and
/// how it is printed.
public enum SyscallValueType: Sendable, Equatable {
    case int, uint, hex, fd, pid, uid, gid, mode, signal, timespec, string
    /// Two ints the kernel writes (pipe, socketpair).
    case fdPair
    /// A path; `dirfd` is the index of the fd argument it is relative to, -1 for cwd.
    case path(dirfd: Int8)
    /// Bytes; `length` is the index of the length argument, -1 for the return value.
    case buffer(length: Int8)
    /// The bytes of an iovec array's first element (readv, writev; `count` is the index of the
    /// element count argument), as many as it holds, at exit no more than the result.
    case iovec(count: Int8)
    /// The bytes of a struct msghdr's first iovec (sendmsg, recvmsg), as `iovec` reads them.
    case msghdr
    /// A socket address of as many bytes as argument `length` says (or points to).
    case sockaddr(length: Int8, lengthIsPointer: Bool)
    /// Named bits.
    case flags(SyscallFlagSet)
    /// Named values.
    case enumeration(SyscallEnumSet)

    /// The name in JSON's `args[].type` and docs.
    public var name: StaticString {
        switch self {
        case .int: "int"
        case .uint: "uint"
        case .hex: "hex"
        case .fd: "fd"
        case .pid: "pid"
        case .uid: "uid"
        case .gid: "gid"
        case .mode: "mode"
        case .signal: "signal"
        case .timespec: "timespec"
        case .string: "string"
        case .fdPair: "fdpair"
        case .path: "path"
        case .buffer: "buffer"
        case .iovec: "iovec"
        case .msghdr: "msghdr"
        case .sockaddr: "sockaddr"
        case .flags: "flags"
        case .enumeration: "enum"
        }
    }

    /// Whether the argument's captured bytes are the call's data (`buffer`, `iovec`, `msghdr`):
    /// what `Payload.Syscall.capturedBuffer` returns and DNS is parsed from.
    public var isData: Bool {
        switch self {
        case .buffer, .iovec, .msghdr: true
        default: false
        }
    }
}

/// One parameter of a syscall.
public struct SyscallParam: Sendable {
    /// The name, as the kernel's tracefs format names it (`evt.arg.NAME`).
    public let name: StaticString
    /// The type.
    public let type: SyscallValueType
    /// Read when the call returns (an output), else at entry.
    public let atExit: Bool
    /// The name Falco's rules use where it differs from the kernel's (symlinkat's `oldname` is
    /// Falco's `target`): `evt.arg.NAME` answers to both.
    public let falcoName: StaticString?

    /// A parameter.
    public init(_ name: StaticString, _ type: SyscallValueType, atExit: Bool = false, falcoName: StaticString? = nil) {
        self.name = name
        self.type = type
        self.atExit = atExit
        self.falcoName = falcoName
    }

    /// The name as a String.
    public var nameString: String { name.description }

    /// Whether `name` names this parameter: the kernel's name or Falco's.
    public func isNamed(_ name: String) -> Bool { nameString == name || falcoName?.description == name }

    /// Whether the kernel reads what it captures of this parameter when the call returns: an
    /// output, a buffer sized by the result, a socket address whose length is a pointer, an fd
    /// pair. The record holds the bytes captured at entry first, then those captured at exit,
    /// each group in argument order.
    public var capturedAtExit: Bool {
        switch type {
        case .buffer(let length): atExit || length < 0
        case .sockaddr(_, let isPointer): isPointer
        case .fdPair: true
        default: atExit
        }
    }
}

/// One row of the syscall table (bpf/syscalls/syscalls.table).
public struct SyscallDescriptor: Sendable {
    /// The name as Linux and Falco's evt.type name it.
    public let name: StaticString
    /// The number on x86_64, -1 when that arch lacks it.
    public let x86_64: Int16
    /// The number on arm64, -1 when that arch lacks it.
    public let arm64: Int16
    /// The tracefs event (sys_enter_NAME) the parameters come from; nil when this kernel had none.
    public let tracefs: StaticString?
    /// Its categories.
    public let categories: SyscallCategories
    /// What it does to Vigil's state.
    public let flags: SyscallFlags
    /// The return value's type (int means a count or 0, or -errno).
    public let result: SyscallValueType
    /// The parameters, in order.
    public let params: [SyscallParam]

    /// A row (the generated table).
    public init(_ name: StaticString, x86_64: Int16, arm64: Int16, tracefs: StaticString?, categories: SyscallCategories,
                flags: SyscallFlags, result: SyscallValueType, params: [SyscallParam]) {
        self.name = name
        self.x86_64 = x86_64
        self.arm64 = arm64
        self.tracefs = tracefs
        self.categories = categories
        self.flags = flags
        self.result = result
        self.params = params
    }

    /// The name as a String.
    public var nameString: String { name.description }

    /// The number on `arch`, nil when it lacks the syscall.
    public func number(on arch: SyscallArch = .current) -> Int? {
        let n = arch == .x86_64 ? x86_64 : arm64
        return n < 0 ? nil : Int(n)
    }
}

/// The syscall table: lookups by name and by number (the rows are generated from
/// bpf/syscalls/syscalls.table into Generated/Syscalls.swift).
public enum Syscalls {
    /// Every syscall of every arch the table knows.
    public static let all: [SyscallDescriptor] = generated

    /// The parameters of each row of `all`, in memory allocated once and never freed: reading
    /// them per event (`Payload.Syscall.params`) copies and retains nothing. Never written after
    /// it is made (hence nonisolated).
    nonisolated(unsafe) public static let params: UnsafeBufferPointer<UnsafeBufferPointer<SyscallParam>> = {
        .immortal(all.map { .immortal($0.params) })
    }()

    /// The largest syscall number + 1 the kernel side tracks (its bitmap and spec map).
    public static let maxNumber = 512

    private static let indexByName: [String: Int] = Dictionary(uniqueKeysWithValues: all.enumerated().map { ($1.nameString, $0) })

    /// Index into `all` by this arch's number, -1 where no syscall has it.
    private static let indexByNumber: [Int16] = {
        var table = [Int16](repeating: -1, count: maxNumber)
        for (i, d) in all.enumerated() {
            if let n = d.number(), n < maxNumber { table[n] = Int16(i) }
        }
        return table
    }()

    /// The syscall named `name` (on any arch).
    public static func named(_ name: String) -> SyscallDescriptor? { indexByName[name].map { all[$0] } }

    /// The index in `all` of the syscall named `name`.
    public static func index(named name: String) -> Int? { indexByName[name] }

    /// The names in `names` of syscalls `arch` has, in order: a hook on a syscall the arch lacks
    /// (open, creat, rename, ... on arm64) has no tracepoint to attach to.
    public static func present(_ names: [String], on arch: SyscallArch = .current) -> [String] {
        names.filter { named($0)?.number(on: arch) != nil }
    }

    /// The index in `all` of this arch's syscall number `number`, nil when unknown.
    @inline(__always)
    public static func index(number: Int) -> Int? {
        guard number >= 0, number < maxNumber else { return nil }
        let i = indexByNumber[number]
        return i < 0 ? nil : Int(i)
    }

    /// This arch's syscall with number `number`.
    public static func numbered(_ number: Int) -> SyscallDescriptor? { index(number: number).map { all[$0] } }

    /// Up to `limit` names closest to `name` (edit distance, then shared prefix), for "did you mean".
    public static func closest(to name: String, limit: Int = 3) -> [String] {
        let target = Array(name.utf8)
        func distance(_ a: [UInt8]) -> Int {
            var previous = Array(0...target.count)
            for (i, ca) in a.enumerated() {
                var current = [i + 1] + [Int](repeating: 0, count: target.count)
                for (j, cb) in target.enumerated() {
                    current[j + 1] = Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1))
                }
                previous = current
            }
            return previous[target.count]
        }
        let scored = all.map { d -> (String, Int) in
            let n = d.nameString
            // A name that contains the query (or is contained) counts as close.
            let bonus = n.contains(name) || name.contains(n) ? -2 : 0
            return (n, distance(Array(n.utf8)) + bonus)
        }
        return scored.sorted { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }.prefix(limit).map(\.0)
    }
}
