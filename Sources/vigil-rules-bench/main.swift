// vigil-rules-bench: what the rules engine costs. Records real events from this machine's
// kernel (the process and file sensors while a small workload runs), then measures:
// - evaluating the default ruleset per event (median ns/event over rounds; floor 300 ns),
// - compiling the default ruleset, and 1000 rules (floor: under 1 s).
// Prints a Markdown section for BENCHMARKS.md between "rules" markers (make bench).
import Foundation
import VigilBPF
import VigilEnrichment
import VigilEvents
import VigilRules
import VigilSensors

/// CPU time of this thread (CLOCK_THREAD_CPUTIME_ID), in ns: on a shared machine, the time the
/// thread was not running (other processes' turns) does not count against the rules.
func threadCPUTime() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}
func median(_ values: [Double]) -> Double { let s = values.sorted(); return s[s.count / 2] }

/// Real events: the sensors record while a shell workload execs and opens files. Only the
/// workload's events are kept (the shell's and its children's): on a shared machine the rest is
/// whatever other processes happen to do, up to a million events per drain.
func recordEvents(minimum: Int) throws -> [Event] {
    var filter = KernelFilter()
    filter.ignorePID = 0
    let sensors = try Sensors(kinds: Sensor.process.kinds.union(Sensor.file.kinds), filter: filter, ringBytes: 1 << 25)
    let stream = try EventStream(sensors: sensors, enricher: Enricher(metadata: nil), kinds: KindSet.all)
    var events: [Event] = []
    var shells = Set<UInt32>()
    while events.count < minimum {
        let p = try Process.run(URL(fileURLWithPath: "/bin/sh"), arguments: ["-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do ls /etc >/dev/null; cat /etc/hostname /etc/passwd >/dev/null; head -c1 /etc/os-release >/dev/null; done"])
        shells.insert(UInt32(p.processIdentifier))
        p.waitUntilExit()
        try stream.drain { event in
            if shells.contains(event.pid) || shells.contains(event.ppid) { events.append(event) }
        }
    }
    return events
}

/// `count` rules derived from the default ones, each with its own name and an extra clause.
func generatedRules(count: Int) throws -> [(file: String, items: [RuleItem])] {
    let defaults = try RuleFiles.defaultItems()
    var base: [PartialRule] = []
    var shared: [RuleItem] = []
    for item in defaults {
        if case .rule(let rule, _) = item { base.append(rule) } else { shared.append(item) }
    }
    var items = shared
    for i in 0..<count {
        var rule = base[i % base.count]
        rule.name = "generated rule \(i)"
        if let condition = rule.condition { rule.condition = ("(\(condition.text)) and proc.name != generated\(i)", condition.location) }
        items.append(.rule(rule, .define))
    }
    return [("generated.yaml", items)]
}

let machine = "\(ProcessInfo.processInfo.operatingSystemVersionString), nproc \(ProcessInfo.processInfo.activeProcessorCount)"
let events = try recordEvents(minimum: 2000).map(Recorded.init)
let ruleSet = try RuleFiles.ruleSet(paths: [])

/// A recorded event behind a reference. Passing `recorded.event` (a `let` of a class instance)
/// hands the rules the event borrowed, as the event stream does; reading an Event out of an
/// array (`events[i]`, `for event in events`, even through a buffer pointer) copies it, a retain
/// and a release of each of its strings and arrays, which would be the loop's cost, not the rules'.
final class Recorded {
    let event: Event
    init(_ event: Event) { self.event = event }
}

/// One event through `set`, not inlined so that `recorded.event` stays a borrow.
@inline(never)
func evaluateOne(_ set: RuleSet, _ recorded: Recorded, _ matched: inout Int) {
    set.forEachMatch(recorded.event) { _ in matched += 1 }
}

/// ns per event for one pass of `events` through `set` (5 passes per call), and the alert count.
func evaluate(_ set: RuleSet, _ events: [Recorded]) -> (ns: Double, alerts: Int) {
    var matched = 0
    let start = threadCPUTime()
    for _ in 0..<5 {
        for recorded in events { evaluateOne(set, recorded, &matched) }
    }
    return (Double(threadCPUTime() - start) / Double(events.count * 5), matched / 5)
}

// Evaluation: every recorded event through the default ruleset and, side by side in the same
// rounds, through an empty ruleset: the same loop (reading each event from the array) without
// rules. The difference is what the rules cost.
let emptySet = try RuleSet(files: [])
var perEvent: [Double] = [], loopOnly: [Double] = []
var alerts = 0
for _ in 0..<15 {
    let run = evaluate(ruleSet, events)
    perEvent.append(run.ns)
    alerts = run.alerts
    loopOnly.append(evaluate(emptySet, events).ns)
}
var byKind: [(EventKind, Int, Double)] = []
for kind in EventKind.allCases {
    let subset = events.filter { $0.event.kind == kind }
    guard !subset.isEmpty else { continue }
    var times: [Double] = []
    for _ in 0..<9 { times.append(evaluate(ruleSet, subset).ns - evaluate(emptySet, subset).ns) }
    byKind.append((kind, subset.count, median(times)))
}

// Compilation (the thread's CPU time, as above).
var compileDefaults: [Double] = []
for _ in 0..<9 {
    let start = threadCPUTime()
    _ = try RuleFiles.ruleSet(paths: [])
    compileDefaults.append(Double(threadCPUTime() - start) / 1e6)
}
let thousand = try generatedRules(count: 1000)
var compileThousand: [Double] = []
var thousandCount = 0
for _ in 0..<5 {
    let start = threadCPUTime()
    thousandCount = try RuleSet(files: thousand).rules.count
    compileThousand.append(Double(threadCPUTime() - start) / 1e6)
}

let evalMedian = median(zip(perEvent, loopOnly).map { $0 - $1 })
let thousandMedian = median(compileThousand)
func fixed(_ v: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", v) }
print("""
<!-- BEGIN rules: generated by `make bench` (.build/release/vigil-rules-bench); edits inside are overwritten -->
## Rules engine (`vigil-rules-bench`)

- Command: `.build/release/vigil-rules-bench` (what `make bench` runs)
- Machine: \(machine)
- Method: \(events.count) real events recorded from this kernel by the process and file sensors while a shell loop ran \
ls, cat and head (the loop's own events only: exec, fork, exit, open; enriched as `vigil trace` enriches them); the default ruleset \
(\(ruleSet.rules.count) rules) evaluated on every event, 5 passes per round, 15 rounds, median of the thread's CPU time \
per event. \(alerts) alerts per pass.

| measurement | median | floor | verdict |
|---|---:|---|---|
| default ruleset, evaluation per event (rules only: loop with the default rules minus the same loop with none) | \(fixed(evalMedian)) ns | at most 300 ns | \(evalMedian <= 300 ? "PASS" : "FAIL") |
| the loop itself (reading each event, an empty ruleset) | \(fixed(median(loopOnly))) ns | | |
| compile the default ruleset | \(fixed(median(compileDefaults), 2)) ms | | |
| compile 1000 rules (\(thousandCount) enabled) | \(fixed(thousandMedian, 1)) ms | under 1000 ms | \(thousandMedian < 1000 ? "PASS" : "FAIL") |

Per event kind, rules only (an event meets only the rules that can match its kind):

| kind | events | ns/event |
|---|---:|---:|
\(byKind.map { "| \($0.0.rawValue) | \($0.1) | \(fixed($0.2)) |" }.joined(separator: "\n"))
<!-- END rules -->
""")
