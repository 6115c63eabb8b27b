import Foundation
import VigilTestSupport
import XCTest

/// The daemon with `containerd:` set to a containerd of the test's own (`ContainerdTestDaemon`):
/// a rule on k8s.ns.name alerts on a real exec in a CRI-labelled pod's container, its output
/// naming the pod, container and pod labels from containerd, and the lookups are counted in
/// the metrics.
final class ContainerdDaemonTests: XCTestCase {
    func testARuleOnTheNamespaceAlertsWithThePodFromContainerd() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let containerd = try ContainerdTestDaemon.start(for: self)
        let uid = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"
        let (_, workload) = try containerd.runPod(name: "ledger-0", namespace: "billing", uid: uid, container: "db", podLabels: ["app": "ledger"])
        let port = 20_000 + Int((getpid() + 29) % 20_000)
        let daemon = try daemonAlertingOnExecs(inNamespace: "billing", output: "app=%k8s.pod.label[app]", port: port, runtimes: """
            containerd:
              socket: \(containerd.socketPath)
            """)
        defer { _ = daemon.stop() }

        let exec = containerd.ctr(["tasks", "exec", "--exec-id", "vigil-\(UUID().uuidString.prefix(8))", workload, "cat", "/proc/version"])
        XCTAssertEqual(exec.status, 0, exec.errors)
        let expected = "billing exec (pod=ledger-0 ns=billing container=db labels=(app:ledger)) app=ledger"
        XCTAssertTrue(waitUntil(seconds: 20) { daemon.stdout.sofar.contains(expected) }, daemon.diagnostics + daemon.stdout.sofar)
        let metrics = try runCapturing("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(port)/metrics"]).stdout
        let found = metrics.split(separator: "\n").first { $0.hasPrefix("vigil_containerd_lookups_total{result=\"found\"} ") }
        XCTAssertGreaterThanOrEqual(found.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0, 1, metrics)
        XCTAssertTrue(metrics.contains("vigil_containerd_lookups_total{result=\"failed\"} 0\n"), metrics)
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// containerd refusing every lookup (a namespace name it does not accept): the failures are
    /// counted per gRPC status in /metrics and `vigil status`, with containerd's message, and
    /// logged once.
    func testARefusedLookupIsCountedAsFailedWithItsStatusInMetricsAndStatus() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let containerd = try ContainerdTestDaemon.start(for: self)
        let workload = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        try containerd.run(id: workload, labels: ["io.cri-containerd.kind": "container"], cgroup: "/kubepods/besteffort/pod6c7d8e9f-0a1b-4c2d-8e3f-4a5b6c7d8e9f/\(workload)")
        let port = 20_000 + Int((getpid() + 31) % 20_000)
        let daemon = try TestDaemon(extraConfig: """
            metrics:
              enabled: true
              port: \(port)
            containerd:
              socket: \(containerd.socketPath)
              namespaces: [Bad_NS!]
            """, directory: try temporaryDirectory())
        defer { _ = daemon.stop() }
        var metrics = ""
        XCTAssertTrue(waitUntil(seconds: 20) {
            containerd.ctr(["tasks", "exec", "--exec-id", "vigil-\(UUID().uuidString.prefix(8))", workload, "cat", "/proc/version"])
            metrics = (try? runCapturing("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(port)/metrics"]).stdout) ?? ""
            return metrics.contains("vigil_containerd_failures_total{kind=\"InvalidArgument\"} ")
        }, metrics + daemon.diagnostics)
        XCTAssertFalse(metrics.contains("vigil_containerd_lookups_total{result=\"failed\"} 0\n"), metrics)
        XCTAssertTrue(metrics.contains("vigil_containerd_lookups_total{result=\"not_found\"} 0\n"), metrics)
        let status = try daemon.vigil(["status"]).stdout
        XCTAssertTrue(status.contains("failed (InvalidArgument "), status)
        XCTAssertTrue(status.contains(#"last failure: gRPC socket \#(containerd.socketPath): InvalidArgument: namespace validation: identifier "Bad_NS!""#), status)
        XCTAssertEqual(daemon.stderr.sofar.components(separatedBy: "containerd lookup failed (InvalidArgument").count, 2, daemon.stderr.sofar)
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// The daemon with containerd not asked and `cri:` set to the test containerd's CRI plugin (as
    /// for CRI-O): a rule on k8s.ns.name alerts on a real exec in a pod made through the CRI,
    /// named from the CRI; the lookups are counted in /metrics and `vigil status`.
    func testARuleOnTheNamespaceAlertsWithThePodFromTheCRI() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let containerd = try ContainerdTestDaemon.start(for: self, cri: true)
        let pod = try containerd.runCRIPod(name: "search-1", namespace: "catalog", uid: UUID().uuidString.lowercased(), container: "indexer",
                                           podLabels: ["app": "search"])
        let port = 20_000 + Int((getpid() + 37) % 20_000)
        let daemon = try daemonAlertingOnExecs(inNamespace: "catalog", output: "", port: port, runtimes: """
            containerd:
              enabled: false
            cri:
              socket: \(containerd.socketPath)
            """)
        defer { _ = daemon.stop() }

        let expected = "catalog exec (pod=search-1 ns=catalog container=indexer labels=(app:search))"
        XCTAssertTrue(waitUntil(seconds: 20) {
            // The first exec makes the daemon ask (in the background); an exec after the answer alerts.
            containerd.ctr(["tasks", "exec", "--exec-id", "vigil-\(UUID().uuidString.prefix(8))", pod.containerID, "cat", "/proc/version"])
            Thread.sleep(forTimeInterval: 0.3)
            return daemon.stdout.sofar.contains(expected)
        }, daemon.diagnostics + daemon.stdout.sofar)
        let metrics = try runCapturing("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(port)/metrics"]).stdout
        let found = metrics.split(separator: "\n").first { $0.hasPrefix("vigil_cri_lookups_total{result=\"found\"} ") }
        XCTAssertGreaterThanOrEqual(found.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0, 1, metrics)
        XCTAssertTrue(metrics.contains("vigil_cri_lookups_total{result=\"failed\"} 0\n"), metrics)
        XCTAssertFalse(metrics.contains("vigil_containerd_lookups_total"), "containerd is not asked: \(metrics)")
        let status = try daemon.vigil(["status"]).stdout
        XCTAssertTrue(status.contains("cri: ") && status.contains(" found, "), status)
        XCTAssertEqual(daemon.stop(), 0)
    }

    /// A daemon with metrics on `port`, `runtimes` (its containerd: and cri: keys) and one rule:
    /// an alert on `cat` run in a pod of `namespace`, whose output is "NAMESPACE exec (pod=...
    /// ns=... container=... labels=...) " and then `output`.
    private func daemonAlertingOnExecs(inNamespace namespace: String, output: String, port: Int, runtimes: String) throws -> TestDaemon {
        let home = try temporaryDirectory()
        try FileManager.default.createDirectory(atPath: home + "/rules.d", withIntermediateDirectories: true)
        try """
            - rule: Exec in \(namespace)
              desc: an exec in a pod of the \(namespace) namespace
              condition: evt.type = execve and k8s.ns.name = \(namespace) and proc.name = cat
              output: "\(namespace) exec (pod=%k8s.pod.name ns=%k8s.ns.name container=%container.name labels=%k8s.pod.labels) \(output)"
              priority: WARNING
            """.write(toFile: home + "/rules.d/\(namespace).yaml", atomically: true, encoding: .utf8)
        return try TestDaemon(extraConfig: """
            default_rules: false
            metrics:
              enabled: true
              port: \(port)
            \(runtimes)
            """, directory: home)
    }
}
