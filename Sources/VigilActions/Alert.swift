import Foundation
#if canImport(Glibc)
import Glibc
import Synchronization
#endif
import VigilEvents
import VigilRules

/// What one enforcement action did for one alert (`kill`, `container_*`, `kernel_kill`).
public struct EnforcementResult: Sendable, Equatable {
    /// The action's name as the rule wrote it.
    public var action: String
    /// Whether the action took effect.
    public var enforced: Bool
    /// What happened: `SIGKILL sent to pid 1234`, `not in a container`, `enforced in kernel`, ...
    public var detail: String

    /// Creates a result.
    public init(action: String, enforced: Bool, detail: String) {
        self.action = action
        self.enforced = enforced
        self.detail = detail
    }
}

/// Which fields an alert's `output_fields` holds (`output_fields` in vigil.yaml, `vigil trace
/// --output-fields`).
public enum OutputFields: String, Sendable, CaseIterable {
    /// Every field of the event (docs/fields.md): Vigil's default, a superset of Falco's.
    case all
    /// The fields the rule's output names, as Falco writes them (each once, in order, null when
    /// the event lacks one). Alerts Vigil raises about itself have no template: every field.
    case output
}

/// The value built when a rule matches an event: what every action receives.
///
/// Its JSON (`json`) is Falco's output shape, `{"hostname","output","priority","rule","source",
/// "tags","time","output_fields"}`, where `output_fields` holds every field of the event (a
/// superset of Falco's, which has only the fields the output template names; `outputFields`
/// `.output` writes Falco's), followed by Vigil's additions when they apply: `enforcement` (one
/// result per enforcement action) and `suppressed` (identical alerts aggregated into this one,
/// see `DedupConfig`), and always `id` (the alert's, for receivers that drop duplicates).
public struct Alert: Sendable {
    /// The rule's name.
    public var rule: String
    /// The rule's priority.
    public var priority: Priority
    /// When the event happened, nanoseconds since the Unix epoch.
    public var timeNs: UInt64
    /// The rendered output template.
    public var output: String
    /// The rule's tags.
    public var tags: [String]
    /// The event source, as in Falco (`syscall`).
    public var source: String
    /// The host the alert was raised on.
    public var hostname: String
    /// The event that matched (its fields are `output_fields`).
    public var event: Event
    /// Results of the enforcement actions, in the order they ran (filled in by the dispatcher).
    public var enforcement: [EnforcementResult] = []
    /// How many identical alerts were suppressed since the previous one sent (dedup); 0 when none.
    public var suppressed: Int = 0
    /// The fields the policy stage's decision added (`reason`, ...), by name, each as JSON text;
    /// empty without a policy or when its result was a plain boolean.
    public var policy: [String: String] = [:]
    /// A random id of this alert (a UUID, lowercase): the same in every action's delivery and in
    /// a redelivery after a crash (`id` in the JSON, `X-Vigil-Alert-Id` in HTTP and mail
    /// headers, `id` in syslog's structured data), so receivers can drop duplicates.
    public var id: String = Alert.randomID()
    /// Which fields `output_fields` holds (every field unless set).
    public var outputFields = OutputFields.all
    /// The rule's output template (nil for alerts Vigil raises about itself): `output_fields`
    /// with `outputFields` `.output`.
    public var template: OutputTemplate?

    /// A random (version 4) UUID, lowercase, from the system's generator (getrandom(2), through
    /// a pool of 256 ids' bytes): Foundation's `UUID()` opened, read and closed /dev/urandom for
    /// each, 12% of an alert's cost in `vigil trace --alerts`, and a getrandom per id was still 8%.
    public static func randomID() -> String {
        var raw = idPool.withLock { $0.next() }
        return withUnsafeMutableBytes(of: &raw) { raw in
            raw[6] = raw[6] & 0x0f | 0x40 // version 4
            raw[8] = raw[8] & 0x3f | 0x80 // the RFC 4122 variant
            let digits = Array("0123456789abcdef".utf8)
            var text: [UInt8] = []
            text.reserveCapacity(36)
            for (i, byte) in raw.enumerated() {
                if i == 4 || i == 6 || i == 8 || i == 10 { text.append(UInt8(ascii: "-")) }
                text.append(digits[Int(byte >> 4)])
                text.append(digits[Int(byte & 15)])
            }
            return String(decoding: text, as: UTF8.self)
        }
    }

    /// Random bytes for ids, refilled 4 KiB at a time (arc4random_buf: getrandom(2)).
    private struct IDPool {
        var words = [UInt64](repeating: 0, count: 512)
        var used = 512

        mutating func next() -> (UInt64, UInt64) {
            if used + 2 > words.count {
                words.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
                used = 0
            }
            defer { used += 2 }
            return (words[used], words[used + 1])
        }
    }

    private static let idPool = Mutex(IDPool())

    /// An alert of `rule` for `event`: renders the rule's output template.
    public init(rule: CompiledRule, event: Event, hostname: String = Alert.localHostname, outputFields: OutputFields = .all) {
        self.init(
            rule: rule.rule.name, priority: rule.rule.priority, output: rule.output.render(event), tags: rule.rule.tags,
            event: event, hostname: hostname)
        template = rule.output
        self.outputFields = outputFields
    }

    /// An alert from its parts (`source` is `syscall`, the time is the event's).
    public init(rule: String, priority: Priority, output: String, tags: [String], event: Event, hostname: String = Alert.localHostname) {
        self.rule = rule
        self.priority = priority
        self.timeNs = event.timeNs
        self.output = output
        self.tags = tags
        self.source = "syscall"
        self.hostname = hostname
        self.event = event
    }

    /// This machine's host name (`gethostname(2)`, read once).
    public static let localHostname: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()

    /// The time as ISO 8601 UTC with nanoseconds (Falco's `time`).
    public var time: String { Timestamp.iso8601(timeNs) }

    /// One line of text: `TIME PRIORITY rule: output`, then ` (N identical alerts suppressed)`,
    /// ` {policy key=value ...}` (a string value without its quotes) and
    /// ` [action: enforced|failed: detail; ...]` when they apply.
    public var text: String {
        var line = "\(time) \(priority.rawValue) \(rule): \(output)"
        if suppressed > 0 { line += " (\(suppressed) identical alert\(suppressed == 1 ? "" : "s") suppressed)" }
        if !policy.isEmpty {
            line += " {policy " + policy.sorted { $0.key < $1.key }.map { key, json in
                "\(key)=" + (json.hasPrefix("\"") ? (try? JSONDecoder().decode(String.self, from: Data(json.utf8))) ?? json : json)
            }.joined(separator: " ") + "}"
        }
        if !enforcement.isEmpty { line += " [" + enforcementSummary + "]" }
        return line
    }

    /// The enforcement results as `kill: enforced (detail); container_pause: failed (detail)`.
    public var enforcementSummary: String {
        enforcement.map { "\($0.action): \($0.enforced ? "enforced" : "failed") (\($0.detail))" }.joined(separator: "; ")
    }

    /// The alert as one JSON object on one line (Falco's shape plus Vigil's additions; see the type).
    public var json: String {
        var out = ByteBuffer(capacity: 4096)
        appendJSON(to: &out)
        return out.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// Appends `json` to `out` (no newline). `memo`: a writer's memo of rendered process and
    /// container fields (`EventOutput`'s), so the alerts of one process render those once.
    public func appendJSON(to out: inout ByteBuffer, memo: JSONMemo? = nil) {
        out.append("{\"hostname\":")
        out.appendJSON(hostname)
        out.append(",\"output\":")
        out.appendJSON(output)
        out.append(",\"priority\":")
        out.appendJSON(priority.rawValue)
        out.append(",\"rule\":")
        out.appendJSON(rule)
        out.append(",\"source\":")
        out.appendJSON(source)
        out.append(",\"tags\":[")
        for (index, tag) in tags.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.appendJSON(tag)
        }
        out.append("],\"time\":")
        out.appendJSON(time)
        out.append(",\"output_fields\":")
        if outputFields == .output, let template {
            template.appendFieldsJSON(event, to: &out)
        } else if let memo {
            EventFormat.appendJSON(event, to: &out, memo: memo)
        } else {
            EventFormat.appendJSON(event, to: &out)
        }
        if !enforcement.isEmpty {
            out.append(",\"enforcement\":[")
            for (index, result) in enforcement.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                out.append("{\"action\":")
                out.appendJSON(result.action)
                out.append(",\"result\":")
                out.append(result.enforced ? "\"enforced\"" : "\"failed\"")
                out.append(",\"detail\":")
                out.appendJSON(result.detail)
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: "]"))
        }
        if suppressed > 0 {
            out.append(",\"suppressed\":")
            out.append(decimal: UInt64(suppressed))
        }
        if !policy.isEmpty {
            out.append(",\"policy\":{")
            for (index, (key, json)) in policy.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                out.appendJSON(key)
                out.append(UInt8(ascii: ":"))
                out.append(Array(json.utf8))
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(",\"id\":")
        out.appendJSON(id)
        out.append(UInt8(ascii: "}"))
    }

    /// The text of a field of the event (`proc.name`, `container.label[app]`), or nil when the
    /// event lacks it; nil for an unknown field name too.
    public func fieldText(_ reference: String) -> String? {
        fieldBytes(reference).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The exact bytes of a field of the event (a list's items joined by spaces), or nil when
    /// the event lacks it or the name is unknown: what an exec action's `%field` argument gets.
    public func fieldBytes(_ reference: String) -> [UInt8]? {
        let (name, argument) = FieldReference.split(reference)
        guard let field = Fields.named(name), let value = field.extract(event, argument) else { return nil }
        switch value {
        case .string(let s): return s.bytes
        case .uint(let v): return Array(String(v).utf8)
        case .int(let v): return Array(String(v).utf8)
        case .bool(let v): return Array((v ? "true" : "false").utf8)
        case .strings(let list): return Array(list.map(\.bytes).joined(separator: [0x20]))
        case .uints(let list): return Array(list.map(String.init).joined(separator: " ").utf8)
        }
    }
}

/// `name[argument]` references to event fields, as dedup keys and exec variables use them.
enum FieldReference {
    /// Splits `container.label[app]` into `container.label` and `app`.
    static func split(_ reference: String) -> (name: String, argument: String?) {
        guard reference.hasSuffix("]"), let open = reference.firstIndex(of: "[") else { return (reference, nil) }
        return (String(reference[..<open]), String(reference[reference.index(after: open)..<reference.index(before: reference.endIndex)]))
    }

    /// Whether `reference` names a field of the catalogue (with an argument only when it takes one).
    static func isValid(_ reference: String) -> Bool {
        let (name, argument) = split(reference)
        guard let field = Fields.named(name) else { return false }
        return (argument != nil) == field.takesArgument
    }
}
