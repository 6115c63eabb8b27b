import CLibbpf
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

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

    /// What one thread asked of libbpf's messages. libbpf prints on the thread that called it, so
    /// objects loaded on different threads at once keep their messages apart.
    private struct ThreadState {
        /// While above zero, libbpf's warnings are logged at debug level (expected failures).
        var quietDepth = 0
        /// Warning lines collected by `capturingWarnings` (nil when not collecting).
        var captured: [String]?
    }
    private static let threads = Mutex<[pthread_t: ThreadState]>([:])

    /// Changes the calling thread's state; drops it once it is back to the default.
    private static func withThreadState<T>(_ body: (inout ThreadState) -> T) -> T {
        let me = pthread_self()
        return threads.withLock { all in
            var state = all[me] ?? ThreadState()
            let result = body(&state)
            all[me] = state.quietDepth == 0 && state.captured == nil ? nil : state
            return result
        }
    }

    /// Sends libbpf's messages to `logger` (wraps `libbpf_set_print`).
    public static func install(_ logger: Logger) {
        let box = Unmanaged.passRetained(Box(logger))
        current.withLock { old in
            clibbpf_install_log({ context, level, message in
                guard let context, let message else { return }
                let box = Unmanaged<Box>.fromOpaque(context).takeUnretainedValue()
                var text = String(cString: message)
                while text.last == "\n" { text.removeLast() }
                let quiet = LibbpfLog.withThreadState { state in
                    if level == 0 { state.captured?.append(text) }
                    return state.quietDepth > 0
                }
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

    /// Runs `body` with libbpf's warnings on this thread demoted to debug: for probes and variant
    /// attempts whose failures are expected and reported by Vigil itself.
    public static func quietly<T>(_ body: () throws -> T) rethrows -> T {
        withThreadState { $0.quietDepth += 1 }
        defer { withThreadState { $0.quietDepth -= 1 } }
        return try body()
    }

    /// Runs `body` and returns the warnings libbpf printed on this thread meanwhile (to attribute
    /// a failure to the program libbpf names).
    static func capturingWarnings(_ body: () throws -> Void) -> (Error?, [String]) {
        ensureInstalled()
        withThreadState { $0.captured = [] }
        var failure: Error?
        do { try body() } catch { failure = error }
        let lines = withThreadState { state -> [String] in
            defer { state.captured = nil }
            return state.captured ?? []
        }
        return (failure, lines)
    }
}
