import Foundation
import XCTest

/// A containerd of a test's own (Debian's containerd package): its own root, state, socket and
/// config, never the system's containerd that dockerd may use. Its CRI plugin is off unless
/// asked for (`start(for:cri:)`): most tests label containers as a kubelet's CRI would with
/// `ctr run --label`; with it, `runCRIPod` makes a pod through the CRI as a kubelet does.
/// `start(for:)` imports `DockerTestEngine.image` into its `k8s.io` namespace
/// (`docker save | ctr images import`);
/// the test's teardown kills and deletes its containers, stops it, unmounts what it left
/// mounted, removes the containers' cgroups and its directory.
public final class ContainerdTestDaemon: @unchecked Sendable {
    /// Its directory (root, state, socket, config, log).
    public let directory: String
    /// Its gRPC socket.
    public let socketPath: String
    /// The image its containers run, as containerd names it.
    public static let image = "docker.io/library/" + DockerTestEngine.image
    /// The containerd namespace of its containers (the CRI's).
    public static let namespace = "k8s.io"
    private let process: Process
    private var containers: [(id: String, cgroup: String)] = []

    /// The image of a CRI pod's sandbox (its pause process): `image` sleeping, built from it.
    public static let pauseImage = "vigil-test-pause:1"

    /// Starts one for `testCase` (stopped by its teardown), with the CRI plugin when `cri`;
    /// throws `cannotRun` when containerd, ctr or the Docker image are missing.
    public static func start(for testCase: XCTestCase, cri: Bool = false) throws -> ContainerdTestDaemon {
        for program in ["containerd", "ctr", "containerd-shim-runc-v2"] where DockerTestEngine.run(["which", program]).status != 0 {
            throw cannotRun("needs \(program): apt-get install containerd (scripts/setup.sh --test)")
        }
        try DockerTestEngine.requireImage(DockerTestEngine.image)
        if cri { try buildPauseImage() }
        let daemon = try ContainerdTestDaemon(cri: cri)
        testCase.addTeardownBlock { daemon.stop() }
        try daemon.waitUntilAnswering()
        for image in cri ? [DockerTestEngine.image, pauseImage] : [DockerTestEngine.image] {
            let imported = DockerTestEngine.run(["sh", "-c", "docker save \(image) | ctr -a \(daemon.socketPath) -n \(namespace) images import -"])
            guard imported.status == 0 else { throw unavailable("ctr images import of \(image) failed: \(imported.errors)") }
        }
        return daemon
    }

    /// Builds `pauseImage` from `DockerTestEngine.image` (offline: no registry is asked) unless
    /// Docker has it.
    private static func buildPauseImage() throws {
        guard DockerTestEngine.run(["docker", "image", "inspect", pauseImage]).status != 0 else { return }
        let context = NSTemporaryDirectory() + "vigil-pause-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: context, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: context) }
        try "FROM \(DockerTestEngine.image)\nCMD [\"sleep\", \"1000000\"]\n".write(toFile: context + "/Dockerfile", atomically: true, encoding: .utf8)
        let built = DockerTestEngine.run(["docker", "build", "-q", "-t", pauseImage, context])
        guard built.status == 0 else { throw unavailable("docker build \(pauseImage) failed: \(built.errors)") }
    }

    private init(cri: Bool) throws {
        // Short: the socket's path must fit sun_path.
        directory = "/tmp/vigil-ctrd-\(UUID().uuidString.prefix(8).lowercased())"
        socketPath = directory + "/c.sock"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // The CRI plugin, when on: the locally built pause image; no CNI (the pods use the
        // host's network); restrict_oom_score_adj, because this sandbox denies lowering
        // oom_score_adj (the kubelet's -998 for a sandbox) even to root.
        let plugins = cri ? """
            [plugins."io.containerd.grpc.v1.cri"]
              sandbox_image = "docker.io/library/\(Self.pauseImage)"
              restrict_oom_score_adj = true
              [plugins."io.containerd.grpc.v1.cri".cni]
                bin_dir = "\(directory)/cni"
                conf_dir = "\(directory)/cni"
            """ : """
            disabled_plugins = ["io.containerd.grpc.v1.cri"]
            """
        let config = """
            version = 2
            root = "\(directory)/root"
            state = "\(directory)/state"
            \(plugins)
            [grpc]
              address = "\(socketPath)"
            [ttrpc]
              address = "\(socketPath).ttrpc"
            """
        try config.write(toFile: directory + "/config.toml", atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: directory + "/log", contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["containerd", "--config", directory + "/config.toml"]
        process.standardInput = FileHandle.nullDevice
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/log"))
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    private func waitUntilAnswering() throws {
        for _ in 0..<100 {
            if ctr(["version"]).status == 0 { return }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let log = (try? String(contentsOfFile: directory + "/log", encoding: .utf8)) ?? ""
        throw unavailable("containerd did not answer on \(socketPath): \(log.suffix(1200))")
    }

    /// Runs `ctr -a SOCKET -n k8s.io ARGUMENTS`.
    @discardableResult
    public func ctr(_ arguments: [String]) -> DockerTestEngine.CommandResult {
        DockerTestEngine.run(["ctr", "-a", socketPath, "-n", Self.namespace] + arguments)
    }

    /// Starts container `id` running `command` (detached, `ctr run -d`) with `labels`, in cgroup
    /// `cgroup` (cgroupfs: a kubelet's `/kubepods/besteffort/pod<UID>/<ID>`).
    public func run(id: String, labels: [String: String], cgroup: String, command: [String] = ["sleep", "1000"]) throws {
        track(id: id, cgroup: cgroup)
        let labelArguments = labels.sorted { $0.key < $1.key }.flatMap { ["--label", "\($0.key)=\($0.value)"] }
        let result = ctr(["run", "-d", "--cgroup", cgroup] + labelArguments + [Self.image, id] + command)
        guard result.status == 0 else { throw unavailable("ctr run \(id) failed: \(result.errors)") }
    }

    /// Adds container `id` in `cgroup` to what `stop()` kills, deletes and removes.
    func track(id: String, cgroup: String) {
        containers.append((id, cgroup))
    }

    /// A kubelet's pod as containerd's CRI plugin labels it: a sandbox container carrying the
    /// pod's labels (`podLabels`) and a workload container named `container`, both in the pod's
    /// cgroup (`/kubepods/besteffort/pod<UID>/<ID>`), with fresh 64-hex ids.
    public func runPod(name: String, namespace: String, uid: String, container: String,
                       podLabels: [String: String] = [:]) throws -> (sandbox: String, workload: String) {
        let sandbox = Self.randomID(), workload = Self.randomID()
        let pod = ["io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.uid": uid]
        try run(id: sandbox, labels: pod.merging(podLabels) { $1 }.merging(["io.cri-containerd.kind": "sandbox"]) { $1 },
                cgroup: "/kubepods/besteffort/pod\(uid)/\(sandbox)")
        try run(id: workload, labels: pod.merging(["io.cri-containerd.kind": "container", "io.kubernetes.container.name": container,
                                                   "io.kubernetes.sandbox.id": sandbox]) { $1 },
                cgroup: "/kubepods/besteffort/pod\(uid)/\(workload)")
        return (sandbox, workload)
    }

    /// A container id as containerd's CRI makes them: 64 hex digits.
    public static func randomID() -> String {
        (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    /// The host pid of container `id`'s task.
    public func pid(of id: String) throws -> Int32 {
        let listed = ctr(["tasks", "ls"]).output.split(separator: "\n").first { $0.hasPrefix(id) }
        guard let pid = listed?.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap({ Int32($0) }) else {
            throw unavailable("no task \(id) in ctr tasks ls")
        }
        return pid
    }

    /// Kills and deletes the containers, stops containerd, unmounts what is left below its
    /// directory, removes the containers' cgroups and the directory.
    public func stop() {
        for (id, _) in containers {
            ctr(["tasks", "kill", "-s", "KILL", id])
            for _ in 0..<50 {
                if ctr(["tasks", "delete", id]).status == 0 || ctr(["tasks", "ls"]).output.contains(id) == false { break }
                Thread.sleep(forTimeInterval: 0.1)
            }
            ctr(["containers", "delete", id])
        }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        let mounts = ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { $0.split(separator: " ").dropFirst(4).first.map(String.init) }
            .filter { $0.hasPrefix(directory + "/") }
        for mount in mounts.reversed() { DockerTestEngine.run(["umount", "-l", mount]) }
        for (_, cgroup) in containers {
            // The container's cgroup, then its pod's and QoS class's while empty, in every hierarchy.
            var path = cgroup
            while !path.isEmpty, path != "/" {
                for hierarchy in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? [""] {
                    rmdir("/sys/fs/cgroup/\(hierarchy)\(path)")
                }
                rmdir("/sys/fs/cgroup\(path)")
                path = (path as NSString).deletingLastPathComponent
            }
        }
        containers = []
        try? FileManager.default.removeItem(atPath: directory)
    }

}

private func unavailable(_ text: String) -> DockerTestEngine.Unavailable {
    DockerTestEngine.Unavailable(description: text)
}
