/// How the fields a syscall's payload decides are written as JSON: the catalogue's
/// `syscallJSON` writers and `SyscallLineField` both call these, so each field's rendering is
/// written once (JSONOutputTests compares both with `appendJSON` of the field's `extract`).
/// The payload is borrowed where the event holds it: a copy retained its strings. The tables
/// come from the caller (`SyscallJSONTables`).
enum SyscallJSON {
    /// evt.type: the syscall's name.
    @inline(__always)
    static func type(_ s: borrowing Payload.Syscall, _ tables: SyscallJSONTables, _ out: inout ByteBuffer) {
        tables.names.append(s.index, to: &out)
    }

    /// evt.res: SUCCESS or the error's name.
    @inline(__always)
    static func res(_ s: borrowing Payload.Syscall, _ out: inout ByteBuffer) {
        if s.failedCall { out.appendJSON(ErrnoNames.name(result: s.result)) } else { out.append(Names.successJSON) }
    }

    /// evt.rawres: the return value.
    @inline(__always)
    static func rawres(_ s: borrowing Payload.Syscall, _ out: inout ByteBuffer) {
        out.append(decimal: s.result)
    }

    /// evt.category: the syscall's first category.
    @inline(__always)
    static func category(_ s: borrowing Payload.Syscall, _ tables: SyscallJSONTables, _ out: inout ByteBuffer) {
        tables.categories.append(s.index, to: &out)
    }

    /// evt.failed.
    @inline(__always)
    static func failed(_ s: borrowing Payload.Syscall, _ out: inout ByteBuffer) {
        out.append(s.failedCall ? "true" : "false")
    }

    /// evt.truncated.
    @inline(__always)
    static func truncated(_ s: borrowing Payload.Syscall, _ out: inout ByteBuffer) {
        out.append(s.truncated != 0 ? "true" : "false")
    }

    /// evt.latency.
    @inline(__always)
    static func latency(_ s: borrowing Payload.Syscall, _ out: inout ByteBuffer) {
        out.append(decimal: s.latencyNs)
    }

    /// JSON's `args`: an array of {"name", "type", "value"} in argument order (as ctrace prints
    /// them), each entry's text up to its value made once (`SyscallFields.argumentPrefixes`).
    static func args(_ s: borrowing Payload.Syscall, _ tables: SyscallJSONTables, _ out: inout ByteBuffer) {
        out.append(0x5b)
        let prefixes = tables.argumentPrefixes
        let first = Int(prefixes.first[s.index])
        let params = tables.params[s.index]
        for i in 0..<(Int(prefixes.first[s.index + 1]) - first) {
            if i > 0 { out.append(0x2c) }
            prefixes.pieces.append(first + i, to: &out)
            out.appendJSONString { SyscallArguments.append(s, i, params: params, to: &$0) }
            if s.truncated & (1 << UInt8(i & 7)) != 0 { out.append(",\"truncated\":true") }
            out.append(0x7d)
        }
        out.append(0x5d)
    }
}

/// The tables a syscall event's JSON reads per event: its name, category and kind as JSON, the
/// `args` entries' prefixes and the parameters. `JSONPlan` keeps a copy and hands it down (read
/// through their statics, each costs a `swift_once` per event); the catalogue's writers use
/// `shared`. Pointers to memory never freed: copying retains nothing.
struct SyscallJSONTables: @unchecked Sendable {
    let names: JSONPieces
    let categories: JSONPieces
    let kinds: JSONPieces
    let argumentPrefixes: SyscallFields.ArgumentPrefixes
    let params: UnsafeBufferPointer<UnsafeBufferPointer<SyscallParam>>

    static let shared = SyscallJSONTables(names: SyscallFields.nameJSON, categories: SyscallFields.categoryJSON, kinds: Names.kindJSON,
                                          argumentPrefixes: SyscallFields.argumentPrefixes, params: Syscalls.params)
}

/// An event-scoped field of syscall events that `JSONPlan` writes with its neighbours in one
/// step (`JSONPlan.Step.lineStart`): straight from the event and its payload, read out once,
/// with a switch instead of a closure, an optional and a mark per field. The plan still decides
/// which fields a line has and in which order; this only says how to write the ones it knows,
/// each as its catalogue field renders it (the payload's through `SyscallJSON`, the header's as
/// `appendJSON` of the field's `extract` value; JSONOutputTests compares every syscall line with
/// the catalogue's rendering). Every one of them has a value on every syscall event.
enum SyscallLineField: UInt8, Sendable {
    case type, kind, time, rawtime, res, rawres, cpu, pid, tid, category, failed, truncated, latency, args

    /// The field of the catalogue's `name`, nil for one written the usual way.
    init?(name: String) {
        switch name {
        case "evt.type": self = .type
        case "evt.kind": self = .kind
        case "evt.time": self = .time
        case "evt.rawtime": self = .rawtime
        case "evt.res": self = .res
        case "evt.rawres": self = .rawres
        case "evt.cpu": self = .cpu
        case "proc.pid": self = .pid
        case "thread.tid": self = .tid
        case "evt.category": self = .category
        case "evt.failed": self = .failed
        case "evt.truncated": self = .truncated
        case "evt.latency": self = .latency
        case "args": self = .args
        default: return nil
        }
    }

    /// Appends the value of this field of `event`, whose payload is `s`, from `tables`
    /// (evt.time through the writer's `second` when it keeps one).
    @inline(__always)
    func write(_ event: borrowing Event, _ s: borrowing Payload.Syscall, _ tables: SyscallJSONTables,
               second: UnsafeMutablePointer<Timestamp.SecondText>?, to out: inout ByteBuffer) {
        switch self {
        case .type: SyscallJSON.type(s, tables, &out)
        case .kind: tables.kinds.append(event.kind.index, to: &out)
        case .time: Fields.appendTime(event.timeNs, second: second, to: &out)
        case .rawtime: out.append(decimal: event.timeNs)
        case .res: SyscallJSON.res(s, &out)
        case .rawres: SyscallJSON.rawres(s, &out)
        case .cpu: out.append(decimal: UInt64(event.cpu))
        case .pid: out.append(decimal: UInt64(event.pid))
        case .tid: out.append(decimal: UInt64(event.tid))
        case .category: SyscallJSON.category(s, tables, &out)
        case .failed: SyscallJSON.failed(s, &out)
        case .truncated: SyscallJSON.truncated(s, &out)
        case .latency: SyscallJSON.latency(s, &out)
        case .args: SyscallJSON.args(s, tables, &out)
        }
    }
}
