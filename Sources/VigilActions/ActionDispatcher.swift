import Foundation
import Dispatch
import Logging
import Synchronization
import VigilContainers
import VigilEvents
import VigilRules

/// Whether the kernel enforces a rule's `kernel_kill` (reported by the daemon after it loads
/// the rule's in-kernel program).
public enum KernelKillStatus: Sendable, Equatable {
    /// The rule's BPF program sends SIGKILL itself (bpf_send_signal).
    case enforced
    /// The kernel could not take it: the reason (the condition needs userspace fields, the
    /// helper is missing on this kernel, ...).
    case notEnforced(String)
}

/// Counters of a dispatcher, for `vigil status` and /metrics.
public struct DispatcherStats: Sendable, Equatable, Codable {
    /// Every action used so far (built-ins appear once used), sorted by name.
    public var actions: [ActionStats]
    /// Alerts given to `dispatch`.
    public var alerts: UInt64
    /// Alerts not sent because an identical one was sent within the dedup window.
    public var suppressed: UInt64
    /// Suppressed counts that no later alert carried (their key expired from a full table, or
    /// the dispatcher shut down): counted here instead of lost.
    public var unreported: UInt64
    /// Alerts not aggregated because the dedup table was full.
    public var untracked: UInt64
    /// The policy stage's counters; nil without one.
    public var policy: PolicyStats?
    /// The event taps (`events:` of nats actions and of the policy stage).
    public var eventTaps: [EventTapStats] = []

    enum CodingKeys: String, CodingKey { case actions, alerts, suppressed, unreported, untracked, policy, eventTaps = "event_taps" }
}

/// Runs rules' actions on alerts without blocking the event path.
///
/// `dispatch` resolves the action names (a rule without actions gets `default_actions`),
/// applies dedup, and queues the alert: first through the enforcement actions (kill,
/// container_*), one after the other, each recording its result in `Alert.enforcement`; then
/// to every reporting action (stdout, log, file, syslog, webhook, slack, email, exec) at once.
/// Each action has its own bounded queue and thread; a full queue drops the newest alert and
/// counts it. `kernel_kill` is reported from `setKernelKill`, never run here. Nothing fails
/// silently: unknown names, refusals and delivery failures are in `stats()` and, for
/// enforcement, in the alert itself.
public final class ActionDispatcher: Sendable {
    private struct Entry: Sendable {
        var definition: ActionDefinition
        var handler: any ActionHandler
    }

    private struct Shared {
        var workers: [String: ActionWorker] = [:]
        /// Counters of names without a worker: kernel_kill and unknown names.
        var virtual: [String: ActionStats] = [:]
        var kernelKill: [String: KernelKillStatus] = [:]
        var alerts: UInt64 = 0
        var dedup: DedupTable
        var closed = false
        var policy: PolicyStats?
    }

    /// The configuration in force.
    public let config: ActionsConfig
    private let entries: [String: Entry]
    private let logger: Logger
    private let observer: (@Sendable (Alert) -> Void)?
    private let shared: Mutex<Shared>
    /// The policy stage's worker: it asks the server about each alert, one at a time, and its
    /// completion runs the alert's actions or not (`decided`).
    private let policyWorker: ActionWorker?
    /// The stages that take events besides alerts, fed by the engine's event thread (`offer`).
    public let eventTaps: [EventTap]

    /// Creates a dispatcher for `config` (validated first). `observer` sees every alert that
    /// passed dedup, after its enforcement actions ran and before the reporting actions get
    /// it, on the calling or an enforcement thread: keep it quick (the daemon's alert stream
    /// and metrics). `log` actions write to `logger`.
    /// - Throws: `ActionConfigError` for a configuration `validate()` refuses.
    public init(config: ActionsConfig, logger: Logger = Logger(label: "vigil.actions"),
                observer: (@Sendable (Alert) -> Void)? = nil) throws(ActionConfigError) {
        try config.validate()
        self.config = config
        self.logger = logger
        self.observer = observer
        var entries: [String: Entry] = [:]
        for name in config.knownActionNames where name != kernelKillActionName {
            guard let definition = config.definition(of: name) else { continue }
            let handler = try Self.handler(for: definition, name: name, config: config, logger: logger)
            entries[name] = Entry(definition: definition, handler: handler)
            if let transport = handler.transport, definition.kind == .email || definition.usesTLS {
                logger.info("action '\(name)': \(transport)")
            }
            if definition.insecureSkipVerify == true {
                logger.warning("action '\(name)': insecure_skip_verify is on: the server's certificate is not checked; anyone on the path can read and change what this action sends")
            }
        }
        self.entries = entries
        var policyWorker: ActionWorker?
        var initial = Shared(dedup: DedupTable(config: config.dedup))
        let box = WeakDispatcher()
        if let policy = config.policy {
            let definition = policy.asWebhook
            let poster = try Self.poster(for: definition, timeout: policy.timeout ?? config.timeout) { "policy.\($0)" }
            let which = policy.rules.isEmpty ? "every rule" : "rules " + policy.rules.map { "'\($0)'" }.joined(separator: ", ")
            logger.info("policy: alerts of \(which)\(policy.minPriority.map { " at \($0.rawValue) or more severe" } ?? "") asked at \(policy.documentURL) (\(poster.transport)); failure: \(policy.failure.rawValue)")
            if definition.insecureSkipVerify == true {
                logger.warning("policy: insecure_skip_verify is on: the server's certificate is not checked; anyone on the path can change its decisions")
            }
            let delivery = DeliveryPolicy(capacity: policy.queueSize, retries: 0, backoff: config.backoff, maxBackoff: config.maxBackoff)
            policyWorker = ActionWorker(name: "policy", kind: .webhook, handler: PolicyClient(poster: poster), policy: delivery) { job, _, result in
                guard let job else { return }
                box.dispatcher?.decided(job, result)
            }
            initial.policy = PolicyStats(url: policy.documentURL, failure: policy.failure.rawValue)
            self.policyWorker = policyWorker
            shared = Mutex(initial)
        } else {
            self.policyWorker = nil
            shared = Mutex(initial)
        }
        eventTaps = try Self.eventTaps(config: config, entries: entries, logger: logger, box: box)
        box.dispatcher = self
        // Spooled actions start now: alerts an earlier run left on disk are delivered first.
        if let spoolDirectory = config.spoolDirectory {
            for (name, entry) in entries.sorted(by: { $0.key < $1.key }) {
                guard let handler = entry.handler as? any SpooledHandler, handler.spools, entry.definition.spool != false else { continue }
                let spool: AlertSpool
                do {
                    spool = try AlertSpool(directory: spoolDirectory + "/" + name, capacity: entry.definition.queueSize ?? config.queueSize,
                                           maxBytes: config.spoolMaxMiB << 20, logger: logger)
                } catch {
                    throw ActionConfigError(path: "named.\(name).spool", message: "action '\(name)': \(error.message)")
                }
                let created = makeWorker(name, entry, spool: (spool: spool, handler: handler, logger: logger))
                shared.withLock { $0.workers[name] = created }
            }
        }
    }

    /// Lets the workers' threads end once their queues are empty (call `shutdown` to wait).
    deinit {
        for worker in shared.withLock({ Array($0.workers.values) }) { worker.close() }
    }

    /// Names in `names` that no action answers to (for refusing a rule before it runs).
    public func unknownActions(in names: [String]) -> [String] { config.unknownActions(in: names) }

    /// Records, per rule name, whether the kernel enforces its `kernel_kill` (replaces the table).
    public func setKernelKill(_ statuses: [String: KernelKillStatus]) {
        shared.withLock { $0.kernelKill = statuses }
    }

    /// Queues `alert` for `actions` (the rule's action names; empty: `default_actions`).
    /// Never blocks on delivery: the cost is a dedup lookup and one enqueue per action.
    public func dispatch(_ alert: Alert, actions: [String]) {
        dispatch(alert, actions: actions, askPolicy: true)
    }

    /// `dispatch`; `askPolicy` false for an alert the policy made itself ("Policy violation").
    private func dispatch(_ alert: Alert, actions: [String], askPolicy: Bool) {
        var alert = alert
        if let hostname = config.hostname { alert.hostname = hostname }
        alert.outputFields = config.outputFields
        var seen = Set<String>()
        let names = (actions.isEmpty ? config.defaultActions : actions).filter { seen.insert($0).inserted }
        var enforcement: [String] = [], notify: [String] = []
        let admitted = shared.withLock { shared -> Bool in
            shared.alerts += 1
            for name in names {
                if name == kernelKillActionName {
                    let result = Self.kernelKillResult(shared.kernelKill[alert.rule])
                    alert.enforcement.append(result)
                    shared.virtual[name, default: ActionStats(name: name, type: name)].count(result)
                    continue
                }
                guard let entry = entries[name] else {
                    shared.virtual[name, default: ActionStats(name: name, type: "unknown")].count(
                        EnforcementResult(action: name, enforced: false, detail: "unknown action '\(name)'"))
                    continue
                }
                if let minimum = entry.definition.minPriority, alert.priority > minimum {
                    worker(name, entry, &shared).countSkipped()
                    continue
                }
                if entry.definition.kind.enforces { enforcement.append(name) } else { notify.append(name) }
            }
            if shared.closed {  // after shutdown: counted as dropped, never run
                for name in enforcement + notify { workerIfDefined(name, entries[name], &shared)?.countDropped() }
                return false
            }
            // Enforcing alerts are never aggregated: each one acts and reports its result.
            guard enforcement.isEmpty, !names.contains(kernelKillActionName) else { return true }
            return shared.dedup.admit(&alert)
        }
        guard admitted else { return }
        let job = Job(alert: alert, enforcement: enforcement, notify: notify)
        if askPolicy, let policyWorker, let policy = config.policy, policy.applies(to: alert) {
            if !policyWorker.enqueue(job) { decided(job, .failure(.permanent("the policy queue is full (\(policy.queueSize) alerts)"))) }
            return
        }
        advance(job)
    }

    /// The policy's answer about `job` (the server's body, or why there is none): an allowed
    /// alert goes on with the decision's fields; a denied one stops here, counted and logged;
    /// without a decision the failure mode decides.
    fileprivate func decided(_ job: Job, _ answer: Result<String, ActionFailure>) {
        guard let policy = config.policy else { return }
        var job = job
        let decision: PolicyDecision
        do throws(ActionFailure) {
            decision = try PolicyDecision(answer: Array(try answer.get().utf8))
        } catch {
            let open = policy.failure == .open
            shared.withLock { shared in
                shared.policy?.lastError = error.message
                if open { shared.policy?.failedOpen += 1 } else { shared.policy?.failedClosed += 1 }
            }
            logger.warning("policy: no decision on alert \(job.alert.id) of rule '\(job.alert.rule)' (\(error.message)); failure: \(policy.failure.rawValue), so its actions \(open ? "run" : "do not run")")
            guard open else { return }
            job.alert.policy = ["error": JSONValue.string(error.message).json]
            advance(job)
            return
        }
        job.alert.policy = decision.fields
        let summary = decision.fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        shared.withLock { shared in
            if decision.allow {
                shared.policy?.allowed += 1
            } else {
                shared.policy?.denied += 1
                shared.policy?.lastDenied = "\(job.alert.rule) (id \(job.alert.id))\(summary.isEmpty ? "" : ": " + summary)"
            }
        }
        guard decision.allow else {
            logger.notice("policy denied alert \(job.alert.id) of rule '\(job.alert.rule)'; its actions do not run\(summary.isEmpty ? "" : ": " + summary)")
            return
        }
        advance(job)
    }

    /// The counters of every action used so far, and of dedup.
    public func stats() -> DispatcherStats {
        let (workers, virtual, alerts, dedup, policy) = shared.withLock { ($0.workers, $0.virtual, $0.alerts, $0.dedup, $0.policy) }
        let actions = (workers.values.map(\.stats) + virtual.values).sorted { $0.name < $1.name }
        var stats = DispatcherStats(actions: actions, alerts: alerts, suppressed: dedup.suppressed, unreported: dedup.unreported, untracked: dedup.untracked)
        stats.policy = policy
        if let policyWorker {
            let worker = policyWorker.stats
            stats.policy?.queued = worker.queued
        }
        stats.eventTaps = eventTaps.map(\.stats)
        return stats
    }

    /// Stops accepting alerts and delivers what is queued: enforcement queues first (they feed
    /// the others), then the reporting ones, all within `timeout`. What is still queued at the
    /// deadline is dropped and counted. Blocks the caller up to `timeout` (plus the attempt in
    /// progress, which its own timeout bounds). Returns true when every queue was flushed.
    @discardableResult
    public func shutdown(timeout: Duration) -> Bool {
        let deadline = DispatchTime.now() + .nanoseconds(Int(timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
        let pending = shared.withLock { shared -> [(String, Int)] in
            shared.closed = true
            return shared.dedup.closeAll()
        }
        for (rule, count) in pending {
            logger.notice("\(count) identical alert(s) of rule '\(rule)' were suppressed and no later alert carried the count")
        }
        var flushed = true
        // The event taps first: the policy's may still raise alerts.
        for tap in eventTaps where !tap.close(until: deadline) {
            flushed = false
            logger.warning("event tap '\(tap.name)': shutdown deadline passed; the events still queued were dropped (counted)")
        }
        // Each stage feeds the next (the policy stage, then enforcement, then reporting), and
        // may create a worker of a later stage on first use: each stage's workers are read when
        // its turn comes.
        let stages: [() -> [ActionWorker]] = [
            { self.policyWorker.map { [$0] } ?? [] },
            { self.shared.withLock { Array($0.workers.values) }.filter(\.kind.enforces) },
            { self.shared.withLock { Array($0.workers.values) }.filter { !$0.kind.enforces } },
        ]
        for workersOfStage in stages {
            let stage = workersOfStage()
            stage.forEach { $0.close() }
            for worker in stage where !worker.waitFinished(until: deadline) {
                flushed = false
                let dropped = worker.abandon()
                logger.warning("action '\(worker.name)': shutdown deadline passed; \(dropped) queued alert(s) dropped")
            }
        }
        return flushed
    }

    // MARK: - Event taps

    /// The rule name of the alert the policy stage raises for an event it denies.
    public static let policyViolationRule = "Policy violation"

    /// A tap per nats action with `events:` and one for the policy stage's `events:`.
    private static func eventTaps(config: ActionsConfig, entries: [String: Entry], logger: Logger, box: WeakDispatcher) throws(ActionConfigError) -> [EventTap] {
        var taps: [EventTap] = []
        let host = config.hostname ?? Alert.localHostname
        for (name, entry) in entries.sorted(by: { $0.key < $1.key }) {
            guard let selection = entry.definition.events, let action = entry.handler as? NATSAction else { continue }
            let filter = try selection.compiled(at: "named.\(name).events")
            let publisher = action.eventPublisher(host: host)
            logger.info("action '\(name)': events where \(selection.filter) published on \(publisher.subjectPattern) (queue \(selection.queueSize))")
            taps.append(EventTap(name: "nats:\(name)", selection: selection, filter: filter) { publisher.publish($0) })
        }
        if let policy = config.policy, let selection = policy.events {
            let filter = try selection.compiled(at: "policy.events")
            let poster = try Self.poster(for: policy.asWebhook, timeout: policy.timeout ?? config.timeout) { "policy.\($0)" }
            logger.info("policy: events where \(selection.filter) asked at \(policy.documentURL); a denied event is a '\(policyViolationRule)' alert")
            taps.append(EventTap(name: "policy", selection: selection, filter: filter) { events in
                var sent = 0, failed = 0, lastError: String?
                for event in events {
                    var line: [UInt8] = Array("{\"input\":".utf8)
                    EventFormat.appendJSON(event, to: &line)
                    line.append(UInt8(ascii: "}"))
                    do throws(ActionFailure) {
                        let decision = try PolicyDecision(answer: try poster.exchange(line, keep: 64 << 10).body)
                        box.dispatcher?.eventDecided(event, decision)
                        sent += 1
                    } catch {
                        failed += 1
                        lastError = error.message
                    }
                }
                return (sent, failed, lastError)
            })
        }
        return taps
    }

    /// The policy's decision on an event: allowed, nothing happens (counted); denied, a
    /// "Policy violation" alert with the decision's fields goes to the `default_actions`,
    /// without asking the policy again. The decision's `priority` (a string), when it names
    /// one, is the alert's; WARNING otherwise.
    fileprivate func eventDecided(_ event: Event, _ decision: PolicyDecision) {
        shared.withLock { shared in
            if decision.allow { shared.policy?.eventsAllowed += 1 } else { shared.policy?.eventsDenied += 1 }
        }
        guard !decision.allow, let policy = config.policy else { return }
        var priority = Priority.warning
        if let text = decision.fields["priority"], case .string(let name)? = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)),
            let named = Priority(parsing: name) {
            priority = named
        }
        let summary = decision.fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let process = event.comm.escapedForTerminal
        var alert = Alert(rule: Self.policyViolationRule, priority: priority,
                          output: "Policy violation: \(policy.path) denied \(event.kind.rawValue) by \(process) (pid \(event.pid))\(summary.isEmpty ? "" : ": " + summary)",
                          tags: ["policy"], event: event)
        alert.policy = decision.fields
        dispatch(alert, actions: [], askPolicy: false)
    }

    // MARK: - Internals

    /// The job's next enforcement action, or (when none is left) the observer and every
    /// reporting action. An enforcement queue that is full is recorded in the alert as failed.
    private func advance(_ job: Job) {
        var job = job
        while !job.enforcement.isEmpty {
            let name = job.enforcement.removeFirst()
            let next = shared.withLock { workerIfDefined(name, entries[name], &$0) }
            if next?.enqueue(job) == true { return }
            job.alert.enforcement.append(EnforcementResult(action: name, enforced: false, detail: "dropped: queue full"))
        }
        observer?(job.alert)
        let reporters = shared.withLock { shared in job.notify.compactMap { workerIfDefined($0, entries[$0], &shared) } }
        for reporter in reporters { _ = reporter.enqueue(Job(alert: job.alert, enforcement: [], notify: [])) }
    }

    private func workerIfDefined(_ name: String, _ entry: Entry?, _ shared: inout Shared) -> ActionWorker? {
        guard let entry else { return nil }
        return worker(name, entry, &shared)
    }

    /// The worker of `name`, created on first use.
    private func worker(_ name: String, _ entry: Entry, _ shared: inout Shared) -> ActionWorker {
        if let existing = shared.workers[name] { return existing }
        let created = makeWorker(name, entry, spool: nil)
        shared.workers[name] = created
        return created
    }

    /// A worker for the action `name`, with its spool when it has one.
    private func makeWorker(_ name: String, _ entry: Entry, spool: (spool: AlertSpool, handler: any SpooledHandler, logger: Logger)?) -> ActionWorker {
        let definition = entry.definition
        let kind = definition.kind
        let policy = DeliveryPolicy(
            capacity: definition.queueSize ?? config.queueSize,
            retries: kind.isNetwork ? definition.retries ?? config.retries : 0,
            backoff: definition.backoff ?? config.backoff, maxBackoff: definition.maxBackoff ?? config.maxBackoff)
        let logger = logger
        return ActionWorker(name: name, kind: kind, handler: entry.handler, policy: policy, spool: spool) { [weak self] job, rule, result in
            if case .failure(let failure) = result {
                logger.warning("action '\(name)' failed for rule '\(rule)': \(failure.message)")
            }
            guard kind.enforces, var job else { return }
            switch result {
            case .success(let detail): job.alert.enforcement.append(EnforcementResult(action: name, enforced: true, detail: detail))
            case .failure(let failure): job.alert.enforcement.append(EnforcementResult(action: name, enforced: false, detail: failure.message))
            }
            self?.advance(job)
        }
    }

    private static func kernelKillResult(_ status: KernelKillStatus?) -> EnforcementResult {
        switch status {
        case .enforced: EnforcementResult(action: kernelKillActionName, enforced: true, detail: "enforced in kernel")
        case .notEnforced(let reason): EnforcementResult(action: kernelKillActionName, enforced: false, detail: "not enforced in kernel: \(reason)")
        case nil: EnforcementResult(action: kernelKillActionName, enforced: false, detail: "not enforced: the kernel did not take this rule")
        }
    }

    /// The TLS context of a definition: `ca_file` loaded now, so a bad bundle (or a missing
    /// libssl3) is a start-up error, named at `ca_file`, else at what asked for TLS.
    private static func tlsContext(
        _ definition: ActionDefinition, _ parse: (String, () throws(AddressError) -> TLSContext) throws(ActionConfigError) -> TLSContext
    ) throws(ActionConfigError) -> TLSContext {
        let verification = TLSVerification(caFile: definition.caFile, skipVerify: definition.insecureSkipVerify ?? false)
        let key = definition.caFile != nil ? "ca_file" : definition.kind == .email ? "tls" : definition.kind == .nats ? "servers" : "url"
        return try parse(key) { () throws(AddressError) in try TLSContext(verification) }
    }

    /// The HTTP client of a webhook-like definition (a webhook, a slack action, the policy
    /// stage); errors at `at(KEY)`.
    static func poster(for definition: ActionDefinition, timeout: Double, at: (String) -> String) throws(ActionConfigError) -> HTTPPoster {
        func parse<T>(_ key: String, _ body: () throws(AddressError) -> T) throws(ActionConfigError) -> T {
            do { return try body() } catch { throw ActionConfigError(path: at(key), message: error.message) }
        }
        let endpoint = try parse("url") { () throws(AddressError) in try HTTPEndpoint(definition.url ?? "") }
        let tls = try definition.usesTLS ? tlsContext(definition, parse) : nil
        return HTTPPoster(endpoint: endpoint, headers: (definition.headers ?? [:]).sorted { $0.key < $1.key }, timeout: .seconds(fraction: timeout), tls: tls)
    }

    /// The handler of a definition, with the top-level defaults filled in.
    static func handler(for definition: ActionDefinition, name: String, config: ActionsConfig, logger: Logger) throws(ActionConfigError) -> any ActionHandler {
        let timeout = Duration.seconds(fraction: definition.timeout ?? config.timeout)
        func parse<T>(_ key: String, _ body: () throws(AddressError) -> T) throws(ActionConfigError) -> T {
            do { return try body() } catch { throw ActionConfigError(path: "named.\(name).\(key)", message: error.message) }
        }
        switch definition.kind {
        case .stdout: return StdoutAction(style: definition.format ?? .text)
        case .log: return LogAction(logger: logger)
        case .file:
            return FileAction(path: definition.path ?? "", maxSize: definition.maxSize ?? 10 << 20, keep: definition.keep ?? 5)
        case .syslog:
            let address = try parse("address") { () throws(AddressError) in try SyslogAddress(definition.address ?? "/dev/log") }
            return SyslogAction(
                address: address, facility: definition.facility.flatMap(SyslogFacility.number) ?? 3,
                appName: definition.appName ?? "vigil", style: definition.format ?? .text, timeout: timeout)
        case .webhook, .slack:
            let poster = try poster(for: definition, timeout: definition.timeout ?? config.timeout) { "named.\(name).\($0)" }
            return definition.kind == .webhook ? WebhookAction(poster: poster) : SlackAction(poster: poster)
        case .email:
            let mode = definition.smtpTLSMode
            let server = try parse("server") { () throws(AddressError) in try HostPort(definition.server ?? "", defaultPort: mode.defaultPort) }
            let credentials = try definition.readPassword { "named.\(name).\($0)" }.map {
                SMTPCredentials(username: definition.username ?? "", password: $0)
            }
            let client = SMTPClient(
                server: server, helo: definition.helo ?? SyslogAction.header(Alert.localHostname, 255), timeout: timeout,
                mode: mode, tls: try definition.usesTLS ? tlsContext(definition, parse) : nil, credentials: credentials)
            return EmailAction(
                client: client, from: definition.from ?? "", to: definition.to ?? [], subject: definition.subject ?? "[vigil] {priority} {rule}")
        case .nats:
            let servers = try parse("servers") { () throws(AddressError) -> [NATSServerURL] in
                var parsed: [NATSServerURL] = []
                for server in definition.servers ?? [] { parsed.append(try NATSServerURL(server)) }
                return parsed
            }
            var credentials: NATSCredentials?
            if let password = try definition.readPassword({ "named.\(name).\($0)" }) {
                credentials = .password(user: definition.username ?? "", password: password)
            } else if let tokenEnv = definition.tokenEnv {
                guard let token = ProcessInfo.processInfo.environment[tokenEnv], !token.isEmpty else {
                    throw ActionConfigError(path: "named.\(name).token_env", message: "the environment variable \(tokenEnv) is not set or empty")
                }
                credentials = .token(token)
            }
            return NATSAction(
                servers: servers, stream: definition.stream ?? "VIGIL", prefix: definition.subjectPrefix ?? "vigil",
                credentials: credentials, tls: try definition.usesTLS ? tlsContext(definition, parse) : nil, timeout: timeout,
                duplicateWindow: definition.duplicateWindow ?? 3600)
        case .exec:
            return ExecAction(argv: definition.argv ?? [], env: definition.env ?? [:], timeout: .seconds(fraction: definition.timeout ?? 30))
        case .kill: return KillAction()
        case .containerPause, .containerUnpause, .containerKill, .containerStop, .containerCheckpoint:
            let operation: ContainerAction.Operation = switch definition.kind {
            case .containerPause: .pause
            case .containerUnpause: .unpause
            case .containerStop: .stop(grace: definition.grace ?? 10)
            case .containerCheckpoint: .checkpoint(directory: definition.directory, exit: !(definition.leaveRunning ?? false))
            default: .kill
            }
            let grace = definition.grace ?? 10
            // A stop waits for its grace; a checkpoint for CRIU to dump every process (seconds for a large one).
            let waits: Double = switch definition.kind {
            case .containerStop: Double(grace + 5)
            case .containerCheckpoint: max(config.timeout, 60)
            default: config.timeout
            }
            let clientTimeout = Duration.seconds(fraction: definition.timeout ?? waits)
            let client = DockerClient(socketPath: definition.dockerSocket ?? DockerClient.defaultSocketPath, timeout: clientTimeout)
            return ContainerAction(operation: operation, client: client)
        }
    }
}

extension ActionStats {
    /// Counts a result computed without a worker (kernel_kill, unknown names).
    fileprivate mutating func count(_ result: EnforcementResult) {
        if result.enforced {
            sent += 1
        } else {
            failed += 1
            lastError = result.detail
        }
    }
}

/// Aggregation of identical alerts by event time; see `DedupConfig` and docs/actions.md.
struct DedupTable: Sendable {
    private struct Window: Sendable {
        var start: UInt64
        var suppressed: Int
    }

    let windowNs: UInt64
    let fields: [String]
    let maxKeys: Int
    private var windows: [String: Window] = [:]
    private(set) var suppressed: UInt64 = 0
    private(set) var unreported: UInt64 = 0
    private(set) var untracked: UInt64 = 0

    init(config: DedupConfig) {
        windowNs = UInt64(max(0, config.window) * 1e9)
        fields = config.fields
        maxKeys = config.maxKeys
    }

    /// The key of an alert: its rule and output, or its rule and the configured fields.
    func key(_ alert: Alert) -> String {
        let parts = fields.isEmpty ? [alert.output] : fields.map { alert.fieldText($0) ?? "<NA>" }
        return ([alert.rule] + parts).joined(separator: "\u{1f}")
    }

    /// True when `alert` is to be sent (then carrying the count of repeats suppressed since the
    /// last one sent); false when it repeats one sent less than the window ago.
    mutating func admit(_ alert: inout Alert) -> Bool {
        guard windowNs > 0 else { return true }
        let key = key(alert)
        if let window = windows[key] {
            if alert.timeNs < window.start &+ windowNs {
                windows[key]?.suppressed += 1
                suppressed += 1
                return false
            }
            alert.suppressed = window.suppressed
        } else if windows.count >= maxKeys {
            prune(now: alert.timeNs)
            if windows.count >= maxKeys {
                untracked += 1
                return true
            }
        }
        windows[key] = Window(start: alert.timeNs, suppressed: 0)
        return true
    }

    /// Drops windows that ended; their pending counts become `unreported`.
    private mutating func prune(now: UInt64) {
        for (key, window) in windows where window.start &+ windowNs <= now {
            unreported += UInt64(window.suppressed)
            windows[key] = nil
        }
    }

    /// Forgets every window; returns (rule, count) for those with suppressed repeats pending.
    mutating func closeAll() -> [(String, Int)] {
        let pending = windows.filter { $0.value.suppressed > 0 }.map { (String($0.key.prefix { $0 != "\u{1f}" }), $0.value.suppressed) }
        unreported += UInt64(pending.map(\.1).reduce(0, +))
        windows.removeAll()
        return pending.sorted { $0.0 < $1.0 }
    }
}

/// The dispatcher, for the policy worker's completion (set once the dispatcher exists).
private final class WeakDispatcher: @unchecked Sendable {
    weak var dispatcher: ActionDispatcher?
}
