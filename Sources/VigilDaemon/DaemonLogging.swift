import Logging
import Synchronization
import VigilBPF

/// The daemon's log: standard error (journald keeps it under systemd), with a level that a
/// reload (SIGHUP) can change while every logger keeps working.
public enum DaemonLogging {
    private static let level = Atomic<UInt8>(2)
    private static let levels: [Logger.Level] = [.trace, .debug, .info, .notice, .warning, .error, .critical]

    /// Installs the handler (once per process) at `level` and routes libbpf's messages into it.
    public static func bootstrap(level name: String) {
        setLevel(name)
        LoggingSystem.bootstrap { label in LevelHandler(inner: StreamLogHandler.standardError(label: label)) }
        LibbpfLog.install(Logger(label: "libbpf"))
    }

    /// Changes the level of every logger (a `log_level` name; unknown names are ignored).
    public static func setLevel(_ name: String) {
        guard let index = levels.firstIndex(where: { $0.rawValue == name }) else { return }
        level.store(UInt8(index), ordering: .relaxed)
    }

    /// The level now.
    static var current: Logger.Level { levels[Int(level.load(ordering: .relaxed))] }

    /// StreamLogHandler with the shared level.
    struct LevelHandler: LogHandler {
        var inner: StreamLogHandler

        init(inner: StreamLogHandler) {
            self.inner = inner
            self.inner.logLevel = .trace
        }

        var logLevel: Logger.Level {
            get { DaemonLogging.current }
            set {}
        }

        var metadata: Logger.Metadata {
            get { inner.metadata }
            set { inner.metadata = newValue }
        }

        var metadataProvider: Logger.MetadataProvider? {
            get { inner.metadataProvider }
            set { inner.metadataProvider = newValue }
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { inner[metadataKey: key] }
            set { inner[metadataKey: key] = newValue }
        }

        func log(event: LogEvent) {
            inner.log(event: event)
        }
    }
}
