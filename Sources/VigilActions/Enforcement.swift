#if canImport(Glibc)
import Glibc
#endif
import Foundation
import VigilContainers

/// `kill`: SIGKILL to the event's process (its whole thread group) with `kill(2)`.
///
/// Refused: pid 0 and 1, and Vigil itself. When the event carries a boot time, a process whose
/// start (/proc/PID/stat, boot clock) is later than the event is another process that reused
/// the pid: refused as "process gone". A process that already exited is "process gone" too.
struct KillAction: ActionHandler {
    func perform(_ alert: Alert) throws(ActionFailure) -> String {
        let pid = Int32(bitPattern: alert.event.pid)
        guard pid > 1 else { throw .permanent("refused: will not kill pid \(pid)") }
        guard pid != getpid() else { throw .permanent("refused: pid \(pid) is vigil itself") }
        if alert.event.bootTimeNs > 0, let started = Self.startBootTimeNs(pid) {
            // /proc reports start time in clock ticks (10 ms): allow one tick of rounding.
            guard started <= alert.event.bootTimeNs + Self.tickNs else {
                throw .permanent("process gone: pid \(pid) now belongs to a process started after the event")
            }
        }
        guard Glibc.kill(pid, SIGKILL) == 0 else {
            let code = errno
            throw .permanent(code == ESRCH ? "process gone: pid \(pid) has exited" : "kill(\(pid), SIGKILL): \(Socket.errnoText(code))")
        }
        return "SIGKILL sent to pid \(pid)"
    }

    static let tickNs = UInt64(1_000_000_000 / max(1, sysconf(Int32(_SC_CLK_TCK))))

    /// When process `pid` started, in nanoseconds since boot (field 22 of /proc/PID/stat).
    static func startBootTimeNs(_ pid: Int32) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = UInt64(fields[19]) else { return nil }
        return ticks * tickNs
    }
}

/// `container_pause`, `container_unpause`, `container_stop`, `container_kill`,
/// `container_checkpoint`: the Docker Engine API call for the event's container. Fails (never silently) when the event is not in a
/// container, the container is not Docker's, or the engine is unreachable or refuses.
struct ContainerAction: ActionHandler {
    enum Operation: Sendable {
        case pause, unpause, stop(grace: Int), kill
        /// A CRIU checkpoint into `directory` (nil: the engine's own); `exit`: the container stops after.
        case checkpoint(directory: String?, exit: Bool)
    }

    let operation: Operation
    let client: DockerClient

    func perform(_ alert: Alert) throws(ActionFailure) -> String {
        let container = alert.event.container
        guard !container.fullID.isEmpty else {
            throw .permanent("not in a container (\(container.runtime == "host" ? "on the host" : "runtime \(container.runtime)"))")
        }
        guard container.runtime == "docker" else {
            throw .permanent("container \(container.fullID.prefix(12)) runs under \(container.runtime), not Docker")
        }
        let id = container.fullID
        do {
            switch operation {
            case .pause:
                try client.pause(id)
                return "paused container \(id.prefix(12))"
            case .unpause:
                try client.unpause(id)
                return "unpaused container \(id.prefix(12))"
            case .stop(let grace):
                let stopped = try client.stop(id, graceSeconds: grace)
                return stopped ? "stopped container \(id.prefix(12))" : "container \(id.prefix(12)) was already stopped"
            case .kill:
                try client.kill(id)
                return "killed container \(id.prefix(12))"
            case .checkpoint(let directory, let exit):
                let name = Self.checkpointName(alert)
                try client.checkpoint(id, name: name, directory: directory, exit: exit)
                return "checkpointed container \(id.prefix(12)) as \(name) in \(directory ?? "the engine's directory")"
                    + (exit ? " (stopped; docker start --checkpoint \(name)\(directory.map { " --checkpoint-dir \($0)" } ?? "") restores it)" : " (still running)")
            }
        } catch {
            throw .permanent(error.description + Self.criuErrors(in: error.description))
        }
    }

    /// The checkpoint's name: `vigil-` and the event's time (ns), unique per alert and valid as
    /// a Docker checkpoint id.
    static func checkpointName(_ alert: Alert) -> String { "vigil-\(alert.event.timeNs)" }

    /// When the engine's message names CRIU's log (`criu failed: ... path= FILE: ...`) and that
    /// file is readable here, its first error lines (`; criu: Error (...)`), so the alert says
    /// which step failed; else nothing.
    static func criuErrors(in message: String) -> String {
        guard let start = message.range(of: "path= ")?.upperBound else { return "" }
        let rest = message[start...]
        let path = String(rest.prefix { $0 != ":" && $0 != " " })
        guard path.hasPrefix("/"), let log = try? String(contentsOfFile: path, encoding: .utf8) else { return "" }
        let errors = log.split(separator: "\n").filter { $0.contains("Error (") }.prefix(3)
            .map { line in line.drop { $0 != "E" } }
        return errors.isEmpty ? "" : "; criu: " + errors.joined(separator: "; ")
    }
}
