import CLibbpf
#if canImport(Glibc)
import Glibc
#endif

/// A batch of ring-buffer records handed to the consumer in one call. The records point into the
/// ring itself (no copies) and are valid only during that call; the space is given back to the
/// kernel when the call returns.
public struct RingBatch: RandomAccessCollection {
    let records: UnsafeBufferPointer<UnsafeRawBufferPointer>
    /// Index of the first record.
    public var startIndex: Int { 0 }
    /// One past the last record.
    public var endIndex: Int { records.count }
    /// The bytes of record `i`.
    public subscript(i: Int) -> UnsafeRawBufferPointer { records[i] }
}

/// Counts kept by a `RingBufferReader`.
public struct RingStatistics: Sendable, Equatable {
    /// Records handed to the consumer.
    public var records: UInt64 = 0
    /// Payload bytes handed to the consumer.
    public var bytes: UInt64 = 0
    /// Batches handed to the consumer.
    public var batches: UInt64 = 0
    /// Records the producer discarded (bpf_ringbuf_discard), skipped.
    public var discarded: UInt64 = 0
    /// Records lost because the ring was full, as reported by the `lostCounter` given to the
    /// reader (the kernel side counts them; the ring itself cannot).
    public var lost: UInt64 = 0
}

/// Reads a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) through its shared memory, handing records to
/// Swift in batches.
///
/// It maps the consumer page read-write and the producer page plus the data area read-only, and
/// waits with edge-triggered epoll. Unlike libbpf's `ring_buffer__consume`, which maps the data
/// area twice so that no record wraps, it maps it once (the resident size of a process counts a
/// double mapping twice: 16 MiB for an 8 MiB ring) and copies the one record of a pass that
/// wraps around the end into a buffer of its own. Pair it with producers that submit with
/// BPF_RB_NO_WAKEUP under a fill threshold: `poll(timeoutMilliseconds:)` then drains on its timer
/// and the kernel wakes it only when the ring fills (notes/performance.md). One thread drives a
/// reader.
public final class RingBufferReader {
    /// The ring's map (kept alive, with its object, while reading).
    public let map: BPFMap
    /// The largest batch handed to the consumer at once.
    public let maxBatch: Int
    private let lostCounter: (() throws -> UInt64)?
    private let mask: UInt64
    private let pageSize: Int
    private let consumerPage: UnsafeMutableRawPointer
    private let producerArea: UnsafeMutableRawPointer
    private let producerAreaSize: Int
    private let data: UnsafeRawPointer
    private let dataSize: Int
    /// Holds the record that wraps around the end of the data area (at most one per batch).
    private var wrapped: UnsafeMutableRawBufferPointer
    private let epollFD: Int32
    private let batch: UnsafeMutableBufferPointer<UnsafeRawBufferPointer>
    private var stats = RingStatistics()

    /// Maps the ring of a loaded object.
    ///
    /// - Parameters:
    ///   - map: a loaded BPF_MAP_TYPE_RINGBUF map.
    ///   - maxBatch: records per batch at most.
    ///   - lostCounter: reads how many records the producer could not reserve (for example the
    ///     sum of a per-CPU counter); reported in `statistics.lost`.
    public init(map: BPFMap, maxBatch: Int = 4096, lostCounter: (() throws -> UInt64)? = nil) throws {
        guard map.type == BPF_MAP_TYPE_RINGBUF else {
            throw BPFError(.invalidArgument, operation: "RingBufferReader", target: "map \(map.name)",
                           message: "map is not a ring buffer")
        }
        let fd = try map.requireFD("mmap")
        self.map = map
        self.maxBatch = max(1, maxBatch)
        self.lostCounter = lostCounter
        let size = map.maxEntries
        mask = UInt64(size - 1)
        pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

        guard let consumer = mmap(nil, pageSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
              consumer != MAP_FAILED else {
            throw BPFError.libbpf(.system, "mmap", "map \(map.name)", "cannot map the consumer page")
        }
        dataSize = size
        producerAreaSize = pageSize + size
        guard let producer = mmap(nil, producerAreaSize, PROT_READ, MAP_SHARED, fd, off_t(pageSize)),
              producer != MAP_FAILED else {
            let error = BPFError.libbpf(.system, "mmap", "map \(map.name)", "cannot map the producer page and data")
            munmap(consumer, pageSize)
            throw error
        }
        consumerPage = consumer
        producerArea = producer
        data = UnsafeRawPointer(producer + pageSize)

        let ep = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard ep >= 0 else {
            let error = BPFError.libbpf(.system, "epoll_create1", "map \(map.name)", "cannot create epoll")
            munmap(consumer, pageSize); munmap(producer, producerAreaSize)
            throw error
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLET.rawValue
        event.data.fd = fd
        guard epoll_ctl(ep, EPOLL_CTL_ADD, fd, &event) == 0 else {
            let error = BPFError.libbpf(.system, "epoll_ctl", "map \(map.name)", "cannot watch the ring")
            close(ep); munmap(consumer, pageSize); munmap(producer, producerAreaSize)
            throw error
        }
        epollFD = ep
        batch = .allocate(capacity: self.maxBatch)
        wrapped = .allocate(byteCount: 4096, alignment: 8)
    }

    deinit {
        batch.deallocate()
        wrapped.deallocate()
        close(epollFD)
        munmap(consumerPage, pageSize)
        munmap(producerArea, producerAreaSize)
    }

    /// The counts so far; `lost` is read from the `lostCounter` now.
    public func statistics() throws -> RingStatistics {
        var s = stats
        s.lost = try lostCounter?() ?? 0
        return s
    }

    /// Bytes written by the kernel and not yet consumed.
    public var pendingBytes: UInt64 {
        let producer = clibbpf_load_acquire(producerArea.assumingMemoryBound(to: UInt64.self))
        let consumer = clibbpf_load_acquire(consumerPage.assumingMemoryBound(to: UInt64.self))
        return producer &- consumer
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever, 0: not at all) for a wakeup, then drains
    /// the ring, wakeup or not (at most `maxRecords`: see `drain`). Returns the number of records
    /// handed over.
    @discardableResult
    public func poll(timeoutMilliseconds: Int32, maxRecords: Int = .max, _ consume: (RingBatch) throws -> Void) throws -> Int {
        _ = try awaitWakeup(timeoutMilliseconds: timeoutMilliseconds)
        return try drain(maxRecords: maxRecords, consume)
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever, 0: not at all) for the kernel to wake
    /// this reader (a record submitted with a wakeup since the last wait); true when it did,
    /// false on timeout or a signal. Reads nothing.
    public func awaitWakeup(timeoutMilliseconds: Int32) throws -> Bool {
        var event = epoll_event()
        let n = epoll_wait(epollFD, &event, 1, timeoutMilliseconds)
        if n < 0 && clibbpf_errno() != EINTR {
            throw BPFError.libbpf(.system, "epoll_wait", "map \(map.name)", "waiting for the ring failed")
        }
        return n > 0
    }

    /// Hands every record now in the ring to `consume`, in batches of at most `maxBatch`, in the
    /// order the kernel committed them. Stops at a record still being written, and before a batch
    /// that would start once `maxRecords` were handed over (while the kernel keeps writing, a
    /// reader that drained until the ring is empty would never return to its other duties).
    /// Returns the number of records handed over.
    @discardableResult
    public func drain(maxRecords: Int = .max, _ consume: (RingBatch) throws -> Void) throws -> Int {
        let consumerPosition = consumerPage.assumingMemoryBound(to: UInt64.self)
        let producerPosition = producerArea.assumingMemoryBound(to: UInt64.self)
        var consumer = clibbpf_load_acquire(consumerPosition)
        var total = 0
        while true {
            let producer = clibbpf_load_acquire(producerPosition)
            var count = 0
            var position = consumer
            while position < producer && count < maxBatch {
                let header = data + Int(position & mask)
                let word = clibbpf_load_acquire32(header.assumingMemoryBound(to: UInt32.self))
                if word & UInt32(BPF_RINGBUF_BUSY_BIT) != 0 { break }
                let length = Int(word & ~UInt32(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT))
                if word & UInt32(BPF_RINGBUF_DISCARD_BIT) == 0 {
                    batch[count] = record(at: (Int(position & mask) + Int(BPF_RINGBUF_HDR_SZ)) & Int(mask), length: length)
                    count += 1
                    stats.bytes &+= UInt64(length)
                } else {
                    stats.discarded &+= 1
                }
                position &+= UInt64((length + Int(BPF_RINGBUF_HDR_SZ) + 7) & ~7)
            }
            if count > 0 {
                stats.records &+= UInt64(count)
                stats.batches &+= 1
                total += count
                defer { clibbpf_store_release(consumerPosition, position) }
                try consume(RingBatch(records: UnsafeBufferPointer(rebasing: batch[0..<count])))
            } else if position != consumer {
                clibbpf_store_release(consumerPosition, position) // only discarded records
            }
            if position == consumer || total >= maxRecords { return total }
            consumer = position
        }
    }

    /// The `length` bytes of a record starting at `offset` of the data area: in place, or, when
    /// they run past its end, copied with the part from its start into `wrapped`. (A batch spans
    /// at most one ring's length, so it crosses the end at most once.)
    private func record(at offset: Int, length: Int) -> UnsafeRawBufferPointer {
        if offset + length <= dataSize { return UnsafeRawBufferPointer(start: data + offset, count: length) }
        if wrapped.count < length {
            wrapped.deallocate()
            wrapped = .allocate(byteCount: max(length, 2 * wrapped.count), alignment: 8)
        }
        let head = dataSize - offset
        wrapped.baseAddress!.copyMemory(from: data + offset, byteCount: head)
        (wrapped.baseAddress! + head).copyMemory(from: data, byteCount: length - head)
        return UnsafeRawBufferPointer(start: wrapped.baseAddress, count: length)
    }
}
