#if canImport(Glibc)
import Glibc
#endif
import VigilRules

/// Where syslog messages go: `/dev/log` or `unix:///dev/log`, `udp://host:port`, `tcp://host:port`.
enum SyslogAddress: Sendable, Equatable {
    case unix(String)
    case udp(HostPort)
    case tcp(HostPort)

    init(_ text: String) throws(AddressError) {
        if text.hasPrefix("/") {
            self = .unix(text)
        } else if text.hasPrefix("unix://") {
            let path = String(text.dropFirst("unix://".count))
            guard path.hasPrefix("/") else { throw AddressError(message: "'\(text)': the socket path must be absolute") }
            self = .unix(path)
        } else if text.hasPrefix("udp://") {
            self = .udp(try HostPort(String(text.dropFirst("udp://".count)), defaultPort: 514))
        } else if text.hasPrefix("tcp://") {
            self = .tcp(try HostPort(String(text.dropFirst("tcp://".count)), defaultPort: 601))
        } else {
            throw AddressError(message: "'\(text)': use /dev/log, unix:///PATH, udp://host:port or tcp://host:port")
        }
    }
}

/// Syslog facilities by name (RFC 5424 table 1).
enum SyslogFacility {
    static let names = [
        "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7, "uucp": 8, "cron": 9,
        "authpriv": 10, "ftp": 11, "local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21,
        "local6": 22, "local7": 23,
    ]

    /// The facility number for a name or a number 0-23.
    static func number(_ text: String) -> Int? {
        if let value = names[text.lowercased()] { return value }
        if let value = Int(text), (0...23).contains(value) { return value }
        return nil
    }
}

/// `syslog`: one RFC 5424 message per alert:
///
///     <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID alert [vigil@32473 rule=".." priority=".." source=".." tags=".." id=".."] BOM MSG
///
/// PRI is facility * 8 + the severity of the priority (emergency 0 ... debug 7); TIMESTAMP is
/// UTC with microseconds; MSG is the alert's text or JSON, UTF-8 after a BOM. 32473 is the
/// enterprise number RFC 5612 reserves for examples (Vigil has none of its own). Datagram
/// transports send one message per datagram; TCP uses octet-counting framing (RFC 6587
/// `LEN SP MSG`) on a connection kept open and reopened after an error.
final class SyslogAction: SpooledHandler, @unchecked Sendable {
    // One worker thread uses an action, so the socket needs no lock.
    let address: SyslogAddress
    let facility: Int
    let appName: String
    let style: AlertStyle
    let timeout: Duration
    private var socket: Socket?

    init(address: SyslogAddress, facility: Int, appName: String, style: AlertStyle, timeout: Duration) {
        self.address = address
        self.facility = facility
        self.appName = appName
        self.style = style
        self.timeout = timeout
    }

    /// Over UDP or TCP; not to a local socket (syslogd on the same host).
    var spools: Bool {
        if case .unix = address { return false }
        return true
    }

    func payload(_ alert: Alert) -> [UInt8] {
        let limit: Int? = if case .tcp = address { nil } else { Self.maxDatagramBytes }
        return Array(Self.line(alert, facility: facility, appName: appName, style: style, pid: getpid(), limit: limit).utf8)
    }

    func send(_ payload: [UInt8], id: String) throws(ActionFailure) -> String {
        var message = payload
        if case .tcp = address { message = Array("\(message.count) ".utf8) + message }
        do {
            try connected().send(message)
        } catch {
            socket = nil  // reconnect next time (syslog restarted, connection reset)
            if case .tcp = address { throw error }
            throw .permanent(error.message)  // datagrams are not retried
        }
        return "sent"
    }

    private func connected() throws(ActionFailure) -> Socket {
        if let socket { return socket }
        let opened: Socket
        switch address {
        case .unix(let path): opened = try Socket.unixDatagram(path, timeout: timeout)
        case .udp(let server): opened = try Socket.udp(server, timeout: timeout)
        case .tcp(let server): opened = try Socket.tcp(server, timeout: timeout)
        }
        socket = opened
        return opened
    }

    /// The largest message sent as one datagram (UDP, unix sockets): under IPv4's UDP payload
    /// limit (65507). An alert can be larger (4 KiB of arguments that are not UTF-8 take 24 KiB
    /// as JSON, and several fields carry them): its MSG is then cut at a character boundary, and
    /// the structured data says `truncated="BYTES"` (MSG's whole length), so a crafted command
    /// line cannot make an alert undeliverable. TCP sends messages whole.
    static let maxDatagramBytes = 65_000

    /// The RFC 5424 message of `alert` (no framing), at most `limit` bytes when given.
    static func line(_ alert: Alert, facility: Int, appName: String, style: AlertStyle, pid: Int32, limit: Int? = nil) -> String {
        let severity = Priority.allCases.firstIndex(of: alert.priority) ?? 7
        let iso = alert.time  // YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ; RFC 5424 allows 6 fraction digits
        let timestamp = String(iso.prefix(26)) + "Z"
        var data = "[vigil@32473 rule=\"\(sdEscaped(alert.rule))\" priority=\"\(alert.priority.rawValue)\""
        data += " source=\"\(sdEscaped(alert.source))\" tags=\"\(sdEscaped(alert.tags.joined(separator: ",")))\""
        if !alert.enforcement.isEmpty { data += " enforcement=\"\(sdEscaped(alert.enforcementSummary))\"" }
        if alert.suppressed > 0 { data += " suppressed=\"\(alert.suppressed)\"" }
        data += " id=\"\(sdEscaped(alert.id))\""
        var text = style == .json ? alert.json : "\(alert.rule): \(alert.output)"
        let head = "<\(facility * 8 + severity)>1 \(timestamp) \(header(alert.hostname, 255)) \(header(appName, 48)) \(pid) alert "
        if let limit, head.utf8.count + data.utf8.count + 5 + text.utf8.count > limit {
            data += " truncated=\"\(text.utf8.count)\""
            var room = limit - head.utf8.count - data.utf8.count - 5  // "] " and the BOM
            var kept = String.UnicodeScalarView()
            for scalar in text.unicodeScalars {
                room -= String(scalar).utf8.count
                if room < 0 { break }
                kept.append(scalar)
            }
            text = String(kept)
        }
        return head + data + "] \u{FEFF}" + text
    }

    /// A header field: printable ASCII without spaces, at most `limit` characters, or `-`.
    static func header(_ text: String, _ limit: Int) -> String {
        let kept = String(decoding: text.utf8.filter { $0 > 32 && $0 < 127 }.prefix(limit), as: UTF8.self)
        return kept.isEmpty ? "-" : kept
    }

    /// A PARAM-VALUE: `"`, `\` and `]` escaped with a backslash.
    static func sdEscaped(_ text: String) -> String {
        var out = ""
        for character in text {
            if character == "\"" || character == "\\" || character == "]" { out.append("\\") }
            out.append(character)
        }
        return out
    }
}
