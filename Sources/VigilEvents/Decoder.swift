import CVigilABI

/// Turns ring-buffer records (structs of vigil_abi.h) into `Event`s. Checks kind and sizes;
/// a record it does not understand gives nil and is counted by the caller. Keeps the short byte
/// strings it made (`ByteStringCache`): events that repeat a comm or a path share them.
public struct EventDecoder: Sendable {
    /// Nanoseconds to add to a boot-clock timestamp to get Unix time.
    public var bootToEpochNs: Int64
    /// Comms, paths and their parts made recently.
    private var strings = ByteStringCache()
    /// Files some rule names by exact path, by device and inode (`LinkedNames`): an open of one
    /// through another name gets the rule's name as fd.name.
    public var linkedNames = LinkedNames()

    /// A decoder converting boot-clock times with the given offset (see `BootClock`).
    public init(bootToEpochNs: Int64) { self.bootToEpochNs = bootToEpochNs }

    /// Decodes one record, or nil when it is too short or of an unknown kind.
    public mutating func decode(_ record: UnsafeRawBufferPointer) -> Event? {
        withUnsafeTemporaryAllocation(of: Event.self, capacity: 1) { memory in
            decode(record, into: memory.baseAddress!) ? memory.baseAddress!.move() : nil
        }
    }

    /// Decodes one record into `event`, uninitialized memory that it initializes when it returns
    /// true; false when the record is too short or of an unknown kind (`event` left as it was).
    /// The per-event path (`RecordPipeline`): the event is built where it stays, not returned in
    /// an optional and moved (a ~450-byte copy per event).
    public mutating func decode(_ record: UnsafeRawBufferPointer, into event: UnsafeMutablePointer<Event>) -> Bool {
        guard record.count >= MemoryLayout<vigil_event_header>.size else { return false }
        let header = record.loadUnaligned(as: vigil_event_header.self)
        guard Int(header.size) <= record.count else { return false }
        guard let payload = decodePayload(kind: header.kind, record) else { return false }
        let comm = withUnsafeBytes(of: header.comm) { raw in
            strings.string(UnsafeRawBufferPointer(rebasing: raw[..<(raw.firstIndex(of: 0) ?? raw.count)]))
        }
        // Wrapping u64 arithmetic: a record's timestamp is not trusted to fit in Int64 (vigil-fuzz
        // decoder found the trap; FuzzRegressionTests).
        event.initialize(to: Event(bootTimeNs: header.ts_ns, timeNs: header.ts_ns &+ UInt64(bitPattern: bootToEpochNs),
                                   cgroupID: header.cgroup_id, pid: header.pid, tid: header.tid, ppid: header.ppid,
                                   uid: header.uid, gid: header.gid, cpu: header.cpu, mountNamespace: header.mnt_ns,
                                   pidNamespace: header.pid_ns, comm: comm, payload: payload))
        return true
    }

    func decodeExec(_ record: UnsafeRawBufferPointer) -> Payload? {
        let fixed = MemoryLayout<vigil_exec_event>.size
        guard record.count >= fixed else { return nil }
        let e = record.loadUnaligned(as: vigil_exec_event.self)
        let filenameEnd = fixed + Int(e.filename_len), argsEnd = filenameEnd + Int(e.args_len), cwdEnd = argsEnd + Int(e.cwd_len)
        guard cwdEnd <= record.count else { return nil }
        let filename = ByteString(record[fixed..<filenameEnd])
        let cwd = ByteString(record[argsEnd..<cwdEnd])
        // argv: each argument followed by a NUL (the last one's NUL may be cut).
        var arguments: [ByteString] = []
        var start = filenameEnd
        for i in filenameEnd..<argsEnd where record[i] == 0 {
            arguments.append(ByteString(record[start..<i]))
            start = i + 1
        }
        if start < argsEnd { arguments.append(ByteString(record[start..<argsEnd])) }
        let tty = withUnsafeBytes(of: e.tty) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let ttyNumber = tty.isEmpty ? 0 : ttyNumberOf(major: e.tty_major, minor: e.tty_minor)
        return .exec(.init(filename: filename, executablePath: PathResolution.resolve(filename, against: cwd),
                           arguments: arguments, argumentsTruncated: e.flags & UInt32(VIGIL_EXEC_ARGS_TRUNCATED.rawValue) != 0,
                           cwd: cwd, tty: tty, ttyNumber: ttyNumber, loginUID: e.loginuid, startTimeNs: e.start_time_ns))
    }

    func decodeFork(_ record: UnsafeRawBufferPointer) -> Payload? {
        guard record.count >= MemoryLayout<vigil_fork_event>.size else { return nil }
        let e = record.loadUnaligned(as: vigil_fork_event.self)
        return .fork(.init(childPID: e.child_pid, childTID: e.child_tid, isThread: e.is_thread != 0,
                           childStartTimeNs: e.child_start_time_ns))
    }

    func decodeExit(_ record: UnsafeRawBufferPointer) -> Payload? {
        guard record.count >= MemoryLayout<vigil_exit_event>.size else { return nil }
        let e = record.loadUnaligned(as: vigil_exit_event.self)
        return .exit(.init(status: e.exit_code, startTimeNs: e.start_time_ns, durationNs: e.duration_ns))
    }

    mutating func decodeOpen(_ record: UnsafeRawBufferPointer) -> Payload? {
        let fixed = MemoryLayout<vigil_open_event>.size
        guard record.count >= fixed else { return nil }
        let e = record.loadUnaligned(as: vigil_open_event.self)
        let nameEnd = fixed + Int(e.name_len), baseEnd = nameEnd + Int(e.base_len)
        guard baseEnd <= record.count else { return nil }
        let nameBytes = UnsafeRawBufferPointer(rebasing: record[fixed..<nameEnd])
        let (name, nameSlot) = strings.interned(nameBytes)
        var path: ByteString, pathSlot: Int?
        var device: UInt64 = 0, inode: UInt64 = 0, linked = false
        if e.flags & UInt32(VIGIL_OPEN_FILE.rawValue) != 0 {
            // The opened file: its path as the kernel walked it (symlinks resolved).
            let fileSize = MemoryLayout<vigil_open_file>.size
            guard baseEnd + fileSize <= record.count else { return nil }
            let file = UnsafeRawBufferPointer(rebasing: record[baseEnd...]).loadUnaligned(as: vigil_open_file.self)
            let pathEnd = baseEnd + fileSize + Int(file.path_len)
            guard pathEnd <= record.count else { return nil }
            (path, pathSlot) = strings.interned(UnsafeRawBufferPointer(rebasing: record[(baseEnd + fileSize)..<pathEnd]))
            device = FileID.userDevice(kernel: file.dev)
            inode = file.ino
            if let known = linkedNames.name(FileID(device: device, inode: inode)), known != path {
                (path, pathSlot, linked) = (known, nil, true)
            }
        } else {
            let baseUnknown = e.flags & UInt32(VIGIL_OPEN_BASE_UNKNOWN.rawValue) != 0
            if baseUnknown || ((nameBytes.first == UInt8(ascii: "/") || baseEnd == nameEnd) && PathResolution.isClean(nameBytes)) {
                (path, pathSlot) = (name, nameSlot)
            } else {
                let base = UnsafeRawBufferPointer(rebasing: record[nameEnd..<baseEnd])
                PathResolution.fold(nameBytes.first == UInt8(ascii: "/") ? [nameBytes] : [base, nameBytes], into: &strings.scratch)
                (path, pathSlot) = strings.internedScratch()
            }
        }
        // A path seen before comes with its parts; else they are made (and kept with it).
        let directory: ByteString, filename: ByteString
        if let parts = strings.parts(of: path, slot: pathSlot) {
            (directory, filename) = parts
        } else {
            (directory, filename) = path.bytes.withUnsafeBytes { bytes -> (ByteString, ByteString) in
                guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return (PathParts.dot, path) }
                return (slash == 0 ? PathParts.root : strings.string(UnsafeRawBufferPointer(rebasing: bytes[..<slash])),
                        strings.string(UnsafeRawBufferPointer(rebasing: bytes[(slash + 1)...])))
            }
            strings.keep((directory, filename), of: path, slot: pathSlot)
        }
        let syscall: String
        switch e.syscall {
        case UInt32(VIGIL_OPEN_OPEN.rawValue): syscall = "open"
        case UInt32(VIGIL_OPEN_OPENAT2.rawValue): syscall = "openat2"
        default: syscall = "openat"
        }
        let truncatedMask = UInt32(VIGIL_OPEN_BASE_TRUNCATED.rawValue | VIGIL_OPEN_NAME_TRUNCATED.rawValue | VIGIL_OPEN_FILE_TRUNCATED.rawValue)
        let truncated = e.flags & truncatedMask != 0, killed = e.flags & UInt32(VIGIL_OPEN_KILLED.rawValue) != 0
        return .open(Payload.Open(syscall: syscall, name: name, path: path, directory: directory, filename: filename,
                                  flags: e.flags_arg, mode: e.mode, dirfd: e.dirfd, result: e.result, truncated: truncated,
                                  killedInKernel: killed, device: device, inode: inode,
                                  created: e.flags & UInt32(VIGIL_OPEN_CREATED.rawValue) != 0, linkedName: linked))
    }
}

/// A file by device (as stat's st_dev) and inode.
public struct FileID: Hashable, Sendable {
    /// st_dev.
    public var device: UInt64
    /// st_ino.
    public var inode: UInt64

    /// The file with this device and inode.
    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    /// glibc's major() of an st_dev.
    public static func major(_ dev: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff)) }
    /// glibc's minor() of an st_dev.
    public static func minor(_ dev: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: (dev & 0xff) | ((dev >> 12) & ~0xff)) }

    /// stat's st_dev (glibc's makedev) of a kernel dev_t (`MKDEV`: major << 20 | minor).
    public static func userDevice(kernel dev: UInt32) -> UInt64 {
        let major = UInt64(dev >> 20), minor = UInt64(dev & 0xfffff)
        return (major & 0xfff) << 8 | (major & ~0xfff) << 32 | (minor & 0xff) | (minor & ~0xff) << 12
    }

    /// The kernel's dev_t (`MKDEV`) of a stat st_dev (glibc's major/minor).
    public static func kernelDevice(user dev: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: major(dev)) << 20 | (minor(dev) & 0xfffff)
    }
}

/// Files some rule names by exact path, by device and inode: an open of one of them through
/// another name (a hard link, or a path whose symlinks lead to it) is reported with the name the
/// rule uses, so that a rule on the name catches it. Kept current by `Sensors` (it stats the
/// names when rules are installed and again every second), with the file sensor's open_inodes map.
public struct LinkedNames: Sendable {
    private var names: [FileID: ByteString] = [:]

    /// No files.
    public init() {}

    /// The table of `names` by file.
    public init(_ names: [FileID: ByteString]) { self.names = names }

    /// The name a rule gives this file, if any.
    public func name(_ file: FileID) -> ByteString? { names.isEmpty ? nil : names[file] }

    /// Whether no file is known.
    public var isEmpty: Bool { names.isEmpty }
}

/// tty_nr as /proc/PID/stat encodes it.
func ttyNumberOf(major: UInt32, minor: UInt32) -> UInt32 {
    (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)
}

/// Lexical path resolution on bytes (no file system access).
public enum PathResolution {
    /// `name` if absolute, else `base/name`; then `.`, `..` and repeated slashes folded. An
    /// absolute name that is already clean is returned as is (its storage shared, nothing made).
    public static func resolve(_ name: ByteString, against base: ByteString) -> ByteString {
        let slash = UInt8(ascii: "/")
        let absolute = name.bytes.first == slash || base.isEmpty
        if absolute && name.bytes.withUnsafeBytes({ isClean($0) }) { return name }
        var out: [UInt8] = []
        name.bytes.withUnsafeBytes { n in
            base.bytes.withUnsafeBytes { b in fold(absolute ? [n] : [b, n], into: &out) }
        }
        return ByteString(out)
    }

    /// Folds `.`, `..` and repeated slashes of an absolute or relative path.
    public static func clean(_ path: ByteString) -> ByteString {
        var out: [UInt8] = []
        path.bytes.withUnsafeBytes { fold([$0], into: &out) }
        return ByteString(out)
    }

    /// Whether folding `path` gives `path` itself: absolute, no empty, `.` or `..` component, no
    /// trailing slash (except `/` itself).
    public static func isClean(_ b: UnsafeRawBufferPointer) -> Bool {
        let n = b.count, slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        guard n > 0, b[0] == slash else { return false }
        if n == 1 { return true }
        if b[n - 1] == slash { return false }
        var i = 0
        while i < n {
            // b[i] is a slash: the component after it must be non-empty and not . or ..
            let next = i + 1
            guard next < n, b[next] != slash else { return false }
            if b[next] == dot {
                let afterDot = next + 1
                if afterDot == n || b[afterDot] == slash { return false }
                if b[afterDot] == dot && (afterDot + 1 == n || b[afterDot + 1] == slash) { return false }
            }
            var j = next
            while j < n && b[j] != slash { j += 1 }
            i = j
        }
        return true
    }

    /// Writes into `out` the parts joined by slashes, folded: absolute when the first part is;
    /// `..` above the root of an absolute path dropped, kept for a relative one; `.` when nothing
    /// is left.
    static func fold(_ parts: [UnsafeRawBufferPointer], into out: inout [UInt8]) {
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        let absolute = parts.first?.first == slash
        out.removeAll(keepingCapacity: true)
        if absolute { out.append(slash) }
        for part in parts {
            var i = 0
            let n = part.count
            while i < n {
                while i < n && part[i] == slash { i += 1 }
                var end = i
                while end < n && part[end] != slash { end += 1 }
                defer { i = end }
                let length = end - i
                if length == 0 || (length == 1 && part[i] == dot) { continue }
                if length == 2 && part[i] == dot && part[i + 1] == dot {
                    // Where the last component of `out` starts.
                    let start = (out.lastIndex(of: slash) ?? -1) + 1
                    let lastIsDotDot = out.count - start == 2 && out[start] == dot && out[start + 1] == dot
                    if out.count > start && !lastIsDotDot {
                        // Drop the last component and the slash before it (not the root's).
                        out.removeSubrange((start > 1 ? start - 1 : start)...)
                        continue
                    }
                    if absolute { continue }
                }
                if !out.isEmpty && out.last != slash { out.append(slash) }
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: part[i..<end]))
            }
        }
        if out.isEmpty { out.append(dot) }
    }
}
