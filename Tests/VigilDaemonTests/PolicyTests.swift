import Foundation
import VigilTestSupport
import XCTest

/// Issue 17 §5: a real daemon's alerts from real processes go through the policy stage, asked
/// of a real Rego engine (Tests/Fixtures/opa-server.py, regopy) with the policy ported from the
/// default rule "Sensitive file read" (policies/sensitive_file_read.rego).
final class PolicyTests: XCTestCase {
    func testARealAlertIsAllowedWithTheReasonAddedAndAKnownReadersIsDeniedAndCounted() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let server = try PolicyServer(policies: [PolicyServer.shipped("sensitive_file_read.rego")])
        let tag = UUID().uuidString.prefix(8).lowercased()
        let metricsPort = try Loopback.freePort()
        let ruleName = "Sensitive file read \(tag)"
        let daemon = try TestDaemon(extraConfig: """
        metrics: {enabled: true, port: \(metricsPort)}
        actions:
          dedup: {window: 0}
          named:
            record: {type: file, path: RECORD}
          policy:
            url: \(server.url)
            path: vigil/sensitive_file_read/decision
            rules: [\(ruleName)]
            failure: closed
            timeout: 10
        """.replacingOccurrences(of: "RECORD", with: NSTemporaryDirectory() + "vigil-policy-\(tag).jsonl"))
        let record = NSTemporaryDirectory() + "vigil-policy-\(tag).jsonl"
        defer { try? FileManager.default.removeItem(atPath: record) }
        // The default rule without its exception (the policy holds it now), on marker files.
        let rule = daemon.directory + "/policy-\(tag).yaml"
        try """
        - rule: \(ruleName)
          desc: the test's marker files were opened for reading (the default rule, its exception in the policy)
          condition: evt.type in (open, openat, openat2) and fd.name startswith /tmp/vigil-policy-\(tag)-
          output: "Sensitive file opened for reading (file=%fd.name process=%proc.name)"
          priority: WARNING
          actions: [record]
        """.write(toFile: rule, atomically: true, encoding: .utf8)
        let created = try daemon.vigil(["create", rule])
        XCTAssertEqual(created.status, 0, created.stderr)

        let denied = "/tmp/vigil-policy-\(tag)-denied", allowed = "/tmp/vigil-policy-\(tag)-allowed"
        for marker in [denied, allowed] { try "secret\n".write(toFile: marker, atomically: true, encoding: .utf8) }
        // sshd is one of the readers the policy trusts: cat under that name is denied.
        let sshd = daemon.directory + "/sshd"
        try FileManager.default.copyItem(atPath: "/bin/cat", toPath: sshd)
        defer { for marker in [denied, allowed] { try? FileManager.default.removeItem(atPath: marker) } }
        _ = try runProgram(sshd, [denied])  // returns the pid (it waits for the exit)
        _ = try runProgram("/bin/cat", [allowed])

        func written() -> [[String: Any]] {
            ((try? String(contentsOfFile: record, encoding: .utf8)) ?? "").split(separator: "\n")
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        func status() -> [String: Any] {
            let body = (try? daemon.request("GET", "/v1/status").body) ?? ""
            let object = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
            return ((object?["consumers"] as? [String: Any])?["actions"] as? [String: Any])?["policy"] as? [String: Any] ?? [:]
        }
        let decided = waitUntil(seconds: 60) { !written().isEmpty && (status()["denied"] as? Int) == 1 }
        XCTAssertTrue(decided, "record: \(written())\nrequests: \(server.requests)\n\(daemon.diagnostics)")
        let alerts = written()
        XCTAssertEqual(alerts.count, 1, "only the allowed alert reached the action: \(alerts)")
        let alert = try XCTUnwrap(alerts.first)
        XCTAssertEqual((alert["output_fields"] as? [String: Any])?["fd.name"] as? String, allowed)
        XCTAssertEqual((alert["policy"] as? [String: Any])?["reason"] as? String, "cat is not a known reader of sensitive files")
        let policy = status()
        XCTAssertEqual(policy["allowed"] as? Int, 1, "\(policy)")
        XCTAssertEqual(policy["failed_closed"] as? Int, 0, "\(policy)")
        XCTAssertTrue((policy["last_denied"] as? String)?.contains("sshd is a known reader of sensitive files") ?? false, "\(policy)")
        XCTAssertTrue(daemon.stderr.sofar.contains("policy denied alert"), "the denial is in the log")
        let shown = try daemon.vigil(["status"]).stdout
        XCTAssertTrue(shown.contains("(failure: closed): 1 allowed, 1 denied, 0 failed open, 0 failed closed"), shown)
        XCTAssertTrue(shown.contains("  last denied: \(ruleName) (id "), shown)
        // The server saw both alerts, the alert's JSON as the input.
        let inputs = server.requests.compactMap { $0["input"] as? [String: Any] }
        XCTAssertEqual(inputs.compactMap { $0["rule"] as? String }, [ruleName, ruleName])
        XCTAssertEqual(inputs.compactMap { ($0["output_fields"] as? [String: Any])?["proc.name"] as? String }, ["sshd", "cat"])
        let metrics = try runCapturing("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(metricsPort)/metrics"]).stdout
        XCTAssertTrue(metrics.contains("vigil_policy_decisions_total{result=\"denied\"} 1"), metrics)
        XCTAssertTrue(metrics.contains("vigil_policy_decisions_total{result=\"allowed\"} 1"), metrics)
    }

    func testABadPolicySectionNamesTheFileLineAndKey() throws {
        let directory = NSTemporaryDirectory() + "vigil-policy-config-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/vigil.yaml"
        try "actions:\n  policy:\n    url: http://127.0.0.1:8181\n    path: vigil/x\n    failure: ajar\n".write(toFile: config, atomically: true, encoding: .utf8)
        let result = try runCapturing(TestDaemon.binary, ["daemon", "--config", config])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("\(config):5:"), result.stderr)
        XCTAssertTrue(result.stderr.contains("actions.policy.failure"), result.stderr)
        XCTAssertTrue(result.stderr.contains("unknown failure mode 'ajar'; use open or closed"), result.stderr)
    }
}
