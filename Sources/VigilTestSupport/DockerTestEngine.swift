import Foundation
import XCTest

/// A real Docker Engine for tests, prepared once per test process.
///
/// `DockerTestEngine.require()` makes sure that:
/// 1. `docker` and `dockerd` exist (else, as root, `apt-get install -y docker.io busybox-static`);
/// 2. the engine answers on /var/run/docker.sock (else it starts
///    `dockerd --iptables=false --bridge=none --data-root /var/lib/docker`, logging to
///    /var/log/dockerd.log, detached so later tests reuse it, and waits for the socket);
/// 3. the image `vigil-test-busybox:1` exists (else it imports one: a root filesystem holding the
///    static /bin/busybox and links for its applets) and runs.
///
/// `requireBashImage()` also makes `vigil-test-bash:1`: the host's own bash and coreutils (real
/// programs, not busybox applets: their own execs, forks and threads) and their ldd closure.
///
/// When any step fails the test cannot run: `require()` throws `cannotRun` with the reason (a
/// skip, or a failure under VIGIL_REQUIRE_BPF=1).
/// Containers come from `startContainer(for:)`, which removes them when the test ends.
///
/// Lives in VigilTestSupport, shared by every test target that needs Docker.
public enum DockerTestEngine {
    public static let image = "vigil-test-busybox:1"
    /// The image of `requireBashImage()`.
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

    /// Unless the engine and `bashImage` are ready, throws `cannotRun` (a skip, or a failure under
    /// VIGIL_REQUIRE_BPF=1). The image holds the host's /bin/bash, cat, sleep, sort (which
    /// makes threads with --parallel), seq and true, the shared libraries `ldd` lists for them,
    /// and an /etc/passwd, /etc/group and /etc/shadow for root.
    public static func requireBashImage() throws {
        try require()
        guard case .failure(let unavailable) = bashReadiness else { return }
        throw cannotRun("needs \(bashImage): \(unavailable)")
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
        for testCase: XCTestCase, image: String = image, command: [String] = ["sleep", "30"]
    ) throws -> Container {
        if image == bashImage { try requireBashImage() } else { try require() }
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
        if !engineAnswers() { try startEngine() }
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

    private static func engineAnswers() -> Bool {
        run(["docker", "info", "--format", "{{.ServerVersion}}"]).status == 0
    }

    private static func startEngine() throws {
        guard getuid() == 0 else { throw Unavailable(description: "no engine on \(socketPath), and starting dockerd needs root") }
        try spawnDaemon(
            ["dockerd", "--iptables=false", "--bridge=none", "--data-root", "/var/lib/docker"],
            logPath: "/var/log/dockerd.log")
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if engineAnswers() { return }
            usleep(250_000)
        }
        let log = (try? String(contentsOfFile: "/var/log/dockerd.log", encoding: .utf8)) ?? ""
        throw Unavailable(
            description: "started dockerd but \(socketPath) did not answer within 60 s; /var/log/dockerd.log ends: \(log.suffix(600))")
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
            let files = FileManager.default
            var libraries: Set<String> = []
            for program in bashImagePrograms {
                let path = run(["which", program]).output.trimmingCharacters(in: .whitespacesAndNewlines)
                guard path.hasPrefix("/") else { throw Unavailable(description: "no \(program) on this host's PATH") }
                try files.copyItem(atPath: URL(fileURLWithPath: path).resolvingSymlinksInPath().path, toPath: "\(rootfs)/bin/\(program)")
                let ldd = run(["ldd", path])
                guard ldd.status == 0 else { throw Unavailable(description: "ldd \(path) failed: \(ldd.errors)") }
                libraries.formUnion(sharedLibraries(inLddOutput: ldd.output))
            }
            for library in libraries {
                // At the path the program asks for (the interpreter's is fixed in the ELF), with
                // the content of the file it names.
                try files.createDirectory(atPath: rootfs + (library as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try files.copyItem(atPath: URL(fileURLWithPath: library).resolvingSymlinksInPath().path, toPath: rootfs + library)
            }
            try "root:x:0:0:root:/root:/bin/bash\n".write(toFile: "\(rootfs)/etc/passwd", atomically: false, encoding: .utf8)
            try "root:x:0:\n".write(toFile: "\(rootfs)/etc/group", atomically: false, encoding: .utf8)
            try "root:*:19000:0:99999:7:::\n".write(toFile: "\(rootfs)/etc/shadow", atomically: false, encoding: .utf8)
        }
    }.mapError { $0 as? Unavailable ?? Unavailable(description: "\($0)") }

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
    /// `true` runs in it (else removes it again; `hint` says what to check).
    private static func importIfMissing(_ name: String, hint: String, populate: (String) throws -> Void) throws {
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
        let smoke = run(["docker", "run", "--rm", "--network", "none", name, "true"])
        guard smoke.status == 0 else {
            _ = run(["docker", "image", "rm", name])
            throw Unavailable(description: "\(name) does not run (\(hint)): \(smoke.errors)")
        }
    }

    // MARK: - Running commands

    /// Starts a daemon in its own session, stdin from /dev/null, stdout and stderr to `logPath`,
    /// holding none of this process's other descriptors (`posix_spawnp`). Not `Process` or
    /// `sh -c '... &'`: Foundation's `Process` waits until every holder of a socket it hands the
    /// child has exited, and a daemon that inherited it never does.
    private static func spawnDaemon(_ arguments: [String], logPath: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        for descriptor in inheritableDescriptors() where descriptor > 2 {
            posix_spawn_file_actions_addclose(&actions, descriptor)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        let spawnSetSID: Int16 = 0x80  // POSIX_SPAWN_SETSID (glibc 2.26+), which Swift does not import
        posix_spawnattr_setflags(&attributes, spawnSetSID)

        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let status = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ)
        guard status == 0 else {
            throw Unavailable(description: "cannot start \(arguments[0]): \(String(cString: strerror(status)))")
        }
    }

    /// This process's open descriptors without `FD_CLOEXEC` (from /proc/self/fd).
    private static func inheritableDescriptors() -> [Int32] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return names.compactMap { Int32($0) }.filter { descriptor in
            let flags = fcntl(descriptor, F_GETFD)
            return flags >= 0 && flags & FD_CLOEXEC == 0
        }
    }

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
