import CVigilABI
import VigilBPF
import VigilContainers
import VigilEvents
import VigilSeccomp
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The seccomp sensor (bpf/seccomp.bpf.c): records, per cgroup, which syscalls it makes, as
/// bits in a map (no event per syscall), for `vigil seccomp record`; and, for `vigil seccomp
/// verify`, reports the syscalls a seccomp filter refused in watched cgroups.
///
/// A cgroup is watched `armed` (recording at once: a running container) or not (recording from
/// its first exec: a command started in a fresh cgroup), or found by the kernel under a watched
/// parent (`watchChildren`: the next container, from its entrypoint's exec; userspace then keeps
/// it or `ignore`s it). One thread drives it.
public final class SeccompRecorder {
    /// From when a watched cgroup records.
    public enum Start: Sendable {
        /// At once, every task (a running container without a filter).
        case now
        /// From the first exec in it (a command started in a fresh cgroup).
        case exec
        /// Tasks under a seccomp filter: what a container's profile must allow, from the runtime's
        /// filter install on (its setup before that is not the workload's).
        case underFilter
    }
    /// `verify`'s extra hook: sys_exit, where a refused syscall (which never reached sys_enter) shows.
    public static let verifyHooks: [Hook] = [.btfOrRaw("exit", program: "seccomp_exit")]

    /// The syscall dispatch functions of x86_64 kernels (6.9, and stable backports) with the
    /// fentry program of bpf/seccomp.bpf.c for each: native, 32-bit compat, x32. None elsewhere.
    #if arch(x86_64)
    public static let dispatchFunctions: [(function: String, program: String)] = [
        ("x64_sys_call", "seccomp_enter_x64"), ("ia32_sys_call", "seccomp_enter_ia32"), ("x32_sys_call", "seccomp_enter_x32"),
    ]
    #else
    public static let dispatchFunctions: [(function: String, program: String)] = []
    #endif

    /// The enter hook on the generic sys_enter tracepoint: `enterHook`'s fallback, and `verify`'s.
    static let sysEnterHook = Hook.btfOrRaw("enter", program: "seccomp_enter")

    /// The hook on every syscall's entry: `fentry` on the dispatch functions `functions` (of
    /// `dispatchFunctions`; x64_sys_call always when there are any: without it the variant fails
    /// to load and the next one runs): every task's syscalls pass a trampoline and the program's
    /// cgroup lookup, on the fast syscall path; else the generic sys_enter tracepoint (`tp_btf`,
    /// else `raw_tp`), which sends every task on the host through the kernel's slow syscall entry.
    public static func enterHook(dispatching functions: [String]) -> Hook {
        let tracepoint = sysEnterHook
        guard let native = dispatchFunctions.first else { return tracepoint }
        let programs = [native.program] + dispatchFunctions.dropFirst().filter { functions.contains($0.function) }.map(\.program)
        return Hook("enter", variants: [Variant("fentry", requires: [.attachFentry], programs: programs)] + tracepoint.variants)
    }

    /// One way of hooking every syscall's entry, to force instead of the chain's choice
    /// (`vigil seccomp record --enter-hook`, for benchmarks and debugging).
    public enum EnterHook: String, CaseIterable, Sendable {
        /// `fentry` on the syscall dispatch functions (x86_64 kernels with x64_sys_call).
        case fentry
        /// The generic sys_enter tracepoint (`tp_btf`, else `raw_tp`).
        case sysEnter = "sys_enter"
    }

    /// The hooks `init` loads: the sensor's, its `enter` on the dispatch functions this kernel has,
    /// and with `verify` its sys_exit hook and `enter` on sys_enter: sys_exit sends every task
    /// through the slow entry anyway, and both tracepoints see the same numbers (those past the
    /// kernel's table too), so an exit is paired with its entry exactly. `forcing` keeps only that
    /// way of hooking the entry (not with `verify`, whose entry is always sys_enter).
    public static func hooks(verify: Bool, forcing forced: EnterHook? = nil) -> [Hook] {
        let chain = verify || forced == .sysEnter ? sysEnterHook
            : enterHook(dispatching: Array(KernelFunctions.present(dispatchFunctions.map(\.function))))
        let enter = forced == .fentry && !verify ? Hook(chain.name, variants: chain.variants.filter { $0.name == "fentry" }) : chain
        return Sensor.seccomp.hooks.map { $0.name == "enter" ? enter : $0 } + (verify ? verifyHooks : [])
    }

    /// The loaded object and its links.
    public let variants: LoadedVariants
    /// The hierarchy whose cgroup ids the sensor reads.
    public let cgroupHierarchy: CgroupHierarchy
    private let cgroups: TypedMap<UInt64, vigil_seccomp_record>
    private let parents: TypedMap<UInt64, UInt32>
    private let verifying: Bool

    /// Loads and attaches the sensor. With `verify`, also the sys_exit hook reporting syscalls
    /// refused with `errnoRet` in cgroups watched with `verify: true` (read with `denials`).
    /// `enterHook` forces the way every syscall's entry is hooked (default: the chain's choice).
    /// - Throws: `BPFError` `.invalidArgument` for `enterHook` with `verify`, or `.fentry` where
    ///   there is no syscall dispatch to hook (not x86_64); `.load` naming the forced hook and why
    ///   each of its variants did not work when it cannot run on this kernel.
    public init(verify: Bool = false, errnoRet: Int32 = Int32(SeccompProfile.eperm), ringBytes: Int = 1 << 20,
                probes: FeatureProbes = .shared, cgroupHierarchy: CgroupHierarchy = .onThisHost,
                enterHook forced: EnterHook? = nil) throws {
        if let forced {
            guard !verify else {
                throw BPFError(.invalidArgument, operation: "SeccompRecorder", target: "enter",
                               message: "the enter hook cannot be forced for verify (it is always sys_enter, paired with sys_exit)")
            }
            guard forced != .fentry || !Self.dispatchFunctions.isEmpty else {
                throw BPFError(.invalidArgument, operation: "SeccompRecorder", target: "enter",
                               message: "enter hook fentry: this architecture has no syscall dispatch function to hook (x86_64's x64_sys_call)")
            }
        }
        let arch = SyscallArch.current
        func number(_ name: String) -> Int32 { Int32(SeccompRecording.number(of: name, on: arch) ?? -1) }
        do {
            variants = try Sensor.seccomp.load(hooks: Self.hooks(verify: verify, forcing: forced), probes: probes, configure: { object in
                try object.setGlobal("nr_clone", to: number("clone"))
                try object.setGlobal("nr_clone3", to: number("clone3"))
                try object.setGlobal("nr_personality", to: number("personality"))
                try object.setGlobal("denied_errno", to: errnoRet)
                try object.setGlobal("vigil_cgroup_hierarchy", to: cgroupHierarchy.rawValue)
                try object.map(named: "events").setMaxEntries(ringBytes)
            })
        } catch var error as BPFError where forced != nil && error.kind == .load && error.target == "enter" {
            // The loader's message lists each variant with why it did not work; say it was forced.
            error.message = "forced enter hook \(forced?.rawValue ?? ""): \(error.message)"
            throw error
        }
        cgroups = try TypedMap(variants.object.map(named: "seccomp_cgroups"))
        parents = try TypedMap(variants.object.map(named: "seccomp_parents"))
        self.cgroupHierarchy = cgroupHierarchy
        verifying = verify
    }

    /// Watches cgroup `id`, recording from `start`. With `verify`, refused syscalls in it are
    /// reported too.
    public func watch(cgroup id: UInt64, from start: Start, verify: Bool = false) throws {
        var record = vigil_seccomp_record()
        switch start {
        case .now: record.flags = UInt32(VIGIL_SECCOMP_ARMED.rawValue)
        case .exec: record.flags = 0
        case .underFilter: record.flags = UInt32(VIGIL_SECCOMP_FILTERED.rawValue)
        }
        if verify { record.flags |= UInt32(VIGIL_SECCOMP_VERIFY.rawValue) }
        try cgroups.update(id, record)
    }

    /// Whether process `pid` runs under a seccomp filter (/proc/PID/status `Seccomp: 2`).
    public static func underFilter(pid: Int32) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
        return status.split(separator: "\n").contains { $0.hasPrefix("Seccomp:") && $0.hasSuffix("2") }
    }

    /// Records every new cgroup made under `parent` from its first exec (`discovered` lists
    /// them); with `verify`, reports their refused syscalls too.
    public func watchChildren(of parent: UInt64, verify: Bool = false) throws {
        try parents.update(parent, verify ? UInt32(VIGIL_SECCOMP_VERIFY.rawValue) : 0)
    }

    /// Stops watching for new cgroups under `parent` (those found stay watched).
    public func unwatchChildren(of parent: UInt64) throws { _ = try parents.delete(parent) }

    /// Reads the refused syscalls waiting in the ring (`verify`): each record is a
    /// `vigil_syscall_event` flagged VIGIL_SYSCALL_SECCOMP_DENIED, handed to `consume` with
    /// whether its number is a 32-bit task's (not this arch's table).
    public func readDenials(_ reader: RingBufferReader, _ consume: (UnsafeRawBufferPointer, _ compat: Bool, _ number: UInt32) -> Void) throws {
        _ = try reader.drain { batch in
            for record in batch where record.count >= MemoryLayout<vigil_syscall_event>.size {
                let flags = record.loadUnaligned(fromByteOffset: MemoryLayout<vigil_syscall_event>.offset(of: \.flags)!, as: UInt16.self)
                guard flags & UInt16(VIGIL_SYSCALL_SECCOMP_DENIED.rawValue) != 0 else { continue }
                let number = record.loadUnaligned(fromByteOffset: MemoryLayout<vigil_syscall_event>.offset(of: \.nr)!, as: UInt32.self)
                consume(record, flags & UInt16(VIGIL_SYSCALL_COMPAT.rawValue) != 0, number)
            }
        }
    }

    /// Cgroups the kernel found under a watched parent and that are not ignored (the caller keeps
    /// track of the ones it decided to keep).
    public func discovered() throws -> [UInt64] {
        let found = UInt32(VIGIL_SECCOMP_DISCOVERED.rawValue), decided = UInt32(VIGIL_SECCOMP_IGNORED.rawValue)
        return try cgroups.entries().filter { $0.value.flags & found != 0 && $0.value.flags & decided == 0 }.map(\.key)
    }

    /// Stops recording a cgroup for good and drops what it recorded (a discovered cgroup of
    /// another image).
    public func ignore(cgroup id: UInt64) throws {
        var record = vigil_seccomp_record()
        record.flags = UInt32(VIGIL_SECCOMP_IGNORED.rawValue)
        try cgroups.update(id, record)
    }

    /// Forgets a cgroup (removed from the map).
    public func forget(cgroup id: UInt64) throws { _ = try cgroups.delete(id) }

    /// Whether cgroup `id` is recording (armed).
    public func isArmed(cgroup id: UInt64) throws -> Bool {
        (try cgroups.lookup(id)?.flags ?? 0) & UInt32(VIGIL_SECCOMP_ARMED.rawValue) != 0
    }

    /// What cgroup `id` recorded so far; nil when it is not watched.
    public func recording(of id: UInt64) throws -> SeccompRecording? {
        try cgroups.lookup(id).map(Self.recording)
    }

    /// A kernel record as plain values.
    static func recording(_ r: vigil_seccomp_record) -> SeccompRecording {
        func numbers<T>(_ words: T, _ count: Int) -> Set<Int> {
            withUnsafeBytes(of: words) { raw in
                var set: Set<Int> = []
                for w in 0..<count {
                    let word = raw.loadUnaligned(fromByteOffset: w * 8, as: UInt64.self)
                    guard word != 0 else { continue }
                    for b in 0..<64 where word & (1 << UInt64(b)) != 0 { set.insert(w * 64 + b) }
                }
                return set
            }
        }
        let kept = min(Int(r.personality_count), Int(VIGIL_SECCOMP_PERSONALITIES))
        let personalities = withUnsafeBytes(of: r.personality) { raw in (0..<kept).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self) } }
        let x32 = r.arches & UInt32(VIGIL_SECCOMP_ARCH_X32.rawValue) != 0 ? numbers(r.x32, Int(VIGIL_SECCOMP_X32_MAX) / 64) : []
        return SeccompRecording(arch: .current, native: numbers(r.native, Int(VIGIL_SYSCALL_MAX) / 64),
                                compat: numbers(r.compat, Int(VIGIL_SYSCALL_MAX) / 64), x32: x32, cloneFlags: r.clone_flags,
                                personalities: personalities, personalityOverflow: Int(r.personality_count) > kept)
    }

    /// The sensor's ring (verify: refused syscalls as `vigil_syscall_event` records flagged
    /// VIGIL_SYSCALL_SECCOMP_DENIED).
    public func ring() throws -> BPFMap { try variants.object.map(named: "events") }

    /// Records lost (ring full, task storage or map full), summed over CPUs.
    public func lost() throws -> UInt64 {
        try PerCPUMap<UInt32, UInt64>(variants.object.map(named: "counters")).sum(UInt32(VIGIL_COUNTER_LOST.rawValue))
    }

    /// Every hook's report: the active variant and why others did not run.
    public var reports: [HookReport] { variants.reports }

    /// Detaches every program.
    public func detach() { variants.detach() }

    /// The cgroup id of the cgroup directory `path` (its inode: what the kernel reports).
    public static func cgroupID(ofDirectory path: String) throws -> UInt64 {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw BPFError(.notFound, operation: "stat", target: path, errno: errno, message: "no such cgroup directory")
        }
        return UInt64(info.st_ino)
    }

    /// The mount of the hierarchy the sensor's ids come from (/sys/fs/cgroup/unified on a hybrid
    /// host, /sys/fs/cgroup on a v2-only one, /sys/fs/cgroup/pids for the v1 pids hierarchy).
    public var cgroupMount: String { Self.cgroupMount(cgroupHierarchy) }

    /// The mount of `hierarchy` on this host (from /proc/self/mountinfo, as `CgroupResolver`
    /// finds it): /sys/fs/cgroup/unified on a hybrid host, /sys/fs/cgroup on a v2-only one.
    public static func cgroupMount(_ hierarchy: CgroupHierarchy) -> String {
        if let mount = CgroupResolver(hierarchy: hierarchy).mount?.mountPoint { return mount }
        return hierarchy == .v1Pids ? "/sys/fs/cgroup/pids" : "/sys/fs/cgroup/unified"
    }
}
