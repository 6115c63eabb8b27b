import Foundation
import VigilActions
import VigilContainers
import VigilEnrichment
import VigilFIM
import VigilRules
import VigilSensors
import Yams

/// Where the daemon's files are by default: etc/vigil/vigil.yaml, etc/vigil/rules.d and
/// run/vigil/vigil.sock under a root, `/` unless `vigil daemon --root DIR` or `VIGIL_ROOT=DIR`
/// moves them all (tests, or trying the daemon without touching /etc and /run). Paths written in
/// the configuration file or given as flags are used as they are.
public struct DaemonPaths: Sendable, Equatable {
    /// The directory the default paths hang under.
    public var root: String

    /// The paths under `root` (default `/`; a relative root is taken from the current directory).
    public init(root: String = "/") {
        self.root = root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root
    }

    /// The root from the environment: `$VIGIL_ROOT` when set and not empty, else `/`.
    public static var environment: DaemonPaths {
        let root = ProcessInfo.processInfo.environment["VIGIL_ROOT"] ?? ""
        return DaemonPaths(root: root.isEmpty ? "/" : root)
    }

    /// ROOT/etc/vigil/vigil.yaml.
    public var configFile: String { under("etc/vigil/vigil.yaml") }
    /// ROOT/etc/vigil/rules.d.
    public var rulesDirectory: String { under("etc/vigil/rules.d") }
    /// ROOT/run/vigil/vigil.sock.
    public var socket: String { under("run/vigil/vigil.sock") }
    /// ROOT/var/lib/vigil: the daemon's state (the actions' spool below it).
    public var stateDirectory: String { under("var/lib/vigil") }

    private func under(_ relative: String) -> String {
        var base = root
        while base.hasSuffix("/") { base.removeLast() }
        return base + "/" + relative
    }
}

/// The daemon's settings: /etc/vigil/vigil.yaml (every key is documented in docs/config.md with
/// its default), then command-line flags on top.
public struct DaemonConfig: Sendable, Equatable {
    /// The control API's unix socket (`socket`).
    public var socketPath: String
    /// A group whose members may use the API besides root (`socket_group`); nil: root only.
    public var socketGroup: String?
    /// Where rule files live and API-created rules are written (`rules_dir`).
    public var rulesDirectory: String
    /// The daemon's state (`state_dir`): network actions keep alerts waiting for delivery in
    /// its `spool` directory, one directory per action.
    public var stateDirectory: String {
        didSet { actions.spoolDirectory = stateDirectory + "/spool" }
    }
    /// The host name alerts carry (`hostname`: their JSON's `hostname`, the NATS subject's
    /// host); nil: this machine's (`gethostname`). For hosts that share a name, or containers.
    public var hostname: String? {
        didSet { actions.hostname = hostname }
    }
    /// Which fields alerts' `output_fields` hold (`output_fields`): every field of the event
    /// (`all`, the default) or, as Falco, those the rule's output names (`output`).
    public var outputFields = OutputFields.all {
        didSet { actions.outputFields = outputFields }
    }
    /// Whether the embedded default ruleset runs (`default_rules`).
    public var defaultRules = true
    /// Size of the sensors' shared ring in MiB, a power of two (`ring_mib`). Its data pages are
    /// mapped twice (for records that wrap), so it adds twice its size to resident memory.
    public var ringMiB = 8
    /// Apply the rules' kernel pushdown (command names, containers only) while no event stream
    /// is open (`kernel_pushdown`).
    public var kernelPushdown = true
    /// Bytes an API stream subscriber may have waiting before further lines are dropped and
    /// counted (`stream_buffer_kib`, in KiB).
    public var streamBufferBytes = 4 << 20
    /// Bytes kept of syscall arguments: buffers (`syscall_buffer_bytes`, default 80) and strings
    /// and paths (`syscall_string_bytes`, default 4096); a cut value says so.
    public var syscallBounds = SyscallBounds()
    /// The Prometheus listener (`metrics:`).
    public var metrics = Metrics()
    /// Limits on the API's clients (`api:`; they apply to the metrics listener too).
    public var api = HTTPLimits()
    /// `trace`, `debug`, `info`, `notice`, `warning`, `error` or `critical` (`log_level`).
    public var logLevel = "info"
    /// Tamper evidence (`integrity:`): the heartbeat and the check of links and filter maps.
    public var integrity = Integrity()
    /// What happens to alerts (`actions:`, VigilActions; docs/config.md#actions).
    public var actions = ActionsConfig()
    /// File integrity monitoring (`fim:`; docs/fim.md): what is watched. Empty: the fim sensor
    /// is not loaded.
    public var fim = WatchSpec()
    /// `seccomp.record.label` (docs/seccomp.md): containers with this label (`KEY` or
    /// `KEY=VALUE`) are recorded from their start and merged into their image's kept profile
    /// (STATE_DIR/seccomp) when they stop. nil: the daemon records nothing.
    public var seccompRecordLabel: String?
    /// The per-image baselines of DNS names (`dns_baseline:`; dns.name.new): the learning window
    /// and the bounds. Kept under STATE_DIR/dns-baseline while a rule reads dns.name.new.
    public var dnsBaseline = DNSBaseline.Settings()
    /// containerd's API (`containerd:`): asked for the containers Docker does not know (a
    /// kubelet's CRI containers); nil (`containerd: {enabled: false}`): not asked.
    public var containerd: Containerd? = Containerd()
    /// A CRI runtime's API (`cri:`, CRI-O's socket by default): asked for the containers neither
    /// Docker nor containerd knows; nil (`cri: {enabled: false}`): not asked.
    public var cri: CRI? = CRI()
    /// The Docker Engine's API socket (`docker.socket`): container names, images and labels,
    /// and its event stream.
    public var dockerSocket = DockerClient.defaultSocketPath
    /// The file these settings came from (nil: built-in defaults only).
    public var file: String?

    /// Where containerd's API is and what is asked (`containerd:`; docs/config.md#containerd).
    public struct Containerd: Sendable, Equatable {
        /// Its socket.
        public var socket = ContainerdClient.defaultSocketPath
        /// The containerd namespaces asked, in order.
        public var namespaces = ContainerdClient.defaultNamespaces
        /// How long one connect, send or receive may wait, ms.
        public var timeoutMs = 1000

        /// The defaults.
        public init() {}

        /// A client with these settings; `log` receives its first failure of each kind.
        public func client(log: @escaping @Sendable (String) -> Void = { _ in }) -> ContainerdClient {
            ContainerdClient(socketPath: socket, namespaces: namespaces, timeout: .milliseconds(timeoutMs), log: log)
        }
    }

    /// The optional Prometheus listener.
    public struct Metrics: Sendable, Equatable {
        /// Off by default (`metrics.enabled`).
        public var enabled = false
        /// The address to listen on (`metrics.address`).
        public var address = "127.0.0.1"
        /// The TCP port (`metrics.port`).
        public var port = 9376
        /// Built-in defaults.
        public init() {}
    }

    /// Where a CRI runtime's API is (`cri:`; docs/config.md#cri): CRI-O's socket by default.
    public struct CRI: Sendable, Equatable {
        /// Its socket.
        public var socket = CRIClient.defaultSocketPath
        /// How long one connect, send or receive may wait, ms.
        public var timeoutMs = 1000

        /// The defaults.
        public init() {}

        /// A client with these settings; `log` receives its first failure of each kind.
        public func client(log: @escaping @Sendable (String) -> Void = { _ in }) -> CRIClient {
            CRIClient(socketPath: socket, timeout: .milliseconds(timeoutMs), log: log)
        }
    }

    /// Tamper evidence's timing (`integrity:`); 0 turns a part off.
    public struct Integrity: Sendable, Equatable {
        /// Milliseconds between heartbeats (`integrity.heartbeat_interval_ms`).
        public var heartbeatIntervalMs = 1000
        /// Milliseconds a heartbeat may take to come back before "Vigil sensor silent"
        /// (`integrity.heartbeat_bound_ms`).
        public var heartbeatBoundMs = 2000
        /// Milliseconds between checks of links and filter maps (`integrity.check_interval_ms`).
        public var checkIntervalMs = 1000
        /// At most one "Vigil events lost" alert per this many milliseconds
        /// (`integrity.events_lost_interval_ms`).
        public var eventsLostIntervalMs = 10_000
        /// Built-in defaults.
        public init() {}
    }

    /// The built-in defaults, their paths under `paths` (default: under `/`).
    public init(paths: DaemonPaths = DaemonPaths()) {
        socketPath = paths.socket
        rulesDirectory = paths.rulesDirectory
        stateDirectory = paths.stateDirectory
        actions.spoolDirectory = stateDirectory + "/spool"
    }

    /// Reads `path`. A missing file gives the defaults when `required` is false; any bad key or
    /// value is a `RuleError` naming FILE:LINE:COL. Keys the file does not set keep their
    /// defaults under `paths`.
    public static func load(path: String, required: Bool, paths: DaemonPaths = DaemonPaths()) throws(RuleError) -> DaemonConfig {
        let start = SourceLocation(file: path, line: 1, column: 1)
        guard FileManager.default.fileExists(atPath: path) else {
            if required { throw RuleError(location: start, message: "no such configuration file") }
            return DaemonConfig(paths: paths)
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw RuleError(location: start, message: "cannot read the configuration file (or it is not UTF-8)")
        }
        var config = try parse(text, file: path, paths: paths)
        config.file = path
        return config
    }

    /// Parses the text of a configuration file; keys it does not set keep their defaults under
    /// `paths`.
    public static func parse(_ text: String, file: String, paths: DaemonPaths = DaemonPaths()) throws(RuleError) -> DaemonConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            switch error {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
                throw RuleError(location: SourceLocation(file: file, line: mark.line, column: mark.column), message: "YAML: \(problem)")
            default:
                throw RuleError(location: SourceLocation(file: file, line: 1, column: 1), message: "YAML: \(error)")
            }
        } catch {
            throw RuleError(location: SourceLocation(file: file, line: 1, column: 1), message: "YAML: \(error)")
        }
        var config = DaemonConfig(paths: paths)
        guard let root else { return config }
        let reader = ConfigReader(file: file)
        for (key, value) in try reader.mapping(root, "the configuration") {
            switch key.name {
            case "socket": config.socketPath = try reader.path(value, key.name)
            case "socket_group": config.socketGroup = try reader.optionalString(value, key.name)
            case "rules_dir": config.rulesDirectory = try reader.path(value, key.name)
            case "state_dir": config.stateDirectory = try reader.path(value, key.name)
            case "hostname":
                guard let name = try reader.optionalString(value, key.name) else {
                    config.hostname = nil
                    continue
                }
                guard name.count <= 255, name.allSatisfy({ !$0.isWhitespace && $0.asciiValue.map { $0 >= 0x21 && $0 < 0x7f } ?? false }) else {
                    throw reader.error(value, "'hostname' must be 1-255 printable ASCII characters without spaces")
                }
                config.hostname = name
            case "output_fields":
                let name = try reader.string(value, key.name)
                guard let choice = OutputFields(rawValue: name) else {
                    throw reader.error(value, "'output_fields' must be one of \(OutputFields.allCases.map(\.rawValue).joined(separator: ", ")), not '\(name)'")
                }
                config.outputFields = choice
            case "default_rules": config.defaultRules = try reader.bool(value, key.name)
            case "kernel_pushdown": config.kernelPushdown = try reader.bool(value, key.name)
            case "ring_mib":
                let mib = try reader.int(value, key.name)
                guard mib > 0, mib & (mib - 1) == 0 else { throw reader.error(value, "'ring_mib' must be a power of two") }
                config.ringMiB = mib
            case "stream_buffer_kib":
                let kib = try reader.int(value, key.name)
                guard kib >= 64 else { throw reader.error(value, "'stream_buffer_kib' must be at least 64") }
                config.streamBufferBytes = kib << 10
            case "syscall_buffer_bytes", "syscall_string_bytes":
                let bytes = try reader.int(value, key.name)
                var bounds = config.syscallBounds
                if key.name == "syscall_buffer_bytes" { bounds.bufferBytes = bytes } else { bounds.stringBytes = bytes }
                if let problem = bounds.problem { throw reader.error(value, "'\(key.name)': \(problem)") }
                config.syscallBounds = bounds
            case "log_level":
                let level = try reader.string(value, key.name)
                guard Self.logLevels.contains(level) else {
                    throw reader.error(value, "'log_level' must be one of \(Self.logLevels.joined(separator: ", "))")
                }
                config.logLevel = level
            case "metrics":
                for (sub, subValue) in try reader.mapping(value, "metrics") {
                    switch sub.name {
                    case "enabled": config.metrics.enabled = try reader.bool(subValue, "metrics.enabled")
                    case "address": config.metrics.address = try reader.string(subValue, "metrics.address")
                    case "port":
                        let port = try reader.int(subValue, "metrics.port")
                        guard (1...65535).contains(port) else { throw reader.error(subValue, "'metrics.port' must be 1-65535") }
                        config.metrics.port = port
                    default: throw reader.error(sub.node, "unknown key 'metrics.\(sub.name)': use enabled, address, port")
                    }
                }
            case "api":
                for (sub, subValue) in try reader.mapping(value, "api") {
                    guard ["max_header_kib", "request_timeout_seconds", "max_connections", "max_subscribers"].contains(sub.name) else {
                        throw reader.error(sub.node, "unknown key 'api.\(sub.name)': use max_header_kib, request_timeout_seconds, max_connections, max_subscribers")
                    }
                    let number = try reader.int(subValue, "api.\(sub.name)")
                    guard number > 0 else { throw reader.error(subValue, "'api.\(sub.name)' must be at least 1") }
                    switch sub.name {
                    case "max_header_kib": config.api.maxHeaderBytes = number << 10
                    case "request_timeout_seconds": config.api.requestTimeout = .seconds(number)
                    case "max_connections": config.api.maxConnections = number
                    case "max_subscribers": config.api.maxSubscribers = number
                    default: break
                    }
                }
            case "integrity":
                for (sub, subValue) in try reader.mapping(value, "integrity") {
                    let number = try reader.int(subValue, "integrity.\(sub.name)")
                    guard number >= 0 else { throw reader.error(subValue, "'integrity.\(sub.name)' must be 0 (off) or more") }
                    switch sub.name {
                    case "heartbeat_interval_ms": config.integrity.heartbeatIntervalMs = number
                    case "heartbeat_bound_ms":
                        guard number >= 100 else { throw reader.error(subValue, "'integrity.heartbeat_bound_ms' must be at least 100") }
                        config.integrity.heartbeatBoundMs = number
                    case "check_interval_ms": config.integrity.checkIntervalMs = number
                    case "events_lost_interval_ms": config.integrity.eventsLostIntervalMs = number
                    default: throw reader.error(sub.node, "unknown key 'integrity.\(sub.name)': use heartbeat_interval_ms, heartbeat_bound_ms, check_interval_ms, events_lost_interval_ms")
                    }
                }
            case "dns_baseline":
                for (sub, subValue) in try reader.mapping(value, "dns_baseline") {
                    let number = try reader.int(subValue, "dns_baseline.\(sub.name)")
                    guard number >= 1 else { throw reader.error(subValue, "'dns_baseline.\(sub.name)' must be at least 1") }
                    switch sub.name {
                    case "learning_seconds": config.dnsBaseline.learningNs = UInt64(number) * 1_000_000_000
                    case "max_names": config.dnsBaseline.maxNames = number
                    case "max_images": config.dnsBaseline.maxImages = number
                    default: throw reader.error(sub.node, "unknown key 'dns_baseline.\(sub.name)': use learning_seconds, max_names, max_images")
                    }
                }
            case "docker":
                for (sub, subValue) in try reader.mapping(value, "docker") {
                    guard sub.name == "socket" else { throw reader.error(sub.node, "unknown key 'docker.\(sub.name)': use socket") }
                    config.dockerSocket = try reader.string(subValue, "docker.socket")
                    guard config.dockerSocket.hasPrefix("/") else { throw reader.error(subValue, "'docker.socket' must be an absolute path") }
                }
            case "containerd":
                var containerd = config.containerd ?? Containerd()
                var namespaces = containerd.namespaces
                let enabled = try reader.runtimeAPI(value, "containerd", socket: &containerd.socket, timeoutMs: &containerd.timeoutMs,
                                                    otherKeys: ["namespaces"]) { _, subValue throws(RuleError) in
                    namespaces = try reader.strings(subValue, "containerd.namespaces")
                    guard !namespaces.isEmpty, !namespaces.contains("") else {
                        throw reader.error(subValue, "'containerd.namespaces' must list at least one namespace")
                    }
                }
                containerd.namespaces = namespaces
                config.containerd = enabled ? containerd : nil
            case "cri":
                var cri = config.cri ?? CRI()
                let enabled = try reader.runtimeAPI(value, "cri", socket: &cri.socket, timeoutMs: &cri.timeoutMs)
                config.cri = enabled ? cri : nil
            case "fim":
                config.fim = try reader.fim(value)
            case "seccomp":
                config.seccompRecordLabel = try reader.seccomp(value)
            case "actions":
                config.actions = try reader.actions(value)
                config.actions.spoolDirectory = config.stateDirectory + "/spool"
                config.actions.hostname = config.hostname
                config.actions.outputFields = config.outputFields
            default:
                throw reader.error(key.node, "unknown key '\(key.name)' (docs/config.md lists them)")
            }
        }
        return config
    }

    /// The log levels `log_level` accepts.
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
}

/// Reads configuration nodes, with FILE:LINE:COL on every error.
private struct ConfigReader {
    let file: String

    func error(_ node: Node, _ message: String) -> RuleError {
        RuleError(location: SourceLocation(file: file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1), message: message)
    }

    func mapping(_ node: Node, _ what: String) throws(RuleError) -> [(key: (name: String, node: Node), value: Node)] {
        guard case .mapping(let mapping) = node else { throw error(node, "\(what) must be a mapping of keys to values") }
        var seen: Set<String> = []
        var result: [(key: (name: String, node: Node), value: Node)] = []
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else { throw error(key, "keys must be strings") }
            guard seen.insert(scalar.string).inserted else { throw error(key, "duplicate key '\(scalar.string)'") }
            result.append(((scalar.string, key), value))
        }
        return result
    }

    func string(_ node: Node, _ key: String) throws(RuleError) -> String {
        guard case .scalar(let scalar) = node else { throw error(node, "'\(key)' must be a string") }
        return scalar.string
    }

    func optionalString(_ node: Node, _ key: String) throws(RuleError) -> String? {
        let text = try string(node, key)
        return text.isEmpty || text == "~" || text == "null" ? nil : text
    }

    func path(_ node: Node, _ key: String) throws(RuleError) -> String {
        let text = try string(node, key)
        guard text.hasPrefix("/") else { throw error(node, "'\(key)' must be an absolute path") }
        return text
    }

    func bool(_ node: Node, _ key: String) throws(RuleError) -> Bool {
        guard case .scalar(let scalar) = node, let value = Bool(scalar.string.lowercased()) else {
            throw error(node, "'\(key)' must be true or false")
        }
        return value
    }

    /// The `actions:` section, decoded by VigilActions; an error points at the key it names.
    func actions(_ node: Node) throws(RuleError) -> ActionsConfig {
        if case .scalar(let scalar) = node, scalar.string.isEmpty || scalar.string == "~" || scalar.string == "null" { return ActionsConfig() }
        do {
            let yaml = try Yams.serialize(node: node)
            return try YAMLDecoder().decode(ActionsConfig.self, from: yaml)
        } catch {
            var path: [String] = []
            var message = "\(error)"
            switch error {
            case let error as ActionConfigError:
                path = error.path.split(separator: ".").map(String.init)
                message = error.message
            case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
                 DecodingError.keyNotFound(_, let context), DecodingError.dataCorrupted(let context):
                path = context.codingPath.map(\.stringValue)
                message = context.debugDescription
                if case DecodingError.keyNotFound(let key, _) = error { message = "'\(key.stringValue)' is required" }
                // A validation error: "actions.PATH: message", PATH from the section's root.
                // (PATH from the section's root, or from the mapping being decoded.)
                if message.hasPrefix("actions."), let colon = message.range(of: ": ") {
                    let named = message[message.index(message.startIndex, offsetBy: 8)..<colon.lowerBound].split(separator: ".").map(String.init)
                    path = named.starts(with: path) ? named : path + named
                    message = String(message[colon.upperBound...])
                }
            default: break
            }
            let at = Self.deepest(node, path, key: message.hasPrefix("unknown key"))
            throw self.error(at, "actions\(path.isEmpty ? "" : "." + path.joined(separator: ".")): \(message)")
        }
    }

    /// The node the key path leads to, as far as it exists; with `key`, the last key itself
    /// rather than its value.
    static func deepest(_ node: Node, _ path: [String], key: Bool) -> Node {
        var current = node
        for (index, name) in path.enumerated() {
            guard case .mapping(let mapping) = current,
                  let pair = mapping.first(where: { (k, _) in if case .scalar(let s) = k { s.string == name } else { false } })
            else {
                if case .sequence(let items) = current, let item = Int(name), item < items.count { current = items[item]; continue }
                return current
            }
            if key && index == path.count - 1 { return pair.key }
            current = pair.value
        }
        return current
    }

    /// A list of strings (a single string is a list of one).
    func strings(_ node: Node, _ key: String) throws(RuleError) -> [String] {
        if case .scalar = node { return [try string(node, key)] }
        guard case .sequence(let items) = node else { throw error(node, "'\(key)' must be a list of strings") }
        var out: [String] = []
        for item in items { out.append(try string(item, key)) }
        return out
    }

    /// The `seccomp:` section: `record: {label: KEY[=VALUE]}`; the label, or nil.
    /// A runtime API's section (`containerd:`, `cri:`): `enabled` (returned), `socket` (an
    /// absolute path), `timeout_ms` (at least 1), and `otherKeys`, each read by `other`.
    func runtimeAPI(_ node: Node, _ section: String, socket: inout String, timeoutMs: inout Int, otherKeys: [String] = [],
                    other: (String, Node) throws(RuleError) -> Void = { _, _ in }) throws(RuleError) -> Bool {
        var enabled = true
        for (sub, subValue) in try mapping(node, section) {
            switch sub.name {
            case "enabled": enabled = try bool(subValue, "\(section).enabled")
            case "socket":
                socket = try string(subValue, "\(section).socket")
                guard socket.hasPrefix("/") else { throw error(subValue, "'\(section).socket' must be an absolute path") }
            case "timeout_ms":
                let number = try int(subValue, "\(section).timeout_ms")
                guard number >= 1 else { throw error(subValue, "'\(section).timeout_ms' must be at least 1") }
                timeoutMs = number
            case let key where otherKeys.contains(key): try other(key, subValue)
            default:
                let keys = (["enabled", "socket"] + otherKeys + ["timeout_ms"]).joined(separator: ", ")
                throw error(sub.node, "unknown key '\(section).\(sub.name)': use \(keys)")
            }
        }
        return enabled
    }

    func seccomp(_ node: Node) throws(RuleError) -> String? {
        var label: String?
        for (key, value) in try mapping(node, "seccomp") {
            guard key.name == "record" else { throw error(key.node, "unknown key 'seccomp.\(key.name)': use record") }
            for (sub, subValue) in try mapping(value, "seccomp.record") {
                guard sub.name == "label" else { throw error(sub.node, "unknown key 'seccomp.record.\(sub.name)': use label") }
                let text = try string(subValue, "seccomp.record.label")
                let name = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
                guard !name.isEmpty, !name.contains(where: \.isWhitespace) else {
                    throw error(subValue, "'seccomp.record.label' must be KEY or KEY=VALUE (a Docker label), not '\(text)'")
                }
                label = text
            }
        }
        return label
    }

    /// The `fim:` section: profiles, paths, directories (a path, or `path` and `recursive`), globs,
    /// and `containers:` (the same keys, watched in every Docker container; not nested).
    func fim(_ node: Node, inContainers: Bool = false) throws(RuleError) -> WatchSpec {
        var spec = WatchSpec()
        if case .scalar(let scalar) = node, scalar.string.isEmpty || scalar.string == "~" || scalar.string == "null" { return spec }
        func absolute(_ item: Node, _ text: String, _ key: String) throws(RuleError) -> String {
            guard text.hasPrefix("/") else { throw error(item, "'\(key)': '\(text)' must be an absolute path") }
            return text
        }
        for (key, value) in try mapping(node, "fim") {
            switch key.name {
            case "profiles":
                for name in try strings(value, "fim.profiles") {
                    guard let profile = WatchSpec.Profile(rawValue: name) else {
                        throw error(value, "'fim.profiles': unknown profile '\(name)': use \(WatchSpec.Profile.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    spec.profiles.append(profile)
                }
            case "paths":
                for path in try strings(value, "fim.paths") { spec.paths.append(try absolute(value, path, "fim.paths")) }
            case "globs":
                for glob in try strings(value, "fim.globs") { spec.globs.append(try absolute(value, glob, "fim.globs")) }
            case "diff_max_bytes":
                let bytes = try int(value, "fim.diff_max_bytes")
                guard (0...(4 << 20)).contains(bytes) else { throw error(value, "'fim.diff_max_bytes' must be 0 (no diffs) to 4194304") }
                spec.diffMaxBytes = bytes
            case "directories":
                guard case .sequence(let items) = value else { throw error(value, "'fim.directories' must be a list") }
                for item in items {
                    if case .scalar(let scalar) = item {
                        spec.directories.append(.init(try absolute(item, scalar.string, "fim.directories")))
                        continue
                    }
                    var path: String?, recursive = false
                    for (sub, subValue) in try mapping(item, "an entry of fim.directories") {
                        switch sub.name {
                        case "path": path = try absolute(subValue, try string(subValue, "fim.directories.path"), "fim.directories.path")
                        case "recursive": recursive = try bool(subValue, "fim.directories.recursive")
                        default: throw error(sub.node, "unknown key 'fim.directories.\(sub.name)': use path, recursive")
                        }
                    }
                    guard let path else { throw error(item, "an entry of 'fim.directories' needs 'path'") }
                    spec.directories.append(.init(path, recursive: recursive))
                }
            case "containers" where !inContainers:
                spec.containers = try fim(value, inContainers: true)
            default:
                throw error(key.node, "unknown key 'fim.\(inContainers ? "containers." : "")\(key.name)': use profiles, paths, directories, globs, diff_max_bytes\(inContainers ? "" : ", containers")")
            }
        }
        return spec
    }

    func int(_ node: Node, _ key: String) throws(RuleError) -> Int {
        guard case .scalar(let scalar) = node, let value = Int(scalar.string) else { throw error(node, "'\(key)' must be a whole number") }
        return value
    }
}
