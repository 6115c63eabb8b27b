import CVigilABI

extension Payload {
    /// A line an interactive bash read (the shell sensor's uretprobe on readline, bpf/shell.bpf.c):
    /// what the user typed (or pasted), as readline returned it, without its newline. The event's
    /// header is the shell.
    public struct ShellLine: Sendable {
        /// The line's exact bytes, at most 511 (`truncated` when it was longer).
        public var line: ByteString
        /// Whether the line was longer than the 511 bytes kept.
        public var truncated: Bool
        /// The controlling terminal's name (e.g. pts0), empty when none.
        public var tty: String
        /// The controlling terminal as a number (like tty_nr in /proc/PID/stat), 0 when none.
        public var ttyNumber: UInt32
        /// The session id: the session leader's pid (as the host sees it), from the kernel at the read.
        public var sessionID: UInt32

        /// Creates the payload.
        public init(line: ByteString, truncated: Bool = false, tty: String = "", ttyNumber: UInt32 = 0, sessionID: UInt32 = 0) {
            self.line = line
            self.truncated = truncated
            self.tty = tty
            self.ttyNumber = ttyNumber
            self.sessionID = sessionID
        }
    }
}

extension EventDecoder {
    func decodeShell(_ record: UnsafeRawBufferPointer) -> Payload? {
        guard record.count >= MemoryLayout<vigil_shell_event>.size else { return nil }
        let e = record.loadUnaligned(as: vigil_shell_event.self)
        let length = min(Int(e.line_len), MemoryLayout.size(ofValue: e.line) - 1)
        let line = withUnsafeBytes(of: e.line) { ByteString(Array($0.prefix(length))) }
        let tty = withUnsafeBytes(of: e.tty) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return .shell(.init(line: line, truncated: e.flags & UInt8(VIGIL_SHELL_TRUNCATED.rawValue) != 0, tty: tty,
                            ttyNumber: tty.isEmpty ? 0 : ttyNumberOf(major: e.tty_major, minor: e.tty_minor), sessionID: e.sid))
    }
}

/// The fields of shell lines (kind `shell`, evt.type bash_readline). The shell's process, user,
/// container and ancestry are the usual proc.*, user.*, container.* fields.
public enum ShellFields {
    static func line(_ e: Event) -> Payload.ShellLine? { if case .shell(let s) = e.payload { return s }; return nil }

    static let fields: [FieldDefinition] = [
        .init("shell.line", .string, [.shell], "The line an interactive bash read (typed or pasted), exact bytes, without its newline; at most 511 bytes (shell.truncated).") { e, _ in
            line(e).map { .string($0.line) }
        },
        .init("shell.truncated", .bool, [.shell], "Whether shell.line was longer than 511 bytes and was cut.") { e, _ in
            line(e).map { .bool($0.truncated) }
        },
        .init("shell.tty", .string, [.shell], "The shell's controlling terminal at the read, e.g. pts0 (empty when none; also in proc.ttyname).") { e, _ in
            line(e).map { Fields.str($0.tty) }
        },
        .init("shell.sid", .uint, [.shell], "The shell's session id at the read (the session leader's pid as the host sees it), from the kernel.") { e, _ in
            line(e).map { .uint(UInt64($0.sessionID)) }
        },
    ]
}
