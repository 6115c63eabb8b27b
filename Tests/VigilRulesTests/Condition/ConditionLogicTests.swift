import VigilEvents
@testable import VigilRules
import XCTest

/// Boolean structure, macros, lists, transformers, ancestors, missing fields and folding.
final class ConditionLogicTests: XCTestCase {
    let bash = Sample.exec()
    let cat = Sample.open("/etc/shadow")

    func testPrecedenceNotAndOr() throws {
        // or(bash, and(cat, /nope)): true for bash; a wrong (bash or cat) and /nope would be false.
        try assertMatches("proc.name = bash or proc.name = cat and fd.name = /nope", [(bash, true), (cat, false)])
        try assertMatches("proc.name = cat and fd.name = /nope or proc.name = bash", [(bash, true), (cat, false)])
        // (not cat) and pid=1: false for cat; a wrong not(cat and pid=1) would be true.
        try assertMatches("not proc.name = cat and proc.pid = 1", [(cat, false), (bash, false)])
        try assertMatches("not (proc.name = cat and proc.pid = 1)", [(cat, true), (bash, true)])
        try assertMatches("not proc.name = cat or proc.pid = 1", [(cat, false), (bash, true)])
    }

    func testParenthesesAndNesting() throws {
        try assertMatches("(proc.name = bash or proc.name = cat) and fd.name exists", [(bash, false), (cat, true)])
        try assertMatches("((proc.name = bash))", [(bash, true), (cat, false)])
        try assertMatches("not(proc.name=bash)", [(bash, false), (cat, true)])
        try assertMatches("not not proc.name = bash", [(bash, true), (cat, false)])
        try assertMatches("not (not (proc.name = bash))", [(bash, true), (cat, false)])
        try assertMatches("proc.name = cat and(fd.name = /etc/shadow or fd.name = /x)", [(cat, true), (bash, false)])
        try assertMatches("proc.name = bash\n  and\tproc.pid = 4242\r\n  and user.name = alice", [(bash, true)])
        let deep = String(repeating: "(", count: 50) + "proc.name = bash" + String(repeating: ")", count: 50)
        try assertMatches(deep, [(bash, true), (cat, false)])
    }

    func testKeywordsAreWholeWords() throws {
        // `android` is a value, not `and` + `roid`; `notable` a value too.
        try assertMatches("proc.name = android or proc.name = notable", [(bash, false)])
        try assertMatches("proc.name in (and, or, not, bash)", [(bash, true)])
    }

    func testMissingFieldsAreFalseAndTheirNegationTrue() throws {
        try assertMatches("fd.name = /etc/shadow", [(bash, false), (cat, true)])
        try assertMatches("not fd.name = /etc/shadow", [(bash, true), (cat, false)])
        // `!=` on a missing field is false too (Falco: the comparison fails without a value).
        try assertMatches("fd.name != /x", [(bash, false), (cat, true)])
        try assertMatches("fd.name in (/x, /y)", [(bash, false)])
        try assertMatches("not fd.name pmatch (/etc)", [(bash, true), (cat, false)])
        var unknownUser = bash
        unknownUser.process.userName = nil
        try assertMatches("user.name = alice", [(bash, true), (unknownUser, false)])
        try assertMatches("user.name != alice", [(unknownUser, false)])
        try assertMatches("proc.exitcode = 1", [(Sample.exit(), true), (bash, false)])
    }

    func testMacrosNestAndInline() throws {
        let containerBash = Sample.inContainer(bash)
        try assertMatches("shell_in_container", [(containerBash, true), (bash, false), (Sample.inContainer(cat), false)])
        try assertMatches("spawned_process and container and shell_procs", [(containerBash, true), (bash, false)])
        try assertMatches("not container", [(bash, true), (containerBash, false)])
        // A macro that is an `or` stays one term inside the `and`.
        try assertMatches("interactive and proc.name = bash", [(bash, true)])
        var detached = bash
        detached.process.ttyNumber = 0
        detached.process.ancestorNames = ["cron", "systemd"]
        try assertMatches("interactive and proc.name = bash", [(detached, false)])
        try assertMatches("(spawned_process)and(container)", [(containerBash, true), (bash, false)])
    }

    func testMacroParsesOnceAndIsReused() throws {
        let context = ConditionContext(macros: ["m": ("proc.name = bash", Sample.location)])
        let first = try Sample.compile("m", context: context)
        let second = try Sample.compile("not m", context: context)
        XCTAssertTrue(first.matches(bash))
        XCTAssertFalse(second.matches(bash))
        // A copy with a changed text is parsed again.
        var changed = context
        changed.macros["m"] = ("proc.name = cat", Sample.location)
        XCTAssertTrue(try Sample.compile("m", context: changed).matches(cat))
        XCTAssertTrue(try Sample.compile("m", context: context).matches(bash))
    }

    func testListsExpandInsideListOperators() throws {
        try assertMatches("proc.name in (shell_binaries)", [(bash, true), (cat, false)])
        try assertMatches("proc.name in (shell_binaries, cat)", [(bash, true), (cat, true)])
        try assertMatches("proc.name in shell_binaries", [(bash, true), (cat, false)])
        try assertMatches("proc.name intersects (shell_binaries)", [(bash, true)])
        try assertMatches("proc.aname in (shell_binaries)", [(bash, false)])
        try assertMatches("proc.pid in (pids)", [(bash, false), (Sample.event(.exit(.init(status: 0, startTimeNs: 0, durationNs: 0)), pid: 4000), true)])
        // A quoted item is a literal, not a list reference.
        try assertMatches("proc.name in ('shell_binaries')", [(bash, false)])
        // Outside list operators a bare word is just a value.
        try assertMatches("proc.name = shell_binaries", [(bash, false)])
    }

    func testQuotedListItemsAreUnquotedAsInFalco() throws {
        // Falco's rules write items such as '"(systemd)"' and '"75-system-updat"': the condition
        // language's quotes are part of the item and are parsed away when the list is used.
        let context = ConditionContext(lists: ["login": ["login", #""(systemd)""#, "'a b'", #""x\"y""#, #""unclosed"#, "\"\""]])
        let systemd = Sample.exec(comm: "(systemd)")
        try assertMatches("proc.name in (login)", [(systemd, true), (Sample.exec(comm: "\"(systemd)\""), false),
                                                   (Sample.exec(comm: "a b"), true), (Sample.exec(comm: #"x"y"#), true),
                                                   (Sample.exec(comm: #""unclosed"#), true), (Sample.exec(comm: ""), true)],
                          context: context)
        XCTAssertEqual(try Sample.compile("proc.name in (login)", context: context).conjuncts.first?.values,
                       ["login", "(systemd)", "a b", #"x"y"#, #""unclosed"#, ""])
    }

    func testEmptyListReferencesFold() throws {
        let inEmpty = try Sample.compile("proc.name in (empty_list)")
        XCTAssertEqual(inEmpty.constantValue, false)
        XCTAssertFalse(inEmpty.matches(bash))
        let notInEmpty = try Sample.compile("not proc.name in (empty_list)")
        XCTAssertEqual(notInEmpty.constantValue, true)
        XCTAssertEqual(try Sample.compile("fd.name pmatch (empty_list)").constantValue, false)
        XCTAssertEqual(try Sample.compile("proc.anames intersects (empty_list)").constantValue, false)
        // The empty list among others just adds nothing.
        try assertMatches("proc.name in (empty_list, bash)", [(bash, true), (cat, false)])
        // On a list field `in ()` holds for an empty list only: not folded.
        var orphan = bash
        orphan.process.ancestorNames = []
        try assertMatches("proc.anames in (empty_list)", [(bash, false), (orphan, true)])
    }

    func testTransformers() throws {
        let upper = Sample.exec(comm: "BaSh")
        try assertMatches("tolower(proc.name) = bash", [(upper, true), (bash, true), (cat, false)])
        try assertMatches("toupper(proc.name) = BASH", [(upper, true), (bash, true)])
        try assertMatches("tolower(proc.name) = BaSh", [(upper, false)])
        try assertMatches("basename(proc.exepath) = bash", [(bash, true), (cat, false)])
        try assertMatches("toupper(basename(proc.exepath)) = BASH", [(bash, true)])
        try assertMatches("tolower( proc.name ) in (shell_binaries)", [(upper, true)])
        // basename of a path ending in '/' is "" (Falco).
        try assertMatches("basename(fd.name) = ''", [(Sample.open("/tmp/dir/"), true), (cat, false)])
        try assertMatches("basename(fd.name) = shadow", [(cat, true)])
        try assertMatches("toupper(proc.argv) contains -C", [(bash, true)])
        try assertMatches("toupper(proc.aname) = SSHD", [(bash, true)])
        try assertMatches("tolower(fd.name) = /etc/shadow", [(bash, false)])
    }

    func testAncestors() throws {
        // Ancestors: [sshd (pid 4000), systemd (pid 1)]; the process itself is bash (4242).
        try assertMatches("proc.aname = sshd", [(bash, true)])
        try assertMatches("proc.aname = systemd", [(bash, true)])
        try assertMatches("proc.aname = bash", [(bash, false)])
        try assertMatches("proc.aname[0] = bash", [(bash, true)])
        try assertMatches("proc.aname[1] = sshd", [(bash, true)])
        try assertMatches("proc.aname[2] = systemd", [(bash, true)])
        try assertMatches("proc.aname[2] = sshd", [(bash, false)])
        try assertMatches("proc.aname[3] = x", [(bash, false)])
        try assertMatches("not proc.aname[3] = x", [(bash, true)])
        try assertMatches("proc.aname in (cron, systemd)", [(bash, true)])
        try assertMatches("proc.aname startswith ssh", [(bash, true)])
        try assertMatches("not proc.aname = cron", [(bash, true)])
        try assertMatches("proc.aname exists", [(bash, true)])
        try assertMatches("proc.apid = 1", [(bash, true)])
        try assertMatches("proc.apid = 4242", [(bash, false)])
        try assertMatches("proc.apid[1] = 4000", [(bash, true)])
        try assertMatches("proc.apid[0] = 4242", [(bash, true)])
        try assertMatches("proc.apid in (7, 4000)", [(bash, true)])
        try assertMatches("proc.apid > 5000", [(bash, false)])
        try assertMatches("proc.pname = sshd", [(bash, true)])
        var orphan = bash
        orphan.process.ancestorNames = []
        orphan.process.ancestorPIDs = []
        try assertMatches("proc.aname exists", [(orphan, false)])
        try assertMatches("proc.aname != x", [(orphan, false), (bash, true)])
        try assertMatches("proc.apid exists", [(orphan, false)])
    }

    func testFieldArguments() throws {
        let web = Sample.inContainer(bash)
        try assertMatches("container.label[app] = web", [(web, true), (bash, false)])
        try assertMatches("container.label['app'] = web", [(web, true)])
        try assertMatches("container.label[app] != db", [(web, true), (bash, false)])
        try assertMatches("container.label[app.kubernetes.io/name] = web",
                          [(Sample.inContainer(bash, labels: ["app.kubernetes.io/name": "web"]), true), (web, false)])
    }

    func testConstantFoldingThroughBehaviour() throws {
        let never = try Sample.compile("spawned_process and never_true")
        XCTAssertEqual(never.constantValue, false)
        XCTAssertEqual(never.kinds, [])
        XCTAssertEqual(never.conjuncts, [])
        XCTAssertEqual(never.fields, [])
        for event in [bash, cat, Sample.fork(), Sample.exit()] { XCTAssertFalse(never.matches(event)) }

        let always = try Sample.compile("always_true")
        XCTAssertEqual(always.constantValue, true)
        XCTAssertEqual(always.kinds, KindSet.all)
        for event in [bash, cat, Sample.fork(), Sample.exit()] { XCTAssertTrue(always.matches(event)) }

        // `not never_true` is true and drops out of the `and`: only the shell test is left.
        let folded = try Sample.compile("not user_known_shells and shell_procs and always_true")
        XCTAssertNil(folded.constantValue)
        XCTAssertEqual(folded.conjuncts, [Predicate(field: "proc.name", op: "in", values: ["sh", "bash", "zsh"], negated: false)])
        XCTAssertTrue(folded.matches(bash))
        XCTAssertFalse(folded.matches(cat))

        XCTAssertEqual(try Sample.compile("never_true or proc.name = bash").conjuncts,
                       [Predicate(field: "proc.name", op: "=", values: ["bash"], negated: false)])
        XCTAssertEqual(try Sample.compile("never_true or (always_true and never_true)").constantValue, false)
        XCTAssertEqual(try Sample.compile("always_true or proc.name = bash").constantValue, true)
        XCTAssertEqual(try Sample.compile("not (never_true or never_true)").constantValue, true)

        // Every Vigil event is both the entry and the exit of its call: evt.dir folds to true.
        XCTAssertEqual(try Sample.compile("evt.dir = <").constantValue, true)
        XCTAssertEqual(try Sample.compile("evt.dir=>").constantValue, true)
        XCTAssertEqual(try Sample.compile("evt.dir != <").constantValue, true, "the entry half is no exit")
        XCTAssertEqual(try Sample.compile("evt.dir in (x, y)").constantValue, false)
        let spawned = try Sample.compile("evt.type in (execve, execveat) and evt.dir=<")
        XCTAssertEqual(spawned.conjuncts, [Predicate(field: "evt.type", op: "in", values: ["execve", "execveat"], negated: false)])
        XCTAssertEqual(try Sample.compile("evt.num > 0").constantValue, true)
        XCTAssertEqual(try Sample.compile("evt.num in (0)").constantValue, false)
        XCTAssertEqual(try Sample.compile("evt.num exists").constantValue, true)
    }

    func testSharingACompiledConditionAcrossThreads() throws {
        let condition = try Sample.compile("shell_procs and proc.aname = sshd and fd.name regex '.*' or proc.cmdline contains echo")
        let event = bash
        DispatchQueue.concurrentPerform(iterations: 64) { _ in
            for _ in 0..<100 { XCTAssertTrue(condition.matches(event)) }
        }
    }
}
