#if canImport(Glibc)
import Glibc
#endif
import Foundation
import VigilContainers

/// Why one attempt of an action failed, and whether trying again may help.
struct ActionFailure: Error, Sendable, CustomStringConvertible {
    var message: String
    /// Network trouble, a 5xx/429 answer, an SMTP 4xx reply: worth a retry.
    var retryable: Bool
    var description: String { message }

    static func transient(_ message: String) -> ActionFailure { ActionFailure(message: message, retryable: true) }
    static func permanent(_ message: String) -> ActionFailure { ActionFailure(message: message, retryable: false) }
}

/// A configuration value that does not parse, with the reason.
struct AddressError: Error {
    var message: String
}

/// `host:port`, `[v6]:port` or `host` (with a default port).
struct HostPort: Sendable, Equatable {
    var host: String
    var port: UInt16

    init(_ text: String, defaultPort: UInt16?) throws(AddressError) {
        var host = Substring(text)
        var portText: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { throw AddressError(message: "'\(text)': unclosed '['") }
            let rest = host[host.index(after: close)...]
            host = host[host.index(after: host.startIndex)..<close]
            if rest.hasPrefix(":") { portText = rest.dropFirst() } else if !rest.isEmpty { throw AddressError(message: "'\(text)': text after ']'") }
        } else if let colon = host.lastIndex(of: ":") {
            portText = host[host.index(after: colon)...]
            host = host[..<colon]
        }
        guard !host.isEmpty else { throw AddressError(message: "'\(text)' has no host") }
        if let portText {
            guard let port = UInt16(portText), port > 0 else { throw AddressError(message: "'\(text)': bad port '\(portText)'") }
            self.port = port
        } else if let defaultPort {
            self.port = defaultPort
        } else {
            throw AddressError(message: "'\(text)' has no port (host:port)")
        }
        self.host = String(host)
    }
}

/// An `http://host[:port]/path` or `https://host[:port]/path` URL.
struct HTTPEndpoint: Sendable, Equatable {
    var server: HostPort
    /// The request target: path and query.
    var target: String
    /// The Host header.
    var hostHeader: String
    /// https: the connection is TLS (port 443 by default).
    var secure: Bool

    init(_ url: String) throws(AddressError) {
        let lowered = url.lowercased()
        guard lowered.hasPrefix("http://") || lowered.hasPrefix("https://") else {
            throw AddressError(message: "'\(url)' is not an http:// or https:// URL")
        }
        secure = lowered.hasPrefix("https://")
        let rest = url.dropFirst(secure ? "https://".count : "http://".count)
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        guard !authority.contains("@") else { throw AddressError(message: "'\(url)': credentials in the URL are not supported; use headers") }
        server = try HostPort(String(authority), defaultPort: secure ? 443 : 80)
        let path = rest.dropFirst(authority.count)
        target = path.isEmpty ? "/" : (path.hasPrefix("?") ? "/" + path : String(path))
        guard !target.contains(where: { $0 == " " || $0 == "\r" || $0 == "\n" || $0 == "#" }) else {
            throw AddressError(message: "'\(url)': the path has spaces, line breaks or a fragment")
        }
        hostHeader = String(authority)
    }
}

/// A connected socket (TCP, UDP or unix datagram) that closes itself on deinit. One thread
/// uses it at a time.
final class Socket {
    let fd: Int32
    let peer: String

    private init(fd: Int32, peer: String) {
        self.fd = fd
        self.peer = peer
    }

    deinit { close(fd) }

    /// Connects over TCP (`getaddrinfo`, then a non-blocking `connect(2)` bounded by `timeout`;
    /// the first address that answers wins). Sends and receives then wait at most `timeout`.
    static func tcp(_ address: HostPort, timeout: Duration) throws(ActionFailure) -> Socket {
        try connect(address, type: SOCK_STREAM, timeout: timeout)
    }

    /// A UDP socket connected to `address` (datagrams go there with `send`).
    static func udp(_ address: HostPort, timeout: Duration) throws(ActionFailure) -> Socket {
        try connect(address, type: SOCK_DGRAM, timeout: timeout)
    }

    /// A unix datagram socket connected to `path` (/dev/log).
    static func unixDatagram(_ path: String, timeout: Duration) throws(ActionFailure) -> Socket {
        guard var address = sockaddr_un(path: path) else { throw .permanent("\(path): path too long for a unix socket") }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .transient("socket(AF_UNIX): \(Self.errnoText())") }
        let sock = Socket(fd: fd, peer: path)
        sock.setTimeouts(timeout)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else { throw .transient("connect \(path): \(Self.errnoText())") }
        return sock
    }

    private static func connect(_ address: HostPort, type: __socket_type, timeout: Duration) throws(ActionFailure) -> Socket {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(type.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(address.host, String(address.port), &hints, &list)
        guard status == 0, let first = list else {
            throw .transient("cannot resolve \(address.host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        let peer = "\(address.host):\(address.port)"
        var lastError = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.pointee.ai_protocol)
            guard fd >= 0 else { lastError = "socket: \(errnoText())"; continue }
            let sock = Socket(fd: fd, peer: peer)
            if let error = sock.connect(info.pointee.ai_addr, info.pointee.ai_addrlen, timeout: timeout) {
                lastError = error
                continue
            }
            sock.setTimeouts(timeout)
            return sock
        }
        throw .transient("connect \(peer): \(lastError)")
    }

    /// Non-blocking connect, poll for writability up to `timeout`, then blocking mode again.
    private func connect(_ address: UnsafeMutablePointer<sockaddr>?, _ length: socklen_t, timeout: Duration) -> String? {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(fd, F_SETFL, flags) }
        if Glibc.connect(fd, address, length) == 0 { return nil }
        guard errno == EINPROGRESS else { return Self.errnoText() }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let milliseconds = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        var ready: Int32
        repeat { ready = poll(&poller, 1, milliseconds) } while ready < 0 && errno == EINTR
        guard ready > 0 else { return ready == 0 ? "timed out" : Self.errnoText() }
        var error: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size)
        return error == 0 ? nil : String(cString: strerror(error))
    }

    private func setTimeouts(_ timeout: Duration) {
        var interval = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        let size = socklen_t(MemoryLayout<timeval>.size)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &interval, size)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &interval, size)
    }

    /// Sends all of `bytes` (`send(2)` with MSG_NOSIGNAL); a datagram socket sends one datagram.
    func send(_ bytes: [UInt8]) throws(ActionFailure) {
        var offset = 0
        repeat {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                if errno == EINTR { continue }
                throw .transient("send to \(peer): \(errno == EAGAIN ? "timed out" : Self.errnoText())")
            }
            offset += sent
        } while offset < bytes.count
    }

    /// Receives what is available (up to 64 KiB); empty at the end of the stream.
    func receive() throws(ActionFailure) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count >= 0 { return Array(buffer.prefix(count)) }
            if errno != EINTR { throw .transient("receive from \(peer): \(errno == EAGAIN ? "timed out" : Self.errnoText())") }
        }
    }

    static func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }
}

extension Duration {
    /// A duration of `seconds` (fractions allowed).
    static func seconds(fraction seconds: Double) -> Duration { .nanoseconds(Int64(seconds * 1e9)) }
}
