import Foundation
import VigilTestSupport
import XCTest

/// Tamper evidence against a real daemon: another root process writing its filter maps, its
/// heartbeat through the sensors, and systemd's notification socket played by a real unix
/// datagram socket.
final class TamperTests: XCTestCase {
    func startDaemon(_ extra: String = "") throws -> TestDaemon {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        return try TestDaemon(extraConfig: extra)
    }

    /// The kernel id of the daemon's map `name`: of the maps whose fds the daemon holds
    /// (/proc/PID/fdinfo), the one bpftool names so (other daemons may run on this host).
    func mapID(_ name: String, of pid: Int32) throws -> Int {
        let fdinfo = "/proc/\(pid)/fdinfo"
        var ids = Set<Int>()
        for fd in try FileManager.default.contentsOfDirectory(atPath: fdinfo) {
            guard let text = try? String(contentsOfFile: "\(fdinfo)/\(fd)", encoding: .utf8) else { continue }
            for line in text.split(separator: "\n") where line.hasPrefix("map_id:") {
                if let id = Int(line.dropFirst("map_id:".count).trimmingCharacters(in: .whitespaces)) { ids.insert(id) }
            }
        }
        let shown = try runCapturing("/usr/sbin/bpftool", ["map", "show", "-j"])
        let maps = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [[String: Any]], shown.stderr)
        let matches = maps.compactMap { map -> Int? in
            guard (map["name"] as? String) == name, let id = map["id"] as? Int, ids.contains(id) else { return nil }
            return id
        }
        XCTAssertEqual(matches.count, 1, "exactly one map \(name) held by pid \(pid): \(matches)")
        return try XCTUnwrap(matches.first, "no map \(name) among the daemon's maps \(ids.sorted())")
    }

    func status(_ daemon: TestDaemon) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(daemon.request("GET", "/v1/status").body.utf8)) as? [String: Any])
    }

    /// Waits until the daemon's integrity check ran once: the engine runs (its rules applied, the
    /// baseline taken after Vigil's own writes), so what a test changes next is a change. (The
    /// API answers while the sensors load, seconds on a loaded host: a map written then would be
    /// part of the baseline.)
    func waitUntilChecked(_ daemon: TestDaemon) {
        XCTAssertTrue(waitUntil { ((try? status(daemon))?["integrity"] as? [String: Any])?["checks"] as? Int ?? 0 >= 1 },
                      "the integrity check runs: \(daemon.diagnostics)")
    }

    func testACommandAddedToTheCommExclusionMapByBpftoolIsAlertedWithinTwoSeconds() throws {
        let daemon = try startDaemon()
        let alerts = try StreamClient(["alerts", "-o", "json", "--socket", daemon.socket])
        // The stream is open once the status counts its subscriber.
        XCTAssertTrue(waitUntil { ((try? status(daemon))?["subscribers"] as? [String: Any]).flatMap { $0["alerts"] as? [Any] }.map { !$0.isEmpty } ?? false })
        waitUntilChecked(daemon)
        let id = try mapID("comm_exclude", of: daemon.pid)
        // "cat", NUL padded to the 16-byte comm key; the value 1 (what Sensors writes).
        let key = ["0x63", "0x61", "0x74"] + Array(repeating: "0", count: 13)
        let update = try runCapturing("/usr/sbin/bpftool", ["map", "update", "id", "\(id)", "key"] + key + ["value", "1"])
        XCTAssertEqual(update.status, 0, update.stderr)
        var alert: [String: Any]?
        let seen = waitUntil(seconds: 2) {
            alert = alerts.objects.first { ($0["rule"] as? String) == "Vigil filter changed" }
            return alert != nil
        }
        XCTAssertTrue(seen, "a 'Vigil filter changed' alert within 2 s of the update: \(alerts.objects) \(daemon.diagnostics)")
        let found = try XCTUnwrap(alert)
        XCTAssertEqual(found["priority"] as? String, "CRITICAL")
        let output = try XCTUnwrap(found["output"] as? String)
        XCTAssertTrue(output.contains("comm_exclude") && output.contains("added \"cat\""), output)
        let integrity = try XCTUnwrap(status(daemon)["integrity"] as? [String: Any])
        XCTAssertEqual((integrity["alerts"] as? [String: Any])?["Vigil filter changed"] as? Int, 1, "\(integrity)")
        let text = try daemon.vigil(["status"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("TAMPERED: comm_exclude: added \"cat\""), text.stdout)
    }

    /// The check runs on a timer of its own, not behind the ring reader: while two processes open
    /// a file a rule wants as fast as they can (the reader never finds the ring empty, so the
    /// event thread stays in one drain and never reaches its housekeeping), a command added to the
    /// comm exclusion map is still alerted within 2 s, through the default actions (a file here).
    func testAFilterChangeIsAlertedWithinTwoSecondsWhileTheReaderIsFlooded() throws {
        let flood = try compileFixture("open-flood")
        let directory = NSTemporaryDirectory() + "vigil-flood-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let target = directory + "/flooded", tamperLog = directory + "/tamper.jsonl", floodLog = directory + "/flood.jsonl"
        XCTAssertTrue(FileManager.default.createFile(atPath: target, contents: Data()))
        // Tamper alerts go to the default actions; the flood's alerts to a file of their own,
        // deduplicated (one line per 10 s window), so the flood costs the reader, not the disk.
        let daemon = try startDaemon("""
            actions:
              default_actions: [tamper]
              named:
                tamper: {type: file, path: \(tamperLog)}
                quiet: {type: file, path: \(floodLog)}
            """)
        let rule = directory + "/flood.yaml"
        try """
            - rule: Flooded file opened
              desc: TamperTests
              condition: evt.type in (open, openat, openat2) and fd.name = \(target)
              output: "flooded file opened"
              priority: NOTICE
              actions: [quiet]
            """.write(toFile: rule, atomically: true, encoding: .utf8)
        let created = try daemon.vigil(["create", rule])
        XCTAssertEqual(created.status, 0, created.stderr)
        let floods = try (0..<2).map { _ in try launchCapturing(flood, [target, "60"]) }
        defer { for flood in floods where flood.process.isRunning { flood.process.terminate(); flood.process.waitUntilExit() } }
        // The rule alerts on the flood: its events reach the rules.
        XCTAssertTrue(waitUntil { (try? String(contentsOfFile: floodLog, encoding: .utf8))?.contains("Flooded file opened") ?? false },
                      "the flood's opens reach the rules: \(daemon.diagnostics)")
        waitUntilChecked(daemon)
        let id = try mapID("comm_exclude", of: daemon.pid)
        let key = ["0x63", "0x61", "0x74"] + Array(repeating: "0", count: 13)
        let update = try runCapturing("/usr/sbin/bpftool", ["map", "update", "id", "\(id)", "key"] + key + ["value", "1"])
        XCTAssertEqual(update.status, 0, update.stderr)
        var line: String?
        let seen = waitUntil(seconds: 2) {
            line = ((try? String(contentsOfFile: tamperLog, encoding: .utf8)) ?? "").split(separator: "\n")
                .first { $0.contains("\"Vigil filter changed\"") }.map(String.init)
            return line != nil
        }
        XCTAssertTrue(floods.allSatisfy(\.process.isRunning), "the flood ran throughout")
        XCTAssertTrue(seen, "a 'Vigil filter changed' alert within 2 s of the update while the reader is flooded: "
                      + "\((try? String(contentsOfFile: tamperLog, encoding: .utf8)) ?? "no tamper alert") \(daemon.diagnostics)")
        XCTAssertTrue(line?.contains("added \\\"cat\\\"") ?? false, line ?? "")
    }

    /// `bpftool link detach` is refused for the links of this host (raw_tracepoint, perf_event:
    /// EOPNOTSUPP), so another root process detaches one the other way: gdb attaches to the
    /// daemon and closes the link's fd in it; the kernel releases the link.
    func testALinkClosedInTheDaemonByAnotherRootProcessIsAlertedWithinTwoSeconds() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/gdb") else {
            throw cannotRun("needs gdb (Debian package gdb; scripts/setup.sh --test installs it) to close a link fd inside the daemon")
        }
        let daemon = try startDaemon()
        let alerts = try StreamClient(["alerts", "-o", "json", "--socket", daemon.socket])
        XCTAssertTrue(waitUntil { ((try? status(daemon))?["subscribers"] as? [String: Any]).flatMap { $0["alerts"] as? [Any] }.map { !$0.isEmpty } ?? false })
        // The fd of one of the daemon's links, and that link's id.
        let fdinfo = "/proc/\(daemon.pid)/fdinfo"
        var link: (fd: String, id: String)?
        for fd in try FileManager.default.contentsOfDirectory(atPath: fdinfo).sorted() where link == nil {
            let text = (try? String(contentsOfFile: "\(fdinfo)/\(fd)", encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("link_id:") }) {
                link = (fd, line.dropFirst("link_id:".count).trimmingCharacters(in: .whitespaces))
            }
        }
        let (fd, id) = try XCTUnwrap(link, "the daemon holds no link fd")
        waitUntilChecked(daemon)
        let detach = try runCapturing("/usr/sbin/bpftool", ["link", "detach", "id", id])
        XCTAssertNotEqual(detach.status, 0, "bpftool link detach is refused for these link types on this kernel")
        let gdb = try runCapturing("/usr/bin/gdb", ["-p", "\(daemon.pid)", "-batch", "-ex", "call (int)close(\(fd))"])
        XCTAssertTrue(gdb.stdout.contains("= 0"), gdb.stdout + gdb.stderr)
        var alert: [String: Any]?
        let seen = waitUntil(seconds: 2) {
            alert = alerts.objects.first { ($0["rule"] as? String) == "Vigil program detached" }
            return alert != nil
        }
        XCTAssertTrue(seen, "a 'Vigil program detached' alert within 2 s of the close: \(alerts.objects) \(daemon.diagnostics)")
        XCTAssertEqual(alert?["priority"] as? String, "CRITICAL")
        XCTAssertTrue((alert?["output"] as? String)?.contains("link \(id)") ?? false, "\(String(describing: alert))")
    }

    /// Every link closed inside the daemon (gdb, as above): the heartbeat child's exec and exit
    /// no longer come back, and "Vigil sensor silent" follows within the bound.
    func testASensorWithEveryLinkGoneIsSilent() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/gdb") else {
            throw cannotRun("needs gdb (Debian package gdb; scripts/setup.sh --test installs it) to close the link fds inside the daemon")
        }
        let daemon = try startDaemon("integrity:\n  heartbeat_interval_ms: 200\n  heartbeat_bound_ms: 1000")
        let alerts = try StreamClient(["alerts", "-o", "json", "--socket", daemon.socket])
        XCTAssertTrue(waitUntil { ((try? status(daemon))?["integrity"] as? [String: Any])?["heartbeats_returned"] as? Int ?? 0 > 0 },
                      "the heartbeat works before: \(daemon.diagnostics)")
        let fdinfo = "/proc/\(daemon.pid)/fdinfo"
        let linkFDs = try FileManager.default.contentsOfDirectory(atPath: fdinfo).filter { fd in
            ((try? String(contentsOfFile: "\(fdinfo)/\(fd)", encoding: .utf8)) ?? "").contains("link_id:")
        }
        XCTAssertFalse(linkFDs.isEmpty)
        let gdb = try runCapturing("/usr/bin/gdb", ["-p", "\(daemon.pid)", "-batch"] + linkFDs.flatMap { ["-ex", "call (int)close(\($0))"] })
        XCTAssertEqual(gdb.stdout.components(separatedBy: "= 0").count - 1, linkFDs.count, gdb.stdout + gdb.stderr)
        var alert: [String: Any]?
        // The bound (1 s) plus one heartbeat interval, and a second of slack for a loaded host.
        let seen = waitUntil(seconds: 2.2) {
            alert = alerts.objects.first { ($0["rule"] as? String) == "Vigil sensor silent" }
            return alert != nil
        }
        XCTAssertTrue(seen, "'Vigil sensor silent' once nothing reports: \(alerts.objects.compactMap { $0["rule"] }) \(daemon.diagnostics)")
        XCTAssertEqual(alert?["priority"] as? String, "CRITICAL")
    }

    func testTheHeartbeatComesBackThroughTheSensors() throws {
        let daemon = try startDaemon("integrity:\n  heartbeat_interval_ms: 200\n  heartbeat_bound_ms: 2000")
        var integrity: [String: Any] = [:]
        let returned = try waitUntil {
            integrity = try status(daemon)["integrity"] as? [String: Any] ?? [:]
            return (integrity["heartbeats_returned"] as? Int ?? 0) >= 3
        }
        XCTAssertTrue(returned, "\(integrity) \(daemon.diagnostics)")
        XCTAssertEqual(integrity["heartbeats_silent"] as? Int, 0, "\(integrity)")
        XCTAssertEqual(integrity["current"] as? [String], [], "nothing tampered with")
    }

    func testTheDaemonTellsARealNotifySocketReadyAndPingsTheWatchdog() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let directory = NSTemporaryDirectory() + "vigil-notify-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let notifyPath = directory + "/notify.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(notifyPath.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0, String(cString: strerror(errno)))
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        let layout = TestDaemon.Layout.defaults(under: directory)
        try FileManager.default.createDirectory(atPath: directory + "/etc/vigil", withIntermediateDirectories: true)
        try "socket: \(layout.socket)\nrules_dir: \(layout.rulesDirectory)\n".write(toFile: layout.configPath, atomically: true, encoding: .utf8)
        let daemon = try TestDaemon(command: ["/usr/bin/env", "NOTIFY_SOCKET=\(notifyPath)", "WATCHDOG_USEC=400000",
                                              TestDaemon.binary, "daemon", "--config", layout.configPath], directory: directory) { _ in layout }
        var messages: [String] = []
        waitUntil(seconds: 20) {
            var buffer = [UInt8](repeating: 0, count: 512)
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 { messages.append(String(decoding: buffer.prefix(n), as: UTF8.self)) }
            return messages.contains { $0.hasPrefix("READY=1") } && messages.filter { $0 == "WATCHDOG=1" }.count >= 3
        }
        XCTAssertTrue(messages.contains("READY=1\nMAINPID=\(daemon.pid)"), "\(messages)")
        XCTAssertGreaterThanOrEqual(messages.filter { $0 == "WATCHDOG=1" }.count, 3, "\(messages)")
        XCTAssertEqual(daemon.stop(SIGTERM), 0)
        var buffer = [UInt8](repeating: 0, count: 512)
        var stopping = false
        while !stopping {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { break }
            stopping = String(decoding: buffer.prefix(n), as: UTF8.self) == "STOPPING=1"
        }
        XCTAssertTrue(stopping, "STOPPING=1 at shutdown")
    }
}
