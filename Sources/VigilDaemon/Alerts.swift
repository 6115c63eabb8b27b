import Foundation
import VigilEvents
import VigilRules
#if canImport(Glibc)
import Glibc
#endif

/// Where the engine hands alerts: the seam the actions engine (VigilActions' dispatcher) plugs
/// into. Every method is called on the event thread and must not block: queue and return.
public protocol AlertConsumer: AnyObject, Sendable {
    /// One alert: `rule` matched `event`.
    func consume(rule: CompiledRule, event: Event)
    /// The end of a batch of events (at least every poll interval): a chance to hand queued work on.
    func batchEnded()
    /// Shutdown, after the ring has been drained: deliver what is queued (bounded by the consumer).
    func flush() async
    /// Appends Prometheus text exposition lines (e.g. `vigil_action_failures_total`).
    func writeMetrics(to text: inout String)
    /// A JSON object (its text) shown under `consumers.NAME` in `GET /v1/status`, or nil.
    var statusJSON: (name: String, json: String)? { get }
}

extension AlertConsumer {
    /// Nothing to hand on by default.
    public func batchEnded() {}
    /// Nothing queued by default.
    public func flush() async {}
    /// No metrics by default.
    public func writeMetrics(to text: inout String) {}
    /// No status by default.
    public var statusJSON: (name: String, json: String)? { nil }
}

/// How an alert is printed.
public enum AlertFormat {
    /// `TIME PRIORITY rule: output`, or a JSON object in Falco's output shape
    /// (time, rule, priority, output, tags, output_fields).
    public static func line(_ rule: CompiledRule, _ event: Event, json: Bool) -> String {
        let output = rule.output.render(event)
        let time = Timestamp.iso8601(event.timeNs)
        guard json else { return "\(time) \(rule.rule.priority.rawValue) \(rule.rule.name): \(output)" }
        var out = "{\"time\":\"\(time)\",\"rule\":"
        JSONText.appendString(rule.rule.name, to: &out)
        out += ",\"priority\":\"\(rule.rule.priority.rawValue)\",\"output\":"
        JSONText.appendString(output, to: &out)
        out += ",\"tags\":[" + rule.rule.tags.map { tag in var t = ""; JSONText.appendString(tag, to: &t); return t }.joined(separator: ",")
        out += "],\"output_fields\":" + EventFormat.json(event) + "}"
        return out
    }
}

/// Prints alerts on standard output (text or Falco-shaped JSON lines), written once per batch.
/// The daemon's output until the actions engine's stdout sink takes over.
public final class StdoutAlertConsumer: AlertConsumer, @unchecked Sendable {
    private let json: Bool
    // Touched only on the event thread (consume, batchEnded) and after it ended (flush).
    private var buffer: [UInt8] = []

    /// Alerts as JSON lines when `json`, else text lines.
    public init(json: Bool) { self.json = json }

    /// Buffers the alert's line.
    public func consume(rule: CompiledRule, event: Event) {
        buffer.append(contentsOf: AlertFormat.line(rule, event, json: json).utf8)
        buffer.append(0x0a)
    }

    /// Writes the batch's lines.
    public func batchEnded() { write() }

    /// Writes what is left.
    public func flush() async { write() }

    private func write() {
        _ = FileOutput.writeAll(STDOUT_FILENO, buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Writing to file descriptors.
public enum FileOutput {
    /// Writes all of `bytes` to `fd` (write(2), retried on EINTR and short writes). Returns 0, or
    /// the errno that stopped it.
    @discardableResult
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32 {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return n < 0 ? errno : EIO }
            offset += n
        }
        return 0
    }
}
