import Foundation
import VigilTestSupport
import XCTest

/// Vigil's file integrity monitoring beside AIDE (Debian's `aide`, the periodic checker it
/// replaces) on the same files and the same changes made with real tools: every file AIDE's
/// check finds added, removed or changed, Vigil alerted as it happened, and with what the change
/// means, which AIDE's report lacks (issue 14 section 4).
final class FIMAIDEComparisonTests: XCTestCase {
    private func run(_ path: String, _ arguments: [String]) throws -> ProgramResult {
        let result = try runCapturing(path, arguments)
        XCTAssertEqual(result.status, 0, "\(path) \(arguments): \(result.stderr)")
        return result
    }

    func testEveryFileAIDEFindsChangedVigilAlertedWithItsMeaning() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF, .mapRingBuffer)
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/aide") else { throw cannotRun("needs aide (scripts/setup.sh --test installs it)") }
        // Without a space (temporaryDirectory() has one): aide.conf takes paths unquoted.
        let dir = "/tmp/vigil-aide-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let files = dir + "/files"
        try FileManager.default.createDirectory(atPath: files + "/ssh", withIntermediateDirectories: true)
        let passwd = files + "/passwd", sudoers = files + "/sudoers", keys = files + "/ssh/authorized_keys"
        let notes = files + "/notes", tool = files + "/tool"
        try "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n".write(toFile: passwd, atomically: false, encoding: .utf8)
        try "root ALL=(ALL) ALL\n".write(toFile: sudoers, atomically: false, encoding: .utf8)
        try "nothing secret\n".write(toFile: notes, atomically: false, encoding: .utf8)
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: tool)

        // AIDE's database of the same files: permissions, owner, group, size, sha256, inode, links.
        let config = dir + "/aide.conf"
        try """
        database_in=file:\(dir)/aide.db
        database_out=file:\(dir)/aide.db.new
        gzip_dbout=no
        report_format=json
        report_url=stdout
        \(files) p+u+g+s+sha256+i+n

        """.write(toFile: config, atomically: false, encoding: .utf8)
        _ = try run("/usr/bin/aide", ["--config=\(config)", "--init"])
        try FileManager.default.moveItem(atPath: dir + "/aide.db.new", toPath: dir + "/aide.db")

        let home = try temporaryDirectory()
        try FileManager.default.createDirectory(atPath: home + "/rules.d", withIntermediateDirectories: true)
        try """
        - rule: Compared change
          desc: every change to the compared files
          condition: evt.type = fim_change and fim.path startswith '\(files)/'
          output: "%fim.path %fim.change: %fim.summary"
          priority: INFO
        """.write(toFile: home + "/rules.d/user.yaml", atomically: true, encoding: .utf8)
        let daemon = try TestDaemon(extraConfig: """
        fim:
          paths: ["\(passwd)", "\(sudoers)", "\(notes)", "\(tool)"]
          directories: ["\(files)/ssh"]
        """, directory: home)
        defer { _ = daemon.stop() }

        // The changes, made with the tools that make them on real hosts.
        _ = try run("/bin/sh", ["-c", "echo 'mallory:x:0:0::/root:/bin/sh' >> \"$1\"", "sh", passwd])
        _ = try run("/bin/sed", ["-i", "s/^root .*/root ALL=(ALL) NOPASSWD: ALL/", sudoers])
        _ = try run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "mallory@evil", "-f", dir + "/key"])
        _ = try run("/bin/cp", [dir + "/key.pub", keys])
        _ = try run("/bin/chmod", ["4755", tool])
        _ = try run("/bin/rm", [notes])

        /// Vigil's alerts of the compared files: path -> "change: summary".
        func alerted() -> [String: String] {
            var out: [String: String] = [:]
            for line in daemon.stdout.sofar.split(separator: "\n") {
                guard let start = line.range(of: " Compared change: ")?.upperBound else { continue }
                let text = line[start...]
                guard let space = text.firstIndex(of: " ") else { continue }
                out[String(text[..<space]), default: ""] += String(text[text.index(after: space)...])
            }
            return out
        }
        XCTAssertTrue(waitUntil(seconds: 10) { alerted().count == 5 }, daemon.diagnostics + daemon.stdout.sofar)

        // AIDE's check of the same files (exit status 7: added, removed and changed entries).
        let check = try runCapturing("/usr/bin/aide", ["--config=\(config)", "--check"])
        XCTAssertEqual(check.status, 7, check.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any], check.stdout)
        /// AIDE's entries of one section that are files (its summary starts with the type, `f`).
        func aideFiles(_ section: String) -> Set<String> {
            Set((report[section] as? [String: String] ?? [:]).filter { $0.value.hasPrefix("f") }.keys)
        }
        let aide = aideFiles("added").union(aideFiles("removed")).union(aideFiles("changed"))
        XCTAssertEqual(aide, [passwd, sudoers, keys, tool, notes], "AIDE's files: \(check.stdout)")
        let vigil = alerted()
        XCTAssertEqual(Set(vigil.keys), aide, "Vigil alerted the files AIDE found changed: \(vigil)")
        XCTAssertEqual(aideFiles("added"), [keys])
        XCTAssertEqual(aideFiles("removed"), [notes])

        // What each change means: AIDE gives the attributes that differ, Vigil what they say.
        XCTAssertTrue(vigil[passwd]?.contains("modified: ") == true && vigil[passwd]?.contains("user added: mallory") == true, "\(vigil)")
        XCTAssertTrue(vigil[sudoers]?.contains("sudo rule added: root ALL=(ALL) NOPASSWD: ALL") == true, "\(vigil)")
        XCTAssertTrue(vigil[keys]?.hasPrefix("created: ") == true && vigil[keys]?.contains("SSH key added: ssh-ed25519 ") == true, "\(vigil)")
        XCTAssertTrue(vigil[tool]?.hasPrefix("attributes: ") == true, "\(vigil)")
        XCTAssertTrue(vigil[notes]?.hasPrefix("removed: ") == true, "\(vigil)")
        XCTAssertEqual(daemon.stop(), 0)
    }
}
