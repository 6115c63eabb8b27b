import VigilBPF
import VigilEvents
#if canImport(Glibc)
import Glibc
#endif

/// The files the shell sensor's probes (bpf/shell.bpf.c: readline's entry and return) are attached
/// to, each once by (device, inode). A uprobe belongs to one file, so every bash binary needs its
/// own: the host's, and each container's (another file, in the container's root; a probe on the
/// host's /bin/bash never fires there).
///
/// Found at load (`attachAtLoad`): the host's usual paths (/bin/bash, /usr/bin/bash,
/// /usr/local/bin/bash), the same paths under /proc/PID/root of every process whose root is not
/// the host's (the containers running then: one stat per path per process, de-duplicated by the
/// root's (device, inode)), and the executable of every running process named like a shell. Later:
/// a process that executes a file named bash, rbash or sh (`attach(exec:)`, from the exec event,
/// its path under /proc/PID/root). A binary without a `readline` symbol (a bash linked with a
/// shared libreadline) gets the libreadline that process maps instead (then every program calling
/// readline in that library is reported, its proc.name telling which). Files are tried once:
/// found without readline (dash as sh), they are remembered and not opened again (unless the
/// process had not mapped its libraries yet: then the next exec of that file tries again).
///
/// Each overlay mount shows its own device, so two containers of one image are two keys here and
/// get probes twice on the same underlying file: the BPF program reports one line per return
/// (the entry's mark is consumed once). Probes are not detached when their container goes: they
/// stay until the sensor is unloaded (two links per file).
///
/// Not thread-safe: driven by the thread that drives `Sensors`.
final class ShellBinaries {
    /// A file's identity.
    struct FileKey: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    /// The paths looked at on the host and under each container's root.
    static let usualPaths = ["/bin/bash", "/usr/bin/bash", "/usr/local/bin/bash"]
    /// The executable names that may be bash (sh is bash on some distributions).
    static let shellNames: Set<String> = ["bash", "rbash", "sh"]

    /// Every file tried: true, probes attached; false, no readline in it (or attach failed).
    private(set) var tried: [FileKey: Bool] = [:]
    /// The files attached, as the path they were attached through.
    private(set) var attached: [String] = []
    /// Roots already looked at, by (device, inode) of /proc/PID/root.
    private var roots: Set<FileKey> = []
    /// The procfs to read (tests may point elsewhere).
    let procRoot: String

    init(procRoot: String = "/proc") { self.procRoot = procRoot }

    static func key(_ path: String) -> FileKey? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG || (st.st_mode & S_IFMT) == S_IFDIR else { return nil }
        return FileKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// Attaches to the host's bash, the containers' running now and every running shell's
    /// executable; returns the links made.
    func attachAtLoad(_ object: BPFObject) -> [BPFLink] {
        var links: [BPFLink] = []
        if let hostRoot = Self.key("/") { roots.insert(hostRoot) }
        for path in Self.usualPaths { links += attach(path, pid: nil, object) }
        guard let dir = opendir(procRoot) else { return links }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = UInt32(name) else { continue }
            if let root = Self.key("\(procRoot)/\(pid)/root"), roots.insert(root).inserted {
                for path in Self.usualPaths { links += attach("\(procRoot)/\(pid)/root\(path)", pid: pid, object) }
            }
            if let comm = SystemFile.read("\(procRoot)/\(pid)/comm", limit: 64)?.split(separator: "\n").first,
               Self.shellNames.contains(String(comm)) {
                links += attach("\(procRoot)/\(pid)/exe", pid: pid, object)
            }
        }
        return links
    }

    /// After an exec: when the executed file is named like a shell, attaches to it (its path under
    /// the process's root, else /proc/PID/exe) unless already tried; returns the links made.
    func attach(exec event: Event, _ object: BPFObject) -> [BPFLink] {
        guard case .exec(let exec) = event.payload else { return [] }
        let path = exec.executablePath.isEmpty ? exec.filename : exec.executablePath
        guard let base = path.bytes.split(separator: 0x2F).last, Self.shellNames.contains(String(decoding: base, as: UTF8.self)) else { return [] }
        let pid = event.pid
        let rooted = "\(procRoot)/\(pid)/root" + path.string
        return attach(path.bytes.first == 0x2F && Self.key(rooted) != nil ? rooted : "\(procRoot)/\(pid)/exe", pid: pid, object)
    }

    /// Attaches readline's entry and return probes to `path` once; without a readline symbol
    /// there, to the libreadline that `pid` maps.
    private func attach(_ path: String, pid: UInt32?, _ object: BPFObject) -> [BPFLink] {
        guard let key = Self.key(path), tried[key] == nil else { return [] }
        if let links = try? Self.attachProbes(path, object) {
            tried[key] = true
            attached.append(path)
            return links
        }
        guard let pid else {
            tried[key] = false
            return []
        }
        let maps = "\(procRoot)/\(pid)/maps"
        guard let library = SharedLibraries.path(containing: "libreadline.so", maps: maps) else {
            // Known without readline only once the loader mapped the libraries (libc with them):
            // caught earlier, the binary is tried again at its next exec.
            if SharedLibraries.path(containing: "libc.so", maps: maps) != nil { tried[key] = false }
            return []
        }
        tried[key] = false
        let libraryPath = "\(procRoot)/\(pid)/root" + library
        guard let libraryKey = Self.key(libraryPath), tried[libraryKey] == nil else { return [] }
        let links = try? Self.attachProbes(libraryPath, object)
        tried[libraryKey] = links != nil
        if links != nil { attached.append(libraryPath) }
        return links ?? []
    }

    /// readline's entry and return probes on `binary`; throws when it has no readline symbol.
    static func attachProbes(_ binary: String, _ object: BPFObject) throws -> [BPFLink] {
        let entry = try LibbpfLog.quietly {
            try object.program(named: "readline_entry").attachUprobe(binary: binary, function: "readline")
        }
        let ret = try LibbpfLog.quietly {
            try object.program(named: "readline_return").attachUprobe(binary: binary, function: "readline", returnProbe: true)
        }
        return [entry, ret]
    }
}
