import Foundation
import VigilTestSupport
import XCTest

/// Issue 16 §2, the outside services: a Docker engine that dies and comes back, and a webhook,
/// an SMTP server and a syslog server down for minutes. A real daemon, a real engine, real
/// receivers (Tests/Fixtures/webhook-receiver.py, aiosmtpd, `TCPReceiver`).
final class ReceiverFaultTests: XCTestCase {
    /// How long the three receivers are down: the issue's "for minutes", paid once.
    static let outageSeconds = 120.0
    /// Resident memory the daemon may grow by during the outage (a bound on memory, generous:
    /// the queues and spools are bounded at a few hundred alerts, a few MiB).
    static let memoryGrowthBound = 64 << 20

    // MARK: - dockerd

    /// The engine dies (SIGKILL, as a crash or the OOM killer would: its containers go on under
    /// their shims until it is back) while the daemon runs, and comes back through
    /// scripts/docker-engine.sh; then it hangs (SIGSTOP) while the daemon restarts, and goes on
    /// (SIGCONT). The engine is a private one started by that script (its own socket, data root,
    /// exec root and pidfile), so the machine's engine and other tests' containers are never touched.
    func testDockerdDyingHangingAndComingBackKeepsIDsFallsBackAndNamesAgain() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let engine = try ScriptedDockerEngine(for: self)
        let tag = UUID().uuidString.prefix(8).lowercased()
        let marker = { (who: String) in "/tmp/vigil-df-\(tag)-\(who)" }
        let loop = { (who: String) in ["sh", "-c", "while :; do cat \(marker(who)) 2>/dev/null; sleep 1; done"] }
        let metricsPort = try Loopback.freePort()
        let daemon = try TestDaemon(extraConfig: """
        metrics: {enabled: true, port: \(metricsPort)}
        docker: {socket: \(engine.socket)}
        """)
        let created = try daemon.createRules("""
        - rule: Docker fault marker \(tag)
          desc: a container opened the test's marker
          condition: evt.type in (open, openat, openat2) and fd.name startswith /tmp/vigil-df-\(tag)-
          output: "marker %fd.name in %container.id (%container.name, %container.image)"
          priority: WARNING
        """, name: "docker-fault-\(tag).yaml")
        XCTAssertEqual(created.status, 0, created.stderr)
        var alerts = try StreamClient(["alerts", "-o", "json", "--socket", daemon.socket])
        defer { alerts.stop() }
        /// The container fields of the first alert for `who`'s marker, after the `from`th object,
        /// that satisfies `match`.
        func alertFields(_ who: String, from: Int = 0, seconds: Double = 60,
                         where match: @escaping ([String: Any]) -> Bool = { _ in true }) -> [String: Any]? {
            var found: [String: Any]?
            waitUntil(seconds: seconds) {
                found = alerts.objects.dropFirst(from).lazy.compactMap { $0["output_fields"] as? [String: Any] }
                    .first { $0["fd.name"] as? String == marker(who) && match($0) }
                return found != nil
            }
            return found
        }
        func assertNamed(_ fields: [String: Any]?, _ id: String, _ name: String, _ when: String, line: UInt = #line) {
            XCTAssertEqual(fields?["container.full_id"] as? String, id, when, line: line)
            XCTAssertEqual(fields?["container.name"] as? String, name, when, line: line)
            XCTAssertEqual(fields?["container.image"] as? String, DockerTestEngine.image, when, line: line)
        }
        func docker(_ check: @escaping ((events: [String: Any], metadata: [String: Any])) -> Bool) -> Bool {
            waitUntil(seconds: 90) { (try? self.dockerStatus(daemon)).map(check) ?? false }
        }

        // While the engine runs, A is named from it.
        let a = try engine.run(name: "vigil-df-a-\(tag)", loop("a"))
        assertNamed(alertFields("a"), a, "vigil-df-a-\(tag)", "before the crash\n\(daemon.diagnostics)")
        XCTAssertTrue(docker { $0.events["connected"] as? Bool == true }, daemon.diagnostics)

        // The engine dies. A goes on: its events keep the id, and the name and image the daemon
        // had, from its cache; the daemon answers and counts the stream's end.
        engine.signal(SIGKILL)
        assertNamed(alertFields("a", from: alerts.objects.count), a, "vigil-df-a-\(tag)", "while the engine is down\n\(daemon.diagnostics)")
        XCTAssertTrue(docker { $0.events["connected"] as? Bool == false && ($0.events["failures"] as? Int ?? 0) >= 1 },
                      "the event stream's end is counted\n\(daemon.diagnostics)")
        let text = try daemon.vigil(["status"]).stdout
        XCTAssertTrue(text.contains("docker \(engine.socket): events NOT SUBSCRIBED (1 connections, "), text)

        // The engine comes back (the same script; without live-restore it stops A). The event
        // stream is subscribed again, and B, started now, is named.
        try engine.start()
        XCTAssertTrue(docker { $0.events["connected"] as? Bool == true && ($0.events["connections"] as? Int ?? 0) >= 2 },
                      "the watcher subscribed again\n\(daemon.diagnostics)")
        let b = try engine.run(name: "vigil-df-b-\(tag)", loop("b"))
        assertNamed(alertFields("b"), b, "vigil-df-b-\(tag)", "a container started after the engine's return\n\(daemon.diagnostics)")

        // "Metadata falls back": the engine hangs (SIGSTOP) and the daemon, restarted meanwhile,
        // first sees B now. B's events carry its id (from the cgroup) without name or image, the
        // fetch that timed out is counted, and the daemon does not wait on the engine.
        engine.signal(SIGSTOP)
        alerts.stop()
        daemon.stop()
        try daemon.restart()
        alerts = try StreamClient(["alerts", "-o", "json", "--socket", daemon.socket])
        let fallback = alertFields("b")
        XCTAssertEqual(fallback?["container.full_id"] as? String, b, daemon.diagnostics)
        XCTAssertEqual(fallback?["container.id"] as? String, String(b.prefix(12)))
        XCTAssertEqual(fallback?["container.name"] as? String, "", "no name without the engine")
        let hung = try dockerStatus(daemon)
        XCTAssertGreaterThanOrEqual(hung.metadata["failed"] as? Int ?? 0, 1, "the failed fetch is counted: \(hung.metadata)")
        XCTAssertNotNil(hung.metadata["last_failure"] as? String, "\(hung.metadata)")
        XCTAssertTrue(try daemon.vigil(["status"]).stdout.contains("  metadata's last failure: "), daemon.diagnostics)

        // The engine goes on: B, first seen while it hung, is named again.
        engine.signal(SIGCONT)
        assertNamed(alertFields("b", from: alerts.objects.count, seconds: 90) { !($0["container.name"] as? String ?? "").isEmpty },
                    b, "vigil-df-b-\(tag)", "B is named once the engine answers again\n\(daemon.diagnostics)")
        XCTAssertTrue(docker { ($0.metadata["found"] as? Int ?? 0) >= 1 && $0.events["connected"] as? Bool == true }, daemon.diagnostics)
        let metrics = try runCapturing("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(metricsPort)/metrics"]).stdout
        XCTAssertTrue(metrics.contains("vigil_docker_events_connected 1"), metrics)
        XCTAssertTrue(metrics.range(of: #"vigil_container_metadata_fetches_total\{result="failed"\} [1-9]"#, options: .regularExpression) != nil, metrics)
        XCTAssertTrue(metrics.range(of: #"vigil_container_metadata_fetches_total\{result="found"\} [1-9]"#, options: .regularExpression) != nil, metrics)
        XCTAssertTrue(daemon.process.isRunning, "no crash\n\(daemon.diagnostics)")
    }

    /// `docker` of the daemon's status: its `events` and `metadata` objects.
    private func dockerStatus(_ daemon: TestDaemon) throws -> (events: [String: Any], metadata: [String: Any]) {
        let body = try daemon.request("GET", "/v1/status").body
        let status = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any], body)
        let docker = try XCTUnwrap(status["docker"] as? [String: Any], body)
        return (try XCTUnwrap(docker["events"] as? [String: Any], body), try XCTUnwrap(docker["metadata"] as? [String: Any], body))
    }

    // MARK: - Receivers down for minutes

    /// One daemon, three network actions (webhook, email, syslog over TCP) whose receivers are
    /// down for `outageSeconds` while alerts come steadily and in one burst of 3000: queues and
    /// spools stay within `queue_size`, retries back off and are counted, what does not fit is
    /// dropped and counted, resident memory stays bounded; once the receivers listen, the
    /// spooled alerts arrive (the webhook's by id) and so do alerts raised afterwards, at all three.
    func testWebhookSMTPAndSyslogDownForMinutesStayBoundedAndDeliverOnceBack() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let (webPort, smtpPort, syslogPort) = (try Loopback.freePort(), try Loopback.freePort(), try Loopback.freePort())
        let tag = UUID().uuidString.prefix(8).lowercased()
        let prefix = "/tmp/vigil-rf-\(tag)-"
        let queueSize = 200
        let daemon = try TestDaemon(extraConfig: """
        actions:
          dedup: {window: 0}
          queue_size: \(queueSize)
          backoff: 0.2
          max_backoff: 5
          timeout: 2
          named:
            hook: {type: webhook, url: "http://127.0.0.1:\(webPort)/alerts"}
            mail: {type: email, server: "127.0.0.1:\(smtpPort)", from: vigil@test.invalid, to: [soc@test.invalid]}
            siem: {type: syslog, address: "tcp://127.0.0.1:\(syslogPort)"}
        """)
        let created = try daemon.createRules("""
        - rule: Receiver fault marker \(tag)
          desc: the test's marker files were opened
          condition: evt.type in (open, openat, openat2) and fd.name startswith \(prefix)
          output: "marker %fd.name opened by %proc.name"
          priority: WARNING
          actions: [hook, mail, siem]
        """, name: "receiver-fault-\(tag).yaml")
        XCTAssertEqual(created.status, 0, created.stderr)
        let names = ["hook", "mail", "siem"]
        let baseline = try XCTUnwrap(Self.residentBytes(daemon.pid))

        // Alerts come steadily (4 a second) through the outage, and 3000 at once a little into it.
        let steady = try launchCapturing("/usr/bin/python3", ["-c", Self.opener, prefix + "s", "0.25", String(Self.outageSeconds)])
        defer { if steady.process.isRunning { steady.process.terminate() } }
        var peakResident = baseline
        var peakQueued = [String: Int]()
        let start = Date()
        var burst = false
        while Date().timeIntervalSince(start) < Self.outageSeconds {
            if !burst, Date().timeIntervalSince(start) > 20 {
                try runCapturing("/usr/bin/python3", ["-c", Self.opener, prefix + "b", "0", "3000"])
                burst = true
            }
            peakResident = max(peakResident, Self.residentBytes(daemon.pid) ?? 0)
            for stats in try actionStats(daemon, names) {
                peakQueued[stats.key] = max(peakQueued[stats.key] ?? 0, stats.value["queued"] as? Int ?? 0)
            }
            Thread.sleep(forTimeInterval: 2)
        }
        steady.process.waitUntilExit()
        let down = try actionStats(daemon, names)
        for name in names {
            let stats = try XCTUnwrap(down[name], "status names \(name): \(daemon.diagnostics)")
            XCTAssertLessThanOrEqual(peakQueued[name] ?? .max, queueSize, "\(name)'s queue stays within queue_size: \(stats)")
            XCTAssertGreaterThan(stats["retried"] as? Int ?? 0, 1, "\(name) retried with back-off: \(stats)")
            XCTAssertGreaterThan(stats["dropped"] as? Int ?? 0, 2000, "\(name) counted what did not fit: \(stats)")
            XCTAssertEqual(stats["sent"] as? Int, 0, "\(name): nothing listened: \(stats)")
            XCTAssertLessThanOrEqual(Self.spooled(daemon, name).count, queueSize, "\(name)'s spool stays within queue_size")
        }
        XCTAssertLessThan(peakResident - baseline, Self.memoryGrowthBound,
                          "resident memory grew from \(baseline >> 20) MiB to \(peakResident >> 20) MiB during the outage")
        let waiting = Self.spooled(daemon, "hook").map { String($0.split(separator: "-", maxSplits: 1)[1].dropLast(".alert".count)) }
        XCTAssertFalse(waiting.isEmpty, "webhook alerts wait in the spool")

        // The receivers start on the same ports: what waited arrives, then what comes after.
        let output = daemon.directory + "/webhook.jsonl"
        let webhook = try AlertSpoolTests.Receiver(port: webPort, output: output, mode: "ok")
        defer { webhook.stop() }
        let smtp = try TestSMTPServer(port: smtpPort)
        let syslog = try TCPReceiver(port: syslogPort)
        let backlog = waitUntil(seconds: 180) {
            let ids = Set(AlertSpoolTests.received(output).compactMap { $0["alert_id"] as? String })
            let queued = (try? self.actionStats(daemon, names))?.values.map { $0["queued"] as? Int ?? -1 } ?? []
            return ids.isSuperset(of: waiting) && queued.count == names.count && queued.allSatisfy { $0 == 0 }
        }
        let received = AlertSpoolTests.received(output)
        XCTAssertTrue(backlog, """
            the spooled alerts went out: \(received.count) webhook requests, \
            \(Set(waiting).subtracting(received.compactMap { $0["alert_id"] as? String }).count) spooled ids missing; \
            mail: \(smtp.messages.count); syslog: \(syslog.received.count) bytes
            \(daemon.diagnostics)
            """)
        // Alerts raised now (the queues have room again) reach all three.
        let later = (0..<5).map { "\(prefix)after-\($0)" }
        try runCapturing("/usr/bin/python3", ["-c", Self.opener, prefix + "after-", "0", "5"])
        let delivered = waitUntil(seconds: 60) {
            let bodies = AlertSpoolTests.received(output).compactMap { $0["body"] as? String }.joined()
            let mail = smtp.messages.joined().replacingOccurrences(of: "=\r\n", with: "").replacingOccurrences(of: "=\n", with: "")  // soft breaks
            let lines = String(decoding: syslog.received, as: UTF8.self)
            return later.allSatisfy { bodies.contains($0) && mail.contains($0) && lines.contains($0) }
        }
        XCTAssertTrue(delivered, "alerts raised after the outage reach the webhook, the mail and syslog\n\(daemon.diagnostics)")
        let back = try actionStats(daemon, names)
        for name in names {
            XCTAssertGreaterThanOrEqual(back[name]?["sent"] as? Int ?? 0, later.count, "\(name): \(back[name] ?? [:])")
        }
        XCTAssertTrue(daemon.process.isRunning, daemon.diagnostics)
    }

    /// Opens (tries to) PREFIX0, PREFIX1, ... every INTERVAL seconds, COUNT files or, with a
    /// fractional interval, for COUNT seconds: `python3 -c opener PREFIX INTERVAL COUNT`.
    static let opener = """
    import sys, time
    prefix, interval, count = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    end, i = time.monotonic() + count, 0
    while (i < count) if interval == 0 else (time.monotonic() < end):
        try: open(prefix + str(i)).close()
        except OSError: pass
        i += 1
        time.sleep(interval)
    """

    /// The daemon's status counters of the actions `names` (consumers.actions.actions).
    private func actionStats(_ daemon: TestDaemon, _ names: [String]) throws -> [String: [String: Any]] {
        let body = try daemon.request("GET", "/v1/status").body
        let status = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any], body)
        let actions = ((status["consumers"] as? [String: Any])?["actions"] as? [String: Any])?["actions"] as? [[String: Any]] ?? []
        return Dictionary(actions.compactMap { stats in (stats["name"] as? String).flatMap { names.contains($0) ? ($0, stats) : nil } }) { a, _ in a }
    }

    /// The spool files of action `name`.
    private static func spooled(_ daemon: TestDaemon, _ name: String) -> [String] {
        AlertSpoolTests.spooled(daemon.directory + "/state/spool/" + name)
    }

    /// VmRSS of `pid` in bytes (/proc/PID/status).
    static func residentBytes(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return nil }
        return kib << 10
    }
}

/// A private Docker engine started, and started again, by scripts/docker-engine.sh (the one way
/// the project starts an engine) with its own socket, data root, exec root and pidfile under
/// /tmp/vigil-df-XXXX; the busybox test image is copied into it from the machine's engine.
/// Stopping it touches neither the machine's engine nor its containers. Removed (containers,
/// dockerd, mounts, directory) when the test ends, whatever happened.
final class ScriptedDockerEngine {
    let directory: String
    var socket: String { directory + "/docker.sock" }
    private var pidfile: String { directory + "/docker.pid" }

    init(for testCase: XCTestCase) throws {
        try DockerTestEngine.requireImage(DockerTestEngine.image)
        directory = "/tmp/vigil-df-\(UUID().uuidString.prefix(8).lowercased())"  // short: sockets live below it
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        testCase.addTeardownBlock { [self] in remove() }
        try start()
        let load = DockerTestEngine.run(["sh", "-c", "docker save \(DockerTestEngine.image) | docker -H unix://\(socket) load -q"])
        guard load.status == 0 else { throw TestSetupFailure(description: "copying \(DockerTestEngine.image) into the engine failed: \(load.errors)") }
    }

    /// scripts/docker-engine.sh for this engine: returns once it answers.
    func start() throws {
        let script = DockerTestEngine.repository + "/scripts/docker-engine.sh"
        let started = DockerTestEngine.run([script, "--socket", socket, "--data-root", directory + "/data", "--log", directory + "/dockerd.log",
                                            "--", "--exec-root", directory + "/exec", "--pidfile", pidfile])
        guard started.status == 0 else { throw TestSetupFailure(description: "\(script) failed: \(started.errors.suffix(1500))") }
    }

    /// Sends `signal` to dockerd; after SIGKILL waits until it is gone.
    func signal(_ signal: Int32) {
        guard let pid = self.pid else { return }
        kill(pid, signal)
        if signal == SIGKILL { waitUntil(seconds: 20) { kill(pid, 0) != 0 } }
    }

    /// `docker run -d --rm --network none --name NAME IMAGE COMMAND...` on this engine; the id.
    func run(name: String, _ command: [String]) throws -> String {
        let result = docker(["run", "-d", "--rm", "--network", "none", "--name", name, DockerTestEngine.image] + command)
        let id = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0, id.count == 64 else { throw TestSetupFailure(description: "docker run failed (\(result.status)): \(result.errors)") }
        return id
    }

    @discardableResult
    func docker(_ arguments: [String]) -> DockerTestEngine.CommandResult {
        DockerTestEngine.run(["docker", "-H", "unix://" + socket] + arguments)
    }

    private var pid: Int32? {
        (try? String(contentsOfFile: pidfile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    private func remove() {
        signal(SIGCONT)  // a test that failed while it hung
        let ids = docker(["ps", "-aq"]).output.split(separator: "\n").map(String.init)
        if !ids.isEmpty { docker(["rm", "-f"] + ids) }
        if let pid {
            kill(pid, SIGTERM)
            if !waitUntil(seconds: 20, { kill(pid, 0) != 0 }) { kill(pid, SIGKILL) }
        }
        // Its containerd (a child it started under the exec root) ends with it; its mounts stay.
        let mounts = ((try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { $0.split(separator: " ").dropFirst().first.map(String.init) }
            .filter { $0.hasPrefix(directory + "/") }
        for mount in mounts.reversed() { umount2(mount, Int32(MNT_DETACH)) }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
