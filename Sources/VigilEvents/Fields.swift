import Glibc

/// The type of a field's values.
public enum FieldType: String, Sendable, Codable {
    case string, uint, int, bool
    /// A list of strings.
    case strings
    /// An IP address as text (Falco's ipaddr): `=`, `!=` and `in` take addresses or CIDR
    /// networks (`fd.sip in ("10.0.0.0/8")`). A value that is a list matches when any of it does.
    case ipaddr
    /// An IP network (Falco's ipnet: fd.net, fd.snet, ...): compared with networks, an address
    /// matching when it lies in one.
    case ipnet
}

/// One value of a field.
public enum FieldValue: Sendable, Equatable {
    case string(ByteString)
    case uint(UInt64)
    case int(Int64)
    case bool(Bool)
    case strings([ByteString])
    /// Several numbers, a value matching when one of them does (fd.port: either end's port).
    case uints([UInt64])
}

/// What a field's value depends on, so that output can render it once and reuse it.
enum FieldScope: Sendable {
    /// Anything of the event.
    case event
    /// Only what stays the same across the events of a process while its process-table context
    /// does: `event.process`, `event.container.isContainer`, and the header's pid, ppid, comm,
    /// uid, gid, cgroup id and namespaces (`ProcessKey`). Not the thread id, CPU, time or payload.
    case process
    /// Only `event.container`.
    case container
    /// Only an open's payload and `event.pid` (`OpenKey`): the same for every open of one file
    /// with the same flags and result by one process. On a syscall event: only `event.fd`.
    case open
}

/// What an event must have for a field to have a value at all: a field that requires a socket
/// or a DNS message has none on an event without one, so JSON skips a run of them with one check.
enum FieldRequirement: Sendable {
    /// Nothing said: the field is asked.
    case nothing
    /// A socket (`NetworkFields.hasSocket`): the payload's (connections, drops) or the fd's.
    case socket
    /// A DNS message (`Event.dns`).
    case dns

    /// Whether `event` has what the requirement names.
    @inline(__always)
    func isMet(by event: Event) -> Bool {
        switch self {
        case .nothing: true
        case .socket: NetworkFields.hasSocket(event)
        case .dns: if case .none = event.dns { false } else { true } // `!= nil` copied the message
        }
    }
}

/// Appends a field's value as JSON and returns true, or returns false (having written nothing)
/// when the event has no value for it.
typealias JSONValueWriter = @Sendable (Event, inout ByteBuffer) -> Bool

/// Appends the value of a field of syscall events as JSON from the syscall's payload (borrowed
/// where the event holds it), and returns true, or returns false having written nothing.
typealias SyscallJSONWriter = @Sendable (borrowing Payload.Syscall, inout ByteBuffer) -> Bool

/// A named field of events (Falco's naming where Falco has the field): its type, which event
/// kinds carry it, and how to read it from an enriched event.
///
/// A class: every value is made once (the catalogue), and a reference is one retain where a
/// struct's copy retained each of its closures and strings (an output field per alert or event).
public final class FieldDefinition: Sendable {
    /// The name, e.g. `proc.name`.
    public let name: String
    /// The value type.
    public let type: FieldType
    /// One line saying what it is.
    public let description: String
    /// The kinds that carry it; empty means every kind.
    public let kinds: KindSet
    /// Whether it takes an argument in brackets (`proc.aname[2]`, `container.label[app]`).
    public let takesArgument: Bool
    /// Reads the value, or nil when the event has none. The argument is the bracket text.
    public let extract: @Sendable (Event, String?) -> FieldValue?
    /// What the value depends on (JSONOutputTests checks the claim).
    let scope: FieldScope
    /// Writes the value as JSON without building a `FieldValue` (the same bytes as
    /// `ByteBuffer.appendJSON(extract(event, nil))`; JSONOutputTests checks it): for fields whose
    /// value would be made per event (joined arguments, flags, time, names from Strings). Nil:
    /// JSON is written from `extract`.
    let json: JSONValueWriter?
    /// On a syscall event: writes the value from the payload instead of `json` or `extract` (the
    /// same bytes; JSONOutputTests checks it). Nil: `json` or `extract` on syscall events too.
    let syscallJSON: SyscallJSONWriter?
    /// What an event needs for the field to have a value (JSONOutputTests checks the claim).
    let requires: FieldRequirement

    init(_ name: String, _ type: FieldType, _ kinds: KindSet, argument: Bool = false, scope: FieldScope = .event,
         requires: FieldRequirement = .nothing, _ description: String, json: JSONValueWriter? = nil,
         syscallJSON: SyscallJSONWriter? = nil, _ extract: @escaping @Sendable (Event, String?) -> FieldValue?) {
        self.name = name; self.type = type; self.description = description
        self.kinds = kinds; self.takesArgument = argument; self.extract = extract; self.scope = scope
        self.json = json
        self.syscallJSON = syscallJSON
        self.requires = requires
    }

    /// The same field, with a value only on events that have what `requirement` names.
    func requiring(_ requirement: FieldRequirement) -> FieldDefinition {
        FieldDefinition(name, type, kinds, argument: takesArgument, scope: scope, requires: requirement, description, json: json,
                        syscallJSON: syscallJSON, extract)
    }

    convenience init(_ name: String, _ type: FieldType, argument: Bool = false, scope: FieldScope = .event, _ description: String,
                     json: JSONValueWriter? = nil, syscallJSON: SyscallJSONWriter? = nil, _ extract: @escaping @Sendable (Event, String?) -> FieldValue?) {
        self.init(name, type, [], argument: argument, scope: scope, description, json: json, syscallJSON: syscallJSON, extract)
    }

    /// Appends the value as JSON and returns true, or returns false (writing nothing) when the
    /// event has none. `argument` is the bracket text of fields that take one (written from
    /// `extract`; the field's own writers have none).
    public func appendJSON(_ event: Event, argument: String? = nil, to out: inout ByteBuffer) -> Bool {
        guard argument == nil, syscallJSON != nil else { return appendJSON(event, syscall: nil, argument: argument, to: &out) }
        return event.withSyscallPayload { appendJSON(event, syscall: $0, argument: nil, to: &out) }
    }

    /// `appendJSON(_:argument:to:)` with a syscall event's payload taken out of the enum by the
    /// caller (once per event, for all its fields; nil for other kinds).
    public func appendJSON(_ event: Event, syscall: UnsafePointer<Payload.Syscall>?, argument: String?, to out: inout ByteBuffer) -> Bool {
        if argument == nil {
            if let syscallJSON, let syscall { return syscallJSON(syscall.pointee, &out) }
            if let json { return json(event, &out) }
        }
        guard let value = extract(event, argument) else { return false }
        out.appendJSON(value)
        return true
    }

    /// Whether events of `kind` carry this field.
    public func applies(to kind: EventKind) -> Bool { kinds.isEmpty || kinds.contains(kind) }
}

/// The catalogue of every field, in documentation order. docs/fields.md is generated from it.
public enum Fields {
    /// Every field.
    public static let all: [FieldDefinition] = eventFields + processFields + lineageFields + userFields + fileFields + containerFields
        + SyscallFields.fields + NetworkFields.fields + ConnectionFields.fields + FIMFields.fields + ShellFields.fields + ProgramFields.fields

    private static let byName: [String: FieldDefinition] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    /// The field named `name` (without any bracket argument).
    public static func named(_ name: String) -> FieldDefinition? { byName[name] ?? SyscallFields.dotted(name) ?? ProgramFields.dotted(name) }

    /// The N of an ancestor field's `[N]` (0 the process, 1 its parent, ...); nil for anything
    /// else, which prints `<NA>` (conditions refuse it at load, outputs do not check).
    public static func ancestorNumber(_ argument: String?) -> Int? {
        argument.flatMap { UInt($0) }.flatMap { Int(exactly: $0) }
    }

    /// Every field name, for suggestions.
    public static let names: [String] = all.map(\.name)

    static func str(_ s: String) -> FieldValue { .string(ByteString(s)) }

    /// evt.time's JSON: the ISO 8601 text of `epochNs`, quoted; through `second` when the
    /// writer keeps the text of the last second (`JSONMemo`).
    @inline(__always)
    static func appendTime(_ epochNs: UInt64, second: UnsafeMutablePointer<Timestamp.SecondText>? = nil, to out: inout ByteBuffer) {
        out.append(0x22)
        if let second { Timestamp.appendISO8601(epochNs, to: &out, cache: second) } else { Timestamp.appendISO8601(epochNs, to: &out) }
        out.append(0x22)
    }

    static let eventFields: [FieldDefinition] = [
        .init("evt.type", .string, "The event type, Falco's names: execve, clone, procexit, open, openat, openat2; a syscall event's syscall name; Vigil's own for connections (tcp_connect, tcp_accept, tcp_close), drops (tcp_drop), file integrity changes (fim_change), lines typed into interactive bash shells (bash_readline), and a program bundle's name for its events (docs/bundles.md).", json: { e, out in
            if let name = Names.programName(e) { out.appendJSON(name); return true }
            out.appendJSON(Names.eventTypes[Names.eventType(e)])
            return true
        }, syscallJSON: { s, out in
            SyscallJSON.type(s, .shared, &out)
            return true
        }) { e, _ in
            if case .syscall(let s) = e.payload { return .string(SyscallFields.nameBytes[s.index]) }
            if let name = Names.programName(e) { return str(name) }
            return .string(Names.eventTypeBytes[Names.eventType(e)])
        },
        .init("evt.kind", .string, "Vigil's event kind: exec, fork, exit, open, syscall (any syscall: docs/syscalls.md), conn (a TCP connection opened or closed), tcpdrop (a TCP packet the kernel dropped), fim (a watched file changed: docs/fim.md), shell (a line an interactive bash read), program (a record of a user-supplied program bundle: docs/bundles.md).", json: { e, out in
            Names.kindJSON.append(e.kind.index, to: &out)
            return true
        }) { e, _ in .string(Names.kindBytes[e.kind.index]) },
        .init("evt.time", .string, "Time of the event, ISO 8601 UTC with nanoseconds.", json: { e, out in
            appendTime(e.timeNs, to: &out)
            return true
        }) { e, _ in str(Timestamp.iso8601(e.timeNs)) },
        .init("evt.rawtime", .uint, "Time of the event, nanoseconds since the Unix epoch.") { e, _ in .uint(e.timeNs) },
        .init("evt.res", .string, [.open, .syscall], "SUCCESS, or the error name (ENOENT, EACCES, ...) when the call failed.", json: { e, out in
            guard case .open(let o) = e.payload else { return false }
            if o.result >= 0 { out.appendJSON(Names.success) } else { out.appendJSON(ErrnoNames.name(result: o.result)) }
            return true
        }, syscallJSON: { s, out in
            SyscallJSON.res(s, &out)
            return true
        }) { e, _ in
            if case .syscall(let s) = e.payload { return .string(s.failedCall ? ErrnoNames.bytes(result: s.result) : Names.successBytes) }
            guard case .open(let o) = e.payload else { return nil }
            return .string(o.result >= 0 ? Names.successBytes : ErrnoNames.bytes(result: o.result))
        },
        .init("evt.rawres", .int, [.open, .fork, .syscall], "The raw result: the fd or -errno of an open, the child pid of a fork, a syscall's return value.", syscallJSON: { s, out in
            SyscallJSON.rawres(s, &out)
            return true
        }) { e, _ in
            switch e.payload {
            case .open(let o): .int(o.result)
            case .syscall(let s): .int(s.result)
            case .fork(let f): .int(Int64(f.childPID))
            default: nil
            }
        },
        .init("evt.cpu", .uint, "The CPU the event happened on.") { e, _ in .uint(UInt64(e.cpu)) },
        .init("evt.child_pid", .uint, [.fork], "The new process's pid (the caller's pid for a thread).") { e, _ in
            guard case .fork(let f) = e.payload else { return nil }
            return .uint(UInt64(f.childPID))
        },
        .init("evt.child_tid", .uint, [.fork], "The new task's thread id.") { e, _ in
            guard case .fork(let f) = e.payload else { return nil }
            return .uint(UInt64(f.childTID))
        },
        .init("evt.is_thread", .bool, [.fork], "Whether a thread (CLONE_THREAD) rather than a process was created.") { e, _ in
            guard case .fork(let f) = e.payload else { return nil }
            return .bool(f.isThread)
        },
    ]

    static let processFields: [FieldDefinition] = [
        .init("proc.pid", .uint, "Process id (thread group id).") { e, _ in .uint(UInt64(e.pid)) },
        .init("thread.tid", .uint, "Thread id.") { e, _ in .uint(UInt64(e.tid)) },
        .init("proc.ppid", .uint, scope: .process, "Parent's process id.") { e, _ in .uint(UInt64(e.ppid)) },
        .init("proc.name", .string, scope: .process, "The command name (comm, at most 15 bytes).") { e, _ in .string(e.comm) },
        .init("proc.pname", .string, scope: .process, "The parent's command name.") { e, _ in e.process.ancestorNames.first.map { .string($0) } },
        .init("proc.aname", .string, argument: true, "Name of ancestor N: proc.aname[0] is the process, [1] its parent, [2] the grandparent ...") { e, arg in
            guard let n = ancestorNumber(arg) else { return nil }
            if n == 0 { return .string(e.comm) }
            return n - 1 < e.process.ancestorNames.count ? .string(e.process.ancestorNames[n - 1]) : nil
        },
        .init("proc.anames", .strings, scope: .process, "Names of every known ancestor, parent first.") { e, _ in .strings(e.process.ancestorNames) },
        .init("proc.apid", .uint, argument: true, "Pid of ancestor N (as proc.aname).") { e, arg in
            guard let n = ancestorNumber(arg) else { return nil }
            if n == 0 { return .uint(UInt64(e.pid)) }
            return n - 1 < e.process.ancestorPIDs.count ? .uint(UInt64(e.process.ancestorPIDs[n - 1])) : nil
        },
        .init("proc.exepath", .string, scope: .process, "The executable's absolute path.") { e, _ in e.process.executablePath.map { .string($0) } },
        .init("proc.is_exe_upper_layer", .bool, scope: .process, "Whether the executable is in the container's writable layer (written or changed in the container since it started, not from its image); false on the host and when the runtime did not name the layer.") { e, _ in
            .bool(PathParts.isInUpperLayer(e.process.executablePath, of: e.container))
        },
        .init("proc.exe", .string, scope: .process, "The first command-line argument (argv[0]).") { e, _ in e.process.arguments?.first.map { .string($0) } },
        .init("proc.args", .string, scope: .process, "The arguments after argv[0], joined by spaces.", json: { e, out in
            guard let args = e.process.arguments else { return false }
            appendJoinedJSON(nil, args.dropFirst(), to: &out)
            return true
        }) { e, _ in
            e.process.arguments.map { .string(ByteString(Array($0.dropFirst().map(\.bytes).joined(separator: [0x20])))) }
        },
        .init("proc.cmdline", .string, scope: .process, "proc.name followed by the arguments after argv[0], joined by spaces.", json: { e, out in
            guard let args = e.process.arguments else { return false }
            appendJoinedJSON(e.comm, args.dropFirst(), to: &out)
            return true
        }) { e, _ in
            guard let args = e.process.arguments else { return nil }
            return .string(ByteString(Array(([e.comm] + args.dropFirst()).map(\.bytes).joined(separator: [0x20]))))
        },
        .init("proc.pcmdline", .string, scope: .process, "The parent's command line (its name and arguments after argv[0]).", json: { e, out in
            guard let args = e.process.parentArguments, let name = e.process.ancestorNames.first else { return false }
            appendJoinedJSON(name, args.dropFirst(), to: &out)
            return true
        }) { e, _ in
            guard let args = e.process.parentArguments, let name = e.process.ancestorNames.first else { return nil }
            return .string(ByteString(Array(([name] + args.dropFirst()).map(\.bytes).joined(separator: [0x20]))))
        },
        .init("proc.argv", .strings, scope: .process, "argv as a list, argv[0] included (exact bytes).") { e, _ in e.process.arguments.map { .strings($0) } },
        .init("proc.args_truncated", .bool, [.exec], "Whether argv was longer than 4096 bytes and was cut.") { e, _ in
            guard case .exec(let x) = e.payload else { return nil }
            return .bool(x.argumentsTruncated)
        },
        .init("proc.cwd", .string, scope: .process, "The working directory: at the last exec, then as chdir and fchdir set it (captured whenever a syscall with a path argument is).") { e, _ in e.process.cwd.map { .string($0) } },
        .init("proc.tty", .uint, scope: .process, "The controlling terminal as a number (tty_nr), 0 when none.") { e, _ in e.process.ttyNumber.map { .uint(UInt64($0)) } },
        .init("proc.ttyname", .string, [.exec, .shell], "The controlling terminal's name, e.g. pts0; empty when none.", json: { e, out in
            switch e.payload {
            case .exec(let x): out.appendJSON(x.tty)
            case .shell(let x): out.appendJSON(x.tty)
            default: return false
            }
            return true
        }) { e, _ in
            switch e.payload {
            case .exec(let x): str(x.tty)
            case .shell(let x): str(x.tty)
            default: nil
            }
        },
        .init("proc.is_container", .bool, scope: .process, "Whether the process runs in a container.") { e, _ in .bool(e.container.isContainer) },
        .init("proc.cgroup_id", .uint, scope: .process, "The inode of the process's cgroup v2 directory.") { e, _ in .uint(e.cgroupID) },
        .init("proc.mntns", .uint, scope: .process, "The mount namespace's inode number.") { e, _ in .uint(UInt64(e.mountNamespace)) },
        .init("proc.pidns", .uint, scope: .process, "The pid namespace's inode number.") { e, _ in .uint(UInt64(e.pidNamespace)) },
        .init("proc.exitcode", .uint, [.exit], "The exit code (when not killed by a signal).") { e, _ in
            guard case .exit(let x) = e.payload else { return nil }
            return .uint(UInt64(x.exitCode))
        },
        .init("proc.exitsignal", .uint, [.exit], "The signal that ended the process, 0 when none.") { e, _ in
            guard case .exit(let x) = e.payload else { return nil }
            return .uint(UInt64(x.signal))
        },
        .init("proc.duration", .uint, "The process's age at the event, in nanoseconds: the event's time minus the process's start (its clone), on every event (Falco's meaning; on exit, how long it ran). Missing when the start is unknown.") { e, _ in
            processAge(e).map { .uint($0) }
        },
    ]

    static let userFields: [FieldDefinition] = [
        .init("user.uid", .uint, scope: .process, "Real user id.") { e, _ in .uint(UInt64(e.uid)) },
        .init("user.name", .string, scope: .process, "User name (host's passwd).", json: { e, out in appendJSON(e.process.userName, to: &out) }) { e, _ in e.process.userName.map { str($0) } },
        .init("user.loginuid", .uint, scope: .process, "Audit login uid (4294967295 when unset).") { e, _ in e.process.loginUID.map { .uint(UInt64($0)) } },
        .init("user.loginname", .string, scope: .process, "Login user's name.", json: { e, out in appendJSON(e.process.loginUserName, to: &out) }) { e, _ in e.process.loginUserName.map { str($0) } },
        .init("group.gid", .uint, scope: .process, "Real group id.") { e, _ in .uint(UInt64(e.gid)) },
        .init("group.name", .string, scope: .process, "Group name (host's group file).", json: { e, out in appendJSON(e.process.groupName, to: &out) }) { e, _ in e.process.groupName.map { str($0) } },
    ]

    /// The process's age at `e` in ns: the exit's own duration, or the event's time minus the
    /// start time (the exec's own, else the process table's); nil when the start is unknown.
    static func processAge(_ e: Event) -> UInt64? {
        let start: UInt64?
        // The kind first: matching the payload copies it.
        if e.kind == .exit, case .exit(let x) = e.payload {
            return x.durationNs
        } else if e.kind == .exec, case .exec(let x) = e.payload {
            start = x.startTimeNs != 0 ? x.startTimeNs : e.process.startTimeNs
        } else {
            start = e.process.startTimeNs
        }
        guard let start, e.bootTimeNs >= start else { return nil }
        return e.bootTimeNs - start
    }

    static func open(_ e: Event) -> Payload.Open? {
        if e.kind == .open, case .open(let o) = e.payload { return o }
        return nil
    }

    /// The fd type of an open (file, or directory with O_DIRECTORY) or of a syscall event's fd.
    static func fdType(_ e: Event) -> FDType? {
        if let o = open(e) { return o.flags & 0o200000 != 0 ? .directory : .file }
        if let s = NetworkFields.payloadSocket(e) { return s.isIPv4 ? .ipv4 : .ipv6 }
        return e.fd?.type
    }

    static let fileFields: [FieldDefinition] = [
        .init("fd.name", .string, [.open, .syscall, .conn, .tcpdrop], scope: .open, "The file's absolute path. After a success: the path of the file opened, as the kernel walked it from the new descriptor (symlinks resolved); a file a rule names by exact path (e.g. /etc/shadow) opened through another hard link gets the rule's name. After a failure: the name as given, resolved against cwd or dirfd, `.` and `..` folded. For a syscall event, the fd it acts on or made, from the fd table: a path, `pipe:[ino]`, `socket:[ino]`, `anon_inode:[eventfd]`, `memfd:NAME` (empty when the table does not know it). For a connection or a drop: `cip:cport->sip:sport`.") { e, _ in
            if let o = open(e) { return .string(o.path) }
            if let s = NetworkFields.payloadSocket(e) { return .string(s.name) }
            return e.fd.map { .string($0.name) }
        },
        .init("fd.nameraw", .string, [.open], scope: .open, "The name exactly as passed to the syscall (not resolved: a symlink or hard link shows here).") { e, _ in open(e).map { .string($0.name) } },
        .init("fd.directory", .string, [.open, .syscall], scope: .open, "The directory part of fd.name (a file or directory).", json: { e, out in
            if let o = open(e) { out.appendJSON(o.directory); return true }
            guard let fd = e.fd, fd.hasPath else { return false }
            PathParts.appendDirectoryJSON(fd.name, to: &out)
            return true
        }) { e, _ in
            if let o = open(e) { return .string(o.directory) }
            return e.fd.flatMap { $0.hasPath ? .string(PathParts.directory($0.name)) : nil }
        },
        .init("fd.filename", .string, [.open, .syscall], scope: .open, "The last component of fd.name (a file or directory).", json: { e, out in
            if let o = open(e) { out.appendJSON(o.filename); return true }
            guard let fd = e.fd, fd.hasPath else { return false }
            PathParts.appendFilenameJSON(fd.name, to: &out)
            return true
        }) { e, _ in
            if let o = open(e) { return .string(o.filename) }
            return e.fd.flatMap { $0.hasPath ? .string(PathParts.filename($0.name)) : nil }
        },
        .init("fd.type", .string, [.open, .syscall, .conn, .tcpdrop], scope: .open, "What the fd refers to (Falco's names): file, directory, ipv4, ipv6, unix, pipe, event, signalfd, eventpoll, inotify, timerfd, memfd, netlink, bpf, userfaultfd, io_uring, pidfd, socket (another family) or unknown.", json: { e, out in
            guard let type = fdType(e) else { return false }
            out.appendJSON(type.name)
            return true
        }) { e, _ in
            fdType(e).map { .string(ByteString($0.name)) }
        },
        .init("fd.typechar", .string, [.open, .syscall, .conn, .tcpdrop], scope: .open, "fd.type as Falco's letter: f file, d directory, 4 ipv4, 6 ipv6, u unix or userfaultfd, p pipe, e event, s signalfd, l eventpoll, i inotify, t timerfd, m memfd, n netlink, b bpf, r io_uring, P pidfd, o other.", json: { e, out in
            guard let type = fdType(e) else { return false }
            out.appendJSON(type.typechar)
            return true
        }) { e, _ in
            fdType(e).map { .string(ByteString($0.typechar)) }
        },
        .init("fd.name_changed", .bool, [.syscall], "Whether this event changed the name of the fd it acts on: a connect naming its socket, or a datagram sent to (or received from) a new peer on an unconnected socket, whose name follows the last peer (Falco's `outbound` macro uses it to see each new UDP destination once).") { e, _ in
            e.hasFD ? .bool(e.fdNameChanged) : nil
        },
        .init("fd.flags", .string, [.open], scope: .open, "Open flags, e.g. O_RDONLY|O_CLOEXEC.", json: { e, out in
            guard let o = open(e) else { return false }
            out.append(0x22)
            OpenFlags.append(o.flags, to: &out)
            out.append(0x22)
            return true
        }) { e, _ in open(e).map { str(OpenFlags.describe($0.flags)) } },
        .init("fd.rawflags", .uint, [.open], scope: .open, "Open flags as a number.") { e, _ in open(e).map { .uint(UInt64($0.flags)) } },
        .init("fd.mode", .uint, [.open], scope: .open, "Creation mode (meaningful with O_CREAT or O_TMPFILE).") { e, _ in open(e).map { .uint(UInt64($0.mode)) } },
        .init("fd.num", .int, [.open, .syscall], scope: .open, "The new file descriptor, -1 when the call failed; for a syscall event the fd it acts on or made.") { e, _ in
            if let o = open(e) { return .int(o.result >= 0 ? o.result : -1) }
            return e.fd.map { .int(Int64($0.number)) }
        },
        .init("fd.dirfd", .int, [.open], scope: .open, "The dirfd argument (-100 = AT_FDCWD).") { e, _ in open(e).map { .int(Int64($0.dirfd)) } },
        .init("fd.truncated", .bool, [.open], scope: .open, "Whether the path was cut (deeper than 48 levels or longer than 4096 bytes).") { e, _ in open(e).map { .bool($0.truncated) } },
        .init("fd.dev", .uint, [.open, .syscall], scope: .open, "The device of the opened file's file system (its super block's, encoded as stat's st_dev; on btrfs stat reports a device per subvolume instead); 0 after a failure or when not known (for a syscall event: known for fds opened by the file sensor or seeded from /proc).") { e, _ in
            if let o = open(e) { return .uint(o.device) }
            return e.fd.map { .uint($0.device) }
        },
        .init("fd.dev.major", .uint, [.open], scope: .open, "The major number of fd.dev.") { e, _ in open(e).map { .uint(UInt64(FileID.major($0.device))) } },
        .init("fd.dev.minor", .uint, [.open], scope: .open, "The minor number of fd.dev.") { e, _ in open(e).map { .uint(UInt64(FileID.minor($0.device))) } },
        .init("fd.ino", .uint, [.open, .syscall], scope: .open, "The opened file's inode number; 0 after a failure or when not known (as fd.dev).") { e, _ in
            if let o = open(e) { return .uint(o.inode) }
            return e.fd.map { .uint($0.inode) }
        },
        .init("fd.is_other_proc", .bool, [.open], scope: .open, "Whether fd.name is below /proc/PID/ of another process (not /proc/self, not its own pid).") { e, _ in
            open(e).map { .bool(PathParts.otherProcessPID($0.path, own: e.pid) != nil) }
        },
        .init("evt.is_open_read", .bool, [.open], scope: .open, "Opened for reading (O_RDONLY or O_RDWR).") { e, _ in open(e).map { .bool($0.flags & 3 != 1) } },
        .init("evt.is_open_write", .bool, [.open], scope: .open, "Opened for writing (O_WRONLY or O_RDWR).") { e, _ in open(e).map { .bool($0.flags & 3 != 0) } },
        .init("evt.is_open_create", .bool, [.open], scope: .open, "This open created the file (the kernel's FMODE_CREATED: O_CREAT found no file). O_TRUNC on a created file truncated nothing.") { e, _ in open(e).map { .bool($0.created) } },
    ]

    static let containerFields: [FieldDefinition] = [
        .init("container.id", .string, scope: .container, "The container's 12-character id; `host` on the host; `unknown` for a runtime's init not yet in its container's cgroup.") { e, _ in .string(e.container.idBytes) },
        .init("container.full_id", .string, scope: .container, "The container's full id, empty for the host.") { e, _ in .string(e.container.fullIDBytes) },
        .init("container.name", .string, scope: .container, "The container's name (`host` for the host; empty while unknown): Docker's name; for a container only containerd knows (a kubelet's CRI, nerdctl), its io.kubernetes.container.name label; from a CRI runtime (CRI-O), the pod spec's name; else its 12-character id, as Falco names it.") { e, _ in .string(e.container.nameBytes) },
        .init("container.image", .string, scope: .container, "The container's image.") { e, _ in .string(e.container.imageBytes) },
        .init("container.image.repository", .string, scope: .container, "The image's repository: container.image without its tag and digest (`registry:5000/team/app`).") { e, _ in
            e.container.isContainer ? str(String(ImageReference(e.container.image).repository)) : nil
        },
        .init("container.image.tag", .string, scope: .container, "The image's tag; `latest` when the image names neither a tag nor a digest.") { e, _ in
            e.container.isContainer ? str(String(ImageReference(e.container.image).tag)) : nil
        },
        .init("container.image.digest", .string, scope: .container, "The image's digest when the image is named by one (`sha256:...`), else empty.") { e, _ in
            e.container.isContainer ? str(String(ImageReference(e.container.image).digest)) : nil
        },
        .init("container.image.id", .string, scope: .container, "The image's id, 12 hex digits (as `docker images` shows it), when the runtime said.") { e, _ in
            let id = e.container.details.imageID
            guard !id.isEmpty else { return nil }
            return str(String((id.hasPrefix("sha256:") ? id.dropFirst(7) : Substring(id)).prefix(12)))
        },
        .init("container.privileged", .bool, scope: .container, "Whether the container runs privileged (`docker run --privileged`); false on the host.") { e, _ in
            .bool(e.container.details.privileged)
        },
        .init("container.start_ts", .uint, scope: .container, "When the container started, ns since the epoch (the runtime's start time, Docker's State.StartedAt); none on the host or when the runtime did not say.") { e, _ in
            guard e.container.isContainer else { return nil }
            return e.container.details.startTimeNs.map { .uint($0) }
        },
        .init("container.mounts", .string, scope: .container, "The container's mounts (volumes and bind mounts), each SOURCE:DEST:MODE:RDWR:PROPAGATION, separated by commas; none on the host or when the runtime did not say.") { e, _ in
            guard e.container.isContainer, let mounts = e.container.details.mounts else { return nil }
            return str(mounts.map(\.text).joined(separator: ","))
        },
        .init("container.mount.dest", .string, argument: true, scope: .container, "Where a mount is in the container: container.mount.dest[N] for the Nth mount (from 0), container.mount.dest[SOURCE] for the first whose host source matches the glob SOURCE (`container.mount.dest[/var/run/docker.sock]`, `[/proc*]`); none when no mount matches.") { e, arg in
            guard e.container.isContainer, let mounts = e.container.details.mounts, let arg else { return nil }
            if let n = Int(arg) { return n >= 0 && n < mounts.count ? str(mounts[n].destination) : nil }
            return mounts.first { fnmatch(arg, $0.source, 0) == 0 }.map { str($0.destination) }
        },
        .init("container.runtime", .string, scope: .container, "docker, containerd, crio, podman, kube, lxc, nspawn, garden, host, or unknown (see container.id).") { e, _ in .string(e.container.runtimeBytes) },
        .init("container.label", .string, argument: true, scope: .container, "The value of label KEY: container.label[KEY].") { e, arg in
            arg.flatMap { e.container.labels[$0] }.map { str($0) }
        },
        .init("k8s.pod.name", .string, scope: .container, "The Kubernetes pod's name: the container's io.kubernetes.pod.name label, which the kubelet's runtimes (containerd's CRI, cri-dockerd, CRI-O) put on every container of a pod; read from Docker, else from containerd (`containerd:` in vigil.yaml), else from a CRI runtime (`cri:`, CRI-O's socket), whose pod sandbox names the pod.") { e, _ in
            e.container.labels["io.kubernetes.pod.name"].map { str($0) }
        },
        .init("k8s.ns.name", .string, scope: .container, "The Kubernetes namespace of the pod: the io.kubernetes.pod.namespace label.") { e, _ in
            e.container.labels["io.kubernetes.pod.namespace"].map { str($0) }
        },
        .init("k8s.pod.sandbox_id", .string, scope: .container, "The pod's sandbox (pause container) id, 12 characters: the io.kubernetes.sandbox.id label.") { e, _ in
            e.container.labels["io.kubernetes.sandbox.id"].map { str(String($0.prefix(12))) }
        },
        .init("k8s.pod.uid", .string, scope: .container, "The Kubernetes pod uid: from the cgroup path when it names one, else the io.kubernetes.pod.uid label.", json: { e, out in
            guard let uid = podUID(e) else { return false }
            out.appendJSON(uid)
            return true
        }) { e, _ in
            podUID(e).map { str($0) }
        },
        .init("k8s.pod.labels", .strings, scope: .container, "The Kubernetes pod's labels, each KEY:VALUE, sorted by key: the labels of the pod's sandbox (containerd's sandbox container, or the CRI's PodSandboxStatus), without the kubelet's and runtime's io.kubernetes.* and io.cri-containerd.* keys; none when the runtime did not say (Docker).") { e, _ in
            let labels = e.container.details.podLabels
            guard !labels.isEmpty else { return nil }
            return .strings(labels.sorted { $0.key < $1.key }.map { ByteString("\($0.key):\($0.value)") })
        },
        .init("k8s.pod.label", .string, argument: true, scope: .container, "The value of the pod's label KEY: k8s.pod.label[KEY] (see k8s.pod.labels).") { e, arg in
            arg.flatMap { e.container.details.podLabels[$0] }.map { str($0) }
        },
    ]
}

extension Fields {
    /// The pod uid of an event's container: the cgroup path's, else the CRI's label.
    static func podUID(_ e: borrowing Event) -> String? {
        if !e.container.podUID.isEmpty { return e.container.podUID }
        return e.container.labels["io.kubernetes.pod.uid"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Writes `first` (when given) and `rest` joined by spaces as one JSON string, without
    /// joining them first. The same bytes as escaping the joined string: a space ends any
    /// UTF-8 sequence, so each part escapes alone as it would within the whole.
    static func appendJoinedJSON(_ first: ByteString?, _ rest: ArraySlice<ByteString>, to out: inout ByteBuffer) {
        out.append(0x22)
        var separate = false
        if let first {
            first.bytes.withUnsafeBufferPointer { out.appendJSONStringContent($0) }
            separate = true
        }
        for part in rest {
            if separate { out.append(0x20) }
            part.bytes.withUnsafeBufferPointer { out.appendJSONStringContent($0) }
            separate = true
        }
        out.append(0x22)
    }

    /// Writes an optional name as a JSON string; false when nil.
    static func appendJSON(_ name: String?, to out: inout ByteBuffer) -> Bool {
        guard let name else { return false }
        out.appendJSON(name)
        return true
    }
}

/// Names fields return over and over: as static text for JSON (no reference to count) and as
/// byte strings made once for `extract`.
enum Names {
    static let success: StaticString = "SUCCESS"
    /// `success` as a JSON string literal.
    static let successJSON: StaticString = "\"SUCCESS\""
    /// `kinds` as JSON string literals, rendered once.
    static let kindJSON = JSONPieces(strings: kinds.map { "\($0)" })
    static let successBytes = ByteString(success)
    static let kindBytes = kinds.map(ByteString.init)
    static let eventTypeBytes = eventTypes.map(ByteString.init)
    /// An open event's possible evt.type names (`EventKind.open`'s `types`).
    static let openTypes: [String] = EventKind.open.descriptor.types

    /// The index of `e`'s evt.type in `eventTypes` (bpf/syscalls/kinds.table): a `fixed` kind's
    /// first name, an open event's syscall (a syscall event is named by its table row, by
    /// evt.type's readers, never through this table).
    /// Program bundle events' evt.type is the bundle's name (not in `eventTypes`).
    static func programName(_ e: Event) -> String? {
        if e.kind == .program, case .program(let p) = e.payload { return p.schema.name }
        return nil
    }

    static func eventType(_ e: Event) -> Int {
        let start = eventTypeStart[e.kind.index]
        switch e.payload {
        case .open(let o): return start + (openTypes.firstIndex(of: o.syscall) ?? 1)
        case .conn(let c): return start + Int(c.phase.rawValue)
        default: return start
        }
    }
}

/// Directory and file parts of a path.
public enum PathParts {
    /// The directory of a bare name, and of a top-level file.
    static let dot = ByteString("."), root = ByteString("/")

    /// Everything before the last slash (`/` for a top-level file).
    public static func directory(_ path: ByteString) -> ByteString {
        guard let slash = path.bytes.lastIndex(of: UInt8(ascii: "/")) else { return dot }
        return slash == 0 ? root : ByteString(path.bytes[..<slash])
    }
    /// The pid of a /proc/PID/... path when PID is a number other than `own`.
    public static func otherProcessPID(_ path: ByteString, own: UInt32) -> UInt32? {
        let b = path.bytes
        // "/proc/" then digits then "/" or the end; no allocation (rules read this per event).
        guard b.count > 6, b[0] == 0x2f, b[1] == 0x70, b[2] == 0x72, b[3] == 0x6f, b[4] == 0x63, b[5] == 0x2f else { return nil }
        var pid: UInt32 = 0, i = 6
        while i < b.count, b[i] != 0x2f {
            guard b[i] >= 0x30, b[i] <= 0x39, pid < 429_496_729 else { return nil }
            pid = pid * 10 + UInt32(b[i] - 0x30)
            i += 1
        }
        return i > 6 && pid != own ? pid : nil
    }

    /// Whether `path` (an absolute path inside the container) exists in the container's writable
    /// layer on the host: made or changed there since the container started. A whiteout (a
    /// deleted file, a 0:0 character device) does not count.
    public static func isInUpperLayer(_ path: ByteString?, of container: ContainerContext) -> Bool {
        let upper = container.details.upperDir
        guard container.isContainer, !upper.isEmpty, let path, path.bytes.first == UInt8(ascii: "/") else { return false }
        var full = Array(upper.utf8)
        full.append(contentsOf: path.bytes)
        full.append(0)
        var st = stat()
        let found = full.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { lstat($0.baseAddress!, &st) == 0 } }
        return found && !((st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0)
    }

    /// Appends `directory(path)` as a JSON string, without making it.
    static func appendDirectoryJSON(_ path: ByteString, to out: inout ByteBuffer) {
        guard let slash = path.bytes.lastIndex(of: UInt8(ascii: "/")) else { out.appendJSON(dot); return }
        if slash == 0 { out.appendJSON(root); return }
        path.bytes.withUnsafeBufferPointer { out.appendJSONString(UnsafeBufferPointer(rebasing: $0[..<slash])) }
    }

    /// Appends `filename(path)` as a JSON string, without making it.
    static func appendFilenameJSON(_ path: ByteString, to out: inout ByteBuffer) {
        guard let slash = path.bytes.lastIndex(of: UInt8(ascii: "/")) else { out.appendJSON(path); return }
        path.bytes.withUnsafeBufferPointer { out.appendJSONString(UnsafeBufferPointer(rebasing: $0[(slash + 1)...])) }
    }

    /// Everything after the last slash.
    public static func filename(_ path: ByteString) -> ByteString {
        guard let slash = path.bytes.lastIndex(of: UInt8(ascii: "/")) else { return path }
        return ByteString(path.bytes[(slash + 1)...])
    }
}

extension Fields {
    /// docs/fields.md: every field with its type, the event kinds that carry it and its meaning.
    public static func markdown() -> String {
        var out = """
        <!-- DO NOT EDIT: generated from Sources/VigilEvents/Fields.swift by 'make generate'. -->
        # Event fields

        Rules, output templates and `vigil trace -o json` name fields as below (Falco's names where
        Falco has the field). In JSON every event is one object per line whose keys are these names;
        fields taking an argument (`proc.aname[N]`, `container.label[KEY]`) appear in JSON as
        `proc.anames` and `container.labels`. Byte strings (paths, arguments, names) keep their exact
        bytes: bytes that are not valid UTF-8 are written as `\\udcXX` escapes (Python's
        `surrogateescape`), so `s.encode("utf-8", "surrogateescape")` gives the original bytes back.

        Bounds: argv keeps 4096 bytes (`proc.args_truncated` says when it was cut); paths keep 4096
        bytes and 48 directory levels (`fd.truncated`); names as given keep 1023 bytes; the
        environment (`proc.env`) keeps the whole NAME=VALUE entries within its first 4096 bytes
        (`proc.env_truncated`).

        | field | type | events | description |
        |---|---|---|---|

        """
        for field in all {
            let name = field.takesArgument ? "\(field.name)[…]" : field.name
            let kinds = field.kinds.isEmpty ? "all" : EventKind.allCases.filter(field.kinds.contains).map(\.rawValue).joined(separator: ", ")
            out += "| `\(name)` | \(field.type.rawValue) | \(kinds) | \(field.description.split(separator: "|", omittingEmptySubsequences: false).joined(separator: "\\|")) |\n"
        }
        return out
    }
}
