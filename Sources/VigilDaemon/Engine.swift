import CVigilABI
import Foundation
import Logging
import Synchronization
import VigilActions
import VigilBPF
import VigilContainers
import VigilEnrichment
import VigilEvents
import VigilFIM
import VigilRules
import VigilSensors
#if canImport(Glibc)
import Glibc
#endif

/// One sensor in the status: its hooks' variant reports and its counters.
public struct SensorSnapshot: Sendable, Equatable {
    /// The sensor's name (`process`, `file`).
    public var name: String
    /// Per hook: the active variant and why the others did not run.
    public var hooks: [HookReport]
    /// Emitted, filtered in the kernel, lost and killed in the kernel, summed over CPUs.
    public var total: SensorCounters
    /// The same per CPU (index = CPU number).
    public var perCPU: [SensorCounters]
    /// Syscalls the rules want that this sensor does not capture: under a per-syscall hook, those
    /// this kernel has no tracepoint or function for (`Sensors.syscallsNotCaptured`).
    public var notCaptured: [String] = []
}

/// What the engine is doing, refreshed by the event thread every `Engine.snapshotInterval`.
public struct EngineSnapshot: Sendable {
    /// The sensors.
    public var sensors: [SensorSnapshot] = []
    /// What the userspace stream did with the records.
    public var stream = StreamStatistics()
    /// The rules' pushdown and whether its kernel filters are applied now.
    public var pushdown: KernelPushdown?
    /// True while the kernel filters of the pushdown are applied (off while an event stream is
    /// open, which needs every event, or when `kernel_pushdown: false`).
    public var pushdownApplied = false
    /// Kinds decoded and handed on.
    public var kinds: KindSet = []
    /// Rules enabled / disabled, macros, lists.
    public var rules = (enabled: 0, disabled: 0, macros: 0, lists: 0)
    /// The images' DNS baselines (dns.name.new).
    public var dnsBaseline = DNSBaseline.Status()
    /// When it was taken (DispatchTime uptime nanoseconds).
    public var takenAt: UInt64 = DispatchTime.now().uptimeNanoseconds
}

/// Sensors -> EventStream -> RuleSet -> alert consumers and the API streams, on one event thread.
/// The rules are swapped without stopping (the event thread picks them up at its next batch);
/// nothing on the event path waits for a client: stream lines go to bounded buffers.
public final class Engine: @unchecked Sendable {
    /// How often the event thread refreshes the snapshot (counters read from the BPF maps).
    public static let snapshotInterval: UInt64 = 200_000_000
    /// The integrity thread's tick: how often it looks whether a heartbeat came back and a
    /// check is due (`runIntegrity`).
    public static let integrityTickMilliseconds = 10
    /// The reader's timer: events wait at most this long in the ring (the sensors wake the
    /// reader early only once 1 MiB waits, or at once for an open a rule matched in the kernel).
    public static let pollMilliseconds: Int32 = 5

    /// The live event stream's subscribers.
    public let events: StreamHub
    /// The live alert stream's subscribers.
    public let alerts: StreamHub
    /// Alert counters and the evaluation histogram.
    public let metrics: DaemonMetrics
    /// When the engine was created.
    public let started = Date()

    // Driven only by the event thread once `run` started (house rule: one thread per libbpf object).
    private let sensors: Sensors
    private let stream: EventStream
    private let consumers: [AlertConsumer]
    /// The consumers' event taps: every event is offered to each (its filter decides).
    private let taps: [EventTap]
    private let logger: Logger
    private let pushdownEnabled: Bool
    /// How much of syscall arguments the syscalls sensor keeps (the config's bounds).
    private let syscallBounds: SyscallBounds

    private let pendingRules: Mutex<RuleSet>
    private let rulesVersion = Atomic<Int>(0)
    /// The version of the rules the event loop runs now (sensors and kernel filters applied).
    private let appliedRulesVersion = Atomic<Int>(-1)
    private let stopRequested = Atomic<Bool>(false)
    private let latest: Mutex<EngineSnapshot>
    private let watcher: DockerEventWatcher
    private let containerMetadata: ContainerMetadataCache
    private let integrity: DaemonConfig.Integrity
    private let notifier: SystemdNotifier?
    private let tamper = Mutex(TamperStatus())
    /// File integrity monitoring (`fim:`), nil when nothing is watched. Driven by a thread of
    /// its own (`runFIM`: its sensor, re-reads and hashing never hold up the event thread); the
    /// changes it finds wait in `fimChanges` for the event thread, which alerts them.
    private let fim: FIMMonitor?
    private let fimChanges = Mutex<[FIMFound]>([])
    /// The program bundles loaded through the API (docs/bundles.md): their rings are read here,
    /// once per batch, and their events handled as the sensors' are.
    private let bundles: BundleStore?
    /// The FIM thread's following of the containers (`fim.containers`), nil when none is watched.
    private let fimContainers: FIMContainers?
    private let fimSnapshot = Mutex<SensorSnapshot?>(nil)
    private let fimStopped = DispatchSemaphore(value: 0)
    /// Tells the integrity thread (`runIntegrity`) to end, and it tells it ended.
    private let integrityStop = DispatchSemaphore(value: 0)
    private let integrityStopped = DispatchSemaphore(value: 0)
    /// The syscalls the rules want and the syscalls sensor does not capture (set with the sensor).
    private var notCaptured: [String] = []
    /// The images' DNS baselines (dns.name.new), handed to the enricher while a rule reads the
    /// field; saved under `dnsBaselineDirectory`, one file per image.
    private let dnsBaseline: DNSBaseline
    private let dnsBaselineDirectory: String
    /// Writes the baselines' files (each write fsyncs: never on the event thread), in order.
    private let dnsBaselineWriter = DispatchQueue(label: "vigil-dns-baseline")
    /// Files the writer could not write, for the event thread to mark changed again.
    private let dnsBaselineFailed = Mutex<[String]>([])
    /// Writes that failed (the first and every 100th are logged: a failed file is tried again
    /// every second).
    private let dnsBaselineWriteErrors = Atomic<Int>(0)
    /// containerd's API, asked for the containers Docker does not know; nil: not asked. Its
    /// counters go to /metrics (vigil_containerd_lookups_total).
    public let containerd: ContainerdClient?
    /// A CRI runtime's API (CRI-O's), asked for the containers neither Docker nor containerd
    /// knows; nil: not asked. Its counters go to /metrics (vigil_cri_lookups_total).
    public let cri: CRIClient?
    /// The Docker Engine as the daemon follows it: its socket, the event subscription's
    /// counters and the metadata fetches' (`vigil status`'s `docker`, /metrics).
    public var dockerStatus: DockerStatus {
        DockerStatus(socket: watcher.client.socketPath, events: watcher.counters, metadata: containerMetadata.counters)
    }
    /// How often changed baselines are saved (boot-time ns), and the windows of images still learning.
    static let dnsBaselineSaveInterval: UInt64 = 1_000_000_000, dnsBaselineLearningSaveInterval: UInt64 = 60_000_000_000

    /// Loads the sensors (process and file, sharing one ring of `ringBytes`). The consumers feed
    /// `alerts` (the API's alert stream) themselves, once their actions ran.
    /// `integrity`: the heartbeat and the check of programs, links and filter maps (tamper
    /// evidence); `notifier`: systemd's watchdog, pinged from the event thread.
    public init(rules: RuleSet, ringBytes: Int, kernelPushdown: Bool, consumers: [AlertConsumer], alerts: StreamHub, logger: Logger,
                integrity: DaemonConfig.Integrity = DaemonConfig.Integrity(), notifier: SystemdNotifier? = nil,
                syscallBounds: SyscallBounds = SyscallBounds(), fim: WatchSpec = WatchSpec(), stateDirectory: String = "/var/lib/vigil",
                dnsBaseline: DNSBaseline.Settings = DNSBaseline.Settings(), bundles: BundleStore? = nil,
                containerd: ContainerdClient? = nil, cri: CRIClient? = nil, docker: DockerClient = DockerClient()) throws {
        self.bundles = bundles
        self.dnsBaseline = DNSBaseline(settings: dnsBaseline)
        dnsBaselineDirectory = stateDirectory + "/dns-baseline"
        self.fim = fim.isEmpty ? nil : try FIMMonitor(spec: fim, stateDirectory: stateDirectory, logger: logger)
        self.integrity = integrity
        self.syscallBounds = syscallBounds
        self.notifier = notifier
        // Docker first; then containerd and the CRI for the containers Docker does not know (a
        // kubelet's, through containerd's cri plugin or CRI-O).
        let runtimes: [any ContainerMetadataSource] = [containerd as (any ContainerMetadataSource)?, cri].compactMap { $0 }
        let source: any ContainerMetadataSource = runtimes.isEmpty ? docker : ChainedMetadataSource([docker] + runtimes)
        self.containerd = containerd
        self.cri = cri
        let metadata = ContainerMetadataCache(source: source) { [logger] in logger.info("\($0)") }
        containerMetadata = metadata
        watcher = DockerEventWatcher(client: docker)
        let fimContainers = self.fim?.watchesContainers == true ? FIMContainers(metadata: metadata, docker: docker) : nil
        self.fimContainers = fimContainers
        metadata.follow(watcher, also: fimContainers.map { containers in { @Sendable update in containers.append(update) } })
        // The process and file sensors for good; the rules' filter (`configure`) adds and releases
        // the syscalls and conn sensors.
        sensors = try Sensors(kinds: Sensor.process.kinds.union(Sensor.file.kinds), filter: KernelFilter(), ringBytes: ringBytes)
        stream = try EventStream(sensors: sensors, enricher: Enricher(metadata: metadata), kinds: KindSet.all)
        if let trace = AlertTrace.shared { stream.batchStarted = { trace.batchReadNs.store(AlertTrace.now(), ordering: .relaxed) } }
        events = StreamHub(name: "events")
        self.alerts = alerts
        metrics = DaemonMetrics()
        self.consumers = consumers
        taps = consumers.flatMap(\.eventTaps)
        self.logger = logger
        pushdownEnabled = kernelPushdown
        pendingRules = Mutex(rules)
        var first = EngineSnapshot()
        first.sensors = sensors.loaded.map { SensorSnapshot(name: $0.name, hooks: $0.variants.reports, total: SensorCounters(), perCPU: []) }
        latest = Mutex(first)
        loadDNSBaseline()
        self.dnsBaseline.onImageBoundReached = { [logger] image in
            logger.warning("dns baseline: \(dnsBaseline.maxImages) images kept (dns_baseline.max_images); the lookups of \(image) and other images are not judged (counted in the status)")
        }
        for (sensor, report) in sensors.reports {
            let others = report.attempts.filter { $0.outcome == .skipped || $0.outcome == .failed }.map { "\($0.variant): \($0.reason ?? "")" }
            logger.info("sensor \(sensor)/\(report.hook): \(report.active)\(others.isEmpty ? "" : " (not: " + others.joined(separator: "; ") + ")")")
        }
    }

    /// Replaces the rules; the event thread uses them from its next batch on.
    /// Hands `rules` to the event loop, which applies them at its next batch; returns their
    /// version (`waitUntilApplied`).
    @discardableResult
    public func setRules(_ rules: RuleSet) -> Int {
        pendingRules.withLock { state in
            state = rules
            return rulesVersion.add(1, ordering: .releasing).newValue
        }
    }

    /// Waits until the event loop runs rules of `version` or newer (their sensors loaded and
    /// kernel filters written), at most `timeout` seconds; false when it did not happen in time
    /// (the loop is not running, or applying took longer).
    public func waitUntilApplied(_ version: Int, timeout: Double = 30) -> Bool {
        let deadline = DispatchTime.now() + timeout
        while appliedRulesVersion.load(ordering: .acquiring) < version {
            if DispatchTime.now() >= deadline { return false }
            usleep(2_000)
        }
        return true
    }

    /// The last snapshot (at most `snapshotInterval` old).
    public var snapshot: EngineSnapshot { latest.withLock { $0 } }

    /// Asks `run` to detach, drain and return.
    public func requestStop() { stopRequested.store(true, ordering: .relaxed) }

    /// The event loop: call on a thread of its own. Returns after `requestStop`, once the
    /// sensors are detached, the ring drained and the last batch handed to the consumers.
    public func run() throws {
        defer { watcher.stop() }
        var state = LoopState()
        state.rules = pendingRules.withLock { $0 }
        state.rulesVersion = rulesVersion.load(ordering: .acquiring)
        housekeeping(&state, force: true)
        var integrityRunning = integrity.heartbeatIntervalMs > 0 || integrity.checkIntervalMs > 0
        if integrityRunning {
            let thread = Thread { [self] in runIntegrity() }
            thread.name = "vigil-integrity"
            thread.start()
        }
        func stopIntegrity() {  // before the sensors are detached, which it would report
            guard integrityRunning else { return }
            integrityRunning = false
            integrityStop.signal()
            integrityStopped.wait()
        }
        defer { stopIntegrity() }
        if let problem = fim?.baselineProblem { tamperAlert(Self.fimBaselineRule, problem) }
        for change in fim?.startupChanges ?? [] {
            if let fim { fimEvent(FIMFound(change: change, event: fim.event(change, by: Self.selfEvent(), whileDown: true), enrich: false), &state) }
        }
        if let fim {
            let thread = Thread { [self] in runFIM(fim) }
            thread.name = "vigil-fim"
            thread.start()
        }
        try stream.run(pollMilliseconds: Self.pollMilliseconds, shouldStop: {
            housekeeping(&state, force: false)
            return stopRequested.load(ordering: .relaxed)
        }) { event in handle(event, &state) }
        stopIntegrity()
        sensors.detach()
        try stream.drain { event in handle(event, &state) }
        if fim != nil { fimStopped.wait() }
        housekeeping(&state, force: true)
        logger.info("engine stopped: \(stream.statistics.delivered) events checked, \(metrics.alertCount) alerts")
    }

    /// Hands queued alerts on for the last time (after `run` returned).
    public func flushConsumers() async {
        for consumer in consumers { await consumer.flush() }
    }

    /// The consumers' metrics and status.
    var alertConsumers: [AlertConsumer] { consumers }

    // MARK: - Event thread

    private struct LoopState {
        var rules: RuleSet?
        var rulesVersion = -1
        var eventSubscribers = StreamHub.Cache()
        var alertSubscribers = StreamHub.Cache()
        var appliedFilter: KernelFilter?
        var pushdownApplied = false
        var lastSnapshot: UInt64 = 0
        var sample = 0
        var line: [UInt8] = []
        var dnsBaselineSaved: UInt64 = 0, dnsBaselineLearningSaved: UInt64 = 0
        /// Per sensor, its lost count when "Vigil events lost" last looked; when it last alerted.
        var lostSeen: [String: UInt64] = [:], lostAlertedAt: UInt64?
    }

    /// The integrity thread's state.
    private struct IntegrityState {
        var heartbeat: Heartbeat?
        var lastCheck: UInt64?
        /// The findings of the last check: each is alerted once, when it first appears.
        var findings: [IntegrityFinding] = []
        var silent = false
    }

    @inline(__always)
    private func handle(_ event: Event, _ state: inout LoopState) {
        if !state.eventSubscribers.list.isEmpty { publish(event, &state) }
        for tap in taps { tap.offer(event) }
        guard let rules = state.rules else { return }
        state.sample &+= 1
        let timed = state.sample % DaemonMetrics.evaluationSampling == 0
        let start = timed ? DispatchTime.now().uptimeNanoseconds : 0
        rules.forEachMatch(event) { rule in alert(rule, event, &state) }
        if timed { metrics.observeEvaluation(nanoseconds: DispatchTime.now().uptimeNanoseconds &- start) }
    }

    private func publish(_ event: Event, _ state: inout LoopState) {
        state.line.removeAll(keepingCapacity: true)
        for subscription in state.eventSubscribers.list where subscription.accepts(event) && !subscription.dropIfFull() {
            if state.line.isEmpty { EventFormat.appendJSON(event, to: &state.line) }
            subscription.offer(state.line)
        }
    }

    private func alert(_ rule: CompiledRule, _ event: Event, _ state: inout LoopState) {
        metrics.countAlert(rule: rule.rule.name, priority: rule.rule.priority.rawValue)
        for consumer in consumers { consumer.consume(rule: rule, event: event) }
    }

    /// Once per batch: wake stream writers, hand alerts on, pick up new rules and subscribers,
    /// set the kernel filters and kinds, and refresh the snapshot now and then.
    private func housekeeping(_ state: inout LoopState, force: Bool) {
        for subscription in state.eventSubscribers.list { subscription.notifyIfPending() }
        for subscription in state.alertSubscribers.list { subscription.notifyIfPending() }
        for consumer in consumers { consumer.batchEnded() }

        var changed = force, rulesChanged = force
        let version = rulesVersion.load(ordering: .acquiring)
        if version != state.rulesVersion {
            state.rulesVersion = version
            state.rules = pendingRules.withLock { $0 }
            changed = true
            rulesChanged = true
        }
        let eventVersion = state.eventSubscribers.version
        events.refresh(&state.eventSubscribers)
        alerts.refresh(&state.alertSubscribers)
        if state.eventSubscribers.version != eventVersion { changed = true }
        if changed { configure(&state, rulesChanged: rulesChanged) }
        if rulesChanged { appliedRulesVersion.store(state.rulesVersion, ordering: .releasing) }

        let now = DispatchTime.now().uptimeNanoseconds
        notifier?.pingIfDue(now: now)
        if fim != nil {
            let found = fimChanges.withLock { queue in
                defer { queue.removeAll() }
                return queue
            }
            for found in found { fimEvent(found, &state) }
        }
        bundles?.poll(enricher: stream.enricher) { handle($0, &state) }
        saveDNSBaseline(&state, force: force)
        if force || now &- state.lastSnapshot >= Self.snapshotInterval {
            state.lastSnapshot = now
            refreshSnapshot(state)
            alertLostEvents(snapshot.sensors, &state, now: now)
        }
    }

    // MARK: - DNS baseline

    /// Reads the saved baselines (STATE_DIR/dns-baseline/*.json). A file that cannot be read is
    /// renamed `*.unreadable` (kept for a look, not overwritten), logged and counted; its image
    /// learns anew.
    private func loadDNSBaseline() {
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: dnsBaselineDirectory) else { return }
        let now = AlertTrace.now()
        var loaded = 0
        for file in files.sorted() where file.hasSuffix(".json") {
            let path = dnsBaselineDirectory + "/" + file
            do {
                if try dnsBaseline.load(try Data(contentsOf: URL(fileURLWithPath: path)), at: now) { loaded += 1 }
            } catch {
                dnsBaseline.countUnreadable()
                rename(path, path + ".unreadable")
                logger.error("dns baseline: cannot read \(path) (moved to \(file).unreadable; its image learns anew): \(error)")
            }
        }
        if loaded > 0 { logger.info("dns baseline: \(loaded) images loaded from \(dnsBaselineDirectory)") }
    }

    /// Saves the baselines that changed (at most once per `dnsBaselineSaveInterval`, and the
    /// windows of images still learning once per `dnsBaselineLearningSaveInterval`; everything
    /// with `force`: at start and stop, where it waits for the writes), each file written
    /// atomically by `dnsBaselineWriter`.
    private func saveDNSBaseline(_ state: inout LoopState, force: Bool) {
        defer { if force { dnsBaselineWriter.sync {} } }
        for file in dnsBaselineFailed.withLock({ failed in defer { failed.removeAll() }; return failed }) { dnsBaseline.saveFailed(file) }
        let now = AlertTrace.now()
        let learning = force || now &- state.dnsBaselineLearningSaved >= Self.dnsBaselineLearningSaveInterval
        guard learning || (now &- state.dnsBaselineSaved >= Self.dnsBaselineSaveInterval && dnsBaseline.hasChanges) else { return }
        state.dnsBaselineSaved = now
        if learning { state.dnsBaselineLearningSaved = now }
        let files = dnsBaseline.takeChanged(at: now, learning: learning)
        guard !files.isEmpty else { return }
        dnsBaselineWriter.async { [self] in
            do {
                try FileManager.default.createDirectory(atPath: dnsBaselineDirectory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                logger.error("dns baseline: cannot make \(dnsBaselineDirectory): \(error)")
            }
            for (file, data) in files {
                do {
                    try RuleStore.writeAtomically(String(decoding: data, as: UTF8.self), to: dnsBaselineDirectory + "/" + file,
                                                  directory: dnsBaselineDirectory, mode: 0o600)
                } catch {
                    dnsBaselineFailed.withLock { $0.append(file) }
                    let failures = dnsBaselineWriteErrors.add(1, ordering: .relaxed).newValue
                    if failures == 1 || failures % 100 == 0 { logger.error("dns baseline: \(error) (\(failures) failed writes so far)") }
                }
            }
        }
    }

    /// Kinds and kernel filters for the rules and the open event streams. An open event stream
    /// (or an event tap: nats or policy `events:`) needs every event: the pushdown's filters are
    /// lifted while one is open, but the path maps stay installed for `kernel_kill` (their
    /// filter switched off).
    private func configure(_ state: inout LoopState, rulesChanged: Bool) {
        let watching = !state.eventSubscribers.list.isEmpty || !taps.isEmpty
        let pushdown = state.rules?.pushdown
        stream.kinds = watching ? KindSet.all : (pushdown?.kinds ?? [])
        stream.enricher.processes.readsEnvironment = state.rules?.readsProcessEnvironment ?? false
        stream.enricher.dnsBaseline = state.rules?.readsDNSBaseline == true ? dnsBaseline : nil
        var filter = KernelFilter()
        filter.syscallBounds = syscallBounds
        var applied = false
        if let pushdown, let rules = state.rules, !rules.rules.isEmpty {
            applied = pushdownEnabled && !watching
            filter.add(pushdown, filtering: applied)
        }
        state.pushdownApplied = applied
        var failure: String?
        if filter != state.appliedFilter {
            do {
                let before = sensors.syscallCapture
                try sensors.apply(filter)
                state.appliedFilter = filter
                if sensors.syscallCapture != before {
                    notCaptured = sensors.syscallsNotCaptured
                    logSyscallsSensor(before: before, pushdown: pushdown)
                }
            } catch {
                failure = "\(error)"
                logger.error("cannot set the kernel filters: \(error)")
            }
        }
        if rulesChanged || failure != nil, let rules = state.rules {
            for consumer in consumers { consumer.kernelFiltersApplied(rules, failure: failure) }
        }
    }

    // MARK: - Tamper evidence

    /// The rule name of the alert when a heartbeat does not come back in time.
    public static let sensorSilentRule = "Vigil sensor silent"
    /// The rule name of the alert when a link of Vigil's is gone or holds another program.
    public static let programDetachedRule = "Vigil program detached"
    /// The rule name of the alert when a filter map holds what Vigil did not write.
    public static let filterChangedRule = "Vigil filter changed"
    /// The rule name of the alert when the FIM baseline saved by the last run cannot be read.
    public static let fimBaselineRule = "FIM baseline unreadable"
    /// The rule name of the alert when sensors lost events (their ring was full).
    public static let eventsLostRule = "Vigil events lost"

    /// Raises "Vigil events lost" when sensors lost events since the last such alert, naming
    /// each and how many; at most one per `integrity.eventsLostIntervalMs` (a long flood is one
    /// alert per interval, its count accumulated). Event thread, after each snapshot.
    private func alertLostEvents(_ sensors: [SensorSnapshot], _ state: inout LoopState, now: UInt64) {
        let interval = UInt64(integrity.eventsLostIntervalMs) * 1_000_000
        guard interval > 0 else { return }
        if let last = state.lostAlertedAt, now &- last < interval { return }
        var lost: [(sensor: String, count: UInt64)] = []
        for sensor in sensors {
            let before = state.lostSeen[sensor.name] ?? 0
            // A sensor loaded again (syscalls, for new rules) starts its counters at 0.
            let since = sensor.total.lost >= before ? sensor.total.lost - before : sensor.total.lost
            if since > 0 { lost.append((sensor.name, since)) }
            state.lostSeen[sensor.name] = sensor.total.lost
        }
        guard !lost.isEmpty else { return }
        state.lostAlertedAt = now
        let total = lost.reduce(0) { $0 + $1.count }
        let each = lost.map { "\($0.sensor): \($0.count)" }.joined(separator: ", ")
        selfAlert(Self.eventsLostRule, "\(total) events lost since the last such alert (\(each)): the ring was full, the rules did not see them",
                  priority: .error, tags: ["vigil", "events_lost"])
    }

    /// The heartbeat's and the integrity check's counters (status `integrity`).
    public var tamperStatus: TamperStatus { tamper.withLock { $0 } }

    /// The integrity thread: the heartbeat and the check of links and filter maps, on a timer
    /// of their own (every `integrityTickMilliseconds`), so a flood that keeps the event thread
    /// reading the ring never delays them; their alerts go to the consumers from here
    /// (`AlertConsumer.consume(alert:)` is thread-safe). The first check runs at once. Ends
    /// when `integrityStop` is signalled (`run`, before it detaches the sensors).
    private func runIntegrity() {
        defer { integrityStopped.signal() }
        var state = IntegrityState()
        if integrity.heartbeatIntervalMs > 0 {
            state.heartbeat = Heartbeat(interval: UInt64(integrity.heartbeatIntervalMs) * 1_000_000,
                                        bound: UInt64(integrity.heartbeatBoundMs) * 1_000_000)
        }
        repeat {
            checkIntegrity(&state, now: DispatchTime.now().uptimeNanoseconds)
        } while integrityStop.wait(timeout: .now() + .milliseconds(Self.integrityTickMilliseconds)) == .timedOut
    }

    /// Heartbeat tick, and every `checkIntervalMs` the check of links and filter maps; alerts
    /// for what is new. On the integrity thread.
    private func checkIntegrity(_ state: inout IntegrityState, now: UInt64) {
        if var heartbeat = state.heartbeat {
            let outcome = heartbeat.tick(stream: stream, now: now)
            state.heartbeat = heartbeat
            switch outcome {
            case .silent(let waited):
                state.silent = true
                tamperAlert(Self.sensorSilentRule, "no event of Vigil's heartbeat process came back through the sensors within \(waited / 1_000_000) ms (bound \(integrity.heartbeatBoundMs) ms): the sensors, their ring or the reader are not working")
            case .returned:
                if state.silent { logger.notice("heartbeat: the sensors report again") }
                state.silent = false
            case .cannotStart(let reason):
                logger.error("heartbeat: \(reason)")
            case nil: break
            }
            tamper.withLock { status in
                status.heartbeatsSent = heartbeat.sent
                status.heartbeatsReturned = heartbeat.returned
                status.heartbeatsSilent = heartbeat.silent
                status.lastHeartbeatLatencyNs = heartbeat.lastLatencyNs
            }
        }
        guard integrity.checkIntervalMs > 0 else { return }
        if let last = state.lastCheck, now &- last < UInt64(integrity.checkIntervalMs) * 1_000_000 { return }
        state.lastCheck = now
        let findings = sensors.checkIntegrity()
        for finding in findings where !state.findings.contains(finding) {
            switch finding.kind {
            case .programDetached:
                tamperAlert(Self.programDetachedRule, "\(finding.target): \(finding.detail): that hook no longer reports")
            case .filterChanged:
                tamperAlert(Self.filterChangedRule, "map \(finding.target) holds what Vigil did not write: \(finding.detail)")
            }
        }
        state.findings = findings
        tamper.withLock { status in
            status.checks += 1
            status.current = findings.map(\.description)
        }
    }

    /// Raises a CRITICAL tamper alert about Vigil itself (`selfAlert`).
    private func tamperAlert(_ rule: String, _ output: String) {
        selfAlert(rule, output, priority: .critical, tags: ["vigil", "tamper"])
    }

    /// Raises an alert about Vigil itself through the consumers (the default actions), counted
    /// like a rule's alert and in the status' `integrity.alerts`. From the integrity thread, or
    /// the event thread (FIM, events lost).
    private func selfAlert(_ rule: String, _ output: String, priority: Priority, tags: [String]) {
        logger.log(level: priority == .critical ? .critical : .error, "\(rule): \(output)")
        metrics.countAlert(rule: rule, priority: priority.rawValue)
        tamper.withLock { $0.alerts[rule, default: 0] += 1 }
        let alert = Alert(rule: rule, priority: priority, output: output, tags: tags, event: Self.selfEvent())
        for consumer in consumers { consumer.consume(alert: alert) }
    }

    /// The FIM thread: reads the fim sensor (waiting at most 10 ms, and no longer than until a
    /// reported watch settles), re-reads what it reports and
    /// queues the changes for the event thread; refreshes the sensor's status. Ends once a stop
    /// is requested.
    private func runFIM(_ fim: FIMMonitor) {
        defer { fimStopped.signal() }
        var lastSnapshot: UInt64 = 0
        while !stopRequested.load(ordering: .relaxed) {
            let now = DispatchTime.now().uptimeNanoseconds
            fimContainers?.apply(to: fim) { change in
                let found = FIMFound(change: change, event: fim.event(change, by: Self.selfEvent(), whileDown: true),
                                     enrich: false, container: fim.container(ofPath: change.path))
                fimChanges.withLock { $0.append(found) }
            }
            fim.poll(now: now, waitMilliseconds: fim.waitMilliseconds(now: now, atMost: 10)) { change, event in
                let found = FIMFound(change: change, event: fim.event(change, by: event ?? Self.selfEvent(), whileDown: false),
                                     enrich: event != nil, container: fim.container(ofPath: change.path))
                fimChanges.withLock { $0.append(found) }
            }
            if now &- lastSnapshot >= Self.snapshotInterval {
                lastSnapshot = now
                do {
                    let snapshot = try fim.snapshot()
                    fimSnapshot.withLock { $0 = snapshot }
                } catch {
                    logger.error("cannot read the fim sensor's counters: \(error)")
                }
            }
        }
    }

    /// Makes the `fim` event of a change to a watched file and handles it as every event is
    /// (event streams, then the rules: rules/default.yaml has the file integrity rules). Its
    /// header is the syscall that made the change, enriched from the process table like any
    /// event, or Vigil's own process for a change made while it was down.
    /// A change in a container's files names that container (from its watch: the process that
    /// made it may be gone, or be a host process writing through the container's root).
    private func fimEvent(_ found: FIMFound, _ state: inout LoopState) {
        var made = found.event
        if found.enrich { stream.enricher.enrich(&made) }
        if let container = found.container { made.container = stream.enricher.container(id: container.id, runtime: container.runtime) }
        if case .fim(let payload) = made.payload { logger.notice("fim: \(payload.summary)") }
        handle(made, &state)
    }

    /// The event a tamper alert carries: Vigil's own process (its executable and arguments), now.
    private static func selfEvent() -> Event {
        var now = timespec(), boot = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        clock_gettime(CLOCK_BOOTTIME, &boot)
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let exec = Payload.Exec(filename: ByteString(exe), executablePath: ByteString(exe), arguments: CommandLine.arguments.map { ByteString($0) },
                                argumentsTruncated: false, cwd: ByteString(FileManager.default.currentDirectoryPath), tty: "", ttyNumber: 0,
                                loginUID: UInt32.max, startTimeNs: 0)
        return Event(bootTimeNs: UInt64(boot.tv_sec) * 1_000_000_000 + UInt64(boot.tv_nsec),
                     timeNs: UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec), cgroupID: 0,
                     pid: UInt32(getpid()), tid: UInt32(getpid()), ppid: UInt32(getppid()), uid: getuid(), gid: getgid(), cpu: 0,
                     mountNamespace: 0, pidNamespace: 0, comm: "vigil", payload: .exec(exec))
    }

    /// Says what the rules made the syscalls sensor do: loaded (with its hook's variant),
    /// updated in place, or unloaded.
    private func logSyscallsSensor(before: SyscallCapture?, pushdown: KernelPushdown?) {
        let line = pushdown?.syscallSummary ?? "syscalls: none"
        if !notCaptured.isEmpty {
            logger.warning("syscalls the rules want but this kernel has no tracepoint for (it does not implement them; their calls fail with ENOSYS), not captured: \(notCaptured.joined(separator: ", "))")
        }
        switch (before, sensors.syscallCapture) {
        case (nil, _?):
            let hooks = sensors.reports.filter { $0.sensor == Sensor.syscalls.name }.map { "\($0.report.hook): \($0.report.active)" }
            logger.info("sensor syscalls loaded for the rules (\(hooks.joined(separator: ", "))); \(line)")
        case (_?, nil):
            logger.info("sensor syscalls unloaded: no rule needs a syscall")
        default:
            logger.info("sensor syscalls' bitmap updated for the rules; \(line)")
        }
    }

    private func refreshSnapshot(_ state: LoopState) {
        var snapshot = EngineSnapshot()
        do {
            let counters = try sensors.countersPerCPU()
            snapshot.sensors = zip(sensors.loaded, counters).map { loaded, counters in
                SensorSnapshot(name: loaded.name, hooks: loaded.variants.reports, total: counters.perCPU.reduce(SensorCounters(), +),
                               perCPU: counters.perCPU, notCaptured: loaded.name == Sensor.syscalls.name ? notCaptured : [])
            }
            if let fim = fimSnapshot.withLock({ $0 }) { snapshot.sensors.append(fim) }
        } catch {
            logger.error("cannot read the sensors' counters: \(error)")
            snapshot.sensors = latest.withLock { $0.sensors }
        }
        snapshot.stream = stream.statistics
        snapshot.pushdown = state.rules?.pushdown
        snapshot.pushdownApplied = state.pushdownApplied
        snapshot.kinds = stream.kinds
        snapshot.dnsBaseline = dnsBaseline.status(at: AlertTrace.now(), active: stream.enricher.dnsBaseline != nil)
        if let rules = state.rules {
            snapshot.rules = (rules.rules.count, rules.disabled.count, rules.macroCount, rules.listCount)
        }
        latest.withLock { $0 = snapshot }
    }
}

/// The tamper evidence's counters, in the status under `integrity`.
public struct TamperStatus: Sendable, Encodable {
    /// Heartbeats started, come back, and not back within the bound.
    public var heartbeatsSent: UInt64 = 0, heartbeatsReturned: UInt64 = 0, heartbeatsSilent: UInt64 = 0
    /// The last heartbeat's time to come back, nanoseconds.
    public var lastHeartbeatLatencyNs: UInt64?
    /// Checks of links and filter maps run.
    public var checks: UInt64 = 0
    /// What the last check found (empty: intact).
    public var current: [String] = []
    /// Tamper alerts raised, per rule name.
    public var alerts: [String: UInt64] = [:]
}

/// A change the FIM thread found, for the event thread to alert: its `fim` event (made on the
/// FIM thread, which owns the monitor), whether its header is a syscall's (enriched from the
/// process table), and the container whose files it is in.
struct FIMFound: Sendable {
    /// The change.
    var change: FIMChange
    /// Its `fim` event.
    var event: Event
    /// Whether to enrich it (a syscall's header, not Vigil's own).
    var enrich: Bool
    /// The container whose files changed, if any.
    var container: FIMContainer? = nil
}
