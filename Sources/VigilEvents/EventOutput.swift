#if canImport(Glibc)
import Glibc
#endif

/// Events written as lines (JSON or table rows) to a file descriptor: each event is formatted
/// straight into one reusable buffer, which is written with write(2) once per batch (`flush`,
/// for example from `EventStream`'s `batchDone`), or sooner when it passes `limit`. Driven by
/// one thread.
public final class EventOutput {
    /// Where events go: JSON objects (`EventFormat.appendJSON`) or table rows.
    public enum Format: Sendable {
        case json, table
    }

    /// Output that could not be written: what was lost, and why.
    public struct WriteError: Error, CustomStringConvertible {
        /// The file (or "standard output") and the reason.
        public var description: String
    }

    /// Bytes held at most before writing within a batch: small enough that the buffer stays in a
    /// core's L2 cache beside the ring's records (1 MiB: 0.94 M syscall events/s as JSON, 256 KiB:
    /// 0.98, medians of 5 interleaved runs, BENCHMARKS.md session 22; within this VM's noise).
    public static let limit = 1 << 18

    private let fd: Int32
    private let ownsFD: Bool
    private let name: String
    private let format: Format
    private var buffer = ByteBuffer(capacity: EventOutput.limit + (1 << 16))
    private let memo = JSONMemo()
    private let arguments: JSONArguments
    /// Bytes written so far.
    public private(set) var bytesWritten = 0

    /// Output to `path` (created or truncated with open(2): never replaced by rename, so a
    /// device such as /dev/null stays a device), or to standard output when `path` is nil.
    /// `arguments`: how JSON writes a syscall's arguments.
    public init(path: String?, format: Format, arguments: JSONArguments = .standard) throws(WriteError) {
        self.format = format
        self.arguments = arguments
        if let path {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw WriteError(description: "cannot write \(path): \(String(cString: strerror(errno)))") }
            self.fd = fd
            ownsFD = true
            name = path
        } else {
            fd = STDOUT_FILENO
            ownsFD = false
            name = "standard output"
        }
    }

    deinit {
        try? flush()
        if ownsFD { close(fd) }
    }

    /// Adds one event as a line.
    public func write(_ event: Event) throws(WriteError) {
        switch format {
        case .json:
            EventFormat.appendJSON(event, to: &buffer, memo: memo, arguments: arguments)
        case .table:
            var row = EventFormat.tableRow(event)
            row.withUTF8 { buffer.append(UnsafeRawBufferPointer($0)) }
        }
        try endLine()
    }

    /// Adds one line written by `body` into the buffer, with this output's JSON memo (an alert's
    /// JSON: `Alert.appendJSON`); the newline is added here.
    public func writeLine(_ body: (inout ByteBuffer, JSONMemo) -> Void) throws(WriteError) {
        body(&buffer, memo)
        try endLine()
    }

    /// Ends the line in the buffer; flushes a full buffer.
    private func endLine() throws(WriteError) {
        buffer.append(0x0a)
        if buffer.count >= Self.limit { try flush() }
    }

    /// Adds text as it is (include the newline).
    public func write(_ text: String) throws(WriteError) {
        var text = text
        text.withUTF8 { buffer.append(UnsafeRawBufferPointer($0)) }
        if buffer.count >= Self.limit { try flush() }
    }

    /// Writes what is buffered (write(2) until done). A failed write is an error that says how
    /// much output was lost, never a silent loss.
    public func flush() throws(WriteError) {
        defer { buffer.removeAll() }
        let (written, failure) = buffer.withUnsafeBytes { FileOutput.write(fd, $0) }
        bytesWritten += written
        if let failure {
            throw WriteError(description: "cannot write \(name): \(String(cString: strerror(failure))); "
                + "\(buffer.count - written) bytes of output lost")
        }
    }
}

/// Writing to file descriptors: the one write(2) loop of `vigil trace`, the daemon's rule store
/// and its stdout consumer.
public enum FileOutput {
    /// Writes all of `bytes` to `fd` (write(2), retried on EINTR and short writes). Returns the
    /// bytes written and, when it stopped short, the errno that stopped it.
    public static func write(_ fd: Int32, _ raw: UnsafeRawBufferPointer) -> (written: Int, failure: Int32?) {
        guard let base = raw.baseAddress else { return (0, nil) }
        var offset = 0
        while offset < raw.count {
            let n = Glibc.write(fd, base + offset, raw.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return (offset, n < 0 ? errno : EIO) }
            offset += n
        }
        return (offset, nil)
    }

    /// Writes all of `bytes` to `fd`. Returns 0, or the errno that stopped it.
    @discardableResult
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32 {
        bytes.withUnsafeBytes { write(fd, $0).failure } ?? 0
    }
}
