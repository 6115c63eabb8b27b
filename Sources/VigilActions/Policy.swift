import Foundation
import VigilEvents
import VigilRules

/// What the policy stage does with an alert when it has no decision (the server is down, too
/// slow, or answers something that is not a decision): `open` runs the alert's actions,
/// `closed` suppresses them.
public enum PolicyFailureMode: String, Sendable, Codable, CaseIterable {
    /// Run the actions anyway (no alert is lost when the policy server is away).
    case open
    /// Suppress the actions (nothing acts without the policy's consent).
    case closed
}

/// The optional policy stage (`actions.policy`): alerts sent to an OPA-compatible REST API
/// (`POST URL/v1/data/PATH` with `{"input": ALERT}`) whose decision (`{"result": true|false}` or
/// `{"result": {"allow": BOOL, ...fields}}`) decides whether the alert's actions run; the extra
/// fields are added to the alert (`policy` in its JSON, `{policy k=v}` in its text). See
/// docs/policy.md.
public struct PolicyConfig: Sendable, Equatable, Codable {
    /// The server's base URL (`http://127.0.0.1:8181`); `https://` speaks TLS as the webhook does.
    public var url: String
    /// The document to evaluate, below `/v1/data/`: `vigil/sensitive_file_read/decision`.
    public var path: String
    /// Only alerts of these rules go through the policy (empty: every rule).
    public var rules: [String] = []
    /// Only alerts at least this severe go through the policy (nil: every priority).
    public var minPriority: Priority?
    /// Seconds the server has to answer (connect, send, answer); default: `actions.timeout`.
    public var timeout: Double?
    /// Without a decision: `open` (run the actions, the default) or `closed` (suppress them).
    public var failure: PolicyFailureMode = .open
    /// Alerts waiting for a decision at most; beyond, the failure mode decides at once (counted).
    public var queueSize: Int = 1000
    /// Extra request headers (`Authorization: Bearer ...`), as a webhook's.
    public var headers: [String: String]?
    /// https: a PEM bundle trusted instead of the system's CAs.
    public var caFile: String?
    /// https: no certificate check at all (warned at start).
    public var insecureSkipVerify: Bool?
    /// Events (not only alerts) to ask about: an event the policy denies becomes a "Policy
    /// violation" alert for the `default_actions` (bpf-opa-demo's model); an allowed one is nothing.
    public var events: EventSelection?

    /// A stage asking `url` for the document at `path`.
    public init(url: String, path: String) {
        self.url = url
        self.path = path
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case url, path, rules, minPriority = "min_priority", timeout, failure, queueSize = "queue_size", headers
        case caFile = "ca_file", insecureSkipVerify = "insecure_skip_verify", events
    }

    /// Decodes the YAML/JSON form; unknown keys and bad values are errors.
    public init(from decoder: any Decoder) throws {
        try ConfigKeys.rejectUnknown(in: decoder, allowed: CodingKeys.allCases.map(\.rawValue), what: "the policy section")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        url = try c.decode(String.self, forKey: .url)
        path = try c.decode(String.self, forKey: .path)
        rules = try c.decodeIfPresent([String].self, forKey: .rules) ?? []
        if let text = try c.decodeIfPresent(String.self, forKey: .minPriority) {
            guard let priority = Priority(parsing: text) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .minPriority, in: c,
                    debugDescription: "unknown priority '\(text)'; use one of \(Priority.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            minPriority = priority
        }
        timeout = try c.decodeIfPresent(Double.self, forKey: .timeout)
        if let text = try c.decodeIfPresent(String.self, forKey: .failure) {
            guard let mode = PolicyFailureMode(rawValue: text) else {
                throw DecodingError.dataCorruptedError(forKey: .failure, in: c, debugDescription: "unknown failure mode '\(text)'; use open or closed")
            }
            failure = mode
        }
        queueSize = try c.decodeIfPresent(Int.self, forKey: .queueSize) ?? 1000
        headers = try c.decodeIfPresent([String: String].self, forKey: .headers)
        caFile = try c.decodeIfPresent(String.self, forKey: .caFile)
        insecureSkipVerify = try c.decodeIfPresent(Bool.self, forKey: .insecureSkipVerify)
        events = try c.decodeIfPresent(EventSelection.self, forKey: .events)
        try ConfigKeys.check(validate, in: decoder)
    }

    /// The values, as `ActionConfigError`s at `policy.KEY`.
    func validate() throws(ActionConfigError) {
        try asWebhook.validate(name: nil, section: "policy")
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !path.isEmpty, segments.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy(Self.pathBytes.contains) }) else {
            throw ActionConfigError(path: "policy.path", message: "'\(path)' is not a document path (package/rule, e.g. vigil/sensitive_file_read/decision: letters, digits and '_' between '/')")
        }
        if let timeout, !(timeout > 0) { throw ActionConfigError(path: "policy.timeout", message: "must be a positive number of seconds") }
        guard queueSize > 0 else { throw ActionConfigError(path: "policy.queue_size", message: "must be positive") }
        if let empty = rules.firstIndex(where: \.isEmpty) { throw ActionConfigError(path: "policy.rules.\(empty)", message: "a rule name cannot be empty") }
        _ = try events?.compiled(at: "policy.events")
    }

    /// The data API's URL of the document: `URL/v1/data/PATH`.
    var documentURL: String {
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        return base + "/v1/data/" + path
    }

    /// The same connection settings as a webhook's, validated and connected by the same code.
    var asWebhook: ActionDefinition {
        var definition = ActionDefinition(kind: .webhook)
        definition.url = documentURL
        definition.headers = headers
        definition.caFile = caFile
        definition.insecureSkipVerify = insecureSkipVerify
        definition.timeout = timeout
        return definition
    }

    /// Whether `alert` goes through the policy (its rule and priority).
    func applies(to alert: Alert) -> Bool {
        (rules.isEmpty || rules.contains(alert.rule)) && (minPriority.map { alert.priority <= $0 } ?? true)
    }

    private static let pathBytes = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_".utf8)
}

/// A policy's answer to one alert.
struct PolicyDecision: Sendable, Equatable {
    var allow: Bool
    /// The result's other fields, by name, each as JSON text (`"reason": "\"sshd ...\""`).
    var fields: [String: String]

    init(allow: Bool, fields: [String: String]) {
        self.allow = allow
        self.fields = fields
    }

    /// Parses an answer of OPA's data API: `{"result": BOOL}` or `{"result": {"allow": BOOL, ...}}`.
    /// An undefined document (`{}`), an object without a boolean `allow`, or anything else is an error.
    init(answer: [UInt8]) throws(ActionFailure) {
        guard case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: Data(answer)) else {
            throw .permanent("the policy's answer is not a JSON object: \(Self.excerpt(answer))")
        }
        switch object["result"] {
        case nil:
            throw .permanent("the policy document is undefined (no \"result\" in the answer): check the path and that the policy is loaded")
        case .bool(let flag)?:
            allow = flag
            fields = [:]
        case .object(let decision)? where decision["allow"].map({ if case .bool = $0 { true } else { false } }) ?? false:
            allow = decision["allow"] == .bool(true)
            fields = decision.filter { $0.key != "allow" }.mapValues(\.json)
        default:
            throw .permanent("the policy's result is neither a boolean nor an object with a boolean \"allow\": \(Self.excerpt(answer))")
        }
    }

    private static func excerpt(_ answer: [UInt8]) -> String {
        ByteString(answer.prefix(200)).trimmingASCIIWhitespace.escapedForTerminal
    }
}

/// Any JSON value (a policy's result), re-rendered as compact JSON with sorted keys.
indirect enum JSONValue: Sendable, Equatable, Decodable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null } else if let v = try? c.decode(Bool.self) { self = .bool(v) } else if let v = try? c.decode(Double.self) {
            self = .number(v)
        } else if let v = try? c.decode(String.self) { self = .string(v) } else if let v = try? c.decode([JSONValue].self) {
            self = .array(v)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    /// Compact JSON text: integers without a fraction, object keys sorted.
    var json: String {
        switch self {
        case .null: return "null"
        case .bool(let v): return v ? "true" : "false"
        case .number(let v): return v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : "\(v)"
        case .string(let v):
            var out = ""
            JSONText.appendString(v, to: &out)
            return out
        case .array(let items): return "[" + items.map(\.json).joined(separator: ",") + "]"
        case .object(let members):
            return "{" + members.sorted { $0.key < $1.key }.map { member in
                var out = ""
                JSONText.appendString(member.key, to: &out)
                return out + ":" + member.value.json
            }.joined(separator: ",") + "}"
        }
    }
}

/// Asks the policy server about one alert through the webhook's HTTP client: the handler of the
/// policy stage's worker, whose result is the server's answer (parsed by `PolicyDecision`).
struct PolicyClient: ActionHandler {
    let poster: HTTPPoster

    var transport: String? { poster.transport }

    /// POSTs `{"input": ALERT}` (the alert's JSON, as the outputs carry it); returns the answer.
    func perform(_ alert: Alert) throws(ActionFailure) -> String {
        let body = Array("{\"input\":\(alert.json)}".utf8)
        return String(decoding: try poster.exchange(body, alertID: alert.id, keep: 64 << 10).body, as: UTF8.self)
    }
}

/// Counters of the policy stage, under `policy` in the dispatcher's stats.
public struct PolicyStats: Sendable, Equatable, Codable {
    /// The document asked (`URL/v1/data/PATH`).
    public var url: String
    /// `open` or `closed`.
    public var failure: String
    /// Alerts the policy allowed (their actions ran).
    public var allowed: UInt64 = 0
    /// Alerts the policy denied (their actions did not run).
    public var denied: UInt64 = 0
    /// Alerts without a decision (server down, timeout, bad answer, full queue) whose actions
    /// ran because the failure mode is `open`.
    public var failedOpen: UInt64 = 0
    /// Alerts without a decision whose actions were suppressed because the mode is `closed`.
    public var failedClosed: UInt64 = 0
    /// Alerts waiting for a decision now.
    public var queued: Int = 0
    /// The last failure's message, if any.
    public var lastError: String?
    /// The last denial: `RULE (id ID): FIELDS`.
    public var lastDenied: String?
    /// Events (`events:`) the policy allowed, and denied (each a "Policy violation" alert).
    public var eventsAllowed: UInt64 = 0, eventsDenied: UInt64 = 0

    enum CodingKeys: String, CodingKey {
        case url, failure, allowed, denied, failedOpen = "failed_open", failedClosed = "failed_closed", queued
        case lastError = "last_error", lastDenied = "last_denied", eventsAllowed = "events_allowed", eventsDenied = "events_denied"
    }
}
