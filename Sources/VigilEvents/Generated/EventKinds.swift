// DO NOT EDIT: generated from bpf/syscalls/kinds.table by 'make generate' (scripts/syscalls-generate.py).

import CVigilABI

/// The kinds of events Vigil's sensors report, one per row of bpf/syscalls/kinds.table. The raw
/// value is Vigil's short name (`vigil trace --event`, evt.kind); everything else about a kind is
/// its `descriptor`. `syscall` is any syscall of the table (`Syscalls`): its evt.type is the syscall's name.
public enum EventKind: String, Sendable, CaseIterable, Codable {
    case exec, fork, exit, open, syscall, conn, tcpdrop, fim, shell, program

    /// The kind's position in the table (and in `allCases`): the one index of a kind, for tables
    /// indexed by kind and the bits of a `KindSet`.
    @inlinable public var index: Int {
        switch self {
        case .exec: 0
        case .fork: 1
        case .exit: 2
        case .open: 3
        case .syscall: 4
        case .conn: 5
        case .tcpdrop: 6
        case .fim: 7
        case .shell: 8
        case .program: 9
        }
    }

    /// The kind at `index` of the table.
    @inlinable public init(index: Int) { self = Self.allCases[index] }

    /// The kind of a record's `vigil_event_header.kind`, nil for a value no kind has.
    public init?(abi: UInt32) {
        switch abi {
        case UInt32(VIGIL_EVENT_EXEC.rawValue): self = .exec
        case UInt32(VIGIL_EVENT_FORK.rawValue): self = .fork
        case UInt32(VIGIL_EVENT_EXIT.rawValue): self = .exit
        case UInt32(VIGIL_EVENT_OPEN.rawValue): self = .open
        case UInt32(VIGIL_EVENT_SYSCALL.rawValue): self = .syscall
        case UInt32(VIGIL_EVENT_CONN.rawValue): self = .conn
        case UInt32(VIGIL_EVENT_TCPDROP.rawValue): self = .tcpdrop
        case UInt32(VIGIL_EVENT_FIM.rawValue): self = .fim
        case UInt32(VIGIL_EVENT_SHELL.rawValue): self = .shell
        case UInt32(VIGIL_EVENT_PROGRAM.rawValue): self = .program
        default: return nil
        }
    }

    /// The kind's row of the table.
    public var descriptor: EventKindDescriptor { EventKindDescriptor.all[index] }

    /// The sensor set the kind belongs to (`vigil trace --set`; a syscall event's categories are its syscall's).
    public var set: String { descriptor.category }
}

extension EventKindDescriptor {
    /// Every kind's row, in `EventKind.index` order.
    public static let all: [EventKindDescriptor] = [
        EventKindDescriptor(kind: .exec, abi: UInt32(VIGIL_EVENT_EXEC.rawValue), category: "proc", sensor: "process", record: "vigil_exec_event", recordSize: MemoryLayout<vigil_exec_event>.size, eventType: .fixed, types: ["execve", "execveat"], syscalls: ["execve", "execveat"]),
        EventKindDescriptor(kind: .fork, abi: UInt32(VIGIL_EVENT_FORK.rawValue), category: "proc", sensor: "process", record: "vigil_fork_event", recordSize: MemoryLayout<vigil_fork_event>.size, eventType: .fixed, types: ["clone", "clone3", "fork", "vfork"], syscalls: ["clone", "clone3", "fork", "vfork"]),
        EventKindDescriptor(kind: .exit, abi: UInt32(VIGIL_EVENT_EXIT.rawValue), category: "proc", sensor: "process", record: "vigil_exit_event", recordSize: MemoryLayout<vigil_exit_event>.size, eventType: .fixed, types: ["procexit"], syscalls: ["exit", "exit_group"]),
        EventKindDescriptor(kind: .open, abi: UInt32(VIGIL_EVENT_OPEN.rawValue), category: "fs", sensor: "file", record: "vigil_open_event", recordSize: MemoryLayout<vigil_open_event>.size, eventType: .record, types: ["open", "openat", "openat2", "creat"], syscalls: ["open", "openat", "openat2"]),
        EventKindDescriptor(kind: .syscall, abi: UInt32(VIGIL_EVENT_SYSCALL.rawValue), category: "syscall", sensor: "syscalls", record: "vigil_syscall_event", recordSize: MemoryLayout<vigil_syscall_event>.size, eventType: .syscall, types: [], syscalls: []),
        EventKindDescriptor(kind: .conn, abi: UInt32(VIGIL_EVENT_CONN.rawValue), category: "net", sensor: "conn", record: "vigil_conn_event", recordSize: MemoryLayout<vigil_conn_event>.size, eventType: .record, types: ["tcp_connect", "tcp_accept", "tcp_close", "tcp_retransmit"], syscalls: []),
        EventKindDescriptor(kind: .tcpdrop, abi: UInt32(VIGIL_EVENT_TCPDROP.rawValue), category: "net", sensor: "conn", record: "vigil_tcpdrop_event", recordSize: MemoryLayout<vigil_tcpdrop_event>.size, eventType: .fixed, types: ["tcp_drop"], syscalls: []),
        EventKindDescriptor(kind: .fim, abi: UInt32(VIGIL_EVENT_FIM.rawValue), category: "fs", sensor: "fim", record: "", recordSize: 0, eventType: .fixed, types: ["fim_change"], syscalls: []),
        EventKindDescriptor(kind: .shell, abi: UInt32(VIGIL_EVENT_SHELL.rawValue), category: "proc", sensor: "shell", record: "vigil_shell_event", recordSize: MemoryLayout<vigil_shell_event>.size, eventType: .fixed, types: ["bash_readline"], syscalls: []),
        EventKindDescriptor(kind: .program, abi: UInt32(VIGIL_EVENT_PROGRAM.rawValue), category: "other", sensor: "bundle", record: "", recordSize: 0, eventType: .fixed, types: ["program"], syscalls: []),
    ]
}

extension KindSet {
    /// Words of 64 bits that hold a bit per kind (10 kinds).
    public typealias Words = InlineArray<1, UInt64>
}

extension Names {
    /// Every kind's name, indexed by `EventKind.index`.
    static let kinds: [StaticString] = ["exec", "fork", "exit", "open", "syscall", "conn", "tcpdrop", "fim", "shell", "program"]
    /// Every kind's evt.type names (the table's `types`), one kind after another.
    static let eventTypes: [StaticString] = ["execve", "execveat", "clone", "clone3", "fork", "vfork", "procexit", "open", "openat", "openat2", "creat", "tcp_connect", "tcp_accept", "tcp_close", "tcp_retransmit", "tcp_drop", "fim_change", "bash_readline", "program"]
    /// Where each kind's names start in `eventTypes`, by `EventKind.index`.
    static let eventTypeStart: [Int] = [0, 2, 6, 7, 11, 11, 15, 16, 17, 18]
}

extension Payload {
    /// The event kind of this payload.
    public var kind: EventKind {
        switch self {
        case .exec: .exec
        case .fork: .fork
        case .exit: .exit
        case .open: .open
        case .syscall: .syscall
        case .conn: .conn
        case .tcpdrop: .tcpdrop
        case .fim: .fim
        case .shell: .shell
        case .program: .program
        }
    }
}

extension EventDecoder {
    /// The payload of a record of `kind` (`vigil_event_header.kind`), decoded by its kind's
    /// decoder; nil for an unknown kind or a record its decoder refuses.
    @inline(__always)
    mutating func decodePayload(kind: UInt32, _ record: UnsafeRawBufferPointer) -> Payload? {
        switch kind {
        case UInt32(VIGIL_EVENT_EXEC.rawValue): decodeExec(record)
        case UInt32(VIGIL_EVENT_FORK.rawValue): decodeFork(record)
        case UInt32(VIGIL_EVENT_EXIT.rawValue): decodeExit(record)
        case UInt32(VIGIL_EVENT_OPEN.rawValue): decodeOpen(record)
        case UInt32(VIGIL_EVENT_SYSCALL.rawValue): decodeSyscall(record)
        case UInt32(VIGIL_EVENT_CONN.rawValue): decodeConn(record)
        case UInt32(VIGIL_EVENT_TCPDROP.rawValue): decodeTCPDrop(record)
        case UInt32(VIGIL_EVENT_SHELL.rawValue): decodeShell(record)
        default: nil
        }
    }
}
