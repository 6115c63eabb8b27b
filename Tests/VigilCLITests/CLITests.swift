import Foundation
import VigilBPF
import VigilTestSupport
import XCTest

/// The `vigil` binary run as a user would run it.
final class CLITests: XCTestCase {
    /// .build/<config>/vigil, next to the test bundle.
    static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("vigil").path

    struct Result { var status: Int32; var stdout: String; var stderr: String }

    /// Runs vigil; `whileRunning` is called once it started (with its pid), `signal` then sent.
    @discardableResult
    /// Runs the built `vigil` with `arguments`. With `untilTracing`, waits for `vigil trace` to say
    /// its sensors are attached ("vigil: tracing ...") before `whileRunning`, then sends `signal`.
    static func vigil(_ arguments: [String], signal: Int32? = nil, untilTracing: Bool = false,
                      whileRunning: (Int32) throws -> Void = { _ in }) throws -> Result {
        let (process, stdout, stderr) = try launchCapturing(binary, arguments)
        if untilTracing {
            let ready = waitUntil(seconds: 60) { stderr.sofar.contains("vigil: tracing ") || !process.isRunning }
            XCTAssertTrue(ready && process.isRunning, "vigil trace did not start tracing: \(stderr.sofar)")
        }
        try whileRunning(process.processIdentifier)
        if let signal { kill(process.processIdentifier, signal) }
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: stdout.text(), stderr: stderr.text())
    }

    func testHelpListsTheCommands() throws {
        let result = try Self.vigil(["--help"])
        XCTAssertEqual(result.status, 0)
        for command in ["probe", "trace", "daemon", "create", "ls", "rm", "status", "events", "alerts", "containers", "fields", "version"] {
            XCTAssertTrue(result.stdout.contains(command), "help mentions \(command):\n\(result.stdout)")
        }
    }

    func testProbeJSONMatchesTheLibrary() throws {
        try requireKernel()
        let result = try Self.vigil(["probe", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: String]])
        let byName = Dictionary(uniqueKeysWithValues: rows.map { ($0["feature"] ?? "", $0) })
        for feature in [Feature.attachTracepoint, .attachRawTracepoint, .attachTpBTF, .mapRingBuffer] {
            XCTAssertEqual(byName[feature.rawValue]?["state"], "available", feature.rawValue)
        }
        for feature in [Feature.attachKprobe, .attachFentry, .attachLSM] {
            let expected = FeatureProbes.shared.result(feature)
            XCTAssertEqual(byName[feature.rawValue]?["state"], expected.state.rawValue, feature.rawValue)
            if !expected.isAvailable { XCTAssertFalse(byName[feature.rawValue]?["reason"]?.isEmpty ?? true, "\(feature.rawValue) says why") }
        }
        let table = try Self.vigil(["probe"])
        XCTAssertTrue(table.stdout.contains("attach:kprobe"))
        XCTAssertTrue(table.stdout.contains("available,"), table.stdout)
    }

    /// `vigil trace --event shell` shows the line typed into an interactive bash on a pty, with
    /// evt.type bash_readline, and nothing of the default kinds.
    func testTraceShowsALineTypedIntoAnInteractiveBash() throws {
        try requireKernel(.attachUprobe, .attachTracepoint, .attachTpBTF)
        let line = "echo vigil-cli-shell-\(UUID().uuidString.prefix(8))"
        let result = try Self.vigil(["trace", "-o", "json", "--event", "shell"], signal: SIGTERM, untilTracing: true) { _ in
            try PtyTerminal.run("env -i TERM=dumb bash --norc --noprofile -i", typing: [line])
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        let objects = try VigilJSON.objects(lines: result.stdout)
        let event = try XCTUnwrap(objects.first { ($0["shell.line"] as? String) == line }, result.stdout)
        XCTAssertEqual(event["evt.type"] as? String, "bash_readline")
        XCTAssertEqual(event["evt.kind"] as? String, "shell")
        XCTAssertEqual(event["proc.name"] as? String, "bash")
        XCTAssertEqual(event["container.id"] as? String, "host")
        XCTAssertTrue((event["proc.ttyname"] as? String)?.hasPrefix("pts") == true, "\(event)")
        XCTAssertTrue(objects.allSatisfy { ($0["evt.kind"] as? String) == "shell" }, "--event shell shows only shell lines")
    }

    /// A process whose argument is not UTF-8 (any host process may be) is written with \udcXX
    /// escapes that JSONSerialization refuses; Vigil's parser reads the line back.
    func testTraceJSONOfAnArgumentThatIsNotUTF8ReadsBack() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF)
        let marker = "vigil-bytes-\(UUID().uuidString.prefix(8))"
        let result = try Self.vigil(["trace", "-o", "json", "--event", "exec"], signal: SIGTERM, untilTracing: true) { _ in
            let p = try Process.run(URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", "/bin/true \(marker)\"$(printf '\\377')\""])
            p.waitUntilExit()
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        // The byte 0xff is written as \udcff (the shell's own exec shows the printf instead).
        let line = try XCTUnwrap(result.stdout.split(separator: "\n").first { $0.contains(marker + "\\udcff") }, result.stdout)
        XCTAssertThrowsError(try JSONSerialization.jsonObject(with: Data(line.utf8)))
        let exec = try XCTUnwrap(try VigilJSON.value(line) as? [String: Any])
        XCTAssertEqual(exec["proc.name"] as? String, "true")
        XCTAssertEqual(exec["proc.args"] as? String, marker + "\u{FFFD}")
    }

    static let signalsBundle = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/bundles/signals").path

    /// Kills a fresh `sleep 60` with SIGKILL from /bin/kill; returns the sleep's pid.
    static func killASleep() throws -> Int32 {
        let sleeper = try Process.run(URL(fileURLWithPath: "/bin/sleep"), arguments: ["60"])
        let killer = try Process.run(URL(fileURLWithPath: "/bin/kill"), arguments: ["-9", String(sleeper.processIdentifier)])
        killer.waitUntilExit()
        sleeper.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.3)
        return sleeper.processIdentifier
    }

    /// `vigil trace --program DIR` loads the bundle and shows only its events: a real kill -9 of
    /// a sleep, with the bundle's members as prog.signals.* in JSON and the variant it runs on.
    func testTraceProgramShowsABundlesEventsAsJSON() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        var target: Int32 = 0
        let result = try Self.vigil(["trace", "-o", "json", "--program", Self.signalsBundle], signal: SIGTERM, untilTracing: true) { _ in
            target = try Self.killASleep()
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("bundle signals: generate: tracepoint"), result.stderr)
        let objects = result.stdout.split(separator: "\n").compactMap { try? VigilJSON.value(String($0)) as? [String: Any] }
        XCTAssertTrue(objects.allSatisfy { $0["evt.kind"] as? String == "program" }, "only the bundle's events without --event")
        let kill = try XCTUnwrap(objects.first { ($0["prog.signals.target_pid"] as? NSNumber)?.int32Value == target }, result.stdout)
        XCTAssertEqual(kill["evt.type"] as? String, "signals")
        XCTAssertEqual((kill["prog.signals.sig"] as? NSNumber)?.intValue, 9)
        XCTAssertEqual(kill["prog.signals.target_comm"] as? String, "sleep")
        XCTAssertEqual(kill["proc.name"] as? String, "kill")
    }

    /// `vigil trace --program DIR --alerts --rules FILE`: a rule on the bundle's fields alerts
    /// on a real kill -9 of a sleep, its output filled from the record.
    func testTraceProgramAlertsOnABundlesFields() throws {
        try requireKernel(.attachTracepoint, .mapRingBuffer)
        let rules = NSTemporaryDirectory() + "vigil-bundle-rules-\(UUID().uuidString.prefix(8)).yaml"
        try """
            - rule: SIGKILL to sleep
              desc: a bundle's fields in a rule
              condition: prog.signals.sig = 9 and prog.signals.target_comm = "sleep"
              output: "%proc.name killed %prog.signals.target_comm (%prog.signals.target_pid)"
              priority: WARNING
            """.write(toFile: rules, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: rules) }
        var target: Int32 = 0
        let result = try Self.vigil(["trace", "--program", Self.signalsBundle, "--alerts", "--no-default-rules", "--rules", rules],
                                    signal: SIGTERM, untilTracing: true) { _ in
            target = try Self.killASleep()
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("kill killed sleep (\(target))"), result.stdout + result.stderr)
    }

    func testTraceJSONAndSummaryOnSIGTERM() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF)
        let marker = "vigil-cli-\(UUID().uuidString.prefix(8))"
        let result = try Self.vigil(["trace", "-o", "json", "--event", "exec,open"], signal: SIGTERM, untilTracing: true) { _ in
            let p = try Process.run(URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", "cat /nonexistent/\(marker) 2>/dev/null; true"])
            p.waitUntilExit()
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        let objects = try VigilJSON.objects(lines: result.stdout)
        let open = try XCTUnwrap(objects.first { ($0["fd.name"] as? String) == "/nonexistent/\(marker)" }, "the open was traced")
        XCTAssertEqual(open["evt.res"] as? String, "ENOENT")
        XCTAssertEqual(open["proc.name"] as? String, "cat")
        XCTAssertEqual(open["container.id"] as? String, "host")
        XCTAssertTrue(objects.contains { ($0["evt.type"] as? String) == "execve" && ($0["proc.args"] as? String)?.contains(marker) == true })
        XCTAssertFalse(objects.contains { ($0["evt.kind"] as? String) == "fork" }, "--event exec,open shows no forks")
        XCTAssertTrue(result.stderr.contains("events shown"), result.stderr)
        XCTAssertTrue(result.stderr.contains("filtered in kernel") && result.stderr.contains("lost"), result.stderr)
    }

    func testTraceTableEscapesAndWritesToAFile() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF)
        let file = NSTemporaryDirectory() + "vigil-trace-\(UUID().uuidString.prefix(8)).txt"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try Self.vigil(["trace", "--event", "open", "--comm", "cat", "--output", file], signal: SIGINT, untilTracing: true) { _ in
            let p = try Process.run(URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", "cat \"$(printf '/tmp/x\\033[31my')\" 2>/dev/null; true"])
            p.waitUntilExit()
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        let text = try String(contentsOfFile: file, encoding: .utf8)
        XCTAssertTrue(text.contains("/tmp/x\\e[31my"), "the escape sequence is shown, not run: \(text.suffix(500))")
        XCTAssertFalse(text.contains("\u{1b}"))
        XCTAssertTrue(text.hasPrefix("TIME"))
    }

    func testTraceTableKeepsEveryHostileEventOnOneLine() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF)
        let directory = NSTemporaryDirectory() + "vigil-hostile-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + ".txt"
        defer { try? FileManager.default.removeItem(atPath: file) }
        // Names with a newline and a forged row, terminal escapes (clear screen, window title),
        // C1 CSI, bytes that are not UTF-8, a bidi override; opened, then run as a program with
        // the same names as arguments.
        let script = """
        import os, shutil, sys
        d = sys.argv[1].encode()
        names = [b"forged\\n12:00:00.000000000 host 1 0 sshd open etc-shadow", b"\\x1b[2J\\x1b]0;pwned\\x07t",
                 b"\\x80\\xff\\xfe-not-utf8", "c1\\u009b31m-bidi\\u202e".encode()]
        for n in names:
            open(d + b"/" + n, "wb").close()
        prog = d + b"/" + names[0]
        shutil.copy("/bin/true", prog)
        pid = os.fork()
        if pid == 0:
            os.execv(prog, names)
        os.waitpid(pid, 0)
        """
        let result = try Self.vigil(["trace", "--event", "exec,open", "--output", file], signal: SIGINT, untilTracing: true) { _ in
            let p = try Process.run(URL(fileURLWithPath: "/usr/bin/python3"), arguments: ["-c", script, directory])
            p.waitUntilExit()
            Thread.sleep(forTimeInterval: 0.5)
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: file)))
        let text = String(decoding: bytes, as: UTF8.self)
        XCTAssertEqual(bytes.filter { ($0 < 0x20 && $0 != 0x0a) || $0 == 0x7f }, [], "no raw control byte")
        XCTAssertEqual(text.unicodeScalars.filter { (0x80...0x9f).contains($0.value) || $0.value == 0x202e }, [], "no C1 or bidi control")
        let lines = text.split(separator: "\n").dropFirst()
        let mine = lines.filter { $0.contains(directory) }
        XCTAssertGreaterThanOrEqual(mine.count, 5, "four opens and the exec: \(mine)")
        for line in lines {
            let time = Array(line.prefix(19))
            let isRow = time.count == 19 && time.enumerated().allSatisfy { index, c in
                index == 2 || index == 5 ? c == ":" : index == 8 ? c == "." : index == 18 ? c == " " : c.isNumber
            }
            XCTAssertTrue(isRow, "every line is one event's row: \(line)")
        }
        XCTAssertTrue(lines.filter { $0.contains("sshd open etc-shadow") && !$0.contains("import os") }.allSatisfy { $0.contains("forged\\n12:00:00") },
                      "the forged row stays inside its event's line: \(lines.filter { $0.contains("sshd open etc-shadow") })")
        XCTAssertTrue(mine.contains { $0.contains("forged\\n12:00:00") }, "\(mine)")
        XCTAssertTrue(mine.contains { $0.contains("\\e[2J\\e]0;pwned\\x07t") }, "\(mine)")
        XCTAssertTrue(mine.contains { $0.contains("\\x80\\xff\\xfe-not-utf8") }, "\(mine)")
        XCTAssertTrue(mine.contains { $0.contains("c1\\x9b31m-bidi\\u{202e}") }, "\(mine)")
    }

    func testOutputToADeviceWritesToTheDevice() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF)
        let result = try Self.vigil(["trace", "--event", "exec", "--output", "/dev/null", "--duration", "1"])
        XCTAssertEqual(result.status, 0, result.stderr)
        var st = stat()
        XCTAssertEqual(stat("/dev/null", &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFCHR, "/dev/null is still the device, not a file put in its place")
    }

    func testBadArgumentsAreRefusedWithTheReason() throws {
        let result = try Self.vigil(["trace", "--event", "bogus"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("unknown event 'bogus'"), result.stderr)
        let typo = try Self.vigil(["trace", "--event", "conect"])
        XCTAssertNotEqual(typo.status, 0)
        XCTAssertTrue(typo.stderr.contains("unknown event 'conect'") && typo.stderr.contains("closest syscalls: connect"), typo.stderr)
        let set = try Self.vigil(["trace", "--set", "nett"])
        XCTAssertTrue(set.stderr.contains("unknown set 'nett'") && set.stderr.contains("net"), set.stderr)
    }

    func testTraceAnySyscallWithItsArguments() throws {
        try requireKernel(.attachTpBTF)
        let marker = "/nonexistent/vigil-cli-\(UUID().uuidString.prefix(8))"
        let result = try Self.vigil(["trace", "-o", "json", "--event", "unlinkat,syscall:exit_group", "--comm", "rm"],
                                    signal: SIGTERM, untilTracing: true) { _ in
            let p = try Process.run(URL(fileURLWithPath: "/bin/rm"), arguments: ["-f", marker])
            p.waitUntilExit()
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        let objects = try VigilJSON.objects(lines: result.stdout)
        // Another rm on the machine (any user's) is traced too: the test's own is the one naming the marker.
        let unlink = try XCTUnwrap(objects.first { object in
            (object["evt.type"] as? String) == "unlinkat"
                && ((object["args"] as? [[String: String]]) ?? []).contains { $0["value"] == marker }
        }, result.stdout)
        XCTAssertEqual(unlink["evt.res"] as? String, "ENOENT")
        XCTAssertEqual(unlink["evt.failed"] as? Bool, true)
        XCTAssertEqual(unlink["evt.category"] as? String, "fs")
        let args = try XCTUnwrap(unlink["args"] as? [[String: String]])
        XCTAssertEqual(args.map { $0["name"] ?? "" }, ["dfd", "pathname", "flag"])
        XCTAssertEqual(args[1], ["name": "pathname", "type": "path", "value": marker])
        let exit = try XCTUnwrap(objects.first { ($0["evt.type"] as? String) == "exit_group" }, "exit_group reported at entry")
        XCTAssertEqual(exit["args"] as? [[String: String]], [["name": "error_code", "type": "int", "value": "0"]])
        XCTAssertTrue(objects.allSatisfy { ["unlinkat", "exit_group"].contains($0["evt.type"] as? String ?? "") })
        XCTAssertTrue(result.stderr.contains("tracing 2 syscalls"), result.stderr)
    }

    /// `--fields`: each object has exactly the fields named, in that order (the argument of
    /// proc.aname[1] in its key), null where the event has none; a name the catalogue lacks is
    /// refused before anything loads.
    func testTraceFieldsWritesOnlyTheFieldsNamedInOrder() throws {
        try requireKernel(.attachTpBTF)
        let marker = "/nonexistent/vigil-fields-\(UUID().uuidString.prefix(8))"
        let fields = ["evt.type", "proc.name", "proc.pid", "proc.aname[1]", "evt.args", "evt.res", "fd.name", "container.name"]
        let result = try Self.vigil(["trace", "-o", "json", "--event", "unlinkat", "--comm", "rm", "--fields", fields[..<4].joined(separator: ","),
                                     "--fields", fields[4...].joined(separator: ",")], signal: SIGTERM, untilTracing: true) { _ in
            let p = try Process.run(URL(fileURLWithPath: "/bin/rm"), arguments: ["-f", marker])
            p.waitUntilExit()
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        let line = try XCTUnwrap(result.stdout.split(separator: "\n").first { $0.contains(marker) }, result.stdout)
        let keys = try XCTUnwrap(String(line).matches(of: /"([a-z0-9_.\[\]]+)":/).map { String($0.output.1) })
        XCTAssertEqual(keys, fields, String(line))
        let object = try XCTUnwrap(try VigilJSON.objects(lines: String(line)).first)
        XCTAssertEqual(object["evt.type"] as? String, "unlinkat")
        XCTAssertEqual(object["proc.name"] as? String, "rm")
        XCTAssertEqual(object["evt.res"] as? String, "ENOENT")
        XCTAssertTrue((object["evt.args"] as? String ?? "").contains("pathname=\(marker)"), String(line))
        XCTAssertTrue(object["fd.name"] is NSNull, "unlinkat acts on no fd: null, \(line)")
        XCTAssertEqual(object["container.name"] as? String, "host")

        let unknown = try Self.vigil(["trace", "-o", "json", "--fields", "proc.name,proc.nmae"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("--fields: no field 'proc.nmae' (did you mean 'proc.name'?)"), unknown.stderr)
        let table = try Self.vigil(["trace", "--fields", "proc.name"])
        XCTAssertNotEqual(table.status, 0)
        XCTAssertTrue(table.stderr.contains("--fields chooses the fields of events written as JSON"), table.stderr)
    }
}

/// `vigil trace --summary` against programs whose syscalls are known.
final class TraceSummaryCLITests: XCTestCase {
    /// Tests/Fixtures/summary-helper.c, static (no loader opens): its child calls getpid N times,
    /// it then fails to open a missing file M times and exits with 3.
    func testSummaryOfACommandCountsItAndItsChildren() throws {
        try requireKernel(.attachTpBTF)
        let helper = try compileFixture("summary-helper", flags: ["-static"])
        let missing = "/nonexistent/vigil-summary-\(UUID().uuidString.prefix(8))"
        let getpids = 1000 + Int.random(in: 0..<1000), opens = 5 + Int.random(in: 0..<20)
        let result = try CLITests.vigil(["trace", "--summary", "-o", "json", "--event", "getpid,openat",
                                         "--", helper, String(getpids), String(opens), missing])
        XCTAssertEqual(result.status, 3, "vigil exits with the command's status: \(result.stderr)")
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], result.stdout)
        let rows = try XCTUnwrap(object["syscalls"] as? [[String: Any]])
        let byName = Dictionary(uniqueKeysWithValues: rows.map { ($0["syscall"] as? String ?? "", $0) })
        XCTAssertEqual(Set(byName.keys), ["getpid", "openat"], result.stdout)
        XCTAssertEqual(object["lost"] as? Int, 0)
        let getpid = try XCTUnwrap(byName["getpid"]), openat = try XCTUnwrap(byName["openat"])
        XCTAssertEqual(getpid["calls"] as? Int, getpids, "the forked child's calls")
        XCTAssertEqual(getpid["errors"] as? Int, 0)
        XCTAssertEqual(openat["calls"] as? Int, opens)
        XCTAssertEqual(openat["errors"] as? Int, opens)
        for row in [getpid, openat] {
            let total = try XCTUnwrap(row["total_ns"] as? Int), calls = try XCTUnwrap(row["calls"] as? Int)
            let max = try XCTUnwrap(row["max_ns"] as? Int), average = try XCTUnwrap(row["avg_ns"] as? Int)
            XCTAssertGreaterThan(total, 0)
            XCTAssertEqual(average, total / calls)
            XCTAssertTrue(average <= max && max <= total, "\(row)")
        }
        let sum = try XCTUnwrap(object["total"] as? [String: Any])
        XCTAssertEqual(sum["calls"] as? Int, getpids + opens)
        XCTAssertEqual(sum["errors"] as? Int, opens)
    }

    /// Without a terminal the table is printed once, at the end (here: SIGTERM), for the host.
    func testSummaryOfTheHostAsATableOnSIGTERM() throws {
        try requireKernel(.attachTpBTF)
        let helper = try compileFixture("summary-helper", flags: ["-static"])
        let missing = "/nonexistent/vigil-summary-\(UUID().uuidString.prefix(8))"
        let result = try CLITests.vigil(["trace", "--summary", "--event", "getpid"], signal: SIGTERM, untilTracing: true) { _ in
            let p = try Process.run(URL(fileURLWithPath: helper), arguments: ["300", "0", missing])
            p.waitUntilExit()
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n")
        XCTAssertEqual(lines.first, "% time     seconds  usecs/call  max usecs     calls    errors syscall", result.stdout)
        XCTAssertEqual(lines.filter { $0.hasPrefix("% time") }.count, 1, "printed once: \(result.stdout)")
        let getpid = try XCTUnwrap(lines.first { $0.hasSuffix(" getpid") }, result.stdout).split(separator: " ")
        XCTAssertGreaterThanOrEqual(Int(getpid[4]) ?? 0, 300, "at least the helper's calls: \(result.stdout)")
        XCTAssertTrue(lines.last?.hasSuffix(" total") ?? false, result.stdout)
        XCTAssertFalse(result.stdout.contains("\u{1B}"), "no terminal codes when not a terminal")
    }
}

/// `vigil trace -- CMD`: events and alerts of one command and its children, as `strace -f` or
/// `perf trace` run one.
final class TraceCommandCLITests: XCTestCase {
    /// Tests/Fixtures/summary-helper.c (its child calls getpid N times, it then fails to open a
    /// missing file M times and exits with 3), while another program calls getpid and opens the
    /// same missing file on the host: only the command's tree is shown, every one of its calls.
    func testEventsOfACommandAndItsChildrenOnly() throws {
        try requireKernel(.attachTpBTF)
        let helper = try compileFixture("summary-helper", flags: ["-static"])
        let missing = "/nonexistent/vigil-command-\(UUID().uuidString.prefix(8))"
        let other = try Process.run(URL(fileURLWithPath: "/usr/bin/python3"), arguments: ["-c", """
            import os, sys
            while True:
                os.getpid()
                try: os.open(sys.argv[1], os.O_RDONLY)
                except OSError: pass
            """, missing])
        defer { other.terminate(); other.waitUntilExit() }
        let getpids = 500 + Int.random(in: 0..<500), opens = 5 + Int.random(in: 0..<20)
        let result = try CLITests.vigil(["trace", "-o", "json", "--event", "fork,getpid,openat",
                                         "--", helper, String(getpids), String(opens), missing])
        XCTAssertEqual(result.status, 3, "vigil exits with the command's status: \(result.stderr)")
        let events = try VigilJSON.objects(lines: result.stdout)
        let fork = try XCTUnwrap(events.first { $0["evt.kind"] as? String == "fork" }, "the helper's fork: \(result.stdout.prefix(2000))")
        let root = try XCTUnwrap(fork["proc.pid"] as? Int), child = try XCTUnwrap(fork["evt.child_pid"] as? Int, "\(fork)")
        XCTAssertEqual(events.filter { $0["evt.kind"] as? String == "exec" }.count, 0, "the exec it is followed by is not asked for")
        // From the command's exec on: not the calls of vigil's spawned child before it (its
        // signal handlers reset, under vigil's name).
        let comm = String((helper as NSString).lastPathComponent.prefix(15))
        XCTAssertEqual(Set(events.compactMap { $0["proc.name"] as? String }), [comm])
        XCTAssertEqual(Set(events.compactMap { $0["proc.pid"] as? Int }), [root, child], "nothing of the other program (\(other.processIdentifier))")
        let calls = events.filter { $0["evt.kind"] as? String == "syscall" }
        XCTAssertEqual(calls.filter { $0["evt.type"] as? String == "getpid" && $0["proc.pid"] as? Int == child }.count, getpids)
        func filename(_ call: [String: Any]) -> String? {
            (call["args"] as? [[String: Any]])?.first { $0["name"] as? String == "filename" }?["value"] as? String
        }
        let failed = calls.filter { $0["evt.type"] as? String == "openat" && filename($0) == missing }
        XCTAssertEqual(failed.count, opens, "every failed open of the helper")
        XCTAssertTrue(failed.allSatisfy { $0["evt.res"] as? String == "ENOENT" && $0["proc.pid"] as? Int == root })
        XCTAssertTrue(result.stderr.contains(" 0 lost"), result.stderr)
    }

    /// With --alerts the rules see only the command's tree; a command that cannot run is exit 127.
    func testAlertsOfACommandAndACommandThatCannotRun() throws {
        try requireKernel(.attachTpBTF)
        let helper = try compileFixture("summary-helper", flags: ["-static"])
        let directory = try temporaryDirectory()
        let missing = directory + "/missing", rules = directory + "/rules.yaml"
        try """
            - rule: Missing file opened
              desc: test
              condition: evt.type = openat and evt.arg.filename = "\(missing)"
              output: opened %evt.arg.filename by %proc.name (%proc.pid)
              priority: NOTICE
            """.write(toFile: rules, atomically: true, encoding: .utf8)
        let other = try Process.run(URL(fileURLWithPath: "/usr/bin/python3"), arguments: ["-c", """
            import os, sys
            while True:
                try: os.open(sys.argv[1], os.O_RDONLY)
                except OSError: pass
            """, missing])
        defer { other.terminate(); other.waitUntilExit() }
        let opens = 3 + Int.random(in: 0..<10)
        let result = try CLITests.vigil(["trace", "--alerts", "--no-default-rules", "--rules", rules, "-o", "json",
                                         "--", helper, "10", String(opens), missing])
        XCTAssertEqual(result.status, 3, result.stderr)
        let alerts = try VigilJSON.objects(lines: result.stdout)
        XCTAssertEqual(alerts.count, opens, "the helper's opens alone: \(result.stdout.prefix(2000))")
        XCTAssertTrue(alerts.allSatisfy { ($0["output"] as? String ?? "").contains("by summary-helper") }, result.stdout)

        let both = try CLITests.vigil(["trace", "--pid", "1", "--", "/bin/true"])
        XCTAssertNotEqual(both.status, 0)
        XCTAssertTrue(both.stderr.contains("--pid and a command (after --) do not go together"), both.stderr)

        let absent = try CLITests.vigil(["trace", "--", directory + "/no-such-program"])
        XCTAssertEqual(absent.status, 127, absent.stderr)
        XCTAssertTrue(absent.stderr.contains("cannot run '\(directory)/no-such-program'"), absent.stderr)
    }
}

/// `vigil containers ls` against a real Docker engine.
final class ContainersCLITests: XCTestCase {
    func testListShowsARunningContainerWithItsPids() throws {
        let container = try DockerTestEngine.startContainer(for: self)
        let result = try CLITests.vigil(["containers", "ls", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let rows = try result.stdout.split(separator: "\n").map { try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let row = try XCTUnwrap(rows.first { ($0["id"] as? String) == container.id }, result.stdout)
        XCTAssertEqual(row["name"] as? String, container.name)
        XCTAssertEqual(row["image"] as? String, DockerTestEngine.image)
        XCTAssertEqual(row["runtime"] as? String, "docker")
        XCTAssertFalse((row["pids"] as? [Int])?.isEmpty ?? true, "the container's sleep")
        let table = try CLITests.vigil(["containers", "ls"])
        XCTAssertTrue(table.stdout.contains(String(container.id.prefix(12))) && table.stdout.contains(container.name))
    }
}
