import VigilEvents
@testable import VigilRules
import XCTest

/// What a compiled condition says about itself: kinds, explain, conjuncts, fields.
final class ConditionAnalysisTests: XCTestCase {
    func kinds(_ condition: String) throws -> Set<EventKind> { try Sample.compile(condition).kinds.asSet }

    func testKindsFromEventTypes() throws {
        XCTAssertEqual(try kinds("proc.name = bash"), Set(EventKind.allCases))
        // A syscall event's evt.type is its syscall's name: it can match any name of the table.
        XCTAssertEqual(try kinds("spawned_process"), [.exec, .syscall])
        XCTAssertEqual(try kinds("evt.type = execveat"), [.exec, .syscall])
        XCTAssertEqual(try kinds("evt.type in (clone, clone3, fork, vfork)"), [.fork, .syscall])
        XCTAssertEqual(try kinds("evt.type = clone3"), [.fork, .syscall])
        XCTAssertEqual(try kinds("evt.type = procexit"), [.exit])
        XCTAssertEqual(try kinds("evt.type in (open, openat, openat2, creat)"), [.open, .syscall])
        XCTAssertEqual(try kinds("evt.type = creat"), [.open, .syscall])
        XCTAssertEqual(try kinds("evt.type = ptrace"), [.syscall])
        XCTAssertEqual(try kinds("evt.type = no_such_syscall"), [])
        XCTAssertEqual(try kinds("evt.type = execve or evt.type = procexit"), [.exec, .exit, .syscall])
        // A program bundle's events are named by their bundle (none is loaded here): `!=` and
        // `not in` are true for them, `=` and `in` false.
        XCTAssertEqual(try kinds("evt.type != execve"), [.fork, .exit, .open, .syscall, .conn, .tcpdrop, .fim, .shell, .program])
        XCTAssertEqual(try kinds("not evt.type in (execve, execveat)"), [.fork, .exit, .open, .syscall, .conn, .tcpdrop, .fim, .shell, .program])
        // `!= openat` can still be true for open events (open, openat2).
        XCTAssertEqual(try kinds("evt.type != openat"), Set(EventKind.allCases))
        XCTAssertEqual(try kinds("not (evt.type = execve or evt.type = clone)"), [.exit, .open, .syscall, .conn, .tcpdrop, .fim, .shell, .program])
        XCTAssertEqual(try kinds("evt.type exists"), Set(EventKind.allCases))
        XCTAssertEqual(try kinds("evt.type startswith exec"), [.exec, .syscall, .program], "a bundle's name may start so")
    }

    func testKindsFromFieldsInAndPosition() throws {
        XCTAssertEqual(try kinds("fd.name = /etc/shadow"), [.open, .syscall, .conn, .tcpdrop]) // the fd table names syscalls' fds too, a connection its ends
        XCTAssertEqual(try kinds("proc.name = cat and fd.name startswith /etc"), [.open, .syscall, .conn, .tcpdrop])
        XCTAssertEqual(try kinds("proc.exitcode != 0"), [.exit])
        XCTAssertEqual(try kinds("evt.rawres < 0"), [.open, .fork, .syscall])
        XCTAssertEqual(try kinds("evt.is_thread = true or proc.exitcode = 1"), [.fork, .exit])
        XCTAssertEqual(try kinds("fd.name exists"), [.open, .syscall, .conn, .tcpdrop])
        // Negated, a field the event lacks makes the term true: no restriction.
        XCTAssertEqual(try kinds("not fd.name = /x"), Set(EventKind.allCases))
        XCTAssertEqual(try kinds("proc.name = cat or fd.name = /x"), Set(EventKind.allCases))
        // Contradictions leave no kind.
        XCTAssertEqual(try kinds("evt.type = execve and fd.name = /x"), [.syscall]) // kinds are coarse: fd.* applies to every syscall event
        XCTAssertEqual(try kinds("spawned_process and proc.exitcode = 0"), [])
        XCTAssertEqual(try kinds("evt.type in (execve, openat) and not fd.name exists"), [.exec, .open, .syscall])
        XCTAssertEqual(try kinds("never_true"), [])
    }

    func testExplain() throws {
        let condition = try Sample.compile("spawned_process and container and shell_procs")
        XCTAssertEqual(condition.explain(Sample.exec()), "container.id != host")
        XCTAssertEqual(condition.explain(Sample.inContainer(Sample.exec(comm: "cat"))), "proc.name in (shell_binaries)")
        XCTAssertEqual(condition.explain(Sample.open("/etc/shadow")), "evt.type in (execve, execveat)")
        XCTAssertNil(condition.explain(Sample.inContainer(Sample.exec())))

        // Descends through macros that are `and`s.
        XCTAssertEqual(try Sample.compile("shell_in_container").explain(Sample.exec()), "container.id != host")
        // An `or` fails as a whole, with its parentheses.
        XCTAssertEqual(try Sample.compile("spawned_process and (proc.name = zsh or proc.name = sh)").explain(Sample.exec()),
                       "(proc.name = zsh or proc.name = sh)")
        XCTAssertEqual(try Sample.compile("proc.name = zsh or proc.name = sh").explain(Sample.exec()),
                       "proc.name = zsh or proc.name = sh")
        // A `not` fails as a whole.
        XCTAssertEqual(try Sample.compile("spawned_process and not proc.name in (shell_binaries)").explain(Sample.exec()),
                       "not proc.name in (shell_binaries)")
        // A macro whose body is an `or` is named.
        var detached = Sample.exec()
        detached.process.ttyNumber = 0
        detached.process.ancestorNames = ["cron"]
        XCTAssertEqual(try Sample.compile("spawned_process and interactive").explain(detached), "interactive")
        // A folded-away macro is named.
        XCTAssertEqual(try Sample.compile("spawned_process and never_true").explain(Sample.exec()), "never_true")
        // Nested parentheses around an `and` are transparent; text keeps its spacing and newlines.
        XCTAssertEqual(try Sample.compile("(proc.name = bash and (proc.pid = 1 and\n user.name = alice))").explain(Sample.exec()),
                       "proc.pid = 1")
        XCTAssertEqual(try Sample.compile("tolower(proc.name)  =  'zsh'").explain(Sample.exec()), "tolower(proc.name)  =  'zsh'")
    }

    func testConjuncts() throws {
        let condition = try Sample.compile("""
            spawned_process and container and proc.name in (shell_binaries, dash) and not fd.name pmatch (/proc)
            and tolower(proc.name) = bash and (proc.pid = 1 or proc.pid = 2) and proc.aname[2] == sshd
            and container.label[app] = web and proc.exepath exists and not not proc.aname = sshd
            """)
        XCTAssertEqual(condition.conjuncts, [
            Predicate(field: "evt.type", op: "in", values: ["execve", "execveat"], negated: false),
            Predicate(field: "container.id", op: "!=", values: ["host"], negated: false),
            Predicate(field: "proc.name", op: "in", values: ["sh", "bash", "zsh", "dash"], negated: false),
            Predicate(field: "fd.name", op: "pmatch", values: ["/proc"], negated: true),
            Predicate(field: "proc.aname[2]", op: "=", values: ["sshd"], negated: false),
            Predicate(field: "container.label[app]", op: "=", values: ["web"], negated: false),
            Predicate(field: "proc.exepath", op: "exists", values: [], negated: false),
            Predicate(field: "proc.aname", op: "=", values: ["sshd"], negated: false),
        ])
        XCTAssertEqual(try Sample.compile("proc.pid >= 100").conjuncts, [Predicate(field: "proc.pid", op: ">=", values: ["100"], negated: false)])
        XCTAssertEqual(try Sample.compile("proc.name = a or proc.name = b").conjuncts, [])
        XCTAssertEqual(try Sample.compile("not (proc.name = a and proc.pid = 1)").conjuncts, [])
        XCTAssertEqual(try Sample.compile("proc.name icontains 'X y'").conjuncts,
                       [Predicate(field: "proc.name", op: "icontains", values: ["X y"], negated: false)])
    }

    func testFields() throws {
        XCTAssertEqual(try Sample.compile("spawned_process and proc.aname = sshd and not fd.name exists and tolower(user.name) = x").fields,
                       ["evt.type", "proc.aname", "fd.name", "user.name"])
        XCTAssertEqual(try Sample.compile("container.label[app] = web and proc.apid = 1 and evt.dir = <").fields,
                       ["container.label", "proc.apid"])
    }

    func testText() throws {
        XCTAssertEqual(try Sample.compile("shell_procs").text, "shell_procs")
    }
}

#if canImport(Glibc)
import Glibc

/// Glob and pmatch, cross-checked with glibc's fnmatch(3) (what Falco calls, with no flags).
final class GlobPatternTests: XCTestCase {
    func testAgreesWithFnmatch() {
        let patterns = ["*", "/etc/*", "/*/shadow", "*.log", "a*b*c", "a?c", "[abc]x", "[!abc]x", "[^abc]x", "[a-c]*", "[]]", "[!]]",
                        "\\*", "a\\?", "[[:digit:]]*", "[[:alpha:]][[:alnum:]]*", "[a-]", "*[0-9]", "**/x", "x*", "[", "a[b", "*?", "?*?",
                        "/var/log/*.gz", "[[:upper:]]", "[A-Fa-f0-9]x", "\\", "a\\"]
        let names = ["", "a", "x", "/etc/shadow", "/etc/", "/var/log/syslog.1.gz", "abc", "abbc", "ac", "axbyc", "ax", "bx", "dx",
                     "]", "*", "a?", "ab", "42", "a1b2", "-", "/x", "a/x", "[", "a[b", "B", "fx", "9x", "Zx", "\\", "a\\"]
        for pattern in patterns {
            let glob = GlobPattern(Array(pattern.utf8))
            for name in names {
                let expected = fnmatch(pattern, name, 0) == 0
                XCTAssertEqual(glob.matches(Array(name.utf8)), expected, "pattern \(pattern) name \(name)")
            }
        }
    }

    func testCaseInsensitiveAgreesWithFnmatchCasefold() {
        let patterns = ["/ETC/*", "[A-C]x", "*Log", "[[:upper:]]"]
        let names = ["/etc/passwd", "bX", "Bx", "syslog", "SYSLOG", "a", "A"]
        for pattern in patterns {
            let glob = GlobPattern(Array(pattern.utf8), caseInsensitive: true)
            for name in names {
                XCTAssertEqual(glob.matches(Array(name.utf8)), fnmatch(pattern, name, 1 << 4 /* FNM_CASEFOLD, a GNU extension Swift does not import */) == 0, "pattern \(pattern) name \(name)")
            }
        }
    }

    func testPathPrefixes() {
        let set = PathPrefixSet([Array("/var/run".utf8), Array("/etc/".utf8), Array("/usr/*/bin".utf8), Array("//opt//x".utf8)])
        let cases: [(String, Bool)] = [
            ("/var/run", true), ("/var/run/docker.sock", true), ("/var/running", false), ("/var", false),
            ("/etc", true), ("/etc/passwd", true), ("//etc//passwd", true), ("/etcx", false),
            ("/usr/local/bin/x", true), ("/usr/bin", false), ("/usr/a/b/bin", false),
            ("/opt/x/y", true), ("/opt", false), ("", false), ("/", false),
        ]
        for (path, expected) in cases {
            XCTAssertEqual(set.matches(Array(path.utf8)), expected, path)
        }
    }
}
#endif
