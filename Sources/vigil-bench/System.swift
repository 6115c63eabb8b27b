// The few system facts and calls the benchmark needs: a monotonic clock, thread pinning, the
// machine's description.
import Synchronization
import VigilBPF
#if canImport(Glibc)
import Glibc
#endif

/// CLOCK_MONOTONIC in nanoseconds.
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

// gettid, sched_setaffinity and sched_getaffinity are GNU extensions the Glibc module does not
// import (no _GNU_SOURCE); they are looked up once in libc by name, with their C types.
private typealias GettidFunction = @convention(c) () -> pid_t
private typealias AffinityFunction = @convention(c) (pid_t, Int, UnsafeMutableRawPointer) -> Int32

private func libcFunction<F>(_ name: String, as type: F.Type) -> F? {
    // RTLD_DEFAULT is ((void *)0) in glibc: search the process's global symbols.
    guard let symbol = dlsym(nil, name) else { return nil }
    return unsafeBitCast(symbol, to: type)
}

/// A CPU mask the size of glibc's cpu_set_t (1024 CPUs).
private typealias CPUMask = [UInt64]
private let cpuMaskWords = 1024 / 64

/// The kernel thread id of the calling thread (gettid(2)).
func currentThreadID() -> UInt32 {
    guard let gettid = libcFunction("gettid", as: GettidFunction.self) else { return 0 }
    return UInt32(truncatingIfNeeded: gettid())
}

/// Pins the calling thread to one CPU (sched_setaffinity(0, ...): the thread itself). Returns
/// false when that is not possible (the benchmark then runs unpinned and says so).
@discardableResult
func pinCurrentThread(toCPU cpu: Int) -> Bool {
    guard cpu >= 0, cpu < 64 * cpuMaskWords,
          let setAffinity = libcFunction("sched_setaffinity", as: AffinityFunction.self) else { return false }
    var mask = CPUMask(repeating: 0, count: cpuMaskWords)
    mask[cpu / 64] = 1 << UInt64(cpu % 64)
    return mask.withUnsafeMutableBytes { setAffinity(0, $0.count, $0.baseAddress!) } == 0
}

/// The CPUs configured on this machine (possible CPUs: the size of a per-CPU map).
var configuredCPUs: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_CONF))) }

/// The CPUs this process may run on now (what `nproc` prints).
var onlineCPUs: Int {
    var mask = CPUMask(repeating: 0, count: cpuMaskWords)
    guard let getAffinity = libcFunction("sched_getaffinity", as: AffinityFunction.self),
          mask.withUnsafeMutableBytes({ getAffinity(0, $0.count, $0.baseAddress!) }) == 0 else {
        return max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }
    return mask.reduce(0) { $0 + $1.nonzeroBitCount }
}

/// `uname -r`.
var kernelRelease: String {
    var name = utsname()
    guard uname(&name) == 0 else { return "unknown" }
    return withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}

/// The first "model name" of /proc/cpuinfo, or nil.
var cpuModel: String? {
    var model: String?
    SystemFile.forEachLine("/proc/cpuinfo") { text in
        guard text.hasPrefix("model name"), let colon = text.firstIndex(of: ":") else { return true }
        model = text[text.index(after: colon)...].trimmingWhitespace()
        return false
    }
    return model
}

/// CPU time of the whole machine and of this process, to tell how busy others kept the CPUs.
struct CPUTimes {
    /// Ticks (USER_HZ) summed over CPUs from the "cpu" line of /proc/stat.
    var busyTicks: UInt64 = 0, stealTicks: UInt64 = 0, allTicks: UInt64 = 0
    /// This process's user + system time in seconds (every thread; getrusage).
    var ownSeconds: Double = 0

    /// Reads the counters now.
    static func now() -> CPUTimes {
        var times = CPUTimes()
        SystemFile.forEachLine("/proc/stat") { line in
            // cpu user nice system idle iowait irq softirq steal ...
            let fields = line.split(separator: " ").dropFirst().prefix(8).compactMap { UInt64($0) }
            if fields.count == 8 {
                times.allTicks = fields.reduce(0, +)
                times.busyTicks = times.allTicks - fields[3] - fields[4] - fields[7]
                times.stealTicks = fields[7]
            }
            return false // the first line: every CPU
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        times.ownSeconds = seconds(usage.ru_utime) + seconds(usage.ru_stime)
        return times
    }

    /// From `start` to `self`: the share of all CPU time that other processes (and the kernel
    /// for them) used, and the share the hypervisor stole.
    func load(since start: CPUTimes) -> (others: Double, steal: Double) {
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        let all = Double(allTicks &- start.allTicks)
        guard all > 0 else { return (0, 0) }
        let othersTicks = Double(busyTicks &- start.busyTicks) - (ownSeconds - start.ownSeconds) * ticksPerSecond
        return (max(0, othersTicks / all), Double(stealTicks &- start.stealTicks) / all)
    }
}

/// Today's date in UTC, YYYY-MM-DD.
var todayUTC: String {
    var now = time(nil)
    var parts = tm()
    gmtime_r(&now, &parts)
    func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
    return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))"
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and newlines.
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}

/// Writes a progress line to stderr (stdout carries only the Markdown report).
func progress(_ message: String) {
    writeStandardError("vigil-bench: \(message)\n")
}

/// Writes text to fd 2 (the C `stderr` global is not concurrency-safe in Swift 6).
func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}

/// A plain pthread (not a Swift task), optionally pinned to one CPU, running `body` until asked
/// to stop: `body` gets a `shouldStop` to poll. The closure reaches the thread through
/// `Unmanaged`. Used by the consumers of the benchmarks.
final class WorkerThread {
    private let stopRequested = Atomic<Bool>(false)
    private var thread: pthread_t?

    /// Context handed to pthread_create.
    private final class Start {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Starts `body` on a new thread (pthread_create), pinned to `cpu` when given (best effort).
    init(name: String, cpu: Int?, _ body: @escaping (_ shouldStop: () -> Bool) -> Void) throws {
        // The thread keeps this object (and its flag) alive until the body returns.
        let start = Start { [self] in
            if let cpu { pinCurrentThread(toCPU: cpu) }
            body { self.stopRequested.load(ordering: .acquiring) }
        }
        let context = Unmanaged.passRetained(start).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { context in
            Unmanaged<Start>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<Start>.fromOpaque(context).release()
            throw BPFError(.system, operation: "pthread_create", target: name, errno: rc, message: "cannot start the \(name) thread")
        }
        self.thread = thread
    }

    /// Asks the body to finish and waits for the thread (pthread_join).
    func stopAndJoin() {
        stopRequested.store(true, ordering: .releasing)
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }
}
