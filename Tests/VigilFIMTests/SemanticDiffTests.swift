import Foundation
import VigilFIM
import VigilTestSupport
import XCTest

/// Semantic diffs of account and access files written by the real tools, on a copy of /etc
/// mounted over /etc in a private mount namespace (the machine's /etc is never changed).
final class SemanticDiffTests: XCTestCase {
    /// A copy of /etc and a way to run commands with it as /etc.
    struct Root {
        let path: String
        init() throws {
            path = try temporaryDirectory()
            try run("/bin/cp", ["-a", "/etc", path + "/etc"])
        }
        func file(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path + "/etc/" + name))) }
        /// Runs `script` with the copy bound over /etc, in a mount namespace of its own.
        func sh(_ script: String) throws {
            try run("/usr/bin/unshare", ["-m", "--propagation", "private", "/bin/sh", "-c",
                                         "mount --bind '\(path)/etc' /etc && \(script)"])
        }
    }

    /// Runs `tool` to its end (output captured, shown on failure); its exit status must be 0.
    static func run(_ tool: String, _ args: [String]) throws {
        let result = try runCapturing(tool, args)
        XCTAssertEqual(result.status, 0, "\(tool) \(args): \(result.stderr)")
    }

    private func diff(_ root: Root, _ name: String, _ format: FileFormat, _ script: String) throws -> SemanticDiff {
        let before = try XCTUnwrap(SemanticState.of(try root.file(name), format: format))
        try root.sh(script)
        let after = try XCTUnwrap(SemanticState.of(try root.file(name), format: format))
        return SemanticDiff.between(before, after, format: format)
    }

    func testSHA256MatchesSha256sum() throws {
        let dir = try temporaryDirectory()
        let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        FileManager.default.createFile(atPath: dir + "/f", contents: Data(bytes))
        let out = try output("/usr/bin/sha256sum", [dir + "/f"])
        XCTAssertEqual(SHA256.hex(bytes), String(out.prefix(64)))
        // fed in pieces that straddle blocks (1, 63, 65, 1000 bytes, ...), and as a non-contiguous sequence
        var pieces = SHA256(), at = 0, size = 0
        while at < bytes.count {
            let n = min([1, 63, 65, 1000, 64, 7][size % 6], bytes.count - at)
            pieces.update(bytes[at..<(at + n)])
            at += n
            size += 1
        }
        XCTAssertEqual(SHA256.hexDigits(pieces.finish()), String(out.prefix(64)))
        XCTAssertEqual(SHA256.hex(bytes.lazy.map { $0 }), String(out.prefix(64)))
        XCTAssertEqual(SHA256.hex([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    func testUseraddOfASecondUIDZeroAccount() throws {
        let root = try Root()
        let d = try diff(root, "passwd", .passwd, "useradd -o -u 0 -g 0 -d /root -s /bin/sh eve")
        XCTAssertEqual(d.usersAdded, ["eve"])
        XCTAssertTrue(d.newUIDZero)
        XCTAssertEqual(d.uidZero, ["eve"])
        XCTAssertTrue(d.changes.contains("user added: eve (uid 0, gid 0, home /root, shell /bin/sh)"), "\(d.changes)")
    }

    func testUsermodAndUserdel() throws {
        let root = try Root()
        try root.sh("useradd -M -d /nonexistent-home -s /bin/sh bob")
        let changed = try diff(root, "passwd", .passwd, "usermod -s /bin/bash -d /srv/bob bob")
        XCTAssertEqual(changed.changes.sorted(), ["user bob: home changed from /nonexistent-home to /srv/bob",
                                                  "user bob: shell changed from /bin/sh to /bin/bash"])
        let removed = try diff(root, "passwd", .passwd, "userdel bob")
        XCTAssertEqual(removed.usersRemoved, ["bob"])
        XCTAssertFalse(removed.newUIDZero)
    }

    func testChpasswdSaysPasswordChangedAndNeverShowsTheHash() throws {
        let root = try Root()
        try root.sh("useradd -M carol")
        let before = try root.file("shadow")
        let d = try diff(root, "shadow", .shadow, "echo 'carol:Secret-1234' | chpasswd")
        XCTAssertEqual(d.changes.filter { $0.contains("password") }, ["user carol: password changed"])
        let after = String(decoding: try root.file("shadow"), as: UTF8.self)
        let hash = try XCTUnwrap(after.split(separator: "\n").first { $0.hasPrefix("carol:") }?.split(separator: ":")[1])
        XCTAssertTrue(hash.hasPrefix("$"), "chpasswd wrote a hash")
        let state = try XCTUnwrap(SemanticState.of(try root.file("shadow"), format: .shadow))
        XCTAssertFalse(state.lines.joined().contains(hash), "the baseline keeps no hash")
        XCTAssertFalse(d.changes.joined().contains(hash))
        XCTAssertNotEqual(before, try root.file("shadow"))
        let locked = try diff(root, "shadow", .shadow, "usermod -L carol")
        XCTAssertEqual(locked.changes, ["user carol: password locked"])
        let unlocked = try diff(root, "shadow", .shadow, "usermod -U carol")
        XCTAssertEqual(unlocked.changes, ["user carol: password unlocked"])
        let again = try diff(root, "shadow", .shadow, "echo 'carol:Other-5678' | chpasswd")
        XCTAssertEqual(again.changes.filter { $0.contains("password") }, ["user carol: password changed"])
    }

    func testGpasswdAddsAMember() throws {
        let root = try Root()
        try root.sh("useradd -M dave && groupadd wheel2")
        let d = try diff(root, "group", .group, "gpasswd -a dave wheel2")
        XCTAssertEqual(d.changes, ["group wheel2: member added: dave"])
        let g = try diff(root, "gshadow", .gshadow, "gpasswd -A dave wheel2")
        XCTAssertEqual(g.changes, ["group wheel2: administrator added: dave"])
    }

    func testSudoersRuleAddedBySedAndEcho() throws {
        let root = try Root()
        try root.sh("mkdir -p /etc/sudoers.d && printf 'Defaults env_reset\\n# comment\\nroot ALL=(ALL:ALL) ALL\\n' > /etc/sudoers.d/test")
        let d = try diff(root, "sudoers.d/test", .sudoers, "echo 'eve ALL=(ALL) NOPASSWD: ALL' >> /etc/sudoers.d/test && sed -i 's/^root .*/root ALL=(ALL) ALL/' /etc/sudoers.d/test")
        XCTAssertEqual(d.changes.sorted(), ["sudo rule added: eve ALL=(ALL) NOPASSWD: ALL", "sudo rule added: root ALL=(ALL) ALL",
                                            "sudo rule removed: root ALL=(ALL:ALL) ALL"])
    }

    func testAuthorizedKeysAddedWithTypeCommentAndTheFingerprintSshKeygenShows() throws {
        let dir = try temporaryDirectory()
        try Self.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "eve@evil", "-f", dir + "/key"])
        let pub = try String(contentsOfFile: dir + "/key.pub", encoding: .utf8)
        let before = SemanticState(lines: [])
        let after = try XCTUnwrap(SemanticState.of(Array(pub.utf8), format: .authorizedKeys))
        let d = SemanticDiff.between(before, after, format: .authorizedKeys)
        let fingerprint = try output("/usr/bin/ssh-keygen", ["-lf", dir + "/key.pub"]).split(separator: " ")[1]
        XCTAssertEqual(d.keysAdded, ["ssh-ed25519 \(fingerprint) eve@evil"])
        let privateKey = try String(contentsOfFile: dir + "/key", encoding: .utf8)
        XCTAssertFalse(d.changes.joined().contains(privateKey.split(separator: "\n")[1]))
    }

    private func output(_ tool: String, _ args: [String]) throws -> String {
        let result = try runCapturing(tool, args)
        XCTAssertEqual(result.status, 0, "\(tool) \(args): \(result.stderr)")
        return result.stdout
    }
}
