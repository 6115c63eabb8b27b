#if canImport(Glibc)
import Glibc
#endif
import Foundation
import VigilTestSupport
import XCTest

@testable import VigilContainers

/// containerd's API asked by `ContainerdClient`, against a real containerd of the test's own
/// (`ContainerdTestDaemon`, Debian's containerd 1.6) running containers labelled as a kubelet's
/// CRI labels them: a pod's sandbox (carrying the pod's labels) and a workload container.
final class ContainerdIntegrationTests: XCTestCase {
    static let podUID = "3f2b6c1e-7a8d-4c2e-9b1f-0a1b2c3d4e5f"

    /// A pod of two containers in a fresh containerd: (daemon, sandbox id, workload id).
    private func startPod() throws -> (ContainerdTestDaemon, String, String) {
        let daemon = try ContainerdTestDaemon.start(for: self)
        let sandbox = Self.randomID(), workload = Self.randomID()
        let pod = ["io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.uid": Self.podUID]
        try daemon.run(id: sandbox, labels: pod.merging(["io.cri-containerd.kind": "sandbox", "app": "web", "tier": "front"]) { $1 },
                       cgroup: "/kubepods/besteffort/pod\(Self.podUID)/\(sandbox)")
        try daemon.run(id: workload, labels: pod.merging(["io.cri-containerd.kind": "container", "io.kubernetes.container.name": "app",
                                                          "io.kubernetes.sandbox.id": sandbox]) { $1 },
                       cgroup: "/kubepods/besteffort/pod\(Self.podUID)/\(workload)")
        return (daemon, sandbox, workload)
    }

    static func randomID() -> String {
        (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    func testTheWorkloadsNameImageLabelsAndItsPodsLabelsComeFromContainerd() throws {
        let (daemon, sandbox, workload) = try startPod()
        let client = ContainerdClient(socketPath: daemon.socketPath)
        let metadata = try XCTUnwrap(try client.metadata(forContainerID: workload))
        XCTAssertEqual(metadata.id, workload)
        XCTAssertEqual(metadata.runtime, .containerd)
        XCTAssertEqual(metadata.name, "app")
        XCTAssertEqual(metadata.image, ContainerdTestDaemon.image)
        XCTAssertEqual(metadata.labels["io.kubernetes.pod.name"], "web-0")
        XCTAssertEqual(metadata.labels["io.kubernetes.pod.namespace"], "shop")
        XCTAssertEqual(metadata.labels["io.kubernetes.sandbox.id"], sandbox)
        XCTAssertEqual(metadata.podLabels, ["app": "web", "tier": "front"])
        // The sandbox: no container name label, so its 12-character id (as Falco names it); its own labels are the pod's.
        let pause = try XCTUnwrap(try client.metadata(forContainerID: sandbox))
        XCTAssertEqual(pause.name, String(sandbox.prefix(12)))
        XCTAssertEqual(pause.podLabels, ["app": "web", "tier": "front"])
        let (record, namespace) = try XCTUnwrap(try client.container(workload))
        XCTAssertEqual(namespace, "k8s.io")
        XCTAssertEqual(record.runtimeName, "io.containerd.runc.v2")
        XCTAssertNotNil(record.createdAtNs)
        XCTAssertEqual(client.counters, ContainerdClientCounters(lookups: 2, found: 2, failures: 0))
    }

    func testAnIDNoNamespaceHasIsNilAndCountedAsNotFound() throws {
        let daemon = try ContainerdTestDaemon.start(for: self)
        let client = ContainerdClient(socketPath: daemon.socketPath)
        XCTAssertNil(try client.metadata(forContainerID: Self.randomID()))
        XCTAssertEqual(client.counters, ContainerdClientCounters(lookups: 1, found: 0, failures: 0))
    }

    /// The pod's cgroup path names the pod (cgroupfs driver); the parser finds the container id.
    func testTheWorkloadsCgroupNamesItsPod() throws {
        let (daemon, _, workload) = try startPod()
        let cgroupFile = try String(contentsOfFile: "/proc/\(try daemon.pid(of: workload))/cgroup", encoding: .utf8)
        let identity = ContainerIdentity(cgroupFile: cgroupFile)
        XCTAssertEqual(identity.id, workload, cgroupFile)
        XCTAssertEqual(identity.runtime, .kube)
        XCTAssertEqual(identity.pod?.uid, Self.podUID)
    }

    /// Docker does not know the container (404), containerd does: the chain answers with containerd's.
    func testTheChainAsksContainerdWhenDockerDoesNotKnowTheContainer() throws {
        try DockerTestEngine.require()
        let (daemon, _, workload) = try startPod()
        let chain = ChainedMetadataSource([DockerClient(), ContainerdClient(socketPath: daemon.socketPath)])
        XCTAssertEqual(try chain.metadata(forContainerID: workload)?.name, "app")
    }

    /// No containerd: the lookup throws (the cache then leaves the fields empty and retries
    /// later), counted as a failure; in a chain behind a Docker that answered, it is no container.
    func testAMissingSocketThrowsAndIsCounted() throws {
        let client = ContainerdClient(socketPath: "/tmp/vigil-no-containerd-\(UUID().uuidString.prefix(8)).sock")
        XCTAssertThrowsError(try client.metadata(forContainerID: Self.randomID())) { error in
            guard case GRPCError.socketUnavailable = error else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(client.counters, ContainerdClientCounters(lookups: 1, found: 0, failures: 1))
        try DockerTestEngine.require()
        XCTAssertNil(try ChainedMetadataSource([DockerClient(), client]).metadata(forContainerID: Self.randomID()))
    }

    /// A containerd that accepts and never answers (a listening socket nobody serves): the
    /// lookup times out after the client's timeout, counted, and the cache leaves the fields empty.
    func testASilentContainerdTimesOutAndTheCacheFallsBack() throws {
        let path = "/tmp/vigil-silent-\(UUID().uuidString.prefix(8)).sock"
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(listener, 0)
        defer { close(listener); unlink(path) }
        var address = try XCTUnwrap(sockaddr_un(path: path))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        XCTAssertEqual(listen(listener, 8), 0)
        let client = ContainerdClient(socketPath: path, timeout: .milliseconds(200))
        let cache = ContainerMetadataCache(source: client)
        let id = Self.randomID()
        XCTAssertNil(cache.fetch(id))
        guard case .unavailable(let reason) = cache.sourceStatus else { return XCTFail("\(cache.sourceStatus)") }
        XCTAssertTrue(reason.contains("timed out"), reason)
        XCTAssertEqual(client.counters, ContainerdClientCounters(lookups: 1, found: 0, failures: 1))
    }
}
