import Foundation
import VigilBPF
import VigilTestSupport
import XCTest

/// The daemon as a child process (the built `vigil`, a temporary configuration, socket and rules
/// directory), driven by the CLI and curl, watching real activity of this test.
final class DaemonTests: XCTestCase {
    /// A rule that fires when `/tmp/vigil-marker-ID` is opened.
    static func markerRule(_ id: String, name: String = "Marker opened") -> String {
        """
        - rule: \(name) \(id)
          desc: the test's marker file was opened
          condition: evt.type in (open, openat, openat2) and fd.name = /tmp/vigil-marker-\(id)
          output: "marker \(id) opened by %proc.name (file=%fd.name)"
          priority: WARNING
          tags: [test]
        """
    }

    static let badRule = """
    - rule: broken
      desc: a rule with a syntax error on line 3
      condition: evt.type = execve and and
      output: x
      priority: WARNING
    """

    func startDaemon(_ extra: String = "") throws -> TestDaemon {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        return try TestDaemon(extraConfig: extra)
    }

    func write(_ text: String, _ path: String) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Opens the marker file (it need not exist: the open is traced either way).
    func touchMarker(_ id: String) throws {
        try runProgram("/bin/sh", ["-c", "cat /tmp/vigil-marker-\(id) 2>/dev/null; true"])
    }

    /// Opens the marker until `client` received an object satisfying `match`.
    func awaitObject(_ client: StreamClient, trigger: () throws -> Void, _ match: ([String: Any]) -> Bool) throws -> [String: Any]? {
        client.first(triggering: trigger, where: match)
    }

    func testCreateListStatusAndRemove() throws {
        let daemon = try startDaemon()
        let id = UUID().uuidString.prefix(8).lowercased()
        let file = daemon.directory + "/marker-\(id).yaml"
        try write(Self.markerRule(id), file)

        let created = try daemon.vigil(["create", file])
        XCTAssertEqual(created.status, 0, created.stderr)
        XCTAssertTrue(created.stdout.contains("created marker-\(id): 1 rule"), created.stdout)
        let stored = daemon.rulesDirectory + "/marker-\(id).yaml"
        XCTAssertEqual(try String(contentsOfFile: stored, encoding: .utf8), Self.markerRule(id), "written to the rules directory as sent")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: daemon.rulesDirectory).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], "no temporary file left behind")

        let again = try daemon.vigil(["create", file])
        XCTAssertTrue(again.stdout.contains("replaced marker-\(id)"), again.stdout)

        let list = try daemon.vigil(["ls"])
        XCTAssertEqual(list.status, 0, list.stderr)
        XCTAssertTrue(list.stdout.contains("default") && list.stdout.contains("embedded"), list.stdout)
        XCTAssertTrue(list.stdout.contains("marker-\(id)") && list.stdout.contains(" 1 rule\n  Marker opened \(id)\n"), "a rule per line: \(list.stdout)")

        let status = try daemon.vigil(["status", "--json"])
        XCTAssertEqual(status.status, 0, status.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let sensors = try XCTUnwrap(json["sensors"] as? [[String: Any]])
        // The default rules need syscalls (ptrace, chmod, ...): the syscalls sensor is loaded for them.
        XCTAssertEqual(Set(sensors.compactMap { $0["name"] as? String }), ["process", "file", "syscalls"])
        for sensor in sensors {
            for hook in sensor["hooks"] as? [[String: Any]] ?? [] {
                XCTAssertFalse((hook["active"] as? String ?? "").isEmpty, "\(hook)")
                for attempt in hook["attempts"] as? [[String: Any]] ?? [] where ["skipped", "failed"].contains(attempt["outcome"] as? String) {
                    XCTAssertFalse((attempt["reason"] as? String ?? "").isEmpty, "a variant that did not run says why: \(attempt)")
                }
            }
            XCTAssertGreaterThanOrEqual((sensor["per_cpu"] as? [Any])?.count ?? 0, ProcessInfo.processInfo.activeProcessorCount, "counters per CPU")
        }
        let rules = try XCTUnwrap(json["rules"] as? [String: Any])
        XCTAssertEqual(rules["rule_sets"] as? Int, 2)
        XCTAssertEqual(json["version"] as? String, "0.1.0")
        let text = try daemon.vigil(["status"])
        XCTAssertTrue(text.stdout.contains("sensor file:") && text.stdout.contains("open: "), text.stdout)
        // Syscalls the default rules want that this kernel has no tracepoint for (init_module
        // without module support) are named, not silently missing.
        let syscalls = try XCTUnwrap(sensors.first { $0["name"] as? String == "syscalls" })
        let notCaptured = syscalls["not_captured"] as? [String] ?? []
        func hasTracepoint(_ name: String) -> Bool { FileManager.default.fileExists(atPath: "/sys/kernel/tracing/events/syscalls/sys_enter_\(name)") }
        let perSyscall = (syscalls["hooks"] as? [[String: Any]])?.first?["active"] as? String == "tracepoint"
        XCTAssertEqual(notCaptured.contains("init_module"), perSyscall && !hasTracepoint("init_module"), "\(notCaptured)")
        XCTAssertTrue(notCaptured.allSatisfy { !hasTracepoint($0) }, "\(notCaptured)")
        XCTAssertEqual(text.stdout.contains("not captured (no tracepoint or function on this kernel, which does not implement them): "), !notCaptured.isEmpty, text.stdout)

        let removed = try daemon.vigil(["rm", "marker-\(id)"])
        XCTAssertEqual(removed.status, 0, removed.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stored))
        XCTAssertFalse(try daemon.vigil(["ls"]).stdout.contains("marker-\(id)"))
        let missing = try daemon.vigil(["rm", "marker-\(id)"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("no rule set named 'marker-\(id)'"), missing.stderr)
        XCTAssertEqual(daemon.stop(SIGTERM), 0, daemon.stderr.text())
    }

    func testABadRuleIsRefusedWithItsLocationAndTheOldRulesKeepAlerting() throws {
        let daemon = try startDaemon()
        let id = UUID().uuidString.prefix(8).lowercased()
        let good = daemon.directory + "/good.yaml", bad = daemon.directory + "/bad.yaml"
        try write(Self.markerRule(id), good)
        try write(Self.badRule, bad)
        XCTAssertEqual(try daemon.vigil(["create", good]).status, 0)

        let refused = try daemon.vigil(["create", bad])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("\(bad):3:"), "FILE:LINE:COL of the error: \(refused.stderr)")
        XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
        let raw = try daemon.request("POST", "/v1/rules?name=bad&format=yaml&source=bad.yaml", body: Self.badRule)
        XCTAssertEqual(raw.status, 400)
        let message = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(raw.body.utf8)) as? [String: Any])["message"] as? String
        XCTAssertTrue(message?.hasPrefix("bad.yaml:3:") ?? false, raw.body)
        XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.rulesDirectory + "/bad.yaml"), "nothing written")

        let alerts = try StreamClient(["alerts", "-o", "json", "--socket", daemon.socket])
        let alert = try awaitObject(alerts, trigger: { try touchMarker(id) }) { ($0["rule"] as? String) == "Marker opened \(id)" }
        let found = try XCTUnwrap(alert, "the rule created before the bad one still alerts; client said: \(alerts.stderr)\n\(daemon.diagnostics)")
        XCTAssertEqual(found["priority"] as? String, "WARNING")
        XCTAssertEqual((found["output_fields"] as? [String: Any])?["proc.name"] as? String, "cat")
        XCTAssertTrue(daemon.stdout.sofar.contains("Marker opened \(id): marker \(id) opened by cat"), "alerts also go to standard output")
    }

    /// Issue 12 section 5 through the API: a file with a rule that needs a field Vigil lacks
    /// keeps its other rules, and the answer, `vigil ls`, `vigil status` and the daemon's log
    /// name the skipped rule in one line; a file whose rules are all skipped is refused (400,
    /// one line per rule) and nothing of it is written.
    func testARuleNeedingAFieldVigilLacksIsSkippedAndAFileOfOnlySuchRulesIsRefused() throws {
        let daemon = try startDaemon()
        let id = UUID().uuidString.prefix(8).lowercased()
        let file = daemon.directory + "/mixed-\(id).yaml"
        let typo = "- rule: Typo \(id)\n  desc: d\n  condition: evt.type = execve and proc.nmae = x\n  output: o\n  priority: INFO\n"
        try write(Self.markerRule(id) + "\n" + typo, file)
        let line = "\(file):7:9: rule 'Typo \(id)' skipped: Vigil has no field 'proc.nmae' (\(file):9:36); did you mean"

        let created = try daemon.vigil(["create", file])
        XCTAssertEqual(created.status, 0, created.stderr)
        XCTAssertTrue(created.stdout.contains("created mixed-\(id): 2 rules (Marker opened \(id), Typo \(id)), 1 skipped:\n  \(line)"), created.stdout)
        let listed = try daemon.vigil(["ls"])
        XCTAssertTrue(listed.stdout.contains("(1 skipped)\n  skipped: \(line)"), listed.stdout)
        let status = try daemon.vigil(["status"])
        XCTAssertTrue(status.stdout.contains(", 1 skipped in 2 rule sets") && status.stdout.contains("  skipped: \(line)"), status.stdout)
        XCTAssertTrue(daemon.stderr.sofar.contains("rules: mixed-\(id): \(file):7:9: warning: rule 'Typo \(id)' skipped"), daemon.diagnostics)
        let raw = try daemon.request("GET", "/v1/rules/mixed-\(id)")
        let detail = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(raw.body.utf8)) as? [String: Any], raw.body)
        XCTAssertEqual((detail["skipped"] as? [String])?.count, 1, raw.body)
        XCTAssertTrue((detail["skipped"] as? [String])?.first?.hasPrefix(line) ?? false, raw.body)

        // The rule that loaded runs.
        let alerts = try StreamClient(["alerts", "-o", "json", "--socket", daemon.socket])
        let alert = try awaitObject(alerts, trigger: { try touchMarker(id) }) { ($0["rule"] as? String) == "Marker opened \(id)" }
        XCTAssertNotNil(alert, "the file's loaded rule alerts; client said: \(alerts.stderr)\n\(daemon.diagnostics)")

        let refused = try daemon.request("POST", "/v1/rules?name=only-\(id)&format=yaml&source=only.yaml", body: typo)
        XCTAssertEqual(refused.status, 400, refused.body)
        let message = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(refused.body.utf8)) as? [String: Any])["message"] as? String
        XCTAssertEqual(message?.split(separator: "\n").map(String.init).first,
                       "only.yaml:1:1: nothing of this file would run: every rule of it needs a field Vigil does not have", refused.body)
        XCTAssertTrue(message?.contains("\nonly.yaml:1:9: rule 'Typo \(id)' skipped: Vigil has no field 'proc.nmae' (only.yaml:3:36)") ?? false, refused.body)
        XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.rulesDirectory + "/only-\(id).yaml"), "nothing written")
        XCTAssertEqual(daemon.stop(SIGTERM), 0, daemon.stderr.text())
    }

    /// A rule on lines typed into bash (evt.type bash_readline) loads the shell sensor in the
    /// daemon, alerts with the line, user and terminal when one is typed into an interactive bash
    /// on a pty, and the sensor is released with the rule.
    func testARuleOnTypedShellLinesAlertsAndLoadsTheShellSensorWhileItExists() throws {
        try requireKernel(.attachUprobe)
        let daemon = try startDaemon()
        let id = UUID().uuidString.prefix(8).lowercased()
        let file = daemon.directory + "/shell-\(id).yaml"
        try write("""
            - rule: Typed marker \(id)
              desc: the test's marker typed into an interactive bash
              condition: evt.type = bash_readline and shell.line contains "vigil-typed-\(id)"
              output: "typed %shell.line by %user.name on %proc.ttyname"
              priority: NOTICE
            """, file)
        XCTAssertEqual(try daemon.vigil(["create", file]).status, 0)
        func sensorNames() throws -> Set<String> {
            let status = try daemon.vigil(["status", "--json"])
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
            return Set((json["sensors"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
        }
        let line = "echo vigil-typed-\(id)"
        let alerts = try StreamClient(["alerts", "-o", "json", "--socket", daemon.socket])
        let alert = try awaitObject(alerts, trigger: {
            try PtyTerminal.run("env -i TERM=dumb bash --norc --noprofile -i", typing: [line])
        }) { ($0["rule"] as? String) == "Typed marker \(id)" }
        let found = try XCTUnwrap(alert, "client said: \(alerts.stderr)\n\(daemon.diagnostics)")
        let fields = found["output_fields"] as? [String: Any]
        XCTAssertEqual(fields?["shell.line"] as? String, line)
        XCTAssertEqual(fields?["user.name"] as? String, "root")
        XCTAssertTrue((fields?["proc.ttyname"] as? String)?.hasPrefix("pts") == true, "\(found)")
        XCTAssertTrue(try sensorNames().contains("shell"), "the rule loaded the shell sensor")
        XCTAssertEqual(try daemon.vigil(["rm", "shell-\(id)"]).status, 0)
        XCTAssertTrue(waitUntil(seconds: 20) { (try? sensorNames().contains("shell")) == false }, "released with its rule")
        XCTAssertEqual(daemon.stop(SIGTERM), 0, daemon.stderr.text())
    }

    func testEventAndAlertStreamsDeliverRealActivityThroughTheirFilters() throws {
        let daemon = try startDaemon()
        let id = UUID().uuidString.prefix(8).lowercased()
        let file = daemon.directory + "/marker.yaml"
        try write(Self.markerRule(id), file)
        XCTAssertEqual(try daemon.vigil(["create", file]).status, 0)

        let events = try StreamClient(["events", "-o", "json", "--filter", "proc.name = cat and fd.name contains \(id)", "--socket", daemon.socket])
        let alerts = try StreamClient(["alerts", "-o", "json", "--filter", "proc.name = cat", "--socket", daemon.socket])
        let execs = try StreamClient(["events", "-o", "json", "--filter", "evt.type = execve and proc.args contains \(id)", "--socket", daemon.socket])
        let open = try awaitObject(events, trigger: { try touchMarker(id) }) { ($0["fd.name"] as? String) == "/tmp/vigil-marker-\(id)" }
        XCTAssertEqual(try XCTUnwrap(open, events.stderr)["evt.kind"] as? String, "open")
        XCTAssertTrue(events.objects.allSatisfy { ($0["proc.name"] as? String) == "cat" }, "the filter ran in the daemon")
        let exec = try awaitObject(execs, trigger: { try runProgram("/bin/echo", ["exec-\(id)"]) }) { ($0["proc.args"] as? String) == "exec-\(id)" }
        XCTAssertEqual(try XCTUnwrap(exec, execs.stderr)["proc.name"] as? String, "echo")
        let alert = try awaitObject(alerts, trigger: { try touchMarker(id) }) { ($0["rule"] as? String) == "Marker opened \(id)" }
        XCTAssertNotNil(alert, alerts.stderr)

        let badFilter = try daemon.request("GET", "/v1/events?filter=proc.name%20%3D%20%3D%20x")
        XCTAssertEqual(badFilter.status, 400)
        XCTAssertTrue(badFilter.body.contains("filter:1:"), badFilter.body)
        let cli = try daemon.vigil(["alerts", "--filter", "no.such.field = 1"])
        XCTAssertNotEqual(cli.status, 0)
        XCTAssertTrue(cli.stderr.contains("bad filter: filter:1:1"), cli.stderr)

        // SIGTERM ends the streams cleanly (the clients see the end of the response and exit 0).
        XCTAssertEqual(daemon.stop(SIGTERM), 0, daemon.stderr.text())
        for client in [events, alerts, execs] {
            client.process.waitUntilExit()
            XCTAssertEqual(client.process.terminationStatus, 0, client.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.socket), "the socket is removed on shutdown")
        XCTAssertTrue(daemon.stderr.text().contains("engine stopped"), "the engine drained and stopped")
    }

    func testSIGHUPReloadsTheRulesDirectoryAndABadFileKeepsTheRunningRules() throws {
        let daemon = try startDaemon()
        let id = UUID().uuidString.prefix(8).lowercased()
        try write(Self.markerRule(id, name: "Dropped in"), daemon.rulesDirectory + "/dropped.yaml")
        XCTAssertFalse(try daemon.vigil(["ls"]).stdout.contains("dropped"), "not read before the reload")
        kill(daemon.pid, SIGHUP)
        XCTAssertTrue(try waitUntil { try daemon.vigil(["ls"]).stdout.contains("Dropped in \(id)") }, daemon.stderr.sofar)

        try write(Self.badRule, daemon.rulesDirectory + "/zz-bad.yaml")
        kill(daemon.pid, SIGHUP)
        let logged = waitUntil { daemon.stderr.sofar.contains("zz-bad.yaml:3:") }
        XCTAssertTrue(logged, "the reload error names FILE:LINE:COL: \(daemon.stderr.sofar)")
        XCTAssertTrue(try daemon.vigil(["ls"]).stdout.contains("Dropped in \(id)"), "the running rules stay")
        let alerts = try StreamClient(["alerts", "-o", "json", "--socket", daemon.socket])
        XCTAssertNotNil(try awaitObject(alerts, trigger: { try touchMarker(id) }) { ($0["rule"] as? String) == "Dropped in \(id)" }, "and keep alerting")

        // A bad configuration file is refused the same way.
        let config = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        try write(config + "\nring_mib: 5\n", daemon.configPath)
        kill(daemon.pid, SIGHUP)
        XCTAssertTrue(waitUntil { daemon.stderr.sofar.contains("\(daemon.configPath):") && daemon.stderr.sofar.contains("'ring_mib' must be a power of two") },
                      daemon.stderr.sofar)
        XCTAssertTrue(try daemon.vigil(["ls"]).stdout.contains("Dropped in \(id)"))
        XCTAssertTrue(daemon.process.isRunning)
    }

    func testASlowStreamClientLosesLinesAndNothingElseWaits() throws {
        let daemon = try startDaemon("stream_buffer_kib: 64")
        let id = UUID().uuidString.prefix(8).lowercased()
        let file = daemon.directory + "/slow.yaml"
        try write(Self.markerRule(id, name: "Still"), file)
        XCTAssertEqual(try daemon.vigil(["create", file]).status, 0)
        // A client that reads one byte a second: its socket fills, then its 64 KiB buffer.
        let slow = try launchCapturing("/usr/bin/curl", ["-sN", "--limit-rate", "1", "--unix-socket", daemon.socket, "http://localhost/v1/events"])
        defer {
            kill(slow.process.processIdentifier, SIGTERM)
            slow.process.waitUntilExit()
        }
        var dropped = 0
        let overflowed = try waitUntil {
            try runProgram("/bin/sh", ["-c", "i=0; while [ $i -lt 300 ]; do cat /tmp/vigil-slow-\(id) 2>/dev/null; i=$((i+1)); done"])
            let status = try JSONSerialization.jsonObject(with: Data(daemon.request("GET", "/v1/status").body.utf8)) as? [String: Any]
            let subscribers = (status?["subscribers"] as? [String: Any])?["events"] as? [[String: Any]] ?? []
            dropped = subscribers.compactMap { $0["dropped"] as? Int }.max() ?? 0
            return dropped > 0
        }
        XCTAssertTrue(overflowed, "lines for the slow client are dropped and counted: \(daemon.diagnostics)")
        // The event path did not wait for it: alerts still arrive.
        let alerts = try StreamClient(["alerts", "-o", "json", "--socket", daemon.socket])
        XCTAssertNotNil(try awaitObject(alerts, trigger: { try touchMarker(id) }) { ($0["rule"] as? String) == "Still \(id)" }, daemon.diagnostics)
        let lost = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(daemon.request("GET", "/v1/status").body.utf8)) as? [String: Any])
        XCTAssertGreaterThan((lost["subscribers"] as? [String: Any])?["dropped_lines"] as? Int ?? 0, 0)
    }

    func testAPeerThatIsNeitherRootNorInTheGroupGets403() throws {
        let daemon = try startDaemon()
        var info = stat()
        XCTAssertEqual(stat(daemon.socket, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600, "root only")
        XCTAssertEqual(info.st_uid, 0)
        // The file mode keeps others out; widen it to reach the server's own check (SO_PEERCRED).
        chmod(daemon.socket, 0o666)
        let refused = try daemon.request("GET", "/v1/status", asUser: "nobody")
        XCTAssertEqual(refused.status, 403, refused.body)
        XCTAssertTrue(refused.body.contains("uid 65534"), refused.body)
        XCTAssertEqual(try daemon.request("GET", "/v1/status").status, 200, "root is allowed")
        daemon.stop()

        let grouped = try startDaemon("socket_group: nogroup")
        XCTAssertEqual(stat(grouped.socket, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o660)
        XCTAssertEqual(info.st_gid, getgrnam("nogroup")?.pointee.gr_gid)
        XCTAssertEqual(try grouped.request("GET", "/v1/status", asUser: "nobody").status, 200, "a member of socket_group is allowed")
    }

    /// The ids of the BPF programs and links a process holds (from /proc/PID/fdinfo).
    func bpfObjects(of pid: Int32) -> (programs: Set<Int>, links: Set<Int>) {
        var programs: Set<Int> = [], links: Set<Int> = []
        let directory = "/proc/\(pid)/fdinfo"
        for fd in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            guard let text = try? String(contentsOfFile: directory + "/" + fd, encoding: .utf8) else { continue }
            let fields = Dictionary(text.split(separator: "\n").compactMap { line -> (String, String)? in
                let parts = line.split(separator: ":", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), parts[1].trimmingCharacters(in: .whitespaces)) : nil
            }, uniquingKeysWith: { a, _ in a })
            if let link = fields["link_id"].flatMap(Int.init) { links.insert(link) }
            else if let program = fields["prog_id"].flatMap(Int.init) { programs.insert(program) }
        }
        return (programs, links)
    }

    /// The ids `bpftool KIND show` lists now.
    func loadedIDs(_ kind: String) throws -> Set<Int> {
        let result = try runCapturing("/usr/sbin/bpftool", ["-j", kind, "show"])
        let list = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? []
        return Set(list.compactMap { $0["id"] as? Int })
    }

    func testAKilledDaemonLeavesNoProgramsAttachedAndARestartKeepsItsRules() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/bpftool") else { throw cannotRun("needs bpftool (apt-get install bpftool)") }
        let daemon = try startDaemon()
        let id = UUID().uuidString.prefix(8).lowercased()
        let file = daemon.directory + "/kept.yaml"
        try write(Self.markerRule(id, name: "Kept"), file)
        XCTAssertEqual(try daemon.vigil(["create", file]).status, 0)

        let held = bpfObjects(of: daemon.pid)
        XCTAssertFalse(held.programs.isEmpty, "the daemon holds its programs")
        XCTAssertFalse(held.links.isEmpty, "and their links")
        XCTAssertTrue(held.programs.isSubset(of: try loadedIDs("prog")))
        XCTAssertEqual(daemon.stop(SIGKILL), SIGKILL)
        // The kernel frees a program once its last fd and link are gone (after an RCU grace period).
        let gone = try waitUntil { try loadedIDs("prog").isDisjoint(with: held.programs) && loadedIDs("link").isDisjoint(with: held.links) }
        let still = try loadedIDs("prog").intersection(held.programs)
        XCTAssertTrue(gone, "programs \(still) of the dead daemon are still loaded")

        XCTAssertTrue(FileManager.default.fileExists(atPath: daemon.socket), "SIGKILL leaves the socket file")
        try daemon.restart()
        XCTAssertTrue(try daemon.vigil(["ls"]).stdout.contains("Kept \(id)"), "the rules survive the restart")
        let alerts = try StreamClient(["alerts", "-o", "json", "--socket", daemon.socket])
        XCTAssertNotNil(try awaitObject(alerts, trigger: { try touchMarker(id) }) { ($0["rule"] as? String) == "Kept \(id)" })
        XCTAssertEqual(daemon.stop(SIGINT), 0)
    }

    func testASecondDaemonOnTheSameSocketRefusesToStart() throws {
        let daemon = try startDaemon()
        let second = try runCapturing(TestDaemon.binary, ["daemon", "--config", daemon.configPath])
        XCTAssertEqual(second.status, 1)
        XCTAssertTrue(second.stderr.contains("another vigil daemon is listening on \(daemon.socket)"), second.stderr)
        XCTAssertEqual(try daemon.request("GET", "/v1/status").status, 200, "the first one is untouched")
    }

    func testARulesActionsRunAndAnUnknownActionIsRefused() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sink = directory + "/alerts.jsonl"
        let daemon = try startDaemon("""
        actions:
          dedup: {window: 0}
          named:
            audit-file: {type: file, path: "\(sink)"}
        """)
        let id = UUID().uuidString.prefix(8).lowercased()
        let rule = Self.markerRule(id, name: "Filed") + "\n  actions: [audit-file]\n"
        let file = daemon.directory + "/filed.yaml"
        try write(rule, file)
        let created = try daemon.vigil(["create", file])
        XCTAssertEqual(created.status, 0, created.stderr)
        var lines: [[String: Any]] = []
        let delivered = try waitUntil {
            try touchMarker(id)
            lines = ((try? String(contentsOfFile: sink, encoding: .utf8)) ?? "").split(separator: "\n")
                .compactMap { try? VigilJSON.value($0) as? [String: Any] }
            return lines.contains { ($0["rule"] as? String) == "Filed \(id)" }
        }
        XCTAssertTrue(delivered, "the file action got the alert: \(daemon.diagnostics)")
        let alert = try XCTUnwrap(lines.first { ($0["rule"] as? String) == "Filed \(id)" })
        XCTAssertEqual((alert["output_fields"] as? [String: Any])?["fd.name"] as? String, "/tmp/vigil-marker-\(id)")
        XCTAssertFalse(daemon.stdout.sofar.contains("Filed \(id)"), "a rule with actions does not get default_actions")

        let status = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(daemon.request("GET", "/v1/status").body.utf8)) as? [String: Any])
        let actions = try XCTUnwrap((status["consumers"] as? [String: Any])?["actions"] as? [String: Any], "status shows the actions")
        let audit = (actions["actions"] as? [[String: Any]])?.first { ($0["name"] as? String) == "audit-file" }
        XCTAssertGreaterThan(audit?["sent"] as? Int ?? 0, 0, "\(actions)")

        let unknown = daemon.directory + "/unknown.yaml"
        try write(Self.markerRule(id, name: "Nowhere") + "\n  actions: [nosuch]\n", unknown)
        let refused = try daemon.vigil(["create", unknown])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("\(unknown):1:") && refused.stderr.contains("rule 'Nowhere \(id)': unknown action 'nosuch'"), refused.stderr)
    }

    func testAKillInTheKernelShowsInTheStatusAndTheMetrics() throws {
        let port = 20_000 + Int((getpid() + 7) % 20_000)
        let daemon = try startDaemon("metrics:\n  enabled: true\n  port: \(port)")
        let id = UUID().uuidString.prefix(8).lowercased()
        let honeypot = "/tmp/vigil-honeypot-\(id)"
        try write("bait", honeypot)
        defer { try? FileManager.default.removeItem(atPath: honeypot) }
        let file = daemon.directory + "/honeypot.yaml"
        try write("""
        - rule: Honeypot \(id)
          desc: a read of the honeypot kills the reader in the kernel
          condition: evt.type in (open, openat, openat2) and fd.name = \(honeypot) and evt.is_open_read = true
          output: "honeypot read by %proc.name"
          priority: CRITICAL
          actions: [kernel_kill]
        """, file)
        let created = try daemon.vigil(["create", file])
        XCTAssertEqual(created.status, 0, created.stderr)
        var killed = 0
        let seen = try waitUntil {
            _ = try? runProgram("/bin/cat", [honeypot])
            let status = try JSONSerialization.jsonObject(with: Data(daemon.request("GET", "/v1/status").body.utf8)) as? [String: Any]
            let file = (status?["sensors"] as? [[String: Any]])?.first { ($0["name"] as? String) == "file" }
            killed = file?["killed"] as? Int ?? 0
            return killed > 0
        }
        XCTAssertTrue(seen, "the status shows the file sensor's kills: \(daemon.diagnostics)")
        let text = try daemon.vigil(["status"])
        XCTAssertTrue(text.stdout.contains("killed in kernel"), text.stdout)
        let metrics = try runCapturing("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(port)/metrics"]).stdout
        XCTAssertTrue(metrics.contains("vigil_sensor_killed_total{sensor=\"file\""), metrics)
    }

    func testMetricsAndHealth() throws {
        let port = 20_000 + Int(getpid() % 20_000)
        let daemon = try startDaemon("metrics:\n  enabled: true\n  port: \(port)")
        let id = UUID().uuidString.prefix(8).lowercased()
        let file = daemon.directory + "/m.yaml"
        try write(Self.markerRule(id, name: "Metric"), file)
        XCTAssertEqual(try daemon.vigil(["create", file]).status, 0)
        var text = ""
        let counted = try waitUntil {
            try touchMarker(id)
            text = try runCapturing("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(port)/metrics"]).stdout
            return text.contains("vigil_alerts_total{rule=\"Metric \(id)\",priority=\"WARNING\"}")
        }
        XCTAssertTrue(counted, text)
        for family in ["vigil_sensor_events_total{sensor=\"file\",cpu=\"0\"}", "vigil_sensor_filtered_total", "vigil_sensor_lost_total",
                       "vigil_rule_evaluation_seconds_bucket{le=\"+Inf\"}", "vigil_rule_evaluation_seconds_count", "# TYPE vigil_alerts_total counter",
                       "vigil_api_refused_total{reason=\"timeout\"} 0", "vigil_api_connections ", "vigil_api_subscribers 0",
                       "vigil_heartbeats_total{result=\"sent\"}", "vigil_tamper_alerts_total{rule=\"Vigil filter changed\"} 0"] {
            XCTAssertTrue(text.contains(family), "\(family) in\n\(text)")
        }
        XCTAssertEqual(try runCapturing("/usr/bin/curl", ["-sS", "http://127.0.0.1:\(port)/healthz"]).stdout, "ok\n")
    }
}

/// The CLI without a daemon.
final class DaemonCLITests: XCTestCase {
    func testTheCLISaysInOneLineThatTheDaemonIsNotRunningAndHowToStartIt() throws {
        for command in [["status"], ["ls"], ["events"], ["rm", "x"]] {
            let result = try runCapturing(TestDaemon.binary, command + ["--socket", "/nonexistent/vigil.sock"])
            XCTAssertNotEqual(result.status, 0)
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains("not running") && result.stderr.contains("sudo vigil daemon")
                          && result.stderr.contains("systemctl start vigil"), result.stderr)
        }
    }

    func testABadConfigurationIsRefusedWithItsLocation() throws {
        let path = NSTemporaryDirectory() + "vigil-config-\(UUID().uuidString.prefix(8)).yaml"
        try "socket: /tmp/x.sock\nring_mib: 3\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try runCapturing(TestDaemon.binary, ["daemon", "--config", path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("\(path):2:11: 'ring_mib' must be a power of two"), result.stderr)
    }
}
