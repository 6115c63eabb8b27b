import CLibbpf
import CVigilABI
import Logging
import Synchronization
import VigilBPF
import VigilSensors
import VigilTestSupport
import XCTest

/// Programs loaded into this machine's kernel and triggered for real.
final class KernelTests: XCTestCase {
    /// Loads the selftest object with `programs` enabled and attaches them.
    private func load(_ programs: [String], wakeupBytes: UInt64 = 0) throws -> (BPFObject, [BPFLink]) {
        let object = try Selftest.open(wakeupBytes: wakeupBytes)
        for name in programs { try object.program(named: name).autoload = true }
        try object.load()
        let links = try programs.map { try object.program(named: $0).attach() }
        return (object, links)
    }

    private func events(_ reader: RingBufferReader) throws -> [vigil_selftest_event] {
        var events: [vigil_selftest_event] = []
        try reader.drain { batch in
            for record in batch { events.append(record.loadUnaligned(as: vigil_selftest_event.self)) }
        }
        return events
    }

    func testEventsArriveCompleteAndInOrder() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let (object, links) = try load(["close_seq"])
        let reader = try RingBufferReader(map: object.map(named: "events"), maxBatch: 1000) {
            try Selftest.counters(object).lost
        }
        let count = 20_000, base: Int32 = 1_000_000
        for i in 0..<Int32(count) { XCTAssertEqual(close(base + i), -1) } // EBADF, but traced
        let emitted = try Selftest.counters(object).emitted
        var seen: [UInt32] = []
        var batches = 0
        try reader.drain { batch in
            batches += 1
            XCTAssertLessThanOrEqual(batch.count, 1000)
            for record in batch {
                let event = record.loadUnaligned(as: vigil_selftest_event.self)
                XCTAssertEqual(record.count, MemoryLayout<vigil_selftest_event>.size)
                XCTAssertEqual(event.hdr.kind, UInt32(VIGIL_EVENT_SELFTEST.rawValue))
                XCTAssertEqual(event.hdr.pid, UInt32(getpid()))
                // Other threads of this process (XCTest's) may close fds too; keep ours.
                if event.arg >= UInt32(base) { seen.append(event.arg) }
            }
        }
        XCTAssertEqual(seen, (0..<UInt32(count)).map { UInt32(base) + $0 }, "every close, in order")
        XCTAssertGreaterThanOrEqual(batches, count / 1000)
        let stats = try reader.statistics()
        let counters = try Selftest.counters(object)
        XCTAssertGreaterThanOrEqual(emitted, UInt64(count))
        XCTAssertGreaterThanOrEqual(stats.records, emitted, "the reader got every record the kernel had emitted")
        XCTAssertEqual(stats.lost, 0)
        XCTAssertEqual(counters.lost, 0)
        withExtendedLifetime(links) {}
    }

    func testADrainWithALimitStopsBetweenBatchesAndTheNextGoesOn() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let (object, links) = try load(["close_seq"])
        let reader = try RingBufferReader(map: object.map(named: "events"), maxBatch: 1000)
        let count = 10_000, base: Int32 = 1_000_000
        for i in 0..<Int32(count) { XCTAssertEqual(close(base + i), -1) } // EBADF, but traced
        var seen: [UInt32] = []
        func collect(_ batch: RingBatch) {
            for record in batch {
                let event = record.loadUnaligned(as: vigil_selftest_event.self)
                if event.arg >= UInt32(base) { seen.append(event.arg) }
            }
        }
        let first = try reader.drain(maxRecords: 2500) { collect($0) }
        XCTAssertEqual(first, 3000, "whole batches, the last one started before the limit")
        XCTAssertGreaterThan(reader.pendingBytes, 0, "the rest stays in the ring")
        let rest = try reader.drain { collect($0) }
        XCTAssertGreaterThanOrEqual(first + rest, count)
        XCTAssertEqual(reader.pendingBytes, 0)
        XCTAssertEqual(seen, (0..<UInt32(count)).map { UInt32(base) + $0 }, "every close once, in order, across the two drains")
        withExtendedLifetime(links) {}
    }

    func testRecordsThatWrapAroundTheEndOfTheRingArriveIntact() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        // 96-byte records (88 + header) in a 16 KiB ring, drained every 100: the ring goes round
        // about 30 times and, 96 not dividing 16384, a record often straddles the end of the data
        // area (mapped once: the reader must stitch it together).
        let object = try Selftest.open(ringBytes: 16 << 10)
        try object.program(named: "close_seq").autoload = true
        try object.load()
        let link = try object.program(named: "close_seq").attach()
        let reader = try RingBufferReader(map: object.map(named: "events")) { try Selftest.counters(object).lost }
        let base: Int32 = 5_000_000, rounds = 50, perRound: Int32 = 100
        var seen: [UInt32] = []
        for round in 0..<Int32(rounds) {
            for i in 0..<perRound { close(base + round * perRound + i) }
            try reader.drain { batch in
                for record in batch {
                    XCTAssertEqual(record.count, MemoryLayout<vigil_selftest_event>.size)
                    let event = record.loadUnaligned(as: vigil_selftest_event.self)
                    XCTAssertEqual(event.hdr.kind, UInt32(VIGIL_EVENT_SELFTEST.rawValue))
                    XCTAssertEqual(event.hdr.size, UInt32(MemoryLayout<vigil_selftest_event>.size))
                    XCTAssertEqual(event.hdr.pid, UInt32(getpid()))
                    if event.arg >= UInt32(base) { seen.append(event.arg) }
                }
            }
        }
        XCTAssertEqual(seen, (0..<UInt32(rounds) * UInt32(perRound)).map { UInt32(base) + $0 }, "every close, in order, intact")
        XCTAssertEqual(try reader.statistics().lost, 0)
        link.detach()
    }

    func testBatchedWakeupsStillDeliverOnTheTimer() throws {
        try requireKernel(.attachTracepoint, .helperRingbufQuery)
        // Wake only when 1 MiB waits: 5 records never wake the reader; poll's timeout drains them.
        let (object, links) = try load(["close_seq"], wakeupBytes: 1 << 20)
        let reader = try RingBufferReader(map: object.map(named: "events"))
        for fd in Int32(2_000_000)..<2_000_005 { close(fd) }
        var delivered = 0
        try reader.poll(timeoutMilliseconds: 20) { batch in
            delivered += batch.filter { $0.loadUnaligned(as: vigil_selftest_event.self).arg >= 2_000_000 }.count
        }
        XCTAssertEqual(delivered, 5)
        withExtendedLifetime(links) {}
    }

    func testFullRingCountsLostRecords() throws {
        try requireKernel(.attachTracepoint)
        let object = try Selftest.open(ringBytes: 4096)
        try object.program(named: "close_seq").autoload = true
        try object.load()
        let link = try object.program(named: "close_seq").attach()
        for fd in Int32(3_000_000)..<3_000_200 { close(fd) } // 200 x 88 B > 4 KiB: most are lost
        let reader = try RingBufferReader(map: object.map(named: "events")) { try Selftest.counters(object).lost }
        let delivered = try events(reader).count
        let stats = try reader.statistics()
        XCTAssertGreaterThan(stats.lost, 0)
        let emitted = try Selftest.counters(object).emitted
        XCTAssertGreaterThanOrEqual(UInt64(delivered) + stats.lost, 200)
        XCTAssertEqual(UInt64(delivered), emitted, "every record is delivered or counted lost")
        link.detach()
    }

    func testDetachedLinkStopsEvents() throws {
        try requireKernel(.attachTracepoint)
        let (object, links) = try load(["close_seq"])
        let reader = try RingBufferReader(map: object.map(named: "events"))
        close(4_000_000)
        links.forEach { $0.detach() }
        close(4_000_001)
        XCTAssertEqual(try events(reader).map(\.arg).filter { $0 >= 4_000_000 }, [4_000_000])
        XCTAssertNil(links[0].fd)
    }

    func testRawTracepointAndTpBTFAttach() throws {
        try requireKernel(.attachRawTracepoint, .attachTpBTF)
        let object = try Selftest.open()
        for name in ["open_raw_tp", "open_tp_btf"] { try object.program(named: name).autoload = true }
        try object.load()
        let raw = try object.program(named: "open_raw_tp").attachRawTracepoint("sys_enter")
        let btf = try object.program(named: "open_tp_btf").attachTrace()
        let hooks = try Selftest.triggerOpens(object, count: 2).map(\.hook)
        XCTAssertEqual(hooks.filter { $0 == UInt32(VIGIL_HOOK_RAW_TP.rawValue) }.count, 2)
        XCTAssertEqual(hooks.filter { $0 == UInt32(VIGIL_HOOK_TP_BTF.rawValue) }.count, 2)
        withExtendedLifetime((raw, btf)) {}
    }

    func testUprobeOnALibraryFunctionFires() throws {
        try requireKernel(.attachUprobe)
        let object = try Selftest.open()
        try object.program(named: "func_uprobe").autoload = true
        try object.load()
        let libc = try XCTUnwrap(SharedLibraries.path(containing: "libc.so"))
        let link = try object.program(named: "func_uprobe").attachUprobe(binary: libc, function: "getpid", pid: getpid())
        let reader = try RingBufferReader(map: object.map(named: "events"))
        for _ in 0..<3 { _ = getpid() }
        let uprobes = try events(reader).filter { $0.hook == UInt32(VIGIL_HOOK_UPROBE.rawValue) }
        XCTAssertEqual(uprobes.count, 3)
        link.detach()

        // The same program on the function's return (uretprobe): PARM1 is then getpid's rax.
        let ret = try object.program(named: "func_uprobe").attachUprobe(binary: libc, function: "getpid", pid: getpid(), returnProbe: true)
        for _ in 0..<2 { _ = getpid() }
        let returns = try events(reader).filter { $0.hook == UInt32(VIGIL_HOOK_UPROBE.rawValue) }
        XCTAssertEqual(returns.count, 2)
        XCTAssertTrue(ret.description.contains("uretprobe"))
        ret.detach()
    }

    func testVerifierRejectionCarriesTheLog() throws {
        try requireKernel(.programTracepoint)
        let object = try Selftest.open()
        try object.program(named: "rejected").autoload = true
        let error = assertBPFError { try object.load() }
        XCTAssertEqual(error?.kind, .verifier)
        XCTAssertEqual(error?.program, "rejected")
        XCTAssertEqual(error?.target, "selftest/rejected")
        let log = try XCTUnwrap(error?.verifierLog)
        XCTAssertTrue(log.contains("map_value_or_null"), "the log says why: \(log.suffix(300))")
        XCTAssertTrue(error?.description.contains("verifier log") ?? false)
        XCTAssertFalse(object.isLoaded)
    }

    func testMissingAttachTargetsAreNamed() throws {
        try requireKernel(.attachTracepoint)
        let object = try Selftest.open()
        try object.program(named: "close_seq").autoload = true
        try object.load()
        let program = try object.program(named: "close_seq")
        let error = assertBPFError { _ = try program.attachTracepoint(category: "syscalls", name: "sys_enter_nonexistent") }
        XCTAssertEqual(error?.kind, .attach)
        XCTAssertEqual(error?.errno, ENOENT)
        XCTAssertTrue(error?.message.contains("syscalls/sys_enter_nonexistent") ?? false)
        let unloaded = try object.program(named: "open_kprobe")
        XCTAssertEqual(assertBPFError { _ = try unloaded.attach() }?.kind, .invalidArgument, "not loaded")
    }

    func testVariantChainFallsThroughToTheFirstThatWorks() throws {
        try requireKernel(.attachTracepoint)
        let loaded = try Selftest.loadOpenHook()
        let report = try XCTUnwrap(loaded.reports.first)
        let probes = FeatureProbes.shared
        // The first variant whose requirements the probes call available must be the active one.
        let expected = try XCTUnwrap(Selftest.openVariants.first { $0.requires.allSatisfy { probes.result($0).isAvailable } })
        XCTAssertEqual(report.active, expected.name)
        for attempt in report.attempts.prefix { $0.outcome != .active } {
            XCTAssertEqual(attempt.outcome, .skipped)
            XCTAssertFalse(attempt.reason?.isEmpty ?? true, "\(attempt.variant) says why it was skipped")
        }
        let events = try Selftest.triggerOpens(loaded.object)
        XCTAssertTrue(events.count >= 3 && events.allSatisfy { $0.hook == Selftest.hookKind(ofVariant: expected.name) })
    }

    func testFailedVariantsAreReleasedAndReported() throws {
        try requireKernel(.attachTracepoint, .attachRawTracepoint)
        // No `requires`: the loader really tries them. The first fails to load on every kernel
        // (the verifier refuses it), the second fails to attach (no such raw tracepoint).
        let refused = Variant("refused", programs: ["rejected"])
        let unattachable = Variant("unattachable", programs: ["open_raw_tp"]) { try $0.attachRawTracepoint("no_such_tracepoint_vigil") }
        let before = openFileDescriptorCount()
        do {
            let loaded = try Selftest.loadOpenHook(variants: [refused, unattachable, Variant("tracepoint", programs: ["open_tracepoint"])])
            let attempts = try XCTUnwrap(loaded.reports.first?.attempts)
            XCTAssertEqual(attempts.map(\.outcome), [.failed, .failed, .active])
            XCTAssertTrue(attempts[0].reason?.contains("map_value_or_null") ?? false, "the verifier's reason: \(attempts[0].reason ?? "")")
            XCTAssertTrue(attempts[1].reason?.contains("no_such_tracepoint_vigil") ?? false, attempts[1].reason ?? "")
            XCTAssertEqual(loaded.activeVariant(of: "file-open"), "tracepoint")
            XCTAssertFalse(try Selftest.triggerOpens(loaded.object).isEmpty)
        }
        XCTAssertEqual(openFileDescriptorCount(), before, "no fd of any try (failed or released) is left")

        let error = assertBPFError { _ = try Selftest.loadOpenHook(variants: [refused, unattachable]) }
        XCTAssertEqual(error?.kind, .load)
        XCTAssertTrue(error?.message.contains("no variant of hook 'file-open'") ?? false)
        XCTAssertTrue(error?.message.contains("refused:") ?? false && error?.message.contains("unattachable:") ?? false)
        XCTAssertEqual(openFileDescriptorCount(), before, "a chain where nothing works leaves no fd")
    }

    func testTypedMapsOnALoadedObject() throws {
        try requireKernel(.mapHash, .mapArray, .mapLRUHash, .mapPerCPUHash)
        let object = try Selftest.open()
        try object.load()
        struct Value: Equatable { var count: UInt64; var bytes: UInt64 }
        let hash = try TypedMap<UInt32, Value>(object.map(named: "test_hash"))
        XCTAssertNil(try hash.lookup(1))
        try hash.update(1, Value(count: 1, bytes: 10))
        try hash.update(2, Value(count: 2, bytes: 20))
        XCTAssertEqual(try hash.lookup(2), Value(count: 2, bytes: 20))
        XCTAssertEqual(try hash.keys().sorted(), [1, 2])
        XCTAssertEqual(assertBPFError { try hash.update(1, Value(count: 0, bytes: 0), .createOnly) }?.errno, EEXIST)
        XCTAssertEqual(assertBPFError { try hash.update(9, Value(count: 0, bytes: 0), .replaceOnly) }?.errno, ENOENT)
        XCTAssertTrue(try hash.delete(1))
        XCTAssertFalse(try hash.delete(1))
        XCTAssertEqual(try hash.entries().map(\.key), [2])

        let array = try TypedMap<UInt32, Value>(object.map(named: "test_array"))
        XCTAssertEqual(try array.lookup(3), Value(count: 0, bytes: 0), "array slots exist zeroed")
        try array.update(3, Value(count: 7, bytes: 70))
        XCTAssertEqual(try array.lookup(3)?.count, 7)
        XCTAssertEqual(try array.keys().count, 8)
        XCTAssertEqual(assertBPFError { try array.delete(3) }?.errno, EINVAL, "array maps cannot delete")

        let lru = try TypedMap<UInt64, UInt32>(object.map(named: "test_lru"))
        for key in 0..<UInt64(40) { try lru.update(key, UInt32(key)) }
        XCTAssertLessThanOrEqual(try lru.keys().count, 16, "LRU evicts beyond its capacity")
        XCTAssertEqual(try lru.lookup(39), 39, "the newest entry stays")

        let perCPU = try PerCPUMap<UInt32, UInt64>(object.map(named: "test_percpu_hash"))
        let values = (0..<perCPU.cpuCount).map { UInt64($0 + 1) }
        try perCPU.update(5, values)
        XCTAssertEqual(try perCPU.lookup(5), values)
        XCTAssertEqual(try perCPU.sum(5), values.reduce(0, +))
        XCTAssertEqual(assertBPFError { try perCPU.update(5, [1]) }?.kind, .invalidArgument)
    }

    func testLibbpfMessagesReachSwiftLog() throws {
        try requireKernel(.attachTracepoint)
        let collected = Mutex<[String]>([])
        struct Collector: LogHandler {
            let sink: @Sendable (String) -> Void
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .trace
            subscript(metadataKey key: String) -> Logger.Metadata.Value? { get { metadata[key] } set { metadata[key] = newValue } }
            func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
                sink("\(level) \(message) \(metadata?["source"] ?? "")")
            }
        }
        let logger = Logger(label: "libbpf-test") { _ in Collector { line in collected.withLock { $0.append(line) } } }
        LibbpfLog.install(logger)
        defer { LibbpfLog.install(Logger(label: "libbpf")) }
        let object = try Selftest.open()
        try object.program(named: "close_seq").autoload = true
        try object.load()
        _ = try? object.program(named: "close_seq").attachTracepoint(category: "syscalls", name: "sys_enter_nonexistent")
        let lines = collected.withLock { $0 }
        XCTAssertTrue(lines.contains { $0.hasPrefix("warning") && $0.contains("sys_enter_nonexistent") && $0.hasSuffix("libbpf") },
                      "libbpf's warning arrives in swift-log: \(lines.suffix(5))")
    }
}
