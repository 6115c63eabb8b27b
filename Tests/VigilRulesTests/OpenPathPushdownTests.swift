import VigilEvents
@testable import VigilRules
import XCTest

/// The path pushdown: which opens the kernel may drop (a necessary condition of every open rule)
/// and which `kernel_kill` rules it decides exactly.
final class OpenPathPushdownTests: XCTestCase {
    private func set(_ conditions: [String], actions: [String] = [], defaults: Bool = false) throws(RuleError) -> RuleSet {
        var yaml = ""
        for (i, condition) in conditions.enumerated() {
            yaml += "- rule: r\(i)\n  desc: d\n  condition: \(condition)\n  output: o\n  priority: WARNING\n"
            if !actions.isEmpty { yaml += "  actions: [\(actions.joined(separator: ", "))]\n" }
        }
        var files: [(file: String, items: [RuleItem])] = []
        if defaults { files.append((RuleFiles.defaultName, try RuleFiles.defaultItems())) }
        files.append(("t.yaml", try YAMLRules.load(yaml, file: "t.yaml")))
        return try RuleSet(files: files)
    }

    private func paths(_ conditions: String...) throws -> OpenPathPushdown { try set(conditions).openPaths }
    private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    func testLeavesGiveExactPathsPrefixesAndBasenames() throws {
        let p = try paths("fd.name in (/etc/shadow, /etc/gshadow) or fd.name startswith /run/secrets/ or fd.filename = id_rsa",
                          "fd.name pmatch (/etc/sudoers.d) or fd.directory = /root/.ssh or fd.name glob '/var/*.log'")
        XCTAssertTrue(p.filtering)
        XCTAssertEqual(Set(p.exact.keys), [bytes("/etc/shadow"), bytes("/etc/gshadow"), bytes("/etc/sudoers.d")])
        XCTAssertEqual(Set(p.prefixes.keys), [bytes("/run/secrets/"), bytes("/etc/sudoers.d/"), bytes("/root/.ssh/"), bytes("/var/")])
        XCTAssertEqual(Set(p.basenames.keys), [bytes("id_rsa")])
        XCTAssertEqual(p.anyPath, [])
    }

    func testAccessAndResultBecomeClasses() throws {
        let p = try paths("evt.type = openat and evt.is_open_write = true and fd.num >= 0 and fd.name startswith /etc/")
        XCTAssertEqual(p.prefixes[bytes("/etc/")]?.pass, OpenClasses.writing.intersection(.succeeded))
        XCTAssertEqual(try paths("not evt.is_open_read = true and fd.name = /a").exact[bytes("/a")]?.pass,
                       OpenClasses.writing.subtracting(.reading))
        XCTAssertEqual(OpenClasses.writing.subtracting(.reading),
                       OpenClasses.of(flags: 1, failed: false).union(.of(flags: 1, failed: true)).union(.of(flags: 1, failed: false, created: true)))
        XCTAssertEqual(try paths("evt.res != SUCCESS and fd.name = /a").exact[bytes("/a")]?.pass, .failed)
        // One class per open: O_RDWR is both a read and a write, and survives `read and write`.
        XCTAssertEqual(try paths("evt.is_open_read = true and evt.is_open_write = true and fd.name = /a").exact[bytes("/a")]?.pass,
                       OpenClasses.reading.intersection(.writing))
        XCTAssertEqual(OpenClasses.reading.intersection(.writing).subtracting(.created),
                       OpenClasses.of(flags: 2, failed: false).union(.of(flags: 2, failed: true)).union(.of(flags: 3, failed: false)).union(.of(flags: 3, failed: true)))
    }

    func testACreationTestKeepsOnlyOpensThatCreatedTheFile() throws {
        XCTAssertEqual(try paths("evt.is_open_create = true and fd.name startswith /dev/").prefixes[bytes("/dev/")]?.pass, .created)
        XCTAssertEqual(try paths("evt.is_open_create = false and fd.name = /a").exact[bytes("/a")]?.pass, OpenClasses.all.subtracting(.created))
        XCTAssertEqual(try paths("evt.is_open_create = true and evt.is_open_write = false and fd.name = /a").exact[bytes("/a")]?.pass,
                       OpenClasses.created.intersection(.reading).subtracting(.writing))
        // One class per open: a created file was opened successfully, and never by a failed open.
        XCTAssertTrue(OpenClasses.created.isSubset(of: .succeeded))
        XCTAssertTrue(OpenClasses.created.isDisjoint(with: .failed))
        XCTAssertEqual(OpenClasses.created.intersection(.writing).summary, "opens for writing that created the file")
        XCTAssertEqual(OpenClasses.succeeded.subtracting(.created).summary, "successful opens that created no file")
    }

    func testAndTakesAConstrainedSideOrUnionOnlyWhenBothAre() throws {
        // and: the side with paths; either side is allowed, the narrower is taken.
        let a = try paths("fd.name startswith / and fd.filename = .bash_history")
        XCTAssertEqual(Set(a.basenames.keys), [bytes(".bash_history")])
        XCTAssertTrue(a.prefixes.isEmpty)
        // or with an unconstrained side: no path filter, and the summary names the rule.
        let b = try paths("fd.name = /a or proc.name = cat", "fd.name = /b")
        XCTAssertFalse(b.filtering)
        XCTAssertEqual(b.unconstrainedRules, ["r0"])
        XCTAssertTrue(b.summary[0].contains("rule 'r0' has no path condition"), b.summary[0])
        // not: unconstrained.
        XCTAssertFalse(try paths("not fd.name = /a").filtering)
        // a branch that cannot be an open is empty.
        let c = try paths("(evt.type = execve and proc.name = sh) or fd.name = /a")
        XCTAssertTrue(c.filtering)
        XCTAssertEqual(Set(c.exact.keys), [bytes("/a")])
    }

    func testAnAccessOnlyRuleKeepsOnlyThatAccessForEveryPath() throws {
        let p = try paths("evt.is_open_write = true and proc.name = vi", "fd.name = /etc/shadow")
        XCTAssertTrue(p.filtering)
        XCTAssertEqual(p.anyPath, .writing)
        XCTAssertEqual(p.anyPathRules, ["r0"])
        XCTAssertEqual(p.exact[bytes("/etc/shadow")]?.pass, OpenClasses.all.subtracting(.writing))
    }

    func testNestedPrefixesCarryTheUnionOfTheirCovers() throws {
        let p = try paths("evt.is_open_write = true and fd.name startswith /etc/", "evt.is_open_read = true and fd.name in (/etc/shadow, /etc/x/y)",
                          "evt.res = SUCCESS and fd.name startswith /etc/x/")
        let trie = try p.trieEntries()
        let shadow = try XCTUnwrap(trie.first { $0.path == bytes("/etc/shadow") && $0.exact })
        XCTAssertEqual(shadow.entry.pass, OpenClasses.writing.union(.reading))
        let deep = try XCTUnwrap(trie.first { $0.path == bytes("/etc/x/") && !$0.exact })
        XCTAssertEqual(deep.entry.pass, OpenClasses.writing.union(.succeeded))
        let y = try XCTUnwrap(trie.first { $0.path == bytes("/etc/x/y") })
        XCTAssertEqual(y.entry.pass, OpenClasses.all)
    }

    func testTheDefaultRulesFilterOpensInTheKernel() throws {
        let p = try RuleFiles.ruleSet(paths: [], defaults: true).openPaths
        XCTAssertTrue(p.filtering, p.summary.joined(separator: "\n"))
        XCTAssertEqual(p.anyPath, [])
        XCTAssertNotNil(p.exact[bytes("/etc/shadow")])
        XCTAssertEqual(p.prefixes[bytes("/etc/")]?.pass, OpenClasses.writing.intersection(.succeeded))
        // "File created below /dev": only opens that created a file (not /dev/null, /dev/shm).
        XCTAssertEqual(p.prefixes[bytes("/dev/")]?.pass, .created)
        XCTAssertNotNil(p.basenames[bytes(".bash_history")])
        XCTAssertNotNil(p.basenames[bytes("environ")])
        // A plain read of a file no rule names is dropped: no entry covers it for reads.
        let covers = try p.trieEntries().filter { !$0.exact && bytes("/usr/share/zoneinfo/UTC").starts(with: $0.path) }
        XCTAssertTrue(covers.allSatisfy { !$0.entry.pass.contains(.of(flags: 0, failed: false)) }, "\(covers)")
    }

    func testKernelKillOnPathsAccessAndCommands() throws {
        let s = try set(["evt.type in (open, openat, openat2) and fd.name in (/srv/honeypot, /srv/trap) and evt.is_open_read = true and not proc.name in (backup)"],
                        actions: ["kernel_kill"])
        let p = s.openPaths
        XCTAssertEqual(p.killRules, [KernelKillRule(name: "r0", commands: .except(["backup"]), location: p.killRules[0].location)])
        XCTAssertEqual(p.exact[bytes("/srv/honeypot")]?.kill, .reading)
        XCTAssertEqual(p.exact[bytes("/srv/trap")]?.killRule, 0)
        XCTAssertTrue(s.pushdown.summary.contains { $0.contains("kernel_kill (in kernel): rule 'r0'") })
    }

    func testKernelKillOnAConditionTheKernelCannotDecideIsAnError() {
        let cases: [(String, String)] = [
            ("fd.name = /a or proc.name = sh", "can match exec, fork, exit, open, syscall, conn, tcpdrop, fim, shell, program events"),
            ("fd.name = /a and container.id != host", "'container.id != host' is not decided in the kernel"),
            ("fd.name contains shadow", "is not decided in the kernel"),
            ("evt.is_open_write = true", "no condition on fd.name or fd.filename"),
            ("fd.name = /a and fd.filename = b", "two path conditions"),
            ("fd.name = /a and evt.type = openat", "tells open syscalls apart"),
            ("fd.name startswith /x/ and not fd.name = /x/a", "negates a condition the kernel does not negate"),
            ("fd.name = /a/../b", "not an absolute path in normal form"),
            ("evt.type = execve", "it can match exec, syscall events"),
        ]
        for (condition, fragment) in cases {
            XCTAssertThrowsError(try set([condition], actions: ["kernel_kill"]), condition) { error in
                let text = "\(error)"
                XCTAssertTrue(text.hasPrefix("t.yaml:1:") && text.contains(": rule 'r0': kernel_kill needs a condition the kernel decides"), text)
                XCTAssertTrue(text.contains(fragment), "\(condition): \(text)")
            }
        }
    }

    func testKillRulesWithDifferentCommandsOnOnePathConflict() {
        XCTAssertThrowsError(try set(["fd.name startswith /srv/ and proc.name = a", "fd.name = /srv/x and proc.name = b"], actions: ["kernel_kill"])) { error in
            XCTAssertTrue("\(error)".contains("different proc.name condition"), "\(error)")
        }
        XCTAssertNoThrow(try set(["fd.name startswith /srv/", "fd.name = /srv/x"], actions: ["kernel_kill"]).openPaths.trieEntries())
    }

    func testNormalForm() {
        XCTAssertTrue(OpenPathPushdown.isNormal(bytes("/")))
        XCTAssertTrue(OpenPathPushdown.isNormal(bytes("/etc/.hidden/..x")))
        for bad in ["etc", "/etc/", "//etc", "/etc/./x", "/etc/..", "/a//b", "/a/."] {
            XCTAssertFalse(OpenPathPushdown.isNormal(bytes(bad)), bad)
        }
    }
}
