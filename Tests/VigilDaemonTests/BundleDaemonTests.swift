import Foundation
import VigilBPF
import VigilTestSupport
import XCTest

/// Program bundles in the daemon (docs/bundles.md): `vigil create DIR` loads the example bundle
/// examples/bundles/signals, `vigil ls` lists it with its variant and counters, a rule on its
/// fields alerts on a real `kill -9` through the daemon's alert stream, its events are in
/// `vigil events -o json`, a broken bundle is refused with the verifier's message while the
/// loaded one keeps running, it survives a restart, and `vigil rm` unloads it (its programs gone
/// from the daemon's fds). Only root or the socket group may load one.
final class BundleDaemonTests: XCTestCase {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/bundles").path

    static let rule = """
        - rule: SIGKILL to sleep
          desc: a bundle's fields in a rule
          condition: prog.signals.sig = 9 and prog.signals.target_comm = "sleep"
          output: "%proc.name killed %prog.signals.target_comm (%prog.signals.target_pid)"
          priority: WARNING
        """

    /// Kills a fresh `sleep 60` with /bin/kill -9; returns the sleep's pid.
    static func killASleep() throws -> Int32 {
        let sleeper = try Process.run(URL(fileURLWithPath: "/bin/sleep"), arguments: ["60"])
        let killer = try Process.run(URL(fileURLWithPath: "/bin/kill"), arguments: ["-9", String(sleeper.processIdentifier)])
        killer.waitUntilExit()
        sleeper.waitUntilExit()
        return sleeper.processIdentifier
    }

    /// The names of the BPF programs a process holds open (ids from /proc/PID/fdinfo, names from
    /// `bpftool prog show`; the kernel keeps 15 characters of a name).
    static func programNames(of pid: Int32) throws -> [String] {
        let directory = "/proc/\(pid)/fdinfo"
        let ids: Set<Int> = Set(((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).compactMap { fd in
            ((try? String(contentsOfFile: directory + "/" + fd, encoding: .utf8)) ?? "").split(separator: "\n")
                .first { $0.hasPrefix("prog_id:") }.flatMap { Int($0.dropFirst(8).trimmingCharacters(in: .whitespaces)) }
        })
        let shown = try runCapturing("/usr/sbin/bpftool", ["-j", "prog", "show"])
        let programs = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [[String: Any]])
        return programs.filter { ids.contains($0["id"] as? Int ?? -1) }.compactMap { $0["name"] as? String }
    }

    func testCreateAlertEventsListRestartAndRemoveABundle() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let daemon = try TestDaemon()
        let created = try daemon.vigil(["create", Self.examples + "/signals"])
        XCTAssertEqual(created.status, 0, created.stderr)
        XCTAssertTrue(created.stdout.contains("loaded bundle signals (generate: tracepoint)"), created.stdout)
        XCTAssertTrue(created.stdout.contains("prog.signals.target_comm"), created.stdout)
        XCTAssertTrue(try Self.programNames(of: daemon.pid).contains { $0.hasPrefix("signal_generate") }, "the bundle's tracepoint program is loaded")

        let rules = try daemon.createRules(Self.rule, name: "signals-rule.yaml")
        XCTAssertEqual(rules.status, 0, rules.stderr)
        let alerts = try StreamClient(["alerts", "-o", "json", "--socket", daemon.socket])
        let events = try StreamClient(["events", "-o", "json", "--socket", daemon.socket])
        // The trigger runs until the stream shows a match (the stream may start a little late):
        // every sleep killed is one the match may name.
        var killed: Set<Int32> = []
        func kills() throws { killed.insert(try Self.killASleep()) }
        func names(_ alert: [String: Any]) -> Bool { killed.contains { (alert["output"] as? String ?? "").hasSuffix("kill killed sleep (\($0))") } }
        let alert = alerts.first(triggering: kills) { ($0["rule"] as? String) == "SIGKILL to sleep" && names($0) }
        XCTAssertNotNil(alert, daemon.diagnostics)
        let event = events.first(triggering: kills) { killed.contains(($0["prog.signals.target_pid"] as? NSNumber)?.int32Value ?? 0) }
        XCTAssertEqual(event?["evt.type"] as? String, "signals", "\(event ?? [:])")
        XCTAssertEqual((event?["prog.signals.sig"] as? NSNumber)?.intValue, 9)

        let list = try daemon.vigil(["ls"])
        XCTAssertEqual(list.status, 0, list.stderr)
        let row = try XCTUnwrap(list.stdout.split(separator: "\n").first { $0.hasPrefix("signals ") }, list.stdout)
        XCTAssertTrue(row.contains("generate: tracepoint"), String(row))
        let api = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(daemon.request("GET", "/v1/bundles").body.utf8)) as? [String: Any])
        let counters = ((api["bundles"] as? [[String: Any]])?.first?["counters"] as? [String: Any]) ?? [:]
        XCTAssertGreaterThanOrEqual((counters["events"] as? Int) ?? 0, 2, "\(api)")

        // A bundle the verifier refuses: 400 with the verifier's message; the loaded one stays.
        let broken = try daemon.vigil(["create", Self.examples + "/broken"])
        XCTAssertNotEqual(broken.status, 0)
        XCTAssertTrue(broken.stderr.contains("invalid access to map value"), broken.stderr)
        killed = []
        XCTAssertNotNil(alerts.first(triggering: kills, where: names), "the loaded bundle still alerts after the refusal")

        // Kept in the state directory: loaded again at the next start, before the rules naming it.
        alerts.stop(); events.stop()
        XCTAssertEqual(daemon.stop(), 0)
        try daemon.restart()
        let again = try daemon.vigil(["ls"])
        XCTAssertTrue(again.stdout.contains("generate: tracepoint"), again.stdout + daemon.diagnostics)
        let after = try StreamClient(["alerts", "-o", "json", "--socket", daemon.socket])
        killed = []
        XCTAssertNotNil(after.first(triggering: kills, where: names), "the rule on its fields alerts after a restart: \(daemon.diagnostics)")
        after.stop()

        XCTAssertTrue(try Self.programNames(of: daemon.pid).contains { $0.hasPrefix("signal_generate") }, "loaded again at the start")
        let removed = try daemon.vigil(["rm", "signals"])
        XCTAssertEqual(removed.status, 0, removed.stderr)
        XCTAssertTrue(removed.stdout.contains("unloaded bundle signals"), removed.stdout)
        XCTAssertFalse(try Self.programNames(of: daemon.pid).contains { $0.hasPrefix("signal_generate") }, "its program is closed")
        XCTAssertFalse(try daemon.vigil(["ls"]).stdout.contains("generate: tracepoint"))
        XCTAssertEqual(try daemon.request("DELETE", "/v1/bundles/signals").status, 404)
    }

    /// A peer that is neither root nor in the socket group cannot load a bundle: 403, and
    /// nothing is loaded.
    func testOnlyAuthorizedPeersLoadBundles() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let daemon = try TestDaemon()
        chmod(daemon.socket, 0o666)  // past the file mode, to the server's own check (SO_PEERCRED)
        let object = try Data(contentsOf: URL(fileURLWithPath: Self.examples + "/signals/signals.bpf.o")).base64EncodedString()
        let manifest = try String(contentsOfFile: Self.examples + "/signals/bundle.yaml", encoding: .utf8)
        let body = String(decoding: try JSONSerialization.data(withJSONObject: ["manifest": manifest, "object": object]), as: UTF8.self)
        let refused = try daemon.request("POST", "/v1/bundles", body: body, asUser: "nobody")
        XCTAssertEqual(refused.status, 403, refused.body)
        XCTAssertTrue(refused.body.contains("forbidden: uid 65534"), refused.body)
        XCTAssertTrue(try daemon.request("GET", "/v1/bundles").body.contains("\"bundles\":[]"), "nothing loaded")
        let allowed = try daemon.request("POST", "/v1/bundles", body: body)
        XCTAssertEqual(allowed.status, 201, allowed.body)
    }
}
