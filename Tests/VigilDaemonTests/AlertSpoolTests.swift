import Foundation
import VigilTestSupport
import XCTest

/// Issue 16 §3: alerts waiting for a network action survive a crash. A real daemon, a real
/// HTTP receiver (Tests/Fixtures/webhook-receiver.py, python3) that is down, then up; SIGKILL
/// in between.
final class AlertSpoolTests: XCTestCase {
    /// A receiver process on 127.0.0.1:`port` writing what it gets to `output`.
    final class Receiver {
        let process = Process()

        init(port: UInt16, output: String, mode: String) throws {
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("Fixtures/webhook-receiver.py").path
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = [script, String(port), output, mode]
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let listening = waitUntil(seconds: 30) { !process.isRunning || Loopback.accepts(port) }
            guard listening, process.isRunning else { throw cannotRun("the python3 webhook receiver did not listen on \(port)") }
        }

        func stop() {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }

        deinit { stop() }
    }

    /// The lines the receiver wrote.
    static func received(_ output: String) -> [[String: Any]] {
        ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// The spool's alert files (`SEQ-ID.alert`), in order.
    static func spooled(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".alert") }.sorted()
    }

    func testAlertsWaitingForADownWebhookSurviveSIGKILLAndArriveWithIDsThatExposeDuplicates() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let port = try Loopback.freePort()
        let tag = UUID().uuidString.prefix(8).lowercased()
        let count = 5
        let daemon = try TestDaemon(extraConfig: """
        actions:
          dedup: {window: 0}
          named:
            hook: {type: webhook, url: "http://127.0.0.1:\(port)/alerts", backoff: 0.05, max_backoff: 0.2, timeout: 2}
        """)
        let spool = daemon.directory + "/state/spool/hook"
        let output = daemon.directory + "/received.jsonl"
        let created = try daemon.createRules("""
        - rule: Spool marker \(tag)
          desc: the test's marker files were opened
          condition: evt.type in (open, openat, openat2) and fd.name startswith /tmp/vigil-spool-\(tag)-
          output: "spool marker %fd.name opened by %proc.name"
          priority: WARNING
          actions: [hook]
        """, name: "spool-\(tag).yaml")
        XCTAssertEqual(created.status, 0, created.stderr)

        // The receiver is down: every alert waits in the spool.
        for index in 0..<count {
            try runProgram("/bin/sh", ["-c", "cat /tmp/vigil-spool-\(tag)-\(index) 2>/dev/null; true"])
        }
        let allSpooled = waitUntil(seconds: 60) { Self.spooled(spool).count == count }
        XCTAssertTrue(allSpooled, "\(count) alerts in \(spool): \(Self.spooled(spool))\n\(daemon.diagnostics)")
        let status = try daemon.request("GET", "/v1/status").body
        XCTAssertTrue(status.contains("\"spooled\":\(count)"), status)
        XCTAssertEqual(daemon.stop(SIGKILL), SIGKILL)
        let ids = Self.spooled(spool).map { String($0.split(separator: "-", maxSplits: 1)[1].dropLast(".alert".count)) }
        XCTAssertEqual(ids.count, count, "the spool survived SIGKILL")

        // The receiver takes the first alert but its answer never comes: the daemon dies again
        // before it knows, so that alert is sent again after the restart (at least once).
        var receiver = try Receiver(port: port, output: output, mode: "hang")
        try daemon.restart()
        let firstArrived = waitUntil(seconds: 60) { !Self.received(output).isEmpty }
        XCTAssertTrue(firstArrived, daemon.diagnostics)
        XCTAssertEqual(daemon.stop(SIGKILL), SIGKILL)
        receiver.stop()
        XCTAssertEqual(Self.spooled(spool).count, count, "nothing removed without an answer")

        receiver = try Receiver(port: port, output: output, mode: "ok")
        try daemon.restart()
        let delivered = waitUntil(seconds: 60) { Self.spooled(spool).isEmpty && Set(Self.received(output).compactMap { $0["alert_id"] as? String }).count == count }
        XCTAssertTrue(delivered, "received: \(Self.received(output).count), spool: \(Self.spooled(spool))\n\(daemon.diagnostics)")

        let requests = Self.received(output)
        let bodies = requests.compactMap { ($0["body"] as? String).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } }
        XCTAssertEqual(bodies.count, requests.count, "every body is the alert's JSON")
        for (request, body) in zip(requests, bodies) {
            XCTAssertEqual(request["alert_id"] as? String, body["id"] as? String, "the header and the JSON carry the same id")
            XCTAssertEqual(request["path"] as? String, "/alerts")
        }
        XCTAssertEqual(bodies.compactMap { $0["id"] as? String }, [ids[0]] + ids, "in order; the first twice (its answer was lost)")
        let files = bodies.compactMap { ($0["output_fields"] as? [String: Any])?["fd.name"] as? String }
        var seen = Set<String>()
        let unique = zip(bodies.compactMap { $0["id"] as? String }, files).filter { seen.insert($0.0).inserted }.map(\.1)
        XCTAssertEqual(unique, (0..<count).map { "/tmp/vigil-spool-\(tag)-\($0)" }, "dropping duplicates by id leaves each alert once")
        receiver.stop()
    }
}
