import Foundation
import VigilTestSupport
import XCTest

/// `vigil rules validate|test|convert`, with events recorded by `vigil trace -o json`.
final class RulesCLITests: XCTestCase {
    private func write(_ text: String, _ name: String) throws -> String {
        let dir = try temporaryDirectory()
        let path = dir + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testValidateReportsPositionsAndSummaries() throws {
        let bad = try write("- rule: r\n  desc: d\n  condition: evt.type = execve and proc.name = bash and\n  output: x\n  priority: INFO\n", "bad.yaml")
        let failed = try CLITests.vigil(["rules", "validate", bad])
        XCTAssertNotEqual(failed.status, 0)
        XCTAssertTrue(failed.stderr.hasPrefix("\(bad):3:"), failed.stderr)
        let typo = try write("- rule: r\n  desc: d\n  condition: evt.type = execve and proc.nme = bash\n  output: x\n  priority: INFO\n", "typo.yaml")
        let skippedTypo = try CLITests.vigil(["rules", "validate", typo])
        XCTAssertEqual(skippedTypo.status, 0, "a field Vigil lacks skips the rule (issue 12 section 5): \(skippedTypo.stderr)")
        XCTAssertTrue(skippedTypo.stdout.contains("\(typo):1:9: warning: rule 'r' skipped: Vigil has no field 'proc.nme' (\(typo):3:36); did you mean 'proc.name'"),
                      skippedTypo.stdout)

        let good = try write("- rule: r\n  desc: d\n  condition: evt.type = execve and container and proc.name = bash\n  output: x\n  priority: INFO\n", "good.yaml")
        let ok = try CLITests.vigil(["rules", "validate", good])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("rule \"r\" [INFORMATIONAL] on exec"), ok.stdout)
        XCTAssertTrue(ok.stdout.contains("event kinds: exec, open"), "with the defaults: \(ok.stdout)")
        let alone = try CLITests.vigil(["rules", "validate", "--no-default-rules", good])
        XCTAssertNotEqual(alone.status, 0, "the 'container' macro comes from the defaults")
        XCTAssertTrue(alone.stderr.contains("container"), alone.stderr)

        // A rule needing a field Vigil lacks is skipped in one line (with or without Falco's
        // skip-if-unknown-filter), the file's other rules load; --strict makes that fail.
        let falco = try write("- rule: t\n  desc: d\n  condition: evt.type = execve and ka.target.namespace = f\n  output: x\n  priority: INFO\n"
                              + "  skip-if-unknown-filter: true\n"
                              + "- rule: u\n  desc: d\n  condition: evt.type = execve and proc.nmae = x\n  output: x\n  priority: INFO\n"
                              + "- rule: v\n  desc: d\n  condition: evt.type = execve and proc.name = x\n  output: x\n  priority: INFO\n", "falco.yaml")
        let skipped = try CLITests.vigil(["rules", "validate", falco])
        XCTAssertEqual(skipped.status, 0, skipped.stderr)
        XCTAssertTrue(skipped.stdout.contains("\n  \(falco):1:9: warning: rule 't' skipped: Vigil has no field 'ka.target.namespace' (\(falco):3:36)\n"), skipped.stdout)
        XCTAssertTrue(skipped.stdout.contains("\n  \(falco):7:9: warning: rule 'u' skipped: Vigil has no field 'proc.nmae' (\(falco):9:36); did you mean 'proc.name'"),
                      skipped.stdout)
        XCTAssertTrue(skipped.stdout.contains("(2 rules skipped)") && skipped.stdout.contains("rule \"v\" [INFORMATIONAL] on exec"), skipped.stdout)
        let strict = try CLITests.vigil(["rules", "validate", "--strict", falco])
        XCTAssertEqual(strict.status, 1, strict.stdout)
        XCTAssertTrue(strict.stdout.contains("rule 'u' skipped"), strict.stdout)
        XCTAssertTrue(strict.stderr.contains("--strict:") && strict.stderr.contains("2 rules skipped"), strict.stderr)
        let clean = try CLITests.vigil(["rules", "validate", "--strict", "--no-default-rules", try write("- rule: w\n  desc: d\n  condition: evt.type = execve and proc.name = x\n  output: x\n  priority: INFO\n", "clean.yaml")])
        XCTAssertEqual(clean.status, 0, clean.stdout + clean.stderr)

        // Every error of every file, one line each with its place, and how many; a rule on
        // events Vigil never produces is a warning that says so, not a silent "on".
        let broken = try write("- rule: a\n  desc: d\n  condition: evt.type = execve and no_such_macro\n  output: x\n  priority: INFO\n"
                               + "- rule: b\n  desc: d\n  condition: evt.type = execve and other_missing_macro\n  output: x\n  priority: INFO\n", "broken.yaml")
        let alsoBroken = try write("- rule: c\n  desc: d\n  condition: [unclosed\n", "also-broken.yaml")
        let errors = try CLITests.vigil(["rules", "validate", broken, alsoBroken])
        XCTAssertEqual(errors.status, 1)
        let lines = errors.stderr.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 4, errors.stderr)
        XCTAssertTrue(lines[0].hasPrefix("\(alsoBroken):4:1: YAML"), errors.stderr)
        XCTAssertTrue(lines[1].hasPrefix("\(broken):3:36: undefined macro 'no_such_macro'") && lines[1].hasSuffix("(rule 'a')"), errors.stderr)
        XCTAssertTrue(lines[2].hasPrefix("\(broken):8:36: undefined macro 'other_missing_macro'") && lines[2].hasSuffix("(rule 'b')"), errors.stderr)
        XCTAssertEqual(lines[3], "3 errors")

        let connect = try write("- rule: n\n  desc: d\n  condition: evt.type = container and proc.name = nc\n  output: x %evt.plugininfo\n  priority: INFO\n",
                                "container.yaml")
        let never = try CLITests.vigil(["rules", "validate", connect])
        XCTAssertEqual(never.status, 0, never.stderr)
        XCTAssertTrue(never.stdout.contains("\(connect):1:9: warning: rule 'n' is loaded but never matches: its condition needs events Vigil does not produce (evt.type container)"), never.stdout)
        XCTAssertTrue(never.stdout.contains("\(connect):4:13: warning: rule 'n': the output names fields Vigil does not have, printed as <NA>: %evt.plugininfo"), never.stdout)
        XCTAssertTrue(never.stdout.contains("rule \"n\" [INFORMATIONAL] on no event Vigil produces (never matches)"), never.stdout)
    }

    func testValidateSaysWhatRunsInTheKernel() throws {
        let defaults = try CLITests.vigil(["rules", "validate"])
        XCTAssertEqual(defaults.status, 0, defaults.stderr)
        XCTAssertTrue(defaults.stdout.contains("open paths (in kernel): "), defaults.stdout)

        let wide = try write("- rule: wide\n  desc: d\n  condition: fd.name contains .ssh\n  output: x\n  priority: INFO\n", "wide.yaml")
        let every = try CLITests.vigil(["rules", "validate", wide])
        XCTAssertTrue(every.stdout.contains("open paths: every open reaches userspace: rule 'wide' has no path condition"), every.stdout)

        let kill = try write("- rule: trap\n  desc: d\n  condition: fd.name = /srv/honeypot and not proc.name in (backup)\n  output: x\n  priority: CRITICAL\n  actions: [kernel_kill]\n", "kill.yaml")
        let killed = try CLITests.vigil(["rules", "validate", kill])
        XCTAssertEqual(killed.status, 0, killed.stderr)
        XCTAssertTrue(killed.stdout.contains("kernel_kill (in kernel): rule 'trap' kills opens of its paths by commands other than backup"), killed.stdout)

        let bad = try write("- rule: trap\n  desc: d\n  condition: fd.name contains honeypot\n  output: x\n  priority: CRITICAL\n  actions: [kernel_kill]\n", "badkill.yaml")
        let refused = try CLITests.vigil(["rules", "validate", bad])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.hasPrefix("\(bad):1:"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("rule 'trap': kernel_kill needs a condition the kernel decides"), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("'fd.name contains honeypot' is not decided in the kernel"), refused.stderr)
    }

    func testConvertPrintsTheYAMLRule() throws {
        let seed = try write(RuleFileTestsSeed.text, "seed.toml")
        let result = try CLITests.vigil(["rules", "convert", seed])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.hasPrefix("- rule: \"seed\""), result.stdout)
        XCTAssertTrue(result.stdout.contains("container.runtime in (docker, kube)"))
    }

    /// The seed bpfd rule matches an sshd exec inside a Docker container and not one on the host,
    /// replayed from a real recording.
    func testSeedRuleOnRecordedEvents() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF)
        let container = try DockerTestEngine.startContainer(for: self)
        _ = DockerTestEngine.run(["docker", "exec", container.name, "/bin/busybox", "ln", "-sf", "/bin/busybox", "/bin/sshd"])
        let dir = try temporaryDirectory()
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: dir + "/sshd")
        let events = dir + "/events.jsonl"
        let trace = try CLITests.vigil(["trace", "-o", "json", "--event", "exec", "--comm", "sshd", "--output", events],
                                       signal: SIGINT, untilTracing: true) { _ in
            _ = DockerTestEngine.run(["docker", "exec", container.name, "sshd", "-V"])
            try runProgram(dir + "/sshd", [])
            Thread.sleep(forTimeInterval: 0.3)
        }
        XCTAssertEqual(trace.status, 0, trace.stderr)
        let seed = try write(RuleFileTestsSeed.text, "seed.toml")
        let result = try CLITests.vigil(["rules", "test", "--no-default-rules", seed, "--events", events, "--explain", "seed"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let inContainer = try XCTUnwrap(lines.firstIndex { $0.contains("exec sshd") && $0.hasSuffix("\"seed\"") }, result.stdout)
        XCTAssertTrue(lines[inContainer + 1].contains("container=\(container.id.prefix(12))"), lines[inContainer + 1])
        let onHost = try XCTUnwrap(lines.firstIndex { $0.contains("exec sshd") && $0.hasSuffix("no rule matched") }, result.stdout)
        XCTAssertTrue(lines[onHost + 1].contains("failed at:") && lines[onHost + 1].contains("container.runtime"), lines[onHost + 1])
        XCTAssertTrue(result.stdout.contains("1 of 2 events matched a rule"), result.stdout)
    }
}

/// The seed bpfd rule of the rules issue, unchanged, as shipped in rules/examples.
enum RuleFileTestsSeed {
    static var text: String {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../rules/examples/suspicious-commands.toml").standardized.path
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }
}

/// `vigil trace --alerts`: the default rules applied live (what `make run` shows).
final class LiveAlertsCLITests: XCTestCase {
    func testDefaultRulesRaiseFalcoShapedAlertsLive() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF)
        let dir = try temporaryDirectory()
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: dir + "/dropper")
        let result = try CLITests.vigil(["trace", "--alerts", "-o", "json"], signal: SIGTERM, untilTracing: true) { _ in
            try runProgram(dir + "/dropper", [])
            Thread.sleep(forTimeInterval: 0.3)
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        let alerts = try VigilJSON.objects(lines: result.stdout)
        // Other programs on a shared machine may run from /tmp too: take this test's alert.
        let alert = try XCTUnwrap(alerts.first {
            ($0["rule"] as? String) == "File in a temporary directory executed" && ($0["output"] as? String)?.contains(dir + "/dropper") == true
        }, result.stdout)
        XCTAssertEqual(alert["priority"] as? String, "WARNING")
        XCTAssertEqual(alert["source"] as? String, "syscall")
        XCTAssertEqual(alert["hostname"] as? String, ProcessInfo.processInfo.hostName)
        XCTAssertTrue((alert["tags"] as? [String])?.contains("T1204") ?? false)
        let fields = try XCTUnwrap(alert["output_fields"] as? [String: Any])
        XCTAssertEqual(fields["proc.exepath"] as? String, dir + "/dropper")
        XCTAssertTrue(result.stderr.contains("alerts from"), result.stderr)
    }

    /// `--output-fields output`: the alerts' output_fields are Falco's, the output's fields only.
    func testOutputFieldsOutputKeepsOnlyTheFieldsTheOutputNames() throws {
        try requireKernel(.attachTracepoint, .attachTpBTF)
        let dir = try temporaryDirectory()
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: dir + "/narrow")
        let rules = dir + "/r.yaml"
        try """
        - rule: Narrow ran
          desc: d
          condition: evt.type = execve and proc.name = narrow
          output: "%proc.name ran from %proc.exepath (%fd.name)"
          priority: NOTICE
        """.write(toFile: rules, atomically: true, encoding: .utf8)
        let result = try CLITests.vigil(["trace", "--alerts", "--no-default-rules", "--rules", rules, "-o", "json", "--output-fields", "output"],
                                        signal: SIGTERM, untilTracing: true) { _ in
            try runProgram(dir + "/narrow", [])
            Thread.sleep(forTimeInterval: 0.3)
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        let alert = try XCTUnwrap(try VigilJSON.objects(lines: result.stdout).first, result.stdout)
        let fields = try XCTUnwrap(alert["output_fields"] as? [String: Any])
        XCTAssertEqual(Set(fields.keys), ["proc.name", "proc.exepath", "fd.name"])
        XCTAssertEqual(fields["proc.exepath"] as? String, dir + "/narrow")
        XCTAssertTrue(fields["fd.name"] is NSNull, "an exec has no fd.name: null")
    }
}
