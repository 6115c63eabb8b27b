import CVigilABI
import VigilBPF
import VigilEvents
import VigilRules
#if canImport(Glibc)
import Glibc
#endif

/// What the file sensor's path maps hold (open_paths, open_basenames, kill_comms), kept by
/// `Sensors` so that a new pushdown writes only what changed and deletes what is stale.
struct InstalledOpenPaths {
    struct TrieKey: Hashable { var path: [UInt8]; var exact: Bool }
    struct CommKey: Hashable { var rule: UInt32; var comm: String }

    var trie: [TrieKey: vigil_path_rule] = [:]
    var basenames: [[UInt8]: vigil_path_rule] = [:]
    var killComms: Set<CommKey> = []
    /// The files of the exact paths (stat'ed when installed and refreshed), with the trie entry of
    /// their path, and the path by file (the decoder's `LinkedNames`).
    var inodes: [FileID: vigil_path_rule] = [:]
    var names: [FileID: ByteString] = [:]
    /// The switches of the filter config (enum vigil_filter_flags) these maps need.
    var flags: UInt32 = 0
    /// Classes kept whatever the path.
    var anyPath: OpenClasses = []
}

/// The file sensor's path maps (bpf/file.bpf.c).
struct OpenPathMaps {
    let trie: TypedMap<vigil_path_key, vigil_path_rule>
    let basenames: TypedMap<vigil_basename_key, vigil_path_rule>
    let killComms: TypedMap<vigil_kill_comm_key, UInt8>
    let inodes: TypedMap<vigil_inode_key, vigil_path_rule>

    init(_ object: BPFObject) throws {
        inodes = try TypedMap(object.map(named: "open_inodes"))
        trie = try TypedMap(object.map(named: "open_paths"))
        basenames = try TypedMap(object.map(named: "open_basenames"))
        killComms = try TypedMap(object.map(named: "kill_comms"))
    }

    /// What the maps must hold for `pushdown` (nil: nothing, every open passes).
    static func contents(of pushdown: OpenPathPushdown?) throws -> InstalledOpenPaths {
        var result = InstalledOpenPaths()
        guard let pushdown else { return result }
        func rule(_ entry: OpenPathEntry) -> vigil_path_rule {
            let commands = entry.killRule.map { pushdown.killRules[$0].commands } ?? .any
            let mode: vigil_kill_comms = switch commands {
            case .any: VIGIL_KILL_ANY_COMM
            case .only: VIGIL_KILL_COMMS_ONLY
            case .except: VIGIL_KILL_COMMS_EXCEPT
            }
            return vigil_path_rule(pass: entry.pass.rawValue, kill: entry.kill.rawValue, kill_comms: UInt16(mode.rawValue), _pad: 0,
                                   kill_rule: UInt32(entry.killRule ?? 0))
        }
        for entry in try pushdown.trieEntries() {
            result.trie[.init(path: entry.path, exact: entry.exact)] = rule(entry.entry)
        }
        for (name, entry) in pushdown.basenames { result.basenames[name] = rule(entry) }
        for (index, killRule) in pushdown.killRules.enumerated() {
            switch killRule.commands {
            case .any: break
            case .only(let names), .except(let names):
                for name in names { result.killComms.insert(.init(rule: UInt32(index), comm: name)) }
            }
        }
        if pushdown.filtering { result.flags |= UInt32(VIGIL_FILTER_OPEN_PATHS.rawValue) }
        if !pushdown.killRules.isEmpty { result.flags |= UInt32(VIGIL_FILTER_OPEN_KILL.rawValue) }
        if !result.basenames.isEmpty { result.flags |= UInt32(VIGIL_FILTER_OPEN_BASENAMES.rawValue) }
        (result.inodes, result.names) = files(of: result.trie)
        // On with any exact path (whether it exists now or not): a refresh never flips it.
        if result.trie.keys.contains(where: \.exact) { result.flags |= UInt32(VIGIL_FILTER_OPEN_INODES.rawValue) }
        result.anyPath = pushdown.anyPath
        return result
    }

    /// The files the exact paths of `trie` name now (statx, symlinks followed; not opened, so no
    /// FIFO or device is touched and no kernel_kill rule sees Vigil), each with its
    /// path's entry, and the path of each file. A file two paths name (hard links of each other)
    /// keeps the classes either passes; a kill only when both kill alike.
    static func files(of trie: [InstalledOpenPaths.TrieKey: vigil_path_rule]) -> ([FileID: vigil_path_rule], [FileID: ByteString]) {
        var inodes: [FileID: vigil_path_rule] = [:], names: [FileID: ByteString] = [:]
        var devices: [UInt64: UInt64]? // mount id -> its super block's device, read when needed
        for (key, value) in trie where key.exact {
            let path = key.path.map { CChar(bitPattern: $0) } + [0]
            guard let found = StatX.file(path) else { continue } // absent now: the next refresh looks again
            // The kernel keys the file by its super block's device (f_inode->i_sb->s_dev), which is
            // st_dev except on btrfs (a device per subvolume): take it from the file's mount.
            if devices == nil { devices = Self.mountDevices() }
            let file = FileID(device: found.mountID.flatMap { devices?[$0] } ?? found.device, inode: found.inode)
            if var other = inodes[file] {
                other.pass |= value.pass
                if !same(other, value) { other.kill = 0 }
                inodes[file] = other
            } else {
                inodes[file] = value
                names[file] = ByteString(key.path)
            }
        }
        return (inodes, names)
    }

    /// The device of each mount's super block (/proc/self/mountinfo: mount id, parent id,
    /// major:minor, ...), as stat's st_dev encodes it.
    static func mountDevices() -> [UInt64: UInt64] {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return [:] }
        var devices: [UInt64: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 3)
            guard fields.count > 2, let id = UInt64(fields[0]) else { continue }
            let numbers = fields[2].split(separator: ":")
            guard numbers.count == 2, let major = UInt32(numbers[0]), let minor = UInt32(numbers[1]) else { continue }
            devices[id] = FileID.userDevice(kernel: major << 20 | (minor & 0xfffff))
        }
        return devices
    }

    /// Stats the exact paths of `installed` again (a file replaced by rename, e.g. /etc/shadow by
    /// passwd, has a new inode) and writes what changed into open_inodes; returns whether it did.
    func refreshFiles(_ installed: inout InstalledOpenPaths) throws -> Bool {
        let (wanted, names) = Self.files(of: installed.trie)
        guard names != installed.names || wanted.keys != installed.inodes.keys else { return false }
        try writeFiles(wanted, replacing: installed.inodes)
        installed.inodes = wanted
        installed.names = names
        return true
    }

    private func writeFiles(_ wanted: [FileID: vigil_path_rule], replacing installed: [FileID: vigil_path_rule]) throws {
        for (file, value) in wanted where installed[file].map({ !Self.same($0, value) }) ?? true {
            try inodes.update(Self.inodeKey(file), value)
        }
        for file in installed.keys where wanted[file] == nil { try inodes.delete(Self.inodeKey(file)) }
    }

    /// Writes the entries of `pushdown` that differ from `installed`, then deletes the stale
    /// ones; `installed` becomes what the maps hold. (The caller sets the switches.)
    func install(_ pushdown: OpenPathPushdown?, replacing installed: inout InstalledOpenPaths) throws {
        let wanted = try Self.contents(of: pushdown)
        try writeFiles(wanted.inodes, replacing: installed.inodes)
        for (key, value) in wanted.trie where installed.trie[key].map({ !Self.same($0, value) }) ?? true {
            try trie.update(Self.trieKey(key), value)
        }
        for (name, value) in wanted.basenames where installed.basenames[name].map({ !Self.same($0, value) }) ?? true {
            try basenames.update(Self.basenameKey(name), value)
        }
        for key in wanted.killComms.subtracting(installed.killComms) { try killComms.update(Self.commKey(key), 1) }
        for key in installed.trie.keys where wanted.trie[key] == nil { try trie.delete(Self.trieKey(key)) }
        for name in installed.basenames.keys where wanted.basenames[name] == nil { try basenames.delete(Self.basenameKey(name)) }
        for key in installed.killComms.subtracting(wanted.killComms) { try killComms.delete(Self.commKey(key)) }
        installed = wanted
    }

    private static func same(_ a: vigil_path_rule, _ b: vigil_path_rule) -> Bool {
        a.pass == b.pass && a.kill == b.kill && a.kill_comms == b.kill_comms && a.kill_rule == b.kill_rule
    }

    /// An exact path is stored with its NUL (prefixlen counts it), a prefix without.
    static func trieKey(_ key: InstalledOpenPaths.TrieKey) -> vigil_path_key {
        var k = vigil_path_key()
        let bytes = key.path.prefix(Int(VIGIL_PUSHDOWN_PATH_MAX) - 1)
        withUnsafeMutableBytes(of: &k.path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        k.prefixlen = UInt32(bytes.count + (key.exact ? 1 : 0)) * 8
        return k
    }

    static func inodeKey(_ file: FileID) -> vigil_inode_key {
        vigil_inode_key(ino: file.inode, dev: FileID.kernelDevice(user: file.device), _pad: 0)
    }

    static func basenameKey(_ name: [UInt8]) -> vigil_basename_key {
        var k = vigil_basename_key()
        withUnsafeMutableBytes(of: &k.name) { raw in
            for (i, b) in name.prefix(Int(VIGIL_PUSHDOWN_BASENAME_MAX) - 1).enumerated() { raw[i] = b }
        }
        return k
    }

    static func commKey(_ key: InstalledOpenPaths.CommKey) -> vigil_kill_comm_key {
        var k = vigil_kill_comm_key()
        k.rule = key.rule
        withUnsafeMutableBytes(of: &k.comm) { raw in
            for (i, b) in key.comm.utf8.prefix(15).enumerated() { raw[i] = b }
        }
        return k
    }
}

/// statx(2), which Glibc's module does not export (glibc declares it only with _GNU_SOURCE):
/// looked up once with dlsym; `struct statx` is read at its UAPI offsets (linux/stat.h).
enum StatX {
    private typealias Function = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UInt32, UnsafeMutableRawPointer) -> Int32
    private static let function: Function? = dlsym(nil, "statx").map { unsafeBitCast($0, to: Function.self) }
    private static let mask: UInt32 = 0x100 | 0x1000 // STATX_INO | STATX_MNT_ID

    /// The file at `path` (symlinks followed): its st_dev, inode and mount id (nil before
    /// Linux 5.8); nil when it does not exist or statx is missing.
    static func file(_ path: [CChar]) -> (device: UInt64, inode: UInt64, mountID: UInt64?)? {
        guard let function else { return nil }
        var buffer = [UInt8](repeating: 0, count: 256) // sizeof(struct statx) is 256
        let ok = buffer.withUnsafeMutableBytes { raw in
            path.withUnsafeBufferPointer { function(AT_FDCWD, $0.baseAddress!, 0, mask, raw.baseAddress!) } == 0
        }
        guard ok else { return nil }
        return buffer.withUnsafeBytes { raw in
            let returned = raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self)      // stx_mask
            let inode = raw.loadUnaligned(fromByteOffset: 32, as: UInt64.self)        // stx_ino
            let major = raw.loadUnaligned(fromByteOffset: 136, as: UInt32.self)       // stx_dev_major
            let minor = raw.loadUnaligned(fromByteOffset: 140, as: UInt32.self)       // stx_dev_minor
            let mountID = raw.loadUnaligned(fromByteOffset: 144, as: UInt64.self)     // stx_mnt_id
            return (FileID.userDevice(kernel: major << 20 | (minor & 0xfffff)), inode, returned & 0x1000 != 0 ? mountID : nil)
        }
    }
}
