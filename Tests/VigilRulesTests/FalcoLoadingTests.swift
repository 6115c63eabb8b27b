import Foundation
import VigilEvents
import VigilRules
import XCTest

/// Falco's meaning of loading (issue 11, section 2): a macro or list with an unknown field only
/// matters to the rules that use it; output fields Vigil lacks print `<NA>`; a rule that needs
/// events Vigil never produces loads with a warning; every error of every file is reported, and
/// an error from an interaction names both places.
final class FalcoLoadingTests: XCTestCase {
    /// Written in the style of Falco's stock rules (macros built on fields Vigil lacks, outputs
    /// naming `%evt.arg.flags`, network rules), not copied from them.
    static let falcoStyle = """
        - macro: open_read
          condition: (evt.type in (open,openat,openat2) and evt.is_open_read=true and ka.target.namespace='f' and fd.num>=0)
        - macro: unused_network
          condition: (fd.sip.name = "kubernetes.default.svc" and fd.l4proto = tcp)
        - macro: proc_is_new
          condition: (proc.duration <= 5000000000)
        - list: sensitive_file_names
          items: [/etc/shadow, /etc/sudoers]
        - rule: Skipped read
          desc: uses ka.target.namespace through open_read and asks to be skipped
          condition: open_read and fd.name in (sensitive_file_names)
          output: "read (file=%fd.name)"
          priority: WARNING
          skip-if-unknown-filter: true
        - rule: Strict read
          desc: uses ka.target.namespace through open_read without asking to be skipped
          condition: open_read and fd.name in (sensitive_file_names)
          output: "read (file=%fd.name)"
          priority: WARNING
        - rule: Known fields only
          desc: loads; its output names a field Vigil lacks
          condition: evt.type = execve and evt.dir = < and proc.name = nc and not proc_is_new
          output: "nc (cmd=%proc.cmdline exe_flags=%evt.arg.flags health=%container.healthcheck name=%proc.nmae)"
          priority: NOTICE
        - rule: Container started
          desc: needs Falco's container events, which Vigil does not produce
          condition: evt.type = container and evt.dir = < and proc.name = nc
          output: "container (cmd=%proc.cmdline)"
          priority: NOTICE
        """

    private func exec(_ comm: String) -> Event {
        var e = Event(bootTimeNs: 10_000_000_000, timeNs: 0, cgroupID: 0, pid: 5, tid: 5, ppid: 1, uid: 0, gid: 0, cpu: 0, mountNamespace: 0,
                      pidNamespace: 0, comm: ByteString(comm),
                      payload: .exec(.init(filename: "/usr/bin/nc", executablePath: "/usr/bin/nc", arguments: [ByteString(comm), "-l"],
                                           argumentsTruncated: false, cwd: "/", tty: "", ttyNumber: 0, loginUID: 0, startTimeNs: 1)))
        e.process.arguments = [ByteString(comm), "-l"]
        return e
    }

    private func errors(_ body: () throws -> Void) -> [RuleError] {
        do {
            try body()
            XCTFail("expected errors")
            return []
        } catch let error as RuleError {
            return error.all
        } catch {
            XCTFail("not a RuleError: \(error)")
            return []
        }
    }

    private func load(_ text: String, _ file: String = "falco_style.yaml") throws -> RuleSet {
        try RuleSet(files: [(file, try YAMLRules.load(text, file: file))])
    }

    /// Both rules using the macro with a field Vigil lacks are skipped, with or without
    /// `skip-if-unknown-filter` (issue 12 section 5), each in one warning line naming the rule,
    /// the field, where it is written and the macro; the file's other rules load; the unused
    /// macro with unknown fields costs nothing.
    func testAnUnknownFieldInAMacroOnlyMattersToTheRulesUsingIt() throws {
        let set = try load(Self.falcoStyle)
        XCTAssertEqual(set.rules.map(\.rule.name), ["Known fields only", "Container started"])
        XCTAssertEqual(set.skipped.map(\.name), ["Skipped read", "Strict read"])
        XCTAssertEqual(set.skipped.map(\.field), ["ka.target.namespace", "ka.target.namespace"])
        XCTAssertEqual(set.skipped.first?.description,
                       "falco_style.yaml:9:9: rule 'Skipped read' skipped: Vigil has no field 'ka.target.namespace' (falco_style.yaml:2:79, in macro 'open_read')")
        XCTAssertEqual(set.warnings.prefix(2).map(\.description), [
            "falco_style.yaml:9:9: warning: rule 'Skipped read' skipped: Vigil has no field 'ka.target.namespace' (falco_style.yaml:2:79, in macro 'open_read')",
            "falco_style.yaml:15:9: warning: rule 'Strict read' skipped: Vigil has no field 'ka.target.namespace' (falco_style.yaml:2:79, in macro 'open_read')",
        ])
    }

    /// Issue 12 section 5: a file with one good rule and one naming a field Vigil lacks loads
    /// the good one and reports the other in one line with the nearest known names.
    func testARuleNeedingAFieldVigilLacksIsSkippedInOneLineAndTheFileLoads() throws {
        let text = """
            - rule: Good
              desc: d
              condition: evt.type = execve and proc.name = nc
              output: o
              priority: INFO
            - rule: Typo
              desc: d
              condition: evt.type = execve and proc.nmae = nc
              output: o
              priority: INFO
            """
        let set = try load(text, "one.yaml")
        XCTAssertEqual(set.rules.map(\.rule.name), ["Good"])
        XCTAssertEqual(set.matches(exec("nc")).map(\.rule.name), ["Good"])
        XCTAssertEqual(set.skipped.map(\.description),
                       ["one.yaml:6:9: rule 'Typo' skipped: Vigil has no field 'proc.nmae' (one.yaml:8:36); did you mean 'proc.name', 'proc.aexe', 'proc.aname'?"])
        XCTAssertEqual(set.warnings.map(\.description),
                       ["one.yaml:6:9: warning: rule 'Typo' skipped: Vigil has no field 'proc.nmae' (one.yaml:8:36); did you mean 'proc.name', 'proc.aexe', 'proc.aname'?"])
        // Any other error still fails the load.
        let found = errors { _ = try self.load(text.replacingOccurrences(of: "proc.name = nc", with: "proc.name = nc and no_such_macro"), "one.yaml") }
        XCTAssertEqual(found.map(\.location.line), [3], "\(found)")
    }

    /// Output fields Vigil lacks print `<NA>`, as in Falco, and are a warning, never a skip.
    func testUnknownOutputFieldsPrintNAAndOnlyWarn() throws {
        let text = Self.falcoStyle.replacingOccurrences(of: "- rule: Strict read", with: "- rule: Strict read\n  enabled: false")
        let set = try load(text)
        let rule = try XCTUnwrap(set.rules.first { $0.rule.name == "Known fields only" })
        var old = exec("nc")
        old.process.startTimeNs = 1
        XCTAssertEqual(set.matches(old).map(\.rule.name), ["Known fields only"], "a process 10 s old is not new")
        XCTAssertEqual(rule.output.render(old), "nc (cmd=nc -l exe_flags=<NA> health=<NA> name=<NA>)")
        // evt.arg.flags is a field (the syscall table's `flags` parameters): an exec has none, so <NA>.
        XCTAssertEqual(rule.output.unknownFields.map(\.name), ["container.healthcheck", "proc.nmae"])
        XCTAssertEqual(rule.output.unknownFields.map(\.suggestion), [nil, "proc.name"])
        let warning = try XCTUnwrap(set.warnings.first { $0.rule == "Known fields only" && $0.message.contains("<NA>") })
        XCTAssertEqual(warning.description,
                       "falco_style.yaml:24:66: warning: rule 'Known fields only': the output names fields Vigil does not have, printed as <NA>: %container.healthcheck, %proc.nmae (did you mean '%proc.name'?)")
    }

    /// A rule on events Vigil never produces loads (as in Falco, where it would wait for them)
    /// with a warning saying so; so does a rule whose condition is false for every event.
    func testARuleOnEventsVigilNeverProducesLoadsWithAWarning() throws {
        let text = Self.falcoStyle.replacingOccurrences(of: "- rule: Strict read", with: "- rule: Strict read\n  enabled: false")
            + "\n- macro: never_true\n  condition: (evt.num=0)\n- rule: Off\n  desc: d\n  condition: never_true and proc.name = x\n  output: o\n  priority: INFO\n"
        let set = try load(text)
        let connect = try XCTUnwrap(set.rules.first { $0.rule.name == "Container started" })
        XCTAssertTrue(connect.condition.kinds.isEmpty)
        XCTAssertEqual(connect.condition.unproducedEventTypes, ["container"])
        let never = set.warnings.filter { $0.message.contains("never matches") }
        XCTAssertEqual(never.map(\.description), [
            "falco_style.yaml:26:9: warning: rule 'Container started' is loaded but never matches: its condition needs events Vigil does not produce (evt.type container)",
            "falco_style.yaml:33:9: warning: rule 'Off' is loaded but never matches: its condition is false for every event Vigil produces (it folds to false when compiled: never_true, ...)",
        ])
    }

    /// Every error of every rule is reported, not only the first, each naming its rule.
    func testEveryErrorIsReported() {
        let text = """
            - rule: a
              desc: d
              condition: evt.type = execve and proc.nmae = x
              output: o
              priority: INFO
            - rule: b
              desc: d
              condition: evt.type = execve and ka.target.namespace = f
              output: o
              priority: INFO
            - rule: c
              desc: d
              conditon: typo in a key
            - rule: d
              desc: d
              condition: undefined_macro
              output: o
              priority: INFO
            """
        let found = errors { _ = try self.load(text, "many.yaml") }
        XCTAssertEqual(found.map(\.description), [
            "many.yaml:13:3: unknown key 'conditon' in a rule (valid: actions, append, condition, desc, enabled, exceptions, output, override, priority, rule, skip-if-unknown-filter, source, tags, warn_evttypes)",
        ], "a file whose items cannot be read stops before merging, with every such item's error")
        let fixed = text.replacingOccurrences(of: "  conditon: typo in a key", with: "  condition: proc.name = x\n  output: o\n  priority: INFO")
        let compiled = errors { _ = try self.load(fixed.replacingOccurrences(of: "proc.nmae = x", with: "no_macro_a")
                                                       .replacingOccurrences(of: "ka.target.namespace = f", with: "no_macro_b"), "many.yaml") }
        XCTAssertEqual(compiled.count, 3, "\(compiled)")
        XCTAssertEqual(compiled.map(\.location.line), [3, 8, 18])
        XCTAssertTrue(compiled[0].message.contains("undefined macro 'no_macro_a'") && compiled[0].message.hasSuffix("(rule 'a')"), compiled[0].message)
        XCTAssertTrue(compiled[1].message.contains("undefined macro 'no_macro_b'") && compiled[1].message.hasSuffix("(rule 'b')"), compiled[1].message)
        XCTAssertTrue(compiled[2].message.contains("undefined macro 'undefined_macro'") && compiled[2].message.hasSuffix("(rule 'd')"), compiled[2].message)
        // Rules a and b naming fields Vigil lacks are skipped, not errors: only d's remains.
        XCTAssertEqual(errors { _ = try self.load(fixed, "many.yaml") }.map(\.location.line), [18])
    }

    /// Errors of several files are all reported: a file that cannot be read or parsed does
    /// not hide the errors of the next.
    func testErrorsOfEveryFileAreReported() throws {
        let dir = NSTemporaryDirectory() + "vigil-falco-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "- rule: a\n  condition: [unclosed\n".write(toFile: dir + "/one.yaml", atomically: true, encoding: .utf8)
        try "- rule: b\n  desc: d\n  condition: no_such_macro\n  output: o\n  priority: INFO\n".write(toFile: dir + "/two.yaml", atomically: true, encoding: .utf8)
        let found = errors { _ = try RuleFiles.ruleSet(paths: [dir + "/one.yaml", dir + "/two.yaml", dir + "/missing.yaml"], defaults: false) }
        XCTAssertEqual(found.map(\.location.file), [dir + "/one.yaml", dir + "/missing.yaml", dir + "/two.yaml"], "\(found)")
    }

    /// A user file's macro breaking a default rule: the error is where the user wrote the
    /// field, and names the default rule and where that is.
    func testAnErrorFromAnInteractionNamesBothPlaces() throws {
        let base = """
            - macro: spawned
              condition: evt.type = execve
            - rule: Shell
              desc: d
              condition: spawned and proc.name = sh
              output: o
              priority: INFO
            """
        let user = """
            - macro: spawned
              condition: and no_such_macro
              append: true
            """
        let found = errors {
            _ = try RuleSet(files: [("default.yaml", try YAMLRules.load(base, file: "default.yaml")),
                                    ("user.yaml", try YAMLRules.load(user, file: "user.yaml"))])
        }
        XCTAssertEqual(found.map(\.description),
                       ["user.yaml:2:18: undefined macro 'no_such_macro' in macro 'spawned', used by rule 'Shell' at default.yaml:3:9"])

        // The same through an appended rule condition written in the user file.
        let userRule = """
            - rule: Shell
              condition: and no_such_macro
              append: true
            """
        let appended = errors {
            _ = try RuleSet(files: [("default.yaml", try YAMLRules.load(base, file: "default.yaml")),
                                    ("user.yaml", try YAMLRules.load(userRule, file: "user.yaml"))])
        }
        XCTAssertEqual(appended.map(\.description),
                       ["user.yaml:2:18: undefined macro 'no_such_macro', used by rule 'Shell' at default.yaml:3:9"])

        // A field Vigil lacks written there skips the rule, in one line naming both places.
        let skipping = try RuleSet(files: [("default.yaml", try YAMLRules.load(base, file: "default.yaml")),
                                           ("user.yaml", try YAMLRules.load(user.replacingOccurrences(of: "no_such_macro", with: "ka.target.namespace = f"), file: "user.yaml"))])
        XCTAssertEqual(skipping.skipped.map(\.description),
                       ["default.yaml:3:9: rule 'Shell' skipped: Vigil has no field 'ka.target.namespace' (user.yaml:2:18, in macro 'spawned')"])
    }

    /// A user file's list item breaking a default rule: the error is at the rule's use of the
    /// list, and names the list and where the item was written.
    func testAListItemFromAnotherFileIsNamedWithItsPlace() {
        let base = "- list: admins\n  items: [0]\n- rule: Admin shell\n  desc: d\n  condition: evt.type = execve and user.uid in (admins)\n  output: o\n  priority: INFO\n"
        let user = "- list: admins\n  items: [root]\n  append: true\n"
        let found = errors {
            _ = try RuleSet(files: [("default.yaml", try YAMLRules.load(base, file: "default.yaml")),
                                    ("user.yaml", try YAMLRules.load(user, file: "user.yaml"))])
        }
        XCTAssertEqual(found.map(\.description),
                       ["default.yaml:5:49: user.uid is a number (uint), 'root' is not (an item of list 'admins' at user.yaml:1:9) (rule 'Admin shell')"])
    }

    /// fd.port matches either end's port, as Falco's: `in` and `=` when one of them does, `!=`
    /// when neither does (Falco's incubating `expected_udp_traffic` macro).
    func testEitherEndsPortMatches() throws {
        let set = try load("""
            - rule: expected
              desc: d
              condition: evt.type = connect and fd.port in (53, 123)
              output: o
              priority: INFO
            - rule: not 443
              desc: d
              condition: evt.type = connect and fd.port != 443
              output: o
              priority: INFO
            """)
        func connect(from: UInt16, to: UInt16) throws -> Event {
            let index = try XCTUnwrap(Syscalls.index(named: "connect"))
            var e = Event(bootTimeNs: 1, timeNs: 2, cgroupID: 3, pid: 10, tid: 10, ppid: 1, uid: 0, gid: 0, cpu: 0,
                          mountNamespace: 0, pidNamespace: 0, comm: "dig",
                          payload: .syscall(.init(index: index, result: 0, latencyNs: 0, args: [3, 0x1000, 16, 0, 0, 0, 0, 0])))
            let socket = SocketInfo(l4proto: .udp, local: SocketAddress(ip: try XCTUnwrap(IPAddress("10.0.0.2")), port: from),
                                    remote: SocketAddress(ip: try XCTUnwrap(IPAddress("10.0.0.9")), port: to), role: .client, connected: true)
            e.setFD(FDInfo(number: 3, type: .ipv4, name: ByteString("10.0.0.2:\(from)->10.0.0.9:\(to)"), socket: socket))
            return e
        }
        XCTAssertEqual(set.matches(try connect(from: 40000, to: 53)).map(\.rule.name), ["expected", "not 443"], "the server's port")
        XCTAssertEqual(set.matches(try connect(from: 123, to: 8080)).map(\.rule.name), ["expected", "not 443"], "the client's port")
        XCTAssertEqual(set.matches(try connect(from: 40000, to: 443)).map(\.rule.name), [], "443 at one end")
        XCTAssertEqual(set.matches(try connect(from: 443, to: 80)).map(\.rule.name), [], "443 at the other")
    }

    /// Falco's three stock files loaded together, in Falco's order (stable, incubating, sandbox;
    /// the later use the earlier's macros and lists), when copies are at $VIGIL_FALCO_RULES,
    /// $VIGIL_FALCO_INCUBATING_RULES and $VIGIL_FALCO_SANDBOX_RULES (falcosecurity/rules
    /// rules/*.yaml): every rule compiles, none is skipped. Checked on the copies of 2026-12 (25,
    /// 27 and 37 rule definitions): the incubating file defines "Fileless execution via
    /// memfd_create" again, which replaces the stable file's as in Falco, so 88 rules: 76
    /// enabled, 12 disabled by their files.
    func testFalcosWholeStockRuleset() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let stable = environment["VIGIL_FALCO_RULES"], let incubating = environment["VIGIL_FALCO_INCUBATING_RULES"],
              let sandbox = environment["VIGIL_FALCO_SANDBOX_RULES"] else {
            throw XCTSkip("set VIGIL_FALCO_RULES, VIGIL_FALCO_INCUBATING_RULES and VIGIL_FALCO_SANDBOX_RULES to copies of falcosecurity/rules "
                          + "rules/falco_rules.yaml, falco-incubating_rules.yaml and falco-sandbox_rules.yaml to run this test")
        }
        var files: [(file: String, items: [RuleItem])] = []
        var definitions: [[String]] = []
        for path in [stable, incubating, sandbox] {
            let items = try RuleFiles.items(path: path)
            files.append((path, items))
            definitions.append(items.compactMap { if case .rule(let rule, .define) = $0 { return rule.name }; return nil })
        }
        XCTAssertEqual(definitions.map(\.count), [25, 27, 37])
        let set = try RuleSet(files: files)
        let names = Set(definitions.joined())
        XCTAssertEqual(names.count, 88)
        XCTAssertEqual(Set(set.rules.map(\.rule.name) + set.disabled), names)
        XCTAssertEqual(set.rules.count, 76)
        XCTAssertEqual(set.disabled.count, 12)
        XCTAssertEqual(set.skipped.map(\.name), [])
        let redefined = set.warnings.filter { $0.message.contains("is defined again") }
        XCTAssertEqual(redefined.map(\.rule), ["Fileless execution via memfd_create"])
        XCTAssertEqual(redefined.first?.location.file, incubating)
        XCTAssertEqual(set.rules.first { $0.rule.name == "Fileless execution via memfd_create" }?.rule.location.file, incubating,
                       "the incubating definition replaced the stable one")
        // What the outputs name that Vigil lacks (printed <NA>), and the rule that cannot match
        // until its template list is filled.
        XCTAssertEqual(set.rules.flatMap { rule in rule.output.unknownFields.map { "\(rule.rule.name): \($0.name)" } },
                       ["Drop and execute new binary in container: proc.exe_ino.ctime_duration_proc_start"])
        XCTAssertEqual(set.warnings.filter { $0.message.contains("never matches") }.map(\.rule), ["Network Connection outside Local Subnet"])
        for name in ["Change thread namespace", "Launch Privileged Container", "Launch Excessively Capable Container",
                     "System procs network activity", "Program run with disallowed http proxy env", "Unexpected UDP Traffic",
                     "Launch Sensitive Mount Container", "Launch Disallowed Container", "Basic Interactive Reconnaissance",
                     "Known Cryptominer Process Executed", "Container Access to Host Sensitive Paths"] {
            XCTAssertTrue(set.rules.contains { $0.rule.name == name }, "\(name) is loaded")
        }
        print("stock ruleset: \(definitions.map(\.count)) definitions, \(set.rules.count) enabled, \(set.disabled.count) disabled, \(set.skipped.count) skipped")
        for warning in set.warnings { print("  \(warning)") }
    }

    /// Falco's real stock ruleset, when a copy is at $VIGIL_FALCO_RULES (falcosecurity/rules
    /// rules/falco_rules.yaml): every field its conditions use is in the catalogue, so it loads
    /// as it is, every rule compiled, and no rule is one that can never match (checked on the
    /// copy of 2026-12: 25 rules; its outputs name one field Vigil lacks,
    /// proc.exe_ino.ctime_duration_proc_start, printed as <NA>).
    func testFalcosStockRuleset() throws {
        guard let path = ProcessInfo.processInfo.environment["VIGIL_FALCO_RULES"] else {
            throw XCTSkip("set VIGIL_FALCO_RULES to a copy of falcosecurity/rules rules/falco_rules.yaml to run this test")
        }
        let items = try RuleFiles.items(path: path)
        let names: [String] = items.compactMap { if case .rule(let rule, .define) = $0 { return rule.name }; return nil }
        XCTAssertGreaterThan(names.count, 20)
        let set = try RuleSet(files: [(path, items)])
        XCTAssertEqual(Set(set.rules.map(\.rule.name) + set.disabled), Set(names))
        XCTAssertEqual(set.skipped.map(\.name), [])
        XCTAssertEqual(set.warnings.filter { $0.message.contains("never matches") }.map(\.description), [])
        for name in ["Search Private Keys or Passwords", "Netcat Remote Code Execution in Container", "Find AWS Credentials",
                     "PTRACE attached to process", "Clear Log Activities", "Contact K8S API Server From Container"] {
            XCTAssertTrue(set.rules.contains { $0.rule.name == name }, "\(name) is loaded")
        }
        print("stock ruleset: \(names.count) rules, \(set.rules.count) loaded, \(set.disabled.count) disabled")
        for warning in set.warnings { print("  \(warning)") }
    }
}
