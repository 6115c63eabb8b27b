import Foundation
import Synchronization
import VigilEvents
import VigilRules

/// Which events a stage takes besides alerts (`events:` of a `nats` action and of the policy
/// stage): those a condition of the rule language accepts (`evt.type in (execve, connect)`,
/// `container.id != host and evt.type = execve`, ...), the same language and fields as
/// `vigil events --filter`, so a selection by kind and one by anything else are written alike.
public struct EventSelection: Sendable, Equatable, Codable {
    /// The condition; every event when empty is refused (say `evt.type exists` if meant).
    public var filter: String
    /// Events waiting at most; beyond, the newest are dropped and counted.
    public var queueSize: Int = 10_000

    /// A selection of the events `filter` accepts.
    public init(filter: String) { self.filter = filter }

    enum CodingKeys: String, CodingKey, CaseIterable { case filter, queueSize = "queue_size" }

    /// Decodes `{filter: CONDITION, queue_size: N}`; unknown keys are errors.
    public init(from decoder: any Decoder) throws {
        try ConfigKeys.rejectUnknown(in: decoder, allowed: CodingKeys.allCases.map(\.rawValue), what: "an events section")
        let c = try decoder.container(keyedBy: CodingKeys.self)
        filter = try c.decode(String.self, forKey: .filter)
        queueSize = try c.decodeIfPresent(Int.self, forKey: .queueSize) ?? 10_000
    }

    /// The condition compiled; errors at `at.filter` / `at.queue_size`.
    func compiled(at path: String) throws(ActionConfigError) -> CompiledCondition {
        guard queueSize > 0 else { throw ActionConfigError(path: path + ".queue_size", message: "must be positive") }
        guard !filter.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ActionConfigError(path: path + ".filter", message: "an empty filter; name the events (e.g. evt.type in (execve, connect))")
        }
        do {
            return try ConditionCompiler.compile(filter, at: SourceLocation(file: "filter", line: 1, column: 1), context: ConditionContext())
        } catch {
            throw ActionConfigError(path: path + ".filter", message: "\(error)")
        }
    }
}

/// Counters of one event tap, under `event_taps` in the dispatcher's stats.
public struct EventTapStats: Sendable, Equatable, Codable {
    /// `nats:NAME` or `policy`.
    public var name: String
    /// The selection's condition.
    public var filter: String
    /// Events the filter accepted.
    public var matched: UInt64 = 0
    /// Events handled (published; asked about).
    public var sent: UInt64 = 0
    /// Events whose handling failed (server away, bad answer): lost, not retried.
    public var failed: UInt64 = 0
    /// Events dropped because the queue was full.
    public var dropped: UInt64 = 0
    /// Events waiting now.
    public var queued: Int = 0
    /// The last failure's message.
    public var lastError: String?

    enum CodingKeys: String, CodingKey { case name, filter, matched, sent, failed, dropped, queued, lastError = "last_error" }
}

/// The one way from the event thread to a stage that wants events (NATS export, the policy
/// stage): a filter and a bounded queue, drained in batches by a thread of the tap's own. The
/// event thread's cost is the filter and, for a match, one append under a lock; it never waits:
/// an event that does not fit is dropped and counted. Events in the queue are lost on a crash
/// (alerts are not: they have the spool).
public final class EventTap: Sendable {
    /// `nats:NAME` or `policy`.
    public let name: String
    private let filter: CompiledCondition
    private let filterText: String
    private let capacity: Int
    /// What the tap's thread does with a batch: returns the events handled and the failures
    /// (count and last message).
    private let handler: @Sendable ([Event]) -> (sent: Int, failed: Int, error: String?)

    private struct State {
        /// Events waiting are `queue[head...]`; those before `head` were handed on already and
        /// are cut off once they are at least half of the array, so a batch costs O(batch).
        var queue: [Event] = []
        var head = 0
        var stats: EventTapStats
        var closed = false
        var running = false

        var waiting: Int { queue.count - head }

        /// Takes up to `limit` of the waiting events, oldest first.
        mutating func take(_ limit: Int) -> [Event] {
            let end = head + min(limit, waiting)
            let batch = Array(queue[head..<end])
            head = end
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            } else if head * 2 >= queue.count {
                queue.removeFirst(head)
                head = 0
            }
            return batch
        }

        /// Drops every waiting event.
        mutating func removeAll() {
            queue.removeAll()
            head = 0
        }
    }
    private let state: Mutex<State>
    private let ready = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    /// The most events one handler call gets.
    static let batchSize = 256

    init(name: String, selection: EventSelection, filter: CompiledCondition,
         handler: @escaping @Sendable ([Event]) -> (sent: Int, failed: Int, error: String?)) {
        self.name = name
        self.filter = filter
        filterText = selection.filter
        capacity = selection.queueSize
        self.handler = handler
        state = Mutex(State(stats: EventTapStats(name: name, filter: selection.filter)))
    }

    /// Offers one event: queued when the filter accepts it and it fits, else counted as
    /// dropped. Event thread; never blocks on the handler.
    public func offer(_ event: Event) {
        guard filter.matches(event) else { return }
        let (wake, start) = state.withLock { state -> (Bool, Bool) in
            guard !state.closed else { return (false, false) }
            state.stats.matched += 1
            guard state.waiting < capacity else {
                state.stats.dropped += 1
                return (false, false)
            }
            state.queue.append(event)
            let start = !state.running
            state.running = true
            return (state.waiting == 1, start)
        }
        if start {
            let thread = Thread { [self] in drain() }
            thread.name = "vigil-tap"
            thread.start()
        }
        if wake { ready.signal() }
    }

    /// The tap's thread: takes up to `batchSize` events at a time and hands them to the handler.
    private func drain() {
        defer { finished.signal() }
        while true {
            let (batch, closed) = state.withLock { state in (state.take(Self.batchSize), state.closed) }
            if batch.isEmpty {
                if closed { return }
                ready.wait()
                continue
            }
            let outcome = handler(batch)
            state.withLock { state in
                state.stats.sent += UInt64(outcome.sent)
                state.stats.failed += UInt64(outcome.failed)
                if let error = outcome.error { state.stats.lastError = error }
            }
        }
    }

    /// Stops taking events; the thread hands on what is queued and ends. Waits for it at most
    /// until `deadline`; what is still queued then is counted as dropped. Returns true when done.
    @discardableResult
    public func close(until deadline: DispatchTime) -> Bool {
        let running = state.withLock { state -> Bool in
            state.closed = true
            return state.running
        }
        guard running else { return true }
        ready.signal()
        if finished.wait(timeout: deadline) == .success { return true }
        state.withLock { state in
            state.stats.dropped += UInt64(state.waiting)
            state.removeAll()
        }
        return false
    }

    /// The counters now.
    public var stats: EventTapStats {
        state.withLock { state in
            var stats = state.stats
            stats.queued = state.waiting
            return stats
        }
    }
}
