import Foundation
import VigilBPF
import VigilEvents
import VigilSeccomp
import VigilSensors
import VigilTestSupport
import XCTest

/// `vigil seccomp record`, `apply` and `verify` end to end, as a user runs them: the built
/// `vigil` binary records a real command and a real container in the kernel, the profile it
/// writes is applied with Docker's `--security-opt seccomp=FILE`, and what it leaves out is
/// refused with EPERM (and reported by `verify`). Every syscall name asserted on is checked to be
/// a row of the one syscall table (bpf/syscalls/syscalls.table, `Syscalls`).
final class SeccompRecordTests: XCTestCase {
    /// .build/<config>/vigil, next to the test bundle.
    static let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("vigil").path

    struct Run { var status: Int32; var stdout: String; var stderr: String }

    /// Runs `argv` to its end (at most `seconds`, then SIGKILL), capturing its output.
    static func run(_ argv: [String], seconds: Double = 120) throws -> Run {
        let (process, stdout, stderr) = try launchCapturing(argv[0], Array(argv.dropFirst()))
        if !waitUntil(seconds: seconds, { !process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: stdout.text(), stderr: stderr.text())
    }

    private func requireRecorder() throws {
        try requireKernel(.attachTpBTF, .mapRingBuffer)
        guard getuid() == 0 else { throw cannotRun("needs root: loads BPF programs and makes cgroups") }
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else { throw cannotRun("no vigil binary at \(Self.binary)") }
    }

    /// `name` is a row of the one syscall table (so asserting on it means something).
    private func tableName(_ name: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        XCTAssertNotNil(Syscalls.named(name), "\(name) is a row of bpf/syscalls/syscalls.table", file: file, line: line)
        return name
    }

    private func temporaryDirectory() throws -> String {
        let directory = NSTemporaryDirectory() + "vigil-seccomp-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        return directory
    }

    /// A container runtime re-executing itself into the container's init (runc's `/proc/self/exe
    /// init`) may finish that exec after its parent moved it into the new cgroup. That exec does
    /// not arm the cgroup (runc's mounts and unshares were then recorded into the container's
    /// profile, seen once in a whole-suite run); the exec of an unconfined entrypoint does.
    func testARuntimeReexecutingItselfDoesNotArmAContainersCgroup() throws {
        try requireRecorder()
        let recorder = try SeccompRecorder()
        let parent = recorder.cgroupMount + "/vigil-test-reexec-\(getpid())", child = parent + "/container"
        XCTAssertEqual(mkdir(parent, 0o755), 0, "mkdir \(parent): \(errno)")
        defer { rmdir(child); rmdir(parent) }
        try recorder.watchChildren(of: SeccompRecorder.cgroupID(ofDirectory: parent))
        XCTAssertEqual(mkdir(child, 0o755), 0)
        let id = try SeccompRecorder.cgroupID(ofDirectory: child)
        // The shell joins the cgroup (found as a container's), then executes itself again.
        _ = try runProgram("/bin/sh", ["-c", "echo $$ > \"$0\" && exec /proc/self/exe -c true", child + "/cgroup.procs"])
        XCTAssertTrue(try recorder.discovered().contains(id), "the child cgroup was found under the watched parent")
        XCTAssertFalse(try recorder.isArmed(cgroup: id), "the re-exec through /proc/self/exe arms nothing")
        // An entrypoint without a filter (seccomp=unconfined) arms it at its exec.
        _ = try runProgram("/bin/sh", ["-c", "echo $$ > \"$0\" && exec /bin/true", child + "/cgroup.procs"])
        XCTAssertTrue(try recorder.isArmed(cgroup: id), "the entrypoint's exec arms the cgroup")
    }

    /// `vigil seccomp record -- /bin/ls /`: the profile allows what ls surely did (its exec,
    /// opening and listing the directory, writing, exiting) and nothing it surely did not.
    func testRecordsACommandFromItsExec() throws {
        try requireRecorder()
        let output = try temporaryDirectory() + "/ls.json"
        let result = try Self.run([Self.binary, "seccomp", "record", "-o", output, "--", "/bin/ls", "/"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("proc"), "ls listed /: \(result.stdout)")
        let profile = try SeccompProfile(contentsOf: output)
        XCTAssertEqual(profile.defaultAction, "SCMP_ACT_ERRNO")
        XCTAssertEqual(profile.defaultErrnoRet, 1)
        for name in ["execve", "openat", "getdents64", "write", "exit_group", "close", "mmap"] {
            XCTAssertTrue(profile.allowedNames.contains(tableName(name)), "\(name) allowed: \(profile.allowedNames.sorted())")
        }
        for name in ["reboot", "init_module", "kexec_load", "mount", "ptrace", "bpf", "wait4"] {
            XCTAssertFalse(profile.allowedNames.contains(tableName(name)), "\(name) not allowed: \(profile.allowedNames.sorted())")
        }
        XCTAssertTrue(result.stderr.contains("profile: \(profile.allowedNames.count) syscalls allowed"), result.stderr)
        #if arch(x86_64)
        let hook = FeatureProbes.shared.result(.attachFentry).isAvailable && KernelFunctions.has("x64_sys_call") ? "fentry" : "tp_btf"
        #else
        let hook = "tp_btf"
        #endif
        XCTAssertTrue(result.stderr.contains("syscall entries hooked with \(hook)"), result.stderr)
    }

    /// The syscall entry hook is fentry on the syscall dispatch where fentry attaches, else the
    /// sys_enter tracepoint with fentry's refusal reported; `verify` stays on sys_enter. The
    /// recorder records a command here with the variant chosen.
    func testEnterHookIsFentryWhereItAttachesElseSysEnter() throws {
        try requireRecorder()
        let recorder = try SeccompRecorder()
        let enter = try XCTUnwrap(recorder.reports.first { $0.hook == "enter" })
        #if arch(x86_64)
        let fentry = FeatureProbes.shared.result(.attachFentry)
        if fentry.isAvailable && KernelFunctions.has("x64_sys_call") {
            XCTAssertEqual(enter.active, "fentry", "\(enter)")
        } else {
            XCTAssertEqual(enter.active, "tp_btf", "\(enter)")
            let first = try XCTUnwrap(enter.attempts.first)
            XCTAssertEqual(first.variant, "fentry")
            XCTAssertNotEqual(first.outcome, .active)
            if !fentry.isAvailable {
                XCTAssertEqual(first.outcome, .skipped)
                XCTAssertEqual(first.reason, "attach:fentry \(fentry)", "\(enter)")
            }
        }
        #else
        XCTAssertEqual(enter.attempts.map(\.variant), ["tp_btf", "raw_tp"])
        #endif
        let directory = recorder.cgroupMount + "/vigil-test-enter-\(getpid())"
        XCTAssertEqual(mkdir(directory, 0o755), 0, "mkdir \(directory): \(errno)")
        defer { rmdir(directory) }
        let id = try SeccompRecorder.cgroupID(ofDirectory: directory)
        try recorder.watch(cgroup: id, from: .exec)
        // nice calls getpriority and setpriority, nproc sched_getaffinity; sh forks its subshell
        // (clone, with flags; its commands it starts with vfork).
        _ = try runProgram("/bin/sh", ["-c", "echo $$ > \"$0\" && exec /bin/sh -c '/usr/bin/nice -n 1 /usr/bin/nproc >/dev/null; (exit 0); true'",
                                       directory + "/cgroup.procs"])
        let recording = try XCTUnwrap(try recorder.recording(of: id))
        for name in ["execve", "getpriority", "setpriority", "sched_getaffinity", "exit_group"] {
            XCTAssertTrue(recording.native.contains(try XCTUnwrap(SeccompRecording.number(of: tableName(name), on: .current))),
                          "\(name) recorded with \(enter.active): \(recording.names.sorted())")
        }
        XCTAssertFalse(recording.names.contains(tableName("reboot")))
        XCTAssertNotEqual(recording.cloneFlags, 0, "sh's fork noted its clone flags")
        let verifying = try SeccompRecorder(verify: true)
        XCTAssertEqual(verifying.reports.first { $0.hook == "enter" }?.attempts.map(\.variant), ["tp_btf", "raw_tp"], "verify's enter is on sys_enter")
    }

    /// `vigil seccomp record --enter-hook` forces the way syscall entries are hooked: sys_enter
    /// records with the tracepoint whatever the chain would choose; fentry records with fentry
    /// where it attaches, else fails before running the command, naming the hook and why; an
    /// unknown name is refused by the parser.
    func testEnterHookOptionForcesTheHook() throws {
        try requireRecorder()
        let directory = try temporaryDirectory()
        let sysEnter = try Self.run([Self.binary, "seccomp", "record", "--enter-hook", "sys_enter", "-o", directory + "/tp.json",
                                     "--", "/usr/bin/nice", "-n", "1", "/bin/true"])
        XCTAssertEqual(sysEnter.status, 0, sysEnter.stderr)
        XCTAssertTrue(sysEnter.stderr.contains("syscall entries hooked with tp_btf"), sysEnter.stderr)
        XCTAssertFalse(sysEnter.stderr.contains("fentry"), "fentry not tried: \(sysEnter.stderr)")
        let recorded = try SeccompProfile(contentsOf: directory + "/tp.json").allowedNames
        for name in ["execve", "getpriority", "setpriority", "exit_group"] {
            XCTAssertTrue(recorded.contains(tableName(name)), "\(name) recorded with sys_enter: \(recorded.sorted())")
        }

        let fentry = try Self.run([Self.binary, "seccomp", "record", "--enter-hook", "fentry", "-o", directory + "/fentry.json",
                                   "--", "/bin/sh", "-c", "echo ran"])
        #if arch(x86_64)
        let attaches = FeatureProbes.shared.result(.attachFentry).isAvailable && KernelFunctions.has("x64_sys_call")
        #else
        let attaches = false
        #endif
        if attaches {
            XCTAssertEqual(fentry.status, 0, fentry.stderr)
            XCTAssertTrue(fentry.stderr.contains("syscall entries hooked with fentry"), fentry.stderr)
            XCTAssertTrue(try SeccompProfile(contentsOf: directory + "/fentry.json").allowedNames.contains(tableName("execve")))
        } else {
            XCTAssertNotEqual(fentry.status, 0, "forced fentry cannot run here: \(fentry.stderr)")
            XCTAssertFalse(fentry.stdout.contains("ran"), "the command did not run: \(fentry.stdout)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/fentry.json"), "no profile written")
            #if arch(x86_64)
            // The hook and why: the loader's reason for fentry (the probe's, or the attach's).
            XCTAssertTrue(fentry.stderr.contains("forced enter hook fentry: no variant of hook 'enter' works on this kernel (fentry: "), fentry.stderr)
            let probe = FeatureProbes.shared.result(.attachFentry)
            if !probe.isAvailable { XCTAssertTrue(fentry.stderr.contains("attach:fentry \(probe)"), fentry.stderr) }
            XCTAssertFalse(fentry.stderr.contains("tp_btf"), "no fallback to sys_enter: \(fentry.stderr)")
            #else
            XCTAssertTrue(fentry.stderr.contains("enter hook fentry: this architecture has no syscall dispatch function"), fentry.stderr)
            #endif
        }

        let unknown = try Self.run([Self.binary, "seccomp", "record", "--enter-hook", "kprobe", "--", "/bin/true"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("'fentry'") && unknown.stderr.contains("'sys_enter'"), unknown.stderr)
    }

    /// A command's exit status is vigil's, and a complain profile logs instead of refusing.
    func testComplainProfileAndExitStatus() throws {
        try requireRecorder()
        let output = try temporaryDirectory() + "/false.json"
        let result = try Self.run([Self.binary, "seccomp", "record", "--complain", "-o", output, "--", "/bin/sh", "-c", "exit 3"])
        XCTAssertEqual(result.status, 3, result.stderr)
        let profile = try SeccompProfile(contentsOf: output)
        XCTAssertEqual(profile.defaultAction, "SCMP_ACT_LOG")
        XCTAssertTrue(profile.allowedNames.contains(tableName("exit_group")), "\(profile.allowedNames.sorted())")
    }

    /// `vigil seccomp record --image` records the next container of an image from the runtime's
    /// filter install; `docker run --security-opt seccomp=PROFILE` then runs the same workload,
    /// while a syscall it never made (mkdir) is refused with EPERM, which the default profile
    /// allows; `vigil seccomp verify` reports that refusal.
    func testContainerProfileRunsTheWorkloadAndRefusesTheRest() throws {
        try requireRecorder()
        try DockerTestEngine.require()
        // A tag of its own, so no other test's container of the busybox image is recorded.
        let image = "vigil-seccomp-test:\(UUID().uuidString.prefix(8).lowercased())"
        XCTAssertEqual(DockerTestEngine.run(["docker", "tag", DockerTestEngine.image, image]).status, 0)
        addTeardownBlock { _ = DockerTestEngine.run(["docker", "rmi", image]) }
        let directory = try temporaryDirectory()
        let output = directory + "/web.json"
        let workload = ["sh", "-c", "ls /; cat /etc/passwd; echo done; sleep 1"]

        let (recorder, _, recorderErrors) = try launchCapturing(Self.binary, [
            "seccomp", "record", "--image", image, "-o", output, "--root", directory, "--duration", "60",
        ])
        defer { if recorder.isRunning { kill(recorder.processIdentifier, SIGKILL) } }
        XCTAssertTrue(waitUntil(seconds: 60) { recorderErrors.sofar.contains("waiting for the next container") || !recorder.isRunning },
                      "vigil seccomp record started: \(recorderErrors.sofar)")
        let recorded = DockerTestEngine.run(["docker", "run", "--rm", "--network", "none", image] + workload)
        XCTAssertEqual(recorded.status, 0, recorded.errors)
        XCTAssertTrue(recorded.output.contains("done"), recorded.output)
        XCTAssertTrue(waitUntil(seconds: 30) { !recorder.isRunning }, "vigil stops when the container is gone: \(recorderErrors.sofar)")
        endProcess(recorder)
        XCTAssertEqual(recorder.terminationStatus, 0, recorderErrors.text())
        XCTAssertTrue(recorderErrors.text().contains("recording container"), recorderErrors.text())

        let profile = try SeccompProfile(contentsOf: output)
        XCTAssertEqual(try ProfileStore(root: directory).profile(for: image), profile, "kept per image under ROOT/var/lib/vigil/seccomp")
        for name in ["execve", "write", "exit_group"] {
            XCTAssertTrue(profile.allowedNames.contains(tableName(name)), "\(name) allowed: \(profile.allowedNames.sorted())")
        }
        XCTAssertTrue(profile.allowedNames.contains(tableName("nanosleep")) || profile.allowedNames.contains(tableName("clock_nanosleep")),
                      "sleep's call allowed: \(profile.allowedNames.sorted())")
        for name in ["reboot", "init_module", "mkdir", "mkdirat", "mount", "unshare", "ptrace", "bpf", "keyctl", "add_key"] {
            XCTAssertFalse(profile.allowedNames.contains(tableName(name)), "\(name) not allowed: \(profile.allowedNames.sorted())")
        }
        XCTAssertLessThan(profile.allowedNames.count, 150, "least privilege: \(profile.allowedNames.count) syscalls")

        // The same workload runs under the profile...
        let applied = DockerTestEngine.run(["docker", "run", "--rm", "--network", "none", "--security-opt", "seccomp=\(output)", image] + workload)
        XCTAssertEqual(applied.status, 0, "the recorded workload runs under its profile: \(applied.errors)")
        XCTAssertEqual(applied.output, recorded.output)
        // ...and `vigil seccomp apply` prints that line.
        let apply = try Self.run([Self.binary, "seccomp", "apply", output, "--", image, "true"])
        XCTAssertEqual(apply.status, 0, apply.stderr)
        XCTAssertEqual(apply.stdout, "docker run --security-opt seccomp=\(output) \(image) true\n")

        // A syscall it never made is refused with EPERM; Docker's default profile allows it.
        let mkdir = ["sh", "-c", "busybox mkdir /made-here && echo made"]
        let allowed = DockerTestEngine.run(["docker", "run", "--rm", "--network", "none", image] + mkdir)
        XCTAssertEqual(allowed.status, 0, allowed.errors)
        XCTAssertTrue(allowed.output.contains("made"), allowed.output)
        let refused = DockerTestEngine.run(["docker", "run", "--rm", "--network", "none", "--security-opt", "seccomp=\(output)", image] + mkdir)
        XCTAssertNotEqual(refused.status, 0, refused.output)
        XCTAssertTrue(refused.errors.contains("Operation not permitted"), "mkdir gets EPERM: \(refused.errors)")
        XCTAssertFalse(refused.output.contains("made"), refused.output)

        // `vigil seccomp verify` runs it under the profile and reports the refused call.
        let verify = try Self.run([Self.binary, "seccomp", "verify", output, "--duration", "60",
                                   "--docker-option=--network=none", "--", image, "sh", "-c", "busybox mkdir /made-here; sleep 1"])
        XCTAssertEqual(verify.status, 1, "verify exits 1 when something was refused: \(verify.stderr)")
        let denials = try verify.stdout.split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        let denial = try XCTUnwrap(denials.first { ["mkdir", "mkdirat"].contains($0["syscall"] as? String) }, "mkdir reported: \(verify.stdout) \(verify.stderr)")
        XCTAssertEqual(denial["errno"] as? Int, 1)
        XCTAssertEqual(denial["comm"] as? String, "busybox")
        XCTAssertTrue(verify.stderr.contains("1 refused syscall"), verify.stderr)
        // Under its own profile the recorded workload has nothing refused.
        let clean = try Self.run([Self.binary, "seccomp", "verify", output, "--duration", "60",
                                  "--docker-option=--network=none", "--", image] + workload)
        XCTAssertEqual(clean.status, 0, "nothing refused: \(clean.stdout) \(clean.stderr)")
        XCTAssertEqual(clean.stdout, "")
    }
}
