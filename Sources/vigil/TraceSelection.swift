import ArgumentParser
import VigilEvents

/// What `vigil trace` shows, from --event, --set, --exclude-event and --exclude-set: Vigil's event
/// kinds (exec, fork, exit, open: their own cheap hooks) and syscalls of the table (the generic
/// syscall hook). Unknown names are errors that name the closest ones.
struct TraceSelection: Equatable {
    /// Kinds to show (`.syscall` when any syscall is selected).
    var kinds: KindSet = []
    /// This arch's syscall numbers to capture.
    var syscalls: Set<Int> = []

    /// The syscalls the kinds already report: `--set` leaves them to the kinds (no duplicates).
    static let coveredByKinds: Set<String> = EventKindDescriptor.coveredSyscalls
    /// The kinds with a capture of their own (bpf/syscalls/kinds.table): exec, fork, exit, open.
    static let legacyKinds: [EventKind] = EventKindDescriptor.ownCapture
    /// What `vigil trace` shows without --event or --set: the process and file kinds (exec, fork,
    /// exit, open); the network kinds (conn, tcpdrop) only when asked for (`--event conn`, `--set net`),
    /// and shell lines too (`--event shell`, `--set proc`: their sensor attaches to every bash binary).
    static let defaultKinds: [EventKind] = legacyKinds.filter { $0.set != "net" && $0 != .shell }

    /// The syscall category a set names (`--set`, `--exclude-set`), or an error listing them.
    static func category(_ name: String) throws -> SyscallCategories {
        guard let category = SyscallCategories(name: name) else {
            throw ValidationError("unknown set '\(name)': use \(SyscallCategories.named.map(\.name).joined(separator: ", "))")
        }
        return category
    }

    init(events: [String], sets: [String], excludeEvents: [String], excludeSets: [String]) throws {
        for name in events {
            if name == "all" {
                syscalls.formUnion(Syscalls.all.compactMap { $0.number() })
            } else if let kind = EventKind(rawValue: name), Self.legacyKinds.contains(kind) {
                kinds.insert(kind)
            } else {
                syscalls.insert(try Self.syscallNumber(name))
            }
        }
        for name in sets {
            let category = try Self.category(name)
            kinds.formUnion(KindSet(EventKindDescriptor.kinds(inCategory: name)))
            syscalls.formUnion(Syscalls.all.filter { $0.categories.contains(category) && !Self.coveredByKinds.contains($0.nameString) }
                .compactMap { $0.number() })
        }
        if events.isEmpty && sets.isEmpty { kinds = KindSet(Self.defaultKinds) }
        for name in excludeEvents {
            if let kind = EventKind(rawValue: name), Self.legacyKinds.contains(kind) {
                kinds.remove(kind)
            } else {
                syscalls.remove(try Self.syscallNumber(name))
            }
        }
        for name in excludeSets {
            let category = try Self.category(name)
            syscalls.subtract(Syscalls.all.filter { $0.categories.contains(category) }.compactMap { $0.number() })
        }
        if !syscalls.isEmpty { kinds.insert(.syscall) }
    }

    /// This arch's number of the syscall `name` (or `syscall:name`); errors name the closest
    /// syscalls, or say that this arch lacks it.
    static func syscallNumber(_ given: String) throws -> Int {
        let name = given.hasPrefix("syscall:") ? String(given.dropFirst("syscall:".count)) : given
        guard let syscall = Syscalls.named(name) else {
            throw ValidationError("unknown event '\(given)': not \(Self.legacyKinds.map(\.rawValue).joined(separator: ", ")), all or a syscall; closest syscalls: \(Syscalls.closest(to: name).joined(separator: ", "))")
        }
        guard let number = syscall.number() else {
            throw ValidationError("syscall '\(name)' does not exist on \(SyscallArch.current.rawValue) (only on \(SyscallArch.allCases.filter { syscall.number(on: $0) != nil }.map(\.rawValue).joined(separator: ", ")))")
        }
        return number
    }
}
