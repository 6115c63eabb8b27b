// vigil-bench (`make bench`): how fast ring-buffer records reach Swift, and what a hook emitting
// every call costs a getpid() loop, side by side with the loop without BPF. Runs as root on the
// real kernel; prints a Markdown section for BENCHMARKS.md on stdout, progress on stderr.
// Always exits 0 once it has measured (a missed floor is reported loudly in the output); exits 1
// on bad arguments or when the kernel refuses the programs.
//
// Options: --calls N (timed getpid() calls per run, default 5,000,000), --rounds N (default 5),
//          --poll-ms N (consumer epoll timeout, default 5; 0 = busy polling), --no-pin (do not pin threads),
//          --object FILE (a selftest .bpf.o to load instead of the embedded one, to measure a BPF
//          change before `make generate`).
//
// `vigil-bench --pipeline [--opens N] [--rounds N] [--no-pin]` measures the userspace path instead
// (decode, enrich, JSON, write: events/s with zero lost on real open events; Pipeline.swift) and
// prints the "pipeline" section.
#if canImport(Glibc)
import Glibc
#endif

/// The command line.
struct Options {
    var calls = 5_000_000
    var rounds = 5
    var pollMilliseconds: Int32 = 5
    var pin = true
    var objectPath: String?
    /// Measure the userspace path (decode, enrich, JSON, write) instead of the ring and hooks.
    var pipeline = false
    /// open()+close() steps per pipeline run.
    var opens = 200_000
    /// Measure decode + JSON of syscall events (`--syscalls`) instead of the ring and hooks.
    var syscalls = false
    /// Mixed steps (five syscalls each) per `--syscalls` run.
    var steps = 100_000
    /// `--write-json-pin DIR`: write the recording and JSON SyscallJSONPinTests compares.
    var jsonPinDirectory: String?

    init(_ arguments: [String]) {
        var rest = arguments.dropFirst()
        func number(_ name: String, minimum: Int = 1) -> Int {
            guard let text = rest.popFirst(), let value = Int(text.replacingUnderscores), value >= minimum else {
                Options.usage("\(name) needs a number >= \(minimum)")
            }
            return value
        }
        while let argument = rest.popFirst() {
            switch argument {
            case "--calls": calls = number(argument)
            case "--rounds": rounds = number(argument)
            case "--poll-ms": pollMilliseconds = Int32(clamping: number(argument, minimum: 0))
            case "--no-pin": pin = false
            case "--pipeline": pipeline = true
            case "--opens": opens = number(argument)
            case "--syscalls": syscalls = true
            case "--steps": steps = number(argument)
            case "--write-json-pin":
                guard let path = rest.popFirst() else { Options.usage("--write-json-pin needs a directory") }
                jsonPinDirectory = path
            case "--object":
                guard let path = rest.popFirst() else { Options.usage("--object needs a path") }
                objectPath = path
            case "-h", "--help": Options.usage(nil)
            default: Options.usage("unknown argument \(argument)")
            }
        }
    }

    static func usage(_ problem: String?) -> Never {
        if let problem { progress(problem) }
        writeStandardError("""
            usage: vigil-bench [--calls N] [--rounds N] [--poll-ms N] [--no-pin] [--object FILE.bpf.o]
                   vigil-bench --pipeline [--opens N] [--rounds N] [--no-pin]
                   vigil-bench --syscalls [--steps N] [--rounds N] [--no-pin]
                   vigil-bench --write-json-pin DIR
              --syscalls    measure decode + JSON of syscall events (the syscalls sensor) on one CPU
              --steps N     with --syscalls: mixed steps (5 syscalls each) per run (default 100000)
              --write-json-pin DIR  record a few syscalls of each kind, write DIR/mixed-syscalls.vigilrec and
                            the JSON of their events, DIR/mixed-syscalls.jsonl (SyscallJSONPinTests)
              --pipeline    measure the userspace path (decode, enrich, JSON, write) on real open events
              --opens N     with --pipeline: opens per drained run (default 200000; live runs make half)
              --calls N     timed getpid() calls per run (default 5000000)
              --rounds N    rounds of every scenario, interleaved (default 5)
              --poll-ms N   consumer epoll timeout in ms (default 5; 0 = busy polling)
              --no-pin      do not pin the getpid loop to CPU 0 and the consumer to CPU 1
              --object FILE a selftest .bpf.o to load instead of the embedded one
            Prints a Markdown section for BENCHMARKS.md on stdout; needs root.

            """)
        exit(problem == nil ? 0 : 2)
    }
}

extension String {
    /// "5_000_000" -> "5000000".
    var replacingUnderscores: String { String(filter { $0 != "_" }) }
}

if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "--open-loop" {
    OpenLoopProcess.runAsChild(Array(CommandLine.arguments.dropFirst(2)))
}
let options = Options(CommandLine.arguments)
/// Prints the report of one benchmark mode and exits: 0, or 1 with the reason.
func runMode(_ report: () throws -> String) -> Never {
    do {
        print(try report())
    } catch {
        progress("cannot run: \(error)")
        exit(1)
    }
    exit(0)
}
if options.pipeline { runMode { try runPipelineBenchmark(opens: options.opens, rounds: options.rounds, pin: options.pin) } }
if let directory = options.jsonPinDirectory {
    runMode {
        getenv("VIGIL_BENCH_CHECK_PIN") != nil
            ? try checkSyscallJSONPin(directory: directory) : try writeSyscallJSONPin(directory: directory)
    }
}
if options.syscalls { runMode { try runSyscallPipelineBenchmark(steps: options.steps, rounds: options.rounds, pin: options.pin) } }
let ringBytes = 8 << 20
let machineCPUs = onlineCPUs // before pinning narrows this thread's affinity

// One CPU for the getpid loop (this thread, for the whole benchmark), another for the consumer.
let pinned = options.pin && machineCPUs >= 2 && pinCurrentThread(toCPU: 0)
let settings = RunSettings(calls: options.calls, warmupCalls: max(1000, options.calls / 100),
                           pollTimeoutMilliseconds: options.pollMilliseconds, consumerCPU: pinned ? 1 : nil,
                           objectPath: options.objectPath)

// The loop without BPF, then each hook with wakeups batched (at a quarter and half of the ring)
// and with a wakeup per record (vigil_wakeup_bytes = 0; microseconds per call here, so a tenth of
// the calls).
let scenarios: [Scenario] = [
    .noBPF,
    Scenario(hook: .tracepoint, ringBytes: ringBytes, wakeupBytes: UInt64(ringBytes / 4)),
    Scenario(hook: .tracepoint, ringBytes: ringBytes, wakeupBytes: UInt64(ringBytes / 2)),
    Scenario(hook: .tracepoint, ringBytes: ringBytes, wakeupBytes: 0, callDivisor: 10),
    Scenario(hook: .tpBTF, ringBytes: ringBytes, wakeupBytes: UInt64(ringBytes / 4)),
    Scenario(hook: .tpBTF, ringBytes: ringBytes, wakeupBytes: 0, callDivisor: 10),
]

var runs = [[RunResult]](repeating: [], count: scenarios.count)
let cpuTimesAtStart = CPUTimes.now()
do {
    for round in 0..<options.rounds {
        for offset in scenarios.indices {
            let index = (offset + round) % scenarios.count
            let result = try run(scenarios[index], settings)
            runs[index].append(result)
            let delivered = result.delivery.map {
                ", \(grouped($0.delivered)) delivered, \(grouped($0.lost)) lost, \(millionsPerSecond($0.eventsPerSecond))"
            } ?? ""
            progress("round \(round + 1)/\(options.rounds): \(scenarios[index].label): "
                + "\(fixed(result.nanosecondsPerCall)) ns/call\(delivered)")
        }
    }
} catch {
    progress("cannot run: \(error)")
    exit(1)
}

// The consumer alone, with the ring filled beforehand: its cost per record.
let drainRecords = ringBytes / ringBytesPerRecord * 9 / 10 // nine tenths of the ring
var drainNanoseconds: [Double] = []
var drainComplete = true
do {
    for _ in 0..<5 {
        let drain = try measureDrain(hook: .tracepoint, ringBytes: ringBytes, records: drainRecords, objectPath: options.objectPath)
        drainNanoseconds.append(drain.nanosecondsPerRecord)
        drainComplete = drainComplete && drain.complete
    }
} catch {
    progress("cannot measure the drain: \(error)")
    exit(1)
}

let background = CPUTimes.now().load(since: cpuTimesAtStart)
let results = BenchmarkResults(
    command: CommandLine.arguments.joined(separator: " "), settings: settings, rounds: options.rounds,
    cpus: machineCPUs, pinned: pinned, othersLoad: background.others, stealLoad: background.steal, scenarios: scenarios, runs: runs,
    drainNanoseconds: drainNanoseconds, drainRecords: drainRecords, drainComplete: drainComplete)
print(markdown(results))
if !results.allPassed {
    progress("FLOOR MISSED: see the Verdict section of the report")
}
exit(0)
