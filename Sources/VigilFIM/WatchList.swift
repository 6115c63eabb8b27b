#if canImport(Glibc)
import Glibc
#endif

/// What the user asked to watch (`fim:` in vigil.yaml): profiles, files, directories and globs.
/// `resolve` turns it into concrete watches on this host.
public struct WatchSpec: Sendable, Equatable, Codable {
    /// Built-in groups of files (`fim.profiles`).
    public var profiles: [Profile] = []
    /// Files, absolute (`fim.paths`); one that does not exist yet is watched by name.
    public var paths: [String] = []
    /// Directories (`fim.directories`): entries created, renamed or removed in them, and every
    /// file in them.
    public var directories: [Directory] = []
    /// Glob patterns (`fim.globs`, glob(3): `*`, `?`, `[...]`), expanded when resolved: each match
    /// is a file (or a directory, not recursive).
    public var globs: [String] = []
    /// Text files up to this many bytes get a unified diff in their alerts (`fim.diff_max_bytes`;
    /// 0: none). Their text is kept in the baseline; account files, secret files and files
    /// holding a private key never are.
    public var diffMaxBytes = 65_536
    /// What is watched in every Docker container (`fim.containers`: profiles, paths,
    /// directories, globs), resolved under each one's root as its processes see it; nil: no
    /// container's files are watched.
    public var containers: WatchSpec? {
        get { containerSpecs.first }
        set { containerSpecs = newValue.map { [$0] } ?? [] }
    }
    /// `containers` (an array: a struct cannot hold itself).
    private var containerSpecs: [WatchSpec] = []

    /// Nothing watched.
    public init(profiles: [Profile] = [], paths: [String] = [], directories: [Directory] = [], globs: [String] = []) {
        self.profiles = profiles
        self.paths = paths
        self.directories = directories
        self.globs = globs
    }

    /// Whether nothing is asked for.
    public var isEmpty: Bool { profiles.isEmpty && paths.isEmpty && directories.isEmpty && globs.isEmpty && containers == nil }

    /// A watched directory.
    public struct Directory: Sendable, Equatable, Codable {
        /// Absolute path.
        public var path: String
        /// Its subdirectories too.
        public var recursive: Bool
        /// A directory watch.
        public init(_ path: String, recursive: Bool = false) {
            self.path = path
            self.recursive = recursive
        }
    }

    /// A built-in group of files (issue 14 §1).
    public enum Profile: String, Sendable, Codable, CaseIterable {
        /// Account files: /etc/passwd, /etc/shadow, /etc/group, /etc/gshadow.
        case users
        /// Access: /etc/sudoers and /etc/sudoers.d, PAM's /etc/pam.d and /etc/security, root's and
        /// every home's .ssh/authorized_keys.
        case access
        /// The system: /etc/ld.so.preload, /etc/ld.so.conf(.d), cron (/etc/crontab, /etc/cron.*,
        /// /var/spool/cron), systemd units (/etc/systemd/system, /usr/lib/systemd/system), and
        /// the binaries in /usr/bin and /usr/sbin.
        case system

        /// The profile's files, directories and globs.
        public var spec: WatchSpec {
            switch self {
            case .users:
                return WatchSpec(paths: ["/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow"])
            case .access:
                return WatchSpec(paths: ["/etc/sudoers", "/root/.ssh/authorized_keys"],
                                 directories: [Directory("/etc/sudoers.d"), Directory("/etc/pam.d"), Directory("/etc/security")],
                                 globs: ["/home/*/.ssh/authorized_keys"])
            case .system:
                return WatchSpec(paths: ["/etc/ld.so.preload", "/etc/ld.so.conf", "/etc/crontab"],
                                 directories: [Directory("/etc/ld.so.conf.d"), Directory("/etc/cron.d"), Directory("/etc/cron.hourly"),
                                               Directory("/etc/cron.daily"), Directory("/etc/cron.weekly"), Directory("/etc/cron.monthly"),
                                               Directory("/var/spool/cron", recursive: true),
                                               Directory("/etc/systemd/system", recursive: true),
                                               Directory("/usr/lib/systemd/system", recursive: true),
                                               Directory("/usr/bin"), Directory("/usr/sbin")])
            }
        }
    }

    /// The concrete watches under `root` (`/`: this host; else a directory standing for `/`, as
    /// a container's root or a test's copy): profiles expanded, globs matched, duplicates merged
    /// (a file is watched once; a directory asked for both ways is recursive). Directories that
    /// do not exist are left out; files that do not exist are kept (watched by name). Paths are
    /// as seen from `root` (absolute, without the root prefix).
    public func resolve(root: String = "/") -> [Watch] {
        var all = self
        for profile in profiles {
            let p = profile.spec
            all.paths += p.paths
            all.directories += p.directories
            all.globs += p.globs
        }
        let prefix = root == "/" ? "" : (root.hasSuffix("/") ? String(root.dropLast()) : root)
        var files: [String] = [], seen: Set<String> = []
        var dirs: [String: Bool] = [:], dirOrder: [String] = []
        func addDir(_ path: String, _ recursive: Bool) {
            guard Self.isDirectory(prefix + path) else { return }
            if let r = dirs[path] { dirs[path] = r || recursive } else { dirs[path] = recursive; dirOrder.append(path) }
        }
        for path in all.paths.map(Self.normal) where seen.insert(path).inserted { files.append(path) }
        for d in all.directories { addDir(Self.normal(d.path), d.recursive) }
        for pattern in all.globs {
            for match in Self.glob(prefix + Self.normal(pattern)) {
                let path = String(match.dropFirst(prefix.count))
                if Self.isDirectory(match) { addDir(path, false) } else if seen.insert(path).inserted { files.append(path) }
            }
        }
        return files.map { Watch(path: $0, kind: .file) } + dirOrder.map { Watch(path: $0, kind: .directory(recursive: dirs[$0] ?? false)) }
    }

    /// The globs asked for, the profiles' included, normalized.
    public var allGlobs: [String] {
        (globs + profiles.flatMap(\.spec.globs)).map(Self.normal)
    }

    /// Whether a path component holds a glob(3) wildcard.
    public static func hasWildcard(_ component: some StringProtocol) -> Bool {
        component.contains { $0 == "*" || $0 == "?" || $0 == "[" }
    }

    /// The existing directories a file matching `pattern` (absolute) may appear below: the
    /// literal head of the pattern and every existing directory matching a longer prefix of
    /// its directory part (for /home/*/.ssh/authorized_keys: /home, each /home/X, each
    /// /home/X/.ssh). Watching their entries shows when a new match may have appeared.
    public static func globDirectories(_ pattern: String) -> [String] {
        let parts = normal(pattern).split(separator: "/").dropLast()
        var head = "", rest = parts[...]
        while let first = rest.first, !hasWildcard(first) {
            head += "/" + first
            rest = rest.dropFirst()
        }
        if head.isEmpty { head = "/" }
        guard isDirectory(head) else { return [] }
        var out = [head], level = [head]
        for part in rest {
            var next: [String] = []
            for base in level {
                let path = base == "/" ? "/" + part : base + "/" + part
                next += hasWildcard(part) ? glob(path).filter(isDirectory) : (isDirectory(path) ? [path] : [])
            }
            out += next
            level = next
        }
        return out
    }

    /// The files matching `pattern` now, sorted.
    public static func matchingFiles(_ pattern: String) -> [String] {
        glob(normal(pattern)).filter { !isDirectory($0) }
    }

    /// `path` with repeated and trailing slashes removed.
    static func normal(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        return "/" + parts.joined(separator: "/")
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// glob(3) matches of `pattern`, sorted; none when nothing matches.
    static func glob(_ pattern: String) -> [String] {
        var g = glob_t()
        defer { globfree(&g) }
        guard Glibc.glob(pattern, 0, nil, &g) == 0 else { return [] }
        var out: [String] = []
        for i in 0..<Int(g.gl_pathc) {
            if let p = g.gl_pathv[i] { out.append(String(cString: p)) }
        }
        return out.sorted()
    }
}

/// One concrete watch: a file or a directory.
public struct Watch: Sendable, Equatable, Codable {
    /// Absolute path (as seen from the root it was resolved under).
    public var path: String
    /// File or directory.
    public var kind: Kind

    /// A file, or a directory and whether its subdirectories are watched too.
    public enum Kind: Sendable, Equatable, Codable {
        /// A file (by inode, and by name in its directory).
        case file
        /// A directory.
        case directory(recursive: Bool)
    }

    /// A watch.
    public init(path: String, kind: Kind) {
        self.path = path
        self.kind = kind
    }

    /// How its content is diffed.
    public var format: FileFormat { FileFormat.of(path) }
}
