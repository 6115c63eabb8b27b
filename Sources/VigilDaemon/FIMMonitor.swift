import Foundation
import Logging
import VigilBPF
import VigilContainers
import VigilEvents
import VigilFIM
import VigilSensors
#if canImport(Glibc)
import Glibc
#endif

/// File integrity monitoring in the daemon: the fim sensor (kernel matches on watched inodes and
/// names), the baseline in `state_dir/fim/baseline.json`, and the changes to alert: those made
/// while the daemon was down (at start) and those the kernel reports (re-read and diffed against
/// the baseline, which is then saved). Used by one thread at a time: made on the daemon's, then
/// driven by the engine's FIM thread only (house rule 6: one thread drives a libbpf object).
final class FIMMonitor: @unchecked Sendable {
    /// The watches, their index + 1 being the kernel's watch id; a file a glob matches later is
    /// appended, and so are a container's watches (their paths under its root,
    /// `/proc/PID/root/etc/passwd`: how this process reaches them).
    private(set) var watches: [Watch]
    /// The root each watch is under (parallel to `watches`): "/" for this host's, a container's
    /// `/proc/PID/root` for its watches.
    private var roots: [String]
    /// What is watched in every container (`fim.containers`); nil: no container is.
    private let containerSpec: WatchSpec?
    /// Whether `fim.containers` asks for watches in containers.
    var watchesContainers: Bool { containerSpec != nil }
    /// The containers whose files are watched, by full id.
    private(set) var containers: [String: FIMContainer] = [:]
    /// Watch ids of containers that are gone: never re-read.
    private var retired: Set<UInt32> = []
    /// The globs (the profiles' too): the directories their matches may appear in are watched
    /// (entries only) as id `globID | index`; a report re-resolves the glob.
    private let globs: [String]
    static let globID: UInt32 = 0x8000_0000
    /// What changed while the daemon was down (empty at a first start: nothing to compare with).
    private(set) var startupChanges: [FIMChange] = []
    /// Whether a baseline was found at start.
    private(set) var hadBaseline = false
    /// Why the saved baseline could not be read (it was moved aside to `.unreadable` and a new
    /// one made): changes made while down are unknown. Nil when it was read or there was none.
    private(set) var baselineProblem: String?
    private let sensor: FIMSensor
    private var baseline = Baseline()
    private let baselinePath: String
    /// Where each watched container's baseline is saved, `ID.json` with the paths as the
    /// container sees them: kept while the container runs (also while Vigil is down), so a change
    /// made in a container that ran on while Vigil was down is reported when it is watched again.
    private let containerBaselines: String
    /// Text files up to this size are kept as text for unified diffs (`fim.diff_max_bytes`).
    private let textLimit: Int
    private let logger: Logger
    /// File watches the kernel could not take at start (their directory did not exist): id ->
    /// the ancestor whose entries are watched instead; each report of the id tries again.
    private var unwatched: [UInt32: String] = [:]
    /// Watch id -> (when the kernel last reported it, that record's event; nil: re-read after
    /// lost records).
    private var pending: [UInt32: (at: UInt64, event: Event?)] = [:]
    /// Watches a process mapped shared and writable, or able to become so (the kernel reports the
    /// mmap): the writes through such a mapping make no syscall, so the watch is re-read every
    /// `mappedRecheckNs` while a process maps the file (the one that mapped it, then another
    /// found in /proc: a fork child that outlived it), and once after none does.
    private var mapped: [UInt32: (pid: UInt32, file: FileID, event: Event, checked: UInt64)] = [:]
    /// How often a watch mapped writable is re-read.
    static let mappedRecheckNs: UInt64 = 1_000_000_000
    /// The syscall table's row of mmap (the sensor reports only writable shared mappings).
    private static let mmapIndex = Syscalls.index(named: "mmap")
    /// The sensor's lost count when last read, and when that was.
    private var lost: UInt64 = 0, lostCheckedAt: UInt64 = 0
    /// Renames the kernel reported (both ends, as this process reaches them), when: a removal of
    /// the old name and a creation or modification of the new one found by the re-reads after
    /// it are one change, `renamed`.
    private var renames: [(from: String, to: String, at: UInt64)] = []
    /// How long a rename waits for the re-reads of its ends.
    static let renameKeepNs: UInt64 = 1_000_000_000
    /// How often the lost count is read (a read of the per-CPU counters map).
    static let lostCheckNs: UInt64 = 200_000_000
    /// A watch is re-read once the kernel reported nothing for it this long (a tool's writes
    /// come in bursts: one alert for the burst).
    static let settleNs: UInt64 = 20_000_000

    /// Loads the sensor and watches `spec` (resolved on this host), then scans: the kernel
    /// watches before the scan, so nothing changed between the two is missed.
    init(spec: WatchSpec, stateDirectory: String, logger: Logger, ringBytes: Int = 1 << 22) throws {
        self.logger = logger
        watches = spec.resolve()
        roots = Array(repeating: "/", count: watches.count)
        containerSpec = spec.containers
        globs = spec.allGlobs
        textLimit = spec.diffMaxBytes
        baselinePath = stateDirectory + "/fim/baseline.json"
        containerBaselines = stateDirectory + "/fim/containers"
        sensor = try FIMSensor(maxWatches: 131_072, ringBytes: ringBytes, ignorePID: UInt32(getpid()))
        var inodes = 0
        for (index, watch) in watches.enumerated() {
            let id = UInt32(index + 1)
            do {
                switch watch.kind {
                case .file:
                    try sensor.watchFile(watch.path, id: id)
                    inodes += 1
                case .directory(let recursive):
                    inodes += try sensor.watchDirectory(watch.path, id: id, recursive: recursive)
                }
            } catch {
                if case .file = watch.kind, let ancestor = watchAncestor(of: watch.path, id: id) {
                    logger.notice("fim: \(watch.path): its directory does not exist; watching \(ancestor) for it")
                } else {
                    logger.warning("fim: cannot watch \(watch.path): \(error)")
                }
            }
        }
        for index in globs.indices { watchGlobDirectories(index) }
        var old: Baseline?
        do {
            old = try Baseline.load(from: baselinePath)
        } catch {
            let aside = baselinePath + ".unreadable"
            baselineProblem = "\(baselinePath) cannot be read (\(error)); moved to \(aside), a new baseline made: what changed while Vigil was down is unknown"
            if rename(baselinePath, aside) != 0 { baselineProblem! += " (and moving it failed: \(String(cString: strerror(errno))))" }
            logger.error("fim: \(baselineProblem!)")
        }
        hadBaseline = old != nil
        baseline = Baseline.scan(watches, textLimit: textLimit)
        if let old { startupChanges = old.changes(to: baseline) }
        try saved.save(to: baselinePath)
        logger.info("fim: \(watches.count) watches, \(inodes) inodes in the kernel, \(baseline.files.count) files in the baseline (\(baselinePath))\(old == nil ? ", a first start" : ", \(startupChanges.count) changed while down")")
    }

    /// Reads the sensor's records (without waiting) and, for each watch the kernel reported
    /// that has settled, re-reads it and hands each change to `report` with the event of the
    /// syscall that made it (the last one seen). Saves the baseline after changes. When the
    /// sensor lost records (its ring was full), every watch is re-read: a lost record is a
    /// change nobody knows the watch of.
    func poll(now: UInt64, waitMilliseconds: Int32 = 0, _ report: (FIMChange, Event?) -> Void) {
        if now &- lostCheckedAt >= Self.lostCheckNs {
            lostCheckedAt = now
            if let counters = counters(), counters.lost > lost {
                logger.warning("fim: \(counters.lost - lost) records lost (ring full): re-reading every watch")
                lost = counters.lost
                for index in watches.indices where pending[UInt32(index + 1)] == nil { pending[UInt32(index + 1)] = (now, nil) }
                for index in globs.indices { pending[Self.globID | UInt32(index)] = (now, nil) }
            }
        }
        do {
            try sensor.poll(timeoutMilliseconds: waitMilliseconds) { change in
                if let ends = renameEnds(change.event, watch: change.watch) {
                    // both ends' watches are re-read (the record names the one it matched first)
                    renames.append((ends.from, ends.to, now))
                    for id in watchIDs(of: change.event, watch: change.watch) { pending[id] = (now, change.event) }
                }
                if change.how.contains(.unresolved) {
                    for id in watchIDs(of: change.event) { pending[id] = (now, change.event) }
                } else {
                    pending[change.watch] = (now, change.event)
                }
                if case .syscall(let call) = change.event.payload, call.index == Self.mmapIndex {
                    mapped[change.watch] = (change.event.pid, change.file, change.event, now)
                }
            }
        } catch {
            logger.error("fim: reading the sensor: \(error)")
        }
        for (id, mapping) in mapped where now &- mapping.checked >= Self.mappedRecheckNs {
            if kill(pid_t(mapping.pid), 0) == 0 || errno == EPERM {
                mapped[id]?.checked = now
            } else if let heir = Self.sharedMapper(of: mapping.file, except: mapping.pid) {
                mapped[id]?.pid = heir
                mapped[id]?.checked = now
            } else {
                mapped[id] = nil  // this last re-read sees what it wrote before it went
            }
            if pending[id] == nil { pending[id] = (now &- Self.settleNs, mapping.event) }
        }
        guard !pending.isEmpty else {
            renames.removeAll()  // every watch re-read: nothing left to merge with
            return
        }
        var changed = false
        var found: [(change: FIMChange, event: Event?)] = []
        for (id, entry) in pending where now &- entry.at >= Self.settleNs || entry.at > now {
            pending[id] = nil
            if id & Self.globID != 0 {
                refreshGlob(Int(id & ~Self.globID), now: now, event: entry.event)
                continue
            }
            guard id >= 1, Int(id) <= watches.count, !retired.contains(id) else { continue }
            for change in rescan(watches[Int(id) - 1], id: id) {
                found.append((change, entry.event))
                changed = true
            }
        }
        for (change, event) in mergeRenames(found) { report(change, event) }
        // a rename waits for its ends' re-reads (delayed while writes to them go on), a second at most
        renames.removeAll { now &- $0.at >= Self.renameKeepNs || $0.at > now }
        if changed {
            do { try saved.save(to: baselinePath) } catch { logger.error("fim: saving the baseline: \(error)") }
            for id in Set(found.compactMap { container(ofPath: $0.change.path)?.id }) { saveBaseline(ofContainer: id) }
        }
    }

    /// How long `poll` may wait for records before the first pending watch settles, at most
    /// `limit` ms: so a change is re-read when it settles, not up to `limit` ms after.
    func waitMilliseconds(now: UInt64, atMost limit: Int32) -> Int32 {
        guard let first = pending.values.lazy.map(\.at).min() else { return limit }
        let due = first &+ Self.settleNs
        guard due > now else { return 0 }
        return Int32(min(UInt64(limit), (due - now + 999_999) / 1_000_000))
    }

    /// A process other than `except` that maps `file` shared (a fork child of the process that
    /// mapped it, which inherits the mapping), found in /proc/PID/maps; nil when none does.
    /// Reads every process's maps: done only when a process that mapped a watch is gone.
    static func sharedMapper(of file: FileID, except: UInt32, procRoot: String = "/proc") -> UInt32? {
        let device = String(format: "%02x:%02x", FileID.major(file.device), FileID.minor(file.device))
        let inode = String(file.inode)
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: procRoot)) ?? []).compactMap { UInt32($0) }
        for pid in pids where pid != except {
            var found = false
            SystemFile.forEachLine("\(procRoot)/\(pid)/maps") { line in
                // range perms offset major:minor inode path
                let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
                found = fields.count >= 5 && fields[1].last == "s" && fields[3] == device && fields[4] == inode
                return !found
            }
            if found { return pid }
        }
        return nil
    }

    /// The baseline as saved: this host's files only (a container's are watched while it runs,
    /// under a root that is gone at the next start).
    private var saved: Baseline {
        Baseline(files: baseline.files.filter { !$0.key.hasPrefix("/proc/") })
    }

    /// Watches `fim.containers` in container `container` (resolved under its root, as its
    /// processes see it) and scans its baseline: changes from now on are alerted, named by the
    /// container, with the paths as it sees them. When a baseline of this container was saved (it
    /// ran on while Vigil was down), each change since goes to `whileDown`. A container already
    /// watched is left as it is. Returns the number of watches added.
    @discardableResult
    func watchContainer(_ container: FIMContainer, whileDown: (FIMChange) -> Void = { _ in }) -> Int {
        guard let spec = containerSpec, containers[container.id] == nil else { return 0 }
        let root = container.root
        var added: [Watch] = [], inodes = 0
        var entry = container
        entry.firstID = UInt32(watches.count + 1)
        for watch in spec.resolve(root: root) {
            let id = UInt32(watches.count + 1)
            do {
                switch watch.kind {
                case .file:
                    try sensor.watchFile(watch.path, id: id, root: root)
                    inodes += 1
                case .directory(let recursive):
                    inodes += try sensor.watchDirectory(watch.path, id: id, recursive: recursive, root: root)
                }
            } catch {
                logger.warning("fim: container \(container.name): cannot watch \(watch.path): \(error)")
            }
            let full = Watch(path: root + watch.path, kind: watch.kind)
            watches.append(full)
            roots.append(root)
            added.append(full)
        }
        entry.endID = UInt32(watches.count + 1)
        containers[container.id] = entry
        let scanned = Baseline.scan(added, textLimit: textLimit)
        baseline.files.merge(scanned.files) { _, new in new }
        var changes: [FIMChange] = []
        if let path = containerBaselinePath(container.id) {
            do {
                if let old = try Baseline.load(from: path) {
                    changes = Baseline(files: Dictionary(old.files.map { (root + $0.key, $0.value) }) { first, _ in first }).changes(to: scanned)
                }
            } catch {
                logger.error("fim: container \(container.name): its saved baseline \(path) cannot be read (\(error)): what changed in it while Vigil was down is unknown")
            }
            saveBaseline(ofContainer: container.id)
        }
        logger.info("fim: container \(container.name) (\(container.id.prefix(12)), \(container.image)): \(added.count) watches, \(inodes) inodes in the kernel, root \(root), \(changes.count) changed while down")
        for change in changes { whileDown(change) }
        return added.count
    }

    /// The file container `id`'s baseline is saved in; nil for an id that is not a container id
    /// (hex), which is never made a file name.
    private func containerBaselinePath(_ id: String) -> String? {
        guard !id.isEmpty, id.count <= 128, id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return nil }
        return containerBaselines + "/" + id + ".json"
    }

    /// Saves watched container `id`'s part of the baseline, its paths as the container sees them.
    private func saveBaseline(ofContainer id: String) {
        guard let container = containers[id], let path = containerBaselinePath(id) else { return }
        let prefix = container.root
        let files = baseline.files.filter { $0.key.hasPrefix(prefix + "/") }
        do {
            try Baseline(files: Dictionary(files.map { (String($0.key.dropFirst(prefix.count)), $0.value) }) { first, _ in first }).save(to: path)
        } catch {
            logger.error("fim: container \(container.name): saving its baseline: \(error)")
        }
    }

    /// Removes the saved baselines of the containers not in `running` (full ids): they stopped,
    /// maybe while Vigil was down, and their roots are gone.
    func forgetSavedContainers(except running: Set<String>) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: containerBaselines) else { return }
        for name in names where name.hasSuffix(".json") && !running.contains(String(name.dropLast(5))) {
            unlink(containerBaselines + "/" + name)
        }
    }

    /// Container `id` is gone: its watches are never re-read again, its files leave the baseline
    /// and their inodes the kernel's map.
    func forgetContainer(_ id: String) {
        guard let container = containers.removeValue(forKey: id) else { return }
        for watch in container.firstID..<container.endID {
            retired.insert(watch)
            pending[watch] = nil
        }
        let prefix = container.root + "/"
        for (path, record) in baseline.files where path.hasPrefix(prefix) {
            if let device = record.device, let inode = record.inode { try? sensor.unwatch(FileID(device: device, inode: inode)) }
            baseline.files[path] = nil
        }
        if let saved = containerBaselinePath(id) { unlink(saved) }
        logger.info("fim: container \(container.name) (\(id.prefix(12))) is gone: its watches end")
    }

    /// The container whose watch `id` is, if any.
    func container(ofWatch id: UInt32) -> FIMContainer? {
        containers.values.first { $0.firstID <= id && id < $0.endID }
    }

    /// The container whose root holds `path` (a watch's path as this process reaches it), if any.
    func container(ofPath path: String) -> FIMContainer? {
        guard path.hasPrefix("/proc/") else { return nil }
        return containers.values.first { path.hasPrefix($0.root + "/") }
    }

    /// The two ends of a rename record (rename, renameat, renameat2 without RENAME_EXCHANGE) as
    /// this process reaches them; nil for other records, or when an end cannot be resolved.
    func renameEnds(_ event: Event, watch: UInt32? = nil) -> (from: String, to: String)? {
        guard case .syscall(let call) = event.payload else { return nil }
        let name = "\(call.descriptor.name)"
        guard ["rename", "renameat", "renameat2"].contains(name) else { return nil }
        if name == "renameat2", call.args[4] & 2 != 0 { return nil } // RENAME_EXCHANGE: both names stay
        let ends = paths(of: event, watch: watch)
        guard ends.count == 2, let from = ends[0], let to = ends[1] else { return nil }
        return (from, to)
    }

    /// The changes of one round with each rename the kernel reported made one change: the old
    /// name's removal and the new name's creation or modification (or either alone, when only
    /// one end is watched) become `renamed`, at the watched end (the new one when watched), its
    /// content compared with what that name held before (or the moved file, for a new name).
    func mergeRenames(_ found: [(change: FIMChange, event: Event?)]) -> [(change: FIMChange, event: Event?)] {
        var out = found
        var used: [Int] = []
        defer { for index in used.reversed() { renames.remove(at: index) } }
        for (number, rename) in renames.enumerated() {
            let removed = out.firstIndex { $0.change.path == rename.from && $0.change.change == .removed }
            let arrived = out.firstIndex { $0.change.path == rename.to && ($0.change.change == .created || $0.change.change == .modified) }
            guard removed != nil || arrived != nil else { continue }
            used.append(number)
            var merged: FIMChange
            let event = (arrived ?? removed).map { out[$0].event } ?? nil
            if let arrived {
                let now = out[arrived].change
                let before = now.before ?? removed.flatMap { out[$0].change.before }
                merged = Baseline.change(rename.to, before, now.after) ?? now
                merged.before = before
                merged.after = now.after
            } else {
                merged = out[removed!].change
            }
            merged.change = .renamed
            merged.renamedFrom = rename.from
            merged.renamedTo = rename.to
            let at = [removed, arrived].compactMap { $0 }.min()!
            for index in [removed, arrived].compactMap({ $0 }).sorted(by: >) { out.remove(at: index) }
            out.insert((merged, event), at: min(at, out.count))
        }
        return out
    }

    /// The watches the path arguments of a record the kernel could not resolve (a path with
    /// ".." or "//", or a directory text too long for its keys) name, once folded: an absolute
    /// path as it is, a relative one against the process's cwd or dirfd read from /proc (gone
    /// with the process: then the change is seen at the next one, or at the next start).
    /// `watch`: the watch the kernel matched (its container's root for absolute paths).
    func watchIDs(of event: Event, watch: UInt32? = nil) -> [UInt32] {
        var ids: [UInt32] = []
        for path in paths(of: event, watch: watch).compactMap({ $0 }) {
            for (index, watch) in watches.enumerated() {
                let hit: Bool
                switch watch.kind {
                case .file: hit = path == watch.path
                case .directory(let recursive):
                    let prefix = watch.path == "/" ? "/" : watch.path + "/"
                    hit = path == watch.path || (path.hasPrefix(prefix) && (recursive || !path.dropFirst(prefix.count).contains("/")))
                }
                if hit { ids.append(UInt32(index + 1)) }
            }
        }
        return ids
    }

    /// The path arguments of syscall record `event`, in order, folded and made absolute as this
    /// process reaches them: a relative one against the process's cwd or dirfd read from /proc
    /// (nil when the process is gone), an absolute one under the root of the container of
    /// `watch` (the watch the kernel matched), else of the process's container.
    func paths(of event: Event, watch: UInt32? = nil) -> [String?] {
        guard case .syscall(let call) = event.payload else { return [] }
        var out: [String?] = []
        let root = watch.flatMap { container(ofWatch: $0)?.root } ?? rootPrefix(of: event.pid)
        for (i, param) in call.descriptor.params.enumerated() {
            guard case .path(let dirfd) = param.type else { continue }
            let text = SyscallArguments.bytes(call, i).string
            if text.isEmpty { out.append(nil); continue }
            var full = text
            if !text.hasPrefix("/") {
                let fd = dirfd >= 0 ? Int32(truncatingIfNeeded: Int64(bitPattern: call.args[Int(dirfd)])) : -100
                let link = fd == -100 ? "/proc/\(event.pid)/cwd" : "/proc/\(event.pid)/fd/\(fd)"
                guard let base = try? FileManager.default.destinationOfSymbolicLink(atPath: link) else { out.append(nil); continue }
                full = base + "/" + text
            }
            out.append(root + Self.fold(full))
        }
        return out
    }

    /// The root of process `pid` as this process reaches it: "" for this host's, the root of the
    /// watched container it runs in (same device and inode as `/proc/PID/root`) otherwise.
    private func rootPrefix(of pid: UInt32) -> String {
        guard !containers.isEmpty else { return "" }
        var st = stat(), mine = stat()
        guard stat("/proc/\(pid)/root/", &st) == 0, stat("/", &mine) == 0, st.st_dev != mine.st_dev || st.st_ino != mine.st_ino else { return "" }
        for container in containers.values {
            var theirs = stat()
            if stat(container.root + "/", &theirs) == 0, theirs.st_dev == st.st_dev, theirs.st_ino == st.st_ino { return container.root }
        }
        return ""
    }

    /// An absolute path with ".", ".." and repeated slashes folded (by text, as the kernel would
    /// without symlinks).
    static func fold(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { _ = parts.popLast(); continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Watches the entries of the directories glob `index`'s matches may appear in.
    private func watchGlobDirectories(_ index: Int) {
        for dir in WatchSpec.globDirectories(globs[index]) {
            do { try sensor.watchEntries(of: dir, id: Self.globID | UInt32(index)) } catch {
                logger.warning("fim: cannot watch \(dir) for \(globs[index]): \(error)")
            }
        }
    }

    /// A directory of glob `index` changed: its new directories are watched, and a file it
    /// matches now that no watch names becomes a watch (re-read at the next poll: created).
    private func refreshGlob(_ index: Int, now: UInt64, event: Event?) {
        guard index < globs.count else { return }
        watchGlobDirectories(index)
        for path in WatchSpec.matchingFiles(globs[index]) where !watches.contains(where: { $0.path == path }) {
            watches.append(Watch(path: path, kind: .file))
            roots.append("/")
            let id = UInt32(watches.count)
            do { try sensor.watchFile(path, id: id) } catch { logger.warning("fim: cannot watch \(path): \(error)") }
            logger.notice("fim: \(path) matches \(globs[index]): watched")
            pending[id] = (now &- Self.settleNs, event)
        }
    }

    /// Watches the entries of the nearest existing ancestor of file `path`'s directory for watch
    /// `id` and notes it in `unwatched`; returns that ancestor (nil: none could be watched).
    @discardableResult
    private func watchAncestor(of path: String, id: UInt32) -> String? {
        var dir = path
        while let slash = dir.lastIndex(of: "/"), dir != "/" {
            dir = slash == dir.startIndex ? "/" : String(dir[..<slash])
            if access(dir, F_OK) == 0 {
                guard (try? sensor.watchEntries(of: dir, id: id)) != nil else { return nil }
                unwatched[id] = dir
                return dir
            }
        }
        return nil
    }

    /// A file watch whose directory was missing: watched by the kernel once it exists, else its
    /// nearest existing ancestor (one level closer, maybe) watched instead.
    private func retryWatch(_ watch: Watch, id: UInt32) {
        guard unwatched[id] != nil else { return }
        if (try? sensor.watchFile(inner(watch.path, id), id: id, root: roots[Int(id) - 1])) != nil {
            unwatched[id] = nil
            logger.notice("fim: \(watch.path): its directory exists now; watched")
        } else {
            watchAncestor(of: watch.path, id: id)
        }
    }

    /// The changes under `watch` since the baseline; the baseline takes them.
    private func rescan(_ watch: Watch, id: UInt32) -> [FIMChange] {
        retryWatch(watch, id: id)
        if case .directory(let recursive) = watch.kind {
            // entries the kernel could not key itself (a subdirectory made since, a file renamed in
            // from elsewhere) are watched from now on; the scan below then sees what they hold
            do { try sensor.watchDirectory(inner(watch.path, id), id: id, recursive: recursive, root: roots[Int(id) - 1]) } catch {
                logger.warning("fim: cannot watch \(watch.path) again: \(error)")
            }
        }
        let fresh = Baseline.scan([watch], textLimit: textLimit, reuse: baseline)
        let old: [String: FileRecord]
        switch watch.kind {
        case .file:
            old = baseline.files[watch.path].map { [watch.path: $0] } ?? [:]
        case .directory(let recursive):
            let prefix = watch.path == "/" ? "/" : watch.path + "/"
            old = baseline.files.filter { $0.key.hasPrefix(prefix) && (recursive || !$0.key.dropFirst(prefix.count).contains("/")) }
        }
        let changes = Baseline(files: old).changes(to: fresh)
        for change in changes { baseline.files[change.path] = change.after }
        return changes
    }

    /// The watch that covers `path`: a file watch naming it, else the deepest directory watch
    /// holding it (its path as configured, a glob's match as its path; a container's as the
    /// container sees it); empty when none does.
    func profile(of path: String) -> String {
        var best = ""
        for (index, watch) in watches.enumerated() where !retired.contains(UInt32(index + 1)) {
            switch watch.kind {
            case .file: if watch.path == path { return inner(path, UInt32(index + 1)) }
            case .directory(let recursive):
                let prefix = watch.path == "/" ? "/" : watch.path + "/"
                if path.hasPrefix(prefix), recursive || !path.dropFirst(prefix.count).contains("/"), watch.path.count > best.count { best = watch.path }
            }
        }
        if let container = container(ofPath: best) { return String(best.dropFirst(container.root.count)) }
        return best
    }

    /// Watch `id`'s `path` as seen from its root (a container's file as the container sees it).
    private func inner(_ path: String, _ id: UInt32) -> String {
        let root = roots[Int(id) - 1]
        return root == "/" ? path : String(path.dropFirst(root.count))
    }

    /// The `fim` event of `change`: the header of `by` (the syscall that made it, as the sensor
    /// reported it; Vigil's own process for a change made while it was down), the change as payload.
    /// A change in a container's files has the path its processes see.
    func event(_ change: FIMChange, by: Event, whileDown: Bool) -> Event {
        var made = by
        made.setFD(nil)
        made.payload = .fim(payload(change, whileDown: whileDown))
        return made
    }

    /// The payload of a `fim` event for `change` (what its fields read): a container's file by
    /// its path in the container.
    func payload(_ change: FIMChange, whileDown: Bool) -> Payload.FIM {
        let now = change.after ?? change.before
        let s = change.semantic
        var change = change
        let profile = profile(of: change.path)
        if let container = container(ofPath: change.path) {
            func strip(_ path: String) -> String { path.hasPrefix(container.root + "/") ? String(path.dropFirst(container.root.count)) : path }
            change.path = strip(change.path)
            change.renamedFrom = change.renamedFrom.map(strip)
            change.renamedTo = change.renamedTo.map(strip)
        }
        return Payload.FIM(change: change.change.rawValue, path: change.path, profile: profile,
                           sha256Old: change.before?.sha256 ?? "", sha256: change.after?.sha256 ?? "",
                           size: now?.size ?? 0, mode: now?.mode ?? 0, uid: now?.uid ?? 0, gid: now?.gid ?? 0,
                           diff: change.diff, unified: change.unified ?? [], usersAdded: s?.usersAdded ?? [],
                           usersRemoved: s?.usersRemoved ?? [], uidZero: s?.uidZero ?? [], newUIDZero: s?.newUIDZero ?? false,
                           sudoRulesAdded: s?.sudoRulesAdded ?? [], sudoRulesRemoved: s?.sudoRulesRemoved ?? [],
                           keysAdded: s?.keysAdded ?? [], keysRemoved: s?.keysRemoved ?? [], whileDown: whileDown,
                           summary: change.summary, renamedFrom: change.renamedFrom ?? "", renamedTo: change.renamedTo ?? "")
    }

    /// The sensor's counters (emitted, filtered, lost), summed over CPUs.
    func counters() -> SensorCounters? { try? sensor.counters() }

    /// The sensor in the status: its hook's variant report and its counters per CPU.
    func snapshot() throws -> SensorSnapshot {
        let perCPU = try Sensors.counters(of: sensor.variants.object)
        return SensorSnapshot(name: "fim", hooks: sensor.variants.reports, total: perCPU.reduce(SensorCounters(), +), perCPU: perCPU)
    }
}

/// A container whose files the fim monitor watches (`fim.containers`): as Docker names it, and
/// the root its files are reached through.
struct FIMContainer: Sendable, Equatable {
    /// The full (64 hex) id.
    var id: String
    /// Its name.
    var name: String
    /// Its image.
    var image: String
    /// The runtime that runs it (its events' `container.runtime`).
    var runtime: ContainerRuntime
    /// `/proc/PID/root` of its first process: its root file system as its processes see it (the
    /// overlay's merged directory, with its mounts).
    var root: String
    /// Its watch ids: `firstID..<endID`.
    var firstID: UInt32 = 0, endID: UInt32 = 0
}
