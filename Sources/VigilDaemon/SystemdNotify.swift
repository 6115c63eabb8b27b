import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// systemd's notification protocol without libsystemd: one datagram per message to the unix
/// socket in `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). `READY=1` once
/// the sensors are attached and the API listens, `WATCHDOG=1` from the event thread every half
/// `WATCHDOG_USEC` (so a stuck event loop stops the pings and systemd restarts the daemon),
/// `STOPPING=1` at shutdown. Without `NOTIFY_SOCKET` (not started by systemd) it does nothing.
public final class SystemdNotifier: @unchecked Sendable {
    /// The socket's address as `NOTIFY_SOCKET` gave it.
    public let socketPath: String
    /// Nanoseconds between watchdog pings: half of `WATCHDOG_USEC`; nil when the unit sets no
    /// `WatchdogSec` (or `WATCHDOG_PID` names another process).
    public let watchdogInterval: UInt64?
    private let fd: Int32
    private var lastPing: UInt64 = 0

    /// The notifier of `environment` (the process's by default), or nil without `NOTIFY_SOCKET`.
    public init?(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty, path.hasPrefix("/") || path.hasPrefix("@") else { return nil }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        self.fd = fd
        socketPath = path
        let forUs = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        if forUs, let usec = environment["WATCHDOG_USEC"].flatMap(UInt64.init), usec > 0 {
            watchdogInterval = usec * 1000 / 2
        } else {
            watchdogInterval = nil
        }
    }

    deinit { close(fd) }

    /// Sends `message` (e.g. `READY=1`) as one datagram; returns false (errno in the log of the
    /// caller) when the socket refused it. Never blocks.
    @discardableResult
    public func send(_ message: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 } // abstract namespace
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: path) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let bytes = Array(message.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, Int32(MSG_DONTWAIT), $0, length) }
        }
        return sent == bytes.count
    }

    /// Sends `WATCHDOG=1` when half the watchdog interval passed since the last ping (`now`:
    /// monotonic nanoseconds). Called by the event thread on every housekeeping round.
    public func pingIfDue(now: UInt64) {
        guard let watchdogInterval, now &- lastPing >= watchdogInterval else { return }
        lastPing = now
        send("WATCHDOG=1")
    }
}
