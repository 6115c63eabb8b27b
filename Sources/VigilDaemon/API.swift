import Foundation
import Logging
import VigilContainers
import VigilBPF
import VigilEnrichment
import VigilEvents
import VigilRules
import VigilSeccomp
import VigilSensors

/// The control API (HTTP/1.1 + JSON over the unix socket), documented in docs/api/openapi.yaml.
/// `APIRouter.routes` is the list a test compares with that document.
public struct APIRouter: Sendable {
    /// A method and a path template (`{name}` for a path parameter).
    public struct Route: Sendable, Hashable, CustomStringConvertible {
        /// `GET`, `POST`, `DELETE`.
        public var method: String
        /// `/v1/rules/{name}`.
        public var path: String
        /// `METHOD PATH`.
        public var description: String { "\(method) \(path)" }
    }

    /// Every route the API answers.
    public static let routes: [Route] = [
        Route(method: "GET", path: "/v1/status"),
        Route(method: "GET", path: "/v1/rules"),
        Route(method: "POST", path: "/v1/rules"),
        Route(method: "GET", path: "/v1/rules/{name}"),
        Route(method: "DELETE", path: "/v1/rules/{name}"),
        Route(method: "GET", path: "/v1/events"),
        Route(method: "GET", path: "/v1/alerts"),
        Route(method: "GET", path: "/v1/bundles"),
        Route(method: "POST", path: "/v1/bundles"),
        Route(method: "DELETE", path: "/v1/bundles/{name}"),
        Route(method: "GET", path: "/v1/seccomp/profiles"),
        Route(method: "GET", path: "/v1/seccomp/profiles/{image}"),
    ]

    let store: RuleStore
    let engine: Engine
    let info: DaemonInfo
    /// The program bundles (docs/bundles.md).
    var bundles: BundleStore?
    /// The seccomp profiles kept per image (STATE_DIR/seccomp).
    var profiles: ProfileStore
    /// Where a stored file's skipped rules are logged (as the daemon logs `RuleSet.warnings`).
    var logger: Logger?

    /// Answers one request.
    public func route(_ request: HTTPRequest) async -> HTTPReply {
        let segments = request.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard segments.first == "v1" else { return .error(404, "no such endpoint: \(request.path) (the API is under /v1)") }
        let rest = Array(segments.dropFirst())
        switch (request.method, rest.first, rest.count) {
        case ("GET", "status", 1): return status()
        case ("GET", "rules", 1): return listRules()
        case ("POST", "rules", 1): return createRules(request)
        case ("GET", "rules", 2): return getRules(rest[1])
        case ("DELETE", "rules", 2): return deleteRules(rest[1])
        case ("GET", "events", 1): return stream(engine.events, request)
        case ("GET", "alerts", 1): return stream(engine.alerts, request)
        case ("GET", "bundles", 1): return encode(200, BundleList(bundles: bundles?.list() ?? []))
        case ("POST", "bundles", 1): return createBundle(request)
        case ("DELETE", "bundles", 2): return deleteBundle(rest[1])
        case ("GET", "seccomp", 2) where rest[1] == "profiles": return listProfiles()
        // The path is percent-decoded before it is split: an image reference's slashes make more segments.
        case ("GET", "seccomp", 3...) where rest[1] == "profiles": return getProfile(rest.dropFirst(2).joined(separator: "/"))
        default:
            let known = Self.routes.contains { route in
                route.path.split(separator: "/").dropFirst().count == rest.count
                    && zip(route.path.split(separator: "/").dropFirst(), rest).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
            }
            return known ? .error(405, "method \(request.method) not allowed on \(request.path)") : .error(404, "no such endpoint: \(request.path)")
        }
    }

    // MARK: - Program bundles

    /// `POST /v1/bundles`: `{"manifest": YAML text, "object": base64 of the .bpf.o}`. Loaded
    /// before the answer (201 created, 200 replaced); refused with 400 and the reason (the
    /// verifier's log when the kernel refused a program), nothing running changed.
    private func createBundle(_ request: HTTPRequest) -> HTTPReply {
        guard let bundles else { return .error(503, "this daemon runs no bundles") }
        guard let upload = try? JSONDecoder().decode(BundleUpload.self, from: Data(request.body)),
              let object = Data(base64Encoded: upload.object) else {
            return .error(400, "send {\"manifest\": YAML text, \"object\": the .bpf.o in base64} (vigil create BUNDLE_DIR does)")
        }
        do {
            let (summary, replaced) = try bundles.add(manifest: upload.manifest, object: Array(object))
            return encode(replaced ? 200 : 201, summary)
        } catch {
            logger?.warning("bundle refused: \(error)")
            return .error(400, "bundle refused: \(error)")
        }
    }

    private func deleteBundle(_ name: String) -> HTTPReply {
        guard let bundles, bundles.remove(name) else { return .error(404, "no bundle named '\(name)'") }
        return .body(status: 204, contentType: "application/json", text: "")
    }

    // MARK: - Rules

    private func listRules() -> HTTPReply {
        encode(200, RuleSetList(ruleSets: store.list().map { RuleSetSummary($0, skipped: store.skipped(in: $0)) }))
    }

    private func getRules(_ name: String) -> HTTPReply {
        guard let set = store.get(name) else { return .error(404, RuleStoreError.notFound(name).description) }
        return encode(200, RuleSetDetail(set, skipped: store.skipped(in: set)))
    }

    private func createRules(_ request: HTTPRequest) -> HTTPReply {
        guard let name = request.query["name"], !name.isEmpty else {
            return .error(400, "name the rule set: POST /v1/rules?name=NAME&format=yaml|toml with the file's text as the body")
        }
        let format: RuleFormat
        if let given = request.query["format"] {
            guard let parsed = RuleFormat(rawValue: given.lowercased()) ?? (given.lowercased() == "yml" ? .yaml : nil) else {
                return .error(400, "unknown format '\(given)': use yaml or toml")
            }
            format = parsed
        } else if let type = request.headers["content-type"], type.contains("toml") {
            format = .toml
        } else {
            format = request.query["source"].flatMap { RuleFormat(fileName: $0) } ?? .yaml
        }
        guard let text = String(validating: request.body, as: UTF8.self) else { return .error(400, "the rule text is not UTF-8") }
        do {
            let engine = self.engine
            var version = 0
            let (set, created) = try store.put(name: name, format: format, text: text, source: request.query["source"]) { version = engine.setRules($0) }
            // The answer comes once the rules run: an event right after it is checked against them.
            guard engine.waitUntilApplied(version) else { return .error(503, "the rules were stored but the event loop did not apply them within 30 s") }
            let skipped = store.skipped(in: set)
            for skip in skipped { logger?.warning("rules: \(name): \(skip.warning)") }
            return encode(created ? 201 : 200, RuleSetSummary(set, skipped: skipped))
        } catch {
            return failure(error)
        }
    }

    private func deleteRules(_ name: String) -> HTTPReply {
        do {
            let engine = self.engine
            var version = 0
            try store.delete(name: name) { version = engine.setRules($0) }
            guard engine.waitUntilApplied(version) else { return .error(503, "the rules were removed but the event loop did not apply that within 30 s") }
            return .body(status: 204, contentType: "application/json", text: "")
        } catch {
            return failure(error)
        }
    }

    private func failure(_ error: RuleStoreError) -> HTTPReply {
        switch error {
        case .invalid, .badName: .error(400, error.description)
        case .notFound: .error(404, error.description)
        case .builtIn: .error(409, error.description)
        case .io: .error(500, error.description)
        }
    }

    // MARK: - Seccomp profiles

    private func listProfiles() -> HTTPReply {
        do {
            let entries = try profiles.list()
            return encode(200, SeccompProfileList(directory: profiles.directory, profiles: entries.map {
                SeccompProfileSummary(name: $0.name, file: $0.file, image: $0.image, syscalls: $0.allowed, defaultAction: $0.defaultAction,
                                      recordedAt: Timestamp.iso8601(UInt64(max(0, $0.recordedAt.timeIntervalSince1970) * 1e9)), runs: $0.runs)
            }))
        } catch {
            return .error(500, "\(error)")
        }
    }

    private func getProfile(_ image: String) -> HTTPReply {
        do {
            guard let profile = try profiles.profile(for: image) else {
                return .error(404, "no seccomp profile is kept for '\(image)' (in \(profiles.directory); `vigil seccomp list --daemon` lists them)")
            }
            return .json(200, String(decoding: profile.json(), as: UTF8.self))
        } catch {
            return .error(500, "\(error)")
        }
    }

    // MARK: - Streams

    private func stream(_ hub: StreamHub, _ request: HTTPRequest) -> HTTPReply {
        var condition: CompiledCondition?
        let filter = request.query["filter"].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
        if let filter {
            do {
                condition = try ConditionCompiler.compile(filter, at: SourceLocation(file: "filter", line: 1, column: 1), context: ConditionContext())
            } catch {
                return .error(400, "bad filter: \(error)")
            }
        }
        let counters = info.apiCounters, limit = info.apiLimits.maxSubscribers
        guard counters.openSubscriber(limit: limit) else {
            let message = "too many stream subscribers: \(limit) are open (api.max_subscribers)"
            counters.refuse(.subscribers, "refused \(request.path) for \(request.peer.map { "uid \($0.uid), pid \($0.pid)" } ?? "a peer"): \(message)")
            return .error(503, message)
        }
        let subscription = hub.subscribe(filter: condition, filterText: filter, capacity: info.streamBufferBytes)
        return .stream(subscription) {
            hub.unsubscribe(subscription)
            counters.closeSubscriber()
        }
    }

    // MARK: - Status

    private func status() -> HTTPReply {
        let snapshot = engine.snapshot
        let sets = store.list()
        let status = DaemonStatus(
            version: info.version, pid: getpid(),
            startedAt: Timestamp.iso8601(UInt64(engine.started.timeIntervalSince1970 * 1e9)),
            uptimeSeconds: Date().timeIntervalSince(engine.started),
            sensors: snapshot.sensors.map(SensorStatus.init),
            stream: snapshot.stream,
            rules: RulesStatus(ruleSets: sets.count, enabled: snapshot.rules.enabled, disabled: snapshot.rules.disabled,
                               skipped: (store.ruleSet?.skipped ?? []).map(\.description),
                               macros: snapshot.rules.macros, lists: snapshot.rules.lists,
                               defaultRules: sets.contains { $0.name == RuleStore.defaultSetName }, directory: store.directory),
            pushdown: PushdownStatus(snapshot),
            alerts: AlertStatus(total: engine.metrics.alertCount),
            integrity: engine.tamperStatus,
            dnsBaseline: snapshot.dnsBaseline,
            containerd: engine.containerd?.counters,
            cri: engine.cri?.counters,
            docker: engine.dockerStatus,
            subscribers: SubscriberStatus(events: engine.events.current.map(SubscriberInfo.init),
                                          alerts: engine.alerts.current.map(SubscriberInfo.init),
                                          droppedLines: engine.events.totalDropped + engine.alerts.totalDropped),
            api: APIStatus(info))
        guard case .body(let code, let type, var text) = encode(200, status) else { return .error(500, "status encoding") }
        let consumers = engine.alertConsumers.compactMap(\.statusJSON)
        if !consumers.isEmpty, text.hasSuffix("}") {
            text.removeLast()
            text += ",\"consumers\":{" + consumers.map { pair in
                var key = ""
                JSONText.appendString(pair.name, to: &key)
                return key + ":" + pair.json
            }.joined(separator: ",") + "}}"
        }
        return .body(status: code, contentType: type, text: text)
    }

    private func encode<T: Encodable>(_ status: Int, _ value: T) -> HTTPReply {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return .json(status, String(decoding: try encoder.encode(value), as: UTF8.self))
        } catch {
            return .error(500, "cannot encode the response: \(error)")
        }
    }
}

/// What the API says about the daemon itself.
public struct DaemonInfo: Sendable {
    /// Vigil's version.
    public var version: String
    /// The bounded buffer of each stream subscriber.
    public var streamBufferBytes: Int
    /// The API's limits (`api:`).
    public var apiLimits = HTTPLimits()
    /// What the API refused or closed at its limits.
    public var apiCounters = HTTPServerCounters()
}

// MARK: - Wire shapes (docs/api/openapi.yaml)

/// GET /v1/seccomp/profiles.
struct SeccompProfileList: Encodable {
    var directory: String
    var profiles: [SeccompProfileSummary]
}

/// One kept seccomp profile.
struct SeccompProfileSummary: Encodable {
    var name: String
    var file: String
    var image: String?
    var syscalls: Int
    var defaultAction: String
    var recordedAt: String
    var runs: Int?
}

struct RuleSetSummary: Encodable {
    var name: String
    var format: String
    var origin: String
    var path: String?
    var rules: [String]
    /// One line per rule of the set that does not run because it needs a field Vigil lacks.
    var skipped: [String]

    init(_ set: StoredRuleSet, skipped: [SkippedRule]) {
        name = set.name
        format = set.format.rawValue
        origin = set.path == nil ? "embedded" : "file"
        path = set.path
        rules = set.ruleNames
        self.skipped = skipped.map(\.description)
    }
}

/// The summary's fields plus the file's text, in one object.
struct RuleSetDetail: Encodable {
    var summary: RuleSetSummary
    var content: String

    init(_ set: StoredRuleSet, skipped: [SkippedRule]) {
        summary = RuleSetSummary(set, skipped: skipped)
        content = set.text
    }

    private enum Keys: String, CodingKey { case content }

    func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(content, forKey: .content)
    }
}

struct RuleSetList: Encodable {
    var ruleSets: [RuleSetSummary]
}

struct DaemonStatus: Encodable {
    var version: String
    var pid: Int32
    var startedAt: String
    var uptimeSeconds: Double
    var sensors: [SensorStatus]
    var stream: StreamStatistics
    var rules: RulesStatus
    var pushdown: PushdownStatus
    var alerts: AlertStatus
    /// Tamper evidence: heartbeats, checks, what the last check found, alerts per rule.
    var integrity: TamperStatus
    /// The images' DNS baselines (dns.name.new): window, bounds, what they hold, what did not fit.
    var dnsBaseline: DNSBaseline.Status
    /// containerd's lookups (found, failed per kind, the last failure); nil when containerd is not asked.
    var containerd: RuntimeLookupCounters?
    /// The CRI runtime's lookups (`cri.socket`); nil when it is not asked.
    var cri: RuntimeLookupCounters?
    /// The Docker Engine: its event subscription and the metadata fetches.
    var docker: DockerStatus
    var subscribers: SubscriberStatus
    var api: APIStatus
}

/// The Docker Engine as the daemon follows it (`vigil status`'s `docker`): an engine that
/// stops or restarts shows as event-stream failures and reconnections, and as failed fetches
/// (events then carry the container's id from its cgroup, without name and image).
public struct DockerStatus: Sendable, Encodable {
    /// The engine's API socket (`docker.socket`).
    public var socket: String
    /// The event subscription: connected now, connections (the first and each reconnection),
    /// failures, the last error.
    public var events: DockerEventWatcher.Counters
    /// Metadata fetches (Docker first, then containerd when it is asked): found, not found,
    /// failed, the last failure.
    public var metadata: ContainerMetadataCache.Counters
}

/// The API's limits, what is open now, and what was refused or closed at a limit.
struct APIStatus: Encodable {
    struct Limits: Encodable {
        var maxHeaderBytes: Int
        var requestTimeoutSeconds: Double
        var maxConnections: Int
        var maxSubscribers: Int
    }
    struct Refused: Encodable {
        var connections: UInt64
        var headerTooLarge: UInt64
        var timeout: UInt64
        var subscribers: UInt64
    }
    var limits: Limits
    var connections: Int
    var subscribers: Int
    var refused: Refused

    init(_ info: DaemonInfo) {
        let l = info.apiLimits, c = info.apiCounters
        limits = Limits(maxHeaderBytes: l.maxHeaderBytes,
                        requestTimeoutSeconds: Double(l.requestTimeout.components.seconds) + Double(l.requestTimeout.components.attoseconds) / 1e18,
                        maxConnections: l.maxConnections, maxSubscribers: l.maxSubscribers)
        connections = c.openConnections
        subscribers = c.openSubscribers
        refused = Refused(connections: c.count(.connections), headerTooLarge: c.count(.headerTooLarge), timeout: c.count(.timeout),
                          subscribers: c.count(.subscribers))
    }
}

struct SensorStatus: Encodable {
    struct CPU: Encodable {
        var cpu: Int
        var emitted: UInt64
        var filtered: UInt64
        var lost: UInt64
        var killed: UInt64
        var unfollowed: UInt64
    }
    var name: String
    var hooks: [HookReport]
    var emitted: UInt64
    var filtered: UInt64
    var lost: UInt64
    var killed: UInt64
    /// Forks the followed tree's full pids map could not take (`SensorCounters.unfollowed`).
    var unfollowed: UInt64
    var perCpu: [CPU]
    /// Syscalls the rules want that this kernel has no tracepoint for (the sensor's
    /// `notCaptured`); left out when empty.
    var notCaptured: [String]?

    init(_ sensor: SensorSnapshot) {
        name = sensor.name
        notCaptured = sensor.notCaptured.isEmpty ? nil : sensor.notCaptured
        hooks = sensor.hooks
        emitted = sensor.total.emitted
        filtered = sensor.total.filtered
        lost = sensor.total.lost
        killed = sensor.total.killed
        unfollowed = sensor.total.unfollowed
        perCpu = sensor.perCPU.enumerated().map {
            CPU(cpu: $0.offset, emitted: $0.element.emitted, filtered: $0.element.filtered, lost: $0.element.lost, killed: $0.element.killed,
                unfollowed: $0.element.unfollowed)
        }
    }
}

struct RulesStatus: Encodable {
    var ruleSets: Int
    var enabled: Int
    var disabled: Int
    /// One line per rule not running because it needs a field Vigil lacks.
    var skipped: [String]
    var macros: Int
    var lists: Int
    var defaultRules: Bool
    var directory: String
}

struct PushdownStatus: Encodable {
    var applied: Bool
    var kinds: [String]
    var containersOnly: Bool
    var comms: [String]?
    var summary: [String]

    init(_ snapshot: EngineSnapshot) {
        applied = snapshot.pushdownApplied
        kinds = EventKind.allCases.filter(snapshot.kinds.contains).map(\.rawValue)
        containersOnly = snapshot.pushdownApplied && (snapshot.pushdown?.containersOnly ?? false)
        comms = snapshot.pushdownApplied ? snapshot.pushdown?.comms?.sorted() : nil
        summary = snapshot.pushdown?.summary ?? []
    }
}

struct AlertStatus: Encodable {
    var total: UInt64
}

struct SubscriberInfo: Encodable {
    var id: Int
    var filter: String?
    var delivered: UInt64
    var dropped: UInt64

    init(_ subscription: Subscription) {
        id = subscription.id
        filter = subscription.filterText
        let counts = subscription.counts
        delivered = counts.delivered
        dropped = counts.dropped
    }
}

struct SubscriberStatus: Encodable {
    var events: [SubscriberInfo]
    var alerts: [SubscriberInfo]
    var droppedLines: UInt64
}

/// The body of `POST /v1/bundles`.
struct BundleUpload: Codable {
    /// The manifest's text (bundle.yaml).
    var manifest: String
    /// The object's bytes, base64.
    var object: String
}

/// `GET /v1/bundles`.
struct BundleList: Codable {
    var bundles: [BundleSummary]
}
