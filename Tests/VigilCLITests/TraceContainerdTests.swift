import Foundation
import VigilTestSupport
import XCTest

/// `vigil trace` naming a kubelet's CRI containers from containerd: a pod run by a containerd
/// of the test's own (`ContainerdTestDaemon`, labelled as the CRI labels it), an exec in its
/// workload container (`ctr tasks exec`), and the traced events' container and k8s fields.
final class TraceContainerdTests: XCTestCase {
    func testTraceNamesACRIContainerFromContainerdAtContainerdSocket() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF)
        let daemon = try ContainerdTestDaemon.start(for: self)
        try DockerTestEngine.require()
        let uid = "5d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
        let (_, workload) = try daemon.runPod(name: "cart-5f6d", namespace: "store", uid: uid, container: "worker", podLabels: ["app": "cart"])

        let (process, stdout, stderr) = try launchCapturing(CLITests.binary, ["trace", "-o", "json", "--event", "exec",
                                                                               "--containerd-socket", daemon.socketPath])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(waitUntil(seconds: 60) { stderr.sofar.contains("vigil: tracing ") || !process.isRunning } && process.isRunning,
                      "vigil trace did not start tracing: \(stderr.sofar)")
        // The first exec makes trace ask Docker (which does not know the id), then containerd, in
        // the background; execs after the answer carry the names.
        let marker = "vigil-ctrd-\(UUID().uuidString.prefix(8))"
        _ = waitUntil(seconds: 20) {
            let exec = daemon.ctr(["tasks", "exec", "--exec-id", "e-\(UUID().uuidString.prefix(8))", workload, "echo", marker])
            XCTAssertEqual(exec.status, 0, exec.errors)
            Thread.sleep(forTimeInterval: 0.3)
            return stdout.sofar.contains("\"k8s.pod.name\":\"cart-5f6d\"")
        }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, stderr.text())
        let objects = try VigilJSON.objects(lines: stdout.text())
        let execs = objects.filter { ($0["container.full_id"] as? String) == workload && ($0["proc.name"] as? String) == "echo" }
        XCTAssertFalse(execs.isEmpty, "the execs in the container were traced: \(stdout.text().suffix(2000))")
        let named = try XCTUnwrap(execs.last, "\(execs)")
        XCTAssertEqual(named["container.name"] as? String, "worker", "\(named)")
        XCTAssertEqual(named["container.image"] as? String, ContainerdTestDaemon.image)
        XCTAssertEqual(named["container.runtime"] as? String, "kube")
        XCTAssertEqual(named["k8s.pod.name"] as? String, "cart-5f6d")
        XCTAssertEqual(named["k8s.ns.name"] as? String, "store")
        XCTAssertEqual(named["k8s.pod.uid"] as? String, uid)
        XCTAssertFalse(stderr.text().contains("containerd lookup failed"), stderr.text())
    }
}
