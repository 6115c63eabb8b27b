/// open(2) flags as text.
public enum OpenFlags {
    private static let named: [(UInt32, StaticString)] = [
        (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"), (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"), (0o4010000, "O_SYNC"), (0o10000, "O_DSYNC"), (0o20000, "O_ASYNC"), (0o40000, "O_DIRECT"),
        (0o100000, "O_LARGEFILE"), (0o20200000, "O_TMPFILE"), (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"),
        (0o1000000, "O_NOATIME"), (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"),
    ]
    private static let accessModes: [StaticString] = ["O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"]

    /// E.g. `O_RDONLY|O_CLOEXEC`; unknown bits as a hex number at the end.
    public static func describe(_ flags: UInt32) -> String {
        var out = ByteBuffer(capacity: 128)
        append(flags, to: &out)
        return out.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// Appends `describe(flags)` (plain ASCII, nothing to escape).
    public static func append(_ flags: UInt32, to out: inout ByteBuffer) {
        out.append(accessModes[Int(flags & 3)])
        var rest = flags & ~3
        for (bits, name) in named where rest & bits == bits {
            out.append(0x7c)
            out.append(name)
            rest &= ~bits
        }
        if rest != 0 {
            out.append("|0x")
            out.appendHexDigits(UInt64(rest))
        }
    }
}

/// errno numbers to names (x86_64 Linux).
public enum ErrnoNames {
    private static let names: [Int32: String] = [
        1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG", 8: "ENOEXEC", 9: "EBADF",
        10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 16: "EBUSY", 17: "EEXIST", 18: "EXDEV",
        19: "ENODEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 23: "ENFILE", 24: "EMFILE", 25: "ENOTTY", 26: "ETXTBSY",
        27: "EFBIG", 28: "ENOSPC", 30: "EROFS", 31: "EMLINK", 36: "ENAMETOOLONG", 38: "ENOSYS", 40: "ELOOP",
        95: "EOPNOTSUPP", 122: "EDQUOT",
        // The rest of Linux's (asm-generic/errno-base.h, errno.h), for the syscalls of the table.
        15: "ENOTBLK", 29: "ESPIPE", 32: "EPIPE", 33: "EDOM", 34: "ERANGE", 35: "EDEADLK", 37: "ENOLCK", 39: "ENOTEMPTY",
        42: "ENOMSG", 43: "EIDRM", 61: "ENODATA", 62: "ETIME", 71: "EPROTO", 74: "EBADMSG", 75: "EOVERFLOW", 77: "EBADFD",
        84: "EILSEQ", 88: "ENOTSOCK", 89: "EDESTADDRREQ", 90: "EMSGSIZE", 91: "EPROTOTYPE", 92: "ENOPROTOOPT",
        93: "EPROTONOSUPPORT", 94: "ESOCKTNOSUPPORT", 96: "EPFNOSUPPORT", 97: "EAFNOSUPPORT", 98: "EADDRINUSE",
        99: "EADDRNOTAVAIL", 100: "ENETDOWN", 101: "ENETUNREACH", 102: "ENETRESET", 103: "ECONNABORTED", 104: "ECONNRESET",
        105: "ENOBUFS", 106: "EISCONN", 107: "ENOTCONN", 108: "ESHUTDOWN", 110: "ETIMEDOUT", 111: "ECONNREFUSED",
        112: "EHOSTDOWN", 113: "EHOSTUNREACH", 114: "EALREADY", 115: "EINPROGRESS", 116: "ESTALE", 121: "EREMOTEIO",
        125: "ECANCELED", 126: "ENOKEY", 130: "EOWNERDEAD", 512: "ERESTARTSYS", 513: "ERESTARTNOINTR",
        514: "ERESTARTNOHAND", 516: "ERESTART_RESTARTBLOCK", 524: "ENOTSUPP",
    ]
    private static let nameBytes: [Int32: ByteString] = names.mapValues { ByteString($0) }

    /// The symbolic name, or `E<number>` when unknown.
    public static func name(_ errno: Int32) -> String { names[errno] ?? "E\(errno)" }

    /// The symbolic name as bytes (made once for the known ones).
    public static func bytes(_ errno: Int32) -> ByteString { nameBytes[errno] ?? ByteString(name(errno)) }

    /// The name of a failed call's result (-errno). A result no errno gives (beyond Int32, as a
    /// hostile or corrupt record may carry) is `E` and its number, never a trap.
    public static func name(result: Int64) -> String {
        let errno = 0 &- result
        return Int32(exactly: errno).map { name($0) } ?? "E\(errno)"
    }

    /// `name(result:)` as bytes.
    public static func bytes(result: Int64) -> ByteString {
        let errno = 0 &- result
        return Int32(exactly: errno).map { bytes($0) } ?? ByteString("E\(errno)")
    }
}

/// Time formatting without Foundation.
public enum Timestamp {
    /// ISO 8601 UTC with nanoseconds, e.g. 2026-11-22T23:13:59.123456789Z.
    public static func iso8601(_ epochNs: UInt64) -> String {
        var out = ByteBuffer(capacity: 64)
        appendISO8601(epochNs, to: &out)
        return out.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// Nanoseconds since the epoch of an RFC 3339 UTC time (`2026-12-05T02:40:42.123456789Z`, the
    /// fraction optional, up to 9 digits), as container runtimes write start times; nil for any
    /// other text or a time before 1970 (Docker's `0001-01-01T00:00:00Z`: never started).
    public static func parseISO8601(_ text: String) -> UInt64? {
        let b = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= b.count else { return nil }
            var n: Int64 = 0
            for i in range { guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }; n = n * 10 + Int64(b[i] - 0x30) }
            return n
        }
        guard b.count >= 20, b[4] == 0x2d, b[7] == 0x2d, b[10] == 0x54, b[13] == 0x3a, b[16] == 0x3a, b.last == 0x5a,
              let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var nanos: Int64 = 0
        if b.count > 20 {
            let digits = b.count - 21
            guard b[19] == 0x2e, (1...9).contains(digits), let fraction = number(20..<(b.count - 1)) else { return nil }
            nanos = fraction
            for _ in digits..<9 { nanos *= 10 }
        } else if b[19] != 0x5a {
            return nil
        }
        // Days since 1970-01-01 from the civil date (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        let seconds = days * 86400 + hour * 3600 + minute * 60 + second
        guard seconds >= 0 else { return nil }
        return UInt64(seconds) * 1_000_000_000 + UInt64(nanos)
    }

    /// The text of one second, `YYYY-MM-DDTHH:MM:SS.` (20 bytes), kept by a writer of many
    /// events (`JSONMemo`): events of that second write only their nanoseconds.
    struct SecondText {
        var second = UInt64.max
        var text: (UInt64, UInt64, UInt64) = (0, 0, 0)
    }

    /// `appendISO8601(_:to:)` with the text of the second before the fraction taken from (or
    /// made into) `cache`: the same bytes.
    static func appendISO8601(_ epochNs: UInt64, to out: inout ByteBuffer, cache: UnsafeMutablePointer<SecondText>) {
        let second = epochNs / 1_000_000_000
        if cache.pointee.second != second {
            var whole = ByteBuffer(capacity: 64)
            appendISO8601(second * 1_000_000_000, to: &whole)
            guard whole.count == 30 else { return appendISO8601(epochNs, to: &out) } // beyond year 9999
            whole.withUnsafeBytes { bytes in
                withUnsafeMutableBytes(of: &cache.pointee.text) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<20])) }
            }
            cache.pointee.second = second
        }
        out.withUnfilled(30) { o in
            withUnsafeBytes(of: cache.pointee.text) { UnsafeMutableRawPointer(o).copyMemory(from: $0.baseAddress!, byteCount: 20) }
            ByteBuffer.writePadded(epochNs % 1_000_000_000, digits: 9, at: o + 20)
            o[29] = 0x5a
        }
    }

    /// Appends `iso8601(epochNs)` without building a String.
    public static func appendISO8601(_ epochNs: UInt64, to out: inout ByteBuffer) {
        let seconds = epochNs / 1_000_000_000, nanos = epochNs % 1_000_000_000
        let secondOfDay = seconds % 86400
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let days = Int64(seconds / 86400) + 719_468
        let era = days / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = UInt64(yearOfEra + era * 400 + (month <= 2 ? 1 : 0))
        guard year < 10_000 else { // beyond the fixed layout below: the general way
            out.append(decimal: year, width: 4)
            for (separator, value, width) in [(0x2d, UInt64(month), 2), (0x2d, UInt64(day), 2), (0x54, secondOfDay / 3600, 2),
                                              (0x3a, secondOfDay / 60 % 60, 2), (0x3a, secondOfDay % 60, 2), (0x2e, nanos, 9)] {
                out.append(UInt8(separator))
                out.append(decimal: value, width: width)
            }
            out.append(0x5a)
            return
        }
        // YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ, 30 bytes, written in place.
        out.withUnfilled(30) { o in
            ByteBuffer.writePadded(year, digits: 4, at: o)
            o[4] = 0x2d
            ByteBuffer.writePadded(UInt64(month), digits: 2, at: o + 5)
            o[7] = 0x2d
            ByteBuffer.writePadded(UInt64(day), digits: 2, at: o + 8)
            o[10] = 0x54
            ByteBuffer.writePadded(secondOfDay / 3600, digits: 2, at: o + 11)
            o[13] = 0x3a
            ByteBuffer.writePadded(secondOfDay / 60 % 60, digits: 2, at: o + 14)
            o[16] = 0x3a
            ByteBuffer.writePadded(secondOfDay % 60, digits: 2, at: o + 17)
            o[19] = 0x2e
            ByteBuffer.writePadded(nanos, digits: 9, at: o + 20)
            o[29] = 0x5a
        }
    }
}

/// The two output forms of an event.
public enum EventFormat {
    /// One JSON object on one line: every field the event's kind carries, keyed by field name,
    /// in catalogue order (documented in docs/fields.md). Byte strings keep their exact bytes
    /// (invalid UTF-8 as \udcXX escapes).
    public static func json(_ event: Event) -> String {
        var out = ByteBuffer(capacity: 2048)
        appendJSON(event, to: &out)
        return out.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// Appends the JSON object of `event` (no newline) as UTF-8 bytes.
    public static func appendJSON(_ event: Event, to out: inout [UInt8]) {
        var buffer = ByteBuffer(capacity: 2048)
        appendJSON(event, to: &buffer)
        buffer.withUnsafeBytes { out.append(contentsOf: $0) }
    }

    /// Appends the JSON object of `event` (no newline): the fast path for output. Fields that
    /// depend only on the process (or the container) are rendered once per process-table
    /// context (or container) and copied for the events that share it.
    public static func appendJSON(_ event: Event, to out: inout ByteBuffer) {
        JSONPlan.forKind[event.kind.index].append(event, to: &out, memo: nil)
        appendProgramFields(event, to: &out)
    }

    /// A program bundle's event: its record's members (`prog.BUNDLE.FIELD`) before the closing
    /// brace (the plan is per kind; the members are per bundle).
    @inline(__always)
    static func appendProgramFields(_ event: Event, to out: inout ByteBuffer) {
        guard event.kind == .program, out.count > 0 else { return }
        out.truncate(to: out.count - 1)
        ProgramFields.appendJSON(event, to: &out)
        out.append(0x7d)
    }

    /// The same, with the fields an open's payload decides copied from `memo` when a recent
    /// event had the same payload (see `JSONMemo`): for a writer formatting many events.
    public static func appendJSON(_ event: Event, to out: inout ByteBuffer, memo: JSONMemo,
                                  arguments: JSONArguments = .standard) {
        memo.plan(event.kind, arguments).pointee.append(event, to: &out, memo: memo)
        appendProgramFields(event, to: &out)
    }
    /// The table header matching `tableRow`.
    public static let tableHeader = "TIME                 CONTAINER     PID     PPID    COMM             EVENT     DETAILS"

    /// One line for terminals: time, container, pid, ppid, comm, event, and what happened. Control
    /// characters and invalid UTF-8 are escaped.
    public static func tableRow(_ event: Event) -> String {
        let time = String(Timestamp.iso8601(event.timeNs).dropFirst(11).prefix(18))
        func col(_ s: String, _ w: Int) -> String { s.count >= w ? s + " " : s + String(repeating: " ", count: w - s.count) }
        let details: String
        switch event.payload {
        case .exec(let x):
            details = x.executablePath.escapedForTerminal + " " + x.arguments.map(\.escapedForTerminal).joined(separator: " ")
                + (x.argumentsTruncated ? " [args truncated]" : "") + " cwd=" + x.cwd.escapedForTerminal
        case .fork(let f): details = "\(f.isThread ? "thread" : "process") \(f.childPID)/\(f.childTID)"
        case .exit(let x): details = x.signal != 0 ? "signal \(x.signal)" : "code \(x.exitCode)"
        case .open(let o):
            details = o.path.escapedForTerminal + " " + OpenFlags.describe(o.flags)
                + (o.result >= 0 ? " fd=\(o.result)" : " " + ErrnoNames.name(result: o.result))
        case .conn(let c):
            details = c.phase.eventType + " " + c.socket.name.escapedForTerminal
                + (c.phase == .close ? " state=\(TCPStates.name(c.state)) duration=\(c.durationNs / 1000)us sent=\(c.bytesSent) received=\(c.bytesReceived) retransmits=\(c.retransmits)" : "")
        case .tcpdrop(let d):
            details = "\(d.socket.name.escapedForTerminal) \(d.reasonName) flags=\(TCPStates.flags(d.tcpFlags))"
                + (d.state != 0 ? " state=\(TCPStates.name(d.state))" : "")
        case .shell(let s):
            details = s.line.escapedForTerminal + (s.truncated ? " [line truncated]" : "") + (s.tty.isEmpty ? "" : " tty=" + s.tty)
        case .program(let p):
            details = ProgramFields.summary(p)
        case .fim(let f):
            details = (f.whileDown ? "while Vigil was down: " : "") + ByteString(f.summary).escapedForTerminal
        case .syscall(let s):
            var text = ByteBuffer(capacity: 256)
            SyscallArguments.appendAll(s, to: &text)
            text.append(s.noExit ? " (no return)" : " = ")
            if !s.noExit { SyscallArguments.appendResult(s, to: &text) }
            details = text.withUnsafeBytes { ByteString($0) }.escapedForTerminal + (s.noExit ? "" : " \(s.latencyNs / 1000)us")
        }
        let name: String
        if case .syscall(let s) = event.payload { name = s.descriptor.nameString }
        else if case .program(let p) = event.payload { name = p.schema.name } else { name = event.kind.rawValue }
        return col(time, 21) + col(event.container.id, 14) + col(String(event.pid), 8) + col(String(event.ppid), 8)
            + col(event.comm.escapedForTerminal, 17) + col(name, 10) + details
    }
}
