import Foundation
import VigilTestSupport
import XCTest

/// Issue 16 §2, the daemon's own faults: its ring full for seconds, the disk full under the file
/// output and the rules directory, the rules directory read-only, SIGKILL in the middle of a
/// rule write. Real daemons, real floods, real tmpfs mounts (root), a real webhook receiver.
final class FaultTests: XCTestCase {
    /// A tmpfs of `sizeKiB` mounted at `path` (made when missing) until `unmount`, which the
    /// test's teardown calls.
    final class Tmpfs {
        let path: String

        init(at path: String, sizeKiB: Int, test: XCTestCase) throws {
            self.path = path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try Self.mount(["-t", "tmpfs", "-o", "size=\(sizeKiB)k,mode=0755", "tmpfs", path])
            test.addTeardownBlock { [self] in unmount() }
        }

        /// Remounts it read-only, or read-write again.
        func remount(readOnly: Bool) throws {
            try Self.mount(["-o", "remount," + (readOnly ? "ro" : "rw"), path])
        }

        /// Fills it: a file of zeroes written until ENOSPC. Its path.
        @discardableResult
        func fill() throws -> String {
            let filler = path + "/filler"
            let dd = try runCapturing("/usr/bin/dd", ["if=/dev/zero", "of=" + filler, "bs=4096"])
            guard dd.stderr.contains("No space left on device") else { throw cannotRun("dd did not fill \(path): \(dd.stderr)") }
            return filler
        }

        func unmount() {
            _ = try? runCapturing("/usr/bin/umount", [path])
        }

        private static func mount(_ arguments: [String]) throws {
            let result = try runCapturing("/usr/bin/mount", arguments)
            guard result.status == 0 else { throw cannotRun("mount \(arguments.joined(separator: " ")) failed (needs root): \(result.stderr)") }
        }
    }

    var tag = ""

    override func setUp() {
        tag = UUID().uuidString.prefix(8).lowercased()
    }

    /// A temporary directory, removed at teardown (after the tmpfs mounts in it are gone).
    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "vigil-fault-\(tag)-\(UUID().uuidString.prefix(4))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// The daemon's status as JSON.
    func status(_ daemon: TestDaemon) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(daemon.request("GET", "/v1/status").body.utf8)) as? [String: Any])
    }

    /// The counters of action `name` in the status (sent, failed, ...; 0 before its first alert).
    func actionCounters(_ daemon: TestDaemon, _ name: String) -> [String: Any] {
        let actions = (((try? status(daemon))?["consumers"] as? [String: Any])?["actions"] as? [String: Any])?["actions"] as? [[String: Any]]
        return actions?.first { $0["name"] as? String == name } ?? [:]
    }

    /// A rule alerting when `/tmp/vigil-fault-ID` is opened, to `actions` (the default ones when nil).
    func markerRule(_ id: String, actions: [String]? = nil) -> String {
        """
        - rule: Fault marker \(id)
          desc: the test's marker file was opened
          condition: evt.type in (open, openat, openat2) and fd.name = /tmp/vigil-fault-\(id)
          output: "fault marker \(id) opened by %proc.name"
          priority: WARNING
        \(actions.map { "  actions: [\($0.joined(separator: ", "))]" } ?? "")
        """
    }

    /// Opens the marker file of `id` (it need not exist: the open is traced either way).
    func touchMarker(_ id: String) throws {
        try runProgram("/bin/sh", ["-c", "cat /tmp/vigil-fault-\(id) 2>/dev/null; true"])
    }

    /// The old rule still runs: opening its marker is alerted on the alert stream.
    func assertAlerts(_ daemon: TestDaemon, rule id: String, _ message: String, line: UInt = #line) throws {
        let alerts = try StreamClient(["alerts", "-o", "json", "--socket", daemon.socket])
        defer { alerts.stop() }
        let alert = alerts.first(triggering: { try touchMarker(id) }) { $0["rule"] as? String == "Fault marker \(id)" }
        XCTAssertNotNil(alert, "\(message): \(daemon.diagnostics)", line: line)
    }

    // MARK: - Ring full

    /// The sensors' lost events, summed.
    func lost(_ daemon: TestDaemon) -> Int {
        (((try? status(daemon))?["sensors"] as? [[String: Any]]) ?? []).reduce(0) { $0 + ($1["lost"] as? Int ?? 0) }
    }

    /// The "Vigil events lost" alerts the webhook received, each with the count it says.
    func lostAlerts(_ output: String) -> [(count: Int, output: String)] {
        AlertSpoolTests.received(output).compactMap { request in
            guard let body = (request["body"] as? String).flatMap({ try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }),
                  body["rule"] as? String == "Vigil events lost", let text = body["output"] as? String,
                  let count = Int(text.prefix { $0.isNumber }) else { return nil }
            return (count, text)
        }
    }

    /// Runs two open floods (a C loop each, on the two CPUs) of a file for `seconds`.
    func flood(_ binary: String, _ target: String, seconds: Int) throws {
        let floods = try (0..<2).map { _ in try launchCapturing(binary, [target, String(seconds)]) }
        for flood in floods {
            flood.process.waitUntilExit()
            XCTAssertEqual(flood.process.terminationStatus, 0, flood.stderr.text())
        }
    }

    /// A daemon with the smallest ring (1 MiB), "Vigil events lost" at most once per
    /// `intervalMs` through the default actions (a webhook writing to `output`), and a rule that
    /// makes the file sensor report every open (`contains` is not pushed down to the kernel)
    /// and matches none.
    func startFloodedDaemon(intervalMs: Int, output: String) throws -> (TestDaemon, AlertSpoolTests.Receiver) {
        let port = try Loopback.freePort()
        let receiver = try AlertSpoolTests.Receiver(port: port, output: output, mode: "ok")
        do {
            let daemon = try TestDaemon(extraConfig: """
            ring_mib: 1
            integrity:
              events_lost_interval_ms: \(intervalMs)
            actions:
              dedup: {window: 0}
              default_actions: [hook]
              named:
                hook: {type: webhook, url: "http://127.0.0.1:\(port)/alerts", timeout: 5}
            """)
            let created = try daemon.createRules("""
            - rule: Never opened \(tag)
              desc: makes the file sensor report every open
              condition: evt.type in (open, openat, openat2) and fd.name contains vigil-never-opened-\(tag)
              output: "never %fd.name"
              priority: NOTICE
            """, name: "flood-\(tag).yaml")
            XCTAssertEqual(created.status, 0, created.stderr)
            XCTAssertEqual(lost(daemon), 0, "nothing lost before the flood")
            return (daemon, receiver)
        } catch {
            receiver.stop()
            throw error
        }
    }

    func testARingFullForSecondsIsAlertedAsEventsLostThroughTheWebhookAtMostOncePerInterval() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let floodBinary = try compileFixture("open-flood")
        let directory = try temporaryDirectory()
        let target = directory + "/flooded", output = directory + "/received.jsonl"
        XCTAssertTrue(FileManager.default.createFile(atPath: target, contents: Data()))
        let intervalMs = 1500
        let (daemon, receiver) = try startFloodedDaemon(intervalMs: intervalMs, output: output)
        defer { receiver.stop() }

        let floodSeconds = 3
        try flood(floodBinary, target, seconds: floodSeconds)
        // Once the flood is over every lost event is alerted (the rest after one interval).
        var first: [(count: Int, output: String)] = []
        var lostAfterFirst = 0
        let settled = waitUntil(seconds: 30) {
            lostAfterFirst = lost(daemon)
            first = lostAlerts(output)
            return lostAfterFirst > 0 && first.reduce(0) { $0 + $1.count } == lostAfterFirst
        }
        XCTAssertTrue(settled, "lost \(lostAfterFirst); alerts \(first.map(\.output)) \(daemon.diagnostics)")
        XCTAssertGreaterThan(lostAfterFirst, 0, "the flood filled the 1 MiB ring")
        XCTAssertFalse(first.isEmpty)
        XCTAssertTrue(first.allSatisfy { $0.count > 0 && $0.output.contains("file: ") }, "each names the sensor and a count: \(first.map(\.output))")
        // Rate-limited: one alert per interval at most (plus the first and the remainder), not one per event.
        XCTAssertLessThanOrEqual(first.count, floodSeconds * 1000 / intervalMs + 2, "\(first.map(\.output))")
        XCTAssertGreaterThan(lostAfterFirst, first.count * 100, "many events per alert")

        // A second flood later: another alert, for the new losses only.
        Thread.sleep(forTimeInterval: Double(intervalMs) / 1000)
        try flood(floodBinary, target, seconds: 2)
        var all: [(count: Int, output: String)] = []
        var lostNow = 0
        let again = waitUntil(seconds: 30) {
            lostNow = lost(daemon)
            all = lostAlerts(output)
            return lostNow > lostAfterFirst && all.reduce(0) { $0 + $1.count } == lostNow
        }
        XCTAssertTrue(again, "lost \(lostAfterFirst) then \(lostNow); alerts \(all.map(\.output)) \(daemon.diagnostics)")
        XCTAssertGreaterThan(all.count, first.count, "the second flood is alerted too")
        XCTAssertEqual(all.dropFirst(first.count).reduce(0) { $0 + $1.count }, lostNow - lostAfterFirst, "the new alerts count the new losses")

        print("FaultTests: lost \(lostAfterFirst), then \(lostNow); alerts: \(all.map(\.output))")
        let integrity = try XCTUnwrap(status(daemon)["integrity"] as? [String: Any])
        XCTAssertEqual((integrity["alerts"] as? [String: Any])?["Vigil events lost"] as? Int, all.count, "counted: \(integrity)")
        XCTAssertEqual(actionCounters(daemon, "hook")["sent"] as? Int, AlertSpoolTests.received(output).count, "each sent through the webhook once")
        XCTAssertTrue(daemon.process.isRunning)
    }

    /// The alert is timely under a flood, not held back to its end: the event thread reads at most
    /// `EventStream.recordsPerWait` records between its housekeeping (where the alert is raised),
    /// so while two open floods keep the reader busy for 10 s, the first "Vigil events lost"
    /// reaches the webhook before they end.
    func testEventsLostIsAlertedWhileTheFloodStillRuns() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let floodBinary = try compileFixture("open-flood")
        let directory = try temporaryDirectory()
        let target = directory + "/flooded", output = directory + "/received.jsonl"
        XCTAssertTrue(FileManager.default.createFile(atPath: target, contents: Data()))
        let (daemon, receiver) = try startFloodedDaemon(intervalMs: 1000, output: output)
        defer { receiver.stop() }

        let floodSeconds = 10
        let floods = try (0..<2).map { _ in try launchCapturing(floodBinary, [target, String(floodSeconds)]) }
        defer { floods.forEach { $0.process.waitUntilExit() } }
        var alerts: [(count: Int, output: String)] = []
        let alerted = waitUntil(seconds: Double(floodSeconds)) {
            alerts = lostAlerts(output)
            return !alerts.isEmpty || !floods.allSatisfy(\.process.isRunning)
        }
        let running = floods.allSatisfy(\.process.isRunning)
        XCTAssertTrue(alerted && !alerts.isEmpty && running,
                      "an alert before the flood's end: alerts \(alerts.map(\.output)), floods running \(running), lost \(lost(daemon)) \(daemon.diagnostics)")
        XCTAssertTrue(daemon.process.isRunning)
    }

    // MARK: - Disk full, read-only

    func testAFullDiskFailsTheFileOutputCountedWhileOtherActionsGoOnAndItWritesAgainOnceThereIsSpace() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let directory = try temporaryDirectory()
        let disk = try Tmpfs(at: directory + "/full", sizeKiB: 256, test: self)
        let path = disk.path + "/alerts.jsonl", otherPath = directory + "/other.jsonl"
        let daemon = try TestDaemon(extraConfig: """
        actions:
          dedup: {window: 0}
          named:
            full: {type: file, path: \(path)}
            other: {type: file, path: \(otherPath)}
        """)
        XCTAssertEqual(try daemon.createRules(markerRule(tag, actions: ["full", "other"]), name: "marker.yaml").status, 0)
        func counter(_ action: String, _ key: String) -> Int { actionCounters(daemon, action)[key] as? Int ?? 0 }
        /// Opens the marker until `action` counted `count` more `key`s.
        func alertUntil(_ action: String, _ key: String, grows count: Int) -> Bool {
            let target = counter(action, key) + count
            return waitUntil(seconds: 30) {
                try? touchMarker(tag)
                return waitUntil(seconds: 0.5) { counter(action, key) >= target }
            }
        }
        XCTAssertTrue(alertUntil("full", "sent", grows: 2), daemon.diagnostics)

        let filler = try disk.fill()
        // The file's last page fills up, then the writes fail: counted, the other action unhurt.
        XCTAssertTrue(alertUntil("full", "failed", grows: 3), daemon.diagnostics)
        let full = actionCounters(daemon, "full")
        XCTAssertTrue((full["last_error"] as? String)?.contains("No space left on device") ?? false, "\(full)")
        XCTAssertTrue(daemon.process.isRunning)
        XCTAssertTrue(waitUntil { counter("other", "sent") == counter("full", "sent") + counter("full", "failed") },
                      "every alert reached the other action: \(actionCounters(daemon, "other")) \(actionCounters(daemon, "full"))")

        try FileManager.default.removeItem(atPath: filler)
        XCTAssertTrue(alertUntil("full", "sent", grows: 2), "the file output writes again: \(daemon.diagnostics)")
        // The file holds whole lines only, one per alert sent (none torn by the short writes).
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        let parsed = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(parsed.count, lines.count, "every line is a whole alert: \(lines.filter { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) == nil }.map { $0.prefix(80) })")
        XCTAssertEqual(lines.count, counter("full", "sent"))
        XCTAssertTrue(parsed.allSatisfy { $0["rule"] as? String == "Fault marker \(tag)" })
    }

    /// A daemon whose rules directory is a 256 KiB tmpfs, running the marker rule of `tag`.
    func daemonWithRulesOnTmpfs() throws -> (TestDaemon, Tmpfs) {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let directory = try temporaryDirectory()
        let rules = try Tmpfs(at: directory + "/rules.d", sizeKiB: 256, test: self)
        let daemon = try TestDaemon(directory: directory)
        XCTAssertEqual(daemon.rulesDirectory, rules.path)
        let created = try daemon.createRules(markerRule(tag), name: "old.yaml")
        XCTAssertEqual(created.status, 0, created.stderr)
        return (daemon, rules)
    }

    /// The files of the rules directory (temporary ones included).
    func files(_ daemon: TestDaemon) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: daemon.rulesDirectory)) ?? []).filter { $0 != "filler" }.sorted()
    }

    func testACreateOnAFullRulesDirectoryFailsWithNoSpaceLeavesNoFileAndTheOldRulesRun() throws {
        let (daemon, rules) = try daemonWithRulesOnTmpfs()
        let filler = try rules.fill()
        let other = "other-\(tag)"
        let refused = try daemon.createRules(markerRule(other), name: "new.yaml")
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("No space left on device") && refused.stderr.contains(daemon.rulesDirectory + "/new.yaml"),
                      "the error names the file and the problem: \(refused.stderr)")
        XCTAssertEqual(files(daemon), ["old.yaml"], "no partial, empty or temporary file left")
        XCTAssertFalse(try daemon.vigil(["ls"]).stdout.contains("Fault marker \(other)"))
        try assertAlerts(daemon, rule: tag, "the old rules keep running")

        try FileManager.default.removeItem(atPath: filler)
        let created = try daemon.createRules(markerRule(other), name: "new.yaml")
        XCTAssertEqual(created.status, 0, "with space again: \(created.stderr)")
        try assertAlerts(daemon, rule: other, "the new rules run")
    }

    func testARulesDirectoryNotWritableRefusesCreateAndRemoveWithAClearErrorAndTheOldRulesRun() throws {
        let (daemon, rules) = try daemonWithRulesOnTmpfs()
        try rules.remount(readOnly: true)
        let refused = try daemon.createRules(markerRule("other-\(tag)"), name: "new.yaml")
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("Read-only file system") && refused.stderr.contains(daemon.rulesDirectory + "/new.yaml"),
                      "the error names the file and the problem: \(refused.stderr)")
        let removal = try daemon.vigil(["rm", "old"])
        XCTAssertNotEqual(removal.status, 0)
        XCTAssertTrue(removal.stderr.contains("Read-only file system") && removal.stderr.contains(daemon.rulesDirectory + "/old.yaml"),
                      removal.stderr)
        XCTAssertEqual(files(daemon), ["old.yaml"])
        XCTAssertTrue(try daemon.vigil(["ls"]).stdout.contains("Fault marker \(tag)"), "still listed")
        try assertAlerts(daemon, rule: tag, "the old rules keep running")
        XCTAssertTrue(daemon.process.isRunning)

        try rules.remount(readOnly: false)
        XCTAssertEqual(try daemon.vigil(["rm", "old"]).status, 0, "writable again")
        XCTAssertEqual(files(daemon), [])
    }

    // MARK: - SIGKILL in a rule write

    /// Rules in `bigRules`.
    static let bigRuleCount = 300

    /// A rules file of 300 KB (`bigRuleCount` rules of 1 KB); `version` is in every rule.
    func bigRules(version: Int) -> String {
        let padding = String(repeating: "p", count: 860)
        return (0..<Self.bigRuleCount).map { index in
            """
            - rule: Big \(tag) \(index)
              desc: version \(version) \(padding)
              condition: evt.type in (open, openat, openat2) and fd.name = /tmp/vigil-big-\(tag)-\(index)
              output: "big \(index) v\(version)"
              priority: NOTICE

            """
        }.joined()
    }

    /// The rules file `big.yaml` as the daemon's directory holds it (nil: none).
    func bigFile(_ daemon: TestDaemon) -> String? {
        try? String(contentsOfFile: daemon.rulesDirectory + "/big.yaml", encoding: .utf8)
    }

    /// Temporary files of a write (`.vigil-*.tmp`, and any other dot file) in the rules directory.
    func temporaries(_ daemon: TestDaemon) -> [String] {
        files(daemon).filter { $0.hasPrefix(".") }
    }

    /// The rules enabled, once the status counts those of `big.yaml` (its snapshot follows the
    /// API by up to 200 ms).
    func enabledRules(_ daemon: TestDaemon) -> Int {
        var enabled = 0
        waitUntil {
            enabled = ((try? status(daemon))?["rules"] as? [String: Any])?["enabled"] as? Int ?? 0
            return enabled >= Self.bigRuleCount
        }
        return enabled
    }

    /// Restarts the killed daemon and checks it runs the rules on disk: `big.yaml` as `expected`.
    func restartAndCheck(_ daemon: TestDaemon, _ expected: String, enabled: Int, _ what: String, line: UInt = #line) throws {
        try daemon.restart()
        XCTAssertEqual(temporaries(daemon), [], "\(what): the start removed the temporary files", line: line)
        XCTAssertEqual(enabledRules(daemon), enabled, "\(what): the restart loads every rule", line: line)
        let stored = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(daemon.request("GET", "/v1/rules/big").body.utf8)) as? [String: Any])
        XCTAssertEqual(stored["content"] as? String, expected, "\(what): the daemon runs the file on disk", line: line)
    }

    func testSIGKILLAtAnyMomentOfARuleWriteLeavesTheOldFileOrTheWholeNewOneAndTheNextStartLoadsIt() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let daemon = try TestDaemon()
        let source = daemon.directory + "/big.yaml"
        var current = bigRules(version: 0)
        try current.write(toFile: source, atomically: true, encoding: .utf8)
        let started = Date()
        let first = try daemon.vigil(["create", source])
        let duration = Date().timeIntervalSince(started)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(bigFile(daemon), current)
        let enabled = enabledRules(daemon)

        // Ten moments spread over the request (each restart takes ~10 s); the one window they may
        // miss, written but not renamed, has its own test below.
        let kills = 10
        var outcomes = (old: 0, new: 0, temporaries: 0)
        for attempt in 1...kills {
            let next = bigRules(version: attempt)
            try next.write(toFile: source, atomically: true, encoding: .utf8)
            // From the request's start to a little after a whole create takes.
            let client = try launchCapturing(TestDaemon.binary, ["create", source, "--socket", daemon.socket])
            Thread.sleep(forTimeInterval: duration * 1.2 * Double(attempt - 1) / Double(kills - 1))
            XCTAssertEqual(daemon.stop(SIGKILL), SIGKILL)
            client.process.waitUntilExit()
            let onDisk = bigFile(daemon)
            XCTAssertTrue(onDisk == current || onDisk == next, "attempt \(attempt): big.yaml is the old or the whole new file (\(onDisk?.utf8.count ?? -1) bytes)")
            if onDisk == next { current = next; outcomes.new += 1 } else { outcomes.old += 1 }
            if !temporaries(daemon).isEmpty { outcomes.temporaries += 1 }
            try restartAndCheck(daemon, current, enabled: enabled, "attempt \(attempt)")
        }
        print("FaultTests: \(kills) kills: \(outcomes.old) left the old file, \(outcomes.new) the new one, \(outcomes.temporaries) a temporary file")
    }

    /// The kill in the one window the loop above may miss: the new file written, not yet renamed
    /// (strace holds the daemon's fsync of it).
    func testSIGKILLBetweenWritingAndRenamingLeavesTheOldFileAndTheNextStartRemovesTheTemporary() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let daemon = try TestDaemon()
        let source = daemon.directory + "/big.yaml"
        let old = bigRules(version: 0), new = bigRules(version: 1)
        try old.write(toFile: source, atomically: true, encoding: .utf8)
        XCTAssertEqual(try daemon.vigil(["create", source]).status, 0)
        let enabled = enabledRules(daemon)
        try new.write(toFile: source, atomically: true, encoding: .utf8)

        // Every fsync of the daemon's threads waits 30 s before it runs.
        let strace = try launchCapturing("/usr/bin/strace", ["-f", "-qq", "-p", "\(daemon.pid)", "-e", "trace=fsync",
                                                            "-e", "inject=fsync:delay_enter=30000000", "-o", "/dev/null"])
        defer { if strace.process.isRunning { strace.process.terminate() } }
        XCTAssertTrue(waitUntil { (try? String(contentsOfFile: "/proc/\(daemon.pid)/status", encoding: .utf8))?.contains("TracerPid:\t\(strace.process.processIdentifier)") ?? false },
                      "strace attached: \(strace.stderr.sofar)")
        let client = try launchCapturing(TestDaemon.binary, ["create", source, "--socket", daemon.socket])
        var temporary: String?
        let written = waitUntil(seconds: 30) {
            temporary = temporaries(daemon).first
            let size = temporary.flatMap { try? FileManager.default.attributesOfItem(atPath: daemon.rulesDirectory + "/" + $0)[.size] as? Int }
            return size == new.utf8.count
        }
        XCTAssertTrue(written, "the new file written to a temporary one: \(files(daemon)) \(daemon.diagnostics)")
        // The kill first; then strace goes, which lets the held thread die at once (the fsync
        // never completes: the daemon is dying).
        kill(daemon.pid, SIGKILL)
        kill(strace.process.processIdentifier, SIGKILL)
        XCTAssertEqual(daemon.stop(SIGKILL), SIGKILL)
        client.process.waitUntilExit()
        strace.process.waitUntilExit()
        XCTAssertEqual(bigFile(daemon), old, "not renamed: the old file")
        XCTAssertEqual(temporaries(daemon), temporary.map { [$0] } ?? [], "the temporary file is left behind")
        try restartAndCheck(daemon, old, enabled: enabled, "after the kill")
    }
}
