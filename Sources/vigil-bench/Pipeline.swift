// `vigil-bench --pipeline`: how many events per second Vigil's userspace path takes from the ring
// to JSON lines (decode, enrich, format, write), measured on real open events from the real
// kernel: the file sensor records this process's open()+close() loop, the ring is drained
// through the same code `vigil trace -o json --output FILE` runs, and every event must arrive
// (kernel lost counter 0, one event per open).
import VigilBPF
import VigilEnrichment
import VigilEvents
import VigilSensors
#if canImport(Glibc)
import Glibc
#endif

/// The stages of the path, each measured alone by draining a ring filled beforehand.
enum PipelineStage: CaseIterable {
    /// Read the ring only (count the records).
    case ring
    /// Read and decode each record into an `Event`.
    case decode
    /// Read, decode and enrich (`EventStream`: process table, users, container).
    case enrich
    /// The same, plus the JSON line of each event into a reusable buffer.
    case json
    /// The whole `vigil trace -o json --output FILE` path: JSON lines written to a file on tmpfs.
    case write

    /// How the report names the stage.
    var label: String {
        switch self {
        case .ring: "ring read only (count records)"
        case .decode: "read + decode (`EventDecoder`)"
        case .enrich: "read + decode + enrich (`EventStream`)"
        case .json: "read + decode + enrich + JSON line (`EventFormat.appendJSON`, with a `JSONMemo` as `EventOutput`)"
        case .write: "read + decode + enrich + JSON + write(2) to a tmpfs file (`vigil trace -o json --output FILE`)"
        }
    }
}

/// One drain of a pre-filled ring through one stage.
struct StageRun {
    /// Opens made while filling, events the stage saw for them, and the kernel's lost counter
    /// over the fill.
    var opens: Int, events: Int, lost: UInt64
    /// Wall-clock and thread CPU nanoseconds of the drain.
    var wallNanoseconds: UInt64, cpuNanoseconds: UInt64
    /// Bytes of JSON produced (json and write stages).
    var outputBytes: Int

    var complete: Bool { events == opens && lost == 0 }
    var cpuNanosecondsPerEvent: Double { Double(cpuNanoseconds) / Double(max(1, events)) }
    var eventsPerSecond: Double { Double(events) / (Double(max(1, cpuNanoseconds)) / 1e9) }
}

/// A live run: the open loop on one CPU at full speed, the whole path on the other.
struct LiveRun {
    /// Opens made while attached (warm-up included), events delivered for them, the kernel's
    /// lost counter.
    var opens: Int, delivered: Int, lost: UInt64
    /// The loop's nanoseconds per open()+close() (median of its slices).
    var loopNanoseconds: Double
    /// The consumer thread's CPU time from start to its final drain, and the events it handled
    /// (the loop's, and its exit).
    var consumerCPUNanoseconds: UInt64
    var consumerEvents: Int
    var complete: Bool { delivered == opens && lost == 0 }
    var consumerCPUNanosecondsPerEvent: Double { Double(consumerCPUNanoseconds) / Double(max(1, consumerEvents)) }
}

/// CLOCK_THREAD_CPUTIME_ID in nanoseconds: CPU time of the calling thread.
func threadCPUNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// A scratch directory with the file the loop opens and the file JSON goes to.
struct PipelineFiles {
    let directory: String
    let target: String
    let output: String

    init() throws {
        var template = Array("/tmp/vigil-bench-pipeline.XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw BenchError("cannot create a scratch directory in /tmp")
        }
        directory = String(cString: made)
        target = directory + "/target"
        let shm = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : directory
        output = "\(shm)/vigil-bench-pipeline-\(getpid()).json"
        let fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BenchError("cannot create \(target)") }
        close(fd)
    }

    func remove() {
        unlink(target)
        unlink(output)
        rmdir(directory)
    }
}

/// An error of the benchmark's own setup.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// open()+close() of `path`, `count` times: the loop of bench/openclose.c.
@inline(never)
func openCloseLoop(_ path: UnsafePointer<CChar>, _ count: Int) {
    for _ in 0..<count {
        let fd = open(path, O_RDONLY)
        if fd >= 0 { close(fd) }
    }
}

/// The sensors filtered to this process, a big ring the fill leaves unread, and the stream.
final class PipelineBench {
    let files: PipelineFiles
    let sensors: Sensors
    let stream: EventStream

    init(files: PipelineFiles, ringBytes: Int) throws {
        self.files = files
        var filter = KernelFilter()
        filter.ignorePID = 0
        filter.pids = [UInt32(getpid())]
        // A ring that holds a whole fill, and no wakeup below its size: nothing is read while filling.
        sensors = try Sensors(kinds: [.open], filter: filter, ringBytes: ringBytes, wakeupBytes: UInt64(ringBytes))
        stream = try EventStream(sensors: sensors, enricher: Enricher(metadata: nil), kinds: [.open])
    }

    /// The kernel's lost counter, over every sensor.
    func lost() throws -> UInt64 { try sensors.counters().values.map(\.lost).reduce(0, +) }

    /// Fills the ring with `opens` open events, then drains it through `stage`.
    func run(_ stage: PipelineStage, opens: Int) throws -> StageRun {
        // Opened before the fill (its own open event is drained with what is left from before).
        let sink = stage == .write ? try EventOutput(path: files.output, format: .json) : nil
        try stream.drain { _ in }
        let lostBefore = try lost()
        files.target.withCString { openCloseLoop($0, opens) }
        let lostInFill = try lost() - lostBefore
        var events = 0, outputBytes = 0
        // The first two stages read the ring with a reader of their own (the stream's is private).
        let reader = try RingBufferReader(map: sensors.ring)
        let wall0 = monotonicNanoseconds(), cpu0 = threadCPUNanoseconds()
        switch stage {
        case .ring:
            try reader.drain { events += $0.count }
        case .decode:
            var decoder = EventDecoder(bootToEpochNs: BootClock.offsetToEpochNs())
            try reader.drain { batch in
                for record in batch {
                    if let event = decoder.decode(record), event.kind == .open { events += 1 }
                }
            }
        case .enrich:
            try stream.drain { _ in events += 1 }
        case .json:
            var buffer = ByteBuffer(capacity: EventOutput.limit + (1 << 16))
            try drainAsJSON(stream, into: &buffer, bytes: &outputBytes, events: &events)
        case .write:
            guard let sink else { break }
            try stream.drain(batchDone: sink.flush) { event in
                try sink.write(event)
                events += 1
            }
            try sink.flush()
            outputBytes = sink.bytesWritten
        }
        let cpu = threadCPUNanoseconds() - cpu0, wall = monotonicNanoseconds() - wall0
        return StageRun(opens: opens, events: events, lost: lostInFill, wallNanoseconds: wall, cpuNanoseconds: cpu,
                        outputBytes: outputBytes)
    }
}

/// The whole path on a consumer pthread, as `vigil trace -o json --output FILE` runs it: the
/// stream polls the ring (10 ms timeout), formats each event into the output's buffer and
/// writes once per ring batch.
final class LiveConsumer {
    private let stream: EventStream
    private let output: EventOutput
    private let target: ByteString
    private let cpu: Int?
    private var worker: WorkerThread?
    /// Valid after `stopAndJoin()`: opens of the target delivered, and events delivered in all.
    private(set) var delivered = 0
    private(set) var events = 0
    private(set) var cpuNanoseconds: UInt64 = 0
    private(set) var failure: Error?

    init(stream: EventStream, output: EventOutput, target: ByteString, cpu: Int?) {
        self.stream = stream
        self.output = output
        self.target = target
        self.cpu = cpu
    }

    /// Starts the thread.
    func start() throws {
        worker = try WorkerThread(name: "pipeline consumer", cpu: cpu) { [self] shouldStop in run(shouldStop) }
    }

    /// Asks the thread to finish (it drains the ring once more) and waits for it.
    func stopAndJoin() {
        worker?.stopAndJoin()
        worker = nil
    }

    private func run(_ shouldStop: () -> Bool) {
        let start = threadCPUNanoseconds()
        var delivered = 0, events = 0
        do {
            try stream.run(shouldStop: shouldStop, batchDone: output.flush) { event in
                try output.write(event)
                events += 1
                if case .open(let o) = event.payload, o.path == target { delivered += 1 }
            }
            try output.flush()
        } catch {
            failure = error
        }
        self.delivered = delivered
        self.events = events
        cpuNanoseconds = threadCPUNanoseconds() - start
    }
}

/// The open()+close() loop in a process of its own (this program again, `--open-loop`), as
/// `vigil trace` sees the loop of bench/openclose.c: single-threaded, known to the process table
/// from /proc. It waits for `start()`, then prints the median ns per open of its slices.
final class OpenLoopProcess {
    let pid: pid_t
    private let control: Int32, results: Int32

    /// Spawns it (posix_spawn), pinned to `cpu` when given.
    init(path: String, opens: Int, slices: Int, cpu: Int?) throws {
        var input: [Int32] = [0, 0], output: [Int32] = [0, 0]
        guard pipe(&input) == 0, pipe(&output) == 0 else { throw BenchError("pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        let arguments = ["vigil-bench", "--open-loop", path, String(opens), String(slices), String(cpu ?? -1)]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child = pid_t()
        let rc = posix_spawn(&child, "/proc/self/exe", &actions, nil, &argv, environ)
        close(input[0])
        close(output[1])
        guard rc == 0 else {
            close(input[1]); close(output[0])
            throw BenchError("cannot start the open loop (posix_spawn: \(rc))")
        }
        pid = child
        control = input[1]
        results = output[0]
    }

    /// Lets the loop begin.
    func start() {
        var go: UInt8 = 1
        _ = write(control, &go, 1)
        close(control)
    }

    /// Waits for the loop to end; its median ns per open.
    func finish() throws -> Double {
        var text: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 256)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(results, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            text += chunk[0..<n]
        }
        close(results)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        guard let ns = Double(String(decoding: text, as: UTF8.self).trimmingWhitespace()) else {
            throw BenchError("the open loop printed no result (status \(status))")
        }
        return ns
    }

    /// The child's side (`vigil-bench --open-loop PATH OPENS SLICES CPU`): wait for one byte on
    /// stdin, run the loop in slices, print the median ns per open.
    static func runAsChild(_ arguments: [String]) -> Never {
        guard arguments.count == 4, let opens = Int(arguments[1]), let slices = Int(arguments[2]), let cpu = Int(arguments[3]) else {
            Options.usage("--open-loop PATH OPENS SLICES CPU")
        }
        if cpu >= 0 { pinCurrentThread(toCPU: cpu) }
        var go: UInt8 = 0
        _ = read(0, &go, 1)
        let perSlice = max(1, opens / max(1, slices))
        var times: [Double] = []
        arguments[0].withCString { path in
            for _ in 0..<max(1, slices) {
                let start = monotonicNanoseconds()
                openCloseLoop(path, perSlice)
                times.append(Double(monotonicNanoseconds() - start) / Double(perSlice))
            }
        }
        print(times.median)
        exit(0)
    }
}

/// One live run: the loop in its own process, fresh sensors filtered to it with the default ring
/// (what `vigil trace` loads), the consumer on its own thread.
func liveRun(files: PipelineFiles, opens: Int, ringBytes: Int, loopCPU: Int?, consumerCPU: Int?) throws -> LiveRun {
    let slices = 20, perSlice = max(1, opens / slices)
    let loop = try OpenLoopProcess(path: files.target, opens: perSlice * slices, slices: slices, cpu: loopCPU)
    var filter = KernelFilter()
    filter.pids = [UInt32(loop.pid)]
    let sensors = try Sensors(kinds: [.open], filter: filter, ringBytes: ringBytes)
    let output = try EventOutput(path: files.output, format: .json)
    let stream = try EventStream(sensors: sensors, enricher: Enricher(metadata: nil), kinds: [.open])
    let lostBefore = try sensors.counters().values.map(\.lost).reduce(0, +)
    let consumer = LiveConsumer(stream: stream, output: output, target: ByteString(files.target), cpu: consumerCPU)
    try consumer.start()
    loop.start()
    let loopNanoseconds = try loop.finish()
    usleep(100_000) // the consumer's next poll reads the last records
    consumer.stopAndJoin()
    if let failure = consumer.failure { throw failure }
    let lost = try sensors.counters().values.map(\.lost).reduce(0, +) - lostBefore
    return LiveRun(opens: perSlice * slices, delivered: consumer.delivered, lost: lost, loopNanoseconds: loopNanoseconds,
                   consumerCPUNanoseconds: consumer.cpuNanoseconds, consumerEvents: consumer.events)
}

/// Everything the pipeline benchmark measured.
struct PipelineResults {
    var command: String
    var cpus: Int
    var opens: Int
    var liveOpens: Int
    var rounds: Int
    var pinned: Bool
    var othersLoad: Double
    var stealLoad: Double
    var stages: [PipelineStage: [StageRun]]
    var live: [LiveRun]
    var jsonBytesPerEvent: Double

    func cpuPerEvent(_ stage: PipelineStage) -> Double { (stages[stage] ?? []).map(\.cpuNanosecondsPerEvent).median }
    func complete(_ stage: PipelineStage) -> Bool { (stages[stage] ?? []).allSatisfy(\.complete) }
}

/// The target for the whole path on one CPU (the brief of this benchmark: 2 us per event).
let pipelineFloorEventsPerSecond = 500_000.0

/// Runs the pipeline benchmark and returns its Markdown section.
func runPipelineBenchmark(opens: Int, rounds: Int, pin: Bool) throws -> String {
    let files = try PipelineFiles()
    defer { files.remove() }
    let cpusAtStart = CPUTimes.now()
    let cpus = onlineCPUs // before pinning narrows this thread's affinity
    // Drained stages on CPU 1 (the loop fills the ring from there too: the ring is read later).
    let pinned = pin && cpus >= 2 && pinCurrentThread(toCPU: 1)
    let bench = try PipelineBench(files: files, ringBytes: 64 << 20)
    _ = try bench.run(.write, opens: 2000) // warm-up: the process table learns this process, caches fill
    var stages: [PipelineStage: [StageRun]] = [:]
    var jsonBytes: [Double] = []
    for round in 0..<rounds {
        for stage in PipelineStage.allCases {
            let run = try bench.run(stage, opens: opens)
            stages[stage, default: []].append(run)
            if stage == .write { jsonBytes.append(Double(run.outputBytes) / Double(max(1, run.events))) }
            progress("pipeline round \(round + 1)/\(rounds): \(stage): \(fixed(run.cpuNanosecondsPerEvent)) ns CPU/event, "
                + "\(run.events)/\(run.opens) events, \(run.lost) lost")
        }
    }
    // Live: the loop (a process of its own) on CPU 0, the consumer on CPU 1, the default ring.
    // About one run of scripts/bench-sensors.sh's open loop (warm-up, verification and timed
    // steps): the 8 MiB ring may hold what the consumer has not yet read, as it does there.
    let liveOpens = opens / 2
    var live: [LiveRun] = []
    for round in 0..<rounds {
        let run = try liveRun(files: files, opens: liveOpens, ringBytes: 8 << 20, loopCPU: pinned ? 0 : nil,
                              consumerCPU: pinned ? 1 : nil)
        live.append(run)
        progress("pipeline live \(round + 1)/\(rounds): loop \(fixed(run.loopNanoseconds)) ns/open, \(run.delivered)/\(run.opens) delivered, "
            + "\(run.lost) lost, consumer \(fixed(run.consumerCPUNanosecondsPerEvent)) ns CPU/event")
    }
    let load = CPUTimes.now().load(since: cpusAtStart)
    return pipelineMarkdown(PipelineResults(
        command: CommandLine.arguments.joined(separator: " "), cpus: cpus, opens: opens, liveOpens: liveOpens, rounds: rounds, pinned: pinned,
        othersLoad: load.others, stealLoad: load.steal, stages: stages, live: live, jsonBytesPerEvent: jsonBytes.median))
}

/// The Markdown section of the pipeline benchmark (between "pipeline" markers).
func pipelineMarkdown(_ r: PipelineResults) -> String {
    var out: [String] = []
    func line(_ text: String = "") { out.append(text) }
    let whole = r.cpuPerEvent(.write)
    let liveComplete = r.live.allSatisfy(\.complete)
    let passed = 1e9 / whole >= pipelineFloorEventsPerSecond && r.complete(.write) && liveComplete
    line("<!-- BEGIN pipeline: generated by `make bench` (.build/release/vigil-bench --pipeline); edits inside are overwritten -->")
    line("## Userspace path: decode, enrich, JSON (`vigil-bench --pipeline`)")
    line()
    line("- Command: `\(r.command)` (what `make bench` runs)")
    line("- Machine: Linux \(kernelRelease), nproc \(r.cpus), \(cpuModel ?? "unknown CPU"); run on \(todayUTC). "
        + "Background: other processes used \(fixed(100 * r.othersLoad))% of the CPUs' time, the host stole \(fixed(100 * r.stealLoad))%.")
    line("- Events: real `open` events from this kernel's file sensor (the `vigil trace` sensors, filtered in the kernel to "
        + "this process): the benchmark itself opens and closes one file by absolute path, as `bench/openclose.c` does. "
        + "Each is enriched like any other (this process is in the process table, seeded from /proc), and its JSON line is "
        + "\(fixed(r.jsonBytesPerEvent)) bytes.")
    line("- Drained stages: \(grouped(UInt64(r.opens))) opens fill a 64 MiB ring that nothing reads; then one stage drains it "
        + "on one thread\(r.pinned ? " (pinned to CPU 1)" : ""), timed by that thread's CPU clock (CLOCK_THREAD_CPUTIME_ID; "
        + "wall time also shown). \(r.rounds) rounds, stages in order, medians. Every stage must see one event per open, "
        + "with the kernel's lost counter unchanged.")
    line("- Live: \(grouped(UInt64(r.liveOpens))) opens as fast as one CPU allows, by a process of their own "
        + "(`vigil-bench --open-loop`, single-threaded like bench/openclose.c\(r.pinned ? ", CPU 0" : "")) while a consumer "
        + "thread\(r.pinned ? " (CPU 1)" : "") runs `EventStream.run` with JSON to a tmpfs file exactly as `vigil trace -o json "
        + "--output FILE` does, with the default 8 MiB ring and the sensors filtered to the loop's pid; the consumer's CPU time "
        + "over the events it delivered. Delivered counts the opens of the loop's file found in the consumer's events. "
        + "A run is about one run of `scripts/bench-sensors.sh`'s open loop: the ring holds what the consumer has not read "
        + "yet; a loop this fast that runs much longer than the ring holds outruns one consumer CPU (see the notes).")
    line()
    line("| stage (drained ring) | CPU ns/event (median) | events/s on one CPU | wall ns/event | every event, 0 lost |")
    line("|---|---:|---:|---:|---|")
    for stage in PipelineStage.allCases {
        let list = r.stages[stage] ?? []
        let cpu = r.cpuPerEvent(stage)
        let wall = list.map { Double($0.wallNanoseconds) / Double(max(1, $0.events)) }.median
        line("| \(stage.label) | \(fixed(cpu)) | \(millionsPerSecond(1e9 / cpu)) | \(fixed(wall)) "
            + "| \(r.complete(stage) ? "yes (\(list.count) of \(list.count) runs)" : "**no**") |")
    }
    line()
    line("| live run | loop ns/open (median of slices) | opens | delivered | lost (kernel) | consumer CPU ns/event |")
    line("|---|---:|---:|---:|---:|---:|")
    for (i, run) in r.live.enumerated() {
        line("| \(i + 1) | \(fixed(run.loopNanoseconds)) | \(grouped(UInt64(run.opens))) | \(grouped(UInt64(run.delivered))) "
            + "| \(grouped(run.lost)) | \(fixed(run.consumerCPUNanosecondsPerEvent)) |")
    }
    line()
    line("### Verdict")
    line()
    line("- \(passed ? "PASS" : "**FAIL**") decode + enrich + JSON + write at least \(millionsPerSecond(pipelineFloorEventsPerSecond)) "
        + "on one CPU (\(fixed(1000 / pipelineFloorEventsPerSecond * 1e6)) ns/event) with zero lost: "
        + "\(millionsPerSecond(1e9 / whole)) (\(fixed(whole)) ns/event); decode + enrich alone "
        + "\(millionsPerSecond(1e9 / r.cpuPerEvent(.enrich))); live runs \(liveComplete ? "delivered every event, 0 lost" : "**lost events**").")
    line("<!-- END pipeline -->")
    return out.joined(separator: "\n")
}

/// Drains `stream`, formatting each event as a JSON line into `buffer` as `EventOutput` does
/// (one `JSONMemo`), emptied after each batch and whenever it passes `EventOutput.limit` (where
/// `EventOutput` writes: a batch of 4096 syscall events is ~8 MB of JSON, and a buffer grown to
/// that, fresh each run, costs page faults and cache misses `vigil trace` does not pay); counts
/// the bytes and events.
func drainAsJSON(_ stream: EventStream, into buffer: inout ByteBuffer, bytes: inout Int, events: inout Int) throws {
    let memo = JSONMemo()
    try stream.drain(batchDone: {
        bytes += buffer.count
        buffer.removeAll()
    }) { event in
        EventFormat.appendJSON(event, to: &buffer, memo: memo)
        buffer.append(0x0a)
        events += 1
        if buffer.count >= EventOutput.limit {
            bytes += buffer.count
            buffer.removeAll()
        }
    }
}
