#if canImport(Glibc)
import Glibc
#endif

extension sockaddr_un {
    /// The `AF_UNIX` address of `path`; nil when the path does not fit `sun_path` (107 bytes).
    public init?(path: String) {
        self.init()
        sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let fits = withUnsafeMutableBytes(of: &sun_path) { destination -> Bool in
            guard bytes.count < destination.count else { return false }
            destination.copyBytes(from: bytes)
            return true
        }
        guard fits else { return nil }
    }
}

/// A connected `AF_UNIX` stream socket that closes itself on deinit.
final class UnixStreamSocket: Sendable {
    let path: String
    private let descriptor: Int32

    /// Connects to `path` (`socket(2)` + `connect(2)`); a zero `timeout` blocks indefinitely.
    init(connectingTo path: String, timeout: Duration) throws(DockerClientError) {
        guard var address = sockaddr_un(path: path) else { throw .socketUnavailable(path: path, errno: ENAMETOOLONG) }

        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw .io(operation: "socket", path: path, errno: errno) }
        if timeout > .zero {
            var interval = timeval(
                tv_sec: Int(timeout.components.seconds),
                tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
            let size = socklen_t(MemoryLayout<timeval>.size)
            guard setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &interval, size) == 0,
                setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &interval, size) == 0
            else {
                let error = errno
                close(descriptor)
                throw .io(operation: "setsockopt", path: path, errno: error)
            }
        }
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            let error = errno
            close(descriptor)
            throw .socketUnavailable(path: path, errno: error)
        }
        self.path = path
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Writes all of `bytes` (`send(2)` with `MSG_NOSIGNAL`).
    func write(_ bytes: [UInt8]) throws(DockerClientError) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes {
                send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 {
                if errno == EINTR { continue }
                throw failure("send", errno)
            }
            offset += sent
        }
    }

    /// Reads what is available, up to `maximum` bytes (`recv(2)`); empty at end of stream.
    func read(maximum: Int = 65_536) throws(DockerClientError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: maximum)
        while true {
            let received = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if received >= 0 { return Array(buffer.prefix(received)) }
            if errno != EINTR { throw failure("recv", errno) }
        }
    }

    /// Wakes a reader blocked in `read` from another thread (`shutdown(2)`).
    func shutdownBothDirections() {
        shutdown(descriptor, Int32(SHUT_RDWR))
    }

    private func failure(_ operation: String, _ code: Int32) -> DockerClientError {
        code == EAGAIN || code == EWOULDBLOCK
            ? .timedOut(operation: operation, path: path)
            : .io(operation: operation, path: path, errno: code)
    }
}
