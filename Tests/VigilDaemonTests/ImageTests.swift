import Foundation
import VigilTestSupport
import XCTest
import Yams

/// The container image of deploy/Dockerfile (scripts/build-image.sh, `make image`), run with the
/// `docker run` flags documented in deploy/Dockerfile, driven by this host's CLI through the
/// bind-mounted /run/vigil.
final class ImageTests: XCTestCase {
    /// The repository's root.
    static let repository = DockerTestEngine.repository

    /// The arguments of the `docker run` command in deploy/Dockerfile's header, between `run` and
    /// the image, without `-d` and `--name NAME`: the flags the documentation tells users to pass.
    struct NoRunCommand: Error {}

    static func documentedRunFlags() throws -> [String] {
        let dockerfile = try String(contentsOfFile: repository + "/deploy/Dockerfile", encoding: .utf8)
        var command = "", inCommand = false
        for line in dockerfile.split(separator: "\n") {
            let text = line.drop(while: { $0 == "#" || $0 == " " })
            if text.hasPrefix("docker run ") { inCommand = true }
            guard inCommand else { continue }
            command += " " + text.replacingOccurrences(of: "\\", with: " ")
            if !text.hasSuffix("\\") { break }
        }
        var words = command.split(separator: " ").map(String.init)
        guard words.count > 3, words.prefix(2) == ["docker", "run"] else {
            XCTFail("no `docker run` command in the header of deploy/Dockerfile")
            throw NoRunCommand()
        }
        words = Array(words.dropFirst(2).dropLast())
        if let name = words.firstIndex(of: "--name") { words.removeSubrange(name...(name + 1)) }
        return words.filter { $0 != "-d" }
    }

    /// deploy/daemonset.yaml parses, and its pod asks for what the tested `docker run` command
    /// passes: the host's pid namespace, the same added capabilities, and a host path for every
    /// bind mount but the docker socket (Kubernetes nodes run containerd or CRI-O). It cannot
    /// run on a cluster here.
    func testTheDaemonSetMatchesTheTestedRunFlags() throws {
        let text = try String(contentsOfFile: Self.repository + "/deploy/daemonset.yaml", encoding: .utf8)
        let documents = try Yams.load_all(yaml: text).map { $0 as? [String: Any] ?? [:] }
        let daemonSet = try XCTUnwrap(documents.first { $0["kind"] as? String == "DaemonSet" })
        let pod = try XCTUnwrap(((daemonSet["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
        let container = try XCTUnwrap((pod["containers"] as? [[String: Any]])?.first)
        XCTAssertEqual(container["image"] as? String, "vigil:latest", "as `make image` tags it")
        XCTAssertEqual(pod["hostPID"] as? Bool, true)

        let flags = try Self.documentedRunFlags()
        XCTAssertTrue(flags.contains("--pid=host"))
        let capabilities = zip(flags, flags.dropFirst()).filter { $0.0 == "--cap-add" }.map { $0.1 }
        let added = ((container["securityContext"] as? [String: Any])?["capabilities"] as? [String: Any])?["add"] as? [String]
        XCTAssertEqual(Set(added ?? []), Set(capabilities))

        let volumes = Dictionary(uniqueKeysWithValues: (pod["volumes"] as? [[String: Any]] ?? []).compactMap { volume in
            ((volume["hostPath"] as? [String: Any])?["path"] as? String).map { (volume["name"] as? String ?? "", $0) }
        })
        let mounts = (container["volumeMounts"] as? [[String: Any]] ?? []).compactMap { mount -> (String, String, Bool)? in
            guard let host = volumes[mount["name"] as? String ?? ""], let path = mount["mountPath"] as? String else { return nil }
            return (host, path, mount["readOnly"] as? Bool ?? false)
        }
        let binds = zip(flags, flags.dropFirst()).filter { $0.0 == "-v" }.map { $0.1.split(separator: ":").map(String.init) }
        for bind in binds where bind[1] != "/var/run/docker.sock" {
            let readOnly = bind.count > 2 && bind[2] == "ro"
            // /etc/vigil is split in the manifest: the ConfigMap's vigil.yaml and the host's rules.d.
            let path = bind[1] == "/etc/vigil" ? "/etc/vigil/rules.d" : bind[1]
            XCTAssertTrue(mounts.contains { $0.0 == path && $0.1 == path && $0.2 == readOnly }, "\(bind.joined(separator: ":")) in \(mounts)")
        }
    }

    func testTheImageRunsTheDaemonWithTheDocumentedFlagsAndTheHostCLIDrivesIt() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        try DockerTestEngine.require()
        // vigil:<tree> from `make image` when it is current, else this test's own build packaged.
        let built = try runCapturing("/bin/bash", [Self.repository + "/scripts/build-image.sh", "--binary", TestDaemon.binary])
        XCTAssertEqual(built.status, 0, built.stderr)
        let image = try XCTUnwrap(built.stdout.split(separator: "\n").last.map(String.init), built.stderr)

        let directory = try temporaryDirectory()
        // As on a fresh host: no /run/vigil (docker run makes the bind mount's source) and an
        // /etc/vigil without rules.d (the daemon makes it).
        let run = directory + "/run", etc = directory + "/etc"
        try FileManager.default.createDirectory(atPath: etc, withIntermediateDirectories: true)
        // An https action: the daemon opens libssl (dlopen, which ldd does not show) and the CA
        // store at start, and refuses to start when it cannot.
        try "actions:\n  named:\n    tlscheck: {type: webhook, url: \"https://127.0.0.1:9/\"}\n"
            .write(toFile: etc + "/vigil.yaml", atomically: true, encoding: .utf8)
        let name = "vigil-image-\(UUID().uuidString.prefix(8).lowercased())"
        addTeardownBlock {
            DockerTestEngine.run(["docker", "rm", "-f", name])
            try? FileManager.default.removeItem(atPath: directory)
        }
        // The documented flags, with this test's directories as the host side of /run/vigil and
        // /etc/vigil.
        let flags = try Self.documentedRunFlags().map { flag in
            flag.replacingOccurrences(of: "/run/vigil:/run/vigil", with: "\(run):/run/vigil")
                .replacingOccurrences(of: "/etc/vigil:/etc/vigil", with: "\(etc):/etc/vigil")
        }
        XCTAssertTrue(flags.contains("\(run):/run/vigil") && flags.contains("\(etc):/etc/vigil"), "\(flags)")
        let started = DockerTestEngine.run(["docker", "run", "-d", "--name", name] + flags + [image])
        guard started.status == 0 else { return XCTFail("docker run \(flags) \(image) failed: \(started.errors)") }
        let logs = { DockerTestEngine.run(["docker", "logs", name]).errors.suffix(3000) }

        let socket = run + "/vigil.sock"
        let cli = { (arguments: [String]) in try runCapturing(TestDaemon.binary, arguments + ["--socket", socket]) }
        let up = try waitUntil(seconds: 60) { try cli(["status", "--json"]).status == 0 }
        XCTAssertTrue(up, "the API socket \(socket) answers the host's CLI; container log:\n\(logs())")
        guard up else { return }

        XCTAssertTrue(DockerTestEngine.run(["docker", "logs", name]).errors.contains("action 'tlscheck': https, certificate verified against the system CA store"),
                      "the image carries libssl and the CA bundle: \(logs())")

        // Sensors active. The default rules need syscalls (ptrace, chmod, ...): the syscalls
        // sensor is loaded for them by the engine once the rules are in, which can be after the
        // API answers (the daemon logs "sensor syscalls loaded for the rules"); on a busy host
        // that takes seconds.
        func sensorsNow() throws -> [[String: Any]] {
            let status = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(cli(["status", "--json"]).stdout.utf8)) as? [String: Any])
            return try XCTUnwrap(status["sensors"] as? [[String: Any]])
        }
        _ = try waitUntil(seconds: 60) { try sensorsNow().contains { $0["name"] as? String == "syscalls" } }
        let sensors = try sensorsNow()
        XCTAssertEqual(Set(sensors.compactMap { $0["name"] as? String }), ["process", "file", "syscalls"], "container log:\n\(logs())")
        for hook in sensors.flatMap({ $0["hooks"] as? [[String: Any]] ?? [] }) {
            XCTAssertFalse((hook["active"] as? String ?? "").isEmpty, "every hook runs a variant: \(hook)")
        }

        // An exec on the host, named with the host's accounts (the image has no /etc/passwd of its own).
        let id = UUID().uuidString.prefix(8).lowercased()
        let execs = try StreamClient(["events", "-o", "json", "--filter", "evt.type = execve and proc.args contains \(id)", "--socket", socket])
        let exec = execs.first(triggering: { try runProgram("/bin/echo", ["exec-\(id)"]) }, where: { ($0["proc.args"] as? String) == "exec-\(id)" })
        let hostExec = try XCTUnwrap(exec, "an exec on the host is delivered: \(execs.stderr)\n\(logs())")
        XCTAssertEqual(hostExec["proc.name"] as? String, "echo")
        XCTAssertEqual(hostExec["user.name"] as? String, "root")
        XCTAssertEqual(hostExec["container.id"] as? String, "host")

        // A rule created through the CLI lands in the host's rules directory and fires.
        let ruleFile = directory + "/marker.yaml"
        try DaemonTests.markerRule(id).write(toFile: ruleFile, atomically: true, encoding: .utf8)
        let created = try cli(["create", ruleFile])
        XCTAssertEqual(created.status, 0, created.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: etc + "/rules.d/marker.yaml"), "written through the /etc/vigil mount")
        let alerts = try StreamClient(["alerts", "-o", "json", "--socket", socket])
        let alert = alerts.first(triggering: { try runProgram("/bin/sh", ["-c", "cat /tmp/vigil-marker-\(id) 2>/dev/null; true"]) }, where: {
            ($0["rule"] as? String) == "Marker opened \(id)"
        })
        XCTAssertNotNil(alert, "the rule fires: \(alerts.stderr)\n\(logs())")

        // A process that ran before the daemon started (this test) is known from /proc, with its
        // executable (readable with SYS_PTRACE only: it has capabilities the daemon lacks). The
        // rule makes the kernel pass opens of the marker.
        let opens = try StreamClient(["events", "-o", "json", "--filter", "fd.name = /tmp/vigil-marker-\(id) and proc.pid = \(getpid())", "--socket", socket])
        let seeded = opens.first(triggering: { _ = FileManager.default.contents(atPath: "/tmp/vigil-marker-\(id)") }, where: { _ in true })
        let ownOpen = try XCTUnwrap(seeded, "an open by the test process is delivered: \(opens.stderr)\n\(logs())")
        XCTAssertEqual(ownOpen["proc.pid"] as? Int, Int(getpid()))
        XCTAssertEqual(ownOpen["proc.exepath"] as? String, try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))

        // An exec in another container carries that container's id and name (the docker socket).
        let container = try DockerTestEngine.startContainer(for: self, command: ["sleep", "60"])
        let inContainer = try StreamClient(["events", "-o", "json", "--filter", "evt.type = execve and proc.args contains \(id)", "--socket", socket])
        let containerExec = inContainer.first(triggering: { DockerTestEngine.run(["docker", "exec", container.name, "echo", "ct-\(id)"]) }, where: {
            ($0["proc.args"] as? String) == "ct-\(id)"
        })
        let event = try XCTUnwrap(containerExec, "an exec in \(container.name) is delivered: \(inContainer.stderr)\n\(logs())")
        XCTAssertEqual(event["container.id"] as? String, String(container.id.prefix(12)))
        XCTAssertEqual(event["container.name"] as? String, container.name)
        XCTAssertEqual(event["container.image"] as? String, DockerTestEngine.image)

        // docker stop: SIGTERM (STOPSIGNAL), graceful shutdown, exit 0, socket removed.
        for client in [execs, opens, alerts, inContainer] { client.stop() }
        XCTAssertEqual(DockerTestEngine.run(["docker", "stop", "-t", "30", name]).status, 0)
        let exitCode = DockerTestEngine.run(["docker", "inspect", "-f", "{{.State.ExitCode}}", name]).output
        XCTAssertEqual(exitCode.trimmingCharacters(in: .whitespacesAndNewlines), "0", String(logs()))
        XCTAssertFalse(FileManager.default.fileExists(atPath: socket), "the socket is removed on shutdown")
    }
}
