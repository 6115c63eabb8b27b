import Foundation
import VigilTestSupport
import XCTest

/// scripts/docker-engine.sh, the one way `make test`, `make image` and the tests start a Docker
/// engine on a machine where none runs, tested on a second, private engine (its own socket,
/// data root, exec root and pidfile in a temporary directory) so the machine's engine, which
/// other tests use, is not touched.
final class DockerEngineScriptTests: XCTestCase {
    static let script = DockerTestEngine.repository + "/scripts/docker-engine.sh"

    private func requireDockerd() throws {
        guard getuid() == 0 else { throw cannotRun("needs root to start dockerd") }
        guard DockerTestEngine.run(["which", "dockerd"]).status == 0 else {
            throw cannotRun("needs dockerd (apt-get install docker.io; scripts/setup.sh --test installs it)")
        }
    }

    /// A private engine's files; stops its dockerd (SIGTERM, then waits) and removes them at teardown.
    private func privateEngine() throws -> (directory: String, arguments: [String], socket: String, pidfile: String, log: String) {
        // Short: the socket path must fit a sockaddr_un.
        let directory = "/tmp/vde-\(UUID().uuidString.prefix(6).lowercased())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let socket = directory + "/docker.sock", pidfile = directory + "/docker.pid", log = directory + "/dockerd.log"
        addTeardownBlock {
            if let text = try? String(contentsOfFile: pidfile, encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                kill(pid, SIGTERM)
                waitUntil(seconds: 30) { kill(pid, 0) != 0 }
            }
            try? FileManager.default.removeItem(atPath: directory)
        }
        let arguments = [Self.script, "--socket", socket, "--data-root", directory + "/data", "--log", log,
                         "--", "--exec-root", directory + "/exec", "--pidfile", pidfile]
        return (directory, arguments, socket, pidfile, log)
    }

    func testStartsAnEngineWhenNoneAnswersDetachedFromTheCaller() throws {
        try requireDockerd()
        let engine = try privateEngine()
        XCTAssertNotEqual(DockerTestEngine.run(["docker", "-H", "unix://\(engine.socket)", "info"]).status, 0, "nothing answers before")

        // The caller holds a descriptor dockerd must not keep (fd 7 on a marker file), besides
        // the files DockerTestEngine.run gives the script as its output.
        let marker = engine.directory + "/held-by-the-caller"
        let started = DockerTestEngine.run(["/bin/sh", "-c", "exec 7>>\"$0\"; exec \"$@\"", marker] + engine.arguments)
        XCTAssertEqual(started.status, 0, started.errors)
        XCTAssertTrue(started.errors.contains("started dockerd --iptables=false --bridge=none --data-root \(engine.directory)/data"), started.errors)
        let version = DockerTestEngine.run(["docker", "-H", "unix://\(engine.socket)", "version", "--format", "{{.Server.Version}}"])
        XCTAssertEqual(version.status, 0, "the engine answers: \(version.errors)")

        // Detached: its own session, stdin /dev/null, stdout and stderr the log, no other
        // descriptor of the caller.
        let pid = try XCTUnwrap(Int32(try String(contentsOfFile: engine.pidfile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        XCTAssertEqual(getsid(pid), pid, "dockerd leads its own session")
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").compactMap { Int32($0) }
        let targets = Dictionary(uniqueKeysWithValues: descriptors.map { ($0, (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) ?? "") })
        XCTAssertEqual(targets[0], "/dev/null")
        XCTAssertEqual(targets[1], engine.log)
        XCTAssertEqual(targets[2], engine.log)
        XCTAssertFalse(targets.values.contains { $0 == marker || $0.hasPrefix(FileManager.default.temporaryDirectory.path + "/vigil-cmd-") },
                       "inherited nothing else: \(targets)")

        // Answering: nothing is started again.
        let again = DockerTestEngine.run(engine.arguments)
        XCTAssertEqual(again.status, 0, again.errors)
        XCTAssertFalse(again.errors.contains("started"), again.errors)
    }

    func testADockerdThatCannotStartFailsWithItsLog() throws {
        try requireDockerd()
        let engine = try privateEngine()
        let failed = DockerTestEngine.run(engine.arguments + ["--no-such-dockerd-flag"])
        XCTAssertEqual(failed.status, 1, failed.errors)
        XCTAssertTrue(failed.errors.contains("exited; \(engine.log) ends:") && failed.errors.contains("no-such-dockerd-flag"), failed.errors)
    }
}
