import Foundation
import Synchronization
import VigilTestSupport
import XCTest

@testable import VigilContainers

/// The CRI (`runtime.v1.RuntimeService`) asked by `CRIClient`, against a real CRI server: a
/// containerd of the test's own with its cri plugin on (`ContainerdTestDaemon.start(cri:)`,
/// Debian's containerd 1.6; CRI-O, whose socket is the client's default, answers the same calls
/// but has no Debian 12 package), running a pod made through the CRI as a kubelet makes one.
final class CRIIntegrationTests: XCTestCase {
    func testTheWorkloadsNameImageLabelsAndItsPodComeFromTheCRI() throws {
        let daemon = try ContainerdTestDaemon.start(for: self, cri: true)
        let uid = UUID().uuidString.lowercased()
        let pod = try daemon.runCRIPod(name: "web-0", namespace: "shop", uid: uid, container: "app",
                                       podLabels: ["app": "web", "tier": "front"], containerLabels: ["team": "checkout"])
        let client = CRIClient(socketPath: daemon.socketPath, runtime: .containerd)

        let listed = try XCTUnwrap(try client.container(pod.containerID))
        XCTAssertEqual(listed.podSandboxID, pod.sandboxID)
        XCTAssertEqual(listed.name, "app")
        let sandbox = try XCTUnwrap(try client.sandbox(pod.sandboxID))
        XCTAssertEqual([sandbox.name, sandbox.namespace, sandbox.uid], ["web-0", "shop", uid])

        let metadata = try XCTUnwrap(try client.metadata(forContainerID: pod.containerID))
        XCTAssertEqual(metadata.id, pod.containerID)
        XCTAssertEqual(metadata.runtime, .containerd)
        XCTAssertEqual(metadata.name, "app")
        XCTAssertEqual(metadata.image, ContainerdTestDaemon.image)
        XCTAssertTrue(metadata.imageID.hasPrefix("sha256:"), metadata.imageID)
        XCTAssertNotNil(metadata.startTimeNs)
        XCTAssertEqual(metadata.labels["team"], "checkout")
        XCTAssertEqual(metadata.labels["io.kubernetes.pod.name"], "web-0")
        XCTAssertEqual(metadata.labels["io.kubernetes.pod.namespace"], "shop")
        XCTAssertEqual(metadata.labels["io.kubernetes.pod.uid"], uid)
        XCTAssertEqual(metadata.labels["io.kubernetes.sandbox.id"], pod.sandboxID)
        XCTAssertEqual(metadata.podLabels, ["app": "web", "tier": "front"])

        // The sandbox (the pod's pause process): its 12-character id as its name, as Falco names it; the pod's labels.
        let pause = try XCTUnwrap(try client.metadata(forContainerID: pod.sandboxID))
        XCTAssertEqual(pause.name, String(pod.sandboxID.prefix(12)))
        XCTAssertEqual(pause.labels["io.kubernetes.pod.name"], "web-0")
        XCTAssertEqual(pause.podLabels, ["app": "web", "tier": "front"])
        XCTAssertEqual(client.counters, RuntimeLookupCounters(lookups: 2, found: 2, failures: 0))
    }

    /// An id the runtime has neither as a container nor as a sandbox (NotFound): nil, counted
    /// as not found, not as a failure.
    func testAnIDTheRuntimeDoesNotKnowIsNilAndCountedAsNotFound() throws {
        let daemon = try ContainerdTestDaemon.start(for: self, cri: true)
        let lines = Mutex<[String]>([])
        let client = CRIClient(socketPath: daemon.socketPath) { line in lines.withLock { $0.append(line) } }
        XCTAssertNil(try client.metadata(forContainerID: ContainerdTestDaemon.randomID()))
        XCTAssertEqual(client.counters, RuntimeLookupCounters(lookups: 1, found: 0, failures: 0))
        XCTAssertEqual(client.counters.notFound, 1)
        XCTAssertEqual(lines.withLock { $0 }, [])
    }

    /// No runtime at the socket (a host without CRI-O, the default): each lookup throws and is
    /// counted as failed by kind; only the first is logged.
    func testAMissingSocketIsAFailureCountedPerKindAndLoggedOnce() throws {
        let path = "/tmp/vigil-no-cri-\(UUID().uuidString.prefix(8)).sock"
        let lines = Mutex<[String]>([])
        let client = CRIClient(socketPath: path) { line in lines.withLock { $0.append(line) } }
        for _ in 0..<2 {
            XCTAssertThrowsError(try client.metadata(forContainerID: ContainerdTestDaemon.randomID())) { error in
                XCTAssertEqual((error as? GRPCError)?.kind, "unavailable", "\(error)")
            }
        }
        let counters = client.counters
        XCTAssertEqual([counters.lookups, counters.found, counters.failures], [2, 0, 2])
        XCTAssertEqual(counters.failuresByKind, ["unavailable": 2])
        XCTAssertEqual(lines.withLock { $0.count }, 1, "\(lines.withLock { $0 })")
        XCTAssertTrue(lines.withLock { $0.first ?? "" }.contains("vigil_cri_failures_total"))
        XCTAssertTrue(lines.withLock { $0.first ?? "" }.contains(path))
    }
}
