import Foundation
import VigilBPF
import VigilTestSupport
import XCTest

/// The daemon's API for the seccomp profiles kept per image (STATE_DIR/seccomp): listed, served
/// as OCI JSON, and listed by `vigil seccomp list --daemon`.
final class SeccompAPITests: XCTestCase {
    static let busybox = """
        {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
         "syscalls": [{"names": ["exit_group", "read", "write", "openat"], "action": "SCMP_ACT_ALLOW"}]}
        """

    /// Needs the sensors and Docker; tags the test image as each REPOSITORY:TAG (removed in
    /// teardown), TAG random: no other test's container is taken for these. Returns TAG.
    private func requireDockerAndTag(_ repositories: [String]) throws -> String {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        try DockerTestEngine.require()
        let tag = UUID().uuidString.prefix(8).lowercased()
        for repository in repositories {
            let image = "\(repository):\(tag)"
            XCTAssertEqual(DockerTestEngine.run(["docker", "tag", DockerTestEngine.image, image]).status, 0)
            addTeardownBlock { _ = DockerTestEngine.run(["docker", "rmi", image]) }
        }
        return tag
    }

    func testKeptProfilesAreListedAndServed() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let directory = NSTemporaryDirectory() + "vigil-daemon-\(UUID().uuidString.prefix(8))"
        let store = directory + "/state/seccomp"
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        // As `vigil seccomp record --image docker.io/library/busybox:1.36` keeps it.
        try Self.busybox.write(toFile: store + "/docker.io_library_busybox_1.36.json", atomically: true, encoding: .utf8)
        let daemon = try TestDaemon(directory: directory)

        let list = try daemon.request("GET", "/v1/seccomp/profiles")
        XCTAssertEqual(list.status, 200, list.body)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(list.body.utf8)) as? [String: Any], list.body)
        XCTAssertEqual(object["directory"] as? String, store)
        let profiles = try XCTUnwrap(object["profiles"] as? [[String: Any]], list.body)
        XCTAssertEqual(profiles.count, 1, list.body)
        XCTAssertEqual(profiles.first?["name"] as? String, "docker.io_library_busybox_1.36")
        XCTAssertEqual(profiles.first?["syscalls"] as? Int, 4)
        XCTAssertEqual(profiles.first?["default_action"] as? String, "SCMP_ACT_ERRNO")
        XCTAssertNil(profiles.first?["runs"], "a file put there by hand: no count of runs")
        let recorded = try XCTUnwrap(profiles.first?["recorded_at"] as? String, list.body)
        XCTAssertEqual(recorded.prefix(4), String(Calendar(identifier: .gregorian).component(.year, from: Date())).prefix(4), recorded)

        // By image reference (slashes and all) and by the listed name: the same OCI JSON.
        for target in ["/v1/seccomp/profiles/docker.io/library/busybox:1.36", "/v1/seccomp/profiles/docker.io%2Flibrary%2Fbusybox%3A1.36",
                       "/v1/seccomp/profiles/docker.io_library_busybox_1.36"] {
            let profile = try daemon.request("GET", target)
            XCTAssertEqual(profile.status, 200, "\(target): \(profile.body)")
            let json = try XCTUnwrap(try? JSONSerialization.jsonObject(with: Data(profile.body.utf8)) as? [String: Any], profile.body)
            XCTAssertEqual(json["defaultAction"] as? String, "SCMP_ACT_ERRNO")
            XCTAssertEqual((json["syscalls"] as? [[String: Any]])?.first?["names"] as? [String], ["exit_group", "read", "write", "openat"])
        }
        let missing = try daemon.request("GET", "/v1/seccomp/profiles/alpine:3")
        XCTAssertEqual(missing.status, 404, missing.body)
        XCTAssertTrue(missing.body.contains("alpine:3"), missing.body)

        // The CLI through the socket.
        let cli = try daemon.vigil(["seccomp", "list", "--daemon"])
        XCTAssertEqual(cli.status, 0, cli.stderr)
        XCTAssertTrue(cli.stdout.contains("docker.io_library_busybox_1.36"), cli.stdout)
        XCTAssertTrue(cli.stdout.contains("4 syscalls"), cli.stdout)
        let shown = try daemon.vigil(["seccomp", "list", "--daemon", "--image", "docker.io/library/busybox:1.36"])
        XCTAssertEqual(shown.status, 0, shown.stderr)
        XCTAssertTrue(shown.stdout.contains("\"openat\""), shown.stdout)
        let none = try daemon.vigil(["seccomp", "list", "--daemon", "--image", "alpine:3"])
        XCTAssertEqual(none.status, 1, none.stdout)
        XCTAssertTrue(none.stderr.contains("alpine:3"), none.stderr)

        // A file of the store that is not a profile: 500 naming it.
        try "{}".write(toFile: store + "/broken.json", atomically: true, encoding: .utf8)
        let broken = try daemon.request("GET", "/v1/seccomp/profiles")
        XCTAssertEqual(broken.status, 500, broken.body)
        XCTAssertTrue(broken.body.contains("broken.json"), broken.body)
    }

    /// `seccomp.record.label`: a container with the label is recorded from its start and its
    /// image's profile appears in the API when it stops; a container without it is not recorded.
    func testTheDaemonRecordsContainersWithTheLabel() throws {
        let tag = try requireDockerAndTag(["vigil-seccomp-learn", "vigil-seccomp-other"])
        let labelled = "vigil-seccomp-learn:\(tag)", other = "vigil-seccomp-other:\(tag)"
        let label = "vigil.seccomp.test=learn-\(tag)"
        let daemon = try TestDaemon(extraConfig: "seccomp:\n  record: {label: \"\(label)\"}\n")
        // The line is logged once the sensor watches the runtime's cgroups (the daemon may answer
        // its API a moment before).
        XCTAssertTrue(waitUntil(seconds: 20) { daemon.stderr.sofar.contains("seccomp: recording containers labelled \(label)") },
                      daemon.stderr.sofar)

        // The recorder tells containers apart by polling their cgroups every 100 ms and needs
        // the cgroup still there (README: a container gone sooner is not recorded): the workload
        // lives 3 s, so a poll delayed by a loaded machine still finds it.
        let workload = ["sh", "-c", "ls /; cat /etc/passwd; echo done; sleep 3"]
        _ = try DockerTestEngine.startContainer(for: self, image: labelled, command: workload, options: ["--label", label])
        _ = try DockerTestEngine.startContainer(for: self, image: other, command: workload, options: ["--label", "vigil.seccomp.test=other-\(tag)"])
        let target = "/v1/seccomp/profiles/" + labelled
        XCTAssertTrue(waitUntil(seconds: 30) { (try? daemon.request("GET", target).status) == 200 },
                      "the profile of \(labelled) is kept when its container stops: \(daemon.diagnostics)")
        let answer = try daemon.request("GET", target)
        let json = try XCTUnwrap(try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any], answer.body)
        let names = Set(((json["syscalls"] as? [[String: Any]]) ?? []).flatMap { $0["names"] as? [String] ?? [] })
        for name in ["execve", "write", "exit_group", "getdents64"] { XCTAssertTrue(names.contains(name), "\(name): \(names.sorted())") }
        XCTAssertTrue(names.contains("nanosleep") || names.contains("clock_nanosleep"), names.sorted().description)
        for name in ["reboot", "mount", "unshare", "ptrace", "bpf", "keyctl", "mkdir", "mkdirat"] {
            XCTAssertFalse(names.contains(name), "\(name) not recorded: \(names.sorted())")
        }
        XCTAssertEqual(try daemon.request("GET", "/v1/seccomp/profiles/" + other).status, 404, "the container without the label is not recorded")
        let list = try daemon.request("GET", "/v1/seccomp/profiles")
        XCTAssertTrue(list.body.contains(#""name":"vigil-seccomp-learn_\#(tag)""#), list.body)
        XCTAssertTrue(list.body.contains(#""image":"vigil-seccomp-learn:\#(tag)""#), list.body)
        XCTAssertTrue(list.body.contains(#""runs":1"#), list.body)
        XCTAssertFalse(list.body.contains("vigil-seccomp-other"), list.body)
        XCTAssertTrue(daemon.stderr.sofar.contains("merged into"), daemon.stderr.sofar)

        // The served profile runs the recorded workload.
        let file = daemon.directory + "/learned.json"
        try answer.body.write(toFile: file, atomically: true, encoding: .utf8)
        let applied = DockerTestEngine.run(["docker", "run", "--rm", "--network", "none", "--security-opt", "seccomp=\(file)", labelled] + workload)
        XCTAssertEqual(applied.status, 0, applied.errors)
        XCTAssertTrue(applied.output.contains("done"), applied.output)
    }

    /// A container with the label already running when the daemon starts is recorded from then.
    func testTheDaemonRecordsARunningContainerFromItsStart() throws {
        let tag = try requireDockerAndTag(["vigil-seccomp-early"])
        let image = "vigil-seccomp-early:\(tag)"
        let label = "vigil.seccomp.test=early-\(tag)"
        let container = try DockerTestEngine.startContainer(for: self, image: image, command: ["sh", "-c", "sleep 4; ls /; echo done"],
                                                            options: ["--label", label])
        let daemon = try TestDaemon(extraConfig: "seccomp:\n  record: {label: \"\(label)\"}\n")
        XCTAssertTrue(waitUntil(seconds: 10) { daemon.stderr.sofar.contains("recording running container \(container.name)") }, daemon.stderr.sofar)
        let target = "/v1/seccomp/profiles/" + image
        XCTAssertTrue(waitUntil(seconds: 30) { (try? daemon.request("GET", target).status) == 200 }, daemon.diagnostics)
        let answer = try daemon.request("GET", target)
        XCTAssertTrue(answer.body.contains("\"getdents64\""), "ls after the daemon started is recorded: \(answer.body)")
        XCTAssertFalse(answer.body.contains("\"mount\""), answer.body)
    }
}
