import Foundation
import VigilEvents
import VigilRules
import VigilSensors
import VigilTestSupport
import XCTest

/// Every default rule triggered for real (in a container where it is about containers), and a
/// benign look-alike that must not trigger it.
final class DefaultRulesTests: XCTestCase {
    private static let rules = Result { try RuleFiles.ruleSet(paths: []) }

    /// The alerts of `rule` raised by what `work` does. With `pushdown`, the kernel filters opens
    /// by the rules' paths first, as the daemon does.
    func alerts(_ rule: String, metadata: Bool = false, pushdown: Bool = false, _ work: () throws -> Void) throws -> [(event: Event, output: String)] {
        try run(rule, metadata: metadata, pushdown: pushdown, work).hits
    }

    /// `alerts`, with the syscalls the rules want that the syscalls sensor did not capture
    /// (`Sensors.syscallsNotCaptured`); `syscallHook` forces that sensor's hook variant.
    func run(_ rule: String, metadata: Bool = false, pushdown: Bool = false, syscallHook: String? = nil,
             _ work: () throws -> Void) throws -> (hits: [(event: Event, output: String)], notCaptured: [String]) {
        let set = try Self.rules.get()
        XCTAssertTrue(set.rules.contains { $0.rule.name == rule }, "no rule named \(rule)")
        let filter = Self.kernelFilter(set, pushdown: pushdown)
        let hooks = filter.syscalls.flatMap { capture in syscallHook.map { [Sensor.syscalls.name: Sensors.syscallHooks(for: capture, forcing: $0)] } }
        let harness = try TraceHarness(filter: filter, metadata: metadata, hooks: hooks ?? [:])
        let events = try harness.collect(work)
        let hits = events.flatMap { event in set.matches(event).filter { $0.rule.name == rule }.map { (event, $0.output.render(event)) } }
        return (hits, harness.sensors.syscallsNotCaptured)
    }

    /// The kernel filter the daemon pushes for `set` (its syscalls; its open paths with `pushdown`).
    private static func kernelFilter(_ set: RuleSet, pushdown: Bool) -> KernelFilter {
        var filter = KernelFilter()
        filter.ignorePID = 0
        if pushdown { filter.openPaths = set.openPaths }
        let syscalls = set.pushdown.syscallNumbers
        filter.syscalls = syscalls.isEmpty ? nil : SyscallCapture(numbers: syscalls, bounds: SyscallBounds(), asked: [], pushdown: set.pushdown)
        return filter
    }

    /// Every alert of the default rules (rule name: output) raised while `work` runs on another
    /// thread, the ring read and enriched meanwhile as the daemon does (so /proc of the processes
    /// is read while they live), from the events `include` keeps.
    private func liveAlerts(metadata: Bool = false, _ work: @escaping @Sendable () throws -> Void,
                            include: (Event) -> Bool = { _ in true }) throws -> (alerts: [String], events: [Event]) {
        let set = try Self.rules.get()
        let harness = try TraceHarness(filter: Self.kernelFilter(set, pushdown: true), metadata: metadata)
        let (_, events) = try harness.collectWhileRunning(work)
        let alerts = events.filter(include).flatMap { event in set.matches(event).map { "\($0.rule.name): \($0.output.render(event))" } }
        return (alerts, events)
    }

    private func sh(_ script: String, cwd: String? = nil) throws { try runProgram("/bin/sh", ["-c", script], cwd: cwd) }

    func dockerExec(_ container: DockerTestEngine.Container, _ script: String) {
        _ = DockerTestEngine.run(["docker", "exec", container.name, "sh", "-c", script])
    }

    /// Runs one program in the container with no shell in between (busybox's shell runs its
    /// applets in-process, without an exec).
    private func dockerRun(_ container: DockerTestEngine.Container, _ argv: String...) {
        _ = DockerTestEngine.run(["docker", "exec", container.name] + argv)
    }

    func testShellStartedInAContainer() throws {
        let container = try DockerTestEngine.startContainer(for: self)
        let hits = try alerts("Shell started in a container", metadata: true) { dockerExec(container, "true") }
        let hit = try XCTUnwrap(hits.first)
        XCTAssertTrue(hit.output.contains("container=\(container.name)"), hit.output)
        XCTAssertTrue(hit.output.contains("image=\(DockerTestEngine.image)"), hit.output)
        XCTAssertTrue(try alerts("Shell started in a container") { try sh("true") }.isEmpty, "a shell on the host")
    }

    func testSensitiveFileRead() throws {
        let dir = try temporaryDirectory()
        FileManager.default.createFile(atPath: dir + "/id_ed25519", contents: Data("key".utf8))
        FileManager.default.createFile(atPath: dir + "/id_ed25519.pub", contents: Data("pub".utf8))
        let hits = try alerts("Sensitive file read") { try sh("cat /etc/shadow >/dev/null; cat id_ed25519 >/dev/null", cwd: dir) }
        XCTAssertTrue(hits.contains { $0.event.open?.path == "/etc/shadow" && $0.event.comm == "cat" })
        XCTAssertTrue(hits.contains { $0.event.open?.path.string == dir + "/id_ed25519" })
        let benign = try alerts("Sensitive file read") { try sh("cat /etc/passwd >/dev/null; cat id_ed25519.pub >/dev/null", cwd: dir) }
        XCTAssertTrue(benign.isEmpty, "\(benign.map(\.output))")
    }

    /// A fresh directory below /etc (the file system of /etc/shadow, where a hard link to it can
    /// be made), removed after the test.
    private func directoryBelowEtc() throws -> String {
        let path = "/etc/vigil-test-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testSensitiveFileReadThroughASymlinkOrAHardLinkIsCaught() throws {
        let dir = try directoryBelowEtc()
        try FileManager.default.createSymbolicLink(atPath: dir + "/sym", withDestinationPath: "/etc/shadow")
        try FileManager.default.linkItem(atPath: "/etc/shadow", toPath: dir + "/hard")
        let hits = try alerts("Sensitive file read", pushdown: true) {
            try sh("cat sym >/dev/null; cat \(dir)/hard >/dev/null", cwd: dir)
        }
        let symlink = hits.first { $0.event.open?.name == "sym" }
        XCTAssertEqual(symlink?.event.open?.path, "/etc/shadow", "through a symlink: \(hits.map(\.output))")
        XCTAssertEqual(symlink?.event.open?.linkedName, false, "the kernel resolved the symlink")
        let hardLink = hits.first { $0.event.open?.name.string == dir + "/hard" }
        XCTAssertEqual(hardLink?.event.open?.path, "/etc/shadow", "through a hard link: \(hits.map(\.output))")
        XCTAssertEqual(hardLink?.event.open?.linkedName, true, "named by its inode")
        XCTAssertTrue(hardLink?.output.contains("file=/etc/shadow") ?? false)
    }

    func testSensitiveFileLookAlikesThroughLinksStayQuiet() throws {
        let dir = try directoryBelowEtc()
        // Named like sensitive files, but other files: a symlink called shadow to /etc/passwd, a
        // plain file called shadow, and a hard link to a plain file.
        try FileManager.default.createSymbolicLink(atPath: dir + "/shadow", withDestinationPath: "/etc/passwd")
        FileManager.default.createFile(atPath: dir + "/gshadow", contents: Data("x".utf8))
        FileManager.default.createFile(atPath: dir + "/plain", contents: Data("x".utf8))
        try FileManager.default.linkItem(atPath: dir + "/plain", toPath: dir + "/sudoers")
        let benign = try alerts("Sensitive file read", pushdown: true) {
            try sh("cat shadow gshadow sudoers \(dir)/shadow >/dev/null", cwd: dir)
        }
        XCTAssertTrue(benign.isEmpty, "\(benign.map(\.output))")
    }

    func testWriteBelowASystemDirectory() throws {
        let name = "/usr/local/bin/vigil-test-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: name) }
        let hits = try alerts("Write below a system directory") { try sh("echo x > \(name)") }
        XCTAssertTrue(hits.contains { $0.event.open?.path.string == name }, "\(hits.map(\.output))")
        let dir = try temporaryDirectory()
        let benign = try alerts("Write below a system directory") { try sh("mkdir -p usr/bin && echo x > usr/bin/tool", cwd: dir) }
        XCTAssertTrue(benign.isEmpty, "a relative usr/bin below /tmp: \(benign.map(\.output))")
    }

    func testPackageManagerRunInAContainer() throws {
        let container = try DockerTestEngine.startContainer(for: self)
        dockerRun(container, "/bin/busybox", "ln", "-sf", "/bin/busybox", "/bin/dpkg")
        let hits = try alerts("Package manager run in a container", metadata: true) { dockerRun(container, "dpkg", "--help") }
        XCTAssertTrue(hits.contains { $0.event.comm == "dpkg" && $0.event.container.fullID == container.id }, "\(hits.map(\.output))")
        let benign = try alerts("Package manager run in a container") { try sh("dpkg --version >/dev/null 2>&1 || true") }
        XCTAssertTrue(benign.isEmpty, "dpkg on the host is not in a container")
    }

    func testNetworkToolRunInAContainer() throws {
        let container = try DockerTestEngine.startContainer(for: self)
        dockerRun(container, "/bin/busybox", "ln", "-sf", "/bin/busybox", "/bin/nc")
        let hits = try alerts("Network tool run in a container", metadata: true) { dockerRun(container, "nc", "--help") }
        XCTAssertTrue(hits.contains { $0.event.comm == "nc" }, "\(hits.map(\.output))")
        dockerRun(container, "/bin/busybox", "ln", "-sf", "/bin/busybox", "/bin/ncdu")
        let benign = try alerts("Network tool run in a container", metadata: true) { dockerRun(container, "ncdu", "--help") }
        XCTAssertTrue(benign.isEmpty, "ncdu is not a network tool: \(benign.map(\.output))")
    }

    func testDownloadedScriptPipedIntoAShell() throws {
        let hits = try alerts("Downloaded script piped into a shell") { try sh("curl -s http://127.0.0.1:9/x 2>/dev/null | sh") }
        XCTAssertFalse(hits.isEmpty)
        let benign = try alerts("Downloaded script piped into a shell") { try sh("echo curl | cat >/dev/null") }
        XCTAssertTrue(benign.isEmpty, "\(benign.map(\.output))")
    }

    func testMemoryOrEnvironmentOfAnotherProcessRead() throws {
        let hits = try alerts("Memory or environment of another process read") {
            try sh("sleep 2 & cat /proc/$!/environ >/dev/null; kill $!")
        }
        XCTAssertTrue(hits.contains { $0.event.open?.path.string.hasSuffix("/environ") == true }, "\(hits.map(\.output))")
        let benign = try alerts("Memory or environment of another process read") {
            try sh("cat /proc/self/environ >/dev/null; exec cat /proc/$$/environ >/dev/null")
        }
        XCTAssertTrue(benign.isEmpty, "its own environment: \(benign.map(\.output))")
    }

    func testScheduledTaskOrSystemdUnitChanged() throws {
        try FileManager.default.createDirectory(atPath: "/etc/cron.d", withIntermediateDirectories: true)
        let name = "/etc/cron.d/vigil-test-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: name) }
        let hits = try alerts("Scheduled task or systemd unit changed") { try sh("echo '* * * * * root true' > \(name)") }
        XCTAssertTrue(hits.contains { $0.event.open?.path.string == name }, "\(hits.map(\.output))")
        let dir = try temporaryDirectory()
        let benign = try alerts("Scheduled task or systemd unit changed") { try sh("mkdir -p etc/cron.d && echo x > etc/cron.d/job", cwd: dir) }
        XCTAssertTrue(benign.isEmpty, "\(benign.map(\.output))")
    }

    func testShellHistoryDeletedOrTruncated() throws {
        let dir = try temporaryDirectory()
        FileManager.default.createFile(atPath: dir + "/.zsh_history", contents: Data("ls".utf8))
        FileManager.default.createFile(atPath: dir + "/.bash_history", contents: Data("ls".utf8))
        let hits = try alerts("Shell history deleted or truncated") { try sh(": > .bash_history; rm .zsh_history", cwd: dir) }
        XCTAssertTrue(hits.contains { $0.event.kind == .open }, "truncation: \(hits.map(\.output))")
        XCTAssertTrue(hits.contains { $0.event.comm == "rm" }, "deletion: \(hits.map(\.output))")
        let benign = try alerts("Shell history deleted or truncated") { try sh("cat .bash_history; : > .bash_history.bak", cwd: dir) }
        XCTAssertTrue(benign.isEmpty, "\(benign.map(\.output))")
    }

    func testTruncatingAnExistingHistoryFileAndRemovingOneByPathAlert() throws {
        let dir = try temporaryDirectory()
        FileManager.default.createFile(atPath: dir + "/.bash_history", contents: Data("ls\n".utf8))
        FileManager.default.createFile(atPath: dir + "/.ash_history", contents: Data("ls\n".utf8))
        let hits = try alerts("Shell history deleted or truncated") {
            try sh(": > .bash_history; rm -f '\(dir)/.ash_history'", cwd: dir)
        }
        XCTAssertTrue(hits.contains { $0.event.open?.filename == ".bash_history" && $0.event.open?.created == false }, "\(hits.map(\.output))")
        XCTAssertTrue(hits.contains { $0.event.comm == "rm" }, "rm by absolute path: \(hits.map(\.output))")
    }

    func testAFirstInteractiveBashExitCreatingItsHistoryStaysQuiet() throws {
        let dir = try temporaryDirectory()
        let history = dir + "/.bash_history"
        let set = try Self.rules.get()
        var filter = KernelFilter()
        filter.ignorePID = 0
        let harness = try TraceHarness(filter: filter)
        // A real interactive bash (-i) with no history file yet: on exit it writes one, opening it
        // with O_WRONLY|O_CREAT|O_TRUNC.
        let events = try harness.collect {
            try sh("printf 'echo hello\\nexit\\n' | HOME='\(dir)' HISTFILE='\(history)' bash --norc -i >/dev/null 2>&1", cwd: dir)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: history), "bash wrote no history file")
        let created = events.filter { $0.open?.path.string == history && $0.comm == "bash" }
        XCTAssertTrue(created.contains { ($0.open?.flags ?? 0) & UInt32(O_TRUNC) != 0 && $0.open?.created == true },
                      "bash's open of its new history file: \(created.compactMap(\.open).map { OpenFlags.describe($0.flags) })")
        let alerts = events.flatMap { e in set.matches(e).filter { $0.rule.name == "Shell history deleted or truncated" }.map { $0.output.render(e) } }
        XCTAssertTrue(alerts.isEmpty, "\(alerts)")
    }

    func testRemovingAFileThatOnlyMentionsHistoryStaysQuiet() throws {
        let dir = try temporaryDirectory()
        for name in ["notes_history_backup.txt", ".bash_history.bak", "my_history"] {
            FileManager.default.createFile(atPath: dir + "/" + name, contents: Data("x".utf8))
        }
        let benign = try alerts("Shell history deleted or truncated") {
            try sh("rm notes_history_backup.txt; rm -f .bash_history.bak '\(dir)/my_history'; unlink /nonexistent_history 2>/dev/null; true", cwd: dir)
        }
        XCTAssertTrue(benign.isEmpty, "\(benign.map(\.output))")
    }

    /// Runs a python3 program.
    private func python(_ program: String, cwd: String? = nil) throws { try runProgram("/usr/bin/python3", ["-c", program], cwd: cwd) }

    func testProcessAttachedToAnotherWithPtrace() throws {
        let hits = try alerts("Process attached to another with ptrace") {
            try python("""
            import ctypes, os, subprocess
            libc = ctypes.CDLL(None, use_errno=True)
            libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
            p = subprocess.Popen(['sleep', '30'])
            assert libc.ptrace(16, p.pid, None, None) == 0, ctypes.get_errno()  # PTRACE_ATTACH
            os.waitpid(p.pid, 0)
            libc.ptrace(17, p.pid, None, None)  # PTRACE_DETACH
            p.kill(); p.wait()
            """)
        }
        XCTAssertTrue(hits.contains { $0.output.contains("request=PTRACE_ATTACH") && $0.event.comm == "python3" }, "\(hits.map(\.output))")
        // A debugger's child asks to be traced by its parent: not an attach to another process.
        let benign = try alerts("Process attached to another with ptrace") {
            try python("""
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            pid = os.fork()
            if pid == 0:
                libc.ptrace(0, 0, None, None)  # PTRACE_TRACEME
                os._exit(0)
            os.waitpid(pid, 0)
            """)
        }
        XCTAssertTrue(benign.isEmpty, "\(benign.map(\.output))")
    }

    func testSetUIDOrSetGIDBitSet() throws {
        let dir = try temporaryDirectory()
        FileManager.default.createFile(atPath: dir + "/tool", contents: Data("x".utf8))
        let hits = try alerts("Set-uid or set-gid bit set") { try sh("chmod u+s tool; chmod g+s tool; chmod 644 tool", cwd: dir) }
        XCTAssertTrue(hits.contains { $0.output.contains("mode=04") }, "chmod u+s: \(hits.map(\.output))")
        XCTAssertTrue(hits.contains { $0.output.contains("mode=06") }, "chmod g+s: \(hits.map(\.output))")
        XCTAssertEqual(hits.count, 2, "\(hits.map(\.output))")
        let benign = try alerts("Set-uid or set-gid bit set") { try sh("chmod 755 tool; chmod +t tool; chmod 1777 tool; chmod a-s tool", cwd: dir) }
        XCTAssertTrue(benign.isEmpty, "plain chmod and the sticky bit: \(benign.map(\.output))")
    }

    func testLinkToASensitiveFileCreated() throws {
        let dir = try directoryBelowEtc()
        let hits = try alerts("Link to a sensitive file created") { try sh("ln -s /etc/shadow x; ln /etc/shadow y", cwd: dir) }
        XCTAssertTrue(hits.contains { $0.output.contains("target=/etc/shadow link=\(dir)/x") && $0.output.contains("syscall=symlink") }, "\(hits.map(\.output))")
        XCTAssertTrue(hits.contains { $0.output.contains("target=/etc/shadow link=\(dir)/y") && $0.output.contains("syscall=link") }, "\(hits.map(\.output))")
        let benign = try alerts("Link to a sensitive file created") { try sh("ln -s /etc/passwd p; ln /etc/passwd q; ln -s shadow r", cwd: dir) }
        XCTAssertTrue(benign.isEmpty, "\(benign.map(\.output))")
    }

    func testKernelModuleLoadAttempted() throws {
        let dir = try temporaryDirectory()
        // A bogus module: the kernel refuses it (ENOEXEC), the attempts are what the rule sees.
        FileManager.default.createFile(atPath: dir + "/bogus.ko", contents: Data(repeating: 0x41, count: 64))
        let attempt = {
            try self.python("""
            import ctypes, os
            libc = ctypes.CDLL(None, use_errno=True)
            data = b'A' * 64
            assert libc.syscall(175, data, len(data), b'') != 0   # init_module
            fd = os.open('bogus.ko', os.O_RDONLY)
            assert libc.syscall(313, fd, b'', 0) != 0             # finit_module
            """, cwd: dir)
        }
        func assertSeen(_ hits: [(event: Event, output: String)], _ hook: String) {
            for name in ["init_module", "finit_module"] {
                XCTAssertTrue(hits.contains { $0.output.contains("syscall=\(name)") && !$0.output.contains("result=SUCCESS") }, "\(hook): \(hits.map(\.output))")
            }
        }
        // The hook the default rules' syscall set chooses. A kernel without module support has
        // no tracepoint for the two (it does not implement them): per-syscall tracepoints cannot
        // see the attempts there, and the sensor says so instead of staying silent.
        let chosen = try run("Kernel module load attempted", attempt)
        let implemented = FileManager.default.fileExists(atPath: "/sys/kernel/tracing/events/syscalls/sys_enter_init_module")
        if chosen.notCaptured.isEmpty {
            assertSeen(chosen.hits, "the chosen hook")
        } else {
            XCTAssertFalse(implemented, "init_module has its tracepoint here, yet was not captured")
            XCTAssertEqual(chosen.notCaptured, ["init_module", "finit_module"])
            XCTAssertTrue(chosen.hits.isEmpty, "\(chosen.hits.map(\.output))")
        }
        // The generic hook sees every syscall, implemented or not.
        assertSeen(try run("Kernel module load attempted", syscallHook: "tp_btf", attempt).hits, "tp_btf")
        let benign = try alerts("Kernel module load attempted") { try sh("cat /proc/modules >/dev/null; ls /sys/module >/dev/null") }
        XCTAssertTrue(benign.isEmpty, "listing modules: \(benign.map(\.output))")
    }

    func testFilelessProgramExecutedFromMemory() throws {
        let hits = try alerts("Fileless program executed from memory") {
            try python("""
            import os
            fd = os.memfd_create('vigil-test', 0)
            os.write(fd, open('/bin/true', 'rb').read())
            pid = os.fork()
            if pid == 0:
                os.execve(fd, ['true'], {})   # fexecve: execveat(fd, "", AT_EMPTY_PATH)
            os.waitpid(pid, 0)
            """)
        }
        XCTAssertEqual(hits.count, 1, "\(hits.map(\.output))")
        XCTAssertTrue(hits.first?.output.contains("process=memfd:vigil-tes") ?? false, "\(hits.map(\.output))")
        let benign = try alerts("Fileless program executed from memory") {
            try python("""
            import os, subprocess
            fd = os.memfd_create('vigil-test', 0)
            os.write(fd, open('/bin/true', 'rb').read())
            os.lseek(fd, 0, 0); os.read(fd, 16)
            subprocess.run(['/bin/true'])
            """)
        }
        XCTAssertTrue(benign.isEmpty, "a memfd written and read, a program run from disk: \(benign.map(\.output))")
        // A program on disk executed through a descriptor of its file, as Debian's runc starts
        // `runc init` for every container (/dev/fd/N of /usr/sbin/runc): not fileless. It runs
        // for a moment, as runc init does, while the ring is read live (/proc/PID/exe is read).
        let onDisk = try liveAlerts({
            try runProgram("/usr/bin/python3", ["-c", """
            import os
            fd = os.open('/bin/sleep', os.O_RDONLY)
            pid = os.fork()
            if pid == 0:
                os.execve(fd, ['sleep', '0.5'], {})   # fexecve of a file on disk
            os.waitpid(pid, 0)
            """])
        }, include: { $0.kind == .exec && $0.comm.string == "sleep" })
        XCTAssertTrue(onDisk.events.contains { $0.kind == .exec && $0.comm.string == "sleep" }, "the exec was seen")
        XCTAssertFalse(onDisk.alerts.contains { $0.hasPrefix("Fileless") }, "a program on disk run through its descriptor: \(onDisk.alerts)")
    }

    /// What every Docker host does all day: a container started, run and removed raises no alert
    /// of the default rules from the runtime (dockerd, containerd, its shim, runc) or from the
    /// container's processes. (Debian's runc starts `runc init` through /dev/fd/N of its own
    /// binary, which the fileless rule once reported for every container.)
    func testStartingAContainerRaisesNoAlert() throws {
        try DockerTestEngine.require()
        let runtime: Set<String> = ["docker", "dockerd", "containerd", "containerd-shim", "runc", "runc:[0:PARENT]", "runc:[1:CHILD]", "runc:[2:INIT]"]
        let name = "vigil-ct-\(UUID().uuidString.prefix(8).lowercased())"
        addTeardownBlock { _ = DockerTestEngine.run(["docker", "rm", "-f", name]) }
        let started = try liveAlerts(metadata: true, {
            let result = DockerTestEngine.run(["docker", "run", "--rm", "--network", "none", "--name", name, DockerTestEngine.image, "sleep", "0.2"])
            guard result.status == 0 else { throw DockerTestEngine.Unavailable(description: "docker run failed (\(result.status)): \(result.errors)") }
        }, include: { runtime.contains($0.comm.string) || $0.container.name == name })
        XCTAssertTrue(started.events.contains { $0.kind == .exec && $0.comm.string == "runc" }, "the runtime's execs were seen")
        XCTAssertTrue(started.events.contains { $0.kind == .exec && $0.container.name == name }, "the container's exec was seen")
        XCTAssertTrue(started.alerts.isEmpty, "\(started.alerts)")
    }

    func testNamespaceChangedInAContainer() throws {
        // Docker's default seccomp profile refuses unshare and setns before any syscall tracepoint
        // runs (nothing sees those attempts); without it the kernel refuses them (no
        // CAP_SYS_ADMIN), after the tracepoint: the rule reports attempts, allowed or not.
        let container = try DockerTestEngine.startContainer(for: self, options: ["--security-opt", "seccomp=unconfined"])
        let hits = try alerts("Namespace changed in a container", metadata: true) {
            dockerRun(container, "/bin/busybox", "unshare", "-n", "true")
            dockerRun(container, "/bin/busybox", "nsenter", "-t", "1", "-n", "true")
        }
        XCTAssertTrue(hits.contains { $0.output.contains("syscall=unshare") && $0.event.container.fullID == container.id }, "\(hits.map(\.output))")
        XCTAssertTrue(hits.contains { $0.output.contains("syscall=setns") && $0.event.container.fullID == container.id }, "\(hits.map(\.output))")
        // docker exec itself: runc enters the container's namespaces with setns.
        let benign = try alerts("Namespace changed in a container", metadata: true) {
            dockerRun(container, "true")
            dockerExec(container, "ls / >/dev/null")
            try runProgram("/usr/bin/unshare", ["-n", "true"])
        }
        XCTAssertTrue(benign.isEmpty, "docker exec and unshare on the host: \(benign.map(\.output))")
    }

    func testShellHistoryMovedAwayIsCaught() throws {
        let dir = try temporaryDirectory()
        FileManager.default.createFile(atPath: dir + "/.bash_history", contents: Data("ls\n".utf8))
        let hits = try alerts("Shell history deleted or truncated") { try sh("mv .bash_history elsewhere", cwd: dir) }
        XCTAssertTrue(hits.contains { $0.event.comm == "mv" && $0.output.contains("syscall=rename") }, "\(hits.map(\.output))")
        let benign = try alerts("Shell history deleted or truncated") { try sh("mv elsewhere .bash_history; cp .bash_history copy; rm copy", cwd: dir) }
        XCTAssertTrue(benign.isEmpty, "moved back, copied, a copy removed: \(benign.map(\.output))")
    }

    func testLogFileDeletedOrMoved() throws {
        let name = "/var/log/vigil-test-\(UUID().uuidString.prefix(8))"
        FileManager.default.createFile(atPath: name + ".a", contents: Data("x".utf8))
        FileManager.default.createFile(atPath: name + ".b", contents: Data("x".utf8))
        let dir = try temporaryDirectory()
        defer { for suffix in [".a", ".b"] { try? FileManager.default.removeItem(atPath: name + suffix) } }
        let hits = try alerts("Log file deleted or moved") { try sh("rm '\(name).a'; mv '\(name).b' moved", cwd: dir) }
        XCTAssertTrue(hits.contains { $0.event.comm == "rm" && $0.output.contains(name + ".a") }, "\(hits.map(\.output))")
        XCTAssertTrue(hits.contains { $0.event.comm == "mv" && $0.output.contains(name + ".b") }, "\(hits.map(\.output))")
        let benign = try alerts("Log file deleted or moved") {
            try sh("mkdir -p var/log && echo x > var/log/syslog && rm var/log/syslog; echo x > '\(name).c' && rm -f /var/log/vigil-none-\(UUID().uuidString.prefix(4)); cat '\(name).c'", cwd: dir)
        }
        try? FileManager.default.removeItem(atPath: name + ".c")
        XCTAssertTrue(benign.isEmpty, "a var/log elsewhere, a failed rm, a log written and read: \(benign.map(\.output))")
    }

    func testFileCreatedBelowDev() throws {
        let name = "/dev/vigil-test-\(UUID().uuidString.prefix(8))"
        defer { for suffix in ["", ".p"] { try? FileManager.default.removeItem(atPath: name + suffix) } }
        let hits = try alerts("File created below /dev") { try sh("echo x > \(name); mknod \(name).p p") }
        XCTAssertTrue(hits.contains { $0.event.open?.path.string == name }, "created by open: \(hits.map(\.output))")
        XCTAssertTrue(hits.contains { $0.event.comm == "mknod" && $0.output.contains(name + ".p") }, "mknod: \(hits.map(\.output))")
        let shm = "/dev/shm/vigil-test-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: shm) }
        let benign = try alerts("File created below /dev") { try sh("echo x > /dev/null; echo x > \(name); echo x > \(shm); cat /dev/zero | head -c 1 >/dev/null") }
        XCTAssertTrue(benign.isEmpty, "writes to existing devices and files, a file in /dev/shm: \(benign.map(\.output))")
    }

    func testFileInATemporaryDirectoryExecuted() throws {
        let dir = try temporaryDirectory()
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: dir + "/dropper")
        let hits = try alerts("File in a temporary directory executed") { try runProgram(dir + "/dropper", []) }
        XCTAssertTrue(hits.contains { $0.event.process.executablePath?.string == dir + "/dropper" }, "\(hits.map(\.output))")
        let benign = try alerts("File in a temporary directory executed") { try runProgram("/bin/true", [], cwd: dir) }
        XCTAssertTrue(benign.isEmpty, "run from /tmp as cwd, but not from a file there: \(benign.map(\.output))")
    }
}
