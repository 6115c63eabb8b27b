import Synchronization

/// Counters the engine keeps for `/metrics` and the status: alerts per rule and priority, and a
/// histogram of rule evaluation time per event. The event thread writes, scrapes read.
public final class DaemonMetrics: Sendable {
    /// Upper bounds of the evaluation time buckets, in seconds.
    public static let evaluationBuckets: [Double] = [250e-9, 500e-9, 1e-6, 2.5e-6, 5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 1e-3, 10e-3]
    /// One event in this many is timed (two clock reads cost ~50 ns, a tenth of an evaluation).
    public static let evaluationSampling = 16

    private struct Histogram {
        var buckets = [UInt64](repeating: 0, count: DaemonMetrics.evaluationBuckets.count + 1)
        var count: UInt64 = 0
        var sumNanoseconds: UInt64 = 0
    }
    private let histogram = Mutex(Histogram())
    private let alerts = Mutex<[AlertKey: UInt64]>([:])
    private let alertTotal = Atomic<UInt64>(0)

    /// The labels of an alert counter.
    struct AlertKey: Hashable {
        var rule: String
        var priority: String
    }

    /// Empty counters.
    public init() {}

    /// Records one timed evaluation. Event thread.
    func observeEvaluation(nanoseconds: UInt64) {
        let seconds = Double(nanoseconds) / 1e9
        let index = Self.evaluationBuckets.firstIndex { seconds <= $0 } ?? Self.evaluationBuckets.count
        histogram.withLock { histogram in
            histogram.buckets[index] += 1
            histogram.count += 1
            histogram.sumNanoseconds += nanoseconds
        }
    }

    /// Counts one alert. Event thread.
    func countAlert(rule: String, priority: String) {
        alerts.withLock { $0[AlertKey(rule: rule, priority: priority), default: 0] += 1 }
        alertTotal.add(1, ordering: .relaxed)
    }

    /// Alerts raised since start.
    public var alertCount: UInt64 { alertTotal.load(ordering: .relaxed) }

    /// Appends the alert counters and the evaluation histogram in Prometheus text format.
    func write(to text: inout String) {
        text += "# HELP vigil_alerts_total Alerts raised, per rule and priority.\n# TYPE vigil_alerts_total counter\n"
        for (key, count) in alerts.withLock({ $0 }).sorted(by: { ($0.key.rule, $0.key.priority) < ($1.key.rule, $1.key.priority) }) {
            text += "vigil_alerts_total{rule=\(PrometheusText.label(key.rule)),priority=\(PrometheusText.label(key.priority))} \(count)\n"
        }
        text += "# HELP vigil_rule_evaluation_seconds Time to evaluate the rules against one event (one event in \(Self.evaluationSampling) is timed).\n"
        text += "# TYPE vigil_rule_evaluation_seconds histogram\n"
        let histogram = self.histogram.withLock { $0 }
        var cumulative: UInt64 = 0
        for (index, bound) in Self.evaluationBuckets.enumerated() {
            cumulative += histogram.buckets[index]
            text += "vigil_rule_evaluation_seconds_bucket{le=\"\(bound)\"} \(cumulative)\n"
        }
        cumulative += histogram.buckets[Self.evaluationBuckets.count]
        text += "vigil_rule_evaluation_seconds_bucket{le=\"+Inf\"} \(cumulative)\n"
        text += "vigil_rule_evaluation_seconds_sum \(Double(histogram.sumNanoseconds) / 1e9)\n"
        text += "vigil_rule_evaluation_seconds_count \(histogram.count)\n"
    }
}

/// Helpers for the Prometheus text exposition format (version 0.0.4).
public enum PrometheusText {
    /// The content type of the format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// A quoted label value: backslash, double quote and newline escaped.
    public static func label(_ value: String) -> String {
        var out = "\""
        for c in value.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }

    /// One metric family: its HELP and TYPE lines, then a sample per value, labelled
    /// `label="VALUE"` (no label when `label` is empty).
    public static func family(_ name: String, _ type: String, _ help: String, label: String = "", _ samples: [(String, Int)]) -> String {
        var out = "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        for (value, sample) in samples {
            out += name + (label.isEmpty ? "" : "{\(label)=\(Self.label(value))}") + " \(sample)\n"
        }
        return out
    }

    /// A sample value without a needless exponent for the common cases.
    public static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
