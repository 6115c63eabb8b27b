import Foundation
import Synchronization
import VigilEvents
#if canImport(Glibc)
import Glibc
#endif

/// A workload for the syscalls sensor's loss accounting (the kernel tests and
/// `vigil-kernel-check`): `threads` threads of this process each blocked in `read` of its own pipe
/// at once, then released at once. More calls pending together than a kretprobe's instances
/// (max(10, 2 x CPUs)) lose their returns on the kprobe variant; the sensor counts them lost.
public enum BlockedReads {
    /// What a run did: the pipes' read ends (one read of one byte each), and how many returned.
    public struct Run: Sendable {
        /// The read end each thread read one byte from.
        public var fds: Set<Int32>
        /// The reads that returned the byte.
        public var completed: Int
    }

    /// Starts `threads` threads, each reading one byte from its own pipe; waits until every one
    /// is blocked in `read` (its /proc/self/task/TID/syscall says syscall 0 on x86_64, 63 on
    /// arm64); writes one byte to each pipe; joins the threads (they exit: a pending call of
    /// theirs is counted at their exit) and closes the pipes.
    /// - Throws: `POSIXError` when a pipe cannot be made.
    public static func run(threads: Int) throws -> Run {
        var pipes: [(read: Int32, write: Int32)] = []
        defer { pipes.forEach { close($0.read); close($0.write) } }
        for _ in 0..<threads {
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            pipes.append((fds[0], fds[1]))
        }
        let state = State()
        let done = DispatchGroup()
        for pipe in pipes {
            done.enter()
            let thread = Thread {
                state.tids.withLock { $0.append(threadID()) }
                var byte: UInt8 = 0
                if read(pipe.read, &byte, 1) == 1 { state.completed.add(1, ordering: .relaxed) }
                done.leave()
            }
            thread.start()
        }
        // Every thread blocked in read before any is released (no time bound: a thread that
        // never gets there would hang the check, not pass it).
        func tids() -> [Int32] { state.tids.withLock { $0 } }
        while tids().count < threads || !tids().allSatisfy(blockedInRead) { usleep(1000) }
        var byte: UInt8 = 1
        for pipe in pipes { _ = write(pipe.write, &byte, 1) }
        done.wait()
        // The threads' own exits (after `leave`) are what counts a missed return: wait for them.
        while !tids().allSatisfy({ access("/proc/self/task/\($0)", F_OK) != 0 }) { usleep(1000) }
        return Run(fds: Set(pipes.map(\.read)), completed: state.completed.load(ordering: .relaxed))
    }

    /// What the threads share.
    private final class State: Sendable {
        let tids = Mutex<[Int32]>([])
        let completed = Atomic<Int>(0)
    }

    /// What the syscalls sensor of `sensors` (capturing `read` of this process) made of a run
    /// of `threads` blocked reads: the reads made, the events of them that `stream` delivered,
    /// and the events the sensor counted lost meanwhile (`SensorCounters.lost`: of any read of
    /// this process, the checks' own reads of /proc included).
    public static func measure(_ sensors: Sensors, _ stream: EventStream, threads: Int) throws -> (reads: Int, delivered: Int, lost: UInt64) {
        try stream.drain { _ in }
        let before = try sensors.counters()[Sensor.syscalls.name]?.lost ?? 0
        let run = try run(threads: threads)
        var delivered = 0
        let pid = UInt32(getpid())
        try stream.drain { event in
            guard event.pid == pid, case .syscall(let call) = event.payload, call.descriptor.nameString == "read",
                  run.fds.contains(Int32(truncatingIfNeeded: call.args[0])), call.result == 1 else { return }
            delivered += 1
        }
        let lost = (try sensors.counters()[Sensor.syscalls.name]?.lost ?? 0) - before
        return (run.completed, delivered, lost)
    }

    #if arch(arm64)
    private static let readNumber = "63"
    #else
    private static let readNumber = "0"
    #endif

    /// The calling thread's kernel id, from /proc/thread-self (`PID/task/TID`; the Glibc module
    /// has no gettid).
    private static func threadID() -> Int32 {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/thread-self", &buffer, buffer.count - 1)
        guard n > 0 else { return -1 }
        return Int32(String(cString: buffer).split(separator: "/").last ?? "") ?? -1
    }

    /// True when thread `tid` of this process sleeps in `read`.
    private static func blockedInRead(_ tid: Int32) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/self/task/\(tid)/syscall", encoding: .utf8) else { return false }
        return text.split(separator: " ").first == Substring(readNumber)
    }
}
