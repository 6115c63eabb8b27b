import VigilBPF
import VigilEnrichment
import VigilEvents
#if canImport(Glibc)
import Glibc
#endif

/// Counts of what an `EventStream` did with the records it read.
public struct StreamStatistics: Sendable, Equatable {
    /// Records read from the ring.
    public var records: UInt64 = 0
    /// Events handed to the consumer.
    public var delivered: UInt64 = 0
    /// Events read but not of a requested kind (the process sensor always runs, for the process
    /// table; its events are suppressed unless asked for).
    public var suppressed: UInt64 = 0
    /// Records that did not decode (unknown kind, bad sizes).
    public var undecodable: UInt64 = 0

    /// All zero.
    public init() {}
}

/// The one way through the data in userspace: read the shared ring, decode, enrich, keep the
/// requested kinds, hand each event to the consumer. Runs on the calling thread.
public final class EventStream {
    public let sensors: Sensors
    public let enricher: Enricher
    /// Kinds handed to the consumer.
    public var kinds: Set<EventKind>
    private let reader: RingBufferReader
    private let decoder: EventDecoder
    public private(set) var statistics = StreamStatistics()

    /// A stream over `sensors`' ring.
    public init(sensors: Sensors, enricher: Enricher, kinds: Set<EventKind>) throws {
        self.sensors = sensors
        self.enricher = enricher
        self.kinds = kinds
        reader = try RingBufferReader(map: sensors.ring, maxBatch: 4096)
        decoder = EventDecoder(bootToEpochNs: BootClock.offsetToEpochNs())
    }

    /// Reads until `shouldStop` says so (checked at least every `pollMilliseconds`), then drains
    /// what is left.
    public func run(pollMilliseconds: Int32 = 10, shouldStop: () -> Bool, _ consume: (Event) throws -> Void) throws {
        while !shouldStop() {
            try reader.poll(timeoutMilliseconds: pollMilliseconds) { try handle($0, consume) }
        }
        try drain(consume)
    }

    /// Handles everything now in the ring.
    public func drain(_ consume: (Event) throws -> Void) throws {
        try reader.drain { try handle($0, consume) }
    }

    private func handle(_ batch: RingBatch, _ consume: (Event) throws -> Void) throws {
        for record in batch {
            statistics.records += 1
            guard var event = decoder.decode(record) else {
                statistics.undecodable += 1
                continue
            }
            enricher.enrich(&event)
            guard kinds.contains(event.kind) else {
                statistics.suppressed += 1
                continue
            }
            statistics.delivered += 1
            try consume(event)
        }
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
