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
/// `requireImage(bashImage)` also makes `vigil-test-bash:1`: the host's own bash and coreutils
/// (real programs, not busybox applets: their own execs, forks and threads) and their ldd
/// closure; `requireImage(pythonImage)` makes `vigil-test-python3:1` the same way from the
/// host's python3 and its standard library, `requireImage(accountsImage)` a busybox with
/// account files.
///
/// When any step fails the test cannot run: `require()` throws `cannotRun` with the reason (a
/// skip, or a failure under VIGIL_REQUIRE_BPF=1).
/// Containers come from `startContainer(for:)`, which removes them when the test ends.
///
/// Lives in VigilTestSupport, shared by every test target that needs Docker.
public enum DockerTestEngine {
    public static let image = "vigil-test-busybox:1"
    /// The host's /bin/bash, cat, sleep, sort (which makes threads with --parallel), seq and
    /// true, the shared libraries `ldd` lists for them, and an /etc/passwd, /etc/group and
    /// /etc/shadow for root (`requireImage`).
    public static let bashImage = "vigil-test-bash:1"
    /// The host programs in `bashImage`, each at /bin/NAME.
    public static let bashImagePrograms = ["bash", "cat", "sleep", "sort", "seq", "true"]
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

    /// Unless the engine and image `name` are ready, throws `cannotRun` (a skip, or a failure
    /// under VIGIL_REQUIRE_BPF=1). `image`, `bashImage`, `accountsImage` and `pythonImage` are
    /// made once per test process when missing; any other image needs only the engine.
    public static func requireImage(_ name: String) throws {
        try require()
        guard case .failure(let unavailable) = readiness(of: name) else { return }
        throw cannotRun("needs \(name): \(unavailable)")
    }

    /// Whether image `name` is ready beyond the engine (made once, on first ask).
    private static func readiness(of name: String) -> Result<Void, Unavailable> {
        switch name {
        case bashImage: bashReadiness
        case accountsImage: accountsReadiness
        case pythonImage: pythonReadiness
        default: .success(())
        }
    }

    /// Busybox (static) with links for sh, sleep, cat, echo, sed, cp and mv (Debian's busybox has
    /// no adduser), and account files: /etc/passwd, /etc/group, /etc/shadow for root, and /home
    /// (`requireImage`).
    public static let accountsImage = "vigil-test-accounts:2"

    private static let accountsReadiness: Result<Void, Unavailable> = Result {
        let busybox = run(["which", "busybox"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        try importIfMissing(accountsImage, hint: "is \(busybox) static? apt-get install busybox-static") { rootfs in
            try FileManager.default.copyItem(atPath: busybox, toPath: "\(rootfs)/bin/busybox")
            for applet in ["sh", "sleep", "cat", "true", "echo", "sed", "cp", "mv"] {
                try FileManager.default.createSymbolicLink(atPath: "\(rootfs)/bin/\(applet)", withDestinationPath: "busybox")
            }
            try FileManager.default.createDirectory(atPath: "\(rootfs)/home", withIntermediateDirectories: true)
            try "root:x:0:0:root:/root:/bin/sh\n".write(toFile: "\(rootfs)/etc/passwd", atomically: false, encoding: .utf8)
            try "root:x:0:\n".write(toFile: "\(rootfs)/etc/group", atomically: false, encoding: .utf8)
            try "root:*:19000:0:99999:7:::\n".write(toFile: "\(rootfs)/etc/shadow", atomically: false, encoding: .utf8)
        }
    }.mapError { $0 as? Unavailable ?? Unavailable(description: "\($0)") }

    /// A running container started for one test.
    public struct Container {
        /// The full 64-hex id `docker run -d` printed.
        public var id: String
        /// `vigil-ct-<random>`.
        public var name: String
    }

    /// Starts `docker run -d --rm --network NETWORK --name vigil-ct-<random> OPTIONS... IMAGE COMMAND...`
    /// and registers its removal (`docker rm -f`) as a teardown block of `testCase`.
    public static func startContainer(
        for testCase: XCTestCase, image: String = image, command: [String] = ["sleep", "30"], options: [String] = [],
        network: String = "none"
    ) throws -> Container {
        try requireImage(image)
        let name = "vigil-ct-\(UUID().uuidString.prefix(8).lowercased())"
        testCase.addTeardownBlock { _ = run(["docker", "rm", "-f", name]) }
        let result = run(["docker", "run", "-d", "--rm", "--network", network, "--name", name] + options + [image] + command)
        let id = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0, id.count == 64 else {
            throw Unavailable(description: "docker run \(image) failed (\(result.status)): \(result.errors)")
        }
        return Container(id: id, name: name)
    }

    /// Creates a user-defined bridge network `vigil-net-<random>` (containers on it reach each
    /// other by name and alias through Docker's embedded DNS at 127.0.0.11) and registers its
    /// removal as a teardown block of `testCase` (run after its containers' removal).
    public static func createNetwork(for testCase: XCTestCase) throws -> String {
        try require()
        let name = "vigil-net-\(UUID().uuidString.prefix(8).lowercased())"
        let result = run(["docker", "network", "create", name])
        guard result.status == 0 else { throw Unavailable(description: "docker network create failed (\(result.status)): \(result.errors)") }
        testCase.addTeardownBlock { _ = run(["docker", "network", "rm", name]) }
        return name
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
        let busybox = run(["which", "busybox"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        try importIfMissing(image, hint: "is \(busybox) static? apt-get install busybox-static") { rootfs in
            try FileManager.default.copyItem(atPath: busybox, toPath: "\(rootfs)/bin/busybox")
            for applet in ["sh", "sleep", "cat", "true", "echo", "ls", "ps", "id"] {
                try FileManager.default.createSymbolicLink(atPath: "\(rootfs)/bin/\(applet)", withDestinationPath: "busybox")
            }
        }
    }

    private static let bashReadiness: Result<Void, Unavailable> = Result {
        try importIfMissing(bashImage, hint: "built from the host's programs and their ldd closure") { rootfs in
            var programs: [(host: String, image: String)] = []
            for program in bashImagePrograms {
                let path = run(["which", program]).output.trimmingCharacters(in: .whitespacesAndNewlines)
                guard path.hasPrefix("/") else { throw Unavailable(description: "no \(program) on this host's PATH") }
                programs.append((path, "/bin/\(program)"))
            }
            try copyWithLibraries(programs, into: rootfs)
            try "root:x:0:0:root:/root:/bin/bash\n".write(toFile: "\(rootfs)/etc/passwd", atomically: false, encoding: .utf8)
            try "root:x:0:\n".write(toFile: "\(rootfs)/etc/group", atomically: false, encoding: .utf8)
            try "root:*:19000:0:99999:7:::\n".write(toFile: "\(rootfs)/etc/shadow", atomically: false, encoding: .utf8)
        }
    }.mapError { $0 as? Unavailable ?? Unavailable(description: "\($0)") }

    /// The host's /usr/bin/python3 (at /usr/bin/python3 and /bin/python3), its standard library
    /// directory (sys.path's /usr/lib/python3.X with lib-dynload), the shared libraries `ldd`
    /// lists for the interpreter and every extension module, and root in /etc/passwd and
    /// /etc/group; no registry is needed (`requireImage`).
    public static let pythonImage = "vigil-test-python3:1"
    /// The host's Debian python3 (not a pyenv shim found first on PATH) the image is built from.
    public static let hostPython = "/usr/bin/python3"

    private static let pythonReadiness: Result<Void, Unavailable> = Result {
        try importIfMissing(pythonImage, hint: "built from \(hostPython), its standard library and their ldd closure",
                            smoke: [hostPython, "-c", "import http.server"]) { rootfs in
            let files = FileManager.default
            guard files.isExecutableFile(atPath: hostPython) else { throw Unavailable(description: "no \(hostPython) on this host") }
            let query = run([hostPython, "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"])
            let stdlib = query.output.trimmingCharacters(in: .whitespacesAndNewlines)
            guard query.status == 0, stdlib.hasPrefix("/") else { throw Unavailable(description: "\(hostPython) names no stdlib: \(query.errors)") }
            try files.createDirectory(atPath: rootfs + (stdlib as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try files.copyItem(atPath: stdlib, toPath: rootfs + stdlib)
            let modules = (try? files.contentsOfDirectory(atPath: stdlib + "/lib-dynload")) ?? []
            try copyWithLibraries([(hostPython, hostPython), (hostPython, "/bin/python3")], into: rootfs,
                                  alsoLibrariesOf: modules.filter { $0.hasSuffix(".so") }.map { stdlib + "/lib-dynload/" + $0 })
            try "root:x:0:0:root:/root:/bin/sh\n".write(toFile: "\(rootfs)/etc/passwd", atomically: false, encoding: .utf8)
            try "root:x:0:\n".write(toFile: "\(rootfs)/etc/group", atomically: false, encoding: .utf8)
        }
    }.mapError { $0 as? Unavailable ?? Unavailable(description: "\($0)") }

    /// Copies each host program (the file its path resolves to) to `image` under `rootfs`, and
    /// the shared libraries `ldd` lists for the programs and for `alsoLibrariesOf` (files already
    /// in place, such as extension modules), each at the path asked for (the interpreter's is
    /// fixed in the ELF) with the content of the file it names.
    private static func copyWithLibraries(_ programs: [(host: String, image: String)], into rootfs: String,
                                          alsoLibrariesOf others: [String] = []) throws {
        let files = FileManager.default
        var libraries: Set<String> = []
        for (host, image) in programs {
            try files.createDirectory(atPath: rootfs + (image as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try files.copyItem(atPath: URL(fileURLWithPath: host).resolvingSymlinksInPath().path, toPath: rootfs + image)
        }
        for path in Set(programs.map(\.host)).sorted() + others {
            let ldd = run(["ldd", path])
            guard ldd.status == 0 else { throw Unavailable(description: "ldd \(path) failed: \(ldd.errors)") }
            libraries.formUnion(sharedLibraries(inLddOutput: ldd.output))
        }
        for library in libraries where !files.fileExists(atPath: rootfs + library) {
            try files.createDirectory(atPath: rootfs + (library as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try files.copyItem(atPath: URL(fileURLWithPath: library).resolvingSymlinksInPath().path, toPath: rootfs + library)
        }
    }

    /// The absolute paths of the libraries (and the interpreter) in the output of `ldd PROGRAM`:
    /// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, `/lib64/ld-linux-x86-64.so.2 (0x...)`.
    static func sharedLibraries(inLddOutput output: String) -> Set<String> {
        var paths: Set<String> = []
        for line in output.split(separator: "\n") {
            let words = line.split(separator: " ", omittingEmptySubsequences: true).map { $0.trimmingCharacters(in: .whitespaces) }
            let path = words.firstIndex(of: "=>").flatMap { $0 + 1 < words.count ? words[$0 + 1] : nil } ?? words.first
            if let path, path.hasPrefix("/") { paths.insert(path) }
        }
        return paths
    }

    /// Unless `name` exists: makes a root filesystem (bin, proc, sys, dev, etc, tmp, filled by
    /// `populate`), imports it (`tar -C ROOTFS -c . | docker import - NAME`) and checks that
    /// `command` (`true` by default) runs in it (else removes it again; `hint` says what to check).
    private static func importIfMissing(_ name: String, hint: String, smoke command: [String] = ["true"],
                                        populate: (String) throws -> Void) throws {
        if run(["docker", "image", "inspect", name]).status == 0 { return }
        let rootfs = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-rootfs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: rootfs) }
        for directory in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
            try FileManager.default.createDirectory(atPath: "\(rootfs)/\(directory)", withIntermediateDirectories: true)
        }
        try populate(rootfs)
        let imported = run(["sh", "-c", "tar -C '\(rootfs)' -c . | docker import - \(name)"])
        guard imported.status == 0 else {
            throw Unavailable(description: "docker import \(name) failed: \(imported.errors)")
        }
        let smoke = run(["docker", "run", "--rm", "--network", "none", name] + command)
        guard smoke.status == 0 else {
            _ = run(["docker", "image", "rm", name])
            throw Unavailable(description: "\(name) does not run (\(hint)): \(smoke.errors)")
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
