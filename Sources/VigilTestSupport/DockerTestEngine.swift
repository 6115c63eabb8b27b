import Foundation
import XCTest

/// A real Docker Engine for tests, prepared once per test process.
///
/// `DockerTestEngine.require()` makes sure that:
/// 1. `docker` and `dockerd` exist (else, as root, `apt-get install -y docker.io busybox-static`);
/// 2. the engine answers on /var/run/docker.sock (else scripts/docker-engine.sh, the one way
///    `make test` starts it too, starts
///    `dockerd --iptables=false --bridge=none --data-root /var/lib/docker`, logging to
///    /var/log/dockerd.log, detached so later tests reuse it, and waits for the socket);
/// 3. the image `vigil-test-busybox:1` exists (else it imports one: a root filesystem holding the
///    static /bin/busybox and links for its applets) and runs.
///
/// When any step fails the test cannot run: `require()` throws `cannotRun` with the reason (a
/// skip, or a failure under VIGIL_REQUIRE_BPF=1).
/// Containers come from `startContainer(for:)`, which removes them when the test ends.
///
/// Lives in VigilTestSupport, shared by every test target that needs Docker.
public enum DockerTestEngine {
    public static let image = "vigil-test-busybox:1"
    public static let socketPath = "/var/run/docker.sock"

    /// Why the engine could not be made ready.
    public struct Unavailable: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// Unless the engine and the test image are ready, throws `cannotRun` (a skip, or a failure
    /// under VIGIL_REQUIRE_BPF=1).
    public static func require() throws {
        guard case .failure(let unavailable) = readiness else { return }
        throw cannotRun("needs a Docker Engine: \(unavailable)")
    }

    /// A running container started for one test.
    public struct Container {
        /// The full 64-hex id `docker run -d` printed.
        public var id: String
        /// `vigil-ct-<random>`.
        public var name: String
    }

    /// Starts `docker run -d --rm --network none --name vigil-ct-<random> IMAGE COMMAND...` and
    /// registers its removal (`docker rm -f`) as a teardown block of `testCase`.
    public static func startContainer(
        for testCase: XCTestCase, command: [String] = ["sleep", "30"]
    ) throws -> Container {
        try require()
        let name = "vigil-ct-\(UUID().uuidString.prefix(8).lowercased())"
        testCase.addTeardownBlock { _ = run(["docker", "rm", "-f", name]) }
        let result = run(["docker", "run", "-d", "--rm", "--network", "none", "--name", name, image] + command)
        let id = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0, id.count == 64 else {
            throw Unavailable(description: "docker run \(image) failed (\(result.status)): \(result.errors)")
        }
        return Container(id: id, name: name)
    }

    // MARK: - Preparing the engine

    private static let readiness: Result<Void, Unavailable> = Result { try prepare() }.mapError {
        $0 as? Unavailable ?? Unavailable(description: "\($0)")
    }

    private static func prepare() throws {
        try installIfMissing()
        try startEngineIfNeeded()
        try importImageIfMissing()
    }

    private static func installIfMissing() throws {
        let missing = ["docker", "dockerd", "busybox"].filter { run(["which", $0]).status != 0 }
        guard !missing.isEmpty else { return }
        guard getuid() == 0 else {
            throw Unavailable(description: "missing \(missing.joined(separator: ", ")); install docker.io busybox-static as root")
        }
        let install = "DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io busybox-static"
        let installed = run(["sh", "-c", "\(install) || (apt-get update && \(install))"])
        if installed.status != 0 {
            throw Unavailable(
                description: "\(missing.joined(separator: ", ")) not found, and \(install) failed: \(installed.errors.suffix(400))")
        }
    }

    /// The repository's root (this file is Sources/VigilTestSupport/DockerTestEngine.swift).
    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// scripts/docker-engine.sh: returns at once when the engine answers, else starts dockerd
    /// detached and waits for it (it exits non-zero with dockerd's log when it cannot).
    private static func startEngineIfNeeded() throws {
        let script = repository + "/scripts/docker-engine.sh"
        let started = run([script])
        guard started.status == 0 else {
            throw Unavailable(description: "\(script) could not make an engine answer on \(socketPath): \(started.errors.suffix(1200))")
        }
    }

    private static func importImageIfMissing() throws {
        if run(["docker", "image", "inspect", image]).status == 0 { return }
        let busybox = run(["which", "busybox"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        let rootfs = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-rootfs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: rootfs) }
        let files = FileManager.default
        for directory in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
            try files.createDirectory(atPath: "\(rootfs)/\(directory)", withIntermediateDirectories: true)
        }
        try files.copyItem(atPath: busybox, toPath: "\(rootfs)/bin/busybox")
        for applet in ["sh", "sleep", "cat", "true", "echo", "ls", "ps", "id"] {
            try files.createSymbolicLink(atPath: "\(rootfs)/bin/\(applet)", withDestinationPath: "busybox")
        }
        let imported = run(["sh", "-c", "tar -C '\(rootfs)' -c . | docker import - \(image)"])
        guard imported.status == 0 else {
            throw Unavailable(description: "docker import \(image) failed: \(imported.errors)")
        }
        let smoke = run(["docker", "run", "--rm", "--network", "none", image, "true"])
        guard smoke.status == 0 else {
            _ = run(["docker", "image", "rm", image])
            throw Unavailable(
                description: "\(image) does not run (is \(busybox) static? apt-get install busybox-static): \(smoke.errors)")
        }
    }

    // MARK: - Running commands

    public struct CommandResult {
        public var status: Int32
        public var output: String
        public var errors: String
    }

    /// Runs a command found on PATH; output goes through files, so any amount is fine.
    @discardableResult
    public static func run(_ arguments: [String]) -> CommandResult {
        let directory = FileManager.default.temporaryDirectory
        let outputURL = directory.appendingPathComponent("vigil-cmd-\(UUID().uuidString).out")
        let errorURL = directory.appendingPathComponent("vigil-cmd-\(UUID().uuidString).err")
        defer {
            try? FileManager.default.removeItem(at: outputURL)
            try? FileManager.default.removeItem(at: errorURL)
        }
        guard FileManager.default.createFile(atPath: outputURL.path, contents: nil),
            FileManager.default.createFile(atPath: errorURL.path, contents: nil)
        else { return CommandResult(status: -1, output: "", errors: "cannot create files in \(directory.path)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        do {
            process.standardOutput = try FileHandle(forWritingTo: outputURL)
            process.standardError = try FileHandle(forWritingTo: errorURL)
            try process.run()
        } catch {
            return CommandResult(status: -1, output: "", errors: "cannot run \(arguments.joined(separator: " ")): \(error)")
        }
        process.waitUntilExit()
        let read = { (url: URL) in (try? String(contentsOf: url, encoding: .utf8)) ?? "" }
        return CommandResult(status: process.terminationStatus, output: read(outputURL), errors: read(errorURL))
    }
}
