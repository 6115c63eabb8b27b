#if canImport(Glibc)
import Glibc
#endif

/// Small file helpers over Glibc, so VigilBPF needs no Foundation.
public enum SystemFile {
    /// The whole content of a (small, often virtual) file as text, or nil when it cannot be read.
    public static func read(_ path: String, limit: Int = 1 << 20) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count < limit {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Whether a path exists.
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Calls `body` with each line of the file at `path`, in order and without its newline, until
    /// it returns false; no size limit, one line in memory at a time (/proc/kallsyms is megabytes:
    /// `read` stops at 1 MiB). Returns false when the file cannot be opened (wraps getline(3)).
    @discardableResult
    public static func forEachLine(_ path: String, _ body: (String) throws -> Bool) rethrows -> Bool {
        guard let file = fopen(path, "re") else { return false }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while case let length = getline(&line, &capacity, file), length > 0, let line {
            if line[length - 1] == 0x0A { line[length - 1] = 0 }
            guard try body(String(cString: line)) else { break }
        }
        return true
    }
}

/// The tracing filesystem, which perf tracepoints (`SEC("tracepoint/...")`) need.
public enum Tracefs {
    /// Where tracefs is looked for, in order.
    public static let candidates = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]

    /// The mounted tracefs directory with its events, or nil.
    public static var path: String? {
        candidates.first { SystemFile.exists("\($0)/events/syscalls") || SystemFile.exists("\($0)/events/sched") }
    }

    /// Makes sure tracefs is mounted: mounts it at /sys/kernel/tracing when it is absent and
    /// the process is root (wraps mount(2) with type "tracefs").
    public static func ensureMounted() -> ProbeResult {
        if path != nil { return .available }
        guard geteuid() == 0 else {
            return .inconclusive("tracefs is not mounted at /sys/kernel/tracing and only root can mount it")
        }
        if mount("nodev", candidates[0], "tracefs", 0, nil) != 0 {
            return .unsupported("tracefs not mounted and mount -t tracefs failed: \(Errno.name(errno))")
        }
        return path != nil ? ProbeResult(state: .available, reason: "mounted at /sys/kernel/tracing by Vigil")
            : .unsupported("tracefs mounted but has no events directory")
    }
}
