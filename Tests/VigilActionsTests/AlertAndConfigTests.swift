import Foundation
import VigilActions
import VigilEvents
import VigilRules
import XCTest

/// The alert's shapes and the configuration's decoding and errors.
final class AlertTests: XCTestCase {
    func testJSONIsFalcoShapedWithEveryEventFieldAndNoAdditionsWhenNoneApply() throws {
        let alert = testAlert()
        let json = alert.json
        let keys = ["hostname", "output", "priority", "rule", "source", "tags", "time", "output_fields"]
        let positions = keys.map { json.range(of: "\"\($0)\":")?.lowerBound }
        XCTAssertFalse(positions.contains(nil), json)
        XCTAssertEqual(positions.compactMap { $0 }, positions.compactMap { $0 }.sorted(), "Falco's key order: \(json)")
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(object["hostname"] as? String, "test-host")
        XCTAssertEqual(object["rule"] as? String, "Netcat listener")
        XCTAssertEqual(object["priority"] as? String, "WARNING")
        XCTAssertEqual(object["source"] as? String, "syscall")
        XCTAssertEqual(object["tags"] as? [String], ["network", "T1059"])
        XCTAssertEqual(object["time"] as? String, "2026-05-28T20:26:40.000000000Z")
        let fields = try XCTUnwrap(object["output_fields"] as? [String: Any])
        XCTAssertEqual(fields["proc.name"] as? String, "nc")
        XCTAssertEqual(fields["proc.pid"] as? Int, 4242)
        XCTAssertNil(object["enforcement"])
        XCTAssertNil(object["suppressed"])
    }

    /// Alert ids are random version 4 UUIDs in lowercase, each new.
    func testAlertIDsAreRandomVersion4UUIDs() throws {
        let ids = (0..<2000).map { _ in Alert.randomID() }
        XCTAssertEqual(Set(ids).count, ids.count, "no id repeats")
        for id in ids.prefix(50) {
            let uuid = try XCTUnwrap(UUID(uuidString: id), id)
            XCTAssertEqual(uuid.uuidString.lowercased(), id, "the canonical lowercase form")
            XCTAssertEqual(uuid.uuid.6 >> 4, 4, "version 4: \(id)")
            XCTAssertEqual(uuid.uuid.8 >> 6, 0b10, "RFC 4122 variant: \(id)")
        }
        XCTAssertNotEqual(testAlert().id, testAlert().id)
    }

    func testTextLineAndVigilsAdditions() throws {
        var alert = testAlert()
        XCTAssertEqual(alert.text, "2026-05-28T20:26:40.000000000Z WARNING Netcat listener: netcat listening (pid=4242)")
        alert.suppressed = 3
        alert.enforcement = [EnforcementResult(action: "kill", enforced: false, detail: "process gone: pid 4242 has exited")]
        XCTAssertTrue(alert.text.hasSuffix(" (3 identical alerts suppressed) [kill: failed (process gone: pid 4242 has exited)]"), alert.text)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(alert.json.utf8)) as? [String: Any])
        XCTAssertEqual(object["suppressed"] as? Int, 3)
        let enforcement = try XCTUnwrap(object["enforcement"] as? [[String: String]])
        XCTAssertEqual(enforcement, [["action": "kill", "result": "failed", "detail": "process gone: pid 4242 has exited"]])
    }

    func testAlertOfACompiledRuleRendersItsOutputTemplate() throws {
        let rule = try netcatRule(output: "%proc.name by %user.uid pid=%proc.pid", extra: "  tags: [t1]\n  actions: [kill, ops]\n")
        let alert = Alert(rule: rule, event: testEvent(), hostname: "h")
        XCTAssertEqual(alert.output, "nc by 0 pid=4242")
        XCTAssertEqual(alert.priority, .error)
        XCTAssertEqual(alert.tags, ["t1"])
        XCTAssertEqual(rule.rule.actions, ["kill", "ops"])
    }

    /// With `outputFields` `.output`, output_fields is Falco's: the fields the output names, each
    /// once, in order, null for one the event lacks or the catalogue does not have;
    /// %container.info gives container.id and container.name. Vigil's own alerts keep every field.
    func testOutputFieldsOfTheOutputAreFalcosShape() throws {
        let rule = try netcatRule(output: "%proc.name pid=%proc.pid %evt.type again=%proc.name parent=%proc.aname[1] fd=%fd.name %evt.arg.flags %container.info")
        var alert = Alert(rule: rule, event: testEvent(), hostname: "h")
        func outputFields(_ alert: Alert) throws -> (keys: [String], values: [String: Any]) {
            let json = alert.json
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], json)
            let values = try XCTUnwrap(object["output_fields"] as? [String: Any], json)
            // The keys in the order written (JSONSerialization's dictionary has none).
            let start = try XCTUnwrap(json.range(of: "\"output_fields\":{"))
            let end = try XCTUnwrap(json.range(of: "}", range: start.upperBound..<json.endIndex))
            let keys = try NSRegularExpression(pattern: "\"([^\"]+)\":").matches(in: json, range: NSRange(start.upperBound..<end.lowerBound, in: json))
                .map { String(json[Range($0.range(at: 1), in: json)!]) }
            return (keys, values)
        }
        XCTAssertGreaterThan(try outputFields(alert).values.count, 20, "every field by default")
        alert.outputFields = .output
        let (keys, values) = try outputFields(alert)
        XCTAssertEqual(keys, ["proc.name", "proc.pid", "evt.type", "proc.aname[1]", "fd.name", "evt.arg.flags", "container.id", "container.name"])
        XCTAssertEqual(values["proc.name"] as? String, "nc")
        XCTAssertEqual(values["proc.pid"] as? Int, 4242)
        XCTAssertEqual(values["evt.type"] as? String, "execve")
        XCTAssertEqual(values["container.id"] as? String, "host")
        for key in ["proc.aname[1]", "fd.name", "evt.arg.flags"] { XCTAssertTrue(values[key] is NSNull, "\(key): \(values[key] ?? "absent")") }
        XCTAssertEqual(alert.output, "nc pid=4242 execve again=nc parent=<NA> fd=<NA> <NA> container_id=host container_name=host")
        // An alert Vigil raises about itself has no template: every field whatever the choice.
        var own = testAlert()
        own.outputFields = .output
        XCTAssertGreaterThan(try outputFields(own).values.count, 20)
    }
}

final class ActionsConfigTests: XCTestCase {
    func testDefaults() throws {
        let config = try ActionsConfig.decodeYAML("{}")
        XCTAssertEqual(config, ActionsConfig())
        XCTAssertEqual(config.defaultActions, ["stdout"])
        XCTAssertEqual(config.queueSize, 1000)
        XCTAssertEqual(config.retries, 3)
        XCTAssertEqual(config.dedup.window, 10)
        XCTAssertEqual(config.knownActionNames, [
            "container_checkpoint", "container_kill", "container_pause", "container_stop", "container_unpause", "kernel_kill", "kill", "log", "stdout",
        ])
    }

    /// The example in docs/config.md decodes and validates, so the documentation stays true.
    func testTheDocumentedExampleDecodes() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/config.md").standardized
        let text = try String(contentsOf: docs, encoding: .utf8)
        let section = try XCTUnwrap(text.range(of: "## actions").map { text[$0.upperBound...] }, "docs/config.md has no 'actions' section")
        let start = try XCTUnwrap(section.range(of: "```yaml\nactions:\n"))
        let end = try XCTUnwrap(section[start.upperBound...].range(of: "```"))
        let body = section[start.upperBound..<end.lowerBound].split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("  ") ? String($0.dropFirst(2)) : String($0) }.joined(separator: "\n")
        let config = try ActionsConfig.decodeYAML(body)
        XCTAssertNoThrow(try ActionDispatcher(config: config))
        XCTAssertFalse(config.named.isEmpty)
        XCTAssertEqual(Set(config.named.values.map(\.kind)).count, config.named.count, "one example per kind")
    }

    func testEncodesAndDecodesBackTheSame() throws {
        var config = ActionsConfig()
        var hook = ActionDefinition(kind: .webhook)
        hook.url = "http://127.0.0.1:8080/x"
        hook.headers = ["Authorization": "Bearer t"]
        hook.minPriority = .error
        hook.retries = 1
        config.named = ["hook": hook]
        config.dedup = DedupConfig(window: 5, fields: ["proc.name", "container.label[app]"])
        let data = try JSONEncoder().encode(config)
        XCTAssertEqual(try JSONDecoder().decode(ActionsConfig.self, from: data), config, String(decoding: data, as: UTF8.self))
    }

    func testMistakesAreRefusedNamingTheKey() {
        let cases: [(String, String)] = [
            ("queue_sise: 5", "unknown key 'queue_sise'"),
            ("named: {ops: {type: webhok, url: 'http://x'}}", "unknown action type 'webhok'"),
            ("named: {ops: {type: webhook}}", "needs 'url'"),
            ("named: {ops: {type: webhook, url: 'ftp://x'}}", "not an http:// or https:// URL"),
            ("named: {ops: {type: webhook, url: 'http://x', ca_file: /etc/hostname}}", "ca_file: only applies to an https:// url"),
            ("named: {ops: {type: slack, url: 'http://x', insecure_skip_verify: true}}", "insecure_skip_verify: only applies to an https:// url"),
            ("named: {ops: {type: webhook, url: 'https://x', ca_file: /nonexistent/ca.pem}}", "ca_file: cannot read '/nonexistent/ca.pem'"),
            ("named: {ops: {type: webhook, url: 'https://x', ca_file: /etc/hostname, insecure_skip_verify: true}}", "ca_file: has no effect with insecure_skip_verify"),
            ("named: {m: {type: email, server: mx, from: a@b, to: [a@b], password_env: P}}", "password_env: a password needs 'username'"),
            ("named: {m: {type: email, server: mx, from: a@b, to: [a@b], username: u}}", "username: needs password_env or password_file"),
            ("named: {m: {type: email, server: mx, from: a@b, to: [a@b], username: u, password_env: P, tls: none}}", "tls: refusing to send credentials"),
            ("named: {m: {type: email, server: mx, from: a@b, to: [a@b], username: u, password_env: P, password_file: /f}}", "set password_env or password_file, not both"),
            ("named: {m: {type: email, server: mx, from: a@b, to: [a@b], tls: smtps}}", "unknown tls mode 'smtps'"),
            ("named: {m: {type: email, server: mx, from: a@b, to: [a@b], ca_file: /etc/hostname}}", "ca_file: only applies with tls: starttls or implicit"),
            ("named: {ops: {type: webhook, url: 'http://x', path: /tmp/a}}", "unknown key 'path' in an action of type webhook"),
            ("named: {ops: {type: webhook, url: 'http://x', headers: {'Bad Name': v}}}", "not a valid HTTP header"),
            ("named: {stdout: {type: file, path: /tmp/x}}", "built-in action of type stdout"),
            ("named: {kernel_kill: {type: kill}}", "kernel_kill is enforced by the kernel"),
            ("named: {m: {type: email, server: 'mx:25', from: me, to: [a@b]}}", "'me' is not a mail address"),
            ("named: {s: {type: syslog, address: 'ftp://x'}}", "use /dev/log"),
            ("named: {s: {type: syslog, address: /dev/log, facility: local9}}", "unknown facility 'local9'"),
            ("named: {e: {type: exec, argv: []}}", "needs the program"),
            ("named: {e: {type: exec, argv: ['%proc.exepath']}}", "the program (the first element) cannot be a field ('%proc.exepath')"),
            ("named: {e: {type: exec, argv: [/bin/echo, '%fd.nmae']}}", "'%fd.nmae' names no field (see docs/fields.md; write %% for a literal %)"),
            ("named: {k: {type: kill, min_priority: urgent}}", "unknown priority 'urgent'"),
            ("dedup: {fields: [proc.nmae]}", "unknown field 'proc.nmae'"),
            ("default_actions: [pager]", "unknown action 'pager'"),
            ("named: {f: {type: file, path: /tmp/x, max_size: 10}}", "at least 1024 bytes"),
        ]
        for (yaml, expected) in cases {
            do {
                let config = try ActionsConfig.decodeYAML(yaml)
                XCTFail("accepted \(yaml): \(config)")
            } catch {
                XCTAssertTrue("\(error)".contains(expected), "\(yaml): expected '\(expected)' in \(error)")
            }
        }
    }

    func testUnknownActionNamesAreReportedBeforeAndCountedAtDispatch() throws {
        let dispatcher = try makeDispatcher("named: {ops: {type: webhook, url: 'http://127.0.0.1:9/'}}")
        XCTAssertEqual(dispatcher.unknownActions(in: ["ops", "kill", "pager", "kernel_kill"]), ["pager"])
        dispatcher.dispatch(testAlert(), actions: ["pager"])
        let stats = dispatcher.stats().of("pager")
        XCTAssertEqual(stats.type, "unknown")
        XCTAssertEqual(stats.failed, 1)
        XCTAssertEqual(stats.lastError, "unknown action 'pager'")
        dispatcher.shutdown(timeout: .seconds(30))
    }
}
