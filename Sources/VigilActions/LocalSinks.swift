#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import VigilRules

/// What every action does with one alert. `perform` runs on the action's own worker thread and
/// may block (bounded by the action's timeout); it returns a short detail for the stats and,
/// for enforcement, for the alert.
protocol ActionHandler: Sendable {
    func perform(_ alert: Alert) throws(ActionFailure) -> String
    /// How the action connects, for status (network kinds); nil by default.
    var transport: String? { get }
}

extension ActionHandler {
    var transport: String? { nil }
}

/// Writes all of `bytes` to `fd` (`write(2)`, retrying short writes and EINTR).
func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(ActionFailure) {
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 {
            if errno == EINTR { continue }
            throw .permanent("write: \(Socket.errnoText())")
        }
        offset += written
    }
}

/// `stdout`: one line per alert on standard output, text (`Alert.text`) or JSON (`Alert.json`).
struct StdoutAction: ActionHandler {
    let style: AlertStyle

    func perform(_ alert: Alert) throws(ActionFailure) -> String {
        try writeAll(STDOUT_FILENO, Array(((style == .json ? alert.json : alert.text) + "\n").utf8))
        return "written"
    }
}

/// `log`: the alert's text to the daemon's logger, at the level of its priority (emergency,
/// alert, critical: critical; error: error; warning: warning; notice: notice;
/// informational: info; debug: debug), with rule and priority as metadata.
struct LogAction: ActionHandler {
    let logger: Logger

    func perform(_ alert: Alert) throws(ActionFailure) -> String {
        logger.log(level: Self.level(alert.priority), "\(alert.rule): \(alert.output)", metadata: [
            "rule": .string(alert.rule), "priority": .string(alert.priority.rawValue),
        ])
        return "logged"
    }

    static func level(_ priority: Priority) -> Logger.Level {
        switch priority {
        case .emergency, .alert, .critical: .critical
        case .error: .error
        case .warning: .warning
        case .notice: .notice
        case .informational: .info
        case .debug: .debug
        }
    }
}

/// `file`: appends the alert's JSON as one line. Before a write would make the file larger
/// than `maxSize`, it is rotated: `path.N-1` -> `path.N` ... `path` -> `path.1`, keeping `keep`
/// rotated files (0: the file is truncated instead). New files are created with mode 0600, a
/// missing directory with its parents (0755).
/// When something else moved or removed the file (logrotate), the next alert reopens `path`.
/// An alert that cannot be written whole (disk full) fails and leaves nothing of itself.
final class FileAction: ActionHandler, @unchecked Sendable {
    // One worker thread uses an action, so the descriptor needs no lock.
    let path: String
    let maxSize: Int
    let keep: Int
    private var fd: Int32 = -1
    private var size = 0

    init(path: String, maxSize: Int, keep: Int) {
        self.path = path
        self.maxSize = maxSize
        self.keep = keep
    }

    deinit { if fd >= 0 { close(fd) } }

    func perform(_ alert: Alert) throws(ActionFailure) -> String {
        let line = Array((alert.json + "\n").utf8)
        try openIfNeeded()
        if size > 0, size + line.count > maxSize {
            try rotate()
            try openIfNeeded()
        }
        do {
            try writeAll(fd, line)
        } catch {
            // A short write (the disk filled up) leaves part of a line: cut it off, so the
            // lines written once there is space again are not glued to a torn one.
            ftruncate(fd, off_t(size))
            close(fd)
            fd = -1
            throw .permanent("\(path): \(error.message)")
        }
        size += line.count
        return "appended"
    }

    private func openIfNeeded() throws(ActionFailure) {
        if fd >= 0 {
            var open = stat(), named = stat()
            if fstat(fd, &open) == 0, stat(path, &named) == 0, open.st_ino == named.st_ino, open.st_dev == named.st_dev { return }
            close(fd)  // rotated or removed behind our back: write to `path` again
            fd = -1
        }
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0, errno == ENOENT {  // its directory is missing (a fresh machine): make it, with its parents
            let directory = (path as NSString).deletingLastPathComponent
            do { try Directories.create(directory) } catch { throw .permanent("cannot create the directory of \(path): \(error)") }
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        }
        guard fd >= 0 else { throw .permanent("cannot open \(path): \(Socket.errnoText())") }
        var info = stat()
        size = fstat(fd, &info) == 0 ? Int(info.st_size) : 0
    }

    private func rotate() throws(ActionFailure) {
        close(fd)
        fd = -1
        if keep == 0 {
            guard truncate(path, 0) == 0 else { throw .permanent("cannot truncate \(path): \(Socket.errnoText())") }
            return
        }
        unlink("\(path).\(keep)")
        for index in stride(from: keep - 1, through: 1, by: -1) {
            rename("\(path).\(index)", "\(path).\(index + 1)")
        }
        guard rename(path, "\(path).1") == 0 else { throw .permanent("cannot rotate \(path): \(Socket.errnoText())") }
    }
}
