import ArgumentParser
import Foundation
import VigilEvents
import VigilSensors

/// `vigil trace --summary`: per-syscall counts, errors and latency from the paired syscall events,
/// like `strace -c` for any process. Kept in arrays indexed by the syscall's row of the table.
struct SyscallSummary {
    /// Calls seen, per row of `Syscalls.all`.
    private(set) var calls: [UInt64]
    /// Calls that failed (result -4095 ... -1).
    private(set) var errors: [UInt64]
    /// Sum of exit minus entry time, in nanoseconds.
    private(set) var totalNs: [UInt64]
    /// The longest call, in nanoseconds.
    private(set) var maxNs: [UInt64]

    init() {
        let n = Syscalls.all.count
        calls = Array(repeating: 0, count: n)
        errors = calls
        totalNs = calls
        maxNs = calls
    }

    /// Counts one paired syscall.
    mutating func add(_ s: Payload.Syscall) {
        calls[s.index] &+= 1
        if s.failedCall { errors[s.index] &+= 1 }
        totalNs[s.index] &+= s.latencyNs
        if s.latencyNs > maxNs[s.index] { maxNs[s.index] = s.latencyNs }
    }

    /// One line of the summary.
    struct Row: Equatable {
        var name: String, calls: UInt64, errors: UInt64, totalNs: UInt64, maxNs: UInt64
        var averageNs: UInt64 { calls == 0 ? 0 : totalNs / calls }
    }

    /// The syscalls seen, most total time first (then most calls, then by name).
    var rows: [Row] {
        calls.indices.filter { calls[$0] > 0 }
            .map { Row(name: Syscalls.all[$0].nameString, calls: calls[$0], errors: errors[$0], totalNs: totalNs[$0], maxNs: maxNs[$0]) }
            .sorted { ($0.totalNs, $0.calls, $1.name) > ($1.totalNs, $1.calls, $0.name) }
    }

    /// Every row added up (max: the longest call of all).
    var total: Row {
        rows.reduce(Row(name: "total", calls: 0, errors: 0, totalNs: 0, maxNs: 0)) {
            Row(name: "total", calls: $0.calls + $1.calls, errors: $0.errors + $1.errors, totalNs: $0.totalNs + $1.totalNs,
                maxNs: max($0.maxNs, $1.maxNs))
        }
    }

    /// The table `strace -c` prints, plus the longest call; `lost` (events the kernel could not
    /// deliver, so not counted) is said below it when not zero.
    func table(lost: UInt64) -> String {
        let rows = rows, total = total
        func pad(_ s: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }
        func line(_ r: Row) -> String {
            let share = total.totalNs == 0 ? 0 : Double(r.totalNs) * 100 / Double(total.totalNs)
            return pad(String(format: "%.2f", share), 6) + " " + pad(String(format: "%.6f", Double(r.totalNs) / 1e9), 11) + " "
                + pad(String(r.averageNs / 1000), 11) + " " + pad(String(r.maxNs / 1000), 10) + " " + pad(String(r.calls), 9) + " "
                + pad(r.errors == 0 ? "" : String(r.errors), 9) + " " + r.name
        }
        var text = "% time     seconds  usecs/call  max usecs     calls    errors syscall\n"
        let rule = "------ ----------- ----------- ---------- --------- --------- ----------------\n"
        text += rule
        for r in rows { text += line(r) + "\n" }
        text += rule + line(total) + "\n"
        if lost > 0 { text += "(\(lost) events lost in the kernel: not counted above)\n" }
        return text
    }

    /// One JSON object: `syscalls` (the rows: syscall, calls, errors, total_ns, avg_ns, max_ns),
    /// `total` and `lost`.
    func json(lost: UInt64) -> String {
        func object(_ r: Row) -> String {
            "{\"syscall\":\"\(r.name)\",\"calls\":\(r.calls),\"errors\":\(r.errors),\"total_ns\":\(r.totalNs),\"avg_ns\":\(r.averageNs),\"max_ns\":\(r.maxNs)}"
        }
        return "{\"syscalls\":[" + rows.map(object).joined(separator: ",") + "],\"total\":" + object(total) + ",\"lost\":\(lost)}\n"
    }
}

extension Trace {
    /// Checks the --summary options: --summary excludes --alerts.
    func validateSummary() throws {
        if summary && alerts { throw ValidationError("--summary and --alerts do not go together") }
    }

    /// Counts the syscall events of `stream` (of the command's process tree when a command is
    /// given, which it starts now) until Ctrl-C, SIGTERM, --duration or the command's exit. On a
    /// terminal the table is redrawn in place every second; otherwise it is printed once at the end.
    /// With a command, vigil exits with the command's status.
    func runSummary(sensors: Sensors, stream: EventStream) throws {
        let out = try EventOutput(path: output, format: .table)
        let live = output == nil && isatty(STDOUT_FILENO) == 1
        var counts = SyscallSummary()
        var traced = command.isEmpty ? nil : try TracedCommand(command)
        func lost() throws -> UInt64 { try sensors.counters().values.map(\.lost).reduce(0, +) }
        func render() throws -> String {
            let lost = try lost()
            return format == .json ? counts.json(lost: lost) : counts.table(lost: lost)
        }
        var nextDraw = DispatchTime.now().uptimeNanoseconds + 1_000_000_000
        if live { try out.write("\u{1B}[2J\u{1B}[H") }
        let deadline = duration.map { DispatchTime.now().uptimeNanoseconds + UInt64($0 * 1e9) }
        let count = { (event: Event) in
            if traced?.tree.contains(event) == false { return }
            if case .syscall(let s) = event.payload { counts.add(s) }
        }
        try stream.run(shouldStop: {
            let now = DispatchTime.now().uptimeNanoseconds
            if live && now >= nextDraw {
                nextDraw = now + 1_000_000_000
                if let text = try? render() { try? out.write("\u{1B}[H\u{1B}[J" + text) }
                try? out.flush()
            }
            return StopSignal.requested || traced?.exited() == true || deadline.map { now >= $0 } ?? false
        }, count)
        sensors.detach()
        try stream.drain(count)
        try out.write((live ? "\u{1B}[H\u{1B}[J" : "") + render())
        try out.flush()
        let counters = try sensors.counters().values
        let stats = stream.statistics
        FileHandle.standardError.write(Data("""
        vigil trace: \(counts.total.calls) syscalls counted, \(stats.records) events seen, \
        \(counters.map(\.filtered).reduce(0, +)) filtered in kernel, \(try lost()) lost, \(stats.undecodable) undecodable

        """.utf8))
        try traced?.exitWithItsStatus()
    }
}
