import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// A second, private Docker engine with experimental features (`docker checkpoint`) for one
/// test: its own socket, data root and exec root (and so its own containerd) under a temporary
/// directory, the busybox test image copied into it from the shared engine (`docker save |
/// docker load`), stopped and removed when the test ends. The shared engine of the other tests
/// (`DockerTestEngine`, started without experimental features) is not touched.
public struct ExperimentalDockerEngine: Sendable {
    /// Where this engine's API listens.
    public let socketPath: String
    /// Its directory: socket, data root, exec root, log.
    public let directory: String

    /// Starts an engine for `testCase` (stopped in a teardown block); throws `cannotRun` when
    /// the shared engine, the image or this engine cannot be had.
    public static func start(for testCase: XCTestCase) throws -> ExperimentalDockerEngine {
        try DockerTestEngine.requireImage(DockerTestEngine.image)
        // Short: the engine's and containerd's unix sockets live below it (108 bytes at most).
        let directory = "/tmp/vigil-dx-\(UUID().uuidString.prefix(8).lowercased())"
        guard (try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)) != nil else {
            throw cannotRun("cannot create \(directory)")
        }
        let engine = ExperimentalDockerEngine(socketPath: directory + "/docker.sock", directory: directory)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["dockerd", "--experimental", "-H", "unix://" + engine.socketPath, "--data-root", directory + "/data",
                             "--exec-root", directory + "/exec", "--pidfile", directory + "/docker.pid", "--bridge=none", "--iptables=false"]
        FileManager.default.createFile(atPath: directory + "/dockerd.log", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: directory + "/dockerd.log")
        process.standardError = process.standardOutput
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { throw cannotRun("cannot start dockerd: \(error)") }
        testCase.addTeardownBlock { engine.stop(process) }
        let deadline = Date().addingTimeInterval(60)
        while engine.docker(["version", "-f", "{{.Server.Experimental}}"]).output.trimmingCharacters(in: .whitespacesAndNewlines) != "true" {
            guard process.isRunning, Date() < deadline else {
                let log = (try? String(contentsOfFile: directory + "/dockerd.log", encoding: .utf8)) ?? ""
                throw cannotRun("a private dockerd --experimental did not answer on \(engine.socketPath): \(log.suffix(600))")
            }
            usleep(200_000)
        }
        let load = DockerTestEngine.run(["sh", "-c", "docker save \(DockerTestEngine.image) | docker -H unix://\(engine.socketPath) load -q"])
        guard load.status == 0 else { throw cannotRun("copying \(DockerTestEngine.image) into the private engine failed: \(load.errors)") }
        return engine
    }

    /// `docker -H unix://SOCKET ARGUMENTS...`.
    @discardableResult
    public func docker(_ arguments: [String]) -> DockerTestEngine.CommandResult {
        DockerTestEngine.run(["docker", "-H", "unix://" + socketPath] + arguments)
    }

    /// Removes its containers, stops dockerd (SIGTERM, SIGKILL after 20 s), unmounts what it
    /// left mounted below its directory and removes that.
    private func stop(_ process: Process) {
        let ids = docker(["ps", "-aq"]).output.split(separator: "\n").map(String.init)
        if !ids.isEmpty { docker(["rm", "-f"] + ids) }
        endProcess(process, with: SIGTERM, graceSeconds: 20)
        let mounts = ((try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { $0.split(separator: " ").dropFirst().first.map(String.init) }
            .filter { $0.hasPrefix(directory + "/") }
        for mount in mounts.reversed() { umount2(mount, Int32(MNT_DETACH)) }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
