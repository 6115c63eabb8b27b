import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals
import VigilActions
import VigilContainers
import VigilRules
import VigilSeccomp
import VigilSensors
#if canImport(Glibc)
import Glibc
#endif

/// What `vigil daemon`'s flags change on top of the configuration file.
public struct DaemonOptions: Sendable {
    /// Where the default paths are (`--root`, `VIGIL_ROOT`): ROOT/etc/vigil/vigil.yaml,
    /// ROOT/etc/vigil/rules.d, ROOT/run/vigil/vigil.sock.
    public var paths = DaemonPaths()
    /// `--config`: the configuration file, which must then exist (nil: ROOT/etc/vigil/vigil.yaml
    /// when present, else the built-in defaults).
    public var configFile: String?
    /// `--socket`.
    public var socketPath: String?
    /// `--rules-dir`.
    public var rulesDirectory: String?
    /// `--metrics-port`: turns the listener on.
    public var metricsPort: Int?
    /// `--no-default-rules`.
    public var withoutDefaultRules = false
    /// `-d`: log at debug level whatever the file says.
    public var debug = false
    /// Vigil's version, for the status.
    public var version: String

    /// Defaults: /etc/vigil/vigil.yaml if present.
    public init(version: String) { self.version = version }

    /// The configuration as the file and these options make it (a missing file is an error
    /// only when given with `--config`).
    func load() throws(RuleError) -> DaemonConfig {
        applied(to: try DaemonConfig.load(path: configFile ?? paths.configFile, required: configFile != nil, paths: paths))
    }

    /// `config` with these options applied.
    func applied(to config: DaemonConfig) -> DaemonConfig {
        var config = config
        if let socketPath { config.socketPath = socketPath }
        if let rulesDirectory { config.rulesDirectory = rulesDirectory }
        if let metricsPort {
            config.metrics.enabled = true
            config.metrics.port = metricsPort
        }
        if withoutDefaultRules { config.defaultRules = false }
        if debug { config.logLevel = "debug" }
        return config
    }
}

/// `vigil daemon`: the engine, the control API and the metrics listener as services of one
/// ServiceGroup. SIGTERM/SIGINT shut down gracefully (in reverse order: stop taking SIGHUP;
/// detach the sensors, drain the ring and flush the actions; end the API streams and close the
/// socket; close the metrics listener); SIGHUP reloads the configuration and rules.
public enum Daemon {
    /// Runs until SIGTERM or SIGINT; returns the process's exit status (0 after a graceful
    /// shutdown; 1 when it cannot start, with the reason on standard error).
    public static func run(_ options: DaemonOptions) async -> Int32 {
        let config: DaemonConfig
        do {
            config = try options.load()
        } catch {
            FileHandle.standardError.write(Data("vigil daemon: bad configuration: \(error)\n".utf8))
            return 1
        }
        DaemonLogging.bootstrap(level: config.logLevel)
        let logger = Logger(label: "vigil.daemon")
        do {
            try await start(config, options: options, logger: logger)
            return 0
        } catch {
            logger.critical("\(error)")
            return 1
        }
    }

    private static func start(_ config: DaemonConfig, options: DaemonOptions, logger: Logger) async throws {
        // Trap SIGHUP before the socket exists: whoever sees the socket may send it.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        // The API's alert stream is fed by the actions, after enforcement and dedup: it shows
        // what the sinks get.
        let alertStream = StreamHub(name: "alerts")
        let dispatcher: ActionDispatcher
        do {
            dispatcher = try ActionDispatcher(config: config.actions, logger: Logger(label: "vigil.actions")) { alert in
                alertStream.publish(for: alert.event) { alert.json }
            }
        } catch {
            throw DaemonError("\(config.file ?? "configuration"): \(error)")
        }
        let store = RuleStore(directory: config.rulesDirectory, defaults: config.defaultRules) { rules in
            for rule in rules.rules {
                if let unknown = dispatcher.unknownActions(in: rule.rule.actions).first {
                    return RuleError(location: rule.rule.location, message: "rule '\(rule.rule.name)': unknown action '\(unknown)'; known: \(dispatcher.config.knownActionNames.joined(separator: ", ")) (define others under actions.named in the configuration)")
                }
            }
            return nil
        }
        // Bundles before the rules: a condition may name their fields (prog.NAME.FIELD).
        let bundles = BundleStore(directory: config.stateDirectory + "/bundles", logger: logger)
        bundles.loadSaved()
        let rules: RuleSet
        do { rules = try store.load() } catch { throw DaemonError("rules: \(error)") }
        logger.info("rules: \(rules.rules.count) enabled from \(store.list().count) rule sets (\(config.rulesDirectory)\(config.defaultRules ? " + the embedded defaults" : ""))")
        for warning in rules.warnings { logger.warning("rules: \(warning)") }

        let engine: Engine
        let notifier = SystemdNotifier()
        let loading = DispatchTime.now().uptimeNanoseconds
        do {
            engine = try Engine(rules: rules, ringBytes: config.ringMiB << 20, kernelPushdown: config.kernelPushdown,
                                consumers: [ActionsConsumer(dispatcher: dispatcher)], alerts: alertStream, logger: logger,
                                integrity: config.integrity, notifier: notifier, syscallBounds: config.syscallBounds,
                                fim: config.fim, stateDirectory: config.stateDirectory, dnsBaseline: config.dnsBaseline,
                                bundles: bundles, containerd: config.containerd?.client { [logger] in logger.warning("\($0)") },
                                cri: config.cri?.client { [logger] in logger.warning("\($0)") },
                                docker: DockerClient(socketPath: config.dockerSocket))
        } catch {
            throw DaemonError("cannot load the sensors: \(error)")
        }
        logger.info("sensors loaded and attached in \((DispatchTime.now().uptimeNanoseconds - loading) / 1_000_000) ms")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let apiCounters = HTTPServerCounters(logger: logger)
        let info = DaemonInfo(version: options.version, streamBufferBytes: config.streamBufferBytes, apiLimits: config.api,
                              apiCounters: apiCounters)
        let router = APIRouter(store: store, engine: engine, info: info, bundles: bundles,
                               profiles: ProfileStore(directory: config.stateDirectory + "/seccomp"), logger: logger)
        let authorize = try SocketAccess(group: config.socketGroup)
        let api = HTTPServer(group: group, authorize: { authorize.allows($0) }, limits: config.api, counters: apiCounters,
                             router: { await router.route($0) })
        let apiChannel: any Channel
        do {
            apiChannel = try await SocketFile.bind(config.socketPath, access: authorize) { try await api.bind(unixPath: $0) }
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        var services: [any Service] = []
        if config.metrics.enabled {
            let metrics = HTTPServer(group: group, authorize: nil, limits: config.api, counters: apiCounters) { request in
                MetricsEndpoint.route(request, engine: engine, version: options.version, api: apiCounters)
            }
            do {
                let channel = try await metrics.bind(host: config.metrics.address, port: config.metrics.port)
                services.append(ServerService(channel: channel, hubs: [], socketPath: nil))
                logger.info("metrics: http://\(config.metrics.address):\(config.metrics.port)/metrics")
            } catch {
                try? await apiChannel.close()
                unlink(config.socketPath)
                try? await group.shutdownGracefully()
                throw DaemonError("metrics listener \(config.metrics.address):\(config.metrics.port): \(error)")
            }
        }
        services.append(ServerService(channel: apiChannel, hubs: [engine.events, engine.alerts], socketPath: config.socketPath))
        services.append(EngineService(engine: engine))
        if let label = config.seccompRecordLabel {
            do {
                let recorder = try SeccompLabelRecorder(label: label, store: ProfileStore(directory: config.stateDirectory + "/seccomp"), logger: logger)
                services.append(SeccompRecorderService(recorder: recorder))
            } catch {
                try? await apiChannel.close()
                unlink(config.socketPath)
                try? await group.shutdownGracefully()
                throw DaemonError("seccomp.record: cannot load the seccomp sensor: \(error)")
            }
        }
        let reloader = Reloader(options: options, running: config, store: store, engine: engine, logger: logger)
        services.append(ReloadService(hangups: hangups, reload: { reloader.reload() }))
        logger.notice("vigil daemon \(options.version) (pid \(getpid())): API on \(config.socketPath)")

        var groupConfig = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                                                    cancellationSignals: [], logger: logger)
        groupConfig.maximumGracefulShutdownDuration = .seconds(10)
        let serviceGroup = ServiceGroup(configuration: groupConfig)
        defer { unlink(config.socketPath) }
        // The sensors are attached and the API listens: systemd may start what comes after.
        notifier?.send("READY=1\nMAINPID=\(getpid())")
        defer { notifier?.send("STOPPING=1") }
        do {
            try await serviceGroup.run()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try? await group.shutdownGracefully()
        logger.notice("vigil daemon stopped")
    }
}

/// A reason the daemon cannot start.
struct DaemonError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// SIGHUP: reads the configuration file again and reloads the rules. A bad file keeps what runs.
final class Reloader: Sendable {
    let options: DaemonOptions
    let running: DaemonConfig
    let store: RuleStore
    let engine: Engine
    let logger: Logger

    init(options: DaemonOptions, running: DaemonConfig, store: RuleStore, engine: Engine, logger: Logger) {
        self.options = options
        self.running = running
        self.store = store
        self.engine = engine
        self.logger = logger
    }

    func reload() {
        let config: DaemonConfig
        do {
            config = try options.load()
        } catch {
            logger.error("reload: bad configuration, nothing changed: \(error)")
            return
        }
        DaemonLogging.setLevel(config.logLevel)
        var restartOnly: [String] = []
        if config.socketPath != running.socketPath { restartOnly.append("socket") }
        if config.socketGroup != running.socketGroup { restartOnly.append("socket_group") }
        if config.rulesDirectory != running.rulesDirectory { restartOnly.append("rules_dir") }
        if config.stateDirectory != running.stateDirectory { restartOnly.append("state_dir") }
        if config.fim != running.fim { restartOnly.append("fim") }
        if config.dnsBaseline != running.dnsBaseline { restartOnly.append("dns_baseline") }
        if config.seccompRecordLabel != running.seccompRecordLabel { restartOnly.append("seccomp") }
        if config.ringMiB != running.ringMiB { restartOnly.append("ring_mib") }
        if config.metrics != running.metrics { restartOnly.append("metrics") }
        if config.kernelPushdown != running.kernelPushdown { restartOnly.append("kernel_pushdown") }
        if config.streamBufferBytes != running.streamBufferBytes { restartOnly.append("stream_buffer_kib") }
        if config.api != running.api { restartOnly.append("api") }
        if config.actions != running.actions { restartOnly.append("actions") }
        if config.integrity != running.integrity { restartOnly.append("integrity") }
        if config.dockerSocket != running.dockerSocket { restartOnly.append("docker") }
        if !restartOnly.isEmpty {
            logger.warning("reload: \(restartOnly.joined(separator: ", ")) changed and take effect at the next start")
        }
        do {
            let rules = try store.load(defaults: config.defaultRules)
            engine.setRules(rules)
            logger.notice("reload: \(rules.rules.count) rules enabled from \(store.list().count) rule sets")
            for warning in rules.warnings { logger.warning("reload: rules: \(warning)") }
        } catch {
            logger.error("reload: the rules that were running keep running: \(error)")
        }
    }
}

/// The event thread as a service: graceful shutdown detaches, drains, then flushes the consumers.
struct EngineService: Service {
    let engine: Engine

    func run() async throws {
        let engine = self.engine
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
                let thread = Thread {
                    do {
                        try engine.run()
                        done.resume()
                    } catch {
                        done.resume(throwing: error)
                    }
                }
                thread.name = "vigil-events"
                thread.start()
            }
        } onCancelOrGracefulShutdown: {
            engine.requestStop()
        }
        await engine.flushConsumers()
    }
}

/// A listener as a service: on shutdown ends its streams (after what they buffered), closes.
struct ServerService: Service {
    let channel: any Channel
    let hubs: [StreamHub]
    let socketPath: String?

    func run() async throws {
        try? await gracefulShutdown()
        for hub in hubs { hub.closeAll() }
        // Let the streams write their tail and end (each leaves its hub when its connection closes).
        for _ in 0..<100 where hubs.contains(where: { !$0.current.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        try? await channel.close()
        if let socketPath { unlink(socketPath) }
    }
}

/// SIGHUP -> reload, until shutdown.
struct ReloadService: Service {
    let hangups: UnixSignalsSequence
    let reload: @Sendable () -> Void

    func run() async throws {
        for await _ in hangups.cancelOnGracefulShutdown() { reload() }
    }
}

/// Who may use the API: root, and members of the configured group.
struct SocketAccess: Sendable {
    let groupName: String?
    let gid: gid_t?

    init(group: String?) throws {
        groupName = group
        guard let group else { gid = nil; return }
        guard let entry = getgrnam(group) else { throw DaemonError("socket_group '\(group)': no such group") }
        gid = entry.pointee.gr_gid
    }

    /// Root, or a peer whose effective gid is the group or whose user is a member of it.
    func allows(_ peer: PeerCredentials) -> Bool {
        if peer.uid == 0 { return true }
        guard let gid else { return false }
        if peer.gid == gid { return true }
        guard let user = getpwuid(peer.uid) else { return false }
        let name = String(cString: user.pointee.pw_name)
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, user.pointee.pw_gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(name, user.pointee.pw_gid, &groups, &count) >= 0 else { return false }
        }
        return groups.prefix(Int(count)).contains(gid)
    }
}

/// The API socket's file: its directory, a stale file left by a killed daemon, its mode and group.
enum SocketFile {
    /// Creates the directory (with its parents, 0755), removes a stale socket (refusing when a daemon answers on it),
    /// binds with a umask that leaves no window of wider access, then sets 0600 root (0660 with
    /// the group).
    static func bind(_ path: String, access: SocketAccess, _ bind: (String) async throws -> any Channel) async throws -> any Channel {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            do { try Directories.create(directory) } catch {
                throw DaemonError("cannot create the socket's directory \(directory): \(error)")
            }
        }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else { throw DaemonError("\(path) exists and is not a socket: remove it or set 'socket'") }
            do {
                _ = try UnixHTTPClient(socketPath: path, timeout: .seconds(1)).request("GET", "/v1/status")
                throw DaemonError("another vigil daemon is listening on \(path)")
            } catch let error as DaemonError {
                throw error
            } catch DockerClientError.socketUnavailable(_, let code) where code == ECONNREFUSED {
                unlink(path) // left by a daemon that died without cleaning up
            } catch {
                throw DaemonError("something answers on \(path) (\(error)): is another daemon running?")
            }
        }
        let previous = umask(0o177)
        let channel: any Channel
        do {
            channel = try await bind(path)
            umask(previous)
        } catch {
            umask(previous)
            throw DaemonError("cannot listen on \(path): \(error)")
        }
        if let gid = access.gid {
            guard chown(path, 0, gid) == 0, chmod(path, 0o660) == 0 else {
                let code = errno
                try? await channel.close()
                throw DaemonError("cannot give \(path) to group \(access.groupName ?? ""): \(String(cString: strerror(code)))")
            }
        } else {
            chmod(path, 0o600)
        }
        return channel
    }
}

/// `/metrics` (Prometheus text format) and `/healthz` on the optional TCP listener.
enum MetricsEndpoint {
    static func route(_ request: HTTPRequest, engine: Engine, version: String, api: HTTPServerCounters) -> HTTPReply {
        guard request.method == "GET" else { return .error(405, "only GET") }
        switch request.path {
        case "/metrics":
            return .body(status: 200, contentType: PrometheusText.contentType, text: text(engine, version: version, api: api))
        case "/healthz":
            let age = DispatchTime.now().uptimeNanoseconds &- engine.snapshot.takenAt
            return age < 2_000_000_000 ? .body(status: 200, contentType: "text/plain", text: "ok\n")
                : .body(status: 503, contentType: "text/plain", text: "the event thread has not reported for \(age / 1_000_000) ms\n")
        default:
            return .error(404, "no such endpoint: \(request.path) (use /metrics or /healthz)")
        }
    }

    /// Every metric of the daemon.
    static func text(_ engine: Engine, version: String, api: HTTPServerCounters) -> String {
        let snapshot = engine.snapshot
        var out = "# HELP vigil_build_info Vigil's version.\n# TYPE vigil_build_info gauge\n"
        out += "vigil_build_info{version=\(PrometheusText.label(version))} 1\n"
        out += "# HELP vigil_uptime_seconds Seconds since the daemon started.\n# TYPE vigil_uptime_seconds gauge\n"
        out += "vigil_uptime_seconds \(PrometheusText.number(Date().timeIntervalSince(engine.started).rounded()))\n"
        let families: [(String, String, KeyPath<SensorCounters, UInt64>)] = [
            ("vigil_sensor_events_total", "Events the sensor emitted to the ring, per CPU.", \.emitted),
            ("vigil_sensor_filtered_total", "Events dropped by the in-kernel filters, per CPU.", \.filtered),
            ("vigil_sensor_lost_total", "Events lost (the ring full, a syscall return the kprobe variants missed), per CPU.", \.lost),
            ("vigil_sensor_killed_total", "Processes sent SIGKILL in the kernel by kernel_kill rules, per CPU.", \.killed),
            ("vigil_sensor_unfollowed_total", "Forks not followed because the followed tree's pids map was full, per CPU.", \.unfollowed),
        ]
        for (name, help, field) in families {
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n"
            for sensor in snapshot.sensors {
                for (cpu, counters) in sensor.perCPU.enumerated() {
                    out += "\(name){sensor=\(PrometheusText.label(sensor.name)),cpu=\"\(cpu)\"} \(counters[keyPath: field])\n"
                }
            }
        }
        out += "# HELP vigil_stream_records_total Records read from the ring by userspace.\n# TYPE vigil_stream_records_total counter\n"
        out += "vigil_stream_records_total \(snapshot.stream.records)\n"
        out += "# HELP vigil_stream_undecodable_total Records that did not decode.\n# TYPE vigil_stream_undecodable_total counter\n"
        out += "vigil_stream_undecodable_total \(snapshot.stream.undecodable)\n"
        out += "# HELP vigil_stream_filtered_total State changes (exec, fork, exit) the filters dropped after enrichment.\n"
        out += "# TYPE vigil_stream_filtered_total counter\nvigil_stream_filtered_total \(snapshot.stream.filtered)\n"
        out += "# HELP vigil_rules_enabled Rules loaded and enabled.\n# TYPE vigil_rules_enabled gauge\n"
        out += "vigil_rules_enabled \(snapshot.rules.enabled)\n"
        out += "# HELP vigil_stream_dropped_lines_total Lines of the API's event and alert streams dropped for slow clients.\n"
        out += "# TYPE vigil_stream_dropped_lines_total counter\n"
        out += "vigil_stream_dropped_lines_total{stream=\"events\"} \(engine.events.totalDropped)\n"
        out += "vigil_stream_dropped_lines_total{stream=\"alerts\"} \(engine.alerts.totalDropped)\n"
        engine.metrics.write(to: &out)
        let tamper = engine.tamperStatus
        out += PrometheusText.family("vigil_heartbeats_total", "counter",
                                     "Heartbeats started, come back through the sensors, and silent (not back within the bound).", label: "result",
                                     [("sent", Int(tamper.heartbeatsSent)), ("returned", Int(tamper.heartbeatsReturned)), ("silent", Int(tamper.heartbeatsSilent))])
        out += "# HELP vigil_tamper_alerts_total Tamper alerts (sensor silent, program detached, filter changed), per rule.\n"
        out += "# TYPE vigil_tamper_alerts_total counter\n"
        for rule in [Engine.sensorSilentRule, Engine.programDetachedRule, Engine.filterChangedRule] {
            out += "vigil_tamper_alerts_total{rule=\(PrometheusText.label(rule))} \(tamper.alerts[rule] ?? 0)\n"
        }
        let dns = snapshot.dnsBaseline
        out += PrometheusText.family("vigil_dns_baseline_images", "gauge", "Container images with a DNS baseline (dns.name.new), learning and learned.",
                                     label: "state", [("learning", dns.imagesLearning), ("learned", dns.images - dns.imagesLearning)])
        out += PrometheusText.family("vigil_dns_baseline_names", "gauge", "DNS names kept in the images' baselines.", [("", dns.names)])
        out += PrometheusText.family("vigil_dns_baseline_lookups_total", "counter",
                                     "Lookups in containers: judged against their image's baseline (known, or new: after the window and not in it), or not judged (over the image bound, no image name).",
                                     label: "result", [("known", Int(dns.lookups - dns.newNames)), ("new", Int(dns.newNames)),
                                                       ("over_image_bound", Int(dns.lookupsOverImageBound)), ("without_image", Int(dns.lookupsWithoutImage))])
        out += PrometheusText.family("vigil_dns_baseline_names_not_kept_total", "counter",
                                     "Names not kept: their image's baseline held dns_baseline.max_names.", [("", Int(dns.namesNotKept))])
        let docker = engine.dockerStatus
        out += PrometheusText.family("vigil_docker_events_connected", "gauge",
                                     "Whether the Docker Engine's event stream is subscribed now.", [("", docker.events.connected ? 1 : 0)])
        out += PrometheusText.family("vigil_docker_events_subscriptions_total", "counter",
                                     "Subscriptions to the Docker Engine's event stream: connected (the first and each reconnection), failed (ended or could not be opened: the engine stopped, restarted or is missing).",
                                     label: "result", [("connected", Int(docker.events.connections)), ("failed", Int(docker.events.failures))])
        out += PrometheusText.family("vigil_container_metadata_fetches_total", "counter",
                                     "Container metadata fetches (Docker, then containerd): found, not_found, failed (the runtime down or slow: the events keep the container's id, without name and image).",
                                     label: "result", [("found", Int(docker.metadata.found)), ("not_found", Int(docker.metadata.notFound)),
                                                       ("failed", Int(docker.metadata.failed))])
        if let containerd = engine.containerd?.counters {
            out += Self.runtimeLookupMetrics("vigil_containerd", containerd, asked: "Containers asked of containerd (the ones Docker does not know)",
                                             notFound: "not in any namespace asked (NotFound)", runtime: "containerd")
        }
        if let cri = engine.cri?.counters {
            out += Self.runtimeLookupMetrics("vigil_cri", cri, asked: "Containers asked of the CRI runtime (cri.socket; the ones Docker and containerd do not know)",
                                             notFound: "no such container or pod sandbox (NotFound)", runtime: "the CRI runtime")
        }
        api.write(to: &out)
        for consumer in engine.alertConsumers { consumer.writeMetrics(to: &out) }
        return out
    }

    /// A runtime API client's lookups (`PREFIX_lookups_total` by result) and failures
    /// (`PREFIX_failures_total` by kind).
    static func runtimeLookupMetrics(_ prefix: String, _ counters: RuntimeLookupCounters, asked: String, notFound: String, runtime: String) -> String {
        PrometheusText.family("\(prefix)_lookups_total", "counter",
                              "\(asked): found, \(notFound), or failed (\(runtime) down, slow, answering garbage or a gRPC status other than OK and NotFound; their fields stay empty).",
                              label: "result", [("found", Int(counters.found)), ("not_found", Int(counters.notFound)),
                                                ("failed", Int(counters.failures))])
            + PrometheusText.family("\(prefix)_failures_total", "counter",
                                    "Failed lookups per kind: the gRPC status \(runtime) answered (PermissionDenied, Unavailable, ...), or unavailable, io, timed out, malformed, aborted.",
                                    label: "kind", counters.failuresByKind.sorted { $0.key < $1.key }.map { ($0.key, Int($0.value)) })
    }
}
