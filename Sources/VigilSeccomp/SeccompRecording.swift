import VigilEvents

/// What the kernel recorded for one cgroup (`struct vigil_seccomp_record`, bpf/seccomp.bpf.c), as
/// plain values: the syscall numbers seen per ABI and what the argument filters need. Pure: the
/// recorder (VigilSensors' `SeccompRecorder`) fills it from the map.
public struct SeccompRecording: Sendable, Equatable {
    /// The architecture whose native numbers `native` holds (the recorder's own).
    public var arch: SyscallArch
    /// Native syscall numbers seen (x86_64 or arm64), named by the syscall table.
    public var native: Set<Int>
    /// Numbers seen from 32-bit tasks (i386 on x86_64, arm on aarch64): another table's, which
    /// the syscall table does not name; reported as numbers.
    public var compat: Set<Int>
    /// x32 numbers seen (without __X32_SYSCALL_BIT); below 512 they are x86_64's numbers.
    public var x32: Set<Int>
    /// The OR of the flags of every native clone and clone3 seen.
    public var cloneFlags: UInt64
    /// Distinct personality() arguments seen.
    public var personalities: [UInt32]
    /// More distinct personality() arguments were seen than the kernel keeps: personality is
    /// then allowed with any argument.
    public var personalityOverflow: Bool

    /// A recording; empty by default.
    public init(arch: SyscallArch = .current, native: Set<Int> = [], compat: Set<Int> = [], x32: Set<Int> = [],
                cloneFlags: UInt64 = 0, personalities: [UInt32] = [], personalityOverflow: Bool = false) {
        self.arch = arch
        self.native = native
        self.compat = compat
        self.x32 = x32
        self.cloneFlags = cloneFlags
        self.personalities = personalities
        self.personalityOverflow = personalityOverflow
    }

    /// The syscall names seen, from the one table: native numbers, and x32 numbers the x86_64
    /// table shares. Sorted.
    public var names: [String] {
        var names = Set(native.compactMap { Self.name(of: $0, on: arch) })
        if arch == .x86_64 { names.formUnion(x32.compactMap { Self.name(of: $0, on: .x86_64) }) }
        return names.sorted()
    }

    /// Numbers seen that the table does not name (native or x32 beyond it); compat numbers are
    /// listed separately (`compat`).
    public var unnamed: [Int] {
        let native = native.filter { Self.name(of: $0, on: arch) == nil }
        let x32 = arch == .x86_64 ? x32.filter { Self.name(of: $0, on: .x86_64) == nil } : []
        return Array(native.union(x32)).sorted()
    }

    /// The union of two recordings of the same architecture (the first one's arch is kept).
    public func union(_ other: SeccompRecording) -> SeccompRecording {
        var personalities = self.personalities
        for value in other.personalities where !personalities.contains(value) { personalities.append(value) }
        return SeccompRecording(arch: arch, native: native.union(other.native), compat: compat.union(other.compat),
                                x32: x32.union(other.x32), cloneFlags: cloneFlags | other.cloneFlags, personalities: personalities,
                                personalityOverflow: personalityOverflow || other.personalityOverflow)
    }

    /// The name of syscall `number` on `arch`, from the syscall table.
    public static func name(of number: Int, on arch: SyscallArch) -> String? {
        byNumber[arch]?[number]
    }

    /// The number of syscall `name` on `arch`, from the syscall table.
    public static func number(of name: String, on arch: SyscallArch) -> Int? {
        Syscalls.named(name)?.number(on: arch)
    }

    private static let byNumber: [SyscallArch: [Int: String]] = Dictionary(uniqueKeysWithValues: SyscallArch.allCases.map { arch in
        (arch, Dictionary(Syscalls.all.compactMap { d in d.number(on: arch).map { ($0, d.nameString) } }, uniquingKeysWith: { a, _ in a }))
    })
}
