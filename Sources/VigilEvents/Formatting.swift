/// open(2) flags as text.
public enum OpenFlags {
    private static let named: [(UInt32, String)] = [
        (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"), (0o2000, "O_APPEND"),
        (0o4000, "O_NONBLOCK"), (0o4010000, "O_SYNC"), (0o10000, "O_DSYNC"), (0o20000, "O_ASYNC"), (0o40000, "O_DIRECT"),
        (0o100000, "O_LARGEFILE"), (0o20200000, "O_TMPFILE"), (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"),
        (0o1000000, "O_NOATIME"), (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"),
    ]

    /// E.g. `O_RDONLY|O_CLOEXEC`; unknown bits as a hex number at the end.
    public static func describe(_ flags: UInt32) -> String {
        var parts = [["O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"][Int(flags & 3)]]
        var rest = flags & ~3
        for (bits, name) in named where rest & bits == bits {
            parts.append(name)
            rest &= ~bits
        }
        if rest != 0 { parts.append("0x" + String(rest, radix: 16)) }
        return parts.joined(separator: "|")
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
    ]
    private static let nameBytes: [Int32: ByteString] = names.mapValues { ByteString($0) }

    /// The symbolic name, or `E<number>` when unknown.
    public static func name(_ errno: Int32) -> String { names[errno] ?? "E\(errno)" }

    /// The symbolic name as bytes (made once for the known ones).
    public static func bytes(_ errno: Int32) -> ByteString { nameBytes[errno] ?? ByteString(name(errno)) }
}

/// Time formatting without Foundation.
public enum Timestamp {
    /// ISO 8601 UTC with nanoseconds, e.g. 2026-11-22T23:13:59.123456789Z.
    public static func iso8601(_ epochNs: UInt64) -> String {
        let seconds = Int64(epochNs / 1_000_000_000), nanos = Int(epochNs % 1_000_000_000)
        var days = seconds / 86400
        let secondOfDay = Int(seconds % 86400)
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        days += 719_468
        let era = days / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ v: Int64, _ w: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(Int64(secondOfDay / 3600), 2)):\(pad(Int64(secondOfDay / 60 % 60), 2)):\(pad(Int64(secondOfDay % 60), 2)).\(pad(Int64(nanos), 9))Z"
    }
}

/// The two output forms of an event.
public enum EventFormat {
    /// One JSON object on one line: every field the event's kind carries, keyed by field name,
    /// in catalogue order (documented in docs/fields.md). Byte strings keep their exact bytes
    /// (invalid UTF-8 as \udcXX escapes).
    public static func json(_ event: Event) -> String {
        var out: [UInt8] = []
        appendJSON(event, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// The `"name":` prefix of every field, made once.
    private static let keys: [[UInt8]] = Fields.all.map { field in
        var key: [UInt8] = []
        JSONText.appendString(field.name, to: &key)
        return key + [0x3a]
    }

    /// Appends the JSON object of `event` (no newline) as UTF-8 bytes: the fast path for output.
    public static func appendJSON(_ event: Event, to out: inout [UInt8]) {
        out.append(0x7b)
        var first = true
        for (index, field) in Fields.all.enumerated() where !field.takesArgument && field.applies(to: event.kind) {
            guard let value = field.extract(event, nil) else { continue }
            if !first { out.append(0x2c) }
            first = false
            out.append(contentsOf: keys[index])
            append(value, to: &out)
        }
        if !event.container.labels.isEmpty {
            out.append(contentsOf: ",\"container.labels\":{".utf8)
            for (i, key) in event.container.labels.keys.sorted().enumerated() {
                if i > 0 { out.append(0x2c) }
                JSONText.appendString(key, to: &out)
                out.append(0x3a)
                JSONText.appendString(event.container.labels[key] ?? "", to: &out)
            }
            out.append(0x7d)
        }
        out.append(0x7d)
    }

    static func append(_ value: FieldValue, to out: inout [UInt8]) {
        switch value {
        case .string(let s): s.appendJSON(to: &out)
        case .uint(let v): out.append(contentsOf: String(v).utf8)
        case .int(let v): out.append(contentsOf: String(v).utf8)
        case .bool(let v): out.append(contentsOf: (v ? "true" : "false").utf8)
        case .strings(let list):
            out.append(0x5b)
            for (i, s) in list.enumerated() {
                if i > 0 { out.append(0x2c) }
                s.appendJSON(to: &out)
            }
            out.append(0x5d)
        }
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
                + (o.result >= 0 ? " fd=\(o.result)" : " " + ErrnoNames.name(Int32(-o.result)))
        }
        return col(time, 21) + col(event.container.id, 14) + col(String(event.pid), 8) + col(String(event.ppid), 8)
            + col(event.comm.escapedForTerminal, 17) + col(event.kind.rawValue, 10) + details
    }
}
