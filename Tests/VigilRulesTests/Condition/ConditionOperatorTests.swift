import VigilEvents
@testable import VigilRules
import XCTest

/// Each comparison operator, true and false, on each type it applies to.
final class ConditionOperatorTests: XCTestCase {
    let bash = Sample.exec()
    let shadow = Sample.open("/etc/shadow")

    func testEqualityOnStrings() throws {
        try assertMatches("proc.name = bash", [(bash, true), (shadow, false)])
        try assertMatches("proc.name == bash", [(bash, true), (shadow, false)])
        try assertMatches("proc.name=bash", [(bash, true), (shadow, false)])
        try assertMatches("proc.name != bash", [(bash, false), (shadow, true)])
        try assertMatches("fd.name = '/etc/shadow'", [(shadow, true), (Sample.open("/etc/passwd"), false)])
    }

    func testEqualityIsExactBytes() throws {
        var odd = Sample.open("/tmp/x")
        if case .open(var o) = odd.payload {
            o.path = ByteString([0x2F, 0x74, 0xFF, 0x0A])
            odd.payload = .open(o)
        }
        try assertMatches(#"fd.name = "/t\xFF\n""#, [(odd, true), (shadow, false)])
        try assertMatches(#"fd.name contains "\xff""#, [(odd, true), (shadow, false)])
        try assertMatches("proc.name = BASH", [(bash, false)])
    }

    func testNumericComparisons() throws {
        // proc.pid is 4242.
        try assertMatches("proc.pid = 4242", [(bash, true), (Sample.event(.exit(.init(status: 0, startTimeNs: 0, durationNs: 0)), pid: 1), false)])
        try assertMatches("proc.pid != 4242", [(bash, false)])
        try assertMatches("proc.pid < 5000", [(bash, true)])
        try assertMatches("proc.pid < 4242", [(bash, false)])
        try assertMatches("proc.pid <= 4242", [(bash, true)])
        try assertMatches("proc.pid <= 4241", [(bash, false)])
        try assertMatches("proc.pid > 4241", [(bash, true)])
        try assertMatches("proc.pid > 4242", [(bash, false)])
        try assertMatches("proc.pid >= 4242", [(bash, true)])
        try assertMatches("proc.pid >= 4243", [(bash, false)])
        try assertMatches("proc.pid = 0x1092", [(bash, true)])
        try assertMatches("proc.pid = '4242'", [(bash, true)])
        try assertMatches("proc.pid = +4242", [(bash, true)])
    }

    func testSignedComparisons() throws {
        let failed = Sample.open("/nope", result: -2)
        try assertMatches("evt.rawres < 0", [(failed, true), (shadow, false)])
        try assertMatches("evt.rawres = -2", [(failed, true), (shadow, false)])
        try assertMatches("fd.num = -1", [(failed, true), (shadow, false)])
        try assertMatches("fd.num >= 3", [(failed, false), (shadow, true)])
        try assertMatches("fd.dirfd in (-100, 5)", [(shadow, true)])
    }

    func testStringOrdering() throws {
        // Falco compares strings byte-wise (strcmp) with the ordering operators.
        try assertMatches("proc.name < c", [(bash, true)])
        try assertMatches("proc.name > c", [(bash, false)])
        try assertMatches("proc.name <= bash", [(bash, true)])
        try assertMatches("proc.name >= bash", [(bash, true)])
        try assertMatches("proc.name >= bashz", [(bash, false)])
    }

    func testBooleans() throws {
        let write = Sample.open("/tmp/out", flags: 1)
        try assertMatches("evt.is_open_read = true", [(shadow, true), (write, false), (bash, false)])
        try assertMatches("evt.is_open_read = false", [(shadow, false), (write, true), (bash, false)])
        try assertMatches("evt.is_open_write != false", [(shadow, false), (write, true)])
        try assertMatches("evt.is_thread in (true)", [(Sample.fork(thread: true), true), (Sample.fork(), false)])
        try assertMatches("proc.is_container = false", [(bash, true), (Sample.inContainer(bash), false)])
    }

    func testContainsAndIcontains() throws {
        // proc.cmdline is "bash -c echo hi".
        try assertMatches(#"proc.cmdline contains "echo hi""#, [(bash, true), (shadow, true)])
        try assertMatches("proc.cmdline contains nope", [(bash, false)])
        try assertMatches("proc.cmdline contains ''", [(bash, true)])
        try assertMatches("proc.cmdline icontains ECHO", [(bash, true)])
        try assertMatches("proc.cmdline icontains EchO", [(bash, true)])
        try assertMatches("proc.cmdline icontains xyz", [(bash, false)])
        try assertMatches("proc.cmdline contains ECHO", [(bash, false)])
    }

    func testStartsAndEndsWith() throws {
        try assertMatches("fd.name startswith /etc/", [(shadow, true), (Sample.open("/usr/etc/x"), false)])
        try assertMatches("fd.name startswith /etc/shadow-long", [(shadow, false)])
        try assertMatches("fd.name endswith shadow", [(shadow, true), (Sample.open("/etc/passwd"), false)])
        try assertMatches("fd.name endswith /x/etc/shadow", [(shadow, false)])
    }

    func testGlob() throws {
        try assertMatches(#"fd.name glob "/etc/*""#, [(shadow, true), (Sample.open("/var/log/x"), false)])
        // Falco calls fnmatch without FNM_PATHNAME: '*' crosses '/'.
        try assertMatches("fd.name glob /*", [(shadow, true)])
        try assertMatches("fd.name glob /e*w", [(shadow, true)])
        try assertMatches("fd.name glob /etc/s?adow", [(shadow, true), (Sample.open("/etc/shhadow"), false)])
        try assertMatches("fd.name glob /etc/[a-s]hadow", [(shadow, true), (Sample.open("/etc/thadow"), false)])
        try assertMatches("fd.name glob /etc/[!s]hadow", [(shadow, false), (Sample.open("/etc/thadow"), true)])
        // A backslash escapes in the pattern: bare, or doubled inside quotes (Falco has no \* string escape).
        try assertMatches(#"fd.name glob /etc/\*"#, [(shadow, false), (Sample.open("/etc/*"), true)])
        try assertMatches(#"fd.name glob "/etc/\\*""#, [(shadow, false), (Sample.open("/etc/*"), true)])
        try assertMatches("fd.name glob /ETC/*", [(shadow, false)])
        try assertMatches("fd.name iglob /ETC/SH*", [(shadow, true), (Sample.open("/etc/passwd"), false)])
    }

    func testPmatch() throws {
        try assertMatches("fd.name pmatch (/etc)", [(shadow, true), (Sample.open("/etc"), true), (Sample.open("/etcx/a"), false)])
        try assertMatches("fd.name pmatch (/var/run, /etc/)", [(shadow, true), (Sample.open("/var/running"), false)])
        try assertMatches("fd.name pmatch (/etc/shadow/deeper)", [(shadow, false)])
        try assertMatches("fd.name pmatch (system_dirs)", [(shadow, true), (Sample.open("/usr/bin/ls"), true), (Sample.open("/usr/lib/x"), false)])
        // Components with wildcards match within one component.
        try assertMatches("fd.name pmatch (/e*c)", [(shadow, true), (Sample.open("/usr/etc/x"), false)])
        try assertMatches("fd.name pmatch (/*/shadow)", [(shadow, true), (Sample.open("/a/b/shadow"), false)])
        try assertMatches("fd.name pmatch (/)", [(shadow, true)])
    }

    func testRegexIsAFullMatch() throws {
        try assertMatches("fd.name regex '/etc/sh[a-z]+'", [(shadow, true), (Sample.open("/etc/passwd"), false)])
        try assertMatches("fd.name regex shadow", [(shadow, false)])
        try assertMatches("fd.name regex '.*shadow'", [(shadow, true)])
        try assertMatches("fd.name regex '/etc/(passwd|shadow)'", [(shadow, true)])
        try assertMatches(#"fd.name regex "/proc/[0-9]+/cmdline""#, [(Sample.open("/proc/12/cmdline"), true), (Sample.open("/proc/self/cmdline"), false)])
    }

    func testInAndIntersectsOnSingleValues() throws {
        try assertMatches("proc.name in (sh, bash)", [(bash, true), (shadow, false)])
        try assertMatches("proc.name in (zsh)", [(bash, false)])
        try assertMatches("proc.name in ('bash', \"cat\")", [(bash, true), (shadow, true)])
        try assertMatches("proc.name intersects (bash, x)", [(bash, true), (shadow, false)])
        try assertMatches("proc.pid in (1, 4242)", [(bash, true)])
        try assertMatches("proc.pid in (1, 2)", [(bash, false)])
        try assertMatches("proc.name in(sh,bash)", [(bash, true)])
    }

    func testListFields() throws {
        // Ancestors are sshd then systemd; argv is [bash, -c, "echo hi"].
        try assertMatches("proc.anames in (sshd, systemd, init)", [(bash, true)])
        try assertMatches("proc.anames in (sshd)", [(bash, false)])
        try assertMatches("proc.anames intersects (sshd, cron)", [(bash, true)])
        try assertMatches("proc.anames intersects (cron)", [(bash, false)])
        try assertMatches("proc.anames contains sshd", [(bash, true)])
        try assertMatches("proc.anames contains ssh", [(bash, false)])
        try assertMatches("proc.argv contains -c", [(bash, true)])
        try assertMatches("proc.argv contains 'echo hi'", [(bash, true)])
        try assertMatches("proc.argv intersects (-x, -c)", [(bash, true)])
        var orphan = bash
        orphan.process.ancestorNames = []
        // As in Falco, `in` asks that every element be in the set: true for an empty list.
        try assertMatches("proc.anames in (sshd)", [(orphan, true)])
        try assertMatches("proc.anames intersects (sshd)", [(orphan, false)])
    }

    func testExists() throws {
        try assertMatches("proc.exepath exists", [(bash, true)])
        try assertMatches("fd.name exists", [(bash, false), (shadow, true)])
        try assertMatches("k8s.pod.uid exists", [(bash, false)])
        try assertMatches("not user.loginname exists", [(bash, true)])
        try assertMatches("container.label[app] exists", [(Sample.inContainer(bash), true), (bash, false)])
        try assertMatches("container.label[nope] exists", [(Sample.inContainer(bash), false)])
    }

    func testEventTypeAliasesAndOpenNames() throws {
        let fork = Sample.fork(), exit = Sample.exit()
        let open = Sample.open("/x", syscall: "open"), openat2 = Sample.open("/x", syscall: "openat2")
        try assertMatches("evt.type = execve", [(bash, true), (fork, false), (shadow, false)])
        // An exec event stands for execve or execveat; a fork event for clone, clone3, fork or vfork.
        try assertMatches("evt.type = execveat", [(bash, true), (fork, false)])
        try assertMatches("evt.type in (clone, clone3, fork, vfork)", [(fork, true), (bash, false)])
        try assertMatches("evt.type = vfork", [(fork, true)])
        try assertMatches("evt.type = procexit", [(exit, true), (bash, false)])
        try assertMatches("evt.type = openat", [(shadow, true), (open, false), (openat2, false)])
        try assertMatches("evt.type in (open, openat2)", [(shadow, false), (open, true), (openat2, true)])
        try assertMatches("evt.type != execve", [(bash, false), (fork, true), (shadow, true)])
        try assertMatches("evt.type != openat", [(shadow, false), (open, true), (bash, true)])
        try assertMatches("evt.type startswith open", [(shadow, true), (bash, false)])
        try assertMatches("evt.type = ptrace", [(bash, false), (fork, false), (exit, false), (shadow, false)])
        // A syscall name not known when compiling is compared by name.
        try assertMatches("evt.type = name_to_handle_at", [(Sample.open("/x", syscall: "name_to_handle_at"), true), (shadow, false)])
        try assertMatches("tolower(evt.type) = clone", [(fork, true), (bash, false)])
    }
}
