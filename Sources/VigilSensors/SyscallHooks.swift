import VigilBPF
import VigilEvents
#if canImport(Glibc)
import Glibc
#endif

/// The syscalls sensor's hooks: per-syscall tracepoints for small sets, the generic
/// sys_enter/sys_exit hook for large ones (bpf/syscalls.bpf.c). Both write the same record.
extension Sensors {
    /// The name of the per-syscall tracepoint variant (`syscalls/sys_enter_NAME` and
    /// `sys_exit_NAME` of each wanted syscall; programs `sys_enter_tp`, `sys_exit_tp`).
    public static let perSyscallVariantName = "tracepoint"

    /// The largest set of syscalls for which the per-syscall tracepoints are chosen; larger sets
    /// (and `--event all`) get the generic hook. Syscalls nobody asked for pay the same under the
    /// per-syscall hook whatever the set's size; what grows with it is the start (two perf events
    /// per syscall) and the share of the host's syscalls that pay the per-syscall hook's dearer
    /// capture. Measured in BENCHMARKS.md ("Syscall hooks by set size"; notes on the stock-Falco
    /// row: the default rules' ~70 syscalls, fd table included, cost a getpid loop 1.17x here on
    /// per-syscall tracepoints and 2.03x on the generic hook, and their wanted syscalls were
    /// cheaper too). 128 keeps the default rules and Falco's stock rules on tracepoints.
    public static let perSyscallLimit = 128

    /// Every variant name of the syscalls sensor's hook, best first (`vigil trace --syscall-hook`).
    public static let syscallVariantNames = [perSyscallVariantName] + Sensor.syscalls.hooks.flatMap { $0.variants.map(\.name) }

    /// The syscalls sensor's hook for `capture`: the per-syscall tracepoints first when the set has
    /// at most `perSyscallLimit` syscalls, then the generic hook (`Sensor.syscalls.hooks`: tp_btf, raw_tp),
    /// which a per-syscall try falls back to when tracefs is missing or an attach fails. `only` keeps the variants of these names (nil: every one).
    public static func syscallHooks(for capture: SyscallCapture, only: Set<String>? = nil) -> [Hook] {
        Sensor.syscalls.hooks.map { hook in
            let generic = hook.variants
            let variants = capture.numbers.count <= perSyscallLimit ? [perSyscallVariant(capture)] + generic : generic
            return Hook(hook.name, variants: variants.filter { only?.contains($0.name) ?? true })
        }
    }

    /// The syscalls sensor's hook with the one variant `name` (`vigil trace --syscall-hook`, tests
    /// that pin a hook): the per-syscall tracepoints even for a set above `perSyscallLimit`.
    public static func syscallHooks(for capture: SyscallCapture, forcing name: String) -> [Hook] {
        name == perSyscallVariantName ? Sensor.syscalls.hooks.map { Hook($0.name, variants: [perSyscallVariant(capture)]) }
            : syscallHooks(for: capture, only: [name])
    }

    /// The wanted syscalls the per-syscall hook does not see because this kernel has no tracepoint
    /// for them: ones it does not implement, whose calls fail with ENOSYS (reported, never
    /// silent; `SyscallTracepoints.attach`). Empty under the generic hook.
    public var syscallsWithoutTracepoint: [String] {
        guard let sensor = loaded.first(where: { $0.name == Sensor.syscalls.name })?.variants,
              sensor.reports.first?.active == Self.perSyscallVariantName, let capture = syscallCapture else { return [] }
        return SyscallTracepoints.uncovered(sensor, capture.numbers).map { Syscalls.numbered($0)?.nameString ?? "#\($0)" }
    }

    /// The per-syscall variant for `capture` (needs tracefs: `attach:tracepoint`).
    public static func perSyscallVariant(_ capture: SyscallCapture) -> Variant {
        // Exits first: an entry that fires already has its exit.
        Variant(perSyscallVariantName, requires: [.attachTracepoint], programs: [SyscallTracepoints.exitProgram, SyscallTracepoints.enterProgram],
                attachEach: { program in try SyscallTracepoints.attach(program, numbers: capture.numbers) })
    }
}

/// Attaching the syscalls sensor's per-syscall programs to the tracepoints of chosen syscalls.
enum SyscallTracepoints {
    /// The program attached to syscalls/sys_enter_NAME.
    static let enterProgram = "sys_enter_tp"
    /// The program attached to syscalls/sys_exit_NAME.
    static let exitProgram = "sys_exit_tp"

    /// The tracefs event name of syscall `number` without its sys_enter_/sys_exit_ prefix (the
    /// table's tracefs column, e.g. `newstat` for stat; else the syscall's name).
    static func event(_ number: Int) -> String? {
        guard let syscall = Syscalls.numbered(number) else { return nil }
        return syscall.tracefs?.description ?? syscall.nameString
    }

    /// The tracepoint `program` attaches to for `number`, e.g. `sys_exit_openat`.
    static func tracepoint(_ program: BPFProgram, _ number: Int) -> String? {
        event(number).map { (program.name == enterProgram ? "sys_enter_" : "sys_exit_") + $0 }
    }

    /// Attaches `program` to the tracepoint of each of `numbers` (ascending), each tracepoint held
    /// (`TracepointHolds`, owned by the program's object: detaching it later, when a rule change
    /// drops the syscall or the sensor changes hook, does not wait for grace periods on the event
    /// thread). A syscall this kernel
    /// has no tracepoint for is skipped (`uncovered` lists them, `vigil trace` says so): every
    /// syscall a kernel implements (SYSCALL_DEFINE) has its two tracepoints, so one without is
    /// one this kernel does not implement (e.g. init_module without CONFIG_MODULES), whose calls
    /// only fail with ENOSYS.
    /// - Throws: `BPFError` of kind `.attach`; the links made so far are released.
    static func attach(_ program: BPFProgram, numbers: Set<Int>) throws -> [BPFLink] {
        var links: [BPFLink] = []
        for number in numbers.sorted() {
            guard let name = tracepoint(program, number) else { continue }
            TracepointHolds.hold(category: "syscalls", name: name, owner: program.object)
            do {
                links.append(try program.attachTracepoint(category: "syscalls", name: name))
            } catch let error as BPFError where error.errno == ENOENT {
                continue
            }
        }
        return links
    }

    /// The link suffix of syscall `number`'s tracepoint for `direction` (`enter` or `exit`).
    private static func suffix(_ direction: String, _ number: Int) -> String? {
        event(number).map { "tracepoint syscalls/sys_\(direction)_\($0)" }
    }

    /// The syscalls of `numbers` a per-syscall sensor has no entry tracepoint attached for (this
    /// kernel has none): it does not capture them.
    static func uncovered(_ sensor: LoadedVariants, _ numbers: Set<Int>) -> [Int] {
        numbers.sorted().filter { number in
            guard let suffix = suffix("enter", number) else { return true }
            return !sensor.links.contains { $0.description.hasSuffix(suffix) }
        }
    }

    /// Moves a running per-syscall sensor from `old` to `new` syscalls: the new ones' tracepoints
    /// are attached (exits first), then the dropped ones' detached (entries first); the links of
    /// syscalls in both stay untouched, so none of their events is lost.
    static func retarget(_ sensor: LoadedVariants, from old: Set<Int>, to new: SyscallCapture) throws {
        let added = new.numbers.subtracting(old)
        var made: [BPFLink] = []
        for program in [exitProgram, enterProgram] {
            made += try attach(sensor.object.program(named: program), numbers: added)
        }
        sensor.add(made)
        // Every entry together, then every exit: the releases of each batch share their grace periods.
        let dropped = old.subtracting(new.numbers)
        for direction in ["enter", "exit"] {
            let suffixes = Set(dropped.compactMap { suffix(direction, $0) })
            sensor.detach { link in suffixes.contains { link.description.hasSuffix($0) } }
        }
    }
}
