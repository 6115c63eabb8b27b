import Foundation
import Logging
@testable import VigilDaemon
import VigilEvents
import VigilFIM
import VigilRules
import VigilTestSupport
import XCTest

/// The daemon's FIM monitor with the fim sensor in this kernel, driven by hand (no event thread).
final class FIMMonitorTests: XCTestCase {
    func testAChangeWhoseRecordsWereLostIsFoundByReReadingEveryWatch() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let dir = try temporaryDirectory()
        let busy = dir + "/busy", quiet = dir + "/sudoers"
        try Data("a\n".utf8).write(to: URL(fileURLWithPath: busy))
        try Data("root ALL=(ALL) ALL\n".utf8).write(to: URL(fileURLWithPath: quiet))
        // a one-page ring: ~19 records fit
        let monitor = try FIMMonitor(spec: WatchSpec(paths: [busy, quiet]), stateDirectory: dir + "/state",
                                     logger: Logger(label: "fim-test"), ringBytes: 4096)
        // another process (the monitor ignores its own, this one's): fill the ring with the busy
        // file's writes, then change the quiet one: its record is lost
        let script = "i=0; while [ $i -lt 200 ]; do echo b >> \"$1\"; i=$((i+1)); done; echo 'eve ALL=(ALL) ALL' >> \"$2\""
        let result = try runCapturing("/bin/sh", ["-c", script, "sh", busy, quiet])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertGreaterThan(try XCTUnwrap(monitor.counters()).lost, 0, "the ring overflowed")

        var changes: [String] = []
        var now = DispatchTime.now().uptimeNanoseconds + FIMMonitor.lostCheckNs
        for _ in 0..<5 {
            monitor.poll(now: now) { change, _ in changes.append(change.summary) }
            now += FIMMonitor.settleNs
        }
        XCTAssertTrue(changes.contains { $0.hasPrefix("\(busy) modified") }, "\(changes)")
        XCTAssertTrue(changes.contains { $0.hasPrefix("\(quiet) modified: sudo rule added: eve ALL=(ALL) ALL") }, "\(changes)")
        XCTAssertEqual(changes.count, 2, "each change once: \(changes)")
    }

    func testARealChangeIsAFimEventRulesOnFimFieldsMatchAndJSONCarries() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let dir = try temporaryDirectory()
        let passwd = dir + "/passwd"
        try Data("root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/sh\n".utf8).write(to: URL(fileURLWithPath: passwd))
        let monitor = try FIMMonitor(spec: WatchSpec(directories: [.init(dir)]), stateDirectory: dir + "/state", logger: Logger(label: "fim-test"))
        let add = try runCapturing("/bin/sh", ["-c", "echo 'toor:x:0:0::/root:/bin/sh' >> \"$1\"", "sh", passwd])
        XCTAssertEqual(add.status, 0, add.stderr)
        var events: [Event] = []
        waitUntil(seconds: 3) {
            monitor.poll(now: DispatchTime.now().uptimeNanoseconds) { change, by in
                if let by { events.append(monitor.event(change, by: by, whileDown: false)) }
            }
            return !events.isEmpty
        }
        let event = try XCTUnwrap(events.first { if case .fim(let f) = $0.payload { f.path == passwd } else { false } }, "\(events.count) events")
        XCTAssertEqual(event.kind, .fim)
        XCTAssertEqual(event.comm, "sh", "the header is the syscall's that made the change")

        let user = """
        - rule: second root by a shell
          desc: test
          condition: evt.type = fim_change and fim.change = modified and fim.uid0_users contains toor and fim.users_added in (toor) and proc.name = sh and fim.profile = '\(dir)' and fim.sha256.old exists and fim.while_down = false
          output: "%fim.uid0_users in %fim.path (size %fim.size, owner %fim.owner)"
          priority: CRITICAL
        - rule: never
          desc: test
          condition: fim.change = removed or fim.ssh_keys_added exists or fim.sudo_rules_added exists
          output: x
          priority: NOTICE
        """
        let rules = try RuleSet(files: [(RuleFiles.defaultName, RuleFiles.defaultItems()), ("u.yaml", RuleFiles.items(text: user, file: "u.yaml"))])
        let matched = rules.matches(event)
        XCTAssertEqual(matched.map(\.rule.name), ["New uid 0 account", "second root by a shell"], "each change one default rule, the most severe")
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: passwd)[.size] as? Int)
        XCTAssertEqual(matched.last?.output.render(event), "(toor) in \(passwd) (size \(size), owner \(getuid()):\(getgid()))")
        XCTAssertEqual(rules.pushdown.kinds.contains(.fim), true)

        // JSON: the fim.* fields, and it reads back as the same change
        let line = EventFormat.json(event)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], line)
        XCTAssertEqual(object["evt.kind"] as? String, "fim")
        XCTAssertEqual(object["evt.type"] as? String, "fim_change")
        XCTAssertEqual(object["fim.path"] as? String, passwd)
        XCTAssertEqual(object["fim.change"] as? String, "modified")
        XCTAssertEqual(object["fim.uid0_users"] as? [String], ["toor"])
        XCTAssertEqual(object["fim.users_added"] as? [String], ["toor"])
        XCTAssertEqual(object["fim.new_uid0"] as? Bool, true)
        XCTAssertEqual(object["fim.sha256"] as? String, SHA256.hex(try XCTUnwrap(FileManager.default.contents(atPath: passwd))))
        XCTAssertNil(object["fim.ssh_keys_added"], "an empty list is absent")
        XCTAssertEqual(object["proc.name"] as? String, "sh")
        let back = try EventJSON.event(line)
        XCTAssertEqual(rules.matches(back).map(\.rule.name), ["New uid 0 account", "second root by a shell"], "read back from JSON")
    }

    /// Polls until `body` saw what it wants or 3 s passed (the settle time is real time here).
    private func pollUntil(_ monitor: FIMMonitor, seconds: Double = 3, _ done: ([String]) -> Bool) -> [String] {
        var changes: [String] = []
        waitUntil(seconds: seconds) {
            monitor.poll(now: DispatchTime.now().uptimeNanoseconds) { change, _ in changes.append(change.summary) }
            return done(changes)
        }
        return changes
    }

    /// A passwd file with root and bob, watched by a new monitor; for the tests whose python3
    /// script maps it.
    private func monitoredPasswdForPython() throws -> (path: String, monitor: FIMMonitor) {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { throw cannotRun("needs /usr/bin/python3") }
        let dir = try temporaryDirectory()
        let passwd = dir + "/passwd"
        try Data("root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/sh\n".utf8).write(to: URL(fileURLWithPath: passwd))
        return (passwd, try FIMMonitor(spec: WatchSpec(paths: [passwd]), stateDirectory: dir + "/state", logger: Logger(label: "fim-test")))
    }

    /// A change written through a writable shared mapping (no syscall for the write itself) is
    /// found while the process that mapped the file still runs: the monitor re-reads a watch
    /// mapped so every `mappedRecheckNs`. The mapping alone changes nothing.
    func testAChangeWrittenThroughASharedMappingIsFoundWhileTheMapperRuns() throws {
        let (passwd, monitor) = try monitoredPasswdForPython()
        // maps the file, says so, waits for a line, renames bob to eve through the mapping (no
        // write(2), no msync), says so, then stays (the mapping with it) until stdin closes
        let script = """
        import mmap, os, sys
        fd = os.open(sys.argv[1], os.O_RDWR)
        m = mmap.mmap(fd, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        print("mapped", flush=True)
        sys.stdin.readline()
        i = m.find(b"bob:")
        m[i:i + 3] = b"eve"
        print("written", flush=True)
        sys.stdin.read()
        """
        let python = try Python(script, [passwd])
        defer { python.finish() }
        XCTAssertEqual(python.line(), "mapped")
        let mappedOnly = pollUntil(monitor, seconds: 0.5) { !$0.isEmpty }
        XCTAssertEqual(mappedOnly, [], "the mapping alone changes nothing")
        try python.input.fileHandleForWriting.write(contentsOf: Data("\n".utf8))
        XCTAssertEqual(python.line(), "written")
        let found = pollUntil(monitor, seconds: 2 * Double(FIMMonitor.mappedRecheckNs) / 1e9 + 1) { !$0.isEmpty }
        XCTAssertTrue(python.process.isRunning, "found while the mapping process runs")
        XCTAssertEqual(found.count, 1, "\(found)")
        XCTAssertTrue(found.first?.hasPrefix("\(passwd) modified: ") ?? false, "\(found)")
        XCTAssertTrue(found.first?.contains("user added: eve") ?? false, "\(found)")
        XCTAssertTrue(found.first?.contains("user removed: bob") ?? false, "\(found)")
    }

    /// A mapping that becomes writable later (mprotect) in a fork child that outlives the process
    /// that mapped the file: the kernel reported the read-only shared mapping of the file open
    /// for writing; once the mapper is gone the monitor finds the child in /proc and keeps
    /// re-reading, so the child's write through the mapping is found while it runs.
    func testAChangeThroughAMappingMadeWritableByAForkChildThatOutlivesTheMapperIsFound() throws {
        let (passwd, monitor) = try monitoredPasswdForPython()
        // maps the file read-only and shared (open for writing), forks and exits; the child closes
        // every descriptor but stdio, waits until it is alone, says so, waits for a line, makes
        // the mapping writable, renames bob to eve through it, says so, then stays until stdin
        // closes
        let script = """
        import ctypes, os, sys
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        fd = os.open(sys.argv[1], os.O_RDWR)
        size = os.fstat(fd).st_size
        address = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        assert address not in (None, ctypes.c_void_p(-1).value), ctypes.get_errno()
        print("mapped", flush=True)
        parent = os.getpid()
        if os.fork() != 0:
            os._exit(0)
        os.closerange(3, 65536)  # the mapping stays; so the test's Process sees the parent end
        while os.getppid() == parent:
            pass
        print("alone", flush=True)
        sys.stdin.readline()
        assert libc.mprotect(address, size, 3) == 0, ctypes.get_errno()  # PROT_READ | PROT_WRITE
        i = ctypes.string_at(address, size).find(b"bob:")
        ctypes.memmove(address + i, b"eve", 3)
        print("written", flush=True)
        sys.stdin.read()
        """
        let python = try Python(script, [passwd])
        defer { python.finish() }
        XCTAssertEqual(python.line(), "mapped")
        XCTAssertEqual(python.line(), "alone")
        python.process.waitUntilExit()
        // longer than a re-check: the monitor sees the mapper gone before the child writes
        let quiet = pollUntil(monitor, seconds: 1.5 * Double(FIMMonitor.mappedRecheckNs) / 1e9) { _ in false }
        XCTAssertEqual(quiet, [], "the mapping alone changes nothing")
        try python.input.fileHandleForWriting.write(contentsOf: Data("\n".utf8))
        XCTAssertEqual(python.line(), "written")
        let found = pollUntil(monitor, seconds: 2 * Double(FIMMonitor.mappedRecheckNs) / 1e9 + 1) { !$0.isEmpty }
        XCTAssertEqual(found.count, 1, "\(found)")
        XCTAssertTrue(found.first?.hasPrefix("\(passwd) modified: ") ?? false, "\(found)")
        XCTAssertTrue(found.first?.contains("user added: eve") ?? false, "\(found)")
    }

    func testAProcessThatMapsAFileSharedIsFoundInProc() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { throw cannotRun("needs /usr/bin/python3") }
        let dir = try temporaryDirectory()
        let shared = dir + "/shared", privately = dir + "/private"
        for path in [shared, privately] { try Data("data\n".utf8).write(to: URL(fileURLWithPath: path)) }
        func id(_ path: String) -> FileID {
            var st = stat()
            XCTAssertEqual(stat(path, &st), 0, path)
            return FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        }
        let script = """
        import mmap, os, sys
        a = mmap.mmap(os.open(sys.argv[1], os.O_RDONLY), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        b = mmap.mmap(os.open(sys.argv[2], os.O_RDWR), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
        print("mapped", flush=True)
        sys.stdin.read()
        """
        let python = try Python(script, [shared, privately])
        defer { python.finish() }
        XCTAssertEqual(python.line(), "mapped")
        XCTAssertEqual(FIMMonitor.sharedMapper(of: id(shared), except: 0), UInt32(python.process.processIdentifier))
        XCTAssertNil(FIMMonitor.sharedMapper(of: id(shared), except: UInt32(python.process.processIdentifier)), "no other process maps it")
        XCTAssertNil(FIMMonitor.sharedMapper(of: id(privately), except: 0), "a private mapping is not shared")
    }

    func testTheWaitForRecordsEndsWhenTheFirstReportedWatchSettles() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let dir = try temporaryDirectory()
        let passwd = dir + "/passwd"
        try Data("root:x:0:0:root:/root:/bin/bash\n".utf8).write(to: URL(fileURLWithPath: passwd))
        let monitor = try FIMMonitor(spec: WatchSpec(paths: [passwd]), stateDirectory: dir + "/state", logger: Logger(label: "fim-test"))
        let start = DispatchTime.now().uptimeNanoseconds
        XCTAssertEqual(monitor.waitMilliseconds(now: start, atMost: 10), 10, "nothing reported: the whole limit")
        let append = try runCapturing("/bin/sh", ["-c", "echo 'eve:x:0:0::/root:/bin/sh' >> \"$1\"", "sh", passwd])
        XCTAssertEqual(append.status, 0, append.stderr)
        var reported = start
        waitUntil(seconds: 3) {
            reported = DispatchTime.now().uptimeNanoseconds
            monitor.poll(now: reported) { _, _ in }
            return monitor.waitMilliseconds(now: reported, atMost: 100) < 100
        }
        XCTAssertEqual(monitor.waitMilliseconds(now: reported, atMost: 100), Int32(FIMMonitor.settleNs / 1_000_000), "until it settles")
        XCTAssertEqual(monitor.waitMilliseconds(now: reported + FIMMonitor.settleNs / 2, atMost: 100), Int32(FIMMonitor.settleNs / 2_000_000))
        XCTAssertEqual(monitor.waitMilliseconds(now: reported + FIMMonitor.settleNs, atMost: 100), 0, "due: no wait")
        var changes: [String] = []
        monitor.poll(now: reported + FIMMonitor.settleNs) { change, _ in changes.append(change.summary) }
        XCTAssertEqual(changes.count, 1, "\(changes)")
        XCTAssertEqual(monitor.waitMilliseconds(now: reported + FIMMonitor.settleNs, atMost: 10), 10, "re-read: nothing pending")
    }

    func testAFileWhoseDirectoryIsMadeLaterIsWatchedOnceItExists() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let dir = try temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir + "/home", withIntermediateDirectories: true)
        let keys = dir + "/home/.ssh/authorized_keys"
        let monitor = try FIMMonitor(spec: WatchSpec(paths: [keys]), stateDirectory: dir + "/state", logger: Logger(label: "fim-test"))
        let mkdir = try runCapturing("/bin/mkdir", [dir + "/home/.ssh"])
        XCTAssertEqual(mkdir.status, 0, mkdir.stderr)
        _ = pollUntil(monitor, seconds: 0.3) { _ in false }  // the mkdir's report: the watch is tried again
        try addKeyThenAnother(monitor, keys)
    }

    /// Another process writes a key to `keys`, then appends a second: the monitor alerts the
    /// file created (the key added), then modified (the second key: the kernel watches the file).
    private func addKeyThenAnother(_ monitor: FIMMonitor, _ keys: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl eve@evil"
        let create = try runCapturing("/bin/sh", ["-c", "echo \"$2\" > \"$1\"", "sh", keys, key])
        XCTAssertEqual(create.status, 0, create.stderr, file: file, line: line)
        let created = pollUntil(monitor) { $0.contains { $0.hasPrefix("\(keys) created") } }
        XCTAssertTrue(created.contains { $0.hasPrefix("\(keys) created: SSH key added: ssh-ed25519 SHA256:") }, "\(created)", file: file, line: line)
        let append = try runCapturing("/bin/sh", ["-c", "echo \"$2\" | sed s/eve/mallory/ >> \"$1\"", "sh", keys, key])
        XCTAssertEqual(append.status, 0, append.stderr, file: file, line: line)
        let modified = pollUntil(monitor) { $0.contains { $0.hasPrefix("\(keys) modified") } }
        XCTAssertTrue(modified.contains { $0.hasPrefix("\(keys) modified: SSH key added: ") && $0.contains("mallory@evil") }, "\(modified)",
                      file: file, line: line)
    }

    func testAKeyFileAGlobMatchesOnlyLaterIsWatched() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let dir = try temporaryDirectory()
        for home in ["alice", "bob/.ssh"] { try FileManager.default.createDirectory(atPath: dir + "/home/" + home, withIntermediateDirectories: true) }
        try Data().write(to: URL(fileURLWithPath: dir + "/home/bob/.ssh/authorized_keys"))
        let monitor = try FIMMonitor(spec: WatchSpec(globs: [dir + "/home/*/.ssh/authorized_keys"]), stateDirectory: dir + "/state",
                                     logger: Logger(label: "fim-test"))
        XCTAssertEqual(monitor.watches.map(\.path), [dir + "/home/bob/.ssh/authorized_keys"])
        // alice had no .ssh, carol no home at all: both made now, each step its own process
        for home in ["alice", "carol"] {
            let base = dir + "/home/" + home, keys = base + "/.ssh/authorized_keys"
            let mkdirs = home == "carol" ? [base, base + "/.ssh"] : [base + "/.ssh"]
            for made in mkdirs {
                let result = try runCapturing("/bin/mkdir", [made])
                XCTAssertEqual(result.status, 0, result.stderr)
                _ = pollUntil(monitor, seconds: 0.3) { _ in false }
            }
            try addKeyThenAnother(monitor, keys)
        }
    }

    func testASubdirectoryMadeUnderARecursiveWatchIsWatchedFromThen() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let dir = try temporaryDirectory()
        let units = dir + "/system"
        try FileManager.default.createDirectory(atPath: units, withIntermediateDirectories: true)
        let monitor = try FIMMonitor(spec: WatchSpec(directories: [.init(units, recursive: true)]), stateDirectory: dir + "/state",
                                     logger: Logger(label: "fim-test"))
        let unit = units + "/evil.service.d/override.conf"
        let make = try runCapturing("/bin/sh", ["-c", "mkdir \"$1/evil.service.d\" && echo '[Service]' > \"$2\"", "sh", units, unit])
        XCTAssertEqual(make.status, 0, make.stderr)
        let created = pollUntil(monitor) { $0.contains { $0.hasPrefix("\(unit) created") } }
        XCTAssertTrue(created.contains { $0.hasPrefix("\(unit) created") }, "\(created)")
        // the file in the new subdirectory is watched by the kernel now: an append is seen
        let append = try runCapturing("/bin/sh", ["-c", "echo 'ExecStart=/tmp/x' >> \"$1\"", "sh", unit])
        XCTAssertEqual(append.status, 0, append.stderr)
        let modified = pollUntil(monitor) { $0.contains { $0.hasPrefix("\(unit) modified") } }
        XCTAssertTrue(modified.contains { $0.hasPrefix("\(unit) modified") && $0.contains("+ExecStart=/tmp/x") }, "\(modified)")
    }

    /// A rename whose ends the kernel reported is one change, `renamed`, with both names: `mv`
    /// over a watched file (the new content's meaning against what the name held), `mv` of a
    /// watched file away, and `mv` within a watched directory.
    func testARenameIsOneChangeWithBothNames() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let dir = try temporaryDirectory(), elsewhere = try temporaryDirectory()
        let passwd = dir + "/passwd", moved = dir + "/group", cron = dir + "/cron.d"
        try FileManager.default.createDirectory(atPath: cron, withIntermediateDirectories: true)
        try Data("root:x:0:0:root:/root:/bin/bash\n".utf8).write(to: URL(fileURLWithPath: passwd))
        try Data("root:x:0:\n".utf8).write(to: URL(fileURLWithPath: moved))
        try Data("* * * * * root true\n".utf8).write(to: URL(fileURLWithPath: cron + "/job"))
        try Data("root:x:0:0:root:/root:/bin/bash\neve:x:0:0::/root:/bin/sh\n".utf8).write(to: URL(fileURLWithPath: elsewhere + "/new"))
        let monitor = try FIMMonitor(spec: WatchSpec(paths: [passwd, moved], directories: [.init(cron)]), stateDirectory: dir + "/state",
                                     logger: Logger(label: "fim-test"))
        func mv(_ from: String, _ to: String) throws {
            let result = try runCapturing("/bin/mv", [from, to])
            XCTAssertEqual(result.status, 0, result.stderr)
        }

        // mv over a watched file: one change at the watched name, from the file that came
        try mv(elsewhere + "/new", passwd)
        let over = pollUntil(monitor) { $0.contains { $0.hasPrefix("\(passwd) renamed") } }
        XCTAssertEqual(over.filter { $0.hasPrefix(passwd) }.count, 1, "one change: \(over)")
        XCTAssertTrue(over.contains { $0.hasPrefix("\(passwd) renamed from \(elsewhere)/new: user added: eve") }, "\(over)")

        // mv of a watched file away: one change, to where it went
        try mv(moved, elsewhere + "/group.old")
        let away = pollUntil(monitor) { $0.contains { $0.hasPrefix("\(moved) renamed") } }
        XCTAssertEqual(away.filter { $0.hasPrefix(moved) }.count, 1, "one change: \(away)")
        XCTAssertTrue(away.contains { $0.hasPrefix("\(moved) renamed to \(elsewhere)/group.old") }, "\(away)")

        // mv within a watched directory: not removed + created, one rename
        try mv(cron + "/job", cron + "/job2")
        let within = pollUntil(monitor) { $0.contains { $0.contains("renamed") && $0.contains("/job") } }
        XCTAssertEqual(within.filter { $0.hasPrefix(cron) }, ["\(cron)/job2 renamed from \(cron)/job"], "\(within)")

        // the renamed-in inode stays watched: an append to it is a modification
        let append = try runCapturing("/bin/sh", ["-c", "echo 'bob:x:1000:1000::/home/bob:/bin/sh' >> \"$1\"", "sh", passwd])
        XCTAssertEqual(append.status, 0, append.stderr)
        let next = pollUntil(monitor) { $0.contains { $0.hasPrefix("\(passwd) modified") } }
        XCTAssertTrue(next.contains { $0.hasPrefix("\(passwd) modified: user added: bob") }, "\(next)")
    }
}

/// A python3 script the test talks to: its stdin and stdout are pipes; `finish` closes its stdin
/// (the scripts end then) and waits for it.
private struct Python {
    let process = Process()
    let input = Pipe(), output = Pipe()

    init(_ script: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", script] + arguments
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    /// The next line it printed, without the newline ("" at its end).
    func line() -> String {
        var bytes: [UInt8] = []
        while let byte = try? output.fileHandleForReading.read(upToCount: 1), let b = byte.first, b != 10 { bytes.append(b) }
        return String(decoding: bytes, as: UTF8.self)
    }

    func finish() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}
