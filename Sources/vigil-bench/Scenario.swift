// What one run measures: a getpid() loop, with or without a selftest program emitting every call
// into the ring while a consumer thread decodes it.
import CVigilABI
import VigilBPF
import VigilSensors
#if canImport(Glibc)
import Glibc
#endif

/// A getpid program of bpf/selftest.bpf.c that emits one record per getpid() of this process.
enum GetpidHook: String {
    /// tracepoint syscalls/sys_enter_getpid: fires only for getpid.
    case tracepoint = "getpid_tracepoint"
    /// tp_btf/sys_enter filtered to syscall id 39: fires for every syscall on the host.
    case tpBTF = "getpid_tp_btf"

    /// The hook kind its records carry.
    var hookKind: UInt32 {
        switch self {
        case .tracepoint: return UInt32(VIGIL_HOOK_TRACEPOINT.rawValue)
        case .tpBTF: return UInt32(VIGIL_HOOK_TP_BTF.rawValue)
        }
    }

    /// How the report names the hook.
    var label: String {
        switch self {
        case .tracepoint: return "tracepoint `syscalls/sys_enter_getpid`"
        case .tpBTF: return "tp_btf `sys_enter` (filtered to id 39)"
        }
    }
}

/// One configuration measured in every round.
struct Scenario {
    /// The program emitting every call, or nil for the loop without BPF.
    var hook: GetpidHook?
    /// The ring's size in bytes.
    var ringBytes: Int = 8 << 20
    /// vigil_wakeup_bytes: the kernel wakes the reader only once this many bytes wait (0 = the
    /// kernel's default policy: wake a reader that has caught up).
    var wakeupBytes: UInt64 = 0
    /// Runs make `RunSettings.calls / callDivisor` timed calls: the slow configurations (a
    /// wakeup per record costs microseconds per call here) need fewer calls for a stable mean.
    var callDivisor = 1

    static let noBPF = Scenario(hook: nil)

    /// How the report names the wakeup policy.
    var wakeupLabel: String {
        guard hook != nil else { return "-" }
        if wakeupBytes == 0 { return "kernel default (vigil_wakeup_bytes = 0)" }
        let ring = UInt64(ringBytes)
        let fraction = ring % wakeupBytes == 0 ? "1/\(ring / wakeupBytes) ring, " : ""
        return "batched: at \(fraction)\(formatBytes(wakeupBytes))"
    }

    /// How the report names the scenario.
    var label: String {
        guard let hook else { return "no BPF" }
        return "\(hook.label), wakeup \(wakeupLabel)"
    }

    /// Whether the kernel batches wakeups (the configuration Vigil ships).
    var batchesWakeups: Bool { hook != nil && wakeupBytes > 0 }
}

/// Settings shared by every run.
struct RunSettings {
    /// getpid() calls timed per run.
    var calls: Int
    /// Untimed getpid() calls before the timed ones (page faults, caches, branch predictors).
    var warmupCalls: Int
    /// The consumer's epoll timeout: how often it drains the ring without a wakeup.
    var pollTimeoutMilliseconds: Int32
    /// The CPU of the getpid loop (the main thread, pinned once) and of the consumer thread, or
    /// nil when not pinning.
    var consumerCPU: Int?
    /// A selftest object file to load instead of the embedded one (to measure a change to
    /// bpf/selftest.bpf.c or bpf/lib/vigil.bpf.h before `make generate`), or nil.
    var objectPath: String? = nil
}

/// What the kernel counted and the consumer saw in one run with BPF.
struct Delivery {
    /// getpid() calls made while attached (warm-up included).
    var calls: UInt64
    /// Kernel counters, summed over CPUs: records submitted, and records the ring had no room for.
    var emitted: UInt64
    var lost: UInt64
    /// The consumer's tally.
    var delivered: UInt64
    var malformed: UInt64
    var outOfSequence: UInt64
    var batches: UInt64
    /// Delivered records per second, from the first call made while attached to the last record
    /// decoded.
    var eventsPerSecond: Double

    /// Every call entered the kernel and fired the hook once, every emitted record arrived, in
    /// sequence, with the expected fields, and none was lost.
    var isComplete: Bool {
        emitted == calls && delivered == emitted && lost == 0 && malformed == 0 && outOfSequence == 0
    }
}

/// The result of one run.
struct RunResult {
    /// Cost of one getpid() of the timed loop (median of its slices).
    var nanosecondsPerCall: Double
    /// Nil without BPF.
    var delivery: Delivery?
}

/// Calls getpid() `count` times. glibc (>= 2.25) does not cache getpid, so each call is a real
/// syscall; the runs with BPF prove it (the kernel's emitted counter equals the calls made).
@inline(never)
func getpidLoop(_ count: Int) {
    for _ in 0..<count { _ = getpid() }
}

/// Slices each timed loop is cut into; see `timedGetpidLoop`.
let timedSlices = 50

/// Times about `count` getpid() calls in `timedSlices` equal slices and returns the median
/// nanoseconds per call of the slices, and the calls made. On this shared 2-CPU VM other
/// processes take the CPU now and then; the median keeps those slices out. A slice still spans
/// several consumer drains (tens of milliseconds), so their cost stays in the figure.
func timedGetpidLoop(_ count: Int) -> (nanosecondsPerCall: Double, calls: Int) {
    let perSlice = max(1, count / timedSlices)
    var slices: [Double] = []
    slices.reserveCapacity(timedSlices)
    for _ in 0..<timedSlices {
        let start = monotonicNanoseconds()
        getpidLoop(perSlice)
        slices.append(Double(monotonicNanoseconds() - start) / Double(perSlice))
    }
    return (slices.median, perSlice * timedSlices)
}

/// The selftest object loaded with one getpid program, its ring reader and the checks its
/// records must pass.
struct GetpidSession {
    let object: BPFObject
    let program: BPFProgram
    let reader: RingBufferReader
    let expected: EventExpectation

    init(hook: GetpidHook, ringBytes: Int, wakeupBytes: UInt64, objectPath: String?) throws {
        if let objectPath {
            // The settings Selftest.open applies to the embedded object.
            object = try BPFObject(path: objectPath, name: "selftest")
            try object.setGlobal("target_tgid", to: UInt32(getpid()))
            try object.setGlobal("vigil_wakeup_bytes", to: wakeupBytes)
            try object.map(named: "events").setMaxEntries(ringBytes)
        } else {
            object = try Selftest.open(ringBytes: ringBytes, wakeupBytes: wakeupBytes)
        }
        program = try object.program(named: hook.rawValue)
        program.autoload = true
        try object.load()
        reader = try RingBufferReader(map: object.map(named: "events"))
        expected = EventExpectation(pid: UInt32(getpid()), tid: currentThreadID(), hook: hook.hookKind, arg: 0)
    }

    /// The kernel's counters of this object (per-CPU, summed).
    func counters() throws -> (emitted: UInt64, lost: UInt64) {
        let counters = try Selftest.counters(object)
        return (counters.emitted, counters.lost)
    }
}

/// Runs one scenario once: a fresh object (counters and sequence numbers start at 0), a
/// consumer thread, the program attached only around the loop.
func run(_ scenario: Scenario, _ settings: RunSettings) throws -> RunResult {
    let calls = max(1, settings.calls / scenario.callDivisor)
    let warmupCalls = settings.warmupCalls / scenario.callDivisor
    guard let hook = scenario.hook else {
        getpidLoop(warmupCalls)
        return RunResult(nanosecondsPerCall: timedGetpidLoop(calls).nanosecondsPerCall, delivery: nil)
    }
    let session = try GetpidSession(hook: hook, ringBytes: scenario.ringBytes, wakeupBytes: scenario.wakeupBytes,
                                    objectPath: settings.objectPath)
    let consumer = ConsumerThread(reader: session.reader, expected: session.expected, cpuCount: configuredCPUs,
                                  pollTimeoutMilliseconds: settings.pollTimeoutMilliseconds, cpu: settings.consumerCPU)
    try consumer.start()
    let start: UInt64 // the first call made while attached
    let timed: (nanosecondsPerCall: Double, calls: Int)
    do {
        let link = try session.program.attach()
        defer { link.detach() }
        start = monotonicNanoseconds()
        getpidLoop(warmupCalls)
        timed = timedGetpidLoop(calls)
    } catch {
        consumer.stopAndJoin()
        throw error
    }
    consumer.stopAndJoin() // after the detach: the final drain sees every record
    if let failure = consumer.failure { throw failure }
    let counters = try session.counters()
    let tally = consumer.tally.pointee
    let seconds = Double(tally.lastDeliveryNanoseconds &- start) / 1e9
    let delivery = Delivery(
        calls: UInt64(warmupCalls + timed.calls), emitted: counters.emitted, lost: counters.lost,
        delivered: tally.delivered, malformed: tally.malformed, outOfSequence: tally.outOfSequence,
        batches: tally.batches,
        eventsPerSecond: tally.lastDeliveryNanoseconds > start ? Double(tally.delivered) / seconds : 0)
    return RunResult(nanosecondsPerCall: timed.nanosecondsPerCall, delivery: delivery)
}

/// The consumer's own speed, without a producer to wait for: fills the ring with `records`
/// records (no reader running), detaches, then times one `drain()` decoding and checking them
/// on this thread. Returns nanoseconds per record and whether every record passed.
func measureDrain(hook: GetpidHook, ringBytes: Int, records: Int, objectPath: String?) throws -> (nanosecondsPerRecord: Double, complete: Bool) {
    let session = try GetpidSession(hook: hook, ringBytes: ringBytes, wakeupBytes: UInt64(ringBytes), objectPath: objectPath)
    do {
        let link = try session.program.attach()
        defer { link.detach() }
        getpidLoop(records)
    }
    var tally = DeliveryTally(expected: session.expected, cpuCount: configuredCPUs)
    defer { tally.deallocate() }
    let start = monotonicNanoseconds()
    try session.reader.drain { tally.consume($0) }
    let elapsed = monotonicNanoseconds() - start
    let counters = try session.counters()
    let complete = counters.emitted == UInt64(records) && counters.lost == 0 && tally.delivered == counters.emitted
        && tally.malformed == 0 && tally.outOfSequence == 0
    return (Double(elapsed) / Double(max(1, tally.delivered)), complete)
}

/// Bytes a selftest record takes in the ring: the 8-byte record header plus the event, rounded
/// up to 8.
let ringBytesPerRecord = (8 + MemoryLayout<vigil_selftest_event>.size + 7) & ~7

/// "8 MiB", "512 KiB", "100 B".
func formatBytes(_ bytes: UInt64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
    if bytes >= 1 << 10 && bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
    return "\(bytes) B"
}
