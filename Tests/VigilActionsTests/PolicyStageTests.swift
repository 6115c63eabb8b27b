import Foundation
@testable import VigilActions
import VigilEvents
import VigilRules
import VigilTestSupport
import XCTest

/// Issue 17 §5: the policy stage against a real Rego engine (Tests/Fixtures/opa-server.py,
/// regopy) serving policies/sensitive_file_read.rego: its decisions, the server down with each
/// failure mode, and a server slower than the timeout. (The daemon's end-to-end case, a real
/// process's alert allowed and denied, is VigilDaemonTests.PolicyTests.)
final class PolicyStageTests: XCTestCase {
    private let policyPath = "vigil/sensitive_file_read/decision"

    private func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-policy-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// A dispatcher with a `record` file action behind a policy at `url` (`extra`: more policy keys).
    private func dispatcher(url: String, file: String, extra: String) throws -> ActionDispatcher {
        try makeDispatcher("""
        dedup: {window: 0}
        named: {record: {type: file, path: \(file)}}
        policy: {url: '\(url)', path: \(policyPath), \(extra)}
        """)
    }

    private func lines(_ file: String) -> [[String: Any]] {
        ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    func testDecisionsOfTheDataAPI() throws {
        func decide(_ text: String) throws -> PolicyDecision { try PolicyDecision(answer: Array(text.utf8)) }
        XCTAssertEqual(try decide(#"{"result": true}"#), PolicyDecision(allow: true, fields: [:]))
        XCTAssertEqual(try decide(#"{"result": false}"#), PolicyDecision(allow: false, fields: [:]))
        XCTAssertEqual(try decide(#"{"result": {"allow": false, "reason": "sshd", "score": 3, "tags": ["a"], "x": {"b": 1.5, "a": null}}}"#),
                       PolicyDecision(allow: false, fields: ["reason": #""sshd""#, "score": "3", "tags": #"["a"]"#, "x": #"{"a":null,"b":1.5}"#]))
        for bad in ["{}", #"{"result": 1}"#, #"{"result": {"allow": 1}}"#, #"{"result": {"reason": "x"}}"#, "[true]", "not json", ""] {
            XCTAssertThrowsError(try decide(bad), bad) { error in
                XCTAssertFalse((error as? ActionFailure)?.retryable ?? true, "\(bad): \(error)")
            }
        }
        var alert = testAlert()
        alert.policy = ["reason": #""a \"quoted\" reason""#, "score": "3"]
        XCTAssertTrue(alert.text.hasSuffix(#" {policy reason=a "quoted" reason score=3}"#), alert.text)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(alert.json.utf8)) as? [String: Any])
        XCTAssertEqual((json["policy"] as? [String: Any])?["reason"] as? String, #"a "quoted" reason"#)
    }

    func testBadPolicyConfigurationIsRefusedNamingTheKey() {
        let cases: [(String, String)] = [
            ("policy: {url: 'ftp://x', path: a/b}", "actions.policy.url:"),
            ("policy: {url: 'http://x', path: 'a.b'}", "actions.policy.path:"),
            ("policy: {url: 'http://x', path: a//b}", "actions.policy.path:"),
            ("policy: {url: 'http://x', path: a, failure: maybe}", "unknown failure mode 'maybe'; use open or closed"),
            ("policy: {url: 'http://x', path: a, timeout: 0}", "actions.policy.timeout: must be a positive number of seconds"),
            ("policy: {url: 'http://x', path: a, min_priority: LOUD}", "unknown priority 'LOUD'"),
            ("policy: {url: 'http://x', path: a, ca_file: /x.pem}", "actions.policy.ca_file: only applies to an https:// url"),
            ("policy: {url: 'http://x', path: a, headers: {'Bad Header': x}}", "actions.policy.headers:"),
            ("policy: {url: 'http://x', path: a, polcy: 1}", "unknown key 'polcy'"),
            ("policy: {path: a}", "url"),
        ]
        for (yaml, expected) in cases {
            XCTAssertThrowsError(try ActionsConfig.decodeYAML(yaml), yaml) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(yaml): \(error) should contain \(expected)")
            }
        }
    }

    func testAllowedAlertsCarryTheDecisionsFieldsAndDeniedOnesRunNoAction() throws {
        let server = try PolicyServer(policies: [PolicyServer.shipped("sensitive_file_read.rego")])
        let file = try temporaryDirectory() + "/alerts.jsonl"
        let dispatcher = try dispatcher(url: server.url, file: file, extra: "failure: closed")
        let denied = testAlert(testEvent(pid: 1, comm: "sshd"), rule: "Sensitive file read")
        let allowed = testAlert(testEvent(pid: 2, comm: "cat"), rule: "Sensitive file read")
        dispatcher.dispatch(denied, actions: ["record"])
        dispatcher.dispatch(allowed, actions: ["record"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        let written = lines(file)
        XCTAssertEqual(written.compactMap { $0["id"] as? String }, [allowed.id], "only the allowed alert reached the action")
        XCTAssertEqual((written.first?["policy"] as? [String: Any])?["reason"] as? String, "cat is not a known reader of sensitive files")
        let policy = try XCTUnwrap(dispatcher.stats().policy)
        XCTAssertEqual([policy.allowed, policy.denied, policy.failedOpen, policy.failedClosed], [1, 1, 0, 0])
        XCTAssertEqual(policy.lastDenied, "Sensitive file read (id \(denied.id)): reason=\"sshd is a known reader of sensitive files\"")
        XCTAssertEqual(dispatcher.stats().of("record").sent, 1)
        let inputs = server.requests.compactMap { $0["input"] as? [String: Any] }
        XCTAssertEqual(inputs.compactMap { $0["id"] as? String }, [denied.id, allowed.id], "the server got each alert's JSON as its input")
        XCTAssertEqual((inputs.first?["output_fields"] as? [String: Any])?["proc.name"] as? String, "sshd")
        XCTAssertEqual(server.requests.first?["path"] as? String, "/v1/data/\(policyPath)")
    }

    func testAServerThatIsDownFailsOpenOrClosedAsConfigured() throws {
        let server = try PolicyServer(policies: [PolicyServer.shipped("sensitive_file_read.rego")])
        server.stop()  // its port answers no more
        for mode in ["open", "closed"] {
            let file = try temporaryDirectory() + "/alerts.jsonl"
            let dispatcher = try dispatcher(url: server.url, file: file, extra: "failure: \(mode), timeout: 5")
            let alert = testAlert(testEvent(comm: "sshd"), rule: "Sensitive file read")
            dispatcher.dispatch(alert, actions: ["record"])
            XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
            let policy = try XCTUnwrap(dispatcher.stats().policy)
            XCTAssertEqual(policy.lastError?.contains("127.0.0.1:\(server.port)"), true, "\(policy)")
            XCTAssertEqual([policy.allowed, policy.denied], [0, 0])
            if mode == "open" {
                XCTAssertEqual([policy.failedOpen, policy.failedClosed], [1, 0])
                let written = lines(file)
                XCTAssertEqual(written.compactMap { $0["id"] as? String }, [alert.id], "fail-open: the actions ran")
                XCTAssertNotNil((written.first?["policy"] as? [String: Any])?["error"] as? String, "the alert says the policy was not asked")
            } else {
                XCTAssertEqual([policy.failedOpen, policy.failedClosed], [0, 1])
                XCTAssertTrue(lines(file).isEmpty, "fail-closed: no action ran")
                XCTAssertEqual(dispatcher.stats().of("record").sent, 0)
            }
        }
    }

    func testAServerSlowerThanTheTimeoutIsAFailure() throws {
        let server = try PolicyServer(policies: [PolicyServer.shipped("sensitive_file_read.rego")], delay: 5)
        let file = try temporaryDirectory() + "/alerts.jsonl"
        let dispatcher = try dispatcher(url: server.url, file: file, extra: "failure: closed, timeout: 0.5")
        let alert = testAlert(testEvent(comm: "cat"), rule: "Sensitive file read")  // the policy would allow it
        dispatcher.dispatch(alert, actions: ["record"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        XCTAssertEqual(server.requests.count, 1, "the server got the request (and answered too late)")
        let policy = try XCTUnwrap(dispatcher.stats().policy)
        XCTAssertEqual([policy.allowed, policy.denied, policy.failedOpen, policy.failedClosed], [0, 0, 0, 1], "\(policy)")
        XCTAssertTrue(lines(file).isEmpty)
    }

    func testDispatchReturnsBeforeTheServerAnswers() throws {
        // The server takes 3 s per answer: an alert dispatched is still undecided when dispatch
        // has returned (the event thread never waits for the policy), and decided later.
        let server = try PolicyServer(policies: [PolicyServer.shipped("sensitive_file_read.rego")], delay: 3)
        let file = try temporaryDirectory() + "/alerts.jsonl"
        let dispatcher = try dispatcher(url: server.url, file: file, extra: "timeout: 30")
        let alert = testAlert(testEvent(comm: "cat"), rule: "Sensitive file read")
        dispatcher.dispatch(alert, actions: ["record"])
        let undecided = try XCTUnwrap(dispatcher.stats().policy)
        XCTAssertEqual([undecided.allowed, undecided.denied, undecided.failedOpen, undecided.failedClosed], [0, 0, 0, 0])
        XCTAssertTrue(lines(file).isEmpty)
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        XCTAssertEqual(dispatcher.stats().policy?.allowed, 1)
        XCTAssertEqual(lines(file).compactMap { $0["id"] as? String }, [alert.id])
    }

    func testOverHTTPSTheServerIsVerifiedAgainstTheCAFile() throws {
        let certificates = try TestCertificates()
        let server = try PolicyServer(policies: [PolicyServer.shipped("sensitive_file_read.rego")],
                                      tls: (certificates.certificateFile, certificates.keyFile))
        // Trusting the test CA: the decision arrives over TLS (sshd is denied).
        let file = try temporaryDirectory() + "/alerts.jsonl"
        let trusting = try dispatcher(url: server.url, file: file, extra: "failure: open, ca_file: \(certificates.caFile)")
        trusting.dispatch(testAlert(testEvent(comm: "sshd"), rule: "Sensitive file read"), actions: ["record"])
        XCTAssertTrue(trusting.shutdown(timeout: .seconds(30)))
        XCTAssertEqual(trusting.stats().policy?.denied, 1, "\(String(describing: trusting.stats().policy))")
        XCTAssertTrue(lines(file).isEmpty)
        // The system's CAs do not know it: no decision, the failure mode (closed) decides.
        let untrusting = try dispatcher(url: server.url, file: file, extra: "failure: closed")
        untrusting.dispatch(testAlert(testEvent(comm: "cat"), rule: "Sensitive file read"), actions: ["record"])
        XCTAssertTrue(untrusting.shutdown(timeout: .seconds(30)))
        let policy = try XCTUnwrap(untrusting.stats().policy)
        XCTAssertEqual([policy.allowed, policy.denied, policy.failedClosed], [0, 0, 1], "\(policy)")
        XCTAssertTrue(policy.lastError?.contains("certificate") ?? false, "\(policy)")
        XCTAssertEqual(server.requests.count, 1, "only the trusting dispatcher's request got through")
        XCTAssertTrue(lines(file).isEmpty)
    }

    func testOnlyTheChosenRulesAndPrioritiesGoThroughThePolicy() throws {
        let server = try PolicyServer(policies: [PolicyServer.shipped("sensitive_file_read.rego")])
        let file = try temporaryDirectory() + "/alerts.jsonl"
        let dispatcher = try dispatcher(url: server.url, file: file, extra: "rules: [Sensitive file read], min_priority: WARNING")
        dispatcher.dispatch(testAlert(testEvent(comm: "sshd"), rule: "Other rule"), actions: ["record"])
        dispatcher.dispatch(testAlert(testEvent(comm: "sshd"), rule: "Sensitive file read", priority: .notice), actions: ["record"])
        dispatcher.dispatch(testAlert(testEvent(comm: "sshd"), rule: "Sensitive file read", priority: .error), actions: ["record"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        XCTAssertEqual(server.requests.count, 1, "only the ERROR alert of the chosen rule was asked about")
        XCTAssertEqual(lines(file).count, 2)
        XCTAssertEqual(dispatcher.stats().policy?.denied, 1)
    }
}
