import Foundation
import VigilEvents
import VigilRules
import VigilSensors
import VigilTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The file sensor loaded into this kernel, triggered by real opens.
final class FileSensorTests: XCTestCase {
    /// Opens in this process are traced here, so Vigil's self-exclusion is turned off.
    private func harness() throws -> TraceHarness {
        var filter = KernelFilter()
        filter.ignorePID = 0
        return try TraceHarness(filter: filter)
    }

    private func opens(_ events: [Event], inside dir: String) -> [Payload.Open] {
        events.compactMap(\.open).filter { $0.path.bytes.starts(with: Array(dir.utf8)) }
    }

    func testNamesWithSpacesNewlinesAndInvalidUTF8SurviveExactly() throws {
        let harness = try harness()
        let dir = try temporaryDirectory()
        let dirfd = Glibc.open(dir, O_RDONLY | O_DIRECTORY)
        defer { close(dirfd) }
        let name: [UInt8] = Array("a b\nc".utf8) + [0xff, 0xfe] + Array(".txt".utf8)
        let events = try harness.collect {
            let fd = (name + [0]).withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { openat(dirfd, $0.baseAddress!, O_CREAT | O_WRONLY | O_CLOEXEC, 0o640) }
            }
            XCTAssertGreaterThanOrEqual(fd, 0)
            close(fd)
        }
        let open = try XCTUnwrap(opens(events, inside: dir).first)
        XCTAssertEqual(open.name.bytes, name, "the name as given")
        XCTAssertEqual(open.path.bytes, Array(dir.utf8) + [0x2f] + name, "resolved against dirfd")
        XCTAssertEqual(open.dirfd, dirfd)
        XCTAssertEqual(OpenFlags.describe(open.flags), "O_WRONLY|O_CREAT|O_CLOEXEC")
        XCTAssertEqual(open.mode, 0o640)
        XCTAssertGreaterThanOrEqual(open.result, 0)
        // JSON keeps the bytes (\udcXX for the invalid ones), and the table escapes them.
        let event = try XCTUnwrap(events.first { $0.open?.path == open.path })
        XCTAssertTrue(EventFormat.json(event).contains("a b\\nc\\udcff\\udcfe.txt"))
        XCTAssertTrue(EventFormat.tableRow(event).contains("a b\\nc\\xff\\xfe.txt"))
    }

    /// An open event answers to Falco's argument names for an open's exit (evt.arg.flags, .name,
    /// .fd, .mode, .dirfd), so Falco-style rules that truncate-test opens ("Clear Log
    /// Activities": `evt.arg.flags contains O_TRUNC`) match a real `: > file` and not `>> file`.
    func testFalcosOpenArgumentsOnOpenEvents() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rules = dir + "/r.yaml"
        try """
        - macro: open_write
          condition: (evt.type in (open,openat,openat2) and evt.is_open_write=true and fd.typechar='f' and fd.num>=0)
        - rule: Log truncated
          desc: d
          condition: open_write and fd.directory = "\(dir)" and evt.arg.flags contains "O_TRUNC"
          output: "truncated %evt.arg.name flags=%evt.arg.flags mode=%evt.arg.mode fd=%evt.arg.fd raw=%evt.rawarg.flags"
          priority: WARNING
        """.write(toFile: rules, atomically: true, encoding: .utf8)
        let set = try RuleFiles.ruleSet(paths: [rules], defaults: false)
        XCTAssertEqual(set.pushdown.syscalls.names, [], "the open kind, not the syscalls sensor")
        let events = try harness().collect {
            _ = try runProgram("/bin/sh", ["-c", ": > log.1; echo x >> log.2"], cwd: dir)
        }
        let hits = events.flatMap { e in set.matches(e).map { $0.output.render(e) } }
        XCTAssertEqual(hits.count, 1, "\(hits)")
        let hit = try XCTUnwrap(hits.first)
        XCTAssertTrue(hit.hasPrefix("truncated \(dir)/log.1 flags=O_WRONLY|O_CREAT|O_TRUNC"), hit)
        XCTAssertTrue(hit.contains("mode=0666"), hit)
        XCTAssertFalse(hit.contains("fd=-"), hit)
        XCTAssertTrue(hit.contains("raw=\(0o1101)"), hit)
    }

    func testRelativeOpensAreResolvedAgainstCwd() throws {
        let harness = try harness()
        let dir = try temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/sub/file", contents: Data("x".utf8))
        var pid: Int32 = 0
        let events = try harness.collect {
            pid = try runProgram("/bin/sh", ["-c", "cat ./sub/../sub/file missing >/dev/null 2>&1; true"], cwd: dir)
        }
        let mine = events.filter { $0.ppid == UInt32(pid) || $0.pid == UInt32(pid) }.compactMap(\.open)
        let file = try XCTUnwrap(mine.first { $0.name == "./sub/../sub/file" })
        XCTAssertEqual(file.path.string, dir + "/sub/file")
        XCTAssertEqual(file.dirfd, -100)
        XCTAssertGreaterThanOrEqual(file.result, 0)
        let missing = try XCTUnwrap(mine.first { $0.name == "missing" })
        XCTAssertEqual(missing.path.string, dir + "/missing")
        XCTAssertEqual(missing.result, -Int64(ENOENT))
        let event = try XCTUnwrap(events.first { $0.open?.name == "missing" })
        XCTAssertEqual(Fields.named("evt.res")?.extract(event, nil), .string("ENOENT"))
        XCTAssertEqual(Fields.named("fd.directory")?.extract(event, nil), .string(ByteString(dir)))
        XCTAssertEqual(event.process.cwd?.string, dir, "the process table knows cat's cwd from its exec")
    }

    func testOpenAndOpenat2SyscallsAreTraced() throws {
        let harness = try harness()
        let dir = try temporaryDirectory()
        // open(2) and openat2(2) have no Swift wrapper: python's ctypes makes the raw syscalls.
        let script = """
        import ctypes, struct, sys
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        how = ctypes.create_string_buffer(struct.pack("QQQ", 0o2000000, 0, 0), 24)
        print(libc.syscall(437, -100, b"openat2-target", how, 24))
        print(libc.syscall(2, b"open-target", 0o101, 0o600))
        """
        var pid: Int32 = 0
        let events = try harness.collect { pid = try runProgram("/usr/bin/python3", ["-c", script], cwd: dir) }
        let mine = events.filter { $0.pid == UInt32(pid) }.compactMap(\.open)
        let openat2 = try XCTUnwrap(mine.first { $0.name == "openat2-target" })
        XCTAssertEqual(openat2.syscall, "openat2")
        XCTAssertEqual(openat2.path.string, dir + "/openat2-target")
        XCTAssertEqual(openat2.result, -Int64(ENOENT))
        XCTAssertEqual(OpenFlags.describe(openat2.flags), "O_RDONLY|O_CLOEXEC")
        let open = try XCTUnwrap(mine.first { $0.name == "open-target" })
        XCTAssertEqual(open.syscall, "open")
        XCTAssertEqual(open.path.string, dir + "/open-target")
        XCTAssertEqual(OpenFlags.describe(open.flags), "O_WRONLY|O_CREAT")
        XCTAssertEqual(open.mode, 0o600)
        XCTAssertGreaterThanOrEqual(open.result, 0)
    }

    func testDeepPathsAreCutAndFlagged() throws {
        let harness = try harness()
        let dir = try temporaryDirectory()
        let deep = dir + String(repeating: "/d", count: 60)
        try FileManager.default.createDirectory(atPath: deep, withIntermediateDirectories: true)
        let fd = Glibc.open(deep, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        let events = try harness.collect { close(openat(fd, "f", O_RDONLY)) }
        let open = try XCTUnwrap(events.compactMap(\.open).first { $0.name == "f" && $0.dirfd == fd })
        XCTAssertTrue(open.truncated, "more than 48 levels")
        XCTAssertTrue(open.path.string.hasSuffix("/d/d/d/f"))
    }

    func testTheOpenedFileIsResolvedInTheKernelWithItsDeviceInodeAndCreation() throws {
        let harness = try harness()
        let dir = try temporaryDirectory()
        let target = dir + "/target"
        FileManager.default.createFile(atPath: target, contents: Data("x".utf8))
        try FileManager.default.createDirectory(atPath: dir + "/real", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/real/inner", contents: Data("x".utf8))
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: "target")
        try FileManager.default.createSymbolicLink(atPath: dir + "/dirlink", withDestinationPath: dir + "/real")
        try FileManager.default.linkItem(atPath: target, toPath: dir + "/hard")
        let events = try harness.collect {
            for name in ["/link", "/dirlink/inner", "/hard"] { close(Glibc.open(dir + name, O_RDONLY)) }
            close(Glibc.open(dir + "/new", O_WRONLY | O_CREAT | O_TRUNC, 0o600)) // creates it
            close(Glibc.open(dir + "/new", O_WRONLY | O_CREAT | O_TRUNC, 0o600)) // truncates it
        }
        let mine = events.compactMap(\.open).filter { $0.name.bytes.starts(with: Array(dir.utf8)) }
        var st = stat()
        XCTAssertEqual(stat(target, &st), 0)
        let link = try XCTUnwrap(mine.first { $0.name.string == dir + "/link" })
        XCTAssertEqual(link.path.string, target, "a symlink: the file it leads to")
        XCTAssertEqual(link.filename, "target")
        XCTAssertEqual(link.device, UInt64(st.st_dev))
        XCTAssertEqual(link.inode, UInt64(st.st_ino))
        XCTAssertFalse(link.created)
        let inner = try XCTUnwrap(mine.first { $0.name.string == dir + "/dirlink/inner" })
        XCTAssertEqual(inner.path.string, dir + "/real/inner", "a symlinked directory on the way")
        let hard = try XCTUnwrap(mine.first { $0.name.string == dir + "/hard" })
        XCTAssertEqual(hard.path.string, dir + "/hard", "a hard link is a name of its own")
        XCTAssertEqual(hard.inode, UInt64(st.st_ino), "of the same file")
        let new = mine.filter { $0.name.string == dir + "/new" }
        XCTAssertEqual(new.map(\.created), [true, false], "created by the first open only")
        let event = try XCTUnwrap(events.first { $0.open?.name.string == dir + "/link" })
        XCTAssertEqual(Fields.named("fd.ino")?.extract(event, nil), .uint(UInt64(st.st_ino)))
        XCTAssertEqual(Fields.named("fd.dev")?.extract(event, nil), .uint(UInt64(st.st_dev)))
        // coreutils' stat says what major and minor are.
        let pipe = Pipe(), statProcess = Process()
        statProcess.executableURL = URL(fileURLWithPath: "/usr/bin/stat")
        statProcess.arguments = ["-c", "%Hd %Ld", target]
        statProcess.standardOutput = pipe
        try statProcess.run()
        statProcess.waitUntilExit()
        let numbers = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: " ")
            .compactMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        XCTAssertEqual(numbers.count, 2)
        XCTAssertEqual(Fields.named("fd.dev.major")?.extract(event, nil), numbers.first.map { .uint($0) })
        XCTAssertEqual(Fields.named("fd.dev.minor")?.extract(event, nil), numbers.last.map { .uint($0) })
        XCTAssertEqual(Fields.named("fd.nameraw")?.extract(event, nil), .string(ByteString(dir + "/link")))
        let created = try XCTUnwrap(events.first { $0.open?.created == true && $0.open?.name.string == dir + "/new" })
        XCTAssertEqual(Fields.named("evt.is_open_create")?.extract(created, nil), .bool(true))
    }
}
