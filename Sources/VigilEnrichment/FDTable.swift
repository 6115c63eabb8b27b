import Foundation
import VigilEvents

/// The fd table of every process: what each open fd refers to, so an event on an fd (read,
/// write, fstat, sendto...) knows its path or socket and its type. Seeded from /proc/PID/fd at
/// start (and for a process first seen later), then kept by events, driven by the syscall
/// table's flags and parameter types rather than a list of syscall names:
/// - an fd-creating syscall (`SyscallFlags.fdCreate`) that succeeded adds its result (or the
///   two fds of an `fdPair` parameter); its type comes from a path parameter (file, or directory
///   with O_DIRECTORY), an address family parameter (socket), the anonymous kind its name's stem
///   gives (eventfd, epoll, memfd...), or the fd it was made from (dup*, accept*, fcntl F_DUPFD*);
///   close-on-exec from an open/socket flags parameter holding O_CLOEXEC (MFD_CLOEXEC for memfd);
/// - an fd-closing one (`fdClose`) removes its fd, or the range of close_range (or marks it
///   close-on-exec with CLOSE_RANGE_CLOEXEC);
/// - exec drops the close-on-exec fds, fork gives the child a copy of the parent's table
///   (threads share their process's), exit drops the table;
/// - the file sensor's open events add their fd with the path, device and inode the kernel read.
/// Driven by one thread (the event pipeline).
public final class FDTable {
    private var tables: [UInt32: ProcessFDs] = [:]
    /// The table last used and its pid (a run of events of one process finds it without
    /// hashing); nil whenever `tables` gains or loses a process.
    private var last: (pid: UInt32, table: ProcessFDs)?
    private let procRoot: String
    /// Socket inode -> type, per network namespace (the inode of /proc/PID/ns/net), read from
    /// /proc/PID/net when a seeded socket is not yet known.
    private var socketTypes: [UInt64: [UInt64: FDType]] = [:]
    /// The names given to fds made from a path argument, interned: a path opened again shares
    /// the name's storage, which the JSON memo's key of the fd's fields is (`OpenKey`), so the
    /// loop that opens, reads and closes one file has its fd fields rendered once, not per open.
    private var names = ByteStringCache()
    /// Where a path argument's text is built before it is interned.
    private var nameScratch = ByteBuffer(capacity: 256)

    /// An empty table over `procRoot`.
    public init(procRoot: String = "/proc") { self.procRoot = procRoot }

    /// Number of processes with a table.
    public var processCount: Int { tables.count }

    /// The fd `fd` of process `pid`, nil when not known.
    public func entry(pid: UInt32, fd: Int32) -> FDInfo? { known(pid)?[fd] }

    /// Every known fd of process `pid`.
    public func entries(pid: UInt32) -> [Int32: FDInfo]? { known(pid)?.entries }

    /// The table of `pid`, nil when it has none.
    @inline(__always)
    private func known(_ pid: UInt32) -> ProcessFDs? {
        if let last, last.pid == pid { return last.table }
        guard let table = tables[pid] else { return nil }
        last = (pid, table)
        return table
    }

    /// Sets (or with nil removes) the table of `pid`.
    private func set(_ pid: UInt32, _ table: ProcessFDs?) {
        last = nil
        tables[pid] = table
    }

    /// Reads the fds of every process under the proc root.
    public func seed() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: procRoot) else { return }
        for entry in entries {
            guard let pid = UInt32(entry) else { continue }
            set(pid, ProcessFDs(read(pid: pid)))
        }
    }

    /// The fds of `pid` from /proc/PID/fd (empty when the process is gone).
    func read(pid: UInt32) -> [Int32: FDInfo] {
        let dir = "\(procRoot)/\(pid)/fd"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [:] }
        var table: [Int32: FDInfo] = [:]
        var info = stat()
        for name in names {
            guard let fd = Int32(name), let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\(name)") else { continue }
            var entry = FDInfo(number: fd, type: FDType(procLink: link), name: ByteString(link))
            if stat("\(dir)/\(name)", &info) == 0 {
                entry.inode = UInt64(info.st_ino)
                entry.device = UInt64(info.st_dev)
                if entry.type == .file, info.st_mode & S_IFMT == S_IFDIR { entry.type = .directory }
            }
            if entry.type == .memfd { entry.name = ByteString(String(link.dropFirst())) } // "/memfd:NAME (deleted)"
            if entry.type == .socket { entry.type = socketType(inode: entry.inode, pid: pid) }
            if let text = try? String(contentsOfFile: "\(procRoot)/\(pid)/fdinfo/\(name)", encoding: .utf8),
               let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags:") }),
               let flags = UInt32(line.dropFirst("flags:".count).trimmingCharacters(in: .whitespaces), radix: 8) {
                entry.closeOnExec = flags & Self.oCloexec != 0
            }
            table[fd] = entry
        }
        return table
    }

    /// The family of a socket of `pid` by its inode, from the /proc/PID/net tables of its
    /// network namespace; `.socket` when none lists it.
    private func socketType(inode: UInt64, pid: UInt32) -> FDType {
        var info = stat()
        guard stat("\(procRoot)/\(pid)/ns/net", &info) == 0 else { return .socket }
        let namespace = UInt64(info.st_ino)
        if socketTypes[namespace] == nil {
            var types: [UInt64: FDType] = [:]
            let files: [(String, FDType, Int)] = [("tcp", .ipv4, 9), ("udp", .ipv4, 9), ("raw", .ipv4, 9), ("udplite", .ipv4, 9),
                                                  ("tcp6", .ipv6, 9), ("udp6", .ipv6, 9), ("raw6", .ipv6, 9), ("udplite6", .ipv6, 9),
                                                  ("unix", .unix, 6), ("netlink", .netlink, 9)]
            for (file, type, column) in files {
                guard let text = try? String(contentsOfFile: "\(procRoot)/\(pid)/net/\(file)", encoding: .utf8) else { continue }
                for line in text.split(separator: "\n").dropFirst() {
                    let columns = line.split(separator: " ", omittingEmptySubsequences: true)
                    if columns.count > column, let ino = UInt64(columns[column]) { types[ino] = type }
                }
            }
            socketTypes[namespace] = types
        }
        return socketTypes[namespace]?[inode] ?? .socket
    }

    /// O_CLOEXEC (also SOCK_CLOEXEC, EFD_/SFD_/TFD_/IN_/EPOLL_CLOEXEC: the same bit).
    static let oCloexec: UInt32 = 0o2000000
    /// O_DIRECTORY.
    static let oDirectory: UInt32 = 0o200000

    /// Updates the table from `event` and sets `event.fd`: the fd it acts on, or the one it made.
    public func apply(_ event: inout Event) {
        // A syscall's payload is read where the event holds it (matched in the switch below,
        // it was copied, its strings retained, per event); the event is set after.
        if event.kind == .syscall {
            guard let index = event.syscallIndex, Self.touchesFDs[index] else { return }
            let table = ensured(event.pid)
            guard case .syscall(let s) = event.payload else { return }
            let (entry, nameChanged) = apply(s, to: table)
            event.setFD(entry)
            event.fdNameChanged = nameChanged
            return
        }
        switch event.payload {
        case .fork(let f):
            guard !f.isThread else { return }
            set(f.childPID, ensured(event.pid).copy())
        case .exec:
            guard let table = known(event.pid) else { return }
            if table.contains(where: \.closeOnExec) { table.removeAll(where: \.closeOnExec) }
        case .exit:
            set(event.pid, nil)
        case .open(let o):
            guard o.result >= 0 else { return }
            let fd = Int32(truncatingIfNeeded: o.result)
            let entry = FDInfo(number: fd, type: o.flags & Self.oDirectory != 0 ? .directory : .file,
                               closeOnExec: o.flags & Self.oCloexec != 0, name: o.path, inode: o.inode, device: o.device)
            ensured(event.pid)[fd] = entry
            event.setFD(entry)
        case .syscall:
            return // above
        case .conn, .tcpdrop:
            return // a connection's ends are in its payload; the opener may be any of its fds' holders
        case .fim:
            return // made in userspace after the change, its fds are not known
        case .shell:
            return // a line read changes no fd
        case .program:
            return // a bundle's record says nothing Vigil knows of fds
        }
    }

    /// Per syscall row (indexed like `Syscalls.all`): whether the call acts on, makes or closes
    /// fds (`usesFD`, `fdCreate`, `fdClose`), made once rather than a flag set built per event.
    static let touchesFDs: [Bool] = Syscalls.all.map { !$0.flags.isDisjoint(with: [.usesFD, .fdCreate, .fdClose]) }

    /// The table of `pid`, its fds read from /proc when it has none (a process that started
    /// before the table was seeded and was not seen forking).
    private func ensured(_ pid: UInt32) -> ProcessFDs {
        if let table = known(pid) { return table }
        let table = ProcessFDs(read(pid: pid))
        set(pid, table)
        last = (pid, table)
        return table
    }

    /// Argument `i` of `s` as bytes (`SyscallArguments.bytes`), the string kept in `names` when
    /// the same bytes came last to its slot.
    private func internedArgument(_ s: Payload.Syscall, _ i: Int) -> ByteString {
        nameScratch.removeAll()
        SyscallArguments.append(s, i, to: &nameScratch)
        return nameScratch.withUnsafeBytes { names.string($0) }
    }

    /// Applies one syscall to a process's table; returns the fd the call acted on or made, and
    /// whether the call changed the name of the fd it acted on.
    func apply(_ s: borrowing Payload.Syscall, to table: ProcessFDs) -> (FDInfo?, nameChanged: Bool) {
        var nameChanged = false
        let fd = apply(s, to: table, nameChanged: &nameChanged)
        return (fd, nameChanged)
    }

    private func apply(_ s: Payload.Syscall, to table: ProcessFDs, nameChanged: inout Bool) -> FDInfo? {
        let flags = s.flags
        let params = s.params
        // The fd it acts on: its first fd parameter.
        var acted: FDInfo?
        var actedIndex = -1
        for (i, p) in params.prefix(6).enumerated() where p.type == .fd {
            actedIndex = i
            let n = Int32(truncatingIfNeeded: s.args[i])
            if n >= 0 { acted = table[n] ?? FDInfo(number: n, type: .unknown) }
            break
        }
        // A socket's ends, role and state (connect also when it returned EINPROGRESS).
        // (Nothing to do for a call that does not act on sockets, on an fd of no socket.)
        if let n = acted?.number, SocketTracking.acts(s) || acted?.hasSocket == true,
           var entry = table[n] ?? (s.hasSocketTuple ? FDInfo(number: n, type: .socket) : nil),
           SocketTracking.apply(s, to: &entry) {
            nameChanged = entry.name != (table[n]?.name ?? ByteString([UInt8]()))
            table[n] = entry
            acted = entry
        }
        if s.failedCall { return acted }
        if flags.contains(.fdClose), actedIndex >= 0 {
            let first = Int32(truncatingIfNeeded: s.args[actedIndex])
            if params.count > actedIndex + 2 {
                // close_range(first, last, flags): CLOSE_RANGE_CLOEXEC (4) marks instead of closing.
                let last = s.args[actedIndex + 1] >= UInt64(Int32.max) ? Int32.max : Int32(s.args[actedIndex + 1])
                let cloexec = s.args[actedIndex + 2] & 4 != 0
                for fd in table.numbers where fd >= first && fd <= last {
                    if cloexec { table[fd]?.closeOnExec = true } else { table[fd] = nil }
                }
            } else {
                table[first] = nil
            }
            return acted
        }
        guard flags.contains(.fdCreate) else { return acted }
        var type: FDType?
        var closeOnExec = false
        var name = ByteString([UInt8]())
        var duplicated = false
        var stringIndex = -1
        for (i, p) in params.prefix(6).enumerated() {
            let raw = s.args[i]
            switch p.type {
            case .enumeration(.fcntl):
                // fcntl: F_DUPFD (0) and F_DUPFD_CLOEXEC (1030) duplicate; F_SETFD (2) sets FD_CLOEXEC.
                if raw == 2, let fd = acted?.number, table[fd].isSome { table[fd]?.closeOnExec = s.args[i + 1] & 1 != 0 }
                guard raw == 0 || raw == 1030 else { return table[acted?.number ?? -1] ?? acted }
                duplicated = true
                closeOnExec = raw == 1030
            case .path:
                type = .file
                name = internedArgument(s, i)
            case .flags(.open), .flags(.sockflags), .enumeration(.sock):
                if UInt32(truncatingIfNeeded: raw) & Self.oCloexec != 0 { closeOnExec = true }
                if case .flags(.open) = p.type, type == .file, UInt32(truncatingIfNeeded: raw) & Self.oDirectory != 0 { type = .directory }
            case .flags(.memfd):
                if raw & 1 != 0 { closeOnExec = true } // MFD_CLOEXEC
            case .enumeration(.af):
                type = FDType(addressFamily: raw)
            case .string where stringIndex < 0:
                stringIndex = i
            default:
                break
            }
        }
        if type == nil, !duplicated, let anonymous = FDType(creatingSyscall: s.descriptor.nameString) {
            type = anonymous
            if anonymous == .bpf || anonymous == .pidfd { closeOnExec = true } // always O_CLOEXEC
            if anonymous == .memfd, stringIndex >= 0 { // memfd_create's name, as /proc shows it
                name = ByteString("memfd:" + String(decoding: SyscallArguments.bytes(s, stringIndex).bytes, as: UTF8.self))
            }
        }
        var made: FDInfo
        if let type {
            made = FDInfo(number: -1, type: type, closeOnExec: closeOnExec, name: name)
        } else if let acted {
            made = acted // dup*, accept*, fcntl F_DUPFD*: the same file or socket
            made.closeOnExec = closeOnExec
        } else {
            made = FDInfo(number: -1, type: .unknown, closeOnExec: closeOnExec)
        }
        SocketTracking.made(s, &made)
        // The new fds: the result, or the two of an fd pair (pipe, socketpair).
        if case .fd = Syscalls.all[s.index].result, s.result >= 0 {
            made.number = Int32(truncatingIfNeeded: s.result)
            table[made.number] = made
            return made
        }
        if duplicated, s.result >= 0 { // fcntl F_DUPFD*: the result is the new fd
            made.number = Int32(truncatingIfNeeded: s.result)
            table[made.number] = made
            return made
        }
        for (i, p) in params.prefix(6).enumerated() where p.type == .fdPair {
            guard let pair = s.captured(i), pair.count >= 8 else { continue }
            var first: FDInfo?
            for k in 0..<2 {
                var v: UInt32 = 0
                for b in 0..<4 { v |= UInt32(pair[pair.startIndex + 4 * k + b]) << (8 * UInt32(b)) }
                var entry = made
                entry.number = Int32(bitPattern: v)
                table[entry.number] = entry
                if first == nil { first = entry }
            }
            return first
        }
        return acted
    }
}
