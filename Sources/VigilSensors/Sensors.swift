import CVigilABI
import Dispatch
import Synchronization
import VigilBPF
import VigilContainers
import VigilEvents
import VigilEnrichment
import VigilRules
#if canImport(Glibc)
import Glibc
#endif

/// What the in-kernel filters keep. Empty sets mean "no filter of that kind".
public struct KernelFilter: Sendable, Equatable {
    /// Drop tasks in the host's pid namespace.
    public var containersOnly = false
    /// Keep only these command names (comm, at most 15 bytes).
    public var includeComms: Set<String> = []
    /// Drop these command names.
    public var excludeComms: Set<String> = []
    /// Keep only these processes (tgids).
    public var pids: Set<UInt32> = []
    /// Follow forks in the kernel (`vigil trace --summary -- CMD`): a process forked by one kept
    /// by `pids`, or by Vigil itself (the command it runs), is kept too, from before it first
    /// runs, and so are its children; a followed process leaves the kernel's set at its exit.
    /// Filters by pid even while `pids` is empty (then only what Vigil forks from now on passes),
    /// the fd table's syscalls included (the tree's fd table needs only the tree's own). Exec,
    /// fork and exit, which the kernel never filters, are not scoped by pid in userspace either
    /// (`StateChangeFilter`): the consumer follows the tree from their fork events.
    public var followChildren = false
    /// Keep only these real uids.
    public var uids: Set<UInt32> = []
    /// Keep only these cgroups (v2 directory inodes, as bpf_get_current_cgroup_id reports).
    public var cgroupIDs: Set<UInt64> = []
    /// Never report this process (Vigil itself).
    public var ignorePID: UInt32 = UInt32(getpid())
    /// The file sensor's path filter and in-kernel kills, from the rules (`RuleSet.openPaths`);
    /// nil: every open passes and nothing is killed.
    public var openPaths: OpenPathPushdown?
    /// What the syscalls sensor captures; nil or no syscall: that sensor is not loaded (`Sensors.apply`
    /// loads, updates or unloads it). From the rules (`add`) or `vigil trace --event`.
    public var syscalls: SyscallCapture?
    /// The bounds of the syscalls the rules add (`add`).
    public var syscallBounds = SyscallBounds()
    /// Load the conn sensor (kinds conn and tcpdrop): a rule matches them (`add`), or a tracer
    /// shows them. `Sensors.apply` loads it, or releases it when nothing wants it any more.
    public var connections = false
    /// Load the shell sensor (kind shell, the lines interactive bash shells read): a rule matches
    /// them (`add`), or a tracer shows them. Follows the filter as `connections` does.
    public var shells = false

    /// No filtering (but Vigil's own process is ignored).
    public init() {}

    /// Adds what the rules let the kernel drop (`RuleSet.pushdown`): their path filter and
    /// in-kernel kills, and, when `filtering`, their common restrictions (containers only,
    /// command names; command names the filter already has are kept). Without `filtering` (a
    /// consumer needs every event) the path maps stay installed for `kernel_kill`, their filter
    /// switched off. `vigil trace --alerts` and the daemon both build their filters this way.
    public mutating func add(_ pushdown: KernelPushdown, filtering: Bool = true) {
        openPaths = pushdown.openPaths
        // The rules' syscalls are captured even when a consumer needs every event: they are what
        // the rules match, not a filter.
        let numbers = pushdown.syscallNumbers
        if !numbers.isEmpty {
            let asked = syscalls?.shown ?? []
            syscalls = SyscallCapture(numbers: asked.union(numbers), bounds: syscalls?.bounds ?? syscallBounds, asked: asked, pushdown: pushdown)
        }
        // Like syscalls: what the rules match, not a filter.
        if !pushdown.kinds.isDisjoint(with: [.conn, .tcpdrop]) { connections = true }
        if pushdown.kinds.contains(.shell) { shells = true }
        guard filtering else {
            openPaths?.filtering = false
            return
        }
        if pushdown.containersOnly { containersOnly = true }
        if let comms = pushdown.comms, includeComms.isEmpty { includeComms = comms }
    }
}

/// Counts of one sensor (on one CPU, or summed over CPUs).
public struct SensorCounters: Sendable, Equatable {
    /// Records written to the ring.
    public var emitted: UInt64 = 0
    /// Events dropped by the in-kernel filters.
    public var filtered: UInt64 = 0
    /// Events lost: the ring was full, or (syscalls sensor, kprobe variants) a syscall's return
    /// was missed by the kernel's bounded pool of pending returns.
    public var lost: UInt64 = 0
    /// Processes sent SIGKILL by a `kernel_kill` rule.
    public var killed: UInt64 = 0
    /// Forks not followed (`KernelFilter.followChildren`) because the pids map was full: the
    /// child's events and its descendants' are filtered (VIGIL_COUNTER_UNFOLLOWED).
    public var unfollowed: UInt64 = 0

    /// Counts (zero by default).
    public init(emitted: UInt64 = 0, filtered: UInt64 = 0, lost: UInt64 = 0, killed: UInt64 = 0, unfollowed: UInt64 = 0) {
        self.emitted = emitted
        self.filtered = filtered
        self.lost = lost
        self.killed = killed
        self.unfollowed = unfollowed
    }

    /// The sum of two counts.
    public static func + (a: SensorCounters, b: SensorCounters) -> SensorCounters {
        SensorCounters(emitted: a.emitted + b.emitted, filtered: a.filtered + b.filtered, lost: a.lost + b.lost, killed: a.killed + b.killed,
                       unfollowed: a.unfollowed + b.unfollowed)
    }
}

/// Vigil's sensors of the shared ring loaded into the kernel (those of `Sensor.builtIn` whose
/// ring is `.shared`: process, file, conn, syscalls), sharing one ring and one set of filter
/// maps, so events arrive in one time-ordered stream. Which are loaded follows the kinds a
/// consumer wants and the `KernelFilter` (`Sensor.isNeeded`): `init` loads them, `apply` loads,
/// updates and releases them.
public final class Sensors {
    /// One loaded sensor.
    public struct Loaded {
        /// Its name (`Sensor.name`).
        public var name: String { sensor.name }
        /// Its registry entry.
        public let sensor: Sensor
        /// Its object, links and the variant of each hook.
        public let variants: LoadedVariants
        /// What its map writers installed (`Sensor.install`), for their in-place updates.
        var maps = SensorMapState()
    }

    /// The sensors, in load order (the dynamic ones come and go with `apply`).
    public private(set) var loaded: [Loaded]
    /// The kinds the consumer wants (`init`): with the filter, they decide which sensors are loaded.
    public let kinds: KindSet
    /// What the syscalls sensor captures now (nil: not loaded).
    public private(set) var syscallCapture: SyscallCapture? {
        didSet { shownSyscalls = Self.shown(syscallCapture) }
    }
    /// Per row of `Syscalls.all`: whether its events are shown (the syscalls asked for; the fd
    /// table's own are captured but suppressed). Follows `syscallCapture` (`EventStream` reads it
    /// once per batch).
    private(set) var shownSyscalls: [Bool] = Sensors.shown(nil)

    private static func shown(_ capture: SyscallCapture?) -> [Bool] {
        let shown = capture?.shown ?? []
        return Syscalls.all.map { $0.number().map { shown.contains($0) } ?? false }
    }

    /// A capture of at least one syscall, else nil (the syscalls sensor is not loaded for it).
    static func capture(_ capture: SyscallCapture?) -> SyscallCapture? { capture.flatMap { $0.numbers.isEmpty ? nil : $0 } }

    /// How sensors are loaded, kept for loading sensors later (`apply`).
    private let settings: LoadSettings
    /// The shared ring.
    public let ring: BPFMap
    /// Holds the maps every sensor shares (ring, filter settings and sets): a copy of the process
    /// object that is never loaded, whose maps were created before any sensor loaded.
    private let sharedMaps: BPFObject
    /// The object holding the shared maps (`sharedMaps`), for the integrity check.
    var sharedMapsObject: BPFObject { sharedMaps }
    /// What Vigil wrote to the filter maps and the links it made (`checkIntegrity`).
    var baseline = IntegrityBaseline()
    /// Held by whatever changes the sensors, their links or the watched maps and the baseline
    /// (`apply`, `refreshLinkedNames`, `noteExec` when it adds links, `detach`, on the thread that
    /// drives them) and
    /// by `checkIntegrity` (on a thread of its own): the check never sees a write half done, nor
    /// a sensor being loaded or released.
    let integrityLock = Mutex(())
    /// The filters as they apply to state changes, which the kernel never drops (`EventStream`
    /// applies them after enrichment).
    private(set) var stateChangeFilter: StateChangeFilter
    /// The files the rules name by exact path, by device and inode (the file sensor's open_inodes
    /// map holds them): the decoder reports an open of one through another name with the rule's
    /// name. Changes with `apply` and `refreshLinkedNames`; `linkedNamesVersion` counts changes.
    public private(set) var linkedNames = LinkedNames()
    /// Incremented whenever `linkedNames` changes.
    public private(set) var linkedNamesVersion = 0

    /// Names the running kernel's drop reasons for the decoder (`DropReasons`), once: their
    /// numbering changes between kernel versions, so they come from its BTF.
    static let dropReasonsInstalled: Void = {
        guard let values = try? KernelBTF.enumValues("skb_drop_reason") else { return }
        var names: [UInt32: String] = [:]
        for (value, name) in values where value >= 0 {
            names[UInt32(value)] = name.hasPrefix("SKB_DROP_REASON_") ? String(name.dropFirst("SKB_DROP_REASON_".count)) : name
        }
        DropReasons.install(names)
    }()

    /// Maps the sensors share, created before any of them loads.
    static let sharedMapNames = ["events", "filter", "comm_include", "comm_exclude", "pids", "uids", "cgroups"]

    /// The sensors of the registry that `Sensors` loads (ring `.shared`), in load order.
    static let registry = Sensor.builtIn.filter { $0.ring == .shared }

    /// The share of the ring kept for the high lane (exec, fork, exit, file integrity, seccomp,
    /// the heartbeat, opens a rule matched in the kernel): 1/8. Low-lane records (syscall events,
    /// connections, other opens) that would use it are refused and counted lost
    /// (`vigil_lane_reserve_bytes`, bpf/lib/vigil.bpf.h).
    public static let laneReserveDivisor = 8

    /// Loads the sensors `filter` and `kinds` need (`Sensor.isNeeded`: the process sensor always,
    /// the file sensor for opens, conn for its kinds or `filter.connections`, syscalls for
    /// `filter.syscalls`) at the same time (the verifier runs on the loading thread; on two CPUs
    /// this halves the start), sharing one ring and one set of filter maps that hold `filter`
    /// before any program is attached; each sensor's map writers run before its programs attach.
    /// The open-files limit is raised first (`ProcessLimits.raiseOpenFiles`): links are fds.
    /// - Parameters:
    ///   - kinds: the kinds the consumer wants. A sensor loaded for them stays loaded whatever
    ///     `apply` is given later; one only the filter asks for follows the filter.
    ///   - ringBytes: size of the shared ring (a power of two, multiple of the page size).
    ///   - wakeupBytes: the reader is woken only once this many bytes wait (it drains on its timer).
    ///   - cgroupHierarchy: the hierarchy whose cgroup ids events and the cgroup filter carry
    ///     (`vigil_cgroup_hierarchy`); by default this host's (`CgroupHierarchy.onThisHost`), which
    ///     `CgroupResolver()` reads too.
    ///   - hooks: hooks by sensor name in place of the registry's (a test or `vigil trace
    ///     --file-hook` may narrow a sensor to one variant), also when `apply` loads it later; the
    ///     syscalls sensor given its hooks here keeps them whatever the set's size.
    ///   - pidsCapacity: the entries of the shared pids map (nil: the object's 4096), which holds
    ///     the pid filter's processes and the followed tree (`KernelFilter.followChildren`; a fork
    ///     past it is counted `SensorCounters.unfollowed`).
    public init(kinds: KindSet, filter: KernelFilter, ringBytes: Int = 1 << 23, wakeupBytes: UInt64 = 1 << 20,
                probes: FeatureProbes = .shared, cgroupHierarchy: CgroupHierarchy = .onThisHost,
                hooks: [String: [Hook]] = [:], pidsCapacity: Int? = nil) throws {
        ProcessLimits.raiseOpenFiles()
        let shared = try EmbeddedObjects.open(Sensor.process.name)
        try shared.map(named: "events").setMaxEntries(ringBytes)
        if let pidsCapacity { try shared.map(named: "pids").setMaxEntries(pidsCapacity) }
        for name in Self.sharedMapNames {
            let map = try shared.map(named: name)
            let fd = try map.createForSharing()
            defer { close(fd) } // the object keeps a duplicate
            try map.reuse(fd: fd)
        }
        try Self.write(filter, to: shared)
        let sharedFDs = try Self.sharedMapNames.map { ($0, try shared.map(named: $0).fd ?? -1) }

        let settings = LoadSettings(wakeupBytes: wakeupBytes, ignorePID: filter.ignorePID, cgroupHierarchy: cgroupHierarchy,
                                    ringBytes: ringBytes, probes: probes, hooks: hooks, sharedFDs: sharedFDs)
        let sensors = Self.registry.filter { $0.isNeeded(filter, kinds: kinds) }
        let results = SensorLoads(count: sensors.count)
        DispatchQueue.concurrentPerform(iterations: sensors.count) { i in
            results.set(i, Result { try Self.load(sensors[i], settings: settings, filter: filter) })
        }
        loaded = try results.values()
        self.settings = settings
        self.kinds = kinds
        syscallCapture = loaded.contains { $0.name == Sensor.syscalls.name } ? Self.capture(filter.syscalls) : nil
        shownSyscalls = Self.shown(syscallCapture)
        sharedMaps = shared
        ring = try shared.map(named: "events")
        stateChangeFilter = StateChangeFilter(filter)
        linkedNames = LinkedNames(installedOpenPaths.names)
        // The sets are in since before load; the pushdown's switches follow what the file sensor installed.
        try Self.writeSwitches(filter, to: shared, openPaths: installedOpenPaths)
        try recordLinks()
        try recordMaps()
    }

    /// Detaches every sensor, then runs their unload steps (`Sensor.unload`).
    deinit {
        let sensors = loaded.map { ($0.sensor, $0.variants.object) }
        loaded.forEach(Self.detach)
        loaded.removeAll()
        sensors.forEach { sensor, object in sensor.unload?(object) }
    }

    /// Loads `sensor` with the shared maps and settings; its map writers (`Sensor.install`) get
    /// `filter` before its programs attach. A sensor loaded in place of `predecessor` takes over
    /// its maps `counters` and `pending` (the syscalls sensor's entries waiting for their exits).
    private static func load(_ sensor: Sensor, hooks: [Hook]? = nil, settings: LoadSettings, filter: KernelFilter,
                             from predecessor: BPFObject? = nil) throws -> Loaded {
        var maps = SensorMapState()
        let variants = try sensor.load(hooks: hooks ?? settings.hooks[sensor.name] ?? sensor.hooks(for: filter), probes: settings.probes,
                                       configure: { object in
            try object.setGlobal("vigil_wakeup_bytes", to: settings.wakeupBytes)
            try object.setGlobal("vigil_lane_reserve_bytes", to: UInt64(settings.ringBytes / Self.laneReserveDivisor))
            try object.setGlobal("vigil_ring_bytes", to: UInt64(settings.ringBytes))
            try object.setGlobal("vigil_ignore_tgid", to: settings.ignorePID)
            try object.setGlobal("vigil_cgroup_hierarchy", to: settings.cgroupHierarchy.rawValue)
            // typed socket and file reads (no probe reads) where the kernel has the kfunc
            try object.setGlobal("vigil_rdonly_cast", to: KernelFunctions.rdonlyCast)
            try object.map(named: "events").setMaxEntries(settings.ringBytes)
            if sensor.name == Sensor.syscalls.name { try object.setGlobal("vigil_syscalls_tag", to: SyscallKprobes.nextTag()) }
            for (map, fd) in settings.sharedFDs { try object.map(named: map).reuse(fd: fd) }
            if let predecessor {
                for map in ["counters", "pending"] {
                    guard let fd = try predecessor.map(named: map).fd else { continue }
                    try object.map(named: map).reuse(fd: fd)
                }
            }
        }, beforeAttach: { object in
            try sensor.install?(object, filter, &maps)
        })
        if let attach = sensor.attach { variants.add(attach(variants.object, &maps)) }
        return Loaded(sensor: sensor, variants: variants, maps: maps)
    }

    /// The syscalls sensor's update (`Sensor.syscalls`), loaded at `index`: makes it capture
    /// `wanted` (not nil: `apply` releases it then). Rewrites its bitmap (and specs when the
    /// bounds changed) in place, and under a per-syscall hook (kprobe.multi, kprobe, tracepoint)
    /// attaches the new syscalls' and detaches the dropped ones' (the others' stay attached;
    /// kprobe.multi: new links for the new set, then the old ones detached). When the set's size calls for
    /// the other hook (`syscallHooks(for:)`, unless the hooks were given at init), a sensor with
    /// the new hook is loaded and attached first, taking over the old one's pending entries and
    /// counters, and the old one detached after: no event of a syscall that stays is lost or
    /// doubled (an exit runs once per pending entry).
    func updateSyscalls(at index: Int, _ wanted: SyscallCapture?) throws {
        guard let wanted, wanted != syscallCapture else { return }
        let replaced = loaded[index]
        let sensor = replaced.variants
        let active = sensor.reports.first?.active ?? ""
        let perSyscall = Self.perSyscallVariantNames.contains(active)
        let hooks = Self.syscallHooks(for: wanted)
        if settings.hooks[Sensor.syscalls.name] == nil, perSyscall != Self.perSyscallVariantNames.contains(hooks.first?.variants.first?.name ?? "") {
            var filter = KernelFilter()
            filter.syscalls = wanted
            loaded[index] = try Self.load(loaded[index].sensor, hooks: hooks, settings: settings, filter: filter, from: sensor.object)
            TracepointHolds.transfer(from: sensor.object, to: loaded[index].variants.object) // held until the new one is unloaded
            Self.detach(replaced) // its pending calls are the new one's to finish
        } else {
            if let old = syscallCapture, old.hasSameSpecs(as: wanted) {
                try wanted.writeBitmap(to: sensor.object)
            } else {
                try wanted.write(to: sensor.object)
            }
            if perSyscall { try Self.retargetPerSyscall(active, sensor, from: syscallCapture, to: wanted) }
        }
        syscallCapture = wanted
        try recordLinks() // the integrity check follows the links made and dropped here
    }

    /// The file sensor's update (`Sensor.file`), loaded at `index`: replaces its path pushdown in
    /// place. First the path filter is switched off (every open passes) and running programs are
    /// waited for, then entries are written and stale ones deleted (`apply` then sets the new
    /// switch); an open some rule, old or new, may match is never dropped during the change.
    /// Kill entries stay active throughout.
    func swapOpenPaths(at index: Int, _ openPaths: OpenPathPushdown?) throws {
        let configMap = try TypedMap<UInt32, vigil_filter_config>(sharedMaps.map(named: "filter"))
        if var config = try configMap.lookup(0), config.flags & UInt32(VIGIL_FILTER_OPEN_PATHS.rawValue) != 0 {
            config.flags &= ~UInt32(VIGIL_FILTER_OPEN_PATHS.rawValue)
            try configMap.update(0, config)
            BPFPrograms.waitForRunningPrograms()
        }
        try OpenPathMaps(loaded[index].variants.object).install(openPaths, replacing: &loaded[index].maps.openPaths)
        linkedNames = LinkedNames(loaded[index].maps.openPaths.names)
        linkedNamesVersion += 1
    }

    /// What the file sensor's path maps hold now (nothing when it is not loaded).
    private var installedOpenPaths: InstalledOpenPaths { loaded.first { $0.name == Sensor.file.name }?.maps.openPaths ?? InstalledOpenPaths() }

    /// Sets the in-kernel filters; takes effect at once, without detaching anything a filter
    /// change keeps. (Vigil's own process is fixed at load: `KernelFilter.ignorePID` is read only
    /// by `init`.)
    ///
    /// Every sensor of the registry in one loop: one `filter` and the kinds of `init` now need
    /// (`Sensor.isNeeded`) is loaded (its writers run before it attaches), one no longer needed is
    /// detached and released (a hook taxes the host for nothing), and one that stays gets the
    /// change through its writers in place (`Sensor.update`: the file sensor's path pushdown,
    /// `swapOpenPaths`; the syscalls sensor's set, `updateSyscalls`). The loop runs from the last
    /// entry to the first, so the sensors that come and go (syscalls, conn) load before the file
    /// sensor's swap switches its path filter off: a load that fails leaves the pushdown as it
    /// was, and the filter is off only from the swap to the shared write. The shared filter maps
    /// are written last, the path pushdown's switches following what the file sensor installed.
    public func apply(_ filter: KernelFilter) throws {
        try integrityLock.withLock { _ throws in try applyLocked(filter) }
    }

    private func applyLocked(_ filter: KernelFilter) throws {
        // Whatever got written, even in part, is Vigil's own: the integrity check compares with it.
        defer { try? recordMaps() }
        var linksChanged = false
        for sensor in Self.registry.reversed() {
            let index = loaded.firstIndex { $0.name == sensor.name }
            switch (sensor.isNeeded(filter, kinds: kinds), index) {
            case (true, nil):
                loaded.append(try Self.load(sensor, settings: settings, filter: filter))
                linksChanged = true
            case (false, let index?):
                let object = loaded[index].variants.object
                Self.detach(loaded[index])
                loaded.remove(at: index)
                sensor.unload?(object)
                linksChanged = true
            case (true, let index?):
                try sensor.update?(self, index, filter)
            case (false, nil):
                break
            }
        }
        syscallCapture = loaded.contains { $0.name == Sensor.syscalls.name } ? Self.capture(filter.syscalls) : nil
        if linksChanged { try recordLinks() }
        stateChangeFilter = StateChangeFilter(filter)
        try Self.write(filter, to: sharedMaps, openPaths: installedOpenPaths)
    }

    /// An exec the stream decoded (`EventStream`): while the shell sensor is loaded, a shell
    /// executed from a file it has not tried yet gets its probes (`ShellBinaries.attach(exec:)`).
    /// Lines read before the probes were attached are not reported: a bash from a new binary
    /// (a container's first) may already wait in readline when they are. Call on the thread
    /// that drives the sensors.
    public func noteExec(_ event: Event) {
        guard let index = loaded.firstIndex(where: { $0.name == Sensor.shell.name }),
              let binaries = loaded[index].maps.shells else { return }
        // Trying the binary touches only the shell sensor's own state, which the integrity
        // check never reads: the lock is taken only when new links join the sensor.
        let links = binaries.attach(exec: event, loaded[index].variants.object)
        guard !links.isEmpty else { return }
        integrityLock.withLock { _ in
            loaded[index].variants.add(links)
            try? recordLinks()
        }
    }

    /// The files the shell sensor's probes are attached to, as the paths they were attached
    /// through (empty when it is not loaded).
    public var shellBinaries: [String] { loaded.first { $0.name == Sensor.shell.name }?.maps.shells?.attached ?? [] }

    /// Stats the exact paths of the rules again and updates open_inodes and `linkedNames` when a
    /// file changed (replaced by rename, created, removed). `EventStream` calls it every second.
    public func refreshLinkedNames() throws {
        guard let index = loaded.firstIndex(where: { $0.name == Sensor.file.name }) else { return }
        try integrityLock.withLock { _ throws in
            guard try OpenPathMaps(loaded[index].variants.object).refreshFiles(&loaded[index].maps.openPaths) else { return }
            try recordMaps()
            linkedNames = LinkedNames(loaded[index].maps.openPaths.names)
            linkedNamesVersion += 1
        }
    }
    /// Writes `filter` into the filter maps of `object` (shared by every sensor); the switches
    /// of the path pushdown follow `openPaths`, what the file sensor's maps hold.
    static func write(_ filter: KernelFilter, to object: BPFObject, openPaths: InstalledOpenPaths = InstalledOpenPaths()) throws {
        // Sets first, then the switches: an event never meets a flag whose set is half filled.
        try writeSets(filter, to: object)
        try writeSwitches(filter, to: object, openPaths: openPaths)
    }

    /// The filter's sets (command names, pids, uids, cgroups).
    private static func writeSets(_ filter: KernelFilter, to object: BPFObject) throws {
        try replace(TypedMap<CommKey, UInt8>(object.map(named: "comm_include")), with: filter.includeComms.map(CommKey.init))
        try replace(TypedMap<CommKey, UInt8>(object.map(named: "comm_exclude")), with: filter.excludeComms.map(CommKey.init))
        if filter.followChildren { // the kernel adds and removes the followed ones: only add
            let pids = try TypedMap<UInt32, UInt8>(object.map(named: "pids"))
            for pid in filter.pids { try pids.update(pid, 1) }
        } else {
            try replace(TypedMap<UInt32, UInt8>(object.map(named: "pids")), with: Array(filter.pids))
        }
        try replace(TypedMap<UInt32, UInt8>(object.map(named: "uids")), with: Array(filter.uids))
        try replace(TypedMap<UInt64, UInt8>(object.map(named: "cgroups")), with: Array(filter.cgroupIDs))
    }

    /// The record of switches that says which sets and which pushdown maps apply.
    private static func writeSwitches(_ filter: KernelFilter, to object: BPFObject, openPaths: InstalledOpenPaths) throws {
        var flags: UInt32 = 0
        if filter.containersOnly { flags |= UInt32(VIGIL_FILTER_CONTAINERS_ONLY.rawValue) }
        if !filter.includeComms.isEmpty { flags |= UInt32(VIGIL_FILTER_COMM_INCLUDE.rawValue) }
        if !filter.excludeComms.isEmpty { flags |= UInt32(VIGIL_FILTER_COMM_EXCLUDE.rawValue) }
        if !filter.pids.isEmpty || filter.followChildren { flags |= UInt32(VIGIL_FILTER_PIDS.rawValue) }
        if filter.followChildren { flags |= UInt32(VIGIL_FILTER_PIDS_FOLLOW.rawValue) }
        if !filter.uids.isEmpty { flags |= UInt32(VIGIL_FILTER_UIDS.rawValue) }
        if !filter.cgroupIDs.isEmpty { flags |= UInt32(VIGIL_FILTER_CGROUPS.rawValue) }
        flags |= openPaths.flags
        let config = vigil_filter_config(flags: flags, host_pid_ns: Namespaces.hostPID, open_classes: UInt32(openPaths.anyPath.rawValue), _pad: 0)
        try TypedMap<UInt32, vigil_filter_config>(object.map(named: "filter")).update(0, config)
    }

    private static func replace<Key: Hashable & BitwiseCopyable>(_ map: TypedMap<Key, UInt8>, with keys: [Key]) throws {
        let wanted = Set(keys)
        for key in try map.keys() where !wanted.contains(key) { try map.delete(key) }
        for key in wanted { try map.update(key, 1) }
    }

    /// Per-sensor counters, summed over CPUs.
    public func counters() throws -> [String: SensorCounters] {
        Dictionary(uniqueKeysWithValues: try countersPerCPU().map { ($0.name, $0.perCPU.reduce(SensorCounters(), +)) })
    }

    /// Per sensor (in load order), its counters per CPU (index = CPU number): the one place the
    /// kernel's `counters` maps are read (emitted, filtered, lost, killed, unfollowed).
    public func countersPerCPU() throws -> [(name: String, perCPU: [SensorCounters])] {
        try loaded.map { sensor in (sensor.name, try Self.counters(of: sensor.variants.object)) }
    }

    /// The `counters` map of one loaded object, per CPU (index = CPU number).
    public static func counters(of object: BPFObject) throws -> [SensorCounters] {
        let keys = [VIGIL_COUNTER_EMITTED, VIGIL_COUNTER_FILTERED, VIGIL_COUNTER_LOST, VIGIL_COUNTER_KILLED, VIGIL_COUNTER_UNFOLLOWED].map { UInt32($0.rawValue) }
        let map = try PerCPUMap<UInt32, UInt64>(object.map(named: "counters"))
        let values = try keys.map { try map.lookup($0) ?? [] }
        let cpus = values.map(\.count).max() ?? 0
        func value(_ counter: Int, _ cpu: Int) -> UInt64 { cpu < values[counter].count ? values[counter][cpu] : 0 }
        return (0..<cpus).map { cpu in
            SensorCounters(emitted: value(0, cpu), filtered: value(1, cpu), lost: value(2, cpu), killed: value(3, cpu), unfollowed: value(4, cpu))
        }
    }

    /// Every hook's report: the active variant and why others did not run.
    public var reports: [(sensor: String, report: HookReport)] {
        loaded.flatMap { sensor in sensor.variants.reports.map { (sensor.name, $0) } }
    }

    /// Detaches every program (the maps and ring stay readable until released).
    public func detach() { integrityLock.withLock { _ in loaded.forEach(Self.detach) } }

    /// Detaches one loaded sensor's links, after its `Sensor.beforeDetach` (the one way a sensor
    /// is detached: stopping, unloading, replacing). Detaching goes on when the step fails (a
    /// write to the sensor's own map): a call then left half seen is counted lost, as before.
    private static func detach(_ sensor: Loaded) {
        try? sensor.sensor.beforeDetach?(sensor.variants.object)
        sensor.variants.detach()
    }

}

/// A 16-byte comm as the kernel compares it (NUL padded, at most 15 bytes of name).
struct CommKey: Hashable, BitwiseCopyable {
    var bytes: (UInt64, UInt64) = (0, 0)

    init(_ name: String) {
        withUnsafeMutableBytes(of: &bytes) { raw in
            for (i, byte) in name.utf8.prefix(15).enumerated() { raw[i] = byte }
        }
    }

    static func == (a: CommKey, b: CommKey) -> Bool { a.bytes == b.bytes }
    func hash(into hasher: inout Hasher) { hasher.combine(bytes.0); hasher.combine(bytes.1) }
}

/// How `Sensors` loads a sensor: the settings every sensor's object gets and the shared maps' fds
/// (owned by `Sensors.sharedMaps`).
private struct LoadSettings: @unchecked Sendable {
    var wakeupBytes: UInt64
    var ignorePID: UInt32
    var cgroupHierarchy: CgroupHierarchy
    var ringBytes: Int
    var probes: FeatureProbes
    /// Hooks by sensor name in place of the registry's (`Sensors.init`'s `hooks`).
    var hooks: [String: [Hook]]
    var sharedFDs: [(String, Int32)]
}

/// The outcome of each sensor's load, filled from the loading threads (each writes its own slot;
/// `values` is read once they all returned).
private final class SensorLoads: @unchecked Sendable {
    private var slots: [Result<Sensors.Loaded, Error>?]
    private let lock = Mutex(())

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ result: Result<Sensors.Loaded, Error>) {
        lock.withLock { _ in slots[index] = result }
    }

    /// Every sensor, in order; the first failure is thrown (the loaded ones are released).
    func values() throws -> [Sensors.Loaded] {
        try lock.withLock { _ in
            try slots.map { slot in
                guard let slot else { throw BPFError(.load, operation: "Sensors.init", target: "sensors", message: "a sensor's load did not finish") }
                return try slot.get()
            }
        }
    }
}
