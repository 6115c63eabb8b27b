import Foundation
import VigilActions
import VigilEvents
import VigilRules
import VigilSensors
import VigilTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Event data is hostile: file names and argv with newlines, terminal escapes, other control
/// bytes, invalid UTF-8 and 128 KiB of arguments, made by real syscalls and read back through
/// the real sensors, then written out in every output form: the table line, alert text, JSON,
/// syslog (a real unix socket), email (the real aiosmtpd), webhook (a real HTTP server) and the
/// exec action's argv.
final class HostileInputTests: XCTestCase {
    /// Names no output may let paint a terminal, forge a line, or lose bytes of.
    static let hostileNames: [[UInt8]] = [
        Array("forged\n12:00:00.000000000 host          1       0       sshd             open      etc-shadow O_RDONLY fd=3".utf8),
        [0x1b] + Array("[2J".utf8) + [0x1b] + Array("]0;pwned".utf8) + [0x07] + Array("after-title".utf8),
        [0x80, 0xff, 0xfe] + Array("not-utf8".utf8) + [0xc3, 0x41, 0xed, 0xa0, 0x80],
        Array("cr\rtab\tdel".utf8) + [0x7f, 0xc2, 0x9b] + Array("31m back\\slash \u{202E}reversed".utf8),
    ]

    /// Bytes that must never reach a terminal raw: C0 controls (newline included), DEL, and the
    /// C1 controls as UTF-8 (U+0080...U+009F; U+009B is a one-byte CSI on some terminals).
    static func rawControls(_ text: String) -> [UInt32] {
        text.unicodeScalars.map(\.value).filter { $0 < 0x20 || $0 == 0x7f || (0x80...0x9f).contains($0) }
    }

    private func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-hostile-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// A NUL-terminated copy of `bytes` (freed by the caller).
    private static func cString(_ bytes: [UInt8]) -> UnsafeMutablePointer<CChar> {
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
        for (index, byte) in bytes.enumerated() { pointer[index] = CChar(bitPattern: byte) }
        pointer[bytes.count] = 0
        return pointer
    }

    /// Creates (and closes) the file at the byte path `path`.
    private func create(_ path: [UInt8]) throws {
        let name = Self.cString(path)
        defer { name.deallocate() }
        let fd = open(name, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw TestSetupFailure(description: "cannot create \(ByteString(path).escapedForTerminal): errno \(errno)") }
        close(fd)
    }

    /// Runs the program at the byte path `path` with the byte argv `argv` (posix_spawn, no shell) to completion.
    private func spawn(_ path: [UInt8], _ argv: [[UInt8]]) throws {
        let program = Self.cString(path)
        let arguments: [UnsafeMutablePointer<CChar>?] = argv.map { Self.cString($0) } + [nil]
        defer {
            program.deallocate()
            arguments.forEach { $0?.deallocate() }
        }
        var pid = pid_t()
        let status = posix_spawn(&pid, program, nil, nil, arguments, environ)
        guard status == 0 else { throw TestSetupFailure(description: "posix_spawn: \(String(cString: strerror(status)))") }
        var result: Int32 = 0
        while waitpid(pid, &result, 0) < 0 && errno == EINTR {}
    }

    func testHostileNamesAndArgumentsStayEscapedAndBoundedInEveryOutput() throws {
        let directory = try directory()
        let base = Array(directory.utf8) + [0x2f]
        let paths = Self.hostileNames.map { base + $0 }
        // A copy of /bin/true whose own name is hostile, run with hostile arguments, and with
        // 128 KiB of arguments (64 of 2 KiB, each with a newline and an escape).
        let program = base + Array("prog\nforged ".utf8) + [0x1b] + Array("[2J".utf8) + [0xff]
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: directory + "/true")
        let programName = Self.cString(program)
        defer { programName.deallocate() }
        XCTAssertEqual(rename(directory + "/true", programName), 0)
        let chunk = Array(String(repeating: "A", count: 1000).utf8) + [0x0a, 0x1b] + Array("[31m".utf8) + Array(String(repeating: "B", count: 1042).utf8)
        let long = Array(repeating: chunk, count: 64)

        var filter = KernelFilter()
        filter.ignorePID = 0  // the opens are this process's own: Vigil's self-exclusion off
        let harness = try TraceHarness(filter: filter)
        let events = try harness.collect {
            for path in paths { try create(path) }
            try spawn(program, [Self.hostileNames[1]] + Self.hostileNames)
            try spawn(program, [Array("long".utf8)] + long)
            try spawn(program, [Array("binary".utf8)] + Array(repeating: Array(repeating: 0xff, count: 2047), count: 64))
        }
        let opens = paths.map { path in events.first { $0.open?.path.bytes == path } }
        let execs = events.filter { $0.exec.map { $0.filename.bytes == program } ?? false }
        XCTAssertEqual(opens.compactMap { $0 }.count, paths.count, "an open event per hostile name: \(events.compactMap { $0.open?.path.escapedForTerminal }.filter { $0.contains("vigil-hostile") })")
        XCTAssertEqual(execs.count, 3, "the three execs of the hostile program")
        guard opens.allSatisfy({ $0 != nil }), execs.count == 3 else { return }
        let hostile = opens.compactMap { $0 } + execs
        let longExec = try XCTUnwrap(execs.first { $0.exec?.argumentsTruncated ?? false }, "128 KiB of arguments are truncated and say so")
        XCTAssertEqual(execs.filter { $0.exec?.argumentsTruncated ?? false }.count, 2)
        XCTAssertEqual(Array(execs.first { !($0.exec?.argumentsTruncated ?? true) }?.exec?.arguments.dropFirst().map(\.bytes) ?? []),
                       Self.hostileNames, "the hostile argv as the kernel saw it")

        // The table: one event, one line, no raw control byte, bounded.
        for event in hostile {
            let row = EventFormat.tableRow(event)
            XCTAssertEqual(Self.rawControls(row), [], row)
            XCTAssertLessThan(row.utf8.count, 4 * 4096 + 512, "bounded by what the kernel keeps, escaped")
        }
        XCTAssertTrue(EventFormat.tableRow(longExec).contains("[args truncated]"))

        // JSON: parses, round-trips the exact bytes, no raw control byte.
        for event in hostile {
            let line = EventFormat.json(event)
            XCTAssertEqual(line.utf8.filter { $0 < 0x20 }, [], line)
            let back = try EventJSON.event(line)
            XCTAssertEqual(back.open?.path, event.open?.path)
            XCTAssertEqual(back.exec?.arguments, event.exec?.arguments)
            XCTAssertEqual(back.exec?.filename, event.exec?.filename)
        }

        // An independent parser (Python's json) gets the same bytes back through surrogateescape.
        let linesFile = try self.directory() + "/events.jsonl"
        try hostile.map { EventFormat.json($0) }.joined(separator: "\n").write(toFile: linesFile, atomically: true, encoding: .utf8)
        let python = try runCapturing("/usr/bin/python3", ["-c", """
            import json, sys
            for line in open(sys.argv[1], encoding="utf-8").read().split("\\n"):
                e = json.loads(line)
                value = e.get("fd.name") if e["evt.kind"] == "open" else "\\0".join(e["proc.argv"])
                print(value.encode("utf-8", "surrogateescape").hex())
            """, linesFile])
        XCTAssertEqual(python.status, 0, python.stderr)
        let expected = hostile.map { event in
            (event.open.map(\.path.bytes) ?? Array((event.exec?.arguments ?? []).map(\.bytes).joined(separator: [0]))).map { String(format: "%02x", $0) }.joined()
        }
        XCTAssertEqual(python.stdout.split(separator: "\n").map(String.init), expected, "Python's json and surrogateescape give the exact bytes")

        // Alerts of a rule whose output names the hostile fields.
        let template = OutputTemplate("hostile %proc.exepath %proc.cmdline %fd.name %container.info", at: SourceLocation(file: "t", line: 1, column: 1))
        let alerts = hostile.map { Alert(rule: "Hostile", priority: .warning, output: template.render($0), tags: ["t"], event: $0, hostname: "test-host") }
        for alert in alerts {
            XCTAssertEqual(Self.rawControls(alert.text), [], alert.text)
            XCTAssertLessThan(alert.text.utf8.count, 12 * 4096, "bounded")
            let parsed = try EventJSON.parse(alert.json)
            guard case .object(let object) = parsed, case .object? = object["output_fields"] else { return XCTFail("alert JSON: \(alert.json)") }
        }

        let receiver = try SyslogReceiver()
        let udp = try SyslogReceiver(udp: ())
        let smtp = try TestSMTPServer()
        let http = try TestHTTPServer()
        let out = try self.directory()
        let dispatcher = try makeDispatcher("""
        named:
          sys: {type: syslog, address: 'unix://\(receiver.path)'}
          sysjson: {type: syslog, address: 'unix://\(receiver.path)', format: json}
          udpjson: {type: syslog, address: '\(udp.udp ?? "")', format: json}
          mail: {type: email, server: '127.0.0.1:\(smtp.port)', from: vigil@example.org, to: [soc@example.org], subject: "{rule} {hostname}"}
          hook: {type: webhook, url: '\(http.url)/'}
          run:
            type: exec
            argv: [/bin/sh, -c, '[ $# -eq 2 ] || exit 9; f=$(mktemp "$OUT/arg.XXXXXX"); printf %s "$1" > "$f"; printf %s "$2" > "$f.pid"', sh, '%fd.name', '%proc.pid']
            env: {OUT: \(out)}
        """)
        for alert in alerts.prefix(paths.count) { dispatcher.dispatch(alert, actions: ["sys", "sysjson", "udpjson", "mail", "hook", "run"]) }
        for alert in alerts.dropFirst(paths.count) { dispatcher.dispatch(alert, actions: ["sys", "sysjson", "udpjson", "mail", "hook"]) }
        // Syslog (read while the actions run: a unix datagram queue holds only 10): each datagram
        // one message, no raw control byte, MSG valid UTF-8 after its BOM; over UDP, messages
        // too large for a datagram arrive cut, saying so.
        var largest = 0, truncated = 0
        for index in 0..<(3 * alerts.count) {
            guard let datagram = index < 2 * alerts.count ? receiver.receive() : udp.receive() else { return XCTFail("syslog message \(index) is missing") }
            largest = max(largest, datagram.count)
            let cut = datagram.firstRange(of: Array(" truncated=\"".utf8)) != nil
            if cut { truncated += 1 }
            XCTAssertLessThanOrEqual(datagram.count, 65_000, "a datagram's size is bounded")
            XCTAssertEqual(datagram.filter { $0 < 0x20 || $0 == 0x7f }, [], String(decoding: datagram, as: UTF8.self))
            let bom = try XCTUnwrap(datagram.firstRange(of: [0xEF, 0xBB, 0xBF]))
            let message = try XCTUnwrap(String(validating: datagram[bom.upperBound...], as: UTF8.self))
            XCTAssertEqual(Self.rawControls(message), [], message)
            if message.hasPrefix("{"), !cut { _ = try EventJSON.parse(message) }
        }
        XCTAssertGreaterThan(truncated, 0, "the alert of 4 KiB of non-UTF-8 arguments is over a datagram as JSON")
        print("hostile input: largest syslog datagram \(largest) bytes; \(truncated) cut; largest alert JSON \(alerts.map(\.json.utf8.count).max() ?? 0) bytes, text \(alerts.map(\.text.utf8.count).max() ?? 0) bytes, table row \(hostile.map { EventFormat.tableRow($0).utf8.count }.max() ?? 0) bytes")

        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(60)))
        let stats = dispatcher.stats()
        for (name, count) in [("sys", alerts.count), ("sysjson", alerts.count), ("udpjson", alerts.count), ("mail", alerts.count), ("hook", alerts.count), ("run", paths.count)] {
            XCTAssertEqual(Int(stats.of(name).sent), count, "\(name): \(stats.of(name))")
        }

        // Email: only our headers (no header a field could inject), the body's JSON round-trips.
        waitUntil("every mail in the maildir") { smtp.messages.count == alerts.count }
        for (index, path) in smtp.messageFiles.enumerated() {
            let parsed = try runCapturing("/usr/bin/python3", ["-c", """
                import email, sys
                m = email.message_from_binary_file(open(sys.argv[1], 'rb'))
                print(sorted(set(m.keys())))
                sys.stdout.write(m.get_payload(decode=True).decode('utf-8'))
                """, path])
            XCTAssertEqual(parsed.status, 0, parsed.stderr)
            let lines = parsed.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            XCTAssertEqual(lines.first.map(String.init), "['Content-Transfer-Encoding', 'Content-Type', 'Date', 'From', 'MIME-Version', 'Message-ID', 'Subject', 'To', 'X-MailFrom', 'X-Peer', 'X-RcptTo', 'X-Vigil-Alert-Id', 'X-Vigil-Priority', 'X-Vigil-Rule']", "mail \(index)")
            let body = lines.dropFirst().map(String.init)
            XCTAssertEqual(body.flatMap { Self.rawControls($0) }, [], "mail \(index)")
            let json = try XCTUnwrap(body.first { $0.hasPrefix("{") }, "mail \(index): \(body)")
            _ = try EventJSON.parse(json)
            XCTAssertTrue(alerts.contains { $0.json == json }, "mail \(index): the alert's JSON, byte for byte")
        }

        // Webhook: the body is the alert's JSON, parsed and round-tripped.
        XCTAssertEqual(Set(http.requests.map { String(decoding: $0.body, as: UTF8.self) }), Set(alerts.map(\.json)))

        // Exec: each hostile name arrived as one argv entry, byte for byte.
        let pids = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".pid") }
        XCTAssertEqual(try Set(pids.map { try String(contentsOfFile: out + "/" + $0, encoding: .utf8) }), [String(getpid())], "%proc.pid")
        let names = try FileManager.default.contentsOfDirectory(atPath: out).filter { !$0.hasSuffix(".pid") }
        let received = try Set(names.map { try Array(Data(contentsOf: URL(fileURLWithPath: out + "/" + $0))) })
        XCTAssertEqual(received, Set(paths), "each hostile path as one argv entry")
    }
}
