import Foundation
import VigilTestSupport
import XCTest

/// `vigil trace` naming a kubelet's CRI containers from containerd, or from a CRI runtime: a pod
/// run by a containerd of the test's own (`ContainerdTestDaemon`, labelled as the CRI labels it,
/// or made through its CRI plugin), an exec in its workload container (`ctr tasks exec`), and
/// the traced events' container and k8s fields.
final class TraceContainerdTests: XCTestCase {
    func testTraceNamesACRIContainerFromContainerdAtContainerdSocket() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF)
        let daemon = try ContainerdTestDaemon.start(for: self)
        try DockerTestEngine.require()
        let uid = "5d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
        let (_, workload) = try daemon.runPod(name: "cart-5f6d", namespace: "store", uid: uid, container: "worker", podLabels: ["app": "cart"])
        let (named, log) = try traceExecs(in: workload, of: daemon, podName: "cart-5f6d", sources: ["--containerd-socket", daemon.socketPath])
        XCTAssertFalse(log.contains("containerd lookup failed"), log)
        XCTAssertEqual(named["container.name"] as? String, "worker", "\(named)")
        XCTAssertEqual(named["k8s.ns.name"] as? String, "store")
        XCTAssertEqual(named["k8s.pod.uid"] as? String, uid)
    }

    /// The same pod made through the CRI, named by `--cri-socket` (as CRI-O's) while containerd's
    /// own API is not there to ask.
    func testTraceNamesAPodMadeThroughTheCRIFromTheCRIAtCRISocket() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF)
        let daemon = try ContainerdTestDaemon.start(for: self, cri: true)
        try DockerTestEngine.require()
        let uid = UUID().uuidString.lowercased()
        let pod = try daemon.runCRIPod(name: "mail-0", namespace: "comms", uid: uid, container: "smtp", podLabels: ["app": "mail"])
        let (named, log) = try traceExecs(in: pod.containerID, of: daemon, podName: "mail-0",
                                          sources: ["--containerd-socket", "/nonexistent/containerd.sock", "--cri-socket", daemon.socketPath])
        XCTAssertFalse(log.contains("CRI lookup (\(daemon.socketPath)) failed"), log)
        XCTAssertEqual(named["container.name"] as? String, "smtp", "\(named)")
        XCTAssertEqual(named["k8s.ns.name"] as? String, "comms")
        XCTAssertEqual(named["k8s.pod.uid"] as? String, uid)
        XCTAssertEqual(named["k8s.pod.labels"] as? [String], ["app:mail"], "\(named)")
    }

    /// Runs `vigil trace -o json --event exec` with `sources`, execs `echo` in `container` until
    /// an event names its pod `podName`; returns that event (checked to carry the image and the
    /// runtime kube, from the cgroup path) and trace's log, after a trace that ended cleanly.
    private func traceExecs(in container: String, of daemon: ContainerdTestDaemon, podName: String,
                            sources: [String]) throws -> (event: [String: Any], log: String) {
        let (process, stdout, stderr) = try launchCapturing(CLITests.binary, ["trace", "-o", "json", "--event", "exec"] + sources)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        XCTAssertTrue(waitUntil(seconds: 60) { stderr.sofar.contains("vigil: tracing ") || !process.isRunning } && process.isRunning,
                      "vigil trace did not start tracing: \(stderr.sofar)")
        // The first exec makes trace ask Docker (which does not know the id), then containerd and
        // the CRI, in the background; execs after the answer carry the names.
        let marker = "vigil-ctrd-\(UUID().uuidString.prefix(8))"
        _ = waitUntil(seconds: 20) {
            let exec = daemon.ctr(["tasks", "exec", "--exec-id", "e-\(UUID().uuidString.prefix(8))", container, "echo", marker])
            XCTAssertEqual(exec.status, 0, exec.errors)
            Thread.sleep(forTimeInterval: 0.3)
            return stdout.sofar.contains("\"k8s.pod.name\":\"\(podName)\"")
        }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, stderr.text())
        let objects = try VigilJSON.objects(lines: stdout.text())
        let execs = objects.filter { ($0["container.full_id"] as? String) == container && ($0["proc.name"] as? String) == "echo" }
        XCTAssertFalse(execs.isEmpty, "the execs in the container were traced: \(stdout.text().suffix(2000))")
        let named = try XCTUnwrap(execs.last, "\(execs)")
        XCTAssertEqual(named["container.image"] as? String, ContainerdTestDaemon.image)
        XCTAssertEqual(named["container.runtime"] as? String, "kube")
        XCTAssertEqual(named["k8s.pod.name"] as? String, podName)
        return (named, stderr.text())
    }
}
