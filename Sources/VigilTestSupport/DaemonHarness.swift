import Foundation
import XCTest

/// Reads a pipe to its end on a background thread (so a full pipe never blocks the child).
public final class PipeReader: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    /// Starts reading `handle`.
    public init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                lock.lock()
                data.append(chunk)
                lock.unlock()
            }
            done.signal()
        }
    }

    /// What was read so far.
    public var sofar: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }

    /// Everything, once the writer closed the pipe.
    public func text() -> String {
        done.wait()
        done.signal()
        return sofar
    }
}

/// A program's result.
public struct ProgramResult {
    /// Exit status.
    public var status: Int32
    /// Standard output.
    public var stdout: String
    /// Standard error.
    public var stderr: String
}

/// Starts a program with its standard output and error read in the background.
public func launchCapturing(_ path: String, _ arguments: [String]) throws -> (process: Process, stdout: PipeReader, stderr: PipeReader) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    return (process, PipeReader(out.fileHandleForReading), PipeReader(err.fileHandleForReading))
}

/// Runs a program to its end, capturing its output.
@discardableResult
public func runCapturing(_ path: String, _ arguments: [String]) throws -> ProgramResult {
    let (process, stdout, stderr) = try launchCapturing(path, arguments)
    process.waitUntilExit()
    return ProgramResult(status: process.terminationStatus, stdout: stdout.text(), stderr: stderr.text())
}

/// Waits for `condition`, checking every 50 ms, for at most `seconds` (a bound on waiting for
/// something to happen, not a timing assertion). Returns whether it became true.
@discardableResult
public func waitUntil(seconds: Double = 20, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: 0.05)
    }
    return try condition()
}

/// Ends `process` and waits for its exit: `signal` if it still runs, SIGKILL after
/// `graceSeconds` more. A test whose process did not end by itself (a failure already noted)
/// goes on instead of hanging in `waitUntilExit`.
public func endProcess(_ process: Process, with signal: Int32 = SIGINT, graceSeconds: Double = 10) {
    if process.isRunning { kill(process.processIdentifier, signal) }
    if !waitUntil(seconds: graceSeconds, { !process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
}

/// The daemon exited or did not answer: a failure, with its log.
public struct DaemonDidNotStart: Error, CustomStringConvertible {
    /// What happened, and the daemon's standard error.
    public var description: String
}

/// `vigil daemon` as a child process with its own configuration, socket and rules directory in
/// a temporary directory; the CLI and curl talk to it.
public final class TestDaemon {
    /// The built `vigil` binary (next to the test bundle).
    public static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("vigil").path

    /// Where a daemon keeps its files, as this process reaches them (for the running daemon's pid).
    public struct Layout {
        /// The API socket.
        public var socket: String
        /// The rules directory.
        public var rulesDirectory: String
        /// The configuration file.
        public var configPath: String

        /// The default paths of a daemon whose `/` is `root` (`--root ROOT`, or
        /// /proc/PID/root for one in another mount namespace): docs/config.md's layout.
        public static func defaults(under root: String) -> Layout {
            Layout(socket: root + "/run/vigil/vigil.sock", rulesDirectory: root + "/etc/vigil/rules.d",
                   configPath: root + "/etc/vigil/vigil.yaml")
        }
    }

    /// The temporary directory holding everything.
    public let directory: String
    /// The API socket.
    public var socket: String { layout(pid).socket }
    /// The rules directory.
    public var rulesDirectory: String { layout(pid).rulesDirectory }
    /// The configuration file.
    public var configPath: String { layout(pid).configPath }
    /// The running daemon.
    public private(set) var process: Process
    /// Its standard output (alerts) and standard error (log).
    public private(set) var stdout: PipeReader, stderr: PipeReader
    private let command: [String]
    private let layout: (Int32) -> Layout

    /// Writes a configuration (`extra` lines appended) and starts the daemon; returns once the
    /// API answers. Needs the kernel features of the sensors (checked by the caller). Unless
    /// `extra` has an `actions:` section, dedup is off: a test's repeated trigger is not
    /// aggregated away from the alert stream it just subscribed to.
    public convenience init(extraConfig: String = "", directory: String? = nil) throws {
        let directory = try directory ?? { () throws -> String in
            let path = NSTemporaryDirectory() + "vigil-daemon-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            return path
        }()
        let layout = Layout(socket: directory + "/run/vigil.sock", rulesDirectory: directory + "/rules.d", configPath: directory + "/vigil.yaml")
        try """
        socket: \(layout.socket)
        rules_dir: \(layout.rulesDirectory)
        state_dir: \(directory)/state
        log_level: info
        \(extraConfig.contains("actions:") ? "" : "actions:\n  dedup: {window: 0}")
        \(extraConfig)
        """.write(toFile: layout.configPath, atomically: true, encoding: .utf8)
        try self.init(command: [Self.binary, "daemon", "--config", layout.configPath], directory: directory) { _ in layout }
    }

    /// Starts `command` (a `vigil daemon` run as is, or under a wrapper that execs it, such as
    /// `unshare`, so the pid is the daemon's), whose files are at `layout(pid)`; returns once the
    /// API answers. `directory` is removed when this object goes.
    public init(command: [String], directory: String, layout: @escaping (_ pid: Int32) -> Layout) throws {
        self.directory = directory
        self.command = command
        self.layout = layout
        (process, stdout, stderr) = try launchCapturing(command[0], Array(command.dropFirst()))
        try waitForAPI()
    }

    /// Waits until the API answers (or the daemon died: then fails with its log).
    public func waitForAPI() throws {
        let up = waitUntil(seconds: 30) { !process.isRunning || (try? request("GET", "/v1/status").status) == 200 }
        guard up, process.isRunning else {
            throw DaemonDidNotStart(description: "the daemon did not start (status \(process.isRunning ? "running" : String(process.terminationStatus))):\n\(stderr.sofar)")
        }
    }

    /// Restarts the daemon with the same command and files (after it was stopped or killed).
    public func restart() throws {
        (process, stdout, stderr) = try launchCapturing(command[0], Array(command.dropFirst()))
        try waitForAPI()
    }

    /// The daemon's pid.
    public var pid: Int32 { process.processIdentifier }

    /// Runs the CLI against this daemon (`--socket` appended).
    @discardableResult
    public func vigil(_ arguments: [String]) throws -> ProgramResult {
        try runCapturing(Self.binary, arguments + ["--socket", socket])
    }

    /// Writes `yaml` (Falco-style rules) to `name` in this daemon's directory and loads it
    /// with `vigil create`; the CLI's result.
    @discardableResult
    public func createRules(_ yaml: String, name: String) throws -> ProgramResult {
        let file = directory + "/" + name
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        return try vigil(["create", file])
    }

    /// A raw request with curl: the status and the body.
    public func request(_ method: String, _ target: String, body: String? = nil, asUser user: String? = nil,
                        extraCurlArguments: [String] = []) throws -> (status: Int, body: String) {
        var arguments = ["-sS", "--unix-socket", socket, "-X", method, "-o", "-", "-w", "\n%{http_code}"] + extraCurlArguments
        if let body { arguments += ["--data-binary", body] }
        arguments.append("http://localhost" + target)
        let result = user.map { try? runCapturing("/usr/bin/setpriv", ["--reuid", $0, "--regid", "nogroup", "--clear-groups", "/usr/bin/curl"] + arguments) }
            ?? (try? runCapturing("/usr/bin/curl", arguments))
        guard let result else { throw cannotRun("needs curl and setpriv (scripts/setup.sh --test installs them)") }
        let text = result.stdout
        guard let newline = text.lastIndex(of: "\n"), let status = Int(text[text.index(after: newline)...]) else {
            return (0, text + result.stderr)
        }
        return (status, String(text[..<newline]))
    }

    /// The daemon's status and the end of its log, for failure messages.
    public var diagnostics: String {
        let status = (try? request("GET", "/v1/status"))?.body ?? "(no status)"
        return "status: \(status)\nlog: \(stderr.sofar.suffix(3000))"
    }

    /// Sends `signal` and waits for the exit; returns the exit status (or the signal number for
    /// a killed process).
    @discardableResult
    public func stop(_ signal: Int32 = SIGTERM) -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A streaming CLI client (`vigil events`, `vigil alerts`) running in the background.
public final class StreamClient {
    /// The client process.
    public let process: Process
    /// Its standard output.
    public let output: PipeReader
    private let errors: PipeReader

    /// Starts `vigil ARGS`.
    public init(_ arguments: [String]) throws {
        (process, output, errors) = try launchCapturing(TestDaemon.binary, arguments)
    }

    /// The JSON objects received so far.
    public var objects: [[String: Any]] {
        output.sofar.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Runs `trigger` until this client received an object satisfying `match` (the stream may
    /// start a little after the client does), for at most 20 s; the object, or nil.
    public func first(triggering trigger: () throws -> Void, where match: ([String: Any]) -> Bool) -> [String: Any]? {
        var found: [String: Any]?
        waitUntil(seconds: 20) {
            try? trigger()
            found = objects.first(where: match)
            return found != nil || !process.isRunning
        }
        return found
    }

    /// What the client said on standard error.
    public var stderr: String { errors.sofar }

    /// Stops the client.
    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
    }

    deinit { stop() }
}
