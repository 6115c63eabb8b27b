import Foundation
import VigilActions
import VigilEvents
import VigilRules
#if canImport(Glibc)
import Glibc
#endif

/// Where the engine hands alerts. Every method but `flush` is called on the event thread and
/// must not block: queue and return; `consume(alert:)` also on the integrity thread (the tamper
/// alerts), at the same time, so it must be thread-safe. `ActionsConsumer` (VigilActions'
/// dispatcher, which takes a lock) is the one the daemon runs.
public protocol AlertConsumer: AnyObject, Sendable {
    /// One alert: `rule` matched `event`.
    func consume(rule: CompiledRule, event: Event)
    /// One alert Vigil raised about itself (tamper evidence: "Vigil sensor silent", "Vigil
    /// program detached", "Vigil filter changed"), built by the engine; it goes to the
    /// `default_actions`. Called on the integrity thread (or the event thread): thread-safe.
    func consume(alert: Alert)
    /// The end of a batch of events (at least every poll interval): a chance to hand queued work on.
    func batchEnded()
    /// New rules and their kernel filters are in force (`failure`: why the kernel filters,
    /// `kernel_kill` entries included, could not be set).
    func kernelFiltersApplied(_ rules: RuleSet, failure: String?)
    /// Shutdown, after the ring has been drained: deliver what is queued (bounded by the consumer).
    func flush() async
    /// Appends Prometheus text exposition lines (e.g. `vigil_action_failures_total`).
    func writeMetrics(to text: inout String)
    /// A JSON object (its text) shown under `consumers.NAME` in `GET /v1/status`, or nil.
    var statusJSON: (name: String, json: String)? { get }
    /// Stages that take events besides alerts; the event thread offers them every event.
    var eventTaps: [EventTap] { get }
}

extension AlertConsumer {
    /// Nothing to hand on by default.
    public func batchEnded() {}
    /// Nothing to do by default.
    public func kernelFiltersApplied(_ rules: RuleSet, failure: String?) {}
    /// Nothing queued by default.
    public func flush() async {}
    /// No metrics by default.
    public func writeMetrics(to text: inout String) {}
    /// No status by default.
    public var statusJSON: (name: String, json: String)? { nil }
    /// No event taps by default.
    public var eventTaps: [EventTap] { [] }
}

/// The rules' actions (VigilActions' `ActionDispatcher`: bounded queues, dedup, sinks and
/// enforcement) as the engine's alert consumer.
public final class ActionsConsumer: AlertConsumer {
    /// The dispatcher.
    public let dispatcher: ActionDispatcher
    /// How long shutdown may take to deliver what is queued.
    public let shutdownTimeout: Duration

    /// Alerts go to `dispatcher`.
    public init(dispatcher: ActionDispatcher, shutdownTimeout: Duration = .seconds(5)) {
        self.dispatcher = dispatcher
        self.shutdownTimeout = shutdownTimeout
    }

    /// Builds the alert (Falco's shape) and queues it for the rule's actions.
    public func consume(rule: CompiledRule, event: Event) {
        let alert = Alert(rule: rule, event: event)
        AlertTrace.shared?.matched(alert)
        dispatcher.dispatch(alert, actions: rule.rule.actions)
    }

    /// The dispatcher's event taps (nats `events:`, the policy's `events:`).
    public var eventTaps: [EventTap] { dispatcher.eventTaps }

    /// Queues a tamper alert for the `default_actions`.
    public func consume(alert: Alert) {
        dispatcher.dispatch(alert, actions: [])
    }

    /// Tells the dispatcher which `kernel_kill` rules the kernel enforces now.
    public func kernelFiltersApplied(_ rules: RuleSet, failure: String?) {
        var statuses: [String: KernelKillStatus] = [:]
        for rule in rules.openPaths.killRules {
            statuses[rule.name] = failure.map { .notEnforced("the kernel filters could not be set: \($0)") } ?? .enforced
        }
        dispatcher.setKernelKill(statuses)
    }

    /// Delivers what is queued, within `shutdownTimeout` (on a thread of its own: it blocks).
    public func flush() async {
        let dispatcher = self.dispatcher, timeout = shutdownTimeout
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread {
                dispatcher.shutdown(timeout: timeout)
                done.resume()
            }.start()
        }
    }

    /// Per action: alerts sent, failed, dropped (full queue), skipped (below min_priority), and
    /// the failures alone as `vigil_action_failures_total`; the policy stage's outcomes.
    public func writeMetrics(to text: inout String) {
        let stats = dispatcher.stats()
        text += "# HELP vigil_action_alerts_total Alerts per action and outcome.\n# TYPE vigil_action_alerts_total counter\n"
        for action in stats.actions {
            for (result, count) in [("sent", action.sent), ("failed", action.failed), ("dropped", action.dropped), ("skipped", action.skipped)] {
                text += "vigil_action_alerts_total{action=\(PrometheusText.label(action.name)),type=\(PrometheusText.label(action.type)),result=\"\(result)\"} \(count)\n"
            }
        }
        text += "# HELP vigil_action_failures_total Deliveries or enforcements that failed (after retries), per action.\n"
        text += "# TYPE vigil_action_failures_total counter\n"
        for action in stats.actions {
            text += "vigil_action_failures_total{action=\(PrometheusText.label(action.name))} \(action.failed)\n"
        }
        text += "# HELP vigil_alerts_suppressed_total Identical alerts aggregated into an earlier one (dedup).\n"
        text += "# TYPE vigil_alerts_suppressed_total counter\nvigil_alerts_suppressed_total \(stats.suppressed)\n"
        if let policy = stats.policy {
            text += "# HELP vigil_policy_decisions_total Alerts through the policy stage, per outcome (failed_*: no decision, the failure mode decided).\n"
            text += "# TYPE vigil_policy_decisions_total counter\n"
            for (result, count) in [("allowed", policy.allowed), ("denied", policy.denied), ("failed_open", policy.failedOpen), ("failed_closed", policy.failedClosed)] {
                text += "vigil_policy_decisions_total{result=\"\(result)\"} \(count)\n"
            }
            text += "# HELP vigil_policy_event_decisions_total Events (policy events:) through the policy stage, per decision.\n"
            text += "# TYPE vigil_policy_event_decisions_total counter\n"
            for (result, count) in [("allowed", policy.eventsAllowed), ("denied", policy.eventsDenied)] {
                text += "vigil_policy_event_decisions_total{result=\"\(result)\"} \(count)\n"
            }
        }
        if !stats.eventTaps.isEmpty {
            text += "# HELP vigil_event_tap_events_total Events per tap (nats events:, policy events:) and outcome (dropped: its queue was full).\n"
            text += "# TYPE vigil_event_tap_events_total counter\n"
            for tap in stats.eventTaps {
                for (result, count) in [("matched", tap.matched), ("sent", tap.sent), ("failed", tap.failed), ("dropped", tap.dropped)] {
                    text += "vigil_event_tap_events_total{tap=\(PrometheusText.label(tap.name)),result=\"\(result)\"} \(count)\n"
                }
            }
        }
    }

    /// The dispatcher's counters (per action: sent, failed, dropped, ...; dedup).
    public var statusJSON: (name: String, json: String)? {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(dispatcher.stats()) else { return nil }
        return ("actions", String(decoding: data, as: UTF8.self))
    }
}

