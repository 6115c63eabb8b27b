import Synchronization
import VigilBPF
import VigilEvents
#if canImport(Glibc)
import Glibc
#endif

/// The syscalls sensor's hooks: per-syscall hooks for small sets (kprobes on the syscalls' own
/// functions where the kernel has kprobes, else the syscalls' tracepoints), the generic
/// sys_enter/sys_exit hook for large ones (bpf/syscalls.bpf.c). All write the same record.
extension Sensors {
    /// The name of the per-syscall tracepoint variant (`syscalls/sys_enter_NAME` and
    /// `sys_exit_NAME` of each wanted syscall; programs `sys_enter_tp`, `sys_exit_tp`).
    public static let perSyscallVariantName = "tracepoint"
    /// The name of the per-syscall kprobe variant: a kprobe and a kretprobe on each wanted
    /// syscall's function (`__x64_sys_NAME`; programs `sys_enter_kprobe`, `sys_exit_kprobe`).
    public static let kprobeVariantName = "kprobe"
    /// The name of the per-syscall kprobe.multi variant: one kprobe.multi link on every wanted
    /// syscall's function and one kretprobe.multi link on their returns (programs
    /// `sys_enter_kprobe_multi`, `sys_exit_kprobe_multi`).
    public static let kprobeMultiVariantName = "kprobe.multi"
    /// The per-syscall variants, best first: only the wanted syscalls run a program. A syscall
    /// tracepoint, attached, sends every syscall of the host through the kernel's slow entry path
    /// (TIF_SYSCALL_TRACEPOINT); a kprobe on a syscall's function costs only that syscall's calls.
    public static let perSyscallVariantNames = [kprobeMultiVariantName, kprobeVariantName, perSyscallVariantName]

    /// The largest set of syscalls for which the per-syscall hooks are chosen; larger sets
    /// (and `--event all`) get the generic hook. Syscalls nobody asked for pay the same under the
    /// per-syscall hook whatever the set's size; what grows with it is the start (two perf events
    /// per syscall) and the share of the host's syscalls that pay the per-syscall hook's dearer
    /// capture. Measured in BENCHMARKS.md ("Syscall hooks by set size"; notes on the stock-Falco
    /// row: the default rules' ~70 syscalls, fd table included, cost a getpid loop 1.17x here on
    /// per-syscall tracepoints and 2.03x on the generic hook, and their wanted syscalls were
    /// cheaper too). 128 keeps the default rules and Falco's stock rules on tracepoints.
    public static let perSyscallLimit = 128

    /// Every variant name of the syscalls sensor's hook, best first (`vigil trace --syscall-hook`).
    public static let syscallVariantNames = perSyscallVariantNames + Sensor.syscalls.hooks.flatMap { $0.variants.map(\.name) }

    /// The syscalls sensor's hook for `capture`: the per-syscall variants first when the set has
    /// at most `perSyscallLimit` syscalls (kprobe.multi, kprobe, tracepoint: `perSyscallVariants`),
    /// then the generic hook (`Sensor.syscalls.hooks`: tp_btf, raw_tp), which a per-syscall try
    /// falls back to when the kernel has neither kprobes nor tracefs or an attach fails. `only`
    /// keeps the variants of these names (nil: every one).
    public static func syscallHooks(for capture: SyscallCapture, only: Set<String>? = nil) -> [Hook] {
        Sensor.syscalls.hooks.map { hook in
            let generic = hook.variants
            let variants = capture.numbers.count <= perSyscallLimit ? perSyscallVariants(capture) + generic : generic
            return Hook(hook.name, variants: variants.filter { only?.contains($0.name) ?? true })
        }
    }

    /// The syscalls sensor's hook with the one variant `name` (`vigil trace --syscall-hook`, tests
    /// that pin a hook): a per-syscall one even for a set above `perSyscallLimit`.
    public static func syscallHooks(for capture: SyscallCapture, forcing name: String) -> [Hook] {
        guard let variant = perSyscallVariants(capture).first(where: { $0.name == name }) else { return syscallHooks(for: capture, only: [name]) }
        return Sensor.syscalls.hooks.map { Hook($0.name, variants: [variant]) }
    }

    /// The wanted syscalls the active per-syscall hook does not see because this kernel has no
    /// tracepoint (tracepoint variant) or no function (kprobe variants) for them: ones it does not
    /// implement, whose calls fail with ENOSYS (reported, never silent). What the attach and each
    /// retarget skipped (`LoadedVariants.skippedTargets`; `SyscallTracepoints.attach`,
    /// `SyscallKprobes.targets`), in syscall number order. Empty under the generic hook.
    public var syscallsNotCaptured: [String] {
        loaded.first(where: { $0.name == Sensor.syscalls.name })?.variants.skippedTargets ?? []
    }

    /// The name `syscallsNotCaptured` gives syscall `number`.
    static func skippedName(_ number: Int) -> String { Syscalls.numbered(number)?.nameString ?? "#\(number)" }

    /// The skipped targets of a per-syscall sensor moved from `old` to `new` syscalls, given what
    /// the attach of the added ones skipped (`added`): the kept ones' stay, the dropped ones' go.
    static func skippedAfterRetarget(_ skipped: [String], from old: Set<Int>, to new: Set<Int>, added: [String]) -> [String] {
        let dropped = Set(old.subtracting(new).map(skippedName))
        let names = skipped.filter { !dropped.contains($0) } + added.filter { !skipped.contains($0) }
        let number = { (name: String) in Syscalls.named(name)?.number() ?? Int(name.dropFirst()) ?? Int.max }
        return names.sorted { number($0) < number($1) }
    }

    /// The syscalls sensor's program on every task's exit (sched_process_exit; `_tp_btf` and
    /// `_raw_tp` in the generic hook, `_raw_tp` in the per-syscall ones): a thread that exits with a
    /// syscall pending whose return a kprobe variant missed has its event counted lost.
    public static let syscallTaskExitProgram = "task_exit"

    /// The per-syscall variants for `capture`, best first: kprobe.multi (needs
    /// `attach:kprobe.multi`), kprobe (`attach:kprobe`), tracepoint (`attach:tracepoint`). Each
    /// also attaches the task exit program (`syscallTaskExitProgram`, raw tracepoint).
    public static func perSyscallVariants(_ capture: SyscallCapture) -> [Variant] {
        [perSyscallVariant(kprobeMultiVariantName, .attachKprobeMulti, SyscallKprobes.multiExitProgram, SyscallKprobes.multiEnterProgram) {
             try SyscallKprobes.attachMulti($0, numbers: capture.numbers(attaching: $0.name))
         },
         perSyscallVariant(kprobeVariantName, .attachKprobe, SyscallKprobes.exitProgram, SyscallKprobes.enterProgram) {
             try SyscallKprobes.attach($0, numbers: capture.numbers(attaching: $0.name))
         },
         perSyscallVariant(capture)]
    }

    /// The per-syscall tracepoint variant for `capture` (needs tracefs: `attach:tracepoint`).
    public static func perSyscallVariant(_ capture: SyscallCapture) -> Variant {
        perSyscallVariant(perSyscallVariantName, .attachTracepoint, SyscallTracepoints.exitProgram, SyscallTracepoints.enterProgram) {
            try SyscallTracepoints.attach($0, numbers: capture.numbers(attaching: $0.name))
        }
    }

    /// A per-syscall variant: `exit` and `enter` attached by `attach` (exits first: an entry
    /// that fires already has its exit), then the task exit program on its raw tracepoint.
    private static func perSyscallVariant(_ name: String, _ feature: Feature, _ exit: String, _ enter: String,
                                          attach: @escaping @Sendable (BPFProgram) throws -> Attachment) -> Variant {
        let taskExit = syscallTaskExitProgram + "_raw_tp"
        return Variant(name, requires: [feature, .attachRawTracepoint], programs: [exit, enter, taskExit],
                       attachTargets: { program in program.name == taskExit ? Attachment(links: [try program.attach()]) : try attach(program) })
    }

    /// Moves the running syscalls sensor, on per-syscall variant `active`, from `old` to `new`
    /// syscalls without losing or doubling an event of a syscall in both (`updateSyscalls`).
    /// Keeps the sensor's skipped syscalls (`syscallsNotCaptured`) current.
    static func retargetPerSyscall(_ active: String, _ sensor: LoadedVariants, from old: SyscallCapture?, to new: SyscallCapture) throws {
        let added: [String]
        switch active {
        case kprobeMultiVariantName: added = try SyscallKprobes.retargetMulti(sensor, to: new)
        case kprobeVariantName: added = try SyscallKprobes.retarget(sensor, from: old, to: new)
        default: added = try SyscallTracepoints.retarget(sensor, from: old, to: new)
        }
        sensor.skippedTargets = skippedAfterRetarget(sensor.skippedTargets, from: old?.numbers ?? [], to: new.numbers, added: added)
    }
}

extension SyscallCapture {
    /// The per-syscall hooks' entry programs: attached to `entryNumbers` alone.
    static let entryPrograms: Set<String> = [SyscallKprobes.multiEnterProgram, SyscallKprobes.enterProgram, SyscallTracepoints.enterProgram]

    /// The syscalls the per-syscall hook's `program` attaches to: `entryNumbers` for an entry
    /// program, every one for an exit program.
    func numbers(attaching program: String) -> Set<Int> {
        Self.entryPrograms.contains(program) ? entryNumbers : numbers
    }
}

/// Attaching the syscalls sensor's per-syscall kprobe programs to the functions of chosen
/// syscalls: `__x64_sys_NAME` (x86_64) or `__arm64_sys_NAME` (arm64), whose one argument is the
/// saved user registers.
enum SyscallKprobes {
    /// The kprobe program on each wanted syscall's function.
    static let enterProgram = "sys_enter_kprobe"
    /// The kretprobe program on each wanted syscall's function.
    static let exitProgram = "sys_exit_kprobe"
    /// The kprobe.multi program on every wanted syscall's function.
    static let multiEnterProgram = "sys_enter_kprobe_multi"
    /// The kretprobe.multi program on every wanted syscall's function.
    static let multiExitProgram = "sys_exit_kprobe_multi"

    #if arch(arm64)
    /// The prefix of a syscall's function on this arch (the syscall wrapper SYSCALL_DEFINE makes).
    static let prefix = "__arm64_sys_"
    #else
    /// The prefix of a syscall's function on this arch (the syscall wrapper SYSCALL_DEFINE makes).
    static let prefix = "__x64_sys_"
    #endif

    /// The syscall functions of this kernel (`prefix` names of code in /proc/kallsyms, read
    /// once): SYSCALL_DEFINE names the function as it names the tracepoints (`newstat` for stat).
    /// Weak symbols are left out: COND_SYSCALL's stubs of syscalls this kernel does not implement
    /// (init_module without CONFIG_MODULES), which only return ENOSYS.
    static let kernelFunctions: Set<String> = {
        var names = Set<String>()
        SystemFile.forEachLine("/proc/kallsyms") { line in
            // "ADDRESS TYPE NAME[\t[MODULE]]"
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count >= 3, fields[1] == "T" || fields[1] == "t", fields[2].hasPrefix(prefix) { names.insert(String(fields[2])) }
            return true
        }
        return names
    }()

    /// The function of syscall `number` on this arch, e.g. `__x64_sys_openat`.
    static func function(_ number: Int) -> String? {
        SyscallTracepoints.event(number).map { prefix + $0 }
    }

    /// The functions of `numbers` (ascending) this kernel has, and the syscalls it has none for
    /// (it does not implement them: their calls fail with ENOSYS). With tracefs mounted, a
    /// syscall also needs its tracepoint: the kernel makes those only for the functions its
    /// syscall table calls (x86_64 has `__x64_sys_set_thread_area`, for no 64-bit syscall). What
    /// the attach skips is what `Sensors.syscallsNotCaptured` reports.
    static func targets(_ numbers: Set<Int>) -> (functions: [String], missing: [Int]) {
        var functions: [String] = []
        var missing: [Int] = []
        let events = Tracefs.path.map { $0 + "/events/syscalls/sys_enter_" }
        for number in numbers.sorted() {
            if let event = SyscallTracepoints.event(number), kernelFunctions.contains(prefix + event),
               events.map({ access($0 + event, F_OK) == 0 }) ?? true {
                functions.append(prefix + event)
            } else {
                missing.append(number)
            }
        }
        return (functions, missing)
    }

    /// Attaches `program` (`enterProgram`: kprobe, `exitProgram`: kretprobe) to the function of
    /// each of `numbers` this kernel has (`targets`).
    /// - Throws: `BPFError` of kind `.attach`; the links made so far are released.
    static func attach(_ program: BPFProgram, numbers: Set<Int>) throws -> Attachment {
        let (functions, missing) = targets(numbers)
        var links: [BPFLink] = []
        do {
            for function in functions { links.append(try program.attachKprobe(function: function, returnProbe: program.name == exitProgram)) }
        } catch {
            BPFLink.detachTogether(links)
            throw error
        }
        return Attachment(links: links, skipped: missing.map(Sensors.skippedName))
    }

    /// Attaches `program` (`multiEnterProgram` or `multiExitProgram`) with one link to the
    /// functions of `numbers` this kernel has; no link when it has none. The link's cookie is a
    /// new tag (`nextTag`): the entries of two links running together while the set changes
    /// (`retargetMulti`) are one call's, not a missed return (bpf/syscalls.bpf.c, `pending.tag`).
    /// - Throws: `BPFError` of kind `.attach`.
    static func attachMulti(_ program: BPFProgram, numbers: Set<Int>) throws -> Attachment {
        let (functions, missing) = targets(numbers)
        let skipped = missing.map(Sensors.skippedName)
        guard !functions.isEmpty else { return Attachment(links: [], skipped: skipped) }
        return Attachment(links: [try program.attachKprobeMulti(functions: functions, returnProbe: program.name == multiExitProgram, cookie: UInt64(nextTag()))],
                          skipped: skipped)
    }

    private static let tags = Atomic<UInt32>(0)

    /// A tag no other attachment of the syscalls sensor in this process has (the object's
    /// `vigil_syscalls_tag`, a kprobe.multi link's cookie), never 0.
    static func nextTag() -> UInt32 { tags.add(1, ordering: .relaxed).newValue }

    /// Moves a running kprobe sensor from `old` to `new` syscalls: the new ones' kretprobes then
    /// kprobes are attached, then the dropped ones' detached (entries first); the links of
    /// syscalls in both stay untouched, so none of their events is lost. Each program has its
    /// own set (`SyscallCapture.numbers(attaching:)`). Returns the added syscalls the kernel has
    /// no function for.
    static func retarget(_ sensor: LoadedVariants, from old: SyscallCapture?, to new: SyscallCapture) throws -> [String] {
        var made: [BPFLink] = [], skipped: [String] = []
        for program in [exitProgram, enterProgram] {
            let attachment = try attach(sensor.object.program(named: program), numbers: new.numbers(attaching: program).subtracting(old?.numbers(attaching: program) ?? []))
            made += attachment.links
            if program == exitProgram { skipped = attachment.skipped }
        }
        sensor.add(made)
        for (program, probe) in [(enterProgram, "kprobe"), (exitProgram, "kretprobe")] {
            let dropped = targets((old?.numbers(attaching: program) ?? []).subtracting(new.numbers(attaching: program))).functions
            let suffixes = Set(dropped.map { "-> \(probe) \($0)" })
            sensor.detach { link in suffixes.contains { link.description.hasSuffix($0) } }
        }
        return skipped
    }

    /// Moves a running kprobe.multi sensor to `new` syscalls: a link's functions are fixed, so
    /// new links for the whole new set are attached (exit first), then the old ones detached. In
    /// between a syscall in both sets runs each program twice: the second entry rewrites the same
    /// pending record, and the second exit finds it already sent (`on_exit`), so no event is lost
    /// or doubled. Returns the syscalls of the new set the kernel has no function for.
    static func retargetMulti(_ sensor: LoadedVariants, to new: SyscallCapture) throws -> [String] {
        let old = sensor.links.filter { $0.description.contains("probe.multi ") } // kprobe.multi, kretprobe.multi: not the task exit's
        var made: [BPFLink] = [], skipped: [String] = []
        do {
            for program in [multiExitProgram, multiEnterProgram] {
                let attachment = try attachMulti(sensor.object.program(named: program), numbers: new.numbers(attaching: program))
                made += attachment.links
                if program == multiExitProgram { skipped = attachment.skipped }
            }
        } catch {
            BPFLink.detachTogether(made)
            throw error
        }
        sensor.add(made)
        sensor.detach { link in old.contains { $0 === link } }
        return skipped
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
    /// has no tracepoint for is skipped (the attachment names it, `vigil trace` says so): every
    /// syscall a kernel implements (SYSCALL_DEFINE) has its two tracepoints, so one without is
    /// one this kernel does not implement (e.g. init_module without CONFIG_MODULES), whose calls
    /// only fail with ENOSYS.
    /// - Throws: `BPFError` of kind `.attach`; the links made so far are released.
    static func attach(_ program: BPFProgram, numbers: Set<Int>) throws -> Attachment {
        var links: [BPFLink] = [], skipped: [String] = []
        for number in numbers.sorted() {
            guard let name = tracepoint(program, number) else {
                skipped.append(Sensors.skippedName(number))
                continue
            }
            TracepointHolds.hold(category: "syscalls", name: name, owner: program.object)
            do {
                links.append(try program.attachTracepoint(category: "syscalls", name: name))
            } catch let error as BPFError where error.errno == ENOENT {
                skipped.append(Sensors.skippedName(number))
            }
        }
        return Attachment(links: links, skipped: skipped)
    }

    /// The link suffix of syscall `number`'s tracepoint for `direction` (`enter` or `exit`).
    private static func suffix(_ direction: String, _ number: Int) -> String? {
        event(number).map { "tracepoint syscalls/sys_\(direction)_\($0)" }
    }

    /// Moves a running per-syscall sensor from `old` to `new` syscalls: the new ones' tracepoints
    /// are attached (exits first), then the dropped ones' detached (entries first); the links of
    /// syscalls in both stay untouched, so none of their events is lost. Returns the added
    /// syscalls the kernel has no tracepoint for.
    static func retarget(_ sensor: LoadedVariants, from old: SyscallCapture?, to new: SyscallCapture) throws -> [String] {
        var made: [BPFLink] = [], skipped: [String] = []
        for program in [exitProgram, enterProgram] {
            let attachment = try attach(sensor.object.program(named: program), numbers: new.numbers(attaching: program).subtracting(old?.numbers(attaching: program) ?? []))
            made += attachment.links
            if program == exitProgram { skipped = attachment.skipped }
        }
        sensor.add(made)
        // Every entry together, then every exit: the releases of each batch share their grace periods.
        for (program, direction) in [(enterProgram, "enter"), (exitProgram, "exit")] {
            let dropped = (old?.numbers(attaching: program) ?? []).subtracting(new.numbers(attaching: program))
            let suffixes = Set(dropped.compactMap { suffix(direction, $0) })
            sensor.detach { link in suffixes.contains { link.description.hasSuffix($0) } }
        }
        return skipped
    }
}
