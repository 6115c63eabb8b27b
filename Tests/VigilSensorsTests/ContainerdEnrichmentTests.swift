import Foundation
import VigilContainers
import VigilEnrichment
import VigilEvents
import VigilRules
import VigilSensors
import VigilTestSupport
import XCTest

/// Kubernetes metadata from containerd and from the CRI on real events: a pod run by a
/// containerd of the test's own (`ContainerdTestDaemon`) as a kubelet's CRI labels it (or made
/// through its CRI plugin, as a kubelet makes it), and a real exec in its workload container
/// (`ctr tasks exec`), traced by the real sensors with the enricher asking Docker, then
/// containerd or the CRI (as the daemon does).
final class ContainerdEnrichmentTests: XCTestCase {
    private func field(_ name: String, _ event: Event, _ argument: String? = nil) throws -> FieldValue? {
        try XCTUnwrap(Fields.named(name), "no field \(name)").extract(event, argument)
    }

    func testAnExecInACRIContainerCarriesItsPodAndContainerNames() throws {
        let daemon = try ContainerdTestDaemon.start(for: self)
        try DockerTestEngine.require()
        let uid = "0c8e1f2a-5b6d-4e7f-8a9b-1c2d3e4f5a6b"
        let (sandbox, workload) = try daemon.runPod(name: "api-7d9f", namespace: "payments", uid: uid, container: "server",
                                              podLabels: ["app": "api", "team": "pay"])
        let harness = try TraceHarness(kinds: Sensor.process.kinds, cgroupHierarchy: .onThisHost,
                                       metadataSource: ChainedMetadataSource([DockerClient(), ContainerdClient(socketPath: daemon.socketPath)]))
        let events = try harness.collect {
            let result = daemon.ctr(["tasks", "exec", "--exec-id", "vigil-\(UUID().uuidString.prefix(8))", workload, "cat", "/proc/version"])
            XCTAssertEqual(result.status, 0, result.errors)
        }
        let cat = try XCTUnwrap(events.first { $0.exec != nil && $0.comm == "cat" && $0.container.fullID == workload },
                                "\(events.filter { $0.exec != nil }.map { "\($0.comm) \($0.container.fullID)" })")
        XCTAssertEqual(try field("container.name", cat), .string("server"))
        XCTAssertEqual(try field("container.image", cat), .string(ByteString(ContainerdTestDaemon.image)))
        XCTAssertEqual(try field("k8s.pod.name", cat), .string("api-7d9f"))
        XCTAssertEqual(try field("k8s.ns.name", cat), .string("payments"))
        XCTAssertEqual(try field("k8s.pod.uid", cat), .string(ByteString(uid)))
        XCTAssertEqual(try field("k8s.pod.sandbox_id", cat), .string(ByteString(String(sandbox.prefix(12)))))
        XCTAssertEqual(try field("k8s.pod.labels", cat), .strings([ByteString("app:api"), ByteString("team:pay")]))
        XCTAssertEqual(try field("k8s.pod.label", cat, "team"), .string("pay"))
        XCTAssertNil(try field("k8s.pod.label", cat, "io.kubernetes.pod.name"))
        let rule = try ConditionCompiler.compile("k8s.ns.name = payments and k8s.pod.label[app] = api and container.name = server",
                                                 at: SourceLocation(file: "t", line: 1, column: 1), context: ConditionContext())
        XCTAssertTrue(rule.matches(cat))
        let host = try XCTUnwrap(events.first { $0.exec != nil && $0.comm == "ctr" })
        XCTAssertFalse(rule.matches(host))
        XCTAssertNil(try field("k8s.pod.labels", host))
    }

    /// The same through the CRI alone (`CRIClient`, as for CRI-O): the pod made by
    /// RunPodSandbox/CreateContainer, its fields from ListContainers and PodSandboxStatus.
    func testAnExecInAPodMadeThroughTheCRICarriesItsPodFromTheCRI() throws {
        let daemon = try ContainerdTestDaemon.start(for: self, cri: true)
        try DockerTestEngine.require()
        let uid = UUID().uuidString.lowercased()
        let pod = try daemon.runCRIPod(name: "queue-2", namespace: "jobs", uid: uid, container: "consumer",
                                       podLabels: ["app": "queue"], containerLabels: ["tier": "back"])
        let harness = try TraceHarness(kinds: Sensor.process.kinds, cgroupHierarchy: .onThisHost,
                                       metadataSource: ChainedMetadataSource([DockerClient(), CRIClient(socketPath: daemon.socketPath)]))
        let events = try harness.collect {
            let result = daemon.ctr(["tasks", "exec", "--exec-id", "vigil-\(UUID().uuidString.prefix(8))", pod.containerID, "cat", "/proc/version"])
            XCTAssertEqual(result.status, 0, result.errors)
        }
        let cat = try XCTUnwrap(events.first { $0.exec != nil && $0.comm == "cat" && $0.container.fullID == pod.containerID },
                                "\(events.filter { $0.exec != nil }.map { "\($0.comm) \($0.container.fullID)" })")
        XCTAssertEqual(try field("container.name", cat), .string("consumer"))
        XCTAssertEqual(try field("container.image", cat), .string(ByteString(ContainerdTestDaemon.image)))
        XCTAssertEqual(try field("container.label", cat, "tier"), .string("back"))
        XCTAssertEqual(try field("k8s.pod.name", cat), .string("queue-2"))
        XCTAssertEqual(try field("k8s.ns.name", cat), .string("jobs"))
        XCTAssertEqual(try field("k8s.pod.uid", cat), .string(ByteString(uid)))
        XCTAssertEqual(try field("k8s.pod.sandbox_id", cat), .string(ByteString(String(pod.sandboxID.prefix(12)))))
        XCTAssertEqual(try field("k8s.pod.labels", cat), .strings([ByteString("app:queue")]))
    }
}
