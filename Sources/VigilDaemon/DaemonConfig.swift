import Foundation
import VigilRules
import Yams

/// The daemon's settings: /etc/vigil/vigil.yaml (every key is documented in docs/config.md with
/// its default), then command-line flags on top.
public struct DaemonConfig: Sendable, Equatable {
    /// The default configuration file.
    public static let defaultPath = "/etc/vigil/vigil.yaml"

    /// The control API's unix socket (`socket`).
    public var socketPath = "/run/vigil/vigil.sock"
    /// A group whose members may use the API besides root (`socket_group`); nil: root only.
    public var socketGroup: String?
    /// Where rule files live and API-created rules are written (`rules_dir`).
    public var rulesDirectory = "/etc/vigil/rules.d"
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
    /// The Prometheus listener (`metrics:`).
    public var metrics = Metrics()
    /// `trace`, `debug`, `info`, `notice`, `warning`, `error` or `critical` (`log_level`).
    public var logLevel = "info"
    /// Alert output on standard output until actions are configured (`stdout_alerts`): `text`,
    /// `json` or `off`.
    public var stdoutAlerts = "text"
    /// The `actions:` section, for the actions engine to read; nil when the file has none.
    public var actions: ActionsSection?
    /// The file these settings came from (nil: built-in defaults only).
    public var file: String?

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

    /// The built-in defaults.
    public init() {}

    /// Reads `path`. A missing file gives the defaults when `required` is false; any bad key or
    /// value is a `RuleError` naming FILE:LINE:COL.
    public static func load(path: String, required: Bool) throws(RuleError) -> DaemonConfig {
        let start = SourceLocation(file: path, line: 1, column: 1)
        guard FileManager.default.fileExists(atPath: path) else {
            if required { throw RuleError(location: start, message: "no such configuration file") }
            return DaemonConfig()
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw RuleError(location: start, message: "cannot read the configuration file (or it is not UTF-8)")
        }
        var config = try parse(text, file: path)
        config.file = path
        return config
    }

    /// Parses the text of a configuration file.
    public static func parse(_ text: String, file: String) throws(RuleError) -> DaemonConfig {
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
        var config = DaemonConfig()
        guard let root else { return config }
        let reader = ConfigReader(file: file)
        for (key, value) in try reader.mapping(root, "the configuration") {
            switch key.name {
            case "socket": config.socketPath = try reader.path(value, key.name)
            case "socket_group": config.socketGroup = try reader.optionalString(value, key.name)
            case "rules_dir": config.rulesDirectory = try reader.path(value, key.name)
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
            case "log_level":
                let level = try reader.string(value, key.name)
                guard Self.logLevels.contains(level) else {
                    throw reader.error(value, "'log_level' must be one of \(Self.logLevels.joined(separator: ", "))")
                }
                config.logLevel = level
            case "stdout_alerts":
                let mode = try reader.string(value, key.name)
                guard ["text", "json", "off"].contains(mode) else { throw reader.error(value, "'stdout_alerts' must be text, json or off") }
                config.stdoutAlerts = mode
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
            case "actions":
                config.actions = ActionsSection(file: file, text: text, line: value.mark?.line ?? 1)
            default:
                throw reader.error(key.node, "unknown key '\(key.name)' (docs/config.md lists them)")
            }
        }
        return config
    }

    /// The log levels `log_level` accepts.
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
}

/// Where the `actions:` section is. Yams nodes are not Sendable, so the section is kept as the
/// whole file's text: compose it again and read the `actions` key, and errors get the file's own
/// line and column.
public struct ActionsSection: Sendable, Equatable {
    /// The configuration file.
    public var file: String
    /// The whole file's text.
    public var text: String
    /// The line the section's value starts on.
    public var line: Int
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

    func int(_ node: Node, _ key: String) throws(RuleError) -> Int {
        guard case .scalar(let scalar) = node, let value = Int(scalar.string) else { throw error(node, "'\(key)' must be a whole number") }
        return value
    }
}
