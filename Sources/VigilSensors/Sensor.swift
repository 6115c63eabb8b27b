import VigilBPF
import VigilEvents

/// One of Vigil's sensors as data: its embedded BPF object, its hooks (variants per hook, tried in
/// order by `VariantLoader`), the event kinds it emits, which ring it writes, when `Sensors` loads
/// it and the writers of its own maps. `Sensor.builtIn` is the registry: `Sensors` loads, updates
/// and releases the sensors of the shared ring from it in one loop, and `FIMSensor` and
/// `SeccompRecorder` load theirs through the same `load`. Adding a sensor is one entry there and
/// its BPF object (docs/ARCHITECTURE.md, "Sensors and the registry").
public struct Sensor: Sendable {
    /// The ring a sensor's records go to.
    public enum Ring: Sendable, Equatable {
        /// `Sensors`' one ring (`Sensors.ring`), with the shared filter maps: its events arrive in
        /// the one time-ordered stream and meet the same filters.
        case shared
        /// A ring of its own, read by the type that drives it, and no shared filter maps.
        case own
    }

    /// The embedded object's name (`EmbeddedObjects`, bpf/NAME.bpf.c), also the sensor's name in
    /// counters, reports and `Sensors.loaded`.
    public let name: String
    /// Its hooks, each with its variants in order of preference (a caller may pass others:
    /// `Sensors.init`'s `hooks`, `load(hooks:)`).
    public let hooks: [Hook]
    /// The event kinds made from its records. For a sensor on its own ring, the kinds its driver
    /// makes from them in userspace (`EventKindDescriptor.hasRecord` is false for those).
    public let kinds: KindSet
    /// Where its records go.
    public let ring: Ring
    /// Whether `Sensors` loads it for a filter and the kinds its consumer wants; nil: `Sensors`
    /// never loads it (the type named in its doc drives it).
    let needed: (@Sendable (KernelFilter, KindSet) -> Bool)?
    /// Its hooks for a filter, when they depend on it (the syscalls sensor's, on the set's size);
    /// nil: `hooks`.
    let hooksForFilter: (@Sendable (KernelFilter) -> [Hook])?
    /// Runs after load, before any program attaches: writes what a filter asks of it into its own
    /// maps, keeping what it wrote in the state (for `update`), and readies what its records need.
    let install: (@Sendable (BPFObject, KernelFilter, inout SensorMapState) throws -> Void)?
    /// Applies a changed filter to it while it stays loaded (its index in `Sensors.loaded`): in
    /// place, or by loading it anew (`Sensors.apply`).
    let update: (@Sendable (Sensors, Int, KernelFilter) throws -> Void)?
    /// Its maps that only Vigil writes (the programs only read them), which the integrity check
    /// compares with what Vigil wrote (`Sensors.checkIntegrity`).
    let watchedMaps: [String]
    /// Runs once it is detached and released, with its object: when `Sensors.apply` unloads it
    /// and when the `Sensors` that loaded it goes away (the syscalls sensor releases the
    /// tracepoint holds that object owns).
    let unload: (@Sendable (BPFObject) -> Void)?
    /// Runs just before its links are detached (`Sensors.detach(_:)`), with its object: stops
    /// what would be seen half while the links go (the syscalls sensor wants no syscall then).
    let beforeDetach: (@Sendable (BPFObject) throws -> Void)?
    /// Runs once its variants are attached: attaches what no variant can name in advance (the
    /// shell sensor's uprobes, one per bash binary found), keeping what it needs in the state;
    /// the links it returns are the loaded sensor's (`LoadedVariants.add`).
    let attach: (@Sendable (BPFObject, inout SensorMapState) -> [BPFLink])?

    init(name: String, hooks: [Hook], kinds: KindSet, ring: Ring, needed: (@Sendable (KernelFilter, KindSet) -> Bool)?,
         hooksForFilter: (@Sendable (KernelFilter) -> [Hook])? = nil,
         install: (@Sendable (BPFObject, KernelFilter, inout SensorMapState) throws -> Void)? = nil,
         update: (@Sendable (Sensors, Int, KernelFilter) throws -> Void)? = nil, watchedMaps: [String] = [],
         unload: (@Sendable (BPFObject) -> Void)? = nil, beforeDetach: (@Sendable (BPFObject) throws -> Void)? = nil,
         attach: (@Sendable (BPFObject, inout SensorMapState) -> [BPFLink])? = nil) {
        self.name = name
        self.hooks = hooks
        self.kinds = kinds
        self.ring = ring
        self.needed = needed
        self.hooksForFilter = hooksForFilter
        self.install = install
        self.update = update
        self.watchedMaps = watchedMaps
        self.unload = unload
        self.beforeDetach = beforeDetach
        self.attach = attach
    }

    /// Whether `Sensors` loads it for `filter` and the consumer's `kinds` (false for a sensor
    /// `Sensors` does not drive).
    public func isNeeded(_ filter: KernelFilter, kinds: KindSet) -> Bool { needed?(filter, kinds) ?? false }

    /// Its hooks for `filter`: the syscalls sensor's depend on the set's size, the others' are `hooks`.
    public func hooks(for filter: KernelFilter) -> [Hook] { hooksForFilter?(filter) ?? hooks }

    /// Opens its embedded object and loads it through `VariantLoader`: every sensor loads this way.
    /// - Parameters:
    ///   - hooks: the hooks to load (nil: `hooks`).
    ///   - configure: sets globals and map sizes of a freshly opened object.
    ///   - beforeAttach: fills maps once loaded, before anything attaches.
    /// - Throws: `BPFError` when a hook has no working variant.
    public func load(hooks: [Hook]? = nil, probes: FeatureProbes = .shared, configure: @escaping (BPFObject) throws -> Void = { _ in },
                     beforeAttach: @escaping (BPFObject) throws -> Void = { _ in }) throws -> LoadedVariants {
        let name = name
        return try VariantLoader(open: { try EmbeddedObjects.open(name) }, hooks: hooks ?? self.hooks, probes: probes,
                                 configure: configure, beforeAttach: beforeAttach).load()
    }

    /// The registry entry named `name`.
    public static func named(_ name: String) -> Sensor? { builtIn.first { $0.name == name } }
}

/// What a sensor's map writers installed (`Sensor.install`), kept with the loaded sensor for its
/// in-place updates.
struct SensorMapState {
    /// The file sensor's path maps.
    var openPaths = InstalledOpenPaths()
    /// The shell sensor's bash binaries and what was tried (`ShellBinaries`).
    var shells: ShellBinaries?
}

extension Sensor {
    /// Every sensor: those of the shared ring in `Sensors`' load order, then the ones with a ring
    /// of their own.
    public static let builtIn: [Sensor] = [process, file, conn, syscalls, shell, fim, seccomp]

    /// The process sensor (bpf/process.bpf.c): exec, fork and exit on the scheduler's BTF
    /// tracepoints, else raw tracepoints. Always loaded: the process table needs its state
    /// changes whatever a consumer shows, and its object holds the shared maps' definitions.
    public static let process = Sensor(
        name: "process",
        hooks: ["exec", "fork", "exit"].map { Hook.btfOrRaw($0, program: $0) },
        kinds: [.exec, .fork, .exit], ring: .shared, needed: { _, _ in true })

    /// The file sensor's tracepoint variant on `arch`: the exit programs of the open syscalls the
    /// arch has (arm64 has no open).
    public static func openExitPrograms(on arch: SyscallArch = .current) -> [String] {
        Syscalls.present(["openat", "open", "openat2"], on: arch).map { "\($0)_exit" }
    }

    /// The file sensor (bpf/file.bpf.c): fexit on do_sys_openat2 where trampolines work, else the
    /// open syscalls' own exit tracepoints (the arguments read from the saved user registers).
    /// Loaded when a consumer wants opens. Its writers: the rules' path pushdown (`OpenPathMaps`),
    /// installed before attach and swapped in place when the filter changes.
    public static let file = Sensor(
        name: "file",
        hooks: [
            Hook("open", variants: [
                Variant("fexit", requires: [.attachFentry], programs: ["open_fexit"]),
                Variant("tracepoint", requires: [.attachTracepoint], programs: openExitPrograms()),
            ]),
        ],
        kinds: [.open], ring: .shared, needed: { _, kinds in kinds.contains(.open) },
        install: { object, filter, state in try OpenPathMaps(object).install(filter.openPaths, replacing: &state.openPaths) },
        update: { sensors, index, filter in try sensors.swapOpenPaths(at: index, filter.openPaths) },
        watchedMaps: ["open_paths", "open_basenames", "open_inodes", "kill_comms"])

    /// The conn sensor (bpf/conn.bpf.c): TCP state changes (sock/inet_sock_set_state),
    /// retransmissions (tcp/tcp_retransmit_skb), accept's exit tracepoints (the accepting task)
    /// and drops (skb/kfree_skb), each tp_btf where BTF tracepoints attach, else raw_tp or the
    /// tracepoint. Loaded when a consumer wants its kinds (then kept) or the filter asks for it
    /// (`KernelFilter.connections`: released when it no longer does).
    public static let conn = Sensor(
        name: "conn",
        hooks: [
            .btfOrRaw("state", program: "state"),
            Hook("accept", variants: [
                Variant("tracepoint", requires: [.attachTracepoint], programs: ["accept4_exit", "accept_exit"]),
            ]),
            Hook("drop", variants: [
                Variant("tp_btf", requires: [.attachTpBTF], programs: ["drop_tp_btf"]),
                Variant("tracepoint", requires: [.attachTracepoint], programs: ["drop_tracepoint"]),
            ]),
            .btfOrRaw("retransmit", program: "retransmit"),
        ],
        kinds: [.conn, .tcpdrop], ring: .shared,
        needed: { filter, kinds in filter.connections || !kinds.isDisjoint(with: [.conn, .tcpdrop]) },
        install: { _, _, _ in Sensors.dropReasonsInstalled }) // the drop reasons' names, for the decoder

    /// The syscalls sensor (bpf/syscalls.bpf.c): any syscall of `KernelFilter.syscalls`, on the
    /// generic sys_enter/sys_exit hooks (tp_btf, else raw_tp; these are `hooks`) or, for small
    /// sets, per-syscall tracepoints first (`Sensors.syscallHooks(for:)`). Loaded while the filter
    /// names a syscall. Its writers: the bitmap and specs (`SyscallCapture.write`), rewritten in
    /// place, or the sensor loaded anew on the other hook, when the set changes. Unloaded, it
    /// releases the tracepoints it held (`TracepointHolds`).
    public static let syscalls = Sensor(
        name: "syscalls",
        // The exits attach first (programs attach in order): a call entered while its exit was
        // not yet attached would be counted lost at the thread's next entry (`beforeDetach`
        // likewise on the way out).
        hooks: [.btfOrRaw("syscalls", programs: ["sys_exit", Sensors.syscallTaskExitProgram, "sys_enter"])],
        kinds: [.syscall], ring: .shared, needed: { filter, _ in Sensors.capture(filter.syscalls) != nil },
        hooksForFilter: { filter in Sensors.capture(filter.syscalls).map { Sensors.syscallHooks(for: $0) } ?? [] },
        install: { object, filter, _ in try Sensors.capture(filter.syscalls)?.write(to: object) },
        update: { sensors, index, filter in try sensors.updateSyscalls(at: index, Sensors.capture(filter.syscalls)) },
        // No rule wants a syscall: the held syscall tracepoints would keep the host's syscalls on
        // the tracepoint path for nothing. Only this sensor's: another `Sensors` may hold them too.
        unload: { object in TracepointHolds.release(category: "syscalls", owner: object) },
        beforeDetach: { object in try SyscallCapture.clearBitmap(of: object) })

    /// The shell sensor (bpf/shell.bpf.c): the lines interactive bash shells read, from uprobes on
    /// readline's entry and return. A uprobe belongs to one file: the programs are loaded by the
    /// variant and attached per bash binary by `ShellBinaries` (the host's, the containers' running
    /// at load, and any shell executed later: `Sensors.noteExec`). Loaded when a consumer wants
    /// shell lines (kept) or the filter asks for them (`KernelFilter.shells`: released when it no
    /// longer does).
    public static let shell = Sensor(
        name: "shell",
        hooks: [
            Hook("readline", variants: [
                Variant("uprobe", requires: [.attachUprobe], programs: ["readline_entry", "readline_return"], attachEach: { _ in [] }),
            ]),
        ],
        kinds: [.shell], ring: .shared,
        needed: { filter, kinds in filter.shells || kinds.contains(.shell) },
        attach: { object, state in
            let binaries = ShellBinaries()
            state.shells = binaries
            return binaries.attachAtLoad(object)
        })

    /// The fim sensor (bpf/fim.bpf.c), driven by `FIMSensor`: changes to watched files matched in
    /// the kernel, on its own ring; the daemon's `FIMMonitor` makes the `fim` events from them.
    /// One hook, one chain. `fexit`: vfs_write's exit for write and pwrite64 (the file comes
    /// typed: the cheapest test of an unwatched write), the syscalls' exit tracepoints for the
    /// rest; `tracepoint`: every syscall's exit tracepoint (`FIMSensor.tracepointPrograms`).
    public static let fim = Sensor(
        name: "fim",
        hooks: [
            Hook("fim", variants: [
                Variant("fexit", requires: [.attachFentry, .attachTracepoint],
                        programs: ["vfs_write_fexit"] + FIMSensor.tracepointPrograms.filter { $0 != "write_exit" && $0 != "pwrite64_exit" },
                        attachTargets: FIMSensor.attachExit),
                Variant("tracepoint", requires: [.attachTracepoint], programs: FIMSensor.tracepointPrograms,
                        attachTargets: FIMSensor.attachExit),
            ]),
        ],
        kinds: [.fim], ring: .own, needed: nil)

    /// The seccomp sensor (bpf/seccomp.bpf.c), driven by `SeccompRecorder`: records the syscalls
    /// of watched cgroups as bits in a map (no events); its own ring carries only `verify`'s
    /// refused syscalls (`SeccompRecorder.verifyHooks`). Its hooks: every syscall's entry
    /// (`SeccompRecorder.enterHook`: fentry on the syscall dispatch where it attaches, else the
    /// generic sys_enter tracepoint), the scheduler's exec tracepoint and cgroup_attach_task,
    /// each tp_btf, else raw_tp.
    public static let seccomp = Sensor(
        name: "seccomp", hooks: [SeccompRecorder.enterHook(dispatching: SeccompRecorder.dispatchFunctions.map(\.function))]
            + ["exec", "attach"].map { Hook.btfOrRaw($0, program: "seccomp_\($0)") },
        kinds: [], ring: .own, needed: nil)
}
