import Foundation

/// A small SMTP client (RFC 5321) over a plain TCP connection: EHLO, MAIL FROM, RCPT TO per
/// recipient, DATA, QUIT. No TLS and no AUTH: relay through a local MTA for those.
struct SMTPClient: Sendable {
    var server: HostPort
    var helo: String
    var timeout: Duration

    /// Sends one message. A 4xx reply or a connection problem is worth a retry; 5xx is not.
    func send(from: String, to recipients: [String], message: String) throws(ActionFailure) {
        let socket = try Socket.tcp(server, timeout: timeout)
        var reader = ReplyReader(socket: socket)
        try reader.expect(220, after: "connect")
        try command("EHLO \(helo)", expect: 250, socket, &reader)
        let eightBit = reader.lastLines.contains { $0.uppercased().hasPrefix("8BITMIME") }
        try command("MAIL FROM:<\(from)>\(eightBit ? " BODY=8BITMIME" : "")", expect: 250, socket, &reader)
        for recipient in recipients {
            try command("RCPT TO:<\(recipient)>", expect: 250, socket, &reader, alsoAccept: 251)
        }
        try command("DATA", expect: 354, socket, &reader)
        try socket.send(Array((Self.dotStuffed(message) + ".\r\n").utf8))
        try reader.expect(250, after: "end of DATA")
        try? command("QUIT", expect: 221, socket, &reader)
    }

    private func command(
        _ line: String, expect code: Int, _ socket: Socket, _ reader: inout ReplyReader, alsoAccept: Int? = nil
    ) throws(ActionFailure) {
        try socket.send(Array((line + "\r\n").utf8))
        try reader.expect(code, after: line.components(separatedBy: ":").first ?? line, alsoAccept: alsoAccept)
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
        let socket: Socket
        var buffer: [UInt8] = []
        /// The text of the last reply's lines (after the code), for EHLO's extensions.
        var lastLines: [String] = []

        mutating func expect(_ code: Int, after what: String, alsoAccept: Int? = nil) throws(ActionFailure) {
            lastLines = []
            while true {
                let line = try nextLine()
                guard line.count >= 3, let value = Int(line.prefix(3)) else {
                    throw .transient("SMTP \(socket.peer): unreadable reply '\(line.prefix(80))' after \(what)")
                }
                lastLines.append(String(line.dropFirst(4)))
                if line.count > 3, line[line.index(line.startIndex, offsetBy: 3)] == "-" { continue }
                guard value == code || value == alsoAccept else {
                    let message = "SMTP \(socket.peer): \(what): \(line.prefix(200))"
                    throw ActionFailure(message: message, retryable: value < 500)
                }
                return
            }
        }

        private mutating func nextLine() throws(ActionFailure) -> String {
            while true {
                if let end = buffer.firstIndex(of: 0x0a) {
                    let line = buffer[..<end].last == 0x0d ? buffer[..<(end - 1)] : buffer[..<end]
                    let text = String(decoding: line, as: UTF8.self)
                    buffer.removeFirst(end + 1)
                    return text
                }
                let bytes = try socket.receive()
                guard !bytes.isEmpty else { throw .transient("SMTP \(socket.peer): connection closed") }
                buffer += bytes
                if buffer.count > 64 * 1024 { throw .transient("SMTP \(socket.peer): reply line too long") }
            }
        }
    }
}

/// `email`: one mail per alert. Subject from a template (`{rule}`, `{priority}`, `{hostname}`;
/// default `[vigil] {priority} {rule}`), encoded per RFC 2047 when not ASCII; the body is the
/// alert's text, then its JSON.
struct EmailAction: ActionHandler {
    let client: SMTPClient
    let from: String
    let to: [String]
    let subject: String

    func perform(_ alert: Alert) throws(ActionFailure) -> String {
        try client.send(from: from, to: to, message: Self.message(alert, from: from, to: to, subject: subject))
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
            "Date: \(formatter.string(from: Date()))", "Message-ID: <\(UUID().uuidString.lowercased())@\(SyslogAction.header(alert.hostname, 200))>",
            "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit",
            "X-Vigil-Rule: \(encodedHeader(alert.rule))", "X-Vigil-Priority: \(alert.priority.rawValue)",
        ]
        return headers.joined(separator: "\n") + "\n\n" + alert.text + "\n\n" + alert.json + "\n"
    }

    /// Header text without line breaks; an RFC 2047 `=?UTF-8?B?...?=` word when not printable ASCII.
    static func encodedHeader(_ text: String) -> String {
        let flat = text.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " ")
        if flat.utf8.allSatisfy({ $0 >= 32 && $0 < 127 }) { return flat }
        return "=?UTF-8?B?\(Data(flat.utf8).base64EncodedString())?="
    }
}
