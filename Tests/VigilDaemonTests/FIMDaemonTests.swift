import Foundation
import VigilFIM
import VigilTestSupport
import XCTest

/// File integrity monitoring in a real daemon: `fim:` in its configuration, the fim sensor in
/// this kernel, the baseline under its state_dir, and the alerts of rules on `fim` events (the
/// default rules' and a user's, outputs filled from fim.* fields) on its standard output.
final class FIMDaemonTests: XCTestCase {
    /// The daemon's alert lines (stdout action, text) naming `rule`.
    private func alerts(_ daemon: TestDaemon, _ rule: String) -> [String] {
        daemon.stdout.sofar.split(separator: "\n").map(String.init).filter { $0.contains(" \(rule): ") }
    }

    func testALiveChangeAndAChangeMadeWhileDownAreAlertedWithTheirMeaning() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        let dir = try temporaryDirectory()
        let sudoers = dir + "/sudoers", keys = dir + "/ssh/authorized_keys"
        try FileManager.default.createDirectory(atPath: dir + "/ssh", withIntermediateDirectories: true)
        try Data("root ALL=(ALL) ALL\n".utf8).write(to: URL(fileURLWithPath: sudoers))
        try Data("root ALL=(ALL) ALL\n".utf8).write(to: URL(fileURLWithPath: dir + "/untouched"))
        // a user's rule on fim.* fields, beside the default rules
        let home = try temporaryDirectory()
        try FileManager.default.createDirectory(atPath: home + "/rules.d", withIntermediateDirectories: true)
        try """
        - rule: Sudo rule added here
          desc: a rule added to the test's sudoers
          condition: fim.change = modified and fim.path = '\(sudoers)' and fim.sudo_rules_added exists
          output: "added %fim.sudo_rules_added to %fim.path (profile %fim.profile) by %proc.name uid %user.uid, while down %fim.while_down, sha256 %fim.sha256"
          priority: ERROR
        """.write(toFile: home + "/rules.d/user.yaml", atomically: true, encoding: .utf8)
        let daemon = try TestDaemon(extraConfig: """
        fim:
          paths: ["\(sudoers)", "\(dir)/untouched"]
          directories: ["\(dir)/ssh"]
        """, directory: home)
        XCTAssertTrue(daemon.stderr.sofar.contains("a first start"), daemon.diagnostics)
        XCTAssertTrue(alerts(daemon, "sudoers changed").isEmpty, "no alert at a first start: \(daemon.stdout.sofar)")

        // the fim sensor in the status: its variant and what it dropped in the kernel
        XCTAssertTrue(waitUntil(seconds: 5) {
            let status = try? JSONSerialization.jsonObject(with: Data(daemon.request("GET", "/v1/status").body.utf8)) as? [String: Any]
            let fim = (status?["sensors"] as? [[String: Any]])?.first { $0["name"] as? String == "fim" }
            let hooks = fim?["hooks"] as? [[String: Any]]
            return hooks?.first?["active"] as? String == "tracepoint" && (fim?["filtered"] as? Int ?? 0) > 0
        }, daemon.diagnostics)

        // live: a rule appended by a shell (a write through the watched inode)
        let append = try runCapturing("/bin/sh", ["-c", "echo 'eve ALL=(ALL) NOPASSWD: ALL' >> \"$1\"", "sh", sudoers])
        XCTAssertEqual(append.status, 0, append.stderr)
        XCTAssertTrue(waitUntil(seconds: 5) { !alerts(daemon, "sudoers changed").isEmpty }, daemon.diagnostics + daemon.stdout.sofar)
        let live = try XCTUnwrap(alerts(daemon, "sudoers changed").first)
        XCTAssertTrue(live.contains("WARNING sudoers changed: sudoers changed (file=\(sudoers) change=modified rules_added=(eve ALL=(ALL) NOPASSWD: ALL) rules_removed=<NA> process=sh pid="), live)
        XCTAssertTrue(live.contains(" while_down=false): \(sudoers) modified: sudo rule added: eve ALL=(ALL) NOPASSWD: ALL; sha256 "), live)
        let sha = SHA256.hex(try XCTUnwrap(FileManager.default.contents(atPath: sudoers)))
        XCTAssertTrue(waitUntil(seconds: 5) { !alerts(daemon, "Sudo rule added here").isEmpty }, daemon.diagnostics + daemon.stdout.sofar)
        XCTAssertEqual(alerts(daemon, "Sudo rule added here").first?.split(separator: " ", maxSplits: 1).last.map(String.init),
                       "ERROR Sudo rule added here: added (eve ALL=(ALL) NOPASSWD: ALL) to \(sudoers) (profile \(sudoers)) by sh uid \(getuid()), while down false, sha256 \(sha)")

        // down: a key is added with the real ssh-keygen, sed -i rewrites sudoers
        XCTAssertEqual(daemon.stop(), 0)
        let keygen = try runCapturing("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "mallory@evil", "-f", dir + "/key"])
        XCTAssertEqual(keygen.status, 0, keygen.stderr)
        try FileManager.default.copyItem(atPath: dir + "/key.pub", toPath: keys)
        let sed = try runCapturing("/bin/sed", ["-i", "s/^root .*/root ALL=(ALL:ALL) ALL/", sudoers])
        XCTAssertEqual(sed.status, 0, sed.stderr)
        let fingerprint = try runCapturing("/usr/bin/ssh-keygen", ["-lf", keys]).stdout.split(separator: " ")[1]
        try daemon.restart()
        XCTAssertTrue(waitUntil(seconds: 5) { !alerts(daemon, "SSH authorized_keys changed").isEmpty }, daemon.diagnostics + daemon.stdout.sofar)
        let key = try XCTUnwrap(alerts(daemon, "SSH authorized_keys changed").first)
        XCTAssertTrue(key.contains("keys_added=(ssh-ed25519 \(fingerprint) mallory@evil) keys_removed=<NA> process=vigil "), key)
        XCTAssertTrue(key.contains("while_down=true): \(keys) created: SSH key added: ssh-ed25519 \(fingerprint) mallory@evil"), key)
        let rule = try XCTUnwrap(alerts(daemon, "sudoers changed").first)
        XCTAssertTrue(rule.contains("while_down=true): \(sudoers) modified: sudo rule added: root ALL=(ALL:ALL) ALL; sudo rule removed: root ALL=(ALL) ALL"), rule)
        XCTAssertTrue(waitUntil(seconds: 5) { alerts(daemon, "Sudo rule added here").contains { $0.contains("added (root ALL=(ALL:ALL) ALL) to \(sudoers) (profile \(sudoers)) by vigil uid \(getuid()), while down true") } },
                      daemon.diagnostics + daemon.stdout.sofar)
        XCTAssertFalse(daemon.stdout.sofar.contains("/untouched"), "an unchanged file is not alerted: \(daemon.stdout.sofar)")

        // live sed -i (a new file renamed over the watched name), then an append to the new inode
        let liveSed = try runCapturing("/bin/sed", ["-i", "s/^eve .*/eve ALL=(ALL) ALL/", sudoers])
        XCTAssertEqual(liveSed.status, 0, liveSed.stderr)
        XCTAssertTrue(waitUntil(seconds: 5) { alerts(daemon, "sudoers changed").contains { $0.contains("sudo rule added: eve ALL=(ALL) ALL") } },
                      daemon.diagnostics + daemon.stdout.sofar)
        let again = try runCapturing("/bin/sh", ["-c", "echo 'bob ALL=(ALL) ALL' >> \"$1\"", "sh", sudoers])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(waitUntil(seconds: 5) { alerts(daemon, "sudoers changed").contains { $0.contains("sudo rule added: bob ALL=(ALL) ALL") } },
                      daemon.diagnostics + daemon.stdout.sofar)

        // a path the kernel leaves to userspace (".."): folded there, the watch re-read
        let chmod = try runCapturing("/bin/chmod", ["600", dir + "/ssh/../untouched"])
        XCTAssertEqual(chmod.status, 0, chmod.stderr)
        XCTAssertTrue(waitUntil(seconds: 5) { alerts(daemon, "Watched file changed").contains { $0.contains("NOTICE Watched file changed: Watched file changed (file=\(dir)/untouched change=attributes sha256=") && $0.contains("): \(dir)/untouched attributes: mode changed from 0644 to 0600") } },
                      daemon.diagnostics + daemon.stdout.sofar)
        XCTAssertEqual(daemon.stop(), 0)

        // a baseline that cannot be read: said at start (CRITICAL), moved aside, a new one made
        let state = daemon.directory + "/state/fim/baseline.json"
        try Data("{\"version\":1,\"files\":{".utf8).write(to: URL(fileURLWithPath: state))
        try daemon.restart()
        XCTAssertTrue(waitUntil(seconds: 5) { !alerts(daemon, "FIM baseline unreadable").isEmpty }, daemon.diagnostics + daemon.stdout.sofar)
        XCTAssertTrue(alerts(daemon, "FIM baseline unreadable").first?.contains("CRITICAL") ?? false)
        XCTAssertTrue(FileManager.default.fileExists(atPath: state + ".unreadable"))
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: state))), "a new baseline")
        XCTAssertEqual(daemon.stop(), 0)
    }
}
