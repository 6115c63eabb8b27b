import Foundation
import VigilEvents
import VigilRules

/// A NATS server address: `nats://host[:port]` (plain, TLS when the server demands it),
/// `tls://host[:port]` (TLS always), or `host[:port]`; port 4222 by default. Credentials in the
/// URL are refused: they go in `username`/`password_env`/`password_file` or `token_env`.
struct NATSServerURL: Sendable, Equatable, CustomStringConvertible {
    var server: HostPort
    /// `tls://`: the connection must be TLS.
    var tls: Bool

    /// Parses `text`. - Throws: the reason, for the configuration's error.
    init(_ text: String) throws(AddressError) {
        var rest = Substring(text)
        let lowered = text.lowercased()
        tls = lowered.hasPrefix("tls://")
        if lowered.hasPrefix("nats://") { rest = rest.dropFirst("nats://".count) } else if tls { rest = rest.dropFirst("tls://".count) }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.contains("/"), !rest.contains("://") else { throw AddressError(message: "'\(text)' is not a nats://host:port or tls://host:port address") }
        guard !rest.contains("@") else { throw AddressError(message: "'\(text)': credentials in the URL are not supported; use username and password_env/password_file, or token_env") }
        server = try HostPort(String(rest), defaultPort: 4222)
    }

    /// `nats://host:port` or `tls://host:port`.
    var description: String { "\(tls ? "tls" : "nats")://\(server.host):\(server.port)" }
}

/// How a NATS client proves who it is (CONNECT's `user`/`pass` or `auth_token`).
public enum NATSCredentials: Sendable, Equatable {
    /// `user` and `pass`.
    case password(user: String, password: String)
    /// `auth_token`.
    case token(String)
}

/// One message of the NATS client protocol as the server sends it
/// (https://docs.nats.io/reference/reference-protocols/nats-protocol).
enum NATSServerMessage: Equatable {
    /// `INFO {json}`: the JSON text.
    case info(String)
    case ping
    case pong
    case ok
    /// `-ERR 'message'`: the message, quotes removed.
    case err(String)
    /// `MSG` or `HMSG`: the subject, subscription id, reply subject, header block (HMSG's,
    /// `NATS/1.0 ...` included) and payload.
    case msg(subject: String, sid: String, reply: String?, headers: [UInt8]?, payload: [UInt8])
}

/// Splits the bytes a NATS server sends into `NATSServerMessage`s; bytes of an incomplete
/// message wait for the next `feed`. Pure: no I/O.
struct NATSParser {
    private var buffer: [UInt8] = []
    private var start = 0
    /// The longest control line accepted (an INFO line is a few hundred bytes).
    static let maxLine = 1 << 20

    mutating func feed(_ bytes: [UInt8]) {
        if start > 0 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer += bytes
    }

    /// The next complete message, or nil when more bytes are needed.
    /// - Throws: a transient failure for a line the protocol does not have.
    mutating func next() throws(ActionFailure) -> NATSServerMessage? {
        guard let end = lineEnd() else {
            if buffer.count - start > Self.maxLine { throw .transient("NATS: a protocol line longer than \(Self.maxLine) bytes") }
            return nil
        }
        let line = String(decoding: buffer[start..<end], as: UTF8.self)
        let words = line.split(separator: " ", omittingEmptySubsequences: true)
        let verb = words.first.map { $0.uppercased() } ?? ""
        switch verb {
        case "PING": start = end + 2; return .ping
        case "PONG": start = end + 2; return .pong
        case "+OK": start = end + 2; return .ok
        case "-ERR":
            start = end + 2
            var text = line.dropFirst(4).trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("'"), text.hasSuffix("'"), text.count >= 2 { text = String(text.dropFirst().dropLast()) }
            return .err(text)
        case "INFO":
            start = end + 2
            return .info(String(line.dropFirst(4)).trimmingCharacters(in: .whitespaces))
        case "MSG", "HMSG":
            // MSG subject sid [reply] size | HMSG subject sid [reply] hsize size
            let headered = verb == "HMSG"
            let fixed = headered ? 5 : 4
            guard words.count == fixed || words.count == fixed + 1,
                let total = Int(words[words.count - 1]), total >= 0,
                let headerSize = headered ? Int(words[words.count - 2]) : 0, headerSize >= 0, headerSize <= total
            else { throw .transient("NATS: bad \(verb) line '\(line.prefix(200))'") }
            let bodyStart = end + 2
            guard buffer.count >= bodyStart + total + 2 else { return nil }
            let headers = headered ? Array(buffer[bodyStart..<bodyStart + headerSize]) : nil
            let payload = Array(buffer[bodyStart + headerSize..<bodyStart + total])
            start = bodyStart + total + 2
            let reply = words.count == fixed + 1 ? String(words[3]) : nil
            return .msg(subject: String(words[1]), sid: String(words[2]), reply: reply, headers: headers, payload: payload)
        default:
            throw .transient("NATS: unexpected line '\(line.prefix(200))'")
        }
    }

    private func lineEnd() -> Int? {
        var index = start
        while index + 1 < buffer.count {
            if buffer[index] == 0x0d, buffer[index + 1] == 0x0a { return index }
            index += 1
        }
        return nil
    }

    /// The status code of an HMSG header block (`NATS/1.0 503` -> 503), nil without one.
    static func status(_ headers: [UInt8]?) -> Int? {
        guard let headers else { return nil }
        let first = String(decoding: headers.prefix { $0 != 0x0d && $0 != 0x0a }, as: UTF8.self)
        let parts = first.split(separator: " ")
        return parts.count >= 2 ? Int(parts[1]) : nil
    }
}

/// One connection to a NATS server, over `Socket` and, when asked for or demanded by the
/// server's INFO, `TLSContext` (NATS 2.9 sends INFO in clear text, then the client upgrades).
/// CONNECT carries the credentials, `headers` and `no_responders`; a PING/PONG round trip
/// confirms the server took them (`-ERR 'Authorization Violation'` otherwise). Answers the
/// server's PINGs while reading. One thread uses it at a time.
final class NATSConnection {
    private let stream: any ByteStream
    private var parser = NATSParser()
    /// The subject prefix of this connection's replies (`_INBOX.<random>.`).
    private let inbox = "_INBOX." + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    private var requests = 0
    private var inboxSubscribed = false
    /// The server's INFO, parsed.
    let info: [String: Any]
    let peer: String

    /// Connects, reads INFO, upgrades to TLS (`tls` when the URL is tls:// or the server
    /// requires it), sends CONNECT and waits for the PONG of a PING.
    /// - Throws: transient failures for connection trouble, permanent ones for refused
    ///   credentials or TLS the server needs but no context was made for.
    init(_ url: NATSServerURL, tls: TLSContext?, credentials: NATSCredentials?, timeout: Duration, name: String = "vigil") throws(ActionFailure) {
        let socket = try Socket.tcp(url.server, timeout: timeout)
        peer = socket.peer
        var plain = NATSParser()
        var infoText: String?
        while infoText == nil {
            let bytes = try socket.receive()
            guard !bytes.isEmpty else { throw .transient("NATS \(peer): closed before INFO") }
            plain.feed(bytes)
            switch try plain.next() {
            case .info(let text)?: infoText = text
            case nil: continue
            case let other?: throw .transient("NATS \(peer): expected INFO, got \(other)")
            }
        }
        let info = (try? JSONSerialization.jsonObject(with: Data((infoText ?? "").utf8))) as? [String: Any] ?? [:]
        self.info = info
        let serverWantsTLS = info["tls_required"] as? Bool ?? false
        if url.tls || serverWantsTLS {
            guard let tls else { throw .permanent("NATS \(peer): the server requires TLS; use a tls:// server address (with ca_file if its CA is private)") }
            stream = try tls.connect(socket, host: url.server.host)
        } else {
            stream = socket
        }
        var connect: [String: Any] = [
            "verbose": false, "pedantic": false, "tls_required": url.tls || serverWantsTLS, "name": name, "lang": "swift",
            "version": "1", "protocol": 1, "headers": true, "no_responders": true,
        ]
        switch credentials {
        case .password(let user, let password)?:
            connect["user"] = user
            connect["pass"] = password
        case .token(let token)?: connect["auth_token"] = token
        case nil: break
        }
        let json = (try? JSONSerialization.data(withJSONObject: connect, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        try stream.send(Array("CONNECT \(json)\r\nPING\r\n".utf8))
        while true {
            switch try next() {
            case .pong: return
            case .err(let text):
                let auth = text.lowercased().contains("authorization") || text.lowercased().contains("authentication")
                throw ActionFailure(message: "NATS \(peer): \(text)", retryable: !auth)
            default: continue
            }
        }
    }

    /// Whether the server runs JetStream (INFO's `jetstream`).
    var jetStream: Bool { info["jetstream"] as? Bool ?? false }

    /// The largest message (headers and payload) the server takes (INFO's `max_payload`).
    var maxPayload: Int { info["max_payload"] as? Int ?? 1 << 20 }

    /// Sends raw protocol bytes.
    func send(_ bytes: [UInt8]) throws(ActionFailure) { try stream.send(bytes) }

    /// `SUB subject sid`.
    func subscribe(_ subject: String, sid: String) throws(ActionFailure) {
        try stream.send(Array("SUB \(subject) \(sid)\r\n".utf8))
    }

    /// The next message from the server; PINGs are answered (and returned). Throws when the
    /// connection ends or the receive times out.
    func next() throws(ActionFailure) -> NATSServerMessage {
        while true {
            if let message = try parser.next() {
                if message == .ping { try stream.send(Array("PONG\r\n".utf8)) }
                return message
            }
            let bytes = try stream.receive()
            guard !bytes.isEmpty else { throw .transient("NATS \(peer): connection closed") }
            parser.feed(bytes)
        }
    }

    /// Publishes `payload` to `subject` with `headers` (HPUB, or PUB without headers) and a
    /// reply inbox, and returns the reply's header block and payload (a JetStream ack, an API
    /// answer). A `503` status (no responders: no stream takes the subject) is a transient failure.
    func request(_ subject: String, headers: [(String, String)] = [], payload: [UInt8]) throws(ActionFailure) -> (headers: [UInt8]?, payload: [UInt8]) {
        if !inboxSubscribed {
            try subscribe(inbox + ".*", sid: "1")
            inboxSubscribed = true
        }
        requests += 1
        let reply = "\(inbox).\(requests)"
        var bytes: [UInt8]
        if headers.isEmpty {
            bytes = Array("PUB \(subject) \(reply) \(payload.count)\r\n".utf8)
        } else {
            var block = "NATS/1.0\r\n"
            for (name, value) in headers { block += "\(name): \(value)\r\n" }
            block += "\r\n"
            let headerBytes = Array(block.utf8)
            bytes = Array("HPUB \(subject) \(reply) \(headerBytes.count) \(headerBytes.count + payload.count)\r\n".utf8) + headerBytes
        }
        bytes += payload
        bytes += [0x0d, 0x0a]
        try stream.send(bytes)
        while true {
            switch try next() {
            case .msg(let subject, _, _, let headers, let payload) where subject == reply:
                if NATSParser.status(headers) == 503 { throw .transient("NATS \(peer): no responders for \(subjectForMessage(subject: subject, sent: bytes))") }
                return (headers, payload)
            case .err(let text): throw .transient("NATS \(peer): \(text)")
            default: continue
            }
        }
    }

    private func subjectForMessage(subject: String, sent: [UInt8]) -> String {
        String(decoding: sent.prefix { $0 != 0x0d }, as: UTF8.self).split(separator: " ").dropFirst().first.map(String.init) ?? subject
    }
}

/// Subject tokens: lowercase letters, digits, `-` and `_`; anything else (dots, spaces,
/// wildcards) becomes `-`, runs of `-` collapse, and an empty result is `_`.
enum NATSSubject {
    static func token(_ text: String) -> String {
        var out = ""
        var dash = false
        for scalar in text.lowercased().unicodeScalars {
            let keep = (scalar >= "a" && scalar <= "z") || (scalar >= "0" && scalar <= "9") || scalar == "_"
            if keep {
                out.unicodeScalars.append(scalar)
                dash = false
            } else if !dash, !out.isEmpty {
                out += "-"
                dash = true
            }
        }
        while out.hasSuffix("-") { out.removeLast() }
        return out.isEmpty ? "_" : out
    }

    /// `PREFIX.HOST.alerts.PRIORITY.RULE` (priority lowercase).
    static func alert(prefix: String, host: String, priority: Priority, rule: String) -> String {
        "\(prefix).\(token(host)).alerts.\(priority.rawValue.lowercased()).\(token(rule))"
    }

    /// Whether `prefix` is one or more dot-separated tokens without wildcards or spaces.
    static func isValidPrefix(_ prefix: String) -> Bool {
        !prefix.isEmpty && prefix.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { part in
            !part.isEmpty && !part.contains(where: { $0 == "*" || $0 == ">" || $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" })
        }
    }
}

/// `nats`: publishes each alert's JSON (the webhook's body) to JetStream, on
/// `PREFIX.HOST.alerts.PRIORITY.RULE`, with the alert's id as `Nats-Msg-Id` so the stream drops
/// a resend within its duplicate window; an alert leaves the spool only after the stream's ack.
/// The stream (`STREAM`, subjects `PREFIX.>`) is created on first connection when missing.
/// Keeps one connection open across alerts; a failed publish on a reused connection is retried
/// once on a fresh one.
final class NATSAction: SpooledHandler, Sendable {
    private let target: NATSTarget
    private let kept: KeptNATSConnection

    init(servers: [NATSServerURL], stream: String, prefix: String, credentials: NATSCredentials?, tls: TLSContext?, timeout: Duration, duplicateWindow: Double) {
        target = NATSTarget(servers: servers, stream: stream, prefix: prefix, credentials: credentials, tls: tls, timeout: timeout,
                            duplicateWindow: duplicateWindow)
        kept = KeptNATSConnection(target, name: "vigil")
    }

    var transport: String? {
        let names = target.servers.map(\.description).joined(separator: ", ")
        return "NATS JetStream \(names), stream \(target.stream)" + (target.tls.map { ", tls: \($0.verification)" } ?? "")
    }

    /// The subject travels with the payload: `SUBJECT\n` then the alert's JSON.
    func payload(_ alert: Alert) -> [UInt8] {
        Array((NATSSubject.alert(prefix: target.prefix, host: alert.hostname, priority: alert.priority, rule: alert.rule) + "\n" + alert.json).utf8)
    }

    func send(_ payload: [UInt8], id: String) throws(ActionFailure) -> String {
        guard let newline = payload.firstIndex(of: 0x0a) else { throw .permanent("NATS: a payload without its subject") }
        let subject = String(decoding: payload[..<newline], as: UTF8.self)
        let body = Array(payload[(newline + 1)...])
        return try kept.withConnection { connection throws(ActionFailure) in
            // A message over the server's limit makes it close the connection: retrying would
            // hold every later alert behind this one for good.
            guard body.count + 64 + id.utf8.count <= connection.maxPayload else {
                throw ActionFailure.permanent("NATS \(connection.peer): the alert (\(body.count) bytes) is larger than the server's max_payload (\(connection.maxPayload))")
            }
            let answer = try connection.request(subject, headers: [("Nats-Msg-Id", id)], payload: body)
            let ack = (try? JSONSerialization.jsonObject(with: Data(answer.payload))) as? [String: Any] ?? [:]
            if let error = ack["error"] as? [String: Any] {
                let code = error["code"] as? Int ?? 0
                throw ActionFailure(message: "NATS JetStream: \(error["description"] as? String ?? "error") (\(code))", retryable: code >= 500 || code == 0)
            }
            guard let sequence = ack["seq"] as? Int else {
                throw ActionFailure.transient("NATS JetStream: not an ack: \(String(decoding: answer.payload.prefix(200), as: UTF8.self))")
            }
            let duplicate = ack["duplicate"] as? Bool ?? false
            return "stream \(ack["stream"] as? String ?? target.stream) seq \(sequence)\(duplicate ? " (duplicate)" : "")"
        }
    }

    /// A publisher of events with this action's servers, credentials, TLS and stream.
    func eventPublisher(host: String) -> NATSEventPublisher {
        NATSEventPublisher(target: target, host: host)
    }
}

/// Where and how a `nats` action connects: its servers (tried in turn), credentials, TLS,
/// timeout, and the stream it makes.
struct NATSTarget {
    var servers: [NATSServerURL]
    var stream: String
    var prefix: String
    var credentials: NATSCredentials?
    var tls: TLSContext?
    var timeout: Duration
    var duplicateWindow: Double

    /// A connection to the next server (round robin on `turn`), named `name` in CONNECT, on a
    /// server with JetStream, the stream made.
    func connect(turn: inout Int, name: String) throws(ActionFailure) -> NATSConnection {
        let url = servers[turn % servers.count]
        turn += 1
        let made = try NATSConnection(url, tls: tls, credentials: credentials, timeout: timeout, name: name)
        guard made.jetStream else { throw .transient("NATS \(made.peer): JetStream is not enabled on this server (nats-server -js)") }
        try made.ensureStream(stream, prefix: prefix, duplicateWindow: duplicateWindow)
        return made
    }
}

/// One connection to a `NATSTarget`, kept across uses: made on first use (to the next server in
/// turn, named `name` in CONNECT, the stream made), dropped on any failure. A failure on a
/// reused connection worth a retry is tried once more on a fresh one: the server may have
/// closed it while it was idle.
final class KeptNATSConnection: @unchecked Sendable {
    // `connection` and `nextServer` are only touched under `lock`.
    private let target: NATSTarget
    private let name: String
    private let lock = NSLock()
    private var connection: NATSConnection?
    private var nextServer = 0

    init(_ target: NATSTarget, name: String) {
        self.target = target
        self.name = name
    }

    /// Runs `body` on the kept connection (one caller at a time), as described above.
    func withConnection<T>(_ body: (NATSConnection) throws(ActionFailure) -> T) throws(ActionFailure) -> T {
        lock.lock()
        defer { lock.unlock() }
        let reused = connection != nil
        do {
            return try attempt(body)
        } catch where reused && error.retryable {
            return try attempt(body)
        }
    }

    private func attempt<T>(_ body: (NATSConnection) throws(ActionFailure) -> T) throws(ActionFailure) -> T {
        do throws(ActionFailure) {
            let made: NATSConnection
            if let connection {
                made = connection
            } else {
                made = try target.connect(turn: &nextServer, name: name)
                connection = made
            }
            return try body(made)
        } catch {
            connection = nil
            throw error
        }
    }
}

extension NATSConnection {
    /// `$JS.API.STREAM.CREATE.NAME` with subjects `PREFIX.>`, file storage and the duplicate
    /// window; a stream of that name already there is used as it is.
    func ensureStream(_ streamName: String, prefix: String, duplicateWindow: Double) throws(ActionFailure) {
        let config: [String: Any] = [
            "name": streamName, "subjects": ["\(prefix).>"], "storage": "file", "retention": "limits",
            "duplicate_window": Int64(duplicateWindow * 1e9), "num_replicas": 1,
        ]
        let body = (try? JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])).map { [UInt8]($0) } ?? []
        let answer = try request("$JS.API.STREAM.CREATE.\(streamName)", payload: body)
        let reply = (try? JSONSerialization.jsonObject(with: Data(answer.payload))) as? [String: Any] ?? [:]
        guard let error = reply["error"] as? [String: Any] else { return }
        let code = error["err_code"] as? Int ?? 0
        if code == 10058 { return }  // stream name already in use (with another configuration): publish to it
        throw .transient("NATS JetStream: cannot create stream \(streamName): \(error["description"] as? String ?? "error") (\(code))")
    }

    /// Publishes `messages` with plain PUBs (no reply, no ack: a JetStream stream whose
    /// subjects take them stores them all the same), then one PING; returns once its PONG came,
    /// so the server has processed every PUB before it. Throws on `-ERR` or a lost connection.
    func publishFlushed(_ messages: [(subject: String, payload: [UInt8])]) throws(ActionFailure) {
        var bytes: [UInt8] = []
        for message in messages {
            bytes += Array("PUB \(message.subject) \(message.payload.count)\r\n".utf8)
            bytes += message.payload
            bytes += [0x0d, 0x0a]
        }
        bytes += Array("PING\r\n".utf8)
        try send(bytes)
        while true {
            switch try next() {
            case .pong: return
            case .err(let text): throw .transient("NATS \(peer): \(text)")
            default: continue
            }
        }
    }
}

/// `nats` with `events:`: the events an `EventTap` selected, published on
/// `PREFIX.HOST.events.KIND` with the event's JSON (as `vigil events -o json` prints it), a
/// batch at a time (PUBs, then one PING as the flush), on a connection of its own (the alerts
/// keep theirs). The stream (subjects `PREFIX.>`) stores them. Not spooled: a batch the server
/// does not take is counted as failed and lost. Used by the tap's thread only.
final class NATSEventPublisher: Sendable {
    private let target: NATSTarget
    private let host: String
    private let kept: KeptNATSConnection

    init(target: NATSTarget, host: String) {
        self.target = target
        self.host = NATSSubject.token(host)
        kept = KeptNATSConnection(target, name: "vigil events")
    }

    /// The subject of `event`: `PREFIX.HOST.events.KIND`.
    func subject(_ event: Event) -> String { "\(target.prefix).\(host).events.\(NATSSubject.token(event.kind.rawValue))" }

    /// `PREFIX.HOST.events.*`, for the log.
    var subjectPattern: String { "\(target.prefix).\(host).events.*" }

    /// Publishes one batch; an event larger than the server's max_payload is counted as failed.
    /// A failure on a reused connection (the server may have closed it) is tried once more on
    /// a fresh one.
    func publish(_ events: [Event]) -> (sent: Int, failed: Int, error: String?) {
        var line: [UInt8] = []
        let messages = events.map { event -> (subject: String, payload: [UInt8]) in
            line.removeAll(keepingCapacity: true)
            EventFormat.appendJSON(event, to: &line)
            return (subject(event), line)
        }
        do {
            return try kept.withConnection { connection throws(ActionFailure) in
                    let limit = connection.maxPayload
                let fitting = messages.filter { $0.payload.count <= limit }
                try connection.publishFlushed(fitting)
                let tooLarge = messages.count - fitting.count
                return (fitting.count, tooLarge, tooLarge > 0 ? "NATS \(connection.peer): \(tooLarge) event(s) larger than the server's max_payload (\(limit))" : nil)
            }
        } catch {
            return (0, messages.count, error.message)
        }
    }
}

/// A live subscription for `vigil fleet alerts`: plain SUBs on the alert subjects (core NATS,
/// so it sees what is published from now on, not the stream's history).
public final class NATSAlertSubscriber: @unchecked Sendable {
    // One thread reads it (`next`); nothing else touches the connection.
    private let connection: NATSConnection
    /// Alerts that arrived before the PONG that confirmed the subscriptions.
    private var early: [(subject: String, json: [UInt8])] = []

    /// Connects to `url` and subscribes to `PREFIX.HOST.alerts.PRIORITY.>` for each priority at
    /// least `minPriority` (every priority when nil), HOST `*` when nil.
    /// - Throws: a message naming the server and the reason.
    public init(url: String, prefix: String = "vigil", host: String?, minPriority: Priority?, credentials: NATSCredentials?, caFile: String?, insecureSkipVerify: Bool) throws {
        let server: NATSServerURL
        do { server = try NATSServerURL(url) } catch { throw ActionConfigError(path: "server", message: error.message) }
        var tls: TLSContext?
        do {
            if server.tls || caFile != nil || insecureSkipVerify {
                tls = try TLSContext(TLSVerification(caFile: caFile, skipVerify: insecureSkipVerify))
            }
        } catch {
            throw ActionConfigError(path: caFile != nil ? "ca_file" : "server", message: error.message)
        }
        do throws(ActionFailure) {
            connection = try NATSConnection(server, tls: tls, credentials: credentials, timeout: .seconds(30), name: "vigil fleet")
            let hostToken = host.map(NATSSubject.token) ?? "*"
            let priorities = Priority.allCases.filter { priority in minPriority.map { priority <= $0 } ?? true }
            for (index, priority) in priorities.enumerated() {
                try connection.subscribe("\(prefix).\(hostToken).alerts.\(priority.rawValue.lowercased()).>", sid: String(index + 1))
            }
            // The server answers a PING after it has processed the SUBs before it: once the
            // PONG is here, every alert published from now on reaches this subscriber.
            try connection.send(Array("PING\r\n".utf8))
            while true {
                switch try connection.next() {
                case .pong: return
                case .err(let text): throw ActionFailure.permanent("NATS \(connection.peer): \(text)")
                case .msg(let subject, _, _, _, let payload): early.append((subject, payload))
                default: continue
                }
            }
        } catch {
            throw ActionConfigError(path: "server", message: error.message)
        }
    }

    /// Waits for the next alert and returns its subject and JSON; nil when the connection ended.
    /// A receive timeout sends a PING; two without an answer end the subscription.
    public func next() -> (subject: String, json: [UInt8])? {
        if !early.isEmpty { return early.removeFirst() }
        var unanswered = 0
        while true {
            do {
                switch try connection.next() {
                case .msg(let subject, _, _, _, let payload): return (subject, payload)
                case .pong: unanswered = 0
                case .err: return nil
                default: continue
                }
            } catch where error.message.hasSuffix("timed out") && unanswered < 2 {
                unanswered += 1
                do { try connection.send(Array("PING\r\n".utf8)) } catch { return nil }
            } catch {
                return nil
            }
        }
    }
}

extension NATSConnection {
    /// One message a JetStream stream holds.
    struct StoredMessage {
        var sequence: Int
        var subject: String
        /// The header block as text (`NATS/1.0\r\nNats-Msg-Id: ...`).
        var headers: String
        var data: [UInt8]
    }

    /// Every message `stream` holds, in order (`$JS.API.STREAM.INFO`, then
    /// `$JS.API.STREAM.MSG.GET` per sequence); for tests and inspection.
    func storedMessages(_ stream: String) throws(ActionFailure) -> [StoredMessage] {
        let info = try request("$JS.API.STREAM.INFO.\(stream)", payload: [])
        let object = (try? JSONSerialization.jsonObject(with: Data(info.payload))) as? [String: Any] ?? [:]
        guard let state = object["state"] as? [String: Any], let first = state["first_seq"] as? Int, let last = state["last_seq"] as? Int else {
            throw .permanent("NATS: no stream \(stream): \(String(decoding: info.payload.prefix(300), as: UTF8.self))")
        }
        var messages: [StoredMessage] = []
        guard last >= first, last > 0 else { return messages }
        for sequence in first...last {
            let answer = try request("$JS.API.STREAM.MSG.GET.\(stream)", payload: Array("{\"seq\":\(sequence)}".utf8))
            let reply = (try? JSONSerialization.jsonObject(with: Data(answer.payload))) as? [String: Any] ?? [:]
            guard let message = reply["message"] as? [String: Any] else { continue }  // deleted
            let headers = (message["hdrs"] as? String).flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) } ?? ""
            let data = (message["data"] as? String).flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) } ?? []
            messages.append(StoredMessage(sequence: sequence, subject: message["subject"] as? String ?? "", headers: headers, data: data))
        }
        return messages
    }
}
