import CVigilABI
import Glibc
import VigilBPF
import VigilEvents

/// How the fim sensor matched a change in the kernel (`enum vigil_fim_how`).
public struct FIMMatch: OptionSet, Sendable, Hashable {
    /// The bits.
    public var rawValue: UInt32
    /// Wraps bits.
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The fd's inode is watched (VIGIL_FIM_BY_INODE).
    public static let byInode = FIMMatch(rawValue: UInt32(VIGIL_FIM_BY_INODE.rawValue))
    /// A path names a watched file (VIGIL_FIM_BY_NAME).
    public static let byName = FIMMatch(rawValue: UInt32(VIGIL_FIM_BY_NAME.rawValue))
    /// A path names an entry of a watched directory (VIGIL_FIM_IN_DIR).
    public static let inDirectory = FIMMatch(rawValue: UInt32(VIGIL_FIM_IN_DIR.rawValue))
    /// The second path (rename's or link's new end) matched (VIGIL_FIM_SECOND).
    public static let second = FIMMatch(rawValue: UInt32(VIGIL_FIM_SECOND.rawValue))
    /// The kernel now watches `newFile` at the name (VIGIL_FIM_REKEYED).
    public static let rekeyed = FIMMatch(rawValue: UInt32(VIGIL_FIM_REKEYED.rawValue))
    /// A relative path with '/': userspace resolves it (VIGIL_FIM_UNRESOLVED).
    public static let unresolved = FIMMatch(rawValue: UInt32(VIGIL_FIM_UNRESOLVED.rawValue))
    /// The open created the file (VIGIL_FIM_CREATED).
    public static let created = FIMMatch(rawValue: UInt32(VIGIL_FIM_CREATED.rawValue))
    /// The name's new inode is not known yet: re-keyed at its next open (VIGIL_FIM_STALE).
    public static let stale = FIMMatch(rawValue: UInt32(VIGIL_FIM_STALE.rawValue))
}

/// One change the fim sensor matched in the kernel: the syscall (decoded by the one decoder, from
/// the table) and what it matched (`struct vigil_fim_match`).
public struct FIMKernelChange: Sendable {
    /// The syscall event (payload `.syscall`).
    public var event: Event
    /// The watched inode (or, for an entry change, the watched directory).
    public var file: FileID
    /// The inode the kernel now watches at the name (after a rename over it, or an open), if any.
    public var newFile: FileID?
    /// The watch's number (`FIMSensor.watchFile`'s `id`).
    public var watch: UInt32
    /// How it matched.
    public var how: FIMMatch
}

/// The fim sensor (bpf/fim.bpf.c): watched files and directories by (device, inode) and by
/// (directory, name) in kernel maps; changes to them matched in the kernel, everything else
/// dropped there and counted. Its own ring; one thread drives it.
public final class FIMSensor {
    /// The loaded object and the variant that runs.
    public let variants: LoadedVariants
    private let reader: RingBufferReader
    private var decoder: EventDecoder
    private let inodes: TypedMap<vigil_inode_key, vigil_fim_watch>
    private let names: TypedMap<vigil_fim_name_key, vigil_fim_name>
    private let dirs: TypedMap<vigil_fim_dir_key, vigil_inode_key>

    /// The syscalls whose changes the sensor matches, each with its own exit program (`NAME_exit`).
    public static let syscalls = [
        "write", "pwrite64", "writev", "pwritev", "pwritev2", "ftruncate", "fallocate", "fchmod", "fchown",
        "fsetxattr", "fremovexattr", "copy_file_range", "splice", "sendfile", "truncate", "chmod", "fchmodat", "chown", "lchown", "fchownat", "setxattr",
        "lsetxattr", "removexattr", "lremovexattr", "unlink", "unlinkat", "rmdir", "mkdir", "mkdirat", "mknod",
        "mknodat", "symlink", "symlinkat", "rename", "renameat", "renameat2", "link", "linkat", "openat", "open",
        "creat", "openat2", "fchmodat2", "setxattrat", "removexattrat", "file_setattr", "mmap",
    ]

    /// Attaches one exit program of the sensor; a syscall this kernel lacks (fchmodat2 before
    /// 6.6, setxattrat and removexattrat before 6.13, file_setattr before 6.17) has no exit
    /// tracepoint and is skipped by name: nothing can change a file through it here.
    static func attachExit(_ program: BPFProgram) throws -> Attachment {
        do {
            return Attachment(links: [try program.attach()])
        } catch let error as BPFError where error.errno == ENOENT && program.name.hasSuffix("_exit") {
            return Attachment(links: [], skipped: [String(program.name.dropLast("_exit".count))])
        }
    }

    /// Every program of the tracepoint variant on `arch`: the exit tracepoint of each of `syscalls`
    /// the arch has.
    public static func exitPrograms(on arch: SyscallArch = .current) -> [String] {
        Syscalls.present(syscalls, on: arch).map { "\($0)_exit" }
    }

    /// Every program of the tracepoint variant on this arch.
    public static let tracepointPrograms = exitPrograms()

    /// The sensor's hooks (`Sensor.fim.hooks`) with only the variants named in `only` (tests: each
    /// variant on its own).
    public static func hooks(only: [String]) -> [Hook] {
        Sensor.fim.hooks.map { Hook($0.name, variants: $0.variants.filter { only.contains($0.name) }) }
    }

    /// Loads and attaches the sensor. `maxWatches` sizes the inode and name maps; `ignorePID` is
    /// a process whose changes are not reported (Vigil's own); `variants` keeps only the hook
    /// variants named (nil: all, in order).
    public init(maxWatches: Int = 131_072, ringBytes: Int = 1 << 22, ignorePID: UInt32 = 0, variants only: [String]? = nil) throws {
        let hooks = only.map { Self.hooks(only: $0) } // nil: Sensor.fim.hooks
        variants = try Sensor.fim.load(hooks: hooks, configure: { object in
            try object.map(named: "events").setMaxEntries(ringBytes)
            try object.map(named: "fim_inodes").setMaxEntries(maxWatches)
            try object.map(named: "fim_names").setMaxEntries(maxWatches)
            try object.setGlobal("vigil_ignore_tgid", to: ignorePID)
            // the fd writes' typed inode lookup (no probe reads) where the kernel has the kfunc
            try object.setGlobal("vigil_rdonly_cast", to: KernelFunctions.rdonlyCast)
            // sensor.bpf.h's filter maps come with its path walk; the fim sensor has no filters
            for unused in ["comm_include", "comm_exclude", "pids", "uids", "cgroups"] {
                try object.map(named: unused).setMaxEntries(1)
            }
        })
        let object = variants.object
        reader = try RingBufferReader(map: object.map(named: "events"))
        decoder = EventDecoder(bootToEpochNs: BootClock.offsetToEpochNs())
        inodes = try TypedMap(object.map(named: "fim_inodes"))
        names = try TypedMap(object.map(named: "fim_names"))
        dirs = try TypedMap(object.map(named: "fim_dirs"))
    }

    /// Watches file `path` (absolute, as seen from `root`) as watch `id` (> 0): its inode, its
    /// name in its directory (so a rename or creation over the name is seen and re-keyed), and
    /// the directory. A file that does not exist yet is watched by name. `root` is the directory
    /// the path starts from: `/` (this host), or a container's root (`/proc/PID/root` of a
    /// process in it), whose files the kernel then matches by the (device, inode) its processes
    /// see, and whose absolute paths by the text they write.
    public func watchFile(_ path: String, id: UInt32, root: String = "/") throws {
        let (dir, name) = Self.split(path)
        let dirKey = try Self.key(of: Self.join(root, dir))
        try addFlags(dirKey, id: id, VIGIL_FIM_PARENT.rawValue)
        try dirs.update(Self.dirKey(try rootKey(root), dir), dirKey)
        var file = vigil_inode_key()
        if let k = try? Self.key(of: Self.join(root, path)) {
            file = k
            try inodes.update(k, vigil_fim_watch(id: id, flags: UInt32(VIGIL_FIM_FILE.rawValue)))
        }
        try names.update(Self.nameKey(dirKey, name), vigil_fim_name(file: file, watch: vigil_fim_watch(id: id, flags: UInt32(VIGIL_FIM_FILE.rawValue))))
    }

    /// Watches directory `path` (as seen from `root`, as `watchFile`) as watch `id`: entries
    /// created, renamed, linked or removed in it, and every file in it (by inode); with
    /// `recursive`, its subdirectories the same way. Returns the number of inodes it added.
    @discardableResult
    public func watchDirectory(_ path: String, id: UInt32, recursive: Bool, root: String = "/") throws -> Int {
        let full = Self.join(root, path)
        let dirKey = try Self.key(of: full)
        try addFlags(dirKey, id: id, VIGIL_FIM_DIR.rawValue)
        try dirs.update(Self.dirKey(try rootKey(root), path), dirKey)
        var added = 1
        guard let dir = opendir(full) else { throw Self.error("opendir", full, errno) }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let child = path == "/" ? "/\(name)" : "\(path)/\(name)"
            var st = stat()
            guard lstat(Self.join(root, child), &st) == 0 else { continue } // gone meanwhile
            if (st.st_mode & S_IFMT) == S_IFDIR {
                if recursive { added += try watchDirectory(child, id: id, recursive: true, root: root) }
            } else {
                try inodes.update(Self.key(st), vigil_fim_watch(id: id, flags: UInt32(VIGIL_FIM_FILE.rawValue)))
                added += 1
            }
        }
        return added
    }

    /// Watches only the entries of directory `path` as watch `id` (created, renamed, linked or
    /// removed in it), not the files in it: the nearest existing ancestor of a watched file
    /// whose directory does not exist yet, so its making is seen. A directory already watched
    /// keeps its watch. `path` is as seen from `root` (as `watchFile`).
    public func watchEntries(of path: String, id: UInt32, root: String = "/") throws {
        let dirKey = try Self.key(of: Self.join(root, path))
        var watch = try inodes.lookup(dirKey) ?? vigil_fim_watch(id: id, flags: 0)
        guard watch.flags & UInt32(VIGIL_FIM_DIR.rawValue) == 0 else { return }
        watch.id = id
        watch.flags |= UInt32(VIGIL_FIM_DIR.rawValue)
        try inodes.update(dirKey, watch)
        try dirs.update(Self.dirKey(try rootKey(root), path), dirKey)
    }

    /// Forgets inode `file` (a container's files once it is gone): its watch leaves the kernel.
    public func unwatch(_ file: FileID) throws {
        try inodes.delete(vigil_inode_key(ino: file.inode, dev: FileID.kernelDevice(user: file.device), _pad: 0))
    }

    /// The (device, inode) key of root directory `root` (fim_dirs keys start with it: the task's
    /// fs->root in the kernel).
    private func rootKey(_ root: String) throws -> vigil_inode_key {
        try Self.key(of: root)
    }

    /// `path` (absolute) under `root` (`/`: itself).
    static func join(_ root: String, _ path: String) -> String {
        root == "/" || root.isEmpty ? path : (root.hasSuffix("/") ? String(root.dropLast()) : root) + path
    }

    /// The watch the kernel holds for inode `file`, if any: (id, flags).
    public func watch(of file: FileID) throws -> (id: UInt32, flags: UInt32)? {
        try inodes.lookup(vigil_inode_key(ino: file.inode, dev: FileID.kernelDevice(user: file.device), _pad: 0)).map { ($0.id, $0.flags) }
    }

    /// The inode the kernel holds at watched name `path` (nil: not a watched name; inode 0: stale).
    public func watchedInode(atName path: String, root: String = "/") throws -> FileID? {
        let (dir, name) = Self.split(path)
        guard let value = try names.lookup(Self.nameKey(try Self.key(of: Self.join(root, dir)), name)) else { return nil }
        return FileID(device: value.file.ino == 0 ? 0 : FileID.userDevice(kernel: value.file.dev), inode: value.file.ino)
    }

    /// Number of inodes in the kernel's watch map.
    public func inodeCount() throws -> Int { try inodes.keys().count }

    /// Waits up to `timeoutMilliseconds` for records and hands each change to `body`; returns
    /// how many records were read.
    @discardableResult
    public func poll(timeoutMilliseconds: Int32, _ body: (FIMKernelChange) throws -> Void) throws -> Int {
        try reader.poll(timeoutMilliseconds: timeoutMilliseconds) { batch in
            for record in batch { if let change = decode(record) { try body(change) } }
        }
    }

    /// The sensor's counters (emitted, filtered, lost), summed over CPUs.
    public func counters() throws -> SensorCounters {
        try Sensors.counters(of: variants.object).reduce(SensorCounters(), +)
    }

    /// Decodes one record: the syscall by the one decoder, then the match after its data.
    func decode(_ record: UnsafeRawBufferPointer) -> FIMKernelChange? {
        guard let event = decoder.decode(record) else { return nil }
        let fixed = MemoryLayout<vigil_syscall_event>.size
        let e = record.loadUnaligned(as: vigil_syscall_event.self)
        guard e.flags & UInt16(VIGIL_SYSCALL_FIM.rawValue) != 0 else { return nil }
        // after the data and the socket tuple, if any (fim.bpf.c appends none), 8-aligned
        var end = fixed + Int(e.data_len)
        if e.flags & UInt16(VIGIL_SYSCALL_SOCKET.rawValue) != 0 { end += MemoryLayout<vigil_socket_tuple>.size }
        let at = (end + 7) & ~7
        guard at + MemoryLayout<vigil_fim_match>.size <= record.count else { return nil }
        let m = record.loadUnaligned(fromByteOffset: at, as: vigil_fim_match.self)
        func id(_ k: vigil_inode_key) -> FileID { FileID(device: FileID.userDevice(kernel: k.dev), inode: k.ino) }
        return FIMKernelChange(event: event, file: id(m.file), newFile: m.new_file.ino == 0 ? nil : id(m.new_file),
                               watch: m.id, how: FIMMatch(rawValue: m.how))
    }

    private func addFlags(_ key: vigil_inode_key, id: UInt32, _ flag: UInt32) throws {
        var watch = try inodes.lookup(key) ?? vigil_fim_watch(id: id, flags: 0)
        if flag == UInt32(VIGIL_FIM_DIR.rawValue) { watch.id = id }
        watch.flags |= flag
        try inodes.update(key, watch)
    }

    static func split(_ path: String) -> (dir: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let dir = String(path[..<slash])
        return (dir.isEmpty ? "/" : dir, String(path[path.index(after: slash)...]))
    }

    static func key(_ st: stat) -> vigil_inode_key {
        vigil_inode_key(ino: UInt64(st.st_ino), dev: FileID.kernelDevice(user: UInt64(st.st_dev)), _pad: 0)
    }

    static func key(of path: String) throws -> vigil_inode_key {
        var st = stat()
        guard stat(path, &st) == 0 else { throw error("stat", path, errno) }
        return key(st)
    }

    static func nameKey(_ dir: vigil_inode_key, _ name: String) -> vigil_fim_name_key {
        var k = vigil_fim_name_key()
        k.dir = dir
        withUnsafeMutableBytes(of: &k.name) { raw in
            for (i, byte) in name.utf8.prefix(Int(VIGIL_FIM_NAME_MAX) - 1).enumerated() { raw[i] = byte }
        }
        return k
    }

    static func dirKey(_ root: vigil_inode_key, _ path: String) -> vigil_fim_dir_key {
        var k = vigil_fim_dir_key()
        k.root = root
        withUnsafeMutableBytes(of: &k.path) { raw in
            for (i, byte) in path.utf8.prefix(Int(VIGIL_FIM_PATH_MAX) - 1).enumerated() { raw[i] = byte }
        }
        return k
    }

    static func error(_ operation: String, _ path: String, _ err: Int32) -> BPFError {
        BPFError(.invalidArgument, operation: "FIMSensor.\(operation)", target: path, errno: err,
                 message: "\(path): \(String(cString: strerror(err)))")
    }
}
