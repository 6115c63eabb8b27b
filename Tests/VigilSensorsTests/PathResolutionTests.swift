import Foundation
import VigilEvents
import VigilSensors
import VigilTestSupport
import XCTest

/// Paths of syscall arguments resolved against the cwd or the dirfd argument, on the real
/// kernel: Tests/Fixtures/relpath-helper.c chdirs into a directory, then makes relative
/// mkdirat/openat/renameat/unlinkat calls, some against a directory fd, some after fchdir.
/// evt.arg.NAME and fd.name give the absolute path (Falco's resolved form), evt.rawarg.NAME the
/// name as given; chdir and fchdir (which keep the cwd) are captured without being asked and not
/// shown.
final class PathResolutionTests: XCTestCase {
    func testRelativePathsResolveAgainstCwdAndDirfd() throws {
        let helper = try compileFixture("relpath-helper")
        defer { unlink(helper) }
        let dir = URL(fileURLWithPath: try temporaryDirectory()).resolvingSymlinksInPath().path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let harness = try TraceHarness(kinds: Sensor.process.kinds, syscalls: SyscallCapture(names: ["mkdirat", "openat", "renameat", "unlinkat"]))
        var pid: Int32 = 0
        let events = try harness.collect { pid = try runProgram(helper, [dir]) }
        let calls = events.filter { $0.pid == UInt32(pid) && $0.kind == .syscall }
        func field(_ e: Event, _ name: String) -> String? {
            guard case .string(let s)? = Fields.named(name)?.extract(e, nil) else { return nil }
            return s.string
        }
        func named(_ name: String) -> [Event] { calls.filter { $0.syscall?.descriptor.nameString == name } }
        XCTAssertTrue(named("chdir").isEmpty && named("fchdir").isEmpty, "chdir and fchdir are captured for the cwd, not shown")

        let mkdir = try XCTUnwrap(named("mkdirat").first, "mkdirat")
        XCTAssertEqual(field(mkdir, "evt.arg.pathname"), dir + "/sub")
        XCTAssertEqual(field(mkdir, "evt.rawarg.pathname"), "sub")

        // The dynamic loader's opens (ld.so.cache, libc) come first: the helper's are relative.
        let opens = named("openat").filter { field($0, "evt.rawarg.filename")?.hasPrefix("/") == false }
        XCTAssertEqual(opens.count, 2 + 1, "three openat calls: \(opens.map { field($0, "evt.args") ?? "" })")
        guard opens.count == 3 else { return }
        XCTAssertEqual(field(opens[0], "evt.arg.filename"), dir + "/sub", "./sub/../sub folded against the cwd")
        XCTAssertEqual(field(opens[0], "evt.rawarg.filename"), "./sub/../sub")
        XCTAssertEqual(field(opens[0], "fd.name"), dir + "/sub")
        XCTAssertEqual(field(opens[0], "fd.type"), "directory")
        XCTAssertEqual(field(opens[1], "evt.arg.filename"), dir + "/sub/made", "relative to the directory fd")
        XCTAssertEqual(field(opens[1], "evt.rawarg.filename"), "made")
        XCTAssertEqual(field(opens[1], "fd.name"), dir + "/sub/made")
        XCTAssertEqual(field(opens[1], "fd.directory"), dir + "/sub")
        XCTAssertEqual(field(opens[1], "evt.args").map { $0.contains("filename=made(\(dir)/sub/made)") }, true,
                       "evt.args shows the name as given and the resolved path: \(field(opens[1], "evt.args") ?? "")")
        XCTAssertEqual(field(opens[2], "evt.arg.filename"), dir + "/sub/again", "relative to the cwd fchdir set")

        let rename = try XCTUnwrap(named("renameat").first, "renameat")
        XCTAssertEqual(field(rename, "evt.arg.oldname"), dir + "/sub/made")
        XCTAssertEqual(field(rename, "evt.arg.newname"), dir + "/moved")
        XCTAssertEqual(field(rename, "evt.rawarg.newname"), "moved")

        let unlinks = named("unlinkat")
        XCTAssertEqual(unlinks.map { field($0, "evt.arg.pathname") ?? "" }, [dir + "/moved", dir + "/sub/again", dir + "/sub"],
                       "against the cwd, after fchdir, after chdir ..")
        XCTAssertEqual(unlinks.map(\.syscall!.result), [0, 0, 0])
    }
}
