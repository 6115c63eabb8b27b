/// Reads events back from the JSON lines `EventFormat.json` writes (`vigil trace -o json`), keeping
/// the exact bytes of strings (\udcXX escapes become the raw bytes again). Used to replay
/// recorded events through rules.
public enum EventJSON {
    /// A parsed JSON value; strings are kept as bytes.
    public indirect enum Value: Equatable, Sendable {
        case string(ByteString)
        case number(String)
        case bool(Bool)
        case null
        case array([Value])
        case object([String: Value])
    }

    /// A reason a line could not be read, with the byte offset.
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public var offset: Int
        public var message: String
        public var description: String { "column \(offset + 1): \(message)" }
    }

    /// Parses one JSON text.
    public static func parse(_ text: String) throws(ParseError) -> Value {
        var parser = Parser(bytes: Array(text.utf8))
        let value = try parser.value()
        parser.skipSpace()
        guard parser.index == parser.bytes.count else { throw ParseError(offset: parser.index, message: "text after the JSON value") }
        return value
    }

    /// An event from one line of `vigil trace -o json`.
    public static func event(_ line: String) throws(ParseError) -> Event {
        guard case .object(let o) = try parse(line) else { throw ParseError(offset: 0, message: "an event is a JSON object") }
        func str(_ k: String) -> ByteString? { if case .string(let s)? = o[k] { return s }; return nil }
        func num<T: FixedWidthInteger>(_ k: String, _: T.Type = T.self) -> T? { if case .number(let n)? = o[k] { return T(n) }; return nil }
        func bool(_ k: String) -> Bool? { if case .bool(let b)? = o[k] { return b }; return nil }
        func strs(_ k: String) -> [ByteString]? {
            guard case .array(let a)? = o[k] else { return nil }
            return a.compactMap { if case .string(let s) = $0 { return s }; return nil }
        }
        guard let kindName = str("evt.kind")?.string, let kind = EventKind(rawValue: kindName) else {
            throw ParseError(offset: 0, message: "missing or unknown evt.kind")
        }
        let payload: Payload
        switch kind {
        case .exec:
            let args = strs("proc.argv") ?? []
            payload = .exec(.init(filename: str("proc.exepath") ?? "", executablePath: str("proc.exepath") ?? "", arguments: args,
                                  argumentsTruncated: bool("proc.args_truncated") ?? false, cwd: str("proc.cwd") ?? "",
                                  tty: str("proc.ttyname")?.string ?? "", ttyNumber: num("proc.tty") ?? 0,
                                  loginUID: num("user.loginuid") ?? UInt32.max, startTimeNs: 0))
        case .fork:
            payload = .fork(.init(childPID: num("evt.child_pid") ?? 0, childTID: num("evt.child_tid") ?? 0,
                                  isThread: bool("evt.is_thread") ?? false, childStartTimeNs: 0))
        case .exit:
            let status = ((num("proc.exitcode", UInt32.self) ?? 0) << 8) | (num("proc.exitsignal", UInt32.self) ?? 0)
            payload = .exit(.init(status: status, startTimeNs: 0, durationNs: num("proc.duration") ?? 0))
        case .syscall:
            // The raw values are not in the JSON (the decoded ones are): the name and result come back.
            guard let name = str("evt.type")?.string, let index = Syscalls.index(named: name) else {
                throw ParseError(offset: 0, message: "a syscall event without a known evt.type")
            }
            payload = .syscall(.init(index: index, result: num("evt.rawres") ?? 0, latencyNs: num("evt.latency") ?? 0, args: .zero))
        case .conn, .tcpdrop:
            func end(_ ip: String, _ port: String) -> SocketAddress? {
                guard let text = str(ip)?.string, let address = IPAddress(text) else { return nil }
                return SocketAddress(ip: address, port: num(port) ?? 0)
            }
            if kind == .tcpdrop {
                let socket = SocketInfo(l4proto: .tcp, local: end("fd.cip", "fd.cport"), remote: end("fd.sip", "fd.sport"), role: .client)
                let name = str("tcp.drop_reason")?.string ?? ""
                payload = .tcpdrop(.init(socket: socket, reason: DropReasons.value(named: name) ?? 0, reasonName: name, tcpFlags: 0,
                                         sock: num("conn.id") ?? 0, ownerKnown: bool("tcp.drop_owner") ?? false))
            } else {
                let type = str("evt.type")?.string ?? ""
                let phase = Payload.Conn.Phase.allCases.first { $0.eventType == type } ?? .connect
                let server = str("fd.sip") == str("fd.lip") && num("fd.sport", UInt16.self) == num("fd.lport", UInt16.self)
                let socket = SocketInfo(l4proto: .tcp, local: end("fd.lip", "fd.lport"), remote: end("fd.rip", "fd.rport"),
                                        role: server ? .server : .client, connected: phase != .close)
                payload = .conn(.init(phase: phase, socket: socket, state: 0, sock: num("conn.id") ?? 0, durationNs: num("conn.duration") ?? 0,
                                      bytesSent: num("conn.bytes_sent") ?? 0, bytesReceived: num("conn.bytes_received") ?? 0,
                                      retransmits: num("conn.retransmits") ?? 0))
            }
        case .fim:
            func list(_ k: String) -> [String] { (strs(k) ?? []).map(\.string) }
            let owner = (str("fim.owner")?.string ?? "").split(separator: ":").map { UInt32($0) ?? 0 }
            let diff = str("fim.diff")?.string ?? ""
            payload = .fim(.init(change: str("fim.change")?.string ?? "", path: str("fim.path")?.string ?? "",
                                 profile: str("fim.profile")?.string ?? "", sha256Old: str("fim.sha256.old")?.string ?? "",
                                 sha256: str("fim.sha256")?.string ?? "", size: num("fim.size") ?? 0, mode: num("fim.mode") ?? 0,
                                 uid: owner.first ?? 0, gid: owner.count > 1 ? owner[1] : 0,
                                 diff: diff.isEmpty ? [] : diff.split(separator: "\n", omittingEmptySubsequences: false).map(String.init),
                                 usersAdded: list("fim.users_added"), usersRemoved: list("fim.users_removed"), uidZero: list("fim.uid0_users"),
                                 newUIDZero: bool("fim.new_uid0") ?? false, sudoRulesAdded: list("fim.sudo_rules_added"),
                                 sudoRulesRemoved: list("fim.sudo_rules_removed"), keysAdded: list("fim.ssh_keys_added"),
                                 keysRemoved: list("fim.ssh_keys_removed"), whileDown: bool("fim.while_down") ?? false,
                                 summary: str("fim.summary")?.string ?? "", renamedFrom: str("fim.rename.from")?.string ?? "", renamedTo: str("fim.rename.to")?.string ?? ""))
        case .program:
            // Read back with the schema of the bundle named by evt.type, which must be loaded.
            guard let name = str("evt.type")?.string, let schema = ProgramSchema.registered(name) else {
                throw ParseError(offset: 0, message: "a program event whose bundle (evt.type) is not loaded")
            }
            payload = .program(.init(schema: schema, values: schema.fields.map { field -> FieldValue in
                let key = ProgramFields.prefix + name + "." + field.name
                switch field.type {
                case .uint: return .uint(num(key) ?? 0)
                case .int: return .int(num(key) ?? 0)
                case .strings: return .strings(strs(key) ?? [])
                default: return .string(str(key) ?? "")
                }
            }))
        case .shell:
            let tty = str("shell.tty")?.string ?? ""
            payload = .shell(.init(line: str("shell.line") ?? "", truncated: bool("shell.truncated") ?? false, tty: tty,
                                   ttyNumber: num("proc.tty") ?? 0, sessionID: num("shell.sid") ?? 0))
        case .open:
            payload = .open(.init(syscall: str("evt.type")?.string ?? "openat", name: str("fd.nameraw") ?? "", path: str("fd.name") ?? "",
                                  flags: num("fd.rawflags") ?? 0, mode: num("fd.mode") ?? 0, dirfd: num("fd.dirfd") ?? -100,
                                  result: num("evt.rawres") ?? 0, truncated: bool("fd.truncated") ?? false))
        }
        var event = Event(bootTimeNs: 0, timeNs: num("evt.rawtime") ?? 0, cgroupID: num("proc.cgroup_id") ?? 0,
                          pid: num("proc.pid") ?? 0, tid: num("thread.tid") ?? 0, ppid: num("proc.ppid") ?? 0,
                          uid: num("user.uid") ?? 0, gid: num("group.gid") ?? 0, cpu: num("evt.cpu") ?? 0,
                          mountNamespace: num("proc.mntns") ?? 0, pidNamespace: num("proc.pidns") ?? 0,
                          comm: str("proc.name") ?? "", payload: payload)
        event.process.executablePath = str("proc.exepath")
        event.process.arguments = strs("proc.argv")
        event.process.cwd = str("proc.cwd")
        event.process.ttyNumber = num("proc.tty")
        event.process.loginUID = num("user.loginuid")
        event.process.ancestorNames = strs("proc.anames") ?? []
        event.process.userName = str("user.name")?.string
        event.process.loginUserName = str("user.loginname")?.string
        event.process.groupName = str("group.name")?.string
        // proc.duration is the process's age on every event: replayed, the event's clock is
        // evt.rawtime and the process started that long before it.
        event.bootTimeNs = event.timeNs
        if let duration: UInt64 = num("proc.duration"), duration <= event.timeNs {
            event.process.startTimeNs = event.timeNs - duration
            if case .exec(var x) = event.payload {
                x.startTimeNs = event.timeNs - duration
                event.payload = .exec(x)
            }
        }
        if let runtime = str("container.runtime")?.string {
            var labels: [String: String] = [:]
            if case .object(let l)? = o["container.labels"] {
                for (k, v) in l { if case .string(let s) = v { labels[k] = s.string } }
            }
            event.container = ContainerContext(fullID: str("container.full_id")?.string ?? "", runtime: runtime,
                                               name: str("container.name")?.string ?? "", image: str("container.image")?.string ?? "",
                                               labels: labels, podUID: str("k8s.pod.uid")?.string ?? "")
        }
        return event
    }

    struct Parser {
        let bytes: [UInt8]
        var index = 0

        mutating func skipSpace() {
            while index < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[index]) { index += 1 }
        }

        mutating func value() throws(ParseError) -> Value {
            skipSpace()
            guard index < bytes.count else { throw ParseError(offset: index, message: "unexpected end") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                index += 1
                var object: [String: Value] = [:]
                skipSpace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(object) }
                while true {
                    skipSpace()
                    guard case .string(let key) = try value() else { throw ParseError(offset: index, message: "object keys are strings") }
                    skipSpace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw ParseError(offset: index, message: "expected ':'") }
                    index += 1
                    object[key.string] = try value()
                    skipSpace()
                    guard index < bytes.count else { throw ParseError(offset: index, message: "unterminated object") }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(object) }
                    throw ParseError(offset: index, message: "expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                index += 1
                var array: [Value] = []
                skipSpace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(array) }
                while true {
                    array.append(try value())
                    skipSpace()
                    guard index < bytes.count else { throw ParseError(offset: index, message: "unterminated array") }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(array) }
                    throw ParseError(offset: index, message: "expected ',' or ']'")
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t") where bytes[index...].starts(with: "true".utf8): index += 4; return .bool(true)
            case UInt8(ascii: "f") where bytes[index...].starts(with: "false".utf8): index += 5; return .bool(false)
            case UInt8(ascii: "n") where bytes[index...].starts(with: "null".utf8): index += 4; return .null
            default:
                let start = index
                while index < bytes.count, "-+.eE0123456789".utf8.contains(bytes[index]) { index += 1 }
                guard index > start else { throw ParseError(offset: index, message: "unexpected character") }
                return .number(String(decoding: bytes[start..<index], as: UTF8.self))
            }
        }

        /// A string literal: UTF-8 text and escapes, lone \udcXX surrogates as raw bytes.
        mutating func string() throws(ParseError) -> ByteString {
            index += 1
            var units: [UInt16] = []
            var out: [UInt8] = []
            func flushUnits() {
                if !units.isEmpty { out += ByteString(jsonUTF16: units).bytes; units = [] }
            }
            while index < bytes.count {
                let b = bytes[index]
                if b == UInt8(ascii: "\"") { index += 1; flushUnits(); return ByteString(out) }
                if b == UInt8(ascii: "\\") {
                    guard index + 1 < bytes.count else { break }
                    let e = bytes[index + 1]
                    index += 2
                    switch e {
                    case UInt8(ascii: "u"):
                        guard index + 4 <= bytes.count, let unit = UInt16(String(decoding: bytes[index..<(index + 4)], as: UTF8.self), radix: 16) else {
                            throw ParseError(offset: index, message: "bad \\u escape")
                        }
                        units.append(unit)
                        index += 4
                    default:
                        flushUnits()
                        switch e {
                        case UInt8(ascii: "n"): out.append(0x0a)
                        case UInt8(ascii: "t"): out.append(0x09)
                        case UInt8(ascii: "r"): out.append(0x0d)
                        case UInt8(ascii: "b"): out.append(0x08)
                        case UInt8(ascii: "f"): out.append(0x0c)
                        default: out.append(e) // \" \\ \/
                        }
                    }
                } else {
                    flushUnits()
                    out.append(b)
                    index += 1
                }
            }
            throw ParseError(offset: index, message: "unterminated string")
        }
    }
}
