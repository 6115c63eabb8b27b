import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real NATS server with JetStream: Debian's nats-server (`scripts/setup.sh --test` installs
/// it), a child process on a free loopback port with its store in a directory of its own.
/// `stop` and `start` keep the port and the store (a server that goes away and comes back).
public final class TestNATSServer {
    /// The port it listens on (127.0.0.1).
    public let port: UInt16
    /// JetStream's store directory (`-sd`).
    public let storeDirectory: String
    /// `--user`, `--pass` when started with them.
    public let credentials: (user: String, password: String)?
    /// `--tls --tlscert --tlskey` when started with them (clients must then speak TLS).
    public let tls: (certificate: String, key: String)?
    /// `--auth` when started with a token.
    public let token: String?
    /// A configuration file's text (`-c`), for settings without a flag (`max_payload: 2048`).
    public let configuration: String?
    private var process: Process?
    private let log: String

    /// `nats://127.0.0.1:PORT`.
    public var url: String { "nats://127.0.0.1:\(port)" }

    /// Starts `nats-server -js -a 127.0.0.1 -p PORT -sd DIR` (with `--user`/`--pass`,
    /// `--tls --tlscert --tlskey` and `--auth` when given).
    public init(credentials: (user: String, password: String)? = nil, tls: (certificate: String, key: String)? = nil, token: String? = nil,
                configuration: String? = nil) throws {
        let binary = "/usr/sbin/nats-server"
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw cannotRun("needs Debian's nats-server (scripts/setup.sh --test installs it)")
        }
        port = try Loopback.freePort()
        storeDirectory = NSTemporaryDirectory() + "vigil-nats-\(UUID().uuidString.prefix(8))"
        log = storeDirectory + ".log"
        self.credentials = credentials
        self.tls = tls
        self.token = token
        self.configuration = configuration
        try start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: storeDirectory)
        try? FileManager.default.removeItem(atPath: log)
        try? FileManager.default.removeItem(atPath: log + ".conf")
    }

    /// Starts the server (again) on the same port and store; returns once it accepts connections.
    public func start() throws {
        guard process == nil else { return }
        let started = Process()
        started.executableURL = URL(fileURLWithPath: "/usr/sbin/nats-server")
        var arguments = ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDirectory, "-l", log]
        if let credentials { arguments += ["--user", credentials.user, "--pass", credentials.password] }
        if let tls { arguments += ["--tls", "--tlscert", tls.certificate, "--tlskey", tls.key] }
        if let token { arguments += ["--auth", token] }
        if let configuration {
            try configuration.write(toFile: log + ".conf", atomically: true, encoding: .utf8)
            arguments += ["-c", log + ".conf"]
        }
        started.arguments = arguments
        started.standardInput = FileHandle.nullDevice
        started.standardOutput = FileHandle.nullDevice
        started.standardError = FileHandle.nullDevice
        try started.run()
        process = started
        let listening = waitUntil(seconds: 30) { !started.isRunning || Loopback.accepts(port) }
        guard listening, started.isRunning else {
            throw TestCannotRun(description: "nats-server did not listen on 127.0.0.1:\(port): \(logText)")
        }
    }

    /// Stops the server (SIGTERM, then waits for it to exit).
    public func stop() {
        guard let process else { return }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        self.process = nil
    }

    /// The server's log, for failure messages.
    public var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "(no log)" }
}
