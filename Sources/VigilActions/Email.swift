import Foundation
import VigilEvents

/// How the email action protects its SMTP connection (`tls`). See docs/actions.md.
public enum SMTPTLSMode: String, Sendable, Codable, CaseIterable {
    /// Plain SMTP (default port 25). Credentials are refused in this mode.
    case none
    /// Plain connect, then STARTTLS (RFC 3207), required: a server that does not offer it is
    /// a failure, never a silent fall-back to plain text (default port 587).
    case starttls
    /// TLS from the first byte (RFC 8314 "submissions", default port 465).
    case implicit

    /// The port used when `server` names none.
    var defaultPort: UInt16 {
        switch self {
        case .none: 25
        case .starttls: 587
        case .implicit: 465
        }
    }
}

/// A user name and password for SMTP AUTH. Never printed: its description and mirror hide the
/// password.
struct SMTPCredentials: Sendable, CustomStringConvertible, CustomReflectable {
    var username: String
    var password: String

    var description: String { "\(username) (password hidden)" }
    var customMirror: Mirror { Mirror(self, children: ["username": username]) }
}

/// A small SMTP client (RFC 5321): EHLO, optionally STARTTLS (RFC 3207) or TLS from the start,
/// AUTH PLAIN or LOGIN (RFC 4954) only inside TLS, MAIL FROM, RCPT TO per recipient, DATA, QUIT.
struct SMTPClient: Sendable {
    var server: HostPort
    var helo: String
    var timeout: Duration
    var mode: SMTPTLSMode = .none
    /// The TLS settings for `starttls` and `implicit`.
    var tls: TLSContext?
    /// AUTH after TLS; refused (permanent failure) on a plain connection.
    var credentials: SMTPCredentials?

    /// `SMTP host:port, tls: MODE[, certificate ...][, AUTH as USER]` for status and the log.
    var transport: String {
        var text = "SMTP \(server.host):\(server.port), tls: \(mode.rawValue)"
        if mode != .none { text += ", \(tls?.verification.description ?? "no TLS context")" }
        if let credentials { text += ", AUTH as \(credentials.username)" }
        return text
    }

    /// Sends one message. A 4xx reply or a connection problem is worth a retry; 5xx is not.
    func send(from: String, to recipients: [String], message: String) throws(ActionFailure) {
        let socket = try Socket.tcp(server, timeout: timeout)
        var stream: any ByteStream = socket
        if mode == .implicit { stream = try secure(socket) }
        var reader = ReplyReader(stream: stream)
        try reader.expect(220, after: "connect")
        try command("EHLO \(helo)", expect: 250, stream, &reader)
        if mode == .starttls {
            guard reader.offers("STARTTLS") else {
                throw .permanent("SMTP \(stream.peer): the server does not offer STARTTLS (tls: starttls); nothing sent")
            }
            try command("STARTTLS", expect: 220, stream, &reader)
            guard reader.isDrained else { throw .permanent("SMTP \(stream.peer): data after the STARTTLS reply (refused: it could be injected)") }
            stream = try secure(socket)
            reader = ReplyReader(stream: stream)
            try command("EHLO \(helo)", expect: 250, stream, &reader)
        }
        let eightBit = reader.offers("8BITMIME")
        if let credentials { try authenticate(credentials, stream, &reader) }
        try command("MAIL FROM:<\(from)>\(eightBit ? " BODY=8BITMIME" : "")", expect: 250, stream, &reader)
        for recipient in recipients {
            try command("RCPT TO:<\(recipient)>", expect: 250, stream, &reader, alsoAccept: 251)
        }
        try command("DATA", expect: 354, stream, &reader)
        try stream.send(Array((Self.dotStuffed(message) + ".\r\n").utf8))
        try reader.expect(250, after: "end of DATA")
        try? command("QUIT", expect: 221, stream, &reader)
    }

    private func secure(_ socket: Socket) throws(ActionFailure) -> TLSStream {
        guard let tls else { throw .permanent("SMTP \(socket.peer): tls: \(mode.rawValue) without a TLS context") }
        return try tls.connect(socket, host: server.host)
    }

    /// AUTH PLAIN, else AUTH LOGIN, as the server offers them; only over TLS.
    private func authenticate(_ credentials: SMTPCredentials, _ stream: any ByteStream, _ reader: inout ReplyReader) throws(ActionFailure) {
        guard stream is TLSStream else { throw .permanent("SMTP \(stream.peer): refusing to send credentials without TLS") }
        let offered = reader.authMechanisms
        let base64 = { (text: String) in Data(text.utf8).base64EncodedString() }
        if offered.contains("PLAIN") {
            let token = base64("\u{0}\(credentials.username)\u{0}\(credentials.password)")
            try command("AUTH PLAIN \(token)", expect: 235, stream, &reader, what: "AUTH PLAIN")
        } else if offered.contains("LOGIN") {
            try command("AUTH LOGIN", expect: 334, stream, &reader, what: "AUTH LOGIN")
            try command(base64(credentials.username), expect: 334, stream, &reader, what: "AUTH LOGIN user name")
            try command(base64(credentials.password), expect: 235, stream, &reader, what: "AUTH LOGIN password")
        } else {
            let list = offered.isEmpty ? "none" : offered.joined(separator: " ")
            throw .permanent("SMTP \(stream.peer): the server offers no AUTH PLAIN or LOGIN (offers: \(list)); nothing sent")
        }
    }

    private func command(
        _ line: String, expect code: Int, _ stream: any ByteStream, _ reader: inout ReplyReader, alsoAccept: Int? = nil,
        what: String? = nil
    ) throws(ActionFailure) {
        try stream.send(Array((line + "\r\n").utf8))
        try reader.expect(code, after: what ?? line.components(separatedBy: ":").first ?? line, alsoAccept: alsoAccept)
    }

    /// CRLF line ends, and a `.` doubled at the start of a line (RFC 5321 section 4.5.2); ends with CRLF.
    static func dotStuffed(_ message: String) -> String {
        var lines = message.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        return lines.map { $0.hasPrefix(".") ? "." + $0 : $0 }.joined(separator: "\r\n") + "\r\n"
    }

    /// `local@domain` with no spaces, brackets or line breaks (enough to refuse typos and injection).
    static func isPlausibleAddress(_ address: String) -> Bool {
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && !parts[1].isEmpty
            && !address.contains { $0.isWhitespace || $0 == "<" || $0 == ">" || $0.asciiValue.map { $0 < 32 } ?? false }
    }

    /// Reads SMTP replies: `CODE-text` lines continue, `CODE text` ends a reply.
    struct ReplyReader {
        let stream: any ByteStream
        var buffer: [UInt8] = []
        /// The text of the last reply's lines (after the code), for EHLO's extensions.
        var lastLines: [String] = []

        /// Whether the last reply (EHLO's) lists the extension `keyword`.
        func offers(_ keyword: String) -> Bool {
            lastLines.contains { $0.uppercased() == keyword || $0.uppercased().hasPrefix(keyword + " ") }
        }

        /// The SASL mechanisms of EHLO's `AUTH` line (or the older `AUTH=` form), uppercased.
        var authMechanisms: [String] {
            let words = lastLines.map { $0.uppercased() }.filter { $0.hasPrefix("AUTH ") || $0.hasPrefix("AUTH=") }
            return words.flatMap { $0.dropFirst(5).split(separator: " ").map(String.init) }
        }

        /// Nothing received beyond the last reply.
        var isDrained: Bool { buffer.isEmpty }

        mutating func expect(_ code: Int, after what: String, alsoAccept: Int? = nil) throws(ActionFailure) {
            lastLines = []
            while true {
                let line = try nextLine()
                guard line.count >= 3, let value = Int(line.prefix(3)) else {
                    throw .transient("SMTP \(stream.peer): unreadable reply '\(line.prefix(80))' after \(what)")
                }
                lastLines.append(String(line.dropFirst(4)))
                if line.count > 3, line[line.index(line.startIndex, offsetBy: 3)] == "-" { continue }
                guard value == code || value == alsoAccept else {
                    let message = "SMTP \(stream.peer): \(what): \(line.prefix(200))"
                    throw ActionFailure(message: message, retryable: value < 500)
                }
                return
            }
        }

        private mutating func nextLine() throws(ActionFailure) -> String {
            while true {
                if let end = buffer.firstIndex(of: 0x0a) {
                    let line = buffer[..<end].last == 0x0d ? buffer[..<(end - 1)] : buffer[..<end]
                    let text = ByteString(line).escapedForTerminal  // a server's reply reaches the log and the status
                    buffer.removeFirst(end + 1)
                    return text
                }
                let bytes = try stream.receive()
                guard !bytes.isEmpty else { throw .transient("SMTP \(stream.peer): connection closed") }
                buffer += bytes
                if buffer.count > 64 * 1024 { throw .transient("SMTP \(stream.peer): reply line too long") }
            }
        }
    }
}

/// `email`: one mail per alert. Subject from a template (`{rule}`, `{priority}`, `{hostname}`;
/// default `[vigil] {priority} {rule}`), encoded per RFC 2047 when not ASCII; the body is the
/// alert's text, then its JSON, quoted-printable (`quotedPrintable`). The alert's id is in
/// `X-Vigil-Alert-Id` and in `Message-ID` (`<ID@host>`), so a redelivered mail is recognisable.
struct EmailAction: SpooledHandler {
    let client: SMTPClient
    let from: String
    let to: [String]
    let subject: String

    var transport: String? { client.transport }

    func payload(_ alert: Alert) -> [UInt8] { Array(Self.message(alert, from: from, to: to, subject: subject).utf8) }

    func send(_ payload: [UInt8], id: String) throws(ActionFailure) -> String {
        try client.send(from: from, to: to, message: String(decoding: payload, as: UTF8.self))
        return "mailed to \(to.count) recipient\(to.count == 1 ? "" : "s")"
    }

    static func message(_ alert: Alert, from: String, to: [String], subject template: String) -> String {
        let subject = template.replacingOccurrences(of: "{rule}", with: alert.rule)
            .replacingOccurrences(of: "{priority}", with: alert.priority.rawValue)
            .replacingOccurrences(of: "{hostname}", with: alert.hostname)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        let headers = [
            "From: \(from)", "To: \(to.joined(separator: ", "))", "Subject: \(encodedHeader(subject))",
            "Date: \(formatter.string(from: Date()))", "Message-ID: <\(alert.id)@\(SyslogAction.header(alert.hostname, 200))>", "X-Vigil-Alert-Id: \(alert.id)",
            "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable",
            "X-Vigil-Rule: \(encodedHeader(alert.rule))", "X-Vigil-Priority: \(alert.priority.rawValue)",
        ]
        return headers.joined(separator: "\n") + "\n\n" + quotedPrintable(alert.text + "\n\n" + alert.json + "\n")
    }

    /// Quoted-printable (RFC 2045 section 6.7): whatever an alert holds (a 4 KiB command line,
    /// bytes beyond ASCII), no line is longer than 76 characters (SMTP allows 998, RFC 5321
    /// 4.5.3.1.6) and every byte is printable ASCII. `=`, bytes beyond ASCII, control bytes and
    /// a space or tab ending a line are written =XX; long lines end in a soft break `=`.
    static func quotedPrintable(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count * 3 / 2)
        for (index, line) in text.utf8.split(separator: 0x0a, omittingEmptySubsequences: false).enumerated() {
            if index > 0 { out.append(0x0a) }
            var width = 0
            for (position, byte) in line.enumerated() {
                let last = position == line.count - 1
                let plain = (byte >= 33 && byte <= 126 && byte != 0x3d) || ((byte == 0x20 || byte == 0x09) && !last)
                let size = plain ? 1 : 3
                if width + size > 75 {  // 75 and the soft break's `=`
                    out += [0x3d, 0x0a]
                    width = 0
                }
                if plain { out.append(byte) } else { out += [0x3d, hex[Int(byte >> 4)], hex[Int(byte & 0xf)]] }
                width += size
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Header text without line breaks; an RFC 2047 `=?UTF-8?B?...?=` word when not printable ASCII.
    static func encodedHeader(_ text: String) -> String {
        let flat = text.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        if flat.utf8.allSatisfy({ $0 >= 32 && $0 < 127 }) { return flat }
        return "=?UTF-8?B?\(Data(flat.utf8).base64EncodedString())?="
    }
}
