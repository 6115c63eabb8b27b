// The Swift side of the ring: decode and check every record, on a plain pthread.
import CVigilABI
import VigilBPF
#if canImport(Glibc)
import Glibc
#endif

/// What every selftest record of a run must say.
struct EventExpectation {
    /// Our process (the object's target_tgid).
    var pid: UInt32
    /// The thread running the getpid loop.
    var tid: UInt32
    /// The hook kind of the attached program (enum vigil_hook_kind).
    var hook: UInt32
    /// The hook's argument: 0 for getpid.
    var arg: UInt32
}

/// The consumer's hot state, kept in a struct behind an `UnsafeMutablePointer` so the per-event
/// path touches plain memory: no class property (exclusivity checks), no allocation
/// (notes/performance.md).
struct DeliveryTally {
    /// Records decoded and checked.
    var delivered: UInt64 = 0
    /// Records too short, or whose kind, size, pid, tid, hook or argument is not the expected one.
    var malformed: UInt64 = 0
    /// Records whose `seq` is not the next one of their CPU. The producer numbers its records
    /// per CPU with the CPU's emitted counter, so a gap means a lost or reordered record.
    var outOfSequence: UInt64 = 0
    /// Batches handed over by the reader.
    var batches: UInt64 = 0
    /// CLOCK_MONOTONIC when the last batch was decoded.
    var lastDeliveryNanoseconds: UInt64 = 0
    let expected: EventExpectation
    /// The next `seq` expected from each CPU, indexed by `hdr.cpu`.
    let nextSequence: UnsafeMutableBufferPointer<UInt64>

    init(expected: EventExpectation, cpuCount: Int) {
        self.expected = expected
        nextSequence = .allocate(capacity: cpuCount)
        nextSequence.initialize(repeating: 0)
    }

    /// Frees the per-CPU sequence table.
    func deallocate() { nextSequence.deallocate() }

    /// Decodes every record of a batch into `vigil_selftest_event` and checks it.
    @inline(__always)
    mutating func consume(_ batch: RingBatch) {
        let kind = UInt32(VIGIL_EVENT_SELFTEST.rawValue)
        let size = UInt32(MemoryLayout<vigil_selftest_event>.size)
        for record in batch {
            guard record.count >= Int(size) else { malformed &+= 1; continue }
            let event = record.loadUnaligned(as: vigil_selftest_event.self)
            let header = event.hdr
            if header.kind != kind || header.size != size || header.pid != expected.pid || header.tid != expected.tid
                || event.hook != expected.hook || event.arg != expected.arg || Int(header.cpu) >= nextSequence.count {
                malformed &+= 1
                continue
            }
            let cpu = Int(header.cpu)
            if event.seq != nextSequence[cpu] { outOfSequence &+= 1 }
            nextSequence[cpu] = event.seq &+ 1
        }
        delivered &+= UInt64(batch.count)
        batches &+= 1
        lastDeliveryNanoseconds = monotonicNanoseconds()
    }
}

/// A consumer thread (a plain pthread, not a Swift task): polls a ring with a timeout and
/// decodes every record until asked to stop, then drains what is left.
///
/// The reader is driven by this thread only, from `start()` to `stopAndJoin()`; the tally is read
/// by the caller only after the join.
final class ConsumerThread {
    private let reader: RingBufferReader
    /// The decoded-record counts; valid after `stopAndJoin()`.
    let tally: UnsafeMutablePointer<DeliveryTally>
    private let pollTimeoutMilliseconds: Int32
    private let cpu: Int?
    private var worker: WorkerThread?
    /// The error that ended the thread early, if any; valid after `stopAndJoin()`.
    private(set) var failure: Error?

    /// - Parameters:
    ///   - cpu: the CPU to pin the thread to, or nil to let the scheduler choose.
    init(reader: RingBufferReader, expected: EventExpectation, cpuCount: Int,
         pollTimeoutMilliseconds: Int32, cpu: Int?) {
        self.reader = reader
        self.pollTimeoutMilliseconds = pollTimeoutMilliseconds
        self.cpu = cpu
        tally = .allocate(capacity: 1)
        tally.initialize(to: DeliveryTally(expected: expected, cpuCount: cpuCount))
    }

    deinit {
        tally.pointee.deallocate()
        tally.deinitialize(count: 1)
        tally.deallocate()
    }

    /// Starts the thread.
    func start() throws {
        worker = try WorkerThread(name: "ring consumer", cpu: cpu) { [self] shouldStop in run(shouldStop) }
    }

    /// Asks the thread to finish (it drains the ring once more) and waits for it.
    func stopAndJoin() {
        worker?.stopAndJoin()
        worker = nil
    }

    private func run(_ shouldStop: () -> Bool) {
        let tally = self.tally
        do {
            while !shouldStop() {
                try reader.poll(timeoutMilliseconds: pollTimeoutMilliseconds) { tally.pointee.consume($0) }
            }
            try reader.drain { tally.pointee.consume($0) }
        } catch {
            failure = error
        }
    }
}
