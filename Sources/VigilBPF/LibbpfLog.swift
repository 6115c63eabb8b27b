import CLibbpf
import Logging
import Synchronization

/// Routes libbpf's own messages (libbpf_set_print) into swift-log.
///
/// libbpf has one print hook per process; `install(_:)` replaces it. Warnings go to
/// `.warning`, info to `.info`, debug to `.debug`. The logger travels to the C callback through an
/// `Unmanaged` context, never a global. Until `install` is called, VigilBPF installs a logger
/// labelled `libbpf` on first use, so messages never bypass swift-log.
public enum LibbpfLog {
    private final class Box: Sendable {
        let logger: Logger
        init(_ logger: Logger) { self.logger = logger }
    }

    private static let current = Mutex<Unmanaged<Box>?>(nil)
    /// While above zero, libbpf's warnings are logged at debug level (expected failures).
    private static let quietDepth = Atomic<Int>(0)
    /// Warning lines collected by `capturingWarnings` (nil when not collecting).
    private static let captured = Mutex<[String]?>(nil)

    /// Sends libbpf's messages to `logger` (wraps `libbpf_set_print`).
    public static func install(_ logger: Logger) {
        let box = Unmanaged.passRetained(Box(logger))
        current.withLock { old in
            clibbpf_install_log({ context, level, message in
                guard let context, let message else { return }
                let box = Unmanaged<Box>.fromOpaque(context).takeUnretainedValue()
                var text = String(cString: message)
                while text.last == "\n" { text.removeLast() }
                if level == 0 { LibbpfLog.captured.withLock { $0?.append(text) } }
                let quiet = LibbpfLog.quietDepth.load(ordering: .relaxed) > 0
                switch quiet ? 2 : level {
                case 0: box.logger.warning("\(text)", metadata: ["source": "libbpf"])
                case 1: box.logger.info("\(text)", metadata: ["source": "libbpf"])
                default: box.logger.debug("\(text)", metadata: ["source": "libbpf"])
                }
            }, box.toOpaque())
            old?.release()
            old = box
        }
    }

    /// Installs the default `libbpf` logger unless a logger is installed already.
    static func ensureInstalled() {
        if current.withLock({ $0 == nil }) { install(Logger(label: "libbpf")) }
    }

    /// Runs `body` with libbpf's warnings demoted to debug: for probes and variant attempts
    /// whose failures are expected and reported by Vigil itself.
    public static func quietly<T>(_ body: () throws -> T) rethrows -> T {
        quietDepth.add(1, ordering: .relaxed)
        defer { quietDepth.subtract(1, ordering: .relaxed) }
        return try body()
    }

    /// Runs `body` and returns the warnings libbpf printed meanwhile (to attribute a failure
    /// to the program libbpf names). Callers are the thread driving one object.
    static func capturingWarnings(_ body: () throws -> Void) -> (Error?, [String]) {
        ensureInstalled()
        captured.withLock { $0 = [] }
        var failure: Error?
        do { try body() } catch { failure = error }
        let lines = captured.withLock { lines -> [String] in
            defer { lines = nil }
            return lines ?? []
        }
        return (failure, lines)
    }
}
