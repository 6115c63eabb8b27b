import ArgumentParser
import Logging
import VigilBPF

/// The `vigil` command line.
struct Vigil: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "vigil",
        abstract: "Vigil: eBPF runtime security and tracing for Linux hosts and containers.",
        version: version,
        subcommands: [
            Probe.self, Trace.self, DaemonCommand.self, CreateCommand.self, ListCommand.self, RemoveCommand.self,
            StatusCommand.self, EventsCommand.self, AlertsCommand.self, Rules.self, Containers.self, SeccompCommand.self, FieldsCommand.self, Flows.self, FleetCommand.self, Version.self,
        ]
    )
}

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Flag(name: [.customShort("d"), .long], help: "Log debug messages (libbpf's included).")
    var debug = false

    /// Sets up swift-log and routes libbpf's messages into it.
    func bootstrapLogging() {
        let level: Logger.Level = debug ? .debug : .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        LibbpfLog.install(Logger(label: "libbpf"))
    }
}

Vigil.main()
