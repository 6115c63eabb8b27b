import Foundation
import VigilContainers
import VigilEvents
import VigilRules

/// HTTP/1.1 POSTs over POSIX sockets, through TLS for https:// (`tls`), the answers read with
/// VigilContainers' `HTTPResponseDecoder`. The connection stays open between posts while the
/// server keeps it (keep-alive: no connect, and no TLS handshake, per alert); a post on a kept
/// connection that the server closed meanwhile (no answer at all) is sent again on a new one.
struct HTTPPoster: Sendable {
    var endpoint: HTTPEndpoint
    var headers: [(String, String)]
    var timeout: Duration
    /// For an https:// endpoint: the trusted CAs and whether the server is verified.
    var tls: TLSContext?
    /// The connection kept between posts; the poster's copies share it.
    let kept = KeptConnection()

    /// `http`, or `https, verified against ...` for status.
    var transport: String { endpoint.secure ? "https, \(tls?.verification.description ?? "no TLS context")" : "http" }

    /// POSTs `body` as JSON; a 2xx answer is success. Connection trouble, 408, 429 and 5xx
    /// are worth a retry; other statuses are not.
    func post(_ body: [UInt8], alertID: String? = nil) throws(ActionFailure) -> Int {
        try exchange(body, alertID: alertID, keep: 512).status
    }

    /// POSTs `body` as JSON and returns a 2xx answer's status and body (at most `keep` bytes of
    /// it: longer is a permanent failure when `keep` is more than 512, the policy stage's
    /// decisions); failures as `post`'s.
    func exchange(_ body: [UInt8], alertID: String? = nil, keep: Int) throws(ActionFailure) -> (status: Int, body: [UInt8]) {
        let trace = alertID == nil ? nil : AlertTrace.shared, traced = alertID ?? ""
        trace?.mark(traced, .sending)
        var head = "POST \(endpoint.target) HTTP/1.1\r\nHost: \(endpoint.hostHeader)\r\nUser-Agent: vigil\r\n"
        head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let alertID { head += "X-Vigil-Alert-Id: \(alertID)\r\n" }
        let request = Array((head + "\r\n").utf8) + body
        var answer: Answer
        var answered = false
        if let stream = kept.take() {
            do {
                answer = try roundTrip(request, on: stream, keep: keep, answered: &answered, trace: trace, traced)
            } catch where !answered {
                // closed by the server while idle (its keep-alive timeout): once more, on a new one
                answered = false
                answer = try roundTrip(request, on: try connect(), keep: keep, answered: &answered, trace: trace, traced)
            }
        } else {
            answer = try roundTrip(request, on: try connect(), keep: keep, answered: &answered, trace: trace, traced)
        }
        trace?.mark(traced, .answered)
        guard (200..<300).contains(answer.status) else {
            let text = ByteString(answer.body.prefix(200)).trimmingASCIIWhitespace.escapedForTerminal
            let message = "POST \(endpoint.hostHeader)\(endpoint.target): HTTP \(answer.status)\(text.isEmpty ? "" : ": " + text)"
            throw ActionFailure(message: message, retryable: answer.status >= 500 || answer.status == 408 || answer.status == 429)
        }
        if keep > 512, answer.total > keep {
            throw .permanent("POST \(endpoint.hostHeader)\(endpoint.target): the answer is longer than \(keep) bytes")
        }
        return (answer.status, answer.body)
    }

    /// An answer: its status, its body's first bytes, the body's length.
    private struct Answer {
        var status: Int
        var body: [UInt8]
        var total: Int
    }

    /// A new connection to the endpoint (through TLS for https://).
    private func connect() throws(ActionFailure) -> any ByteStream {
        let socket = try Socket.tcp(endpoint.server, timeout: timeout)
        guard endpoint.secure else { return socket }
        guard let tls else { throw .permanent("POST \(endpoint.hostHeader)\(endpoint.target): https without a TLS context") }
        return try tls.connect(socket, host: endpoint.server.host)
    }

    /// Sends `request` on `stream` and reads the whole answer; `answered` turns true at its first
    /// byte. The stream is kept for the next post when the server keeps it open.
    private func roundTrip(_ request: [UInt8], on stream: any ByteStream, keep: Int, answered: inout Bool,
                           trace: AlertTrace?, _ traced: String) throws(ActionFailure) -> Answer {
        try stream.send(request)
        trace?.mark(traced, .written)
        var decoder = HTTPResponseDecoder()
        var status: Int?
        var reusable = false
        var answer: [UInt8] = [], total = 0
        while !decoder.isComplete {
            let bytes = try stream.receive()
            answered = answered || !bytes.isEmpty
            do {
                for part in bytes.isEmpty ? try decoder.finish() : try decoder.feed(bytes) {
                    switch part {
                    case .head(let h) where h.status >= 200:
                        status = h.status
                        reusable = h.keepsConnectionOpen
                    case .head: decoder = HTTPResponseDecoder()  // 1xx: the real answer follows
                    case .body(let b):
                        total += b.count
                        if answer.count < max(keep, 512) { answer += b }
                    case .end: reusable = reusable && !bytes.isEmpty  // a body read until the close
                    }
                }
            } catch {
                throw .transient("POST \(endpoint.hostHeader)\(endpoint.target): bad HTTP answer: \(error.reason)")
            }
        }
        guard let status else { throw .transient("POST \(endpoint.hostHeader)\(endpoint.target): no HTTP answer") }
        if reusable { kept.put(stream) }
        return Answer(status: status, body: answer, total: total)
    }
}

/// The connection an `HTTPPoster` keeps open between posts. One post holds it at a time: taken
/// out, put back after a whole answer the server left the connection open after.
final class KeptConnection: @unchecked Sendable {
    // `stream` is only touched under `lock`.
    private let lock = NSLock()
    private var stream: (any ByteStream)?

    /// The kept connection, now the caller's; nil when there is none.
    func take() -> (any ByteStream)? {
        lock.withLock {
            defer { stream = nil }
            return stream
        }
    }

    /// Keeps `stream` for the next post (replacing, and so closing, any other).
    func put(_ stream: any ByteStream) { lock.withLock { self.stream = stream } }
}

/// `webhook`: POSTs the alert's JSON (Falco's output shape) to a URL, with the alert's id in
/// the body (`id`) and in an `X-Vigil-Alert-Id` header.
struct WebhookAction: SpooledHandler {
    let poster: HTTPPoster

    var transport: String? { poster.transport }

    func payload(_ alert: Alert) -> [UInt8] { Array(alert.json.utf8) }

    func send(_ payload: [UInt8], id: String) throws(ActionFailure) -> String {
        "HTTP \(try poster.post(payload, alertID: id))"
    }
}

/// `slack`: POSTs a Slack-compatible payload (incoming-webhook format, also read by Mattermost
/// and Rocket.Chat): `text` is `PRIORITY rule: output`, one attachment colored by priority
/// with the rule, priority, host, time, tags, enforcement and suppressed count as fields; the
/// alert's id in an `X-Vigil-Alert-Id` header.
struct SlackAction: SpooledHandler {
    let poster: HTTPPoster

    var transport: String? { poster.transport }

    func payload(_ alert: Alert) -> [UInt8] { Array(Self.payload(alert).utf8) }

    func send(_ payload: [UInt8], id: String) throws(ActionFailure) -> String {
        "HTTP \(try poster.post(payload, alertID: id))"
    }

    static func payload(_ alert: Alert) -> String {
        var fields: [(String, String, Bool)] = [
            ("rule", alert.rule, true), ("priority", alert.priority.rawValue, true),
            ("hostname", alert.hostname, true), ("time", alert.time, true),
        ]
        if !alert.tags.isEmpty { fields.append(("tags", alert.tags.joined(separator: ", "), false)) }
        if !alert.enforcement.isEmpty { fields.append(("enforcement", alert.enforcementSummary, false)) }
        if alert.suppressed > 0 { fields.append(("suppressed", String(alert.suppressed), true)) }
        var out = "{\"text\":"
        JSONText.appendString("\(alert.priority.rawValue) \(alert.rule): \(alert.output)", to: &out)
        out += ",\"attachments\":[{\"color\":\"\(color(alert.priority))\",\"fallback\":"
        JSONText.appendString(alert.output, to: &out)
        out += ",\"fields\":["
        for (index, (title, value, short)) in fields.enumerated() {
            if index > 0 { out += "," }
            out += "{\"title\":"
            JSONText.appendString(title, to: &out)
            out += ",\"value\":"
            JSONText.appendString(value, to: &out)
            out += ",\"short\":\(short)}"
        }
        out += "],\"footer\":\"vigil\"}]}"
        return out
    }

    /// Red for error and worse, orange for warning, green below.
    static func color(_ priority: Priority) -> String {
        switch priority {
        case .emergency, .alert, .critical, .error: "#e01e5a"
        case .warning: "#ecb22e"
        default: "#2eb67d"
        }
    }
}
