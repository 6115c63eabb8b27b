import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What the baseline keeps of one watched file: its content's SHA-256 and its attributes, and
/// for account and access files the semantic state (secret fields as digests only).
public struct FileRecord: Sendable, Equatable, Codable {
    /// Absolute path (as seen from the root the watches were resolved under).
    public var path: String
    /// `file`, `symlink` or `other` (a device, fifo or socket: attributes only).
    public var type: String
    /// SHA-256 of the content, hex (a symlink: of its target's text; `other`: empty).
    public var sha256: String
    /// Bytes.
    public var size: UInt64
    /// Permission bits and set-id bits (st_mode & 07777).
    public var mode: UInt32
    /// Owner.
    public var uid: UInt32
    /// Group.
    public var gid: UInt32
    /// Modification time, nanoseconds since the epoch.
    public var mtimeNs: Int64
    /// A symlink's target.
    public var target: String?
    /// The semantic state of an account or access file (FileFormat other than `.other`).
    public var semantic: SemanticState?
    /// The lines of a small text file that holds no secret (`.other` format, at most the
    /// scan's `textLimit` bytes, UTF-8 without NUL, no `PRIVATE KEY`), for unified diffs.
    public var text: [String]?
    /// Status change time (nanoseconds since the epoch), device and inode: the same file, not
    /// changed since (a write, chmod, chown or rename changes ctime, which no user can set).
    public var ctimeNs: Int64? = nil, device: UInt64? = nil, inode: UInt64? = nil

    /// The record of the file at `prefix + path` (lstat: a symlink is recorded, not followed),
    /// nil when there is none (or it is a directory). `previous`, when its device, inode,
    /// ctime, size and mtime are still the file's, is returned as it is, unread.
    public static func read(_ path: String, under prefix: String = "", textLimit: Int = 0, previous: FileRecord? = nil) -> FileRecord? {
        let real = prefix + path
        var st = stat()
        guard lstat(real, &st) == 0 else { return nil }
        let kind = st.st_mode & S_IFMT
        guard kind != S_IFDIR else { return nil }
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        let ctime = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
        if let previous, previous.ctimeNs == ctime, previous.inode == UInt64(st.st_ino), previous.device == UInt64(st.st_dev),
           previous.size == UInt64(st.st_size), previous.mtimeNs == mtime {
            return previous
        }
        var record = FileRecord(path: path, type: "other", sha256: "", size: UInt64(st.st_size), mode: UInt32(st.st_mode & 0o7777),
                                uid: st.st_uid, gid: st.st_gid, mtimeNs: mtime, target: nil, semantic: nil, text: nil)
        record.ctimeNs = ctime
        record.device = UInt64(st.st_dev)
        record.inode = UInt64(st.st_ino)
        if kind == S_IFLNK {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(real, &buffer, Int(PATH_MAX))
            let target = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
            record.type = "symlink"
            record.target = target
            record.sha256 = SHA256.hex(Array(target.utf8))
        } else if kind == S_IFREG {
            guard let content = Self.contents(real) else { return record }
            record.type = "file"
            record.sha256 = SHA256.hexDigits(content.hash)
            let format = FileFormat.of(path)
            if format != .other, let bytes = content.bytes { record.semantic = SemanticState.of(bytes, format: format) }
            if format == .other, let bytes = content.bytes, bytes.count <= textLimit { record.text = Self.lines(bytes) }
        }
        return record
    }

    /// The lines of text `bytes`, nil when it is not text or may hold a secret (a NUL, invalid
    /// UTF-8, a PEM private key).
    static func lines(_ bytes: [UInt8]) -> [String]? {
        guard !bytes.contains(0), let text = String(validating: bytes, as: UTF8.self), !text.contains("PRIVATE KEY") else { return nil }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// Bytes kept in memory for a semantic state: account and access files are small.
    static let semanticLimit = 4 << 20

    /// The file's SHA-256 (read in 64 KiB blocks) and, when it is small, its bytes.
    private static func contents(_ path: String) -> (hash: [UInt8], bytes: [UInt8]?)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var sha = SHA256()
        var kept: [UInt8]? = []
        var block = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = block.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { break }
            sha.update(block[0..<n])
            if kept != nil {
                if kept!.count + n > semanticLimit { kept = nil } else { kept!.append(contentsOf: block[0..<n]) }
            }
        }
        return (sha.finish(), kept)
    }
}

/// One change between two baselines (or a baseline and the files now): what `fim.*` fields and
/// alerts say. Never carries a secret: a semantic diff says "password changed", not the hash.
public struct FIMChange: Sendable, Equatable, Codable {
    /// What happened to the path.
    public enum Kind: String, Sendable, Codable {
        /// It exists now and did not.
        case created
        /// It existed and does not now.
        case removed
        /// Its content changed (its attributes may have too).
        case modified
        /// Only its mode, owner or mtime changed.
        case attributes
        /// It was renamed (one change where the kernel told both ends of a rename): `path` is
        /// the watched end, `renamedFrom` and `renamedTo` the two names.
        case renamed
    }

    /// The path.
    public var path: String
    /// What happened.
    public var change: Kind
    /// The record before (nil: created).
    public var before: FileRecord?
    /// The record after (nil: removed).
    public var after: FileRecord?
    /// What the change means, one line each: the semantic diff of an account or access file
    /// (users, passwords, groups, sudo rules, SSH keys), and attribute changes.
    public var diff: [String]
    /// The semantic diff, for account and access files.
    public var semantic: SemanticDiff?
    /// `diff -u`'s hunks for a small text file that holds no secret (both versions kept as
    /// text), nil otherwise.
    public var unified: [String]? = nil
    /// For a rename: the old name and the new one (as the watch sees them), nil otherwise.
    public var renamedFrom: String? = nil, renamedTo: String? = nil
}

/// The watched files' records, persisted under the state directory so a change made while the
/// daemon was down is reported at its next start.
public struct Baseline: Sendable, Equatable, Codable {
    /// Format version of the file.
    public var version = 1
    /// The records by path.
    public var files: [String: FileRecord] = [:]

    /// An empty baseline.
    public init(files: [String: FileRecord] = [:]) { self.files = files }

    /// The records of every file the watches name under `root`: a file watch's file (absent:
    /// no record), and every non-directory entry of a watched directory (and of its
    /// subdirectories when recursive).
    /// `reuse`: records whose file has not changed since (`FileRecord.read`'s `previous`) are
    /// taken as they are, unread (a re-read after the kernel reported a change: only the changed
    /// files are hashed again). Without it every file is read and hashed.
    public static func scan(_ watches: [Watch], root: String = "/", textLimit: Int = 0, reuse: Baseline? = nil) -> Baseline {
        let prefix = root == "/" ? "" : (root.hasSuffix("/") ? String(root.dropLast()) : root)
        var baseline = Baseline()
        func walk(_ dir: String, recursive: Bool) {
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: prefix + dir) else { return }
            for name in entries.sorted() {
                let path = dir == "/" ? "/" + name : dir + "/" + name
                var st = stat()
                guard lstat(prefix + path, &st) == 0 else { continue }
                if (st.st_mode & S_IFMT) == S_IFDIR {
                    if recursive { walk(path, recursive: true) }
                } else if baseline.files[path] == nil,
                          let record = FileRecord.read(path, under: prefix, textLimit: textLimit, previous: reuse?.files[path]) {
                    baseline.files[path] = record
                }
            }
        }
        for watch in watches {
            switch watch.kind {
            case .file:
                if let record = FileRecord.read(watch.path, under: prefix, textLimit: textLimit, previous: reuse?.files[watch.path]) {
                    baseline.files[watch.path] = record
                }
            case .directory(let recursive): walk(watch.path, recursive: recursive)
            }
        }
        return baseline
    }

    /// The changes from `self` to `now`, sorted by path.
    public func changes(to now: Baseline) -> [FIMChange] {
        var out: [FIMChange] = []
        for path in Set(files.keys).union(now.files.keys).sorted() {
            if let change = Self.change(path, files[path], now.files[path]) { out.append(change) }
        }
        return out
    }

    /// The change of one path from `before` to `after`, nil when there is none.
    public static func change(_ path: String, _ before: FileRecord?, _ after: FileRecord?) -> FIMChange? {
        let format = FileFormat.of(path)
        func semantic(_ a: SemanticState?, _ b: SemanticState?) -> SemanticDiff? {
            guard format != .other, a != nil || b != nil else { return nil }
            return SemanticDiff.between(a ?? SemanticState(lines: []), b ?? SemanticState(lines: []), format: format)
        }
        switch (before, after) {
        case (nil, nil):
            return nil
        case (nil, let b?):
            let s = semantic(nil, b.semantic)
            return FIMChange(path: path, change: .created, before: nil, after: b, diff: s?.changes ?? [], semantic: s)
        case (let a?, nil):
            let s = semantic(a.semantic, nil)
            return FIMChange(path: path, change: .removed, before: a, after: nil, diff: s?.changes ?? [], semantic: s)
        case (let a?, let b?):
            var attributes: [String] = []
            if a.type != b.type { attributes.append("type changed from \(a.type) to \(b.type)") }
            if a.mode != b.mode { attributes.append("mode changed from \(Self.octal(a.mode)) to \(Self.octal(b.mode))") }
            if a.uid != b.uid || a.gid != b.gid { attributes.append("owner changed from \(a.uid):\(a.gid) to \(b.uid):\(b.gid)") }
            if a.target != b.target, let t = b.target { attributes.append("symlink now points to \(t)") }
            let contentChanged = a.sha256 != b.sha256 || a.size != b.size
            if contentChanged {
                let s = semantic(a.semantic, b.semantic)
                var change = FIMChange(path: path, change: .modified, before: a, after: b, diff: (s?.changes ?? []) + attributes, semantic: s)
                if let old = a.text, let new = b.text { change.unified = UnifiedDiff.hunks(old, new) }
                return change
            }
            if a.mtimeNs != b.mtimeNs { attributes.append("mtime changed") }
            guard !attributes.isEmpty else { return nil }
            return FIMChange(path: path, change: .attributes, before: a, after: b, diff: attributes, semantic: nil)
        }
    }

    static func octal(_ mode: UInt32) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// Reads the baseline at `path`; nil when there is none. A file that cannot be decoded is an
    /// error (never silently a fresh start: that would hide every change made while down).
    public static func load(from path: String) throws -> Baseline? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONDecoder().decode(Baseline.self, from: data)
    }

    /// Writes the baseline to `path` (its directory made 0700 if missing): a temporary file,
    /// fsync, rename over the old one, fsync of the directory, so a crash leaves the old or the
    /// new baseline, never half of one. The file is 0600: it names the system's accounts.
    public func save(to path: String) throws {
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        try FileManager.default.createDirectory(atPath: dir.isEmpty ? "/" : dir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(self)
        let temp = path + ".tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BaselineError(operation: "open", path: temp, errno: errno) }
        var ok = data.withUnsafeBytes { raw -> Bool in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 { if errno == EINTR { continue }; return false }
                done += n
            }
            return true
        }
        let writeErrno = errno
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok else { throw BaselineError(operation: "write", path: temp, errno: writeErrno) }
        guard rename(temp, path) == 0 else { throw BaselineError(operation: "rename", path: path, errno: errno) }
        let dfd = open(dir.isEmpty ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}

/// A baseline file could not be written.
public struct BaselineError: Error, CustomStringConvertible {
    /// The call that failed.
    public var operation: String
    /// The file.
    public var path: String
    /// Its errno.
    public var errno: Int32
    /// `write /var/lib/vigil/fim/baseline.json.tmp: No space left on device`.
    public var description: String { "\(operation) \(path): \(String(cString: strerror(errno)))" }
}

extension FIMChange {
    /// One line for an alert's output: `PATH CHANGE: diff; ...; sha256 OLD -> NEW` (never a
    /// secret: the diff says "password changed", and hashes are of whole files).
    public var summary: String {
        var parts = diff
        switch change {
        case .created: if let a = after { parts.append("sha256 \(a.sha256.prefix(16)), mode \(Baseline.octal(a.mode)), owner \(a.uid):\(a.gid)") }
        case .modified: if let a = before, let b = after { parts.append("sha256 \(a.sha256.prefix(16)) -> \(b.sha256.prefix(16))") }
        case .renamed:
            if let a = before, let b = after, a.sha256 != b.sha256 { parts.append("sha256 \(a.sha256.prefix(16)) -> \(b.sha256.prefix(16))") }
        case .removed, .attributes: break
        }
        var head = "\(path) \(change.rawValue)"
        if change == .renamed, let from = renamedFrom, let to = renamedTo { head = path == to ? "\(path) renamed from \(from)" : "\(path) renamed to \(to)" }
        var line = head + (parts.isEmpty ? "" : ": " + parts.joined(separator: "; "))
        if let unified, !unified.isEmpty {
            let shown = unified.prefix(Self.unifiedLinesShown)
            line += "\n" + shown.joined(separator: "\n")
            if unified.count > shown.count { line += "\n(\(unified.count - shown.count) more diff lines)" }
        }
        return line
    }

    /// Lines of a unified diff an alert's output shows at most.
    public static let unifiedLinesShown = 40
}
