import Foundation
import VigilContainers
import VigilEvents
import VigilRules

/// One HTTP/1.1 POST over a fresh TCP connection (`Connection: close`), written over POSIX
/// sockets, through TLS for https:// (`tls`); the answer is read with VigilContainers'
/// `HTTPResponseDecoder`.
struct HTTPPoster: Sendable {
    var endpoint: HTTPEndpoint
    var headers: [(String, String)]
    var timeout: Duration
    /// For an https:// endpoint: the trusted CAs and whether the server is verified.
    var tls: TLSContext?

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
        let socket = try Socket.tcp(endpoint.server, timeout: timeout)
        let stream: any ByteStream
        if endpoint.secure {
            guard let tls else { throw .permanent("POST \(endpoint.hostHeader)\(endpoint.target): https without a TLS context") }
            stream = try tls.connect(socket, host: endpoint.server.host)
        } else {
            stream = socket
        }
        var head = "POST \(endpoint.target) HTTP/1.1\r\nHost: \(endpoint.hostHeader)\r\nUser-Agent: vigil\r\n"
        head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let alertID { head += "X-Vigil-Alert-Id: \(alertID)\r\n" }
        try stream.send(Array((head + "\r\n").utf8) + body)
        trace?.mark(traced, .written)
        var decoder = HTTPResponseDecoder()
        var status: Int?
        var answer: [UInt8] = [], total = 0
        while !decoder.isComplete {
            let bytes = try stream.receive()
            do {
                for part in bytes.isEmpty ? try decoder.finish() : try decoder.feed(bytes) {
                    switch part {
                    case .head(let h) where h.status >= 200: status = h.status
                    case .head: decoder = HTTPResponseDecoder()  // 1xx: the real answer follows
                    case .body(let b):
                        total += b.count
                        if answer.count < max(keep, 512) { answer += b }
                    case .end: break
                    }
                }
            } catch {
                throw .transient("POST \(endpoint.hostHeader)\(endpoint.target): bad HTTP answer: \(error.reason)")
            }
        }
        guard let status else { throw .transient("POST \(endpoint.hostHeader)\(endpoint.target): no HTTP answer") }
        trace?.mark(traced, .answered)
        guard (200..<300).contains(status) else {
            let text = ByteString(answer.prefix(200)).trimmingASCIIWhitespace.escapedForTerminal
            let message = "POST \(endpoint.hostHeader)\(endpoint.target): HTTP \(status)\(text.isEmpty ? "" : ": " + text)"
            throw ActionFailure(message: message, retryable: status >= 500 || status == 408 || status == 429)
        }
        if keep > 512, total > keep {
            throw .permanent("POST \(endpoint.hostHeader)\(endpoint.target): the answer is longer than \(keep) bytes")
        }
        return (status, answer)
    }
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
