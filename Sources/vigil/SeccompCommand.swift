import ArgumentParser
import Foundation
import Synchronization
import VigilActions
import VigilBPF
import VigilContainers
import VigilDaemon
import VigilEvents
import VigilSeccomp
import VigilSensors
#if canImport(Glibc)
import Glibc
#endif

/// `vigil seccomp`: least-privilege seccomp profiles (record, merge, diff, apply, verify, list).
struct SeccompCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seccomp",
        abstract: "Least-privilege seccomp profiles: record what a command or container uses, then merge, diff, apply and verify.",
        subcommands: [SeccompRecord.self, SeccompMerge.self, SeccompDiff.self, SeccompApply.self, SeccompVerify.self, SeccompList.self]
    )
}

/// What to record or verify: a command, a running container (id, name or label) or the next container of an image.
struct SeccompTarget: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("A running container: id, id prefix or name.", valueName: "container"))
    var container: String?
    @Option(name: .long, help: ArgumentHelp("Running containers with this label (KEY or KEY=VALUE); their syscalls are recorded together.", valueName: "label"))
    var label: String?
    @Option(name: .long, help: ArgumentHelp("The next container started from this image, from its entrypoint's first syscall.", valueName: "image"))
    var image: String?
    @Argument(parsing: .postTerminator, help: "The command to run and record (after --).")
    var command: [String] = []

    func validate() throws { _ = try recordingTarget() }

    /// The one target named on the command line.
    func recordingTarget() throws -> RecordingTarget {
        let chosen: [RecordingTarget] = [container.map(RecordingTarget.container), label.map(RecordingTarget.label),
                                         image.map(RecordingTarget.image), command.isEmpty ? nil : .command(command)].compactMap { $0 }
        guard chosen.count == 1 else { throw ValidationError("say what to record: one of --container, --label, --image or -- COMMAND") }
        return chosen[0]
    }
}

extension SeccompRecorder.EnterHook: ExpressibleByArgument {}

/// What one recording session watches (built from `SeccompTarget` or by `verify`; never an
/// unparsed `ParsableArguments`, whose options cannot be read outside parsing).
enum RecordingTarget: Equatable {
    /// A command run in a fresh cgroup, recorded from its exec.
    case command([String])
    /// A running container: id, id prefix or name.
    case container(String)
    /// Running containers with this label (KEY or KEY=VALUE).
    case label(String)
    /// The next container of this image.
    case image(String)
}

struct SeccompRecord: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Record the syscalls of a command or container in the kernel and write its seccomp profile.",
        discussion: """
        Recording is a per-cgroup set of syscalls in the kernel (bpf/seccomp.bpf.c): no event per \
        syscall. A command runs in a fresh cgroup and is recorded from its exec; a running container \
        from now on; --image waits for the next container of that image and records it from its \
        entrypoint's exec (runc's setup before it is not the workload's). Stops at SIGINT, when the \
        command exits, or after --duration; then writes the profile (and, for containers, keeps it \
        per image under /var/lib/vigil/seccomp).
        """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var target: SeccompTarget
    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Write the profile here (default: standard output).", valueName: "file"))
    var output: String?
    @Option(name: .long, help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds"))
    var duration: Double?
    @Flag(name: .long, help: "A complain profile: SCMP_ACT_LOG by default (everything runs; the kernel logs what would be refused).")
    var complain = false
    @Flag(name: .long, inversion: .prefixedNo, help: "Keep container profiles per image under ROOT/var/lib/vigil/seccomp (merged with earlier runs).")
    var store = true
    @Option(name: .long, help: ArgumentHelp("The root of the profile store (default: $VIGIL_ROOT or /).", valueName: "dir"))
    var root: String?
    @Option(name: .customLong("enter-hook"), help: ArgumentHelp("Benchmarks and debugging: hook every syscall's entry only this way: fentry (on the syscall dispatch, x86_64) or sys_enter (the generic tracepoint); an error when it cannot run here (default: fentry where it attaches, else sys_enter).", valueName: "hook"))
    var enterHook: SeccompRecorder.EnterHook?

    func run() throws {
        global.bootstrapLogging()
        StopSignal.install()
        let recorder = try SeccompRecorder(enterHook: enterHook)
        if let enter = recorder.reports.first(where: { $0.hook == "enter" }) {
            // What recording costs the host's other tasks: fentry little, sys_enter the slow path.
            let passed = enter.attempts.filter { $0.outcome == .skipped || $0.outcome == .failed }.map { "\($0.variant): \($0.reason ?? $0.outcome.rawValue)" }
            Log.info("syscall entries hooked with \(enter.active)\(passed.isEmpty ? "" : " (\(passed.joined(separator: "; ")))")")
        }
        let session = RecordingSession(recorder: recorder, duration: duration)
        let result = try session.record(try target.recordingTarget())
        let profile = SeccompProfile(recording: result.recording, complain: complain)
        if let output { try profile.write(to: output) } else { FileHandle.standardOutput.write(profile.json()) }
        Log.info("profile: \(profile.comparedWithDockerDefault().summary)")
        if store, let image = result.image {
            let kept = try ProfileStore(root: root ?? ProcessInfo.processInfo.environment["VIGIL_ROOT"] ?? "/").save(profile, for: image)
            Log.info("kept for image \(image): \(ProfileStore(root: root ?? "/").path(for: image)) (\(kept.allowedNames.count) syscalls)")
        }
        let recording = result.recording
        Log.info("recorded \(recording.names.count) syscalls\(recording.compat.isEmpty ? "" : ", \(recording.compat.count) of 32-bit tasks (numbers \(recording.compat.sorted().map(String.init).joined(separator: ",")): the syscall table does not name them)")\(recording.unnamed.isEmpty ? "" : ", unnamed numbers \(recording.unnamed)") in \(String(format: "%.1f", result.seconds)) s\(result.exitStatus.map { "; the command exited with \($0)" } ?? "")")
        if let status = result.exitStatus, status != 0 { throw ExitCode(status) }
    }
}

/// One recording: starts the target, polls the kernel's record, shows progress on a terminal.
struct RecordingSession {
    var recorder: SeccompRecorder
    var duration: Double?
    var verify = false

    struct Result {
        var recording: SeccompRecording
        var image: String?
        var seconds: Double
        var exitStatus: Int32?
        var cgroups: Set<UInt64>
    }

    /// Records `target` until it ends, SIGINT, or `duration`; `tick` runs every poll (verify reads denials there).
    func record(_ target: RecordingTarget, tick: (Set<UInt64>) throws -> Void = { _ in }) throws -> Result {
        let start = Date()
        var cgroups: Set<UInt64> = []
        var image: String?
        var child: pid_t?
        var cgroupDirectory: String?
        defer { if let cgroupDirectory { rmdir(cgroupDirectory) } }
        let docker = DockerClient()
        let resolver = CgroupResolver()
        var watchParent: UInt64?
        var decided: Set<UInt64> = []
        var undecided: [UInt64: Int] = [:] // discovered cgroups not yet identified: polls so far
        var what = ""
        switch target {
        case .command(let command):
            let directory = recorder.cgroupMount + "/vigil-seccomp-\(getpid())"
            guard mkdir(directory, 0o755) == 0 || errno == EEXIST else {
                throw ValidationError("cannot make the cgroup \(directory): \(String(cString: strerror(errno)))")
            }
            cgroupDirectory = directory
            let id = try SeccompRecorder.cgroupID(ofDirectory: directory)
            try recorder.watch(cgroup: id, from: .exec, verify: verify)
            cgroups.insert(id)
            // The shell joins the cgroup, then execs the command: recording starts at that exec.
            child = try spawn(["/bin/sh", "-c", "echo $$ > \"$0\" && exec \"$@\"", directory + "/cgroup.procs"] + command)
            what = command.joined(separator: " ")
        case .container(let name):
            guard let details = try docker.inspect(name) else { throw ValidationError("no container '\(name)' (docker at \(docker.socketPath))") }
            image = details.image
            let start: SeccompRecorder.Start = details.pid.map(SeccompRecorder.underFilter) ?? true ? .underFilter : .now
            for id in try ContainerLookup.cgroupIDs(of: details.id, docker: docker) {
                try recorder.watch(cgroup: id, from: start, verify: verify)
                cgroups.insert(id)
            }
            what = "container \(details.name) (\(details.image))"
        case .label(let label):
            let (key, value) = label.firstIndex(of: "=").map { (String(label[..<$0]), String(label[label.index(after: $0)...])) } ?? (label, nil)
            let matching = try docker.containers().filter { c in c.labels[key].map { value == nil || $0 == value } ?? false }
            guard !matching.isEmpty else { throw ValidationError("no running container with label \(label)") }
            image = Set(matching.map(\.image)).count == 1 ? matching[0].image : nil
            for c in matching {
                let pid = try docker.inspect(c.id)?.pid
                let start: SeccompRecorder.Start = pid.map(SeccompRecorder.underFilter) ?? true ? .underFilter : .now
                for id in try ContainerLookup.cgroupIDs(of: c.id, docker: docker) {
                    try recorder.watch(cgroup: id, from: start, verify: verify)
                    cgroups.insert(id)
                }
            }
            what = "\(matching.count) container(s) labelled \(label)"
        case .image(let wanted):
            image = wanted
            let parent = recorder.cgroupMount + "/docker"
            if !FileManager.default.fileExists(atPath: parent) { _ = mkdir(parent, 0o755) }
            let id = try SeccompRecorder.cgroupID(ofDirectory: parent)
            try recorder.watchChildren(of: id)
            watchParent = id
            what = "the next container of \(wanted)"
            Log.info("waiting for the next container of \(wanted) (cgroups under \(parent))")
        }
        // The sensor is attached and the cgroups watched: what runs from here is recorded.
        if watchParent == nil, !verify { Log.info("recording \(what)") }
        let progress = RecordingProgress(enabled: isatty(STDERR_FILENO) != 0, what: what)
        var exitStatus: Int32?
        var seconds: Double { Date().timeIntervalSince(start) }
        var ended = false
        while !StopSignal.requested && !ended {
            if let duration, seconds >= duration { break }
            if watchParent != nil {
                for id in try recorder.discovered() where !decided.contains(id) {
                    let match = cgroups.isEmpty ? Self.container(ofCgroup: id, image: image ?? "", resolver: resolver, docker: docker) : .other
                    if case .unknown = match {
                        // Not known yet (the resolver's rescan interval, a slow engine): the kernel
                        // records it meanwhile; asked again next poll, up to `identifyPolls`.
                        undecided[id, default: 0] += 1
                        guard undecided[id, default: 0] >= Self.identifyPolls else { continue }
                        Log.info("cgroup \(id): no container found for it after \(Self.identifyPolls) polls; not recorded")
                    }
                    decided.insert(id)
                    if case .matches(let name, let container, let containerImage) = match {
                        cgroups.insert(id)
                        Log.info("recording container \(name) (\(container.prefix(12))) of \(containerImage)")
                    } else {
                        try recorder.ignore(cgroup: id)
                    }
                }
            }
            if let pid = child {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                    ended = true
                }
            } else if watchParent == nil || !cgroups.isEmpty {
                // A container that stopped: its cgroup is gone.
                if !cgroups.isEmpty, cgroups.allSatisfy({ resolver.exists(cgroupID: $0) == false }) { ended = true }
            }
            try tick(cgroups)
            let recording = try merged(cgroups)
            progress.show(recording, seconds: seconds)
            if !ended { usleep(100_000) }
        }
        if let pid = child, exitStatus == nil {
            kill(pid, SIGTERM)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        }
        try tick(cgroups)
        let recording = try merged(cgroups)
        progress.finish()
        return Result(recording: recording, image: image, seconds: seconds, exitStatus: exitStatus, cgroups: cgroups)
    }

    private func merged(_ cgroups: Set<UInt64>) throws -> SeccompRecording {
        try cgroups.reduce(SeccompRecording()) { try $0.union(recorder.recording(of: $1) ?? SeccompRecording()) }
    }

    /// What a cgroup discovered under the engine's parent is for `vigil seccomp record --image`.
    enum DiscoveredCgroup {
        case matches(name: String, container: String, image: String)
        /// Another image's container, or no container's cgroup.
        case other
        /// Not known yet: the cgroup not in the resolver's last scan, or the engine not answering.
        case unknown
    }

    /// The polls (100 ms each) a discovered cgroup may stay `unknown` before it is ignored.
    static let identifyPolls = 50

    static func container(ofCgroup id: UInt64, image wanted: String, resolver: CgroupResolver, docker: DockerClient) -> DiscoveredCgroup {
        guard let identity = resolver.identity(forCgroupID: id) else { return .unknown }
        guard !identity.id.isEmpty else { return .other }
        let details: DockerContainerDetails?
        do { details = try docker.inspect(identity.id) } catch { return .unknown }
        guard let details, imageMatches(details.image, wanted) else { return .other }
        return .matches(name: details.name, container: identity.id, image: details.image)
    }

    static func imageMatches(_ image: String, _ wanted: String) -> Bool {
        image == wanted || image == wanted + ":latest" || wanted == image + ":latest"
    }

    /// Starts `argv` as a child (posix_spawn), inheriting standard input, output and error.
    func spawn(_ argv: [String]) throws -> pid_t {
        var pid: pid_t = 0
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        let rc = posix_spawn(&pid, argv[0], nil, nil, cArgs, environ)
        guard rc == 0 else { throw ValidationError("cannot run \(argv[0]): \(String(cString: strerror(rc)))") }
        return pid
    }
}

/// The live line on a terminal: syscalls so far, the newest highlighted, elapsed time.
final class RecordingProgress {
    let enabled: Bool
    let what: String
    private var seen: Set<String> = []
    private var newest: [String] = []

    init(enabled: Bool, what: String) {
        self.enabled = enabled
        self.what = what
    }

    func show(_ recording: SeccompRecording, seconds: Double) {
        let names = recording.names
        let new = names.filter { !seen.contains($0) }
        seen.formUnion(new)
        if !new.isEmpty { newest = Array(new.suffix(4)) }
        guard enabled else { return }
        let fresh = newest.map { "\u{1b}[1;33m\($0)\u{1b}[0m" }.joined(separator: " ")
        FileHandle.standardError.write(Data("\r\u{1b}[2Krecording \(what): \(names.count) syscalls, newest: \(fresh)  \(String(format: "%.1f", seconds)) s".utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

struct SeccompMerge: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "merge", abstract: "Merge profiles (the union of runs) into one.")
    @Argument(help: "Profiles to merge.") var profiles: [String]
    @Option(name: [.customShort("o"), .long], help: ArgumentHelp("Write the merged profile here (default: standard output).", valueName: "file"))
    var output: String?

    func run() throws {
        guard !profiles.isEmpty else { throw ValidationError("name at least one profile") }
        let merged = SeccompProfile.merge(try profiles.map { try SeccompProfile(contentsOf: $0) })
        if let output { try merged.write(to: output) } else { FileHandle.standardOutput.write(merged.json()) }
    }
}

struct SeccompDiff: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "What two profiles allow differently; exits 1 when they differ. --compare-docker: their size against Docker's default profile.",
        discussion: """
        --compare-docker prints, for each profile, `FILE: N syscalls allowed, Docker's default \
        allows M` (and the names it allows beyond Docker's default, if any), M counting the names \
        of Docker's default profile (moby 20.10.24, default capabilities) this architecture has; \
        with one profile it prints only that.
        """
    )
    @Argument(help: "The first profile.") var a: String
    @Argument(help: "The second profile (optional with --compare-docker).") var b: String?
    @Flag(name: .customLong("compare-docker"), help: "Print each profile's size against Docker's default profile.")
    var compareDocker = false

    func validate() throws {
        if b == nil, !compareDocker { throw ValidationError("name two profiles (or one with --compare-docker)") }
    }

    func run() throws {
        let first = try SeccompProfile(contentsOf: a)
        let second = try b.map { try SeccompProfile(contentsOf: $0) }
        var out = ""
        if compareDocker {
            out += "\(a): \(first.comparedWithDockerDefault().summary)\n"
            if let b, let second { out += "\(b): \(second.comparedWithDockerDefault().summary)\n" }
        }
        if let b, let second {
            let d = SeccompProfile.diff(first, second)
            if let (x, y) = d.defaultActions { out += "default action: \(x) | \(y)\n" }
            for name in d.onlyInA { out += "- \(name)\n" }
            for name in d.onlyInB { out += "+ \(name)\n" }
            for name in d.conditionsDiffer { out += "~ \(name)\n" }
            out += "\(d.onlyInA.count) only in \(a), \(d.onlyInB.count) only in \(b), \(d.conditionsDiffer.count) with other conditions\n"
        }
        FileHandle.standardOutput.write(Data(out.utf8))
        if let second, !SeccompProfile.diff(first, second).isEmpty { throw ExitCode(1) }
    }
}

struct SeccompApply: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Print (or run) the docker run line using a profile; with --kubernetes, install it for the kubelet and print the securityContext.")
    @Argument(help: "The profile.") var profile: String
    @Flag(name: .customLong("run"), help: "Run the docker run line instead of printing it.") var execute = false
    @Flag(name: .long, help: "Install the profile into the kubelet's seccomp directory and print the securityContext snippet.") var kubernetes = false
    @Option(name: .long, help: ArgumentHelp("The kubelet's seccomp directory.", valueName: "dir"))
    var kubeletDir = "/var/lib/kubelet/seccomp"
    @Argument(parsing: .postTerminator, help: "docker run's arguments after the options (IMAGE [COMMAND...]), after --.")
    var dockerArguments: [String] = []

    func run() throws {
        let loaded = try SeccompProfile(contentsOf: profile) // checks it is a profile
        let absolute = URL(fileURLWithPath: profile).standardizedFileURL.path
        if kubernetes {
            let name = "vigil/" + URL(fileURLWithPath: profile).lastPathComponent
            do { try Directories.create(kubeletDir + "/vigil") } catch { throw ValidationError("\(error)") }
            try loaded.write(to: kubeletDir + "/" + name)
            print("""
            # \(kubeletDir)/\(name) written; in the pod or container spec:
            securityContext:
              seccompProfile:
                type: Localhost
                localhostProfile: \(name)
            """)
            return
        }
        let line = ["docker", "run", "--security-opt", "seccomp=\(absolute)"] + dockerArguments
        guard execute else {
            print(line.map(Self.quoted).joined(separator: " "))
            return
        }
        guard !dockerArguments.isEmpty else { throw ValidationError("--run needs docker run's arguments after --: IMAGE [COMMAND...]") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = line
        try process.run()
        process.waitUntilExit()
        if process.terminationStatus != 0 { throw ExitCode(process.terminationStatus) }
    }

    static func quoted(_ word: String) -> String {
        word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,@+".contains($0) } ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

struct SeccompList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the profiles kept per image (from the store's files, or with --daemon from the daemon's API).")
    @Option(name: .long, help: ArgumentHelp("The root of the profile store (default: $VIGIL_ROOT or /).", valueName: "dir"))
    var root: String?
    @Flag(name: .long, help: "Ask the daemon (GET /v1/seccomp/profiles) instead of reading the store.")
    var daemon = false
    @Option(name: .long, help: ArgumentHelp("With --daemon: print this image's kept profile (its OCI JSON).", valueName: "image"))
    var image: String?
    @Flag(name: .long, help: "With --daemon: print the API's JSON.")
    var json = false
    @OptionGroup var client: ClientOptions

    func validate() throws {
        if !daemon, image != nil || json { throw ValidationError("--image and --json ask the daemon: add --daemon") }
        if daemon, root != nil { throw ValidationError("--root reads the store's files; the daemon serves its own (state_dir/seccomp)") }
    }

    func run() throws {
        guard daemon else {
            let store = ProfileStore(root: root ?? ProcessInfo.processInfo.environment["VIGIL_ROOT"] ?? "/")
            for entry in try store.list() { print("\(entry.file)\t\(entry.allowed) syscalls\t\(entry.defaultAction)") }
            return
        }
        client.global.bootstrapLogging()
        do {
            if let image {
                let (_, body) = try client.client.request("GET", "/v1/seccomp/profiles/" + DaemonClient.queryValue(image))
                print(String(decoding: body, as: UTF8.self), terminator: "")
                return
            }
            let (_, body) = try client.client.request("GET", "/v1/seccomp/profiles")
            if json {
                print(String(decoding: body, as: UTF8.self))
                return
            }
            let profiles = ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any])?["profiles"] as? [[String: Any]] ?? []
            for profile in profiles {
                let runs = (profile["runs"] as? Int).map { "\($0) run(s)" } ?? "-"
                print("\(profile["file"] as? String ?? "")\t\(profile["syscalls"] as? Int ?? 0) syscalls\t\(profile["default_action"] as? String ?? "")\t\(runs)\t\(profile["recorded_at"] as? String ?? "")\t\(profile["image"] as? String ?? "")")
            }
        } catch {
            throw client.fail(error)
        }
    }
}

struct SeccompVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Run a container under a profile and report every syscall the profile refuses, with the process and its command.",
        discussion: """
        `vigil seccomp verify PROFILE -- IMAGE [COMMAND...]` runs `docker run -d --security-opt \
        seccomp=PROFILE [--docker-option ...] IMAGE COMMAND` and watches it from its first exec; \
        --container watches one already running under the profile. A refused syscall never \
        reaches the syscall entry hook (the kernel runs seccomp first) but reaches its exit: each \
        such exit with the profile's errno is reported as a line of JSON on standard output. \
        Stops at SIGINT, when the container exits, or after --duration; exits 1 when anything was \
        refused. The container it started is removed at the end.
        """
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The profile.") var profile: String
    @Option(name: .long, help: ArgumentHelp("A running container to watch instead of starting one.", valueName: "container"))
    var container: String?
    @Option(name: .customLong("docker-option"), parsing: .unconditionalSingleValue, help: ArgumentHelp("An option for docker run (repeatable), e.g. --docker-option=--network=NET.", valueName: "option"))
    var dockerOptions: [String] = []
    @Option(name: .long, help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds"))
    var duration: Double?
    @Argument(parsing: .postTerminator, help: "IMAGE [COMMAND...] to run under the profile (after --).")
    var workload: [String] = []

    func validate() throws {
        guard (container == nil) != workload.isEmpty else { throw ValidationError("say what to verify: --container or -- IMAGE [COMMAND...]") }
    }

    func run() throws {
        global.bootstrapLogging()
        StopSignal.install()
        let loaded = try SeccompProfile(contentsOf: profile)
        let errnoRet = Int32(loaded.defaultErrnoRet ?? SeccompProfile.eperm)
        let recorder = try SeccompRecorder(verify: true, errnoRet: errnoRet)
        let reader = try RingBufferReader(map: recorder.ring())
        let target: RecordingTarget
        var started: String?
        defer { if let started { DockerCLI.run(["rm", "-f", started]) } }
        if let container {
            target = .container(container)
        } else {
            // Watch docker's cgroups first: the container is recorded from its first exec, race-free.
            let parent = recorder.cgroupMount + "/docker"
            if !FileManager.default.fileExists(atPath: parent) { _ = mkdir(parent, 0o755) }
            let parentID = try SeccompRecorder.cgroupID(ofDirectory: parent)
            try recorder.watchChildren(of: parentID, verify: true)
            defer { try? recorder.unwatchChildren(of: parentID) }
            let path = URL(fileURLWithPath: profile).standardizedFileURL.path
            let result = DockerCLI.run(["run", "-d", "--security-opt", "seccomp=\(path)"] + dockerOptions + workload)
            guard result.status == 0 else { throw ValidationError("docker run failed (\(result.status)): \(result.errors)") }
            started = result.output.trimmingCharacters(in: .whitespacesAndNewlines)
            target = .container(started ?? "")
            Log.info("verifying container \(started?.prefix(12) ?? "") under \(profile)")
        }
        var decoder = EventDecoder(bootToEpochNs: BootClock.offsetToEpochNs())
        var denials = 0
        let session = RecordingSession(recorder: recorder, duration: duration, verify: true)
        let result = try session.record(target) { cgroups in
            try recorder.readDenials(reader) { record, compat, number in
                guard let event = decoder.decode(record), case .syscall(let call) = event.payload,
                      cgroups.contains(event.cgroupID) || started == nil else { return }
                denials += 1
                let name = compat ? "compat:\(number)" : call.descriptor.nameString
                let cmdline = (try? String(contentsOfFile: "/proc/\(event.pid)/cmdline", encoding: .utf8))?
                    .split(separator: "\0").joined(separator: " ") ?? ""
                let line: [String: Any] = [
                    "syscall": name, "errno": -call.result, "pid": event.pid, "tid": event.tid, "comm": event.comm.description,
                    "cmdline": cmdline, "cgroup_id": event.cgroupID, "args": (0..<6).map { call.args[$0] },
                ]
                if let data = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]) {
                    FileHandle.standardOutput.write(data + Data("\n".utf8))
                }
            }
        }
        // The discovered cgroups of other containers are not ours: the session ignored them.
        Log.info("verified \(String(format: "%.1f", result.seconds)) s: \(denials) refused syscall(s); \(try recorder.lost()) lost")
        if denials > 0 { throw ExitCode(1) }
    }
}

/// The docker CLI, for starting workloads under a profile (`docker run --security-opt` is the interface users apply profiles with).
enum DockerCLI {
    struct Result {
        var status: Int32
        var output: String
        var errors: String
    }

    @discardableResult
    static func run(_ arguments: [String]) -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["docker"] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return Result(status: -1, output: "", errors: "\(error)") }
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: output, as: UTF8.self), errors: String(decoding: errors, as: UTF8.self))
    }
}
