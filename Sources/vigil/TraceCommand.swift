import ArgumentParser
import Foundation
import Synchronization
import VigilActions
import VigilBPF
import VigilContainers
import VigilDaemon
import VigilEnrichment
import VigilEvents
import VigilRules
import VigilSensors

/// `vigil trace`: one-shot tracing without a daemon.
struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Trace process and file events live, container aware, without a daemon.",
        discussion: """
        Events: exec, fork, exit (set proc), open (set fs), conn and tcpdrop (set net: TCP \
        connections opened and closed with bytes and duration, TCP drops with the kernel's reason), \
        shell (set proc: the lines interactive bash shells read, from uprobes on readline, on the \
        host and in containers; only when asked for), and any syscall by name \
        (docs/syscalls.md; `--event all` for every one, `syscall:NAME` for a syscall named like an \
        event kind, e.g. syscall:exit), with its arguments decoded. Sets name syscall categories: \
        fs, net, proc, ipc, mem, signal, time, user, system, sleep, other. Syscalls beyond exec, \
        fork, exit and open are captured on their own hooks for a set of at most 128 (kprobes on \
        their functions where the kernel has kprobes, else their tracepoints), on the generic \
        sys_enter/sys_exit hook for a larger set and `all` (every syscall on the host passes \
        through it; those not wanted leave in a few instructions). Filters on comm, pid, uid, \
        container and "containers only" run in the kernel; the summary printed on Ctrl-C or \
        SIGTERM says how many events were seen, filtered in the kernel and lost. With a command \
        after --, only it and its children are traced until it exits, and vigil exits with its \
        status. Container names, \
        images and labels come from Docker, then, for the containers Docker does not know (a \
        kubelet's CRI containers, with their pod's k8s.* fields), from containerd at \
        --containerd-socket.
        """
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: ArgumentHelp("Events to show, comma separated: exec, fork, exit, open, conn, tcpdrop, shell, any syscall by name (syscall:NAME when it is also a kind's name), or all (every syscall).", valueName: "events"))
    var event: [String] = []
    @Option(name: .long, help: ArgumentHelp("Sets to show, comma separated: proc (exec, fork, exit, shell and the proc syscalls), fs (open and the fs syscalls), net (conn, tcpdrop and the net syscalls), ipc, mem, signal, time, user, system, sleep, other.", valueName: "sets"))
    var set: [String] = []
    @Option(name: .long, help: ArgumentHelp("Events (kinds or syscalls) not to show.", valueName: "events"))
    var excludeEvent: [String] = []
    @Option(name: .long, help: ArgumentHelp("Syscall sets not to show.", valueName: "sets"))
    var excludeSet: [String] = []
    @Option(name: .long, help: ArgumentHelp("Bytes kept of a syscall's buffer argument (read/write data).", valueName: "bytes"))
    var snaplen: Int = 80
    @Option(name: .long, help: ArgumentHelp("Bytes kept of a syscall's string or path argument (a cut value ends in ... and says \"truncated\":true in JSON).", valueName: "bytes"))
    var stringBytes: Int = 4096
    @OptionGroup var tasks: TaskFilterOptions
    @OptionGroup var sources: MetadataSourceOptions
    @Option(name: [.customShort("o"), .customLong("format")], help: "Output format: table or json (one object per line).")
    var format: OutputFormat = .table
    @Option(name: .long, help: ArgumentHelp("Write events to FILE instead of standard output.", valueName: "file"))
    var output: String?
    @Option(name: .long, help: ArgumentHelp("Stop after this many seconds.", valueName: "seconds"))
    var duration: Double?
    @Option(name: .customLong("ring-mib"), help: ArgumentHelp("Ring buffer size in MiB (a power of two).", valueName: "mib"))
    var ringMiB: Int = 8
    @Option(name: .long, help: ArgumentHelp("Also load this program bundle (a directory with bundle.yaml, or the manifest; repeatable) and show its events, or alert on them with --alerts (docs/bundles.md). Without --event or --set, only the bundles' events are shown.", valueName: "bundle"))
    var program: [String] = []
    @Flag(name: .long, help: "Print alerts of the rules instead of events (the embedded default rules, plus --rules).")
    var alerts = false
    @Option(name: .long, help: ArgumentHelp("Rule files (.yaml or bpfd .toml) to add to the defaults with --alerts (repeatable).", valueName: "file"))
    var rules: [String] = []
    @Flag(name: .long, help: "With --alerts: do not load the embedded default rules.")
    var noDefaultRules = false
    @Option(name: .long, help: ArgumentHelp("With --alerts -o json: the fields of the alerts' output_fields: every field of the event (all), or, as Falco, those the rule's output names (output).", valueName: "fields"))
    var outputFields: OutputFields = .all
    @Option(name: .long, help: ArgumentHelp("Debugging and benchmarks: run only this variant of the file sensor's open hook (fexit or tracepoint; default: the first that works).", valueName: "variant", visibility: .hidden))
    var fileHook: String?

    @Option(name: .long, help: ArgumentHelp("Debugging and benchmarks: run only this variant of the syscalls sensor's hook (kprobe.multi or kprobe: kprobes on the syscalls' own functions, tracepoint: per-syscall tracepoints, tp_btf or raw_tp: the generic hook; default: the first per-syscall variant that works for a small set, the first generic variant that works otherwise).", valueName: "variant", visibility: .hidden))
    var syscallHook: String?

    @Flag(name: .long, help: "Per-syscall counts, errors and latency (like strace -c) instead of events: refreshed every second on a terminal, printed once at the end otherwise. Every syscall unless --event or --set says which.")
    var summary = false
    @Argument(parsing: .postTerminator, help: ArgumentHelp("Run this command (after --) and trace it and its children alone until it exits; vigil exits with its status.", valueName: "command"))
    var command: [String] = []

    enum OutputFormat: String, ExpressibleByArgument { case table, json }

    @Option(name: .long, help: ArgumentHelp("With -o json: a syscall's arguments as the args array (name, type, value), as Falco's evt.args text (string), or both.", valueName: "form"))
    var jsonArgs: JSONArgumentsOption = .array

    @Option(name: .long, help: ArgumentHelp("With -o json: each event's object has only these fields, in this order (comma separated, repeatable; FIELD[ARG] for a field with an argument; null where the event has none), e.g. evt.time,proc.pid,proc.name,evt.type,evt.args,evt.res. Default: every field.", valueName: "fields"))
    var fields: [String] = []

    enum JSONArgumentsOption: String, ExpressibleByArgument {
        case array, string, both
        var style: JSONArguments { self == .array ? .array : self == .string ? .string : .both }
    }

    func validate() throws {
        _ = try selection()
        try validateSummary()
        if !command.isEmpty && !tasks.pid.isEmpty {
            throw ValidationError("--pid and a command (after --) do not go together: the command and its children are the pids traced")
        }
        guard snaplen >= 0, snaplen <= SyscallCapture.maxBufferBytes else {
            throw ValidationError("--snaplen must be 0 ... \(SyscallCapture.maxBufferBytes)")
        }
        guard stringBytes >= 1, stringBytes <= SyscallCapture.maxStringBytes else {
            throw ValidationError("--string-bytes must be 1 ... \(SyscallCapture.maxStringBytes)")
        }
        guard ringMiB > 0, ringMiB & (ringMiB - 1) == 0 else { throw ValidationError("--ring-mib must be a power of two") }
        if !fields.isEmpty {
            guard format == .json, !alerts, !summary else {
                throw ValidationError("--fields chooses the fields of events written as JSON: it needs -o json, and not --alerts (which has --output-fields) or --summary")
            }
        }
        if let syscallHook, !Sensors.syscallVariantNames.contains(syscallHook) {
            throw ValidationError("unknown --syscall-hook '\(syscallHook)': use \(Sensors.syscallVariantNames.joined(separator: " or "))")
        }
        if let fileHook, !Sensor.file.hooks.contains(where: { $0.variants.contains { $0.name == fileHook } }) {
            throw ValidationError("unknown --file-hook '\(fileHook)': use \(Sensor.file.hooks.flatMap { $0.variants.map(\.name) }.joined(separator: " or "))")
        }
    }

    private func kinds(_ list: [String]) -> [String] {
        list.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
    }

    /// The fields --fields names, as a template whose output fields they are; nil when it names
    /// none. Asked once the bundles are loaded (their prog.NAME.FIELD fields count).
    func chosenFields() throws -> OutputTemplate? {
        let names = kinds(fields)
        guard !names.isEmpty else { return nil }
        let location = SourceLocation(file: "--fields", line: 1, column: 1)
        for name in names {
            let one = OutputTemplate("%" + name, at: location)
            if let unknown = one.unknownFields.first {
                throw ValidationError("--fields: no field '\(unknown.name)'\(unknown.suggestion.map { " (did you mean '\($0)'?)" } ?? ""); `vigil fields` lists them")
            }
            guard one.outputFieldKeys == [name] else { throw ValidationError("--fields: '\(name)' is not a field name (FIELD or FIELD[ARG])") }
        }
        return OutputTemplate(names.map { "%" + $0 }.joined(separator: " "), at: location)
    }

    /// The kinds and syscalls to show: --event and --set, or the four kinds; minus --exclude-*.
    func selection() throws -> TraceSelection {
        try TraceSelection(events: summary && event.isEmpty && set.isEmpty ? ["all"] : kinds(event), sets: kinds(set), excludeEvents: kinds(excludeEvent), excludeSets: kinds(excludeSet))
    }

    func run() throws {
        let setup = try TracingSetup(global: global, tasks: tasks, sources: sources)
        defer { setup.watcher.stop() }
        let metadata = setup.metadata
        var filter = setup.filter
        filter.syscallBounds = SyscallBounds(bufferBytes: snaplen, stringBytes: stringBytes)

        // Bundles first: their fields (prog.NAME.FIELD) must be known when the rules compile.
        let bundles = try program.map { path in
            do {
                let bundle = try ProgramBundle(try BundleSource(path: path))
                Log.info("bundle \(bundle.name): " + bundle.reports.map { "\($0.hook): \($0.active)" }.joined(separator: ", "))
                return bundle
            } catch {
                FileHandle.standardError.write(Data("vigil trace: cannot load bundle \(path): \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
        defer { for bundle in bundles { bundle.unload() } }
        let fieldTemplate = try chosenFields()
        let selected = try selection()
        var kinds = bundles.isEmpty || !event.isEmpty || !set.isEmpty ? selected.kinds : []
        var syscallNumbers = selected.syscalls
        var ruleSet: RuleSet?
        if alerts {
            do {
                ruleSet = try RuleFiles.ruleSet(paths: rules, defaults: !noDefaultRules)
            } catch {
                FileHandle.standardError.write(Data("\(error)\n".utf8))
                throw ExitCode(1)
            }
            // What the rules let the kernel do: only the needed kinds and syscalls, their common filters.
            if let pushdown = ruleSet?.pushdown {
                if event.isEmpty && set.isEmpty {
                    // No selection: the rules choose the syscalls (none: the syscalls sensor stays out).
                    syscallNumbers = pushdown.syscallNumbers
                    if !syscallNumbers.isEmpty { kinds.insert(.syscall) }
                    // and the connection kinds their rules match (the conn sensor loads for them).
                    kinds.formUnion(pushdown.kinds.intersection(KindSet(EventKindDescriptor.kinds(inCategory: "net"))))
                } else {
                    syscallNumbers.formIntersection(pushdown.syscallNumbers)
                }
                kinds.formIntersection(pushdown.kinds)
                filter.add(pushdown)
                Log.info("rules: \(ruleSet?.rules.count ?? 0) enabled; " + pushdown.summary.joined(separator: "; "))
                for warning in ruleSet?.warnings ?? [] { Log.info("rules: \(warning)") }
            }
        }
        // A command's execs and forks are read to follow it, shown only when asked for.
        let hidden = command.isEmpty ? KindSet() : ProcessTree.followedKinds.subtracting(kinds)
        if !command.isEmpty { // a command: its tree, followed in the kernel (the host's other processes are
            kinds.formUnion(ProcessTree.followedKinds) // dropped there, not after a full ring) and by `TracedCommand.tree`
            filter.followChildren = true
        }
        if syscallNumbers.isEmpty { kinds.remove(.syscall) }
        // DNS messages are parsed (dns.*, fd.sip.name) when a network syscall is traced or a rule
        // reads them, payloads (net.stratum.*) when a rule reads them; the kernel keeps only the
        // calls that carry them unless the user asked for those syscalls (--event, --set).
        let asked = alerts && event.isEmpty && set.isEmpty ? [] : syscallNumbers
        let syscalls = kinds.contains(.syscall)
            ? SyscallCapture(numbers: syscallNumbers, bounds: filter.syscallBounds, asked: asked, pushdown: ruleSet?.pushdown) : nil
        filter.syscalls = syscalls
        // --syscall-hook forces one variant (the per-syscall one even for a large set); by default
        // the set's size chooses.
        var hooks: [String: [Hook]] = [:]
        hooks[Sensor.syscalls.name] = syscalls.flatMap { capture in syscallHook.map { Sensors.syscallHooks(for: capture, forcing: $0) } }
        // --file-hook keeps one variant of the file sensor's hook.
        hooks[Sensor.file.name] = fileHook.map { name in Sensor.file.hooks.map { Hook($0.name, variants: $0.variants.filter { $0.name == name }) } }
        // The kinds choose the sensors (the file sensor for opens, conn for its kinds); the filter's
        // syscalls the syscalls sensor.
        let sensors = try Sensors(kinds: kinds, filter: filter, ringBytes: ringMiB << 20, hooks: hooks)
        let stream = try EventStream(sensors: sensors, enricher: Enricher(metadata: metadata), kinds: kinds)
        stream.enricher.processes.readsEnvironment = ruleSet?.readsProcessEnvironment ?? false
        for (sensor, report) in sensors.reports {
            let others = report.attempts.filter { $0.outcome == .skipped || $0.outcome == .failed }
                .map { "\($0.variant): \($0.reason ?? "")" }
            Log.info("\(sensor)/\(report.hook): \(report.active)\(others.isEmpty ? "" : " (not: " + others.joined(separator: "; ") + ")")")
        }
        if !sensors.syscallsNotCaptured.isEmpty {
            Log.info("syscalls: not implemented by this kernel (no tracepoint or function), not captured: \(sensors.syscallsNotCaptured.joined(separator: ","))")
        }
        let others = kinds.subtracting(hidden).subtracting([.syscall])
        Log.info("tracing \(others.map(\.rawValue).sorted().joined(separator: ","))"
            + (kinds.contains(.syscall) ? (others.isEmpty ? "" : " and ") + "\(syscallNumbers.count) syscalls" : "")
            + (command.isEmpty ? "" : " of \(command[0]) and its children")
            + "; Ctrl-C or SIGTERM stops and prints a summary")
        if summary { return try runSummary(sensors: sensors, stream: stream) }

        let out = try EventOutput(path: output, format: format == .json ? .json : .table, arguments: jsonArgs.style)
        if format == .table && ruleSet == nil {
            try out.write(EventFormat.tableHeader + "\n")
            try out.flush()
        }
        var alertCount = 0
        let deadline = duration.map { DispatchTime.now().uptimeNanoseconds + UInt64($0 * 1e9) }
        let json = format == .json
        let alertFields = outputFields // read once: the option's getter is generic, not free per alert
        var traced = command.isEmpty ? nil : try TracedCommand(command)
        let write = { (event: Event) throws in
            if traced?.tree.contains(event) == false || hidden.contains(event.kind) { return }
            guard let ruleSet else {
                if let fieldTemplate {
                    try out.writeLine { line, _ in fieldTemplate.appendFieldsJSON(event, to: &line) }
                } else {
                    try out.write(event)
                }
                return
            }
            try ruleSet.forEachMatch(event) { rule in
                alertCount += 1
                // A let: the closure below reads it in place (a var would be copied for the call).
                let alert = Alert(rule: rule, event: event, outputFields: alertFields)
                if json {
                    try out.writeLine { alert.appendJSON(to: &$0, memo: $1) }
                } else {
                    try out.write(alert.text + "\n")
                }
            }
        }
        // The bundles' rings are read between the shared ring's batches (at least every 10 ms),
        // their events enriched by the same process table and written the same way.
        var bundleFailure: Error?
        func readBundles() {
            do {
                for bundle in bundles { try bundle.poll(enricher: stream.enricher, write) }
                if !bundles.isEmpty { try out.flush() }
            } catch {
                bundleFailure = error
            }
        }
        try stream.run(shouldStop: {
            readBundles()
            return bundleFailure != nil || StopSignal.requested || traced?.exited() == true
                || deadline.map { DispatchTime.now().uptimeNanoseconds >= $0 } ?? false
        }, batchDone: out.flush, write)
        sensors.detach()
        for bundle in bundles { bundle.loaded?.detach() }
        try stream.drain(batchDone: out.flush, write)
        readBundles()
        if let bundleFailure { throw bundleFailure }
        for bundle in bundles {
            FileHandle.standardError.write(Data("vigil trace: bundle \(bundle.name): \(bundle.counters.events) events, \(bundle.counters.drops) dropped, \(bundle.counters.undecodable) undecodable\n".utf8))
        }
        try out.flush()
        let counters = try sensors.counters().values
        let stats = stream.statistics
        let filtered = counters.map(\.filtered).reduce(0, +), lost = counters.map(\.lost).reduce(0, +)
        let killed = counters.map(\.killed).reduce(0, +), unfollowed = counters.map(\.unfollowed).reduce(0, +)
        FileHandle.standardError.write(Data("""
        vigil trace: \(ruleSet == nil ? "" : "\(alertCount) alerts from ")\(stats.delivered) events \(ruleSet == nil ? "shown" : "checked"), \(stats.records) seen, \(filtered) filtered in kernel, \(stats.filtered) filtered after enrichment, \
        \(lost) lost, \(stats.suppressed) of other kinds not shown, \(stats.undecodable) undecodable\(killed > 0 ? ", \(killed) killed in kernel" : "")\
        \(unfollowed > 0 ? ", \(unfollowed) forks not followed (pids map full)" : "")

        """.utf8))
        try traced?.exitWithItsStatus()
    }
}

/// SIGINT/SIGTERM set a flag the event loop checks.
enum StopSignal {
    private static let flag = Atomic<Bool>(false)
    static var requested: Bool { flag.load(ordering: .relaxed) }

    static func install() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { _ in StopSignal.flag.store(true, ordering: .relaxed) }
        }
    }
}

/// Where container metadata comes from besides Docker's socket.
struct MetadataSourceOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("containerd's gRPC socket, asked for the containers Docker does not know (a kubelet's CRI containers: names, images, labels, k8s.* fields).", valueName: "path"))
    var containerdSocket = ContainerdClient.defaultSocketPath
    @Option(name: .long, help: ArgumentHelp("A CRI runtime's gRPC socket (CRI-O's by default), asked for the containers neither Docker nor containerd knows (names, images, labels, k8s.* fields).", valueName: "path"))
    var criSocket = CRIClient.defaultSocketPath
}

/// Finds containers by id, id prefix or name, and their cgroup v2 directories.
/// The in-kernel task filters `vigil trace` and `vigil flows` share.
struct TaskFilterOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Only these command names (comma separated, repeatable).", valueName: "names"))
    var comm: [String] = []
    @Option(name: .long, help: ArgumentHelp("Not these command names.", valueName: "names"))
    var excludeComm: [String] = []
    @Option(name: .long, help: "Only this container (id, id prefix or name; repeatable).")
    var container: [String] = []
    @Flag(name: .long, help: "Only processes in containers (not in the host's pid namespace).")
    var containersOnly = false
    @Option(name: .long, help: "Only these process ids (repeatable).")
    var pid: [UInt32] = []
    @Option(name: .long, help: "Only these user ids (repeatable).")
    var uid: [UInt32] = []

    private func names(_ list: [String]) -> Set<String> {
        Set(list.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty })
    }

    /// Sets the filter's task sets; containers are looked up by id, id prefix or name.
    func apply(to filter: inout KernelFilter, docker: DockerClient) throws {
        filter.containersOnly = containersOnly
        filter.includeComms = names(comm)
        filter.excludeComms = names(excludeComm)
        filter.pids = Set(pid)
        filter.uids = Set(uid)
        for name in container { filter.cgroupIDs.formUnion(try ContainerLookup.cgroupIDs(of: name, docker: docker)) }
    }
}

/// What `vigil trace` and `vigil flows` set up before their sensors load: logging, the stop signal
/// (installed first: a Ctrl-C while the sensors load still ends in the summary), container
/// metadata from Docker following its events (names of containers started while tracing are
/// refreshed on start; stop `watcher` when done), then from containerd (`--containerd-socket`)
/// and a CRI runtime (`--cri-socket`, CRI-O's) for the containers Docker does not know (a
/// kubelet's), and the task filters.
struct TracingSetup {
    let docker = DockerClient()
    let metadata: ContainerMetadataCache
    let watcher: DockerEventWatcher
    var filter = KernelFilter()

    init(global: GlobalOptions, tasks: TaskFilterOptions, sources: MetadataSourceOptions) throws {
        global.bootstrapLogging()
        StopSignal.install()
        let containerd = ContainerdClient(socketPath: sources.containerdSocket) { Log.info($0) }
        let cri = CRIClient(socketPath: sources.criSocket) { Log.info($0) }
        metadata = ContainerMetadataCache(source: ChainedMetadataSource([docker, containerd, cri])) { Log.info($0) }
        watcher = DockerEventWatcher(client: docker)
        metadata.follow(watcher)
        do {
            try tasks.apply(to: &filter, docker: docker)
        } catch {
            watcher.stop()
            throw error
        }
    }
}

enum ContainerLookup {

    static func cgroupIDs(of nameOrID: String, docker: DockerClient) throws -> Set<UInt64> {
        let all = (try? docker.containers()) ?? []
        let wanted = nameOrID.hasPrefix("/") ? String(nameOrID.dropFirst()) : nameOrID
        guard let match = all.first(where: { $0.id.hasPrefix(wanted) || $0.names.contains(wanted) || $0.names.contains("/" + wanted) }) else {
            throw ValidationError("no running container '\(nameOrID)' (docker at \(docker.socketPath))")
        }
        let ids = CgroupResolver().cgroupIDs(ofContainer: match.id)
        guard !ids.isEmpty else { throw ValidationError("container \(match.id.prefix(12)) has no cgroup v2 directory") }
        return ids
    }
}

/// Messages for the user on standard error.
enum Log {
    static func info(_ message: String) {
        FileHandle.standardError.write(Data("vigil: \(message)\n".utf8))
    }
}

extension OutputFields: ExpressibleByArgument {}
