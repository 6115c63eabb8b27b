import Foundation
import VigilEvents
import VigilRules

/// The kinds of action. Each built-in name (`stdout`, `log`, `kill`, `container_pause`,
/// `container_unpause`, `container_stop`, `container_kill`) is an action of the kind of the same
/// name with default settings; `named` actions in the configuration pick a kind with `type:`.
public enum ActionKind: String, Sendable, Codable, CaseIterable {
    /// Standard output, text or JSON lines.
    case stdout
    /// The daemon's own log (swift-log), at a level from the alert's priority.
    case log
    /// A file of JSON lines with size-based rotation.
    case file
    /// RFC 5424 syslog over a unix datagram socket, UDP or TCP.
    case syslog
    /// HTTP POST of the alert's JSON (Falco's output shape).
    case webhook
    /// HTTP POST of a Slack-compatible payload (`text`, `attachments`).
    case slack
    /// Mail over SMTP.
    case email
    /// A program run with an argv (never a shell), the alert as JSON on stdin and in VIGIL_* variables.
    case exec
    /// SIGKILL to the process from userspace (`kill(2)`).
    case kill
    /// `docker pause` of the event's container through the Docker Engine API.
    case containerPause = "container_pause"
    /// `docker unpause` of the event's container.
    case containerUnpause = "container_unpause"
    /// `docker stop` of the event's container.
    case containerStop = "container_stop"
    /// `docker kill` of the event's container.
    case containerKill = "container_kill"
    /// `docker checkpoint create` of the event's container (CRIU), to restore it elsewhere.
    case containerCheckpoint = "container_checkpoint"
    /// Publish to NATS JetStream (`PREFIX.HOST.alerts.PRIORITY.RULE`, `Nats-Msg-Id` the alert's id).
    case nats

    /// Kinds that act on the system rather than report: they run before the reporting actions,
    /// their results go into the alert's `enforcement`, and their alerts are never aggregated.
    public var enforces: Bool {
        switch self {
        case .kill, .containerPause, .containerUnpause, .containerStop, .containerKill, .containerCheckpoint: true
        default: false
        }
    }

    /// Kinds that send over a network and retry with backoff (syslog only over TCP).
    var isNetwork: Bool { [.webhook, .slack, .email, .syslog, .nats].contains(self) }

    /// Kinds usable by name without any configuration.
    public static let builtIns: [ActionKind] = [.stdout, .log, .kill, .containerPause, .containerUnpause, .containerStop, .containerKill, .containerCheckpoint]

    /// The keys a `named` action of this kind may set besides the common ones.
    var keys: [String] {
        switch self {
        case .stdout: ["format"]
        case .log: []
        case .file: ["path", "max_size", "keep"]
        case .syslog: ["address", "facility", "app_name", "format"]
        case .webhook, .slack: ["url", "headers", "ca_file", "insecure_skip_verify"]
        case .email: ["server", "from", "to", "subject", "helo", "tls", "username", "password_env", "password_file", "ca_file", "insecure_skip_verify"]
        case .exec: ["argv", "env"]
        case .nats: ["servers", "stream", "subject_prefix", "duplicate_window", "username", "password_env", "password_file", "token_env", "ca_file", "insecure_skip_verify", "events"]
        case .kill: []
        case .containerPause, .containerUnpause, .containerKill: ["docker_socket"]
        case .containerStop: ["docker_socket", "grace"]
        case .containerCheckpoint: ["docker_socket", "directory", "leave_running"]
        }
    }

    /// The keys without which an action of this kind cannot work.
    var requiredKeys: [String] {
        switch self {
        case .file: ["path"]
        case .syslog: ["address"]
        case .webhook, .slack: ["url"]
        case .email: ["server", "from", "to"]
        case .exec: ["argv"]
        case .nats: ["servers"]
        default: []
        }
    }
}

/// The name of the action the kernel enforces itself (bpf_send_signal in the rule's program):
/// the dispatcher only reports whether the kernel took it (`ActionDispatcher.setKernelKill`).
public let kernelKillActionName = "kernel_kill"

/// Text or JSON, for stdout and syslog messages.
public enum AlertStyle: String, Sendable, Codable {
    /// `Alert.text`.
    case text
    /// `Alert.json`.
    case json
}

/// Aggregation of identical alerts (`actions.dedup`). See docs/actions.md, "Dedup".
public struct DedupConfig: Sendable, Equatable, Codable {
    /// Seconds of event time during which identical alerts are sent once; 0 turns dedup off.
    public var window: Double = 10
    /// Event fields that, with the rule's name, make two alerts identical (`proc.name`,
    /// `container.label[app]`); empty: the rule's name and the rendered output.
    public var fields: [String] = []
    /// At most this many keys are tracked at once; beyond that (after expired keys are pruned)
    /// new keys are not aggregated, and counted (`untracked`).
    public var maxKeys: Int = 10_000

    /// Defaults: a 10 s window keyed by rule and output.
    public init(window: Double = 10, fields: [String] = [], maxKeys: Int = 10_000) {
        self.window = window
        self.fields = fields
        self.maxKeys = maxKeys
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case window, fields, maxKeys = "max_keys" }

    /// Decodes the YAML/JSON form; unknown keys and unknown field names are errors.
    public init(from decoder: any Decoder) throws {
        try ConfigKeys.rejectUnknown(in: decoder, allowed: CodingKeys.allCases.map(\.rawValue))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        window = try c.decodeIfPresent(Double.self, forKey: .window) ?? 10
        fields = try c.decodeIfPresent([String].self, forKey: .fields) ?? []
        maxKeys = try c.decodeIfPresent(Int.self, forKey: .maxKeys) ?? 10_000
        try ConfigKeys.check(validate, in: decoder)
    }

    func validate() throws(ActionConfigError) {
        guard window >= 0 else { throw ActionConfigError(path: "dedup.window", message: "must be 0 (off) or more seconds") }
        guard maxKeys > 0 else { throw ActionConfigError(path: "dedup.max_keys", message: "must be positive") }
        for field in fields where !FieldReference.isValid(field) {
            throw ActionConfigError(path: "dedup.fields", message: "unknown field '\(field)' (see docs/fields.md)")
        }
    }
}

/// One action defined in the configuration (`actions.named.NAME`): its kind (`type`), the
/// common delivery settings (each defaults to the top-level value) and the kind's own keys.
/// Every key is documented in docs/config.md, section "actions".
public struct ActionDefinition: Sendable, Equatable, Codable {
    /// `type`: the kind.
    public var kind: ActionKind
    /// Alerts waiting for this action at most (newer ones are dropped and counted when full).
    public var queueSize: Int?
    /// Extra attempts after a failed delivery (network kinds only).
    public var retries: Int?
    /// Seconds before the first retry; doubles per retry.
    public var backoff: Double?
    /// Longest wait between retries, seconds.
    public var maxBackoff: Double?
    /// `false`: this network action's alerts wait in memory only, not in the spool (`spool`).
    public var spool: Bool?
    /// Seconds one attempt may take (connect, send, answer; an exec's run time).
    public var timeout: Double?
    /// Only alerts at least this severe are handled (others are skipped, not counted as failures).
    public var minPriority: Priority?
    /// stdout, syslog: `text` or `json`.
    public var format: AlertStyle?
    /// file: the file to append JSON lines to.
    public var path: String?
    /// file: rotate before a write would make the file larger than this many bytes.
    public var maxSize: Int?
    /// file: rotated files kept (`path.1` newest ... `path.N`).
    public var keep: Int?
    /// syslog: `/dev/log` or `unix:///dev/log` (datagram), `udp://host:port`, `tcp://host:port`.
    public var address: String?
    /// syslog: the facility name (`user`, `daemon`, `auth`, `local0` ... `local7`) or number.
    public var facility: String?
    /// syslog: the APP-NAME field.
    public var appName: String?
    /// webhook, slack: an `http://` or `https://` URL.
    public var url: String?
    /// webhook, slack: extra request headers.
    public var headers: [String: String]?
    /// email: the SMTP server as `host:port` (port 25 when omitted).
    public var server: String?
    /// email: the sender address.
    public var from: String?
    /// email: the recipients.
    public var to: [String]?
    /// email: the subject, with `{rule}`, `{priority}`, `{hostname}` replaced.
    public var subject: String?
    /// email: the name sent in EHLO (default: this host's name).
    public var helo: String?
    /// email: `none`, `starttls` or `implicit` (default: `starttls` with `username`, else `none`).
    public var tls: SMTPTLSMode?
    /// email: the user name for SMTP AUTH (sent only over TLS).
    public var username: String?
    /// email: the environment variable holding the password (read at start).
    public var passwordEnv: String?
    /// email: the file holding the password (read at start; one trailing line break dropped).
    public var passwordFile: String?
    /// webhook, slack (https), email (TLS): a PEM bundle trusted instead of the system's CAs.
    public var caFile: String?
    /// webhook, slack (https), email (TLS): no certificate check at all (warned at start).
    public var insecureSkipVerify: Bool?
    /// exec: the program and its arguments (argv[0] an absolute path or a name found on PATH).
    public var argv: [String]?
    /// exec: extra environment variables.
    public var env: [String: String]?
    /// nats: the servers, `nats://host:port` or `tls://host:port`, tried in turn.
    public var servers: [String]?
    /// nats: the JetStream stream (default `VIGIL`), created with subjects `PREFIX.>` when missing.
    public var stream: String?
    /// nats: the first subject tokens (default `vigil`).
    public var subjectPrefix: String?
    /// nats: seconds within which the stream drops a resent alert (its `Nats-Msg-Id`); default 3600.
    public var duplicateWindow: Double?
    /// nats: the environment variable holding an auth token (instead of username and password).
    public var tokenEnv: String?
    /// nats: events (not only alerts) to publish, on `PREFIX.HOST.events.KIND`.
    public var events: EventSelection?
    /// container_*: the Docker Engine socket.
    public var dockerSocket: String?
    /// container_stop: seconds between SIGTERM and SIGKILL.
    public var grace: Int?
    /// container_checkpoint: where checkpoints are written (one directory per checkpoint).
    public var directory: String?
    /// container_checkpoint: the container goes on running after its checkpoint (default: it stops).
    public var leaveRunning: Bool?

    /// An action of `kind` with every setting at its default.
    public init(kind: ActionKind) {
        self.kind = kind
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case kind = "type", queueSize = "queue_size", retries, backoff, maxBackoff = "max_backoff", timeout, spool
        case minPriority = "min_priority", format, path, maxSize = "max_size", keep, address, facility
        case appName = "app_name", url, headers, server, from, to, subject, helo, argv, env
        case dockerSocket = "docker_socket", grace, directory, leaveRunning = "leave_running", tls, username, passwordEnv = "password_env"
        case passwordFile = "password_file", caFile = "ca_file", insecureSkipVerify = "insecure_skip_verify"
        case servers, stream, subjectPrefix = "subject_prefix", duplicateWindow = "duplicate_window", tokenEnv = "token_env", events
    }

    /// The keys every kind accepts.
    static let commonKeys = ["type", "queue_size", "retries", "backoff", "max_backoff", "timeout", "min_priority", "spool"]

    /// Decodes one definition; keys the kind does not use and missing required keys are errors.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let typeName = try c.decode(String.self, forKey: .kind)
        guard let kind = ActionKind(rawValue: typeName) else {
            throw DecodingError.dataCorruptedError(
                forKey: .kind, in: c,
                debugDescription: "unknown action type '\(typeName)'; use one of \(ActionKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        try ConfigKeys.rejectUnknown(in: decoder, allowed: Self.commonKeys + kind.keys, what: "an action of type \(typeName)")
        self.kind = kind
        queueSize = try c.decodeIfPresent(Int.self, forKey: .queueSize)
        retries = try c.decodeIfPresent(Int.self, forKey: .retries)
        spool = try c.decodeIfPresent(Bool.self, forKey: .spool)
        backoff = try c.decodeIfPresent(Double.self, forKey: .backoff)
        maxBackoff = try c.decodeIfPresent(Double.self, forKey: .maxBackoff)
        timeout = try c.decodeIfPresent(Double.self, forKey: .timeout)
        /// A string key with a fixed set of values: nil when absent, an error naming the choices.
        func choice<T>(_ key: CodingKeys, _ what: String, _ choices: [String], _ parse: (String) -> T?) throws -> T? {
            guard let text = try c.decodeIfPresent(String.self, forKey: key) else { return nil }
            guard let value = parse(text) else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: c, debugDescription: "unknown \(what) '\(text)'; use one of \(choices.joined(separator: ", "))")
            }
            return value
        }
        minPriority = try choice(.minPriority, "priority", Priority.allCases.map(\.rawValue), Priority.init(parsing:))
        format = try c.decodeIfPresent(AlertStyle.self, forKey: .format)
        path = try c.decodeIfPresent(String.self, forKey: .path)
        maxSize = try c.decodeIfPresent(Int.self, forKey: .maxSize)
        keep = try c.decodeIfPresent(Int.self, forKey: .keep)
        address = try c.decodeIfPresent(String.self, forKey: .address)
        facility = try c.decodeIfPresent(String.self, forKey: .facility)
        appName = try c.decodeIfPresent(String.self, forKey: .appName)
        url = try c.decodeIfPresent(String.self, forKey: .url)
        headers = try c.decodeIfPresent([String: String].self, forKey: .headers)
        server = try c.decodeIfPresent(String.self, forKey: .server)
        from = try c.decodeIfPresent(String.self, forKey: .from)
        to = try c.decodeIfPresent([String].self, forKey: .to)
        subject = try c.decodeIfPresent(String.self, forKey: .subject)
        helo = try c.decodeIfPresent(String.self, forKey: .helo)
        argv = try c.decodeIfPresent([String].self, forKey: .argv)
        env = try c.decodeIfPresent([String: String].self, forKey: .env)
        dockerSocket = try c.decodeIfPresent(String.self, forKey: .dockerSocket)
        grace = try c.decodeIfPresent(Int.self, forKey: .grace)
        directory = try c.decodeIfPresent(String.self, forKey: .directory)
        leaveRunning = try c.decodeIfPresent(Bool.self, forKey: .leaveRunning)
        tls = try choice(.tls, "tls mode", SMTPTLSMode.allCases.map(\.rawValue), SMTPTLSMode.init(rawValue:))
        username = try c.decodeIfPresent(String.self, forKey: .username)
        passwordEnv = try c.decodeIfPresent(String.self, forKey: .passwordEnv)
        passwordFile = try c.decodeIfPresent(String.self, forKey: .passwordFile)
        caFile = try c.decodeIfPresent(String.self, forKey: .caFile)
        insecureSkipVerify = try c.decodeIfPresent(Bool.self, forKey: .insecureSkipVerify)
        servers = try c.decodeIfPresent([String].self, forKey: .servers)
        stream = try c.decodeIfPresent(String.self, forKey: .stream)
        subjectPrefix = try c.decodeIfPresent(String.self, forKey: .subjectPrefix)
        duplicateWindow = try c.decodeIfPresent(Double.self, forKey: .duplicateWindow)
        tokenEnv = try c.decodeIfPresent(String.self, forKey: .tokenEnv)
        events = try c.decodeIfPresent(EventSelection.self, forKey: .events)
        let present = Set(c.allKeys.map(\.stringValue))
        for key in kind.requiredKeys where !present.contains(key) {
            throw DecodingError.keyNotFound(
                CodingKeys(rawValue: key) ?? .kind,
                .init(codingPath: decoder.codingPath, debugDescription: "an action of type \(typeName) needs '\(key)'"))
        }
        try ConfigKeys.check({ () throws(ActionConfigError) in try validate(name: nil) }, in: decoder)
    }

    /// Checks values the decoder cannot (URLs, sizes, header text); `name` prefixes the path
    /// (`named.NAME.`), or `section` does (`policy.`: the policy stage's connection settings).
    func validate(name: String?, section: String? = nil) throws(ActionConfigError) {
        let at = { (key: String) in section.map { "\($0).\(key)" } ?? name.map { "named.\($0).\(key)" } ?? key }
        if let queueSize, queueSize <= 0 { throw ActionConfigError(path: at("queue_size"), message: "must be positive") }
        if let retries, retries < 0 { throw ActionConfigError(path: at("retries"), message: "must be 0 or more") }
        for (key, value) in [("backoff", backoff), ("max_backoff", maxBackoff), ("timeout", timeout)] {
            if let value, !(value > 0) { throw ActionConfigError(path: at(key), message: "must be a positive number of seconds") }
        }
        if let maxSize, maxSize < 1024 { throw ActionConfigError(path: at("max_size"), message: "must be at least 1024 bytes") }
        if let keep, keep < 0 { throw ActionConfigError(path: at("keep"), message: "must be 0 or more") }
        if let grace, grace < 0 { throw ActionConfigError(path: at("grace"), message: "must be 0 or more seconds") }
        if let directory, !directory.hasPrefix("/") { throw ActionConfigError(path: at("directory"), message: "must be an absolute path (the engine writes there)") }
        if let address {
            do { _ = try SyslogAddress(address) } catch { throw ActionConfigError(path: at("address"), message: error.message) }
        }
        if let facility, SyslogFacility.number(facility) == nil {
            throw ActionConfigError(path: at("facility"), message: "unknown facility '\(facility)'; use kern, user, mail, daemon, auth, syslog, authpriv, local0 ... local7 or 0-23")
        }
        if let url {
            do { _ = try HTTPEndpoint(url) } catch { throw ActionConfigError(path: at("url"), message: error.message) }
        }
        for (header, value) in headers ?? [:] {
            guard !header.isEmpty, header.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: ":") }),
                !value.utf8.contains(where: { $0 == 0x0d || $0 == 0x0a })
            else { throw ActionConfigError(path: at("headers"), message: "header '\(header)' is not a valid HTTP header line") }
        }
        if let server {
            do { _ = try HostPort(server, defaultPort: 25) } catch { throw ActionConfigError(path: at("server"), message: error.message) }
        }
        for address in [from].compactMap({ $0 }) + (to ?? []) where !SMTPClient.isPlausibleAddress(address) {
            throw ActionConfigError(path: at(address == from ? "from" : "to"), message: "'\(address)' is not a mail address (local@domain)")
        }
        if let to, to.isEmpty { throw ActionConfigError(path: at("to"), message: "needs at least one recipient") }
        if let argv, argv.first?.isEmpty ?? true { throw ActionConfigError(path: at("argv"), message: "needs the program as its first element") }
        if let argv, let program = argv.first, ExecAction.isFieldArgument(program) {
            throw ActionConfigError(path: at("argv"), message: "the program (the first element) cannot be a field ('\(program)')")
        }
        for entry in argv ?? [] where ExecAction.isFieldArgument(entry) && !FieldReference.isValid(String(entry.dropFirst())) {
            throw ActionConfigError(path: at("argv"), message: "'\(entry)' names no field (see docs/fields.md; write %% for a literal %)")
        }
        for key in (env ?? [:]).keys where key.isEmpty || key.contains("=") {
            throw ActionConfigError(path: at("env"), message: "'\(key)' is not an environment variable name")
        }
        try validateNATS(at)
        try validateTLS(at)
    }

    /// nats: the servers, stream name, prefix, window and token.
    private func validateNATS(_ at: (String) -> String) throws(ActionConfigError) {
        if let servers {
            if servers.isEmpty { throw ActionConfigError(path: at("servers"), message: "needs at least one server") }
            for server in servers {
                do { _ = try NATSServerURL(server) } catch { throw ActionConfigError(path: at("servers"), message: error.message) }
            }
        }
        if let stream, stream.isEmpty || stream.contains(where: { $0 == "." || $0 == "*" || $0 == ">" || $0 == " " || $0 == "/" || $0 == "\\" }) {
            throw ActionConfigError(path: at("stream"), message: "'\(stream)' is not a stream name (no '.', '*', '>', '/', '\\' or spaces)")
        }
        if let subjectPrefix, !NATSSubject.isValidPrefix(subjectPrefix) {
            throw ActionConfigError(path: at("subject_prefix"), message: "'\(subjectPrefix)' is not subject tokens (a.b, no wildcards or spaces)")
        }
        if let duplicateWindow, !(duplicateWindow > 0) {
            throw ActionConfigError(path: at("duplicate_window"), message: "must be a positive number of seconds")
        }
        if let tokenEnv {
            if tokenEnv.isEmpty || tokenEnv.contains("=") {
                throw ActionConfigError(path: at("token_env"), message: "'\(tokenEnv)' is not an environment variable name")
            }
            if username != nil { throw ActionConfigError(path: at("token_env"), message: "set token_env or username, not both") }
            if !usesTLS && !natsServersAreLoopback {
                throw ActionConfigError(path: at("token_env"), message: "refusing to send a token over plain text to a remote server; use tls:// servers")
            }
        }
        _ = try events?.compiled(at: at("events"))
    }

    /// nats: every server is on the loopback interface (credentials may go there in clear text).
    var natsServersAreLoopback: Bool {
        (servers ?? []).allSatisfy { ["127.0.0.1", "localhost", "::1"].contains((try? NATSServerURL($0))?.server.host ?? "") }
    }

    /// The email action's TLS mode: `tls`, else `starttls` when credentials are set, else `none`.
    var smtpTLSMode: SMTPTLSMode { tls ?? (username != nil ? .starttls : .none) }

    /// Whether this action speaks TLS: an https:// URL, or email with `tls` other than `none`.
    var usesTLS: Bool {
        switch kind {
        case .webhook, .slack: url.map { (try? HTTPEndpoint($0))?.secure ?? false } ?? false
        case .email: smtpTLSMode != .none
        case .nats: (servers ?? []).contains { (try? NATSServerURL($0))?.tls ?? false }
        default: false
        }
    }

    /// The TLS and credential keys: only where TLS is spoken, never credentials without TLS.
    private func validateTLS(_ at: (String) -> String) throws(ActionConfigError) {
        if !usesTLS {
            let why = switch kind {
            case .email: "only applies with tls: starttls or implicit"
            case .nats: "only applies to tls:// servers"
            default: "only applies to an https:// url"
            }
            if caFile != nil { throw ActionConfigError(path: at("ca_file"), message: why) }
            if insecureSkipVerify != nil { throw ActionConfigError(path: at("insecure_skip_verify"), message: why) }
        }
        if let caFile {
            if insecureSkipVerify == true {
                throw ActionConfigError(path: at("ca_file"), message: "has no effect with insecure_skip_verify: true; set one of them")
            }
            guard access(caFile, R_OK) == 0 else {
                throw ActionConfigError(path: at("ca_file"), message: "cannot read '\(caFile)': \(Socket.errnoText())")
            }
        }
        if let passwordEnv, passwordEnv.isEmpty || passwordEnv.contains("=") {
            throw ActionConfigError(path: at("password_env"), message: "'\(passwordEnv)' is not an environment variable name")
        }
        let passwordKey = passwordEnv != nil ? "password_env" : "password_file"
        if passwordEnv != nil && passwordFile != nil {
            throw ActionConfigError(path: at("password_file"), message: "set password_env or password_file, not both")
        }
        if username == nil, passwordEnv != nil || passwordFile != nil {
            throw ActionConfigError(path: at(passwordKey), message: "a password needs 'username'")
        }
        guard let username else { return }
        if username.isEmpty || username.contains(where: { $0.asciiValue.map { $0 < 32 } ?? false }) {
            throw ActionConfigError(path: at("username"), message: "must be a non-empty name without control characters")
        }
        if passwordEnv == nil && passwordFile == nil {
            throw ActionConfigError(path: at("username"), message: "needs password_env or password_file (a password is never written in the config)")
        }
        if kind == .nats {
            if !usesTLS && !natsServersAreLoopback {
                throw ActionConfigError(path: at("username"), message: "refusing to send credentials (username) over plain text to a remote server; use tls:// servers")
            }
        } else if smtpTLSMode == .none {
            throw ActionConfigError(path: at("tls"), message: "refusing to send credentials (username) over plain text; use tls: starttls or implicit")
        }
    }

    /// The password from `password_env` or `password_file`, read now (at the daemon's start).
    func readPassword(_ at: (String) -> String) throws(ActionConfigError) -> String? {
        if let passwordEnv {
            guard let value = ProcessInfo.processInfo.environment[passwordEnv], !value.isEmpty else {
                throw ActionConfigError(path: at("password_env"), message: "the environment variable \(passwordEnv) is not set or empty")
            }
            return value
        }
        guard let passwordFile else { return nil }
        let text: String
        do { text = try String(contentsOfFile: passwordFile, encoding: .utf8) } catch {
            throw ActionConfigError(path: at("password_file"), message: "cannot read '\(passwordFile)': \(error.localizedDescription)")
        }
        // "\r\n" is one Character: dropLast() drops either line end.
        let password = text.hasSuffix("\n") || text.hasSuffix("\r\n") ? String(text.dropLast()) : text
        guard !password.isEmpty else { throw ActionConfigError(path: at("password_file"), message: "'\(passwordFile)' is empty") }
        return password
    }
}

/// The `actions` section of the daemon's configuration (/etc/vigil/vigil.yaml): delivery
/// defaults, dedup, and the named actions rules refer to. Decodes from YAML or JSON with
/// snake_case keys; unknown keys are errors. Every key is documented in docs/config.md.
public struct ActionsConfig: Sendable, Equatable, Codable {
    /// Actions for rules that name none (`default_actions`).
    public var defaultActions: [String] = ["stdout"]
    /// Queue length per action (`queue_size`).
    public var queueSize: Int = 1000
    /// Extra attempts of a failed network delivery (`retries`).
    public var retries: Int = 3
    /// Seconds before the first retry, doubled per retry (`backoff`).
    public var backoff: Double = 0.5
    /// Longest wait between retries, seconds (`max_backoff`).
    public var maxBackoff: Double = 30
    /// Seconds one attempt may take (`timeout`).
    public var timeout: Double = 5
    /// Aggregation of identical alerts (`dedup`).
    public var dedup = DedupConfig()
    /// Where network actions keep alerts until delivered, one directory per action; nil: no
    /// spool (alerts wait in memory only). Not a key of the section: the daemon sets it to
    /// `state_dir`/spool (default /var/lib/vigil/spool).
    public var spoolDirectory: String?
    /// The host name alerts carry (`hostname` in JSON, the NATS subject's host); nil: this
    /// machine's (`gethostname`). Not a key of the section: the daemon's top-level `hostname`.
    public var hostname: String?
    /// Which fields alerts' `output_fields` hold. Not a key of the section: the daemon's
    /// top-level `output_fields`.
    public var outputFields = OutputFields.all
    /// Most MiB of alerts one action's spool holds (`spool_max_mib`).
    public var spoolMaxMiB: Int = 16
    /// Actions defined here, by name (`named`). A name of a built-in replaces it (same `type` only).
    public var named: [String: ActionDefinition] = [:]
    /// The policy stage (`policy`): alerts asked about at an OPA-compatible server before their
    /// actions run; nil: none (every alert's actions run).
    public var policy: PolicyConfig?

    /// The defaults: built-in actions only, rules without actions print to stdout.
    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case defaultActions = "default_actions", queueSize = "queue_size", retries, backoff
        case maxBackoff = "max_backoff", timeout, dedup, named, spoolMaxMiB = "spool_max_mib", policy
    }

    /// Decodes the section; unknown keys are errors, and so are values `validate()` refuses.
    public init(from decoder: any Decoder) throws {
        try ConfigKeys.rejectUnknown(in: decoder, allowed: CodingKeys.allCases.map(\.rawValue), what: "the actions section")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        defaultActions = try c.decodeIfPresent([String].self, forKey: .defaultActions) ?? ["stdout"]
        queueSize = try c.decodeIfPresent(Int.self, forKey: .queueSize) ?? 1000
        retries = try c.decodeIfPresent(Int.self, forKey: .retries) ?? 3
        backoff = try c.decodeIfPresent(Double.self, forKey: .backoff) ?? 0.5
        maxBackoff = try c.decodeIfPresent(Double.self, forKey: .maxBackoff) ?? 30
        timeout = try c.decodeIfPresent(Double.self, forKey: .timeout) ?? 5
        dedup = try c.decodeIfPresent(DedupConfig.self, forKey: .dedup) ?? DedupConfig()
        named = try c.decodeIfPresent([String: ActionDefinition].self, forKey: .named) ?? [:]
        spoolMaxMiB = try c.decodeIfPresent(Int.self, forKey: .spoolMaxMiB) ?? 16
        policy = try c.decodeIfPresent(PolicyConfig.self, forKey: .policy)
        try ConfigKeys.check(validate, in: decoder)
    }

    /// Checks the whole section: values, names, and that `default_actions` name known actions.
    /// - Throws: `ActionConfigError` naming the key (`named.ops.url`) and what is wrong.
    public func validate() throws(ActionConfigError) {
        guard queueSize > 0 else { throw ActionConfigError(path: "queue_size", message: "must be positive") }
        guard retries >= 0 else { throw ActionConfigError(path: "retries", message: "must be 0 or more") }
        guard spoolMaxMiB > 0 else { throw ActionConfigError(path: "spool_max_mib", message: "must be positive") }
        if let spoolDirectory, !spoolDirectory.hasPrefix("/") {
            throw ActionConfigError(path: "spool_max_mib", message: "the spool directory '\(spoolDirectory)' must be an absolute path")
        }
        for (key, value) in [("backoff", backoff), ("max_backoff", maxBackoff), ("timeout", timeout)] where !(value > 0) {
            throw ActionConfigError(path: key, message: "must be a positive number of seconds")
        }
        try dedup.validate()
        try policy?.validate()
        for (name, definition) in named.sorted(by: { $0.key < $1.key }) {
            guard !name.isEmpty, name.utf8.allSatisfy({ Self.nameBytes.contains($0) }) else {
                throw ActionConfigError(path: "named.\(name)", message: "an action name is letters, digits, '-', '_' or '.'")
            }
            if name == kernelKillActionName {
                throw ActionConfigError(path: "named.\(name)", message: "kernel_kill is enforced by the kernel and cannot be redefined")
            }
            if let builtIn = ActionKind(rawValue: name), ActionKind.builtIns.contains(builtIn), builtIn != definition.kind {
                throw ActionConfigError(path: "named.\(name).type", message: "'\(name)' is a built-in action of type \(name); it can only be redefined with that type")
            }
            try definition.validate(name: name)
        }
        if let unknown = unknownActions(in: defaultActions).first {
            throw ActionConfigError(path: "default_actions", message: "unknown action '\(unknown)'; known: \(knownActionNames.joined(separator: ", "))")
        }
    }

    /// Every name a rule may use: built-ins, `kernel_kill` and the named actions, sorted.
    public var knownActionNames: [String] {
        Set(ActionKind.builtIns.map(\.rawValue) + [kernelKillActionName] + named.keys).sorted()
    }

    /// The names in `names` that are neither built-in nor defined (for refusing a rule early).
    public func unknownActions(in names: [String]) -> [String] {
        let known = Set(knownActionNames)
        return names.filter { !known.contains($0) }
    }

    /// The definition behind `name`: a named action, or a built-in with default settings.
    func definition(of name: String) -> ActionDefinition? {
        if let defined = named[name] { return defined }
        guard let kind = ActionKind(rawValue: name), ActionKind.builtIns.contains(kind) else { return nil }
        return ActionDefinition(kind: kind)
    }

    private static let nameBytes = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.".utf8)
}

/// A configuration value the actions cannot work with.
public struct ActionConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The key under `actions`, e.g. `named.ops-webhook.url`.
    public var path: String
    /// What is wrong with it.
    public var message: String

    /// Creates an error.
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    /// `actions.PATH: message`.
    public var description: String { "actions.\(path): \(message)" }
}

/// Helpers for strict decoding: unknown keys are errors (typos must not pass silently).
enum ConfigKeys {
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Throws a `DecodingError` naming the first key of the mapping not in `allowed`.
    static func rejectUnknown(in decoder: any Decoder, allowed: [String], what: String = "this mapping") throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let allowedSet = Set(allowed)
        if let unknown = c.allKeys.map(\.stringValue).sorted().first(where: { !allowedSet.contains($0) }) {
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath + [AnyKey(stringValue: unknown)],
                debugDescription: "unknown key '\(unknown)' in \(what); valid keys: \(allowed.sorted().joined(separator: ", "))"))
        }
    }

    /// Runs a validation and turns its error into a `DecodingError` at the decoder's path.
    static func check(_ validate: () throws(ActionConfigError) -> Void, in decoder: any Decoder) throws {
        do {
            try validate()
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }
}
