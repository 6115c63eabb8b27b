import Foundation
import VigilFIM
import VigilTestSupport
import XCTest

/// Unified diffs against what GNU diff -u prints for the same two files.
final class UnifiedDiffTests: XCTestCase {
    private func diffU(_ old: [String], _ new: [String]) throws -> [String] {
        let dir = try temporaryDirectory()
        try Data((old.map { $0 + "\n" }.joined()).utf8).write(to: URL(fileURLWithPath: dir + "/a"))
        try Data((new.map { $0 + "\n" }.joined()).utf8).write(to: URL(fileURLWithPath: dir + "/b"))
        let result = try runCapturing("/usr/bin/diff", ["-u", dir + "/a", dir + "/b"])
        XCTAssertTrue(result.status == 0 || result.status == 1, result.stderr)
        return Array(result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).dropFirst(2).dropLast())
    }

    func testHunksAreWhatDiffUPrints() throws {
        let base = (1...30).map { "line \($0)" }
        var middle = base; middle[14] = "PermitRootLogin yes"
        var appended = base; appended += ["extra 1", "extra 2"]
        var twoApart = base; twoApart[2] = "changed 3"; twoApart[25] = "changed 26"
        var twoClose = base; twoClose[10] = "changed 11"; twoClose[15] = "changed 16"
        var removedFirst = base; removedFirst.removeFirst()
        var inserted = base; inserted.insert(contentsOf: ["new a", "new b"], at: 7)
        let cases: [(String, [String], [String])] = [
            ("one line changed", base, middle), ("appended", base, appended), ("two hunks", base, twoApart),
            ("changes 4 lines apart: one hunk", base, twoClose), ("first line removed", base, removedFirst),
            ("lines inserted", base, inserted), ("from empty", [], ["a", "b", "c"]), ("to empty", ["a", "b"], []),
            ("short file", ["x"], ["y"]),
        ]
        for (name, old, new) in cases {
            XCTAssertEqual(UnifiedDiff.hunks(old, new), try diffU(old, new), name)
        }
        XCTAssertEqual(UnifiedDiff.hunks(base, base), [])
    }

    func testAChangedConfigFileCarriesItsDiffAndSecretsNever() throws {
        let dir = try temporaryDirectory()
        let config = dir + "/sshd_config", key = dir + "/host_key"
        try Data("Port 22\nPermitRootLogin no\nPasswordAuthentication no\n".utf8).write(to: URL(fileURLWithPath: config))
        let keygen = try runCapturing("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key])
        XCTAssertEqual(keygen.status, 0, keygen.stderr)
        let watches = WatchSpec(paths: [config, key]).resolve()
        let before = Baseline.scan(watches, textLimit: 65_536)
        XCTAssertNotNil(before.files[config]?.text)
        XCTAssertNil(before.files[key]?.text, "a private key is never kept as text")
        XCTAssertNil(Baseline.scan(watches, textLimit: 10).files[config]?.text, "larger than the limit")

        let sed = try runCapturing("/bin/sed", ["-i", "s/PermitRootLogin no/PermitRootLogin yes/", config])
        XCTAssertEqual(sed.status, 0, sed.stderr)
        try FileManager.default.removeItem(atPath: key)
        let regen = try runCapturing("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key])
        XCTAssertEqual(regen.status, 0, regen.stderr)
        let changes = before.changes(to: Baseline.scan(watches, textLimit: 65_536))
        let changed = try XCTUnwrap(changes.first { $0.path == config })
        XCTAssertEqual(changed.unified, ["@@ -1,3 +1,3 @@", " Port 22", "-PermitRootLogin no", "+PermitRootLogin yes", " PasswordAuthentication no"])
        XCTAssertTrue(changed.summary.hasSuffix("\n@@ -1,3 +1,3 @@\n Port 22\n-PermitRootLogin no\n+PermitRootLogin yes\n PasswordAuthentication no"), changed.summary)
        let rekeyed = try XCTUnwrap(changes.first { $0.path == key })
        XCTAssertEqual(rekeyed.change, .modified)
        XCTAssertNil(rekeyed.unified)
        let privateKey = try String(contentsOfFile: key, encoding: .utf8)
        XCTAssertFalse(rekeyed.summary.contains(privateKey.split(separator: "\n")[1]))
    }
}
