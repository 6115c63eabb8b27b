import Foundation
import VigilEvents
import VigilRules
import XCTest

/// Loading YAML and bpfd TOML rule files, merging and errors with positions.
final class RuleFileTests: XCTestCase {
    /// The seed bpfd rule of the rules issue, unchanged: rules/examples/suspicious-commands.toml.
    static let seedPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../rules/examples/suspicious-commands.toml").standardized.path
    static var seedTOML: String { (try? String(contentsOfFile: seedPath, encoding: .utf8)) ?? "" }

    private func expectError(_ body: () throws -> Void, _ position: String, _ fragment: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        do {
            try body()
            XCTFail("expected an error at \(position)", file: file, line: line)
        } catch let error as RuleError {
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix(position + ":"), "position: \(text)", file: file, line: line)
            XCTAssertTrue(text.contains(fragment), "message: \(text)", file: file, line: line)
        } catch {
            XCTFail("not a RuleError: \(error)", file: file, line: line)
        }
    }

    private func exec(_ comm: String, runtime: String = "host", args: [ByteString] = []) -> Event {
        var e = Event(bootTimeNs: 0, timeNs: 0, cgroupID: 0, pid: 5, tid: 5, ppid: 1, uid: 0, gid: 0, cpu: 0, mountNamespace: 0,
                      pidNamespace: 0, comm: ByteString(comm),
                      payload: .exec(.init(filename: ByteString("/usr/sbin/\(comm)"), executablePath: ByteString("/usr/sbin/\(comm)"),
                                           arguments: args, argumentsTruncated: false, cwd: "/", tty: "", ttyNumber: 0, loginUID: 0, startTimeNs: 0)))
        if runtime != "host" {
            e.container = ContainerContext(fullID: String(repeating: "a", count: 64), runtime: runtime, name: "c", image: "i", labels: [:], podUID: "")
        }
        e.process.arguments = args
        return e
    }

    func testTheSeedBpfdRuleLoadsUnchangedAndKeepsBpfdMeaning() throws {
        let rule = try BpfdRules.load(Self.seedTOML, file: "/etc/vigil/rules.d/seed.toml")
        XCTAssertEqual(rule.name, "seed", "the file name without .toml")
        XCTAssertEqual(try BpfdRules.load(Self.seedTOML, file: Self.seedPath).name, "suspicious-commands")
        XCTAssertTrue(rule.condition.hasPrefix("evt.type = execve and (proc.name contains sshd or proc.name contains dbus-daemon-lau"))
        XCTAssertTrue(rule.condition.hasSuffix("and container.runtime in (docker, kube)"))
        let set = try RuleSet(files: [("seed.toml", [RuleFiles.ruleItem(rule)])])
        XCTAssertEqual(set.matches(exec("sshd", runtime: "docker")).map(\.rule.name), ["seed"])
        XCTAssertEqual(set.matches(exec("xsshdx", runtime: "kube")).count, 1, "substring match")
        XCTAssertTrue(set.matches(exec("sshd")).isEmpty, "on the host: runtime must match exactly")
        XCTAssertTrue(set.matches(exec("sshd", runtime: "podman")).isEmpty)
        XCTAssertTrue(set.matches(exec("bash", runtime: "docker")).isEmpty)
        XCTAssertEqual(set.pushdown.kinds, [.exec]) // execve syscall events never meet a rule on exec events (the process sensor reports them)
    }

    func testBpfdVariants() throws {
        let noFilter = try BpfdRules.load("tracer = \"open\"\nname = \"all-opens\"\nactions = [\"stdout\"]\n", file: "x.toml")
        XCTAssertEqual(noFilter.name, "all-opens")
        XCTAssertEqual(noFilter.actions, ["stdout"])
        XCTAssertEqual(noFilter.condition, "evt.type in (open, openat, openat2)", "no filters: every event of the program")
        let files = try BpfdRules.load("""
        tracer = "open"
        [filterEvents]
          [filterEvents.filename]
          values = ["/etc/shadow", "/etc/sudoers"]
          [filterEvents.command]
          values = ["cat"]
        """, file: "password_files.toml")
        XCTAssertEqual(files.condition, "evt.type in (open, openat, openat2) and (fd.name contains /etc/shadow or fd.name contains /etc/sudoers or proc.name contains cat)")
    }

    func testBpfdErrorsNameTheLineAndTheValidKeys() {
        expectError({ _ = try BpfdRules.load("program = \"exec\"\n[filterEvents.comand]\nvalues = [\"x\"]\n", file: "r.toml") },
                    "r.toml:2:15", "unknown key 'comand' for program exec (valid: argv, command, containerRuntimes)")
        expectError({ _ = try BpfdRules.load("program = \"bashreadline\"\n", file: "r.toml") }, "r.toml:1:11", "not available in Vigil")
        expectError({ _ = try BpfdRules.load("program = exec\n", file: "r.toml") }, "r.toml:1:11", "strings need quotes")
        expectError({ _ = try BpfdRules.load("program = \"exec\"\nvalues = [\"a\"\n", file: "r.toml") }, "r.toml:3:1", "expected ',' or ']'")
        expectError({ _ = try BpfdRules.load("[filterEvents.command]\nvalues = []\n", file: "r.toml") }, "r.toml:1:1", "missing 'program'")
        expectError({ _ = try BpfdRules.load("program = \"exec\"\ncontainerRuntimes = [\"dokker\"]\n", file: "r.toml") }, "r.toml:1:1", "unknown container runtime 'dokker'")
    }

    func testConvertPrintsYAMLThatMeansTheSame() throws {
        let rule = try BpfdRules.load(Self.seedTOML, file: "seed.toml")
        let yaml = BpfdRules.yaml(rule)
        let items = try YAMLRules.load(yaml, file: "converted.yaml")
        let set = try RuleSet(files: [("converted.yaml", items)])
        XCTAssertEqual(set.rules.first?.rule.condition, rule.condition)
        XCTAssertEqual(set.matches(exec("sshd", runtime: "docker")).count, 1)
    }

    func testYAMLLocationsPointIntoTheFile() throws {
        let yaml = """
        - list: l
          items: [a, b]

        - rule: r
          desc: d
          condition: >
            evt.type = execve and
            proc.name in (l)
          output: "x %proc.name"
          priority: info
        """
        let items = try YAMLRules.load(yaml, file: "f.yaml")
        XCTAssertEqual(items.count, 2)
        guard case .rule(let rule, .define) = items[1] else { return XCTFail("second item is a rule") }
        XCTAssertEqual(rule.location, SourceLocation(file: "f.yaml", line: 4, column: 9))
        XCTAssertEqual(rule.condition?.location, SourceLocation(file: "f.yaml", line: 7, column: 5), "block scalar: the next line")
        XCTAssertEqual(rule.output?.location, SourceLocation(file: "f.yaml", line: 9, column: 12), "after the quote")
        XCTAssertEqual(rule.priority, .informational)
    }

    func testYAMLErrors() {
        expectError({ _ = try YAMLRules.load("- rule: a\n  condition: [unclosed\n", file: "f.yaml") }, "f.yaml:3:1", "YAML")
        expectError({ _ = try YAMLRules.load("- rule: a\n  conditon: x\n", file: "f.yaml") }, "f.yaml:2:3", "unknown key 'conditon' in a rule")
        expectError({ _ = try YAMLRules.load("- rule: a\n  priority: urgent\n", file: "f.yaml") }, "f.yaml:2:13", "unknown priority 'urgent'")
        expectError({ _ = try YAMLRules.load("rule: a\n", file: "f.yaml") }, "f.yaml:1:1", "YAML sequence")
        expectError({ _ = try RuleSet(files: [("f.yaml", try YAMLRules.load("- rule: a\n  desc: x\n", file: "f.yaml"))]) }, "f.yaml:1:9", "has no condition")
    }

    private let base = """
    - list: shells
      items: [sh, bash]
    - macro: spawned
      condition: evt.type = execve
    - rule: shell
      desc: a shell
      condition: spawned and proc.name in (shells)
      output: "shell %proc.name"
      priority: WARNING
    """

    func testMergingAcrossFiles() throws {
        let baseItems = try YAMLRules.load(base, file: "base.yaml")
        func set(_ extra: String) throws -> RuleSet {
            try RuleSet(files: [("base.yaml", baseItems), ("extra.yaml", try YAMLRules.load(extra, file: "extra.yaml"))])
        }
        XCTAssertEqual(try set("- list: shells\n  items: [zsh]\n  append: true\n").matches(exec("zsh")).count, 1, "list append")
        XCTAssertEqual(try set("- list: shells\n  items: [zsh]\n  override:\n    items: replace\n").matches(exec("sh")).count, 0, "list replace")
        XCTAssertEqual(try set("- rule: shell\n  condition: and user.uid = 1\n  append: true\n").matches(exec("sh")).count, 0, "condition append")
        XCTAssertEqual(try set("- rule: shell\n  condition: evt.type = execve and proc.name = nc\n  override:\n    condition: replace\n").matches(exec("nc")).count, 1)
        XCTAssertEqual(try set("- rule: shell\n  enabled: false\n").rules.count, 0, "switched off")
        XCTAssertEqual(try set("- rule: shell\n  enabled: false\n").disabled, ["shell"])
        let exceptions = try set("""
        - rule: shell
          exceptions:
            - name: allowed
              fields: [proc.name, user.uid]
              comps: [=, =]
              values:
                - [bash, 0]
          override:
            exceptions: append
        """)
        XCTAssertEqual(exceptions.matches(exec("bash")).count, 0, "excepted")
        XCTAssertEqual(exceptions.matches(exec("sh")).count, 1)
        // Defined again: the new definition replaces the first, as in Falco, with a warning naming both.
        let again = try set("- rule: shell\n  desc: again\n  condition: evt.type = execve and proc.name = zsh\n  output: x\n  priority: INFO\n")
        XCTAssertEqual(again.rules.map(\.rule.description), ["again"])
        XCTAssertEqual(again.matches(exec("zsh")).count, 1)
        XCTAssertEqual(again.matches(exec("bash")).count, 0, "the first condition is gone")
        XCTAssertEqual(again.warnings.map(\.description), [
            "extra.yaml:1:9: warning: rule 'shell' is defined again: this definition replaces the one at base.yaml:5 (as in Falco; use override or append to change a rule)",
        ])
        expectError({ _ = try set("- macro: nope\n  condition: x\n  append: true\n") }, "extra.yaml:2:14", "never defined")
    }

    func testOutputTemplates() throws {
        let template = OutputTemplate("user=%user.name cmd=%proc.cmdline a2=%proc.aname[2] %container.info res=%evt.res.", at: SourceLocation(file: "f", line: 3, column: 11))
        var event = exec("ls", args: ["ls", "-l"])
        event.process.userName = "root"
        XCTAssertEqual(template.render(event), "user=root cmd=ls -l a2=<NA> container_id=host container_name=host res=<NA>.")
        XCTAssertTrue(template.unknownFields.isEmpty)
        // A field Vigil does not have prints <NA> (Falco's way), and is listed with a suggestion.
        let typo = OutputTemplate("x %proc.nmae y", at: SourceLocation(file: "f", line: 3, column: 11))
        XCTAssertEqual(typo.render(event), "x <NA> y")
        XCTAssertEqual(typo.unknownFields.map(\.location), [SourceLocation(file: "f", line: 3, column: 13)])
        XCTAssertEqual(typo.unknownFields.map(\.suggestion), ["proc.name"])
        // Numbers (signed, unsigned, 0 and the extremes), booleans and lists as Falco prints them.
        let numbers = OutputTemplate("%evt.rawres %proc.pid %evt.is_open_create %fd.name", at: SourceLocation(file: "f", line: 1, column: 1))
        for (result, text) in [(Int64(-2), "-2"), (0, "0"), (Int64.min, "-9223372036854775808"), (Int64.max, "9223372036854775807")] {
            var open = event
            open.payload = .open(.init(syscall: "openat", name: "/a", path: "/a", flags: 0, mode: 0, dirfd: -100, result: result, truncated: false))
            XCTAssertEqual(numbers.render(open), "\(text) 5 false /a")
        }
    }

    /// `make fuzz` (output target) found `%proc.aname[-3]` trapping in `render` (index -4 of the
    /// ancestors): an alert's output could stop the daemon. Conditions refuse such a number at
    /// load; an output prints `<NA>` for it, as for any ancestor Vigil does not know.
    func testOutputsWithANegativeAncestorNumberPrintNA() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../fuzz/regressions/output/negative-ancestor-number.txt")
        let found = try XCTUnwrap(String(data: try Data(contentsOf: url), encoding: .utf8))
        XCTAssertTrue(found.contains("%proc.aname[-3]"), "the committed input is the one found")
        var event = exec("ls", args: ["ls", "-l"])
        event.process.ancestorNames = ["bash", "sshd"]
        XCTAssertTrue(OutputTemplate(found, at: SourceLocation(file: "f", line: 1, column: 1)).render(event).contains("aamne=<NA>"))
        let template = OutputTemplate("%proc.aname[-1] %proc.apid[-2] %proc.aexe[-1] %proc.aexepath[-9223372036854775808] %proc.aname[1] %proc.aname[18446744073709551615]",
                                      at: SourceLocation(file: "f", line: 1, column: 1))
        XCTAssertEqual(template.render(event), "<NA> <NA> <NA> <NA> bash <NA>")
    }

    /// fuzz/regressions/toml/deeply-nested-arrays.toml (`make fuzz`, toml target, after 1.17 M
    /// executions) opens ~2,200 arrays: the parser's recursion ran off the stack (a rules file
    /// sent to `vigil create` could stop the daemon). Arrays nested deeper than 32 are an error
    /// naming the file and line; 32 still parse.
    func testDeeplyNestedTOMLArraysAreAnErrorNotACrash() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../fuzz/regressions/toml/deeply-nested-arrays.toml")
        let found = String(decoding: try Data(contentsOf: url), as: UTF8.self)
        XCTAssertGreaterThan(found.filter { $0 == "[" }.count, 2000, "the committed input is the one found")
        for text in [found, "values = " + String(repeating: "[", count: 100_000)] {
            XCTAssertThrowsError(try RuleFiles.items(text: text, file: "deep.toml")) { error in
                XCTAssertTrue("\(error)".contains("deep.toml:"), "\(error)")
                XCTAssertTrue("\(error)".contains("arrays nested deeper than 32"), "\(error)")
            }
        }
        let deepest = "[filterEvents]\n[filterEvents.command]\nvalues = " + String(repeating: "[", count: 32) + "\"ls\"" + String(repeating: "]", count: 32) + "\n"
        do {
            _ = try RuleFiles.items(text: deepest, file: "deepest.toml")
        } catch {
            XCTAssertFalse("\(error)".contains("nested deeper"), "32 arrays parse (the rule itself may be refused): \(error)")
        }
    }

    func testTheDefaultRulesetCompiles() throws {
        let set = try RuleFiles.ruleSet(paths: [])
        XCTAssertGreaterThanOrEqual(set.rules.count, 10)
        // syscall events named execve, openat, ...; fim events (made only when `fim:` is configured)
        XCTAssertEqual(set.pushdown.kinds, [.exec, .open, .syscall, .fim])
        for rule in set.rules {
            XCTAssertFalse(rule.rule.tags.filter { $0.hasPrefix("T1") }.isEmpty, "\(rule.rule.name) has a MITRE technique tag")
            XCTAssertTrue(rule.rule.output.contains("%container"), "\(rule.rule.name) names the container")
        }
    }

    func testRulesWithUnknownFieldsAreSkippedAndReportedWhenTheyAskForIt() throws {
        // Stock Falco rules use fields Vigil lacks; with skip-if-unknown-filter they are left out,
        // each listed with the field and where it is, and the other rules load.
        let yaml = """
            - macro: open_write
              condition: evt.type in (open, openat, openat2) and evt.is_open_write = true and ka.target.namespace = 'f' and fd.num >= 0
            - list: repositories
              items: [docker.io/library/nginx]
            - rule: Write to a regular file
              desc: uses ka.target.namespace (a field Vigil lacks) through a macro
              condition: open_write and fd.name startswith /etc
              output: "write (file=%fd.name)"
              priority: ERROR
              skip-if-unknown-filter: true
            - rule: Image repository
              desc: uses container.healthcheck
              condition: evt.type = execve and container.healthcheck in (repositories)
              output: "exec (image=%container.healthcheck)"
              priority: NOTICE
              skip-if-unknown-filter: true
            - rule: Flags in the output
              desc: an unknown field in the output only
              condition: evt.type = execve and proc.name = nc
              output: "nc (flags=%evt.arg.no_such_argument)"
              priority: NOTICE
              skip-if-unknown-filter: true
            - rule: Shell
              desc: only known fields
              condition: evt.type = execve and proc.name = sh
              output: "shell (cmd=%proc.cmdline)"
              priority: NOTICE
              skip-if-unknown-filter: true
            """
        let set = try RuleSet(files: [("falco_rules.yaml", try YAMLRules.load(yaml, file: "falco_rules.yaml"))])
        XCTAssertEqual(set.rules.map(\.rule.name), ["Flags in the output", "Shell"], "an unknown output field prints <NA>: no skip")
        XCTAssertEqual(set.skipped.map(\.name), ["Write to a regular file", "Image repository"])
        XCTAssertEqual(set.skipped.map { $0.error.unknownField }, ["ka.target.namespace", "container.healthcheck"])
        XCTAssertEqual(set.skipped[0].description,
                       "falco_rules.yaml:5:9: rule 'Write to a regular file' skipped: Vigil has no field 'ka.target.namespace' (falco_rules.yaml:2:83, in macro 'open_write')")
        XCTAssertEqual(set.warnings.filter { $0.message.contains("skipped") }.map(\.description), set.skipped.map { "\($0.location): warning: \($0.message)" })
        XCTAssertEqual(set.matches(exec("sh")).map(\.rule.name), ["Shell"])

        // Without the key (or with false) the same: issue 12 section 5 skips every such rule.
        let strict = yaml.replacingOccurrences(of: "skip-if-unknown-filter: true", with: "skip-if-unknown-filter: false")
        let same = try RuleSet(files: [("falco_rules.yaml", try YAMLRules.load(strict, file: "falco_rules.yaml"))])
        XCTAssertEqual(same.rules.map(\.rule.name), ["Flags in the output", "Shell"])
        XCTAssertEqual(same.skipped, set.skipped)
        // Other errors are never skipped.
        let broken = yaml.replacingOccurrences(of: "fd.name startswith /etc", with: "fd.name startswith")
        expectError({ _ = try RuleSet(files: [("falco_rules.yaml", try YAMLRules.load(broken, file: "falco_rules.yaml"))]) },
                    "falco_rules.yaml:7:47", "expected a value after 'startswith'")
    }

    /// Only a rule set that reads proc.env (condition or output) asks the process table to keep
    /// environments: the default rules do not.
    func testOnlyRulesReadingTheEnvironmentAskForIt() throws {
        let defaults = try RuleSet(files: [(RuleFiles.defaultName, try RuleFiles.defaultItems())])
        XCTAssertFalse(defaults.readsProcessEnvironment)
        func set(_ condition: String, output: String = "o") throws -> RuleSet {
            let yaml = "- rule: r\n  desc: d\n  condition: \(condition)\n  output: \(output)\n  priority: INFO\n"
            return try RuleSet(files: [("env.yaml", try YAMLRules.load(yaml, file: "env.yaml"))])
        }
        XCTAssertTrue(try set("evt.type = execve and proc.env contains HTTP_PROXY").readsProcessEnvironment)
        XCTAssertTrue(try set("evt.type = execve", output: "env=%proc.env_truncated").readsProcessEnvironment)
        XCTAssertFalse(try set("evt.type = execve and proc.name = curl").readsProcessEnvironment)
    }

    /// Only a rule set that runs a rule reading dns.name.new (condition or output) makes the
    /// daemon keep DNS baselines: the default rule that does is off until a file turns it on.
    func testOnlyAnEnabledRuleReadingDNSNameNewAsksForTheBaselines() throws {
        let defaults = try RuleSet(files: [(RuleFiles.defaultName, try RuleFiles.defaultItems())])
        XCTAssertFalse(defaults.readsDNSBaseline, "the default rule is disabled")
        XCTAssertTrue(defaults.disabled.contains("DNS lookup of a name new to the container image"), "\(defaults.disabled)")
        let on = "- rule: DNS lookup of a name new to the container image\n  enabled: true\n"
        let enabled = try RuleSet(files: [(RuleFiles.defaultName, try RuleFiles.defaultItems()), ("on.yaml", try YAMLRules.load(on, file: "on.yaml"))])
        XCTAssertTrue(enabled.readsDNSBaseline)
        XCTAssertTrue(enabled.pushdown.messages[.dns].wanted, "the rule reads DNS")
        func set(_ condition: String, output: String = "o") throws -> RuleSet {
            let yaml = "- rule: r\n  desc: d\n  condition: \(condition)\n  output: \(output)\n  priority: INFO\n"
            return try RuleSet(files: [("dns.yaml", try YAMLRules.load(yaml, file: "dns.yaml"))])
        }
        XCTAssertTrue(try set("dns.qr = R", output: "new=%dns.name.new").readsDNSBaseline)
        XCTAssertFalse(try set("dns.qr = R and dns.name = example.org").readsDNSBaseline)
    }
}
