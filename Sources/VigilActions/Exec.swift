#if canImport(Glibc)
import Glibc
#endif
import Foundation
import VigilEvents

/// `exec`: runs a program with an argv (`posix_spawnp`, never a shell) in its own process
/// group. An argv entry `%field` (`%fd.name`, `%container.label[app]`) is replaced by that field's
/// exact bytes as one argument, whatever they hold (spaces, newlines, escapes, invalid UTF-8);
/// empty when the event lacks the field; `%%` at the start stands for a literal `%`. The alert's JSON arrives on its stdin (then end of file); the environment holds only
/// PATH, the VIGIL_* variables (`variables(for:)`) and the configured `env`. Its stdout and
/// stderr are read, and the last 512 bytes are reported when it fails. An exit status other
/// than 0 is a failure; when `timeout` passes first, the whole process group gets SIGKILL.
struct ExecAction: ActionHandler {
    let argv: [String]
    let env: [String: String]
    let timeout: Duration

    func perform(_ alert: Alert) throws(ActionFailure) -> String {
        var environment = ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        environment.merge(Self.variables(for: alert)) { $1 }
        environment.merge(env) { $1 }
        let child = try ChildProcess(argv: Self.arguments(argv, for: alert), environment: environment)
        let input = Array((alert.json + "\n").utf8)
        let status = child.run(input: input, timeout: timeout)
        switch status {
        case .exited(0): return "\(argv[0]) exited 0"
        case .exited(let code): throw .permanent("\(argv[0]) exited with status \(code)\(child.outputTail)")
        case .signaled(let signal): throw .permanent("\(argv[0]) killed by signal \(signal)\(child.outputTail)")
        case .timedOut: throw .permanent("\(argv[0]) still running after \(timeout); killed its process group\(child.outputTail)")
        }
    }

    /// The argv for `alert`: `%field` entries replaced by the field's bytes (NUL bytes, which no
    /// argument can hold, removed), `%%...` by `%...`, the rest as written.
    static func arguments(_ argv: [String], for alert: Alert) -> [[UInt8]] {
        argv.map { entry in
            if entry.hasPrefix("%%") { return Array(entry.utf8.dropFirst()) }
            if entry.hasPrefix("%") { return (alert.fieldBytes(String(entry.dropFirst())) ?? []).filter { $0 != 0 } }
            return Array(entry.utf8)
        }
    }

    /// Whether an argv entry is a `%field` reference (else text, `%%` included).
    static func isFieldArgument(_ entry: String) -> Bool { entry.hasPrefix("%") && !entry.hasPrefix("%%") }

    /// The VIGIL_* variables of an alert: RULE, PRIORITY, OUTPUT, TIME, HOSTNAME, SOURCE, TAGS
    /// (comma separated), EVENT_TYPE, PID, PROC_NAME, CONTAINER_ID, CONTAINER_NAME (empty when the
    /// event lacks them), SUPPRESSED, and ENFORCEMENT (`Alert.enforcementSummary`).
    static func variables(for alert: Alert) -> [String: String] {
        let variables = [
            "VIGIL_RULE": alert.rule, "VIGIL_PRIORITY": alert.priority.rawValue, "VIGIL_OUTPUT": alert.output,
            "VIGIL_TIME": alert.time, "VIGIL_HOSTNAME": alert.hostname, "VIGIL_SOURCE": alert.source,
            "VIGIL_TAGS": alert.tags.joined(separator: ","), "VIGIL_EVENT_TYPE": alert.fieldText("evt.type") ?? "",
            "VIGIL_PID": String(alert.event.pid), "VIGIL_PROC_NAME": alert.fieldText("proc.name") ?? "",
            "VIGIL_CONTAINER_ID": alert.fieldText("container.id") ?? "", "VIGIL_CONTAINER_NAME": alert.fieldText("container.name") ?? "",
            "VIGIL_SUPPRESSED": String(alert.suppressed), "VIGIL_ENFORCEMENT": alert.enforcementSummary,
        ]
        return variables.mapValues { $0.replacingOccurrences(of: "\0", with: "") }
    }
}

/// A spawned child with its stdin (a socket pair, so writing never raises SIGPIPE) and its
/// merged stdout/stderr (another socket pair).
final class ChildProcess {
    enum Status: Equatable { case exited(Int32), signaled(Int32), timedOut }

    let pid: pid_t
    private let input: Int32
    private let output: Int32
    private var tail: [UInt8] = []

    init(argv: [[UInt8]], environment: [String: String]) throws(ActionFailure) {
        var pair: [Int32] = [-1, -1]
        var outputPair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw .permanent("socketpair: \(Socket.errnoText())")
        }
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &outputPair) == 0 else {
            close(pair[0]); close(pair[1])
            throw .permanent("socketpair: \(Socket.errnoText())")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pair[1], 0)
        posix_spawn_file_actions_adddup2(&actions, outputPair[1], 1)
        posix_spawn_file_actions_adddup2(&actions, outputPair[1], 2)
        for descriptor in Self.inheritableDescriptors() where descriptor > 2 {
            posix_spawn_file_actions_addclose(&actions, descriptor)  // none of the daemon's descriptors
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        sigaddset(&defaultSignals, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let args: [UnsafeMutablePointer<CChar>?] = argv.map { bytes in
            let copy = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
            for (index, byte) in bytes.enumerated() { copy[index] = CChar(bitPattern: byte) }
            copy[bytes.count] = 0
            return copy
        } + [nil]
        let envs = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            args.forEach { $0?.deallocate() }
            envs.forEach { free($0) }
        }
        var pid = pid_t()
        guard let program = args.first.flatMap({ $0 }) else {
            close(pair[0]); close(pair[1]); close(outputPair[0]); close(outputPair[1])
            throw .permanent("exec: no program to run (empty argv)")
        }
        let status = posix_spawnp(&pid, program, &actions, &attributes, args, envs)
        close(pair[1])
        close(outputPair[1])
        guard status == 0 else {
            close(pair[0]); close(outputPair[0])
            throw .permanent("cannot run \(String(decoding: argv[0], as: UTF8.self)): \(Socket.errnoText(status))")
        }
        self.pid = pid
        input = pair[0]
        output = outputPair[0]
        _ = fcntl(input, F_SETFL, fcntl(input, F_GETFL) | O_NONBLOCK)
        _ = fcntl(output, F_SETFL, fcntl(output, F_GETFL) | O_NONBLOCK)
    }

    /// This process's open descriptors without `FD_CLOEXEC` (from /proc/self/fd).
    static func inheritableDescriptors() -> [Int32] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return names.compactMap { Int32($0) }.filter { descriptor in
            let flags = fcntl(descriptor, F_GETFD)
            return flags >= 0 && flags & FD_CLOEXEC == 0
        }
    }

    deinit {
        close(input)
        close(output)
    }

    /// `: ` and the last bytes the child printed (escaped as terminal text: a program that prints
    /// an event's field cannot put a line break or an escape into the log or the status), or nothing.
    var outputTail: String {
        let text = ByteString(tail).trimmingASCIIWhitespace
        return text.isEmpty ? "" : ": " + text.escapedForTerminal
    }

    /// Feeds `input`, collects output, and waits for the child (SIGKILL to its group at `timeout`).
    func run(input bytes: [UInt8], timeout: Duration) -> Status {
        let deadline = ContinuousClock.now + timeout
        var written = 0
        var inputOpen = true
        var outputOpen = true
        while true {
            var result: Int32 = 0
            let reaped = waitpid(pid, &result, WNOHANG)
            if reaped == pid {
                drainOutput()
                if result & 0x7f == 0 { return .exited((result >> 8) & 0xff) }
                return .signaled(result & 0x7f)
            }
            if ContinuousClock.now >= deadline {
                Glibc.kill(-pid, SIGKILL)
                while waitpid(pid, &result, 0) < 0 && errno == EINTR {}
                drainOutput()
                return .timedOut
            }
            if inputOpen, written < bytes.count {
                let sent = bytes[written...].withUnsafeBytes { send(input, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent > 0 { written += sent } else if sent < 0, errno != EAGAIN, errno != EINTR { inputOpen = false }
            }
            if inputOpen, written >= bytes.count {
                shutdown(input, Int32(SHUT_WR))  // end of file on the child's stdin
                inputOpen = false
            }
            if outputOpen { outputOpen = drainOutput() }
            var fds = [pollfd(fd: output, events: Int16(POLLIN), revents: 0)]
            if inputOpen { fds.append(pollfd(fd: input, events: Int16(POLLOUT), revents: 0)) }
            if !outputOpen { fds.removeFirst() }
            _ = poll(&fds, nfds_t(fds.count), 10)  // also the pace of waitpid checks
        }
    }

    /// Reads what the child printed, keeping the last 512 bytes; false at end of file.
    @discardableResult
    private func drainOutput() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            if count > 0 {
                tail += buffer.prefix(count)
                if tail.count > 512 { tail.removeFirst(tail.count - 512) }
                continue
            }
            return count < 0 && (errno == EAGAIN || errno == EINTR)
        }
    }
}
