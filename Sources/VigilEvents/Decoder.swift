import CVigilABI

/// Turns ring-buffer records (structs of vigil_abi.h) into `Event`s. Checks kind and sizes;
/// a record it does not understand gives nil and is counted by the caller.
public struct EventDecoder: Sendable {
    /// Nanoseconds to add to a boot-clock timestamp to get Unix time.
    public var bootToEpochNs: Int64

    /// A decoder converting boot-clock times with the given offset (see `BootClock`).
    public init(bootToEpochNs: Int64) { self.bootToEpochNs = bootToEpochNs }

    /// Decodes one record, or nil when it is too short or of an unknown kind.
    public func decode(_ record: UnsafeRawBufferPointer) -> Event? {
        guard record.count >= MemoryLayout<vigil_event_header>.size else { return nil }
        let header = record.loadUnaligned(as: vigil_event_header.self)
        guard Int(header.size) <= record.count else { return nil }
        let payload: Payload
        switch header.kind {
        case UInt32(VIGIL_EVENT_EXEC.rawValue): guard let p = decodeExec(record) else { return nil }; payload = p
        case UInt32(VIGIL_EVENT_FORK.rawValue): guard let p = decodeFork(record) else { return nil }; payload = p
        case UInt32(VIGIL_EVENT_EXIT.rawValue): guard let p = decodeExit(record) else { return nil }; payload = p
        case UInt32(VIGIL_EVENT_OPEN.rawValue): guard let p = decodeOpen(record) else { return nil }; payload = p
        default: return nil
        }
        let comm = withUnsafeBytes(of: header.comm) { ByteString($0.prefix { $0 != 0 }) }
        return Event(bootTimeNs: header.ts_ns, timeNs: UInt64(Int64(header.ts_ns) &+ bootToEpochNs),
                     cgroupID: header.cgroup_id, pid: header.pid, tid: header.tid, ppid: header.ppid,
                     uid: header.uid, gid: header.gid, cpu: header.cpu, mountNamespace: header.mnt_ns,
                     pidNamespace: header.pid_ns, comm: comm, payload: payload)
    }

    private func decodeExec(_ record: UnsafeRawBufferPointer) -> Payload? {
        let fixed = MemoryLayout<vigil_exec_event>.size
        guard record.count >= fixed else { return nil }
        let e = record.loadUnaligned(as: vigil_exec_event.self)
        let lengths = [Int(e.filename_len), Int(e.args_len), Int(e.cwd_len)]
        guard fixed + lengths.reduce(0, +) <= record.count else { return nil }
        var cursor = fixed
        func take(_ n: Int) -> UnsafeRawBufferPointer.SubSequence {
            defer { cursor += n }
            return record[cursor..<(cursor + n)]
        }
        let filename = ByteString(take(lengths[0]))
        let argBytes = take(lengths[1])
        let cwd = ByteString(take(lengths[2]))
        var arguments = argBytes.split(separator: 0, omittingEmptySubsequences: false).map { ByteString($0) }
        if argBytes.last == 0 { arguments.removeLast() }
        let tty = withUnsafeBytes(of: e.tty) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let ttyNumber = tty.isEmpty ? 0 : ttyNumberOf(major: e.tty_major, minor: e.tty_minor)
        return .exec(.init(filename: filename, executablePath: PathResolution.resolve(filename, against: cwd),
                           arguments: arguments, argumentsTruncated: e.flags & UInt32(VIGIL_EXEC_ARGS_TRUNCATED.rawValue) != 0,
                           cwd: cwd, tty: tty, ttyNumber: ttyNumber, loginUID: e.loginuid, startTimeNs: e.start_time_ns))
    }

    private func decodeFork(_ record: UnsafeRawBufferPointer) -> Payload? {
        guard record.count >= MemoryLayout<vigil_fork_event>.size else { return nil }
        let e = record.loadUnaligned(as: vigil_fork_event.self)
        return .fork(.init(childPID: e.child_pid, childTID: e.child_tid, isThread: e.is_thread != 0,
                           childStartTimeNs: e.child_start_time_ns))
    }

    private func decodeExit(_ record: UnsafeRawBufferPointer) -> Payload? {
        guard record.count >= MemoryLayout<vigil_exit_event>.size else { return nil }
        let e = record.loadUnaligned(as: vigil_exit_event.self)
        return .exit(.init(status: e.exit_code, startTimeNs: e.start_time_ns, durationNs: e.duration_ns))
    }

    private func decodeOpen(_ record: UnsafeRawBufferPointer) -> Payload? {
        let fixed = MemoryLayout<vigil_open_event>.size
        guard record.count >= fixed else { return nil }
        let e = record.loadUnaligned(as: vigil_open_event.self)
        let nameEnd = fixed + Int(e.name_len), baseEnd = nameEnd + Int(e.base_len)
        guard baseEnd <= record.count else { return nil }
        let name = ByteString(record[fixed..<nameEnd])
        let base = ByteString(record[nameEnd..<baseEnd])
        let baseUnknown = e.flags & UInt32(VIGIL_OPEN_BASE_UNKNOWN.rawValue) != 0
        let path = baseUnknown ? name : PathResolution.resolve(name, against: base)
        let syscall: String
        switch e.syscall {
        case UInt32(VIGIL_OPEN_OPEN.rawValue): syscall = "open"
        case UInt32(VIGIL_OPEN_OPENAT2.rawValue): syscall = "openat2"
        default: syscall = "openat"
        }
        let truncatedMask = UInt32(VIGIL_OPEN_BASE_TRUNCATED.rawValue | VIGIL_OPEN_NAME_TRUNCATED.rawValue)
        var open = Payload.Open(syscall: syscall, name: name, path: path, flags: e.flags_arg, mode: e.mode,
                                dirfd: e.dirfd, result: e.result, truncated: e.flags & truncatedMask != 0)
        open.killedInKernel = e.flags & UInt32(VIGIL_OPEN_KILLED.rawValue) != 0
        return .open(open)
    }
}

/// tty_nr as /proc/PID/stat encodes it.
func ttyNumberOf(major: UInt32, minor: UInt32) -> UInt32 {
    (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)
}

/// Lexical path resolution on bytes (no file system access).
public enum PathResolution {
    /// `name` if absolute, else `base/name`; then `.`, `..` and repeated slashes folded.
    public static func resolve(_ name: ByteString, against base: ByteString) -> ByteString {
        let slash = UInt8(ascii: "/")
        let joined = name.bytes.first == slash || base.isEmpty ? name.bytes : base.bytes + [slash] + name.bytes
        return clean(ByteString(joined))
    }

    /// Folds `.`, `..` and repeated slashes of an absolute or relative path.
    public static func clean(_ path: ByteString) -> ByteString {
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        let absolute = path.bytes.first == slash
        var parts: [ArraySlice<UInt8>] = []
        for part in path.bytes.split(separator: slash) {
            if part.elementsEqual([dot]) { continue }
            if part.elementsEqual([dot, dot]) {
                if let last = parts.last, !last.elementsEqual([dot, dot]) { parts.removeLast(); continue }
                if absolute { continue }
            }
            parts.append(part)
        }
        var out: [UInt8] = absolute ? [slash] : []
        for (i, part) in parts.enumerated() {
            if i > 0 { out.append(slash) }
            out.append(contentsOf: part)
        }
        return ByteString(out.isEmpty ? [dot] : out)
    }
}
