import Synchronization
import VigilBPF
import VigilEnrichment
import VigilEvents
#if canImport(Glibc)
import Glibc
#endif

/// Counts of what an `EventStream` did with the records it read.
public struct StreamStatistics: Sendable, Equatable, Encodable {
    /// Records read from the ring.
    public var records: UInt64 = 0
    /// Events handed to the consumer.
    public var delivered: UInt64 = 0
    /// Events read but not of a requested kind (the process sensor always runs, for the process
    /// table; its events are suppressed unless asked for).
    public var suppressed: UInt64 = 0
    /// Records that did not decode (unknown kind, bad sizes).
    public var undecodable: UInt64 = 0
    /// State changes (exec, fork, exit) the filters dropped after enrichment: the kernel never
    /// drops them, so the process table stays whole (`StateChangeFilter`).
    public var filtered: UInt64 = 0

    /// All zero.
    public init() {}
}

/// The one way through the data in userspace: read the shared ring, decode, enrich, apply the
/// filters to state changes (which the kernel never drops), keep the requested kinds, hand each
/// event to the consumer. Runs on the calling thread.
public final class EventStream {
    public let sensors: Sensors
    public let enricher: Enricher
    /// decode -> enrich -> filters -> kinds, for the ring's records.
    public let pipeline: RecordPipeline
    /// Kinds handed to the consumer (a bit per kind).
    public var kinds: KindSet {
        get { pipeline.kinds }
        set { pipeline.kinds = newValue }
    }
    /// When set, every record read from the ring is copied to it (a `RingRecording` to replay).
    public var recorder: RingRecorder? {
        get { pipeline.recorder }
        set { pipeline.recorder = newValue }
    }
    private let reader: RingBufferReader
    /// What was done with the records read so far.
    public var statistics: StreamStatistics { pipeline.statistics }
    /// The `Sensors.linkedNamesVersion` the decoder has, and when they were last refreshed
    /// (CLOCK_MONOTONIC, ns).
    private var linkedNamesVersion = -1
    /// Vigil's own pid: the records of its children (the heartbeat's, `Heartbeat`) are noted
    /// before filters and kinds apply.
    private let ownPID = UInt32(getpid())
    /// The last `childrenKept` pids of Vigil's children whose records came through the ring,
    /// oldest first. Written by the reading thread, read by any (`childSeen`).
    private let children = Mutex<[UInt32]>([])
    private static let childrenKept = 16
    private var linkedNamesRefreshed: UInt64 = 0
    /// Called before the events of each ring batch are handed on (the alert latency trace,
    /// `AlertTrace`, notes the time); nil: nothing.
    public var batchStarted: (() -> Void)?

    /// A stream over `sensors`' ring.
    public init(sensors: Sensors, enricher: Enricher, kinds: KindSet) throws {
        self.sensors = sensors
        self.enricher = enricher
        pipeline = RecordPipeline(enricher: enricher, kinds: kinds, filter: sensors.stateChangeFilter,
                                  shownSyscalls: sensors.shownSyscalls, bootToEpochNs: BootClock.offsetToEpochNs())
        reader = try RingBufferReader(map: sensors.ring, maxBatch: Self.batchRecords)
        pipeline.execObserver = { [unowned sensors] event in sensors.noteExec(event) }
    }

    /// The most records in one ring batch.
    static let batchRecords = 4096
    /// The most records one wait of `run` hands over before it asks `shouldStop` again (16 full
    /// batches): under a sustained flood the caller's housekeeping (watchdog, snapshots) still
    /// runs, between bursts of this size.
    static let recordsPerWait = 16 * batchRecords

    /// Reads until `shouldStop` says so (checked at least every `pollMilliseconds`, and after at
    /// most `recordsPerWait` records), then drains what is left. `batchDone` runs after the
    /// events of each ring batch (at most 4096 records) were handed over: the place to write out
    /// what they produced, once per batch.
    public func run(pollMilliseconds: Int32 = 10, shouldStop: () -> Bool, batchDone: () throws -> Void = {},
                    _ consume: (Event) throws -> Void) throws {
        var backlog = false
        while !shouldStop() {
            // With records left behind, no wait: the kernel wakes a reader only once it caught up.
            let read = try reader.poll(timeoutMilliseconds: backlog ? 0 : pollMilliseconds, maxRecords: Self.recordsPerWait) {
                try handle($0, consume); try batchDone()
            }
            backlog = read >= Self.recordsPerWait
        }
        try drain(batchDone: batchDone, consume)
    }

    /// Handles everything now in the ring.
    public func drain(batchDone: () throws -> Void = {}, _ consume: (Event) throws -> Void) throws {
        try reader.drain { try handle($0, consume); try batchDone() }
    }

    /// Once a second, stats the files the rules name again (`Sensors.refreshLinkedNames`); hands
    /// the decoder the current table when it changed. Once per batch: a clock read.
    private func refreshLinkedNames() throws {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let ns = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
        if ns &- linkedNamesRefreshed >= 1_000_000_000 {
            linkedNamesRefreshed = ns
            try sensors.refreshLinkedNames()
        }
        if sensors.linkedNamesVersion != linkedNamesVersion {
            linkedNamesVersion = sensors.linkedNamesVersion
            pipeline.decoder.pointee.linkedNames = sensors.linkedNames
        }
    }

    /// Whether a record of process `pid`, a child of Vigil's, came through the ring lately (one
    /// of the last 16 such pids). Thread-safe: the heartbeat's thread asks while this one reads.
    public func childSeen(_ pid: UInt32) -> Bool { children.withLock { $0.contains(pid) } }

    private func handle(_ batch: RingBatch, _ consume: (Event) throws -> Void) throws {
        batchStarted?()
        try refreshLinkedNames()
        pipeline.filter = sensors.stateChangeFilter
        pipeline.shownSyscalls = sensors.shownSyscalls
        var seen: [UInt32] = []  // empty: no allocation unless a child of Vigil's shows up
        defer {
            if !seen.isEmpty {
                children.withLock { children in
                    children += seen
                    if children.count > Self.childrenKept { children.removeFirst(children.count - Self.childrenKept) }
                }
            }
        }
        try pipeline.handle(batch, parent: ownPID, children: &seen, consume)
    }
}

/// The offset between the kernel's boot clock (bpf_ktime_get_boot_ns) and Unix time.
public enum BootClock {
    /// Unix time minus boot time, in nanoseconds, now.
    public static func offsetToEpochNs() -> Int64 {
        var real = timespec(), boot = timespec()
        clock_gettime(CLOCK_REALTIME, &real)
        clock_gettime(CLOCK_BOOTTIME, &boot)
        return (Int64(real.tv_sec) - Int64(boot.tv_sec)) * 1_000_000_000 + Int64(real.tv_nsec) - Int64(boot.tv_nsec)
    }
}
