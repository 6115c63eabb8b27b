import Synchronization
import VigilEvents
import VigilRules

/// One client of a live stream (events or alerts): the lines it has not been sent yet, in a
/// bounded buffer. The event thread appends and never waits; when the buffer is full the line is
/// dropped and counted. The server takes the buffer when its connection can write.
public final class Subscription: Sendable {
    /// A number unique within the daemon.
    public let id: Int
    /// The server-side filter (a condition of the rule language), nil for everything.
    public let filter: CompiledCondition?
    /// The filter's text, for the status.
    public let filterText: String?
    /// Bytes that may wait before lines are dropped.
    public let capacity: Int

    private struct State {
        var pending: [UInt8] = []
        var delivered: UInt64 = 0
        var dropped: UInt64 = 0
        var closed = false
        var wakeRequested = false
    }
    private let state = Mutex(State())
    private let wake: Mutex<(@Sendable () -> Void)?> = Mutex(nil)

    init(id: Int, filter: CompiledCondition?, filterText: String?, capacity: Int) {
        self.id = id
        self.filter = filter
        self.filterText = filterText
        self.capacity = capacity
    }

    /// Sets what to call (from the event thread, at most once per batch) when lines wait.
    public func onReady(_ body: @escaping @Sendable () -> Void) {
        wake.withLock { $0 = body }
    }

    /// Whether `event` passes the filter.
    @inline(__always)
    func accepts(_ event: Event) -> Bool { filter?.matches(event) ?? true }

    /// Appends one line (the newline is added); drops it when the buffer is full. Event thread.
    func offer(_ line: [UInt8]) {
        state.withLock { state in
            guard !state.closed else { return }
            if state.pending.count + line.count + 1 > capacity {
                state.dropped += 1
                return
            }
            state.pending.append(contentsOf: line)
            state.pending.append(0x0a)
            state.delivered += 1
            state.wakeRequested = true
        }
    }

    /// Counts a line as dropped without making it when the buffer is nearly full (a line is
    /// rarely over 4 KiB): a stalled client then costs the event thread no JSON encoding.
    /// Returns true when it dropped. Event thread.
    func dropIfFull() -> Bool {
        state.withLock { state in
            guard state.pending.count + 4096 > capacity else { return false }
            state.dropped += 1
            return true
        }
    }

    /// Calls the wake handler if lines arrived since the last call. Event thread, once per batch.
    func notifyIfPending() {
        let wanted = state.withLock { state -> Bool in
            defer { state.wakeRequested = false }
            return state.wakeRequested || state.closed
        }
        if wanted, let body = wake.withLock({ $0 }) { body() }
    }

    /// Takes every waiting byte, and whether the stream has ended (after these bytes).
    public func take() -> (bytes: [UInt8], ended: Bool) {
        state.withLock { state in
            let bytes = state.pending
            state.pending = []
            state.pending.reserveCapacity(min(capacity, 1 << 16))
            return (bytes, state.closed)
        }
    }

    /// Ends the stream: what is buffered is still sent, then the response ends.
    public func close() {
        state.withLock { $0.closed = true }
        if let body = wake.withLock({ $0 }) { body() }
    }

    /// Lines queued for the client so far, and lines dropped because the buffer was full.
    public var counts: (delivered: UInt64, dropped: UInt64) {
        state.withLock { ($0.delivered, $0.dropped) }
    }
}

/// The subscribers of one stream. Subscribing and leaving lock a list; the event thread reads a
/// copy of it refreshed once per batch (`refresh`), so the per-event path takes no list lock.
public final class StreamHub: Sendable {
    /// What the stream carries (`events` or `alerts`).
    public let name: String
    private let subscribers = Mutex<[Subscription]>([])
    private let nextID = Atomic<Int>(1)
    private let version = Atomic<Int>(0)
    private let droppedByGone = Atomic<UInt64>(0)

    /// A hub for the stream called `name`.
    public init(name: String) { self.name = name }

    /// Adds a subscriber with an optional filter.
    public func subscribe(filter: CompiledCondition?, filterText: String?, capacity: Int) -> Subscription {
        let subscription = Subscription(id: nextID.add(1, ordering: .relaxed).oldValue, filter: filter, filterText: filterText, capacity: capacity)
        subscribers.withLock { $0.append(subscription) }
        version.add(1, ordering: .releasing)
        return subscription
    }

    /// Removes a subscriber (its connection closed).
    public func unsubscribe(_ subscription: Subscription) {
        let removed = subscribers.withLock { list -> Bool in
            let before = list.count
            list.removeAll { $0 === subscription }
            return list.count != before
        }
        if removed { droppedByGone.add(subscription.counts.dropped, ordering: .relaxed) }
        version.add(1, ordering: .releasing)
    }

    /// Offers one line to every subscriber whose filter accepts `event`; `line` is made only if
    /// one does. For lines made off the event thread (alerts, after their actions ran): the
    /// subscribers are woken at the event thread's next batch.
    public func publish(for event: Event, _ line: () -> String) {
        var bytes: [UInt8]?
        for subscription in current where subscription.accepts(event) {
            if bytes == nil { bytes = Array(line().utf8) }
            if let bytes { subscription.offer(bytes) }
        }
    }

    /// The subscribers now.
    public var current: [Subscription] { subscribers.withLock { $0 } }

    /// Lines dropped for slow subscribers, those gone included.
    public var totalDropped: UInt64 {
        droppedByGone.load(ordering: .relaxed) + current.reduce(0) { $0 + $1.counts.dropped }
    }

    /// Ends every stream (daemon shutdown).
    public func closeAll() {
        for subscription in current { subscription.close() }
    }

    /// The event thread's copy of the subscriber list, refreshed when it changed.
    struct Cache {
        var version = -1
        var list: [Subscription] = []
    }

    /// Refreshes `cache` if subscribers came or went. Event thread.
    func refresh(_ cache: inout Cache) {
        let now = version.load(ordering: .acquiring)
        guard now != cache.version else { return }
        cache.version = now
        cache.list = current
    }
}
