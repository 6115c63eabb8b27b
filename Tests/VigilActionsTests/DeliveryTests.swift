import Foundation
import VigilActions
import VigilEvents
import VigilRules
import VigilTestSupport
import XCTest

/// The reporting actions against real receivers started by each test.
final class DeliveryTests: XCTestCase {
    func testWebhookPostsFalcoJSONWithCustomHeaders() throws {
        let server = try TestHTTPServer()
        let dispatcher = try makeDispatcher("""
        named:
          ops: {type: webhook, url: '\(server.url)/falco?src=vigil', headers: {Authorization: Bearer t0ken, X-Team: sec}}
        """)
        let alert = testAlert()
        dispatcher.dispatch(alert, actions: ["ops"])
        waitUntil("the webhook") { server.requests.count == 1 }
        let request = try XCTUnwrap(server.requests.first)
        XCTAssertEqual(request.method, "POST")
        XCTAssertEqual(request.target, "/falco?src=vigil")
        XCTAssertEqual(request.headers["content-type"], "application/json")
        XCTAssertEqual(request.headers["authorization"], "Bearer t0ken")
        XCTAssertEqual(request.headers["x-team"], "sec")
        XCTAssertEqual(String(decoding: request.body, as: UTF8.self), alert.json)
        XCTAssertEqual(request.headers["x-vigil-alert-id"], alert.id, "the id a receiver drops duplicates by")
        let body = try XCTUnwrap(request.json)
        XCTAssertEqual(body["rule"] as? String, "Netcat listener")
        XCTAssertEqual((body["output_fields"] as? [String: Any])?["proc.name"] as? String, "nc")
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        XCTAssertEqual(dispatcher.stats().of("ops").sent, 1)
    }

    /// `output_fields: output` (the daemon's key, on the dispatcher's config): what a real
    /// webhook receives holds only the fields the rule's output names.
    func testWebhookReceivesOnlyTheOutputsFieldsWhenConfigured() throws {
        let server = try TestHTTPServer()
        var config = try ActionsConfig.decodeYAML("named:\n  ops: {type: webhook, url: '\(server.url)/falco'}\n")
        config.outputFields = .output
        let dispatcher = try ActionDispatcher(config: config)
        dispatcher.dispatch(Alert(rule: try netcatRule(output: "%proc.name (%proc.pid)"), event: testEvent()), actions: ["ops"])
        waitUntil("the webhook") { server.requests.count == 1 }
        let body = try XCTUnwrap(server.requests.first?.json)
        let fields = try XCTUnwrap(body["output_fields"] as? [String: Any])
        XCTAssertEqual(Set(fields.keys), ["proc.name", "proc.pid"])
        XCTAssertEqual(fields["proc.pid"] as? Int, 4242)
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
    }

    /// While the server keeps the connection (HTTP/1.1 keep-alive), alerts share one; a server
    /// that closes it after each answer without saying so (an idle timeout) costs a new
    /// connection per alert and loses none, nor sends one twice; one that says `Connection:
    /// close` gets a connection per alert.
    func testWebhookKeepsItsConnectionWhileTheServerDoes() throws {
        for (mode, connections) in [(TestHTTPServer.ConnectionMode.keepAlive, 1), (.closeUnannounced, 3), (.close, 3)] {
            let server = try TestHTTPServer(connections: mode)
            let dispatcher = try makeDispatcher("named:\n  ops: {type: webhook, url: '\(server.url)/alerts'}\n")
            let alerts = (0..<3).map { testAlert(testEvent(pid: UInt32(100 + $0))) }
            for alert in alerts {
                let before = server.requests.count
                dispatcher.dispatch(alert, actions: ["ops"])
                waitUntil("alert \(alert.id), \(mode)") { server.requests.count == before + 1 }
            }
            XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
            XCTAssertEqual(server.requests.map { $0.headers["x-vigil-alert-id"] }, alerts.map(\.id), "each alert once, in order: \(mode)")
            XCTAssertEqual(server.connections, connections, "\(mode)")
            XCTAssertNil(server.requests.first?.headers["connection"], "HTTP/1.1's default: keep-alive")
            let stats = dispatcher.stats().of("ops")
            XCTAssertEqual(stats.sent, 3, "\(mode)")
            XCTAssertEqual(stats.retried, 0, "a closed kept connection is replaced within the attempt: \(mode)")
            XCTAssertEqual(stats.failed, 0, "\(mode)")
        }
    }

    func testSlackPayload() throws {
        let server = try TestHTTPServer()
        let dispatcher = try makeDispatcher("named: {chat: {type: slack, url: '\(server.url)/services/T/B/X'}}")
        dispatcher.dispatch(testAlert(priority: .critical), actions: ["chat"])
        waitUntil("the Slack webhook") { server.requests.count == 1 }
        let body = try XCTUnwrap(server.requests.first?.json)
        XCTAssertEqual(body["text"] as? String, "CRITICAL Netcat listener: netcat listening (pid=4242)")
        let attachment = try XCTUnwrap((body["attachments"] as? [[String: Any]])?.first)
        XCTAssertEqual(attachment["color"] as? String, "#e01e5a")
        let fields = try XCTUnwrap(attachment["fields"] as? [[String: Any]])
        let byTitle = Dictionary(uniqueKeysWithValues: fields.map { ($0["title"] as? String ?? "", $0["value"] as? String ?? "") })
        XCTAssertEqual(byTitle["rule"], "Netcat listener")
        XCTAssertEqual(byTitle["priority"], "CRITICAL")
        XCTAssertEqual(byTitle["hostname"], "test-host")
        XCTAssertEqual(byTitle["tags"], "network, T1059")
        dispatcher.shutdown(timeout: .seconds(30))
    }

    func testRetriesWithBackoffUntilTheServerRecovers() throws {
        let server = try TestHTTPServer(statuses: [500, 503])
        let dispatcher = try makeDispatcher("named: {ops: {type: webhook, url: '\(server.url)/', retries: 3, backoff: 0.05}}")
        dispatcher.dispatch(testAlert(), actions: ["ops"])
        waitUntil("one delivery") { dispatcher.stats().of("ops").sent == 1 }
        let stats = dispatcher.stats().of("ops")
        XCTAssertEqual(stats.retried, 2)
        XCTAssertEqual(stats.failed, 0)
        XCTAssertEqual(server.requests.count, 3)
        XCTAssertEqual(Set(server.requests.map(\.body)).count, 1, "every attempt sends the same alert")
        dispatcher.shutdown(timeout: .seconds(30))
    }

    func testAClientErrorIsNotRetriedAndIsCounted() throws {
        let server = try TestHTTPServer(statuses: [400])
        let dispatcher = try makeDispatcher("named: {ops: {type: webhook, url: '\(server.url)/', backoff: 0.05}}")
        dispatcher.dispatch(testAlert(), actions: ["ops"])
        waitUntil("the failure") { dispatcher.stats().of("ops").failed == 1 }
        XCTAssertEqual(dispatcher.stats().of("ops").retried, 0)
        XCTAssertTrue(dispatcher.stats().of("ops").lastError?.contains("HTTP 400") ?? false, "\(dispatcher.stats().of("ops"))")
        XCTAssertEqual(server.requests.count, 1)
        dispatcher.shutdown(timeout: .seconds(30))
    }

    func testAFullQueueDropsTheNewestAndCountsThemWithoutBlocking() throws {
        let server = try TestHTTPServer(holdAnswers: true)
        let dispatcher = try makeDispatcher("named: {ops: {type: webhook, url: '\(server.url)/', queue_size: 3, timeout: 60}}")
        dispatcher.dispatch(testAlert(output: "first"), actions: ["ops"])
        waitUntil("the first alert in flight") { server.requests.count == 1 }
        for index in 0..<10 { dispatcher.dispatch(testAlert(output: "alert \(index)"), actions: ["ops"]) }
        var stats = dispatcher.stats().of("ops")
        XCTAssertEqual(stats.queued, 3)
        XCTAssertEqual(stats.dropped, 7)
        server.release()
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(60)))
        stats = dispatcher.stats().of("ops")
        XCTAssertEqual(stats.sent, 4)
        XCTAssertEqual(stats.dropped, 7)
        XCTAssertEqual(server.requests.compactMap { $0.json?["output"] as? String }, ["first", "alert 0", "alert 1", "alert 2"], "the oldest are kept, in order")
    }

    func testIdenticalAlertsWithinTheWindowAreSentOnceThenCarryTheirCount() throws {
        let directory = try temporaryDirectory(prefix: "vigil-actions")
        let dispatcher = try makeDispatcher("""
        dedup: {window: 10}
        named: {out: {type: file, path: \(directory)/alerts.jsonl}}
        """)
        let start: UInt64 = 1_780_000_000_000_000_000
        for offset in [0.0, 1, 2, 9.9] {
            dispatcher.dispatch(testAlert(testEvent(timeNs: start + UInt64(offset * 1e9))), actions: ["out"])
        }
        dispatcher.dispatch(testAlert(testEvent(pid: 7, timeNs: start + 3_000_000_000)), actions: ["out"])  // other output
        dispatcher.dispatch(testAlert(testEvent(timeNs: start + 10_000_000_000)), actions: ["out"])  // window over
        dispatcher.dispatch(testAlert(testEvent(timeNs: start + 11_000_000_000)), actions: ["out"])  // new window
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        let lines = try String(contentsOfFile: "\(directory)/alerts.jsonl", encoding: .utf8).split(separator: "\n")
        let objects = try lines.map { try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(objects.map { $0["output"] as? String }, ["netcat listening (pid=4242)", "netcat listening (pid=7)", "netcat listening (pid=4242)"])
        XCTAssertEqual(objects.map { $0["suppressed"] as? Int }, [nil, nil, 3])
        let stats = dispatcher.stats()
        XCTAssertEqual(stats.suppressed, 4)
        XCTAssertEqual(stats.unreported, 1, "the repeat at +11 s had no successor")
        XCTAssertEqual(stats.of("out").sent, 3)
    }

    func testDedupOnConfiguredFields() throws {
        let directory = try temporaryDirectory(prefix: "vigil-actions")
        let dispatcher = try makeDispatcher("""
        dedup: {window: 60, fields: [proc.name]}
        named: {out: {type: file, path: \(directory)/alerts.jsonl}}
        """)
        for pid: UInt32 in [10, 11, 12] { dispatcher.dispatch(testAlert(testEvent(pid: pid)), actions: ["out"]) }
        dispatcher.dispatch(testAlert(testEvent(pid: 13, comm: "ncat")), actions: ["out"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        let lines = try String(contentsOfFile: "\(directory)/alerts.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2, "pids differ, proc.name does not: \(lines)")
        XCTAssertEqual(dispatcher.stats().suppressed, 2)
    }

    func testFileRotatesBySizeKeepingNFiles() throws {
        let directory = try temporaryDirectory(prefix: "vigil-actions")
        let path = "\(directory)/alerts.jsonl"
        let dispatcher = try makeDispatcher("named: {out: {type: file, path: \(path), max_size: 1024, keep: 2}}")
        let alerts = (1...5).map { testAlert(output: "alert number \($0)") }
        XCTAssertGreaterThan(alerts[0].json.utf8.count, 512, "one alert per file with this max_size")
        for alert in alerts { dispatcher.dispatch(alert, actions: ["out"]) }
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        func outputs(_ file: String) throws -> [String] {
            try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map {
                try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["output"] as? String ?? ""
            }
        }
        XCTAssertEqual(try outputs(path), ["alert number 5"])
        XCTAssertEqual(try outputs(path + ".1"), ["alert number 4"])
        XCTAssertEqual(try outputs(path + ".2"), ["alert number 3"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".3"))
        for file in [path, path + ".1", path + ".2"] {
            XCTAssertLessThanOrEqual(try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int ?? .max, 1024)
        }
        XCTAssertEqual(dispatcher.stats().of("out").sent, 5)
    }

    func testFileInADirectoryThatDoesNotExistYetIsCreatedWithItsParents() throws {
        let directory = try temporaryDirectory(prefix: "vigil-actions")
        let path = "\(directory)/var/log/vigil/alerts.jsonl"
        let dispatcher = try makeDispatcher("named: {out: {type: file, path: \(path)}}")
        dispatcher.dispatch(testAlert(output: "first"), actions: ["out"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        XCTAssertEqual(dispatcher.stats().of("out").sent, 1, "\(dispatcher.stats())")
        XCTAssertTrue(try String(contentsOfFile: path, encoding: .utf8).contains("\"output\":\"first\""))
        for created in ["\(directory)/var", "\(directory)/var/log", "\(directory)/var/log/vigil"] {
            XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: created)[.posixPermissions] as? Int, 0o755, created)
        }
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int, 0o600)
    }

    func testFileMovedAwayByLogrotateIsReopened() throws {
        let directory = try temporaryDirectory(prefix: "vigil-actions")
        let path = "\(directory)/alerts.jsonl"
        let dispatcher = try makeDispatcher("named: {out: {type: file, path: \(path)}}")
        dispatcher.dispatch(testAlert(output: "before"), actions: ["out"])
        waitUntil("the first line") { dispatcher.stats().of("out").sent == 1 }
        try FileManager.default.moveItem(atPath: path, toPath: path + ".old")
        dispatcher.dispatch(testAlert(output: "after"), actions: ["out"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        XCTAssertTrue(try String(contentsOfFile: path + ".old", encoding: .utf8).contains("\"output\":\"before\""))
        let now = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(now.contains("\"output\":\"after\"") && !now.contains("before"), now)
    }

    func testSyslogRFC5424OverAUnixDatagramSocket() throws {
        let receiver = try SyslogReceiver()
        let dispatcher = try makeDispatcher("named: {sys: {type: syslog, address: 'unix://\(receiver.path)', facility: local3, app_name: vigil-test}}")
        var alert = testAlert(priority: .critical)
        alert.tags = ["a\"b", "c]"]
        dispatcher.dispatch(alert, actions: ["sys"])
        let datagram = try XCTUnwrap(receiver.receive())
        let bom = datagram.firstRange(of: [0xEF, 0xBB, 0xBF])
        let head = String(decoding: datagram[..<(bom?.lowerBound ?? datagram.count)], as: UTF8.self)
        let message = String(decoding: datagram[(bom?.upperBound ?? datagram.count)...], as: UTF8.self)
        XCTAssertNotNil(bom, "MSG is UTF-8 after a BOM")
        // <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA
        let fields = head.split(separator: " ", maxSplits: 6).map(String.init)
        XCTAssertEqual(fields.count, 7, head)
        XCTAssertEqual(fields[0], "<\(19 * 8 + 2)>1", "local3 (19) * 8 + critical (2), version 1")
        XCTAssertEqual(fields[1], "2026-05-28T20:26:40.000000Z", "UTC, at most 6 fraction digits")
        XCTAssertEqual(fields[2], "test-host")
        XCTAssertEqual(fields[3], "vigil-test")
        XCTAssertEqual(fields[4], String(getpid()))
        XCTAssertEqual(fields[5], "alert")
        XCTAssertEqual(fields[6], "[vigil@32473 rule=\"Netcat listener\" priority=\"CRITICAL\" source=\"syscall\" tags=\"a\\\"b,c\\]\" id=\"\(alert.id)\"] ")
        XCTAssertEqual(message, "Netcat listener: netcat listening (pid=4242)")
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        XCTAssertEqual(dispatcher.stats().of("sys").sent, 1)
    }

    func testSyslogOverTCPUsesOctetCountingOnOneConnection() throws {
        let receiver = try TCPReceiver()
        let dispatcher = try makeDispatcher("named: {sys: {type: syslog, address: 'tcp://127.0.0.1:\(receiver.port)', format: json}}")
        let second = testAlert(output: "second ünïcode")
        dispatcher.dispatch(testAlert(output: "first"), actions: ["sys"])
        dispatcher.dispatch(second, actions: ["sys"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        XCTAssertEqual(dispatcher.stats().of("sys").sent, 2, "\(dispatcher.stats())")
        // RFC 6587 octet counting: LENGTH SP MESSAGE, repeated.
        func frames() -> (messages: [String], rest: ArraySlice<UInt8>) {
            var stream = receiver.received[...]
            var messages: [String] = []
            while let space = stream.firstIndex(of: 0x20), let length = Int(String(decoding: stream[..<space], as: UTF8.self)) {
                let start = stream.index(after: space)
                guard stream.distance(from: start, to: stream.endIndex) >= length else { break }
                messages.append(String(decoding: stream[start..<(start + length)], as: UTF8.self))
                stream = stream[(start + length)...]
            }
            return (messages, stream)
        }
        waitUntil("two frames at the receiver") { frames().messages.count == 2 }
        let (messages, rest) = frames()
        XCTAssertTrue(rest.isEmpty, "bytes left after the frames: \(Array(rest))")
        guard messages.count == 2 else { return XCTFail("\(messages.count) messages: \(messages)") }
        XCTAssertTrue(messages.allSatisfy { $0.hasPrefix("<\(3 * 8 + 4)>1 ") }, "daemon facility, warning: \(messages)")
        XCTAssertTrue(messages[1].hasSuffix("\u{FEFF}" + second.json), messages[1])
        XCTAssertEqual(receiver.connections, 1)
    }

    func testEmailThroughARealSMTPServer() throws {
        let server = try TestSMTPServer()
        let dispatcher = try makeDispatcher("""
        named:
          mail:
            type: email
            server: 127.0.0.1:\(server.port)
            from: vigil@example.org
            to: [soc@example.org, oncall@example.org]
            subject: "[vigil] {priority} {rule} on {hostname}"
        """)
        var alert = testAlert(output: ".leading dot and ünïcode")
        alert.rule = "Netcat listener ⚠"
        dispatcher.dispatch(alert, actions: ["mail"])
        waitUntil("the mail in the maildir") { server.messages.count == 1 }
        let message = try XCTUnwrap(server.messages.first)
        XCTAssertTrue(message.contains("From: vigil@example.org"), message)
        XCTAssertTrue(message.contains("To: soc@example.org, oncall@example.org"), message)
        let subject = "[vigil] WARNING Netcat listener ⚠ on test-host"
        XCTAssertTrue(message.contains("Subject: =?UTF-8?B?\(Data(subject.utf8).base64EncodedString())?="), message)
        let body = try runCapturing("/usr/bin/python3", ["-c", """
            import email, sys
            sys.stdout.write(email.message_from_binary_file(open(sys.argv[1], 'rb')).get_payload(decode=True).decode('utf-8'))
            """, try XCTUnwrap(server.messageFiles.first)])
        XCTAssertTrue(message.contains("Content-Transfer-Encoding: quoted-printable"), message)
        XCTAssertTrue(body.stdout.contains("WARNING Netcat listener ⚠: .leading dot and ünïcode"), "dot-stuffing undone, UTF-8 kept: \(body.stdout)")
        XCTAssertTrue(body.stdout.contains("\"output_fields\":{"), body.stdout)
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        XCTAssertEqual(dispatcher.stats().of("mail").sent, 1)
    }

    func testEmailToAServerThatIsDownIsRetriedThenCountedFailed() throws {
        let port = try Loopback.freePort()
        let dispatcher = try makeDispatcher("""
        named: {mail: {type: email, server: '127.0.0.1:\(port)', from: a@b.c, to: [d@e.f], retries: 2, backoff: 0.05}}
        """)
        dispatcher.dispatch(testAlert(), actions: ["mail"])
        waitUntil("the failure") { dispatcher.stats().of("mail").failed == 1 }
        XCTAssertEqual(dispatcher.stats().of("mail").retried, 2)
        XCTAssertTrue(dispatcher.stats().of("mail").lastError?.contains("Connection refused") ?? false, "\(dispatcher.stats().of("mail"))")
        dispatcher.shutdown(timeout: .seconds(30))
    }

    func testExecGetsTheAlertOnStdinAndInTheEnvironment() throws {
        let directory = try temporaryDirectory(prefix: "vigil-actions")
        let dispatcher = try makeDispatcher("""
        named:
          hook:
            type: exec
            argv: [/bin/sh, -c, 'cat > "$OUT/stdin.json"; env > "$OUT/env.txt"', ignored-arg0]
            env: {OUT: \(directory)}
        """)
        let alert = testAlert()
        dispatcher.dispatch(alert, actions: ["hook"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        XCTAssertEqual(dispatcher.stats().of("hook").sent, 1, "\(dispatcher.stats().of("hook"))")
        let stdin = try String(contentsOfFile: "\(directory)/stdin.json", encoding: .utf8)
        XCTAssertEqual(stdin, alert.json + "\n")
        let env = try String(contentsOfFile: "\(directory)/env.txt", encoding: .utf8).split(separator: "\n").map(String.init)
        for expected in [
            "VIGIL_RULE=Netcat listener", "VIGIL_PRIORITY=WARNING", "VIGIL_OUTPUT=netcat listening (pid=4242)",
            "VIGIL_PID=4242", "VIGIL_PROC_NAME=nc", "VIGIL_TAGS=network,T1059", "VIGIL_HOSTNAME=test-host",
            "VIGIL_CONTAINER_ID=host", "VIGIL_EVENT_TYPE=execve", "VIGIL_SUPPRESSED=0", "OUT=\(directory)",
        ] {
            XCTAssertTrue(env.contains(expected), "\(expected) not in \(env)")
        }
        XCTAssertFalse(env.contains { $0.hasPrefix("HOME=") }, "the daemon's environment is not passed on")
    }

    func testExecIsKilledAtItsTimeoutAndAFailingExitIsCounted() throws {
        let directory = try temporaryDirectory(prefix: "vigil-actions")
        let dispatcher = try makeDispatcher("""
        named:
          slow: {type: exec, argv: [/bin/sh, -c, 'echo started; sleep 30 & echo $! > \(directory)/child; wait'], timeout: 0.5}
          failing: {type: exec, argv: [/bin/sh, -c, 'echo something broke >&2; exit 3']}
          echoing: {type: exec, argv: [/bin/sh, -c, 'printf "%s" "$1"; exit 4', sh, '%proc.name']}
        """)
        dispatcher.dispatch(testAlert(), actions: ["slow", "failing"])
        // A program that prints an event's field: the log and the status get it escaped.
        dispatcher.dispatch(testAlert(testEvent(pid: 4343, comm: "x\ny\u{1b}[2J"), output: "other"), actions: ["echoing"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(60)))
        let stats = dispatcher.stats()
        XCTAssertEqual(stats.of("slow").failed, 1)
        XCTAssertTrue(stats.of("slow").lastError?.contains("killed its process group: started") ?? false, "\(stats.of("slow"))")
        let child = try XCTUnwrap(Int32(try String(contentsOfFile: "\(directory)/child", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        waitUntil("the grandchild to be gone with its group") { !processIsAlive(child) }
        XCTAssertEqual(stats.of("failing").failed, 1)
        XCTAssertEqual(stats.of("failing").lastError, "/bin/sh exited with status 3: something broke")
        XCTAssertEqual(stats.of("echoing").lastError, "/bin/sh exited with status 4: x\\ny\\e[2J")
    }

    func testMinPrioritySkipsLessSevereAlerts() throws {
        let directory = try temporaryDirectory(prefix: "vigil-actions")
        let dispatcher = try makeDispatcher("named: {out: {type: file, path: \(directory)/a.jsonl, min_priority: error}}")
        dispatcher.dispatch(testAlert(output: "mild", priority: .warning), actions: ["out"])
        dispatcher.dispatch(testAlert(output: "severe", priority: .critical), actions: ["out"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        XCTAssertEqual(dispatcher.stats().of("out").sent, 1)
        XCTAssertEqual(dispatcher.stats().of("out").skipped, 1)
    }

    func testRulesWithoutActionsUseTheDefaultActions() throws {
        let directory = try temporaryDirectory(prefix: "vigil-actions")
        let dispatcher = try makeDispatcher("""
        default_actions: [out]
        named: {out: {type: file, path: \(directory)/a.jsonl}}
        """)
        dispatcher.dispatch(testAlert(), actions: [])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        XCTAssertEqual(dispatcher.stats().of("out").sent, 1)
    }

    func testAfterShutdownAlertsAreCountedDropped() throws {
        let directory = try temporaryDirectory(prefix: "vigil-actions")
        let dispatcher = try makeDispatcher("named: {out: {type: file, path: \(directory)/a.jsonl}}")
        dispatcher.dispatch(testAlert(), actions: ["out"])
        XCTAssertTrue(dispatcher.shutdown(timeout: .seconds(30)))
        dispatcher.dispatch(testAlert(output: "late"), actions: ["out"])
        XCTAssertEqual(dispatcher.stats().of("out").sent, 1)
        XCTAssertEqual(dispatcher.stats().of("out").dropped, 1)
    }
}
