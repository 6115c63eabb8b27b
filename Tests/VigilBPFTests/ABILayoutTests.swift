import CVigilABI
import VigilBPF
import VigilSensors
import VigilTestSupport
import XCTest

/// House rule 1: Swift's view of every ABI struct matches the BTF the compiler wrote into the
/// BPF objects. Runs without privileges (opening an object does not touch the kernel).
final class ABILayoutTests: XCTestCase {
    private func assertLayout<T>(_ type: T.Type, _ name: String, _ offsets: [String: Int?], object objectName: String = "selftest",
                                 file: StaticString = #filePath, line: UInt = #line) throws {
        let object = try EmbeddedObjects.open(objectName)
        let layout = try object.structLayout(name)
        XCTAssertEqual(layout.size, MemoryLayout<T>.size, "size of struct \(name)", file: file, line: line)
        XCTAssertEqual(Set(layout.members.map(\.name)), Set(offsets.keys), "members of \(name)", file: file, line: line)
        for member in layout.members {
            XCTAssertEqual(member.offset, offsets[member.name] ?? nil, "offset of \(name).\(member.name)", file: file, line: line)
        }
    }

    func testEventHeaderMatchesBTF() throws {
        typealias H = vigil_event_header
        try assertLayout(H.self, "vigil_event_header", [
            "ts_ns": MemoryLayout<H>.offset(of: \.ts_ns), "cgroup_id": MemoryLayout<H>.offset(of: \.cgroup_id),
            "kind": MemoryLayout<H>.offset(of: \.kind), "size": MemoryLayout<H>.offset(of: \.size),
            "pid": MemoryLayout<H>.offset(of: \.pid), "tid": MemoryLayout<H>.offset(of: \.tid),
            "ppid": MemoryLayout<H>.offset(of: \.ppid), "uid": MemoryLayout<H>.offset(of: \.uid),
            "gid": MemoryLayout<H>.offset(of: \.gid), "cpu": MemoryLayout<H>.offset(of: \.cpu),
            "mnt_ns": MemoryLayout<H>.offset(of: \.mnt_ns), "pid_ns": MemoryLayout<H>.offset(of: \.pid_ns),
            "comm": MemoryLayout<H>.offset(of: \.comm),
        ])
    }

    func testSelftestEventMatchesBTF() throws {
        typealias E = vigil_selftest_event
        try assertLayout(E.self, "vigil_selftest_event", [
            "hdr": MemoryLayout<E>.offset(of: \.hdr), "seq": MemoryLayout<E>.offset(of: \.seq),
            "hook": MemoryLayout<E>.offset(of: \.hook), "arg": MemoryLayout<E>.offset(of: \.arg),
        ])
    }

    func testExecEventMatchesBTF() throws {
        typealias E = vigil_exec_event
        try assertLayout(E.self, "vigil_exec_event", [
            "hdr": MemoryLayout<E>.offset(of: \.hdr), "start_time_ns": MemoryLayout<E>.offset(of: \.start_time_ns),
            "loginuid": MemoryLayout<E>.offset(of: \.loginuid), "flags": MemoryLayout<E>.offset(of: \.flags),
            "tty_major": MemoryLayout<E>.offset(of: \.tty_major), "tty_minor": MemoryLayout<E>.offset(of: \.tty_minor),
            "filename_len": MemoryLayout<E>.offset(of: \.filename_len), "args_len": MemoryLayout<E>.offset(of: \.args_len),
            "cwd_len": MemoryLayout<E>.offset(of: \.cwd_len), "_pad": MemoryLayout<E>.offset(of: \._pad),
            "tty": MemoryLayout<E>.offset(of: \.tty), "data": MemoryLayout<E>.size,
        ], object: "process")
    }

    func testForkAndExitEventsMatchBTF() throws {
        typealias F = vigil_fork_event
        try assertLayout(F.self, "vigil_fork_event", [
            "hdr": MemoryLayout<F>.offset(of: \.hdr), "child_start_time_ns": MemoryLayout<F>.offset(of: \.child_start_time_ns),
            "child_pid": MemoryLayout<F>.offset(of: \.child_pid), "child_tid": MemoryLayout<F>.offset(of: \.child_tid),
            "is_thread": MemoryLayout<F>.offset(of: \.is_thread), "_pad": MemoryLayout<F>.offset(of: \._pad),
        ], object: "process")
        typealias X = vigil_exit_event
        try assertLayout(X.self, "vigil_exit_event", [
            "hdr": MemoryLayout<X>.offset(of: \.hdr), "start_time_ns": MemoryLayout<X>.offset(of: \.start_time_ns),
            "duration_ns": MemoryLayout<X>.offset(of: \.duration_ns), "exit_code": MemoryLayout<X>.offset(of: \.exit_code),
            "_pad": MemoryLayout<X>.offset(of: \._pad),
        ], object: "process")
        typealias C = vigil_filter_config
        try assertLayout(C.self, "vigil_filter_config", [
            "flags": MemoryLayout<C>.offset(of: \.flags), "host_pid_ns": MemoryLayout<C>.offset(of: \.host_pid_ns),
            "open_classes": MemoryLayout<C>.offset(of: \.open_classes), "_pad": MemoryLayout<C>.offset(of: \._pad),
        ], object: "process")
    }

    func testPathPushdownMapTypesMatchBTF() throws {
        typealias K = vigil_path_key
        typealias R = vigil_path_rule
        typealias B = vigil_basename_key
        typealias C = vigil_kill_comm_key
        try assertLayout(K.self, "vigil_path_key", [
            "prefixlen": MemoryLayout<K>.offset(of: \.prefixlen), "path": MemoryLayout<K>.offset(of: \.path),
        ], object: "file")
        try assertLayout(R.self, "vigil_path_rule", [
            "pass": MemoryLayout<R>.offset(of: \.pass), "kill": MemoryLayout<R>.offset(of: \.kill),
            "kill_comms": MemoryLayout<R>.offset(of: \.kill_comms), "_pad": MemoryLayout<R>.offset(of: \._pad),
            "kill_rule": MemoryLayout<R>.offset(of: \.kill_rule),
        ], object: "file")
        try assertLayout(B.self, "vigil_basename_key", ["name": MemoryLayout<B>.offset(of: \.name)], object: "file")
        try assertLayout(C.self, "vigil_kill_comm_key", [
            "rule": MemoryLayout<C>.offset(of: \.rule), "comm": MemoryLayout<C>.offset(of: \.comm),
        ], object: "file")
    }

    func testOpenEventMatchesBTF() throws {
        typealias O = vigil_open_event
        try assertLayout(O.self, "vigil_open_event", [
            "hdr": MemoryLayout<O>.offset(of: \.hdr), "result": MemoryLayout<O>.offset(of: \.result),
            "flags_arg": MemoryLayout<O>.offset(of: \.flags_arg), "mode": MemoryLayout<O>.offset(of: \.mode),
            "dirfd": MemoryLayout<O>.offset(of: \.dirfd), "syscall": MemoryLayout<O>.offset(of: \.syscall),
            "flags": MemoryLayout<O>.offset(of: \.flags), "name_len": MemoryLayout<O>.offset(of: \.name_len),
            "base_len": MemoryLayout<O>.offset(of: \.base_len), "data": MemoryLayout<O>.size,
        ], object: "file")
        typealias F = vigil_open_file
        try assertLayout(F.self, "vigil_open_file", [
            "ino": MemoryLayout<F>.offset(of: \.ino), "dev": MemoryLayout<F>.offset(of: \.dev),
            "path_len": MemoryLayout<F>.offset(of: \.path_len), "_pad": MemoryLayout<F>.offset(of: \._pad),
        ], object: "file")
        typealias I = vigil_inode_key
        try assertLayout(I.self, "vigil_inode_key", [
            "ino": MemoryLayout<I>.offset(of: \.ino), "dev": MemoryLayout<I>.offset(of: \.dev),
            "_pad": MemoryLayout<I>.offset(of: \._pad),
        ], object: "file")
    }

    func testConnectionEventsMatchBTF() throws {
        typealias C = vigil_conn_event
        try assertLayout(C.self, "vigil_conn_event", [
            "hdr": MemoryLayout<C>.offset(of: \.hdr), "tuple": MemoryLayout<C>.offset(of: \.tuple),
            "sock": MemoryLayout<C>.offset(of: \.sock), "start_ns": MemoryLayout<C>.offset(of: \.start_ns),
            "duration_ns": MemoryLayout<C>.offset(of: \.duration_ns), "bytes_sent": MemoryLayout<C>.offset(of: \.bytes_sent),
            "bytes_received": MemoryLayout<C>.offset(of: \.bytes_received), "retransmits": MemoryLayout<C>.offset(of: \.retransmits),
            "phase": MemoryLayout<C>.offset(of: \.phase), "flags": MemoryLayout<C>.offset(of: \.flags),
            "_pad": MemoryLayout<C>.offset(of: \._pad),
        ], object: "conn")
        typealias D = vigil_tcpdrop_event
        try assertLayout(D.self, "vigil_tcpdrop_event", [
            "hdr": MemoryLayout<D>.offset(of: \.hdr), "tuple": MemoryLayout<D>.offset(of: \.tuple),
            "sock": MemoryLayout<D>.offset(of: \.sock), "location": MemoryLayout<D>.offset(of: \.location),
            "reason": MemoryLayout<D>.offset(of: \.reason), "tcp_flags": MemoryLayout<D>.offset(of: \.tcp_flags),
            "flags": MemoryLayout<D>.offset(of: \.flags), "_pad": MemoryLayout<D>.offset(of: \._pad),
        ], object: "conn")
    }

    func testShellEventMatchesBTF() throws {
        typealias S = vigil_shell_event
        try assertLayout(S.self, "vigil_shell_event", [
            "hdr": MemoryLayout<S>.offset(of: \.hdr), "sid": MemoryLayout<S>.offset(of: \.sid),
            "tty_major": MemoryLayout<S>.offset(of: \.tty_major), "tty_minor": MemoryLayout<S>.offset(of: \.tty_minor),
            "line_len": MemoryLayout<S>.offset(of: \.line_len), "flags": MemoryLayout<S>.offset(of: \.flags),
            "_pad": MemoryLayout<S>.offset(of: \._pad), "tty": MemoryLayout<S>.offset(of: \.tty),
            "line": MemoryLayout<S>.offset(of: \.line),
        ], object: "shell")
    }

    func testSyscallTypesMatchBTF() throws {
        typealias E = vigil_syscall_event
        try assertLayout(E.self, "vigil_syscall_event", [
            "hdr": MemoryLayout<E>.offset(of: \.hdr), "latency_ns": MemoryLayout<E>.offset(of: \.latency_ns),
            "ret": MemoryLayout<E>.offset(of: \.ret), "args": MemoryLayout<E>.offset(of: \.args),
            "nr": MemoryLayout<E>.offset(of: \.nr), "flags": MemoryLayout<E>.offset(of: \.flags),
            "data_len": MemoryLayout<E>.offset(of: \.data_len), "arg_len": MemoryLayout<E>.offset(of: \.arg_len),
            "arg_truncated": MemoryLayout<E>.offset(of: \.arg_truncated), "arg_failed": MemoryLayout<E>.offset(of: \.arg_failed),
            "_pad": MemoryLayout<E>.offset(of: \._pad), "data": MemoryLayout<E>.size,
        ], object: "syscalls")
        typealias S = vigil_syscall_spec
        try assertLayout(S.self, "vigil_syscall_spec", [
            "kind": MemoryLayout<S>.offset(of: \.kind), "len": MemoryLayout<S>.offset(of: \.len),
            "flags": MemoryLayout<S>.offset(of: \.flags), "buf_max": MemoryLayout<S>.offset(of: \.buf_max),
            "str_max": MemoryLayout<S>.offset(of: \.str_max), "_pad": MemoryLayout<S>.offset(of: \._pad),
        ], object: "syscalls")
        typealias B = vigil_syscall_bitmap
        try assertLayout(B.self, "vigil_syscall_bitmap", ["bits": MemoryLayout<B>.offset(of: \.bits)], object: "syscalls")
        typealias T = vigil_socket_tuple
        try assertLayout(T.self, "vigil_socket_tuple", [
            "family": MemoryLayout<T>.offset(of: \.family), "type": MemoryLayout<T>.offset(of: \.type),
            "protocol": MemoryLayout<T>.offset(of: \.protocol), "state": MemoryLayout<T>.offset(of: \.state),
            "_pad": MemoryLayout<T>.offset(of: \._pad), "lport": MemoryLayout<T>.offset(of: \.lport),
            "rport": MemoryLayout<T>.offset(of: \.rport), "_pad2": MemoryLayout<T>.offset(of: \._pad2),
            "inode": MemoryLayout<T>.offset(of: \.inode), "laddr": MemoryLayout<T>.offset(of: \.laddr),
            "raddr": MemoryLayout<T>.offset(of: \.raddr),
        ], object: "syscalls")
    }

    func testSeccompRecordMatchesBTF() throws {
        typealias R = vigil_seccomp_record
        try assertLayout(R.self, "vigil_seccomp_record", [
            "flags": MemoryLayout<R>.offset(of: \.flags), "arches": MemoryLayout<R>.offset(of: \.arches),
            "clone_flags": MemoryLayout<R>.offset(of: \.clone_flags), "personality": MemoryLayout<R>.offset(of: \.personality),
            "personality_count": MemoryLayout<R>.offset(of: \.personality_count), "clone3_seen": MemoryLayout<R>.offset(of: \.clone3_seen),
            "native": MemoryLayout<R>.offset(of: \.native), "compat": MemoryLayout<R>.offset(of: \.compat),
            "x32": MemoryLayout<R>.offset(of: \.x32),
        ], object: "seccomp")
    }

    func testFIMStructsMatchBTF() throws {
        typealias W = vigil_fim_watch
        try assertLayout(W.self, "vigil_fim_watch", ["id": MemoryLayout<W>.offset(of: \.id), "flags": MemoryLayout<W>.offset(of: \.flags)],
                         object: "fim")
        typealias K = vigil_fim_name_key
        try assertLayout(K.self, "vigil_fim_name_key", ["dir": MemoryLayout<K>.offset(of: \.dir), "name": MemoryLayout<K>.offset(of: \.name)],
                         object: "fim")
        typealias N = vigil_fim_name
        try assertLayout(N.self, "vigil_fim_name", ["file": MemoryLayout<N>.offset(of: \.file), "watch": MemoryLayout<N>.offset(of: \.watch)],
                         object: "fim")
        typealias D = vigil_fim_dir_key
        try assertLayout(D.self, "vigil_fim_dir_key", ["root": MemoryLayout<D>.offset(of: \.root), "path": MemoryLayout<D>.offset(of: \.path)], object: "fim")
        typealias M = vigil_fim_match
        try assertLayout(M.self, "vigil_fim_match", [
            "file": MemoryLayout<M>.offset(of: \.file), "new_file": MemoryLayout<M>.offset(of: \.new_file),
            "id": MemoryLayout<M>.offset(of: \.id), "how": MemoryLayout<M>.offset(of: \.how),
        ], object: "fim")
    }

    func testUnknownStructIsNamed() throws {
        let object = try EmbeddedObjects.open("selftest")
        let error = assertBPFError { _ = try object.structLayout("no_such_struct") }
        XCTAssertEqual(error?.kind, .notFound)
        XCTAssertTrue(error?.description.contains("no_such_struct") ?? false)
    }
}
