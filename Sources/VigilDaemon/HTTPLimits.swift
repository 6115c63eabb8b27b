import Logging
import Synchronization

/// The limits of an HTTP listener against clients that hold it (`api:` in vigil.yaml,
/// docs/config.md): a request head too large, a request that never finishes (slowloris), too
/// many connections, too many stream subscribers.
public struct HTTPLimits: Sendable, Equatable {
    /// The largest request line plus header names and values of one request (`api.max_header_kib`);
    /// beyond it the request is answered 400 and the connection closed (NIO's
    /// `NIOHTTPDecoderLimitConfiguration.maxHeaderListSize`).
    public var maxHeaderBytes = 16 << 10
    /// How long a connection may take to deliver a whole request (head and body), counted from
    /// when it connects or the previous response was written (`api.request_timeout_seconds`); an
    /// idle keep-alive connection is closed after the same time. Streams are not limited.
    public var requestTimeout: Duration = .seconds(10)
    /// Connections open at once on the listeners sharing one `HTTPServerCounters` (the API socket
    /// and the metrics listener: `api.max_connections`); one more is answered
    /// 503 and closed.
    public var maxConnections = 64
    /// Stream subscribers (`/v1/events` and `/v1/alerts` together) at once
    /// (`api.max_subscribers`); one more is answered 503.
    public var maxSubscribers = 16

    /// The defaults.
    public init() {}
}

/// What the listeners refused or closed because of `HTTPLimits`, and the connections open now:
/// in the status (`api`) and /metrics (`vigil_api_refused_total{reason}`, `vigil_api_connections`).
/// Each refusal is also logged (the first ten of each reason, then one in a thousand, so a
/// flood cannot fill the log).
public final class HTTPServerCounters: Sendable {
    /// Why a connection or request was refused or closed.
    public enum Reason: String, Sendable, CaseIterable {
        /// More connections than `maxConnections`.
        case connections
        /// A request head over `maxHeaderBytes`.
        case headerTooLarge = "header_too_large"
        /// A request not complete within `requestTimeout`, or an idle connection.
        case timeout
        /// More stream subscribers than `maxSubscribers`.
        case subscribers
    }

    private let connectionsRefused = Atomic<UInt64>(0)
    private let headersTooLarge = Atomic<UInt64>(0)
    private let timeouts = Atomic<UInt64>(0)
    private let subscribersRefused = Atomic<UInt64>(0)
    private let open = Atomic<Int>(0)
    private let subscribers = Atomic<Int>(0)
    private let logger: Logger?

    /// Zero counters; refusals are logged to `logger` when given.
    public init(logger: Logger? = nil) { self.logger = logger }

    /// Refusals and closes for `reason` since start.
    public func count(_ reason: Reason) -> UInt64 {
        switch reason {
        case .connections: connectionsRefused.load(ordering: .relaxed)
        case .headerTooLarge: headersTooLarge.load(ordering: .relaxed)
        case .timeout: timeouts.load(ordering: .relaxed)
        case .subscribers: subscribersRefused.load(ordering: .relaxed)
        }
    }

    /// Connections open now (all listeners sharing these counters).
    public var openConnections: Int { open.load(ordering: .relaxed) }

    /// Stream subscribers now.
    public var openSubscribers: Int { subscribers.load(ordering: .relaxed) }

    /// Counts one refusal and logs it (`what`: the peer and the limit).
    func refuse(_ reason: Reason, _ what: @autoclosure () -> String) {
        let n: UInt64 = switch reason {
        case .connections: connectionsRefused.add(1, ordering: .relaxed).newValue
        case .headerTooLarge: headersTooLarge.add(1, ordering: .relaxed).newValue
        case .timeout: timeouts.add(1, ordering: .relaxed).newValue
        case .subscribers: subscribersRefused.add(1, ordering: .relaxed).newValue
        }
        if n <= 10 || n % 1000 == 0 { logger?.warning("api: \(what()) (\(reason.rawValue) refusals so far: \(n))") }
    }

    /// Takes a connection slot; false (and nothing taken) when `limit` are open.
    func openConnection(limit: Int) -> Bool { take(open, limit) }

    /// Gives a connection slot back.
    func closeConnection() { open.subtract(1, ordering: .relaxed) }

    /// Takes a subscriber slot; false (and nothing taken) when `limit` are open.
    func openSubscriber(limit: Int) -> Bool { take(subscribers, limit) }

    /// Gives a subscriber slot back.
    func closeSubscriber() { subscribers.subtract(1, ordering: .relaxed) }

    private func take(_ slots: borrowing Atomic<Int>, _ limit: Int) -> Bool {
        var current = slots.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = slots.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// The counters in Prometheus text format.
    func write(to text: inout String) {
        text += "# HELP vigil_api_refused_total Connections or requests the API refused or closed at a limit (api: in vigil.yaml), per reason.\n"
        text += "# TYPE vigil_api_refused_total counter\n"
        for reason in Reason.allCases { text += "vigil_api_refused_total{reason=\"\(reason.rawValue)\"} \(count(reason))\n" }
        text += "# HELP vigil_api_connections Connections open now (API socket and metrics listener).\n# TYPE vigil_api_connections gauge\n"
        text += "vigil_api_connections \(openConnections)\n"
        text += "# HELP vigil_api_subscribers Stream subscribers now (/v1/events and /v1/alerts).\n# TYPE vigil_api_subscribers gauge\n"
        text += "vigil_api_subscribers \(openSubscribers)\n"
    }
}
