import ArgumentParser
import Foundation
import Synchronization
import VigilDaemon

/// `vigil daemon`: sensors, rules and the control API, until SIGTERM/SIGINT.
struct DaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Run the daemon: sensors, rules, alerts and the control API on a unix socket.",
        discussion: """
        Settings come from /etc/vigil/vigil.yaml (docs/config.md), flags override them. Rules are the \
        embedded defaults plus every file of the rules directory; `vigil create/ls/rm` change that \
        directory through the API. Missing directories (/etc/vigil/rules.d, /run/vigil) are created \
        with their parents (0755); --root DIR (or VIGIL_ROOT=DIR) moves every default path under \
        DIR. SIGHUP reloads the configuration and rules (a bad file keeps the running rules); \
        SIGTERM or SIGINT detaches the sensors, drains the ring, flushes the alerts and exits 0.
        """
    )

    @Flag(name: [.customShort("d"), .long], help: "Log at debug level (libbpf's messages included).")
    var debug = false
    @Option(name: .long, help: ArgumentHelp(
        "Put the default paths under DIR: DIR/etc/vigil/vigil.yaml, DIR/etc/vigil/rules.d, DIR/run/vigil/vigil.sock (default $VIGIL_ROOT, else /).",
        valueName: "dir"))
    var root: String?
    @Option(name: .long, help: ArgumentHelp(
        "The configuration file (default ROOT/etc/vigil/vigil.yaml; a missing default file means built-in defaults).", valueName: "file"))
    var config: String?
    @Option(name: .long, help: ArgumentHelp("The control API's unix socket (config: socket).", valueName: "path"))
    var socket: String?
    @Option(name: .long, help: ArgumentHelp("The rules directory (config: rules_dir).", valueName: "dir"))
    var rulesDir: String?
    @Option(name: .long, help: ArgumentHelp("Serve Prometheus /metrics and /healthz on this TCP port (config: metrics).", valueName: "port"))
    var metricsPort: Int?
    @Flag(name: .long, help: "Do not run the embedded default rules (config: default_rules).")
    var noDefaultRules = false

    func run() throws {
        var options = DaemonOptions(version: Vigil.version)
        options.paths = root.map { DaemonPaths(root: $0) } ?? .environment
        options.configFile = config
        options.socketPath = socket
        options.rulesDirectory = rulesDir
        options.metricsPort = metricsPort
        options.withoutDefaultRules = noDefaultRules
        options.debug = debug
        let status = Atomic<Int32>(1)
        let done = DispatchSemaphore(value: 0)
        let chosen = options
        Task {
            status.store(await Daemon.run(chosen), ordering: .relaxed)
            done.signal()
        }
        done.wait()
        let code = status.load(ordering: .relaxed)
        if code != 0 { throw ExitCode(code) }
    }
}
