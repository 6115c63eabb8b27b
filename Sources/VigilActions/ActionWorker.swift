import Dispatch
import Foundation
import Logging
import Synchronization

/// Counters of one action, as `ActionDispatcher.stats()` reports them.
public struct ActionStats: Sendable, Equatable, Codable {
    /// The action's name.
    public var name: String
    /// Its kind (`webhook`, `kill`, ...; `kernel_kill`, or `unknown` for a name nothing defines).
    public var type: String
    /// Alerts delivered, or enforcements that took effect.
    public var sent: UInt64 = 0
    /// Alerts that could not be delivered or enforced after every attempt.
    public var failed: UInt64 = 0
    /// Alerts dropped without an attempt: the queue was full, or shutdown's deadline passed.
    public var dropped: UInt64 = 0
    /// Attempts repeated after a failure (network kinds).
    public var retried: UInt64 = 0
    /// Alerts less severe than the action's `min_priority`.
    public var skipped: UInt64 = 0
    /// Alerts waiting in the queue now.
    public var queued: Int = 0
    /// The last failure's message, if any.
    public var lastError: String?
    /// How a network action connects (`https, verified against the system CA store`,
    /// `SMTP mail.example:587, tls: starttls, ...`); nil for the others.
    public var transport: String?
    /// Alerts waiting in the action's on-disk spool now (nil: the action has no spool).
    public var spooled: Int?
    /// Alerts the spool could not write (disk full, read-only, ...): kept in memory only, so a
    /// crash loses them (nil: the action has no spool).
    public var unspooled: UInt64?

    /// Zero counters for an action.
    public init(name: String, type: String) {
        self.name = name
        self.type = type
    }

    enum CodingKeys: String, CodingKey {
        case name, type, sent, failed, dropped, retried, skipped, queued, lastError = "last_error", transport, spooled, unspooled
    }
}

/// How a worker delivers: queue length and retries.
struct DeliveryPolicy: Sendable {
    var capacity: Int
    /// Extra attempts for retryable failures (0 for kinds that do not retry).
    var retries: Int
    var backoff: Double
    var maxBackoff: Double
}

/// One alert on its way: the enforcement actions still to run, then the reporting ones.
struct Job: Sendable {
    var alert: Alert
    var enforcement: [String]
    var notify: [String]
}

/// One action's bounded queue and the thread that works it. `enqueue` never blocks: when the
/// queue is full the new alert is dropped and counted (drop-newest). The thread delivers in
/// order, retrying retryable failures with exponential backoff (with +-20% jitter).
///
/// With a spool (`AlertSpool`, network actions of the daemon) a second thread moves each queued
/// alert to disk (its payload, rendered once) and the delivering thread sends the spool's oldest
/// record until the receiver takes it: transient failures are retried without a limit (the
/// queue's bounds still hold: what does not fit is dropped and counted), and what is left at
/// shutdown or a crash stays on disk for the next start.
final class ActionWorker: Sendable {
    private struct State {
        var queue: [Job] = []
        var head = 0
        var closed = false
        var abandoned = false
        var started = false
        /// The spooling thread has moved everything to the spool and ended.
        var spoolingDone = false
        /// Jobs the spooling thread took from the queue and has not added to the spool yet
        /// (rendering them): still waiting, so they count against the capacity.
        var moving = 0
        var stats: ActionStats
        var count: Int { queue.count - head }

        mutating func pop() -> Job? {
            guard count > 0 else { return nil }
            defer { head += 1 }
            return queue[head]
        }
    }

    let name: String
    let kind: ActionKind
    private let handler: any ActionHandler
    private let policy: DeliveryPolicy
    /// The action's on-disk queue, with the handler that renders and sends its payloads.
    private let spool: (spool: AlertSpool, handler: any SpooledHandler, logger: Logger)?
    /// Called on the worker's thread after each alert: its job (nil for a spooled record), its
    /// rule, the detail or the failure.
    private let completion: @Sendable (Job?, String, Result<String, ActionFailure>) -> Void
    private let state: Mutex<State>
    private let available = DispatchSemaphore(value: 0)
    /// Spooled records are waiting (the spooling thread tells the delivering one).
    private let spooled = DispatchSemaphore(value: 0)
    /// The spooling thread ended.
    private let spoolingEnded = DispatchSemaphore(value: 0)
    private let interrupt = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    init(name: String, kind: ActionKind, handler: any ActionHandler, policy: DeliveryPolicy,
         spool: (spool: AlertSpool, handler: any SpooledHandler, logger: Logger)? = nil,
         completion: @escaping @Sendable (Job?, String, Result<String, ActionFailure>) -> Void) {
        self.name = name
        self.kind = kind
        self.handler = handler
        self.policy = policy
        self.spool = spool
        self.completion = completion
        var stats = ActionStats(name: name, type: kind.rawValue)
        stats.transport = handler.transport
        if spool != nil {
            stats.spooled = 0
            stats.unspooled = 0
        }
        state = Mutex(State(started: spool != nil, stats: stats))
        if let spool {  // alerts of an earlier run may be waiting: both threads start now
            startThread("vigil-spool-\(name)") { [self] in spoolLoop(spool.spool, spool.handler, spool.logger) }
            startThread("vigil-action-\(name)") { [self] in deliverSpooled(spool.spool, spool.handler) }
        }
    }

    /// Queues `job` unless the queue is full or closed (then counts it dropped and returns false).
    func enqueue(_ job: Job) -> Bool {
        let (accepted, start) = state.withLock { state -> (Bool, Bool) in
            // The spool's count under this lock: the spooling thread moves a job from `moving` to
            // the spool under it too, so a job on its way is never missed (the bound holds).
            let waiting = state.moving + (spool?.spool.count ?? 0)
            guard !state.closed, state.count + waiting < policy.capacity else {
                state.stats.dropped += 1
                return (false, false)
            }
            if state.head > 64, state.head * 2 > state.queue.count {
                state.queue.removeFirst(state.head)
                state.head = 0
            }
            state.queue.append(job)
            defer { state.started = true }
            return (true, !state.started)
        }
        guard accepted else { return false }
        AlertTrace.shared?.mark(job.alert.id, .queued)
        if start { startThread("vigil-action-\(name)") { [self] in run() } }
        available.signal()
        return true
    }

    /// Counts an alert skipped by `min_priority`.
    func countSkipped() { state.withLock { $0.stats.skipped += 1 } }

    /// Counts an alert dropped before reaching the queue (dispatched after shutdown).
    func countDropped() { state.withLock { $0.stats.dropped += 1 } }

    /// The counters now.
    var stats: ActionStats {
        state.withLock { state in
            var stats = state.stats
            stats.queued = state.count + state.moving + (spool?.spool.count ?? 0)
            if let spool { stats.spooled = spool.spool.onDisk }
            return stats
        }
    }

    /// Stops accepting alerts; the thread delivers what is queued, then ends (a spooled action
    /// stops at the first failure: its records wait on disk for the next start).
    func close() {
        let running = state.withLock { state -> Bool in
            state.closed = true
            return state.started
        }
        if running {
            available.signal()
            spooled.signal()
            if spool != nil { interrupt.signal() }  // its records are on disk: no backoff wait at shutdown
        } else {
            finished.signal()
        }
    }

    /// Waits until the thread has delivered everything and ended, or `deadline` passes.
    func waitFinished(until deadline: DispatchTime) -> Bool {
        guard finished.wait(timeout: deadline) == .success else { return false }
        finished.signal()  // later waiters see it too
        return true
    }

    /// Gives up on what is still queued (counted dropped; a spool's files stay for the next
    /// start) and interrupts a backoff wait. Returns how many alerts were dropped.
    @discardableResult
    func abandon() -> Int {
        let dropped = state.withLock { state -> Int in
            state.abandoned = true
            let remaining = state.count
            state.stats.dropped += UInt64(remaining)
            state.queue.removeAll()
            state.head = 0
            return remaining
        }
        interrupt.signal()
        available.signal()
        spooled.signal()
        return dropped
    }

    private func startThread(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread(block: body)
        thread.name = name
        thread.start()
    }

    /// Without a spool: delivers queued jobs in order until closed and empty, or abandoned.
    private func run() {
        while true {
            available.wait()
            let next = state.withLock { state -> Job?? in
                guard !state.abandoned, let job = state.pop() else { return state.closed || state.abandoned ? .some(nil) : nil }
                return job
            }
            guard let next else { continue }  // a wakeup without work
            guard let job = next else { break }  // closed and empty, or abandoned
            AlertTrace.shared?.mark(job.alert.id, .dequeued)
            let result = deliver(retries: policy.retries, spooled: false) { () throws(ActionFailure) in try handler.perform(job.alert) }
                ?? .failure(.permanent("abandoned at shutdown"))
            count(result)
            completion(job, job.alert.rule, result)
        }
        finished.signal()
    }

    /// The spooling thread: renders every alert queued now once, adds them to the spool and
    /// wakes the delivering thread (which may send them from memory at once), then writes their
    /// files (or keeps one in memory when the disk refuses, counted and logged): delivery never
    /// waits for the fsyncs, which take milliseconds, not even an alert queued while the one
    /// before it is being written; an alert is at risk from a crash no longer than before
    /// (until its file is durable, or it was delivered).
    private func spoolLoop(_ spool: AlertSpool, _ handler: any SpooledHandler, _ logger: Logger) {
        var lastFailure: String?
        var refused = 0  // alerts the full spool refused since it last had room (logged once per episode)
        while true {
            available.wait()
            while true {
                let jobs = state.withLock { state -> [Job] in
                    var jobs: [Job] = []
                    while !state.abandoned, let job = state.pop() { jobs.append(job) }
                    state.moving = jobs.count
                    return jobs
                }
                if jobs.isEmpty { break }
                var pending: [(job: Job, write: PendingSpoolWrite)] = []
                for job in jobs {
                    AlertTrace.shared?.mark(job.alert.id, .dequeued)
                    let payload = handler.payload(job.alert)
                    // From `moving` to the spool in one step under the worker's lock (`enqueue`).
                    let added = state.withLock { state -> PendingSpoolWrite? in
                        state.moving -= 1
                        guard let write = try? spool.add(id: job.alert.id, rule: job.alert.rule, payload: payload) else {
                            state.stats.dropped += 1
                            return nil
                        }
                        return write
                    }
                    guard let added else {
                        if refused == 0 {
                            logger.warning("action '\(name)': spool full (\(spool.capacity) alerts or \(spool.maxBytes) bytes); alerts dropped (counted) until it has room, first of rule '\(job.alert.rule)'")
                        }
                        refused += 1
                        continue
                    }
                    if refused > 0 {
                        logger.notice("action '\(name)': spool has room again; \(refused) alert(s) dropped while it was full")
                        refused = 0
                    }
                    pending.append((job, added))
                }
                if !pending.isEmpty { spooled.signal() }
                for (job, write) in pending {
                    let failure = spool.persist(write)
                    if let failure {
                        state.withLock { $0.stats.unspooled? += 1 }
                        if failure != lastFailure {  // once per kind of failure, not per alert
                            logger.error("action '\(name)': alert kept in memory only (lost if the daemon dies): \(failure)")
                        }
                    } else {
                        AlertTrace.shared?.mark(job.alert.id, .spooled)
                        if lastFailure != nil { logger.notice("action '\(name)': spool \(spool.directory) writable again") }
                    }
                    lastFailure = failure
                }
            }
            let done = state.withLock { state -> Bool in
                guard state.closed || state.abandoned, state.count == 0 || state.abandoned else { return false }
                state.spoolingDone = true
                return true
            }
            if done { break }
        }
        spooled.signal()
        spoolingEnded.signal()
    }

    /// The delivering thread of a spooled action: sends the spool's oldest record until the
    /// receiver takes it or refuses it for good, then removes it; after `close`, ends at the
    /// first transient failure (the record stays on disk), or when the spool is empty.
    private func deliverSpooled(_ spool: AlertSpool, _ handler: any SpooledHandler) {
        outer: while true {
            // Records of an earlier run are sent first, before anything new is spooled.
            while let record = spool.first, !state.withLock({ $0.abandoned }) {
                guard let result = deliver(retries: nil, spooled: true, { () throws(ActionFailure) in
                    try handler.send(try spool.payload(of: record).get(), id: record.id)
                }) else { break outer }  // closing: the record waits on disk for the next start
                spool.removeFirst()
                count(result)
                completion(nil, record.rule, result)
            }
            let (abandoned, closing, spoolingDone) = state.withLock { ($0.abandoned, $0.closed, $0.spoolingDone) }
            if abandoned || (closing && spoolingDone && spool.count == 0) { break }
            spooled.wait()
        }
        spoolingEnded.wait()  // nothing more comes into the spool
        let dropped = spool.dropMemoryOnly()
        state.withLock { $0.stats.dropped += UInt64(dropped) }
        finished.signal()
    }

    private func count(_ result: Result<String, ActionFailure>) {
        state.withLock { state in
            switch result {
            case .success: state.stats.sent += 1
            case .failure(let failure):
                state.stats.failed += 1
                state.stats.lastError = failure.message
            }
        }
    }

    /// Performs `attempt`, retrying retryable failures with backoff, at most `retries` times
    /// (nil: until it works, for a spooled record). Returns nil when it gave up because of
    /// shutdown (a spooled record then stays in the spool), else the result.
    private func deliver(retries: Int?, spooled: Bool, _ attempt: () throws(ActionFailure) -> String) -> Result<String, ActionFailure>? {
        var tries = 0
        while true {
            do {
                return .success(try attempt())
            } catch {
                guard error.retryable else { return .failure(error) }
                if let retries, tries >= retries { return .failure(error) }
                tries += 1
                let (abandoned, closed) = state.withLock { state -> (Bool, Bool) in
                    if !state.abandoned { state.stats.retried += 1 }
                    return (state.abandoned, state.closed)
                }
                if abandoned || (spooled && closed) {
                    return spooled ? nil : .failure(.permanent("\(error.message) (retries abandoned at shutdown)"))
                }
                let delay = min(policy.maxBackoff, policy.backoff * Double(1 << min(tries - 1, 30))) * Double.random(in: 0.8...1.2)
                if interrupt.wait(timeout: .now() + delay) == .success {
                    return spooled ? nil : .failure(.permanent("\(error.message) (retries abandoned at shutdown)"))
                }
            }
        }
    }
}
