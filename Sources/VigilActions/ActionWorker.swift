import Dispatch
import Foundation
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

    /// Zero counters for an action.
    public init(name: String, type: String) {
        self.name = name
        self.type = type
    }

    enum CodingKeys: String, CodingKey {
        case name, type, sent, failed, dropped, retried, skipped, queued, lastError = "last_error", transport
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
final class ActionWorker: Sendable {
    private struct State {
        var queue: [Job] = []
        var head = 0
        var closed = false
        var abandoned = false
        var started = false
        var stats: ActionStats
        var count: Int { queue.count - head }
    }

    let name: String
    let kind: ActionKind
    private let handler: any ActionHandler
    private let policy: DeliveryPolicy
    /// Called on the worker's thread after each job: the detail or the failure.
    private let completion: @Sendable (Job, Result<String, ActionFailure>) -> Void
    private let state: Mutex<State>
    private let available = DispatchSemaphore(value: 0)
    private let interrupt = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    init(name: String, kind: ActionKind, handler: any ActionHandler, policy: DeliveryPolicy,
         completion: @escaping @Sendable (Job, Result<String, ActionFailure>) -> Void) {
        self.name = name
        self.kind = kind
        self.handler = handler
        self.policy = policy
        self.completion = completion
        var stats = ActionStats(name: name, type: kind.rawValue)
        stats.transport = handler.transport
        state = Mutex(State(stats: stats))
    }

    /// Queues `job` unless the queue is full or closed (then counts it dropped and returns false).
    func enqueue(_ job: Job) -> Bool {
        let (accepted, start) = state.withLock { state -> (Bool, Bool) in
            guard !state.closed, state.count < policy.capacity else {
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
        if start { startThread() }
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
            stats.queued = state.count
            return stats
        }
    }

    /// Stops accepting alerts; the thread delivers what is queued, then ends.
    func close() {
        let running = state.withLock { state -> Bool in
            state.closed = true
            return state.started
        }
        if running { available.signal() } else { finished.signal() }
    }

    /// Waits until the thread has delivered everything and ended, or `deadline` passes.
    func waitFinished(until deadline: DispatchTime) -> Bool {
        guard finished.wait(timeout: deadline) == .success else { return false }
        finished.signal()  // later waiters see it too
        return true
    }

    /// Gives up on what is still queued (counted dropped) and interrupts a backoff wait.
    /// Returns how many alerts were dropped.
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
        return dropped
    }

    private func startThread() {
        let thread = Thread { [self] in run() }
        thread.name = "vigil-action-\(name)"
        thread.start()
    }

    private func run() {
        while true {
            available.wait()
            let next = state.withLock { state -> Job?? in
                guard !state.abandoned, state.count > 0 else { return state.closed || state.abandoned ? .some(nil) : nil }
                let job = state.queue[state.head]
                state.head += 1
                return job
            }
            guard let next else { continue }  // a wakeup without work
            guard let job = next else { break }  // closed and empty, or abandoned
            let result = deliver(job.alert)
            state.withLock { state in
                switch result {
                case .success: state.stats.sent += 1
                case .failure(let failure):
                    state.stats.failed += 1
                    state.stats.lastError = failure.message
                }
            }
            completion(job, result)
        }
        finished.signal()
    }

    /// Performs the action, retrying retryable failures with backoff while not abandoned.
    private func deliver(_ alert: Alert) -> Result<String, ActionFailure> {
        var attempt = 0
        while true {
            do {
                return .success(try handler.perform(alert))
            } catch {
                guard error.retryable, attempt < policy.retries else { return .failure(error) }
                attempt += 1
                let abandoned = state.withLock { state -> Bool in
                    if !state.abandoned { state.stats.retried += 1 }
                    return state.abandoned
                }
                let delay = min(policy.maxBackoff, policy.backoff * Double(1 << min(attempt - 1, 30))) * Double.random(in: 0.8...1.2)
                if abandoned || interrupt.wait(timeout: .now() + delay) == .success {
                    return .failure(.permanent("\(error.message) (retries abandoned at shutdown)"))
                }
            }
        }
    }
}
