import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where an alert's time goes, stage by stage, for the latency benchmark
/// (`scripts/bench-daemon.sh --latency-only --stages`). Off unless the environment variable
/// `VIGIL_ALERT_TRACE` names a file: then every alert of a network action that got an answer
/// appends one line to it, `ID KERNEL READ MATCHED QUEUED DEQUEUED SPOOLED SENDING WRITTEN
/// ANSWERED`, CLOCK_BOOTTIME nanoseconds (the kernel's event time is on that clock), 0 for a
/// stage the alert did not pass. Off, each stage costs one load of `shared`.
public final class AlertTrace: @unchecked Sendable {
    /// The stages, in the order an alert passes them.
    public enum Stage: Int, CaseIterable, Sendable {
        /// The kernel's event time (`Event.bootTimeNs`).
        case kernel
        /// The reader took the ring batch that held the event.
        case read
        /// The rules matched it (the event thread builds the alert).
        case matched
        /// The dispatcher queued it for the action.
        case queued
        /// The action's thread took it from the queue (the spooling thread, for a spooled action).
        case dequeued
        /// Its spool file is durable (written, fsync'ed, renamed, the directory fsync'ed); 0 when
        /// that came after the answer (the delivery does not wait for it).
        case spooled
        /// The delivering thread starts sending it (connect).
        case sending
        /// The request is written to the socket.
        case written
        /// The receiver's answer is read.
        case answered
    }

    /// The trace of this process: nil unless `VIGIL_ALERT_TRACE` is set.
    public static let shared: AlertTrace? = getenv("VIGIL_ALERT_TRACE").flatMap { AlertTrace(path: String(cString: $0)) }

    /// The ring batch being handled now (set by the event thread before it hands the batch's
    /// events on), for `Stage.read`.
    public let batchReadNs = Atomic<UInt64>(0)
    private let file: UnsafeMutablePointer<FILE>
    private let pending = Mutex<[String: [UInt64]]>([:])

    private init?(path: String) {
        guard let file = fopen(path, "a") else { return nil }
        self.file = file
    }

    deinit { fclose(file) }

    /// CLOCK_BOOTTIME now, nanoseconds.
    public static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_BOOTTIME, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// Records that alert `id` passed `stage` at `ns` (default: now); `answered` writes its line.
    public func mark(_ id: String, _ stage: Stage, at ns: UInt64 = AlertTrace.now()) {
        let done = pending.withLock { open -> [UInt64]? in
            // The spool's write goes on beside the delivery: it may end after the answer.
            if stage == .spooled && open[id] == nil { return nil }
            var stamps = open[id] ?? Array(repeating: 0, count: Stage.allCases.count)
            if stamps[stage.rawValue] == 0 { stamps[stage.rawValue] = ns }
            guard stage == .answered else {
                open[id] = stamps
                return nil
            }
            open[id] = nil
            return stamps
        }
        guard let done else { return }
        let line = ([id] + done.map { String($0) }).joined(separator: " ") + "\n"
        pending.withLock { _ in
            fputs(line, file)
            fflush(file)
        }
    }

    /// The alert's first stages: the kernel's time, the batch read, and the match (now).
    public func matched(_ alert: Alert) {
        mark(alert.id, .kernel, at: alert.event.bootTimeNs)
        mark(alert.id, .read, at: batchReadNs.load(ordering: .relaxed))
        mark(alert.id, .matched)
    }
}
