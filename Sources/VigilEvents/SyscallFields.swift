/// The fields of syscall events (Falco's names): evt.category, evt.failed, evt.latency,
/// evt.args, evt.arg[N] / evt.arg.NAME, evt.rawarg.NAME; evt.type, evt.res and evt.rawres are in
/// `Fields.eventFields`. Every value comes from `SyscallArguments` (the table's types). evt.dir
/// stays the rules compiler's pseudo-field (`<`: entry and exit are one event); exit and
/// exit_group, reported at entry, say so in `Payload.Syscall.noExit`.
public enum SyscallFields {
    static func syscall(_ e: Event) -> Payload.Syscall? {
        if case .syscall(let s) = e.payload { return s }
        return nil
    }

    /// Each syscall's name as bytes (evt.type), indexed like `Syscalls.all`, made once.
    static let nameBytes: [ByteString] = Syscalls.all.map { ByteString($0.name) }

    /// Each syscall's first category (evt.category: "other" when it has none) as bytes, indexed
    /// like `Syscalls.all`, made once.
    static let categoryBytes: [ByteString] = Syscalls.all.map { ByteString($0.categories.names.first ?? "other") }

    /// `nameBytes` and `categoryBytes` as JSON string literals, rendered once.
    static let nameJSON = JSONPieces(strings: Syscalls.all.map { "\($0.name)" })
    static let categoryJSON = JSONPieces(strings: Syscalls.all.map { $0.categories.names.first ?? "other" })

    /// Per syscall and parameter: the JSON `args` entry up to its value,
    /// `{"name":NAME,"type":TYPE,"value":`, made once: the entries of syscall i are `pieces`
    /// `first[i]` to `first[i + 1]`.
    struct ArgumentPrefixes: @unchecked Sendable { // immutable once made
        let pieces: JSONPieces
        let first: UnsafeBufferPointer<Int32>
    }

    static let argumentPrefixes: ArgumentPrefixes = {
        var pieces: [[UInt8]] = [], first: [Int32] = []
        for d in Syscalls.all {
            first.append(Int32(pieces.count))
            for p in d.params {
                var out = ByteBuffer(capacity: 64)
                out.append("{\"name\":")
                out.appendJSON(p.name)
                out.append(",\"type\":")
                out.appendJSON(p.type.name)
                out.append(",\"value\":")
                pieces.append(out.bytes())
            }
        }
        first.append(Int32(pieces.count))
        return ArgumentPrefixes(pieces: JSONPieces(pieces: pieces), first: .immortal(first))
    }()

    /// The index of the argument named or numbered by `argument` (`evt.arg[1]`, `evt.arg[filename]`).
    static func argumentIndex(_ argument: String?, _ s: Payload.Syscall) -> Int? {
        guard let argument else { return nil }
        if let n = Int(argument) { return n >= 0 && n < s.descriptor.params.count ? n : nil }
        return SyscallArguments.index(of: argument, in: s)
    }

    /// evt.arg: the argument as text.
    static func argument(_ e: Event, _ argument: String?) -> FieldValue? {
        if case .open(let o) = e.payload { return openArgument(o, argument, raw: false) }
        guard let s = syscall(e), let i = argumentIndex(argument, s) else { return nil }
        return .string(SyscallArguments.bytes(s, i))
    }

    /// The file sensor's open event read as Falco's open/openat/openat2/creat exit, whose
    /// parameters are fd (the result), dirfd, name (the path), flags and mode: Falco rules such
    /// as "Clear Log Activities" test `evt.arg.flags contains O_TRUNC` on opens.
    static func openArgument(_ o: Payload.Open, _ name: String?, raw: Bool) -> FieldValue? {
        switch name {
        case "fd": .int(o.result)
        case "dirfd": .int(Int64(o.dirfd))
        case "name", "filename", "pathname": .string(raw ? o.name : o.path)
        case "flags": raw ? .uint(UInt64(o.flags)) : .string(ByteString(OpenFlags.describe(o.flags)))
        case "mode": raw ? .uint(UInt64(o.mode)) : .string(ByteString("0" + String(o.mode, radix: 8)))
        default: nil
        }
    }

    /// The names `openArgument` answers to.
    static let openParameterNames: Set<String> = ["fd", "dirfd", "name", "filename", "pathname", "flags", "mode"]

    /// evt.rawarg: the raw value (a number; captured bytes for strings, paths and buffers).
    static func rawArgument(_ e: Event, _ argument: String?) -> FieldValue? {
        if case .open(let o) = e.payload { return openArgument(o, argument, raw: true) }
        guard let s = syscall(e), let i = argumentIndex(argument, s) else { return nil }
        switch s.descriptor.params[i].type {
        case .path, .string, .buffer, .iovec, .msghdr, .sockaddr:
            return s.captured(i).map { .string(ByteString(Array($0))) }
        case .int, .fd, .pid, .signal:
            return .int(SyscallArguments.int(s.args[i]))
        default:
            return .uint(s.args[i])
        }
    }

    /// The fields (appended to `Fields.all`).
    static let fields: [FieldDefinition] = [
        .init("evt.category", .string, [.syscall], "The syscall's first category: fs, net, proc, ipc, mem, signal, time, user, system, sleep or other (docs/syscalls.md).", syscallJSON: { s, out in
            SyscallJSON.category(s, .shared, &out)
            return true
        }) { e, _ in
            syscall(e).map { .string(categoryBytes[$0.index]) }
        },
        .init("evt.failed", .bool, [.syscall], "Whether the syscall failed (returned -errno).", syscallJSON: { s, out in
            SyscallJSON.failed(s, &out)
            return true
        }) { e, _ in
            syscall(e).map { .bool($0.failedCall) }
        },
        .init("evt.truncated", .bool, [.syscall], "Whether an argument was cut at its bound (the config's syscall_buffer_bytes / syscall_string_bytes, `vigil trace --snaplen` / `--string-bytes`): its text ends in `...` and its JSON `args` entry says \"truncated\":true.", syscallJSON: { s, out in
            SyscallJSON.truncated(s, &out)
            return true
        }) { e, _ in
            syscall(e).map { .bool($0.truncated != 0) }
        },
        .init("evt.latency", .uint, [.syscall], "Time between the syscall's entry and exit, in nanoseconds; 0 for a call captured at its exit alone (a syscall captured only for DNS or a first payload).", syscallJSON: { s, out in
            SyscallJSON.latency(s, &out)
            return true
        }) { e, _ in
            syscall(e).map { .uint($0.latencyNs) }
        },
        .init("evt.args", .string, [.syscall], "Every argument as name=value, separated by spaces (decoded by the table's types).", json: { e, out in
            guard let s = syscall(e) else { return false }
            out.appendJSONString { SyscallArguments.appendAll(s, to: &$0) }
            return true
        }) { e, _ in
            guard let s = syscall(e) else { return nil }
            var text = ByteBuffer(capacity: 256)
            SyscallArguments.appendAll(s, to: &text)
            return .string(text.withUnsafeBytes { ByteString($0) })
        },
        .init("evt.arg", .string, [.syscall], argument: true, "An argument as text, by name or position: evt.arg.filename, evt.arg[filename], evt.arg[1]. The open kind's events answer too, in the dotted form, to Falco's names for an open's exit: evt.arg.fd, .dirfd, .name, .flags (O_WRONLY|O_TRUNC...), .mode (octal).", argument),
        .init("evt.rawarg", .string, [.syscall], argument: true, "An argument's raw value: a number, or the captured bytes of a string, path or buffer (evt.rawarg.NAME, evt.rawarg[N]); an open event's (dotted form) flags and mode as numbers, name as given.", rawArgument),
    ]

    /// Every parameter name of the table, the kernel's and Falco's.
    static let parameterNames: Set<String> = Set(Syscalls.all.flatMap { $0.params.flatMap { [$0.nameString] + ($0.falcoName.map { [$0.description] } ?? []) } })

    /// `evt.arg.NAME` and `evt.rawarg.NAME` (Falco's dotted form of the bracket argument), for a
    /// NAME some syscall of the table has.
    static func dotted(_ name: String) -> FieldDefinition? {
        for (prefix, extract) in [("evt.arg.", argument), ("evt.rawarg.", rawArgument)] as [(String, @Sendable (Event, String?) -> FieldValue?)]
        where name.hasPrefix(prefix) && parameterNames.contains(String(name.dropFirst(prefix.count))) {
            let argumentName = String(name.dropFirst(prefix.count))
            let kinds: KindSet = openParameterNames.contains(argumentName) ? [.open, .syscall] : [.syscall]
            return FieldDefinition(name, .string, kinds, "", { e, _ in extract(e, argumentName) })
        }
        return nil
    }

    /// JSON's `args`: an array of {"name", "type", "value"} in argument order (as ctrace prints them).
    static let argsArray = FieldDefinition("args", .string, [.syscall], "Every argument: name, type and value.", syscallJSON: { s, out in
        SyscallJSON.args(s, .shared, &out)
        return true
    }) { _, _ in nil }
}
