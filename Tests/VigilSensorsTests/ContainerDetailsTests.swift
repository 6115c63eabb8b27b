import Foundation
import VigilContainers
import VigilEnrichment
import VigilEvents
import VigilRules
import VigilSensors
import VigilTestSupport
import XCTest

/// Falco's container.image.*, container.privileged, container.mounts and proc.is_exe_upper_layer from a real Docker
/// engine and real execs in a real container.
final class ContainerDetailsTests: XCTestCase {
    private func field(_ name: String, _ event: Event) throws -> FieldValue? {
        try XCTUnwrap(Fields.named(name), "no field \(name)").extract(event, nil)
    }

    /// A condition compiled without macros or lists.
    private func condition(_ text: String) throws -> CompiledCondition {
        try ConditionCompiler.compile(text, at: SourceLocation(file: "t", line: 1, column: 1), context: ConditionContext())
    }

    func testAnExecutableWrittenInTheContainerIsFromTheUpperLayerAndTheImagesAreNot() throws {
        try DockerTestEngine.requireImage(DockerTestEngine.bashImage)
        let harness = try TraceHarness(metadata: true)
        let marker = "vigil-\(UUID().uuidString)"
        let name = "vigil-ct-\(UUID().uuidString.prefix(8).lowercased())"
        addTeardownBlock { _ = DockerTestEngine.run(["docker", "rm", "-f", name]) }
        // `cat > /bin/seq` copies seq up into the writable layer and replaces it with true; sleep
        // stays the image's (`true` would be bash's builtin, no exec).
        let (_, events) = try harness.collectWhileRunning {
            // Not --rm: the writable layer stays until teardown removes the container, so the
            // fields can be read after the events were collected.
            let result = DockerTestEngine.run(["docker", "run", "--network", "none", "--name", name, DockerTestEngine.bashImage,
                                               "bash", "-c", ": \(marker); cat /bin/true > /bin/seq; seq; sleep 0"])
            XCTAssertEqual(result.status, 0, result.errors)
        }
        let bash = try XCTUnwrap(events.first { $0.kind == .exec && $0.comm == "bash" && $0.exec?.arguments.contains { $0.string.contains(marker) } ?? false })
        let inside = events.filter { $0.kind == .exec && $0.pidNamespace == bash.pidNamespace }
        let seq = try XCTUnwrap(inside.first { $0.comm == "seq" }, "\(inside.map(\.comm))")
        let image = try XCTUnwrap(inside.first { $0.comm == "sleep" }, "\(inside.map(\.comm))")
        XCTAssertFalse(seq.container.details.upperDir.isEmpty, "overlay2 names the upper layer")
        XCTAssertEqual(try field("proc.is_exe_upper_layer", seq), .bool(true))
        XCTAssertEqual(try field("proc.is_exe_upper_layer", image), .bool(false))
        XCTAssertEqual(try field("proc.is_exe_upper_layer", bash), .bool(false))
        // The image is "vigil-test-bash:1".
        XCTAssertEqual(try field("container.image.repository", seq), .string("vigil-test-bash"))
        XCTAssertEqual(try field("container.image.tag", seq), .string("1"))
        XCTAssertEqual(try field("container.image.digest", seq), .string(""))
        let imageID = DockerTestEngine.run(["docker", "image", "inspect", "--format", "{{.Id}}", DockerTestEngine.bashImage]).output
            .trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(try field("container.image.id", seq), .string(ByteString(String(imageID.dropFirst("sha256:".count).prefix(12)))))
        XCTAssertEqual(try field("container.privileged", seq), .bool(false))
        let host = try XCTUnwrap(events.first { $0.kind == .exec && $0.comm == "docker" })
        XCTAssertEqual(try field("container.privileged", host), .bool(false))
        XCTAssertNil(try field("container.image.repository", host))
    }

    /// `--privileged` cannot start on these machines (no CAP_SYS_RESOURCE in the bounding set),
    /// but a created container is inspected the same way.
    func testInspectTellsPrivilegedImageIDAndUpperLayer() throws {
        try DockerTestEngine.require()
        let name = "vigil-ct-\(UUID().uuidString.prefix(8).lowercased())"
        addTeardownBlock { _ = DockerTestEngine.run(["docker", "rm", "-f", name]) }
        let created = DockerTestEngine.run(["docker", "create", "--privileged", "--network", "none", "--name", name, DockerTestEngine.image, "true"])
        XCTAssertEqual(created.status, 0, created.errors)
        let details = try XCTUnwrap(try DockerClient().inspect(name))
        XCTAssertTrue(details.privileged)
        XCTAssertTrue(details.imageID.hasPrefix("sha256:"), details.imageID)
        let driver = DockerTestEngine.run(["docker", "info", "--format", "{{.Driver}}"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        if driver == "overlay2" {
            XCTAssertTrue(details.upperDir.hasSuffix("/diff"), details.upperDir)
        } else {
            XCTAssertEqual(details.upperDir, "", "the \(driver) driver has no upper layer")
        }
        let metadata = try XCTUnwrap(try DockerClient().metadata(forContainerID: details.id))
        XCTAssertEqual(metadata.privileged, true)
        XCTAssertEqual(metadata.imageID, details.imageID)
    }

    /// The labels the kubelet's runtimes put on a pod's containers name the pod and namespace
    /// (k8s.pod.name, k8s.ns.name, k8s.pod.sandbox_id), as a real exec in a container so labelled
    /// shows; Falco's `k8s.ns.name = "kube-system"` matches it and not an unlabelled container.
    /// The exec events of `docker exec NAME cat /etc/hostname` run in each container, traced
    /// with container metadata.
    private func catExecs(in first: DockerTestEngine.Container, _ second: DockerTestEngine.Container) throws -> (Event, Event) {
        let harness = try TraceHarness(kinds: Sensor.process.kinds, metadata: true)
        let events = try harness.collect {
            for container in [first, second] { _ = DockerTestEngine.run(["docker", "exec", container.name, "cat", "/etc/hostname"]) }
        }
        func exec(in container: DockerTestEngine.Container) throws -> Event {
            try XCTUnwrap(events.first { $0.exec != nil && $0.comm == "cat" && $0.container.nameBytes.string == container.name }, container.name)
        }
        return (try exec(in: first), try exec(in: second))
    }

    func testKubernetesLabelsNameThePodAndNamespace() throws {
        let sandbox = String(repeating: "ab", count: 32)
        let pod = try DockerTestEngine.startContainer(for: self, options: [
            "--label", "io.kubernetes.pod.name=coredns-7c65d6cfc9-x2x", "--label", "io.kubernetes.pod.namespace=kube-system",
            "--label", "io.kubernetes.sandbox.id=\(sandbox)", "--label", "io.kubernetes.container.name=coredns"])
        let plain = try DockerTestEngine.startContainer(for: self)
        let (inPod, outside) = try catExecs(in: pod, plain)
        XCTAssertEqual(try field("k8s.pod.name", inPod), .string("coredns-7c65d6cfc9-x2x"))
        XCTAssertEqual(try field("k8s.ns.name", inPod), .string("kube-system"))
        XCTAssertEqual(try field("k8s.pod.sandbox_id", inPod), .string(ByteString(String(sandbox.prefix(12)))))
        XCTAssertNil(try field("k8s.ns.name", outside))
        let kubeSystem = try condition("k8s.ns.name = \"kube-system\" and k8s.pod.name startswith coredns")
        XCTAssertTrue(kubeSystem.matches(inPod))
        XCTAssertFalse(kubeSystem.matches(outside))
    }

    /// container.mounts and container.mount.dest[...] from the real engine's Mounts: a container
    /// with the host's /proc bind-mounted read-only at /host/proc (what Falco's sandbox rule
    /// "Launch Sensitive Mount Container" looks for) and one without mounts.
    func testMountsOfARealContainer() throws {
        let mounted = try DockerTestEngine.startContainer(for: self, options: ["-v", "/proc:/host/proc:ro"])
        let plain = try DockerTestEngine.startContainer(for: self)
        let (inMounted, outside) = try catExecs(in: mounted, plain)
        XCTAssertEqual(try field("container.mounts", inMounted), .string("/proc:/host/proc:ro:false:rprivate"))
        XCTAssertEqual(Fields.named("container.mount.dest")?.extract(inMounted, "/proc*"), .string("/host/proc"))
        XCTAssertEqual(Fields.named("container.mount.dest")?.extract(inMounted, "0"), .string("/host/proc"))
        XCTAssertNil(Fields.named("container.mount.dest")?.extract(inMounted, "/var/run/docker.sock"))
        XCTAssertEqual(try field("container.mounts", outside), .string(""))
        XCTAssertNil(Fields.named("container.mount.dest")?.extract(outside, "/proc*"))
        let procMounted = try condition("container.mount.dest[/proc*] = /host/proc")
        XCTAssertTrue(procMounted.matches(inMounted))
        XCTAssertFalse(procMounted.matches(outside))
        // Falco's sandbox `sensitive_mount` tests `not container.mount.dest[...] in ("<NA>","N/A")`:
        // no such mount is no value, a comparison on it is false, so the `not` holds.
        let sensitive = try condition("not container.mount.dest[/etc] in (\"<NA>\",\"N/A\")")
        XCTAssertTrue(sensitive.matches(outside))
        XCTAssertTrue(sensitive.matches(inMounted))
    }

    /// The container's first program is pid 1 of its pid namespace on its real exec event
    /// (proc.vpid, from the process table's read of /proc after the exec), with the engine's start
    /// time as container.start_ts; Falco's `container_started` macro (`spawned_process and
    /// proc.vpid=1 and container`) matches it, not the docker client on the host.
    func testTheFirstProcessOfARealContainerIsPidOne() throws {
        let harness = try TraceHarness(kinds: Sensor.process.kinds, metadata: true)
        var container: DockerTestEngine.Container?
        let events = try harness.collect { container = try DockerTestEngine.startContainer(for: self, command: ["sleep", "30"]) }
        let name = try XCTUnwrap(container).name
        let first = try XCTUnwrap(events.first { $0.exec != nil && $0.comm == "sleep" && $0.container.nameBytes.string == name })
        XCTAssertEqual(try field("proc.vpid", first), .uint(1))
        XCTAssertNotEqual(first.pid, 1)
        let startedAt = DockerTestEngine.run(["docker", "inspect", "--format", "{{.State.StartedAt}}", name]).output
            .trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(try field("container.start_ts", first), Timestamp.parseISO8601(startedAt).map { .uint($0) }, startedAt)
        XCTAssertNotNil(Timestamp.parseISO8601(startedAt), startedAt)
        let client = try XCTUnwrap(events.first { $0.exec != nil && $0.comm == "docker" })
        XCTAssertEqual(try field("proc.vpid", client), .uint(UInt64(client.pid)), "the host's pid namespace")
        let started = try condition("evt.type in (execve, execveat) and proc.vpid=1 and container.id != host")
        XCTAssertTrue(started.matches(first))
        XCTAssertFalse(started.matches(client))
    }

    func testImageReferencesSplitAsFalcoDoes() {
        let cases: [(String, String, String, String)] = [
            ("nginx", "nginx", "latest", ""),
            ("nginx:1.25", "nginx", "1.25", ""),
            ("registry:5000/team/app", "registry:5000/team/app", "latest", ""),
            ("registry:5000/team/app:v2", "registry:5000/team/app", "v2", ""),
            ("docker.io/library/alpine@sha256:abc", "docker.io/library/alpine", "", "sha256:abc"),
            ("alpine:3@sha256:abc", "alpine", "3", "sha256:abc"),
        ]
        for (reference, repository, tag, digest) in cases {
            let split = ImageReference(reference)
            XCTAssertEqual([String(split.repository), String(split.tag), String(split.digest)], [repository, tag, digest], reference)
        }
    }
}
