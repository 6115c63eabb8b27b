import VigilEvents
@testable import VigilRules
import XCTest

/// The compiled form rules run in: per-kind specialization, terms ordered by cost, shared
/// subconditions evaluated once per event, catalogue fields read once, and the same verdicts as
/// the conditions read in source order.
final class EvaluationProgramTests: XCTestCase {
    func outlines(_ condition: String, _ kind: EventKind) throws -> [String] {
        try Sample.compile(condition).program.kinds[kind.index].outlines.map(\.outline)
    }

    func ruleSet(_ yaml: String) throws -> RuleSet {
        try RuleSet(files: [("t.yaml", try YAMLRules.load(yaml, file: "t.yaml"))])
    }

    func testTermsRunCheapestFirstAndExplainKeepsSourceOrder() throws {
        let text = "proc.pcmdline contains curl and proc.name in (shell_binaries) and proc.name = sh"
        // The command line (read through the catalogue, searched) last; `=` before a set lookup.
        XCTAssertEqual(try outlines(text, .exec), ["(proc.name = sh and proc.name in (shell_binaries) and proc.pcmdline contains curl)"])
        let condition = try Sample.compile(text)
        var bash = Sample.exec(comm: "bash")
        bash.process.parentArguments = ["sshd", "-D"]
        // Everything is false for bash: explain names the first term as written, not the first evaluated.
        XCTAssertEqual(condition.explain(bash), "proc.pcmdline contains curl")
        XCTAssertFalse(condition.matches(bash))
        var curl = bash
        curl.process.parentArguments = ["x", "curl", "evil"]
        XCTAssertEqual(condition.explain(curl), "proc.name = sh")
    }

    func testPlansAreSpecializedPerKind() throws {
        let text = "(spawned_process and proc.name = rm) or (evt.type in (open, openat) and fd.name = /x) or proc.exitcode = 3"
        XCTAssertEqual(try outlines(text, .exec), ["proc.name = rm"])
        // Open events are tested by their syscall's name (a replayed event may carry any name).
        XCTAssertEqual(try outlines(text, .open),
                       ["((fd.name = /x and evt.type in (open, openat)) or (evt.type in (execve, execveat) and proc.name = rm))"])
        XCTAssertEqual(try outlines(text, .exit), ["proc.exitcode = 3"])
        XCTAssertEqual(try outlines(text, .fork), [], "nothing can match a fork: the condition is not evaluated at all")
        XCTAssertEqual(try outlines("not fd.name = /x", .exec), ["true"], "a field the kind lacks makes the comparison false")
        let condition = try Sample.compile(text)
        XCTAssertTrue(condition.matches(Sample.exec(comm: "rm")))
        XCTAssertTrue(condition.matches(Sample.open("/x")))
        XCTAssertFalse(condition.matches(Sample.open("/x", syscall: "openat2")))
        XCTAssertFalse(condition.matches(Sample.fork()))
        XCTAssertTrue(condition.matches(Sample.exit(status: 3 << 8)))
    }

    func testSharedSubconditionsAreEvaluatedOncePerEvent() throws {
        let set = try ruleSet("""
            - macro: fetched
              condition: proc.cmdline contains curl or proc.pcmdline contains curl
            - rule: a
              desc: a
              condition: evt.type = execve and fetched and proc.name = sh
              output: a
              priority: NOTICE
            - rule: b
              desc: b
              condition: evt.type = execve and proc.name = bash and fetched
              output: b
              priority: NOTICE
            - rule: c
              desc: c
              condition: evt.type = execve and proc.cmdline contains wget
              output: c
              priority: NOTICE
            """)
        let exec = set.program.kinds[EventKind.exec.index]
        XCTAssertEqual(exec.outlines.map(\.outline), [
            "(proc.name = sh and memo 0{(proc.cmdline contains curl or proc.pcmdline contains curl)})",
            "(proc.name = bash and memo 0{(proc.cmdline contains curl or proc.pcmdline contains curl)})",
            "proc.cmdline contains wget",
        ])
        XCTAssertEqual(exec.memoSlots, 1)
        XCTAssertEqual(exec.fieldSlots, 2, "proc.cmdline is read once per event for its three comparisons")
        var bash = Sample.exec(comm: "bash", arguments: ["bash", "-c", "curl x"])
        XCTAssertEqual(set.matches(bash).map(\.rule.name), ["b"])
        bash.process.arguments = ["bash", "wget"]
        XCTAssertEqual(set.matches(bash).map(\.rule.name), ["c"])
        XCTAssertTrue(set.matches(Sample.open("/x")).isEmpty)
    }

    func testMoreSharedSubconditionsThanMemoSlots() throws {
        // 70 macros, each used by two rules: the first 64 get memo slots, the others are
        // evaluated at each use; all give the same verdicts.
        var yaml = ""
        for i in 0..<70 {
            yaml += "- macro: m\(i)\n  condition: proc.cmdline contains \"<\(i)>\" or proc.pcmdline contains \"<\(i)>\"\n"
            for name in ["a", "b"] {
                yaml += "- rule: r\(i)\(name)\n  desc: d\n  condition: m\(i) and proc.name = \(name)\n  output: o\n  priority: NOTICE\n"
            }
        }
        let set = try ruleSet(yaml)
        XCTAssertEqual(set.program.kinds[EventKind.exec.index].memoSlots, EvaluationContext.memoCapacity)
        for i in [0, 63, 64, 69] {
            let event = Sample.exec(comm: "b", arguments: ["b", ByteString("<\(i)>")])
            XCTAssertEqual(set.matches(event).map(\.rule.name), ["r\(i)b"])
        }
    }

    /// Events that trigger each default rule, and look-alikes.
    static var defaultRuleEvents: [Event] {
        func exec(_ comm: String, _ arguments: [ByteString], path: String? = nil, parent: [ByteString]? = nil, container: Bool = false) -> Event {
            var e = Sample.exec(comm: comm, arguments: arguments)
            if let path { e.process.executablePath = ByteString(path) }
            e.process.parentArguments = parent
            return container ? Sample.inContainer(e) : e
        }
        var other = Sample.open("/proc/99/mem")
        other.process.ancestorNames = ["dpkg", "apt"]
        var packageWrite = Sample.open("/usr/bin/x", flags: 0o101, comm: "dpkg")
        packageWrite.process.ancestorNames = ["apt", "bash"]
        var devCreate = Sample.open("/dev/evil", flags: 0o101, comm: "sh")
        if case .open(var o) = devCreate.payload { o.created = true; devCreate.payload = .open(o) }
        var grandchild = Sample.open("/etc/cron.d/job", flags: 1, comm: "sh")
        grandchild.process.ancestorNames = ["dpkg", "apt-get"]
        return FieldReaderTests.events + [
            exec("sh", ["sh"], container: true), exec("apt", ["apt", "install", "x"], container: true),
            exec("nc", ["nc", "-l"], container: true), exec("nc", ["nc", "-l"]),
            exec("sh", ["sh"], parent: ["bash", "-c", "curl http://x | sh"]), exec("sh", ["sh"], parent: ["bash", "-c", "curl http://x"]),
            exec("rm", ["rm", "/root/.bash_history"]), exec("rm", ["rm", "/tmp/x"]),
            exec("x", ["x"], path: "/tmp/x"), exec("x", ["x"], path: "/tmpx/x"),
            Sample.open("/etc/shadow", comm: "cat"), Sample.open("/etc/shadow", comm: "sshd"), Sample.open("/etc/sudoers.d/a"),
            Sample.open("/home/a/.ssh/id_rsa"), Sample.open("/etc/shadow", flags: 1), Sample.open("/etc/shadow", result: -13),
            Sample.open("/usr/bin/x", flags: 0o101, comm: "vim"), packageWrite, Sample.open("/usr/binx/y", flags: 1),
            other, Sample.open("/proc/4242/mem"), Sample.open("/proc/99/mem", result: -1),
            Sample.open("/etc/crontab", flags: 2), grandchild, Sample.open("/root/.bash_history", flags: 0o1001),
            Sample.open("/root/.bash_history", flags: 1),
            exec("memfd:x", ["x"], path: "/dev/fd/3"), exec("memfd:runc_cloned", ["runc"], path: "/dev/fd/3"),
            devCreate, Sample.open("/dev/null", flags: 1, comm: "sh"),
        ]
    }

    func testTheDefaultRulesAgreeWithTheirConditionsAsWritten() throws {
        let set = try RuleFiles.ruleSet(paths: [])
        var matched = Set<String>()
        for (index, event) in Self.defaultRuleEvents.enumerated() {
            let optimized = set.matches(event).map(\.rule.name)
            // explain walks each rule's plan in source order, unspecialized and unshared.
            let asWritten = set.rules.filter { $0.condition.explain(event) == nil }.map(\.rule.name)
            XCTAssertEqual(optimized, asWritten, "event #\(index) (\(event.kind) \(event.comm))")
            matched.formUnion(optimized)
        }
        // Rules only syscall events can meet are triggered for real in DefaultRulesTests (syscall
        // payloads are made by the kernel sensor, not by these samples), the file integrity rules
        // (fim events) by real changes in FIMMonitorTests and FIMDaemonTests.
        // (program events, of user-supplied bundles, have no sample here.)
        let onSampleKinds = set.rules.filter { !$0.condition.kinds.subtracting([.syscall, .fim, .program]).isEmpty }
        XCTAssertEqual(matched, Set(onSampleKinds.map(\.rule.name)), "every default rule on exec, fork, exit or open events is triggered by some event")
        // package_manager_running is shared by two rules (open_write is spliced into them: its
        // terms are single loads; spawned_process folds away, and exec-only rules skip open events).
        let open = set.program.kinds[EventKind.open.index]
        XCTAssertEqual(open.memoSlots, 1)
        XCTAssertEqual(open.outlines.count, 6)
        XCTAssertTrue(set.program.kinds[EventKind.exec.index].outlines.allSatisfy { !$0.outline.contains("evt.type") })
    }
}
