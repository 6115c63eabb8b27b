import Foundation
@testable import VigilActions
import VigilTestSupport
import XCTest

/// Issue 17 §5 and §6: events, not only alerts, to the NATS export and to the policy stage,
/// through the dispatcher's event taps, from a real daemon seeing real processes.
final class EventExportTests: XCTestCase {
    /// The dispatcher's `event_taps` in the daemon's status.
    func taps(_ daemon: TestDaemon) -> [[String: Any]] {
        let body = (try? daemon.request("GET", "/v1/status").body) ?? ""
        let object = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
        return ((object?["consumers"] as? [String: Any])?["actions"] as? [String: Any])?["event_taps"] as? [[String: Any]] ?? []
    }

    func testAnExecOfAMarkerCommandIsPublishedOnTheEventsSubjectWithTheEventsJSON() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let server = try TestNATSServer()
        let tag = UUID().uuidString.prefix(8).lowercased()
        let host = "evx-\(tag)"
        // proc.name: the `vigil events` client's own arguments hold the marker too.
        let filter = "evt.type = execve and proc.name = echo and proc.args contains evx-marker-\(tag)"
        let daemon = try TestDaemon(extraConfig: """
        hostname: \(host)
        actions:
          named:
            bus: {type: nats, servers: ["\(server.url)"], timeout: 5, events: {filter: "\(filter)", queue_size: 100}}
        """)
        // The same events through the API's stream: the JSON `vigil events -o json` prints.
        let cli = try StreamClient(["events", "-o", "json", "--filter", filter, "--socket", daemon.socket])
        let seen = cli.first(triggering: { _ = try runProgram("/bin/echo", ["evx-marker-\(tag)"]) }) { _ in true }
        XCTAssertNotNil(seen, "vigil events: \(cli.stderr)\n\(daemon.diagnostics)")

        func stored() -> [NATSConnection.StoredMessage] {
            guard let url = try? NATSServerURL(server.url),
                let connection = try? NATSConnection(url, tls: nil, credentials: nil, timeout: .seconds(10)) else { return [] }
            return (try? connection.storedMessages("VIGIL")) ?? []
        }
        var messages: [NATSConnection.StoredMessage] = []
        func pids(_ messages: [NATSConnection.StoredMessage]) -> Set<Int> {
            Set(messages.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.data)) as? [String: Any])?["proc.pid"] as? Int })
        }
        // Every exec the stream showed is on the bus too.
        let published = waitUntil(seconds: 30) {
            messages = stored()
            return !messages.isEmpty && Set(cli.objects.compactMap { $0["proc.pid"] as? Int }).isSubset(of: pids(messages))
        }
        XCTAssertTrue(published, "stream: \(messages.map(\.subject)), taps: \(taps(daemon))\n\(daemon.diagnostics)")
        cli.stop()
        for message in messages {
            XCTAssertEqual(message.subject, "vigil.\(host).events.exec")
            XCTAssertFalse(message.headers.contains("Nats-Msg-Id"), "events are plain PUBs: \(message.headers)")
        }
        let events = messages.compactMap { try? JSONSerialization.jsonObject(with: Data($0.data)) as? [String: Any] }
        XCTAssertEqual(events.count, messages.count, "each message is one JSON object")
        XCTAssertFalse(events.isEmpty)
        for event in events {
            XCTAssertEqual(event["evt.type"] as? String, "execve")
            XCTAssertEqual(event["proc.name"] as? String, "echo")
        }
        // The very object the API's event stream carried for the same exec. The trigger repeats
        // until the stream shows one, so the bus may also hold an earlier echo the stream's
        // client, still connecting, did not see: pair them by pid, the stream's side first.
        let streamed = try XCTUnwrap(cli.objects.first, "vigil events: \(cli.stderr)")
        let event = try XCTUnwrap(events.first { ($0["proc.pid"] as? Int) == (streamed["proc.pid"] as? Int) },
            "the bus: \(events.map { $0["proc.pid"] ?? "?" }), the stream: \(streamed["proc.pid"] ?? "?")")
        XCTAssertEqual(NSDictionary(dictionary: streamed), NSDictionary(dictionary: event))

        let tap = try XCTUnwrap(taps(daemon).first { ($0["name"] as? String) == "nats:bus" }, "\(taps(daemon))")
        XCTAssertEqual(tap["filter"] as? String, filter)
        XCTAssertEqual(tap["sent"] as? Int, messages.count, "\(tap)")
        XCTAssertEqual(tap["dropped"] as? Int, 0, "\(tap)")
        XCTAssertEqual(tap["failed"] as? Int, 0, "\(tap)")
    }

    func testAFloodOfRealExecsOverflowingASmallQueueIsCountedAsDropped() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        // A "server" that takes the connection and never says INFO: the tap's thread waits in
        // its connect for `timeout` (60 s) while the flood arrives, so the queue (1 event) fills.
        let (stuck, port, _) = try launchCapturing("/usr/bin/python3", ["-c", """
        import socket, time
        s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
        print(s.getsockname()[1], flush=True)
        conns = []
        while True:
            c, _ = s.accept(); conns.append(c)
        """])
        defer { stuck.terminate() }
        XCTAssertTrue(waitUntil(seconds: 10) { Int(port.sofar.trimmingCharacters(in: .whitespacesAndNewlines)) != nil })
        let tag = UUID().uuidString.prefix(8).lowercased()
        let filter = "evt.type = execve and proc.name = true and proc.args contains evx-flood-\(tag)"
        let daemon = try TestDaemon(extraConfig: """
        actions:
          named:
            bus: {type: nats, servers: ["nats://127.0.0.1:\(port.sofar.trimmingCharacters(in: .whitespacesAndNewlines))"], timeout: 60, events: {filter: "\(filter)", queue_size: 1}}
        """)
        let flood = 200
        _ = try runProgram("/bin/sh", ["-c", "i=0; while [ $i -lt \(flood) ]; do /bin/true evx-flood-\(tag); i=$((i+1)); done"])
        var tap: [String: Any] = [:]
        let counted = waitUntil(seconds: 30) {
            tap = taps(daemon).first { ($0["name"] as? String) == "nats:bus" } ?? [:]
            return (tap["matched"] as? Int) == flood
        }
        XCTAssertTrue(counted, "\(tap)\n\(daemon.diagnostics)")
        // One event in the stuck handler, at most one queued: every other one dropped, counted.
        XCTAssertGreaterThanOrEqual(tap["dropped"] as? Int ?? 0, flood - 2, "\(tap)")
        XCTAssertLessThanOrEqual(tap["queued"] as? Int ?? 9, 1, "\(tap)")
        XCTAssertEqual(tap["sent"] as? Int, 0, "\(tap)")
        let shown = try daemon.vigil(["status"]).stdout
        XCTAssertTrue(shown.contains("event tap nats:bus (\(filter)): \(flood) matched, 0 sent, 0 failed, \(tap["dropped"] as? Int ?? -1) dropped"), shown)
    }

    func testThePolicyDecidesOnRealExecsAndADeniedOneIsAPolicyViolationAlert() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let tag = UUID().uuidString.prefix(6).lowercased()
        let banned = "evx\(tag)"  // a short name: proc.name is the comm (15 bytes at most)
        let directory = NSTemporaryDirectory() + "vigil-evx-\(tag)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let policyFile = directory + "/exec_guard.rego"
        try """
        package vigil.exec_guard

        import rego.v1

        default allow := true

        allow := false if input["proc.name"] == "\(banned)"

        default reason := "allowed"

        reason := sprintf("%s may not run on this host", [input["proc.name"]]) if not allow

        decision := {"allow": allow, "reason": reason, "priority": "ERROR"}
        """.write(toFile: policyFile, atomically: true, encoding: .utf8)
        let server = try PolicyServer(policies: [policyFile])
        let record = directory + "/alerts.jsonl"
        let filter = "evt.type = execve and proc.args contains evx-\(tag)-run"
        let metricsPort = try Loopback.freePort()
        let daemon = try TestDaemon(extraConfig: """
        metrics: {enabled: true, port: \(metricsPort)}
        actions:
          dedup: {window: 0}
          default_actions: [record]
          named:
            record: {type: file, path: \(record)}
          policy:
            url: \(server.url)
            path: vigil/exec_guard/decision
            rules: [no such rule \(tag)]
            timeout: 10
            events: {filter: "\(filter)"}
        """)
        let program = directory + "/" + banned
        try FileManager.default.copyItem(atPath: "/bin/echo", toPath: program)
        _ = try runProgram(program, ["evx-\(tag)-run", "denied"])
        _ = try runProgram("/bin/echo", ["evx-\(tag)-run", "allowed"])

        func violations() -> [[String: Any]] {
            ((try? String(contentsOfFile: record, encoding: .utf8)) ?? "").split(separator: "\n")
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .filter { ($0["rule"] as? String) == "Policy violation" }
        }
        func policy() -> [String: Any] {
            let body = (try? daemon.request("GET", "/v1/status").body) ?? ""
            let object = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
            return ((object?["consumers"] as? [String: Any])?["actions"] as? [String: Any])?["policy"] as? [String: Any] ?? [:]
        }
        let decided = waitUntil(seconds: 60) {
            (policy()["events_allowed"] as? Int) == 1 && (policy()["events_denied"] as? Int) == 1 && !violations().isEmpty
        }
        XCTAssertTrue(decided, "policy: \(policy())\nrecord: \(violations())\nrequests: \(server.requests)\n\(daemon.diagnostics)")
        let alerts = violations()
        XCTAssertEqual(alerts.count, 1, "only the denied exec is an alert: \(alerts)")
        let alert = try XCTUnwrap(alerts.first)
        XCTAssertEqual(alert["priority"] as? String, "ERROR", "the decision's priority: \(alert)")
        XCTAssertEqual((alert["output_fields"] as? [String: Any])?["proc.name"] as? String, banned, "\(alert)")
        XCTAssertEqual((alert["policy"] as? [String: Any])?["reason"] as? String, "\(banned) may not run on this host", "\(alert)")
        XCTAssertTrue((alert["output"] as? String)?.contains("vigil/exec_guard/decision denied exec by \(banned)") ?? false, "\(alert)")
        // The server was asked about both execs, each event's JSON as the input.
        let inputs = server.requests.compactMap { $0["input"] as? [String: Any] }
        XCTAssertEqual(Set(inputs.compactMap { $0["proc.name"] as? String }), [banned, "echo"], "\(inputs)")
        XCTAssertTrue(inputs.allSatisfy { ($0["evt.type"] as? String) == "execve" }, "\(inputs)")
        let tap = try XCTUnwrap(taps(daemon).first { ($0["name"] as? String) == "policy" }, "\(taps(daemon))")
        XCTAssertEqual(tap["sent"] as? Int, 2, "\(tap)")
        XCTAssertEqual(tap["dropped"] as? Int, 0, "\(tap)")
        XCTAssertEqual(policy()["allowed"] as? Int, 0, "no alert of the policy's rules: \(policy())")
        let shown = try daemon.vigil(["status"]).stdout
        XCTAssertTrue(shown.contains("event tap policy (\(filter)): 2 matched, 2 sent, 0 failed, 0 dropped, 0 waiting; 1 allowed, 1 denied"), shown)
        let metrics = try runCapturing("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(metricsPort)/metrics"]).stdout
        for line in ["vigil_event_tap_events_total{tap=\"policy\",result=\"sent\"} 2", "vigil_event_tap_events_total{tap=\"policy\",result=\"dropped\"} 0",
                     "vigil_policy_event_decisions_total{result=\"denied\"} 1", "vigil_policy_event_decisions_total{result=\"allowed\"} 1"] {
            XCTAssertTrue(metrics.contains(line), "\(line) in\n\(metrics)")
        }
    }
}
