import CVigilABI

extension Payload {
    /// One syscall, entry and exit paired (struct vigil_syscall_event). Everything about its
    /// arguments comes from its row of the table (`descriptor`): the values are decoded on demand
    /// (`SyscallArguments`), so decoding a record makes at most one allocation (the captured bytes).
    public struct Syscall: Sendable {
        /// The row in `Syscalls.all`.
        public var index: Int
        /// The return value (-errno on failure; 0 when `noExit`).
        public var result: Int64
        /// Exit time minus entry time.
        public var latencyNs: UInt64
        /// The raw argument values (six used).
        public var args: SIMD8<UInt64>
        /// Bytes captured of each argument, in `data` one after another (0: none).
        public var lengths: SIMD8<UInt16>
        /// The captured bytes of every argument.
        public var data: ByteString
        /// Bit i: argument i was cut at its bound.
        public var truncated: UInt8
        /// Bit i: reading argument i from user memory failed.
        public var failed: UInt8
        /// Reported at entry: the call does not return (exit, exit_group).
        public var noExit: Bool
        /// The path arguments resolved by enrichment (against the cwd or the dirfd argument,
        /// `.` and `..` folded): evt.arg.NAME and fd.name; evt.rawarg.NAME keeps the name as given.
        public var resolved = ResolvedPaths()
        /// `data` ends with the kernel's view of the socket the call acted on or made (struct
        /// vigil_socket_tuple, after the arguments' bytes): `socketTuple`.
        public var hasSocketTuple: Bool

        /// Creates the payload.
        public init(index: Int, result: Int64, latencyNs: UInt64, args: SIMD8<UInt64>, lengths: SIMD8<UInt16> = .zero,
                    data: ByteString = ByteString([UInt8]()), truncated: UInt8 = 0, failed: UInt8 = 0, noExit: Bool = false,
                    hasSocketTuple: Bool = false) {
            self.index = index
            self.result = result
            self.latencyNs = latencyNs
            self.args = args
            self.lengths = lengths
            self.data = data
            self.truncated = truncated
            self.failed = failed
            self.noExit = noExit
            self.hasSocketTuple = hasSocketTuple
        }

        /// Both ends of the socket as the kernel held them at the call's exit (connect's local
        /// end, accept's peer, the address bind chose), nil when the record has none.
        public var socketTuple: KernelSocketTuple? {
            guard hasSocketTuple else { return nil }
            let size = MemoryLayout<vigil_socket_tuple>.size
            guard data.bytes.count >= size else { return nil }
            return KernelSocketTuple(bytes: data.bytes[(data.bytes.count - size)...])
        }

        /// Argument `i`'s path resolved to an absolute one, nil when it was not (not a path, a
        /// clean absolute one, or a base the tables did not know).
        @inline(__always)
        public func resolvedPath(_ i: Int) -> ByteString? { resolved.isEmpty ? nil : resolved.path(i) }

        /// The syscall's row of the table.
        public var descriptor: SyscallDescriptor { Syscalls.all[index] }

        /// The row's parameters (`Syscalls.params`: no copy of the row, nothing retained).
        @inline(__always)
        public var params: UnsafeBufferPointer<SyscallParam> { Syscalls.params[index] }

        /// The row's flags (no copy of the row).
        @inline(__always)
        public var flags: SyscallFlags { Syscalls.all[index].flags }

        /// Whether the call failed: a result in -4095 ... -1 (the kernel's error range).
        public var failedCall: Bool { result < 0 && result >= -4095 }

        /// The bytes captured for argument `i`, nil when none were. The record holds those
        /// captured at entry first, then those captured at exit (`SyscallParam.capturedAtExit`).
        public func captured(_ i: Int) -> ArraySlice<UInt8>? {
            captured(i, params: params)
        }

        /// The same with the row's parameters handed in.
        @inline(__always)
        func captured(_ i: Int, params: UnsafeBufferPointer<SyscallParam>) -> ArraySlice<UInt8>? {
            guard i < 6, lengths[i] > 0 else { return nil }
            guard i < params.count else { return nil }
            let exit = params[i].capturedAtExit
            var start = 0
            for j in 0..<min(params.count, 6) {
                let atExit = params[j].capturedAtExit
                if (exit && !atExit) || (atExit == exit && j < i) { start += Int(lengths[j]) }
            }
            let end = start + Int(lengths[i])
            guard end <= data.bytes.count else { return nil }
            return data.bytes[start..<end]
        }

        /// The bytes captured for the call's data buffer (recvfrom's, sendto's, read's, write's;
        /// the first iovec of readv's, writev's, sendmsg's, recvmsg's), nil when it has none or
        /// none were captured.
        public var capturedBuffer: ArraySlice<UInt8>? {
            firstCaptured { $0.isData }
        }

        /// The bytes captured for the call's socket address (connect's destination, bind's address,
        /// sendto's destination, recvfrom's and accept's source), nil when it has none or none were
        /// captured (`SocketAddress(sockaddr:)` decodes them).
        public var capturedSocketAddress: ArraySlice<UInt8>? {
            firstCaptured { if case .sockaddr = $0 { true } else { false } }
        }

        /// The bytes captured for the first argument whose type `matches` accepts (no syscall of the
        /// table has two buffers or two socket addresses).
        private func firstCaptured(where matches: (SyscallValueType) -> Bool) -> ArraySlice<UInt8>? {
            for (i, p) in params.prefix(6).enumerated() where matches(p.type) {
                if let bytes = captured(i) { return bytes }
            }
            return nil
        }
    }
}

extension EventDecoder {
    /// VIGIL_EVENT_SYSCALL: the syscall is looked up by this arch's number; an unknown number gives nil.
    func decodeSyscall(_ record: UnsafeRawBufferPointer) -> Payload? {
        let fixed = MemoryLayout<vigil_syscall_event>.size
        guard record.count >= fixed else { return nil }
        let e = record.loadUnaligned(as: vigil_syscall_event.self)
        guard let index = Syscalls.index(number: Int(e.nr)) else { return nil }
        var end = fixed + Int(e.data_len)
        guard end <= record.count else { return nil }
        let socket = e.flags & UInt16(VIGIL_SYSCALL_SOCKET.rawValue) != 0
            && end + MemoryLayout<vigil_socket_tuple>.size <= record.count
        if socket { end += MemoryLayout<vigil_socket_tuple>.size }
        let a = e.args, l = e.arg_len
        var lengths = SIMD8<UInt16>(l.0, l.1, l.2, l.3, l.4, l.5, 0, 0)
        var total = 0
        for i in 0..<6 { total += Int(lengths[i]) }
        if total != Int(e.data_len) { lengths = .zero } // inconsistent: keep the raw values only
        return .syscall(.init(index: index, result: e.ret, latencyNs: e.latency_ns,
                              args: SIMD8<UInt64>(a.0, a.1, a.2, a.3, a.4, a.5, 0, 0), lengths: lengths,
                              data: end > fixed ? ByteString(record[fixed..<end]) : ByteString([UInt8]()),
                              truncated: e.arg_truncated, failed: e.arg_failed,
                              noExit: e.flags & UInt16(VIGIL_SYSCALL_NO_EXIT.rawValue) != 0, hasSocketTuple: socket))
    }
}

/// Up to two resolved path arguments of one syscall (rename, link, mount and move_mount take
/// two; no syscall takes more), by argument index. A value, no allocation of its own.
/// The paths are plain (empty while unset), not optionals: every copy of a syscall payload
/// copies them, and an optional one was copied and destroyed through the runtime's generic
/// value witnesses (~130 instructions each, several per event).
public struct ResolvedPaths: Sendable {
    private var firstIndex: Int8 = -1, secondIndex: Int8 = -1
    private var first = ByteString([UInt8]()), second = ByteString([UInt8]())

    /// None resolved.
    public init() {}

    /// Whether no argument was resolved.
    public var isEmpty: Bool { firstIndex < 0 }

    /// The resolved path of argument `i`.
    public func path(_ i: Int) -> ByteString? {
        guard i >= 0 else { return nil }
        if Int(firstIndex) == i { return first }
        if Int(secondIndex) == i { return second }
        return nil
    }

    /// Sets argument `i`'s resolved path (a third is ignored: no syscall has one).
    public mutating func set(_ i: Int, _ path: ByteString) {
        if firstIndex < 0 || Int(firstIndex) == i {
            (firstIndex, first) = (Int8(i), path)
        } else if secondIndex < 0 || Int(secondIndex) == i {
            (secondIndex, second) = (Int8(i), path)
        }
    }
}
