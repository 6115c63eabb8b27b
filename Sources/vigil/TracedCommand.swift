import ArgumentParser
import Foundation
import VigilEvents

/// The command `vigil trace` runs (`vigil trace [OPTIONS] -- CMD ARGS`, with or without
/// --summary): started once the sensors are attached, its process tree followed (in the kernel by
/// `KernelFilter.followChildren`, here by `tree`), its exit noticed without blocking; vigil then
/// exits with its status.
struct TracedCommand {
    /// The command and the processes it forks.
    var tree: ProcessTree
    private let pid: pid_t
    /// Its wait status once it has exited.
    private var status: Int32?

    /// Starts `command` (its first word searched in PATH). Exit 127 when it cannot run.
    init(_ command: [String]) throws {
        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, command[0], nil, nil, &argv, environ)
        guard rc == 0 else {
            Log.info("cannot run '\(command[0])': \(String(cString: strerror(rc)))")
            throw ExitCode(127)
        }
        self.pid = pid
        tree = ProcessTree(root: UInt32(pid))
    }

    /// Whether it has exited (reaped here, once).
    mutating func exited() -> Bool {
        if status == nil {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { self.status = status }
        }
        return status != nil
    }

    /// Ends vigil with the command's status when it is not 0: its exit code, or 128 plus the
    /// signal that killed it (as a shell reports it). Nothing when it has not exited.
    func exitWithItsStatus() throws {
        guard let status else { return }
        let signal = status & 0x7f
        let code = signal == 0 ? (status >> 8) & 0xff : 128 + signal
        if code != 0 { throw ExitCode(code) }
    }
}

/// The processes of a traced command from its exec on: the command and every process it forks,
/// as the fork events say (their parent is followed, so children of children count too). What
/// the spawned process does before it execs the command (the spawn resetting signal handlers, as
/// vigil) is not the command's.
struct ProcessTree {
    /// Process ids (thread group ids) of the command and its descendants.
    private(set) var pids: Set<UInt32>
    private let root: UInt32
    private var rootExecuted = false

    /// The kinds the tree is followed by (`vigil trace` reads them even when it does not show them).
    static let followedKinds: KindSet = [.exec, .fork]

    init(root: UInt32) {
        self.root = root
        pids = [root]
    }

    /// Whether `event` comes from the tree; a fork in the tree adds the child.
    mutating func contains(_ event: Event) -> Bool {
        if event.pid == root && !rootExecuted {
            guard event.kind == .exec else { return false }
            rootExecuted = true
            return true
        }
        if case .fork(let f) = event.payload, pids.contains(event.pid) {
            if !f.isThread { pids.insert(f.childPID) }
            return true
        }
        if pids.contains(event.pid) { return true }
        // A child whose fork event was not seen (e.g. lost): its parent says it belongs.
        if pids.contains(event.ppid) {
            pids.insert(event.pid)
            return true
        }
        return false
    }
}
