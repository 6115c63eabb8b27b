import Foundation
import VigilEvents

/// What Vigil knows about one live process.
public struct ProcessRecord: Sendable, Equatable {
    public var pid: UInt32
    public var ppid: UInt32
    public var comm: ByteString
    public var executablePath: ByteString?
    public var arguments: [ByteString]?
    public var cwd: ByteString?
    public var ttyNumber: UInt32?
    public var loginUID: UInt32?
    /// When the process started (its clone), ns since boot (the kernel's start_boottime); nil
    /// when unknown. Gives every event its `proc.duration`.
    public var startTimeNs: UInt64? = nil
    /// The container the process was last found in; a fork hands it to the child and an exec
    /// keeps it, so a process whose cgroup cannot name its container (gone before it was seen,
    /// or not yet joined) still has its ancestors' one. nil: not known.
    public var container: ContainerContext? = nil
    /// Session, process group, capabilities, executable file (/proc after exec; a fork copies
    /// the parent's).
    public var details = ProcessDetails()
}

/// The process tree: seeded from /proc at start (so processes that already run are known), then
/// kept current by exec, fork and exit events. Gives events their parent names and ancestry.
/// Driven by one thread (the event pipeline).
public final class ProcessTable {
    private var records: [UInt32: ProcessRecord] = [:]
    /// How many ancestors enrichment walks at most.
    public let maxAncestors: Int
    /// Changes whenever a record is added, changed or removed: a context built at one version
    /// (ancestry included) is still right while the version stays the same.
    public private(set) var version: UInt64 = 0

    /// Where /proc is (the working directory of a process the table does not know).
    private var procRoot = "/proc"

    /// Whether records keep each process's environment (proc.env): only while a rule or output
    /// uses it (`RuleSet.readsProcessEnvironment`), since reading every process's
    /// /proc/PID/environ is itself what detections of environment theft watch for, and costs a
    /// read per exec. Turned on, it reads the environment of every process already known.
    public var readsEnvironment = false {
        didSet {
            guard readsEnvironment != oldValue else { return }
            for pid in Array(records.keys) {
                if readsEnvironment {
                    records[pid]?.details.readEnvironment(pid: pid, procRoot: procRoot)
                } else {
                    records[pid]?.details.environment = nil
                    records[pid]?.details.environmentTruncated = nil
                }
            }
            version &+= 1
        }
    }

    /// An empty table.
    public init(maxAncestors: Int = 16) { self.maxAncestors = maxAncestors }

    /// Number of known processes.
    public var count: Int { records.count }

    /// The record of `pid`, if known.
    public func record(_ pid: UInt32) -> ProcessRecord? { records[pid] }

    /// Reads every process under `procRoot` (comm, ppid, tty, argv, exe, cwd, loginuid).
    public func seed(procRoot: String = "/proc") {
        self.procRoot = procRoot
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: procRoot) else { return }
        for entry in entries {
            guard let pid = UInt32(entry), let record = Self.read(pid: pid, procRoot: procRoot, environment: readsEnvironment) else { continue }
            records[pid] = record
        }
        version &+= 1
    }

    /// Reads one process from /proc, or nil when it is gone.
    static func read(pid: UInt32, procRoot: String, environment: Bool) -> ProcessRecord? {
        let dir = "\(procRoot)/\(pid)"
        guard let stat = try? Data(contentsOf: URL(fileURLWithPath: "\(dir)/stat")),
              let open = stat.firstIndex(of: UInt8(ascii: "(")), let close = stat.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let comm = ByteString(stat[(open + 1)..<close])
        // After "comm) ": state ppid pgrp session tty_nr ...
        let rest = String(decoding: stat[(close + 2)...], as: UTF8.self).split(separator: " ")
        guard rest.count > 4, let ppid = UInt32(rest[1]) else { return nil }
        let tty = UInt32(rest[4]) ?? 0
        // Field 22, starttime: clock ticks since boot (the kernel's start_boottime).
        let startTimeNs = rest.count > 19 ? UInt64(rest[19]).map { $0 &* (1_000_000_000 / clockTicksPerSecond) } : nil
        var arguments: [ByteString]?
        if let cmdline = try? Data(contentsOf: URL(fileURLWithPath: "\(dir)/cmdline")), !cmdline.isEmpty {
            arguments = cmdline.split(separator: 0, omittingEmptySubsequences: false).map { ByteString($0) }
            if cmdline.last == 0 { arguments?.removeLast() }
        }
        let link = { (name: String) -> ByteString? in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\(name)")).map { ByteString($0) }
        }
        let loginUID = (try? String(contentsOfFile: "\(dir)/loginuid", encoding: .utf8)).flatMap { UInt32($0) }
        return ProcessRecord(pid: pid, ppid: ppid, comm: comm, executablePath: link("exe"), arguments: arguments,
                             cwd: link("cwd"), ttyNumber: tty, loginUID: loginUID, startTimeNs: startTimeNs,
                             details: ProcessDetails.read(pid: pid, procRoot: procRoot, environment: environment) ?? ProcessDetails())
    }

    /// sysconf(_SC_CLK_TCK): the unit of /proc/PID/stat's times (100 on Linux).
    static let clockTicksPerSecond: UInt64 = {
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        return ticks > 0 ? UInt64(ticks) : 100
    }()

    /// Updates the table from `event` and fills `event.process` (not the user names).
    public func apply(_ event: inout Event) {
        update(with: event)
        event.process = context(pid: event.pid, ppid: event.ppid)
        finish(event)
    }

    /// Updates the table from `event` before its context is read: an exec replaces the record, a
    /// fork adds the child (a copy of the parent but for its pid in its namespace, which its first
    /// event from the host's pid namespace tells), any other event adds a process not yet known.
    public func update(with event: Event) {
        switch event.payload {
        case .exec(let x):
            records[event.pid] = ProcessRecord(pid: event.pid, ppid: event.ppid, comm: event.comm,
                                               executablePath: x.executablePath, arguments: x.arguments, cwd: x.cwd,
                                               ttyNumber: x.ttyNumber, loginUID: x.loginUID,
                                               startTimeNs: x.startTimeNs != 0 ? x.startTimeNs : records[event.pid]?.startTimeNs,
                                               container: records[event.pid]?.container,
                                               details: Self.detailsAfterExec(pid: event.pid, procRoot: procRoot, environment: readsEnvironment,
                                                                             before: records[event.pid]?.details))
            version &+= 1
        case .fork(let f) where !f.isThread:
            var child = records[event.pid] ?? ProcessRecord(pid: event.pid, ppid: event.ppid, comm: event.comm)
            child.pid = f.childPID
            child.ppid = event.pid
            child.startTimeNs = f.childStartTimeNs != 0 ? f.childStartTimeNs : nil
            // The parent's session, group and environment are the child's; its pid is not.
            child.details.vpid = nil
            records[f.childPID] = child
            version &+= 1
        default:
            if records.index(forKey: event.pid) == nil {
                var record = ProcessRecord(pid: event.pid, ppid: event.ppid, comm: event.comm)
                record.details = ProcessDetails.read(pid: event.pid, procRoot: procRoot, environment: readsEnvironment) ?? ProcessDetails()
                records[event.pid] = record
                version &+= 1
            }
        }
        // An event of a process whose namespace pid is not known (a forked child, an exec read
        // too late) from the host's pid namespace: its pid there is its pid.
        if event.pidNamespace == Namespaces.hostPID, let i = records.index(forKey: event.pid), records.values[i].details.vpid == nil {
            records.values[i].details.vpid = event.pid
            version &+= 1
        }
    }

    /// The working directory of `pid`: the table's (kept by exec, fork, chdir and fchdir), else
    /// the kernel's (/proc/PID/cwd, then kept); nil when neither knows it.
    public func cwd(pid: UInt32) -> ByteString? {
        if let cwd = records[pid]?.cwd { return cwd }
        guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(procRoot)/\(pid)/cwd") else { return nil }
        let cwd = ByteString(link)
        if let index = records.index(forKey: pid) {
            records.values[index].cwd = cwd
            version &+= 1
        }
        return cwd
    }

    /// Sets the working directory of `pid` (a chdir or fchdir): proc.cwd of its next events.
    public func setCwd(_ cwd: ByteString, pid: UInt32) {
        guard let index = records.index(forKey: pid), records.values[index].cwd != cwd else { return }
        records.values[index].cwd = cwd
        version &+= 1
    }

    /// What /proc says of `pid` after its exec (capabilities, executable and environment change;
    /// session, group and pids stay); what it had before when the process is already gone,
    /// without the executable's details (another file now) nor the environment (the exec was
    /// given a new one).
    static func detailsAfterExec(pid: UInt32, procRoot: String, environment: Bool, before: ProcessDetails?) -> ProcessDetails {
        if let now = ProcessDetails.read(pid: pid, procRoot: procRoot, environment: environment) { return now }
        var kept = before ?? ProcessDetails()
        kept.exe = nil
        kept.exeFromMemfd = nil
        kept.environment = nil
        kept.environmentTruncated = nil
        return kept
    }

    /// The container `pid` was last found in (its own or, through forks, an ancestor's).
    public func container(pid: UInt32) -> ContainerContext? { records[pid]?.container }

    /// Records the container `pid` was found in. Not a change of `version`: process contexts do
    /// not hold it.
    public func setContainer(_ container: ContainerContext, pid: UInt32) {
        guard let index = records.index(forKey: pid), records.values[index].container != container else { return }
        records.values[index].container = container
    }

    /// Updates the table after `event`'s context was read: an exit removes the process.
    public func finish(_ event: Event) {
        if case .exit = event.payload, records.removeValue(forKey: event.pid) != nil { version &+= 1 }
    }

    /// What the table knows of `pid` (whose parent is `ppid`, as the kernel said): its record's
    /// details and the ancestors, walked from `ppid`. A new context (one allocation, plus the
    /// ancestor lists) for the caller to keep while `version` stays the same.
    public func context(pid: UInt32, ppid: UInt32) -> ProcessContext {
        var context = ProcessContext()
        let record = records[pid]
        context.executablePath = record?.executablePath
        context.arguments = record?.arguments
        context.cwd = record?.cwd
        context.ttyNumber = record?.ttyNumber
        context.loginUID = record?.loginUID
        context.startTimeNs = record?.startTimeNs
        var names: [ByteString] = [], pids: [UInt32] = []
        var next = ppid
        while pids.count < maxAncestors, next != 0, let ancestor = records[next] {
            names.append(ancestor.comm)
            pids.append(next)
            next = ancestor.ppid
        }
        context.ancestorNames = names
        context.ancestorPIDs = pids
        context.parentArguments = records[ppid]?.arguments
        // Falco's lineage fields: the ancestors' argv[0] and executables, the session and
        // process group leaders.
        context.ancestorExes = pids.map { records[$0]?.arguments?.first ?? ByteString([UInt8]()) }
        context.ancestorExecutablePaths = pids.map { records[$0]?.executablePath ?? ByteString([UInt8]()) }
        if let details = record?.details {
            context.details = details
            if let sid = details.sid { context.sessionLeaderName = sid == pid ? record?.comm : records[sid]?.comm }
            if let pgid = details.pgid {
                let leader = pgid == pid ? record : records[pgid]
                context.groupLeaderName = leader?.comm
                context.groupLeaderExe = leader?.arguments?.first
                context.groupLeaderExecutablePath = leader?.executablePath
            }
        }
        return context
    }
}

extension ProcessRecord {
    init(pid: UInt32, ppid: UInt32, comm: ByteString) {
        self.init(pid: pid, ppid: ppid, comm: comm, executablePath: nil, arguments: nil, cwd: nil, ttyNumber: nil, loginUID: nil,
                  container: nil, details: ProcessDetails())
    }
}
