import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real OPA-compatible REST server (Tests/Fixtures/opa-server.py: a real Rego engine, PyPI's
/// regopy) on a free 127.0.0.1 port, evaluating the given .rego files; stopped on deinit.
public final class PolicyServer {
    /// Its port (free again after `stop`: a port where no server answers).
    public let port: UInt16
    /// Where the server appends every request it answered: {"path", "input", "answer"}.
    public let output: String
    private let process = Process()

    /// The repository's policies/`name` (the shipped policies).
    public static func shipped(_ name: String) -> String { DockerTestEngine.repository + "/policies/" + name }

    /// https (`tls` given: the server's certificate and key, PEM files) or http.
    public let secure: Bool

    /// Starts the server with `policies` (paths of .rego files); it waits `delay` seconds before
    /// each answer; with `tls` it serves https with that certificate and key. Cannot run
    /// (`cannotRun`) without a python3 that imports regopy.
    public init(policies: [String], delay: Double = 0, tls: (certificate: String, key: String)? = nil) throws {
        secure = tls != nil
        output = NSTemporaryDirectory() + "vigil-opa-\(UUID().uuidString.prefix(8)).jsonl"
        let script = DockerTestEngine.repository + "/Tests/Fixtures/opa-server.py"
        let stdout = Pipe(), stderr = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, "0", output, String(delay)] + policies
        process.standardOutput = stdout
        process.standardError = stderr
        if let tls {
            process.environment = ProcessInfo.processInfo.environment.merging(["OPA_TLS_CERT": tls.certificate, "OPA_TLS_KEY": tls.key]) { $1 }
        }
        try process.run()
        // The server prints its port once it listens; EOF first means it died (no regopy, ...).
        let line = String(decoding: stdout.fileHandleForReading.availableData, as: UTF8.self)
        guard let port = UInt16(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.waitUntilExit()
            let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw cannotRun("the OPA-compatible server (python3 with regopy, scripts/setup.sh --test) did not start: \(errors.suffix(600))")
        }
        self.port = port
    }

    /// `http://127.0.0.1:PORT` (https:// with TLS).
    public var url: String { "\(secure ? "https" : "http")://127.0.0.1:\(port)" }

    /// The requests answered so far (their inputs: the alerts as Vigil sent them).
    public var requests: [[String: Any]] {
        ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Kills the server and waits for it.
    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: output)
    }
}
