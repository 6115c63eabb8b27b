import VigilEvents
@testable import VigilRules
import XCTest

/// Events and helpers for the condition tests.
enum Sample {
    static let file = "rules.yaml"
    static let location = SourceLocation(file: file, line: 10, column: 14)

    static func event(_ payload: Payload, comm: String = "bash", pid: UInt32 = 4242, uid: UInt32 = 1000) -> Event {
        var event = Event(bootTimeNs: 1, timeNs: 1_700_000_000_000_000_000, cgroupID: 77, pid: pid, tid: pid, ppid: 4000,
                          uid: uid, gid: 1000, cpu: 3, mountNamespace: 4026531840, pidNamespace: 4026531836,
                          comm: ByteString(comm), payload: payload)
        event.process.executablePath = ByteString("/usr/bin/\(comm)")
        event.process.arguments = [ByteString(comm), "-c", "echo hi"]
        event.process.cwd = "/home/alice"
        event.process.ttyNumber = 34816
        event.process.loginUID = 1000
        event.process.ancestorNames = ["sshd", "systemd"]
        event.process.ancestorPIDs = [4000, 1]
        event.process.userName = "alice"
        return event
    }

    /// `bash -c "echo hi"` run by sshd, on the host.
    static func exec(comm: String = "bash", arguments: [ByteString]? = nil) -> Event {
        var e = event(.exec(.init(filename: ByteString("/usr/bin/\(comm)"), executablePath: ByteString("/usr/bin/\(comm)"),
                                  arguments: arguments ?? [ByteString(comm), "-c", "echo hi"], argumentsTruncated: false,
                                  cwd: "/home/alice", tty: "pts0", ttyNumber: 34816, loginUID: 1000, startTimeNs: 5)),
                      comm: comm)
        if let arguments { e.process.arguments = arguments }
        return e
    }

    /// `cat` opening `path` (flags O_RDONLY unless given) with `syscall`.
    static func open(_ path: String, syscall: String = "openat", flags: UInt32 = 0, result: Int64 = 3, comm: String = "cat") -> Event {
        event(.open(.init(syscall: syscall, name: ByteString(path), path: ByteString(path), flags: flags, mode: 0,
                          dirfd: -100, result: result, truncated: false)), comm: comm)
    }

    static func fork(thread: Bool = false) -> Event {
        event(.fork(.init(childPID: 4243, childTID: 4243, isThread: thread, childStartTimeNs: 9)))
    }

    static func exit(status: UInt32 = 1 << 8) -> Event {
        event(.exit(.init(status: status, startTimeNs: 5, durationNs: 1_000_000)))
    }

    /// A container event.
    static func inContainer(_ event: Event, labels: [String: String] = ["app": "web"]) -> Event {
        var e = event
        e.container = ContainerContext(fullID: String(repeating: "ab", count: 32), runtime: "docker", name: "web-1",
                                       image: "nginx:1.27", labels: labels, podUID: "")
        return e
    }

    static let context = ConditionContext(
        macros: [
            "spawned_process": ("evt.type in (execve, execveat)", SourceLocation(file: "macros.yaml", line: 2, column: 14)),
            "container": ("container.id != host", SourceLocation(file: "macros.yaml", line: 4, column: 14)),
            "shell_procs": ("proc.name in (shell_binaries)", SourceLocation(file: "macros.yaml", line: 6, column: 14)),
            "never_true": ("(evt.num=0)", SourceLocation(file: "macros.yaml", line: 8, column: 14)),
            "always_true": ("(evt.num>=0)", SourceLocation(file: "macros.yaml", line: 10, column: 14)),
            "shell_in_container": ("spawned_process and container and shell_procs", SourceLocation(file: "macros.yaml", line: 12, column: 14)),
            "interactive": ("proc.tty != 0 or proc.aname = sshd", SourceLocation(file: "macros.yaml", line: 14, column: 14)),
            "user_known_shells": ("(never_true)", SourceLocation(file: "macros.yaml", line: 16, column: 14)),
        ],
        lists: [
            "shell_binaries": ["sh", "bash", "zsh"],
            "sensitive_files": ["/etc/shadow", "/etc/sudoers"],
            "system_dirs": ["/bin", "/usr/bin", "/etc"],
            "empty_list": [],
            "pids": ["1", "4000"],
        ])

    static func compile(_ text: String, context: ConditionContext = Sample.context,
                        file: StaticString = #filePath, line: UInt = #line) throws -> CompiledCondition {
        do {
            return try ConditionCompiler.compile(text, at: location, context: context)
        } catch {
            XCTFail("\(text): \(error)", file: file, line: line)
            throw error
        }
    }
}

extension XCTestCase {
    /// Asserts that `condition` matches exactly the events marked true.
    func assertMatches(_ condition: String, _ expectations: [(Event, Bool)], context: ConditionContext = Sample.context,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let compiled = try Sample.compile(condition, context: context, file: file, line: line)
        for (index, (event, expected)) in expectations.enumerated() {
            XCTAssertEqual(compiled.matches(event), expected, "\(condition) on event #\(index) (\(event.kind))", file: file, line: line)
            XCTAssertEqual(compiled.explain(event) == nil, expected, "explain agrees with matches: \(condition) #\(index)", file: file, line: line)
        }
    }

    /// Asserts that compiling `condition` fails with exactly `description` (`FILE:LINE:COL: message`).
    func assertError(_ condition: String, _ description: String, context: ConditionContext = Sample.context,
                     at location: SourceLocation = Sample.location, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try ConditionCompiler.compile(condition, at: location, context: context)
            XCTFail("expected an error for: \(condition)", file: file, line: line)
        } catch {
            XCTAssertEqual(error.description, description, file: file, line: line)
        }
    }
}
